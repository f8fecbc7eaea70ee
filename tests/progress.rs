//! Progress updates on pledges and coalitions, the movement-wide list, the period summary, and
//! the authorisation matrix for every mutation of the year of action.

use serde_json::{Value, json};

use crate::{helpers::*, on_both_databases};

on_both_databases!(
    an_update_on_a_pledge_becomes_its_latest_and_moves_the_figures,
    update_input_is_checked_and_names_the_field,
    done_marks_the_pledge_achieved_unless_asked_not_to,
    coalition_updates_come_only_from_active_members,
    progress_updates_filter_across_the_movement,
    the_movement_summary_counts_a_period_by_change_and_region,
    every_mutation_refuses_the_wrong_actors_and_changes_nothing,
    each_mutation_in_one_operation_answers_with_what_it_wrote,
    concurrent_updates_and_pledges_on_overlapping_changes_all_land,
);

const HOME: &str = "LIVING_IN_THE_PLACE_WE_CALL_HOME";
const POWER: &str = "SHARING_POWER_AS_EQUALS";
const BELONG: &str = "COMMUNITIES_WHERE_EVERYONE_BELONGS";

const PLEDGE: &str = "query($id: ID!) { pledge(id: $id) { status achievedAt goneQuiet latestUpdate { body signal } updates { totalCount edges { node { body } } } } }";

async fn an_update_on_a_pledge_becomes_its_latest_and_moves_the_figures(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Kirklees Voices").await?;
    let member = app.add_member(&owner, &org, "member@example.org").await?;
    let token = app.api_token(&owner, &org).await?;
    let pledge = app
        .pledge_id(&owner, &org, json!({ "changes": [HOME, POWER] }))
        .await?;

    let first = app
        .post_update(
            Some(&member),
            json!({ "pledgeId": pledge, "body": "Ten people moved home", "signal": "ON_TRACK",
                    "percentComplete": 40, "evidenceUrls": ["https://kirklees.example/report"] }),
        )
        .await?
        .ok()?;
    let update = &first["postProgressUpdate"];
    assert_eq!(update["signal"], "ON_TRACK");
    assert_eq!(update["percentComplete"], 40);
    assert_eq!(
        update["evidenceUrls"],
        json!(["https://kirklees.example/report"])
    );
    assert_eq!(update["organisation"]["id"], json!(org));
    assert_eq!(update["pledge"]["id"], json!(pledge));
    app.post_update(
        Some(&token),
        json!({ "pledgeId": pledge, "body": "Funding is late", "signal": "AT_RISK" }),
    )
    .await?
    .ok()?;

    let read = app.gql(None, PLEDGE, json!({ "id": pledge })).await?.ok()?;
    assert_eq!(read["pledge"]["latestUpdate"]["body"], "Funding is late");
    assert_eq!(read["pledge"]["updates"]["totalCount"], 2);
    assert_eq!(
        read["pledge"]["updates"]["edges"][0]["node"]["body"], "Funding is late",
        "newest first"
    );
    let figures = app.change_figures().await?;
    assert_eq!(figures[HOME]["progressUpdateCount"], 2);
    assert_eq!(figures[POWER]["progressUpdateCount"], 2);
    assert_eq!(figures[BELONG]["progressUpdateCount"], 0);
    assert!(!figures[HOME]["lastProgressAt"].is_null());
    assert!(figures[BELONG]["lastProgressAt"].is_null());
    Ok(())
}

