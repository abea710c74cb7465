//! Commands: what operators (and `--yes`) ask of the engine. Each is checked against the state
//! and the sender's role; a rejected command changes nothing and says why.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Answer the open prompt `prompt` with yes (and the phrase, for phrase steps).
    Confirm {
        prompt: u64,
        #[serde(default)]
        phrase: Option<String>,
    },
    /// Answer an optional step's prompt: run it or skip it, with the operator's reason. Both
    /// are journaled as the operator's decision. Run on a phrase step leaves the prompt open
    /// for the phrase.
    Choose {
        prompt: u64,
        choice: crate::procedure::model::OptionalChoice,
        #[serde(default)]
        reason: Option<String>,
    },
    /// Answer the open prompt with no: the step waits until the driver acts on it again.
    Decline {
        prompt: u64,
    },
    /// Re-open the prompt for the current step after a decline.
    Act,
    /// Run a failed or interrupted step again.
    Retry {
        step: usize,
    },
    /// Skip the current step (pending, failed or interrupted).
    Skip {
        step: usize,
    },
    /// Record an interrupted or failed step as done (the operator finished it by hand).
    MarkDone {
        step: usize,
    },
    /// Ask to undo a completed step (only the latest completed one: saga order).
    Undo {
        step: usize,
    },
    /// Stop the procedure, optionally rolling back completed steps in reverse. `reason` is
    /// why, in the operator's words (journaled with the abort and in the report).
    Abort {
        rollback: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Past the point of no return a full rollback (`Abort { rollback: true, reason: None }`) is refused; this
    /// rolls back anyway. It needs the phrase the refusal names, typed exactly, and a reason;
    /// both are journaled with who sent it (`RollbackOverridden`).
    RollbackPastNoReturn {
        phrase: String,
        reason: String,
    },
    /// A guard refused taking a node out for step `step`: run its next action anyway. Needs
    /// the phrase the refusal names, typed exactly, and a reason; both are journaled with who
    /// sent it (`GuardOverridden`). The step still needs its confirm.
    OverrideGuard {
        step: usize,
        phrase: String,
        reason: String,
    },
    Note {
        text: String,
    },
    /// Two-person rule: a second operator approves the open prompt.
    Approve {
        prompt: u64,
    },
    /// Pairing: an observer asks the driver for control.
    RequestControl,
    /// Pairing: the driver hands control to operator `to`.
    GrantControl {
        to: u64,
    },
    /// Pairing: take control. Allowed when nobody drives; to the session's owner at any
    /// time; to another operator once the driver's client has shown no sign of life for the
    /// session's takeover delay, with a reason. The reason is journaled.
    TakeControl {
        #[serde(default)]
        reason: Option<String>,
    },
    /// Pairing, the session's owner only: remove an operator (their connection closes, their
    /// user cannot join again).
    RemoveOperator {
        id: u64,
    },
    /// Pairing: a client's sign of life (sent every few seconds; changes nothing).
    Alive,
    /// Kill the process group an interrupted step's command left running before a restart
    /// (SIGTERM, then SIGKILL). Waiting instead needs no command: the engine watches it.
    KillOrphan {
        step: usize,
    },
}

impl Command {
    /// The operator's own words the command carries (a note, a reason, a typed phrase), each
    /// with what it is: the engine bounds them all alike (`MAX_NOTE_CHARS`).
    pub fn texts(&self) -> Vec<(&'static str, &str)> {
        match self {
            Command::Note { text } => vec![("a note", text)],
            Command::Confirm {
                phrase: Some(p), ..
            } => vec![("a phrase", p)],
            Command::Choose {
                reason: Some(r), ..
            }
            | Command::Abort {
                reason: Some(r), ..
            }
            | Command::TakeControl { reason: Some(r) } => vec![("a reason", r)],
            Command::RollbackPastNoReturn { phrase, reason }
            | Command::OverrideGuard { phrase, reason, .. } => {
                vec![("a phrase", phrase), ("a reason", reason)]
            }
            _ => Vec::new(),
        }
    }

    /// The step the command names (the sender's number, unchecked), if it names one.
    pub fn step(&self) -> Option<usize> {
        match self {
            Command::Retry { step }
            | Command::Skip { step }
            | Command::MarkDone { step }
            | Command::Undo { step }
            | Command::OverrideGuard { step, .. }
            | Command::KillOrphan { step } => Some(*step),
            _ => None,
        }
    }

    /// Whether an observer (not the driver) may send it.
    pub fn observer_may(&self) -> bool {
        matches!(
            self,
            Command::Note { .. }
                | Command::Approve { .. }
                | Command::RequestControl
                | Command::TakeControl { .. }
                | Command::RemoveOperator { .. }
                | Command::Alive
        )
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq, Serialize, Deserialize)]
#[error("{0}")]
pub struct Rejected(pub String);
