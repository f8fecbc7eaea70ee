//! The floor: what scenarios 1 to 3 cost with the fewest hand-written SQL statements, straight
//! through the database driver (sqlx, which Groundswell's own sea-orm runs on), with no HTTP,
//! no GraphQL and no ORM. Each scenario is one statement.

use anyhow::Context;
use chrono::{DateTime, Utc};
use groundswell_domain::changes::Change;
use sqlx::{
    AssertSqlSafe, Row, SqlSafeStr, SqlStr,
    postgres::{PgPool, PgPoolOptions},
    sqlite::{SqlitePool, SqlitePoolOptions},
};

/// A pool on either database, and the statements written for its dialect.
#[derive(Clone)]
pub struct Floor {
    pool: Pool,
    gathering_page: SqlStr,
    anonymous_gathering_page: SqlStr,
    pledge_wall: SqlStr,
}

#[derive(Clone)]
enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs `$body` with `$pool` bound to whichever pool this is; the body is the same text for
/// both, compiled once per driver.
macro_rules! on_pool {
    ($floor:expr, $pool:ident => $body:expr) => {
        match &$floor.pool {
            Pool::Postgres($pool) => $body,
            Pool::Sqlite($pool) => $body,
        }
    };
}

/// The gathering page: the gathering, its counts, and the caller's registration (the caller
/// known by their session token's hash, as the server knows them).
const GATHERING_PAGE: &str = "
SELECT CAST(g.id AS TEXT), g.title, g.starts_at, g.ends_at, g.format, g.venue,
       g.in_person_capacity, g.online_capacity, g.in_person_taken, g.online_taken,
       g.registration_opens_at, g.registration_closes_at, g.status,
       (SELECT COUNT(*) FROM registrations r WHERE r.gathering_id = g.id AND r.status = 'CONFIRMED'),
       (SELECT COUNT(*) FROM registrations r WHERE r.gathering_id = g.id AND r.status = 'WAITLISTED'),
       s.expires_at, s.revoked_at,
       CAST(m.id AS TEXT), m.status, m.mode, m.companions,
       (SELECT COUNT(*) FROM registrations w
         WHERE w.gathering_id = g.id AND w.status = 'WAITLISTED' AND w.mode = m.mode
           AND w.waitlist_seq <= m.waitlist_seq)
FROM sessions s
JOIN gatherings g ON g.slug = $2
LEFT JOIN registrations m ON m.gathering_id = g.id AND m.person_id = s.person_id
WHERE s.token_hash = $1";

/// The gathering page as someone not signed in sees it: the gathering and its counts.
const ANONYMOUS_GATHERING_PAGE: &str = "
SELECT CAST(g.id AS TEXT), g.title, g.starts_at, g.ends_at, g.format, g.venue,
       g.in_person_capacity, g.online_capacity, g.in_person_taken, g.online_taken,
       g.registration_opens_at, g.registration_closes_at, g.status,
       (SELECT COUNT(*) FROM registrations r WHERE r.gathering_id = g.id AND r.status = 'CONFIRMED'),
       (SELECT COUNT(*) FROM registrations r WHERE r.gathering_id = g.id AND r.status = 'WAITLISTED')
FROM gatherings g
WHERE g.slug = $1";

/// The pledge wall: the first 50 pledges on a change, in the order they were made, each with
/// its organisation, its changes and its latest update.
const PLEDGE_WALL: &str = "
SELECT CAST(p.id AS TEXT), p.title, p.status, p.created_at,
       CAST(o.id AS TEXT), o.name, o.slug, o.kind, o.region,
       (SELECT AGG(pc.change, ',') FROM pledge_changes pc WHERE pc.pledge_id = p.id),
       CAST(u.id AS TEXT), u.signal, u.percent_complete, u.posted_at, u.body
FROM pledges p
JOIN organisations o ON o.id = p.organisation_id
LEFT JOIN progress_updates u ON u.id = p.latest_update_id
WHERE EXISTS (SELECT 1 FROM pledge_changes c WHERE c.pledge_id = p.id AND c.change = $1)
ORDER BY p.id
LIMIT 50";

const FIVE_CHANGES: &str = "
SELECT code, title, pledge_count, organisation_count, coalition_count, progress_update_count,
       last_progress_at
FROM changes
ORDER BY position";

