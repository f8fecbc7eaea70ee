//! A gathering's calendar file, and its registrations as CSV for convenors.

use std::collections::HashMap;

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use groundswell_domain::{
    Actor,
    gatherings::{self, CalendarEntry},
    people,
    registrations::{
        self, AccessRequirement, AttendanceMode, RegistrationError, RegistrationStatus,
    },
};

use super::{AppState, auth};
use crate::calendar;

fn plain(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.to_owned(),
    )
        .into_response()
}

fn host_of(public_url: &str) -> &str {
    public_url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', ':']).next())
        .unwrap_or("groundswell")
}

/// `GET /gatherings/{slug}.ics`: the public calendar entry (no joining link).
pub async fn ics(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    let Some(slug) = file.strip_suffix(".ics") else {
        return plain(StatusCode::NOT_FOUND, "Not found.");
    };
    match gatherings::by_slug(&state.db, &Actor::Anonymous, slug).await {
        Ok(Some(gathering)) => {
            let text = calendar::ics(
                &CalendarEntry::public(&gathering),
                &state.public_url,
                host_of(&state.public_url),
            );
            (
                [
                    (
                        header::CONTENT_TYPE,
                        "text/calendar; charset=utf-8".to_owned(),
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{}.ics\"", gathering.slug),
                    ),
                ],
                text,
            )
                .into_response()
        }
        Ok(None) => plain(StatusCode::NOT_FOUND, "No gathering has that address."),
        Err(err) => {
            tracing::error!(error = %err, "loading a gathering failed");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side.",
            )
        }
    }
}

/// Keeps a spreadsheet from reading a cell as a formula.
fn cell(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    }
}

fn requirement_name(requirement: AccessRequirement) -> &'static str {
    match requirement {
        AccessRequirement::StepFreeAccess => "Step-free access",
        AccessRequirement::BslInterpreter => "BSL interpreter",
        AccessRequirement::HearingLoop => "Hearing loop",
        AccessRequirement::EasyRead => "Easy read",
        AccessRequirement::LargePrint => "Large print",
        AccessRequirement::QuietSpace => "Quiet space",
        AccessRequirement::Dietary => "Dietary",
        AccessRequirement::PersonalAssistant => "Personal assistant",
        AccessRequirement::Other => "Other",
    }
}

/// `GET /gatherings/{slug}/registrations.csv`: everyone registered, for the gathering's
/// convenors, as UTF-8 CSV that spreadsheets open correctly.
pub async fn registrations_csv(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Response {
    let actor = match signed_in(&state, &headers).await {
        Ok(actor) => actor,
        Err(refused) => return refused,
    };
    let gathering = match gatherings::by_slug(&state.db, &actor, &slug).await {
        Ok(Some(gathering)) => gathering,
        Ok(None) => return plain(StatusCode::NOT_FOUND, "No gathering has that address."),
        Err(err) => return went_wrong("loading a gathering", &err),
    };
    let rows = match registrations::all_for_gathering(&state.db, &actor, gathering.id).await {
        Ok(rows) => rows,
        Err(RegistrationError::Access(_)) => {
            return plain(
                StatusCode::FORBIDDEN,
                "Only the gathering's convenors can download its registrations.",
            );
        }
        Err(err) => return went_wrong("loading registrations", &err),
    };
    let ids: Vec<_> = rows.iter().map(|r| r.person_id).collect();
    let people: HashMap<_, _> = match people::by_ids(&state.db, &ids).await {
        Ok(found) => found.into_iter().map(|p| (p.id, p)).collect(),
        Err(err) => return went_wrong("loading people", &err),
    };
    match write_csv(&rows, &people) {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"{}-registrations.csv\"",
                        gathering.slug
                    ),
                ),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
            bytes,
        )
            .into_response(),
        Err(err) => went_wrong("writing CSV", &*err),
    }
}

/// The signed-in caller: a credential that is not valid is refused with 401 as GraphQL
/// refuses it, and no credential with a plain 401 asking to sign in.
async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Actor, Response> {
    match auth::caller(&state.db, &auth::presented(headers, true)).await {
        Ok(Actor::Anonymous) => Err(plain(
            StatusCode::UNAUTHORIZED,
            "Sign in as one of the gathering's convenors.",
        )),
        Ok(actor) => Ok(actor),
        Err(auth::Refusal::Invalid) => Err(super::graphql::error_response(
            StatusCode::UNAUTHORIZED,
            auth::INVALID_CREDENTIAL,
            "UNAUTHENTICATED",
        )),
        Err(auth::Refusal::Unavailable) => Err(plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "Please try again in a minute.",
        )),
    }
}

/// A 500 for a failure of ours, logged once here with what was being done.
fn went_wrong(doing: &str, err: &(dyn std::error::Error + 'static)) -> Response {
    tracing::error!(error = %err, "{doing} failed");
    plain(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on our side.",
    )
}

fn write_csv(
    rows: &[registrations::Registration],
    people: &HashMap<uuid::Uuid, people::Person>,
) -> anyhow::Result<Vec<u8>> {
    // A byte-order mark tells spreadsheets the file is UTF-8, so names keep their accents.
    let mut out = "\u{feff}".as_bytes().to_vec();
    {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(&mut out);
        writer.write_record([
            "Name",
            "Email",
            "Mode",
            "Status",
            "Waitlist position",
            "Companions",
            "Access requirements",
            "Access notes",
            "Registered by someone else",
            "Checked in at",
            "Registered at",
        ])?;
        for row in rows {
            let person = people.get(&row.person_id);
            let requirements: Vec<&str> = row
                .access_requirements
                .iter()
                .map(|r| requirement_name(*r))
                .collect();
            writer.write_record([
                cell(person.and_then(|p| p.display_name.as_deref()).unwrap_or("")),
                cell(person.map(|p| p.email.as_str()).unwrap_or("")),
                match row.mode {
                    AttendanceMode::InPerson => "In person".to_owned(),
                    AttendanceMode::Online => "Online".to_owned(),
                },
                match row.status {
                    RegistrationStatus::Confirmed => "Confirmed".to_owned(),
                    RegistrationStatus::Waitlisted => "Waitlisted".to_owned(),
                    RegistrationStatus::Cancelled => "Cancelled".to_owned(),
                },
                row.waitlist_position
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                row.companions.to_string(),
                cell(&requirements.join("; ")),
                cell(row.access_notes.as_deref().unwrap_or("")),
                if row.registered_by.is_some() {
                    "Yes"
                } else {
                    "No"
                }
                .to_owned(),
                row.checked_in_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default(),
                row.created_at.to_rfc3339(),
            ])?;
        }
        writer.flush()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn cells_that_look_like_formulas_are_defused() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("+44 113"), "'+44 113");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("Zoë"), "Zoë");
    }
}
