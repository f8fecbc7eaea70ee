//! Gatherings: creating, publishing, changing and cancelling them, and finding them.

use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use groundswell_domain::{
    Actor,
    gatherings::{
        self, CancelReason, Capacity, Gathering as DomainGathering, GatheringDescription,
        GatheringFilter as DomainFilter, GatheringTitle, GatheringUpdate, NewGathering, Times,
        Venue, When, Window,
    },
    people::TimeZone,
    registrations::{self, AttendanceMode as DomainMode, RegistrationFilter as DomainRegFilter},
    text::{Slug, WebUrl},
};

use super::{
    ApiError, ApiResult, actor, app,
    connection::{Paged, TotalCount, connection, page_request},
    error::FieldContext,
    loaders::{GatheringCounts, RequestLoader, ViewerRegistration, forget_cached},
    organisations::Region,
    parse_id,
    registrations::{AccessRequirement, AttendanceMode, Registration, RegistrationStatus},
    scalars::{moment, moment_opt},
};

/// How people take part in a gathering.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "groundswell_domain::gatherings::GatheringFormat")]
pub enum GatheringFormat {
    /// In person, at a venue.
    InPerson,
    /// Online only.
    Online,
    /// In person and online at once, with a capacity for each.
    Hybrid,
}

/// Where a gathering is in its life.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "groundswell_domain::gatherings::GatheringStatus")]
pub enum GatheringStatus {
    /// Being prepared; seen only by convenors.
    Draft,
    /// Open to see and, within its window, to register.
    Published,
    /// Called off, with a reason; its registrations are cancelled too.
    Cancelled,
}

/// Which gatherings to list, by whether they have ended.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum GatheringWhen {
    /// Not yet ended, soonest first.
    #[default]
    Upcoming,
    /// Ended, most recent first.
    Past,
}

pub struct Gathering(pub DomainGathering);

/// A gathering of the movement: in person, online, or both.
#[Object]
impl Gathering {
    /// The gathering's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Its title.
    async fn title(&self) -> &str {
        &self.0.title
    }

    /// Its short name in web addresses: lowercase letters, digits and hyphens.
    async fn slug(&self) -> &str {
        &self.0.slug
    }

    /// What it is about; may be empty.
    async fn description(&self) -> &str {
        &self.0.description
    }

    /// When it starts (UTC).
    async fn starts_at(&self) -> DateTime<Utc> {
        self.0.starts_at
    }

    /// When it ends (UTC).
    async fn ends_at(&self) -> DateTime<Utc> {
        self.0.ends_at
    }

    /// The gathering's IANA time zone, in which its times are shown.
    async fn time_zone(&self) -> &str {
        self.0.time_zone.name()
    }

    /// When it starts, in its own time zone (RFC 3339 with the local offset).
    async fn starts_at_local(&self) -> String {
        self.0
            .starts_at
            .with_timezone(&self.0.time_zone.tz())
            .to_rfc3339()
    }

    /// When it ends, in its own time zone (RFC 3339 with the local offset).
    async fn ends_at_local(&self) -> String {
        self.0
            .ends_at
            .with_timezone(&self.0.time_zone.tz())
            .to_rfc3339()
    }

    /// In person, online or hybrid.
    async fn format(&self) -> GatheringFormat {
        self.0.format.into()
    }

    /// The region it is held in, if it belongs to one.
    async fn area(&self) -> Option<Region> {
        self.0.area.map(Into::into)
    }

    /// The venue's name and address, for in-person and hybrid gatherings.
    async fn venue(&self) -> Option<&str> {
        self.0.venue.as_deref()
    }

