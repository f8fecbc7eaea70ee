//! Passwordless sign-in: links by real SMTP, sessions, one use, expiry, sign-out, limits.

use serde_json::json;

use crate::{helpers::*, on_both_databases};

on_both_databases!(
    sign_in_link_arrives_by_smtp_and_gives_a_session,
    request_sign_in_never_tells_whether_an_account_exists,
    a_sign_in_token_works_only_once,
    an_expired_sign_in_token_is_refused,
    fifty_concurrent_sign_ins_with_one_token_make_exactly_one_session,
    sign_out_ends_the_session,
    sign_in_page_get_leaves_the_token_and_post_sets_a_session_cookie,
    sign_in_requests_are_limited_per_email_address,
    sign_in_requests_are_limited_per_client_address,
    another_site_cannot_post_the_sign_in_form,
    knowing_who_is_calling_costs_one_statement,
);

async fn knowing_who_is_calling_costs_one_statement(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let session = app.sign_in("caller@example.org").await?;
    let query = "{ viewer { __typename } changes { pledgeCount } }";
    let (anonymous, anonymous_count) = app.gql_counting(None, query, json!({})).await?;
    anonymous.ok()?;
    let (signed_in, signed_in_count) = app.gql_counting(Some(&session), query, json!({})).await?;
    signed_in.ok()?;
    assert_eq!(signed_in_count, anonymous_count + 1);
    Ok(())
}

async fn another_site_cannot_post_the_sign_in_form(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let token = app.sign_in_token("target@example.org").await?;
    let forged = app
        .http
        .post(app.url("/sign-in"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("token", token.as_str())])
        .send()
        .await?;
    assert_eq!(forged.status(), 403);
    assert!(forged.headers().get("set-cookie").is_none());
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await?, 0);
    let own = app
        .http
        .post(app.url("/sign-in"))
        .header("sec-fetch-site", "same-origin")
        .form(&[("token", token.as_str())])
        .send()
        .await?;
    assert_eq!(own.status(), 200);
    Ok(())
}

const ME: &str = "{ me { id email role displayName timeZone } }";

async fn sign_in_link_arrives_by_smtp_and_gives_a_session(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    app.request_sign_in("  Ada.Lovelace@Example.ORG ")
        .await?
        .ok()?;

    let mails = app.smtp.wait_for("ada.lovelace@example.org", 1).await?;
    let mail = &mails[0];
    assert_eq!(mail.from, "noreply@groundswell.test");
    assert_eq!(mail.subject, "Your link to sign in to Groundswell");
    assert!(
        mail.html.contains("Sign in"),
        "the HTML part has the button"
    );
    assert!(
        mail.message_id.ends_with("@groundswell.test"),
        "{}",
        mail.message_id
    );
    let token = mail.sign_in_token()?;
    assert!(
        mail.text
            .contains(&format!("http://groundswell.test/sign-in?token={token}"))
    );
    assert!(
        mail.html
            .contains(&format!("http://groundswell.test/sign-in?token={token}"))
    );

    let data = app
        .gql(
            None,
            "mutation($t: String!) { signIn(token: $t) { token person { email role } } }",
            json!({ "t": token }),
        )
        .await?
        .ok()?;
    assert_eq!(
        data["signIn"]["person"]["email"],
        "ada.lovelace@example.org"
    );
    assert_eq!(data["signIn"]["person"]["role"], "ATTENDEE");
    let session = data["signIn"]["token"].as_str().unwrap_or_default();

    let me = app.gql(Some(session), ME, json!({})).await?.ok()?;
    assert_eq!(me["me"]["email"], "ada.lovelace@example.org");
    assert_eq!(me["me"]["timeZone"], "Europe/London");
    let anonymous = app.gql(None, ME, json!({})).await?.ok()?;
    assert!(anonymous["me"].is_null());
    Ok(())
}

async fn request_sign_in_never_tells_whether_an_account_exists(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    app.sign_in("known@example.org").await?;
    let known = app.request_sign_in("known@example.org").await?.ok()?;
    let unknown = app.request_sign_in("unknown@example.org").await?.ok()?;
    assert_eq!(known, unknown);
    assert_eq!(known["requestSignIn"], true);
    Ok(())
}

async fn a_sign_in_token_works_only_once(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let token = app.sign_in_token("once@example.org").await?;
    let sign_in = "mutation($t: String!) { signIn(token: $t) { token } }";
    app.gql(None, sign_in, json!({ "t": token })).await?.ok()?;

    let again = app.gql(None, sign_in, json!({ "t": token })).await?;
    assert_eq!(again.code(), Some("UNAUTHENTICATED"));
    assert!(
        again.message().contains("already been used"),
        "{}",
        again.message()
    );
    let made_up = app
        .gql(None, sign_in, json!({ "t": "gsi_nonsense" }))
        .await?;
    assert_eq!(made_up.code(), Some("UNAUTHENTICATED"));
    Ok(())
}

