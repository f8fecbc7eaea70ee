//! The home page, a gathering's page with its registration form, and the form's target.

use std::net::SocketAddr;

use axum::{
    body::Bytes,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode, Uri},
    response::Response,
};
use groundswell_domain::{
    Actor, changes,
    gatherings::{self, Gathering, GatheringFormat, GatheringStatus},
    people::{DisplayName, EmailAddress},
    registrations::{
        self, AccessNeeds, AccessRequirement, AttendanceMode, Companions, NewRegistration,
        OnBehalfOf, Registration, RegistrationError, RegistrationRequest, RegistrationStatus,
    },
};
use serde_json::{Value, json};

use super::{FormFields, Visitor};
use crate::http::{AppState, gatherings as calendar_routes};

/// Each access requirement as the form offers it: its code, label, hint, and easy-read label
/// and hint.
pub(super) const REQUIREMENTS: &[(AccessRequirement, &str, &str, &str, &str, &str)] = &[
    (
        AccessRequirement::StepFreeAccess,
        "STEP_FREE_ACCESS",
        "Step-free access",
        "No steps or stairs between the street and the room, for example for a wheelchair.",
        "No steps or stairs",
        "For a wheelchair or a walking frame.",
    ),
    (
        AccessRequirement::BslInterpreter,
        "BSL_INTERPRETER",
        "British Sign Language (BSL) interpreter",
        "Someone who interprets everything said into BSL.",
        "A sign language interpreter",
        "For people who use sign language.",
    ),
    (
        AccessRequirement::HearingLoop,
        "HEARING_LOOP",
        "Hearing loop",
        "Sound sent straight to hearing aids set to T.",
        "A hearing loop for hearing aids",
        "For people with hearing aids.",
    ),
    (
        AccessRequirement::EasyRead,
        "EASY_READ",
        "Easy read",
        "Papers on the day in easy read, with pictures.",
        "Easy read papers",
        "Papers with pictures, like this page.",
    ),
    (
        AccessRequirement::LargePrint,
        "LARGE_PRINT",
        "Large print",
        "Papers on the day in large print.",
        "Big writing on papers",
        "Papers with big writing.",
    ),
    (
        AccessRequirement::QuietSpace,
        "QUIET_SPACE",
        "A quiet space",
        "A calm room to take a break in.",
        "A quiet room for a break",
        "A calm place to rest.",
    ),
    (
        AccessRequirement::Dietary,
        "DIETARY",
        "Food and drink",
        "For example an allergy, or food you cannot eat. Tell us more in the box below.",
        "Special food or drink",
        "Tell us about it in the box below.",
    ),
    (
        AccessRequirement::PersonalAssistant,
        "PERSONAL_ASSISTANT",
        "Space for a personal assistant or carer",
        "Room beside you for someone who supports you.",
        "Room for my helper",
        "A seat next to you for your helper.",
    ),
    (
        AccessRequirement::Other,
        "OTHER",
        "Something else",
        "Tell us what you need in the box below.",
        "Something else",
        "Tell us about it in the box below.",
    ),
];

pub(super) fn requirement_label(requirement: AccessRequirement, easy: bool) -> &'static str {
    REQUIREMENTS
        .iter()
        .find(|r| r.0 == requirement)
        .map_or("", |r| if easy { r.4 } else { r.2 })
}

fn format_label(format: GatheringFormat) -> &'static str {
    match format {
        GatheringFormat::InPerson => "In person",
        GatheringFormat::Online => "Online",
        GatheringFormat::Hybrid => "In person or online",
    }
}

pub(super) fn mode_label(mode: AttendanceMode) -> &'static str {
    match mode {
        AttendanceMode::InPerson => "In person",
        AttendanceMode::Online => "Online",
    }
}

fn places_text(left: Option<i32>) -> String {
    match left {
        None => "No limit on places".to_owned(),
        Some(0) => "Full: you can join the waitlist".to_owned(),
        Some(1) => "1 place left".to_owned(),
        Some(n) => format!("{n} places left"),
    }
}

fn modes_of(gathering: &Gathering) -> Vec<AttendanceMode> {
    [AttendanceMode::InPerson, AttendanceMode::Online]
        .into_iter()
        .filter(|m| gathering.format.allows(*m))
        .collect()
}

