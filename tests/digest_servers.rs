//! Digests with real server processes: two `groundswell serve` processes sharing one PostgreSQL
//! database send each due digest once, a process killed with SIGKILL mid-delivery loses and
//! repeats nothing once another is started, and a mail server that fails mid-run and recovers
//! leaves every digest delivered once.
//!
//! The recipients are inserted straight into the database (500 people through `grant-role`
//! would take minutes): daily digests at 08:00 in London, joined three days ago, so each has a
//! slot due the moment the servers' schedulers next look.

use std::{collections::HashMap, process::Stdio, sync::atomic::Ordering, time::Duration};

use sea_orm::{ConnectionTrait, Database as SeaDatabase};
use tokio::process::{Child, Command};

use crate::helpers::*;

/// A `groundswell serve` process.
struct Server {
    child: Child,
}

impl Server {
    async fn start(
        database_url: &str,
        smtp_url: &str,
        secret_key: &str,
        lease_seconds: u64,
    ) -> anyhow::Result<Self> {
        let port = free_port()?.local_addr()?.port();
        let child = Command::new(env!("CARGO_BIN_EXE_groundswell"))
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("PUBLIC_URL", "http://groundswell.test")
            .env("SMTP_URL", smtp_url)
            .env("SECRET_KEY", secret_key)
            .env("MAIL_POLL_INTERVAL_MS", "50")
            .env("MAIL_RETRY_BASE_MS", "100")
            // Enough attempts that nothing is given up on while a test holds SMTP down.
            .env("MAIL_MAX_ATTEMPTS", "30")
            .env("MAIL_LEASE_SECONDS", lease_seconds.to_string())
            .env("DIGEST_INTERVAL_SECONDS", "1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let server = Server { child };
        let health = format!("http://127.0.0.1:{port}/healthz");
        for _ in 0..600 {
            if let Ok(response) = reqwest::get(&health).await
                && response.status().is_success()
            {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("the server did not come up on port {port}")
    }

    /// `kill -9`: the process gets no chance to finish anything.
    async fn kill(mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
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
    for _ in 0..seconds * 10 {
        let arrived = smtp
            .messages()
            .iter()
            .filter(|m| m.subject.contains("digest"))
            .count();
        if arrived >= count {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{count} digests did not arrive in {seconds} s")
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
    tokio::time::sleep(Duration::from_secs(3)).await;
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
    smtp.stalled.store(true, Ordering::SeqCst);
    let secret = groundswell_domain::secrets::SecretKey::generate().encode();
    let database_url = fresh_database(Backend::Postgres).await?;
    let first = Server::start(&database_url, &smtp.url(), &secret, 1).await?;
    insert_due_recipients(&database_url, "inflight", 20).await?;
    // The first server has queued the digests and is mid-conversation with the SMTP server.
    for _ in 0..300 {
        if smtp.sessions_started.load(Ordering::SeqCst) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(smtp.sessions_started.load(Ordering::SeqCst) >= 1);
    first.kill().await?;
    smtp.stalled.store(false, Ordering::SeqCst);

    let second = Server::start(&database_url, &smtp.url(), &secret, 1).await?;
    wait_for_digests(&smtp, 20, 60).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_one_each(&smtp, "inflight", 20);
    second.kill().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn digests_queued_while_smtp_is_down_are_delivered_once_when_it_comes_back()
-> anyhow::Result<()> {
    // Nothing listens on this port until the SMTP server is started on it.
    let reserved = free_port()?;
    let port = reserved.local_addr()?.port();
    drop(reserved);
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
    for _ in 0..300 {
        if failed_attempts().await? == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        failed_attempts().await?,
        10,
        "every digest was tried and failed"
    );

    let smtp = SmtpServer::start_on(std::net::TcpListener::bind(("127.0.0.1", port))?)?;
    wait_for_digests(&smtp, 10, 60).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
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
    smtp.stalled.store(true, Ordering::SeqCst);
    let secret = groundswell_domain::secrets::SecretKey::generate().encode();
    let database_url = fresh_database(Backend::Postgres).await?;
    let _server = Server::start(&database_url, &smtp.url(), &secret, 300).await?;
    insert_due_recipients(&database_url, "midrun", 300).await?;
    for _ in 0..600 {
        if smtp.sessions_started.load(Ordering::SeqCst) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    smtp.stalled.store(false, Ordering::SeqCst);
    let delivered = || {
        smtp.messages()
            .iter()
            .filter(|m| m.subject.contains("digest") && m.to.starts_with("midrun"))
            .count()
    };
    for _ in 0..1000 {
        if delivered() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Mid-run, the mail server fails every message for a while.
    smtp.refusing.store(true, Ordering::SeqCst);
    let during = delivered();
    assert!(during < 300, "the run was over before the server failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
    smtp.refusing.store(false, Ordering::SeqCst);

    wait_for_digests(&smtp, 300, 120).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
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
