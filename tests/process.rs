//! The real `groundswell` binary, run as a process: how it stops.

use std::{sync::atomic::Ordering, time::Duration};

use crate::{helpers::*, on_both_databases};

on_both_databases!(sigterm_lets_mail_in_flight_finish_before_the_process_exits);

async fn sigterm_lets_mail_in_flight_finish_before_the_process_exits(
    db: Backend,
) -> anyhow::Result<()> {
    let smtp = SmtpServer::start()?;
    smtp.stalled.store(true, Ordering::SeqCst);
    let database_url = fresh_database(db).await?;
    let port = free_port()?.local_addr()?.port();
    let mail_dir = std::env::temp_dir()
        .join("groundswell-tests")
        .join(uuid::Uuid::now_v7().to_string());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_groundswell"))
        .arg("serve")
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", &database_url)
        .env("SMTP_URL", smtp.url())
        .env("MAIL_DIR", &mail_dir)
        .env(
            "SECRET_KEY",
            groundswell_domain::secrets::SecretKey::generate().encode(),
        )
        .env("MAIL_POLL_INTERVAL_MS", "50")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/graphql");
    let mut up = false;
    for _ in 0..200 {
        if client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::ensure!(up, "the server did not start");
    let reply: serde_json::Value = client
        .post(&url)
        .json(&serde_json::json!({ "query": "mutation { requestSignIn(email: \"last@example.org\") }" }))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(reply["data"]["requestSignIn"], true);
    // The worker is now part-way through sending, held at DATA by the stalled server.
    for _ in 0..200 {
        if smtp.sessions_started.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(smtp.sessions_started.load(Ordering::SeqCst), 1);

    let pid = child.id().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        child.try_wait()?.is_none(),
        "it waits for the mail it is sending"
    );
    smtp.stalled.store(false, Ordering::SeqCst);

    let exit = tokio::time::timeout(Duration::from_secs(15), child.wait()).await??;
    assert!(exit.success(), "{exit:?}");
    assert_eq!(smtp.wait_for("last@example.org", 1).await?.len(), 1);
    assert!(
        client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_err(),
        "it stopped serving"
    );
    Ok(())
}
