//! People: who they are, their role, their digest preferences, and passwordless sign-in.

mod sign_in;

pub(crate) use sign_in::create_session;
pub use sign_in::{
    NewSession, SESSION_TOKEN_PREFIX, SIGN_IN_LINK_LIFETIME, SIGN_IN_PURPOSE,
    SIGN_IN_REQUESTS_PER_HOUR, request_sign_in, sign_in, sign_out,
};

use crate::generations::Areas;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    entity::prelude::*, sea_query::OnConflict,
};
use uuid::Uuid;

use crate::{AccessError, Actor, Database, InvalidInput, changes::Change, entities::person, text};

pub use crate::entities::enums::{DigestFrequency, Role};
pub use crate::text::EmailAddress;

/// An IANA time zone name, such as `Europe/London`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeZone(chrono_tz::Tz);

impl TimeZone {
    pub const LONDON: TimeZone = TimeZone(chrono_tz::Europe::London);

    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        value
            .trim()
            .parse::<chrono_tz::Tz>()
            .map(Self)
            .map_err(|_| InvalidInput::new("is not a time zone name, like Europe/London"))
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    pub fn tz(self) -> chrono_tz::Tz {
        self.0
    }
}

/// A person's display name: 1 to 100 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        text::bounded(value, 1, 100).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// When and what a person's email digest holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestPreferences {
    pub frequency: DigestFrequency,
    /// ISO weekday for weekly digests: 1 is Monday, 7 is Sunday.
    pub weekday: u8,
    /// Local hour of the day, 0 to 23.
    pub hour: u8,
    pub time_zone: TimeZone,
    /// The changes of interest; empty means all five.
    pub changes: Vec<Change>,
    pub send_empty: bool,
}

impl DigestPreferences {
    /// Convenors hear weekly, on Monday at 08:00 in London, until they choose otherwise.
    pub fn convenor_default() -> Self {
        Self {
            frequency: DigestFrequency::Weekly,
            ..Self::attendee_default()
        }
    }

    /// Everyone else hears nothing until they opt in.
    pub fn attendee_default() -> Self {
        Self {
            frequency: DigestFrequency::Never,
            weekday: 1,
            hour: 8,
            time_zone: TimeZone::LONDON,
            changes: Vec::new(),
            send_empty: false,
        }
    }
}

/// A change to digest preferences; absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DigestPreferencesUpdate {
    pub frequency: Option<DigestFrequency>,
    pub weekday: Option<Weekday>,
    pub hour: Option<HourOfDay>,
    pub time_zone: Option<TimeZone>,
    pub changes: Option<Vec<Change>>,
    pub send_empty: Option<bool>,
}

/// ISO weekday, 1 (Monday) to 7 (Sunday).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weekday(u8);

impl Weekday {
    pub fn parse(value: i32) -> Result<Self, InvalidInput> {
        match u8::try_from(value) {
            Ok(day @ 1..=7) => Ok(Self(day)),
            _ => Err(InvalidInput::new("must be 1 (Monday) to 7 (Sunday)")),
        }
    }
}

/// An hour of the day, 0 to 23.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HourOfDay(u8);

impl HourOfDay {
    pub fn parse(value: i32) -> Result<Self, InvalidInput> {
        match u8::try_from(value) {
            Ok(hour @ 0..=23) => Ok(Self(hour)),
            _ => Err(InvalidInput::new("must be an hour from 0 to 23")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    pub id: Uuid,
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub digest: DigestPreferences,
    pub email_consent: bool,
    /// Pages and mail in easy read: short sentences, everyday words, a picture by each point.
    pub prefers_easy_read: bool,
    pub created_at: DateTime<Utc>,
}

impl From<person::Model> for Person {
    fn from(row: person::Model) -> Self {
        let changes = serde_json::from_value::<Vec<Change>>(row.digest_changes).unwrap_or_default();
        Person {
            id: row.id,
            email: row.email,
            display_name: row.display_name,
            role: row.role,
            digest: DigestPreferences {
                frequency: row.digest_frequency,
                weekday: u8::try_from(row.digest_weekday).unwrap_or(1),
                hour: u8::try_from(row.digest_hour).unwrap_or(8),
                time_zone: TimeZone::parse(&row.time_zone).unwrap_or(TimeZone::LONDON),
                changes,
                send_empty: row.digest_send_empty,
            },
            email_consent: row.email_consent,
            prefers_easy_read: row.prefers_easy_read,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("This sign-in link has expired or has already been used. Ask for a new one.")]
    SignInLinkInvalid,
    #[error("Too many sign-in links were asked for this address. Wait an hour and try again.")]
    TooManySignInRequests,
    #[error("No such person.")]
    NotFound,
    #[error(
        "You are the only owner of {0}. Make someone else an owner first (hand it over), then erase your data."
    )]
    LastOwner(String),
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// Finds the person with `email`, creating them (as an attendee) if they are new. Safe against
/// two first sign-ins racing: the unique email key decides, and both read the same row.
pub(crate) async fn find_or_create(
    conn: &impl ConnectionTrait,
    email: &EmailAddress,
    now: DateTime<Utc>,
) -> Result<person::Model, DbErr> {
    let defaults = DigestPreferences::attendee_default();
    person::Entity::insert(person::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email.as_str().to_owned()),
        display_name: Set(None),
        role: Set(Role::Attendee),
        time_zone: Set(defaults.time_zone.name().to_owned()),
        digest_frequency: Set(defaults.frequency),
        digest_weekday: Set(i16::from(defaults.weekday)),
        digest_hour: Set(i16::from(defaults.hour)),
        digest_changes: Set(serde_json::json!([])),
        digest_send_empty: Set(defaults.send_empty),
        digest_chosen: Set(false),
        email_consent: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        erased_at: Set(None),
        prefers_easy_read: Set(false),
    })
    .on_conflict(
        OnConflict::column(person::Column::Email)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    person::Entity::find()
        .filter(person::Column::Email.eq(email.as_str()))
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("person just inserted".to_owned()))
}

pub async fn by_id(db: &Database, id: Uuid) -> Result<Option<Person>, DbErr> {
    Ok(person::Entity::find_by_id(id)
        .one(db.reads())
        .await?
        .map(Person::from))
}

/// People by id, for batched loading.
pub async fn by_ids(db: &Database, ids: &[Uuid]) -> Result<Vec<Person>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(person::Entity::find()
        .filter(person::Column::Id.is_in(ids.iter().copied()))
        .all(db.reads())
        .await?
        .into_iter()
        .map(Person::from)
        .collect())
}

