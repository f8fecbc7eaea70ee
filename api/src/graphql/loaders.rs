//! Batched loading for nested fields: one `WHERE id IN (…)` per kind of row per request, so a
//! page's statement count does not grow with its size.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::{DataLoader, Loader};
use groundswell_domain::{
    Database,
    organisations::{self, Organisation},
    people::{self, Person},
};
use uuid::Uuid;

/// Reads rows by key for one request.
pub struct DbLoader {
    db: Database,
}

pub fn new_loader(db: Database) -> DataLoader<DbLoader> {
    DataLoader::new(DbLoader { db }, tokio::spawn)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PersonId(pub Uuid);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OrganisationId(pub Uuid);

impl Loader<PersonId> for DbLoader {
    type Value = Person;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(&self, keys: &[PersonId]) -> Result<HashMap<PersonId, Person>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        Ok(people::by_ids(&self.db, &ids)
            .await?
            .into_iter()
            .map(|p| (PersonId(p.id), p))
            .collect())
    }
}

impl Loader<OrganisationId> for DbLoader {
    type Value = Organisation;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(
        &self,
        keys: &[OrganisationId],
    ) -> Result<HashMap<OrganisationId, Organisation>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        Ok(organisations::by_ids(&self.db, &ids)
            .await?
            .into_iter()
            .map(|o| (OrganisationId(o.id), o))
            .collect())
    }
}
