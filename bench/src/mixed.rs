//! The mixed scenario (issue 16): readers on a public page while a writer posts progress
//! updates and registrations at a steady rate, checking that no read shows less than a write
//! whose response had already arrived when the read began.
//!
//! How a read proves it reflects a write: each write sets a number the page shows, and the
//! numbers only grow.
//! - The pledge wall: the writer posts updates on one pledge of the wall, numbered in their
//!   text ("Benchmark progress note 41."), so the wall's latest update for that pledge names
//!   the last one the reader can see.
//! - The gathering page: the writer registers people for the gathering, one each, so its
//!   confirmed plus waitlisted count grows by one with each registration.
//!
//! Every write records when its response arrived and the number it set; every read records
//! when it started and the number it saw. A read is stale when it saw less than the number of
//! the last write whose response arrived before the read started.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use serde::Deserialize;
use serde_json::json;

use crate::{
    client::{Client, Prepared},
    floor::Floor,
    load::{self, Measured, Outcome},
    report::{Figures, MixedSide, Writes},
    seed::Fixture,
};

/// The text of the writer's updates, before their number.
const NOTE: &str = "Benchmark progress note ";

const POST_UPDATE: &str = "mutation Post($pledge: ID!, $body: String!, $percent: Int) { \
    postProgressUpdate(input: { pledgeId: $pledge, body: $body, signal: ON_TRACK, percentComplete: $percent }) { id } }";

const REGISTER: &str = "mutation Register($gathering: ID!) { register(input: { gatheringId: $gathering }) { id status } }";

/// Whether the response cache answered, from the `X-Cache` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    /// No header: a server without a response cache, or an answer it does not cache.
    Absent,
}

impl CacheStatus {
    pub fn from_header(value: Option<&str>) -> CacheStatus {
        match value.map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case("hit") => CacheStatus::Hit,
            Some(v) if v.eq_ignore_ascii_case("miss") => CacheStatus::Miss,
            _ => CacheStatus::Absent,
        }
    }
}

