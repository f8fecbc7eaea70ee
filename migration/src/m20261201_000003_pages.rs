//! The attendee's pages: registrations asked for with only an email, waiting for their
//! confirmation link, and whether a person prefers easy read.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RegistrationRequests::Table)
                    .col(pk_uuid(RegistrationRequests::Id))
                    // The link's token is derived from the server's key and the id; only its
                    // hash is kept, so the table alone cannot confirm anything.
                    .col(string_uniq(RegistrationRequests::TokenHash))
                    .col(string(RegistrationRequests::Email))
                    .col(uuid(RegistrationRequests::GatheringId))
                    // The answers given (name, mode, companions, access needs…); cleared once
                    // used, and the whole row deleted when the link expires.
                    .col(json_null(RegistrationRequests::Answers))
                    .col(timestamp_with_time_zone(RegistrationRequests::CreatedAt))
                    .col(timestamp_with_time_zone(RegistrationRequests::ExpiresAt))
                    .col(timestamp_with_time_zone_null(RegistrationRequests::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                RegistrationRequests::Table,
                                RegistrationRequests::GatheringId,
                            )
                            .to(Gatherings::Table, Gatherings::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("registration_requests_email_created_at")
                    .table(RegistrationRequests::Table)
                    .col(RegistrationRequests::Email)
                    .col(RegistrationRequests::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("registration_requests_expires_at")
                    .table(RegistrationRequests::Table)
                    .col(RegistrationRequests::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(People::Table)
                    .add_column(boolean(People::PrefersEasyRead).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(People::Table)
                    .drop_column(People::PrefersEasyRead)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(RegistrationRequests::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Gatherings {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum People {
    Table,
    PrefersEasyRead,
}

#[derive(DeriveIden)]
enum RegistrationRequests {
    Table,
    Id,
    TokenHash,
    Email,
    GatheringId,
    Answers,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}
