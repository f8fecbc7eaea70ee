//! Webhooks: endpoints an organisation's owners (or its own API tokens) register to hear of its
//! pledges, coalitions and progress as they happen, with their deliveries and attempts.

use async_graphql::{Context, Enum, ID, InputObject, Object};
use chrono::{DateTime, Utc};
use groundswell_domain::webhooks::{
    self, Attempt, Delivery, Description, EndpointUrl, EventSet, NewWebhook as DomainNewWebhook,
    Webhook as DomainWebhook, WebhookEdit, WebhookWithSecret,
};

use super::{
    ApiResult, actor, app,
    connection::{Paged, connection, page_request},
    error::FieldContext,
    organisations::{Organisation, load_organisation},
    parse_id,
};

/// Something that happened which an endpoint can subscribe to. Each arrives as a JSON body
/// `{ type, timestamp, data }`, `type` being the dotted name given with each value.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "groundswell_domain::webhooks::WebhookEvent")]
pub enum WebhookEvent {
    /// `pledge.made`: the organisation made a pledge.
    PledgeMade,
    /// `pledge.updated`: one of its pledges was edited.
    PledgeUpdated,
    /// `pledge.withdrawn`: one of its pledges was withdrawn.
    PledgeWithdrawn,
    /// `pledge.achieved`: one of its pledges was marked achieved.
    PledgeAchieved,
    /// `progress_update.posted`: progress was posted on one of its pledges or coalitions.
    ProgressUpdatePosted,
    /// `coalition.membership_changed`: a membership of one of its coalitions (or its own
    /// membership of one) was asked for, offered, accepted or ended.
    CoalitionMembershipChanged,
    /// `coalition.updated`: one of its coalitions became active, concluded or changed lead.
    CoalitionUpdated,
}

/// Where a delivery stands.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "groundswell_domain::webhooks::DeliveryStatus")]
pub enum WebhookDeliveryStatus {
    /// Waiting for its first attempt or for a retry.
    Pending,
    /// Being sent right now.
    Sending,
    /// The receiver answered with a 2xx.
    Delivered,
    /// Given up on after a day of retries, or its webhook was switched off; it can be
    /// redelivered.
    Failed,
}

pub struct Webhook(pub DomainWebhook);

/// An endpoint registered by an organisation. Every delivery is signed as Standard Webhooks
/// defines, with the secret shown when it was made.
#[Object]
impl Webhook {
    /// Its id, for `updateWebhook`, `rotateWebhookSecret` and `deleteWebhook`.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Where events are POSTed: an https URL.
    async fn url(&self) -> &str {
        &self.0.url
    }

    /// The events it is sent.
    async fn events(&self) -> Vec<WebhookEvent> {
        self.0.events.iter().copied().map(Into::into).collect()
    }

    /// Whether events are sent to it. Groundswell switches off an endpoint that has failed
    /// every delivery for a day, and tells the organisation's owners.
    async fn active(&self) -> bool {
        self.0.active
    }

    /// What the owners wrote to recognise it.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// When it was registered.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When it was last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// When Groundswell switched it off after a day of failures, if it did.
    async fn deactivated_at(&self) -> Option<DateTime<Utc>> {
        self.0.deactivated_at
    }

    /// The organisation it belongs to.
    async fn organisation(&self, ctx: &Context<'_>) -> ApiResult<Organisation> {
        load_organisation(ctx, self.0.organisation_id).await
    }

    /// Its deliveries, newest first, each with its attempts.
    #[graphql(complexity = "first.unwrap_or(20).clamp(0, 100) as usize * child_complexity")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<Paged<WebhookDelivery>> {
        let had_cursor = after.is_some();
        let page = webhooks::deliveries(
            &app(ctx)?.db,
            actor(ctx)?,
            self.0.id,
            page_request(ctx, first, after)?,
        )
        .await?;
        Ok(connection(page, had_cursor, |d| d.id, WebhookDelivery))
    }
}

pub struct WebhookDelivery(pub Delivery);

/// One event sent (or to be sent) to one endpoint.
#[Object]
impl WebhookDelivery {
    /// Its id, for `redeliverWebhook`.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The `webhook-id` header it is sent with: the same on every attempt and redelivery, so a
    /// receiver can drop a repeat.
    async fn message_id(&self) -> String {
        self.0.message_id()
    }

    /// The event it carries (absent only for an event type this server no longer knows).
    async fn event(&self) -> Option<WebhookEvent> {
        self.0.event.map(Into::into)
    }

    /// Where it stands.
    async fn status(&self) -> WebhookDeliveryStatus {
        self.0.status.into()
    }

    /// The JSON body sent, exactly as signed.
    async fn payload(&self) -> &str {
        &self.0.body
    }

    /// How many times it has been tried.
    async fn attempt_count(&self) -> i32 {
        self.0.attempt_count
    }

    /// When it will next be tried, while it is pending.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_attempt_at
    }

    /// The HTTP status of the latest answer, if one came.
    async fn last_status_code(&self) -> Option<i32> {
        self.0.last_status_code
    }

    /// Why the latest attempt failed, if it did.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }

    /// When the event happened and the delivery was queued.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When the receiver accepted it.
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }

    /// Its attempts, oldest first: the latest 5 when there were more.
    async fn attempts(&self) -> Vec<WebhookAttempt> {
        let skip = self.0.attempts.len().saturating_sub(MAX_ATTEMPTS_SHOWN);
        self.0
            .attempts
            .iter()
            .skip(skip)
            .cloned()
            .map(WebhookAttempt)
            .collect()
    }
}

/// Most attempts a delivery shows (the latest; `attemptCount` says how many there were).
pub const MAX_ATTEMPTS_SHOWN: usize = 5;

pub struct WebhookAttempt(pub Attempt);

