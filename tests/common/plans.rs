//! Hand-made plans for engine-level tests: tiny real commands, one step each.

use std::time::Duration;

use flightdeck::engine::session::EngineTask;
use flightdeck::engine::SessionState;
use flightdeck::plan::{Confirm, Plan, PlannedStep};
use flightdeck::procedure::model::{Action, Downtime};
use flightdeck::target::Target;

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

/// Poll the engine's state until `f` holds, with a deadline that names what was awaited.
pub async fn until(
    task: &EngineTask,
    what: &str,
    f: impl Fn(&SessionState) -> bool,
) -> SessionState {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = task.handle.snapshot().await.expect("engine alive");
        if f(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; steps: {:?}, prompt {:?}, mode {:?}",
            s.steps.iter().map(|x| x.status).collect::<Vec<_>>(),
            s.prompt,
            s.mode
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Wait for a prompt to open and confirm it, as the driver would.
pub async fn confirm_prompt(task: &EngineTask) {
    let s = until(task, "a prompt", |s| s.prompt.is_some()).await;
    let id = s.prompt.map(|p| p.id).unwrap_or_default();
    task.handle
        .command(flightdeck::engine::Command::Confirm {
            prompt: id,
            phrase: None,
        })
        .await
        .expect("confirm accepted");
}
