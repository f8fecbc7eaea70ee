//! What a digest holds, one builder per section. Each takes the recipient and the period and
//! returns its section's value; the digest is whatever the builders return, so a new source of
//! news is a new builder, not a change to the others.

use chrono::{DateTime, Utc};
use sea_orm::DbErr;
use serde::Serialize;

use crate::{
    Database,
    changes::Change,
    gatherings::{self, GatheringFormat},
    registrations::{self, AttendanceMode},
};

use super::{Period, Recipient};

/// Gatherings shown in one digest, at most.
const GATHERINGS_SHOWN: u64 = 20;

/// The glanceable picture at a digest's top: per change of interest, this period against the
/// last.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChangePicture {
    pub rows: Vec<ChangeFigures>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangeFigures {
    pub change: Change,
    pub title: &'static str,
    pub pledges_this_period: u64,
    pub pledges_last_period: u64,
    pub updates_this_period: u64,
    pub updates_last_period: u64,
}

/// Upcoming gatherings with their places and waitlists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GatheringsSection {
    pub items: Vec<GatheringItem>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GatheringItem {
    pub title: String,
    pub slug: String,
    pub starts_at: DateTime<Utc>,
    /// The start in the gathering's own time zone, for reading.
    pub when: String,
    pub format: GatheringFormat,
    /// In-person places left; `None` when unlimited or not offered.
    pub in_person_places_left: Option<i32>,
    pub online_places_left: Option<i32>,
    pub in_person_offered: bool,
    pub online_offered: bool,
    pub unlimited: bool,
    pub confirmed: u64,
    pub waitlisted: u64,
    /// Published during this digest's period.
    pub new_this_period: bool,
    pub full: bool,
}

/// New pledges in the period (organisation, title, due date).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NewPledgesSection {
    pub items: Vec<serde_json::Value>,
}

/// Progress updates in the period, grouped by signal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProgressSection {
    pub items: Vec<serde_json::Value>,
}

/// Coalitions formed and members joined in the period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CoalitionsSection {
    pub items: Vec<serde_json::Value>,
}

/// Pledges gone quiet, and the organisations nudged that did not answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QuietPledgesSection {
    pub items: Vec<serde_json::Value>,
}

/// The picture per change of interest. Pledges and progress updates do not exist yet, so
/// every figure is zero; the rows are there so the layout and filtering are real.
pub async fn change_picture(
    _db: &Database,
    recipient: &Recipient,
    _period: &Period,
) -> Result<ChangePicture, DbErr> {
    Ok(ChangePicture {
        rows: recipient
            .changes_of_interest()
            .into_iter()
            .map(|change| ChangeFigures {
                change,
                title: change.title(),
                pledges_this_period: 0,
                pledges_last_period: 0,
                updates_this_period: 0,
                updates_last_period: 0,
            })
            .collect(),
    })
}

/// New pledges: empty until pledges exist.
pub async fn new_pledges_section(
    _db: &Database,
    _recipient: &Recipient,
    _period: &Period,
) -> Result<NewPledgesSection, DbErr> {
    Ok(NewPledgesSection::default())
}

/// Progress updates by signal: empty until progress updates exist.
pub async fn progress_section(
    _db: &Database,
    _recipient: &Recipient,
    _period: &Period,
) -> Result<ProgressSection, DbErr> {
    Ok(ProgressSection::default())
}

/// Coalitions formed and members joined: empty until coalitions exist.
pub async fn coalitions_section(
    _db: &Database,
    _recipient: &Recipient,
    _period: &Period,
) -> Result<CoalitionsSection, DbErr> {
    Ok(CoalitionsSection::default())
}

/// Pledges gone quiet and unanswered nudges: empty until pledges exist.
pub async fn quiet_pledges_section(
    _db: &Database,
    _recipient: &Recipient,
    _period: &Period,
) -> Result<QuietPledgesSection, DbErr> {
    Ok(QuietPledgesSection::default())
}

/// Published gatherings that have not ended by the period's end, soonest first, with places
/// left and waitlist length. Gatherings are not tied to a change, so the recipient's changes of
/// interest do not filter them.
pub async fn gatherings_section(
    db: &Database,
    _recipient: &Recipient,
    period: &Period,
) -> Result<GatheringsSection, DbErr> {
    let found = gatherings::upcoming_published(db, period.end, GATHERINGS_SHOWN).await?;
    let ids: Vec<_> = found.iter().map(|g| g.id).collect();
    let counts = registrations::counts(db, &ids).await?;
    let items = found
        .into_iter()
        .map(|g| {
            let count = counts.get(&g.id).copied().unwrap_or_default();
            let in_person_offered = g.format.allows(AttendanceMode::InPerson);
            let online_offered = g.format.allows(AttendanceMode::Online);
            let in_person = in_person_offered
                .then(|| g.places_left(AttendanceMode::InPerson))
                .flatten();
            let online = online_offered
                .then(|| g.places_left(AttendanceMode::Online))
                .flatten();
            let unlimited =
                (in_person_offered && in_person.is_none()) || (online_offered && online.is_none());
            let full = !unlimited && in_person.unwrap_or(0) == 0 && online.unwrap_or(0) == 0;
            let when = g
                .starts_at
                .with_timezone(&g.time_zone.tz())
                .format("%A %-d %B %Y, %H:%M %Z")
                .to_string();
            GatheringItem {
                new_this_period: period.contains(g.created_at),
                title: g.title,
                slug: g.slug,
                starts_at: g.starts_at,
                when,
                format: g.format,
                in_person_places_left: in_person,
                online_places_left: online,
                in_person_offered,
                online_offered,
                unlimited,
                confirmed: count.confirmed,
                waitlisted: count.waitlisted,
                full,
            }
        })
        .collect();
    Ok(GatheringsSection { items })
}
