//! iCalendar (RFC 5545) files for gatherings: the public feed and the attachment of
//! confirmation mail. Times carry the gathering's own time zone, described by a VTIMEZONE built
//! from the IANA database for the gathering's dates.

use chrono::{DateTime, Duration, NaiveDateTime, Offset, TimeZone as _, Utc};
use chrono_tz::{OffsetComponents, OffsetName, Tz};
use groundswell_domain::gatherings::CalendarEntry;
use icalendar::{Calendar, CalendarDateTime, Component, Event, EventLike, EventStatus};

/// The `.ics` text for one gathering.
pub fn ics(entry: &CalendarEntry, public_url: &str, host: &str) -> String {
    let zone: Tz = entry.time_zone.parse().unwrap_or(chrono_tz::Europe::London);
    let local = |at: DateTime<Utc>| CalendarDateTime::WithTimezone {
        date_time: at.with_timezone(&zone).naive_local(),
        tzid: zone.name().to_owned(),
    };
    let mut description = entry.description.clone();
    if let Some(url) = &entry.joining_url {
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str(&format!("Join online: {url}"));
    }
    let mut event = Event::new();
    event
        .uid(&format!("gathering-{}@{host}", entry.id))
        .summary(&entry.title)
        .starts(local(entry.starts_at))
        .ends(local(entry.ends_at))
        .timestamp(entry.updated_at)
        .url(&format!("{public_url}/gatherings/{}.ics", entry.slug))
        .add_property("SEQUENCE", entry.sequence.to_string())
        .status(if entry.cancelled {
            EventStatus::Cancelled
        } else {
            EventStatus::Confirmed
        });
    if !description.is_empty() {
        event.description(&description);
    }
    if let Some(location) = entry
        .location
        .as_deref()
        .or(entry.joining_url.as_ref().map(|_| "Online"))
    {
        event.location(location);
    }
    let mut calendar = Calendar::new();
    calendar
        .name("#socialcarefuture gatherings")
        .push(event.done());
    let text = calendar.done().to_string();
    // icalendar writes no VTIMEZONE; every TZID used must have one, so it goes in before the
    // event.
    let timezone = vtimezone(zone, entry.starts_at, entry.ends_at);
    match text.find("BEGIN:VEVENT") {
        Some(at) => format!("{}{timezone}{}", &text[..at], &text[at..]),
        None => text,
    }
}

/// One offset period of a zone, as VTIMEZONE describes it.
struct Observance {
    starts_local: NaiveDateTime,
    from: i32,
    to: i32,
    daylight: bool,
    name: String,
}

fn offset_at(zone: Tz, at: DateTime<Utc>) -> (i32, bool, String) {
    let offset = zone.offset_from_utc_datetime(&at.naive_utc());
    (
        offset.fix().local_minus_utc(),
        offset.dst_offset() != Duration::zero(),
        offset.abbreviation().unwrap_or_default().to_owned(),
    )
}

/// The most days a VTIMEZONE scan covers: a year before the gathering and the longest a
/// gathering may last, with room to spare. Whatever the dates, the work is bounded.
const MAX_SCAN_DAYS: i64 = 370 + groundswell_domain::gatherings::MAX_LENGTH_DAYS + 30;

/// The zone's observances in force from a year before `from` until `to`: the transitions
/// found by scanning day by day and narrowing to the minute.
fn observances(zone: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Observance> {
    use groundswell_domain::time::{after, before};
    let start = before(from, Duration::days(370));
    let end = after(to, Duration::days(1)).min(after(start, Duration::days(MAX_SCAN_DAYS)));
    let mut found = Vec::new();
    let (mut offset, _, _) = offset_at(zone, start);
    let mut day = start;
    while day < end {
        let next = after(day, Duration::days(1));
        if next <= day {
            break;
        }
        let (next_offset, _, _) = offset_at(zone, next);
        if next_offset != offset {
            let (mut low, mut high) = (day, next);
            while high - low > Duration::minutes(1) {
                let mid = low + (high - low) / 2;
                if offset_at(zone, mid).0 == offset {
                    low = mid;
                } else {
                    high = mid;
                }
            }
            let (to_offset, daylight, name) = offset_at(zone, high);
            found.push(Observance {
                starts_local: high
                    .naive_utc()
                    .checked_add_signed(Duration::seconds(i64::from(offset)))
                    .unwrap_or(high.naive_utc()),
                from: offset,
                to: to_offset,
                daylight,
                name,
            });
            offset = next_offset;
        }
        day = next;
    }
    if found.is_empty() {
        let (offset, daylight, name) = offset_at(zone, from);
        found.push(Observance {
            starts_local: NaiveDateTime::default(),
            from: offset,
            to: offset,
            daylight,
            name,
        });
    }
    found
}

fn utc_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let minutes = seconds.abs() / 60;
    format!("{sign}{:02}{:02}", minutes / 60, minutes % 60)
}

fn vtimezone(zone: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let mut text = format!("BEGIN:VTIMEZONE\r\nTZID:{}\r\n", zone.name());
    for observance in observances(zone, from, to) {
        let kind = if observance.daylight {
            "DAYLIGHT"
        } else {
            "STANDARD"
        };
        text.push_str(&format!(
            "BEGIN:{kind}\r\nDTSTART:{}\r\nTZOFFSETFROM:{}\r\nTZOFFSETTO:{}\r\n",
            observance.starts_local.format("%Y%m%dT%H%M%S"),
            utc_offset(observance.from),
            utc_offset(observance.to),
        ));
        if !observance.name.is_empty() {
            text.push_str(&format!("TZNAME:{}\r\n", observance.name));
        }
        text.push_str(&format!("END:{kind}\r\n"));
    }
    text.push_str("END:VTIMEZONE\r\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn london_has_its_march_and_october_changes() {
        let from = Utc
            .with_ymd_and_hms(2027, 3, 6, 10, 0, 0)
            .single()
            .unwrap_or_default();
        let text = vtimezone(chrono_tz::Europe::London, from, from + Duration::hours(6));
        assert!(text.contains("TZID:Europe/London"), "{text}");
        assert!(text.contains("BEGIN:DAYLIGHT\r\nDTSTART:20260329T010000\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:+0100"), "{text}");
        assert!(text.contains("BEGIN:STANDARD\r\nDTSTART:20261025T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0000"), "{text}");
    }

    #[test]
    fn zones_without_changes_have_one_standard_observance() {
        let from = Utc
            .with_ymd_and_hms(2027, 3, 6, 10, 0, 0)
            .single()
            .unwrap_or_default();
        let text = vtimezone(chrono_tz::Asia::Kolkata, from, from + Duration::hours(6));
        assert_eq!(text.matches("BEGIN:STANDARD").count(), 1, "{text}");
        assert!(text.contains("TZOFFSETTO:+0530"), "{text}");
    }
}
