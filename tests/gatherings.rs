//! Gatherings: who runs them, who sees them, calendars and the convenors' export.

use serde_json::{Value, json};

use crate::{helpers::*, on_both_databases};

on_both_databases!(
    convenors_create_and_publish_gatherings_and_drafts_stay_hidden,
    others_cannot_create_or_change_gatherings,
    gatherings_list_upcoming_first_with_filters,
    the_calendar_file_parses_with_the_gatherings_time_zone,
    the_registrations_csv_opens_cleanly_for_convenors_only,
    bad_gathering_input_names_the_field,
    an_update_is_saved_and_read_back_and_a_larger_capacity_promotes,
    the_benchmarks_gathering_page_signed_in_costs_two_statements,
);

async fn convenors_create_and_publish_gatherings_and_drafts_stay_hidden(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let attendee = app.sign_in("attendee@example.org").await?;
    let draft = app
        .gathering(
            &convenor,
            json!({ "title": "Leeds Gathering", "slug": "leeds-2027", "publish": false }),
        )
        .await?;
    let query = "{ gathering(slug: \"leeds-2027\") { title status startsAtLocal timeZone } }";
    let hidden = app.gql(Some(&attendee), query, json!({})).await?.ok()?;
    assert!(
        hidden["gathering"].is_null(),
        "a draft is hidden from attendees"
    );
    let seen = app.gql(Some(&convenor), query, json!({})).await?.ok()?;
    assert_eq!(seen["gathering"]["status"], "DRAFT");

    app.gql(
        Some(&convenor),
        "mutation($id: ID!) { publishGathering(id: $id) { status } }",
        json!({ "id": draft["id"] }),
    )
    .await?
    .ok()?;
    let public = app.gql(None, query, json!({})).await?.ok()?;
    assert_eq!(public["gathering"]["status"], "PUBLISHED");
    assert_eq!(public["gathering"]["timeZone"], "Europe/London");
    assert!(
        public["gathering"]["startsAtLocal"]
            .as_str()
            .unwrap_or_default()
            .contains('+')
    );
    Ok(())
}

