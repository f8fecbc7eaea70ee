//! GraphQL over HTTP: authenticates the caller, reads a bounded body, refuses oversized
//! batches, executes, and gives every error a code.

use std::net::SocketAddr;

use async_graphql::{BatchRequest, BatchResponse, http::GraphiQLSource};
use axum::{
    Json,
    body::{Body, to_bytes},
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
};
use groundswell_domain::Actor;
use serde_json::json;

use super::{AppState, credential};
use crate::graphql::{MAX_BATCH, RequestContext, error::assign_codes, new_loader};

pub async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("Groundswell")
            .finish(),
    )
}

pub fn error_response(status: StatusCode, message: &str, code: &str) -> Response {
    (
        status,
        Json(json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })),
    )
        .into_response()
}

pub async fn execute(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let actor = match credential(&headers, false) {
        Some(token) => {
            match groundswell_domain::access::authenticate(
                &state.db,
                &token,
                groundswell_domain::now(),
            )
            .await
            {
                Ok(actor) => actor,
                Err(err) => {
                    tracing::error!(error = %err, "authenticating failed");
                    return error_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Groundswell cannot reach its database just now. Please try again.",
                        "INTERNAL_SERVER_ERROR",
                    );
                }
            }
        }
        None => Actor::Anonymous,
    };

    let bytes = match to_bytes(body, state.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is too large. Requests are limited to 1 MiB.",
                "BAD_USER_INPUT",
            );
        }
    };
    let mut batch: BatchRequest = match serde_json::from_slice(&bytes) {
        Ok(batch) => batch,
        Err(err) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("The request body is not a GraphQL request in JSON: {err}."),
                "BAD_USER_INPUT",
            );
        }
    };
    if let BatchRequest::Batch(requests) = &batch
        && (requests.len() > MAX_BATCH || requests.is_empty())
    {
        return error_response(
            StatusCode::BAD_REQUEST,
            &format!("A batch may hold 1 to {MAX_BATCH} operations."),
            "BAD_USER_INPUT",
        );
    }

    if let Err(refusal) = crate::graphql::cost::check_batch(&mut batch) {
        return error_response(StatusCode::BAD_REQUEST, &refusal, "BAD_USER_INPUT");
    }

    let context = RequestContext {
        actor,
        client_ip: Some(peer.ip()),
    };
    // Each operation gets its own loader, so nothing cached for one caller reaches another.
    let with_context = |request: async_graphql::Request| {
        request
            .data(context.clone())
            .data(new_loader(state.db.clone()))
    };
    let mut response = match batch {
        BatchRequest::Single(request) => {
            BatchResponse::Single(state.schema.execute(with_context(request)).await)
        }
        BatchRequest::Batch(requests) => {
            let mut responses = Vec::with_capacity(requests.len());
            for request in requests {
                responses.push(state.schema.execute(with_context(request)).await);
            }
            BatchResponse::Batch(responses)
        }
    };
    match &mut response {
        BatchResponse::Single(one) => assign_codes(one),
        BatchResponse::Batch(many) => many.iter_mut().for_each(assign_codes),
    }
    Json(response).into_response()
}

/// `GET /graphql/ws`: subscriptions over graphql-transport-ws (or the older graphql-ws). The
/// client authenticates in `connection_init` with `{"Authorization": "Bearer <token>"}`.
pub async fn subscriptions(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    protocol: async_graphql_axum::GraphQLProtocol,
    upgrade: axum::extract::WebSocketUpgrade,
) -> Response {
    let schema = state.websocket_schema.clone();
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| {
            async_graphql_axum::GraphQLWebSocket::new(stream, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let token = ["Authorization", "authorization"]
                        .iter()
                        .find_map(|key| payload.get(key).and_then(|v| v.as_str()))
                        .and_then(|value| value.trim().split_once(' '))
                        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                        .map(|(_, token)| token.trim().to_owned());
                    let actor = match &token {
                        Some(token) => groundswell_domain::access::authenticate(
                            &state.db,
                            token,
                            groundswell_domain::now(),
                        )
                        .await
                        .map_err(|_| {
                            async_graphql::Error::new(
                                "Groundswell cannot reach its database just now.",
                            )
                        })?,
                        None => Actor::Anonymous,
                    };
                    let mut data = async_graphql::Data::default();
                    data.insert(crate::graphql::websocket::OverWebSocket { credential: token });
                    data.insert(RequestContext {
                        actor,
                        client_ip: Some(peer.ip()),
                    });
                    // A connection lives long: each event must read afresh, not from a cache.
                    let loader = new_loader(state.db.clone());
                    loader.enable_all_cache(false);
                    data.insert(loader);
                    Ok(data)
                })
                .serve()
        })
}
