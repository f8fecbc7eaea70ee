//! One-click unsubscribe (RFC 8058). `POST /unsubscribe/{token}` stops a person's digests with
//! no sign-in and no cookie: mail clients post `List-Unsubscribe=One-Click` on their own. The
//! `GET` only shows a page with a button, because mail scanners fetch links before people do
//! and must not unsubscribe anyone. The pages use the attendee pages' layout and easy read.
//!
//! The page's own button form carries the visitor's CSRF token and is told apart by it: a POST
//! with a `csrf` field must carry this visitor's token. A POST without one is the one-click
//! path, which the token in the address alone authorises, as RFC 8058 requires.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, Uri},
    response::Response,
};
use groundswell_domain::digests::{self, DigestError};
use serde_json::json;

use super::{
    AppState,
    pages::{FormFields, Visitor},
};

/// The longest token accepted: a UUID, a dot and a MAC.
const MAX_TOKEN: usize = 128;

pub async fn page(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let visitor = match Visitor::from_request(&state, &headers, &uri).await {
        Ok(visitor) => visitor,
        Err(response) => return response,
    };
    if token.len() > MAX_TOKEN || digests::verify_unsubscribe_token(&state.secret, &token).is_none()
    {
        return invalid_link(&state, &visitor);
    }
    visitor.render(&state, StatusCode::OK, "unsubscribe.html", json!({}))
}

pub async fn submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let visitor = match Visitor::from_request(&state, &headers, &uri).await {
        Ok(visitor) => visitor,
        Err(response) => return response,
    };
    // Only a urlencoded form can be the page's own; anything else is one-click as it comes.
    let form_encoded = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form_encoded {
        let form = FormFields::parse(&body);
        if form.all("csrf").next().is_some() && !visitor.csrf_ok(&state.secret, form.get("csrf")) {
            return visitor.forbidden_form(&state);
        }
    }
    if token.len() > MAX_TOKEN {
        return invalid_link(&state, &visitor);
    }
    match digests::unsubscribe(&state.db, &state.secret, &token, groundswell_domain::now()).await {
        Ok(()) => visitor.render(&state, StatusCode::OK, "unsubscribed.html", json!({})),
        Err(DigestError::InvalidUnsubscribeLink | DigestError::NotFound) => {
            invalid_link(&state, &visitor)
        }
        Err(err) => {
            tracing::error!(error = %err, "unsubscribing failed");
            visitor.failed(&state)
        }
    }
}

fn invalid_link(state: &AppState, visitor: &Visitor) -> Response {
    let paragraphs: &[&str] = if visitor.easy {
        &[
            "This link does not work.",
            "Use the link in your newest digest email.",
            "Or sign in and change your digest settings.",
        ]
    } else {
        &[
            "This unsubscribe link is not valid. Use the link from your latest digest, or change your digest settings after signing in.",
        ]
    };
    visitor.message(
        state,
        StatusCode::NOT_FOUND,
        "This link is not valid",
        paragraphs,
        "cross",
    )
}
