//! GraphQL over HTTP as clients are built against it: credentials that are not valid refused
//! with 401, both media types, queries over GET with HTTP caching of public answers, automatic
//! persisted queries, JSON refusals, GraphiQL served from the binary, and graphql-http's own
//! audit of the running server.

use futures::{SinkExt, StreamExt};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

use crate::{helpers::*, on_both_databases};

on_both_databases!(
    a_credential_that_is_not_valid_is_refused_with_401_on_every_operation,
    a_session_cookie_that_is_no_longer_valid_is_refused_with_401,
    no_credential_stays_anonymous,
    a_websocket_with_a_credential_that_is_not_valid_is_refused_at_connection_init,
    the_registrations_download_refuses_a_credential_that_is_not_valid,
    the_graphql_response_media_type_answers_failures_before_execution_with_400_and_no_data,
    a_post_without_a_json_content_type_is_refused_with_415_and_not_executed,
    queries_run_over_get_and_browsers_still_get_graphiql,
    a_mutation_over_get_is_refused_with_405_and_changes_nothing,
    every_http_refusal_is_json_in_the_graphql_error_shape,
    a_public_answer_has_an_etag_that_gives_304_until_a_write_changes_it,
    a_signed_in_or_failed_or_written_answer_is_never_public,
    a_private_field_never_lands_in_a_public_answer,
    a_persisted_query_registers_with_its_query_then_runs_from_its_hash_over_get,
    graphql_http_audit_passes_every_must_and_should,
    the_standard_introspection_query_runs_over_get,
    graphiql_loads_in_a_browser_from_the_server_alone,
);

const PUBLIC_QUERY: &str = "{ changes { title } }";
const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// A reply with its headers.
struct Raw {
    status: StatusCode,
    headers: header::HeaderMap,
    text: String,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn code(&self) -> Option<String> {
        self.json()["errors"][0]["extensions"]["code"]
            .as_str()
            .map(str::to_owned)
    }
}

async fn raw(request: reqwest::RequestBuilder) -> anyhow::Result<Raw> {
    let response = request.send().await?;
    Ok(Raw {
        status: response.status(),
        headers: response.headers().clone(),
        text: response.text().await?,
    })
}

/// Posts `body` as JSON with `Authorization: <authorization>` when given.
async fn post(app: &TestApp, authorization: Option<&str>, body: &Value) -> anyhow::Result<Raw> {
    let mut request = app.http.post(app.url("/graphql")).json(body);
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    raw(request).await
}

/// `GET /graphql` with the parameters in the query string.
fn get(app: &TestApp, params: &[(&str, &str)]) -> reqwest::RequestBuilder {
    app.http.get(app.url("/graphql")).query(params)
}

/// Asserts a 401 with exactly one UNAUTHENTICATED error and no data.
fn assert_refused_401(reply: &Raw, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {}", reply.text);
    let body = reply.json();
    assert_eq!(
        body["errors"].as_array().map(Vec::len),
        Some(1),
        "{what}: {body}"
    );
    assert_eq!(reply.code().as_deref(), Some("UNAUTHENTICATED"), "{what}");
    assert!(body.get("data").is_none(), "{what}: {body}");
    assert_eq!(reply.header("cache-control"), "private, no-store", "{what}");
}

