//! Registrations: one per person per gathering, confirmed while places last (companions take
//! places too), then waitlisted in order; a cancellation promotes the first waiting
//! registration that fits, at once. Access needs are health data: stored only with consent,
//! shown only to the person and the gathering's convenors, and erased when no longer needed.

mod access;
mod attempts;
mod batch;
pub mod gathering_page;
mod requests;

pub use crate::gatherings::{local_time, when};
pub use requests::{
    ConfirmedRequest, DEFAULT_REGISTRATION_REQUEST_TTL, REGISTRATION_REQUEST_PURPOSE,
    REGISTRATION_REQUESTS_PER_HOUR, RegistrationRequest, confirm_registration,
    delete_expired_requests, pending_gathering, request_registration,
};

pub(crate) use access::erase_for_person;
pub use access::{
    AccessNeeds, AccessNeedsRefused, AccessRequirement, AccessTotal, access_totals,
    erase_expired_access_data,
};
pub(crate) use attempts::erase_for_person as erase_attempts_for_person;

use crate::generations::Areas;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::{
    AccessError, Actor, Database, InvalidInput, Limits,
    entities::{gathering, person, registration},
    gatherings::{self, Gathering, GatheringStatus, mail},
    page::{Page, PageRequest},
    people::{self, DisplayName, EmailAddress},
    places,
};

pub use crate::entities::enums::{AttendanceMode, RegistrationStatus};

/// Companion places for personal assistants or carers: 0 to 5.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Companions(i32);

impl Companions {
    pub fn parse(value: i32) -> Result<Self, InvalidInput> {
        if (0..=5).contains(&value) {
            Ok(Self(value))
        } else {
            Err(InvalidInput::new("must be from 0 to 5"))
        }
    }
}

/// Someone registered by a family member or supporter, who confirms they have the person's
/// agreement.
#[derive(Clone, Debug)]
pub struct OnBehalfOf {
    pub name: DisplayName,
    pub email: EmailAddress,
}

