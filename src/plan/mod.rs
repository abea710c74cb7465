//! The expanded plan: a procedure's steps unrolled over loops and filtered by `when`, with every
//! template filled in for one target — except secrets, which stay `${secret.NAME}` until run.
//! The plan is recorded in the journal's first event so a journal replays without the files.

pub mod expand;
pub mod export;
pub mod render;
/// Hand-made plans for tests (unit tests, and integration tests and benches through the
/// `test-support` feature their dev-dependency turns on); never in a release build.
#[cfg(any(test, feature = "test-support"))]
pub mod test_plans;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::procedure::model::{Action, Downtime, OptionalChoice, RollbackSpec};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Plan {
    pub procedure: String,
    pub product: String,
    #[serde(default)]
    pub description: String,
    pub target: String,
    /// The cluster's version when the plan was made, if known.
    pub from_version: Option<String>,
    pub to_version: Option<String>,
    /// Versions the upgrade passes through, in order (the last is `to_version`).
    #[serde(default)]
    pub hops: Vec<String>,
    pub steps: Vec<PlannedStep>,
    /// Hex SHA-256 of the procedure file's bytes.
    #[serde(default)]
    pub procedure_hash: String,
    /// How a full rollback runs (the procedure's `[rollback]`; empty in older journals).
    #[serde(default)]
    pub rollback: RollbackSpec,
    /// The procedure's guards for this target, and which steps take a node out of service.
    #[serde(default, skip_serializing_if = "Guards::is_empty")]
    pub guards: Guards,
    /// Steps known to start and stop no node (see [`StateKeepers`]).
    #[serde(default, skip_serializing_if = "StateKeepers::is_empty")]
    pub keeps_state: StateKeepers,
}

/// Named calls that start and stop nothing: taking a backup copies data, an install puts
/// binaries in place (a procedure that needs the node stopped for it stops it in a step of its
/// own, and the lab refuses an install on a running node). The procedure says *what* a call
/// does; the target binds *how*.
pub const STATE_KEEPING_CALLS: [&str; 2] = ["backup", "install"];

/// Steps (by key) whose action, or undo, the plan knows leaves every node's run state
/// (running, stopped, failed ...) as it is: a call in [`STATE_KEEPING_CALLS`]. Gates and `lb`
/// actions need no entry: their kind says it. A node's change of state is never put down to
/// them (`SessionState::state_moved_by`): a crash right after a backup is a crash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct StateKeepers {
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub action: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub undo: BTreeSet<String>,
}

impl StateKeepers {
    pub fn is_empty(&self) -> bool {
        self.action.is_empty() && self.undo.is_empty()
    }
}

/// The guards (`[[guards]]`) resolved against the target: each one's nodes by name and its
/// limit as a count. The engine checks them before any step in `takes_out` runs (and before
/// any `lb` drain or maint, an undo's included).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Guards {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Guard>,
    /// Step key -> the node that step takes out of service.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub takes_out: BTreeMap<String, String>,
}

impl Guards {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.takes_out.is_empty()
    }
}

/// One guard for one target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Guard {
    pub name: String,
    /// The selection as written (`master=true`, `all`).
    pub selection: String,
    /// The nodes it counts.
    pub nodes: Vec<String>,
    /// How many of them may be out of service at once.
    pub max_out: usize,
    /// The limit as the procedure says it: `at most 1 out`, `at most 50% out`, `at least 1 in`.
    pub limit: String,
    pub why: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlannedStep {
    /// Unique within the plan: the step id plus its loop items, e.g. `drain@node2`.
    pub key: String,
    /// The `id` of the step in the procedure file.
    pub step_id: String,
    pub title: String,
    #[serde(default)]
    pub runbook: String,
    #[serde(default)]
    pub downtime: Downtime,
    pub confirm: Confirm,
    #[serde(default = "one")]
    pub approvals: u8,
    #[serde(default)]
    pub irreversible: Option<String>,
    /// The node this instance of the step is about, if it is inside a node loop.
    #[serde(default)]
    pub node: Option<String>,
    /// Where in its loops this instance is, e.g. `node 2/3` or `hop 1.26.11 2/3 · node 1/3`.
    #[serde(default)]
    pub progress: Option<String>,
    pub action: Action,
    #[serde(default)]
    pub undo: Option<Action>,
    /// What the target's `[overrides.<step id>]` changed in the action, as
    /// `field = new (procedure: old)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// The operator decides at run time whether the step runs (`optional = "why"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<OptionalStep>,
}

/// An optional step: why it is optional, and what `--yes` chooses.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OptionalStep {
    pub why: String,
    pub default: OptionalChoice,
}

fn one() -> u8 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Confirm {
    None,
    Yes,
    /// The operator must type this phrase exactly.
    Phrase {
        phrase: String,
    },
}

impl Plan {
    /// The index of the first step whose completion makes a full rollback impossible.
    pub fn first_irreversible(&self) -> Option<usize> {
        self.steps.iter().position(|s| s.irreversible.is_some())
    }

    /// Whether a full rollback undoes step `i` before the others (`[rollback] undo_first`).
    pub fn undoes_first(&self, i: usize) -> bool {
        self.steps
            .get(i)
            .is_some_and(|s| self.rollback.undo_first.contains(&s.step_id))
    }
}
