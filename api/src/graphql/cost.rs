//! What one HTTP request may cost, decided from its parsed documents before any of it runs.
//!
//! Ordinary fields cost one each, times every list around them: a page counts its `first`
//! (20 when left out, at most 100), a list without a page counts the most items it can return
//! ([`LIST_LIMITS`], which the resolvers hold to), and nested lists multiply. Fields that scan or
//! build something large carry a cost of their own ([`OWN_COSTS`]), and every mutation or
//! subscription field a fixed one, so aliasing one hundreds of times is refused. The cost of every
//! operation in a batch counts together, against [`MAX_COST`]. Ordinary fields nest at most
//! [`MAX_DEPTH`] deep.
//!
//! Introspection (`__schema`, `__type`) has bounds of its own instead: a few roots per request,
//! [`MAX_INTROSPECTION_DEPTH`] levels below each, and a cost in which every introspection list
//! counts the most entries this schema could give it ([`introspection_items`]), against a budget
//! of twice what the standard introspection query of graphql-js costs. The standard query, which
//! GraphiQL and code generators send, passes; aliasing it, or nesting `fields { type { fields … } }`,
//! does not.
//!
//! This is an analysis over the parsed document rather than an async-graphql extension: any
//! extension on the HTTP schema slows every field it resolves.

use std::{collections::HashMap, sync::LazyLock};

use async_graphql::{
    BatchRequest, Name, Request, Value, Variables,
    parser::types::{
        BaseType, ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet,
        Type, TypeKind, TypeSystemDefinition,
    },
};
use groundswell_domain::page::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// Deepest selection of ordinary fields a query may nest.
pub const MAX_DEPTH: usize = 12;
/// Most one request (all operations of a batch together) may cost.
pub const MAX_COST: u64 = 10_000;
/// Most levels of fields below `__schema` or `__type` (the standard query needs 15).
pub const MAX_INTROSPECTION_DEPTH: usize = 20;
/// Most `__schema` and `__type` fields in one request, batches included.
pub const MAX_INTROSPECTION_ROOTS: u64 = 6;
/// Nesting of selections and fragments beyond which a document is refused unread.
const MAX_NESTING: usize = 64;
/// What every mutation and subscription field costs on its own: each writes, or holds a
/// connection open.
pub const OPERATION_FIELD_COST: u64 = 10;

/// Lists without a page size, and the most items each can return. The resolvers and domain
/// queries behind them hold to these; a test checks that every list in the schema is here or
/// has a page size.
pub const LIST_LIMITS: &[(&str, &str, u64)] = &[
    ("Query", "changes", 5),
    ("ChangeSummary", "change", 1),
    ("Coalition", "changes", 5),
    (
        "Coalition",
        "members",
        groundswell_domain::coalitions::MAX_MEMBERS,
    ),
    ("Pledge", "changes", 5),
    ("DigestPreferences", "changes", 5),
    ("MovementSummary", "byChange", 5),
    ("MovementSummary", "byRegion", 10),
    ("Gathering", "accessRequirementTotals", 9),
    ("Registration", "accessRequirements", 9),
    (
        "ProgressUpdate",
        "evidenceUrls",
        groundswell_domain::progress::EvidenceUrls::MAX as u64,
    ),
    (
        "Organisation",
        "members",
        groundswell_domain::organisations::MAX_MEMBERS_SHOWN,
    ),
    (
        "Organisation",
        "apiTokens",
        groundswell_domain::organisations::MAX_API_TOKENS_SHOWN,
    ),
    (
        "Person",
        "organisations",
        groundswell_domain::organisations::MAX_MEMBERSHIPS_SHOWN,
    ),
    (
        "Person",
        "registrations",
        groundswell_domain::registrations::MAX_PERSON_REGISTRATIONS_SHOWN,
    ),
    (
        "Organisation",
        "webhooks",
        groundswell_domain::webhooks::MAX_ENDPOINTS,
    ),
    ("Webhook", "events", 7),
    (
        "WebhookDelivery",
        "attempts",
        super::webhooks::MAX_ATTEMPTS_SHOWN as u64,
    ),
];

