//! The attendee's pages over real HTTP: security headers, CSRF, the registration form and its
//! errors, registering with only an email (page and GraphQL) over the real SMTP server,
//! "my registrations", easy read. The browser tests (axe, keyboard, 320 px) are at the end.

use std::collections::HashMap;

use anyhow::Context;
use serde_json::{Value, json};

use crate::{helpers::*, on_both_databases};

on_both_databases!(
    pages_send_strict_security_headers_and_keep_the_calendar_file,
    registering_with_only_an_email_through_the_page_confirms_with_the_calendar,
    registering_with_only_an_email_through_graphql_confirms_once,
    a_registration_link_is_refused_after_it_expires_and_its_answers_are_deleted,
    a_form_posted_without_the_visitors_csrf_token_is_refused,
    a_form_with_errors_keeps_every_answer_and_links_to_each_wrong_field,
    signed_in_people_register_at_once_and_manage_their_registrations,
    a_session_cookie_that_is_no_longer_valid_signs_the_visitor_out,
    the_sign_in_page_without_a_token_mails_the_usual_link,
    people_who_prefer_easy_read_get_easy_read_pages_and_mail_in_both_parts,
);

/// A visitor with a cookie jar, speaking to the pages as a browser would (no redirects
/// followed, so each answer can be checked).
struct Visitor<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    /// The value of the first hidden `name` field.
    fn hidden(&self, name: &str) -> anyhow::Result<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .with_context(|| format!("no {name} field in {}", self.body))?
            + marker.len();
        let end = self.body[start..].find('"').context("unterminated value")?;
        Ok(self.body[start..start + end].to_owned())
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn title(&self) -> &str {
        let start = self.body.find("<title>").map_or(0, |i| i + 7);
        let end = self.body.find("</title>").unwrap_or(start);
        &self.body[start..end]
    }
}

impl<'a> Visitor<'a> {
    fn new(app: &'a TestApp) -> anyhow::Result<Self> {
        Ok(Self {
            app,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            cookies: HashMap::new(),
        })
    }

    fn with_session(app: &'a TestApp, session: &str) -> anyhow::Result<Self> {
        let mut visitor = Self::new(app)?;
        visitor
            .cookies
            .insert("groundswell_session".to_owned(), session.to_owned());
        Ok(visitor)
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, response: reqwest::Response) -> anyhow::Result<Page> {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str()?;
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() || text.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        Ok(Page {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await?,
        })
    }

