//! Public and private answers (DESIGN.md "Public and private"): one rule, decided from what a
//! request actually resolved, says whether an answer is the same for everyone. HTTP cache
//! headers use it today; the in-memory cache of public answers and the pages call
//! [`is_public`] too.
//!
//! Every field is classified below. A field that depends on who asks is in [`PRIVATE_FIELDS`]
//! (its resolver calls [`private`] whenever it runs, whatever it returns: `me` answering null
//! to nobody is still private), or belongs to one of [`PRIVATE_TYPES`], reached only through
//! such a field or a mutation. Every other field is listed in [`PUBLIC_FIELDS`]. A test checks
//! the lists against the schema, so a new field fails it until someone decides which it is.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use async_graphql::Context;

/// Fields whose answer depends on who asks, on types anyone can reach. Their resolvers mark the
/// answer private.
pub const PRIVATE_FIELDS: &[(&str, &str)] = &[
    ("Query", "me"),
    ("Query", "viewer"),
    ("Query", "myData"),
    ("Query", "failedMail"),
    ("Query", "digestPreview"),
    ("Organisation", "viewerRole"),
    ("Organisation", "members"),
    ("Organisation", "apiTokens"),
    ("Organisation", "webhooks"),
    ("Gathering", "joiningUrl"),
    ("Gathering", "viewerRegistration"),
    ("Gathering", "registrations"),
    ("Gathering", "accessRequirementTotals"),
];

/// Types reached only through a private field or a mutation: everything in them is private,
/// and no public field may lead to them.
pub const PRIVATE_TYPES: &[&str] = &[
    "AccessRequirementTotal",
    "ApiToken",
    "DigestPreferences",
    "DigestPreview",
    "FailedMail",
    "NewApiToken",
    "NewWebhook",
    "OrganisationMember",
    "Person",
    "Registration",
    "RegistrationConnection",
    "RegistrationEdge",
    "Session",
    "Viewer",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookDeliveryConnection",
    "WebhookDeliveryEdge",
];

/// Fields that are the same for everyone, by type.
pub const PUBLIC_FIELDS: &[(&str, &[&str])] = &[
    ("ChangeFigures", &["change", "figures"]),
    (
        "ChangeSummary",
        &[
            "change",
            "title",
            "pledgeCount",
            "organisationCount",
            "coalitionCount",
            "progressUpdateCount",
            "lastProgressAt",
        ],
    ),
    (
        "Coalition",
        &[
            "id",
            "name",
            "slug",
            "purpose",
            "area",
            "status",
            "changes",
            "lead",
            "members",
            "pledges",
            "updates",
            "createdAt",
            "concludedAt",
        ],
    ),
    (
        "CoalitionConnection",
        &["pageInfo", "edges", "nodes", "totalCount"],
    ),
    ("CoalitionEdge", &["node", "cursor"]),
    (
        "CoalitionMembership",
        &[
            "id",
            "status",
            "organisation",
            "coalition",
            "createdAt",
            "updatedAt",
        ],
    ),
    (
        "Gathering",
        &[
            "id",
            "title",
            "slug",
            "description",
            "startsAt",
            "endsAt",
            "timeZone",
            "startsAtLocal",
            "endsAtLocal",
            "format",
            "area",
            "venue",
            "inPersonCapacity",
            "onlineCapacity",
            "placesLeft",
            "confirmedCount",
            "confirmedPlaces",
            "waitlistedCount",
            "registrationOpensAt",
            "registrationClosesAt",
            "registrationOpen",
            "status",
            "cancelReason",
            "calendarUrl",
        ],
    ),
    (
        "GatheringConnection",
        &["pageInfo", "edges", "nodes", "totalCount"],
    ),
    ("GatheringEdge", &["node", "cursor"]),
    (
        "MovementFigures",
        &[
            "pledgesMade",
            "organisationsPledging",
            "activeCoalitions",
            "updatesPosted",
        ],
    ),
    (
        "MovementSummary",
        &["from", "to", "totals", "byChange", "byRegion"],
    ),
    (
        "Organisation",
        &[
            "id",
            "name",
            "slug",
            "kind",
            "region",
            "website",
            "createdAt",
        ],
    ),
    (
        "OrganisationConnection",
        &["pageInfo", "edges", "nodes", "totalCount"],
    ),
    ("OrganisationEdge", &["node", "cursor"]),
    (
        "PageInfo",
        &["hasPreviousPage", "hasNextPage", "startCursor", "endCursor"],
    ),
    (
        "Pledge",
        &[
            "id",
            "title",
            "commitment",
            "dueBy",
            "status",
            "withdrawnReason",
            "organisation",
            "changes",
            "coalition",
            "latestUpdate",
            "updates",
            "goneQuiet",
            "lastActivityAt",
            "createdAt",
            "updatedAt",
            "achievedAt",
            "withdrawnAt",
        ],
    ),
    (
        "PledgeConnection",
        &["pageInfo", "edges", "nodes", "totalCount"],
    ),
    ("PledgeEdge", &["node", "cursor"]),
    (
        "ProgressUpdate",
        &[
            "id",
            "pledge",
            "coalition",
            "organisation",
            "body",
            "signal",
            "percentComplete",
            "evidenceUrls",
            "postedAt",
        ],
    ),
    (
        "ProgressUpdateConnection",
        &["pageInfo", "edges", "nodes", "totalCount"],
    ),
    ("ProgressUpdateEdge", &["node", "cursor"]),
    (
        "Query",
        &[
            "changes",
            "movement",
            "organisation",
            "organisations",
            "gathering",
            "gatherings",
            "pledge",
            "pledges",
            "coalition",
            "coalitions",
            "progressUpdates",
        ],
    ),
    ("RegionFigures", &["region", "figures"]),
];

