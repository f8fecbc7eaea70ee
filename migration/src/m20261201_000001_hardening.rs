//! Hardening: what the rules against hostile use need to remember. Each column is added on its
//! own, as SQLite alters one column at a time.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The name a registrar typed for the person they registered: what they are shown of
        // that person, whoever already held the address.
        manager
            .alter_table(
                Table::alter()
                    .table(Registrations::Table)
                    .add_column(string_null(Registrations::BehalfName))
                    .to_owned(),
            )
            .await?;
        // Re-registrations after cancelling within the current day-long window, so a
        // register/cancel loop cannot mail someone without end.
        manager
            .alter_table(
                Table::alter()
                    .table(Registrations::Table)
                    .add_column(integer(Registrations::Rejoins).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Registrations::Table)
                    .add_column(timestamp_with_time_zone_null(Registrations::RejoinsSince))
                    .to_owned(),
            )
            .await?;
        // Who added a member, so additions can be limited per caller.
        manager
            .alter_table(
                Table::alter()
                    .table(OrganisationMembers::Table)
                    .add_column(uuid_null(OrganisationMembers::AddedBy))
                    .to_owned(),
            )
            .await?;
        // Where a digest's content stopped (its build time when that came before its slot):
        // the next digest starts here, so nothing is lost or repeated between periods.
        manager
            .alter_table(
                Table::alter()
                    .table(Digests::Table)
                    .add_column(timestamp_with_time_zone_null(Digests::CoveredUntil))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("registrations_by_registrar")
                    .table(Registrations::Table)
                    .col(Registrations::RegisteredBy)
                    .col(Registrations::UpdatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("registrations_by_registrar")
                    .table(Registrations::Table)
                    .to_owned(),
            )
            .await?;
        for (table, column) in [
            (
                Digests::Table.into_iden(),
                Digests::CoveredUntil.into_iden(),
            ),
            (
                OrganisationMembers::Table.into_iden(),
                OrganisationMembers::AddedBy.into_iden(),
            ),
            (
                Registrations::Table.into_iden(),
                Registrations::RejoinsSince.into_iden(),
            ),
            (
                Registrations::Table.into_iden(),
                Registrations::Rejoins.into_iden(),
            ),
            (
                Registrations::Table.into_iden(),
                Registrations::BehalfName.into_iden(),
            ),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Registrations {
    Table,
    BehalfName,
    Rejoins,
    RejoinsSince,
    RegisteredBy,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OrganisationMembers {
    Table,
    AddedBy,
}

#[derive(DeriveIden)]
enum Digests {
    Table,
    CoveredUntil,
}