/// Every kind of credential that is presented but not valid, as `Authorization` values.
async fn invalid_credentials(app: &TestApp) -> anyhow::Result<Vec<(&'static str, String)>> {
    let expired = app.sign_in("expired@example.org").await?;
    let conn = app.database().await?;
    let past = chrono::Utc::now() - chrono::Duration::minutes(1);
    let sql = match conn.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => "UPDATE sessions SET expires_at = $1",
        _ => "UPDATE sessions SET expires_at = ?",
    };
    sea_orm::ConnectionTrait::execute_raw(
        &conn,
        sea_orm::Statement::from_sql_and_values(conn.get_database_backend(), sql, [past.into()]),
    )
    .await?;
    conn.close().await?;
    let signed_out = app.sign_in("signed-out@example.org").await?;
    app.gql(Some(&signed_out), "mutation { signOut }", json!({}))
        .await?
        .ok()?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app
        .create_organisation(&owner, "Revoked Tokens Ltd")
        .await?;
    let made = app.create_api_token(Some(&owner), &org).await?.ok()?;
    let revoked = made["createApiToken"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { revokeApiToken(id: $id) }",
        json!({ "id": made["createApiToken"]["apiToken"]["id"] }),
    )
    .await?
    .ok()?;
    Ok(vec![
        (
            "an unknown session token",
            "Bearer gss_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        ),
        (
            "an unknown API token",
            "Bearer gso_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        ),
        ("an expired session", format!("Bearer {expired}")),
        ("a signed-out session", format!("Bearer {signed_out}")),
        ("a revoked API token", format!("Bearer {revoked}")),
        ("a malformed token", "Bearer not-a-token".to_owned()),
        ("another scheme", "Basic dXNlcjpwYXNz".to_owned()),
        ("a scheme with no token", "Bearer".to_owned()),
    ])
}

async fn a_credential_that_is_not_valid_is_refused_with_401_on_every_operation(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let credentials = invalid_credentials(&app).await?;
    let organisations = app.count("SELECT COUNT(*) FROM organisations").await?;
    let sign_in_links = app.count("SELECT COUNT(*) FROM sign_in_tokens").await?;
    for (what, authorization) in &credentials {
        let public = post(&app, Some(authorization), &json!({ "query": PUBLIC_QUERY })).await?;
        assert_refused_401(&public, &format!("a public query with {what}"));
        let mutation = post(
            &app,
            Some(authorization),
            &json!({ "query": "mutation { createOrganisation(input: { name: \"Sneaky\", kind: OTHER, region: LONDON }) { id } }" }),
        )
        .await?;
        assert_refused_401(&mutation, &format!("a mutation with {what}"));
        let anonymous_mutation = post(
            &app,
            Some(authorization),
            &json!({ "query": "mutation { requestSignIn(email: \"someone@example.org\") }" }),
        )
        .await?;
        assert_refused_401(&anonymous_mutation, &format!("requestSignIn with {what}"));
        let over_get =
            raw(get(&app, &[("query", PUBLIC_QUERY)]).header(header::AUTHORIZATION, authorization))
                .await?;
        assert_refused_401(&over_get, &format!("a GET with {what}"));
        let batch = post(
            &app,
            Some(authorization),
            &json!([{ "query": PUBLIC_QUERY }, { "query": "{ me { id } }" }]),
        )
        .await?;
        assert_refused_401(&batch, &format!("a batch with {what}"));
        assert_eq!(
            batch.header("www-authenticate"),
            "Bearer error=\"invalid_token\""
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM organisations").await?,
        organisations,
        "nothing was created"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sign_in_tokens").await?,
        sign_in_links,
        "no sign-in link was sent"
    );
    // The server is still up, and a valid credential still works.
    let owner = app.sign_in("owner@example.org").await?;
    app.gql(Some(&owner), "{ me { email } }", json!({}))
        .await?
        .ok()?;
    Ok(())
}

async fn a_session_cookie_that_is_no_longer_valid_is_refused_with_401(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let session = app.sign_in("cookie@example.org").await?;
    let cookie = format!("groundswell_session={session}");
    let me = raw(app
        .http
        .post(app.url("/graphql"))
        .header(header::COOKIE, &cookie)
        .json(&json!({ "query": "{ me { email } }" })))
    .await?;
    assert_eq!(me.json()["data"]["me"]["email"], "cookie@example.org");
    app.gql(Some(&session), "mutation { signOut }", json!({}))
        .await?
        .ok()?;
    for (what, cookie) in [
        ("a signed-out session's cookie", cookie.as_str()),
        ("an empty cookie", "groundswell_session="),
        ("an unknown cookie", "groundswell_session=gss_nothing"),
    ] {
        let post = raw(app
            .http
            .post(app.url("/graphql"))
            .header(header::COOKIE, cookie)
            .json(&json!({ "query": PUBLIC_QUERY })))
        .await?;
        assert_refused_401(&post, &format!("POST with {what}"));
        let get = raw(get(&app, &[("query", PUBLIC_QUERY)]).header(header::COOKIE, cookie)).await?;
        assert_refused_401(&get, &format!("GET with {what}"));
    }
    Ok(())
}

async fn no_credential_stays_anonymous(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let reply = post(
        &app,
        None,
        &json!({ "query": "{ me { id } changes { title } }" }),
    )
    .await?;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert!(body["data"]["me"].is_null());
    assert_eq!(body["data"]["changes"].as_array().map(Vec::len), Some(5));
    let needs_someone = post(&app, None, &json!({ "query": "{ myData }" })).await?;
    assert_eq!(needs_someone.status, 200);
    assert_eq!(needs_someone.code().as_deref(), Some("UNAUTHENTICATED"));
    Ok(())
}

async fn a_websocket_with_a_credential_that_is_not_valid_is_refused_at_connection_init(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let credentials = invalid_credentials(&app).await?;
    for (what, authorization) in &credentials {
        let mut request = format!("ws://{}/graphql/ws", app.address).into_client_request()?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
        socket
            .send(Message::text(
                json!({ "type": "connection_init", "payload": { "Authorization": authorization } })
                    .to_string(),
            ))
            .await?;
        let answer = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await?
            .transpose()?;
        match answer {
            Some(Message::Close(Some(frame))) => {
                assert!(
                    frame.reason.contains("UNAUTHENTICATED"),
                    "{what}: {}",
                    frame.reason
                );
            }
            other => panic!("{what}: the connection was not refused: {other:?}"),
        }
    }
    // No credential is anonymous, as before.
    ws_connect(&app, None).await?;
    Ok(())
}

async fn the_registrations_download_refuses_a_credential_that_is_not_valid(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let credentials = invalid_credentials(&app).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let gathering = app.gathering(&convenor, json!({})).await?;
    let slug = gathering["slug"].as_str().unwrap_or_default().to_owned();
    let path = format!("/gatherings/{slug}/registrations.csv");
    for (what, authorization) in &credentials {
        let reply = raw(app
            .http
            .get(app.url(&path))
            .header(header::AUTHORIZATION, authorization))
        .await?;
        assert_eq!(reply.status, 401, "{what}");
        assert_eq!(reply.code().as_deref(), Some("UNAUTHENTICATED"), "{what}");
        assert!(!reply.text.contains("Email"), "{what}: no CSV");
    }
    let cookie = raw(app
        .http
        .get(app.url(&path))
        .header(header::COOKIE, "groundswell_session=gss_gone"))
    .await?;
    assert_eq!(cookie.status, 401);
    assert_eq!(cookie.code().as_deref(), Some("UNAUTHENTICATED"));
    let valid = raw(app
        .http
        .get(app.url(&path))
        .header(header::AUTHORIZATION, format!("Bearer {convenor}")))
    .await?;
    assert_eq!(valid.status, 200, "{}", valid.text);
    Ok(())
}

async fn the_graphql_response_media_type_answers_failures_before_execution_with_400_and_no_data(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let with = |accept: &'static str, body: Value| {
        raw(app
            .http
            .post(app.url("/graphql"))
            .header(header::ACCEPT, accept)
            .json(&body))
    };
    let ok = with(GRAPHQL_RESPONSE, json!({ "query": PUBLIC_QUERY })).await?;
    assert_eq!(ok.status, 200);
    assert!(
        ok.header("content-type").starts_with(GRAPHQL_RESPONSE),
        "{}",
        ok.header("content-type")
    );
    assert_eq!(
        ok.json()["data"]["changes"].as_array().map(Vec::len),
        Some(5)
    );

    for (what, body) in [
        ("a document that does not parse", json!({ "query": "{" })),
        (
            "a document that does not validate",
            json!({ "query": "{ noSuchField }" }),
        ),
        (
            "variables that do not coerce",
            json!({ "query": "query($slug: String!) { gathering(slug: $slug) { id } }", "variables": { "slug": 7 } }),
        ),
    ] {
        let new = with(GRAPHQL_RESPONSE, body.clone()).await?;
        assert_eq!(new.status, 400, "{what}: {}", new.text);
        assert!(new.json().get("data").is_none(), "{what}: {}", new.text);
        assert_eq!(new.code().as_deref(), Some("BAD_USER_INPUT"), "{what}");
        let old = with("application/json", body).await?;
        assert_eq!(old.status, 200, "{what}: {}", old.text);
        assert!(old.header("content-type").starts_with("application/json"));
        assert_eq!(old.code().as_deref(), Some("BAD_USER_INPUT"), "{what}");
    }
    // An error while executing is still 200, with data.
    let executed = with(
        GRAPHQL_RESPONSE,
        json!({ "query": "{ changes { title } myData }" }),
    )
    .await?;
    assert_eq!(executed.status, 200, "{}", executed.text);
    assert_eq!(executed.code().as_deref(), Some("UNAUTHENTICATED"));
    Ok(())
}

async fn a_post_without_a_json_content_type_is_refused_with_415_and_not_executed(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let body =
        json!({ "query": "mutation { requestSignIn(email: \"form@example.org\") }" }).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/json; charset=latin1"),
    ] {
        let mut request = app.http.post(app.url("/graphql")).body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let reply = raw(request).await?;
        assert_eq!(reply.status, 415, "{content_type:?}: {}", reply.text);
        assert_eq!(reply.code().as_deref(), Some("BAD_USER_INPUT"));
        assert!(reply.header("content-type").starts_with("application/json"));
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM sign_in_tokens").await?, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM people").await?, 0);
    Ok(())
}

