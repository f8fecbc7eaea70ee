//! The in-memory cache of public GraphQL answers (issue 16): an anonymous query whose answer
//! the public/private rule found public is kept, keyed by its document, variables and
//! operation name, and answered again without parsing or running it.
//!
//! Correct under writes: each entry remembers the generations of the areas of public data it
//! read (`groundswell_domain::generations`), taken before it ran, and is served only while
//! they are unchanged. A write moves its areas on when it commits, before its own answer is
//! sent, so nobody who saw a write's answer can read an answer from before it on that server;
//! other servers hear of it through PostgreSQL's LISTEN/NOTIFY ([`follow`]), and while one
//! cannot listen it serves nothing from its cache. `PUBLIC_CACHE_MAX_AGE_SECONDS` bounds an
//! entry's life besides, for what changes with time alone (a registration window opening, a
//! pledge going quiet).
//!
//! Bounded in bytes with `lru` behind a mutex, as the persisted-query store is: a lookup is a
//! hash-map probe, far shorter than the request around it.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Selection, SelectionSet,
};
use axum::body::Bytes;
use groundswell_domain::generations::{Areas, CHANNEL, Generations, Snapshot};
use lru::LruCache;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What identifies one answer: the SHA-256 of the document, the operation name and the
/// variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);

impl Key {
    pub fn new(query: &str, operation_name: Option<&str>, variables: &[u8]) -> Key {
        let mut hasher = Sha256::new();
        for part in [
            query.as_bytes(),
            operation_name.unwrap_or_default().as_bytes(),
            variables,
        ] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        Key(hasher.finalize().into())
    }
}

/// A kept answer.
#[derive(Debug)]
pub struct Entry {
    /// The JSON text, the same in either media type (a public answer has no errors).
    pub body: Bytes,
    /// Its strong ETags, one per media type, worked out once.
    pub etags: [String; 2],
    /// The areas it read, and their generations before it ran.
    areas: Areas,
    snapshot: Snapshot,
    stored_at: Instant,
}

/// Bookkeeping per entry besides its body.
const OVERHEAD: usize = 128;

impl Entry {
    fn size(&self) -> usize {
        self.body.len() + self.etags.iter().map(String::len).sum::<usize>() + OVERHEAD
    }
}

pub struct ResponseCache {
    store: Mutex<Store>,
    max_bytes: usize,
    max_age: Duration,
    generations: Arc<Generations>,
    /// False while a server on PostgreSQL cannot hear other servers' writes.
    following: AtomicBool,
    /// Keys being run now by one request, which identical requests wait for (single flight):
    /// the receiver sees its sender dropped when that request is done.
    in_flight: Mutex<HashMap<Key, watch::Receiver<()>>>,
}

/// What a lookup found.
pub enum Lookup {
    /// The answer, kept and current.
    Hit(Arc<Entry>),
    /// Nothing: run it, and hold this until the answer is stored (or not), so identical
    /// requests arriving meanwhile wait for it instead of running it too.
    Lead(Flight),
    /// Nothing, but an identical request is running it: wait with [`ResponseCache::follow`].
    Follow(watch::Receiver<()>),
}

/// A request running what identical requests wait for; dropping it lets them go on.
pub struct Flight {
    cache: Arc<ResponseCache>,
    key: Key,
    _done: watch::Sender<()>,
}

impl Drop for Flight {
    fn drop(&mut self) {
        if let Ok(mut in_flight) = self.cache.in_flight.lock() {
            in_flight.remove(&self.key);
        }
    }
}

/// The longest an identical request waits for the one running before running itself.
const FOLLOW_WAIT: Duration = Duration::from_secs(5);

struct Store {
    entries: LruCache<Key, Arc<Entry>>,
    bytes: usize,
}

impl ResponseCache {
    /// A cache of at most `max_bytes`, its entries living at most `max_age`; `following` says
    /// whether it hears of every write at once (SQLite: one server) or must wait for [`follow`]
    /// to listen.
    pub fn new(
        max_bytes: usize,
        max_age: Duration,
        generations: Arc<Generations>,
        following: bool,
    ) -> Self {
        metrics::gauge!("groundswell_response_cache_bytes").set(0.0);
        Self {
            store: Mutex::new(Store {
                entries: LruCache::unbounded(),
                bytes: 0,
            }),
            max_bytes,
            max_age,
            generations,
            following: AtomicBool::new(following),
            in_flight: Mutex::default(),
        }
    }

