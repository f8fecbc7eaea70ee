//! Digests: due on each person's own schedule, built from what changed, delivered once with
//! both parts and a one-click unsubscribe, and never twice for one period.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use groundswell_domain::{
    changes::Change,
    digests::{Digest, Period, PeriodDigest, sections},
    people::DigestFrequency,
};

use crate::{helpers::*, on_both_databases};

on_both_databases!(
    a_due_digest_arrives_once_with_gatherings_and_a_working_one_click_unsubscribe,
    a_person_made_convenor_after_signing_in_gets_weekly_digests_unless_they_chose,
    digest_preview_shows_the_signed_in_person_their_next_digest,
    only_admins_send_due_digests,
    recipients_in_three_time_zones_get_each_digest_once_across_both_clock_changes,
    a_period_with_nothing_to_tell_is_claimed_but_sent_only_to_those_who_asked,
    the_command_line_queues_due_digests_filtered_to_the_changes_of_interest,
    a_digest_the_mail_server_rejects_for_good_is_marked_failed_and_shown_to_admins,
    a_digest_holds_the_pledges_updates_and_coalitions_of_the_changes_of_interest_only,
    owners_of_a_quiet_pledge_are_reminded_once_each_quiet_period_until_they_report,
    a_run_that_finds_one_digest_already_claimed_still_queues_the_others_once,
    a_periods_news_cut_to_some_changes_equals_the_digest_built_for_those_changes,
    one_click_unsubscribe_needs_no_cookie_and_the_pages_button_needs_its_csrf_token,
);

/// The unsubscribe address (path only) in the digest mailed to a new convenor, and their
/// session.
async fn convenors_unsubscribe_path(app: &TestApp) -> anyhow::Result<(String, String)> {
    let admin = admin(app).await?;
    let convenor = app.convenor("quiet@example.org").await?;
    app.gathering(&convenor, json!({ "title": "Hull gathering" }))
        .await?;
    send_due(app, &admin, Utc::now() + chrono::Duration::days(8)).await?;
    app.drain().await?;
    let mut found = digests_to(app, "quiet@example.org");
    let digest = found.pop().ok_or_else(|| anyhow::anyhow!("no digest"))?;
    let header = digest.list_unsubscribe.unwrap_or_default();
    let path = header
        .strip_prefix("<http://groundswell.test")
        .and_then(|rest| rest.strip_suffix('>'))
        .ok_or_else(|| anyhow::anyhow!("List-Unsubscribe is {header:?}"))?
        .to_owned();
    Ok((path, convenor))
}