    async fn get(&mut self, path: &str) -> anyhow::Result<Page> {
        let response = self
            .http
            .get(self.app.url(path))
            .header("cookie", self.cookie_header())
            .send()
            .await?;
        self.finish(response).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Page> {
        let response = self
            .http
            .post(self.app.url(path))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await?;
        self.finish(response).await
    }
}

/// The token from the newest registration link mailed to `email`.
async fn registration_link_token(
    app: &TestApp,
    email: &str,
    count: usize,
) -> anyhow::Result<String> {
    app.drain().await?;
    let links: Vec<Mail> = app
        .smtp
        .messages()
        .into_iter()
        .filter(|m| m.to == email && m.subject.starts_with("Confirm your place"))
        .collect();
    let Some(link) = links.get(count.wrapping_sub(1)) else {
        anyhow::bail!("no registration link reached {email}")
    };
    let text = &link.text;
    let marker = "/registrations/confirm?token=";
    let start = text.find(marker).context("no link in the mail")? + marker.len();
    Ok(text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect())
}

async fn convenor_and_gathering(app: &TestApp, fields: Value) -> anyhow::Result<(String, Value)> {
    let convenor = app.convenor("convenor@example.org").await?;
    let gathering = app.gathering(&convenor, fields).await?;
    Ok((convenor, gathering))
}

async fn pages_send_strict_security_headers_and_keep_the_calendar_file(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let (_, gathering) =
        convenor_and_gathering(
        &app,
        json!({ "slug": "leeds-day", "title": "Leeds <day>", "description": "Come along.\n\nBring a friend." }),
    )
            .await?;
    let mut visitor = Visitor::new(&app)?;
    for path in [
        "/",
        "/gatherings/leeds-day",
        "/sign-in",
        "/my/registrations",
    ] {
        let page = visitor.get(path).await?;
        assert!(matches!(page.status, 200 | 401), "{path}: {}", page.status);
        let csp = page.header("content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(page.header("x-content-type-options"), "nosniff");
        assert_eq!(page.header("referrer-policy"), "no-referrer");
        assert_eq!(page.header("cache-control"), "private, no-store");
        assert!(!page.body.contains("<script"), "{path}");
        assert!(!page.body.contains("style="), "{path}: no inline style");
    }
    let home = visitor.get("/").await?;
    assert!(
        home.body.contains("Leeds &lt;day&gt;"),
        "titles are escaped"
    );
    assert!(home.body.contains("10 places left"));
    assert!(home.body.contains("More resources, better used"));
    let page = visitor.get("/gatherings/leeds-day").await?;
    assert!(page.body.contains("Step-free access"));
    assert!(page.body.contains("name=\"csrf\""));
    assert!(page.body.contains("<p>Bring a friend.</p>"));
    assert_eq!(visitor.get("/gatherings/nowhere").await?.status, 404);
    let ics = app
        .http
        .get(app.url("/gatherings/leeds-day.ics"))
        .send()
        .await?;
    assert_eq!(ics.status(), 200);
    assert!(ics.text().await?.contains("BEGIN:VCALENDAR"));
    let css = app.http.get(app.url("/static/pages.css")).send().await?;
    assert_eq!(css.status(), 200);
    let icon = app
        .http
        .get(app.url("/static/icons/calendar.svg"))
        .send()
        .await?;
    assert_eq!(
        icon.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/svg+xml")
    );
    let _ = gathering;
    Ok(())
}

async fn registering_with_only_an_email_through_the_page_confirms_with_the_calendar(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    convenor_and_gathering(&app, json!({ "slug": "by-email", "title": "By email" })).await?;
    let mut visitor = Visitor::new(&app)?;
    let page = visitor.get("/gatherings/by-email").await?;
    let csrf = page.hidden("csrf")?;
    let sent = visitor
        .post(
            "/gatherings/by-email/register",
            &[
                ("csrf", &csrf),
                ("mode", "IN_PERSON"),
                ("name", "Ada Lovelace"),
                ("email", "Ada@Example.org"),
                ("companions-coming", "yes"),
                ("access", "STEP_FREE_ACCESS"),
                ("access-notes", "I use a wheelchair"),
                ("access-consent", "yes"),
            ],
        )
        .await?;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert!(sent.body.contains("Check your email"), "{}", sent.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM registrations").await?, 0);
    let token = registration_link_token(&app, "ada@example.org", 1).await?;
    let stored = app
        .count("SELECT COUNT(*) FROM registration_requests WHERE answers IS NOT NULL")
        .await?;
    assert_eq!(stored, 1);

    // Mail scanners fetch the link: the GET shows a button and changes nothing.
    let link = format!("/registrations/confirm?token={token}");
    let mut clicker = Visitor::new(&app)?;
    for _ in 0..2 {
        let page = clicker.get(&link).await?;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("Confirm my registration"));
        assert!(page.body.contains("By email"));
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM registrations").await?, 0);
    let csrf = clicker.get(&link).await?.hidden("csrf")?;

    // Without the CSRF token, nothing happens.
    let forged = clicker
        .post("/registrations/confirm", &[("token", &token)])
        .await?;
    assert_eq!(forged.status, 403);
    assert_eq!(app.count("SELECT COUNT(*) FROM registrations").await?, 0);

    let done = clicker
        .post(
            "/registrations/confirm",
            &[("csrf", &csrf), ("token", &token)],
        )
        .await?;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains("Registration confirmed"),
        "{}",
        done.body
    );
    assert!(clicker.cookies.contains_key("groundswell_session"));
    let confirmation = app
        .mail_to("ada@example.org", 2)
        .await?
        .into_iter()
        .find(|m| m.subject.contains("is confirmed"))
        .context("no confirmation mail")?;
    assert_eq!(confirmation.attachments.len(), 1);
    assert!(confirmation.attachments[0].2.contains("BEGIN:VCALENDAR"));

    // Signed in by the confirmation: their registration, with their own access needs.
    let mine = clicker.get("/my/registrations").await?;
    assert_eq!(mine.status, 200);
    assert!(mine.body.contains("Confirmed"), "{}", mine.body);
    assert!(mine.body.contains("Step-free access"));
    assert!(mine.body.contains("I use a wheelchair"));
    let named = app
        .count("SELECT COUNT(*) FROM people WHERE email = 'ada@example.org' AND display_name = 'Ada Lovelace'")
        .await?;
    assert_eq!(named, 1);
    let places = app
        .count("SELECT COUNT(*) FROM registrations WHERE companions = 1")
        .await?;
    assert_eq!(places, 1, "one personal assistant or carer comes too");
    // The answers no longer wait anywhere.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM registration_requests WHERE answers IS NOT NULL")
            .await?,
        0
    );

    // The link works once.
    let again = clicker
        .post(
            "/registrations/confirm",
            &[("csrf", &csrf), ("token", &token)],
        )
        .await?;
    assert_eq!(again.status, 400);
    assert!(again.body.contains("expired"));
    assert_eq!(clicker.get(&link).await?.status, 400);
    assert_eq!(app.count("SELECT COUNT(*) FROM registrations").await?, 1);
    Ok(())
}

const REQUEST: &str =
    "mutation($input: RequestRegistrationInput!) { requestRegistration(input: $input) }";
const CONFIRM: &str = "mutation($token: String!) { confirmRegistration(token: $token) { status mode companions waitlistPosition gathering { slug } } }";

async fn registering_with_only_an_email_through_graphql_confirms_once(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let (_, gathering) = convenor_and_gathering(
        &app,
        json!({ "slug": "by-api", "format": "HYBRID", "onlineCapacity": 1, "joiningUrl": "https://meet.example.org/x" }),
    )
    .await?;
    let input = json!({ "gatheringId": gathering["id"], "mode": "ONLINE", "name": "Grace", "email": "grace@example.org" });
    let reply = app
        .gql(None, REQUEST, json!({ "input": input }))
        .await?
        .ok()?;
    assert_eq!(reply["requestRegistration"], true);
    let token = registration_link_token(&app, "grace@example.org", 1).await?;
    let confirmed = app
        .gql(None, CONFIRM, json!({ "token": token }))
        .await?
        .ok()?;
    assert_eq!(confirmed["confirmRegistration"]["status"], "CONFIRMED");
    assert_eq!(confirmed["confirmRegistration"]["mode"], "ONLINE");
    // The API answers the registration only: no session is made that nobody receives.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions s JOIN people p ON p.id = s.person_id WHERE p.email = 'grace@example.org'")
            .await?,
        0
    );
    let mail = app
        .mail_to("grace@example.org", 2)
        .await?
        .into_iter()
        .find(|m| m.subject.contains("is confirmed"))
        .context("no confirmation")?;
    assert_eq!(mail.attachments.len(), 1);

