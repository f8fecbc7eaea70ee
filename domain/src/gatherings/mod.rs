//! Gatherings: in person, online or both, with separate capacities, a registration window and
//! their convenors. Registrations against them live in `registrations`, which reads this
//! module; what a change to a gathering does to them (promotion from the waitlist, every one
//! cancelled with the gathering) and the mail they are sent live here, so this module never
//! reads `registrations`.

mod calendar;
pub(crate) mod mail;
mod waitlist;

pub use calendar::CalendarEntry;
pub use mail::{local_time, when};
pub(crate) use waitlist::{cancel_all, promote};

use crate::generations::Areas;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::{
    AccessError, Actor, Database, InvalidInput,
    db::is_unique_violation,
    entities::{
        enums::{AttendanceMode, Region, Role},
        gathering, gathering_convenor,
    },
    people::TimeZone,
    places,
    text::{self, Slug, WebUrl},
    time::Moment,
};

/// Confirmed and waitlisted registrations of one gathering (`registrations` counts them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub confirmed: u64,
    pub waitlisted: u64,
}

pub use crate::entities::enums::{GatheringFormat, GatheringStatus};

/// A number of places: 0 to 100,000. No capacity at all means unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity(i32);

impl Capacity {
    pub fn parse(value: i32) -> Result<Self, InvalidInput> {
        if (0..=100_000).contains(&value) {
            Ok(Self(value))
        } else {
            Err(InvalidInput::new(
                "must be from 0 to 100000 places (leave it out for unlimited)",
            ))
        }
    }
}

/// A gathering's title: 1 to 200 characters on one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatheringTitle(String);

impl GatheringTitle {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        text::bounded(value, 1, 200).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a gathering is about: up to 10,000 characters, lines kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatheringDescription(String);

impl GatheringDescription {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        text::bounded_multiline(value, 0, 10_000).map(Self)
    }
}

/// Where a gathering happens: its name and address, 1 to 500 characters, lines kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Venue(String);

impl Venue {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        text::bounded_multiline(value, 1, 500).map(Self)
    }
}

/// Why a gathering was cancelled, told to everyone registered: 1 to 1,000 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelReason(String);

impl CancelReason {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        text::bounded(value, 1, 1000).map(Self)
    }
}

/// The longest a gathering may last: its calendar file describes every time zone change in it.
pub const MAX_LENGTH_DAYS: i64 = 366;

/// When a gathering starts and ends: the end after the start, within [`MAX_LENGTH_DAYS`], both
/// in the years 1900 to 2200.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Times {
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
}

impl Times {
    pub fn new(starts_at: Moment, ends_at: Moment) -> Result<Self, InvalidInput> {
        let (starts_at, ends_at) = (starts_at.get(), ends_at.get());
        if ends_at <= starts_at {
            return Err(InvalidInput::new("must be after startsAt"));
        }
        if (ends_at - starts_at).num_days() >= MAX_LENGTH_DAYS {
            return Err(InvalidInput::new(format!(
                "must be less than {MAX_LENGTH_DAYS} days after startsAt"
            )));
        }
        Ok(Self { starts_at, ends_at })
    }
}

/// When registration opens and closes; either end may be open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    opens_at: Option<DateTime<Utc>>,
    closes_at: Option<DateTime<Utc>>,
}

impl Window {
    pub fn new(opens_at: Option<Moment>, closes_at: Option<Moment>) -> Result<Self, InvalidInput> {
        let (opens_at, closes_at) = (opens_at.map(Moment::get), closes_at.map(Moment::get));
        if let (Some(opens), Some(closes)) = (opens_at, closes_at)
            && closes <= opens
        {
            return Err(InvalidInput::new("must be after registrationOpensAt"));
        }
        Ok(Self {
            opens_at,
            closes_at,
        })
    }
}

/// A validated request to create a gathering.
#[derive(Clone, Debug)]
pub struct NewGathering {
    pub title: GatheringTitle,
    pub slug: Slug,
    pub description: GatheringDescription,
    pub times: Times,
    pub time_zone: TimeZone,
    pub format: GatheringFormat,
    pub area: Option<Region>,
    pub venue: Option<Venue>,
    pub joining_url: Option<WebUrl>,
    pub in_person_capacity: Option<Capacity>,
    pub online_capacity: Option<Capacity>,
    pub window: Window,
}

