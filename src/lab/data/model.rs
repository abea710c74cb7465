//! The personality file's format (`procedures/labs/<product>.toml`). README "A lab for a new
//! product" shows it whole; `procedures/labs/elasticsearch.toml` is a worked example.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A whole personality file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonalitySpec {
    pub product: ProductSpec,
    /// Cluster-wide variables and their values when the lab starts (a setting such as shard
    /// allocation). Replies read them as `cluster.NAME`; effects set them.
    #[serde(default)]
    pub cluster: BTreeMap<String, toml::Value>,
    /// Per-node variables and their values when the lab starts, read as `node.NAME`.
    #[serde(default)]
    pub node: BTreeMap<String, toml::Value>,
    /// Named values computed from the state, in order (each may use the ones before it).
    #[serde(default)]
    pub derived: Vec<Derived>,
    /// What the lab's own operations do to the variables.
    #[serde(default)]
    pub on: Hooks,
    /// Changes that happen by themselves once a condition holds (for a while).
    #[serde(default)]
    pub transition: Vec<Transition>,
    /// Why a node refuses to start, checked when it starts (after the lab's own checks).
    #[serde(default)]
    pub refuse_start: Vec<Refusal>,
    /// The product's words for the lab's generic failures.
    #[serde(default)]
    pub reasons: Reasons,
    /// What the lab's target gets besides the usual bindings.
    #[serde(default)]
    pub target: TargetAdditions,
    /// The product's API.
    #[serde(default)]
    pub route: Vec<Route>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductSpec {
    /// The procedure's `product` this personality plays.
    pub name: String,
    /// The version the nodes start at.
    pub version: String,
    /// The usual upgrade destination (the lab target's `to_version`).
    pub to_version: String,
    /// The path the balancer and the health probe ask (200 = ready).
    pub readiness: String,
    /// What a stopped node's product routes answer (a real stopped process refuses the
    /// connection; the lab keeps its listener for its admin routes).
    #[serde(default = "default_down_status")]
    pub down_status: u16,
    #[serde(default = "default_down_body")]
    pub down_body: String,
}

fn default_down_status() -> u16 {
    503
}

fn default_down_body() -> String {
    "unavailable: the node is not running".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Derived {
    pub name: String,
    /// An expression.
    pub value: String,
}

/// Variable changes: each value is an expression, evaluated against the state before any of
/// them is applied.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Effects {
    #[serde(default)]
    pub node: BTreeMap<String, String>,
    #[serde(default)]
    pub cluster: BTreeMap<String, String>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.node.is_empty() && self.cluster.is_empty()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// A node stops or crashes (after its state changed: `node.state` is no longer running).
    #[serde(default)]
    pub stop: Effects,
    /// A node becomes running (at a start, and for every running node when the lab starts).
    #[serde(default)]
    pub running: Effects,
}

/// Which of the lab's delays a transition waits (they shrink with `FLIGHTDECK_LAB_TIMING=fast`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum After {
    Startup,
    Migration,
    Settle,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// Evaluated for every node (as `node`) on the lab's health-check tick.
    pub when: String,
    /// How long `when` must have held on that node first (none: at the next tick).
    #[serde(default)]
    pub after: Option<After>,
    #[serde(default)]
    pub node: BTreeMap<String, String>,
    #[serde(default)]
    pub cluster: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    /// An expression about the starting `node` (its `version` is the one installed).
    pub when: String,
    /// A template: the product's own message.
    pub reason: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reasons {
    /// A node started on a version older than its data (templates; `from_format`/`to_format`
    /// hold the store formats).
    pub downgrade: Option<String>,
    /// A `fail-migration` fault: the data upgrade at start fails.
    pub fail_migration: Option<String>,
    /// A `crash` fault.
    pub crash: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetAdditions {
    /// Variables of the lab's target; `${lab_frontend}` and `${lab_admin}` are replaced by the
    /// lab's balancer and admin URLs.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Tags every node of the lab's target gets (e.g. `master_eligible = "true"`).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub method: String,
    /// Exact path; a `{name}` segment matches any one segment (`request.params.name`).
    pub path: String,
    /// Answer even when the node is not running (default: `product.down_status`).
    #[serde(default)]
    pub down: bool,
    /// Tried in order: the first whose `when` holds (or has none) answers.
    #[serde(default)]
    pub reply: Vec<Reply>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    pub when: Option<String>,
    #[serde(default = "default_status")]
    pub status: u16,
    /// An expression whose value is sent as JSON.
    pub json: Option<String>,
    /// A template sent as text.
    pub body: Option<String>,
    pub content_type: Option<String>,
    /// Effects of answering this way (applied before the body is computed).
    #[serde(default)]
    pub node: BTreeMap<String, String>,
    #[serde(default)]
    pub cluster: BTreeMap<String, String>,
}

fn default_status() -> u16 {
    200
}
