//! Webhooks end to end: a real HTTP receiver started by the test hears each event once, signed
//! so that the Standard Webhooks package from npm verifies it; failures are retried with the
//! same `webhook-id`; a killed server resumes without a duplicate; two servers deliver each
//! event once; private targets are refused; and only an organisation's owners and its own API
//! tokens manage its webhooks.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use axum::{extract::State, http::HeaderMap, http::StatusCode, routing::post};
use chrono::Utc;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::{helpers::*, on_both_databases};

on_both_databases!(
    each_event_arrives_once_signed_so_an_independent_verifier_accepts_it,
    a_receiver_answering_500_then_200_gets_the_event_twice_with_the_same_webhook_id,
    a_receiver_that_never_answers_within_the_timeout_is_retried,
    a_server_killed_mid_delivery_resumes_on_restart_without_a_duplicate,
    a_rotated_secret_keeps_signing_beside_the_new_one,
    an_endpoint_failing_every_delivery_for_a_day_is_switched_off_and_its_owners_told,
    urls_on_loopback_private_and_link_local_addresses_are_refused_at_creation,
    a_name_resolving_to_loopback_is_refused_at_delivery,
    a_private_address_saved_while_allowed_is_refused_at_delivery_once_the_setting_is_off,
    a_redirect_is_never_followed,
    webhooks_are_managed_only_by_the_organisations_owners_and_its_own_tokens,
    a_receiver_answering_binary_is_recorded_and_not_sent_again,
    a_2xx_whose_body_never_ends_is_a_delivery_not_a_timeout,
    absurd_webhook_input_is_refused_naming_the_field,
    a_webhook_deleted_while_a_delivery_is_in_flight_ends_it_quietly,
);

#[test]
fn the_schema_holds_the_webhook_contract_names() {
    let sdl = groundswell_api::graphql::sdl();
    for name in [
        "createWebhook(input: CreateWebhookInput!): NewWebhook!",
        "updateWebhook(id: ID!, input: UpdateWebhookInput!): Webhook!",
        "rotateWebhookSecret(id: ID!): NewWebhook!",
        "deleteWebhook(id: ID!): Boolean!",
        "redeliverWebhook(deliveryId: ID!): WebhookDelivery!",
        "webhooks: [Webhook!]!",
        "deliveries(first: Int, after: String): WebhookDeliveryConnection!",
        "enum WebhookEvent",
        "secret: String!",
    ] {
        assert!(sdl.contains(name), "the schema lacks `{name}`");
    }
}

/// How the receiver answers one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Status(u16),
    /// A 307 to the receiver's other path, which records what reaches it.
    Redirect,
    /// Never answers.
    Hang,
    /// Holds the request until the test releases the receiver, then answers 200.
    Held,
    /// A status with a body of raw bytes.
    Body(u16, &'static [u8]),
    /// Waits this many milliseconds, then answers 200.
    Slow(u64),
    /// Answers 200 at once with the start of a body that never ends.
    EndlessBody,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
    answer: Answer,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }
}

/// A real HTTP server on 127.0.0.1, answering from a script and then with a default.
#[derive(Clone)]
struct Receiver {
    address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    default: Arc<Mutex<Answer>>,
    released: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Receiver {
    async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let receiver = Receiver {
            address: listener.local_addr()?,
            received: Arc::default(),
            script: Arc::default(),
            default: Arc::new(Mutex::new(Answer::Status(200))),
            released: Arc::new(tokio::sync::watch::Sender::new(false)),
        };
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .route("/elsewhere", post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(receiver)
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }

    fn answer_next(&self, answers: &[Answer]) {
        if let Ok(mut script) = self.script.lock() {
            script.extend(answers.iter().copied());
        }
    }

    fn answer_always(&self, answer: Answer) {
        if let Ok(mut default) = self.default.lock() {
            *default = answer;
        }
    }

    /// Lets every request held by [`Answer::Held`] be answered.
    fn release(&self) {
        self.released.send_replace(true);
    }

    /// Forgets every request received so far.
    fn forget(&self) {
        if let Ok(mut received) = self.received.lock() {
            received.clear();
        }
    }

    fn all(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Requests answered with a 2xx: the deliveries the receiver accepted.
    fn accepted(&self) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|r| {
                matches!(
                    r.answer,
                    Answer::Status(200..=299)
                        | Answer::Body(200..=299, _)
                        | Answer::Slow(_)
                        | Answer::EndlessBody
                )
            })
            .collect()
    }

    /// The accepted requests, failing unless there are at least `count` (after a drain).
    fn accepted_at_least(&self, count: usize) -> anyhow::Result<Vec<Received>> {
        let accepted = self.accepted();
        anyhow::ensure!(
            accepted.len() >= count,
            "{count} deliveries were not accepted (got {}: {:?})",
            accepted.len(),
            self.all()
                .iter()
                .map(Received::event_type)
                .collect::<Vec<_>>()
        );
        Ok(accepted)
    }

    /// Waits (up to 30 s) until `count` requests have arrived, answered or not: for requests
    /// a worker sends from a task of its own (a server's loop, or a drain the test spawned).
    async fn wait_for_requests(&self, count: usize) -> anyhow::Result<Vec<Received>> {
        wait_until(
            &format!("{count} webhook requests arriving"),
            Duration::from_secs(30),
            async || Ok(self.all().len() >= count),
        )
        .await?;
        Ok(self.all())
    }
}

