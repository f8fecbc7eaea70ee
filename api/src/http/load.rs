//! How many requests the server holds at once (running, or queued for one of its slots), so
//! that background work can make way for people waiting for an answer.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{body::Body, extract::State, http::Request, middleware::Next, response::Response};

/// The requests held now, against the slots the server runs at once (`super::request_slots`).
#[derive(Clone, Debug)]
pub struct Load {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    held: AtomicUsize,
    slots: usize,
}

impl Load {
    pub fn new(slots: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                held: AtomicUsize::new(0),
                slots,
            }),
        }
    }

    /// The requests the server runs at once.
    pub fn slots(&self) -> usize {
        self.inner.slots
    }

    /// More requests are held than there are slots: some are queued for one, as in a rush of
    /// registrations.
    pub fn is_saturated(&self) -> bool {
        self.inner.held.load(Ordering::Relaxed) > self.inner.slots
    }

    /// Counts a request as held until the guard is dropped (answered, failed or abandoned).
    pub fn hold(&self) -> Held {
        self.inner.held.fetch_add(1, Ordering::Relaxed);
        Held(self.inner.clone())
    }
}

/// One request held; dropping it lets it go.
pub struct Held(Arc<Inner>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The layer's function: holds each request for as long as it runs or waits.
pub async fn count(State(load): State<Load>, request: Request<Body>, next: Next) -> Response {
    let _held = load.hold();
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturated_only_while_more_requests_are_held_than_there_are_slots() {
        let load = Load::new(2);
        let first = load.hold();
        let second = load.hold();
        assert!(!load.is_saturated());
        let third = load.hold();
        assert!(load.is_saturated());
        drop(first);
        assert!(!load.is_saturated());
        drop((second, third));
        assert!(!load.is_saturated());
    }
}
