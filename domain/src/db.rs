//! The database handle. SQLite allows one writer at a time, so on SQLite write transactions
//! queue on an in-process lock instead of failing with "database is locked"; PostgreSQL relies on
//! its own row locks and unique keys, which is what lets several servers share one database.

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    ops::Deref,
    sync::Arc,
    time::Duration,
};

use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    Statement, TransactionTrait,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use tokio::sync::{Mutex, OwnedMutexGuard};
use uuid::Uuid;

use crate::{
    generations::{Areas, Generations},
    reads::Reads,
};

/// How many in-process locks [`Database::serialize`] spreads its keys over.
const STRIPES: usize = 64;

/// How long a pooled connection may sit idle before it is tested again when taken out.
const IDLE_BEFORE_TEST: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct Database {
    conn: DatabaseConnection,
    reads: Reads,
    sqlite_writer: Option<Arc<Mutex<()>>>,
    stripes: Arc<[Arc<Mutex<()>>]>,
    local: Arc<Local>,
    generations: Arc<Generations>,
}

/// How long a statement waits for a connection before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// How the pool is set up, on either backend.
fn connect_options(url: &str, max_connections: u32) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // sqlx tests a connection with a round trip when it goes back to the pool, and by
        // default again when it is taken out: three round trips for every statement. A
        // connection taken again soon after it passed the first test is not tested twice; one
        // idle for longer (which a proxy or firewall may have dropped) still is. The cost:
        // after the database restarts, each connection used in the last 10 s fails the one
        // request that takes it next (it is then closed, never reused), where before a new
        // one was opened unseen. No data is at risk: the statement fails before it is sent.
        .test_before_acquire_if_idle_for(IDLE_BEFORE_TEST)
        // Statements carry emails and token hashes: they stay out of the logs.
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|opts| {
            opts.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(30))
        });
    options
}

impl Database {
    /// Connects to `sqlite://…` (creating the file) or `postgres://…`.
    ///
    /// On PostgreSQL, half of `max_connections` (rounded down) serve single-statement reads
    /// (see [`crate::reads`]) and the rest everything else.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbErr> {
        let postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
        let for_reads = if postgres { max_connections / 2 } else { 0 };
        let options = connect_options(url, max_connections - for_reads);
        let conn = sea_orm::Database::connect(options).await?;
        let reads = if for_reads > 0 {
            Reads::postgres(
                url,
                for_reads as usize,
                ACQUIRE_TIMEOUT,
                IDLE_BEFORE_TEST,
                conn.clone(),
            )?
        } else {
            Reads::main_only(conn.clone())
        };
        let sqlite_writer =
            (conn.get_database_backend() == DbBackend::Sqlite).then(|| Arc::new(Mutex::new(())));
        Ok(Self {
            conn,
            reads,
            sqlite_writer,
            stripes: (0..STRIPES).map(|_| Arc::new(Mutex::new(()))).collect(),
            local: Arc::default(),
            generations: Arc::default(),
        })
    }

    /// The main pool: for the migrator, and for reads that are more than one statement.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Where a read that is one statement runs, outside any transaction.
    pub fn reads(&self) -> &Reads {
        &self.reads
    }

    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// Begins a transaction that will write. Every write goes through here. It may change any
    /// public data: see [`Database::begin_write_on`] for writes that cannot.
    pub async fn begin_write(&self) -> Result<WriteTxn, DbErr> {
        self.begin_write_on(Areas::ALL).await
    }

    /// Begins a transaction that will write, and may change only the public data in `areas`
    /// ([`Areas::NONE`] for what nobody else can read). On commit those areas' generations
    /// move on, here at once and on other servers through PostgreSQL, so no cached public
    /// answer outlives the change.
    pub async fn begin_write_on(&self, areas: Areas) -> Result<WriteTxn, DbErr> {
        let guard = match &self.sqlite_writer {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let txn = self.conn.begin().await?;
        Ok(WriteTxn {
            txn,
            areas,
            generations: self.generations.clone(),
            _guard: guard,
        })
    }

    /// The generations of public data, which committed writes move on.
    pub fn generations(&self) -> &Arc<Generations> {
        &self.generations
    }

    /// Queues this process's writers to one row (say, a gathering in a registration rush)
    /// before they take a connection. The row lock in the database is what keeps the rule across
    /// servers; this only stops waiting writers from holding pool connections while they wait,
    /// which would starve every other request. Take it before [`Database::begin_write`].
    pub async fn serialize(&self, key: Uuid) -> OwnedMutexGuard<()> {
        let stripe = (key.as_u128() % self.stripes.len() as u128) as usize;
        self.stripes[stripe].clone().lock_owned().await
    }

    /// The value of type `T` this process keeps beside the handle (and its clones), made on
    /// first use: the registration batch queue lives here, so this module need not know of it.
    pub(crate) fn local<T: Any + Default + Send + Sync>(&self) -> Arc<T> {
        let mut values = self.local.0.lock().unwrap_or_else(|e| e.into_inner());
        let value = values
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()))
            .clone();
        // The entry under `T`'s id always holds a `T`; were it not so, a fresh one replaces it.
        value.downcast::<T>().unwrap_or_else(|_| {
            let fresh = Arc::new(T::default());
            values.insert(TypeId::of::<T>(), fresh.clone());
            fresh
        })
    }

    pub async fn ping(&self) -> Result<(), DbErr> {
        self.conn.ping().await
    }

    /// Counts every statement run through this handle; used by tests and the benchmark to show
    /// that a page's statement count does not grow with its size.
    pub fn on_statement(&mut self, callback: impl Fn() + Send + Sync + 'static) {
        let callback: Arc<dyn Fn() + Send + Sync> = Arc::new(callback);
        let count = callback.clone();
        self.conn.set_metric_callback(move |_| count());
        self.reads.on_statement(callback, self.conn.clone());
    }
}

