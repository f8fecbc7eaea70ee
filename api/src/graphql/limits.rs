//! How many items a list in an input or argument may hold. A list past its maximum is refused
//! naming the field, before anything reaches the database; each field's description gives its
//! maximum.

use super::{ApiError, ApiResult};

/// Lists of the five changes: each at most once.
pub const MAX_CHANGES: usize = 5;
/// Lists of access requirements: each of the nine at most once.
pub const MAX_ACCESS_REQUIREMENTS: usize = 9;

/// Refuses text holding the NUL character anywhere in a request (in its query or its
/// variables): no field has a use for it, and PostgreSQL cannot store or even compare it.
pub fn refuse_nul(batch: &async_graphql::BatchRequest) -> Result<(), String> {
    fn holds_nul(value: &async_graphql::Value) -> bool {
        match value {
            async_graphql::Value::String(text) => text.contains('\0'),
            async_graphql::Value::List(items) => items.iter().any(holds_nul),
            async_graphql::Value::Object(fields) => fields
                .iter()
                .any(|(name, value)| name.contains('\0') || holds_nul(value)),
            _ => false,
        }
    }
    for request in batch.iter() {
        let in_query = request.query.contains('\0')
            || request.query.contains("\\u0000")
            || request.query.contains("\\u{0}");
        if in_query || request.variables.iter().any(|(_, value)| holds_nul(value)) {
            return Err(
                "Text in this request holds the NUL character (U+0000), which no field accepts."
                    .to_owned(),
            );
        }
    }
    Ok(())
}

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
