//! The procedure file format (TOML): what an upgrade does, independent of where it runs.
//!
//! A procedure is read from `procedures/<name>.toml`, validated (see `validate`) and expanded
//! against a target into a [`crate::plan::Plan`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A whole procedure file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Procedure {
    pub name: String,
    pub product: String,
    #[serde(default)]
    pub description: String,
    /// Version constraint the cluster's current version must satisfy, e.g. `">= 8.0, < 9.0"`.
    #[serde(default)]
    pub from: Option<String>,
    /// The version this procedure upgrades to (a target may override it with `vars.to_version`).
    #[serde(default)]
    pub to: Option<String>,
    /// Default variables; the target's `vars` override them.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Variables only the target can give (an endpoint, a list of plugins), each with what it
    /// is: no default here. `check` without a target accepts them; with one, and `plan`,
    /// refuse a target that does not define them.
    #[serde(default)]
    pub target_vars: BTreeMap<String, String>,
    /// How the version path is computed (one hop by default).
    #[serde(default)]
    pub path: Option<PathSpec>,
    /// Named loops that `for_each` refers to. `nodes` (every node in target order) needs no entry.
    #[serde(default)]
    pub loops: BTreeMap<String, LoopSpec>,
    pub steps: Vec<StepSpec>,
    /// Limits on how many nodes may be out of service at once (`[[guards]]`), enforced by the
    /// engine before any action that takes a node out.
    #[serde(default)]
    pub guards: Vec<GuardSpec>,
    /// How a full rollback runs (`[rollback]`).
    #[serde(default)]
    pub rollback: RollbackSpec,
}

/// A guard (`[[guards]]`): of the nodes it counts, at most `max_out` may be out of service at
/// once (a count, or a share like `"50%"`), or at least `min_in` must stay in. Before an action
/// takes a node out (an `lb` drain or maint, a `call` of `stop`, a step with
/// `takes_out = true`), the engine counts the nodes out now in its live model (balancer, the
/// product's state, health) and refuses what would break the limit, with `why`. Ansible's
/// `serial` and Argo's `maxUnavailable` pace their own automation; this limits the operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardSpec {
    pub name: String,
    /// Which nodes it counts: `all` (the default), a matcher like `master=true`, or names.
    #[serde(default)]
    pub nodes: Option<String>,
    #[serde(default)]
    pub max_out: Option<GuardLimit>,
    #[serde(default)]
    pub min_in: Option<u32>,
    /// Why the limit exists (the refusal quotes it).
    pub why: String,
}

/// `max_out = 1` or `max_out = "50%"`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum GuardLimit {
    Count(u32),
    Share(String),
}

/// How a full rollback (abort with rollback) runs. Recorded in the plan, so in the journal.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct RollbackSpec {
    /// Step ids whose undos run before every other undo (the latest completed first), then the
    /// rest in reverse as usual. For a rolling upgrade whose per-node undo restarts a node on
    /// the old version: the upgraded nodes must be stopped before any node comes back on the
    /// old side, whichever node the abort came at.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undo_first: Vec<String>,
    /// What "back on the old version" means: checks the engine runs after the last undo of a
    /// rollback (`[[rollback.verify]]`). The session says `rolled back (verified)` only when
    /// every one holds on every node it covers. In a plan, templates are filled in (but
    /// `${node.*}`, filled per node when it runs) and a `call` is replaced by its binding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<VerifySpec>,
}

/// One check of a rollback's verification: a target probe, an inline check, a target-bound
/// action used as a check (an `http` or `run` binding, e.g. `check-version`), or the balancer's
/// view of each node. It runs like a `wait` gate on every node it selects (until it holds for
/// `stable_secs`, or `timeout_secs` pass) and each node's result is kept with its reason.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VerifySpec {
    /// What it checks, as the outcome says it: `runs ${from_version}`, `healthy`, `writable`.
    pub what: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    /// A target action by name (`[actions.NAME]`), with `args`; replaced by a `check` in the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    /// The balancer (the target's `[lb]`) has the node with this membership, and serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb: Option<Membership>,
    /// `all` (the default), a node name, or a selector like `group=blue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<String>,
    #[serde(default)]
    pub stable_secs: u64,
    #[serde(default = "default_verify_timeout")]
    pub timeout_secs: u64,
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    /// A JSON pointer into a failing check's response where the product says why (e.g.
    /// `/reason`, `/errors/0/message`): the outcome quotes it rather than only the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn default_verify_timeout() -> u64 {
    120
}

