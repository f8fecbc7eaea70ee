//! The real `groundswell` binary, run as a process: how it stops.

use std::{sync::atomic::Ordering, time::Duration};

use crate::{helpers::*, on_both_databases};

on_both_databases!(sigterm_lets_mail_in_flight_finish_before_the_process_exits);

async fn sigterm_lets_mail_in_flight_finish_before_the_process_exits(
    db: Backend,
) -> anyhow::Result<()> {
    let smtp = SmtpServer::start()?;
    smtp.stalled.hold();
    let database_url = fresh_database(db).await?;
    let mail_dir = std::env::temp_dir()
        .join("groundswell-tests")
        .join(uuid::Uuid::now_v7().to_string());
    let secret = groundswell_domain::secrets::SecretKey::generate().encode();
    let smtp_url = smtp.url();
    let mail_dir = mail_dir.display().to_string();
    let mut server = ServerProcess::start(&[
        ("DATABASE_URL", &database_url),
        ("SMTP_URL", &smtp_url),
        ("MAIL_DIR", &mail_dir),
        ("SECRET_KEY", &secret),
        ("MAIL_POLL_INTERVAL_MS", "50"),
        // The worker's shutdown is the event waited for below.
        (
            "RUST_LOG",
            "warn,groundswell_api::startup=info,groundswell_api::mail=info",
        ),
    ])
    .await?;
    let client = reqwest::Client::new();
    let reply: serde_json::Value = client
        .post(server.url("/graphql"))
        .json(&serde_json::json!({ "query": "mutation { requestSignIn(email: \"last@example.org\") }" }))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(reply["data"]["requestSignIn"], true);
    // The worker is now part-way through sending, held at DATA by the stalled server.
    wait_until(
        "the worker starting an SMTP conversation",
        Duration::from_secs(30),
        async || Ok(smtp.sessions_started.load(Ordering::SeqCst) > 0),
    )
    .await?;
    assert_eq!(smtp.sessions_started.load(Ordering::SeqCst), 1);

    let pid = server.child.id().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    assert!(status.success());
    // The process has taken the signal: it says it is shutting down.
    wait_until(
        "the server saying it is shutting down",
        Duration::from_secs(30),
        async || Ok(server.logged("shutting down") > 0),
    )
    .await?;
    // It stops taking requests, but not before the mail it is sending has gone.
    wait_until(
        "the server no longer answering",
        Duration::from_secs(30),
        async || Ok(client.get(server.url("/healthz")).send().await.is_err()),
    )
    .await?;
    assert!(
        server.child.try_wait()?.is_none(),
        "it waits for the mail it is sending"
    );
    assert_eq!(
        server.logged("mail delivery stopped"),
        0,
        "the mail worker stopped mid-message"
    );
    smtp.stalled.release();

    let exit = tokio::time::timeout(Duration::from_secs(15), server.child.wait()).await??;
    assert!(exit.success(), "{exit:?}");
    assert_eq!(smtp.messages_to("last@example.org").len(), 1);
    assert!(
        client.get(server.url("/healthz")).send().await.is_err(),
        "it stopped serving"
    );
    Ok(())
}
