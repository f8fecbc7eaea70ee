//! The ground floor: the five changes, people and sign-in, organisations and their API tokens,
//! and the mail outbox.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The five changes that people who draw on social care named, in their published order.
const CHANGES: [(&str, &str); 5] = [
    (
        "COMMUNITIES_WHERE_EVERYONE_BELONGS",
        "Communities where everyone belongs",
    ),
    (
        "LIVING_IN_THE_PLACE_WE_CALL_HOME",
        "Living in the place we call home",
    ),
    (
        "LEADING_THE_LIVES_WE_WANT_TO_LIVE",
        "Leading the lives we want to live",
    ),
    ("MORE_RESOURCES_BETTER_USED", "More resources, better used"),
    ("SHARING_POWER_AS_EQUALS", "Sharing power as equals"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        changes(manager).await?;
        people_and_sign_in(manager).await?;
        organisations(manager).await?;
        outbox(manager).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Outbox::Table.into_iden(),
            ApiTokens::Table.into_iden(),
            OrganisationMembers::Table.into_iden(),
            Organisations::Table.into_iden(),
            Sessions::Table.into_iden(),
            SignInTokens::Table.into_iden(),
            People::Table.into_iden(),
            Changes::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// The five changes, with their figures, and their rows.
async fn changes(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Changes::Table)
                .col(string(Changes::Code).primary_key())
                .col(string(Changes::Title))
                .col(integer(Changes::Position))
                // Figures are kept current by the writes that change them, so reading the
                // five changes never counts rows.
                .col(integer(Changes::PledgeCount).default(0))
                .col(integer(Changes::OrganisationCount).default(0))
                .col(integer(Changes::CoalitionCount).default(0))
                .col(integer(Changes::ProgressUpdateCount).default(0))
                .col(timestamp_with_time_zone_null(Changes::LastProgressAt))
                .to_owned(),
        )
        .await?;
    let mut seed = Query::insert()
        .into_table(Changes::Table)
        .columns([Changes::Code, Changes::Title, Changes::Position])
        .to_owned();
    for (position, (code, title)) in CHANGES.iter().enumerate() {
        seed.values_panic([
            (*code).into(),
            (*title).into(),
            (position as i32 + 1).into(),
        ]);
    }
    manager.exec_stmt(seed).await?;
    Ok(())
}

