//! Pledges: making, changing and withdrawing them, who may, the public list and its filters,
//! going quiet, the changes' figures, and what a page of them costs.

use anyhow::Context;
use serde_json::{Value, json};

use crate::{helpers::*, on_both_databases};

on_both_databases!(
    a_member_or_token_makes_a_public_pledge,
    pledge_input_is_checked_and_names_the_field,
    the_changes_figures_follow_pledges_made_changed_and_withdrawn,
    a_withdrawn_pledge_stays_readable_and_changes_no_more,
    pledges_filter_and_page_in_a_stable_order,
    an_active_pledge_without_updates_for_sixty_days_has_gone_quiet,
    a_page_of_fifty_pledges_costs_the_same_statements_as_a_page_of_five,
    the_benchmarks_pledge_wall_and_five_changes_cost_one_statement_each,
    a_listed_pledge_answers_exactly_as_the_pledge_asked_alone,
    the_five_changes_written_in_one_step_answer_exactly_as_the_ordinary_resolver,
    the_demo_seed_fills_an_empty_movement_once,
    concurrent_pledges_and_withdrawals_keep_the_figures_exact,
);

const PLEDGE: &str = "query($id: ID!) { pledge(id: $id) { id title commitment dueBy status withdrawnReason changes goneQuiet organisation { name } coalition { slug } latestUpdate { id } updates { totalCount } } }";
const UPDATE: &str = "mutation($id: ID!, $input: UpdatePledgeInput!) { updatePledge(id: $id, input: $input) { title commitment dueBy changes status } }";
const WITHDRAW: &str = "mutation($id: ID!, $reason: String!) { withdrawPledge(id: $id, reason: $reason) { status withdrawnReason withdrawnAt } }";

async fn a_member_or_token_makes_a_public_pledge(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app
        .create_organisation(&owner, "Leeds Carers Forum")
        .await?;
    let member = app.add_member(&owner, &org, "member@example.org").await?;
    let token = app.api_token(&owner, &org).await?;

    let made = app
        .make_pledge(
            Some(&member),
            &org,
            json!({ "changes": ["SHARING_POWER_AS_EQUALS", "COMMUNITIES_WHERE_EVERYONE_BELONGS", "SHARING_POWER_AS_EQUALS"],
                    "dueBy": "2027-03-31" }),
        )
        .await?
        .ok()?;
    let pledge = &made["makePledge"];
    assert_eq!(pledge["status"], "ACTIVE");
    assert_eq!(
        pledge["changes"],
        json!([
            "COMMUNITIES_WHERE_EVERYONE_BELONGS",
            "SHARING_POWER_AS_EQUALS"
        ]),
        "each change once, in published order"
    );
    assert_eq!(pledge["dueBy"], "2027-03-31");
    assert_eq!(pledge["goneQuiet"], false);
    assert!(pledge["latestUpdate"].is_null());

    let by_token = app.make_pledge(Some(&token), &org, json!({})).await?.ok()?;
    assert_eq!(
        by_token["makePledge"]["organisation"]["name"],
        "Leeds Carers Forum"
    );

    let public = app
        .gql(None, PLEDGE, json!({ "id": pledge["id"] }))
        .await?
        .ok()?;
    assert_eq!(
        public["pledge"]["organisation"]["name"],
        "Leeds Carers Forum"
    );
    assert_eq!(public["pledge"]["updates"]["totalCount"], 0);
    let unknown = app
        .gql(
            None,
            PLEDGE,
            json!({ "id": "0190f1c2-0000-7000-8000-000000000000" }),
        )
        .await?
        .ok()?;
    assert!(unknown["pledge"].is_null());
    assert_eq!(app.count("SELECT COUNT(*) FROM pledges").await?, 2);
    Ok(())
}

async fn pledge_input_is_checked_and_names_the_field(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Bolton Together").await?;
    for (input, field) in [
        (json!({ "changes": [] }), "changes"),
        (json!({ "title": "   " }), "title"),
        (json!({ "commitment": "" }), "commitment"),
        (json!({ "title": "x".repeat(201) }), "title"),
        (json!({ "coalitionId": "not-an-id" }), "coalitionId"),
    ] {
        let reply = app.make_pledge(Some(&owner), &org, input.clone()).await?;
        assert_eq!(
            reply.code(),
            Some("BAD_USER_INPUT"),
            "{input}: {:?}",
            reply.body
        );
        assert_eq!(reply.field(), Some(field), "{input}: {:?}", reply.body);
    }
    let bad_date = app
        .make_pledge(Some(&owner), &org, json!({ "dueBy": "31/03/2027" }))
        .await?;
    assert_eq!(
        bad_date.code(),
        Some("BAD_USER_INPUT"),
        "{:?}",
        bad_date.body
    );
    let unknown = app
        .make_pledge(
            Some(&owner),
            "0190f1c2-0000-7000-8000-000000000000",
            json!({}),
        )
        .await?;
    assert_eq!(unknown.code(), Some("NOT_FOUND"));
    let unknown_coalition = app
        .make_pledge(
            Some(&owner),
            &org,
            json!({ "coalitionId": "0190f1c2-0000-7000-8000-000000000000" }),
        )
        .await?;
    assert_eq!(unknown_coalition.code(), Some("NOT_FOUND"));
    assert_eq!(app.count("SELECT COUNT(*) FROM pledges").await?, 0);
    Ok(())
}

