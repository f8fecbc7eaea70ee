//! Organisations, their members and their API tokens.

use async_graphql::{Context, Enum, ID, InputObject, Object};
use chrono::{DateTime, Utc};
use groundswell_domain::{
    Actor,
    organisations::{
        self, ApiToken as DomainToken, Member, NewOrganisation, Organisation as DomainOrganisation,
        OrganisationName,
    },
    people::EmailAddress,
    text::{Slug, WebUrl},
};

use super::{
    ApiError, ApiResult, actor, app,
    connection::{Paged, connection, page_request},
    error::FieldContext,
    loaders::{OrganisationId, PersonId, RequestLoader},
    parse_id,
    people::Person,
};

/// What sort of body an organisation is.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "groundswell_domain::organisations::OrganisationKind")]
pub enum OrganisationKind {
    /// A local council.
    Council,
    /// A charity working across the country.
    NationalCharity,
    /// An organisation that provides care or support.
    CareProvider,
    /// An organisation run by the people who draw on care and support.
    UserLedOrganisation,
    /// A local community group.
    CommunityGroup,
    /// A part of the NHS.
    NhsBody,
    /// Any other kind of organisation.
    Other,
}

/// England's regions, or the whole country for national bodies.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "groundswell_domain::organisations::Region")]
pub enum Region {
    /// The whole of England: for bodies that work nationally.
    National,
    /// North East England.
    NorthEast,
    /// North West England.
    NorthWest,
    /// Yorkshire and the Humber.
    YorkshireAndTheHumber,
    /// The East Midlands.
    EastMidlands,
    /// The West Midlands.
    WestMidlands,
    /// The East of England.
    EastOfEngland,
    /// London.
    London,
    /// South East England.
    SouthEast,
    /// South West England.
    SouthWest,
}

/// What a member may do for an organisation.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "groundswell_domain::organisations::OrganisationRole")]
pub enum OrganisationRole {
    /// Manages the organisation: its members and API tokens.
    Owner,
    /// Acts for the organisation: pledges and progress.
    Member,
}

pub struct Organisation(pub DomainOrganisation);

/// A council, charity, provider, user-led organisation, community group or NHS body.
#[Object]
impl Organisation {
    /// The organisation's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The organisation's name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Its short name in web addresses: lowercase letters, digits and hyphens.
    async fn slug(&self) -> &str {
        &self.0.slug
    }

    /// What sort of body it is.
    async fn kind(&self) -> OrganisationKind {
        self.0.kind.into()
    }

    /// Where in England it works.
    async fn region(&self) -> Region {
        self.0.region.into()
    }

    /// Its website, if it gave one.
    async fn website(&self) -> Option<&str> {
        self.0.website.as_deref()
    }

    /// When it joined Groundswell.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The caller's role here, if they are a member.
    async fn viewer_role(&self, ctx: &Context<'_>) -> ApiResult<Option<OrganisationRole>> {
        super::visibility::private(ctx);
        let Actor::Person { person_id, .. } = actor(ctx)? else {
            return Ok(None);
        };
        let role = organisations::role(&app(ctx)?.db, self.0.id, *person_id).await?;
        Ok(role.map(Into::into))
    }

    /// The organisation's members, the first 100 to join at most; only its members and admins
    /// see them.
    async fn members(&self, ctx: &Context<'_>) -> ApiResult<Vec<OrganisationMember>> {
        super::visibility::private(ctx);
        let members = organisations::members(&app(ctx)?.db, actor(ctx)?, self.0.id).await?;
        Ok(members.into_iter().map(OrganisationMember).collect())
    }

    /// The organisation's API tokens, newest first, at most 50; only its owners see them.
    async fn api_tokens(&self, ctx: &Context<'_>) -> ApiResult<Vec<ApiToken>> {
        super::visibility::private(ctx);
        let tokens = organisations::api_tokens(&app(ctx)?.db, actor(ctx)?, self.0.id).await?;
        Ok(tokens.into_iter().map(ApiToken).collect())
    }

    /// The organisation's webhook endpoints, oldest first; only its owners and its own API
    /// tokens see them.
    async fn webhooks(&self, ctx: &Context<'_>) -> ApiResult<Vec<super::webhooks::Webhook>> {
        super::visibility::private(ctx);
        super::webhooks::of_organisation(ctx, self.0.id).await
    }
}

pub struct OrganisationMember(pub Member);

/// A person's place in an organisation.
#[Object]
impl OrganisationMember {
    /// The membership's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// What the member may do for the organisation.
    async fn role(&self) -> OrganisationRole {
        self.0.role.into()
    }

    /// The member. Others see only their id (and admins their details): an owner who adds
    /// an address learns nothing of the account behind it.
    async fn person(&self, ctx: &Context<'_>) -> ApiResult<Person> {
        let loader = ctx.data::<RequestLoader>()?;
        loader
            .load_one(PersonId(self.0.person_id))
            .await
            .map_err(ApiError::internal)?
            .map(Person::id_only)
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("member without a person")))
    }

    /// The organisation they belong to.
    async fn organisation(&self, ctx: &Context<'_>) -> ApiResult<Organisation> {
        load_organisation(ctx, self.0.organisation_id).await
    }

    /// When they joined.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

pub(crate) async fn load_organisation(
    ctx: &Context<'_>,
    id: uuid::Uuid,
) -> ApiResult<Organisation> {
    let loader = ctx.data::<RequestLoader>()?;
    loader
        .load_one(OrganisationId(id))
        .await
        .map_err(ApiError::internal)?
        .map(Organisation)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("organisation {id} vanished")))
}

