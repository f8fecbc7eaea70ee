//! Prometheus metrics at `GET /metrics`: requests by route and status with their latency, mail
//! delivery outcomes, and the outbox by state (read when scraped).

use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{MatchedPath, State},
    http::{Request, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
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
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("groundswell_http_requests_total", "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("groundswell_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
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
