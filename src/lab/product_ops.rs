//! Lab operations the seed procedures bind to, beyond the common node operations.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::config::{store_format, Product};
use super::faults::Fault;
use super::node::{Cluster, OpError, RunState, MILVUS_META_2_2};
use super::LabShared;

/// Weaviate's first Raft-era store format (1.25): the metadata migration into it is one-way.
const WEAVIATE_RAFT: u32 = 1025;

impl Cluster {
    /// Whether a version may start on a store written by a newer one. Weaviate supports going
    /// back a minor within the Raft era (1.25+; the catalog refuses the Raft-snapshot cases), so
    /// a rolled-back node starts again; every other product's store is one-way.
    pub(crate) fn opens_newer_store(&self, store_format: u32, version_format: u32) -> bool {
        self.product == Product::Weaviate
            && version_format >= WEAVIATE_RAFT
            && store_format >= WEAVIATE_RAFT
    }

    /// Jahia's full read-only switch as the Karaf shell (`jahia:full-read-only ON|OFF`) does it
    /// out of band: from the processing node it covers the cluster (every running node on its
    /// schema, and the processing node itself even while it is still starting, which is what a
    /// rollback needs right after restarting it); from another node, that node only.
    /// Returns the names switched.
    pub fn full_read_only(&self, idx: usize, on: bool) -> Result<Vec<String>, OpError> {
        if self.product != Product::Jahia {
            return Err(OpError::Refused(format!(
                "full-read-only is a jahia operation; this lab is {}",
                self.product
            )));
        }
        let node = self
            .snapshot_node(idx)
            .ok_or_else(|| OpError::NotFound("no such node".into()))?;
        if node.role == "processing" {
            Ok(self.set_read_only_cluster(idx, on))
        } else {
            self.set_read_only(idx, on)?;
            Ok(vec![node.name])
        }
    }
}

impl Cluster {
    /// Jahia: removes the `rolling-upgrade` marker if it is there (a rollback must not restart
    /// a node on the old schema with it: the node would not rejoin the old cluster). Returns
    /// whether there was one.
    pub fn remove_marker(&self, idx: usize) -> Result<bool, OpError> {
        if self.product != Product::Jahia {
            return Err(OpError::Refused(format!(
                "remove-marker is a jahia operation; this lab is {}",
                self.product
            )));
        }
        let path = self
            .inner()
            .nodes
            .get(idx)
            .ok_or_else(|| OpError::NotFound("no such node".into()))?
            .dir
            .join("rolling-upgrade");
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(OpError::Internal(format!("{}: {e}", path.display()))),
        }
    }
}

/// Where `migrate_metadata` keeps a node's metadata backup (as in node.rs).
fn metadata_backup(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("metadata-backup.json")
}

impl Cluster {
    fn fails_migration(&self, idx: usize) -> bool {
        let name = self.name_of(idx);
        self.list_faults()
            .iter()
            .any(|f| matches!(f, Fault::FailMigration { node } if *node == name))
    }

    fn milvus_only(&self, op: &str) -> Result<(), OpError> {
        if self.product == Product::Milvus {
            Ok(())
        } else {
            Err(OpError::Refused(format!(
                "{op} is a milvus operation; this lab is {}",
                self.product
            )))
        }
    }

    fn node_count(&self) -> usize {
        self.inner().nodes.len()
    }

    /// Milvus: one Deployment's rolling update (`kubectl patch` of its image, as rollingUpdate.sh
    /// does). The RollingUpdate strategy brings the new pod up before the old one goes, so the
    /// node keeps serving and switches to `version` at once, still settling. Refused when the
    /// metadata predates 2.2 (the new pods would crash-loop: migrate first), or when the new
    /// pod never gets ready (`fail-migration` fault): the old pod keeps serving, as when
    /// `kubectl rollout status` gives up.
    pub fn rollout(&self, idx: usize, version: &str) -> Result<(), OpError> {
        self.milvus_only("rollout")?;
        let vfmt = store_format(version).map_err(|e| OpError::BadRequest(e.to_string()))?;
        let failing = self.fails_migration(idx);
        let mut g = self.inner();
        let n = g
            .nodes
            .get(idx)
            .ok_or_else(|| OpError::NotFound("no such node".into()))?;
        if n.state != RunState::Running {
            return Err(OpError::Refused(format!(
                "{} is {}: a rolling update needs a running deployment",
                n.name,
                n.state.as_str()
            )));
        }
        let (name, key) = (n.name.clone(), n.store_key.clone());
        let sfmt = g.stores.get(&key).map_or(0, |s| s.file.format);
        if sfmt < MILVUS_META_2_2 && vfmt >= MILVUS_META_2_2 {
            return Err(OpError::Refused(format!(
                "metadata format {sfmt} predates 2.2: pods of {version} would crash-loop; \
                 migrate the metadata first (migrate.sh)"
            )));
        }
        if sfmt > vfmt {
            return Err(OpError::Refused(format!(
                "metadata format {sfmt} is newer than {version} reads"
            )));
        }
        if failing {
            return Err(OpError::Refused(format!(
                "rollout of {name} to {version} failed: the new pod never became ready \
                 (progress deadline exceeded); the old pod keeps serving"
            )));
        }
        if vfmt > sfmt {
            if let Some(store) = g.stores.get_mut(&key) {
                store.file.format = vfmt;
                store.save()?;
            }
        }
        if let Some(n) = g.nodes.get_mut(idx) {
            n.version = version.trim().to_string();
            n.running_since = Some(std::time::Instant::now());
        }
        Ok(())
    }

