//! A page of pledges together with what a page of them usually shows: each pledge's
//! organisation and latest progress update joined into the page's own statement, and its
//! changes as one more column of it. The pledge wall is the movement's most read page; loading
//! it this way costs one statement and no batching round, where loading the rows' relations
//! one kind at a time cost four and a loader's wait.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, EntityTrait, QuerySelect, QueryTrait, Related, RelationDef,
    entity::prelude::*,
};
use uuid::Uuid;

use super::{Pledge, PledgeFilter, changes_of, paged};
use crate::{
    Database,
    changes::Change,
    entities::{organisation, pledge, progress_update},
    organisations::Organisation,
    page::{Page, PageRequest},
};

/// A pledge's latest progress update, as read with its page.
#[derive(Debug)]
pub struct LatestUpdate(pub(crate) progress_update::Model);

/// Which of a page's relations to load with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Include {
    pub organisation: bool,
    pub latest_update: bool,
    pub changes: bool,
}

/// A page of pledges and the relations asked for. A relation not asked for is empty.
#[derive(Debug)]
pub struct PageWith {
    pub page: Page<Pledge>,
    /// The pledging organisations, one per pledge (several pledges may share one).
    pub organisations: Vec<Organisation>,
    /// The latest progress updates of the pledges that have one (`progress::ProgressUpdate`
    /// is made from each: `progress` depends on `pledges`, not the other way).
    pub latest_updates: Vec<LatestUpdate>,
    /// Each pledge's changes, in their published order; every pledge of the page is a key.
    pub changes: HashMap<Uuid, Vec<Change>>,
}

impl Related<organisation::Entity> for pledge::Entity {
    fn to() -> RelationDef {
        pledge::Entity::belongs_to(organisation::Entity)
            .from(pledge::Column::OrganisationId)
            .to(organisation::Column::Id)
            .into()
    }
}

impl Related<progress_update::Entity> for pledge::Entity {
    fn to() -> RelationDef {
        pledge::Entity::belongs_to(progress_update::Entity)
            .from(pledge::Column::LatestUpdateId)
            .to(progress_update::Column::Id)
            .into()
    }
}

/// A page of pledges matching `filter` (as [`super::list`] orders and pages it), with the
/// relations `include` asks for: organisation and latest update in the page's statement, the
/// changes in a second.
#[tracing::instrument(skip_all)]
pub async fn list_with(
    db: &Database,
    filter: &PledgeFilter,
    page: PageRequest,
    now: DateTime<Utc>,
    quiet_after: TimeDelta,
    include: Include,
) -> Result<PageWith, DbErr> {
    let (total, query) = paged(db, filter, &page, now, quiet_after).await?;
    let mut organisations = Vec::new();
    let mut latest_updates = Vec::new();
    let mut changes = HashMap::new();
    let rows = if include.organisation || include.latest_update {
        // Decoded by position (see `joined`): the same rows sea-orm's `all` would give.
        // The page's changes come in the same statement, as each row's codes joined by
        // commas, when they are asked for: one statement for the whole page.
        let mut joined = query
            .find_also_related(organisation::Entity)
            .find_also_related(progress_update::Entity);
        if include.changes {
            joined = joined.column_as(Expr::cust(changes_column(db.backend())), "gs_changes");
        }
        let statement = page.limit_rows(joined.build(db.backend()));
        let rows = db.reads().query_all_raw(statement).await?;
        let mut pledges = Vec::with_capacity(rows.len());
        let mut seen = std::collections::HashSet::new();
        for row in &rows {
            let (pledge, organisation, update) = joined::three(row)?;
            if include.changes {
                changes.insert(pledge.id, joined::changes(row)?);
            }
            if include.organisation
                && let Some(organisation) = organisation
                && seen.insert(organisation.id)
            {
                organisations.push(Organisation::from(organisation));
            }
            if include.latest_update
                && let Some(update) = update
            {
                latest_updates.push(LatestUpdate(update));
            }
            pledges.push(pledge);
        }
        pledges
    } else {
        crate::page::rows(db.reads(), query, &page).await?
    };
    let page = Page::from_rows(rows, page, total).map(Pledge::from);
    if include.changes && changes.is_empty() && !page.items.is_empty() {
        let ids: Vec<Uuid> = page.items.iter().map(|p| p.id).collect();
        changes = changes_of(db, &ids).await?;
        for id in ids {
            changes.entry(id).or_default();
        }
    }
    // The row read past the page, to know there is a next one, is not on it.
    changes.retain(|id, _| page.items.iter().any(|p| p.id == *id));
    Ok(PageWith {
        page,
        organisations,
        latest_updates,
        changes,
    })
}

/// Each pledge's change codes, joined by commas, as a column of the page's own statement (the
/// primary key of `pledge_changes` starts with `pledge_id`, so each is one index range).
fn changes_column(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => {
            "(SELECT string_agg(pc.change, ',') FROM pledge_changes pc \
             WHERE pc.pledge_id = pledges.id)"
        }
        _ => {
            "(SELECT group_concat(pc.change, ',') FROM pledge_changes pc \
             WHERE pc.pledge_id = pledges.id)"
        }
    }
}

