//! Registrations: capacity under load, the waitlist, refusals, people registered by others,
//! privacy of access needs, mail, and live places.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::{helpers::*, on_both_databases};

on_both_databases!(
    a_thousand_concurrent_registrations_fill_exactly_the_places_and_cancellations_promote_in_order,
    a_full_gathering_waitlists_and_a_cancellation_promotes_the_first_waiting_person_and_mails_them,
    promotion_is_first_fit_and_never_splits_a_group,
    registering_twice_returns_the_existing_registration,
    registrations_outside_the_rules_are_refused_clearly,
    cancelling_a_gathering_cancels_every_registration_and_mails_everyone,
    someone_registered_on_their_behalf_gets_the_mail_and_keeps_control,
    access_needs_are_shown_only_to_the_person_and_the_convenors,
    the_joining_link_is_shown_only_to_confirmed_attendees_and_mailed_with_a_calendar,
    convenors_check_people_in,
    erasing_my_data_removes_access_needs_but_keeps_the_counts,
    access_needs_are_erased_after_the_retention_time_leaving_totals,
    places_changes_reach_a_websocket_subscriber,
    registering_someone_else_reveals_nothing_of_their_own_registration,
    admins_who_do_not_convene_see_no_access_needs,
    registration_pages_cost_the_same_statements_whatever_their_size,
);

async fn registering_someone_else_reveals_nothing_of_their_own_registration(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let victim = app.sign_in("victim@example.org").await?;
    app.gql(
        Some(&victim),
        "mutation { updateProfile(displayName: \"Vic\") { id } }",
        json!({}),
    )
    .await?
    .ok()?;
    let snoop = app.sign_in("snoop@example.org").await?;
    let gathering = app.gathering(&convenor, json!({})).await?;
    app.register(
        &victim,
        &gathering["id"],
        json!({ "accessNotes": "private", "accessConsent": true }),
    )
    .await?
    .ok()?;
    let reply = app
        .register(&snoop, &gathering["id"], json!({ "onBehalfOf": { "name": "Renamed", "email": "victim@example.org", "agreementConfirmed": true } }))
        .await?;
    // Answered as a new registration would be: nothing of theirs, no refusal that tells.
    let answer = reply.ok()?;
    assert_eq!(answer["register"]["status"], "CONFIRMED");
    assert!(!answer.to_string().contains("private"));
    let me = app
        .gql(Some(&victim), "{ me { displayName } }", json!({}))
        .await?
        .ok()?;
    assert_eq!(
        me["me"]["displayName"], "Vic",
        "an existing account keeps its own name"
    );
    Ok(())
}

async fn admins_who_do_not_convene_see_no_access_needs(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    app.grant_role("admin@example.org", "ADMIN").await?;
    let admin = app.sign_in("admin@example.org").await?;
    let person = app.sign_in("person@example.org").await?;
    let gathering = app
        .gathering(&convenor, json!({ "slug": "admin-check" }))
        .await?;
    app.register(&person, &gathering["id"], json!({ "accessRequirements": ["QUIET_SPACE"], "accessNotes": "Needs a quiet room", "accessConsent": true })).await?.ok()?;
    let query = "{ gathering(slug: \"admin-check\") { registrations { edges { node { accessNotes accessRequirements person { email } } } } } }";
    let seen = app.gql(Some(&admin), query, json!({})).await?.ok()?;
    let node = &seen["gathering"]["registrations"]["edges"][0]["node"];
    assert!(node["accessNotes"].is_null(), "{seen}");
    assert!(node["accessRequirements"].is_null(), "{seen}");
    let csv = app
        .http
        .get(app.url("/gatherings/admin-check/registrations.csv"))
        .bearer_auth(&admin)
        .send()
        .await?;
    assert_eq!(csv.status(), 403);
    let by_convenor = app.gql(Some(&convenor), query, json!({})).await?.ok()?;
    assert_eq!(
        by_convenor["gathering"]["registrations"]["edges"][0]["node"]["accessNotes"],
        "Needs a quiet room"
    );
    Ok(())
}

const GATHERING: &str = "query($s: String!) { gathering(slug: $s) { placesLeft confirmedCount waitlistedCount confirmedPlaces } }";

fn behalf(n: usize) -> Value {
    json!({ "onBehalfOf": { "name": format!("Person {n}"), "email": format!("person{n}@example.org"), "agreementConfirmed": true } })
}

async fn figures(app: &TestApp, slug: &Value) -> anyhow::Result<Value> {
    Ok(app.gql(None, GATHERING, json!({ "s": slug })).await?.ok()?["gathering"].clone())
}

