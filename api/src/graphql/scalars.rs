//! Scalars of our own: `Date`, a calendar day written `YYYY-MM-DD`.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{DateTime, NaiveDate, Utc};
use groundswell_domain::time::{Day, Moment};

use super::{ApiResult, error::FieldContext};

/// A date-time given for `field`, within the years Groundswell works in.
pub fn moment(field: &str, at: DateTime<Utc>) -> ApiResult<Moment> {
    Moment::new(at).field(field)
}

/// An optional date-time given for `field`, within the years Groundswell works in.
pub fn moment_opt(field: &str, at: Option<DateTime<Utc>>) -> ApiResult<Option<Moment>> {
    at.map(|at| moment(field, at)).transpose()
}

/// A day given for `field`, within the years Groundswell works in.
pub fn day(field: &str, date: Date) -> ApiResult<Day> {
    Day::new(date.0).field(field)
}

/// A calendar day, `YYYY-MM-DD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date(pub NaiveDate);

/// A calendar day, written `YYYY-MM-DD`, such as 2026-03-31.
#[Scalar(
    name = "Date",
    specified_by_url = "https://www.rfc-editor.org/rfc/rfc3339#section-5.6"
)]
impl ScalarType for Date {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(Date)
                .map_err(|_| InputValueError::custom("must be a date written YYYY-MM-DD")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%d").to_string())
    }
}
