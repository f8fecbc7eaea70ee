//! Coalitions of the willing: organisations acting together on a focused action. The forming
//! organisation leads; others ask to join (the lead approves) or are invited (they accept); any
//! member may leave except the lead, who hands the lead to another active member first or
//! concludes the coalition. A coalition is `FORMING` until a second organisation is an active
//! member, then `ACTIVE`, until its lead concludes it.

use crate::generations::Areas;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::{
    AccessError, Actor, Database, InvalidInput,
    access::{require_acts_for, require_someone},
    changes::{self, Change, ChangeSet},
    db::is_unique_violation,
    entities::{coalition, coalition_change, coalition_member, organisation},
    page::{Page, PageRequest},
    text::{self, Slug},
    webhooks,
};

pub use crate::entities::enums::{CoalitionStatus, MembershipStatus};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coalition {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub purpose: String,
    pub area: Option<String>,
    pub lead_organisation_id: Uuid,
    pub status: CoalitionStatus,
    pub created_at: DateTime<Utc>,
    pub concluded_at: Option<DateTime<Utc>>,
}

impl From<coalition::Model> for Coalition {
    fn from(row: coalition::Model) -> Self {
        Self {
            id: row.id,
            name: row.name,
            slug: row.slug,
            purpose: row.purpose,
            area: row.area,
            lead_organisation_id: row.lead_organisation_id,
            status: row.status,
            created_at: row.created_at,
            concluded_at: row.concluded_at,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub id: Uuid,
    pub coalition_id: Uuid,
    pub organisation_id: Uuid,
    pub status: MembershipStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<coalition_member::Model> for Membership {
    fn from(row: coalition_member::Model) -> Self {
        Self {
            id: row.id,
            coalition_id: row.coalition_id,
            organisation_id: row.organisation_id,
            status: row.status,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A coalition's name: 1 to 200 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoalitionName(String);

impl CoalitionName {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        text::bounded(value, 1, 200).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the coalition will do together: 1 to 2,000 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Purpose(String);

impl Purpose {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        let value = value.trim();
        let length = value.chars().count();
        if length == 0 {
            return Err(InvalidInput::new("must not be empty"));
        }
        if length > 2000 {
            return Err(InvalidInput::new(format!(
                "must be at most 2000 characters (it has {length})"
            )));
        }
        Ok(Self(value.to_owned()))
    }
}

/// The local area it works in ("Greater Manchester"): 1 to 200 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Area(String);

impl Area {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        text::bounded(value, 1, 200).map(Self)
    }
}

/// A validated request to form a coalition, led by `organisation_id`.
#[derive(Clone, Debug)]
pub struct NewCoalition {
    pub organisation_id: Uuid,
    pub name: CoalitionName,
    pub slug: Slug,
    pub purpose: Purpose,
    pub area: Option<Area>,
    pub changes: ChangeSet,
}

#[derive(Debug, thiserror::Error)]
pub enum CoalitionError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("No coalition has that id.")]
    NotFound,
    #[error("No organisation has that id.")]
    OrganisationNotFound,
    #[error("No coalition membership has that id.")]
    MembershipNotFound,
    #[error("Another coalition already uses the slug \"{0}\".")]
    SlugTaken(String),
    #[error("The coalition has concluded.")]
    Concluded,
    #[error("That organisation is not an active member of the coalition.")]
    NotActiveMember,
    #[error(
        "The lead organisation cannot leave: hand the lead to another active member first, or conclude the coalition."
    )]
    LeadCannotLeave,
    #[error("There is nothing to accept: {}", nothing_to_accept(*.0))]
    NothingToAccept(MembershipStatus),
    #[error("The membership changed at the same moment; please try again.")]
    ChangedMeanwhile,
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// Why a membership has nothing to accept, in plain words.
fn nothing_to_accept(status: MembershipStatus) -> &'static str {
    match status {
        MembershipStatus::Active => "the organisation is already a member.",
        MembershipStatus::Left => "the organisation has left the coalition.",
        MembershipStatus::Invited | MembershipStatus::Requested => "it is still waiting.",
    }
}

fn refuse_if_concluded(row: &coalition::Model) -> Result<(), CoalitionError> {
    if row.status == CoalitionStatus::Concluded {
        Err(CoalitionError::Concluded)
    } else {
        Ok(())
    }
}

/// The coalition, locked until the transaction ends: every change to its lead or members
/// starts here, so on PostgreSQL they queue on its row as they do on SQLite's single writer,
/// and a hand-over racing a leave never leaves a lead that has left.
async fn find(conn: &impl ConnectionTrait, id: Uuid) -> Result<coalition::Model, CoalitionError> {
    let query = coalition::Entity::find_by_id(id);
    let query = if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        query.lock_exclusive()
    } else {
        query
    };
    query.one(conn).await?.ok_or(CoalitionError::NotFound)
}