async fn receive(
    State(receiver): State<Receiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let answer = receiver
        .script
        .lock()
        .ok()
        .and_then(|mut s| s.pop_front())
        .or_else(|| receiver.default.lock().ok().map(|d| *d))
        .unwrap_or(Answer::Status(200));
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    if let Ok(mut received) = receiver.received.lock() {
        received.push(Received {
            id: if uri.path() == "/elsewhere" {
                format!("followed:{}", header("webhook-id"))
            } else {
                header("webhook-id")
            },
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            body,
            answer,
        });
    }
    match answer {
        Answer::Status(code) => StatusCode::from_u16(code)
            .unwrap_or(StatusCode::OK)
            .into_response(),
        Answer::Redirect => (
            StatusCode::TEMPORARY_REDIRECT,
            [(axum::http::header::LOCATION, "/elsewhere")],
        )
            .into_response(),
        Answer::Hang => std::future::pending().await,
        Answer::Held => {
            let mut released = receiver.released.subscribe();
            let _ = released.wait_for(|released| *released).await;
            StatusCode::OK.into_response()
        }
        Answer::Body(code, bytes) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
            bytes.to_vec(),
        )
            .into_response(),
        Answer::Slow(ms) => {
            // The receiver's own latency, which the lease test is about, not a wait of the
            // test's.
            tokio::time::sleep(Duration::from_millis(ms)).await;
            StatusCode::OK.into_response()
        }
        Answer::EndlessBody => {
            let start = futures::stream::once(async {
                Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"accepted"))
            });
            (
                StatusCode::OK,
                axum::body::Body::from_stream(start.chain(futures::stream::pending())),
            )
                .into_response()
        }
    }
}