/// A validated registration request.
#[derive(Clone, Debug)]
pub struct NewRegistration {
    pub gathering_id: Uuid,
    pub mode: Option<AttendanceMode>,
    pub companions: Companions,
    pub access: Option<AccessNeeds>,
    pub on_behalf_of: Option<OnBehalfOf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub id: Uuid,
    pub gathering_id: Uuid,
    pub person_id: Uuid,
    pub mode: AttendanceMode,
    pub status: RegistrationStatus,
    /// 1 for the first person waiting for this mode; `None` unless waitlisted.
    pub waitlist_position: Option<u64>,
    pub companions: i32,
    pub access_requirements: Vec<AccessRequirement>,
    pub access_notes: Option<String>,
    pub registered_by: Option<Uuid>,
    /// The name whoever registered this person typed for them: all they are shown of the
    /// person, whatever the account behind the address holds.
    pub behalf_name: Option<String>,
    pub checked_in_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Registration {
    pub(crate) fn from_row(row: registration::Model, waitlist_position: Option<u64>) -> Self {
        Self {
            id: row.id,
            gathering_id: row.gathering_id,
            person_id: row.person_id,
            mode: row.mode,
            status: row.status,
            waitlist_position: (row.status == RegistrationStatus::Waitlisted)
                .then_some(waitlist_position)
                .flatten(),
            companions: row.companions,
            access_requirements: AccessRequirement::from_json(&row.access_requirements),
            access_notes: row.access_notes,
            registered_by: row.registered_by,
            behalf_name: row.behalf_name,
            checked_in_at: row.checked_in_at,
            created_at: row.created_at,
        }
    }

    /// Whether `actor` may see this registration's access needs: the person themselves, or
    /// (checked separately) the gathering's convenors.
    pub fn is_persons_own(&self, actor: &Actor) -> bool {
        matches!(actor, Actor::Person { person_id, .. } if *person_id == self.person_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("No registration has that id.")]
    NotFound,
    #[error("No gathering has that id.")]
    GatheringNotFound,
    #[error("This gathering has been cancelled.")]
    GatheringCancelled,
    #[error("{0}")]
    NotOpen(String),
    #[error("This gathering does not offer that way of attending.")]
    ModeNotOffered,
    #[error("This registration is already cancelled.")]
    AlreadyCancelled,
    #[error("Only confirmed registrations can be checked in.")]
    NotConfirmed,
    #[error("{0}")]
    TooMany(String),
    #[error("This link has expired or has already been used. Register again to get a new one.")]
    RequestLinkInvalid,
    #[error("Too many registration links were asked for this address. Wait an hour and try again.")]
    TooManyRequests,
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// The way of attending a registration takes, if the gathering is open to it at `now`.
fn open_mode(
    gathering: &gathering::Model,
    asked: Option<AttendanceMode>,
    now: DateTime<Utc>,
) -> Result<AttendanceMode, RegistrationError> {
    match gathering.status {
        GatheringStatus::Draft => return Err(RegistrationError::GatheringNotFound),
        GatheringStatus::Cancelled => return Err(RegistrationError::GatheringCancelled),
        GatheringStatus::Published => {}
    }
    if let Some(opens) = gathering.registration_opens_at
        && now < opens
    {
        return Err(RegistrationError::NotOpen(format!(
            "Registration opens on {}.",
            mail::local_time(&Gathering::from(gathering.clone()), opens)
        )));
    }
    if gathering
        .registration_closes_at
        .is_some_and(|closes| now >= closes)
        || now >= gathering.ends_at
    {
        return Err(RegistrationError::NotOpen(
            "Registration for this gathering has closed.".to_owned(),
        ));
    }
    let mode = asked.unwrap_or(gathering.format.default_mode());
    if !gathering.format.allows(mode) {
        return Err(RegistrationError::ModeNotOffered);
    }
    Ok(mode)
}

/// Registers the signed-in person, or someone they register on behalf of, for a gathering.
/// Registering again returns the existing registration.
#[tracing::instrument(skip_all, fields(gathering.id = %new.gathering_id))]
pub async fn register(
    db: &Database,
    actor: &Actor,
    new: NewRegistration,
    limits: Limits,
    now: DateTime<Utc>,
) -> Result<Registration, RegistrationError> {
    let (actor_id, _) = actor.person()?;
    // Who is registered: the caller, or someone they register on behalf of (their account
    // made if new). Settled before the gathering's queue, which should hold only the work
    // that needs its lock.
    let (person_id, registered_by) = match &new.on_behalf_of {
        Some(behalf) => {
            // Refuse early, before an account is made for someone.
            let current = gathering::Entity::find_by_id(new.gathering_id)
                .one(db.reads())
                .await?
                .ok_or(RegistrationError::GatheringNotFound)?;
            open_mode(&current, new.mode, now)?;
            // A caller over their limits makes no account for anyone; the batch counts again
            // under its locks, which is what holds when several register at once.
            let made = on_behalf_made(db.reads(), actor_id, new.gathering_id, now).await?;
            check_on_behalf(&limits, made)?;
            let txn = db.begin_write_on(Areas::GATHERINGS).await?;
            let person = people::find_or_create(&*txn, &behalf.email, now).await?;
            // Name only an account made just now; an existing one keeps the name its owner chose.
            let created_now = person.created_at == now;
            let person = if created_now && person.display_name.is_none() {
                let mut active: person::ActiveModel = person.into();
                active.display_name = Set(Some(behalf.name.as_str().to_owned()));
                sea_orm::ActiveModelTrait::update(active, &*txn).await?
            } else {
                person
            };
            txn.commit().await?;
            let by = (person.id != actor_id).then_some(actor_id);
            (person.id, by)
        }
        // The gathering is checked under its lock, with the rest of the batch.
        None => (actor_id, None),
    };

    batch::register(
        db,
        batch::Waiting {
            actor_id,
            person_id,
            registered_by,
            new,
            limits,
            now,
        },
    )
    .await
}

/// Registrations one caller has made for others: live ones for one gathering, and any made or
/// changed in the last hour.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct OnBehalfMade {
    pub for_gathering: u64,
    pub last_hour: u64,
}

pub(crate) async fn on_behalf_made(
    conn: &impl ConnectionTrait,
    registrar: Uuid,
    gathering_id: Uuid,
    now: DateTime<Utc>,
) -> Result<OnBehalfMade, DbErr> {
    let for_gathering = registration::Entity::find()
        .filter(registration::Column::RegisteredBy.eq(registrar))
        .filter(registration::Column::GatheringId.eq(gathering_id))
        .filter(registration::Column::Status.ne(RegistrationStatus::Cancelled))
        .count(conn)
        .await?;
    let last_hour = registration::Entity::find()
        .filter(registration::Column::RegisteredBy.eq(registrar))
        .filter(
            registration::Column::UpdatedAt
                .gt(crate::time::before(now, chrono::TimeDelta::hours(1))),
        )
        .count(conn)
        .await?;
    // Attempts for people who already held a place count alike, so the limits tell nothing.
    let (attempts_for_gathering, attempts_last_hour) =
        attempts::made_by(conn, registrar, gathering_id, now).await?;
    Ok(OnBehalfMade {
        for_gathering: for_gathering + attempts_for_gathering,
        last_hour: last_hour + attempts_last_hour,
    })
}

/// Refuses one more registration on behalf of someone else when it would pass a limit.
pub(crate) fn check_on_behalf(
    limits: &Limits,
    made: OnBehalfMade,
) -> Result<(), RegistrationError> {
    if made.for_gathering >= u64::from(limits.on_behalf_per_gathering) {
        return Err(RegistrationError::TooMany(format!(
            "You can register at most {} other people for one gathering.",
            limits.on_behalf_per_gathering
        )));
    }
    if made.last_hour >= u64::from(limits.on_behalf_per_hour) {
        return Err(RegistrationError::TooMany(format!(
            "You can register other people at most {} times an hour. Try again later.",
            limits.on_behalf_per_hour
        )));
    }
    Ok(())
}

/// Cancels a registration: by the person, whoever registered them, or the gathering's
/// convenors. A confirmed place goes at once to the first waiting registration that fits.
#[tracing::instrument(skip_all, fields(registration.id = %id))]
pub async fn cancel(
    db: &Database,
    actor: &Actor,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Registration, RegistrationError> {
    let (actor_id, _) = actor.person()?;
    let Some(found) = registration::Entity::find_by_id(id).one(db.reads()).await? else {
        // Perhaps an attempt to register someone who already held a place: cached answers are
        // dropped as for any cancellation, so a cache hit tells nothing either.
        let txn = db.begin_write_on(Areas::GATHERINGS).await?;
        let cancelled = attempts::cancel(&*txn, actor_id, id, now).await?;
        txn.commit().await?;
        return cancelled.unwrap_or(Err(RegistrationError::NotFound));
    };
    let gathering_id = found.gathering_id;
    let _queue = db.serialize(gathering_id).await;
    let txn = db.begin_write_on(Areas::GATHERINGS).await?;
    let mut gathering = places::lock(&*txn, gathering_id)
        .await?
        .ok_or(RegistrationError::GatheringNotFound)?;
    let row = registration::Entity::find_by_id(id)
        .one(&*txn)
        .await?
        .ok_or(RegistrationError::NotFound)?;
    let allowed = row.person_id == actor_id
        || row.registered_by == Some(actor_id)
        || gatherings::is_convenor(&*txn, actor, gathering_id).await?;
    if !allowed {
        return Err(AccessError::Forbidden(
            "only the person registered, whoever registered them, or the convenors can cancel a registration",
        )
        .into());
    }
    if row.status == RegistrationStatus::Cancelled {
        return Err(RegistrationError::AlreadyCancelled);
    }
    let was_confirmed = row.status == RegistrationStatus::Confirmed;
    let mut active: registration::ActiveModel = row.clone().into();
    active.status = Set(RegistrationStatus::Cancelled);
    active.waitlist_seq = Set(None);
    active.updated_at = Set(now);
    let row = sea_orm::ActiveModelTrait::update(active, &*txn).await?;
    if was_confirmed {
        places::release(&mut gathering, row.mode, places::of(&row));
        places::save(&*txn, &gathering, now).await?;
        gatherings::promote(&*txn, &mut gathering, row.mode, now).await?;
    }
    if let Some(person) = person::Entity::find_by_id(row.person_id).one(&*txn).await? {
        mail::send(
            &*txn,
            crate::mail::Template::RegistrationCancelled,
            &gathering,
            &row,
            &person.email,
            None,
            now,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(Registration::from_row(row, None))
}

/// Cancels every live registration of a person whose data is being erased, in their erasure's
/// transaction: each confirmed place goes at once to the first waiting registration that fits
/// (who is told, as after any cancellation). The person is not written to: they asked to be
/// forgotten. Returns the gatherings whose places changed.
pub(crate) async fn cancel_for_erasure(
    conn: &impl ConnectionTrait,
    person_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, DbErr> {
    let live = registration::Entity::find()
        .filter(registration::Column::PersonId.eq(person_id))
        .filter(registration::Column::Status.ne(RegistrationStatus::Cancelled))
        .order_by_asc(registration::Column::GatheringId)
        .all(conn)
        .await?;
    let mut changed = Vec::new();
    // Gatherings locked in id order, as nothing else locks several, so no two wait in a circle.
    for row in live {
        let Some(mut gathering) = places::lock(conn, row.gathering_id).await? else {
            continue;
        };
        // Read again under the lock: a batch may have changed it since.
        let Some(row) = registration::Entity::find_by_id(row.id).one(conn).await? else {
            continue;
        };
        if row.status == RegistrationStatus::Cancelled {
            continue;
        }
        let was_confirmed = row.status == RegistrationStatus::Confirmed;
        let mut active: registration::ActiveModel = row.clone().into();
        active.status = Set(RegistrationStatus::Cancelled);
        active.waitlist_seq = Set(None);
        active.behalf_name = Set(None);
        active.updated_at = Set(now);
        let row = sea_orm::ActiveModelTrait::update(active, conn).await?;
        if was_confirmed {
            places::release(&mut gathering, row.mode, places::of(&row));
            places::save(conn, &gathering, now).await?;
            gatherings::promote(conn, &mut gathering, row.mode, now).await?;
        }
        changed.push(row.gathering_id);
    }
    // The name someone typed for them, on registrations already cancelled.
    registration::Entity::update_many()
        .col_expr(
            registration::Column::BehalfName,
            sea_orm::sea_query::Expr::value(Option::<String>::None),
        )
        .filter(registration::Column::PersonId.eq(person_id))
        .exec(conn)
        .await?;
    changed.dedup();
    Ok(changed)
}

/// Erases the access needs of one registration: the person registered, or whoever registered
/// them. The registration and its place stay.
#[tracing::instrument(skip_all, fields(registration.id = %id))]
pub async fn erase_access_needs(
    db: &Database,
    actor: &Actor,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Registration, RegistrationError> {
    let (actor_id, _) = actor.person()?;
    let txn = db.begin_write_on(Areas::GATHERINGS).await?;
    let row = registration::Entity::find_by_id(id)
        .one(&*txn)
        .await?
        .ok_or(RegistrationError::NotFound)?;
    if row.person_id != actor_id && row.registered_by != Some(actor_id) {
        return Err(RegistrationError::NotFound);
    }
    let mut active: registration::ActiveModel = row.into();
    active.access_requirements = Set(serde_json::json!([]));
    active.access_notes = Set(None);
    active.access_consent_at = Set(None);
    active.updated_at = Set(now);
    let row = sea_orm::ActiveModelTrait::update(active, &*txn).await?;
    let position = waitlist_position(&*txn, &row).await?;
    txn.commit().await?;
    Ok(Registration::from_row(row, position))
}

/// Records that a confirmed attendee has arrived; the gathering's convenors only.
pub async fn check_in(
    db: &Database,
    actor: &Actor,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Registration, RegistrationError> {
    actor.person()?;
    let txn = db.begin_write_on(Areas::GATHERINGS).await?;
    let Some(row) = registration::Entity::find_by_id(id).one(&*txn).await? else {
        // The caller's own attempt is refused as their registration of someone would be.
        if let Some(gathering_id) = attempts::gathering_of(&*txn, actor, id).await? {
            gatherings::require_convenor::<RegistrationError>(&*txn, actor, gathering_id).await?;
        }
        return Err(RegistrationError::NotFound);
    };
    gatherings::require_convenor::<RegistrationError>(&*txn, actor, row.gathering_id).await?;
    if row.status != RegistrationStatus::Confirmed {
        return Err(RegistrationError::NotConfirmed);
    }
    let row = if row.checked_in_at.is_none() {
        let mut active: registration::ActiveModel = row.into();
        active.checked_in_at = Set(Some(now));
        active.updated_at = Set(now);
        sea_orm::ActiveModelTrait::update(active, &*txn).await?
    } else {
        row
    };
    txn.commit().await?;
    Ok(Registration::from_row(row, None))
}

/// 1 + how many registrations for the same gathering and mode joined the waitlist earlier.
async fn waitlist_position(
    conn: &impl ConnectionTrait,
    row: &registration::Model,
) -> Result<Option<u64>, DbErr> {
    let Some(seq) = row
        .waitlist_seq
        .filter(|_| row.status == RegistrationStatus::Waitlisted)
    else {
        return Ok(None);
    };
    let ahead = registration::Entity::find()
        .filter(registration::Column::GatheringId.eq(row.gathering_id))
        .filter(registration::Column::Mode.eq(row.mode))
        .filter(registration::Column::Status.eq(RegistrationStatus::Waitlisted))
        .filter(registration::Column::WaitlistSeq.lt(seq))
        .count(conn)
        .await?;
    Ok(Some(ahead + 1))
}

/// Builds registrations with their waitlist positions, one query per gathering involved.
async fn with_positions(
    conn: &impl ConnectionTrait,
    rows: Vec<registration::Model>,
) -> Result<Vec<Registration>, DbErr> {
    let gathering_ids: Vec<Uuid> = rows
        .iter()
        .filter(|r| r.status == RegistrationStatus::Waitlisted)
        .map(|r| r.gathering_id)
        .collect();
    let mut ranks: HashMap<Uuid, u64> = HashMap::new();
    if !gathering_ids.is_empty() {
        let waiting: Vec<(Uuid, Uuid, AttendanceMode)> = registration::Entity::find()
            .select_only()
            .column(registration::Column::Id)
            .column(registration::Column::GatheringId)
            .column(registration::Column::Mode)
            .filter(registration::Column::GatheringId.is_in(gathering_ids))
            .filter(registration::Column::Status.eq(RegistrationStatus::Waitlisted))
            .order_by_asc(registration::Column::WaitlistSeq)
            .into_tuple()
            .all(conn)
            .await?;
        let mut counters: HashMap<(Uuid, AttendanceMode), u64> = HashMap::new();
        for (id, gathering_id, mode) in waiting {
            let n = counters.entry((gathering_id, mode)).or_insert(0);
            *n += 1;
            ranks.insert(id, *n);
        }
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let position = ranks.get(&row.id).copied();
            Registration::from_row(row, position)
        })
        .collect())
}

/// Filters for a gathering's registrations.
#[derive(Clone, Debug, Default)]
pub struct RegistrationFilter {
    pub status: Option<RegistrationStatus>,
    pub mode: Option<AttendanceMode>,
    pub has_access_needs: Option<bool>,
}

/// A gathering's registrations in the order they were made; its convenors only.
pub async fn for_gathering(
    db: &Database,
    actor: &Actor,
    gathering_id: Uuid,
    filter: &RegistrationFilter,
    page: PageRequest,
) -> Result<Page<Registration>, RegistrationError> {
    gatherings::require_convenor::<RegistrationError>(db.reads(), actor, gathering_id).await?;
    if filter.has_access_needs.is_some() {
        access::require_own_convenor(db, actor, gathering_id).await?;
    }
    let mut condition = Condition::all().add(registration::Column::GatheringId.eq(gathering_id));
    if let Some(status) = filter.status {
        condition = condition.add(registration::Column::Status.eq(status));
    }
    if let Some(mode) = filter.mode {
        condition = condition.add(registration::Column::Mode.eq(mode));
    }
    if let Some(has) = filter.has_access_needs {
        let needs = Condition::any()
            .add(registration::Column::AccessNotes.is_not_null())
            .add(sea_orm::sea_query::ExprTrait::ne(
                sea_orm::sea_query::ExprTrait::cast_as(
                    sea_orm::sea_query::Expr::col(registration::Column::AccessRequirements),
                    "text",
                ),
                "[]",
            ));
        condition = condition.add(if has { needs } else { needs.not() });
    }
    let total = if page.count_total {
        Some(
            registration::Entity::find()
                .filter(condition.clone())
                .count(db.reads())
                .await?,
        )
    } else {
        None
    };
    let mut query = registration::Entity::find()
        .filter(condition)
        .order_by_asc(registration::Column::Id);
    if let Some(after) = page.after {
        query = query.filter(registration::Column::Id.gt(after));
    }
    let rows = crate::page::rows(db.reads(), query, &page).await?;
    let page = Page::from_rows(rows, page, total);
    let items = with_positions(db.reads(), page.items).await?;
    Ok(Page {
        items,
        has_next_page: page.has_next_page,
        total_count: page.total_count,
    })
}

/// Every registration of one gathering, for the convenors' CSV export.
pub async fn all_for_gathering(
    db: &Database,
    actor: &Actor,
    gathering_id: Uuid,
) -> Result<Vec<Registration>, RegistrationError> {
    // The export carries access needs: the gathering's own convenors only, not admins.
    actor.person()?;
    if !gatherings::convenes(db.reads(), actor, gathering_id).await? {
        return Err(AccessError::Forbidden(
            "only the gathering's convenors can export its registrations",
        )
        .into());
    }
    let rows = registration::Entity::find()
        .filter(registration::Column::GatheringId.eq(gathering_id))
        .order_by_asc(registration::Column::Id)
        .all(db.reads())
        .await?;
    Ok(with_positions(db.reads(), rows).await?)
}

/// The most registrations `Person.registrations` shows: the newest this many.
pub const MAX_PERSON_REGISTRATIONS_SHOWN: u64 = 100;

/// A person's registrations, newest first (at most [`MAX_PERSON_REGISTRATIONS_SHOWN`]).
pub async fn for_person(db: &Database, person_id: Uuid) -> Result<Vec<Registration>, DbErr> {
    let rows = registration::Entity::find()
        .filter(registration::Column::PersonId.eq(person_id))
        .order_by_desc(registration::Column::Id)
        .limit(MAX_PERSON_REGISTRATIONS_SHOWN)
        .all(db.reads())
        .await?;
    with_positions(db.reads(), rows).await
}

/// The registrations `person_id` holds for each of `gathering_ids`, for batched loading.
pub async fn of_person_for(
    db: &Database,
    person_id: Uuid,
    gathering_ids: &[Uuid],
) -> Result<Vec<Registration>, DbErr> {
    if gathering_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = registration::Entity::find()
        .filter(registration::Column::PersonId.eq(person_id))
        .filter(registration::Column::GatheringId.is_in(gathering_ids.iter().copied()))
        .all(db.reads())
        .await?;
    with_positions(db.reads(), rows).await
}

/// A gathering's confirmed and waitlisted registrations (defined with the gathering, which
/// reads them with its own row on the gathering page).
pub use crate::gatherings::Counts;

/// Counts for several gatherings in one query.
pub async fn counts(db: &Database, gathering_ids: &[Uuid]) -> Result<HashMap<Uuid, Counts>, DbErr> {
    let mut counts: HashMap<Uuid, Counts> = gathering_ids
        .iter()
        .map(|id| (*id, Counts::default()))
        .collect();
    if gathering_ids.is_empty() {
        return Ok(counts);
    }
    let rows: Vec<(Uuid, RegistrationStatus, i64)> = registration::Entity::find()
        .select_only()
        .column(registration::Column::GatheringId)
        .column(registration::Column::Status)
        .column_as(registration::Column::Id.count(), "n")
        .filter(registration::Column::GatheringId.is_in(gathering_ids.iter().copied()))
        .filter(registration::Column::Status.ne(RegistrationStatus::Cancelled))
        .group_by(registration::Column::GatheringId)
        .group_by(registration::Column::Status)
        .into_tuple()
        .all(db.reads())
        .await?;
    for (gathering_id, status, n) in rows {
        let entry = counts.entry(gathering_id).or_default();
        match status {
            RegistrationStatus::Confirmed => entry.confirmed = n as u64,
            RegistrationStatus::Waitlisted => entry.waitlisted = n as u64,
            RegistrationStatus::Cancelled => {}
        }
    }
    Ok(counts)
}

/// A registration by id, for the person, whoever registered them, or the convenors.
pub async fn by_id(
    db: &Database,
    actor: &Actor,
    id: Uuid,
) -> Result<Registration, RegistrationError> {
    let (actor_id, _) = actor.person()?;
    let row = registration::Entity::find_by_id(id)
        .one(db.reads())
        .await?
        .ok_or(RegistrationError::NotFound)?;
    let allowed = row.person_id == actor_id
        || row.registered_by == Some(actor_id)
        || gatherings::is_convenor(db.reads(), actor, row.gathering_id).await?;
    if !allowed {
        return Err(RegistrationError::NotFound);
    }
    Ok(with_positions(db.reads(), vec![row]).await?.remove(0))
}

/// Rows for `my_data`: everything held in a person's registrations.
pub(crate) async fn data_of(
    conn: &impl ConnectionTrait,
    person_id: Uuid,
) -> Result<Vec<serde_json::Value>, DbErr> {
    let rows = registration::Entity::find()
        .filter(registration::Column::PersonId.eq(person_id))
        .order_by_asc(registration::Column::Id)
        .all(conn)
        .await?;
    let titles: HashMap<Uuid, String> = gathering::Entity::find()
        .filter(gathering::Column::Id.is_in(rows.iter().map(|r| r.gathering_id)))
        .all(conn)
        .await?
        .into_iter()
        .map(|g| (g.id, g.title))
        .collect();
    Ok(rows
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "gathering": titles.get(&r.gathering_id),
                "mode": r.mode,
                "status": sea_orm::ActiveEnum::to_value(&r.status),
                "companions": r.companions,
                "accessRequirements": r.access_requirements,
                "accessNotes": r.access_notes,
                "accessConsentAt": r.access_consent_at,
                "registeredBySomeoneElse": r.registered_by.is_some(),
                "checkedInAt": r.checked_in_at,
                "createdAt": r.created_at,
            })
        })
        .collect())
}
