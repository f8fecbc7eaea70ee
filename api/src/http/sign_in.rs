//! The page a sign-in link opens. Its GET never uses the token (mail scanners fetch links
//! before people do); the button's POST, with the visitor's CSRF token, exchanges it for a
//! session cookie. Both are attendee pages: the pages' layout, headers and easy read.

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
    response::Response,
};
use groundswell_domain::people;
use serde_json::json;

use super::{
    AppState,
    pages::{FormFields, Visitor},
};

/// The longest token looked at.
const MAX_TOKEN: usize = 512;

/// `GET /sign-in?token=…`: one "Sign in" button. The token is only written into the form.
pub fn page(state: &AppState, visitor: &Visitor, token: &str) -> Response {
    if token.len() > MAX_TOKEN {
        return invalid_link(state, visitor);
    }
    visitor.render(
        state,
        StatusCode::OK,
        "sign_in_link.html",
        json!({ "token": token }),
    )
}

/// `POST /sign-in`: the button. Without the visitor's CSRF token (another site posting its own
/// token would sign the visitor in as someone else) it is refused and nothing is used up.
pub async fn submit(
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
    if token.is_empty() || token.len() > MAX_TOKEN {
        return invalid_link(&state, &visitor);
    }
    match people::sign_in(&state.db, token, groundswell_domain::now()).await {
        Ok(session) => {
            visitor.sign_in_with(session);
            visitor.render(&state, StatusCode::OK, "signed_in.html", json!({}))
        }
        Err(people::PeopleError::SignInLinkInvalid) => invalid_link(&state, &visitor),
        Err(err) => {
            tracing::error!(error = %err, "sign-in failed");
            visitor.failed(&state)
        }
    }
}

fn invalid_link(state: &AppState, visitor: &Visitor) -> Response {
    let paragraphs: &[&str] = if visitor.easy {
        &[
            "This link does not work any more.",
            "A link works one time only, for 30 minutes.",
            "Ask for a new link on the sign in page.",
        ]
    } else {
        &[
            "This sign-in link has expired or has already been used. Ask for a new one; each link works once, for 30 minutes.",
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
