//! Coalitions of the willing and their memberships.

use async_graphql::{Context, Enum, ID, InputObject, Lookahead, Object};
use chrono::{DateTime, Utc};
use groundswell_domain::{
    changes::ChangeSet,
    coalitions::{
        self, Area, Coalition as DomainCoalition, CoalitionName, Membership, NewCoalition, Purpose,
    },
    pledges::{self, PledgeFilter},
    progress::{self, ProgressFilter},
    text::Slug,
};
use uuid::Uuid;

use super::{
    ApiError, ApiResult, actor, app,
    changes::Change,
    connection::{Paged, connection, page_request},
    error::FieldContext,
    listed::ListedPledge,
    loaders::{
        CoalitionChanges, CoalitionId, CoalitionMembers, OrganisationId, RequestLoader,
        forget_cached,
    },
    organisations::{Organisation, load_organisation},
    parse_id,
    pledges::Pledge,
    progress::ProgressUpdate,
};

/// Where a coalition is in its life.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "groundswell_domain::coalitions::CoalitionStatus")]
pub enum CoalitionStatus {
    /// Formed; waiting for a second organisation to join.
    Forming,
    /// Two or more organisations acting together.
    Active,
    /// Concluded by its lead; it takes no more members, pledges or updates.
    Concluded,
}

/// Where an organisation's membership of a coalition stands.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "groundswell_domain::coalitions::MembershipStatus")]
pub enum MembershipStatus {
    /// Invited by the lead; waiting for the organisation to accept.
    Invited,
    /// Asked to join; waiting for the lead to approve.
    Requested,
    /// A member.
    Active,
    /// Left (or declined, or withdrew its request).
    Left,
}

pub struct Coalition(pub DomainCoalition);

/// Organisations acting together on a focused action.
#[Object]
impl Coalition {
    /// The coalition's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Its name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Its address-friendly name, unique across coalitions.
    async fn slug(&self) -> &str {
        &self.0.slug
    }

    /// What the coalition will do together.
    async fn purpose(&self) -> &str {
        &self.0.purpose
    }

    /// The local area it works in, if it has one.
    async fn area(&self) -> Option<&str> {
        self.0.area.as_deref()
    }

    /// Whether it is forming, active or concluded.
    async fn status(&self) -> CoalitionStatus {
        self.0.status.into()
    }

    /// The changes it focuses on, in their published order.
    async fn changes(&self, ctx: &Context<'_>) -> ApiResult<Vec<Change>> {
        let loader = ctx.data::<RequestLoader>()?;
        Ok(loader
            .load_one(CoalitionChanges(self.0.id))
            .await
            .map_err(ApiError::internal)?
            .unwrap_or_default()
            .into_iter()
            .map(Change::from)
            .collect())
    }

    /// The organisation that leads it: it approves members and may hand the lead on.
    async fn lead(&self, ctx: &Context<'_>) -> ApiResult<Organisation> {
        load_organisation(ctx, self.0.lead_organisation_id).await
    }

    /// Its memberships, of every status, in the order they began: at most the first 100.
    async fn members(&self, ctx: &Context<'_>) -> ApiResult<Vec<CoalitionMembership>> {
        let loader = ctx.data::<RequestLoader>()?;
        Ok(loader
            .load_one(CoalitionMembers(self.0.id))
            .await
            .map_err(ApiError::internal)?
            .unwrap_or_default()
            .into_iter()
            .map(CoalitionMembership)
            .collect())
    }

