//! A hostile client's limits: introspection bounded by its own rules, query cost that reflects
//! what a query really costs (batches together), bounded dates and inputs, and a schema-driven
//! fuzzing run that must never see a 5xx or an INTERNAL_SERVER_ERROR.

use anyhow::Context;
use chrono::Datelike;
use serde_json::{Value, json};

use crate::{helpers::*, on_both_databases};

on_both_databases!(
    the_standard_introspection_query_succeeds_and_aliasing_it_is_refused,
    nested_lists_multiply_and_heavy_fields_cost_on_their_own,
    a_batch_is_costed_together_and_refused_before_anything_runs,
    ordinary_pages_stay_within_the_limits,
    absurd_dates_are_refused_naming_the_field_and_change_nothing,
    a_message_that_cannot_render_fails_alone_and_the_rest_are_delivered,
    lists_in_inputs_past_their_maximum_are_refused_naming_the_field,
    random_queries_and_mutations_from_the_schema_never_get_a_server_error,
    connections_past_the_cap_wait_and_answers_close_them_once_places_run_low,
    connections_that_send_no_request_in_time_are_closed_and_give_up_their_place,
);

/// What a request refused for its cost answers: BAD_USER_INPUT saying what the limit is.
fn assert_refused(reply: &Reply, says: &str) {
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.code(), Some("BAD_USER_INPUT"), "{}", reply.body);
    assert!(
        reply.message().contains(says),
        "{} should say {says}",
        reply.message()
    );
    assert!(reply.body.get("data").is_none(), "{}", reply.body);
}

async fn still_up(app: &TestApp) -> anyhow::Result<()> {
    let data = app
        .gql(None, "{ changes { title } }", json!({}))
        .await?
        .ok()?;
    assert_eq!(data["changes"].as_array().map(Vec::len), Some(5));
    Ok(())
}

async fn the_standard_introspection_query_succeeds_and_aliasing_it_is_refused(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let query = node("introspection-query.mjs", &[], &[]).await?;
    assert!(query.contains("__schema"), "{query}");

    let data = app.gql(None, &query, json!({})).await?.ok()?;
    let schema = &data["__schema"];
    assert_eq!(schema["queryType"]["name"], "Query");
    assert_eq!(schema["mutationType"]["name"], "Mutation");
    let types = schema["types"].as_array().cloned().unwrap_or_default();
    let pledge = types
        .iter()
        .find(|ty| ty["name"] == "Pledge")
        .context("Pledge is in the schema")?;
    assert!(
        pledge["fields"]
            .as_array()
            .is_some_and(|fields| fields.iter().any(|f| f["name"] == "updates")),
        "{pledge}"
    );

    // Signed in, and as a batch of two, the same query is fine.
    let session = app.sign_in("tools@example.org").await?;
    app.gql(Some(&session), &query, json!({})).await?.ok()?;
    let one = json!({ "query": query });
    let two = app.post_json(None, &json!([one, one])).await?;
    assert_eq!(two.status, 200, "{}", two.body);
    assert!(two.body[1]["data"]["__schema"]["types"].is_array());

    // Three of it at once is more introspection than any tool needs.
    let three = app.post_json(None, &json!([one, one, one])).await?;
    assert_refused(&three, "introspection");

    // So is the same schema asked for under many aliases in one query.
    let aliased: String = (0..20)
        .map(|n| format!("s{n}: __schema {{ types {{ name fields {{ name }} }} }} "))
        .collect();
    assert_refused(
        &app.gql(None, &format!("{{ {aliased} }}"), json!({}))
            .await?,
        "__schema",
    );

    // And fields of types of fields of types…: every level multiplies the answer.
    let mut nested = "name".to_owned();
    for _ in 0..4 {
        nested = format!("fields {{ type {{ {nested} }} }}");
    }
    assert_refused(
        &app.gql(
            None,
            &format!("{{ __schema {{ types {{ {nested} }} }} }}"),
            json!({}),
        )
        .await?,
        "introspection",
    );

    // A deep `ofType` chain is refused by the introspection depth, not the ordinary one.
    let mut deep = "name".to_owned();
    for _ in 0..25 {
        deep = format!("ofType {{ {deep} }}");
    }
    assert_refused(
        &app.gql(
            None,
            &format!("{{ __type(name: \"Pledge\") {{ {deep} }} }}"),
            json!({}),
        )
        .await?,
        "deep",
    );

    still_up(&app).await
}

