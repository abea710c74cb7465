//! The data plane (`/kv`): reads and writes on a node, and the replication of a write to the
//! stores of its group.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{Cluster, Consistency, Inner, KvError, RunState};
use crate::lab::config::Product;
use crate::lab::store::Written;

impl Cluster {
    /// A read at a consistency level (Weaviate's `consistency_level`; other products have
    /// none: `None`).
    pub fn kv_get_at(
        &self,
        idx: usize,
        key: &str,
        cl: Option<Consistency>,
    ) -> Result<Option<String>, KvError> {
        let mut g = self.inner();
        let node = g.nodes.get_mut(idx).ok_or(KvError::NotRunning)?;
        if node.state != RunState::Running {
            return Err(KvError::NotRunning);
        }
        node.requests += 1;
        if self.reloading(&g, idx) {
            return Err(KvError::NotLoaded);
        }
        if self.places_shards(&g) {
            return self.weaviate_read(&g, idx, key, cl);
        }
        let node = &g.nodes[idx];
        let store_key = node.store_key.clone();
        Ok(g.stores
            .get(&store_key)
            .and_then(|s| s.file.data.get(key).cloned()))
    }

    pub async fn kv_put(&self, idx: usize, key: &str, value: &str) -> Result<(), KvError> {
        self.kv_write(idx, key, Some(value), None).await
    }

    /// A write (`Some(value)`) or delete (`None`: a write like any other, refused while
    /// read-only) at a consistency level (Weaviate's `consistency_level`; other products:
    /// `None`). Done once it is in the stores' files, which are written from the blocking pool
    /// (`lab::store`): the request waits, the thread does not.
    pub async fn kv_write(
        &self,
        idx: usize,
        key: &str,
        value: Option<&str>,
        cl: Option<Consistency>,
    ) -> Result<(), KvError> {
        let written = self.kv_write_behind(idx, key, value, cl)?;
        written.on_file().await.map_err(KvError::Internal)
    }

    /// [`Cluster::kv_write`] in memory, under the cluster's lock; the files follow.
    fn kv_write_behind(
        &self,
        idx: usize,
        key: &str,
        value: Option<&str>,
        cl: Option<Consistency>,
    ) -> Result<Written, KvError> {
        // Read before the cluster's lock: the fault set has its own.
        let denied = self.writes_denied(idx);
        let mut g = self.inner();
        let node = g.nodes.get_mut(idx).ok_or(KvError::NotRunning)?;
        if node.state != RunState::Running {
            return Err(KvError::NotRunning);
        }
        node.requests += 1;
        if node.read_only || denied {
            return Err(KvError::ReadOnly);
        }
        if let Some(q) = self.neo4j_no_quorum(&g, idx) {
            return Err(KvError::NoLeader(q.reason()));
        }
        let targets = if self.places_shards(&g) {
            self.weaviate_write_stores(&g, idx, key, value.is_none(), cl)?
        } else {
            self.replica_stores(&g, idx, true)
        };
        let mut written = Written::default();
        for k in targets {
            if let Some(store) = g.stores.get_mut(&k) {
                match value {
                    Some(v) => {
                        store.file.data.insert(key.to_string(), v.to_string());
                    }
                    None => {
                        store.file.data.remove(key);
                    }
                }
                written = written.and(store.save_behind());
            }
        }
        g.applied_index += 1;
        Ok(written)
    }

    /// Milvus standalone: for a while after a (re)start, /healthz says OK but queries fail
    /// with "collection not loaded" (the query node is loading the collection back; its load
    /// state already says Loaded) and then succeed without a `load` call. Seen on 2.3.5 after
    /// the upgrade from 2.2.16 for ~34 s (docs/real-milvus.md). Inserts are not refused. A node
    /// with a running peer in its group is a cluster whose other query nodes serve meanwhile.
    pub(super) fn reloading(&self, g: &Inner, idx: usize) -> bool {
        let me = &g.nodes[idx];
        let alone = !g
            .nodes
            .iter()
            .enumerate()
            .any(|(j, n)| j != idx && n.group == me.group && n.state == RunState::Running);
        self.product == Product::Milvus
            && alone
            && me
                .running_since
                .is_some_and(|t| t.elapsed() < Duration::from_millis(self.timing.sync_settle_ms))
    }

    /// The stores a write on `idx` reaches: its own, plus (except for Jahia, whose nodes share a
    /// database schema) those of the other nodes of its group — running ones only, or all.
    pub(super) fn replica_stores(
        &self,
        g: &Inner,
        idx: usize,
        running_only: bool,
    ) -> BTreeSet<String> {
        let me = &g.nodes[idx];
        let mut keys = BTreeSet::from([me.store_key.clone()]);
        if self.product != Product::Jahia {
            for n in &g.nodes {
                if n.group == me.group && (!running_only || n.state == RunState::Running) {
                    keys.insert(n.store_key.clone());
                }
            }
        }
        keys
    }
}
