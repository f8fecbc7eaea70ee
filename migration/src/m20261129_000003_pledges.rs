//! The year of action: pledges on the five changes, coalitions of the willing and their members,
//! and the progress updates posted against either.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        coalitions(manager).await?;
        pledges(manager).await?;
        progress_updates(manager).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ProgressUpdates::Table.into_iden(),
            PledgeChanges::Table.into_iden(),
            Pledges::Table.into_iden(),
            CoalitionMembers::Table.into_iden(),
            CoalitionChanges::Table.into_iden(),
            Coalitions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Coalitions, the changes each focuses on, and their member organisations.
async fn coalitions(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Coalitions::Table)
                .col(pk_uuid(Coalitions::Id))
                .col(string(Coalitions::Name))
                .col(string_uniq(Coalitions::Slug))
                .col(text(Coalitions::Purpose))
                .col(string_null(Coalitions::Area))
                .col(uuid(Coalitions::LeadOrganisationId))
                .col(string(Coalitions::Status))
                .col(timestamp_with_time_zone(Coalitions::CreatedAt))
                .col(timestamp_with_time_zone_null(Coalitions::ConcludedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Coalitions::Table, Coalitions::LeadOrganisationId)
                        .to(Organisations::Table, Organisations::Id),
                )
                .to_owned(),
        )
        .await?;

    manager
        .create_table(
            Table::create()
                .table(CoalitionChanges::Table)
                .col(uuid(CoalitionChanges::CoalitionId))
                .col(string(CoalitionChanges::Change))
                .primary_key(
                    Index::create()
                        .col(CoalitionChanges::CoalitionId)
                        .col(CoalitionChanges::Change),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(CoalitionChanges::Table, CoalitionChanges::CoalitionId)
                        .to(Coalitions::Table, Coalitions::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(CoalitionChanges::Table, CoalitionChanges::Change)
                        .to(Changes::Table, Changes::Code),
                )
                .to_owned(),
        )
        .await?;
    index(
        manager,
        "coalition_changes_change",
        CoalitionChanges::Table,
        [
            CoalitionChanges::Change.into_iden(),
            CoalitionChanges::CoalitionId.into_iden(),
        ],
        false,
    )
    .await?;

    manager
        .create_table(
            Table::create()
                .table(CoalitionMembers::Table)
                .col(pk_uuid(CoalitionMembers::Id))
                .col(uuid(CoalitionMembers::CoalitionId))
                .col(uuid(CoalitionMembers::OrganisationId))
                .col(string(CoalitionMembers::Status))
                .col(timestamp_with_time_zone(CoalitionMembers::CreatedAt))
                .col(timestamp_with_time_zone(CoalitionMembers::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(CoalitionMembers::Table, CoalitionMembers::CoalitionId)
                        .to(Coalitions::Table, Coalitions::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(CoalitionMembers::Table, CoalitionMembers::OrganisationId)
                        .to(Organisations::Table, Organisations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    // One membership per organisation per coalition, whatever its status.
    index(
        manager,
        "coalition_members_coalition_organisation",
        CoalitionMembers::Table,
        [
            CoalitionMembers::CoalitionId.into_iden(),
            CoalitionMembers::OrganisationId.into_iden(),
        ],
        true,
    )
    .await?;
    index(
        manager,
        "coalition_members_organisation",
        CoalitionMembers::Table,
        [CoalitionMembers::OrganisationId.into_iden()],
        false,
    )
    .await?;
    Ok(())
}

/// Pledges and the changes each acts on.
async fn pledges(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Pledges::Table)
                .col(pk_uuid(Pledges::Id))
                .col(uuid(Pledges::OrganisationId))
                .col(uuid_null(Pledges::CoalitionId))
                .col(string(Pledges::Title))
                .col(text(Pledges::Commitment))
                .col(date_null(Pledges::DueBy))
                .col(string(Pledges::Status))
                .col(text_null(Pledges::WithdrawnReason))
                .col(uuid_null(Pledges::LatestUpdateId))
                // When the pledge was made or last reported on: what "gone quiet" measures.
                .col(timestamp_with_time_zone(Pledges::LastActivityAt))
                .col(timestamp_with_time_zone(Pledges::CreatedAt))
                .col(timestamp_with_time_zone(Pledges::UpdatedAt))
                .col(timestamp_with_time_zone_null(Pledges::AchievedAt))
                .col(timestamp_with_time_zone_null(Pledges::WithdrawnAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Pledges::Table, Pledges::OrganisationId)
                        .to(Organisations::Table, Organisations::Id),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Pledges::Table, Pledges::CoalitionId)
                        .to(Coalitions::Table, Coalitions::Id),
                )
                .to_owned(),
        )
        .await?;
    index(
        manager,
        "pledges_organisation",
        Pledges::Table,
        [Pledges::OrganisationId.into_iden(), Pledges::Id.into_iden()],
        false,
    )
    .await?;
    index(
        manager,
        "pledges_coalition",
        Pledges::Table,
        [Pledges::CoalitionId.into_iden(), Pledges::Id.into_iden()],
        false,
    )
    .await?;
    index(
        manager,
        "pledges_status_last_activity",
        Pledges::Table,
        [
            Pledges::Status.into_iden(),
            Pledges::LastActivityAt.into_iden(),
        ],
        false,
    )
    .await?;
    index(
        manager,
        "pledges_created_at",
        Pledges::Table,
        [Pledges::CreatedAt.into_iden()],
        false,
    )
    .await?;

    manager
        .create_table(
            Table::create()
                .table(PledgeChanges::Table)
                .col(uuid(PledgeChanges::PledgeId))
                .col(string(PledgeChanges::Change))
                .primary_key(
                    Index::create()
                        .col(PledgeChanges::PledgeId)
                        .col(PledgeChanges::Change),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(PledgeChanges::Table, PledgeChanges::PledgeId)
                        .to(Pledges::Table, Pledges::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(PledgeChanges::Table, PledgeChanges::Change)
                        .to(Changes::Table, Changes::Code),
                )
                .to_owned(),
        )
        .await?;
    index(
        manager,
        "pledge_changes_change",
        PledgeChanges::Table,
        [
            PledgeChanges::Change.into_iden(),
            PledgeChanges::PledgeId.into_iden(),
        ],
        false,
    )
    .await?;
    Ok(())
}

/// Progress updates, each on a pledge or a coalition.
async fn progress_updates(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(ProgressUpdates::Table)
                .col(pk_uuid(ProgressUpdates::Id))
                .col(uuid_null(ProgressUpdates::PledgeId))
                .col(uuid_null(ProgressUpdates::CoalitionId))
                .col(uuid(ProgressUpdates::OrganisationId))
                .col(uuid_null(ProgressUpdates::AuthorPersonId))
                .col(text(ProgressUpdates::Body))
                .col(string(ProgressUpdates::Signal))
                .col(small_integer_null(ProgressUpdates::PercentComplete))
                .col(json(ProgressUpdates::EvidenceUrls))
                .col(timestamp_with_time_zone(ProgressUpdates::PostedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(ProgressUpdates::Table, ProgressUpdates::PledgeId)
                        .to(Pledges::Table, Pledges::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ProgressUpdates::Table, ProgressUpdates::CoalitionId)
                        .to(Coalitions::Table, Coalitions::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ProgressUpdates::Table, ProgressUpdates::OrganisationId)
                        .to(Organisations::Table, Organisations::Id),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ProgressUpdates::Table, ProgressUpdates::AuthorPersonId)
                        .to(People::Table, People::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
    index(
        manager,
        "progress_updates_pledge",
        ProgressUpdates::Table,
        [
            ProgressUpdates::PledgeId.into_iden(),
            ProgressUpdates::Id.into_iden(),
        ],
        false,
    )
    .await?;
    index(
        manager,
        "progress_updates_coalition",
        ProgressUpdates::Table,
        [
            ProgressUpdates::CoalitionId.into_iden(),
            ProgressUpdates::Id.into_iden(),
        ],
        false,
    )
    .await?;
    index(
        manager,
        "progress_updates_organisation",
        ProgressUpdates::Table,
        [
            ProgressUpdates::OrganisationId.into_iden(),
            ProgressUpdates::Id.into_iden(),
        ],
        false,
    )
    .await?;
    index(
        manager,
        "progress_updates_posted_at",
        ProgressUpdates::Table,
        [ProgressUpdates::PostedAt.into_iden()],
        false,
    )
    .await?;
    Ok(())
}

async fn index<const N: usize>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: impl IntoIden,
    columns: [DynIden; N],
    unique: bool,
) -> Result<(), DbErr> {
    let mut index = Index::create().name(name).table(table).to_owned();
    for column in columns {
        index.col(column);
    }
    if unique {
        index.unique();
    }
    manager.create_index(index).await
}

#[derive(DeriveIden)]
enum Changes {
    Table,
    Code,
}

#[derive(DeriveIden)]
enum Organisations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum People {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Coalitions {
    Table,
    Id,
    Name,
    Slug,
    Purpose,
    Area,
    LeadOrganisationId,
    Status,
    CreatedAt,
    ConcludedAt,
}

#[derive(DeriveIden)]
enum CoalitionChanges {
    Table,
    CoalitionId,
    Change,
}

#[derive(DeriveIden)]
enum CoalitionMembers {
    Table,
    Id,
    CoalitionId,
    OrganisationId,
    Status,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Pledges {
    Table,
    Id,
    OrganisationId,
    CoalitionId,
    Title,
    Commitment,
    DueBy,
    Status,
    WithdrawnReason,
    LatestUpdateId,
    LastActivityAt,
    CreatedAt,
    UpdatedAt,
    AchievedAt,
    WithdrawnAt,
}

#[derive(DeriveIden)]
enum PledgeChanges {
    Table,
    PledgeId,
    Change,
}

#[derive(DeriveIden)]
enum ProgressUpdates {
    Table,
    Id,
    PledgeId,
    CoalitionId,
    OrganisationId,
    AuthorPersonId,
    Body,
    Signal,
    PercentComplete,
    EvidenceUrls,
    PostedAt,
}