async fn nested_lists_multiply_and_heavy_fields_cost_on_their_own(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("lead@example.org").await?;
    let org = app.create_organisation(&owner, "Leeds Together").await?;
    app.form_coalition(
        &owner,
        &org,
        "Leeds Homes",
        json!(["LIVING_IN_THE_PLACE_WE_CALL_HOME"]),
    )
    .await?;
    let slug = "leeds-homes";

    // One level of members is an ordinary question.
    let data = app
        .gql(
            None,
            "query($s: String!) { coalition(slug: $s) { members { status organisation { name } } } }",
            json!({ "s": slug }),
        )
        .await?
        .ok()?;
    assert_eq!(data["coalition"]["members"][0]["status"], "ACTIVE");

    // Members of the coalition of each member of…: each level multiplies by the most members
    // a coalition shows, whatever it holds today.
    let nested = "query($s: String!) { coalition(slug: $s) { members { coalition { members { coalition { members { organisation { name } } } } } } } }";
    let reply = app.gql(None, nested, json!({ "s": slug })).await?;
    assert_refused(&reply, "10000");
    assert!(reply.message().contains("complex"), "{}", reply.message());

    // Pages count by their size whether `first` is given or not.
    let pages = "{ pledges { edges { node { updates(first: 100) { edges { node { evidenceUrls organisation { members { id } } } } } } } } }";
    assert_refused(&app.gql(Some(&owner), pages, json!({})).await?, "10000");

    // One movement summary is fine; the same aggregate aliased 300 times is not.
    app.gql(None, "{ movement { totals { pledgesMade } } }", json!({}))
        .await?
        .ok()?;
    let aliased: String = (0..300)
        .map(|n| format!("m{n}: movement {{ totals {{ pledgesMade }} }} "))
        .collect();
    assert_refused(
        &app.gql(None, &format!("{{ {aliased} }}"), json!({}))
            .await?,
        "10000",
    );
    let digests: String = (0..30)
        .map(|n| format!("d{n}: digestPreview {{ subject }} "))
        .collect();
    assert_refused(
        &app.gql(Some(&owner), &format!("{{ {digests} }}"), json!({}))
            .await?,
        "10000",
    );
    let data: String = (0..20).map(|n| format!("d{n}: myData ")).collect();
    assert_refused(
        &app.gql(Some(&owner), &format!("{{ {data} }}"), json!({}))
            .await?,
        "10000",
    );
    // A page size hidden in a variable counts too.
    let by_variable = "query($n: Int) { a: pledges(first: $n) { edges { node { organisation { members { id role } } } } } }";
    assert_refused(
        &app.gql(Some(&owner), by_variable, json!({ "n": 100 }))
            .await?,
        "10000",
    );
    still_up(&app).await
}

/// About 1,500 of the 10,000 a request may cost: a hundred pledges with their organisations.
const HEAVY: &str = "{ pledges(first: 100) { edges { node { id title commitment status createdAt dueBy organisation { name slug } changes } } } }";

async fn a_batch_is_costed_together_and_refused_before_anything_runs(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let session = app.sign_in("batch@example.org").await?;

    // Alone, each heavy page is allowed.
    app.gql(Some(&session), HEAVY, json!({})).await?.ok()?;

    // Ten of them at once are refused, and the write that came first in the batch never ran.
    let write = json!({
        "query": "mutation { createOrganisation(input: { name: \"Batch Written\", kind: COUNCIL, region: LONDON }) { id } }"
    });
    let mut batch = vec![write];
    batch.extend(std::iter::repeat_n(json!({ "query": HEAVY }), 9));
    let reply = app.post_json(Some(&session), &Value::Array(batch)).await?;
    assert_refused(&reply, "together");
    assert!(reply.message().contains("10000"), "{}", reply.message());
    let data = app
        .gql(None, "{ organisations { totalCount } }", json!({}))
        .await?
        .ok()?;
    assert_eq!(data["organisations"]["totalCount"], 0);

    // Mutations cost on their own too: a batch of aliased writes is refused whole.
    let writes: String = (0..1_100).map(|n| format!("s{n}: signOut ")).collect();
    assert_refused(
        &app.gql(
            Some(&session),
            &format!("mutation {{ {writes} }}"),
            json!({}),
        )
        .await?,
        "10000",
    );
    // The session was not signed out by any of them.
    app.gql(Some(&session), "{ me { id } }", json!({}))
        .await?
        .ok()?;
    still_up(&app).await
}

async fn ordinary_pages_stay_within_the_limits(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("plans@example.org").await?;
    let gathering = app.gathering(&convenor, json!({})).await?;
    let queries = [
        // The benchmark's pledge wall and gathering page.
        (
            "query PledgeWall($change: Change!) { pledges(first: 50, filter: { changes: [$change] }) { edges { node { id title status createdAt organisation { id name slug kind region } changes latestUpdate { id signal percentComplete postedAt body } } } pageInfo { hasNextPage endCursor } } }",
            json!({ "change": "SHARING_POWER_AS_EQUALS" }),
        ),
        (
            "query GatheringPage($slug: String!) { gathering(slug: $slug) { id title startsAt endsAt format venue placesLeft confirmedCount confirmedPlaces waitlistedCount registrationOpen viewerRegistration { id status mode companions waitlistPosition } } }",
            json!({ "slug": gathering["slug"] }),
        ),
        (
            "{ changes { change title pledgeCount organisationCount coalitionCount progressUpdateCount lastProgressAt } }",
            json!({}),
        ),
        // What the tests page through.
        (
            "query($s: String!, $after: String) { gathering(slug: $s) { registrations(first: 100, after: $after) { edges { node { id waitlistPosition person { email } } } pageInfo { hasNextPage endCursor } } } }",
            json!({ "s": gathering["slug"], "after": null }),
        ),
        (
            "{ progressUpdates(first: 100) { totalCount edges { node { body signal organisation { name } pledge { title } coalition { name } } } } }",
            json!({}),
        ),
        (
            "{ pledges(first: 100) { totalCount edges { node { organisation { kind } } } } coalitions { totalCount } quiet: pledges(filter: { goneQuiet: true }) { totalCount } progressUpdates { totalCount } changes { pledgeCount } }",
            json!({}),
        ),
        (
            "{ me { email organisations { role organisation { name } } registrations { status gathering { title } } } }",
            json!({}),
        ),
    ];
    for (query, variables) in queries {
        app.gql(Some(&convenor), query, variables).await?.ok()?;
    }
    Ok(())
}

