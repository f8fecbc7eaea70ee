//! The movement at scale, deterministic from a seed number.
//!
//! Rows go straight to the tables in multi-row INSERTs in one transaction, not through the
//! domain's services (far too slow for a hundred thousand updates), but hold exactly what the
//! services would have written: the same stored strings, the gatherings' place counters as
//! registering and cancelling keep them, each pledge's latest update and last activity as
//! posting sets them, and the changes' figures recounted from the rows at the end.

use std::collections::HashMap;

use anyhow::{Context, ensure};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Datelike, Duration, NaiveTime, Utc};
use groundswell_domain::{
    changes::Change,
    organisations::{OrganisationKind, Region},
    people::SESSION_TOKEN_PREFIX,
    registrations::AccessRequirement,
    secrets::hash_token,
};
use groundswell_samples as samples;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sea_orm::{
    ActiveEnum, ConnectionTrait, DatabaseConnection, DbBackend, TransactionTrait, Value,
    sea_query::{Alias, Expr, Query},
};
use uuid::Uuid;

/// How much was loaded.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Counts {
    pub organisations: usize,
    pub pledges: usize,
    pub progress_updates: usize,
    pub coalitions: usize,
    pub gatherings: usize,
    pub registrations: usize,
    pub digest_people: usize,
}

/// What the load benchmark needs to know about the seeded movement.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub counts: Counts,
    /// A session token of an admin, for `sendDueDigests`.
    pub admin_token: String,
    /// A published, upcoming gathering with places left and registrations.
    pub page_gathering_slug: String,
    /// Session tokens of people each holding a registration for the page gathering.
    pub page_callers: Vec<String>,
    /// A published gathering open for registration with 300 in-person places and none taken.
    pub rush_gathering_slug: String,
    /// Session tokens of people not registered for the rush gathering.
    pub rush_tokens: Vec<String>,
    /// The change code the pledge wall filters by.
    pub wall_change: String,
    /// The instant at which every digest person is due and none has been sent.
    pub digest_as_of: DateTime<Utc>,
}

/// A count at `scale`, never below `min`.
fn scaled(full: usize, scale: f64, min: usize) -> usize {
    // Counts are far below 2^52: the float round trip is exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = (full as f64 * scale).round().max(0.0) as usize;
    n.max(min)
}

const FIRST_NAMES: [&str; 24] = [
    "Amara", "Ben", "Chloe", "Dev", "Eilidh", "Farah", "Gareth", "Hannah", "Imran", "Jess",
    "Kwame", "Leah", "Marek", "Niamh", "Olu", "Priya", "Rhys", "Sana", "Tom", "Una", "Vik",
    "Wendy", "Yusuf", "Zoe",
];
const LAST_NAMES: [&str; 22] = [
    "Ahmed", "Brown", "Clarke", "Davies", "Evans", "Foster", "Green", "Hughes", "Iqbal", "Jones",
    "Khan", "Lewis", "Murphy", "Nowak", "Okafor", "Patel", "Quinn", "Roberts", "Singh", "Taylor",
    "Walker", "Young",
];

/// Time zones digest readers live in, besides London.
const OTHER_ZONES: [&str; 6] = [
    "Europe/Dublin",
    "Europe/Paris",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Sydney",
];

/// Access requirements in the domain's order.
const ACCESS: [AccessRequirement; 9] = AccessRequirement::ALL;

/// A URL-safe slug (lowercase letters, digits, single hyphens) of `name`.
fn slugify(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() {
            slug.push(ch.to_ascii_lowercase());
        } else if ch != '\'' && !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_owned()
}

/// Names made unique: the second "Leeds Good Neighbours" becomes "Leeds Good Neighbours (2)",
/// slug `leeds-good-neighbours-2`.
#[derive(Default)]
struct Unique(HashMap<String, usize>);

impl Unique {
    fn name(&mut self, base: String) -> (String, String) {
        let seen = self.0.entry(base.clone()).or_default();
        *seen += 1;
        let slug = slugify(&base);
        if *seen == 1 {
            (base, slug)
        } else {
            (format!("{base} ({seen})"), format!("{slug}-{seen}"))
        }
    }
}

/// The seeded random source and the day everything is dated from.
struct Gen {
    rng: ChaCha8Rng,
    today: DateTime<Utc>,
}

impl Gen {
    /// A UUID v7 of the instant `at`, its random bits from the seed.
    fn id(&mut self, at: DateTime<Utc>) -> Uuid {
        let mut bytes = [0u8; 10];
        self.rng.fill_bytes(&mut bytes);
        let ms = u64::try_from(at.timestamp_millis()).unwrap_or_default();
        uuid::Builder::from_unix_timestamp_millis(ms, &bytes).into_uuid()
    }

    /// A session token as sign-in makes one: the prefix and 32 random bytes, base64url.
    fn token(&mut self) -> String {
        let mut bytes = [0u8; 32];
        self.rng.fill_bytes(&mut bytes);
        format!("{SESSION_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    fn days_ago(&self, days: i64) -> DateTime<Utc> {
        self.today - Duration::days(days)
    }

    /// A whole second in `[from, to)`; `from` when the range is empty.
    fn between(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> DateTime<Utc> {
        let span = (to - from).num_seconds();
        if span <= 0 {
            return from;
        }
        from + Duration::seconds(self.rng.random_range(0..span))
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n.max(1))
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// One to `max` of the five changes, in published order.
    fn changes(&mut self, max: usize) -> Vec<Change> {
        let k = self.rng.random_range(1..=max.clamp(1, 5));
        let mut picked = rand::seq::index::sample(&mut self.rng, 5, k).into_vec();
        picked.sort_unstable();
        picked.into_iter().map(|i| Change::ALL[i]).collect()
    }

    fn person_name(&mut self) -> String {
        let first = *self.pick(&FIRST_NAMES);
        let last = *self.pick(&LAST_NAMES);
        format!("{first} {last}")
    }
}

/// Rows for one table, in the order of `columns`.
struct Rows {
    table: &'static str,
    columns: &'static [&'static str],
    rows: Vec<Vec<Value>>,
}

impl Rows {
    fn new(table: &'static str, columns: &'static [&'static str]) -> Self {
        Self {
            table,
            columns,
            rows: Vec::new(),
        }
    }

    fn push(&mut self, row: Vec<Value>) {
        debug_assert_eq!(row.len(), self.columns.len(), "{}", self.table);
        self.rows.push(row);
    }

    /// Multi-row INSERTs, each below the backend's limit of bound parameters.
    async fn write(&self, conn: &impl ConnectionTrait) -> anyhow::Result<()> {
        let limit = match conn.get_database_backend() {
            DbBackend::Postgres => 65_535,
            _ => 32_766,
        };
        let per_statement = (limit / self.columns.len()).max(1);
        for chunk in self.rows.chunks(per_statement) {
            let mut insert = Query::insert();
            insert
                .into_table(Alias::new(self.table))
                .columns(self.columns.iter().map(|c| Alias::new(*c)));
            for row in chunk {
                insert.values(row.iter().cloned().map(Expr::val))?;
            }
            conn.execute(&insert)
                .await
                .with_context(|| format!("inserting into {}", self.table))?;
        }
        Ok(())
    }
}

fn json_strings(items: &[&str]) -> Value {
    Value::from(serde_json::json!(items))
}

fn change_codes(changes: &[Change]) -> Vec<&'static str> {
    changes.iter().map(|c| c.code()).collect()
}

struct Person {
    id: Uuid,
    created: DateTime<Utc>,
}

struct Organisation {
    id: Uuid,
    place: &'static str,
    owner: Uuid,
}

struct Member {
    organisation: usize,
    status: &'static str,
    joined: DateTime<Utc>,
    /// When it became what it is (active, for an active member).
    updated: DateTime<Utc>,
}

struct Coalition {
    id: Uuid,
    created: DateTime<Utc>,
    concluded: Option<DateTime<Utc>>,
    members: Vec<Member>,
}

impl Coalition {
    /// Whether it was open (formed, not concluded) at `at`.
    fn open_at(&self, at: DateTime<Utc>) -> bool {
        self.created < at && self.concluded.is_none_or(|c| at < c)
    }

    /// Member organisations active by `at`.
    fn active_by(&self, at: DateTime<Utc>) -> Vec<usize> {
        self.members
            .iter()
            .filter(|m| m.status == "ACTIVE" && m.updated < at)
            .map(|m| m.organisation)
            .collect()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Active,
    Quiet,
    Achieved,
    Withdrawn,
}

struct Pledge {
    id: Uuid,
    organisation: usize,
    coalition: Option<Uuid>,
    created: DateTime<Utc>,
    status: Status,
    changes: Vec<Change>,
    /// Updates are posted in `[window.0, window.1)`.
    window: (DateTime<Utc>, DateTime<Utc>),
    /// When it was achieved or withdrawn.
    ended: Option<DateTime<Utc>>,
    latest: Option<(DateTime<Utc>, Uuid)>,
}

struct Update {
    posted: DateTime<Utc>,
    pledge: Option<usize>,
    coalition: Option<usize>,
    organisation: usize,
    signal: &'static str,
    percent: Option<i16>,
}

/// One registration as the domain would hold it after its events.
struct Registration {
    person: usize,
    mode: &'static str,
    companions: i32,
    created: DateTime<Utc>,
    status: &'static str,
    seq: Option<i64>,
    updated: DateTime<Utc>,
}

/// The capacity counters of one gathering, kept by the domain's own rule
/// (`groundswell_domain::places`).
struct Places {
    capacity: [Option<i32>; 2],
    taken: [i32; 2],
    waitlist_seq: i64,
}

fn mode_index(mode: &str) -> usize {
    usize::from(mode == "ONLINE")
}

impl Places {
    fn take(&mut self, mode: &str, places: i32) -> bool {
        let i = mode_index(mode);
        if groundswell_domain::places::fit(self.capacity[i], self.taken[i], places) {
            self.taken[i] += places;
            true
        } else {
            false
        }
    }

