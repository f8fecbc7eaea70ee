//! The database handle. SQLite allows one writer at a time, so on SQLite write transactions
//! queue on an in-process lock instead of failing with "database is locked"; PostgreSQL relies on
//! its own row locks and unique keys, which is what lets several servers share one database.

use std::{ops::Deref, sync::Arc, time::Duration};

use sea_orm::{
    ConnectOptions, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, TransactionTrait,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use tokio::sync::{Mutex, OwnedMutexGuard};
use uuid::Uuid;

/// How many in-process locks [`Database::serialize`] spreads its keys over.
const STRIPES: usize = 64;

#[derive(Clone, Debug)]
pub struct Database {
    conn: DatabaseConnection,
    sqlite_writer: Option<Arc<Mutex<()>>>,
    stripes: Arc<[Arc<Mutex<()>>]>,
    registrations: Arc<crate::registrations::batch::Queue>,
}

impl Database {
    /// Connects to `sqlite://…` (creating the file) or `postgres://…`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbErr> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            // Statements carry emails and token hashes: they stay out of the logs.
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|opts| {
                opts.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(30))
            });
        let conn = sea_orm::Database::connect(options).await?;
        let sqlite_writer =
            (conn.get_database_backend() == DbBackend::Sqlite).then(|| Arc::new(Mutex::new(())));
        Ok(Self {
            conn,
            sqlite_writer,
            stripes: (0..STRIPES).map(|_| Arc::new(Mutex::new(()))).collect(),
            registrations: Arc::default(),
        })
    }

    /// The connection, for reads and for the migrator.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// Begins a transaction that will write. Every write goes through here.
    pub async fn begin_write(&self) -> Result<WriteTxn, DbErr> {
        let guard = match &self.sqlite_writer {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let txn = self.conn.begin().await?;
        Ok(WriteTxn { txn, _guard: guard })
    }

    /// Queues this process's writers to one row (say, a gathering in a registration rush)
    /// before they take a connection. The row lock in the database is what keeps the rule across
    /// servers; this only stops waiting writers from holding pool connections while they wait,
    /// which would starve every other request. Take it before [`Database::begin_write`].
    pub async fn serialize(&self, key: Uuid) -> OwnedMutexGuard<()> {
        let stripe = (key.as_u128() % self.stripes.len() as u128) as usize;
        self.stripes[stripe].clone().lock_owned().await
    }

    /// Registrations waiting for their gathering's next batch in this process.
    pub(crate) fn registration_queue(&self) -> &crate::registrations::batch::Queue {
        &self.registrations
    }

    pub async fn ping(&self) -> Result<(), DbErr> {
        self.conn.ping().await
    }

    /// Counts every statement run through this handle; used by tests and the benchmark to show
    /// that a page's statement count does not grow with its size.
    pub fn on_statement(&mut self, callback: impl Fn() + Send + Sync + 'static) {
        self.conn.set_metric_callback(move |_| callback());
    }
}

/// A write transaction. Dropping it without `commit` rolls back, then releases the SQLite
/// writer lock (fields drop in order).
pub struct WriteTxn {
    txn: DatabaseTransaction,
    _guard: Option<OwnedMutexGuard<()>>,
}

impl WriteTxn {
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }
}

impl Deref for WriteTxn {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

/// True when a database error is a unique-key violation on either backend.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}
