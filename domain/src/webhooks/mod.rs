//! Webhooks: an organisation's own systems hear of its pledges, its coalitions and the progress
//! posted on them as it happens. Its owners (and its own API tokens) register endpoints; each
//! gets a `whsec_` secret, shown once and kept so deliveries can be signed (Standard Webhooks).
//!
//! Events go through an outbox: [`emit`] writes one delivery per subscribed endpoint in the
//! transaction of the change that causes it, and the API's worker claims, signs and sends them
//! ([`delivery`]), retrying with back-off for a day. Payloads carry only public facts.

pub mod delivery;
mod emit;
pub mod target;

pub(crate) use emit::{Emit, emit};
pub use target::{EndpointUrl, TargetPolicy};

use crate::generations::Areas;
use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, TimeDelta, Utc};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    AccessError, Actor, Database, InvalidInput,
    access::require_someone,
    entities::{organisation, webhook_attempt, webhook_delivery, webhook_endpoint},
    organisations::OrganisationRole,
    page::{Page, PageRequest},
    text,
};

pub use crate::entities::enums::DeliveryStatus;

/// What an endpoint can subscribe to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WebhookEvent {
    PledgeMade,
    PledgeUpdated,
    PledgeWithdrawn,
    PledgeAchieved,
    ProgressUpdatePosted,
    CoalitionMembershipChanged,
    CoalitionUpdated,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 7] = [
        WebhookEvent::PledgeMade,
        WebhookEvent::PledgeUpdated,
        WebhookEvent::PledgeWithdrawn,
        WebhookEvent::PledgeAchieved,
        WebhookEvent::ProgressUpdatePosted,
        WebhookEvent::CoalitionMembershipChanged,
        WebhookEvent::CoalitionUpdated,
    ];

    /// The `type` a payload carries, dotted as Standard Webhooks suggests.
    pub fn code(self) -> &'static str {
        match self {
            WebhookEvent::PledgeMade => "pledge.made",
            WebhookEvent::PledgeUpdated => "pledge.updated",
            WebhookEvent::PledgeWithdrawn => "pledge.withdrawn",
            WebhookEvent::PledgeAchieved => "pledge.achieved",
            WebhookEvent::ProgressUpdatePosted => "progress_update.posted",
            WebhookEvent::CoalitionMembershipChanged => "coalition.membership_changed",
            WebhookEvent::CoalitionUpdated => "coalition.updated",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.code() == code)
    }
}

/// The events an endpoint hears: at least one, each once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSet(Vec<WebhookEvent>);

impl EventSet {
    pub fn parse(events: impl IntoIterator<Item = WebhookEvent>) -> Result<Self, InvalidInput> {
        let mut events: Vec<WebhookEvent> = events.into_iter().collect();
        events.sort();
        events.dedup();
        if events.is_empty() {
            return Err(InvalidInput::new("must name at least one event"));
        }
        Ok(Self(events))
    }

    pub fn as_slice(&self) -> &[WebhookEvent] {
        &self.0
    }

    fn to_json(&self) -> serde_json::Value {
        json!(self.0.iter().map(|e| e.code()).collect::<Vec<_>>())
    }
}

fn events_of(value: &serde_json::Value) -> Vec<WebhookEvent> {
    value
        .as_array()
        .map(|codes| {
            codes
                .iter()
                .filter_map(|c| c.as_str().and_then(WebhookEvent::from_code))
                .collect()
        })
        .unwrap_or_default()
}

/// What the owners wrote to recognise an endpoint: up to 500 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    /// An empty description is none.
    pub fn parse(value: &str) -> Result<Option<Self>, InvalidInput> {
        if value.trim().is_empty() {
            return Ok(None);
        }
        text::bounded(value, 1, 500).map(|d| Some(Self(d)))
    }
}