    /// The generations now: take it before running what may be stored.
    pub fn snapshot(&self) -> Snapshot {
        self.generations.snapshot()
    }

    /// The answer kept for `key`, if nothing it read has changed since and it is not too old.
    /// Counts a hit or a miss.
    pub fn get(&self, key: &Key) -> Option<Arc<Entry>> {
        let found = self.lookup(key);
        if found.is_some() {
            metrics::counter!("groundswell_response_cache_hits_total").increment(1);
        } else {
            metrics::counter!("groundswell_response_cache_misses_total").increment(1);
        }
        found
    }

    /// The answer kept for `key`; if there is none, whether to run it or wait for an identical
    /// request running it now. Counts a hit, or a miss for the one that runs it.
    pub fn begin(self: &Arc<Self>, key: Key) -> Lookup {
        if let Some(entry) = self.lookup(&key) {
            metrics::counter!("groundswell_response_cache_hits_total").increment(1);
            return Lookup::Hit(entry);
        }
        let Ok(mut in_flight) = self.in_flight.lock() else {
            metrics::counter!("groundswell_response_cache_misses_total").increment(1);
            let (done, _) = watch::channel(());
            return Lookup::Lead(Flight {
                cache: self.clone(),
                key,
                _done: done,
            });
        };
        if let Some(running) = in_flight.get(&key) {
            return Lookup::Follow(running.clone());
        }
        let (done, running) = watch::channel(());
        in_flight.insert(key, running);
        metrics::counter!("groundswell_response_cache_misses_total").increment(1);
        Lookup::Lead(Flight {
            cache: self.clone(),
            key,
            _done: done,
        })
    }

    /// Waits (a while at most) for the identical request running `key`, then looks again.
    pub async fn follow(&self, key: &Key, mut running: watch::Receiver<()>) -> Option<Arc<Entry>> {
        // Done when its sender is dropped: `changed` then fails at once.
        let _ = tokio::time::timeout(FOLLOW_WAIT, running.changed()).await;
        self.get(key)
    }

    fn lookup(&self, key: &Key) -> Option<Arc<Entry>> {
        if !self.following.load(Ordering::SeqCst) {
            return None;
        }
        let mut store = self.store.lock().ok()?;
        let entry = store.entries.get(key)?.clone();
        if self.is_fresh(&entry) {
            return Some(entry);
        }
        if let Some(gone) = store.entries.pop(key) {
            store.bytes -= gone.size();
            metrics::gauge!("groundswell_response_cache_bytes").set(store.bytes as f64);
        }
        None
    }

    fn is_fresh(&self, entry: &Entry) -> bool {
        entry.stored_at.elapsed() < self.max_age
            && self
                .generations
                .unchanged_since(&entry.snapshot, entry.areas)
    }

    /// Keeps `body` for `key`: an answer that read `areas`, run after `snapshot` was taken. An
    /// answer whose areas changed while it ran is not kept (it may hold what was there before).
    pub fn put(&self, key: Key, body: Bytes, etags: [String; 2], areas: Areas, snapshot: Snapshot) {
        let entry = Entry {
            body,
            etags,
            areas,
            snapshot,
            stored_at: Instant::now(),
        };
        if entry.size() > self.max_bytes
            || !self.following.load(Ordering::SeqCst)
            || !self.generations.unchanged_since(&snapshot, areas)
        {
            return;
        }
        let Ok(mut store) = self.store.lock() else {
            return;
        };
        store.bytes += entry.size();
        if let Some(replaced) = store.entries.put(key, Arc::new(entry)) {
            store.bytes -= replaced.size();
        }
        while store.bytes > self.max_bytes {
            match store.entries.pop_lru() {
                Some((_, gone)) => store.bytes -= gone.size(),
                None => break,
            }
        }
        metrics::gauge!("groundswell_response_cache_bytes").set(store.bytes as f64);
    }

    fn set_following(&self, following: bool) {
        self.following.store(following, Ordering::SeqCst);
    }
}

