//! The domain's rules under hostile use: nothing a caller gets back reveals other people,
//! erasure frees what it held and leaves every organisation an owner, access needs stay with the
//! gathering's own convenors, one caller cannot mail-bomb or book out, coalition changes
//! serialise, and digests neither lose nor repeat what happened between them.

use chrono::{Timelike, Utc};
use serde_json::{Value, json};

use crate::helpers::{
    Backend, Options, SmtpServer, TestApp, fresh_database, spawn_app, start, wait_until,
    ws_connect, ws_next,
};

crate::on_both_databases!(
    registering_someone_else_shows_only_what_the_caller_typed,
    registering_someone_who_already_holds_a_place_answers_as_for_anyone_else,
    erasure_reaches_registrations_asked_for_on_my_behalf,
    erasing_my_data_while_registering_never_leaves_a_placeholder_registered,
    adding_a_member_shows_nothing_of_the_account_behind_the_address,
    a_persons_role_time_zone_and_joining_time_are_theirs_alone,
    erasing_my_data_gives_my_places_to_the_waitlist_and_forgets_my_mail,
    erasing_the_last_owner_of_an_organisation_is_refused_until_handed_over,
    two_owners_demoting_or_erasing_each_other_at_once_leave_one_owner,
    delivered_mail_loses_its_address_and_content_after_the_retention_time,
    access_need_figures_are_only_for_the_gatherings_own_convenors,
    registering_others_is_limited_per_gathering_and_per_hour,
    a_register_and_cancel_loop_is_stopped_after_a_few_rounds,
    adding_members_is_limited_per_hour,
    a_lead_hand_over_racing_a_leave_never_leaves_a_lead_that_has_left,
    a_digest_run_ahead_of_time_leaves_later_news_to_the_next_digest,
    a_client_address_holds_only_so_many_websocket_connections,
    a_websocket_connection_runs_only_so_many_subscriptions,
    an_event_is_loaded_once_however_many_subscribe,
    asking_for_sign_in_links_answers_alike_for_known_and_unknown_addresses,
);

const REGISTER: &str = "mutation($input: RegisterInput!) { register(input: $input) { status createdAt registeredOnBehalf person { id email displayName role timeZone createdAt } } }";
const ADD: &str = "mutation($org: ID!, $email: String!, $role: OrganisationRole!) { addOrganisationMember(organisationId: $org, email: $email, role: $role) { role person { id email displayName role timeZone createdAt } } }";

/// Whether an id is a version-4 (random) UUID: a UUIDv7 carries the time it was made.
fn tells_no_time(id: &Value) -> bool {
    id.as_str()
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .is_some_and(|id| id.get_version_num() == 4)
}

async fn still_up(app: &TestApp) -> anyhow::Result<()> {
    let data = app
        .gql(None, "{ changes { change } }", json!({}))
        .await?
        .ok()?;
    anyhow::ensure!(data["changes"].as_array().is_some_and(|c| c.len() == 5));
    Ok(())
}

async fn registering_someone_else_shows_only_what_the_caller_typed(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    // An existing account with its own name, role and time zone.
    app.grant_role("known@example.org", "CONVENOR").await?;
    let known = app.sign_in("known@example.org").await?;
    app.gql(
        Some(&known),
        "mutation { updateProfile(displayName: \"Private Name\") { id } updateDigestPreferences(input: { timeZone: \"Asia/Tokyo\" }) { id } }",
        json!({}),
    )
    .await?
    .ok()?;
    let helper = app.sign_in("helper@example.org").await?;
    let gathering = app.gathering(&convenor, json!({})).await?;
    let mut answers = Vec::new();
    for email in ["known@example.org", "stranger@example.org"] {
        let data = app
            .gql(
                Some(&helper),
                REGISTER,
                json!({ "input": { "gatheringId": gathering["id"], "onBehalfOf":
                    { "name": "As Typed", "email": email, "agreementConfirmed": true } } }),
            )
            .await?
            .ok()?;
        answers.push(data["register"].clone());
    }
    for answer in &answers {
        let person = &answer["person"];
        assert_eq!(person["displayName"], "As Typed", "{answer}");
        assert!(person["role"].is_null(), "{answer}");
        assert!(person["timeZone"].is_null(), "{answer}");
        assert!(person["createdAt"].is_null(), "{answer}");
        assert_eq!(answer["status"], "CONFIRMED");
        assert!(tells_no_time(&person["id"]), "{answer}");
    }
    assert!(!answers[0].to_string().contains("Private Name"));
    assert!(!answers[0].to_string().contains("Tokyo"));
    // The two answers differ only in the address typed.
    let shape = |a: &Value| {
        let mut a = a.clone();
        a["person"]["email"] = Value::Null;
        a["person"]["id"] = Value::Null;
        a["createdAt"] = Value::Null;
        a
    };
    assert_eq!(shape(&answers[0]), shape(&answers[1]));
    // The account keeps its own name and settings.
    let me = app
        .gql(
            Some(&known),
            "{ me { displayName role timeZone } }",
            json!({}),
        )
        .await?
        .ok()?;
    assert_eq!(
        me["me"],
        json!({ "displayName": "Private Name", "role": "CONVENOR", "timeZone": "Asia/Tokyo" })
    );
    still_up(&app).await
}