/// What a page shows of a gathering: public details only (never the joining link).
pub(super) fn gathering_view(gathering: &Gathering) -> Value {
    let places: Vec<Value> = modes_of(gathering)
        .into_iter()
        .map(|mode| {
            json!({
                "mode": mode_label(mode),
                "online": mode == AttendanceMode::Online,
                "places": places_text(gathering.places_left(mode)),
            })
        })
        .collect();
    json!({
        "title": gathering.title,
        "slug": gathering.slug,
        "paragraphs": gathering
            .description
            .split("\n\n")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>(),
        "when": registrations::when(gathering),
        "format": format_label(gathering.format),
        "venue": gathering.venue,
        "places": places,
        "cancelled": gathering.status == GatheringStatus::Cancelled,
        "reason": gathering.cancel_reason,
    })
}

/// `GET /`: the upcoming gatherings and the five changes.
pub async fn home(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let visitor = match Visitor::from_request(&state, &headers, &uri).await {
        Ok(visitor) => visitor,
        Err(response) => return response,
    };
    let now = groundswell_domain::now();
    let (upcoming, summaries) = match tokio::try_join!(
        gatherings::upcoming_published(&state.db, now, 50),
        changes::summaries(&state.db)
    ) {
        Ok(found) => found,
        Err(err) => {
            tracing::error!(error = %err, "loading the home page failed");
            return visitor.failed(&state);
        }
    };
    let gatherings: Vec<Value> = upcoming.iter().map(gathering_view).collect();
    let changes: Vec<Value> = summaries
        .iter()
        .map(|c| {
            json!({
                "title": c.title,
                "pledges": c.pledge_count,
                "organisations": c.organisation_count,
                "coalitions": c.coalition_count,
                "updates": c.progress_update_count,
            })
        })
        .collect();
    visitor.render(
        &state,
        StatusCode::OK,
        "home.html",
        json!({ "gatherings": gatherings, "changes": changes }),
    )
}

/// `GET /gatherings/{slug}`: the gathering and its form; `GET /gatherings/{slug}.ics` is its
/// calendar file.
pub async fn gathering_or_calendar(
    State(state): State<AppState>,
    Path(file): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if file.ends_with(".ics") {
        return calendar_routes::ics(State(state), Path(file)).await;
    }
    let visitor = match Visitor::from_request(&state, &headers, &uri).await {
        Ok(visitor) => visitor,
        Err(response) => return response,
    };
    let gathering = match load(&state, &visitor, &file).await {
        Ok(gathering) => gathering,
        Err(response) => return response,
    };
    let form = Answers::default_for(&gathering);
    form_page(&state, &visitor, &gathering, &form, &[], StatusCode::OK)
}

async fn load(state: &AppState, visitor: &Visitor, slug: &str) -> Result<Gathering, Response> {
    if slug.len() > 200 {
        return Err(not_found(state, visitor));
    }
    match gatherings::by_slug(&state.db, &Actor::Anonymous, slug).await {
        Ok(Some(gathering)) => Ok(gathering),
        Ok(None) => Err(not_found(state, visitor)),
        Err(err) => {
            tracing::error!(error = %err, "loading a gathering failed");
            Err(visitor.failed(state))
        }
    }
}

fn not_found(state: &AppState, visitor: &Visitor) -> Response {
    visitor.message(
        state,
        StatusCode::NOT_FOUND,
        "Page not found",
        &["No gathering has that address. It may have moved, or the link may be wrong."],
        "cross",
    )
}

/// The form's answers as given, kept to show again with errors.
#[derive(Default)]
struct Answers {
    mode: Option<String>,
    companions_coming: bool,
    companions: String,
    access: Vec<String>,
    access_notes: String,
    access_consent: bool,
    name: String,
    email: String,
    behalf: bool,
    behalf_name: String,
    behalf_email: String,
    behalf_agreement: bool,
}

impl Answers {
    fn default_for(gathering: &Gathering) -> Self {
        let modes = modes_of(gathering);
        Self {
            // One way of attending is no question; two, the person chooses.
            mode: (modes.len() == 1).then(|| mode_code(modes[0]).to_owned()),
            ..Self::default()
        }
    }

