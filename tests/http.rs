//! The plain HTTP surface: the first query a newcomer runs, GraphiQL and health checks.

use serde_json::json;

use crate::{helpers::*, on_both_databases};

on_both_databases!(
    changes_lists_the_five_changes_in_order_with_zero_figures,
    health_readiness_and_graphiql_answer,
    metrics_count_requests_and_show_the_outbox,
    a_request_validated_once_answers_as_before_and_other_variables_are_validated_again,
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
    // The recorder is the process's: other tests only add to these, so each of this test's
    // requests must show as at least one more.
    let counted = r#"groundswell_http_requests_total{route="/healthz",status="200"}"#;
    let timed = r#"groundswell_http_request_duration_seconds_count{route="/healthz"}"#;
    let before = app.metrics().await?;
    for _ in 0..3 {
        let health = app.http.get(app.url("/healthz")).send().await?;
        assert_eq!(health.status(), 200);
    }
    let after = app.metrics().await?;
    for series in [counted, timed] {
        let (was, is) = (metric_value(&before, series), metric_value(&after, series));
        assert!(
            is >= was + 3.0,
            "{series}: {was} before three requests, {is} after"
        );
    }
    app.sign_in("counted@example.org").await?;
    let text = app.metrics().await?;
    assert!(
        text.contains(r#"groundswell_http_requests_total{route="/graphql",status="200"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"groundswell_outbox_messages{status="sent"} 1"#),
        "{text}"
    );
    assert!(text.contains("groundswell_mail_sent_total"), "{text}");
    assert!(
        text.contains("groundswell_graphql_items_written_whole_total"),
        "{text}"
    );
    assert!(!text.contains("counted@example.org"));
    Ok(())
}

/// The value of one series in Prometheus's text format; 0 when it is not there yet.
fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A request that passed validation in full runs on the schema that skips the rules it passed
/// (`http::parsed`); the same document with other variables, or a document that failed, is
/// validated in full each time, and answers exactly as it did on first sight.
async fn a_request_validated_once_answers_as_before_and_other_variables_are_validated_again(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let query = "query Wall($change: Change!) { pledges(first: 5, filter: { changes: [$change] }) { totalCount } }";
    let bad = json!({ "change": "NOT_A_CHANGE" });
    let good = json!({ "change": "SHARING_POWER_AS_EQUALS" });
    let refused_first = app.gql(None, query, bad.clone()).await?;
    assert!(
        refused_first.body["data"].is_null(),
        "{:?}",
        refused_first.body
    );
    assert!(
        refused_first.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Invalid value for argument")),
        "{:?}",
        refused_first.body
    );
    let answered_first = app.gql(None, query, good.clone()).await?;
    for _ in 0..3 {
        let answered = app.gql(None, query, good.clone()).await?;
        assert_eq!(answered.status, answered_first.status);
        assert_eq!(answered.body, answered_first.body);
        assert_eq!(answered.body["data"]["pledges"]["totalCount"], 0);
        let refused = app.gql(None, query, bad.clone()).await?;
        assert_eq!(refused.status, refused_first.status);
        assert_eq!(refused.body, refused_first.body);
    }
    let unknown_field = "{ changes { change notAField } }";
    let first = app.gql(None, unknown_field, json!({})).await?;
    assert!(first.body["data"].is_null(), "{:?}", first.body);
    for _ in 0..3 {
        let again = app.gql(None, unknown_field, json!({})).await?;
        assert_eq!(again.body, first.body);
    }
    Ok(())
}
