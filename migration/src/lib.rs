//! Groundswell's schema history. Every migration runs unchanged on SQLite and PostgreSQL, so
//! only portable column types and statements are used here.

pub use sea_orm_migration::prelude::*;

mod m20261129_000001_foundation;
mod m20261129_000002_gatherings;
mod m20261129_000003_pledges;
mod m20261129_000004_digests;
mod m20261129_000005_nudges;
mod m20261201_000001_hardening;
mod m20261201_000003_pages;
mod m20261201_000004_webhooks;
mod m20261205_000001_privacy;
mod m20261205_000002_digest_fence;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_foundation::Migration),
            Box::new(m20261129_000002_gatherings::Migration),
            Box::new(m20261129_000003_pledges::Migration),
            Box::new(m20261129_000004_digests::Migration),
            Box::new(m20261129_000005_nudges::Migration),
            Box::new(m20261201_000001_hardening::Migration),
            Box::new(m20261201_000003_pages::Migration),
            Box::new(m20261201_000004_webhooks::Migration),
            Box::new(m20261205_000001_privacy::Migration),
            Box::new(m20261205_000002_digest_fence::Migration),
        ]
    }
}