async fn queries_run_over_get_and_browsers_still_get_graphiql(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let reply = raw(get(
        &app,
        &[
            (
                "query",
                "query Titles($first: Int) { gatherings(first: $first) { totalCount } changes { title } } query Other { __typename }",
            ),
            ("variables", r#"{"first": 5}"#),
            ("operationName", "Titles"),
            ("extensions", r#"{"some": "value"}"#),
        ],
    ))
    .await?;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["data"]["gatherings"]["totalCount"], 0);
    assert_eq!(
        body["data"]["changes"][0]["title"],
        "Communities where everyone belongs"
    );
    assert!(reply.header("content-type").starts_with("application/json"));

    let new =
        raw(get(&app, &[("query", PUBLIC_QUERY)]).header(header::ACCEPT, GRAPHQL_RESPONSE)).await?;
    assert!(new.header("content-type").starts_with(GRAPHQL_RESPONSE));

    let missing = raw(get(&app, &[])).await?;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["errors"][0]["extensions"]["field"], "query");

    let page =
        raw(get(&app, &[]).header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8"))
            .await?;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(page.text.contains("graphiql"), "{}", page.text);
    Ok(())
}

async fn a_mutation_over_get_is_refused_with_405_and_changes_nothing(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let session = app.sign_in("getter@example.org").await?;
    let links = app.count("SELECT COUNT(*) FROM sign_in_tokens").await?;
    for (authorization, query) in [
        (
            None,
            "mutation { requestSignIn(email: \"get@example.org\") }",
        ),
        (
            Some(format!("Bearer {session}")),
            "mutation { createOrganisation(input: { name: \"Over GET\", kind: OTHER, region: LONDON }) { id } }",
        ),
        (None, "subscription { progressUpdatePosted { body } }"),
        (
            None,
            "query Q { changes { title } } mutation M { requestSignIn(email: \"get@example.org\") }",
        ),
    ] {
        let mut params = vec![("query", query)];
        if query.starts_with("query Q") {
            params.push(("operationName", "M"));
        }
        let mut request = get(&app, &params);
        if let Some(authorization) = &authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let reply = raw(request).await?;
        assert_eq!(reply.status, 405, "{query}: {}", reply.text);
        assert_eq!(reply.header("allow"), "POST");
        assert_eq!(reply.code().as_deref(), Some("BAD_USER_INPUT"));
        assert!(reply.json().get("data").is_none());
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sign_in_tokens").await?,
        links
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM organisations").await?, 0);
    Ok(())
}

async fn every_http_refusal_is_json_in_the_graphql_error_shape(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    // 413, with its JSON body, is checked by validation.rs: a client announcing a large body is
    // answered before it has sent it all, which a plain client sees as a reset.
    let refusals = [
        (
            "415",
            raw(app.http.post(app.url("/graphql")).body("{}")).await?,
            415,
            "BAD_USER_INPUT",
        ),
        (
            "405 for another method",
            raw(app.http.put(app.url("/graphql")).json(&json!({}))).await?,
            405,
            "BAD_USER_INPUT",
        ),
        (
            "405 for a mutation over GET",
            raw(get(&app, &[("query", "mutation { signOut }")])).await?,
            405,
            "BAD_USER_INPUT",
        ),
        (
            "400 for a body that is not JSON",
            raw(app
                .http
                .post(app.url("/graphql"))
                .header(header::CONTENT_TYPE, "application/json")
                .body("{ \"not a JSON"))
            .await?,
            400,
            "BAD_USER_INPUT",
        ),
        (
            "400 for a query that is not a string",
            post(&app, None, &json!({ "query": 7 })).await?,
            400,
            "BAD_USER_INPUT",
        ),
        (
            "401",
            post(
                &app,
                Some("Bearer gss_unknown"),
                &json!({ "query": PUBLIC_QUERY }),
            )
            .await?,
            401,
            "UNAUTHENTICATED",
        ),
    ];
    for (what, reply, status, code) in refusals {
        assert_eq!(reply.status.as_u16(), status, "{what}: {}", reply.text);
        assert!(
            reply.header("content-type").starts_with("application/json"),
            "{what}: {}",
            reply.header("content-type")
        );
        let body = reply.json();
        assert!(body["errors"][0]["message"].is_string(), "{what}: {body}");
        assert_eq!(reply.code().as_deref(), Some(code), "{what}: {body}");
    }
    Ok(())
}

async fn a_public_answer_has_an_etag_that_gives_304_until_a_write_changes_it(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let query = "{ gatherings { totalCount nodes { title } } }";
    let first = raw(get(&app, &[("query", query)])).await?;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("cache-control"), "public, max-age=5");
    let etag = first.header("etag").to_owned();
    assert!(
        etag.starts_with('"') && etag.len() > 10,
        "a strong ETag: {etag}"
    );
    assert!(first.header("vary").contains("Authorization"));

    let again = raw(get(&app, &[("query", query)]).header(header::IF_NONE_MATCH, &etag)).await?;
    assert_eq!(again.status, 304);
    assert!(again.text.is_empty(), "no body: {}", again.text);
    assert_eq!(again.header("etag"), etag);

    let convenor = app.convenor("convenor@example.org").await?;
    app.gathering(&convenor, json!({ "title": "A new gathering" }))
        .await?;
    let changed = raw(get(&app, &[("query", query)]).header(header::IF_NONE_MATCH, &etag)).await?;
    assert_eq!(changed.status, 200, "a write changed the answer");
    assert_ne!(changed.header("etag"), etag);
    assert!(changed.text.contains("A new gathering"));
    let newest = changed.header("etag").to_owned();
    let unchanged =
        raw(get(&app, &[("query", query)]).header(header::IF_NONE_MATCH, &newest)).await?;
    assert_eq!(unchanged.status, 304);
    Ok(())
}

async fn a_signed_in_or_failed_or_written_answer_is_never_public(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let session = app.sign_in("private@example.org").await?;
    let signed_in = raw(get(&app, &[("query", PUBLIC_QUERY)]).bearer_auth(&session)).await?;
    assert_eq!(signed_in.status, 200);
    let cookie = raw(get(&app, &[("query", PUBLIC_QUERY)])
        .header(header::COOKIE, format!("groundswell_session={session}")))
    .await?;
    assert_eq!(cookie.status, 200);
    let posted = post(
        &app,
        Some(&format!("Bearer {session}")),
        &json!({ "query": PUBLIC_QUERY }),
    )
    .await?;
    let failed = raw(get(&app, &[("query", "{ changes { title } noSuchField }")])).await?;
    let erring = raw(get(&app, &[("query", "{ changes { title } myData }")])).await?;
    let written = post(
        &app,
        None,
        &json!({ "query": "mutation { requestSignIn(email: \"w@example.org\") }" }),
    )
    .await?;
    for (what, reply) in [
        ("signed in with a bearer token", &signed_in),
        ("signed in with the cookie", &cookie),
        ("signed in over POST", &posted),
        ("a document that does not validate", &failed),
        ("an error while executing", &erring),
        ("a mutation", &written),
    ] {
        assert_eq!(reply.header("cache-control"), "private, no-store", "{what}");
        assert!(reply.headers.get("etag").is_none(), "{what}");
    }
    // The same query anonymously is public: the difference is who asked.
    let anonymous = raw(get(&app, &[("query", PUBLIC_QUERY)])).await?;
    assert_eq!(anonymous.header("cache-control"), "public, max-age=5");
    Ok(())
}

/// For every private field the code lists, a query an anonymous caller can send that resolves
/// it. A private field added to the list without a probe here fails this test.
fn probe(field: &str) -> Option<&'static str> {
    Some(match field {
        "Query.me" => "{ me { id } }",
        "Query.viewer" => "{ viewer { person { id } organisation { id } } }",
        "Query.myData" => "{ myData }",
        "Query.failedMail" => "{ failedMail { id } }",
        "Query.digestPreview" => "{ digestPreview { subject } }",
        "Organisation.viewerRole" => {
            "query($org: String!) { organisation(slug: $org) { name viewerRole } }"
        }
        "Organisation.members" => {
            "query($org: String!) { organisation(slug: $org) { name members { id } } }"
        }
        "Organisation.apiTokens" => {
            "query($org: String!) { organisation(slug: $org) { name apiTokens { id } } }"
        }
        "Organisation.webhooks" => {
            "query($org: String!) { organisation(slug: $org) { name webhooks { id } } }"
        }
        "Gathering.joiningUrl" => "query($g: String!) { gathering(slug: $g) { title joiningUrl } }",
        "Gathering.viewerRegistration" => {
            "query($g: String!) { gathering(slug: $g) { title viewerRegistration { id } } }"
        }
        "Gathering.registrations" => {
            "query($g: String!) { gathering(slug: $g) { title registrations { totalCount } } }"
        }
        "Gathering.accessRequirementTotals" => {
            "query($g: String!) { gathering(slug: $g) { title accessRequirementTotals { count } } }"
        }
        _ => return None,
    })
}

