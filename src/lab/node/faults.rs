//! Faults staged on the cluster: the set that handlers consult, and a crash applied at once.

use std::time::Duration;

use super::{Cluster, OpError, RunState};
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

    /// A flaky node's health and probe endpoints fail now and then.
    pub fn probe_fails(&self, idx: usize) -> bool {
        let name = self.name_of(idx);
        self.faults().flaky_fails(&name)
    }

    pub(super) fn crash(&self, idx: usize) {
        let mut g = self.inner();
        if let Some(n) = g.nodes.get_mut(idx) {
            n.state = RunState::Failed;
            n.reason = Some("crashed (fault)".into());
            n.generation += 1;
            n.running_since = None;
        }
    }
}
