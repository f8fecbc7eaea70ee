//! People, sign-in and what a person holds.

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use groundswell_domain::{
    Actor,
    people::{
        self, DigestPreferencesUpdate, DisplayName, EmailAddress, HourOfDay,
        Person as DomainPerson, TimeZone, Weekday,
    },
    personal_data,
};

use super::{
    ApiError, ApiResult, actor, app,
    changes::Change,
    error::FieldContext,
    organisations::{Organisation, OrganisationMember, load_organisation},
    registrations::Registration,
    request,
};

/// What a person may do in Groundswell.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "groundswell_domain::people::Role")]
pub enum Role {
    /// Registers for gatherings; the default.
    Attendee,
    /// Runs the movement: creates gatherings, plans for access needs, receives digests.
    Convenor,
    /// Operates Groundswell.
    Admin,
}

/// How often a person is sent an email digest.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "groundswell_domain::people::DigestFrequency")]
pub enum DigestFrequency {
    /// Every day, at their chosen hour.
    Daily,
    /// Once a week, on their chosen weekday and hour.
    Weekly,
    /// Once a month, on the first of their chosen weekday (such as the first Monday), at their
    /// chosen hour.
    Monthly,
    /// No digests.
    Never,
}

pub struct Person(pub DomainPerson, Privacy);

/// Whose eyes a person's private fields are loaded for, when that was settled before the
/// object was made.
#[derive(Clone, PartialEq, Eq)]
enum Privacy {
    /// Decide from the caller: themselves or an admin.
    CheckCaller,
    /// The person themselves, just proved by signing in: everything.
    Themselves,
    /// A gathering's convenors looking at who registered: the email only.
    EmailShown,
    /// Someone who named this person themselves (registering them, adding them to an
    /// organisation): what they typed and nothing the account held before, so the answer is
    /// the same whether or not the address already had an account.
    AsTyped {
        name: Option<String>,
        email_shown: bool,
    },
}

impl Person {
    pub fn new(person: DomainPerson) -> Self {
        Self(person, Privacy::CheckCaller)
    }

    /// A registrant shown to the gathering's convenors, who may write to them.
    pub fn with_email(person: DomainPerson) -> Self {
        Self(person, Privacy::EmailShown)
    }

    /// A person shown to whoever registered them: the name and address they typed; nothing
    /// of the account.
    pub fn as_typed(person: DomainPerson, name: Option<String>) -> Self {
        Self(
            person,
            Privacy::AsTyped {
                name,
                email_shown: true,
            },
        )
    }

    /// A person shown to others who did not register them (an organisation's members): their
    /// id only, unless the caller is the person or an admin.
    pub fn id_only(person: DomainPerson) -> Self {
        Self(
            person,
            Privacy::AsTyped {
                name: None,
                email_shown: false,
            },
        )
    }

    /// Their settings and memberships: the person themselves and admins.
    fn private_to(&self, actor: &Actor) -> bool {
        self.1 == Privacy::Themselves
            || actor.is_admin()
            || matches!(actor, Actor::Person { person_id, .. } if *person_id == self.0.id)
    }

    fn email_to(&self, actor: &Actor) -> bool {
        matches!(
            self.1,
            Privacy::EmailShown
                | Privacy::AsTyped {
                    email_shown: true,
                    ..
                }
        ) || self.private_to(actor)
    }
}

/// Someone who uses Groundswell. Their email and settings (role, time zone, when they joined)
/// are shown only to themselves and to admins.
#[Object]
impl Person {
    /// Their id. Whoever registered them or shares an organisation with them gets a stable
    /// stand-in instead, which (unlike the id itself) tells nothing of when the account was made.
    async fn id(&self, ctx: &Context<'_>) -> ApiResult<ID> {
        if matches!(self.1, Privacy::AsTyped { .. }) && !self.private_to(actor(ctx)?) {
            let alias = app(ctx)?.secret.alias("person-alias", self.0.id);
            return Ok(ID(alias.to_string()));
        }
        Ok(ID(self.0.id.to_string()))
    }

