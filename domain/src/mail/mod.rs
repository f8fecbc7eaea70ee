//! The mail outbox. A change that must send mail writes the message here in the same
//! transaction as the change itself; the delivery worker (in the API crate) claims rows, sends
//! them and records the outcome, so nothing is lost if the process dies and several servers
//! never hold the same row at once.

use crate::generations::Areas;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, Query},
};
use serde_json::Value;
use uuid::Uuid;

use crate::{AccessError, Actor, Database, entities::outbox, text::EmailAddress};

pub use crate::entities::enums::OutboxStatus;

/// Every message Groundswell sends, by the name of its templates in the API's mail folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    SignIn,
    /// The link that confirms a registration asked for with only an email.
    RegistrationRequest,
    AddedToOrganisation,
    RegistrationConfirmed,
    RegistrationWaitlisted,
    RegistrationPromoted,
    RegistrationCancelled,
    GatheringCancelled,
    Digest,
    PledgeNudge,
    WebhookDeactivated,
}

impl Template {
    pub fn name(self) -> &'static str {
        match self {
            Template::SignIn => "sign_in",
            Template::RegistrationRequest => "registration_request",
            Template::AddedToOrganisation => "added_to_organisation",
            Template::RegistrationConfirmed => "registration_confirmed",
            Template::RegistrationWaitlisted => "registration_waitlisted",
            Template::RegistrationPromoted => "registration_promoted",
            Template::RegistrationCancelled => "registration_cancelled",
            Template::GatheringCancelled => "gathering_cancelled",
            Template::Digest => "digest",
            Template::PledgeNudge => "pledge_nudge",
            Template::WebhookDeactivated => "webhook_deactivated",
        }
    }
}

/// A message to queue: who gets it, which template, and the data the template shows.
#[derive(Clone, Debug)]
pub struct Mail {
    pub recipient: EmailAddress,
    pub template: Template,
    pub context: Value,
}

/// Queues `mail` on `conn`, which should be the transaction of the change that causes it.
pub(crate) async fn enqueue(
    conn: &impl ConnectionTrait,
    mail: Mail,
    now: DateTime<Utc>,
) -> Result<Uuid, DbErr> {
    let id = Uuid::now_v7();
    enqueue_each(conn, vec![(id, mail, now)]).await?;
    Ok(id)
}

/// Messages one insert statement writes, at most: eight values each stays well under the
/// bind-parameter limits of PostgreSQL (65,535) and SQLite (32,766).
const ENQUEUED_AT_ONCE: usize = 500;

/// Queues many messages on `conn` with a few multi-row inserts, each under the id given with
/// it, so a batch of changes can point at their messages without a round trip per message.
pub(crate) async fn enqueue_many(
    conn: &impl ConnectionTrait,
    mails: Vec<(Uuid, Mail)>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    enqueue_each(
        conn,
        mails
            .into_iter()
            .map(|(id, mail)| (id, mail, now))
            .collect(),
    )
    .await
}

/// As [`enqueue_many`], each message queued at its own time (a registration batch's messages
/// are each queued when their registration was asked for, as one at a time would be).
pub(crate) async fn enqueue_each(
    conn: &impl ConnectionTrait,
    mails: Vec<(Uuid, Mail, DateTime<Utc>)>,
) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    let mut mails = mails.into_iter().peekable();
    while mails.peek().is_some() {
        let mut insert = Query::insert();
        insert.into_table(outbox::Entity).columns([
            outbox::Column::Id,
            outbox::Column::Recipient,
            outbox::Column::Template,
            outbox::Column::Context,
            outbox::Column::Status,
            outbox::Column::Attempts,
            outbox::Column::NextAttemptAt,
            outbox::Column::CreatedAt,
        ]);
        for (id, mail, now) in mails.by_ref().take(ENQUEUED_AT_ONCE) {
            insert.values_panic([
                Expr::val(id),
                Expr::val(mail.recipient.as_str()),
                Expr::val(mail.template.name()),
                context_value(backend, &mail.context),
                Expr::val(OutboxStatus::Pending.to_value()),
                Expr::val(0_i32),
                Expr::val(now),
                Expr::val(now),
            ]);
        }
        conn.execute(&insert).await?;
    }
    Ok(())
}