/// Asserts a refusal of one input field.
fn assert_bad_field(reply: &Reply, field: &str, case: &str) {
    assert_eq!(
        reply.code(),
        Some("BAD_USER_INPUT"),
        "{case}: {}",
        reply.body
    );
    assert_eq!(reply.field(), Some(field), "{case}: {}", reply.body);
    assert!(reply.status < 500, "{case}: {}", reply.status);
}

async fn absurd_dates_are_refused_naming_the_field_and_change_nothing(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("dates@example.org").await?;
    let create =
        "mutation($input: CreateGatheringInput!) { createGathering(input: $input) { id } }";
    let input = |fields: Value| {
        let mut input = json!({
            "title": "Absurd", "startsAt": "2031-03-01T10:00:00Z", "endsAt": "2031-03-01T16:00:00Z",
            "format": "ONLINE", "joiningUrl": "https://meet.example.org/a",
        });
        if let (Some(input), Some(fields)) = (input.as_object_mut(), fields.as_object()) {
            input.extend(fields.clone());
        }
        json!({ "input": input })
    };
    let cases = [
        (
            "year 1",
            json!({ "startsAt": "0001-01-01T10:00:00Z" }),
            "startsAt",
        ),
        (
            "year 262142",
            json!({ "startsAt": "+262142-01-01T10:00:00Z", "endsAt": "+262142-01-01T16:00:00Z" }),
            "startsAt",
        ),
        (
            "far-future end",
            json!({ "endsAt": "9999-12-31T23:59:59Z" }),
            "endsAt",
        ),
        (
            "a gathering two years long",
            json!({ "endsAt": "2033-03-01T16:00:00Z" }),
            "endsAt",
        ),
        (
            "end before start",
            json!({ "endsAt": "2031-03-01T09:00:00Z" }),
            "endsAt",
        ),
        (
            "window opening in 1800",
            json!({ "registrationOpensAt": "1800-01-01T00:00:00Z" }),
            "registrationOpensAt",
        ),
        (
            "window closing in 2500",
            json!({ "registrationClosesAt": "2500-01-01T00:00:00Z" }),
            "registrationClosesAt",
        ),
    ];
    for (case, fields, field) in cases {
        let reply = app.gql(Some(&convenor), create, input(fields)).await?;
        assert_bad_field(&reply, field, case);
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM gatherings").await?, 0);

    // Nor can a gathering be moved to such dates.
    let gathering = app.gathering(&convenor, json!({})).await?;
    let update = "mutation($id: ID!, $input: UpdateGatheringInput!) { updateGathering(id: $id, input: $input) { id } }";
    let updates = [
        (json!({ "endsAt": "+262142-12-31T23:00:00Z" }), "endsAt"),
        (
            json!({ "startsAt": "0001-01-01T00:00:00Z", "endsAt": "0001-01-01T06:00:00Z" }),
            "startsAt",
        ),
        (
            json!({ "registrationOpensAt": "2026-01-01T00:00:00Z", "registrationClosesAt": "3000-01-01T00:00:00Z" }),
            "registrationClosesAt",
        ),
    ];
    for (fields, field) in updates {
        let reply = app
            .gql(
                Some(&convenor),
                update,
                json!({ "id": gathering["id"], "input": fields }),
            )
            .await?;
        assert_bad_field(&reply, field, &fields.to_string());
    }
    let data = app
        .gql(
            None,
            "query($s: String!) { gathering(slug: $s) { startsAt endsAt registrationClosesAt } }",
            json!({ "s": gathering["slug"] }),
        )
        .await?
        .ok()?;
    let ends: chrono::DateTime<chrono::Utc> = data["gathering"]["endsAt"]
        .as_str()
        .unwrap_or_default()
        .parse()?;
    assert!(ends.year_ce().1 < 2100, "{data}");
    assert!(
        data["gathering"]["registrationClosesAt"].is_null(),
        "{data}"
    );

    // A pledge's day, and the moments that filters and admin tools take.
    let org = app.create_organisation(&convenor, "Dated Council").await?;
    let reply = app
        .make_pledge(Some(&convenor), &org, json!({ "dueBy": "9999-01-01" }))
        .await?;
    assert_bad_field(&reply, "dueBy", "dueBy 9999");
    let reply = app
        .make_pledge(Some(&convenor), &org, json!({ "dueBy": "0001-01-01" }))
        .await?;
    assert_bad_field(&reply, "dueBy", "dueBy 1");
    assert_eq!(app.count("SELECT COUNT(*) FROM pledges").await?, 0);
    let pledge = app.pledge_id(&convenor, &org, json!({})).await?;
    let reply = app
        .gql(
            Some(&convenor),
            "mutation($id: ID!) { updatePledge(id: $id, input: { dueBy: \"2201-01-01\" }) { id } }",
            json!({ "id": pledge }),
        )
        .await?;
    assert_bad_field(&reply, "dueBy", "updatePledge dueBy 2201");

    let reads = [
        (
            "{ movement(from: \"0001-01-01T00:00:00Z\") { totals { pledgesMade } } }",
            "from",
        ),
        (
            "{ movement(to: \"9999-01-01T00:00:00Z\") { totals { pledgesMade } } }",
            "to",
        ),
        (
            "{ pledges(filter: { madeFrom: \"1000-01-01T00:00:00Z\" }) { totalCount } }",
            "madeFrom",
        ),
        (
            "{ pledges(filter: { madeTo: \"3000-01-01T00:00:00Z\" }) { totalCount } }",
            "madeTo",
        ),
        (
            "{ progressUpdates(filter: { since: \"0500-01-01T00:00:00Z\" }) { totalCount } }",
            "since",
        ),
    ];
    for (query, field) in reads {
        assert_bad_field(&app.gql(None, query, json!({})).await?, field, query);
    }
    app.grant_role("dates-admin@example.org", "ADMIN").await?;
    let admin = app.sign_in("dates-admin@example.org").await?;
    let reply = app
        .gql(
            Some(&admin),
            "mutation { sendDueDigests(asOf: \"+262142-06-01T00:00:00Z\") }",
            json!({}),
        )
        .await?;
    assert_bad_field(&reply, "asOf", "asOf 262142");
    still_up(&app).await
}

async fn a_message_that_cannot_render_fails_alone_and_the_rest_are_delivered(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("mailroom@example.org").await?;
    let gathering = app
        .gathering(
            &convenor,
            json!({ "startsAt": "2031-03-01T10:00:00Z", "endsAt": "2031-03-01T16:00:00Z", "inPersonCapacity": 10 }),
        )
        .await?;
    let people = [
        "broken@example.org",
        "absurd@example.org",
        "fine@example.org",
    ];
    let mut sessions = Vec::new();
    for person in people {
        sessions.push(app.sign_in(person).await?);
    }
    // Hold the confirmations in the outbox while two of them are spoiled.
    app.smtp
        .refusing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    for session in &sessions {
        app.register(session, &gathering["id"], json!({}))
            .await?
            .ok()?;
    }
    app.execute(
        "UPDATE outbox SET template = 'no_such_template' WHERE recipient = 'broken@example.org'",
    )
    .await?;
    let spoil = match db {
        Backend::Sqlite => {
            "UPDATE outbox SET context = REPLACE(context, '2031-03-01T16', '9031-03-01T16') WHERE recipient = 'absurd@example.org'"
        }
        Backend::Postgres => {
            "UPDATE outbox SET context = REPLACE(context::text, '2031-03-01T16', '9031-03-01T16')::json WHERE recipient = 'absurd@example.org'"
        }
    };
    app.execute(spoil).await?;
    app.smtp
        .refusing
        .store(false, std::sync::atomic::Ordering::SeqCst);

    let fine = app.mail_to("fine@example.org", 2).await?;
    assert!(
        fine.iter().any(|m| m.subject.contains("place")),
        "{:?}",
        fine.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE status = 'FAILED' AND last_error IS NOT NULL AND recipient IN ('broken@example.org', 'absurd@example.org')")
            .await?,
        2
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE status = 'FAILED' AND recipient IN ('broken@example.org', 'absurd@example.org')").await?,
        2
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE status = 'FAILED' AND last_error LIKE '%1900 to 2200%'").await?,
        1
    );
    // Only their sign-in links reached the two whose confirmations failed.
    for person in &people[..2] {
        let got = app
            .smtp
            .messages()
            .into_iter()
            .filter(|m| m.to == *person)
            .count();
        assert_eq!(got, 1, "{person}");
    }
    // The worker goes on: new mail still arrives, and the server answers.
    app.request_sign_in("after@example.org").await?.ok()?;
    app.mail_to("after@example.org", 1).await?;
    still_up(&app).await
}

async fn lists_in_inputs_past_their_maximum_are_refused_naming_the_field(
    db: Backend,
) -> anyhow::Result<()> {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let app = spawn_app(db).await?;
    let convenor = app.convenor("lists@example.org").await?;
    let org = app.create_organisation(&convenor, "Listed Council").await?;
    let pledge = app.pledge_id(&convenor, &org, json!({})).await?;
    let gathering = app.gathering(&convenor, json!({})).await?;
    let six = json!(vec!["SHARING_POWER_AS_EQUALS"; 6]);
    let many: Vec<&str> = vec!["MORE_RESOURCES_BETTER_USED"; 3_000];

    let reads = [
        (
            "query($c: [Change!]) { pledges(filter: { changes: $c }) { totalCount } }",
            json!({ "c": six }),
        ),
        (
            "query($c: [Change!]) { progressUpdates(filter: { changes: $c }) { totalCount } }",
            json!({ "c": many }),
        ),
    ];
    for (query, variables) in reads {
        assert_bad_field(&app.gql(None, query, variables).await?, "changes", query);
    }

    let reply = app
        .make_pledge(
            Some(&convenor),
            &org,
            json!({ "changes": six, "title": "Too many" }),
        )
        .await?;
    assert_bad_field(&reply, "changes", "makePledge");
    let reply = app
        .gql(
            Some(&convenor),
            "mutation($id: ID!, $c: [Change!]) { updatePledge(id: $id, input: { changes: $c }) { id } }",
            json!({ "id": pledge, "c": many }),
        )
        .await?;
    assert_bad_field(&reply, "changes", "updatePledge");
    assert_eq!(app.count("SELECT COUNT(*) FROM pledges").await?, 1);

    let reply = app
        .gql(
            Some(&convenor),
            "mutation($c: [Change!]) { updateDigestPreferences(input: { changes: $c }) { id } }",
            json!({ "c": six }),
        )
        .await?;
    assert_bad_field(&reply, "changes", "updateDigestPreferences");

    let reply = app
        .gql(
            Some(&convenor),
            "mutation($o: ID!, $c: [Change!]!) { formCoalition(input: { organisationId: $o, name: \"Many\", purpose: \"Too many\", changes: $c }) { id } }",
            json!({ "o": org, "c": six }),
        )
        .await?;
    assert_bad_field(&reply, "changes", "formCoalition");

    let attendee = app.sign_in("needs@example.org").await?;
    let reply = app
        .register(
            &attendee,
            &gathering["id"],
            json!({ "accessRequirements": vec!["STEP_FREE_ACCESS"; 10], "accessConsent": true }),
        )
        .await?;
    assert_bad_field(&reply, "accessRequirements", "register");
    assert_eq!(app.count("SELECT COUNT(*) FROM registrations").await?, 0);

    let links: Vec<String> = (0..5_000)
        .map(|n| format!("https://example.org/evidence/{n}"))
        .collect();
    let reply = app
        .gql(
            Some(&convenor),
            "mutation($p: ID!, $e: [String!]) { postProgressUpdate(input: { pledgeId: $p, body: \"News\", signal: ON_TRACK, evidenceUrls: $e }) { id } }",
            json!({ "p": pledge, "e": links }),
        )
        .await?;
    assert_bad_field(&reply, "evidenceUrls", "postProgressUpdate");
    assert_eq!(app.count("SELECT COUNT(*) FROM progress_updates").await?, 0);

    // Text holding NUL, which PostgreSQL cannot even compare, is refused before it is used.
    let reply = app
        .gql(
            None,
            "query($s: String!) { organisation(slug: $s) { name } }",
            json!({ "s": "leeds\u{0}" }),
        )
        .await?;
    assert_refused(&reply, "NUL");

    // A subscription's argument too.
    let mut socket = ws_connect(&app, None).await?;
    socket
        .send(Message::text(
            json!({ "id": "1", "type": "subscribe", "payload": {
                "query": "subscription($c: [Change!]) { progressUpdatePosted(changes: $c) { body } }",
                "variables": { "c": many } } })
            .to_string(),
        ))
        .await?;
    let refused = ws_next(&mut socket, std::time::Duration::from_secs(5)).await?;
    assert!(refused.to_string().contains("at most 5 items"), "{refused}");
    still_up(&app).await
}

/// Cases per database in the fuzzing run; `FUZZ_CASES` changes it, `FUZZ_SEED` replays one run.
const FUZZ_CASES: usize = 2_000;

/// One type of the schema, from the introspection result.
struct FuzzType {
    kind: String,
    fields: Vec<Value>,
    input_fields: Vec<Value>,
    enum_values: Vec<String>,
}

struct Fuzzer {
    types: std::collections::HashMap<String, FuzzType>,
    rng: rand::rngs::StdRng,
    ids: Vec<String>,
    variables: serde_json::Map<String, Value>,
    definitions: Vec<String>,
}

/// The GraphQL spelling of an introspected type reference (`[Change!]!`).
fn type_string(ty: &Value) -> String {
    match ty["kind"].as_str() {
        Some("NON_NULL") => format!("{}!", type_string(&ty["ofType"])),
        Some("LIST") => format!("[{}]", type_string(&ty["ofType"])),
        _ => ty["name"].as_str().unwrap_or("String").to_owned(),
    }
}

fn named_type(ty: &Value) -> &str {
    match ty["kind"].as_str() {
        Some("NON_NULL" | "LIST") => named_type(&ty["ofType"]),
        _ => ty["name"].as_str().unwrap_or("String"),
    }
}

impl Fuzzer {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        use rand::seq::IndexedRandom;
        items.choose(&mut self.rng)
    }

    fn chance(&mut self, p: f64) -> bool {
        use rand::Rng;
        self.rng.random_bool(p)
    }

    fn below(&mut self, n: usize) -> usize {
        use rand::Rng;
        self.rng.random_range(0..n.max(1))
    }

    /// A value for an input type: usually well formed, often absurd, sometimes wrong.
    fn value(&mut self, ty: &Value, depth: usize) -> Value {
        if self.chance(0.03) {
            // The wrong type altogether.
            return [json!(42), json!("x"), json!(true), json!({}), json!([])][self.below(5)]
                .clone();
        }
        match ty["kind"].as_str() {
            Some("NON_NULL") => self.value(&ty["ofType"], depth),
            Some("LIST") => {
                if self.chance(0.1) {
                    return Value::Null;
                }
                let n = if self.chance(0.05) {
                    200
                } else {
                    self.below(4)
                };
                Value::Array(
                    (0..n)
                        .map(|_| self.value(&ty["ofType"], depth + 1))
                        .collect(),
                )
            }
            _ => {
                if self.chance(0.05) {
                    return Value::Null;
                }
                let name = ty["name"].as_str().unwrap_or("String").to_owned();
                self.named_value(&name, depth)
            }
        }
    }

    fn named_value(&mut self, name: &str, depth: usize) -> Value {
        match name {
            "Int" => {
                let ints = [
                    0i64,
                    1,
                    -1,
                    2,
                    5,
                    20,
                    100,
                    101,
                    1_000_000,
                    i64::from(i32::MAX),
                    i64::from(i32::MIN),
                    -100,
                ];
                json!(ints[self.below(ints.len())])
            }
            "Boolean" => json!(self.chance(0.5)),
            "ID" => {
                if !self.ids.is_empty() && self.chance(0.6) {
                    let index = self.below(self.ids.len());
                    let id = self.ids[index].clone();
                    return json!(id);
                }
                let bad = [
                    "",
                    "not-an-id",
                    "00000000-0000-0000-0000-000000000000",
                    "🙂",
                    "' OR 1=1 --",
                ];
                json!(bad[self.below(bad.len())])
            }
            "DateTime" => {
                let dates = [
                    "2030-06-01T10:00:00Z",
                    "2030-06-01T16:00:00Z",
                    "+262142-12-31T23:59:59Z",
                    "0001-01-01T00:00:00Z",
                    "1899-12-31T23:59:59Z",
                    "2201-01-01T00:00:00Z",
                    "9999-12-31T23:59:59Z",
                    "yesterday",
                    "2026-02-30T00:00:00Z",
                    "",
                ];
                json!(dates[self.below(dates.len())])
            }
            "Date" => {
                let dates = [
                    "2030-06-01",
                    "0001-01-01",
                    "9999-12-31",
                    "2026-02-30",
                    "soon",
                    "",
                ];
                json!(dates[self.below(dates.len())])
            }
            "JSON" => json!({ "a": [1, 2, 3] }),
            "String" => self.string(),
            other => {
                let Some((kind, enum_values, fields)) = self.types.get(other).map(|ty| {
                    (
                        ty.kind.clone(),
                        ty.enum_values.clone(),
                        ty.input_fields.clone(),
                    )
                }) else {
                    return Value::Null;
                };
                match kind.as_str() {
                    "ENUM" => {
                        if self.chance(0.05) {
                            return json!("NOT_A_VALUE");
                        }
                        json!(self.pick(&enum_values).cloned().unwrap_or_default())
                    }
                    "INPUT_OBJECT" if depth < 6 => {
                        let mut object = serde_json::Map::new();
                        for field in &fields {
                            let required = field["type"]["kind"] == "NON_NULL";
                            if required || self.chance(0.5) {
                                let value = self.value(&field["type"], depth + 1);
                                object.insert(
                                    field["name"].as_str().unwrap_or("x").to_owned(),
                                    value,
                                );
                            }
                        }
                        Value::Object(object)
                    }
                    _ => Value::Null,
                }
            }
        }
    }

    fn string(&mut self) -> Value {
        let roll = self.below(100);
        let text = match roll {
            0..=2 => "x".repeat(100_000),
            3..=12 => String::new(),
            13..=20 => "   ".to_owned(),
            21..=30 => format!("someone{}@example.org", self.below(1000)),
            31..=38 => "https://example.org/evidence".to_owned(),
            39..=44 => "javascript:alert(1)".to_owned(),
            45..=50 => "Europe/London".to_owned(),
            51..=55 => "<script>alert(1)</script>\u{0}\u{202e}".to_owned(),
            56..=60 => "not-a-slug ✓".to_owned(),
            61..=65 => "Bearer gss_not_a_token".to_owned(),
            _ => format!("Fuzz {}", self.below(1_000_000)),
        };
        json!(text)
    }

    /// Arguments for a field, as variables of the operation.
    fn arguments(&mut self, args: &[Value]) -> String {
        let mut given = Vec::new();
        for arg in args {
            let required = arg["type"]["kind"] == "NON_NULL";
            if !(required || self.chance(0.5)) {
                continue;
            }
            let name = arg["name"].as_str().unwrap_or("x").to_owned();
            let variable = format!("v{}", self.definitions.len());
            let value = self.value(&arg["type"], 0);
            self.definitions
                .push(format!("${variable}: {}", type_string(&arg["type"])));
            self.variables.insert(variable.clone(), value);
            given.push(format!("{name}: ${variable}"));
        }
        if given.is_empty() {
            String::new()
        } else {
            format!("({})", given.join(", "))
        }
    }

    /// A selection of up to four fields of `type_name`, nested up to `depth` more levels
    /// (now and then deeper than any limit allows).
    fn selection(&mut self, type_name: &str, depth: usize) -> String {
        let Some(fields) = self.types.get(type_name).map(|t| t.fields.clone()) else {
            return "__typename".to_owned();
        };
        let mut picked = Vec::new();
        for _ in 0..(1 + self.below(4)) {
            let Some(field) = self.pick(&fields).cloned() else {
                break;
            };
            let name = field["name"].as_str().unwrap_or("__typename").to_owned();
            let args = field["args"].as_array().cloned().unwrap_or_default();
            let arguments = self.arguments(&args);
            let of = named_type(&field["type"]).to_owned();
            let is_object = self.types.get(&of).is_some_and(|t| t.kind == "OBJECT");
            let alias = format!("f{}", self.definitions.len() + picked.len());
            if is_object {
                let inner = if depth == 0 {
                    "__typename".to_owned()
                } else {
                    self.selection(&of, depth - 1)
                };
                picked.push(format!("{alias}: {name}{arguments} {{ {inner} }}"));
            } else {
                picked.push(format!("{alias}: {name}{arguments}"));
            }
        }
        if self.chance(0.1) {
            picked.push("__typename".to_owned());
        }
        picked.join(" ")
    }

    /// One random operation: its text and variables.
    fn operation(&mut self) -> (String, Value) {
        self.variables = serde_json::Map::new();
        self.definitions = Vec::new();
        let (keyword, root) = if self.chance(0.5) {
            ("query", "Query")
        } else {
            ("mutation", "Mutation")
        };
        let depth = if self.chance(0.05) {
            15
        } else {
            1 + self.below(4)
        };
        let selection = self.selection(root, depth);
        let definitions = if self.definitions.is_empty() {
            String::new()
        } else {
            format!("({})", self.definitions.join(", "))
        };
        (
            format!("{keyword} Fuzz{definitions} {{ {selection} }}"),
            Value::Object(std::mem::take(&mut self.variables)),
        )
    }
}

