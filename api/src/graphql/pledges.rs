//! Pledges: organisations' public commitments to act on the five changes.

use std::{collections::HashMap, sync::Arc};

use async_graphql::{Context, Enum, ID, InputObject, Lookahead, MaybeUndefined, Object};
use chrono::{DateTime, Utc};
use groundswell_domain::{
    changes::ChangeSet,
    organisations::Organisation as DomainOrganisation,
    pledges::{
        self, Commitment, NewPledge, Pledge as DomainPledge, PledgeEdit,
        PledgeFilter as DomainFilter, PledgeTitle, WithdrawalReason,
        with_related::{Include, list_with},
    },
    progress::{ProgressFilter, ProgressUpdate as DomainUpdate},
};
use uuid::Uuid;

use super::{
    ApiError, ApiResult, actor, app,
    changes::Change,
    coalitions::{Coalition, load_coalition},
    connection::{Paged, connection, page_request},
    error::FieldContext,
    listed::ListedPledge,
    loaders::{
        CoalitionChanges, CoalitionId, OrganisationId, PledgeChanges, ProgressUpdateId,
        RequestLoader, forget_cached,
    },
    organisations::{Organisation, OrganisationKind, Region, load_organisation},
    parse_id,
    progress::ProgressUpdate,
    scalars::Date,
};

/// Where a pledge stands.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "groundswell_domain::pledges::PledgeStatus")]
pub enum PledgeStatus {
    /// Being acted on.
    Active,
    /// Done, as the organisation reported.
    Achieved,
    /// Withdrawn by the organisation, with a public reason.
    Withdrawn,
}

pub struct Pledge(pub DomainPledge);

/// An organisation's public commitment to act on one or more of the five changes.
#[Object]
impl Pledge {
    /// The pledge's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// A short name for the pledge.
    async fn title(&self) -> &str {
        &self.0.title
    }

    /// What the organisation will do.
    async fn commitment(&self) -> &str {
        &self.0.commitment
    }

    /// The day it should be done by, if set.
    async fn due_by(&self) -> Option<Date> {
        self.0.due_by.map(Date)
    }

    /// Whether it is active, achieved or withdrawn.
    async fn status(&self) -> PledgeStatus {
        self.0.status.into()
    }

    /// Why it was withdrawn, once it is.
    async fn withdrawn_reason(&self) -> Option<&str> {
        self.0.withdrawn_reason.as_deref()
    }

    /// The organisation that made it.
    async fn organisation(&self, ctx: &Context<'_>) -> ApiResult<Organisation> {
        load_organisation(ctx, self.0.organisation_id).await
    }

    /// The changes it acts on, in their published order.
    async fn changes(&self, ctx: &Context<'_>) -> ApiResult<Vec<Change>> {
        let loader = ctx.data::<RequestLoader>()?;
        Ok(loader
            .load_one(PledgeChanges(self.0.id))
            .await
            .map_err(ApiError::internal)?
            .unwrap_or_default()
            .into_iter()
            .map(Change::from)
            .collect())
    }

    /// The coalition it was made on behalf of, if any.
    async fn coalition(&self, ctx: &Context<'_>) -> ApiResult<Option<Coalition>> {
        match self.0.coalition_id {
            Some(id) => Ok(Some(load_coalition(ctx, id).await?)),
            None => Ok(None),
        }
    }

    /// The most recent progress update, if any.
    async fn latest_update(&self, ctx: &Context<'_>) -> ApiResult<Option<ProgressUpdate>> {
        let Some(id) = self.0.latest_update_id else {
            return Ok(None);
        };
        let loader = ctx.data::<RequestLoader>()?;
        Ok(loader
            .load_one(ProgressUpdateId(id))
            .await
            .map_err(ApiError::internal)?
            .map(ProgressUpdate))
    }

