//! One benchmark run: a fresh database seeded at scale, the release server started on it, and
//! the scenarios driven over HTTP, each read scenario also measured against the floor.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Utc};
use groundswell_domain::secrets::hash_token;
use groundswell_migration::MigratorTrait;
use serde_json::{Value, json};
// The database name is made here from the process id, never from input.
use sqlx::{AssertSqlSafe, Connection};

use crate::{
    client::{Client, Prepared},
    floor::Floor,
    load::{self, Measured, Outcome},
    mixed,
    peer::{self, Peer},
    report::{self, Digest, Machine, MixedRun, Phase, Report, Rush, ScenarioRun},
    seed::{self, Fixture},
    server::{self, Server},
};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run on SQLite (a fresh file) instead of PostgreSQL.
    #[arg(long)]
    sqlite: bool,
    /// The PostgreSQL server to make the benchmark's database on.
    #[arg(
        long,
        env = "BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    /// The seed number of the movement.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The movement's size; 1.0 is the full size.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Concurrent clients for the read scenarios, each a run of its own.
    #[arg(long, value_delimiter = ',', default_values_t = [16, 64, 256])]
    clients: Vec<usize>,
    /// Seconds each read run is measured for, after its warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of warm-up before each read run.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Database connections for the server, and for the floor.
    #[arg(long, default_value_t = 10)]
    pool: u32,
    /// The server binary; by default the `groundswell` beside this executable.
    #[arg(long)]
    server: Option<PathBuf>,
    /// Run only these scenarios (gathering-page, pledge-wall, five-changes, mixed, rush,
    /// digests); all of them by default.
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Scenario>,
    /// Leave out the peer, PostGraphile 4 (bench/postgraphile), which otherwise answers
    /// scenarios 1 to 3 beside Groundswell and the floor (PostgreSQL only).
    #[arg(long)]
    no_peer: bool,
    /// Node.js processes PostGraphile runs, sharing `--pool` connections among them; by
    /// default one per core, as a production deployment would.
    #[arg(long)]
    peer_workers: Option<usize>,
    /// Where serve.js and its installed packages are; bench/postgraphile by default.
    #[arg(long)]
    peer_dir: Option<PathBuf>,
    /// Concurrent readers in the mixed scenario, each a run of its own.
    #[arg(long, value_delimiter = ',', default_values_t = [16, 64])]
    mixed_clients: Vec<usize>,
    /// Writes per second in the mixed scenario: progress updates and registrations, half each.
    #[arg(long, default_value_t = 20.0)]
    write_rate: f64,
    /// Where to write the results as JSON.
    #[arg(long, default_value_os_t = crate::default_json())]
    json: PathBuf,
}

pub(crate) const GATHERING_PAGE: &str = "query GatheringPage($slug: String!) { gathering(slug: $slug) { \
    id title startsAt endsAt format venue placesLeft confirmedCount confirmedPlaces \
    waitlistedCount registrationOpen viewerRegistration { id status mode companions waitlistPosition } } }";

/// The gathering page as someone not signed in loads it: public fields only (their own
/// registration is private), so a response cache may keep it.
pub(crate) const ANONYMOUS_GATHERING_PAGE: &str = "query AnonymousGatheringPage($slug: String!) { gathering(slug: $slug) { \
    id title startsAt endsAt format venue placesLeft confirmedCount confirmedPlaces \
    waitlistedCount registrationOpen } }";

pub(crate) const PLEDGE_WALL: &str = "query PledgeWall($change: Change!) { pledges(first: 50, filter: { changes: [$change] }) { \
    edges { node { id title status createdAt organisation { id name slug kind region } changes \
    latestUpdate { id signal percentComplete postedAt body } } } pageInfo { hasNextPage endCursor } } }";

pub(crate) const FIVE_CHANGES: &str = "{ changes { change title pledgeCount organisationCount coalitionCount \
    progressUpdateCount lastProgressAt } }";