async fn random_queries_and_mutations_from_the_schema_never_get_a_server_error(
    db: Backend,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    use rand::SeedableRng;

    let seed: u64 = match std::env::var("FUZZ_SEED") {
        Ok(seed) => seed.parse().context("FUZZ_SEED is a number")?,
        Err(_) => rand::random(),
    };
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(FUZZ_CASES);
    println!("fuzzing {cases} cases on {db:?}: replay with FUZZ_SEED={seed}");

    let app = spawn_app(db).await?;
    let convenor = app.convenor("fuzz-convenor@example.org").await?;
    app.grant_role("fuzz-admin@example.org", "ADMIN").await?;
    let admin = app.sign_in("fuzz-admin@example.org").await?;
    let attendee = app.sign_in("fuzz-attendee@example.org").await?;
    let org = app.create_organisation(&convenor, "Fuzz Council").await?;
    let token = app.api_token(&convenor, &org).await?;
    let pledge = app.pledge_id(&convenor, &org, json!({})).await?;
    let coalition = app
        .form_coalition(
            &convenor,
            &org,
            "Fuzz Coalition",
            json!(["SHARING_POWER_AS_EQUALS"]),
        )
        .await?;
    let gathering = app.gathering(&convenor, json!({})).await?;
    let mut ids = vec![org, pledge, coalition];
    ids.extend(gathering["id"].as_str().map(str::to_owned));

    let schema = app
        .gql(
            None,
            include_str!("../api/src/graphql/introspection.graphql"),
            json!({}),
        )
        .await?
        .ok()?;
    let mut types = std::collections::HashMap::new();
    for ty in schema["__schema"]["types"].as_array().into_iter().flatten() {
        let list = |key: &str| ty[key].as_array().cloned().unwrap_or_default();
        types.insert(
            ty["name"].as_str().unwrap_or_default().to_owned(),
            FuzzType {
                kind: ty["kind"].as_str().unwrap_or_default().to_owned(),
                fields: list("fields"),
                input_fields: list("inputFields"),
                enum_values: list("enumValues")
                    .iter()
                    .filter_map(|v| v["name"].as_str().map(str::to_owned))
                    .collect(),
            },
        );
    }
    let mut fuzzer = Fuzzer {
        types,
        rng: rand::rngs::StdRng::seed_from_u64(seed),
        ids,
        variables: serde_json::Map::new(),
        definitions: Vec::new(),
    };
    let credentials = [
        None,
        Some(convenor),
        Some(admin),
        Some(attendee),
        Some(token),
        Some("gss_forged".to_owned()),
    ];
    let mut requests = Vec::with_capacity(cases);
    for n in 0..cases {
        let (query, variables) = fuzzer.operation();
        let credential = credentials[fuzzer.below(credentials.len())].clone();
        requests.push((
            n,
            credential,
            json!({ "query": query, "variables": variables }),
        ));
    }

    let app = &app;
    let failures: Vec<String> = futures::stream::iter(requests)
        .map(|(n, credential, body)| async move {
            let reply = match app.post_json(credential.as_deref(), &body).await {
                Ok(reply) => reply,
                Err(err) => return Some(format!("case {n}: no answer ({err:#}) to {body}")),
            };
            let internal = reply.body["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["extensions"]["code"] == "INTERNAL_SERVER_ERROR");
            (reply.status >= 500 || internal).then(|| {
                let mut shown = body.to_string();
                shown.truncate(2_000);
                format!("case {n}: HTTP {} {} for {shown}", reply.status, reply.body)
            })
        })
        .buffer_unordered(6)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "FUZZ_SEED={seed}: {} of {cases} cases failed:\n{}",
        failures.len(),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    still_up(app).await
}

/// Sends a bare HTTP/1.1 request for `/healthz` on `stream` and reads the head of its answer,
/// lower-cased (giving up after 30 seconds).
async fn healthz_on(stream: &mut tokio::net::TcpStream) -> anyhow::Result<String> {
    use tokio::io::AsyncWriteExt;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: groundswell.test\r\n\r\n")
        .await?;
    answer_head(stream).await
}

/// Reads the head of the answer waiting on `stream`, lower-cased (giving up after 30 seconds).
async fn answer_head(stream: &mut tokio::net::TcpStream) -> anyhow::Result<String> {
    use tokio::io::AsyncReadExt;
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut byte).await?;
            anyhow::ensure!(
                n == 1,
                "the connection closed before the answer's head ended"
            );
            head.push(byte[0]);
        }
        Ok(String::from_utf8_lossy(&head).to_lowercase())
    })
    .await
    .context("no answer within 30 seconds")?
}

