use sea_orm::entity::prelude::*;

use crate::entities::enums::{GatheringFormat, GatheringStatus, Region};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "gatherings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub title: String,
    #[sea_orm(unique)]
    pub slug: String,
    pub description: String,
    pub starts_at: DateTimeUtc,
    pub ends_at: DateTimeUtc,
    pub time_zone: String,
    pub format: GatheringFormat,
    pub area: Option<Region>,
    pub venue: Option<String>,
    pub joining_url: Option<String>,
    pub in_person_capacity: Option<i32>,
    pub online_capacity: Option<i32>,
    pub in_person_taken: i32,
    pub online_taken: i32,
    pub waitlist_seq: i64,
    pub registration_opens_at: Option<DateTimeUtc>,
    pub registration_closes_at: Option<DateTimeUtc>,
    pub status: GatheringStatus,
    pub cancel_reason: Option<String>,
    pub access_totals: Option<Json>,
    pub sequence: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
