//! The digest fence: a digest covers news up to the moment it is built, but a write that took
//! its time (`now`) before the build and commits after it would fall between two digests, its
//! time inside the first's period and its row invisible to it. So a digest run first draws a
//! line: it waits for every news write in flight to commit (they hold the fence shared), then
//! records the line. A news write stamps its time after taking the fence: a time at or before
//! the line becomes just after it, so it belongs to the next digest. On SQLite, writers are
//! already one at a time and the line is drawn in a write, so reading it is enough.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, Statement,
};

use crate::{Database, entities::digest_fence};

const LOCK: &str = "groundswell:digest-fence";

/// The time a news write in `conn`'s transaction records: `now`, or just after the latest line
/// when `now` is at or before it (whatever the clocks of the servers involved). Call it first
/// thing in the write's transaction.
pub(crate) async fn stamp(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, DbErr> {
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock_shared(hashtext($1))",
            [LOCK.into()],
        ))
        .await?;
    }
    let line = digest_fence::Entity::find_by_id(1)
        .one(conn)
        .await?
        .and_then(|fence| fence.at);
    Ok(match line {
        Some(line) if now <= line => crate::time::after(line, TimeDelta::microseconds(1)),
        _ => now,
    })
}

/// Draws the line at `now` (or leaves it where a server with a later clock drew it) once every
/// news write in flight has committed, and returns it: everything stamped at or before the
/// line is visible once this returns, and everything written later is stamped after it.
pub(crate) async fn draw(db: &Database, now: DateTime<Utc>) -> Result<DateTime<Utc>, DbErr> {
    // The line changes nothing anyone reads, so no cached answer is invalidated by it.
    let txn = db.begin_write_on(crate::generations::Areas::NONE).await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            [LOCK.into()],
        ))
        .await?;
    }
    // The line never moves back (a run with an earlier clock leaves it where it is).
    let current = digest_fence::Entity::find_by_id(1)
        .one(&*txn)
        .await?
        .and_then(|fence| fence.at);
    let line = current.map_or(now, |at| at.max(now));
    if current.is_none_or(|at| at < now) {
        digest_fence::Entity::update_many()
            .col_expr(
                digest_fence::Column::At,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(digest_fence::Column::Id.eq(1))
            .exec(&*txn)
            .await?;
    }
    txn.commit().await?;
    Ok(line)
}

#[cfg(test)]
mod tests {
    use groundswell_migration::MigratorTrait;

    use super::*;

    #[tokio::test]
    async fn a_write_timed_at_or_before_the_line_is_stamped_just_after_it() -> anyhow::Result<()> {
        let db = Database::connect("sqlite::memory:", 1).await?;
        groundswell_migration::Migrator::up(db.conn(), None).await?;
        let line = crate::now();
        // Before any line, a write keeps its time.
        let txn = db.begin_write().await?;
        let early = crate::time::before(line, TimeDelta::seconds(5));
        assert_eq!(stamp(&*txn, early).await?, early);
        txn.commit().await?;

        assert_eq!(draw(&db, line).await?, line);
        // A run with an earlier clock (another server's) leaves the line where it is.
        assert_eq!(draw(&db, early).await?, line);
        let txn = db.begin_write().await?;
        let just_after = crate::time::after(line, TimeDelta::microseconds(1));
        assert_eq!(
            stamp(&*txn, early).await?,
            just_after,
            "taken before, written after"
        );
        assert_eq!(stamp(&*txn, line).await?, just_after);
        let later = crate::time::after(line, TimeDelta::seconds(1));
        assert_eq!(stamp(&*txn, later).await?, later);
        txn.commit().await?;
        Ok(())
    }
}
