//! What changes to a gathering do to the people registered for it: freed places go to the
//! waitlist, first fit in order, and cancelling a gathering cancels every registration (and
//! every attempt at one) and tells each person why. Here, with the gathering, because changing
//! its capacity or cancelling it does this inside the gathering's own transaction;
//! `registrations` calls [`promote`] when a cancellation frees places.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};
use uuid::Uuid;

use super::{Gathering, mail};
use crate::{
    entities::{
        enums::{AttendanceMode, RegistrationStatus},
        gathering, on_behalf_attempt, person, registration,
    },
    places,
};

/// Promotes waiting registrations for `mode`, first fit in waitlist order: the earliest whose
/// places (the person and their companions) all fit is confirmed, and so on while places
/// remain. A group is never split. Each promoted person is told by mail. The gathering row must
/// be locked by the caller's transaction.
pub(crate) async fn promote(
    conn: &impl ConnectionTrait,
    gathering: &mut gathering::Model,
    mode: AttendanceMode,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, DbErr> {
    let mut promoted = Vec::new();
    if Gathering::from(gathering.clone()).places_left(mode) == Some(0) {
        return Ok(promoted);
    }
    let waiting = registration::Entity::find()
        .filter(registration::Column::GatheringId.eq(gathering.id))
        .filter(registration::Column::Mode.eq(mode))
        .filter(registration::Column::Status.eq(RegistrationStatus::Waitlisted))
        .order_by_asc(registration::Column::WaitlistSeq)
        .all(conn)
        .await?;
    for row in waiting {
        if Gathering::from(gathering.clone()).places_left(mode) == Some(0) {
            break;
        }
        if !places::take(gathering, mode, places::of(&row)) {
            continue;
        }
        let mut active: registration::ActiveModel = row.clone().into();
        active.status = Set(RegistrationStatus::Confirmed);
        active.waitlist_seq = Set(None);
        active.updated_at = Set(now);
        let row = sea_orm::ActiveModelTrait::update(active, conn).await?;
        if let Some(person) = person::Entity::find_by_id(row.person_id).one(conn).await? {
            mail::send(
                conn,
                crate::mail::Template::RegistrationPromoted,
                gathering,
                &row,
                &person.email,
                None,
                now,
            )
            .await?;
        }
        promoted.push(row.id);
    }
    places::save(conn, gathering, now).await?;
    Ok(promoted)
}

/// Cancels every live registration of a cancelled gathering and tells each person why.
pub(crate) async fn cancel_all(
    conn: &impl ConnectionTrait,
    gathering: &gathering::Model,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    cancel_attempts(conn, gathering.id, now).await?;
    let live = registration::Entity::find()
        .filter(registration::Column::GatheringId.eq(gathering.id))
        .filter(registration::Column::Status.ne(RegistrationStatus::Cancelled))
        .all(conn)
        .await?;
    let people: HashMap<Uuid, String> = person::Entity::find()
        .filter(person::Column::Id.is_in(live.iter().map(|r| r.person_id)))
        .all(conn)
        .await?
        .into_iter()
        .map(|p| (p.id, p.email))
        .collect();
    registration::Entity::update_many()
        .col_expr(
            registration::Column::Status,
            sea_orm::sea_query::Expr::value(RegistrationStatus::Cancelled),
        )
        .col_expr(
            registration::Column::WaitlistSeq,
            sea_orm::sea_query::Expr::value(Option::<i64>::None),
        )
        .col_expr(
            registration::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(registration::Column::GatheringId.eq(gathering.id))
        .filter(registration::Column::Status.ne(RegistrationStatus::Cancelled))
        .exec(conn)
        .await?;
    for row in &live {
        if let Some(email) = people.get(&row.person_id) {
            mail::send(
                conn,
                crate::mail::Template::GatheringCancelled,
                gathering,
                row,
                email,
                None,
                now,
            )
            .await?;
        }
    }
    Ok(())
}

/// A cancelled gathering cancels its attempts with its registrations.
async fn cancel_attempts(
    conn: &impl ConnectionTrait,
    gathering_id: Uuid,
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
            on_behalf_attempt::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(on_behalf_attempt::Column::GatheringId.eq(gathering_id))
        .filter(on_behalf_attempt::Column::Status.ne(RegistrationStatus::Cancelled))
        .exec(conn)
        .await?;
    Ok(())
}
