//! The cluster's state machine: every node's installed version, run state, role, read-only
//! flag and store, and the out-of-band operations on them (stop, start, install, backup, ...).
//!
//! One mutex guards it all and is never held across an `.await`: the lab is small, and a single
//! lock keeps the replication and the state transitions trivially consistent.
//!
//! This module holds the state types and the cluster's construction; the operations live in
//! one submodule per idea: [`lifecycle`] (stop, start, install), [`views`] (roles, snapshots),
//! [`data_plane`] (`/kv`), [`faults`], [`backup`] (backups, restores, asynchronous jobs),
//! [`jahia`] (schemas, marker, full read-only), [`milvus`] (metadata migration),
//! [`milvus_host`] (a standalone installed on a host: data checks, cold backup, restore,
//! versioned start), [`neo4j`] (the core group's Raft quorum), [`weaviate`] (Raft quorum,
//! the pre-Raft way back, collections) and [`weaviate_replicas`] (shards, replicas,
//! consistency levels).

mod backup;
mod data;
mod data_plane;
mod faults;
mod jahia;
mod lifecycle;
mod milvus;
mod milvus_host;
mod neo4j;
mod views;
mod weaviate;
mod weaviate_replicas;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::config::{store_format, Product, Timing};
use super::faults::FaultSet;
use super::store::{valid_name, Store};
use super::LabError;

/// The first Milvus metadata format that 2.1 cannot read (2.2 changed segment-index metadata).
pub const MILVUS_META_2_2: u32 = 2002;

pub(crate) use data::{DataRequest, DataRuntime};
pub use weaviate::LAB_COLLECTION;
pub(crate) use weaviate::WEAVIATE_RAFT;
pub use weaviate_replicas::Consistency;

/// A node's process state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Stopped,
    Starting,
    Running,
    Failed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Stopped => "stopped",
            RunState::Starting => "starting",
            RunState::Running => "running",
            RunState::Failed => "failed",
        }
    }
}

/// One node as tests and the admin API see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSnapshot {
    pub name: String,
    pub address: SocketAddr,
    pub group: Option<String>,
    pub version: String,
    pub role: String,
    pub state: RunState,
    /// Why the node failed or refused to start.
    pub reason: Option<String>,
    pub read_only: bool,
    pub store_format: u32,
    /// Jahia: the database schema the node points at.
    pub schema: Option<String>,
    /// Whether the node's cluster (its group) is synchronized.
    pub synchronized: bool,
    /// Jahia: whether the `rolling-upgrade` marker file is present.
    pub marker: bool,
    /// Neo4j: `dbms.mode` (SINGLE or CORE).
    pub mode: String,
    pub allow_upgrade: bool,
    /// Data-plane (`/kv`) requests this node has answered.
    pub requests: u64,
    /// Number of keys in the node's store.
    pub keys: usize,
    /// Jahia: the HTTP sessions the node holds in memory (lost when it stops).
    #[serde(default)]
    pub http_sessions: usize,
}

/// Why an operation was not done; maps to an HTTP status in the admin API.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The cluster is not in a state that allows it (409).
    #[error("{0}")]
    Refused(String),
    /// The request itself is wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such node, backup or schema (404).
    #[error("{0}")]
    NotFound(String),
    /// The lab itself failed (500).
    #[error("{0}")]
    Internal(String),
}

impl From<LabError> for OpError {
    fn from(e: LabError) -> Self {
        OpError::Internal(e.to_string())
    }
}

/// Why a data-plane request was not served.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("node is not running")]
    NotRunning,
    #[error("read-only")]
    ReadOnly,
    /// Milvus's words (2.3.5, pymilvus query) for a query its query node cannot serve yet.
    #[error("failed to query: collection not loaded")]
    NotLoaded,
    /// Neo4j: the core group lost its Raft quorum, so no leader commits a write.
    #[error("{0}")]
    NoLeader(String),
    /// Weaviate: too few of the object's shard replicas reachable for the consistency level,
    /// or its one owner down (factor 1), in Weaviate's words ([`weaviate_replicas`]).
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

#[derive(Debug)]
pub(crate) struct NodeState {
    pub name: String,
    pub group: Option<String>,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub version: String,
    /// Jahia: processing/member. Others: `leader` marks the preferred leader.
    pub base_role: String,
    pub state: RunState,
    pub reason: Option<String>,
    pub read_only: bool,
    pub store_key: String,
    pub schema: Option<String>,
    pub mode: String,
    pub allow_upgrade: bool,
    /// Neo4j: `dbms.backup.address` as neo4j.conf says it ([`backup::BackupAddress`]).
    pub backup_address: backup::BackupAddress,
    /// Neo4j: the address the backup service listens on: the setting as it was at the last
    /// start (Neo4j reads its configuration at start-up).
    pub backup_listen: backup::BackupAddress,
    pub generation: u64,
    pub running_since: Option<Instant>,
    pub requests: u64,
    /// Weaviate: POST /v1/cluster/schema-v1 stored the metadata in the pre-Raft format, so a
    /// pre-1.25 version may start on this node's Raft-era store once.
    pub schema_v1: bool,
    /// A data personality's `[node]` variables.
    pub vars: BTreeMap<String, serde_json::Value>,
    /// Per `[[transition]]`: since when its condition has held on this node.
    pub since: Vec<Option<Instant>>,
    /// Jahia: the HTTP sessions this node's JVM holds ([`jahia::HttpSessions`]).
    pub http_sessions: jahia::HttpSessions,
    /// Jahia: the `jahia.node.properties` settings the node read at its last start.
    pub jahia_props: Option<jahia::NodeProperties>,
}