    let again = app.gql(None, CONFIRM, json!({ "token": token })).await?;
    assert_eq!(again.code(), Some("BAD_USER_INPUT"));
    assert_eq!(again.field(), Some("token"));
    assert_eq!(app.count("SELECT COUNT(*) FROM registrations").await?, 1);

    // The second person finds the one online place taken: waitlisted by the usual rules.
    let input = json!({ "gatheringId": gathering["id"], "mode": "ONLINE", "name": "Hedy", "email": "hedy@example.org" });
    app.gql(None, REQUEST, json!({ "input": input }))
        .await?
        .ok()?;
    let token = registration_link_token(&app, "hedy@example.org", 1).await?;
    let waiting = app
        .gql(None, CONFIRM, json!({ "token": token }))
        .await?
        .ok()?;
    assert_eq!(waiting["confirmRegistration"]["status"], "WAITLISTED");
    assert_eq!(waiting["confirmRegistration"]["waitlistPosition"], 1);

    // Bad answers are refused before anything is mailed.
    let bad = json!({ "gatheringId": gathering["id"], "name": "X", "email": "not-an-address" });
    let refused = app.gql(None, REQUEST, json!({ "input": bad })).await?;
    assert_eq!(refused.code(), Some("BAD_USER_INPUT"));
    assert_eq!(refused.field(), Some("email"));
    let bad = json!({ "gatheringId": gathering["id"], "name": "X", "email": "x@example.org", "accessRequirements": ["QUIET_SPACE"] });
    let refused = app.gql(None, REQUEST, json!({ "input": bad })).await?;
    assert_eq!(refused.field(), Some("accessConsent"));

