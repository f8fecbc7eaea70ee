//! The five changes and their live figures, and the movement's summary for a period.

use async_graphql::{Context, Enum, Object, SimpleObject};
use chrono::{DateTime, TimeDelta, Utc};
use groundswell_domain::{
    changes::{self, ChangeSummary as DomainSummary},
    movement::{self, Figures, MovementSummary as DomainMovement},
};

use super::{ApiError, ApiResult, app, listed::ListedChange, organisations::Region};

/// One of the five changes that people who draw on social care named.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "groundswell_domain::changes::Change")]
pub enum Change {
    /// Communities where everyone belongs.
    CommunitiesWhereEveryoneBelongs,
    /// Living in the place we call home.
    LivingInThePlaceWeCallHome,
    /// Leading the lives we want to live.
    LeadingTheLivesWeWantToLive,
    /// More resources, better used.
    MoreResourcesBetterUsed,
    /// Sharing power as equals.
    SharingPowerAsEquals,
}

/// A change with its figures across the movement.
#[derive(SimpleObject)]
pub struct ChangeSummary {
    /// The change.
    pub change: Change,
    /// The change in the words of the people who named it.
    pub title: String,
    /// Pledges acting on this change that are not withdrawn (active or achieved).
    pub pledge_count: i32,
    /// Organisations with at least one pledge on this change that is not withdrawn.
    pub organisation_count: i32,
    /// Coalitions formed focused on this change (concluded ones included).
    pub coalition_count: i32,
    /// Progress updates posted against pledges and coalitions on this change (counted when
    /// posted, by the changes the pledge or coalition then named).
    pub progress_update_count: i32,
    /// When progress on this change was last reported.
    pub last_progress_at: Option<DateTime<Utc>>,
}

impl From<DomainSummary> for ChangeSummary {
    fn from(s: DomainSummary) -> Self {
        Self {
            change: s.change.into(),
            title: s.title,
            pledge_count: s.pledge_count,
            organisation_count: s.organisation_count,
            coalition_count: s.coalition_count,
            progress_update_count: s.progress_update_count,
            last_progress_at: s.last_progress_at,
        }
    }
}

#[derive(Default)]
pub struct ChangesQuery;

#[Object]
impl ChangesQuery {
    /// The five changes, in their published order, with live figures.
    async fn changes(&self, ctx: &Context<'_>) -> ApiResult<Vec<ListedChange>> {
        let summaries = changes::summaries(&app(ctx)?.db).await?;
        Ok(summaries
            .into_iter()
            .map(|summary| ListedChange(summary.into()))
            .collect())
    }
}

/// One group's figures in a movement summary.
#[derive(SimpleObject)]
pub struct MovementFigures {
    /// Pledges made in the period (withdrawn since or not).
    pub pledges_made: i64,
    /// Organisations that made at least one of those pledges.
    pub organisations_pledging: i64,
    /// Coalitions formed before the period ended and not concluded before it began (by region:
    /// by their lead organisation's region).
    pub active_coalitions: i64,
    /// Progress updates posted in the period (by region: by the posting organisation's region).
    pub updates_posted: i64,
}

impl From<Figures> for MovementFigures {
    fn from(f: Figures) -> Self {
        Self {
            pledges_made: f.pledges_made,
            organisations_pledging: f.organisations_pledging,
            active_coalitions: f.active_coalitions,
            updates_posted: f.updates_posted,
        }
    }
}

/// A change's figures in a movement summary.
#[derive(SimpleObject)]
pub struct ChangeFigures {
    /// The change.
    pub change: Change,
    /// The figures for pledges, coalitions and updates on this change.
    pub figures: MovementFigures,
}

/// A region's figures in a movement summary.
#[derive(SimpleObject)]
pub struct RegionFigures {
    /// The region.
    pub region: Region,
    /// The figures for organisations in this region.
    pub figures: MovementFigures,
}

/// The movement at a glance for a period.
#[derive(SimpleObject)]
pub struct MovementSummary {
    /// The start of the period (inclusive).
    pub from: DateTime<Utc>,
    /// The end of the period (exclusive).
    pub to: DateTime<Utc>,
    /// Across the whole movement.
    pub totals: MovementFigures,
    /// For each of the five changes, in published order.
    pub by_change: Vec<ChangeFigures>,
    /// For each region with anything to show.
    pub by_region: Vec<RegionFigures>,
}

impl From<DomainMovement> for MovementSummary {
    fn from(s: DomainMovement) -> Self {
        Self {
            from: s.from,
            to: s.to,
            totals: s.totals.into(),
            by_change: s
                .by_change
                .into_iter()
                .map(|(change, f)| ChangeFigures {
                    change: change.into(),
                    figures: f.into(),
                })
                .collect(),
            by_region: s
                .by_region
                .into_iter()
                .map(|(region, f)| RegionFigures {
                    region: region.into(),
                    figures: f.into(),
                })
                .collect(),
        }
    }
}

#[derive(Default)]
pub struct MovementQuery;

#[Object]
impl MovementQuery {
    /// The movement at a glance from `from` (inclusive) to `to` (exclusive); by default the
    /// last 365 days.
    async fn movement(
        &self,
        ctx: &Context<'_>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> ApiResult<MovementSummary> {
        let to =
            super::scalars::moment_opt("to", to)?.map_or_else(groundswell_domain::now, |m| m.get());
        let from = match super::scalars::moment_opt("from", from)? {
            Some(from) => from.get(),
            // `to` is within 1900 to 2200, so a year before it is a date.
            None => to.checked_sub_signed(TimeDelta::days(365)).unwrap_or(to),
        };
        if from > to {
            return Err(ApiError::bad_input("from", "must not be after to"));
        }
        Ok(movement::summary(&app(ctx)?.db, from, to).await?.into())
    }
}