/// The number a writer's progress note carries; 0 for any other text (the seeded updates).
pub fn note_number(body: &str) -> i64 {
    body.strip_prefix(NOTE)
        .map(|rest| rest.trim_end_matches('.'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// What a read looks for in a page.
#[derive(Clone, Debug)]
pub enum Probe {
    /// The number of the latest update on this pledge of the wall.
    Wall { pledge_id: String },
    /// The gathering's confirmed plus waitlisted registrations.
    Gathering,
}

#[derive(Deserialize)]
struct Answer<T> {
    data: Option<T>,
    errors: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WallData {
    pledges: WallPledges,
}

#[derive(Deserialize)]
struct WallPledges {
    edges: Vec<WallEdge>,
}

#[derive(Deserialize)]
struct WallEdge {
    node: WallNode,
}

#[derive(Deserialize)]
struct WallNode {
    id: String,
    #[serde(rename = "latestUpdate")]
    latest_update: Option<LatestUpdate>,
}

#[derive(Deserialize)]
struct LatestUpdate {
    body: String,
}

#[derive(Deserialize)]
struct GatheringData {
    gathering: Option<GatheringCounts>,
}

#[derive(Deserialize)]
struct GatheringCounts {
    #[serde(rename = "confirmedCount")]
    confirmed_count: i64,
    #[serde(rename = "waitlistedCount")]
    waitlisted_count: i64,
}

impl Probe {
    /// The number in a GraphQL answer's body.
    pub fn value_in_answer(&self, body: &[u8]) -> anyhow::Result<i64> {
        fn data<'a, T: Deserialize<'a>>(body: &'a [u8]) -> anyhow::Result<T> {
            let answer: Answer<T> =
                serde_json::from_slice(body).context("an answer that is not GraphQL")?;
            if let Some(errors) = answer.errors {
                anyhow::bail!("GraphQL errors: {errors}");
            }
            answer.data.context("an answer without data")
        }
        match self {
            Probe::Wall { pledge_id } => {
                let wall: WallData = data(body)?;
                let node = wall
                    .pledges
                    .edges
                    .into_iter()
                    .map(|e| e.node)
                    .find(|n| &n.id == pledge_id)
                    .context("the written pledge is missing from the wall")?;
                Ok(node.latest_update.map_or(0, |u| note_number(&u.body)))
            }
            Probe::Gathering => {
                let page: GatheringData = data(body)?;
                let g = page.gathering.context("the gathering is missing")?;
                Ok(g.confirmed_count + g.waitlisted_count)
            }
        }
    }

    /// The number as the floor reads it.
    pub async fn value_in_floor(&self, floor: &Floor, setup: &Setup) -> anyhow::Result<i64> {
        match self {
            Probe::Wall { pledge_id } => {
                let wall = floor.pledge_wall(&setup.wall_change).await?;
                let pledge = wall
                    .iter()
                    .find(|p| &p.id == pledge_id)
                    .context("the written pledge is missing from the floor's wall")?;
                Ok(pledge.latest_update_body.as_deref().map_or(0, note_number))
            }
            Probe::Gathering => {
                let page = floor
                    .anonymous_gathering_page(&setup.gathering_slug)
                    .await?;
                Ok(page.confirmed_count + page.waitlisted_count)
            }
        }
    }
}

/// A write whose response arrived at `at`, after which every read must show at least `value`.
#[derive(Clone, Copy, Debug)]
pub struct Written {
    pub at: Instant,
    pub value: i64,
}

/// A read that started at `started` and saw `value`.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    pub started: Instant,
    pub value: i64,
}

/// How many `reads` saw less than the latest write whose response arrived before they started
/// (`baseline` before any write).
pub fn stale_reads(baseline: i64, writes: &[Written], reads: &[Seen]) -> u64 {
    let mut writes = writes.to_vec();
    writes.sort_by_key(|w| w.at);
    let mut required = Vec::with_capacity(writes.len());
    let mut highest = baseline;
    for w in &writes {
        highest = highest.max(w.value);
        required.push(highest);
    }
    let stale = reads
        .iter()
        .filter(|read| {
            let before = writes.partition_point(|w| w.at < read.started);
            let need = if before == 0 {
                baseline
            } else {
                required[before - 1]
            };
            read.value < need
        })
        .count();
    stale as u64
}

/// The sum of every sample of a counter in Prometheus text; `None` when there is none.
pub fn metric_total(text: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        // The name must end here: `name 3` or `name{…} 3`, not `name_other 3`.
        let value = if let Some(labelled) = rest.strip_prefix('{') {
            labelled.split_once('}').map(|(_, v)| v)
        } else if rest.starts_with(' ') {
            Some(rest)
        } else {
            None
        };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            *total.get_or_insert(0.0) += v;
        }
    }
    total
}

/// Hits as a share of hits and misses; `None` when nothing said either.
pub fn hit_rate(hits: u64, misses: u64) -> Option<f64> {
    let all = hits + misses;
    (all > 0).then(|| hits as f64 / all as f64)
}

/// What the mixed scenario writes to and reads, found once.
pub struct Setup {
    pub wall_change: String,
    pub gathering_slug: String,
    pub gathering_id: String,
    /// The wall's pledge the writer posts on.
    pub pledge_id: String,
    /// A session of a member of that pledge's organisation.
    pub poster_token: String,
    /// People not registered for the gathering, one registration each.
    registrants: Arc<Vec<String>>,
    next_registrant: Arc<AtomicUsize>,
    /// The number of the last progress note written.
    note: Arc<AtomicU64>,
}

impl Setup {
    /// Picks the wall's first pledge that takes updates, and gives one of its organisation's
    /// members a session (a row written as the seed writes sessions).
    pub async fn prepare(
        client: &Client,
        floor: &Floor,
        fixture: &Fixture,
    ) -> anyhow::Result<Setup> {
        ensure!(
            floor.is_postgres(),
            "the mixed scenario runs on PostgreSQL only"
        );
        let wall = client
            .data(
                crate::run::PLEDGE_WALL,
                json!({ "change": fixture.wall_change }),
                None,
            )
            .await?;
        let pledge_id = wall["pledges"]["edges"]
            .as_array()
            .context("no pledge edges")?
            .iter()
            .map(|e| &e["node"])
            .find(|n| n["status"] != "WITHDRAWN")
            .and_then(|n| n["id"].as_str())
            .context("every pledge on the wall is withdrawn")?
            .to_owned();
        let gathering = client
            .data(
                "query G($slug: String!) { gathering(slug: $slug) { id } }",
                json!({ "slug": fixture.page_gathering_slug }),
                None,
            )
            .await?;
        let gathering_id = gathering["gathering"]["id"]
            .as_str()
            .context("the page gathering is missing")?
            .to_owned();
        let poster_token = format!(
            "{}bench-poster-{}",
            groundswell_domain::people::SESSION_TOKEN_PREFIX,
            uuid::Uuid::now_v7().simple()
        );
        let session_id = uuid::Uuid::now_v7().to_string();
        let made = floor
            .execute(
                "INSERT INTO sessions (id, person_id, token_hash, created_at, expires_at, revoked_at)
                 SELECT CAST($1 AS uuid), m.person_id, $2, now(), now() + interval '1 day', NULL
                 FROM pledges p JOIN organisation_members m ON m.organisation_id = p.organisation_id
                 WHERE p.id = CAST($3 AS uuid)
                 ORDER BY m.created_at, m.id LIMIT 1",
                &[
                    &session_id,
                    &groundswell_domain::secrets::hash_token(&poster_token),
                    &pledge_id,
                ],
            )
            .await?;
        ensure!(made == 1, "the wall's pledge has no organisation member");
        Ok(Setup {
            wall_change: fixture.wall_change.clone(),
            gathering_slug: fixture.page_gathering_slug.clone(),
            gathering_id,
            pledge_id,
            poster_token,
            registrants: Arc::new(fixture.rush_tokens.clone()),
            next_registrant: Arc::new(AtomicUsize::new(0)),
            note: Arc::new(AtomicU64::new(0)),
        })
    }

    fn registrants_left(&self) -> usize {
        self.registrants
            .len()
            .saturating_sub(self.next_registrant.load(Ordering::SeqCst))
    }
}

/// The two pages the mixed scenario reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Wall,
    Gathering,
}