    // Five links an hour for one address, as for sign-in.
    for _ in 0..4 {
        let input =
            json!({ "gatheringId": gathering["id"], "name": "Ida", "email": "ida@example.org" });
        app.gql(None, REQUEST, json!({ "input": input }))
            .await?
            .ok()?;
    }
    let input =
        json!({ "gatheringId": gathering["id"], "name": "Ida", "email": "ida@example.org" });
    app.gql(None, REQUEST, json!({ "input": input.clone() }))
        .await?
        .ok()?;
    let limited = app.gql(None, REQUEST, json!({ "input": input })).await?;
    assert_eq!(limited.code(), Some("RATE_LIMITED"));
    Ok(())
}

async fn a_registration_link_is_refused_after_it_expires_and_its_answers_are_deleted(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let (_, gathering) = convenor_and_gathering(&app, json!({ "slug": "late" })).await?;
    let input = json!({ "gatheringId": gathering["id"], "name": "Lin", "email": "lin@example.org", "accessNotes": "Private note", "accessConsent": true });
    app.gql(None, REQUEST, json!({ "input": input }))
        .await?
        .ok()?;
    let token = registration_link_token(&app, "lin@example.org", 1).await?;
    app.execute("UPDATE registration_requests SET expires_at = created_at")
        .await?;
    let mut visitor = Visitor::new(&app)?;
    let page = visitor
        .get(&format!("/registrations/confirm?token={token}"))
        .await?;
    assert_eq!(page.status, 400);
    let refused = app.gql(None, CONFIRM, json!({ "token": token })).await?;
    assert_eq!(refused.code(), Some("BAD_USER_INPUT"));
    assert_eq!(app.count("SELECT COUNT(*) FROM registrations").await?, 0);
    // The next request anywhere sweeps expired ones away, answers and all.
    let other = json!({ "gatheringId": gathering["id"], "name": "Mo", "email": "mo@example.org" });
    app.gql(None, REQUEST, json!({ "input": other }))
        .await?
        .ok()?;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM registration_requests WHERE email = 'lin@example.org'")
            .await?,
        0
    );
    Ok(())
}

async fn a_form_posted_without_the_visitors_csrf_token_is_refused(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    convenor_and_gathering(&app, json!({ "slug": "guarded" })).await?;
    let session = app.sign_in("victim@example.org").await?;
    let mut victim = Visitor::with_session(&app, &session)?;
    victim.get("/gatherings/guarded").await?;
    let form = [("mode", "IN_PERSON")];
    let none = victim.post("/gatherings/guarded/register", &form).await?;
    assert_eq!(none.status, 403);
    assert!(none.body.contains("could not be sent"));
    // A token made for another visitor does not pass for this one.
    let mut attacker = Visitor::new(&app)?;
    let theirs = attacker.get("/gatherings/guarded").await?.hidden("csrf")?;
    let forged = victim
        .post(
            "/gatherings/guarded/register",
            &[("csrf", &theirs), ("mode", "IN_PERSON")],
        )
        .await?;
    assert_eq!(forged.status, 403);
    let fresh = Visitor::with_session(&app, &session)?
        .post(
            "/gatherings/guarded/register",
            &[("csrf", &theirs), ("mode", "IN_PERSON")],
        )
        .await?;
    assert_eq!(fresh.status, 403, "no visitor cookie, no token");
    for path in [
        "/sign-in/link",
        "/registrations/confirm",
        "/my/registrations/x/cancel",
    ] {
        assert_eq!(victim.post(path, &form).await?.status, 403, "{path}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM registrations").await?, 0);
    Ok(())
}

