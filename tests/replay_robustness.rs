//! Replay and report on journals from real and crashed sessions.

mod common;

use common::plans::{empty_target, plan, sh, step};

#[path = "fixtures/builder.rs"]
mod builder;

use std::time::Duration;

use builder::fixture_path;
use flightdeck::engine::event::AutoConfirm;
use flightdeck::engine::session::{self, EngineConfig, EngineTask};
use flightdeck::engine::state::StepStatus;
use flightdeck::engine::SessionState;
use flightdeck::journal;
use flightdeck::plan::PlannedStep;
use flightdeck::replay::player::{self, ReplayOptions};
use flightdeck::replay::quiz::Quiz;
use flightdeck::report::{self, ReportOutcome};

fn start(steps: Vec<PlannedStep>, path: &std::path::Path) -> EngineTask {
    session::start(EngineConfig {
        plan: plan("robust", steps),
        target: empty_target(),
        auto: AutoConfirm {
            yes: true,
            ..Default::default()
        },
        operator: "erin".into(),
        journal: path.to_path_buf(),
        observe: false,
        time_scale: 1.0,
    })
    .unwrap()
}

async fn until(task: &EngineTask, f: impl Fn(&SessionState) -> bool) -> SessionState {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = task.handle.snapshot().await.expect("engine alive");
        if f(&s) {
            return s;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn replaying_a_real_journal_ends_in_the_live_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let task = start(
        vec![
            step("hello", sh("echo one; echo two >&2")),
            step("more", sh("echo three")),
        ],
        &path,
    );
    until(&task, |s| s.is_finished()).await;
    task.handle.shutdown().await;
    let live = task.join.await.unwrap().unwrap();

    let j = journal::read(&path).unwrap();
    let (mut client, control) = player::start(
        j.clone(),
        ReplayOptions {
            speed: 64.0,
            ..Default::default()
        },
    )
    .unwrap();
    let mut view = SessionState::empty();
    while view.last_seq as usize != j.events.len() {
        let e = tokio::time::timeout(Duration::from_secs(10), client.events.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(player::follow(&mut view, &e));
    }
    assert_eq!(view.steps, live.steps);
    assert_eq!(view.mode, live.mode);
    assert_eq!(control.state().steps, live.steps);
    let r = report::build(&j);
    assert_eq!(r.outcome, ReportOutcome::Completed);
    assert_eq!(r.steps[0].confirmed_by, vec!["auto (--yes)"]);
    // Run time is what the stamps say.
    let finished = live.steps[0].finished_ms.unwrap() - live.steps[0].started_ms.unwrap();
    assert_eq!(r.steps[0].duration_ms, finished);
    // --yes made every choice: nothing to quiz on.
    assert!(Quiz::new(&j).is_empty());
}

#[tokio::test]
async fn a_crashed_session_with_a_torn_line_replays_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let task = start(
        vec![
            step("slow", sh("echo started; sleep 30")),
            step("after", sh("true")),
        ],
        &path,
    );
    until(&task, |s| {
        s.running() == Some(0) && !s.steps[0].output.is_empty()
    })
    .await;
    task.join.abort();
    let _ = task.join.await;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"seq\":99,\"t_ms\":1,\"type\":\"outp");
    std::fs::write(&path, bytes).unwrap();

    let j = journal::read(&path).unwrap();
    assert!(j.torn_tail.is_some());
    let (_client, control) = player::start(j.clone(), ReplayOptions::default()).unwrap();
    control.to_end();
    let s = control.state();
    assert_eq!(s.steps[0].status, StepStatus::Running);
    assert!(!s.is_finished());

    let r = report::build(&j);
    assert!(r.torn_tail);
    assert_eq!(r.outcome, ReportOutcome::Unfinished);
    assert_eq!(r.steps[0].interrupted, 1);
    assert_eq!(r.steps[0].status, "running");
}

#[tokio::test]
async fn the_fixture_with_a_torn_tail_still_replays_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("torn.jsonl");
    let mut bytes = std::fs::read(fixture_path("rolling-upgrade.jsonl")).unwrap();
    bytes.extend_from_slice(b"{\"seq\":69,\"t_ms\":954100,\"type\":\"no");
    std::fs::write(&path, bytes).unwrap();
    let j = journal::read(&path).unwrap();
    assert_eq!(j.events.len(), 68);
    let (_client, control) = player::start(j.clone(), ReplayOptions::default()).unwrap();
    control.to_end();
    assert!(control.state().is_finished());
    let md = report::render(&path, report::ReportFormat::Md).unwrap();
    assert!(md.contains("| Outcome | completed |"));
    assert!(md.contains("| Journal | ends in a torn line"));
    // The decisions that matter: the retry of the failed step, the point of no return.
    assert_eq!(Quiz::new(&j).len(), 2);
}
