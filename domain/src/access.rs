//! Who is acting, and the refusals every area shares.

use uuid::Uuid;

use crate::people::Role;

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
    db: &crate::Database,
    token: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Actor>, sea_orm::DbErr> {
    let token = token.trim();
    if token.starts_with(crate::organisations::API_TOKEN_PREFIX) {
        crate::organisations::token_actor(db, token, now).await
    } else if token.starts_with(crate::people::SESSION_TOKEN_PREFIX) {
        crate::people::session_actor(db, token, now).await
    } else {
        Ok(None)
    }
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
            crate::organisations::role_of(conn, organisation_id, *person_id)
                .await?
                .is_some()
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
