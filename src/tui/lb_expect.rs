//! What the procedure expects of the load balancer against what the balancer reports: the
//! membership each node's last completed `lb` action set, and where the balancer's own view
//! (HAProxy's `show stat`, the lab balancer's checks) disagrees with it. Pure: a function of
//! the session state, so the cockpit, a replay and a joining operator all see the same.

use std::collections::{BTreeMap, HashMap};

use crate::engine::state::{SessionState, StepStatus};
use crate::lb::Backend;
use crate::procedure::model::{Action, Membership};

/// One way the balancer disagrees with the procedure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LbMismatch {
    /// The balancer reports another membership than the procedure last set.
    Membership {
        node: String,
        server: String,
        expected: Membership,
        actual: Membership,
    },
    /// The procedure put the node back (`ready`) but the balancer's checks say it is down: it
    /// takes no traffic.
    Down {
        node: String,
        server: String,
        health: String,
        check: Option<String>,
    },
    /// The procedure set a membership for a node the balancer has no server for.
    Missing { node: String, expected: Membership },
}

impl LbMismatch {
    pub fn node(&self) -> &str {
        match self {
            LbMismatch::Membership { node, .. }
            | LbMismatch::Down { node, .. }
            | LbMismatch::Missing { node, .. } => node,
        }
    }

    /// The balancer's server it is about, when there is one.
    pub fn server(&self) -> Option<&str> {
        match self {
            LbMismatch::Membership { server, .. } | LbMismatch::Down { server, .. } => Some(server),
            LbMismatch::Missing { .. } => None,
        }
    }

    /// One line for the operator, naming what the procedure did and what the balancer says.
    pub fn describe(&self) -> String {
        match self {
            LbMismatch::Membership {
                server,
                expected,
                actual,
                ..
            } => format!("{server}: set {expected}, LB says {actual}"),
            LbMismatch::Down {
                server,
                health,
                check,
                ..
            } => match check {
                Some(c) if !c.is_empty() => format!("{server}: set ready, LB says {health} ({c})"),
                _ => format!("{server}: set ready, LB says {health}"),
            },
            LbMismatch::Missing { node, expected } => {
                format!("{node}: set {expected}, no such server in the LB")
            }
        }
    }
}

/// Each node's membership as the procedure last left it: the `lb` actions of completed steps
/// (and of completed undos), in the order they finished. A failed or interrupted `lb` action
/// may or may not have reached the balancer, so it leaves the node without an expectation.
pub fn expected_membership(state: &SessionState) -> BTreeMap<String, Membership> {
    let mut done: Vec<(u64, usize, &str, Option<Membership>)> = Vec::new();
    for (i, (planned, run)) in state.plan.steps.iter().zip(&state.steps).enumerate() {
        let action = match run.status {
            StepStatus::Succeeded | StepStatus::Failed | StepStatus::Interrupted => {
                Some(&planned.action)
            }
            StepStatus::Undone | StepStatus::UndoFailed => planned.undo.as_ref(),
            _ => None,
        };
        let Some(Action::Lb {
            node, state: set, ..
        }) = action
        else {
            continue;
        };
        let certain = matches!(run.status, StepStatus::Succeeded | StepStatus::Undone);
        let at = run.finished_ms.or(run.started_ms).unwrap_or(0);
        done.push((at, i, node, certain.then_some(*set)));
    }
    done.sort_by_key(|(at, i, _, _)| (*at, *i));
    let mut expected = BTreeMap::new();
    for (_, _, node, set) in done {
        match set {
            Some(m) => expected.insert(node.to_string(), m),
            None => expected.remove(node),
        };
    }
    expected
}

/// HAProxy says `DOWN` (or `DOWN 1/2` while it rises again); the lab balancer says `DOWN`.
fn is_down(health: &str) -> bool {
    health.to_ascii_uppercase().starts_with("DOWN")
}

