//! Live subscriptions over WebSocket (graphql-transport-ws at /graphql/ws).

use async_graphql::{Context, ID, Subscription};
use futures::{Stream, StreamExt};
use groundswell_domain::{events::Event, gatherings};
use tokio::sync::broadcast;

use super::{ApiError, actor, app, gatherings::Gathering, parse_id};

/// Every event from now on; a subscriber that falls behind skips what it missed.
fn events(receiver: broadcast::Receiver<Event>) -> impl Stream<Item = Event> {
    futures::stream::unfold(receiver, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(event) => return Some((event, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

#[derive(Default)]
pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// The gathering, each time its places, counts or status change.
    async fn gathering_places_changed(
        &self,
        ctx: &Context<'_>,
        gathering_id: ID,
    ) -> Result<impl Stream<Item = Result<Gathering, ApiError>> + use<>, ApiError> {
        let id = parse_id("gatheringId", &gathering_id)?;
        let app = app(ctx)?;
        let visible = match gatherings::by_id(app.db.conn(), id).await? {
            Some(g) => gatherings::by_slug(&app.db, actor(ctx)?, &g.slug)
                .await?
                .is_some(),
            None => false,
        };
        if !visible {
            return Err(ApiError::NotFound("No gathering has that id.".to_owned()));
        }
        let db = app.db.clone();
        let receiver = app.events.subscribe();
        Ok(events(receiver).filter_map(move |event| {
            let db = db.clone();
            async move {
                match event {
                    Event::PlacesChanged { gathering_id } if gathering_id == id => {
                        match gatherings::by_id(db.conn(), id).await {
                            Ok(Some(g)) => Some(Ok(Gathering(g))),
                            Ok(None) => None,
                            Err(err) => Some(Err(ApiError::internal(err))),
                        }
                    }
                    _ => None,
                }
            }
        }))
    }
}
