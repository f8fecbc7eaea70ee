//! Who is calling, for every route that reads a credential (GraphQL over POST and GET, the
//! WebSocket's `connection_init`, the registrations download). A credential that is presented
//! but not valid is refused, never read as nobody; no credential at all is anonymous.

use axum::http::{HeaderMap, header};
use groundswell_domain::{Actor, Database};

use super::SESSION_COOKIE;

/// What a request presented to say who it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Presented {
    /// No `Authorization` header and no session cookie.
    Nothing,
    /// A bearer token or a session cookie's value.
    Token(String),
    /// An `Authorization` header that is not `Bearer <token>`, or an empty session cookie.
    Malformed,
}

impl Presented {
    /// Whether the caller presented anything at all (a valid credential or not).
    pub(crate) fn is_presented(&self) -> bool {
        !matches!(self, Presented::Nothing)
    }
}

/// Why a presented credential did not establish a caller.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Unknown, expired, revoked or malformed: HTTP 401, `UNAUTHENTICATED`.
    Invalid,
    /// The database could not be asked.
    Unavailable,
}

/// What the client is told when its credential is refused.
pub(crate) const INVALID_CREDENTIAL: &str = "Your session or API token is not valid: it is unknown, has expired or was revoked, or the Authorization header is not \"Bearer <token>\". Sign in again or use a live token; send no credential to act anonymously.";

/// The bearer token, or the session cookie set by the sign-in page. For GraphQL over POST the
/// cookie counts only on JSON requests, which a cross-site form cannot send; GETs (queries and
/// downloads) take it as it is, being SameSite=Strict.
pub(crate) fn presented(headers: &HeaderMap, cookie_on_any_request: bool) -> Presented {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return bearer(value.to_str().unwrap_or_default());
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .get(..16)
                .is_some_and(|t| t.eq_ignore_ascii_case("application/json"))
        });
    if !is_json && !cookie_on_any_request {
        return Presented::Nothing;
    }
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_owned());
    match cookie {
        None => Presented::Nothing,
        Some(value) if value.is_empty() => Presented::Malformed,
        Some(value) => Presented::Token(value),
    }
}

/// Reads `Bearer <token>` (the scheme in any case), as the HTTP header or the WebSocket's
/// `connection_init` payload gives it.
pub(crate) fn bearer(value: &str) -> Presented {
    match value.trim().split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Presented::Token(token.trim().to_owned())
        }
        _ => Presented::Malformed,
    }
}

/// The caller a presented credential names.
pub(crate) async fn caller(db: &Database, presented: &Presented) -> Result<Actor, Refusal> {
    let token = match presented {
        Presented::Nothing => return Ok(Actor::Anonymous),
        Presented::Malformed => return Err(Refusal::Invalid),
        Presented::Token(token) => token,
    };
    match groundswell_domain::access::authenticate(db, token, groundswell_domain::now()).await {
        Ok(Some(actor)) => Ok(actor),
        Ok(None) => Err(Refusal::Invalid),
        Err(err) => {
            tracing::error!(error = %err, "authenticating failed");
            Err(Refusal::Unavailable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bearer_with_a_token_is_a_token() {
        assert_eq!(bearer("Bearer gss_abc"), Presented::Token("gss_abc".into()));
        assert_eq!(bearer("bearer  gso_x "), Presented::Token("gso_x".into()));
        assert_eq!(bearer("Basic dXNlcjpwYXNz"), Presented::Malformed);
        assert_eq!(bearer("Bearer"), Presented::Malformed);
        assert_eq!(bearer("Bearer   "), Presented::Malformed);
        assert_eq!(bearer("gss_abc"), Presented::Malformed);
    }
}