    /// Pledges made on its behalf, in the order they were made.
    async fn pledges(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<Paged<ListedPledge>> {
        let had_cursor = after.is_some();
        let app = app(ctx)?;
        let filter = PledgeFilter {
            coalition_id: Some(self.0.id),
            ..PledgeFilter::default()
        };
        let page = pledges::list(
            &app.db,
            &filter,
            page_request(ctx, first, after)?,
            groundswell_domain::now(),
            app.quiet_after,
        )
        .await?;
        super::pledges::prime(
            ctx,
            &page.items,
            ctx.look_ahead().field("edges").field("node"),
        )
        .await?;
        Ok(connection(
            page,
            had_cursor,
            |p| p.id,
            |p| ListedPledge::alone(Pledge(p)),
        ))
    }

    /// Progress updates posted against the coalition itself, newest first.
    async fn updates(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<Paged<ProgressUpdate>> {
        let had_cursor = after.is_some();
        let filter = ProgressFilter {
            coalition_id: Some(self.0.id),
            ..ProgressFilter::default()
        };
        let page = progress::list(&app(ctx)?.db, &filter, page_request(ctx, first, after)?).await?;
        Ok(connection(page, had_cursor, |u| u.id, ProgressUpdate))
    }

    /// When it was formed.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When its lead concluded it, once it has.
    async fn concluded_at(&self) -> Option<DateTime<Utc>> {
        self.0.concluded_at
    }
}

/// Loads, in one batch each, what the selected nested fields of a page of coalitions will ask
/// for (see `loaders`).
async fn prime(ctx: &Context<'_>, page: &[DomainCoalition], node: Lookahead<'_>) -> ApiResult<()> {
    if page.is_empty() {
        return Ok(());
    }
    let loader = ctx.data::<RequestLoader>()?;
    let ids = || page.iter().map(|c| c.id);
    let changes = async {
        if node.field("changes").exists() {
            loader.load_many(ids().map(CoalitionChanges)).await?;
        }
        Ok::<_, std::sync::Arc<sea_orm::DbErr>>(())
    };
    let members = async {
        if node.field("members").exists() {
            return Ok(Some(loader.load_many(ids().map(CoalitionMembers)).await?));
        }
        Ok(None)
    };
    let ((), members) = futures::try_join!(changes, members).map_err(ApiError::internal)?;
    // Leads and members' organisations in one batch, so they never race into two.
    let mut organisations: Vec<OrganisationId> = Vec::new();
    if node.field("lead").exists() {
        organisations.extend(page.iter().map(|c| OrganisationId(c.lead_organisation_id)));
    }
    if let Some(members) = members
        && node.field("members").field("organisation").exists()
    {
        organisations.extend(
            members
                .values()
                .flatten()
                .map(|m| OrganisationId(m.organisation_id)),
        );
    }
    if !organisations.is_empty() {
        loader
            .load_many(organisations)
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(())
}

pub(crate) async fn load_coalition(ctx: &Context<'_>, id: Uuid) -> ApiResult<Coalition> {
    let loader = ctx.data::<RequestLoader>()?;
    loader
        .load_one(CoalitionId(id))
        .await
        .map_err(ApiError::internal)?
        .map(Coalition)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("coalition {id} vanished")))
}

pub struct CoalitionMembership(pub Membership);

/// An organisation's place in a coalition.
#[Object]
impl CoalitionMembership {
    /// The membership's id, for `acceptCoalitionMembership`.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Invited, requested, active or left.
    async fn status(&self) -> MembershipStatus {
        self.0.status.into()
    }

    /// The member organisation.
    async fn organisation(&self, ctx: &Context<'_>) -> ApiResult<Organisation> {
        load_organisation(ctx, self.0.organisation_id).await
    }

    /// The coalition.
    async fn coalition(&self, ctx: &Context<'_>) -> ApiResult<Coalition> {
        load_coalition(ctx, self.0.coalition_id).await
    }

    /// When the invitation or request was first made.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When its status last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A new coalition, led by the organisation that forms it.
#[derive(InputObject)]
pub struct FormCoalitionInput {
    /// The organisation forming and leading it; the caller must act for it.
    pub organisation_id: ID,
    /// 1 to 200 characters.
    pub name: String,
    /// Lowercase letters, digits and hyphens; made from the name when left out.
    pub slug: Option<String>,
    /// What it will do together: 1 to 2,000 characters.
    pub purpose: String,
    /// The local area it works in, if it has one.
    pub area: Option<String>,
    /// One or more of the five changes it focuses on (at most five items).
    pub changes: Vec<Change>,
}

impl TryFrom<FormCoalitionInput> for NewCoalition {
    type Error = ApiError;

    fn try_from(input: FormCoalitionInput) -> ApiResult<Self> {
        let name = CoalitionName::parse(&input.name).field("name")?;
        let slug = match input.slug.as_deref() {
            Some(slug) => Slug::parse(slug).field("slug")?,
            None => Slug::from_name(name.as_str()).field("name")?,
        };
        Ok(Self {
            organisation_id: parse_id("organisationId", &input.organisation_id)?,
            name,
            slug,
            purpose: Purpose::parse(&input.purpose).field("purpose")?,
            area: input
                .area
                .as_deref()
                .filter(|a| !a.trim().is_empty())
                .map(Area::parse)
                .transpose()
                .field("area")?,
            changes: ChangeSet::parse(
                super::limits::at_most("changes", input.changes, super::limits::MAX_CHANGES)?
                    .into_iter()
                    .map(Into::into),
            )
            .field("changes")?,
        })
    }
}

#[derive(Default)]
pub struct CoalitionsQuery;

#[Object]
impl CoalitionsQuery {
    /// A coalition by its slug, or null if there is none.
    async fn coalition(&self, ctx: &Context<'_>, slug: String) -> ApiResult<Option<Coalition>> {
        if slug.len() > Slug::MAX {
            return Ok(None);
        }
        let Some(found) = coalitions::by_slug(&app(ctx)?.db, &slug).await? else {
            return Ok(None);
        };
        // Its lead, members and their organisations in one statement each, however timed.
        prime(ctx, std::slice::from_ref(&found), ctx.look_ahead()).await?;
        Ok(Some(Coalition(found)))
    }

