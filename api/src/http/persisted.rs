//! Automatic persisted queries (Apollo's APQ protocol): a client may send only
//! `extensions.persistedQuery { version: 1, sha256Hash }`; a server that knows the hash runs
//! the query it stands for, one that does not answers `PERSISTED_QUERY_NOT_FOUND`, and the
//! client sends the query with its hash once to register it.
//!
//! The store is in memory and bounded, by entries and by bytes, dropping the least recently
//! used. Several servers on one PostgreSQL database each register on demand: a server that
//! lacks a hash says so, the client resends the query, and no client sees a failure that
//! depends on which server answered.
//!
//! `lru` (already in the dependency tree, small and maintained) behind a mutex: a lookup is a
//! hash-map probe, far shorter than the request around it, so a lock is no bottleneck, and
//! counting bytes ourselves bounds memory however long the queries are.

use std::{num::NonZeroUsize, sync::Mutex};

use lru::LruCache;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Most queries kept.
const MAX_ENTRIES: usize = 2_000;
/// Most bytes of query text kept, all entries together.
const MAX_BYTES: usize = 16 * 1024 * 1024;

pub struct PersistedQueries {
    inner: Mutex<Store>,
}

struct Store {
    queries: LruCache<[u8; 32], String>,
    bytes: usize,
}

/// Why a request's persisted query could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum PersistedQueryError {
    /// The hash is not known here: send the query with it.
    NotFound,
    /// The extension is malformed, or the query does not have the hash it came with; the
    /// message completes "persistedQuery…" and names the field.
    Invalid {
        field: &'static str,
        message: String,
    },
}

impl Default for PersistedQueries {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Store {
                queries: LruCache::new(NonZeroUsize::new(MAX_ENTRIES).unwrap_or(NonZeroUsize::MIN)),
                bytes: 0,
            }),
        }
    }
}

impl PersistedQueries {
    /// The query text to run: `query` itself when there is no `persistedQuery` extension;
    /// otherwise the query the hash names (registering `query` under it when both came and
    /// match). `Ok(None)` means neither a query nor a persisted query was sent.
    pub fn resolve(
        &self,
        query: Option<String>,
        extensions: &Map<String, Value>,
    ) -> Result<Option<String>, PersistedQueryError> {
        let Some(persisted) = extensions.get("persistedQuery") else {
            return Ok(query);
        };
        let hash = parse_extension(persisted)?;
        match query {
            Some(query) => {
                if Sha256::digest(query.as_bytes()).as_slice() != hash {
                    return Err(PersistedQueryError::Invalid {
                        field: "sha256Hash",
                        message: "persistedQuery.sha256Hash is not the SHA-256 of the query sent with it.".to_owned(),
                    });
                }
                self.insert(hash, &query);
                Ok(Some(query))
            }
            None => self
                .get(&hash)
                .map(Some)
                .ok_or(PersistedQueryError::NotFound),
        }
    }

    fn get(&self, hash: &[u8; 32]) -> Option<String> {
        let mut store = self.inner.lock().ok()?;
        store.queries.get(hash).cloned()
    }

    fn insert(&self, hash: [u8; 32], query: &str) {
        if query.len() > MAX_BYTES {
            return;
        }
        let Ok(mut store) = self.inner.lock() else {
            return;
        };
        if store.queries.contains(&hash) {
            store.queries.promote(&hash);
            return;
        }
        while store.bytes + query.len() > MAX_BYTES {
            match store.queries.pop_lru() {
                Some((_, old)) => store.bytes -= old.len(),
                None => break,
            }
        }
        if let Some((_, old)) = store.queries.push(hash, query.to_owned()) {
            store.bytes -= old.len();
        }
        store.bytes += query.len();
    }
}

fn invalid(field: &'static str, message: &str) -> PersistedQueryError {
    PersistedQueryError::Invalid {
        field,
        message: message.to_owned(),
    }
}

/// `{ "version": 1, "sha256Hash": "<64 hex digits>" }`, as the hash's bytes.
fn parse_extension(value: &Value) -> Result<[u8; 32], PersistedQueryError> {
    let Value::Object(fields) = value else {
        return Err(invalid(
            "persistedQuery",
            "extensions.persistedQuery must be an object with version and sha256Hash.",
        ));
    };
    if fields.get("version").and_then(Value::as_i64) != Some(1) {
        return Err(invalid(
            "version",
            "persistedQuery.version must be 1, the only version served.",
        ));
    }
    let text = fields
        .get("sha256Hash")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut hash = [0u8; 32];
    let valid = text.len() == 64
        && text.is_ascii()
        && hash.iter_mut().enumerate().all(|(i, byte)| {
            match u8::from_str_radix(&text[i * 2..i * 2 + 2], 16) {
                Ok(value) => {
                    *byte = value;
                    true
                }
                Err(_) => false,
            }
        });
    if !valid {
        return Err(invalid(
            "sha256Hash",
            "persistedQuery.sha256Hash must be 64 hexadecimal digits.",
        ));
    }
    Ok(hash)
}

/// The lowercase hex SHA-256 of `text`.
pub fn sha256_hex(text: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for byte in Sha256::digest(text) {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ext(hash: &str) -> Map<String, Value> {
        let Value::Object(map) = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
        else {
            unreachable!()
        };
        map
    }

    #[test]
    fn a_hash_registers_with_its_query_and_then_stands_for_it() {
        let store = PersistedQueries::default();
        let query = "{ changes { title } }";
        let hash = sha256_hex(query.as_bytes());
        assert_eq!(
            store.resolve(None, &ext(&hash)),
            Err(PersistedQueryError::NotFound)
        );
        assert_eq!(
            store.resolve(Some(query.into()), &ext(&hash)),
            Ok(Some(query.into()))
        );
        assert_eq!(store.resolve(None, &ext(&hash)), Ok(Some(query.into())));
    }

    #[test]
    fn a_query_with_another_hash_is_refused_and_not_registered() {
        let store = PersistedQueries::default();
        let other = sha256_hex(b"{ me { id } }");
        assert!(matches!(
            store.resolve(Some("{ changes { title } }".into()), &ext(&other)),
            Err(PersistedQueryError::Invalid {
                field: "sha256Hash",
                ..
            })
        ));
        assert_eq!(
            store.resolve(None, &ext(&other)),
            Err(PersistedQueryError::NotFound)
        );
        assert!(matches!(
            store.resolve(None, &ext("not-hex")),
            Err(PersistedQueryError::Invalid { .. })
        ));
    }

    #[test]
    fn the_store_keeps_to_its_bounds() {
        let store = PersistedQueries::default();
        let big = "x".repeat(MAX_BYTES / 4 + 1);
        for i in 0..8 {
            let query = format!("{i}{big}");
            let hash = sha256_hex(query.as_bytes());
            assert!(store.resolve(Some(query), &ext(&hash)).is_ok());
        }
        let inner = store.inner.lock().unwrap_or_else(|e| e.into_inner());
        assert!(inner.bytes <= MAX_BYTES);
        assert_eq!(inner.queries.len(), 3);
    }
}
