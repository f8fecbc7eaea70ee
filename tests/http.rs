//! The plain HTTP surface: the first query a newcomer runs, GraphiQL and health checks.

use serde_json::json;

use crate::{helpers::*, on_both_databases};

on_both_databases!(
    changes_lists_the_five_changes_in_order_with_zero_figures,
    health_readiness_and_graphiql_answer,
    metrics_count_requests_and_show_the_outbox,
);

async fn changes_lists_the_five_changes_in_order_with_zero_figures(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let data = app
        .gql(None, "{ changes { change title pledgeCount organisationCount coalitionCount progressUpdateCount lastProgressAt } }", json!({}))
        .await?
        .ok()?;
    let changes = data["changes"].as_array().cloned().unwrap_or_default();
    let names: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| {
            (
                c["change"].as_str().unwrap_or_default(),
                c["title"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            (
                "COMMUNITIES_WHERE_EVERYONE_BELONGS",
                "Communities where everyone belongs"
            ),
            (
                "LIVING_IN_THE_PLACE_WE_CALL_HOME",
                "Living in the place we call home"
            ),
            (
                "LEADING_THE_LIVES_WE_WANT_TO_LIVE",
                "Leading the lives we want to live"
            ),
            ("MORE_RESOURCES_BETTER_USED", "More resources, better used"),
            ("SHARING_POWER_AS_EQUALS", "Sharing power as equals"),
        ]
    );
    for change in &changes {
        assert_eq!(change["pledgeCount"], 0);
        assert_eq!(change["progressUpdateCount"], 0);
        assert!(change["lastProgressAt"].is_null());
    }
    Ok(())
}

async fn health_readiness_and_graphiql_answer(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let health = app.http.get(app.url("/healthz")).send().await?;
    assert_eq!(health.status(), 200);
    let ready = app.http.get(app.url("/readyz")).send().await?;
    assert_eq!(ready.status(), 200);
    let graphiql = app
        .http
        .get(app.url("/graphql"))
        .header("Accept", "text/html")
        .send()
        .await?;
    assert_eq!(graphiql.status(), 200);
    assert!(graphiql.text().await?.to_lowercase().contains("graphiql"));
    let missing = app.http.get(app.url("/nowhere")).send().await?;
    assert_eq!(missing.status(), 404);
    app.stop().await?;
    Ok(())
}

async fn metrics_count_requests_and_show_the_outbox(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    app.sign_in("counted@example.org").await?;
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        text.contains(r#"groundswell_http_requests_total{route="/graphql",status="200"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"groundswell_outbox_messages{status="sent"} 1"#),
        "{text}"
    );
    assert!(text.contains("groundswell_mail_sent_total"), "{text}");
    assert!(!text.contains("counted@example.org"));
    Ok(())
}