/// Paged fields whose page is not the usual 20 when `first` is left out.
const PAGE_DEFAULTS: &[(&str, &str, u64)] = &[("Query", "failedMail", 50)];

/// Fields that run aggregates, scan or build something large, and what each costs on its own
/// (on top of the one every field costs).
pub const OWN_COSTS: &[(&str, &str, u64)] = &[
    ("Query", "movement", 200),
    ("Query", "digestPreview", 500),
    ("Query", "myData", 1_000),
    ("Query", "changes", 50),
    ("Query", "failedMail", 10),
    ("Gathering", "accessRequirementTotals", 20),
    ("Gathering", "placesLeft", 2),
    ("Mutation", "sendDueDigests", 200),
    ("Mutation", "eraseMyData", 50),
];

/// How much a request may cost, and how much it does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Ordinary fields, weighted.
    pub fields: u64,
    /// Introspection fields, weighted by the schema's sizes.
    pub introspection: u64,
    /// `__schema` and `__type` fields.
    pub introspection_roots: u64,
}

impl Cost {
    fn add(self, other: Cost) -> Cost {
        Cost {
            fields: self.fields.saturating_add(other.fields),
            introspection: self.introspection.saturating_add(other.introspection),
            introspection_roots: self
                .introspection_roots
                .saturating_add(other.introspection_roots),
        }
    }

    fn max(self, other: Cost) -> Cost {
        Cost {
            fields: self.fields.max(other.fields),
            introspection: self.introspection.max(other.introspection),
            introspection_roots: self.introspection_roots.max(other.introspection_roots),
        }
    }

    fn refusal(&self, batch: bool, budget: u64) -> Option<String> {
        let what = if batch {
            "The operations in this batch together"
        } else {
            "This request"
        };
        if self.fields > MAX_COST {
            return Some(format!(
                "{what} could cost {} and the limit is {MAX_COST}: the query is too complex. Each \
                 field counts once for every item of the lists around it (a page counts its \
                 `first`, 20 when left out; other lists their documented maximum), and some \
                 fields count more. Ask for smaller pages or fewer fields, or split the request.",
                self.fields
            ));
        }
        if self.introspection_roots > MAX_INTROSPECTION_ROOTS {
            return Some(format!(
                "{what} asks for `__schema` or `__type` {} times; the limit is \
                 {MAX_INTROSPECTION_ROOTS} in one request.",
                self.introspection_roots
            ));
        }
        if self.introspection > budget {
            return Some(format!(
                "{what} asks for too much introspection: it could cost {} and the limit is \
                 {budget} (twice the standard introspection query). Ask for the schema once.",
                self.introspection
            ));
        }
        None
    }
}

/// Checks every operation of an HTTP request together, parsing each document once (execution
/// reuses it). A refusal says what the limit is; a document that does not parse is left for
/// execution to refuse as usual.
pub fn check_batch(batch: &mut BatchRequest) -> Result<(), String> {
    super::limits::refuse_nul(batch)?;
    let is_batch = matches!(batch, BatchRequest::Batch(_));
    let mut total = Cost::default();
    for request in batch.iter_mut() {
        total = total.add(check_request(request)?);
        if let Some(refusal) = total.refusal(is_batch, model().introspection_budget) {
            return Err(refusal);
        }
    }
    Ok(())
}

/// The cost of one request (the most any of its operations could cost), or a refusal of its
/// shape (too deep).
pub fn check_request(request: &mut Request) -> Result<Cost, String> {
    let operation_name = request.operation_name.clone();
    let variables = request.variables.clone();
    let Ok(document) = request.parsed_query() else {
        return Ok(Cost::default());
    };
    check_document(document, operation_name.as_deref(), &variables)
}