    fn full(&self, mode: &str) -> bool {
        let i = mode_index(mode);
        groundswell_domain::places::full(self.capacity[i], self.taken[i])
    }
}

/// Plays a gathering's registrations and cancellations in time order through the domain's
/// rules: a place if it fits, else the waitlist; a cancelled confirmed place promotes the
/// earliest waiting registrations that fit (first fit, groups never split).
fn play(
    places: &mut Places,
    regs: &mut [Registration],
    cancels: &[(DateTime<Utc>, usize)],
) -> DateTime<Utc> {
    let mut events: Vec<(DateTime<Utc>, u8, usize)> = regs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.created, 0, i))
        .chain(cancels.iter().map(|&(at, i)| (at, 1, i)))
        .collect();
    events.sort();
    let mut last = DateTime::<Utc>::MIN_UTC;
    for (at, kind, i) in events {
        last = last.max(at);
        if kind == 0 {
            let r = &mut regs[i];
            if places.take(r.mode, 1 + r.companions) {
                r.status = "CONFIRMED";
            } else {
                places.waitlist_seq += 1;
                r.status = "WAITLISTED";
                r.seq = Some(places.waitlist_seq);
            }
            continue;
        }
        let was_confirmed = regs[i].status == "CONFIRMED";
        let mode = regs[i].mode;
        regs[i].status = "CANCELLED";
        regs[i].seq = None;
        regs[i].updated = at;
        if !was_confirmed {
            continue;
        }
        let m = mode_index(mode);
        places.taken[m] = (places.taken[m] - 1 - regs[i].companions).max(0);
        let mut waiting: Vec<usize> = (0..regs.len())
            .filter(|&j| regs[j].status == "WAITLISTED" && regs[j].mode == mode)
            .collect();
        waiting.sort_by_key(|&j| regs[j].seq);
        for j in waiting {
            if places.full(mode) {
                break;
            }
            if places.take(mode, 1 + regs[j].companions) {
                regs[j].status = "CONFIRMED";
                regs[j].seq = None;
                regs[j].updated = at;
            }
        }
    }
    last
}

const PEOPLE: &[&str] = &[
    "id",
    "email",
    "display_name",
    "role",
    "time_zone",
    "digest_frequency",
    "digest_weekday",
    "digest_hour",
    "digest_changes",
    "digest_send_empty",
    "digest_chosen",
    "email_consent",
    "created_at",
    "updated_at",
    "erased_at",
];
const SESSIONS: &[&str] = &[
    "id",
    "person_id",
    "token_hash",
    "created_at",
    "expires_at",
    "revoked_at",
];
const ORGANISATIONS: &[&str] = &[
    "id",
    "name",
    "slug",
    "kind",
    "region",
    "website",
    "created_at",
];
const ORGANISATION_MEMBERS: &[&str] = &["id", "organisation_id", "person_id", "role", "created_at"];
const COALITIONS: &[&str] = &[
    "id",
    "name",
    "slug",
    "purpose",
    "area",
    "lead_organisation_id",
    "status",
    "created_at",
    "concluded_at",
];
const COALITION_CHANGES: &[&str] = &["coalition_id", "change"];
const COALITION_MEMBERS: &[&str] = &[
    "id",
    "coalition_id",
    "organisation_id",
    "status",
    "created_at",
    "updated_at",
];
const PLEDGES: &[&str] = &[
    "id",
    "organisation_id",
    "coalition_id",
    "title",
    "commitment",
    "due_by",
    "status",
    "withdrawn_reason",
    "latest_update_id",
    "last_activity_at",
    "created_at",
    "updated_at",
    "achieved_at",
    "withdrawn_at",
];
const PLEDGE_CHANGES: &[&str] = &["pledge_id", "change"];
const PROGRESS_UPDATES: &[&str] = &[
    "id",
    "pledge_id",
    "coalition_id",
    "organisation_id",
    "author_person_id",
    "body",
    "signal",
    "percent_complete",
    "evidence_urls",
    "posted_at",
];
const GATHERINGS: &[&str] = &[
    "id",
    "title",
    "slug",
    "description",
    "starts_at",
    "ends_at",
    "time_zone",
    "format",
    "area",
    "venue",
    "joining_url",
    "in_person_capacity",
    "online_capacity",
    "in_person_taken",
    "online_taken",
    "waitlist_seq",
    "registration_opens_at",
    "registration_closes_at",
    "status",
    "cancel_reason",
    "access_totals",
    "sequence",
    "created_at",
    "updated_at",
];
const GATHERING_CONVENORS: &[&str] = &["gathering_id", "person_id"];
const REGISTRATIONS: &[&str] = &[
    "id",
    "gathering_id",
    "person_id",
    "mode",
    "status",
    "waitlist_seq",
    "companions",
    "access_requirements",
    "access_notes",
    "access_consent_at",
    "registered_by",
    "checked_in_at",
    "created_at",
    "updated_at",
];

/// The tables the seed writes, with their columns, in the order they are written; the tests
/// compare them row by row.
#[cfg(test)]
const TABLES: [(&str, &[&str]); 13] = [
    ("people", PEOPLE),
    ("sessions", SESSIONS),
    ("organisations", ORGANISATIONS),
    ("organisation_members", ORGANISATION_MEMBERS),
    ("coalitions", COALITIONS),
    ("coalition_changes", COALITION_CHANGES),
    ("coalition_members", COALITION_MEMBERS),
    ("pledges", PLEDGES),
    ("pledge_changes", PLEDGE_CHANGES),
    ("progress_updates", PROGRESS_UPDATES),
    ("gatherings", GATHERINGS),
    ("gathering_convenors", GATHERING_CONVENORS),
    ("registrations", REGISTRATIONS),
];

/// How long a session lives (`people::sign_in`).
const SESSION_DAYS: i64 = 30;

/// The most recent Monday 10:00 UTC at or before `today` (a day's start).
fn monday_ten_before(today: DateTime<Utc>) -> DateTime<Utc> {
    let back = i64::from(today.weekday().num_days_from_monday());
    let monday = today - Duration::days(back) + Duration::hours(10);
    if monday > today {
        monday - Duration::days(7)
    } else {
        monday
    }
}

/// How many rows of each kind a scale holds.
struct Sizes {
    organisations: usize,
    pledges: usize,
    updates: usize,
    coalitions: usize,
    gatherings: usize,
    registrations: usize,
    digest: usize,
    page_callers: usize,
    rush_places: usize,
    rush_tokens: usize,
    /// Registrations at the page gathering: its callers' and some more.
    page_registrations: usize,
    /// The least the pool of registrants holds.
    pool: usize,
}

impl Sizes {
    fn at(scale: f64) -> Self {
        let page_callers = scaled(256, scale, 10);
        Sizes {
            organisations: scaled(2_000, scale, 10),
            pledges: scaled(10_000, scale, 20),
            updates: scaled(100_000, scale, 100),
            coalitions: scaled(200, scale, 4),
            gatherings: scaled(50, scale, 6),
            registrations: scaled(30_000, scale, 60),
            digest: scaled(5_000, scale, 20),
            page_callers,
            rush_places: scaled(300, scale, 10),
            rush_tokens: scaled(2_000, scale, 10),
            page_registrations: page_callers + scaled(100, scale, 5),
            pool: scaled(15_000, scale, 40),
        }
    }
}

/// Every table the seed fills, written in this order.
struct Tables {
    people: Rows,
    sessions: Rows,
    organisations: Rows,
    members: Rows,
    coalitions: Rows,
    coalition_changes: Rows,
    coalition_members: Rows,
    pledges: Rows,
    pledge_changes: Rows,
    updates: Rows,
    gatherings: Rows,
    gathering_convenors: Rows,
    registrations: Rows,
}

impl Tables {
    fn new() -> Self {
        Tables {
            people: Rows::new("people", PEOPLE),
            sessions: Rows::new("sessions", SESSIONS),
            organisations: Rows::new("organisations", ORGANISATIONS),
            members: Rows::new("organisation_members", ORGANISATION_MEMBERS),
            coalitions: Rows::new("coalitions", COALITIONS),
            coalition_changes: Rows::new("coalition_changes", COALITION_CHANGES),
            coalition_members: Rows::new("coalition_members", COALITION_MEMBERS),
            pledges: Rows::new("pledges", PLEDGES),
            pledge_changes: Rows::new("pledge_changes", PLEDGE_CHANGES),
            updates: Rows::new("progress_updates", PROGRESS_UPDATES),
            gatherings: Rows::new("gatherings", GATHERINGS),
            gathering_convenors: Rows::new("gathering_convenors", GATHERING_CONVENORS),
            registrations: Rows::new("registrations", REGISTRATIONS),
        }
    }