    /// Its progress updates, newest first.
    async fn updates(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<Paged<ProgressUpdate>> {
        let had_cursor = after.is_some();
        let filter = ProgressFilter {
            pledge_id: Some(self.0.id),
            ..ProgressFilter::default()
        };
        let page = groundswell_domain::progress::list(
            &app(ctx)?.db,
            &filter,
            page_request(ctx, first, after)?,
        )
        .await?;
        Ok(connection(page, had_cursor, |u| u.id, ProgressUpdate))
    }

    /// Active, with no progress update for the configured time (60 days unless set otherwise)
    /// since it was made or last reported on.
    async fn gone_quiet(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        Ok(self
            .0
            .gone_quiet(groundswell_domain::now(), app(ctx)?.quiet_after))
    }

    /// When it was made or last reported on.
    async fn last_activity_at(&self) -> DateTime<Utc> {
        self.0.last_activity_at
    }

    /// When it was made.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When it was last changed (an edit, an update posted, or withdrawal).
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// When it was marked achieved, once it is.
    async fn achieved_at(&self) -> Option<DateTime<Utc>> {
        self.0.achieved_at
    }

    /// When it was withdrawn, once it is.
    async fn withdrawn_at(&self) -> Option<DateTime<Utc>> {
        self.0.withdrawn_at
    }
}

/// Loads, in one batch each, what the selected nested fields of a page of pledges will ask for,
/// so the page costs the same number of statements whatever its size (see `loaders`).
pub(crate) async fn prime(
    ctx: &Context<'_>,
    pledges: &[DomainPledge],
    node: Lookahead<'_>,
) -> ApiResult<()> {
    if pledges.is_empty() {
        return Ok(());
    }
    let loader = ctx.data::<RequestLoader>()?;
    let coalition_ids = || pledges.iter().filter_map(|p| p.coalition_id);
    let organisations = async {
        if node.field("organisation").exists() {
            loader
                .load_many(pledges.iter().map(|p| OrganisationId(p.organisation_id)))
                .await?;
        }
        Ok::<_, std::sync::Arc<sea_orm::DbErr>>(())
    };
    let changes = async {
        if node.field("changes").exists() {
            loader
                .load_many(pledges.iter().map(|p| PledgeChanges(p.id)))
                .await?;
        }
        Ok(())
    };
    let coalitions = async {
        let coalition = node.field("coalition");
        if coalition.exists() {
            loader.load_many(coalition_ids().map(CoalitionId)).await?;
        }
        if coalition.field("changes").exists() {
            loader
                .load_many(coalition_ids().map(CoalitionChanges))
                .await?;
        }
        Ok(())
    };
    let updates = async {
        if node.field("latestUpdate").exists() {
            loader
                .load_many(
                    pledges
                        .iter()
                        .filter_map(|p| p.latest_update_id)
                        .map(ProgressUpdateId),
                )
                .await?;
        }
        Ok(())
    };
    futures::try_join!(organisations, changes, coalitions, updates).map_err(ApiError::internal)?;
    Ok(())
}

/// A new pledge, made by an organisation the caller acts for.
#[derive(InputObject)]
pub struct MakePledgeInput {
    /// The pledging organisation; the caller must act for it.
    pub organisation_id: ID,
    /// One or more of the five changes (at most five items).
    pub changes: Vec<Change>,
    /// 1 to 200 characters.
    pub title: String,
    /// What will be done: 1 to 5,000 characters.
    pub commitment: String,
    /// The day it should be done by.
    pub due_by: Option<Date>,
    /// A coalition the organisation is an active member of, to pledge on its behalf.
    pub coalition_id: Option<ID>,
}

impl TryFrom<MakePledgeInput> for NewPledge {
    type Error = ApiError;

