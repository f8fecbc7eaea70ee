//! Writing events into the webhook outbox, inside the transaction of the change that causes
//! them: a change that rolls back leaves no event, and a committed change always has its events.
//! Each event goes to the organisations it concerns, and only to their active endpoints
//! subscribed to it. Payloads hold public facts only: no emails, no people, no access needs.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{DeliveryStatus, WebhookEvent, events_of};
use crate::{
    changes::Change,
    entities::{
        coalition, coalition_member, enums::MembershipStatus, pledge, pledge_change,
        progress_update, webhook_delivery, webhook_endpoint,
    },
};

/// How long a new delivery is retried for.
pub(crate) const RETRY_FOR: TimeDelta = TimeDelta::days(1);

/// A change that endpoints may hear of.
pub(crate) enum Emit<'a> {
    PledgeMade(&'a pledge::Model),
    PledgeUpdated(&'a pledge::Model),
    PledgeWithdrawn(&'a pledge::Model),
    PledgeAchieved(&'a pledge::Model),
    ProgressUpdatePosted(&'a progress_update::Model),
    CoalitionMembershipChanged(&'a coalition_member::Model),
    CoalitionUpdated(&'a coalition::Model),
}

impl Emit<'_> {
    fn event(&self) -> WebhookEvent {
        match self {
            Emit::PledgeMade(_) => WebhookEvent::PledgeMade,
            Emit::PledgeUpdated(_) => WebhookEvent::PledgeUpdated,
            Emit::PledgeWithdrawn(_) => WebhookEvent::PledgeWithdrawn,
            Emit::PledgeAchieved(_) => WebhookEvent::PledgeAchieved,
            Emit::ProgressUpdatePosted(_) => WebhookEvent::ProgressUpdatePosted,
            Emit::CoalitionMembershipChanged(_) => WebhookEvent::CoalitionMembershipChanged,
            Emit::CoalitionUpdated(_) => WebhookEvent::CoalitionUpdated,
        }
    }
}

/// Queues `event` for every active endpoint of the organisations it concerns that subscribed to
/// it. Call it on the transaction of the change.
pub(crate) async fn emit(
    conn: &impl ConnectionTrait,
    event: Emit<'_>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let kind = event.event();
    let organisations = concerned(conn, &event).await?;
    if organisations.is_empty() {
        return Ok(());
    }
    let endpoints: Vec<Uuid> = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::OrganisationId.is_in(organisations))
        .filter(webhook_endpoint::Column::Active.eq(true))
        .all(conn)
        .await?
        .into_iter()
        .filter(|e| events_of(&e.events).contains(&kind))
        .map(|e| e.id)
        .collect();
    if endpoints.is_empty() {
        return Ok(());
    }
    let body = json!({
        "type": kind.code(),
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Micros, true),
        "data": data(conn, &event).await?,
    })
    .to_string();
    let rows = endpoints.into_iter().map(|endpoint_id| {
        webhook_delivery::ActiveModel::from(webhook_delivery::Model {
            id: Uuid::now_v7(),
            endpoint_id,
            event_type: kind.code().to_owned(),
            body: body.clone(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            retry_until: now + RETRY_FOR,
            locked_until: None,
            last_status_code: None,
            last_error: None,
            created_at: now,
            delivered_at: None,
        })
    });
    webhook_delivery::Entity::insert_many(rows)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// The organisations an event is about: a pledge's own organisation; for a coalition, its lead
/// and active members (and, for a membership, the organisation whose membership it is).
async fn concerned(conn: &impl ConnectionTrait, event: &Emit<'_>) -> Result<Vec<Uuid>, DbErr> {
    let mut organisations = match event {
        Emit::PledgeMade(p)
        | Emit::PledgeUpdated(p)
        | Emit::PledgeWithdrawn(p)
        | Emit::PledgeAchieved(p) => vec![p.organisation_id],
        Emit::ProgressUpdatePosted(update) => match update.coalition_id {
            Some(coalition_id) => coalition_side(conn, coalition_id).await?,
            None => vec![update.organisation_id],
        },
        Emit::CoalitionMembershipChanged(membership) => {
            let mut side = coalition_side(conn, membership.coalition_id).await?;
            side.push(membership.organisation_id);
            side
        }
        Emit::CoalitionUpdated(coalition) => {
            let mut side = coalition_side(conn, coalition.id).await?;
            side.push(coalition.lead_organisation_id);
            side
        }
    };
    organisations.sort();
    organisations.dedup();
    Ok(organisations)
}

async fn coalition_side(
    conn: &impl ConnectionTrait,
    coalition_id: Uuid,
) -> Result<Vec<Uuid>, DbErr> {
    let mut side: Vec<Uuid> = coalition_member::Entity::find()
        .filter(coalition_member::Column::CoalitionId.eq(coalition_id))
        .filter(coalition_member::Column::Status.eq(MembershipStatus::Active))
        .all(conn)
        .await?
        .into_iter()
        .map(|m| m.organisation_id)
        .collect();
    if let Some(coalition) = coalition::Entity::find_by_id(coalition_id)
        .one(conn)
        .await?
    {
        side.push(coalition.lead_organisation_id);
    }
    Ok(side)
}

fn status_code<T: sea_orm::ActiveEnum<Value = String>>(value: &T) -> String {
    value.to_value()
}

/// The event's `data`: public facts only.
async fn data(conn: &impl ConnectionTrait, event: &Emit<'_>) -> Result<Value, DbErr> {
    Ok(match event {
        Emit::PledgeMade(p)
        | Emit::PledgeUpdated(p)
        | Emit::PledgeWithdrawn(p)
        | Emit::PledgeAchieved(p) => {
            let mut changes: Vec<Change> = pledge_change::Entity::find()
                .filter(pledge_change::Column::PledgeId.eq(p.id))
                .all(conn)
                .await?
                .into_iter()
                .filter_map(|c| Change::from_code(&c.change))
                .collect();
            changes.sort();
            json!({ "pledge": {
                "id": p.id,
                "organisationId": p.organisation_id,
                "coalitionId": p.coalition_id,
                "title": p.title,
                "commitment": p.commitment,
                "changes": changes.iter().map(|c| c.code()).collect::<Vec<_>>(),
                "dueBy": p.due_by,
                "status": status_code(&p.status),
                "withdrawnReason": p.withdrawn_reason,
                "createdAt": p.created_at,
                "updatedAt": p.updated_at,
                "achievedAt": p.achieved_at,
                "withdrawnAt": p.withdrawn_at,
            }})
        }
        Emit::ProgressUpdatePosted(u) => json!({ "progressUpdate": {
            "id": u.id,
            "pledgeId": u.pledge_id,
            "coalitionId": u.coalition_id,
            "organisationId": u.organisation_id,
            "body": u.body,
            "signal": status_code(&u.signal),
            "percentComplete": u.percent_complete,
            "evidenceUrls": u.evidence_urls,
            "postedAt": u.posted_at,
        }}),
        Emit::CoalitionMembershipChanged(m) => {
            let coalition = coalition::Entity::find_by_id(m.coalition_id)
                .one(conn)
                .await?;
            json!({ "membership": {
                "id": m.id,
                "coalitionId": m.coalition_id,
                "coalitionName": coalition.as_ref().map(|c| c.name.clone()),
                "coalitionSlug": coalition.as_ref().map(|c| c.slug.clone()),
                "organisationId": m.organisation_id,
                "status": status_code(&m.status),
                "updatedAt": m.updated_at,
            }})
        }
        Emit::CoalitionUpdated(c) => json!({ "coalition": {
            "id": c.id,
            "name": c.name,
            "slug": c.slug,
            "purpose": c.purpose,
            "area": c.area,
            "leadOrganisationId": c.lead_organisation_id,
            "status": status_code(&c.status),
            "createdAt": c.created_at,
            "concludedAt": c.concluded_at,
        }}),
    })
}
