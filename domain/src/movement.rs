//! The movement at a glance for a period: pledges made, organisations pledging, coalitions
//! active and updates posted, in all and by change and by region. Each figure is one grouped
//! query, however many rows the period holds.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DbErr, QueryResult,
    sea_query::{Condition, Expr, ExprTrait, Func, Query, SelectStatement},
};

use crate::{
    Database,
    changes::Change,
    entities::{coalition, coalition_change, organisation, pledge, pledge_change, progress_update},
    organisations::Region,
};

/// The figures for one group (the whole movement, one change or one region).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// Pledges made in the period (withdrawn since or not).
    pub pledges_made: i64,
    /// Organisations that made at least one of those pledges.
    pub organisations_pledging: i64,
    /// Coalitions formed before the period ended and not concluded before it began (by region:
    /// by their lead's region).
    pub active_coalitions: i64,
    /// Progress updates posted in the period (by region: by the posting organisation's region).
    pub updates_posted: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MovementSummary {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub totals: Figures,
    /// All five changes, in published order.
    pub by_change: Vec<(Change, Figures)>,
    /// Regions with any figure above zero, in the order of the `Region` enum.
    pub by_region: Vec<(Region, Figures)>,
}

/// One grouped count query's rows: the group's key (or none for totals) and its counts.
async fn rows(db: &Database, statement: &SelectStatement) -> Result<Vec<QueryResult>, DbErr> {
    db.reads()
        .query_all_raw(db.backend().build(statement))
        .await
}

fn count(row: &QueryResult, index: usize) -> Result<i64, DbErr> {
    row.try_get_by_index::<i64>(index)
        .map_err(|e| DbErr::Type(format!("{e:?}")))
}

fn pledges_made(from: DateTime<Utc>, to: DateTime<Utc>) -> SelectStatement {
    Query::select()
        .expr(Func::count(Expr::col((pledge::Entity, pledge::Column::Id))))
        .expr(Func::count_distinct(Expr::col((
            pledge::Entity,
            pledge::Column::OrganisationId,
        ))))
        .from(pledge::Entity)
        .and_where(Expr::col((pledge::Entity, pledge::Column::CreatedAt)).gte(from))
        .and_where(Expr::col((pledge::Entity, pledge::Column::CreatedAt)).lt(to))
        .to_owned()
}

fn updates_posted(from: DateTime<Utc>, to: DateTime<Utc>) -> SelectStatement {
    Query::select()
        .expr(Func::count(Expr::col((
            progress_update::Entity,
            progress_update::Column::Id,
        ))))
        .from(progress_update::Entity)
        .and_where(
            Expr::col((progress_update::Entity, progress_update::Column::PostedAt)).gte(from),
        )
        .and_where(Expr::col((progress_update::Entity, progress_update::Column::PostedAt)).lt(to))
        .to_owned()
}

fn active_coalitions(from: DateTime<Utc>, to: DateTime<Utc>) -> SelectStatement {
    Query::select()
        .expr(Func::count_distinct(Expr::col((
            coalition::Entity,
            coalition::Column::Id,
        ))))
        .from(coalition::Entity)
        .and_where(Expr::col((coalition::Entity, coalition::Column::CreatedAt)).lt(to))
        .cond_where(
            Condition::any()
                .add(Expr::col((coalition::Entity, coalition::Column::ConcludedAt)).is_null())
                .add(Expr::col((coalition::Entity, coalition::Column::ConcludedAt)).gte(from)),
        )
        .to_owned()
}

