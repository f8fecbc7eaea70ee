//! Coalitions of the willing: forming, joining by request or invitation, leaving, handing the
//! lead on, concluding, and what a coalition shows.

use serde_json::{Value, json};

use crate::{helpers::*, on_both_databases};

on_both_databases!(
    the_forming_organisation_leads_and_the_changes_count_the_coalition,
    a_request_to_join_is_approved_by_the_lead_only,
    an_invitation_is_accepted_by_the_invited_organisation_only,
    members_leave_but_the_lead_hands_on_first,
    a_concluded_coalition_takes_no_members_pledges_or_updates,
    a_coalition_shows_its_members_pledges_and_updates,
    a_page_of_coalitions_costs_the_same_statements_whatever_its_size,
    a_coalitions_members_cost_the_same_statements_however_many,
);

const FORM: &str = "mutation($input: FormCoalitionInput!) { formCoalition(input: $input) { id slug name purpose area status changes lead { name } members { status organisation { name } } } }";
const VIEW: &str = "query($slug: String!) { coalition(slug: $slug) { status lead { id name } members { id status organisation { name } } pledges { totalCount edges { node { title coalition { slug } } } } updates { totalCount edges { node { body organisation { name } } } } } }";
const REQUEST: &str = "mutation($c: ID!, $o: ID!) { requestToJoinCoalition(coalitionId: $c, organisationId: $o) { id status organisation { name } coalition { slug status } } }";
const INVITE: &str = "mutation($c: ID!, $o: ID!) { inviteToCoalition(coalitionId: $c, organisationId: $o) { id status organisation { name } } }";
const ACCEPT: &str = "mutation($m: ID!) { acceptCoalitionMembership(membershipId: $m) { id status coalition { status } } }";
const LEAVE: &str =
    "mutation($c: ID!, $o: ID!) { leaveCoalition(coalitionId: $c, organisationId: $o) { status } }";
const HAND_OVER: &str = "mutation($c: ID!, $o: ID!) { handOverCoalitionLead(coalitionId: $c, organisationId: $o) { lead { name } } }";
const CONCLUDE: &str =
    "mutation($c: ID!) { concludeCoalition(coalitionId: $c) { status concludedAt } }";

async fn view(app: &TestApp, slug: &str) -> anyhow::Result<Value> {
    Ok(app.gql(None, VIEW, json!({ "slug": slug })).await?.ok()?["coalition"].clone())
}

async fn the_forming_organisation_leads_and_the_changes_count_the_coalition(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Salford Together").await?;
    let token = app.api_token(&owner, &org).await?;
    let formed = app
        .gql(
            Some(&token),
            FORM,
            json!({ "input": { "organisationId": org, "name": "Greater Manchester Homes",
                "purpose": "Move people out of long-stay hospital into homes of their own.",
                "area": "Greater Manchester",
                "changes": ["LIVING_IN_THE_PLACE_WE_CALL_HOME", "MORE_RESOURCES_BETTER_USED"] } }),
        )
        .await?
        .ok()?;
    let coalition = &formed["formCoalition"];
    assert_eq!(coalition["slug"], "greater-manchester-homes");
    assert_eq!(coalition["status"], "FORMING");
    assert_eq!(coalition["lead"]["name"], "Salford Together");
    assert_eq!(
        coalition["members"],
        json!([{ "status": "ACTIVE", "organisation": { "name": "Salford Together" } }])
    );
    let figures = app.change_figures().await?;
    assert_eq!(
        figures["LIVING_IN_THE_PLACE_WE_CALL_HOME"]["coalitionCount"],
        1
    );
    assert_eq!(figures["MORE_RESOURCES_BETTER_USED"]["coalitionCount"], 1);
    assert_eq!(figures["SHARING_POWER_AS_EQUALS"]["coalitionCount"], 0);

    let taken = app
        .gql(
            Some(&owner),
            FORM,
            json!({ "input": { "organisationId": org, "name": "Greater Manchester homes!",
                "purpose": "Again", "changes": ["SHARING_POWER_AS_EQUALS"] } }),
        )
        .await?;
    assert_eq!(taken.code(), Some("CONFLICT"));
    let no_changes = app
        .gql(
            Some(&owner),
            FORM,
            json!({ "input": { "organisationId": org, "name": "Empty", "purpose": "x", "changes": [] } }),
        )
        .await?;
    assert_eq!(no_changes.field(), Some("changes"));
    let listed = app
        .gql(
            None,
            "{ coalitions { totalCount edges { node { slug } } } }",
            json!({}),
        )
        .await?
        .ok()?;
    assert_eq!(listed["coalitions"]["totalCount"], 1);
    Ok(())
}

