//! Serving HTTP/1 on the capped listener, with a deadline for each request's headers.
//!
//! `axum::serve` gives hyper no timer, so hyper cannot time anything out: a connection that
//! never sends a request, or sends its headers a byte at a time, or sits idle between
//! keep-alive requests, keeps its place under `MAX_CONNECTIONS` until the client closes it.
//! This loop does what `axum::serve` does (a task per connection, upgrades for WebSockets,
//! `ConnectInfo<SocketAddr>`, graceful shutdown) with hyper's header read timeout switched on:
//! from the moment hyper starts waiting for a request (on a new connection, or after the last
//! answer on a kept-alive one) the client has that long to send all of the request's headers,
//! or the connection is closed. It does not cut a slow answer or a request's body (the
//! request timeout and body limits do), nor an upgraded WebSocket, which hyper no longer reads.

use std::time::Duration;

use axum::{Router, extract::ConnectInfo, serve::Listener};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::http::connections::Capped;

/// Serves `router` on `listener` until `shutdown`; then stops accepting, asks every
/// connection to close once its answer in progress is sent (idle ones close at once), and
/// returns when all have closed.
pub async fn serve(
    mut listener: Capped,
    router: Router,
    header_read_timeout: Duration,
    shutdown: CancellationToken,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    // Each connection's task holds a receiver: once every one is dropped, all have closed.
    let (closed_tx, closed_rx) = watch::channel(());
    loop {
        let (io, address) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let service =
            router
                .clone()
                .map_request(move |mut request: axum::http::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(address));
                    request
                });
        let connection = http
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
            .with_upgrades();
        let (shutdown, closed_rx) = (shutdown.clone(), closed_rx.clone());
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = ended {
                // A client that went away, or one too slow with its headers: nothing to act on.
                tracing::debug!(error = %err, client = %address, "connection ended with an error");
            }
            drop(closed_rx);
        });
    }
    drop(listener);
    drop(closed_rx);
    closed_tx.closed().await;
}