async fn registering_someone_who_already_holds_a_place_answers_as_for_anyone_else(
    db: Backend,
) -> anyhow::Result<()> {
    let app = limited_app(
        db,
        groundswell_domain::Limits {
            on_behalf_per_gathering: 2,
            ..groundswell_domain::Limits::default()
        },
    )
    .await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let gathering = app
        .gathering(&convenor, json!({ "inPersonCapacity": 2 }))
        .await?;
    let victim = app.sign_in("victim@example.org").await?;
    app.register(
        &victim,
        &gathering["id"],
        json!({ "accessNotes": "private words", "accessConsent": true }),
    )
    .await?
    .ok()?;
    let victims_mail = app
        .count("SELECT COUNT(*) FROM outbox WHERE recipient = 'victim@example.org'")
        .await?;
    let snoop = app.sign_in("snoop@example.org").await?;
    const FULL: &str = "mutation($input: RegisterInput!) { register(input: $input) { id status waitlistPosition mode companions places registeredOnBehalf accessRequirements accessNotes checkedInAt createdAt person { id email displayName role timeZone createdAt } } }";
    let ask = |email: &str| {
        json!({ "input": { "gatheringId": gathering["id"], "companions": 0, "onBehalfOf":
            { "name": "As Typed", "email": email, "agreementConfirmed": true } } })
    };
    let held = app
        .gql(Some(&snoop), FULL, ask("victim@example.org"))
        .await?
        .ok()?["register"]
        .clone();
    // Asking again (within the limit) answers the same registration, as it does for one the caller made.
    let again = app
        .gql(Some(&snoop), FULL, ask("victim@example.org"))
        .await?
        .ok()?;
    assert_eq!(again["register"]["id"], held["id"]);
    let fresh = app
        .gql(Some(&snoop), FULL, ask("fresh@example.org"))
        .await?
        .ok()?["register"]
        .clone();
    let shape = |a: &Value| {
        let mut a = a.clone();
        for key in ["id", "createdAt"] {
            a[key] = Value::Null;
        }
        a["person"]["id"] = Value::Null;
        a["person"]["email"] = Value::Null;
        a
    };
    assert_eq!(shape(&held), shape(&fresh), "{held} {fresh}");
    assert_eq!(held["status"], "CONFIRMED");
    assert_eq!(held["person"]["displayName"], "As Typed");
    assert!(!held.to_string().contains("private words"), "{held}");
    // It counts against the caller's limit like any other.
    let refused = app
        .gql(Some(&snoop), FULL, ask("third@example.org"))
        .await?;
    assert_eq!(refused.code(), Some("RATE_LIMITED"), "{:?}", refused.body);
    // Checking in is for convenors, whichever the caller was answered with.
    for id in [&held["id"], &fresh["id"]] {
        let check_in = app
            .gql(
                Some(&snoop),
                "mutation($id: ID!) { checkIn(registrationId: $id) { status } }",
                json!({ "id": id }),
            )
            .await?;
        assert_eq!(check_in.code(), Some("FORBIDDEN"), "{:?}", check_in.body);
    }
    // The caller can cancel what they were answered, once, as they could a registration.
    let cancel = "mutation($id: ID!) { cancelRegistration(id: $id) { status } }";
    let cancelled = app
        .gql(Some(&snoop), cancel, json!({ "id": held["id"] }))
        .await?
        .ok()?;
    assert_eq!(cancelled["cancelRegistration"]["status"], "CANCELLED");
    let twice = app
        .gql(Some(&snoop), cancel, json!({ "id": held["id"] }))
        .await?;
    assert_eq!(twice.code(), Some("CONFLICT"), "{:?}", twice.body);
    let stranger = app.sign_in("stranger@example.org").await?;
    let not_theirs = app
        .gql(Some(&stranger), cancel, json!({ "id": held["id"] }))
        .await?;
    assert_eq!(
        not_theirs.code(),
        Some("NOT_FOUND"),
        "{:?}",
        not_theirs.body
    );
    // The person's own registration, its access needs and their mail are as they were.
    let mine = app
        .gql(
            Some(&victim),
            "{ me { registrations { status accessNotes registeredOnBehalf } } }",
            json!({}),
        )
        .await?
        .ok()?;
    assert_eq!(
        mine["me"]["registrations"],
        json!([{ "status": "CONFIRMED", "accessNotes": "private words", "registeredOnBehalf": false }])
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE recipient = 'victim@example.org'")
            .await?,
        victims_mail
    );
    let figures = app
        .gql(
            None,
            "query($slug: String!) { gathering(slug: $slug) { confirmedCount placesLeft } }",
            json!({ "slug": gathering["slug"] }),
        )
        .await?
        .ok()?;
    assert_eq!(
        figures["gathering"],
        json!({ "confirmedCount": 2, "placesLeft": 0 }),
        "only the person and the one newly registered hold places"
    );
    // Erasing their data takes what was asked in their name with it.
    app.gql(Some(&victim), "mutation { eraseMyData }", json!({}))
        .await?
        .ok()?;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM on_behalf_attempts WHERE behalf_name <> '' OR status <> 'CANCELLED'")
            .await?,
        0
    );
    let after = app
        .gql(Some(&snoop), cancel, json!({ "id": held["id"] }))
        .await?;
    assert_eq!(
        after.code(),
        Some("CONFLICT"),
        "cancelled, as a registration made for them would be: {:?}",
        after.body
    );
    still_up(&app).await
}

async fn erasure_reaches_registrations_asked_for_on_my_behalf(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let gathering = app.gathering(&convenor, json!({})).await?;
    let named = app.sign_in("named@example.org").await?;
    let asked = app
        .gql(
            None,
            "mutation($input: RequestRegistrationInput!) { requestRegistration(input: $input) }",
            json!({ "input": { "gatheringId": gathering["id"], "name": "A Friend",
                "email": "friend@example.org", "accessNotes": "their private needs",
                "accessConsent": true, "onBehalfOf": { "name": "Named", "email": "named@example.org",
                "agreementConfirmed": true } } }),
        )
        .await?
        .ok()?;
    assert_eq!(asked["requestRegistration"], true);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM registration_requests")
            .await?,
        1
    );
    app.gql(Some(&named), "mutation { eraseMyData }", json!({}))
        .await?
        .ok()?;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM registration_requests")
            .await?,
        0,
        "the answers held for them go with their data"
    );
    still_up(&app).await
}

