//! The harness: `spawn_app`, a real SMTP server, and typed helpers for the calls clients make.

use std::{
    io,
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    sync::{
        Arc, Condvar, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use groundswell_api::{Application, Config, background::Background, config::Settings};
use mail_parser::{MessageParser, MimeHeaders};
use sea_orm::{ConnectionTrait, Database as SeaDatabase, DatabaseConnection, Statement};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Runs each listed `async fn name(db: Backend) -> anyhow::Result<()>` once on SQLite and once
/// on PostgreSQL, as `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() -> anyhow::Result<()> {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() -> anyhow::Result<()> {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        )*
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Polls `check` until it holds, failing with "`what` did not happen within …" if `within`
/// passes first. The one place the tests wait on the clock: for what another process or thread
/// brings about (a port answering, a log line, a row appearing). Work this process's servers do
/// in the background is driven with [`TestApp::drain`] instead.
pub async fn wait_until(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{what} did not happen within {} s", within.as_secs_f32());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the clock reads clearly past `mark` (by more than the databases' timestamp
/// precision), so whatever happens next is stamped after it.
pub async fn clock_passes(mark: chrono::DateTime<chrono::Utc>) -> anyhow::Result<()> {
    let past = mark + chrono::Duration::milliseconds(2);
    wait_until(
        "the clock passing the mark",
        Duration::from_secs(1),
        async || Ok(chrono::Utc::now() > past),
    )
    .await
}

/// Where the test PostgreSQL server is; CI and the README's test command start it.
fn postgres_base() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A fresh, empty database for one test.
pub async fn fresh_database(backend: Backend) -> anyhow::Result<String> {
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join("groundswell-tests");
            std::fs::create_dir_all(&dir)?;
            Ok(format!(
                "sqlite://{}",
                dir.join(format!("{}.db", Uuid::now_v7())).display()
            ))
        }
        Backend::Postgres => {
            let base = postgres_base();
            let admin = SeaDatabase::connect(format!("{base}/postgres"))
                .await
                .with_context(|| {
                    format!("PostgreSQL is not reachable at {base}: start it (the README's test command does)")
                })?;
            let name = format!("gs_test_{}", Uuid::now_v7().simple());
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await?;
            admin.close().await?;
            Ok(format!("{base}/{name}"))
        }
    }
}

/// Log lines the servers under test wrote, so tests can check what never appears in them.
pub fn captured_logs() -> String {
    let logs = log_buffer().lock().map(|b| b.clone()).unwrap_or_default();
    String::from_utf8_lossy(&logs).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| Arc::new(Mutex::new(Vec::new())))
}

struct BufferWriter;

impl io::Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Ok(mut logs) = log_buffer().lock() {
            logs.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn init_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,mailin=off,mailin_embedded=off,h2=info,hyper=info,hyper_util=info,reqwest=info")
            .with_writer(|| BufferWriter)
            .with_ansi(false)
            .try_init();
    });
}

/// A gate a server thread waits at while it is held: a test holds it, sees the server waiting
/// (an event), and releases it.
#[derive(Clone, Default)]
pub struct Gate {
    held: Arc<(Mutex<bool>, Condvar)>,
}

impl Gate {
    pub fn hold(&self) {
        if let Ok(mut held) = self.held.0.lock() {
            *held = true;
        }
    }

    pub fn release(&self) {
        if let Ok(mut held) = self.held.0.lock() {
            *held = false;
        }
        self.held.1.notify_all();
    }

    /// Blocks this thread until the gate is open.
    fn pass(&self) {
        let (lock, opened) = &*self.held;
        if let Ok(held) = lock.lock() {
            let _open = opened.wait_while(held, |held| *held);
        }
    }
}

/// A real SMTP server (mailin-embedded) on a random port, keeping what it receives.
#[derive(Clone)]
pub struct SmtpServer {
    pub port: u16,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    /// While set, every message is refused with 451 (a temporary failure) at DATA.
    pub refusing: Arc<AtomicBool>,
    /// While held, the server holds each session at DATA, as a slow server would.
    pub stalled: Gate,
    /// While set, every message is refused with 554 (a permanent failure) at DATA.
    pub rejecting: Arc<AtomicBool>,
    pub sessions_started: Arc<AtomicUsize>,
    /// Messages refused with 451 so far.
    pub refused: Arc<AtomicUsize>,
    /// Once this many messages have been received, `refusing` is set (once).
    refuse_after: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Handler {
    buffer: Vec<u8>,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    refusing: Arc<AtomicBool>,
    stalled: Gate,
    rejecting: Arc<AtomicBool>,
    sessions_started: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    refuse_after: Arc<AtomicUsize>,
}

impl mailin_embedded::Handler for Handler {
    fn data_start(&mut self, _: &str, _: &str, _: bool, _: &[String]) -> mailin_embedded::Response {
        self.sessions_started.fetch_add(1, Ordering::SeqCst);
        self.stalled.pass();
        self.buffer.clear();
        let received = self.received.lock().map(|r| r.len()).unwrap_or_default();
        let after = self.refuse_after.load(Ordering::SeqCst);
        if received >= after
            && self
                .refuse_after
                .compare_exchange(after, usize::MAX, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            self.refusing.store(true, Ordering::SeqCst);
        }
        if self.refusing.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return mailin_embedded::response::INTERNAL_ERROR;
        }
        if self.rejecting.load(Ordering::SeqCst) {
            return mailin_embedded::response::TRANSACTION_FAILED;
        }
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.buffer.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        if let Ok(mut received) = self.received.lock() {
            received.push(std::mem::take(&mut self.buffer));
        }
        mailin_embedded::response::OK
    }
}

