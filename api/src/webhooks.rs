//! The webhook delivery worker: claims due deliveries from the outbox, signs each as Standard
//! Webhooks defines (`webhook-id`, `webhook-timestamp`, `webhook-signature`), POSTs it, and
//! records the attempt. A 2xx within the timeout is success; anything else is retried with
//! back-off for a day.
//!
//! Requests never reach the network Groundswell runs in (unless WEBHOOK_ALLOW_PRIVATE_TARGETS
//! says so): URLs naming a forbidden address are refused before connecting, names are resolved
//! by [`GuardedResolver`], which drops forbidden addresses, so the address actually connected
//! to is always checked, redirects are never followed and no proxy is used.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use futures::StreamExt;
use groundswell_domain::{
    Database,
    webhooks::{
        EndpointUrl, TargetPolicy,
        delivery::{self, Claimed, Outcome, Recorded},
        target::is_forbidden,
    },
};
use reqwest::{
    dns::{Addrs, Name, Resolve, Resolving},
    redirect,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{background::Clock, config::WebhookSettings};

/// Deliveries in flight at once.
const CONCURRENCY: usize = 8;
/// Deliveries claimed at a time: no more than are sent at once, so every claimed delivery is
/// sent at once and done within the timeout, inside its lease (the timeout and five seconds at
/// least). A bigger batch would leave some waiting their turn while the lease ran out, and a
/// second server would claim and send them too.
const BATCH: u64 = CONCURRENCY as u64;
/// How much of a receiver's answer is read, at most.
const READ_AT_MOST: usize = 1024;

/// Resolves names with the system resolver and keeps only addresses Groundswell may connect
/// to; a name with none left fails to resolve.
#[derive(Clone, Copy, Debug)]
pub struct GuardedResolver {
    policy: TargetPolicy,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "{0} resolves only to loopback, private or otherwise reserved addresses, which webhooks never reach"
)]
struct ForbiddenTarget(String);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| policy.allow_private || !is_forbidden(addr.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(
                    Box::new(ForbiddenTarget(host)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client deliveries go through.
pub fn client(settings: &WebhookSettings) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("Groundswell-Webhooks/", env!("CARGO_PKG_VERSION")))
        .redirect(redirect::Policy::none())
        .no_proxy()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .dns_resolver(Arc::new(GuardedResolver {
            policy: settings.policy,
        }))
        .build()
        .context("building the webhook HTTP client")
}

/// The `webhook-signature` header: one `v1,…` entry per live secret, space-separated.
pub fn signature(
    secrets: &[String],
    message_id: &str,
    timestamp: i64,
    body: &[u8],
) -> anyhow::Result<String> {
    let mut entries = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let signer = standardwebhooks::Webhook::new(secret)
            .map_err(|e| anyhow::anyhow!("a webhook secret is not base64: {e:?}"))?;
        entries.push(
            signer
                .sign(message_id, timestamp, body)
                .map_err(|e| anyhow::anyhow!("signing a webhook: {e:?}"))?,
        );
    }
    Ok(entries.join(" "))
}

pub struct WebhookWorker {
    db: Database,
    client: reqwest::Client,
    settings: WebhookSettings,
    /// Wakes the mail worker when an endpoint's owners are told it was switched off.
    mail_queued: Arc<Notify>,
}

