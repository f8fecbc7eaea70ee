//! The delivery worker: claims due messages from the outbox, renders and sends them, and
//! records each outcome. A failed attempt is retried with exponential back-off until the last
//! attempt, after which the message is marked failed for operators to see.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use futures::StreamExt;
use groundswell_domain::{
    Database,
    mail::{self, QueuedMail},
};
use lettre::{
    Message,
    message::{
        Attachment, Mailbox, MultiPart,
        header::{ContentType, Header, HeaderName, HeaderValue},
    },
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Renderer, Transport};
use crate::{background::Clock, config::MailSettings, http::load::Load};

/// Messages claimed at a time. Each claimed message holds its context parsed, and a digest's
/// is about 140 kB of JSON: with 32 a batch, delivering the benchmark's digest run raised the
/// server's peak from 70 to 79 MiB on its own (8 to a batch: 70 MiB).
const BATCH: u64 = 8;
/// Messages of one batch in flight at once.
const CONCURRENCY: usize = 4;
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// The longest one batch waits for the server to stop being saturated, so mail still goes out
/// under lasting overload.
const MAX_YIELD: Duration = Duration::from_secs(1);
/// How often a waiting batch looks again.
const YIELD_POLL: Duration = Duration::from_millis(20);

pub struct DeliveryWorker {
    db: Database,
    renderer: Renderer,
    transport: Transport,
    from: Mailbox,
    settings: MailSettings,
    wake: Arc<Notify>,
    /// The server's requests, which delivery makes way for; none for a worker run on its own.
    load: Option<Load>,
}

/// The wait before retrying after `attempts` failed attempts: `base`, then doubling, at most
/// an hour.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

impl DeliveryWorker {
    pub fn new(
        db: Database,
        renderer: Renderer,
        transport: Transport,
        from: Mailbox,
        settings: MailSettings,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            db,
            renderer,
            transport,
            from,
            settings,
            wake,
            load: None,
        }
    }

    /// Delivery makes way for the server's requests: while more are held than the server has
    /// slots for (a rush of registrations, each queueing its confirmation), a batch waits for
    /// them, at most [`MAX_YIELD`]. Mail can wait a moment; people waiting for an answer
    /// cannot. On a benchmark rush of 2,000, writing their confirmations took 40% of the
    /// server's CPU while the rush was being answered (perf).
    pub fn yielding_to(mut self, load: Load) -> Self {
        self.load = Some(load);
        self
    }

    /// Delivers until `shutdown`; a batch under way is finished first.
    pub async fn run(&self, shutdown: CancellationToken) {
        tracing::info!("mail delivery started");
        while !shutdown.is_cancelled() {
            if let Some(load) = &self.load {
                make_way(load, &shutdown, MAX_YIELD).await;
            }
            match self.deliver_due().await {
                Ok(claimed) if claimed > 0 => continue,
                Ok(_) => {}
                Err(err) => tracing::error!(error = format!("{err:#}"), "claiming mail failed"),
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
        tracing::info!("mail delivery stopped");
    }

    /// Claims and delivers one batch of due messages; returns how many were claimed.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        self.deliver_due_as_of(Clock::REAL).await
    }

    /// [`deliver_due`](Self::deliver_due) with `clock` deciding what is due (retries after
    /// their back-off, claims after their lease) and when a failed message is retried.
    pub async fn deliver_due_as_of(&self, clock: Clock) -> anyhow::Result<usize> {
        let batch = mail::claim(&self.db, BATCH, self.settings.lease, clock.now())
            .await
            .context("claiming from the outbox")?;
        let claimed = batch.len();
        futures::stream::iter(batch)
            .for_each_concurrent(CONCURRENCY, |queued| async move {
                if let Err(err) = self.deliver(&queued, clock).await {
                    tracing::error!(mail.id = %queued.id, error = format!("{err:#}"), "recording a delivery failed");
                }
            })
            .await;
        Ok(claimed)
    }

    #[tracing::instrument(skip_all, fields(mail.id = %queued.id, mail.template = %queued.template, mail.attempt = queued.attempts))]
    async fn deliver(&self, queued: &QueuedMail, clock: Clock) -> anyhow::Result<()> {
        // A template or calendar that panics on one message's data must not take the worker (or
        // the process) down, nor come back after every lease: it is that message's failure.
        let composed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.compose(queued)))
                .unwrap_or_else(|panic| {
                    let reason = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "no reason given".to_owned());
                    Err(anyhow::anyhow!("rendering the message panicked: {reason}"))
                });
        let message = match composed {
            Ok(message) => message,
            Err(err) => {
                // A message that cannot be composed will not compose on a retry either.
                tracing::error!(error = format!("{err:#}"), "mail could not be composed");
                return Ok(
                    mail::mark_attempt_failed(&self.db, queued, &format!("{err:#}"), None).await?,
                );
            }
        };
        match self.transport.send(message).await {
            Ok(()) => {
                mail::mark_sent(&self.db, queued, groundswell_domain::now()).await?;
                metrics::counter!("groundswell_mail_sent_total").increment(1);
                tracing::info!("mail sent");
            }
            Err(err) => {
                let attempts = u32::try_from(queued.attempts).unwrap_or(u32::MAX);
                let retry_at =
                    (!err.permanent && attempts < self.settings.max_attempts).then(|| {
                        groundswell_domain::time::after(
                            clock.now(),
                            chrono::Duration::from_std(backoff(self.settings.retry_base, attempts))
                                .unwrap_or(chrono::Duration::hours(1)),
                        )
                    });
                if retry_at.is_some() {
                    metrics::counter!("groundswell_mail_retries_total").increment(1);
                    tracing::warn!(error = %err.message, "mail not sent; will retry");
                } else {
                    metrics::counter!("groundswell_mail_failed_total").increment(1);
                    tracing::error!(error = %err.message, "mail not sent; giving up");
                }
                mail::mark_attempt_failed(&self.db, queued, &err.message, retry_at).await?;
            }
        }
        Ok(())
    }

    fn compose(&self, queued: &QueuedMail) -> anyhow::Result<Message> {
        let rendered = self.renderer.render(queued)?;
        let to: Mailbox = queued
            .recipient
            .parse()
            .context("the recipient is not a mailbox")?;
        // The Message-ID is made from the outbox row, so every attempt of one message carries
        // the same id and a receiver can tell a retry from a new message.
        let domain = self.from.email.domain().to_owned();
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .message_id(Some(format!("<{}@{domain}>", queued.id)));
        let message = match rendered.unsubscribe_url {
            Some(url) => message
                .header(ListUnsubscribe(format!("<{url}>")))
                .header(ListUnsubscribePost),
            None => message,
        };
        let body = MultiPart::alternative_plain_html(rendered.text, rendered.html);
        let body = match rendered.calendar {
            Some(ics) => MultiPart::mixed().multipart(body).singlepart(
                Attachment::new("invite.ics".to_owned()).body(
                    ics,
                    ContentType::parse("text/calendar; charset=utf-8; method=PUBLISH")
                        .context("the calendar content type")?,
                ),
            ),
            None => body,
        };
        message.multipart(body).context("building the message")
    }
}

