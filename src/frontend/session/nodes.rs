//! The seam between the session and its node connections: everything the
//! session asks of them. `backend::NodeConns` is the real one; the session's
//! unit tests put a scripted fake behind it, so the command loop is tested
//! without a node.

use std::future::Future;
use std::sync::Arc;

use crate::backend::{
    Abandon, BackendError, ClientSink, Credentials, Job, NodeConns, Ran, RelayOutcome, SessionSetup,
};
use crate::net::NetError;
use crate::topology::NodeId;

pub trait Nodes: Send {
    /// Runs `job` on `node` (falling back to `fallback` if the node fails
    /// before any byte reached the client) and relays the reply.
    fn run(
        &mut self,
        node: NodeId,
        fallback: Option<NodeId>,
        job: Job<'_>,
        setup: &SessionSetup,
        client: &mut ClientSink<'_>,
        abandon: Option<Abandon>,
    ) -> impl Future<Output = Result<Ran, NetError>> + Send;

    /// Holds a connection to `node` in the session's setup.
    fn open(
        &mut self,
        node: NodeId,
        setup: &SessionSetup,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    fn send_long_data(
        &mut self,
        node: NodeId,
        id: u32,
        payload: &[u8],
        setup: &SessionSetup,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Runs the proxy's own `sql` on the session's connection to `node`;
    /// the reply is not relayed.
    fn side_query(
        &mut self,
        node: NodeId,
        setup: &SessionSetup,
        sql: &str,
    ) -> impl Future<Output = Result<RelayOutcome, BackendError>> + Send;

    fn close_statement(&mut self, id: u32) -> impl Future<Output = ()> + Send;

    fn reset_other_copies(
        &mut self,
        id: u32,
        node: NodeId,
        payload: &[u8],
    ) -> impl Future<Output = ()> + Send;

    fn next_statement_id(&self) -> u32;
    /// The statement's SQL text, as the client prepared it.
    fn statement_text(&self, id: u32) -> Option<&[u8]>;
    fn statement_params(&self, id: u32) -> Option<(u16, Option<&[u8]>)>;
    fn note_types(&mut self, id: u32, execute: &[u8]);
    fn mark_synced(&mut self, node: NodeId, setup: &SessionSetup);
    fn release_all(&mut self);
    /// The session left state no reset undoes: its connections never serve
    /// another session.
    fn keep_from_other_sessions(&mut self);
    /// Multiplexing: gives back the connections nothing of the session is
    /// left on; how many.
    fn release_untied(&mut self) -> usize;
    /// Another session waits for a slot on a node this one holds.
    fn slot_wanted(&self) -> bool;
    fn change_user(&mut self, creds: Credentials, collation: u8);
    /// Which nodes a connection is held to (admin SHOW SESSIONS).
    fn held(&self) -> impl Iterator<Item = bool> + '_;
    fn node_name(&self, node: NodeId) -> Arc<str>;
}

impl Nodes for NodeConns {
    fn run(
        &mut self,
        node: NodeId,
        fallback: Option<NodeId>,
        job: Job<'_>,
        setup: &SessionSetup,
        client: &mut ClientSink<'_>,
        abandon: Option<Abandon>,
    ) -> impl Future<Output = Result<Ran, NetError>> + Send {
        NodeConns::run(self, node, fallback, job, setup, client, abandon)
    }

    async fn open(&mut self, node: NodeId, setup: &SessionSetup) -> Result<(), BackendError> {
        NodeConns::open(self, node, setup).await.map(drop)
    }

    fn send_long_data(
        &mut self,
        node: NodeId,
        id: u32,
        payload: &[u8],
        setup: &SessionSetup,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        NodeConns::send_long_data(self, node, id, payload, setup)
    }

    fn side_query(
        &mut self,
        node: NodeId,
        setup: &SessionSetup,
        sql: &str,
    ) -> impl Future<Output = Result<RelayOutcome, BackendError>> + Send {
        NodeConns::side_query(self, node, setup, sql)
    }

    fn close_statement(&mut self, id: u32) -> impl Future<Output = ()> + Send {
        NodeConns::close_statement(self, id)
    }

    fn reset_other_copies(
        &mut self,
        id: u32,
        node: NodeId,
        payload: &[u8],
    ) -> impl Future<Output = ()> + Send {
        NodeConns::reset_other_copies(self, id, node, payload)
    }

    fn next_statement_id(&self) -> u32 {
        NodeConns::next_statement_id(self)
    }

    fn statement_text(&self, id: u32) -> Option<&[u8]> {
        NodeConns::statement_text(self, id)
    }

    fn statement_params(&self, id: u32) -> Option<(u16, Option<&[u8]>)> {
        NodeConns::statement_params(self, id)
    }

    fn note_types(&mut self, id: u32, execute: &[u8]) {
        NodeConns::note_types(self, id, execute);
    }

    fn mark_synced(&mut self, node: NodeId, setup: &SessionSetup) {
        NodeConns::mark_synced(self, node, setup);
    }

    fn release_all(&mut self) {
        NodeConns::release_all(self);
    }

    fn keep_from_other_sessions(&mut self) {
        NodeConns::keep_from_other_sessions(self);
    }

    fn release_untied(&mut self) -> usize {
        NodeConns::release_untied(self)
    }

    fn slot_wanted(&self) -> bool {
        NodeConns::slot_wanted(self)
    }

    fn change_user(&mut self, creds: Credentials, collation: u8) {
        NodeConns::change_user(self, creds, collation);
    }

    fn held(&self) -> impl Iterator<Item = bool> + '_ {
        NodeConns::held(self)
    }

    fn node_name(&self, node: NodeId) -> Arc<str> {
        NodeConns::node_name(self, node)
    }
}
