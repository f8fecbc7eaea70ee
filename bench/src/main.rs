//! `groundswell-bench`: load the movement at scale, and measure Groundswell against the floor of
//! raw SQL.
//!
//! - `groundswell-bench seed --database-url URL` loads the movement at scale into an empty
//!   database (deterministic from `--seed`).
//! - `groundswell-bench run` makes a fresh database, seeds it, starts the release server beside
//!   this executable, and drives the scenarios over HTTP on loopback; `scripts/bench` builds both
//!   and runs it.

mod client;
mod floor;
mod load;
mod mixed;
mod peer;
mod report;
mod run;
mod seed;
mod server;

use std::{path::PathBuf, time::Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use groundswell_migration::MigratorTrait;

#[derive(Debug, Parser)]
#[command(name = "groundswell-bench", about = "The movement at scale, measured.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate an empty database and load the movement at scale into it.
    Seed {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// The seed number: the same number loads the same movement.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// 1.0 is the full size (2,000 organisations, 10,000 pledges, 100,000 updates, …).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
    },
    /// Seed a fresh database, start the release server and run every scenario.
    Run(run::RunArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Seed {
            database_url,
            seed,
            scale,
        } => {
            let started = Instant::now();
            let db = sea_orm::Database::connect(&database_url)
                .await
                .context("connecting to the database")?;
            groundswell_migration::Migrator::up(&db, None).await?;
            let fixture = seed::load(&db, seed, scale, chrono::Utc::now()).await?;
            println!(
                "Loaded {:?} in {:.1} s.",
                fixture.counts,
                started.elapsed().as_secs_f64()
            );
            // What a profile of one page needs to ask for it as the benchmark does.
            println!(
                "page gathering slug: {}\nwall change: {}\na page caller's token: {}",
                fixture.page_gathering_slug,
                fixture.wall_change,
                fixture.page_callers.first().map_or("", String::as_str)
            );
            Ok(())
        }
        Command::Run(args) => run::run(args).await,
    }
}

/// Where results go unless `--json` says otherwise.
fn default_json() -> PathBuf {
    PathBuf::from("target/bench/results.json")
}
