//! A gathering read with its registration counts in the same statement: the gathering page
//! shows both, and it is read far more than it changes.

use sea_orm::{
    DbErr, EntityTrait, FromQueryResult, QueryFilter, QuerySelect, entity::prelude::*,
    sea_query::Expr,
};

use super::Counts;
use super::{Gathering, GatheringStatus, may_see_drafts};
use crate::{Actor, Database, entities::gathering};

#[derive(FromQueryResult)]
struct Row {
    #[sea_orm(nested)]
    gathering: gathering::Model,
    confirmed_registrations: i64,
    waitlisted_registrations: i64,
}

/// Live (not cancelled) registrations of the gathering in one status, counted beside it.
fn counted(status: &str) -> Expr {
    // `status` is one of the two constants below, never input.
    Expr::cust(format!(
        "(SELECT COUNT(*) FROM registrations WHERE registrations.gathering_id = gatherings.id \
         AND registrations.status = '{status}')"
    ))
}

/// A gathering by slug, as [`super::by_slug`] finds it (drafts only for those who may see
/// them), with its confirmed and waitlisted counts, in one statement.
#[tracing::instrument(skip_all)]
pub async fn by_slug_with_counts(
    db: &Database,
    actor: &Actor,
    slug: &str,
) -> Result<Option<(Gathering, Counts)>, DbErr> {
    let row = gathering::Entity::find()
        .filter(gathering::Column::Slug.eq(slug.trim()))
        .column_as(counted("CONFIRMED"), "confirmed_registrations")
        .column_as(counted("WAITLISTED"), "waitlisted_registrations")
        .into_model::<Row>()
        .one(db.conn())
        .await?;
    Ok(row
        .filter(|r| r.gathering.status != GatheringStatus::Draft || may_see_drafts(actor))
        .map(|r| {
            let counts = Counts {
                confirmed: u64::try_from(r.confirmed_registrations).unwrap_or_default(),
                waitlisted: u64::try_from(r.waitlisted_registrations).unwrap_or_default(),
            };
            (Gathering::from(r.gathering), counts)
        }))
}