async fn erasing_my_data_while_registering_never_leaves_a_placeholder_registered(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let gathering = app.gathering(&convenor, json!({})).await?;
    for round in 0..8 {
        let session = app.sign_in(&format!("racer{round}@example.org")).await?;
        let register = app.register(&session, &gathering["id"], json!({}));
        let erase = app.gql(Some(&session), "mutation { eraseMyData }", json!({}));
        let (registered, erased) = tokio::join!(register, erase);
        let (registered, erased) = (registered?, erased?);
        assert_eq!(erased.ok()?["eraseMyData"], true);
        // Registered (then cancelled by the erasure) or refused as no longer signed in.
        assert!(
            registered.code().is_none() || registered.code() == Some("UNAUTHENTICATED"),
            "{:?}",
            registered.body
        );
    }
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM registrations r JOIN people p ON p.id = r.person_id \
             WHERE p.erased_at IS NOT NULL AND r.status <> 'CANCELLED'"
        )
        .await?,
        0
    );
    still_up(&app).await
}

async fn adding_a_member_shows_nothing_of_the_account_behind_the_address(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let known = app.sign_in("known@example.org").await?;
    app.gql(
        Some(&known),
        "mutation { updateProfile(displayName: \"Private Name\") { id } }",
        json!({}),
    )
    .await?
    .ok()?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Curious Owners").await?;
    let mut answers = Vec::new();
    for email in ["known@example.org", "stranger@example.org"] {
        let reply = app
            .gql(
                Some(&owner),
                ADD,
                json!({ "org": org, "email": email, "role": "MEMBER" }),
            )
            .await?;
        let member = reply.ok()?["addOrganisationMember"].clone();
        for field in ["email", "displayName", "role", "timeZone", "createdAt"] {
            assert!(member["person"][field].is_null(), "{field}: {member}");
        }
        assert!(tells_no_time(&member["person"]["id"]), "{member}");
        let mut member = member;
        member["person"]["id"] = Value::Null;
        answers.push(member);
    }
    assert_eq!(answers[0], answers[1], "the answers differ");
    let listed = app
        .gql(
            Some(&owner),
            "query($slug: String!) { organisation(slug: $slug) { members { person { email displayName role timeZone createdAt } } } }",
            json!({ "slug": "curious-owners" }),
        )
        .await?
        .ok()?;
    assert!(!listed.to_string().contains("Private Name"), "{listed}");
    assert!(
        !listed.to_string().contains("known@example.org"),
        "{listed}"
    );
    still_up(&app).await
}

async fn a_persons_role_time_zone_and_joining_time_are_theirs_alone(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let attendee = app.sign_in("attendee@example.org").await?;
    app.gql(
        Some(&attendee),
        "mutation { updateDigestPreferences(input: { timeZone: \"America/Chicago\" }) { id } }",
        json!({}),
    )
    .await?
    .ok()?;
    let gathering = app.gathering(&convenor, json!({})).await?;
    app.register(&attendee, &gathering["id"], json!({}))
        .await?
        .ok()?;
    // The gathering's convenor sees who registered and their address, not their settings.
    let seen = app
        .gql(
            Some(&convenor),
            "query($slug: String!) { gathering(slug: $slug) { registrations { edges { node { person { email role timeZone createdAt digestPreferences { hour } } } } } } }",
            json!({ "slug": gathering["slug"] }),
        )
        .await?
        .ok()?;
    let person = &seen["gathering"]["registrations"]["edges"][0]["node"]["person"];
    assert_eq!(person["email"], "attendee@example.org");
    for field in ["role", "timeZone", "createdAt", "digestPreferences"] {
        assert!(person[field].is_null(), "{field}: {person}");
    }
    let me = app
        .gql(
            Some(&attendee),
            "{ me { role timeZone createdAt } }",
            json!({}),
        )
        .await?
        .ok()?;
    assert_eq!(me["me"]["timeZone"], "America/Chicago");
    assert_eq!(me["me"]["role"], "ATTENDEE");
    assert!(me["me"]["createdAt"].is_string());
    still_up(&app).await
}

async fn erasing_my_data_gives_my_places_to_the_waitlist_and_forgets_my_mail(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let leaving = app.sign_in("leaving@example.org").await?;
    let waiting = app.sign_in("waiting@example.org").await?;
    let gathering = app
        .gathering(
            &convenor,
            json!({ "title": "One seat", "inPersonCapacity": 1 }),
        )
        .await?;
    let other = app
        .gathering(
            &convenor,
            json!({ "title": "Another seat", "inPersonCapacity": 1 }),
        )
        .await?;
    for g in [&gathering, &other] {
        let first = app.register(&leaving, &g["id"], json!({})).await?.ok()?;
        assert_eq!(first["register"]["status"], "CONFIRMED");
        let second = app.register(&waiting, &g["id"], json!({})).await?.ok()?;
        assert_eq!(second["register"]["status"], "WAITLISTED");
    }
    // Their mail has gone out: sign-in and two confirmations.
    app.mail_to("leaving@example.org", 3).await?;

    let erased = app
        .gql(Some(&leaving), "mutation { eraseMyData }", json!({}))
        .await?
        .ok()?;
    assert_eq!(erased["eraseMyData"], true);

    for g in [&gathering, &other] {
        let data = app
            .gql(
                Some(&waiting),
                "query($slug: String!) { gathering(slug: $slug) { confirmedCount waitlistedCount placesLeft viewerRegistration { status } } }",
                json!({ "slug": g["slug"] }),
            )
            .await?
            .ok()?;
        assert_eq!(
            data["gathering"],
            json!({ "confirmedCount": 1, "waitlistedCount": 0, "placesLeft": 0,
                    "viewerRegistration": { "status": "CONFIRMED" } })
        );
    }
    // The usual promotion mail, once for each gathering.
    let mails = app.mail_to("waiting@example.org", 5).await?;
    let promoted = mails
        .iter()
        .filter(|m| m.text.to_lowercase().contains("place"))
        .count();
    assert!(
        promoted >= 2,
        "{:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    // Nothing in the outbox names them or holds what was sent to them.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE recipient = 'leaving@example.org'")
            .await?,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE recipient LIKE 'erased-%' AND template = 'registration_confirmed' AND CAST(context AS TEXT) LIKE '%seat%'")
            .await?,
        0
    );
    // No more mail goes to them.
    app.drain().await?;
    assert_eq!(
        app.smtp
            .messages()
            .iter()
            .filter(|m| m.to == "leaving@example.org")
            .count(),
        3
    );
    still_up(&app).await
}