/// The cost of the operation of `document` that would run, or of the costliest when that is not
/// yet known.
pub fn check_document(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
) -> Result<Cost, String> {
    let mut cost = Cost::default();
    for (name, operation) in document.operations.iter() {
        if let Some(wanted) = operation_name
            && name.map(Name::as_str) != Some(wanted)
        {
            continue;
        }
        let (depth, introspection_depth) =
            Depths::new(document).of(&operation.node.selection_set.node, 0)?;
        if depth > MAX_DEPTH {
            return Err(format!(
                "The query is nested too deep: {depth} levels, and fields nest at most \
                 {MAX_DEPTH} levels."
            ));
        }
        if introspection_depth > MAX_INTROSPECTION_DEPTH {
            return Err(format!(
                "The introspection query is nested too deep: at most \
                 {MAX_INTROSPECTION_DEPTH} levels of fields from `__schema` or `__type`."
            ));
        }
        let mut walk = Walk {
            model: model(),
            document,
            variables,
            operation: &operation.node,
            cost: Cost::default(),
        };
        let root = match operation.node.ty {
            OperationType::Query => "Query",
            OperationType::Mutation => "Mutation",
            OperationType::Subscription => "Subscription",
        };
        walk.selection_set(
            &operation.node.selection_set.node,
            Some(root),
            &Place {
                nesting: 0,
                multiplier: 1,
                page: DEFAULT_PAGE_SIZE,
                introspection: None,
            },
        )?;
        if let Some(refusal) = walk.cost.refusal(false, walk.model.introspection_budget) {
            return Err(refusal);
        }
        cost = cost.max(walk.cost);
    }
    Ok(cost)
}

/// One field of an object type, as the walk needs it.
#[derive(Debug)]
struct FieldInfo {
    /// The named type it returns.
    ty: String,
    /// The most items it returns when it is a list.
    list: Option<ListSize>,
    /// Whether it takes a page size (`first`).
    paged: Option<u64>,
    /// Its own cost, on top of one.
    own: u64,
}

#[derive(Debug, Clone, Copy)]
enum ListSize {
    Fixed(u64),
    /// A connection's `edges` or `nodes`: the page of the field above.
    Page,
    /// A paged list, by its own `first`.
    Own,
}

struct Model {
    types: HashMap<String, HashMap<String, FieldInfo>>,
    /// How many entries each introspection list could have in this schema.
    sizes: IntrospectionSizes,
    introspection_budget: u64,
}

#[derive(Debug, Clone, Copy)]
struct IntrospectionSizes {
    types: u64,
    fields: u64,
    args: u64,
    input_fields: u64,
    enum_values: u64,
    possible_types: u64,
    directives: u64,
}

fn model() -> &'static Model {
    static MODEL: LazyLock<Model> = LazyLock::new(|| build_model(&super::sdl()));
    &MODEL
}

fn list_limit(ty: &str, field: &str) -> Option<u64> {
    LIST_LIMITS
        .iter()
        .find(|(t, f, _)| *t == ty && *f == field)
        .map(|(_, _, n)| *n)
}

fn own_cost(ty: &str, field: &str) -> u64 {
    let own = OWN_COSTS
        .iter()
        .find(|(t, f, _)| *t == ty && *f == field)
        .map_or(0, |(_, _, n)| *n);
    if ty == "Mutation" || ty == "Subscription" {
        own.max(OPERATION_FIELD_COST)
    } else {
        own
    }
}

fn named(ty: &Type) -> (&str, bool) {
    match &ty.base {
        BaseType::Named(name) => (name.as_str(), false),
        BaseType::List(inner) => (named(inner).0, true),
    }
}

/// The standard introspection query of graphql-js 16 (`getIntrospectionQuery` with
/// descriptions and input value deprecation), as GraphiQL sends it.
const STANDARD_INTROSPECTION: &str = include_str!("introspection.graphql");