/// The areas of public data an operation reads, from its top-level fields (through fragments);
/// everything for a field not known here, or an operation not found.
pub fn areas_read(document: &ExecutableDocument, operation_name: Option<&str>) -> Areas {
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), _) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next()
        }
        (DocumentOperations::Multiple(_), None) => None,
    };
    match operation {
        Some(operation) => selection_areas(document, &operation.node.selection_set.node, 0),
        None => Areas::ALL,
    }
}

fn selection_areas(document: &ExecutableDocument, set: &SelectionSet, depth: usize) -> Areas {
    // Fragments cycling (which validation refuses) or nested absurdly deep: assume the worst.
    if depth > 16 {
        return Areas::ALL;
    }
    set.items
        .iter()
        .fold(Areas::NONE, |areas, item| match &item.node {
            Selection::Field(field) => areas.union(field_areas(field.node.name.node.as_str())),
            Selection::InlineFragment(fragment) => areas.union(selection_areas(
                document,
                &fragment.node.selection_set.node,
                depth + 1,
            )),
            Selection::FragmentSpread(spread) => areas.union(
                document
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .map_or(Areas::ALL, |fragment| {
                        selection_areas(document, &fragment.node.selection_set.node, depth + 1)
                    }),
            ),
        })
}

/// What each field of `Query` reads. A test checks that the gatherings' fields lead to nothing
/// of the movement's and the other way round.
fn field_areas(field: &str) -> Areas {
    match field {
        "__typename" | "__schema" | "__type" => Areas::NONE,
        "gathering" | "gatherings" => Areas::GATHERINGS,
        "changes" | "movement" | "organisation" | "organisations" | "pledge" | "pledges"
        | "coalition" | "coalitions" | "progressUpdates" => Areas::MOVEMENT,
        _ => Areas::ALL,
    }
}

