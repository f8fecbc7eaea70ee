//! Live progress over WebSocket (graphql-transport-ws): a client sees what another posts.

use std::time::Duration;

use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::{helpers::*, on_both_databases};

on_both_databases!(
    a_websocket_client_receives_the_progress_another_client_posts_on_its_changes,
    a_websocket_serves_subscriptions_only_and_ends_when_its_token_is_revoked,
);

async fn a_websocket_serves_subscriptions_only_and_ends_when_its_token_is_revoked(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Revocable").await?;
    let made = app.create_api_token(Some(&owner), &org).await?.ok()?;
    let token = made["createApiToken"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let token_id = made["createApiToken"]["apiToken"]["id"].clone();
    let pledge = app.pledge_id(&owner, &org, json!({})).await?;

    let mut socket = ws_connect(&app, Some(&token)).await?;
    socket
        .send(Message::text(json!({ "id": "m", "type": "subscribe", "payload": {
            "query": "mutation($o: ID!) { makePledge(input: { organisationId: $o, changes: [SHARING_POWER_AS_EQUALS], title: \"Sneaky\", commitment: \"Over the socket\" }) { id } }",
            "variables": { "o": org } } }).to_string()))
        .await?;
    let refused = ws_next(&mut socket, Duration::from_secs(2)).await?;
    assert!(refused["payload"]["data"].is_null(), "{refused}");
    assert!(
        refused.to_string().contains("Only subscriptions"),
        "{refused}"
    );

    socket
        .send(Message::text(
            json!({ "id": "1", "type": "subscribe", "payload": {
            "query": "subscription { progressUpdatePosted { body } }" } })
            .to_string(),
        ))
        .await?;
    let mut delivered = false;
    for n in 0..10 {
        app.post_update(
            Some(&token),
            json!({ "pledgeId": pledge, "body": format!("Before {n}"), "signal": "ON_TRACK" }),
        )
        .await?
        .ok()?;
        if let Ok(value) = ws_next(&mut socket, Duration::from_secs(2)).await {
            assert_eq!(value["type"], "next", "{value}");
            delivered = true;
            break;
        }
    }
    assert!(delivered, "the subscription never delivered");

    app.gql(
        Some(&owner),
        "mutation($id: ID!) { revokeApiToken(id: $id) }",
        json!({ "id": token_id }),
    )
    .await?
    .ok()?;
    app.post_update(
        Some(&owner),
        json!({ "pledgeId": pledge, "body": "After", "signal": "ON_TRACK" }),
    )
    .await?
    .ok()?;
    let ended = ws_next(&mut socket, Duration::from_secs(2)).await?;
    assert!(ended.to_string().contains("UNAUTHENTICATED"), "{ended}");
    assert!(!ended.to_string().contains("After"), "{ended}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM pledges WHERE title = 'Sneaky'")
            .await?,
        0
    );
    Ok(())
}

async fn a_websocket_client_receives_the_progress_another_client_posts_on_its_changes(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    // On PostgreSQL the update is posted through a second server.
    let other = match db {
        Backend::Postgres => Some(
            start(
                app.database_url.clone(),
                app.smtp.clone(),
                app.options.clone(),
            )
            .await?,
        ),
        Backend::Sqlite => None,
    };
    let poster = other.as_ref().unwrap_or(&app);
    let owner = poster.sign_in("owner@example.org").await?;
    let org = poster.create_organisation(&owner, "Live Reporters").await?;
    let token = poster.api_token(&owner, &org).await?;
    let homes = poster
        .pledge_id(
            &owner,
            &org,
            json!({ "changes": ["LIVING_IN_THE_PLACE_WE_CALL_HOME"] }),
        )
        .await?;
    let money = poster
        .pledge_id(
            &owner,
            &org,
            json!({ "changes": ["MORE_RESOURCES_BETTER_USED"], "title": "Budgets" }),
        )
        .await?;

    let mut socket = ws_connect(&app, None).await?;
    socket
        .send(Message::text(json!({ "id": "1", "type": "subscribe", "payload": {
            "query": "subscription { progressUpdatePosted(changes: [LIVING_IN_THE_PLACE_WE_CALL_HOME]) { body signal pledge { title } } }" } }).to_string()))
        .await?;

    // The subscription starts asynchronously: post until one arrives.
    let mut received = Value::Null;
    for n in 0..10 {
        for (pledge, body) in [
            (&money, format!("Budget news {n}")),
            (&homes, format!("Homes news {n}")),
        ] {
            poster
                .post_update(
                    Some(&token),
                    json!({ "pledgeId": pledge, "body": body, "signal": "ON_TRACK" }),
                )
                .await?
                .ok()?;
        }
        let next = ws_next(&mut socket, Duration::from_millis(1500)).await;
        if let Ok(value) = next {
            received = value;
            break;
        }
    }
    let update = &received["payload"]["data"]["progressUpdatePosted"];
    assert!(
        update["body"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Homes news"),
        "{received}"
    );
    assert_eq!(update["pledge"]["title"], "Homes, not placements");
    assert_eq!(update["signal"], "ON_TRACK");
    Ok(())
}