    /// Writes every table, then the changes' figures, in one transaction.
    async fn write(&self, db: &DatabaseConnection) -> anyhow::Result<()> {
        let txn = db.begin().await?;
        for rows in [
            &self.people,
            &self.sessions,
            &self.organisations,
            &self.members,
            &self.coalitions,
            &self.coalition_changes,
            &self.coalition_members,
            &self.pledges,
            &self.pledge_changes,
            &self.updates,
            &self.gatherings,
            &self.gathering_convenors,
            &self.registrations,
        ] {
            rows.write(&txn).await?;
        }
        recount_changes(&txn).await?;
        txn.commit().await?;
        Ok(())
    }
}

/// What a person chose for their digests, as stored.
struct DigestChoice {
    frequency: &'static str,
    weekday: i16,
    hour: i16,
    zone: &'static str,
    changes: Value,
    send_empty: bool,
    chosen: bool,
}

impl DigestChoice {
    /// No digests: by default, or by the person's own choice (`chosen`).
    fn none(chosen: bool) -> Self {
        DigestChoice {
            frequency: "NEVER",
            weekday: 1,
            hour: 8,
            zone: "Europe/London",
            changes: json_strings(&[]),
            send_empty: false,
            chosen,
        }
    }
}

/// A person made at `created`, named from the seed.
fn person(
    g: &mut Gen,
    rows: &mut Rows,
    email: String,
    role: &'static str,
    digest: DigestChoice,
    created: DateTime<Utc>,
) -> Person {
    let id = g.id(created);
    let name = g.person_name();
    rows.push(vec![
        id.into(),
        email.into(),
        Some(name).into(),
        role.into(),
        digest.zone.into(),
        digest.frequency.into(),
        digest.weekday.into(),
        digest.hour.into(),
        digest.changes,
        digest.send_empty.into(),
        digest.chosen.into(),
        true.into(),
        created.into(),
        created.into(),
        Option::<DateTime<Utc>>::None.into(),
    ]);
    Person { id, created }
}

/// Loads the movement into an empty, migrated database; same `seed` and `today` → same rows.
///
/// `scale` 1.0 is the full movement of issue 7; every count multiplies by it, with small
/// minimums so a tiny scale still holds every kind of row. All times derive from `now`
/// truncated to the start of its UTC day, everything else from `seed`. Each step below draws
/// from the one random source in turn, so their order is part of the data.
pub async fn load(
    db: &DatabaseConnection,
    seed: u64,
    scale: f64,
    now: DateTime<Utc>,
) -> anyhow::Result<Fixture> {
    ensure!(scale > 0.0, "scale must be positive");
    let today = now.date_naive().and_time(NaiveTime::MIN).and_utc();
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(seed),
        today,
    };
    let sizes = Sizes::at(scale);
    let mut t = Tables::new();

    // The admin chose no digest: `digest_as_of` concerns the digest people alone.
    let admin_created = g.days_ago(800);
    let admin = person(
        &mut g,
        &mut t.people,
        "admin@bench.example".to_owned(),
        "ADMIN",
        DigestChoice::none(true),
        admin_created,
    );
    let orgs = organisations(&mut g, &mut t, sizes.organisations);
    let convenors = digest_people(&mut g, &mut t, sizes.digest);
    let coalitions = coalitions(&mut g, &mut t, &orgs, sizes.coalitions);
    let mut pledges = pledges(&mut g, &coalitions, orgs.len(), sizes.pledges);
    let updates = progress_updates(&mut g, &pledges, &coalitions, sizes.updates)?;
    update_rows(&mut g, &mut t, &updates, &mut pledges, &coalitions, &orgs);
    let wall_change = pledge_rows(&mut g, &mut t, &pledges, &orgs);
    let gathered = gatherings(&mut g, &mut t, &sizes, &admin, &convenors)?;

    // Live sessions: the admin's, each page caller's, and the rush tokens' (the last of the
    // pool, registered for nothing).
    let pool = &gathered.pool;
    let admin_token = session(&mut g, &mut t.sessions, &admin);
    let page_tokens: Vec<String> = gathered
        .page_callers
        .iter()
        .map(|&i| session(&mut g, &mut t.sessions, &pool[i]))
        .collect();
    let rush_tokens: Vec<String> = (pool.len() - sizes.rush_tokens..pool.len())
        .map(|i| session(&mut g, &mut t.sessions, &pool[i]))
        .collect();

    t.write(db).await?;
    // Fresh statistics, as a live database has them: without, PostgreSQL planned one of the
    // digest run's counts as a nested loop (2.1 s of the run), so the figures depended on
    // whether autovacuum had got there first.
    db.execute_unprepared("ANALYZE").await?;

    Ok(Fixture {
        counts: Counts {
            organisations: orgs.len(),
            pledges: pledges.len(),
            progress_updates: updates.len(),
            coalitions: coalitions.len(),
            gatherings: sizes.gatherings,
            registrations: gathered.registrations,
            digest_people: sizes.digest,
        },
        admin_token,
        page_gathering_slug: gathered.page_slug,
        page_callers: page_tokens,
        rush_gathering_slug: gathered.rush_slug,
        rush_tokens,
        wall_change,
        digest_as_of: monday_ten_before(today),
    })
}

/// Organisations, each with its owner, made 560 to 760 days ago.
fn organisations(g: &mut Gen, t: &mut Tables, n: usize) -> Vec<Organisation> {
    let mut orgs: Vec<Organisation> = Vec::with_capacity(n);
    let mut org_names = Unique::default();
    for i in 0..n {
        let created = g.between(g.days_ago(760), g.days_ago(560));
        let (place, place_region) = *g.pick(&samples::PLACES);
        let (kind, base, region) = organisation_kind(g, place, place_region);
        let (name, slug) = org_names.name(base);
        let website = g.chance(0.7).then(|| format!("https://{slug}.org.uk"));
        let id = g.id(created);
        t.organisations.push(vec![
            id.into(),
            name.into(),
            slug.into(),
            kind.to_value().into(),
            region.to_value().into(),
            website.into(),
            created.into(),
        ]);
        let owner = person(
            g,
            &mut t.people,
            format!("owner-{i}@bench.example"),
            "ATTENDEE",
            DigestChoice::none(false),
            created,
        );
        let member_id = g.id(created);
        t.members.push(vec![
            member_id.into(),
            id.into(),
            owner.id.into(),
            "OWNER".into(),
            created.into(),
        ]);
        orgs.push(Organisation {
            id,
            place,
            owner: owner.id,
        });
    }
    orgs
}

/// An organisation's kind in the movement's mix (a tenth councils, a tenth national charities,
/// three in ten care providers, …), the name it goes by before it is made unique, and its
/// region: its place's, or national for a charity.
fn organisation_kind(
    g: &mut Gen,
    place: &str,
    place_region: Region,
) -> (OrganisationKind, String, Region) {
    let kind = match g.below(100) {
        0..10 => OrganisationKind::Council,
        10..20 => OrganisationKind::NationalCharity,
        20..50 => OrganisationKind::CareProvider,
        50..70 => OrganisationKind::UserLedOrganisation,
        70..95 => OrganisationKind::CommunityGroup,
        _ => OrganisationKind::NhsBody,
    };
    if kind == OrganisationKind::NationalCharity {
        let word = *g.pick(&samples::CHARITY_WORDS);
        let body = *g.pick(&samples::CHARITY_KINDS);
        (kind, samples::charity_name(word, body), Region::National)
    } else {
        let ending = *g.pick(samples::local_name_endings(kind));
        (kind, samples::local_name(kind, place, ending), place_region)
    }
}

/// The digest people: convenors mostly, who chose their digests, made 60 to 400 days ago.
/// Returns the convenors among them.
fn digest_people(g: &mut Gen, t: &mut Tables, n: usize) -> Vec<Person> {
    let mut convenors: Vec<Person> = Vec::new();
    for i in 0..n {
        let created = g.between(g.days_ago(400), g.days_ago(60));
        let role = if g.chance(0.8) {
            "CONVENOR"
        } else {
            "ATTENDEE"
        };
        let roll = g.below(100);
        let (frequency, weekday, hour) = match roll {
            0..80 => ("WEEKLY", 1, 8 + i16::from(g.chance(0.4))),
            80..95 => ("DAILY", 1, *g.pick(&[7_i16, 8, 9])),
            _ => ("MONTHLY", 1, 9),
        };
        let zone = if g.chance(0.85) {
            "Europe/London"
        } else {
            *g.pick(&OTHER_ZONES)
        };
        let changes = if g.chance(0.4) {
            Vec::new()
        } else {
            g.changes(5)
        };
        let send_empty = g.chance(0.5);
        let p = person(
            g,
            &mut t.people,
            format!("digest-{i}@bench.example"),
            role,
            DigestChoice {
                frequency,
                weekday,
                hour,
                zone,
                changes: json_strings(&change_codes(&changes)),
                send_empty,
                chosen: true,
            },
            created,
        );
        if role == "CONVENOR" {
            convenors.push(p);
        }
    }
    convenors
}