/// Verifies each request with the npm `standardwebhooks` package under `secret`.
async fn verify_with_node(secret: &str, received: &[Received]) -> anyhow::Result<()> {
    let deliveries: Vec<Value> = received
        .iter()
        .map(|r| {
            json!({ "secret": secret, "id": r.id, "timestamp": r.timestamp,
                "signature": r.signature, "body": r.body })
        })
        .collect();
    let path = std::env::temp_dir()
        .join("groundswell-tests")
        .join(format!("webhooks-{}.json", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(path.parent().context("no parent")?)?;
    std::fs::write(&path, serde_json::to_vec(&deliveries)?)?;
    let path_text = path.display().to_string();
    let out = node("verify-webhooks.mjs", &[&path_text], &[]).await;
    let _ = std::fs::remove_file(&path);
    let out = out?;
    anyhow::ensure!(
        out.trim() == format!("verified {}", received.len()),
        "the verifier said: {out}"
    );
    Ok(())
}

const ALL_EVENTS: [&str; 7] = [
    "PLEDGE_MADE",
    "PLEDGE_UPDATED",
    "PLEDGE_WITHDRAWN",
    "PLEDGE_ACHIEVED",
    "PROGRESS_UPDATE_POSTED",
    "COALITION_MEMBERSHIP_CHANGED",
    "COALITION_UPDATED",
];

const CREATE: &str = "mutation($input: CreateWebhookInput!) { createWebhook(input: $input) { secret webhook { id url events active description organisation { slug } } } }";

/// Registers a webhook as `credential`; answers the reply.
async fn create_webhook(
    app: &TestApp,
    credential: Option<&str>,
    organisation_id: &str,
    url: &str,
    events: &[&str],
) -> anyhow::Result<Reply> {
    app.gql(
        credential,
        CREATE,
        json!({ "input": { "organisationId": organisation_id, "url": url, "events": events,
            "description": "CRM sync" } }),
    )
    .await
}

/// A webhook that must be made: (id, secret).
async fn webhook(
    app: &TestApp,
    credential: &str,
    organisation_id: &str,
    url: &str,
    events: &[&str],
) -> anyhow::Result<(String, String)> {
    let made = create_webhook(app, Some(credential), organisation_id, url, events)
        .await?
        .ok()?;
    let made = &made["createWebhook"];
    Ok((
        made["webhook"]["id"].as_str().context("no id")?.to_owned(),
        made["secret"].as_str().context("no secret")?.to_owned(),
    ))
}

/// An organisation with a signed-in owner: (owner session, organisation id).
async fn organisation(app: &TestApp, email: &str, name: &str) -> anyhow::Result<(String, String)> {
    let owner = app.sign_in(email).await?;
    let id = app.create_organisation(&owner, name).await?;
    Ok((owner, id))
}

/// A time by which every retry the tests cause is due (back-offs start at a minute there) and
/// every lease has run out.
fn later() -> chrono::DateTime<Utc> {
    Utc::now() + chrono::Duration::minutes(10)
}

fn count_by_type(received: &[Received]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in received {
        *counts.entry(r.event_type()).or_default() += 1;
    }
    counts
}

async fn each_event_arrives_once_signed_so_an_independent_verifier_accepts_it(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let all = Receiver::start().await?;
    let pledges_only = Receiver::start().await?;
    let (owner, org) = organisation(&app, "owner@hooks.example", "Hooked Council").await?;
    let (partner, partner_org) = organisation(&app, "partner@hooks.example", "Partner").await?;
    let (_, secret) = webhook(&app, &owner, &org, &all.url(), &ALL_EVENTS).await?;
    let (_, pledge_secret) =
        webhook(&app, &owner, &org, &pledges_only.url(), &["PLEDGE_MADE"]).await?;

    // Every kind of change, once (pledge.made twice).
    let pledge = app.pledge_id(&owner, &org, json!({})).await?;
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { updatePledge(id: $id, input: { title: \"Homes, not placements, by 2027\" }) { id } }",
        json!({ "id": pledge }),
    )
    .await?
    .ok()?;
    app.post_update(
        Some(&owner),
        json!({ "pledgeId": pledge, "body": "Everyone has moved home.", "signal": "DONE", "markAchieved": true }),
    )
    .await?
    .ok()?;
    let second = app
        .pledge_id(&owner, &org, json!({ "title": "A second pledge" }))
        .await?;
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { withdrawPledge(id: $id, reason: \"Funding ended\") { id } }",
        json!({ "id": second }),
    )
    .await?
    .ok()?;
    let coalition = app
        .form_coalition(
            &owner,
            &org,
            "Hooked Together",
            json!(["SHARING_POWER_AS_EQUALS"]),
        )
        .await?;
    // Invited (a membership change), accepted (another, and the coalition becomes active).
    app.join_coalition(&owner, &partner, &coalition, &partner_org)
        .await?;

    let expected: HashMap<String, usize> = [
        ("pledge.made", 2),
        ("pledge.updated", 1),
        ("progress_update.posted", 1),
        ("pledge.achieved", 1),
        ("pledge.withdrawn", 1),
        // The lead's own membership on forming, the invitation, the acceptance.
        ("coalition.membership_changed", 3),
        ("coalition.updated", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let total: usize = expected.values().sum();
    app.drain().await?;
    let received = all.accepted_at_least(total)?;
    pledges_only.accepted_at_least(2)?;
    // Everything due has been sent: a repeat would be here by now.
    let received_again = all.all();
    assert_eq!(received_again.len(), total, "requests received");
    assert_eq!(count_by_type(&received), expected);
    let ids: HashSet<&str> = received.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), total, "distinct webhook-ids");
    let pledge_events = pledges_only.all();
    assert_eq!(pledge_events.len(), 2);
    assert!(
        pledge_events
            .iter()
            .all(|r| r.event_type() == "pledge.made")
    );

    for r in &received {
        let body = r.json();
        assert!(
            body["timestamp"].is_string() && body["data"].is_object(),
            "{body}"
        );
        // Nothing private: no emails of owners or partners.
        assert!(
            !r.body.contains('@'),
            "a payload holds an email: {}",
            r.body
        );
    }
    let achieved = received
        .iter()
        .find(|r| r.event_type() == "pledge.achieved")
        .context("no pledge.achieved")?;
    assert_eq!(achieved.json()["data"]["pledge"]["id"], json!(pledge));
    assert_eq!(
        achieved.json()["data"]["pledge"]["status"],
        json!("ACHIEVED")
    );

    verify_with_node(&secret, &received).await?;
    verify_with_node(&pledge_secret, &pledge_events).await?;
    // The other endpoint's secret does not verify these: each endpoint signs with its own.
    assert!(
        verify_with_node(&pledge_secret, &received[..1])
            .await
            .is_err()
    );
    Ok(())
}

async fn a_receiver_answering_500_then_200_gets_the_event_twice_with_the_same_webhook_id(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let receiver = Receiver::start().await?;
    receiver.answer_next(&[Answer::Status(500)]);
    let (owner, org) = organisation(&app, "owner@retry.example", "Retry Trust").await?;
    let (webhook_id, secret) =
        webhook(&app, &owner, &org, &receiver.url(), &["PLEDGE_MADE"]).await?;
    app.pledge_id(&owner, &org, json!({})).await?;

    app.drain().await?;
    assert_eq!(receiver.all().len(), 1, "the retry waits for its back-off");
    app.drain_as_of(later()).await?;
    let accepted = receiver.accepted_at_least(1)?;
    let all = receiver.all();
    assert_eq!(all.len(), 2, "one refused attempt and one accepted");
    assert_eq!(all[0].answer, Answer::Status(500));
    assert_eq!(all[0].id, all[1].id, "a retry keeps its webhook-id");
    assert_eq!(all[0].body, all[1].body);
    verify_with_node(&secret, &all).await?;
    assert_eq!(accepted.len(), 1);

    // The delivery shows both attempts.
    let data = app
        .gql(
            Some(&owner),
            "query($slug: String!) { organisation(slug: $slug) { webhooks { id deliveries { totalCount edges { node { messageId status attemptCount lastStatusCode attempts { statusCode durationMs } } } } } } }",
            json!({ "slug": "retry-trust" }),
        )
        .await?
        .ok()?;
    let hook = &data["organisation"]["webhooks"][0];
    assert_eq!(hook["id"], json!(webhook_id));
    assert_eq!(hook["deliveries"]["totalCount"], json!(1));
    let delivery = &hook["deliveries"]["edges"][0]["node"];
    assert_eq!(delivery["messageId"], json!(all[0].id));
    assert_eq!(delivery["status"], json!("DELIVERED"));
    assert_eq!(delivery["attemptCount"], json!(2));
    assert_eq!(delivery["lastStatusCode"], json!(200));
    let codes: Vec<&Value> = delivery["attempts"]
        .as_array()
        .context("no attempts")?
        .iter()
        .map(|a| &a["statusCode"])
        .collect();
    assert_eq!(codes, [&json!(500), &json!(200)]);
    Ok(())
}

async fn a_receiver_that_never_answers_within_the_timeout_is_retried(
    db: Backend,
) -> anyhow::Result<()> {
    let smtp = SmtpServer::start()?;
    let mut options = Options::new(&smtp);
    options.webhooks.webhook_timeout_seconds = 1;
    let app = start(fresh_database(db).await?, smtp, options).await?;
    let receiver = Receiver::start().await?;
    receiver.answer_next(&[Answer::Hang]);
    let (owner, org) = organisation(&app, "owner@slow.example", "Slow Systems").await?;
    webhook(&app, &owner, &org, &receiver.url(), &["PLEDGE_MADE"]).await?;
    app.pledge_id(&owner, &org, json!({})).await?;

    app.drain().await?;
    app.drain_as_of(later()).await?;
    receiver.accepted_at_least(1)?;
    let all = receiver.all();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].answer, Answer::Hang);
    assert_eq!(all[0].id, all[1].id);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_attempts WHERE status_code IS NULL AND error LIKE 'no answer within 1 s%'")
            .await?,
        1,
        "the timed-out attempt is recorded as such"
    );
    Ok(())
}

async fn a_server_killed_mid_delivery_resumes_on_restart_without_a_duplicate(
    db: Backend,
) -> anyhow::Result<()> {
    let smtp = SmtpServer::start()?;
    let mut options = Options::new(&smtp);
    // A dead server's claims lapse after the lease (the timeout and five seconds). The timeout
    // is long enough that the deliveries are still in flight when the server is killed.
    options.webhooks.webhook_timeout_seconds = 3;
    options.webhooks.webhook_lease_seconds = 1;
    // The first server's own worker loop is mid-delivery when the process dies.
    options.background_loops = true;
    let database_url = fresh_database(db).await?;
    let first = start(database_url.clone(), smtp.clone(), options.clone()).await?;
    let receiver = Receiver::start().await?;
    receiver.answer_always(Answer::Hang);
    let (owner, org) = organisation(&first, "owner@killed.example", "Killed Mid-Flight").await?;
    webhook(&first, &owner, &org, &receiver.url(), &["PLEDGE_MADE"]).await?;
    for n in 0..5 {
        first
            .pledge_id(&owner, &org, json!({ "title": format!("Pledge {n}") }))
            .await?;
    }
    // The server is in the middle of deliveries when it dies.
    receiver.wait_for_requests(1).await?;
    assert!(
        first
            .count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'SENDING'")
            .await?
            >= 1
    );
    first.kill();
    receiver.answer_always(Answer::Status(200));

    // Once the dead server's leases have run out, what it held is taken over.
    options.background_loops = false;
    let second = start(database_url, smtp, options).await?;
    second.drain_as_of(later()).await?;
    let accepted = receiver.accepted_at_least(5)?;
    let accepted_after = receiver.accepted();
    assert_eq!(accepted_after.len(), 5, "each event accepted once");
    let ids: HashSet<&str> = accepted.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 5);
    let titles: HashSet<String> = accepted
        .iter()
        .map(|r| {
            r.json()["data"]["pledge"]["title"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(titles.len(), 5);
    Ok(())
}

async fn a_rotated_secret_keeps_signing_beside_the_new_one(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let receiver = Receiver::start().await?;
    let (owner, org) = organisation(&app, "owner@rotate.example", "Rotating Keys").await?;
    let (id, old) = webhook(&app, &owner, &org, &receiver.url(), &["PLEDGE_MADE"]).await?;
    let rotated = app
        .gql(
            Some(&owner),
            "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret webhook { id } } }",
            json!({ "id": id }),
        )
        .await?
        .ok()?;
    let new = rotated["rotateWebhookSecret"]["secret"]
        .as_str()
        .context("no secret")?
        .to_owned();
    assert_ne!(new, old);
    assert!(new.starts_with("whsec_"));
    app.pledge_id(&owner, &org, json!({})).await?;
    app.drain().await?;
    let received = receiver.accepted_at_least(1)?;
    assert_eq!(received[0].signature.split(' ').count(), 2);
    verify_with_node(&new, &received).await?;
    verify_with_node(&old, &received).await?;

    // Once the overlap is over only the new secret signs.
    app.execute(
        "UPDATE webhook_endpoints SET previous_secret_expires_at = '2020-01-01 00:00:00+00:00'",
    )
    .await?;
    app.pledge_id(&owner, &org, json!({ "title": "After the overlap" }))
        .await?;
    app.drain().await?;
    let received = receiver.accepted_at_least(2)?;
    assert_eq!(received[1].signature.split(' ').count(), 1);
    verify_with_node(&new, &received[1..]).await?;
    assert!(verify_with_node(&old, &received[1..]).await.is_err());
    // Secrets never reach the logs.
    let logs = captured_logs();
    assert!(
        !logs.contains(&old) && !logs.contains(&new),
        "a secret was logged"
    );
    Ok(())
}

async fn an_endpoint_failing_every_delivery_for_a_day_is_switched_off_and_its_owners_told(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let receiver = Receiver::start().await?;
    receiver.answer_always(Answer::Status(503));
    let (owner, org) = organisation(&app, "owner@failing.example", "Failing Systems").await?;
    let (id, _) = webhook(&app, &owner, &org, &receiver.url(), &["PLEDGE_MADE"]).await?;
    app.pledge_id(&owner, &org, json!({})).await?;
    app.drain().await?;
    assert_eq!(receiver.all().len(), 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_endpoints WHERE active")
            .await?,
        1,
        "one failure does not switch it off"
    );
    // It has been failing since long ago: the next failure switches it off.
    app.execute("UPDATE webhook_endpoints SET failing_since = '2020-01-01 00:00:00+00:00'")
        .await?;
    app.drain_as_of(later()).await?;
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM webhook_endpoints WHERE NOT active AND deactivated_at IS NOT NULL"
        )
        .await?,
        1
    );
    let mails = app.mail_to("owner@failing.example", 2).await?;
    let told = mails
        .iter()
        .find(|m| m.subject.contains("switched off"))
        .context("no mail saying the webhook was switched off")?;
    assert!(told.text.contains(&receiver.url()), "{}", told.text);
    assert!(told.text.contains(&id));

    // Events while it is off are not queued; switching it back on delivers the next.
    let before = app.count("SELECT COUNT(*) FROM webhook_deliveries").await?;
    app.pledge_id(&owner, &org, json!({ "title": "While off" }))
        .await?;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_deliveries").await?,
        before
    );
    receiver.answer_always(Answer::Status(200));
    let on = app
        .gql(
            Some(&owner),
            "mutation($id: ID!) { updateWebhook(id: $id, input: { active: true }) { active deactivatedAt } }",
            json!({ "id": id }),
        )
        .await?
        .ok()?;
    assert_eq!(
        on["updateWebhook"],
        json!({ "active": true, "deactivatedAt": null })
    );
    app.pledge_id(&owner, &org, json!({ "title": "Back on" }))
        .await?;
    app.drain().await?;
    let accepted = receiver.accepted_at_least(1)?;
    assert_eq!(
        accepted[0].json()["data"]["pledge"]["title"],
        json!("Back on")
    );
    Ok(())
}

/// Options for a server that refuses private targets, as production does.
fn strict(smtp: &SmtpServer) -> Options {
    let mut options = Options::new(smtp);
    options.webhooks.webhook_allow_private_targets = false;
    options
}

async fn urls_on_loopback_private_and_link_local_addresses_are_refused_at_creation(
    db: Backend,
) -> anyhow::Result<()> {
    let smtp = SmtpServer::start()?;
    let app = start(fresh_database(db).await?, smtp.clone(), strict(&smtp)).await?;
    let (owner, org) = organisation(&app, "owner@ssrf.example", "Careful Council").await?;
    for url in [
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://10.0.0.7/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::ffff:127.0.0.1]/hook",
        "https://2130706433/hook",
        "http://hooks.example.org/plain-http",
    ] {
        let reply = create_webhook(&app, Some(&owner), &org, url, &["PLEDGE_MADE"]).await?;
        assert_eq!(
            reply.code(),
            Some("BAD_USER_INPUT"),
            "{url}: {:?}",
            reply.body
        );
        assert_eq!(reply.field(), Some("url"), "{url}");
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_endpoints").await?,
        0
    );
    // A public https URL is fine, and cannot be changed to a private one.
    let (id, _) = webhook(
        &app,
        &owner,
        &org,
        "https://hooks.example.org/gs",
        &["PLEDGE_MADE"],
    )
    .await?;
    let reply = app
        .gql(
            Some(&owner),
            "mutation($id: ID!) { updateWebhook(id: $id, input: { url: \"https://192.168.1.1/x\" }) { url } }",
            json!({ "id": id }),
        )
        .await?;
    assert_eq!(reply.code(), Some("BAD_USER_INPUT"));
    assert_eq!(reply.field(), Some("url"));
    // Bad events are named too.
    let reply = create_webhook(
        &app,
        Some(&owner),
        &org,
        "https://hooks.example.org/gs",
        &[],
    )
    .await?;
    assert_eq!(reply.field(), Some("events"));
    Ok(())
}

async fn a_name_resolving_to_loopback_is_refused_at_delivery(db: Backend) -> anyhow::Result<()> {
    let smtp = SmtpServer::start()?;
    let app = start(fresh_database(db).await?, smtp.clone(), strict(&smtp)).await?;
    let receiver = Receiver::start().await?;
    let (owner, org) = organisation(&app, "owner@dns.example", "Resolving Trust").await?;
    // A name is not resolved when it is saved; `localhost` resolves to loopback.
    let url = format!("https://localhost:{}/hook", receiver.address.port());
    webhook(&app, &owner, &org, &url, &["PLEDGE_MADE"]).await?;
    app.pledge_id(&owner, &org, json!({})).await?;
    app.drain().await?;
    assert!(
        app.count(
            "SELECT COUNT(*) FROM webhook_attempts WHERE error LIKE '%resolves only to loopback%'"
        )
        .await?
            >= 1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_attempts WHERE status_code IS NOT NULL")
            .await?,
        0,
        "nothing answered"
    );
    assert!(receiver.all().is_empty());
    Ok(())
}

async fn a_private_address_saved_while_allowed_is_refused_at_delivery_once_the_setting_is_off(
    db: Backend,
) -> anyhow::Result<()> {
    let smtp = SmtpServer::start()?;
    let database_url = fresh_database(db).await?;
    let lenient = start(database_url.clone(), smtp.clone(), Options::new(&smtp)).await?;
    let receiver = Receiver::start().await?;
    let (owner, org) = organisation(&lenient, "owner@toggle.example", "Toggled Trust").await?;
    webhook(&lenient, &owner, &org, &receiver.url(), &["PLEDGE_MADE"]).await?;
    lenient.stop().await?;

    let app = start(database_url, smtp.clone(), strict(&smtp)).await?;
    app.pledge_id(&owner, &org, json!({})).await?;
    app.drain().await?;
    assert!(
        app.count("SELECT COUNT(*) FROM webhook_attempts WHERE error LIKE 'the URL must%'")
            .await?
            >= 1
    );
    assert!(
        receiver.all().is_empty(),
        "the receiver on 127.0.0.1 was reached"
    );
    Ok(())
}

async fn a_redirect_is_never_followed(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let receiver = Receiver::start().await?;
    receiver.answer_next(&[Answer::Redirect]);
    let (owner, org) = organisation(&app, "owner@redirect.example", "Redirected").await?;
    webhook(&app, &owner, &org, &receiver.url(), &["PLEDGE_MADE"]).await?;
    app.pledge_id(&owner, &org, json!({})).await?;
    // The 307 is a failed attempt, retried at the same URL.
    app.drain().await?;
    app.drain_as_of(later()).await?;
    let accepted = receiver.accepted_at_least(1)?;
    let all = receiver.all();
    assert_eq!(
        all.len(),
        2,
        "{:?}",
        all.iter().map(|r| &r.id).collect::<Vec<_>>()
    );
    assert_eq!(all[0].answer, Answer::Redirect);
    assert!(
        all.iter().all(|r| !r.id.starts_with("followed:")),
        "the redirect was followed"
    );
    assert_eq!(accepted[0].id, all[0].id);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_attempts WHERE status_code = 307")
            .await?,
        1
    );
    Ok(())
}