    /// Their email address; null unless you are this person or an admin.
    async fn email(&self, ctx: &Context<'_>) -> ApiResult<Option<String>> {
        Ok(self.email_to(actor(ctx)?).then(|| self.0.email.clone()))
    }

    /// The name they chose to show, if any. Whoever registered them or added them to an
    /// organisation sees the name they typed instead (or none), not the account's.
    async fn display_name(&self, ctx: &Context<'_>) -> ApiResult<Option<String>> {
        if let Privacy::AsTyped { name, .. } = &self.1
            && !self.private_to(actor(ctx)?)
        {
            return Ok(name.clone());
        }
        Ok(self.0.display_name.clone())
    }

    /// Their role; null unless you are this person or an admin.
    async fn role(&self, ctx: &Context<'_>) -> ApiResult<Option<Role>> {
        Ok(self.private_to(actor(ctx)?).then(|| self.0.role.into()))
    }

    /// Their IANA time zone, such as Europe/London; null unless you are this person or an
    /// admin, like the rest of their settings.
    async fn time_zone(&self, ctx: &Context<'_>) -> ApiResult<Option<&str>> {
        Ok(self
            .private_to(actor(ctx)?)
            .then(|| self.0.digest.time_zone.name()))
    }

    /// When and what their email digest holds; null unless you are this person or an admin.
    async fn digest_preferences(&self, ctx: &Context<'_>) -> ApiResult<Option<DigestPreferences>> {
        let d = &self.0.digest;
        Ok(self.private_to(actor(ctx)?).then(|| DigestPreferences {
            frequency: d.frequency.into(),
            weekday: i32::from(d.weekday),
            hour: i32::from(d.hour),
            time_zone: d.time_zone.name().to_owned(),
            changes: d.changes.iter().map(|c| Change::from(*c)).collect(),
            send_empty: d.send_empty,
        }))
    }

    /// The organisations they belong to, at most 100; only they and admins see this.
    async fn organisations(&self, ctx: &Context<'_>) -> ApiResult<Vec<OrganisationMember>> {
        if !self.private_to(actor(ctx)?) {
            return Err(ApiError::Forbidden(
                "Only this person can see their organisations.".to_owned(),
            ));
        }
        let members =
            groundswell_domain::organisations::memberships_of(&app(ctx)?.db, self.0.id).await?;
        Ok(members.into_iter().map(OrganisationMember).collect())
    }

    /// Their registrations for gatherings, newest first, at most 100; only they see these.
    async fn registrations(&self, ctx: &Context<'_>) -> ApiResult<Vec<Registration>> {
        let actor = actor(ctx)?;
        let own = matches!(actor, Actor::Person { person_id, .. } if *person_id == self.0.id);
        if !own {
            return Err(ApiError::Forbidden(
                "Only this person can see their registrations.".to_owned(),
            ));
        }
        let found = groundswell_domain::registrations::for_person(&app(ctx)?.db, self.0.id).await?;
        super::registrations::prime(ctx, &found, &[ctx.look_ahead()]).await?;
        Ok(found.into_iter().map(Registration::from).collect())
    }

    /// When their account was made; null unless you are this person or an admin.
    async fn created_at(&self, ctx: &Context<'_>) -> ApiResult<Option<DateTime<Utc>>> {
        Ok(self.private_to(actor(ctx)?).then_some(self.0.created_at))
    }

    /// Whether they read pages and mail in easy read; only they see this.
    async fn prefers_easy_read(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let actor = actor(ctx)?;
        let own = self.1 == Privacy::Themselves
            || matches!(actor, Actor::Person { person_id, .. } if *person_id == self.0.id);
        if !own {
            return Err(ApiError::Forbidden(
                "Only this person can see their preferences.".to_owned(),
            ));
        }
        Ok(self.0.prefers_easy_read)
    }
}

