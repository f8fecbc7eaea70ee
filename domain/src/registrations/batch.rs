//! Registrations for one gathering are written in batches: when registration opens and hundreds
//! click at once, each waits for the gathering's next batch instead of its own transaction.
//! A batch is one transaction under the gathering's row lock, so it costs one commit (one
//! flush to disk) for all of them, while places are still taken one registration at a time, in
//! the order they arrived, exactly as if each had its own turn.
//!
//! Each gathering has at most one batch writer in this process at a time: the first
//! registration to find none starts it, and it keeps taking batches until none is waiting.
//! Several servers still meet at the row lock in the database.

use crate::generations::Areas;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QuerySelect,
};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{
    NewRegistration, Registration, RegistrationError, RegistrationStatus, attempts, mail,
    open_mode, waitlist_position,
};
use crate::{
    AccessError, Database,
    entities::{gathering, person, registration},
    places,
};

/// The most registrations one batch takes; the rest wait for the next.
const MOST_PER_BATCH: usize = 200;

/// One registration waiting for its gathering's batch.
pub(crate) struct Waiting {
    /// Who asked.
    pub actor_id: Uuid,
    /// Who is registered: the caller, or the person registered on their behalf.
    pub person_id: Uuid,
    pub registered_by: Option<Uuid>,
    pub new: NewRegistration,
    pub limits: crate::Limits,
    pub now: DateTime<Utc>,
}

type Reply = oneshot::Sender<Result<Registration, RegistrationError>>;

/// Registrations waiting, per gathering. A gathering is in the map while its batch writer runs.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    waiting: std::sync::Mutex<HashMap<Uuid, Vec<(Waiting, Reply)>>>,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("gathering_id", &self.new.gathering_id)
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// Queues `waiting`; true when no batch writer runs for its gathering, so the caller must
    /// start one.
    fn push(&self, waiting: Waiting, reply: Reply) -> bool {
        let mut queues = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        match queues.get_mut(&waiting.new.gathering_id) {
            Some(queue) => {
                queue.push((waiting, reply));
                false
            }
            None => {
                queues.insert(waiting.new.gathering_id, vec![(waiting, reply)]);
                true
            }
        }
    }

    /// The next batch for `gathering_id`; empty (and the writer retired) when none is waiting.
    fn next_batch(&self, gathering_id: Uuid) -> Vec<(Waiting, Reply)> {
        let mut queues = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let Some(queue) = queues.get_mut(&gathering_id) else {
            return Vec::new();
        };
        if queue.is_empty() {
            queues.remove(&gathering_id);
            return Vec::new();
        }
        let take = queue.len().min(MOST_PER_BATCH);
        queue.drain(..take).collect()
    }
}

/// Queues a registration for its gathering's next batch and waits for its answer.
pub(crate) async fn register(
    db: &Database,
    waiting: Waiting,
) -> Result<Registration, RegistrationError> {
    let (reply, answer) = oneshot::channel();
    let gathering_id = waiting.new.gathering_id;
    if db.local::<Queue>().push(waiting, reply) {
        // The writer runs on its own, so a caller who goes away does not stop a batch.
        let db = db.clone();
        tokio::spawn(async move { write_batches(&db, gathering_id).await });
    }
    answer.await.unwrap_or_else(|_| {
        Err(RegistrationError::Database(DbErr::Custom(
            "the registration batch stopped before answering".to_owned(),
        )))
    })
}

/// Writes `gathering_id`'s batches until none is waiting.
async fn write_batches(db: &Database, gathering_id: Uuid) {
    loop {
        let batch = db.local::<Queue>().next_batch(gathering_id);
        if batch.is_empty() {
            return;
        }
        let (batch, replies): (Vec<Waiting>, Vec<Reply>) = batch.into_iter().unzip();
        match write_batch(db, gathering_id, &batch).await {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "a registration batch failed");
                for reply in replies {
                    let _ = reply.send(Err(RegistrationError::Database(DbErr::Custom(
                        err.to_string(),
                    ))));
                }
            }
        }
    }
}