async fn webhooks_are_managed_only_by_the_organisations_owners_and_its_own_tokens(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let receiver = Receiver::start().await?;
    let (owner, org) = organisation(&app, "owner@auth.example", "Guarded Org").await?;
    let member = app.add_member(&owner, &org, "member@auth.example").await?;
    let (stranger, other_org) = organisation(&app, "stranger@auth.example", "Other Org").await?;
    let other_token = app.api_token(&stranger, &other_org).await?;
    let own_token = app.api_token(&owner, &org).await?;

    // The organisation's own token manages its webhooks.
    let made = create_webhook(
        &app,
        Some(&own_token),
        &org,
        &receiver.url(),
        &["PLEDGE_MADE"],
    )
    .await?
    .ok()?;
    let webhook_id = made["createWebhook"]["webhook"]["id"]
        .as_str()
        .context("no id")?
        .to_owned();
    let slug = made["createWebhook"]["webhook"]["organisation"]["slug"]
        .as_str()
        .context("no slug")?
        .to_owned();
    app.pledge_id(&owner, &org, json!({})).await?;
    app.drain().await?;
    receiver.accepted_at_least(1)?;
    let list = "query($slug: String!) { organisation(slug: $slug) { webhooks { id url events active description deliveries { edges { node { id status attemptCount } } } } } }";
    let before = app
        .gql(Some(&owner), list, json!({ "slug": slug }))
        .await?
        .ok()?;
    let delivery_id = before["organisation"]["webhooks"][0]["deliveries"]["edges"][0]["node"]["id"]
        .as_str()
        .context("no delivery")?
        .to_owned();
    assert_eq!(
        app.gql(Some(&own_token), list, json!({ "slug": slug }))
            .await?
            .ok()?,
        before
    );
    let secret_sql = "SELECT COUNT(*) FROM webhook_endpoints WHERE previous_secret IS NULL";

    let attempts: [(&str, Value); 6] = [
        (
            CREATE,
            json!({ "input": { "organisationId": org, "url": receiver.url(), "events": ["PLEDGE_MADE"] } }),
        ),
        (
            "mutation($id: ID!) { updateWebhook(id: $id, input: { url: \"https://evil.example/\", active: false }) { id } }",
            json!({ "id": webhook_id }),
        ),
        (
            "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }",
            json!({ "id": webhook_id }),
        ),
        (
            "mutation($id: ID!) { deleteWebhook(id: $id) }",
            json!({ "id": webhook_id }),
        ),
        (
            "mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { id } }",
            json!({ "id": delivery_id }),
        ),
        (list, json!({ "slug": slug })),
    ];
    for (who, credential, code) in [
        (
            "a member who is not an owner",
            Some(member.as_str()),
            "FORBIDDEN",
        ),
        (
            "another organisation's owner",
            Some(stranger.as_str()),
            "FORBIDDEN",
        ),
        (
            "another organisation's token",
            Some(other_token.as_str()),
            "FORBIDDEN",
        ),
        ("nobody", None, "UNAUTHENTICATED"),
    ] {
        for (query, variables) in &attempts {
            let reply = app.gql(credential, query, variables.clone()).await?;
            assert_eq!(reply.code(), Some(code), "{who}: {query}: {:?}", reply.body);
            assert!(
                !reply.body.to_string().contains("whsec_"),
                "{who} saw a secret"
            );
        }
    }
    // Nothing changed.
    assert_eq!(
        app.gql(Some(&owner), list, json!({ "slug": slug }))
            .await?
            .ok()?,
        before
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_endpoints").await?,
        1
    );
    assert_eq!(
        app.count(secret_sql).await?,
        1,
        "the secret was not rotated"
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'DELIVERED' AND attempts = 1"
        )
        .await?,
        1,
        "the delivery was not sent again"
    );
    app.drain().await?;
    assert_eq!(receiver.all().len(), 1);

    // The owner may do each of them.
    let redelivered = app
        .gql(
            Some(&owner),
            "mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { id messageId status } }",
            json!({ "id": delivery_id }),
        )
        .await?
        .ok()?;
    assert_eq!(redelivered["redeliverWebhook"]["status"], json!("PENDING"));
    app.drain().await?;
    let again = receiver.accepted_at_least(2)?;
    assert_eq!(
        again[0].id, again[1].id,
        "a redelivery keeps its webhook-id"
    );
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { deleteWebhook(id: $id) }",
        json!({ "id": webhook_id }),
    )
    .await?
    .ok()?;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_endpoints").await?,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_deliveries").await?,
        0
    );
    Ok(())
}