/// Coalitions, formed 60 to 500 days ago, with their members.
fn coalitions(g: &mut Gen, t: &mut Tables, orgs: &[Organisation], n: usize) -> Vec<Coalition> {
    let mut coalitions: Vec<Coalition> = Vec::with_capacity(n);
    let mut coalition_names = Unique::default();
    for _ in 0..n {
        let created = g.between(g.days_ago(500), g.days_ago(60));
        let lead = g.below(orgs.len());
        let place = orgs[lead].place;
        let focus = *g.pick(&[
            "Home First Coalition",
            "Circles of Support Alliance",
            "Co-production Network",
            "Shared Lives Partnership",
            "Direct Payments Collective",
        ]);
        let (name, slug) = coalition_names.name(format!("{place} {focus}"));
        let concluded = (g.chance(0.1) && created < g.days_ago(150))
            .then(|| g.between(created + Duration::days(120), g.days_ago(1)));
        let changes = g.changes(3);
        let id = g.id(created);
        let members = coalition_members(g, orgs.len(), lead, created, concluded);
        let active = members.iter().filter(|m| m.status == "ACTIVE").count();
        let status = match (concluded, active) {
            (Some(_), _) => "CONCLUDED",
            (None, 2..) => "ACTIVE",
            (None, _) => "FORMING",
        };
        t.coalitions.push(vec![
            id.into(),
            name.into(),
            slug.into(),
            format!(
                "Organisations in {place} acting together on {}.",
                changes[0].title().to_lowercase()
            )
            .into(),
            g.chance(0.8).then(|| place.to_owned()).into(),
            orgs[lead].id.into(),
            status.into(),
            created.into(),
            concluded.into(),
        ]);
        for change in &changes {
            t.coalition_changes
                .push(vec![id.into(), change.code().into()]);
        }
        for member in &members {
            let member_id = g.id(member.joined);
            t.coalition_members.push(vec![
                member_id.into(),
                id.into(),
                orgs[member.organisation].id.into(),
                member.status.into(),
                member.joined.into(),
                member.updated.into(),
            ]);
        }
        coalitions.push(Coalition {
            id,
            created,
            concluded,
            members,
        });
    }
    coalitions
}

/// A coalition's lead and two to twelve other organisations (of `n_orgs`), who joined within
/// its first 60 days: most active, some invited or asking, a few gone.
fn coalition_members(
    g: &mut Gen,
    n_orgs: usize,
    lead: usize,
    created: DateTime<Utc>,
    concluded: Option<DateTime<Utc>>,
) -> Vec<Member> {
    let open_until = concluded.unwrap_or(g.today);
    let mut members = vec![Member {
        organisation: lead,
        status: "ACTIVE",
        joined: created,
        updated: created,
    }];
    let others = 2 + g.below(11);
    let chosen = rand::seq::index::sample(&mut g.rng, n_orgs, others.min(n_orgs));
    for organisation in chosen {
        if organisation == lead {
            continue;
        }
        let joined = g.between(
            created + Duration::minutes(1),
            (created + Duration::days(60)).min(open_until),
        );
        let roll = g.below(100);
        let (status, updated) = match roll {
            0..75 => (
                "ACTIVE",
                g.between(joined, (joined + Duration::days(14)).min(open_until)),
            ),
            75..85 => ("INVITED", joined),
            85..95 => ("REQUESTED", joined),
            _ => ("LEFT", g.between(joined, open_until)),
        };
        members.push(Member {
            organisation,
            status,
            joined,
            updated,
        });
    }
    members
}

/// Pledges, made over the last 18 months; some on behalf of a coalition. Their rows are
/// written once their updates are known (`pledge_rows`).
fn pledges(g: &mut Gen, coalitions: &[Coalition], n_orgs: usize, n: usize) -> Vec<Pledge> {
    let today = g.today;
    let mut pledges: Vec<Pledge> = Vec::with_capacity(n);
    let year_ago = g.days_ago(365);
    for _ in 0..n {
        let created = g.between(g.days_ago(540), g.days_ago(1));
        let mut organisation = g.below(n_orgs);
        let mut coalition = None;
        if g.chance(0.15) {
            let c = &coalitions[g.below(coalitions.len())];
            if c.open_at(created) {
                let active = c.active_by(created);
                if !active.is_empty() {
                    organisation = active[g.below(active.len())];
                    coalition = Some(c.id);
                }
            }
        }
        let from = (created + Duration::seconds(1)).max(year_ago);
        let roll = g.below(100);
        let (status, window, ended) = match roll {
            0..20 if created < g.days_ago(62) => (Status::Quiet, (from, g.days_ago(61)), None),
            20..32 if created < g.days_ago(31) => {
                let achieved = g.between((created + Duration::days(30)).max(year_ago), today);
                (Status::Achieved, (from, achieved), Some(achieved))
            }
            32..45 => {
                let withdrawn = g.between(created + Duration::days(1), today);
                (Status::Withdrawn, (from, withdrawn), Some(withdrawn))
            }
            _ => (Status::Active, (from, today), None),
        };
        let changes = g.changes(3);
        let id = g.id(created);
        pledges.push(Pledge {
            id,
            organisation,
            coalition,
            created,
            status,
            changes,
            window,
            ended,
            latest: None,
        });
    }
    pledges
}

/// Progress updates: each achieved pledge's closing DONE, then updates on pledges (nine in
/// ten) and coalitions, over the last year; in time order.
fn progress_updates(
    g: &mut Gen,
    pledges: &[Pledge],
    coalitions: &[Coalition],
    n: usize,
) -> anyhow::Result<Vec<Update>> {
    let mut updates: Vec<Update> = Vec::with_capacity(n);
    for (i, p) in pledges.iter().enumerate() {
        if let (Status::Achieved, Some(at)) = (p.status, p.ended) {
            updates.push(Update {
                posted: at,
                pledge: Some(i),
                coalition: None,
                organisation: p.organisation,
                signal: "DONE",
                percent: Some(100),
            });
        }
    }
    let on_pledges = (n * 9 / 10).max(updates.len());
    let mut attempts = 0_usize;
    while updates.len() < n {
        attempts += 1;
        ensure!(attempts < n * 100, "no room for progress updates");
        let signal_roll = g.below(100);
        let signal = match signal_roll {
            0..60 => "ON_TRACK",
            60..80 => "AT_RISK",
            80..92 => "OFF_TRACK",
            _ => "DONE",
        };
        let percent = g
            .chance(0.6)
            .then(|| i16::try_from(g.below(21) * 5).unwrap_or(0));
        let update = if updates.len() < on_pledges {
            update_on_pledge(g, pledges, signal, percent)
        } else {
            update_on_coalition(g, coalitions, signal, percent)
        };
        updates.extend(update);
    }
    updates.sort_by_key(|u| u.posted);
    Ok(updates)
}

/// An update on a pledge chosen at random, posted in its window; none if the window is empty.
fn update_on_pledge(
    g: &mut Gen,
    pledges: &[Pledge],
    signal: &'static str,
    percent: Option<i16>,
) -> Option<Update> {
    let i = g.below(pledges.len());
    let (from, to) = pledges[i].window;
    if from >= to {
        return None;
    }
    let posted = g.between(from, to);
    Some(Update {
        posted,
        pledge: Some(i),
        coalition: None,
        organisation: pledges[i].organisation,
        signal,
        percent,
    })
}

/// An update on a coalition chosen at random, posted in the last year while it was open by one
/// of its members active then; none if there is no such time or member. A coalition is never
/// done: DONE reads as on track.
fn update_on_coalition(
    g: &mut Gen,
    coalitions: &[Coalition],
    signal: &'static str,
    percent: Option<i16>,
) -> Option<Update> {
    let year_ago = g.days_ago(365);
    let c = g.below(coalitions.len());
    let from = (coalitions[c].created + Duration::seconds(1)).max(year_ago);
    let to = coalitions[c].concluded.unwrap_or(g.today);
    if from >= to {
        return None;
    }
    let posted = g.between(from, to);
    let active = coalitions[c].active_by(posted);
    if active.is_empty() {
        return None;
    }
    let organisation = active[g.below(active.len())];
    Some(Update {
        posted,
        pledge: None,
        coalition: Some(c),
        organisation,
        signal: if signal == "DONE" { "ON_TRACK" } else { signal },
        percent,
    })
}

/// The updates' rows, in time order; each pledge's latest update is noted as posting sets it.
fn update_rows(
    g: &mut Gen,
    t: &mut Tables,
    updates: &[Update],
    pledges: &mut [Pledge],
    coalitions: &[Coalition],
    orgs: &[Organisation],
) {
    for u in updates {
        let id = g.id(u.posted);
        if let Some(i) = u.pledge {
            let latest = &mut pledges[i].latest;
            if latest.is_none_or(|l| l <= (u.posted, id)) {
                *latest = Some((u.posted, id));
            }
        }
        let by_token = g.chance(0.2);
        let author = (!by_token).then_some(orgs[u.organisation].owner);
        let evidence: Vec<String> = (0..*g.pick(&[0, 0, 0, 1, 1, 2]))
            .map(|k| format!("https://evidence.bench.example/{}/{k}", id.simple()))
            .collect();
        t.updates.push(vec![
            id.into(),
            u.pledge.map(|i| pledges[i].id).into(),
            u.coalition.map(|c| coalitions[c].id).into(),
            orgs[u.organisation].id.into(),
            author.into(),
            g.pick(&samples::PROGRESS_NOTES).0.into(),
            u.signal.into(),
            u.percent.into(),
            Value::from(serde_json::json!(evidence)),
            u.posted.into(),
        ]);
    }
}

