//! The connections the server holds at once, capped (MAX_CONNECTIONS).
//!
//! Each open connection costs hyper's read and write buffers whether it is busy or idle: a
//! heap profile of the benchmark's rush, 2,000 connections opened at once, put 43 MiB there.
//! Past the cap, connections wait in the kernel's accept queue (`startup::LISTEN_BACKLOG`)
//! until one closes. Once three quarters of it are open, every answer asks its client to close
//! the connection (`Connection: close`), and the connection ends with that answer, so a rush
//! of one request per connection flows through the cap.
//!
//! A connection that sends no request's headers in time (one that never asks, one sending a
//! byte at a time, an idle keep-alive connection) is closed by `http::serve` after
//! `HEADER_READ_TIMEOUT_SECONDS` and gives its place back. An open WebSocket keeps its place
//! until it closes, so a low cap can still be filled by WebSockets (at most
//! `WS_CONNECTIONS_PER_ADDRESS` from each address); the default is high (4096).

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    body::Body,
    extract::State,
    http::{HeaderValue, Request, header},
    middleware::Next,
    response::Response,
    serve::Listener,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};

/// The cap, shared by the listener (which takes a place per connection) and the layer (which
/// asks clients to close once places run low).
#[derive(Clone, Debug)]
pub struct Connections {
    places: Arc<Semaphore>,
    cap: usize,
}

impl Connections {
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Self {
            places: Arc::new(Semaphore::new(cap)),
            cap,
        }
    }

    /// Connections open now, counting the place the listener takes before it accepts the next
    /// one (so places run low one connection early).
    pub fn open(&self) -> usize {
        self.cap - self.places.available_permits()
    }

    /// Three quarters of the cap or more are open: connections should end with their answer.
    pub fn running_low(&self) -> bool {
        self.open() * 4 >= self.cap * 3
    }
}

/// A TCP listener that accepts a connection only when it has a place for it.
pub struct Capped {
    listener: TcpListener,
    connections: Connections,
}

impl Capped {
    pub fn new(listener: TcpListener, connections: Connections) -> Self {
        Self {
            listener,
            connections,
        }
    }
}

impl Listener for Capped {
    type Io = Held;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Held, SocketAddr) {
        // The semaphore is never closed, so this waits for a place and never fails.
        let place = loop {
            if let Ok(place) = self.connections.places.clone().acquire_owned().await {
                break place;
            }
        };
        let (stream, address) = Listener::accept(&mut self.listener).await;
        (
            Held {
                stream,
                _place: place,
            },
            address,
        )
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// An accepted connection, holding its place until it is dropped (closed).
pub struct Held {
    stream: TcpStream,
    _place: OwnedSemaphorePermit,
}

impl AsyncRead for Held {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Held {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The layer's function: once places run low, the answer closes its connection. WebSocket
/// upgrades are left alone: their connection lives on after the answer, keeping its place.
pub async fn close_when_low(
    State(connections): State<Connections>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    if connections.running_low() && !response.headers().contains_key(header::UPGRADE) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_run_low_at_three_quarters_of_the_cap() {
        let connections = Connections::new(4);
        let held: Vec<_> = (0..2)
            .filter_map(|_| connections.places.clone().try_acquire_owned().ok())
            .collect();
        assert_eq!(connections.open(), 2);
        assert!(!connections.running_low());
        let third = connections.places.clone().try_acquire_owned();
        assert!(connections.running_low());
        drop((held, third));
        assert_eq!(connections.open(), 0);
        assert!(!connections.running_low());
    }
}
