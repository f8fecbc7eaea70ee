//! Digests with real server processes: two `groundswell serve` processes sharing one PostgreSQL
//! database send each due digest once, a process killed with SIGKILL mid-delivery loses and
//! repeats nothing once another is started, and a mail server that fails mid-run and recovers
//! leaves every digest delivered once.
//!
//! The recipients are inserted straight into the database (500 people through `grant-role`
//! would take minutes): daily digests at 08:00 in London, joined three days ago, so each has a
//! slot due the moment the servers' schedulers next look.

use std::{collections::HashMap, sync::atomic::Ordering, time::Duration};

use sea_orm::{ConnectionTrait, Database as SeaDatabase};

use crate::helpers::*;

/// A `groundswell serve` process sending digests and mail, looking for due digests every second
/// and saying (at debug level) each time it has looked.
struct Server {
    process: ServerProcess,
}

/// The scheduler's line after each look for due digests.
const LOOKED: &str = "looked for due digests";

impl Server {
    async fn start(
        database_url: &str,
        smtp_url: &str,
        secret_key: &str,
        lease_seconds: u64,
    ) -> anyhow::Result<Self> {
        let lease = lease_seconds.to_string();
        let process = ServerProcess::start(&[
            ("DATABASE_URL", database_url),
            ("PUBLIC_URL", "http://groundswell.test"),
            ("SMTP_URL", smtp_url),
            ("SECRET_KEY", secret_key),
            ("MAIL_POLL_INTERVAL_MS", "50"),
            ("MAIL_RETRY_BASE_MS", "100"),
            // Enough attempts that nothing is given up on while a test holds SMTP down.
            ("MAIL_MAX_ATTEMPTS", "30"),
            ("MAIL_LEASE_SECONDS", &lease),
            ("DIGEST_INTERVAL_SECONDS", "1"),
            (
                "RUST_LOG",
                "warn,groundswell_api::startup=info,groundswell_api::digests=debug",
            ),
        ])
        .await?;
        Ok(Server { process })
    }

    /// Waits until the scheduler has looked for due digests twice more, so at least one look
    /// began after this call: a second claim would have been made by then.
    async fn looks_again(&self) -> anyhow::Result<()> {
        let before = self.process.logged(LOOKED);
        wait_until(
            "the digest scheduler looking again",
            Duration::from_secs(30),
            async || Ok(self.process.logged(LOOKED) >= before + 2),
        )
        .await
    }

    /// `kill -9`: the process gets no chance to finish anything.
    async fn kill(self) -> anyhow::Result<()> {
        self.process.kill().await
    }
}

/// Inserts `count` people due a daily digest now.
async fn insert_due_recipients(database_url: &str, prefix: &str, count: u32) -> anyhow::Result<()> {
    let conn = SeaDatabase::connect(database_url).await?;
    conn.execute_unprepared(&format!(
        "INSERT INTO people (id, email, display_name, role, time_zone, digest_frequency, \
           digest_weekday, digest_hour, digest_changes, digest_send_empty, digest_chosen, \
           email_consent, created_at, updated_at) \
         SELECT gen_random_uuid(), '{prefix}' || n || '@example.org', NULL, 'CONVENOR', \
           'Europe/London', 'DAILY', 1, 8, '[]', TRUE, TRUE, FALSE, \
           now() - interval '3 days', now() - interval '3 days' \
         FROM generate_series(1, {count}) AS n"
    ))
    .await?;
    conn.close().await?;
    Ok(())
}

/// Waits (up to `seconds`) until `count` digests have arrived.
async fn wait_for_digests(smtp: &SmtpServer, count: usize, seconds: u64) -> anyhow::Result<()> {
    let arrived = || {
        smtp.messages()
            .iter()
            .filter(|m| m.subject.contains("digest"))
            .count()
    };
    wait_until(
        &format!("{count} digests arriving"),
        Duration::from_secs(seconds),
        async || Ok(arrived() >= count),
    )
    .await
}

/// Waits until no digest is left in the outbox to send (or being sent): after it, and after
/// the schedulers have looked again, no further digest is coming.
async fn wait_for_an_empty_outbox(database_url: &str) -> anyhow::Result<()> {
    let conn = SeaDatabase::connect(database_url).await?;
    wait_until("the outbox emptying", Duration::from_secs(60), async || {
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT COUNT(*) FROM outbox WHERE template = 'digest' \
                     AND status IN ('PENDING', 'SENDING')"
                    .to_owned(),
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no count"))?;
        Ok(row.try_get_by_index::<i64>(0)? == 0)
    })
    .await?;
    conn.close().await?;
    Ok(())
}