async fn erasing_the_last_owner_of_an_organisation_is_refused_until_handed_over(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Held Together").await?;
    let reply = app
        .gql(Some(&owner), "mutation { eraseMyData }", json!({}))
        .await?;
    assert_eq!(reply.code(), Some("CONFLICT"), "{:?}", reply.body);
    assert!(
        reply.message().contains("hand it over"),
        "{}",
        reply.message()
    );
    assert!(reply.message().contains("Held Together"));
    // Nothing was erased: still signed in, still the owner.
    let me = app
        .gql(
            Some(&owner),
            "{ me { email organisations { role } } }",
            json!({}),
        )
        .await?
        .ok()?;
    assert_eq!(
        me["me"],
        json!({ "email": "owner@example.org", "organisations": [{ "role": "OWNER" }] })
    );
    // Handed over, the erasure goes ahead.
    app.gql(
        Some(&owner),
        ADD,
        json!({ "org": org, "email": "next@example.org", "role": "OWNER" }),
    )
    .await?;
    let erased = app
        .gql(Some(&owner), "mutation { eraseMyData }", json!({}))
        .await?
        .ok()?;
    assert_eq!(erased["eraseMyData"], true);
    let next = app.sign_in("next@example.org").await?;
    let mine = app
        .gql(Some(&next), "{ me { organisations { role } } }", json!({}))
        .await?
        .ok()?;
    assert_eq!(mine["me"]["organisations"], json!([{ "role": "OWNER" }]));
    still_up(&app).await
}

async fn two_owners_demoting_or_erasing_each_other_at_once_leave_one_owner(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    for round in 0..4 {
        let (a_email, b_email) = (
            format!("a{round}@example.org"),
            format!("b{round}@example.org"),
        );
        let a = app.sign_in(&a_email).await?;
        let org = app
            .create_organisation(&a, &format!("Twin Owners {round}"))
            .await?;
        app.gql(
            Some(&a),
            ADD,
            json!({ "org": org, "email": b_email, "role": "OWNER" }),
        )
        .await?;
        let b = app.sign_in(&b_email).await?;
        let demote = "mutation($org: ID!, $email: String!) { addOrganisationMember(organisationId: $org, email: $email, role: MEMBER) { role } }";
        let (first, second) = if round % 2 == 0 {
            tokio::join!(
                app.gql(Some(&a), demote, json!({ "org": org, "email": b_email })),
                app.gql(Some(&b), demote, json!({ "org": org, "email": a_email })),
            )
        } else {
            tokio::join!(
                app.gql(Some(&a), "mutation { eraseMyData }", json!({})),
                app.gql(Some(&b), "mutation { eraseMyData }", json!({})),
            )
        };
        let (first, second) = (first?, second?);
        let refused = [&first, &second]
            .iter()
            .filter(|r| r.code().is_some())
            .count();
        assert_eq!(refused, 1, "{:?} / {:?}", first.body, second.body);
        for r in [&first, &second] {
            if let Some(code) = r.code() {
                assert!(matches!(code, "CONFLICT" | "FORBIDDEN"), "{:?}", r.body);
            }
        }
        let owners = app
            .count(&format!(
                "SELECT COUNT(*) FROM organisation_members m JOIN organisations o \
                 ON o.id = m.organisation_id WHERE o.name = 'Twin Owners {round}' AND m.role = 'OWNER'"
            ))
            .await?;
        assert_eq!(owners, 1, "round {round}");
    }
    still_up(&app).await
}

async fn delivered_mail_loses_its_address_and_content_after_the_retention_time(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    app.sign_in("old@example.org").await?;
    app.sign_in("new@example.org").await?;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE status = 'SENT'")
            .await?,
        2
    );
    let long_ago = (Utc::now() - chrono::Duration::days(31)).to_rfc3339();
    app.execute(&format!(
        "UPDATE outbox SET sent_at = '{long_ago}' WHERE recipient = 'old@example.org'"
    ))
    .await?;
    // A server's housekeeping runs as it starts (here, as the test drives it).
    let smtp = SmtpServer::start()?;
    let mut options = Options::new(&smtp);
    options.secret_key = app.options.secret_key.clone();
    options.mail_retention_days = 30;
    let second = start(app.database_url.clone(), smtp, options).await?;
    second.drain().await?;
    let purged = app
        .count("SELECT COUNT(*) FROM outbox WHERE recipient = 'purged@purged.invalid'")
        .await?;
    assert_eq!(purged, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE recipient = 'old@example.org'")
            .await?,
        0
    );
    // What idempotence needs stays: the row, its status, its template.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE status = 'SENT' AND template = 'sign_in'")
            .await?,
        2
    );
    // Recent mail keeps its content.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE recipient = 'new@example.org' AND CAST(context AS TEXT) LIKE '%sign_in_id%'")
            .await?,
        1
    );
    still_up(&second).await?;
    still_up(&app).await
}

