//! Email digests: who is due, what each digest holds, and queuing it exactly once per
//! recipient and period.
//!
//! A digest is claimed by inserting its row, keyed by (person, period), in the same
//! transaction as its outbox message. Any number of servers may try the same digest at once;
//! the unique key lets one through and the others find it already sent.

pub mod schedule;
pub mod sections;

use crate::generations::Areas;
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use chrono::{DateTime, Duration, TimeDelta, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryTrait,
    Statement,
    sea_query::{Expr, OnConflict},
};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::{
    AccessError, Actor, Database,
    changes::Change,
    entities::{digest, person},
    mail::{self, Mail, Template},
    people::{DigestFrequency, EmailAddress, Person},
    secrets::SecretKey,
};

pub use schedule::Slot;
pub use sections::{
    ChangeGroup, ChangePicture, CoalitionItem, CoalitionsSection, GatheringsSection, NewPledgeItem,
    NewPledgesSection, ProgressItem, ProgressSection, QuietPledgeItem, QuietPledgesSection,
};

/// What unsubscribe tokens are derived for.
pub const UNSUBSCRIBE_PURPOSE: &str = "unsubscribe";

#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("This unsubscribe link is not valid. Use the link from your latest digest.")]
    InvalidUnsubscribeLink,
    #[error("No such person.")]
    NotFound,
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// Who a digest is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    pub person: Person,
}

impl Recipient {
    /// The changes the person follows; none chosen means all five.
    pub fn changes_of_interest(&self) -> Vec<Change> {
        if self.person.digest.changes.is_empty() {
            Change::ALL.to_vec()
        } else {
            self.person.digest.changes.clone()
        }
    }
}

/// The time a digest covers: from `start` (inclusive) to `end` (exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Period {
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end
    }

    /// The period of the same length just before this one, for "this period against last".
    pub fn previous(&self) -> Period {
        Period {
            start: self.start - (self.end - self.start),
            end: self.start,
        }
    }
}

/// One digest's content, grouped by section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Digest {
    pub period: Period,
    pub frequency: &'static str,
    pub picture: ChangePicture,
    pub new_pledges: NewPledgesSection,
    pub progress: ProgressSection,
    pub coalitions: CoalitionsSection,
    pub gatherings: GatheringsSection,
    pub quiet_pledges: QuietPledgesSection,
}

impl Digest {
    /// Whether no section has anything to tell (the picture alone is not news).
    pub fn is_empty(&self) -> bool {
        self.new_pledges.is_empty()
            && self.progress.is_empty()
            && self.coalitions.is_empty()
            && self.gatherings.items.is_empty()
            && self.quiet_pledges.is_empty()
    }

    /// The outbox context the `digest` templates render. The unsubscribe link is derived from
    /// the person's id at delivery, so the outbox never holds it.
    pub fn mail_context(&self, recipient: &Recipient) -> Value {
        let mut context = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut context {
            map.insert(
                "unsubscribe_person_id".into(),
                Value::String(recipient.person.id.to_string()),
            );
            map.insert(
                "display_name".into(),
                recipient
                    .person
                    .display_name
                    .clone()
                    .map_or(Value::Null, Value::String),
            );
            map.insert("is_empty".into(), Value::Bool(self.is_empty()));
            map.insert(
                "period_start_local".into(),
                Value::String(local_date(recipient, self.period.start)),
            );
            map.insert(
                "period_end_local".into(),
                Value::String(local_date(recipient, self.period.end)),
            );
        }
        context
    }
}

fn local_date(recipient: &Recipient, at: DateTime<Utc>) -> String {
    at.with_timezone(&recipient.person.digest.time_zone.tz())
        .format("%A %-d %B %Y")
        .to_string()
}

fn frequency_name(frequency: DigestFrequency) -> &'static str {
    match frequency {
        DigestFrequency::Daily => "daily",
        DigestFrequency::Weekly => "weekly",
        DigestFrequency::Monthly => "monthly",
        DigestFrequency::Never => "occasional",
    }
}

/// Everything digests over one period can hold, on all five changes. Each section groups and
/// caps its items per change, so a person's digest is this cut down to their changes
/// (`for_changes`): one build serves everyone whose digest covers the same period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeriodDigest {
    pub period: Period,
    pub picture: ChangePicture,
    pub new_pledges: NewPledgesSection,
    pub progress: ProgressSection,
    pub coalitions: CoalitionsSection,
    pub gatherings: GatheringsSection,
    pub quiet_pledges: QuietPledgesSection,
}

