//! Moments and days Groundswell stores or computes with, bounded to the years 1900 to 2200.
//! Anything outside is refused where it comes in, so no arithmetic past the edge (a calendar's
//! time zone rules, a digest's schedule, a reminder's "60 days ago") can overflow.

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};

use crate::InvalidInput;

/// The first year a moment may be in.
pub const FIRST_YEAR: i32 = 1900;
/// The last year a moment may be in.
pub const LAST_YEAR: i32 = 2200;

fn in_range(year: i32) -> Result<(), InvalidInput> {
    if (FIRST_YEAR..=LAST_YEAR).contains(&year) {
        Ok(())
    } else {
        Err(InvalidInput::new(format!(
            "must be in the years {FIRST_YEAR} to {LAST_YEAR}"
        )))
    }
}

/// A moment in the years 1900 to 2200 (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Moment(DateTime<Utc>);

impl Moment {
    pub fn new(at: DateTime<Utc>) -> Result<Self, InvalidInput> {
        in_range(at.year())?;
        Ok(Self(at))
    }

    pub fn get(self) -> DateTime<Utc> {
        self.0
    }
}

/// A calendar day in the years 1900 to 2200.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(NaiveDate);

impl Day {
    pub fn new(date: NaiveDate) -> Result<Self, InvalidInput> {
        in_range(date.year())?;
        Ok(Self(date))
    }

    pub fn get(self) -> NaiveDate {
        self.0
    }
}

/// `span` before `at`, or the earliest moment chrono knows when that would overflow.
pub fn before(at: DateTime<Utc>, span: TimeDelta) -> DateTime<Utc> {
    at.checked_sub_signed(span)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `span` after `at`, or the latest moment chrono knows when that would overflow.
pub fn after(at: DateTime<Utc>, span: TimeDelta) -> DateTime<Utc> {
    at.checked_add_signed(span)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn moments_outside_1900_to_2200_are_refused() {
        let at = |year| Utc.with_ymd_and_hms(year, 6, 1, 12, 0, 0).single();
        for year in [1, 1899, 2201, 9999, 262_142] {
            if let Some(at) = at(year) {
                assert!(Moment::new(at).is_err(), "{year}");
            }
        }
        for year in [1900, 2026, 2200] {
            assert!(at(year).is_some_and(|at| Moment::new(at).is_ok()), "{year}");
        }
        assert!(Moment::new(DateTime::<Utc>::MAX_UTC).is_err());
        assert!(Moment::new(DateTime::<Utc>::MIN_UTC).is_err());
        assert!(Day::new(NaiveDate::MAX).is_err());
        assert!(NaiveDate::from_ymd_opt(2030, 1, 31).is_some_and(|d| Day::new(d).is_ok()));
    }

    #[test]
    fn arithmetic_past_the_ends_of_time_saturates() {
        assert_eq!(
            after(DateTime::<Utc>::MAX_UTC, TimeDelta::days(1)),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            before(DateTime::<Utc>::MIN_UTC, TimeDelta::MAX),
            DateTime::<Utc>::MIN_UTC
        );
    }
}
