//! The peer: PostGraphile 4 (bench/postgraphile/serve.js, run with the machine's Node.js) over
//! the same seeded database, answering scenarios 1 to 3 with the same data, so Groundswell can
//! be measured beside the engine a team might pick instead of writing a backend.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::{client::Client, run, seed::Fixture};

/// The gathering page, signed in; aliased to answer in Groundswell's shape.
pub const GATHERING_PAGE: &str = "query GatheringPage($slug: String!) { gathering: gatheringBySlug(slug: $slug) { \
    id title startsAt endsAt format venue placesLeft confirmedCount confirmedPlaces \
    waitlistedCount registrationOpen viewerRegistration { id status mode companions waitlistPosition } } }";

/// The pledge wall: peer.sql's `wall_pledges` paged by PostGraphile.
pub const PLEDGE_WALL: &str = "query PledgeWall($change: String!) { pledges: wallPledges(change: $change, first: 50) { \
    edges { node { id title status createdAt organisation: organisationByOrganisationId { id name slug kind region } changes \
    latestUpdate { id signal percentComplete postedAt body } } } pageInfo { hasNextPage endCursor } } }";

/// The five changes, in their order.
pub const FIVE_CHANGES: &str = "{ changes: allChanges(orderBy: POSITION_ASC) { nodes { change: code title pledgeCount \
    organisationCount coalitionCount progressUpdateCount lastProgressAt } } }";

/// Where serve.js and its packages are: bench/postgraphile in the source tree.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("postgraphile")
}

/// "PostGraphile 4.14.1", from the installed package.
pub fn version(dir: &Path) -> String {
    let installed = std::fs::read_to_string(dir.join("node_modules/postgraphile/package.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|package| package["version"].as_str().map(str::to_owned));
    format!(
        "PostGraphile {}",
        installed.as_deref().unwrap_or("(version unknown)")
    )
}

pub struct Peer {
    child: Child,
    pid: u32,
    url: String,
}

impl Peer {
    /// Starts serve.js on a free loopback port with `workers` processes of `pool` connections
    /// each, and waits until it says it is listening.
    pub async fn start(
        dir: &Path,
        database_url: &str,
        pool: u32,
        workers: usize,
    ) -> anyhow::Result<Peer> {
        let script = dir.join("serve.js");
        ensure!(script.exists(), "{} is missing", script.display());
        ensure!(
            dir.join("node_modules/postgraphile").exists(),
            "PostGraphile is not installed in {}: run `npm ci` there (scripts/bench does), or pass --no-peer",
            dir.display()
        );
        let mut child = Command::new("node")
            .arg(&script)
            .current_dir(dir)
            .env("DATABASE_URL", database_url)
            .env("PORT", "0")
            .env("POOL", pool.to_string())
            .env("WORKERS", workers.to_string())
            .env("NODE_ENV", "production")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting PostGraphile with `node` (is Node.js installed?)")?;
        let pid = child.id().context("PostGraphile exited at once")?;
        let stdout = child.stdout.take().context("PostGraphile's output")?;
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix("listening on ") {
                    return anyhow::Ok(url.trim().to_owned());
                }
            }
            bail!("PostGraphile stopped before it was ready")
        })
        .await
        .context("PostGraphile was not ready within two minutes")??;
        // Keep reading what it says, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Peer { child, pid, url })
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Stops serve.js (SIGTERM; it stops its workers) and waits for it.
    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await.ok();
        }
    }
}

/// Times as one form (UTC, microseconds), and the cursors left out: PostgreSQL writes
/// `+00:00` where Groundswell writes `Z`, and each engine has its own cursors.
pub fn normalise(value: &Value) -> Value {
    match value {
        Value::String(text) => match DateTime::parse_from_rfc3339(text) {
            Ok(time) => Value::String(
                time.with_timezone(&Utc)
                    .to_rfc3339_opts(SecondsFormat::Micros, true),
            ),
            Err(_) => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(name, _)| name.as_str() != "endCursor")
                .map(|(name, v)| (name.clone(), normalise(v)))
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// The first place two answers differ, to say what is wrong.
pub fn first_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut names: Vec<&String> = x.keys().chain(y.keys()).collect();
            names.sort();
            names.dedup();
            names.into_iter().find_map(|name| {
                first_difference(
                    &format!("{path}.{name}"),
                    x.get(name).unwrap_or(&Value::Null),
                    y.get(name).unwrap_or(&Value::Null),
                )
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(&format!("{path}[{i}]"), p, q)),
        _ if a == b => None,
        _ => Some(format!("{path}: Groundswell {a}, PostGraphile {b}")),
    }
}

/// Checks that PostGraphile answers scenarios 1 to 3 with exactly Groundswell's data.
pub async fn agree(groundswell: &Client, peer: &Client, fixture: &Fixture) -> anyhow::Result<()> {
    let token = fixture
        .page_callers
        .first()
        .context("the fixture has no page callers")?;
    let slug = json!({ "slug": fixture.page_gathering_slug });
    let change = json!({ "change": fixture.wall_change });
    let checks: [(&str, &str, &str, Value, Option<&str>); 3] = [
        (
            "gathering page",
            run::GATHERING_PAGE,
            GATHERING_PAGE,
            slug,
            Some(token),
        ),
        ("pledge wall", run::PLEDGE_WALL, PLEDGE_WALL, change, None),
        (
            "five changes",
            run::FIVE_CHANGES,
            FIVE_CHANGES,
            json!({}),
            None,
        ),
    ];
    for (name, ours, theirs, variables, token) in checks {
        let mine = groundswell.data(ours, variables.clone(), token).await?;
        let mut peers = peer
            .data(theirs, variables, token)
            .await
            .with_context(|| format!("PostGraphile's {name}"))?;
        if name == "five changes" {
            // A connection's nodes where Groundswell answers a list.
            peers = json!({ "changes": peers["changes"]["nodes"] });
        }
        let (mine, peers) = (normalise(&mine), normalise(&peers));
        if let Some(difference) = first_difference("data", &mine, &peers) {
            bail!("PostGraphile's {name} differs from Groundswell's: {difference}");
        }
        ensure!(mine != Value::Null, "the {name} answered nothing");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_compare_as_instants_and_cursors_are_ignored() {
        let groundswell =
            json!({ "a": [{ "postedAt": "2026-05-13T09:18:01Z", "endCursor": "x" }], "n": 1 });
        let peer = json!({ "a": [{ "postedAt": "2026-05-13T09:18:01+00:00", "endCursor": "WyJuYXR1cmFsIiw1MF0=" }], "n": 1 });
        assert_eq!(normalise(&groundswell), normalise(&peer));
        let later = json!({ "a": [{ "postedAt": "2026-05-13T09:18:01.5+00:00" }], "n": 1 });
        assert_ne!(normalise(&groundswell), normalise(&later));
    }

    #[test]
    fn the_first_difference_is_named_by_its_path() {
        let a =
            json!({ "pledges": { "edges": [{ "node": { "id": "1", "changes": ["A", "B"] } }] } });
        let b =
            json!({ "pledges": { "edges": [{ "node": { "id": "1", "changes": ["B", "A"] } }] } });
        assert_eq!(
            first_difference("data", &a, &b).as_deref(),
            Some(r#"data.pledges.edges[0].node.changes[0]: Groundswell "A", PostGraphile "B""#)
        );
        assert_eq!(first_difference("data", &a, &a), None);
        let shorter = json!({ "pledges": { "edges": [] } });
        assert!(first_difference("data", &a, &shorter).is_some());
    }
}
