//! The attendee's pages: server-rendered HTML from minijinja templates in
//! `api/templates/pages/`, one stylesheet and a few SVG icons, all compiled into the binary. No
//! JavaScript is needed for anything. Pages call the same domain services as GraphQL.
//!
//! Every page is sent with a strict Content-Security-Policy (nothing inline, nothing from
//! elsewhere), `nosniff` and `no-referrer` (a confirmation link's token must not leak to
//! another site). Every form carries a CSRF token bound to the visitor: a signed double-submit
//! token, the HMAC under the server's SECRET_KEY of a random visitor id kept in an HttpOnly
//! cookie. A POST whose token does not match its cookie is refused with 403.

mod account;
mod gatherings;

pub use account::{
    cancel_registration, confirm_page, confirm_submit, erase_access_needs, my_registrations,
    request_sign_in_link, sign_in_page,
};
pub use gatherings::{gathering_or_calendar, home, register};

use std::sync::LazyLock;

use axum::{
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use groundswell_domain::{
    Actor,
    people::{self, Person},
    secrets::{SecretKey, random_token},
};
use minijinja::Environment;
use serde_json::{Value, json};

use super::{AppState, SESSION_COOKIE};

/// The random id that CSRF tokens are bound to.
pub const VISITOR_COOKIE: &str = "groundswell_visitor";
/// The same over HTTPS: the `__Host-` prefix makes browsers refuse it from a sibling subdomain
/// (which could otherwise plant a visitor id whose token it knows).
pub const SECURE_VISITOR_COOKIE: &str = "__Host-groundswell_visitor";
/// `easy` or `standard`: the visitor's choice of version.
pub const READ_COOKIE: &str = "groundswell_read";
const CSRF_PURPOSE: &str = "csrf";

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

macro_rules! page_templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../templates/pages/", $name)))),*]
    };
}

const TEMPLATES: &[(&str, &str)] = page_templates!(
    "layout.html",
    "macros.html",
    "home.html",
    "gathering.html",
    "registered.html",
    "request_sent.html",
    "confirm.html",
    "my_registrations.html",
    "sign_in.html",
    "sign_in_sent.html",
    "message.html",
    "sign_in_link.html",
    "signed_in.html",
    "unsubscribe.html",
    "unsubscribed.html",
);

const STYLESHEET: &str = include_str!("../../../static/pages.css");

macro_rules! icons {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../static/icons/", $name, ".svg")))),*]
    };
}

/// The pictures beside each key point in easy read.
const ICONS: &[(&str, &str)] = icons!(
    "calendar", "place", "people", "tick", "wait", "email", "access", "cross", "info", "person",
    "online", "key",
);

static ENVIRONMENT: LazyLock<Result<Environment<'static>, String>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .map_err(|e| format!("page template {name}: {e}"))?;
    }
    Ok(env)
});

/// Checks every page template parses; run at start so a broken template stops the server
/// instead of a page.
pub fn check_templates() -> anyhow::Result<()> {
    ENVIRONMENT
        .as_ref()
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Who is looking at a page, and how they want to read it.
pub struct Visitor {
    pub actor: Actor,
    pub person: Option<Person>,
    /// The id CSRF tokens are bound to; made now when the visitor had none.
    visitor_id: String,
    new_visitor_id: bool,
    /// The session cookie was presented but is no longer valid.
    clear_session: bool,
    pub easy: bool,
    /// The version chosen with `?read=` on this request, to remember in a cookie.
    chosen_read: Option<&'static str>,
    /// Links to this page in the other version.
    easy_url: String,
    standard_url: String,
    /// A session made by this request (confirming a registration) to set as a cookie.
    new_session: Option<String>,
    /// The browser says the request came from another site.
    cross_site: bool,
}

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// The `read` parameter of a query string: `easy` or `standard`.
fn read_param(uri: &Uri) -> Option<&'static str> {
    let query = uri.query()?;
    url::form_urlencoded::parse(query.as_bytes()).find_map(|(key, value)| {
        (key == "read").then(|| match value.as_ref() {
            "easy" => Some("easy"),
            "standard" => Some("standard"),
            _ => None,
        })?
    })
}

/// `uri` with `read` set to `version`, other parameters kept.
fn with_read(uri: &Uri, version: &str) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(existing) = uri.query() {
        for (key, value) in url::form_urlencoded::parse(existing.as_bytes()) {
            if key != "read" && key != "done" {
                query.append_pair(&key, &value);
            }
        }
    }
    query.append_pair("read", version);
    format!("{}?{}", uri.path(), query.finish())
}

