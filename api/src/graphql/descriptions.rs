//! Every part of the published schema says what it is: clients and the people who build them
//! read `schema.graphql` (or GraphiQL) as the API's documentation, so a type, field, input field
//! or enum value without a description is a gap in it. Descriptions come from doc comments.

use async_graphql::parser::{
    parse_schema,
    types::{TypeDefinition, TypeKind, TypeSystemDefinition},
};

/// Every type, field, input field and enum value in the exported schema that has no
/// description, as `Type`, `Type.field` or `Enum.VALUE`. Arguments are not checked.
///
/// The one exception is the type of a connection itself (`PledgeConnection`): async-graphql's
/// `Connection` gives it no description and no way to add one, though its fields have theirs.
fn undescribed(sdl: &str) -> Vec<String> {
    let document = match parse_schema(sdl) {
        Ok(document) => document,
        Err(error) => return vec![format!("the exported schema does not parse: {error}")],
    };
    let mut missing = Vec::new();
    let lacks = |description: &Option<_>| description.is_none();
    for definition in &document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else {
            continue;
        };
        let ty = &ty.node;
        let name = ty.name.node.as_str();
        if lacks(&ty.description) && !is_connection(ty) {
            missing.push(name.to_owned());
        }
        match &ty.kind {
            TypeKind::Object(object) => {
                for field in &object.fields {
                    if lacks(&field.node.description) {
                        missing.push(format!("{name}.{}", field.node.name.node));
                    }
                }
            }
            TypeKind::Interface(interface) => {
                for field in &interface.fields {
                    if lacks(&field.node.description) {
                        missing.push(format!("{name}.{}", field.node.name.node));
                    }
                }
            }
            TypeKind::InputObject(input) => {
                for field in &input.fields {
                    if lacks(&field.node.description) {
                        missing.push(format!("{name}.{}", field.node.name.node));
                    }
                }
            }
            TypeKind::Enum(enumeration) => {
                for value in &enumeration.values {
                    if lacks(&value.node.description) {
                        missing.push(format!("{name}.{}", value.node.value.node));
                    }
                }
            }
            TypeKind::Scalar | TypeKind::Union(_) => {}
        }
    }
    missing
}

/// Whether `ty` is a Relay connection made by async-graphql's `Connection`.
fn is_connection(ty: &TypeDefinition) -> bool {
    let TypeKind::Object(object) = &ty.kind else {
        return false;
    };
    ty.name.node.ends_with("Connection")
        && object
            .fields
            .iter()
            .any(|field| field.node.name.node == "pageInfo")
}

#[test]
fn every_type_field_input_field_and_enum_value_has_a_description() {
    let missing = undescribed(&super::sdl());
    assert!(
        missing.is_empty(),
        "{} parts of the schema have no description (add a doc comment):\n{}",
        missing.len(),
        missing.join("\n")
    );
}

#[test]
fn the_check_names_what_lacks_a_description() {
    let sdl = r#"
        type Query { "Described." ok: Int  bare: Int }
        "Described." enum Colour { "Described." RED  BLUE }
        "Described." input Filter { "Described." a: Int  b: Int }
        type ThingConnection { "Described." pageInfo: Int }
        type OtherConnection { "Described." total: Int }
    "#;
    assert_eq!(
        undescribed(sdl),
        [
            "Query",
            "Query.bare",
            "Colour.BLUE",
            "Filter.b",
            "OtherConnection"
        ]
    );
}
