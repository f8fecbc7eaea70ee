//! The hub live subscriptions read from. Changes are published here after they commit; on
//! PostgreSQL they go out through NOTIFY and come back in through one LISTEN connection per
//! server (so every server's subscribers see every change), on SQLite they are delivered in
//! process.

use groundswell_domain::{
    Database,
    events::{self, Event},
};
use sea_orm::DbBackend;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Events held for slow subscribers before the oldest are dropped.
const BUFFER: usize = 1024;

#[derive(Clone)]
pub struct Events {
    local: broadcast::Sender<Event>,
    db: Database,
}

impl Events {
    pub fn new(db: Database) -> Self {
        let (local, _) = broadcast::channel(BUFFER);
        Self { local, db }
    }

    fn via_postgres(&self) -> bool {
        self.db.backend() == DbBackend::Postgres
    }

    pub fn places_changed(&self, gathering_id: Uuid) {
        self.publish(Event::PlacesChanged { gathering_id });
    }

    pub fn progress_posted(&self, update_id: Uuid) {
        self.publish(Event::ProgressPosted { update_id });
    }

    fn publish(&self, event: Event) {
        if self.via_postgres() {
            let db = self.db.clone();
            tokio::spawn(async move {
                if let Err(err) = events::notify(&db, event).await {
                    tracing::warn!(error = %err, "publishing an event failed");
                }
            });
        } else {
            // No subscribers is not an error.
            let _ = self.local.send(event);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.local.subscribe()
    }

    /// On PostgreSQL, relays every server's events to this server's subscribers until
    /// `shutdown`. Returns at once on SQLite.
    pub async fn relay(self, database_url: String, shutdown: CancellationToken) {
        if !self.via_postgres() {
            return;
        }
        loop {
            let mut listener = match events::listen(&database_url).await {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::warn!(error = %err, "listening for events failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                    }
                }
            };
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    received = listener.recv() => match received {
                        Ok(notification) => {
                            if let Some(event) = Event::from_payload(notification.payload()) {
                                let _ = self.local.send(event);
                            }
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "event listener lost its connection");
                            break;
                        }
                    },
                }
            }
        }
    }
}