impl PeriodDigest {
    /// Builds every section over `period` for all five changes. `quiet_after` is the
    /// configured time after which an active pledge with no news has gone quiet.
    pub async fn build(
        db: &Database,
        period: Period,
        quiet_after: TimeDelta,
    ) -> Result<Self, DbErr> {
        let all = &Change::ALL;
        Ok(PeriodDigest {
            period,
            picture: sections::change_picture(db, all, &period).await?,
            new_pledges: sections::new_pledges_section(db, all, &period).await?,
            progress: sections::progress_section(db, all, &period).await?,
            coalitions: sections::coalitions_section(db, all, &period).await?,
            gatherings: sections::gatherings_section(db, &period).await?,
            quiet_pledges: sections::quiet_pledges_section(db, all, &period, quiet_after).await?,
        })
    }

    /// The digest of someone following `interests` (in their order) at `frequency`. Gatherings
    /// are not tied to a change, so everyone gets them all.
    pub fn for_changes(&self, interests: &[Change], frequency: DigestFrequency) -> Digest {
        Digest {
            period: self.period,
            frequency: frequency_name(frequency),
            picture: self.picture.for_changes(interests),
            new_pledges: self.new_pledges.for_changes(interests),
            progress: self.progress.for_changes(interests),
            coalitions: self.coalitions.for_changes(interests),
            gatherings: self.gatherings.clone(),
            quiet_pledges: self.quiet_pledges.for_changes(interests),
        }
    }

    /// Whether the digest of someone following `interests` has anything to tell: the same as
    /// `!self.for_changes(interests, _).is_empty()`, without cutting it. A section keeps a
    /// change's group only when it has items, so a kept group is news.
    pub fn has_news_for(&self, interests: &[Change]) -> bool {
        fn kept<T>(groups: &[ChangeGroup<T>], interests: &[Change]) -> bool {
            groups.iter().any(|g| interests.contains(&g.change))
        }
        !self.gatherings.items.is_empty()
            || kept(&self.new_pledges.groups, interests)
            || kept(&self.progress.groups, interests)
            || kept(&self.coalitions.groups, interests)
            || kept(&self.quiet_pledges.groups, interests)
    }

    /// `recipient`'s digest: their changes of interest, named for their frequency.
    pub fn for_recipient(&self, recipient: &Recipient) -> Digest {
        self.for_changes(
            &recipient.changes_of_interest(),
            recipient.person.digest.frequency,
        )
    }
}

/// Builds the digest for `recipient` over `period`. `quiet_after` is the configured time after
/// which an active pledge with no news has gone quiet.
pub async fn build(
    db: &Database,
    recipient: &Recipient,
    period: Period,
    quiet_after: TimeDelta,
) -> Result<Digest, DbErr> {
    Ok(PeriodDigest::build(db, period, quiet_after)
        .await?
        .for_recipient(recipient))
}

/// How far back digest rows are read. The newest slot is never older than
/// `schedule::LOOK_BACK_DAYS`, so a row that could stop it being sent again is always newer
/// than this; older rows only describe digests long since sent.
const RECENT_ROWS: Duration = Duration::days(62);

/// A person's last digest: its slot, and where its content stopped (its build time, when it
/// was built before its slot came), which is where their next digest starts.
struct LastDigest {
    slot: Slot,
    covered_until: DateTime<Utc>,
}

/// The last digest of each person as of `as_of`, from their recent digest rows.
async fn last_slots(
    db: &Database,
    person_ids: &[Uuid],
    as_of: DateTime<Utc>,
) -> Result<HashMap<Uuid, LastDigest>, DbErr> {
    let mut last: HashMap<Uuid, LastDigest> = HashMap::new();
    for chunk in person_ids.chunks(500) {
        let rows = digest::Entity::find()
            .filter(digest::Column::PersonId.is_in(chunk.iter().copied()))
            .filter(digest::Column::PeriodEnd.gte(as_of - RECENT_ROWS))
            .all(db.reads())
            .await?;
        for row in rows {
            let newer = last
                .get(&row.person_id)
                .is_none_or(|l| l.slot.at < row.period_end);
            if newer {
                last.insert(
                    row.person_id,
                    LastDigest {
                        covered_until: row.covered_until.unwrap_or(row.period_end),
                        slot: Slot {
                            key: row.period_key,
                            at: row.period_end,
                        },
                    },
                );
            }
        }
    }
    Ok(last)
}

