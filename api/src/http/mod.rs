//! The HTTP surface: GraphQL over HTTP, the sign-in page, health checks, and the layers that
//! bound every request (body size, time, logging without secrets).

mod auth;
pub mod connections;
mod gatherings;
mod graphiql;
mod graphql;
mod health;
pub mod load;
pub mod pages;
pub mod parsed;
pub mod persisted;
pub mod serve;
mod sign_in;
mod unsubscribe;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::MatchedPath,
    http::{Request, Response, StatusCode, header},
    middleware,
    routing::{get, post},
};
use tower_http::{
    catch_panic::CatchPanicLayer, limit::RequestBodyLimitLayer, timeout::TimeoutLayer,
    trace::TraceLayer,
};

use crate::graphql::GroundswellSchema;
use groundswell_domain::{Database, secrets::SecretKey};

pub const SESSION_COOKIE: &str = "groundswell_session";

/// What every route shares, behind one `Arc`: axum clones the state for each request (into
/// the route's handler and again for its `State` extractor), and a clone of the fields
/// themselves was a score of reference counts changed twice over on every request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
pub struct Shared {
    pub db: Database,
    pub schema: GroundswellSchema,
    /// The same schema for requests already validated in full once (`parsed`).
    pub prevalidated_schema: GroundswellSchema,
    /// The same schema for subscriptions over WebSocket, where it refuses anything else.
    pub websocket_schema: GroundswellSchema,
    pub public_url: Arc<str>,
    pub max_body_bytes: usize,
    /// Verifies unsubscribe links.
    pub secret: SecretKey,
    /// Open WebSocket connections per client address.
    pub websocket_connections: Arc<crate::graphql::websocket::Connections>,
    /// Most subscriptions one WebSocket connection may run at once.
    pub subscriptions_per_connection: usize,
    /// Automatic persisted queries this server has seen.
    pub persisted: Arc<persisted::PersistedQueries>,
    /// Documents parsed before, by their text.
    pub parsed_documents: Arc<parsed::ParsedDocuments>,
    /// `max-age` of public GraphQL answers.
    pub public_cache_max_age_seconds: u64,
    /// Public answers kept in memory; `None` when RESPONSE_CACHE_BYTES is 0.
    pub response_cache: Option<Arc<crate::response_cache::ResponseCache>>,
    /// What GraphQL's resolvers share, for the attendee pages, which call the same services.
    pub app: crate::graphql::AppContext,
}

/// Requests handled at once per database connection; the rest wait their turn (in order,
/// within the request time limit) before anything is allocated for them, so a rush of
/// thousands costs little memory and holds no connection while it waits.
const IN_FLIGHT_PER_CONNECTION: usize = 8;

/// Requests handled at once with `database_connections` connections.
pub fn request_slots(database_connections: u32) -> usize {
    (database_connections as usize * IN_FLIGHT_PER_CONNECTION).max(64)
}

/// The routes and the layers every request passes; `load` counts the requests held, and its
/// slots are the most handled at once.
pub fn router(
    state: AppState,
    request_timeout: Duration,
    load: load::Load,
    connections: connections::Connections,
) -> Router {
    let max_body = state.max_body_bytes;
    let in_flight = load.slots();
    Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route(
            &format!("{}/{{file}}", graphiql::ASSET_PREFIX),
            get(graphiql::asset),
        )
        .route("/graphql/ws", get(graphql::subscriptions))
        .route("/", get(pages::home))
        // `{slug}.ics` is the calendar file; anything else is the gathering's page.
        .route("/gatherings/{file}", get(pages::gathering_or_calendar))
        .route("/gatherings/{slug}/register", post(pages::register))
        .route(
            "/registrations/confirm",
            get(pages::confirm_page).post(pages::confirm_submit),
        )
        .route("/my/registrations", get(pages::my_registrations))
        .route(
            "/my/registrations/{id}/cancel",
            post(pages::cancel_registration),
        )
        .route(
            "/my/registrations/{id}/erase-access-needs",
            post(pages::erase_access_needs),
        )
        .route("/sign-in/link", post(pages::request_sign_in_link))
        .route("/static/pages.css", get(pages::stylesheet))
        .route("/static/icons/{file}", get(pages::icon))
        .route(
            "/gatherings/{slug}/registrations.csv",
            get(gatherings::registrations_csv),
        )
        .route("/sign-in", get(pages::sign_in_page).post(sign_in::submit))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe::page).post(unsubscribe::submit),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(crate::metrics::render))
        .with_state(state)
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(in_flight))
        // Outside the limit, so requests waiting for a slot count too.
        .layer(middleware::from_fn_with_state(load, load::count))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        // Holds however the body is read: the body itself is capped, not only the extractor.
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(CatchPanicLayer::new())
        .layer(middleware::map_response(json_for_bare_errors))
        .layer(middleware::from_fn(crate::metrics::track))
        .layer(middleware::from_fn_with_state(
            connections,
            connections::close_when_low,
        ))
        .layer(
            TraceLayer::new_for_http()
                // The route pattern, never the URI: queries and paths can carry tokens.
                .make_span_with(|request: &Request<Body>| {
                    let route = request
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or("unmatched", MatchedPath::as_str);
                    tracing::info_span!("http.request", http.method = %request.method(), http.route = route)
                })
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO),
                ),
        )
}

/// Gives errors raised by layers (too large, too slow, a panic) a GraphQL-shaped JSON body, so
/// a client reads them like any other error.
async fn json_for_bare_errors(response: Response<Body>) -> Response<Body> {
    let status = response.status();
    let is_bare = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    let (message, code) = match status {
        _ if !is_bare => return response,
        StatusCode::PAYLOAD_TOO_LARGE => (
            "The request body is too large. Requests are limited to 1 MiB.",
            "BAD_USER_INPUT",
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "The request took too long and was stopped. Try a smaller query.",
            "INTERNAL_SERVER_ERROR",
        ),
        StatusCode::INTERNAL_SERVER_ERROR => (
            "Something went wrong on our side. Please try again.",
            "INTERNAL_SERVER_ERROR",
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "This address does not answer that method; the Allow header says which it does.",
            "BAD_USER_INPUT",
        ),
        StatusCode::TOO_MANY_REQUESTS => (
            "Too many requests just now. Please wait a little and try again.",
            "RATE_LIMITED",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "Send the request body as JSON, with Content-Type: application/json.",
            "BAD_USER_INPUT",
        ),
        _ => return response,
    };
    let mut json = graphql::error_response(status, message, code);
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(value) = response.headers().get(&name) {
            json.headers_mut().insert(name, value.clone());
        }
    }
    json
}
