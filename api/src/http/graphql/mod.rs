//! GraphQL over HTTP (the GraphQL Foundation's specification, which graphql-http's audit
//! checks): POST with a JSON body, GET with the parameters in the query string (queries only),
//! answered as `application/json` or `application/graphql-response+json`, with automatic
//! persisted queries and cache headers for public answers.
//!
//! Each request goes the same way: refuse what is not a GraphQL request (415, 413, 400); for
//! one operation with no credential, answer from the cache of public answers when it holds it
//! (`crate::response_cache`); know who is calling (401 for a credential that is not valid);
//! prepare each operation once (its persisted query, its parsed document, its kind); decide (a
//! GET may only read: 405); execute; answer with the status, media type and cache headers the
//! outcome calls for, keeping a public answer in the cache.

mod answer;
mod params;

use std::{net::SocketAddr, sync::Arc};

use async_graphql::{ServerError, parser::types::OperationType};
use axum::{
    body::{Body, Bytes, to_bytes},
    extract::{ConnectInfo, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
};
use groundswell_domain::Actor;
use serde_json::Value;

use self::{
    answer::{Answer, Media, negotiate, refusal, send, strong_etag, wants_html},
    params::{Body as RequestBody, Params},
};
use super::{
    AppState,
    auth::{self, Presented, Refusal},
    persisted::PersistedQueryError,
};
use crate::{
    graphql::{
        RequestContext,
        error::assign_codes,
        new_loader,
        visibility::{self, Answered, Visibility},
    },
    response_cache::{self, Entry, Flight, Key, Lookup},
};
use groundswell_domain::generations::{Areas, Snapshot};

/// The header saying whether a cacheable answer came from the cache of public answers.
const X_CACHE: &str = "x-cache";

/// A GraphQL-shaped error body in `application/json`, for refusals made outside the handler
/// (the layers' 413, 408, 500, 405).
pub fn error_response(status: StatusCode, message: &str, code: &str) -> Response {
    refusal(Media::Json, status, message, code, None)
}

/// `GET /graphql`: GraphiQL for a browser (`Accept: text/html`); a query for anyone else.
pub async fn get(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    if wants_html(&headers) {
        return super::graphiql::page();
    }
    let media = negotiate(&headers);
    match params::from_query_string(raw.as_deref().unwrap_or_default()) {
        Ok(params) => {
            run(
                &state,
                peer,
                &headers,
                Method::Get,
                media,
                RequestBody::Single(params),
            )
            .await
        }
        Err(bad) => bad_request(media, &bad.message, bad.field),
    }
}

/// `POST /graphql`: one operation or a batch, in JSON.
pub async fn post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let media = negotiate(&headers);
    if !is_json(&headers) {
        return refusal(
            media,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Send GraphQL requests as JSON, with Content-Type: application/json.",
            "BAD_USER_INPUT",
            Some("Content-Type"),
        );
    }
    let Ok(bytes) = to_bytes(body, state.max_body_bytes).await else {
        return refusal(
            media,
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is too large. Requests are limited to 1 MiB.",
            "BAD_USER_INPUT",
            None,
        );
    };
    match params::from_json(&bytes) {
        Ok(body) => run(&state, peer, &headers, Method::Post, media, body).await,
        Err(bad) => bad_request(media, &bad.message, bad.field),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
}

/// `application/json` (any charset but UTF-8 refused), as the specification asks of a POST.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let utf8 = parts.all(|p| {
        p.trim()
            .strip_prefix("charset=")
            .is_none_or(|c| c.trim_matches('"').eq_ignore_ascii_case("utf-8"))
    });
    essence.eq_ignore_ascii_case("application/json") && utf8
}

fn bad_request(media: Media, message: &str, field: &str) -> Response {
    refusal(
        media,
        StatusCode::BAD_REQUEST,
        message,
        "BAD_USER_INPUT",
        Some(field),
    )
}

/// A response that never reached execution, under `application/graphql-response+json`.
#[derive(serde::Serialize)]
struct NoData<'a> {
    errors: &'a [ServerError],
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
}

/// One operation, ready to run or already answered.
enum Prepared {
    Run {
        request: Box<async_graphql::Request>,
        kind: Option<OperationType>,
        validation: Validation,
    },
    /// Failed before execution (no such persisted query, a document that does not parse).
    Refused(Box<async_graphql::Response>),
}

/// Whether full validation has accepted an operation's document with its operation name and
/// variables before (`parsed`), or what to note when it does now.
enum Validation {
    Passed,
    NotYet(Option<Box<ToNote>>),
}

