use sea_orm::entity::prelude::*;

use crate::entities::enums::{AttendanceMode, RegistrationStatus};

/// A registration asked for on someone's behalf when they already held a place the caller did
/// not make: kept so the caller is answered (and limited) exactly as for a new registration,
/// while the person's own registration stays as it was.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "on_behalf_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub registrar_id: Uuid,
    pub gathering_id: Uuid,
    pub person_id: Uuid,
    pub mode: AttendanceMode,
    pub status: RegistrationStatus,
    pub waitlist_position: Option<i64>,
    pub companions: i32,
    pub behalf_name: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
