//! What a lab is made of: size, product, versions, timing and staged faults.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::faults::Fault;
use super::LabError;

/// How long the lab's simulated operations take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// From `start` until the node is running (before any store migration).
    pub startup_ms: u64,
    /// How long a store-format migration takes at start-up.
    pub migration_ms: u64,
    /// How long the cluster stays unsynchronized after a node (re)starts (Weaviate's
    /// `synchronized`), and how long a restarted Milvus standalone refuses queries.
    pub sync_settle_ms: u64,
    /// The balancer's active health-check period.
    pub health_interval_ms: u64,
}

impl Timing {
    /// Seconds, like a small real cluster: for training in the cockpit.
    pub fn realistic() -> Self {
        Timing {
            startup_ms: 3_000,
            migration_ms: 5_000,
            sync_settle_ms: 5_000,
            health_interval_ms: 1_000,
        }
    }

    /// Tens of milliseconds: for tests.
    pub fn fast() -> Self {
        Timing {
            startup_ms: 30,
            migration_ms: 40,
            sync_settle_ms: 200,
            health_interval_ms: 20,
        }
    }
}

/// The product a lab imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    Generic,
    Jahia,
    Weaviate,
    Neo4j,
    Milvus,
}

impl Product {
    pub fn as_str(self) -> &'static str {
        match self {
            Product::Generic => "generic",
            Product::Jahia => "jahia",
            Product::Weaviate => "weaviate",
            Product::Neo4j => "neo4j",
            Product::Milvus => "milvus",
        }
    }

    /// The version nodes start at when the configuration names none.
    pub fn default_version(self) -> &'static str {
        match self {
            Product::Generic => "1.0.0",
            Product::Jahia => "8.1.8.0",
            Product::Weaviate => "1.25.10",
            Product::Neo4j => "3.2.14",
            Product::Milvus => "2.1.4",
        }
    }

    /// The usual upgrade destination, written into the target's `to_version`.
    pub fn default_to_version(self) -> &'static str {
        match self {
            Product::Generic => "1.1.0",
            Product::Jahia => "8.2.0.0",
            Product::Weaviate => "1.26.18",
            Product::Neo4j => "3.3.5",
            // The newest 2.2 a zilliztech/milvus chart ships (4.0.34; procedures/catalog).
            Product::Milvus => "2.2.14",
        }
    }

    /// The endpoint that says whether a node should receive traffic (balancer checks, health
    /// probe).
    pub fn readiness_path(self) -> &'static str {
        match self {
            Product::Generic => "/health",
            Product::Jahia => "/modules/healthcheck",
            Product::Weaviate => "/v1/.well-known/ready",
            Product::Neo4j => "/db/manage/server/causalclustering/available",
            Product::Milvus => "/healthz",
        }
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Product {
    type Err = LabError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "generic" => Ok(Product::Generic),
            "jahia" => Ok(Product::Jahia),
            "weaviate" => Ok(Product::Weaviate),
            "neo4j" => Ok(Product::Neo4j),
            "milvus" => Ok(Product::Milvus),
            other => Err(LabError::Config(format!(
                "unknown product {other:?} (expected generic, jahia, weaviate, neo4j or milvus)"
            ))),
        }
    }
}

/// The load balancer in front of a lab's nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LbKind {
    /// The lab's own reverse proxy, in this process: nothing to install.
    #[default]
    Embedded,
    /// A real HAProxy started by the lab (it must be installed), driven through its runtime
    /// API like a production one.
    Haproxy,
}

impl LbKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LbKind::Embedded => "embedded",
            LbKind::Haproxy => "haproxy",
        }
    }
}

impl fmt::Display for LbKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LbKind {
    type Err = LabError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "embedded" => Ok(LbKind::Embedded),
            "haproxy" => Ok(LbKind::Haproxy),
            other => Err(LabError::Config(format!(
                "unknown load balancer {other:?} (expected embedded or haproxy)"
            ))),
        }
    }
}

