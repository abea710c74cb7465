//! Neo4j causal clustering: the Raft quorum of a group of cores.
//!
//! A core group elects a leader, and so commits a write, only while a majority of its voting
//! members run: "M = 2F + 1 where M is the number of Core Servers required to tolerate F
//! faults ... should the Core Server cluster suffer enough failures that it can no longer
//! process writes, it will become read-only to preserve safety" (Neo4j 3.3 operations manual,
//! "Causal Clustering: Introduction"); "When we lose quorum, the cluster goes into a read-only
//! state and no longer has a leader to perform writes" (Neo4j knowledge base, "Understanding
//! causal cluster quorum and cluster recovery"). Before 3.4 the voting set never shrinks below
//! `causal_clustering.expected_core_cluster_size` (default 3; knowledge base, "Understanding
//! causal cluster size scaling"), so a stopped core still counts as a member: in a 3-core
//! cluster, two cores down is no quorum. Here the members are the group's `dbms.mode=CORE`
//! nodes (a SINGLE server is not in the Raft group), and a member votes while it runs.

use super::{Cluster, Inner, RunState};
use crate::lab::config::Product;

/// A core group without a majority: how many of its members run, how many it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NoQuorum {
    pub running: usize,
    pub members: usize,
}

impl NoQuorum {
    /// The majority the group needs (`members / 2 + 1`).
    pub fn needed(self) -> usize {
        self.members / 2 + 1
    }

    /// Why the node has no leader, in words for its reason and a refused write.
    pub fn reason(self) -> String {
        format!(
            "no leader: {} of {} cores running, a majority ({}) is needed to elect one; the \
             cluster is read-only until then",
            self.running,
            self.members,
            self.needed()
        )
    }
}

impl Cluster {
    /// `Some` when node `idx` is a Neo4j core whose group has lost its Raft quorum.
    pub(crate) fn neo4j_no_quorum(&self, g: &Inner, idx: usize) -> Option<NoQuorum> {
        if self.product != Product::Neo4j {
            return None;
        }
        let me = g.nodes.get(idx)?;
        if me.mode != "CORE" {
            return None;
        }
        let cores = g
            .nodes
            .iter()
            .filter(|n| n.group == me.group && n.mode == "CORE");
        let (mut members, mut running) = (0usize, 0usize);
        for n in cores {
            members += 1;
            if n.state == RunState::Running {
                running += 1;
            }
        }
        let q = NoQuorum { running, members };
        (running < q.needed()).then_some(q)
    }
}
