//! What Groundswell holds about a person, and erasing it. Both reach across areas (the person's
//! registrations, memberships, sessions and mail), so this reads above them all rather than
//! inside `people`, which the areas themselves use.

use crate::generations::Areas;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::Expr,
};
use serde_json::{Value, json};

use crate::{
    Actor, Database,
    entities::{api_token, organisation, organisation_member, person, session, sign_in_token},
    organisations::OrganisationRole,
    people::{DigestFrequency, PeopleError},
};

/// Everything held about the signed-in person, as one JSON document. Token hashes are left
/// out: they identify nothing to the person and are secrets of the server.
#[tracing::instrument(skip_all)]
pub async fn my_data(db: &Database, actor: &Actor) -> Result<Value, PeopleError> {
    let (person_id, _) = actor.person()?;
    let conn = db.reads();
    let person = person::Entity::find_by_id(person_id)
        .one(conn)
        .await?
        .ok_or(PeopleError::NotFound)?;
    let sessions = session::Entity::find()
        .filter(session::Column::PersonId.eq(person_id))
        .order_by_asc(session::Column::CreatedAt)
        .all(conn)
        .await?;
    let sign_in_requests = sign_in_token::Entity::find()
        .filter(sign_in_token::Column::Email.eq(person.email.as_str()))
        .order_by_asc(sign_in_token::Column::CreatedAt)
        .all(conn)
        .await?;
    let memberships = organisation_member::Entity::find()
        .filter(organisation_member::Column::PersonId.eq(person_id))
        .all(conn)
        .await?;
    let organisations = organisation::Entity::find()
        .filter(organisation::Column::Id.is_in(memberships.iter().map(|m| m.organisation_id)))
        .all(conn)
        .await?;
    let registrations = crate::registrations::data_of(conn, person_id).await?;
    let tokens_created = api_token::Entity::find()
        .filter(api_token::Column::CreatedBy.eq(person_id))
        .all(conn)
        .await?;

    Ok(json!({
        "person": {
            "id": person.id,
            "email": person.email,
            "displayName": person.display_name,
            "role": sea_orm::ActiveEnum::to_value(&person.role),
            "timeZone": person.time_zone,
            "emailConsent": person.email_consent,
            "prefersEasyRead": person.prefers_easy_read,
            "createdAt": person.created_at,
            "updatedAt": person.updated_at,
        },
        "digestPreferences": {
            "frequency": sea_orm::ActiveEnum::to_value(&person.digest_frequency),
            "weekday": person.digest_weekday,
            "hour": person.digest_hour,
            "changes": person.digest_changes,
            "sendEmpty": person.digest_send_empty,
        },
        "sessions": sessions.iter().map(|s| json!({
            "id": s.id,
            "createdAt": s.created_at,
            "expiresAt": s.expires_at,
            "revokedAt": s.revoked_at,
        })).collect::<Vec<_>>(),
        "signInRequests": sign_in_requests.iter().map(|r| json!({
            "createdAt": r.created_at,
            "usedAt": r.used_at,
        })).collect::<Vec<_>>(),
        "organisationMemberships": memberships.iter().map(|m| json!({
            "organisation": organisations.iter().find(|o| o.id == m.organisation_id).map(|o| o.name.clone()),
            "role": sea_orm::ActiveEnum::to_value(&m.role),
            "since": m.created_at,
        })).collect::<Vec<_>>(),
        "registrations": registrations,
        "apiTokensCreated": tokens_created.iter().map(|t| json!({
            "name": t.name,
            "createdAt": t.created_at,
            "revokedAt": t.revoked_at,
        })).collect::<Vec<_>>(),
    }))
}

