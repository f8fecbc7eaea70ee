//! A page of pledges together with what a page of them usually shows: each pledge's
//! organisation and latest progress update joined into the page's own statement, and the
//! changes of the whole page in one more. The pledge wall is the movement's most read page;
//! loading it this way costs two statements and no batching round, where loading the rows'
//! relations one kind at a time cost four and a loader's wait.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Related, RelationDef,
    entity::prelude::*,
};
use uuid::Uuid;

use super::{Pledge, PledgeFilter, changes_of, filtered};
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
    let total = if page.count_total {
        Some(filtered(filter, now, quiet_after).count(db.conn()).await?)
    } else {
        None
    };
    let mut query = filtered(filter, now, quiet_after).order_by_asc(pledge::Column::Id);
    if let Some(after) = page.after {
        query = query.filter(pledge::Column::Id.gt(after));
    }
    let query = query.limit(page.first + 1);
    let mut organisations = Vec::new();
    let mut latest_updates = Vec::new();
    let rows = if include.organisation || include.latest_update {
        let rows = query
            .find_also_related(organisation::Entity)
            .find_also_related(progress_update::Entity)
            .all(db.conn())
            .await?;
        let mut pledges = Vec::with_capacity(rows.len());
        let mut seen = std::collections::HashSet::new();
        for (row, organisation, update) in rows {
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
            pledges.push(row);
        }
        pledges
    } else {
        query.all(db.conn()).await?
    };
    let page = Page::from_rows(rows, page, total).map(Pledge::from);
    let mut changes = HashMap::new();
    if include.changes && !page.items.is_empty() {
        let ids: Vec<Uuid> = page.items.iter().map(|p| p.id).collect();
        changes = changes_of(db, &ids).await?;
        for id in ids {
            changes.entry(id).or_default();
        }
    }
    Ok(PageWith {
        page,
        organisations,
        latest_updates,
        changes,
    })
}
