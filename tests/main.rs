//! End-to-end tests: each starts the real server on a random port with a fresh database
//! (SQLite file or PostgreSQL database), a real SMTP server to receive its mail, and speaks
//! GraphQL over HTTP as a client would. Every test runs on both databases.

// The root package's `[lints.clippy]` turns on `too_many_lines` for its code; clippy has no
// setting that spares tests, so this crate, all of it tests and their helpers, is spared here.
#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test reads as one story of the rule it checks, top to bottom"
)]

mod helpers;

mod coalitions;
mod digest_servers;
mod digests;
mod gatherings;
mod graphql_http;
mod hardening_limits;
mod hardening_rules;
mod http;
mod mail_delivery;
mod organisations;
mod pages;
mod pledges;
mod process;
mod progress;
mod read_connections;
mod registrations;
mod response_cache;
mod schema;
mod secrets;
mod sign_in;
mod subscriptions;
mod validation;
mod webhooks;
