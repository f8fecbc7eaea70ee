//! The digest scheduler: every interval, queues the digests that have come due. Each server
//! runs one; the digests table's unique key makes sure each digest is queued once however many
//! servers share the database.

use std::{sync::Arc, time::Duration};

use groundswell_domain::{Database, digests};
use sea_orm::DbErr;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub struct DigestScheduler {
    pub db: Database,
    /// How often to look for due digests; `None` turns the scheduler off (digests are then
    /// queued by `groundswell send-due-digests`, from cron say, or `sendDueDigests`).
    pub interval: Option<Duration>,
    /// How long an active pledge may go without news before it has gone quiet.
    pub quiet_after: chrono::TimeDelta,
    /// Wakes the mail worker when digests were queued.
    pub mail_queued: Arc<Notify>,
}

impl DigestScheduler {
    /// Runs until `shutdown`; a run under way finishes first.
    pub async fn run(&self, shutdown: CancellationToken) {
        let Some(interval) = self.interval else {
            tracing::info!("digest scheduler off (DIGEST_INTERVAL_SECONDS=0)");
            return;
        };
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!("digest scheduler started");
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = every.tick() => {}
            }
            if let Err(err) = self.run_once().await {
                tracing::error!(error = %err, "queuing due digests failed");
            }
            tracing::debug!("looked for due digests");
        }
        tracing::info!("digest scheduler stopped");
    }

    /// Queues the digests due now (nudging the owners of quiet pledges first); returns how
    /// many periods this run claimed, sent or not.
    pub async fn run_once(&self) -> Result<u64, DbErr> {
        let now = groundswell_domain::now();
        let outcome = digests::send_due(&self.db, now, now, self.quiet_after).await?;
        if outcome.queued > 0 {
            self.mail_queued.notify_one();
        }
        if outcome.queued + outcome.skipped_empty + outcome.already_claimed > 0 {
            tracing::info!(
                digests.queued = outcome.queued,
                digests.skipped_empty = outcome.skipped_empty,
                digests.already_claimed = outcome.already_claimed,
                "digests due"
            );
        }
        Ok(outcome.queued + outcome.skipped_empty)
    }
}
