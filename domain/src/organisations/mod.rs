//! Organisations that pledge and report: their members (owners and members) and the API tokens
//! their owners make for integrations. Only an organisation's owners manage it.

mod tokens;

pub use tokens::{
    API_TOKEN_PREFIX, ApiToken, NewApiToken, api_tokens, create_api_token, revoke_api_token,
    token_name,
};

use crate::generations::Areas;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    AccessError, Actor, Database, InvalidInput,
    access::role_of,
    db::is_unique_violation,
    entities::{organisation, organisation_member},
    mail::{self, Mail, Template},
    page::{Page, PageRequest},
    people::{self, EmailAddress},
    text::{self, Slug, WebUrl},
};

pub use crate::entities::enums::{OrganisationKind, OrganisationRole, Region};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organisation {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub kind: OrganisationKind,
    pub region: Region,
    pub website: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<organisation::Model> for Organisation {
    fn from(row: organisation::Model) -> Self {
        Self {
            id: row.id,
            name: row.name,
            slug: row.slug,
            kind: row.kind,
            region: row.region,
            website: row.website,
            created_at: row.created_at,
        }
    }
}

/// An organisation's name: 1 to 200 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrganisationName(String);

impl OrganisationName {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        text::bounded(value, 1, 200).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated request to create an organisation.
#[derive(Clone, Debug)]
pub struct NewOrganisation {
    pub name: OrganisationName,
    pub slug: Slug,
    pub kind: OrganisationKind,
    pub region: Region,
    pub website: Option<WebUrl>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub person_id: Uuid,
    pub role: OrganisationRole,
    pub created_at: DateTime<Utc>,
}

impl From<organisation_member::Model> for Member {
    fn from(row: organisation_member::Model) -> Self {
        Self {
            id: row.id,
            organisation_id: row.organisation_id,
            person_id: row.person_id,
            role: row.role,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OrganisationError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("No organisation has that id.")]
    NotFound,
    #[error("No API token has that id.")]
    TokenNotFound,
    #[error("Another organisation already uses the slug \"{0}\".")]
    SlugTaken(String),
    #[error("An organisation needs at least one owner; make someone else an owner first.")]
    LastOwner,
    #[error("You can add at most {0} members to organisations an hour. Try again later.")]
    TooManyAdded(u32),
    #[error("Someone else added this person at the same moment; look at the members again.")]
    AddedMeanwhile,
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// Creates an organisation; the person creating it becomes its first owner.
#[tracing::instrument(skip_all, fields(organisation.slug = %new.slug))]
pub async fn create(
    db: &Database,
    actor: &Actor,
    new: NewOrganisation,
    now: DateTime<Utc>,
) -> Result<Organisation, OrganisationError> {
    let (person_id, _) = actor.person()?;
    let txn = db.begin_write_on(Areas::MOVEMENT).await?;
    let row = organisation::Model {
        id: Uuid::now_v7(),
        name: new.name.0,
        slug: new.slug.as_str().to_owned(),
        kind: new.kind,
        region: new.region,
        website: new.website.map(|url| url.as_str().to_owned()),
        created_at: now,
    };
    let active: organisation::ActiveModel = row.clone().into();
    if let Err(err) = organisation::Entity::insert(active)
        .exec_without_returning(&*txn)
        .await
    {
        return Err(if is_unique_violation(&err) {
            OrganisationError::SlugTaken(row.slug)
        } else {
            err.into()
        });
    }
    insert_member(&*txn, row.id, person_id, OrganisationRole::Owner, None, now).await?;
    txn.commit().await?;
    Ok(row.into())
}

async fn insert_member(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    person_id: Uuid,
    role: OrganisationRole,
    added_by: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<organisation_member::Model, DbErr> {
    let row = organisation_member::Model {
        id: Uuid::now_v7(),
        organisation_id,
        person_id,
        role,
        created_at: now,
        added_by,
    };
    organisation_member::Entity::insert(organisation_member::ActiveModel::from(row.clone()))
        .exec_without_returning(conn)
        .await?;
    Ok(row)
}

/// The role `person_id` holds in `organisation_id`, if any.
pub async fn role(
    db: &Database,
    organisation_id: Uuid,
    person_id: Uuid,
) -> Result<Option<OrganisationRole>, DbErr> {
    role_of(db.reads(), organisation_id, person_id).await
}

/// Refuses anyone but an owner of `organisation_id` (which must exist); returns the owner.
pub(crate) async fn require_owner(
    conn: &impl ConnectionTrait,
    actor: &Actor,
    organisation_id: Uuid,
) -> Result<Uuid, OrganisationError> {
    let (person_id, _) = actor.person()?;
    if organisation::Entity::find_by_id(organisation_id)
        .one(conn)
        .await?
        .is_none()
    {
        return Err(OrganisationError::NotFound);
    }
    match role_of(conn, organisation_id, person_id).await? {
        Some(OrganisationRole::Owner) => Ok(person_id),
        _ => Err(AccessError::Forbidden("only the organisation's owners can manage it").into()),
    }
}

/// Adds the person with `email` (creating them if new) to the organisation with `role`, or
/// changes the role of an existing member. Owners only. The person is told by email.
#[tracing::instrument(skip_all, fields(organisation.id = %organisation_id, member.role = ?role))]
pub async fn add_member(
    db: &Database,
    actor: &Actor,
    organisation_id: Uuid,
    email: &EmailAddress,
    role: OrganisationRole,
    limits: crate::Limits,
    now: DateTime<Utc>,
) -> Result<Member, OrganisationError> {
    let (caller, _) = actor.person()?;
    let txn = db.begin_write_on(Areas::MOVEMENT).await?;
    // Changes to one organisation's members queue on its row, so two owners demoting each
    // other at once are decided one after the other and one owner always remains.
    lock(&*txn, organisation_id).await?;
    require_owner(&*txn, actor, organisation_id).await?;
    crate::limits::serialise_count(&*txn, &format!("members-added:{caller}")).await?;
    let added_lately = organisation_member::Entity::find()
        .filter(organisation_member::Column::AddedBy.eq(caller))
        .filter(organisation_member::Column::CreatedAt.gt(now - chrono::Duration::hours(1)))
        .count(&*txn)
        .await?;
    let person = people::find_or_create(&*txn, email, now).await?;
    let existing = organisation_member::Entity::find()
        .filter(organisation_member::Column::OrganisationId.eq(organisation_id))
        .filter(organisation_member::Column::PersonId.eq(person.id))
        .one(&*txn)
        .await?;
    let member = match existing {
        Some(member) if member.role == role => member,
        Some(member) => {
            if member.role == OrganisationRole::Owner
                && owner_count(&*txn, organisation_id).await? <= 1
            {
                return Err(OrganisationError::LastOwner);
            }
            let mut active: organisation_member::ActiveModel = member.into();
            active.role = Set(role);
            sea_orm::ActiveModelTrait::update(active, &*txn).await?
        }
        None => {
            // Only a new member is mailed, so only new members count against the limit.
            if added_lately >= u64::from(limits.members_added_per_hour) {
                return Err(OrganisationError::TooManyAdded(
                    limits.members_added_per_hour,
                ));
            }
            let inserted =
                insert_member(&*txn, organisation_id, person.id, role, Some(caller), now).await;
            let member = match inserted {
                Ok(member) => member,
                Err(err) if is_unique_violation(&err) => {
                    return Err(OrganisationError::AddedMeanwhile);
                }
                Err(err) => return Err(err.into()),
            };
            let organisation = organisation::Entity::find_by_id(organisation_id)
                .one(&*txn)
                .await?
                .ok_or(OrganisationError::NotFound)?;
            mail::enqueue(
                &*txn,
                Mail {
                    recipient: email.clone(),
                    template: Template::AddedToOrganisation,
                    context: json!({
                        "organisation_name": organisation.name,
                        "organisation_slug": organisation.slug,
                        "owner": role == OrganisationRole::Owner,
                    }),
                },
                now,
            )
            .await?;
            member
        }
    };
    txn.commit().await?;
    Ok(member.into())
}

/// Locks the organisation's row until the transaction ends (PostgreSQL; SQLite writes one at a
/// time already).
pub(crate) async fn lock(conn: &impl ConnectionTrait, id: Uuid) -> Result<(), DbErr> {
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        organisation::Entity::find_by_id(id)
            .lock_exclusive()
            .one(conn)
            .await?;
    }
    Ok(())
}

/// Locks the organisation's row for the rest of the transaction (PostgreSQL; SQLite writers
/// are already one at a time), so the changes' organisation counts stay exact under concurrent
/// pledge writes for one organisation (and webhook endpoints within their limit). False when
/// there is no such organisation.
pub(crate) async fn lock_organisation(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
) -> Result<bool, DbErr> {
    Ok(organisation::Entity::find_by_id(organisation_id)
        .lock_exclusive()
        .one(conn)
        .await?
        .is_some())
}

pub(crate) async fn owner_count(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
) -> Result<u64, DbErr> {
    organisation_member::Entity::find()
        .filter(organisation_member::Column::OrganisationId.eq(organisation_id))
        .filter(organisation_member::Column::Role.eq(OrganisationRole::Owner))
        .count(conn)
        .await
}

/// The most members `Organisation.members` shows: the first this many to join.
pub const MAX_MEMBERS_SHOWN: u64 = 100;
/// The most API tokens `Organisation.apiTokens` shows: the newest this many.
pub const MAX_API_TOKENS_SHOWN: u64 = 50;
/// The most memberships `Person.organisations` shows: the first this many.
pub const MAX_MEMBERSHIPS_SHOWN: u64 = 100;

/// An organisation's members (at most [`MAX_MEMBERS_SHOWN`]), shown to its own members and to
/// admins.
pub async fn members(
    db: &Database,
    actor: &Actor,
    organisation_id: Uuid,
) -> Result<Vec<Member>, OrganisationError> {
    if !actor.is_admin() {
        let (person_id, _) = actor.person()?;
        if role_of(db.reads(), organisation_id, person_id)
            .await?
            .is_none()
        {
            return Err(
                AccessError::Forbidden("only an organisation's members see its members").into(),
            );
        }
    }
    Ok(organisation_member::Entity::find()
        .filter(organisation_member::Column::OrganisationId.eq(organisation_id))
        .order_by_asc(organisation_member::Column::Id)
        .limit(MAX_MEMBERS_SHOWN)
        .all(db.reads())
        .await?
        .into_iter()
        .map(Member::from)
        .collect())
}

/// The organisations a person belongs to, with their role in each (at most
/// [`MAX_MEMBERSHIPS_SHOWN`]).
pub async fn memberships_of(db: &Database, person_id: Uuid) -> Result<Vec<Member>, DbErr> {
    Ok(organisation_member::Entity::find()
        .filter(organisation_member::Column::PersonId.eq(person_id))
        .order_by_asc(organisation_member::Column::Id)
        .limit(MAX_MEMBERSHIPS_SHOWN)
        .all(db.reads())
        .await?
        .into_iter()
        .map(Member::from)
        .collect())
}

pub async fn by_slug(db: &Database, slug: &str) -> Result<Option<Organisation>, DbErr> {
    Ok(organisation::Entity::find()
        .filter(organisation::Column::Slug.eq(slug.trim()))
        .one(db.reads())
        .await?
        .map(Organisation::from))
}

/// Organisations by id, for batched loading.
pub async fn by_ids(db: &Database, ids: &[Uuid]) -> Result<Vec<Organisation>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(organisation::Entity::find()
        .filter(organisation::Column::Id.is_in(ids.iter().copied()))
        .all(db.reads())
        .await?
        .into_iter()
        .map(Organisation::from)
        .collect())
}

/// A page of organisations in the order they joined.
pub async fn list(db: &Database, page: PageRequest) -> Result<Page<Organisation>, DbErr> {
    let total = if page.count_total {
        Some(organisation::Entity::find().count(db.reads()).await?)
    } else {
        None
    };
    let mut query = organisation::Entity::find().order_by_asc(organisation::Column::Id);
    if let Some(after) = page.after {
        query = query.filter(organisation::Column::Id.gt(after));
    }
    let rows = crate::page::rows(db.reads(), query, &page).await?;
    Ok(Page::from_rows(rows, page, total).map(Organisation::from))
}
