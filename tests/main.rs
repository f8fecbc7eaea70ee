//! End-to-end tests: each starts the real server on a random port with a fresh database
//! (SQLite file or PostgreSQL database), a real SMTP server to receive its mail, and speaks
//! GraphQL over HTTP as a client would. Every test runs on both databases.

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
mod registrations;
mod response_cache;
mod schema;
mod secrets;
mod sign_in;
mod subscriptions;
mod validation;
mod webhooks;
