//! Batched loading for nested fields: one `WHERE id IN (…)` per kind of row per request, so a
//! page's statement count does not grow with its size.
//!
//! A DataLoader gathers keys for a short time before it loads, so on a busy server a page's
//! nested fields can fall into several batches. List resolvers therefore prime the loader: they
//! ask for every key the page's selected nested fields will need in one call each, and the
//! per-request cache answers the nested resolvers. The count stays fixed whatever the timing.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use groundswell_domain::{
    Database,
    changes::Change,
    coalitions::{self, Coalition, Membership},
    gatherings::{self, Gathering},
    organisations::{self, Organisation},
    people::{self, Person},
    pledges::{self, Pledge},
    progress::{self, ProgressUpdate},
    registrations::{self, Counts, Registration},
};
use uuid::Uuid;

/// Reads rows by key for one request.
pub struct DbLoader {
    db: Database,
}

/// A loader for one operation; its cache lives as long as the operation.
pub fn new_loader(db: Database) -> DataLoader<DbLoader, HashMapCache> {
    DataLoader::with_cache(DbLoader { db }, tokio::spawn, HashMapCache::default())
}

/// The loader type every resolver reads from the request's data.
pub type RequestLoader = DataLoader<DbLoader, HashMapCache>;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PledgeId(pub Uuid);

/// The changes a pledge acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PledgeChanges(pub Uuid);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CoalitionId(pub Uuid);

/// The changes a coalition focuses on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CoalitionChanges(pub Uuid);

/// A coalition's memberships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CoalitionMembers(pub Uuid);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProgressUpdateId(pub Uuid);

impl Loader<PledgeId> for DbLoader {
    type Value = Pledge;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(&self, keys: &[PledgeId]) -> Result<HashMap<PledgeId, Pledge>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        Ok(pledges::by_ids(&self.db, &ids)
            .await?
            .into_iter()
            .map(|p| (PledgeId(p.id), p))
            .collect())
    }
}

impl Loader<PledgeChanges> for DbLoader {
    type Value = Vec<Change>;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(
        &self,
        keys: &[PledgeChanges],
    ) -> Result<HashMap<PledgeChanges, Vec<Change>>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        Ok(pledges::changes_of(&self.db, &ids)
            .await?
            .into_iter()
            .map(|(id, changes)| (PledgeChanges(id), changes))
            .collect())
    }
}

impl Loader<CoalitionId> for DbLoader {
    type Value = Coalition;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(
        &self,
        keys: &[CoalitionId],
    ) -> Result<HashMap<CoalitionId, Coalition>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        Ok(coalitions::by_ids(&self.db, &ids)
            .await?
            .into_iter()
            .map(|c| (CoalitionId(c.id), c))
            .collect())
    }
}

impl Loader<CoalitionChanges> for DbLoader {
    type Value = Vec<Change>;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(
        &self,
        keys: &[CoalitionChanges],
    ) -> Result<HashMap<CoalitionChanges, Vec<Change>>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        Ok(coalitions::changes_of(&self.db, &ids)
            .await?
            .into_iter()
            .map(|(id, changes)| (CoalitionChanges(id), changes))
            .collect())
    }
}

impl Loader<CoalitionMembers> for DbLoader {
    type Value = Vec<Membership>;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(
        &self,
        keys: &[CoalitionMembers],
    ) -> Result<HashMap<CoalitionMembers, Vec<Membership>>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        Ok(coalitions::members_of(&self.db, &ids)
            .await?
            .into_iter()
            .map(|(id, members)| (CoalitionMembers(id), members))
            .collect())
    }
}

impl Loader<ProgressUpdateId> for DbLoader {
    type Value = ProgressUpdate;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(
        &self,
        keys: &[ProgressUpdateId],
    ) -> Result<HashMap<ProgressUpdateId, ProgressUpdate>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        Ok(progress::by_ids(&self.db, &ids)
            .await?
            .into_iter()
            .map(|u| (ProgressUpdateId(u.id), u))
            .collect())
    }
}

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

impl Loader<GatheringId> for DbLoader {
    type Value = Gathering;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(
        &self,
        keys: &[GatheringId],
    ) -> Result<HashMap<GatheringId, Gathering>, Self::Error> {
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

    async fn load(
        &self,
        keys: &[GatheringCounts],
    ) -> Result<HashMap<GatheringCounts, Counts>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        Ok(registrations::counts(&self.db, &ids)
            .await?
            .into_iter()
            .map(|(id, counts)| (GatheringCounts(id), counts))
            .collect())
    }
}

