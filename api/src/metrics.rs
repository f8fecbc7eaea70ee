//! Prometheus metrics at `GET /metrics`: requests by route and status with their latency, mail
//! delivery outcomes, and the outbox by state (read when scraped).

use std::{sync::OnceLock, time::Instant};

use axum::{
    body::Body,
    extract::{MatchedPath, State},
    http::{Request, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

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
