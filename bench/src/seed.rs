//! The movement at scale, deterministic from a seed number.

use chrono::{DateTime, Utc};

/// How much was loaded.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Counts {
    pub organisations: usize,
    pub pledges: usize,
    pub progress_updates: usize,
    pub coalitions: usize,
    pub gatherings: usize,
    pub registrations: usize,
    pub digest_people: usize,
}

/// What the load benchmark needs to know about the seeded movement.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub counts: Counts,
    /// A session token of an admin, for `sendDueDigests`.
    pub admin_token: String,
    /// A published, upcoming gathering with places left and registrations.
    pub page_gathering_slug: String,
    /// Session tokens of people each holding a registration for the page gathering.
    pub page_callers: Vec<String>,
    /// A published gathering open for registration with 300 in-person places and none taken.
    pub rush_gathering_slug: String,
    /// Session tokens of people not registered for the rush gathering.
    pub rush_tokens: Vec<String>,
    /// The change code the pledge wall filters by.
    pub wall_change: String,
    /// The instant at which every digest person is due and none has been sent.
    pub digest_as_of: DateTime<Utc>,
}