/// What the gathering page shows.
#[derive(Clone, Debug, PartialEq)]
pub struct GatheringPage {
    pub id: String,
    pub title: String,
    pub places_left: Option<i32>,
    pub confirmed_count: i64,
    pub confirmed_places: i32,
    pub waitlisted_count: i64,
    /// The caller's registration: its id, status and waitlist position.
    pub mine: Option<(String, String, Option<i64>)>,
}

/// One pledge on the wall.
#[derive(Clone, Debug, PartialEq)]
pub struct WallPledge {
    pub id: String,
    pub title: String,
    pub organisation: String,
    pub changes: Vec<String>,
    pub latest_update: Option<String>,
    pub latest_update_body: Option<String>,
}

/// One change's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeFigures {
    pub code: String,
    pub pledge_count: i32,
    pub organisation_count: i32,
    pub coalition_count: i32,
    pub progress_update_count: i32,
    pub last_progress_at: Option<DateTime<Utc>>,
}

impl Floor {
    pub async fn connect(database_url: &str, connections: u32) -> anyhow::Result<Floor> {
        let (pool, placeholder, aggregate) = if database_url.starts_with("postgres") {
            let pool = PgPoolOptions::new()
                .max_connections(connections)
                .connect(database_url)
                .await
                .context("connecting the floor to PostgreSQL")?;
            (Pool::Postgres(pool), "$", "string_agg")
        } else {
            let pool = SqlitePoolOptions::new()
                .max_connections(connections)
                .connect(database_url)
                .await
                .context("connecting the floor to SQLite")?;
            (Pool::Sqlite(pool), "?", "group_concat")
        };
        // The statements are constants; only their placeholders and aggregate differ by dialect.
        let dialect = |sql: &str| {
            AssertSqlSafe(
                sql.replace('$', placeholder)
                    .replace("AGG(", &format!("{aggregate}(")),
            )
            .into_sql_str()
        };
        Ok(Floor {
            pool,
            gathering_page: dialect(GATHERING_PAGE),
            anonymous_gathering_page: dialect(ANONYMOUS_GATHERING_PAGE),
            pledge_wall: dialect(PLEDGE_WALL),
        })
    }

