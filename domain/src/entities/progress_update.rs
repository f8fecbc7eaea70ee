use sea_orm::entity::prelude::*;

use crate::entities::enums::ProgressSignal;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "progress_updates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub pledge_id: Option<Uuid>,
    pub coalition_id: Option<Uuid>,
    pub organisation_id: Uuid,
    pub author_person_id: Option<Uuid>,
    pub body: String,
    pub signal: ProgressSignal,
    pub percent_complete: Option<i16>,
    pub evidence_urls: Json,
    pub posted_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