async fn one_click_unsubscribe_needs_no_cookie_and_the_pages_button_needs_its_csrf_token(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let (path, convenor) = convenors_unsubscribe_path(&app).await?;
    assert_eq!(frequency(&app, &convenor).await?, "WEEKLY");

    // The page is an attendee page, with an easy-read version.
    let page = app.http.get(app.url(&path)).send().await?;
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = page.text().await?;
    assert!(
        html.contains("/static/pages.css") && !html.contains("<style"),
        "{html}"
    );
    let easy = app
        .http
        .get(app.url(&format!("{path}?read=easy")))
        .send()
        .await?
        .text()
        .await?;
    assert!(easy.contains("<body class=\"easy\">"), "{easy}");
    assert!(easy.contains("/static/icons/email.svg"), "{easy}");

    // The page's own button is a form with a CSRF token: sent without its cookie, refused.
    let (cookie, csrf) = crate::sign_in::page_form(&app, &path).await?;
    let refused = app
        .http
        .post(app.url(&path))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await?;
    assert_eq!(refused.status().as_u16(), 403);
    assert_eq!(frequency(&app, &convenor).await?, "WEEKLY");

    // A mail client's one-click POST carries no cookie and no CSRF token, and works.
    let done = app
        .http
        .post(app.url(&path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await?;
    assert_eq!(done.status().as_u16(), 200);
    assert!(done.headers().get("content-security-policy").is_some());
    assert!(done.text().await?.contains("Your digests are stopped"));
    assert_eq!(frequency(&app, &convenor).await?, "NEVER");

    // The button, with its cookie and token, stops them too.
    app.gql(
        Some(&convenor),
        "mutation { updateDigestPreferences(input: { frequency: WEEKLY }) { id } }",
        json!({}),
    )
    .await?
    .ok()?;
    assert_eq!(frequency(&app, &convenor).await?, "WEEKLY");
    let again = app
        .http
        .post(app.url(&path))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await?;
    assert_eq!(again.status().as_u16(), 200);
    assert!(again.text().await?.contains("Your digests are stopped"));
    assert_eq!(frequency(&app, &convenor).await?, "NEVER");
    Ok(())
}

async fn owners_of_a_quiet_pledge_are_reminded_once_each_quiet_period_until_they_report(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let admin = admin(&app).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Quiet Folk").await?;
    let pledge = app
        .pledge_id(&owner, &org, json!({ "title": "Homes for all" }))
        .await?;
    // Last heard of 61 days ago: no client can move time back.
    let long_ago = (Utc::now() - chrono::Duration::days(61)).to_rfc3339();
    app.execute(&format!(
        "UPDATE pledges SET last_activity_at = '{long_ago}', created_at = '{long_ago}'"
    ))
    .await?;
    let reminders = |app: &TestApp| {
        app.smtp
            .messages()
            .into_iter()
            .filter(|m| m.to == "owner@example.org" && m.subject.starts_with("How is"))
            .collect::<Vec<_>>()
    };

    send_due(&app, &admin, Utc::now()).await?;
    let first = app.mail_to("owner@example.org", 2).await?;
    let reminder = first
        .iter()
        .find(|m| m.subject == "How is \"Homes for all\" going?")
        .ok_or_else(|| anyhow::anyhow!("no reminder"))?;
    assert!(reminder.text.contains("61 days"), "{}", reminder.text);
    assert!(reminder.text.contains("http://groundswell.test/graphql"));
    assert!(!reminder.html.is_empty());

    // Asked again within the same quiet period: no second reminder.
    send_due(&app, &admin, Utc::now()).await?;
    app.drain().await?;
    assert_eq!(reminders(&app).len(), 1);

    // Another quiet period later, a second reminder.
    send_due(&app, &admin, Utc::now() + chrono::Duration::days(60)).await?;
    app.drain().await?;
    assert_eq!(reminders(&app).len(), 2);

    // News ends the quiet spell: no more reminders for it.
    app.post_update(
        Some(&owner),
        json!({ "pledgeId": pledge, "body": "Three families moved home.", "signal": "ON_TRACK" }),
    )
    .await?
    .ok()?;
    send_due(&app, &admin, Utc::now() + chrono::Duration::days(30)).await?;
    app.drain().await?;
    assert_eq!(reminders(&app).len(), 2);
    Ok(())
}

async fn admin(app: &TestApp) -> anyhow::Result<String> {
    app.grant_role("admin@example.org", "ADMIN").await?;
    app.sign_in("admin@example.org").await
}

async fn send_due(app: &TestApp, admin: &str, as_of: DateTime<Utc>) -> anyhow::Result<i64> {
    let data = app
        .gql(
            Some(admin),
            "mutation($asOf: DateTime) { sendDueDigests(asOf: $asOf) }",
            json!({ "asOf": as_of.to_rfc3339() }),
        )
        .await?
        .ok()?;
    data["sendDueDigests"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no count"))
}

async fn frequency(app: &TestApp, session: &str) -> anyhow::Result<Value> {
    let data = app
        .gql(
            Some(session),
            "{ me { digestPreferences { frequency } } }",
            json!({}),
        )
        .await?
        .ok()?;
    Ok(data["me"]["digestPreferences"]["frequency"].clone())
}

fn digests_to(app: &TestApp, to: &str) -> Vec<Mail> {
    app.smtp
        .messages()
        .into_iter()
        .filter(|m| m.to == to && m.subject.contains("digest"))
        .collect()
}

async fn a_due_digest_arrives_once_with_gatherings_and_a_working_one_click_unsubscribe(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let admin = admin(&app).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let full = app
        .gathering(
            &convenor,
            json!({ "title": "Leeds gathering", "inPersonCapacity": 1 }),
        )
        .await?;
    app.gathering(
        &convenor,
        json!({ "title": "Bristol gathering", "inPersonCapacity": 10 }),
    )
    .await?;
    let first = app.sign_in("first@example.org").await?;
    let second = app.sign_in("second@example.org").await?;
    app.register(&first, &full["id"], json!({})).await?.ok()?;
    app.register(&second, &full["id"], json!({})).await?.ok()?;

    // Convenors and admins hear weekly by default; attendees hear nothing.
    let as_of = Utc::now() + chrono::Duration::days(8);
    assert_eq!(send_due(&app, &admin, as_of).await?, 2);
    assert_eq!(
        send_due(&app, &admin, as_of).await?,
        0,
        "a second claim is a no-op"
    );

    let mails = app.mail_to("convenor@example.org", 2).await?;
    let mut digest: Vec<Mail> = mails
        .into_iter()
        .filter(|m| m.subject.contains("digest"))
        .collect();
    assert_eq!(digest.len(), 1);
    let digest = digest.remove(0);
    assert!(
        digest.text.contains("UPCOMING GATHERINGS"),
        "{}",
        digest.text
    );
    assert!(digest.text.contains("Leeds gathering"));
    assert!(
        digest.text.contains("Full; confirmed: 1; waitlist: 1"),
        "{}",
        digest.text
    );
    assert!(digest.text.contains("Bristol gathering"));
    assert!(
        digest
            .text
            .contains("Places left: 10 in person; confirmed: 0; waitlist: 0")
    );
    assert!(
        digest
            .text
            .contains("Living in the place we call home: 0 pledges (0)")
    );
    assert!(digest.html.contains("Leeds gathering"));
    assert!(digest.html.contains("<table"));
    assert!(!digest.html.contains("<script"));
    assert!(!digest.html.contains("<img"));

    let header = digest.list_unsubscribe.clone().unwrap_or_default();
    assert_eq!(
        digest.list_unsubscribe_post.as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let url = header
        .strip_prefix("<http://groundswell.test")
        .and_then(|rest| rest.strip_suffix('>'))
        .ok_or_else(|| anyhow::anyhow!("List-Unsubscribe is {header:?}"))?
        .to_owned();
    assert!(url.starts_with("/unsubscribe/"));
    assert!(
        digest
            .text
            .contains(&format!("http://groundswell.test{url}"))
    );

    // The page a scanner or a person opens changes nothing; its button does.
    let page = app.http.get(app.url(&url)).send().await?;
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await?.contains("<button"));
    assert_eq!(frequency(&app, &convenor).await?, "WEEKLY");
    let forged = format!("{}x", &url[..url.len() - 1]);
    let refused = app
        .http
        .post(app.url(&forged))
        .body("List-Unsubscribe=One-Click")
        .send()
        .await?;
    assert_eq!(refused.status().as_u16(), 404);
    assert_eq!(frequency(&app, &convenor).await?, "WEEKLY");
    let done = app
        .http
        .post(app.url(&url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await?;
    assert_eq!(done.status().as_u16(), 200);
    assert_eq!(frequency(&app, &convenor).await?, "NEVER");

    // A week later only the admin is due.
    assert_eq!(
        send_due(&app, &admin, as_of + chrono::Duration::days(7)).await?,
        1
    );
    app.mail_to("admin@example.org", 3).await?;
    assert_eq!(digests_to(&app, "convenor@example.org").len(), 1);
    assert_eq!(digests_to(&app, "admin@example.org").len(), 2);
    Ok(())
}

async fn a_person_made_convenor_after_signing_in_gets_weekly_digests_unless_they_chose(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let early = app.sign_in("early@example.org").await?;
    assert_eq!(frequency(&app, &early).await?, "NEVER");
    app.grant_role("early@example.org", "CONVENOR").await?;
    assert_eq!(frequency(&app, &early).await?, "WEEKLY");

    let chooser = app.sign_in("chooser@example.org").await?;
    app.gql(
        Some(&chooser),
        "mutation { updateDigestPreferences(input: { frequency: NEVER, hour: 9 }) { id } }",
        json!({}),
    )
    .await?
    .ok()?;
    app.grant_role("chooser@example.org", "CONVENOR").await?;
    assert_eq!(frequency(&app, &chooser).await?, "NEVER");
    Ok(())
}

async fn digest_preview_shows_the_signed_in_person_their_next_digest(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    app.gathering(&convenor, json!({ "title": "Preston gathering" }))
        .await?;
    let query = "{ digestPreview { subject text html nextSendAt isEmpty gatheringCount periodStart periodEnd } }";
    let data = app.gql(Some(&convenor), query, json!({})).await?.ok()?;
    let preview = &data["digestPreview"];
    assert!(
        preview["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Preston gathering")
    );
    assert!(
        preview["html"]
            .as_str()
            .unwrap_or_default()
            .contains("Preston gathering")
    );
    assert_eq!(preview["gatheringCount"], 1);
    assert_eq!(preview["isEmpty"], false);
    assert!(preview["nextSendAt"].is_string());
    let anonymous = app.gql(None, query, json!({})).await?;
    assert_eq!(anonymous.code(), Some("UNAUTHENTICATED"));
    Ok(())
}

async fn only_admins_send_due_digests(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let reply = app
        .gql(Some(&convenor), "mutation { sendDueDigests }", json!({}))
        .await?;
    assert_eq!(reply.code(), Some("FORBIDDEN"));
    let reply = app
        .gql(None, "mutation { sendDueDigests }", json!({}))
        .await?;
    assert_eq!(reply.code(), Some("UNAUTHENTICATED"));
    Ok(())
}

fn utc(text: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(text)?.with_timezone(&Utc))
}

fn dates(from: &str, days: i64) -> anyhow::Result<Vec<String>> {
    let start = chrono::NaiveDate::parse_from_str(from, "%Y-%m-%d")?;
    Ok((0..days)
        .map(|n| (start + chrono::Duration::days(n)).to_string())
        .collect())
}

/// The scheduler's clock is `asOf`: stepping it an hour at a time through March and
/// October-November 2027 (Europe/London and America/New_York change on different Sundays;
/// Asia/Kolkata never does), each recipient gets exactly the digests of their own local slots,
/// each once. Slots are at 01:00 local, inside the hours the clocks skip or repeat.
async fn recipients_in_three_time_zones_get_each_digest_once_across_both_clock_changes(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let admin = admin(&app).await?;
    // The admin hears nothing, to keep the counts to the recipients below.
    app.gql(
        Some(&admin),
        "mutation { updateDigestPreferences(input: { frequency: NEVER }) { id } }",
        json!({}),
    )
    .await?
    .ok()?;
    let zones = ["Europe/London", "America/New_York", "Asia/Kolkata"];
    let frequencies = [("DAILY", 1), ("WEEKLY", 7), ("MONTHLY", 1)];
    let mut people = Vec::new();
    for zone in zones {
        for (frequency, weekday) in frequencies {
            let email = format!(
                "{}-{}@example.org",
                frequency.to_lowercase(),
                zone.replace('/', "-").to_lowercase()
            );
            let session = app.sign_in(&email).await?;
            app.gql(
                Some(&session),
                "mutation($input: DigestPreferencesInput!) { updateDigestPreferences(input: $input) { id } }",
                json!({ "input": { "frequency": frequency, "weekday": weekday, "hour": 1,
                        "timeZone": zone, "sendEmpty": true } }),
            )
            .await?
            .ok()?;
            people.push((email, frequency));
        }
    }
    let windows = [
        ("2027-03-10T12:00:00Z", "2027-04-06T12:00:00Z"),
        ("2027-10-28T12:00:00Z", "2027-11-09T12:00:00Z"),
    ];
    let mut queued = 0;
    for (from, to) in windows {
        let (mut as_of, end) = (utc(from)?, utc(to)?);
        while as_of < end {
            queued += send_due(&app, &admin, as_of).await?;
            as_of += chrono::Duration::hours(1);
        }
    }
    let mut expected_daily = dates("2027-03-10", 28)?;
    expected_daily.extend(dates("2027-10-28", 13)?);
    let expected = |frequency: &str| -> Vec<String> {
        let keys: Vec<String> = match frequency {
            "DAILY" => expected_daily.clone(),
            "WEEKLY" => [
                "2027-03-07",
                "2027-03-14",
                "2027-03-21",
                "2027-03-28",
                "2027-04-04",
                "2027-10-24",
                "2027-10-31",
                "2027-11-07",
            ]
            .map(str::to_owned)
            .to_vec(),
            _ => ["2027-03-01", "2027-04-05", "2027-10-04", "2027-11-01"]
                .map(str::to_owned)
                .to_vec(),
        };
        keys.into_iter()
            .map(|d| format!("{frequency}:{d}"))
            .collect()
    };
    let conn = app.database().await?;
    let mut total = 0;
    for (email, frequency) in &people {
        let rows = sea_orm::ConnectionTrait::query_all_raw(
            &conn,
            sea_orm::Statement::from_string(
                conn.get_database_backend(),
                format!(
                    "SELECT d.period_key FROM digests d JOIN people p ON p.id = d.person_id \
                     JOIN outbox o ON o.id = d.outbox_id \
                     WHERE p.email = '{email}' ORDER BY d.period_end"
                ),
            ),
        )
        .await?;
        let keys: Vec<String> = rows
            .iter()
            .map(|row| row.try_get_by_index::<String>(0))
            .collect::<Result<_, _>>()?;
        assert_eq!(keys, expected(frequency), "{email}");
        total += keys.len();
    }
    assert_eq!(queued as usize, total);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE template = 'digest'")
            .await? as usize,
        total
    );
    Ok(())
}

async fn a_period_with_nothing_to_tell_is_claimed_but_sent_only_to_those_who_asked(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let admin = admin(&app).await?;
    app.gql(
        Some(&admin),
        "mutation { updateDigestPreferences(input: { frequency: NEVER }) { id } }",
        json!({}),
    )
    .await?
    .ok()?;
    let convenor = app.convenor("quiet@example.org").await?;
    let as_of = Utc::now() + chrono::Duration::days(8);
    assert_eq!(send_due(&app, &admin, as_of).await?, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM digests WHERE outbox_id IS NULL")
            .await?,
        1,
        "the empty period is claimed, so it is not looked at again"
    );
    assert_eq!(send_due(&app, &admin, as_of).await?, 0);

    app.gql(
        Some(&convenor),
        "mutation { updateDigestPreferences(input: { sendEmpty: true }) { id } }",
        json!({}),
    )
    .await?
    .ok()?;
    assert_eq!(
        send_due(&app, &admin, as_of + chrono::Duration::days(7)).await?,
        1
    );
    let mails = app.mail_to("quiet@example.org", 2).await?;
    let digest = mails
        .iter()
        .find(|m| m.subject.contains("digest"))
        .ok_or_else(|| anyhow::anyhow!("no digest"))?;
    assert!(
        digest.subject.contains("a quiet week"),
        "{}",
        digest.subject
    );
    assert!(digest.text.contains("Nothing new happened in this period."));
    Ok(())
}

/// Digests are claimed in batches; a (person, period) another server claimed between this run
/// reading the digest rows and claiming is skipped, and the rest of its batch still goes once.
async fn a_run_that_finds_one_digest_already_claimed_still_queues_the_others_once(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let admin = admin(&app).await?;
    app.gql(
        Some(&admin),
        "mutation { updateDigestPreferences(input: { frequency: NEVER }) { id } }",
        json!({}),
    )
    .await?
    .ok()?;
    let send_empty = "mutation { updateDigestPreferences(input: { sendEmpty: true }) { id } }";
    let claimed = app.convenor("claimed@example.org").await?;
    app.gql(Some(&claimed), send_empty, json!({})).await?.ok()?;
    let as_of = Utc::now() + chrono::Duration::days(8);
    assert_eq!(send_due(&app, &admin, as_of).await?, 1);

    // The row stays (its unique key holds the period) but is too old for the run to read, as
    // if another server claimed it a moment after this run looked.
    app.execute(
        "UPDATE digests SET period_end = '2000-01-01 00:00:00+00:00' \
         WHERE person_id = (SELECT id FROM people WHERE email = 'claimed@example.org')",
    )
    .await?;
    let mut others = Vec::new();
    for n in 0..3 {
        let email = format!("other{n}@example.org");
        let session = app.convenor(&email).await?;
        app.gql(Some(&session), send_empty, json!({})).await?.ok()?;
        others.push(email);
    }
    assert_eq!(send_due(&app, &admin, as_of).await?, 3);
    assert_eq!(app.count("SELECT COUNT(*) FROM digests").await?, 4);
    for email in &others {
        app.mail_to(email, 2).await?;
    }
    // Drained: a second copy, had one been queued, would have arrived with the first.
    app.mail_to("claimed@example.org", 2).await?;
    for email in others
        .iter()
        .map(String::as_str)
        .chain(["claimed@example.org"])
    {
        assert_eq!(digests_to(&app, email).len(), 1, "digests to {email}");
    }
    Ok(())
}

async fn the_command_line_queues_due_digests_filtered_to_the_changes_of_interest(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("focused@example.org").await?;
    app.gql(
        Some(&convenor),
        "mutation { updateDigestPreferences(input: { changes: [MORE_RESOURCES_BETTER_USED], sendEmpty: true }) { id } }",
        json!({}),
    )
    .await?
    .ok()?;
    let as_of = Utc::now() + chrono::Duration::days(8);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_groundswell"))
        .args(["send-due-digests", "--as-of", &as_of.to_rfc3339()])
        .env("DATABASE_URL", &app.database_url)
        .env("SECRET_KEY", &app.options.secret_key)
        .env("RUST_LOG", "warn")
        .output()
        .await?;
    anyhow::ensure!(
        output.status.success(),
        "send-due-digests failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("1 digests queued"));
    let mails = app.mail_to("focused@example.org", 2).await?;
    let digest = mails
        .iter()
        .find(|m| m.subject.contains("digest"))
        .ok_or_else(|| anyhow::anyhow!("no digest"))?;
    assert!(
        digest
            .text
            .contains("More resources, better used: 0 pledges (0)")
    );
    assert!(!digest.text.contains("Sharing power as equals"));
    Ok(())
}

async fn a_digest_the_mail_server_rejects_for_good_is_marked_failed_and_shown_to_admins(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let admin = admin(&app).await?;
    app.gql(
        Some(&admin),
        "mutation { updateDigestPreferences(input: { frequency: NEVER }) { id } }",
        json!({}),
    )
    .await?
    .ok()?;
    let convenor = app.convenor("bounced@example.org").await?;
    app.gathering(&convenor, json!({})).await?;
    app.smtp
        .rejecting
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        send_due(&app, &admin, Utc::now() + chrono::Duration::days(8)).await?,
        1
    );
    let query = "{ failedMail { recipient template attempts lastError } }";
    app.drain().await?;
    let failed = app.gql(Some(&admin), query, json!({})).await?.ok()?["failedMail"].clone();
    assert_eq!(failed[0]["recipient"], "bounced@example.org");
    assert_eq!(failed[0]["template"], "digest");
    assert!(
        failed[0]["lastError"]
            .as_str()
            .unwrap_or_default()
            .contains("554")
    );
    let refused = app.gql(Some(&convenor), query, json!({})).await?;
    assert_eq!(refused.code(), Some("FORBIDDEN"));
    Ok(())
}

/// Pledges, updates and coalitions on two changes; a convenor following one of them gets a
/// digest whose picture, new pledges, progress (worst signal first) and coalitions are that
/// change's only, in both parts.
async fn a_digest_holds_the_pledges_updates_and_coalitions_of_the_changes_of_interest_only(
    db: Backend,
) -> anyhow::Result<()> {
    use chrono::Timelike;
    const HOME: &str = "LIVING_IN_THE_PLACE_WE_CALL_HOME";
    const POWER: &str = "SHARING_POWER_AS_EQUALS";
    let app = spawn_app(db).await?;
    let admin = admin(&app).await?;
    app.gql(
        Some(&admin),
        "mutation { updateDigestPreferences(input: { frequency: NEVER }) { id } }",
        json!({}),
    )
    .await?
    .ok()?;
    // A daily slot one to two hours from now: the period is the day before it, which holds
    // everything made below.
    let hour = (Utc::now() + chrono::Duration::hours(2)).hour();
    let convenor = app.convenor("home@example.org").await?;
    app.gql(
        Some(&convenor),
        "mutation($input: DigestPreferencesInput!) { updateDigestPreferences(input: $input) { id } }",
        json!({ "input": { "frequency": "DAILY", "hour": hour, "timeZone": "UTC",
                "changes": [HOME] } }),
    )
    .await?
    .ok()?;

    let home_owner = app.sign_in("home-owner@example.org").await?;
    let home_org = app
        .create_organisation(&home_owner, "Kirklees Home Group")
        .await?;
    let power_owner = app.sign_in("power-owner@example.org").await?;
    let power_org = app
        .create_organisation(&power_owner, "Power Share Collective")
        .await?;
    let home_pledge = app
        .pledge_id(
            &home_owner,
            &home_org,
            json!({ "changes": [HOME], "title": "Homes, not placements", "dueBy": "2027-06-30" }),
        )
        .await?;
    let power_pledge = app
        .pledge_id(
            &power_owner,
            &power_org,
            json!({ "changes": [POWER], "title": "Citizens on every board" }),
        )
        .await?;
    app.post_update(
        Some(&home_owner),
        json!({ "pledgeId": home_pledge, "body": "Ten people moved home", "signal": "ON_TRACK",
                "percentComplete": 40 }),
    )
    .await?
    .ok()?;
    app.post_update(
        Some(&home_owner),
        json!({ "pledgeId": home_pledge, "body": "Funding is late", "signal": "OFF_TRACK" }),
    )
    .await?
    .ok()?;
    app.post_update(
        Some(&power_owner),
        json!({ "pledgeId": power_pledge, "body": "The board resisted", "signal": "AT_RISK" }),
    )
    .await?
    .ok()?;
    let home_coalition = app
        .form_coalition(&home_owner, &home_org, "Home Together", json!([HOME]))
        .await?;
    app.join_coalition(&home_owner, &power_owner, &home_coalition, &power_org)
        .await?;
    app.form_coalition(&power_owner, &power_org, "Equal Voices", json!([POWER]))
        .await?;
    app.pledge_id(
        &home_owner,
        &home_org,
        json!({ "changes": [HOME], "title": "Quiet homes" }),
    )
    .await?;
    app.pledge_id(
        &power_owner,
        &power_org,
        json!({ "changes": [POWER], "title": "Quiet boards" }),
    )
    .await?;
    // Made and last heard of 61 days ago: no client can move time back.
    let long_ago = (Utc::now() - chrono::Duration::days(61)).to_rfc3339();
    app.execute(&format!(
        "UPDATE pledges SET last_activity_at = '{long_ago}', created_at = '{long_ago}' \
         WHERE title IN ('Quiet homes', 'Quiet boards')"
    ))
    .await?;

    assert_eq!(
        send_due(&app, &admin, Utc::now() + chrono::Duration::hours(3)).await?,
        1
    );
    let mails = app.mail_to("home@example.org", 2).await?;
    let digest = mails
        .iter()
        .find(|m| m.subject.contains("digest"))
        .ok_or_else(|| anyhow::anyhow!("no digest"))?;
    let text = &digest.text.replace("\r\n", "\n");
    assert!(
        text.contains("- Living in the place we call home: 1 pledges (0), 2 updates (0)"),
        "{text}"
    );
    assert!(
        text.contains(
            "NEW PLEDGES\n\nLiving in the place we call home\n\
             - Kirklees Home Group: Homes, not placements (due 2027-06-30)\n"
        ),
        "{text}"
    );
    let off_track = text
        .find("- [Off track] Kirklees Home Group on pledge \"Homes, not placements\"\n  Funding is late")
        .ok_or_else(|| anyhow::anyhow!("no off-track update in {text}"))?;
    let on_track = text
        .find("- [On track, 40%] Kirklees Home Group on pledge \"Homes, not placements\"\n  Ten people moved home")
        .ok_or_else(|| anyhow::anyhow!("no on-track update in {text}"))?;
    assert!(off_track < on_track, "worst signal first: {text}");
    assert!(text.contains("PROGRESS UPDATES\n\nLiving in the place we call home\n- [Off track]"));
    assert!(
        text.contains(
            "COALITIONS\n\nLiving in the place we call home\n\
             - Kirklees Home Group formed Home Together\n\
             - Power Share Collective joined Home Together\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "PLEDGES GONE QUIET\n\nLiving in the place we call home\n\
             - Kirklees Home Group: Quiet homes (quiet for 61 days; owners reminded 1 time, no update yet)\n"
        ),
        "{text}"
    );
    for other in [
        "Sharing power as equals",
        "Citizens on every board",
        "The board resisted",
        "Equal Voices",
        "Quiet boards",
        "Nothing new happened",
    ] {
        assert!(!text.contains(other), "{other} in {text}");
    }

    let html = &digest.html;
    assert!(html.contains("1 pledges (0)"), "{html}");
    assert!(html.contains("2 updates (0)"), "{html}");
    // The bars: this period's updates are the largest figure, its pledges half of it.
    assert!(
        html.contains(r##"<td width="100%" height="10" bgcolor="#b07d00""##),
        "{html}"
    );
    assert!(
        html.contains(r##"<td width="50%" height="10" bgcolor="#1d5c4d""##),
        "{html}"
    );
    assert!(html.contains("<strong>Homes, not placements</strong><br>Kirklees Home Group"));
    assert!(html.contains("Due 2027-06-30"));
    assert!(html.contains("<strong>Off track</strong>: Kirklees Home Group"));
    assert!(html.contains("<strong>On track, 40%</strong>: Kirklees Home Group"));
    assert!(html.contains("Power Share Collective joined <strong>Home Together</strong>"));
    assert!(html.contains("Quiet for 61 days"));
    for other in [
        "Sharing power as equals",
        "Citizens on every board",
        "The board resisted",
        "Equal Voices",
        "Quiet boards",
        "<script",
        "<img",
    ] {
        assert!(!html.contains(other), "{other} in {html}");
    }
    Ok(())
}

/// The digest for some changes, built section by section for those changes alone: what the
/// scheduler built for each person before it built each period once.
async fn built_for(
    db: &groundswell_domain::Database,
    interests: &[Change],
    period: Period,
    quiet_after: chrono::TimeDelta,
) -> anyhow::Result<Digest> {
    Ok(Digest {
        period,
        frequency: "weekly",
        picture: sections::change_picture(db, interests, &period).await?,
        new_pledges: sections::new_pledges_section(db, interests, &period).await?,
        progress: sections::progress_section(db, interests, &period).await?,
        coalitions: sections::coalitions_section(db, interests, &period).await?,
        gatherings: sections::gatherings_section(db, &period).await?,
        quiet_pledges: sections::quiet_pledges_section(db, interests, &period, quiet_after).await?,
    })
}

/// A year of the seeded movement: for several sets of changes, in any order, a period's news
/// for all five changes cut down to the set equals the digest built for the set alone, groups,
/// caps, picture bars and emptiness included.
async fn a_periods_news_cut_to_some_changes_equals_the_digest_built_for_those_changes(
    db: Backend,
) -> anyhow::Result<()> {
    use Change::*;
    // Seeded as the README has it: into a migrated database, then served.
    let first = spawn_app(db).await?;
    let (database_url, smtp, options) = (
        first.database_url.clone(),
        first.smtp.clone(),
        first.options.clone(),
    );
    first.stop().await?;
    let database = groundswell_domain::Database::connect(&database_url, 2).await?;
    let now = groundswell_domain::now();
    groundswell_api::seed::seed(&database, now).await?;
    let app = start(database_url, smtp, options).await?;
    let sets = [
        vec![LivingInThePlaceWeCallHome],
        vec![SharingPowerAsEquals, LivingInThePlaceWeCallHome],
        vec![
            MoreResourcesBetterUsed,
            CommunitiesWhereEveryoneBelongs,
            LeadingTheLivesWeWantToLive,
        ],
        Change::ALL.to_vec(),
        Change::ALL.iter().rev().copied().collect(),
    ];
    let quiet_after = chrono::TimeDelta::days(30);
    let year = Period {
        start: now - chrono::TimeDelta::days(365),
        end: now + chrono::TimeDelta::days(1),
    };
    let spring = Period {
        start: now - chrono::TimeDelta::days(200),
        end: now - chrono::TimeDelta::days(170),
    };
    for period in [year, spring] {
        let news = PeriodDigest::build(&database, period, quiet_after).await?;
        for interests in &sets {
            let digest = news.for_changes(interests, DigestFrequency::Weekly);
            let direct = built_for(&database, interests, period, quiet_after).await?;
            assert_eq!(digest, direct, "{interests:?} over {period:?}");
        }
    }
    // Over the year every section has news on every change, more than a group shows.
    let news = PeriodDigest::build(&database, year, quiet_after).await?;
    for groups in [
        news.new_pledges
            .groups
            .iter()
            .map(|g| g.more)
            .collect::<Vec<_>>(),
        news.progress.groups.iter().map(|g| g.more).collect(),
        news.quiet_pledges.groups.iter().map(|g| g.more).collect(),
    ] {
        assert_eq!(groups.len(), 5);
        assert!(groups.iter().any(|&more| more > 0), "{groups:?}");
    }
    assert_eq!(news.coalitions.groups.len(), 5);

    // An hour with one new pledge: news for all, but nothing on the other changes.
    let owner = app.sign_in("owner@example.org").await?;
    let org = app
        .create_organisation(&owner, "Kirklees Home Group")
        .await?;
    let hour = Period {
        start: Utc::now(),
        end: Utc::now() + chrono::TimeDelta::hours(1),
    };
    app.pledge_id(
        &owner,
        &org,
        json!({ "changes": ["LIVING_IN_THE_PLACE_WE_CALL_HOME"], "title": "Homes, not placements" }),
    )
    .await?;
    let never_quiet = chrono::TimeDelta::days(3650);
    let news = PeriodDigest::build(&database, hour, never_quiet).await?;
    let home = news.for_changes(&[LivingInThePlaceWeCallHome], DigestFrequency::Daily);
    let power = news.for_changes(&[SharingPowerAsEquals], DigestFrequency::Daily);
    assert!(!home.is_empty());
    assert!(power.is_empty());
    assert_eq!(power.picture.rows.len(), 1);
    assert_eq!(home.picture.rows[0].bars.pledges_this_period, 100);
    for (interests, digest) in [
        (vec![LivingInThePlaceWeCallHome], home),
        (vec![SharingPowerAsEquals], power),
    ] {
        let mut direct = built_for(&database, &interests, hour, never_quiet).await?;
        direct.frequency = "daily";
        assert_eq!(digest, direct, "{interests:?}");
    }
    Ok(())
}