/// Listens for other servers' writes on PostgreSQL.
pub async fn listen(
    database_url: &str,
) -> Result<sea_orm::sqlx::postgres::PgListener, sea_orm::sqlx::Error> {
    let mut listener = sea_orm::sqlx::postgres::PgListener::connect(database_url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// On PostgreSQL, applies every server's writes to this server's generations until `shutdown`,
/// on `listener` (made at start, so the cache works from the first request) and, when that is
/// lost, on a new one; while it cannot listen, the cache answers nothing (writes elsewhere
/// would go unheard), and once it listens again everything kept is forgotten.
pub async fn follow(
    cache: Arc<ResponseCache>,
    database_url: String,
    listener: Option<sea_orm::sqlx::postgres::PgListener>,
    shutdown: CancellationToken,
) {
    let mut listener = listener;
    loop {
        let mut current = match listener.take() {
            Some(current) => current,
            None => {
                cache.set_following(false);
                let connected = tokio::select! {
                    () = shutdown.cancelled() => return,
                    connected = listen(&database_url) => connected,
                };
                match connected {
                    Ok(current) => {
                        // Writes made while nobody listened are unknown: forget everything.
                        cache.generations.bump(Areas::ALL);
                        current
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "listening for public changes failed; retrying");
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        }
                    }
                }
            }
        };
        cache.set_following(true);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                received = current.try_recv() => match received {
                    Ok(Some(notification)) => cache.generations.apply_payload(notification.payload()),
                    Ok(None) => {
                        tracing::warn!("the listener for public changes lost its connection");
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "the listener for public changes failed");
                        break;
                    }
                },
            }
        }
        cache.set_following(false);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use async_graphql::parser::{
        parse_query, parse_schema,
        types::{BaseType, Type, TypeKind, TypeSystemDefinition},
    };

    use super::*;
    use crate::graphql::visibility::PUBLIC_FIELDS;

    fn cache(max_bytes: usize) -> (ResponseCache, Arc<Generations>) {
        let generations = Arc::new(Generations::default());
        (
            ResponseCache::new(
                max_bytes,
                Duration::from_secs(60),
                generations.clone(),
                true,
            ),
            generations,
        )
    }

    fn no_etags() -> [String; 2] {
        [String::new(), String::new()]
    }

    fn key(n: u8) -> Key {
        Key::new("{ pledges { totalCount } }", None, &[n])
    }

    #[test]
    fn an_answer_is_served_until_an_area_it_read_changes() {
        let (cache, generations) = cache(1 << 20);
        let before = cache.snapshot();
        cache.put(
            key(1),
            Bytes::from_static(b"{}"),
            no_etags(),
            Areas::MOVEMENT,
            before,
        );
        assert!(cache.get(&key(1)).is_some());
        assert!(cache.get(&key(2)).is_none());
        generations.bump(Areas::GATHERINGS);
        assert!(cache.get(&key(1)).is_some());
        generations.bump(Areas::MOVEMENT);
        assert!(cache.get(&key(1)).is_none());
    }

    #[tokio::test]
    async fn identical_requests_wait_for_the_one_running_it() {
        let (cache, _) = cache(1 << 20);
        let cache = Arc::new(cache);
        let Lookup::Lead(flight) = cache.begin(key(1)) else {
            panic!("the first should run it")
        };
        let Lookup::Follow(running) = cache.begin(key(1)) else {
            panic!("the second should wait")
        };
        assert!(matches!(cache.begin(key(2)), Lookup::Lead(_)));
        let waiting = tokio::spawn({
            let cache = cache.clone();
            async move { cache.follow(&key(1), running).await.is_some() }
        });
        tokio::task::yield_now().await;
        cache.put(
            key(1),
            Bytes::from_static(b"{}"),
            no_etags(),
            Areas::ALL,
            cache.snapshot(),
        );
        drop(flight);
        assert!(
            waiting.await.unwrap_or(false),
            "the waiting request got the answer"
        );
        assert!(matches!(cache.begin(key(1)), Lookup::Hit(_)));
        // A leader that stores nothing lets the next one run it.
        let Lookup::Lead(flight) = cache.begin(key(3)) else {
            panic!("should run it")
        };
        drop(flight);
        assert!(matches!(cache.begin(key(3)), Lookup::Lead(_)));
    }

    #[test]
    fn an_answer_whose_areas_changed_while_it_ran_is_not_kept() {
        let (cache, generations) = cache(1 << 20);
        let before = cache.snapshot();
        generations.bump(Areas::GATHERINGS);
        cache.put(
            key(1),
            Bytes::from_static(b"{}"),
            no_etags(),
            Areas::GATHERINGS,
            before,
        );
        assert!(cache.get(&key(1)).is_none());
    }

    #[test]
    fn nothing_is_served_while_writes_elsewhere_cannot_be_heard() {
        let (cache, _) = cache(1 << 20);
        cache.put(
            key(1),
            Bytes::from_static(b"{}"),
            no_etags(),
            Areas::NONE,
            cache.snapshot(),
        );
        cache.set_following(false);
        assert!(cache.get(&key(1)).is_none());
    }

    #[test]
    fn the_least_recently_used_go_when_the_bytes_run_out() {
        let (cache, _) = cache(3 * (100 + OVERHEAD));
        let body = Bytes::from(vec![b' '; 100]);
        for n in 0..3 {
            cache.put(
                key(n),
                body.clone(),
                no_etags(),
                Areas::ALL,
                cache.snapshot(),
            );
        }
        assert!(cache.get(&key(0)).is_some());
        cache.put(
            key(3),
            body.clone(),
            no_etags(),
            Areas::ALL,
            cache.snapshot(),
        );
        assert!(cache.get(&key(1)).is_none());
        assert!(cache.get(&key(0)).is_some());
        assert!(cache.get(&key(3)).is_some());
        let stored = cache.store.lock().map(|s| s.bytes).unwrap_or_default();
        assert_eq!(stored, 3 * (100 + OVERHEAD));
        // Larger than the whole cache: never kept.
        cache.put(
            key(9),
            Bytes::from(vec![b' '; 4096]),
            no_etags(),
            Areas::ALL,
            cache.snapshot(),
        );
        assert!(cache.get(&key(9)).is_none());
    }

    #[test]
    fn the_key_tells_documents_operations_and_variables_apart() {
        let a = Key::new("{ a }", None, b"{}");
        assert_eq!(a, Key::new("{ a }", None, b"{}"));
        assert_ne!(a, Key::new("{ a }", Some("A"), b"{}"));
        assert_ne!(a, Key::new("{ a }", None, b"{\"x\":1}"));
        assert_ne!(a, Key::new("{ b }", None, b"{}"));
        // The parts cannot run into one another.
        assert_ne!(Key::new("ab", None, b""), Key::new("a", Some("b"), b""));
    }

    fn areas_of(query: &str, name: Option<&str>) -> Areas {
        let document = parse_query(query).unwrap_or_else(|e| panic!("{e}"));
        areas_read(&document, name)
    }

    #[test]
    fn the_areas_read_come_from_the_top_level_fields() {
        assert_eq!(
            areas_of("{ gathering(slug: \"x\") { id } }", None),
            Areas::GATHERINGS
        );
        assert_eq!(
            areas_of("{ pledges { totalCount } }", None),
            Areas::MOVEMENT
        );
        assert_eq!(
            areas_of("{ changes { title } g: gatherings { totalCount } }", None),
            Areas::ALL
        );
        assert_eq!(
            areas_of(
                "query { ...F } fragment F on Query { ... on Query { coalitions { totalCount } } }",
                None
            ),
            Areas::MOVEMENT
        );
        assert_eq!(areas_of("{ __typename }", None), Areas::NONE);
        assert_eq!(areas_of("{ somethingNew }", None), Areas::ALL);
        assert_eq!(
            areas_of(
                "query A { pledges { totalCount } } query B { gatherings { totalCount } }",
                Some("B")
            ),
            Areas::GATHERINGS
        );
        assert_eq!(
            areas_of(
                "query A { pledges { totalCount } } query B { gatherings { totalCount } }",
                None
            ),
            Areas::ALL
        );
    }

    fn named(ty: &Type) -> String {
        match &ty.base {
            BaseType::Named(name) => name.to_string(),
            BaseType::List(inner) => named(inner),
        }
    }

    /// The object types a public `Query` field leads to, through public fields.
    fn reachable(field: &str) -> BTreeSet<String> {
        let document = parse_schema(crate::graphql::sdl()).unwrap_or_else(|e| panic!("{e}"));
        let mut types: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for definition in document.definitions {
            if let TypeSystemDefinition::Type(ty) = definition
                && let TypeKind::Object(object) = &ty.node.kind
            {
                let fields = object
                    .fields
                    .iter()
                    .map(|f| (f.node.name.node.to_string(), named(&f.node.ty.node)))
                    .collect();
                types.insert(ty.node.name.node.to_string(), fields);
            }
        }
        let public = |ty: &str, f: &str| {
            PUBLIC_FIELDS
                .iter()
                .any(|(t, fields)| *t == ty && fields.contains(&f))
        };
        let mut seen = BTreeSet::new();
        let mut queue = vec![("Query".to_owned(), field.to_owned())];
        while let Some((ty, f)) = queue.pop() {
            let Some(returns) = types
                .get(&ty)
                .and_then(|fields| fields.iter().find(|(name, _)| *name == f))
                .map(|(_, returns)| returns.clone())
            else {
                continue;
            };
            if types.contains_key(&returns) && seen.insert(returns.clone()) {
                for (next, _) in &types[&returns] {
                    if public(&returns, next) {
                        queue.push((returns.clone(), next.clone()));
                    }
                }
            }
        }
        seen
    }

    #[test]
    fn the_gatherings_and_the_movement_read_nothing_of_each_other() {
        let gathering_types: BTreeSet<&str> = [
            "Gathering",
            "GatheringConnection",
            "GatheringEdge",
            "PageInfo",
        ]
        .into();
        for (ty, fields) in PUBLIC_FIELDS {
            if *ty != "Query" {
                continue;
            }
            for field in *fields {
                let reached = reachable(field);
                match field_areas(field) {
                    Areas::GATHERINGS => assert!(
                        reached.iter().all(|t| gathering_types.contains(t.as_str())),
                        "Query.{field} reaches {reached:?}: give it Areas::ALL or a new area"
                    ),
                    Areas::MOVEMENT => assert!(
                        reached
                            .iter()
                            .all(|t| t == "PageInfo" || !gathering_types.contains(t.as_str())),
                        "Query.{field} reaches {reached:?}: give it Areas::ALL or a new area"
                    ),
                    _ => {}
                }
            }
        }
    }
}
