//! How many items a list in an input or argument may hold. A list past its maximum is refused
//! naming the field, before anything reaches the database; each field's description gives its
//! maximum.

use super::{ApiError, ApiResult};

/// Lists of the five changes: each at most once.
pub const MAX_CHANGES: usize = 5;
/// Lists of access requirements: each of the nine at most once.
pub const MAX_ACCESS_REQUIREMENTS: usize = 9;

/// `items`, unless it holds more than `max`.
pub fn at_most<T>(field: &str, items: Vec<T>, max: usize) -> ApiResult<Vec<T>> {
    if items.len() > max {
        return Err(ApiError::bad_input(
            field,
            format!("may hold at most {max} items, not {}", items.len()),
        ));
    }
    Ok(items)
}

/// A filter's list of values, at most `max`, each once: what reaches the database as bound
/// parameters.
pub fn filter_values<T: Ord>(field: &str, items: Option<Vec<T>>, max: usize) -> ApiResult<Vec<T>> {
    let mut items = at_most(field, items.unwrap_or_default(), max)?;
    items.sort();
    items.dedup();
    Ok(items)
}