/// Endpoints one organisation may have.
pub const MAX_ENDPOINTS: u64 = 20;
/// How long the secret a rotation replaced keeps signing beside the new one.
pub const ROTATION_OVERLAP: TimeDelta = TimeDelta::hours(24);
/// The prefix of a webhook secret, as Standard Webhooks writes it.
pub const SECRET_PREFIX: &str = "whsec_";

/// A registered endpoint. Its secret is never part of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub active: bool,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When Groundswell switched it off after a day of failures.
    pub deactivated_at: Option<DateTime<Utc>>,
}

impl From<webhook_endpoint::Model> for Webhook {
    fn from(row: webhook_endpoint::Model) -> Self {
        Self {
            id: row.id,
            organisation_id: row.organisation_id,
            url: row.url,
            events: events_of(&row.events),
            active: row.active,
            description: row.description,
            created_at: row.created_at,
            updated_at: row.updated_at,
            deactivated_at: row.deactivated_at,
        }
    }
}

/// An endpoint with its new secret, the only time the secret is shown.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookWithSecret {
    pub secret: String,
    pub webhook: Webhook,
}

impl std::fmt::Debug for WebhookWithSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookWithSecret")
            .field("webhook", &self.webhook)
            .finish_non_exhaustive()
    }
}

/// A validated request to register an endpoint.
#[derive(Clone, Debug)]
pub struct NewWebhook {
    pub organisation_id: Uuid,
    pub url: EndpointUrl,
    pub events: EventSet,
    pub description: Option<Description>,
}

/// A validated change to an endpoint; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct WebhookEdit {
    pub url: Option<EndpointUrl>,
    pub events: Option<EventSet>,
    /// Switching an endpoint back on starts its failure count afresh.
    pub active: Option<bool>,
    /// `Some(None)` clears it.
    pub description: Option<Option<Description>>,
}

/// One event sent (or to be sent) to one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Also the `webhook-id` it is sent with (as `msg_…`), the same on every attempt.
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event: Option<WebhookEvent>,
    /// The JSON sent.
    pub body: String,
    pub status: DeliveryStatus,
    pub attempt_count: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// Oldest first.
    pub attempts: Vec<Attempt>,
}

/// One try at a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub attempted_at: DateTime<Utc>,
    /// None when no answer came (refused, timed out).
    pub status_code: Option<i32>,
    pub duration_ms: i32,
    /// The start of what the receiver answered, at most [`delivery::EXCERPT_CHARS`].
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
}

impl From<webhook_attempt::Model> for Attempt {
    fn from(row: webhook_attempt::Model) -> Self {
        Self {
            attempted_at: row.attempted_at,
            status_code: row.status_code,
            duration_ms: row.duration_ms,
            response_excerpt: row.response_excerpt,
            error: row.error,
        }
    }
}

impl Delivery {
    fn new(row: webhook_delivery::Model, attempts: Vec<Attempt>) -> Self {
        let pending = matches!(
            row.status,
            DeliveryStatus::Pending | DeliveryStatus::Sending
        );
        Self {
            id: row.id,
            webhook_id: row.endpoint_id,
            event: WebhookEvent::from_code(&row.event_type),
            body: row.body,
            status: row.status,
            attempt_count: row.attempts,
            next_attempt_at: pending.then_some(row.next_attempt_at),
            last_status_code: row.last_status_code,
            last_error: row.last_error,
            created_at: row.created_at,
            delivered_at: row.delivered_at,
            attempts,
        }
    }

    /// The `webhook-id` header: stable across retries and redeliveries.
    pub fn message_id(&self) -> String {
        message_id(self.id)
    }
}

