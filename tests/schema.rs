//! `schema.graphql` is the published contract: it must equal what the code exports.

#[test]
fn schema_graphql_matches_the_code() -> anyhow::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let published = std::fs::read_to_string(path)?;
    let exported = groundswell_api::graphql::sdl();
    assert!(
        published == exported,
        "schema.graphql is out of date: run `cargo run -- schema > schema.graphql`"
    );
    Ok(())
}

#[test]
fn schema_holds_the_contract_names_built_so_far() {
    let sdl = groundswell_api::graphql::sdl();
    for name in [
        "me: Person",
        "changes: [ChangeSummary!]!",
        "organisation(slug: String!): Organisation",
        "organisations(first: Int, after: String): OrganisationConnection!",
        "myData: JSON!",
        "requestSignIn(email: String!): Boolean!",
        "signIn(token: String!): Session!",
        "signOut: Boolean!",
        "updateDigestPreferences(input: DigestPreferencesInput!): Person!",
        "eraseMyData: Boolean!",
        "createOrganisation(input: CreateOrganisationInput!): Organisation!",
        "addOrganisationMember(organisationId: ID!, email: String!, role: OrganisationRole!): OrganisationMember!",
        "createApiToken(organisationId: ID!, name: String!): NewApiToken!",
        "revokeApiToken(id: ID!): Boolean!",
        "enum Role",
        "enum DigestFrequency",
    ] {
        assert!(sdl.contains(name), "the schema lacks `{name}`");
    }
}