const REGISTER: &str = "mutation Register($gathering: ID!) { register(input: { gatheringId: $gathering }) { \
    id status waitlistPosition } }";

/// Every scenario, for `--only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    GatheringPage,
    PledgeWall,
    FiveChanges,
    Mixed,
    Rush,
    Digests,
}

impl RunArgs {
    fn runs(&self, scenario: Scenario) -> bool {
        self.only.is_empty() || self.only.contains(&scenario)
    }

    /// Whether any read scenario runs: they run with the response cache off.
    fn runs_reads(&self) -> bool {
        READS.iter().any(|read| self.runs(read.scenario()))
    }
}

const READS: [Read; 3] = [Read::GatheringPage, Read::PledgeWall, Read::FiveChanges];

/// The read scenarios, in the order they run.
#[derive(Clone, Copy, Debug)]
enum Read {
    GatheringPage,
    PledgeWall,
    FiveChanges,
}

impl Read {
    fn scenario(self) -> Scenario {
        match self {
            Read::GatheringPage => Scenario::GatheringPage,
            Read::PledgeWall => Scenario::PledgeWall,
            Read::FiveChanges => Scenario::FiveChanges,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Read::GatheringPage => "gathering page",
            Read::PledgeWall => "pledge wall",
            Read::FiveChanges => "five changes",
        }
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let binary = match &args.server {
        Some(path) => path.clone(),
        None => server::default_binary()?,
    };
    let scratch = std::env::temp_dir().join(format!("groundswell-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let database = if args.sqlite {
        let path = scratch.join("groundswell.db");
        TempDatabase::Sqlite(format!("sqlite://{}?mode=rwc", path.display()))
    } else {
        TempDatabase::create_postgres(&args.postgres_url).await?
    };
    let outcome = measure(&args, &binary, &database, &scratch).await;
    database.drop().await;
    std::fs::remove_dir_all(&scratch).ok();
    let report = outcome?;
    report::print(&report);
    if let Some(parent) = args.json.parent() {
        std::fs::create_dir_all(parent).ok();
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", args.json.display()))?;
    println!("\nResults written to {}.", args.json.display());
    Ok(())
}

async fn measure(
    args: &RunArgs,
    binary: &std::path::Path,
    database: &TempDatabase,
    scratch: &std::path::Path,
) -> anyhow::Result<Report> {
    let url = database.url();
    println!(
        "Seeding the movement (seed {}, scale {}) …",
        args.seed, args.scale
    );
    let started = Instant::now();
    let db = sea_orm::Database::connect(url)
        .await
        .context("connecting to the benchmark database")?;
    groundswell_migration::Migrator::up(&db, None).await?;
    let fixture = seed::load(&db, args.seed, args.scale, Utc::now()).await?;
    db.close().await?;
    let seed_seconds = started.elapsed().as_secs_f64();
    println!("Seeded in {seed_seconds:.1} s: {:?}", fixture.counts);

    // The read scenarios and the mixed scenario's first pass run with the response cache off;
    // the mixed scenario's second pass, the rush and the digests with it on (the default).
    let cache_first = !(args.runs_reads() || args.runs(Scenario::Mixed));
    let mut running = Running {
        server: Some(
            Server::start(binary, url, &scratch.join("mail"), args.pool, cache_first).await?,
        ),
        binary,
        url,
        mail: scratch.join("mail"),
        pool: args.pool,
        response_cache: cache_first,
        peak_mib: 0.0,
    };
    let floor = Floor::connect(url, args.pool).await?;
    let mut phases = vec![Phase::at("started", running.server()?.memory()?)];

    let result = async {
        let mut client = Client::new(running.server()?.url())?;
        agree(&client, &floor, &fixture).await?;
        println!(
            "Groundswell and the floor return the same data for scenarios 1 to 3 and the anonymous gathering page."
        );
        let mut runs = Vec::new();
        let peer = start_peer(args, url, &client, &fixture).await?;
        let peer_client = match &peer {
            Some((peer, _)) => Some(Client::new(peer.url())?),
            None => None,
        };
        for read in READS {
            if !args.runs(read.scenario()) {
                continue;
            }
            for &clients in &args.clients {
                let groundswell = drive_graphql(args, read, clients, &client, &GROUNDSWELL_QUERIES, &fixture).await;
                let raw = drive_floor(args, read, clients, &floor, &fixture).await;
                let theirs = match &peer_client {
                    Some(peer) => Some(
                        drive_graphql(args, read, clients, peer, &PEER_QUERIES, &fixture).await,
                    ),
                    None => None,
                };
                let run = ScenarioRun::new(read.name(), clients, &groundswell, &raw, theirs.as_ref());
                report::print_run(&run);
                runs.push(run);
            }
            phases.push(Phase::at(read.name(), running.server()?.memory()?));
        }
        let peer_info = match peer {
            Some((peer, info)) => {
                peer.stop().await;
                Some(info)
            }
            None => None,
        };
        let mut mixed = Vec::new();
        if args.runs(Scenario::Mixed) {
            if floor.is_postgres() {
                mixed = mixed_scenario(args, &mut running, &mut client, &floor, &fixture).await?;
                phases.push(Phase::at("mixed scenario", running.server()?.memory()?));
                wait_for_mail(&floor).await?;
            } else {
                println!("The mixed scenario runs on PostgreSQL only; left out on SQLite.");
            }
        }
        if !running.response_cache && (args.runs(Scenario::Rush) || args.runs(Scenario::Digests)) {
            running.restart(true).await?;
            client = Client::new(running.server()?.url())?;
        }
        let mut rush_run = None;
        if args.runs(Scenario::Rush) {
            rush_run = Some(rush(&client, &fixture).await?);
            phases.push(Phase::at("registration rush", running.server()?.memory()?));
            wait_for_mail(&floor).await?;
        }
        let mut digest = None;
        if args.runs(Scenario::Digests) {
            digest = Some(digest_run(binary, url, &floor, &fixture).await?);
            phases.push(Phase::at("digest run", running.server()?.memory()?));
            wait_for_mail(&floor).await?;
            phases.push(Phase::at("digests delivered", running.server()?.memory()?));
        }
        let rush = rush_run;
        anyhow::Ok((runs, peer_info, mixed, rush, digest))
    }
    .await;
    floor.close().await;
    let (stopped, peak) = running.stop().await;
    let (runs, peer, mixed, rush, digest) = result?;
    stopped?;
    let mut report = Report {
        machine: Machine::read(&floor_version(url).await),
        database: if args.sqlite { "SQLite" } else { "PostgreSQL" }.to_owned(),
        seed: args.seed,
        scale: args.scale,
        seed_seconds,
        counts: fixture.counts.clone(),
        pool: args.pool,
        seconds_per_run: args.seconds,
        warmup_seconds: args.warmup,
        runs,
        peer,
        mixed,
        write_rate: args.write_rate,
        rush,
        digest,
        memory: phases,
        peak_memory_mib: peak,
        targets: Vec::new(),
    };
    report.targets = report::targets(&report);
    Ok(report)
}

/// The query texts a GraphQL system answers the three read scenarios with.
struct Queries {
    gathering_page: &'static str,
    pledge_wall: &'static str,
    five_changes: &'static str,
}

const GROUNDSWELL_QUERIES: Queries = Queries {
    gathering_page: GATHERING_PAGE,
    pledge_wall: PLEDGE_WALL,
    five_changes: FIVE_CHANGES,
};

const PEER_QUERIES: Queries = Queries {
    gathering_page: peer::GATHERING_PAGE,
    pledge_wall: peer::PLEDGE_WALL,
    five_changes: peer::FIVE_CHANGES,
};

/// Drives `read` against a GraphQL system (Groundswell or the peer, by `queries`) with
/// `clients` concurrent clients.
async fn drive_graphql(
    args: &RunArgs,
    read: Read,
    clients: usize,
    client: &Client,
    queries: &Queries,
    fixture: &Fixture,
) -> Measured {
    let requests: Arc<Vec<Prepared>> = Arc::new(match read {
        Read::GatheringPage => fixture
            .page_callers
            .iter()
            .map(|token| {
                Prepared::new(
                    queries.gathering_page,
                    json!({ "slug": fixture.page_gathering_slug }),
                    Some(token),
                )
            })
            .collect(),
        Read::PledgeWall => vec![Prepared::new(
            queries.pledge_wall,
            json!({ "change": fixture.wall_change }),
            None,
        )],
        Read::FiveChanges => vec![Prepared::new(queries.five_changes, json!({}), None)],
    });
    let client = client.clone();
    load::closed_loop(
        clients,
        Duration::from_secs(args.warmup),
        Duration::from_secs(args.seconds),
        move |index, iteration| {
            let client = client.clone();
            let requests = requests.clone();
            async move {
                let request = &requests[caller(index, iteration, requests.len())];
                client.send(request).await
            }
        },
    )
    .await
}

/// Drives the floor's statement for `read` with `clients` concurrent clients.
async fn drive_floor(
    args: &RunArgs,
    read: Read,
    clients: usize,
    floor: &Floor,
    fixture: &Fixture,
) -> Measured {
    let hashes: Arc<Vec<String>> =
        Arc::new(fixture.page_callers.iter().map(|t| hash_token(t)).collect());
    let slug: Arc<str> = fixture.page_gathering_slug.as_str().into();
    let change: Arc<str> = fixture.wall_change.as_str().into();
    let floor = Arc::new(floor.clone());
    load::closed_loop(
        clients,
        Duration::from_secs(args.warmup),
        Duration::from_secs(args.seconds),
        move |index, iteration| {
            let (floor, hashes, slug, change) =
                (floor.clone(), hashes.clone(), slug.clone(), change.clone());
            async move {
                let answered = match read {
                    Read::GatheringPage => {
                        let hash = &hashes[caller(index, iteration, hashes.len())];
                        floor
                            .gathering_page(hash, &slug, Utc::now())
                            .await
                            .map(drop)
                    }
                    Read::PledgeWall => floor.pledge_wall(&change).await.map(drop),
                    Read::FiveChanges => floor.five_changes().await.map(drop),
                };
                match answered {
                    Ok(()) => Outcome::Ok,
                    Err(err) => Outcome::Error(format!("{err:#}")),
                }
            }
        },
    )
    .await
}

/// Starts PostGraphile when a read scenario runs on PostgreSQL and `--no-peer` is not given,
/// and checks that it answers with Groundswell's data.
async fn start_peer(
    args: &RunArgs,
    url: &str,
    client: &Client,
    fixture: &Fixture,
) -> anyhow::Result<Option<(Peer, report::PeerInfo)>> {
    if args.no_peer || !args.runs_reads() {
        return Ok(None);
    }
    if !url.starts_with("postgres") {
        println!("PostGraphile serves PostgreSQL only; the peer is left out on SQLite.");
        return Ok(None);
    }
    let workers = args
        .peer_workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let dir = args.peer_dir.clone().unwrap_or_else(peer::default_dir);
    // The same connections in all as Groundswell's pool, shared among the processes.
    let per_worker = args
        .pool
        .div_ceil(u32::try_from(workers.max(1)).unwrap_or(1))
        .max(1);
    let started = Peer::start(&dir, url, per_worker, workers).await?;
    let checked = async { peer::agree(client, &Client::new(started.url())?, fixture).await }.await;
    if let Err(err) = checked {
        started.stop().await;
        return Err(err.context("PostGraphile and Groundswell disagree; nothing was measured"));
    }
    let info = report::PeerInfo {
        version: peer::version(&dir),
        workers,
        connections_per_worker: per_worker,
    };
    println!(
        "{} ({workers} Node.js processes, {per_worker} database connections each) returns the same data as Groundswell for scenarios 1 to 3.",
        info.version
    );
    Ok(Some((started, info)))
}

/// The mixed scenario: each page at each concurrency with the response cache off (and the
/// floor beside it, under the same writes), then the server restarted with the cache on and
/// each again.
async fn mixed_scenario(
    args: &RunArgs,
    running: &mut Running<'_>,
    client: &mut Client,
    floor: &Floor,
    fixture: &Fixture,
) -> anyhow::Result<Vec<MixedRun>> {
    let setup = Arc::new(mixed::Setup::prepare(client, floor, fixture).await?);
    println!(
        "Mixed scenario: readers while a writer posts {} writes a second …",
        args.write_rate
    );
    let plan = |clients| mixed::Plan {
        clients,
        warmup: Duration::from_secs(args.warmup),
        measure: Duration::from_secs(args.seconds),
        write_rate: args.write_rate,
    };
    let mut runs: Vec<MixedRun> = Vec::new();
    for response_cache in [false, true] {
        if running.response_cache != response_cache {
            running.restart(response_cache).await?;
            *client = Client::new(running.server()?.url())?;
        }
        for page in [mixed::Page::Wall, mixed::Page::Gathering] {
            for &clients in &args.mixed_clients {
                let plan = plan(clients);
                let groundswell = mixed::run(
                    page,
                    mixed::Reader::Groundswell(client),
                    client,
                    floor,
                    &setup,
                    &plan,
                )
                .await?;
                // The floor once, beside the first pass.
                let raw = if response_cache {
                    runs.iter()
                        .find(|r| r.page == page.name() && r.clients == clients)
                        .and_then(|r| r.floor.clone())
                } else {
                    Some(
                        mixed::run(
                            page,
                            mixed::Reader::Floor(floor),
                            client,
                            floor,
                            &setup,
                            &plan,
                        )
                        .await?,
                    )
                };
                let ratio = raw.as_ref().map(|f| {
                    report::ratio(
                        groundswell.reads.requests_per_second,
                        f.reads.requests_per_second,
                    )
                });
                let run = MixedRun {
                    page: page.name(),
                    clients,
                    response_cache,
                    groundswell,
                    floor: raw,
                    ratio,
                };
                report::print_mixed(&run);
                runs.push(run);
            }
        }
    }
    Ok(runs)
}

/// The server the benchmark is driving, restarted to turn the response cache on or off, and
/// the highest peak memory of the servers it has run.
struct Running<'a> {
    server: Option<Server>,
    binary: &'a std::path::Path,
    url: &'a str,
    mail: PathBuf,
    pool: u32,
    response_cache: bool,
    peak_mib: f64,
}

impl Running<'_> {
    fn server(&self) -> anyhow::Result<&Server> {
        self.server.as_ref().context("the server is not running")
    }

    fn note_peak(&mut self) {
        if let Some(Ok(memory)) = self.server.as_ref().map(Server::memory) {
            self.peak_mib = self.peak_mib.max(memory.peak_mib);
        }
    }

    async fn restart(&mut self, response_cache: bool) -> anyhow::Result<()> {
        self.note_peak();
        if let Some(server) = self.server.take() {
            server.stop().await?;
        }
        println!(
            "Restarting the server with the response cache {} …",
            if response_cache { "on" } else { "off" }
        );
        self.server = Some(
            Server::start(self.binary, self.url, &self.mail, self.pool, response_cache).await?,
        );
        self.response_cache = response_cache;
        Ok(())
    }

    /// Stops the server; says how that went, and the highest peak memory of all of them.
    async fn stop(mut self) -> (anyhow::Result<()>, f64) {
        self.note_peak();
        let stopped = match self.server.take() {
            Some(server) => server.stop().await,
            None => Ok(()),
        };
        let peak = if self.peak_mib > 0.0 {
            self.peak_mib
        } else {
            f64::NAN
        };
        (stopped, peak)
    }
}

/// Which of `callers` client `index` plays on its `iteration`th request: each client walks
/// through them from its own starting point.
fn caller(index: usize, iteration: u64, callers: usize) -> usize {
    (index.wrapping_mul(7919) + iteration as usize) % callers.max(1)
}

/// Checks that Groundswell and the floor return the same data, so the two are measuring the
/// same work.
async fn agree(client: &Client, floor: &Floor, fixture: &Fixture) -> anyhow::Result<()> {
    gathering_page_agrees(client, floor, fixture).await?;
    anonymous_gathering_page_agrees(client, floor, fixture).await?;
    pledge_wall_agrees(client, floor, fixture).await?;
    five_changes_agree(client, floor).await
}

/// The gathering page as a page caller sees it, their own registration included.
async fn gathering_page_agrees(
    client: &Client,
    floor: &Floor,
    fixture: &Fixture,
) -> anyhow::Result<()> {
    let token = fixture
        .page_callers
        .first()
        .context("the fixture has no page callers")?;
    let data = client
        .data(
            GATHERING_PAGE,
            json!({ "slug": fixture.page_gathering_slug }),
            Some(token),
        )
        .await?;
    let page = &data["gathering"];
    let raw = floor
        .gathering_page(&hash_token(token), &fixture.page_gathering_slug, Utc::now())
        .await?;
    let (mine_id, mine_status, mine_position) = raw
        .mine
        .clone()
        .context("a page caller without a registration")?;
    let expected = json!({
        "id": raw.id,
        "title": raw.title,
        "placesLeft": raw.places_left,
        "confirmedCount": raw.confirmed_count,
        "confirmedPlaces": raw.confirmed_places,
        "waitlistedCount": raw.waitlisted_count,
        "viewerRegistration": { "id": mine_id, "status": mine_status, "waitlistPosition": mine_position },
    });
    let got = json!({
        "id": page["id"],
        "title": page["title"],
        "placesLeft": page["placesLeft"],
        "confirmedCount": page["confirmedCount"],
        "confirmedPlaces": page["confirmedPlaces"],
        "waitlistedCount": page["waitlistedCount"],
        "viewerRegistration": {
            "id": page["viewerRegistration"]["id"],
            "status": page["viewerRegistration"]["status"],
            "waitlistPosition": page["viewerRegistration"]["waitlistPosition"],
        },
    });
    ensure!(
        got == expected,
        "the gathering page differs: Groundswell {got}, floor {expected}"
    );
    Ok(())
}

/// The gathering page as anyone sees it, signed out.
async fn anonymous_gathering_page_agrees(
    client: &Client,
    floor: &Floor,
    fixture: &Fixture,
) -> anyhow::Result<()> {
    let data = client
        .data(
            ANONYMOUS_GATHERING_PAGE,
            json!({ "slug": fixture.page_gathering_slug }),
            None,
        )
        .await?;
    let page = &data["gathering"];
    let raw = floor
        .anonymous_gathering_page(&fixture.page_gathering_slug)
        .await?;
    let expected = json!({
        "id": raw.id,
        "title": raw.title,
        "placesLeft": raw.places_left,
        "confirmedCount": raw.confirmed_count,
        "confirmedPlaces": raw.confirmed_places,
        "waitlistedCount": raw.waitlisted_count,
    });
    let got = json!({
        "id": page["id"],
        "title": page["title"],
        "placesLeft": page["placesLeft"],
        "confirmedCount": page["confirmedCount"],
        "confirmedPlaces": page["confirmedPlaces"],
        "waitlistedCount": page["waitlistedCount"],
    });
    ensure!(
        got == expected,
        "the anonymous gathering page differs: Groundswell {got}, floor {expected}"
    );
    Ok(())
}

/// The pledge wall's first page on the fixture's change.
async fn pledge_wall_agrees(
    client: &Client,
    floor: &Floor,
    fixture: &Fixture,
) -> anyhow::Result<()> {
    let data = client
        .data(PLEDGE_WALL, json!({ "change": fixture.wall_change }), None)
        .await?;
    let got: Vec<Value> = data["pledges"]["edges"]
        .as_array()
        .context("no pledge edges")?
        .iter()
        .map(|edge| {
            let node = &edge["node"];
            json!([
                node["id"],
                node["title"],
                node["organisation"]["id"],
                node["changes"],
                node["latestUpdate"]["id"]
            ])
        })
        .collect();
    let expected: Vec<Value> = floor
        .pledge_wall(&fixture.wall_change)
        .await?
        .into_iter()
        .map(|p| json!([p.id, p.title, p.organisation, p.changes, p.latest_update]))
        .collect();
    ensure!(
        expected.len() == 50,
        "the floor's wall has {} pledges",
        expected.len()
    );
    ensure!(
        got == expected,
        "the pledge wall differs: Groundswell {got:?}, floor {expected:?}"
    );
    Ok(())
}

/// The five changes with their figures, the last progress to the millisecond.
async fn five_changes_agree(client: &Client, floor: &Floor) -> anyhow::Result<()> {
    let data = client.data(FIVE_CHANGES, json!({}), None).await?;
    let got: Vec<Value> = data["changes"]
        .as_array()
        .context("no changes")?
        .iter()
        .map(|c| {
            let last = c["lastProgressAt"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc).timestamp_millis());
            json!([
                c["change"],
                c["pledgeCount"],
                c["organisationCount"],
                c["coalitionCount"],
                c["progressUpdateCount"],
                last
            ])
        })
        .collect();
    let expected: Vec<Value> = floor
        .five_changes()
        .await?
        .into_iter()
        .map(|c| {
            json!([
                c.code,
                c.pledge_count,
                c.organisation_count,
                c.coalition_count,
                c.progress_update_count,
                c.last_progress_at.map(|t| t.timestamp_millis())
            ])
        })
        .collect();
    ensure!(
        got == expected,
        "the five changes differ: Groundswell {got:?}, floor {expected:?}"
    );
    Ok(())
}

