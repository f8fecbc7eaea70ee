//! Gatherings, their convenors, and registrations with waitlists and access needs.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Gatherings::Table)
                    .col(pk_uuid(Gatherings::Id))
                    .col(string(Gatherings::Title))
                    .col(string_uniq(Gatherings::Slug))
                    .col(text(Gatherings::Description))
                    .col(timestamp_with_time_zone(Gatherings::StartsAt))
                    .col(timestamp_with_time_zone(Gatherings::EndsAt))
                    .col(string(Gatherings::TimeZone))
                    .col(string(Gatherings::Format))
                    .col(string_null(Gatherings::Area))
                    .col(text_null(Gatherings::Venue))
                    .col(string_null(Gatherings::JoiningUrl))
                    // Null capacity means unlimited.
                    .col(integer_null(Gatherings::InPersonCapacity))
                    .col(integer_null(Gatherings::OnlineCapacity))
                    // Places taken, kept in step with confirmed registrations so that the
                    // capacity check is one row, locked for the registering transaction.
                    .col(integer(Gatherings::InPersonTaken).default(0))
                    .col(integer(Gatherings::OnlineTaken).default(0))
                    .col(big_integer(Gatherings::WaitlistSeq).default(0))
                    .col(timestamp_with_time_zone_null(
                        Gatherings::RegistrationOpensAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        Gatherings::RegistrationClosesAt,
                    ))
                    .col(string(Gatherings::Status))
                    .col(text_null(Gatherings::CancelReason))
                    // Anonymous totals of access requirements, kept when the notes are erased.
                    .col(json_null(Gatherings::AccessTotals))
                    .col(integer(Gatherings::Sequence).default(0))
                    .col(timestamp_with_time_zone(Gatherings::CreatedAt))
                    .col(timestamp_with_time_zone(Gatherings::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("gatherings_status_starts_at")
                    .table(Gatherings::Table)
                    .col(Gatherings::Status)
                    .col(Gatherings::StartsAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(GatheringConvenors::Table)
                    .col(uuid(GatheringConvenors::GatheringId))
                    .col(uuid(GatheringConvenors::PersonId))
                    .primary_key(
                        Index::create()
                            .col(GatheringConvenors::GatheringId)
                            .col(GatheringConvenors::PersonId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(GatheringConvenors::Table, GatheringConvenors::GatheringId)
                            .to(Gatherings::Table, Gatherings::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(GatheringConvenors::Table, GatheringConvenors::PersonId)
                            .to(People::Table, People::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Registrations::Table)
                    .col(pk_uuid(Registrations::Id))
                    .col(uuid(Registrations::GatheringId))
                    .col(uuid(Registrations::PersonId))
                    .col(string(Registrations::Mode))
                    .col(string(Registrations::Status))
                    // Order of joining the waitlist; positions are ranks among those waiting.
                    .col(big_integer_null(Registrations::WaitlistSeq))
                    .col(integer(Registrations::Companions).default(0))
                    .col(json(Registrations::AccessRequirements))
                    .col(text_null(Registrations::AccessNotes))
                    .col(timestamp_with_time_zone_null(
                        Registrations::AccessConsentAt,
                    ))
                    .col(uuid_null(Registrations::RegisteredBy))
                    .col(timestamp_with_time_zone_null(Registrations::CheckedInAt))
                    .col(timestamp_with_time_zone(Registrations::CreatedAt))
                    .col(timestamp_with_time_zone(Registrations::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Registrations::Table, Registrations::GatheringId)
                            .to(Gatherings::Table, Gatherings::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Registrations::Table, Registrations::PersonId)
                            .to(People::Table, People::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Registrations::Table, Registrations::RegisteredBy)
                            .to(People::Table, People::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("registrations_gathering_person")
                    .table(Registrations::Table)
                    .col(Registrations::GatheringId)
                    .col(Registrations::PersonId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("registrations_gathering_status_seq")
                    .table(Registrations::Table)
                    .col(Registrations::GatheringId)
                    .col(Registrations::Status)
                    .col(Registrations::WaitlistSeq)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("registrations_person")
                    .table(Registrations::Table)
                    .col(Registrations::PersonId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Registrations::Table.into_iden(),
            GatheringConvenors::Table.into_iden(),
            Gatherings::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum People {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Gatherings {
    Table,
    Id,
    Title,
    Slug,
    Description,
    StartsAt,
    EndsAt,
    TimeZone,
    Format,
    Area,
    Venue,
    JoiningUrl,
    InPersonCapacity,
    OnlineCapacity,
    InPersonTaken,
    OnlineTaken,
    WaitlistSeq,
    RegistrationOpensAt,
    RegistrationClosesAt,
    Status,
    CancelReason,
    AccessTotals,
    Sequence,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum GatheringConvenors {
    Table,
    GatheringId,
    PersonId,
}

#[derive(DeriveIden)]
enum Registrations {
    Table,
    Id,
    GatheringId,
    PersonId,
    Mode,
    Status,
    WaitlistSeq,
    Companions,
    AccessRequirements,
    AccessNotes,
    AccessConsentAt,
    RegisteredBy,
    CheckedInAt,
    CreatedAt,
    UpdatedAt,
}
