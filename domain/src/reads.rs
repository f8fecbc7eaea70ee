//! Single-statement reads on PostgreSQL, on connections of their own.
//!
//! sqlx tests every connection with a round trip as it goes back to its pool (`ping` in
//! `Floating::return_to_pool`, sqlx 0.9), whatever happened on it. For a read that is one
//! statement, that doubles the round trips. The test is there for connections abandoned
//! part-way through a statement or a transaction. These connections never hold a transaction,
//! and only one whose statement was cut short (the request was cancelled) or failed is tested
//! before it goes back; one that fails the test is closed. (A read of one row may leave the
//! rest of PostgreSQL's answer unread; sqlx reads it, up to "ready", before it sends anything
//! more on that connection.)
//!
//! [`Reads`] implements sea-orm's `ConnectionTrait`, so the domain's reads run on it unchanged.
//! On SQLite, or with too few connections to spare (`DATABASE_MAX_CONNECTIONS` of 1), and for
//! anything but a query (which a read never sends), it hands the statement to the main pool.

use std::{sync::Arc, time::Duration};

use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr,
    Statement, Values,
    sqlx::{
        self, Connection, PgConnection,
        postgres::{PgConnectOptions, PgRow},
    },
};
use sea_query_sqlx::SqlxValues;

/// What [`crate::Database::on_statement`] counts with.
type Counter = Option<Arc<dyn Fn() + Send + Sync>>;

/// How long a connection is kept at most (sqlx's pool's default `max_lifetime`): a server that
/// failed over, or a plan cached on the connection, is not kept for ever.
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Opens and checks the connections of [`Reads`].
pub(crate) struct Opener {
    options: PgConnectOptions,
    idle_before_test: Duration,
}

impl managed::Manager for Opener {
    type Type = PgConnection;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<PgConnection, sqlx::Error> {
        PgConnection::connect_with(&self.options).await
    }

    /// A connection idle for a while (which a proxy or firewall may have dropped, or the
    /// database restarted under) is tested before it is lent again; a failed one is closed and
    /// another taken, as the main pool does. One older than [`MAX_LIFETIME`] is closed too, as
    /// sqlx's pool closes its own after the same time.
    async fn recycle(
        &self,
        conn: &mut PgConnection,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        if metrics.age() >= MAX_LIFETIME {
            return Err(RecycleError::message("the connection reached its lifetime"));
        }
        if metrics.last_used() >= self.idle_before_test {
            conn.ping().await?;
        }
        Ok(())
    }
}

/// Where single-statement reads run: connections of their own on PostgreSQL, the main pool
/// otherwise.
#[derive(Clone)]
pub struct Reads {
    pool: Option<managed::Pool<Opener>>,
    /// For what is not a query.
    main: DatabaseConnection,
    counter: Counter,
}

impl std::fmt::Debug for Reads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reads")
            .field("status", &self.pool.as_ref().map(managed::Pool::status))
            .finish_non_exhaustive()
    }
}

impl Reads {
    /// Every read goes to `main`.
    pub(crate) fn main_only(main: DatabaseConnection) -> Self {
        Self {
            pool: None,
            main,
            counter: None,
        }
    }

