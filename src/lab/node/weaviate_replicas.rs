//! Weaviate's shards, their replicas and the consistency levels of object reads and writes: the
//! lab collection's objects live only on the nodes that hold their shard, and a request needs
//! as many of them reachable as its consistency level says — or fails with Weaviate's words.
//!
//! Sources (weaviate/weaviate, checked at v1.26.18; the same strings from v1.20.0 to v1.28.16):
//! - shards: one per node by default (usecases/sharding/config/config.go: `DesiredCount =
//!   nodeCount`), each on `replicationConfig.factor` nodes, handed out round-robin
//!   (usecases/sharding/state.go `initPhysical`, the node iterator);
//! - an object's shard comes from its id (state.go `PhysicalShard`: murmur3 of the UUID; the lab
//!   hashes the key with FNV-1a instead — any stable hash shows the same behaviour);
//! - consistency: object reads, writes and deletes default to QUORUM (adapters/repos/db/index.go
//!   `defaultConsistency()`), a level needs ONE = 1, QUORUM = n/2 + 1, ALL = n replicas
//!   (usecases/replica/resolver.go `cLevel`); a stopped node leaves the member list, so its
//!   replicas do not resolve (usecases/schema/manager.go `ResolveParentNodes`: "" for a node
//!   that does not resolve) and the coordinator gives up with `cannot achieve consistency level
//!   "QUORUM": cannot reach enough replicas` (usecases/replica/finder.go `GetOne`,
//!   replicator.go `PutObject`, `DeleteObject`);
//! - factor 1 is no replication at all (index.go `replicationEnabled`: factor > 1): the shard's
//!   one owner answers, and when it is down the request fails with `resolve node name "node2" to
//!   host` (usecases/sharding/remote_index.go `GetObject`, `PutObject`, `DeleteObject`).

use std::collections::{BTreeMap, BTreeSet};

use super::{Cluster, Inner, KvError, OpError, RunState};
use crate::lab::config::Product;
use crate::lab::node::weaviate::LAB_COLLECTION;

/// A request's consistency level (`consistency_level` on REST, `consistencyLevel` in GraphQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    One,
    Quorum,
    All,
}

impl Consistency {
    /// The `consistency_level` query parameter, as Weaviate checks it
    /// (adapters/handlers/rest/handlers_objects.go `getConsistencyLevel`: exact, upper case).
    pub fn parse(level: Option<&str>) -> Result<Option<Consistency>, String> {
        match level {
            None => Ok(None),
            Some("ONE") => Ok(Some(Consistency::One)),
            Some("QUORUM") => Ok(Some(Consistency::Quorum)),
            Some("ALL") => Ok(Some(Consistency::All)),
            Some(other) => Err(format!(
                "unrecognized consistency level '{other}', try one of the following: \
                 ['ONE', 'QUORUM', 'ALL']"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::One => "ONE",
            Consistency::Quorum => "QUORUM",
            Consistency::All => "ALL",
        }
    }

    /// How many of `n` replicas the level needs (resolver.go `cLevel`).
    fn needs(self, n: usize) -> usize {
        match self {
            Consistency::One => 1,
            Consistency::Quorum => n / 2 + 1,
            Consistency::All => n,
        }
    }
}

/// One shard of the lab collection and the nodes (indices) holding a replica of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Shard {
    pub name: String,
    pub replicas: Vec<usize>,
}

/// Which data-plane operation, for the error's wording (each has its own wrapping in Weaviate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ObjectOp {
    Get,
    Put,
    Delete,
}