    fn try_from(input: MakePledgeInput) -> ApiResult<Self> {
        Ok(Self {
            organisation_id: parse_id("organisationId", &input.organisation_id)?,
            coalition_id: input
                .coalition_id
                .as_ref()
                .map(|id| parse_id("coalitionId", id))
                .transpose()?,
            changes: ChangeSet::parse(
                super::limits::at_most("changes", input.changes, super::limits::MAX_CHANGES)?
                    .into_iter()
                    .map(Into::into),
            )
            .field("changes")?,
            title: PledgeTitle::parse(&input.title).field("title")?,
            commitment: Commitment::parse(&input.commitment).field("commitment")?,
            due_by: input
                .due_by
                .map(|d| super::scalars::day("dueBy", d))
                .transpose()?,
        })
    }
}

/// What to change; fields left out stay as they are.
#[derive(InputObject)]
pub struct UpdatePledgeInput {
    /// One or more of the five changes (at most five items), replacing the current ones.
    pub changes: Option<Vec<Change>>,
    /// 1 to 200 characters.
    pub title: Option<String>,
    /// 1 to 5,000 characters.
    pub commitment: Option<String>,
    /// The day it should be done by; `null` clears it.
    pub due_by: MaybeUndefined<Date>,
}

impl TryFrom<UpdatePledgeInput> for PledgeEdit {
    type Error = ApiError;

    fn try_from(input: UpdatePledgeInput) -> ApiResult<Self> {
        Ok(Self {
            changes: input
                .changes
                .map(|c| super::limits::at_most("changes", c, super::limits::MAX_CHANGES))
                .transpose()?
                .map(|c| ChangeSet::parse(c.into_iter().map(Into::into)))
                .transpose()
                .field("changes")?,
            title: input
                .title
                .as_deref()
                .map(PledgeTitle::parse)
                .transpose()
                .field("title")?,
            commitment: input
                .commitment
                .as_deref()
                .map(Commitment::parse)
                .transpose()
                .field("commitment")?,
            due_by: match input.due_by {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(date) => Some(Some(super::scalars::day("dueBy", date)?)),
            },
        })
    }
}

/// Which pledges to list; every condition given must hold.
#[derive(InputObject, Default)]
pub struct PledgeFilter {
    /// On any of these changes (at most five items).
    pub changes: Option<Vec<Change>>,
    /// Made by this organisation.
    pub organisation_id: Option<ID>,
    /// Made by organisations of this kind.
    pub organisation_kind: Option<OrganisationKind>,
    /// Made by organisations in this region.
    pub region: Option<Region>,
    /// Only pledges with this status.
    pub status: Option<PledgeStatus>,
    /// Made on behalf of this coalition.
    pub coalition_id: Option<ID>,
    /// Only pledges that have gone quiet (`true`) or that have not (`false`).
    pub gone_quiet: Option<bool>,
    /// Made at or after this time.
    pub made_from: Option<DateTime<Utc>>,
    /// Made before this time.
    pub made_to: Option<DateTime<Utc>>,
}

impl TryFrom<PledgeFilter> for DomainFilter {
    type Error = ApiError;

    fn try_from(filter: PledgeFilter) -> ApiResult<Self> {
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
            organisation_kind: filter.organisation_kind.map(Into::into),
            region: filter.region.map(Into::into),
            status: filter.status.map(Into::into),
            coalition_id: filter
                .coalition_id
                .as_ref()
                .map(|id| parse_id("coalitionId", id))
                .transpose()?,
            gone_quiet: filter.gone_quiet,
            made_from: super::scalars::moment_opt("madeFrom", filter.made_from)?.map(|m| m.get()),
            made_to: super::scalars::moment_opt("madeTo", filter.made_to)?.map(|m| m.get()),
        })
    }
}

#[derive(Default)]
pub struct PledgesQuery;