/// Every registration of a gathering with `status`, in order, as (id, email, position).
async fn all_with_status(
    app: &TestApp,
    convenor: &str,
    gathering: &Value,
    status: &str,
) -> anyhow::Result<Vec<(String, String, Option<i64>)>> {
    let mut found = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app
            .gql(
                Some(convenor),
                "query($s: String!, $after: String, $status: RegistrationStatus) { gathering(slug: $s) { registrations(first: 100, after: $after, filter: { status: $status }) { edges { node { id waitlistPosition person { email } } } pageInfo { hasNextPage endCursor } } } }",
                json!({ "s": gathering["slug"], "after": after, "status": status }),
            )
            .await?
            .ok()?;
        let connection = &data["gathering"]["registrations"];
        for edge in connection["edges"].as_array().into_iter().flatten() {
            found.push((
                edge["node"]["id"].as_str().unwrap_or_default().to_owned(),
                edge["node"]["person"]["email"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                edge["node"]["waitlistPosition"].as_i64(),
            ));
        }
        if connection["pageInfo"]["hasNextPage"] != true {
            return Ok(found);
        }
        after = connection["pageInfo"]["endCursor"].clone();
    }
}

async fn a_thousand_concurrent_registrations_fill_exactly_the_places_and_cancellations_promote_in_order(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let registrar = app.sign_in("registrar@example.org").await?;
    let gathering = app
        .gathering(&convenor, json!({ "inPersonCapacity": 300 }))
        .await?;

    let replies = futures::future::join_all(
        (0..1000).map(|n| app.register(&registrar, &gathering["id"], behalf(n))),
    )
    .await;
    let mut statuses = (0, 0);
    for reply in replies {
        match reply?.ok()?["register"]["status"].as_str() {
            Some("CONFIRMED") => statuses.0 += 1,
            Some("WAITLISTED") => statuses.1 += 1,
            other => anyhow::bail!("unexpected status {other:?}"),
        }
    }
    assert_eq!(statuses, (300, 700));
    let counts = figures(&app, &gathering["slug"]).await?;
    assert_eq!(counts["confirmedCount"], 300);
    assert_eq!(counts["waitlistedCount"], 700);
    assert_eq!(counts["placesLeft"], 0);

    let confirmed = all_with_status(&app, &convenor, &gathering, "CONFIRMED").await?;
    let mut waiting = all_with_status(&app, &convenor, &gathering, "WAITLISTED").await?;
    waiting.sort_by_key(|w| w.2);
    let positions: Vec<i64> = waiting.iter().filter_map(|w| w.2).collect();
    assert_eq!(positions, (1..=700).collect::<Vec<_>>());
    let people: HashSet<&str> = confirmed
        .iter()
        .chain(&waiting)
        .map(|r| r.1.as_str())
        .collect();
    assert_eq!(people.len(), 1000, "nobody twice");

    let cancellations = futures::future::join_all(confirmed.iter().take(50).map(|(id, _, _)| {
        app.gql(
            Some(&registrar),
            "mutation($id: ID!) { cancelRegistration(id: $id) { status } }",
            json!({ "id": id }),
        )
    }))
    .await;
    for reply in cancellations {
        assert_eq!(reply?.ok()?["cancelRegistration"]["status"], "CANCELLED");
    }
    let now_confirmed: HashSet<String> = all_with_status(&app, &convenor, &gathering, "CONFIRMED")
        .await?
        .into_iter()
        .map(|r| r.1)
        .collect();
    assert_eq!(now_confirmed.len(), 300);
    for (_, email, position) in &waiting[..50] {
        assert!(
            now_confirmed.contains(email),
            "waiting #{position:?} was promoted"
        );
    }
    let still_waiting = all_with_status(&app, &convenor, &gathering, "WAITLISTED").await?;
    assert_eq!(still_waiting.len(), 650);
    assert_eq!(
        still_waiting
            .iter()
            .map(|w| w.1.as_str())
            .collect::<HashSet<_>>(),
        waiting[50..]
            .iter()
            .map(|w| w.1.as_str())
            .collect::<HashSet<_>>()
    );
    let mut left: Vec<i64> = still_waiting.iter().filter_map(|w| w.2).collect();
    left.sort_unstable();
    assert_eq!(left, (1..=650).collect::<Vec<_>>());
    Ok(())
}

