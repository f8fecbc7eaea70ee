//! Pledges: an organisation's public commitment to act on one or more of the five changes, by
//! a date, optionally on behalf of a coalition it belongs to. Anyone may read them (withdrawn
//! ones too); only the pledging organisation's people and API tokens change them.

pub mod nudges;
pub mod with_related;

use crate::generations::Areas;
use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select,
};
use uuid::Uuid;

use crate::{
    AccessError, Actor, Database, InvalidInput,
    access::{require_acts_for, require_someone},
    changes::{self, Change, ChangeSet},
    coalitions::{self, MembershipStatus},
    entities::{coalition, organisation, pledge, pledge_change},
    organisations::{OrganisationKind, Region, lock_organisation},
    page::{Page, PageRequest},
    text, webhooks,
};

pub use crate::entities::enums::PledgeStatus;

/// How long an active pledge may go without a progress update before it counts as gone quiet,
/// unless configured otherwise.
pub const DEFAULT_QUIET_AFTER_DAYS: u32 = 60;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pledge {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub coalition_id: Option<Uuid>,
    pub title: String,
    pub commitment: String,
    pub due_by: Option<NaiveDate>,
    pub status: PledgeStatus,
    pub withdrawn_reason: Option<String>,
    pub latest_update_id: Option<Uuid>,
    /// When it was made or last reported on.
    pub last_activity_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub achieved_at: Option<DateTime<Utc>>,
    pub withdrawn_at: Option<DateTime<Utc>>,
}

impl Pledge {
    /// Active, with no progress update (nor, for a new pledge, its making) for `quiet_after`.
    pub fn gone_quiet(&self, now: DateTime<Utc>, quiet_after: TimeDelta) -> bool {
        self.status == PledgeStatus::Active
            && self.last_activity_at <= crate::time::before(now, quiet_after)
    }
}

impl From<pledge::Model> for Pledge {
    fn from(row: pledge::Model) -> Self {
        Self {
            id: row.id,
            organisation_id: row.organisation_id,
            coalition_id: row.coalition_id,
            title: row.title,
            commitment: row.commitment,
            due_by: row.due_by,
            status: row.status,
            withdrawn_reason: row.withdrawn_reason,
            latest_update_id: row.latest_update_id,
            last_activity_at: row.last_activity_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            achieved_at: row.achieved_at,
            withdrawn_at: row.withdrawn_at,
        }
    }
}

/// A pledge's title: 1 to 200 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PledgeTitle(String);

impl PledgeTitle {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        text::bounded(value, 1, 200).map(Self)
    }
}

/// What the organisation will do: 1 to 5,000 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commitment(String);

impl Commitment {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        let value = value.trim();
        let length = value.chars().count();
        if length == 0 {
            return Err(InvalidInput::new("must not be empty"));
        }
        if length > 5000 {
            return Err(InvalidInput::new(format!(
                "must be at most 5000 characters (it has {length})"
            )));
        }
        Ok(Self(value.to_owned()))
    }
}

/// Why a pledge was withdrawn: 1 to 1,000 characters, shown publicly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithdrawalReason(String);

impl WithdrawalReason {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        text::bounded(value, 1, 1000).map(Self)
    }
}

/// A validated request to make a pledge.
#[derive(Clone, Debug)]
pub struct NewPledge {
    pub organisation_id: Uuid,
    pub coalition_id: Option<Uuid>,
    pub changes: ChangeSet,
    pub title: PledgeTitle,
    pub commitment: Commitment,
    pub due_by: Option<crate::time::Day>,
}

/// A validated change to a pledge; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct PledgeEdit {
    pub changes: Option<ChangeSet>,
    pub title: Option<PledgeTitle>,
    pub commitment: Option<Commitment>,
    /// `Some(None)` clears the date.
    pub due_by: Option<Option<crate::time::Day>>,
}