async fn a_receiver_answering_binary_is_recorded_and_not_sent_again(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let receiver = Receiver::start().await?;
    // A NUL byte, which PostgreSQL text cannot hold, and bytes that are not UTF-8.
    receiver.answer_always(Answer::Body(200, b"ok\0\xff\xfe\x01binary"));
    let (owner, org) = organisation(&app, "owner@binary.example", "Binary Answers").await?;
    webhook(&app, &owner, &org, &receiver.url(), &["PLEDGE_MADE"]).await?;
    app.pledge_id(&owner, &org, json!({})).await?;
    app.drain().await?;
    receiver.accepted_at_least(1)?;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'DELIVERED'")
            .await?,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_attempts WHERE status_code = 200 AND response_excerpt LIKE 'ok%binary'")
            .await?,
        1,
        "the attempt is recorded with a readable excerpt"
    );
    app.drain_as_of(later()).await?;
    assert_eq!(receiver.all().len(), 1, "sent once");
    Ok(())
}

async fn a_2xx_whose_body_never_ends_is_a_delivery_not_a_timeout(
    db: Backend,
) -> anyhow::Result<()> {
    let smtp = SmtpServer::start()?;
    let mut options = Options::new(&smtp);
    options.webhooks.webhook_timeout_seconds = 1;
    let app = start(fresh_database(db).await?, smtp, options).await?;
    let receiver = Receiver::start().await?;
    // The receiver accepted the event within the timeout; only its body is still coming.
    receiver.answer_always(Answer::EndlessBody);
    let (owner, org) = organisation(&app, "owner@endless.example", "Endless Answers").await?;
    webhook(&app, &owner, &org, &receiver.url(), &["PLEDGE_MADE"]).await?;
    app.pledge_id(&owner, &org, json!({})).await?;
    app.drain().await?;
    assert!(app.count("SELECT COUNT(*) FROM webhook_attempts").await? >= 1);
    // Late enough for any retry to have come.
    app.drain_as_of(later()).await?;
    assert_eq!(receiver.all().len(), 1, "the accepted event was sent again");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'DELIVERED' AND last_status_code = 200")
            .await?,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_attempts WHERE response_excerpt = 'accepted'")
            .await?,
        1,
        "what came of the body is kept"
    );
    Ok(())
}