async fn a_form_with_errors_keeps_every_answer_and_links_to_each_wrong_field(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    convenor_and_gathering(
        &app,
        json!({ "slug": "careful", "format": "HYBRID", "onlineCapacity": 5 }),
    )
    .await?;
    let mut visitor = Visitor::new(&app)?;
    let csrf = visitor.get("/gatherings/careful").await?.hidden("csrf")?;
    let page = visitor
        .post(
            "/gatherings/careful/register",
            &[
                ("csrf", &csrf),
                ("name", "Ada <Lovelace>"),
                ("email", "not an address"),
                ("companions", "9"),
                ("access", "QUIET_SPACE"),
                ("access", "HEARING_LOOP"),
                ("access-notes", "Near the door, please"),
                ("behalf-name", "Byron"),
            ],
        )
        .await?;
    assert_eq!(page.status, 400);
    assert!(page.title().starts_with("Error: "), "{}", page.title());
    for target in [
        "#mode-in-person",
        "#email",
        "#companions",
        "#access-consent",
        "#behalf-email",
        "#behalf-agreement",
    ] {
        assert!(
            page.body.contains(&format!("href=\"{target}\"")),
            "no summary link to {target}"
        );
    }
    assert!(!page.body.contains("href=\"#name\""), "the name was fine");
    assert!(page.body.contains("value=\"Ada &lt;Lovelace&gt;\""));
    assert!(page.body.contains("value=\"not an address\""));
    assert!(page.body.contains("value=\"9\""));
    assert!(page.body.contains("value=\"QUIET_SPACE\" checked"));
    assert!(page.body.contains("value=\"HEARING_LOOP\" checked"));
    assert!(!page.body.contains("value=\"BSL_INTERPRETER\" checked"));
    assert!(page.body.contains(">Near the door, please</textarea>"));
    assert!(page.body.contains("value=\"Byron\""));
    assert!(page.body.contains("id=\"email-error\""));
    assert!(
        page.body
            .contains("aria-describedby=\"you-hint email-error\"")
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM registration_requests")
            .await?,
        0
    );
    Ok(())
}

async fn signed_in_people_register_at_once_and_manage_their_registrations(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    convenor_and_gathering(&app, json!({ "slug": "small", "inPersonCapacity": 1 })).await?;
    let first = app.sign_in("first@example.org").await?;
    let mut one = Visitor::with_session(&app, &first)?;
    let page = one.get("/gatherings/small").await?;
    assert!(
        !page.body.contains("id=\"email\""),
        "no need to give an email"
    );
    let csrf = page.hidden("csrf")?;
    let done = one
        .post(
            "/gatherings/small/register",
            &[
                ("csrf", &csrf),
                ("mode", "IN_PERSON"),
                ("access", "QUIET_SPACE"),
                ("access-notes", "Only for me to see"),
                ("access-consent", "yes"),
            ],
        )
        .await?;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Registration confirmed"));

    let second = app.sign_in("second@example.org").await?;
    let mut two = Visitor::with_session(&app, &second)?;
    let csrf2 = two.get("/gatherings/small").await?.hidden("csrf")?;
    let waiting = two
        .post(
            "/gatherings/small/register",
            &[("csrf", &csrf2), ("mode", "IN_PERSON")],
        )
        .await?;
    assert!(
        waiting.body.contains("You are on the waitlist"),
        "{}",
        waiting.body
    );
    assert!(waiting.body.contains("number 1"));
    let theirs = two.get("/my/registrations").await?;
    assert!(theirs.body.contains("Waitlisted"));
    assert!(
        !theirs.body.contains("Only for me to see"),
        "nobody else's needs"
    );
    assert!(
        !two.get("/gatherings/small")
            .await?
            .body
            .contains("Only for me to see")
    );

    let mine = one.get("/my/registrations").await?;
    assert!(mine.body.contains("Only for me to see"));
    let id = {
        let marker = "/my/registrations/";
        let start = mine.body.find(marker).context("no button")? + marker.len();
        mine.body[start..start + 36].to_owned()
    };
    let erased = one
        .post(
            &format!("/my/registrations/{id}/erase-access-needs"),
            &[("csrf", &csrf)],
        )
        .await?;
    assert_eq!(erased.status, 303);
    let mine = one.get("/my/registrations?done=erased").await?;
    assert!(!mine.body.contains("Only for me to see"));
    assert!(mine.body.contains("Your access needs are erased"));

    let cancelled = one
        .post(
            &format!("/my/registrations/{id}/cancel"),
            &[("csrf", &csrf)],
        )
        .await?;
    assert_eq!(cancelled.status, 303);
    // The place went at once to the person waiting.
    let theirs = two.get("/my/registrations").await?;
    assert!(theirs.body.contains("Confirmed"), "{}", theirs.body);
    // Nobody cancels someone else's registration.
    let theirs_id = {
        let marker = "/my/registrations/";
        let start = theirs.body.find(marker).context("no button")? + marker.len();
        theirs.body[start..start + 36].to_owned()
    };
    let refused = one
        .post(
            &format!("/my/registrations/{theirs_id}/cancel"),
            &[("csrf", &csrf)],
        )
        .await?;
    assert_eq!(refused.status, 404);
    Ok(())
}

