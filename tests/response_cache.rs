//! The cache of public answers (issue 16): an anonymous, public answer is served again from
//! memory (`X-Cache: HIT`) until a write changes what it read, on the server that wrote at once
//! and on another server on the same PostgreSQL once it is notified; a signed-in caller and an
//! answer with a private field never touch it; `RESPONSE_CACHE_BYTES=0` turns it off.

use std::time::Duration;

use reqwest::header;
use serde_json::{Value, json};

use crate::helpers::*;

/// What a read answered: its data, and its `X-Cache` header (empty when it has none).
struct Read {
    data: Value,
    cache: String,
    cache_control: String,
}

async fn read(
    app: &TestApp,
    credential: Option<&str>,
    query: &str,
    variables: Value,
) -> anyhow::Result<Read> {
    let mut request = app
        .http
        .post(app.url("/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = credential {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (cache, cache_control) = (header("x-cache"), header(header::CACHE_CONTROL.as_str()));
    let status = response.status();
    let body: Value = response.json().await?;
    anyhow::ensure!(
        status == 200 && body.get("errors").is_none(),
        "{status}: {body}"
    );
    Ok(Read {
        data: body["data"].clone(),
        cache,
        cache_control,
    })
}

const PLEDGE: &str = "query($id: ID!) { pledge(id: $id) { latestUpdate { body } updates(first: 10) { totalCount } } }";
const GATHERING: &str =
    "query($slug: String!) { gathering(slug: $slug) { confirmedCount placesLeft } }";
const COALITIONS: &str = "{ coalitions(first: 10) { totalCount nodes { name members { status organisation { name } } } } }";

async fn a_write_is_reflected_in_the_next_anonymous_read_on_the_server_that_wrote(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Readers Trust").await?;
    let pledge = app.pledge_id(&owner, &org, json!({})).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let gathering = app.gathering(&convenor, json!({})).await?;
    let attendee = app.sign_in("attendee@example.org").await?;
    let pledge_vars = json!({ "id": pledge });
    let gathering_vars = json!({ "slug": gathering["slug"] });

    // Progress: read, read again from the cache, post, and the next read has the update.
    let first = read(&app, None, PLEDGE, pledge_vars.clone()).await?;
    assert_eq!(first.cache, "MISS");
    assert!(first.data["pledge"]["latestUpdate"].is_null());
    let again = read(&app, None, PLEDGE, pledge_vars.clone()).await?;
    assert_eq!(again.cache, "HIT");
    assert_eq!(again.data, first.data);
    assert!(
        again.cache_control.starts_with("public"),
        "{}",
        again.cache_control
    );
    let places = read(&app, None, GATHERING, gathering_vars.clone()).await?;
    assert_eq!(places.cache, "MISS");
    assert_eq!(places.data["gathering"]["confirmedCount"], 0);

    app.post_update(
        Some(&owner),
        json!({ "pledgeId": pledge, "body": "Twelve people moved home", "signal": "ON_TRACK" }),
    )
    .await?
    .ok()?;
    let after = read(&app, None, PLEDGE, pledge_vars.clone()).await?;
    assert_eq!(after.cache, "MISS");
    assert_eq!(
        after.data["pledge"]["latestUpdate"]["body"],
        "Twelve people moved home"
    );
    assert_eq!(after.data["pledge"]["updates"]["totalCount"], 1);
    assert_eq!(
        read(&app, None, PLEDGE, pledge_vars.clone()).await?.cache,
        "HIT"
    );
    // A progress update changes nothing a gathering's page shows.
    assert_eq!(
        read(&app, None, GATHERING, gathering_vars.clone())
            .await?
            .cache,
        "HIT"
    );

    // Registration: the places change at once.
    app.register(&attendee, &gathering["id"], json!({}))
        .await?
        .ok()?;
    let registered = read(&app, None, GATHERING, gathering_vars.clone()).await?;
    assert_eq!(registered.cache, "MISS");
    assert_eq!(registered.data["gathering"]["confirmedCount"], 1);
    assert_eq!(registered.data["gathering"]["placesLeft"], 9);
    assert_eq!(
        read(&app, None, GATHERING, gathering_vars).await?.cache,
        "HIT"
    );

    // Coalitions: forming one and another organisation joining.
    let empty = read(&app, None, COALITIONS, json!({})).await?;
    assert_eq!(empty.data["coalitions"]["totalCount"], 0);
    assert_eq!(read(&app, None, COALITIONS, json!({})).await?.cache, "HIT");
    let coalition = app
        .form_coalition(
            &owner,
            &org,
            "Homes Together",
            json!(["LIVING_IN_THE_PLACE_WE_CALL_HOME"]),
        )
        .await?;
    let formed = read(&app, None, COALITIONS, json!({})).await?;
    assert_eq!(formed.cache, "MISS");
    assert_eq!(formed.data["coalitions"]["totalCount"], 1);
    let members = |r: &Read| {
        r.data["coalitions"]["nodes"][0]["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter(|m| m["status"] == "ACTIVE")
                    .map(|m| {
                        m["organisation"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned()
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    assert_eq!(members(&formed), ["Readers Trust"]);
    assert_eq!(read(&app, None, COALITIONS, json!({})).await?.cache, "HIT");
    let other_owner = app.sign_in("other@example.org").await?;
    let other = app.create_organisation(&other_owner, "Neighbours").await?;
    app.join_coalition(&owner, &other_owner, &coalition, &other)
        .await?;
    let joined = read(&app, None, COALITIONS, json!({})).await?;
    assert_eq!(joined.cache, "MISS");
    let mut names = members(&joined);
    names.sort();
    assert_eq!(names, ["Neighbours", "Readers Trust"]);
    Ok(())
}

async fn a_signed_in_caller_never_gets_a_cached_answer_nor_fills_the_cache(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let session = app.sign_in("reader@example.org").await?;
    let query = "{ changes { title pledgeCount } }";
    assert_eq!(read(&app, None, query, json!({})).await?.cache, "MISS");
    assert_eq!(read(&app, None, query, json!({})).await?.cache, "HIT");
    // Cached for anonymous callers, yet not served to someone signed in.
    let signed_in = read(&app, Some(&session), query, json!({})).await?;
    assert_eq!(signed_in.cache, "");
    assert_eq!(signed_in.cache_control, "private, no-store");

    // What a signed-in caller asks first is not kept for anyone.
    let other = "{ changes { change progressUpdateCount } }";
    for _ in 0..2 {
        let answer = read(&app, Some(&session), other, json!({})).await?;
        assert_eq!(answer.cache, "");
    }
    assert_eq!(read(&app, None, other, json!({})).await?.cache, "MISS");

    // Nor through a GET with the session cookie.
    let response = app
        .http
        .get(app.url("/graphql"))
        .query(&[("query", query)])
        .header(header::COOKIE, format!("groundswell_session={session}"))
        .send()
        .await?;
    assert!(response.headers().get("x-cache").is_none());
    assert_eq!(
        response
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        Some("private, no-store")
    );
    Ok(())
}

async fn a_private_field_never_enters_the_cache(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let gathering = app
        .gathering(
            &convenor,
            json!({ "format": "HYBRID", "joiningUrl": "https://meet.example.org/x", "onlineCapacity": 5 }),
        )
        .await?;
    for (query, variables) in [
        ("{ me { id } changes { title } }", json!({})),
        (
            "query($slug: String!) { gathering(slug: $slug) { title joiningUrl } }",
            json!({ "slug": gathering["slug"] }),
        ),
    ] {
        for _ in 0..3 {
            let answer = read(&app, None, query, variables.clone()).await?;
            assert_eq!(answer.cache, "", "{query}");
            assert_eq!(answer.cache_control, "private, no-store", "{query}");
        }
    }
    Ok(())
}

async fn the_cache_can_be_turned_off_and_http_caching_stays_the_same(
    db: Backend,
) -> anyhow::Result<()> {
    // On: a cached answer keeps its ETag, and a GET naming it is 304.
    let app = spawn_app(db).await?;
    let query = "{ gatherings(first: 5) { totalCount } }";
    let get = |app: &TestApp, etag: Option<&str>| {
        let mut request = app.http.get(app.url("/graphql")).query(&[("query", query)]);
        if let Some(etag) = etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        request.send()
    };
    let first = get(&app, None).await?;
    assert_eq!(first.headers()["x-cache"], "MISS");
    let etag = first.headers()[header::ETAG].to_str()?.to_owned();
    let first_body = first.text().await?;
    let hit = get(&app, None).await?;
    assert_eq!(hit.headers()["x-cache"], "HIT");
    assert_eq!(hit.headers()[header::ETAG].to_str()?, etag);
    assert_eq!(
        hit.headers()[header::CACHE_CONTROL].to_str()?,
        "public, max-age=5"
    );
    assert_eq!(hit.text().await?, first_body);
    let not_modified = get(&app, Some(&etag)).await?;
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["x-cache"], "HIT");

    // Off: the same answers, with the same HTTP caching, and nothing kept.
    let smtp = SmtpServer::start()?;
    let mut options = Options::new(&smtp);
    options.response_cache_bytes = 0;
    let off = start(fresh_database(db).await?, smtp, options).await?;
    for _ in 0..2 {
        let answer = get(&off, None).await?;
        assert!(answer.headers().get("x-cache").is_none());
        assert_eq!(
            answer.headers()[header::CACHE_CONTROL].to_str()?,
            "public, max-age=5"
        );
        assert!(answer.headers().get(header::ETAG).is_some());
    }
    Ok(())
}

async fn identical_reads_arriving_together_run_once(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Many Readers").await?;
    app.pledge_id(&owner, &org, json!({})).await?;
    let body = "{ pledges(first: 10) { totalCount nodes { title organisation { name } latestUpdate { body } } } }";
    // What running it once costs (the same selection, under another name: another entry).
    let (once, one_run) = app
        .gql_counting(None, &format!("query Once {body}"), json!({}))
        .await?;
    once.ok()?;
    assert!(one_run > 0);
    let before = app.statements_so_far();
    let together = format!("query Together {body}");
    let reads =
        futures::future::join_all((0..8).map(|_| read(&app, None, &together, json!({})))).await;
    let mut misses = 0;
    for answer in reads {
        let answer = answer?;
        assert_eq!(answer.data["pledges"]["totalCount"], 1);
        misses += usize::from(answer.cache == "MISS");
    }
    assert_eq!(
        misses, 1,
        "one read ran it, the others were answered from it"
    );
    assert_eq!(app.statements_so_far() - before, one_run);
    Ok(())
}

crate::on_both_databases!(
    identical_reads_arriving_together_run_once,
    a_write_is_reflected_in_the_next_anonymous_read_on_the_server_that_wrote,
    a_signed_in_caller_never_gets_a_cached_answer_nor_fills_the_cache,
    a_private_field_never_enters_the_cache,
    the_cache_can_be_turned_off_and_http_caching_stays_the_same,
);

/// Reads `query` on `app` until `done` holds, for at most ten seconds; the last read.
async fn read_until(
    app: &TestApp,
    query: &str,
    variables: &Value,
    done: impl Fn(&Read) -> bool,
) -> anyhow::Result<Read> {
    let mut last = None;
    // Not done within the time is left to the caller's assertion on the last read to show.
    let _ = wait_until(
        "a read showing the change",
        Duration::from_secs(10),
        async || {
            let now = read(app, None, query, variables.clone()).await?;
            let finished = done(&now);
            last = Some(now);
            Ok(finished)
        },
    )
    .await;
    match last {
        Some(last) => Ok(last),
        None => read(app, None, query, variables.clone()).await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_on_one_server_reaches_another_servers_cache_once_notified() -> anyhow::Result<()> {
    let a = spawn_app(Backend::Postgres).await?;
    let smtp = SmtpServer::start()?;
    let mut options = Options::new(&smtp);
    options.secret_key = a.options.secret_key.clone();
    let b = start(a.database_url.clone(), smtp, options).await?;

    let owner = a.sign_in("owner@example.org").await?;
    let org = a.create_organisation(&owner, "Two Servers").await?;
    let pledge = a.pledge_id(&owner, &org, json!({})).await?;
    let convenor = a.convenor("convenor@example.org").await?;
    let gathering = a.gathering(&convenor, json!({})).await?;
    let attendee = a.sign_in("attendee@example.org").await?;
    let pledge_vars = json!({ "id": pledge });
    let gathering_vars = json!({ "slug": gathering["slug"] });

    // B caches both answers (A's last writes may still be on their way to it).
    let cached = read_until(&b, PLEDGE, &pledge_vars, |r| r.cache == "HIT").await?;
    assert_eq!(cached.cache, "HIT");
    assert!(cached.data["pledge"]["latestUpdate"].is_null());
    let cached = read_until(&b, GATHERING, &gathering_vars, |r| r.cache == "HIT").await?;
    assert_eq!(cached.cache, "HIT");
    assert_eq!(cached.data["gathering"]["confirmedCount"], 0);

    // A writes; B's answers follow once the notification arrives.
    a.post_update(
        Some(&owner),
        json!({ "pledgeId": pledge, "body": "Heard everywhere", "signal": "ON_TRACK" }),
    )
    .await?
    .ok()?;
    let seen = read_until(&b, PLEDGE, &pledge_vars, |r| {
        r.data["pledge"]["latestUpdate"]["body"] == "Heard everywhere"
    })
    .await?;
    assert_eq!(
        seen.data["pledge"]["latestUpdate"]["body"], "Heard everywhere",
        "server B still answers from before server A's write"
    );
    a.register(&attendee, &gathering["id"], json!({}))
        .await?
        .ok()?;
    let seen = read_until(&b, GATHERING, &gathering_vars, |r| {
        r.data["gathering"]["confirmedCount"] == 1
    })
    .await?;
    assert_eq!(seen.data["gathering"]["confirmedCount"], 1);
    // And B caches again afterwards.
    let again = read_until(&b, GATHERING, &gathering_vars, |r| r.cache == "HIT").await?;
    assert_eq!(again.data["gathering"]["confirmedCount"], 1);
    Ok(())
}
