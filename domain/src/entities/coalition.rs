use sea_orm::entity::prelude::*;

use crate::entities::enums::CoalitionStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "coalitions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    #[sea_orm(unique)]
    pub slug: String,
    pub purpose: String,
    pub area: Option<String>,
    pub lead_organisation_id: Uuid,
    pub status: CoalitionStatus,
    pub created_at: DateTimeUtc,
    pub concluded_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
