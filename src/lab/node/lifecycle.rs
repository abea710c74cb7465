//! A node's lifecycle: stop, start (with the start-up checks of the installed version against
//! the store and the store migration), catch-up, installing a version and its settings.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::data::{Hook, Reason};
use super::{downgrade_reason, fail, Cluster, Inner, OpError, RunState, MILVUS_META_2_2};
use crate::lab::config::{store_format, Product, Version};

impl Cluster {
    pub fn stop(&self, idx: usize) -> Result<(), OpError> {
        let mut g = self.inner();
        let n = g.node_mut(idx)?;
        n.state = RunState::Stopped;
        n.reason = None;
        n.generation += 1;
        n.running_since = None;
        self.data_hook(&mut g, idx, Hook::Stop);
        Ok(())
    }

    /// Starts a stopped or failed node: returns at once; the node moves starting -> running (or
    /// failed) in the background.
    pub fn start(self: &Arc<Self>, idx: usize) -> Result<(), OpError> {
        let generation = {
            let mut g = self.inner();
            let n = g.node_mut(idx)?;
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

    pub(super) async fn finish_start(&self, idx: usize, generation: u64) {
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
                let reason = self
                    .data_reason(&g, idx, Reason::FailMigration, from, to)
                    .unwrap_or_else(|| super::faults::migration_failure(self.product, from, to));
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
        n.backup_listen = n.backup_address.clone();
        self.data_hook(&mut g, idx, Hook::Running);
    }

    /// The start-up checks of the installed version against the store; returns the store
    /// migration to run, if any.
    pub(super) fn check_start(
        &self,
        g: &mut Inner,
        idx: usize,
    ) -> Result<Option<(u32, u32)>, String> {
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
        if sfmt > vfmt
            && !self.opens_newer_store(sfmt, vfmt)
            && !self.schema_v1_downgrade(g, idx, sfmt, vfmt)
        {
            return Err(self
                .data_reason(g, idx, Reason::Downgrade, sfmt, vfmt)
                .unwrap_or_else(|| downgrade_reason(sfmt, &version)));
        }
        if let Some(reason) = self.data_refusal(g, idx) {
            return Err(reason);
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
            Product::Jahia => {
                // Jahia reads its node settings at start-up, from the release it runs.
                let n = &mut g.nodes[idx];
                n.jahia_props = Some(super::jahia::read_node_properties(&n.dir, &n.version)?);
                self.jahia_join(g, idx)?
            }
            _ => {}
        }
        Ok((sfmt < vfmt).then_some((sfmt, vfmt)))
    }

    /// A (re)started node catches up with a running peer of its group.
    pub(super) fn catch_up(&self, g: &mut Inner, idx: usize) {
        if self.product == Product::Jahia {
            return;
        }
        if self.places_shards(g) {
            return self.weaviate_catch_up(g, idx);
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

    /// Installs `version` on a stopped node. Jahia: a release of its own beside the others,
    /// with the running release's configuration only when `carry_config`.
    pub fn install(&self, idx: usize, version: &str, carry_config: bool) -> Result<(), OpError> {
        Version::parse(version).map_err(|e| OpError::BadRequest(e.to_string()))?;
        let mut g = self.inner();
        let n = g.node_mut(idx)?;
        if matches!(n.state, RunState::Running | RunState::Starting) {
            return Err(OpError::Refused(format!(
                "cannot install {version} on {} while it is {}; stop it first",
                n.name,
                n.state.as_str()
            )));
        }
        let version = version.trim().to_string();
        if self.product == Product::Jahia {
            super::jahia::install_release(&n.dir, &n.version, &version, carry_config)
                .map_err(OpError::Internal)?;
        }
        n.version = version;
        Ok(())
    }

    /// The read-only setting as the product applies it. Neo4j reads `dbms.read_only` at
    /// start-up only (a static setting in neo4j.conf, 3.x operations manual, "dbms.read_only";
    /// the guide's step 2 edits neo4j.conf and restarts each core), so a running Neo4j node
    /// restarts to take it: it is away for a start-up, which is why the procedure gates on the
    /// cluster between two cores. Other products switch at once.
    pub fn apply_read_only(self: &Arc<Self>, idx: usize, on: bool) -> Result<(), OpError> {
        self.set_read_only(idx, on)?;
        if self.product == Product::Neo4j && self.is_running(idx) {
            self.stop(idx)?;
            self.start(idx)?;
        }
        Ok(())
    }

    pub fn set_read_only(&self, idx: usize, on: bool) -> Result<(), OpError> {
        let mut g = self.inner();
        let n = g.node_mut(idx)?;
        n.read_only = on;
        Ok(())
    }

    /// Neo4j: `dbms.mode` and `dbms.allow_upgrade`, taking effect at the next start.
    pub fn configure(
        &self,
        idx: usize,
        mode: Option<&str>,
        allow_upgrade: Option<bool>,
        backup_address: Option<&str>,
    ) -> Result<(), OpError> {
        let backup_address = backup_address
            .map(|a| a.parse::<super::backup::BackupAddress>())
            .transpose()
            .map_err(OpError::BadRequest)?;
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
        let n = g.node_mut(idx)?;
        if let Some(m) = mode {
            n.mode = m;
        }
        if let Some(a) = allow_upgrade {
            n.allow_upgrade = a;
        }
        if let Some(a) = backup_address {
            n.backup_address = a;
        }
        Ok(())
    }
}
