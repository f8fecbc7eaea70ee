//! When a digest is due: a pure function of a person's preferences, their last digest and the
//! time now, so the clock changes of every time zone can be tested without waiting for them.
//!
//! A *slot* is a scheduled local send: a local date (every day, the chosen weekday, or the first
//! chosen weekday of the month) at the chosen local hour. Its key (`WEEKLY:2027-03-08`) names
//! it; a slot is sent at most once, and the newest slot that has begun is the one due, so a
//! server that was down sends one digest covering the gap, not a backlog.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::people::{DigestFrequency, DigestPreferences};

/// A scheduled send: its key and the instant it begins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// `FREQUENCY:local-date`, unique per person and period.
    pub key: String,
    pub at: DateTime<Utc>,
}

/// How far back to look for the newest slot: more than a month and a week, so the first chosen
/// weekday of the previous month is always within reach.
pub(crate) const LOOK_BACK_DAYS: i64 = 40;

/// The slot due at `as_of`, if any: the newest slot that has begun, unless it is the last one
/// sent (or older), or began before `not_before` (a person is not sent a digest for a slot
/// from before they could receive one).
pub fn due_slot(
    prefs: &DigestPreferences,
    last: Option<&Slot>,
    not_before: DateTime<Utc>,
    as_of: DateTime<Utc>,
) -> Option<Slot> {
    let slot = latest_slot(prefs, as_of)?;
    if slot.at < not_before {
        return None;
    }
    match last {
        Some(last) if last.key == slot.key || last.at >= slot.at => None,
        _ => Some(slot),
    }
}

/// The newest slot that has begun by `as_of`; `None` for `NEVER`.
pub fn latest_slot(prefs: &DigestPreferences, as_of: DateTime<Utc>) -> Option<Slot> {
    let tz = prefs.time_zone.tz();
    // Tomorrow's local date first: `as_of` may be late in a day whose next slot is far east.
    let today = as_of.with_timezone(&tz).date_naive();
    (-1..=LOOK_BACK_DAYS)
        .filter_map(|back| today.checked_sub_signed(Duration::days(back)))
        .filter(|date| is_slot_date(prefs, *date))
        .map(|date| slot_on(prefs, tz, date))
        .find(|slot| slot.at <= as_of)
}

/// The slot before `slot`, for the start of a first digest's period.
pub fn previous_slot(prefs: &DigestPreferences, slot: &Slot) -> Option<Slot> {
    latest_slot(prefs, crate::time::before(slot.at, Duration::seconds(1)))
}

/// The next slot after `after`, for showing a person when their digest comes.
pub fn next_slot(prefs: &DigestPreferences, after: DateTime<Utc>) -> Option<Slot> {
    let tz = prefs.time_zone.tz();
    let today = after.with_timezone(&tz).date_naive();
    (-1..=LOOK_BACK_DAYS)
        .filter_map(|ahead| today.checked_add_signed(Duration::days(ahead)))
        .filter(|date| is_slot_date(prefs, *date))
        .map(|date| slot_on(prefs, tz, date))
        .find(|slot| slot.at > after)
}

fn is_slot_date(prefs: &DigestPreferences, date: NaiveDate) -> bool {
    let weekday = date.weekday().number_from_monday();
    match prefs.frequency {
        DigestFrequency::Daily => true,
        DigestFrequency::Weekly => weekday == u32::from(prefs.weekday),
        DigestFrequency::Monthly => weekday == u32::from(prefs.weekday) && date.day() <= 7,
        DigestFrequency::Never => false,
    }
}

fn slot_on(prefs: &DigestPreferences, tz: Tz, date: NaiveDate) -> Slot {
    let frequency = match prefs.frequency {
        DigestFrequency::Daily => "DAILY",
        DigestFrequency::Weekly => "WEEKLY",
        DigestFrequency::Monthly => "MONTHLY",
        DigestFrequency::Never => "NEVER",
    };
    let local = date.and_hms_opt(u32::from(prefs.hour.min(23)), 0, 0);
    Slot {
        key: format!("{frequency}:{date}"),
        at: local.map_or_else(|| date_start_utc(date), |local| instant(tz, local)),
    }
}

fn date_start_utc(date: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN))
}