    pub async fn gathering_page(
        &self,
        token_hash: &str,
        slug: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<GatheringPage> {
        on_pool!(self, pool => {
            let row = sqlx::query(self.gathering_page.clone())
                .bind(token_hash)
                .bind(slug)
                .fetch_optional(pool)
                .await?
                .context("no such session or gathering")?;
            let expires_at: DateTime<Utc> = row.try_get(15)?;
            let revoked_at: Option<DateTime<Utc>> = row.try_get(16)?;
            anyhow::ensure!(expires_at > now && revoked_at.is_none(), "the session has ended");
            let format: String = row.try_get(4)?;
            let in_person_capacity: Option<i32> = row.try_get(6)?;
            let online_capacity: Option<i32> = row.try_get(7)?;
            let in_person_taken: i32 = row.try_get(8)?;
            let online_taken: i32 = row.try_get(9)?;
            let _: (DateTime<Utc>, DateTime<Utc>, Option<String>) =
                (row.try_get(2)?, row.try_get(3)?, row.try_get(5)?);
            let _: (Option<DateTime<Utc>>, Option<DateTime<Utc>>, String) =
                (row.try_get(10)?, row.try_get(11)?, row.try_get(12)?);
            let (capacity, taken) = if format == "ONLINE" {
                (online_capacity, online_taken)
            } else {
                (in_person_capacity, in_person_taken)
            };
            let mine_id: Option<String> = row.try_get(17)?;
            let mine = match mine_id {
                Some(id) => {
                    let status: String = row.try_get(18)?;
                    let _: (String, i32) = (row.try_get(19)?, row.try_get(20)?);
                    let position: i64 = row.try_get(21)?;
                    let position = (status == "WAITLISTED").then_some(position);
                    Some((id, status, position))
                }
                None => None,
            };
            Ok(GatheringPage {
                id: row.try_get(0)?,
                title: row.try_get(1)?,
                places_left: capacity.map(|c| (c - taken).max(0)),
                confirmed_count: row.try_get(13)?,
                confirmed_places: in_person_taken + online_taken,
                waitlisted_count: row.try_get(14)?,
                mine,
            })
        })
    }

    /// The gathering page for someone not signed in: no session, no registration of their own.
    pub async fn anonymous_gathering_page(&self, slug: &str) -> anyhow::Result<GatheringPage> {
        on_pool!(self, pool => {
            let row = sqlx::query(self.anonymous_gathering_page.clone())
                .bind(slug)
                .fetch_optional(pool)
                .await?
                .context("no such gathering")?;
            let format: String = row.try_get(4)?;
            let in_person_capacity: Option<i32> = row.try_get(6)?;
            let online_capacity: Option<i32> = row.try_get(7)?;
            let in_person_taken: i32 = row.try_get(8)?;
            let online_taken: i32 = row.try_get(9)?;
            let _: (DateTime<Utc>, DateTime<Utc>, Option<String>) =
                (row.try_get(2)?, row.try_get(3)?, row.try_get(5)?);
            let _: (Option<DateTime<Utc>>, Option<DateTime<Utc>>, String) =
                (row.try_get(10)?, row.try_get(11)?, row.try_get(12)?);
            let (capacity, taken) = if format == "ONLINE" {
                (online_capacity, online_taken)
            } else {
                (in_person_capacity, in_person_taken)
            };
            Ok(GatheringPage {
                id: row.try_get(0)?,
                title: row.try_get(1)?,
                places_left: capacity.map(|c| (c - taken).max(0)),
                confirmed_count: row.try_get(13)?,
                confirmed_places: in_person_taken + online_taken,
                waitlisted_count: row.try_get(14)?,
                mine: None,
            })
        })
    }

    /// Runs one statement with text parameters, for the benchmark's own setting up.
    pub async fn execute(&self, sql: &'static str, params: &[&str]) -> anyhow::Result<u64> {
        on_pool!(self, pool => {
            let mut query = sqlx::query(sql);
            for param in params {
                query = query.bind(*param);
            }
            Ok(query.execute(pool).await?.rows_affected())
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    pub async fn pledge_wall(&self, change: &str) -> anyhow::Result<Vec<WallPledge>> {
        on_pool!(self, pool => {
            let rows = sqlx::query(self.pledge_wall.clone()).bind(change).fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    let _: (String, DateTime<Utc>) = (row.try_get(2)?, row.try_get(3)?);
                    let _: (String, String, String, String) =
                        (row.try_get(5)?, row.try_get(6)?, row.try_get(7)?, row.try_get(8)?);
                    let changes: String = row.try_get(9)?;
                    let mut changes: Vec<String> = changes.split(',').map(str::to_owned).collect();
                    changes.sort_by_key(|code| {
                        Change::ALL.iter().position(|c| c.code() == code.as_str())
                    });
                    let latest_update: Option<String> = row.try_get(10)?;
                    let mut latest_update_body = None;
                    if latest_update.is_some() {
                        let _: (String, Option<i16>, DateTime<Utc>) =
                            (row.try_get(11)?, row.try_get(12)?, row.try_get(13)?);
                        latest_update_body = Some(row.try_get(14)?);
                    }
                    Ok(WallPledge {
                        id: row.try_get(0)?,
                        title: row.try_get(1)?,
                        organisation: row.try_get(4)?,
                        changes,
                        latest_update,
                        latest_update_body,
                    })
                })
                .collect()
        })
    }

    pub async fn five_changes(&self) -> anyhow::Result<Vec<ChangeFigures>> {
        on_pool!(self, pool => {
            let rows = sqlx::query(FIVE_CHANGES).fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    let _: String = row.try_get(1)?;
                    Ok(ChangeFigures {
                        code: row.try_get(0)?,
                        pledge_count: row.try_get(2)?,
                        organisation_count: row.try_get(3)?,
                        coalition_count: row.try_get(4)?,
                        progress_update_count: row.try_get(5)?,
                        last_progress_at: row.try_get(6)?,
                    })
                })
                .collect()
        })
    }

    /// Mail queued and not yet delivered, so scenarios can wait for the worker to be idle.
    pub async fn mail_waiting(&self) -> anyhow::Result<i64> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT COUNT(*) FROM outbox WHERE status IN ('PENDING', 'SENDING')")
                .fetch_one(pool)
                .await?;
            Ok(row.try_get(0)?)
        })
    }

    /// Runs one statement, for the benchmark's own housekeeping.
    pub async fn count(&self, sql: &'static str) -> anyhow::Result<i64> {
        on_pool!(self, pool => {
            let row = sqlx::query(sql).fetch_one(pool).await?;
            Ok(row.try_get(0)?)
        })
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}
