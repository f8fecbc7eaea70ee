//! Relay connections over domain pages: opaque cursors, `pageInfo` and `totalCount`.

use async_graphql::{
    OutputType, SimpleObject,
    connection::{Connection, Edge},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use groundswell_domain::page::{Page, PageRequest};
use uuid::Uuid;

use super::{ApiError, ApiResult, error::FieldContext};

#[derive(SimpleObject)]
pub struct TotalCount {
    /// How many items the whole list holds, across all pages.
    pub total_count: i64,
}

pub type Paged<T> = Connection<String, T, TotalCount>;

fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

fn decode_cursor(cursor: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    Uuid::from_slice(&bytes).ok()
}

/// Validates `first` and `after` into a page request, which counts the whole list only when
/// the query asks for `totalCount`.
pub fn page_request(
    ctx: &async_graphql::Context<'_>,
    first: Option<i32>,
    after: Option<String>,
) -> ApiResult<PageRequest> {
    let after = match after {
        Some(cursor) => Some(
            decode_cursor(&cursor)
                .ok_or_else(|| ApiError::bad_input("after", "is not a cursor from this list"))?,
        ),
        None => None,
    };
    Ok(PageRequest::new(first, after)
        .field("first")?
        .counting(ctx.look_ahead().field("totalCount").exists()))
}

/// Builds a connection from a page, each node's cursor made from its id.
pub fn connection<D, T: OutputType>(
    page: Page<D>,
    had_cursor: bool,
    id: impl Fn(&D) -> Uuid,
    mut node: impl FnMut(D) -> T,
) -> Paged<T> {
    let mut connection = Connection::with_additional_fields(
        had_cursor,
        page.has_next_page,
        TotalCount {
            // Counted whenever the query asks for it, so `None` is never shown.
            total_count: page
                .total_count
                .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX)),
        },
    );
    connection.edges.extend(
        page.items
            .into_iter()
            .map(|item| Edge::new(encode_cursor(id(&item)), node(item))),
    );
    connection
}