/// One try at a delivery.
#[Object]
impl WebhookAttempt {
    /// When it was made.
    async fn attempted_at(&self) -> DateTime<Utc> {
        self.0.attempted_at
    }

    /// The HTTP status the receiver answered, if it answered.
    async fn status_code(&self) -> Option<i32> {
        self.0.status_code
    }

    /// How long the attempt took, in milliseconds.
    async fn duration_ms(&self) -> i32 {
        self.0.duration_ms
    }

    /// The start of what the receiver answered (at most 200 characters).
    async fn response_excerpt(&self) -> Option<&str> {
        self.0.response_excerpt.as_deref()
    }

    /// Why it failed, if it did.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
}

pub struct NewWebhook(WebhookWithSecret);

/// An endpoint with its signing secret, which is shown only here, once.
#[Object]
impl NewWebhook {
    /// `whsec_` and the base64 of 32 random bytes: verify each delivery's `webhook-signature`
    /// with it. Shown once; Groundswell never shows it again.
    async fn secret(&self) -> &str {
        &self.0.secret
    }

    /// The endpoint.
    async fn webhook(&self) -> Webhook {
        Webhook(self.0.webhook.clone())
    }
}

/// A new webhook endpoint for an organisation.
#[derive(InputObject)]
pub struct CreateWebhookInput {
    /// The organisation whose events it hears.
    pub organisation_id: ID,
    /// An https URL (at most 2,000 characters) on a public address.
    pub url: String,
    /// At least one event.
    pub events: Vec<WebhookEvent>,
    /// Up to 500 characters, to recognise it later.
    pub description: Option<String>,
}

/// Changes to a webhook endpoint; fields left out stay as they are.
#[derive(InputObject)]
pub struct UpdateWebhookInput {
    /// A new https URL.
    pub url: Option<String>,
    /// The events it hears from now on (at least one).
    pub events: Option<Vec<WebhookEvent>>,
    /// Switches it off, or back on (which starts its count of failures afresh).
    pub active: Option<bool>,
    /// A new description; an empty one removes it.
    pub description: Option<String>,
}

fn events(events: Vec<WebhookEvent>) -> ApiResult<EventSet> {
    EventSet::parse(events.into_iter().map(Into::into)).field("events")
}

#[derive(Default)]
pub struct WebhooksMutation;

#[Object]
impl WebhooksMutation {
    /// Registers an endpoint for an organisation's events. Its owners and its own API tokens
    /// only. The answer holds the signing secret, shown this once.
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookInput,
    ) -> ApiResult<NewWebhook> {
        let app = app(ctx)?;
        let new = DomainNewWebhook {
            organisation_id: parse_id("organisationId", &input.organisation_id)?,
            url: EndpointUrl::parse(&input.url, app.webhooks.policy).field("url")?,
            events: events(input.events)?,
            description: match input.description.as_deref() {
                Some(text) => Description::parse(text).field("description")?,
                None => None,
            },
        };
        let made = webhooks::create(&app.db, actor(ctx)?, new, groundswell_domain::now()).await?;
        Ok(NewWebhook(made))
    }

    /// Changes an endpoint's URL, events or description, or switches it off or on. Owners and
    /// the organisation's API tokens only.
    async fn update_webhook(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateWebhookInput,
    ) -> ApiResult<Webhook> {
        let app = app(ctx)?;
        let id = parse_id("id", &id)?;
        let edit = WebhookEdit {
            url: input
                .url
                .as_deref()
                .map(|url| EndpointUrl::parse(url, app.webhooks.policy))
                .transpose()
                .field("url")?,
            events: input.events.map(events).transpose()?,
            active: input.active,
            description: input
                .description
                .as_deref()
                .map(Description::parse)
                .transpose()
                .field("description")?,
        };
        let webhook =
            webhooks::update(&app.db, actor(ctx)?, id, edit, groundswell_domain::now()).await?;
        Ok(Webhook(webhook))
    }

    /// Makes a new signing secret, shown this once. The old one keeps signing beside it for 24
    /// hours (each delivery carries both signatures), so the receiver can switch over.
    async fn rotate_webhook_secret(&self, ctx: &Context<'_>, id: ID) -> ApiResult<NewWebhook> {
        let id = parse_id("id", &id)?;
        let made =
            webhooks::rotate_secret(&app(ctx)?.db, actor(ctx)?, id, groundswell_domain::now())
                .await?;
        Ok(NewWebhook(made))
    }

    /// Deletes an endpoint and its deliveries. Owners and the organisation's API tokens only.
    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> ApiResult<bool> {
        let id = parse_id("id", &id)?;
        webhooks::delete(&app(ctx)?.db, actor(ctx)?, id).await?;
        Ok(true)
    }

    /// Sends a delivery again, with the same `webhook-id`, retrying for a day as a new event
    /// would. Owners and the organisation's API tokens only.
    async fn redeliver_webhook(
        &self,
        ctx: &Context<'_>,
        delivery_id: ID,
    ) -> ApiResult<WebhookDelivery> {
        let id = parse_id("deliveryId", &delivery_id)?;
        let delivery = webhooks::redeliver(
            &app(ctx)?.db,
            actor(ctx)?,
            id,
            chrono::TimeDelta::days(1),
            groundswell_domain::now(),
        )
        .await?;
        Ok(WebhookDelivery(delivery))
    }
}

/// `Organisation.webhooks`: its endpoints, oldest first; owners and its own API tokens only.
pub(crate) async fn of_organisation(
    ctx: &Context<'_>,
    organisation_id: uuid::Uuid,
) -> ApiResult<Vec<Webhook>> {
    let list = webhooks::list(&app(ctx)?.db, actor(ctx)?, organisation_id).await?;
    Ok(list.into_iter().map(Webhook).collect())
}