impl Loader<ViewerRegistration> for DbLoader {
    /// Answered for every key (`None`: not registered), so "not registered" is cached for the
    /// request as a registration is, and a page that loaded it first is not asked again.
    type Value = Option<Registration>;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(
        &self,
        keys: &[ViewerRegistration],
    ) -> Result<HashMap<ViewerRegistration, Option<Registration>>, Self::Error> {
        let mut by_person: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for key in keys {
            by_person
                .entry(key.person_id)
                .or_default()
                .push(key.gathering_id);
        }
        let mut found = HashMap::new();
        for (person_id, gathering_ids) in by_person {
            found.extend(viewer_registrations(&self.db, person_id, &gathering_ids).await?);
        }
        Ok(found)
    }
}

/// One person's registrations for some gatherings, with an answer (perhaps `None`) for each.
pub(crate) async fn viewer_registrations(
    db: &Database,
    person_id: Uuid,
    gathering_ids: &[Uuid],
) -> Result<HashMap<ViewerRegistration, Option<Registration>>, sea_orm::DbErr> {
    let mut found: HashMap<ViewerRegistration, Option<Registration>> = gathering_ids
        .iter()
        .map(|&gathering_id| {
            (
                ViewerRegistration {
                    gathering_id,
                    person_id,
                },
                None,
            )
        })
        .collect();
    for registration in registrations::of_person_for(db, person_id, gathering_ids).await? {
        found.insert(
            ViewerRegistration {
                gathering_id: registration.gathering_id,
                person_id,
            },
            Some(registration),
        );
    }
    Ok(found)
}

/// Whether a person is one of a gathering's own convenors (not merely an admin): asked for each
/// registration and gathering on a page, answered in one statement per person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Convenes {
    pub gathering_id: Uuid,
    pub person_id: Uuid,
}

impl Loader<Convenes> for DbLoader {
    /// Answered for every key, so a "no" is cached for the request as a "yes" is.
    type Value = bool;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(&self, keys: &[Convenes]) -> Result<HashMap<Convenes, bool>, Self::Error> {
        let mut by_person: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for key in keys {
            by_person
                .entry(key.person_id)
                .or_default()
                .push(key.gathering_id);
        }
        let mut found = HashMap::new();
        for (person_id, gathering_ids) in by_person {
            let convened = gatherings::convened_by(&self.db, person_id, &gathering_ids).await?;
            for gathering_id in gathering_ids {
                found.insert(
                    Convenes {
                        gathering_id,
                        person_id,
                    },
                    convened.contains(&gathering_id),
                );
            }
        }
        Ok(found)
    }
}

/// Whether `actor` is one of the gathering's own convenors, through the request's loader.
pub(crate) async fn convenes(
    ctx: &async_graphql::Context<'_>,
    actor: &groundswell_domain::Actor,
    gathering_id: Uuid,
) -> super::ApiResult<bool> {
    let groundswell_domain::Actor::Person { person_id, .. } = actor else {
        return Ok(false);
    };
    Ok(ctx
        .data::<RequestLoader>()?
        .load_one(Convenes {
            gathering_id,
            person_id: *person_id,
        })
        .await
        .map_err(super::ApiError::internal)?
        .unwrap_or(false))
}

/// Forgets every row this operation's loader has cached. Mutations call it after their write,
/// so what they return (and what later fields of the same operation read) is read afresh.
pub(crate) fn forget_cached(ctx: &async_graphql::Context<'_>) -> super::ApiResult<()> {
    let loader = ctx.data::<RequestLoader>()?;
    loader.clear::<PersonId>();
    loader.clear::<OrganisationId>();
    loader.clear::<PledgeId>();
    loader.clear::<PledgeChanges>();
    loader.clear::<CoalitionId>();
    loader.clear::<CoalitionChanges>();
    loader.clear::<CoalitionMembers>();
    loader.clear::<ProgressUpdateId>();
    loader.clear::<GatheringId>();
    loader.clear::<GatheringCounts>();
    loader.clear::<ViewerRegistration>();
    loader.clear::<Convenes>();
    Ok(())
}