async fn require_organisation(conn: &impl ConnectionTrait, id: Uuid) -> Result<(), CoalitionError> {
    if organisation::Entity::find_by_id(id)
        .one(conn)
        .await?
        .is_none()
    {
        return Err(CoalitionError::OrganisationNotFound);
    }
    Ok(())
}

async fn membership(
    conn: &impl ConnectionTrait,
    coalition_id: Uuid,
    organisation_id: Uuid,
) -> Result<Option<coalition_member::Model>, DbErr> {
    coalition_member::Entity::find()
        .filter(coalition_member::Column::CoalitionId.eq(coalition_id))
        .filter(coalition_member::Column::OrganisationId.eq(organisation_id))
        .one(conn)
        .await
}

/// The status of `organisation_id`'s membership of `coalition_id`, if it has one.
pub(crate) async fn membership_status(
    conn: &impl ConnectionTrait,
    coalition_id: Uuid,
    organisation_id: Uuid,
) -> Result<Option<MembershipStatus>, DbErr> {
    Ok(membership(conn, coalition_id, organisation_id)
        .await?
        .map(|m| m.status))
}

async fn set_status(
    conn: &impl ConnectionTrait,
    row: coalition_member::Model,
    status: MembershipStatus,
    now: DateTime<Utc>,
) -> Result<coalition_member::Model, DbErr> {
    if row.status == status {
        return Ok(row);
    }
    let mut active: coalition_member::ActiveModel = row.into();
    active.status = Set(status);
    active.updated_at = Set(now);
    let row = active.update(conn).await?;
    webhooks::emit(conn, webhooks::Emit::CoalitionMembershipChanged(&row), now).await?;
    Ok(row)
}

/// Inserts a membership; when another transaction inserted the same one first (an invitation
/// and a request crossing on PostgreSQL), the unique key refuses it.
async fn insert_membership(
    conn: &impl ConnectionTrait,
    coalition_id: Uuid,
    organisation_id: Uuid,
    status: MembershipStatus,
    now: DateTime<Utc>,
) -> Result<coalition_member::Model, CoalitionError> {
    let row = coalition_member::Model {
        id: Uuid::now_v7(),
        coalition_id,
        organisation_id,
        status,
        created_at: now,
        updated_at: now,
    };
    match coalition_member::Entity::insert(coalition_member::ActiveModel::from(row.clone()))
        .exec_without_returning(conn)
        .await
    {
        Ok(_) => {
            webhooks::emit(conn, webhooks::Emit::CoalitionMembershipChanged(&row), now).await?;
            Ok(row)
        }
        Err(err) if is_unique_violation(&err) => Err(CoalitionError::ChangedMeanwhile),
        Err(err) => Err(err.into()),
    }
}

/// A forming coalition becomes active once a second organisation is an active member.
async fn activate_if_joined(
    conn: &impl ConnectionTrait,
    coalition: coalition::Model,
) -> Result<(), DbErr> {
    if coalition.status != CoalitionStatus::Forming {
        return Ok(());
    }
    let active = coalition_member::Entity::find()
        .filter(coalition_member::Column::CoalitionId.eq(coalition.id))
        .filter(coalition_member::Column::Status.eq(MembershipStatus::Active))
        .count(conn)
        .await?;
    if active >= 2 {
        let mut row: coalition::ActiveModel = coalition.into();
        row.status = Set(CoalitionStatus::Active);
        let row = row.update(conn).await?;
        webhooks::emit(conn, webhooks::Emit::CoalitionUpdated(&row), crate::now()).await?;
    }
    Ok(())
}

