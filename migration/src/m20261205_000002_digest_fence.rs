//! The digest fence: one row holding the moment the latest digest run drew its line. News
//! written after the line is stamped after it, so it belongs to the next digest, never lost
//! between two.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DigestFence::Table)
                    .col(integer(DigestFence::Id).primary_key())
                    .col(timestamp_with_time_zone_null(DigestFence::At))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(DigestFence::Table)
                    .columns([DigestFence::Id])
                    .values_panic([1.into()])
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DigestFence::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum DigestFence {
    Table,
    Id,
    At,
}