async fn a_full_gathering_waitlists_and_a_cancellation_promotes_the_first_waiting_person_and_mails_them(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let gathering = app
        .gathering(
            &convenor,
            json!({ "inPersonCapacity": 2, "title": "Small circle" }),
        )
        .await?;
    let mut sessions = Vec::new();
    for name in ["ada", "bo", "cy", "di"] {
        let session = app.sign_in(&format!("{name}@example.org")).await?;
        let reply = app
            .register(&session, &gathering["id"], json!({}))
            .await?
            .ok()?;
        sessions.push((session, reply["register"].clone()));
    }
    let statuses: Vec<(&str, Option<i64>)> = sessions
        .iter()
        .map(|(_, r)| {
            (
                r["status"].as_str().unwrap_or_default(),
                r["waitlistPosition"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("CONFIRMED", None),
            ("CONFIRMED", None),
            ("WAITLISTED", Some(1)),
            ("WAITLISTED", Some(2))
        ]
    );
    let waitlisted_mail = app.mail_to("cy@example.org", 2).await?;
    assert!(
        waitlisted_mail
            .iter()
            .any(|m| m.subject == "You are on the waitlist for Small circle"
                && m.text.contains("number 1"))
    );

    app.gql(
        Some(&sessions[0].0),
        "mutation($id: ID!) { cancelRegistration(id: $id) { status } }",
        json!({ "id": sessions[0].1["id"] }),
    )
    .await?
    .ok()?;
    let mine = "{ me { registrations { status waitlistPosition } } }";
    let cy = app.gql(Some(&sessions[2].0), mine, json!({})).await?.ok()?;
    assert_eq!(cy["me"]["registrations"][0]["status"], "CONFIRMED");
    let di = app.gql(Some(&sessions[3].0), mine, json!({})).await?.ok()?;
    assert_eq!(di["me"]["registrations"][0]["waitlistPosition"], 1);

    let promoted = app.mail_to("cy@example.org", 3).await?;
    let mail = promoted
        .iter()
        .find(|m| m.subject.contains("now yours"))
        .ok_or_else(|| anyhow::anyhow!("no promotion mail"))?;
    assert!(mail.text.contains("Small circle"));
    assert_eq!(
        mail.attachments.len(),
        1,
        "the promotion carries the calendar"
    );
    let cancelled = app.mail_to("ada@example.org", 3).await?;
    assert!(cancelled.iter().any(|m| m.subject.contains("is cancelled")));
    Ok(())
}

async fn promotion_is_first_fit_and_never_splits_a_group(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let registrar = app.sign_in("registrar@example.org").await?;
    let gathering = app
        .gathering(&convenor, json!({ "inPersonCapacity": 3 }))
        .await?;
    let mut regs = Vec::new();
    for (n, companions) in [(0, 0), (1, 2), (2, 0), (3, 0), (4, 0)] {
        let mut input = behalf(n);
        input["companions"] = json!(companions);
        regs.push(
            app.register(&registrar, &gathering["id"], input)
                .await?
                .ok()?["register"]
                .clone(),
        );
    }
    let status = |r: &Value| r["status"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        regs.iter().map(status).collect::<Vec<_>>(),
        [
            "CONFIRMED",
            "WAITLISTED",
            "CONFIRMED",
            "CONFIRMED",
            "WAITLISTED"
        ]
    );

    let cancel = "mutation($id: ID!) { cancelRegistration(id: $id) { status } }";
    app.gql(Some(&registrar), cancel, json!({ "id": regs[0]["id"] }))
        .await?
        .ok()?;
    let waiting = all_with_status(&app, &convenor, &gathering, "WAITLISTED").await?;
    assert_eq!(
        waiting,
        [(
            regs[1]["id"].as_str().unwrap_or_default().to_owned(),
            "person1@example.org".to_owned(),
            Some(1)
        )],
        "the group of three still waits first; the single place went to the next who fits"
    );
    let confirmed: Vec<String> = all_with_status(&app, &convenor, &gathering, "CONFIRMED")
        .await?
        .into_iter()
        .map(|r| r.1)
        .collect();
    assert!(confirmed.contains(&"person4@example.org".to_owned()));

    for reg in [&regs[2], &regs[3]] {
        app.gql(Some(&registrar), cancel, json!({ "id": reg["id"] }))
            .await?
            .ok()?;
    }
    let confirmed: Vec<String> = all_with_status(&app, &convenor, &gathering, "CONFIRMED")
        .await?
        .into_iter()
        .map(|r| r.1)
        .collect();
    assert_eq!(
        confirmed.len(),
        1,
        "person 4 alone until three places are free together"
    );
    let counts = figures(&app, &gathering["slug"]).await?;
    assert_eq!(counts["confirmedPlaces"], 1);
    Ok(())
}

async fn registering_twice_returns_the_existing_registration(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let session = app.sign_in("keen@example.org").await?;
    let gathering = app.gathering(&convenor, json!({})).await?;
    let replies = futures::future::join_all(
        (0..10).map(|_| app.register(&session, &gathering["id"], json!({}))),
    )
    .await;
    let ids: HashSet<String> = replies
        .into_iter()
        .map(|r| {
            Ok(r?.ok()?["register"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned())
        })
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(ids.len(), 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM registrations").await?, 1);
    assert_eq!(
        figures(&app, &gathering["slug"]).await?["confirmedCount"],
        1
    );
    // Clicks that land in one batch are one registration, confirmed by one message.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE template = 'registration_confirmed'")
            .await?,
        1
    );
    Ok(())
}

async fn registrations_outside_the_rules_are_refused_clearly(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let session = app.sign_in("attendee@example.org").await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Tokens Inc").await?;
    let token = app.create_api_token(Some(&owner), &org).await?.ok()?["createApiToken"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let now = chrono::Utc::now();
    let open = app.gathering(&convenor, json!({})).await?;
    let not_yet = app
        .gathering(
            &convenor,
            json!({ "registrationOpensAt": (now + chrono::Duration::days(2)).to_rfc3339() }),
        )
        .await?;
    let closed = app.gathering(&convenor, json!({ "registrationClosesAt": (now - chrono::Duration::hours(1)).to_rfc3339(), "registrationOpensAt": (now - chrono::Duration::days(9)).to_rfc3339() })).await?;
    let draft = app
        .gathering(&convenor, json!({ "publish": false }))
        .await?;
    let cancelled = app.gathering(&convenor, json!({})).await?;
    app.gql(
        Some(&convenor),
        "mutation($id: ID!) { cancelGathering(id: $id, reason: \"Venue flooded\") { status } }",
        json!({ "id": cancelled["id"] }),
    )
    .await?
    .ok()?;

    /// What is tried, by whom, at which gathering, with what, and the refusal expected.
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        &'a Value,
        Value,
        &'a str,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "not open yet",
            Some(&session),
            &not_yet["id"],
            json!({}),
            "CONFLICT",
            None,
        ),
        (
            "closed",
            Some(&session),
            &closed["id"],
            json!({}),
            "CONFLICT",
            None,
        ),
        (
            "draft",
            Some(&session),
            &draft["id"],
            json!({}),
            "NOT_FOUND",
            None,
        ),
        (
            "cancelled",
            Some(&session),
            &cancelled["id"],
            json!({}),
            "CONFLICT",
            None,
        ),
        (
            "online at an in-person gathering",
            Some(&session),
            &open["id"],
            json!({ "mode": "ONLINE" }),
            "BAD_USER_INPUT",
            Some("mode"),
        ),
        (
            "six companions",
            Some(&session),
            &open["id"],
            json!({ "companions": 6 }),
            "BAD_USER_INPUT",
            Some("companions"),
        ),
        (
            "access needs without consent",
            Some(&session),
            &open["id"],
            json!({ "accessRequirements": ["QUIET_SPACE"] }),
            "BAD_USER_INPUT",
            Some("accessConsent"),
        ),
        (
            "access notes with consent refused",
            Some(&session),
            &open["id"],
            json!({ "accessNotes": "I use a wheelchair", "accessConsent": false }),
            "BAD_USER_INPUT",
            Some("accessConsent"),
        ),
        (
            "on behalf without agreement",
            Some(&session),
            &open["id"],
            json!({ "onBehalfOf": { "name": "Mum", "email": "mum@example.org", "agreementConfirmed": false } }),
            "BAD_USER_INPUT",
            Some("agreementConfirmed"),
        ),
        (
            "on behalf with a bad email",
            Some(&session),
            &open["id"],
            json!({ "onBehalfOf": { "name": "Mum", "email": "mum", "agreementConfirmed": true } }),
            "BAD_USER_INPUT",
            Some("email"),
        ),
        (
            "an organisation token",
            Some(&token),
            &open["id"],
            json!({}),
            "FORBIDDEN",
            None,
        ),
        (
            "nobody",
            None,
            &open["id"],
            json!({}),
            "UNAUTHENTICATED",
            None,
        ),
    ];
    for (case, credential, gathering_id, fields, code, field) in cases {
        let reply = match credential {
            Some(credential) => app.register(credential, gathering_id, fields).await?,
            None => {
                app.gql(
                    None,
                    "mutation($id: ID!) { register(input: { gatheringId: $id }) { id } }",
                    json!({ "id": gathering_id }),
                )
                .await?
            }
        };
        assert_eq!(reply.code(), Some(code), "{case}: {:?}", reply.body);
        if field.is_some() {
            assert_eq!(reply.field(), field, "{case}: {:?}", reply.body);
        }
        assert!(!reply.message().is_empty());
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM registrations").await?, 0);
    Ok(())
}

async fn cancelling_a_gathering_cancels_every_registration_and_mails_everyone(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let registrar = app.sign_in("registrar@example.org").await?;
    let gathering = app
        .gathering(
            &convenor,
            json!({ "inPersonCapacity": 2, "title": "Rained off" }),
        )
        .await?;
    for n in 0..3 {
        app.register(&registrar, &gathering["id"], behalf(n))
            .await?
            .ok()?;
    }
    let cancelled = app
        .gql(Some(&convenor), "mutation($id: ID!) { cancelGathering(id: $id, reason: \"The venue has flooded.\") { status cancelReason } }", json!({ "id": gathering["id"] }))
        .await?
        .ok()?;
    assert_eq!(cancelled["cancelGathering"]["status"], "CANCELLED");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM registrations WHERE status <> 'CANCELLED'")
            .await?,
        0
    );
    for n in 0..3 {
        let mails = app.mail_to(&format!("person{n}@example.org"), 2).await?;
        let mail = mails
            .iter()
            .find(|m| m.subject == "Rained off has been cancelled")
            .ok_or_else(|| anyhow::anyhow!("no cancellation mail"))?;
        assert!(mail.text.contains("The venue has flooded."));
    }
    Ok(())
}

async fn someone_registered_on_their_behalf_gets_the_mail_and_keeps_control(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let daughter = app.sign_in("daughter@example.org").await?;
    let gathering = app
        .gathering(&convenor, json!({ "title": "Family day" }))
        .await?;
    let reply = app
        .register(&daughter, &gathering["id"], json!({ "onBehalfOf": { "name": "Margaret Hughes", "email": "margaret@example.org", "agreementConfirmed": true }, "companions": 1 }))
        .await?
        .ok()?;
    assert_eq!(reply["register"]["status"], "CONFIRMED");
    assert_eq!(
        reply["register"]["person"]["displayName"],
        "Margaret Hughes"
    );
    let mails = app.mail_to("margaret@example.org", 1).await?;
    assert!(
        mails[0]
            .text
            .contains("Someone registered you for Family day")
    );
    assert!(
        !app.smtp
            .messages()
            .iter()
            .any(|m| m.to == "daughter@example.org" && m.subject.contains("Family day"))
    );

    let margaret = app.sign_in("margaret@example.org").await?;
    let mine = app
        .gql(
            Some(&margaret),
            "{ me { registrations { id companions gathering { title } } } }",
            json!({}),
        )
        .await?
        .ok()?;
    let registration = &mine["me"]["registrations"][0];
    assert_eq!(registration["gathering"]["title"], "Family day");
    let cancelled = app
        .gql(
            Some(&margaret),
            "mutation($id: ID!) { cancelRegistration(id: $id) { status } }",
            json!({ "id": registration["id"] }),
        )
        .await?
        .ok()?;
    assert_eq!(cancelled["cancelRegistration"]["status"], "CANCELLED");
    let stranger = app.sign_in("stranger@example.org").await?;
    let refused = app
        .gql(
            Some(&stranger),
            "mutation($id: ID!) { cancelRegistration(id: $id) { status } }",
            json!({ "id": registration["id"] }),
        )
        .await?;
    assert_eq!(refused.code(), Some("FORBIDDEN"));
    Ok(())
}

async fn access_needs_are_shown_only_to_the_person_and_the_convenors(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let other_convenor = app.convenor("elsewhere@example.org").await?;
    let person = app.sign_in("private@example.org").await?;
    let other = app.sign_in("other@example.org").await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Curious Org").await?;
    let token = app.create_api_token(Some(&owner), &org).await?.ok()?["createApiToken"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let gathering = app
        .gathering(&convenor, json!({ "slug": "private-day" }))
        .await?;
    let mine = app
        .register(&person, &gathering["id"], json!({ "accessRequirements": ["STEP_FREE_ACCESS", "BSL_INTERPRETER"], "accessNotes": "I lip-read too", "accessConsent": true }))
        .await?
        .ok()?;
    assert_eq!(
        mine["register"]["accessRequirements"],
        json!(["STEP_FREE_ACCESS", "BSL_INTERPRETER"])
    );
    assert_eq!(mine["register"]["accessNotes"], "I lip-read too");
    for n in 0..3 {
        let who = app.sign_in(&format!("stepfree{n}@example.org")).await?;
        app.register(
            &who,
            &gathering["id"],
            json!({ "accessRequirements": ["STEP_FREE_ACCESS"], "accessConsent": true }),
        )
        .await?
        .ok()?;
    }

    let registrations = "{ gathering(slug: \"private-day\") { registrations(filter: { hasAccessNeeds: true }) { totalCount edges { node { accessNotes accessRequirements } } } accessRequirementTotals { requirement count } } }";
    let seen = app
        .gql(Some(&convenor), registrations, json!({}))
        .await?
        .ok()?;
    assert_eq!(seen["gathering"]["registrations"]["totalCount"], 4);
    assert_eq!(
        seen["gathering"]["accessRequirementTotals"],
        json!([{ "requirement": "STEP_FREE_ACCESS", "count": 4 }, { "requirement": "BSL_INTERPRETER", "count": 1 }])
    );
    for (who, credential) in [
        ("another attendee", Some(other.as_str())),
        (
            "another gathering's convenor",
            Some(other_convenor.as_str()),
        ),
        ("an organisation token", Some(token.as_str())),
        ("nobody", None),
    ] {
        let reply = app.gql(credential, registrations, json!({})).await?;
        assert!(
            matches!(reply.code(), Some("FORBIDDEN" | "UNAUTHENTICATED")),
            "{who}: {:?}",
            reply.body
        );
        assert!(
            !reply.body.to_string().contains("lip-read"),
            "{who} saw the notes"
        );
    }
    let myself = app
        .gql(
            Some(&person),
            "{ me { registrations { accessNotes } } }",
            json!({}),
        )
        .await?
        .ok()?;
    assert_eq!(
        myself["me"]["registrations"][0]["accessNotes"],
        "I lip-read too"
    );
    let no_needs = app.gql(Some(&convenor), "{ gathering(slug: \"private-day\") { registrations(filter: { hasAccessNeeds: false }) { totalCount } } }", json!({})).await?.ok()?;
    assert_eq!(no_needs["gathering"]["registrations"]["totalCount"], 0);
    Ok(())
}

async fn the_joining_link_is_shown_only_to_confirmed_attendees_and_mailed_with_a_calendar(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let gathering = app
        .gathering(&convenor, json!({ "slug": "hybrid", "format": "HYBRID", "onlineCapacity": 1, "joiningUrl": "https://meet.example/room-42", "title": "Hybrid gathering" }))
        .await?;
    let online = app.sign_in("online@example.org").await?;
    let waiting = app.sign_in("waiting@example.org").await?;
    app.register(&online, &gathering["id"], json!({ "mode": "ONLINE" }))
        .await?
        .ok()?;
    let second = app
        .register(&waiting, &gathering["id"], json!({ "mode": "ONLINE" }))
        .await?
        .ok()?;
    assert_eq!(second["register"]["status"], "WAITLISTED");

    let link = "{ gathering(slug: \"hybrid\") { joiningUrl } }";
    for (who, credential, expected) in [
        (
            "confirmed",
            Some(online.as_str()),
            json!("https://meet.example/room-42"),
        ),
        (
            "convenor",
            Some(convenor.as_str()),
            json!("https://meet.example/room-42"),
        ),
        ("waitlisted", Some(waiting.as_str()), Value::Null),
        ("nobody", None, Value::Null),
    ] {
        let data = app.gql(credential, link, json!({})).await?.ok()?;
        assert_eq!(data["gathering"]["joiningUrl"], expected, "{who}");
    }

    let mails = app.mail_to("online@example.org", 2).await?;
    let confirmation = mails
        .iter()
        .find(|m| m.subject.contains("is confirmed"))
        .ok_or_else(|| anyhow::anyhow!("no confirmation"))?;
    assert!(confirmation.text.contains("https://meet.example/room-42"));
    assert!(confirmation.html.contains("https://meet.example/room-42"));
    let (name, content_type, ics) = &confirmation.attachments[0];
    assert_eq!(name, "invite.ics");
    assert_eq!(content_type, "text/calendar");
    let calendar: icalendar::Calendar = ics.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let event = calendar
        .events()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no event"))?;
    assert_eq!(
        icalendar::Component::get_summary(event),
        Some("Hybrid gathering")
    );
    assert!(
        ics.replace("\r\n ", "").contains("room-42"),
        "the attendee's calendar has the link"
    );
    let waitlisted = app.mail_to("waiting@example.org", 2).await?;
    assert!(waitlisted.iter().all(|m| !m.text.contains("room-42")));
    Ok(())
}

async fn convenors_check_people_in(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let session = app.sign_in("arriving@example.org").await?;
    let late = app.sign_in("late@example.org").await?;
    let gathering = app
        .gathering(&convenor, json!({ "inPersonCapacity": 1 }))
        .await?;
    let confirmed = app
        .register(&session, &gathering["id"], json!({}))
        .await?
        .ok()?;
    let waiting = app
        .register(&late, &gathering["id"], json!({}))
        .await?
        .ok()?;
    let check_in = "mutation($id: ID!) { checkIn(registrationId: $id) { checkedInAt } }";
    let refused = app
        .gql(
            Some(&session),
            check_in,
            json!({ "id": confirmed["register"]["id"] }),
        )
        .await?;
    assert_eq!(refused.code(), Some("FORBIDDEN"));
    let done = app
        .gql(
            Some(&convenor),
            check_in,
            json!({ "id": confirmed["register"]["id"] }),
        )
        .await?
        .ok()?;
    assert!(done["checkIn"]["checkedInAt"].is_string());
    let not_confirmed = app
        .gql(
            Some(&convenor),
            check_in,
            json!({ "id": waiting["register"]["id"] }),
        )
        .await?;
    assert_eq!(not_confirmed.code(), Some("CONFLICT"));
    Ok(())
}

async fn erasing_my_data_removes_access_needs_but_keeps_the_counts(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let person = app.sign_in("forget.me@example.org").await?;
    let gathering = app
        .gathering(&convenor, json!({ "slug": "forgetful" }))
        .await?;
    app.register(&person, &gathering["id"], json!({ "accessRequirements": ["DIETARY"], "accessNotes": "Coeliac", "accessConsent": true })).await?.ok()?;
    let data = app
        .gql(Some(&person), "{ myData }", json!({}))
        .await?
        .ok()?;
    assert_eq!(data["myData"]["registrations"][0]["accessNotes"], "Coeliac");
    assert_eq!(data["myData"]["person"]["email"], "forget.me@example.org");

    app.gql(Some(&person), "mutation { eraseMyData }", json!({}))
        .await?
        .ok()?;
    let seen = app
        .gql(Some(&convenor), "{ gathering(slug: \"forgetful\") { confirmedCount registrations { edges { node { status accessNotes accessRequirements person { email displayName } } } } } }", json!({}))
        .await?
        .ok()?;
    // Erasure cancels the registration: the place goes back to others at once.
    assert_eq!(seen["gathering"]["confirmedCount"], 0, "the place is freed");
    let node = &seen["gathering"]["registrations"]["edges"][0]["node"];
    assert_eq!(node["status"], "CANCELLED");
    assert!(node["accessNotes"].is_null());
    assert_eq!(node["accessRequirements"], json!([]));
    assert!(node["person"]["displayName"].is_null());
    let dump = app
        .count("SELECT COUNT(*) FROM people WHERE email = 'forget.me@example.org'")
        .await?;
    assert_eq!(dump, 0);
    // Erasing ends the sessions: the old one is refused outright (HTTP 401).
    let ended = app.gql(Some(&person), "{ me { id } }", json!({})).await?;
    assert_eq!(
        (ended.status, ended.code()),
        (401, Some("UNAUTHENTICATED")),
        "erasing ends the sessions"
    );
    Ok(())
}

async fn access_needs_are_erased_after_the_retention_time_leaving_totals(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let person = app.sign_in("past@example.org").await?;
    let gathering = app
        .gathering(&convenor, json!({ "slug": "long-ago" }))
        .await?;
    app.register(&person, &gathering["id"], json!({ "accessRequirements": ["LARGE_PRINT"], "accessNotes": "18pt please", "accessConsent": true })).await?.ok()?;
    // Forty days pass after the gathering ends; the server's housekeeping runs at its start.
    let conn = app.database().await?;
    let ended = chrono::Utc::now() - chrono::Duration::days(40);
    sea_orm::ConnectionTrait::execute_raw(
        &conn,
        sea_orm::Statement::from_sql_and_values(
            conn.get_database_backend(),
            match db {
                Backend::Postgres => "UPDATE gatherings SET starts_at = $1, ends_at = $1",
                Backend::Sqlite => "UPDATE gatherings SET starts_at = ?, ends_at = ?",
            },
            match db {
                Backend::Postgres => vec![ended.into()],
                Backend::Sqlite => vec![ended.into(), ended.into()],
            },
        ),
    )
    .await?;
    let (database_url, smtp, options) = (
        app.database_url.clone(),
        app.smtp.clone(),
        app.options.clone(),
    );
    app.stop().await?;
    let restarted = start(database_url, smtp, options).await?;
    restarted.drain().await?;
    let query = "{ gathering(slug: \"long-ago\") { confirmedCount accessRequirementTotals { requirement count } registrations { edges { node { accessNotes accessRequirements } } } } }";
    let erased = restarted
        .gql(Some(&convenor), query, json!({}))
        .await?
        .ok()?;
    let node = &erased["gathering"]["registrations"]["edges"][0]["node"];
    assert!(node["accessNotes"].is_null(), "{erased}");
    assert_eq!(node["accessRequirements"], json!([]));
    assert_eq!(
        erased["gathering"]["accessRequirementTotals"],
        json!([{ "requirement": "LARGE_PRINT", "count": 1 }])
    );
    assert_eq!(erased["gathering"]["confirmedCount"], 1);
    Ok(())
}

async fn places_changes_reach_a_websocket_subscriber(db: Backend) -> anyhow::Result<()> {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let app = spawn_app(db).await?;
    // A second server on the same database: the subscriber listens to one, the change goes
    // through the other.
    // (SQLite serves one server only, so there the change goes through the same one.)
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
    let convenor = app.convenor("convenor@example.org").await?;
    let person = app.sign_in("live@example.org").await?;
    let gathering = app
        .gathering(&convenor, json!({ "inPersonCapacity": 20 }))
        .await?;

    let mut socket = ws_connect(&app, None).await?;
    socket
        .send(Message::text(json!({ "id": "1", "type": "subscribe", "payload": {
            "query": "subscription($id: ID!) { gatheringPlacesChanged(gatheringId: $id) { placesLeft confirmedCount } }",
            "variables": { "id": gathering["id"] } } }).to_string()))
        .await?;
    // The subscription starts asynchronously: register one person at a time until an event
    // arrives.
    let server = other.as_ref().unwrap_or(&app);
    let mut next = Value::Null;
    for n in 0..10 {
        let person = server.sign_in(&format!("live{n}@example.org")).await?;
        server
            .register(&person, &gathering["id"], json!({ "companions": 1 }))
            .await?
            .ok()?;
        let received = ws_next(&mut socket, std::time::Duration::from_millis(1500)).await;
        if let Ok(value) = received {
            next = value;
            break;
        }
    }
    let places = &next["payload"]["data"]["gatheringPlacesChanged"];
    let confirmed = places["confirmedCount"].as_i64().unwrap_or_default();
    assert!(confirmed >= 1, "{next}");
    assert_eq!(
        places["placesLeft"].as_i64(),
        Some(20 - 2 * confirmed),
        "{next}"
    );
    drop(person);
    Ok(())
}

async fn registration_pages_cost_the_same_statements_whatever_their_size(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let online = json!({ "format": "HYBRID", "joiningUrl": "https://meet.example.org/room", "onlineCapacity": 50, "inPersonCapacity": 6 });
    let gathering = app.gathering(&convenor, online.clone()).await?;
    for n in 0..12 {
        let attendee = app.sign_in(&format!("attendee{n}@example.org")).await?;
        app.register(
            &attendee,
            &gathering["id"],
            json!({ "mode": "IN_PERSON", "accessRequirements": ["STEP_FREE_ACCESS"], "accessNotes": format!("needs {n}"), "accessConsent": true }),
        )
        .await?
        .ok()?;
    }
    // The convenor's page of registrations, access needs and contact details on every row;
    // both pages hold someone waiting (six places), so both ask for waitlist positions.
    let page = "query($s: String!, $first: Int) { gathering(slug: $s) { title registrations(first: $first) { nodes { status waitlistPosition accessRequirements accessNotes registeredOnBehalf person { email displayName } gathering { title joiningUrl } } } } }";
    let (small, small_count) = app
        .gql_counting(
            Some(&convenor),
            page,
            json!({ "s": gathering["slug"], "first": 7 }),
        )
        .await?;
    let small = small.ok()?;
    assert!(
        small["gathering"]["registrations"]["nodes"][6]["waitlistPosition"].is_i64(),
        "{small}"
    );
    let (large, large_count) = app
        .gql_counting(
            Some(&convenor),
            page,
            json!({ "s": gathering["slug"], "first": 12 }),
        )
        .await?;
    let large = large.ok()?;
    let nodes = large["gathering"]["registrations"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(nodes.len(), 12);
    assert!(nodes.iter().all(|n| {
        n["accessNotes"]
            .as_str()
            .is_some_and(|t| t.starts_with("needs"))
    }));
    assert!(
        nodes
            .iter()
            .any(|n| n["status"] == "WAITLISTED" && n["waitlistPosition"].is_i64())
    );
    println!("statements: a convenor's 7 registrations = {small_count}, 12 = {large_count}");
    assert_eq!(
        small_count, large_count,
        "the statement count grows with the page"
    );

    // A person's own registrations, with each gathering and its joining link.
    let person = app.sign_in("regular@example.org").await?;
    let mine = "{ me { registrations { status accessNotes gathering { title joiningUrl confirmedCount } } } }";
    let mut counts = Vec::new();
    for gatherings in [2, 6] {
        while app.gql(Some(&person), mine, json!({})).await?.ok()?["me"]["registrations"]
            .as_array()
            .map_or(0, Vec::len)
            < gatherings
        {
            let g = app.gathering(&convenor, online.clone()).await?;
            app.register(&person, &g["id"], json!({ "mode": "ONLINE" }))
                .await?
                .ok()?;
        }
        let (reply, count) = app.gql_counting(Some(&person), mine, json!({})).await?;
        let reply = reply.ok()?;
        assert!(
            reply["me"]["registrations"]
                .as_array()
                .is_some_and(|r| r.len() == gatherings
                    && r.iter()
                        .all(|r| r["gathering"]["joiningUrl"] == "https://meet.example.org/room")),
            "{reply}"
        );
        counts.push(count);
    }
    println!(
        "statements: a person's 2 registrations = {}, 6 = {}",
        counts[0], counts[1]
    );
    assert_eq!(
        counts[0], counts[1],
        "the statement count grows with the list"
    );
    Ok(())
}
