//! Single-statement reads on PostgreSQL run on connections of their own, which skip sqlx's
//! round trip on release (`groundswell_domain::reads`). The rules that make that safe: a
//! connection whose statement ran to its end is reused; one whose statement was cancelled
//! part-way is closed, never reused; and reads and the rest together stay within
//! `DATABASE_MAX_CONNECTIONS`.

use std::{collections::HashSet, time::Duration};

use anyhow::Context;
use groundswell_domain::Database;
use sea_orm::{ConnectionTrait, DbBackend, Statement, TryGetable, Value};

use crate::helpers::*;

/// `column` of the one row `sql`, with `values`, answers on `conn`.
async fn one<T: TryGetable>(
    conn: &impl ConnectionTrait,
    sql: &str,
    values: Vec<Value>,
    column: &str,
) -> anyhow::Result<T> {
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?
        .context("no row")?;
    Ok(row.try_get("", column)?)
}

/// The PostgreSQL backend a read runs on.
async fn read_pid(db: &Database) -> anyhow::Result<i32> {
    one(db.reads(), "SELECT pg_backend_pid() AS pid", vec![], "pid").await
}

/// Backends connected to this test's own database, other than the one asking.
async fn connections_to(db: &Database) -> anyhow::Result<i64> {
    one(
        db.conn(),
        "SELECT COUNT(*) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
        vec![],
        "n",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_that_finished_leaves_its_connection_for_the_next_read() -> anyhow::Result<()> {
    let url = fresh_database(Backend::Postgres).await?;
    // Two connections in all: one for reads, one for the rest.
    let db = Database::connect(&url, 2).await?;
    let first = read_pid(&db).await?;
    for _ in 0..5 {
        assert_eq!(
            read_pid(&db).await?,
            first,
            "the read connection was not reused"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_cancelled_part_way_never_hands_its_rows_to_the_next_read() -> anyhow::Result<()> {
    let url = fresh_database(Backend::Postgres).await?;
    let db = Database::connect(&url, 2).await?;
    let first = read_pid(&db).await?;

    // A statement still running when its caller gives up (a client that went away), on the one
    // read connection. Its rows come after the caller has gone.
    let cancelled = tokio::time::timeout(
        Duration::from_millis(200),
        db.reads().query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT 1 AS n, pg_backend_pid() AS pid FROM pg_sleep(1)",
        )),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "the sleeping read finished: {cancelled:?}"
    );

    // The next read waits for the connection to be cleared (or replaced) and gets its own
    // answer, not the cancelled statement's row.
    let row = db
        .reads()
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT 2 AS n, pg_backend_pid() AS pid",
        ))
        .await?
        .context("no row")?;
    assert_eq!(row.try_get::<i32>("", "n")?, 2);
    // Cleared, it is the same connection, still the only one for reads.
    assert_eq!(row.try_get::<i32>("", "pid")?, first);
    assert!(connections_to(&db).await? <= 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_connection_the_database_ended_fails_one_read_not_the_next() -> anyhow::Result<()> {
    let url = fresh_database(Backend::Postgres).await?;
    let db = Database::connect(&url, 2).await?;
    let first = read_pid(&db).await?;

    // The database ends the read connection (a restart or failover does the same); PostgreSQL
    // says so with an error before it closes it.
    db.conn()
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_terminate_backend($1)",
            [first.into()],
        ))
        .await?;
    let gone = db.clone();
    wait_until(
        "the read connection's backend ending",
        Duration::from_secs(10),
        async || {
            let left: i64 = one(
                gone.conn(),
                "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE pid = $1",
                vec![first.into()],
                "n",
            )
            .await?;
            Ok(left == 0)
        },
    )
    .await?;

    // The read that finds it fails; the connection is tested, found dead and closed, so the
    // next read runs on a new one.
    assert!(
        read_pid(&db).await.is_err(),
        "a read on the ended connection succeeded"
    );
    let next = read_pid(&db).await?;
    assert_ne!(next, first);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_and_the_rest_stay_within_the_connection_limit() -> anyhow::Result<()> {
    let url = fresh_database(Backend::Postgres).await?;
    let db = Database::connect(&url, 4).await?;

    // Twelve reads at once, each holding its connection for a moment: they share two.
    let reads = (0..12).map(|_| {
        let db = db.clone();
        async move {
            one::<i32>(
                db.reads(),
                "SELECT pg_backend_pid() AS pid FROM pg_sleep(0.1)",
                vec![],
                "pid",
            )
            .await
        }
    });
    // And four statements on the main pool at the same time, which has the other two.
    let others = (0..4).map(|_| {
        let db = db.clone();
        async move {
            db.conn().execute_unprepared("SELECT pg_sleep(0.1)").await?;
            anyhow::Ok(())
        }
    });
    let (pids, others) = tokio::join!(
        futures::future::try_join_all(reads),
        futures::future::try_join_all(others)
    );
    others?;
    let pids: HashSet<i32> = pids?.into_iter().collect();
    assert_eq!(pids.len(), 2, "reads ran on {} connections", pids.len());
    let open = connections_to(&db).await?;
    assert!(
        open <= 3,
        "{open} other connections are open, against a limit of 4 in all"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_one_connection_reads_share_the_main_pool() -> anyhow::Result<()> {
    let url = fresh_database(Backend::Postgres).await?;
    let db = Database::connect(&url, 1).await?;
    let read = read_pid(&db).await?;
    let main: i32 = one(db.conn(), "SELECT pg_backend_pid() AS pid", vec![], "pid").await?;
    assert_eq!(main, read);
    assert_eq!(connections_to(&db).await?, 0);
    Ok(())
}
