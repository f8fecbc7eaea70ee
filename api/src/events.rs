//! The hub live subscriptions read from. Changes are published here after they commit; on
//! PostgreSQL they go out through NOTIFY and come back in through one LISTEN connection per
//! server (so every server's subscribers see every change), on SQLite they are delivered in
//! process. Each event is loaded from the database once, here, for all of this server's
//! subscribers, rather than once by each of them.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use groundswell_domain::{
    Database,
    changes::Change,
    events::{self, Event},
    gatherings::{self, Gathering},
    progress::{self, ProgressUpdate},
};
use sea_orm::DbBackend;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Events held for slow subscribers before the oldest are dropped.
const BUFFER: usize = 1024;

/// An event with what it is about, loaded once for every subscriber.
#[derive(Clone, Debug)]
pub enum Loaded {
    /// A gathering's places, counts or status changed; here as it is now.
    PlacesChanged { gathering: Arc<Gathering> },
    /// A progress update was posted, with the changes it is on.
    ProgressPosted {
        update: Arc<ProgressUpdate>,
        changes: Arc<[Change]>,
    },
}

#[derive(Clone)]
pub struct Events {
    local: broadcast::Sender<Loaded>,
    /// Events published on SQLite, loaded in turn (so their order holds) by one task.
    in_process: mpsc::UnboundedSender<Event>,
    db: Database,
    /// Gatherings whose "places changed" is about to go out through NOTIFY (`publish`).
    places_pending: Arc<Mutex<HashSet<Uuid>>>,
}

impl Events {
    pub fn new(db: Database) -> Self {
        let (local, _) = broadcast::channel(BUFFER);
        let (in_process, mut published) = mpsc::unbounded_channel::<Event>();
        let (sender, loader_db) = (local.clone(), db.clone());
        tokio::spawn(async move {
            while let Some(event) = published.recv().await {
                deliver(&loader_db, &sender, event).await;
            }
        });
        Self {
            local,
            in_process,
            db,
            places_pending: Arc::default(),
        }
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

    /// On PostgreSQL, a gathering's "places changed" that is already waiting to go out stands
    /// for any published after it: subscribers load the gathering as it is when the event
    /// arrives, and it goes out after every change that found it waiting had committed (it
    /// stops waiting, under the lock, before it is sent). A rush of 2,000 registrations for
    /// one gathering sent 2,000 NOTIFYs, each a statement on the pool the registrations need.
    fn publish(&self, event: Event) {
        if self.via_postgres() {
            let pending = match event {
                Event::PlacesChanged { gathering_id } => {
                    if !lock(&self.places_pending).insert(gathering_id) {
                        return;
                    }
                    Some((self.places_pending.clone(), gathering_id))
                }
                Event::ProgressPosted { .. } => None,
            };
            let db = self.db.clone();
            tokio::spawn(async move {
                if let Some((pending, gathering_id)) = pending {
                    lock(&pending).remove(&gathering_id);
                }
                if let Err(err) = events::notify(&db, event).await {
                    tracing::warn!(error = %err, "publishing an event failed");
                }
            });
        } else {
            // The loader ends only with the process.
            let _ = self.in_process.send(event);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Loaded> {
        self.local.subscribe()
    }

    /// How many subscriptions on this server are listening for events now.
    pub fn subscriber_count(&self) -> usize {
        self.local.receiver_count()
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
                                deliver(&self.db, &self.local, event).await;
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

/// The pending set, whose every use leaves it consistent, so a panic elsewhere never poisons
/// it for good.
fn lock(pending: &Mutex<HashSet<Uuid>>) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
    pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Loads what `event` is about, once, and hands it to every subscriber; nothing is loaded when
/// nobody listens. A failed load is logged and the event skipped.
async fn deliver(db: &Database, subscribers: &broadcast::Sender<Loaded>, event: Event) {
    if subscribers.receiver_count() == 0 {
        return;
    }
    let loaded = match event {
        Event::PlacesChanged { gathering_id } => {
            gatherings::by_id(db, gathering_id).await.map(|found| {
                found.map(|g| Loaded::PlacesChanged {
                    gathering: Arc::new(g),
                })
            })
        }
        Event::ProgressPosted { update_id } => match progress::by_ids(db, &[update_id]).await {
            Ok(mut found) if !found.is_empty() => {
                let update = found.remove(0);
                progress::changes_of_update(db, &update)
                    .await
                    .map(|changes| {
                        Some(Loaded::ProgressPosted {
                            update: Arc::new(update),
                            changes: changes.into(),
                        })
                    })
            }
            Ok(_) => Ok(None),
            Err(err) => Err(err),
        },
    };
    match loaded {
        // No subscribers left is not an error.
        Ok(Some(loaded)) => {
            let _ = subscribers.send(loaded);
        }
        Ok(None) => {}
        Err(err) => tracing::warn!(error = %err, "loading an event for subscribers failed"),
    }
}