async fn a_session_cookie_that_is_no_longer_valid_signs_the_visitor_out(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let mut visitor = Visitor::with_session(&app, "gss_not-a-real-session")?;
    let page = visitor.get("/").await?;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("href=\"/sign-in\""));
    assert!(
        !visitor.cookies.contains_key("groundswell_session"),
        "the cookie is cleared"
    );
    let mut visitor = Visitor::with_session(&app, "gss_not-a-real-session")?;
    assert_eq!(visitor.get("/my/registrations").await?.status, 401);
    Ok(())
}

async fn the_sign_in_page_without_a_token_mails_the_usual_link(db: Backend) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let mut visitor = Visitor::new(&app)?;
    let form = visitor.get("/sign-in").await?;
    assert!(form.body.contains("id=\"email\""));
    let csrf = form.hidden("csrf")?;
    let wrong = visitor
        .post("/sign-in/link", &[("csrf", &csrf), ("email", "nope")])
        .await?;
    assert_eq!(wrong.status, 400);
    assert!(wrong.title().starts_with("Error: "));
    let sent = visitor
        .post(
            "/sign-in/link",
            &[("csrf", &csrf), ("email", "walker@example.org")],
        )
        .await?;
    assert!(sent.body.contains("Check your email"));
    let mail = app.mail_to("walker@example.org", 1).await?;
    let token = mail[0].sign_in_token()?;
    // The link's own page is as it was: one button, the token kept for the POST.
    let page = visitor.get(&format!("/sign-in?token={token}")).await?;
    assert!(page.body.contains("name=\"token\""));
    Ok(())
}

