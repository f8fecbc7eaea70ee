//! The delivery side of the webhook outbox, for the API's worker: claim due deliveries (with a
//! lease, `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several servers never hold one at once),
//! record each attempt, retry with exponential back-off and jitter until the delivery's day is
//! up, and switch off an endpoint that has failed every delivery for a day, telling its owners.

use crate::generations::Areas;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr};
use serde_json::json;
use uuid::Uuid;

use super::{DeliveryStatus, SECRET_PREFIX};
use crate::{
    Database,
    entities::{
        organisation, organisation_member, person, webhook_attempt, webhook_delivery,
        webhook_endpoint,
    },
    mail::{self, Mail, Template},
    organisations::OrganisationRole,
    people::EmailAddress,
};

/// Longest excerpt of a receiver's answer kept with an attempt.
pub const EXCERPT_CHARS: usize = 200;
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// A delivery held by this server, with what it needs to sign and send it.
#[derive(Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    /// The `webhook-id` header.
    pub message_id: String,
    pub url: String,
    /// Every secret that signs now: the current one, and the one a rotation replaced while it
    /// still overlaps.
    pub secrets: Vec<String>,
    pub body: String,
    /// Attempts so far, this one included.
    pub attempts: i32,
    pub retry_until: DateTime<Utc>,
    /// False when the endpoint was switched off after the event was queued.
    pub endpoint_active: bool,
}

impl std::fmt::Debug for Claimed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claimed")
            .field("id", &self.id)
            .field("endpoint_id", &self.endpoint_id)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// Claims up to `limit` due deliveries, or ones whose earlier claim lapsed (the server holding
/// them died), leasing them for `lease`.
#[tracing::instrument(skip_all, fields(webhooks.limit = limit))]
pub async fn claim(
    db: &Database,
    limit: u64,
    lease: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<Claimed>, DbErr> {
    let statement = crate::db::lease_claim(db.backend(), "webhook_deliveries", limit, lease, now);
    let txn = db.begin_write_on(Areas::NONE).await?;
    let rows = webhook_delivery::Entity::find()
        .from_raw_sql(statement)
        .all(&*txn)
        .await?;
    txn.commit().await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let endpoints: std::collections::HashMap<Uuid, webhook_endpoint::Model> =
        webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::Id.is_in(rows.iter().map(|r| r.endpoint_id)))
            .all(db.reads())
            .await?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            // An endpoint deleted meanwhile took its deliveries with it.
            let endpoint = endpoints.get(&row.endpoint_id)?;
            Some(Claimed {
                id: row.id,
                endpoint_id: row.endpoint_id,
                message_id: super::message_id(row.id),
                url: endpoint.url.clone(),
                secrets: live_secrets(endpoint, now),
                body: row.body,
                attempts: row.attempts,
                retry_until: row.retry_until,
                endpoint_active: endpoint.active,
            })
        })
        .collect())
}

fn live_secrets(endpoint: &webhook_endpoint::Model, now: DateTime<Utc>) -> Vec<String> {
    let mut secrets = vec![endpoint.secret.clone()];
    if let (Some(old), Some(until)) = (
        &endpoint.previous_secret,
        endpoint.previous_secret_expires_at,
    ) && until > now
        && old.starts_with(SECRET_PREFIX)
    {
        secrets.push(old.clone());
    }
    secrets
}

/// The wait before the next attempt after `attempts` failed ones: `base`, doubling, at most
/// [`MAX_BACKOFF`], then a random part of it taken off (between none and half) so receivers
/// coming back from an outage are not hit by every retry at once.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let full = base
        .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1).min(31)))
        .min(MAX_BACKOFF);
    let jitter = rand::rng().random_range(0.0..=0.5);
    full.mul_f64(1.0 - jitter)
}

/// When to try again, or `None` when the delivery's time is up.
pub fn next_attempt(
    base: Duration,
    attempts: u32,
    retry_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if now >= retry_until {
        return None;
    }
    let wait = TimeDelta::from_std(backoff(base, attempts)).unwrap_or(TimeDelta::hours(1));
    Some((now + wait).min(retry_until))
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub attempted_at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub duration: Duration,
    pub response_excerpt: Option<String>,
    /// Why it failed, when it did; `None` is success.
    pub error: Option<String>,
}