#[Object]
impl PledgesQuery {
    /// A pledge by id (withdrawn ones too), or null if there is none.
    async fn pledge(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Pledge>> {
        let id = parse_id("id", &id)?;
        Ok(pledges::by_id(&app(ctx)?.db, id).await?.map(Pledge))
    }

    /// Pledges across the movement, in the order they were made.
    async fn pledges(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<PledgeFilter>,
    ) -> ApiResult<Paged<ListedPledge>> {
        let had_cursor = after.is_some();
        let filter = DomainFilter::try_from(filter.unwrap_or_default())?;
        let app = app(ctx)?;
        let node = ctx.look_ahead().field("edges").field("node");
        // The relations the page shows come with it (one statement when the organisation or
        // latest update is asked for, two otherwise). Each item carries its own, to be written
        // out in one step (`listed`); the request's loader gets them too, for items the
        // ordinary resolver answers.
        let include = Include {
            organisation: node.field("organisation").exists(),
            latest_update: node.field("latestUpdate").exists(),
            changes: node.field("changes").exists(),
        };
        let loaded = list_with(
            &app.db,
            &filter,
            page_request(ctx, first, after)?,
            groundswell_domain::now(),
            app.quiet_after,
            include,
        )
        .await?;
        let organisations: HashMap<Uuid, Arc<DomainOrganisation>> = loaded
            .organisations
            .into_iter()
            .map(|o| (o.id, Arc::new(o)))
            .collect();
        let updates: HashMap<Uuid, Arc<DomainUpdate>> = loaded
            .latest_updates
            .into_iter()
            .map(|u| {
                let u = DomainUpdate::from(u);
                (u.id, Arc::new(u))
            })
            .collect();
        let mut changes = loaded.changes;
        let loader = ctx.data::<RequestLoader>()?;
        loader
            .feed_many(
                organisations
                    .values()
                    .map(|o| (OrganisationId(o.id), DomainOrganisation::clone(o))),
            )
            .await;
        loader
            .feed_many(
                updates
                    .values()
                    .map(|u| (ProgressUpdateId(u.id), DomainUpdate::clone(u))),
            )
            .await;
        loader
            .feed_many(
                changes
                    .iter()
                    .map(|(id, changes)| (PledgeChanges(*id), changes.clone())),
            )
            .await;
        let page = loaded.page;
        prime(ctx, &page.items, node).await?;
        Ok(connection(
            page,
            had_cursor,
            |p| p.id,
            |pledge| ListedPledge {
                organisation: include
                    .organisation
                    .then(|| organisations.get(&pledge.organisation_id).cloned())
                    .flatten(),
                latest_update: match pledge.latest_update_id {
                    _ if !include.latest_update => None,
                    None => Some(None),
                    Some(id) => updates.get(&id).cloned().map(Some),
                },
                changes: include
                    .changes
                    .then(|| changes.remove(&pledge.id))
                    .flatten(),
                pledge: Pledge(pledge),
            },
        ))
    }
}

#[derive(Default)]
pub struct PledgesMutation;

#[Object]
impl PledgesMutation {
    /// Makes a public pledge for an organisation the caller acts for (a member, or its API
    /// token).
    async fn make_pledge(&self, ctx: &Context<'_>, input: MakePledgeInput) -> ApiResult<Pledge> {
        let new = NewPledge::try_from(input)?;
        let pledge =
            pledges::make(&app(ctx)?.db, actor(ctx)?, new, groundswell_domain::now()).await?;
        forget_cached(ctx)?;
        Ok(Pledge(pledge))
    }

    /// Changes a pledge's title, commitment, date or changes. The pledging organisation only.
    async fn update_pledge(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdatePledgeInput,
    ) -> ApiResult<Pledge> {
        let id = parse_id("id", &id)?;
        let edit = PledgeEdit::try_from(input)?;
        let pledge = pledges::update(
            &app(ctx)?.db,
            actor(ctx)?,
            id,
            edit,
            groundswell_domain::now(),
        )
        .await?;
        forget_cached(ctx)?;
        Ok(Pledge(pledge))
    }

    /// Withdraws a pledge with a public reason. The pledging organisation only.
    async fn withdraw_pledge(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
    ) -> ApiResult<Pledge> {
        let id = parse_id("id", &id)?;
        let reason = WithdrawalReason::parse(&reason).field("reason")?;
        let pledge = pledges::withdraw(
            &app(ctx)?.db,
            actor(ctx)?,
            id,
            reason,
            groundswell_domain::now(),
        )
        .await?;
        forget_cached(ctx)?;
        Ok(Pledge(pledge))
    }
}
