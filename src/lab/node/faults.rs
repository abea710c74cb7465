//! Faults staged on the cluster: the set that handlers consult, and a crash applied at once.

use std::time::Duration;

use super::data::{Hook, Reason};
use super::{Cluster, OpError, RunState, WEAVIATE_RAFT};
use crate::lab::config::Product;
use crate::lab::faults::Fault;

impl Cluster {
    pub fn add_fault(&self, fault: Fault) -> Result<(), OpError> {
        let idx = match fault.node() {
            Some(n) => Some(
                self.node_idx(n)
                    .map_err(|e| OpError::BadRequest(e.to_string()))?,
            ),
            None => None,
        };
        match (&fault, idx) {
            (Fault::Crash { .. }, Some(i)) => self.crash(i),
            _ => self.faults().add(fault),
        }
        Ok(())
    }

    pub fn clear_faults(&self) {
        self.faults().clear();
    }

    pub fn list_faults(&self) -> Vec<Fault> {
        self.faults().list()
    }

    pub fn slow_delay(&self, idx: usize) -> Option<Duration> {
        let name = self.name_of(idx);
        self.faults().slow(&name)
    }

    /// A `deny-writes` fault holds on the node: it refuses writes in its product's words.
    pub fn writes_denied(&self, idx: usize) -> bool {
        let name = self.name_of(idx);
        self.faults().deny_writes(&name)
    }

    /// A flaky node's health and probe endpoints fail now and then.
    pub fn probe_fails(&self, idx: usize) -> bool {
        let name = self.name_of(idx);
        self.faults().flaky_fails(&name)
    }

    pub(super) fn crash(&self, idx: usize) {
        let mut g = self.inner();
        let reason = self
            .data_reason(&g, idx, Reason::Crash, 0, 0)
            .unwrap_or_else(|| "crashed (fault)".into());
        if let Some(n) = g.nodes.get_mut(idx) {
            n.state = RunState::Failed;
            n.reason = Some(reason);
            n.generation += 1;
            n.running_since = None;
            self.data_hook(&mut g, idx, Hook::Stop);
        }
    }
}

/// What the product says when the store or schema upgrade it runs at start fails (a
/// `fail-migration` fault on the node that migrates), in its own words; the store is left at
/// format `from` in every case.
pub(super) fn migration_failure(product: Product, from: u32, to: u32) -> String {
    match product {
        // Jahia/jahia core, org/jahia/tools/patches/Patcher.java (8.x): the processing server
        // runs the update scripts (`Script watchdog is disabled on a non-processing Jahia
        // server`); a script that throws is logged "Execution of script <script> failed with
        // error: <message>" and renamed with the `.failed` suffix. The schema the lab keeps
        // per cluster is that database: only the first node to start on it migrates it.
        Product::Jahia => format!(
            "Execution of script file [patches/sql/update-{from}-to-{to}.sql] failed with error: \
             the database schema update did not complete; the script is renamed .failed and the \
             schema is left at format {from}"
        ),
        // neo4j/neo4j 3.3, community/kernel .../storemigration/StoreUpgrader.java: a failing
        // migration participant ends in UnableToUpgradeException("Failure doing migration"),
        // which fails the database's start ("Error starting ... GraphDatabaseFacadeFactory").
        Product::Neo4j => format!(
            "Error starting org.neo4j.kernel.impl.factory.GraphDatabaseFacadeFactory: \
             org.neo4j.kernel.impl.storemigration.StoreUpgrader$UnableToUpgradeException: \
             Failure doing migration (store format {from} to {to}; the store is left at format \
             {from})"
        ),
        // weaviate/weaviate v1.25 cluster/store.go `onLeaderFound`: the move of the pre-Raft
        // schema into Raft logs `migrate from old schema` with the error, and the node keeps
        // "waiting for database to be restored" (it never gets ready).
        Product::Weaviate if from < WEAVIATE_RAFT && to >= WEAVIATE_RAFT => format!(
            "migrate from old schema: raft restore: the schema of format {from} was not \
             restored into Raft; waiting for database to be restored"
        ),
        _ => format!(
            "store migration from format {from} to {to} failed; the store is left at format \
             {from}"
        ),
    }
}
