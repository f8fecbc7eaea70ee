//! Progress updates: the year of action's timeline.

use async_graphql::{Context, Enum, ID, InputObject, Lookahead, Object};
use chrono::{DateTime, Utc};
use groundswell_domain::progress::{
    self, EvidenceUrls, NewProgressUpdate, PercentComplete, ProgressFilter,
    ProgressUpdate as DomainUpdate, Subject, UpdateBody,
};

use super::{
    ApiError, ApiResult, actor, app,
    changes::Change,
    coalitions::{Coalition, load_coalition},
    connection::{Paged, connection, page_request},
    error::FieldContext,
    loaders::{CoalitionId, OrganisationId, PledgeId, RequestLoader, forget_cached},
    organisations::{Organisation, load_organisation},
    parse_id,
    pledges::Pledge,
};

/// How the work is going, in one word.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "groundswell_domain::progress::ProgressSignal")]
pub enum ProgressSignal {
    /// Going as planned.
    OnTrack,
    /// Slipping; it may not be done in time.
    AtRisk,
    /// Stalled or failing.
    OffTrack,
    /// Done; on a pledge, this marks it achieved unless `markAchieved` is false.
    Done,
}

pub struct ProgressUpdate(pub DomainUpdate);

/// A report of progress on a pledge or by a coalition.
#[Object]
impl ProgressUpdate {
    /// The update's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The pledge it reports on, when posted against a pledge.
    async fn pledge(&self, ctx: &Context<'_>) -> ApiResult<Option<Pledge>> {
        let Some(id) = self.0.pledge_id else {
            return Ok(None);
        };
        let loader = ctx.data::<RequestLoader>()?;
        Ok(loader
            .load_one(PledgeId(id))
            .await
            .map_err(ApiError::internal)?
            .map(Pledge))
    }

    /// The coalition it reports on, when posted against a coalition.
    async fn coalition(&self, ctx: &Context<'_>) -> ApiResult<Option<Coalition>> {
        match self.0.coalition_id {
            Some(id) => Ok(Some(load_coalition(ctx, id).await?)),
            None => Ok(None),
        }
    }

    /// The organisation that posted it.
    async fn organisation(&self, ctx: &Context<'_>) -> ApiResult<Organisation> {
        load_organisation(ctx, self.0.organisation_id).await
    }

    /// What happened.
    async fn body(&self) -> &str {
        &self.0.body
    }

    /// How the work is going.
    async fn signal(&self) -> ProgressSignal {
        self.0.signal.into()
    }

    /// How far along, 0 to 100, if given.
    async fn percent_complete(&self) -> Option<i32> {
        self.0.percent_complete.map(i32::from)
    }

    /// Links to evidence (http or https).
    async fn evidence_urls(&self) -> &[String] {
        &self.0.evidence_urls
    }

    /// When it was posted.
    async fn posted_at(&self) -> DateTime<Utc> {
        self.0.posted_at
    }
}

/// Loads, in one batch each, what the selected nested fields of a page of updates will ask
/// for (see `loaders`).
async fn prime(ctx: &Context<'_>, updates: &[DomainUpdate], node: Lookahead<'_>) -> ApiResult<()> {
    if updates.is_empty() {
        return Ok(());
    }
    let loader = ctx.data::<RequestLoader>()?;
    let organisations = async {
        if node.field("organisation").exists() {
            loader
                .load_many(updates.iter().map(|u| OrganisationId(u.organisation_id)))
                .await?;
        }
        Ok::<_, std::sync::Arc<sea_orm::DbErr>>(())
    };
    let pledges = async {
        if node.field("pledge").exists() {
            loader
                .load_many(updates.iter().filter_map(|u| u.pledge_id).map(PledgeId))
                .await?;
        }
        Ok(())
    };
    let coalitions = async {
        if node.field("coalition").exists() {
            loader
                .load_many(
                    updates
                        .iter()
                        .filter_map(|u| u.coalition_id)
                        .map(CoalitionId),
                )
                .await?;
        }
        Ok(())
    };
    futures::try_join!(organisations, pledges, coalitions).map_err(ApiError::internal)?;
    Ok(())
}

/// A new progress update, on a pledge or on a coalition.
#[derive(InputObject)]
pub struct PostProgressUpdateInput {
    /// The pledge it reports on; give this or `coalitionId`.
    pub pledge_id: Option<ID>,
    /// The coalition it reports on; give this or `pledgeId`.
    pub coalition_id: Option<ID>,
    /// For a coalition update, the member organisation posting it; when left out, one the caller
    /// acts for.
    pub organisation_id: Option<ID>,
    /// What happened: 1 to 5,000 characters.
    pub body: String,
    /// How the work is going.
    pub signal: ProgressSignal,
    /// How far along, 0 to 100.
    pub percent_complete: Option<i32>,
    /// Links to evidence, each an http or https URL; at most ten.
    pub evidence_urls: Option<Vec<String>>,
    /// With `DONE` on a pledge, whether to mark the pledge achieved (it does unless false).
    #[graphql(default = true)]
    pub mark_achieved: bool,
}

