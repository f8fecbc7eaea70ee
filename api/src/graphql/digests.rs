//! Digests: the signed-in person's next digest, sending due digests now for operators, and
//! the mail given up on, so operators see what did not arrive.

use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};
use groundswell_domain::{digests, mail::QueuedMail};
use uuid::Uuid;

use super::{ApiError, ApiResult, actor, app};

/// The signed-in person's next digest as it stands now, rendered as it would be sent.
#[derive(SimpleObject)]
pub struct DigestPreview {
    /// The subject line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
    /// The start of the time it covers: the end of the last digest, or the previous slot.
    pub period_start: DateTime<Utc>,
    /// The end of the time it covers: now.
    pub period_end: DateTime<Utc>,
    /// When the next digest is scheduled; null when the frequency is NEVER.
    pub next_send_at: Option<DateTime<Utc>>,
    /// True when no section has anything to tell.
    pub is_empty: bool,
    /// Upcoming gatherings it lists.
    pub gathering_count: i32,
}

/// A message given up on after its last delivery attempt.
#[derive(SimpleObject)]
pub struct FailedMail {
    /// The message's id.
    pub id: async_graphql::ID,
    /// Who it was for.
    pub recipient: String,
    /// Which message it was, by template name (such as `digest`).
    pub template: String,
    /// Delivery attempts made.
    pub attempts: i32,
    /// What the last attempt answered.
    pub last_error: Option<String>,
    /// When the message was queued.
    pub created_at: DateTime<Utc>,
}

#[derive(Default)]
pub struct DigestsQuery;

#[Object]
impl DigestsQuery {
    /// Admins: messages marked failed after their last delivery attempt, newest first (at
    /// most `first`, default 50, up to 100).
    async fn failed_mail(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
    ) -> ApiResult<Vec<FailedMail>> {
        super::visibility::private(ctx);
        let limit = u64::try_from(first.unwrap_or(50).clamp(1, 100)).unwrap_or(50);
        let failed = groundswell_domain::mail::failed(&app(ctx)?.db, actor(ctx)?, limit).await?;
        Ok(failed
            .into_iter()
            .map(|f| FailedMail {
                id: async_graphql::ID(f.id.to_string()),
                recipient: f.recipient,
                template: f.template,
                attempts: f.attempts,
                last_error: f.last_error,
                created_at: f.created_at,
            })
            .collect())
    }

    /// The signed-in person's next digest, rendered.
    async fn digest_preview(&self, ctx: &Context<'_>) -> ApiResult<Option<DigestPreview>> {
        super::visibility::private(ctx);
        let app = app(ctx)?;
        let preview = digests::preview(
            &app.db,
            actor(ctx)?,
            groundswell_domain::now(),
            app.quiet_after,
        )
        .await?;
        let queued = QueuedMail {
            id: Uuid::nil(),
            recipient: preview.recipient.clone(),
            template: groundswell_domain::mail::Template::Digest.name().to_owned(),
            context: preview.context.clone(),
            attempts: 0,
            easy_read: false,
        };
        let renderer = app.renderer.clone();
        let rendered = tokio::task::spawn_blocking(move || renderer.render(&queued))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        Ok(Some(DigestPreview {
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
            period_start: preview.digest.period.start,
            period_end: preview.digest.period.end,
            next_send_at: preview.next_send_at,
            is_empty: preview.digest.is_empty(),
            gathering_count: i32::try_from(preview.digest.gatherings.items.len())
                .unwrap_or(i32::MAX),
        }))
    }
}

#[derive(Default)]
pub struct DigestsMutation;

#[Object]
impl DigestsMutation {
    /// Admins: queues every digest due at `asOf` (default now) and returns how many were
    /// queued. A digest already sent for its period is not queued again.
    async fn send_due_digests(
        &self,
        ctx: &Context<'_>,
        as_of: Option<DateTime<Utc>>,
    ) -> ApiResult<i32> {
        let app = app(ctx)?;
        let as_of = super::scalars::moment_opt("asOf", as_of)?
            .map_or_else(groundswell_domain::now, |m| m.get());
        let outcome = digests::send_due_now(&app.db, actor(ctx)?, as_of, app.quiet_after).await?;
        app.mail_queued.notify_one();
        Ok(i32::try_from(outcome.queued).unwrap_or(i32::MAX))
    }
}