/// The summary for the period from `from` (inclusive) to `to` (exclusive).
#[tracing::instrument(skip_all)]
pub async fn summary(
    db: &Database,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<MovementSummary, DbErr> {
    let totals = totals(db, from, to).await?;
    let by_change = by_change(db, from, to).await?;
    let by_region = by_region(db, from, to).await?;
    Ok(MovementSummary {
        from,
        to,
        totals,
        by_change: by_change.into_iter().collect(),
        by_region,
    })
}

/// The figures for the whole movement.
async fn totals(db: &Database, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Figures, DbErr> {
    let mut totals = Figures::default();
    for row in rows(db, &pledges_made(from, to)).await? {
        totals.pledges_made = count(&row, 0)?;
        totals.organisations_pledging = count(&row, 1)?;
    }
    for row in rows(db, &updates_posted(from, to)).await? {
        totals.updates_posted = count(&row, 0)?;
    }
    for row in rows(db, &active_coalitions(from, to)).await? {
        totals.active_coalitions = count(&row, 0)?;
    }
    Ok(totals)
}

/// By change: pledges through their changes, updates through their pledge's or coalition's.
async fn by_change(
    db: &Database,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<BTreeMap<Change, Figures>, DbErr> {
    let mut by_change: BTreeMap<Change, Figures> = Change::ALL
        .into_iter()
        .map(|c| (c, Figures::default()))
        .collect();
    let statement = pledges_made(from, to)
        .column((pledge_change::Entity, pledge_change::Column::Change))
        .inner_join(
            pledge_change::Entity,
            Expr::col((pledge_change::Entity, pledge_change::Column::PledgeId))
                .equals((pledge::Entity, pledge::Column::Id)),
        )
        .group_by_col((pledge_change::Entity, pledge_change::Column::Change))
        .to_owned();
    for row in rows(db, &statement).await? {
        if let Some(f) = change_of(&row, 2)?.and_then(|c| by_change.get_mut(&c)) {
            f.pledges_made = count(&row, 0)?;
            f.organisations_pledging = count(&row, 1)?;
        }
    }
    let statement = updates_posted(from, to)
        .column((pledge_change::Entity, pledge_change::Column::Change))
        .inner_join(
            pledge_change::Entity,
            Expr::col((pledge_change::Entity, pledge_change::Column::PledgeId))
                .equals((progress_update::Entity, progress_update::Column::PledgeId)),
        )
        .group_by_col((pledge_change::Entity, pledge_change::Column::Change))
        .to_owned();
    for row in rows(db, &statement).await? {
        if let Some(f) = change_of(&row, 1)?.and_then(|c| by_change.get_mut(&c)) {
            f.updates_posted += count(&row, 0)?;
        }
    }
    let statement = updates_posted(from, to)
        .column((coalition_change::Entity, coalition_change::Column::Change))
        .inner_join(
            coalition_change::Entity,
            Expr::col((
                coalition_change::Entity,
                coalition_change::Column::CoalitionId,
            ))
            .equals((
                progress_update::Entity,
                progress_update::Column::CoalitionId,
            )),
        )
        .group_by_col((coalition_change::Entity, coalition_change::Column::Change))
        .to_owned();
    for row in rows(db, &statement).await? {
        if let Some(f) = change_of(&row, 1)?.and_then(|c| by_change.get_mut(&c)) {
            f.updates_posted += count(&row, 0)?;
        }
    }
    let statement = active_coalitions(from, to)
        .column((coalition_change::Entity, coalition_change::Column::Change))
        .inner_join(
            coalition_change::Entity,
            Expr::col((
                coalition_change::Entity,
                coalition_change::Column::CoalitionId,
            ))
            .equals((coalition::Entity, coalition::Column::Id)),
        )
        .group_by_col((coalition_change::Entity, coalition_change::Column::Change))
        .to_owned();
    for row in rows(db, &statement).await? {
        if let Some(f) = change_of(&row, 1)?.and_then(|c| by_change.get_mut(&c)) {
            f.active_coalitions = count(&row, 0)?;
        }
    }
    Ok(by_change)
}

/// By region: of the pledging, posting or leading organisation, in the regions' own order.
async fn by_region(
    db: &Database,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(Region, Figures)>, DbErr> {
    let mut by_region: BTreeMap<String, Figures> = BTreeMap::new();
    let region = (organisation::Entity, organisation::Column::Region);
    let statement = pledges_made(from, to)
        .column(region)
        .inner_join(
            organisation::Entity,
            Expr::col((organisation::Entity, organisation::Column::Id))
                .equals((pledge::Entity, pledge::Column::OrganisationId)),
        )
        .group_by_col(region)
        .to_owned();
    for row in rows(db, &statement).await? {
        let f = by_region.entry(row.try_get_by_index(2)?).or_default();
        f.pledges_made = count(&row, 0)?;
        f.organisations_pledging = count(&row, 1)?;
    }
    let statement = updates_posted(from, to)
        .column(region)
        .inner_join(
            organisation::Entity,
            Expr::col((organisation::Entity, organisation::Column::Id)).equals((
                progress_update::Entity,
                progress_update::Column::OrganisationId,
            )),
        )
        .group_by_col(region)
        .to_owned();
    for row in rows(db, &statement).await? {
        by_region
            .entry(row.try_get_by_index(1)?)
            .or_default()
            .updates_posted = count(&row, 0)?;
    }
    let statement = active_coalitions(from, to)
        .column(region)
        .inner_join(
            organisation::Entity,
            Expr::col((organisation::Entity, organisation::Column::Id))
                .equals((coalition::Entity, coalition::Column::LeadOrganisationId)),
        )
        .group_by_col(region)
        .to_owned();
    for row in rows(db, &statement).await? {
        by_region
            .entry(row.try_get_by_index(1)?)
            .or_default()
            .active_coalitions = count(&row, 0)?;
    }

    let mut regions: Vec<(Region, Figures)> = by_region
        .into_iter()
        .filter_map(|(code, figures)| {
            use sea_orm::ActiveEnum;
            Region::try_from_value(&code).ok().map(|r| (r, figures))
        })
        .collect();
    regions.sort_by_key(|(region, _)| {
        use sea_orm::Iterable;
        Region::iter().position(|r| r == *region)
    });
    Ok(regions)
}

fn change_of(row: &QueryResult, index: usize) -> Result<Option<Change>, DbErr> {
    let code: String = row.try_get_by_index(index)?;
    Ok(Change::from_code(&code))
}
