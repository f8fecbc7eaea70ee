//! The five changes that people who draw on social care named, and their live figures.

use chrono::{DateTime, Utc};
use sea_orm::{DbErr, EntityTrait, QueryOrder};
use serde::{Deserialize, Serialize};

use crate::{Database, entities::change};

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
    let rows = change::Entity::find()
        .order_by_asc(change::Column::Position)
        .all(db.conn())
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let change = Change::from_code(&row.code)?;
            Some(ChangeSummary {
                change,
                title: row.title,
                pledge_count: row.pledge_count,
                organisation_count: row.organisation_count,
                coalition_count: row.coalition_count,
                progress_update_count: row.progress_update_count,
                last_progress_at: row.last_progress_at,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for change in Change::ALL {
            assert_eq!(Change::from_code(change.code()), Some(change));
        }
        assert_eq!(Change::from_code("NOPE"), None);
    }
}