    /// Coalitions in the order they formed.
    async fn coalitions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<Paged<Coalition>> {
        let had_cursor = after.is_some();
        let page = coalitions::list(&app(ctx)?.db, page_request(ctx, first, after)?).await?;
        prime(
            ctx,
            &page.items,
            ctx.look_ahead().field("edges").field("node"),
        )
        .await?;
        Ok(connection(page, had_cursor, |c| c.id, Coalition))
    }
}

#[derive(Default)]
pub struct CoalitionsMutation;

#[Object]
impl CoalitionsMutation {
    /// Forms a coalition led by an organisation the caller acts for.
    async fn form_coalition(
        &self,
        ctx: &Context<'_>,
        input: FormCoalitionInput,
    ) -> ApiResult<Coalition> {
        let new = NewCoalition::try_from(input)?;
        let coalition =
            coalitions::form(&app(ctx)?.db, actor(ctx)?, new, groundswell_domain::now()).await?;
        forget_cached(ctx)?;
        Ok(Coalition(coalition))
    }

    /// Asks for an organisation the caller acts for to join; the lead approves with
    /// `acceptCoalitionMembership`. An organisation already invited joins at once.
    async fn request_to_join_coalition(
        &self,
        ctx: &Context<'_>,
        coalition_id: ID,
        organisation_id: ID,
    ) -> ApiResult<CoalitionMembership> {
        let coalition_id = parse_id("coalitionId", &coalition_id)?;
        let organisation_id = parse_id("organisationId", &organisation_id)?;
        let membership = coalitions::request_to_join(
            &app(ctx)?.db,
            actor(ctx)?,
            coalition_id,
            organisation_id,
            groundswell_domain::now(),
        )
        .await?;
        forget_cached(ctx)?;
        Ok(CoalitionMembership(membership))
    }

    /// The lead invites an organisation, which accepts with `acceptCoalitionMembership`. An
    /// organisation that had asked to join joins at once.
    async fn invite_to_coalition(
        &self,
        ctx: &Context<'_>,
        coalition_id: ID,
        organisation_id: ID,
    ) -> ApiResult<CoalitionMembership> {
        let coalition_id = parse_id("coalitionId", &coalition_id)?;
        let organisation_id = parse_id("organisationId", &organisation_id)?;
        let membership = coalitions::invite(
            &app(ctx)?.db,
            actor(ctx)?,
            coalition_id,
            organisation_id,
            groundswell_domain::now(),
        )
        .await?;
        forget_cached(ctx)?;
        Ok(CoalitionMembership(membership))
    }

    /// The lead approves a request to join, or the invited organisation accepts.
    async fn accept_coalition_membership(
        &self,
        ctx: &Context<'_>,
        membership_id: ID,
    ) -> ApiResult<CoalitionMembership> {
        let membership_id = parse_id("membershipId", &membership_id)?;
        let membership = coalitions::accept(
            &app(ctx)?.db,
            actor(ctx)?,
            membership_id,
            groundswell_domain::now(),
        )
        .await?;
        forget_cached(ctx)?;
        Ok(CoalitionMembership(membership))
    }

    /// An organisation the caller acts for leaves (or declines, or withdraws its request). The
    /// lead cannot leave: it hands the lead on or concludes the coalition.
    async fn leave_coalition(
        &self,
        ctx: &Context<'_>,
        coalition_id: ID,
        organisation_id: ID,
    ) -> ApiResult<CoalitionMembership> {
        let coalition_id = parse_id("coalitionId", &coalition_id)?;
        let organisation_id = parse_id("organisationId", &organisation_id)?;
        let membership = coalitions::leave(
            &app(ctx)?.db,
            actor(ctx)?,
            coalition_id,
            organisation_id,
            groundswell_domain::now(),
        )
        .await?;
        forget_cached(ctx)?;
        Ok(CoalitionMembership(membership))
    }

    /// The lead concludes the coalition: it takes no more members, pledges or updates.
    async fn conclude_coalition(
        &self,
        ctx: &Context<'_>,
        coalition_id: ID,
    ) -> ApiResult<Coalition> {
        let coalition_id = parse_id("coalitionId", &coalition_id)?;
        let coalition = coalitions::conclude(
            &app(ctx)?.db,
            actor(ctx)?,
            coalition_id,
            groundswell_domain::now(),
        )
        .await?;
        forget_cached(ctx)?;
        Ok(Coalition(coalition))
    }

    /// The lead hands the lead to another active member organisation.
    async fn hand_over_coalition_lead(
        &self,
        ctx: &Context<'_>,
        coalition_id: ID,
        organisation_id: ID,
    ) -> ApiResult<Coalition> {
        let coalition_id = parse_id("coalitionId", &coalition_id)?;
        let organisation_id = parse_id("organisationId", &organisation_id)?;
        let coalition =
            coalitions::hand_over_lead(&app(ctx)?.db, actor(ctx)?, coalition_id, organisation_id)
                .await?;
        forget_cached(ctx)?;
        Ok(Coalition(coalition))
    }
}