/// The people who may receive digests: not `NEVER`, not erased.
async fn subscribers(db: &Database) -> Result<Vec<Person>, DbErr> {
    Ok(person::Entity::find()
        .filter(person::Column::DigestFrequency.ne(DigestFrequency::Never))
        .filter(person::Column::ErasedAt.is_null())
        .all(db.reads())
        .await?
        .into_iter()
        .map(Person::from)
        .collect())
}

/// What one run of the scheduler did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendOutcome {
    /// Digests put in the outbox.
    pub queued: u64,
    /// Periods claimed with nothing to tell, for people who asked for no empty digests.
    pub skipped_empty: u64,
    /// Periods another server (or an earlier run) had already claimed.
    pub already_claimed: u64,
}

/// Queues every digest due at `as_of`: for each subscriber whose newest slot has begun and was
/// not sent, builds the digest for the time since their last one and claims it with its outbox
/// message in one transaction. `now` is the real time, when the message may go; `as_of` is the
/// scheduler's clock, which operators and tests may set.
#[tracing::instrument(skip_all)]
pub async fn send_due(
    db: &Database,
    as_of: DateTime<Utc>,
    now: DateTime<Utc>,
    quiet_after: TimeDelta,
) -> Result<SendOutcome, DbErr> {
    // Owners of quiet pledges are reminded first, so digests can say who was.
    crate::pledges::nudges::nudge_quiet(db, quiet_after, as_of, now).await?;
    // Every news write in flight commits before the line; later ones are stamped after it.
    let line = crate::fence::draw(db, now).await?;
    let people = subscribers(db).await?;
    let ids: Vec<Uuid> = people.iter().map(|p| p.id).collect();
    let last = last_slots(db, &ids, as_of).await?;
    // A digest is its period's news cut down to the person's changes, so each period is built
    // once per run, for all five changes; it is cut for each person as their batch is claimed.
    let mut built: HashMap<Period, Arc<PeriodDigest>> = HashMap::new();
    let mut due: Vec<Due> = Vec::new();
    for person in people {
        let prefs = &person.digest;
        let last_digest = last.get(&person.id);
        let Some(slot) = schedule::due_slot(
            prefs,
            last_digest.map(|l| &l.slot),
            person.created_at,
            as_of,
        ) else {
            continue;
        };
        // From where the previous digest stopped to this slot, but never past the moment it is
        // built: a run ahead of time (`asOf` in the future) leaves what comes later to the next.
        let start = match last_digest {
            Some(last) => last.covered_until,
            None => schedule::previous_slot(prefs, &slot).map_or(
                crate::time::before(slot.at, Duration::days(1)),
                |previous| previous.at,
            ),
        };
        // The line is never past this run's own clock by more than another server's is ahead.
        let end = slot.at.min(line).max(start);
        let period = Period { start, end };
        let recipient = Recipient { person };
        let news = match built.get(&period) {
            Some(news) => news.clone(),
            None => match PeriodDigest::build(db, period, quiet_after).await {
                Ok(news) => built.entry(period).or_insert(Arc::new(news)).clone(),
                Err(err) => {
                    tracing::error!(person.id = %recipient.person.id, error = %err, "a digest could not be built");
                    continue;
                }
            },
        };
        due.push(Due {
            recipient,
            slot,
            news,
        });
    }
    drop(built);
    // Claimed in person order, so two servers claiming side by side wait on each other's rows
    // in the same order and never deadlock.
    due.sort_by_key(|d| d.recipient.person.id);
    let mut outcome = SendOutcome::default();
    for batch in due.chunks(CLAIM_BATCH) {
        match claim_batch(db, batch, now).await {
            Ok(claimed) => {
                outcome.queued += claimed.queued;
                outcome.skipped_empty += claimed.skipped_empty;
                outcome.already_claimed += claimed.already_claimed;
            }
            // The batch rolled back whole: its digests are still unclaimed, for the next run.
            Err(err) => {
                tracing::error!(digests = batch.len(), error = %err, "a batch of digests could not be queued");
            }
        }
    }
    Ok(outcome)
}

/// Digests claimed in one write transaction: a few statements and one commit per batch rather
/// than per digest.
const CLAIM_BATCH: usize = 250;