/// What recording an attempt led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    Delivered,
    Retrying,
    Failed,
    /// The endpoint had failed for a whole day and is now switched off; its owners are mailed.
    FailedAndEndpointDeactivated,
    /// The endpoint was deleted, with its deliveries, while this one was being sent: there is
    /// nothing left to record.
    Gone,
}

/// Records an attempt and its consequences in one transaction: the delivery's new state (only
/// while this claim still holds it), the endpoint's health, and, when the endpoint has failed
/// every delivery for `deactivate_after`, its deactivation and the owners' mail.
#[tracing::instrument(skip_all, fields(delivery.id = %claim.id))]
pub async fn record(
    db: &Database,
    claim: &Claimed,
    outcome: &Outcome,
    retry_at: Option<DateTime<Utc>>,
    deactivate_after: TimeDelta,
    now: DateTime<Utc>,
) -> Result<Recorded, DbErr> {
    let excerpt = outcome.response_excerpt.as_deref().map(|text| {
        // Whatever the receiver sent: a NUL (which PostgreSQL text cannot hold, so the
        // attempt could never be recorded and the delivery would be sent again every lease)
        // or other control characters are kept as U+FFFD.
        text.chars()
            .take(EXCERPT_CHARS)
            .map(|c| {
                if c.is_control() && !matches!(c, '\n' | '\r' | '\t') {
                    char::REPLACEMENT_CHARACTER
                } else {
                    c
                }
            })
            .collect::<String>()
    });
    let txn = db.begin_write_on(Areas::NONE).await?;
    // Locked, so a deletion either waits for this record or has happened (and the attempt,
    // whose delivery is gone, cannot be inserted).
    if webhook_delivery::Entity::find_by_id(claim.id)
        .lock_exclusive()
        .one(&*txn)
        .await?
        .is_none()
    {
        return Ok(Recorded::Gone);
    }
    webhook_attempt::Entity::insert(webhook_attempt::ActiveModel::from(webhook_attempt::Model {
        id: Uuid::now_v7(),
        delivery_id: claim.id,
        attempted_at: outcome.attempted_at,
        status_code: outcome.status_code.map(i32::from),
        duration_ms: i32::try_from(outcome.duration.as_millis()).unwrap_or(i32::MAX),
        response_excerpt: excerpt,
        error: outcome.error.clone(),
    }))
    .exec_without_returning(&*txn)
    .await?;
    let success = outcome.error.is_none();
    let (status, recorded) = match (success, retry_at) {
        (true, _) => (DeliveryStatus::Delivered, Recorded::Delivered),
        (false, Some(_)) => (DeliveryStatus::Pending, Recorded::Retrying),
        (false, None) => (DeliveryStatus::Failed, Recorded::Failed),
    };
    let mut update = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Status, Expr::value(status))
        .col_expr(
            webhook_delivery::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            webhook_delivery::Column::LastStatusCode,
            Expr::value(outcome.status_code.map(i32::from)),
        )
        .col_expr(
            webhook_delivery::Column::LastError,
            Expr::value(outcome.error.clone()),
        );
    if success {
        update = update.col_expr(webhook_delivery::Column::DeliveredAt, Expr::value(now));
    }
    if let Some(at) = retry_at.filter(|_| !success) {
        update = update.col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(at));
    }
    update
        .filter(webhook_delivery::Column::Id.eq(claim.id))
        .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Sending))
        // Only this claim: if the lease lapsed and another server took the delivery over (its
        // claim counted one more attempt), the outcome is that server's to record.
        .filter(webhook_delivery::Column::Attempts.eq(claim.attempts))
        .exec(&*txn)
        .await?;

    if success {
        webhook_endpoint::Entity::update_many()
            .col_expr(
                webhook_endpoint::Column::FailingSince,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(webhook_endpoint::Column::Id.eq(claim.endpoint_id))
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        return Ok(recorded);
    }
    webhook_endpoint::Entity::update_many()
        .col_expr(
            webhook_endpoint::Column::FailingSince,
            Expr::value(outcome.attempted_at),
        )
        .filter(webhook_endpoint::Column::Id.eq(claim.endpoint_id))
        .filter(webhook_endpoint::Column::FailingSince.is_null())
        .exec(&*txn)
        .await?;
    // Only the server whose update switches it off sends the mail.
    let switched_off = webhook_endpoint::Entity::update_many()
        .col_expr(webhook_endpoint::Column::Active, Expr::value(false))
        .col_expr(webhook_endpoint::Column::DeactivatedAt, Expr::value(now))
        .filter(webhook_endpoint::Column::Id.eq(claim.endpoint_id))
        .filter(webhook_endpoint::Column::Active.eq(true))
        .filter(webhook_endpoint::Column::FailingSince.lte(now - deactivate_after))
        .exec(&*txn)
        .await?
        .rows_affected
        == 1;
    if switched_off {
        // What was still waiting is given up on with it; each can be redelivered once the
        // receiver works again.
        webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::Status,
                Expr::value(DeliveryStatus::Failed),
            )
            .col_expr(
                webhook_delivery::Column::LastError,
                Expr::value("the webhook was switched off after failing for a day"),
            )
            .filter(webhook_delivery::Column::EndpointId.eq(claim.endpoint_id))
            .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
            .exec(&*txn)
            .await?;
        tell_owners(&*txn, claim.endpoint_id, now).await?;
    }
    txn.commit().await?;
    Ok(if switched_off {
        Recorded::FailedAndEndpointDeactivated
    } else {
        recorded
    })
}

