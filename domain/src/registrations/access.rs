//! Access needs: health data under UK GDPR. Stored only with the person's explicit consent,
//! shown only to them and the gathering's convenors, erased on request and automatically some
//! time after the gathering, leaving anonymous totals for planning.

use crate::generations::Areas;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, sea_query::Expr};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{RegistrationError, RegistrationStatus};
use crate::{
    AccessError, Actor, Database, InvalidInput,
    entities::{gathering, registration},
    gatherings, places, text,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessRequirement {
    StepFreeAccess,
    BslInterpreter,
    HearingLoop,
    EasyRead,
    LargePrint,
    QuietSpace,
    Dietary,
    PersonalAssistant,
    Other,
}

impl AccessRequirement {
    /// Every requirement, in the order forms offer them.
    pub const ALL: [AccessRequirement; 9] = [
        AccessRequirement::StepFreeAccess,
        AccessRequirement::BslInterpreter,
        AccessRequirement::HearingLoop,
        AccessRequirement::EasyRead,
        AccessRequirement::LargePrint,
        AccessRequirement::QuietSpace,
        AccessRequirement::Dietary,
        AccessRequirement::PersonalAssistant,
        AccessRequirement::Other,
    ];

    /// The name it is stored and sent under (its serialised form).
    pub fn code(self) -> &'static str {
        match self {
            AccessRequirement::StepFreeAccess => "STEP_FREE_ACCESS",
            AccessRequirement::BslInterpreter => "BSL_INTERPRETER",
            AccessRequirement::HearingLoop => "HEARING_LOOP",
            AccessRequirement::EasyRead => "EASY_READ",
            AccessRequirement::LargePrint => "LARGE_PRINT",
            AccessRequirement::QuietSpace => "QUIET_SPACE",
            AccessRequirement::Dietary => "DIETARY",
            AccessRequirement::PersonalAssistant => "PERSONAL_ASSISTANT",
            AccessRequirement::Other => "OTHER",
        }
    }

    pub(crate) fn from_json(value: &serde_json::Value) -> Vec<Self> {
        serde_json::from_value(value.clone()).unwrap_or_default()
    }
}

/// Access needs a person has consented to share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessNeeds {
    pub(crate) requirements: Vec<AccessRequirement>,
    pub(crate) notes: Option<String>,
}

/// Why access needs were refused: which field, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessNeedsRefused {
    pub field: &'static str,
    pub reason: InvalidInput,
}

impl AccessNeeds {
    /// Access needs as given at registration. Nothing is kept without an explicit yes to
    /// storing them; with no needs given, there is nothing to keep and no consent is needed.
    pub fn given(
        requirements: Vec<AccessRequirement>,
        notes: Option<&str>,
        consent: Option<bool>,
    ) -> Result<Option<Self>, AccessNeedsRefused> {
        let notes = match notes.map(str::trim).filter(|n| !n.is_empty()) {
            Some(notes) => Some(text::bounded_multiline(notes, 1, 2000).map_err(|reason| {
                AccessNeedsRefused {
                    field: "accessNotes",
                    reason,
                }
            })?),
            None => None,
        };
        if requirements.is_empty() && notes.is_none() {
            return Ok(None);
        }
        if consent != Some(true) {
            return Err(AccessNeedsRefused {
                field: "accessConsent",
                reason: InvalidInput::new(
                    "must be true to store access needs: they are health data, kept only with your agreement and shown only to you and the gathering's convenors",
                ),
            });
        }
        let mut requirements = requirements;
        requirements.sort();
        requirements.dedup();
        Ok(Some(Self {
            requirements,
            notes,
        }))
    }

    pub(crate) fn requirements_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.requirements).unwrap_or_else(|_| serde_json::json!([]))
    }
}

/// How many live registrations need one access requirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTotal {
    pub requirement: AccessRequirement,
    pub count: u64,
}