    /// The link to join online; shown only to people with a confirmed place, and convenors.
    async fn joining_url(&self, ctx: &Context<'_>) -> ApiResult<Option<String>> {
        super::visibility::private(ctx);
        if self.0.joining_url.is_none() {
            return Ok(None);
        }
        let actor = actor(ctx)?;
        if super::loaders::convenes(ctx, actor, self.0.id).await? {
            return Ok(self.0.joining_url.clone());
        }
        let mine = viewer_registration(ctx, self.0.id).await?;
        let confirmed =
            mine.is_some_and(|r| r.status == registrations::RegistrationStatus::Confirmed);
        Ok(confirmed.then(|| self.0.joining_url.clone()).flatten())
    }

    /// In-person places in all; null when unlimited.
    async fn in_person_capacity(&self) -> Option<i32> {
        self.0.in_person_capacity
    }

    /// Online places in all; null when unlimited.
    async fn online_capacity(&self) -> Option<i32> {
        self.0.online_capacity
    }

    /// Places left for a way of attending (the format's own when left out); null when
    /// unlimited, 0 when the gathering does not offer it.
    async fn places_left(&self, mode: Option<AttendanceMode>) -> Option<i32> {
        let mode = mode.map_or(self.0.format.default_mode(), DomainMode::from);
        self.0.places_left(mode)
    }

    /// Confirmed registrations (people, not counting their companions).
    async fn confirmed_count(&self, ctx: &Context<'_>) -> ApiResult<i32> {
        Ok(counts(ctx, self.0.id).await?.confirmed as i32)
    }

    /// Places taken by confirmed registrations, companions included.
    async fn confirmed_places(&self) -> i32 {
        self.0.in_person_taken + self.0.online_taken
    }

    /// Registrations waiting for a place.
    async fn waitlisted_count(&self, ctx: &Context<'_>) -> ApiResult<i32> {
        Ok(counts(ctx, self.0.id).await?.waitlisted as i32)
    }

    /// When registration opens (UTC); null when it is open from publication.
    async fn registration_opens_at(&self) -> Option<DateTime<Utc>> {
        self.0.registration_opens_at
    }

    /// When registration closes (UTC); null when it stays open until the gathering ends.
    async fn registration_closes_at(&self) -> Option<DateTime<Utc>> {
        self.0.registration_closes_at
    }

    /// Whether registration is open now.
    async fn registration_open(&self) -> bool {
        self.0.registration_open(groundswell_domain::now())
    }

    /// Draft, published or cancelled.
    async fn status(&self) -> GatheringStatus {
        self.0.status.into()
    }

    /// Why it was cancelled, if it was.
    async fn cancel_reason(&self) -> Option<&str> {
        self.0.cancel_reason.as_deref()
    }

    /// The calendar file for this gathering.
    async fn calendar_url(&self, ctx: &Context<'_>) -> ApiResult<String> {
        Ok(format!(
            "{}/gatherings/{}.ics",
            app(ctx)?.public_url,
            self.0.slug
        ))
    }

    /// The caller's own registration, if they have one.
    async fn viewer_registration(&self, ctx: &Context<'_>) -> ApiResult<Option<Registration>> {
        super::visibility::private(ctx);
        Ok(viewer_registration(ctx, self.0.id)
            .await?
            .map(Registration::from))
    }

    /// Everyone registered, in the order they registered; convenors only.
    async fn registrations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<RegistrationFilter>,
    ) -> ApiResult<Paged<Registration>> {
        super::visibility::private(ctx);
        let had_cursor = after.is_some();
        let filter = filter.map(DomainRegFilter::from).unwrap_or_default();
        let page = registrations::for_gathering(
            &app(ctx)?.db,
            actor(ctx)?,
            self.0.id,
            &filter,
            page_request(ctx, first, after)?,
        )
        .await?;
        let look = ctx.look_ahead();
        super::registrations::prime(
            ctx,
            &page.items,
            &[look.field("edges").field("node"), look.field("nodes")],
        )
        .await?;
        Ok(connection(page, had_cursor, |r| r.id, Registration::from))
    }

    /// How many live registrations need each access requirement ("4 step-free, 2 BSL");
    /// the gathering's own convenors only (not admins: access needs are health data).
    async fn access_requirement_totals(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Vec<AccessRequirementTotal>> {
        super::visibility::private(ctx);
        let totals = registrations::access_totals(&app(ctx)?.db, actor(ctx)?, self.0.id).await?;
        Ok(totals
            .into_iter()
            .map(|t| AccessRequirementTotal {
                requirement: t.requirement.into(),
                count: i32::try_from(t.count).unwrap_or(i32::MAX),
            })
            .collect())
    }
}

