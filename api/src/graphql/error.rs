//! The one error type resolvers return. Each variant is an `extensions.code` of the contract;
//! internal causes are logged once here, with their chain, and the client sees only a generic
//! message.
//!
//! `ApiError` deliberately has no `Display`: that keeps async-graphql's blanket conversion
//! (which would drop the code) from applying, so every error goes through `From` below.

use async_graphql::ErrorExtensions;
use groundswell_domain::{
    AccessError, InvalidInput, coalitions::CoalitionError, digests::DigestError,
    gatherings::GatheringError, mail::MailError, organisations::OrganisationError,
    people::PeopleError, pledges::PledgeError, progress::ProgressError,
    registrations::RegistrationError, webhooks::WebhookError,
};

#[derive(Clone, Debug)]
pub enum ApiError {
    Unauthenticated(String),
    Forbidden(String),
    NotFound(String),
    BadUserInput { field: String, message: String },
    Conflict(String),
    RateLimited(String),
    Internal,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A refusal of one input field; `reason` completes a sentence starting with the field.
    pub fn bad_input(field: &str, reason: impl std::fmt::Display) -> Self {
        ApiError::BadUserInput {
            field: field.to_owned(),
            message: format!("{field} {reason}."),
        }
    }

    /// Logs an unexpected failure and hides it from the client.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        let err = err.into();
        tracing::error!(error = format!("{err:#}"), "request failed");
        ApiError::Internal
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::BadUserInput { .. } => "BAD_USER_INPUT",
            ApiError::Conflict(_) => "CONFLICT",
            ApiError::RateLimited(_) => "RATE_LIMITED",
            ApiError::Internal => "INTERNAL_SERVER_ERROR",
        }
    }
}

/// Maps an `InvalidInput` from a domain constructor onto the field it came from.
pub trait FieldContext<T> {
    fn field(self, name: &str) -> ApiResult<T>;
}

impl<T> FieldContext<T> for Result<T, InvalidInput> {
    fn field(self, name: &str) -> ApiResult<T> {
        self.map_err(|reason| ApiError::bad_input(name, reason))
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        let code = err.code();
        let (message, field) = match err {
            ApiError::Unauthenticated(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::RateLimited(m) => (m, None),
            ApiError::BadUserInput { field, message } => (message, Some(field)),
            ApiError::Internal => (
                "Something went wrong on our side. Please try again; if it keeps happening, tell the movement's team."
                    .to_owned(),
                None,
            ),
        };
        async_graphql::Error::new(message).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(field) = field {
                ext.set("field", field);
            }
        })
    }
}

impl From<async_graphql::Error> for ApiError {
    fn from(err: async_graphql::Error) -> Self {
        ApiError::internal(anyhow::anyhow!("graphql: {}", err.message))
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        ApiError::internal(err)
    }
}

impl From<AccessError> for ApiError {
    fn from(err: AccessError) -> Self {
        match err {
            AccessError::Unauthenticated => ApiError::Unauthenticated(
                "You need to sign in to do this, or your session or API token is no longer valid."
                    .to_owned(),
            ),
            AccessError::Forbidden(_) => ApiError::Forbidden(err.to_string()),
        }
    }
}

impl From<PeopleError> for ApiError {
    fn from(err: PeopleError) -> Self {
        match err {
            PeopleError::Access(err) => err.into(),
            PeopleError::SignInLinkInvalid => ApiError::Unauthenticated(err.to_string()),
            PeopleError::TooManySignInRequests => ApiError::RateLimited(err.to_string()),
            PeopleError::NotFound => ApiError::NotFound(err.to_string()),
            PeopleError::LastOwner(_) => ApiError::Conflict(err.to_string()),
            PeopleError::Database(err) => ApiError::internal(err),
        }
    }
}

impl From<OrganisationError> for ApiError {
    fn from(err: OrganisationError) -> Self {
        match err {
            OrganisationError::Access(err) => err.into(),
            OrganisationError::NotFound | OrganisationError::TokenNotFound => {
                ApiError::NotFound(err.to_string())
            }
            OrganisationError::SlugTaken(_)
            | OrganisationError::LastOwner
            | OrganisationError::AddedMeanwhile => ApiError::Conflict(err.to_string()),
            OrganisationError::TooManyAdded(_) => ApiError::RateLimited(err.to_string()),
            OrganisationError::Database(err) => ApiError::internal(err),
        }
    }
}

impl From<GatheringError> for ApiError {
    fn from(err: GatheringError) -> Self {
        match err {
            GatheringError::Access(err) => err.into(),
            GatheringError::NotFound => ApiError::NotFound(err.to_string()),
            GatheringError::SlugTaken(_)
            | GatheringError::Cancelled
            | GatheringError::AlreadyPublished
            | GatheringError::CapacityBelowTaken(_) => ApiError::Conflict(err.to_string()),
            GatheringError::Database(err) => ApiError::internal(err),
        }
    }
}

impl From<PledgeError> for ApiError {
    fn from(err: PledgeError) -> Self {
        match err {
            PledgeError::Access(err) => err.into(),
            PledgeError::NotFound
            | PledgeError::OrganisationNotFound
            | PledgeError::CoalitionNotFound => ApiError::NotFound(err.to_string()),
            PledgeError::Withdrawn | PledgeError::CoalitionConcluded => {
                ApiError::Conflict(err.to_string())
            }
            PledgeError::Database(err) => ApiError::internal(err),
        }
    }
}