/// Erases the signed-in person's personal details: name and address are replaced, sessions
/// and sign-in requests removed, memberships ended, digests stopped. The row itself stays, as
/// an anonymous placeholder, so counts elsewhere stay right.
#[tracing::instrument(skip_all)]
pub async fn erase(
    db: &Database,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Vec<uuid::Uuid>, PeopleError> {
    let (person_id, _) = actor.person()?;
    let txn = db.begin_write_on(Areas::ALL).await?;
    // Locked first, before any gathering: a registration batch holds the people it registers
    // (shared) before its gathering, so one waiting for this person sees them erased.
    let person = person::Entity::find_by_id(person_id);
    let person = if txn.get_database_backend() == DbBackend::Postgres {
        // NO KEY UPDATE: it still waits for a batch holding the person shared, but not for
        // rows being written that refer to them (a registration they made for someone).
        person.lock(sea_orm::sea_query::LockType::NoKeyUpdate)
    } else {
        person
    };
    let person = person
        .one(&*txn)
        .await?
        .filter(|p| p.erased_at.is_none())
        .ok_or(PeopleError::NotFound)?;
    // No organisation is left without an owner: each one they own is locked (in id order, so
    // two owners erasing themselves at once are decided one after the other) and counted.
    let owned = organisation_member::Entity::find()
        .filter(organisation_member::Column::PersonId.eq(person_id))
        .filter(organisation_member::Column::Role.eq(OrganisationRole::Owner))
        .order_by_asc(organisation_member::Column::OrganisationId)
        .all(&*txn)
        .await?;
    for membership in &owned {
        crate::organisations::lock(&*txn, membership.organisation_id).await?;
    }
    for membership in &owned {
        // Counted under the lock: an owner who left meanwhile is no longer counted.
        let still_owner = organisation_member::Entity::find_by_id(membership.id)
            .one(&*txn)
            .await?
            .is_some_and(|m| m.role == OrganisationRole::Owner);
        if still_owner
            && crate::organisations::owner_count(&*txn, membership.organisation_id).await? <= 1
        {
            let name = organisation::Entity::find_by_id(membership.organisation_id)
                .one(&*txn)
                .await?
                .map(|o| o.name)
                .unwrap_or_default();
            return Err(PeopleError::LastOwner(name));
        }
    }
    let changed = crate::registrations::cancel_for_erasure(&*txn, person_id, now).await?;
    let erased_address = format!("erased-{person_id}@erased.invalid");
    crate::mail::forget_recipient(&*txn, &person.email, &erased_address).await?;
    sign_in_token::Entity::delete_many()
        .filter(sign_in_token::Column::Email.eq(person.email.as_str()))
        .exec(&*txn)
        .await?;
    // Registrations asked for by email and not yet confirmed hold answers too.
    // So do those someone else asked for on their behalf.
    crate::entities::registration_request::Entity::delete_many()
        .filter(
            Condition::any()
                .add(crate::entities::registration_request::Column::Email.eq(person.email.as_str()))
                .add(
                    crate::entities::registration_request::Column::BehalfEmail
                        .eq(person.email.as_str()),
                ),
        )
        .exec(&*txn)
        .await?;
    session::Entity::delete_many()
        .filter(session::Column::PersonId.eq(person_id))
        .exec(&*txn)
        .await?;
    organisation_member::Entity::delete_many()
        .filter(organisation_member::Column::PersonId.eq(person_id))
        .exec(&*txn)
        .await?;
    crate::registrations::erase_for_person(&*txn, person_id).await?;
    crate::registrations::erase_attempts_for_person(&*txn, person_id, now).await?;
    api_token::Entity::update_many()
        .col_expr(
            api_token::Column::CreatedBy,
            Expr::value(Option::<uuid::Uuid>::None),
        )
        .filter(api_token::Column::CreatedBy.eq(person_id))
        .exec(&*txn)
        .await?;
    let mut active: person::ActiveModel = person.into();
    active.email = Set(erased_address);
    active.display_name = Set(None);
    active.digest_frequency = Set(DigestFrequency::Never);
    active.digest_changes = Set(json!([]));
    active.digest_chosen = Set(true);
    active.email_consent = Set(false);
    // Easy read can tell of a learning disability: it goes with the rest.
    active.prefers_easy_read = Set(false);
    active.erased_at = Set(Some(now));
    active.updated_at = Set(now);
    sea_orm::ActiveModelTrait::update(active, &*txn).await?;
    txn.commit().await?;
    Ok(changed)
}