/// The instant of a local time: the earlier one when the clocks go back and it happens twice,
/// and the first instant after the gap when the clocks go forward and it never happens.
pub fn instant(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(at) => at.with_timezone(&Utc),
        LocalResult::Ambiguous(earlier, _) => earlier.with_timezone(&Utc),
        LocalResult::None => {
            // Gaps are at most a few hours; step forward a minute at a time to the first local
            // time that exists, which is the instant the clocks changed.
            for minutes in 1..=(24 * 60) {
                let Some(later) = local.checked_add_signed(Duration::minutes(minutes)) else {
                    break;
                };
                match tz.from_local_datetime(&later) {
                    LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => {
                        return at.with_timezone(&Utc);
                    }
                    LocalResult::None => {}
                }
            }
            Utc.from_utc_datetime(&local)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::people::TimeZone as Zone;

    fn prefs(frequency: DigestFrequency, zone: &str, weekday: u8, hour: u8) -> DigestPreferences {
        DigestPreferences {
            frequency,
            weekday,
            hour,
            time_zone: Zone::parse(zone).unwrap_or(Zone::LONDON),
            changes: Vec::new(),
            send_empty: true,
        }
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    /// Runs a scheduler that wakes every minute from `from` to `to`, and returns every slot
    /// it sends, in order.
    fn simulate(prefs: &DigestPreferences, from: &str, to: &str) -> Vec<Slot> {
        let (mut now, end) = (utc(from), utc(to));
        let mut sent: Vec<Slot> = Vec::new();
        while now <= end {
            if let Some(slot) = due_slot(prefs, sent.last(), utc(from), now) {
                sent.push(slot);
            }
            now += Duration::minutes(1);
        }
        sent
    }

    fn keys(slots: &[Slot]) -> Vec<&str> {
        slots.iter().map(|s| s.key.as_str()).collect()
    }

    #[test]
    fn never_is_never_due() {
        let p = prefs(DigestFrequency::Never, "Europe/London", 1, 8);
        assert!(simulate(&p, "2027-03-01T00:00:00Z", "2027-03-10T00:00:00Z").is_empty());
    }

    #[test]
    fn daily_in_london_across_the_march_change_sends_each_day_once_at_local_eight() {
        let p = prefs(DigestFrequency::Daily, "Europe/London", 1, 8);
        let sent = simulate(&p, "2027-03-26T12:00:00Z", "2027-03-30T12:00:00Z");
        assert_eq!(
            keys(&sent),
            [
                "DAILY:2027-03-27",
                "DAILY:2027-03-28",
                "DAILY:2027-03-29",
                "DAILY:2027-03-30"
            ]
        );
        // GMT before the change, BST after it.
        assert_eq!(sent[0].at, utc("2027-03-27T08:00:00Z"));
        assert_eq!(sent[1].at, utc("2027-03-28T07:00:00Z"));
    }

    #[test]
    fn a_slot_in_the_spring_gap_is_sent_at_the_first_instant_after_it() {
        // 01:30 on 28 March 2027 does not exist in London: clocks go from 01:00 to 02:00.
        let p = prefs(DigestFrequency::Daily, "Europe/London", 1, 1);
        let sent = simulate(&p, "2027-03-27T12:00:00Z", "2027-03-29T12:00:00Z");
        assert_eq!(keys(&sent), ["DAILY:2027-03-28", "DAILY:2027-03-29"]);
        assert_eq!(sent[0].at, utc("2027-03-28T01:00:00Z"));
        assert_eq!(sent[1].at, utc("2027-03-29T00:00:00Z"));
    }

    #[test]
    fn a_slot_in_the_autumn_overlap_is_sent_once_at_the_earlier_instant() {
        // 01:00 on 31 October 2027 happens twice in London; the digest goes at the first.
        let p = prefs(DigestFrequency::Daily, "Europe/London", 1, 1);
        let sent = simulate(&p, "2027-10-30T12:00:00Z", "2027-11-01T12:00:00Z");
        assert_eq!(keys(&sent), ["DAILY:2027-10-31", "DAILY:2027-11-01"]);
        assert_eq!(sent[0].at, utc("2027-10-31T00:00:00Z"));
        assert_eq!(sent[1].at, utc("2027-11-01T01:00:00Z"));
    }

    #[test]
    fn weekly_in_new_york_across_both_changes_sends_each_week_once() {
        // US clocks change on 14 March and 7 November 2027: 1:00 on Sundays, hour 1 and 2.
        for hour in [1, 2, 8] {
            let p = prefs(DigestFrequency::Weekly, "America/New_York", 7, hour);
            let sent = simulate(&p, "2027-03-01T00:00:00Z", "2027-03-29T00:00:00Z");
            assert_eq!(
                keys(&sent),
                [
                    "WEEKLY:2027-03-07",
                    "WEEKLY:2027-03-14",
                    "WEEKLY:2027-03-21",
                    "WEEKLY:2027-03-28"
                ],
                "hour {hour}"
            );
            let sent = simulate(&p, "2027-10-25T00:00:00Z", "2027-11-16T00:00:00Z");
            assert_eq!(
                keys(&sent),
                [
                    "WEEKLY:2027-10-31",
                    "WEEKLY:2027-11-07",
                    "WEEKLY:2027-11-14"
                ],
                "hour {hour}"
            );
        }
        let p = prefs(DigestFrequency::Weekly, "America/New_York", 7, 2);
        let sent = simulate(&p, "2027-03-10T00:00:00Z", "2027-03-15T00:00:00Z");
        // 02:00 does not exist on 14 March: the first instant after is 03:00 EDT.
        assert_eq!(sent[0].at, utc("2027-03-14T07:00:00Z"));
    }

    #[test]
    fn monthly_in_kolkata_and_london_sends_on_the_first_chosen_weekday_once_a_month() {
        let p = prefs(DigestFrequency::Monthly, "Asia/Kolkata", 1, 8);
        let sent = simulate(&p, "2027-02-20T00:00:00Z", "2027-05-10T00:00:00Z");
        assert_eq!(
            keys(&sent),
            [
                "MONTHLY:2027-03-01",
                "MONTHLY:2027-04-05",
                "MONTHLY:2027-05-03"
            ]
        );
        // India keeps one offset all year: 08:00 IST is 02:30 UTC.
        assert_eq!(sent[0].at, utc("2027-03-01T02:30:00Z"));
        let p = prefs(DigestFrequency::Monthly, "Europe/London", 7, 1);
        let sent = simulate(&p, "2027-09-25T00:00:00Z", "2027-11-10T00:00:00Z");
        assert_eq!(keys(&sent), ["MONTHLY:2027-10-03", "MONTHLY:2027-11-07"]);
    }

    #[test]
    fn a_server_down_for_days_sends_one_digest_for_the_newest_slot() {
        let p = prefs(DigestFrequency::Daily, "Europe/London", 1, 8);
        let last = latest_slot(&p, utc("2027-01-10T09:00:00Z"));
        let due = due_slot(
            &p,
            last.as_ref(),
            utc("2027-01-01T00:00:00Z"),
            utc("2027-01-14T09:00:00Z"),
        );
        assert_eq!(due.map(|s| s.key), Some("DAILY:2027-01-14".to_owned()));
    }

    #[test]
    fn no_slot_from_before_a_person_could_receive_it() {
        let p = prefs(DigestFrequency::Weekly, "Europe/London", 1, 8);
        // Monday 4 January 2027, 08:00 GMT, is before they joined at 09:00.
        let due = due_slot(
            &p,
            None,
            utc("2027-01-04T09:00:00Z"),
            utc("2027-01-05T09:00:00Z"),
        );
        assert_eq!(due, None);
    }

    #[test]
    fn changing_the_hour_after_a_send_does_not_send_the_same_day_again() {
        let mut p = prefs(DigestFrequency::Daily, "Europe/London", 1, 8);
        let first = latest_slot(&p, utc("2027-01-04T09:00:00Z"));
        p.hour = 10;
        let due = due_slot(
            &p,
            first.as_ref(),
            utc("2027-01-01T00:00:00Z"),
            utc("2027-01-04T11:00:00Z"),
        );
        assert_eq!(due, None);
    }

    #[test]
    fn the_next_and_previous_slots_surround_a_slot() {
        let p = prefs(DigestFrequency::Weekly, "Europe/London", 1, 8);
        let slot = latest_slot(&p, utc("2027-03-30T00:00:00Z"));
        assert_eq!(
            slot.as_ref().map(|s| s.key.as_str()),
            Some("WEEKLY:2027-03-29")
        );
        let previous = slot.as_ref().and_then(|s| previous_slot(&p, s));
        assert_eq!(
            previous.map(|s| s.key),
            Some("WEEKLY:2027-03-22".to_owned())
        );
        let next = next_slot(&p, utc("2027-03-30T00:00:00Z"));
        assert_eq!(next.map(|s| s.at), Some(utc("2027-04-05T07:00:00Z")));
    }
}
