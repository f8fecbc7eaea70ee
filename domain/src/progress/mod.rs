//! Progress updates: the year of action's timeline. An update is posted against a pledge (by
//! the pledging organisation's people or API token) or a coalition (by an active member's), with
//! a signal, an optional percent complete and evidence links. A `DONE` update on a pledge can
//! mark it achieved.
//!
//! [`post`] is the one place an update comes into being: whatever publishes posted updates
//! (live subscriptions) hangs off its return.

use crate::generations::Areas;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select,
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    AccessError, Actor, Database, InvalidInput,
    access::{require_acts_for, require_someone},
    changes::{self, Change},
    coalitions::{self, CoalitionStatus},
    entities::{
        coalition, coalition_change, organisation_member, pledge, pledge_change, progress_update,
    },
    page::{Page, PageRequest},
    pledges::{self, PledgeStatus},
    text::WebUrl,
    webhooks,
};

pub use crate::entities::enums::ProgressSignal;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgressUpdate {
    pub id: Uuid,
    pub pledge_id: Option<Uuid>,
    pub coalition_id: Option<Uuid>,
    /// The organisation that posted it.
    pub organisation_id: Uuid,
    /// The person who posted it, when not an API token.
    pub author_person_id: Option<Uuid>,
    pub body: String,
    pub signal: ProgressSignal,
    pub percent_complete: Option<u8>,
    pub evidence_urls: Vec<String>,
    pub posted_at: DateTime<Utc>,
}

impl From<crate::pledges::with_related::LatestUpdate> for ProgressUpdate {
    fn from(update: crate::pledges::with_related::LatestUpdate) -> Self {
        Self::from(update.0)
    }
}

