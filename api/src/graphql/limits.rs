//! How many items a list in an input or argument may hold. A list past its maximum is refused
//! naming the field, before anything reaches the database; each field's description gives its
//! maximum.

use super::{ApiError, ApiResult};

/// Lists of the five changes: each at most once.
pub const MAX_CHANGES: usize = 5;
/// Lists of access requirements: each of the nine at most once.
pub const MAX_ACCESS_REQUIREMENTS: usize = 9;

/// Text holding the NUL character somewhere in a request: no field has a use for it, and
/// PostgreSQL cannot store or even compare it.
pub struct HoldsNul {
    /// The input field (variable or input object field) that holds it, when it came in a
    /// variable.
    pub field: Option<String>,
}

impl HoldsNul {
    pub const MESSAGE: &'static str =
        "Text in this request holds the NUL character (U+0000), which no field accepts.";
}

/// Refuses text holding the NUL character anywhere in these requests (in a query or its
/// variables), naming the field it came in when it came in a variable.
pub fn find_nul<'a>(
    requests: impl IntoIterator<Item = &'a async_graphql::Request>,
) -> Result<(), HoldsNul> {
    /// The innermost field name around a NUL in `value`, if it holds one.
    fn nul_in(name: &str, value: &async_graphql::Value) -> Option<String> {
        match value {
            async_graphql::Value::String(text) => text.contains('\0').then(|| name.to_owned()),
            async_graphql::Value::List(items) => items.iter().find_map(|item| nul_in(name, item)),
            async_graphql::Value::Object(fields) => fields.iter().find_map(|(key, value)| {
                if key.contains('\0') {
                    Some(name.to_owned())
                } else {
                    nul_in(key, value)
                }
            }),
            _ => None,
        }
    }
    for request in requests {
        let in_query = request.query.contains('\0')
            || request.query.contains("\\u0000")
            || request.query.contains("\\u{0}");
        if in_query {
            return Err(HoldsNul { field: None });
        }
        if let Some(field) = request
            .variables
            .iter()
            .find_map(|(name, value)| nul_in(name, value))
        {
            return Err(HoldsNul { field: Some(field) });
        }
    }
    Ok(())
}

/// [`find_nul`] over a batch, as a refusal's message.
pub fn refuse_nul(batch: &async_graphql::BatchRequest) -> Result<(), String> {
    find_nul(batch.iter()).map_err(|_| HoldsNul::MESSAGE.to_owned())
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