/// A change to a gathering; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct GatheringUpdate {
    pub title: Option<GatheringTitle>,
    pub description: Option<GatheringDescription>,
    pub times: Option<Times>,
    pub time_zone: Option<TimeZone>,
    pub area: Option<Option<Region>>,
    pub venue: Option<Option<Venue>>,
    pub joining_url: Option<Option<WebUrl>>,
    pub in_person_capacity: Option<Option<Capacity>>,
    pub online_capacity: Option<Option<Capacity>>,
    pub window: Option<Window>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gathering {
    pub id: Uuid,
    pub title: String,
    pub slug: String,
    pub description: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub time_zone: TimeZone,
    pub format: GatheringFormat,
    pub area: Option<Region>,
    pub venue: Option<String>,
    pub joining_url: Option<String>,
    pub in_person_capacity: Option<i32>,
    pub online_capacity: Option<i32>,
    pub in_person_taken: i32,
    pub online_taken: i32,
    pub registration_opens_at: Option<DateTime<Utc>>,
    pub registration_closes_at: Option<DateTime<Utc>>,
    pub status: GatheringStatus,
    pub cancel_reason: Option<String>,
    pub sequence: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Gathering {
    /// Places left for `mode`; `None` when unlimited. Zero when the format lacks the mode.
    pub fn places_left(&self, mode: AttendanceMode) -> Option<i32> {
        if !self.format.allows(mode) {
            return Some(0);
        }
        let (capacity, taken) = match mode {
            AttendanceMode::InPerson => (self.in_person_capacity, self.in_person_taken),
            AttendanceMode::Online => (self.online_capacity, self.online_taken),
        };
        capacity.map(|capacity| (capacity - taken).max(0))
    }

    /// Whether registration is open at `now`.
    pub fn registration_open(&self, now: DateTime<Utc>) -> bool {
        self.status == GatheringStatus::Published
            && self.registration_opens_at.is_none_or(|at| at <= now)
            && self.registration_closes_at.is_none_or(|at| now < at)
            && now < self.ends_at
    }
}

impl From<gathering::Model> for Gathering {
    fn from(row: gathering::Model) -> Self {
        Self {
            id: row.id,
            title: row.title,
            slug: row.slug,
            description: row.description,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            time_zone: TimeZone::parse(&row.time_zone).unwrap_or(TimeZone::LONDON),
            format: row.format,
            area: row.area,
            venue: row.venue,
            joining_url: row.joining_url,
            in_person_capacity: row.in_person_capacity,
            online_capacity: row.online_capacity,
            in_person_taken: row.in_person_taken,
            online_taken: row.online_taken,
            registration_opens_at: row.registration_opens_at,
            registration_closes_at: row.registration_closes_at,
            status: row.status,
            cancel_reason: row.cancel_reason,
            sequence: row.sequence,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatheringError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("No gathering has that id.")]
    NotFound,
    #[error("Another gathering already uses the slug \"{0}\".")]
    SlugTaken(String),
    #[error("This gathering has been cancelled.")]
    Cancelled,
    #[error("This gathering is already published.")]
    AlreadyPublished,
    #[error("{0}")]
    CapacityBelowTaken(String),
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// Whether the actor may run `gathering_id`: one of its convenors, or an admin.
pub(crate) async fn is_convenor(
    conn: &impl ConnectionTrait,
    actor: &Actor,
    gathering_id: Uuid,
) -> Result<bool, DbErr> {
    match actor {
        Actor::Person {
            role: Role::Admin, ..
        } => Ok(true),
        Actor::Person { person_id, .. } => Ok(gathering_convenor::Entity::find_by_id((
            gathering_id,
            *person_id,
        ))
        .one(conn)
        .await?
        .is_some()),
        _ => Ok(false),
    }
}

pub(crate) async fn require_convenor<E>(
    conn: &impl ConnectionTrait,
    actor: &Actor,
    gathering_id: Uuid,
) -> Result<(), E>
where
    E: From<AccessError> + From<DbErr>,
{
    actor.person()?;
    if is_convenor(conn, actor, gathering_id).await? {
        Ok(())
    } else {
        Err(AccessError::Forbidden("only the gathering's convenors can do this").into())
    }
}

/// Whether the actor is one of the gathering's own convenors. Unlike [`is_convenor`], being an
/// admin is not enough: access needs and the joining link are for the people who run the day.
pub(crate) async fn convenes(
    conn: &impl ConnectionTrait,
    actor: &Actor,
    gathering_id: Uuid,
) -> Result<bool, DbErr> {
    match actor {
        Actor::Person { person_id, .. } => Ok(gathering_convenor::Entity::find_by_id((
            gathering_id,
            *person_id,
        ))
        .one(conn)
        .await?
        .is_some()),
        _ => Ok(false),
    }
}

/// Which of `gathering_ids` the person convenes, in one statement: [`convenes`] for a page of
/// rows at once.
pub async fn convened_by(
    db: &Database,
    person_id: Uuid,
    gathering_ids: &[Uuid],
) -> Result<std::collections::HashSet<Uuid>, DbErr> {
    if gathering_ids.is_empty() {
        return Ok(std::collections::HashSet::new());
    }
    Ok(gathering_convenor::Entity::find()
        .filter(gathering_convenor::Column::PersonId.eq(person_id))
        .filter(gathering_convenor::Column::GatheringId.is_in(gathering_ids.iter().copied()))
        .all(db.reads())
        .await?
        .into_iter()
        .map(|row| row.gathering_id)
        .collect())
}

pub(crate) fn may_see_drafts(actor: &Actor) -> bool {
    matches!(
        actor,
        Actor::Person {
            role: Role::Convenor | Role::Admin,
            ..
        }
    )
}

/// Creates a draft gathering; convenors and admins only. The creator becomes its convenor.
#[tracing::instrument(skip_all, fields(gathering.slug = %new.slug))]
pub async fn create(
    db: &Database,
    actor: &Actor,
    new: NewGathering,
    now: DateTime<Utc>,
) -> Result<Gathering, GatheringError> {
    let (person_id, role) = actor.person()?;
    if !matches!(role, Role::Convenor | Role::Admin) {
        return Err(AccessError::Forbidden("only convenors create gatherings").into());
    }
    let row = gathering::Model {
        id: Uuid::now_v7(),
        title: new.title.0,
        slug: new.slug.as_str().to_owned(),
        description: new.description.0,
        starts_at: new.times.starts_at,
        ends_at: new.times.ends_at,
        time_zone: new.time_zone.name().to_owned(),
        format: new.format,
        area: new.area,
        venue: new.venue.map(|v| v.0),
        joining_url: new.joining_url.map(|url| url.as_str().to_owned()),
        in_person_capacity: new.in_person_capacity.map(|c| c.0),
        online_capacity: new.online_capacity.map(|c| c.0),
        in_person_taken: 0,
        online_taken: 0,
        waitlist_seq: 0,
        registration_opens_at: new.window.opens_at,
        registration_closes_at: new.window.closes_at,
        status: GatheringStatus::Draft,
        cancel_reason: None,
        access_totals: None,
        sequence: 0,
        created_at: now,
        updated_at: now,
    };
    let txn = db.begin_write_on(Areas::GATHERINGS).await?;
    if let Err(err) = gathering::Entity::insert(gathering::ActiveModel::from(row.clone()))
        .exec_without_returning(&*txn)
        .await
    {
        return Err(if is_unique_violation(&err) {
            GatheringError::SlugTaken(row.slug)
        } else {
            err.into()
        });
    }
    gathering_convenor::Entity::insert(gathering_convenor::ActiveModel {
        gathering_id: Set(row.id),
        person_id: Set(person_id),
    })
    .exec_without_returning(&*txn)
    .await?;
    txn.commit().await?;
    Ok(row.into())
}

/// Changes a gathering; its convenors only. Raising a capacity promotes waiting people at
/// once; lowering it below the places already confirmed is refused.
#[tracing::instrument(skip_all, fields(gathering.id = %id))]
pub async fn update(
    db: &Database,
    actor: &Actor,
    id: Uuid,
    update: GatheringUpdate,
    now: DateTime<Utc>,
) -> Result<Gathering, GatheringError> {
    actor.person()?;
    let _queue = db.serialize(id).await;
    let txn = db.begin_write_on(Areas::GATHERINGS).await?;
    let row = places::lock(&*txn, id)
        .await?
        .ok_or(GatheringError::NotFound)?;
    require_convenor::<GatheringError>(&*txn, actor, id).await?;
    if row.status == GatheringStatus::Cancelled {
        return Err(GatheringError::Cancelled);
    }
    let mut next = row.clone();
    if let Some(title) = update.title {
        next.title = title.0;
    }
    if let Some(description) = update.description {
        next.description = description.0;
    }
    if let Some(times) = update.times {
        next.starts_at = times.starts_at;
        next.ends_at = times.ends_at;
    }
    if let Some(zone) = update.time_zone {
        next.time_zone = zone.name().to_owned();
    }
    if let Some(area) = update.area {
        next.area = area;
    }
    if let Some(venue) = update.venue {
        next.venue = venue.map(|v| v.0);
    }
    if let Some(url) = update.joining_url {
        next.joining_url = url.map(|u| u.as_str().to_owned());
    }
    if let Some(window) = update.window {
        next.registration_opens_at = window.opens_at;
        next.registration_closes_at = window.closes_at;
    }
    for (mode, capacity) in [
        (AttendanceMode::InPerson, update.in_person_capacity),
        (AttendanceMode::Online, update.online_capacity),
    ] {
        let Some(capacity) = capacity else { continue };
        let capacity = capacity.map(|c| c.0);
        let taken = match mode {
            AttendanceMode::InPerson => next.in_person_taken,
            AttendanceMode::Online => next.online_taken,
        };
        if let Some(capacity) = capacity
            && capacity < taken
        {
            return Err(GatheringError::CapacityBelowTaken(format!(
                "{taken} {} places are already confirmed; the capacity cannot go below that.",
                match mode {
                    AttendanceMode::InPerson => "in-person",
                    AttendanceMode::Online => "online",
                }
            )));
        }
        match mode {
            AttendanceMode::InPerson => next.in_person_capacity = capacity,
            AttendanceMode::Online => next.online_capacity = capacity,
        }
    }
    next.sequence += 1;
    next.updated_at = now;
    // A model turned into an active model is all unchanged, which saves nothing: every column
    // is marked to be written, the key kept as the row to write.
    let mut active =
        sea_orm::ActiveModelTrait::reset_all(gathering::ActiveModel::from(next.clone()));
    active.id = sea_orm::ActiveValue::Unchanged(id);
    let mut saved = sea_orm::ActiveModelTrait::update(active, &*txn).await?;
    if next.status == GatheringStatus::Published {
        for mode in [AttendanceMode::InPerson, AttendanceMode::Online] {
            promote(&*txn, &mut saved, mode, now).await?;
        }
    }
    txn.commit().await?;
    Ok(saved.into())
}

/// Opens a draft gathering to registration; its convenors only.
pub async fn publish(
    db: &Database,
    actor: &Actor,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Gathering, GatheringError> {
    actor.person()?;
    let _queue = db.serialize(id).await;
    let txn = db.begin_write_on(Areas::GATHERINGS).await?;
    let row = places::lock(&*txn, id)
        .await?
        .ok_or(GatheringError::NotFound)?;
    require_convenor::<GatheringError>(&*txn, actor, id).await?;
    match row.status {
        GatheringStatus::Cancelled => return Err(GatheringError::Cancelled),
        GatheringStatus::Published => return Err(GatheringError::AlreadyPublished),
        GatheringStatus::Draft => {}
    }
    let mut active: gathering::ActiveModel = row.into();
    active.status = Set(GatheringStatus::Published);
    active.updated_at = Set(now);
    let saved = sea_orm::ActiveModelTrait::update(active, &*txn).await?;
    txn.commit().await?;
    Ok(saved.into())
}

/// Cancels a gathering and every registration for it, telling each person why.
#[tracing::instrument(skip_all, fields(gathering.id = %id))]
pub async fn cancel(
    db: &Database,
    actor: &Actor,
    id: Uuid,
    reason: CancelReason,
    now: DateTime<Utc>,
) -> Result<Gathering, GatheringError> {
    actor.person()?;
    let _queue = db.serialize(id).await;
    let txn = db.begin_write_on(Areas::GATHERINGS).await?;
    let row = places::lock(&*txn, id)
        .await?
        .ok_or(GatheringError::NotFound)?;
    require_convenor::<GatheringError>(&*txn, actor, id).await?;
    if row.status == GatheringStatus::Cancelled {
        return Err(GatheringError::Cancelled);
    }
    let mut active: gathering::ActiveModel = row.into();
    active.status = Set(GatheringStatus::Cancelled);
    active.cancel_reason = Set(Some(reason.0));
    active.in_person_taken = Set(0);
    active.online_taken = Set(0);
    active.sequence = Set(active.sequence.as_ref() + 1);
    active.updated_at = Set(now);
    let saved = sea_orm::ActiveModelTrait::update(active, &*txn).await?;
    cancel_all(&*txn, &saved, now).await?;
    txn.commit().await?;
    Ok(saved.into())
}

/// A gathering by slug. Drafts are shown to convenors and admins only.
pub async fn by_slug(db: &Database, actor: &Actor, slug: &str) -> Result<Option<Gathering>, DbErr> {
    let row = gathering::Entity::find()
        .filter(gathering::Column::Slug.eq(slug.trim()))
        .one(db.reads())
        .await?;
    Ok(row
        .filter(|g| g.status != GatheringStatus::Draft || may_see_drafts(actor))
        .map(Gathering::from))
}

/// A gathering by id, whatever its status (callers decide what to show).
pub async fn by_id(db: &Database, id: Uuid) -> Result<Option<Gathering>, DbErr> {
    Ok(gathering::Entity::find_by_id(id)
        .one(db.reads())
        .await?
        .map(Gathering::from))
}

/// Gatherings by id, for batched loading.
pub async fn by_ids(db: &Database, ids: &[Uuid]) -> Result<Vec<Gathering>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(gathering::Entity::find()
        .filter(gathering::Column::Id.is_in(ids.iter().copied()))
        .all(db.reads())
        .await?
        .into_iter()
        .map(Gathering::from)
        .collect())
}

/// Which gatherings to list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum When {
    /// Not yet ended, soonest first.
    #[default]
    Upcoming,
    /// Ended, most recent first.
    Past,
}

#[derive(Clone, Debug, Default)]
pub struct GatheringFilter {
    pub when: When,
    pub format: Option<GatheringFormat>,
    pub area: Option<Region>,
}

/// A page of gatherings: upcoming soonest first, or past most recent first. Drafts appear only
/// to convenors and admins. `offset` and `first` come from the connection's cursor.
pub async fn list(
    db: &Database,
    actor: &Actor,
    filter: &GatheringFilter,
    offset: u64,
    first: u64,
    now: DateTime<Utc>,
) -> Result<(Vec<Gathering>, u64), DbErr> {
    let mut condition = Condition::all();
    condition = match filter.when {
        When::Upcoming => condition.add(gathering::Column::EndsAt.gt(now)),
        When::Past => condition.add(gathering::Column::EndsAt.lte(now)),
    };
    if !may_see_drafts(actor) {
        condition = condition.add(gathering::Column::Status.ne(GatheringStatus::Draft));
    }
    if let Some(format) = filter.format {
        condition = condition.add(gathering::Column::Format.eq(format));
    }
    if let Some(area) = filter.area {
        condition = condition.add(gathering::Column::Area.eq(area));
    }
    let total = gathering::Entity::find()
        .filter(condition.clone())
        .count(db.reads())
        .await?;
    let query = gathering::Entity::find().filter(condition);
    let query = match filter.when {
        When::Upcoming => query.order_by_asc(gathering::Column::StartsAt),
        When::Past => query.order_by_desc(gathering::Column::StartsAt),
    };
    let rows = query
        .order_by_asc(gathering::Column::Id)
        .offset(offset)
        .limit(first)
        .all(db.reads())
        .await?;
    Ok((rows.into_iter().map(Gathering::from).collect(), total))
}

/// The people who convene a gathering.
pub async fn convenor_ids(db: &Database, gathering_id: Uuid) -> Result<Vec<Uuid>, DbErr> {
    Ok(gathering_convenor::Entity::find()
        .filter(gathering_convenor::Column::GatheringId.eq(gathering_id))
        .all(db.reads())
        .await?
        .into_iter()
        .map(|c| c.person_id)
        .collect())
}

/// Published gatherings that have not ended by `now`, soonest first, at most `limit`: what a
/// digest shows.
pub async fn upcoming_published(
    db: &Database,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Gathering>, DbErr> {
    Ok(gathering::Entity::find()
        .filter(gathering::Column::Status.eq(GatheringStatus::Published))
        .filter(gathering::Column::EndsAt.gt(now))
        .order_by_asc(gathering::Column::StartsAt)
        .order_by_asc(gathering::Column::Id)
        .limit(limit)
        .all(db.reads())
        .await?
        .into_iter()
        .map(Gathering::from)
        .collect())
}
