//! The outbox and its worker: mail survives a failing SMTP server and a dead process, and
//! arrives once.

use std::{collections::HashSet, sync::atomic::Ordering, time::Duration};

use chrono::Utc;
use serde_json::json;

use crate::{helpers::*, on_both_databases};

on_both_databases!(
    mail_refused_by_the_smtp_server_for_a_while_is_delivered_once_it_recovers,
    mail_queued_while_smtp_is_down_is_delivered_by_the_restarted_server,
    a_server_killed_mid_delivery_loses_nothing_and_repeats_nothing,
    a_message_keeps_every_character_its_words_were_written_in,
);

fn assert_each_once(mails: &[Mail], expected: usize) {
    let ids: HashSet<&str> = mails.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(mails.len(), expected, "messages received");
    assert_eq!(ids.len(), expected, "distinct Message-IDs");
}

/// The outbox stores a message's words as JSON text: quotes, backslashes, accents, scripts
/// and emoji written by a convenor come out of the mail exactly as they went in.
async fn a_message_keeps_every_character_its_words_were_written_in(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let title = r#"Zoë's "café" circle \ 東京 — 🌱 {"a": [1]}"#;
    let gathering = app.gathering(&convenor, json!({ "title": title })).await?;
    let attendee = app.sign_in("attendee@example.org").await?;
    app.register(&attendee, &gathering["id"], json!({}))
        .await?
        .ok()?;
    let mails = app.mail_to("attendee@example.org", 1).await?;
    let mail = mails
        .iter()
        .find(|m| m.subject.contains("is confirmed"))
        .ok_or_else(|| anyhow::anyhow!("no confirmation among {mails:?}"))?;
    assert!(mail.subject.contains(title), "{}", mail.subject);
    assert!(mail.text.contains(title), "{}", mail.text);
    Ok(())
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
    // Every message is tried and refused, and tried again once its back-off is over.
    app.drain().await?;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE attempts = 1")
            .await?,
        5
    );
    app.drain_as_of(Utc::now() + chrono::Duration::minutes(1))
        .await?;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE attempts >= 2")
            .await?,
        5
    );
    assert!(app.smtp.messages().is_empty());
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE status = 'SENT'")
            .await?,
        0
    );

    app.smtp.refusing.store(false, Ordering::SeqCst);
    app.drain_as_of(Utc::now() + chrono::Duration::minutes(10))
        .await?;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE status = 'SENT'")
            .await?,
        5
    );
    assert_each_once(&app.smtp.messages(), 5);
    Ok(())
}

async fn mail_queued_while_smtp_is_down_is_delivered_by_the_restarted_server(
    db: Backend,
) -> anyhow::Result<()> {
    // Nothing listens on this port yet: every connection is refused.
    let closed = ClosedPort::new()?;
    let placeholder = SmtpServer::start()?;
    let mut options = Options::new(&placeholder);
    options.smtp_url = Some(format!("smtp://127.0.0.1:{}", closed.port));
    let database_url = fresh_database(db).await?;
    let first = start(database_url.clone(), placeholder.clone(), options.clone()).await?;
    for n in 0..5 {
        first
            .request_sign_in(&format!("queued{n}@example.org"))
            .await?
            .ok()?;
    }
    first.drain().await?;
    assert_eq!(
        first
            .count("SELECT COUNT(*) FROM outbox WHERE attempts >= 1 AND status = 'PENDING'")
            .await?,
        5
    );
    first.kill();

    let smtp = SmtpServer::start_on(closed.listen()?)?;
    let second = start(database_url, smtp.clone(), options).await?;
    // Their back-off over, the restarted server sends them.
    second
        .drain_as_of(Utc::now() + chrono::Duration::minutes(1))
        .await?;
    let mut mails = Vec::new();
    for n in 0..5 {
        mails.extend(smtp.messages_to(&format!("queued{n}@example.org")));
    }
    assert_each_once(&smtp.messages(), 5);
    // The restarted server derives the same working links.
    let token = mails[0].sign_in_token()?;
    second
        .gql(
            None,
            "mutation($t: String!) { signIn(token: $t) { token } }",
            json!({ "t": token }),
        )
        .await?
        .ok()?;
    Ok(())
}

async fn a_server_killed_mid_delivery_loses_nothing_and_repeats_nothing(
    db: Backend,
) -> anyhow::Result<()> {
    let smtp = SmtpServer::start()?;
    smtp.stalled.hold();
    let mut options = Options::new(&smtp);
    options.mail_lease_seconds = 1;
    // The first server's own worker loop is mid-send when the process dies.
    options.background_loops = true;
    let database_url = fresh_database(db).await?;
    let first = start(database_url.clone(), smtp.clone(), options.clone()).await?;
    for n in 0..5 {
        first
            .request_sign_in(&format!("inflight{n}@example.org"))
            .await?
            .ok()?;
    }
    // The worker is in the middle of SMTP conversations when the process dies.
    wait_until(
        "the worker starting an SMTP conversation",
        Duration::from_secs(15),
        async || Ok(smtp.sessions_started.load(Ordering::SeqCst) >= 1),
    )
    .await?;
    assert!(
        first
            .count("SELECT COUNT(*) FROM outbox WHERE status = 'SENDING'")
            .await?
            >= 1
    );
    first.kill();
    smtp.stalled.release();

    // Once the dead server's lease has run out, what it held is taken over.
    options.background_loops = false;
    let second = start(database_url, smtp.clone(), options).await?;
    second
        .drain_as_of(Utc::now() + chrono::Duration::seconds(2))
        .await?;
    for n in 0..5 {
        assert_eq!(
            smtp.messages_to(&format!("inflight{n}@example.org")).len(),
            1
        );
    }
    assert_each_once(&smtp.messages(), 5);
    Ok(())
}
