//! The cluster's state machine: every node's installed version, run state, role, read-only
//! flag and store, and the out-of-band operations on them (stop, start, install, backup, ...).
//!
//! One mutex guards it all and is never held across an `.await`: the lab is small, and a single
//! lock keeps the replication and the state transitions trivially consistent.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::config::{store_format, Product, Timing, Version};
use super::faults::{Fault, FaultSet};
use super::store::{valid_name, Store};
use super::LabError;

/// The first Milvus metadata format that 2.1 cannot read (2.2 changed segment-index metadata).
pub const MILVUS_META_2_2: u32 = 2002;

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
    pub generation: u64,
    pub running_since: Option<Instant>,
    pub requests: u64,
}

impl NodeState {
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
}

/// The node set plus everything shared by the node servers.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub product: Product,
    pub timing: Timing,
    pub data_dir: PathBuf,
    inner: Mutex<Inner>,
    faults: Mutex<FaultSet>,
    tasks: Mutex<JoinSet<()>>,
    closed: AtomicBool,
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
        let settled = Instant::now()
            .checked_sub(Duration::from_millis(timing.sync_settle_ms))
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
                generation: 0,
                running_since: None,
                requests: 0,
            };
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
        Ok(Cluster {
            product,
            timing,
            data_dir,
            inner: Mutex::new(Inner {
                nodes,
                stores,
                jobs: BTreeMap::new(),
                applied_index: 0,
            }),
            faults: Mutex::new(FaultSet::new()),
            tasks: Mutex::new(JoinSet::new()),
            closed: AtomicBool::new(false),
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

    // ----- faults -----

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

    // ----- views -----

    pub fn is_running(&self, idx: usize) -> bool {
        self.inner()
            .nodes
            .get(idx)
            .is_some_and(|n| n.state == RunState::Running)
    }

    /// Running and not held back by a `never-ready` fault.
    pub fn is_ready(&self, idx: usize) -> bool {
        let name = self.name_of(idx);
        let never = self.faults().never_ready(&name);
        !never && self.is_running(idx)
    }

    fn role_of(&self, g: &Inner, idx: usize) -> String {
        let node = &g.nodes[idx];
        if self.product == Product::Jahia {
            return node.base_role.clone();
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

    fn synchronized_in(&self, g: &Inner, idx: usize, no_sync: bool) -> bool {
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
        let no_sync = self.faults().no_sync();
        let g = self.inner();
        self.snapshot_in(&g, idx, no_sync)
    }

    pub fn snapshot_all(&self) -> Vec<NodeSnapshot> {
        let no_sync = self.faults().no_sync();
        let g = self.inner();
        (0..g.nodes.len())
            .filter_map(|i| self.snapshot_in(&g, i, no_sync))
            .collect()
    }

    fn snapshot_in(&self, g: &Inner, idx: usize, no_sync: bool) -> Option<NodeSnapshot> {
        let n = g.nodes.get(idx)?;
        let store = g.stores.get(&n.store_key);
        Some(NodeSnapshot {
            name: n.name.clone(),
            address: n.addr,
            group: n.group.clone(),
            version: n.version.clone(),
            role: self.role_of(g, idx),
            state: n.state,
            reason: n.reason.clone(),
            read_only: n.read_only,
            store_format: store.map_or(0, |s| s.file.format),
            schema: n.schema.clone(),
            synchronized: self.synchronized_in(g, idx, no_sync),
            marker: n.marker_path().exists(),
            mode: n.mode.clone(),
            allow_upgrade: n.allow_upgrade,
            requests: n.requests,
            keys: store.map_or(0, |s| s.file.data.len()),
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

    // ----- data plane -----

    pub fn kv_get(&self, idx: usize, key: &str) -> Result<Option<String>, KvError> {
        let mut g = self.inner();
        let node = g.nodes.get_mut(idx).ok_or(KvError::NotRunning)?;
        if node.state != RunState::Running {
            return Err(KvError::NotRunning);
        }
        node.requests += 1;
        let store_key = node.store_key.clone();
        Ok(g.stores
            .get(&store_key)
            .and_then(|s| s.file.data.get(key).cloned()))
    }

    pub fn kv_put(&self, idx: usize, key: &str, value: &str) -> Result<(), KvError> {
        let mut g = self.inner();
        let node = g.nodes.get_mut(idx).ok_or(KvError::NotRunning)?;
        if node.state != RunState::Running {
            return Err(KvError::NotRunning);
        }
        node.requests += 1;
        if node.read_only {
            return Err(KvError::ReadOnly);
        }
        let targets = self.replica_stores(&g, idx, true);
        for k in targets {
            if let Some(store) = g.stores.get_mut(&k) {
                store.file.data.insert(key.to_string(), value.to_string());
                store.save().map_err(|e| KvError::Internal(e.to_string()))?;
            }
        }
        g.applied_index += 1;
        Ok(())
    }

    /// The stores a write on `idx` reaches: its own, plus (except for Jahia, whose nodes share a
    /// database schema) those of the other nodes of its group — running ones only, or all.
    fn replica_stores(&self, g: &Inner, idx: usize, running_only: bool) -> BTreeSet<String> {
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

    // ----- lifecycle -----

    pub fn stop(&self, idx: usize) -> Result<(), OpError> {
        let mut g = self.inner();
        let n = g
            .nodes
            .get_mut(idx)
            .ok_or_else(|| OpError::NotFound("no such node".into()))?;
        n.state = RunState::Stopped;
        n.reason = None;
        n.generation += 1;
        n.running_since = None;
        Ok(())
    }

    fn crash(&self, idx: usize) {
        let mut g = self.inner();
        if let Some(n) = g.nodes.get_mut(idx) {
            n.state = RunState::Failed;
            n.reason = Some("crashed (fault)".into());
            n.generation += 1;
            n.running_since = None;
        }
    }

    /// Starts a stopped or failed node: returns at once; the node moves starting -> running (or
    /// failed) in the background.
    pub fn start(self: &std::sync::Arc<Self>, idx: usize) -> Result<(), OpError> {
        let generation = {
            let mut g = self.inner();
            let n = g
                .nodes
                .get_mut(idx)
                .ok_or_else(|| OpError::NotFound("no such node".into()))?;
            if matches!(n.state, RunState::Running | RunState::Starting) {
                return Err(OpError::Refused(format!(
                    "{} is already {}",
                    n.name,
                    n.state.as_str()
                )));
            }
            n.state = RunState::Starting;
            n.reason = None;
            n.generation += 1;
            n.running_since = None;
            n.generation
        };
        let me = self.clone();
        self.spawn(async move { me.finish_start(idx, generation).await });
        Ok(())
    }

    async fn finish_start(&self, idx: usize, generation: u64) {
        tokio::time::sleep(Duration::from_millis(self.timing.startup_ms)).await;
        let migration = {
            let mut g = self.inner();
            if g.nodes[idx].generation != generation {
                return;
            }
            match self.check_start(&mut g, idx) {
                Ok(m) => m,
                Err(reason) => return fail(&mut g.nodes[idx], reason),
            }
        };
        if let Some((from, to)) = migration {
            tokio::time::sleep(Duration::from_millis(self.timing.migration_ms)).await;
            let name = self.name_of(idx);
            let broken = self.faults().fail_migration(&name);
            let mut g = self.inner();
            if g.nodes[idx].generation != generation {
                return;
            }
            if broken {
                let reason = format!(
                    "store migration from format {from} to {to} failed; the store is left at \
                     format {from}"
                );
                return fail(&mut g.nodes[idx], reason);
            }
            let key = g.nodes[idx].store_key.clone();
            if let Some(store) = g.stores.get_mut(&key) {
                store.file.format = to;
                if let Err(e) = store.save() {
                    return fail(&mut g.nodes[idx], format!("store migration failed: {e}"));
                }
            }
        }
        let mut g = self.inner();
        if g.nodes[idx].generation != generation {
            return;
        }
        self.catch_up(&mut g, idx);
        let n = &mut g.nodes[idx];
        n.state = RunState::Running;
        n.running_since = Some(Instant::now());
    }

    /// The start-up checks of the installed version against the store; returns the store
    /// migration to run, if any.
    fn check_start(&self, g: &mut Inner, idx: usize) -> Result<Option<(u32, u32)>, String> {
        let (version, store_key) = {
            let n = &g.nodes[idx];
            (n.version.clone(), n.store_key.clone())
        };
        let vfmt = store_format(&version).map_err(|e| e.to_string())?;
        let sfmt = g
            .stores
            .get(&store_key)
            .map(|s| s.file.format)
            .ok_or_else(|| format!("store {store_key} is missing"))?;
        if sfmt > vfmt && !self.opens_newer_store(sfmt, vfmt) {
            return Err(downgrade_reason(sfmt, &version));
        }
        match self.product {
            Product::Milvus if sfmt < MILVUS_META_2_2 && vfmt >= MILVUS_META_2_2 => {
                return Err(format!(
                    "metadata format {sfmt} predates 2.2; run migrate-metadata before starting \
                     {version}"
                ));
            }
            Product::Neo4j if sfmt < vfmt && !g.nodes[idx].allow_upgrade => {
                return Err(format!(
                    "store format {sfmt} must be upgraded to format {vfmt}, which needs \
                     dbms.allow_upgrade=true"
                ));
            }
            Product::Jahia => self.jahia_join(g, idx)?,
            _ => {}
        }
        Ok((sfmt < vfmt).then_some((sfmt, vfmt)))
    }

    /// Jahia's rolling-upgrade marker: consumed at start-up, it resets discovery (so the node
    /// may run on another schema than the old cluster) and leaves full read-only mode.
    fn jahia_join(&self, g: &mut Inner, idx: usize) -> Result<(), String> {
        let marker = g.nodes[idx].marker_path();
        if marker.exists() {
            std::fs::remove_file(&marker)
                .map_err(|e| format!("cannot consume {}: {e}", marker.display()))?;
            g.nodes[idx].read_only = false;
            return Ok(());
        }
        let mine = g.nodes[idx].schema.clone().unwrap_or_default();
        let others: BTreeSet<String> = g
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, n)| *j != idx && n.state == RunState::Running)
            .filter_map(|(_, n)| n.schema.clone())
            .filter(|s| *s != mine)
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        let others: Vec<String> = others.into_iter().collect();
        Err(format!(
            "cluster conflict: {} is on schema {mine} while running nodes use schema {}; \
             rolling-upgrade marker missing",
            g.nodes[idx].name,
            others.join(", ")
        ))
    }

    /// A (re)started node catches up with a running peer of its group.
    fn catch_up(&self, g: &mut Inner, idx: usize) {
        if self.product == Product::Jahia {
            return;
        }
        let me = &g.nodes[idx];
        let peer = g
            .nodes
            .iter()
            .enumerate()
            .find(|(j, n)| *j != idx && n.group == me.group && n.state == RunState::Running)
            .map(|(_, n)| n.store_key.clone());
        let Some(peer) = peer else { return };
        let mine = me.store_key.clone();
        let Some(data) = g.stores.get(&peer).map(|s| s.file.data.clone()) else {
            return;
        };
        if let Some(store) = g.stores.get_mut(&mine) {
            store.file.data = data;
            if let Err(e) = store.save() {
                tracing::warn!("lab: catch-up of {mine} not saved: {e}");
            }
        }
    }

    pub fn install(&self, idx: usize, version: &str) -> Result<(), OpError> {
        Version::parse(version).map_err(|e| OpError::BadRequest(e.to_string()))?;
        let mut g = self.inner();
        let n = g
            .nodes
            .get_mut(idx)
            .ok_or_else(|| OpError::NotFound("no such node".into()))?;
        if matches!(n.state, RunState::Running | RunState::Starting) {
            return Err(OpError::Refused(format!(
                "cannot install {version} on {} while it is {}; stop it first",
                n.name,
                n.state.as_str()
            )));
        }
        n.version = version.trim().to_string();
        Ok(())
    }

    pub fn set_read_only(&self, idx: usize, on: bool) -> Result<(), OpError> {
        let mut g = self.inner();
        let n = g
            .nodes
            .get_mut(idx)
            .ok_or_else(|| OpError::NotFound("no such node".into()))?;
        n.read_only = on;
        Ok(())
    }

    /// Jahia's full read-only switch sent to the processing node: every running node of the
    /// same schema follows. Returns the names switched.
    pub fn set_read_only_cluster(&self, idx: usize, on: bool) -> Vec<String> {
        let mut g = self.inner();
        let Some(schema) = g.nodes.get(idx).map(|n| n.schema.clone()) else {
            return Vec::new();
        };
        let mut names = Vec::new();
        for (j, n) in g.nodes.iter_mut().enumerate() {
            if j == idx || (n.state == RunState::Running && n.schema == schema) {
                n.read_only = on;
                names.push(n.name.clone());
            }
        }
        names
    }

    fn backup_path(&self, name: &str) -> PathBuf {
        self.data_dir.join("backups").join(format!("{name}.json"))
    }

    /// Copies the node's store to the named backup (the whole group's data: it is replicated).
    pub fn backup(&self, idx: usize, name: &str) -> Result<PathBuf, OpError> {
        check_name("backup", name)?;
        let g = self.inner();
        let n = g
            .nodes
            .get(idx)
            .ok_or_else(|| OpError::NotFound("no such node".into()))?;
        let store = g
            .stores
            .get(&n.store_key)
            .ok_or_else(|| OpError::Internal(format!("store {} is missing", n.store_key)))?;
        let dest = self.backup_path(name);
        store.copy_to(&dest)?;
        Ok(dest)
    }

    /// Restores a backup: Neo4j into this stopped node only (`force` to overwrite data); other
    /// products into the node's whole replica set, like a cluster-wide restore.
    pub fn restore(&self, idx: usize, name: &str, force: bool) -> Result<u32, OpError> {
        check_name("backup", name)?;
        let src = self.backup_path(name);
        if !src.exists() {
            return Err(OpError::NotFound(format!("no backup named {name:?}")));
        }
        let mut g = self.inner();
        let n = g
            .nodes
            .get(idx)
            .ok_or_else(|| OpError::NotFound("no such node".into()))?;
        let targets = if self.product == Product::Neo4j {
            if matches!(n.state, RunState::Running | RunState::Starting) {
                return Err(OpError::Refused(format!(
                    "{} must be stopped before a restore",
                    n.name
                )));
            }
            let has_data = g
                .stores
                .get(&n.store_key)
                .is_some_and(|s| !s.file.data.is_empty());
            if has_data && !force {
                return Err(OpError::Refused(format!(
                    "{} already has a database; restore with force to replace it",
                    n.name
                )));
            }
            BTreeSet::from([n.store_key.clone()])
        } else {
            self.replica_stores(&g, idx, false)
        };
        let mut format = 0;
        for k in targets {
            if let Some(store) = g.stores.get_mut(&k) {
                store.restore_from(&src)?;
                format = store.file.format;
            }
        }
        g.applied_index += 1;
        Ok(format)
    }

    /// Jahia: copies database schema `from` to `to` (a real copy of the data file).
    pub fn copy_schema(&self, from: &str, to: &str) -> Result<(), OpError> {
        self.only(Product::Jahia, "copy-schema")?;
        check_name("schema", from)?;
        check_name("schema", to)?;
        if from == to {
            return Err(OpError::BadRequest(
                "cannot copy a schema onto itself".into(),
            ));
        }
        let mut g = self.inner();
        let to_key = format!("schema:{to}");
        if g.nodes
            .iter()
            .any(|n| n.store_key == to_key && n.state != RunState::Stopped)
        {
            return Err(OpError::Refused(format!(
                "schema {to} is in use by a running node"
            )));
        }
        let src = g
            .stores
            .get(&format!("schema:{from}"))
            .ok_or_else(|| OpError::NotFound(format!("no schema named {from:?}")))?;
        let dest_path = self.data_dir.join("schemas").join(to).join("store.json");
        src.copy_to(&dest_path)?;
        let store = Store::open_or_create(dest_path, src.file.format, &BTreeMap::new())?;
        g.stores.insert(to_key, store);
        Ok(())
    }

    /// Jahia: points a stopped node at a schema.
    pub fn set_schema(&self, idx: usize, schema: &str) -> Result<(), OpError> {
        self.only(Product::Jahia, "set-schema")?;
        check_name("schema", schema)?;
        let mut g = self.inner();
        let key = format!("schema:{schema}");
        if !g.stores.contains_key(&key) {
            return Err(OpError::NotFound(format!(
                "no schema named {schema:?}; copy-schema first"
            )));
        }
        let n = g
            .nodes
            .get_mut(idx)
            .ok_or_else(|| OpError::NotFound("no such node".into()))?;
        if matches!(n.state, RunState::Running | RunState::Starting) {
            return Err(OpError::Refused(format!(
                "{} must be stopped to change its schema",
                n.name
            )));
        }
        n.schema = Some(schema.to_string());
        n.store_key = key;
        Ok(())
    }

    /// Jahia: creates the empty `rolling-upgrade` marker in the node's data folder.
    pub fn create_marker(&self, idx: usize) -> Result<PathBuf, OpError> {
        self.only(Product::Jahia, "marker")?;
        let path = {
            let g = self.inner();
            g.nodes
                .get(idx)
                .ok_or_else(|| OpError::NotFound("no such node".into()))?
                .marker_path()
        };
        std::fs::write(&path, b"").map_err(|e| OpError::Internal(e.to_string()))?;
        Ok(path)
    }

    /// Neo4j: `dbms.mode` and `dbms.allow_upgrade`, taking effect at the next start.
    pub fn configure(
        &self,
        idx: usize,
        mode: Option<&str>,
        allow_upgrade: Option<bool>,
    ) -> Result<(), OpError> {
        let mode = match mode.map(|m| m.trim().to_ascii_uppercase()) {
            Some(m) if m == "SINGLE" || m == "CORE" => Some(m),
            Some(m) => {
                return Err(OpError::BadRequest(format!(
                    "mode {m:?} is not SINGLE or CORE"
                )))
            }
            None => None,
        };
        let mut g = self.inner();
        let n = g
            .nodes
            .get_mut(idx)
            .ok_or_else(|| OpError::NotFound("no such node".into()))?;
        if let Some(m) = mode {
            n.mode = m;
        }
        if let Some(a) = allow_upgrade {
            n.allow_upgrade = a;
        }
        Ok(())
    }

    /// Milvus: backs up the 2.1 metadata and migrates it to the 2.2 format (node stopped).
    pub fn migrate_metadata(&self, idx: usize) -> Result<u32, OpError> {
        self.only(Product::Milvus, "migrate-metadata")?;
        let mut g = self.inner();
        let (key, backup) = self.stopped_node(&g, idx, "migrate its metadata")?;
        let store = g
            .stores
            .get_mut(&key)
            .ok_or_else(|| OpError::Internal(format!("store {key} is missing")))?;
        if store.file.format >= MILVUS_META_2_2 {
            return Err(OpError::Refused(format!(
                "metadata is already in format {} (2.2 or later)",
                store.file.format
            )));
        }
        store.copy_to(&backup)?;
        store.file.format = MILVUS_META_2_2;
        store.save()?;
        Ok(MILVUS_META_2_2)
    }

    /// Milvus: puts back the metadata saved by `migrate_metadata`.
    pub fn rollback_metadata(&self, idx: usize) -> Result<u32, OpError> {
        self.only(Product::Milvus, "rollback-metadata")?;
        let mut g = self.inner();
        let (key, backup) = self.stopped_node(&g, idx, "roll back its metadata")?;
        if !backup.exists() {
            return Err(OpError::Refused(
                "no metadata backup to roll back to (migrate-metadata makes one)".into(),
            ));
        }
        let store = g
            .stores
            .get_mut(&key)
            .ok_or_else(|| OpError::Internal(format!("store {key} is missing")))?;
        store.restore_from(&backup)?;
        Ok(store.file.format)
    }

    fn stopped_node(
        &self,
        g: &Inner,
        idx: usize,
        what: &str,
    ) -> Result<(String, PathBuf), OpError> {
        let n = g
            .nodes
            .get(idx)
            .ok_or_else(|| OpError::NotFound("no such node".into()))?;
        if matches!(n.state, RunState::Running | RunState::Starting) {
            return Err(OpError::Refused(format!(
                "{} must be stopped to {what}",
                n.name
            )));
        }
        Ok((n.store_key.clone(), n.metadata_backup_path()))
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

    // ----- weaviate-style asynchronous backups -----

    pub fn job(&self, key: &str) -> Option<Job> {
        self.inner().jobs.get(key).cloned()
    }

    /// Starts a backup (`restore == false`) or a restore of backup `id`; it completes after a
    /// short delay, like a real one.
    pub fn start_job(
        self: &std::sync::Arc<Self>,
        idx: usize,
        id: &str,
        restore: bool,
    ) -> Result<(), OpError> {
        check_name("backup", id)?;
        let key = job_key(id, restore);
        {
            let mut g = self.inner();
            if g.jobs
                .get(&key)
                .is_some_and(|j| j.status == "STARTED" || !restore)
            {
                return Err(OpError::Refused(format!(
                    "{} {id:?} already exists",
                    if restore { "restore" } else { "backup" }
                )));
            }
            if restore && !self.backup_path(id).exists() {
                return Err(OpError::NotFound(format!("backup {id:?} not found")));
            }
            g.jobs.insert(
                key.clone(),
                Job {
                    status: "STARTED".into(),
                    error: None,
                },
            );
        }
        let me = self.clone();
        let id = id.to_string();
        self.spawn(async move {
            tokio::time::sleep(Duration::from_millis(me.timing.startup_ms)).await;
            let result = if restore {
                me.restore(idx, &id, true).map(|_| ())
            } else {
                me.backup(idx, &id).map(|_| ())
            };
            let mut g = me.inner();
            g.jobs.insert(
                key,
                match result {
                    Ok(()) => Job {
                        status: "SUCCESS".into(),
                        error: None,
                    },
                    Err(e) => Job {
                        status: "FAILED".into(),
                        error: Some(e.to_string()),
                    },
                },
            );
        });
        Ok(())
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
