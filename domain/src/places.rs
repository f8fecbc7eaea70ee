//! A gathering's places, below both areas that change them: the place-taking rule (a
//! registration of some places, the person and their companions, fits while the places taken
//! plus its own stay within the capacity; no capacity means no limit), the counts kept on the
//! gathering row, and the row lock every change to them takes first. `gatherings` (changing a
//! capacity, promoting from the waitlist) and `registrations` (registering, cancelling) both
//! use it, and the benchmark's scale seed uses [`fit`], so seeded data follows the same rule as
//! the running server.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QuerySelect, Select,
};
use uuid::Uuid;

use crate::entities::{enums::AttendanceMode, gathering, registration};

/// Whether `places` more fit when `taken` of `capacity` are already taken.
pub fn fit(capacity: Option<i32>, taken: i32, places: i32) -> bool {
    capacity.is_none_or(|capacity| taken.saturating_add(places) <= capacity)
}

/// Whether no place is left.
pub fn full(capacity: Option<i32>, taken: i32) -> bool {
    capacity.is_some_and(|capacity| capacity.saturating_sub(taken) <= 0)
}

/// Selects a gathering row, locking it for the transaction on PostgreSQL. (SQLite writers are
/// already one at a time.) Every change to a gathering's places takes this lock first, which is
/// what keeps confirmed places within capacity under any concurrency.
pub(crate) async fn lock(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<gathering::Model>, DbErr> {
    let query = gathering::Entity::find_by_id(id);
    let query: Select<gathering::Entity> = if conn.get_database_backend() == DbBackend::Postgres {
        query.lock_exclusive()
    } else {
        query
    };
    query.one(conn).await
}

/// The places a registration holds: the person and their companions.
pub(crate) fn of(row: &registration::Model) -> i32 {
    1 + row.companions
}

/// Takes `places` of `mode` if they fit, updating the gathering's count in memory.
pub(crate) fn take(gathering: &mut gathering::Model, mode: AttendanceMode, places: i32) -> bool {
    let (capacity, taken) = match mode {
        AttendanceMode::InPerson => (gathering.in_person_capacity, &mut gathering.in_person_taken),
        AttendanceMode::Online => (gathering.online_capacity, &mut gathering.online_taken),
    };
    if fit(capacity, *taken, places) {
        *taken += places;
        true
    } else {
        false
    }
}

/// Gives back `places` of `mode`, updating the gathering's count in memory.
pub(crate) fn release(gathering: &mut gathering::Model, mode: AttendanceMode, places: i32) {
    let taken = match mode {
        AttendanceMode::InPerson => &mut gathering.in_person_taken,
        AttendanceMode::Online => &mut gathering.online_taken,
    };
    *taken = (*taken - places).max(0);
}

/// Writes the gathering's counts (places taken, the waitlist sequence) as they are in memory.
pub(crate) async fn save(
    conn: &impl ConnectionTrait,
    gathering: &gathering::Model,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    gathering::Entity::update_many()
        .col_expr(
            gathering::Column::InPersonTaken,
            sea_orm::sea_query::Expr::value(gathering.in_person_taken),
        )
        .col_expr(
            gathering::Column::OnlineTaken,
            sea_orm::sea_query::Expr::value(gathering.online_taken),
        )
        .col_expr(
            gathering::Column::WaitlistSeq,
            sea_orm::sea_query::Expr::value(gathering.waitlist_seq),
        )
        .col_expr(
            gathering::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(gathering::Column::Id.eq(gathering.id))
        .exec(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_fits_only_whole_and_no_capacity_means_no_limit() {
        assert!(fit(Some(10), 7, 3));
        assert!(!fit(Some(10), 8, 3), "a group is never split");
        assert!(fit(None, i32::MAX, 5));
        assert!(!fit(Some(10), i32::MAX, 1), "no overflow past the capacity");
        assert!(full(Some(10), 10));
        assert!(!full(Some(10), 9));
        assert!(!full(None, 1_000_000));
    }
}
