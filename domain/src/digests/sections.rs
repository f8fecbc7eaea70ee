//! What a digest holds, one builder per section. Each takes the recipient and the period and
//! returns its section's value; the digest is whatever the builders return, so a new source of
//! news is a new builder, not a change to the others.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use sea_orm::{
    ColumnTrait, Condition, DbErr, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait,
    sea_query::{Expr, ExprTrait},
};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    Database,
    changes::Change,
    coalitions::{self, MembershipStatus},
    entities::{
        coalition, coalition_change, coalition_member, pledge, pledge_change, progress_update,
    },
    gatherings::{self, GatheringFormat},
    organisations,
    pledges::{self, PledgeStatus},
    progress::ProgressSignal,
    registrations::{self, AttendanceMode},
};

use super::Period;

/// Gatherings shown in one digest, at most.
const GATHERINGS_SHOWN: u64 = 20;

/// The glanceable picture at a digest's top: per change of interest, this period against the
/// last.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChangePicture {
    pub rows: Vec<ChangeFigures>,
}

impl ChangePicture {
    /// The picture of `rows`, each figure's bar measured against the largest figure among them.
    fn with_bars(mut rows: Vec<ChangeFigures>) -> Self {
        let largest = rows
            .iter()
            .flat_map(|r| {
                [
                    r.pledges_this_period,
                    r.pledges_last_period,
                    r.updates_this_period,
                    r.updates_last_period,
                ]
            })
            .filter(|&n| n > 0)
            .max()
            .unwrap_or(1);
        let width = |n: u64| n * 100 / largest;
        for row in &mut rows {
            row.bars = FigureBars {
                pledges_this_period: width(row.pledges_this_period),
                pledges_last_period: width(row.pledges_last_period),
                updates_this_period: width(row.updates_this_period),
                updates_last_period: width(row.updates_last_period),
            };
        }
        ChangePicture { rows }
    }

    /// The picture for `interests` only, in their order, from one that holds their rows; the
    /// bars are measured again against the rows kept.
    pub fn for_changes(&self, interests: &[Change]) -> Self {
        let rows = interests
            .iter()
            .filter_map(|&change| self.rows.iter().find(|r| r.change == change).cloned())
            .collect();
        ChangePicture::with_bars(rows)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangeFigures {
    pub change: Change,
    pub title: &'static str,
    pub pledges_this_period: u64,
    pub pledges_last_period: u64,
    pub updates_this_period: u64,
    pub updates_last_period: u64,
    /// Bar widths for the HTML picture, in percent of the largest figure in the picture.
    pub bars: FigureBars,
}

/// Each figure of a row as a percentage (0 to 100) of the picture's largest figure.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FigureBars {
    pub pledges_this_period: u64,
    pub pledges_last_period: u64,
    pub updates_this_period: u64,
    pub updates_last_period: u64,
}

/// Upcoming gatherings with their places and waitlists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GatheringsSection {
    pub items: Vec<GatheringItem>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GatheringItem {
    pub title: String,
    pub slug: String,
    pub starts_at: DateTime<Utc>,
    /// The start in the gathering's own time zone, for reading.
    pub when: String,
    pub format: GatheringFormat,
    /// In-person places left; `None` when unlimited or not offered.
    pub in_person_places_left: Option<i32>,
    pub online_places_left: Option<i32>,
    pub in_person_offered: bool,
    pub online_offered: bool,
    pub unlimited: bool,
    pub confirmed: u64,
    pub waitlisted: u64,
    /// Published during this digest's period.
    pub new_this_period: bool,
    pub full: bool,
}

/// How many items one change's group in a section shows before "and N more".
const ITEMS_PER_CHANGE: usize = 10;

/// How long a progress update's excerpt is, at most, in characters.
const EXCERPT_CHARS: usize = 200;

/// One section's items under one change of interest, capped at `ITEMS_PER_CHANGE`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangeGroup<T> {
    pub change: Change,
    pub title: &'static str,
    pub items: Vec<T>,
    /// Items past the cap, shown as "and N more".
    pub more: u64,
}