impl Visitor {
    /// Establishes the visitor from their cookies and the page's address. A session that is no
    /// longer valid makes them signed out (and the cookie is cleared), never an error page.
    pub async fn from_request(
        state: &AppState,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<Self, Response> {
        let now = groundswell_domain::now();
        let mut clear_session = false;
        let mut actor = Actor::Anonymous;
        let mut person = None;
        if let Some(token) = cookie(headers, SESSION_COOKIE) {
            // A session that is no longer valid signs the visitor out (and its cookie is
            // cleared), rather than refusing the page: pages are for people, not integrations.
            match groundswell_domain::access::authenticate(&state.db, token, now).await {
                Ok(found) => match found {
                    Some(found @ Actor::Person { .. }) => actor = found,
                    _ => clear_session = true,
                },
                Err(err) => {
                    tracing::error!(error = %err, "authenticating a page's visitor failed");
                    return Err(unavailable());
                }
            }
        }
        if let Actor::Person { person_id, .. } = &actor {
            match people::by_id(&state.db, *person_id).await {
                Ok(found) => person = found,
                Err(err) => {
                    tracing::error!(error = %err, "loading a page's visitor failed");
                    return Err(unavailable());
                }
            }
        }
        let chosen_read = read_param(uri);
        let easy = match chosen_read {
            Some(version) => version == "easy",
            None => match cookie(headers, READ_COOKIE) {
                Some(version) => version == "easy",
                None => person.as_ref().is_some_and(|p| p.prefers_easy_read),
            },
        };
        // A signed-in person's choice is remembered with them, for their mail too.
        if let (Some(version), Some(found)) = (chosen_read, person.as_mut())
            && found.prefers_easy_read != (version == "easy")
        {
            match people::update_my_preferences(&state.db, &actor, Some(version == "easy"), now)
                .await
            {
                Ok(updated) => *found = updated,
                Err(err) => tracing::error!(error = %err, "remembering easy read failed"),
            }
        }
        let visitor_cookie = if state.public_url.starts_with("https://") {
            SECURE_VISITOR_COOKIE
        } else {
            VISITOR_COOKIE
        };
        let cross_site = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|site| site.eq_ignore_ascii_case("cross-site"));
        let (visitor_id, new_visitor_id) = match cookie(headers, visitor_cookie) {
            Some(id) if id.len() <= 100 && id.starts_with("gsv_") => (id.to_owned(), false),
            _ => (random_token("gsv_"), true),
        };
        Ok(Self {
            actor,
            person,
            visitor_id,
            new_visitor_id,
            clear_session,
            easy,
            chosen_read,
            easy_url: with_read(uri, "easy"),
            standard_url: with_read(uri, "standard"),
            new_session: None,
            cross_site,
        })
    }

    pub fn signed_in(&self) -> bool {
        self.person.is_some()
    }

    /// The CSRF token for this visitor's forms.
    pub fn csrf_token(&self, secret: &SecretKey) -> String {
        secret.sign(CSRF_PURPOSE, &self.visitor_id)
    }

    /// Whether a posted form's token is this visitor's. A visitor who had no cookie has no
    /// token yet, so nothing they post passes.
    pub fn csrf_ok(&self, secret: &SecretKey, token: Option<&str>) -> bool {
        // Browsers that say where a request came from add a second check for free.
        !self.cross_site
            && !self.new_visitor_id
            && token.is_some_and(|t| secret.verify_signature(CSRF_PURPOSE, &self.visitor_id, t))
    }

    /// Signs the visitor in with a session made by this request.
    pub fn sign_in_with(&mut self, session: people::NewSession) {
        self.actor = Actor::Person {
            person_id: session.person.id,
            role: session.person.role,
            session_id: session.session_id,
        };
        self.person = Some(session.person);
        self.clear_session = false;
        self.new_session = Some(session.token);
    }

    /// The page's headers and cookies, on top of the rendered body.
    fn finish(&self, state: &AppState, status: StatusCode, body: String) -> Response {
        let secure = if state.public_url.starts_with("https://") {
            "; Secure"
        } else {
            ""
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        // Every page carries this visitor's CSRF token or what they chose: never a shared cache.
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
        let mut cookies = Vec::new();
        if self.new_visitor_id {
            let name = if secure.is_empty() {
                VISITOR_COOKIE
            } else {
                SECURE_VISITOR_COOKIE
            };
            cookies.push(format!(
                "{name}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000{secure}",
                self.visitor_id
            ));
        }
        if let Some(version) = self.chosen_read {
            cookies.push(format!(
                "{READ_COOKIE}={version}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000{secure}"
            ));
        }
        if let Some(token) = &self.new_session {
            cookies.push(format!(
                "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                30 * 24 * 3600
            ));
        } else if self.clear_session {
            cookies.push(format!(
                "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
            ));
        }
        for value in cookies {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.append(header::SET_COOKIE, value);
            }
        }
        response
    }

