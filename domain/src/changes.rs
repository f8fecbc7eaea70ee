//! The five changes that people who draw on social care named, and their live figures.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait,
    sea_query::LockType,
    sea_query::{Expr, ExprTrait},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    Database, InvalidInput,
    entities::{change, enums::PledgeStatus, pledge, pledge_change},
    fixed::Fixed,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Change {
    CommunitiesWhereEveryoneBelongs,
    LivingInThePlaceWeCallHome,
    LeadingTheLivesWeWantToLive,
    MoreResourcesBetterUsed,
    SharingPowerAsEquals,
}

impl Change {
    /// All five, in their published order.
    pub const ALL: [Change; 5] = [
        Change::CommunitiesWhereEveryoneBelongs,
        Change::LivingInThePlaceWeCallHome,
        Change::LeadingTheLivesWeWantToLive,
        Change::MoreResourcesBetterUsed,
        Change::SharingPowerAsEquals,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Change::CommunitiesWhereEveryoneBelongs => "COMMUNITIES_WHERE_EVERYONE_BELONGS",
            Change::LivingInThePlaceWeCallHome => "LIVING_IN_THE_PLACE_WE_CALL_HOME",
            Change::LeadingTheLivesWeWantToLive => "LEADING_THE_LIVES_WE_WANT_TO_LIVE",
            Change::MoreResourcesBetterUsed => "MORE_RESOURCES_BETTER_USED",
            Change::SharingPowerAsEquals => "SHARING_POWER_AS_EQUALS",
        }
    }

    pub fn from_code(code: &str) -> Option<Change> {
        Change::ALL.into_iter().find(|c| c.code() == code)
    }

    pub fn title(self) -> &'static str {
        match self {
            Change::CommunitiesWhereEveryoneBelongs => "Communities where everyone belongs",
            Change::LivingInThePlaceWeCallHome => "Living in the place we call home",
            Change::LeadingTheLivesWeWantToLive => "Leading the lives we want to live",
            Change::MoreResourcesBetterUsed => "More resources, better used",
            Change::SharingPowerAsEquals => "Sharing power as equals",
        }
    }
}

/// One or more of the five changes, each once, in their published order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeSet(Vec<Change>);

impl ChangeSet {
    pub fn parse(changes: impl IntoIterator<Item = Change>) -> Result<Self, InvalidInput> {
        let mut changes: Vec<Change> = changes.into_iter().collect();
        changes.sort();
        changes.dedup();
        if changes.is_empty() {
            return Err(InvalidInput::new(
                "must name at least one of the five changes",
            ));
        }
        Ok(Self(changes))
    }

    pub fn as_slice(&self) -> &[Change] {
        &self.0
    }

    pub(crate) fn codes(&self) -> Vec<&'static str> {
        self.0.iter().map(|c| c.code()).collect()
    }
}

/// One change with its figures across the movement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeSummary {
    pub change: Change,
    pub title: String,
    pub pledge_count: i32,
    pub organisation_count: i32,
    pub coalition_count: i32,
    pub progress_update_count: i32,
    pub last_progress_at: Option<DateTime<Utc>>,
}

/// The five changes with their figures. The figures are stored counters kept current by the
/// writes that move them, so this is one small read however large the movement grows.
#[tracing::instrument(skip_all)]
pub async fn summaries(db: &Database) -> Result<Vec<ChangeSummary>, DbErr> {
    static STATEMENT: Fixed = Fixed::new();
    let statement = STATEMENT.statement(db.backend(), Vec::new(), || {
        change::Entity::find()
            .order_by_asc(change::Column::Position)
            .build(db.backend())
    });
    let rows = db.reads().query_all_raw(statement).await?;
    let mut summaries = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(summary) = summary_at(row)? {
            summaries.push(summary);
        }
    }
    Ok(summaries)
}

/// A change's row decoded by position, as `Entity::find` selects its columns (in `Column`
/// order). By name, sea-orm looks each column up by hash, and decoding by position saved
/// 4% of the five changes' instructions a request (callgrind). A code this build does not know (a
/// change added by a later migration) is left out.
fn summary_at(row: &sea_orm::QueryResult) -> Result<Option<ChangeSummary>, DbErr> {
    use change::Column as C;
    let at = |column: C| column as usize;
    let code: String = row.try_get_by_index(at(C::Code))?;
    let Some(change) = Change::from_code(&code) else {
        return Ok(None);
    };
    Ok(Some(ChangeSummary {
        change,
        title: row.try_get_by_index(at(C::Title))?,
        pledge_count: row.try_get_by_index(at(C::PledgeCount))?,
        organisation_count: row.try_get_by_index(at(C::OrganisationCount))?,
        coalition_count: row.try_get_by_index(at(C::CoalitionCount))?,
        progress_update_count: row.try_get_by_index(at(C::ProgressUpdateCount))?,
        last_progress_at: row.try_get_by_index(at(C::LastProgressAt))?,
    }))
}

// The figures, kept current in the same transaction as each write that moves them:
//
// - `pledge_count`: pledges on the change that are not withdrawn (active or achieved).
// - `organisation_count`: organisations with at least one such pledge on the change.
// - `coalition_count`: coalitions ever formed focused on the change (concluded ones included:
//   they acted on it).
// - `progress_update_count`: progress updates posted against a pledge or coalition on the
//   change, counted once for each change the pledge or coalition names when it is posted.
// - `last_progress_at`: when the latest of those updates was posted.