/// Items gathered under each change of interest as a section reads them, in the order they
/// are added, keeping the first `ITEMS_PER_CHANGE` of each and counting the rest. An item is
/// made (cloned) only when it is kept: a period's progress section reads every update posted in
/// it, and holding all of them, once per change, before capping was most of the digest run's
/// peak heap (heaptrack: 36 of 63 MB, on the benchmark's movement).
struct Grouping<'a, T> {
    interests: &'a [Change],
    by_change: HashMap<Change, (Vec<T>, u64)>,
}

impl<'a, T> Grouping<'a, T> {
    fn new(interests: &'a [Change]) -> Self {
        Self {
            interests,
            by_change: HashMap::new(),
        }
    }

    /// Adds the item `make` gives under `change`, if `change` is of interest; past the cap it
    /// is only counted, and `make` is not called.
    fn add(&mut self, change: Change, make: impl FnOnce() -> T) {
        if !self.interests.contains(&change) {
            return;
        }
        let (items, more) = self.by_change.entry(change).or_default();
        if items.len() < ITEMS_PER_CHANGE {
            items.push(make());
        } else {
            *more += 1;
        }
    }

    /// The groups in the order of the interests, dropping changes with nothing; a change
    /// listed twice in the interests is kept once.
    fn groups(mut self) -> Vec<ChangeGroup<T>> {
        self.interests
            .iter()
            .filter_map(|&change| {
                let (items, more) = self.by_change.remove(&change)?;
                Some(ChangeGroup {
                    change,
                    title: change.title(),
                    items,
                    more,
                })
            })
            .collect()
    }
}

/// The groups of `interests`, in their order, from groups built for more changes. Every group
/// is built and capped per change, so keeping a change's group whole equals building it for
/// fewer changes; a change listed twice is kept once, as `Grouping` does.
fn kept<T: Clone>(groups: &[ChangeGroup<T>], interests: &[Change]) -> Vec<ChangeGroup<T>> {
    let mut by_change: HashMap<Change, &ChangeGroup<T>> =
        groups.iter().map(|g| (g.change, g)).collect();
    interests
        .iter()
        .filter_map(|change| by_change.remove(change).cloned())
        .collect()
}

fn codes(changes: &[Change]) -> Vec<&'static str> {
    changes.iter().map(|c| c.code()).collect()
}

/// Organisation names by id.
async fn organisation_names(
    db: &Database,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<HashMap<Uuid, String>, DbErr> {
    let mut ids: Vec<Uuid> = ids.into_iter().collect();
    ids.sort();
    ids.dedup();
    Ok(organisations::by_ids(db, &ids)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect())
}

/// The titles of `changes`, in published order.
fn titles(changes: &[Change]) -> Vec<&'static str> {
    changes.iter().map(|c| c.title()).collect()
}

/// Pledges made in the period, grouped by change. A pledge on several of the recipient's
/// changes appears under each of them, with all its changes listed, so each group reads
/// whole on its own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NewPledgesSection {
    pub groups: Vec<ChangeGroup<NewPledgeItem>>,
}

