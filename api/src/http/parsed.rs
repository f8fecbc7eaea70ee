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
//! entries and in an estimate of bytes (the text's length times [`BYTES_PER_CHARACTER`], since a
//! parsed document holds every name and position of its text in its own allocations).

use std::{num::NonZeroUsize, sync::Mutex};

use async_graphql::parser::types::ExecutableDocument;
use lru::LruCache;

/// Most documents kept.
const MAX_ENTRIES: usize = 1_000;
/// Most estimated bytes kept, all documents together.
const MAX_BYTES: usize = 32 * 1024 * 1024;
/// The estimated size of a parsed document per byte of its text.
const BYTES_PER_CHARACTER: usize = 16;

pub struct ParsedDocuments {
    inner: Mutex<Store>,
}

struct Store {
    documents: LruCache<String, ExecutableDocument>,
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

fn weight(text: &str) -> usize {
    text.len().saturating_mul(BYTES_PER_CHARACTER)
}

impl ParsedDocuments {
    /// The document `text` parsed to, when it is kept.
    pub fn get(&self, text: &str) -> Option<ExecutableDocument> {
        let mut store = self.inner.lock().ok()?;
        store.documents.get(text).cloned()
    }

    /// Keeps `document`, the parse of `text`, dropping the least recently used to make room.
    pub fn insert(&self, text: &str, document: &ExecutableDocument) {
        let weight = weight(text);
        if weight > MAX_BYTES {
            return;
        }
        let Ok(mut store) = self.inner.lock() else {
            return;
        };
        if store.documents.contains(text) {
            store.documents.promote(text);
            return;
        }
        while store.bytes + weight > MAX_BYTES {
            match store.documents.pop_lru() {
                Some((old, _)) => store.bytes -= self::weight(&old),
                None => break,
            }
        }
        if let Some((old, _)) = store.documents.push(text.to_owned(), document.clone()) {
            store.bytes -= self::weight(&old);
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
