//! Settings, each read from an environment variable with a default, so `cargo run` with nothing
//! set serves on 127.0.0.1:8080 with an SQLite file and writes mail to `./data/mail`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use groundswell_domain::secrets::SecretKey;
use lettre::message::Mailbox;

/// The settings as the command line and environment give them.
#[derive(Clone, Debug, clap::Args)]
pub struct Settings {
    /// Address and port to serve on.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8080")]
    pub bind_addr: SocketAddr,
    /// `sqlite://…` or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/groundswell.db"
    )]
    pub database_url: String,
    /// Most database connections this server holds.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// Base URL used in links inside emails and calendar files.
    #[arg(long, env = "PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    pub public_url: String,
    /// `smtp://user:pass@host:port` or `smtps://…`; when unset, mail is written to MAIL_DIR.
    #[arg(long, env = "SMTP_URL")]
    pub smtp_url: Option<String>,
    /// Folder that receives one `.eml` file per message when no SMTP server is set.
    #[arg(long, env = "MAIL_DIR", default_value = "./data/mail")]
    pub mail_dir: PathBuf,
    /// Sender address.
    #[arg(
        long,
        env = "MAIL_FROM",
        default_value = "Groundswell <noreply@localhost>"
    )]
    pub mail_from: String,
    /// `requestSignIn` calls allowed per client address per minute.
    #[arg(long, env = "SIGN_IN_REQUESTS_PER_MINUTE", default_value_t = 10)]
    pub sign_in_requests_per_minute: u32,
    /// Base64url key of at least 32 bytes that signs sign-in links; every server sharing a
    /// database needs the same one. When unset, a key is made once and kept in SECRET_KEY_FILE.
    #[arg(long, env = "SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Where the generated secret key is kept when SECRET_KEY is unset.
    #[arg(long, env = "SECRET_KEY_FILE", default_value = "./data/secret.key")]
    pub secret_key_file: PathBuf,
    /// Seconds a request may take before it is answered with a timeout.
    #[arg(long, env = "REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    pub request_timeout_seconds: u64,
    /// Delivery attempts before a message is marked failed.
    #[arg(long, env = "MAIL_MAX_ATTEMPTS", default_value_t = 8)]
    pub mail_max_attempts: u32,
    /// Wait before the first retry of a failed delivery, doubling each time (up to an hour).
    #[arg(long, env = "MAIL_RETRY_BASE_MS", default_value_t = 30_000)]
    pub mail_retry_base_ms: u64,
    /// How long a claimed message stays with one server before another may take it over
    /// (when the first died mid-delivery).
    #[arg(long, env = "MAIL_LEASE_SECONDS", default_value_t = 300)]
    pub mail_lease_seconds: u64,
    /// Days after a gathering ends when its access notes are erased, keeping anonymous totals.
    #[arg(long, env = "ACCESS_NOTES_RETENTION_DAYS", default_value_t = 30)]
    pub access_notes_retention_days: u32,
    /// How often the delivery worker looks for due mail.
    #[arg(long, env = "MAIL_POLL_INTERVAL_MS", default_value_t = 1_000)]
    pub mail_poll_interval_ms: u64,
    /// Days an active pledge may go without a progress update before it counts as gone quiet.
    #[arg(long, env = "PLEDGE_QUIET_DAYS", default_value_t = groundswell_domain::pledges::DEFAULT_QUIET_AFTER_DAYS)]
    pub pledge_quiet_days: u32,
    /// Hours a registration link (for registering with only an email) works before it expires
    /// and the answers waiting for it are deleted.
    #[arg(long, env = "REGISTRATION_REQUEST_TTL_HOURS", default_value_t = 24)]
    pub registration_request_ttl_hours: u32,
    /// How often the digest scheduler looks for digests that have come due; 0 turns it off.
    #[arg(long, env = "DIGEST_INTERVAL_SECONDS", default_value_t = 60)]
    pub digest_interval_seconds: u64,
    /// Days after delivery when a message's address and content are purged (its id, template
    /// and status stay).
    #[arg(long, env = "MAIL_RETENTION_DAYS", default_value_t = 30)]
    pub mail_retention_days: u32,
    /// People one caller may register on their behalf (`onBehalfOf`) for one gathering.
    #[arg(long, env = "ON_BEHALF_PER_GATHERING", default_value_t = 10)]
    pub on_behalf_per_gathering: u32,
    /// Registrations on behalf of others one caller may make in an hour.
    #[arg(long, env = "ON_BEHALF_PER_HOUR", default_value_t = 20)]
    pub on_behalf_per_hour: u32,
    /// Times a person may register again for one gathering after cancelling, in a day.
    #[arg(long, env = "REREGISTRATIONS_PER_DAY", default_value_t = 3)]
    pub reregistrations_per_day: u32,
    /// New members one caller may add to organisations (`addOrganisationMember`) in an hour.
    #[arg(long, env = "MEMBERS_ADDED_PER_HOUR", default_value_t = 30)]
    pub members_added_per_hour: u32,
    /// WebSocket connections (`/graphql/ws`) one client address may hold open at once.
    #[arg(long, env = "WS_CONNECTIONS_PER_ADDRESS", default_value_t = 16)]
    pub ws_connections_per_address: u32,
    /// Subscriptions one WebSocket connection may run at once.
    #[arg(long, env = "WS_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = 20)]
    pub ws_subscriptions_per_connection: u32,
    /// HTTP connections the server holds open at once; more wait to be accepted until one
    /// closes. Once three quarters are open, each answer closes its connection. A connection
    /// that sends no request within HEADER_READ_TIMEOUT_SECONDS is closed, but an open
    /// WebSocket keeps its place: the default is high; a lower cap saves memory in a rush.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers, counted from when the server starts
    /// waiting for them: on a new connection, or after the last answer on a kept-alive one.
    /// A connection that takes longer, or sits idle that long, is closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECONDS", default_value_t = 30)]
    pub header_read_timeout_seconds: u64,
    /// Seconds a browser, proxy or CDN may keep a public GraphQL answer (one to nobody in
    /// particular, holding nothing private).
    #[arg(long, env = "PUBLIC_CACHE_MAX_AGE_SECONDS", default_value_t = 5)]
    pub public_cache_max_age_seconds: u64,
    /// Bytes of public GraphQL answers this server keeps in memory to answer again without
    /// running them (until a write changes what they read, or PUBLIC_CACHE_MAX_AGE_SECONDS
    /// passes); 0 turns the cache off.
    #[arg(long, env = "RESPONSE_CACHE_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub response_cache_bytes: usize,
    #[command(flatten)]
    pub webhooks: WebhookArgs,
}

