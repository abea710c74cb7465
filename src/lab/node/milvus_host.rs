//! Milvus standalone installed on a host (procedures/milvus-standalone.toml): the operations its
//! real target runs with scripts/milvus-ctl.sh and scripts/milvus_data.py, on a one-node Milvus
//! lab. Each refuses what the real script refuses, in its words: a second server on the data
//! directory, a start of a version that is not the one installed, a copy of a live data
//! directory, a restore without a backup. The data is the node's store; "collections as
//! recorded" compares it with what `record-collections` saw before the stop.
//!
//! Why one server per data directory, and no copy of a live one (the sources, for the versions
//! the procedure runs): the PyPI package `milvus` 2.2.16 and 2.3.5 (milvus-io/milvus-lite,
//! "Embeded Milvus") writes the server's `milvus.yaml` from its `milvus/data/config.yaml.template`
//! with `etcd.use.embed: true` ("Whether to enable embedded Etcd (an in-process EtcdServer)")
//! and puts `etcd.data.dir` and `rocksmq.path` under the data directory
//! (`milvus/__init__.py` `resolve_storage`: `<data>/data/etcd.data`, `<data>/data/rocketmq` in
//! 2.2.16, `<data>/data/rocksmq` in 2.3.5). Milvus opens that RocksMQ path as a RocksDB
//! (milvus-io/milvus `internal/mq/mqimpl/rocksmq/server/rocksmq_impl.go` `NewRocksMQ`,
//! `gorocksdb.OpenDb`, 2.2 branch), and RocksDB lets one process hold a database's `LOCK` file:
//! a second process's open fails with "While lock file: …/LOCK: Resource temporarily
//! unavailable" (facebook/rocksdb `env/fs_posix.cc` `PosixFileSystem::LockFile`); the embedded
//! etcd's bbolt backend takes an exclusive flock on `member/snap/db` (etcd-io/bbolt
//! `bolt_unix.go` `flock`). Both stores live in the server process and write as it runs, so
//! their files are only a consistent copy once it has stopped (scripts/milvus-ctl.sh refuses
//! both, by the launcher's pid, before Milvus would).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Cluster, Inner, NodeState, OpError, RunState};
use crate::lab::store::{read_store_file, StoreFile};

/// What `record-collections` keeps (milvus_data.py `record`: per collection its row count and
/// a digest of its rows; the lab's one collection is the node's data).
#[derive(Debug, Serialize, Deserialize)]
struct Recorded {
    version: String,
    rows: BTreeMap<String, String>,
}

