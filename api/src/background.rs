//! The work a server does besides answering requests: delivering mail and webhooks, queuing
//! due digests (and nudging the owners of quiet pledges), and housekeeping. The server runs each
//! on its own loop; tests instead take [`Background`] from the application and run it until
//! nothing is due ([`Background::drain`]), so they assert on what happened instead of waiting
//! for it. Both run the same one-pass functions.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use crate::{digests::DigestScheduler, mail::DeliveryWorker, webhooks::WebhookWorker};

/// The clock the outbox workers read: the real one, or one running ahead of it, so a test can
/// have a retry back-off or a lease run out without waiting for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    ahead: TimeDelta,
}

impl Clock {
    /// The real time.
    pub const REAL: Clock = Clock {
        ahead: TimeDelta::zero(),
    };

    /// A clock that reads `at` now and runs on from there (never behind the real one).
    pub fn as_of(at: DateTime<Utc>) -> Self {
        Self {
            ahead: (at - groundswell_domain::now()).max(TimeDelta::zero()),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let now = groundswell_domain::now();
        if self.ahead.is_zero() {
            now
        } else {
            groundswell_domain::time::after(now, self.ahead)
        }
    }
}

/// What one pass of every worker did: rows claimed or changed by each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub maintenance: u64,
    pub digests: u64,
    pub webhooks: usize,
    pub mail: usize,
}

impl Pass {
    pub fn did_nothing(&self) -> bool {
        *self == Pass::default()
    }

    /// The workers that did something, for an error naming them.
    fn busy(&self) -> Vec<&'static str> {
        [
            ("housekeeping", self.maintenance > 0),
            ("the digest scheduler", self.digests > 0),
            ("webhook delivery", self.webhooks > 0),
            ("mail delivery", self.mail > 0),
        ]
        .into_iter()
        .filter_map(|(name, busy)| busy.then_some(name))
        .collect()
    }
}

/// Passes [`Background::drain`] makes before it gives up on the work settling.
const MOST_PASSES: usize = 100;

/// The background workers of one application. Cloning shares them.
#[derive(Clone)]
pub struct Background {
    workers: Arc<Workers>,
}

struct Workers {
    maintenance: Maintenance,
    digests: DigestScheduler,
    webhooks: WebhookWorker,
    mail: DeliveryWorker,
}

impl Background {
    pub(crate) fn new(
        maintenance: Maintenance,
        digests: DigestScheduler,
        webhooks: WebhookWorker,
        mail: DeliveryWorker,
    ) -> Self {
        Self {
            workers: Arc::new(Workers {
                maintenance,
                digests,
                webhooks,
                mail,
            }),
        }
    }

    /// Runs every worker's loop until `shutdown`; work under way is finished first.
    pub(crate) async fn run(&self, shutdown: CancellationToken) {
        let workers = &self.workers;
        tokio::join!(
            workers.mail.run(shutdown.clone()),
            workers.webhooks.run(shutdown.clone()),
            workers.digests.run(shutdown.clone()),
            workers.maintenance.run(shutdown),
        );
    }

    /// One pass of each worker, in the order one feeds the next: housekeeping, the digest
    /// scheduler (when it is on; it queues digests and nudges), webhook delivery (a webhook
    /// switched off mails its owners), then mail. The outboxes are claimed as of `clock`;
    /// digests and housekeeping always run at the real time (`sendDueDigests(asOf)` queues the
    /// digests of another time).
    pub async fn run_once(&self, clock: Clock) -> anyhow::Result<Pass> {
        let workers = &self.workers;
        let maintenance = workers.maintenance.run_once().await;
        let digests = match workers.digests.interval {
            Some(_) => workers.digests.run_once().await?,
            None => 0,
        };
        let webhooks = workers.webhooks.deliver_due_as_of(clock).await?;
        let mail = workers.mail.deliver_due_as_of(clock).await?;
        Ok(Pass {
            maintenance,
            digests,
            webhooks,
            mail,
        })
    }

    /// Runs passes until one does nothing: everything due has been done (failed attempts wait
    /// for their back-off). Fails, naming what still had work, if that never happens.
    pub async fn drain(&self) -> anyhow::Result<()> {
        self.drain_with(Clock::REAL).await
    }

    /// [`drain`](Self::drain) with the outboxes' clock reading `at`: retries whose back-off
    /// ends by then, and claims whose lease has run out by then, are due.
    pub async fn drain_as_of(&self, at: DateTime<Utc>) -> anyhow::Result<()> {
        self.drain_with(Clock::as_of(at)).await
    }

    async fn drain_with(&self, clock: Clock) -> anyhow::Result<()> {
        let mut last = Pass::default();
        for _ in 0..MOST_PASSES {
            last = self.run_once(clock).await?;
            if last.did_nothing() {
                return Ok(());
            }
        }
        anyhow::bail!(
            "background work did not settle in {MOST_PASSES} passes; still busy: {}",
            last.busy().join(", ")
        )
    }
}

/// Housekeeping on a timer: erasing access needs, and the address and content of delivered
/// mail, once their retention times have passed, and registration links (with the answers
/// waiting for them) once they expire.
pub(crate) struct Maintenance {
    pub db: groundswell_domain::Database,
    pub access_retention: chrono::Duration,
    pub mail_retention: chrono::Duration,
}

impl Maintenance {
    async fn run(&self, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            self.run_once().await;
        }
    }

    /// One round of housekeeping; returns how many rows it changed. Failures are logged here.
    async fn run_once(&self) -> u64 {
        let mut changed = 0;
        let cutoff =
            groundswell_domain::time::before(groundswell_domain::now(), self.access_retention);
        match groundswell_domain::registrations::erase_expired_access_data(&self.db, cutoff).await {
            Ok(erased) => changed += erased as u64,
            Err(err) => tracing::error!(error = %err, "erasing expired access needs failed"),
        }
        let cutoff =
            groundswell_domain::time::before(groundswell_domain::now(), self.mail_retention);
        match groundswell_domain::mail::purge_delivered(&self.db, cutoff).await {
            Ok(purged) if purged > 0 => {
                tracing::info!(mail.purged = purged, "purged delivered mail");
                changed += purged;
            }
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err, "purging delivered mail failed"),
        }
        match groundswell_domain::registrations::delete_expired_requests(
            &self.db,
            groundswell_domain::now(),
        )
        .await
        {
            Ok(deleted) => changed += deleted,
            Err(err) => tracing::error!(error = %err, "deleting expired registration links failed"),
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_as_of_a_later_time_reads_that_time_and_never_runs_behind() {
        let later = groundswell_domain::now() + TimeDelta::hours(1);
        let ahead = Clock::as_of(later);
        assert!(ahead.now() >= later);
        assert!(ahead.now() < later + TimeDelta::minutes(1));
        let before = groundswell_domain::now();
        assert!(Clock::as_of(before - TimeDelta::hours(1)).now() >= before);
        assert_eq!(Clock::as_of(before - TimeDelta::hours(1)), Clock::REAL);
    }

    #[test]
    fn a_pass_names_the_workers_that_did_something() {
        assert!(Pass::default().did_nothing());
        let pass = Pass {
            digests: 2,
            mail: 1,
            ..Pass::default()
        };
        assert!(!pass.did_nothing());
        assert_eq!(pass.busy(), ["the digest scheduler", "mail delivery"]);
    }
}
