//! The target file (TOML): *where* a procedure runs — nodes, load balancer, probes, variables,
//! secrets and the target's bindings for named actions. Switching the target file is all it takes
//! to move a procedure from the lab to a real cluster.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::procedure::model::{Action, Check};
use crate::target_overrides::Overrides;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub name: String,
    #[serde(default)]
    pub product: Option<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Secret name -> the environment variable (or file) that holds it. Referenced as
    /// `${secret.NAME}`; resolved only when an action runs, never written to the plan or the
    /// journal.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// The scheme of `${node.url}` for every node that does not say (`http` by default;
    /// Elasticsearch 8 serves `https` out of the box).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default)]
    pub lb: Option<LbConfig>,
    #[serde(default)]
    pub probes: Vec<ProbeSpec>,
    /// Bindings for `kind = "call"` actions, by name. Templated like any action, plus
    /// `${arg.NAME}` for the caller's `args`.
    #[serde(default)]
    pub actions: BTreeMap<String, Action>,
    /// Lab only: where the load generator reports its counters.
    #[serde(default)]
    pub traffic: Option<TrafficSource>,
    /// `[overrides.<step id>]`: this cluster's timings for a procedure's steps.
    #[serde(default, skip_serializing_if = "Overrides::is_empty")]
    pub overrides: Overrides,
}

/// Where a secret's value comes from: an environment variable (`env`), or a file (`file`: its
/// first line, e.g. a mounted secret; the lab writes its Neo4j credentials that way). Exactly
/// one of the two; read when the session starts, never written to the plan or the journal.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub env: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    /// `host:port` of the node's HTTP API (`${node.url}` is the scheme, `://` and this).
    pub address: String,
    #[serde(default)]
    pub role: Option<String>,
    /// Free-form labels (`group = "blue"`, `admin = "http://..."`), available as `${node.KEY}`.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// `http` or `https` for `${node.url}`; the target's `scheme` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LbConfig {
    /// `lab` (the lab's embedded balancer) or `haproxy` (runtime API).
    pub driver: String,
    /// Lab: base URL of the balancer's admin API. HAProxy: `host:port` or a unix socket path.
    pub address: String,
    /// HAProxy backend holding the nodes.
    #[serde(default)]
    pub backend: Option<String>,
    /// Where clients connect (shown in the cockpit).
    #[serde(default)]
    pub frontend: Option<String>,
    /// Node name -> server name in the balancer, when they differ.
    #[serde(default)]
    pub servers: BTreeMap<String, String>,
    #[serde(default = "crate::procedure::model::default_interval")]
    pub interval_ms: u64,
}

// No `deny_unknown_fields` here: serde cannot combine it with `flatten`; the flattened `Check`
// rejects unknown keys instead.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ProbeSpec {
    pub name: String,
    #[serde(flatten)]
    pub check: Check,
    /// Run once per node (templates see `${node.*}`) or once globally.
    #[serde(default = "yes")]
    pub per_node: bool,
    /// How often it runs in the background for the live panels; 0 = never (a probe only wait
    /// gates use, which poll at their own pace).
    #[serde(default = "crate::procedure::model::default_interval")]
    pub interval_ms: u64,
    /// Whether this probe's verdict is the node's health in the nodes panel.
    #[serde(default)]
    pub health: bool,
    /// Facts read from a JSON response by pointer: `version`, `role`, `read_only`, ...
    #[serde(default)]
    pub facts: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrafficSource {
    pub url: String,
    #[serde(default = "crate::procedure::model::default_interval")]
    pub interval_ms: u64,
}

impl Node {
    /// `${node.url}`: the scheme (http unless the node or its target says https) and address.
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            self.scheme.as_deref().unwrap_or("http"),
            self.address
        )
    }

    /// The host part of `address`.
    pub fn host(&self) -> &str {
        self.address
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(&self.address)
    }
}