/// One batch in one transaction: each registration in turn, as `super::register` rules, with
/// the gathering's places saved and the transaction committed once at the end. A refusal is one
/// registration's answer; only a database failure fails the batch.
async fn write_batch(
    db: &Database,
    gathering_id: Uuid,
    batch: &[Waiting],
) -> Result<Vec<Result<Registration, RegistrationError>>, DbErr> {
    let _queue = db.serialize(gathering_id).await;
    let txn = db.begin_write_on(Areas::GATHERINGS).await?;
    let emails = lock_people(&*txn, batch).await?;
    let Some(mut gathering) = places::lock(&*txn, gathering_id).await? else {
        txn.commit().await?;
        return Ok(batch
            .iter()
            .map(|_| Err(RegistrationError::GatheringNotFound))
            .collect());
    };
    let mut existing: HashMap<Uuid, registration::Model> = registration::Entity::find()
        .filter(registration::Column::GatheringId.eq(gathering_id))
        .filter(registration::Column::PersonId.is_in(batch.iter().map(|w| w.person_id)))
        .all(&*txn)
        .await?
        .into_iter()
        .map(|r| (r.person_id, r))
        .collect();
    let latest = batch.iter().map(|w| w.now).max().unwrap_or_else(crate::now);
    let mut made = made_for_others(&*txn, batch, gathering_id, latest).await?;

    let mut decided = Decided::default();
    for waiting in batch {
        decided
            .decide(
                &*txn,
                &mut gathering,
                &mut existing,
                &mut made,
                &emails,
                waiting,
            )
            .await?;
    }

    places::save(&*txn, &gathering, latest).await?;
    decided.write(&*txn).await?;
    decided.answer_written(&*txn, &gathering, &emails).await?;
    decided.answer_held(&*txn, gathering_id).await?;
    txn.commit().await?;
    Ok(decided
        .results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| {
                Err(RegistrationError::Database(DbErr::Custom(
                    "a registration in the batch was not answered".to_owned(),
                )))
            })
        })
        .collect())
}

/// The people registered, read before the gathering's lock and, on PostgreSQL, held shared
/// until the batch commits: erasure locks the person first too, so a person erasing their data
/// while their registration waits is either erased before (and refused here) or after (and
/// their registration cancelled by it), never left registered as a placeholder. Their emails,
/// by id; an erased person is missing.
async fn lock_people(
    conn: &impl ConnectionTrait,
    batch: &[Waiting],
) -> Result<HashMap<Uuid, String>, DbErr> {
    let people_query = person::Entity::find()
        .select_only()
        .column(person::Column::Id)
        .column(person::Column::Email)
        .filter(person::Column::Id.is_in(batch.iter().map(|w| w.person_id)))
        .filter(person::Column::ErasedAt.is_null());
    let people_query = if conn.get_database_backend() == DbBackend::Postgres {
        people_query.lock_shared()
    } else {
        people_query
    };
    Ok(people_query
        .into_tuple()
        .all(conn)
        .await?
        .into_iter()
        .collect())
}

/// What each registrar in the batch has already made for others, counted under a lock per
/// registrar (taken in id order, so batches never wait on each other in a circle).
async fn made_for_others(
    conn: &impl ConnectionTrait,
    batch: &[Waiting],
    gathering_id: Uuid,
    latest: DateTime<Utc>,
) -> Result<HashMap<Uuid, super::OnBehalfMade>, DbErr> {
    let mut registrars: Vec<Uuid> = batch
        .iter()
        .filter(|w| w.registered_by.is_some())
        .map(|w| w.actor_id)
        .collect();
    registrars.sort();
    registrars.dedup();
    let mut made: HashMap<Uuid, super::OnBehalfMade> = HashMap::new();
    for registrar in registrars {
        crate::limits::serialise_count(conn, &format!("on-behalf:{registrar}")).await?;
        made.insert(
            registrar,
            super::on_behalf_made(conn, registrar, gathering_id, latest).await?,
        );
    }
    Ok(made)
}