/// The per-request marker a private field sets when it resolves. One is shared by every
/// operation of a batch, as they share one HTTP answer.
#[derive(Clone, Debug, Default)]
pub struct Visibility(Arc<AtomicBool>);

impl Visibility {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that something in the answer depends on who asked.
    pub fn mark_private(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_marked_private(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Marks the answer private: called first by the resolver of every field in
/// [`PRIVATE_FIELDS`], whatever it goes on to return. Outside HTTP (a WebSocket subscription)
/// there is no marker, and nothing to mark.
pub fn private(ctx: &Context<'_>) {
    if let Some(visibility) = ctx.data_opt::<Visibility>() {
        visibility.mark_private();
    }
}

/// What is known of a request once it has been answered.
#[derive(Clone, Copy, Debug)]
pub struct Answered {
    /// Whether the request presented any credential (a valid one, or not).
    pub credential_presented: bool,
    /// Whether every operation executed was a query (no mutation, no subscription).
    pub only_queries: bool,
    /// Whether any operation answered an error.
    pub had_errors: bool,
    /// Whether a private field resolved.
    pub marked_private: bool,
}

/// The rule: an answer is public (the same for everyone, so it may be cached and shared) only
/// when no credential was presented, every operation was a query, nothing failed and no
/// private field resolved.
pub fn is_public(answered: &Answered) -> bool {
    !answered.credential_presented
        && answered.only_queries
        && !answered.had_errors
        && !answered.marked_private
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use async_graphql::parser::{
        parse_schema,
        types::{BaseType, Type, TypeKind, TypeSystemDefinition},
    };

    use super::*;

    fn named(ty: &Type) -> String {
        match &ty.base {
            BaseType::Named(name) => name.to_string(),
            BaseType::List(inner) => named(inner),
        }
    }

    /// Every object type of the schema with its fields and the type each returns.
    fn object_types() -> BTreeMap<String, Vec<(String, String)>> {
        let document = parse_schema(crate::graphql::sdl()).unwrap_or_else(|e| panic!("{e}"));
        let mut types = BTreeMap::new();
        for definition in document.definitions {
            if let TypeSystemDefinition::Type(ty) = definition
                && let TypeKind::Object(object) = &ty.node.kind
            {
                let fields = object
                    .fields
                    .iter()
                    .map(|f| (f.node.name.node.to_string(), named(&f.node.ty.node)))
                    .collect();
                types.insert(ty.node.name.node.to_string(), fields);
            }
        }
        types
    }

    #[test]
    fn every_field_of_the_schema_is_classified_public_or_private() {
        let public: BTreeMap<&str, BTreeSet<&str>> = PUBLIC_FIELDS
            .iter()
            .map(|(ty, fields)| (*ty, fields.iter().copied().collect()))
            .collect();
        let private: BTreeSet<(&str, &str)> = PRIVATE_FIELDS.iter().copied().collect();
        let types = object_types();
        let mut unclassified = Vec::new();
        let mut both = Vec::new();
        for (ty, fields) in &types {
            // Mutations and subscriptions are never public, whatever they return.
            if ty == "Mutation" || ty == "Subscription" || PRIVATE_TYPES.contains(&ty.as_str()) {
                continue;
            }
            for (field, _) in fields {
                let is_public = public
                    .get(ty.as_str())
                    .is_some_and(|f| f.contains(field.as_str()));
                let is_private = private.contains(&(ty.as_str(), field.as_str()));
                match (is_public, is_private) {
                    (false, false) => unclassified.push(format!("{ty}.{field}")),
                    (true, true) => both.push(format!("{ty}.{field}")),
                    _ => {}
                }
            }
        }
        assert!(
            unclassified.is_empty(),
            "add these fields to PUBLIC_FIELDS or PRIVATE_FIELDS in api/src/graphql/visibility.rs \
             (and mark the private ones with visibility::private(ctx)): {unclassified:?}"
        );
        assert!(both.is_empty(), "public and private at once: {both:?}");
    }

    #[test]
    fn the_lists_name_only_what_the_schema_has() {
        let types = object_types();
        let has = |ty: &str, field: &str| {
            types
                .get(ty)
                .is_some_and(|fields| fields.iter().any(|(f, _)| f == field))
        };
        for (ty, field) in PRIVATE_FIELDS {
            assert!(has(ty, field), "{ty}.{field} is not in the schema");
        }
        for (ty, fields) in PUBLIC_FIELDS {
            for field in *fields {
                assert!(has(ty, field), "{ty}.{field} is not in the schema");
            }
        }
        for ty in PRIVATE_TYPES {
            assert!(types.contains_key(*ty), "{ty} is not in the schema");
        }
    }

    #[test]
    fn no_public_field_leads_to_a_private_type() {
        let types = object_types();
        let mut leaks = Vec::new();
        for (ty, fields) in &types {
            if ty == "Mutation" || ty == "Subscription" || PRIVATE_TYPES.contains(&ty.as_str()) {
                continue;
            }
            for (field, returns) in fields {
                let is_private = PRIVATE_FIELDS.contains(&(ty.as_str(), field.as_str()));
                if !is_private && PRIVATE_TYPES.contains(&returns.as_str()) {
                    leaks.push(format!("{ty}.{field}: {returns}"));
                }
            }
        }
        assert!(
            leaks.is_empty(),
            "public fields return private types: {leaks:?}"
        );
    }

    #[test]
    fn only_an_anonymous_error_free_query_with_nothing_private_is_public() {
        let public = Answered {
            credential_presented: false,
            only_queries: true,
            had_errors: false,
            marked_private: false,
        };
        assert!(is_public(&public));
        for answered in [
            Answered {
                credential_presented: true,
                ..public
            },
            Answered {
                only_queries: false,
                ..public
            },
            Answered {
                had_errors: true,
                ..public
            },
            Answered {
                marked_private: true,
                ..public
            },
        ] {
            assert!(!is_public(&answered), "{answered:?}");
        }
    }
}
