//! A hostile client's limits: introspection bounded by its own rules, query cost that reflects
//! what a query really costs (batches together), bounded dates and inputs, and a schema-driven
//! fuzzing run that must never see a 5xx or an INTERNAL_SERVER_ERROR.

use anyhow::Context;
use serde_json::{Value, json};

use crate::{helpers::*, on_both_databases};

on_both_databases!(
    the_standard_introspection_query_succeeds_and_aliasing_it_is_refused,
    nested_lists_multiply_and_heavy_fields_cost_on_their_own,
    a_batch_is_costed_together_and_refused_before_anything_runs,
    ordinary_pages_stay_within_the_limits,
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