/// Makes the person with `email` a convenor, an admin or an attendee, creating them if new.
/// Until a person chooses their digest themselves, their role decides it: convenors and admins
/// hear weekly, attendees never; this holds for someone who signed in before being made
/// convenor too.
#[tracing::instrument(skip_all, fields(person.role = ?role))]
pub async fn grant_role(
    db: &Database,
    email: &EmailAddress,
    role: Role,
    now: DateTime<Utc>,
) -> Result<Person, PeopleError> {
    let txn = db.begin_write_on(Areas::NONE).await?;
    let row = find_or_create(&*txn, email, now).await?;
    let chosen = row.digest_chosen;
    let mut active: person::ActiveModel = row.into();
    active.role = Set(role);
    active.updated_at = Set(now);
    if !chosen {
        let defaults = match role {
            Role::Attendee => DigestPreferences::attendee_default(),
            Role::Convenor | Role::Admin => DigestPreferences::convenor_default(),
        };
        active.digest_frequency = Set(defaults.frequency);
    }
    let row = active.update(&*txn).await?;
    txn.commit().await?;
    Ok(row.into())
}

/// Updates the signed-in person's digest preferences.
#[tracing::instrument(skip_all)]
pub async fn update_digest_preferences(
    db: &Database,
    actor: &Actor,
    update: DigestPreferencesUpdate,
    now: DateTime<Utc>,
) -> Result<Person, PeopleError> {
    let (person_id, _) = actor.person()?;
    let txn = db.begin_write_on(Areas::NONE).await?;
    let row = person::Entity::find_by_id(person_id)
        .one(&*txn)
        .await?
        .ok_or(PeopleError::NotFound)?;
    let mut active: person::ActiveModel = row.into();
    if let Some(frequency) = update.frequency {
        active.digest_frequency = Set(frequency);
    }
    if let Some(Weekday(day)) = update.weekday {
        active.digest_weekday = Set(i16::from(day));
    }
    if let Some(HourOfDay(hour)) = update.hour {
        active.digest_hour = Set(i16::from(hour));
    }
    if let Some(zone) = update.time_zone {
        active.time_zone = Set(zone.name().to_owned());
    }
    if let Some(mut changes) = update.changes {
        changes.sort();
        changes.dedup();
        active.digest_changes = Set(serde_json::to_value(changes).unwrap_or_default());
    }
    if let Some(send_empty) = update.send_empty {
        active.digest_send_empty = Set(send_empty);
    }
    active.digest_chosen = Set(true);
    active.updated_at = Set(now);
    let row = active.update(&*txn).await?;
    txn.commit().await?;
    Ok(row.into())
}

/// Sets the signed-in person's own preferences; `None` leaves one as it is.
#[tracing::instrument(skip_all)]
pub async fn update_my_preferences(
    db: &Database,
    actor: &Actor,
    prefers_easy_read: Option<bool>,
    now: DateTime<Utc>,
) -> Result<Person, PeopleError> {
    let (person_id, _) = actor.person()?;
    let txn = db.begin_write_on(Areas::NONE).await?;
    let row = person::Entity::find_by_id(person_id)
        .one(&*txn)
        .await?
        .ok_or(PeopleError::NotFound)?;
    let mut active: person::ActiveModel = row.into();
    if let Some(easy) = prefers_easy_read {
        active.prefers_easy_read = Set(easy);
    }
    active.updated_at = Set(now);
    let row = active.update(&*txn).await?;
    txn.commit().await?;
    Ok(row.into())
}

/// Sets the signed-in person's display name.
pub async fn update_profile(
    db: &Database,
    actor: &Actor,
    display_name: Option<DisplayName>,
    now: DateTime<Utc>,
) -> Result<Person, PeopleError> {
    let (person_id, _) = actor.person()?;
    let txn = db.begin_write_on(Areas::ALL).await?;
    let row = person::Entity::find_by_id(person_id)
        .one(&*txn)
        .await?
        .ok_or(PeopleError::NotFound)?;
    let mut active: person::ActiveModel = row.into();
    active.display_name = Set(display_name.map(|name| name.0));
    active.updated_at = Set(now);
    let row = active.update(&*txn).await?;
    txn.commit().await?;
    Ok(row.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_are_iana_names() {
        assert_eq!(
            TimeZone::parse("Asia/Kolkata").map(TimeZone::name),
            Ok("Asia/Kolkata")
        );
        assert!(TimeZone::parse("Mars/Olympus").is_err());
    }

    #[test]
    fn weekdays_and_hours_are_bounded() {
        assert!(Weekday::parse(0).is_err());
        assert!(Weekday::parse(7).is_ok());
        assert!(HourOfDay::parse(24).is_err());
        assert!(HourOfDay::parse(0).is_ok());
    }
}