/// A pledge's row joined with its organisation and latest update, decoded by position.
///
/// sea-orm decodes a joined row by name: for every column of the second and third tables it
/// formats the prefixed name (`A_name`) and looks it up by hash. On a wall page of 50 that
/// was a third of the request's instructions (callgrind). The statement is sea-orm's own
/// (`find_also_related` twice), which selects each table's columns in its `Column` order:
/// the pledge's, then the organisation's, then the update's. Each field here is read at its
/// table's offset plus its own `Column` variant's position, so the positions follow the
/// entities by construction; the end-to-end test comparing a listed pledge with the pledge
/// asked alone checks the result.
mod joined {
    use sea_orm::{DbErr, QueryResult, TryGetable};

    use crate::{
        changes::Change,
        entities::{organisation, pledge, progress_update},
    };

    const PLEDGE_COLUMNS: usize = pledge::Column::WithdrawnAt as usize + 1;
    const ORGANISATION_COLUMNS: usize = organisation::Column::CreatedAt as usize + 1;
    const UPDATE_COLUMNS: usize = progress_update::Column::PostedAt as usize + 1;

    type Row = (
        pledge::Model,
        Option<organisation::Model>,
        Option<progress_update::Model>,
    );

    pub(super) fn three(row: &QueryResult) -> Result<Row, DbErr> {
        Ok((
            pledge_at(row)?,
            organisation_at(row, PLEDGE_COLUMNS)?,
            update_at(row, PLEDGE_COLUMNS + ORGANISATION_COLUMNS)?,
        ))
    }

    /// The change codes column added after the three tables', in published order.
    pub(super) fn changes(row: &QueryResult) -> Result<Vec<Change>, DbErr> {
        let codes: Option<String> =
            get(row, PLEDGE_COLUMNS + ORGANISATION_COLUMNS + UPDATE_COLUMNS)?;
        let mut changes: Vec<Change> = codes
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter_map(Change::from_code)
            .collect();
        changes.sort();
        Ok(changes)
    }

    fn get<T: TryGetable>(row: &QueryResult, at: usize) -> Result<T, DbErr> {
        row.try_get_by_index(at)
    }

    fn pledge_at(row: &QueryResult) -> Result<pledge::Model, DbErr> {
        use pledge::Column as C;
        let at = |column: C| column as usize;
        Ok(pledge::Model {
            id: get(row, at(C::Id))?,
            organisation_id: get(row, at(C::OrganisationId))?,
            coalition_id: get(row, at(C::CoalitionId))?,
            title: get(row, at(C::Title))?,
            commitment: get(row, at(C::Commitment))?,
            due_by: get(row, at(C::DueBy))?,
            status: get(row, at(C::Status))?,
            withdrawn_reason: get(row, at(C::WithdrawnReason))?,
            latest_update_id: get(row, at(C::LatestUpdateId))?,
            last_activity_at: get(row, at(C::LastActivityAt))?,
            created_at: get(row, at(C::CreatedAt))?,
            updated_at: get(row, at(C::UpdatedAt))?,
            achieved_at: get(row, at(C::AchievedAt))?,
            withdrawn_at: get(row, at(C::WithdrawnAt))?,
        })
    }

    /// The organisation, or `None` when the left join found none (its id is null).
    fn organisation_at(
        row: &QueryResult,
        offset: usize,
    ) -> Result<Option<organisation::Model>, DbErr> {
        use organisation::Column as C;
        let at = |column: C| offset + column as usize;
        let Some(id) = get(row, at(C::Id))? else {
            return Ok(None);
        };
        Ok(Some(organisation::Model {
            id,
            name: get(row, at(C::Name))?,
            slug: get(row, at(C::Slug))?,
            kind: get(row, at(C::Kind))?,
            region: get(row, at(C::Region))?,
            website: get(row, at(C::Website))?,
            created_at: get(row, at(C::CreatedAt))?,
        }))
    }

    /// The latest update, or `None` when the pledge has none (its id is null).
    fn update_at(
        row: &QueryResult,
        offset: usize,
    ) -> Result<Option<progress_update::Model>, DbErr> {
        use progress_update::Column as C;
        let at = |column: C| offset + column as usize;
        let Some(id) = get(row, at(C::Id))? else {
            return Ok(None);
        };
        Ok(Some(progress_update::Model {
            id,
            pledge_id: get(row, at(C::PledgeId))?,
            coalition_id: get(row, at(C::CoalitionId))?,
            organisation_id: get(row, at(C::OrganisationId))?,
            author_person_id: get(row, at(C::AuthorPersonId))?,
            body: get(row, at(C::Body))?,
            signal: get(row, at(C::Signal))?,
            percent_complete: get(row, at(C::PercentComplete))?,
            evidence_urls: get(row, at(C::EvidenceUrls))?,
            posted_at: get(row, at(C::PostedAt))?,
        }))
    }

    #[cfg(test)]
    mod tests {
        use sea_orm::Iterable;

        use super::*;

        /// Each table's last column is the one its count is taken from, and every variant's
        /// position is its place in the select list (`Column::iter()` order).
        #[test]
        fn positions_follow_the_entities() {
            for (n, column) in pledge::Column::iter().enumerate() {
                assert_eq!(column as usize, n, "{column:?}");
            }
            assert_eq!(pledge::Column::iter().count(), PLEDGE_COLUMNS);
            for (n, column) in organisation::Column::iter().enumerate() {
                assert_eq!(column as usize, n, "{column:?}");
            }
            assert_eq!(organisation::Column::iter().count(), ORGANISATION_COLUMNS);
            for (n, column) in progress_update::Column::iter().enumerate() {
                assert_eq!(column as usize, n, "{column:?}");
            }
            assert_eq!(progress_update::Column::iter().count(), UPDATE_COLUMNS);
        }
    }
}
