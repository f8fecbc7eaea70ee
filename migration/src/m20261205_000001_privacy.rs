//! What registering someone else leaves behind: an attempt to register a person who already
//! holds a place (answered as a new registration would be, so the registrar learns nothing),
//! and the named person's address on a pending on-behalf request, so their erasure reaches it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OnBehalfAttempts::Table)
                    .col(pk_uuid(OnBehalfAttempts::Id))
                    .col(uuid(OnBehalfAttempts::RegistrarId))
                    .col(uuid(OnBehalfAttempts::GatheringId))
                    .col(uuid(OnBehalfAttempts::PersonId))
                    .col(string(OnBehalfAttempts::Mode))
                    .col(string(OnBehalfAttempts::Status))
                    .col(big_integer_null(OnBehalfAttempts::WaitlistPosition))
                    .col(integer(OnBehalfAttempts::Companions))
                    .col(string(OnBehalfAttempts::BehalfName))
                    .col(timestamp_with_time_zone(OnBehalfAttempts::CreatedAt))
                    .col(timestamp_with_time_zone(OnBehalfAttempts::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(OnBehalfAttempts::Table, OnBehalfAttempts::GatheringId)
                            .to(Gatherings::Table, Gatherings::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("on_behalf_attempts_registrar_gathering")
                    .table(OnBehalfAttempts::Table)
                    .col(OnBehalfAttempts::RegistrarId)
                    .col(OnBehalfAttempts::GatheringId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("on_behalf_attempts_person")
                    .table(OnBehalfAttempts::Table)
                    .col(OnBehalfAttempts::PersonId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RegistrationRequests::Table)
                    .add_column(string_null(RegistrationRequests::BehalfEmail))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("registration_requests_behalf_email")
                    .table(RegistrationRequests::Table)
                    .col(RegistrationRequests::BehalfEmail)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("registration_requests_behalf_email")
                    .table(RegistrationRequests::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RegistrationRequests::Table)
                    .drop_column(RegistrationRequests::BehalfEmail)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(OnBehalfAttempts::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum OnBehalfAttempts {
    Table,
    Id,
    RegistrarId,
    GatheringId,
    PersonId,
    Mode,
    Status,
    WaitlistPosition,
    Companions,
    BehalfName,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Gatherings {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum RegistrationRequests {
    Table,
    BehalfEmail,
}