/// The webhook settings, as the command line and environment give them.
#[derive(Clone, Debug, clap::Args)]
pub struct WebhookArgs {
    /// Lets webhooks go to plain `http` URLs and to loopback, private and link-local
    /// addresses: for tests and local development only.
    #[arg(
        long,
        env = "WEBHOOK_ALLOW_PRIVATE_TARGETS",
        default_value_t = false,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub webhook_allow_private_targets: bool,
    /// Seconds a receiver has to answer a delivery with a 2xx before the attempt counts as
    /// failed.
    #[arg(long, env = "WEBHOOK_TIMEOUT_SECONDS", default_value_t = 10)]
    pub webhook_timeout_seconds: u64,
    /// How often the webhook worker looks for due deliveries.
    #[arg(long, env = "WEBHOOK_POLL_INTERVAL_MS", default_value_t = 1_000)]
    pub webhook_poll_interval_ms: u64,
    /// Wait before the first retry of a failed delivery, doubling each time (up to an hour,
    /// less a random part), for a day.
    #[arg(long, env = "WEBHOOK_RETRY_BASE_MS", default_value_t = 10_000)]
    pub webhook_retry_base_ms: u64,
    /// How long a claimed delivery stays with one server before another may take it over;
    /// at least the timeout and five seconds more, at most a day.
    #[arg(long, env = "WEBHOOK_LEASE_SECONDS", default_value_t = 120)]
    pub webhook_lease_seconds: u64,
    /// How long an endpoint may fail every delivery before it is switched off and its owners
    /// are told; at most a year.
    #[arg(long, env = "WEBHOOK_DEACTIVATE_AFTER_HOURS", default_value_t = 24)]
    pub webhook_deactivate_after_hours: u64,
}

impl Default for WebhookArgs {
    fn default() -> Self {
        Self {
            webhook_allow_private_targets: false,
            webhook_timeout_seconds: 10,
            webhook_poll_interval_ms: 1_000,
            webhook_retry_base_ms: 10_000,
            webhook_lease_seconds: 120,
            webhook_deactivate_after_hours: 24,
        }
    }
}

/// Validated webhook settings.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    pub policy: groundswell_domain::webhooks::TargetPolicy,
    pub timeout: Duration,
    pub poll_interval: Duration,
    pub retry_base: Duration,
    pub lease: Duration,
    pub deactivate_after: chrono::TimeDelta,
}

impl WebhookSettings {
    fn from_args(args: &WebhookArgs) -> Self {
        let timeout = Duration::from_secs(args.webhook_timeout_seconds.clamp(1, 300));
        Self {
            policy: groundswell_domain::webhooks::TargetPolicy {
                allow_private: args.webhook_allow_private_targets,
            },
            timeout,
            poll_interval: Duration::from_millis(args.webhook_poll_interval_ms.max(10)),
            retry_base: Duration::from_millis(args.webhook_retry_base_ms.max(1)),
            // A lease shorter than an attempt could let a second server take a delivery
            // still in flight.
            // At most a day: the worker adds it to the clock, which a bigger one overflows.
            lease: Duration::from_secs(args.webhook_lease_seconds.min(24 * 3600))
                .max(timeout + Duration::from_secs(5)),
            // At most a year, for the same reason (`TimeDelta::hours` panics past its range).
            deactivate_after: chrono::TimeDelta::hours(
                i64::try_from(args.webhook_deactivate_after_hours.clamp(1, 365 * 24)).unwrap_or(24),
            ),
        }
    }
}

