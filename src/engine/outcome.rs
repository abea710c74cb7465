//! The one sentence that says how a session ended, or where it stands: the headless summary,
//! the cockpit's finish line, the pairing status and the report all print this, so they can
//! never disagree. "Rolled back" alone is never said: a rollback is either verified or says
//! which node failed, with the product's own reason.

use super::event::{CheckVerdict, NodeVerdict, Outcome};
use super::state::{Mode, SessionState};

/// `completed`, `aborted`, `rolled back (verified)`, `rolled back, NOT verified: node2 failed
/// (runs 8.1.8.0: cluster conflict ...)`, or while it runs `forward`, `rolling back`,
/// `rolling back: verifying`.
pub fn outcome_text(s: &SessionState) -> String {
    match s.mode {
        Mode::Forward => "forward".into(),
        Mode::RollingBack if s.verifying => "rolling back: verifying".into(),
        Mode::RollingBack => "rolling back".into(),
        Mode::Finished(Outcome::Completed) => "completed".into(),
        Mode::Finished(Outcome::Aborted) => "aborted".into(),
        Mode::Finished(Outcome::RolledBack) => rolled_back(s),
    }
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