fn build_model(sdl: &str) -> Model {
    let mut types = HashMap::new();
    // Built-in scalars and the introspection types are not in the SDL.
    let mut type_count: u64 = 13;
    let (mut fields, mut args, mut input_fields, mut enum_values, mut directives) =
        (0u64, 4u64, 0u64, 8u64, 4u64);
    if let Ok(document) = async_graphql::parser::parse_schema(sdl) {
        for definition in document.definitions {
            match definition {
                TypeSystemDefinition::Type(ty) => {
                    type_count += 1;
                    let type_name = ty.node.name.node.to_string();
                    match &ty.node.kind {
                        TypeKind::Object(object) => {
                            fields = fields.max(object.fields.len() as u64);
                            let mut map = HashMap::new();
                            for field in &object.fields {
                                let field = &field.node;
                                let name = field.name.node.as_str();
                                args = args.max(field.arguments.len() as u64);
                                let (of, is_list) = named(&field.ty.node);
                                let paged = field
                                    .arguments
                                    .iter()
                                    .any(|arg| arg.node.name.node == "first")
                                    .then(|| {
                                        PAGE_DEFAULTS
                                            .iter()
                                            .find(|(t, f, _)| *t == type_name && *f == name)
                                            .map_or(DEFAULT_PAGE_SIZE, |(_, _, n)| *n)
                                    });
                                let list = if !is_list {
                                    None
                                } else if paged.is_some() {
                                    Some(ListSize::Own)
                                } else if type_name.ends_with("Connection")
                                    && (name == "edges" || name == "nodes")
                                {
                                    Some(ListSize::Page)
                                } else {
                                    // A list missing from the table still counts, at the most a
                                    // page can hold; a test keeps the table complete.
                                    Some(ListSize::Fixed(
                                        list_limit(&type_name, name).unwrap_or(MAX_PAGE_SIZE),
                                    ))
                                };
                                map.insert(
                                    name.to_owned(),
                                    FieldInfo {
                                        ty: of.to_owned(),
                                        list,
                                        paged,
                                        own: own_cost(&type_name, name),
                                    },
                                );
                            }
                            types.insert(type_name, map);
                        }
                        TypeKind::InputObject(input) => {
                            input_fields = input_fields.max(input.fields.len() as u64);
                        }
                        TypeKind::Enum(values) => {
                            enum_values = enum_values.max(values.values.len() as u64);
                        }
                        _ => {}
                    }
                }
                TypeSystemDefinition::Directive(_) => directives += 1,
                TypeSystemDefinition::Schema(_) => {}
            }
        }
    }
    let sizes = IntrospectionSizes {
        types: type_count,
        fields: fields.max(12),
        args: args.max(4),
        input_fields,
        enum_values,
        possible_types: 0,
        directives,
    };
    let mut model = Model {
        types,
        sizes,
        introspection_budget: u64::MAX,
    };
    let standard = async_graphql::parser::parse_query(STANDARD_INTROSPECTION)
        .ok()
        .and_then(|document| {
            let mut walk = Walk {
                model: &model,
                document: &document,
                variables: &Variables::default(),
                operation: &document.operations.iter().next()?.1.node,
                cost: Cost::default(),
            };
            walk.selection_set(
                &walk.operation.selection_set.node,
                Some("Query"),
                &Place {
                    nesting: 0,
                    multiplier: 1,
                    page: DEFAULT_PAGE_SIZE,
                    introspection: None,
                },
            )
            .ok()?;
            Some(walk.cost.introspection)
        });
    model.introspection_budget = standard.map_or(100_000, |cost| cost.saturating_mul(2));
    model
}

/// The type an introspection field returns, and how many entries it could have in this schema.
fn introspection_field(
    sizes: &IntrospectionSizes,
    parent: &str,
    field: &str,
) -> (Option<&'static str>, u64) {
    match (parent, field) {
        ("__Schema", "types") => (Some("__Type"), sizes.types),
        ("__Schema", "queryType" | "mutationType" | "subscriptionType") => (Some("__Type"), 1),
        ("__Schema", "directives") => (Some("__Directive"), sizes.directives),
        ("__Type", "fields") => (Some("__Field"), sizes.fields),
        ("__Type", "interfaces") => (Some("__Type"), sizes.possible_types.max(1)),
        ("__Type", "possibleTypes") => (Some("__Type"), sizes.possible_types.max(1)),
        ("__Type", "enumValues") => (Some("__EnumValue"), sizes.enum_values),
        ("__Type", "inputFields") => (Some("__InputValue"), sizes.input_fields),
        ("__Type", "ofType") | ("__Field" | "__InputValue", "type") => (Some("__Type"), 1),
        ("__Field" | "__Directive", "args") => (Some("__InputValue"), sizes.args),
        // `locations`: a list of enum values, the 19 places a directive may go.
        ("__Directive", "locations") => (None, 19),
        _ => (None, 1),
    }
}

