//! Building and running the application: connect and migrate, bind (port 0 in tests), then
//! serve HTTP and deliver mail until stopped, letting in-flight requests and mail finish.

use std::{
    net::SocketAddr,
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::Context;
use governor::{Quota, RateLimiter};
use groundswell_migration::{Migrator, MigratorTrait};
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;

use crate::{
    Config,
    background::{Background, Maintenance},
    cli::connect,
    digests::DigestScheduler,
    events::Events,
    graphql::{self, AppContext},
    http::{self, AppState},
    mail::{DeliveryWorker, Renderer, Transport},
    response_cache::ResponseCache,
    webhooks::WebhookWorker,
};

pub struct Application {
    listener: TcpListener,
    /// The cap on connections held at once, which the listener takes places from.
    connections: http::connections::Connections,
    /// How long a client has to send a request's headers (`HEADER_READ_TIMEOUT_SECONDS`).
    header_read_timeout: std::time::Duration,
    events: Events,
    /// Public answers kept in memory, which hear of other servers' writes on PostgreSQL.
    response_cache: Option<Arc<ResponseCache>>,
    /// On PostgreSQL, the connection listening for other servers' writes.
    public_changes: Option<sea_orm::sqlx::postgres::PgListener>,
    database_url: String,
    address: SocketAddr,
    router: axum::Router,
    background: Background,
    /// Whether `run_until_stopped` runs the background workers' loops (tests drive them).
    background_loops: bool,
    shutdown: CancellationToken,
    statements: Arc<AtomicU64>,
    written_whole: Arc<AtomicU64>,
    generations: Arc<groundswell_domain::generations::Generations>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        crate::metrics::init();
        let db = connect(&config).await?;
        Migrator::up(db.conn(), None)
            .await
            .context("migrating the database")?;

        // Statements run for requests (not by the mail worker, which keeps its own handle) are
        // counted, so a test or benchmark can read what one request cost.
        let statements = Arc::new(AtomicU64::new(0));
        let worker_db = db.clone();
        let mut db = db;
        let counter = statements.clone();
        db.on_statement(move || {
            counter.fetch_add(1, Ordering::Relaxed);
        });

        http::pages::check_templates()?;
        let mail_queued = Arc::new(Notify::new());
        let renderer = Arc::new(Renderer::new(
            config.public_url.clone(),
            config.secret_key.clone(),
        )?);
        let events = Events::new(db.clone());
        let per_minute =
            NonZeroU32::new(config.sign_in_requests_per_minute).unwrap_or(NonZeroU32::MIN);
        let written_whole = Arc::new(AtomicU64::new(0));
        let context = AppContext {
            db: db.clone(),
            secret: config.secret_key.clone(),
            sign_in_limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
            limits: config.limits,
            mail_queued: mail_queued.clone(),
            events: events.clone(),
            public_url: config.public_url.clone(),
            quiet_after: config.quiet_after,
            renderer,
            webhooks: config.webhooks.clone(),
            registration_request_ttl: config.registration_request_ttl,
            written_whole: written_whole.clone(),
        };
        let context_for_pages = context.clone();
        let schema = graphql::build(context.clone());
        let prevalidated_schema = graphql::build_prevalidated(context.clone());
        let websocket_schema = graphql::build_for_websocket(context);
        let transport = match &config.smtp_url {
            Some(url) => Transport::smtp(url)?,
            None => Transport::folder(config.mail_dir.clone())?,
        };
        let connections = http::connections::Connections::new(config.max_connections);
        // Requests held now, which mail delivery makes way for.
        let load = http::load::Load::new(http::request_slots(config.database_max_connections));
        let worker = DeliveryWorker::new(
            worker_db.clone(),
            Renderer::new(config.public_url.clone(), config.secret_key.clone())?,
            transport,
            config.mail_from.clone(),
            config.mail.clone(),
            mail_queued.clone(),
        )
        .yielding_to(load.clone());
        let webhooks = WebhookWorker::new(worker_db, config.webhooks.clone(), mail_queued.clone())?;
        let scheduler = DigestScheduler {
            db: db.clone(),
            interval: config.digest_interval,
            quiet_after: config.quiet_after,
            mail_queued,
        };
        let db_for_maintenance = db.clone();
        let generations = db.generations().clone();
        let on_postgres = db.backend() == sea_orm::DbBackend::Postgres;
        // On PostgreSQL the cache hears of other servers' writes from the first request on;
        // on SQLite this is the only server, and hears of every write as it commits.
        let public_changes = if config.response_cache_bytes > 0 && on_postgres {
            match crate::response_cache::listen(&config.database_url).await {
                Ok(listener) => Some(listener),
                Err(err) => {
                    tracing::warn!(error = %err, "listening for public changes failed; the cache waits until it can");
                    None
                }
            }
        } else {
            None
        };
        let response_cache = (config.response_cache_bytes > 0).then(|| {
            Arc::new(ResponseCache::new(
                config.response_cache_bytes,
                std::time::Duration::from_secs(config.public_cache_max_age_seconds),
                db.generations().clone(),
                !on_postgres || public_changes.is_some(),
            ))
        });
        let router = http::router(
            AppState::new(http::Shared {
                db,
                schema,
                prevalidated_schema,
                websocket_schema,
                public_url: config.public_url.clone().into(),
                max_body_bytes: config.max_body_bytes,
                secret: config.secret_key.clone(),
                websocket_connections: crate::graphql::websocket::Connections::new(
                    config.ws_connections_per_address,
                ),
                subscriptions_per_connection: config.ws_subscriptions_per_connection,
                persisted: Arc::default(),
                parsed_documents: Arc::default(),
                public_cache_max_age_seconds: config.public_cache_max_age_seconds,
                response_cache: response_cache.clone(),
                app: context_for_pages,
            }),
            config.request_timeout,
            load,
            connections.clone(),
        );
        let listener =
            listen(config.bind_addr).with_context(|| format!("binding {}", config.bind_addr))?;
        let address = listener.local_addr()?;
        let maintenance = Maintenance {
            db: db_for_maintenance,
            access_retention: config.access_notes_retention,
            mail_retention: config.mail_retention,
        };
        Ok(Self {
            listener,
            connections,
            header_read_timeout: config.header_read_timeout,
            events,
            response_cache,
            public_changes,
            database_url: config.database_url.clone(),
            address,
            router,
            background: Background::new(maintenance, scheduler, webhooks, worker),
            background_loops: true,
            shutdown: CancellationToken::new(),
            statements,
            written_whole,
            generations,
        })
    }

    /// How many SQL statements requests have run so far (authentication included; the mail
    /// worker's own statements not).
    pub fn statement_counter(&self) -> Arc<AtomicU64> {
        self.statements.clone()
    }

    /// How many list items this server has written out in one step (`graphql::listed`); tests
    /// read it to know which path answered, whatever other servers in the process do.
    pub fn written_whole_counter(&self) -> Arc<AtomicU64> {
        self.written_whole.clone()
    }

    /// The generations of public data this server's cache checks: a test that changes the
    /// database behind the server's back (no client could) bumps them, as a write would.
    pub fn public_generations(&self) -> Arc<groundswell_domain::generations::Generations> {
        self.generations.clone()
    }

    /// Where the server listens (the real port when BIND_ADDR asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The background workers, for a caller (a test) to run with [`Background::drain`].
    pub fn background(&self) -> Background {
        self.background.clone()
    }

    /// The events this server relays to its subscribers (a test waits on their number).
    pub fn events(&self) -> Events {
        self.events.clone()
    }

    /// Leaves the background work to whoever holds [`background`](Self::background):
    /// `run_until_stopped` then serves HTTP and relays events, and runs no worker loop, so
    /// nothing happens behind a test's back.
    pub fn without_background_loops(mut self) -> Self {
        self.background_loops = false;
        self
    }

    /// Cancelling this token stops the server gracefully, as SIGTERM does.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until SIGTERM, Ctrl-C or the shutdown token; then stops taking requests, lets
    /// those in flight finish, and lets the mail worker finish its batch and the digest
    /// scheduler its run.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = self.shutdown.clone();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            signals.cancel();
        });
        tracing::info!(address = %self.address, "serving");
        let server = http::serve::serve(
            http::connections::Capped::new(self.listener, self.connections),
            self.router,
            self.header_read_timeout,
            shutdown.clone(),
        );
        let background = async {
            if self.background_loops {
                self.background.run(shutdown.clone()).await;
            }
        };
        let (follow_url, follow_shutdown) = (self.database_url.clone(), shutdown.clone());
        let listener = self.public_changes;
        let following = async move {
            if let Some(cache) = self.response_cache
                && (listener.is_some() || follow_url.starts_with("postgres"))
            {
                crate::response_cache::follow(cache, follow_url, listener, follow_shutdown).await;
            }
        };
        tokio::join!(
            server,
            background,
            following,
            self.events.relay(self.database_url, shutdown.clone()),
            crate::metrics::upkeep(shutdown.clone()),
        );
        Ok(())
    }
}

/// Connections the kernel completes and holds for the server before it accepts them. Tokio's
/// `TcpListener::bind` asks for 128, the standard library's default: a rush of registrations
/// opening 2,000 connections at once overflowed it, and each connection past it waited for its
/// client's one-second SYN retry (one benchmark rush: `nstat` counted 314 ListenOverflows).
/// Past `MAX_CONNECTIONS`, this queue is where connections wait. The kernel caps it at
/// `net.core.somaxconn` (4096 on current kernels).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `address` as `TcpListener::bind` does (reusing the address), with [`LISTEN_BACKLOG`].
fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