async fn a_request_to_join_is_approved_by_the_lead_only(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let lead = app.sign_in("lead@example.org").await?;
    let joiner = app.sign_in("joiner@example.org").await?;
    let lead_org = app.create_organisation(&lead, "Lead Org").await?;
    let joiner_org = app.create_organisation(&joiner, "Joiner Org").await?;
    let coalition = app
        .form_coalition(
            &lead,
            &lead_org,
            "Power Share",
            json!(["SHARING_POWER_AS_EQUALS"]),
        )
        .await?;

    let requested = app
        .gql(
            Some(&joiner),
            REQUEST,
            json!({ "c": coalition, "o": joiner_org }),
        )
        .await?
        .ok()?;
    let membership = &requested["requestToJoinCoalition"];
    assert_eq!(membership["status"], "REQUESTED");
    let again = app
        .gql(
            Some(&joiner),
            REQUEST,
            json!({ "c": coalition, "o": joiner_org }),
        )
        .await?
        .ok()?;
    assert_eq!(
        again["requestToJoinCoalition"]["id"], membership["id"],
        "asking twice is one request"
    );

    let self_approved = app
        .gql(Some(&joiner), ACCEPT, json!({ "m": membership["id"] }))
        .await?;
    assert_eq!(self_approved.code(), Some("FORBIDDEN"));
    let approved = app
        .gql(Some(&lead), ACCEPT, json!({ "m": membership["id"] }))
        .await?
        .ok()?;
    assert_eq!(approved["acceptCoalitionMembership"]["status"], "ACTIVE");
    assert_eq!(
        approved["acceptCoalitionMembership"]["coalition"]["status"], "ACTIVE",
        "a second active member makes the coalition active"
    );
    let twice = app
        .gql(Some(&lead), ACCEPT, json!({ "m": membership["id"] }))
        .await?;
    assert_eq!(twice.code(), Some("CONFLICT"));
    let unknown = app
        .gql(
            Some(&lead),
            ACCEPT,
            json!({ "m": "0190f1c2-0000-7000-8000-000000000000" }),
        )
        .await?;
    assert_eq!(unknown.code(), Some("NOT_FOUND"));
    Ok(())
}

