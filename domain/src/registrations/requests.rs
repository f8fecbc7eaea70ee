//! Registering with only an email: the answers wait here, server-side, until the person opens
//! the link mailed to them and presses its button. The link's token is derived from the
//! server's key and the request's id (like a sign-in link), so the outbox and this table hold
//! only the id and the token's hash; the token says nothing about who asked. A link works once
//! and expires; expired requests are deleted, answers and all.

use crate::generations::Areas;
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{
    AccessNeeds, AccessRequirement, AttendanceMode, Companions, NewRegistration, OnBehalfOf,
    Registration, RegistrationError, open_mode,
};
use crate::{
    Actor, Database,
    entities::{gathering, person, registration_request},
    mail::{self, Mail, Template},
    people::{self, DisplayName, EmailAddress, NewSession},
    secrets::{SecretKey, hash_token},
};

pub const REGISTRATION_REQUEST_PURPOSE: &str = "registration-request";
/// Requests one address may make within an hour, as for sign-in links.
pub const REGISTRATION_REQUESTS_PER_HOUR: u64 = people::SIGN_IN_REQUESTS_PER_HOUR;
pub const DEFAULT_REGISTRATION_REQUEST_TTL: Duration = Duration::hours(24);

/// A registration asked for by someone not signed in: who they are, and their answers.
#[derive(Clone, Debug)]
pub struct RegistrationRequest {
    pub name: DisplayName,
    pub email: EmailAddress,
    pub registration: NewRegistration,
    /// The request was made from an easy-read page, so its mail is easy read too.
    pub easy_read: bool,
}

/// The answers as they wait in the database.
#[derive(Serialize, Deserialize)]
struct Answers {
    name: String,
    mode: Option<AttendanceMode>,
    companions: i32,
    access_requirements: Vec<AccessRequirement>,
    access_notes: Option<String>,
    on_behalf_of: Option<(String, String)>,
}