impl SmtpServer {
    pub fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        Self::start_on(listener)
    }

    /// Starts a server on a listener made earlier (see [`ClosedPort`]).
    pub fn start_on(listener: TcpListener) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        let server = SmtpServer {
            port,
            received: Arc::default(),
            refusing: Arc::default(),
            stalled: Gate::default(),
            rejecting: Arc::default(),
            sessions_started: Arc::default(),
            refused: Arc::default(),
            refuse_after: Arc::new(AtomicUsize::new(usize::MAX)),
        };
        let handler = Handler {
            buffer: Vec::new(),
            received: server.received.clone(),
            refusing: server.refusing.clone(),
            stalled: server.stalled.clone(),
            rejecting: server.rejecting.clone(),
            sessions_started: server.sessions_started.clone(),
            refused: server.refused.clone(),
            refuse_after: server.refuse_after.clone(),
        };
        let mut smtp = mailin_embedded::Server::new(handler);
        smtp.with_name("smtp.groundswell.test")
            .with_num_threads(16)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = smtp.serve();
        });
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Sets `refusing` as soon as `count` messages have been received, as a server failing
    /// mid-run would.
    pub fn refuse_after(&self, count: usize) {
        self.refuse_after.store(count, Ordering::SeqCst);
    }

    pub fn messages(&self) -> Vec<Mail> {
        self.received
            .lock()
            .map(|r| r.iter().filter_map(|raw| Mail::parse(raw)).collect())
            .unwrap_or_default()
    }

    /// The messages received for `to`.
    pub fn messages_to(&self, to: &str) -> Vec<Mail> {
        self.messages().into_iter().filter(|m| m.to == to).collect()
    }

    /// Waits (up to 30 s) until `count` messages to `to` have arrived, and returns them: for
    /// mail sent by a server in another process. Mail from a [`TestApp`] is driven with
    /// [`TestApp::mail_to`].
    pub async fn wait_for(&self, to: &str, count: usize) -> anyhow::Result<Vec<Mail>> {
        wait_until(
            &format!("{count} message(s) to {to} arriving"),
            Duration::from_secs(30),
            async || Ok(self.messages_to(to).len() >= count),
        )
        .await?;
        Ok(self.messages_to(to))
    }
}

/// A port held by this process but not listened on: a connection to it is refused (as to a
/// mail server that is down) until [`listen`](ClosedPort::listen) opens it. No other process
/// can take the port in between.
pub struct ClosedPort {
    socket: socket2::Socket,
    pub port: u16,
}

impl ClosedPort {
    pub fn new() -> anyhow::Result<Self> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
        let port = socket
            .local_addr()?
            .as_socket()
            .context("not an IP socket")?
            .port();
        Ok(Self { socket, port })
    }

    /// Starts listening: from now on connections are accepted.
    pub fn listen(self) -> anyhow::Result<TcpListener> {
        self.socket.listen(128)?;
        Ok(self.socket.into())
    }
}

/// A received message, parsed back from MIME.
#[derive(Clone, Debug)]
pub struct Mail {
    pub to: String,
    pub from: String,
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
    /// Attachments: file name, content type and text.
    pub attachments: Vec<(String, String, String)>,
    /// The `List-Unsubscribe` and `List-Unsubscribe-Post` headers (RFC 2369, RFC 8058).
    pub list_unsubscribe: Option<String>,
    pub list_unsubscribe_post: Option<String>,
}