/// What this process keeps beside a handle for the areas above storage, one value per type (see
/// [`Database::local`]). Nothing in it is authoritative: several servers agree only through the
/// database.
#[derive(Default)]
struct Local(std::sync::Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>);

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local").finish_non_exhaustive()
    }
}

/// A write transaction. Dropping it without `commit` rolls back, then releases the SQLite
/// writer lock (fields drop in order).
pub struct WriteTxn {
    txn: DatabaseTransaction,
    /// The public data this write may change.
    areas: Areas,
    generations: Arc<Generations>,
    _guard: Option<OwnedMutexGuard<()>>,
}

impl WriteTxn {
    /// Commits, then moves on the generations of the areas written, before returning: a
    /// caller that answers after this cannot be followed by a cached answer from before the
    /// write. On PostgreSQL the other servers are told from inside the transaction, so only
    /// a write that commits tells them.
    pub async fn commit(self) -> Result<(), DbErr> {
        let WriteTxn {
            txn,
            areas,
            generations,
            _guard,
        } = self;
        if !areas.is_empty() && txn.get_database_backend() == DbBackend::Postgres {
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [
                    crate::generations::CHANNEL.into(),
                    generations.payload(areas).into(),
                ],
            ))
            .await?;
        }
        let committed = txn.commit().await;
        // Also when the commit's outcome is unknown: forgetting answers is always safe.
        generations.bump(areas);
        committed
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

/// The statement that claims up to `limit` rows of an outbox-like `table` (mail, webhook
/// deliveries): those due (`PENDING` with `next_attempt_at` passed) and those whose earlier
/// claim lapsed (`SENDING` past `locked_until`, the server holding them having died), marking
/// them `SENDING` until now + `lease` and counting the attempt. On PostgreSQL `FOR UPDATE SKIP
/// LOCKED` keeps two servers from claiming one row; SQLite has one writer. Run it in a write
/// transaction and read the rows it returns.
pub(crate) fn lease_claim(
    backend: DbBackend,
    table: &'static str,
    limit: u64,
    lease: Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> sea_orm::Statement {
    let locked_until = crate::time::after(
        now,
        chrono::TimeDelta::from_std(lease).unwrap_or(chrono::TimeDelta::MAX),
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let (sql, values): (String, Vec<sea_orm::Value>) = match backend {
        DbBackend::Postgres => (
            format!(
                "UPDATE {table} SET status = 'SENDING', locked_until = $1, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM {table} \
                   WHERE (status = 'PENDING' AND next_attempt_at <= $2) \
                      OR (status = 'SENDING' AND locked_until < $2) \
                   ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING *"
            ),
            vec![locked_until.into(), now.into(), limit.into()],
        ),
        _ => (
            format!(
                "UPDATE {table} SET status = 'SENDING', locked_until = ?, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM {table} \
                   WHERE (status = 'PENDING' AND next_attempt_at <= ?) \
                      OR (status = 'SENDING' AND locked_until < ?) \
                   ORDER BY next_attempt_at LIMIT ?) \
                 RETURNING *"
            ),
            vec![locked_until.into(), now.into(), now.into(), limit.into()],
        ),
    };
    sea_orm::Statement::from_sql_and_values(backend, sql, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection that went back to the pool moments ago (which sqlx tests on the way back)
    /// is handed out again without another round trip; one idle for longer is tested first.
    #[test]
    fn only_a_connection_idle_for_a_while_is_tested_before_use() {
        let options = connect_options("sqlite::memory:", 1);
        assert!(!options.get_test_before_acquire());
        assert_eq!(
            options.get_test_before_acquire_if_idle_for(),
            Some(IDLE_BEFORE_TEST)
        );
    }
}
