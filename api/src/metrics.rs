//! Prometheus metrics at `GET /metrics`: requests by route and status with their latency, mail
//! delivery outcomes, and the outbox by state (read when scraped).

use std::{
    collections::HashMap,
    sync::{LazyLock, OnceLock, PoisonError, RwLock},
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{MatchedPath, State},
    http::{Request, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::http::AppState;

/// The process-wide recorder; installed once, however many servers a process runs (tests).
fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => Some(handle),
            Err(err) => {
                tracing::warn!(error = %err, "metrics recorder not installed");
                None
            }
        })
        .as_ref()
}

/// Installs the recorder before anything records.
pub fn init() {
    let _ = handle();
}

/// How often the recorder folds the latencies recorded since into their summaries.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Folds recorded latencies into their summaries every [`UPKEEP_EVERY`] until `shutdown`.
///
/// The recorder keeps every latency recorded, about eight bytes a request, until it is folded
/// in. `install_recorder` leaves that to its caller, and only reading `/metrics` did it, so a
/// server nobody scraped grew without end. In the benchmark's mixed scenario (cached reads at
/// tens of thousands a second) the server's peak was 11 to 15 MiB higher without this.
pub async fn upkeep(shutdown: CancellationToken) {
    let Some(handle) = handle() else {
        return;
    };
    let mut every = tokio::time::interval(UPKEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => handle.run_upkeep(),
        }
    }
}

/// Counts and times every request by its route pattern (never its URL, which may hold tokens).
pub async fn track(request: Request<Body>, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    RequestMetrics::of(route, response.status().as_u16()).record(started.elapsed());
    response
}

/// One route's request counter for one status, and its latency histogram.
#[derive(Clone)]
struct RequestMetrics {
    requests: Counter,
    duration: Histogram,
}

/// Each route's latency histogram and its counters by status, found in the recorder once.
struct RouteMetrics {
    duration: Histogram,
    by_status: Vec<(u16, Counter)>,
}

impl RequestMetrics {
    /// The handles for `route` and `status`. Asking the recorder for them on every request
    /// built each metric's key (its labels as owned strings) and hashed it: an allocation and
    /// a hash per label, per request. Routes are the router's patterns and statuses few, so
    /// what is kept stays small. The recorder never drops a series (no `idle_timeout`), so a
    /// handle kept here always records into what `/metrics` shows.
    fn of(route: &str, status: u16) -> RequestMetrics {
        static KNOWN: LazyLock<RwLock<HashMap<String, RouteMetrics>>> =
            LazyLock::new(RwLock::default);
        let find = |routes: &HashMap<String, RouteMetrics>| {
            let known = routes.get(route)?;
            let (_, requests) = known.by_status.iter().find(|(s, _)| *s == status)?;
            Some(RequestMetrics {
                requests: requests.clone(),
                duration: known.duration.clone(),
            })
        };
        if let Some(found) = find(&KNOWN.read().unwrap_or_else(PoisonError::into_inner)) {
            return found;
        }
        // Handles taken before the recorder is installed would record nowhere.
        init();
        let mut routes = KNOWN.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = find(&routes) {
            return found;
        }
        let known = routes
            .entry(route.to_owned())
            .or_insert_with(|| RouteMetrics {
                duration: metrics::histogram!(
                    "groundswell_http_request_duration_seconds",
                    "route" => route.to_owned()
                ),
                by_status: Vec::new(),
            });
        let requests = metrics::counter!(
            "groundswell_http_requests_total",
            "route" => route.to_owned(),
            "status" => status.to_string()
        );
        known.by_status.push((status, requests.clone()));
        RequestMetrics {
            requests,
            duration: known.duration.clone(),
        }
    }

    fn record(&self, took: Duration) {
        self.requests.increment(1);
        self.duration.record(took.as_secs_f64());
    }
}

pub async fn render(State(state): State<AppState>) -> Response {
    match groundswell_domain::mail::counts(&state.db).await {
        Ok(counts) => {
            for (status, n) in [
                ("pending", counts.pending),
                ("sending", counts.sending),
                ("sent", counts.sent),
                ("failed", counts.failed),
            ] {
                metrics::gauge!("groundswell_outbox_messages", "status" => status).set(n as f64);
            }
            metrics::gauge!("groundswell_database_up").set(1.0);
        }
        Err(err) => {
            tracing::warn!(error = %err, "reading outbox counts failed");
            metrics::gauge!("groundswell_database_up").set(0.0);
        }
    }
    metrics::counter!("groundswell_graphql_items_written_whole_total")
        .absolute(crate::graphql::listed::WRITTEN_WHOLE.load(std::sync::atomic::Ordering::Relaxed));
    let body = handle().map(PrometheusHandle::render).unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
