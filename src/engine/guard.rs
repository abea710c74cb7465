//! The procedure's guards, enforced by the engine: before an action takes a node out of service
//! (an `lb` drain or maint, a `stop`, a step marked `takes_out`), count the nodes of each guard
//! that are out now and refuse what would break its limit. Whoever asks (the cockpit, a socket
//! client, `--yes`) gets the same refusal; only an override with the guard's phrase and a reason,
//! journaled with the kernel's user, lets that one action through.

use std::collections::HashMap;

use crate::engine::event::Phase;
use crate::engine::state::{NodeView, SessionState, StepStatus, DOWN_STATES};
use crate::lb::Backend;
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

/// The engine's live model of who is out of service, indexed once per check: a guard may count
/// every node of a large cluster, and each node's answer would otherwise scan the balancer, the
/// plan's steps and the nodes again.
struct Live<'a> {
    /// Each node's backend: the first whose node or server name is the node's.
    backends: HashMap<&'a str, &'a Backend>,
    /// The membership the session's own `lb` actions last gave each node, in plan order: a
    /// step done counts its action, a step undone its undo (a balancer sample may not show it
    /// yet).
    set_by_us: HashMap<&'a str, Membership>,
    views: HashMap<&'a str, &'a NodeView>,
}

impl<'a> Live<'a> {
    fn new(state: &'a SessionState) -> Self {
        let mut backends = HashMap::new();
        for b in &state.lb {
            for name in b.node.as_deref().into_iter().chain([b.server.as_str()]) {
                backends.entry(name).or_insert(b);
            }
        }
        let mut set_by_us = HashMap::new();
        for (planned, run) in state.plan.steps.iter().zip(&state.steps) {
            let action = match run.status {
                StepStatus::Succeeded => Some(&planned.action),
                StepStatus::Undone => planned.undo.as_ref(),
                _ => None,
            };
            if let Some(Action::Lb { node, state, .. }) = action {
                set_by_us.insert(node.as_str(), *state);
            }
        }
        let views = state
            .nodes
            .iter()
            .map(|n| (n.node.name.as_str(), n))
            .collect();
        Live {
            backends,
            set_by_us,
            views,
        }
    }

    /// Why `node` is out of service now, if it is: its balancer membership (as the engine's
    /// own `lb` actions left it, or as the balancer says), the balancer not serving it, the
    /// product's state, its health probes.
    fn out_of_service(&self, node: &str) -> Option<String> {
        let backend = self.backends.get(node).copied();
        match (
            self.set_by_us.get(node).copied(),
            backend.map(|b| b.membership),
        ) {
            (Some(m), _) if m != Membership::Ready => {
                return Some(format!("{m} in the balancer (by this session)"))
            }
            (None, Some(m)) if m != Membership::Ready => {
                return Some(format!("{m} in the balancer"))
            }
            _ => {}
        }
        if let Some(b) = backend.filter(|b| b.membership == Membership::Ready && !b.serving) {
            return Some(format!(
                "not served by the balancer (its check: {})",
                b.check.as_deref().unwrap_or(&b.health)
            ));
        }
        let view = self.views.get(node)?;
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
}

/// Whether step `step` in `phase` may run under the plan's guards; the first guard it would
/// break, unless the driver overrode that guard for this step.
pub fn check(state: &SessionState, step: usize, phase: Phase) -> Option<Refusal> {
    let node = node_taken_out(state, step, phase)?;
    let mut watching = state
        .plan
        .guards
        .rules
        .iter()
        .filter(|g| g.nodes.contains(&node))
        .filter(|g| !state.guard_overrides.contains(&(step, g.name.clone())))
        .peekable();
    // Most actions take out no node a guard watches: nothing to count.
    watching.peek()?;
    let live = Live::new(state);
    watching.find_map(|g| refusal(&live, g, &node))
}

fn refusal(live: &Live<'_>, g: &Guard, node: &str) -> Option<Refusal> {
    let out: Vec<(String, String)> = g
        .nodes
        .iter()
        .filter(|n| n.as_str() != node)
        .filter_map(|n| live.out_of_service(n).map(|why| (n.clone(), why)))
        .collect();
    // The node itself may be out already (drained, then stopped): that adds nobody.
    let adds = usize::from(live.out_of_service(node).is_none());
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
