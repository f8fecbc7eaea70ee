//! The command line: `serve` (the default), `migrate`, `schema`, `grant-role`, `seed` and
//! `send-due-digests`.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use groundswell_domain::{Database, digests, people};
use groundswell_migration::MigratorTrait;
use sea_orm::ActiveEnum;

use crate::{Application, Config, config::Settings, graphql, seed, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "groundswell",
    version,
    about = "The backend of the #socialcarefuture movement."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate, then serve HTTP, deliver mail and run the digest scheduler.
    Serve,
    /// Apply migrations and exit.
    Migrate,
    /// Print the GraphQL SDL.
    Schema,
    /// Make a person a CONVENOR or ADMIN (or ATTENDEE again), creating them if new.
    GrantRole {
        email: String,
        #[arg(value_enum, ignore_case = true)]
        role: RoleArg,
    },
    /// Load a demo movement (organisations, coalitions, pledges and a year of progress) into an
    /// empty database.
    Seed,
    /// Queue every digest due now (or at --as-of, an RFC 3339 time) and exit; a running
    /// server delivers them. A digest already queued for its period is not queued again.
    SendDueDigests {
        #[arg(long)]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
enum RoleArg {
    Attendee,
    Convenor,
    Admin,
}

/// Runs the command line; returns once the command is done or the server has stopped.
pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Schema => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Command::Serve => {
            telemetry::init();
            let config = Config::from_settings(cli.settings)?;
            Application::build(config).await?.run_until_stopped().await
        }
        Command::Migrate => {
            telemetry::init();
            let config = Config::from_settings(cli.settings)?;
            let db = connect(&config).await?;
            groundswell_migration::Migrator::up(db.conn(), None).await?;
            println!("Migrations applied.");
            Ok(())
        }
        Command::GrantRole { email, role } => {
            telemetry::init();
            let config = Config::from_settings(cli.settings)?;
            let email =
                people::EmailAddress::parse(&email).map_err(|e| anyhow::anyhow!("EMAIL {e}"))?;
            let db = connect(&config).await?;
            groundswell_migration::Migrator::up(db.conn(), None).await?;
            let role = match role {
                RoleArg::Attendee => people::Role::Attendee,
                RoleArg::Convenor => people::Role::Convenor,
                RoleArg::Admin => people::Role::Admin,
            };
            people::grant_role(&db, &email, role, groundswell_domain::now())
                .await
                .context("granting the role")?;
            println!("{email} is now {}.", role.to_value());
            Ok(())
        }
        Command::Seed => {
            telemetry::init();
            let config = Config::from_settings(cli.settings)?;
            let db = connect(&config).await?;
            groundswell_migration::Migrator::up(db.conn(), None).await?;
            let seeded = seed::seed(&db, groundswell_domain::now())
                .await
                .context("seeding the demo movement")?;
            println!(
                "Seeded {} organisations, {} coalitions, {} pledges and {} progress updates.",
                seeded.organisations, seeded.coalitions, seeded.pledges, seeded.updates
            );
            Ok(())
        }
        Command::SendDueDigests { as_of } => {
            telemetry::init();
            let config = Config::from_settings(cli.settings)?;
            let db = connect(&config).await?;
            groundswell_migration::Migrator::up(db.conn(), None).await?;
            let now = groundswell_domain::now();
            let outcome = digests::send_due(&db, as_of.unwrap_or(now), now, config.quiet_after)
                .await
                .context("queuing due digests")?;
            println!(
                "{} digests queued; {} periods with nothing to tell; {} already queued elsewhere.",
                outcome.queued, outcome.skipped_empty, outcome.already_claimed
            );
            Ok(())
        }
    }
}

/// Connects to the configured database, creating the SQLite file's folder if needed.
pub async fn connect(config: &Config) -> anyhow::Result<Database> {
    if let Some(path) = config.database_url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        if let Some(parent) = std::path::Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
    }
    Database::connect(&config.database_url, config.database_max_connections)
        .await
        .context("connecting to the database")
}
