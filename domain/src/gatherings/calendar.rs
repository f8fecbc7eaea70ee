//! What a calendar file says about a gathering. Rendering it as iCalendar is the API's job; the
//! same entry goes in confirmation mail (through the outbox) and the public `.ics` feed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Gathering, GatheringStatus};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarEntry {
    pub id: Uuid,
    pub slug: String,
    pub title: String,
    pub description: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// IANA name of the gathering's time zone.
    pub time_zone: String,
    pub location: Option<String>,
    /// Only in calendars sent to people with a confirmed place.
    pub joining_url: Option<String>,
    pub cancelled: bool,
    /// Bumped on every change, so calendar programs replace the old entry.
    pub sequence: i32,
    pub updated_at: DateTime<Utc>,
}

impl CalendarEntry {
    /// The public entry: no joining link.
    pub fn public(gathering: &Gathering) -> Self {
        Self {
            id: gathering.id,
            slug: gathering.slug.clone(),
            title: gathering.title.clone(),
            description: gathering.description.clone(),
            starts_at: gathering.starts_at,
            ends_at: gathering.ends_at,
            time_zone: gathering.time_zone.name().to_owned(),
            location: gathering.venue.clone(),
            joining_url: None,
            cancelled: gathering.status == GatheringStatus::Cancelled,
            sequence: gathering.sequence,
            updated_at: gathering.updated_at,
        }
    }

    /// The entry for someone with a confirmed place, with the joining link if there is one.
    pub fn for_attendee(gathering: &Gathering) -> Self {
        Self {
            joining_url: gathering.joining_url.clone(),
            ..Self::public(gathering)
        }
    }
}
