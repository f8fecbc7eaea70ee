//! Organisations, members and API tokens, and who may manage them.

use serde_json::json;

use crate::{helpers::*, on_both_databases};

on_both_databases!(
    creating_an_organisation_makes_the_creator_its_owner,
    a_taken_slug_is_a_conflict,
    only_owners_add_members_and_the_new_member_is_told,
    an_api_token_acts_for_its_organisation_until_revoked,
    only_owners_make_and_revoke_api_tokens,
    members_are_shown_only_to_members,
    the_last_owner_cannot_be_demoted,
    organisations_page_with_cursors,
);

const CREATE: &str = "mutation($input: CreateOrganisationInput!) { createOrganisation(input: $input) { id name slug kind region website viewerRole members { role person { email } } } }";
const ADD: &str = "mutation($org: ID!, $email: String!, $role: OrganisationRole!) { addOrganisationMember(organisationId: $org, email: $email, role: $role) { id role person { email } organisation { name } } }";
const VIEWER: &str = "{ viewer { person { email } organisation { name } } me { email } }";

async fn creating_an_organisation_makes_the_creator_its_owner(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let input = json!({ "input": {
        "name": "Leeds Carers' Forum", "kind": "USER_LED_ORGANISATION",
        "region": "YORKSHIRE_AND_THE_HUMBER", "website": "https://leedscarers.example" } });
    let data = app.gql(Some(&owner), CREATE, input.clone()).await?.ok()?;
    let org = &data["createOrganisation"];
    assert_eq!(org["slug"], "leeds-carers-forum");
    assert_eq!(org["kind"], "USER_LED_ORGANISATION");
    assert_eq!(org["viewerRole"], "OWNER");
    assert_eq!(
        org["members"],
        json!([{ "role": "OWNER", "person": { "email": "owner@example.org" } }])
    );

    let public = app
        .gql(
            None,
            "{ organisation(slug: \"leeds-carers-forum\") { name region viewerRole } }",
            json!({}),
        )
        .await?
        .ok()?;
    assert_eq!(public["organisation"]["name"], "Leeds Carers' Forum");
    assert!(public["organisation"]["viewerRole"].is_null());

    let anonymous = app.gql(None, CREATE, input).await?;
    assert_eq!(anonymous.code(), Some("UNAUTHENTICATED"));
    assert_eq!(app.count("SELECT COUNT(*) FROM organisations").await?, 1);
    Ok(())
}

async fn a_taken_slug_is_a_conflict(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    app.create_organisation(&owner, "Bolton Together").await?;
    let again = app
        .gql(Some(&owner), CREATE, json!({ "input": { "name": "Bolton  together!", "kind": "COMMUNITY_GROUP", "region": "NORTH_WEST" } }))
        .await?;
    assert_eq!(again.code(), Some("CONFLICT"));
    assert!(
        again.message().contains("bolton-together"),
        "{}",
        again.message()
    );
    Ok(())
}

