//! The pledge wall's items and the five changes, each written out in one step.
//!
//! async-graphql resolves every selected field of an object as a boxed future of its own, run
//! through a `FuturesUnordered` and gathered into a map. A wall page of 50 pledges asks for
//! about 750 fields, and resolving them was 93% of the request's instructions. Everything the
//! wall shows is loaded with its page (`list_with`), so an item can be written out
//! synchronously instead: one future per pledge, not one per field.
//!
//! [`ListedPledge`] is the schema's `Pledge`: it takes its name and type information from the
//! ordinary [`Pledge`] object, so the schema is unchanged (the schema-drift test says so). It
//! writes an item itself only when every field asked for is one it knows, from data the page
//! loaded, and nothing in the selection could make its answer differ from the ordinary
//! resolver's: no fragment on another type, no directive (`@skip` and `@include` are gone
//! before execution), no response key given twice (those merge). Anything else goes to the
//! ordinary `Pledge` object, whose loaders the page primed, so it answers exactly as before.

use std::{
    borrow::Cow,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use async_graphql::{
    ContextSelectionSet, Name, OutputType, Positioned, ScalarType, ServerResult, Value,
    indexmap::{self, IndexMap},
    parser::types::{Field, Selection, SelectionSet},
    registry::Registry,
    resolver_utils::enum_value,
};
use chrono::{DateTime, Utc};
use groundswell_domain::{
    changes::Change as DomainChange, organisations::Organisation as DomainOrganisation,
    progress::ProgressUpdate as DomainUpdate,
};
use uuid::Uuid;

use super::{
    AppContext,
    changes::{Change, ChangeSummary},
    organisations::{OrganisationKind, Region},
    pledges::{Pledge, PledgeStatus},
    progress::ProgressSignal,
    scalars::Date,
};

/// Items written out in one step since the process started, for `/metrics`
/// (`groundswell_graphql_items_written_whole_total`), so an operator sees whether clients'
/// queries take it. Each server also counts its own (`AppContext::written_whole`), which tests
/// read, since several servers share a test process.
pub static WRITTEN_WHOLE: AtomicU64 = AtomicU64::new(0);

/// An item's value: `written` in one step, counted for the process and for its server, or
/// when the item could not be written so, what the `ordinary` object resolves.
async fn written_or<T: OutputType>(
    ctx: &ContextSelectionSet<'_>,
    field: &Positioned<Field>,
    written: Option<Value>,
    ordinary: &T,
) -> ServerResult<Value> {
    let Some(value) = written else {
        return OutputType::resolve(ordinary, ctx, field).await;
    };
    WRITTEN_WHOLE.fetch_add(1, Ordering::Relaxed);
    if let Some(app) = ctx.data_opt::<AppContext>() {
        app.written_whole.fetch_add(1, Ordering::Relaxed);
    }
    Ok(value)
}

/// A pledge in a list, with the relations its page loaded. `None` is "not loaded".
pub struct ListedPledge {
    pub pledge: Pledge,
    pub organisation: Option<Arc<DomainOrganisation>>,
    pub latest_update: Option<Option<Arc<DomainUpdate>>>,
    pub changes: Option<Vec<DomainChange>>,
}

impl OutputType for ListedPledge {
    fn type_name() -> Cow<'static, str> {
        Pledge::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        Pledge::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        written_or(ctx, field, self.write(ctx, &ctx.item.node), &self.pledge).await
    }
}

impl ListedPledge {
    /// A pledge listed without its relations: its own fields are written in one step, and a
    /// selection asking for a relation goes to the ordinary resolver.
    pub fn alone(pledge: Pledge) -> Self {
        Self {
            pledge,
            organisation: None,
            latest_update: None,
            changes: None,
        }
    }
}

/// An object's value, its fields in the order they were asked for.
type Object = IndexMap<Name, Value>;

impl ListedPledge {
    fn write(&self, ctx: &ContextSelectionSet<'_>, set: &SelectionSet) -> Option<Value> {
        let pledge = &self.pledge.0;
        object(ctx, set, "Pledge", |field| {
            Some(match field.name.node.as_str() {
                "id" => id(pledge.id),
                "title" => Value::String(pledge.title.clone()),
                "commitment" => Value::String(pledge.commitment.clone()),
                "dueBy" => pledge.due_by.map_or(Value::Null, |d| Date(d).to_value()),
                "status" => enum_value(PledgeStatus::from(pledge.status)),
                "withdrawnReason" => optional_text(pledge.withdrawn_reason.as_deref()),
                "lastActivityAt" => moment(pledge.last_activity_at),
                "createdAt" => moment(pledge.created_at),
                "updatedAt" => moment(pledge.updated_at),
                "achievedAt" => optional_moment(pledge.achieved_at),
                "withdrawnAt" => optional_moment(pledge.withdrawn_at),
                "organisation" => organisation(
                    ctx,
                    &field.selection_set.node,
                    self.organisation.as_deref()?,
                )?,
                "changes" => Value::List(
                    self.changes
                        .as_ref()?
                        .iter()
                        .map(|&change| enum_value(Change::from(change)))
                        .collect(),
                ),
                "latestUpdate" => match self.latest_update.as_ref()? {
                    Some(update) => progress_update(ctx, &field.selection_set.node, update)?,
                    None => Value::Null,
                },
                _ => return None,
            })
        })
    }
}

/// One of the five changes with its figures, as the schema's `ChangeSummary`. Its figures are
/// all loaded with it, so every field can be written in one step; the same rules as for a
/// pledge send anything else to the ordinary `ChangeSummary` object.
pub struct ListedChange(pub ChangeSummary);

