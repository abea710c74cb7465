//! Milvus: the 2.1 -> 2.2 metadata migration and its rollback (node stopped).

use std::path::PathBuf;

use super::{Cluster, Inner, OpError, RunState, MILVUS_META_2_2};
use crate::lab::config::Product;

impl Cluster {
    /// Milvus: backs up the 2.1 metadata and migrates it to the 2.2 format (node stopped).
    pub fn migrate_metadata(&self, idx: usize) -> Result<u32, OpError> {
        self.only(Product::Milvus, "migrate-metadata")?;
        let name = self.name_of(idx);
        let failing = self.faults().fail_migration(&name);
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
        if failing {
            // The meta-migration pod fails after the backup; migrate.sh reports "Migration is
            // failed..." and exits 3 (milvus-io/milvus deployments/migrate-meta/migrate.sh,
            // `wait_for_migrate_done`). The metadata stays in the 2.1 format.
            return Err(OpError::Internal(format!(
                "Migration is failed... (meta-migration exit 3): the metadata stays in format \
                 {}; the backup is kept",
                store.file.format
            )));
        }
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

    pub(super) fn stopped_node(
        &self,
        g: &Inner,
        idx: usize,
        what: &str,
    ) -> Result<(String, PathBuf), OpError> {
        let n = g.node(idx)?;
        if matches!(n.state, RunState::Running | RunState::Starting) {
            return Err(OpError::Refused(format!(
                "{} must be stopped to {what}",
                n.name
            )));
        }
        Ok((n.store_key.clone(), n.metadata_backup_path()))
    }
}