impl Cluster {
    /// The standalone's node `idx` for operation `op`. The standalone operations need a
    /// standalone: one node. A Milvus lab of several nodes plays a cluster's Deployments, which
    /// no host install matches.
    fn standalone<'a>(&self, g: &'a Inner, idx: usize, op: &str) -> Result<&'a NodeState, OpError> {
        self.milvus_only(op)?;
        if g.nodes.len() != 1 {
            return Err(OpError::Refused(format!(
                "{op}: this Milvus lab is a cluster of {} Deployments, not a standalone install \
                 (start the lab with --nodes 1)",
                g.nodes.len()
            )));
        }
        g.node(idx)
    }

    fn recorded_path(n: &NodeState) -> PathBuf {
        n.dir.join("recorded.json")
    }

    /// The data directory's backup (milvus-ctl.sh `backup ROOT DEST`: DEST/data).
    fn data_backup_path(&self, n: &NodeState) -> PathBuf {
        self.backup_path(&format!("standalone-data-{}", n.name))
    }

    /// A running server that answers queries (not reloading its collections after a start),
    /// or the error a pymilvus client gets.
    fn serving(&self, g: &Inner, idx: usize) -> Result<(), OpError> {
        connectable(g.node(idx)?)?;
        if self.reloading(g, idx) {
            return Err(OpError::Refused(super::KvError::NotLoaded.to_string()));
        }
        Ok(())
    }

    fn store_of<'a>(g: &'a Inner, n: &NodeState) -> Result<&'a StoreFile, OpError> {
        g.stores
            .get(&n.store_key)
            .map(|s| &s.file)
            .ok_or_else(|| OpError::Internal(format!("store {} is missing", n.store_key)))
    }

    /// milvus_data.py `record`: flush and record the collections (here: the node's rows).
    pub fn record_collections(&self, idx: usize) -> Result<usize, OpError> {
        let g = self.inner();
        let n = self.standalone(&g, idx, "record-collections")?;
        self.serving(&g, idx)?;
        let recorded = Recorded {
            version: n.version.clone(),
            rows: Self::store_of(&g, n)?.data.clone(),
        };
        let path = Self::recorded_path(n);
        let text = serde_json::to_vec_pretty(&recorded)
            .map_err(|e| OpError::Internal(format!("cannot encode the record: {e}")))?;
        std::fs::write(&path, text)
            .map_err(|e| OpError::Internal(format!("{}: {e}", path.display())))?;
        Ok(recorded.rows.len())
    }

    /// milvus_data.py `verify`: the server answers queries and has the rows recorded. Returns
    /// what it found, or why not (the first line is the reason, as the script prints it).
    pub fn collections_as_recorded(&self, idx: usize) -> Result<String, OpError> {
        let g = self.inner();
        let n = self.standalone(&g, idx, "collections-as-recorded")?;
        let path = Self::recorded_path(n);
        let text = std::fs::read(&path).map_err(|e| {
            OpError::Refused(format!("no recorded row counts in {}: {e}", path.display()))
        })?;
        let recorded: Recorded = serde_json::from_slice(&text).map_err(|e| {
            OpError::Refused(format!("no recorded row counts in {}: {e}", path.display()))
        })?;
        self.serving(&g, idx)?;
        let now = &Self::store_of(&g, n)?.data;
        if *now != recorded.rows {
            let differ = recorded
                .rows
                .iter()
                .filter(|(k, v)| now.get(*k) != Some(*v))
                .count();
            return Err(OpError::Refused(format!(
                "collection lab: {} rows, recorded {} ({differ} recorded rows differ or are \
                 missing)",
                now.len(),
                recorded.rows.len()
            )));
        }
        Ok(format!("collection lab: {} rows as recorded", now.len()))
    }

    /// milvus_data.py `load`: loads what was loaded (a no-op once it is: the lab's collection
    /// is always loaded; a restarted server still reloads it on its own for a while).
    pub fn load_collections(&self, idx: usize) -> Result<String, OpError> {
        let g = self.inner();
        connectable(self.standalone(&g, idx, "load-collections")?)?;
        Ok("collection lab: already loaded, left so".into())
    }

    /// milvus_data.py `search`: a search answers (not while the collection reloads).
    pub fn search_collections(&self, idx: usize) -> Result<String, OpError> {
        let g = self.inner();
        self.standalone(&g, idx, "search-collections")?;
        self.serving(&g, idx)?;
        Ok("collection lab: a search answers".into())
    }

    /// milvus-ctl.sh `backup`: a cold copy of the data directory, refused while Milvus runs
    /// (a copy of a live etcd and RocksMQ is not a backup: both are in-process stores in the
    /// data directory, see the module's sources) or over an earlier backup.
    pub fn backup_data(&self, idx: usize) -> Result<String, OpError> {
        let g = self.inner();
        let n = self.standalone(&g, idx, "backup-data")?;
        stopped(n, "a copy of a live etcd and RocksMQ is not a backup")?;
        let dest = self.data_backup_path(n);
        if dest.exists() {
            return Err(OpError::Refused(format!(
                "{} already exists: refusing to overwrite an earlier backup",
                dest.display()
            )));
        }
        let store = g
            .stores
            .get(&n.store_key)
            .ok_or_else(|| OpError::Internal(format!("store {} is missing", n.store_key)))?;
        store.copy_to(&dest)?;
        Ok(format!(
            "backed up the data of {} to {}: {} rows",
            n.name,
            dest.display(),
            store.file.data.len()
        ))
    }

    /// milvus-ctl.sh `check-backup`: the backup has the same contents as the data directory.
    pub fn check_backup(&self, idx: usize) -> Result<String, OpError> {
        let g = self.inner();
        let n = self.standalone(&g, idx, "check-backup")?;
        let dest = self.data_backup_path(n);
        let backup = read_store_file(&dest)
            .map_err(|e| OpError::Refused(format!("the backup cannot be read: {e}")))?;
        if backup != *Self::store_of(&g, n)? {
            return Err(OpError::Refused(format!(
                "the backup differs from the data of {}",
                n.name
            )));
        }
        Ok(format!("{} matches the data", dest.display()))
    }

    /// milvus-ctl.sh `restore`: the data directory back from the backup (Milvus stopped; a
    /// missing backup leaves the data as it is).
    pub fn restore_data(&self, idx: usize) -> Result<String, OpError> {
        let mut g = self.inner();
        let n = self.standalone(&g, idx, "restore-data")?;
        stopped(n, "stop it first")?;
        let key = n.store_key.clone();
        let src = self.data_backup_path(n);
        if !src.exists() {
            return Err(OpError::Refused(format!(
                "{}: No such file or directory; nothing restored: the backup is missing",
                src.display()
            )));
        }
        let store = g
            .stores
            .get_mut(&key)
            .ok_or_else(|| OpError::Internal(format!("store {key} is missing")))?;
        store.restore_from(&src)?;
        Ok(format!(
            "restored the data from {}: {} rows, format {}",
            src.display(),
            store.file.data.len(),
            store.file.format
        ))
    }

    /// milvus-ctl.sh `start ... VERSION`: refused while Milvus runs (a second server on the
    /// same data directory: its embedded etcd and RocksMQ are one process's — RocksDB's `LOCK`,
    /// bbolt's flock; the module's sources) or when the
    /// installed version is not `version`; else starts it and waits until it is healthy or
    /// has exited, saying why in its own words (a start on data a newer version wrote fails:
    /// Milvus cannot downgrade; milvus-io/milvus discussion #54048, "downgrade is not
    /// supported ... backup and restore to an older cluster", as docs/seed-fidelity.md cites).
    pub async fn start_milvus(
        self: &Arc<Self>,
        idx: usize,
        version: &str,
    ) -> Result<String, OpError> {
        {
            let g = self.inner();
            let n = self.standalone(&g, idx, "start-milvus")?;
            if n.runs() {
                return Err(OpError::Refused(format!(
                    "milvus already runs on {} ({} {}): one server per data directory",
                    n.name,
                    n.version,
                    n.state.as_str()
                )));
            }
            if n.version != version.trim() {
                return Err(OpError::Refused(format!(
                    "{} is milvus {}, not {version}",
                    n.name, n.version
                )));
            }
        }
        self.start(idx)?;
        let started = Instant::now();
        // The lab's own start-up and migration, with room to spare (the real script's
        // deadline is the target's: 240 s).
        let deadline = Duration::from_millis(
            (self.timing.startup_ms + self.timing.migration_ms)
                .saturating_mul(4)
                .max(5_000),
        );
        loop {
            let (state, reason) = {
                let g = self.inner();
                let n = g.node(idx)?;
                (n.state, n.reason.clone())
            };
            match state {
                RunState::Running if self.is_ready(idx) => {
                    return Ok(format!(
                        "started milvus {version}; healthy after {} ms",
                        started.elapsed().as_millis()
                    ))
                }
                RunState::Failed | RunState::Stopped => {
                    return Err(OpError::Refused(format!(
                        "milvus {version} on {} exited before it was healthy: {}",
                        self.name_of(idx),
                        reason.unwrap_or_else(|| "stopped".into())
                    )))
                }
                _ => {}
            }
            if started.elapsed() > deadline {
                return Err(OpError::Refused(format!(
                    "milvus {version} on {} not healthy within {} s; still running: stop it or \
                     wait",
                    self.name_of(idx),
                    deadline.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A server a pymilvus client can connect to, or the error it gets: `connections.connect`
/// against a closed port (milvus_data.py exits 2): pymilvus 2.2.x
/// `pymilvus/client/grpc_handler.py` `_wait_for_channel_ready`.
fn connectable(n: &NodeState) -> Result<(), OpError> {
    if n.state == RunState::Running {
        Ok(())
    } else {
        Err(OpError::Refused(format!(
            "Fail connecting to server on {}. Timeout",
            n.addr
        )))
    }
}

/// Refused while Milvus runs (or starts) on the node: milvus-ctl.sh works on the data
/// directory of a stopped server only; `why` is the script's reason.
fn stopped(n: &NodeState, why: &str) -> Result<(), OpError> {
    if n.runs() {
        Err(OpError::Refused(format!(
            "milvus still runs on {}: {why}",
            n.name
        )))
    } else {
        Ok(())
    }
}