    /// Renders `template` with `context` and what every page shows (the visitor, the version,
    /// the CSRF token).
    pub fn render(
        &self,
        state: &AppState,
        status: StatusCode,
        template: &str,
        context: Value,
    ) -> Response {
        let mut full = json!({
            "easy": self.easy,
            "signed_in": self.signed_in(),
            "person_name": self.person.as_ref().and_then(|p| p.display_name.clone()),
            "csrf": self.csrf_token(&state.secret),
            "easy_url": self.easy_url,
            "standard_url": self.standard_url,
        });
        if let (Some(full), Value::Object(extra)) = (full.as_object_mut(), context) {
            full.extend(extra);
        }
        let rendered = ENVIRONMENT
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .and_then(|env| Ok(env.get_template(template)?.render(&full)?));
        match rendered {
            Ok(body) => self.finish(state, status, body),
            Err(err) => {
                tracing::error!(
                    error = format!("{err:#}"),
                    page = template,
                    "rendering a page failed"
                );
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "Something went wrong on our side. Please try again.",
                )
                    .into_response()
            }
        }
    }

    /// A page with a heading and a few paragraphs (errors, refusals, notices).
    pub fn message(
        &self,
        state: &AppState,
        status: StatusCode,
        title: &str,
        paragraphs: &[&str],
        icon: &str,
    ) -> Response {
        self.render(
            state,
            status,
            "message.html",
            json!({ "title": title, "paragraphs": paragraphs, "picture": icon }),
        )
    }

    /// The answer to a POST without this visitor's CSRF token.
    pub fn forbidden_form(&self, state: &AppState) -> Response {
        if self.easy {
            return self.message(
                state,
                StatusCode::FORBIDDEN,
                "Please try again",
                &[
                    "We could not use that form.",
                    "This keeps you safe.",
                    "Go back to the page.",
                    "Then send the form again.",
                ],
                "cross",
            );
        }
        self.message(
            state,
            StatusCode::FORBIDDEN,
            "This form could not be sent",
            &[
                "For your safety, we only accept forms sent from Groundswell's own pages in this browser. The form may have been open for a long time, or sent from another site.",
                "Go back, reload the page and send the form again.",
            ],
            "cross",
        )
    }

    /// The page for a registration refused by a rule (a limit, a registration already made,
    /// a way of attending no longer offered): never "something went wrong". `None` for what
    /// is not a refusal, which the caller logs and answers with [`Visitor::failed`].
    pub fn registration_refused(
        &self,
        state: &AppState,
        err: &groundswell_domain::registrations::RegistrationError,
    ) -> Option<Response> {
        use groundswell_domain::{access::AccessError, registrations::RegistrationError as E};
        let reason = err.to_string();
        let (status, title, icon) = match err {
            E::TooMany(_) | E::TooManyRequests => (
                StatusCode::TOO_MANY_REQUESTS,
                if self.easy {
                    "Please wait"
                } else {
                    "Too many registrations for now"
                },
                "wait",
            ),
            E::AlreadyCancelled => (StatusCode::CONFLICT, "Already cancelled", "info"),
            E::ModeNotOffered => (
                StatusCode::CONFLICT,
                "That way of attending is not offered now",
                "cross",
            ),
            E::NotOpen(_) => (StatusCode::CONFLICT, "Registration is not open", "wait"),
            E::GatheringCancelled => (
                StatusCode::CONFLICT,
                "This gathering has been cancelled",
                "cross",
            ),
            E::NotFound | E::GatheringNotFound => (StatusCode::NOT_FOUND, "Not found", "cross"),
            E::Access(AccessError::Unauthenticated) => {
                (StatusCode::UNAUTHORIZED, "Please sign in", "key")
            }
            E::Access(AccessError::Forbidden(_)) => {
                (StatusCode::FORBIDDEN, "You cannot do this", "cross")
            }
            E::RequestLinkInvalid => (StatusCode::GONE, "This link cannot be used", "cross"),
            E::NotConfirmed | E::Database(_) => return None,
        };
        Some(self.message(state, status, title, &[reason.as_str()], icon))
    }

    pub fn failed(&self, state: &AppState) -> Response {
        self.message(
            state,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sorry, something went wrong",
            &["Something went wrong on our side. Please try again in a minute."],
            "cross",
        )
    }
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        "Groundswell cannot reach its database just now. Please try again in a minute.",
    )
        .into_response()
}

/// A posted form's fields, in order (checkboxes repeat their name).
pub struct FormFields(Vec<(String, String)>);

impl FormFields {
    pub fn parse(body: &[u8]) -> Self {
        Self(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, trimmed; `None` when missing or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
    }

    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// `GET /static/pages.css`: the one stylesheet.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// `GET /static/icons/{name}.svg`: the easy-read pictures.
pub async fn icon(Path(file): Path<String>) -> Response {
    let found = file
        .strip_suffix(".svg")
        .and_then(|name| ICONS.iter().find(|(n, _)| *n == name));
    match found {
        Some((_, svg)) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "public, max-age=3600"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'",
                ),
            ],
            *svg,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Not found.",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_template_parses() {
        assert!(check_templates().is_ok(), "{:?}", check_templates());
    }

    #[test]
    fn the_read_link_keeps_other_parameters() {
        let uri: Uri = "/registrations/confirm?token=abc&read=standard"
            .parse()
            .unwrap_or_default();
        assert_eq!(
            with_read(&uri, "easy"),
            "/registrations/confirm?token=abc&read=easy"
        );
        assert_eq!(read_param(&uri), Some("standard"));
    }
}
