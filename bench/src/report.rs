//! The results: a table for people, JSON for machines, and each target of issues 7 and 16 met or
//! missed.

use serde::Serialize;

use crate::{load::Measured, seed::Counts, server::Memory};

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub database: String,
    pub seed: u64,
    pub scale: f64,
    pub seed_seconds: f64,
    pub counts: Counts,
    pub pool: u32,
    pub seconds_per_run: u64,
    pub warmup_seconds: u64,
    pub runs: Vec<ScenarioRun>,
    /// How the peer ran, when it did.
    pub peer: Option<PeerInfo>,
    /// The mixed scenario: reads while a writer writes, with the response cache on and off.
    pub mixed: Vec<MixedRun>,
    /// Writes per second the mixed scenario's writer aimed for.
    pub write_rate: f64,
    pub rush: Option<Rush>,
    pub digest: Option<Digest>,
    /// The server's resident memory after each phase.
    pub memory: Vec<Phase>,
    /// The server's peak resident memory over the whole run (the highest of the servers it
    /// started: the benchmark restarts the server to turn the response cache on or off).
    pub peak_memory_mib: f64,
    /// Each target of issues 7 and 16, met or missed.
    pub targets: Vec<Target>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub database: String,
}

impl Machine {
    pub fn read(database: &str) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_gib: memory_kib / 1024.0 / 1024.0,
            database: database.to_owned(),
        }
    }
}

/// Throughput and latency of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub answered: u64,
    pub errors: u64,
    pub timeouts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl From<&Measured> for Figures {
    fn from(m: &Measured) -> Figures {
        Figures {
            requests_per_second: m.throughput(),
            p50_ms: m.latency_ms(0.5),
            p95_ms: m.latency_ms(0.95),
            p99_ms: m.latency_ms(0.99),
            max_ms: m.latency.max() as f64 / 1000.0,
            answered: m.ok,
            errors: m.errors,
            timeouts: m.timeouts,
            first_error: m.first_error.clone(),
        }
    }
}

/// One read scenario at one concurrency, against Groundswell, the floor and the peer.
#[derive(Debug, Serialize)]
pub struct ScenarioRun {
    pub scenario: &'static str,
    pub clients: usize,
    /// Whether Groundswell's response cache was on (the read scenarios run with it off).
    pub response_cache: bool,
    pub groundswell: Figures,
    pub floor: Figures,
    /// Groundswell's throughput as a share of the floor's.
    pub ratio: f64,
    /// PostGraphile 4 over the same database, unless `--no-peer`.
    pub peer: Option<Figures>,
    /// Groundswell's throughput as a multiple of PostGraphile's.
    pub ratio_to_peer: Option<f64>,
}

/// `a`'s throughput as a multiple of `b`'s; 0 when `b` answered nothing.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