impl From<RegistrationError> for ApiError {
    fn from(err: RegistrationError) -> Self {
        match err {
            RegistrationError::Access(err) => err.into(),
            RegistrationError::NotFound | RegistrationError::GatheringNotFound => {
                ApiError::NotFound(err.to_string())
            }
            RegistrationError::ModeNotOffered => ApiError::BadUserInput {
                field: "mode".to_owned(),
                message: err.to_string(),
            },
            RegistrationError::RequestLinkInvalid => ApiError::BadUserInput {
                field: "token".to_owned(),
                message: err.to_string(),
            },
            RegistrationError::TooManyRequests => ApiError::RateLimited(err.to_string()),
            RegistrationError::GatheringCancelled
            | RegistrationError::NotOpen(_)
            | RegistrationError::AlreadyCancelled
            | RegistrationError::NotConfirmed => ApiError::Conflict(err.to_string()),
            RegistrationError::TooMany(_) => ApiError::RateLimited(err.to_string()),
            RegistrationError::Database(err) => ApiError::internal(err),
        }
    }
}

impl From<CoalitionError> for ApiError {
    fn from(err: CoalitionError) -> Self {
        match err {
            CoalitionError::Access(err) => err.into(),
            CoalitionError::NotFound
            | CoalitionError::OrganisationNotFound
            | CoalitionError::MembershipNotFound => ApiError::NotFound(err.to_string()),
            CoalitionError::SlugTaken(_)
            | CoalitionError::Concluded
            | CoalitionError::NotActiveMember
            | CoalitionError::LeadCannotLeave
            | CoalitionError::NothingToAccept(_)
            | CoalitionError::ChangedMeanwhile => ApiError::Conflict(err.to_string()),
            CoalitionError::Database(err) => ApiError::internal(err),
        }
    }
}

impl From<DigestError> for ApiError {
    fn from(err: DigestError) -> Self {
        match err {
            DigestError::Access(err) => err.into(),
            DigestError::InvalidUnsubscribeLink => ApiError::bad_input("token", "is not valid"),
            DigestError::NotFound => ApiError::NotFound(err.to_string()),
            DigestError::Database(err) => ApiError::internal(err),
        }
    }
}

impl From<ProgressError> for ApiError {
    fn from(err: ProgressError) -> Self {
        match err {
            ProgressError::Access(err) => err.into(),
            ProgressError::PledgeNotFound | ProgressError::CoalitionNotFound => {
                ApiError::NotFound(err.to_string())
            }
            ProgressError::PledgeWithdrawn | ProgressError::CoalitionConcluded => {
                ApiError::Conflict(err.to_string())
            }
            ProgressError::Database(err) => ApiError::internal(err),
        }
    }
}

impl From<MailError> for ApiError {
    fn from(err: MailError) -> Self {
        match err {
            MailError::Access(err) => err.into(),
            MailError::Database(err) => ApiError::internal(err),
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> Self {
        match err {
            WebhookError::Access(err) => err.into(),
            WebhookError::NotFound
            | WebhookError::OrganisationNotFound
            | WebhookError::DeliveryNotFound => ApiError::NotFound(err.to_string()),
            WebhookError::TooMany | WebhookError::DeliveryInFlight => {
                ApiError::Conflict(err.to_string())
            }
            WebhookError::Database(err) => ApiError::internal(err),
        }
    }
}

/// Gives every error in a response a code. Errors raised before any resolver ran (a query that
/// does not parse or validate, an unknown enum value, a query too deep or too complex) are the
/// client's input; anything else without a code is ours.
pub fn assign_codes(response: &mut async_graphql::Response) {
    for error in &mut response.errors {
        let has_code = error
            .extensions
            .as_ref()
            .is_some_and(|ext| ext.get("code").is_some());
        if has_code {
            continue;
        }
        // An argument of the wrong type is found while resolving, so it has a path.
        let is_input = error.path.is_empty()
            || [
                "Failed to parse",
                "Expected input type",
                "Invalid value for",
            ]
            .iter()
            .any(|prefix| error.message.starts_with(prefix));
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if is_input {
            extensions.set("code", "BAD_USER_INPUT");
            if let Some(field) = field_in_message(&error.message) {
                extensions.set("field", field);
            }
        } else {
            tracing::error!(graphql.message = %error.message, "resolver error without a code");
            error.message = "Something went wrong on our side. Please try again.".to_owned();
            extensions.set("code", "INTERNAL_SERVER_ERROR");
        }
    }
}

/// The input field a validation message names: `argument "input.kind"` gives `kind`,
/// `variable "$email"` gives `email`.
fn field_in_message(message: &str) -> Option<String> {
    for marker in ["argument \"", "variable \"", "field \""] {
        if let Some(start) = message.find(marker) {
            let rest = &message[start + marker.len()..];
            let name = rest.split('"').next()?;
            let name = name.trim_start_matches('$');
            let last = name.rsplit('.').next().unwrap_or(name);
            if !last.is_empty() {
                return Some(last.to_owned());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::field_in_message;

    #[test]
    fn field_names_come_from_validation_messages() {
        assert_eq!(
            field_in_message(r#"Invalid value for argument "input.kind", enumeration type "OrganisationKind" does not contain the value "SHOP""#).as_deref(),
            Some("kind")
        );
        assert_eq!(
            field_in_message(r#"Invalid value for variable "$email""#).as_deref(),
            Some("email")
        );
        assert_eq!(field_in_message("Query is nested too deep."), None);
    }
}
