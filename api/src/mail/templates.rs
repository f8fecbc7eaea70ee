//! Mail templates: a subject, a plain-text body and an HTML body per message, in
//! `api/templates/mail/`, compiled into the binary. HTML is escaped automatically.

use anyhow::{Context, anyhow};
use groundswell_domain::{
    digests, gatherings::CalendarEntry, mail::QueuedMail, people::SIGN_IN_PURPOSE,
    registrations::REGISTRATION_REQUEST_PURPOSE, secrets::SecretKey,
};
use minijinja::Environment;
use serde_json::Value;
use uuid::Uuid;

use crate::calendar;

/// Names a message's three template files (subject, plain text, HTML) and their text.
macro_rules! template {
    ($name:literal) => {
        [
            (
                concat!($name, ".subject.txt"),
                include_str!(concat!("../../templates/mail/", $name, ".subject.txt")),
            ),
            (
                concat!($name, ".txt"),
                include_str!(concat!("../../templates/mail/", $name, ".txt")),
            ),
            (
                concat!($name, ".html"),
                include_str!(concat!("../../templates/mail/", $name, ".html")),
            ),
        ]
    };
}

/// Every message's templates, by name.
const MESSAGES: &[[(&str, &str); 3]] = &[
    template!("sign_in"),
    template!("registration_request"),
    template!("added_to_organisation"),
    template!("registration_confirmed"),
    template!("registration_waitlisted"),
    template!("registration_promoted"),
    template!("registration_cancelled"),
    template!("gathering_cancelled"),
    template!("digest"),
    template!("pledge_nudge"),
    template!("webhook_deactivated"),
];

/// Names a message's easy-read templates, sent to people who prefer easy read.
macro_rules! easy_template {
    ($name:literal) => {
        [
            (
                concat!($name, ".easy.subject.txt"),
                include_str!(concat!("../../templates/mail/", $name, ".easy.subject.txt")),
            ),
            (
                concat!($name, ".easy.txt"),
                include_str!(concat!("../../templates/mail/", $name, ".easy.txt")),
            ),
            (
                concat!($name, ".easy.html"),
                include_str!(concat!("../../templates/mail/", $name, ".easy.html")),
            ),
        ]
    };
}

/// Every message an attendee gets, in easy read: short sentences, everyday words, one idea a
/// line, large text, a picture beside each point.
const EASY_MESSAGES: &[[(&str, &str); 3]] = &[
    easy_template!("sign_in"),
    easy_template!("registration_request"),
    easy_template!("registration_confirmed"),
    easy_template!("registration_waitlisted"),
    easy_template!("registration_promoted"),
    easy_template!("registration_cancelled"),
    easy_template!("gathering_cancelled"),
];

const EASY_LAYOUT: (&str, &str) = (
    "layout.easy.html",
    include_str!("../../templates/mail/layout.easy.html"),
);

const LAYOUT: (&str, &str) = (
    "layout.html",
    include_str!("../../templates/mail/layout.html"),
);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// An iCalendar file to attach, for messages that give someone a place.
    pub calendar: Option<String>,
    /// The one-click unsubscribe link (RFC 8058), for messages sent on a schedule.
    pub unsubscribe_url: Option<String>,
}

pub struct Renderer {
    env: Environment<'static>,
    public_url: String,
    /// For calendar UIDs.
    host: String,
    secret: SecretKey,
}

impl Renderer {
    pub fn new(public_url: String, secret: SecretKey) -> anyhow::Result<Self> {
        let mut env = Environment::new();
        for (name, source) in MESSAGES
            .iter()
            .chain(EASY_MESSAGES)
            .flatten()
            .chain([&LAYOUT, &EASY_LAYOUT])
        {
            env.add_template(name, source)
                .with_context(|| format!("mail template {name}"))?;
        }
        let host = url::Url::parse(&public_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "groundswell".to_owned());
        Ok(Self {
            env,
            host,
            public_url,
            secret,
        })
    }

