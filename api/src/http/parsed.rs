//! Parsed GraphQL documents, kept by their text: a page sends the same query text on every
//! request, and parsing it again each time was a measurable share of a small read's work.
//!
//! Only parsing is saved. Each request still has its document checked as before (NUL bytes,
//! depth and cost against its own variables, validation by async-graphql), so a document that
//! is refused is refused every time it comes, cached or not. Text that does not parse is not
//! kept.
//!
//! `lru` behind a mutex, as for the persisted queries (`persisted`): a lookup is a hash of the
//! text and a probe, and the clone handed to the request is far cheaper than parsing. Bounded in
//! entries and in bytes, estimated from above: a parsed document holds each selection as a node
//! of a few hundred bytes, however short its text (`{ a a a … }` is two characters a field),
//! so the weight counts the selections as well as the text. A hostile client sending many
//! different documents therefore cannot make the store hold more than [`MAX_BYTES`] or so.
//!
//! Each document also remembers the operation names and variables with which async-graphql's
//! full validation has accepted it. Validation is a pure function of the schema, the document,
//! the operation name and the variables, so the same request passes it again: such a request
//! runs on the schema that skips the rules already passed (`ValidationMode::Fast`, which still
//! computes depth and complexity against their limits). Anything not seen to pass, including
//! any request that was refused, is validated in full every time.

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex},
};

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Selection, SelectionSet,
};
use lru::LruCache;

/// Most documents kept.
const MAX_ENTRIES: usize = 1_000;
/// Most estimated bytes kept, all documents together.
const MAX_BYTES: usize = 32 * 1024 * 1024;
/// Bytes counted per byte of text (names, values and the text kept as the key).
const BYTES_PER_CHARACTER: usize = 32;
/// Bytes counted per selection, argument or directive (its node, position and vectors).
const BYTES_PER_NODE: usize = 512;
/// Most operation name and variables pairs remembered as validated, per document.
const MAX_VALIDATED: usize = 16;
/// Longest operation name and variables (in JSON), together, remembered as validated.
const MAX_VALIDATED_LENGTH: usize = 256;
/// Bytes counted per document for what it remembers as validated, at its most.
const VALIDATED_BYTES: usize = MAX_VALIDATED * (MAX_VALIDATED_LENGTH + 64);

pub struct ParsedDocuments {
    inner: Mutex<Store>,
}

struct Store {
    documents: LruCache<String, Kept>,
    bytes: usize,
}

struct Kept {
    /// Shared, so the lock is held for a pointer's copy, never for a document's deep clone.
    document: Arc<ExecutableDocument>,
    /// The weight it was counted at.
    weight: usize,
    /// Operation names and variables (JSON text) with which full validation accepted it.
    validated: Vec<(Option<String>, String)>,
}

impl Kept {
    /// Whether full validation accepted it with `operation_name` and `variables`.
    fn passed(&self, operation_name: Option<&str>, variables: &str) -> bool {
        self.validated
            .iter()
            .any(|(name, vars)| name.as_deref() == operation_name && vars == variables)
    }
}

/// A kept document, and whether full validation has accepted it with the request's operation
/// name and variables.
pub struct Found {
    pub document: ExecutableDocument,
    pub validated: bool,
}

impl Default for ParsedDocuments {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Store {
                documents: LruCache::new(
                    NonZeroUsize::new(MAX_ENTRIES).unwrap_or(NonZeroUsize::MIN),
                ),
                bytes: 0,
            }),
        }
    }
}

/// An estimate from above of what keeping `document`, parsed from `text`, costs in bytes.
fn weight(text: &str, document: &ExecutableDocument) -> usize {
    fn nodes(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => {
                    1 + field.node.arguments.len()
                        + field.node.directives.len()
                        + nodes(&field.node.selection_set.node)
                }
                Selection::FragmentSpread(spread) => 1 + spread.node.directives.len(),
                Selection::InlineFragment(inline) => {
                    1 + inline.node.directives.len() + nodes(&inline.node.selection_set.node)
                }
            })
            .fold(0, usize::saturating_add)
    }
    let operations: usize = match &document.operations {
        DocumentOperations::Single(op) => {
            1 + op.node.variable_definitions.len()
                + op.node.directives.len()
                + nodes(&op.node.selection_set.node)
        }
        DocumentOperations::Multiple(ops) => ops
            .values()
            .map(|op| {
                1 + op.node.variable_definitions.len()
                    + op.node.directives.len()
                    + nodes(&op.node.selection_set.node)
            })
            .fold(0, usize::saturating_add),
    };
    let fragments: usize = document
        .fragments
        .values()
        .map(|f| 1 + f.node.directives.len() + nodes(&f.node.selection_set.node))
        .fold(0, usize::saturating_add);
    text.len()
        .saturating_mul(BYTES_PER_CHARACTER)
        .saturating_add(VALIDATED_BYTES)
        .saturating_add(
            operations
                .saturating_add(fragments)
                .saturating_mul(BYTES_PER_NODE),
        )
}

impl ParsedDocuments {
    /// The document `text` parsed to, when it is kept, and whether full validation accepted it
    /// with `operation_name` and `variables` (JSON text).
    pub fn get(&self, text: &str, operation_name: Option<&str>, variables: &str) -> Option<Found> {
        let (document, validated) = {
            let mut store = self.inner.lock().ok()?;
            let kept = store.documents.get(text)?;
            (
                Arc::clone(&kept.document),
                kept.passed(operation_name, variables),
            )
        };
        Some(Found {
            document: ExecutableDocument::clone(&document),
            validated,
        })
    }