/// Where the balancer's last report disagrees with what the procedure set. Nothing while the
/// balancer has not answered (its error is shown instead), and nothing about nodes the
/// procedure has not touched.
pub fn lb_mismatches(state: &SessionState) -> Vec<LbMismatch> {
    if state.lb_error.is_some() || state.lb.is_empty() {
        return Vec::new();
    }
    mismatches_by(&expected_membership(state), |node| state.backend_of(node))
}

/// [`lb_mismatches`] for an expectation and a balancer report.
pub fn mismatches(expected: &BTreeMap<String, Membership>, lb: &[Backend]) -> Vec<LbMismatch> {
    // Indexed by node (the first backend of each), not searched per node: O(N) at 1,000 nodes.
    let mut by_node: HashMap<&str, &Backend> = HashMap::with_capacity(lb.len());
    for b in lb {
        if let Some(node) = b.node.as_deref() {
            by_node.entry(node).or_insert(b);
        }
    }
    mismatches_by(expected, |node| by_node.get(node).copied())
}

/// [`mismatches`] with each node's first backend found by `backend_of`.
fn mismatches_by<'a>(
    expected: &BTreeMap<String, Membership>,
    backend_of: impl Fn(&str) -> Option<&'a Backend>,
) -> Vec<LbMismatch> {
    let mut out = Vec::new();
    for (node, want) in expected {
        let Some(b) = backend_of(node) else {
            out.push(LbMismatch::Missing {
                node: node.clone(),
                expected: *want,
            });
            continue;
        };
        if b.membership != *want {
            out.push(LbMismatch::Membership {
                node: node.clone(),
                server: b.server.clone(),
                expected: *want,
                actual: b.membership,
            });
        } else if *want == Membership::Ready && is_down(&b.health) {
            out.push(LbMismatch::Down {
                node: node.clone(),
                server: b.server.clone(),
                health: b.health.clone(),
                check: b.check.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::{Event, Phase, Verdict};
    use crate::tui::demo::{self, Script};

    fn backend(node: &str, membership: Membership, health: &str) -> Backend {
        Backend {
            server: format!("{node}-srv"),
            node: Some(node.into()),
            membership,
            health: health.into(),
            serving: membership == Membership::Ready && health == "UP",
            sessions: Some(0),
            weight: None,
            check: Some("L7STS".into()),
        }
    }

    fn state_of(script: &Script) -> SessionState {
        SessionState::fold(script.events())
    }

    fn push_lb(s: &mut Script, backends: Vec<Backend>) {
        s.push(
            100,
            Event::LbChanged {
                backends,
                error: None,
            },
        );
    }

    #[test]
    fn completed_lb_actions_set_the_expectation_in_order() {
        let mut s = Script::started();
        s.through(demo::STEP_READY1 + 1);
        let expected = expected_membership(&state_of(&s));
        // Drained, then put back: the later action wins.
        assert_eq!(
            expected,
            BTreeMap::from([("jahia1".to_string(), Membership::Ready)])
        );

        let mut s = Script::started();
        s.through(demo::STEP_DRAIN1 + 1);
        assert_eq!(
            expected_membership(&state_of(&s)).get("jahia1"),
            Some(&Membership::Drain)
        );
        // Nothing touched yet: no expectation at all.
        let s = Script::started();
        assert!(expected_membership(&state_of(&s)).is_empty());
    }

    #[test]
    fn an_undone_drain_expects_its_undo_and_a_failed_one_expects_nothing() {
        let mut s = Script::started();
        s.through(demo::STEP_DRAIN1 + 1);
        s.push(
            100,
            Event::ActionStarted {
                step: demo::STEP_DRAIN1,
                phase: Phase::Undo,
                attempt: 1,
            },
        );
        let undo = |verdict| Event::ActionFinished {
            step: demo::STEP_DRAIN1,
            phase: Phase::Undo,
            attempt: 1,
            verdict,
            detail: String::new(),
        };
        let mut undone = s.clone();
        undone.push(100, undo(Verdict::Passed));
        assert_eq!(
            expected_membership(&state_of(&undone)).get("jahia1"),
            Some(&Membership::Ready)
        );
        let mut failed = s.clone();
        failed.push(100, undo(Verdict::Failed));
        assert_eq!(expected_membership(&state_of(&failed)).get("jahia1"), None);
    }

    #[test]
    fn agreement_is_silent() {
        let mut s = Script::started();
        s.through(demo::STEP_UPGRADE1);
        // The demo's balancer agrees: jahia1 drained, the others untouched.
        assert_eq!(lb_mismatches(&state_of(&s)), Vec::new());
        // Untouched nodes may be anything: the procedure expects nothing of them.
        push_lb(
            &mut s,
            vec![
                backend("jahia1", Membership::Drain, "DOWN"),
                backend("jahia2", Membership::Maint, "MAINT"),
                backend("jahia3", Membership::Ready, "DOWN"),
            ],
        );
        assert_eq!(lb_mismatches(&state_of(&s)), Vec::new());
    }

    #[test]
    fn ready_but_down_and_membership_drift_are_flagged() {
        let mut s = Script::started();
        s.through(demo::STEP_READY1 + 1);
        push_lb(
            &mut s,
            vec![
                backend("jahia1", Membership::Ready, "DOWN 1/2"),
                backend("jahia2", Membership::Ready, "UP"),
                backend("jahia3", Membership::Ready, "UP"),
            ],
        );
        let got = lb_mismatches(&state_of(&s));
        assert_eq!(
            got,
            vec![LbMismatch::Down {
                node: "jahia1".into(),
                server: "jahia1-srv".into(),
                health: "DOWN 1/2".into(),
                check: Some("L7STS".into()),
            }]
        );
        assert_eq!(
            got[0].describe(),
            "jahia1-srv: set ready, LB says DOWN 1/2 (L7STS)"
        );
        assert_eq!(got[0].server(), Some("jahia1-srv"));

        // Someone put jahia1 in maintenance behind the procedure's back.
        push_lb(
            &mut s,
            vec![
                backend("jahia1", Membership::Maint, "MAINT"),
                backend("jahia2", Membership::Ready, "UP"),
            ],
        );
        let got = lb_mismatches(&state_of(&s));
        assert_eq!(
            got,
            vec![LbMismatch::Membership {
                node: "jahia1".into(),
                server: "jahia1-srv".into(),
                expected: Membership::Ready,
                actual: Membership::Maint,
            }]
        );
        assert_eq!(got[0].describe(), "jahia1-srv: set ready, LB says maint");
    }

    #[test]
    fn a_node_missing_from_the_balancer_is_flagged() {
        let expected = BTreeMap::from([("db1".to_string(), Membership::Drain)]);
        let got = mismatches(&expected, &[backend("db2", Membership::Ready, "UP")]);
        assert_eq!(
            got,
            vec![LbMismatch::Missing {
                node: "db1".into(),
                expected: Membership::Drain,
            }]
        );
        assert_eq!(got[0].node(), "db1");
        assert_eq!(got[0].server(), None);
        assert!(got[0].describe().contains("no such server"));
    }

    #[test]
    fn nothing_is_claimed_while_the_balancer_does_not_answer() {
        let mut s = Script::started();
        s.through(demo::STEP_UPGRADE1);
        let mut st = state_of(&s);
        st.lb_error = Some("connection refused".into());
        assert!(lb_mismatches(&st).is_empty());
        st.lb_error = None;
        st.lb.clear();
        assert!(lb_mismatches(&st).is_empty());
        // But a report without the drained node is a mismatch.
        st.lb = vec![backend("jahia2", Membership::Ready, "UP")];
        assert_eq!(lb_mismatches(&st).len(), 1);
    }
}