/// Scenario 4: every rush token registers for the rush gathering at once.
async fn rush(client: &Client, fixture: &Fixture) -> anyhow::Result<Rush> {
    let query = "query Rush($slug: String!) { gathering(slug: $slug) { id inPersonCapacity \
        confirmedCount confirmedPlaces waitlistedCount } }";
    let slug = json!({ "slug": fixture.rush_gathering_slug });
    let before = client
        .data(query, slug.clone(), Some(&fixture.admin_token))
        .await?;
    let gathering = before["gathering"]["id"]
        .as_str()
        .context("the rush gathering is missing")?
        .to_owned();
    let requests: Arc<Vec<Prepared>> = Arc::new(
        fixture
            .rush_tokens
            .iter()
            .map(|token| Prepared::new(REGISTER, json!({ "gathering": gathering }), Some(token)))
            .collect(),
    );
    println!("Registration rush: {} people at once …", requests.len());
    let sender = client.clone();
    let measured = load::burst(requests.len(), move |index| {
        let (client, requests) = (sender.clone(), requests.clone());
        async move { client.send(&requests[index]).await }
    })
    .await;
    let after = client.data(query, slug, Some(&fixture.admin_token)).await?;
    let after = &after["gathering"];
    let number = |field: &str| after[field].as_i64().unwrap_or(-1);
    let rush = Rush {
        people: fixture.rush_tokens.len(),
        capacity: number("inPersonCapacity"),
        confirmed: number("confirmedCount"),
        confirmed_places: number("confirmedPlaces"),
        waitlisted: number("waitlistedCount"),
        figures: (&measured).into(),
    };
    report::print_rush(&rush);
    Ok(rush)
}