async fn an_invitation_is_accepted_by_the_invited_organisation_only(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let lead = app.sign_in("lead@example.org").await?;
    let invitee = app.sign_in("invitee@example.org").await?;
    let lead_org = app.create_organisation(&lead, "Lead Org").await?;
    let invitee_org = app.create_organisation(&invitee, "Invitee Org").await?;
    let invitee_token = app.api_token(&invitee, &invitee_org).await?;
    let coalition = app
        .form_coalition(
            &lead,
            &lead_org,
            "Belonging",
            json!(["COMMUNITIES_WHERE_EVERYONE_BELONGS"]),
        )
        .await?;

    let invited = app
        .gql(
            Some(&lead),
            INVITE,
            json!({ "c": coalition, "o": invitee_org }),
        )
        .await?
        .ok()?;
    let membership = &invited["inviteToCoalition"];
    assert_eq!(membership["status"], "INVITED");
    let by_lead = app
        .gql(Some(&lead), ACCEPT, json!({ "m": membership["id"] }))
        .await?;
    assert_eq!(
        by_lead.code(),
        Some("FORBIDDEN"),
        "the lead cannot accept for them"
    );
    let accepted = app
        .gql(
            Some(&invitee_token),
            ACCEPT,
            json!({ "m": membership["id"] }),
        )
        .await?
        .ok()?;
    assert_eq!(accepted["acceptCoalitionMembership"]["status"], "ACTIVE");

    // An invitation meeting a request (or the other way round) is a membership at once.
    let third = app.sign_in("third@example.org").await?;
    let third_org = app.create_organisation(&third, "Third Org").await?;
    app.gql(
        Some(&third),
        REQUEST,
        json!({ "c": coalition, "o": third_org }),
    )
    .await?
    .ok()?;
    let met = app
        .gql(
            Some(&lead),
            INVITE,
            json!({ "c": coalition, "o": third_org }),
        )
        .await?
        .ok()?;
    assert_eq!(met["inviteToCoalition"]["status"], "ACTIVE");
    let unknown_org = app
        .gql(
            Some(&lead),
            INVITE,
            json!({ "c": coalition, "o": "0190f1c2-0000-7000-8000-000000000000" }),
        )
        .await?;
    assert_eq!(unknown_org.code(), Some("NOT_FOUND"));
    Ok(())
}

async fn members_leave_but_the_lead_hands_on_first(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let lead = app.sign_in("lead@example.org").await?;
    let member = app.sign_in("member@example.org").await?;
    let pending = app.sign_in("pending@example.org").await?;
    let lead_org = app.create_organisation(&lead, "Lead Org").await?;
    let member_org = app.create_organisation(&member, "Member Org").await?;
    let pending_org = app.create_organisation(&pending, "Pending Org").await?;
    let coalition = app
        .form_coalition(
            &lead,
            &lead_org,
            "Lives We Want",
            json!(["LEADING_THE_LIVES_WE_WANT_TO_LIVE"]),
        )
        .await?;
    app.join_coalition(&lead, &member, &coalition, &member_org)
        .await?;
    app.gql(
        Some(&lead),
        INVITE,
        json!({ "c": coalition, "o": pending_org }),
    )
    .await?
    .ok()?;

    let lead_leaves = app
        .gql(Some(&lead), LEAVE, json!({ "c": coalition, "o": lead_org }))
        .await?;
    assert_eq!(
        lead_leaves.code(),
        Some("CONFLICT"),
        "{:?}",
        lead_leaves.body
    );
    let to_pending = app
        .gql(
            Some(&lead),
            HAND_OVER,
            json!({ "c": coalition, "o": pending_org }),
        )
        .await?;
    assert_eq!(
        to_pending.code(),
        Some("CONFLICT"),
        "only to an active member"
    );
    let handed = app
        .gql(
            Some(&lead),
            HAND_OVER,
            json!({ "c": coalition, "o": member_org }),
        )
        .await?
        .ok()?;
    assert_eq!(
        handed["handOverCoalitionLead"]["lead"]["name"],
        "Member Org"
    );
    let not_lead_now = app
        .gql(
            Some(&lead),
            HAND_OVER,
            json!({ "c": coalition, "o": lead_org }),
        )
        .await?;
    assert_eq!(not_lead_now.code(), Some("FORBIDDEN"));

    let left = app
        .gql(Some(&lead), LEAVE, json!({ "c": coalition, "o": lead_org }))
        .await?
        .ok()?;
    assert_eq!(left["leaveCoalition"]["status"], "LEFT");
    let declined = app
        .gql(
            Some(&pending),
            LEAVE,
            json!({ "c": coalition, "o": pending_org }),
        )
        .await?
        .ok()?;
    assert_eq!(
        declined["leaveCoalition"]["status"], "LEFT",
        "declining an invitation"
    );
    let shown = view(&app, "lives-we-want").await?;
    assert_eq!(shown["lead"]["name"], "Member Org");
    let statuses: Vec<&str> = shown["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["status"].as_str())
        .collect();
    assert_eq!(statuses, ["LEFT", "ACTIVE", "LEFT"]);

    // One who left may ask again.
    let back = app
        .gql(
            Some(&lead),
            REQUEST,
            json!({ "c": coalition, "o": lead_org }),
        )
        .await?
        .ok()?;
    assert_eq!(back["requestToJoinCoalition"]["status"], "REQUESTED");
    Ok(())
}

async fn a_concluded_coalition_takes_no_members_pledges_or_updates(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let lead = app.sign_in("lead@example.org").await?;
    let other = app.sign_in("other@example.org").await?;
    let lead_org = app.create_organisation(&lead, "Lead Org").await?;
    let other_org = app.create_organisation(&other, "Other Org").await?;
    let coalition = app
        .form_coalition(
            &lead,
            &lead_org,
            "Short Lived",
            json!(["MORE_RESOURCES_BETTER_USED"]),
        )
        .await?;
    let concluded = app
        .gql(Some(&lead), CONCLUDE, json!({ "c": coalition }))
        .await?
        .ok()?;
    assert_eq!(concluded["concludeCoalition"]["status"], "CONCLUDED");
    assert!(!concluded["concludeCoalition"]["concludedAt"].is_null());

    for reply in [
        app.gql(Some(&lead), CONCLUDE, json!({ "c": coalition }))
            .await?,
        app.gql(
            Some(&lead),
            INVITE,
            json!({ "c": coalition, "o": other_org }),
        )
        .await?,
        app.gql(
            Some(&other),
            REQUEST,
            json!({ "c": coalition, "o": other_org }),
        )
        .await?,
        app.make_pledge(Some(&lead), &lead_org, json!({ "coalitionId": coalition }))
            .await?,
        app.post_update(
            Some(&lead),
            json!({ "coalitionId": coalition, "body": "After the end", "signal": "DONE" }),
        )
        .await?,
    ] {
        assert_eq!(reply.code(), Some("CONFLICT"), "{:?}", reply.body);
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM coalition_members").await?,
        1,
        "nobody joined"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM pledges").await?, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM progress_updates").await?, 0);
    Ok(())
}

