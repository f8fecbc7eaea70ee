//! Closed-loop load: a number of clients, each sending its next request as soon as its last is
//! answered, for a warm-up and then a measured time.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

/// How one request ended.
#[derive(Debug)]
pub enum Outcome {
    Ok,
    /// An answer that was not the data asked for: a non-200 status, GraphQL errors, a driver
    /// error.
    Error(String),
    /// No answer within the client's time limit.
    Timeout,
}

/// What one run of a scenario measured.
#[derive(Clone, Debug)]
pub struct Measured {
    pub seconds: f64,
    pub ok: u64,
    pub errors: u64,
    pub timeouts: u64,
    /// The first error seen, to say what went wrong.
    pub first_error: Option<String>,
    /// Latency of every request in the measured time, in microseconds.
    pub latency: Histogram<u64>,
}

impl Measured {
    pub(crate) fn new() -> Self {
        Measured {
            seconds: 0.0,
            ok: 0,
            errors: 0,
            timeouts: 0,
            first_error: None,
            latency: new_histogram(),
        }
    }

    /// Answered requests per second.
    pub fn throughput(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ok as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The latency at `quantile` (0.5, 0.95, 0.99), in milliseconds.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    pub(crate) fn record(&mut self, outcome: Outcome, took: Duration) {
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Error(message) => {
                self.errors += 1;
                self.first_error.get_or_insert(message);
            }
            Outcome::Timeout => self.timeouts += 1,
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(micros.max(1));
    }

    pub(crate) fn merge(&mut self, other: Measured) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }
}

#[expect(clippy::expect_used, reason = "the bounds are constants, and valid")]
fn new_histogram() -> Histogram<u64> {
    // 1 µs to 10 minutes at 3 significant figures.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Runs `clients` loops of `request(client, iteration)` for `warmup` and then `measure`,
/// counting only requests that began within the measured time.
pub async fn closed_loop<F, Fut>(
    clients: usize,
    warmup: Duration,
    measure: Duration,
    request: F,
) -> Measured
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let started = Instant::now();
    let from = started + warmup;
    let until = from + measure;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut measured = Measured::new();
                let mut iteration = 0u64;
                loop {
                    let sent = Instant::now();
                    if sent >= until {
                        break;
                    }
                    let outcome = request(client, iteration).await;
                    iteration += 1;
                    if sent >= from {
                        measured.record(outcome, sent.elapsed());
                    }
                }
                measured
            })
        })
        .collect();
    let mut total = Measured::new();
    for task in futures::future::join_all(tasks).await {
        match task {
            Ok(measured) => total.merge(measured),
            Err(err) => {
                total.errors += 1;
                total
                    .first_error
                    .get_or_insert(format!("a client task failed: {err}"));
            }
        }
    }
    total.seconds = measure.as_secs_f64();
    total
}

/// Sends `requests` at once (each its own client, released together) and measures each.
pub async fn burst<F, Fut>(requests: usize, request: F) -> Measured
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(requests + 1));
    let tasks: Vec<_> = (0..requests)
        .map(|index| {
            let request = request.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let sent = Instant::now();
                let outcome = request(index).await;
                (outcome, sent.elapsed())
            })
        })
        .collect();
    barrier.wait().await;
    let started = Instant::now();
    let mut total = Measured::new();
    for task in futures::future::join_all(tasks).await {
        match task {
            Ok((outcome, took)) => total.record(outcome, took),
            Err(err) => {
                total.errors += 1;
                total
                    .first_error
                    .get_or_insert(format!("a client task failed: {err}"));
            }
        }
    }
    total.seconds = started.elapsed().as_secs_f64();
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_requests_begun_in_the_measured_time_count() {
        let measured = closed_loop(
            4,
            Duration::from_millis(50),
            Duration::from_millis(200),
            |_, iteration| async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                if iteration % 10 == 9 {
                    Outcome::Error(format!("request {iteration}"))
                } else {
                    Outcome::Ok
                }
            },
        )
        .await;
        let answered = measured.ok + measured.errors;
        // 4 clients × 200 ms / 10 ms is 80 requests at most (and sleeps only overshoot).
        assert!((40..=84).contains(&answered), "{answered} answered");
        assert!(measured.errors > 0 && measured.errors < measured.ok);
        assert!(
            measured
                .first_error
                .as_ref()
                .is_some_and(|e| e.starts_with("request "))
        );
        assert!(measured.latency_ms(0.5) >= 10.0);
    }

    #[tokio::test]
    async fn a_burst_answers_every_request_once() {
        let measured = burst(100, |index| async move {
            if index == 7 {
                Outcome::Timeout
            } else {
                Outcome::Ok
            }
        })
        .await;
        assert_eq!(
            (measured.ok, measured.timeouts, measured.errors),
            (99, 1, 0)
        );
        assert_eq!(measured.latency.len(), 100);
    }
}
