//! The five changes and their live figures.

use async_graphql::{Context, Enum, Object, SimpleObject};
use chrono::{DateTime, Utc};
use groundswell_domain::changes::{self, ChangeSummary as DomainSummary};

use super::{ApiResult, app};

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
    pub change: Change,
    /// The change in the words of the people who named it.
    pub title: String,
    /// Pledges acting on this change.
    pub pledge_count: i32,
    /// Organisations with at least one pledge on this change.
    pub organisation_count: i32,
    /// Coalitions focused on this change.
    pub coalition_count: i32,
    /// Progress updates posted against pledges and coalitions on this change.
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
    async fn changes(&self, ctx: &Context<'_>) -> ApiResult<Vec<ChangeSummary>> {
        let summaries = changes::summaries(&app(ctx)?.db).await?;
        Ok(summaries.into_iter().map(ChangeSummary::from).collect())
    }
}