/// Digest messages built and inserted at once within a batch: each mail context is about a
/// hundred kilobytes of JSON, held three times over while its insert is bound.
const MAILS_AT_ONCE: usize = 25;

/// A digest due to one recipient: their period's news, not yet cut down to their changes.
struct Due {
    recipient: Recipient,
    slot: Slot,
    news: Arc<PeriodDigest>,
}

/// `send_due` for an operator: admins only.
pub async fn send_due_now(
    db: &Database,
    actor: &Actor,
    as_of: DateTime<Utc>,
    quiet_after: TimeDelta,
) -> Result<SendOutcome, DigestError> {
    actor.person()?;
    if !actor.is_admin() {
        return Err(AccessError::Forbidden("only admins can send digests").into());
    }
    Ok(send_due(db, as_of, crate::now(), quiet_after).await?)
}

/// Claims a batch of digests in one transaction: inserts their rows, skipping any (person,
/// period) already claimed by another server or run, and queues mail for the ones this
/// transaction claimed. Each row is written with the id of the message it will be sent as, so
/// the batch is one insert of digests, one of messages and a commit. An empty digest for
/// someone who asked for no empty digests, or an address that no longer parses (an erased
/// person), still claims its period but has no message.
async fn claim_batch(
    db: &Database,
    batch: &[Due],
    now: DateTime<Utc>,
) -> Result<SendOutcome, DbErr> {
    let mut outcome = SendOutcome::default();
    if batch.is_empty() {
        return Ok(outcome);
    }
    let claims: Vec<(Uuid, Option<(Uuid, EmailAddress)>)> = batch
        .iter()
        .map(|due| {
            let empty = !due.news.has_news_for(&due.recipient.changes_of_interest());
            let send = !empty || due.recipient.person.digest.send_empty;
            let mail = EmailAddress::parse(&due.recipient.person.email)
                .ok()
                .filter(|_| send)
                .map(|email| (Uuid::now_v7(), email));
            (Uuid::now_v7(), mail)
        })
        .collect();
    let rows = batch
        .iter()
        .zip(&claims)
        .map(|(due, (id, mail))| digest::ActiveModel {
            id: Set(*id),
            person_id: Set(due.recipient.person.id),
            period_key: Set(due.slot.key.clone()),
            period_start: Set(due.news.period.start),
            period_end: Set(due.slot.at),
            covered_until: Set(Some(due.news.period.end)),
            outbox_id: Set(mail.as_ref().map(|m| m.0)),
            created_at: Set(now),
        });
    let mut insert = digest::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([digest::Column::PersonId, digest::Column::PeriodKey])
                .do_nothing()
                .to_owned(),
        )
        .into_query();
    insert.returning_col(digest::Column::Id);
    let txn = db.begin_write_on(Areas::NONE).await?;
    fast_compression(&*txn).await?;
    let claimed: HashSet<Uuid> = txn
        .query_all(&insert)
        .await?
        .iter()
        .map(|row| row.try_get::<Uuid>("", "id"))
        .collect::<Result<_, _>>()?;
    let mut sending = Vec::new();
    for (due, (id, mail)) in batch.iter().zip(claims) {
        if !claimed.contains(&id) {
            outcome.already_claimed += 1;
            continue;
        }
        let Some((outbox_id, email)) = mail else {
            outcome.skipped_empty += 1;
            continue;
        };
        sending.push((due, outbox_id, email));
    }
    outcome.queued = sending.len() as u64;
    // A digest's mail context is large (a hundred kilobytes of JSON, copied again as the
    // insert binds it), so only a few are cut and held at once, not the batch's.
    for chunk in sending.chunks(MAILS_AT_ONCE) {
        let mails = chunk
            .iter()
            .map(|(due, outbox_id, email)| {
                let digest = due.news.for_recipient(&due.recipient);
                (
                    *outbox_id,
                    Mail {
                        recipient: email.clone(),
                        template: Template::Digest,
                        context: digest.mail_context(&due.recipient),
                    },
                )
            })
            .collect();
        mail::enqueue_many(&*txn, mails, now).await?;
    }
    txn.commit().await?;
    Ok(outcome)
}