/// Which pledges a list holds; every condition given must hold.
#[derive(Clone, Debug, Default)]
pub struct PledgeFilter {
    /// On any of these changes.
    pub changes: Vec<Change>,
    pub organisation_id: Option<Uuid>,
    pub organisation_kind: Option<OrganisationKind>,
    pub region: Option<Region>,
    pub status: Option<PledgeStatus>,
    pub coalition_id: Option<Uuid>,
    pub gone_quiet: Option<bool>,
    /// Made at or after.
    pub made_from: Option<DateTime<Utc>>,
    /// Made before.
    pub made_to: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PledgeError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("No pledge has that id.")]
    NotFound,
    #[error("No organisation has that id.")]
    OrganisationNotFound,
    #[error("No coalition has that id.")]
    CoalitionNotFound,
    #[error("The coalition has concluded; it takes no new pledges.")]
    CoalitionConcluded,
    #[error("The pledge was withdrawn; it can no longer change.")]
    Withdrawn,
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// Makes a pledge for an organisation, by its people or its API token. A pledge on behalf of a
/// coalition needs the organisation to be one of its active members.
#[tracing::instrument(skip_all, fields(organisation.id = %new.organisation_id))]
pub async fn make(
    db: &Database,
    actor: &Actor,
    new: NewPledge,
    now: DateTime<Utc>,
) -> Result<Pledge, PledgeError> {
    require_someone(actor)?;
    let txn = db.begin_write_on(Areas::MOVEMENT).await?;
    // News: stamped after the latest digest's line if it races one (see `crate::fence`).
    let now = crate::fence::stamp(&*txn, now).await?;
    if !lock_organisation(&*txn, new.organisation_id).await? {
        return Err(PledgeError::OrganisationNotFound);
    }
    require_acts_for::<PledgeError>(&*txn, actor, new.organisation_id).await?;
    if let Some(coalition_id) = new.coalition_id {
        let coalition = coalition::Entity::find_by_id(coalition_id)
            .one(&*txn)
            .await?
            .ok_or(PledgeError::CoalitionNotFound)?;
        if coalitions::membership_status(&*txn, coalition_id, new.organisation_id).await?
            != Some(MembershipStatus::Active)
        {
            return Err(AccessError::Forbidden(
                "only the coalition's active members pledge on its behalf",
            )
            .into());
        }
        if coalition.status == coalitions::CoalitionStatus::Concluded {
            return Err(PledgeError::CoalitionConcluded);
        }
    }
    let row = pledge::Model {
        id: Uuid::now_v7(),
        organisation_id: new.organisation_id,
        coalition_id: new.coalition_id,
        title: new.title.0,
        commitment: new.commitment.0,
        due_by: new.due_by.map(crate::time::Day::get),
        status: PledgeStatus::Active,
        withdrawn_reason: None,
        latest_update_id: None,
        last_activity_at: now,
        created_at: now,
        updated_at: now,
        achieved_at: None,
        withdrawn_at: None,
    };
    pledge::Entity::insert(pledge::ActiveModel::from(row.clone()))
        .exec_without_returning(&*txn)
        .await?;
    insert_changes(&*txn, row.id, new.changes.as_slice()).await?;
    changes::pledge_counted(&*txn, row.organisation_id, row.id, new.changes.as_slice()).await?;
    webhooks::emit(&*txn, webhooks::Emit::PledgeMade(&row), now).await?;
    txn.commit().await?;
    Ok(row.into())
}

