//! Weaviate: the Raft era's quorum (1.25+), its documented way back (`schema-v1`), and the
//! collections a restore must not overwrite.

use super::{Cluster, Inner, OpError, RunState};
use crate::lab::config::{store_format, Product};

/// Weaviate's first Raft-era store format (1.25): cluster metadata lives in Raft from there on.
pub(crate) const WEAVIATE_RAFT: u32 = 1025;

/// The one collection the lab's objects (`/kv`) live in.
pub const LAB_COLLECTION: &str = "LabObject";

fn raft_era(version: &str) -> bool {
    store_format(version).is_ok_and(|f| f >= WEAVIATE_RAFT)
}

impl Cluster {
    /// Why a Weaviate node on a Raft-era version cannot serve yet, if it cannot. Its metadata
    /// lives in Raft, which needs a majority of voters: nodes still on a pre-1.25 version do not
    /// take part (they keep the old schema protocol), so a node rolled to 1.25 among them waits
    /// for voters and never becomes ready. That is why the 1.25 migration needs "some downtime
    /// for the cluster": all nodes stop, then start on 1.25 together (Weaviate 1.25 migration
    /// guide, docs.weaviate.io/deploy/migration/weaviate-1-25; weaviate/weaviate v1.25.34
    /// cluster/store.go: the store is not ready until Raft is bootstrapped and a leader known).
    pub(crate) fn raft_waiting(&self, g: &Inner, idx: usize) -> Option<String> {
        if self.product != Product::Weaviate {
            return None;
        }
        let me = g.nodes.get(idx)?;
        if !raft_era(&me.version) {
            return None;
        }
        let group: Vec<_> = g.nodes.iter().filter(|n| n.group == me.group).collect();
        let legacy: Vec<&str> = group
            .iter()
            .filter(|n| n.state == RunState::Running && !raft_era(&n.version))
            .map(|n| n.name.as_str())
            .collect();
        let voters = group
            .iter()
            .filter(|n| {
                matches!(n.state, RunState::Running | RunState::Starting) && raft_era(&n.version)
            })
            .count();
        let quorum = group.len() / 2 + 1;
        if voters >= quorum && legacy.is_empty() {
            return None;
        }
        let mut why = format!(
            "raft: waiting for voters to bootstrap ({voters} of {} nodes on a Raft version, \
             {quorum} needed)",
            group.len()
        );
        if !legacy.is_empty() {
            why.push_str(&format!(
                "; {} still run a pre-1.25 version and cannot join Raft",
                legacy.join(", ")
            ));
        }
        Some(why)
    }

    /// `POST /v1/cluster/schema-v1`: stores the node's metadata in the pre-Raft format, the
    /// documented way back from 1.25 (weaviate/weaviate v1.25.34
    /// adapters/handlers/rest/raft/handler.go `StoreSchemaV1`, cluster/store.go: saved to the
    /// node's own legacy schema store, so each node needs it).
    pub fn store_schema_v1(&self, idx: usize) -> Result<(), OpError> {
        self.only(Product::Weaviate, "schema-v1")?;
        let mut g = self.inner();
        let n = g.node_mut(idx)?;
        if n.state != RunState::Running {
            return Err(OpError::Refused(format!("{} is not running", n.name)));
        }
        if !raft_era(&n.version) {
            return Err(OpError::NotFound(
                "no such endpoint: /v1/cluster/schema-v1 exists from 1.25 on".into(),
            ));
        }
        n.schema_v1 = true;
        Ok(())
    }

    /// A pre-Raft version may start on a Raft-era store only after schema-v1; it then runs on
    /// the legacy metadata again (the store goes back to its format).
    pub(super) fn schema_v1_downgrade(
        &self,
        g: &mut Inner,
        idx: usize,
        store_fmt: u32,
        version_fmt: u32,
    ) -> bool {
        let allowed = self.product == Product::Weaviate
            && store_fmt >= WEAVIATE_RAFT
            && version_fmt < WEAVIATE_RAFT
            && g.nodes.get(idx).is_some_and(|n| n.schema_v1);
        if !allowed {
            return false;
        }
        let key = g.nodes[idx].store_key.clone();
        g.nodes[idx].schema_v1 = false;
        if let Some(store) = g.stores.get_mut(&key) {
            store.file.format = version_fmt;
            if let Err(e) = store.save() {
                tracing::warn!("lab: {key} back to format {version_fmt} not saved: {e}");
            }
        }
        true
    }

    /// The collections in the schema (`GET /v1/schema`).
    pub fn collections(&self) -> Vec<String> {
        if self.inner().collections_deleted {
            Vec::new()
        } else {
            vec![LAB_COLLECTION.to_string()]
        }
    }

    /// `DELETE /v1/schema/{class}`: the collection and its objects go, on every replica.
    pub fn delete_collection(&self, idx: usize, class: &str) -> Result<(), OpError> {
        self.only(Product::Weaviate, "delete-collection")?;
        let mut g = self.inner();
        if g.nodes.get(idx).map(|n| n.state) != Some(RunState::Running) {
            return Err(OpError::Refused("node is not running".into()));
        }
        if class != LAB_COLLECTION || g.collections_deleted {
            return Err(OpError::NotFound(format!("class {class:?} not found")));
        }
        let stores = self.replica_stores(&g, idx, false);
        for k in stores {
            if let Some(store) = g.stores.get_mut(&k) {
                store.file.data.clear();
                store.save()?;
            }
        }
        g.collections_deleted = true;
        g.applied_index += 1;
        Ok(())
    }

    /// Weaviate refuses to restore a collection that exists (weaviate/weaviate v1.23.16
    /// usecases/backup/restorer.go `restoreOne`: `fmt.Errorf("already exists")`, wrapped by
    /// `restoreAll` as "restore class %s: %w"); the restore job then ends FAILED.
    pub(super) fn check_restore_target(&self, g: &Inner) -> Result<(), OpError> {
        if self.product == Product::Weaviate && !g.collections_deleted {
            return Err(OpError::Refused(format!(
                "restore class {LAB_COLLECTION}: already exists"
            )));
        }
        Ok(())
    }
}
