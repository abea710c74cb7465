//! Read-only views of the cluster: run state, readiness, roles, synchronization and the
//! snapshots that tests and the admin API see.

use std::time::{Duration, Instant};

use super::{Cluster, Inner, NodeSnapshot, RunState};
use crate::lab::config::Product;
use crate::lab::faults::Fault;

/// The faults a snapshot reflects.
struct FaultView {
    no_sync: bool,
    /// Nodes under `deny-writes`.
    denied: Vec<String>,
}

impl Cluster {
    pub fn is_running(&self, idx: usize) -> bool {
        self.inner()
            .nodes
            .get(idx)
            .is_some_and(|n| n.state == RunState::Running)
    }

    /// Running, not held back by a `never-ready` fault, and (Weaviate) not waiting for Raft
    /// voters.
    pub fn is_ready(&self, idx: usize) -> bool {
        let name = self.name_of(idx);
        let never = self.faults().never_ready(&name);
        !never && self.is_running(idx) && self.raft_waiting(&self.inner(), idx).is_none()
    }

    pub(super) fn role_of(&self, g: &Inner, idx: usize) -> String {
        let node = &g.nodes[idx];
        if self.product == Product::Jahia {
            // A running node is what its `jahia.node.properties` made it at start-up.
            return match (&node.jahia_props, node.state) {
                (Some(p), RunState::Running) if p.processing_server => "processing".into(),
                (Some(_), RunState::Running) => "member".into(),
                _ => node.base_role.clone(),
            };
        }
        if self.neo4j_no_quorum(g, idx).is_some() {
            return "follower".into();
        }
        let group: Vec<usize> = (0..g.nodes.len())
            .filter(|&j| g.nodes[j].group == node.group)
            .collect();
        let running = |j: &usize| g.nodes[*j].state == RunState::Running;
        let leader = group
            .iter()
            .copied()
            .find(|&j| g.nodes[j].base_role == "leader" && running(&j))
            .or_else(|| group.iter().copied().find(running))
            .or_else(|| {
                group
                    .iter()
                    .copied()
                    .find(|&j| g.nodes[j].base_role == "leader")
            });
        if leader == Some(idx) {
            "leader".into()
        } else {
            "follower".into()
        }
    }

    pub(super) fn synchronized_in(&self, g: &Inner, idx: usize, no_sync: bool) -> bool {
        if no_sync {
            return false;
        }
        let group = &g.nodes[idx].group;
        let mut latest: Option<Instant> = None;
        for n in g.nodes.iter().filter(|n| &n.group == group) {
            match (n.state, n.running_since) {
                (RunState::Running, Some(t)) => latest = Some(latest.map_or(t, |l| l.max(t))),
                _ => return false,
            }
        }
        latest.is_some_and(|t| t.elapsed() >= Duration::from_millis(self.timing.sync_settle_ms))
    }

    /// Whether node `viewer` has `peer` in its member list again. A node that starts joins
    /// through the peers it is configured with and knows them all at once; the peers learn it
    /// is back only by gossip (hashicorp/memberlist, which Weaviate's cluster package runs), here
    /// one settle time after it has caught up. Weaviate's `/v1/cluster/statistics` lists the
    /// nodes of the answering node's member list (adapters/handlers/rest handlers_nodes.go
    /// `getNodesStatistics` over `GetNodeStatistics`), so right after a restart the restarted
    /// node's own view is complete before its peers' are: why weaviate-local-k8s
    /// `wait_for_raft_sync` polls every pod and checks the count, not one node's view.
    /// While gossip is held ([`Cluster::hold_gossip`]) a peer started since the hold stays
    /// unknown, however long it has run.
    pub fn knows(&self, viewer: usize, peer: usize) -> bool {
        if viewer == peer {
            return true;
        }
        let gossip = Duration::from_millis(self.timing.sync_settle_ms.saturating_mul(2));
        let g = self.inner();
        let Some(since) = g.nodes.get(peer).and_then(|n| n.running_since) else {
            return false;
        };
        if g.gossip_held_since.is_some_and(|held| since >= held) {
            return false;
        }
        since.elapsed() >= gossip
    }

    /// Holds gossip (`true`) until released (`false`): a node that starts while it is held
    /// joins through its peers and knows them all, but no peer learns it is back. Lets a test
    /// look at that moment — the restarted node's view complete, its peers' not — without
    /// racing the gossip delay on a busy machine. Released, the usual delay applies.
    pub fn hold_gossip(&self, held: bool) {
        let mut g = self.inner();
        if !held {
            g.gossip_held_since = None;
        } else if g.gossip_held_since.is_none() {
            g.gossip_held_since = Some(Instant::now());
        }
    }

    /// Whether a node restarted so recently that it is still catching up.
    pub fn settling(&self, idx: usize) -> bool {
        let g = self.inner();
        g.nodes
            .get(idx)
            .and_then(|n| n.running_since)
            .is_some_and(|t| t.elapsed() < Duration::from_millis(self.timing.sync_settle_ms))
    }

    pub fn applied_index(&self) -> u64 {
        self.inner().applied_index
    }

    pub fn snapshot_node(&self, idx: usize) -> Option<NodeSnapshot> {
        let faults = self.fault_view();
        let g = self.inner();
        self.snapshot_in(&g, idx, &faults)
    }

    pub fn snapshot_all(&self) -> Vec<NodeSnapshot> {
        let faults = self.fault_view();
        let g = self.inner();
        (0..g.nodes.len())
            .filter_map(|i| self.snapshot_in(&g, i, &faults))
            .collect()
    }

    /// What the snapshots need of the fault set, read before the cluster's lock is taken.
    fn fault_view(&self) -> FaultView {
        let f = self.faults();
        FaultView {
            no_sync: f.no_sync(),
            denied: f
                .list()
                .into_iter()
                .filter_map(|x| match x {
                    Fault::DenyWrites { node } => Some(node),
                    _ => None,
                })
                .collect(),
        }
    }

    fn snapshot_in(&self, g: &Inner, idx: usize, faults: &FaultView) -> Option<NodeSnapshot> {
        let n = g.nodes.get(idx)?;
        let store = g.stores.get(&n.store_key);
        Some(NodeSnapshot {
            name: n.name.clone(),
            address: n.addr,
            group: n.group.clone(),
            version: n.version.clone(),
            role: self.role_of(g, idx),
            state: n.state,
            reason: n.reason.clone().or_else(|| {
                self.raft_waiting(g, idx)
                    .or_else(|| self.neo4j_no_quorum(g, idx).map(|q| q.reason()))
                    .filter(|_| n.state == RunState::Running)
            }),
            // A node that refuses writes (`deny-writes`) is read-only whatever its switch says.
            read_only: n.read_only || faults.denied.contains(&n.name),
            store_format: store.map_or(0, |s| s.file.format),
            schema: n.schema.clone(),
            synchronized: self.synchronized_in(g, idx, faults.no_sync),
            marker: n.marker_path().exists(),
            mode: n.mode.clone(),
            allow_upgrade: n.allow_upgrade,
            requests: n.requests,
            keys: store.map_or(0, |s| s.file.data.len()),
            http_sessions: super::jahia::session_count(n),
        })
    }

    /// Indices of the nodes in the same group as `idx` (every node when there are no groups).
    pub fn group_members(&self, idx: usize) -> Vec<usize> {
        let g = self.inner();
        let Some(group) = g.nodes.get(idx).map(|n| n.group.clone()) else {
            return Vec::new();
        };
        (0..g.nodes.len())
            .filter(|&j| g.nodes[j].group == group)
            .collect()
    }
}
