//! Backups and restores: the synchronous ones (Neo4j, Jahia) and the weaviate-style
//! asynchronous jobs.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{check_name, job_key, Cluster, Job, OpError, RunState};
use crate::lab::config::Product;

/// Neo4j's `dbms.backup.address`: where a server's backup service listens.
///
/// Neo4j 3.x binds it to `127.0.0.1:6362` unless neo4j.conf says otherwise (3.3 operations
/// manual, "Backup": "the default is 127.0.0.1:6362"; `OnlineBackupSettings.online_backup_server`),
/// so a backup taken from another host (`neo4j-admin backup --from=blue1:6362`, as the
/// causal-cluster procedure takes every backup, from its backup host) cannot connect. The
/// lab's servers start as the procedure's `prepare` step requires them: listening on every
/// interface; `config` `{"backup_address":"127.0.0.1:6362"}` and a restart put one back on
/// the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackupAddress {
    host: String,
    port: u16,
}

impl BackupAddress {
    /// What `prepare` asks for: every interface, the default port.
    pub fn prepared() -> BackupAddress {
        BackupAddress {
            host: "0.0.0.0".into(),
            port: 6362,
        }
    }

    /// Whether another host reaches it at `<server>:6362`, where the procedures' bindings
    /// (`neo4j-admin backup --from=<server>:6362`) look for it.
    fn reachable_remotely(&self) -> bool {
        let loopback = self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        !loopback && self.port == 6362
    }
}

impl std::str::FromStr for BackupAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("backup_address {s:?} is not host:port");
        let (host, port) = s.trim().rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse::<u16>().map_err(|_| bad())?;
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(BackupAddress {
            host: host.trim_start_matches('[').trim_end_matches(']').into(),
            port,
        })
    }
}

impl Cluster {
    pub(super) fn backup_path(&self, name: &str) -> PathBuf {
        self.data_dir.join("backups").join(format!("{name}.json"))
    }

    /// Copies the node's store to the named backup (the whole group's data: it is replicated).
    pub fn backup(&self, idx: usize, name: &str) -> Result<PathBuf, OpError> {
        check_name("backup", name)?;
        let g = self.inner();
        let n = g.node(idx)?;
        if self.product == Product::Neo4j && !n.backup_listen.reachable_remotely() {
            // What neo4j-admin says when nothing answers at --from (3.x OnlineBackupCommand:
            // "Backup failed: " + the cause; com/Client.java: "<client> could not connect from
            // <origin> to <destination>", the origin null as BackupService passes none).
            return Err(OpError::Refused(format!(
                "Backup failed: BackupClient could not connect from null to {}/{}:6362",
                n.name,
                n.addr.ip()
            )));
        }
        let store = g
            .stores
            .get(&n.store_key)
            .ok_or_else(|| OpError::Internal(format!("store {} is missing", n.store_key)))?;
        let dest = self.backup_path(name);
        if self.places_shards(&g) {
            // A Weaviate backup takes every shard, each from a node holding it.
            let file = crate::lab::store::StoreFile {
                format: store.file.format,
                data: self.weaviate_collection(&g, idx),
            };
            crate::lab::store::write_store_file(&dest, &file)?;
        } else {
            store.copy_to(&dest)?;
        }
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
        let n = g.node(idx)?;
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
        // The restore recreates the backup's collections.
        g.collections_deleted = false;
        if self.places_shards(&g) {
            // Each object back on its shard's replicas only.
            let data = crate::lab::store::read_store_file(&src)?.data;
            self.weaviate_place(&mut g, idx, &data)?;
        }
        g.applied_index += 1;
        Ok(format)
    }

    pub fn job(&self, key: &str) -> Option<Job> {
        self.inner().jobs.get(key).cloned()
    }

    /// Starts a backup (`restore == false`) or a restore of backup `id`; it completes after a
    /// short delay, like a real one.
    pub fn start_job(self: &Arc<Self>, idx: usize, id: &str, restore: bool) -> Result<(), OpError> {
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
                let allowed = me.check_restore_target(&me.inner());
                allowed.and_then(|()| me.restore(idx, &id, true).map(|_| ()))
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