/// The pledges' rows, with what their updates set; returns the change with the most pledges,
/// for the pledge wall.
fn pledge_rows(g: &mut Gen, t: &mut Tables, pledges: &[Pledge], orgs: &[Organisation]) -> String {
    let mut per_change: HashMap<&'static str, usize> = HashMap::new();
    for p in pledges {
        let (title, commitment) = samples::pledge_text(p.changes[0], orgs[p.organisation].place);
        let due_by = g.chance(0.7).then(|| {
            (p.created + Duration::days(180 + i64::try_from(g.below(540)).unwrap_or(0)))
                .date_naive()
        });
        let (status, achieved_at, withdrawn_at, reason) = match (p.status, p.ended) {
            (Status::Achieved, Some(at)) => ("ACHIEVED", Some(at), None, None),
            (Status::Withdrawn, Some(at)) => (
                "WITHDRAWN",
                None,
                Some(at),
                Some((*g.pick(&samples::WITHDRAWAL_REASONS)).to_owned()),
            ),
            _ => ("ACTIVE", None, None, None),
        };
        let last_activity = p.latest.map_or(p.created, |(at, _)| at);
        let updated = last_activity.max(withdrawn_at.unwrap_or(last_activity));
        t.pledges.push(vec![
            p.id.into(),
            orgs[p.organisation].id.into(),
            p.coalition.into(),
            title.into(),
            commitment.into(),
            due_by.into(),
            status.into(),
            reason.into(),
            p.latest.map(|(_, id)| id).into(),
            last_activity.into(),
            p.created.into(),
            updated.into(),
            achieved_at.into(),
            withdrawn_at.into(),
        ]);
        for change in &p.changes {
            t.pledge_changes
                .push(vec![p.id.into(), change.code().into()]);
            *per_change.entry(change.code()).or_default() += 1;
        }
    }
    Change::ALL
        .iter()
        .map(|c| c.code())
        .max_by_key(|code| {
            (
                per_change.get(code).copied().unwrap_or(0),
                std::cmp::Reverse(*code),
            )
        })
        .unwrap_or("LIVING_IN_THE_PLACE_WE_CALL_HOME")
        .to_owned()
}

/// What a gathering other than the page and rush gatherings will be.
#[derive(Clone, Copy)]
struct Plan {
    past: bool,
    draft: bool,
    /// How many registrations it holds (drafts hold none).
    registrations: usize,
}

/// The other gatherings: most past, a few drafts, sharing `remaining` registrations by random
/// weights among those that take them.
fn gathering_plans(g: &mut Gen, n_other: usize, remaining: usize) -> Vec<Plan> {
    let mut plans: Vec<Plan> = Vec::with_capacity(n_other);
    for _ in 0..n_other {
        let past = g.chance(0.6);
        let draft = !past && g.chance(0.05);
        plans.push(Plan {
            past,
            draft,
            registrations: 0,
        });
    }
    if plans.iter().all(|p| p.draft) {
        plans[0].draft = false;
    }
    let takers: Vec<usize> = (0..n_other).filter(|&i| !plans[i].draft).collect();
    let weights: Vec<f64> = takers
        .iter()
        .map(|_| g.rng.random_range(0.5..1.5))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut given = 0;
    for (k, &i) in takers.iter().enumerate() {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let share = (remaining as f64 * weights[k] / total).floor() as usize;
        plans[i].registrations = share;
        given += share;
    }
    for k in 0..remaining - given {
        plans[takers[k % takers.len()]].registrations += 1;
    }
    plans
}

/// What the gatherings step leaves for the fixture.
struct Gathered {
    /// The registrants, the last `rush_tokens` of them registered for nothing.
    pool: Vec<Person>,
    page_slug: String,
    rush_slug: String,
    /// The page gathering's callers, as indices into `pool`.
    page_callers: Vec<usize>,
    registrations: usize,
}

/// Gatherings: the page and rush gatherings, then a mix of past and upcoming ones, with the
/// pool of people who register for them.
fn gatherings(
    g: &mut Gen,
    t: &mut Tables,
    sizes: &Sizes,
    admin: &Person,
    convenors: &[Person],
) -> anyhow::Result<Gathered> {
    let n_other = sizes.gatherings - 2;
    let remaining = sizes.registrations.saturating_sub(sizes.page_registrations);
    let plans = gathering_plans(g, n_other, remaining);
    let biggest = plans
        .iter()
        .map(|p| p.registrations)
        .max()
        .unwrap_or(0)
        .max(sizes.page_registrations);
    let n_pool = sizes.pool.max(biggest + sizes.rush_tokens);

    // The pool of registrants, made 400 to 700 days ago.
    let mut pool: Vec<Person> = Vec::with_capacity(n_pool);
    for i in 0..n_pool {
        let created = g.between(g.days_ago(700), g.days_ago(400));
        pool.push(person(
            g,
            &mut t.people,
            format!("attendee-{i}@bench.example"),
            "ATTENDEE",
            DigestChoice::none(false),
            created,
        ));
    }

    let mut gathering_slugs = Unique::default();
    let mut gathered = Gathered {
        pool: Vec::new(),
        page_slug: String::new(),
        rush_slug: String::new(),
        page_callers: Vec::with_capacity(sizes.page_callers),
        registrations: 0,
    };
    for k in 0..sizes.gatherings {
        // 0: the page gathering; 1: the rush gathering; then the others.
        let plan = match k {
            0 => Plan {
                past: false,
                draft: false,
                registrations: sizes.page_registrations,
            },
            1 => Plan {
                past: false,
                draft: false,
                registrations: 0,
            },
            _ => plans[k - 2],
        };
        let gathering = Gathering::shape(g, k, plan, sizes, &mut gathering_slugs);
        let convenor = {
            let eligible: Vec<&Person> = convenors
                .iter()
                .filter(|c| c.created < gathering.created)
                .collect();
            if eligible.is_empty() {
                admin.id
            } else {
                eligible[g.below(eligible.len())].id
            }
        };
        t.gathering_convenors
            .push(vec![gathering.id.into(), convenor.into()]);
        let (regs, places, last_event) =
            gathering.register(g, &pool, sizes, &mut gathered.page_callers);
        gathered.registrations += regs.len();
        registration_rows(g, t, &gathering, &regs, &pool);
        gathering.row(t, &places, last_event);
        match k {
            0 => gathered.page_slug = gathering.slug,
            1 => gathered.rush_slug = gathering.slug,
            _ => {}
        }
    }
    gathered.pool = pool;
    Ok(gathered)
}

/// One gathering as it is made, before anyone registers.
struct Gathering {
    /// 0 for the page gathering, 1 for the rush gathering, then the others.
    k: usize,
    id: Uuid,
    plan: Plan,
    place: &'static str,
    region: Region,
    title: String,
    slug: String,
    format: &'static str,
    starts: DateTime<Utc>,
    ends: DateTime<Utc>,
    created: DateTime<Utc>,
    published: DateTime<Utc>,
    capacity: [Option<i32>; 2],
    opens: Option<DateTime<Utc>>,
    closes: Option<DateTime<Utc>>,
}

impl Gathering {
    /// Where, when and how big the `k`th gathering is.
    fn shape(g: &mut Gen, k: usize, plan: Plan, sizes: &Sizes, slugs: &mut Unique) -> Gathering {
        let today = g.today;
        let (place, region) = *g.pick(&samples::PLACES);
        let starts = match k {
            0 => today + Duration::days(14) + Duration::hours(10),
            1 => today + Duration::days(30) + Duration::hours(10),
            _ if plan.past => {
                let back = 1 + i64::try_from(g.below(300)).unwrap_or(0);
                g.days_ago(back) + Duration::hours(10)
            }
            _ => {
                today
                    + Duration::days(3 + i64::try_from(g.below(120)).unwrap_or(0))
                    + Duration::hours(10)
            }
        };
        let ends = starts + Duration::hours(3 + i64::try_from(g.below(4)).unwrap_or(0));
        let created = if plan.past {
            starts - Duration::days(30 + i64::try_from(g.below(60)).unwrap_or(0))
        } else {
            g.between(g.days_ago(60), g.days_ago(5))
        };
        let published = created + Duration::days(1);
        let format = match k {
            0 => "HYBRID",
            1 => "IN_PERSON",
            _ => *g.pick(&["IN_PERSON", "IN_PERSON", "ONLINE", "HYBRID"]),
        };
        let kind = *g.pick(&[
            "Social Care Future gathering",
            "Co-production workshop",
            "Year of action assembly",
            "Community conversation",
        ]);
        let (title, slug) = slugs.name(format!("{place} {kind}"));
        let slug = format!("{slug}-{}", starts.format("%Y-%m-%d"));
        let capacity = Self::capacity(g, k, plan, format, sizes);
        let opens = match k {
            1 => Some(today - Duration::days(1)),
            0 => None,
            _ => g.chance(0.5).then_some(published),
        };
        let closes = (k > 1 && g.chance(0.5)).then_some(starts);
        let id = g.id(created);
        Gathering {
            k,
            id,
            plan,
            place,
            region,
            title,
            slug,
            format,
            starts,
            ends,
            created,
            published,
            capacity,
            opens,
            closes,
        }
    }