/// MAX_CONNECTIONS bounds the connections held at once: past it a connection waits, unanswered,
/// until one closes; once three quarters are open, answers close their connections, so idle
/// keep-alive connections cannot hold the places for good.
async fn connections_past_the_cap_wait_and_answers_close_them_once_places_run_low(
    db: Backend,
) -> anyhow::Result<()> {
    let smtp = SmtpServer::start()?;
    let mut options = Options::new(&smtp);
    options.max_connections = 4;
    let app = start(fresh_database(db).await?, smtp, options).await?;
    let connect = || tokio::net::TcpStream::connect(app.address);

    // One of four open: the connection stays open for the next request.
    let mut first = connect().await?;
    let head = healthz_on(&mut first).await?;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");

    // Two more, idle, and a fourth asking: all four places are taken, so its answer closes
    // it (the server ends the connection: reading on finds its end).
    let idle = [connect().await?, connect().await?];
    let mut fourth = connect().await?;
    let head = healthz_on(&mut fourth).await?;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    // Reading to the end returns (with the body) only once the server has closed it.
    let mut body = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::io::AsyncReadExt::read_to_end(&mut fourth, &mut body),
    )
    .await;
    assert!(
        matches!(closed, Ok(Ok(_))),
        "the server kept the connection open: {closed:?}"
    );

    // The first closes too; two more idle connections take the freed places (they were
    // queued first), so all four are held by connections that ask nothing: a fifth waits,
    // unanswered, its request in the socket.
    drop(first);
    let more_idle = [connect().await?, connect().await?];
    let mut fifth = connect().await?;
    let waiting = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        healthz_on(&mut fifth),
    )
    .await;
    assert!(waiting.is_err(), "answered past the cap: {waiting:?}");

    // An idle connection closes; the fifth is let in and answered.
    drop(idle);
    let head = answer_head(&mut fifth).await?;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    drop(more_idle);
    Ok(())
}