/// What the parsed-document store notes once full validation accepts a request.
struct ToNote {
    text: String,
    operation_name: Option<String>,
    variables: String,
}

/// A cacheable operation that missed: its key, the generations read before it runs, and its
/// place as the one running it for identical requests (held until its answer is stored).
struct Miss {
    key: Key,
    snapshot: Snapshot,
    _flight: Option<Flight>,
}

/// What executing a request's operations gave.
struct Executed {
    /// Each operation's response, and whether it ran (rather than being refused in `prepare`).
    answers: Vec<(async_graphql::Response, bool)>,
    is_batch: bool,
    only_queries: bool,
    /// What the one cacheable operation read, for invalidating its cached answer.
    areas: Areas,
    visibility: Visibility,
}

async fn run(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    method: Method,
    media: Media,
    body: RequestBody,
) -> Response {
    let presented = auth::presented(headers, method == Method::Get);
    let mut body = body;
    let miss = match from_cache(state, &presented, &mut body).await {
        Cached::Hit(entry) => {
            let mut response = send(
                media,
                Answer {
                    status: StatusCode::OK,
                    body: entry.body.clone(),
                    public: true,
                    etag: Some(entry.etags[media.index()].clone()),
                },
                headers,
                method == Method::Get,
                state.public_cache_max_age_seconds,
            );
            response
                .headers_mut()
                .insert(X_CACHE, HeaderValue::from_static("HIT"));
            return response;
        }
        Cached::Miss(miss) => Some(miss),
        Cached::NotCacheable => None,
    };
    let actor = match caller(state, &presented, media).await {
        Ok(actor) => actor,
        Err(refused) => return refused,
    };

    let (is_batch, operations) = match body {
        RequestBody::Single(params) => (false, vec![params]),
        RequestBody::Batch(many) => (true, many),
    };
    let mut prepared = Vec::with_capacity(operations.len());
    for params in operations {
        match prepare(state, params) {
            Ok(one) => prepared.push(one),
            Err(bad) => return bad_request(media, &bad.message, bad.field),
        }
    }
    if let Some(refused) = refused_before_running(&mut prepared, is_batch, method, media) {
        return refused;
    }

    let context = RequestContext {
        actor,
        client_ip: Some(peer.ip()),
    };
    let executed = execute(state, prepared, is_batch, &context, miss.is_some()).await;
    respond(state, headers, method, media, &presented, executed, miss)
}

/// What the cache of public answers holds for a request.
enum Cached {
    Hit(Arc<Entry>),
    Miss(Miss),
    /// Not one anonymous operation, or the cache is off.
    NotCacheable,
}

/// The cache of public answers, for one anonymous operation: a hit is answered without
/// parsing or running anything; a miss remembers the generations before it runs. Identical
/// misses arriving together run once: the first leads (holding its flight until its answer
/// is stored), the others wait for it and then look again.
async fn from_cache(state: &AppState, presented: &Presented, body: &mut RequestBody) -> Cached {
    let (Some(cache), false, RequestBody::Single(params)) =
        (&state.response_cache, presented.is_presented(), body)
    else {
        return Cached::NotCacheable;
    };
    let Some(key) = cache_key(state, params) else {
        return Cached::NotCacheable;
    };
    let mut flight = None;
    let hit = match cache.begin(key) {
        Lookup::Hit(entry) => Some(entry),
        Lookup::Lead(lead) => {
            flight = Some(lead);
            None
        }
        Lookup::Follow(running) => cache.follow(&key, running).await,
    };
    match hit {
        Some(entry) => Cached::Hit(entry),
        None => Cached::Miss(Miss {
            key,
            snapshot: cache.snapshot(),
            _flight: flight,
        }),
    }
}

