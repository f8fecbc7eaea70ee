//! A gathering read with its registration counts, and the caller's own registration, in the
//! same statement: the gathering page shows all three, and it is read far more than it changes.
//! It lives with registrations, which read gatherings (`gatherings` never imports
//! `registrations`).

use sea_orm::{
    ConnectionTrait, DbErr, EntityTrait, FromQueryResult, JoinType, QueryFilter, QuerySelect,
    QueryTrait, RelationDef,
    entity::prelude::*,
    sea_query::{Expr, ExprTrait, IntoCondition},
};

use super::Registration;
use crate::{
    Actor, Database,
    entities::{gathering, registration},
    fixed::Fixed,
    gatherings::{Counts, Gathering, GatheringStatus, may_see_drafts},
};

/// A gathering as its page reads it.
#[derive(Debug)]
pub struct PageRead {
    pub gathering: Gathering,
    pub counts: Counts,
    /// The viewer's registration for it, when a viewer was given: `Some(None)` when they hold
    /// none.
    pub viewer_registration: Option<Option<Registration>>,
}

/// Live (not cancelled) registrations of the gathering in one status, counted beside it.
fn counted(status: &str) -> Expr {
    // `status` is one of the two constants below, never input.
    Expr::cust(format!(
        "(SELECT COUNT(*) FROM registrations w WHERE w.gathering_id = gatherings.id \
         AND w.status = '{status}')"
    ))
}

/// The viewer's place on the waitlist for their way of attending, counted as
/// `super::with_positions` ranks it: the waitlisted registrations for the same mode that joined
/// the queue no later than theirs. Null when they hold no registration; disregarded unless
/// theirs is waitlisted. `registrations` is the viewer's own row, joined.
const WAITLIST_POSITION: &str = "(SELECT COUNT(*) FROM registrations w \
     WHERE w.gathering_id = gatherings.id AND w.status = 'WAITLISTED' \
     AND w.mode = registrations.mode AND w.waitlist_seq <= registrations.waitlist_seq)";

/// A gathering by slug, as [`crate::gatherings::by_slug`] finds it (drafts only for those who
/// may see them), with its confirmed and waitlisted counts and, when `viewer` is given, that
/// person's registration for it with its waitlist position: one statement.
#[tracing::instrument(skip_all)]
pub async fn by_slug_for_page(
    db: &Database,
    actor: &Actor,
    slug: &str,
    viewer: Option<Uuid>,
) -> Result<Option<PageRead>, DbErr> {
    static WITH_VIEWER: Fixed = Fixed::new();
    static WITHOUT: Fixed = Fixed::new();
    let slug = slug.trim();
    let found = || gathering::Entity::find().filter(gathering::Column::Slug.eq(slug));
    let statement = match viewer {
        Some(person_id) => {
            WITH_VIEWER.statement(db.backend(), vec![person_id.into(), slug.into()], || {
                found()
                    .select_also(registration::Entity)
                    .join(JoinType::LeftJoin, viewers_registration(person_id))
                    .column_as(counted("CONFIRMED"), "confirmed_registrations")
                    .column_as(counted("WAITLISTED"), "waitlisted_registrations")
                    .column_as(Expr::cust(WAITLIST_POSITION), "waitlist_position")
                    .build(db.backend())
            })
        }
        None => WITHOUT.statement(db.backend(), vec![slug.into()], || {
            found()
                .column_as(counted("CONFIRMED"), "confirmed_registrations")
                .column_as(counted("WAITLISTED"), "waitlisted_registrations")
                .build(db.backend())
        }),
    };
    let row = db.reads().query_one_raw(statement).await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let prefix = if viewer.is_some() { "A_" } else { "" };
    let found = gathering::Model::from_query_result(&row, prefix)?;
    if found.status == GatheringStatus::Draft && !may_see_drafts(actor) {
        return Ok(None);
    }
    let count = |column: &str| -> Result<u64, DbErr> {
        let n: i64 = row.try_get("", column)?;
        Ok(u64::try_from(n).unwrap_or_default())
    };
    let counts = Counts {
        confirmed: count("confirmed_registrations")?,
        waitlisted: count("waitlisted_registrations")?,
    };
    let viewer_registration = match viewer {
        None => None,
        Some(_) => {
            // The left join found none when the joined id is null; any other failure to read
            // the row stays an error.
            let id: Option<Uuid> = row.try_get("B_", "id")?;
            match id {
                None => Some(None),
                Some(_) => {
                    let mine = registration::Model::from_query_result(&row, "B_")?;
                    let position: Option<i64> = row.try_get("", "waitlist_position")?;
                    let position = position.and_then(|n| u64::try_from(n).ok());
                    Some(Some(Registration::from_row(mine, position)))
                }
            }
        }
    };
    Ok(Some(PageRead {
        gathering: Gathering::from(found),
        counts,
        viewer_registration,
    }))
}

/// The join to one person's registration for the gathering (a person holds at most one).
fn viewers_registration(person_id: Uuid) -> RelationDef {
    RelationDef::from(
        registration::Entity::belongs_to(gathering::Entity)
            .from(registration::Column::GatheringId)
            .to(gathering::Column::Id),
    )
    .rev()
    .on_condition(move |_gathering, registration| {
        Expr::col((registration, registration::Column::PersonId))
            .eq(person_id)
            .into_condition()
    })
}