async fn tell_owners(
    conn: &impl sea_orm::ConnectionTrait,
    endpoint_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let Some(endpoint) = webhook_endpoint::Entity::find_by_id(endpoint_id)
        .one(conn)
        .await?
    else {
        return Ok(());
    };
    let name = organisation::Entity::find_by_id(endpoint.organisation_id)
        .one(conn)
        .await?
        .map(|o| o.name)
        .unwrap_or_default();
    let owners: Vec<Uuid> = organisation_member::Entity::find()
        .filter(organisation_member::Column::OrganisationId.eq(endpoint.organisation_id))
        .filter(organisation_member::Column::Role.eq(OrganisationRole::Owner))
        .all(conn)
        .await?
        .into_iter()
        .map(|m| m.person_id)
        .collect();
    if owners.is_empty() {
        return Ok(());
    }
    let mut mails = Vec::new();
    for owner in person::Entity::find()
        .filter(person::Column::Id.is_in(owners))
        .all(conn)
        .await?
    {
        let Ok(recipient) = EmailAddress::parse(&owner.email) else {
            continue;
        };
        mails.push((
            Uuid::now_v7(),
            Mail {
                recipient,
                template: Template::WebhookDeactivated,
                context: json!({
                    "organisation_name": name,
                    "webhook_id": endpoint.id,
                    // Not named `…_url`: shown as text, never made a link in the mail.
                    "endpoint": endpoint.url,
                    "description": endpoint.description,
                }),
            },
        ));
    }
    mail::enqueue_many(conn, mails, now).await
}

/// Gives up on a delivery whose endpoint was switched off after it was queued.
pub async fn skip(db: &Database, claim: &Claimed, reason: &str) -> Result<(), DbErr> {
    let txn = db.begin_write_on(Areas::NONE).await?;
    webhook_delivery::Entity::update_many()
        .col_expr(
            webhook_delivery::Column::Status,
            Expr::value(DeliveryStatus::Failed),
        )
        .col_expr(
            webhook_delivery::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            webhook_delivery::Column::LastError,
            Expr::value(reason.to_owned()),
        )
        .filter(webhook_delivery::Column::Id.eq(claim.id))
        .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Sending))
        .filter(webhook_delivery::Column::Attempts.eq(claim.attempts))
        .exec(&*txn)
        .await?;
    txn.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_an_hour() {
        let base = Duration::from_secs(10);
        for _ in 0..50 {
            let first = backoff(base, 1);
            assert!(
                first >= Duration::from_secs(5) && first <= base,
                "{first:?}"
            );
            let third = backoff(base, 3);
            assert!(third >= Duration::from_secs(20) && third <= Duration::from_secs(40));
            assert!(backoff(base, 60) <= MAX_BACKOFF);
            assert!(backoff(base, 60) >= MAX_BACKOFF / 2);
        }
    }

    #[test]
    fn retries_end_when_the_day_is_up() {
        let now = crate::now();
        let until = now + TimeDelta::seconds(30);
        let base = Duration::from_secs(3600);
        // The last attempt lands at the end of the window, never after it.
        assert_eq!(next_attempt(base, 1, until, now), Some(until));
        assert_eq!(next_attempt(base, 1, until, until), None);
        let soon = next_attempt(Duration::from_millis(100), 1, until, now);
        assert!(soon.is_some_and(|at| at < until && at >= now));
    }
}