async fn counts(ctx: &Context<'_>, id: uuid::Uuid) -> ApiResult<registrations::Counts> {
    let loader = ctx.data::<RequestLoader>()?;
    Ok(loader
        .load_one(GatheringCounts(id))
        .await
        .map_err(ApiError::internal)?
        .unwrap_or_default())
}

async fn viewer_registration(
    ctx: &Context<'_>,
    gathering_id: uuid::Uuid,
) -> ApiResult<Option<registrations::Registration>> {
    let Actor::Person { person_id, .. } = actor(ctx)? else {
        return Ok(None);
    };
    let loader = ctx.data::<RequestLoader>()?;
    loader
        .load_one(ViewerRegistration {
            gathering_id,
            person_id: *person_id,
        })
        .await
        .map_err(ApiError::internal)
        .map(Option::flatten)
}

/// How many live registrations need one access requirement.
#[derive(SimpleObject)]
pub struct AccessRequirementTotal {
    /// The access requirement.
    pub requirement: AccessRequirement,
    /// How many live registrations need it.
    pub count: i32,
}

/// Which registrations to list.
#[derive(InputObject, Default)]
pub struct RegistrationFilter {
    /// Only registrations with this status.
    pub status: Option<RegistrationStatus>,
    /// Only people attending this way.
    pub mode: Option<AttendanceMode>,
    /// Only registrations with (true) or without (false) access needs; the gathering's own
    /// convenors only (not admins).
    pub has_access_needs: Option<bool>,
}

impl From<RegistrationFilter> for DomainRegFilter {
    fn from(f: RegistrationFilter) -> Self {
        Self {
            status: f.status.map(Into::into),
            mode: f.mode.map(Into::into),
            has_access_needs: f.has_access_needs,
        }
    }
}

/// Which gatherings to list.
#[derive(InputObject, Default)]
pub struct GatheringFilter {
    /// Upcoming (the default) or past.
    #[graphql(default)]
    pub when: GatheringWhen,
    /// Only gatherings of this format.
    pub format: Option<GatheringFormat>,
    /// Only gatherings held in this region.
    pub area: Option<Region>,
}

/// A new gathering, made as a draft.
#[derive(InputObject)]
pub struct CreateGatheringInput {
    /// 1 to 200 characters.
    pub title: String,
    /// Lowercase letters, digits and hyphens; made from the title when left out.
    pub slug: Option<String>,
    /// What it is about: up to 10,000 characters; empty when left out.
    pub description: Option<String>,
    /// When it starts (UTC).
    pub starts_at: DateTime<Utc>,
    /// When it ends (UTC); after startsAt.
    pub ends_at: DateTime<Utc>,
    /// IANA time zone the gathering is shown in; Europe/London when left out.
    pub time_zone: Option<String>,
    /// In person, online or hybrid.
    pub format: GatheringFormat,
    /// The region it is held in, if it belongs to one.
    pub area: Option<Region>,
    /// Name and address, for in-person and hybrid gatherings.
    pub venue: Option<String>,
    /// An http(s) link to join online; shown only to confirmed attendees.
    pub joining_url: Option<String>,
    /// Left out for unlimited.
    pub in_person_capacity: Option<i32>,
    /// Left out for unlimited.
    pub online_capacity: Option<i32>,
    /// When registration opens (UTC); left out, it opens when the gathering is published.
    pub registration_opens_at: Option<DateTime<Utc>>,
    /// When registration closes (UTC), after registrationOpensAt; left out, it stays open until the
    /// gathering ends.
    pub registration_closes_at: Option<DateTime<Utc>>,
}