impl Page {
    pub fn name(self) -> &'static str {
        match self {
            Page::Wall => "pledge wall",
            Page::Gathering => "anonymous gathering page",
        }
    }

    fn probe(self, setup: &Setup) -> Probe {
        match self {
            Page::Wall => Probe::Wall {
                pledge_id: setup.pledge_id.clone(),
            },
            Page::Gathering => Probe::Gathering,
        }
    }

    fn request(self, setup: &Setup) -> Prepared {
        match self {
            Page::Wall => Prepared::new(
                crate::run::PLEDGE_WALL,
                json!({ "change": setup.wall_change }),
                None,
            ),
            Page::Gathering => Prepared::new(
                crate::run::ANONYMOUS_GATHERING_PAGE,
                json!({ "slug": setup.gathering_slug }),
                None,
            ),
        }
    }
}

/// Who reads: Groundswell over HTTP, or the floor's statements.
#[derive(Clone, Copy)]
pub enum Reader<'a> {
    Groundswell(&'a Client),
    Floor(&'a Floor),
}

/// The run's timing and load.
pub struct Plan {
    pub clients: usize,
    pub warmup: Duration,
    pub measure: Duration,
    /// Writes per second, both kinds together.
    pub write_rate: f64,
}

/// One run: `plan.clients` readers of `page` through `reader` while the writer writes through
/// `writer` (always Groundswell), then the staleness of what the readers saw.
pub async fn run(
    page: Page,
    reader: Reader<'_>,
    writer: &Client,
    floor: &Floor,
    setup: &Arc<Setup>,
    plan: &Plan,
) -> anyhow::Result<MixedSide> {
    let probe = page.probe(setup);
    let baseline = probe.value_in_floor(floor, setup).await?;
    let registrations_before = Probe::Gathering.value_in_floor(floor, setup).await?;
    let seen: Arc<Vec<Mutex<Vec<Seen>>>> =
        Arc::new((0..plan.clients).map(|_| Mutex::new(Vec::new())).collect());
    let hits = Arc::new(AtomicU64::new(0));
    let misses = Arc::new(AtomicU64::new(0));
    let total = plan.warmup + plan.measure;
    let writers = start_writers(writer, setup, plan.write_rate, Instant::now() + total);
    let metrics_before = match reader {
        Reader::Groundswell(client) => cache_metrics(client).await,
        Reader::Floor(_) => None,
    };
    let reads = match reader {
        Reader::Groundswell(client) => {
            let request = Arc::new(page.request(setup));
            let (client, probe, seen, hits, misses) = (
                client.clone(),
                Arc::new(probe.clone()),
                seen.clone(),
                hits.clone(),
                misses.clone(),
            );
            load::closed_loop(plan.clients, plan.warmup, plan.measure, move |index, _| {
                let (client, request, probe, seen, hits, misses) = (
                    client.clone(),
                    request.clone(),
                    probe.clone(),
                    seen.clone(),
                    hits.clone(),
                    misses.clone(),
                );
                async move {
                    let started = Instant::now();
                    let (outcome, cache, value) = client.send_probed(&request, &probe).await;
                    match cache {
                        CacheStatus::Hit => hits.fetch_add(1, Ordering::Relaxed),
                        CacheStatus::Miss => misses.fetch_add(1, Ordering::Relaxed),
                        CacheStatus::Absent => 0,
                    };
                    if let Some(value) = value {
                        record(&seen[index], Seen { started, value });
                    }
                    outcome
                }
            })
            .await
        }
        Reader::Floor(floor) => {
            let (floor, probe, seen, setup) = (
                Arc::new(floor.clone()),
                Arc::new(probe.clone()),
                seen.clone(),
                setup.clone(),
            );
            load::closed_loop(plan.clients, plan.warmup, plan.measure, move |index, _| {
                let (floor, probe, seen, setup) =
                    (floor.clone(), probe.clone(), seen.clone(), setup.clone());
                async move {
                    let started = Instant::now();
                    match probe.value_in_floor(&floor, &setup).await {
                        Ok(value) => {
                            record(&seen[index], Seen { started, value });
                            Outcome::Ok
                        }
                        Err(err) => Outcome::Error(format!("{err:#}")),
                    }
                }
            })
            .await
        }
    };
    let written = writers.finish().await;
    let mut hits = hits.load(Ordering::Relaxed);
    let mut misses = misses.load(Ordering::Relaxed);
    if hits + misses == 0
        && let Reader::Groundswell(client) = reader
        && let (Some(before), Some(after)) = (metrics_before, cache_metrics(client).await)
    {
        // No header: the server's own counters (the writer's reads are not cached, so the
        // difference is the readers').
        hits = (after.0 - before.0).max(0.0) as u64;
        misses = (after.1 - before.1).max(0.0) as u64;
    }
    let seen: Vec<Seen> = seen
        .iter()
        .flat_map(|m| m.lock().map(|v| v.clone()).unwrap_or_default())
        .collect();
    let (checked_against, stale) = match page {
        Page::Wall => (
            written.progress.len(),
            stale_reads(baseline, &written.progress, &seen),
        ),
        Page::Gathering => {
            let values: Vec<Written> = written
                .registrations
                .iter()
                .enumerate()
                .map(|(k, at)| Written {
                    at: *at,
                    value: registrations_before + k as i64 + 1,
                })
                .collect();
            (values.len(), stale_reads(baseline, &values, &seen))
        }
    };
    let mut note = written.note.clone();
    if page == Page::Gathering && written.registrations.is_empty() {
        note = Some(
            "no registrations this run (nobody left to register, or each failed): its reads were checked against nothing"
                .to_owned(),
        );
    }
    // Each registration adds one to the count, which is what the check above relies on.
    let registrations_after = Probe::Gathering.value_in_floor(floor, setup).await?;
    let expected = registrations_before + written.registrations.len() as i64;
    if registrations_after != expected {
        note = Some(format!(
            "the gathering's registrations went from {registrations_before} to {registrations_after}, \
             not {expected}: the registration check assumed one each"
        ));
    }
    let seconds = total.as_secs_f64();
    Ok(MixedSide {
        reads: Figures::from(&reads),
        reads_checked: seen.len() as u64,
        stale_reads: stale,
        cache_hits: hits,
        cache_misses: misses,
        cache_hit_rate: hit_rate(hits, misses),
        writes: Writes {
            progress_updates: written.progress.len() as u64,
            registrations: written.registrations.len() as u64,
            errors: written.measured.errors + written.measured.timeouts,
            per_second: (written.progress.len() + written.registrations.len()) as f64 / seconds,
            p99_ms: written.measured.latency_ms(0.99),
            checked_against: checked_against as u64,
            first_error: written.measured.first_error.clone(),
            note,
        },
    })
}

fn record(log: &Mutex<Vec<Seen>>, seen: Seen) {
    if let Ok(mut log) = log.lock() {
        log.push(seen);
    }
}

async fn cache_metrics(client: &Client) -> Option<(f64, f64)> {
    let hits = client
        .metric("groundswell_response_cache_hits_total")
        .await?;
    let misses = client
        .metric("groundswell_response_cache_misses_total")
        .await
        .unwrap_or(0.0);
    Some((hits, misses))
}

/// What the writers did.
struct WriteLog {
    /// Each progress note written: when its response arrived and its number.
    progress: Vec<Written>,
    /// When each registration's response arrived.
    registrations: Vec<Instant>,
    measured: Measured,
    note: Option<String>,
}

struct Writers {
    progress: Option<tokio::task::JoinHandle<(Vec<Written>, Measured)>>,
    registrations: Option<tokio::task::JoinHandle<(Vec<Instant>, Measured, bool)>>,
}

/// Starts the two writers, each sending its next write on a steady clock until `until`: half
/// the rate each, or all of it to progress updates once nobody is left to register.
fn start_writers(client: &Client, setup: &Arc<Setup>, rate: f64, until: Instant) -> Writers {
    if rate <= 0.0 {
        return Writers {
            progress: None,
            registrations: None,
        };
    }
    let registering = setup.registrants_left() > 0;
    let progress_rate = if registering { rate / 2.0 } else { rate };
    let progress = {
        let (client, setup) = (client.clone(), setup.clone());
        tokio::spawn(async move {
            let mut written = Vec::new();
            let mut measured = Measured::new();
            let mut tick = steady(progress_rate);
            while tick.tick().await < until.into() {
                let n = setup.note.fetch_add(1, Ordering::SeqCst) as i64 + 1;
                let request = Prepared::new(
                    POST_UPDATE,
                    json!({
                        "pledge": setup.pledge_id,
                        "body": format!("{NOTE}{n}."),
                        "percent": n % 101,
                    }),
                    Some(&setup.poster_token),
                );
                let sent = Instant::now();
                let outcome = client.send(&request).await;
                let at = Instant::now();
                if matches!(outcome, Outcome::Ok) {
                    written.push(Written { at, value: n });
                }
                measured.record(outcome, at - sent);
            }
            (written, measured)
        })
    };
    let registrations = registering.then(|| {
        let (client, setup) = (client.clone(), setup.clone());
        tokio::spawn(async move {
            let mut arrived = Vec::new();
            let mut measured = Measured::new();
            let mut ran_out = false;
            let mut tick = steady(rate / 2.0);
            while tick.tick().await < until.into() {
                let next = setup.next_registrant.fetch_add(1, Ordering::SeqCst);
                let Some(token) = setup.registrants.get(next) else {
                    ran_out = true;
                    break;
                };
                let request = Prepared::new(
                    REGISTER,
                    json!({ "gathering": setup.gathering_id }),
                    Some(token),
                );
                let sent = Instant::now();
                let outcome = client.send(&request).await;
                let at = Instant::now();
                if matches!(outcome, Outcome::Ok) {
                    arrived.push(at);
                }
                measured.record(outcome, at - sent);
            }
            (arrived, measured, ran_out)
        })
    });
    Writers {
        progress: Some(progress),
        registrations,
    }
}

/// A clock ticking `rate` times a second, catching up after a slow write so the rate holds.
fn steady(rate: f64) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    tick
}

