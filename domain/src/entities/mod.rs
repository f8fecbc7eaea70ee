//! sea-orm entities: the tables as rows. Private to the domain; services return domain types.

pub(crate) mod api_token;
pub(crate) mod change;
pub(crate) mod coalition;
pub(crate) mod coalition_change;
pub(crate) mod coalition_member;
pub(crate) mod digest;
pub(crate) mod digest_fence;
pub(crate) mod enums;
pub(crate) mod gathering;
pub(crate) mod gathering_convenor;
pub(crate) mod on_behalf_attempt;
pub(crate) mod organisation;
pub(crate) mod organisation_member;
pub(crate) mod outbox;
pub(crate) mod person;
pub(crate) mod pledge;
pub(crate) mod pledge_change;
pub(crate) mod pledge_nudge;
pub(crate) mod progress_update;
pub(crate) mod registration;
pub(crate) mod registration_request;
pub(crate) mod session;
pub(crate) mod sign_in_token;
pub(crate) mod webhook_attempt;
pub(crate) mod webhook_delivery;
pub(crate) mod webhook_endpoint;
