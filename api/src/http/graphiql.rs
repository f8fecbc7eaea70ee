//! GraphiQL, with every file it loads compiled into the binary (api/assets/graphiql/, pinned
//! production builds; its README says which and how to refresh them). The page's
//! Content-Security-Policy allows nothing from another origin and no inline script: this is
//! the origin whose session cookie `/graphql` accepts, so no third party may run code on it.

use axum::{
    extract::Path,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

/// Where the assets are served; the version is in the path, so they can be cached for a year.
pub const ASSET_PREFIX: &str = "/assets/graphiql-3.8.3";

const PAGE: &str = include_str!("../../assets/graphiql/index.html");

const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    ),
    (
        "groundswell-graphiql.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/groundswell-graphiql.js"),
    ),
    (
        "groundswell-graphiql.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/graphiql/groundswell-graphiql.css"),
    ),
];

/// Scripts and styles from this origin only (no inline script or style element); `data:` for the
/// fonts and icons GraphiQL's CSS embeds; fetches and the subscriptions WebSocket to this origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /graphql` for a browser.
pub fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        PAGE,
    )
        .into_response()
}

/// `GET /assets/graphiql-3.8.3/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *bytes,
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