/// The refusal, before anything runs, of what may not run: writes sent with GET (405, as the
/// specification asks), a NUL in any text (400), operations past the cost limits (400).
fn refused_before_running(
    prepared: &mut [Prepared],
    is_batch: bool,
    method: Method,
    media: Media,
) -> Option<Response> {
    let writes = prepared.iter().any(
        |p| matches!(p, Prepared::Run { kind: Some(kind), .. } if *kind != OperationType::Query),
    );
    if method == Method::Get && writes {
        let mut response = refusal(
            media,
            StatusCode::METHOD_NOT_ALLOWED,
            "Only queries may be sent with GET; send mutations and subscriptions with POST.",
            "BAD_USER_INPUT",
            None,
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Some(response);
    }

    let run = prepared.iter().filter_map(|one| match one {
        Prepared::Run { request, .. } => Some(&**request),
        Prepared::Refused(_) => None,
    });
    if let Err(nul) = crate::graphql::limits::find_nul(run) {
        return Some(refusal(
            media,
            StatusCode::BAD_REQUEST,
            crate::graphql::limits::HoldsNul::MESSAGE,
            "BAD_USER_INPUT",
            nul.field.as_deref(),
        ));
    }
    if let Err(refused) = within_cost(prepared, is_batch) {
        return Some(refusal(
            media,
            StatusCode::BAD_REQUEST,
            &refused,
            "BAD_USER_INPUT",
            None,
        ));
    }
    None
}

/// Executes each operation that was not refused, in order, with its own loader.
async fn execute(
    state: &AppState,
    prepared: Vec<Prepared>,
    is_batch: bool,
    context: &RequestContext,
    cacheable: bool,
) -> Executed {
    let visibility = Visibility::new();
    let mut only_queries = true;
    let mut areas = Areas::ALL;
    let mut answers = Vec::with_capacity(prepared.len());
    for one in prepared {
        let (mut response, ran) = match one {
            Prepared::Refused(response) => (*response, false),
            Prepared::Run {
                mut request,
                kind,
                validation,
            } => {
                only_queries &= kind == Some(OperationType::Query);
                if cacheable {
                    let name = request.operation_name.clone();
                    areas = request.parsed_query().map_or(Areas::ALL, |document| {
                        response_cache::areas_read(document, name.as_deref())
                    });
                }
                // Each operation gets its own loader, so nothing cached for one caller reaches
                // another.
                let request = request
                    .data(context.clone())
                    .data(new_loader(state.db.clone()))
                    .data(visibility.clone());
                let response = match validation {
                    Validation::Passed => state.prevalidated_schema.execute(request).await,
                    Validation::NotYet(note) => {
                        let response = state.schema.execute(request).await;
                        if let Some(note) = note
                            && !failed_before_execution(&response)
                        {
                            state.parsed_documents.validated(
                                &note.text,
                                note.operation_name.as_deref(),
                                &note.variables,
                            );
                        }
                        response
                    }
                };
                (response, true)
            }
        };
        assign_codes(&mut response);
        answers.push((response, ran));
    }
    Executed {
        answers,
        is_batch,
        only_queries,
        areas,
        visibility,
    }
}

/// Answers with the status, media type and cache headers the outcome calls for, keeping a
/// public answer to a cacheable operation in the cache.
fn respond(
    state: &AppState,
    headers: &HeaderMap,
    method: Method,
    media: Media,
    presented: &Presented,
    executed: Executed,
    miss: Option<Miss>,
) -> Response {
    let answers = &executed.answers;
    let is_batch = executed.is_batch;
    let had_errors = answers.iter().any(|(r, _)| !r.errors.is_empty());
    let public = visibility::is_public(&Answered {
        credential_presented: presented.is_presented(),
        only_queries: executed.only_queries,
        had_errors,
        marked_private: executed.visibility.is_marked_private(),
    });
    let (body, before_execution) = match serialise(answers, is_batch, media) {
        Ok(written) => written,
        Err(err) => {
            tracing::error!(error = %err, "serialising a GraphQL response failed");
            return refusal(
                media,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side. Please try again.",
                "INTERNAL_SERVER_ERROR",
                None,
            );
        }
    };
    let status = if !is_batch && media == Media::GraphqlResponse && before_execution {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = Bytes::from(body);
    let miss = miss.filter(|_| public && !is_batch && status == StatusCode::OK);
    let mut etag = None;
    let stored = miss.is_some();
    if let (Some(miss), Some(cache)) = (miss, &state.response_cache) {
        let etags = Media::ALL.map(|m| strong_etag(m, &body));
        etag = Some(etags[media.index()].clone());
        cache.put(miss.key, body.clone(), etags, executed.areas, miss.snapshot);
    }
    let mut response = send(
        media,
        Answer {
            status,
            body,
            public,
            etag,
        },
        headers,
        method == Method::Get,
        state.public_cache_max_age_seconds,
    );
    if stored {
        response
            .headers_mut()
            .insert(X_CACHE, HeaderValue::from_static("MISS"));
    }
    response
}

/// The answers as one JSON body (an array for a batch), and whether any failed before
/// execution. Under `application/graphql-response+json` such an answer has no `data` key.
fn serialise(
    answers: &[(async_graphql::Response, bool)],
    is_batch: bool,
    media: Media,
) -> serde_json::Result<(Vec<u8>, bool)> {
    let mut before_execution = false;
    let mut body = Vec::with_capacity(1024);
    if is_batch {
        body.push(b'[');
    }
    for (n, (response, ran)) in answers.iter().enumerate() {
        let failed_early = !ran || failed_before_execution(response);
        before_execution |= failed_early;
        if n > 0 {
            body.push(b',');
        }
        if media == Media::GraphqlResponse && failed_early {
            // No `data` key at all: the request never reached execution.
            serde_json::to_writer(
                &mut body,
                &NoData {
                    errors: &response.errors,
                    extensions: &response.extensions,
                },
            )?;
        } else {
            serde_json::to_writer(&mut body, response)?;
        }
    }
    if is_batch {
        body.push(b']');
    }
    Ok((body, before_execution))
}

/// The cache key of one operation: its document (from the persisted-query store when only a
/// hash came, which is then no longer needed), operation name and variables. `None` when the
/// request has no query to run, or a persisted query that cannot be used (left for `prepare`
/// to refuse).
fn cache_key(state: &AppState, params: &mut Params) -> Option<Key> {
    if params.extensions.contains_key("persistedQuery") {
        let query = state
            .persisted
            .resolve(params.query.clone(), &params.extensions)
            .ok()??;
        params.query = Some(query);
        params.extensions.remove("persistedQuery");
    }
    let variables = serde_json::to_vec(&params.variables).ok()?;
    Some(Key::new(
        params.query.as_deref()?,
        params.operation_name.as_deref(),
        &variables,
    ))
}

/// The limits of `graphql::cost` (depth, introspection's own bounds, cost), over every
/// operation of the request together, on the documents parsed once in `prepare`.
fn within_cost(prepared: &mut [Prepared], is_batch: bool) -> Result<(), String> {
    let mut requests = Vec::new();
    for one in prepared.iter_mut() {
        if let Prepared::Run { request, .. } = one {
            requests.push(std::mem::replace(
                &mut **request,
                async_graphql::Request::new(""),
            ));
        }
    }
    let mut batch = match (is_batch, requests.len()) {
        (false, 1) => async_graphql::BatchRequest::Single(requests.remove(0)),
        _ => async_graphql::BatchRequest::Batch(requests),
    };
    let checked = crate::graphql::cost::check_batch(&mut batch);
    let mut back = match batch {
        async_graphql::BatchRequest::Single(one) => vec![one],
        async_graphql::BatchRequest::Batch(many) => many,
    }
    .into_iter();
    for one in prepared.iter_mut() {
        if let Prepared::Run { request, .. } = one
            && let Some(checked_request) = back.next()
        {
            **request = checked_request;
        }
    }
    checked
}

/// Who is calling: a credential that is presented but not valid is refused with 401.
async fn caller(state: &AppState, presented: &Presented, media: Media) -> Result<Actor, Response> {
    match auth::caller(&state.db, presented).await {
        Ok(actor) => Ok(actor),
        Err(Refusal::Invalid) => {
            let mut response = refusal(
                media,
                StatusCode::UNAUTHORIZED,
                auth::INVALID_CREDENTIAL,
                "UNAUTHENTICATED",
                None,
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            Err(response)
        }
        Err(Refusal::Unavailable) => Err(refusal(
            media,
            StatusCode::SERVICE_UNAVAILABLE,
            "Groundswell cannot reach its database just now. Please try again.",
            "INTERNAL_SERVER_ERROR",
            None,
        )),
    }
}

/// One operation's query (from the persisted-query store when only a hash came), parsed once,
/// and what kind of operation it runs. A request with no query at all is refused with 400.
fn prepare(state: &AppState, params: Params) -> Result<Prepared, params::Malformed> {
    let query = match state.persisted.resolve(params.query, &params.extensions) {
        Ok(Some(query)) => query,
        Ok(None) => {
            return Err(params::Malformed {
                field: "query",
                message: "The request has no query: send the GraphQL document as `query`."
                    .to_owned(),
            });
        }
        Err(PersistedQueryError::NotFound) => {
            return Ok(Prepared::Refused(Box::new(refused_with(
                "PersistedQueryNotFound",
                "PERSISTED_QUERY_NOT_FOUND",
                None,
            ))));
        }
        Err(PersistedQueryError::Invalid { field, message }) => {
            return Ok(Prepared::Refused(Box::new(refused_with(
                &message,
                "BAD_USER_INPUT",
                Some(field),
            ))));
        }
    };
    // The same text parses to the same document: parse it once per server, not per request.
    // Every check of the document still runs on each request (`run`, and execution's own),
    // validation in full until it has accepted the same operation name and variables once.
    let variables = serde_json::to_string(&params.variables).unwrap_or_default();
    let cached = state
        .parsed_documents
        .get(&query, params.operation_name.as_deref(), &variables);
    let text_to_keep = cached.is_none().then(|| query.clone());
    let validation = match &cached {
        Some(found) if found.validated => Validation::Passed,
        Some(_) => Validation::NotYet(Some(Box::new(ToNote {
            text: query.clone(),
            operation_name: params.operation_name.clone(),
            variables,
        }))),
        // Noted from the next request on, once the document is kept.
        None => Validation::NotYet(None),
    };
    let mut request = async_graphql::Request::new(query).variables(
        async_graphql::Variables::from_json(Value::Object(params.variables)),
    );
    if let Some(found) = cached {
        request.set_parsed_query(found.document);
    }
    if let Some(name) = &params.operation_name {
        request = request.operation_name(name.clone());
    }
    request.extensions =
        serde_json::from_value(Value::Object(params.extensions)).unwrap_or_default();
    let kind = match request.parsed_query() {
        Ok(document) => {
            if let Some(text) = &text_to_keep {
                state.parsed_documents.insert(text, document);
            }
            operation_kind(document, params.operation_name.as_deref())
        }
        Err(error) => {
            return Ok(Prepared::Refused(Box::new(
                async_graphql::Response::from_errors(vec![error]),
            )));
        }
    };
    Ok(Prepared::Run {
        request: Box::new(request),
        kind,
        validation,
    })
}

/// The kind of the operation a document will run, when it can be told (execution reports an
/// unknown or missing operation name itself).
fn operation_kind(
    document: &async_graphql::parser::types::ExecutableDocument,
    name: Option<&str>,
) -> Option<OperationType> {
    use async_graphql::parser::types::DocumentOperations;
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => Some(operation.node.ty),
        (DocumentOperations::Multiple(operations), Some(name)) => {
            operations.get(name).map(|operation| operation.node.ty)
        }
        // A named operation alone in its document: the one that runs.
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => operations
            .values()
            .next()
            .map(|operation| operation.node.ty),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

fn refused_with(message: &str, code: &str, field: Option<&str>) -> async_graphql::Response {
    let mut error = ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", code);
    if let Some(field) = field {
        extensions.set("field", field);
    }
    error.extensions = Some(extensions);
    async_graphql::Response::from_errors(vec![error])
}

/// A response that failed before any resolver ran: validation, variables that do not coerce,
/// limits. No data, and every error about the request as a whole (no path).
fn failed_before_execution(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty())
}

/// `GET /graphql/ws`: subscriptions over graphql-transport-ws (or the older graphql-ws). The
/// client authenticates in `connection_init` with `{"Authorization": "Bearer <token>"}`; a
/// credential that is not valid closes the connection with the reason `UNAUTHENTICATED: …`.
pub async fn subscriptions(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    protocol: async_graphql_axum::GraphQLProtocol,
    upgrade: axum::extract::WebSocketUpgrade,
) -> Response {
    // One address holds at most its share of connections, for as long as each stays open.
    let Some(slot) = state.websocket_connections.try_open(peer.ip()) else {
        return error_response(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many WebSocket connections from your address: at most {} at once. Close one first.",
                state.websocket_connections.per_address()
            ),
            "RATE_LIMITED",
        );
    };
    let schema = state.websocket_schema.clone();
    let subscriptions = state.subscriptions_per_connection;
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| async move {
            async_graphql_axum::GraphQLWebSocket::new(stream, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let presented = ["Authorization", "authorization"]
                        .iter()
                        .find_map(|key| payload.get(key))
                        .map_or(Presented::Nothing, |value| {
                            auth::bearer(value.as_str().unwrap_or_default())
                        });
                    let actor = match auth::caller(&state.db, &presented).await {
                        Ok(actor) => actor,
                        // A WebSocket close reason holds at most 123 bytes.
                        Err(Refusal::Invalid) => {
                            return Err(async_graphql::Error::new(
                                "UNAUTHENTICATED: the session or API token is not valid",
                            ));
                        }
                        Err(Refusal::Unavailable) => {
                            return Err(async_graphql::Error::new(
                                "Groundswell cannot reach its database just now.",
                            ));
                        }
                    };
                    let credential = match presented {
                        Presented::Token(token) => Some(token),
                        _ => None,
                    };
                    let mut data = async_graphql::Data::default();
                    data.insert(crate::graphql::websocket::OverWebSocket { credential });
                    data.insert(crate::graphql::websocket::SubscriptionSlots::new(
                        subscriptions,
                    ));
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
                .await;
            drop(slot);
        })
}
