//! The page a sign-in link opens. Its GET never uses the token (mail scanners fetch links
//! before people do); the button's POST exchanges it for a session cookie.

use axum::{
    Form,
    extract::{Query, State},
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use groundswell_domain::people;
use serde::Deserialize;

use super::{AppState, SESSION_COOKIE};

#[derive(Deserialize)]
pub struct TokenParam {
    #[serde(default)]
    token: String,
}

impl TokenParam {
    pub fn new(token: String) -> Self {
        Self { token }
    }
}

pub(super) fn page_html(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – Groundswell</title>
<style>body{{font-family:Arial,Helvetica,sans-serif;font-size:1.2rem;line-height:1.6;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}}
button{{font-size:1.2rem;padding:.8rem 2rem;background:#1d5c4d;color:#fff;border:0;border-radius:6px;cursor:pointer}}
button:focus{{outline:3px solid #f2b705;outline-offset:2px}} a{{color:#1d5c4d}}</style></head>
<body><main><h1>{title}</h1>{body}</main></body></html>"#
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub async fn page(Query(param): Query<TokenParam>) -> Html<String> {
    if param.token.is_empty() {
        return Html(page_html(
            "Sign in",
            "<p>This page needs the link from your sign-in email. Open the link in the email again, or ask for a new one.</p>",
        ));
    }
    Html(page_html(
        "Sign in to Groundswell",
        &format!(
            r#"<p>Press the button to finish signing in.</p>
<form method="post" action="/sign-in"><input type="hidden" name="token" value="{}"><button type="submit">Sign in</button></form>"#,
            escape(&param.token)
        ),
    ))
}

pub async fn submit(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Form(param): Form<TokenParam>,
) -> Response {
    // Only the page's own button may sign someone in: another site posting its own token would
    // sign the visitor in as someone else, and what they then entered would be theirs to read.
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site.eq_ignore_ascii_case("cross-site"));
    if cross_site {
        return (
            StatusCode::FORBIDDEN,
            Html(page_html(
                "Open the link from your email",
                "<p>For your safety, signing in works only from the link in your sign-in email. Open that link and press the button there.</p>",
            )),
        )
            .into_response();
    }
    if param.token.len() > 512 {
        return invalid_link();
    }
    match people::sign_in(&state.db, &param.token, groundswell_domain::now()).await {
        Ok(session) => {
            let secure = if state.public_url.starts_with("https://") {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                session.token,
                30 * 24 * 3600
            );
            (
                [(header::SET_COOKIE, cookie)],
                Html(page_html(
                    "You are signed in",
                    &format!(
                        r#"<p>You are signed in to Groundswell. You can close this page, or go on to <a href="{}/graphql">Groundswell's API explorer</a>.</p>"#,
                        escape(&state.public_url)
                    ),
                )),
            )
                .into_response()
        }
        Err(people::PeopleError::SignInLinkInvalid) => invalid_link(),
        Err(err) => {
            tracing::error!(error = %err, "sign-in failed");
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
        StatusCode::BAD_REQUEST,
        Html(page_html(
            "This link has expired",
            "<p>This sign-in link has expired or has already been used. Ask for a new one; each link works once, for 30 minutes.</p>",
        )),
    )
        .into_response()
}