impl Mail {
    fn parse(raw: &[u8]) -> Option<Mail> {
        let message = MessageParser::default().parse(raw)?;
        let address = |a: Option<&mail_parser::Address>| {
            a.and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_owned()
        };
        Some(Mail {
            to: address(message.to()),
            from: address(message.from()),
            subject: message.subject().unwrap_or_default().to_owned(),
            message_id: message.message_id().unwrap_or_default().to_owned(),
            list_unsubscribe: message
                .header_raw("List-Unsubscribe")
                .map(|v| v.trim().to_owned()),
            list_unsubscribe_post: message
                .header_raw("List-Unsubscribe-Post")
                .map(|v| v.trim().to_owned()),
            text: message
                .body_text(0)
                .map(|t| t.into_owned())
                .unwrap_or_default(),
            html: message
                .body_html(0)
                .map(|t| t.into_owned())
                .unwrap_or_default(),
            attachments: message
                .attachments()
                .map(|part| {
                    let content_type = part
                        .content_type()
                        .map(|t| format!("{}/{}", t.ctype(), t.subtype().unwrap_or_default()))
                        .unwrap_or_default();
                    (
                        part.attachment_name().unwrap_or_default().to_owned(),
                        content_type,
                        String::from_utf8_lossy(part.contents()).into_owned(),
                    )
                })
                .collect(),
        })
    }

    /// The sign-in token from the link in this message.
    pub fn sign_in_token(&self) -> anyhow::Result<String> {
        let start = self
            .text
            .find("/sign-in?token=")
            .context("no sign-in link in the message")?;
        let token: String = self.text[start + "/sign-in?token=".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        Ok(token)
    }
}

/// How to start a server under test.
#[derive(Clone, Debug)]
pub struct Options {
    pub smtp_url: Option<String>,
    pub sign_in_requests_per_minute: u32,
    pub mail_lease_seconds: u64,
    /// Whether the server runs its background workers' loops, as in production. Off, the
    /// test drives them with [`TestApp::drain`], so nothing happens behind its back; on, for
    /// the tests of what happens while they run (a server killed mid-delivery, several
    /// servers claiming side by side).
    pub background_loops: bool,
    pub secret_key: String,
    pub mail_dir: PathBuf,
    /// Webhook settings; tests reach receivers on 127.0.0.1, so private targets are allowed
    /// unless a test turns them off.
    pub webhooks: groundswell_api::config::WebhookArgs,
    /// What one caller may do to others; generous by default, so only the tests of the
    /// limits meet them.
    pub limits: groundswell_domain::Limits,
    pub mail_retention_days: u32,
    pub ws_connections_per_address: u32,
    pub ws_subscriptions_per_connection: u32,
    /// RESPONSE_CACHE_BYTES: on (the default) unless a test turns it off with 0.
    pub response_cache_bytes: usize,
    /// MAX_CONNECTIONS: the default, unless a test of the cap lowers it.
    pub max_connections: usize,
    /// HEADER_READ_TIMEOUT_SECONDS: the default, unless a test of the timeout shortens it.
    pub header_read_timeout_seconds: u64,
}

impl Options {
    pub fn new(smtp: &SmtpServer) -> Self {
        Self {
            smtp_url: Some(smtp.url()),
            sign_in_requests_per_minute: 100_000,
            mail_lease_seconds: 300,
            background_loops: false,
            secret_key: groundswell_domain::secrets::SecretKey::generate().encode(),
            mail_dir: std::env::temp_dir()
                .join("groundswell-tests")
                .join(format!("mail-{}", Uuid::now_v7())),
            webhooks: groundswell_api::config::WebhookArgs {
                webhook_allow_private_targets: true,
                webhook_timeout_seconds: 5,
                webhook_poll_interval_ms: 50,
                // A minute, like mail's: a failed attempt comes due again when a test drains
                // as of a later time, never on its own in the middle of a drain.
                webhook_retry_base_ms: 60_000,
                webhook_lease_seconds: 120,
                webhook_deactivate_after_hours: 24,
            },
            limits: groundswell_domain::Limits {
                on_behalf_per_gathering: 1_000,
                on_behalf_per_hour: 1_000,
                rejoins_per_day: 1_000,
                members_added_per_hour: 1_000,
            },
            mail_retention_days: 30,
            ws_connections_per_address: 16,
            ws_subscriptions_per_connection: 20,
            response_cache_bytes: 32 * 1024 * 1024,
            max_connections: 4096,
            header_read_timeout_seconds: 30,
        }
    }
}

pub struct TestApp {
    pub address: SocketAddr,
    pub database_url: String,
    pub smtp: SmtpServer,
    pub options: Options,
    pub http: reqwest::Client,
    /// SQL statements the server has run for requests.
    statements: Arc<AtomicU64>,
    /// List items the server has written out in one step.
    written_whole: Arc<AtomicU64>,
    background: Background,
    events: groundswell_api::events::Events,
    /// The server's generations of public data, bumped after a change made behind its back.
    generations: Arc<groundswell_domain::generations::Generations>,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Starts the real server on a random port with a fresh database and a fresh SMTP server.
pub async fn spawn_app(backend: Backend) -> anyhow::Result<TestApp> {
    let smtp = SmtpServer::start()?;
    let options = Options::new(&smtp);
    let database_url = fresh_database(backend).await?;
    start(database_url, smtp, options).await
}

/// Starts a server on an existing database (a restart, or a second server).
pub async fn start(
    database_url: String,
    smtp: SmtpServer,
    options: Options,
) -> anyhow::Result<TestApp> {
    init_logs();
    let settings = Settings {
        bind_addr: "127.0.0.1:0".parse()?,
        database_url: database_url.clone(),
        database_max_connections: 10,
        public_url: "http://groundswell.test".to_owned(),
        smtp_url: options.smtp_url.clone(),
        mail_dir: options.mail_dir.clone(),
        mail_from: "Groundswell <noreply@groundswell.test>".to_owned(),
        sign_in_requests_per_minute: options.sign_in_requests_per_minute,
        secret_key: Some(options.secret_key.clone()),
        secret_key_file: PathBuf::from("/nonexistent"),
        // Debug builds under a full parallel test run are slow; what these tests check is
        // behaviour under concurrency, not speed (the benchmark measures that).
        request_timeout_seconds: 120,
        mail_max_attempts: 8,
        // A minute: a failed attempt comes due again when a test drains as of a later time
        // (`drain_as_of`), never on its own in the middle of a drain.
        mail_retry_base_ms: 60_000,
        mail_lease_seconds: options.mail_lease_seconds,
        mail_poll_interval_ms: 50,
        access_notes_retention_days: 30,
        pledge_quiet_days: 60,
        digest_interval_seconds: 60,
        webhooks: options.webhooks.clone(),
        mail_retention_days: options.mail_retention_days,
        on_behalf_per_gathering: options.limits.on_behalf_per_gathering,
        on_behalf_per_hour: options.limits.on_behalf_per_hour,
        reregistrations_per_day: options.limits.rejoins_per_day,
        members_added_per_hour: options.limits.members_added_per_hour,
        ws_connections_per_address: options.ws_connections_per_address,
        ws_subscriptions_per_connection: options.ws_subscriptions_per_connection,
        max_connections: options.max_connections,
        header_read_timeout_seconds: options.header_read_timeout_seconds,
        public_cache_max_age_seconds: 5,
        response_cache_bytes: options.response_cache_bytes,
        registration_request_ttl_hours: 24,
    };
    let app = Application::build(Config::from_settings(settings)?).await?;
    let background = app.background();
    let events = app.events();
    let app = if options.background_loops {
        app
    } else {
        app.without_background_loops()
    };
    let address = app.address();
    let statements = app.statement_counter();
    let written_whole = app.written_whole_counter();
    let generations = app.public_generations();
    let shutdown = app.shutdown_token();
    let handle = tokio::spawn(app.run_until_stopped());
    Ok(TestApp {
        address,
        database_url,
        smtp,
        options,
        http: reqwest::Client::new(),
        statements,
        written_whole,
        background,
        events,
        generations,
        shutdown,
        handle: Some(handle),
    })
}

/// What a GraphQL call answered.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// The first error's `extensions.code`, if any.
    pub fn code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }

