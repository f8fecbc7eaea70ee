//! Digests: one row per recipient and scheduled period, claimed in the same transaction as its
//! outbox message, and whether a person has chosen their digest preferences themselves.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Until a person chooses, their role decides: convenors hear weekly, others never.
        manager
            .alter_table(
                Table::alter()
                    .table(People::Table)
                    .add_column(boolean(People::DigestChosen).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Digests::Table)
                    .col(pk_uuid(Digests::Id))
                    .col(uuid(Digests::PersonId))
                    // The scheduled local send it is for, such as `WEEKLY:2027-03-08`.
                    .col(string(Digests::PeriodKey))
                    .col(timestamp_with_time_zone(Digests::PeriodStart))
                    .col(timestamp_with_time_zone(Digests::PeriodEnd))
                    // Null when the period had nothing to tell and the person asked for no
                    // empty digests: the period is still claimed, so it is not looked at again.
                    .col(uuid_null(Digests::OutboxId))
                    .col(timestamp_with_time_zone(Digests::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Digests::Table, Digests::PersonId)
                            .to(People::Table, People::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // A second claim of the same digest, by any server, fails here.
        manager
            .create_index(
                Index::create()
                    .name("digests_person_period")
                    .table(Digests::Table)
                    .col(Digests::PersonId)
                    .col(Digests::PeriodKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("digests_person_period_end")
                    .table(Digests::Table)
                    .col(Digests::PersonId)
                    .col(Digests::PeriodEnd)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Digests::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(People::Table)
                    .drop_column(People::DigestChosen)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum People {
    Table,
    Id,
    DigestChosen,
}

#[derive(DeriveIden)]
enum Digests {
    Table,
    Id,
    PersonId,
    PeriodKey,
    PeriodStart,
    PeriodEnd,
    OutboxId,
    CreatedAt,
}
