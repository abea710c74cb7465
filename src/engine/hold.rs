//! Whether a check holds: every instance (one per node, or one global) passing without a
//! break for a stability window, before a timeout. Shared by `wait` gates and a rollback's
//! verification, so both judge "healthy for 3 s" the same way.

use std::time::Duration;

use tokio::time::Instant;

use super::strings::{fill_check, node_vars, Secrets};
use crate::procedure::model::{Check, WaitSpec};
use crate::target::Target;

/// A check to run: on one node (`Some(name)`, its `${node.*}` filled in) or once (`None`).
pub type Instance = (Option<String>, Check);

/// The instances of a gate's probe or inline check over the nodes it selects, secrets
/// resolved. Err says why it cannot run.
pub fn gate_instances(
    w: &WaitSpec,
    target: &Target,
    secrets: &Secrets,
) -> Result<Vec<Instance>, String> {
    let (check, per_node): (Check, bool) = match (&w.probe, &w.check) {
        (Some(name), _) => {
            let Some(p) = target.probes.iter().find(|p| &p.name == name) else {
                return Err(format!("the target has no probe named {name:?}"));
            };
            (p.check.clone(), p.per_node)
        }
        (None, Some(c)) => {
            let templated = serde_json::to_string(c)
                .unwrap_or_default()
                .contains("${node.");
            (c.clone(), templated || w.nodes.is_some())
        }
        (None, None) => return Err("the gate names neither a probe nor a check".into()),
    };
    let check = secrets.resolve_check(&check)?;
    if !per_node {
        return Ok(vec![(None, check)]);
    }
    let sel = w.nodes.clone().unwrap_or_else(|| "all".into());
    let nodes = super::action::select_nodes(target, &sel);
    if nodes.is_empty() {
        return Err(format!("the gate selects no node ({sel:?})"));
    }
    Ok(nodes
        .into_iter()
        .map(|(i, n)| {
            let vars = node_vars(n, i);
            (Some(n.name.clone()), fill_check(&check, &vars))
        })
        .collect())
}

/// The running verdict over `total` instances, one round of results at a time.
pub struct Hold {
    need: Duration,
    timeout: Duration,
    start: Instant,
    /// Per instance: since when it has passed without a break.
    passing_since: Vec<Option<Instant>>,
    ever_passed: Vec<bool>,
    /// Per instance: what its last result said.
    last: Vec<String>,
}

impl Hold {
    pub fn new(total: usize, need: Duration, timeout: Duration) -> Self {
        Hold {
            need,
            timeout,
            start: Instant::now(),
            passing_since: vec![None; total],
            ever_passed: vec![false; total],
            last: vec![String::new(); total],
        }
    }

    /// Record one round: (passed, what was seen) per instance, in order.
    pub fn record(&mut self, results: impl IntoIterator<Item = (bool, String)>) -> Instant {
        let now = Instant::now();
        for (i, (ok, detail)) in results.into_iter().enumerate() {
            if i >= self.last.len() {
                break;
            }
            if ok {
                self.ever_passed[i] = true;
                self.passing_since[i].get_or_insert(now);
            } else {
                self.passing_since[i] = None;
            }
            self.last[i] = detail;
        }
        now
    }

    pub fn total(&self) -> usize {
        self.last.len()
    }

    pub fn need(&self) -> Duration {
        self.need
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn passing(&self) -> usize {
        self.passing_since.iter().filter(|s| s.is_some()).count()
    }

    /// How long every instance has passed together (zero while one fails).
    pub fn stable(&self, now: Instant) -> Duration {
        if self.passing() != self.total() {
            return Duration::ZERO;
        }
        self.passing_since
            .iter()
            .flatten()
            .map(|s| now.duration_since(*s))
            .min()
            .unwrap_or_default()
    }

    /// Every instance passing, stable long enough.
    pub fn held(&self, now: Instant) -> bool {
        self.passing() == self.total() && self.stable(now) >= self.need
    }

    /// Instance `i` has passed without a break for the stability window.
    pub fn instance_held(&self, i: usize, now: Instant) -> bool {
        self.passing_since
            .get(i)
            .copied()
            .flatten()
            .is_some_and(|s| now.duration_since(s) >= self.need)
    }

    pub fn instance_passing(&self, i: usize) -> bool {
        self.passing_since.get(i).is_some_and(Option::is_some)
    }

    pub fn ever_passed(&self, i: usize) -> bool {
        self.ever_passed.get(i).copied().unwrap_or(false)
    }

    pub fn all_ever_passed(&self) -> bool {
        self.ever_passed.iter().all(|p| *p)
    }

    pub fn last(&self, i: usize) -> &str {
        self.last.get(i).map_or("", String::as_str)
    }

    pub fn timed_out(&self, now: Instant) -> bool {
        now.duration_since(self.start) >= self.timeout
    }
}
