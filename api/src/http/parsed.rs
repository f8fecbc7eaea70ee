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

pub struct ParsedDocuments {
    inner: Mutex<Store>,
}

struct Store {
    /// Each document with the weight it was counted at.
    /// Shared, so the lock is held for a pointer's copy, never for a document's deep clone.
    documents: LruCache<String, (Arc<ExecutableDocument>, usize)>,
    bytes: usize,
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
        .saturating_add(
            operations
                .saturating_add(fragments)
                .saturating_mul(BYTES_PER_NODE),
        )
}

impl ParsedDocuments {
    /// The document `text` parsed to, when it is kept.
    pub fn get(&self, text: &str) -> Option<ExecutableDocument> {
        let kept = {
            let mut store = self.inner.lock().ok()?;
            store
                .documents
                .get(text)
                .map(|(document, _)| Arc::clone(document))
        };
        kept.map(|document| ExecutableDocument::clone(&document))
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
                Some((_, (_, old))) => store.bytes -= old,
                None => break,
            }
        }
        if let Some((_, (_, old))) = store.documents.push(key, (document, weight)) {
            store.bytes -= old;
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
        assert!(documents.get(text).is_none());
        let parsed = parse_query(text).unwrap_or_else(|e| panic!("{e}"));
        documents.insert(text, &parsed);
        let kept = documents.get(text).map(|d| format!("{d:?}"));
        assert_eq!(kept, Some(format!("{parsed:?}")));
        assert!(
            documents
                .get("{ pledges { edges { node { id } } } }")
                .is_none()
        );
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