impl Writers {
    async fn finish(self) -> WriteLog {
        let mut log = WriteLog {
            progress: Vec::new(),
            registrations: Vec::new(),
            measured: Measured::new(),
            note: None,
        };
        if let Some(task) = self.progress {
            match task.await {
                Ok((written, measured)) => {
                    log.progress = written;
                    log.measured.merge(measured);
                }
                Err(err) => log.note = Some(format!("the progress writer failed: {err}")),
            }
        }
        if let Some(task) = self.registrations {
            match task.await {
                Ok((arrived, measured, ran_out)) => {
                    log.registrations = arrived;
                    log.measured.merge(measured);
                    if ran_out {
                        log.note = Some(
                            "nobody was left to register: registrations stopped during this run"
                                .to_owned(),
                        );
                    }
                }
                Err(err) => log.note = Some(format!("the registration writer failed: {err}")),
            }
        }
        log
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn a_read_that_starts_after_a_write_arrived_must_show_it() {
        let t = Instant::now();
        let writes = [
            Written {
                at: at(t, 100),
                value: 1,
            },
            Written {
                at: at(t, 200),
                value: 2,
            },
        ];
        let reads = [
            // Before any write: the baseline is enough.
            Seen {
                started: at(t, 50),
                value: 0,
            },
            // Started after write 1 arrived, still showing the baseline: stale.
            Seen {
                started: at(t, 150),
                value: 0,
            },
            // Showing write 1 while write 2 is in flight: fine.
            Seen {
                started: at(t, 150),
                value: 1,
            },
            // Showing a write that had not yet arrived when it started: fine.
            Seen {
                started: at(t, 150),
                value: 2,
            },
            // After write 2 arrived, showing write 1: stale.
            Seen {
                started: at(t, 250),
                value: 1,
            },
            Seen {
                started: at(t, 250),
                value: 2,
            },
        ];
        assert_eq!(stale_reads(0, &writes, &reads), 2);
    }

    #[test]
    fn a_read_starting_the_instant_a_write_arrived_is_not_held_to_it() {
        let t = Instant::now();
        let writes = [Written {
            at: at(t, 100),
            value: 5,
        }];
        let reads = [Seen {
            started: at(t, 100),
            value: 4,
        }];
        assert_eq!(stale_reads(4, &writes, &reads), 0);
        // Below the baseline is stale whenever it starts.
        assert_eq!(
            stale_reads(
                4,
                &writes,
                &[Seen {
                    started: at(t, 0),
                    value: 3
                }]
            ),
            1
        );
    }

    #[test]
    fn writes_out_of_order_hold_reads_to_the_highest_arrived() {
        let t = Instant::now();
        let writes = [
            Written {
                at: at(t, 300),
                value: 2,
            },
            Written {
                at: at(t, 100),
                value: 3,
            },
        ];
        let reads = [Seen {
            started: at(t, 200),
            value: 2,
        }];
        assert_eq!(stale_reads(0, &writes, &reads), 1);
    }

    #[test]
    fn the_note_number_is_read_from_the_writers_text_only() {
        assert_eq!(note_number("Benchmark progress note 41."), 41);
        assert_eq!(note_number("We met with people who draw on care."), 0);
        assert_eq!(note_number("Benchmark progress note x."), 0);
    }

    #[test]
    fn probes_read_the_number_from_an_answer() {
        let wall = Probe::Wall {
            pledge_id: "p2".to_owned(),
        };
        let body = br#"{"data":{"pledges":{"edges":[
            {"node":{"id":"p1","title":"x","latestUpdate":{"body":"Benchmark progress note 9."}}},
            {"node":{"id":"p2","latestUpdate":{"id":"u","body":"Benchmark progress note 7."}}}
        ],"pageInfo":{"hasNextPage":true}}}}"#;
        assert_eq!(wall.value_in_answer(body).ok(), Some(7));
        let missing = br#"{"data":{"pledges":{"edges":[]}}}"#;
        assert!(wall.value_in_answer(missing).is_err());
        let errors = br#"{"data":null,"errors":[{"message":"no"}]}"#;
        assert!(wall.value_in_answer(errors).is_err());
        let page = br#"{"data":{"gathering":{"id":"g","confirmedCount":40,"waitlistedCount":2,"viewerRegistration":null}}}"#;
        assert_eq!(Probe::Gathering.value_in_answer(page).ok(), Some(42));
    }

    #[test]
    fn the_cache_header_and_metrics_are_read_or_left_unknown() {
        assert_eq!(CacheStatus::from_header(Some("HIT")), CacheStatus::Hit);
        assert_eq!(CacheStatus::from_header(Some("miss")), CacheStatus::Miss);
        assert_eq!(CacheStatus::from_header(None), CacheStatus::Absent);
        let text = "# TYPE groundswell_response_cache_hits_total counter\n\
            groundswell_response_cache_hits_total{kind=\"a\"} 3\n\
            groundswell_response_cache_hits_total{kind=\"b\"} 4\n\
            groundswell_response_cache_hits_total_other 100\n\
            groundswell_response_cache_misses_total 2\n";
        assert_eq!(
            metric_total(text, "groundswell_response_cache_hits_total"),
            Some(7.0)
        );
        assert_eq!(
            metric_total(text, "groundswell_response_cache_misses_total"),
            Some(2.0)
        );
        assert_eq!(metric_total(text, "groundswell_http_requests_total"), None);
        assert_eq!(hit_rate(3, 1), Some(0.75));
        assert_eq!(hit_rate(0, 0), None);
    }
}
