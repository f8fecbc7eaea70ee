//! Tokens and secrets are stored only as hashes and never written to the logs.

use sea_orm::{FromQueryResult, JsonValue, Statement};
use serde_json::json;

use crate::{helpers::*, on_both_databases};

on_both_databases!(no_token_or_secret_is_stored_in_the_database_or_written_to_the_logs);

const TABLES: [&str; 8] = [
    "changes",
    "people",
    "sign_in_tokens",
    "sessions",
    "organisations",
    "organisation_members",
    "api_tokens",
    "outbox",
];

async fn no_token_or_secret_is_stored_in_the_database_or_written_to_the_logs(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let email = format!("keeper.{}@example.org", uuid::Uuid::now_v7().simple());
    let link_token = app.sign_in_token(&email).await?;
    let session = app
        .gql(
            None,
            "mutation($t: String!) { signIn(token: $t) { token } }",
            json!({ "t": link_token }),
        )
        .await?
        .ok()?["signIn"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let org = app.create_organisation(&session, "Secret Keepers").await?;
    let api_token =
        app.create_api_token(Some(&session), &org).await?.ok()?["createApiToken"]["token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    app.gql(
        Some(&api_token),
        "{ viewer { organisation { name } } }",
        json!({}),
    )
    .await?
    .ok()?;
    app.gql(Some(&session), "{ me { email } }", json!({}))
        .await?
        .ok()?;
    let _ = app
        .http
        .get(app.url(&format!("/sign-in?token={link_token}")))
        .send()
        .await?;

    let secrets = [
        ("sign-in token", link_token.as_str()),
        ("session token", session.as_str()),
        ("API token", api_token.as_str()),
        ("secret key", app.options.secret_key.as_str()),
    ];
    for (_, secret) in &secrets {
        assert!(secret.len() >= 40, "a real token: {secret}");
    }

    let conn = app.database().await?;
    let mut dump = String::new();
    for table in TABLES {
        let rows = JsonValue::find_by_statement(Statement::from_string(
            conn.get_database_backend(),
            format!("SELECT * FROM {table}"),
        ))
        .all(&conn)
        .await?;
        dump.push_str(&serde_json::to_string(&rows)?);
    }
    assert!(dump.contains(&email), "the dump holds the data");
    if let Some(path) = app.database_url.strip_prefix("sqlite://") {
        for file in [path.to_owned(), format!("{path}-wal")] {
            if let Ok(bytes) = std::fs::read(&file) {
                dump.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    for (what, secret) in &secrets {
        assert!(!dump.contains(secret), "the {what} is stored in plain text");
    }

    let logs = captured_logs();
    assert!(logs.contains("http.request"), "requests are logged");
    for (what, secret) in &secrets {
        assert!(!logs.contains(secret), "the {what} is in the logs");
    }
    assert!(!logs.contains(&email), "an email address is in the logs");
    Ok(())
}
