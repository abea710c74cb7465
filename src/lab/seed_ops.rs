//! Lab operations the seed procedures bind to, beyond the common node operations.

use super::config::Product;
use super::node::{Cluster, OpError};

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