/// The `webhook-id` of a delivery.
pub fn message_id(delivery_id: Uuid) -> String {
    format!("msg_{}", delivery_id.simple())
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("No organisation has that id.")]
    OrganisationNotFound,
    #[error("No webhook has that id.")]
    NotFound,
    #[error("No webhook delivery has that id.")]
    DeliveryNotFound,
    #[error("An organisation may have at most {MAX_ENDPOINTS} webhooks; delete one first.")]
    TooMany,
    #[error("That delivery is being sent right now; try again in a moment.")]
    DeliveryInFlight,
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// A new secret: `whsec_` and the base64 of 32 random bytes.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// Refuses anyone but the organisation's owners and its own API tokens; members who are not
/// owners, other organisations and nobody are refused.
async fn require_manages(
    conn: &impl ConnectionTrait,
    actor: &Actor,
    organisation_id: Uuid,
) -> Result<(), WebhookError> {
    require_someone(actor)?;
    if organisation::Entity::find_by_id(organisation_id)
        .one(conn)
        .await?
        .is_none()
    {
        return Err(WebhookError::OrganisationNotFound);
    }
    let allowed = match actor {
        Actor::Anonymous => false,
        Actor::Organisation {
            organisation_id: own,
            ..
        } => *own == organisation_id,
        Actor::Person { person_id, .. } => {
            crate::access::role_of(conn, organisation_id, *person_id).await?
                == Some(OrganisationRole::Owner)
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(AccessError::Forbidden(
            "only the organisation's owners and its own API tokens manage its webhooks",
        )
        .into())
    }
}

/// Finds an endpoint for someone who manages its organisation.
async fn managed(
    conn: &impl ConnectionTrait,
    actor: &Actor,
    id: Uuid,
) -> Result<webhook_endpoint::Model, WebhookError> {
    require_someone(actor)?;
    let row = webhook_endpoint::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(WebhookError::NotFound)?;
    require_manages(conn, actor, row.organisation_id).await?;
    Ok(row)
}

/// Registers an endpoint; the secret is returned this once.
#[tracing::instrument(skip_all, fields(organisation.id = %new.organisation_id))]
pub async fn create(
    db: &Database,
    actor: &Actor,
    new: NewWebhook,
    now: DateTime<Utc>,
) -> Result<WebhookWithSecret, WebhookError> {
    require_someone(actor)?;
    let txn = db.begin_write_on(Areas::NONE).await?;
    require_manages(&*txn, actor, new.organisation_id).await?;
    // Under the organisation's row lock, so two at once cannot pass the limit together.
    crate::organisations::lock_organisation(&*txn, new.organisation_id).await?;
    let existing = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::OrganisationId.eq(new.organisation_id))
        .count(&*txn)
        .await?;
    if existing >= MAX_ENDPOINTS {
        return Err(WebhookError::TooMany);
    }
    let secret = new_secret();
    let row = webhook_endpoint::Model {
        id: Uuid::now_v7(),
        organisation_id: new.organisation_id,
        url: new.url.as_str().to_owned(),
        events: new.events.to_json(),
        description: new.description.map(|d| d.0),
        active: true,
        secret: secret.clone(),
        previous_secret: None,
        previous_secret_expires_at: None,
        failing_since: None,
        deactivated_at: None,
        created_at: now,
        updated_at: now,
    };
    webhook_endpoint::Entity::insert(webhook_endpoint::ActiveModel::from(row.clone()))
        .exec_without_returning(&*txn)
        .await?;
    txn.commit().await?;
    tracing::info!(webhook.id = %row.id, "webhook registered");
    Ok(WebhookWithSecret {
        secret,
        webhook: row.into(),
    })
}

