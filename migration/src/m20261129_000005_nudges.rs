//! Reminders to the owners of pledges that have gone quiet.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PledgeNudges::Table)
                    .col(pk_uuid(PledgeNudges::Id))
                    .col(uuid(PledgeNudges::PledgeId))
                    // The pledge's last activity when it was nudged: news since starts a new
                    // quiet spell, with its own reminders.
                    .col(timestamp_with_time_zone(PledgeNudges::QuietSince))
                    // 1 after one quiet period, 2 after two, …
                    .col(integer(PledgeNudges::Round))
                    .col(timestamp_with_time_zone(PledgeNudges::SentAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PledgeNudges::Table, PledgeNudges::PledgeId)
                            .to(Pledges::Table, Pledges::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("pledge_nudges_once_per_round")
                    .table(PledgeNudges::Table)
                    .col(PledgeNudges::PledgeId)
                    .col(PledgeNudges::QuietSince)
                    .col(PledgeNudges::Round)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PledgeNudges::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Pledges {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum PledgeNudges {
    Table,
    Id,
    PledgeId,
    QuietSince,
    Round,
    SentAt,
}