impl NewPledgesSection {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The section for `interests` only, in their order.
    pub fn for_changes(&self, interests: &[Change]) -> Self {
        NewPledgesSection {
            groups: kept(&self.groups, interests),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewPledgeItem {
    pub organisation: String,
    pub title: String,
    pub due_by: Option<NaiveDate>,
    /// The titles of all the pledge's changes.
    pub changes: Vec<&'static str>,
}

/// Progress updates posted in the period, grouped by change and, within a change, by signal:
/// off track first, then at risk, on track and done. An update on a pledge or coalition on
/// several of the recipient's changes appears under each.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProgressSection {
    pub groups: Vec<ChangeGroup<ProgressItem>>,
}

impl ProgressSection {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The section for `interests` only, in their order.
    pub fn for_changes(&self, interests: &[Change]) -> Self {
        ProgressSection {
            groups: kept(&self.groups, interests),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProgressItem {
    /// `OFF_TRACK`, `AT_RISK`, `ON_TRACK` or `DONE`.
    pub signal: &'static str,
    /// The signal for reading: "Off track", "At risk", "On track", "Done".
    pub signal_label: &'static str,
    pub percent_complete: Option<i16>,
    /// The start of the update's body.
    pub excerpt: String,
    /// The pledge's or coalition's title.
    pub subject: String,
    /// `pledge` or `coalition`.
    pub subject_kind: &'static str,
    /// The organisation that posted it.
    pub organisation: String,
    pub posted_at: DateTime<Utc>,
}

/// Coalitions formed, and organisations that became active members, in the period, grouped by
/// the coalition's changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CoalitionsSection {
    pub groups: Vec<ChangeGroup<CoalitionItem>>,
}

impl CoalitionsSection {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The section for `interests` only, in their order.
    pub fn for_changes(&self, interests: &[Change]) -> Self {
        CoalitionsSection {
            groups: kept(&self.groups, interests),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CoalitionItem {
    pub coalition: String,
    pub slug: String,
    /// `formed` (the organisation is the lead) or `joined`.
    pub event: &'static str,
    pub organisation: String,
    pub at: DateTime<Utc>,
}

/// Active pledges gone quiet by the period's end, quietest first, grouped by change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QuietPledgesSection {
    pub groups: Vec<ChangeGroup<QuietPledgeItem>>,
}

impl QuietPledgesSection {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The section for `interests` only, in their order.
    pub fn for_changes(&self, interests: &[Change]) -> Self {
        QuietPledgesSection {
            groups: kept(&self.groups, interests),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QuietPledgeItem {
    pub organisation: String,
    pub title: String,
    pub last_activity_at: DateTime<Utc>,
    /// Whole days since the pledge was made or last reported on, as of the period's end.
    pub quiet_days: i64,
    /// Reminders its owners have had in this quiet spell, none answered.
    pub reminders: u32,
}

/// Pledges made in `window` per change in `codes`.
async fn pledge_counts(
    db: &Database,
    codes: &[&'static str],
    window: &Period,
) -> Result<HashMap<String, u64>, DbErr> {
    let rows: Vec<(String, i64)> = pledge_change::Entity::find()
        .select_only()
        .column(pledge_change::Column::Change)
        .column_as(
            Expr::col((pledge_change::Entity, pledge_change::Column::PledgeId)).count(),
            "n",
        )
        .join(
            JoinType::InnerJoin,
            pledge_change::Entity::belongs_to(pledge::Entity)
                .from(pledge_change::Column::PledgeId)
                .to(pledge::Column::Id)
                .into(),
        )
        .filter(pledge_change::Column::Change.is_in(codes.iter().copied()))
        .filter(pledge::Column::CreatedAt.gte(window.start))
        .filter(pledge::Column::CreatedAt.lt(window.end))
        .group_by(pledge_change::Column::Change)
        .into_tuple()
        .all(db.reads())
        .await?;
    Ok(rows
        .into_iter()
        .map(|(change, n)| (change, u64::try_from(n).unwrap_or_default()))
        .collect())
}

/// Progress updates posted in `window` per change in `codes`, on pledges and on coalitions (an
/// update is on one or the other, never both).
async fn update_counts(
    db: &Database,
    codes: &[&'static str],
    window: &Period,
) -> Result<HashMap<String, u64>, DbErr> {
    let on_pledges: Vec<(String, i64)> = progress_update::Entity::find()
        .select_only()
        .column(pledge_change::Column::Change)
        .column_as(
            Expr::col((progress_update::Entity, progress_update::Column::Id)).count(),
            "n",
        )
        .join(
            JoinType::InnerJoin,
            progress_update::Entity::belongs_to(pledge_change::Entity)
                .from(progress_update::Column::PledgeId)
                .to(pledge_change::Column::PledgeId)
                .into(),
        )
        .filter(pledge_change::Column::Change.is_in(codes.iter().copied()))
        .filter(progress_update::Column::PostedAt.gte(window.start))
        .filter(progress_update::Column::PostedAt.lt(window.end))
        .group_by(pledge_change::Column::Change)
        .into_tuple()
        .all(db.reads())
        .await?;
    let on_coalitions: Vec<(String, i64)> = progress_update::Entity::find()
        .select_only()
        .column(coalition_change::Column::Change)
        .column_as(
            Expr::col((progress_update::Entity, progress_update::Column::Id)).count(),
            "n",
        )
        .join(
            JoinType::InnerJoin,
            progress_update::Entity::belongs_to(coalition_change::Entity)
                .from(progress_update::Column::CoalitionId)
                .to(coalition_change::Column::CoalitionId)
                .into(),
        )
        .filter(coalition_change::Column::Change.is_in(codes.iter().copied()))
        .filter(progress_update::Column::PostedAt.gte(window.start))
        .filter(progress_update::Column::PostedAt.lt(window.end))
        .group_by(coalition_change::Column::Change)
        .into_tuple()
        .all(db.reads())
        .await?;
    let mut counts: HashMap<String, u64> = HashMap::new();
    for (change, n) in on_pledges.into_iter().chain(on_coalitions) {
        *counts.entry(change).or_default() += u64::try_from(n).unwrap_or_default();
    }
    Ok(counts)
}

/// The picture per change of interest: pledges made and progress updates posted in the period
/// and in the one before it, from grouped counts (two queries per figure and period).
pub async fn change_picture(
    db: &Database,
    interests: &[Change],
    period: &Period,
) -> Result<ChangePicture, DbErr> {
    let codes = codes(interests);
    let previous = period.previous();
    let pledges_now = pledge_counts(db, &codes, period).await?;
    let pledges_before = pledge_counts(db, &codes, &previous).await?;
    let updates_now = update_counts(db, &codes, period).await?;
    let updates_before = update_counts(db, &codes, &previous).await?;
    let get = |map: &HashMap<String, u64>, change: Change| -> u64 {
        map.get(change.code()).copied().unwrap_or_default()
    };
    let rows = interests
        .iter()
        .map(|&change| ChangeFigures {
            change,
            title: change.title(),
            pledges_this_period: get(&pledges_now, change),
            pledges_last_period: get(&pledges_before, change),
            updates_this_period: get(&updates_now, change),
            updates_last_period: get(&updates_before, change),
            bars: FigureBars::default(),
        })
        .collect();
    Ok(ChangePicture::with_bars(rows))
}

/// Pledges made in the period on the recipient's changes, newest first under each change.
pub async fn new_pledges_section(
    db: &Database,
    interests: &[Change],
    period: &Period,
) -> Result<NewPledgesSection, DbErr> {
    let rows = pledge::Entity::find()
        .filter(pledge::Column::CreatedAt.gte(period.start))
        .filter(pledge::Column::CreatedAt.lt(period.end))
        .filter(
            pledge::Column::Id.in_subquery(
                pledge_change::Entity::find()
                    .select_only()
                    .column(pledge_change::Column::PledgeId)
                    .filter(pledge_change::Column::Change.is_in(codes(interests)))
                    .into_query(),
            ),
        )
        .order_by_desc(pledge::Column::CreatedAt)
        .order_by_desc(pledge::Column::Id)
        .all(db.reads())
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|p| p.id).collect();
    let changes = pledges::changes_of(db, &ids).await?;
    let names = organisation_names(db, rows.iter().map(|p| p.organisation_id)).await?;
    let mut groups = Grouping::new(interests);
    for row in rows {
        let on = changes.get(&row.id).cloned().unwrap_or_default();
        let item = NewPledgeItem {
            organisation: names.get(&row.organisation_id).cloned().unwrap_or_default(),
            title: row.title,
            due_by: row.due_by,
            changes: titles(&on),
        };
        for change in on {
            groups.add(change, || item.clone());
        }
    }
    Ok(NewPledgesSection {
        groups: groups.groups(),
    })
}

fn signal_rank(signal: ProgressSignal) -> u8 {
    match signal {
        ProgressSignal::OffTrack => 0,
        ProgressSignal::AtRisk => 1,
        ProgressSignal::OnTrack => 2,
        ProgressSignal::Done => 3,
    }
}

fn signal_names(signal: ProgressSignal) -> (&'static str, &'static str) {
    match signal {
        ProgressSignal::OffTrack => ("OFF_TRACK", "Off track"),
        ProgressSignal::AtRisk => ("AT_RISK", "At risk"),
        ProgressSignal::OnTrack => ("ON_TRACK", "On track"),
        ProgressSignal::Done => ("DONE", "Done"),
    }
}

fn excerpt(body: &str) -> String {
    let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if body.chars().count() <= EXCERPT_CHARS {
        return body;
    }
    let cut: String = body.chars().take(EXCERPT_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

/// Progress updates posted in the period on the recipient's changes: under each change, off
/// track first, then at risk, on track and done, newest first within a signal.
pub async fn progress_section(
    db: &Database,
    interests: &[Change],
    period: &Period,
) -> Result<ProgressSection, DbErr> {
    let codes = codes(interests);
    let mut rows = progress_update::Entity::find()
        .filter(progress_update::Column::PostedAt.gte(period.start))
        .filter(progress_update::Column::PostedAt.lt(period.end))
        .filter(
            Condition::any()
                .add(
                    progress_update::Column::PledgeId.in_subquery(
                        pledge_change::Entity::find()
                            .select_only()
                            .column(pledge_change::Column::PledgeId)
                            .filter(pledge_change::Column::Change.is_in(codes.clone()))
                            .into_query(),
                    ),
                )
                .add(
                    progress_update::Column::CoalitionId.in_subquery(
                        coalition_change::Entity::find()
                            .select_only()
                            .column(coalition_change::Column::CoalitionId)
                            .filter(coalition_change::Column::Change.is_in(codes))
                            .into_query(),
                    ),
                ),
        )
        .all(db.reads())
        .await?;
    rows.sort_by(|a, b| {
        signal_rank(a.signal)
            .cmp(&signal_rank(b.signal))
            .then(b.posted_at.cmp(&a.posted_at))
            .then(b.id.cmp(&a.id))
    });
    let pledge_ids: Vec<Uuid> = rows.iter().filter_map(|u| u.pledge_id).collect();
    let coalition_ids: Vec<Uuid> = rows.iter().filter_map(|u| u.coalition_id).collect();
    let pledge_changes = pledges::changes_of(db, &pledge_ids).await?;
    let coalition_changes = coalitions::changes_of(db, &coalition_ids).await?;
    let pledge_titles: HashMap<Uuid, String> = pledges::by_ids(db, &pledge_ids)
        .await?
        .into_iter()
        .map(|p| (p.id, p.title))
        .collect();
    let coalition_names: HashMap<Uuid, String> = coalitions::by_ids(db, &coalition_ids)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    let names = organisation_names(db, rows.iter().map(|u| u.organisation_id)).await?;
    let mut groups = Grouping::new(interests);
    for row in rows {
        let (on, subject, subject_kind) = match (row.pledge_id, row.coalition_id) {
            (Some(id), _) => (
                pledge_changes.get(&id).cloned().unwrap_or_default(),
                pledge_titles.get(&id).cloned().unwrap_or_default(),
                "pledge",
            ),
            (None, Some(id)) => (
                coalition_changes.get(&id).cloned().unwrap_or_default(),
                coalition_names.get(&id).cloned().unwrap_or_default(),
                "coalition",
            ),
            (None, None) => continue,
        };
        let (signal, signal_label) = signal_names(row.signal);
        let item = ProgressItem {
            signal,
            signal_label,
            percent_complete: row.percent_complete,
            excerpt: excerpt(&row.body),
            subject,
            subject_kind,
            organisation: names.get(&row.organisation_id).cloned().unwrap_or_default(),
            posted_at: row.posted_at,
        };
        for change in on {
            groups.add(change, || item.clone());
        }
    }
    Ok(ProgressSection {
        groups: groups.groups(),
    })
}

/// Coalitions formed in the period (with their lead) and organisations whose membership
/// became active in it, on the recipient's changes, in time order. A membership counts as
/// becoming active when it is active and was last changed in the period; the lead's own
/// membership, made with the coalition, is the "formed" item instead.
pub async fn coalitions_section(
    db: &Database,
    interests: &[Change],
    period: &Period,
) -> Result<CoalitionsSection, DbErr> {
    let on_interests = || {
        coalition_change::Entity::find()
            .select_only()
            .column(coalition_change::Column::CoalitionId)
            .filter(coalition_change::Column::Change.is_in(codes(interests)))
            .into_query()
    };
    let formed = coalition::Entity::find()
        .filter(coalition::Column::CreatedAt.gte(period.start))
        .filter(coalition::Column::CreatedAt.lt(period.end))
        .filter(coalition::Column::Id.in_subquery(on_interests()))
        .order_by_asc(coalition::Column::Id)
        .all(db.reads())
        .await?;
    let joined = coalition_member::Entity::find()
        .filter(coalition_member::Column::Status.eq(MembershipStatus::Active))
        .filter(coalition_member::Column::UpdatedAt.gte(period.start))
        .filter(coalition_member::Column::UpdatedAt.lt(period.end))
        .filter(coalition_member::Column::CoalitionId.in_subquery(on_interests()))
        .order_by_asc(coalition_member::Column::Id)
        .all(db.reads())
        .await?;
    let mut coalition_ids: Vec<Uuid> = formed
        .iter()
        .map(|c| c.id)
        .chain(joined.iter().map(|m| m.coalition_id))
        .collect();
    coalition_ids.sort();
    coalition_ids.dedup();
    let found: HashMap<Uuid, coalitions::Coalition> = coalitions::by_ids(db, &coalition_ids)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let changes = coalitions::changes_of(db, &coalition_ids).await?;
    let names = organisation_names(
        db,
        formed
            .iter()
            .map(|c| c.lead_organisation_id)
            .chain(joined.iter().map(|m| m.organisation_id)),
    )
    .await?;
    let mut events: Vec<(Uuid, CoalitionItem)> = Vec::new();
    for row in &formed {
        events.push((
            row.id,
            CoalitionItem {
                coalition: row.name.clone(),
                slug: row.slug.clone(),
                event: "formed",
                organisation: names
                    .get(&row.lead_organisation_id)
                    .cloned()
                    .unwrap_or_default(),
                at: row.created_at,
            },
        ));
    }
    for member in &joined {
        let Some(coalition) = found.get(&member.coalition_id) else {
            continue;
        };
        if member.organisation_id == coalition.lead_organisation_id
            && member.created_at == coalition.created_at
        {
            continue;
        }
        events.push((
            coalition.id,
            CoalitionItem {
                coalition: coalition.name.clone(),
                slug: coalition.slug.clone(),
                event: "joined",
                organisation: names
                    .get(&member.organisation_id)
                    .cloned()
                    .unwrap_or_default(),
                at: member.updated_at,
            },
        ));
    }
    // Stable, over rows read in id order: ties in time read the same for any set of changes.
    events.sort_by_key(|e| e.1.at);
    let mut groups = Grouping::new(interests);
    for (id, item) in events {
        for &change in changes.get(&id).into_iter().flatten() {
            groups.add(change, || item.clone());
        }
    }
    Ok(CoalitionsSection {
        groups: groups.groups(),
    })
}

/// Active pledges on the recipient's changes that have gone quiet by the period's end, by the
/// definition of `domain::pledges` (`Pledge::gone_quiet`) with the configured `quiet_after`,
/// quietest first.
pub async fn quiet_pledges_section(
    db: &Database,
    interests: &[Change],
    period: &Period,
    quiet_after: TimeDelta,
) -> Result<QuietPledgesSection, DbErr> {
    let rows = pledge::Entity::find()
        .filter(pledge::Column::Status.eq(PledgeStatus::Active))
        .filter(pledge::Column::LastActivityAt.lte(crate::time::before(period.end, quiet_after)))
        .filter(
            pledge::Column::Id.in_subquery(
                pledge_change::Entity::find()
                    .select_only()
                    .column(pledge_change::Column::PledgeId)
                    .filter(pledge_change::Column::Change.is_in(codes(interests)))
                    .into_query(),
            ),
        )
        .order_by_asc(pledge::Column::LastActivityAt)
        .order_by_asc(pledge::Column::Id)
        .all(db.reads())
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|p| p.id).collect();
    let changes = pledges::changes_of(db, &ids).await?;
    let names = organisation_names(db, rows.iter().map(|p| p.organisation_id)).await?;
    let spells: Vec<(Uuid, DateTime<Utc>)> =
        rows.iter().map(|p| (p.id, p.last_activity_at)).collect();
    let reminders = pledges::nudges::unanswered(db, &spells).await?;
    let mut groups = Grouping::new(interests);
    for row in rows {
        let item = QuietPledgeItem {
            organisation: names.get(&row.organisation_id).cloned().unwrap_or_default(),
            quiet_days: (period.end - row.last_activity_at).num_days(),
            reminders: reminders.get(&row.id).copied().unwrap_or_default(),
            last_activity_at: row.last_activity_at,
            title: row.title,
        };
        for &change in changes.get(&row.id).into_iter().flatten() {
            groups.add(change, || item.clone());
        }
    }
    Ok(QuietPledgesSection {
        groups: groups.groups(),
    })
}

/// Published gatherings that have not ended by the period's end, soonest first, with places
/// left and waitlist length. Gatherings are not tied to a change, so the recipient's changes of
/// interest do not filter them.
pub async fn gatherings_section(
    db: &Database,
    period: &Period,
) -> Result<GatheringsSection, DbErr> {
    let found = gatherings::upcoming_published(db, period.end, GATHERINGS_SHOWN).await?;
    let ids: Vec<_> = found.iter().map(|g| g.id).collect();
    let counts = registrations::counts(db, &ids).await?;
    let items = found
        .into_iter()
        .map(|g| {
            let count = counts.get(&g.id).copied().unwrap_or_default();
            let in_person_offered = g.format.allows(AttendanceMode::InPerson);
            let online_offered = g.format.allows(AttendanceMode::Online);
            let in_person = in_person_offered
                .then(|| g.places_left(AttendanceMode::InPerson))
                .flatten();
            let online = online_offered
                .then(|| g.places_left(AttendanceMode::Online))
                .flatten();
            let unlimited =
                (in_person_offered && in_person.is_none()) || (online_offered && online.is_none());
            let full = !unlimited && in_person.unwrap_or(0) == 0 && online.unwrap_or(0) == 0;
            let when = g
                .starts_at
                .with_timezone(&g.time_zone.tz())
                .format("%A %-d %B %Y, %H:%M %Z")
                .to_string();
            GatheringItem {
                new_this_period: period.contains(g.created_at),
                title: g.title,
                slug: g.slug,
                starts_at: g.starts_at,
                when,
                format: g.format,
                in_person_places_left: in_person,
                online_places_left: online,
                in_person_offered,
                online_offered,
                unlimited,
                confirmed: count.confirmed,
                waitlisted: count.waitlisted,
                full,
            }
        })
        .collect();
    Ok(GatheringsSection { items })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_follow_the_interests_order_drop_empty_changes_and_cap_with_a_count() {
        let interests = [
            Change::LivingInThePlaceWeCallHome,
            Change::MoreResourcesBetterUsed,
            Change::SharingPowerAsEquals,
        ];
        let mut grouping = Grouping::new(&interests);
        let mut made = 0;
        for n in 0..ITEMS_PER_CHANGE + 3 {
            grouping.add(Change::SharingPowerAsEquals, || {
                made += 1;
                n
            });
        }
        grouping.add(Change::LivingInThePlaceWeCallHome, || 99);
        grouping.add(Change::CommunitiesWhereEveryoneBelongs, || 7);
        // Only the items kept are made.
        assert_eq!(made, ITEMS_PER_CHANGE);
        let groups = grouping.groups();
        let changes: Vec<Change> = groups.iter().map(|g| g.change).collect();
        assert_eq!(
            changes,
            [
                Change::LivingInThePlaceWeCallHome,
                Change::SharingPowerAsEquals
            ]
        );
        assert_eq!(groups[0].items, [99]);
        assert_eq!(groups[0].more, 0);
        assert_eq!(groups[1].items, (0..ITEMS_PER_CHANGE).collect::<Vec<_>>());
        assert_eq!(groups[1].more, 3);
    }

    #[test]
    fn excerpts_are_one_line_and_cut_at_the_limit() {
        assert_eq!(
            excerpt("Ten people\n\nmoved  home"),
            "Ten people moved home"
        );
        let long = "word ".repeat(100);
        let cut = excerpt(&long);
        assert!(cut.chars().count() <= EXCERPT_CHARS);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn signals_order_worst_first() {
        let mut signals = [
            ProgressSignal::Done,
            ProgressSignal::OnTrack,
            ProgressSignal::OffTrack,
            ProgressSignal::AtRisk,
        ];
        signals.sort_by_key(|s| signal_rank(*s));
        assert_eq!(
            signals.map(|s| signal_names(s).0),
            ["OFF_TRACK", "AT_RISK", "ON_TRACK", "DONE"]
        );
    }
}