fn figure(figures: &std::collections::HashMap<String, Value>, change: &str) -> (i64, i64) {
    let f = &figures[change];
    (
        f["pledgeCount"].as_i64().unwrap_or(-1),
        f["organisationCount"].as_i64().unwrap_or(-1),
    )
}

async fn the_changes_figures_follow_pledges_made_changed_and_withdrawn(
    db: Backend,
) -> anyhow::Result<()> {
    const HOME: &str = "LIVING_IN_THE_PLACE_WE_CALL_HOME";
    const POWER: &str = "SHARING_POWER_AS_EQUALS";
    const RESOURCES: &str = "MORE_RESOURCES_BETTER_USED";
    let app = spawn_app(db).await?;
    let one = app.sign_in("one@example.org").await?;
    let two = app.sign_in("two@example.org").await?;
    let first_org = app.create_organisation(&one, "First Forum").await?;
    let second_org = app.create_organisation(&two, "Second Circle").await?;

    let a = app
        .pledge_id(&one, &first_org, json!({ "changes": [HOME, POWER] }))
        .await?;
    let b = app
        .pledge_id(&one, &first_org, json!({ "changes": [HOME] }))
        .await?;
    app.pledge_id(&two, &second_org, json!({ "changes": [HOME] }))
        .await?;
    let figures = app.change_figures().await?;
    assert_eq!(
        figure(&figures, HOME),
        (3, 2),
        "one organisation counts once"
    );
    assert_eq!(figure(&figures, POWER), (1, 1));
    assert_eq!(figure(&figures, RESOURCES), (0, 0));

    app.gql(
        Some(&one),
        UPDATE,
        json!({ "id": a, "input": { "changes": [POWER, RESOURCES], "title": "Power and money" } }),
    )
    .await?
    .ok()?;
    let figures = app.change_figures().await?;
    assert_eq!(
        figure(&figures, HOME),
        (2, 2),
        "the first still pledges on it through b"
    );
    assert_eq!(figure(&figures, POWER), (1, 1));
    assert_eq!(figure(&figures, RESOURCES), (1, 1));

    app.gql(
        Some(&one),
        WITHDRAW,
        json!({ "id": b, "reason": "Merged into another pledge" }),
    )
    .await?
    .ok()?;
    let figures = app.change_figures().await?;
    assert_eq!(figure(&figures, HOME), (1, 1), "only the second now");

    app.gql(
        Some(&one),
        WITHDRAW,
        json!({ "id": a, "reason": "Funding ended" }),
    )
    .await?
    .ok()?;
    let figures = app.change_figures().await?;
    assert_eq!(figure(&figures, POWER), (0, 0));
    assert_eq!(figure(&figures, RESOURCES), (0, 0));
    assert_eq!(figure(&figures, HOME), (1, 1));
    Ok(())
}