/// How the hops from the current to the target version are computed.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PathSpec {
    /// `direct` (one hop) or `minor-steps` (each minor's latest patch, from a catalog).
    pub strategy: String,
    /// Catalog file name in `procedures/catalog/` (defaults to the product).
    #[serde(default)]
    pub catalog: Option<String>,
}

/// A loop that expands a block of consecutive steps once per item.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoopSpec {
    /// `nodes`, `hops` or `list` (the items of a variable).
    pub over: String,
    /// Node filter, e.g. `"group=blue"` or `"role=processing"` (nodes only).
    #[serde(default)]
    pub select: Option<String>,
    /// Ordering: matchers taken in turn, `"*"` for the rest, e.g. `["role=processing", "*"]`.
    #[serde(default)]
    pub order: Vec<String>,
    /// An enclosing loop (e.g. nodes within each hop).
    #[serde(default)]
    pub within: Option<String>,
    /// `over = "list"`: the variable whose comma-separated value is the list (plugins,
    /// indices), each item `${item}` (and `${item.index}`) in the loop's steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Downtime {
    #[default]
    None,
    Writes,
    Full,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ConfirmKind {
    None,
    #[default]
    Yes,
    Phrase,
}

/// One step as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub runbook: String,
    #[serde(default)]
    pub downtime: Downtime,
    /// `downtime` applies only where this expression holds (same language as `when`), e.g. a
    /// writes-down window that exists only on paths that restore a backup.
    #[serde(default)]
    pub downtime_when: Option<String>,
    #[serde(default)]
    pub confirm: ConfirmKind,
    /// The phrase to type when `confirm = "phrase"` (templated).
    #[serde(default)]
    pub phrase: Option<String>,
    /// Operators who must approve the confirm (two-person rule); 1 by default.
    #[serde(default)]
    pub approvals: Option<u8>,
    /// Why this step is the point of no return.
    #[serde(default)]
    pub irreversible: Option<String>,
    #[serde(default)]
    pub for_each: Option<String>,
    #[serde(default)]
    pub when: Option<String>,
    /// The operator decides at run time whether this step runs, and this says why it is
    /// optional; the prompt offers run and skip as equals and journals the choice. Distinct
    /// from `when`, which the facts decide.
    #[serde(default)]
    pub optional: Option<String>,
    /// What a run with `--yes` (headless) does with an optional step: `run` or `skip`.
    #[serde(default)]
    pub optional_default: Option<OptionalChoice>,
    /// This step takes its node out of service (the engine's guards apply to it). An `lb`
    /// drain or maint and a `call` of `stop` do without saying; `false` says a `stop` doesn't.
    #[serde(default)]
    pub takes_out: Option<bool>,
    pub action: Action,
    #[serde(default)]
    pub undo: Option<Action>,
}

/// Run or skip, for an optional step.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OptionalChoice {
    Run,
    Skip,
}

impl std::fmt::Display for OptionalChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OptionalChoice::Run => "run",
            OptionalChoice::Skip => "skip",
        })
    }
}

/// What a step (or its undo) does. Serialized into the plan and the journal with templates
/// already expanded, except `${secret.NAME}`, which is only resolved when the action runs.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Action {
    /// The operator does it by hand and confirms when done.
    Manual {
        text: String,
    },
    /// A program run with an argv (never through a shell unless the author writes `sh -c`).
    /// A secret goes to it through `env` or `stdin`, never `argv`: every user of the machine
    /// sees a process's argv (`ps`), only its owner its environment and input.
    Run {
        argv: Vec<String>,
        #[serde(default)]
        env: BTreeMap<String, String>,
        /// Text written to the command's standard input, then closed (e.g. `"${secret.db}"`
        /// for `psql --password`-style prompts or `curl -K -`); no input when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stdin: Option<String>,
        #[serde(default)]
        cwd: Option<String>,
        #[serde(default = "default_run_timeout")]
        timeout_secs: u64,
        #[serde(default)]
        expect_exit: i32,
    },
    Http(HttpSpec),
    /// Set a node's load-balancer membership through the target's driver.
    Lb {
        node: String,
        state: Membership,
        #[serde(default)]
        weight: Option<u16>,
    },
    /// A gate: a check that must pass on every selected node, stable for a while.
    Wait(WaitSpec),
    /// A target-bound action by name (`[actions.NAME]` in the target): the procedure says
    /// *what*, the target says *how* on this cluster. Replaced by the bound action in the plan.
    Call {
        name: String,
        #[serde(default)]
        args: BTreeMap<String, String>,
    },
}