/// Scenario 5: building and queueing every digest due, as the scheduler does, timed from the
/// outside: `groundswell send-due-digests --as-of` run as its own process on the same database
/// (an HTTP `sendDueDigests` would be cut off by the server's 30-second request limit). Its
/// resident memory is sampled while it runs.
async fn digest_run(
    binary: &std::path::Path,
    database_url: &str,
    floor: &Floor,
    fixture: &Fixture,
) -> anyhow::Result<Digest> {
    let mail_before = floor.count("SELECT COUNT(*) FROM outbox").await?;
    println!(
        "Digest run: {} people with digest preferences …",
        fixture.counts.digest_people
    );
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .arg("send-due-digests")
        .arg("--as-of")
        .arg(fixture.digest_as_of.to_rfc3339())
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("SECRET_KEY", server::SECRET_KEY)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting groundswell send-due-digests")?;
    let pid = child.id().context("send-due-digests exited at once")?;
    let mut peak_mib: f64 = 0.0;
    let status = loop {
        if let Ok(memory) = server::memory_of(pid) {
            peak_mib = peak_mib.max(memory.peak_mib);
        }
        tokio::select! {
            status = child.wait() => break status?,
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut said = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut said).await?;
    }
    ensure!(
        status.success(),
        "send-due-digests failed ({status}): {said}"
    );
    // "N digests queued; …"
    let queued = said
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("send-due-digests said: {said}"))?;
    let digests = floor.count("SELECT COUNT(*) FROM digests").await?;
    let mail = floor.count("SELECT COUNT(*) FROM outbox").await? - mail_before;
    let digest = Digest {
        recipients: fixture.counts.digest_people,
        queued,
        digest_rows: digests,
        messages_queued: mail,
        seconds,
        peak_memory_mib: peak_mib,
    };
    report::print_digest(&digest);
    Ok(digest)
}

