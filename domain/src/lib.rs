//! Groundswell's rules and data. Services here take a database and validated inputs, enforce the
//! movement's rules and return domain values or a typed error. Nothing here knows of HTTP,
//! GraphQL or SMTP.

pub mod access;
pub mod changes;
pub mod coalitions;
pub mod db;
pub mod digests;
pub mod events;
pub(crate) mod fence;
mod fixed;
pub mod gatherings;
pub mod generations;
mod layers;
pub mod limits;
pub mod mail;
pub mod movement;
pub mod organisations;
pub mod page;
pub mod people;
pub mod personal_data;
pub mod places;
pub mod pledges;
pub mod progress;
pub mod reads;
pub mod registrations;
pub mod secrets;
pub mod text;
pub mod time;
pub mod webhooks;

mod entities;

pub use access::{AccessError, Actor};
pub use db::Database;
pub use limits::Limits;
pub use text::InvalidInput;

use chrono::{DateTime, SubsecRound, Utc};

/// The current time at the precision both databases store (microseconds), so a value written
/// and read back compares equal.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