async fn a_private_field_never_lands_in_a_public_answer(db: Backend) -> anyhow::Result<()> {
    use groundswell_api::graphql::visibility::PRIVATE_FIELDS;

    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let gathering = app
        .gathering(
            &convenor,
            json!({ "format": "ONLINE", "venue": null, "inPersonCapacity": null, "onlineCapacity": 20, "joiningUrl": "https://meet.example.org/secret-room" }),
        )
        .await?;
    let org_id = app.create_organisation(&convenor, "Public Org").await?;
    let listed = app
        .gql(None, "{ organisations { nodes { id slug } } }", json!({}))
        .await?
        .ok()?;
    let org = listed["organisations"]["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["id"] == org_id.as_str()))
        .map(|n| n["slug"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let variables = json!({ "g": gathering["slug"], "org": org }).to_string();

    // The control: the same objects' public fields make a public answer.
    let control = raw(get(
        &app,
        &[
            ("query", "query($g: String!, $org: String!) { gathering(slug: $g) { title } organisation(slug: $org) { name } }"),
            ("variables", &variables),
        ],
    ))
    .await?;
    assert_eq!(
        control.header("cache-control"),
        "public, max-age=5",
        "{}",
        control.text
    );

    let mut unprobed = Vec::new();
    for (ty, field) in PRIVATE_FIELDS {
        let name = format!("{ty}.{field}");
        let Some(query) = probe(&name) else {
            unprobed.push(name);
            continue;
        };
        let uses = |v: &str| query.contains(&format!("${v}"));
        let vars = json!({
            "g": if uses("g") { gathering["slug"].clone() } else { Value::Null },
            "org": if uses("org") { json!(org) } else { Value::Null },
        });
        let vars: Value = vars
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .map(Value::Object)
            .unwrap_or_default();
        for reply in [
            raw(get(
                &app,
                &[("query", query), ("variables", &vars.to_string())],
            ))
            .await?,
            post(&app, None, &json!({ "query": query, "variables": vars })).await?,
        ] {
            assert_eq!(reply.status, 200, "{name}: {}", reply.text);
            assert_eq!(
                reply.header("cache-control"),
                "private, no-store",
                "{name} resolved into a public answer: {}",
                reply.text
            );
            assert!(reply.headers.get("etag").is_none(), "{name}");
            assert!(
                !reply.text.contains("secret-room"),
                "{name}: {}",
                reply.text
            );
        }
    }
    assert!(
        unprobed.is_empty(),
        "add an anonymous probe for these private fields to tests/graphql_http.rs: {unprobed:?}"
    );
    Ok(())
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn a_persisted_query_registers_with_its_query_then_runs_from_its_hash_over_get(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let query = "query Titles { changes { title } }";
    let hash = sha256_hex(query);
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } }).to_string();

    let unknown = raw(get(&app, &[("extensions", &extensions)])).await?;
    assert_eq!(unknown.status, 200, "{}", unknown.text);
    assert_eq!(unknown.code().as_deref(), Some("PERSISTED_QUERY_NOT_FOUND"));
    assert_eq!(
        unknown.json()["errors"][0]["message"],
        "PersistedQueryNotFound"
    );
    let unknown_new =
        raw(get(&app, &[("extensions", &extensions)]).header(header::ACCEPT, GRAPHQL_RESPONSE))
            .await?;
    assert_eq!(unknown_new.status, 400);
    assert!(unknown_new.json().get("data").is_none());
    assert_eq!(
        unknown_new.code().as_deref(),
        Some("PERSISTED_QUERY_NOT_FOUND")
    );

    let mismatched = post(
        &app,
        None,
        &json!({ "query": "{ me { id } }", "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } }),
    )
    .await?;
    assert_eq!(mismatched.code().as_deref(), Some("BAD_USER_INPUT"));
    assert_eq!(
        mismatched.json()["errors"][0]["extensions"]["field"],
        "sha256Hash"
    );
    let still_unknown = raw(get(&app, &[("extensions", &extensions)])).await?;
    assert_eq!(
        still_unknown.code().as_deref(),
        Some("PERSISTED_QUERY_NOT_FOUND"),
        "a mismatch registers nothing"
    );

    let registered = post(
        &app,
        None,
        &json!({ "query": query, "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } }),
    )
    .await?;
    assert_eq!(
        registered.json()["data"]["changes"]
            .as_array()
            .map(Vec::len),
        Some(5),
        "{}",
        registered.text
    );

    let by_hash = raw(get(&app, &[("extensions", &extensions)])).await?;
    assert_eq!(by_hash.status, 200);
    assert_eq!(
        by_hash.json()["data"]["changes"].as_array().map(Vec::len),
        Some(5),
        "{}",
        by_hash.text
    );
    assert_eq!(
        by_hash.header("cache-control"),
        "public, max-age=5",
        "{}",
        by_hash.text
    );
    let by_hash_post = post(
        &app,
        None,
        &json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } }),
    )
    .await?;
    assert_eq!(
        by_hash_post.json()["data"]["changes"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );

    // A mutation registered over POST still cannot run over GET.
    let mutation = "mutation { requestSignIn(email: \"apq@example.org\") }";
    let mutation_hash = sha256_hex(mutation);
    let mutation_extensions =
        json!({ "persistedQuery": { "version": 1, "sha256Hash": mutation_hash } });
    post(
        &app,
        None,
        &json!({ "query": mutation, "extensions": mutation_extensions }),
    )
    .await?;
    let links = app.count("SELECT COUNT(*) FROM sign_in_tokens").await?;
    let over_get = raw(get(
        &app,
        &[("extensions", &mutation_extensions.to_string())],
    ))
    .await?;
    assert_eq!(over_get.status, 405);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sign_in_tokens").await?,
        links
    );

    let bad_version = post(
        &app,
        None,
        &json!({ "extensions": { "persistedQuery": { "version": 2, "sha256Hash": hash } } }),
    )
    .await?;
    assert_eq!(bad_version.code().as_deref(), Some("BAD_USER_INPUT"));
    Ok(())
}

async fn graphql_http_audit_passes_every_must_and_should(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let report = node("graphql-audit.mjs", &[&app.url("/graphql")], &[]).await?;
    println!("{report}");
    assert!(report.contains("0 required audits failed"), "{report}");
    assert!(
        !report.contains("\nwarn "),
        "every MAY passes too:\n{report}"
    );
    Ok(())
}

async fn the_standard_introspection_query_runs_over_get(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let query = node("introspection-query.mjs", &[], &[]).await?;
    assert!(query.contains("IntrospectionQuery"), "{query}");
    let reply = raw(get(&app, &[("query", &query)])).await?;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert!(body.get("errors").is_none(), "{}", reply.text);
    let types = body["data"]["__schema"]["types"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(types.iter().any(|t| t["name"] == "Gathering"));
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
    Ok(())
}

async fn graphiql_loads_in_a_browser_from_the_server_alone(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let page = raw(app
        .http
        .get(app.url("/graphql"))
        .header(header::ACCEPT, "text/html"))
    .await?;
    let csp = page.header("content-security-policy");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-eval") && !csp.contains("script-src 'self' 'unsafe-inline'"),
        "{csp}"
    );
    assert!(
        !page.text.contains("http://") && !page.text.contains("https://"),
        "no other origin: {}",
        page.text
    );
    assert!(!page.text.contains("<script>"), "no inline script");
    let asset = raw(app
        .http
        .get(app.url("/assets/graphiql-3.8.3/graphiql.min.js")))
    .await?;
    assert_eq!(asset.status, 200);
    assert!(asset.header("cache-control").contains("immutable"));
    let origin = format!("http://{}", app.address);
    let screenshot = std::env::var("GRAPHIQL_SCREENSHOT").unwrap_or_default();
    let report = node("graphiql.mjs", &[&origin], &[("SCREENSHOT", &screenshot)]).await?;
    println!("{report}");
    Ok(())
}
