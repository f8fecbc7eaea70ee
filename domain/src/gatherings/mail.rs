//! The mail a registration causes: confirmed, waitlisted, promoted, cancelled, and the
//! gathering's cancellation. All of it is transactional, sent whatever the person's digest
//! choices. It tells of the gathering (its times in its own zone, its calendar entry), and
//! both areas send it: `registrations` when one is made or cancelled, and this area when a
//! change to the gathering promotes or cancels registrations.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use serde_json::json;

use super::{CalendarEntry, Gathering};
use crate::{
    entities::{
        enums::{AttendanceMode, RegistrationStatus},
        gathering, registration,
    },
    mail::{self, Mail, Template},
    people::EmailAddress,
};

/// A time in the gathering's own zone, as people read it: "Saturday 6 March 2027, 10:00".
pub fn local_time(gathering: &Gathering, at: DateTime<Utc>) -> String {
    at.with_timezone(&gathering.time_zone.tz())
        .format("%A %-d %B %Y, %H:%M")
        .to_string()
}

/// When a gathering happens, in its own time zone.
pub fn when(gathering: &Gathering) -> String {
    let zone = gathering.time_zone.tz();
    let (start, end) = (
        gathering.starts_at.with_timezone(&zone),
        gathering.ends_at.with_timezone(&zone),
    );
    let end_text = if start.date_naive() == end.date_naive() {
        end.format("%H:%M").to_string()
    } else {
        end.format("%A %-d %B %Y, %H:%M").to_string()
    };
    format!(
        "{} to {end_text} ({} time)",
        local_time(gathering, gathering.starts_at),
        gathering.time_zone.name()
    )
}

pub(crate) async fn send(
    conn: &impl ConnectionTrait,
    template: Template,
    gathering: &gathering::Model,
    row: &registration::Model,
    email: &str,
    waitlist_position: Option<u64>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if let Some(mail) = message(template, gathering, row, email, waitlist_position) {
        mail::enqueue(conn, mail, now).await?;
    }
    Ok(())
}

/// The message about `row` at `gathering`, to queue with others (a registration batch queues
/// all of its messages in one statement); `None` for an erased person, who has no address left
/// to write to.
pub(crate) fn message(
    template: Template,
    gathering: &gathering::Model,
    row: &registration::Model,
    email: &str,
    waitlist_position: Option<u64>,
) -> Option<Mail> {
    let recipient = EmailAddress::parse(email).ok()?;
    let view = Gathering::from(gathering.clone());
    let confirmed = row.status == RegistrationStatus::Confirmed;
    let online = row.mode == AttendanceMode::Online;
    let calendar = confirmed.then(|| CalendarEntry::for_attendee(&view));
    let context = json!({
        "gathering_title": view.title,
        "gathering_slug": view.slug,
        "when": when(&view),
        "venue": view.venue,
        "online": online,
        "joining_url": if confirmed && online { view.joining_url.clone() } else { None },
        "companions": row.companions,
        "waitlist_position": waitlist_position,
        "registered_by_someone_else": row.registered_by.is_some(),
        "reason": view.cancel_reason,
        "calendar": calendar,
    });
    Some(Mail {
        recipient,
        template,
        context,
    })
}
