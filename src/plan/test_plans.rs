//! Hand-made plans for tests: tiny real commands, one step each. Shared by the unit tests
//! (`cfg(test)`) and, through the `test-support` feature, the integration tests
//! (`tests/common/plans.rs`) and benches; never in a release build.

use crate::plan::{Confirm, Plan, PlannedStep};
use crate::procedure::model::{Action, Downtime};
use crate::target::Target;

pub fn run(argv: &[&str]) -> Action {
    Action::Run {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: Default::default(),
        stdin: None,
        cwd: None,
        timeout_secs: 60,
        expect_exit: 0,
    }
}

pub fn sh(script: &str) -> Action {
    run(&["sh", "-c", script])
}

/// A `confirm = "yes"` step with an optional undo.
pub fn step_with(key: &str, action: Action, undo: Option<Action>) -> PlannedStep {
    PlannedStep {
        key: key.into(),
        step_id: key.into(),
        title: format!("step {key}"),
        runbook: String::new(),
        downtime: Downtime::None,
        confirm: Confirm::Yes,
        approvals: 1,
        irreversible: None,
        node: None,
        progress: None,
        action,
        undo,
        overrides: Vec::new(),
        optional: None,
    }
}

pub fn step(key: &str, action: Action) -> PlannedStep {
    step_with(key, action, None)
}

pub fn plan(name: &str, steps: Vec<PlannedStep>) -> Plan {
    Plan {
        procedure: name.into(),
        product: "generic".into(),
        target: "t".into(),
        steps,
        ..Default::default()
    }
}

/// A target with nothing in it: no nodes, balancer or probes.
pub fn empty_target() -> Target {
    Target {
        name: "t".into(),
        ..Default::default()
    }
}