async fn people_who_prefer_easy_read_get_easy_read_pages_and_mail_in_both_parts(
    db: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(db).await?;
    let (convenor, gathering) = convenor_and_gathering(
        &app,
        json!({ "slug": "plain-words", "title": "Plain words" }),
    )
    .await?;
    let session = app.sign_in("reader@example.org").await?;
    let me = "{ me { prefersEasyRead } }";
    let before = app.gql(Some(&session), me, json!({})).await?.ok()?;
    assert_eq!(before["me"]["prefersEasyRead"], false);
    let set = app
        .gql(
            Some(&session),
            "mutation { updateMyPreferences(input: { prefersEasyRead: true }) { prefersEasyRead } }",
            json!({}),
        )
        .await?
        .ok()?;
    assert_eq!(set["updateMyPreferences"]["prefersEasyRead"], true);
    // Only the person sees it.
    let other = app.sign_in("other@example.org").await?;
    let anonymous = app
        .gql(
            None,
            "mutation { updateMyPreferences(input: { prefersEasyRead: true }) { id } }",
            json!({}),
        )
        .await?;
    assert_eq!(anonymous.code(), Some("UNAUTHENTICATED"));
    let _ = other;

    // Their pages are easy read without asking, and mail goes out in easy read too.
    let mut reader = Visitor::with_session(&app, &session)?;
    let page = reader.get("/gatherings/plain-words").await?;
    assert!(page.body.contains("<body class=\"easy\">"));
    assert!(page.body.contains("Get a place"));
    assert!(page.body.contains("alt=\"Calendar\""));
    app.register(&session, &gathering["id"], json!({}))
        .await?
        .ok()?;
    let mail = app
        .mail_to("reader@example.org", 2)
        .await?
        .into_iter()
        .find(|m| m.subject.starts_with("You have a place"))
        .context("no easy-read confirmation")?;
    assert!(
        mail.text.contains("You have a place at Plain words."),
        "{}",
        mail.text
    );
    assert!(
        mail.html.contains("/static/icons/tick.svg"),
        "{}",
        mail.html
    );
    assert!(mail.html.contains("alt=\"A tick\""));
    assert!(mail.html.contains("font-size:24px"));
    assert_eq!(mail.attachments.len(), 1, "the calendar still comes");
    // Their convenors see who registered, never this preference.
    let seen = app
        .gql(
            Some(&convenor),
            "{ gathering(slug: \"plain-words\") { registrations { edges { node { person { prefersEasyRead } } } } } }",
            json!({}),
        )
        .await?;
    assert_eq!(seen.code(), Some("FORBIDDEN"), "{:?}", seen.body);

    // `?read=standard` is remembered for them; a visitor's choice, in a cookie.
    let standard = reader.get("/?read=standard").await?;
    assert!(!standard.body.contains("class=\"easy\""));
    let after = app.gql(Some(&session), me, json!({})).await?.ok()?;
    assert_eq!(after["me"]["prefersEasyRead"], false);
    let mut visitor = Visitor::new(&app)?;
    visitor.get("/?read=easy").await?;
    assert_eq!(
        visitor.cookies.get("groundswell_read").map(String::as_str),
        Some("easy")
    );
    assert!(
        visitor
            .get("/sign-in")
            .await?
            .body
            .contains("class=\"easy\"")
    );

    // Registering with only an email from an easy-read page sends the link in easy read.
    let csrf = visitor
        .get("/gatherings/plain-words")
        .await?
        .hidden("csrf")?;
    visitor
        .post(
            "/gatherings/plain-words/register",
            &[
                ("csrf", &csrf),
                ("mode", "IN_PERSON"),
                ("name", "Sam"),
                ("email", "sam@example.org"),
            ],
        )
        .await?;
    let link = app.mail_to("sam@example.org", 1).await?;
    assert!(
        link[0].subject.starts_with("Get your place"),
        "{}",
        link[0].subject
    );
    assert!(link[0].text.contains("You need to do 1 more thing."));
    assert!(link[0].html.contains("alt=\"An envelope\""));
    Ok(())
}

/// The unsubscribe address (path only) in the digest mailed to `to`.
async fn unsubscribe_path(app: &TestApp, to: &str) -> anyhow::Result<String> {
    app.drain().await?;
    let digest = app
        .smtp
        .messages()
        .into_iter()
        .find(|m| m.to == to && m.subject.contains("digest"));
    let header = digest
        .and_then(|m| m.list_unsubscribe)
        .with_context(|| format!("no digest for {to}"))?;
    header
        .strip_prefix("<http://groundswell.test")
        .and_then(|rest| rest.strip_suffix('>'))
        .map(str::to_owned)
        .with_context(|| format!("List-Unsubscribe is {header:?}"))
}