/// How deep a selection nests: ordinary fields, and the deepest introspection below its root.
/// Each fragment is measured once, so a document of fragments spread twice over is read in
/// linear time.
struct Depths<'a> {
    document: &'a ExecutableDocument,
    fragments: HashMap<&'a str, (usize, usize)>,
}

impl<'a> Depths<'a> {
    fn new(document: &'a ExecutableDocument) -> Self {
        Depths {
            document,
            fragments: HashMap::new(),
        }
    }

    fn of(&mut self, set: &'a SelectionSet, nesting: usize) -> Result<(usize, usize), String> {
        if nesting > MAX_NESTING {
            return Err(format!(
                "The query is nested too deep: selections and fragments nest at most \
                 {MAX_NESTING} levels."
            ));
        }
        let mut deepest = (0, 0);
        for selection in &set.items {
            let (ordinary, introspection) = match &selection.node {
                Selection::Field(field) => {
                    let (below, below_introspection) =
                        self.of(&field.node.selection_set.node, nesting + 1)?;
                    let name = field.node.name.node.as_str();
                    if name == "__schema" || name == "__type" {
                        (0, 1 + below)
                    } else {
                        (1 + below, below_introspection)
                    }
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    match self.fragments.get(name) {
                        Some(known) => *known,
                        None => {
                            let Some(fragment) = self.document.fragments.get(name) else {
                                continue;
                            };
                            let measured =
                                self.of(&fragment.node.selection_set.node, nesting + 1)?;
                            self.fragments.insert(name, measured);
                            measured
                        }
                    }
                }
                Selection::InlineFragment(inline) => {
                    self.of(&inline.node.selection_set.node, nesting + 1)?
                }
            };
            deepest = (deepest.0.max(ordinary), deepest.1.max(introspection));
        }
        Ok(deepest)
    }
}

/// Where in the document a selection set is.
struct Place {
    /// Selection sets and fragments above it.
    nesting: usize,
    /// How many times it could be resolved: the product of the lists around it.
    multiplier: u64,
    /// The page of the nearest paged field above, for a connection's `edges` and `nodes`.
    page: u64,
    /// Levels below the introspection root, inside one.
    introspection: Option<usize>,
}

struct Walk<'a> {
    model: &'a Model,
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    operation: &'a OperationDefinition,
    cost: Cost,
}

