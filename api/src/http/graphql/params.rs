//! GraphQL-over-HTTP request parameters (`query`, `operationName`, `variables`, `extensions`)
//! from a POST body in JSON or a GET's query string, each checked for its type, so a malformed
//! request is a 400 that names the parameter rather than something executed.

use serde_json::{Map, Value};

use crate::graphql::MAX_BATCH;

/// One operation's parameters, as sent.
#[derive(Debug, Default)]
pub struct Params {
    pub query: Option<String>,
    pub operation_name: Option<String>,
    pub variables: Map<String, Value>,
    pub extensions: Map<String, Value>,
}

/// A POST body: one operation, or a batch of them (a JSON array).
#[derive(Debug)]
pub enum Body {
    Single(Params),
    Batch(Vec<Params>),
}

/// A request that is not a GraphQL-over-HTTP request: HTTP 400.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed {
    /// The parameter at fault, for `extensions.field`.
    pub field: &'static str,
    pub message: String,
}

fn malformed(field: &'static str, message: impl Into<String>) -> Malformed {
    Malformed {
        field,
        message: message.into(),
    }
}

/// Reads a POST body.
pub fn from_json(bytes: &[u8]) -> Result<Body, Malformed> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(malformed(
            "body",
            "The request body is empty: send {\"query\": \"…\"} in JSON.",
        ));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|err| {
        malformed(
            "body",
            format!("The request body is not a GraphQL request in JSON: {err}."),
        )
    })?;
    match value {
        Value::Object(fields) => Ok(Body::Single(from_object(fields)?)),
        Value::Array(items) => {
            if items.is_empty() || items.len() > MAX_BATCH {
                return Err(malformed(
                    "body",
                    format!("A batch may hold 1 to {MAX_BATCH} operations."),
                ));
            }
            let params = items
                .into_iter()
                .map(|item| match item {
                    Value::Object(fields) => from_object(fields),
                    _ => Err(malformed(
                        "body",
                        "Each operation of a batch must be a JSON object.",
                    )),
                })
                .collect::<Result<_, _>>()?;
            Ok(Body::Batch(params))
        }
        _ => Err(malformed(
            "body",
            "The request body must be a JSON object (or an array of them, for a batch).",
        )),
    }
}

fn from_object(mut fields: Map<String, Value>) -> Result<Params, Malformed> {
    Ok(Params {
        query: optional_string(fields.remove("query"), "query")?,
        operation_name: optional_string(fields.remove("operationName"), "operationName")?,
        variables: optional_map(fields.remove("variables"), "variables")?,
        extensions: optional_map(fields.remove("extensions"), "extensions")?,
    })
}

fn optional_string(value: Option<Value>, field: &'static str) -> Result<Option<String>, Malformed> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(malformed(field, format!("{field} must be a string."))),
    }
}

fn optional_map(
    value: Option<Value>,
    field: &'static str,
) -> Result<Map<String, Value>, Malformed> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(malformed(field, format!("{field} must be a JSON object."))),
    }
}

/// Reads a GET's query string: `query`, `operationName`, and `variables` and `extensions` as
/// JSON text.
pub fn from_query_string(raw: &str) -> Result<Params, Malformed> {
    let mut params = Params::default();
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        let field: &'static str = match key.as_ref() {
            "query" => "query",
            "operationName" => "operationName",
            "variables" => "variables",
            "extensions" => "extensions",
            _ => continue,
        };
        if seen.iter().any(|s| s == field) {
            return Err(malformed(
                field,
                format!("{field} is given more than once."),
            ));
        }
        seen.push(field.to_owned());
        let value = value.into_owned();
        match field {
            "query" => params.query = Some(value),
            "operationName" => params.operation_name = (!value.is_empty()).then_some(value),
            _ => {
                let parsed = if value.trim().is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(&value)
                        .map_err(|err| malformed(field, format!("{field} is not JSON: {err}.")))?
                };
                let map = optional_map(Some(parsed), field)?;
                if field == "variables" {
                    params.variables = map;
                } else {
                    params.extensions = map;
                }
            }
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_of_the_wrong_type_name_themselves() {
        for (body, field) in [
            (r#"{"query": 0}"#, "query"),
            (
                r#"{"query": "{ a }", "operationName": ["x"]}"#,
                "operationName",
            ),
            (r#"{"query": "{ a }", "variables": "x"}"#, "variables"),
            (r#"{"query": "{ a }", "extensions": false}"#, "extensions"),
            (r#"{ "not a JSON"#, "body"),
            ("", "body"),
            ("[]", "body"),
            ("7", "body"),
        ] {
            assert_eq!(
                from_json(body.as_bytes())
                    .map(|_| ())
                    .err()
                    .map(|e| e.field),
                Some(field),
                "{body}"
            );
        }
    }

    #[test]
    fn nulls_are_as_good_as_absent() {
        let Ok(Body::Single(params)) = from_json(
            br#"{"query": "{ a }", "operationName": null, "variables": null, "extensions": null}"#,
        ) else {
            panic!("not parsed")
        };
        assert_eq!(params.query.as_deref(), Some("{ a }"));
        assert!(params.operation_name.is_none() && params.variables.is_empty());
    }

    #[test]
    fn a_query_string_carries_json_variables() {
        let params = from_query_string(
            "query=query%20Q(%24n%3A%20String!)%20%7B%20a%20%7D&variables=%7B%22n%22%3A%22x%22%7D&operationName=Q",
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(params.operation_name.as_deref(), Some("Q"));
        assert_eq!(params.variables.get("n"), Some(&Value::String("x".into())));
        assert_eq!(
            from_query_string("query=a&query=b").err().map(|e| e.field),
            Some("query")
        );
        assert_eq!(
            from_query_string("query=a&variables=%5B1%5D")
                .err()
                .map(|e| e.field),
            Some("variables")
        );
    }
}