    fn from_form(form: &FormFields) -> Self {
        let text = |name: &str| form.get(name).unwrap_or_default().to_owned();
        Self {
            mode: form.get("mode").map(str::to_owned),
            companions_coming: form.checked("companions-coming"),
            companions: text("companions"),
            access: form.all("access").map(str::to_owned).collect(),
            access_notes: text("access-notes"),
            access_consent: form.checked("access-consent"),
            name: text("name"),
            email: text("email"),
            behalf: form.checked("behalf"),
            behalf_name: text("behalf-name"),
            behalf_email: text("behalf-email"),
            behalf_agreement: form.checked("behalf-agreement"),
        }
    }

    fn view(&self) -> Value {
        json!({
            "mode": self.mode,
            "companions_coming": self.companions_coming,
            "companions": self.companions,
            "access": self.access,
            "access_notes": self.access_notes,
            "access_consent": self.access_consent,
            "name": self.name,
            "email": self.email,
            "behalf": self.behalf,
            "behalf_name": self.behalf_name,
            "behalf_email": self.behalf_email,
            "behalf_agreement": self.behalf_agreement,
        })
    }
}

fn mode_code(mode: AttendanceMode) -> &'static str {
    match mode {
        AttendanceMode::InPerson => "IN_PERSON",
        AttendanceMode::Online => "ONLINE",
    }
}

/// One wrong answer: the id of the field to link to, and what to do.
pub(super) struct FieldError {
    pub id: &'static str,
    pub message: String,
}

fn error(id: &'static str, message: &str) -> FieldError {
    FieldError {
        id,
        message: message.to_owned(),
    }
}

/// Who is registering, when they are not signed in.
type You = (DisplayName, EmailAddress);