fn capacity(field: &str, value: Option<i32>) -> ApiResult<Option<Capacity>> {
    value.map(Capacity::parse).transpose().field(field)
}

fn optional_text<T>(
    field: &str,
    value: Option<&str>,
    parse: fn(&str) -> Result<T, groundswell_domain::InvalidInput>,
) -> ApiResult<Option<T>> {
    value
        .filter(|v| !v.trim().is_empty())
        .map(parse)
        .transpose()
        .field(field)
}

impl TryFrom<CreateGatheringInput> for NewGathering {
    type Error = ApiError;

    fn try_from(input: CreateGatheringInput) -> ApiResult<Self> {
        let title = GatheringTitle::parse(&input.title).field("title")?;
        let slug = match input.slug.as_deref() {
            Some(slug) => Slug::parse(slug).field("slug")?,
            None => Slug::from_name(title.as_str()).field("title")?,
        };
        Ok(Self {
            slug,
            description: GatheringDescription::parse(input.description.as_deref().unwrap_or(""))
                .field("description")?,
            times: Times::new(
                moment("startsAt", input.starts_at)?,
                moment("endsAt", input.ends_at)?,
            )
            .field("endsAt")?,
            time_zone: match input.time_zone.as_deref() {
                Some(zone) => TimeZone::parse(zone).field("timeZone")?,
                None => TimeZone::LONDON,
            },
            format: input.format.into(),
            area: input.area.map(Into::into),
            venue: optional_text("venue", input.venue.as_deref(), Venue::parse)?,
            joining_url: input
                .joining_url
                .as_deref()
                .filter(|v| !v.trim().is_empty())
                .map(WebUrl::parse)
                .transpose()
                .field("joiningUrl")?,
            in_person_capacity: capacity("inPersonCapacity", input.in_person_capacity)?,
            online_capacity: capacity("onlineCapacity", input.online_capacity)?,
            window: Window::new(
                moment_opt("registrationOpensAt", input.registration_opens_at)?,
                moment_opt("registrationClosesAt", input.registration_closes_at)?,
            )
            .field("registrationClosesAt")?,
            title,
        })
    }
}

/// Changes to a gathering. Fields left out stay as they are; a nullable field set to null is
/// cleared (a capacity set to null becomes unlimited).
#[derive(InputObject)]
pub struct UpdateGatheringInput {
    /// A new title: 1 to 200 characters.
    pub title: Option<String>,
    /// A new description: up to 10,000 characters.
    pub description: Option<String>,
    /// Give with endsAt.
    pub starts_at: Option<DateTime<Utc>>,
    /// A new end (UTC), after the start.
    pub ends_at: Option<DateTime<Utc>>,
    /// A new IANA time zone to show it in, such as Europe/London.
    pub time_zone: Option<String>,
    /// The region it is held in; null for none.
    #[graphql(default)]
    pub area: MaybeUndefined<Region>,
    /// The venue's name and address, up to 500 characters; null for none.
    #[graphql(default)]
    pub venue: MaybeUndefined<String>,
    /// An http(s) link to join online, shown only to confirmed attendees; null for none.
    #[graphql(default)]
    pub joining_url: MaybeUndefined<String>,
    /// In-person places in all, from 0 to 100,000; null for unlimited.
    #[graphql(default)]
    pub in_person_capacity: MaybeUndefined<i32>,
    /// Online places in all, from 0 to 100,000; null for unlimited.
    #[graphql(default)]
    pub online_capacity: MaybeUndefined<i32>,
    /// Give with registrationClosesAt; both replace the window.
    pub registration_opens_at: Option<DateTime<Utc>>,
    /// When registration closes (UTC). Give with registrationOpensAt: together they replace the
    /// window, and one left out is cleared.
    pub registration_closes_at: Option<DateTime<Utc>>,
}