async fn only_owners_add_members_and_the_new_member_is_told(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let outsider = app.sign_in("outsider@example.org").await?;
    let org = app
        .create_organisation(&owner, "Wigan Community Circles")
        .await?;

    let added = app
        .gql(
            Some(&owner),
            ADD,
            json!({ "org": org, "email": "New.Member@Example.org", "role": "MEMBER" }),
        )
        .await?
        .ok()?;
    assert_eq!(added["addOrganisationMember"]["role"], "MEMBER");
    assert_eq!(
        added["addOrganisationMember"]["organisation"]["name"],
        "Wigan Community Circles"
    );
    let told = app.mail_to("new.member@example.org", 1).await?;
    assert!(
        told[0].subject.contains("Wigan Community Circles"),
        "{}",
        told[0].subject
    );
    assert!(!told[0].text.is_empty() && !told[0].html.is_empty());

    let member = app.sign_in("new.member@example.org").await?;
    let token = app.create_api_token(Some(&owner), &org).await?.ok()?;
    let org_token = token["createApiToken"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let attempt = json!({ "org": org, "email": "sneaky@example.org", "role": "OWNER" });
    for (who, credential, code) in [
        ("a plain member", Some(member.as_str()), "FORBIDDEN"),
        ("another person", Some(outsider.as_str()), "FORBIDDEN"),
        (
            "the organisation's token",
            Some(org_token.as_str()),
            "FORBIDDEN",
        ),
        ("nobody", None, "UNAUTHENTICATED"),
    ] {
        let reply = app.gql(credential, ADD, attempt.clone()).await?;
        assert_eq!(reply.code(), Some(code), "{who}: {:?}", reply.body);
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM organisation_members")
            .await?,
        2
    );
    let unknown = app
        .gql(Some(&owner), ADD, json!({ "org": uuid::Uuid::now_v7().to_string(), "email": "x@example.org", "role": "MEMBER" }))
        .await?;
    assert_eq!(unknown.code(), Some("NOT_FOUND"));
    Ok(())
}

async fn an_api_token_acts_for_its_organisation_until_revoked(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app
        .create_organisation(&owner, "Salford Providers Network")
        .await?;
    let made = app.create_api_token(Some(&owner), &org).await?.ok()?;
    let token = made["createApiToken"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let token_id = made["createApiToken"]["apiToken"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(token.starts_with("gso_"), "{token}");

    let viewer = app.gql(Some(&token), VIEWER, json!({})).await?.ok()?;
    assert_eq!(
        viewer["viewer"]["organisation"]["name"],
        "Salford Providers Network"
    );
    assert!(viewer["viewer"]["person"].is_null());
    assert!(viewer["me"].is_null(), "a token is not a person");

    let listed = app
        .gql(Some(&owner), "query($s: String!) { organisation(slug: $s) { apiTokens { id name lastUsedAt revokedAt } } }", json!({ "s": "salford-providers-network" }))
        .await?
        .ok()?;
    let tokens = &listed["organisation"]["apiTokens"];
    assert_eq!(tokens[0]["name"], "CRM sync");
    assert!(!tokens[0]["lastUsedAt"].is_null(), "use is recorded");
    assert!(tokens[0].get("token").is_none());

    app.gql(
        Some(&owner),
        "mutation($id: ID!) { revokeApiToken(id: $id) }",
        json!({ "id": token_id }),
    )
    .await?
    .ok()?;
    // A revoked token is refused outright (HTTP 401), never read as nobody.
    let after = app.gql(Some(&token), VIEWER, json!({})).await?;
    assert_eq!((after.status, after.code()), (401, Some("UNAUTHENTICATED")));
    let refused = app.create_api_token(Some(&token), &org).await?;
    assert_eq!(
        (refused.status, refused.code()),
        (401, Some("UNAUTHENTICATED"))
    );
    Ok(())
}

async fn only_owners_make_and_revoke_api_tokens(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let other_owner = app.sign_in("other@example.org").await?;
    let org = app.create_organisation(&owner, "Oldham Home Care").await?;
    app.create_organisation(&other_owner, "Rochdale Carers")
        .await?;
    app.gql(
        Some(&owner),
        ADD,
        json!({ "org": org, "email": "member@example.org", "role": "MEMBER" }),
    )
    .await?
    .ok()?;
    let member = app.sign_in("member@example.org").await?;
    let made = app.create_api_token(Some(&owner), &org).await?.ok()?;
    let token = made["createApiToken"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let token_id = made["createApiToken"]["apiToken"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    for (who, credential, code) in [
        ("a plain member", Some(member.as_str()), "FORBIDDEN"),
        (
            "another organisation's owner",
            Some(other_owner.as_str()),
            "FORBIDDEN",
        ),
        (
            "the organisation's own token",
            Some(token.as_str()),
            "FORBIDDEN",
        ),
        ("nobody", None, "UNAUTHENTICATED"),
    ] {
        let create = app.create_api_token(credential, &org).await?;
        assert_eq!(
            create.code(),
            Some(code),
            "create by {who}: {:?}",
            create.body
        );
        let revoke = app
            .gql(
                credential,
                "mutation($id: ID!) { revokeApiToken(id: $id) }",
                json!({ "id": token_id }),
            )
            .await?;
        assert_eq!(
            revoke.code(),
            Some(code),
            "revoke by {who}: {:?}",
            revoke.body
        );
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM api_tokens").await?, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NULL")
            .await?,
        1
    );
    let viewer = app.gql(Some(&token), VIEWER, json!({})).await?.ok()?;
    assert_eq!(viewer["viewer"]["organisation"]["name"], "Oldham Home Care");
    Ok(())
}

async fn members_are_shown_only_to_members(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let outsider = app.sign_in("outsider@example.org").await?;
    app.create_organisation(&owner, "Stockport Circles").await?;
    let query =
        "{ organisation(slug: \"stockport-circles\") { name members { person { email } } } }";
    let seen = app.gql(Some(&owner), query, json!({})).await?.ok()?;
    assert_eq!(
        seen["organisation"]["members"][0]["person"]["email"],
        "owner@example.org"
    );
    for credential in [Some(outsider.as_str()), None] {
        let refused = app.gql(credential, query, json!({})).await?;
        assert!(
            matches!(refused.code(), Some("FORBIDDEN" | "UNAUTHENTICATED")),
            "{:?}",
            refused.body
        );
    }
    Ok(())
}

async fn the_last_owner_cannot_be_demoted(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Trafford Voices").await?;
    let demote = json!({ "org": org, "email": "owner@example.org", "role": "MEMBER" });
    let reply = app.gql(Some(&owner), ADD, demote.clone()).await?;
    assert_eq!(reply.code(), Some("CONFLICT"));
    app.gql(
        Some(&owner),
        ADD,
        json!({ "org": org, "email": "second@example.org", "role": "OWNER" }),
    )
    .await?
    .ok()?;
    let now = app.gql(Some(&owner), ADD, demote).await?.ok()?;
    assert_eq!(now["addOrganisationMember"]["role"], "MEMBER");
    Ok(())
}

async fn organisations_page_with_cursors(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    for n in 1..=5 {
        app.create_organisation(&owner, &format!("Group {n}"))
            .await?;
    }
    let page = "query($after: String) { organisations(first: 2, after: $after) { totalCount edges { cursor node { name } } pageInfo { hasNextPage endCursor } } }";
    let mut names = Vec::new();
    let mut after = serde_json::Value::Null;
    loop {
        let data = app.gql(None, page, json!({ "after": after })).await?.ok()?;
        let connection = &data["organisations"];
        assert_eq!(connection["totalCount"], 5);
        for edge in connection["edges"].as_array().into_iter().flatten() {
            names.push(edge["node"]["name"].as_str().unwrap_or_default().to_owned());
        }
        if connection["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = connection["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(
        names,
        ["Group 1", "Group 2", "Group 3", "Group 4", "Group 5"]
    );
    Ok(())
}
