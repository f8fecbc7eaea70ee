//! Registering someone who already holds a place the caller did not make. Refusing it would
//! tell the caller that the person is registered (and so something of their life), so it is
//! answered as a new registration would be: the place or waitlist position a new one would get,
//! the name typed, counted against the caller's limits. What the caller gets is an attempt, kept
//! apart from the person's own registration, which stays exactly as it was; the caller can
//! cancel it as they could cancel a registration they made.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
};
use uuid::Uuid;

use super::{AttendanceMode, Registration, RegistrationStatus, batch::Waiting};
use crate::entities::{on_behalf_attempt, registration};

/// The caller's live attempt for this person and gathering: asking again answers it again, as
/// registering again returns the registration.
pub(super) async fn live(
    conn: &impl ConnectionTrait,
    waiting: &Waiting,
    gathering_id: Uuid,
) -> Result<Option<on_behalf_attempt::Model>, DbErr> {
    on_behalf_attempt::Entity::find()
        .filter(on_behalf_attempt::Column::RegistrarId.eq(waiting.actor_id))
        .filter(on_behalf_attempt::Column::GatheringId.eq(gathering_id))
        .filter(on_behalf_attempt::Column::PersonId.eq(waiting.person_id))
        .filter(on_behalf_attempt::Column::Status.ne(RegistrationStatus::Cancelled))
        .one(conn)
        .await
}

/// How many registrations wait for `mode` at the gathering now.
pub(super) async fn waiting_count(
    conn: &impl ConnectionTrait,
    gathering_id: Uuid,
    mode: AttendanceMode,
) -> Result<u64, DbErr> {
    registration::Entity::find()
        .filter(registration::Column::GatheringId.eq(gathering_id))
        .filter(registration::Column::Mode.eq(mode))
        .filter(registration::Column::Status.eq(RegistrationStatus::Waitlisted))
        .count(conn)
        .await
}

pub(super) async fn record(
    conn: &impl ConnectionTrait,
    waiting: &Waiting,
    gathering_id: Uuid,
    mode: AttendanceMode,
    waitlist_position: Option<u64>,
) -> Result<on_behalf_attempt::Model, DbErr> {
    let row = on_behalf_attempt::Model {
        id: Uuid::now_v7(),
        registrar_id: waiting.actor_id,
        gathering_id,
        person_id: waiting.person_id,
        mode,
        status: if waitlist_position.is_some() {
            RegistrationStatus::Waitlisted
        } else {
            RegistrationStatus::Confirmed
        },
        waitlist_position: waitlist_position.map(|p| i64::try_from(p).unwrap_or(i64::MAX)),
        companions: waiting.new.companions.0,
        behalf_name: waiting
            .new
            .on_behalf_of
            .as_ref()
            .map(|behalf| behalf.name.as_str().to_owned())
            .unwrap_or_default(),
        created_at: waiting.now,
        updated_at: waiting.now,
    };
    on_behalf_attempt::Entity::insert(on_behalf_attempt::ActiveModel::from(row.clone()))
        .exec_without_returning(conn)
        .await?;
    Ok(row)
}

/// The attempt as its registrar sees it: what a registration they made would show them.
pub(super) fn as_registration(row: on_behalf_attempt::Model) -> Registration {
    Registration {
        id: row.id,
        gathering_id: row.gathering_id,
        person_id: row.person_id,
        mode: row.mode,
        status: row.status,
        waitlist_position: (row.status == RegistrationStatus::Waitlisted)
            .then(|| row.waitlist_position.and_then(|p| u64::try_from(p).ok()))
            .flatten(),
        companions: row.companions,
        access_requirements: Vec::new(),
        access_notes: None,
        registered_by: Some(row.registrar_id),
        behalf_name: Some(row.behalf_name),
        checked_in_at: None,
        created_at: row.created_at,
    }
}

/// Cancels `id` if it is one of `registrar`'s attempts: `None` when it is not.
pub(super) async fn cancel(
    conn: &impl ConnectionTrait,
    registrar: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Result<Registration, super::RegistrationError>>, DbErr> {
    let Some(row) = on_behalf_attempt::Entity::find_by_id(id)
        .filter(on_behalf_attempt::Column::RegistrarId.eq(registrar))
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    if row.status == RegistrationStatus::Cancelled {
        return Ok(Some(Err(super::RegistrationError::AlreadyCancelled)));
    }
    let mut active: on_behalf_attempt::ActiveModel = row.into();
    active.status = Set(RegistrationStatus::Cancelled);
    active.waitlist_position = Set(None);
    active.updated_at = Set(now);
    match sea_orm::ActiveModelTrait::update(active, conn).await {
        Ok(row) => Ok(Some(Ok(as_registration(row)))),
        // Erased meanwhile.
        Err(DbErr::RecordNotUpdated) => Ok(None),
        Err(err) => Err(err),
    }
}

/// The gathering of `id`, if it is one of the signed-in caller's attempts.
pub(super) async fn gathering_of(
    conn: &impl ConnectionTrait,
    actor: &crate::Actor,
    id: Uuid,
) -> Result<Option<Uuid>, DbErr> {
    let crate::Actor::Person { person_id, .. } = actor else {
        return Ok(None);
    };
    Ok(on_behalf_attempt::Entity::find_by_id(id)
        .filter(on_behalf_attempt::Column::RegistrarId.eq(*person_id))
        .one(conn)
        .await?
        .map(|row| row.gathering_id))
}

/// Live attempts `registrar` has for one gathering, and any made or changed in the last hour:
/// counted with their registrations for others, so the limits answer alike.
pub(super) async fn made_by(
    conn: &impl ConnectionTrait,
    registrar: Uuid,
    gathering_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(u64, u64), DbErr> {
    let for_gathering = on_behalf_attempt::Entity::find()
        .filter(on_behalf_attempt::Column::RegistrarId.eq(registrar))
        .filter(on_behalf_attempt::Column::GatheringId.eq(gathering_id))
        .filter(on_behalf_attempt::Column::Status.ne(RegistrationStatus::Cancelled))
        .count(conn)
        .await?;
    let last_hour = on_behalf_attempt::Entity::find()
        .filter(on_behalf_attempt::Column::RegistrarId.eq(registrar))
        .filter(
            on_behalf_attempt::Column::UpdatedAt
                .gt(crate::time::before(now, chrono::TimeDelta::hours(1))),
        )
        .count(conn)
        .await?;
    Ok((for_gathering, last_hour))
}

/// Erasure: attempts naming the person are cancelled and lose the name typed for them, as a
/// registration made for them would be cancelled; those the person made for others go.
pub(crate) async fn erase_for_person(
    conn: &impl ConnectionTrait,
    person_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    on_behalf_attempt::Entity::update_many()
        .col_expr(
            on_behalf_attempt::Column::Status,
            sea_orm::sea_query::Expr::value(RegistrationStatus::Cancelled),
        )
        .col_expr(
            on_behalf_attempt::Column::WaitlistPosition,
            sea_orm::sea_query::Expr::value(Option::<i64>::None),
        )
        .col_expr(
            on_behalf_attempt::Column::BehalfName,
            sea_orm::sea_query::Expr::value(String::new()),
        )
        .col_expr(
            on_behalf_attempt::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(on_behalf_attempt::Column::PersonId.eq(person_id))
        .exec(conn)
        .await?;
    on_behalf_attempt::Entity::delete_many()
        .filter(on_behalf_attempt::Column::RegistrarId.eq(person_id))
        .exec(conn)
        .await?;
    Ok(())
}
