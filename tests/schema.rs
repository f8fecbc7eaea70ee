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
        "pledge(id: ID!): Pledge",
        "pledges(first: Int, after: String, filter: PledgeFilter): PledgeConnection!",
        "coalition(slug: String!): Coalition",
        "coalitions(first: Int, after: String): CoalitionConnection!",
        "progressUpdates(first: Int, after: String, filter: ProgressUpdateFilter): ProgressUpdateConnection!",
        "makePledge(input: MakePledgeInput!): Pledge!",
        "updatePledge(id: ID!, input: UpdatePledgeInput!): Pledge!",
        "withdrawPledge(id: ID!, reason: String!): Pledge!",
        "postProgressUpdate(input: PostProgressUpdateInput!): ProgressUpdate!",
        "formCoalition(input: FormCoalitionInput!): Coalition!",
        "requestToJoinCoalition(coalitionId: ID!, organisationId: ID!): CoalitionMembership!",
        "inviteToCoalition(coalitionId: ID!, organisationId: ID!): CoalitionMembership!",
        "acceptCoalitionMembership(membershipId: ID!): CoalitionMembership!",
        "leaveCoalition(coalitionId: ID!, organisationId: ID!): CoalitionMembership!",
        "dueBy: Date",
        "scalar Date",
        "signal: ProgressSignal!",
    ] {
        assert!(sdl.contains(name), "the schema lacks `{name}`");
    }
}