/// The signed-in person's own preferences; fields left out stay as they are.
#[derive(InputObject)]
pub struct MyPreferencesInput {
    /// Pages and mail in easy read: short sentences, everyday words, a picture by each point.
    pub prefers_easy_read: Option<bool>,
}

/// When and what a person's email digest holds.
#[derive(SimpleObject)]
pub struct DigestPreferences {
    /// How often the digest is sent.
    pub frequency: DigestFrequency,
    /// Weekday of weekly digests: 1 is Monday, 7 is Sunday.
    pub weekday: i32,
    /// Local hour the digest is sent, 0 to 23.
    pub hour: i32,
    /// IANA time zone the hour is in.
    pub time_zone: String,
    /// The changes of interest; empty means all five.
    pub changes: Vec<Change>,
    /// Whether to send a digest when nothing happened.
    pub send_empty: bool,
}

/// Changes to digest preferences; fields left out stay as they are.
#[derive(InputObject)]
pub struct DigestPreferencesInput {
    /// How often to send the digest.
    pub frequency: Option<DigestFrequency>,
    /// 1 (Monday) to 7 (Sunday).
    pub weekday: Option<i32>,
    /// 0 to 23, in `timeZone`.
    pub hour: Option<i32>,
    /// An IANA time zone name, such as Europe/London.
    pub time_zone: Option<String>,
    /// The changes of interest (at most five items); an empty list means all five.
    pub changes: Option<Vec<Change>>,
    /// Whether to send a digest when nothing happened.
    pub send_empty: Option<bool>,
}

impl TryFrom<DigestPreferencesInput> for DigestPreferencesUpdate {
    type Error = ApiError;

    fn try_from(input: DigestPreferencesInput) -> ApiResult<Self> {
        Ok(Self {
            frequency: input.frequency.map(Into::into),
            weekday: input
                .weekday
                .map(Weekday::parse)
                .transpose()
                .field("weekday")?,
            hour: input.hour.map(HourOfDay::parse).transpose().field("hour")?,
            time_zone: input
                .time_zone
                .as_deref()
                .map(TimeZone::parse)
                .transpose()
                .field("timeZone")?,
            changes: input
                .changes
                .map(|changes| {
                    super::limits::at_most("changes", changes, super::limits::MAX_CHANGES)
                })
                .transpose()?
                .map(|changes| changes.into_iter().map(Into::into).collect()),
            send_empty: input.send_empty,
        })
    }
}

/// A signed-in session. Send `token` as `Authorization: Bearer <token>`.
#[derive(SimpleObject)]
pub struct Session {
    /// Shown once; Groundswell keeps only its hash.
    pub token: String,
    /// The person signed in.
    pub person: Person,
}

pub struct Viewer;

/// Who is calling: a signed-in person, an organisation's API token, or nobody.
#[Object]
impl Viewer {
    /// The signed-in person, when the caller uses a session.
    async fn person(&self, ctx: &Context<'_>) -> ApiResult<Option<Person>> {
        let Actor::Person { person_id, .. } = actor(ctx)? else {
            return Ok(None);
        };
        Ok(people::by_id(&app(ctx)?.db, *person_id)
            .await?
            .map(Person::new))
    }

    /// The organisation an API token acts for, when the caller uses one.
    async fn organisation(&self, ctx: &Context<'_>) -> ApiResult<Option<Organisation>> {
        let Actor::Organisation {
            organisation_id, ..
        } = actor(ctx)?
        else {
            return Ok(None);
        };
        load_organisation(ctx, *organisation_id).await.map(Some)
    }
}

#[derive(Default)]
pub struct PeopleQuery;

#[Object]
impl PeopleQuery {
    /// The signed-in person, or null.
    async fn me(&self, ctx: &Context<'_>) -> ApiResult<Option<Person>> {
        super::visibility::private(ctx);
        let Actor::Person { person_id, .. } = actor(ctx)? else {
            return Ok(None);
        };
        Ok(people::by_id(&app(ctx)?.db, *person_id)
            .await?
            .map(Person::new))
    }