    /// Renders a queued message. Secrets the message carries (the sign-in link) are derived
    /// here, at delivery, so the outbox never holds them.
    pub fn render(&self, mail: &QueuedMail) -> anyhow::Result<Rendered> {
        let mut context = match &mail.context {
            Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        context.insert("public_url".into(), Value::String(self.public_url.clone()));
        if mail.template == "sign_in" {
            let id = context
                .get("sign_in_id")
                .and_then(Value::as_str)
                .and_then(|id| Uuid::parse_str(id).ok())
                .ok_or_else(|| anyhow!("sign-in mail without its request id"))?;
            let token = self.secret.derive(SIGN_IN_PURPOSE, id);
            context.insert(
                "link".into(),
                Value::String(format!("{}/sign-in?token={token}", self.public_url)),
            );
        }
        if mail.template == "registration_request" {
            let id = context
                .get("registration_request_id")
                .and_then(Value::as_str)
                .and_then(|id| Uuid::parse_str(id).ok())
                .ok_or_else(|| anyhow!("registration link mail without its request id"))?;
            let token = self.secret.derive(REGISTRATION_REQUEST_PURPOSE, id);
            context.insert(
                "link".into(),
                Value::String(format!(
                    "{}/registrations/confirm?token={token}",
                    self.public_url
                )),
            );
        }
        let unsubscribe_url = context
            .get("unsubscribe_person_id")
            .and_then(Value::as_str)
            .and_then(|id| Uuid::parse_str(id).ok())
            .map(|id| {
                format!(
                    "{}/unsubscribe/{}",
                    self.public_url,
                    digests::unsubscribe_token(&self.secret, id)
                )
            });
        if let Some(url) = &unsubscribe_url {
            context.insert("unsubscribe_url".into(), Value::String(url.clone()));
        }
        // Links are built here, or validated as http(s) URLs when they were given; marking them
        // safe keeps HTML escaping from turning their slashes into entities.
        let context: std::collections::BTreeMap<String, minijinja::Value> = context
            .into_iter()
            .map(|(key, value)| {
                let value = match value {
                    Value::String(url) if is_link(&key, &url) => {
                        minijinja::Value::from_safe_string(url)
                    }
                    value => minijinja::Value::from_serialize(value),
                };
                (key, value)
            })
            .collect();
        // Easy read for those who prefer it, where the message has an easy-read version.
        let easy = mail.easy_read
            && self
                .env
                .get_template(&format!("{}.easy.txt", mail.template))
                .is_ok();
        let render = |suffix: &str| -> anyhow::Result<String> {
            let name = if easy {
                format!("{}.easy.{suffix}", mail.template)
            } else {
                format!("{}.{suffix}", mail.template)
            };
            let template = self
                .env
                .get_template(&name)
                .with_context(|| format!("no mail template {name}"))?;
            template
                .render(&context)
                .with_context(|| format!("rendering {name}"))
        };
        let calendar = match mail.context.get("calendar") {
            Some(Value::Null) | None => None,
            Some(entry) => {
                let entry: CalendarEntry = serde_json::from_value(entry.clone())
                    .context("the calendar entry in a queued message")?;
                // Dates outside the years Groundswell works in never come from a gathering; a
                // message holding them is refused rather than described.
                for at in [entry.starts_at, entry.ends_at] {
                    groundswell_domain::time::Moment::new(at)
                        .map_err(|reason| anyhow!("the calendar entry's dates {reason}"))?;
                }
                Some(calendar::ics(&entry, &self.public_url, &self.host))
            }
        };
        Ok(Rendered {
            subject: render("subject.txt")?.trim().to_owned(),
            text: render("txt")?,
            html: render("html")?,
            calendar,
            unsubscribe_url,
        })
    }
}

/// Whether a context value is a link that may go into HTML as it is: named as a link, http(s),
/// and free of anything that could end an attribute.
fn is_link(key: &str, value: &str) -> bool {
    (key == "link" || key.ends_with("_url"))
        && (value.starts_with("https://") || value.starts_with("http://"))
        && !value.contains(['"', '\'', '<', '>', ' '])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn queued(template: &str, context: Value) -> QueuedMail {
        QueuedMail {
            id: Uuid::now_v7(),
            recipient: "ada@example.org".into(),
            template: template.into(),
            context,
            attempts: 1,
            easy_read: false,
        }
    }

    #[test]
    fn sign_in_mail_carries_a_link_derived_from_the_secret() -> anyhow::Result<()> {
        let secret = SecretKey::generate();
        let renderer = Renderer::new("https://gs.example".into(), secret.clone())?;
        let id = Uuid::now_v7();
        let rendered = renderer.render(&queued(
            "sign_in",
            json!({"sign_in_id": id, "expires_in_minutes": 30}),
        ))?;
        let link = format!(
            "https://gs.example/sign-in?token={}",
            secret.derive(SIGN_IN_PURPOSE, id)
        );
        assert!(rendered.text.contains(&link));
        assert!(rendered.html.contains(&link));
        assert!(rendered.text.contains("30 minutes"));
        assert_eq!(rendered.subject, "Your link to sign in to Groundswell");
        Ok(())
    }

    #[test]
    fn html_parts_escape_what_people_typed() -> anyhow::Result<()> {
        let renderer = Renderer::new("https://gs.example".into(), SecretKey::generate())?;
        let rendered = renderer.render(&queued(
            "added_to_organisation",
            json!({"organisation_name": "<script>x</script> & Co", "owner": false}),
        ))?;
        assert!(!rendered.html.contains("<script>"));
        assert!(rendered.html.contains("&lt;script&gt;"));
        assert!(rendered.text.contains("<script>x</script> & Co"));
        Ok(())
    }

    #[test]
    fn digests_carry_a_derived_unsubscribe_link_in_both_parts() -> anyhow::Result<()> {
        let secret = SecretKey::generate();
        let renderer = Renderer::new("https://gs.example".into(), secret.clone())?;
        let person = Uuid::now_v7();
        let rendered = renderer.render(&queued(
            "digest",
            json!({
                "unsubscribe_person_id": person,
                "frequency": "weekly",
                "is_empty": false,
                "period_start_local": "Monday 1 March 2027",
                "period_end_local": "Monday 8 March 2027",
                "picture": {"rows": [{"title": "More resources, better used",
                    "pledges_this_period": 2, "pledges_last_period": 1,
                    "updates_this_period": 0, "updates_last_period": 0,
                    "bars": {"pledges_this_period": 100, "pledges_last_period": 50,
                        "updates_this_period": 0, "updates_last_period": 0}}]},
                "new_pledges": {"groups": [{"title": "More resources, better used", "more": 3,
                    "items": [{"organisation": "Kirklees <People>", "title": "Budgets we hold",
                        "due_by": "2027-12-31", "changes": ["More resources, better used"]}]}]},
                "progress": {"groups": []},
                "coalitions": {"groups": []},
                "quiet_pledges": {"groups": []},
                "gatherings": {"items": [{"title": "Leeds <gathering>", "slug": "leeds",
                    "when": "Monday", "unlimited": false, "full": false,
                    "in_person_offered": true, "online_offered": false,
                    "in_person_places_left": 3, "online_places_left": null,
                    "confirmed": 7, "waitlisted": 0, "new_this_period": true},
                    {"title": "Hybrid", "slug": "hybrid", "when": "Tuesday",
                    "unlimited": true, "full": false, "in_person_offered": true,
                    "online_offered": true, "in_person_places_left": 2,
                    "online_places_left": null, "confirmed": 1, "waitlisted": 0,
                    "new_this_period": false}]},
            }),
        ))?;
        let link = format!(
            "https://gs.example/unsubscribe/{}",
            digests::unsubscribe_token(&secret, person)
        );
        assert_eq!(rendered.unsubscribe_url.as_deref(), Some(link.as_str()));
        assert!(rendered.text.contains(&link));
        assert!(rendered.html.contains(&link));
        assert!(
            rendered
                .text
                .contains("Places left: 3 in person; confirmed: 7; waitlist: 0")
        );
        assert!(
            rendered
                .text
                .contains("Places left: 2 in person, no limit online; confirmed: 1; waitlist: 0"),
            "{}",
            rendered.text
        );
        assert!(rendered.html.contains("Leeds &lt;gathering&gt;"));
        assert!(
            rendered
                .text
                .contains("- Kirklees <People>: Budgets we hold (due 2027-12-31)"),
            "{}",
            rendered.text
        );
        assert!(rendered.text.contains("  and 3 more"));
        assert!(rendered.html.contains("Kirklees &lt;People&gt;"));
        assert!(rendered.html.contains(r#"<td width="50%""#));
        assert!(
            rendered
                .text
                .contains("More resources, better used: 2 pledges (1)")
        );
        Ok(())
    }

    #[test]
    fn every_attendee_mail_has_an_easy_read_version_with_pictures() -> anyhow::Result<()> {
        let renderer = Renderer::new("https://gs.example".into(), SecretKey::generate())?;
        let context = json!({
            "sign_in_id": Uuid::now_v7(), "expires_in_minutes": 30,
            "registration_request_id": Uuid::now_v7(), "expires_in_hours": 24,
            "gathering_title": "Leeds <day>", "when": "Saturday 6 March 2027, 10:00",
            "venue": "Civic Hall", "online": false, "companions": 1, "waitlist_position": 2,
            "registered_by_someone_else": false, "reason": "Snow", "calendar": null,
        });
        for name in [
            "sign_in",
            "registration_request",
            "registration_confirmed",
            "registration_waitlisted",
            "registration_promoted",
            "registration_cancelled",
            "gathering_cancelled",
        ] {
            let mut mail = queued(name, context.clone());
            let standard = renderer.render(&mail)?;
            mail.easy_read = true;
            let easy = renderer.render(&mail)?;
            assert_ne!(easy.text, standard.text, "{name}");
            assert_ne!(easy.subject, standard.subject, "{name}");
            assert!(easy.html.contains("/static/icons/"), "{name}: pictures");
            assert!(easy.html.contains("alt=\""), "{name}: alt text");
            assert!(easy.html.contains("font-size:24px"), "{name}: large text");
            assert!(!easy.html.contains("<day>"), "{name}: escaped");
            // One idea a line: no line of the text part runs past 80 characters but links.
            for line in easy.text.lines().filter(|l| !l.contains("http")) {
                assert!(line.chars().count() <= 80, "{name}: {line}");
            }
        }
        Ok(())
    }

    #[test]
    fn unknown_templates_are_an_error_not_a_blank_mail() -> anyhow::Result<()> {
        let renderer = Renderer::new("https://gs.example".into(), SecretKey::generate())?;
        assert!(renderer.render(&queued("nope", json!({}))).is_err());
        Ok(())
    }
}
