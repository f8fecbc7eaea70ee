//! Passwordless sign-in: links by real SMTP, sessions, one use, expiry, sign-out, limits.

use anyhow::Context;
use serde_json::json;

use crate::{helpers::*, on_both_databases};

/// What a browser keeps from a page with a form: its visitor cookie (`name=value`) and the
/// form's CSRF token, read from the page as a browser would.
pub(crate) async fn page_form(app: &TestApp, path: &str) -> anyhow::Result<(String, String)> {
    let page = app.http.get(app.url(path)).send().await?;
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("groundswell_visitor="))
        .and_then(|v| v.split(';').next())
        .context("no visitor cookie")?
        .to_owned();
    let html = page.text().await?;
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).context("no csrf field")? + marker.len();
    let end = html[start..].find('"').context("unterminated csrf")?;
    Ok((cookie, html[start..start + end].to_owned()))
}

/// The session cookie (`name=value`) a response sets, if any.
fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("groundswell_session=") && !v.contains("Max-Age=0"))
        .map(str::to_owned)
}

async fn a_sign_in_post_without_the_visitors_csrf_token_is_refused_and_uses_nothing_up(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let token = app.sign_in_token("guarded@example.org").await?;
    let path = format!("/sign-in?token={token}");
    let (cookie, csrf) = page_form(&app, &path).await?;

    // No token at all, a token without its cookie, and another visitor's token.
    let (other_cookie, _) = page_form(&app, &path).await?;
    type Attempt<'a> = (Option<&'a str>, Vec<(&'a str, &'a str)>);
    let attempts: [Attempt; 3] = [
        (Some(&cookie), vec![("token", &token)]),
        (None, vec![("csrf", &csrf), ("token", &token)]),
        (
            Some(&other_cookie),
            vec![("csrf", &csrf), ("token", &token)],
        ),
    ];
    for (jar, form) in attempts {
        let mut post = app.http.post(app.url("/sign-in")).form(&form);
        if let Some(jar) = jar {
            post = post.header("cookie", jar);
        }
        let refused = post.send().await?;
        assert_eq!(refused.status(), 403);
        assert_eq!(session_cookie(&refused), None);
        let html = refused.text().await?;
        assert!(html.contains("This form could not be sent"), "{html}");
        assert!(html.contains("/static/pages.css"), "{html}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await?, 0);

    // The link still works from its own page.
    let own = app
        .http
        .post(app.url("/sign-in"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("token", token.as_str())])
        .send()
        .await?;
    assert_eq!(own.status(), 200);
    assert!(session_cookie(&own).is_some());
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await?, 1);
    Ok(())
}

async fn the_sign_in_link_page_is_an_attendee_page_with_an_easy_read_version(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let token = app.sign_in_token("reader@example.org").await?;
    let standard = app
        .http
        .get(app.url(&format!("/sign-in?token={token}")))
        .send()
        .await?;
    let csp = standard
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = standard.text().await?;
    assert!(html.contains("Skip to main content"), "{html}");
    assert!(
        !html.contains("<style") && !html.contains("style="),
        "{html}"
    );
    assert!(!html.contains("class=\"easy\""), "{html}");
    let easy = app
        .http
        .get(app.url(&format!("/sign-in?token={token}&read=easy")))
        .send()
        .await?
        .text()
        .await?;
    assert!(easy.contains("<body class=\"easy\">"), "{easy}");
    assert!(easy.contains("/static/icons/key.svg"), "{easy}");
    assert!(easy.contains("Press the button to sign in."), "{easy}");
    assert!(easy.contains(&token));
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await?, 0);
    Ok(())
}

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
    a_sign_in_post_without_the_visitors_csrf_token_is_refused_and_uses_nothing_up,
    the_sign_in_link_page_is_an_attendee_page_with_an_easy_read_version,
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
    assert_eq!(session_cookie(&forged), None);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await?, 0);
    let (cookie, csrf) = page_form(&app, &format!("/sign-in?token={token}")).await?;
    let own = app
        .http
        .post(app.url("/sign-in"))
        .header("sec-fetch-site", "same-origin")
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("token", token.as_str())])
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

    let mails = app.mail_to("ada.lovelace@example.org", 1).await?;
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

    // The button posts the page's CSRF token with the visitor cookie the page set.
    let (visitor, csrf) = page_form(&app, &format!("/sign-in?token={token}")).await?;
    let response = app
        .http
        .post(app.url("/sign-in"))
        .header("cookie", &visitor)
        .form(&[("csrf", csrf.as_str()), ("token", token.as_str())])
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let cookie = session_cookie(&response).unwrap_or_default();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    let done = response.text().await?;
    assert!(done.contains("You are signed in"), "{done}");
    assert!(done.contains("href=\"/my/registrations\""), "{done}");
    assert!(done.contains("href=\"/\""), "{done}");
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
        .header("cookie", &visitor)
        .form(&[("csrf", csrf.as_str()), ("token", token.as_str())])
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
