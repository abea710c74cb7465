//! The one sentence that says how a session ended, or where it stands: the headless summary,
//! the cockpit's finish line, the pairing status and the report all print this, so they can
//! never disagree. "Rolled back" alone is never said: a rollback is either verified or says
//! which node failed, with the product's own reason. A rollback that stopped short — at an undo
//! that failed, at an irreversible step, or aborted — says so and why, never "rolling back"
//! nor "aborted" alone.

use super::event::{CheckVerdict, NodeVerdict, Outcome, Phase};
use super::state::{Mode, SessionState, StepStatus};

/// How every view begins the outcome of a rollback that stopped short.
pub const ROLLBACK_STOPPED: &str = "rollback stopped, NOT verified";

/// `completed`, `aborted`, `rolled back (verified)`, `rolled back, NOT verified: node2 failed
/// (runs 8.1.8.0: cluster conflict ...)`, `rollback stopped, NOT verified: undo of step 11
/// (check-backup@node1) failed on node1 (... nothing restored: the backup is missing)`, or
/// while it runs `forward`, `rolling back`, `rolling back: verifying`.
pub fn outcome_text(s: &SessionState) -> String {
    match s.mode {
        Mode::Forward => "forward".into(),
        Mode::RollingBack if s.verifying => "rolling back: verifying".into(),
        // Waiting on a failed undo is where the rollback stands until someone decides (retry,
        // mark done, skip): said the same whether a person is at the prompt or the run ended
        // there (a headless run stops at it; the journal is resumed from it).
        Mode::RollingBack => match undo_stopped(s) {
            Some(why) => format!("{ROLLBACK_STOPPED}: {why}"),
            None => "rolling back".into(),
        },
        Mode::Finished(Outcome::Completed) => "completed".into(),
        Mode::Finished(Outcome::Aborted) => match rollback_cut_short(s) {
            Some(why) => format!("{ROLLBACK_STOPPED}: {why}"),
            None => "aborted".into(),
        },
        Mode::Finished(Outcome::RolledBack) => rolled_back(s),
    }
}

/// The undo a rollback stopped at: the node it was about, and the sentence every view says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedUndo {
    pub node: Option<String>,
    pub text: String,
}

/// The undo the rollback stopped at, if it did: the step whose undo failed or was interrupted
/// and waits for a decision — `undo of step 11 (check-backup@node1) failed on node1 (<its
/// detail: the product's own words>)`.
pub fn undo_stopped(s: &SessionState) -> Option<String> {
    stopped_undo(s).map(|u| u.text)
}

/// [`undo_stopped`], with the node.
pub fn stopped_undo(s: &SessionState) -> Option<StoppedUndo> {
    let c = s.rollback_candidate()?;
    let run = s.steps.get(c)?;
    let what = match (run.status, run.phase) {
        (StepStatus::UndoFailed, _) => "failed",
        (StepStatus::Interrupted, Phase::Undo) => "was interrupted",
        _ => return None,
    };
    let planned = s.plan.steps.get(c)?;
    let on = planned
        .node
        .as_deref()
        .map(|n| format!(" on {n}"))
        .unwrap_or_default();
    let detail = run
        .detail
        .as_deref()
        .filter(|d| !d.is_empty())
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    Some(StoppedUndo {
        node: planned.node.clone(),
        text: format!(
            "undo of step {} ({}) {what}{on}{detail}",
            c + 1,
            planned.key
        ),
    })
}

/// Why a session that asked for a rollback finished without one: the undo it stopped at, the
/// irreversible step it could not go past, or the abort of the rollback itself.
fn rollback_cut_short(s: &SessionState) -> Option<String> {
    if !s.rollback_asked {
        return None;
    }
    if let Some(why) = undo_stopped(s) {
        return Some(why);
    }
    if let Some(why) = &s.rollback_stopped {
        return Some(why.clone());
    }
    let by = s.rollback_abandoned_by.as_deref().unwrap_or("someone");
    Some(match s.rollback_candidate() {
        Some(c) => format!(
            "aborted by {by} before the undo of step {} ({})",
            c + 1,
            s.plan.steps.get(c).map_or("?", |p| p.key.as_str())
        ),
        None => format!("aborted by {by} before its verification"),
    })
}

/// The session rolled back and its verification held everywhere.
pub fn rollback_verified(s: &SessionState) -> bool {
    s.mode == Mode::Finished(Outcome::RolledBack)
        && s.verification.as_ref().is_some_and(|v| v.verified)
}

fn rolled_back(s: &SessionState) -> String {
    let Some(v) = &s.verification else {
        // A journal from before rollbacks were verified, or one cut short.
        return "rolled back, NOT verified: no verification was recorded".into();
    };
    if v.verified {
        return "rolled back (verified)".into();
    }
    let mut why: Vec<String> = v.nodes.iter().filter(|n| !n.ok).map(node_failed).collect();
    why.extend(v.why_not.iter().cloned());
    if why.is_empty() {
        why.push("no check covered any node".into());
    }
    format!("rolled back, NOT verified: {}", why.join("; "))
}

/// `node2 failed (healthy: cluster conflict ...; also writable, in the balancer)`.
fn node_failed(n: &NodeVerdict) -> String {
    let name = n.node.as_deref().unwrap_or("the cluster");
    let failed: Vec<&CheckVerdict> = n.checks.iter().filter(|c| !c.ok).collect();
    let Some((first, rest)) = failed.split_first() else {
        return format!("{name} failed");
    };
    let mut text = format!("{name} failed ({}: {}", first.what, first.detail);
    if !rest.is_empty() {
        let others: Vec<&str> = rest.iter().map(|c| c.what.as_str()).collect();
        text.push_str(&format!("; also {}", others.join(", ")));
    }
    text.push(')');
    text
}
