use sea_orm::entity::prelude::*;

use crate::entities::enums::{AttendanceMode, RegistrationStatus};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "registrations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub gathering_id: Uuid,
    pub person_id: Uuid,
    pub mode: AttendanceMode,
    pub status: RegistrationStatus,
    pub waitlist_seq: Option<i64>,
    pub companions: i32,
    pub access_requirements: Json,
    pub access_notes: Option<String>,
    pub access_consent_at: Option<DateTimeUtc>,
    pub registered_by: Option<Uuid>,
    pub checked_in_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub behalf_name: Option<String>,
    pub rejoins: i32,
    pub rejoins_since: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