fn default_run_timeout() -> u64 {
    600
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    #[serde(default = "default_method")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    /// Accepted statuses; empty means any 2xx.
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// In a gate, statuses that mean "not yet, keep waiting" (Elasticsearch's 408 from
    /// `wait_for_status`, a 503 while starting). Once given, any other unexpected status fails
    /// the gate at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wait_on: Vec<u16>,
    /// In a gate, statuses that mean "wrong, fail now" (401/403: wrong credentials must not
    /// wait out the timeout). Without `wait_on` or `fail_on`, every failure waits (the default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fail_on: Vec<u16>,
    /// JSON-pointer expectations on the response body, e.g. `"/synchronized" = true`.
    /// A pointer ending in `#len` compares the length of an array or object.
    #[serde(default)]
    pub expect_json: BTreeMap<String, serde_json::Value>,
    /// A regular expression (Rust `regex` syntax) that must match somewhere in the body's text,
    /// e.g. an HTML page's `Full read-only mode: ON` (see `procedure::expect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_text: Option<String>,
    /// RFC 9535 JSONPath expectations on the JSON body, with comparisons and "every"/"some"
    /// over what a path selects (see `procedure::expect`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<JsonExpect>,
    #[serde(default = "default_http_timeout")]
    pub timeout_secs: u64,
}

/// One JSONPath expectation: `path` selects values from the body; each (or one, with
/// `rows = "some"`) must compare with `value` by `op`. Without `value`, the path must select
/// something. `${var}` in `path` become JSON string literals (data, never syntax).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JsonExpect {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<CompareOp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Rows::is_every")]
    pub rows: Rows,
}

/// How a selected value compares with the expected one.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
pub enum CompareOp {
    #[default]
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = "<")]
    Lt,
    /// The value is one of an array's items.
    #[serde(rename = "in")]
    In,
}

impl std::fmt::Display for CompareOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Ge => ">=",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Lt => "<",
            CompareOp::In => "in",
        })
    }
}

/// Which of the selected values must compare: all of them, or at least one (the row of a
/// list whose name is this node).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Rows {
    #[default]
    Every,
    Some,
}

impl Rows {
    fn is_every(&self) -> bool {
        *self == Rows::Every
    }
}

fn default_method() -> String {
    "GET".into()
}

fn default_http_timeout() -> u64 {
    30
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WaitSpec {
    /// A probe defined in the target, by name...
    #[serde(default)]
    pub probe: Option<String>,
    /// ...or an inline check (for checks that belong to the procedure, not the target).
    #[serde(default)]
    pub check: Option<Check>,
    /// `all`, a node name, or a selector like `group=green`. Empty for a global check.
    #[serde(default)]
    pub nodes: Option<String>,
    #[serde(default)]
    pub stable_secs: u64,
    #[serde(default = "default_wait_timeout")]
    pub timeout_secs: u64,
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
}

fn default_wait_timeout() -> u64 {
    300
}

pub(crate) fn default_interval() -> u64 {
    1000
}

/// A health check: used by target probes and by inline wait gates.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Check {
    Http(HttpSpec),
    Tcp {
        address: String,
        #[serde(default = "default_tcp_timeout")]
        timeout_ms: u64,
    },
    Run {
        argv: Vec<String>,
        #[serde(default)]
        env: BTreeMap<String, String>,
        /// As for a `run` action: text written to the command's standard input.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stdin: Option<String>,
        #[serde(default = "default_check_timeout")]
        timeout_secs: u64,
        #[serde(default)]
        expect_exit: i32,
    },
}

fn default_tcp_timeout() -> u64 {
    1000
}

fn default_check_timeout() -> u64 {
    10
}

/// Load-balancer membership of one backend server.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Membership {
    Ready,
    Drain,
    Maint,
}

impl std::fmt::Display for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Membership::Ready => "ready",
            Membership::Drain => "drain",
            Membership::Maint => "maint",
        })
    }
}