async fn a_coalition_shows_its_members_pledges_and_updates(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let lead = app.sign_in("lead@example.org").await?;
    let member = app.sign_in("member@example.org").await?;
    let outsider = app.sign_in("outsider@example.org").await?;
    let lead_org = app.create_organisation(&lead, "Lead Org").await?;
    let member_org = app.create_organisation(&member, "Member Org").await?;
    let outsider_org = app.create_organisation(&outsider, "Outsider Org").await?;
    let coalition = app
        .form_coalition(
            &lead,
            &lead_org,
            "Home Together",
            json!(["LIVING_IN_THE_PLACE_WE_CALL_HOME"]),
        )
        .await?;
    app.join_coalition(&lead, &member, &coalition, &member_org)
        .await?;

    app.pledge_id(
        &member,
        &member_org,
        json!({ "title": "Ours together", "coalitionId": coalition }),
    )
    .await?;
    app.pledge_id(&member, &member_org, json!({ "title": "Ours alone" }))
        .await?;
    let outsider_pledge = app
        .make_pledge(
            Some(&outsider),
            &outsider_org,
            json!({ "coalitionId": coalition }),
        )
        .await?;
    assert_eq!(
        outsider_pledge.code(),
        Some("FORBIDDEN"),
        "only members pledge for it"
    );
    app.post_update(
        Some(&member),
        json!({ "coalitionId": coalition, "body": "First homes found", "signal": "ON_TRACK" }),
    )
    .await?
    .ok()?;

    let shown = view(&app, "home-together").await?;
    assert_eq!(shown["status"], "ACTIVE");
    assert_eq!(shown["pledges"]["totalCount"], 1);
    assert_eq!(
        shown["pledges"]["edges"][0]["node"]["title"],
        "Ours together"
    );
    assert_eq!(
        shown["pledges"]["edges"][0]["node"]["coalition"]["slug"],
        "home-together"
    );
    assert_eq!(shown["updates"]["totalCount"], 1);
    assert_eq!(
        shown["updates"]["edges"][0]["node"]["organisation"]["name"],
        "Member Org"
    );
    assert_eq!(shown["members"].as_array().map(Vec::len), Some(2));
    let missing = app
        .gql(
            None,
            "{ coalition(slug: \"no-such-thing\") { id } }",
            json!({}),
        )
        .await?
        .ok()?;
    assert!(missing["coalition"].is_null());
    Ok(())
}

