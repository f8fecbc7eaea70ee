//! Groundswell's transport: the HTTP server, the GraphQL schema, authentication, mail delivery
//! and the command line. Resolvers authenticate, call a domain service and map the result; no
//! SQL is built here.

pub mod background;
pub mod calendar;
pub mod cli;
pub mod config;
pub mod digests;
pub mod events;
pub mod graphql;
pub mod http;
pub mod mail;
pub mod metrics;
pub mod response_cache;
pub mod seed;
pub mod startup;
pub mod telemetry;
pub mod webhooks;

pub use config::Config;
pub use startup::Application;
