//! A person's own pages: signing in with an email, their registrations (cancel, erase access
//! needs), and the link that confirms a registration made with only an email.

use std::{collections::HashMap, net::SocketAddr};

use axum::{
    body::Bytes,
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use groundswell_domain::{
    gatherings,
    people::{self, EmailAddress, PeopleError},
    registrations::{self, RegistrationError, RegistrationStatus},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    FormFields, Visitor,
    gatherings::{gathering_view, mode_label, registered_page, requirement_label},
};
use crate::http::{AppState, sign_in};

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
    #[serde(default)]
    done: String,
}

/// `GET /sign-in`: with a token, the page that finishes signing in; without one, a
/// form asking for an email address.
pub async fn sign_in_page(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let visitor = match Visitor::from_request(&state, &headers, &uri).await {
        Ok(visitor) => visitor,
        Err(response) => return response,
    };
    if !query.token.is_empty() {
        return sign_in::page(&state, &visitor, &query.token);
    }
    sign_in_form(&state, &visitor, "", None, StatusCode::OK)
}

fn sign_in_form(
    state: &AppState,
    visitor: &Visitor,
    email: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    visitor.render(
        state,
        status,
        "sign_in.html",
        json!({ "email": email, "error": error }),
    )
}

/// `POST /sign-in/link`: mails the usual sign-in link. It says the same whether or not an
/// account exists.
pub async fn request_sign_in_link(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
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
    let given = form.get("email").unwrap_or_default();
    let Ok(email) = EmailAddress::parse(given) else {
        let message = if visitor.easy {
            "Write your email address, like name@example.org"
        } else {
            "Enter an email address in the correct format, like name@example.org"
        };
        return sign_in_form(
            &state,
            &visitor,
            given,
            Some(message),
            StatusCode::BAD_REQUEST,
        );
    };
    let app = &state.app;
    if app.sign_in_limiter.check_key(&peer.ip()).is_err() {
        return too_many(&state, &visitor);
    }
    match people::request_sign_in(&state.db, &app.secret, &email, groundswell_domain::now()).await {
        Ok(()) => {
            app.mail_queued.notify_one();
            visitor.render(&state, StatusCode::OK, "sign_in_sent.html", json!({}))
        }
        Err(PeopleError::TooManySignInRequests) => too_many(&state, &visitor),
        Err(err) => {
            tracing::error!(error = %err, "asking for a sign-in link from a page failed");
            visitor.failed(&state)
        }
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

/// `GET /my/registrations`: the signed-in person's registrations.
pub async fn my_registrations(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let visitor = match Visitor::from_request(&state, &headers, &uri).await {
        Ok(visitor) => visitor,
        Err(response) => return response,
    };
    let Some(person) = &visitor.person else {
        let note = if visitor.easy {
            "Sign in to see your places."
        } else {
            "Sign in to see your registrations."
        };
        return visitor.render(
            &state,
            StatusCode::UNAUTHORIZED,
            "sign_in.html",
            json!({ "email": "", "error": null, "note": note }),
        );
    };
    let found = match registrations::for_person(&state.db, person.id).await {
        Ok(found) => found,
        Err(err) => {
            tracing::error!(error = %err, "loading a person's registrations failed");
            return visitor.failed(&state);
        }
    };
    let ids: Vec<_> = found.iter().map(|r| r.gathering_id).collect();
    let gatherings: HashMap<_, _> = match gatherings::by_ids(&state.db, &ids).await {
        Ok(found) => found.into_iter().map(|g| (g.id, g)).collect(),
        Err(err) => {
            tracing::error!(error = %err, "loading gatherings failed");
            return visitor.failed(&state);
        }
    };
    let rows: Vec<Value> = found
        .iter()
        .filter_map(|r| {
            let gathering = gatherings.get(&r.gathering_id)?;
            // Their own access needs, shown to them alone.
            let needs: Vec<&str> = r
                .access_requirements
                .iter()
                .map(|a| requirement_label(*a, visitor.easy))
                .collect();
            Some(json!({
                "id": r.id,
                "gathering": gathering_view(gathering),
                "status": match r.status {
                    RegistrationStatus::Confirmed => "confirmed",
                    RegistrationStatus::Waitlisted => "waitlisted",
                    RegistrationStatus::Cancelled => "cancelled",
                },
                "position": r.waitlist_position,
                "mode": mode_label(r.mode),
                "companions": r.companions,
                "needs": needs,
                "notes": r.access_notes,
                "has_access_needs": !needs.is_empty() || r.access_notes.is_some(),
            }))
        })
        .collect();
    let done = match query.done.as_str() {
        "cancelled" => Some("Your registration is cancelled."),
        "erased" => Some("Your access needs are erased."),
        _ => None,
    };
    visitor.render(
        &state,
        StatusCode::OK,
        "my_registrations.html",
        json!({ "registrations": rows, "done": done }),
    )
}

fn see_other(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The checks the buttons on "my registrations" share: a signed-in person, their CSRF token,
/// and a registration id.
async fn own_action(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    id: &str,
    body: &Bytes,
) -> Result<(Visitor, uuid::Uuid), Response> {
    let visitor = Visitor::from_request(state, headers, uri).await?;
    let form = FormFields::parse(body);
    if !visitor.csrf_ok(&state.secret, form.get("csrf")) {
        return Err(visitor.forbidden_form(state));
    }
    if !visitor.signed_in() {
        return Err(see_other("/my/registrations"));
    }
    match uuid::Uuid::parse_str(id) {
        Ok(id) => Ok((visitor, id)),
        Err(_) => Err(visitor.message(
            state,
            StatusCode::NOT_FOUND,
            "Registration not found",
            &["You have no registration with that address."],
            "cross",
        )),
    }
}

fn action_failed(state: &AppState, visitor: &Visitor, err: RegistrationError) -> Response {
    match err {
        RegistrationError::NotFound | RegistrationError::Access(_) => visitor.message(
            state,
            StatusCode::NOT_FOUND,
            "Registration not found",
            &["You have no registration with that address."],
            "cross",
        ),
        RegistrationError::AlreadyCancelled => see_other("/my/registrations?done=cancelled"),
        err => visitor
            .registration_refused(state, &err)
            .unwrap_or_else(|| {
                tracing::error!(error = %err, "changing a registration from a page failed");
                visitor.failed(state)
            }),
    }
}

/// `POST /my/registrations/{id}/cancel`.
pub async fn cancel_registration(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let (visitor, id) = match own_action(&state, &headers, &uri, &id, &body).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match registrations::cancel(&state.db, &visitor.actor, id, groundswell_domain::now()).await {
        Ok(registration) => {
            state.app.mail_queued.notify_one();
            state.app.events.places_changed(registration.gathering_id);
            see_other("/my/registrations?done=cancelled")
        }
        Err(err) => action_failed(&state, &visitor, err),
    }
}

/// `POST /my/registrations/{id}/erase-access-needs`.
pub async fn erase_access_needs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let (visitor, id) = match own_action(&state, &headers, &uri, &id, &body).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match registrations::erase_access_needs(
        &state.db,
        &visitor.actor,
        id,
        groundswell_domain::now(),
    )
    .await
    {
        Ok(_) => see_other("/my/registrations?done=erased"),
        Err(err) => action_failed(&state, &visitor, err),
    }
}

fn link_invalid(state: &AppState, visitor: &Visitor) -> Response {
    let paragraphs: &[&str] = if visitor.easy {
        &[
            "This link does not work any more.",
            "A link works one time only.",
            "Go to the gathering page to register again.",
        ]
    } else {
        &[
            "This link has expired or has already been used. Each link works once.",
            "If you have already confirmed, you are registered: see your registrations. If not, register again from the gathering's page.",
        ]
    };
    visitor.message(
        state,
        StatusCode::BAD_REQUEST,
        "This link has expired",
        paragraphs,
        "cross",
    )
}

/// `GET /registrations/confirm?token=…`: one button. Never uses the token (mail scanners
/// follow links before people do).
pub async fn confirm_page(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let visitor = match Visitor::from_request(&state, &headers, &uri).await {
        Ok(visitor) => visitor,
        Err(response) => return response,
    };
    if query.token.is_empty() || query.token.len() > 512 {
        return link_invalid(&state, &visitor);
    }
    match registrations::pending_gathering(&state.db, &query.token, groundswell_domain::now()).await
    {
        Ok(Some(gathering)) => visitor.render(
            &state,
            StatusCode::OK,
            "confirm.html",
            json!({ "gathering": gathering_view(&gathering), "token": query.token }),
        ),
        Ok(None) => link_invalid(&state, &visitor),
        Err(err) => {
            tracing::error!(error = %err, "reading a registration link failed");
            visitor.failed(&state)
        }
    }
}

/// `POST /registrations/confirm`: makes the registration, signs the person in, and shows
/// where they stand.
pub async fn confirm_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut visitor = match Visitor::from_request(&state, &headers, &uri).await {
        Ok(visitor) => visitor,
        Err(response) => return response,
    };
    let form = FormFields::parse(&body);
    if !visitor.csrf_ok(&state.secret, form.get("csrf")) {
        return visitor.forbidden_form(&state);
    }
    let token = form.get("token").unwrap_or_default();
    if token.is_empty() || token.len() > 512 {
        return link_invalid(&state, &visitor);
    }
    let confirmed = match registrations::confirm_registration(
        &state.db,
        token,
        true,
        state.app.limits,
        groundswell_domain::now(),
    )
    .await
    {
        Ok(confirmed) => confirmed,
        Err(RegistrationError::RequestLinkInvalid) => return link_invalid(&state, &visitor),
        Err(RegistrationError::NotOpen(reason)) => {
            return visitor.message(
                &state,
                StatusCode::CONFLICT,
                "Registration is not open",
                &[reason.as_str()],
                "wait",
            );
        }
        Err(RegistrationError::GatheringCancelled) => {
            return visitor.message(
                &state,
                StatusCode::CONFLICT,
                "This gathering has been cancelled",
                &["You cannot register for it any more."],
                "cross",
            );
        }
        Err(err) => {
            return visitor
                .registration_refused(&state, &err)
                .unwrap_or_else(|| {
                    tracing::error!(error = %err, "confirming a registration failed");
                    visitor.failed(&state)
                });
        }
    };
    state.app.mail_queued.notify_one();
    state
        .app
        .events
        .places_changed(confirmed.registration.gathering_id);
    let gathering = match gatherings::by_id(&state.db, confirmed.registration.gathering_id).await {
        Ok(Some(gathering)) => gathering,
        Ok(None) => return visitor.failed(&state),
        Err(err) => {
            tracing::error!(error = %err, "loading a gathering failed");
            return visitor.failed(&state);
        }
    };
    let registration = confirmed.registration;
    if let Some(session) = confirmed.session {
        visitor.sign_in_with(session);
    }
    registered_page(&state, &visitor, &gathering, &registration)
}
