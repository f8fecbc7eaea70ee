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

/// Open WebSocket connections per client address: one address cannot hold more than its share
/// of the server's sockets (and the subscriptions and credential checks each one runs).
#[derive(Debug)]
pub struct Connections {
    per_address: usize,
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// One open connection's place in [`Connections`], given back when the connection ends.
#[derive(Debug)]
pub struct ConnectionSlot {
    connections: Arc<Connections>,
    address: std::net::IpAddr,
}

impl Connections {
    pub fn new(per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            per_address: per_address.max(1),
            open: std::sync::Mutex::default(),
        })
    }

    pub fn per_address(&self) -> usize {
        self.per_address
    }

    /// A place for one more connection from `address`, unless it has all it may hold.
    pub fn try_open(self: &Arc<Self>, address: std::net::IpAddr) -> Option<ConnectionSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(address).or_insert(0);
        if *count >= self.per_address {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            connections: self.clone(),
            address,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// The subscriptions one connection has running, capped.
#[derive(Clone, Debug)]
pub struct SubscriptionSlots {
    open: Arc<std::sync::atomic::AtomicUsize>,
    most: usize,
}

/// One running subscription's place, given back when its stream ends or is stopped.
#[derive(Debug)]
pub struct SubscriptionSlot(Arc<std::sync::atomic::AtomicUsize>);

impl SubscriptionSlots {
    pub fn new(most: usize) -> Self {
        Self {
            open: Arc::default(),
            most: most.max(1),
        }
    }

    pub fn most(&self) -> usize {
        self.most
    }

    pub fn try_take(&self) -> Option<SubscriptionSlot> {
        use std::sync::atomic::Ordering;
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.most).then_some(n + 1)
            })
            .ok()
            .map(|_| SubscriptionSlot(self.open.clone()))
    }
}

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}
