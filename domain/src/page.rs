//! Keyset pages for Relay connections. Rows are ordered by their v7 id (creation order), so a
//! cursor is just the last id seen and a page never skips or repeats a row when rows are added.

use sea_orm::{ConnectionTrait, DbErr, EntityTrait, QueryTrait, Select, Statement};
use uuid::Uuid;

use crate::InvalidInput;

/// The largest page a client may ask for.
pub const MAX_PAGE_SIZE: u64 = 100;
pub const DEFAULT_PAGE_SIZE: u64 = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub first: u64,
    pub after: Option<Uuid>,
    /// Whether to count the whole list too: a statement of its own, so only when asked.
    pub count_total: bool,
}

impl PageRequest {
    pub fn new(first: Option<i32>, after: Option<Uuid>) -> Result<Self, InvalidInput> {
        let first = match first {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if n >= 0 && n as u64 <= MAX_PAGE_SIZE => n as u64,
            Some(_) => {
                return Err(InvalidInput::new(format!(
                    "must be between 0 and {MAX_PAGE_SIZE}"
                )));
            }
        };
        Ok(Self {
            first,
            after,
            count_total: true,
        })
    }

    /// `statement` (a page's rows in order, with no limit of its own) cut to one row past the
    /// page, so `Page::from_rows` can tell whether another follows.
    ///
    /// The number is written into the statement's text, not bound. PostgreSQL plans a prepared
    /// statement afresh on every execution while its generic plan looks costlier than the
    /// custom ones, and with `LIMIT $n` unknown it assumes a tenth of the rows, so it always
    /// did: half of a pledge wall page's database time (EXPLAIN ANALYZE EXECUTE: 0.55 ms
    /// planning, 0.55 ms running) went to planning it again. With the number in the text the
    /// generic plan is the custom one and is kept after five runs. It is a number checked
    /// against `MAX_PAGE_SIZE`, never text from a client; each page size is its own prepared
    /// statement.
    pub fn limit_rows(&self, mut statement: Statement) -> Statement {
        statement.sql.push_str(" LIMIT ");
        statement.sql.push_str(&(self.first + 1).to_string());
        statement
    }

    /// The same request, counting the whole list only when `count_total`.
    pub fn counting(self, count_total: bool) -> Self {
        Self {
            count_total,
            ..self
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next_page: bool,
    /// How many the whole list holds; `None` when the request did not ask.
    pub total_count: Option<u64>,
}

/// The rows of one page of `query` (in order, with no limit of its own): at most one past the
/// page, cut as [`PageRequest::limit_rows`] says.
pub async fn rows<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    query: Select<E>,
    page: &PageRequest,
) -> Result<Vec<E::Model>, DbErr> {
    let statement = page.limit_rows(query.build(conn.get_database_backend()));
    E::find().from_raw_sql(statement).all(conn).await
}

impl<T> Page<T> {
    /// Builds a page from up to `first + 1` rows: the extra row only says another page exists.
    pub fn from_rows(mut rows: Vec<T>, request: PageRequest, total_count: Option<u64>) -> Self {
        let has_next_page = rows.len() as u64 > request.first;
        rows.truncate(request.first as usize);
        Self {
            items: rows,
            has_next_page,
            total_count,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            has_next_page: self.has_next_page,
            total_count: self.total_count,
        }
    }
}