async fn absurd_webhook_input_is_refused_naming_the_field(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let (owner, org) = organisation(&app, "owner@absurd.example", "Absurd Inputs").await?;
    let (id, _) = webhook(
        &app,
        &owner,
        &org,
        "https://hooks.example.org/a",
        &["PLEDGE_MADE"],
    )
    .await?;
    let long_url = format!("https://hooks.example.org/{}", "x".repeat(3_000));
    let long_text = "d".repeat(600);
    let many: Vec<&str> = std::iter::repeat_n("PLEDGE_MADE", 10_000).collect();
    let create = |url: &str, events: Value, description: &str| {
        json!({ "input": { "organisationId": org, "url": url, "events": events,
            "description": description } })
    };
    for (variables, field) in [
        (create(&long_url, json!(["PLEDGE_MADE"]), ""), "url"),
        (
            create("https://hooks.example.org/", json!([]), ""),
            "events",
        ),
        (
            create(
                "https://hooks.example.org/",
                json!(["PLEDGE_MADE"]),
                &long_text,
            ),
            "description",
        ),
        (
            create(
                "https://hooks.example.org/",
                json!(["PLEDGE_MADE"]),
                "a\u{0}b",
            ),
            "description",
        ),
        (
            json!({ "input": { "organisationId": "not-an-id", "url": "https://hooks.example.org/",
            "events": ["PLEDGE_MADE"] } }),
            "organisationId",
        ),
    ] {
        let reply = app.gql(Some(&owner), CREATE, variables).await?;
        assert_eq!(
            reply.code(),
            Some("BAD_USER_INPUT"),
            "{field}: {:?}",
            reply.body
        );
        assert_eq!(reply.field(), Some(field), "{:?}", reply.body);
    }
    // Ten thousand copies of one event are that one event.
    let made = create_webhook(
        &app,
        Some(&owner),
        &org,
        "https://hooks.example.org/b",
        &many,
    )
    .await?
    .ok()?;
    assert_eq!(
        made["createWebhook"]["webhook"]["events"],
        json!(["PLEDGE_MADE"])
    );
    for (query, variables, field) in [
        (
            "mutation($id: ID!) { updateWebhook(id: $id, input: { active: false }) { id } }",
            json!({ "id": "nope" }),
            "id",
        ),
        (
            "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }",
            json!({ "id": "nope" }),
            "id",
        ),
        (
            "mutation($id: ID!) { deleteWebhook(id: $id) }",
            json!({ "id": "nope" }),
            "id",
        ),
        (
            "mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { id } }",
            json!({ "id": "nope" }),
            "deliveryId",
        ),
        (
            "mutation($id: ID!) { updateWebhook(id: $id, input: { description: \"a\\u0001\" }) { id } }",
            json!({ "id": id }),
            "description",
        ),
        (
            "mutation($id: ID!) { updateWebhook(id: $id, input: { events: [] }) { id } }",
            json!({ "id": id }),
            "events",
        ),
    ] {
        let reply = app.gql(Some(&owner), query, variables).await?;
        assert_eq!(
            reply.code(),
            Some("BAD_USER_INPUT"),
            "{query}: {:?}",
            reply.body
        );
        assert_eq!(reply.field(), Some(field), "{query}: {:?}", reply.body);
    }
    for (first, after) in [
        (json!(-1), json!(null)),
        (json!(1_000_000), json!(null)),
        (json!(5), json!("garbage")),
    ] {
        let reply = app
            .gql(
                Some(&owner),
                "query($slug: String!, $first: Int, $after: String) { organisation(slug: $slug) { webhooks { deliveries(first: $first, after: $after) { totalCount } } } }",
                json!({ "slug": "absurd-inputs", "first": first, "after": after }),
            )
            .await?;
        assert_eq!(
            reply.code(),
            Some("BAD_USER_INPUT"),
            "{first} {after}: {:?}",
            reply.body
        );
    }
    Ok(())
}

