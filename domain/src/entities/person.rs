use sea_orm::entity::prelude::*;

use crate::entities::enums::{DigestFrequency, Role};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "people")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub time_zone: String,
    pub digest_frequency: DigestFrequency,
    pub digest_weekday: i16,
    pub digest_hour: i16,
    pub digest_changes: Json,
    pub digest_send_empty: bool,
    pub digest_chosen: bool,
    pub email_consent: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub erased_at: Option<DateTimeUtc>,
    pub prefers_easy_read: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
