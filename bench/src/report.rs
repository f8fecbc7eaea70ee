//! The results: a table for people, JSON for machines, and each target of issue 7 met or missed.

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
    pub rush: Option<Rush>,
    pub digest: Option<Digest>,
    /// The server's resident memory after each phase.
    pub memory: Vec<Phase>,
    /// The server's peak resident memory over the whole run.
    pub peak_memory_mib: f64,
    /// Each target of issue 7, met or missed.
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

/// One read scenario at one concurrency, against Groundswell and against the floor.
#[derive(Debug, Serialize)]
pub struct ScenarioRun {
    pub scenario: &'static str,
    pub clients: usize,
    pub groundswell: Figures,
    pub floor: Figures,
    /// Groundswell's throughput as a share of the floor's.
    pub ratio: f64,
}

impl ScenarioRun {
    pub fn new(
        scenario: &'static str,
        clients: usize,
        groundswell: &Measured,
        floor: &Measured,
    ) -> ScenarioRun {
        let ratio = if floor.throughput() > 0.0 {
            groundswell.throughput() / floor.throughput()
        } else {
            0.0
        };
        ScenarioRun {
            scenario,
            clients,
            groundswell: groundswell.into(),
            floor: floor.into(),
            ratio,
        }
    }
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

const HEADER: &str = "scenario        clients │ Groundswell req/s   p50 ms   p95 ms   p99 ms  errors │ floor req/s   p50 ms   p99 ms │ ratio";

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
}

fn run_line(run: &ScenarioRun) -> String {
    let g = &run.groundswell;
    let f = &run.floor;
    format!(
        "{:<15} {:>7} │ {:>17.0} {:>8.2} {:>8.2} {:>8.2} {:>7} │ {:>11.0} {:>8.2} {:>8.2} │ {:>4.0}%",
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

/// A target from issue 7, and whether this run met it.
#[derive(Debug, Serialize)]
pub struct Target {
    pub target: String,
    pub measured: String,
    pub met: bool,
}

/// Each target of issue 7 that this run measured.
pub fn targets(report: &Report) -> Vec<Target> {
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
                target: format!(
                    "{scenario}, 16 clients: at least {:.0}% of the floor",
                    ratio * 100.0
                ),
                measured: format!("{:.0}%", r.ratio * 100.0),
                met: r.ratio >= ratio,
            });
            targets.push(Target {
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
            target: format!("digest run for {} recipients under 15 s", digest.recipients),
            measured: format!("{:.1} s ({} queued)", digest.seconds, digest.queued),
            met: digest.seconds < 15.0,
        });
    }
    targets.push(Target {
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
    println!("{HEADER}");
    println!("{}", "─".repeat(HEADER.chars().count()));
    for run in &report.runs {
        println!("{}", run_line(run));
    }
    if let Some(rush) = &report.rush {
        print_rush(rush);
    }
    if let Some(digest) = &report.digest {
        print_digest(digest);
    }
    println!("server peak memory: {:.0} MiB", report.peak_memory_mib);
    println!("\ntargets:");
    for target in &report.targets {
        println!(
            "  {} {}: {}",
            if target.met { "met   " } else { "MISSED" },
            target.target,
            target.measured
        );
    }
}