impl NodeState {
    /// Its process runs or is starting (what a second server, or a copy of live data, would
    /// collide with).
    fn runs(&self) -> bool {
        matches!(self.state, RunState::Running | RunState::Starting)
    }

    fn marker_path(&self) -> PathBuf {
        self.dir.join("rolling-upgrade")
    }

    fn metadata_backup_path(&self) -> PathBuf {
        self.dir.join("metadata-backup.json")
    }
}

/// A weaviate-style asynchronous backup or restore.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Job {
    pub status: String,
    pub error: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub nodes: Vec<NodeState>,
    pub stores: BTreeMap<String, Store>,
    pub jobs: BTreeMap<String, Job>,
    pub applied_index: u64,
    /// Weaviate: the collections were deleted (DELETE /v1/schema/{class}); a restore may
    /// recreate them.
    pub collections_deleted: bool,
    /// Weaviate: the lab collection's replication factor (0: a replica on every node).
    pub weaviate_factor: usize,
    /// A data personality's `[cluster]` variables.
    pub vars: BTreeMap<String, serde_json::Value>,
    /// Gossip held since then ([`Cluster::hold_gossip`]): a node started since is in no
    /// peer's member list until the hold is released.
    pub gossip_held_since: Option<std::time::Instant>,
}

impl Inner {
    /// Node `idx`, or the "no such node" (404) a request for a node the lab lacks gets.
    pub(crate) fn node(&self, idx: usize) -> Result<&NodeState, OpError> {
        let len = self.nodes.len();
        self.nodes.get(idx).ok_or_else(|| no_such_node(idx, len))
    }

    /// [`Inner::node`], to change it.
    pub(crate) fn node_mut(&mut self, idx: usize) -> Result<&mut NodeState, OpError> {
        let len = self.nodes.len();
        self.nodes
            .get_mut(idx)
            .ok_or_else(|| no_such_node(idx, len))
    }
}

fn no_such_node(idx: usize, len: usize) -> OpError {
    OpError::NotFound(format!(
        "no such node: index {idx}, and the lab has {len} nodes"
    ))
}

/// The node set plus everything shared by the node servers.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub product: Product,
    pub timing: Timing,
    pub data_dir: PathBuf,
    /// Neo4j: the credentials its HTTP endpoints require ([`crate::lab::neo4j_auth`]).
    pub neo4j_auth: Option<crate::lab::neo4j_auth::Credentials>,
    inner: Mutex<Inner>,
    faults: Mutex<FaultSet>,
    tasks: Mutex<JoinSet<()>>,
    closed: AtomicBool,
    /// The data personality this lab plays, if any (`procedures/labs/<product>.toml`).
    pub(crate) data: Option<DataRuntime>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A node to create: the lab decides names, groups and versions.
pub(crate) struct NodeSpec {
    pub name: String,
    pub group: Option<String>,
    pub addr: SocketAddr,
    pub version: String,
    pub base_role: String,
    /// Start out running (the old cluster) or stopped (neo4j's green group).
    pub running: bool,
    /// Data a fresh store starts with.
    pub seed: BTreeMap<String, String>,
}