    pub fn field(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["field"].as_str()
    }

    pub fn message(&self) -> &str {
        self.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
    }

    /// Fails the test with the errors if there were any.
    pub fn ok(self) -> anyhow::Result<Value> {
        if self.body.get("errors").is_some_and(|e| !e.is_null()) || self.status != 200 {
            bail!("request failed ({}): {}", self.status, self.body);
        }
        Ok(self.body["data"].clone())
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Runs the server's background work (mail, webhooks, due digests, housekeeping) until
    /// nothing is due, like crates.io's `run_pending_background_jobs`: after it, whatever was
    /// going to be sent has been, and a test asserting that nothing more arrives can.
    pub async fn drain(&self) -> anyhow::Result<()> {
        self.background.drain().await
    }

    /// [`drain`](Self::drain) with the mail and webhook outboxes' clock reading `at`: retries
    /// whose back-off ends by then, and claims whose lease has run out by then, are done too.
    pub async fn drain_as_of(&self, at: chrono::DateTime<chrono::Utc>) -> anyhow::Result<()> {
        self.background.drain_as_of(at).await
    }

    /// Waits until exactly `count` subscriptions on this server listen for events: after it, an
    /// event reaches each of them.
    pub async fn wait_for_subscribers(&self, count: usize) -> anyhow::Result<()> {
        wait_until(
            &format!("{count} subscriptions listening"),
            Duration::from_secs(30),
            async || Ok(self.events.subscriber_count() == count),
        )
        .await
    }

    /// The server's background workers, to drive from a task of the test's own.
    pub fn background(&self) -> Background {
        self.background.clone()
    }

    /// Drains the background work and returns the messages to `to`, failing unless at least
    /// `count` have arrived. (With the workers' loops running, it waits for them instead.)
    pub async fn mail_to(&self, to: &str, count: usize) -> anyhow::Result<Vec<Mail>> {
        self.drain().await?;
        if self.options.background_loops {
            return self.smtp.wait_for(to, count).await;
        }
        let found = self.smtp.messages_to(to);
        anyhow::ensure!(
            found.len() >= count,
            "{count} message(s) to {to} expected, {} arrived",
            found.len()
        );
        Ok(found)
    }

    /// The text `GET /metrics` answers.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        Ok(self
            .http
            .get(self.url("/metrics"))
            .send()
            .await?
            .text()
            .await?)
    }

    /// Posts one GraphQL operation, with a bearer token when given.
    pub async fn gql(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<Reply> {
        self.post_json(token, &json!({ "query": query, "variables": variables }))
            .await
    }

    pub async fn post_json(&self, token: Option<&str>, body: &Value) -> anyhow::Result<Reply> {
        let mut request = self.http.post(self.url("/graphql")).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        Ok(Reply { status, body })
    }

    pub async fn request_sign_in(&self, email: &str) -> anyhow::Result<Reply> {
        self.gql(
            None,
            "mutation($email: String!) { requestSignIn(email: $email) }",
            json!({ "email": email }),
        )
        .await
    }

    /// Asks for a link and waits for the mail: the token from the newest link to `email`.
    pub async fn sign_in_token(&self, email: &str) -> anyhow::Result<String> {
        let links = || {
            self.smtp
                .messages()
                .into_iter()
                .filter(|m| m.to == email && m.subject.contains("sign in"))
                .collect::<Vec<_>>()
        };
        let before = links().len();
        self.request_sign_in(email).await?.ok()?;
        self.drain().await?;
        if self.options.background_loops {
            wait_until(
                &format!("a sign-in link reaching {email}"),
                Duration::from_secs(30),
                async || Ok(links().len() > before),
            )
            .await?;
        }
        match links().get(before) {
            Some(mail) => mail.sign_in_token(),
            None => bail!("no sign-in link reached {email}"),
        }
    }

    /// Signs `email` in through the mail, returning the session token.
    pub async fn sign_in(&self, email: &str) -> anyhow::Result<String> {
        let token = self.sign_in_token(email).await?;
        let data = self
            .gql(
                None,
                "mutation($token: String!) { signIn(token: $token) { token } }",
                json!({ "token": token }),
            )
            .await?
            .ok()?;
        Ok(data["signIn"]["token"]
            .as_str()
            .context("no session token")?
            .to_owned())
    }

    /// Creates an organisation as `session`; returns its id.
    pub async fn create_organisation(&self, session: &str, name: &str) -> anyhow::Result<String> {
        let data = self
            .gql(
                Some(session),
                "mutation($input: CreateOrganisationInput!) { createOrganisation(input: $input) { id } }",
                json!({ "input": { "name": name, "kind": "USER_LED_ORGANISATION", "region": "NORTH_WEST" } }),
            )
            .await?
            .ok()?;
        Ok(data["createOrganisation"]["id"]
            .as_str()
            .context("no id")?
            .to_owned())
    }

    pub async fn create_api_token(
        &self,
        credential: Option<&str>,
        organisation_id: &str,
    ) -> anyhow::Result<Reply> {
        self.gql(
            credential,
            "mutation($org: ID!) { createApiToken(organisationId: $org, name: \"CRM sync\") { token apiToken { id name } } }",
            json!({ "org": organisation_id }),
        )
        .await
    }

    /// Gives `email` a role through the command line, as an operator would.
    pub async fn grant_role(&self, email: &str, role: &str) -> anyhow::Result<()> {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_groundswell"))
            .args(["grant-role", email, role])
            .env("DATABASE_URL", &self.database_url)
            .env("SECRET_KEY", &self.options.secret_key)
            .env("RUST_LOG", "warn")
            .output()
            .await?;
        anyhow::ensure!(
            output.status.success(),
            "grant-role failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }

    /// Signs in a convenor (made one first through the command line).
    pub async fn convenor(&self, email: &str) -> anyhow::Result<String> {
        self.grant_role(email, "CONVENOR").await?;
        self.sign_in(email).await
    }

    /// Creates a gathering as `session` from a default in-person gathering a month away,
    /// with `fields` replacing the defaults; publishes it unless `fields` says
    /// `"publish": false`. Returns the gathering (id, slug, title).
    pub async fn gathering(&self, session: &str, fields: Value) -> anyhow::Result<Value> {
        let start = chrono::Utc::now() + chrono::Duration::days(30);
        let mut input = json!({
            "title": format!("Gathering {}", Uuid::now_v7().simple()),
            "startsAt": start.to_rfc3339(),
            "endsAt": (start + chrono::Duration::hours(6)).to_rfc3339(),
            "timeZone": "Europe/London",
            "format": "IN_PERSON",
            "venue": "Leeds Civic Hall, Calverley Street, Leeds LS1 1UR",
            "inPersonCapacity": 10,
        });
        let publish = fields
            .get("publish")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        if let (Some(input), Some(fields)) = (input.as_object_mut(), fields.as_object()) {
            for (key, value) in fields {
                if key != "publish" {
                    input.insert(key.clone(), value.clone());
                }
            }
        }
        let data = self
            .gql(
                Some(session),
                "mutation($input: CreateGatheringInput!) { createGathering(input: $input) { id slug title } }",
                json!({ "input": input }),
            )
            .await?
            .ok()?;
        let gathering = data["createGathering"].clone();
        if publish {
            self.gql(
                Some(session),
                "mutation($id: ID!) { publishGathering(id: $id) { status } }",
                json!({ "id": gathering["id"] }),
            )
            .await?
            .ok()?;
        }
        Ok(gathering)
    }

    /// Registers as `session` with `input` fields added to the gathering id.
    pub async fn register(
        &self,
        session: &str,
        gathering_id: &Value,
        fields: Value,
    ) -> anyhow::Result<Reply> {
        let mut input = json!({ "gatheringId": gathering_id });
        if let (Some(input), Some(fields)) = (input.as_object_mut(), fields.as_object()) {
            input.extend(fields.clone());
        }
        self.gql(
            Some(session),
            "mutation($input: RegisterInput!) { register(input: $input) { id status waitlistPosition mode companions accessRequirements accessNotes person { email displayName } } }",
            json!({ "input": input }),
        )
        .await
    }

    /// Creates an organisation of a given kind and region as `session`; returns its id.
    pub async fn create_organisation_in(
        &self,
        session: &str,
        name: &str,
        kind: &str,
        region: &str,
    ) -> anyhow::Result<String> {
        let data = self
            .gql(
                Some(session),
                "mutation($input: CreateOrganisationInput!) { createOrganisation(input: $input) { id } }",
                json!({ "input": { "name": name, "kind": kind, "region": region } }),
            )
            .await?
            .ok()?;
        Ok(data["createOrganisation"]["id"]
            .as_str()
            .context("no id")?
            .to_owned())
    }

    /// Adds `email` to an organisation as a plain member and signs them in; their session.
    pub async fn add_member(
        &self,
        owner: &str,
        organisation_id: &str,
        email: &str,
    ) -> anyhow::Result<String> {
        self.gql(
            Some(owner),
            "mutation($org: ID!, $email: String!) { addOrganisationMember(organisationId: $org, email: $email, role: MEMBER) { id } }",
            json!({ "org": organisation_id, "email": email }),
        )
        .await?
        .ok()?;
        self.sign_in(email).await
    }

    /// An API token for the organisation, made by its owner.
    pub async fn api_token(&self, owner: &str, organisation_id: &str) -> anyhow::Result<String> {
        let made = self
            .create_api_token(Some(owner), organisation_id)
            .await?
            .ok()?;
        Ok(made["createApiToken"]["token"]
            .as_str()
            .context("no token")?
            .to_owned())
    }

    /// Makes a pledge as `credential` with `input` (merged over defaults); answers the reply.
    pub async fn make_pledge(
        &self,
        credential: Option<&str>,
        organisation_id: &str,
        input: Value,
    ) -> anyhow::Result<Reply> {
        let mut full = json!({
            "organisationId": organisation_id,
            "changes": ["LIVING_IN_THE_PLACE_WE_CALL_HOME"],
            "title": "Homes, not placements",
            "commitment": "Every person we support chooses where and with whom they live.",
        });
        if let (Some(full), Some(extra)) = (full.as_object_mut(), input.as_object()) {
            for (key, value) in extra {
                full.insert(key.clone(), value.clone());
            }
        }
        self.gql(
            credential,
            "mutation($input: MakePledgeInput!) { makePledge(input: $input) { id title status changes dueBy goneQuiet organisation { id name } coalition { slug } latestUpdate { id } } }",
            json!({ "input": full }),
        )
        .await
    }

    /// Makes a pledge that must succeed; its id.
    pub async fn pledge_id(
        &self,
        credential: &str,
        organisation_id: &str,
        input: Value,
    ) -> anyhow::Result<String> {
        let data = self
            .make_pledge(Some(credential), organisation_id, input)
            .await?
            .ok()?;
        Ok(data["makePledge"]["id"]
            .as_str()
            .context("no id")?
            .to_owned())
    }

    /// Forms a coalition led by `organisation_id`; its id.
    pub async fn form_coalition(
        &self,
        credential: &str,
        organisation_id: &str,
        name: &str,
        changes: Value,
    ) -> anyhow::Result<String> {
        let data = self
            .gql(
                Some(credential),
                "mutation($input: FormCoalitionInput!) { formCoalition(input: $input) { id } }",
                json!({ "input": { "organisationId": organisation_id, "name": name,
                    "purpose": "Act together on the five changes.", "changes": changes } }),
            )
            .await?
            .ok()?;
        Ok(data["formCoalition"]["id"]
            .as_str()
            .context("no id")?
            .to_owned())
    }

    /// Brings `organisation_id` into the coalition as an active member (invited by the lead's
    /// `lead` credential, accepted by the organisation's `member` credential).
    pub async fn join_coalition(
        &self,
        lead: &str,
        member: &str,
        coalition_id: &str,
        organisation_id: &str,
    ) -> anyhow::Result<()> {
        let invited = self
            .gql(
                Some(lead),
                "mutation($c: ID!, $o: ID!) { inviteToCoalition(coalitionId: $c, organisationId: $o) { id } }",
                json!({ "c": coalition_id, "o": organisation_id }),
            )
            .await?
            .ok()?;
        self.gql(
            Some(member),
            "mutation($m: ID!) { acceptCoalitionMembership(membershipId: $m) { status } }",
            json!({ "m": invited["inviteToCoalition"]["id"] }),
        )
        .await?
        .ok()?;
        Ok(())
    }

    /// Posts a progress update as `credential` with `input`; the reply.
    pub async fn post_update(
        &self,
        credential: Option<&str>,
        input: Value,
    ) -> anyhow::Result<Reply> {
        self.gql(
            credential,
            "mutation($input: PostProgressUpdateInput!) { postProgressUpdate(input: $input) { id signal percentComplete evidenceUrls body organisation { id } pledge { id status } coalition { id } } }",
            json!({ "input": input }),
        )
        .await
    }

    /// The five changes' figures, keyed by change.
    pub async fn change_figures(&self) -> anyhow::Result<std::collections::HashMap<String, Value>> {
        let data = self
            .gql(
                None,
                "{ changes { change pledgeCount organisationCount coalitionCount progressUpdateCount lastProgressAt } }",
                json!({}),
            )
            .await?
            .ok()?;
        Ok(data["changes"]
            .as_array()
            .context("no changes")?
            .iter()
            .map(|c| {
                (
                    c["change"].as_str().unwrap_or_default().to_owned(),
                    c.clone(),
                )
            })
            .collect())
    }

    /// Runs one statement on the server's database, for setups no client could make (moving
    /// time back).
    pub async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        let db = self.database().await?;
        db.execute_unprepared(sql).await?;
        db.close().await?;
        // No write of the server's own told its cache of public answers: tell it, as one would.
        self.generations
            .bump(groundswell_domain::generations::Areas::ALL);
        Ok(())
    }

    /// Posts one GraphQL operation and counts the SQL statements the server ran for it.
    pub async fn gql_counting(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<(Reply, u64)> {
        let before = self.statements.load(Ordering::SeqCst);
        let reply = self.gql(token, query, variables).await?;
        Ok((reply, self.statements.load(Ordering::SeqCst) - before))
    }

    /// Waits (five seconds at most) until the server has run no statement for 200 ms, so work
    /// a request set off after answering (an event's NOTIFY) is not counted for the next one.
    pub async fn settle(&self) {
        let mut last = (self.statements_so_far(), Instant::now());
        // Still busy after five seconds is left to the count's own assertion to show.
        let _ = wait_until(
            "the server running no statement for 200 ms",
            Duration::from_secs(5),
            async || {
                let now = self.statements_so_far();
                if now != last.0 {
                    last = (now, Instant::now());
                }
                Ok(last.1.elapsed() >= Duration::from_millis(200))
            },
        )
        .await;
    }

    /// SQL statements the server has run so far (requests and what they set off, such as
    /// loading events for subscribers).
    pub fn statements_so_far(&self) -> u64 {
        self.statements.load(Ordering::SeqCst)
    }

    /// List items this server has written out in one step so far (`graphql::listed`).
    pub fn written_whole(&self) -> u64 {
        self.written_whole.load(Ordering::SeqCst)
    }

    /// A direct connection to the server's database, for checks no client could make.
    pub async fn database(&self) -> anyhow::Result<DatabaseConnection> {
        let mut options = sea_orm::ConnectOptions::new(self.database_url.clone());
        options.sqlx_logging(false).max_connections(2);
        Ok(SeaDatabase::connect(options).await?)
    }

    pub async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        let db = self.database().await?;
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                sql.to_owned(),
            ))
            .await?
            .context("no row")?;
        let count: i64 = row.try_get_by_index(0)?;
        db.close().await?;
        Ok(count)
    }

    /// Stops the server as SIGTERM would, waiting for in-flight work to finish.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await??;
        }
        Ok(())
    }

    /// Kills the server at once, mid-whatever it was doing, as `kill -9` would.
    pub fn kill(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

/// A GraphQL client over WebSocket (graphql-transport-ws).
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/graphql/ws`, authenticating with `token` when given, and waits for the server's ack.
pub async fn ws_connect(app: &TestApp, token: Option<&str>) -> anyhow::Result<Socket> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let mut request = format!("ws://{}/graphql/ws", app.address).into_client_request()?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    let payload = match token {
        Some(token) => json!({ "Authorization": format!("Bearer {token}") }),
        None => json!({}),
    };
    socket
        .send(Message::text(
            json!({ "type": "connection_init", "payload": payload }).to_string(),
        ))
        .await?;
    let ack = socket.next().await.context("closed")??;
    anyhow::ensure!(ack.to_text()?.contains("connection_ack"), "{ack}");
    Ok(socket)
}

/// The next message that is not a keep-alive or a completion, waiting at most `wait`.
pub async fn ws_next(socket: &mut Socket, wait: Duration) -> anyhow::Result<Value> {
    use futures::StreamExt;
    tokio::time::timeout(wait, async {
        loop {
            let message = socket.next().await.context("closed")??;
            let value: Value = serde_json::from_str(message.to_text()?)?;
            if !matches!(value["type"].as_str(), Some("ping" | "pong" | "complete")) {
                return anyhow::Ok(value);
            }
        }
    })
    .await?
}

/// Runs `node tests/node/<script> <args…>` (the tools pinned in package.json, installed by
/// `scripts/ensure-test-tools`) and returns what it printed. A non-zero exit fails with what the
/// script wrote, so a browser or audit failure reads in the test's own output.
pub async fn node(script: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut command = tokio::process::Command::new("node");
    command
        .arg(root.join("tests/node").join(script))
        .args(args)
        .current_dir(root)
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(300), command.output())
        .await
        .with_context(|| format!("node {script} ran over five minutes"))?
        .with_context(|| {
            format!("could not run node {script}: run scripts/ensure-test-tools first")
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "node {script} failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// A `groundswell serve` process, as an operator runs it. It binds a port of its own choosing
/// (`BIND_ADDR=127.0.0.1:0`) and says where in its log (JSON lines on stdout), which the test
/// reads for that and for other events.
pub struct ServerProcess {
    pub child: tokio::process::Child,
    pub address: SocketAddr,
    log: Arc<Mutex<Vec<Value>>>,
}

impl ServerProcess {
    /// Starts `groundswell serve` with `env` added (a `RUST_LOG` given there must keep
    /// `groundswell_api::startup=info`), and waits until it says where it serves.
    pub async fn start(env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_groundswell"));
        command
            .arg("serve")
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn,groundswell_api::startup=info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let log: Arc<Mutex<Vec<Value>>> = Arc::default();
        let lines = log.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut reader = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if let Ok(mut log) = lines.lock() {
                    log.push(value);
                }
            }
        });
        let serving = |log: &Arc<Mutex<Vec<Value>>>| {
            log.lock().ok().and_then(|log| {
                log.iter().find_map(|line| {
                    (line["fields"]["message"] == "serving")
                        .then(|| line["fields"]["address"].as_str()?.parse().ok())
                        .flatten()
                })
            })
        };
        wait_until(
            "the server saying where it serves",
            Duration::from_secs(60),
            async || {
                if let Some(status) = child.try_wait()? {
                    bail!("the server exited before serving: {status}");
                }
                Ok(serving(&log).is_some())
            },
        )
        .await?;
        let address = serving(&log).context("no address")?;
        Ok(Self {
            child,
            address,
            log,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// How many log lines so far carry `message`.
    pub fn logged(&self, message: &str) -> usize {
        self.log
            .lock()
            .map(|log| {
                log.iter()
                    .filter(|line| line["fields"]["message"] == message)
                    .count()
            })
            .unwrap_or_default()
    }

    /// `kill -9`: the process gets no chance to finish anything.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }
}