    /// Notes that full validation accepted the kept document `text` with `operation_name` and
    /// `variables` (JSON text). Long variables are not noted (they are validated each time), and
    /// a document notes at most [`MAX_VALIDATED`] pairs, the oldest making way.
    pub fn validated(&self, text: &str, operation_name: Option<&str>, variables: &str) {
        if operation_name.map_or(0, str::len) + variables.len() > MAX_VALIDATED_LENGTH {
            return;
        }
        let Ok(mut store) = self.inner.lock() else {
            return;
        };
        let Some(kept) = store.documents.peek_mut(text) else {
            return;
        };
        if kept.passed(operation_name, variables) {
            return;
        }
        if kept.validated.len() >= MAX_VALIDATED {
            kept.validated.remove(0);
        }
        kept.validated
            .push((operation_name.map(str::to_owned), variables.to_owned()));
    }

    /// Keeps `document`, the parse of `text`, dropping the least recently used to make room.
    pub fn insert(&self, text: &str, document: &ExecutableDocument) {
        let weight = weight(text, document);
        if weight > MAX_BYTES {
            return;
        }
        // Copied before the lock is taken, so other requests never wait on it.
        let document = Arc::new(document.clone());
        let key = text.to_owned();
        let Ok(mut store) = self.inner.lock() else {
            return;
        };
        if store.documents.contains(text) {
            store.documents.promote(text);
            return;
        }
        while store.bytes + weight > MAX_BYTES {
            match store.documents.pop_lru() {
                Some((_, old)) => store.bytes -= old.weight,
                None => break,
            }
        }
        let kept = Kept {
            document,
            weight,
            validated: Vec::new(),
        };
        if let Some((_, old)) = store.documents.push(key, kept) {
            store.bytes -= old.weight;
        }
        store.bytes += weight;
    }

    /// How many documents are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().map_or(0, |store| store.documents.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    #[test]
    fn a_kept_document_is_the_parse_of_its_text() {
        let documents = ParsedDocuments::default();
        let text = "query Wall { pledges { edges { node { id } } } }";
        assert!(documents.get(text, None, "{}").is_none());
        let parsed = parse_query(text).unwrap_or_else(|e| panic!("{e}"));
        documents.insert(text, &parsed);
        let kept = documents
            .get(text, None, "{}")
            .map(|found| format!("{:?}", found.document));
        assert_eq!(kept, Some(format!("{parsed:?}")));
        assert!(
            documents
                .get("{ pledges { edges { node { id } } } }", None, "{}")
                .is_none()
        );
    }

    #[test]
    fn validation_is_remembered_only_for_the_same_operation_and_variables() {
        let documents = ParsedDocuments::default();
        let text = "query Page($slug: String!) { gathering(slug: $slug) { id } }";
        let parsed = parse_query(text).unwrap_or_else(|e| panic!("{e}"));
        documents.insert(text, &parsed);
        let validated = |name: Option<&str>, vars: &str| {
            documents
                .get(text, name, vars)
                .is_some_and(|found| found.validated)
        };
        assert!(!validated(Some("Page"), r#"{"slug":"a"}"#));
        documents.validated(text, Some("Page"), r#"{"slug":"a"}"#);
        assert!(validated(Some("Page"), r#"{"slug":"a"}"#));
        assert!(!validated(Some("Page"), r#"{"slug":"b"}"#));
        assert!(!validated(None, r#"{"slug":"a"}"#));
        let long = format!(r#"{{"slug":"{}"}}"#, "x".repeat(MAX_VALIDATED_LENGTH));
        documents.validated(text, Some("Page"), &long);
        assert!(!validated(Some("Page"), &long));
        for n in 0..MAX_VALIDATED {
            documents.validated(text, Some("Page"), &format!(r#"{{"slug":"{n}"}}"#));
        }
        assert!(
            !validated(Some("Page"), r#"{"slug":"a"}"#),
            "the oldest made way"
        );
        assert!(validated(Some("Page"), r#"{"slug":"0"}"#));
        // Nothing is noted for a document not kept.
        documents.validated("{ changes { title } }", None, "{}");
        assert!(documents.get("{ changes { title } }", None, "{}").is_none());
    }

    #[test]
    fn many_short_fields_weigh_more_than_their_text() {
        let text = format!("{{ {} }}", "a ".repeat(10_000));
        let parsed = parse_query(&text).unwrap_or_else(|e| panic!("{e}"));
        assert!(weight(&text, &parsed) >= 10_000 * BYTES_PER_NODE);
    }

    #[test]
    fn the_store_is_bounded_in_bytes() {
        let documents = ParsedDocuments::default();
        let long = format!("{{ a{} }}", "b".repeat(MAX_BYTES / BYTES_PER_CHARACTER / 3));
        let parsed = parse_query(&long).unwrap_or_else(|e| panic!("{e}"));
        for n in 0..5 {
            documents.insert(&format!("{long} # {n}"), &parsed);
        }
        assert!(documents.len() <= 3, "{} documents kept", documents.len());
        let store = documents.inner.lock().unwrap_or_else(|e| panic!("{e}"));
        assert!(store.bytes <= MAX_BYTES);
    }
}
