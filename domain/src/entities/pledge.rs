use sea_orm::entity::prelude::*;

use crate::entities::enums::PledgeStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pledges")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub coalition_id: Option<Uuid>,
    pub title: String,
    pub commitment: String,
    pub due_by: Option<Date>,
    pub status: PledgeStatus,
    pub withdrawn_reason: Option<String>,
    pub latest_update_id: Option<Uuid>,
    pub last_activity_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub achieved_at: Option<DateTimeUtc>,
    pub withdrawn_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
