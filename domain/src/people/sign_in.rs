//! Passwordless sign-in: a one-time link by email, exchanged once for a session.
//!
//! The link's token is derived from the server's secret key and the request's id, so the queued
//! mail and the database hold only the id and the token's hash; the delivery worker derives the
//! token again when it writes the mail.

use crate::generations::Areas;
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    sea_query::Expr,
};
use serde_json::json;
use uuid::Uuid;

use super::{EmailAddress, PeopleError, Person, find_or_create};
use crate::{
    Actor, Database,
    access::AccessError,
    entities::{session, sign_in_token},
    mail::{self, Mail, Template},
    secrets::{SecretKey, hash_token, random_token},
};

pub const SIGN_IN_PURPOSE: &str = "sign-in";
pub const SIGN_IN_LINK_LIFETIME: Duration = Duration::minutes(30);
pub const SIGN_IN_REQUESTS_PER_HOUR: u64 = 5;
pub use crate::access::SESSION_TOKEN_PREFIX;
const SESSION_LIFETIME: Duration = Duration::days(30);

/// Queues a sign-in link for `email`, whether or not an account exists. Refused after
/// [`SIGN_IN_REQUESTS_PER_HOUR`] requests for one address within an hour.
#[tracing::instrument(skip_all)]
pub async fn request_sign_in(
    db: &Database,
    secret: &SecretKey,
    email: &EmailAddress,
    now: DateTime<Utc>,
) -> Result<(), PeopleError> {
    let txn = db.begin_write_on(Areas::NONE).await?;
    if db.backend() == sea_orm::DbBackend::Postgres {
        // Requests for one address queue here, so the count below cannot be passed by several
        // at once. (On SQLite, writers are one at a time already.)
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            [format!("sign-in:{}", email.as_str()).into()],
        ))
        .await?;
    }
    let recent = sign_in_token::Entity::find()
        .filter(sign_in_token::Column::Email.eq(email.as_str()))
        .filter(sign_in_token::Column::CreatedAt.gt(now - Duration::hours(1)))
        .count(&*txn)
        .await?;
    if recent >= SIGN_IN_REQUESTS_PER_HOUR {
        return Err(PeopleError::TooManySignInRequests);
    }
    let id = Uuid::now_v7();
    let token = secret.derive(SIGN_IN_PURPOSE, id);
    sign_in_token::Entity::insert(sign_in_token::ActiveModel {
        id: Set(id),
        email: Set(email.as_str().to_owned()),
        token_hash: Set(hash_token(&token)),
        created_at: Set(now),
        expires_at: Set(now + SIGN_IN_LINK_LIFETIME),
        used_at: Set(None),
    })
    .exec_without_returning(&*txn)
    .await?;
    mail::enqueue(
        &*txn,
        Mail {
            recipient: email.clone(),
            template: Template::SignIn,
            context: json!({
                "sign_in_id": id,
                "expires_in_minutes": SIGN_IN_LINK_LIFETIME.num_minutes(),
            }),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// A session just made: its token is shown once and never stored.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub token: String,
    pub session_id: Uuid,
    pub person: Person,
}

/// Exchanges a sign-in token, once and before it expires, for a session. Any number of
/// concurrent calls with one token make exactly one session: the update that marks the token
/// used is the only one that finds it unused.
#[tracing::instrument(skip_all)]
pub async fn sign_in(
    db: &Database,
    token: &str,
    now: DateTime<Utc>,
) -> Result<NewSession, PeopleError> {
    let hash = hash_token(token.trim());
    let txn = db.begin_write_on(Areas::NONE).await?;
    let used = sign_in_token::Entity::update_many()
        .col_expr(sign_in_token::Column::UsedAt, Expr::value(now))
        .filter(sign_in_token::Column::TokenHash.eq(hash.as_str()))
        .filter(sign_in_token::Column::UsedAt.is_null())
        .filter(sign_in_token::Column::ExpiresAt.gt(now))
        .exec(&*txn)
        .await?;
    if used.rows_affected != 1 {
        return Err(PeopleError::SignInLinkInvalid);
    }
    let request = sign_in_token::Entity::find()
        .filter(sign_in_token::Column::TokenHash.eq(hash.as_str()))
        .one(&*txn)
        .await?
        .ok_or(PeopleError::SignInLinkInvalid)?;
    let email = EmailAddress::parse(&request.email).map_err(|_| PeopleError::SignInLinkInvalid)?;
    let person = find_or_create(&*txn, &email, now).await?;
    let (token, session_id) = create_session(&*txn, person.id, now).await?;
    txn.commit().await?;
    Ok(NewSession {
        token,
        session_id,
        person: person.into(),
    })
}

pub(crate) async fn create_session(
    conn: &impl ConnectionTrait,
    person_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(String, Uuid), sea_orm::DbErr> {
    let token = random_token(SESSION_TOKEN_PREFIX);
    let id = Uuid::now_v7();
    session::Entity::insert(session::ActiveModel {
        id: Set(id),
        person_id: Set(person_id),
        token_hash: Set(hash_token(&token)),
        created_at: Set(now),
        expires_at: Set(now + SESSION_LIFETIME),
        revoked_at: Set(None),
    })
    .exec_without_returning(conn)
    .await?;
    Ok((token, id))
}

/// Ends the caller's session.
pub async fn sign_out(db: &Database, actor: &Actor, now: DateTime<Utc>) -> Result<(), PeopleError> {
    let Actor::Person { session_id, .. } = actor else {
        return Err(match actor {
            Actor::Anonymous => AccessError::Unauthenticated.into(),
            _ => AccessError::Forbidden(
                "an API token is revoked by its organisation's owners, not signed out",
            )
            .into(),
        });
    };
    let txn = db.begin_write_on(Areas::NONE).await?;
    session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .filter(session::Column::Id.eq(*session_id))
        .filter(session::Column::RevokedAt.is_null())
        .exec(&*txn)
        .await?;
    txn.commit().await?;
    Ok(())
}