async fn access_need_figures_are_only_for_the_gatherings_own_convenors(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let other_convenor = app.convenor("other@example.org").await?;
    app.grant_role("admin@example.org", "ADMIN").await?;
    let admin = app.sign_in("admin@example.org").await?;
    let attendee = app.sign_in("attendee@example.org").await?;
    let gathering = app.gathering(&convenor, json!({})).await?;
    app.register(
        &attendee,
        &gathering["id"],
        json!({ "accessRequirements": ["BSL_INTERPRETER"], "accessConsent": true }),
    )
    .await?
    .ok()?;
    let questions = [
        "query($slug: String!) { gathering(slug: $slug) { accessRequirementTotals { requirement count } } }",
        "query($slug: String!) { gathering(slug: $slug) { registrations(filter: { hasAccessNeeds: true }) { totalCount } } }",
        "query($slug: String!) { gathering(slug: $slug) { registrations(filter: { hasAccessNeeds: false }) { edges { node { id } } } } }",
    ];
    for question in questions {
        for who in [&admin, &other_convenor] {
            let reply = app
                .gql(Some(who), question, json!({ "slug": gathering["slug"] }))
                .await?;
            assert_eq!(
                reply.code(),
                Some("FORBIDDEN"),
                "{question}: {:?}",
                reply.body
            );
            assert!(!reply.body.to_string().contains("BSL"));
            assert!(!reply.body.to_string().contains("\"totalCount\":1"));
        }
        app.gql(
            Some(&convenor),
            question,
            json!({ "slug": gathering["slug"] }),
        )
        .await?
        .ok()?;
    }
    let own = app
        .gql(
            Some(&convenor),
            questions[1],
            json!({ "slug": gathering["slug"] }),
        )
        .await?
        .ok()?;
    assert_eq!(own["gathering"]["registrations"]["totalCount"], 1);
    still_up(&app).await
}

async fn limited_app(db: Backend, limits: groundswell_domain::Limits) -> anyhow::Result<TestApp> {
    let smtp = SmtpServer::start()?;
    let mut options = Options::new(&smtp);
    options.limits = limits;
    start(fresh_database(db).await?, smtp, options).await
}

fn behalf(gathering: &Value, email: &str) -> Value {
    json!({ "input": { "gatheringId": gathering["id"], "onBehalfOf":
        { "name": "Someone", "email": email, "agreementConfirmed": true } } })
}

async fn registering_others_is_limited_per_gathering_and_per_hour(
    db: Backend,
) -> anyhow::Result<()> {
    let app = limited_app(
        db,
        groundswell_domain::Limits {
            on_behalf_per_gathering: 2,
            on_behalf_per_hour: 3,
            ..groundswell_domain::Limits::default()
        },
    )
    .await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let bomber = app.sign_in("bomber@example.org").await?;
    let first = app.gathering(&convenor, json!({})).await?;
    let second = app.gathering(&convenor, json!({})).await?;
    for n in 0..2 {
        app.gql(
            Some(&bomber),
            REGISTER,
            behalf(&first, &format!("p{n}@example.org")),
        )
        .await?
        .ok()?;
    }
    let refused = app
        .gql(Some(&bomber), REGISTER, behalf(&first, "p2@example.org"))
        .await?;
    assert_eq!(refused.code(), Some("RATE_LIMITED"), "{:?}", refused.body);
    assert!(
        refused.message().contains("at most 2"),
        "{}",
        refused.message()
    );
    // Nothing changed: no account for them, no place taken, no mail.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM people WHERE email = 'p2@example.org'")
            .await?,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE recipient = 'p2@example.org'")
            .await?,
        0
    );
    // The hour's limit holds across gatherings.
    app.gql(Some(&bomber), REGISTER, behalf(&second, "p3@example.org"))
        .await?
        .ok()?;
    let refused = app
        .gql(Some(&bomber), REGISTER, behalf(&second, "p4@example.org"))
        .await?;
    assert_eq!(refused.code(), Some("RATE_LIMITED"), "{:?}", refused.body);
    assert!(
        refused.message().contains("at most 3"),
        "{}",
        refused.message()
    );
    // Registering themselves is not limited.
    app.register(&bomber, &second["id"], json!({}))
        .await?
        .ok()?;
    still_up(&app).await
}

async fn a_register_and_cancel_loop_is_stopped_after_a_few_rounds(
    db: Backend,
) -> anyhow::Result<()> {
    let app = limited_app(
        db,
        groundswell_domain::Limits {
            rejoins_per_day: 2,
            ..groundswell_domain::Limits::default()
        },
    )
    .await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let looper = app.sign_in("looper@example.org").await?;
    let gathering = app.gathering(&convenor, json!({})).await?;
    let cancel = "mutation($id: ID!) { cancelRegistration(id: $id) { status } }";
    let mut refused = None;
    for round in 0..5 {
        let reply = app
            .gql(
                Some(&looper),
                "mutation($input: RegisterInput!) { register(input: $input) { id } }",
                json!({ "input": { "gatheringId": gathering["id"] } }),
            )
            .await?;
        if reply.code().is_some() {
            refused = Some((round, reply));
            break;
        }
        let id = reply.body["data"]["register"]["id"].clone();
        app.gql(Some(&looper), cancel, json!({ "id": id }))
            .await?
            .ok()?;
    }
    let (round, reply) = refused.ok_or_else(|| anyhow::anyhow!("the loop was never stopped"))?;
    assert_eq!(round, 3, "first registration and two more");
    assert_eq!(reply.code(), Some("RATE_LIMITED"));
    assert!(reply.message().contains("2 times"), "{}", reply.message());
    // Nothing changed: still cancelled, places untouched.
    let data = app
        .gql(
            Some(&looper),
            "query($slug: String!) { gathering(slug: $slug) { confirmedCount viewerRegistration { status } } }",
            json!({ "slug": gathering["slug"] }),
        )
        .await?
        .ok()?;
    assert_eq!(
        data["gathering"],
        json!({ "confirmedCount": 0, "viewerRegistration": { "status": "CANCELLED" } })
    );
    // Sign-in, then three rounds of confirmed and cancelled: no more.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE recipient = 'looper@example.org'")
            .await?,
        7
    );
    still_up(&app).await
}