fn maybe<T, U>(
    value: MaybeUndefined<T>,
    parse: impl FnOnce(T) -> ApiResult<U>,
) -> ApiResult<Option<Option<U>>> {
    match value {
        MaybeUndefined::Undefined => Ok(None),
        MaybeUndefined::Null => Ok(Some(None)),
        MaybeUndefined::Value(v) => parse(v).map(|v| Some(Some(v))),
    }
}

fn update_from(
    input: UpdateGatheringInput,
    current: &DomainGathering,
) -> ApiResult<GatheringUpdate> {
    let times = if input.starts_at.is_some() || input.ends_at.is_some() {
        Some(
            Times::new(
                moment("startsAt", input.starts_at.unwrap_or(current.starts_at))?,
                moment("endsAt", input.ends_at.unwrap_or(current.ends_at))?,
            )
            .field("endsAt")?,
        )
    } else {
        None
    };
    let window = if input.registration_opens_at.is_some() || input.registration_closes_at.is_some()
    {
        Some(
            Window::new(
                moment_opt("registrationOpensAt", input.registration_opens_at)?,
                moment_opt("registrationClosesAt", input.registration_closes_at)?,
            )
            .field("registrationClosesAt")?,
        )
    } else {
        None
    };
    Ok(GatheringUpdate {
        title: input
            .title
            .as_deref()
            .map(GatheringTitle::parse)
            .transpose()
            .field("title")?,
        description: input
            .description
            .as_deref()
            .map(GatheringDescription::parse)
            .transpose()
            .field("description")?,
        times,
        time_zone: input
            .time_zone
            .as_deref()
            .map(TimeZone::parse)
            .transpose()
            .field("timeZone")?,
        area: maybe(input.area, |a| Ok(a.into()))?,
        venue: maybe(input.venue, |v| Venue::parse(&v).field("venue"))?,
        joining_url: maybe(input.joining_url, |u| WebUrl::parse(&u).field("joiningUrl"))?,
        in_person_capacity: maybe(input.in_person_capacity, |c| {
            Capacity::parse(c).field("inPersonCapacity")
        })?,
        online_capacity: maybe(input.online_capacity, |c| {
            Capacity::parse(c).field("onlineCapacity")
        })?,
        window,
    })
}

fn encode_offset(offset: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

/// Cursors name an offset into the list; anything past this is not one we made.
const MAX_OFFSET: u64 = 1 << 32;

fn decode_offset(cursor: &str) -> Option<u64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let offset: u64 = String::from_utf8(bytes)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()?;
    (offset < MAX_OFFSET).then_some(offset)
}

#[derive(Default)]
pub struct GatheringsQuery;

#[Object]
impl GatheringsQuery {
    /// A gathering by slug; drafts only for convenors.
    async fn gathering(&self, ctx: &Context<'_>, slug: String) -> ApiResult<Option<Gathering>> {
        if slug.len() > Slug::MAX {
            return Ok(None);
        }
        let (db, actor) = (&app(ctx)?.db, actor(ctx)?);
        let selection = ctx.look_ahead();
        // The page's counts, and the caller's own registration, come with the gathering when
        // they are asked for, straight into the request's loader: one statement.
        let counted = selection.field("confirmedCount").exists()
            || selection.field("waitlistedCount").exists();
        let viewer = match actor {
            Actor::Person { person_id, .. }
                if selection.field("viewerRegistration").exists()
                    || selection.field("joiningUrl").exists() =>
            {
                Some(*person_id)
            }
            _ => None,
        };
        if !counted && viewer.is_none() {
            return Ok(gatherings::by_slug(db, actor, &slug).await?.map(Gathering));
        }
        let Some(read) =
            registrations::gathering_page::by_slug_for_page(db, actor, &slug, viewer).await?
        else {
            return Ok(None);
        };
        let loader = ctx.data::<RequestLoader>()?;
        let gathering_id = read.gathering.id;
        loader
            .feed_one(GatheringCounts(gathering_id), read.counts)
            .await;
        if let (Some(person_id), Some(mine)) = (viewer, read.viewer_registration) {
            loader
                .feed_one(
                    ViewerRegistration {
                        gathering_id,
                        person_id,
                    },
                    mine,
                )
                .await;
        }
        Ok(Some(Gathering(read.gathering)))
    }

