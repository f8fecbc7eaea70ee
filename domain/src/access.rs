//! Who is acting, and the refusals every area shares: the caller as established from a session
//! or an organisation API token, read straight from their tables, so every area can ask who is
//! calling without importing `people` or `organisations`, which make the credentials.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, QueryFilter, QuerySelect,
    QueryTrait, sea_query::Expr,
};
use uuid::Uuid;

use crate::{
    Database,
    entities::{
        api_token,
        enums::{OrganisationRole, Role},
        organisation_member, person, session,
    },
    fixed::Fixed,
    generations::Areas,
    secrets::hash_token,
};

/// How a session token starts (`people` makes them).
pub const SESSION_TOKEN_PREFIX: &str = "gss_";

/// How an organisation API token starts (`organisations` makes them).
pub const API_TOKEN_PREFIX: &str = "gso_";

/// How stale an API token's `last_used_at` may get before a use writes it again; keeps reads
/// from writing.
const LAST_USED_PRECISION: Duration = Duration::minutes(5);

/// The caller of a service, as established by a session or an organisation API token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    Anonymous,
    /// A person signed in with a session.
    Person {
        person_id: Uuid,
        role: Role,
        session_id: Uuid,
    },
    /// An integration acting for one organisation with its API token.
    Organisation {
        organisation_id: Uuid,
        token_id: Uuid,
    },
}

impl Actor {
    /// The signed-in person, or `Unauthenticated`; organisation tokens act for an organisation,
    /// never for a person.
    pub fn person(&self) -> Result<(Uuid, Role), AccessError> {
        match self {
            Actor::Person {
                person_id, role, ..
            } => Ok((*person_id, *role)),
            Actor::Anonymous => Err(AccessError::Unauthenticated),
            Actor::Organisation { .. } => Err(AccessError::Forbidden(
                "this needs a person's sign-in, not an organisation API token",
            )),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Actor::Person {
                role: Role::Admin,
                ..
            }
        )
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    #[error("You need to sign in to do this.")]
    Unauthenticated,
    #[error("You are not allowed to do this: {0}.")]
    Forbidden(&'static str),
}

/// Establishes who is calling from a presented credential: a session token (`gss_…`) or an
/// organisation API token (`gso_…`). `Ok(None)` means no such credential: unknown, expired,
/// revoked or malformed. That is not the same as calling with none (`Actor::Anonymous`): the
/// transport refuses it, so an integration whose token was revoked learns so at once instead of
/// reading on as nobody. A database failure stays an error.
#[tracing::instrument(skip_all)]
pub async fn authenticate(
    db: &Database,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<Actor>, DbErr> {
    let token = token.trim();
    if token.starts_with(API_TOKEN_PREFIX) {
        token_actor(db, token, now).await
    } else if token.starts_with(SESSION_TOKEN_PREFIX) {
        session_actor(db, token, now).await
    } else {
        Ok(None)
    }
}

/// The person behind a session token, if the session is live.
async fn session_actor(
    db: &Database,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<Actor>, sea_orm::DbErr> {
    /// The session and its person's role, read in one statement: every signed-in request
    /// starts here.
    #[derive(FromQueryResult)]
    struct Live {
        session_id: Uuid,
        person_id: Uuid,
        role: Role,
    }
    static STATEMENT: Fixed = Fixed::new();
    let hash = hash_token(token);
    let statement =
        STATEMENT.statement(db.backend(), vec![hash.clone().into(), now.into()], || {
            live_session(hash, now).build(db.backend())
        });
    let live = Live::find_by_statement(statement).one(db.reads()).await?;
    Ok(live.map(|live| Actor::Person {
        person_id: live.person_id,
        role: live.role,
        session_id: live.session_id,
    }))
}

/// The select of a live session by its token's hash, with its person's role.
fn live_session(hash: String, now: DateTime<Utc>) -> sea_orm::Select<session::Entity> {
    session::Entity::find()
        .select_only()
        .column_as(session::Column::Id, "session_id")
        .column_as(person::Column::Id, "person_id")
        .column_as(person::Column::Role, "role")
        .join(
            sea_orm::JoinType::InnerJoin,
            session::Entity::belongs_to(person::Entity)
                .from(session::Column::PersonId)
                .to(person::Column::Id)
                .into(),
        )
        .filter(session::Column::TokenHash.eq(hash))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
}

/// The organisation behind an API token, if the token is live; notes when it was used.
async fn token_actor(
    db: &Database,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<Actor>, sea_orm::DbErr> {
    let Some(row) = api_token::Entity::find()
        .filter(api_token::Column::TokenHash.eq(hash_token(token)))
        .filter(api_token::Column::RevokedAt.is_null())
        .one(db.reads())
        .await?
    else {
        return Ok(None);
    };
    if row
        .last_used_at
        .is_none_or(|at| now - at > LAST_USED_PRECISION)
    {
        let txn = db.begin_write_on(Areas::NONE).await?;
        api_token::Entity::update_many()
            .col_expr(api_token::Column::LastUsedAt, Expr::value(now))
            .filter(api_token::Column::Id.eq(row.id))
            .exec(&*txn)
            .await?;
        txn.commit().await?;
    }
    Ok(Some(Actor::Organisation {
        organisation_id: row.organisation_id,
        token_id: row.id,
    }))
}

/// Refuses anyone who does not act for `organisation_id`: its people (owners and members) and
/// its own API tokens do; nobody else, admins included, pledges or reports in its name.
pub(crate) async fn require_acts_for<E>(
    conn: &impl sea_orm::ConnectionTrait,
    actor: &Actor,
    organisation_id: Uuid,
) -> Result<(), E>
where
    E: From<AccessError> + From<sea_orm::DbErr>,
{
    let allowed = match actor {
        Actor::Anonymous => return Err(AccessError::Unauthenticated.into()),
        Actor::Organisation {
            organisation_id: own,
            ..
        } => *own == organisation_id,
        Actor::Person { person_id, .. } => {
            role_of(conn, organisation_id, *person_id).await?.is_some()
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(
            AccessError::Forbidden("only the organisation's members and its API tokens act for it")
                .into(),
        )
    }
}

/// The person's role in an organisation, if they are a member (`organisations::role` outside
/// a transaction).
pub(crate) async fn role_of(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    person_id: Uuid,
) -> Result<Option<OrganisationRole>, DbErr> {
    Ok(organisation_member::Entity::find()
        .filter(organisation_member::Column::OrganisationId.eq(organisation_id))
        .filter(organisation_member::Column::PersonId.eq(person_id))
        .one(conn)
        .await?
        .map(|m| m.role))
}

/// Refuses nobody (`Unauthenticated`) before any lookup, so an anonymous caller learns nothing
/// about which ids exist.
pub(crate) fn require_someone(actor: &Actor) -> Result<(), AccessError> {
    match actor {
        Actor::Anonymous => Err(AccessError::Unauthenticated),
        _ => Ok(()),
    }
}

impl Actor {
    /// The person behind the call, when it is a person rather than an API token.
    pub fn person_id(&self) -> Option<Uuid> {
        match self {
            Actor::Person { person_id, .. } => Some(*person_id),
            _ => None,
        }
    }
}