/// The most `MAX_CONNECTIONS` can ask for: far past what one process's file descriptors allow.
const MAX_CONNECTIONS_BOUND: usize = 1 << 20;

/// Validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub bind_addr: SocketAddr,
    pub database_url: String,
    pub database_max_connections: u32,
    /// Without a trailing slash.
    pub public_url: String,
    pub smtp_url: Option<String>,
    pub mail_dir: PathBuf,
    pub mail_from: Mailbox,
    pub sign_in_requests_per_minute: u32,
    pub secret_key: SecretKey,
    pub request_timeout: Duration,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    pub mail: MailSettings,
    /// How long after a gathering its access notes are kept.
    pub access_notes_retention: chrono::Duration,
    /// How long an active pledge may go without a progress update before it has gone quiet.
    pub quiet_after: chrono::TimeDelta,
    /// How often the digest scheduler runs; `None` when it is off.
    pub digest_interval: Option<Duration>,
    pub webhooks: WebhookSettings,
    /// How long delivered mail keeps its address and content.
    pub mail_retention: chrono::Duration,
    /// How much one caller may do to other people.
    pub limits: groundswell_domain::Limits,
    pub ws_connections_per_address: usize,
    pub ws_subscriptions_per_connection: usize,
    /// HTTP connections held open at once.
    pub max_connections: usize,
    /// How long a client has to send a request's headers, or an idle connection stays open.
    pub header_read_timeout: Duration,
    /// `max-age` of public GraphQL answers.
    pub public_cache_max_age_seconds: u64,
    /// Bytes of public answers kept in memory; 0 when the cache is off.
    pub response_cache_bytes: usize,
    /// How long a registration link works.
    pub registration_request_ttl: chrono::Duration,
}

#[derive(Clone, Debug)]
pub struct MailSettings {
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub poll_interval: Duration,
    /// How long a claimed message stays with one server before another may take it over.
    pub lease: Duration,
}

impl Config {
    pub fn from_settings(settings: Settings) -> anyhow::Result<Self> {
        let public_url = url::Url::parse(&settings.public_url)
            .context("PUBLIC_URL must be an absolute URL, like https://groundswell.example")?;
        let mail_from: Mailbox = settings
            .mail_from
            .parse()
            .context("MAIL_FROM must be an address, like Groundswell <noreply@example.org>")?;
        let secret_key = match settings.secret_key {
            Some(text) => {
                SecretKey::decode(&text).map_err(|e| anyhow::anyhow!("SECRET_KEY {e}"))?
            }
            None => load_or_create_key(&settings.secret_key_file)?,
        };
        anyhow::ensure!(
            settings.sign_in_requests_per_minute > 0,
            "SIGN_IN_REQUESTS_PER_MINUTE must be at least 1"
        );
        Ok(Self {
            bind_addr: settings.bind_addr,
            database_url: settings.database_url,
            database_max_connections: settings.database_max_connections.max(1),
            public_url: public_url.as_str().trim_end_matches('/').to_owned(),
            smtp_url: settings.smtp_url.filter(|url| !url.trim().is_empty()),
            mail_dir: settings.mail_dir,
            mail_from,
            sign_in_requests_per_minute: settings.sign_in_requests_per_minute,
            secret_key,
            request_timeout: Duration::from_secs(settings.request_timeout_seconds.max(1)),
            max_body_bytes: 1024 * 1024,
            access_notes_retention: chrono::Duration::days(i64::from(
                settings.access_notes_retention_days,
            )),
            digest_interval: (settings.digest_interval_seconds > 0)
                .then(|| Duration::from_secs(settings.digest_interval_seconds)),
            mail: MailSettings {
                max_attempts: settings.mail_max_attempts.max(1),
                retry_base: Duration::from_millis(settings.mail_retry_base_ms),
                poll_interval: Duration::from_millis(settings.mail_poll_interval_ms.max(10)),
                lease: Duration::from_secs(settings.mail_lease_seconds.max(1)),
            },
            quiet_after: chrono::TimeDelta::days(i64::from(settings.pledge_quiet_days)),
            webhooks: WebhookSettings::from_args(&settings.webhooks),
            mail_retention: chrono::Duration::days(i64::from(settings.mail_retention_days)),
            limits: groundswell_domain::Limits {
                on_behalf_per_gathering: settings.on_behalf_per_gathering,
                on_behalf_per_hour: settings.on_behalf_per_hour,
                rejoins_per_day: settings.reregistrations_per_day,
                members_added_per_hour: settings.members_added_per_hour,
            },
            ws_connections_per_address: settings.ws_connections_per_address.max(1) as usize,
            ws_subscriptions_per_connection: settings.ws_subscriptions_per_connection.max(1)
                as usize,
            // Bounded, so an absurd value is a working cap rather than a panic in the
            // semaphore that holds the places.
            max_connections: settings.max_connections.clamp(1, MAX_CONNECTIONS_BOUND),
            // At most a day: hyper adds it to the clock, and a timeout is never meant as "never".
            header_read_timeout: Duration::from_secs(
                settings.header_read_timeout_seconds.clamp(1, 24 * 60 * 60),
            ),
            public_cache_max_age_seconds: settings.public_cache_max_age_seconds,
            response_cache_bytes: settings.response_cache_bytes,
            registration_request_ttl: chrono::Duration::hours(i64::from(
                settings.registration_request_ttl_hours.clamp(1, 24 * 365),
            )),
        })
    }
}