/// Whether the server closes `stream` within `within`: reading finds its end or a reset
/// (perhaps after an answer the server sent as it closed), rather than waiting on.
async fn closed_by_server(stream: &mut tokio::net::TcpStream, within: std::time::Duration) -> bool {
    let mut rest = Vec::new();
    tokio::time::timeout(
        within,
        tokio::io::AsyncReadExt::read_to_end(stream, &mut rest),
    )
    .await
    .is_ok()
}

/// HEADER_READ_TIMEOUT_SECONDS: a connection that sends nothing, one that sends half a request's
/// headers and stops, and a kept-alive one idle after its answer are all closed once the
/// timeout passes, so they cannot hold the places under MAX_CONNECTIONS for good; a connection
/// waiting for a place is then let in and answered.
async fn connections_that_send_no_request_in_time_are_closed_and_give_up_their_place(
    db: Backend,
) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let smtp = SmtpServer::start()?;
    let mut options = Options::new(&smtp);
    options.max_connections = 8;
    options.header_read_timeout_seconds = 1;
    let app = start(fresh_database(db).await?, smtp, options).await?;
    let connect = || tokio::net::TcpStream::connect(app.address);

    // Kept alive after its answer (one of eight places open: no `Connection: close`).
    let mut answered = connect().await?;
    let head = healthz_on(&mut answered).await?;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    let mut silent = connect().await?;
    let mut halfway = connect().await?;
    halfway
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: groundswell.test\r\n")
        .await?;
    // Five more that send nothing take the last places: a ninth waits for one.
    let mut more_silent = Vec::new();
    for _ in 0..5 {
        more_silent.push(connect().await?);
    }
    let mut waiting = connect().await?;
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: groundswell.test\r\n\r\n")
        .await?;

    // Not closed at once: a fifth of the timeout on, the silent connection is still open.
    assert!(
        !closed_by_server(&mut silent, std::time::Duration::from_millis(200)).await,
        "a connection was closed long before its timeout"
    );
    // Closed well before hyper's own default (30 s), so the setting is what closed them.
    for (what, stream) in [
        ("a connection idle after its answer", &mut answered),
        ("a connection that sent nothing", &mut silent),
        ("a connection that sent half its headers", &mut halfway),
    ] {
        assert!(
            closed_by_server(stream, std::time::Duration::from_secs(10)).await,
            "{what} was kept open 10 s past a 1 s timeout"
        );
    }
    // Its places freed, the waiting connection is let in and answered, though it sent its
    // request long before.
    let head = answer_head(&mut waiting).await?;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    drop(more_silent);
    Ok(())
}