/// Waits until the mail worker has delivered everything queued, so one scenario's mail is not
/// delivered during the next one's measurement.
async fn wait_for_mail(floor: &Floor) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let waiting = floor.mail_waiting().await?;
        if waiting == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{waiting} messages still undelivered after ten minutes");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn floor_version(url: &str) -> String {
    if url.starts_with("postgres") {
        async {
            let mut conn = sqlx::PgConnection::connect(url).await.ok()?;
            let (version,): (String,) = sqlx::query_as("SHOW server_version")
                .fetch_one(&mut conn)
                .await
                .ok()?;
            Some(format!("PostgreSQL {version}"))
        }
        .await
        .unwrap_or_else(|| "PostgreSQL".to_owned())
    } else {
        "SQLite".to_owned()
    }
}

/// The benchmark's own database, made fresh and dropped afterwards.
enum TempDatabase {
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
    Sqlite(String),
}

impl TempDatabase {
    async fn create_postgres(admin_url: &str) -> anyhow::Result<TempDatabase> {
        let name = format!("gs_bench_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {admin_url}"))?;
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await?;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .context("creating the benchmark database")?;
        let mut url = url::Url::parse(admin_url).context("BENCH_POSTGRES_URL is not a URL")?;
        url.set_path(&name);
        Ok(TempDatabase::Postgres {
            admin_url: admin_url.to_owned(),
            url: url.to_string(),
            name,
        })
    }

    fn url(&self) -> &str {
        match self {
            TempDatabase::Postgres { url, .. } | TempDatabase::Sqlite(url) => url,
        }
    }

    async fn drop(&self) {
        if let TempDatabase::Postgres {
            admin_url, name, ..
        } = self
            && let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await
        {
            let dropped = sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await;
            if let Err(err) = dropped {
                eprintln!("could not drop the benchmark database {name}: {err}");
            }
        }
    }
}