    /// In-person and online places: the page gathering's room for twice its registrations,
    /// the rush gathering's fixed count, and around the expected registrations elsewhere (some
    /// online events unlimited).
    fn capacity(
        g: &mut Gen,
        k: usize,
        plan: Plan,
        format: &str,
        sizes: &Sizes,
    ) -> [Option<i32>; 2] {
        let in_person = format != "ONLINE";
        let online = format != "IN_PERSON";
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        let wanted = |share: f64| (plan.registrations as f64 * share).round() as i32;
        match k {
            0 => [Some(wanted(1.0) * 2 + 50), None],
            1 => [Some(i32::try_from(sizes.rush_places).unwrap_or(300)), None],
            _ => {
                let ratio = g.rng.random_range(0.6..1.4);
                let share = if format == "HYBRID" { 0.6 } else { 1.0 };
                let in_person_cap =
                    in_person.then(|| (f64::from(wanted(share)) * ratio).round().max(10.0));
                let online_cap = (online && g.chance(0.5)).then(|| {
                    (f64::from(wanted(1.0 - share + 0.4)) * ratio)
                        .round()
                        .max(10.0)
                });
                #[allow(clippy::cast_possible_truncation)]
                [
                    in_person_cap.map(|c| c as i32),
                    online_cap.map(|c| c as i32),
                ]
            }
        }
    }

    /// The registrations of the gathering's plan from the pool (never the rush tokens'
    /// people), and some cancellations at the others, played through the domain's rules:
    /// the registrations, the places they took and the time of the last of them. The page
    /// gathering's first registrants, who bring no companions, are its callers.
    fn register(
        &self,
        g: &mut Gen,
        pool: &[Person],
        sizes: &Sizes,
        page_callers: &mut Vec<usize>,
    ) -> (Vec<Registration>, Places, DateTime<Utc>) {
        let count = self.plan.registrations;
        let window = (
            self.published.max(self.opens.unwrap_or(self.published)),
            self.starts.min(g.today),
        );
        let chosen = rand::seq::index::sample(
            &mut g.rng,
            pool.len() - sizes.rush_tokens,
            count.min(pool.len() - sizes.rush_tokens),
        );
        let mut regs: Vec<Registration> = Vec::with_capacity(count);
        for (j, person_index) in chosen.into_iter().enumerate() {
            let at = g.between(window.0, window.1);
            let mode = match self.format {
                "IN_PERSON" => "IN_PERSON",
                "ONLINE" => "ONLINE",
                _ => {
                    if g.chance(0.6) {
                        "IN_PERSON"
                    } else {
                        "ONLINE"
                    }
                }
            };
            let caller = self.k == 0 && j < sizes.page_callers;
            let companions = if caller {
                0
            } else {
                *g.pick(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2])
            };
            if caller {
                page_callers.push(person_index);
            }
            regs.push(Registration {
                person: person_index,
                mode,
                companions,
                created: at,
                // Not yet registered: `play` settles it.
                status: "",
                seq: None,
                updated: at,
            });
        }
        let mut cancels = Vec::new();
        if self.k > 1 {
            for (j, r) in regs.iter().enumerate() {
                if g.chance(0.08) {
                    let at = g.between(r.created + Duration::minutes(1), window.1);
                    if at > r.created {
                        cancels.push((at, j));
                    }
                }
            }
        }
        let mut places = Places {
            capacity: self.capacity,
            taken: [0, 0],
            waitlist_seq: 0,
        };
        let last_event = play(&mut places, &mut regs, &cancels);
        (regs, places, last_event)
    }

    /// The gathering's row, with the places its registrations took.
    fn row(&self, t: &mut Tables, places: &Places, last_event: DateTime<Utc>) {
        let place = self.place;
        let slug = &self.slug;
        let in_person = self.format != "ONLINE";
        let online = self.format != "IN_PERSON";
        let updated = self.published.max(last_event);
        let status = if self.plan.draft {
            "DRAFT"
        } else {
            "PUBLISHED"
        };
        t.gatherings.push(vec![
            self.id.into(),
            self.title.clone().into(),
            slug.clone().into(),
            format!("A day for people who draw on care, families, workers and organisations in {place} to share what is changing and plan the year of action together.").into(),
            self.starts.into(),
            self.ends.into(),
            "Europe/London".into(),
            self.format.into(),
            in_person.then(|| self.region.to_value()).into(),
            in_person.then(|| format!("{place} Community Hall, High Street, {place}")).into(),
            online.then(|| format!("https://meet.bench.example/{slug}")).into(),
            self.capacity[0].into(),
            self.capacity[1].into(),
            places.taken[0].into(),
            places.taken[1].into(),
            places.waitlist_seq.into(),
            self.opens.into(),
            self.closes.into(),
            status.into(),
            Option::<String>::None.into(),
            Option::<serde_json::Value>::None.into(),
            0_i32.into(),
            self.created.into(),
            if self.plan.draft { self.created } else { updated }.into(),
        ]);
    }
}

/// The registrations' rows: some with access needs (and a note), those at past gatherings
/// mostly checked in.
fn registration_rows(
    g: &mut Gen,
    t: &mut Tables,
    gathering: &Gathering,
    regs: &[Registration],
    pool: &[Person],
) {
    for r in regs {
        let needs = g.chance(0.15);
        let (requirements, notes, consent) = if needs {
            let how_many = 1 + g.below(2);
            let mut picked =
                rand::seq::index::sample(&mut g.rng, ACCESS.len(), how_many).into_vec();
            picked.sort_unstable();
            let names: Vec<&str> = picked.into_iter().map(|i| ACCESS[i].code()).collect();
            let notes = g
                .chance(0.3)
                .then(|| "Please seat me near the door; I use a wheelchair.".to_owned());
            (json_strings(&names), notes, Some(r.created))
        } else {
            (json_strings(&[]), None, None)
        };
        let checked_in = (gathering.plan.past && r.status == "CONFIRMED" && g.chance(0.75))
            .then(|| gathering.starts + Duration::minutes(i64::try_from(g.below(45)).unwrap_or(0)));
        let reg_id = g.id(r.created);
        t.registrations.push(vec![
            reg_id.into(),
            gathering.id.into(),
            pool[r.person].id.into(),
            r.mode.into(),
            r.status.into(),
            r.seq.into(),
            r.companions.into(),
            requirements,
            notes.into(),
            consent.into(),
            Option::<Uuid>::None.into(),
            checked_in.into(),
            r.created.into(),
            checked_in.unwrap_or(r.updated).into(),
        ]);
    }
}

/// A live session for `person`, made in the last week: its token.
fn session(g: &mut Gen, rows: &mut Rows, person: &Person) -> String {
    let token = g.token();
    let from = g.days_ago(7).max(person.created);
    let created = g.between(from, g.today);
    let id = g.id(created);
    rows.push(vec![
        id.into(),
        person.id.into(),
        hash_token(&token).into(),
        created.into(),
        (created + Duration::days(SESSION_DAYS)).into(),
        Option::<DateTime<Utc>>::None.into(),
    ]);
    token
}

/// Sets the five changes' figures from the rows, by the definitions in `domain::changes`.
async fn recount_changes(conn: &impl ConnectionTrait) -> anyhow::Result<()> {
    conn.execute_unprepared(
        "UPDATE changes SET \
         pledge_count = (SELECT COUNT(*) FROM pledge_changes pc JOIN pledges p ON p.id = pc.pledge_id \
            WHERE pc.change = changes.code AND p.status <> 'WITHDRAWN'), \
         organisation_count = (SELECT COUNT(DISTINCT p.organisation_id) FROM pledge_changes pc \
            JOIN pledges p ON p.id = pc.pledge_id WHERE pc.change = changes.code AND p.status <> 'WITHDRAWN'), \
         coalition_count = (SELECT COUNT(*) FROM coalition_changes cc WHERE cc.change = changes.code), \
         progress_update_count = \
            (SELECT COUNT(*) FROM progress_updates u JOIN pledge_changes pc ON pc.pledge_id = u.pledge_id \
              WHERE pc.change = changes.code) \
          + (SELECT COUNT(*) FROM progress_updates u JOIN coalition_changes cc ON cc.coalition_id = u.coalition_id \
              WHERE cc.change = changes.code), \
         last_progress_at = (SELECT MAX(t.posted_at) FROM ( \
            SELECT u.posted_at FROM progress_updates u JOIN pledge_changes pc ON pc.pledge_id = u.pledge_id \
              WHERE pc.change = changes.code \
            UNION ALL \
            SELECT u.posted_at FROM progress_updates u JOIN coalition_changes cc ON cc.coalition_id = u.coalition_id \
              WHERE cc.change = changes.code) t)",
    )
    .await
    .context("recounting the changes' figures")?;
    Ok(())
}