/// Waits while `load` is saturated, at most `longest` or until shutdown.
async fn make_way(load: &Load, shutdown: &CancellationToken, longest: Duration) {
    let deadline = tokio::time::Instant::now() + longest;
    while load.is_saturated() && tokio::time::Instant::now() < deadline {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(YIELD_POLL) => {}
        }
    }
}

/// `List-Unsubscribe: <https://…>` (RFC 2369).
#[derive(Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058): the link stops the mail
/// with one POST, no sign-in.
#[derive(Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_and_stops_at_an_hour() {
        let base = Duration::from_secs(30);
        assert_eq!(backoff(base, 1), Duration::from_secs(30));
        assert_eq!(backoff(base, 2), Duration::from_secs(60));
        assert_eq!(backoff(base, 4), Duration::from_secs(240));
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }

    /// Far longer than any of these tests should take: reaching it means `make_way` waited
    /// when it should not have.
    const NEVER: Duration = Duration::from_secs(3600);
    const PATIENCE: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn delivery_goes_ahead_at_once_when_the_server_is_not_saturated() {
        let load = Load::new(1);
        let _one = load.hold();
        let done =
            tokio::time::timeout(PATIENCE, make_way(&load, &CancellationToken::new(), NEVER)).await;
        assert!(done.is_ok(), "waited although a slot was free");
    }

    #[tokio::test]
    async fn delivery_waits_while_requests_queue_and_goes_ahead_when_they_drain() {
        let load = Load::new(1);
        let first = load.hold();
        let second = load.hold();
        let waiting = tokio::spawn({
            let load = load.clone();
            async move { make_way(&load, &CancellationToken::new(), NEVER).await }
        });
        tokio::time::sleep(YIELD_POLL * 5).await;
        assert!(!waiting.is_finished(), "delivered while requests queued");
        drop(second);
        let done = tokio::time::timeout(PATIENCE, waiting).await;
        assert!(done.is_ok(), "still waiting after the queue drained");
        drop(first);
    }

    #[tokio::test]
    async fn delivery_waits_no_longer_than_its_bound_or_shutdown() {
        let load = Load::new(0);
        let _held = load.hold();
        let bounded = tokio::time::timeout(
            PATIENCE,
            make_way(&load, &CancellationToken::new(), YIELD_POLL * 3),
        )
        .await;
        assert!(bounded.is_ok(), "waited past its bound");
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let stopped = tokio::time::timeout(PATIENCE, make_way(&load, &shutdown, NEVER)).await;
        assert!(stopped.is_ok(), "kept waiting through shutdown");
    }
}