async fn a_page_of_coalitions_costs_the_same_statements_whatever_its_size(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let mut organisations = Vec::new();
    for n in 0..4 {
        organisations.push(app.create_organisation(&owner, &format!("Org {n}")).await?);
    }
    for n in 0..8 {
        let lead = &organisations[n % 4];
        let coalition = app
            .form_coalition(
                &owner,
                lead,
                &format!("Coalition {n}"),
                json!(["SHARING_POWER_AS_EQUALS"]),
            )
            .await?;
        let other = &organisations[(n + 1) % 4];
        app.join_coalition(&owner, &owner, &coalition, other)
            .await?;
    }
    let query = "query($first: Int) { coalitions(first: $first) { totalCount edges { node { name status changes lead { name } members { status organisation { name } } } } } }";
    let (two, two_count) = app.gql_counting(None, query, json!({ "first": 2 })).await?;
    two.ok()?;
    let (eight, eight_count) = app.gql_counting(None, query, json!({ "first": 8 })).await?;
    let eight = eight.ok()?;
    assert_eq!(
        eight["coalitions"]["edges"][7]["node"]["members"][1]["organisation"]["name"],
        "Org 0"
    );
    println!("statements: 2 coalitions = {two_count}, 8 coalitions = {eight_count}");
    // A larger page can cost one fewer: its leads' batch may already hold every member.
    assert!(
        eight_count <= two_count,
        "the statement count grows with the page"
    );
    assert!(two_count <= 6, "{two_count} statements");
    Ok(())
}

async fn a_coalitions_members_cost_the_same_statements_however_many(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let mut organisations = Vec::new();
    for n in 0..8 {
        organisations.push(
            app.create_organisation(&owner, &format!("Member {n}"))
                .await?,
        );
    }
    let coalition = app
        .form_coalition(
            &owner,
            &organisations[0],
            "Many hands",
            json!(["SHARING_POWER_AS_EQUALS"]),
        )
        .await?;
    let listed = app
        .gql(
            None,
            "{ coalitions(first: 10) { edges { node { id slug } } } }",
            json!({}),
        )
        .await?
        .ok()?;
    let slug = listed["coalitions"]["edges"]
        .as_array()
        .and_then(|edges| edges.iter().find(|e| e["node"]["id"] == coalition.as_str()))
        .map(|e| e["node"]["slug"].clone())
        .ok_or_else(|| anyhow::anyhow!("the coalition is not listed"))?;
    // Signed in, so no answer comes from a cache.
    let query = "query($slug: String!) { coalition(slug: $slug) { name lead { name } members { status organisation { name kind region } coalition { slug } } } }";
    let mut counts = Vec::new();
    let mut joined = 1;
    for members in [2, 8] {
        for organisation in &organisations[joined..members] {
            app.join_coalition(&owner, &owner, &coalition, organisation)
                .await?;
        }
        joined = members;
        let (reply, count) = app
            .gql_counting(Some(&owner), query, json!({ "slug": slug }))
            .await?;
        let reply = reply.ok()?;
        assert_eq!(
            reply["coalition"]["members"].as_array().map(Vec::len),
            Some(members),
            "{reply}"
        );
        counts.push(count);
    }
    println!(
        "statements: 2 members = {}, 8 members = {}",
        counts[0], counts[1]
    );
    assert_eq!(
        counts[0], counts[1],
        "the statement count grows with the members"
    );
    Ok(())
}
