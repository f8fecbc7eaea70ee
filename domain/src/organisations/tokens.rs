//! Organisation API tokens: random, shown once, stored only as a hash, revocable.

use crate::generations::Areas;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::{OrganisationError, require_owner};
use crate::{
    Actor, Database, InvalidInput,
    entities::api_token,
    secrets::{hash_token, random_token},
    text,
};

pub use crate::access::API_TOKEN_PREFIX;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiToken {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub name: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<api_token::Model> for ApiToken {
    fn from(row: api_token::Model) -> Self {
        Self {
            id: row.id,
            organisation_id: row.organisation_id,
            name: row.name,
            created_by: row.created_by,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// A token just made: `token` is shown this once and never stored.
#[derive(Clone, Debug)]
pub struct NewApiToken {
    pub token: String,
    pub api_token: ApiToken,
}

/// Validates a token's name: 1 to 100 characters.
pub fn token_name(value: &str) -> Result<String, InvalidInput> {
    text::bounded(value, 1, 100)
}

#[tracing::instrument(skip_all, fields(organisation.id = %organisation_id))]
pub async fn create_api_token(
    db: &Database,
    actor: &Actor,
    organisation_id: Uuid,
    name: &str,
    now: DateTime<Utc>,
) -> Result<NewApiToken, OrganisationError> {
    let txn = db.begin_write_on(Areas::NONE).await?;
    let owner = require_owner(&*txn, actor, organisation_id).await?;
    let token = random_token(API_TOKEN_PREFIX);
    let row = api_token::Model {
        id: Uuid::now_v7(),
        organisation_id,
        name: name.to_owned(),
        token_hash: hash_token(&token),
        created_by: Some(owner),
        created_at: now,
        last_used_at: None,
        revoked_at: None,
    };
    api_token::Entity::insert(api_token::ActiveModel::from(row.clone()))
        .exec_without_returning(&*txn)
        .await?;
    txn.commit().await?;
    Ok(NewApiToken {
        token,
        api_token: row.into(),
    })
}

/// Revokes a token; owners of its organisation only. Revoking twice is harmless.
#[tracing::instrument(skip_all, fields(api_token.id = %token_id))]
pub async fn revoke_api_token(
    db: &Database,
    actor: &Actor,
    token_id: Uuid,
    now: DateTime<Utc>,
) -> Result<ApiToken, OrganisationError> {
    let txn = db.begin_write_on(Areas::NONE).await?;
    let row = api_token::Entity::find_by_id(token_id)
        .one(&*txn)
        .await?
        .ok_or(OrganisationError::TokenNotFound)?;
    require_owner(&*txn, actor, row.organisation_id).await?;
    let row = if row.revoked_at.is_none() {
        let mut active: api_token::ActiveModel = row.into();
        active.revoked_at = Set(Some(now));
        sea_orm::ActiveModelTrait::update(active, &*txn).await?
    } else {
        row
    };
    txn.commit().await?;
    Ok(row.into())
}

/// An organisation's tokens, newest first (at most [`super::MAX_API_TOKENS_SHOWN`]); owners only.
pub async fn api_tokens(
    db: &Database,
    actor: &Actor,
    organisation_id: Uuid,
) -> Result<Vec<ApiToken>, OrganisationError> {
    require_owner(db.reads(), actor, organisation_id).await?;
    Ok(api_token::Entity::find()
        .filter(api_token::Column::OrganisationId.eq(organisation_id))
        .order_by_desc(api_token::Column::Id)
        .limit(super::MAX_API_TOKENS_SHOWN)
        .all(db.reads())
        .await?
        .into_iter()
        .map(ApiToken::from)
        .collect())
}