/// Changes an endpoint's URL, events, description, or switches it on or off.
#[tracing::instrument(skip_all, fields(webhook.id = %id))]
pub async fn update(
    db: &Database,
    actor: &Actor,
    id: Uuid,
    edit: WebhookEdit,
    now: DateTime<Utc>,
) -> Result<Webhook, WebhookError> {
    let txn = db.begin_write_on(Areas::NONE).await?;
    let row = managed(&*txn, actor, id).await?;
    let was_active = row.active;
    let mut active: webhook_endpoint::ActiveModel = row.into();
    if let Some(url) = edit.url {
        active.url = Set(url.as_str().to_owned());
    }
    if let Some(events) = edit.events {
        active.events = Set(events.to_json());
    }
    if let Some(description) = edit.description {
        active.description = Set(description.map(|d| d.0));
    }
    if let Some(on) = edit.active {
        active.active = Set(on);
        if on && !was_active {
            active.failing_since = Set(None);
            active.deactivated_at = Set(None);
        }
    }
    active.updated_at = Set(now);
    let row = active.update(&*txn).await?;
    txn.commit().await?;
    Ok(row.into())
}

/// Makes a new secret. The old one keeps signing beside it for [`ROTATION_OVERLAP`], so the
/// receiver can switch over without losing an event.
#[tracing::instrument(skip_all, fields(webhook.id = %id))]
pub async fn rotate_secret(
    db: &Database,
    actor: &Actor,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<WebhookWithSecret, WebhookError> {
    let txn = db.begin_write_on(Areas::NONE).await?;
    let row = managed(&*txn, actor, id).await?;
    let secret = new_secret();
    let old = row.secret.clone();
    let mut active: webhook_endpoint::ActiveModel = row.into();
    active.previous_secret = Set(Some(old));
    active.previous_secret_expires_at = Set(Some(now + ROTATION_OVERLAP));
    active.secret = Set(secret.clone());
    active.updated_at = Set(now);
    let row = active.update(&*txn).await?;
    txn.commit().await?;
    tracing::info!("webhook secret rotated");
    Ok(WebhookWithSecret {
        secret,
        webhook: row.into(),
    })
}

/// Deletes an endpoint with its deliveries.
#[tracing::instrument(skip_all, fields(webhook.id = %id))]
pub async fn delete(db: &Database, actor: &Actor, id: Uuid) -> Result<(), WebhookError> {
    let txn = db.begin_write_on(Areas::NONE).await?;
    managed(&*txn, actor, id).await?;
    // Children first: SQLite enforces the keys but the cascade is not relied on.
    let deliveries = webhook_delivery::Entity::find()
        .select_only()
        .column(webhook_delivery::Column::Id)
        .filter(webhook_delivery::Column::EndpointId.eq(id))
        .into_tuple::<Uuid>()
        .all(&*txn)
        .await?;
    for chunk in deliveries.chunks(500) {
        webhook_attempt::Entity::delete_many()
            .filter(webhook_attempt::Column::DeliveryId.is_in(chunk.iter().copied()))
            .exec(&*txn)
            .await?;
    }
    webhook_delivery::Entity::delete_many()
        .filter(webhook_delivery::Column::EndpointId.eq(id))
        .exec(&*txn)
        .await?;
    webhook_endpoint::Entity::delete_by_id(id)
        .exec(&*txn)
        .await?;
    txn.commit().await?;
    Ok(())
}

/// An organisation's endpoints, oldest first; owners and its tokens only.
pub async fn list(
    db: &Database,
    actor: &Actor,
    organisation_id: Uuid,
) -> Result<Vec<Webhook>, WebhookError> {
    require_manages(db.reads(), actor, organisation_id).await?;
    Ok(webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::OrganisationId.eq(organisation_id))
        .order_by_asc(webhook_endpoint::Column::Id)
        .all(db.reads())
        .await?
        .into_iter()
        .map(Webhook::from)
        .collect())
}