async fn a_withdrawn_pledge_stays_readable_and_changes_no_more(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Wigan Circles").await?;
    let id = app
        .pledge_id(&owner, &org, json!({ "dueBy": "2027-01-01" }))
        .await?;

    let updated = app
        .gql(
            Some(&owner),
            UPDATE,
            json!({ "id": id, "input": { "commitment": "  A clearer commitment.  ", "dueBy": null } }),
        )
        .await?
        .ok()?;
    assert_eq!(
        updated["updatePledge"]["commitment"],
        "A clearer commitment."
    );
    assert!(
        updated["updatePledge"]["dueBy"].is_null(),
        "null clears the date"
    );
    assert_eq!(updated["updatePledge"]["title"], "Homes, not placements");

    let blank = app
        .gql(Some(&owner), WITHDRAW, json!({ "id": id, "reason": " " }))
        .await?;
    assert_eq!(blank.field(), Some("reason"));
    let withdrawn = app
        .gql(
            Some(&owner),
            WITHDRAW,
            json!({ "id": id, "reason": "Our service closed." }),
        )
        .await?
        .ok()?;
    assert_eq!(withdrawn["withdrawPledge"]["status"], "WITHDRAWN");
    assert!(!withdrawn["withdrawPledge"]["withdrawnAt"].is_null());

    let public = app.gql(None, PLEDGE, json!({ "id": id })).await?.ok()?;
    assert_eq!(public["pledge"]["status"], "WITHDRAWN");
    assert_eq!(public["pledge"]["withdrawnReason"], "Our service closed.");
    assert_eq!(
        public["pledge"]["goneQuiet"], false,
        "only active pledges go quiet"
    );

    let again = app
        .gql(
            Some(&owner),
            WITHDRAW,
            json!({ "id": id, "reason": "Again" }),
        )
        .await?;
    assert_eq!(again.code(), Some("CONFLICT"));
    let edit = app
        .gql(
            Some(&owner),
            UPDATE,
            json!({ "id": id, "input": { "title": "New" } }),
        )
        .await?;
    assert_eq!(edit.code(), Some("CONFLICT"));
    let update = app
        .post_update(
            Some(&owner),
            json!({ "pledgeId": id, "body": "Still going", "signal": "ON_TRACK" }),
        )
        .await?;
    assert_eq!(update.code(), Some("CONFLICT"));
    let unknown = app
        .gql(
            Some(&owner),
            WITHDRAW,
            json!({ "id": "0190f1c2-0000-7000-8000-000000000000", "reason": "x" }),
        )
        .await?;
    assert_eq!(unknown.code(), Some("NOT_FOUND"));
    Ok(())
}

const LIST: &str = "query($first: Int, $after: String, $filter: PledgeFilter) { pledges(first: $first, after: $after, filter: $filter) { totalCount pageInfo { hasNextPage endCursor } edges { node { title } } } }";