async fn an_expired_sign_in_token_is_refused(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let token = app.sign_in_token("late@example.org").await?;
    // Thirty-one minutes pass.
    let conn = app.database().await?;
    let past = chrono::Utc::now() - chrono::Duration::minutes(1);
    sea_orm::ConnectionTrait::execute_raw(
        &conn,
        sea_orm::Statement::from_sql_and_values(
            conn.get_database_backend(),
            match db {
                Backend::Postgres => "UPDATE sign_in_tokens SET expires_at = $1",
                Backend::Sqlite => "UPDATE sign_in_tokens SET expires_at = ?",
            },
            [past.into()],
        ),
    )
    .await?;
    let reply = app
        .gql(
            None,
            "mutation($t: String!) { signIn(token: $t) { token } }",
            json!({ "t": token }),
        )
        .await?;
    assert_eq!(reply.code(), Some("UNAUTHENTICATED"));
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await?, 0);
    Ok(())
}

async fn fifty_concurrent_sign_ins_with_one_token_make_exactly_one_session(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let token = app.sign_in_token("rush@example.org").await?;
    let attempts = (0..50).map(|_| {
        app.gql(
            None,
            "mutation($t: String!) { signIn(token: $t) { token } }",
            json!({ "t": token }),
        )
    });
    let replies = futures::future::join_all(attempts).await;
    let mut sessions = 0;
    for reply in replies {
        let reply = reply?;
        match reply.code() {
            None => sessions += 1,
            Some(code) => assert_eq!(code, "UNAUTHENTICATED", "{:?}", reply.body),
        }
    }
    assert_eq!(sessions, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await?, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM people").await?, 1);
    Ok(())
}

async fn sign_out_ends_the_session(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let session = app.sign_in("leaving@example.org").await?;
    let other = app.sign_in("leaving@example.org").await?;
    app.gql(Some(&session), "mutation { signOut }", json!({}))
        .await?
        .ok()?;

    // The ended session is refused outright (HTTP 401), never read as nobody.
    let me = app.gql(Some(&session), ME, json!({})).await?;
    assert_eq!((me.status, me.code()), (401, Some("UNAUTHENTICATED")));
    let needs_person = app
        .gql(Some(&session), "mutation { signOut }", json!({}))
        .await?;
    assert_eq!(
        (needs_person.status, needs_person.code()),
        (401, Some("UNAUTHENTICATED"))
    );
    let still = app.gql(Some(&other), ME, json!({})).await?.ok()?;
    assert_eq!(
        still["me"]["email"], "leaving@example.org",
        "other sessions go on"
    );
    Ok(())
}

async fn sign_in_page_get_leaves_the_token_and_post_sets_a_session_cookie(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let token = app.sign_in_token("browser@example.org").await?;

    // A mail scanner fetching the link twice uses nothing up.
    for _ in 0..2 {
        let page = app
            .http
            .get(app.url(&format!("/sign-in?token={token}")))
            .send()
            .await?;
        assert_eq!(page.status(), 200);
        let html = page.text().await?;
        assert!(html.contains("<button"), "{html}");
        assert!(html.contains(&token));
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await?, 0);

    let response = app
        .http
        .post(app.url("/sign-in"))
        .form(&[("token", token.as_str())])
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap_or_default().to_owned();

    let me = app
        .http
        .post(app.url("/graphql"))
        .header("cookie", &pair)
        .json(&json!({ "query": ME }))
        .send()
        .await?
        .json::<serde_json::Value>()
        .await?;
    assert_eq!(me["data"]["me"]["email"], "browser@example.org");

    let again = app
        .http
        .post(app.url("/sign-in"))
        .form(&[("token", token.as_str())])
        .send()
        .await?;
    assert_eq!(again.status(), 400);
    assert!(
        again
            .text()
            .await?
            .contains("expired or has already been used")
    );
    Ok(())
}

async fn sign_in_requests_are_limited_per_email_address(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    for _ in 0..5 {
        app.request_sign_in("eager@example.org").await?.ok()?;
    }
    let sixth = app.request_sign_in("eager@example.org").await?;
    assert_eq!(sixth.code(), Some("RATE_LIMITED"));
    app.request_sign_in("someone.else@example.org")
        .await?
        .ok()?;
    Ok(())
}

async fn sign_in_requests_are_limited_per_client_address(db: Backend) -> anyhow::Result<()> {
    let smtp = SmtpServer::start()?;
    let mut options = Options::new(&smtp);
    options.sign_in_requests_per_minute = 3;
    let app = start(fresh_database(db).await?, smtp, options).await?;
    for n in 0..3 {
        app.request_sign_in(&format!("person{n}@example.org"))
            .await?
            .ok()?;
    }
    let fourth = app.request_sign_in("person4@example.org").await?;
    assert_eq!(fourth.code(), Some("RATE_LIMITED"));
    assert!(
        fourth.message().contains("Wait a minute"),
        "{}",
        fourth.message()
    );
    Ok(())
}