/// Everything needed to start a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Nodes in the cluster (neo4j: nodes per group, blue and green).
    pub nodes: usize,
    pub product: Product,
    /// Version the nodes start at (default: [`Product::default_version`]).
    pub version: Option<String>,
    /// The upgrade destination (neo4j's green group is installed at it).
    pub to_version: Option<String>,
    /// Where stores, markers and backups live (default: a fresh temporary directory, removed
    /// at shutdown).
    pub data_dir: Option<PathBuf>,
    /// Requests per second sent through the balancer's frontend (0: no load).
    pub load_rps: u32,
    pub faults: Vec<Fault>,
    pub timing: Timing,
    /// The balancer the nodes sit behind and the traffic goes through.
    pub lb: LbKind,
    /// A product made of data (`procedures/labs/<product>.toml`): its routes answer instead of
    /// the built-in `product`'s (which stays [`Product::Generic`] underneath: stop, start,
    /// install and the store formats are the lab's own).
    pub personality: Option<std::sync::Arc<super::data::DataPersonality>>,
    /// Weaviate: the lab collection's replication factor, 1 to `nodes` (default: a replica on
    /// every node). Its shards are placed on that many nodes and object requests need their
    /// consistency level's count of them reachable.
    pub replication_factor: Option<usize>,
}

impl LabConfig {
    /// A lab of `nodes` nodes of `product` with default versions, no load and no faults.
    pub fn new(product: Product, nodes: usize, timing: Timing) -> Self {
        LabConfig {
            nodes,
            product,
            version: None,
            to_version: None,
            data_dir: None,
            load_rps: 0,
            faults: Vec::new(),
            timing,
            lb: LbKind::Embedded,
            personality: None,
            replication_factor: None,
        }
    }

    /// A lab of `nodes` nodes playing `personality`.
    pub fn with_personality(
        personality: std::sync::Arc<super::data::DataPersonality>,
        nodes: usize,
        timing: Timing,
    ) -> Self {
        LabConfig {
            personality: Some(personality),
            ..LabConfig::new(Product::Generic, nodes, timing)
        }
    }

    /// The product's name as procedures and targets say it (`elasticsearch`, `jahia`).
    pub fn product_name(&self) -> String {
        match &self.personality {
            Some(p) => p.name().to_string(),
            None => self.product.to_string(),
        }
    }

    /// The nodes' names, in order: `node1` … (neo4j: its blue group, then its green group).
    pub fn node_names(&self) -> Vec<String> {
        let groups = if self.product == Product::Neo4j { 2 } else { 1 };
        (1..=self.nodes.saturating_mul(groups))
            .map(|i| format!("node{i}"))
            .collect()
    }
}

/// The most nodes (per group) a lab accepts: it is a loopback toy, not a benchmark.
pub const MAX_NODES: usize = 32;

/// A parsed dotted version: `1.25.10`, `v2.2.16`, `8.2.0.0`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub Vec<u64>);

impl Version {
    pub fn parse(s: &str) -> Result<Version, LabError> {
        let t = s.trim();
        let t = t.strip_prefix('v').unwrap_or(t);
        let parts: Result<Vec<u64>, _> = t.split('.').map(str::parse::<u64>).collect();
        match parts {
            Ok(p) if p.len() >= 2 => Ok(Version(p)),
            _ => Err(LabError::Config(format!(
                "bad version {s:?} (expected numbers like 1.25.10)"
            ))),
        }
    }

    /// The store format a version writes: one per major.minor, a newer minor being a newer
    /// format.
    pub fn store_format(&self) -> u32 {
        let major = self.0.first().copied().unwrap_or(0).min(4_000_000);
        let minor = self.0.get(1).copied().unwrap_or(0).min(999);
        (major * 1000 + minor) as u32
    }
}

/// The store format of a version string.
pub fn store_format(version: &str) -> Result<u32, LabError> {
    Version::parse(version).map(|v| v.store_format())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_major_minor() {
        assert_eq!(store_format("1.25.10").unwrap(), 1025);
        assert_eq!(store_format("v2.2.16").unwrap(), 2002);
        assert!(store_format("1.26.0").unwrap() > store_format("1.25.99").unwrap());
        assert!(store_format("8").is_err());
        assert!(store_format("x.y").is_err());
    }

    #[test]
    fn lb_kinds_parse() {
        assert_eq!("HAProxy".parse::<LbKind>().unwrap(), LbKind::Haproxy);
        assert_eq!("embedded".parse::<LbKind>().unwrap(), LbKind::Embedded);
        assert_eq!(LbKind::Haproxy.to_string(), "haproxy");
        assert!("nginx".parse::<LbKind>().is_err());
    }

    #[test]
    fn products_parse() {
        assert_eq!("Weaviate".parse::<Product>().unwrap(), Product::Weaviate);
        assert!("mysql".parse::<Product>().is_err());
    }
}
