//! The outbox and its worker: mail survives a failing SMTP server and a dead process, and
//! arrives once.

use std::{collections::HashSet, sync::atomic::Ordering, time::Duration};

use crate::{helpers::*, on_both_databases};

on_both_databases!(
    mail_refused_by_the_smtp_server_for_a_while_is_delivered_once_it_recovers,
    mail_queued_while_smtp_is_down_is_delivered_by_the_restarted_server,
    a_server_killed_mid_delivery_loses_nothing_and_repeats_nothing,
);

fn assert_each_once(mails: &[Mail], expected: usize) {
    let ids: HashSet<&str> = mails.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(mails.len(), expected, "messages received");
    assert_eq!(ids.len(), expected, "distinct Message-IDs");
}

async fn wait_until(mut check: impl AsyncFnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    for _ in 0..300 {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("condition not met in 15 s")
}

async fn mail_refused_by_the_smtp_server_for_a_while_is_delivered_once_it_recovers(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    app.smtp.refusing.store(true, Ordering::SeqCst);
    for n in 0..5 {
        app.request_sign_in(&format!("patient{n}@example.org"))
            .await?
            .ok()?;
    }
    // Every message is tried and refused at least once, and twice for some.
    wait_until(async || {
        Ok(app
            .count("SELECT COUNT(*) FROM outbox WHERE attempts >= 2")
            .await?
            == 5)
    })
    .await?;
    assert!(app.smtp.messages().is_empty());
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE status = 'SENT'")
            .await?,
        0
    );

    app.smtp.refusing.store(false, Ordering::SeqCst);
    wait_until(async || {
        Ok(app
            .count("SELECT COUNT(*) FROM outbox WHERE status = 'SENT'")
            .await?
            == 5)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_each_once(&app.smtp.messages(), 5);
    Ok(())
}

async fn mail_queued_while_smtp_is_down_is_delivered_by_the_restarted_server(
    db: Backend,
) -> anyhow::Result<()> {
    // Nothing listens on this port yet: every connection is refused.
    let reserved = free_port()?;
    let port = reserved.local_addr()?.port();
    drop(reserved);
    let placeholder = SmtpServer::start()?;
    let mut options = Options::new(&placeholder);
    options.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
    // The kill may land mid-attempt; what the dead server held is taken over after its lease.
    options.mail_lease_seconds = 1;
    let database_url = fresh_database(db).await?;
    let first = start(database_url.clone(), placeholder.clone(), options.clone()).await?;
    for n in 0..5 {
        first
            .request_sign_in(&format!("queued{n}@example.org"))
            .await?
            .ok()?;
    }
    wait_until(async || {
        Ok(first
            .count("SELECT COUNT(*) FROM outbox WHERE attempts >= 1 AND status = 'PENDING'")
            .await?
            == 5)
    })
    .await?;
    first.kill();

    let smtp = SmtpServer::start_on(std::net::TcpListener::bind(("127.0.0.1", port))?)?;
    let second = start(database_url, smtp.clone(), options).await?;
    let mut mails = Vec::new();
    for n in 0..5 {
        mails.extend(smtp.wait_for(&format!("queued{n}@example.org"), 1).await?);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_each_once(&smtp.messages(), 5);
    // The restarted server derives the same working links.
    let token = mails[0].sign_in_token()?;
    second
        .gql(
            None,
            "mutation($t: String!) { signIn(token: $t) { token } }",
            serde_json::json!({ "t": token }),
        )
        .await?
        .ok()?;
    Ok(())
}

async fn a_server_killed_mid_delivery_loses_nothing_and_repeats_nothing(
    db: Backend,
) -> anyhow::Result<()> {
    let smtp = SmtpServer::start()?;
    smtp.stalled.store(true, Ordering::SeqCst);
    let mut options = Options::new(&smtp);
    options.mail_lease_seconds = 1;
    let database_url = fresh_database(db).await?;
    let first = start(database_url.clone(), smtp.clone(), options.clone()).await?;
    for n in 0..5 {
        first
            .request_sign_in(&format!("inflight{n}@example.org"))
            .await?
            .ok()?;
    }
    // The worker is in the middle of SMTP conversations when the process dies.
    wait_until(async || Ok(smtp.sessions_started.load(Ordering::SeqCst) >= 1)).await?;
    assert!(
        first
            .count("SELECT COUNT(*) FROM outbox WHERE status = 'SENDING'")
            .await?
            >= 1
    );
    first.kill();
    smtp.stalled.store(false, Ordering::SeqCst);

    let _second = start(database_url, smtp.clone(), options).await?;
    for n in 0..5 {
        smtp.wait_for(&format!("inflight{n}@example.org"), 1)
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_each_once(&smtp.messages(), 5);
    Ok(())
}
