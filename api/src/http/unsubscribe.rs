//! One-click unsubscribe (RFC 8058). `POST /unsubscribe/{token}` stops a person's digests with
//! no sign-in; the `GET` only shows a page with a button, because mail scanners fetch links
//! before people do and must not unsubscribe anyone.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use groundswell_domain::digests::{self, DigestError};

use super::{AppState, sign_in::page_html};

/// The longest token accepted: a UUID, a dot and a MAC.
const MAX_TOKEN: usize = 128;

pub async fn page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    if token.len() > MAX_TOKEN || digests::verify_unsubscribe_token(&state.secret, &token).is_none()
    {
        return invalid_link();
    }
    Html(page_html(
        "Stop your Groundswell digests",
        r#"<p>Press the button to stop receiving Groundswell digests by email. You can turn them on again at any time in your digest settings.</p>
<form method="post"><button type="submit">Stop my digests</button></form>"#,
    ))
    .into_response()
}

pub async fn submit(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    if token.len() > MAX_TOKEN {
        return invalid_link();
    }
    match digests::unsubscribe(&state.db, &state.secret, &token, groundswell_domain::now()).await
    {
        Ok(()) => Html(page_html(
            "Your digests are stopped",
            "<p>You will not receive Groundswell digests any more. You can turn them on again at any time in your digest settings.</p>",
        ))
        .into_response(),
        Err(DigestError::InvalidUnsubscribeLink | DigestError::NotFound) => invalid_link(),
        Err(err) => {
            tracing::error!(error = %err, "unsubscribing failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html(page_html(
                    "Something went wrong",
                    "<p>Something went wrong on our side. Please try the link again in a minute.</p>",
                )),
            )
                .into_response()
        }
    }
}

fn invalid_link() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(page_html(
            "This link is not valid",
            "<p>This unsubscribe link is not valid. Use the link from your latest digest, or change your digest settings after signing in.</p>",
        )),
    )
        .into_response()
}
