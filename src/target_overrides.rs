//! A target's `[overrides.<step id>]`: the one way a target changes a procedure's timings for
//! its cluster (a real store needs longer gates than the lab), e.g.
//!
//! ```toml
//! [overrides.verify]
//! timeout_secs = 900
//! interval_ms = 2000
//! ```
//!
//! An override applies to every instance of the step (every node of a loop) and is applied
//! when the plan is made, so the plan shows it and the journal records it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::procedure::model::Action;

/// Bounds a value must respect: large enough to mean something, small enough that every
/// duration computed from it (scaled, summed) stays far from overflow.
pub const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 3600;
pub const MIN_INTERVAL_MS: u64 = 10;
pub const MAX_INTERVAL_MS: u64 = 3600 * 1000;

/// What one `[overrides.<step id>]` table sets.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct StepOverride {
    /// A gate's timeout, or a `run`/`http` action's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// How long a gate's check must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_secs: Option<u64>,
    /// How often a gate polls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
}

/// Every `[overrides.*]` of a target, by step id, and where each is in the target file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(
    from = "BTreeMap<String, StepOverride>",
    into = "BTreeMap<String, StepOverride>"
)]
pub struct Overrides {
    pub steps: BTreeMap<String, StepOverride>,
    /// Where the tables are in the target file (for `check`'s `file:line:col`). Not data: never
    /// serialized and ignored by equality.
    pub origin: Option<Origin>,
}

/// The target file and the 1-based position of each `[overrides.ID]` key and value.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub file: PathBuf,
    /// `ID` or `ID.field` -> (line, col).
    pub at: BTreeMap<String, (usize, usize)>,
}

impl PartialEq for Overrides {
    fn eq(&self, other: &Self) -> bool {
        self.steps == other.steps
    }
}

impl From<BTreeMap<String, StepOverride>> for Overrides {
    fn from(steps: BTreeMap<String, StepOverride>) -> Self {
        Overrides {
            steps,
            origin: None,
        }
    }
}

impl From<Overrides> for BTreeMap<String, StepOverride> {
    fn from(o: Overrides) -> Self {
        o.steps
    }
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Position of `[overrides.ID]` (or of its `field`), if the target came from a file.
    pub fn pos(&self, id: &str, field: Option<&str>) -> Option<(PathBuf, (usize, usize))> {
        let o = self.origin.as_ref()?;
        let key = match field {
            Some(f) => format!("{id}.{f}"),
            None => id.to_string(),
        };
        let at = o.at.get(&key).or_else(|| o.at.get(id))?;
        Some((o.file.clone(), *at))
    }
}

/// Problems with the values alone (no procedure needed), as (field or None, sentence).
pub fn value_problems(o: &StepOverride) -> Vec<(Option<&'static str>, String)> {
    let mut out = Vec::new();
    if *o == StepOverride::default() {
        out.push((
            None,
            "this override sets nothing; expected timeout_secs, stable_secs or interval_ms".into(),
        ));
    }
    if let Some(t) = o.timeout_secs {
        if t == 0 || t > MAX_TIMEOUT_SECS {
            out.push((
                Some("timeout_secs"),
                format!("`timeout_secs = {t}` is out of range: 1 to {MAX_TIMEOUT_SECS} (7 days)"),
            ));
        }
    }
    if let Some(s) = o.stable_secs {
        if s > MAX_TIMEOUT_SECS {
            out.push((
                Some("stable_secs"),
                format!("`stable_secs = {s}` is out of range: 0 to {MAX_TIMEOUT_SECS} (7 days)"),
            ));
        }
    }
    if let Some(i) = o.interval_ms {
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&i) {
            out.push((
                Some("interval_ms"),
                format!(
                    "`interval_ms = {i}` is out of range: {MIN_INTERVAL_MS} to {MAX_INTERVAL_MS}"
                ),
            ));
        }
    }
    out
}

/// Problems of an override against the (bound) action of the step it names: a field the action
/// does not have, or a gate that could never pass.
pub fn fit_problems(o: &StepOverride, action: &Action) -> Vec<(Option<&'static str>, String)> {
    let mut out = Vec::new();
    let kind = kind_name(action);
    let gate = matches!(action, Action::Wait(_));
    let timed = matches!(
        action,
        Action::Wait(_) | Action::Run { .. } | Action::Http(_)
    );
    if o.timeout_secs.is_some() && !timed {
        out.push((
            Some("timeout_secs"),
            format!("the step's action is `{kind}`, which has no timeout"),
        ));
    }
    for (field, set) in [
        ("stable_secs", o.stable_secs.is_some()),
        ("interval_ms", o.interval_ms.is_some()),
    ] {
        if set && !gate {
            out.push((
                Some(field),
                format!("`{field}` only applies to a `wait` gate; the step's action is `{kind}`"),
            ));
        }
    }
    if let Action::Wait(w) = action {
        let timeout = o.timeout_secs.unwrap_or(w.timeout_secs);
        let stable = o.stable_secs.unwrap_or(w.stable_secs);
        if stable >= timeout && (o.timeout_secs.is_some() || o.stable_secs.is_some()) {
            let field = if o.stable_secs.is_some() {
                "stable_secs"
            } else {
                "timeout_secs"
            };
            out.push((
                Some(field),
                format!(
                    "the gate could never pass: it must hold {stable} s within a {timeout} s timeout"
                ),
            ));
        }
    }
    out
}

/// Apply `o` to `action`; returns what changed as `field = new (procedure: old)`, for the plan.
pub fn apply(o: &StepOverride, action: &mut Action) -> Vec<String> {
    let mut changed = Vec::new();
    let mut set = |name: &str, slot: &mut u64, new: Option<u64>| {
        if let Some(v) = new {
            if *slot != v {
                changed.push(format!("{name} = {v} (procedure: {slot})"));
            }
            *slot = v;
        }
    };
    match action {
        Action::Wait(w) => {
            set("timeout_secs", &mut w.timeout_secs, o.timeout_secs);
            set("stable_secs", &mut w.stable_secs, o.stable_secs);
            set("interval_ms", &mut w.interval_ms, o.interval_ms);
        }
        Action::Run { timeout_secs, .. } => set("timeout_secs", timeout_secs, o.timeout_secs),
        Action::Http(h) => set("timeout_secs", &mut h.timeout_secs, o.timeout_secs),
        Action::Manual { .. } | Action::Lb { .. } | Action::Call { .. } => {}
    }
    changed
}

fn kind_name(action: &Action) -> &'static str {
    match action {
        Action::Manual { .. } => "manual",
        Action::Run { .. } => "run",
        Action::Http(_) => "http",
        Action::Lb { .. } => "lb",
        Action::Wait(_) => "wait",
        Action::Call { .. } => "call",
    }
}