    /// At most `size` connections to the PostgreSQL database at `url`, opened when first
    /// needed; a read waits at most `acquire_timeout` for one.
    pub(crate) fn postgres(
        url: &str,
        size: usize,
        acquire_timeout: Duration,
        idle_before_test: Duration,
        main: DatabaseConnection,
    ) -> Result<Self, DbErr> {
        use sqlx::ConnectOptions as _;
        let options: PgConnectOptions = url
            .parse::<PgConnectOptions>()
            .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))))?
            // Statements carry emails and token hashes: they stay out of the logs.
            .disable_statement_logging();
        let pool = managed::Pool::builder(Opener {
            options,
            idle_before_test,
        })
        .max_size(size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(acquire_timeout))
        .create_timeout(Some(acquire_timeout))
        .recycle_timeout(Some(acquire_timeout))
        .build()
        .map_err(|e| DbErr::Custom(format!("the read connections could not be set up: {e}")))?;
        Ok(Self {
            pool: Some(pool),
            main,
            counter: None,
        })
    }

    /// Counts every statement run on this side's own connections with `callback`, and hands
    /// the rest to `main` (which counts its own).
    pub(crate) fn on_statement(
        &mut self,
        callback: Arc<dyn Fn() + Send + Sync>,
        main: DatabaseConnection,
    ) {
        self.counter = Some(callback);
        self.main = main;
    }

    /// A connection for one statement, counted as a statement run.
    async fn lend(pool: &managed::Pool<Opener>, counter: &Counter) -> Result<Lent, DbErr> {
        match pool.get().await {
            Ok(conn) => {
                if let Some(count) = counter {
                    count();
                }
                Ok(Lent(Some(conn)))
            }
            Err(managed::PoolError::Timeout(_)) => Err(DbErr::ConnectionAcquire(
                sea_orm::error::ConnAcquireErr::Timeout,
            )),
            Err(managed::PoolError::Backend(e)) => {
                Err(DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))))
            }
            Err(e) => Err(DbErr::Custom(format!(
                "no read connection could be had: {e}"
            ))),
        }
    }

    /// Runs `stmt` on a lent connection of `pool`.
    async fn rows(
        &self,
        pool: &managed::Pool<Opener>,
        stmt: Statement,
        rows: Rows,
    ) -> Result<Vec<PgRow>, DbErr> {
        let mut lent = Self::lend(pool, &self.counter).await?;
        let outcome = match (lent.conn(), rows) {
            (Ok(conn), Rows::First) => query(stmt)
                .fetch_optional(conn)
                .await
                .map(|row| row.into_iter().collect()),
            (Ok(conn), Rows::All) => query(stmt).fetch_all(conn).await,
            (Err(e), _) => Err(e),
        };
        lent.done(&outcome);
        outcome.map_err(query_err)
    }
}

/// A connection lent for one statement. It goes straight back for reuse only through
/// [`Lent::done`], after its statement ran to its end. Dropped any other way (the statement was
/// cancelled part-way, or failed), it is tested as sqlx tests every connection:
/// the test reads whatever the statement still had to send, up to PostgreSQL's "ready", so it
/// keeps its place in the pool (and the limit on connections) until then, and goes back only if
/// that succeeds; otherwise it is closed.
struct Lent(Option<Object<Opener>>);

impl Lent {
    /// The connection, until [`Lent::done`] or drop take it (so always, while it is used).
    fn conn(&mut self) -> Result<&mut PgConnection, sqlx::Error> {
        self.0.as_deref_mut().ok_or(sqlx::Error::PoolClosed)
    }

    /// After the statement's outcome: a connection whose statement succeeded goes straight
    /// back. After any error it is tested first (on drop): PostgreSQL reports the end of a
    /// connection (a restart, `pg_terminate_backend`) as a database error too.
    fn done<T>(mut self, outcome: &Result<T, sqlx::Error>) {
        if outcome.is_ok() {
            drop(self.0.take());
        }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let Some(mut conn) = self.0.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if conn.ping().await.is_err() {
                        drop(Object::take(conn));
                    }
                });
            }
            Err(_) => drop(Object::take(conn)),
        }
    }
}

fn query(statement: Statement) -> sqlx::query::Query<'static, sqlx::Postgres, SqlxValues> {
    let values = statement.values.unwrap_or(Values(Vec::new()));
    sqlx::query_with(sqlx::AssertSqlSafe(statement.sql), SqlxValues(values))
}

fn query_err(e: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(e)))
}

/// Which of a statement's rows a read wants.
#[derive(Clone, Copy)]
enum Rows {
    First,
    All,
}

#[async_trait::async_trait]
impl ConnectionTrait for Reads {
    fn get_database_backend(&self) -> DbBackend {
        self.main.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.main.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.main.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let Some(pool) = &self.pool else {
            return self.main.query_one_raw(stmt).await;
        };
        let mut rows = self.rows(pool, stmt, Rows::First).await?;
        Ok(rows.pop().map(QueryResult::from))
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let Some(pool) = &self.pool else {
            return self.main.query_all_raw(stmt).await;
        };
        let rows = self.rows(pool, stmt, Rows::All).await?;
        Ok(rows.into_iter().map(QueryResult::from).collect())
    }
}