/// Queues a confirmation link for a registration, keeping the answers until it is used or
/// expires. Refused when the gathering is not open, and after
/// [`REGISTRATION_REQUESTS_PER_HOUR`] requests for one address within an hour.
#[tracing::instrument(skip_all, fields(gathering.id = %request.registration.gathering_id))]
pub async fn request_registration(
    db: &Database,
    secret: &SecretKey,
    request: RegistrationRequest,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<(), RegistrationError> {
    let current = gathering::Entity::find_by_id(request.registration.gathering_id)
        .one(db.reads())
        .await?
        .ok_or(RegistrationError::GatheringNotFound)?;
    open_mode(&current, request.registration.mode, now)?;
    let txn = db.begin_write_on(Areas::NONE).await?;
    if db.backend() == sea_orm::DbBackend::Postgres {
        // Requests for one address queue here, so the count below cannot be passed by several
        // at once. (On SQLite, writers are one at a time already.)
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            [format!("registration-request:{}", request.email.as_str()).into()],
        ))
        .await?;
    }
    // Expired requests go, answers and all, whenever anyone asks (and hourly besides).
    registration_request::Entity::delete_many()
        .filter(registration_request::Column::ExpiresAt.lte(now))
        .exec(&*txn)
        .await?;
    let recent = registration_request::Entity::find()
        .filter(registration_request::Column::Email.eq(request.email.as_str()))
        .filter(
            registration_request::Column::CreatedAt
                .gt(crate::time::before(now, Duration::hours(1))),
        )
        .count(&*txn)
        .await?;
    if recent >= REGISTRATION_REQUESTS_PER_HOUR {
        return Err(RegistrationError::TooManyRequests);
    }
    let new = &request.registration;
    let (access_requirements, access_notes) = match &new.access {
        Some(access) => (access.requirements.clone(), access.notes.clone()),
        None => (Vec::new(), None),
    };
    let answers = Answers {
        name: request.name.as_str().to_owned(),
        mode: new.mode,
        companions: new.companions.0,
        access_requirements,
        access_notes,
        on_behalf_of: new
            .on_behalf_of
            .as_ref()
            .map(|b| (b.name.as_str().to_owned(), b.email.as_str().to_owned())),
    };
    let id = Uuid::now_v7();
    let token = secret.derive(REGISTRATION_REQUEST_PURPOSE, id);
    registration_request::Entity::insert(registration_request::ActiveModel {
        id: Set(id),
        token_hash: Set(hash_token(&token)),
        email: Set(request.email.as_str().to_owned()),
        // The person named, so their erasure reaches the answers held for them.
        behalf_email: Set(new
            .on_behalf_of
            .as_ref()
            .map(|b| b.email.as_str().to_owned())),
        gathering_id: Set(new.gathering_id),
        answers: Set(Some(serde_json::to_value(&answers).map_err(|e| {
            RegistrationError::Database(sea_orm::DbErr::Custom(e.to_string()))
        })?)),
        created_at: Set(now),
        expires_at: Set(crate::time::after(now, ttl)),
        used_at: Set(None),
    })
    .exec_without_returning(&*txn)
    .await?;
    mail::enqueue(
        &*txn,
        Mail {
            recipient: request.email.clone(),
            template: Template::RegistrationRequest,
            context: json!({
                "registration_request_id": id,
                "gathering_title": current.title,
                "expires_in_hours": ttl.num_hours(),
                "easy_read": request.easy_read,
            }),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The gathering a live (unused, unexpired) confirmation link is for, without using it.
pub async fn pending_gathering(
    db: &Database,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<crate::gatherings::Gathering>, RegistrationError> {
    let Some(request) = registration_request::Entity::find()
        .filter(registration_request::Column::TokenHash.eq(hash_token(token.trim())))
        .filter(registration_request::Column::UsedAt.is_null())
        .filter(registration_request::Column::ExpiresAt.gt(now))
        .one(db.reads())
        .await?
    else {
        return Ok(None);
    };
    Ok(crate::gatherings::by_id(db, request.gathering_id).await?)
}

/// A confirmed request: the registration made, and the session that signs its person in.
#[derive(Clone, Debug)]
pub struct ConfirmedRequest {
    pub registration: Registration,
    /// A session for the person, when the account is an attendee's. A convenor's or admin's
    /// account sees other people's access needs, so a day-long link forwarded to a carer
    /// never signs into one: they sign in with a sign-in link as usual.
    pub session: Option<NewSession>,
}

/// Uses a confirmation link, once and before it expires: makes the person if new (named as
/// they gave), signs them in when `sign_in` (a page that sets the cookie), and registers them with the answers they gave, by the usual
/// rules (confirmed or waitlisted, with the usual mail). Any number of concurrent calls with
/// one token confirm once: the update that marks it used is the only one that finds it unused.
#[tracing::instrument(skip_all)]
pub async fn confirm_registration(
    db: &Database,
    token: &str,
    sign_in: bool,
    limits: crate::Limits,
    now: DateTime<Utc>,
) -> Result<ConfirmedRequest, RegistrationError> {
    let hash = hash_token(token.trim());
    let txn = db.begin_write_on(Areas::GATHERINGS).await?;
    let request = registration_request::Entity::find()
        .filter(registration_request::Column::TokenHash.eq(hash.as_str()))
        .filter(registration_request::Column::UsedAt.is_null())
        .filter(registration_request::Column::ExpiresAt.gt(now))
        .one(&*txn)
        .await?
        .ok_or(RegistrationError::RequestLinkInvalid)?;
    let used = registration_request::Entity::update_many()
        .col_expr(registration_request::Column::UsedAt, Expr::value(now))
        // Once used, the answers are no longer needed here: the registration holds them.
        .col_expr(
            registration_request::Column::Answers,
            Expr::value(Option::<serde_json::Value>::None),
        )
        .filter(registration_request::Column::Id.eq(request.id))
        .filter(registration_request::Column::UsedAt.is_null())
        .exec(&*txn)
        .await?;
    if used.rows_affected != 1 {
        return Err(RegistrationError::RequestLinkInvalid);
    }
    let kept_answers = request.answers.clone();
    let answers: Answers = request
        .answers
        .and_then(|a| serde_json::from_value(a).ok())
        .ok_or(RegistrationError::RequestLinkInvalid)?;
    let email =
        EmailAddress::parse(&request.email).map_err(|_| RegistrationError::RequestLinkInvalid)?;
    let row = people::find_or_create(&*txn, &email, now).await?;
    let row = if row.display_name.is_none() {
        let mut active: person::ActiveModel = row.into();
        active.display_name = Set(Some(answers.name.clone()));
        sea_orm::ActiveModelTrait::update(active, &*txn).await?
    } else {
        row
    };
    let (session_token, session_id) = people::create_session(&*txn, row.id, now).await?;
    txn.commit().await?;

    // The answers were valid when given; they are checked again as any registration is.
    let access = AccessNeeds::given(
        answers.access_requirements,
        answers.access_notes.as_deref(),
        Some(true),
    )
    .map_err(|_| RegistrationError::RequestLinkInvalid)?;
    let on_behalf_of = match answers.on_behalf_of {
        Some((name, email)) => Some(OnBehalfOf {
            name: DisplayName::parse(&name).map_err(|_| RegistrationError::RequestLinkInvalid)?,
            email: EmailAddress::parse(&email)
                .map_err(|_| RegistrationError::RequestLinkInvalid)?,
        }),
        None => None,
    };
    let actor = Actor::Person {
        person_id: row.id,
        role: row.role,
        session_id,
    };
    let registered = super::register(
        db,
        &actor,
        NewRegistration {
            gathering_id: request.gathering_id,
            mode: answers.mode,
            companions: Companions::parse(answers.companions).unwrap_or_default(),
            access,
            on_behalf_of,
        },
        limits,
        now,
    )
    .await;
    // Only a page, which sets the cookie, signs anyone in; the API answers the registration.
    let keep_session = sign_in && row.role == crate::people::Role::Attendee;
    let registration = match registered {
        Ok(registration) => registration,
        Err(err) => {
            // Refused (registration closed, a limit, a mode no longer offered) or failed: the
            // link and its answers are as they were, to be tried again, and nobody is signed in.
            restore(db, request.id, kept_answers, session_id).await?;
            return Err(err);
        }
    };
    if !keep_session {
        end_session(db, session_id).await?;
    }
    Ok(ConfirmedRequest {
        registration,
        session: keep_session.then(|| NewSession {
            token: session_token,
            session_id,
            person: row.into(),
        }),
    })
}

/// Undoes the use of a link whose registration did not go through: unused again, with its
/// answers, and the session made for it ended.
async fn restore(
    db: &Database,
    request_id: Uuid,
    answers: Option<serde_json::Value>,
    session_id: Uuid,
) -> Result<(), sea_orm::DbErr> {
    let txn = db.begin_write_on(Areas::NONE).await?;
    registration_request::Entity::update_many()
        .col_expr(
            registration_request::Column::UsedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(registration_request::Column::Answers, Expr::value(answers))
        .filter(registration_request::Column::Id.eq(request_id))
        .exec(&*txn)
        .await?;
    crate::entities::session::Entity::delete_by_id(session_id)
        .exec(&*txn)
        .await?;
    txn.commit().await
}

async fn end_session(db: &Database, session_id: Uuid) -> Result<(), sea_orm::DbErr> {
    let txn = db.begin_write_on(Areas::NONE).await?;
    crate::entities::session::Entity::delete_by_id(session_id)
        .exec(&*txn)
        .await?;
    txn.commit().await
}

/// Deletes every request whose link has expired, answers and all. Returns how many.
pub async fn delete_expired_requests(
    db: &Database,
    now: DateTime<Utc>,
) -> Result<u64, sea_orm::DbErr> {
    let txn = db.begin_write_on(Areas::NONE).await?;
    let deleted = registration_request::Entity::delete_many()
        .filter(registration_request::Column::ExpiresAt.lte(now))
        .exec(&*txn)
        .await?;
    txn.commit().await?;
    Ok(deleted.rows_affected)
}