async fn others_cannot_create_or_change_gatherings(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let other_convenor = app.convenor("other@example.org").await?;
    let attendee = app.sign_in("attendee@example.org").await?;
    let owner = app.sign_in("owner@example.org").await?;
    let org = app.create_organisation(&owner, "Token Holders").await?;
    let token = app.create_api_token(Some(&owner), &org).await?.ok()?["createApiToken"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let gathering = app.gathering(&convenor, json!({})).await?;
    let create = "mutation { createGathering(input: { title: \"Mine\", startsAt: \"2030-01-01T10:00:00Z\", endsAt: \"2030-01-01T12:00:00Z\", format: ONLINE }) { id } }";
    let update = "mutation($id: ID!) { updateGathering(id: $id, input: { title: \"Taken over\" }) { title } }";
    let cancel = "mutation($id: ID!) { cancelGathering(id: $id, reason: \"no\") { status } }";
    for (who, credential, create_code, change_code) in [
        (
            "an attendee",
            Some(attendee.as_str()),
            "FORBIDDEN",
            "FORBIDDEN",
        ),
        (
            "an organisation token",
            Some(token.as_str()),
            "FORBIDDEN",
            "FORBIDDEN",
        ),
        (
            "another gathering's convenor",
            Some(other_convenor.as_str()),
            "",
            "FORBIDDEN",
        ),
        ("nobody", None, "UNAUTHENTICATED", "UNAUTHENTICATED"),
    ] {
        if !create_code.is_empty() {
            let reply = app.gql(credential, create, json!({})).await?;
            assert_eq!(
                reply.code(),
                Some(create_code),
                "create by {who}: {:?}",
                reply.body
            );
        }
        for mutation in [update, cancel] {
            let reply = app
                .gql(credential, mutation, json!({ "id": gathering["id"] }))
                .await?;
            assert_eq!(reply.code(), Some(change_code), "{who}: {:?}", reply.body);
        }
    }
    let unchanged = app
        .gql(
            None,
            "query($s: String!) { gathering(slug: $s) { title status } }",
            json!({ "s": gathering["slug"] }),
        )
        .await?
        .ok()?;
    assert_eq!(unchanged["gathering"]["title"], gathering["title"]);
    assert_eq!(unchanged["gathering"]["status"], "PUBLISHED");
    Ok(())
}

async fn gatherings_list_upcoming_first_with_filters(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let now = chrono::Utc::now();
    let at = |days: i64| (now + chrono::Duration::days(days)).to_rfc3339();
    let until =
        |days: i64| (now + chrono::Duration::days(days) + chrono::Duration::hours(2)).to_rfc3339();
    app.gathering(
        &convenor,
        json!({ "title": "Later", "startsAt": at(60), "endsAt": until(60), "area": "LONDON" }),
    )
    .await?;
    app.gathering(&convenor, json!({ "title": "Sooner", "startsAt": at(10), "endsAt": until(10), "format": "ONLINE", "inPersonCapacity": null, "onlineCapacity": 500 })).await?;
    app.gathering(
        &convenor,
        json!({ "title": "Draft", "startsAt": at(5), "endsAt": until(5), "publish": false }),
    )
    .await?;
    app.gathering(
        &convenor,
        json!({ "title": "Over", "startsAt": at(-10), "endsAt": until(-10) }),
    )
    .await?;

    let titles = |data: &Value| -> Vec<String> {
        data["gatherings"]["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["node"]["title"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let list = "query($filter: GatheringFilter) { gatherings(filter: $filter) { totalCount edges { node { title } } } }";
    let public = app.gql(None, list, json!({})).await?.ok()?;
    assert_eq!(titles(&public), ["Sooner", "Later"]);
    let as_convenor = app.gql(Some(&convenor), list, json!({})).await?.ok()?;
    assert_eq!(titles(&as_convenor), ["Draft", "Sooner", "Later"]);
    let past = app
        .gql(None, list, json!({ "filter": { "when": "PAST" } }))
        .await?
        .ok()?;
    assert_eq!(titles(&past), ["Over"]);
    let online = app
        .gql(None, list, json!({ "filter": { "format": "ONLINE" } }))
        .await?
        .ok()?;
    assert_eq!(titles(&online), ["Sooner"]);
    let london = app
        .gql(None, list, json!({ "filter": { "area": "LONDON" } }))
        .await?
        .ok()?;
    assert_eq!(titles(&london), ["Later"]);

    let first = app.gql(None, "{ gatherings(first: 1) { edges { node { title } } pageInfo { hasNextPage endCursor } } }", json!({})).await?.ok()?;
    assert_eq!(first["gatherings"]["pageInfo"]["hasNextPage"], true);
    let next = app
        .gql(None, "query($a: String) { gatherings(first: 1, after: $a) { edges { node { title } } pageInfo { hasNextPage } } }", json!({ "a": first["gatherings"]["pageInfo"]["endCursor"] }))
        .await?
        .ok()?;
    assert_eq!(titles(&next), ["Later"]);
    assert_eq!(next["gatherings"]["pageInfo"]["hasNextPage"], false);
    Ok(())
}

async fn the_calendar_file_parses_with_the_gatherings_time_zone(db: Backend) -> anyhow::Result<()> {
    use icalendar::{Component, EventLike};
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let gathering = app
        .gathering(&convenor, json!({
            "title": "Summer gathering; with commas, and a very long title that must be folded across lines by the writer",
            "slug": "summer",
            "description": "Bring yourself.\nEveryone welcome.",
            "startsAt": "2031-07-05T09:00:00Z",
            "endsAt": "2031-07-05T15:30:00Z",
            "timeZone": "Europe/London",
            "joiningUrl": "https://meet.example/secret-room",
        }))
        .await?;
    let response = app
        .http
        .get(app.url("/gatherings/summer.ics"))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()?
            .starts_with("text/calendar")
    );
    let text = response.text().await?;
    assert!(
        !text.contains("secret-room"),
        "the public calendar has no joining link"
    );

    let calendar: icalendar::Calendar = text.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let event = calendar
        .events()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no event"))?;
    assert_eq!(event.get_summary(), gathering["title"].as_str());
    assert_eq!(
        event.get_description(),
        Some("Bring yourself.\nEveryone welcome.")
    );
    assert_eq!(
        event.get_location(),
        Some("Leeds Civic Hall, Calverley Street, Leeds LS1 1UR")
    );
    match event.get_start() {
        Some(icalendar::DatePerhapsTime::DateTime(icalendar::CalendarDateTime::WithTimezone {
            date_time,
            tzid,
        })) => {
            assert_eq!(tzid, "Europe/London");
            assert_eq!(
                date_time.to_string(),
                "2031-07-05 10:00:00",
                "09:00 UTC is 10:00 in a London summer"
            );
        }
        other => anyhow::bail!("start is not a zoned time: {other:?}"),
    }
    assert!(
        text.contains("BEGIN:VTIMEZONE") && text.contains("TZID:Europe/London"),
        "{text}"
    );
    assert!(text.contains("TZOFFSETTO:+0100"), "{text}");
    assert!(
        text.lines().all(|line| line.len() <= 75),
        "lines are folded"
    );

    let missing = app.http.get(app.url("/gatherings/nope.ics")).send().await?;
    assert_eq!(missing.status(), 404);
    Ok(())
}

async fn the_registrations_csv_opens_cleanly_for_convenors_only(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let attendee = app.sign_in("attendee@example.org").await?;
    let gathering = app
        .gathering(&convenor, json!({ "slug": "csv-day" }))
        .await?;
    let awkward = [
        (
            "Zoë O'Brien, \"Zo\"",
            "zoe@example.org",
            "Step-free route please; no stairs",
        ),
        (
            "=HYPERLINK(\"http://evil\")",
            "formula@example.org",
            "+44 and @mentions",
        ),
        ("Siân Łukasz 李", "sian@example.org", "Line one\nline two"),
    ];
    for (name, email, notes) in awkward {
        app.register(
            &attendee,
            &gathering["id"],
            json!({
                "onBehalfOf": { "name": name, "email": email, "agreementConfirmed": true },
                "accessRequirements": ["STEP_FREE_ACCESS", "BSL_INTERPRETER"],
                "accessNotes": notes,
                "accessConsent": true,
            }),
        )
        .await?
        .ok()?;
    }

    let url = app.url("/gatherings/csv-day/registrations.csv");
    let refused = app.http.get(&url).bearer_auth(&attendee).send().await?;
    assert_eq!(refused.status(), 403);
    let anonymous = app.http.get(&url).send().await?;
    assert_eq!(anonymous.status(), 401);

    let response = app.http.get(&url).bearer_auth(&convenor).send().await?;
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await?;
    assert!(
        bytes.starts_with("\u{feff}".as_bytes()),
        "a BOM tells spreadsheets it is UTF-8"
    );
    let mut reader = csv::Reader::from_reader(&bytes[3..]);
    let headers = reader.headers()?.clone();
    assert_eq!(&headers[0], "Name");
    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>()?;
    assert_eq!(rows.len(), 3);
    assert_eq!(&rows[0][0], "Zoë O'Brien, \"Zo\"");
    assert_eq!(&rows[0][1], "zoe@example.org");
    assert_eq!(&rows[0][6], "Step-free access; BSL interpreter");
    assert_eq!(
        &rows[1][0], "'=HYPERLINK(\"http://evil\")",
        "formulas are defused"
    );
    assert_eq!(&rows[1][7], "'+44 and @mentions");
    assert_eq!(&rows[2][0], "Siân Łukasz 李");
    assert_eq!(&rows[2][7], "Line one\nline two");
    Ok(())
}

async fn bad_gathering_input_names_the_field(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let create =
        "mutation($input: CreateGatheringInput!) { createGathering(input: $input) { id } }";
    let base = json!({ "title": "Test gathering", "startsAt": "2030-01-01T10:00:00Z", "endsAt": "2030-01-01T12:00:00Z", "format": "HYBRID" });
    for (change, field) in [
        (json!({ "title": "" }), "title"),
        (json!({ "endsAt": "2030-01-01T09:00:00Z" }), "endsAt"),
        (json!({ "timeZone": "Mars/Olympus" }), "timeZone"),
        (json!({ "inPersonCapacity": -1 }), "inPersonCapacity"),
        (json!({ "joiningUrl": "not a url" }), "joiningUrl"),
        (
            json!({ "registrationOpensAt": "2029-12-02T00:00:00Z", "registrationClosesAt": "2029-12-01T00:00:00Z" }),
            "registrationClosesAt",
        ),
        (json!({ "format": "SOMEWHERE" }), "format"),
    ] {
        let mut input = base.clone();
        if let (Some(input), Some(change)) = (input.as_object_mut(), change.as_object()) {
            input.extend(change.clone());
        }
        let reply = app
            .gql(Some(&convenor), create, json!({ "input": input }))
            .await?;
        assert_eq!(
            reply.code(),
            Some("BAD_USER_INPUT"),
            "{field}: {:?}",
            reply.body
        );
        assert_eq!(reply.field(), Some(field), "{:?}", reply.body);
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM gatherings").await?, 0);
    Ok(())
}

async fn an_update_is_saved_and_read_back_and_a_larger_capacity_promotes(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let gathering = app
        .gathering(&convenor, json!({ "inPersonCapacity": 1 }))
        .await?;
    let first = app.sign_in("first@example.org").await?;
    let second = app.sign_in("second@example.org").await?;
    app.register(&first, &gathering["id"], json!({}))
        .await?
        .ok()?;
    let waiting = app
        .register(&second, &gathering["id"], json!({}))
        .await?
        .ok()?;
    assert_eq!(waiting["register"]["status"], "WAITLISTED");
    app.gql(
        Some(&convenor),
        "mutation($id: ID!, $input: UpdateGatheringInput!) { updateGathering(id: $id, input: $input) { id } }",
        json!({ "id": gathering["id"], "input": { "title": "A new title", "venue": "The new hall", "inPersonCapacity": 2 } }),
    )
    .await?
    .ok()?;
    // Read back by someone else, in a new request: what was saved, not what was answered.
    let read = app
        .gql(
            Some(&second),
            "query($slug: String!) { gathering(slug: $slug) { title venue inPersonCapacity confirmedCount viewerRegistration { status } } }",
            json!({ "slug": gathering["slug"] }),
        )
        .await?
        .ok()?;
    assert_eq!(
        read["gathering"],
        json!({ "title": "A new title", "venue": "The new hall", "inPersonCapacity": 2,
                "confirmedCount": 2, "viewerRegistration": { "status": "CONFIRMED" } })
    );
    Ok(())
}

/// The gathering page as the benchmark (`bench/src/run.rs`) asks for it, signed in.
const BENCHMARK_GATHERING_PAGE: &str = "query GatheringPage($slug: String!) { gathering(slug: $slug) { \
    id title startsAt endsAt format venue placesLeft confirmedCount confirmedPlaces \
    waitlistedCount registrationOpen viewerRegistration { id status mode companions waitlistPosition } } }";

async fn the_benchmarks_gathering_page_signed_in_costs_two_statements(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let gathering = app
        .gathering(
            &convenor,
            json!({ "slug": "page-2027", "inPersonCapacity": 1 }),
        )
        .await?;
    let mut people = Vec::new();
    for email in [
        "registered@example.org",
        "first-waiting@example.org",
        "second-waiting@example.org",
    ] {
        let person = app.sign_in(email).await?;
        app.register(&person, &gathering["id"], json!({}))
            .await?
            .ok()?;
        people.push(person);
    }
    let not_registered = app.sign_in("browsing@example.org").await?;
    app.settle().await;

    // Who is calling; then the gathering with its counts and the caller's registration, with
    // their place on the waitlist, in one statement.
    for (person, status, position) in [
        (&people[0], "CONFIRMED", Value::Null),
        (&people[1], "WAITLISTED", json!(1)),
        (&people[2], "WAITLISTED", json!(2)),
    ] {
        let (page, count) = app
            .gql_counting(
                Some(person),
                BENCHMARK_GATHERING_PAGE,
                json!({ "slug": "page-2027" }),
            )
            .await?;
        let page = page.ok()?;
        assert_eq!(page["gathering"]["confirmedCount"], 1);
        assert_eq!(page["gathering"]["waitlistedCount"], 2);
        let mine = &page["gathering"]["viewerRegistration"];
        assert_eq!(mine["status"], status);
        assert_eq!(mine["waitlistPosition"], position, "{status}");
        println!("statements: the benchmark's gathering page, signed in, {status} = {count}");
        assert_eq!(
            count, 2,
            "statements for the gathering page signed in, {status}"
        );

        // The same registration as the person's own list gives it, read another way.
        let own = app
            .gql(
                Some(person),
                "{ me { registrations { id status waitlistPosition } } }",
                json!({}),
            )
            .await?
            .ok()?;
        let listed = &own["me"]["registrations"][0];
        assert_eq!(listed["id"], mine["id"]);
        assert_eq!(listed["waitlistPosition"], mine["waitlistPosition"]);
    }

    // Someone not registered: the same count, and no registration.
    let (page, count) = app
        .gql_counting(
            Some(&not_registered),
            BENCHMARK_GATHERING_PAGE,
            json!({ "slug": "page-2027" }),
        )
        .await?;
    let page = page.ok()?;
    assert!(page["gathering"]["viewerRegistration"].is_null());
    assert_eq!(
        count, 2,
        "statements for the gathering page, not registered"
    );
    Ok(())
}