fn in_codes(codes: &[&'static str]) -> sea_orm::sea_query::SimpleExpr {
    change::Column::Code.is_in(codes.iter().copied())
}

/// Locks the rows of `codes` in one order, the codes', before they are updated. An `UPDATE …
/// WHERE code IN (…)` locks rows in the order it happens to find them, and PostgreSQL moves a
/// row each time it is updated, so two writers counting overlapping changes (a progress update
/// and a new pledge, say) could each hold one row and wait for the other's: a deadlock, which
/// PostgreSQL breaks by failing one of them. Locked in one order, the second simply waits.
/// SQLite has one writer at a time, so it needs nothing here. A transaction that counts more
/// than once (a pledge's changes edited: some uncounted, others counted) locks all of them here
/// first, or its second count would lock out of order.
pub(crate) async fn lock_in_order(
    conn: &impl ConnectionTrait,
    codes: &[&'static str],
) -> Result<(), DbErr> {
    if codes.is_empty() || conn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    change::Entity::find()
        .select_only()
        .column(change::Column::Code)
        .filter(in_codes(codes))
        .order_by_asc(change::Column::Code)
        .lock(LockType::NoKeyUpdate)
        .into_tuple::<String>()
        .all(conn)
        .await?;
    Ok(())
}

async fn add(
    conn: &impl ConnectionTrait,
    column: change::Column,
    codes: &[&'static str],
    delta: i32,
) -> Result<(), DbErr> {
    if codes.is_empty() {
        return Ok(());
    }
    lock_in_order(conn, codes).await?;
    change::Entity::update_many()
        .col_expr(column, Expr::col(column).add(delta))
        .filter(in_codes(codes))
        .exec(conn)
        .await?;
    Ok(())
}

/// The changes (of `changes`) on which `organisation_id` holds no non-withdrawn pledge other
/// than `pledge_id`. Callers lock the organisation's row first, so on PostgreSQL two writes for
/// one organisation cannot both see "none" and count it twice.
async fn changes_without_other_pledges(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    pledge_id: Uuid,
    changes: &[Change],
) -> Result<Vec<&'static str>, DbErr> {
    let mut without = Vec::new();
    for change in changes {
        let others = pledge::Entity::find()
            .filter(pledge::Column::OrganisationId.eq(organisation_id))
            .filter(pledge::Column::Id.ne(pledge_id))
            .filter(pledge::Column::Status.ne(PledgeStatus::Withdrawn))
            .filter(
                pledge::Column::Id.in_subquery(
                    pledge_change::Entity::find()
                        .select_only()
                        .column(pledge_change::Column::PledgeId)
                        .filter(pledge_change::Column::Change.eq(change.code()))
                        .into_query(),
                ),
            )
            .count(conn)
            .await?;
        if others == 0 {
            without.push(change.code());
        }
    }
    Ok(without)
}

/// A non-withdrawn pledge now acts on `changes` (it was made, or changes were added to it).
pub(crate) async fn pledge_counted(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    pledge_id: Uuid,
    changes: &[Change],
) -> Result<(), DbErr> {
    let codes: Vec<_> = changes.iter().map(|c| c.code()).collect();
    add(conn, change::Column::PledgeCount, &codes, 1).await?;
    let first = changes_without_other_pledges(conn, organisation_id, pledge_id, changes).await?;
    add(conn, change::Column::OrganisationCount, &first, 1).await
}

/// A pledge no longer counts on `changes` (it was withdrawn, or changes were taken off it).
pub(crate) async fn pledge_uncounted(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    pledge_id: Uuid,
    changes: &[Change],
) -> Result<(), DbErr> {
    let codes: Vec<_> = changes.iter().map(|c| c.code()).collect();
    add(conn, change::Column::PledgeCount, &codes, -1).await?;
    let last = changes_without_other_pledges(conn, organisation_id, pledge_id, changes).await?;
    add(conn, change::Column::OrganisationCount, &last, -1).await
}

pub(crate) async fn coalition_formed(
    conn: &impl ConnectionTrait,
    changes: &ChangeSet,
) -> Result<(), DbErr> {
    add(conn, change::Column::CoalitionCount, &changes.codes(), 1).await
}

pub(crate) async fn progress_posted(
    conn: &impl ConnectionTrait,
    changes: &[Change],
    posted_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let codes: Vec<_> = changes.iter().map(|c| c.code()).collect();
    add(conn, change::Column::ProgressUpdateCount, &codes, 1).await?;
    if codes.is_empty() {
        return Ok(());
    }
    change::Entity::update_many()
        .col_expr(change::Column::LastProgressAt, Expr::value(posted_at))
        .filter(in_codes(&codes))
        .filter(
            change::Column::LastProgressAt
                .is_null()
                .or(change::Column::LastProgressAt.lt(posted_at)),
        )
        .exec(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_set_holds_each_change_once_in_published_order() {
        let set = ChangeSet::parse([
            Change::SharingPowerAsEquals,
            Change::CommunitiesWhereEveryoneBelongs,
            Change::SharingPowerAsEquals,
        ]);
        assert_eq!(
            set.as_ref().map(ChangeSet::as_slice),
            Ok(&[
                Change::CommunitiesWhereEveryoneBelongs,
                Change::SharingPowerAsEquals
            ][..])
        );
        assert!(ChangeSet::parse([]).is_err());
    }

    #[test]
    fn codes_round_trip() {
        for change in Change::ALL {
            assert_eq!(Change::from_code(change.code()), Some(change));
        }
        assert_eq!(Change::from_code("NOPE"), None);
    }
}