fn totals_of(rows: &[registration::Model]) -> Vec<AccessTotal> {
    let mut counts: BTreeMap<AccessRequirement, u64> = BTreeMap::new();
    for row in rows {
        for requirement in AccessRequirement::from_json(&row.access_requirements) {
            *counts.entry(requirement).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(requirement, count)| AccessTotal { requirement, count })
        .collect()
}

/// Totals of each access requirement among a gathering's live registrations ("4 step-free,
/// 2 BSL"), for its convenors to plan. After the details are erased, the totals kept then.
pub async fn access_totals(
    db: &Database,
    actor: &Actor,
    gathering_id: Uuid,
) -> Result<Vec<AccessTotal>, RegistrationError> {
    // Who needs what is health data: the gathering's own convenors only, not admins.
    require_own_convenor(db, actor, gathering_id).await?;
    // Registrations first, then the gathering: if the erasure committed in between, the
    // gathering already holds the totals it kept, so the answer is never an empty half-way.
    let rows = registration::Entity::find()
        .filter(registration::Column::GatheringId.eq(gathering_id))
        .filter(registration::Column::Status.ne(RegistrationStatus::Cancelled))
        .all(db.reads())
        .await?;
    let gathering = gathering::Entity::find_by_id(gathering_id)
        .one(db.reads())
        .await?
        .ok_or(RegistrationError::GatheringNotFound)?;
    if let Some(kept) = gathering.access_totals {
        return Ok(serde_json::from_value(kept).unwrap_or_default());
    }
    Ok(totals_of(&rows))
}

/// Refuses anyone but the gathering's own convenors (admins included) what reveals who needs
/// what.
pub(crate) async fn require_own_convenor(
    db: &Database,
    actor: &Actor,
    gathering_id: Uuid,
) -> Result<(), RegistrationError> {
    actor.person()?;
    if gatherings::convenes(db.reads(), actor, gathering_id).await? {
        Ok(())
    } else {
        Err(AccessError::Forbidden(
            "only the gathering's own convenors can see who has which access needs",
        )
        .into())
    }
}

/// Removes a person's access needs from all their registrations (their registrations, and so
/// the gatherings' counts, stay).
pub(crate) async fn erase_for_person(
    conn: &impl ConnectionTrait,
    person_id: Uuid,
) -> Result<(), DbErr> {
    registration::Entity::update_many()
        .col_expr(
            registration::Column::AccessRequirements,
            Expr::value(serde_json::json!([])),
        )
        .col_expr(
            registration::Column::AccessNotes,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            registration::Column::AccessConsentAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(registration::Column::PersonId.eq(person_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Erases the access needs of every gathering that ended before `ended_before`, keeping only
/// anonymous totals on the gathering. Returns how many gatherings were erased.
#[tracing::instrument(skip_all)]
pub async fn erase_expired_access_data(
    db: &Database,
    ended_before: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let due = gathering::Entity::find()
        .filter(gathering::Column::EndsAt.lt(ended_before))
        .filter(gathering::Column::AccessTotals.is_null())
        .all(db.reads())
        .await?;
    let mut erased = 0;
    for gathering in &due {
        let txn = db.begin_write_on(Areas::GATHERINGS).await?;
        // Another server may have erased it since it was found: check again under the lock.
        let still_due = places::lock(&*txn, gathering.id)
            .await?
            .is_some_and(|g| g.access_totals.is_none());
        if !still_due {
            continue;
        }
        let rows = registration::Entity::find()
            .filter(registration::Column::GatheringId.eq(gathering.id))
            .filter(registration::Column::Status.ne(RegistrationStatus::Cancelled))
            .all(&*txn)
            .await?;
        let totals =
            serde_json::to_value(totals_of(&rows)).unwrap_or_else(|_| serde_json::json!([]));
        gathering::Entity::update_many()
            .col_expr(gathering::Column::AccessTotals, Expr::value(totals))
            .filter(gathering::Column::Id.eq(gathering.id))
            .exec(&*txn)
            .await?;
        registration::Entity::update_many()
            .col_expr(
                registration::Column::AccessRequirements,
                Expr::value(serde_json::json!([])),
            )
            .col_expr(
                registration::Column::AccessNotes,
                Expr::value(Option::<String>::None),
            )
            .filter(registration::Column::GatheringId.eq(gathering.id))
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        erased += 1;
    }
    if erased > 0 {
        tracing::info!(
            gatherings = erased,
            "erased access needs after their retention time"
        );
    }
    Ok(erased)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_requirements_code_is_its_stored_name_and_all_lists_each_once() {
        for requirement in AccessRequirement::ALL {
            assert_eq!(
                serde_json::to_value(requirement).ok(),
                Some(serde_json::Value::from(requirement.code()))
            );
        }
        let mut codes: Vec<_> = AccessRequirement::ALL.map(AccessRequirement::code).to_vec();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 9);
    }

    #[test]
    fn access_needs_need_an_explicit_yes() {
        let needs = vec![AccessRequirement::StepFreeAccess];
        assert_eq!(
            AccessNeeds::given(needs.clone(), None, None).map_err(|e| e.field),
            Err("accessConsent")
        );
        assert_eq!(
            AccessNeeds::given(needs.clone(), None, Some(false)).map_err(|e| e.field),
            Err("accessConsent")
        );
        assert!(matches!(
            AccessNeeds::given(needs, None, Some(true)),
            Ok(Some(_))
        ));
        assert_eq!(AccessNeeds::given(vec![], Some("  "), None), Ok(None));
        assert_eq!(
            AccessNeeds::given(vec![], Some("Quiet room please"), None).map_err(|e| e.field),
            Err("accessConsent")
        );
    }
}