impl From<progress_update::Model> for ProgressUpdate {
    fn from(row: progress_update::Model) -> Self {
        let evidence_urls = row
            .evidence_urls
            .as_array()
            .map(|urls| {
                urls.iter()
                    .filter_map(|u| u.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            id: row.id,
            pledge_id: row.pledge_id,
            coalition_id: row.coalition_id,
            organisation_id: row.organisation_id,
            author_person_id: row.author_person_id,
            body: row.body,
            signal: row.signal,
            percent_complete: row.percent_complete.and_then(|p| u8::try_from(p).ok()),
            evidence_urls,
            posted_at: row.posted_at,
        }
    }
}

/// What happened: 1 to 5,000 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateBody(String);

impl UpdateBody {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        let value = value.trim();
        let length = value.chars().count();
        if length == 0 {
            return Err(InvalidInput::new("must not be empty"));
        }
        if length > 5000 {
            return Err(InvalidInput::new(format!(
                "must be at most 5000 characters (it has {length})"
            )));
        }
        Ok(Self(value.to_owned()))
    }
}

/// A whole percentage, 0 to 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PercentComplete(u8);

impl PercentComplete {
    pub fn parse(value: i32) -> Result<Self, InvalidInput> {
        u8::try_from(value)
            .ok()
            .filter(|p| *p <= 100)
            .map(Self)
            .ok_or_else(|| InvalidInput::new("must be between 0 and 100"))
    }
}

/// Links to evidence: at most ten, each an http(s) URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EvidenceUrls(Vec<WebUrl>);

impl EvidenceUrls {
    pub const MAX: usize = 10;

    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Self, InvalidInput> {
        // Counted before any is parsed: ten thousand links are refused without reading them.
        let values: Vec<&str> = values.into_iter().take(Self::MAX + 1).collect();
        let count = values.len();
        let urls = values
            .into_iter()
            .map(WebUrl::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if count > Self::MAX || urls.len() > Self::MAX {
            return Err(InvalidInput::new(format!(
                "may hold at most {} links",
                Self::MAX
            )));
        }
        Ok(Self(urls))
    }
}

/// What an update is posted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    Pledge(Uuid),
    Coalition(Uuid),
}

/// A validated update to post.
#[derive(Clone, Debug)]
pub struct NewProgressUpdate {
    pub subject: Subject,
    /// For a coalition update, which member organisation posts it; when left out, the one the
    /// caller acts for (the earliest to join, for a person in several).
    pub organisation_id: Option<Uuid>,
    pub body: UpdateBody,
    pub signal: ProgressSignal,
    pub percent_complete: Option<PercentComplete>,
    pub evidence_urls: EvidenceUrls,
    /// With a `DONE` signal on a pledge, marks the pledge achieved.
    pub mark_achieved: bool,
}

/// Which updates a list holds; every condition given must hold.
#[derive(Clone, Debug, Default)]
pub struct ProgressFilter {
    /// On a pledge or coalition acting on any of these changes.
    pub changes: Vec<Change>,
    /// Posted by this organisation.
    pub organisation_id: Option<Uuid>,
    pub coalition_id: Option<Uuid>,
    pub pledge_id: Option<Uuid>,
    pub signal: Option<ProgressSignal>,
    /// Posted at or after.
    pub since: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("No pledge has that id.")]
    PledgeNotFound,
    #[error("No coalition has that id.")]
    CoalitionNotFound,
    #[error("The pledge was withdrawn; it takes no more updates.")]
    PledgeWithdrawn,
    #[error("The coalition has concluded; it takes no more updates.")]
    CoalitionConcluded,
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// Posts a progress update, moves the changes' figures, and returns the new update: the single
/// point where a posted update is known.
#[tracing::instrument(skip_all, fields(progress.signal = ?new.signal))]
pub async fn post(
    db: &Database,
    actor: &Actor,
    new: NewProgressUpdate,
    now: DateTime<Utc>,
) -> Result<ProgressUpdate, ProgressError> {
    require_someone(actor)?;
    let txn = db.begin_write_on(Areas::MOVEMENT).await?;
    // News: stamped after the latest digest's line if it races one (see `crate::fence`).
    let now = crate::fence::stamp(&*txn, now).await?;
    let (organisation_id, on_changes, pledge_row) = match new.subject {
        Subject::Pledge(pledge_id) => {
            let found = pledge::Entity::find_by_id(pledge_id)
                .one(&*txn)
                .await?
                .ok_or(ProgressError::PledgeNotFound)?;
            require_acts_for::<ProgressError>(&*txn, actor, found.organisation_id).await?;
            // The pledge's writes queue on its organisation's row; read it again under that
            // lock, so a withdrawal just made is seen and never overwritten as achieved.
            crate::organisations::lock_organisation(&*txn, found.organisation_id).await?;
            let row = pledge::Entity::find_by_id(pledge_id)
                .one(&*txn)
                .await?
                .ok_or(ProgressError::PledgeNotFound)?;
            if row.status == PledgeStatus::Withdrawn {
                return Err(ProgressError::PledgeWithdrawn);
            }
            let on = pledges::changes_of_one(&*txn, pledge_id).await?;
            (row.organisation_id, on, Some(row))
        }
        Subject::Coalition(coalition_id) => {
            let row = coalition::Entity::find_by_id(coalition_id)
                .one(&*txn)
                .await?
                .ok_or(ProgressError::CoalitionNotFound)?;
            let organisation_id =
                poster_for_coalition(&*txn, actor, coalition_id, new.organisation_id).await?;
            if row.status == CoalitionStatus::Concluded {
                return Err(ProgressError::CoalitionConcluded);
            }
            let on = coalitions::changes_of_in(&*txn, &[coalition_id])
                .await?
                .remove(&coalition_id)
                .unwrap_or_default();
            (organisation_id, on, None)
        }
    };
    let (pledge_id, coalition_id) = match new.subject {
        Subject::Pledge(id) => (Some(id), None),
        Subject::Coalition(id) => (None, Some(id)),
    };
    let urls: Vec<&str> = new.evidence_urls.0.iter().map(WebUrl::as_str).collect();
    let row = progress_update::Model {
        id: Uuid::now_v7(),
        pledge_id,
        coalition_id,
        organisation_id,
        author_person_id: actor.person_id(),
        body: new.body.0,
        signal: new.signal,
        percent_complete: new.percent_complete.map(|p| i16::from(p.0)),
        evidence_urls: json!(urls),
        posted_at: now,
    };
    progress_update::Entity::insert(progress_update::ActiveModel::from(row.clone()))
        .exec_without_returning(&*txn)
        .await?;
    if let Some(pledge_row) = pledge_row {
        let achieve = new.signal == ProgressSignal::Done
            && new.mark_achieved
            && pledge_row.status == PledgeStatus::Active;
        let mut active: pledge::ActiveModel = pledge_row.into();
        active.latest_update_id = Set(Some(row.id));
        active.last_activity_at = Set(now);
        active.updated_at = Set(now);
        if achieve {
            active.status = Set(PledgeStatus::Achieved);
            active.achieved_at = Set(Some(now));
        }
        let pledge = active.update(&*txn).await?;
        if achieve {
            webhooks::emit(&*txn, webhooks::Emit::PledgeAchieved(&pledge), now).await?;
        }
    }
    webhooks::emit(&*txn, webhooks::Emit::ProgressUpdatePosted(&row), now).await?;
    changes::progress_posted(&*txn, &on_changes, now).await?;
    txn.commit().await?;
    Ok(row.into())
}

/// Which active member organisation posts a coalition update for this caller.
async fn poster_for_coalition(
    conn: &impl ConnectionTrait,
    actor: &Actor,
    coalition_id: Uuid,
    chosen: Option<Uuid>,
) -> Result<Uuid, ProgressError> {
    if let Some(organisation_id) = chosen {
        require_acts_for::<ProgressError>(conn, actor, organisation_id).await?;
        return coalitions::active_members_among(conn, coalition_id, &[organisation_id])
            .await?
            .first()
            .copied()
            .ok_or_else(|| refuse_non_member().into());
    }
    let acts_for: Vec<Uuid> = match actor {
        Actor::Anonymous => return Err(AccessError::Unauthenticated.into()),
        Actor::Organisation {
            organisation_id, ..
        } => vec![*organisation_id],
        Actor::Person { person_id, .. } => organisation_member::Entity::find()
            .filter(organisation_member::Column::PersonId.eq(*person_id))
            .all(conn)
            .await?
            .into_iter()
            .map(|m| m.organisation_id)
            .collect(),
    };
    coalitions::active_members_among(conn, coalition_id, &acts_for)
        .await?
        .first()
        .copied()
        .ok_or_else(|| refuse_non_member().into())
}

fn refuse_non_member() -> AccessError {
    AccessError::Forbidden("only the coalition's active members post its updates")
}

/// Updates by id, for batched loading.
/// The changes an update is about: those of its pledge or coalition.
pub async fn changes_of_update(
    db: &Database,
    update: &ProgressUpdate,
) -> Result<Vec<crate::changes::Change>, DbErr> {
    let (found, id) = match (update.pledge_id, update.coalition_id) {
        (Some(pledge_id), _) => (
            crate::pledges::changes_of(db, &[pledge_id]).await?,
            pledge_id,
        ),
        (None, Some(coalition_id)) => (
            crate::coalitions::changes_of(db, &[coalition_id]).await?,
            coalition_id,
        ),
        (None, None) => return Ok(Vec::new()),
    };
    Ok(found.get(&id).cloned().unwrap_or_default())
}

pub async fn by_ids(db: &Database, ids: &[Uuid]) -> Result<Vec<ProgressUpdate>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(progress_update::Entity::find()
        .filter(progress_update::Column::Id.is_in(ids.iter().copied()))
        .all(db.reads())
        .await?
        .into_iter()
        .map(ProgressUpdate::from)
        .collect())
}