impl OutputType for ListedChange {
    fn type_name() -> Cow<'static, str> {
        ChangeSummary::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        ChangeSummary::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        written_or(ctx, field, self.write(ctx, &ctx.item.node), &self.0).await
    }
}

impl ListedChange {
    fn write(&self, ctx: &ContextSelectionSet<'_>, set: &SelectionSet) -> Option<Value> {
        let summary = &self.0;
        object(ctx, set, "ChangeSummary", |field| {
            Some(match field.name.node.as_str() {
                "change" => enum_value(summary.change),
                "title" => Value::String(summary.title.clone()),
                "pledgeCount" => Value::from(summary.pledge_count),
                "organisationCount" => Value::from(summary.organisation_count),
                "coalitionCount" => Value::from(summary.coalition_count),
                "progressUpdateCount" => Value::from(summary.progress_update_count),
                "lastProgressAt" => optional_moment(summary.last_progress_at),
                _ => return None,
            })
        })
    }
}

fn organisation(
    ctx: &ContextSelectionSet<'_>,
    set: &SelectionSet,
    organisation: &DomainOrganisation,
) -> Option<Value> {
    object(ctx, set, "Organisation", |field| {
        Some(match field.name.node.as_str() {
            "id" => id(organisation.id),
            "name" => Value::String(organisation.name.clone()),
            "slug" => Value::String(organisation.slug.clone()),
            "kind" => enum_value(OrganisationKind::from(organisation.kind)),
            "region" => enum_value(Region::from(organisation.region)),
            "website" => optional_text(organisation.website.as_deref()),
            "createdAt" => moment(organisation.created_at),
            _ => return None,
        })
    })
}

fn progress_update(
    ctx: &ContextSelectionSet<'_>,
    set: &SelectionSet,
    update: &DomainUpdate,
) -> Option<Value> {
    object(ctx, set, "ProgressUpdate", |field| {
        Some(match field.name.node.as_str() {
            "id" => id(update.id),
            "body" => Value::String(update.body.clone()),
            "signal" => enum_value(ProgressSignal::from(update.signal)),
            "percentComplete" => update
                .percent_complete
                .map_or(Value::Null, |p| Value::from(i32::from(p))),
            "evidenceUrls" => Value::List(
                update
                    .evidence_urls
                    .iter()
                    .map(|url| Value::String(url.clone()))
                    .collect(),
            ),
            "postedAt" => moment(update.posted_at),
            _ => return None,
        })
    })
}

/// The object of type `type_name` a selection set asks for, each field's value from `value_of`
/// (`__typename` answered here), or `None` when `value_of` or the selection leaves it to the
/// ordinary resolver.
fn object<'a>(
    ctx: &ContextSelectionSet<'a>,
    set: &'a SelectionSet,
    type_name: &'static str,
    mut value_of: impl FnMut(&'a Field) -> Option<Value>,
) -> Option<Value> {
    let fields = fields_of(ctx, set, type_name)?;
    let mut object = Object::with_capacity(fields.len());
    for field in fields {
        let value = if field.name.node == "__typename" {
            Value::String(type_name.to_owned())
        } else {
            value_of(field)?
        };
        put(&mut object, field, value)?;
    }
    Some(Value::Object(object))
}

/// The fields a selection set asks of the object type `type_name`, fragments expanded in
/// place, or `None` when it holds anything only the ordinary resolver answers exactly: a
/// fragment on another type (an interface, say), a directive, or no field at all (the
/// ordinary resolver answers `null` for an object whose fields were all skipped).
fn fields_of<'a>(
    ctx: &ContextSelectionSet<'a>,
    set: &'a SelectionSet,
    type_name: &str,
) -> Option<Vec<&'a Field>> {
    let mut fields = Vec::with_capacity(set.items.len());
    collect(ctx, set, type_name, &mut fields)?;
    (!fields.is_empty()).then_some(fields)
}

fn collect<'a>(
    ctx: &ContextSelectionSet<'a>,
    set: &'a SelectionSet,
    type_name: &str,
    fields: &mut Vec<&'a Field>,
) -> Option<()> {
    let fragments = &ctx.query_env.fragments;
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                if !field.node.directives.is_empty() {
                    return None;
                }
                fields.push(&field.node);
            }
            Selection::FragmentSpread(spread) => {
                let fragment = &fragments.get(&spread.node.fragment_name.node)?.node;
                if !spread.node.directives.is_empty()
                    || !fragment.directives.is_empty()
                    || fragment.type_condition.node.on.node != type_name
                {
                    return None;
                }
                collect(ctx, &fragment.selection_set.node, type_name, fields)?;
            }
            Selection::InlineFragment(inline) => {
                let inline = &inline.node;
                if !inline.directives.is_empty()
                    || inline
                        .type_condition
                        .as_ref()
                        .is_some_and(|condition| condition.node.on.node != type_name)
                {
                    return None;
                }
                collect(ctx, &inline.selection_set.node, type_name, fields)?;
            }
        }
    }
    Some(())
}

/// Adds a field's value under its response key; `None` when the key is already there, since
/// the ordinary resolver merges repeated keys' selections.
fn put(object: &mut Object, field: &Field, value: Value) -> Option<()> {
    match object.entry(field.response_key().node.clone()) {
        indexmap::map::Entry::Occupied(_) => None,
        indexmap::map::Entry::Vacant(entry) => {
            entry.insert(value);
            Some(())
        }
    }
}

fn id(id: Uuid) -> Value {
    Value::String(id.to_string())
}

fn moment(at: DateTime<Utc>) -> Value {
    at.to_value()
}

fn optional_moment(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, moment)
}

fn optional_text(text: Option<&str>) -> Value {
    text.map_or(Value::Null, |text| Value::String(text.to_owned()))
}