impl TryFrom<PostProgressUpdateInput> for NewProgressUpdate {
    type Error = ApiError;

    fn try_from(input: PostProgressUpdateInput) -> ApiResult<Self> {
        let subject = match (&input.pledge_id, &input.coalition_id) {
            (Some(id), None) => Subject::Pledge(parse_id("pledgeId", id)?),
            (None, Some(id)) => Subject::Coalition(parse_id("coalitionId", id)?),
            _ => {
                return Err(ApiError::bad_input(
                    "pledgeId",
                    "or coalitionId must be given, and not both",
                ));
            }
        };
        Ok(Self {
            subject,
            organisation_id: input
                .organisation_id
                .as_ref()
                .map(|id| parse_id("organisationId", id))
                .transpose()?,
            body: UpdateBody::parse(&input.body).field("body")?,
            signal: input.signal.into(),
            percent_complete: input
                .percent_complete
                .map(PercentComplete::parse)
                .transpose()
                .field("percentComplete")?,
            evidence_urls: EvidenceUrls::parse(
                super::limits::at_most(
                    "evidenceUrls",
                    input.evidence_urls.unwrap_or_default(),
                    EvidenceUrls::MAX,
                )?
                .iter()
                .map(String::as_str),
            )
            .field("evidenceUrls")?,
            mark_achieved: input.mark_achieved,
        })
    }
}

/// Which updates to list; every condition given must hold.
#[derive(InputObject, Default)]
pub struct ProgressUpdateFilter {
    /// On a pledge or coalition acting on any of these changes (at most five items).
    pub changes: Option<Vec<Change>>,
    /// Posted by this organisation.
    pub organisation_id: Option<ID>,
    /// Posted against this coalition.
    pub coalition_id: Option<ID>,
    /// Only updates with this signal.
    pub signal: Option<ProgressSignal>,
    /// Posted at or after this time.
    pub since: Option<DateTime<Utc>>,
}

impl TryFrom<ProgressUpdateFilter> for ProgressFilter {
    type Error = ApiError;

    fn try_from(filter: ProgressUpdateFilter) -> ApiResult<Self> {
        Ok(Self {
            changes: super::limits::filter_values(
                "changes",
                filter
                    .changes
                    .map(|changes| changes.into_iter().map(Into::into).collect()),
                super::limits::MAX_CHANGES,
            )?,
            organisation_id: filter
                .organisation_id
                .as_ref()
                .map(|id| parse_id("organisationId", id))
                .transpose()?,
            coalition_id: filter
                .coalition_id
                .as_ref()
                .map(|id| parse_id("coalitionId", id))
                .transpose()?,
            pledge_id: None,
            signal: filter.signal.map(Into::into),
            since: super::scalars::moment_opt("since", filter.since)?.map(|m| m.get()),
        })
    }
}

#[derive(Default)]
pub struct ProgressQuery;

#[Object]
impl ProgressQuery {
    /// Progress updates across the movement, newest first.
    async fn progress_updates(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<ProgressUpdateFilter>,
    ) -> ApiResult<Paged<ProgressUpdate>> {
        let had_cursor = after.is_some();
        let filter = ProgressFilter::try_from(filter.unwrap_or_default())?;
        let page = progress::list(&app(ctx)?.db, &filter, page_request(ctx, first, after)?).await?;
        prime(
            ctx,
            &page.items,
            ctx.look_ahead().field("edges").field("node"),
        )
        .await?;
        Ok(connection(page, had_cursor, |u| u.id, ProgressUpdate))
    }
}

#[derive(Default)]
pub struct ProgressMutation;

#[Object]
impl ProgressMutation {
    /// Posts a progress update against a pledge (by the pledging organisation) or a coalition
    /// (by an active member).
    async fn post_progress_update(
        &self,
        ctx: &Context<'_>,
        input: PostProgressUpdateInput,
    ) -> ApiResult<ProgressUpdate> {
        let new = NewProgressUpdate::try_from(input)?;
        let app = app(ctx)?;
        let update = progress::post(&app.db, actor(ctx)?, new, groundswell_domain::now()).await?;
        forget_cached(ctx)?;
        app.events.progress_posted(update.id);
        Ok(ProgressUpdate(update))
    }
}