/// Every recipient got exactly one digest.
fn assert_one_each(smtp: &SmtpServer, prefix: &str, count: usize) {
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for mail in smtp.messages() {
        if mail.subject.contains("digest") && mail.to.starts_with(prefix) {
            *per_recipient.entry(mail.to).or_default() += 1;
        }
    }
    assert_eq!(per_recipient.len(), count, "recipients who got a digest");
    let repeated: Vec<_> = per_recipient.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "digests received twice: {repeated:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_postgres_database_send_each_of_500_due_digests_once()
-> anyhow::Result<()> {
    let smtp = SmtpServer::start()?;
    let secret = groundswell_domain::secrets::SecretKey::generate().encode();
    let database_url = fresh_database(Backend::Postgres).await?;
    // The first migrates; the second starts on the migrated database.
    let first = Server::start(&database_url, &smtp.url(), &secret, 300).await?;
    let second = Server::start(&database_url, &smtp.url(), &secret, 300).await?;
    insert_due_recipients(&database_url, "many", 500).await?;

    wait_for_digests(&smtp, 500, 120).await?;
    // Both schedulers keep looking every second; give a second claim the chance to happen.
    first.looks_again().await?;
    second.looks_again().await?;
    wait_for_an_empty_outbox(&database_url).await?;
    assert_one_each(&smtp, "many", 500);
    let conn = SeaDatabase::connect(&database_url).await?;
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT COUNT(*) FROM digests".to_owned(),
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no count"))?;
    assert_eq!(row.try_get_by_index::<i64>(0)?, 500);
    conn.close().await?;
    first.kill().await?;
    second.kill().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_with_sigkill_mid_delivery_leaves_every_digest_delivered_once()
-> anyhow::Result<()> {
    let smtp = SmtpServer::start()?;
    smtp.stalled.hold();
    let secret = groundswell_domain::secrets::SecretKey::generate().encode();
    let database_url = fresh_database(Backend::Postgres).await?;
    let first = Server::start(&database_url, &smtp.url(), &secret, 1).await?;
    insert_due_recipients(&database_url, "inflight", 20).await?;
    // The first server has queued the digests and is mid-conversation with the SMTP server.
    wait_until(
        "the first server starting an SMTP conversation",
        Duration::from_secs(15),
        async || Ok(smtp.sessions_started.load(Ordering::SeqCst) >= 1),
    )
    .await?;
    first.kill().await?;
    smtp.stalled.release();

    let second = Server::start(&database_url, &smtp.url(), &secret, 1).await?;
    wait_for_digests(&smtp, 20, 60).await?;
    second.looks_again().await?;
    wait_for_an_empty_outbox(&database_url).await?;
    assert_one_each(&smtp, "inflight", 20);
    second.kill().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn digests_queued_while_smtp_is_down_are_delivered_once_when_it_comes_back()
-> anyhow::Result<()> {
    // Nothing listens on this port until the SMTP server is started on it.
    let closed = ClosedPort::new()?;
    let port = closed.port;
    let secret = groundswell_domain::secrets::SecretKey::generate().encode();
    let database_url = fresh_database(Backend::Postgres).await?;
    let server = Server::start(
        &database_url,
        &format!("smtp://127.0.0.1:{port}"),
        &secret,
        300,
    )
    .await?;
    insert_due_recipients(&database_url, "patient", 10).await?;
    let conn = SeaDatabase::connect(&database_url).await?;
    let failed_attempts = async || -> anyhow::Result<i64> {
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT COUNT(*) FROM outbox WHERE template = 'digest' AND attempts >= 1 \
                 AND status IN ('PENDING', 'SENDING')"
                    .to_owned(),
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no count"))?;
        Ok(row.try_get_by_index::<i64>(0)?)
    };
    wait_until(
        "every digest being tried and failing",
        Duration::from_secs(15),
        async || Ok(failed_attempts().await? == 10),
    )
    .await?;
    assert_eq!(
        failed_attempts().await?,
        10,
        "every digest was tried and failed"
    );

    let smtp = SmtpServer::start_on(closed.listen()?)?;
    wait_for_digests(&smtp, 10, 60).await?;
    server.looks_again().await?;
    wait_for_an_empty_outbox(&database_url).await?;
    assert_one_each(&smtp, "patient", 10);
    conn.close().await?;
    server.kill().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_smtp_server_failing_mid_run_and_recovering_leaves_every_digest_delivered_once()
-> anyhow::Result<()> {
    let smtp = SmtpServer::start()?;
    // Held at first, so the run is certainly under way when the server starts failing.
    smtp.stalled.hold();
    let secret = groundswell_domain::secrets::SecretKey::generate().encode();
    let database_url = fresh_database(Backend::Postgres).await?;
    let server = Server::start(&database_url, &smtp.url(), &secret, 300).await?;
    insert_due_recipients(&database_url, "midrun", 300).await?;
    wait_until(
        "the server starting an SMTP conversation",
        Duration::from_secs(15),
        async || Ok(smtp.sessions_started.load(Ordering::SeqCst) >= 1),
    )
    .await?;
    let delivered = || {
        smtp.messages()
            .iter()
            .filter(|m| m.subject.contains("digest") && m.to.starts_with("midrun"))
            .count()
    };
    // Mid-run, the mail server fails every message for a while: from the moment some have
    // arrived until it has refused some.
    let refused = smtp.refused.clone();
    smtp.refuse_after(5);
    smtp.stalled.release();
    wait_until(
        "the mail server refusing a message",
        Duration::from_secs(30),
        async || Ok(refused.load(Ordering::SeqCst) >= 1),
    )
    .await?;
    let during = delivered();
    assert!(during < 300, "the run was over before the server failed");
    smtp.refusing.store(false, Ordering::SeqCst);

    wait_for_digests(&smtp, 300, 120).await?;
    server.looks_again().await?;
    wait_for_an_empty_outbox(&database_url).await?;
    assert_one_each(&smtp, "midrun", 300);
    let conn = SeaDatabase::connect(&database_url).await?;
    let retried = conn
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT COUNT(*) FROM outbox WHERE template = 'digest' AND attempts >= 2".to_owned(),
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no count"))?
        .try_get_by_index::<i64>(0)?;
    assert!(retried > 0, "some digests were refused and tried again");
    Ok(())
}