async fn adding_members_is_limited_per_hour(db: Backend) -> anyhow::Result<()> {
    let app = limited_app(
        db,
        groundswell_domain::Limits {
            members_added_per_hour: 2,
            ..groundswell_domain::Limits::default()
        },
    )
    .await?;
    let owner = app.sign_in("owner@example.org").await?;
    let first = app.create_organisation(&owner, "First Org").await?;
    let second = app.create_organisation(&owner, "Second Org").await?;
    let add = "mutation($org: ID!, $email: String!) { addOrganisationMember(organisationId: $org, email: $email, role: MEMBER) { role } }";
    app.gql(
        Some(&owner),
        add,
        json!({ "org": first, "email": "m1@example.org" }),
    )
    .await?
    .ok()?;
    app.gql(
        Some(&owner),
        add,
        json!({ "org": second, "email": "m2@example.org" }),
    )
    .await?
    .ok()?;
    let refused = app
        .gql(
            Some(&owner),
            add,
            json!({ "org": second, "email": "m3@example.org" }),
        )
        .await?;
    assert_eq!(refused.code(), Some("RATE_LIMITED"), "{:?}", refused.body);
    assert!(
        refused.message().contains("at most 2"),
        "{}",
        refused.message()
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM people WHERE email = 'm3@example.org'")
            .await?,
        0
    );
    // Adding someone already a member again sends nothing and is not counted.
    app.gql(
        Some(&owner),
        add,
        json!({ "org": first, "email": "m1@example.org" }),
    )
    .await?
    .ok()?;
    still_up(&app).await
}

async fn a_lead_hand_over_racing_a_leave_never_leaves_a_lead_that_has_left(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let lead_owner = app.sign_in("lead@example.org").await?;
    let lead_org = app.create_organisation(&lead_owner, "Lead Org").await?;
    let member_owner = app.sign_in("member@example.org").await?;
    let member_org = app.create_organisation(&member_owner, "Member Org").await?;
    for round in 0..4 {
        let coalition = app
            .form_coalition(
                &lead_owner,
                &lead_org,
                &format!("Race {round}"),
                json!(["SHARING_POWER_AS_EQUALS"]),
            )
            .await?;
        app.join_coalition(&lead_owner, &member_owner, &coalition, &member_org)
            .await?;
        let (hand_over, leave) = tokio::join!(
            app.gql(
                Some(&lead_owner),
                "mutation($c: ID!, $o: ID!) { handOverCoalitionLead(coalitionId: $c, organisationId: $o) { id } }",
                json!({ "c": coalition, "o": member_org }),
            ),
            app.gql(
                Some(&member_owner),
                "mutation($c: ID!, $o: ID!) { leaveCoalition(coalitionId: $c, organisationId: $o) { status } }",
                json!({ "c": coalition, "o": member_org }),
            ),
        );
        let (hand_over, leave) = (hand_over?, leave?);
        let succeeded = [&hand_over, &leave]
            .iter()
            .filter(|r| r.code().is_none())
            .count();
        assert_eq!(succeeded, 1, "{:?} / {:?}", hand_over.body, leave.body);
        let lead_left = app
            .count(&format!(
                "SELECT COUNT(*) FROM coalitions c JOIN coalition_members m \
                 ON m.coalition_id = c.id AND m.organisation_id = c.lead_organisation_id \
                 WHERE c.name = 'Race {round}' AND m.status <> 'ACTIVE'"
            ))
            .await?;
        assert_eq!(lead_left, 0, "round {round}: the lead has left");
        let coalitions = app
            .count(&format!(
                "SELECT COUNT(*) FROM coalitions WHERE name = 'Race {round}'"
            ))
            .await?;
        assert_eq!(coalitions, 1);
    }
    still_up(&app).await
}

/// An admin (signed in, to run digests) and a convenor, `reader@example.org`, taking a daily
/// digest even when empty, due two hours from now; returns the admin's session.
async fn admin_and_daily_reader(app: &TestApp) -> anyhow::Result<String> {
    app.grant_role("admin@example.org", "ADMIN").await?;
    let admin = app.sign_in("admin@example.org").await?;
    let hour = (Utc::now() + chrono::Duration::hours(2)).hour();
    let reader = app.convenor("reader@example.org").await?;
    app.gql(
        Some(&reader),
        "mutation($input: DigestPreferencesInput!) { updateDigestPreferences(input: $input) { id } }",
        json!({ "input": { "frequency": "DAILY", "hour": hour, "timeZone": "UTC", "sendEmpty": true } }),
    )
    .await?
    .ok()?;
    Ok(admin)
}

