//! Nudges: when a pledge goes quiet, its organisation's owners get one reminder asking for an
//! update, and another each further quiet period. A reminder is recorded by a row keyed by
//! (pledge, quiet since, round) in the same transaction as its mail, so however many servers run
//! this, each reminder goes once; news on the pledge starts a new quiet spell.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use super::PledgeStatus;
use crate::{
    Database,
    db::is_unique_violation,
    entities::{organisation, organisation_member, person, pledge, pledge_nudge},
    mail::{self, Mail, Template},
    organisations::OrganisationRole,
    people::EmailAddress,
};

/// Which reminder a pledge quiet since `since` is due at `now`: 1 after one quiet period, 2
/// after two, and so on; none before the first.
pub fn round_due(since: DateTime<Utc>, now: DateTime<Utc>, quiet_after: TimeDelta) -> Option<i32> {
    let period = quiet_after.num_seconds();
    if period <= 0 {
        return None;
    }
    let quiet = (now - since).num_seconds();
    let round = quiet / period;
    (round >= 1).then(|| i32::try_from(round).unwrap_or(i32::MAX))
}

/// Sends the reminders due at `as_of` (the scheduler's clock, which operators and tests may
/// set); `now` is the real time, when the mail may go. Returns how many pledges were nudged.
#[tracing::instrument(skip_all)]
pub async fn nudge_quiet(
    db: &Database,
    quiet_after: TimeDelta,
    as_of: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let quiet = pledge::Entity::find()
        .filter(pledge::Column::Status.eq(PledgeStatus::Active))
        .filter(pledge::Column::LastActivityAt.lte(as_of - quiet_after))
        .all(db.conn())
        .await?;
    if quiet.is_empty() {
        return Ok(0);
    }
    let sent: Vec<(Uuid, DateTime<Utc>, i32)> = pledge_nudge::Entity::find()
        .filter(pledge_nudge::Column::PledgeId.is_in(quiet.iter().map(|p| p.id)))
        .all(db.conn())
        .await?
        .into_iter()
        .map(|n| (n.pledge_id, n.quiet_since, n.round))
        .collect();
    let mut nudged = 0;
    for row in quiet {
        let Some(round) = round_due(row.last_activity_at, as_of, quiet_after) else {
            continue;
        };
        if sent.contains(&(row.id, row.last_activity_at, round)) {
            continue;
        }
        let txn = db.begin_write().await?;
        let inserted = pledge_nudge::Entity::insert(pledge_nudge::ActiveModel {
            id: Set(Uuid::now_v7()),
            pledge_id: Set(row.id),
            quiet_since: Set(row.last_activity_at),
            round: Set(round),
            sent_at: Set(now),
        })
        .exec_without_returning(&*txn)
        .await;
        match inserted {
            Ok(_) => {}
            // Another server sent this reminder a moment ago.
            Err(err) if is_unique_violation(&err) => continue,
            Err(err) => return Err(err),
        }
        let organisation = organisation::Entity::find_by_id(row.organisation_id)
            .one(&*txn)
            .await?;
        let owners = organisation_member::Entity::find()
            .filter(organisation_member::Column::OrganisationId.eq(row.organisation_id))
            .filter(organisation_member::Column::Role.eq(OrganisationRole::Owner))
            .all(&*txn)
            .await?;
        let emails: HashMap<Uuid, String> = person::Entity::find()
            .filter(person::Column::Id.is_in(owners.iter().map(|o| o.person_id)))
            .all(&*txn)
            .await?
            .into_iter()
            .map(|p| (p.id, p.email))
            .collect();
        for owner in &owners {
            let Some(Ok(recipient)) = emails.get(&owner.person_id).map(|e| EmailAddress::parse(e))
            else {
                continue;
            };
            mail::enqueue(
                &*txn,
                Mail {
                    recipient,
                    template: Template::PledgeNudge,
                    context: json!({
                        "pledge_id": row.id,
                        "pledge_title": row.title,
                        "organisation_name": organisation.as_ref().map(|o| o.name.clone()),
                        "quiet_days": (as_of - row.last_activity_at).num_days(),
                        "round": round,
                    }),
                },
                now,
            )
            .await?;
        }
        txn.commit().await?;
        nudged += 1;
    }
    if nudged > 0 {
        tracing::info!(pledges = nudged, "nudged the owners of quiet pledges");
    }
    Ok(nudged)
}

/// How many reminders each pledge has had in its current quiet spell (none answered yet, or the
/// spell would have ended).
pub async fn unanswered(
    db: &Database,
    pledges: &[(Uuid, DateTime<Utc>)],
) -> Result<HashMap<Uuid, u32>, DbErr> {
    let mut counts: HashMap<Uuid, u32> = HashMap::new();
    if pledges.is_empty() {
        return Ok(counts);
    }
    let rows = pledge_nudge::Entity::find()
        .filter(pledge_nudge::Column::PledgeId.is_in(pledges.iter().map(|p| p.0)))
        .all(db.conn())
        .await?;
    for row in rows {
        if pledges.contains(&(row.pledge_id, row.quiet_since)) {
            *counts.entry(row.pledge_id).or_default() += 1;
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reminder_is_due_after_each_whole_quiet_period() {
        let since = Utc::now();
        let period = TimeDelta::days(60);
        assert_eq!(round_due(since, since + TimeDelta::days(59), period), None);
        assert_eq!(
            round_due(since, since + TimeDelta::days(60), period),
            Some(1)
        );
        assert_eq!(
            round_due(since, since + TimeDelta::days(119), period),
            Some(1)
        );
        assert_eq!(
            round_due(since, since + TimeDelta::days(121), period),
            Some(2)
        );
        assert_eq!(round_due(since, since, TimeDelta::zero()), None);
    }
}