/// Forms a coalition led by `new.organisation_id`, whose people or token must act for it.
#[tracing::instrument(skip_all, fields(coalition.slug = %new.slug))]
pub async fn form(
    db: &Database,
    actor: &Actor,
    new: NewCoalition,
    now: DateTime<Utc>,
) -> Result<Coalition, CoalitionError> {
    require_someone(actor)?;
    let txn = db.begin_write_on(Areas::MOVEMENT).await?;
    // News: stamped after the latest digest's line if it races one (see `crate::fence`).
    let now = crate::fence::stamp(&*txn, now).await?;
    require_organisation(&*txn, new.organisation_id).await?;
    require_acts_for::<CoalitionError>(&*txn, actor, new.organisation_id).await?;
    let row = coalition::Model {
        id: Uuid::now_v7(),
        name: new.name.0,
        slug: new.slug.as_str().to_owned(),
        purpose: new.purpose.0,
        area: new.area.map(|a| a.0),
        lead_organisation_id: new.organisation_id,
        status: CoalitionStatus::Forming,
        created_at: now,
        concluded_at: None,
    };
    if let Err(err) = coalition::Entity::insert(coalition::ActiveModel::from(row.clone()))
        .exec_without_returning(&*txn)
        .await
    {
        return Err(if is_unique_violation(&err) {
            CoalitionError::SlugTaken(row.slug)
        } else {
            err.into()
        });
    }
    coalition_change::Entity::insert_many(new.changes.as_slice().iter().map(|c| {
        coalition_change::ActiveModel {
            coalition_id: Set(row.id),
            change: Set(c.code().to_owned()),
        }
    }))
    .exec_without_returning(&*txn)
    .await?;
    insert_membership(
        &*txn,
        row.id,
        new.organisation_id,
        MembershipStatus::Active,
        now,
    )
    .await?;
    changes::coalition_formed(&*txn, &new.changes).await?;
    txn.commit().await?;
    Ok(row.into())
}