async fn insert_changes(
    conn: &impl ConnectionTrait,
    pledge_id: Uuid,
    changes: &[Change],
) -> Result<(), DbErr> {
    if changes.is_empty() {
        return Ok(());
    }
    pledge_change::Entity::insert_many(changes.iter().map(|c| pledge_change::ActiveModel {
        pledge_id: Set(pledge_id),
        change: Set(c.code().to_owned()),
    }))
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Finds a pledge for a write, checking the caller acts for its organisation.
async fn for_write(
    conn: &impl ConnectionTrait,
    actor: &Actor,
    id: Uuid,
) -> Result<pledge::Model, PledgeError> {
    require_someone(actor)?;
    let row = pledge::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(PledgeError::NotFound)?;
    lock_organisation(conn, row.organisation_id).await?;
    require_acts_for::<PledgeError>(conn, actor, row.organisation_id).await?;
    // Read again under the lock: a write that waited for it must see what the one before did
    // (a pledge withdrawn twice at once must not leave the figures twice).
    pledge::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(PledgeError::NotFound)
}

/// Changes a pledge's title, commitment, date or changes. Not once withdrawn.
#[tracing::instrument(skip_all, fields(pledge.id = %id))]
pub async fn update(
    db: &Database,
    actor: &Actor,
    id: Uuid,
    edit: PledgeEdit,
    now: DateTime<Utc>,
) -> Result<Pledge, PledgeError> {
    let txn = db.begin_write_on(Areas::MOVEMENT).await?;
    let row = for_write(&*txn, actor, id).await?;
    if row.status == PledgeStatus::Withdrawn {
        return Err(PledgeError::Withdrawn);
    }
    if let Some(changes) = &edit.changes {
        let before = changes_of_one(&*txn, id).await?;
        let added: Vec<Change> = changes
            .as_slice()
            .iter()
            .copied()
            .filter(|c| !before.contains(c))
            .collect();
        let removed: Vec<Change> = before
            .iter()
            .copied()
            .filter(|c| !changes.as_slice().contains(c))
            .collect();
        // Both counts below take the changes' rows: lock them all first, in one order.
        let touched: Vec<&'static str> = removed.iter().chain(&added).map(|c| c.code()).collect();
        changes::lock_in_order(&*txn, &touched).await?;
        if !removed.is_empty() {
            pledge_change::Entity::delete_many()
                .filter(pledge_change::Column::PledgeId.eq(id))
                .filter(pledge_change::Column::Change.is_in(removed.iter().map(|c| c.code())))
                .exec(&*txn)
                .await?;
            changes::pledge_uncounted(&*txn, row.organisation_id, id, &removed).await?;
        }
        if !added.is_empty() {
            insert_changes(&*txn, id, &added).await?;
            changes::pledge_counted(&*txn, row.organisation_id, id, &added).await?;
        }
    }
    let mut active: pledge::ActiveModel = row.into();
    if let Some(title) = edit.title {
        active.title = Set(title.0);
    }
    if let Some(commitment) = edit.commitment {
        active.commitment = Set(commitment.0);
    }
    if let Some(due_by) = edit.due_by {
        active.due_by = Set(due_by.map(crate::time::Day::get));
    }
    active.updated_at = Set(now);
    let row = active.update(&*txn).await?;
    webhooks::emit(&*txn, webhooks::Emit::PledgeUpdated(&row), now).await?;
    txn.commit().await?;
    Ok(row.into())
}

/// Withdraws a pledge, publicly, with a reason. It stays readable; it no longer counts.
#[tracing::instrument(skip_all, fields(pledge.id = %id))]
pub async fn withdraw(
    db: &Database,
    actor: &Actor,
    id: Uuid,
    reason: WithdrawalReason,
    now: DateTime<Utc>,
) -> Result<Pledge, PledgeError> {
    let txn = db.begin_write_on(Areas::MOVEMENT).await?;
    let row = for_write(&*txn, actor, id).await?;
    if row.status == PledgeStatus::Withdrawn {
        return Err(PledgeError::Withdrawn);
    }
    let organisation_id = row.organisation_id;
    let mut active: pledge::ActiveModel = row.into();
    active.status = Set(PledgeStatus::Withdrawn);
    active.withdrawn_reason = Set(Some(reason.0));
    active.withdrawn_at = Set(Some(now));
    active.updated_at = Set(now);
    let row = active.update(&*txn).await?;
    let on = changes_of_one(&*txn, id).await?;
    changes::pledge_uncounted(&*txn, organisation_id, id, &on).await?;
    webhooks::emit(&*txn, webhooks::Emit::PledgeWithdrawn(&row), now).await?;
    txn.commit().await?;
    Ok(row.into())
}

pub(crate) async fn changes_of_one(
    conn: &impl ConnectionTrait,
    pledge_id: Uuid,
) -> Result<Vec<Change>, DbErr> {
    Ok(pledge_change::Entity::find()
        .filter(pledge_change::Column::PledgeId.eq(pledge_id))
        .all(conn)
        .await?
        .into_iter()
        .filter_map(|row| Change::from_code(&row.change))
        .collect())
}

/// The changes of each pledge, in published order, for batched loading.
pub async fn changes_of(
    db: &Database,
    pledge_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<Change>>, DbErr> {
    let mut map: HashMap<Uuid, Vec<Change>> = HashMap::new();
    if pledge_ids.is_empty() {
        return Ok(map);
    }
    // Two columns decoded by position: by name, sea-orm looks each up by hash.
    let rows: Vec<(Uuid, String)> = pledge_change::Entity::find()
        .select_only()
        .columns([
            pledge_change::Column::PledgeId,
            pledge_change::Column::Change,
        ])
        .filter(pledge_change::Column::PledgeId.is_in(pledge_ids.iter().copied()))
        .into_tuple()
        .all(db.reads())
        .await?;
    for (pledge_id, code) in rows {
        if let Some(change) = Change::from_code(&code) {
            map.entry(pledge_id).or_default().push(change);
        }
    }
    for changes in map.values_mut() {
        changes.sort();
    }
    Ok(map)
}

pub async fn by_id(db: &Database, id: Uuid) -> Result<Option<Pledge>, DbErr> {
    Ok(pledge::Entity::find_by_id(id)
        .one(db.reads())
        .await?
        .map(Pledge::from))
}

/// Pledges by id, for batched loading.
pub async fn by_ids(db: &Database, ids: &[Uuid]) -> Result<Vec<Pledge>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(pledge::Entity::find()
        .filter(pledge::Column::Id.is_in(ids.iter().copied()))
        .all(db.reads())
        .await?
        .into_iter()
        .map(Pledge::from)
        .collect())
}

fn filtered(
    filter: &PledgeFilter,
    now: DateTime<Utc>,
    quiet_after: TimeDelta,
) -> Select<pledge::Entity> {
    let mut query = pledge::Entity::find();
    if !filter.changes.is_empty() {
        query = query.filter(
            pledge::Column::Id.in_subquery(
                pledge_change::Entity::find()
                    .select_only()
                    .column(pledge_change::Column::PledgeId)
                    .filter(
                        pledge_change::Column::Change
                            .is_in(filter.changes.iter().map(|c| c.code())),
                    )
                    .into_query(),
            ),
        );
    }
    if let Some(id) = filter.organisation_id {
        query = query.filter(pledge::Column::OrganisationId.eq(id));
    }
    if filter.organisation_kind.is_some() || filter.region.is_some() {
        let mut organisations = organisation::Entity::find()
            .select_only()
            .column(organisation::Column::Id);
        if let Some(kind) = filter.organisation_kind {
            organisations = organisations.filter(organisation::Column::Kind.eq(kind));
        }
        if let Some(region) = filter.region {
            organisations = organisations.filter(organisation::Column::Region.eq(region));
        }
        query =
            query.filter(pledge::Column::OrganisationId.in_subquery(organisations.into_query()));
    }
    if let Some(status) = filter.status {
        query = query.filter(pledge::Column::Status.eq(status));
    }
    if let Some(id) = filter.coalition_id {
        query = query.filter(pledge::Column::CoalitionId.eq(id));
    }
    if let Some(gone_quiet) = filter.gone_quiet {
        let quiet = Condition::all()
            .add(pledge::Column::Status.eq(PledgeStatus::Active))
            .add(pledge::Column::LastActivityAt.lte(crate::time::before(now, quiet_after)));
        query = query.filter(if gone_quiet { quiet } else { quiet.not() });
    }
    if let Some(from) = filter.made_from {
        query = query.filter(pledge::Column::CreatedAt.gte(from));
    }
    if let Some(to) = filter.made_to {
        query = query.filter(pledge::Column::CreatedAt.lt(to));
    }
    query
}

/// A page of pledges matching `filter`, in the order they were made (a stable order: new
/// pledges join the end).
#[tracing::instrument(skip_all)]
pub async fn list(
    db: &Database,
    filter: &PledgeFilter,
    page: PageRequest,
    now: DateTime<Utc>,
    quiet_after: TimeDelta,
) -> Result<Page<Pledge>, DbErr> {
    let (total, query) = paged(db, filter, &page, now, quiet_after).await?;
    let rows = crate::page::rows(db.reads(), query, &page).await?;
    Ok(Page::from_rows(rows, page, total).map(Pledge::from))
}

/// The count of pledges matching `filter` when the page asks for it, and the statement for the
/// page's rows in id order, with no limit: `PageRequest::limit_rows` cuts it.
async fn paged(
    db: &Database,
    filter: &PledgeFilter,
    page: &PageRequest,
    now: DateTime<Utc>,
    quiet_after: TimeDelta,
) -> Result<(Option<u64>, Select<pledge::Entity>), DbErr> {
    let total = if page.count_total {
        Some(filtered(filter, now, quiet_after).count(db.reads()).await?)
    } else {
        None
    };
    let mut query = filtered(filter, now, quiet_after).order_by_asc(pledge::Column::Id);
    if let Some(after) = page.after {
        query = query.filter(pledge::Column::Id.gt(after));
    }
    Ok((total, query))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pledge(status: PledgeStatus, last_activity_at: DateTime<Utc>) -> Pledge {
        Pledge {
            id: Uuid::now_v7(),
            organisation_id: Uuid::now_v7(),
            coalition_id: None,
            title: "t".to_owned(),
            commitment: "c".to_owned(),
            due_by: None,
            status,
            withdrawn_reason: None,
            latest_update_id: None,
            last_activity_at,
            created_at: last_activity_at,
            updated_at: last_activity_at,
            achieved_at: None,
            withdrawn_at: None,
        }
    }

    #[test]
    fn only_an_active_pledge_quiet_for_the_whole_time_has_gone_quiet() {
        let now = crate::now();
        let sixty = TimeDelta::days(60);
        let quiet_since = now - sixty;
        assert!(pledge(PledgeStatus::Active, quiet_since).gone_quiet(now, sixty));
        assert!(
            !pledge(PledgeStatus::Active, quiet_since + TimeDelta::seconds(1))
                .gone_quiet(now, sixty)
        );
        assert!(!pledge(PledgeStatus::Achieved, quiet_since).gone_quiet(now, sixty));
        assert!(!pledge(PledgeStatus::Withdrawn, quiet_since).gone_quiet(now, sixty));
    }

    #[test]
    fn commitments_and_titles_are_bounded() {
        assert!(Commitment::parse(&"x".repeat(5000)).is_ok());
        assert!(Commitment::parse(&"x".repeat(5001)).is_err());
        assert!(PledgeTitle::parse("").is_err());
        assert!(WithdrawalReason::parse("Funding ended").is_ok());
    }
}
