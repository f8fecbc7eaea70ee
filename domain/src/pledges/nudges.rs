//! Nudges: when a pledge goes quiet, its organisation's owners get one reminder asking for an
//! update, and another each further quiet period. A reminder is recorded by a row keyed by
//! (pledge, quiet since, round) in the same transaction as its mail, so however many servers run
//! this, each reminder goes once; news on the pledge starts a new quiet spell.

use crate::generations::Areas;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryTrait,
    sea_query::OnConflict,
};
use serde_json::json;
use uuid::Uuid;

use super::PledgeStatus;
use crate::{
    Database,
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
        .filter(pledge::Column::LastActivityAt.lte(crate::time::before(as_of, quiet_after)))
        .all(db.reads())
        .await?;
    if quiet.is_empty() {
        return Ok(0);
    }
    let sent: HashSet<(Uuid, DateTime<Utc>, i32)> = pledge_nudge::Entity::find()
        .filter(pledge_nudge::Column::PledgeId.is_in(quiet.iter().map(|p| p.id)))
        .all(db.reads())
        .await?
        .into_iter()
        .map(|n| (n.pledge_id, n.quiet_since, n.round))
        .collect();
    let mut due: Vec<(pledge::Model, i32)> = quiet
        .into_iter()
        .filter_map(|row| {
            let round = round_due(row.last_activity_at, as_of, quiet_after)?;
            let spell = (row.id, row.last_activity_at, round);
            (!sent.contains(&spell)).then_some((row, round))
        })
        .collect();
    // In pledge order, so servers nudging side by side take the rows' locks in one order.
    due.sort_by_key(|(row, _)| row.id);
    let mut nudged = 0;
    for batch in due.chunks(NUDGE_BATCH) {
        match nudge_batch(db, batch, as_of, now).await {
            Ok(n) => nudged += n,
            // The batch rolled back whole: its reminders are still unsent, for the next run.
            Err(err) => {
                tracing::error!(pledges = batch.len(), error = %err, "a batch of reminders could not be queued");
            }
        }
    }
    if nudged > 0 {
        tracing::info!(pledges = nudged, "nudged the owners of quiet pledges");
    }
    Ok(nudged)
}

/// Reminders recorded in one write transaction.
const NUDGE_BATCH: usize = 250;

/// Records a batch of reminders in one transaction, skipping any another server recorded
/// first, and queues mail to the owners of each pledge this transaction nudged. Returns how
/// many pledges it nudged.
async fn nudge_batch(
    db: &Database,
    batch: &[(pledge::Model, i32)],
    as_of: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let ids: Vec<Uuid> = batch.iter().map(|_| Uuid::now_v7()).collect();
    let rows = batch
        .iter()
        .zip(&ids)
        .map(|((row, round), id)| pledge_nudge::ActiveModel {
            id: Set(*id),
            pledge_id: Set(row.id),
            quiet_since: Set(row.last_activity_at),
            round: Set(*round),
            sent_at: Set(now),
        });
    let mut insert = pledge_nudge::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([
                pledge_nudge::Column::PledgeId,
                pledge_nudge::Column::QuietSince,
                pledge_nudge::Column::Round,
            ])
            .do_nothing()
            .to_owned(),
        )
        .into_query();
    insert.returning_col(pledge_nudge::Column::Id);
    let txn = db.begin_write_on(Areas::NONE).await?;
    let inserted: HashSet<Uuid> = txn
        .query_all(&insert)
        .await?
        .iter()
        .map(|row| row.try_get::<Uuid>("", "id"))
        .collect::<Result<_, _>>()?;
    // Another server may have sent some of these reminders a moment ago.
    let nudged: Vec<&(pledge::Model, i32)> = batch
        .iter()
        .zip(&ids)
        .filter(|(_, id)| inserted.contains(id))
        .map(|(due, _)| due)
        .collect();
    let mut organisation_ids: Vec<Uuid> =
        nudged.iter().map(|(row, _)| row.organisation_id).collect();
    organisation_ids.sort();
    organisation_ids.dedup();
    let names: HashMap<Uuid, String> = organisation::Entity::find()
        .filter(organisation::Column::Id.is_in(organisation_ids.iter().copied()))
        .all(&*txn)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    let mut owners: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for member in organisation_member::Entity::find()
        .filter(organisation_member::Column::OrganisationId.is_in(organisation_ids.iter().copied()))
        .filter(organisation_member::Column::Role.eq(OrganisationRole::Owner))
        .all(&*txn)
        .await?
    {
        owners
            .entry(member.organisation_id)
            .or_default()
            .push(member.person_id);
    }
    let emails: HashMap<Uuid, String> = person::Entity::find()
        .filter(person::Column::Id.is_in(owners.values().flatten().copied()))
        .all(&*txn)
        .await?
        .into_iter()
        .map(|p| (p.id, p.email))
        .collect();
    let mut mails = Vec::new();
    for (row, round) in &nudged {
        for owner in owners.get(&row.organisation_id).into_iter().flatten() {
            let Some(Ok(recipient)) = emails.get(owner).map(|e| EmailAddress::parse(e)) else {
                continue;
            };
            mails.push((
                Uuid::now_v7(),
                Mail {
                    recipient,
                    template: Template::PledgeNudge,
                    context: json!({
                        "pledge_id": row.id,
                        "pledge_title": row.title,
                        "organisation_name": names.get(&row.organisation_id),
                        "quiet_days": (as_of - row.last_activity_at).num_days(),
                        "round": round,
                    }),
                },
            ));
        }
    }
    mail::enqueue_many(&*txn, mails, now).await?;
    txn.commit().await?;
    Ok(nudged.len() as u64)
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
        .all(db.reads())
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
