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
    report::{self, Digest, Machine, Phase, Report, Rush, ScenarioRun},
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
    /// Run only these scenarios (gathering-page, pledge-wall, five-changes, rush, digests);
    /// all of them by default.
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Scenario>,
    /// Where to write the results as JSON.
    #[arg(long, default_value_os_t = crate::default_json())]
    json: PathBuf,
}

const GATHERING_PAGE: &str = "query GatheringPage($slug: String!) { gathering(slug: $slug) { \
    id title startsAt endsAt format venue placesLeft confirmedCount confirmedPlaces \
    waitlistedCount registrationOpen viewerRegistration { id status mode companions waitlistPosition } } }";

const PLEDGE_WALL: &str = "query PledgeWall($change: Change!) { pledges(first: 50, filter: { changes: [$change] }) { \
    edges { node { id title status createdAt organisation { id name slug kind region } changes \
    latestUpdate { id signal percentComplete postedAt body } } } pageInfo { hasNextPage endCursor } } }";

const FIVE_CHANGES: &str = "{ changes { change title pledgeCount organisationCount coalitionCount \
    progressUpdateCount lastProgressAt } }";

const REGISTER: &str = "mutation Register($gathering: ID!) { register(input: { gatheringId: $gathering }) { \
    id status waitlistPosition } }";

/// Every scenario, for `--only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    GatheringPage,
    PledgeWall,
    FiveChanges,
    Rush,
    Digests,
}

impl RunArgs {
    fn runs(&self, scenario: Scenario) -> bool {
        self.only.is_empty() || self.only.contains(&scenario)
    }
}

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

    let server = Server::start(binary, url, &scratch.join("mail"), args.pool).await?;
    let client = Client::new(server.url())?;
    let floor = Floor::connect(url, args.pool).await?;
    let mut phases = vec![Phase::at("started", server.memory()?)];

    let result = async {
        agree(&client, &floor, &fixture).await?;
        println!("Groundswell and the floor return the same data for scenarios 1 to 3.");
        let mut runs = Vec::new();
        for read in [Read::GatheringPage, Read::PledgeWall, Read::FiveChanges] {
            if !args.runs(read.scenario()) {
                continue;
            }
            for &clients in &args.clients {
                let groundswell = drive_groundswell(args, read, clients, &client, &fixture).await;
                let raw = drive_floor(args, read, clients, &floor, &fixture).await;
                let run = ScenarioRun::new(read.name(), clients, &groundswell, &raw);
                report::print_run(&run);
                runs.push(run);
            }
            phases.push(Phase::at(read.name(), server.memory()?));
        }
        let mut rush_run = None;
        if args.runs(Scenario::Rush) {
            rush_run = Some(rush(&client, &fixture).await?);
            phases.push(Phase::at("registration rush", server.memory()?));
            wait_for_mail(&floor).await?;
        }
        let mut digest = None;
        if args.runs(Scenario::Digests) {
            digest = Some(digest_run(binary, url, &floor, &fixture).await?);
            phases.push(Phase::at("digest run", server.memory()?));
            wait_for_mail(&floor).await?;
            phases.push(Phase::at("digests delivered", server.memory()?));
        }
        let rush = rush_run;
        anyhow::Ok((runs, rush, digest))
    }
    .await;
    floor.close().await;
    let peak = server.memory().map(|m| m.peak_mib).unwrap_or(f64::NAN);
    let stopped = server.stop().await;
    let (runs, rush, digest) = result?;
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
        rush,
        digest,
        memory: phases,
        peak_memory_mib: peak,
        targets: Vec::new(),
    };
    report.targets = report::targets(&report);
    Ok(report)
}

/// Drives `read` against Groundswell with `clients` concurrent clients.
async fn drive_groundswell(
    args: &RunArgs,
    read: Read,
    clients: usize,
    client: &Client,
    fixture: &Fixture,
) -> Measured {
    let requests: Arc<Vec<Prepared>> = Arc::new(match read {
        Read::GatheringPage => fixture
            .page_callers
            .iter()
            .map(|token| {
                Prepared::new(
                    GATHERING_PAGE,
                    json!({ "slug": fixture.page_gathering_slug }),
                    Some(token),
                )
            })
            .collect(),
        Read::PledgeWall => vec![Prepared::new(
            PLEDGE_WALL,
            json!({ "change": fixture.wall_change }),
            None,
        )],
        Read::FiveChanges => vec![Prepared::new(FIVE_CHANGES, json!({}), None)],
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

/// Which of `callers` client `index` plays on its `iteration`th request: each client walks
/// through them from its own starting point.
fn caller(index: usize, iteration: u64, callers: usize) -> usize {
    (index.wrapping_mul(7919) + iteration as usize) % callers.max(1)
}

/// Checks that Groundswell and the floor return the same data, so the two are measuring the
/// same work.
async fn agree(client: &Client, floor: &Floor, fixture: &Fixture) -> anyhow::Result<()> {
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