/// A page of an endpoint's deliveries, newest first, each with its attempts.
pub async fn deliveries(
    db: &Database,
    actor: &Actor,
    webhook_id: Uuid,
    page: PageRequest,
) -> Result<Page<Delivery>, WebhookError> {
    managed(db.reads(), actor, webhook_id).await?;
    let of_endpoint = || {
        webhook_delivery::Entity::find().filter(webhook_delivery::Column::EndpointId.eq(webhook_id))
    };
    let total = if page.count_total {
        Some(of_endpoint().count(db.reads()).await?)
    } else {
        None
    };
    let mut query = of_endpoint().order_by_desc(webhook_delivery::Column::Id);
    if let Some(after) = page.after {
        query = query.filter(webhook_delivery::Column::Id.lt(after));
    }
    let rows = crate::page::rows(db.reads(), query, &page).await?;
    let page = Page::from_rows(rows, page, total);
    let mut attempts = attempts_of(db.reads(), page.items.iter().map(|d| d.id)).await?;
    Ok(page.map(|row| {
        let log = attempts.remove(&row.id).unwrap_or_default();
        Delivery::new(row, log)
    }))
}

async fn attempts_of(
    conn: &impl ConnectionTrait,
    ids: impl Iterator<Item = Uuid>,
) -> Result<HashMap<Uuid, Vec<Attempt>>, DbErr> {
    let ids: Vec<Uuid> = ids.collect();
    let mut map: HashMap<Uuid, Vec<Attempt>> = HashMap::new();
    if ids.is_empty() {
        return Ok(map);
    }
    for row in webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::DeliveryId.is_in(ids))
        .order_by_asc(webhook_attempt::Column::Id)
        .all(conn)
        .await?
    {
        map.entry(row.delivery_id).or_default().push(row.into());
    }
    Ok(map)
}

/// Sends a delivery again, with the same `webhook-id` so the receiver can tell it has seen it,
/// retrying for `retry_for` from now as a new event would.
#[tracing::instrument(skip_all, fields(delivery.id = %delivery_id))]
pub async fn redeliver(
    db: &Database,
    actor: &Actor,
    delivery_id: Uuid,
    retry_for: TimeDelta,
    now: DateTime<Utc>,
) -> Result<Delivery, WebhookError> {
    require_someone(actor)?;
    let txn = db.begin_write_on(Areas::NONE).await?;
    // Locked, so a server claiming it at this moment either finishes first (and it is seen as
    // in flight) or skips it; otherwise it could be sent twice at once.
    let row = webhook_delivery::Entity::find_by_id(delivery_id)
        .lock_exclusive()
        .one(&*txn)
        .await?
        .ok_or(WebhookError::DeliveryNotFound)?;
    managed(&*txn, actor, row.endpoint_id).await?;
    if row.status == DeliveryStatus::Sending && row.locked_until.is_some_and(|l| l > now) {
        return Err(WebhookError::DeliveryInFlight);
    }
    let mut active: webhook_delivery::ActiveModel = row.into();
    active.status = Set(DeliveryStatus::Pending);
    active.next_attempt_at = Set(now);
    active.retry_until = Set(now + retry_for);
    active.locked_until = Set(None);
    let row = active.update(&*txn).await?;
    let mut attempts = attempts_of(&*txn, std::iter::once(row.id)).await?;
    txn.commit().await?;
    let log = attempts.remove(&row.id).unwrap_or_default();
    Ok(Delivery::new(row, log))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_whsec_and_32_random_bytes_in_base64() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        let bytes = a
            .strip_prefix(SECRET_PREFIX)
            .and_then(|rest| STANDARD.decode(rest).ok());
        assert_eq!(bytes.map(|b| b.len()), Some(32));
    }

    #[test]
    fn event_sets_are_never_empty_and_hold_each_event_once() {
        assert!(EventSet::parse([]).is_err());
        let set = EventSet::parse([
            WebhookEvent::PledgeMade,
            WebhookEvent::CoalitionUpdated,
            WebhookEvent::PledgeMade,
        ]);
        assert_eq!(
            set.map(|s| s.0),
            Ok(vec![
                WebhookEvent::PledgeMade,
                WebhookEvent::CoalitionUpdated
            ])
        );
        for event in WebhookEvent::ALL {
            assert_eq!(WebhookEvent::from_code(event.code()), Some(event));
        }
    }
}