    /// Gatherings: upcoming soonest first (the default), or past most recent first.
    async fn gatherings(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<GatheringFilter>,
    ) -> ApiResult<Paged<Gathering>> {
        let request = page_request(ctx, first, None)?;
        let offset = match after.as_deref() {
            Some(cursor) => {
                decode_offset(cursor)
                    .ok_or_else(|| ApiError::bad_input("after", "is not a cursor from this list"))?
                    + 1
            }
            None => 0,
        };
        let filter = filter.unwrap_or_default();
        let filter = DomainFilter {
            when: match filter.when {
                GatheringWhen::Upcoming => When::Upcoming,
                GatheringWhen::Past => When::Past,
            },
            format: filter.format.map(Into::into),
            area: filter.area.map(Into::into),
        };
        let (items, total) = gatherings::list(
            &app(ctx)?.db,
            actor(ctx)?,
            &filter,
            offset,
            request.first,
            groundswell_domain::now(),
        )
        .await?;
        let mut connection = Paged::with_additional_fields(
            offset > 0,
            offset + (items.len() as u64) < total,
            TotalCount {
                total_count: i64::try_from(total).unwrap_or(i64::MAX),
            },
        );
        connection
            .edges
            .extend(items.into_iter().enumerate().map(|(n, g)| {
                async_graphql::connection::Edge::new(encode_offset(offset + n as u64), Gathering(g))
            }));
        Ok(connection)
    }
}

#[derive(Default)]
pub struct GatheringsMutation;

#[Object]
impl GatheringsMutation {
    /// Creates a draft gathering; convenors only. The creator becomes its convenor.
    async fn create_gathering(
        &self,
        ctx: &Context<'_>,
        input: CreateGatheringInput,
    ) -> ApiResult<Gathering> {
        let new = NewGathering::try_from(input)?;
        let gathering =
            gatherings::create(&app(ctx)?.db, actor(ctx)?, new, groundswell_domain::now()).await?;
        forget_cached(ctx)?;
        Ok(Gathering(gathering))
    }

    /// Changes a gathering; its convenors only. Raising a capacity promotes waiting people.
    async fn update_gathering(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateGatheringInput,
    ) -> ApiResult<Gathering> {
        let id = parse_id("id", &id)?;
        let app = app(ctx)?;
        let current = gatherings::by_id(&app.db, id)
            .await?
            .ok_or_else(|| ApiError::NotFound("No gathering has that id.".to_owned()))?;
        let update = update_from(input, &current)?;
        let gathering =
            gatherings::update(&app.db, actor(ctx)?, id, update, groundswell_domain::now()).await?;
        forget_cached(ctx)?;
        app.mail_queued.notify_one();
        app.events.places_changed(gathering.id);
        Ok(Gathering(gathering))
    }

    /// Opens a draft gathering to registration; its convenors only.
    async fn publish_gathering(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Gathering> {
        let id = parse_id("id", &id)?;
        let gathering =
            gatherings::publish(&app(ctx)?.db, actor(ctx)?, id, groundswell_domain::now()).await?;
        forget_cached(ctx)?;
        Ok(Gathering(gathering))
    }

    /// Cancels a gathering and every registration, telling each person why; convenors only.
    async fn cancel_gathering(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
    ) -> ApiResult<Gathering> {
        let id = parse_id("id", &id)?;
        let reason = CancelReason::parse(&reason).field("reason")?;
        let app = app(ctx)?;
        let gathering =
            gatherings::cancel(&app.db, actor(ctx)?, id, reason, groundswell_domain::now()).await?;
        forget_cached(ctx)?;
        app.mail_queued.notify_one();
        app.events.places_changed(gathering.id);
        Ok(Gathering(gathering))
    }
}