async fn a_webhook_deleted_while_a_delivery_is_in_flight_ends_it_quietly(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let receiver = Receiver::start().await?;
    receiver.answer_always(Answer::Held);
    let (owner, org) = organisation(&app, "owner@deleted.example", "Deleted Midway").await?;
    let (id, _) = webhook(&app, &owner, &org, &receiver.url(), &["PLEDGE_MADE"]).await?;
    app.pledge_id(&owner, &org, json!({})).await?;
    let background = app.background();
    let draining = tokio::spawn(async move { background.drain().await });
    let sent = receiver.wait_for_requests(1).await?;
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { deleteWebhook(id: $id) }",
        json!({ "id": id }),
    )
    .await?
    .ok()?;
    // The receiver answers after the webhook and its deliveries are gone.
    receiver.release();
    draining.await??;
    let delivery = uuid::Uuid::parse_str(sent[0].id.trim_start_matches("msg_"))?.to_string();
    let logs = captured_logs();
    let errors: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains(&delivery) && line.contains("ERROR"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM webhook_attempts").await?, 0);
    assert_eq!(receiver.all().len(), 1);
    Ok(())
}

/// Several servers share a database on PostgreSQL only (SQLite's writer lock is per process).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claimed_delivery_is_sent_within_its_lease_so_a_second_server_never_sends_it_too()
-> anyhow::Result<()> {
    let smtp = SmtpServer::start()?;
    let mut options = Options::new(&smtp);
    // The shortest lease allowed: the timeout and five seconds, 8 s. Every answer comes within
    // the timeout, yet a server holding more deliveries than it sends at once would still be
    // sending some of them when its lease runs out.
    options.webhooks.webhook_timeout_seconds = 3;
    options.webhooks.webhook_lease_seconds = 1;
    let database_url = fresh_database(Backend::Postgres).await?;
    let first = start(database_url.clone(), smtp.clone(), options.clone()).await?;
    let second = start(database_url, smtp, options).await?;
    let receiver = Receiver::start().await?;
    // Both servers' workers claim side by side.
    let both_drain = async || tokio::try_join!(first.drain(), second.drain()).map(|_| ());
    let (owner, org) = organisation(&first, "owner@lease.example", "Leased Trust").await?;
    webhook(&first, &owner, &org, &receiver.url(), &["PLEDGE_MADE"]).await?;
    const EVENTS: i64 = 32;
    for n in 0..EVENTS {
        first
            .pledge_id(&owner, &org, json!({ "title": format!("Pledge {n}") }))
            .await?;
    }
    let delivered = "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'DELIVERED'";
    both_drain().await?;
    assert_eq!(first.count(delivered).await?, EVENTS);

    // All of them due again at once (as after an outage), to a receiver that takes most of the
    // timeout to answer each.
    receiver.forget();
    receiver.answer_always(Answer::Slow(2_800));
    second
        .execute("UPDATE webhook_deliveries SET status = 'PENDING', next_attempt_at = created_at")
        .await?;
    both_drain().await?;
    let accepted = receiver.accepted_at_least(EVENTS as usize)?;
    assert_eq!(first.count(delivered).await?, EVENTS);
    let all = receiver.all();
    let ids: HashSet<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), EVENTS as usize);
    assert_eq!(all.len(), EVENTS as usize, "a delivery was sent twice");
    assert_eq!(accepted.len(), EVENTS as usize);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_postgres_database_deliver_each_of_200_events_once() -> anyhow::Result<()>
{
    let smtp = SmtpServer::start()?;
    let options = Options::new(&smtp);
    let database_url = fresh_database(Backend::Postgres).await?;
    let first = start(database_url.clone(), smtp.clone(), options.clone()).await?;
    let second = start(database_url, smtp, options).await?;
    let receiver = Receiver::start().await?;
    let (owner, org) = organisation(&first, "owner@many.example", "Many Events").await?;
    webhook(&first, &owner, &org, &receiver.url(), &["PLEDGE_MADE"]).await?;
    let servers = [&first, &second];
    let made: Vec<anyhow::Result<String>> = futures::stream::iter(0..200)
        .map(|n| {
            let server = servers[n % 2];
            let owner = owner.clone();
            let org = org.clone();
            async move {
                server
                    .pledge_id(&owner, &org, json!({ "title": format!("Pledge {n}") }))
                    .await
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for pledge in made {
        pledge?;
    }
    // Both servers' workers claim side by side until nothing is due.
    tokio::try_join!(first.drain(), second.drain())?;
    let accepted = receiver.accepted_at_least(200)?;
    assert_eq!(receiver.all().len(), 200, "requests received");
    let ids: HashSet<&str> = accepted.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 200);
    assert_eq!(
        first
            .count("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'DELIVERED' AND attempts = 1")
            .await?,
        200
    );
    Ok(())
}
