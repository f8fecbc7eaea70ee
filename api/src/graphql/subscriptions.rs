//! Live subscriptions over WebSocket (graphql-transport-ws at /graphql/ws).

use async_graphql::{Context, ID, Subscription};
use futures::{Stream, StreamExt};
use groundswell_domain::gatherings;
use tokio::sync::broadcast;

use crate::events::Loaded;

use super::{
    ApiError, actor, app,
    changes::Change,
    gatherings::Gathering,
    parse_id,
    progress::ProgressUpdate,
    websocket::{OverWebSocket, SubscriptionSlot, SubscriptionSlots},
};

/// Every event from now on; a subscriber that falls behind skips what it missed.
fn events(receiver: broadcast::Receiver<Loaded>) -> impl Stream<Item = Loaded> {
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

/// A place among the connection's subscriptions, or `RATE_LIMITED` when it has all it may run.
fn subscription_slot(ctx: &Context<'_>) -> Result<Option<SubscriptionSlot>, ApiError> {
    let Some(slots) = ctx.data_opt::<SubscriptionSlots>() else {
        return Ok(None);
    };
    slots.try_take().map(Some).ok_or_else(|| {
        ApiError::RateLimited(format!(
            "A connection may run at most {} subscriptions at once; stop one first.",
            slots.most()
        ))
    })
}

/// Ends a subscription, with an `UNAUTHENTICATED` error, once the credential its connection
/// opened with stops being valid (signed out, revoked, erased, role changed). Holds the
/// subscription's place on its connection until it ends.
fn guarded<T, S>(
    ctx: &Context<'_>,
    items: S,
) -> Result<impl Stream<Item = Result<T, ApiError>> + Send + 'static + use<T, S>, ApiError>
where
    T: Send + 'static,
    S: Stream<Item = Result<T, ApiError>> + Send + 'static,
{
    let slot = subscription_slot(ctx)?;
    let check = match ctx.data_opt::<OverWebSocket>() {
        Some(connection) => Some((
            connection.clone(),
            actor(ctx)?.clone(),
            app(ctx)?.db.clone(),
        )),
        None => None,
    };
    Ok(items
        .then(move |item| {
            let check = check.clone();
            async move {
                if let Some((connection, actor, db)) = &check
                    && !connection.still_valid(db, actor).await
                {
                    return Err(ApiError::Unauthenticated(
                        "Your session or API token is no longer valid; connect again.".to_owned(),
                    ));
                }
                item
            }
        })
        .scan(false, move |ended, item| {
            let _held = &slot;
            if *ended {
                return futures::future::ready(None);
            }
            *ended = matches!(item, Err(ApiError::Unauthenticated(_)));
            futures::future::ready(Some(item))
        }))
}

#[derive(Default)]
pub struct SubscriptionRoot;

/// Live updates, over WebSocket only.
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
        let visible = match gatherings::by_id(&app.db, id).await? {
            Some(g) => gatherings::by_slug(&app.db, actor(ctx)?, &g.slug)
                .await?
                .is_some(),
            None => false,
        };
        if !visible {
            return Err(ApiError::NotFound("No gathering has that id.".to_owned()));
        }
        let receiver = app.events.subscribe();
        guarded(
            ctx,
            events(receiver).filter_map(move |event| {
                futures::future::ready(match event {
                    Loaded::PlacesChanged { gathering } if gathering.id == id => {
                        Some(Ok(Gathering((*gathering).clone())))
                    }
                    _ => None,
                })
            }),
        )
    }

    /// Each progress update as it is posted anywhere in the movement; only those on the given
    /// changes when `changes` is given.
    async fn progress_update_posted(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only updates on these changes (at most five items).")] changes: Option<
            Vec<Change>,
        >,
    ) -> Result<impl Stream<Item = Result<ProgressUpdate, ApiError>> + use<>, ApiError> {
        let wanted: Vec<groundswell_domain::changes::Change> = super::limits::filter_values(
            "changes",
            changes.map(|changes| changes.into_iter().map(Into::into).collect()),
            super::limits::MAX_CHANGES,
        )?;
        let app = app(ctx)?;
        guarded(
            ctx,
            events(app.events.subscribe()).filter_map(move |event| {
                futures::future::ready(match event {
                    Loaded::ProgressPosted { update, changes }
                        if wanted.is_empty() || changes.iter().any(|c| wanted.contains(c)) =>
                    {
                        Some(Ok(ProgressUpdate((*update).clone())))
                    }
                    _ => None,
                })
            }),
        )
    }
}