/// The lead invites an organisation. An organisation that had asked to join becomes a member
/// at once; one already invited or active is left as it is.
#[tracing::instrument(skip_all, fields(coalition.id = %coalition_id, organisation.id = %organisation_id))]
pub async fn invite(
    db: &Database,
    actor: &Actor,
    coalition_id: Uuid,
    organisation_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Membership, CoalitionError> {
    require_someone(actor)?;
    let txn = db.begin_write_on(Areas::MOVEMENT).await?;
    // News when it makes a membership active (see `crate::fence`).
    let now = crate::fence::stamp(&*txn, now).await?;
    let coalition = find(&*txn, coalition_id).await?;
    require_acts_for::<CoalitionError>(&*txn, actor, coalition.lead_organisation_id).await?;
    refuse_if_concluded(&coalition)?;
    require_organisation(&*txn, organisation_id).await?;
    let row = reach_out(
        &*txn,
        coalition_id,
        organisation_id,
        MembershipStatus::Invited,
        now,
    )
    .await?;
    activate_if_joined(&*txn, coalition).await?;
    txn.commit().await?;
    Ok(row.into())
}

/// One side reaching out: the lead inviting (`Invited`) or an organisation asking
/// (`Requested`). Meeting the other side's open offer makes a member at once; an active
/// member stays one; otherwise the offer stands (again, if the organisation had left).
async fn reach_out(
    conn: &impl ConnectionTrait,
    coalition_id: Uuid,
    organisation_id: Uuid,
    offer: MembershipStatus,
    now: DateTime<Utc>,
) -> Result<coalition_member::Model, CoalitionError> {
    match membership(conn, coalition_id, organisation_id).await? {
        None => Ok(insert_membership(conn, coalition_id, organisation_id, offer, now).await?),
        Some(row) => {
            let met = matches!(
                (offer, row.status),
                (_, MembershipStatus::Active)
                    | (MembershipStatus::Invited, MembershipStatus::Requested)
                    | (MembershipStatus::Requested, MembershipStatus::Invited)
            );
            let status = if met { MembershipStatus::Active } else { offer };
            Ok(set_status(conn, row, status, now).await?)
        }
    }
}

/// An organisation asks to join. One already invited becomes a member at once; one already
/// asking or active is left as it is.
#[tracing::instrument(skip_all, fields(coalition.id = %coalition_id, organisation.id = %organisation_id))]
pub async fn request_to_join(
    db: &Database,
    actor: &Actor,
    coalition_id: Uuid,
    organisation_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Membership, CoalitionError> {
    require_someone(actor)?;
    let txn = db.begin_write_on(Areas::MOVEMENT).await?;
    // News when it makes a membership active (see `crate::fence`).
    let now = crate::fence::stamp(&*txn, now).await?;
    let coalition = find(&*txn, coalition_id).await?;
    require_organisation(&*txn, organisation_id).await?;
    require_acts_for::<CoalitionError>(&*txn, actor, organisation_id).await?;
    refuse_if_concluded(&coalition)?;
    let row = reach_out(
        &*txn,
        coalition_id,
        organisation_id,
        MembershipStatus::Requested,
        now,
    )
    .await?;
    activate_if_joined(&*txn, coalition).await?;
    txn.commit().await?;
    Ok(row.into())
}

/// Accepts a pending membership: the invited organisation accepts an invitation, or the lead
/// approves a request to join.
#[tracing::instrument(skip_all, fields(membership.id = %membership_id))]
pub async fn accept(
    db: &Database,
    actor: &Actor,
    membership_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Membership, CoalitionError> {
    require_someone(actor)?;
    let txn = db.begin_write_on(Areas::MOVEMENT).await?;
    // News: stamped after the latest digest's line if it races one (see `crate::fence`).
    let now = crate::fence::stamp(&*txn, now).await?;
    let row = coalition_member::Entity::find_by_id(membership_id)
        .one(&*txn)
        .await?
        .ok_or(CoalitionError::MembershipNotFound)?;
    let coalition = find(&*txn, row.coalition_id).await?;
    // Read again under the coalition's lock: it may have changed while we waited.
    let row = coalition_member::Entity::find_by_id(membership_id)
        .one(&*txn)
        .await?
        .ok_or(CoalitionError::MembershipNotFound)?;
    let who_accepts = match row.status {
        MembershipStatus::Invited => row.organisation_id,
        MembershipStatus::Requested => coalition.lead_organisation_id,
        // Only the parties to a membership learn that there is nothing to accept.
        status => {
            require_acts_for_either(
                &*txn,
                actor,
                row.organisation_id,
                coalition.lead_organisation_id,
            )
            .await?;
            return Err(CoalitionError::NothingToAccept(status));
        }
    };
    require_acts_for::<CoalitionError>(&*txn, actor, who_accepts).await?;
    refuse_if_concluded(&coalition)?;
    let row = set_status(&*txn, row, MembershipStatus::Active, now).await?;
    activate_if_joined(&*txn, coalition).await?;
    txn.commit().await?;
    Ok(row.into())
}

async fn require_acts_for_either(
    conn: &impl ConnectionTrait,
    actor: &Actor,
    first: Uuid,
    second: Uuid,
) -> Result<(), CoalitionError> {
    match require_acts_for::<CoalitionError>(conn, actor, first).await {
        Ok(()) => Ok(()),
        Err(CoalitionError::Access(_)) => {
            require_acts_for::<CoalitionError>(conn, actor, second).await
        }
        Err(err) => Err(err),
    }
}

/// An organisation leaves (or withdraws its request, or declines its invitation). The lead
/// cannot leave; it hands the lead on or concludes the coalition.
#[tracing::instrument(skip_all, fields(coalition.id = %coalition_id, organisation.id = %organisation_id))]
pub async fn leave(
    db: &Database,
    actor: &Actor,
    coalition_id: Uuid,
    organisation_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Membership, CoalitionError> {
    require_someone(actor)?;
    let txn = db.begin_write_on(Areas::MOVEMENT).await?;
    let coalition = find(&*txn, coalition_id).await?;
    require_organisation(&*txn, organisation_id).await?;
    require_acts_for::<CoalitionError>(&*txn, actor, organisation_id).await?;
    let row = membership(&*txn, coalition_id, organisation_id)
        .await?
        .ok_or(CoalitionError::MembershipNotFound)?;
    if coalition.lead_organisation_id == organisation_id {
        return Err(CoalitionError::LeadCannotLeave);
    }
    let row = set_status(&*txn, row, MembershipStatus::Left, now).await?;
    txn.commit().await?;
    Ok(row.into())
}

/// The lead concludes the coalition: it takes no more members, pledges or updates.
#[tracing::instrument(skip_all, fields(coalition.id = %coalition_id))]
pub async fn conclude(
    db: &Database,
    actor: &Actor,
    coalition_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Coalition, CoalitionError> {
    require_someone(actor)?;
    let txn = db.begin_write_on(Areas::MOVEMENT).await?;
    let coalition = find(&*txn, coalition_id).await?;
    require_acts_for::<CoalitionError>(&*txn, actor, coalition.lead_organisation_id).await?;
    refuse_if_concluded(&coalition)?;
    let mut row: coalition::ActiveModel = coalition.into();
    row.status = Set(CoalitionStatus::Concluded);
    row.concluded_at = Set(Some(now));
    let row = row.update(&*txn).await?;
    webhooks::emit(&*txn, webhooks::Emit::CoalitionUpdated(&row), now).await?;
    txn.commit().await?;
    Ok(row.into())
}

/// The lead hands the lead to another active member.
#[tracing::instrument(skip_all, fields(coalition.id = %coalition_id, organisation.id = %organisation_id))]
pub async fn hand_over_lead(
    db: &Database,
    actor: &Actor,
    coalition_id: Uuid,
    organisation_id: Uuid,
) -> Result<Coalition, CoalitionError> {
    require_someone(actor)?;
    let txn = db.begin_write_on(Areas::MOVEMENT).await?;
    let coalition = find(&*txn, coalition_id).await?;
    require_acts_for::<CoalitionError>(&*txn, actor, coalition.lead_organisation_id).await?;
    refuse_if_concluded(&coalition)?;
    if membership_status(&*txn, coalition_id, organisation_id).await?
        != Some(MembershipStatus::Active)
    {
        return Err(CoalitionError::NotActiveMember);
    }
    let mut row: coalition::ActiveModel = coalition.into();
    row.lead_organisation_id = Set(organisation_id);
    let row = row.update(&*txn).await?;
    webhooks::emit(&*txn, webhooks::Emit::CoalitionUpdated(&row), crate::now()).await?;
    txn.commit().await?;
    Ok(row.into())
}

pub async fn by_slug(db: &Database, slug: &str) -> Result<Option<Coalition>, DbErr> {
    Ok(coalition::Entity::find()
        .filter(coalition::Column::Slug.eq(slug.trim()))
        .one(db.reads())
        .await?
        .map(Coalition::from))
}

/// Coalitions by id, for batched loading.
pub async fn by_ids(db: &Database, ids: &[Uuid]) -> Result<Vec<Coalition>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(coalition::Entity::find()
        .filter(coalition::Column::Id.is_in(ids.iter().copied()))
        .all(db.reads())
        .await?
        .into_iter()
        .map(Coalition::from)
        .collect())
}

/// The changes each coalition focuses on, in published order, for batched loading.
pub async fn changes_of(
    db: &Database,
    coalition_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<Change>>, DbErr> {
    changes_of_in(db.reads(), coalition_ids).await
}

pub(crate) async fn changes_of_in(
    conn: &impl ConnectionTrait,
    coalition_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<Change>>, DbErr> {
    let mut map: HashMap<Uuid, Vec<Change>> = HashMap::new();
    if coalition_ids.is_empty() {
        return Ok(map);
    }
    let rows = coalition_change::Entity::find()
        .filter(coalition_change::Column::CoalitionId.is_in(coalition_ids.iter().copied()))
        .all(conn)
        .await?;
    for row in rows {
        if let Some(change) = Change::from_code(&row.change) {
            map.entry(row.coalition_id).or_default().push(change);
        }
    }
    for changes in map.values_mut() {
        changes.sort();
    }
    Ok(map)
}

/// The most memberships `Coalition.members` shows: the first this many by when they began.
pub const MAX_MEMBERS: u64 = 100;

/// Each coalition's memberships (every status), in the order they began, for batched loading;
/// at most [`MAX_MEMBERS`] each.
pub async fn members_of(
    db: &Database,
    coalition_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<Membership>>, DbErr> {
    let mut map: HashMap<Uuid, Vec<Membership>> = HashMap::new();
    if coalition_ids.is_empty() {
        return Ok(map);
    }
    let rows = coalition_member::Entity::find()
        .filter(coalition_member::Column::CoalitionId.is_in(coalition_ids.iter().copied()))
        .order_by_asc(coalition_member::Column::Id)
        .all(db.reads())
        .await?;
    for row in rows {
        let members = map.entry(row.coalition_id).or_default();
        if (members.len() as u64) < MAX_MEMBERS {
            members.push(Membership::from(row));
        }
    }
    Ok(map)
}

/// The organisations among `organisation_ids` that are active members of `coalition_id`.
pub(crate) async fn active_members_among(
    conn: &impl ConnectionTrait,
    coalition_id: Uuid,
    organisation_ids: &[Uuid],
) -> Result<Vec<Uuid>, DbErr> {
    if organisation_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(coalition_member::Entity::find()
        .filter(coalition_member::Column::CoalitionId.eq(coalition_id))
        .filter(coalition_member::Column::Status.eq(MembershipStatus::Active))
        .filter(coalition_member::Column::OrganisationId.is_in(organisation_ids.iter().copied()))
        .order_by_asc(coalition_member::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(|m| m.organisation_id)
        .collect())
}

/// Coalitions in the order they formed.
pub async fn list(db: &Database, page: PageRequest) -> Result<Page<Coalition>, DbErr> {
    let total = if page.count_total {
        Some(coalition::Entity::find().count(db.reads()).await?)
    } else {
        None
    };
    let mut query = coalition::Entity::find().order_by_asc(coalition::Column::Id);
    if let Some(after) = page.after {
        query = query.filter(coalition::Column::Id.gt(after));
    }
    let rows = crate::page::rows(db.reads(), query, &page).await?;
    Ok(Page::from_rows(rows, page, total).map(Coalition::from))
}