    /// Who is calling, for clients to check their credentials.
    async fn viewer(&self, ctx: &Context<'_>) -> Viewer {
        super::visibility::private(ctx);
        Viewer
    }

    /// Everything Groundswell holds about the signed-in person.
    async fn my_data(&self, ctx: &Context<'_>) -> ApiResult<Json<serde_json::Value>> {
        super::visibility::private(ctx);
        Ok(Json(
            personal_data::my_data(&app(ctx)?.db, actor(ctx)?).await?,
        ))
    }
}

#[derive(Default)]
pub struct PeopleMutation;

#[Object]
impl PeopleMutation {
    /// Emails a one-time sign-in link to `email`. Always true: it never tells whether an
    /// account exists.
    async fn request_sign_in(&self, ctx: &Context<'_>, email: String) -> ApiResult<bool> {
        let app = app(ctx)?;
        let email = EmailAddress::parse(&email).field("email")?;
        if let Some(ip) = request(ctx)?.client_ip
            && app.sign_in_limiter.check_key(&ip).is_err()
        {
            return Err(ApiError::RateLimited(
                "Too many sign-in requests from your network. Wait a minute and try again."
                    .to_owned(),
            ));
        }
        people::request_sign_in(&app.db, &app.secret, &email, groundswell_domain::now()).await?;
        app.mail_queued.notify_one();
        Ok(true)
    }

    /// Exchanges the token from a sign-in link for a session, once, within 30 minutes.
    async fn sign_in(&self, ctx: &Context<'_>, token: String) -> ApiResult<Session> {
        if token.len() > 512 {
            return Err(ApiError::bad_input("token", "is not a sign-in token"));
        }
        let session = people::sign_in(&app(ctx)?.db, &token, groundswell_domain::now()).await?;
        Ok(Session {
            token: session.token,
            person: Person(session.person, Privacy::Themselves),
        })
    }

    /// Ends the current session.
    async fn sign_out(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        people::sign_out(&app(ctx)?.db, actor(ctx)?, groundswell_domain::now()).await?;
        Ok(true)
    }

    /// Sets the name the signed-in person shows; null clears it.
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        display_name: Option<String>,
    ) -> ApiResult<Person> {
        let name = display_name
            .as_deref()
            .map(DisplayName::parse)
            .transpose()
            .field("displayName")?;
        let person =
            people::update_profile(&app(ctx)?.db, actor(ctx)?, name, groundswell_domain::now())
                .await?;
        Ok(Person::new(person))
    }

    /// Changes when and what the signed-in person's digest holds.
    async fn update_digest_preferences(
        &self,
        ctx: &Context<'_>,
        input: DigestPreferencesInput,
    ) -> ApiResult<Person> {
        let update = DigestPreferencesUpdate::try_from(input)?;
        let person = people::update_digest_preferences(
            &app(ctx)?.db,
            actor(ctx)?,
            update,
            groundswell_domain::now(),
        )
        .await?;
        Ok(Person::new(person))
    }

    /// Changes the signed-in person's own preferences, such as easy read.
    async fn update_my_preferences(
        &self,
        ctx: &Context<'_>,
        input: MyPreferencesInput,
    ) -> ApiResult<Person> {
        let person = people::update_my_preferences(
            &app(ctx)?.db,
            actor(ctx)?,
            input.prefers_easy_read,
            groundswell_domain::now(),
        )
        .await?;
        Ok(Person(person, Privacy::Themselves))
    }

    /// Erases the signed-in person's personal details and ends their sessions. Their live
    /// registrations are cancelled (their places go to the waitlist at once) and their mail is
    /// forgotten. The only owner of an organisation must hand it over first (CONFLICT).
    async fn erase_my_data(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let app = app(ctx)?;
        let changed = personal_data::erase(&app.db, actor(ctx)?, groundswell_domain::now()).await?;
        // Their places went to the waitlist: those promoted are mailed, watchers told.
        app.mail_queued.notify_one();
        for gathering_id in changed {
            app.events.places_changed(gathering_id);
        }
        Ok(true)
    }
}
