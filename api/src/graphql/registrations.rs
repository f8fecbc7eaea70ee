//! Registering for gatherings, cancelling, checking in.

use async_graphql::{Context, Enum, ID, InputObject, Lookahead, Object};
use chrono::{DateTime, Utc};
use groundswell_domain::{
    Actor,
    people::{DisplayName, EmailAddress},
    registrations::{
        self, AccessNeeds, Companions, NewRegistration, OnBehalfOf,
        Registration as DomainRegistration,
    },
};

use super::{
    ApiError, ApiResult, actor, app,
    error::FieldContext,
    gatherings::Gathering,
    loaders::{
        Convenes, GatheringCounts, GatheringId, PersonId, RequestLoader, ViewerRegistration,
        forget_cached,
    },
    parse_id,
    people::Person,
};

/// How a person attends a gathering.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "groundswell_domain::registrations::AttendanceMode")]
pub enum AttendanceMode {
    /// In person, at the venue.
    InPerson,
    /// Online, by the joining link.
    Online,
}

/// Where a registration stands.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "groundswell_domain::registrations::RegistrationStatus")]
pub enum RegistrationStatus {
    /// Has a place.
    Confirmed,
    /// Waiting for a place; promoted in order as places free up.
    Waitlisted,
    /// Cancelled: by the person, whoever registered them or the convenors, or because the
    /// gathering was cancelled.
    Cancelled,
}

/// Something a person needs to take part fully.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "groundswell_domain::registrations::AccessRequirement")]
pub enum AccessRequirement {
    /// Step-free access (no steps or stairs).
    StepFreeAccess,
    /// A British Sign Language interpreter.
    BslInterpreter,
    /// A hearing loop.
    HearingLoop,
    /// Information in easy read.
    EasyRead,
    /// Information in large print.
    LargePrint,
    /// A quiet space to take a break.
    QuietSpace,
    /// Food that meets a dietary need.
    Dietary,
    /// A personal assistant or carer comes too.
    PersonalAssistant,
    /// Something else; say what in the access notes.
    Other,
}

pub struct Registration(pub DomainRegistration, tokio::sync::OnceCell<bool>);

impl From<DomainRegistration> for Registration {
    fn from(registration: DomainRegistration) -> Self {
        Self(registration, tokio::sync::OnceCell::new())
    }
}

impl Registration {
    /// The person themselves and the gathering's convenors see access needs and contact
    /// details; nobody else. Asked once per registration shown, however many fields need it.
    async fn may_see_access_needs(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let actor = actor(ctx)?;
        let allowed = self
            .1
            .get_or_try_init(|| async {
                Ok::<_, ApiError>(
                    self.0.is_persons_own(actor)
                        || super::loaders::convenes(ctx, actor, self.0.gathering_id).await?,
                )
            })
            .await?;
        Ok(*allowed)
    }
}

