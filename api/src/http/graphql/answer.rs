//! How a GraphQL answer goes back over HTTP: the media type the client accepts, the status the
//! GraphQL-over-HTTP specification gives each outcome, refusals in the GraphQL error shape,
//! and cache headers from the public/private rule (with a strong ETag and `304 Not Modified`).

use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// The two response media types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// `application/json`: every GraphQL outcome is HTTP 200, as clients of old expect.
    Json,
    /// `application/graphql-response+json`: a request that fails before execution is HTTP 400
    /// with no `data`.
    GraphqlResponse,
}

impl Media {
    /// Both media types, in the order of [`Media::index`].
    pub const ALL: [Media; 2] = [Media::Json, Media::GraphqlResponse];

    pub fn index(self) -> usize {
        match self {
            Media::Json => 0,
            Media::GraphqlResponse => 1,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Media::Json => "application/json; charset=utf-8",
            Media::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
        }
    }
}

/// The media ranges of `Accept`, each with its quality (read in place: this runs on every
/// request).
fn accepted(headers: &HeaderMap) -> impl Iterator<Item = (&str, f32)> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|item| {
            let mut parts = item.split(';');
            let range = parts.next()?.trim();
            if range.is_empty() {
                return None;
            }
            let quality = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            Some((range, quality))
        })
}

/// Which media type to answer with: the new one when the client prefers it (or names it as
/// highly as `application/json`), otherwise `application/json`, also for `*/*`, for nothing
/// and for anything else.
pub fn negotiate(headers: &HeaderMap) -> Media {
    let (mut new, mut json) = (0.0_f32, 0.0_f32);
    for (range, quality) in accepted(headers) {
        if range.eq_ignore_ascii_case("application/graphql-response+json") {
            new = new.max(quality);
        } else if ["application/json", "application/*", "*/*"]
            .iter()
            .any(|json_range| range.eq_ignore_ascii_case(json_range))
        {
            json = json.max(quality);
        }
    }
    if new > 0.0 && new >= json {
        Media::GraphqlResponse
    } else {
        Media::Json
    }
}

/// Whether a browser is asking for a page (GraphiQL) rather than a GraphQL answer.
pub fn wants_html(headers: &HeaderMap) -> bool {
    accepted(headers).any(|(range, q)| {
        q > 0.0
            && (range.eq_ignore_ascii_case("text/html")
                || range.eq_ignore_ascii_case("application/xhtml+xml"))
    })
}

const PRIVATE: &str = "private, no-store";

/// A refusal at the HTTP level, in the GraphQL error shape (no `data`), never cached.
pub fn refusal(
    media: Media,
    status: StatusCode,
    message: &str,
    code: &str,
    field: Option<&str>,
) -> Response {
    let mut extensions = json!({ "code": code });
    if let Some(field) = field {
        extensions["field"] = json!(field);
    }
    let body = json!({ "errors": [{ "message": message, "extensions": extensions }] });
    (
        status,
        [
            (header::CONTENT_TYPE, media.content_type()),
            (header::CACHE_CONTROL, PRIVATE),
        ],
        body.to_string(),
    )
        .into_response()
}

/// An executed (or refused-before-execution) answer, ready to send.
pub struct Answer {
    pub status: StatusCode,
    /// The JSON text.
    pub body: Bytes,
    /// Whether the public/private rule found it public.
    pub public: bool,
    /// Its strong ETag in this media type, when already worked out (a cached answer's).
    pub etag: Option<String>,
}

/// Sends `answer`: public answers with `Cache-Control: public, max-age` and a strong ETag (and
/// `304 Not Modified` to a GET whose `If-None-Match` has it), everything else
/// `private, no-store`.
pub fn send(
    media: Media,
    answer: Answer,
    request_headers: &HeaderMap,
    is_get: bool,
    max_age_seconds: u64,
) -> Response {
    let body = answer.body;
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media.content_type()),
    );
    if !answer.public {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(PRIVATE));
        *response.status_mut() = answer.status;
        *response.body_mut() = Body::from(body);
        return response;
    }
    let etag = answer.etag.unwrap_or_else(|| strong_etag(media, &body));
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={max_age_seconds}")) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    // The answer would differ with another media type or for someone signed in.
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Authorization, Cookie"),
    );
    if is_get && none_match(request_headers, &etag) {
        headers.remove(header::CONTENT_TYPE);
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return response;
    }
    *response.status_mut() = answer.status;
    *response.body_mut() = Body::from(body);
    response
}

/// A strong ETag: the same bytes in the same media type, and nothing else, share it.
pub fn strong_etag(media: Media, body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(media.content_type().as_bytes())
        .chain_update(b"\n")
        .chain_update(body)
        .finalize();
    // Written by hand: a `format!` for each byte was a measurable share of every public answer.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut etag = String::with_capacity(34);
    etag.push('"');
    for byte in &digest[..16] {
        etag.push(char::from(HEX[usize::from(byte >> 4)]));
        etag.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    etag.push('"');
    etag
}

/// Whether `If-None-Match` names `etag` (or is `*`).
fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag == etag || tag.strip_prefix("W/") == Some(etag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(header::ACCEPT, value);
        }
        headers
    }

    #[test]
    fn an_etag_is_the_same_only_for_the_same_bytes_in_the_same_media_type() {
        let body = br#"{"data":{}}"#;
        assert_eq!(
            strong_etag(Media::Json, body),
            strong_etag(Media::Json, body)
        );
        assert_ne!(
            strong_etag(Media::Json, body),
            strong_etag(Media::GraphqlResponse, body)
        );
        assert_ne!(
            strong_etag(Media::Json, body),
            strong_etag(Media::Json, br#"{"data":{"a":1}}"#)
        );
        assert!(!strong_etag(Media::Json, body).starts_with("W/"));
    }

    #[test]
    fn an_etag_is_the_first_16_bytes_of_the_sha256_in_lower_hex_and_quoted() {
        use sha2::{Digest, Sha256};
        let body = br#"{"data":{"changes":[]}}"#;
        let digest =
            Sha256::digest(b"application/json; charset=utf-8\n{\"data\":{\"changes\":[]}}");
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(strong_etag(Media::Json, body), format!("\"{hex}\""));
    }

    #[test]
    fn accept_chooses_the_media_type() {
        assert_eq!(negotiate(&HeaderMap::new()), Media::Json);
        assert_eq!(negotiate(&accept("*/*")), Media::Json);
        assert_eq!(negotiate(&accept("application/json")), Media::Json);
        assert_eq!(
            negotiate(&accept("application/graphql-response+json")),
            Media::GraphqlResponse
        );
        assert_eq!(
            negotiate(&accept(
                "application/graphql-response+json, application/json;q=0.9"
            )),
            Media::GraphqlResponse
        );
        assert_eq!(
            negotiate(&accept(
                "application/graphql-response+json;q=0.5, application/json"
            )),
            Media::Json
        );
        assert!(wants_html(&accept(
            "text/html,application/xhtml+xml,*/*;q=0.8"
        )));
        assert!(!wants_html(&accept("*/*")));
        // Media types are case-insensitive.
        assert_eq!(
            negotiate(&accept("Application/GraphQL-Response+JSON")),
            Media::GraphqlResponse
        );
        assert_eq!(
            negotiate(&accept(
                "application/graphql-response+json;q=0.5, APPLICATION/JSON"
            )),
            Media::Json
        );
        assert!(wants_html(&accept("Text/HTML")));
        assert!(!wants_html(&accept("text/html;q=0")));
    }
}