/// Browser tests, on SQLite only (what they check is the HTML, not the database): axe on every
/// page in each state, the keyboard-only registration, 320 px, and the README's screenshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_page_passes_axe_at_wcag_22_aa_fits_320px_and_works_by_keyboard() -> anyhow::Result<()>
{
    let app = spawn_app(Backend::Sqlite).await?;
    let convenor = app.convenor("convenor@example.org").await?;
    let hybrid = json!({ "format": "HYBRID", "inPersonCapacity": 20, "onlineCapacity": 20,
        "joiningUrl": "https://meet.example.org/gathering",
        "description": "A day together in Leeds and online.\n\nLunch is provided." });
    let mut open = hybrid.clone();
    open["slug"] = json!("leeds-open-day");
    open["title"] = json!("Leeds open day: living in the place we call home");
    app.gathering(&convenor, open).await?;
    let mut keyboard = hybrid;
    keyboard["slug"] = json!("keyboard-day");
    app.gathering(&convenor, keyboard).await?;
    let full = app
        .gathering(
            &convenor,
            json!({ "slug": "full-day", "title": "A small circle", "inPersonCapacity": 1 }),
        )
        .await?;
    let taker = app.sign_in("taker@example.org").await?;
    app.register(&taker, &full["id"], json!({})).await?.ok()?;
    let mut sessions = Vec::new();
    for n in 0..4 {
        sessions.push(app.sign_in(&format!("browser{n}@example.org")).await?);
    }
    let open_id = app
        .gql(
            None,
            "{ gathering(slug: \"leeds-open-day\") { id } }",
            json!({}),
        )
        .await?
        .ok()?["gathering"]["id"]
        .clone();
    let input = json!({ "gatheringId": open_id, "mode": "ONLINE", "name": "Pending", "email": "pending@example.org" });
    app.gql(None, REQUEST, json!({ "input": input }))
        .await?
        .ok()?;
    let confirm_token = registration_link_token(&app, "pending@example.org", 1).await?;
    // Sign-in links (one shown, two pressed) and unsubscribe links (one shown, two pressed).
    let mut sign_in_tokens = Vec::new();
    for n in 0..3 {
        sign_in_tokens.push(app.sign_in_token(&format!("linked{n}@example.org")).await?);
    }
    app.grant_role("admin@example.org", "ADMIN").await?;
    let admin = app.sign_in("admin@example.org").await?;
    for n in 0..2 {
        app.convenor(&format!("digested{n}@example.org")).await?;
    }
    app.gql(
        Some(&admin),
        "mutation($asOf: DateTime) { sendDueDigests(asOf: $asOf) }",
        json!({ "asOf": (chrono::Utc::now() + chrono::Duration::days(8)).to_rfc3339() }),
    )
    .await?
    .ok()?;
    let mut unsubscribes = Vec::new();
    for n in 0..3 {
        let to = if n < 2 {
            format!("digested{n}@example.org")
        } else {
            "convenor@example.org".to_owned()
        };
        unsubscribes.push(unsubscribe_path(&app, &to).await?);
    }
    let scene = json!({
        "base": format!("http://{}", app.address),
        "open": "leeds-open-day",
        "full": "full-day",
        "keyboard": "keyboard-day",
        "sessions": sessions,
        "confirmToken": confirm_token,
        "signInToken": sign_in_tokens[2],
        "signInTokens": &sign_in_tokens[..2],
        "unsubscribe": unsubscribes[2],
        "unsubscribes": &unsubscribes[..2],
    });
    // The README's screenshots are refreshed with UPDATE_SCREENSHOTS=1; otherwise they go
    // under target/, so a test run leaves the work tree as it was.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let shots = if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        root.join("docs/screenshots")
    } else {
        root.join("target/screenshots")
    };
    std::fs::create_dir_all(&shots)?;
    let out = node(
        "pages.mjs",
        &[],
        &[
            ("PAGES", &scene.to_string()),
            ("SCREENSHOTS", &shots.display().to_string()),
        ],
    )
    .await?;
    assert!(out.contains("every state passed"), "{out}");
    for shot in [
        "gathering.png",
        "gathering-easy-read.png",
        "form-with-errors.png",
    ] {
        assert!(shots.join(shot).metadata()?.len() > 10_000, "{shot}");
    }
    // Nothing the browser did was left half-done: the keyboard registration and the two
    // signed-in passes each hold a place.
    assert!(app.count("SELECT COUNT(*) FROM registrations").await? >= 5);
    Ok(())
}