fn load_or_create_key(path: &std::path::Path) -> anyhow::Result<SecretKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => SecretKey::decode(&text)
            .map_err(|e| anyhow::anyhow!("the key in {} {e}", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretKey::generate();
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            write_private(path, &key.encode())
                .with_context(|| format!("writing the secret key to {}", path.display()))?;
            tracing::info!(path = %path.display(), "made a new secret key");
            Ok(key)
        }
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        settings: Settings,
    }

    fn config(args: &[&str]) -> Config {
        let mut argv = vec!["groundswell", "--secret-key", &KEY];
        argv.extend_from_slice(args);
        let settings = Args::try_parse_from(argv).map(|a| a.settings);
        Config::from_settings(settings.unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn private_webhook_targets_are_off_unless_turned_on_and_leases_outlast_the_timeout() {
        assert!(!config(&[]).webhooks.policy.allow_private);
        let on = config(&[
            "--webhook-allow-private-targets",
            "true",
            "--webhook-timeout-seconds",
            "30",
            "--webhook-lease-seconds",
            "1",
        ]);
        assert!(on.webhooks.policy.allow_private);
        assert_eq!(on.webhooks.lease, Duration::from_secs(35));
    }

    #[test]
    fn absurd_webhook_lease_and_deactivation_settings_are_bounded_not_a_panic() {
        let (huge, hours) = (u64::MAX.to_string(), i64::MAX.to_string());
        let settings = std::panic::catch_unwind(|| {
            config(&[
                "--webhook-lease-seconds",
                &huge,
                "--webhook-deactivate-after-hours",
                &hours,
            ])
            .webhooks
        });
        let Ok(settings) = settings else {
            panic!("the settings panicked");
        };
        // The worker adds the lease to the clock, and takes the deactivation period from it.
        let now = chrono::Utc::now();
        let lease = chrono::TimeDelta::from_std(settings.lease).ok();
        assert!(
            lease.and_then(|l| now.checked_add_signed(l)).is_some(),
            "{lease:?}"
        );
        assert!(now.checked_sub_signed(settings.deactivate_after).is_some());
        assert!(settings.lease <= Duration::from_secs(24 * 3600));
    }

    #[test]
    fn absurd_connection_caps_are_bounded_not_a_panic() {
        let huge = usize::MAX.to_string();
        assert_eq!(
            config(&["--max-connections", &huge]).max_connections,
            MAX_CONNECTIONS_BOUND
        );
        assert_eq!(config(&["--max-connections", "0"]).max_connections, 1);
        assert_eq!(config(&[]).max_connections, 4096);
        let capped = crate::http::connections::Connections::new(MAX_CONNECTIONS_BOUND);
        assert_eq!(capped.open(), 0);
    }

    #[test]
    fn the_header_read_timeout_is_a_second_to_a_day() {
        let huge = u64::MAX.to_string();
        let timeout = |args: &[&str]| config(args).header_read_timeout;
        assert_eq!(timeout(&[]), Duration::from_secs(30));
        assert_eq!(
            timeout(&["--header-read-timeout-seconds", "0"]),
            Duration::from_secs(1)
        );
        assert_eq!(
            timeout(&["--header-read-timeout-seconds", &huge]),
            Duration::from_secs(24 * 60 * 60)
        );
    }

    #[test]
    fn a_digest_interval_of_zero_turns_the_scheduler_off() {
        assert_eq!(
            config(&["--digest-interval-seconds", "0"]).digest_interval,
            None
        );
        assert_eq!(
            config(&["--digest-interval-seconds", "90"]).digest_interval,
            Some(Duration::from_secs(90))
        );
    }
}