/// On PostgreSQL, has this transaction compress the large values it stores (the digests'
/// mail contexts, tens of kilobytes of JSON each) with lz4 rather than the default pglz, where
/// the server was built with it: the same values are stored and read back, and writing them
/// takes about a third of the time (a digest run's outbox inserts spent ~3 s of the server's
/// time in pglz). Only the rest of this transaction is affected (`set_config(…, true)`).
async fn fast_compression(conn: &impl ConnectionTrait) -> Result<(), DbErr> {
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT set_config('default_toast_compression', 'lz4', true) FROM pg_settings \
             WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)",
        ))
        .await?;
    }
    Ok(())
}

/// The signed-in person's next digest as it stands now: the time since their last digest (or
/// their previous slot) to now, and when it will be sent.
pub struct Preview {
    pub digest: Digest,
    pub context: Value,
    pub recipient: String,
    /// When the next digest is scheduled; `None` when the person receives none.
    pub next_send_at: Option<DateTime<Utc>>,
}

pub async fn preview(
    db: &Database,
    actor: &Actor,
    now: DateTime<Utc>,
    quiet_after: TimeDelta,
) -> Result<Preview, DigestError> {
    let (person_id, _) = actor.person()?;
    let person = crate::people::by_id(db, person_id)
        .await?
        .ok_or(DigestError::NotFound)?;
    let last = last_slots(db, &[person_id], now).await?.remove(&person_id);
    let prefs = &person.digest;
    // At least the last hour, even just after a digest (or one queued for a later `asOf`).
    let start = match &last {
        Some(last) => last.covered_until,
        None => schedule::latest_slot(prefs, now)
            .map_or(crate::time::before(now, Duration::days(7)), |slot| slot.at),
    }
    .min(crate::time::before(now, Duration::hours(1)));
    let next_send_at = schedule::next_slot(prefs, now).map(|slot| slot.at);
    let recipient = Recipient { person };
    let digest = build(db, &recipient, Period { start, end: now }, quiet_after).await?;
    let context = digest.mail_context(&recipient);
    Ok(Preview {
        digest,
        context,
        recipient: recipient.person.email,
        next_send_at,
    })
}

/// The token in a person's unsubscribe link: their id and a MAC of it under the server's key.
pub fn unsubscribe_token(secret: &SecretKey, person_id: Uuid) -> String {
    format!(
        "{}.{}",
        person_id.simple(),
        secret.derive(UNSUBSCRIBE_PURPOSE, person_id)
    )
}

/// The person an unsubscribe token is for, if the token is genuine.
pub fn verify_unsubscribe_token(secret: &SecretKey, token: &str) -> Option<Uuid> {
    let (id, mac) = token.split_once('.')?;
    let id = Uuid::parse_str(id).ok()?;
    secret.verify(UNSUBSCRIBE_PURPOSE, id, mac).then_some(id)
}

/// Stops a person's digests, with no sign-in: the token in their digest is the proof. Counts
/// as their own choice, so a later change of role does not turn digests back on.
#[tracing::instrument(skip_all)]
pub async fn unsubscribe(
    db: &Database,
    secret: &SecretKey,
    token: &str,
    now: DateTime<Utc>,
) -> Result<(), DigestError> {
    let person_id =
        verify_unsubscribe_token(secret, token).ok_or(DigestError::InvalidUnsubscribeLink)?;
    let txn = db.begin_write_on(Areas::NONE).await?;
    let updated = person::Entity::update_many()
        .col_expr(
            person::Column::DigestFrequency,
            Expr::value(DigestFrequency::Never),
        )
        .col_expr(person::Column::DigestChosen, Expr::value(true))
        .col_expr(person::Column::UpdatedAt, Expr::value(now))
        .filter(person::Column::Id.eq(person_id))
        .exec(&*txn)
        .await?;
    txn.commit().await?;
    if updated.rows_affected == 0 {
        return Err(DigestError::NotFound);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsubscribe_tokens_verify_only_with_their_key_and_person() {
        let key = SecretKey::generate();
        let id = Uuid::now_v7();
        let token = unsubscribe_token(&key, id);
        assert_eq!(verify_unsubscribe_token(&key, &token), Some(id));
        assert_eq!(
            verify_unsubscribe_token(&SecretKey::generate(), &token),
            None
        );
        let other = Uuid::now_v7();
        let forged = format!(
            "{}.{}",
            other.simple(),
            token.split_once('.').map_or("", |t| t.1)
        );
        assert_eq!(verify_unsubscribe_token(&key, &forged), None);
        assert_eq!(verify_unsubscribe_token(&key, "nonsense"), None);
    }
}