impl ScenarioRun {
    pub fn new(
        scenario: &'static str,
        clients: usize,
        groundswell: &Measured,
        floor: &Measured,
        peer: Option<&Measured>,
    ) -> ScenarioRun {
        ScenarioRun {
            scenario,
            clients,
            response_cache: false,
            groundswell: groundswell.into(),
            floor: floor.into(),
            ratio: ratio(groundswell.throughput(), floor.throughput()),
            peer: peer.map(Figures::from),
            ratio_to_peer: peer.map(|p| ratio(groundswell.throughput(), p.throughput())),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct PeerInfo {
    pub version: String,
    /// Node.js processes sharing the port.
    pub workers: usize,
    pub connections_per_worker: u32,
}

/// One side of a mixed run: the reads of Groundswell or of the floor, with what they saw.
#[derive(Clone, Debug, Serialize)]
pub struct MixedSide {
    pub reads: Figures,
    /// Reads whose value was checked against the writes (warm-up included).
    pub reads_checked: u64,
    /// Reads that started after a write's response had arrived and did not show that write.
    pub stale_reads: u64,
    /// Answers marked `X-Cache: HIT` and `MISS` (or counted by the server's metrics).
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Hits as a share of hits and misses; null when the server says nothing of a cache.
    pub cache_hit_rate: Option<f64>,
    pub writes: Writes,
}

/// What the mixed scenario's writer did during one run.
#[derive(Clone, Debug, Serialize)]
pub struct Writes {
    pub progress_updates: u64,
    pub registrations: u64,
    pub errors: u64,
    pub per_second: f64,
    pub p99_ms: f64,
    /// Writes of the kind the page shows, which its reads were checked against.
    pub checked_against: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Set when the people left to register ran out during the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One page of the mixed scenario at one concurrency, with the cache on or off.
#[derive(Debug, Serialize)]
pub struct MixedRun {
    /// "pledge wall" or "anonymous gathering page".
    pub page: &'static str,
    pub clients: usize,
    pub response_cache: bool,
    pub groundswell: MixedSide,
    /// The floor's reads of the same page under the same writes.
    pub floor: Option<MixedSide>,
    /// Groundswell's read throughput as a multiple of the floor's.
    pub ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Rush {
    pub people: usize,
    pub capacity: i64,
    pub confirmed: i64,
    pub confirmed_places: i64,
    pub waitlisted: i64,
    pub figures: Figures,
}

#[derive(Debug, Serialize)]
pub struct Digest {
    pub recipients: usize,
    /// What `send-due-digests` said it queued.
    pub queued: i64,
    /// Digests recorded in the database.
    pub digest_rows: i64,
    /// Messages added to the outbox: digests, and the reminders to owners of quiet pledges
    /// that the same run sends first.
    pub messages_queued: i64,
    pub seconds: f64,
    /// Peak resident memory of the `send-due-digests` process.
    pub peak_memory_mib: f64,
}

#[derive(Debug, Serialize)]
pub struct Phase {
    pub after: &'static str,
    pub resident_mib: f64,
    pub peak_mib: f64,
}

impl Phase {
    pub fn at(after: &'static str, memory: Memory) -> Phase {
        Phase {
            after,
            resident_mib: memory.resident_mib,
            peak_mib: memory.peak_mib,
        }
    }
}

const HEADER: &str = "scenario        clients │ Groundswell req/s   p50 ms   p95 ms   p99 ms  errors │ floor req/s   p50 ms   p99 ms │ ratio │ PostGraphile req/s   p99 ms │ × peer";

pub fn print_run(run: &ScenarioRun) {
    static HEADED: std::sync::Once = std::sync::Once::new();
    HEADED.call_once(|| {
        println!("\n{HEADER}");
        println!("{}", "─".repeat(HEADER.chars().count()));
    });
    println!("{}", run_line(run));
    if let Some(error) = &run.groundswell.first_error {
        println!("    first Groundswell error: {}", truncate(error));
    }
    if let Some(error) = &run.floor.first_error {
        println!("    first floor error: {}", truncate(error));
    }
    if let Some(error) = run.peer.as_ref().and_then(|p| p.first_error.as_ref()) {
        println!("    first PostGraphile error: {}", truncate(error));
    }
}

fn run_line(run: &ScenarioRun) -> String {
    let g = &run.groundswell;
    let f = &run.floor;
    let peer = match (&run.peer, run.ratio_to_peer) {
        (Some(p), Some(r)) => format!(
            "{:>18.0} {:>8.2} │ {:>5.2}×",
            p.requests_per_second, p.p99_ms, r
        ),
        _ => format!("{:>18} {:>8} │ {:>6}", "–", "–", "–"),
    };
    format!(
        "{:<15} {:>7} │ {:>17.0} {:>8.2} {:>8.2} {:>8.2} {:>7} │ {:>11.0} {:>8.2} {:>8.2} │ {:>4.0}% │ {peer}",
        run.scenario,
        run.clients,
        g.requests_per_second,
        g.p50_ms,
        g.p95_ms,
        g.p99_ms,
        g.errors + g.timeouts,
        f.requests_per_second,
        f.p50_ms,
        f.p99_ms,
        run.ratio * 100.0
    )
}

const MIXED_HEADER: &str = "mixed page                clients cache │ reads/s   p50 ms   p99 ms  errors  hit rate  stale/checked │ floor reads/s   p99 ms  stale │ × floor │ writes/s  errors";

pub fn print_mixed(run: &MixedRun) {
    static HEADED: std::sync::Once = std::sync::Once::new();
    HEADED.call_once(|| {
        println!("\n{MIXED_HEADER}");
        println!("{}", "─".repeat(MIXED_HEADER.chars().count()));
    });
    println!("{}", mixed_line(run));
    let side_errors = [
        ("Groundswell", Some(&run.groundswell)),
        ("floor", run.floor.as_ref()),
    ];
    for (who, side) in side_errors {
        if let Some(error) = side.and_then(|s| s.reads.first_error.as_ref()) {
            println!("    first {who} read error: {}", truncate(error));
        }
    }
    if let Some(error) = &run.groundswell.writes.first_error {
        println!("    first write error: {}", truncate(error));
    }
    if let Some(note) = &run.groundswell.writes.note {
        println!("    {note}");
    }
}

fn mixed_line(run: &MixedRun) -> String {
    let g = &run.groundswell;
    let hit_rate = g
        .cache_hit_rate
        .map_or_else(|| "unknown".to_owned(), |r| format!("{:.0}%", r * 100.0));
    let floor = match &run.floor {
        Some(f) => format!(
            "{:>13.0} {:>8.2} {:>6}",
            f.reads.requests_per_second, f.reads.p99_ms, f.stale_reads
        ),
        None => format!("{:>13} {:>8} {:>6}", "–", "–", "–"),
    };
    let ratio = run
        .ratio
        .map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×"));
    format!(
        "{:<25} {:>7} {:<5} │ {:>7.0} {:>8.2} {:>8.2} {:>7} {:>9} {:>14} │ {floor} │ {:>7} │ {:>8.1} {:>7}",
        run.page,
        run.clients,
        if run.response_cache { "on" } else { "off" },
        g.reads.requests_per_second,
        g.reads.p50_ms,
        g.reads.p99_ms,
        g.reads.errors + g.reads.timeouts,
        hit_rate,
        format!("{}/{}", g.stale_reads, g.reads_checked),
        ratio,
        g.writes.per_second,
        g.writes.errors,
    )
}

fn truncate(text: &str) -> String {
    text.chars().take(300).collect()
}

pub fn print_rush(rush: &Rush) {
    let f = &rush.figures;
    println!(
        "\nregistration rush: {} people for {} places: {} answered, {} errors, {} timed out; \
         {} confirmed ({} places), {} waitlisted; p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, all in {:.2} s",
        rush.people,
        rush.capacity,
        f.answered,
        f.errors,
        f.timeouts,
        rush.confirmed,
        rush.confirmed_places,
        rush.waitlisted,
        f.p50_ms,
        f.p95_ms,
        f.p99_ms,
        f.max_ms / 1000.0
    );
    if let Some(error) = &f.first_error {
        println!("    first error: {}", truncate(error));
    }
}

pub fn print_digest(digest: &Digest) {
    println!(
        "digest run: {} queued for {} people with digest preferences ({} messages in all) in {:.2} s, peak memory {:.0} MiB",
        digest.queued,
        digest.recipients,
        digest.messages_queued,
        digest.seconds,
        digest.peak_memory_mib
    );
}

/// A target from an issue, and whether this run met it.
#[derive(Debug, Serialize)]
pub struct Target {
    /// The issue that set it.
    pub issue: u32,
    pub target: String,
    pub measured: String,
    pub met: bool,
    /// False when this run did not measure everything the target names (a scenario left out
    /// with `--only`, or the peer with `--no-peer`); `met` is then false too.
    pub measured_fully: bool,
}

impl Target {
    fn new(
        issue: u32,
        target: impl Into<String>,
        measured: impl Into<String>,
        met: bool,
    ) -> Target {
        Target {
            issue,
            target: target.into(),
            measured: measured.into(),
            met,
            measured_fully: true,
        }
    }

    fn unmeasured(issue: u32, target: impl Into<String>, missing: &str) -> Target {
        Target {
            issue,
            target: target.into(),
            measured: format!("not measured: {missing}"),
            met: false,
            measured_fully: false,
        }
    }
}

/// Each target of issues 16 and 7; issue 16's are all listed, measured or not.
pub fn targets(report: &Report) -> Vec<Target> {
    let mut targets = issue_16_targets(report);
    targets.extend(issue_7_targets(report));
    targets
}

/// Issue 16's table, row by row.
fn issue_16_targets(report: &Report) -> Vec<Target> {
    let mut targets = read_targets(report);
    targets.extend(mixed_targets(report));
    targets.push(wall_p99_target(report));
    targets.extend(rush_and_digest_targets(report));
    targets.push(Target::new(
        16,
        "server peak memory, whole benchmark: under 100 MiB",
        format!("{:.0} MiB", report.peak_memory_mib),
        report.peak_memory_mib < 100.0,
    ));
    targets
}

/// The run of `scenario` at `clients` with the response cache off.
fn uncached_run<'a>(report: &'a Report, scenario: &str, clients: usize) -> Option<&'a ScenarioRun> {
    report
        .runs
        .iter()
        .find(|r| r.scenario == scenario && r.clients == clients && !r.response_cache)
}

/// The uncached read path at 16 clients: the pledge wall against the floor and PostGraphile,
/// the gathering page and the five changes against the floor.
fn read_targets(report: &Report) -> Vec<Target> {
    let mut targets = Vec::new();
    let run = |scenario: &str, clients: usize| uncached_run(report, scenario, clients);
    let target =
        "pledge wall, 16 clients, cache off: at least 40% of the floor and 3× PostGraphile";
    targets.push(match run("pledge wall", 16) {
        None => Target::unmeasured(16, target, "no pledge wall run at 16 clients"),
        Some(r) => match r.ratio_to_peer {
            Some(peer) => Target::new(
                16,
                target,
                format!(
                    "{:.0}% of the floor, {peer:.2}× PostGraphile",
                    r.ratio * 100.0
                ),
                r.ratio >= 0.40 && peer >= 3.0,
            ),
            None => Target {
                measured: format!(
                    "{:.0}% of the floor; PostGraphile not measured",
                    r.ratio * 100.0
                ),
                ..Target::unmeasured(16, target, "")
            },
        },
    });
    for (scenario, label, share) in [
        (
            "gathering page",
            "gathering page signed in, 16 clients",
            0.45,
        ),
        ("five changes", "five changes, 16 clients, cache off", 0.50),
    ] {
        let target = format!("{label}: at least {:.0}% of the floor", share * 100.0);
        targets.push(match run(scenario, 16) {
            None => Target::unmeasured(16, target, "no run at 16 clients"),
            Some(r) => Target::new(
                16,
                target,
                format!("{:.0}% of the floor", r.ratio * 100.0),
                r.ratio >= share,
            ),
        });
    }
    targets
}

/// The mixed scenario with the cache on, per page, and no stale read in any mixed run.
fn mixed_targets(report: &Report) -> Vec<Target> {
    let mut targets = Vec::new();
    let mixed = |page: &str, clients: usize| {
        report
            .mixed
            .iter()
            .find(|r| r.page == page && r.clients == clients && r.response_cache)
    };
    for (page, times) in [("pledge wall", 1.5), ("anonymous gathering page", 1.0)] {
        let target = format!(
            "{page}, mixed, 16 clients, cache on: at least {times}× the floor, 0 stale reads"
        );
        targets.push(match mixed(page, 16) {
            None => Target::unmeasured(16, target, "no mixed run with the cache on at 16 clients"),
            Some(r) => match r.ratio {
                None => Target::unmeasured(16, target, "the floor's mixed run"),
                Some(_) if r.groundswell.writes.checked_against == 0 => Target {
                    measured: "no writes to check the reads against".to_owned(),
                    ..Target::unmeasured(16, target, "")
                },
                Some(ratio) => Target::new(
                    16,
                    target,
                    format!(
                        "{ratio:.2}× the floor, {} stale of {} reads",
                        r.groundswell.stale_reads, r.groundswell.reads_checked
                    ),
                    ratio >= times
                        && r.groundswell.stale_reads == 0
                        && r.groundswell.reads_checked > 0,
                ),
            },
        });
    }
    let target = "every mixed run, cache on or off: 0 stale reads";
    targets.push(if report.mixed.is_empty() {
        Target::unmeasured(16, target, "no mixed runs")
    } else {
        let stale: u64 = report.mixed.iter().map(|r| r.groundswell.stale_reads).sum();
        let checked: u64 = report.mixed.iter().map(|r| r.groundswell.reads_checked).sum();
        let unchecked = report
            .mixed
            .iter()
            .filter(|r| r.groundswell.writes.checked_against == 0)
            .count();
        if stale == 0 && unchecked > 0 {
            Target {
                measured: format!(
                    "0 stale of {checked} reads, but {unchecked} runs had no writes to check against"
                ),
                ..Target::unmeasured(16, target, "")
            }
        } else {
            Target::new(
                16,
                target,
                format!("{stale} stale of {checked} reads"),
                stale == 0 && checked > 0,
            )
        }
    });
    targets
}

/// The pledge wall's tail latency at 64 clients, cache off.
fn wall_p99_target(report: &Report) -> Target {
    let target = "pledge wall p99 at 64 clients, cache off: under 120 ms";
    match uncached_run(report, "pledge wall", 64) {
        None => Target::unmeasured(16, target, "no pledge wall run at 64 clients"),
        Some(r) => Target::new(
            16,
            target,
            format!("{:.1} ms", r.groundswell.p99_ms),
            r.groundswell.p99_ms < 120.0,
        ),
    }
}

/// The registration rush and the digest run.
fn rush_and_digest_targets(report: &Report) -> Vec<Target> {
    let mut targets = Vec::new();
    let target = "registration rush: p99 under 800 ms, none over capacity";
    targets.push(match &report.rush {
        None => Target::unmeasured(16, target, "the rush was left out"),
        Some(rush) => Target::new(
            16,
            target,
            format!(
                "p99 {:.0} ms, {} of {} places, {} of {} answered",
                rush.figures.p99_ms,
                rush.confirmed_places,
                rush.capacity,
                rush.figures.answered,
                rush.people
            ),
            rush.figures.p99_ms < 800.0
                && rush.confirmed_places <= rush.capacity
                && rush.figures.answered == rush.people as u64,
        ),
    });
    let target = "digest run: under 10 s and under 150 MiB";
    targets.push(match &report.digest {
        None => Target::unmeasured(16, target, "the digest run was left out"),
        Some(d) => Target::new(
            16,
            format!(
                "digest run, {} people: under 10 s and under 150 MiB",
                d.recipients
            ),
            format!("{:.1} s, {:.0} MiB", d.seconds, d.peak_memory_mib),
            d.seconds < 10.0 && d.peak_memory_mib < 150.0,
        ),
    });
    targets
}

/// Each target of issue 7 that this run measured.
fn issue_7_targets(report: &Report) -> Vec<Target> {
    let mut targets = Vec::new();
    let run = |scenario: &str, clients: usize| {
        report
            .runs
            .iter()
            .find(|r| r.scenario == scenario && r.clients == clients)
    };
    for (scenario, ratio, p99) in [("pledge wall", 0.45, 30.0), ("gathering page", 0.50, 10.0)] {
        if let Some(r) = run(scenario, 16) {
            targets.push(Target {
                issue: 7,
                measured_fully: true,
                target: format!(
                    "{scenario}, 16 clients: at least {:.0}% of the floor",
                    ratio * 100.0
                ),
                measured: format!("{:.0}%", r.ratio * 100.0),
                met: r.ratio >= ratio,
            });
            targets.push(Target {
                issue: 7,
                measured_fully: true,
                target: format!("{scenario}, 16 clients: p99 under {p99} ms"),
                measured: format!("{:.1} ms", r.groundswell.p99_ms),
                met: r.groundswell.p99_ms < p99,
            });
        }
    }
    // The issue sets this one at 16 clients: at 256, 2,000 req/s means 128 ms waits by
    // Little's law, whatever the server.
    if let Some(r) = run("five changes", 16) {
        targets.push(Target {
            issue: 7,
            measured_fully: true,
            target: "five changes, 16 clients: 2,000 req/s, p99 under 20 ms".to_owned(),
            measured: format!(
                "{:.0} req/s, p99 {:.1} ms",
                r.groundswell.requests_per_second, r.groundswell.p99_ms
            ),
            met: r.groundswell.requests_per_second >= 2000.0 && r.groundswell.p99_ms < 20.0,
        });
    }
    for (scenario, p99) in [("pledge wall", 150.0), ("gathering page", 50.0)] {
        if let (Some(base), Some(r)) = (run(scenario, 16), run(scenario, 64)) {
            let held = r.groundswell.requests_per_second / base.groundswell.requests_per_second;
            targets.push(Target {
                issue: 7,
                measured_fully: true,
                target: format!(
                    "{scenario}, 64 clients: at least 90% of the 16-client throughput, p99 under {p99} ms"
                ),
                measured: format!("{:.0}%, p99 {:.1} ms", held * 100.0, r.groundswell.p99_ms),
                met: held >= 0.9 && r.groundswell.p99_ms < p99,
            });
        }
    }
    for scenario in ["gathering page", "pledge wall", "five changes"] {
        if let (Some(base), Some(r)) = (run(scenario, 16), run(scenario, 256)) {
            let held = r.groundswell.requests_per_second / base.groundswell.requests_per_second;
            targets.push(Target {
                issue: 7,
                measured_fully: true,
                target: format!(
                    "{scenario}, 256 clients: throughput holds (90% of 16 clients), no errors or timeouts"
                ),
                measured: format!(
                    "{:.0}%, {} errors, {} timeouts",
                    held * 100.0,
                    r.groundswell.errors,
                    r.groundswell.timeouts
                ),
                met: held >= 0.9 && r.groundswell.errors == 0 && r.groundswell.timeouts == 0,
            });
        }
    }
    if let Some(rush) = &report.rush {
        targets.push(Target {
            issue: 7,
            measured_fully: true,
            target: format!(
                "registration rush: all {} answered, none over capacity, p99 under 500 ms",
                rush.people
            ),
            measured: format!(
                "{} answered, {} of {} places, p99 {:.0} ms",
                rush.figures.answered, rush.confirmed_places, rush.capacity, rush.figures.p99_ms
            ),
            met: rush.figures.answered == rush.people as u64
                && rush.confirmed_places <= rush.capacity
                && rush.figures.p99_ms < 500.0,
        });
    }
    if let Some(digest) = &report.digest {
        targets.push(Target {
            issue: 7,
            measured_fully: true,
            target: format!("digest run for {} recipients under 15 s", digest.recipients),
            measured: format!("{:.1} s ({} queued)", digest.seconds, digest.queued),
            met: digest.seconds < 15.0,
        });
    }
    targets.push(Target {
        issue: 7,
        measured_fully: true,
        target: "server peak memory under 100 MB throughout".to_owned(),
        measured: format!(
            "{:.0} MiB serving; {:.0} MiB queueing digests",
            report.peak_memory_mib,
            report.digest.as_ref().map_or(0.0, |d| d.peak_memory_mib)
        ),
        met: report.peak_memory_mib < 100.0
            && report
                .digest
                .as_ref()
                .is_none_or(|d| d.peak_memory_mib < 100.0),
    });
    targets
}

/// Prints the whole report: every run, then the targets.
pub fn print(report: &Report) {
    let m = &report.machine;
    println!(
        "\nGroundswell benchmark on {} ({} cores, {:.0} GiB), {}; release build over HTTP on loopback",
        m.cpu, m.cores, m.memory_gib, m.database
    );
    println!(
        "movement: {} organisations, {} pledges, {} updates, {} coalitions, {} gatherings, {} registrations, {} digest people (seed {}, scale {}, loaded in {:.1} s); pool {}, {} s per run after {} s warm-up\n",
        report.counts.organisations,
        report.counts.pledges,
        report.counts.progress_updates,
        report.counts.coalitions,
        report.counts.gatherings,
        report.counts.registrations,
        report.counts.digest_people,
        report.seed,
        report.scale,
        report.seed_seconds,
        report.pool,
        report.seconds_per_run,
        report.warmup_seconds,
    );
    if let Some(peer) = &report.peer {
        println!(
            "peer: {} on Node.js, {} processes with {} database connections each\n",
            peer.version, peer.workers, peer.connections_per_worker
        );
    }
    println!("{HEADER}");
    println!("{}", "─".repeat(HEADER.chars().count()));
    for run in &report.runs {
        println!("{}", run_line(run));
    }
    if !report.mixed.is_empty() {
        println!(
            "\nmixed: reads while a writer posts progress updates and registrations, {} a second",
            report.write_rate
        );
        println!("{MIXED_HEADER}");
        println!("{}", "─".repeat(MIXED_HEADER.chars().count()));
        for run in &report.mixed {
            println!("{}", mixed_line(run));
        }
    }
    if let Some(rush) = &report.rush {
        print_rush(rush);
    }
    if let Some(digest) = &report.digest {
        print_digest(digest);
    }
    println!("server peak memory: {:.0} MiB", report.peak_memory_mib);
    for issue in [16, 7] {
        println!("\ntargets of issue {issue}:");
        for target in report.targets.iter().filter(|t| t.issue == issue) {
            let verdict = match (target.met, target.measured_fully) {
                (true, _) => "met     ",
                (false, true) => "MISSED  ",
                (false, false) => "unknown ",
            };
            println!("  {verdict}{}: {}", target.target, target.measured);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(requests_per_second: f64, p99_ms: f64) -> Figures {
        Figures {
            requests_per_second,
            p50_ms: p99_ms / 2.0,
            p95_ms: p99_ms,
            p99_ms,
            max_ms: p99_ms,
            answered: 100,
            errors: 0,
            timeouts: 0,
            first_error: None,
        }
    }

    fn report() -> Report {
        Report {
            machine: Machine {
                cpu: "test".to_owned(),
                cores: 2,
                memory_gib: 1.0,
                database: "PostgreSQL".to_owned(),
            },
            database: "PostgreSQL".to_owned(),
            seed: 1,
            scale: 1.0,
            seed_seconds: 1.0,
            counts: Counts::default(),
            pool: 10,
            seconds_per_run: 10,
            warmup_seconds: 2,
            runs: Vec::new(),
            peer: None,
            mixed: Vec::new(),
            write_rate: 20.0,
            rush: None,
            digest: None,
            memory: Vec::new(),
            peak_memory_mib: 90.0,
            targets: Vec::new(),
        }
    }

    fn read_run(
        scenario: &'static str,
        clients: usize,
        ours: f64,
        floor: f64,
        peer: Option<f64>,
    ) -> ScenarioRun {
        ScenarioRun {
            scenario,
            clients,
            response_cache: false,
            groundswell: figures(ours, 50.0),
            floor: figures(floor, 5.0),
            ratio: ratio(ours, floor),
            peer: peer.map(|p| figures(p, 80.0)),
            ratio_to_peer: peer.map(|p| ratio(ours, p)),
        }
    }

    fn side(rps: f64, stale: u64, checked_against: u64) -> MixedSide {
        MixedSide {
            reads: figures(rps, 10.0),
            reads_checked: 1000,
            stale_reads: stale,
            cache_hits: 900,
            cache_misses: 100,
            cache_hit_rate: hit_rate_of(900, 100),
            writes: Writes {
                progress_updates: checked_against,
                registrations: checked_against,
                errors: 0,
                per_second: 20.0,
                p99_ms: 30.0,
                checked_against,
                first_error: None,
                note: None,
            },
        }
    }

    fn hit_rate_of(hits: u64, misses: u64) -> Option<f64> {
        crate::mixed::hit_rate(hits, misses)
    }

    fn mixed_run(page: &'static str, ours: f64, floor: f64, stale: u64, writes: u64) -> MixedRun {
        MixedRun {
            page,
            clients: 16,
            response_cache: true,
            groundswell: side(ours, stale, writes),
            floor: Some(side(floor, 0, writes)),
            ratio: Some(ratio(ours, floor)),
        }
    }

    fn find<'a>(targets: &'a [Target], starts: &str) -> &'a Target {
        targets
            .iter()
            .find(|t| t.issue == 16 && t.target.starts_with(starts))
            .unwrap_or_else(|| panic!("no target starting {starts:?}"))
    }

    #[test]
    fn every_row_of_issue_16_is_listed_even_when_nothing_was_measured() {
        let targets = targets(&report());
        let rows: Vec<&Target> = targets.iter().filter(|t| t.issue == 16).collect();
        assert_eq!(rows.len(), 10);
        // Only the memory row is measured by every run.
        let measured: Vec<&str> = rows
            .iter()
            .filter(|t| t.measured_fully)
            .map(|t| t.target.as_str())
            .collect();
        assert_eq!(
            measured,
            ["server peak memory, whole benchmark: under 100 MiB"]
        );
        assert!(rows.iter().all(|t| t.measured_fully || !t.met));
    }

    #[test]
    fn the_pledge_wall_needs_both_its_share_of_the_floor_and_three_times_the_peer() {
        let cases = [
            (450.0, Some(150.0), true),
            (450.0, Some(151.0), false),
            (399.0, Some(100.0), false),
        ];
        for (ours, peer, met) in cases {
            let mut r = report();
            r.runs.push(read_run("pledge wall", 16, ours, 1000.0, peer));
            let t = targets(&r);
            let target = find(&t, "pledge wall, 16 clients, cache off");
            assert_eq!(
                (target.met, target.measured_fully),
                (met, true),
                "{ours} {peer:?}"
            );
        }
        let mut r = report();
        r.runs
            .push(read_run("pledge wall", 16, 900.0, 1000.0, None));
        let t = targets(&r);
        let target = find(&t, "pledge wall, 16 clients, cache off");
        assert!(!target.met && !target.measured_fully, "{target:?}");
        assert!(target.measured.contains("90% of the floor"));
    }

    #[test]
    fn shares_of_the_floor_and_latency_are_judged_at_their_own_concurrency() {
        let mut r = report();
        r.runs
            .push(read_run("gathering page", 16, 450.0, 1000.0, None));
        r.runs
            .push(read_run("five changes", 16, 499.0, 1000.0, None));
        r.runs
            .push(read_run("pledge wall", 64, 100.0, 1000.0, None));
        let t = targets(&r);
        assert!(find(&t, "gathering page signed in").met);
        assert!(!find(&t, "five changes, 16 clients").met);
        // p99 of 50 ms at 64 clients.
        assert!(find(&t, "pledge wall p99 at 64 clients").met);
    }

    #[test]
    fn a_mixed_run_meets_its_target_only_with_no_stale_reads_and_writes_to_check() {
        let mut r = report();
        r.mixed
            .push(mixed_run("pledge wall", 1500.0, 1000.0, 0, 200));
        r.mixed
            .push(mixed_run("anonymous gathering page", 999.0, 1000.0, 0, 200));
        let t = targets(&r);
        assert!(find(&t, "pledge wall, mixed").met);
        assert!(!find(&t, "anonymous gathering page, mixed").met);
        assert!(find(&t, "every mixed run").met);

        let mut r = report();
        r.mixed
            .push(mixed_run("pledge wall", 5000.0, 1000.0, 1, 200));
        let t = targets(&r);
        assert!(!find(&t, "pledge wall, mixed").met);
        assert!(find(&t, "pledge wall, mixed").measured_fully);
        assert!(!find(&t, "every mixed run").met);

        let mut r = report();
        r.mixed.push(mixed_run("pledge wall", 5000.0, 1000.0, 0, 0));
        let t = targets(&r);
        let wall = find(&t, "pledge wall, mixed");
        assert!(!wall.met && !wall.measured_fully);
        assert!(!find(&t, "every mixed run").measured_fully);
    }

    #[test]
    fn the_rush_digests_and_memory_have_their_limits() {
        let mut r = report();
        r.rush = Some(Rush {
            people: 2000,
            capacity: 300,
            confirmed: 300,
            confirmed_places: 300,
            waitlisted: 1700,
            figures: Figures {
                answered: 2000,
                ..figures(1000.0, 799.0)
            },
        });
        r.digest = Some(Digest {
            recipients: 5000,
            queued: 5000,
            digest_rows: 5000,
            messages_queued: 6000,
            seconds: 9.9,
            peak_memory_mib: 150.0,
        });
        r.peak_memory_mib = 100.0;
        let t = targets(&r);
        assert!(find(&t, "registration rush").met);
        assert!(!find(&t, "digest run").met, "150 MiB is not under 150");
        assert!(!find(&t, "server peak memory").met);
    }
}