/// One person's registration for one gathering.
#[Object]
impl Registration {
    /// The registration's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The gathering registered for.
    async fn gathering(&self, ctx: &Context<'_>) -> ApiResult<Gathering> {
        let loader = ctx.data::<RequestLoader>()?;
        loader
            .load_one(GatheringId(self.0.gathering_id))
            .await
            .map_err(ApiError::internal)?
            .map(Gathering)
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("registration without a gathering")))
    }

    /// The person registered; their email is shown to them and the gathering's convenors.
    /// Whoever registered them sees only the name and email they typed, whatever account the
    /// address already had.
    async fn person(&self, ctx: &Context<'_>) -> ApiResult<Person> {
        let loader = ctx.data::<RequestLoader>()?;
        let reveal = self.may_see_access_needs(ctx).await?;
        let registrar_only = !reveal
            && matches!(actor(ctx)?, Actor::Person { person_id, .. }
                if self.0.registered_by == Some(*person_id));
        loader
            .load_one(PersonId(self.0.person_id))
            .await
            .map_err(ApiError::internal)?
            .map(|p| {
                if reveal {
                    Person::with_email(p)
                } else if registrar_only {
                    Person::as_typed(p, self.0.behalf_name.clone())
                } else {
                    Person::new(p)
                }
            })
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("registration without a person")))
    }

    /// How the person attends.
    async fn mode(&self) -> AttendanceMode {
        self.0.mode.into()
    }

    /// Confirmed, waitlisted or cancelled.
    async fn status(&self) -> RegistrationStatus {
        self.0.status.into()
    }

    /// 1 for the first person waiting for this way of attending; null unless waitlisted.
    async fn waitlist_position(&self) -> Option<i32> {
        self.0
            .waitlist_position
            .map(|p| i32::try_from(p).unwrap_or(i32::MAX))
    }

    /// Personal assistants or carers coming too; each takes a place.
    async fn companions(&self) -> i32 {
        self.0.companions
    }

    /// Places this registration takes: the person and their companions.
    async fn places(&self) -> i32 {
        1 + self.0.companions
    }

    /// Access requirements; only the person and the gathering's convenors see them.
    async fn access_requirements(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<Vec<AccessRequirement>>> {
        Ok(self.may_see_access_needs(ctx).await?.then(|| {
            self.0
                .access_requirements
                .iter()
                .map(|r| (*r).into())
                .collect()
        }))
    }

    /// Access needs in the person's words; only they and the gathering's convenors see them.
    async fn access_notes(&self, ctx: &Context<'_>) -> ApiResult<Option<String>> {
        Ok(if self.may_see_access_needs(ctx).await? {
            self.0.access_notes.clone()
        } else {
            None
        })
    }

    /// Whether someone else (a family member or supporter) made this registration.
    async fn registered_on_behalf(&self) -> bool {
        self.0.registered_by.is_some()
    }

    /// When they were checked in at the gathering, if they were.
    async fn checked_in_at(&self) -> Option<DateTime<Utc>> {
        self.0.checked_in_at
    }

    /// When they registered.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Someone registered by a family member or supporter.
#[derive(InputObject)]
pub struct OnBehalfOfInput {
    /// Their name.
    pub name: String,
    /// Their email: they get the confirmation, and can cancel or change it themselves.
    pub email: String,
    /// That you have their agreement to register them; must be true.
    pub agreement_confirmed: bool,
}

/// A registration for a gathering by the signed-in person, for themselves or someone else.
#[derive(InputObject)]
pub struct RegisterInput {
    /// The gathering to register for.
    pub gathering_id: ID,
    /// How to attend; the gathering's own format when left out (in person for hybrid).
    pub mode: Option<AttendanceMode>,
    /// The access requirements that apply (at most nine items, each once).
    pub access_requirements: Option<Vec<AccessRequirement>>,
    /// Access needs in your own words, up to 2,000 characters.
    pub access_notes: Option<String>,
    /// Yes to storing access needs (health data), shown only to you and the convenors.
    /// Required when access needs are given.
    pub access_consent: Option<bool>,
    /// Personal assistants or carers coming too, 0 to 5; each takes a place.
    pub companions: Option<i32>,
    /// Register someone else, with their agreement.
    pub on_behalf_of: Option<OnBehalfOfInput>,
}

impl TryFrom<RegisterInput> for NewRegistration {
    type Error = ApiError;

    fn try_from(input: RegisterInput) -> ApiResult<Self> {
        let gathering_id = parse_id("gatheringId", &input.gathering_id)?;
        let access = AccessNeeds::given(
            super::limits::at_most(
                "accessRequirements",
                input.access_requirements.unwrap_or_default(),
                super::limits::MAX_ACCESS_REQUIREMENTS,
            )?
            .into_iter()
            .map(Into::into)
            .collect(),
            input.access_notes.as_deref(),
            input.access_consent,
        )
        .map_err(|refused| ApiError::bad_input(refused.field, refused.reason))?;
        let on_behalf_of = match input.on_behalf_of {
            Some(behalf) => {
                if !behalf.agreement_confirmed {
                    return Err(ApiError::bad_input(
                        "agreementConfirmed",
                        "must be true: register someone only with their agreement",
                    ));
                }
                Some(OnBehalfOf {
                    name: DisplayName::parse(&behalf.name).field("name")?,
                    email: EmailAddress::parse(&behalf.email).field("email")?,
                })
            }
            None => None,
        };
        Ok(Self {
            gathering_id,
            mode: input.mode.map(Into::into),
            companions: Companions::parse(input.companions.unwrap_or(0)).field("companions")?,
            access,
            on_behalf_of,
        })
    }
}

/// A registration asked for by someone not signed in: `RegisterInput`'s fields, and who they
/// are. A link confirming it is mailed to `email`.
#[derive(InputObject)]
pub struct RequestRegistrationInput {
    /// The gathering to register for.
    pub gathering_id: ID,
    /// How to attend; the gathering's own format when left out (in person for hybrid).
    pub mode: Option<AttendanceMode>,
    /// The access requirements that apply (at most nine items, each once).
    pub access_requirements: Option<Vec<AccessRequirement>>,
    /// Access needs in your own words, up to 2,000 characters.
    pub access_notes: Option<String>,
    /// Yes to storing access needs (health data), shown only to you and the convenors.
    /// Required when access needs are given.
    pub access_consent: Option<bool>,
    /// Personal assistants or carers coming too, 0 to 5; each takes a place.
    pub companions: Option<i32>,
    /// Register someone else, with their agreement.
    pub on_behalf_of: Option<OnBehalfOfInput>,
    /// Your name.
    pub name: String,
    /// Your email: the link that confirms the registration goes there.
    pub email: String,
    /// Send the link in easy read.
    #[graphql(default)]
    pub easy_read: bool,
}

impl TryFrom<RequestRegistrationInput> for registrations::RegistrationRequest {
    type Error = ApiError;

    fn try_from(input: RequestRegistrationInput) -> ApiResult<Self> {
        let name = DisplayName::parse(&input.name).field("name")?;
        let email = EmailAddress::parse(&input.email).field("email")?;
        let registration = NewRegistration::try_from(RegisterInput {
            gathering_id: input.gathering_id,
            mode: input.mode,
            access_requirements: input.access_requirements,
            access_notes: input.access_notes,
            access_consent: input.access_consent,
            companions: input.companions,
            on_behalf_of: input.on_behalf_of,
        })?;
        Ok(Self {
            name,
            email,
            registration,
            easy_read: input.easy_read,
        })
    }
}

#[derive(Default)]
pub struct RegistrationsMutation;

#[Object]
impl RegistrationsMutation {
    /// Registers for a gathering: a confirmed place while places last, else the waitlist.
    /// Registering again returns the existing registration.
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> ApiResult<Registration> {
        let new = NewRegistration::try_from(input)?;
        let app = app(ctx)?;
        let registration = registrations::register(
            &app.db,
            actor(ctx)?,
            new,
            app.limits,
            groundswell_domain::now(),
        )
        .await?;
        forget_cached(ctx)?;
        app.mail_queued.notify_one();
        app.events.places_changed(registration.gathering_id);
        Ok(Registration::from(registration))
    }

    /// Cancels a registration: the person, whoever registered them, or the convenors. A place
    /// freed goes at once to the first waiting registration that fits.
    async fn cancel_registration(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Registration> {
        let id = parse_id("id", &id)?;
        let app = app(ctx)?;
        let registration =
            registrations::cancel(&app.db, actor(ctx)?, id, groundswell_domain::now()).await?;
        forget_cached(ctx)?;
        app.mail_queued.notify_one();
        app.events.places_changed(registration.gathering_id);
        Ok(Registration::from(registration))
    }

    /// Registers without signing in: mails a link to `email` that confirms the registration
    /// with these answers, once, within REGISTRATION_REQUEST_TTL_HOURS (24 by default). Always
    /// true: it never tells whether an account exists.
    async fn request_registration(
        &self,
        ctx: &Context<'_>,
        input: RequestRegistrationInput,
    ) -> ApiResult<bool> {
        let request = registrations::RegistrationRequest::try_from(input)?;
        let app = app(ctx)?;
        if let Some(ip) = super::request(ctx)?.client_ip
            && app.sign_in_limiter.check_key(&ip).is_err()
        {
            return Err(ApiError::RateLimited(
                "Too many requests from your network. Wait a minute and try again.".to_owned(),
            ));
        }
        registrations::request_registration(
            &app.db,
            &app.secret,
            request,
            app.registration_request_ttl,
            groundswell_domain::now(),
        )
        .await?;
        app.mail_queued.notify_one();
        Ok(true)
    }

    /// Uses the token from a registration link, once: makes the registration asked for
    /// (confirmed or waitlisted by the usual rules, with the usual mail), making the person's
    /// account if new.
    async fn confirm_registration(
        &self,
        ctx: &Context<'_>,
        token: String,
    ) -> ApiResult<Registration> {
        if token.len() > 512 {
            return Err(ApiError::bad_input("token", "is not a registration token"));
        }
        let app = app(ctx)?;
        let confirmed = registrations::confirm_registration(
            &app.db,
            &token,
            false,
            app.limits,
            groundswell_domain::now(),
        )
        .await?;
        forget_cached(ctx)?;
        app.mail_queued.notify_one();
        app.events
            .places_changed(confirmed.registration.gathering_id);
        Ok(Registration::from(confirmed.registration))
    }

    /// Records that a confirmed attendee has arrived; convenors only.
    async fn check_in(&self, ctx: &Context<'_>, registration_id: ID) -> ApiResult<Registration> {
        let id = parse_id("registrationId", &registration_id)?;
        let registration =
            registrations::check_in(&app(ctx)?.db, actor(ctx)?, id, groundswell_domain::now())
                .await?;
        forget_cached(ctx)?;
        Ok(Registration::from(registration))
    }
}

/// Loads what a list of registrations' selected fields will ask for, one statement per kind, so
/// the page's statement count does not depend on its size or on the loader's timing. `nodes`
/// are the selections of one registration (a connection's `edges.node` and `nodes`).
pub(crate) async fn prime(
    ctx: &Context<'_>,
    page: &[DomainRegistration],
    nodes: &[Lookahead<'_>],
) -> ApiResult<()> {
    if page.is_empty() {
        return Ok(());
    }
    let wants = |path: &[&str]| {
        nodes.iter().any(|node| {
            let Some((first, rest)) = path.split_first() else {
                return false;
            };
            let mut at = node.field(first);
            for name in rest {
                at = at.field(name);
            }
            at.exists()
        })
    };
    let loader = ctx.data::<RequestLoader>()?;
    let mut gathering_ids: Vec<uuid::Uuid> = page.iter().map(|r| r.gathering_id).collect();
    gathering_ids.sort();
    gathering_ids.dedup();
    let person = match actor(ctx)? {
        Actor::Person { person_id, .. } => Some(*person_id),
        _ => None,
    };
    let convenes = async {
        let needed = wants(&["accessRequirements"])
            || wants(&["accessNotes"])
            || wants(&["person"])
            || wants(&["gathering", "joiningUrl"]);
        if let (true, Some(person_id)) = (needed, person) {
            loader
                .load_many(gathering_ids.iter().map(|&gathering_id| Convenes {
                    gathering_id,
                    person_id,
                }))
                .await?;
        }
        Ok::<_, std::sync::Arc<sea_orm::DbErr>>(())
    };
    let people = async {
        if wants(&["person"]) {
            loader
                .load_many(page.iter().map(|r| PersonId(r.person_id)))
                .await?;
        }
        Ok(())
    };
    let gatherings = async {
        if wants(&["gathering"]) {
            loader
                .load_many(gathering_ids.iter().copied().map(GatheringId))
                .await?;
        }
        Ok(())
    };
    let counts = async {
        let counted = ["confirmedCount", "waitlistedCount"];
        if counted.iter().any(|f| wants(&["gathering", f])) {
            loader
                .load_many(gathering_ids.iter().copied().map(GatheringCounts))
                .await?;
        }
        Ok(())
    };
    let viewer = async {
        let needed =
            wants(&["gathering", "joiningUrl"]) || wants(&["gathering", "viewerRegistration"]);
        if let (true, Some(person_id)) = (needed, person) {
            loader
                .load_many(
                    gathering_ids
                        .iter()
                        .map(|&gathering_id| ViewerRegistration {
                            gathering_id,
                            person_id,
                        }),
                )
                .await?;
        }
        Ok(())
    };
    futures::try_join!(convenes, people, gatherings, counts, viewer).map_err(ApiError::internal)?;
    Ok(())
}
