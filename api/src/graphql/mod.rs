//! The GraphQL schema: per-area roots merged into one, with the limits that keep one request
//! from costing the server too much.

mod changes;
mod coalitions;
mod connection;
pub mod cost;
#[cfg(test)]
mod descriptions;
mod digests;
pub mod error;
mod gatherings;
pub(crate) mod limits;
pub mod listed;
mod loaders;
mod organisations;
mod people;
mod pledges;
mod progress;
mod registrations;
mod scalars;
mod subscriptions;
pub mod visibility;
mod webhooks;
pub mod websocket;

use std::{net::IpAddr, sync::Arc};

use async_graphql::{Context, MergedObject, Schema, SchemaBuilder};
use governor::DefaultKeyedRateLimiter;
use groundswell_domain::{Actor, Database, secrets::SecretKey};
use tokio::sync::Notify;

pub use error::{ApiError, ApiResult};
pub use loaders::new_loader;

/// Most operations in one batched request.
pub const MAX_BATCH: usize = 10;

/// What can be read.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    people::PeopleQuery,
    changes::ChangesQuery,
    changes::MovementQuery,
    organisations::OrganisationsQuery,
    gatherings::GatheringsQuery,
    pledges::PledgesQuery,
    coalitions::CoalitionsQuery,
    progress::ProgressQuery,
    digests::DigestsQuery,
);

/// What can be changed.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    people::PeopleMutation,
    organisations::OrganisationsMutation,
    gatherings::GatheringsMutation,
    registrations::RegistrationsMutation,
    pledges::PledgesMutation,
    coalitions::CoalitionsMutation,
    progress::ProgressMutation,
    digests::DigestsMutation,
    webhooks::WebhooksMutation,
);

pub use subscriptions::SubscriptionRoot;

pub type GroundswellSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// What every resolver may use, shared by all requests (and by the HTTP and WebSocket
/// schemas, so a clone shares everything).
#[derive(Clone)]
pub struct AppContext {
    pub db: Database,
    pub secret: SecretKey,
    pub sign_in_limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// How much one caller may do to other people (register them, add them as members).
    pub limits: groundswell_domain::Limits,
    /// Wakes the mail worker when a resolver has queued mail.
    pub mail_queued: Arc<Notify>,
    /// Where live subscriptions hear of changes.
    pub events: crate::events::Events,
    /// Base URL for links, without a trailing slash.
    pub public_url: String,
    /// How long an active pledge may go without an update before it has gone quiet.
    pub quiet_after: chrono::TimeDelta,
    /// Renders digests for `digestPreview` exactly as the mail worker will.
    pub renderer: Arc<crate::mail::Renderer>,
    /// Which webhook targets are allowed, and how long redeliveries are retried.
    pub webhooks: crate::config::WebhookSettings,
    /// How long a registration link (registering with only an email) works.
    pub registration_request_ttl: chrono::Duration,
    /// Items this server has written out in one step (`listed`); `/metrics` shows the process's.
    pub written_whole: Arc<std::sync::atomic::AtomicU64>,
}

/// Who is asking, established once per request.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub actor: Actor,
    pub client_ip: Option<IpAddr>,
}

fn builder() -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot,
    )
    // Depth and cost are checked by `cost` before execution, with bounds of introspection's
    // own; this only backs that up, above what the standard introspection query needs.
    .limit_depth(cost::MAX_INTROSPECTION_DEPTH + 4)
    .limit_recursive_depth(32)
    .limit_directives(10)
}

/// The schema served over HTTP. It has no extensions: with any extension async-graphql calls
/// it around every field it resolves, which on a page of 50 pledges was a tenth of the work.
pub fn build(context: AppContext) -> GroundswellSchema {
    builder().data(context).finish()
}

/// The HTTP schema for requests whose document, operation name and variables have already
/// passed [`build`]'s full validation (`http::parsed` remembers which): it skips the rules
/// already passed, which cannot give another answer for the same request, and still checks
/// depth and complexity. Validating in full was a fifth of a small page's work.
pub fn build_prevalidated(context: AppContext) -> GroundswellSchema {
    builder()
        .validation_mode(async_graphql::ValidationMode::Fast)
        .data(context)
        .finish()
}

/// The schema served over WebSocket, which refuses anything but subscriptions.
pub fn build_for_websocket(context: AppContext) -> GroundswellSchema {
    builder()
        .extension(websocket::SubscriptionsOnly)
        .data(context)
        .finish()
}

/// The schema's SDL, as `groundswell schema` prints it and `schema.graphql` holds it.
pub fn sdl() -> String {
    builder().finish().sdl()
}

pub(crate) fn app<'a>(ctx: &Context<'a>) -> ApiResult<&'a AppContext> {
    Ok(ctx.data::<AppContext>()?)
}

pub(crate) fn request<'a>(ctx: &Context<'a>) -> ApiResult<&'a RequestContext> {
    Ok(ctx.data::<RequestContext>()?)
}

pub(crate) fn actor<'a>(ctx: &Context<'a>) -> ApiResult<&'a Actor> {
    Ok(&request(ctx)?.actor)
}

/// Parses a GraphQL `ID` holding a UUID.
pub(crate) fn parse_id(field: &str, id: &async_graphql::ID) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(id.as_str()).map_err(|_| ApiError::bad_input(field, "is not a valid id"))
}
