//! What a WebSocket connection may do. It authenticates once, at `connection_init`, and may
//! then live for hours: so it serves subscriptions only (queries and mutations go to
//! `POST /graphql`, checked on every request), and each subscription checks its credential again
//! before every event, ending when the session or token is no longer live.

use std::sync::Arc;

use async_graphql::{
    ErrorExtensions, ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::{ExecutableDocument, OperationType},
};
use groundswell_domain::{Actor, Database};

/// Marks the data of a WebSocket connection, with the credential it authenticated with.
#[derive(Clone, Debug)]
pub struct OverWebSocket {
    pub credential: Option<String>,
}

impl OverWebSocket {
    /// Whether the credential still names `actor` (a signed-out session or revoked token does
    /// not).
    pub async fn still_valid(&self, db: &Database, actor: &Actor) -> bool {
        match &self.credential {
            None => true,
            Some(token) => matches!(
                groundswell_domain::access::authenticate(db, token, groundswell_domain::now()).await,
                Ok(Some(now)) if &now == actor
            ),
        }
    }
}

/// Refuses anything but subscriptions over a WebSocket connection.
pub struct SubscriptionsOnly;

impl ExtensionFactory for SubscriptionsOnly {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(SubscriptionsOnlyExtension)
    }
}

struct SubscriptionsOnlyExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for SubscriptionsOnlyExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        if let Err(refusal) = super::cost::check_document(&document, None, variables) {
            let error = async_graphql::Error::new(refusal)
                .extend_with(|_, ext| ext.set("code", "BAD_USER_INPUT"));
            return Err(error.into_server_error(async_graphql::Pos::default()));
        }
        let over_websocket = ctx.data_opt::<OverWebSocket>().is_some();
        let not_a_subscription = document
            .operations
            .iter()
            .any(|(_, operation)| operation.node.ty != OperationType::Subscription);
        if over_websocket && not_a_subscription {
            let error = async_graphql::Error::new(
                "Only subscriptions are served over WebSocket; send queries and mutations to POST /graphql.",
            )
            .extend_with(|_, ext| ext.set("code", "BAD_USER_INPUT"));
            return Err(error.into_server_error(async_graphql::Pos::default()));
        }
        Ok(document)
    }
}