impl Cluster {
    pub fn new(
        product: Product,
        timing: Timing,
        data_dir: PathBuf,
        specs: Vec<NodeSpec>,
    ) -> Result<Cluster, LabError> {
        let mut nodes = Vec::new();
        let mut stores = BTreeMap::new();
        // Opening the cluster "settled": it has been up for a while already.
        // Settled and known to every peer (see `Cluster::knows`) from the start.
        let settled = Instant::now()
            .checked_sub(Duration::from_millis(
                timing.sync_settle_ms.saturating_mul(2),
            ))
            .unwrap_or_else(Instant::now);
        for spec in specs {
            let dir = data_dir.join(&spec.name);
            std::fs::create_dir_all(&dir).map_err(|e| LabError::Io {
                path: dir.clone(),
                source: e,
            })?;
            let format = store_format(&spec.version)?;
            let (store_key, schema, path) = if product == Product::Jahia {
                let p = data_dir.join("schemas").join("A").join("store.json");
                ("schema:A".to_string(), Some("A".to_string()), p)
            } else {
                let key = format!("node:{}", spec.name);
                (key, None, dir.join("store.json"))
            };
            if !stores.contains_key(&store_key) {
                stores.insert(
                    store_key.clone(),
                    Store::open_or_create(path, format, &spec.seed)?,
                );
            }
            let mut node = NodeState {
                name: spec.name,
                group: spec.group,
                addr: spec.addr,
                dir,
                version: spec.version,
                base_role: spec.base_role,
                state: RunState::Stopped,
                reason: None,
                read_only: false,
                store_key,
                schema,
                mode: "CORE".into(),
                allow_upgrade: false,
                backup_address: backup::BackupAddress::prepared(),
                backup_listen: backup::BackupAddress::prepared(),
                generation: 0,
                running_since: None,
                requests: 0,
                schema_v1: false,
                vars: BTreeMap::new(),
                since: Vec::new(),
                http_sessions: jahia::HttpSessions::default(),
                jahia_props: None,
            };
            if product == Product::Jahia {
                // The cluster as it was installed: each node's release configured for it.
                let processing = node.base_role == "processing";
                jahia::write_installed_config(&node.dir, &node.version, &node.name, processing)
                    .map_err(LabError::Config)?;
                node.jahia_props = jahia::read_node_properties(&node.dir, &node.version).ok();
            }
            if spec.running {
                // A data dir reused from an earlier run may hold a newer store.
                let sfmt = stores
                    .get(&node.store_key)
                    .map_or(format, |s| s.file.format);
                if sfmt > format {
                    node.state = RunState::Failed;
                    node.reason = Some(downgrade_reason(sfmt, &node.version));
                } else {
                    node.state = RunState::Running;
                    node.running_since = Some(settled);
                }
            }
            nodes.push(node);
        }
        let neo4j_auth = match product {
            Product::Neo4j => Some(crate::lab::neo4j_auth::Credentials::create(&data_dir)?),
            _ => None,
        };
        Ok(Cluster {
            product,
            timing,
            neo4j_auth,
            data_dir,
            inner: Mutex::new(Inner {
                nodes,
                stores,
                jobs: BTreeMap::new(),
                applied_index: 0,
                collections_deleted: false,
                weaviate_factor: 0,
                vars: BTreeMap::new(),
                gossip_held_since: None,
            }),
            faults: Mutex::new(FaultSet::new()),
            tasks: Mutex::new(JoinSet::new()),
            closed: AtomicBool::new(false),
            data: None,
        })
    }

    pub(crate) fn inner(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    fn faults(&self) -> MutexGuard<'_, FaultSet> {
        lock(&self.faults)
    }

    /// Runs a background task owned by the cluster (aborted at shutdown).
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&self, f: F) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        let mut set = lock(&self.tasks);
        while set.try_join_next().is_some() {}
        set.spawn(f);
    }

    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let mut set = std::mem::take(&mut *lock(&self.tasks));
        set.shutdown().await;
    }

    /// Resolves once no store's file is being written from the blocking pool: what the lab
    /// waits for before it leaves (or removes) its data directory.
    pub async fn stores_idle(&self) {
        let idle: Vec<_> = self.inner().stores.values().map(Store::idle).collect();
        for store in idle {
            store.await;
        }
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.inner().nodes.iter().position(|n| n.name == name)
    }

    pub fn name_of(&self, idx: usize) -> String {
        self.inner()
            .nodes
            .get(idx)
            .map(|n| n.name.clone())
            .unwrap_or_default()
    }

    fn node_idx(&self, name: &str) -> Result<usize, OpError> {
        self.index_of(name)
            .ok_or_else(|| OpError::NotFound(format!("no node named {name:?}")))
    }

    fn only(&self, product: Product, op: &str) -> Result<(), OpError> {
        if self.product == product {
            Ok(())
        } else {
            Err(OpError::Refused(format!(
                "{op} is a {product} operation; this lab is {}",
                self.product
            )))
        }
    }
}

pub(crate) fn job_key(id: &str, restore: bool) -> String {
    format!("{}/{id}", if restore { "restore" } else { "backup" })
}

fn fail(n: &mut NodeState, reason: String) {
    n.state = RunState::Failed;
    n.reason = Some(reason);
    n.running_since = None;
}

fn downgrade_reason(sfmt: u32, version: &str) -> String {
    format!(
        "store format {sfmt} is newer than version {version} supports; downgrade is not possible"
    )
}

fn check_name(what: &str, name: &str) -> Result<(), OpError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(OpError::BadRequest(format!(
            "{what} name {name:?} must be 1-64 letters, digits, '-' or '_'"
        )))
    }
}

/// The path of a node's data folder (tests look at markers and stores there).
pub fn node_dir(data_dir: &Path, node: &str) -> PathBuf {
    data_dir.join(node)
}
