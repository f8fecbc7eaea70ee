//! Keyset pages for Relay connections. Rows are ordered by their v7 id (creation order), so a
//! cursor is just the last id seen and a page never skips or repeats a row when rows are added.

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