/// What a batch decided for each registration, in the order they arrived.
#[derive(Default)]
struct Decided<'a> {
    /// Each registration's answer; those written in this batch are answered once all are.
    results: Vec<Option<Result<Registration, RegistrationError>>>,
    inserted: Vec<registration::Model>,
    replaced: Vec<Uuid>,
    made_now: HashSet<Uuid>,
    /// Registrations asked for on behalf of people who already hold a place: the slot each
    /// answers, its asker, its way of attending, and whether a new one would have had a place.
    held: Vec<(usize, &'a Waiting, super::AttendanceMode, bool)>,
    /// Each registration's row as written, with the place in `results` it answers.
    written: Vec<(usize, registration::Model, &'a Waiting)>,
}

impl<'a> Decided<'a> {
    /// Decides one registration, taking its places from `gathering` in memory if they fit.
    async fn decide(
        &mut self,
        conn: &impl ConnectionTrait,
        gathering: &mut gathering::Model,
        existing: &mut HashMap<Uuid, registration::Model>,
        made: &mut HashMap<Uuid, super::OnBehalfMade>,
        emails: &HashMap<Uuid, String>,
        waiting: &'a Waiting,
    ) -> Result<(), DbErr> {
        if !emails.contains_key(&waiting.person_id) {
            self.results
                .push(Some(Err(AccessError::Unauthenticated.into())));
            return Ok(());
        }
        let mode = match open_mode(gathering, waiting.new.mode, waiting.now) {
            Ok(mode) => mode,
            Err(refused) => {
                self.results.push(Some(Err(refused)));
                return Ok(());
            }
        };
        let previous = existing.get(&waiting.person_id);
        if let Some(previous) = previous
            && previous.status != RegistrationStatus::Cancelled
        {
            return self
                .again(conn, gathering, made, waiting, mode, previous)
                .await;
        }

        if waiting.registered_by.is_some()
            && let Err(refused) = count_on_behalf(made, waiting)
        {
            self.results.push(Some(Err(refused)));
            return Ok(());
        }
        let (rejoins, rejoins_since) = match rejoins(previous, waiting) {
            Ok(rejoins) => rejoins,
            Err(refused) => {
                self.results.push(Some(Err(refused)));
                return Ok(());
            }
        };
        let mut row = new_row(gathering.id, waiting, mode, rejoins, rejoins_since);
        if places::take(gathering, mode, places::of(&row)) {
            row.status = RegistrationStatus::Confirmed;
        } else {
            gathering.waitlist_seq += 1;
            row.waitlist_seq = Some(gathering.waitlist_seq);
        }
        if let Some(previous) = previous {
            self.replaced.push(previous.id);
        }
        self.inserted.push(row.clone());
        self.made_now.insert(row.id);
        existing.insert(row.person_id, row.clone());
        self.written.push((self.results.len(), row, waiting));
        self.results.push(None);
        Ok(())
    }

    /// A registration asked for again while `previous` is live.
    async fn again(
        &mut self,
        conn: &impl ConnectionTrait,
        gathering: &gathering::Model,
        made: &mut HashMap<Uuid, super::OnBehalfMade>,
        waiting: &'a Waiting,
        mode: super::AttendanceMode,
        previous: &registration::Model,
    ) -> Result<(), DbErr> {
        // Someone registering another person learns nothing of a registration that is
        // not theirs to see.
        // They are answered as a new registration would be (and limited the same), and
        // the person's own registration stays as it is.
        if previous.person_id != waiting.actor_id
            && previous.registered_by != Some(waiting.actor_id)
        {
            if let Some(attempt) = attempts::live(conn, waiting, gathering.id).await? {
                self.results
                    .push(Some(Ok(attempts::as_registration(attempt))));
                return Ok(());
            }
            if let Err(refused) = count_on_behalf(made, waiting) {
                self.results.push(Some(Err(refused)));
                return Ok(());
            }
            // The answer a new registration would get, without taking anything.
            let mut probe = gathering.clone();
            let fits = places::take(&mut probe, mode, 1 + waiting.new.companions.0);
            self.held.push((self.results.len(), waiting, mode, fits));
            self.results.push(None);
            return Ok(());
        }
        // Registering again returns the registration: one made in this batch is answered
        // with the rest, once its waitlist position is known.
        if self.made_now.contains(&previous.id) {
            self.written
                .push((self.results.len(), previous.clone(), waiting));
            self.results.push(None);
        } else {
            let position = waitlist_position(conn, previous).await?;
            self.results
                .push(Some(Ok(Registration::from_row(previous.clone(), position))));
        }
        Ok(())
    }

    /// Replaces the cancelled registrations made again, and inserts the new rows.
    async fn write(&self, conn: &impl ConnectionTrait) -> Result<(), DbErr> {
        for chunk in self.replaced.chunks(500) {
            registration::Entity::delete_many()
                .filter(registration::Column::Id.is_in(chunk.iter().copied()))
                .exec(conn)
                .await?;
        }
        for chunk in self.inserted.chunks(500) {
            registration::Entity::insert_many(
                chunk.iter().cloned().map(registration::ActiveModel::from),
            )
            .exec_without_returning(conn)
            .await?;
        }
        Ok(())
    }

    /// Answers (and mails) the registrations written, with their waitlist positions: those
    /// waiting before this batch, then this batch's in turn.
    async fn answer_written(
        &mut self,
        conn: &impl ConnectionTrait,
        gathering: &gathering::Model,
        emails: &HashMap<Uuid, String>,
    ) -> Result<(), DbErr> {
        let mut ahead = waiting_before(conn, gathering, &self.written).await?;
        // A registration answered twice (registered again in one batch) is mailed once and
        // keeps the place its first answer gave it.
        let mut answered: HashMap<Uuid, Option<u64>> = HashMap::new();
        // Every message of the batch, queued in one statement (in the order they were made)
        // rather than one statement a registration.
        let mut mails = Vec::with_capacity(self.written.len());
        for (index, row, waiting) in &self.written {
            let position = match answered.get(&row.id) {
                Some(position) => *position,
                None => {
                    let position = (row.status == RegistrationStatus::Waitlisted).then(|| {
                        let n = ahead.entry(row.mode).or_default();
                        *n += 1;
                        *n
                    });
                    let template = match row.status {
                        RegistrationStatus::Confirmed => {
                            crate::mail::Template::RegistrationConfirmed
                        }
                        _ => crate::mail::Template::RegistrationWaitlisted,
                    };
                    if let Some(message) = mail::message(
                        template,
                        gathering,
                        row,
                        emails.get(&waiting.person_id).map_or("", String::as_str),
                        position,
                    ) {
                        mails.push((Uuid::now_v7(), message, waiting.now));
                    }
                    answered.insert(row.id, position);
                    position
                }
            };
            self.results[*index] = Some(Ok(Registration::from_row(row.clone(), position)));
        }
        crate::mail::enqueue_each(conn, mails).await
    }

    /// Answers those already holding a place with the position a new registration would have,
    /// after everyone waiting (this batch's new ones included).
    async fn answer_held(
        &mut self,
        conn: &impl ConnectionTrait,
        gathering_id: Uuid,
    ) -> Result<(), DbErr> {
        let mut held_waiting: HashMap<super::AttendanceMode, u64> = HashMap::new();
        for (index, waiting, mode, fits) in std::mem::take(&mut self.held) {
            let position = if fits {
                None
            } else {
                let n = held_waiting.entry(mode).or_default();
                *n += 1;
                Some(attempts::waiting_count(conn, gathering_id, mode).await? + *n)
            };
            let attempt = attempts::record(conn, waiting, gathering_id, mode, position).await?;
            self.results[index] = Some(Ok(attempts::as_registration(attempt)));
        }
        Ok(())
    }
}

/// Registering again after cancelling: a few times a day, so a register/cancel loop cannot
/// mail the person (or churn the waitlist) without end. Counted for the same asker only:
/// someone registering a person whose own registration was cancelled starts afresh, and learns
/// nothing of how often the person rejoined. The new row's count and its window's start.
fn rejoins(
    previous: Option<&registration::Model>,
    waiting: &Waiting,
) -> Result<(i32, Option<DateTime<Utc>>), RegistrationError> {
    match previous.filter(|previous| previous.registered_by == waiting.registered_by) {
        Some(previous) => {
            let window_open = previous
                .rejoins_since
                .is_some_and(|since| since > waiting.now - chrono::Duration::days(1));
            if window_open
                && previous.rejoins
                    >= i32::try_from(waiting.limits.rejoins_per_day).unwrap_or(i32::MAX)
            {
                return Err(RegistrationError::TooMany(format!(
                    "This registration was made again after cancelling {} times today, the most a day allows. Try again tomorrow.",
                    waiting.limits.rejoins_per_day
                )));
            }
            if window_open {
                Ok((previous.rejoins + 1, previous.rejoins_since))
            } else {
                Ok((1, Some(waiting.now)))
            }
        }
        None => Ok((0, None)),
    }
}

/// The row a registration is written as, waitlisted until its places are taken. A registration
/// made again is new: its id and time say nothing of the one cancelled.
fn new_row(
    gathering_id: Uuid,
    waiting: &Waiting,
    mode: super::AttendanceMode,
    rejoins: i32,
    rejoins_since: Option<DateTime<Utc>>,
) -> registration::Model {
    let (requirements, notes, consent_at) = match &waiting.new.access {
        Some(access) => (
            access.requirements_json(),
            access.notes.clone(),
            Some(waiting.now),
        ),
        None => (serde_json::json!([]), None, None),
    };
    registration::Model {
        id: Uuid::now_v7(),
        gathering_id,
        person_id: waiting.person_id,
        mode,
        status: RegistrationStatus::Waitlisted,
        waitlist_seq: None,
        companions: waiting.new.companions.0,
        access_requirements: requirements,
        access_notes: notes,
        access_consent_at: consent_at,
        registered_by: waiting.registered_by,
        checked_in_at: None,
        created_at: waiting.now,
        updated_at: waiting.now,
        behalf_name: waiting
            .registered_by
            .and(waiting.new.on_behalf_of.as_ref())
            .map(|behalf| behalf.name.as_str().to_owned()),
        rejoins,
        rejoins_since,
    }
}

/// How many were waiting in each way of attending before this batch's new waitlisted
/// registrations, which are the newest.
async fn waiting_before(
    conn: &impl sea_orm::ConnectionTrait,
    gathering: &crate::entities::gathering::Model,
    written: &[(usize, registration::Model, &Waiting)],
) -> Result<HashMap<super::AttendanceMode, u64>, DbErr> {
    let mut before = HashMap::new();
    for (_, row, _) in written {
        if row.status != RegistrationStatus::Waitlisted || before.contains_key(&row.mode) {
            continue;
        }
        let first_new = written
            .iter()
            .filter(|(_, r, _)| r.mode == row.mode && r.status == RegistrationStatus::Waitlisted)
            .filter_map(|(_, r, _)| r.waitlist_seq)
            .min()
            .unwrap_or(gathering.waitlist_seq + 1);
        let probe = registration::Model {
            waitlist_seq: Some(first_new),
            ..row.clone()
        };
        let position = waitlist_position(conn, &probe).await?.unwrap_or(1);
        before.insert(row.mode, position - 1);
    }
    Ok(before)
}

/// Counts one more registration of someone else by `waiting`'s caller, or refuses it when the
/// caller has reached a limit (then nothing is counted).
fn count_on_behalf(
    made: &mut HashMap<Uuid, super::OnBehalfMade>,
    waiting: &Waiting,
) -> Result<(), super::RegistrationError> {
    let so_far = made.entry(waiting.actor_id).or_default();
    super::check_on_behalf(&waiting.limits, *so_far)?;
    so_far.for_gathering += 1;
    so_far.last_hour += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use groundswell_migration::MigratorTrait;
    use sea_orm::{ActiveValue::Set, PaginatorTrait};

    use super::*;
    use crate::{
        entities::{gathering, outbox},
        gatherings::{GatheringFormat, GatheringStatus},
        people::{DigestFrequency, Role},
        registrations::Companions,
    };

    async fn person(db: &Database, email: &str) -> anyhow::Result<person::Model> {
        let now = crate::now();
        let row = person::Model {
            id: Uuid::now_v7(),
            email: email.to_owned(),
            display_name: None,
            role: Role::Attendee,
            time_zone: "Europe/London".to_owned(),
            digest_frequency: DigestFrequency::Never,
            digest_weekday: 1,
            digest_hour: 8,
            digest_changes: serde_json::json!([]),
            digest_send_empty: false,
            digest_chosen: false,
            email_consent: true,
            created_at: now,
            updated_at: now,
            erased_at: None,
            prefers_easy_read: false,
        };
        person::Entity::insert(person::ActiveModel::from(row.clone()))
            .exec_without_returning(db.conn())
            .await?;
        Ok(row)
    }

    fn asking(person: &person::Model, gathering_id: Uuid) -> Waiting {
        Waiting {
            actor_id: person.id,
            person_id: person.id,
            registered_by: None,
            new: NewRegistration {
                gathering_id,
                mode: None,
                companions: Companions::default(),
                access: None,
                on_behalf_of: None,
            },
            limits: crate::Limits::default(),
            now: crate::now(),
        }
    }

    #[tokio::test]
    async fn one_batch_takes_places_in_turn_and_answers_a_double_click_once() -> anyhow::Result<()>
    {
        let db = Database::connect("sqlite::memory:", 1).await?;
        groundswell_migration::Migrator::up(db.conn(), None).await?;
        let now = crate::now();
        let id = Uuid::now_v7();
        gathering::Entity::insert(gathering::ActiveModel {
            id: Set(id),
            title: Set("One place".to_owned()),
            slug: Set("one-place".to_owned()),
            description: Set(String::new()),
            starts_at: Set(now + Duration::days(10)),
            ends_at: Set(now + Duration::days(10) + Duration::hours(2)),
            time_zone: Set("Europe/London".to_owned()),
            format: Set(GatheringFormat::InPerson),
            area: Set(None),
            venue: Set(Some("The hall".to_owned())),
            joining_url: Set(None),
            in_person_capacity: Set(Some(1)),
            online_capacity: Set(None),
            in_person_taken: Set(0),
            online_taken: Set(0),
            waitlist_seq: Set(0),
            registration_opens_at: Set(None),
            registration_closes_at: Set(None),
            status: Set(GatheringStatus::Published),
            cancel_reason: Set(None),
            access_totals: Set(None),
            sequence: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec_without_returning(db.conn())
        .await?;
        let (ann, ben, cat) = (
            person(&db, "ann@example.org").await?,
            person(&db, "ben@example.org").await?,
            person(&db, "cat@example.org").await?,
        );
        let batch = [
            asking(&ann, id),
            asking(&ben, id),
            asking(&ann, id),
            asking(&cat, id),
        ];
        let answers: Vec<Registration> = write_batch(&db, id, &batch)
            .await?
            .into_iter()
            .collect::<Result<_, _>>()?;
        let states: Vec<_> = answers
            .iter()
            .map(|r| (r.person_id, r.status, r.waitlist_position))
            .collect();
        assert_eq!(
            states,
            [
                (ann.id, RegistrationStatus::Confirmed, None),
                (ben.id, RegistrationStatus::Waitlisted, Some(1)),
                (ann.id, RegistrationStatus::Confirmed, None),
                (cat.id, RegistrationStatus::Waitlisted, Some(2)),
            ]
        );
        assert_eq!(answers[0].id, answers[2].id);
        assert_eq!(registration::Entity::find().count(db.reads()).await?, 3);
        assert_eq!(outbox::Entity::find().count(db.reads()).await?, 3);
        let saved = gathering::Entity::find_by_id(id).one(db.reads()).await?;
        assert_eq!(
            saved.map(|g| (g.in_person_taken, g.waitlist_seq)),
            Some((1, 2))
        );

        // A later batch counts those already waiting.
        let dan = person(&db, "dan@example.org").await?;
        let later = write_batch(&db, id, &[asking(&dan, id)]).await?;
        assert_eq!(
            later
                .into_iter()
                .next()
                .transpose()?
                .and_then(|r| r.waitlist_position),
            Some(3)
        );
        Ok(())
    }
}