/// A message's context as the outbox stores it: the JSON text, bound as text. On PostgreSQL
/// the column is `json` and the text is cast to it, which checks it once. Bound as a
/// `serde_json::Value`, sqlx would send it as `jsonb`, which PostgreSQL parses, prints and
/// parses again to store it as `json` (a digest run spent 3.4 of its 9 s of database time
/// binding its 5,000 digests of ~37 kB each), and sea-query would first clone the whole tree.
fn context_value(backend: DbBackend, context: &Value) -> Expr {
    let text = Expr::val(context.to_string());
    match backend {
        DbBackend::Postgres => text.cast_as("json"),
        _ => text,
    }
}

/// A message claimed for delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedMail {
    /// Stable across retries: the Message-ID is made from it.
    pub id: Uuid,
    pub recipient: String,
    pub template: String,
    pub context: Value,
    /// Attempts so far, including this one.
    pub attempts: i32,
    /// Whether the recipient prefers easy read (their setting when this was claimed, or the
    /// choice made on the page that queued it).
    pub easy_read: bool,
}

/// Claims up to `limit` messages that are due, or whose earlier claim lapsed (the server
/// holding them died), leasing them for `lease`. On PostgreSQL `SKIP LOCKED` lets several
/// servers claim side by side without ever taking the same row.
#[tracing::instrument(skip_all, fields(mail.limit = limit))]
pub async fn claim(
    db: &Database,
    limit: u64,
    lease: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<QueuedMail>, DbErr> {
    let statement = crate::db::lease_claim(db.backend(), "outbox", limit, lease, now);
    let txn = db.begin_write_on(Areas::NONE).await?;
    let rows = outbox::Entity::find()
        .from_raw_sql(statement)
        .all(&*txn)
        .await?;
    txn.commit().await?;
    // Whether each recipient prefers easy read is read when the mail is sent, so a choice made
    // after it was queued still counts: one query for the whole batch.
    let easy: std::collections::HashSet<String> = if rows.is_empty() {
        Default::default()
    } else {
        crate::entities::person::Entity::find()
            .select_only()
            .column(crate::entities::person::Column::Email)
            .filter(crate::entities::person::Column::PrefersEasyRead.eq(true))
            .filter(
                crate::entities::person::Column::Email
                    .is_in(rows.iter().map(|row| row.recipient.clone())),
            )
            .into_tuple::<String>()
            .all(db.reads())
            .await?
            .into_iter()
            .collect()
    };
    Ok(rows
        .into_iter()
        .map(|row| QueuedMail {
            easy_read: easy.contains(&row.recipient)
                || row.context.get("easy_read").and_then(Value::as_bool) == Some(true),
            id: row.id,
            recipient: row.recipient,
            template: row.template,
            context: row.context,
            attempts: row.attempts,
        })
        .collect())
}

/// Records a delivery. Only a row still held for sending is marked, so a lapsed claim taken
/// over by another server is not marked twice.
pub async fn mark_sent(db: &Database, claim: &QueuedMail, now: DateTime<Utc>) -> Result<(), DbErr> {
    let txn = db.begin_write_on(Areas::NONE).await?;
    outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, Expr::value(OutboxStatus::Sent))
        .col_expr(outbox::Column::SentAt, Expr::value(now))
        .col_expr(
            outbox::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            outbox::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .filter(outbox::Column::Id.eq(claim.id))
        .filter(outbox::Column::Status.eq(OutboxStatus::Sending))
        // Only this claim: if the lease lapsed and another server took the row over (its
        // claim counted one more attempt), the outcome is that server's to record.
        .filter(outbox::Column::Attempts.eq(claim.attempts))
        .exec(&*txn)
        .await?;
    txn.commit().await
}

/// Records a failed attempt: due again at `retry_at`, or failed for good when there is none.
pub async fn mark_attempt_failed(
    db: &Database,
    claim: &QueuedMail,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    let (status, next) = match retry_at {
        Some(at) => (OutboxStatus::Pending, Some(at)),
        None => (OutboxStatus::Failed, None),
    };
    let mut update = outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, Expr::value(status))
        .col_expr(
            outbox::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(outbox::Column::LastError, Expr::value(error.to_owned()));
    if let Some(next) = next {
        update = update.col_expr(outbox::Column::NextAttemptAt, Expr::value(next));
    }
    let txn = db.begin_write_on(Areas::NONE).await?;
    update
        .filter(outbox::Column::Id.eq(claim.id))
        .filter(outbox::Column::Status.eq(OutboxStatus::Sending))
        // Only this claim: if the lease lapsed and another server took the row over (its
        // claim counted one more attempt), the outcome is that server's to record.
        .filter(outbox::Column::Attempts.eq(claim.attempts))
        .exec(&*txn)
        .await?;
    txn.commit().await
}

/// Forgets the mail of someone whose data is erased: what is still waiting to go is dropped
/// (nothing more is owed to them), and what went, failed or is going out right now keeps only
/// its id, template and status, with the address and content removed.
pub(crate) async fn forget_recipient(
    conn: &impl ConnectionTrait,
    email: &str,
    erased_address: &str,
) -> Result<(), DbErr> {
    outbox::Entity::delete_many()
        .filter(outbox::Column::Recipient.eq(email))
        .filter(outbox::Column::Status.eq(OutboxStatus::Pending))
        .exec(conn)
        .await?;
    outbox::Entity::update_many()
        .col_expr(outbox::Column::Recipient, Expr::value(erased_address))
        .col_expr(outbox::Column::Context, Expr::value(serde_json::json!({})))
        .col_expr(
            outbox::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .filter(outbox::Column::Recipient.eq(email))
        .exec(conn)
        .await?;
    Ok(())
}

/// Address left on delivered mail whose content has been purged.
pub const PURGED_RECIPIENT: &str = "purged@purged.invalid";

/// Purges the address and content of mail delivered before `cutoff`, keeping its id, template,
/// status and times: what idempotence and the counts need. Returns how many were purged.
#[tracing::instrument(skip_all)]
pub async fn purge_delivered(db: &Database, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    let txn = db.begin_write_on(Areas::NONE).await?;
    let purged = outbox::Entity::update_many()
        .col_expr(outbox::Column::Recipient, Expr::value(PURGED_RECIPIENT))
        .col_expr(outbox::Column::Context, Expr::value(serde_json::json!({})))
        .filter(outbox::Column::Status.eq(OutboxStatus::Sent))
        .filter(outbox::Column::SentAt.lt(cutoff))
        .filter(outbox::Column::Recipient.ne(PURGED_RECIPIENT))
        .exec(&*txn)
        .await?;
    txn.commit().await?;
    Ok(purged.rows_affected)
}

/// How many messages are in each state, for metrics and operators.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub pending: u64,
    pub sending: u64,
    pub sent: u64,
    pub failed: u64,
}

pub async fn counts(db: &Database) -> Result<OutboxCounts, DbErr> {
    let mut counts = OutboxCounts::default();
    for (status, slot) in [
        (OutboxStatus::Pending, &mut counts.pending),
        (OutboxStatus::Sending, &mut counts.sending),
        (OutboxStatus::Sent, &mut counts.sent),
        (OutboxStatus::Failed, &mut counts.failed),
    ] {
        *slot = outbox::Entity::find()
            .filter(outbox::Column::Status.eq(status))
            .count(db.reads())
            .await?;
    }
    Ok(counts)
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// A message given up on after its last attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedMail {
    pub id: Uuid,
    pub recipient: String,
    pub template: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Messages marked failed, newest first, for admins: nothing is dropped silently.
pub async fn failed(
    db: &Database,
    actor: &Actor,
    limit: u64,
) -> Result<Vec<FailedMail>, MailError> {
    actor.person()?;
    if !actor.is_admin() {
        return Err(AccessError::Forbidden("only admins can see failed mail").into());
    }
    Ok(outbox::Entity::find()
        .filter(outbox::Column::Status.eq(OutboxStatus::Failed))
        .order_by_desc(outbox::Column::CreatedAt)
        .limit(limit)
        .all(db.reads())
        .await?
        .into_iter()
        .map(|row| FailedMail {
            id: row.id,
            recipient: row.recipient,
            template: row.template,
            attempts: row.attempts,
            last_error: row.last_error,
            created_at: row.created_at,
        })
        .collect())
}
