//! Shared by integration tests that run a procedure against a fresh lab, headless, in process.
#![allow(dead_code)]

pub mod haproxy;
pub mod plans;

use std::path::Path;

use flightdeck::engine::event::AutoConfirm;
use flightdeck::engine::session::{self, EngineConfig};
use flightdeck::engine::SessionState;
use flightdeck::headless::{self, HeadlessEnd};
use flightdeck::journal::{self, Journal};
use flightdeck::lab::{Lab, LabConfig};
use flightdeck::plan::expand::{build_plan, PlanOptions};
use flightdeck::procedure::load::load_procedure;

/// Gates shrink with the fast lab's delays (`Timing::fast`).
pub const LAB_SCALE: f64 = 0.1;

pub struct LabRun {
    pub end: HeadlessEnd,
    pub state: SessionState,
    pub journal: Journal,
    /// What the headless runner printed.
    pub output: String,
    pub lab: Lab,
}

/// Plan `procedure` against a fresh lab started from `cfg`, run it headless with `auto`, and
/// hand back everything (the lab still running, for assertions; call `lab.shutdown()`).
pub async fn run_on_lab(procedure: &str, cfg: LabConfig, auto: AutoConfirm) -> LabRun {
    let lab = Lab::start(cfg).await.expect("lab starts");
    let lp = load_procedure(Path::new(procedure)).expect("procedure loads");
    let diags = flightdeck::procedure::validate::validate(&lp, Some(lab.target()));
    assert!(
        diags.is_empty(),
        "{procedure} against the lab target:\n{diags}"
    );
    let plan = build_plan(&lp, lab.target(), &PlanOptions::default()).expect("plan builds");
    let dir = tempfile::tempdir().expect("tempdir");
    let journal_path = dir.path().join("journal.jsonl");
    let task = session::start(EngineConfig {
        plan,
        target: lab.target().clone(),
        auto,
        operator: "test".into(),
        journal: journal_path.clone(),
        observe: true,
        time_scale: LAB_SCALE,
    })
    .expect("engine starts");
    let mut out: Vec<u8> = Vec::new();
    let (end, state) = headless::follow(task, &mut out).await;
    let journal = journal::read(&journal_path).expect("journal reads");
    LabRun {
        end,
        state,
        journal,
        output: String::from_utf8_lossy(&out).into_owned(),
        lab,
    }
}

pub fn yes_all() -> AutoConfirm {
    AutoConfirm {
        yes: true,
        yes_phrases: true,
        rollback_on_failure: false,
    }
}

pub fn yes_all_rollback() -> AutoConfirm {
    AutoConfirm {
        rollback_on_failure: true,
        ..yes_all()
    }
}