/// People, the one-time sign-in links they are sent and the sessions those open.
async fn people_and_sign_in(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(People::Table)
                .col(pk_uuid(People::Id))
                .col(string_uniq(People::Email))
                .col(string_null(People::DisplayName))
                .col(string(People::Role))
                .col(string(People::TimeZone))
                .col(string(People::DigestFrequency))
                .col(small_integer(People::DigestWeekday))
                .col(small_integer(People::DigestHour))
                .col(json(People::DigestChanges))
                .col(boolean(People::DigestSendEmpty).default(false))
                .col(boolean(People::EmailConsent).default(false))
                .col(timestamp_with_time_zone(People::CreatedAt))
                .col(timestamp_with_time_zone(People::UpdatedAt))
                .col(timestamp_with_time_zone_null(People::ErasedAt))
                .to_owned(),
        )
        .await?;

    manager
        .create_table(
            Table::create()
                .table(SignInTokens::Table)
                .col(pk_uuid(SignInTokens::Id))
                .col(string(SignInTokens::Email))
                .col(string_uniq(SignInTokens::TokenHash))
                .col(timestamp_with_time_zone(SignInTokens::CreatedAt))
                .col(timestamp_with_time_zone(SignInTokens::ExpiresAt))
                .col(timestamp_with_time_zone_null(SignInTokens::UsedAt))
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("sign_in_tokens_email_created_at")
                .table(SignInTokens::Table)
                .col(SignInTokens::Email)
                .col(SignInTokens::CreatedAt)
                .to_owned(),
        )
        .await?;

    manager
        .create_table(
            Table::create()
                .table(Sessions::Table)
                .col(pk_uuid(Sessions::Id))
                .col(uuid(Sessions::PersonId))
                .col(string_uniq(Sessions::TokenHash))
                .col(timestamp_with_time_zone(Sessions::CreatedAt))
                .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                .col(timestamp_with_time_zone_null(Sessions::RevokedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Sessions::Table, Sessions::PersonId)
                        .to(People::Table, People::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("sessions_person_id")
                .table(Sessions::Table)
                .col(Sessions::PersonId)
                .to_owned(),
        )
        .await?;
    Ok(())
}

/// Organisations, their members and their API tokens.
async fn organisations(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Organisations::Table)
                .col(pk_uuid(Organisations::Id))
                .col(string(Organisations::Name))
                .col(string_uniq(Organisations::Slug))
                .col(string(Organisations::Kind))
                .col(string(Organisations::Region))
                .col(string_null(Organisations::Website))
                .col(timestamp_with_time_zone(Organisations::CreatedAt))
                .to_owned(),
        )
        .await?;

    manager
        .create_table(
            Table::create()
                .table(OrganisationMembers::Table)
                .col(pk_uuid(OrganisationMembers::Id))
                .col(uuid(OrganisationMembers::OrganisationId))
                .col(uuid(OrganisationMembers::PersonId))
                .col(string(OrganisationMembers::Role))
                .col(timestamp_with_time_zone(OrganisationMembers::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(
                            OrganisationMembers::Table,
                            OrganisationMembers::OrganisationId,
                        )
                        .to(Organisations::Table, Organisations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(OrganisationMembers::Table, OrganisationMembers::PersonId)
                        .to(People::Table, People::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("organisation_members_organisation_person")
                .table(OrganisationMembers::Table)
                .col(OrganisationMembers::OrganisationId)
                .col(OrganisationMembers::PersonId)
                .unique()
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("organisation_members_person")
                .table(OrganisationMembers::Table)
                .col(OrganisationMembers::PersonId)
                .to_owned(),
        )
        .await?;

    manager
        .create_table(
            Table::create()
                .table(ApiTokens::Table)
                .col(pk_uuid(ApiTokens::Id))
                .col(uuid(ApiTokens::OrganisationId))
                .col(string(ApiTokens::Name))
                .col(string_uniq(ApiTokens::TokenHash))
                .col(uuid_null(ApiTokens::CreatedBy))
                .col(timestamp_with_time_zone(ApiTokens::CreatedAt))
                .col(timestamp_with_time_zone_null(ApiTokens::LastUsedAt))
                .col(timestamp_with_time_zone_null(ApiTokens::RevokedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(ApiTokens::Table, ApiTokens::OrganisationId)
                        .to(Organisations::Table, Organisations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ApiTokens::Table, ApiTokens::CreatedBy)
                        .to(People::Table, People::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("api_tokens_organisation")
                .table(ApiTokens::Table)
                .col(ApiTokens::OrganisationId)
                .to_owned(),
        )
        .await?;
    Ok(())
}

/// The mail outbox: every message is a row until it is sent.
async fn outbox(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Outbox::Table)
                .col(pk_uuid(Outbox::Id))
                .col(string(Outbox::Recipient))
                .col(string(Outbox::Template))
                .col(json(Outbox::Context))
                .col(string(Outbox::Status))
                .col(integer(Outbox::Attempts).default(0))
                .col(timestamp_with_time_zone(Outbox::NextAttemptAt))
                .col(timestamp_with_time_zone_null(Outbox::LockedUntil))
                .col(text_null(Outbox::LastError))
                .col(timestamp_with_time_zone(Outbox::CreatedAt))
                .col(timestamp_with_time_zone_null(Outbox::SentAt))
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("outbox_status_next_attempt_at")
                .table(Outbox::Table)
                .col(Outbox::Status)
                .col(Outbox::NextAttemptAt)
                .to_owned(),
        )
        .await?;
    Ok(())
}

#[derive(DeriveIden)]
enum Changes {
    Table,
    Code,
    Title,
    Position,
    PledgeCount,
    OrganisationCount,
    CoalitionCount,
    ProgressUpdateCount,
    LastProgressAt,
}

#[derive(DeriveIden)]
enum People {
    Table,
    Id,
    Email,
    DisplayName,
    Role,
    TimeZone,
    DigestFrequency,
    DigestWeekday,
    DigestHour,
    DigestChanges,
    DigestSendEmpty,
    EmailConsent,
    CreatedAt,
    UpdatedAt,
    ErasedAt,
}

#[derive(DeriveIden)]
enum SignInTokens {
    Table,
    Id,
    Email,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    PersonId,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Organisations {
    Table,
    Id,
    Name,
    Slug,
    Kind,
    Region,
    Website,
    CreatedAt,
}

#[derive(DeriveIden)]
enum OrganisationMembers {
    Table,
    Id,
    OrganisationId,
    PersonId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    OrganisationId,
    Name,
    TokenHash,
    CreatedBy,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    Recipient,
    Template,
    Context,
    Status,
    Attempts,
    NextAttemptAt,
    LockedUntil,
    LastError,
    CreatedAt,
    SentAt,
}