async fn a_digest_run_ahead_of_time_leaves_later_news_to_the_next_digest(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let admin = admin_and_daily_reader(&app).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Steady Reporters").await?;
    app.pledge_id(&owner, &org, json!({ "title": "Before the first digest" }))
        .await?;
    let send = |as_of: chrono::DateTime<Utc>| {
        app.gql(
            Some(&admin),
            "mutation($asOf: DateTime) { sendDueDigests(asOf: $asOf) }",
            json!({ "asOf": as_of.to_rfc3339() }),
        )
    };
    // Run ahead of the slot, two to three hours from now.
    send(Utc::now() + chrono::Duration::hours(3)).await?.ok()?;
    // Posted after that digest was built, before its slot.
    app.pledge_id(&owner, &org, json!({ "title": "After the first digest" }))
        .await?;
    send(Utc::now() + chrono::Duration::hours(27)).await?.ok()?;
    let mails = app.mail_to("reader@example.org", 3).await?;
    let digests: Vec<_> = mails
        .iter()
        .filter(|m| m.subject.contains("digest"))
        .collect();
    assert_eq!(
        digests.len(),
        2,
        "{:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    let (first, second) = if digests[0].text.contains("Before the first digest") {
        (digests[0], digests[1])
    } else {
        (digests[1], digests[0])
    };
    assert!(
        first.text.contains("Before the first digest"),
        "{}",
        first.text
    );
    assert!(!first.text.contains("After the first digest"));
    assert!(
        second.text.contains("After the first digest"),
        "{}",
        second.text
    );
    assert!(
        !second.text.contains("Before the first digest"),
        "{}",
        second.text
    );

    // A server down for two days: the next run's digest holds everything since, once.
    app.pledge_id(
        &owner,
        &org,
        json!({ "title": "While the server was down" }),
    )
    .await?;
    let queued = send(Utc::now() + chrono::Duration::hours(75)).await?.ok()?;
    // The reader's, and the admin's weekly one when a Monday fell in the gap.
    assert!(queued["sendDueDigests"].as_i64() >= Some(1), "{queued}");
    let again = send(Utc::now() + chrono::Duration::hours(75)).await?.ok()?;
    assert_eq!(again["sendDueDigests"], 0, "a period is sent once");
    let mails = app.mail_to("reader@example.org", 4).await?;
    let third = mails
        .iter()
        .filter(|m| m.subject.contains("digest"))
        .find(|m| m.text.contains("While the server was down"))
        .ok_or_else(|| anyhow::anyhow!("the news of the gap was lost"))?;
    assert!(
        !third.text.contains("After the first digest"),
        "{}",
        third.text
    );
    still_up(&app).await
}

async fn ws_app(db: Backend, connections: u32, subscriptions: u32) -> anyhow::Result<TestApp> {
    let smtp = SmtpServer::start()?;
    let mut options = Options::new(&smtp);
    options.ws_connections_per_address = connections;
    options.ws_subscriptions_per_connection = subscriptions;
    start(fresh_database(db).await?, smtp, options).await
}

async fn a_client_address_holds_only_so_many_websocket_connections(
    db: Backend,
) -> anyhow::Result<()> {
    use tokio_tungstenite::tungstenite::{Error, client::IntoClientRequest};
    let app = ws_app(db, 2, 20).await?;
    let first = ws_connect(&app, None).await?;
    let _second = ws_connect(&app, None).await?;
    let mut request = format!("ws://{}/graphql/ws", app.address).into_client_request()?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    match tokio_tungstenite::connect_async(request).await {
        Err(Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(body.contains("RATE_LIMITED"), "{body}");
            assert!(body.contains("at most 2"), "{body}");
        }
        Err(other) => anyhow::bail!("refused the wrong way: {other}"),
        Ok(_) => anyhow::bail!("a third connection was accepted"),
    }
    // A connection closed gives its place back.
    drop(first);
    let mut reopened = None;
    wait_until(
        "the closed connection's place being given back",
        std::time::Duration::from_secs(5),
        async || {
            if let Ok(socket) = ws_connect(&app, None).await {
                reopened = Some(socket);
            }
            Ok(reopened.is_some())
        },
    )
    .await?;
    still_up(&app).await
}

