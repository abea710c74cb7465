//! The procedure's guards, enforced by the engine: before an action takes a node out of service
//! (an `lb` drain or maint, a `stop`, a step marked `takes_out`), count the nodes of each guard
//! that are out now and refuse what would break its limit. Whoever asks (the cockpit, a socket
//! client, `--yes`) gets the same refusal; only an override with the guard's phrase and a reason,
//! journaled with the kernel's user, lets that one action through.

use crate::engine::event::Phase;
use crate::engine::state::{SessionState, StepStatus, DOWN_STATES};
use crate::plan::Guard;
use crate::procedure::model::{Action, Membership};

/// Why the engine will not run an action now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub guard: String,
    /// The node the action would take out.
    pub node: String,
    /// The whole sentence: which guard, the nodes out now and why each, the limit and its why,
    /// and how to override.
    pub reason: String,
    /// What the driver types to override it.
    pub phrase: String,
}

/// The phrase that overrides guard `guard` for taking `node` out.
pub fn phrase(guard: &str, node: &str) -> String {
    format!("override {guard} for {node}")
}

/// The node that step `step`'s action takes out of service in `phase`, if it takes one out.
pub fn node_taken_out(state: &SessionState, step: usize, phase: Phase) -> Option<String> {
    let planned = state.plan.steps.get(step)?;
    let action = match phase {
        Phase::Do => {
            if let Some(n) = state.plan.guards.takes_out.get(&planned.key) {
                return Some(n.clone());
            }
            &planned.action
        }
        Phase::Undo => planned.undo.as_ref()?,
    };
    match action {
        Action::Lb {
            node,
            state: Membership::Drain | Membership::Maint,
            ..
        } => Some(node.clone()),
        _ => None,
    }
}

/// Why `node` is out of service now, in the engine's live model, if it is: its balancer
/// membership (as the engine's own `lb` actions left it, which a balancer sample may not show
/// yet), the balancer not serving it, the product's state, its health probes.
pub fn out_of_service(state: &SessionState, node: &str) -> Option<String> {
    let backend = state
        .lb
        .iter()
        .find(|b| b.node.as_deref() == Some(node) || b.server == node);
    let set_by_us = membership_set_by_engine(state, node);
    match (set_by_us, backend.map(|b| b.membership)) {
        (Some(m), _) if m != Membership::Ready => {
            return Some(format!("{m} in the balancer (by this session)"))
        }
        (None, Some(m)) if m != Membership::Ready => return Some(format!("{m} in the balancer")),
        _ => {}
    }
    if let Some(b) = backend.filter(|b| b.membership == Membership::Ready && !b.serving) {
        return Some(format!(
            "not served by the balancer (its check: {})",
            b.check.as_deref().unwrap_or(&b.health)
        ));
    }
    let view = state.nodes.iter().find(|n| n.node.name == node)?;
    if let Some(s) = view.state().filter(|s| DOWN_STATES.contains(s)) {
        return Some(match view.reason() {
            Some(r) => format!("{s}: {r}"),
            None => s.to_string(),
        });
    }
    if view.health == Some(false) {
        return Some(if view.health_detail.is_empty() {
            "failing its health checks".to_string()
        } else {
            format!("failing its health checks ({})", view.health_detail)
        });
    }
    None
}

/// The membership the session's own `lb` actions last gave `node`, in plan order: a step done
/// counts its action, a step undone its undo.
fn membership_set_by_engine(state: &SessionState, node: &str) -> Option<Membership> {
    let mut last = None;
    for (planned, run) in state.plan.steps.iter().zip(&state.steps) {
        let action = match run.status {
            StepStatus::Succeeded => Some(&planned.action),
            StepStatus::Undone => planned.undo.as_ref(),
            _ => None,
        };
        if let Some(Action::Lb { node: n, state, .. }) = action {
            if n == node {
                last = Some(*state);
            }
        }
    }
    last
}

/// Whether step `step` in `phase` may run under the plan's guards; the first guard it would
/// break, unless the driver overrode that guard for this step.
pub fn check(state: &SessionState, step: usize, phase: Phase) -> Option<Refusal> {
    let node = node_taken_out(state, step, phase)?;
    state
        .plan
        .guards
        .rules
        .iter()
        .filter(|g| g.nodes.contains(&node))
        .filter(|g| !state.guard_overrides.contains(&(step, g.name.clone())))
        .find_map(|g| refusal(state, g, &node))
}

fn refusal(state: &SessionState, g: &Guard, node: &str) -> Option<Refusal> {
    let out: Vec<(String, String)> = g
        .nodes
        .iter()
        .filter(|n| n.as_str() != node)
        .filter_map(|n| out_of_service(state, n).map(|why| (n.clone(), why)))
        .collect();
    // The node itself may be out already (drained, then stopped): that adds nobody.
    let adds = usize::from(out_of_service(state, node).is_none());
    let after = out.len().saturating_add(adds);
    if after <= g.max_out {
        return None;
    }
    let now = if out.is_empty() {
        "none is out now".to_string()
    } else {
        let each: Vec<String> = out.iter().map(|(n, why)| format!("{n}: {why}")).collect();
        format!("{} out already ({})", out.len(), each.join("; "))
    };
    let phrase = phrase(&g.name, node);
    Some(Refusal {
        guard: g.name.clone(),
        node: node.to_string(),
        reason: format!(
            "guard `{}` refuses to take {node} out of service: of {} ({}), {} may be out at \
             once ({}), and {now}. Why: {}. Override only by typing `{phrase}` and saying why \
             (journaled with your user)",
            g.name,
            g.selection,
            g.nodes.join(", "),
            g.max_out,
            g.limit,
            g.why.trim_end_matches('.')
        ),
        phrase,
    })
}