async fn update_input_is_checked_and_names_the_field(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Checkers").await?;
    let pledge = app.pledge_id(&owner, &org, json!({})).await?;
    let coalition = app
        .form_coalition(&owner, &org, "Checking Coalition", json!([HOME]))
        .await?;
    let base = json!({ "pledgeId": pledge, "body": "Progress", "signal": "ON_TRACK" });
    let with = |extra: Value| {
        let mut input = base.clone();
        for (k, v) in extra.as_object().into_iter().flatten() {
            input[k] = v.clone();
        }
        input
    };
    for (input, field) in [
        (
            with(json!({ "evidenceUrls": ["ftp://files.example/report"] })),
            "evidenceUrls",
        ),
        (
            with(json!({ "evidenceUrls": ["javascript:alert(1)"] })),
            "evidenceUrls",
        ),
        (
            with(json!({ "evidenceUrls": ["not a url"] })),
            "evidenceUrls",
        ),
        (
            with(json!({ "evidenceUrls": vec!["https://a.example"; 11] })),
            "evidenceUrls",
        ),
        (with(json!({ "percentComplete": 101 })), "percentComplete"),
        (with(json!({ "percentComplete": -1 })), "percentComplete"),
        (with(json!({ "body": "  " })), "body"),
        (with(json!({ "coalitionId": coalition })), "pledgeId"),
        (
            json!({ "body": "Neither", "signal": "ON_TRACK" }),
            "pledgeId",
        ),
    ] {
        let reply = app.post_update(Some(&owner), input.clone()).await?;
        assert_eq!(
            reply.code(),
            Some("BAD_USER_INPUT"),
            "{input}: {:?}",
            reply.body
        );
        assert_eq!(reply.field(), Some(field), "{input}: {:?}", reply.body);
    }
    let unknown = app
        .post_update(
            Some(&owner),
            with(json!({ "pledgeId": "0190f1c2-0000-7000-8000-000000000000" })),
        )
        .await?;
    assert_eq!(unknown.code(), Some("NOT_FOUND"));
    assert_eq!(app.count("SELECT COUNT(*) FROM progress_updates").await?, 0);
    let ok = app
        .post_update(
            Some(&owner),
            with(json!({ "percentComplete": 100, "evidenceUrls": ["http://a.example/x", "https://b.example"] })),
        )
        .await?
        .ok()?;
    assert_eq!(
        ok["postProgressUpdate"]["evidenceUrls"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    Ok(())
}

async fn done_marks_the_pledge_achieved_unless_asked_not_to(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Finishers").await?;
    let achieved = app
        .pledge_id(&owner, &org, json!({ "title": "one" }))
        .await?;
    let kept = app
        .pledge_id(&owner, &org, json!({ "title": "two" }))
        .await?;

    let done = app
        .post_update(
            Some(&owner),
            json!({ "pledgeId": achieved, "body": "All done", "signal": "DONE", "percentComplete": 100 }),
        )
        .await?
        .ok()?;
    assert_eq!(done["postProgressUpdate"]["pledge"]["status"], "ACHIEVED");
    let read = app
        .gql(None, PLEDGE, json!({ "id": achieved }))
        .await?
        .ok()?;
    assert_eq!(read["pledge"]["status"], "ACHIEVED");
    assert!(!read["pledge"]["achievedAt"].is_null());
    assert_eq!(read["pledge"]["goneQuiet"], false);

    app.post_update(
        Some(&owner),
        json!({ "pledgeId": kept, "body": "Phase one done", "signal": "DONE", "markAchieved": false }),
    )
    .await?
    .ok()?;
    let read = app.gql(None, PLEDGE, json!({ "id": kept })).await?.ok()?;
    assert_eq!(read["pledge"]["status"], "ACTIVE");

    let figures = app.change_figures().await?;
    assert_eq!(
        figures[HOME]["pledgeCount"], 2,
        "achieved pledges still count"
    );
    Ok(())
}

async fn coalition_updates_come_only_from_active_members(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let lead = app.sign_in("lead@example.org").await?;
    let member = app.sign_in("member@example.org").await?;
    let invited = app.sign_in("invited@example.org").await?;
    let outsider = app.sign_in("outsider@example.org").await?;
    let lead_org = app.create_organisation(&lead, "Lead Org").await?;
    let member_org = app.create_organisation(&member, "Member Org").await?;
    let invited_org = app.create_organisation(&invited, "Invited Org").await?;
    app.create_organisation(&outsider, "Outsider Org").await?;
    let member_token = app.api_token(&member, &member_org).await?;
    let coalition = app
        .form_coalition(&lead, &lead_org, "Belong Together", json!([BELONG, POWER]))
        .await?;
    app.join_coalition(&lead, &member, &coalition, &member_org)
        .await?;
    app.gql(
        Some(&lead),
        "mutation($c: ID!, $o: ID!) { inviteToCoalition(coalitionId: $c, organisationId: $o) { id } }",
        json!({ "c": coalition, "o": invited_org }),
    )
    .await?
    .ok()?;

    let input =
        json!({ "coalitionId": coalition, "body": "Our first circle met", "signal": "ON_TRACK" });
    let by_token = app
        .post_update(Some(&member_token), input.clone())
        .await?
        .ok()?;
    assert_eq!(
        by_token["postProgressUpdate"]["organisation"]["id"],
        json!(member_org)
    );
    assert_eq!(
        by_token["postProgressUpdate"]["coalition"]["id"],
        json!(coalition)
    );
    let mut as_lead = input.clone();
    as_lead["organisationId"] = json!(lead_org);
    app.post_update(Some(&lead), as_lead).await?.ok()?;

    for (who, credential) in [
        ("an invited organisation", &invited),
        ("an outsider", &outsider),
    ] {
        let reply = app.post_update(Some(credential), input.clone()).await?;
        assert_eq!(reply.code(), Some("FORBIDDEN"), "{who}: {:?}", reply.body);
    }
    let mut posing = input.clone();
    posing["organisationId"] = json!(member_org);
    let reply = app.post_update(Some(&outsider), posing).await?;
    assert_eq!(
        reply.code(),
        Some("FORBIDDEN"),
        "naming another organisation"
    );

    let figures = app.change_figures().await?;
    assert_eq!(figures[BELONG]["progressUpdateCount"], 2);
    assert_eq!(figures[POWER]["progressUpdateCount"], 2);
    assert_eq!(figures[HOME]["progressUpdateCount"], 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM progress_updates").await?, 2);
    Ok(())
}

const UPDATES: &str = "query($filter: ProgressUpdateFilter) { progressUpdates(first: 100, filter: $filter) { totalCount edges { node { body signal organisation { name } pledge { title } coalition { name } } } } }";

async fn bodies(app: &TestApp, filter: Value) -> anyhow::Result<Vec<String>> {
    let data = app
        .gql(None, UPDATES, json!({ "filter": filter }))
        .await?
        .ok()?;
    Ok(data["progressUpdates"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["node"]["body"].as_str().unwrap_or_default().to_owned())
        .collect())
}

async fn progress_updates_filter_across_the_movement(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let one = app.sign_in("one@example.org").await?;
    let two = app.sign_in("two@example.org").await?;
    let first = app.create_organisation(&one, "First").await?;
    let second = app.create_organisation(&two, "Second").await?;
    let home = app
        .pledge_id(&one, &first, json!({ "changes": [HOME] }))
        .await?;
    let power = app
        .pledge_id(&two, &second, json!({ "changes": [POWER] }))
        .await?;
    let coalition = app
        .form_coalition(&one, &first, "Belonging Circle", json!([BELONG]))
        .await?;

    let post = |credential: &str, input: Value| {
        let credential = credential.to_owned();
        let app = &app;
        async move { app.post_update(Some(&credential), input).await?.ok() }
    };
    post(
        &one,
        json!({ "pledgeId": home, "body": "a", "signal": "ON_TRACK" }),
    )
    .await?;
    post(
        &two,
        json!({ "pledgeId": power, "body": "b", "signal": "AT_RISK" }),
    )
    .await?;
    let since = chrono::Utc::now();
    clock_passes(since).await?;
    post(
        &one,
        json!({ "coalitionId": coalition, "body": "c", "signal": "OFF_TRACK" }),
    )
    .await?;
    post(
        &one,
        json!({ "pledgeId": home, "body": "d", "signal": "AT_RISK" }),
    )
    .await?;

    assert_eq!(
        bodies(&app, json!({})).await?,
        ["d", "c", "b", "a"],
        "newest first"
    );
    assert_eq!(
        bodies(&app, json!({ "changes": [HOME] })).await?,
        ["d", "a"]
    );
    assert_eq!(
        bodies(&app, json!({ "changes": [BELONG, POWER] })).await?,
        ["c", "b"]
    );
    assert_eq!(
        bodies(&app, json!({ "organisationId": first })).await?,
        ["d", "c", "a"]
    );
    assert_eq!(
        bodies(&app, json!({ "coalitionId": coalition })).await?,
        ["c"]
    );
    assert_eq!(
        bodies(&app, json!({ "signal": "AT_RISK" })).await?,
        ["d", "b"]
    );
    assert_eq!(
        bodies(&app, json!({ "since": since.to_rfc3339() })).await?,
        ["d", "c"]
    );
    assert_eq!(
        bodies(
            &app,
            json!({ "since": since.to_rfc3339(), "signal": "AT_RISK", "organisationId": first })
        )
        .await?,
        ["d"]
    );
    let nested = app.gql(None, UPDATES, json!({})).await?.ok()?;
    let edges = &nested["progressUpdates"]["edges"];
    assert_eq!(edges[1]["node"]["coalition"]["name"], "Belonging Circle");
    assert_eq!(edges[2]["node"]["organisation"]["name"], "Second");
    assert_eq!(edges[3]["node"]["pledge"]["title"], "Homes, not placements");
    Ok(())
}

const MOVEMENT: &str = "query($from: DateTime, $to: DateTime) { movement(from: $from, to: $to) { totals { pledgesMade organisationsPledging activeCoalitions updatesPosted } byChange { change figures { pledgesMade organisationsPledging activeCoalitions updatesPosted } } byRegion { region figures { pledgesMade organisationsPledging activeCoalitions updatesPosted } } } }";

fn figures_of(list: &Value, key: &str, name: &str) -> Value {
    list.as_array()
        .into_iter()
        .flatten()
        .find(|item| item[key] == name)
        .map(|item| item["figures"].clone())
        .unwrap_or(Value::Null)
}

async fn the_movement_summary_counts_a_period_by_change_and_region(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let london = app
        .create_organisation_in(&owner, "Hackney Council", "COUNCIL", "LONDON")
        .await?;
    let north = app
        .create_organisation_in(&owner, "Gateshead Group", "COMMUNITY_GROUP", "NORTH_EAST")
        .await?;
    let a = app
        .pledge_id(&owner, &london, json!({ "changes": [HOME, POWER] }))
        .await?;
    app.pledge_id(&owner, &london, json!({ "changes": [HOME] }))
        .await?;
    app.pledge_id(
        &owner,
        &north,
        json!({ "changes": [BELONG], "title": "Last year" }),
    )
    .await?;
    let coalition = app
        .form_coalition(&owner, &north, "North East Belonging", json!([BELONG]))
        .await?;
    app.post_update(
        Some(&owner),
        json!({ "pledgeId": a, "body": "x", "signal": "ON_TRACK" }),
    )
    .await?
    .ok()?;
    app.post_update(
        Some(&owner),
        json!({ "coalitionId": coalition, "body": "y", "signal": "ON_TRACK" }),
    )
    .await?
    .ok()?;
    // One pledge was made last year: no client can move time back.
    app.execute(
        "UPDATE pledges SET created_at = '2025-06-01T12:00:00+00:00' WHERE title = 'Last year'",
    )
    .await?;
    let now = chrono::Utc::now();
    let from = (now - chrono::TimeDelta::hours(1)).to_rfc3339();
    let to = (now + chrono::TimeDelta::hours(1)).to_rfc3339();

    let data = app
        .gql(None, MOVEMENT, json!({ "from": from, "to": to }))
        .await?
        .ok()?;
    let summary = &data["movement"];
    assert_eq!(
        summary["totals"],
        json!({ "pledgesMade": 2, "organisationsPledging": 1, "activeCoalitions": 1, "updatesPosted": 2 })
    );
    assert_eq!(
        figures_of(&summary["byChange"], "change", HOME),
        json!({ "pledgesMade": 2, "organisationsPledging": 1, "activeCoalitions": 0, "updatesPosted": 1 })
    );
    assert_eq!(
        figures_of(&summary["byChange"], "change", BELONG),
        json!({ "pledgesMade": 0, "organisationsPledging": 0, "activeCoalitions": 1, "updatesPosted": 1 })
    );
    assert_eq!(summary["byChange"].as_array().map(Vec::len), Some(5));
    assert_eq!(
        figures_of(&summary["byRegion"], "region", "LONDON"),
        json!({ "pledgesMade": 2, "organisationsPledging": 1, "activeCoalitions": 0, "updatesPosted": 1 })
    );
    assert_eq!(
        figures_of(&summary["byRegion"], "region", "NORTH_EAST"),
        json!({ "pledgesMade": 0, "organisationsPledging": 0, "activeCoalitions": 1, "updatesPosted": 1 })
    );

    let last_year = app
        .gql(
            None,
            MOVEMENT,
            json!({ "from": "2025-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z" }),
        )
        .await?
        .ok()?;
    assert_eq!(
        last_year["movement"]["totals"],
        json!({ "pledgesMade": 1, "organisationsPledging": 1, "activeCoalitions": 0, "updatesPosted": 0 })
    );
    assert_eq!(
        figures_of(&last_year["movement"]["byRegion"], "region", "NORTH_EAST")["pledgesMade"],
        1
    );

    let before = app
        .gql(
            None,
            MOVEMENT,
            json!({ "from": "2020-01-01T00:00:00Z", "to": "2021-01-01T00:00:00Z" }),
        )
        .await?
        .ok()?;
    assert_eq!(
        before["movement"]["totals"],
        json!({ "pledgesMade": 0, "organisationsPledging": 0, "activeCoalitions": 0, "updatesPosted": 0 })
    );
    assert_eq!(before["movement"]["byRegion"], json!([]));
    let backwards = app
        .gql(None, MOVEMENT, json!({ "from": to, "to": from }))
        .await?;
    assert_eq!(backwards.code(), Some("BAD_USER_INPUT"));
    Ok(())
}

async fn each_mutation_in_one_operation_answers_with_what_it_wrote(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Two Steps").await?;
    let pledge = app.pledge_id(&owner, &org, json!({})).await?;
    let data = app
        .gql(
            Some(&owner),
            "mutation($p: ID!) {
               first: postProgressUpdate(input: { pledgeId: $p, body: \"one\", signal: ON_TRACK }) { pledge { status latestUpdate { body } } }
               second: postProgressUpdate(input: { pledgeId: $p, body: \"two\", signal: DONE }) { pledge { status latestUpdate { body } } }
             }",
            json!({ "p": pledge }),
        )
        .await?
        .ok()?;
    assert_eq!(
        data["first"]["pledge"],
        json!({ "status": "ACTIVE", "latestUpdate": { "body": "one" } })
    );
    assert_eq!(
        data["second"]["pledge"],
        json!({ "status": "ACHIEVED", "latestUpdate": { "body": "two" } })
    );
    Ok(())
}

/// Everything the mutations below could change, read straight from the database and through
/// the API, to show a refused call changed nothing.
async fn fingerprint(app: &TestApp, pledge: &str) -> anyhow::Result<Value> {
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.database().await?;
    let mut counts = Vec::new();
    for sql in [
        "SELECT COUNT(*) FROM pledges",
        "SELECT COUNT(*) FROM pledges WHERE status = 'ACTIVE'",
        "SELECT COUNT(*) FROM pledges WHERE title = 'Changed title'",
        "SELECT COUNT(*) FROM pledge_changes",
        "SELECT COUNT(*) FROM coalitions",
        "SELECT COUNT(*) FROM coalitions WHERE status = 'CONCLUDED'",
        "SELECT COUNT(*) FROM coalition_members",
        "SELECT COUNT(*) FROM coalition_members WHERE status = 'ACTIVE'",
        "SELECT COUNT(*) FROM coalition_members WHERE status = 'LEFT'",
        "SELECT COUNT(*) FROM progress_updates",
        "SELECT COALESCE(SUM(pledge_count + organisation_count + coalition_count + progress_update_count), 0) FROM changes",
    ] {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                sql.to_owned(),
            ))
            .await?;
        let count: i64 = match row {
            Some(row) => row.try_get_by_index(0)?,
            None => -1,
        };
        counts.push(json!([sql, count]));
    }
    db.close().await?;
    let view = app
        .gql(
            None,
            "query($id: ID!) { pledge(id: $id) { title status latestUpdate { id } } coalitions { edges { node { slug status lead { id } members { status organisation { id } } } } } }",
            json!({ "id": pledge }),
        )
        .await?
        .ok()?;
    Ok(json!({ "counts": counts, "view": view }))
}

struct Case {
    mutation: &'static str,
    /// Who must be refused, with the variables they send.
    wrong: Vec<(&'static str, Option<String>, Value)>,
    /// Who succeeds afterwards, with the variables they send.
    right: (&'static str, String, Value),
}

async fn every_mutation_refuses_the_wrong_actors_and_changes_nothing(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner_a = app.sign_in("a@example.org").await?;
    let owner_b = app.sign_in("b@example.org").await?;
    let owner_c = app.sign_in("c@example.org").await?;
    let owner_d = app.sign_in("d@example.org").await?;
    let attendee = app.sign_in("attendee@example.org").await?;
    let org_a = app.create_organisation(&owner_a, "Org A").await?;
    let org_b = app.create_organisation(&owner_b, "Org B").await?;
    let org_c = app.create_organisation(&owner_c, "Org C").await?;
    let org_d = app.create_organisation(&owner_d, "Org D").await?;
    let member_a = app
        .add_member(&owner_a, &org_a, "a.member@example.org")
        .await?;
    let token_a = app.api_token(&owner_a, &org_a).await?;
    let token_b = app.api_token(&owner_b, &org_b).await?;
    let token_c = app.api_token(&owner_c, &org_c).await?;
    let coalition = app
        .form_coalition(&owner_a, &org_a, "Matrix Coalition", json!([HOME]))
        .await?;
    app.join_coalition(&owner_a, &owner_b, &coalition, &org_b)
        .await?;
    let pledge = app.pledge_id(&owner_a, &org_a, json!({})).await?;
    let to_withdraw = app
        .pledge_id(&owner_a, &org_a, json!({ "title": "to withdraw" }))
        .await?;

    const MAKE: &str = "mutation($input: MakePledgeInput!) { makePledge(input: $input) { id } }";
    const UPDATE: &str = "mutation($id: ID!, $input: UpdatePledgeInput!) { updatePledge(id: $id, input: $input) { id } }";
    const WITHDRAW: &str =
        "mutation($id: ID!) { withdrawPledge(id: $id, reason: \"Changed plans\") { id } }";
    const POST: &str =
        "mutation($input: PostProgressUpdateInput!) { postProgressUpdate(input: $input) { id } }";
    const FORM: &str =
        "mutation($input: FormCoalitionInput!) { formCoalition(input: $input) { id } }";
    const INVITE: &str = "mutation($c: ID!, $o: ID!) { inviteToCoalition(coalitionId: $c, organisationId: $o) { id } }";
    const REQUEST: &str = "mutation($c: ID!, $o: ID!) { requestToJoinCoalition(coalitionId: $c, organisationId: $o) { id } }";
    const ACCEPT: &str = "mutation($m: ID!) { acceptCoalitionMembership(membershipId: $m) { id } }";
    const LEAVE: &str =
        "mutation($c: ID!, $o: ID!) { leaveCoalition(coalitionId: $c, organisationId: $o) { id } }";
    const HAND_OVER: &str = "mutation($c: ID!, $o: ID!) { handOverCoalitionLead(coalitionId: $c, organisationId: $o) { id } }";
    const CONCLUDE: &str = "mutation($c: ID!) { concludeCoalition(coalitionId: $c) { id } }";

    let s = |token: &String| Some(token.clone());
    let pledge_input = |org: &str, coalition_id: Option<&str>| {
        json!({ "input": { "organisationId": org, "changes": [HOME], "title": "T",
            "commitment": "C", "coalitionId": coalition_id } })
    };
    let everyone_else = |vars: Value| {
        vec![
            ("nobody", None, vars.clone()),
            ("another organisation's member", s(&owner_b), vars.clone()),
            ("another organisation's token", s(&token_b), vars.clone()),
            ("a plain attendee", s(&attendee), vars),
        ]
    };
    let coalition_vars = |org: &str| json!({ "c": coalition, "o": org });

    let mut cases = vec![
        Case {
            mutation: MAKE,
            wrong: everyone_else(pledge_input(&org_a, None)),
            right: ("a member", member_a.clone(), pledge_input(&org_a, None)),
        },
        Case {
            mutation: MAKE,
            wrong: vec![
                (
                    "a non-member of the coalition",
                    s(&owner_c),
                    pledge_input(&org_c, Some(&coalition)),
                ),
                (
                    "a non-member's token",
                    s(&token_c),
                    pledge_input(&org_c, Some(&coalition)),
                ),
                ("nobody", None, pledge_input(&org_b, Some(&coalition))),
                (
                    "a plain attendee",
                    s(&attendee),
                    pledge_input(&org_b, Some(&coalition)),
                ),
            ],
            right: (
                "a coalition member's token",
                token_b.clone(),
                pledge_input(&org_b, Some(&coalition)),
            ),
        },
        Case {
            mutation: UPDATE,
            wrong: everyone_else(json!({ "id": pledge, "input": { "title": "Changed title" } })),
            right: (
                "the organisation's token",
                token_a.clone(),
                json!({ "id": pledge, "input": { "title": "Changed title" } }),
            ),
        },
        Case {
            mutation: WITHDRAW,
            wrong: everyone_else(json!({ "id": to_withdraw })),
            right: ("a member", member_a.clone(), json!({ "id": to_withdraw })),
        },
        Case {
            mutation: POST,
            wrong: everyone_else(
                json!({ "input": { "pledgeId": pledge, "body": "B", "signal": "ON_TRACK" } }),
            ),
            right: (
                "a member",
                member_a.clone(),
                json!({ "input": { "pledgeId": pledge, "body": "B", "signal": "ON_TRACK" } }),
            ),
        },
        Case {
            mutation: POST,
            wrong: vec![
                (
                    "nobody",
                    None,
                    json!({ "input": { "coalitionId": coalition, "body": "B", "signal": "ON_TRACK" } }),
                ),
                (
                    "a non-member of the coalition",
                    s(&owner_c),
                    json!({ "input": { "coalitionId": coalition, "body": "B", "signal": "ON_TRACK" } }),
                ),
                (
                    "a non-member's token",
                    s(&token_c),
                    json!({ "input": { "coalitionId": coalition, "body": "B", "signal": "ON_TRACK" } }),
                ),
                (
                    "a plain attendee",
                    s(&attendee),
                    json!({ "input": { "coalitionId": coalition, "body": "B", "signal": "ON_TRACK" } }),
                ),
            ],
            right: (
                "a member's token",
                token_b.clone(),
                json!({ "input": { "coalitionId": coalition, "body": "B", "signal": "ON_TRACK" } }),
            ),
        },
        Case {
            mutation: FORM,
            wrong: everyone_else(
                json!({ "input": { "organisationId": org_a, "name": "Second coalition", "purpose": "P", "changes": [POWER] } }),
            ),
            right: (
                "a member",
                member_a.clone(),
                json!({ "input": { "organisationId": org_a, "name": "Second coalition", "purpose": "P", "changes": [POWER] } }),
            ),
        },
        Case {
            mutation: INVITE,
            wrong: {
                let mut wrong = everyone_else(coalition_vars(&org_c));
                wrong.push((
                    "a non-member of the coalition",
                    s(&owner_c),
                    coalition_vars(&org_c),
                ));
                wrong
            },
            right: ("the lead's token", token_a.clone(), coalition_vars(&org_c)),
        },
    ];
    run_cases(&app, &pledge, cases.drain(..)).await?;

    // The invitation just made, and a request to join, are accepted by the right side only.
    let membership = |org: &str| {
        let org = org.to_owned();
        let app = &app;
        let owner_a = owner_a.clone();
        let coalition = coalition.clone();
        async move {
            let data = app
                .gql(
                    Some(&owner_a),
                    "query($slug: String!) { coalition(slug: $slug) { id members { id organisation { id } } } }",
                    json!({ "slug": "matrix-coalition" }),
                )
                .await?
                .ok()?;
            let _ = coalition;
            data["coalition"]["members"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["organisation"]["id"] == json!(org))
                .map(|m| m["id"].clone())
                .ok_or_else(|| anyhow::anyhow!("no membership for {org}"))
        }
    };
    let invitation = membership(&org_c).await?;
    run_cases(
        &app,
        &pledge,
        [
            Case {
                mutation: ACCEPT,
                wrong: vec![
                    ("nobody", None, json!({ "m": invitation })),
                    (
                        "the lead, for the invitee",
                        s(&owner_a),
                        json!({ "m": invitation }),
                    ),
                    (
                        "another member's token",
                        s(&token_b),
                        json!({ "m": invitation }),
                    ),
                    ("a non-member", s(&owner_d), json!({ "m": invitation })),
                    ("a plain attendee", s(&attendee), json!({ "m": invitation })),
                ],
                right: ("the invitee", owner_c.clone(), json!({ "m": invitation })),
            },
            Case {
                mutation: REQUEST,
                wrong: {
                    let mut wrong = everyone_else(coalition_vars(&org_d));
                    wrong.push((
                        "a member of the coalition",
                        s(&owner_c),
                        coalition_vars(&org_d),
                    ));
                    wrong
                },
                right: (
                    "the organisation asking",
                    owner_d.clone(),
                    coalition_vars(&org_d),
                ),
            },
        ]
        .into_iter(),
    )
    .await?;
    let request = membership(&org_d).await?;
    run_cases(
        &app,
        &pledge,
        [
            Case {
                mutation: ACCEPT,
                wrong: vec![
                    ("nobody", None, json!({ "m": request })),
                    (
                        "the organisation asking",
                        s(&owner_d),
                        json!({ "m": request }),
                    ),
                    (
                        "a member who is not the lead",
                        s(&owner_c),
                        json!({ "m": request }),
                    ),
                    (
                        "another member's token",
                        s(&token_b),
                        json!({ "m": request }),
                    ),
                    ("a plain attendee", s(&attendee), json!({ "m": request })),
                ],
                right: ("the lead", owner_a.clone(), json!({ "m": request })),
            },
            Case {
                mutation: LEAVE,
                wrong: vec![
                    ("nobody", None, coalition_vars(&org_c)),
                    (
                        "the lead, for a member",
                        s(&owner_a),
                        coalition_vars(&org_c),
                    ),
                    (
                        "another member's token",
                        s(&token_b),
                        coalition_vars(&org_c),
                    ),
                    ("another member", s(&owner_d), coalition_vars(&org_c)),
                    ("a plain attendee", s(&attendee), coalition_vars(&org_c)),
                ],
                right: (
                    "the member's token",
                    token_c.clone(),
                    coalition_vars(&org_c),
                ),
            },
            Case {
                mutation: HAND_OVER,
                wrong: {
                    let mut wrong = everyone_else(coalition_vars(&org_b));
                    wrong.push(("a member who left", s(&owner_c), coalition_vars(&org_b)));
                    wrong
                },
                right: (
                    "a member of the lead",
                    member_a.clone(),
                    coalition_vars(&org_b),
                ),
            },
            Case {
                mutation: CONCLUDE,
                wrong: vec![
                    ("nobody", None, json!({ "c": coalition })),
                    ("the former lead", s(&owner_a), json!({ "c": coalition })),
                    (
                        "the former lead's token",
                        s(&token_a),
                        json!({ "c": coalition }),
                    ),
                    ("a non-member", s(&owner_c), json!({ "c": coalition })),
                    ("a plain attendee", s(&attendee), json!({ "c": coalition })),
                ],
                right: (
                    "the new lead's token",
                    token_b.clone(),
                    json!({ "c": coalition }),
                ),
            },
        ]
        .into_iter(),
    )
    .await?;
    Ok(())
}

async fn run_cases(
    app: &TestApp,
    pledge: &str,
    cases: impl Iterator<Item = Case>,
) -> anyhow::Result<()> {
    for case in cases {
        let name = case
            .mutation
            .split(['{', '('])
            .nth(2)
            .unwrap_or(case.mutation)
            .trim()
            .to_owned();
        let before = fingerprint(app, pledge).await?;
        for (who, credential, vars) in &case.wrong {
            let reply = app
                .gql(credential.as_deref(), case.mutation, vars.clone())
                .await?;
            let expected = if credential.is_none() {
                "UNAUTHENTICATED"
            } else {
                "FORBIDDEN"
            };
            assert_eq!(
                reply.code(),
                Some(expected),
                "{name} by {who}: {:?}",
                reply.body
            );
            assert_eq!(
                fingerprint(app, pledge).await?,
                before,
                "{name} by {who} changed something"
            );
        }
        let (who, credential, vars) = &case.right;
        let reply = app
            .gql(Some(credential), case.mutation, vars.clone())
            .await?;
        if reply.code().is_some() {
            anyhow::bail!("{name} by {who} failed: {:?}", reply.body);
        }
        assert_ne!(
            fingerprint(app, pledge).await?,
            before,
            "{name} by {who} changed nothing"
        );
    }
    Ok(())
}

async fn concurrent_updates_and_pledges_on_overlapping_changes_all_land(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    const ALL: [&str; 5] = [
        BELONG,
        HOME,
        "LEADING_THE_LIVES_WE_WANT_TO_LIVE",
        "MORE_RESOURCES_BETTER_USED",
        POWER,
    ];
    // Pledges on overlapping pairs of changes, in both orders, across organisations.
    let mut pledges = Vec::new();
    let mut owners = Vec::new();
    for n in 0..5 {
        let owner = app.sign_in(&format!("owner{n}@example.org")).await?;
        let org = app
            .create_organisation(&owner, &format!("Organisation {n}"))
            .await?;
        let changes = [ALL[n], ALL[(n + 1) % 5], ALL[(n + 3) % 5]];
        let pledge = app
            .pledge_id(&owner, &org, json!({ "changes": changes }))
            .await?;
        pledges.push((owner.clone(), pledge));
        owners.push((owner, org));
    }
    // A second pledge per organisation whose changes are edited every round, taking some off
    // and putting others on in one transaction, in orders that cross the other writers'.
    let mut edited = Vec::new();
    for (n, (owner, org)) in owners.iter().enumerate() {
        let pledge = app
            .pledge_id(owner, org, json!({ "changes": [ALL[(n + 2) % 5]] }))
            .await?;
        edited.push((owner.clone(), pledge));
    }
    let mut calls = Vec::new();
    for round in 0..8 {
        for (n, (owner, pledge)) in edited.iter().enumerate() {
            let changes = if round % 2 == 0 {
                [ALL[(n + 4) % 5], ALL[(n + 1) % 5]]
            } else {
                [ALL[(n + 2) % 5], ALL[n]]
            };
            calls.push(futures::future::Either::Left(futures::future::Either::Right(
                app.gql(
                    Some(owner),
                    "mutation($id: ID!, $c: [Change!]) { updatePledge(id: $id, input: { changes: $c }) { id } }",
                    json!({ "id": pledge, "c": changes }),
                ),
            )));
        }
        for (owner, pledge) in &pledges {
            calls.push(futures::future::Either::Left(futures::future::Either::Left(app.post_update(
                Some(owner),
                json!({ "pledgeId": pledge, "body": format!("Round {round}."), "signal": "ON_TRACK" }),
            ))));
        }
        for (n, (owner, org)) in owners.iter().enumerate() {
            let changes = [ALL[(n + 4) % 5], ALL[(n + 2) % 5]];
            calls.push(futures::future::Either::Right(app.make_pledge(
                Some(owner),
                org,
                json!({ "changes": changes, "title": format!("Round {round}") }),
            )));
        }
    }
    let replies = futures::future::join_all(calls).await;
    for reply in replies {
        reply?.ok()?;
    }
    let figures = app.change_figures().await?;
    let updates: i64 = figures
        .values()
        .filter_map(|f| f["progressUpdateCount"].as_i64())
        .sum();
    assert_eq!(
        updates,
        8 * 5 * 3,
        "every update counted on each of its changes"
    );
    let pledged: i64 = figures
        .values()
        .filter_map(|f| f["pledgeCount"].as_i64())
        .sum();
    let held = app
        .count("SELECT COUNT(*) FROM pledge_changes JOIN pledges ON pledges.id = pledge_changes.pledge_id WHERE pledges.status <> 'WITHDRAWN'")
        .await?;
    assert_eq!(
        pledged, held,
        "every pledge counted once on each change it holds"
    );
    Ok(())
}
