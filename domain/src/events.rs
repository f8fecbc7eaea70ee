//! Events that live subscriptions follow. On PostgreSQL they cross servers through
//! NOTIFY/LISTEN, so a subscriber on one server sees a change made through another; on SQLite
//! there is one server and the API delivers them in process.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Database;

/// The PostgreSQL channel events travel on.
pub const CHANNEL: &str = "groundswell_events";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A gathering's places, counts or status changed.
    PlacesChanged { gathering_id: Uuid },
    /// A progress update was posted.
    ProgressPosted { update_id: Uuid },
}

impl Event {
    pub fn to_payload(self) -> String {
        serde_json::to_string(&self).unwrap_or_default()
    }

    pub fn from_payload(payload: &str) -> Option<Self> {
        serde_json::from_str(payload).ok()
    }
}

/// Sends `event` to every server listening on PostgreSQL. Does nothing on SQLite.
pub async fn notify(db: &Database, event: Event) -> Result<(), DbErr> {
    if db.backend() != DbBackend::Postgres {
        return Ok(());
    }
    db.conn()
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [CHANNEL.into(), event.to_payload().into()],
        ))
        .await?;
    Ok(())
}

/// Listens for events on PostgreSQL. The listener reconnects by itself if its connection drops.
pub async fn listen(database_url: &str) -> Result<sea_orm::sqlx::postgres::PgListener, DbErr> {
    let mut listener = sea_orm::sqlx::postgres::PgListener::connect(database_url)
        .await
        .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::Internal(e.to_string())))?;
    listener
        .listen(CHANNEL)
        .await
        .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::Internal(e.to_string())))?;
    Ok(listener)
}
