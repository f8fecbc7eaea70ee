//! Bad input gets a clear BAD_USER_INPUT naming the field, never a 500, and changes nothing.

use serde_json::{Value, json};

use crate::{helpers::*, on_both_databases};

on_both_databases!(
    bad_fields_are_named_and_nothing_is_written,
    oversized_and_malformed_requests_are_refused_clearly,
    deep_complex_and_batched_queries_are_bounded,
);

async fn bad_fields_are_named_and_nothing_is_written(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let session = app.sign_in("careful@example.org").await?;
    let create =
        "mutation($input: CreateOrganisationInput!) { createOrganisation(input: $input) { id } }";
    let org = |fields: Value| {
        let mut input = json!({ "name": "Good Name", "kind": "COUNCIL", "region": "LONDON" });
        if let (Some(input), Some(fields)) = (input.as_object_mut(), fields.as_object()) {
            input.extend(fields.clone());
        }
        json!({ "input": input })
    };
    let cases: Vec<(&str, Option<&str>, &str, Value, &str)> = vec![
        (
            "malformed email",
            None,
            "mutation($e: String!) { requestSignIn(email: $e) }",
            json!({ "e": "not-an-email" }),
            "email",
        ),
        (
            "empty email",
            None,
            "mutation($e: String!) { requestSignIn(email: $e) }",
            json!({ "e": "" }),
            "email",
        ),
        (
            "empty name",
            Some(&session),
            create,
            org(json!({ "name": "" })),
            "name",
        ),
        (
            "blank name",
            Some(&session),
            create,
            org(json!({ "name": "   " })),
            "name",
        ),
        (
            "100 KB name",
            Some(&session),
            create,
            org(json!({ "name": "x".repeat(100_000) })),
            "name",
        ),
        (
            "bad slug",
            Some(&session),
            create,
            org(json!({ "slug": "Not A Slug" })),
            "slug",
        ),
        (
            "script website",
            Some(&session),
            create,
            org(json!({ "website": "javascript:alert(1)" })),
            "website",
        ),
        (
            "unknown enum in variables",
            Some(&session),
            create,
            org(json!({ "kind": "SHOP" })),
            "kind",
        ),
        (
            "page too large",
            None,
            "{ organisations(first: 101) { totalCount } }",
            json!({}),
            "first",
        ),
        (
            "bad cursor",
            None,
            "{ organisations(after: \"nope\") { totalCount } }",
            json!({}),
            "after",
        ),
        (
            // base64url of "offset:18446744073709551615"
            "huge gatherings cursor",
            None,
            "{ gatherings(after: \"b2Zmc2V0OjE4NDQ2NzQ0MDczNzA5NTUxNjE1\") { totalCount } }",
            json!({}),
            "after",
        ),
        (
            "bad id",
            Some(&session),
            "mutation { createApiToken(organisationId: \"not-an-id\", name: \"x\") { token } }",
            json!({}),
            "organisationId",
        ),
        (
            "empty token name",
            Some(&session),
            "mutation($o: ID!) { createApiToken(organisationId: $o, name: \" \") { token } }",
            json!({ "o": uuid::Uuid::now_v7().to_string() }),
            "name",
        ),
        (
            "unknown time zone",
            Some(&session),
            "mutation { updateDigestPreferences(input: { timeZone: \"Mars/Olympus\" }) { id } }",
            json!({}),
            "timeZone",
        ),
        (
            "hour out of range",
            Some(&session),
            "mutation { updateDigestPreferences(input: { hour: 24 }) { id } }",
            json!({}),
            "hour",
        ),
        (
            "weekday out of range",
            Some(&session),
            "mutation { updateDigestPreferences(input: { weekday: 0 }) { id } }",
            json!({}),
            "weekday",
        ),
        (
            "unknown enum literal",
            Some(&session),
            "mutation { createOrganisation(input: { name: \"A\", kind: SHOP, region: LONDON }) { id } }",
            json!({}),
            "kind",
        ),
    ];
    for (case, credential, query, variables, field) in cases {
        let reply = app.gql(credential, query, variables).await?;
        assert_ne!(reply.status, 500, "{case}");
        assert_eq!(
            reply.code(),
            Some("BAD_USER_INPUT"),
            "{case}: {:?}",
            reply.body
        );
        assert_eq!(reply.field(), Some(field), "{case}: {:?}", reply.body);
        assert!(reply.message().len() < 400, "{case}: a short message");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM organisations").await?, 0);
    let prefs = app
        .gql(
            Some(&session),
            "{ me { digestPreferences { hour weekday timeZone } } }",
            json!({}),
        )
        .await?
        .ok()?;
    assert_eq!(
        prefs["me"]["digestPreferences"],
        json!({ "hour": 8, "weekday": 1, "timeZone": "Europe/London" })
    );
    Ok(())
}

async fn oversized_and_malformed_requests_are_refused_clearly(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let huge = json!({
        "query": "mutation($input: CreateOrganisationInput!) { createOrganisation(input: $input) { id } }",
        "variables": { "input": { "name": "x".repeat(10 * 1024 * 1024), "kind": "COUNCIL", "region": "LONDON" } },
    });
    // A client announcing 10 MB is answered before it sends it all.
    let body = serde_json::to_vec(&huge)?;
    let (status, reply) = raw_post(
        &app,
        &format!("Content-Length: {}\r\n", body.len()),
        &body[..64 * 1024],
    )
    .await?;
    assert_eq!(status, 413, "{reply}");
    let reply: Value = serde_json::from_str(&reply)?;
    assert_eq!(
        reply["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{reply}"
    );
    assert!(
        reply["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("too large")
    );

    // Streamed without a length, the body is still capped as it is read.
    let mut chunked = Vec::new();
    for piece in body[..1536 * 1024].chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    let (status, _) = raw_post(&app, "Transfer-Encoding: chunked\r\n", &chunked).await?;
    assert_eq!(status, 413);
    assert_eq!(app.count("SELECT COUNT(*) FROM organisations").await?, 0);

    let not_json = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body("{ this is not json")
        .send()
        .await?;
    assert_eq!(not_json.status(), 400);
    let body: Value = not_json.json().await?;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

    let not_graphql = app
        .post_json(None, &json!({ "query": "{ changes { " }))
        .await?;
    assert_ne!(not_graphql.status, 500);
    assert_eq!(not_graphql.code(), Some("BAD_USER_INPUT"));
    assert_eq!(app.count("SELECT COUNT(*) FROM organisations").await?, 0);
    Ok(())
}

async fn deep_complex_and_batched_queries_are_bounded(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let session = app.sign_in("deep@example.org").await?;

    let mut deep = "name".to_owned();
    for _ in 0..4 {
        deep = format!("organisation {{ members {{ person {{ organisations {{ {deep} }} }} }} }}");
    }
    let reply = app
        .gql(
            Some(&session),
            &format!("{{ me {{ organisations {{ {deep} }} }} }}"),
            json!({}),
        )
        .await?;
    assert_eq!(reply.code(), Some("BAD_USER_INPUT"), "{:?}", reply.body);
    assert!(reply.message().contains("deep"), "{}", reply.message());

    let aliases: String = (0..3000)
        .map(|n| format!("a{n}: changes {{ title }} "))
        .collect();
    let reply = app
        .gql(None, &format!("{{ {aliases} }}"), json!({}))
        .await?;
    assert_eq!(reply.code(), Some("BAD_USER_INPUT"), "{:?}", reply.body);
    assert!(reply.message().contains("complex"), "{}", reply.message());

    let one = json!({ "query": "{ changes { title } }" });
    let batch = app.post_json(None, &json!([one, one])).await?;
    assert_eq!(batch.status, 200);
    assert_eq!(
        batch.body[1]["data"]["changes"][0]["title"],
        "Communities where everyone belongs"
    );
    let too_many = app
        .post_json(None, &Value::Array(vec![one.clone(); 11]))
        .await?;
    assert_eq!(too_many.status, 400);
    assert_eq!(too_many.code(), Some("BAD_USER_INPUT"));
    Ok(())
}

/// Posts to /graphql over a bare TCP connection, sending `body` (perhaps only part of what the
/// headers announce), and reads the status and body of the answer.
async fn raw_post(
    app: &TestApp,
    length_header: &str,
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.address).await?;
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{length_header}Connection: close\r\n\r\n",
        app.address
    );
    stream.write_all(head.as_bytes()).await?;
    // The server may answer and close before taking everything; that is the point.
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