/// FNV-1a: a stable hash, the same in every run and every process.
fn fnv1a(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The index Weaviate gives the collection: the class name in lower case
/// (adapters/repos/db/index.go `indexID`).
fn index_id() -> String {
    LAB_COLLECTION.to_lowercase()
}

/// Weaviate's error for an object operation that found too few replicas (factor > 1) or the
/// shard's one owner down (factor 1), wrapped as each layer wraps it:
/// - GET: usecases/objects/get.go `getObjectFromRepo` "repo: object by id: %v", adapters/repos/db
///   crud.go `Object` "search index %s", index.go `objectByID` "get remote object: shard=%s";
/// - PUT: usecases/objects/add.go "put object: %w", crud.go `PutObject` "import into index %s",
///   index.go `putObject` "replicate insertion: shard=%q" / "put remote object: shard=%q";
/// - DELETE: usecases/objects/delete.go "could not delete object from vector repo: %v", crud.go
///   `DeleteObject` "delete from index %q", index.go `deleteObject` "replicate deletion:
///   shard=%q %w" (no colon in the source) / "delete remote object: shard=%q".
fn unavailable(op: ObjectOp, shard: &str, why: Unreachable) -> String {
    let index = index_id();
    match (op, why) {
        (ObjectOp::Get, Unreachable::Owner(owner)) => format!(
            "repo: object by id: search index {index}: get remote object: shard={shard}: \
             resolve node name {owner:?} to host"
        ),
        (ObjectOp::Get, Unreachable::Level(cl)) => format!(
            "repo: object by id: search index {index}: cannot achieve consistency level {:?}: \
             cannot reach enough replicas",
            cl.as_str()
        ),
        (ObjectOp::Put, Unreachable::Owner(owner)) => format!(
            "put object: import into index {index}: put remote object: shard={shard:?}: \
             resolve node name {owner:?} to host"
        ),
        (ObjectOp::Put, Unreachable::Level(cl)) => format!(
            "put object: import into index {index}: replicate insertion: shard={shard:?}: \
             cannot achieve consistency level {:?}: cannot reach enough replicas",
            cl.as_str()
        ),
        (ObjectOp::Delete, Unreachable::Owner(owner)) => format!(
            "could not delete object from vector repo: delete from index {index:?}: delete \
             remote object: shard={shard:?}: resolve node name {owner:?} to host"
        ),
        (ObjectOp::Delete, Unreachable::Level(cl)) => format!(
            "could not delete object from vector repo: delete from index {index:?}: replicate \
             deletion: shard={shard:?} cannot achieve consistency level {:?}: cannot reach \
             enough replicas",
            cl.as_str()
        ),
    }
}

enum Unreachable {
    /// Factor 1: the shard's only owner is down.
    Owner(String),
    /// Factor > 1: fewer reachable replicas than the level needs.
    Level(Consistency),
}

/// The nodes of `idx`'s group, in order.
fn members(g: &Inner, idx: usize) -> Vec<usize> {
    let Some(group) = g.nodes.get(idx).map(|n| &n.group) else {
        return Vec::new();
    };
    (0..g.nodes.len())
        .filter(|&j| &g.nodes[j].group == group)
        .collect()
}

/// The collection's replication factor in `idx`'s group: as configured, at most the group's
/// size; unset, a replica on every node.
pub(super) fn factor(g: &Inner, idx: usize) -> usize {
    let n = members(g, idx).len();
    match g.weaviate_factor {
        0 => n,
        f => f.min(n),
    }
}

/// The collection's shards in `idx`'s group: one per node, shard k's replicas on nodes k,
/// k+1, … (`factor` of them, wrapping round).
pub(super) fn shards(g: &Inner, idx: usize) -> Vec<Shard> {
    let members = members(g, idx);
    let n = members.len();
    let f = factor(g, idx);
    (0..n)
        .map(|k| Shard {
            name: format!("shard{}", k + 1),
            replicas: (0..f).map(|r| members[(k + r) % n]).collect(),
        })
        .collect()
}

/// The shard `key` belongs to.
pub(super) fn shard_of(shards: &[Shard], key: &str) -> Option<Shard> {
    let n = u64::try_from(shards.len()).ok().filter(|&n| n > 0)?;
    let k = usize::try_from(fnv1a(key) % n).ok()?;
    shards.get(k).cloned()
}

fn running(g: &Inner, j: usize) -> bool {
    g.nodes.get(j).is_some_and(|n| n.state == RunState::Running)
}

/// Whether `key` belongs on node `node` (its shard has a replica there).
fn holds(shards: &[Shard], node: usize, key: &str) -> bool {
    shard_of(shards, key).is_some_and(|s| s.replicas.contains(&node))
}

impl Cluster {
    /// Whether this lab places the Weaviate collection's objects by shard.
    pub(super) fn places_shards(&self, g: &Inner) -> bool {
        self.product == Product::Weaviate && !g.collections_deleted
    }

    /// The replicas of `key`'s shard a request on `idx` reaches at `cl` (default QUORUM), or
    /// Weaviate's error when too few are reachable.
    pub(super) fn weaviate_replicas_for(
        &self,
        g: &Inner,
        idx: usize,
        key: &str,
        op: ObjectOp,
        cl: Option<Consistency>,
    ) -> Result<Vec<usize>, KvError> {
        let all = shards(g, idx);
        let Some(shard) = shard_of(&all, key) else {
            return Ok(Vec::new());
        };
        let up: Vec<usize> = shard
            .replicas
            .iter()
            .copied()
            .filter(|&j| running(g, j))
            .collect();
        if shard.replicas.len() == 1 {
            // No replication: the owner or nothing (the level is not looked at).
            if up.is_empty() {
                let owner = g.nodes[shard.replicas[0]].name.clone();
                return Err(KvError::Unavailable(unavailable(
                    op,
                    &shard.name,
                    Unreachable::Owner(owner),
                )));
            }
            return Ok(up);
        }
        let cl = cl.unwrap_or(Consistency::Quorum);
        if up.len() < cl.needs(shard.replicas.len()) {
            return Err(KvError::Unavailable(unavailable(
                op,
                &shard.name,
                Unreachable::Level(cl),
            )));
        }
        Ok(up)
    }

    /// A read of `key` through `idx`: from this node's replica if it has one, else from a
    /// reachable one.
    pub(super) fn weaviate_read(
        &self,
        g: &Inner,
        idx: usize,
        key: &str,
        cl: Option<Consistency>,
    ) -> Result<Option<String>, KvError> {
        let up = self.weaviate_replicas_for(g, idx, key, ObjectOp::Get, cl)?;
        let from = if up.contains(&idx) {
            Some(idx)
        } else {
            up.first().copied()
        };
        Ok(from
            .and_then(|j| g.stores.get(&g.nodes[j].store_key))
            .and_then(|s| s.file.data.get(key).cloned()))
    }

    /// The stores a write of `key` through `idx` reaches: its shard's reachable replicas.
    pub(super) fn weaviate_write_stores(
        &self,
        g: &Inner,
        idx: usize,
        key: &str,
        delete: bool,
        cl: Option<Consistency>,
    ) -> Result<BTreeSet<String>, KvError> {
        let op = if delete {
            ObjectOp::Delete
        } else {
            ObjectOp::Put
        };
        let up = self.weaviate_replicas_for(g, idx, key, op, cl)?;
        Ok(up
            .into_iter()
            .map(|j| g.nodes[j].store_key.clone())
            .collect())
    }

    /// The collection as a backup sees it: each shard's objects from one of its replicas (a
    /// running one when there is one).
    pub(super) fn weaviate_collection(&self, g: &Inner, idx: usize) -> BTreeMap<String, String> {
        let all = shards(g, idx);
        let mut out = BTreeMap::new();
        for shard in &all {
            let source = shard
                .replicas
                .iter()
                .copied()
                .find(|&j| running(g, j))
                .or_else(|| shard.replicas.first().copied());
            let Some(store) = source.and_then(|j| g.stores.get(&g.nodes[j].store_key)) else {
                continue;
            };
            for (k, v) in &store.file.data {
                if shard_of(&all, k).is_some_and(|s| s.name == shard.name) {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        out
    }

    /// Puts `data` into the group's stores, each object on its shard's replicas only (a
    /// restore, a scale-out).
    pub(super) fn weaviate_place(
        &self,
        g: &mut Inner,
        idx: usize,
        data: &BTreeMap<String, String>,
    ) -> Result<(), OpError> {
        let all = shards(g, idx);
        for j in members(g, idx) {
            let key = g.nodes[j].store_key.clone();
            if let Some(store) = g.stores.get_mut(&key) {
                store.file.data = data
                    .iter()
                    .filter(|(k, _)| holds(&all, j, k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                store.save()?;
            }
        }
        Ok(())
    }

    /// A (re)started node takes each of its shards from a running replica (the shards no
    /// running peer holds stay as the node had them).
    pub(super) fn weaviate_catch_up(&self, g: &mut Inner, idx: usize) {
        let all = shards(g, idx);
        let mine = g.nodes[idx].store_key.clone();
        let Some(mut data) = g.stores.get(&mine).map(|s| s.file.data.clone()) else {
            return;
        };
        for shard in all.iter().filter(|s| s.replicas.contains(&idx)) {
            let peer = shard
                .replicas
                .iter()
                .copied()
                .find(|&j| j != idx && running(g, j));
            let Some(peer) = peer.and_then(|j| g.stores.get(&g.nodes[j].store_key)) else {
                continue;
            };
            let in_shard = |k: &String| shard_of(&all, k).is_some_and(|s| s.name == shard.name);
            data.retain(|k, _| !in_shard(k));
            for (k, v) in peer.file.data.iter().filter(|(k, _)| in_shard(k)) {
                data.insert(k.clone(), v.clone());
            }
        }
        if let Some(store) = g.stores.get_mut(&mine) {
            store.file.data = data;
            if let Err(e) = store.save() {
                tracing::warn!("lab: catch-up of {mine} not saved: {e}");
            }
        }
    }

    /// The lab collection's replication factor as `/v1/schema` reports it.
    pub fn replication_factor(&self, idx: usize) -> usize {
        factor(&self.inner(), idx)
    }

    /// The shards node `idx` holds a replica of, with their object counts (`/v1/nodes`).
    pub fn node_shards(&self, idx: usize) -> Vec<(String, usize)> {
        let g = self.inner();
        let all = shards(&g, idx);
        let data = g
            .nodes
            .get(idx)
            .and_then(|n| g.stores.get(&n.store_key))
            .map(|s| &s.file.data);
        all.iter()
            .filter(|s| s.replicas.contains(&idx))
            .map(|s| {
                let count = data.map_or(0, |d| {
                    d.keys()
                        .filter(|k| shard_of(&all, k).is_some_and(|o| o.name == s.name))
                        .count()
                });
                (s.name.clone(), count)
            })
            .collect()
    }

    /// Sets the collection's replication factor before anything is stored (the lab's start:
    /// a collection created with that factor).
    pub fn set_replication_factor(&self, factor: usize) -> Result<(), OpError> {
        self.only(Product::Weaviate, "replication factor")?;
        let mut g = self.inner();
        let n = members(&g, 0).len();
        if factor == 0 || factor > n {
            // usecases/sharding/state.go `GetPartitions`, at class creation.
            return Err(OpError::BadRequest(format!(
                "not enough replicas: found {n} want {factor}"
            )));
        }
        g.weaviate_factor = factor;
        let data = self.weaviate_collection(&g, 0);
        self.weaviate_place(&mut g, 0, &data)
    }

    /// `PUT /v1/schema/{class}` with a new `replicationConfig.factor`: Weaviate scales a
    /// collection out, never in (v1.26.18 usecases/schema/class.go `UpdateClass`: "scale %q from
    /// %d replicas to %d: %w"; usecases/scaler/scaler.go `Scale`: "scaling in not supported
    /// yet"; usecases/sharding/state.go `AdjustReplicas`: "not enough storage replicas: found %d
    /// want %d"). The new replicas get their shards' objects from the existing ones.
    pub fn scale_replication(&self, idx: usize, class: &str, to: usize) -> Result<(), OpError> {
        self.only(Product::Weaviate, "replication factor")?;
        let mut g = self.inner();
        if !running(&g, idx) {
            return Err(OpError::Refused("node is not running".into()));
        }
        if class != LAB_COLLECTION || g.collections_deleted {
            return Err(OpError::NotFound(format!("class {class:?} not found")));
        }
        let from = factor(&g, idx);
        let n = members(&g, idx).len();
        let scale = |why: String| {
            OpError::Refused(format!(
                "scale {class:?} from {from} replicas to {to}: {why}"
            ))
        };
        if to < from {
            return Err(scale("scaling in not supported yet".into()));
        }
        if to > n {
            return Err(scale(format!(
                "not enough storage replicas: found {n} want {to}"
            )));
        }
        if to == from {
            return Ok(());
        }
        let data = self.weaviate_collection(&g, idx);
        g.weaviate_factor = to;
        self.weaviate_place(&mut g, idx, &data)?;
        g.applied_index += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_need_what_the_resolver_counts() {
        assert_eq!(Consistency::Quorum.needs(2), 2);
        assert_eq!(Consistency::Quorum.needs(3), 2);
        assert_eq!(Consistency::One.needs(2), 1);
        assert_eq!(Consistency::All.needs(3), 3);
        assert_eq!(
            Consistency::parse(Some("quorum")).unwrap_err(),
            "unrecognized consistency level 'quorum', try one of the following: \
             ['ONE', 'QUORUM', 'ALL']"
        );
        assert_eq!(Consistency::parse(None).unwrap(), None);
    }

    #[test]
    fn errors_read_as_weaviate_writes_them() {
        assert_eq!(
            unavailable(ObjectOp::Get, "shard2", Unreachable::Owner("node2".into())),
            "repo: object by id: search index labobject: get remote object: shard=shard2: \
             resolve node name \"node2\" to host"
        );
        assert_eq!(
            unavailable(
                ObjectOp::Put,
                "shard2",
                Unreachable::Level(Consistency::Quorum)
            ),
            "put object: import into index labobject: replicate insertion: shard=\"shard2\": \
             cannot achieve consistency level \"QUORUM\": cannot reach enough replicas"
        );
    }
}
