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
use super::node::{Cluster, OpError, RunState, MILVUS_META_2_2, WEAVIATE_RAFT};
use super::LabShared;

impl Cluster {
    /// Whether a version may start on a store written by a newer one. Weaviate supports going
    /// back a minor within the Raft era (1.25+; the catalog refuses the Raft-snapshot cases), so
    /// a rolled-back node starts again (out of the Raft era only after schema-v1: see
    /// node/weaviate.rs); every other product's store is one-way.
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
        let path = self.inner().node(idx)?.dir.join("rolling-upgrade");
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

    pub(crate) fn milvus_only(&self, op: &str) -> Result<(), OpError> {
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
        let n = g.node(idx)?;
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
        if g.nodes.len() == 1 {
            // A one-node Milvus lab is a standalone: the chart's standalone Deployment mounts one
            // ReadWriteOnce PVC (zilliztech/milvus-helm charts/milvus/values.yaml
            // standalone.persistence.persistentVolumeClaim.accessModes, templates/
            // standalone-deployment.yaml `strategy: Recreate`). A RollingUpdate surge pod needs
            // the same volume: scheduled on another node it never attaches (the attach-detach
            // controller's event for a ReadWriteOnce volume, kubernetes
            // pkg/controller/volume/attachdetach/reconciler/reconciler.go
            // `reportMultiAttachError`, `isMultiAttachForbidden`), so
            // `kubectl rollout status` never completes and the old pod keeps serving.
            return Err(OpError::Refused(format!(
                "rollout of {name} to {version} is stuck: Warning FailedAttachVolume \
                 Multi-Attach error for volume \"pvc-{name}-milvus\" Volume is already \
                 exclusively attached to one node and can't be attached to another; the new \
                 pod stays ContainerCreating and the old pod keeps serving"
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

    /// Milvus: `helm upgrade` of the release. A Deployment whose pod template changes (the
    /// image) is recreated: the standalone Deployment is `Recreate` with a ReadWriteOnce volume,
    /// so its pod stops before the new one starts. A node already running `version` (after a
    /// rolling update or migrate.sh) keeps its pod: Kubernetes restarts pods only when their
    /// template changes.
    pub fn helm_upgrade(self: &Arc<Self>, version: &str) -> Result<Vec<String>, OpError> {
        self.milvus_only("helm-upgrade")?;
        self.recreate(version, true)
    }

    /// Every node that does not run `version` stops, gets `version` and starts again: a Helm
    /// release or a StatefulSet recreated (Weaviate's 1.25 migration on Kubernetes deletes the
    /// StatefulSet so that every pod starts on the new version together). Returns the nodes
    /// restarted. `keep_current`: a node already running `version` is left alone.
    pub fn recreate(
        self: &Arc<Self>,
        version: &str,
        keep_current: bool,
    ) -> Result<Vec<String>, OpError> {
        if !matches!(self.product, Product::Milvus | Product::Weaviate) {
            return Err(OpError::Refused(format!(
                "recreate is a milvus or weaviate operation; this lab is {}",
                self.product
            )));
        }
        store_format(version).map_err(|e| OpError::BadRequest(e.to_string()))?;
        let todo: Vec<usize> = {
            let g = self.inner();
            (0..g.nodes.len())
                .filter(|&i| {
                    let n = &g.nodes[i];
                    !(keep_current && n.version == version.trim() && n.state == RunState::Running)
                })
                .collect()
        };
        for &idx in &todo {
            if matches!(
                self.inner().nodes[idx].state,
                RunState::Running | RunState::Starting
            ) {
                self.stop(idx)?;
            }
        }
        let mut names = Vec::new();
        for idx in todo {
            self.install(idx, version, false)?;
            self.start(idx)?;
            names.push(self.name_of(idx));
        }
        Ok(names)
    }

    /// Milvus: `migrate.sh -o migrate`: stop every component (live etcd sessions break the
    /// migration), back up the metadata, migrate it to the 2.2 format, start `target`. A
    /// `fail-migration` fault on a node fails it after the backup (exit 3): Milvus is left
    /// stopped on its old version, the backup kept for `-o rollback`.
    ///
    /// `cleanup` is `-d`: after a successful migration migrate.sh deletes the backup pod, the
    /// backup PVC and the ConfigMap (milvus-io/milvus deployments/migrate-meta/migrate.sh,
    /// `remove_migrate_pod_after_migrate`), so no backup is left for a rollback.
    pub fn migrate_sh(
        self: &Arc<Self>,
        target: &str,
        cleanup: bool,
    ) -> Result<Vec<String>, OpError> {
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
                // migrate.sh `wait_for_migrate_done`: the meta-migration pod's phase is
                // Failed -> "Migration is failed...", its log, exit 3 (milvus-io/milvus
                // deployments/migrate-meta/migrate.sh, v2.2.x).
                return Err(OpError::Internal(format!(
                    "migrate.sh: Migration is failed... (pod milvus-meta-migration of {}; exit \
                     3); Milvus is stopped and the metadata backup kept: roll back with -o \
                     rollback",
                    n.name
                )));
            }
            self.migrate_metadata(idx)?;
        }
        let mut names = Vec::new();
        for idx in 0..count {
            self.install(idx, target, false)?;
            self.start(idx)?;
            names.push(self.name_of(idx));
        }
        if cleanup {
            for n in &self.inner().nodes {
                let backup = metadata_backup(&n.dir);
                if backup.exists() {
                    std::fs::remove_file(&backup)
                        .map_err(|e| OpError::Internal(format!("{}: {e}", backup.display())))?;
                }
            }
        }
        Ok(names)
    }

    /// Milvus: `migrate.sh -o rollback -w <old image>`, as upstream runs it: every Milvus
    /// Deployment is scaled to 0 first, then `rollback_meta()` looks for the backup's
    /// `backup=succeed` annotation on the ConfigMap `milvus-meta-migration-config`, without the
    /// `-<instance>` suffix that `backup_meta()` annotates, finds none and exits 4 with "No
    /// backup exists, abort..." (milvus-io/milvus deployments/migrate-meta/migrate.sh). Milvus
    /// is left scaled to 0. After `-d true` the backup is gone as well.
    pub fn rollback_sh(self: &Arc<Self>, version: &str) -> Result<Vec<String>, OpError> {
        self.milvus_only("migrate.sh")?;
        store_format(version).map_err(|e| OpError::BadRequest(e.to_string()))?;
        for idx in 0..self.node_count() {
            if matches!(
                self.inner().nodes[idx].state,
                RunState::Running | RunState::Starting
            ) {
                self.stop(idx)?;
            }
        }
        let kept = self
            .inner()
            .nodes
            .iter()
            .all(|n| metadata_backup(&n.dir).exists());
        Err(OpError::Refused(format!(
            "migrate.sh: Checking whether backup exists... No backup exists, abort... (exit 4): \
             the ConfigMap milvus-meta-migration-config has no backup=succeed annotation{}; \
             Milvus is scaled to 0",
            if kept {
                " (the backup is annotated on milvus-meta-migration-config-<instance>)"
            } else {
                " and the backup PVC was deleted by -d"
            }
        )))
    }

    fn etcd_snapshot_path(&self, name: &str, node: &str) -> std::path::PathBuf {
        self.data_dir
            .join("etcd-snapshots")
            .join(format!("{name}-{node}.json"))
    }

    /// Milvus: `etcdctl snapshot save` of the release's etcd, where Milvus keeps its metadata.
    pub fn etcd_snapshot(&self, name: &str) -> Result<Vec<String>, OpError> {
        self.milvus_only("etcd-snapshot")?;
        if !crate::lab::store::valid_name(name) {
            return Err(OpError::BadRequest(format!("snapshot name {name:?}")));
        }
        let g = self.inner();
        let mut names = Vec::new();
        for n in &g.nodes {
            let store = g
                .stores
                .get(&n.store_key)
                .ok_or_else(|| OpError::Internal(format!("store {} is missing", n.store_key)))?;
            store.copy_to(&self.etcd_snapshot_path(name, &n.name))?;
            names.push(n.name.clone());
        }
        Ok(names)
    }

    /// Milvus: restores an etcd snapshot: Milvus stopped, etcd's keyspace back to the snapshot
    /// (`etcdutl snapshot restore`), Milvus started on `version`.
    pub fn etcd_restore(
        self: &Arc<Self>,
        name: &str,
        version: &str,
    ) -> Result<Vec<String>, OpError> {
        self.milvus_only("etcd-restore")?;
        store_format(version).map_err(|e| OpError::BadRequest(e.to_string()))?;
        let count = self.node_count();
        for idx in 0..count {
            let node = self.name_of(idx);
            if !self.etcd_snapshot_path(name, &node).exists() {
                return Err(OpError::NotFound(format!(
                    "etcd snapshot {name:?} not found for {node}"
                )));
            }
        }
        for idx in 0..count {
            if matches!(
                self.inner().nodes[idx].state,
                RunState::Running | RunState::Starting
            ) {
                self.stop(idx)?;
            }
        }
        let mut names = Vec::new();
        for idx in 0..count {
            let node = self.name_of(idx);
            {
                let mut g = self.inner();
                let key = g.nodes[idx].store_key.clone();
                let store = g
                    .stores
                    .get_mut(&key)
                    .ok_or_else(|| OpError::Internal(format!("store {key} is missing")))?;
                store.restore_from(&self.etcd_snapshot_path(name, &node))?;
            }
            self.install(idx, version, false)?;
            self.start(idx)?;
            names.push(node);
        }
        Ok(names)
    }
}

/// `POST {admin}/_lab/helm-upgrade` `{"version":"2.2.14"}`, `POST {admin}/_lab/recreate`
/// `{"version":...}` (every node restarted on it), `POST {admin}/_lab/migrate-sh`
/// `{"operation":"migrate"|"rollback","version":"...","cleanup":false}` (the version to start:
/// the target for migrate, the old one for rollback; `cleanup` is `-d true`), `POST
/// {admin}/_lab/etcd` `{"operation":"snapshot"|"restore","name":"...","version":"..."}`,
/// `GET {admin}/_lab/tools` (the helm and Kubernetes versions a real target's precondition
/// checks read).
pub(crate) fn routes() -> Router<LabShared> {
    Router::new()
        .route("/_lab/helm-upgrade", post(helm_upgrade))
        .route("/_lab/recreate", post(recreate))
        .route("/_lab/migrate-sh", post(migrate_sh))
        .route("/_lab/etcd", post(etcd))
        .route("/_lab/tools", get(tools))
}

#[derive(Deserialize)]
struct VersionBody {
    #[serde(default)]
    version: String,
    #[serde(default)]
    operation: Option<String>,
    /// migrate.sh `-d`.
    #[serde(default)]
    cleanup: bool,
    /// etcd snapshot name.
    #[serde(default)]
    name: String,
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

async fn recreate(State(s): State<LabShared>, body: Bytes) -> Response {
    answer(
        "recreate",
        parse(&body).and_then(|b| s.cluster.recreate(&b.version, false)),
    )
}

async fn etcd(State(s): State<LabShared>, body: Bytes) -> Response {
    let result = parse(&body).and_then(|b| match b.operation.as_deref() {
        Some("snapshot") => s.cluster.etcd_snapshot(&b.name),
        Some("restore") => s.cluster.etcd_restore(&b.name, &b.version),
        other => Err(OpError::BadRequest(format!(
            "operation {other:?}: expected snapshot or restore"
        ))),
    });
    answer("etcd", result)
}

async fn migrate_sh(State(s): State<LabShared>, body: Bytes) -> Response {
    let result = parse(&body).and_then(|b| match b.operation.as_deref() {
        None | Some("migrate") => s.cluster.migrate_sh(&b.version, b.cleanup),
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