    /// Milvus: `helm upgrade` of the release. The standalone Deployment is recreated (its
    /// volume is ReadWriteOnce): every node stops, gets `version`, and starts again.
    pub fn helm_upgrade(self: &Arc<Self>, version: &str) -> Result<Vec<String>, OpError> {
        self.milvus_only("helm-upgrade")?;
        let mut names = Vec::new();
        for idx in 0..self.node_count() {
            self.stop(idx)?;
            self.install(idx, version)?;
            self.start(idx)?;
            names.push(self.name_of(idx));
        }
        Ok(names)
    }

    /// Milvus: `migrate.sh -o migrate`: stop every component (live etcd sessions break the
    /// migration), back up the metadata, migrate it to the 2.2 format, start `target`. A
    /// `fail-migration` fault on a node fails it after the backup (exit 3): Milvus is left
    /// stopped on its old version, the backup kept for `-o rollback`.
    pub fn migrate_sh(self: &Arc<Self>, target: &str) -> Result<Vec<String>, OpError> {
        self.milvus_only("migrate.sh")?;
        store_format(target).map_err(|e| OpError::BadRequest(e.to_string()))?;
        // Refuse before stopping anything, as the script's pre-checks do.
        {
            let g = self.inner();
            for n in &g.nodes {
                let format = g.stores.get(&n.store_key).map_or(0, |s| s.file.format);
                if format >= MILVUS_META_2_2 {
                    return Err(OpError::Refused(format!(
                        "{}'s metadata is already in the 2.2 format ({format})",
                        n.name
                    )));
                }
            }
        }
        let count = self.node_count();
        for idx in 0..count {
            self.stop(idx)?;
        }
        for idx in 0..count {
            if self.fails_migration(idx) {
                let g = self.inner();
                let n = &g.nodes[idx];
                if let Some(store) = g.stores.get(&n.store_key) {
                    store.copy_to(&metadata_backup(&n.dir))?;
                }
                return Err(OpError::Internal(format!(
                    "migrate.sh: the migration of {}'s metadata failed (exit 3); Milvus is \
                     stopped and the metadata backup kept: roll back with -o rollback",
                    n.name
                )));
            }
            self.migrate_metadata(idx)?;
        }
        let mut names = Vec::new();
        for idx in 0..count {
            self.install(idx, target)?;
            self.start(idx)?;
            names.push(self.name_of(idx));
        }
        Ok(names)
    }

    /// Milvus: `migrate.sh -o rollback -w <old image>`: stop, restore the metadata backup
    /// (exit 4 without one), start `version` again.
    pub fn rollback_sh(self: &Arc<Self>, version: &str) -> Result<Vec<String>, OpError> {
        self.milvus_only("migrate.sh")?;
        store_format(version).map_err(|e| OpError::BadRequest(e.to_string()))?;
        if let Some(n) = self
            .inner()
            .nodes
            .iter()
            .find(|n| !metadata_backup(&n.dir).exists())
        {
            return Err(OpError::Refused(format!(
                "migrate.sh: no metadata backup for {} (exit 4): nothing to roll back to",
                n.name
            )));
        }
        let count = self.node_count();
        for idx in 0..count {
            self.stop(idx)?;
        }
        let mut names = Vec::new();
        for idx in 0..count {
            self.rollback_metadata(idx)?;
            self.install(idx, version)?;
            self.start(idx)?;
            names.push(self.name_of(idx));
        }
        Ok(names)
    }
}

/// `POST {admin}/_lab/helm-upgrade` `{"version":"2.2.16"}`, `POST {admin}/_lab/migrate-sh`
/// `{"operation":"migrate"|"rollback","version":"..."}` (the version to start: the target for
/// migrate, the old one for rollback), `GET {admin}/_lab/tools` (the helm and Kubernetes
/// versions a real target's precondition checks read).
pub(crate) fn routes() -> Router<LabShared> {
    Router::new()
        .route("/_lab/helm-upgrade", post(helm_upgrade))
        .route("/_lab/migrate-sh", post(migrate_sh))
        .route("/_lab/tools", get(tools))
}

#[derive(Deserialize)]
struct VersionBody {
    version: String,
    #[serde(default)]
    operation: Option<String>,
}

fn parse(body: &[u8]) -> Result<VersionBody, OpError> {
    serde_json::from_slice(body)
        .map_err(|e| OpError::BadRequest(format!("expected {{\"version\":\"...\"}}: {e}")))
}

fn answer(op: &str, result: Result<Vec<String>, OpError>) -> Response {
    match result {
        Ok(nodes) => Json(json!({"ok": true, "op": op, "nodes": nodes})).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn helm_upgrade(State(s): State<LabShared>, body: Bytes) -> Response {
    answer(
        "helm-upgrade",
        parse(&body).and_then(|b| s.cluster.helm_upgrade(&b.version)),
    )
}

async fn migrate_sh(State(s): State<LabShared>, body: Bytes) -> Response {
    let result = parse(&body).and_then(|b| match b.operation.as_deref() {
        None | Some("migrate") => s.cluster.migrate_sh(&b.version),
        Some("rollback") => s.cluster.rollback_sh(&b.version),
        Some(other) => Err(OpError::BadRequest(format!(
            "operation {other:?}: expected migrate or rollback (exit 6)"
        ))),
    });
    answer("migrate-sh", result)
}

/// What `helm version` and `kubectl version` would report next to this lab.
pub(crate) const LAB_HELM: &str = "3.14.4";
pub(crate) const LAB_KUBERNETES: &str = "1.29.2";

async fn tools() -> Response {
    Json(json!({"helm": LAB_HELM, "kubernetes": LAB_KUBERNETES})).into_response()
}
