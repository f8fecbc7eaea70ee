//! The stored enums: every column that holds one of a fixed set of names, and the names it
//! holds. They live here, below every area, so the entities can name them without importing the
//! areas (as sea-orm's generator does with `sea_orm_active_enums.rs`); each area re-exports its
//! own, so `gatherings::GatheringStatus` is still the name to use.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

// Gatherings.

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GatheringFormat {
    #[sea_orm(string_value = "IN_PERSON")]
    InPerson,
    #[sea_orm(string_value = "ONLINE")]
    Online,
    #[sea_orm(string_value = "HYBRID")]
    Hybrid,
}

impl GatheringFormat {
    pub fn allows(self, mode: AttendanceMode) -> bool {
        matches!(
            (self, mode),
            (GatheringFormat::Hybrid, _)
                | (GatheringFormat::InPerson, AttendanceMode::InPerson)
                | (GatheringFormat::Online, AttendanceMode::Online)
        )
    }

    /// The mode a registration takes when it names none.
    pub fn default_mode(self) -> AttendanceMode {
        match self {
            GatheringFormat::Online => AttendanceMode::Online,
            _ => AttendanceMode::InPerson,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum GatheringStatus {
    #[sea_orm(string_value = "DRAFT")]
    Draft,
    #[sea_orm(string_value = "PUBLISHED")]
    Published,
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
}

// Registrations.

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttendanceMode {
    #[sea_orm(string_value = "IN_PERSON")]
    InPerson,
    #[sea_orm(string_value = "ONLINE")]
    Online,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum RegistrationStatus {
    #[sea_orm(string_value = "CONFIRMED")]
    Confirmed,
    #[sea_orm(string_value = "WAITLISTED")]
    Waitlisted,
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
}

// People.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum Role {
    #[sea_orm(string_value = "ATTENDEE")]
    Attendee,
    #[sea_orm(string_value = "CONVENOR")]
    Convenor,
    #[sea_orm(string_value = "ADMIN")]
    Admin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum DigestFrequency {
    #[sea_orm(string_value = "DAILY")]
    Daily,
    #[sea_orm(string_value = "WEEKLY")]
    Weekly,
    #[sea_orm(string_value = "MONTHLY")]
    Monthly,
    #[sea_orm(string_value = "NEVER")]
    Never,
}

// Organisations.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum OrganisationKind {
    #[sea_orm(string_value = "COUNCIL")]
    Council,
    #[sea_orm(string_value = "NATIONAL_CHARITY")]
    NationalCharity,
    #[sea_orm(string_value = "CARE_PROVIDER")]
    CareProvider,
    #[sea_orm(string_value = "USER_LED_ORGANISATION")]
    UserLedOrganisation,
    #[sea_orm(string_value = "COMMUNITY_GROUP")]
    CommunityGroup,
    #[sea_orm(string_value = "NHS_BODY")]
    NhsBody,
    #[sea_orm(string_value = "OTHER")]
    Other,
}

/// England's regions, or the whole country for national bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum Region {
    #[sea_orm(string_value = "NATIONAL")]
    National,
    #[sea_orm(string_value = "NORTH_EAST")]
    NorthEast,
    #[sea_orm(string_value = "NORTH_WEST")]
    NorthWest,
    #[sea_orm(string_value = "YORKSHIRE_AND_THE_HUMBER")]
    YorkshireAndTheHumber,
    #[sea_orm(string_value = "EAST_MIDLANDS")]
    EastMidlands,
    #[sea_orm(string_value = "WEST_MIDLANDS")]
    WestMidlands,
    #[sea_orm(string_value = "EAST_OF_ENGLAND")]
    EastOfEngland,
    #[sea_orm(string_value = "LONDON")]
    London,
    #[sea_orm(string_value = "SOUTH_EAST")]
    SouthEast,
    #[sea_orm(string_value = "SOUTH_WEST")]
    SouthWest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum OrganisationRole {
    #[sea_orm(string_value = "OWNER")]
    Owner,
    #[sea_orm(string_value = "MEMBER")]
    Member,
}

// The mail outbox.

#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum OutboxStatus {
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "SENDING")]
    Sending,
    #[sea_orm(string_value = "SENT")]
    Sent,
    #[sea_orm(string_value = "FAILED")]
    Failed,
}

// Pledges.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum PledgeStatus {
    #[sea_orm(string_value = "ACTIVE")]
    Active,
    #[sea_orm(string_value = "ACHIEVED")]
    Achieved,
    #[sea_orm(string_value = "WITHDRAWN")]
    Withdrawn,
}

// Progress updates.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum ProgressSignal {
    #[sea_orm(string_value = "ON_TRACK")]
    OnTrack,
    #[sea_orm(string_value = "AT_RISK")]
    AtRisk,
    #[sea_orm(string_value = "OFF_TRACK")]
    OffTrack,
    #[sea_orm(string_value = "DONE")]
    Done,
}

// Coalitions.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum CoalitionStatus {
    #[sea_orm(string_value = "FORMING")]
    Forming,
    #[sea_orm(string_value = "ACTIVE")]
    Active,
    #[sea_orm(string_value = "CONCLUDED")]
    Concluded,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum MembershipStatus {
    /// The lead invited the organisation; it has not accepted yet.
    #[sea_orm(string_value = "INVITED")]
    Invited,
    /// The organisation asked to join; the lead has not approved yet.
    #[sea_orm(string_value = "REQUESTED")]
    Requested,
    #[sea_orm(string_value = "ACTIVE")]
    Active,
    #[sea_orm(string_value = "LEFT")]
    Left,
}

// Webhook deliveries.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt or a retry.
    #[sea_orm(string_value = "PENDING")]
    Pending,
    /// Held by a server sending it right now.
    #[sea_orm(string_value = "SENDING")]
    Sending,
    #[sea_orm(string_value = "DELIVERED")]
    Delivered,
    /// Given up on after a day of retries (it can be redelivered).
    #[sea_orm(string_value = "FAILED")]
    Failed,
}