fn filtered(filter: &ProgressFilter) -> Select<progress_update::Entity> {
    let mut query = progress_update::Entity::find();
    if !filter.changes.is_empty() {
        let codes: Vec<&str> = filter.changes.iter().map(|c| c.code()).collect();
        query = query.filter(
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
        );
    }
    if let Some(id) = filter.organisation_id {
        query = query.filter(progress_update::Column::OrganisationId.eq(id));
    }
    if let Some(id) = filter.coalition_id {
        query = query.filter(progress_update::Column::CoalitionId.eq(id));
    }
    if let Some(id) = filter.pledge_id {
        query = query.filter(progress_update::Column::PledgeId.eq(id));
    }
    if let Some(signal) = filter.signal {
        query = query.filter(progress_update::Column::Signal.eq(signal));
    }
    if let Some(since) = filter.since {
        query = query.filter(progress_update::Column::PostedAt.gte(since));
    }
    query
}

/// A page of updates matching `filter`, newest first.
#[tracing::instrument(skip_all)]
pub async fn list(
    db: &Database,
    filter: &ProgressFilter,
    page: PageRequest,
) -> Result<Page<ProgressUpdate>, DbErr> {
    let total = if page.count_total {
        Some(filtered(filter).count(db.reads()).await?)
    } else {
        None
    };
    let mut query = filtered(filter).order_by_desc(progress_update::Column::Id);
    if let Some(after) = page.after {
        query = query.filter(progress_update::Column::Id.lt(after));
    }
    let rows = crate::page::rows(db.reads(), query, &page).await?;
    Ok(Page::from_rows(rows, page, total).map(ProgressUpdate::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_complete_is_a_whole_percentage() {
        assert!(PercentComplete::parse(0).is_ok());
        assert!(PercentComplete::parse(100).is_ok());
        assert!(PercentComplete::parse(101).is_err());
        assert!(PercentComplete::parse(-1).is_err());
    }

    #[test]
    fn evidence_is_at_most_ten_web_links() {
        assert!(EvidenceUrls::parse(["https://a.example/report", "http://b.example"]).is_ok());
        assert!(EvidenceUrls::parse(["ftp://a.example/report"]).is_err());
        assert!(EvidenceUrls::parse(["mailto:someone@example.org"]).is_err());
        assert!(EvidenceUrls::parse(["https://a.example"; 11]).is_err());
        assert_eq!(EvidenceUrls::parse([]), Ok(EvidenceUrls::default()));
    }

    #[test]
    fn an_update_body_is_trimmed_and_not_empty() {
        assert_eq!(
            UpdateBody::parse("  done  ").map(|b| b.0),
            Ok("done".to_owned())
        );
        assert!(UpdateBody::parse(" \n ").is_err());
    }
}