impl WebhookWorker {
    pub fn new(
        db: Database,
        settings: WebhookSettings,
        mail_queued: Arc<Notify>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            client: client(&settings)?,
            db,
            settings,
            mail_queued,
        })
    }

    /// Delivers until `shutdown`; a batch under way is finished first.
    pub async fn run(&self, shutdown: CancellationToken) {
        tracing::info!("webhook delivery started");
        while !shutdown.is_cancelled() {
            match self.deliver_due().await {
                Ok(claimed) if claimed > 0 => continue,
                Ok(_) => {}
                Err(err) => {
                    tracing::error!(
                        error = format!("{err:#}"),
                        "claiming webhook deliveries failed"
                    )
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
        tracing::info!("webhook delivery stopped");
    }

    /// Claims and delivers one batch of due deliveries; returns how many were claimed.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        self.deliver_due_as_of(Clock::REAL).await
    }

    /// [`deliver_due`](Self::deliver_due) with `clock` deciding what is due (retries after
    /// their back-off, claims after their lease), when a failure is retried and how long an
    /// endpoint has been failing. Requests are signed with the real time, which receivers
    /// check.
    pub async fn deliver_due_as_of(&self, clock: Clock) -> anyhow::Result<usize> {
        let batch = delivery::claim(&self.db, BATCH, self.settings.lease, clock.now())
            .await
            .context("claiming webhook deliveries")?;
        let claimed = batch.len();
        futures::stream::iter(batch)
            .for_each_concurrent(CONCURRENCY, |claim| async move {
                if let Err(err) = self.deliver(&claim, clock).await {
                    tracing::error!(delivery.id = %claim.id, error = format!("{err:#}"), "recording a webhook delivery failed");
                }
            })
            .await;
        Ok(claimed)
    }

    #[tracing::instrument(skip_all, fields(delivery.id = %claim.id, webhook.id = %claim.endpoint_id, delivery.attempt = claim.attempts))]
    async fn deliver(&self, claim: &Claimed, clock: Clock) -> anyhow::Result<()> {
        if !claim.endpoint_active {
            tracing::info!("webhook switched off; delivery dropped");
            return Ok(delivery::skip(&self.db, claim, "the webhook was switched off").await?);
        }
        let outcome = self.attempt(claim).await;
        let now = clock.now();
        let attempts = u32::try_from(claim.attempts).unwrap_or(u32::MAX);
        let retry_at = outcome.error.as_ref().and_then(|_| {
            delivery::next_attempt(self.settings.retry_base, attempts, claim.retry_until, now)
        });
        let recorded = delivery::record(
            &self.db,
            claim,
            &outcome,
            retry_at,
            self.settings.deactivate_after,
            now,
        )
        .await?;
        match recorded {
            Recorded::Delivered => {
                metrics::counter!("groundswell_webhooks_delivered_total").increment(1);
                tracing::info!(status = ?outcome.status_code, "webhook delivered");
            }
            Recorded::Retrying => {
                metrics::counter!("groundswell_webhooks_retries_total").increment(1);
                tracing::warn!(status = ?outcome.status_code, error = ?outcome.error, "webhook not delivered; will retry");
            }
            Recorded::Failed => {
                metrics::counter!("groundswell_webhooks_failed_total").increment(1);
                tracing::error!(status = ?outcome.status_code, error = ?outcome.error, "webhook not delivered; giving up");
            }
            Recorded::Gone => {
                tracing::info!(status = ?outcome.status_code, "webhook deleted while its delivery was sent");
            }
            Recorded::FailedAndEndpointDeactivated => {
                metrics::counter!("groundswell_webhooks_failed_total").increment(1);
                tracing::error!(error = ?outcome.error, "webhook failing for too long; switched off and owners told");
                self.mail_queued.notify_one();
            }
        }
        Ok(())
    }

    /// One POST, timed, never longer than the timeout.
    async fn attempt(&self, claim: &Claimed) -> Outcome {
        let attempted_at = groundswell_domain::now();
        let started = Instant::now();
        let failed = |error: String, status_code: Option<u16>, excerpt: Option<String>| Outcome {
            attempted_at,
            status_code,
            duration: started.elapsed(),
            response_excerpt: excerpt,
            error: Some(error),
        };
        // Checked again at delivery: the setting may have changed since the URL was saved, and
        // an IP literal is connected to without asking the resolver.
        let url = match EndpointUrl::recheck(&claim.url, self.settings.policy) {
            Ok(url) => url,
            Err(reason) => return failed(format!("the URL {reason}"), None, None),
        };
        let timestamp = attempted_at.timestamp();
        let signature = match signature(
            &claim.secrets,
            &claim.message_id,
            timestamp,
            claim.body.as_bytes(),
        ) {
            Ok(signature) => signature,
            Err(err) => return failed(format!("{err:#}"), None, None),
        };
        let sent = self
            .client
            .post(url.url().clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(standardwebhooks::HEADER_WEBHOOK_ID, &claim.message_id)
            .header(
                standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
                timestamp.to_string(),
            )
            .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature)
            .body(claim.body.clone())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(err) => return failed(describe(err, self.settings.timeout), None, None),
        };
        let status = response.status();
        let mut read = Vec::new();
        let mut read_error = None;
        while read.len() < READ_AT_MOST {
            match response.chunk().await {
                Ok(Some(chunk)) => read.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(err) => {
                    read_error = Some(describe(err, self.settings.timeout));
                    break;
                }
            }
        }
        let excerpt = (!read.is_empty()).then(|| String::from_utf8_lossy(&read).into_owned());
        if !status.is_success() {
            return failed(
                format!("the receiver answered {status}"),
                Some(status.as_u16()),
                excerpt,
            );
        }
        // A 2xx that came within the timeout is success even when the rest of the answer's body
        // did not (it is only read for the excerpt): calling it a failure would send an event
        // the receiver accepted again and again.
        if let Some(error) = read_error {
            tracing::debug!(error, "the receiver's answer ended early or late");
        }
        Outcome {
            attempted_at,
            status_code: Some(status.as_u16()),
            duration: started.elapsed(),
            response_excerpt: excerpt,
            error: None,
        }
    }
}

/// What went wrong, without the URL (which may carry the receiver's own tokens).
fn describe(err: reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs());
    }
    let err = err.without_url();
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_live_secret_signs_the_same_message() -> anyhow::Result<()> {
        let secrets = vec![
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".to_owned(),
        ];
        let header = signature(
            &secrets,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )?;
        let entries: Vec<&str> = header.split(' ').collect();
        assert_eq!(entries.len(), 2);
        // The example in the Standard Webhooks specification.
        assert_eq!(
            entries[0],
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(entries[1].starts_with("v1,"));
        Ok(())
    }
}