impl Walk<'_> {
    fn selection_set(
        &mut self,
        set: &SelectionSet,
        ty: Option<&str>,
        place: &Place,
    ) -> Result<(), String> {
        if place.nesting > MAX_NESTING {
            return Err(format!(
                "The query is nested too deep: selections and fragments nest at most \
                 {MAX_NESTING} levels."
            ));
        }
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => self.field(&field.node, ty, place)?,
                Selection::FragmentSpread(spread) => {
                    let Some(fragment) =
                        self.document.fragments.get(&spread.node.fragment_name.node)
                    else {
                        continue;
                    };
                    let on = fragment.node.type_condition.node.on.node.as_str();
                    self.selection_set(
                        &fragment.node.selection_set.node,
                        Some(on),
                        &Place {
                            nesting: place.nesting + 1,
                            ..*place
                        },
                    )?;
                }
                Selection::InlineFragment(inline) => {
                    let on = inline
                        .node
                        .type_condition
                        .as_ref()
                        .map(|condition| condition.node.on.node.as_str())
                        .or(ty);
                    self.selection_set(
                        &inline.node.selection_set.node,
                        on,
                        &Place {
                            nesting: place.nesting + 1,
                            ..*place
                        },
                    )?;
                }
            }
            // Stop walking as soon as the answer is known: this bounds the work of a hostile
            // document (fragments spread twice in each of many fragments) by the limits.
            if self
                .cost
                .refusal(false, self.model.introspection_budget)
                .is_some()
            {
                return Ok(());
            }
        }
        Ok(())
    }

    fn field(
        &mut self,
        field: &async_graphql::parser::types::Field,
        parent: Option<&str>,
        place: &Place,
    ) -> Result<(), String> {
        let name = field.name.node.as_str();
        let children = &field.selection_set.node;
        let nested = place.nesting + 1;

        if let Some(level) = place.introspection {
            let level = level + 1;
            let (child, items) = parent
                .map(|parent| introspection_field(&self.model.sizes, parent, name))
                .unwrap_or((None, 1));
            let multiplier = place.multiplier.saturating_mul(items.max(1));
            self.cost.introspection = self.cost.introspection.saturating_add(multiplier);
            if !children.items.is_empty() {
                self.selection_set(
                    children,
                    child,
                    &Place {
                        nesting: nested,
                        multiplier,
                        introspection: Some(level),
                        ..*place
                    },
                )?;
            }
            return Ok(());
        }

        if name == "__schema" || name == "__type" {
            self.cost.introspection_roots += 1;
            self.cost.introspection = self.cost.introspection.saturating_add(1);
            let child = if name == "__schema" {
                "__Schema"
            } else {
                "__Type"
            };
            return self.selection_set(
                children,
                Some(child),
                &Place {
                    nesting: nested,
                    multiplier: 1,
                    introspection: Some(0),
                    ..*place
                },
            );
        }

        let info = parent
            .and_then(|parent| self.model.types.get(parent))
            .and_then(|fields| fields.get(name));
        let own = info.map_or(0, |info| info.own);
        let page = info
            .and_then(|info| info.paged)
            .map(|default| self.page_size(field, default))
            .unwrap_or(place.page);
        let items = match info.and_then(|info| info.list) {
            None => 1,
            Some(ListSize::Fixed(n)) => n,
            Some(ListSize::Page | ListSize::Own) => page,
        };
        let multiplier = place.multiplier.saturating_mul(items.max(1));
        let is_leaf = children.items.is_empty();
        // A field costs one where it is; a list of values costs one per value it could hold.
        let here = if is_leaf {
            multiplier
        } else {
            place.multiplier
        };
        self.cost.fields = self
            .cost
            .fields
            .saturating_add(here)
            .saturating_add(place.multiplier.saturating_mul(own));
        if !is_leaf {
            self.selection_set(
                children,
                info.map(|info| info.ty.as_str()),
                &Place {
                    nesting: nested,
                    multiplier,
                    page,
                    introspection: None,
                },
            )?;
        }
        Ok(())
    }

    /// The page size a paged field asks for, from its argument or variable; out-of-range values
    /// count as the largest page (the resolver refuses them).
    fn page_size(&self, field: &async_graphql::parser::types::Field, default: u64) -> u64 {
        let Some(value) = field.get_argument("first") else {
            return default;
        };
        let resolved = value.node.clone().into_const_with(|name| {
            self.variables
                .get(&name)
                .cloned()
                .or_else(|| {
                    self.operation
                        .variable_definitions
                        .iter()
                        .find(|definition| definition.node.name.node == name)
                        .and_then(|definition| definition.node.default_value().cloned())
                })
                .ok_or(())
        });
        let number = match resolved {
            Ok(Value::Number(n)) => n.as_i64().or(Some(i64::MAX)),
            Ok(Value::Null) | Err(()) => None,
            Ok(_) => Some(i64::MAX),
        };
        match number {
            None => default,
            Some(n) => u64::try_from(n).map_or(MAX_PAGE_SIZE, |n| n.clamp(1, MAX_PAGE_SIZE)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(query: &str) -> Result<Cost, String> {
        let document = async_graphql::parser::parse_query(query).map_err(|e| e.to_string())?;
        check_document(&document, None, &Variables::default())
    }

    fn accepted(query: &str) -> Cost {
        match cost(query) {
            Ok(cost) => cost,
            Err(refusal) => panic!("{query} was refused: {refusal}"),
        }
    }

    fn refusal(query: &str) -> String {
        match cost(query) {
            Ok(cost) => panic!("{query} was accepted at {cost:?}"),
            Err(refusal) => refusal,
        }
    }

    #[test]
    fn the_standard_introspection_query_is_within_its_bounds() {
        let standard = accepted(STANDARD_INTROSPECTION);
        assert_eq!(standard.fields, 0);
        assert_eq!(standard.introspection_roots, 1);
        assert!(standard.introspection * 2 <= model().introspection_budget);
    }

    #[test]
    fn introspection_aliased_or_nested_is_refused() {
        let body = STANDARD_INTROSPECTION
            .split_once("__schema")
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        let fragments = body.split_once("fragment").map(|(_, f)| f).unwrap_or("");
        let selection = body.split_once("fragment").map(|(s, _)| s).unwrap_or(body);
        let selection = selection.trim().trim_end_matches('}').trim();
        let aliased = format!(
            "query {{ a: __schema {selection} b: __schema {selection} c: __schema {selection} }} fragment{fragments}"
        );
        assert!(refusal(&aliased).contains("introspection"));

        let mut nested = "name".to_owned();
        for _ in 0..3 {
            nested = format!("fields {{ type {{ {nested} }} }}");
        }
        let nested = format!("{{ __schema {{ types {{ {nested} }} }} }}");
        assert!(refusal(&nested).contains("introspection"));

        let mut deep = "name".to_owned();
        for _ in 0..30 {
            deep = format!("ofType {{ {deep} }}");
        }
        let deep = format!("{{ __type(name: \"Query\") {{ {deep} }} }}");
        assert!(refusal(&deep).contains("deep"));

        let many: String = (0..7)
            .map(|n| format!("t{n}: __type(name: \"Query\") {{ name }} "))
            .collect();
        assert!(refusal(&format!("{{ {many} }}")).contains("__type"));
    }

    #[test]
    fn lists_multiply_and_pages_count_their_size() {
        let page = accepted("{ pledges(first: 50) { totalCount edges { node { id title } } } }");
        // pledges, totalCount, edges, then 50 × (node, id, title).
        assert_eq!(page.fields, 1 + 1 + 1 + 50 * 3);

        let nested = refusal(
            "{ coalition(slug: \"x\") { members { coalition { members { coalition { members { id } } } } } } }",
        );
        assert!(nested.contains("complex"));

        let left_out = accepted("{ pledges { edges { node { id } } } }");
        assert_eq!(left_out.fields, 2 + DEFAULT_PAGE_SIZE * 2);
    }

    #[test]
    fn aggregates_cost_on_their_own() {
        let aliased: String = (0..300)
            .map(|n| format!("m{n}: movement {{ totals {{ pledgesMade }} }} "))
            .collect();
        assert!(refusal(&format!("{{ {aliased} }}")).contains("complex"));
        assert!(cost("{ movement { totals { pledgesMade } } }").is_ok());
    }

    #[test]
    fn fragment_bombs_are_refused_without_walking_them_whole() {
        let mut document = String::from("{ ...F0 }\n");
        for n in 0..40 {
            document.push_str(&format!(
                "fragment F{n} on Query {{ ...F{m} ...F{m} }}\n",
                m = n + 1
            ));
        }
        document.push_str("fragment F40 on Query { changes { title } }\n");
        assert!(cost(&document).is_err());
    }

    #[test]
    fn every_list_in_the_schema_has_a_known_size() {
        for (ty, fields) in &model().types {
            for (name, info) in fields {
                if let Some(ListSize::Fixed(_)) = info.list {
                    assert!(
                        list_limit(ty, name).is_some(),
                        "{ty}.{name} is a list with no page size and no entry in LIST_LIMITS"
                    );
                }
            }
        }
    }
}