async fn a_websocket_connection_runs_only_so_many_subscriptions(db: Backend) -> anyhow::Result<()> {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let app = ws_app(db, 16, 2).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Chatty").await?;
    let pledge = app.pledge_id(&owner, &org, json!({})).await?;
    let mut socket = ws_connect(&app, None).await?;
    let subscribe = |id: &str| {
        Message::text(
            json!({ "id": id, "type": "subscribe", "payload": {
                "query": "subscription { progressUpdatePosted { body } }" } })
            .to_string(),
        )
    };
    socket.send(subscribe("1")).await?;
    socket.send(subscribe("2")).await?;
    socket.send(subscribe("3")).await?;
    // The three start side by side: one of them, whichever came last, is refused.
    let refused = ws_next(&mut socket, std::time::Duration::from_secs(5)).await?;
    assert!(refused["payload"]["data"].is_null(), "{refused}");
    assert!(refused.to_string().contains("RATE_LIMITED"), "{refused}");
    assert!(refused.to_string().contains("at most 2"), "{refused}");
    let holding: Vec<&str> = ["1", "2", "3"]
        .into_iter()
        .filter(|id| refused["id"] != *id)
        .collect();
    // Stopping one gives its place to the next.
    socket
        .send(Message::text(
            json!({ "id": holding[0], "type": "complete" }).to_string(),
        ))
        .await?;
    app.wait_for_subscribers(1).await?;
    socket.send(subscribe("4")).await?;
    app.wait_for_subscribers(2).await?;
    app.post_update(
        Some(&owner),
        json!({ "pledgeId": pledge, "body": "Heard twice", "signal": "ON_TRACK" }),
    )
    .await?
    .ok()?;
    let mut heard = std::collections::BTreeSet::new();
    while heard.len() < 2 {
        let message = ws_next(&mut socket, std::time::Duration::from_secs(5)).await?;
        assert_eq!(message["type"], "next", "{message}");
        heard.insert(message["id"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(heard, [holding[1].to_owned(), "4".to_owned()].into());
    still_up(&app).await
}

/// Statements the server runs for one posted update while `subscribers` anonymous clients
/// listen, once each has heard it.
async fn statements_for_one_update(
    app: &TestApp,
    owner: &str,
    pledge: &str,
    subscribers: usize,
) -> anyhow::Result<u64> {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    // Those of an earlier call are gone.
    app.wait_for_subscribers(0).await?;
    let mut sockets = Vec::new();
    for _ in 0..subscribers {
        let mut socket = ws_connect(app, None).await?;
        socket
            .send(Message::text(
                json!({ "id": "1", "type": "subscribe", "payload": {
                    "query": "subscription { progressUpdatePosted { body } }" } })
                .to_string(),
            ))
            .await?;
        sockets.push(socket);
    }
    app.wait_for_subscribers(subscribers).await?;
    let before = app.statements_so_far();
    app.post_update(
        Some(owner),
        json!({ "pledgeId": pledge, "body": "Once for all", "signal": "ON_TRACK" }),
    )
    .await?
    .ok()?;
    for socket in &mut sockets {
        let heard = ws_next(socket, std::time::Duration::from_secs(5)).await?;
        assert_eq!(
            heard["payload"]["data"]["progressUpdatePosted"]["body"],
            "Once for all"
        );
    }
    // Every subscriber has heard it, so it has been loaded and sent: nothing more is coming.
    Ok(app.statements_so_far() - before)
}

async fn an_event_is_loaded_once_however_many_subscribe(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Broadcasters").await?;
    let pledge = app.pledge_id(&owner, &org, json!({})).await?;
    let one = statements_for_one_update(&app, &owner, &pledge, 1).await?;
    let many = statements_for_one_update(&app, &owner, &pledge, 8).await?;
    assert_eq!(one, many, "statements grew with the number of subscribers");
    still_up(&app).await
}

async fn asking_for_sign_in_links_answers_alike_for_known_and_unknown_addresses(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    app.sign_in("known@example.org").await?;
    let ask = "mutation($email: String!) { requestSignIn(email: $email) }";
    let mut answers: Vec<Vec<Value>> = Vec::new();
    for email in ["known@example.org", "unknown@example.org"] {
        // The known address has used one of its five an hour already; ask the same number.
        let asks = if email == "known@example.org" { 5 } else { 6 };
        let mut replies = Vec::new();
        for _ in 0..asks {
            let reply = app.gql(None, ask, json!({ "email": email })).await?;
            replies.push(json!({ "status": reply.status, "body": reply.body }));
        }
        answers.push(replies.split_off(replies.len() - 5));
    }
    assert_eq!(answers[0], answers[1]);
    // The sixth of the hour is refused for both alike, and nothing tells them apart.
    assert_eq!(
        answers[0][4]["body"]["errors"][0]["extensions"]["code"],
        "RATE_LIMITED"
    );
    assert_eq!(answers[0][3]["body"]["data"]["requestSignIn"], true);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM people WHERE email = 'unknown@example.org'")
            .await?,
        0,
        "asking makes no account"
    );
    still_up(&app).await
}

/// An update given its time before a digest was built, but committed after: it belongs to the
/// next digest, never to neither. On PostgreSQL the test holds the organisation's row, which the
/// update waits for after taking its time, while the digest run goes ahead. (On SQLite writers
/// are one at a time and the digest run's line is drawn in a write, so the same order cannot be
/// held open from outside.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn news_committed_after_a_digest_was_built_goes_to_the_next_digest() -> anyhow::Result<()> {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let app = spawn_app(Backend::Postgres).await?;
    let admin = admin_and_daily_reader(&app).await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Late Reporters").await?;
    let pledge = app
        .pledge_id(&owner, &org, json!({ "title": "A pledge" }))
        .await?;
    let send = |as_of: chrono::DateTime<Utc>| {
        let app = &app;
        let admin = admin.clone();
        async move {
            app.gql(
                Some(&admin),
                "mutation($asOf: DateTime) { sendDueDigests(asOf: $asOf) }",
                json!({ "asOf": as_of.to_rfc3339() }),
            )
            .await
        }
    };
    let waiting_on_locks = || {
        app.count(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
    };

    let db = app.database().await?;
    let hold = db.begin().await?;
    hold.execute_unprepared(&format!(
        "SELECT id FROM organisations WHERE id = '{org}' FOR UPDATE"
    ))
    .await?;
    let post = app.post_update(
        Some(&owner),
        json!({ "pledgeId": pledge, "body": "Posted while the digest ran.", "signal": "ON_TRACK" }),
    );
    let digest = send(Utc::now() + chrono::Duration::hours(3));
    tokio::pin!(post, digest);
    // The update takes its time, then waits for the organisation's row…
    tokio::select! {
        _ = &mut post => anyhow::bail!("the update did not wait for the row held"),
        waited = wait_until(
            "the update waiting for the organisation's row",
            std::time::Duration::from_secs(20),
            async || Ok(waiting_on_locks().await? >= 1),
        ) => waited?,
    }
    // …while a digest run goes ahead: it finishes, or waits for the update to commit.
    let mut sent = None;
    tokio::select! {
        reply = &mut digest => sent = Some(reply),
        _ = &mut post => anyhow::bail!("the update did not wait for the row held"),
        waited = wait_until(
            "the digest run waiting for the update",
            std::time::Duration::from_secs(20),
            async || Ok(waiting_on_locks().await? >= 2),
        ) => waited?,
    }
    hold.commit().await?;
    post.await?.ok()?;
    match sent {
        Some(reply) => reply?.ok()?,
        None => digest.await?.ok()?,
    };
    // The next day's digest.
    send(Utc::now() + chrono::Duration::hours(27)).await?.ok()?;
    let mails = app.mail_to("reader@example.org", 3).await?;
    let holding: Vec<_> = mails
        .iter()
        .filter(|m| m.subject.contains("digest") && m.text.contains("Posted while the digest ran."))
        .collect();
    assert_eq!(
        holding.len(),
        1,
        "the update is in exactly one digest: {:?}",
        mails.iter().map(|m| &m.text).collect::<Vec<_>>()
    );
    still_up(&app).await
}