async fn titles(app: &TestApp, filter: Value) -> anyhow::Result<Vec<String>> {
    let data = app
        .gql(None, LIST, json!({ "first": 100, "filter": filter }))
        .await?
        .ok()?;
    Ok(data["pledges"]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .map(|e| e["node"]["title"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default())
}

async fn pledges_filter_and_page_in_a_stable_order(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let council = app
        .create_organisation_in(&owner, "Camden Council", "COUNCIL", "LONDON")
        .await?;
    let charity = app
        .create_organisation_in(&owner, "Carers Trust", "NATIONAL_CHARITY", "NATIONAL")
        .await?;
    let group = app
        .create_organisation_in(&owner, "Oldham Circles", "COMMUNITY_GROUP", "NORTH_WEST")
        .await?;
    let coalition = app
        .form_coalition(
            &owner,
            &council,
            "London Homes",
            json!(["LIVING_IN_THE_PLACE_WE_CALL_HOME"]),
        )
        .await?;

    app.pledge_id(&owner, &council, json!({ "title": "c1", "changes": ["LIVING_IN_THE_PLACE_WE_CALL_HOME"], "coalitionId": coalition })).await?;
    app.pledge_id(
        &owner,
        &charity,
        json!({ "title": "n1", "changes": ["SHARING_POWER_AS_EQUALS"] }),
    )
    .await?;
    let before_g1 = chrono::Utc::now();
    clock_passes(before_g1).await?;
    let g1 = app.pledge_id(&owner, &group, json!({ "title": "g1", "changes": ["COMMUNITIES_WHERE_EVERYONE_BELONGS", "SHARING_POWER_AS_EQUALS"] })).await?;
    app.pledge_id(
        &owner,
        &council,
        json!({ "title": "c2", "changes": ["MORE_RESOURCES_BETTER_USED"] }),
    )
    .await?;
    app.pledge_id(
        &owner,
        &charity,
        json!({ "title": "n2", "changes": ["LEADING_THE_LIVES_WE_WANT_TO_LIVE"] }),
    )
    .await?;
    app.gql(
        Some(&owner),
        WITHDRAW,
        json!({ "id": g1, "reason": "Folded into n2" }),
    )
    .await?
    .ok()?;

    assert_eq!(
        titles(&app, json!({})).await?,
        ["c1", "n1", "g1", "c2", "n2"]
    );
    assert_eq!(
        titles(
            &app,
            json!({ "changes": ["SHARING_POWER_AS_EQUALS", "MORE_RESOURCES_BETTER_USED"] })
        )
        .await?,
        ["n1", "g1", "c2"]
    );
    assert_eq!(
        titles(&app, json!({ "organisationId": charity })).await?,
        ["n1", "n2"]
    );
    assert_eq!(
        titles(&app, json!({ "organisationKind": "COUNCIL" })).await?,
        ["c1", "c2"]
    );
    assert_eq!(
        titles(&app, json!({ "region": "NORTH_WEST" })).await?,
        ["g1"]
    );
    assert_eq!(
        titles(&app, json!({ "status": "WITHDRAWN" })).await?,
        ["g1"]
    );
    assert_eq!(
        titles(&app, json!({ "coalitionId": coalition })).await?,
        ["c1"]
    );
    assert_eq!(
        titles(&app, json!({ "madeFrom": before_g1.to_rfc3339() })).await?,
        ["g1", "c2", "n2"]
    );
    assert_eq!(
        titles(&app, json!({ "madeTo": before_g1.to_rfc3339() })).await?,
        ["c1", "n1"]
    );
    assert_eq!(
        titles(
            &app,
            json!({ "region": "LONDON", "changes": ["MORE_RESOURCES_BETTER_USED"] })
        )
        .await?,
        ["c2"],
        "conditions combine"
    );

    // Pages of two follow the same order; a pledge made meanwhile joins the end.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut total;
    loop {
        let data = app
            .gql(None, LIST, json!({ "first": 2, "after": after }))
            .await?
            .ok()?;
        let page = &data["pledges"];
        total = page["totalCount"].as_i64().unwrap_or_default();
        for edge in page["edges"].as_array().into_iter().flatten() {
            seen.push(
                edge["node"]["title"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        if seen.len() == 2 {
            app.pledge_id(&owner, &group, json!({ "title": "g2" }))
                .await?;
        }
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, ["c1", "n1", "g1", "c2", "n2", "g2"]);
    assert_eq!(total, 6);
    Ok(())
}

async fn an_active_pledge_without_updates_for_sixty_days_has_gone_quiet(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Quiet Ones").await?;
    let quiet = app
        .pledge_id(&owner, &org, json!({ "title": "quiet" }))
        .await?;
    let recent = app
        .pledge_id(&owner, &org, json!({ "title": "recent" }))
        .await?;
    let withdrawn = app
        .pledge_id(&owner, &org, json!({ "title": "withdrawn" }))
        .await?;
    app.gql(
        Some(&owner),
        WITHDRAW,
        json!({ "id": withdrawn, "reason": "No longer" }),
    )
    .await?
    .ok()?;
    // Made (and last heard of) 61 days ago, or 59: no client can move time back.
    let days_ago = |days: i64| (chrono::Utc::now() - chrono::TimeDelta::days(days)).to_rfc3339();
    app.execute(&format!(
        "UPDATE pledges SET last_activity_at = '{}', created_at = '{}' WHERE title IN ('quiet', 'withdrawn')",
        days_ago(61),
        days_ago(61)
    ))
    .await?;
    app.execute(&format!(
        "UPDATE pledges SET last_activity_at = '{}', created_at = '{}' WHERE title = 'recent'",
        days_ago(59),
        days_ago(59)
    ))
    .await?;

    let read = |id: &str| app.gql(None, PLEDGE, json!({ "id": id }));
    assert_eq!(read(&quiet).await?.ok()?["pledge"]["goneQuiet"], true);
    assert_eq!(read(&recent).await?.ok()?["pledge"]["goneQuiet"], false);
    assert_eq!(read(&withdrawn).await?.ok()?["pledge"]["goneQuiet"], false);
    assert_eq!(titles(&app, json!({ "goneQuiet": true })).await?, ["quiet"]);
    assert_eq!(
        titles(&app, json!({ "goneQuiet": false })).await?,
        ["recent", "withdrawn"]
    );

    app.post_update(
        Some(&owner),
        json!({ "pledgeId": quiet, "body": "Back at it", "signal": "AT_RISK" }),
    )
    .await?
    .ok()?;
    assert_eq!(
        read(&quiet).await?.ok()?["pledge"]["goneQuiet"],
        false,
        "an update wakes it"
    );
    assert!(titles(&app, json!({ "goneQuiet": true })).await?.is_empty());
    Ok(())
}

const WALL: &str = "query($first: Int) { pledges(first: $first) { totalCount edges { node { id title status goneQuiet changes organisation { name kind region } coalition { name changes } latestUpdate { signal percentComplete postedAt } } } } }";

async fn a_page_of_fifty_pledges_costs_the_same_statements_as_a_page_of_five(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let mut organisations = Vec::new();
    for n in 0..10 {
        organisations.push(
            app.create_organisation(&owner, &format!("Organisation {n}"))
                .await?,
        );
    }
    let coalition_a = app
        .form_coalition(
            &owner,
            &organisations[0],
            "Coalition A",
            json!(["SHARING_POWER_AS_EQUALS"]),
        )
        .await?;
    let coalition_b = app
        .form_coalition(
            &owner,
            &organisations[1],
            "Coalition B",
            json!(["MORE_RESOURCES_BETTER_USED"]),
        )
        .await?;
    let changes = [
        "COMMUNITIES_WHERE_EVERYONE_BELONGS",
        "LIVING_IN_THE_PLACE_WE_CALL_HOME",
        "LEADING_THE_LIVES_WE_WANT_TO_LIVE",
        "MORE_RESOURCES_BETTER_USED",
        "SHARING_POWER_AS_EQUALS",
    ];
    for n in 0..50 {
        let org = &organisations[n % 10];
        let mut input = json!({ "title": format!("Pledge {n}"), "changes": [changes[n % 5], changes[(n + 2) % 5]] });
        if n % 10 == 0 {
            input["coalitionId"] = json!(coalition_a);
        } else if n % 10 == 1 {
            input["coalitionId"] = json!(coalition_b);
        }
        let id = app.pledge_id(&owner, org, input).await?;
        if n % 3 == 0 {
            app.post_update(
                Some(&owner),
                json!({ "pledgeId": id, "body": "Progress", "signal": "ON_TRACK", "percentComplete": n }),
            )
            .await?
            .ok()?;
        }
    }

    // A progress update's event goes out after its answer: not part of the page's count.
    app.settle().await;
    let (five, five_count) = app.gql_counting(None, WALL, json!({ "first": 5 })).await?;
    let five = five.ok()?;
    assert_eq!(five["pledges"]["edges"].as_array().map(Vec::len), Some(5));
    let (fifty, fifty_count) = app.gql_counting(None, WALL, json!({ "first": 50 })).await?;
    let fifty = fifty.ok()?;
    let edges = fifty["pledges"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(edges.len(), 50);
    assert!(
        edges
            .iter()
            .all(|e| !e["node"]["organisation"]["name"].is_null())
    );
    assert!(edges.iter().any(|e| !e["node"]["coalition"].is_null()));
    assert!(edges.iter().any(|e| !e["node"]["latestUpdate"].is_null()));
    assert_eq!(
        edges[0]["node"]["coalition"]["changes"],
        json!(["SHARING_POWER_AS_EQUALS"])
    );

    tracing::info!(five_count, fifty_count, "statements for a page of pledges");
    println!("statements: 5 pledges = {five_count}, 50 pledges = {fifty_count}");
    assert_eq!(
        five_count, fifty_count,
        "the statement count grows with the page"
    );
    // The count, the page with organisations and latest updates, the changes, the coalitions
    // and their changes.
    assert!(fifty_count <= 5, "{fifty_count} statements for one page");
    assert_eq!(fifty["pledges"]["totalCount"], 50);

    // The whole list is counted only for a query that asks for `totalCount`.
    let uncounted = WALL.replace("totalCount ", "");
    let (page, uncounted_count) = app
        .gql_counting(None, &uncounted, json!({ "first": 50 }))
        .await?;
    assert_eq!(page.ok()?["pledges"]["edges"], json!(edges));
    assert_eq!(uncounted_count, fifty_count - 1);
    Ok(())
}

/// The pledge wall as the benchmark (`bench/src/run.rs`) asks for it.
const BENCHMARK_WALL: &str = "query PledgeWall($change: Change!) { pledges(first: 50, filter: { changes: [$change] }) { \
    edges { node { id title status createdAt organisation { id name slug kind region } changes \
    latestUpdate { id signal percentComplete postedAt body } } } pageInfo { hasNextPage endCursor } } }";

/// The five changes as the benchmark asks for them.
const BENCHMARK_FIVE_CHANGES: &str = "{ changes { change title pledgeCount organisationCount coalitionCount \
    progressUpdateCount lastProgressAt } }";

async fn the_benchmarks_pledge_wall_and_five_changes_cost_one_statement_each(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let mut organisations = Vec::new();
    for n in 0..3 {
        organisations.push(
            app.create_organisation(&owner, &format!("Organisation {n}"))
                .await?,
        );
    }
    for n in 0..12 {
        let org = &organisations[n % 3];
        let changes = if n % 2 == 0 {
            json!(["SHARING_POWER_AS_EQUALS", "MORE_RESOURCES_BETTER_USED"])
        } else {
            json!(["SHARING_POWER_AS_EQUALS"])
        };
        let id = app
            .pledge_id(
                &owner,
                org,
                json!({ "title": format!("Pledge {n}"), "changes": changes }),
            )
            .await?;
        if n % 4 == 0 {
            app.post_update(
                Some(&owner),
                json!({ "pledgeId": id, "body": "Progress", "signal": "ON_TRACK", "percentComplete": n }),
            )
            .await?
            .ok()?;
        }
    }
    app.settle().await;

    // The page with its organisations, latest updates and changes, in one statement.
    let (wall, wall_count) = app
        .gql_counting(
            None,
            BENCHMARK_WALL,
            json!({ "change": "SHARING_POWER_AS_EQUALS" }),
        )
        .await?;
    let wall = wall.ok()?;
    let edges = wall["pledges"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(edges.len(), 12);
    assert!(
        edges
            .iter()
            .all(|e| e["node"]["organisation"]["name"].is_string())
    );
    assert_eq!(
        edges
            .iter()
            .filter(|e| e["node"]["latestUpdate"]["signal"] == "ON_TRACK")
            .count(),
        3
    );
    assert_eq!(
        edges[0]["node"]["changes"],
        json!(["MORE_RESOURCES_BETTER_USED", "SHARING_POWER_AS_EQUALS"])
    );
    assert_eq!(
        edges[1]["node"]["changes"],
        json!(["SHARING_POWER_AS_EQUALS"])
    );
    println!("statements: the benchmark's pledge wall = {wall_count}");
    assert_eq!(wall_count, 1, "statements for the benchmark's pledge wall");

    let (five, five_count) = app
        .gql_counting(None, BENCHMARK_FIVE_CHANGES, json!({}))
        .await?;
    let five = five.ok()?;
    assert_eq!(five["changes"].as_array().map(Vec::len), Some(5));
    println!("statements: the benchmark's five changes = {five_count}");
    assert_eq!(five_count, 1, "statements for the benchmark's five changes");
    Ok(())
}

async fn the_demo_seed_fills_an_empty_movement_once(db: Backend) -> anyhow::Result<()> {
    // As the README has it: seed a migrated database, then serve it.
    let first = spawn_app(db).await?;
    let (database_url, smtp, options) = (
        first.database_url.clone(),
        first.smtp.clone(),
        first.options.clone(),
    );
    first.stop().await?;
    let database = groundswell_domain::Database::connect(&database_url, 2).await?;
    let seeded = groundswell_api::seed::seed(&database, groundswell_domain::now()).await?;
    let app = start(database_url, smtp, options).await?;
    assert!(seeded.organisations >= 100 && seeded.pledges >= 100 && seeded.updates >= 300);

    let data = app
        .gql(
            None,
            "{ pledges(first: 100) { totalCount edges { node { organisation { kind } } } } coalitions { totalCount } quiet: pledges(filter: { goneQuiet: true }) { totalCount } achieved: pledges(filter: { status: ACHIEVED }) { totalCount } progressUpdates { totalCount } changes { pledgeCount } }",
            json!({}),
        )
        .await?
        .ok()?;
    assert_eq!(data["pledges"]["totalCount"], seeded.pledges);
    assert_eq!(data["coalitions"]["totalCount"], seeded.coalitions);
    assert_eq!(data["progressUpdates"]["totalCount"], seeded.updates);
    assert!(
        data["quiet"]["totalCount"].as_i64() > Some(0),
        "some pledges have gone quiet"
    );
    assert!(
        data["achieved"]["totalCount"].as_i64() > Some(0),
        "some are achieved"
    );
    let kinds: std::collections::HashSet<&str> = data["pledges"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["node"]["organisation"]["kind"].as_str())
        .collect();
    assert!(kinds.len() >= 5, "{kinds:?}");
    assert!(
        data["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|c| c["pledgeCount"].as_i64() > Some(10))
    );

    let again = groundswell_api::seed::seed(&database, groundswell_domain::now()).await;
    assert!(again.is_err(), "a second seed is refused");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM pledges").await?,
        i64::try_from(seeded.pledges)?
    );
    Ok(())
}

async fn concurrent_pledges_and_withdrawals_keep_the_figures_exact(
    db: Backend,
) -> anyhow::Result<()> {
    const HOME: &str = "LIVING_IN_THE_PLACE_WE_CALL_HOME";
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let one = app.create_organisation(&owner, "One").await?;
    let two = app.create_organisation(&owner, "Two").await?;

    let made = futures::future::join_all((0..12).map(|n| {
        let org = if n % 2 == 0 { &one } else { &two };
        app.make_pledge(Some(&owner), org, json!({ "changes": [HOME] }))
    }))
    .await;
    let mut ids = Vec::new();
    for reply in made {
        ids.push(reply?.ok()?["makePledge"]["id"].clone());
    }
    let figures = app.change_figures().await?;
    assert_eq!(figure(&figures, HOME), (12, 2));

    // Withdraw all but one of the first organisation's, all at once.
    let withdrawn = futures::future::join_all(ids.iter().step_by(2).skip(1).map(|id| {
        app.gql(
            Some(&owner),
            WITHDRAW,
            json!({ "id": id, "reason": "Merged" }),
        )
    }))
    .await;
    for reply in withdrawn {
        reply?.ok()?;
    }
    let figures = app.change_figures().await?;
    assert_eq!(
        figure(&figures, HOME),
        (7, 2),
        "one of the first's still counts"
    );
    Ok(())
}

/// Node selections for the one-step path (`api/src/graphql/listed.rs`), each with the
/// fragments and variables it uses: every field it writes itself; then aliases, fragments
/// and `__typename`; then what it must leave to the ordinary resolver (fields it does not
/// write, repeated keys that merge); then `@skip` and `@include`, which async-graphql applies
/// before an item sees its selection, so what is left is written in one step. Whether it
/// should be written in one step is the last item.
const LISTED_SELECTIONS: [(&str, &str, bool); 5] = [
    (
        "__typename id title commitment dueBy status withdrawnReason lastActivityAt createdAt \
         updatedAt achievedAt withdrawnAt changes \
         organisation { __typename id name slug kind region website createdAt } \
         latestUpdate { __typename id body signal percentComplete evidenceUrls postedAt }",
        "",
        true,
    ),
    (
        "... on Pledge { heading: title } ...Bits kind: __typename \
         organisation { ...Org } latestUpdate { ... { how: signal } when: postedAt }",
        "fragment Bits on Pledge { id status changes } \
         fragment Org on Organisation { name where: region }",
        true,
    ),
    (
        "id goneQuiet coalition { slug } organisation { viewerRole name } updates { totalCount }",
        "",
        false,
    ),
    (
        "title title organisation { name } organisation { slug }",
        "",
        false,
    ),
    (
        "id title @skip(if: $yes) status @include(if: $yes) \
         organisation @include(if: $no) { name } latestUpdate { id @skip(if: $no) }",
        "",
        true,
    ),
];

/// Selections of the five changes (with the fragments they use) for the one-step path: every
/// field; aliases, fragments and `__typename`; `@skip` and `@include`; then what it leaves to
/// the ordinary resolver (a repeated key). Whether it should be written in one step is the last
/// item.
const LISTED_CHANGE_SELECTIONS: [(&str, &str, bool); 4] = [
    (
        "__typename change title pledgeCount organisationCount coalitionCount \
         progressUpdateCount lastProgressAt",
        "",
        true,
    ),
    (
        "... on ChangeSummary { name: title } ...Counts kind: __typename when: lastProgressAt \
         ... { change }",
        "fragment Counts on ChangeSummary { pledgeCount count: progressUpdateCount }",
        true,
    ),
    (
        "change title @skip(if: true) pledgeCount @include(if: false) coalitionCount",
        "",
        true,
    ),
    ("title change title", "", false),
];

async fn a_listed_pledge_answers_exactly_as_the_pledge_asked_alone(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let with_site = app
        .gql(
            Some(&owner),
            "mutation { createOrganisation(input: { name: \"Sheffield Voices\", kind: NATIONAL_CHARITY, \
             region: YORKSHIRE_AND_THE_HUMBER, website: \"https://voices.example.org\" }) { id } }",
            json!({}),
        )
        .await?
        .ok()?["createOrganisation"]["id"]
        .as_str()
        .context("no id")?
        .to_owned();
    let plain = app
        .create_organisation(&owner, "Leeds Carers Forum")
        .await?;
    let coalition = app
        .form_coalition(
            &owner,
            &plain,
            "Homes First",
            json!(["SHARING_POWER_AS_EQUALS"]),
        )
        .await?;
    let mut ids = Vec::new();
    for n in 0..6 {
        let mut input = json!({ "title": format!("Pledge {n}"),
            "changes": ["SHARING_POWER_AS_EQUALS", "COMMUNITIES_WHERE_EVERYONE_BELONGS"] });
        if n % 2 == 0 {
            input["dueBy"] = json!("2027-03-31");
        }
        if n == 3 {
            input["coalitionId"] = json!(coalition);
        }
        let org = if n % 2 == 0 { &with_site } else { &plain };
        ids.push(app.pledge_id(&owner, org, input).await?);
    }
    app.post_update(
        Some(&owner),
        json!({ "pledgeId": ids[0], "body": "Half way", "signal": "ON_TRACK", "percentComplete": 50,
                "evidenceUrls": ["https://voices.example.org/report"] }),
    )
    .await?
    .ok()?;
    app.post_update(
        Some(&owner),
        json!({ "pledgeId": ids[1], "body": "Stuck on funding", "signal": "AT_RISK" }),
    )
    .await?
    .ok()?;
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { withdrawPledge(id: $id, reason: \"Merged into another\") { id } }",
        json!({ "id": ids[2] }),
    )
    .await?
    .ok()?;
    app.settle().await;

    for (selection, fragments, one_step) in LISTED_SELECTIONS {
        let (declared, variables) = if selection.contains('$') {
            (
                ", $yes: Boolean!, $no: Boolean!",
                json!({ "yes": true, "no": false }),
            )
        } else {
            ("", json!({}))
        };
        for caller in [None, Some(owner.as_str())] {
            let before = app.written_whole();
            let list = format!(
                "query($first: Int{declared}) {{ pledges(first: $first) {{ edges {{ node {{ {selection} }} }} }} }} {fragments}"
            );
            let mut list_variables = variables.clone();
            list_variables["first"] = json!(50);
            let page = app.gql(caller, &list, list_variables).await?.ok()?;
            let written = app.written_whole() - before;
            let nodes: Vec<Value> = page["pledges"]["edges"]
                .as_array()
                .context("no edges")?
                .iter()
                .map(|edge| edge["node"].clone())
                .collect();
            assert_eq!(nodes.len(), 6, "{selection}");
            // Signed in, never from the cache of public answers: every item is resolved.
            if caller.is_some() {
                let expected = if one_step { 6 } else { 0 };
                assert_eq!(
                    written, expected,
                    "items written in one step for {selection}"
                );
            }
            let alone = format!(
                "query($id: ID!{declared}) {{ pledge(id: $id) {{ {selection} }} }} {fragments}"
            );
            for (node, id) in nodes.iter().zip(&ids) {
                let mut vars = variables.clone();
                vars["id"] = json!(id);
                let single = app.gql(caller, &alone, vars).await?.ok()?;
                assert_eq!(node, &single["pledge"], "{selection}, pledge {id}");
            }
        }
    }
    Ok(())
}

/// The five changes are written out in one step (`ListedChange`); the same selection given
/// twice (every response key repeated, which the one-step path leaves alone) goes to
/// async-graphql's own `ChangeSummary` object, which merges the repeats. Both must send the
/// same bytes, for changes with progress and without, signed in or not.
async fn the_five_changes_written_in_one_step_answer_exactly_as_the_ordinary_resolver(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app
        .create_organisation(&owner, "Leeds Carers Forum")
        .await?;
    let pledge = app
        .pledge_id(
            &owner,
            &org,
            json!({ "title": "Homes first", "changes": ["LIVING_IN_THE_PLACE_WE_CALL_HOME"] }),
        )
        .await?;
    app.post_update(
        Some(&owner),
        json!({ "pledgeId": pledge, "body": "Started", "signal": "ON_TRACK" }),
    )
    .await?
    .ok()?;
    app.settle().await;

    for (selection, fragments, one_step) in LISTED_CHANGE_SELECTIONS {
        for caller in [None, Some(owner.as_str())] {
            let before = app.written_whole();
            let listed = answer_text(
                &app,
                caller,
                &format!("{{ changes {{ {selection} }} }} {fragments}"),
            )
            .await?;
            let written = app.written_whole() - before;
            let ordinary = answer_text(
                &app,
                caller,
                &format!("{{ changes {{ {selection} {selection} }} }} {fragments}"),
            )
            .await?;
            assert_eq!(listed, ordinary, "{selection}");
            let data: Value = serde_json::from_str(&listed)?;
            let changes = data["data"]["changes"].as_array().context("no changes")?;
            assert_eq!(changes.len(), 5, "{listed}");
            // Signed in, never from the cache of public answers: every item is resolved.
            if caller.is_some() {
                let expected = if one_step { 5 } else { 0 };
                assert_eq!(
                    written, expected,
                    "items written in one step for {selection}"
                );
            }
        }
    }
    // The change with progress shows when, the others null.
    let data: Value = serde_json::from_str(
        &answer_text(&app, None, "{ changes { change lastProgressAt } }").await?,
    )?;
    let changes = data["data"]["changes"].as_array().context("no changes")?;
    for change in changes {
        let has_progress = change["change"] == "LIVING_IN_THE_PLACE_WE_CALL_HOME";
        assert_eq!(
            change["lastProgressAt"].is_string(),
            has_progress,
            "{change}"
        );
    }
    Ok(())
}

/// The body of a GraphQL answer as sent, for comparing bytes (field order included).
async fn answer_text(app: &TestApp, caller: Option<&str>, query: &str) -> anyhow::Result<String> {
    let mut request = app
        .http
        .post(app.url("/graphql"))
        .json(&json!({ "query": query }));
    if let Some(token) = caller {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    anyhow::ensure!(response.status() == 200, "HTTP {}", response.status());
    Ok(response.text().await?)
}
