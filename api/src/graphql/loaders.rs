//! Batched loading for nested fields: one `WHERE id IN (…)` per kind of row per request, so a
//! page's statement count does not grow with its size.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::{DataLoader, Loader};
use groundswell_domain::{
    Database, gatherings,
    gatherings::Gathering,
    organisations::{self, Organisation},
    people::{self, Person},
    registrations::{self, Counts, Registration},
};
use uuid::Uuid;

/// Reads rows by key for one request.
pub struct DbLoader {
    db: Database,
}

pub fn new_loader(db: Database) -> DataLoader<DbLoader> {
    DataLoader::new(DbLoader { db }, tokio::spawn)
}

type LoadResult<K, V> = Result<HashMap<K, V>, Arc<sea_orm::DbErr>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PersonId(pub Uuid);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OrganisationId(pub Uuid);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GatheringId(pub Uuid);

/// Confirmed and waitlisted counts of a gathering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GatheringCounts(pub Uuid);

/// One person's registration for one gathering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ViewerRegistration {
    pub gathering_id: Uuid,
    pub person_id: Uuid,
}

impl Loader<PersonId> for DbLoader {
    type Value = Person;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(&self, keys: &[PersonId]) -> LoadResult<PersonId, Person> {
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

    async fn load(&self, keys: &[OrganisationId]) -> LoadResult<OrganisationId, Organisation> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        Ok(organisations::by_ids(&self.db, &ids)
            .await?
            .into_iter()
            .map(|o| (OrganisationId(o.id), o))
            .collect())
    }
}

impl Loader<GatheringId> for DbLoader {
    type Value = Gathering;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(&self, keys: &[GatheringId]) -> LoadResult<GatheringId, Gathering> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        Ok(gatherings::by_ids(&self.db, &ids)
            .await?
            .into_iter()
            .map(|g| (GatheringId(g.id), g))
            .collect())
    }
}

impl Loader<GatheringCounts> for DbLoader {
    type Value = Counts;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(&self, keys: &[GatheringCounts]) -> LoadResult<GatheringCounts, Counts> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        Ok(registrations::counts(&self.db, &ids)
            .await?
            .into_iter()
            .map(|(id, counts)| (GatheringCounts(id), counts))
            .collect())
    }
}

impl Loader<ViewerRegistration> for DbLoader {
    type Value = Registration;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(
        &self,
        keys: &[ViewerRegistration],
    ) -> LoadResult<ViewerRegistration, Registration> {
        let mut by_person: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for key in keys {
            by_person
                .entry(key.person_id)
                .or_default()
                .push(key.gathering_id);
        }
        let mut found = HashMap::new();
        for (person_id, gathering_ids) in by_person {
            for registration in
                registrations::of_person_for(&self.db, person_id, &gathering_ids).await?
            {
                found.insert(
                    ViewerRegistration {
                        gathering_id: registration.gathering_id,
                        person_id,
                    },
                    registration,
                );
            }
        }
        Ok(found)
    }
}