#[cfg(test)]
#[allow(
    clippy::too_many_lines,
    reason = "a test reads as one story of the rule it checks, top to bottom; \
              clippy has no setting that spares tests from this lint"
)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use chrono::TimeDelta;
    use groundswell_domain::{Database, digests};
    use groundswell_migration::{Migrator, MigratorTrait};
    use sea_orm::{QueryResult, Statement};

    use super::*;

    const SCALE: f64 = 0.02;

    /// A Wednesday afternoon: the seed dates everything from the start of its day.
    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2027-03-10T15:30:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    /// A fresh, migrated database, removed on `drop_it`.
    struct Scratch {
        db: Database,
        postgres: Option<(String, String)>,
        file: Option<std::path::PathBuf>,
    }

    impl Scratch {
        async fn sqlite(name: &str) -> anyhow::Result<Self> {
            let path =
                std::env::temp_dir().join(format!("gs_seed_{}_{name}.db", std::process::id()));
            let _ = std::fs::remove_file(&path);
            let db = Database::connect(&format!("sqlite://{}?mode=rwc", path.display()), 4).await?;
            Migrator::up(db.conn(), None).await?;
            Ok(Self {
                db,
                postgres: None,
                file: Some(path),
            })
        }

        async fn postgres(name: &str) -> anyhow::Result<Self> {
            // TEST_POSTGRES_URL names the server (scripts/test sets it without a database).
            let server = std::env::var("TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
            let mut url = url::Url::parse(&server)?;
            url.set_path("postgres");
            let admin_url = url.to_string();
            let database = format!("gs_seed_{name}_{}", std::process::id());
            let admin = sea_orm::Database::connect(admin_url.as_str()).await?;
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {database}"))
                .await?;
            admin
                .execute_unprepared(&format!("CREATE DATABASE {database}"))
                .await?;
            admin.close().await?;
            url.set_path(&database);
            let db = Database::connect(url.as_str(), 4).await?;
            Migrator::up(db.conn(), None).await?;
            Ok(Self {
                db,
                postgres: Some((admin_url, database)),
                file: None,
            })
        }

        fn conn(&self) -> &DatabaseConnection {
            self.db.conn()
        }

        async fn drop_it(self) -> anyhow::Result<()> {
            self.db.conn().clone().close().await?;
            if let Some((admin_url, database)) = self.postgres {
                let admin = sea_orm::Database::connect(admin_url.as_str()).await?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                    .await?;
            }
            if let Some(path) = self.file {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Ok(())
        }
    }

    async fn rows(conn: &DatabaseConnection, sql: &str) -> anyhow::Result<Vec<QueryResult>> {
        Ok(conn
            .query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
            .await?)
    }

    async fn count(conn: &DatabaseConnection, sql: &str) -> anyhow::Result<usize> {
        let found = rows(conn, sql).await?;
        let n: i64 = found.first().context("no row")?.try_get_by_index(0)?;
        Ok(usize::try_from(n)?)
    }

    /// Every row the seed wrote, and the changes' figures, as text in a stable order.
    async fn dump(conn: &DatabaseConnection) -> anyhow::Result<Vec<String>> {
        const CHANGES: &[&str] = &[
            "code",
            "pledge_count",
            "organisation_count",
            "coalition_count",
            "progress_update_count",
            "last_progress_at",
        ];
        let sqlite = conn.get_database_backend() == DbBackend::Sqlite;
        let mut out = Vec::new();
        for (table, columns) in TABLES.iter().copied().chain([("changes", CHANGES)]) {
            let select: Vec<String> = columns
                .iter()
                .map(|c| {
                    if sqlite {
                        format!("quote(\"{c}\")")
                    } else {
                        format!("CAST(\"{c}\" AS TEXT)")
                    }
                })
                .collect();
            let order: Vec<String> = (1..=columns.len()).map(|i| i.to_string()).collect();
            let sql = format!(
                "SELECT {} FROM {table} ORDER BY {}",
                select.join(", "),
                order.join(", ")
            );
            for row in rows(conn, &sql).await? {
                let mut line = table.to_owned();
                for i in 0..columns.len() {
                    let value: Option<String> = row.try_get_by_index(i)?;
                    line.push('|');
                    line.push_str(value.as_deref().unwrap_or("NULL"));
                }
                out.push(line);
            }
        }
        Ok(out)
    }

    /// The rules the seeded movement must hold, checked from the rows.
    async fn check(conn: &DatabaseConnection, fixture: &Fixture) -> anyhow::Result<()> {
        let c = &fixture.counts;
        assert_eq!(c.organisations, scaled(2_000, SCALE, 10));
        assert_eq!(c.pledges, scaled(10_000, SCALE, 20));
        assert_eq!(c.progress_updates, scaled(100_000, SCALE, 100));
        assert_eq!(c.coalitions, scaled(200, SCALE, 4));
        assert_eq!(c.gatherings, scaled(50, SCALE, 6));
        assert_eq!(c.registrations, scaled(30_000, SCALE, 60));
        assert_eq!(c.digest_people, scaled(5_000, SCALE, 20));
        for (table, expected) in [
            ("organisations", c.organisations),
            ("pledges", c.pledges),
            ("progress_updates", c.progress_updates),
            ("coalitions", c.coalitions),
            ("gatherings", c.gatherings),
            ("registrations", c.registrations),
        ] {
            assert_eq!(
                count(conn, &format!("SELECT COUNT(*) FROM {table}")).await?,
                expected,
                "{table}"
            );
        }
        assert_eq!(
            count(
                conn,
                "SELECT COUNT(*) FROM people WHERE digest_frequency <> 'NEVER'"
            )
            .await?,
            c.digest_people
        );
        assert_eq!(
            count(
                conn,
                "SELECT COUNT(*) FROM organisation_members WHERE role = 'OWNER'"
            )
            .await?,
            c.organisations
        );
        assert_eq!(count(conn, "SELECT COUNT(*) FROM digests").await?, 0);

        // The changes' figures equal a recount.
        let mut pledges_on: BTreeMap<String, usize> = BTreeMap::new();
        let mut organisations_on: BTreeMap<String, HashSet<Uuid>> = BTreeMap::new();
        for row in rows(conn, "SELECT pc.change, p.organisation_id FROM pledge_changes pc JOIN pledges p ON p.id = pc.pledge_id WHERE p.status <> 'WITHDRAWN'").await? {
            let change: String = row.try_get_by_index(0)?;
            *pledges_on.entry(change.clone()).or_default() += 1;
            organisations_on.entry(change).or_default().insert(row.try_get_by_index(1)?);
        }
        let mut coalitions_on: BTreeMap<String, usize> = BTreeMap::new();
        for row in rows(conn, "SELECT change FROM coalition_changes").await? {
            *coalitions_on.entry(row.try_get_by_index(0)?).or_default() += 1;
        }
        let mut updates_on: BTreeMap<String, (usize, Option<DateTime<Utc>>)> = BTreeMap::new();
        for row in rows(conn, "SELECT pc.change, u.posted_at FROM progress_updates u JOIN pledge_changes pc ON pc.pledge_id = u.pledge_id UNION ALL SELECT cc.change, u.posted_at FROM progress_updates u JOIN coalition_changes cc ON cc.coalition_id = u.coalition_id").await? {
            let posted: DateTime<Utc> = row.try_get_by_index(1)?;
            let entry = updates_on.entry(row.try_get_by_index(0)?).or_default();
            entry.0 += 1;
            entry.1 = entry.1.max(Some(posted));
        }
        for row in rows(conn, "SELECT code, pledge_count, organisation_count, coalition_count, progress_update_count, last_progress_at FROM changes").await? {
            let code: String = row.try_get_by_index(0)?;
            let figures: (i32, i32, i32, i32, Option<DateTime<Utc>>) = (
                row.try_get_by_index(1)?,
                row.try_get_by_index(2)?,
                row.try_get_by_index(3)?,
                row.try_get_by_index(4)?,
                row.try_get_by_index(5)?,
            );
            let (updates, last) = updates_on.get(&code).copied().unwrap_or_default();
            let recount = (
                i32::try_from(pledges_on.get(&code).copied().unwrap_or_default())?,
                i32::try_from(organisations_on.get(&code).map_or(0, HashSet::len))?,
                i32::try_from(coalitions_on.get(&code).copied().unwrap_or_default())?,
                i32::try_from(updates)?,
                last,
            );
            assert_eq!(figures, recount, "{code}");
            assert!(figures.0 > 0 && figures.3 > 0, "{code} has pledges and updates");
        }

        // Each pledge's latest update and last activity are what posting set.
        let mut latest: HashMap<Uuid, (DateTime<Utc>, Uuid)> = HashMap::new();
        for row in rows(
            conn,
            "SELECT pledge_id, posted_at, id FROM progress_updates WHERE pledge_id IS NOT NULL",
        )
        .await?
        {
            let pledge: Uuid = row.try_get_by_index(0)?;
            let this = (row.try_get_by_index(1)?, row.try_get_by_index(2)?);
            let entry = latest.entry(pledge).or_insert(this);
            *entry = (*entry).max(this);
        }
        let mut quiet = 0;
        let mut active = 0;
        let quiet_before = fixture_today() - TimeDelta::days(60);
        for row in rows(
            conn,
            "SELECT id, latest_update_id, last_activity_at, created_at, status FROM pledges",
        )
        .await?
        {
            let id: Uuid = row.try_get_by_index(0)?;
            let latest_update: Option<Uuid> = row.try_get_by_index(1)?;
            let last_activity: DateTime<Utc> = row.try_get_by_index(2)?;
            let created: DateTime<Utc> = row.try_get_by_index(3)?;
            let status: String = row.try_get_by_index(4)?;
            let expected = latest.get(&id);
            assert_eq!(latest_update, expected.map(|l| l.1));
            assert_eq!(last_activity, expected.map_or(created, |l| l.0));
            if status == "ACTIVE" {
                active += 1;
                if last_activity <= quiet_before {
                    quiet += 1;
                }
            }
        }
        assert!(
            quiet * 10 >= active && quiet * 2 <= active,
            "{quiet} of {active} active pledges quiet"
        );

        // Every gathering's counters hold its confirmed places, within capacity; waitlist
        // sequence numbers are unique, below the gathering's, and only on waiting rows.
        for row in rows(conn, "SELECT id, in_person_capacity, online_capacity, in_person_taken, online_taken, waitlist_seq FROM gatherings").await? {
            let id: Uuid = row.try_get_by_index(0)?;
            let capacity: [Option<i32>; 2] = [row.try_get_by_index(1)?, row.try_get_by_index(2)?];
            let taken: [i32; 2] = [row.try_get_by_index(3)?, row.try_get_by_index(4)?];
            let seq: i64 = row.try_get_by_index(5)?;
            let mut places = [0, 0];
            let mut seqs = HashSet::new();
            let regs = registrations_of(conn, id).await?;
            for (mode, status, companions, waitlist_seq) in regs {
                let m = mode_index(&mode);
                match status.as_str() {
                    "CONFIRMED" => {
                        places[m] += 1 + companions;
                        assert_eq!(waitlist_seq, None);
                    }
                    "WAITLISTED" => {
                        let s = waitlist_seq.context("a waiting registration without a place in line")?;
                        assert!(s >= 1 && s <= seq && seqs.insert(s));
                        // Nobody waits while their group would fit.
                        assert!(capacity[m].is_some_and(|c| taken[m] + 1 + companions > c));
                    }
                    _ => assert_eq!(waitlist_seq, None),
                }
            }
            assert_eq!(places, taken, "gathering {id} {capacity:?} {:?}", registrations_of(conn, id).await?);
            for m in 0..2 {
                assert!(capacity[m].is_none_or(|c| taken[m] <= c));
            }
        }

        // The page callers hold live sessions and confirmed places at the page gathering.
        let page = gathering_id(conn, &fixture.page_gathering_slug).await?;
        assert_eq!(fixture.page_callers.len(), scaled(256, SCALE, 10));
        for token in &fixture.page_callers {
            assert!(token.starts_with("gss_") && token.len() == 4 + 43);
            let person = live_session(conn, token)
                .await?
                .context("page caller without a session")?;
            assert!(registered(conn, page, person).await?);
        }
        assert!(live_session(conn, &fixture.admin_token).await?.is_some());

        // The rush gathering: open, in person, every place free, nobody registered.
        let rush = gathering_id(conn, &fixture.rush_gathering_slug).await?;
        assert_eq!(fixture.rush_tokens.len(), scaled(2_000, SCALE, 10));
        for token in &fixture.rush_tokens {
            let person = live_session(conn, token)
                .await?
                .context("rush token without a session")?;
            assert!(!registered(conn, rush, person).await?);
        }
        let rush_row = &rows(conn, &format!("SELECT format, in_person_capacity, in_person_taken, status FROM gatherings WHERE slug = '{}'", fixture.rush_gathering_slug)).await?[0];
        let format: String = rush_row.try_get_by_index(0)?;
        let capacity: Option<i32> = rush_row.try_get_by_index(1)?;
        let taken: i32 = rush_row.try_get_by_index(2)?;
        let places = i32::try_from(scaled(300, SCALE, 10))?;
        assert_eq!(
            (format.as_str(), capacity, taken),
            ("IN_PERSON", Some(places), 0)
        );
        assert!(Change::from_code(&fixture.wall_change).is_some());
        Ok(())
    }

    fn fixture_today() -> DateTime<Utc> {
        now().date_naive().and_time(NaiveTime::MIN).and_utc()
    }

    /// Rows of `sql` with `?` placeholders bound to `values`.
    async fn rows_with(
        conn: &DatabaseConnection,
        sql: &str,
        values: Vec<Value>,
    ) -> anyhow::Result<Vec<QueryResult>> {
        let backend = conn.get_database_backend();
        let sql = if backend == DbBackend::Postgres {
            let mut numbered = String::new();
            let mut n = 0;
            for ch in sql.chars() {
                if ch == '?' {
                    n += 1;
                    numbered.push_str(&format!("${n}"));
                } else {
                    numbered.push(ch);
                }
            }
            numbered
        } else {
            sql.to_owned()
        };
        Ok(conn
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?)
    }

    async fn registrations_of(
        conn: &DatabaseConnection,
        gathering: Uuid,
    ) -> anyhow::Result<Vec<(String, String, i32, Option<i64>)>> {
        rows_with(
            conn,
            "SELECT mode, status, companions, waitlist_seq FROM registrations WHERE gathering_id = ?",
            vec![gathering.into()],
        )
        .await?
        .into_iter()
        .map(|r| {
            Ok((
                r.try_get_by_index(0)?,
                r.try_get_by_index(1)?,
                r.try_get_by_index(2)?,
                r.try_get_by_index(3)?,
            ))
        })
        .collect()
    }

    async fn gathering_id(conn: &DatabaseConnection, slug: &str) -> anyhow::Result<Uuid> {
        let found = rows_with(
            conn,
            "SELECT id FROM gatherings WHERE slug = ? AND status = 'PUBLISHED'",
            vec![slug.into()],
        )
        .await?;
        Ok(found
            .first()
            .context("no such gathering")?
            .try_get_by_index(0)?)
    }

    /// The person behind a live session for `token`, looked up as sign-in does.
    async fn live_session(conn: &DatabaseConnection, token: &str) -> anyhow::Result<Option<Uuid>> {
        let found = rows_with(
            conn,
            "SELECT person_id, expires_at FROM sessions WHERE token_hash = ? AND revoked_at IS NULL",
            vec![hash_token(token).into()],
        )
        .await?;
        let Some(row) = found.first() else {
            return Ok(None);
        };
        let expires: DateTime<Utc> = row.try_get_by_index(1)?;
        Ok((expires > now() + TimeDelta::days(20)).then_some(row.try_get_by_index(0)?))
    }

    async fn registered(
        conn: &DatabaseConnection,
        gathering: Uuid,
        person: Uuid,
    ) -> anyhow::Result<bool> {
        let found = rows_with(
            conn,
            "SELECT status FROM registrations WHERE gathering_id = ? AND person_id = ?",
            vec![gathering.into(), person.into()],
        )
        .await?;
        match found.first() {
            Some(row) => Ok(row.try_get_by_index::<String>(0)? == "CONFIRMED"),
            None => Ok(false),
        }
    }

    #[tokio::test]
    async fn on_sqlite_the_same_seed_loads_the_same_consistent_movement_and_its_digests_are_due()
    -> anyhow::Result<()> {
        let a = Scratch::sqlite("a").await?;
        let b = Scratch::sqlite("b").await?;
        let c = Scratch::sqlite("c").await?;
        let fixture = load(a.conn(), 7, SCALE, now()).await?;
        load(b.conn(), 7, SCALE, now() + TimeDelta::hours(3)).await?;
        load(c.conn(), 8, SCALE, now()).await?;
        let dumped = dump(a.conn()).await?;
        assert_eq!(
            dumped,
            dump(b.conn()).await?,
            "same seed, same day: same rows"
        );
        assert_ne!(dumped, dump(c.conn()).await?, "another seed: other rows");
        check(a.conn(), &fixture).await?;

        // Every digest person is due at `digest_as_of`, and each has news.
        let outcome =
            digests::send_due(&a.db, fixture.digest_as_of, now(), TimeDelta::days(60)).await?;
        assert_eq!(
            outcome.queued,
            u64::try_from(fixture.counts.digest_people)?,
            "{outcome:?}"
        );
        assert_eq!((outcome.skipped_empty, outcome.already_claimed), (0, 0));
        let again =
            digests::send_due(&a.db, fixture.digest_as_of, now(), TimeDelta::days(60)).await?;
        assert_eq!(
            again.queued + again.skipped_empty + again.already_claimed,
            0
        );
        for scratch in [a, b, c] {
            scratch.drop_it().await?;
        }
        Ok(())
    }

    #[tokio::test]
    async fn on_postgres_the_same_seed_loads_the_same_consistent_movement() -> anyhow::Result<()> {
        let a = Scratch::postgres("a").await?;
        let b = Scratch::postgres("b").await?;
        let fixture = load(a.conn(), 7, SCALE, now()).await?;
        load(b.conn(), 7, SCALE, now()).await?;
        assert_eq!(dump(a.conn()).await?, dump(b.conn()).await?);
        check(a.conn(), &fixture).await?;
        let outcome =
            digests::send_due(&a.db, fixture.digest_as_of, now(), TimeDelta::days(60)).await?;
        assert_eq!(
            outcome.queued,
            u64::try_from(fixture.counts.digest_people)?,
            "{outcome:?}"
        );
        a.drop_it().await?;
        b.drop_it().await?;
        Ok(())
    }
}