/// The registration the answers ask for, or every wrong answer at once.
fn validate(
    answers: &Answers,
    gathering: &Gathering,
    signed_in: bool,
    easy: bool,
) -> Result<(NewRegistration, Option<You>), Vec<FieldError>> {
    let mut errors = Vec::new();
    let pick = |standard: &'static str, simple: &'static str| if easy { simple } else { standard };
    // In the order the page asks, so the error summary reads top to bottom.
    let mut you = None;
    if !signed_in {
        let name = DisplayName::parse(&answers.name);
        let email = EmailAddress::parse(&answers.email);
        if name.is_err() {
            errors.push(error(
                "name",
                pick("Enter your name, up to 100 characters", "Write your name"),
            ));
        }
        if email.is_err() {
            errors.push(error(
                "email",
                pick(
                    "Enter an email address in the correct format, like name@example.org",
                    "Write your email address, like name@example.org",
                ),
            ));
        }
        if let (Ok(name), Ok(email)) = (name, email) {
            you = Some((name, email));
        }
    }
    let modes = modes_of(gathering);
    let mode = match answers.mode.as_deref() {
        Some("IN_PERSON") if modes.contains(&AttendanceMode::InPerson) => {
            Some(AttendanceMode::InPerson)
        }
        Some("ONLINE") if modes.contains(&AttendanceMode::Online) => Some(AttendanceMode::Online),
        _ => {
            errors.push(error(
                "mode",
                pick("Select how you will attend", "Choose how you will come"),
            ));
            None
        }
    };
    let companions = if answers.companions.is_empty() {
        Some(i32::from(answers.companions_coming))
    } else {
        answers.companions.parse::<i32>().ok()
    };
    let companions = match companions.map(Companions::parse) {
        Some(Ok(companions)) => Some(companions),
        _ => {
            errors.push(error(
                "companions",
                pick(
                    "Enter how many personal assistants or carers are coming with you, as a number from 0 to 5",
                    "Write a number from 0 to 5",
                ),
            ));
            None
        }
    };
    let requirements: Vec<AccessRequirement> = answers
        .access
        .iter()
        .filter_map(|code| REQUIREMENTS.iter().find(|r| r.1 == code).map(|r| r.0))
        .collect();
    let access = match AccessNeeds::given(
        requirements,
        Some(answers.access_notes.as_str()),
        Some(answers.access_consent),
    ) {
        Ok(access) => Some(access),
        Err(refused) if refused.field == "accessConsent" => {
            errors.push(error(
                "access-consent",
                pick(
                    "Tick the box to agree to us keeping your access needs, or remove them",
                    "Tick the box to say yes. Or take your needs off the form",
                ),
            ));
            None
        }
        Err(_) => {
            errors.push(error(
                "access-notes",
                pick(
                    "Access needs must be 2,000 characters or fewer",
                    "Write less about your needs",
                ),
            ));
            None
        }
    };
    let given_behalf = answers.behalf
        || !answers.behalf_name.is_empty()
        || !answers.behalf_email.is_empty()
        || answers.behalf_agreement;
    let mut on_behalf_of = None;
    if given_behalf {
        let name = DisplayName::parse(&answers.behalf_name);
        let email = EmailAddress::parse(&answers.behalf_email);
        if name.is_err() {
            errors.push(error(
                "behalf-name",
                pick(
                    "Enter the name of the person you are registering",
                    "Write their name",
                ),
            ));
        }
        if email.is_err() {
            errors.push(error(
                "behalf-email",
                pick(
                    "Enter their email address in the correct format, like name@example.org",
                    "Write their email address, like name@example.org",
                ),
            ));
        }
        if !answers.behalf_agreement {
            errors.push(error(
                "behalf-agreement",
                pick(
                    "Tick the box to confirm they agree to you registering them",
                    "Tick the box to say they said yes",
                ),
            ));
        }
        if let (Ok(name), Ok(email), true) = (name, email, answers.behalf_agreement) {
            on_behalf_of = Some(OnBehalfOf { name, email });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok((
        NewRegistration {
            gathering_id: gathering.id,
            mode,
            companions: companions.unwrap_or_default(),
            access: access.flatten(),
            on_behalf_of,
        },
        you,
    ))
}

fn form_page(
    state: &AppState,
    visitor: &Visitor,
    gathering: &Gathering,
    answers: &Answers,
    errors: &[FieldError],
    status: StatusCode,
) -> Response {
    let now = groundswell_domain::now();
    let requirements: Vec<Value> = REQUIREMENTS
        .iter()
        .map(|(_, code, label, hint, easy_label, easy_hint)| {
            json!({
                "code": code,
                "id": format!("access-{}", code.to_lowercase().replace('_', "-")),
                "label": if visitor.easy { *easy_label } else { *label },
                "hint": if visitor.easy { *easy_hint } else { *hint },
                "checked": answers.access.iter().any(|a| a == code),
            })
        })
        .collect();
    let modes: Vec<Value> = modes_of(gathering)
        .into_iter()
        .map(|mode| {
            json!({
                "code": mode_code(mode),
                "id": format!("mode-{}", mode_code(mode).to_lowercase().replace('_', "-")),
                "label": mode_label(mode),
                "places": places_text(gathering.places_left(mode)),
            })
        })
        .collect();
    let error_map: serde_json::Map<String, Value> = errors
        .iter()
        .map(|e| (e.id.to_owned(), Value::String(e.message.clone())))
        .collect();
    // The summary links to the field itself; for a group of radios, to its first radio.
    let summary: Vec<Value> = errors
        .iter()
        .map(|e| {
            let target = match e.id {
                "mode" => modes
                    .first()
                    .and_then(|m| m["id"].as_str())
                    .unwrap_or("mode")
                    .to_owned(),
                id => id.to_owned(),
            };
            json!({ "target": target, "message": e.message })
        })
        .collect();
    let closed_reason = match gathering.status {
        GatheringStatus::Cancelled => Some("This gathering has been cancelled.".to_owned()),
        _ if !gathering.registration_open(now) => Some(
            match gathering.registration_opens_at.filter(|at| now < *at) {
                Some(opens) => format!(
                    "Registration opens on {}.",
                    registrations::local_time(gathering, opens)
                ),
                None => "Registration for this gathering has closed.".to_owned(),
            },
        ),
        _ => None,
    };
    visitor.render(
        state,
        status,
        "gathering.html",
        json!({
            "gathering": gathering_view(gathering),
            "form": answers.view(),
            "modes": modes,
            "choose_mode": modes.len() > 1,
            "requirements": requirements,
            "errors": error_map,
            "error_items": summary,
            "closed_reason": closed_reason,
        }),
    )
}

/// `POST /gatherings/{slug}/register`: registers a signed-in person at once; mails anyone
/// else a link that confirms it. On wrong answers, the form again with every answer kept.
pub async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let visitor = match Visitor::from_request(&state, &headers, &uri).await {
        Ok(visitor) => visitor,
        Err(response) => return response,
    };
    let form = FormFields::parse(&body);
    if !visitor.csrf_ok(&state.secret, form.get("csrf")) {
        return visitor.forbidden_form(&state);
    }
    let gathering = match load(&state, &visitor, &slug).await {
        Ok(gathering) => gathering,
        Err(response) => return response,
    };
    let answers = Answers::from_form(&form);
    let (new, you) = match validate(&answers, &gathering, visitor.signed_in(), visitor.easy) {
        Ok(valid) => valid,
        Err(errors) => {
            return form_page(
                &state,
                &visitor,
                &gathering,
                &answers,
                &errors,
                StatusCode::BAD_REQUEST,
            );
        }
    };
    let now = groundswell_domain::now();
    let app = &state.app;
    if visitor.signed_in() {
        return match registrations::register(&state.db, &visitor.actor, new, state.app.limits, now)
            .await
        {
            Ok(registration) => {
                app.mail_queued.notify_one();
                app.events.places_changed(registration.gathering_id);
                registered_page(&state, &visitor, &gathering, &registration)
            }
            Err(err) => refused(&state, &visitor, &gathering, &answers, err),
        };
    }
    let Some((name, email)) = you else {
        return visitor.failed(&state);
    };
    if app.sign_in_limiter.check_key(&peer.ip()).is_err() {
        return too_many(&state, &visitor);
    }
    let request = RegistrationRequest {
        name,
        email,
        registration: new,
        easy_read: visitor.easy,
    };
    match registrations::request_registration(
        &state.db,
        &app.secret,
        request,
        app.registration_request_ttl,
        now,
    )
    .await
    {
        Ok(()) => {
            app.mail_queued.notify_one();
            visitor.render(
                &state,
                StatusCode::OK,
                "request_sent.html",
                json!({
                    "gathering": gathering_view(&gathering),
                    "hours": app.registration_request_ttl.num_hours(),
                }),
            )
        }
        Err(RegistrationError::TooManyRequests) => too_many(&state, &visitor),
        Err(err) => refused(&state, &visitor, &gathering, &answers, err),
    }
}

fn too_many(state: &AppState, visitor: &Visitor) -> Response {
    visitor.message(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many tries",
        &["Too many links were asked for just now. Wait an hour, then try again."],
        "wait",
    )
}

/// A registration the rules refused: the form again, saying why.
fn refused(
    state: &AppState,
    visitor: &Visitor,
    gathering: &Gathering,
    answers: &Answers,
    err: RegistrationError,
) -> Response {
    match err {
        RegistrationError::ModeNotOffered => form_page(
            state,
            visitor,
            gathering,
            answers,
            &[error(
                "mode",
                "This gathering does not offer that way of attending",
            )],
            StatusCode::BAD_REQUEST,
        ),
        RegistrationError::NotOpen(reason) => visitor.message(
            state,
            StatusCode::CONFLICT,
            "Registration is not open",
            &[reason.as_str()],
            "wait",
        ),
        RegistrationError::GatheringCancelled => visitor.message(
            state,
            StatusCode::CONFLICT,
            "This gathering has been cancelled",
            &["You cannot register for it any more."],
            "cross",
        ),
        RegistrationError::GatheringNotFound => not_found(state, visitor),
        err => visitor
            .registration_refused(state, &err)
            .unwrap_or_else(|| {
                tracing::error!(error = %err, "registering from a page failed");
                visitor.failed(state)
            }),
    }
}

/// Where a registration stands: confirmed, or waitlisted at a position.
pub(super) fn registered_page(
    state: &AppState,
    visitor: &Visitor,
    gathering: &Gathering,
    registration: &Registration,
) -> Response {
    visitor.render(
        state,
        StatusCode::OK,
        "registered.html",
        json!({
            "gathering": gathering_view(gathering),
            "confirmed": registration.status == RegistrationStatus::Confirmed,
            "waitlisted": registration.status == RegistrationStatus::Waitlisted,
            "position": registration.waitlist_position,
            "mode": mode_label(registration.mode),
            "companions": registration.companions,
            "for_someone_else": registration.registered_by.is_some(),
        }),
    )
}