pub struct ApiToken(pub DomainToken);

/// A token an integration uses to act for an organisation. The token itself is shown only
/// once, when it is made.
#[Object]
impl ApiToken {
    /// The token's id (not the token itself).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// What the owners called it, to recognise it later.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The organisation the token acts for.
    async fn organisation(&self, ctx: &Context<'_>) -> ApiResult<Organisation> {
        load_organisation(ctx, self.0.organisation_id).await
    }

    /// When it was made.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// Roughly when it was last used (to within five minutes).
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }

    /// When it was revoked, if it has been. A revoked token no longer works.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
}

pub struct NewApiToken {
    token: String,
    api_token: ApiToken,
}

/// A token just made.
#[Object]
impl NewApiToken {
    /// Send as `Authorization: Bearer <token>`. Shown once: Groundswell keeps only its hash.
    async fn token(&self) -> &str {
        &self.token
    }

    /// The token's details, as listed afterwards in `Organisation.apiTokens`.
    async fn api_token(&self) -> &ApiToken {
        &self.api_token
    }
}

/// A new organisation.
#[derive(InputObject)]
pub struct CreateOrganisationInput {
    /// 1 to 200 characters.
    pub name: String,
    /// Lowercase letters, digits and hyphens; made from the name when left out.
    pub slug: Option<String>,
    /// What sort of body it is.
    pub kind: OrganisationKind,
    /// Where in England it works.
    pub region: Region,
    /// An http(s) address.
    pub website: Option<String>,
}

impl TryFrom<CreateOrganisationInput> for NewOrganisation {
    type Error = ApiError;

    fn try_from(input: CreateOrganisationInput) -> ApiResult<Self> {
        let name = OrganisationName::parse(&input.name).field("name")?;
        let slug = match input.slug.as_deref() {
            Some(slug) => Slug::parse(slug).field("slug")?,
            None => Slug::from_name(name.as_str()).field("name")?,
        };
        Ok(Self {
            name,
            slug,
            kind: input.kind.into(),
            region: input.region.into(),
            website: input
                .website
                .as_deref()
                .filter(|w| !w.trim().is_empty())
                .map(WebUrl::parse)
                .transpose()
                .field("website")?,
        })
    }
}

#[derive(Default)]
pub struct OrganisationsQuery;

#[Object]
impl OrganisationsQuery {
    /// The organisation with this slug, or null if there is none.
    async fn organisation(
        &self,
        ctx: &Context<'_>,
        slug: String,
    ) -> ApiResult<Option<Organisation>> {
        if slug.len() > Slug::MAX {
            return Ok(None);
        }
        Ok(organisations::by_slug(&app(ctx)?.db, &slug)
            .await?
            .map(Organisation))
    }

    /// Organisations in the order they joined.
    async fn organisations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<Paged<Organisation>> {
        let had_cursor = after.is_some();
        let page = organisations::list(&app(ctx)?.db, page_request(ctx, first, after)?).await?;
        Ok(connection(page, had_cursor, |o| o.id, Organisation))
    }
}

#[derive(Default)]
pub struct OrganisationsMutation;

#[Object]
impl OrganisationsMutation {
    /// Creates an organisation with the signed-in person as its first owner.
    async fn create_organisation(
        &self,
        ctx: &Context<'_>,
        input: CreateOrganisationInput,
    ) -> ApiResult<Organisation> {
        let new = NewOrganisation::try_from(input)?;
        let organisation =
            organisations::create(&app(ctx)?.db, actor(ctx)?, new, groundswell_domain::now())
                .await?;
        Ok(Organisation(organisation))
    }

    /// Adds a person (by email, creating their account if new) to an organisation, or changes
    /// their role. Owners only; the person is told by email.
    async fn add_organisation_member(
        &self,
        ctx: &Context<'_>,
        organisation_id: ID,
        email: String,
        role: OrganisationRole,
    ) -> ApiResult<OrganisationMember> {
        let organisation_id = parse_id("organisationId", &organisation_id)?;
        let email = EmailAddress::parse(&email).field("email")?;
        let app = app(ctx)?;
        let member = organisations::add_member(
            &app.db,
            actor(ctx)?,
            organisation_id,
            &email,
            role.into(),
            app.limits,
            groundswell_domain::now(),
        )
        .await?;
        app.mail_queued.notify_one();
        Ok(OrganisationMember(member))
    }

    /// Makes an API token for an integration. Owners only. The token is shown once.
    async fn create_api_token(
        &self,
        ctx: &Context<'_>,
        organisation_id: ID,
        name: String,
    ) -> ApiResult<NewApiToken> {
        let organisation_id = parse_id("organisationId", &organisation_id)?;
        let name = organisations::token_name(&name).field("name")?;
        let made = organisations::create_api_token(
            &app(ctx)?.db,
            actor(ctx)?,
            organisation_id,
            &name,
            groundswell_domain::now(),
        )
        .await?;
        Ok(NewApiToken {
            token: made.token,
            api_token: ApiToken(made.api_token),
        })
    }

    /// Revokes an API token at once. Owners only.
    async fn revoke_api_token(&self, ctx: &Context<'_>, id: ID) -> ApiResult<bool> {
        let id = parse_id("id", &id)?;
        organisations::revoke_api_token(&app(ctx)?.db, actor(ctx)?, id, groundswell_domain::now())
            .await?;
        Ok(true)
    }
}
