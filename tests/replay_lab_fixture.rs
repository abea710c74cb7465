//! The journal of a real lab upgrade (`tests/fixtures/lab-generic-rolling.jsonl`, recorded with
//! `FLIGHTDECK_LAB_TIMING=fast flightdeck run procedures/generic-rolling.toml --lab --load 20
//! --yes --headless`): replaying it ends in the state a plain fold gives, seeks land on the same
//! states, and its report has the figures of a clean rolling upgrade.

#[path = "common/replay_follow.rs"]
mod replay_follow;

use std::path::Path;
use std::time::Duration;

use flightdeck::engine::state::Mode;
use flightdeck::engine::SessionState;
use flightdeck::journal::{self, Journal};
use flightdeck::replay::player::{self, ReplayOptions};
use flightdeck::replay::timeline::Timeline;
use flightdeck::report::{self, ReportOutcome};
use replay_follow::follow;

fn lab_journal() -> Journal {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lab-generic-rolling.jsonl");
    journal::read(&path).unwrap()
}

#[tokio::test(start_paused = true)]
async fn replaying_the_lab_journal_ends_where_folding_it_does() {
    let j = lab_journal();
    let folded = SessionState::fold(&j.events);
    assert!(
        matches!(folded.mode, Mode::Finished(_)),
        "the recorded session finished"
    );
    let opts = ReplayOptions {
        speed: 16.0,
        ..ReplayOptions::default()
    };
    let (mut client, control) = player::start(j.clone(), opts).unwrap();
    let mut mine = SessionState::empty();
    let mut applied = 0;
    while applied < j.events.len() {
        let e = tokio::time::timeout(Duration::from_secs(3600), client.events.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(follow(&mut mine, &e), "in order: {}", e.seq);
        applied += 1;
    }
    assert_eq!(mine, folded);
    assert!(control.position().at_end);
    assert_eq!(control.state(), folded);
}

#[tokio::test(start_paused = true)]
async fn every_step_boundary_seeks_to_the_folded_state() {
    let j = lab_journal();
    let timeline = Timeline::new(j.events.clone(), 5_000);
    assert!(
        timeline.step_boundaries().len() >= 23 * 2,
        "one start and one finish per step"
    );
    let (_client, control) = player::start(j.clone(), ReplayOptions::default()).unwrap();
    control.pause();
    let mut seen = 0;
    control.to_start();
    loop {
        let before = control.position().index;
        control.next_step();
        let at = control.position().index;
        if at == before {
            break;
        }
        assert_eq!(
            control.state(),
            SessionState::fold(&j.events[..=at]),
            "at {at}"
        );
        seen += 1;
    }
    assert_eq!(seen, timeline.step_boundaries().len());
    control.to_end();
    assert_eq!(control.state(), SessionState::fold(&j.events));
}

#[test]
fn its_report_has_sane_figures() {
    let j = lab_journal();
    let r = report::build(&j);
    assert_eq!(r.procedure, "generic-rolling");
    assert_eq!(r.outcome, ReportOutcome::Completed);
    assert_eq!(r.from_version.as_deref(), Some("1.0.0"));
    assert_eq!(r.to_version.as_deref(), Some("1.1.0"));
    assert_eq!(r.events, j.events.len());
    assert!(!r.torn_tail);
    assert_eq!(r.steps.len(), 23);
    for s in &r.steps {
        assert_eq!(s.status, "done", "{}", s.key);
        assert_eq!(s.attempts, 1, "{}", s.key);
        assert!(s.failures.is_empty(), "{}", s.key);
        assert!(s.duration_ms <= r.duration_ms, "{}", s.key);
    }
    // A rolling upgrade keeps serving: no write freeze, never without a ready backend.
    assert_eq!(r.read_only.total_ms, 0);
    assert_eq!(r.no_ready_backend.total_ms, 0);
    // Fast lab timing: seconds, not minutes; the verify gates wait for a stable probe.
    assert!(
        (3_000..60_000).contains(&r.duration_ms),
        "{}",
        r.duration_ms
    );
    let verify: u64 = r
        .steps
        .iter()
        .filter(|s| s.key.starts_with("verify@"))
        .map(|s| s.duration_ms)
        .sum();
    assert!(verify > 0 && verify <= r.duration_ms, "{verify}");
    let t = r.traffic.expect("the lab recorded its load");
    assert!(t.reads_ok > 0, "{t:?}");
    assert_eq!(t.reads_failed, 0, "{t:?}");
    let md = report::markdown(&r);
    assert!(md.contains("| Outcome | completed |"), "{md}");
}

/// `tests/fixtures/lab-cockpit-session.jsonl` was recorded by driving the real cockpit in tmux
/// (`run procedures/generic-rolling.toml --lab --load 20 --foreground`, fast lab timing): every
/// step confirmed by hand, a note, one step undone and run again.
#[test]
fn the_recorded_cockpit_session_has_the_operators_decisions_for_a_quiz() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lab-cockpit-session.jsonl");
    let j = journal::read(&path).unwrap();
    let timeline = Timeline::new(j.events.clone(), 5_000);
    use flightdeck::replay::timeline::DecisionKind;
    let kinds: Vec<DecisionKind> = timeline.decisions().iter().map(|(_, k)| *k).collect();
    assert!(kinds.contains(&DecisionKind::Note), "{kinds:?}");
    assert!(kinds.contains(&DecisionKind::UndoConfirmed), "{kinds:?}");
    assert!(
        kinds
            .iter()
            .filter(|k| **k == DecisionKind::Confirmed)
            .count()
            >= 18
    );
    let mut quiz = flightdeck::replay::quiz::Quiz::new(&j);
    // Of the operator's twenty-odd decisions one mattered: the undo (its request and its
    // confirmation are one question); routine confirmations are not asked about.
    assert_eq!(quiz.len(), 1);
    let reveal = quiz
        .answer(flightdeck::replay::quiz::Answer {
            choice: flightdeck::replay::quiz::Choice::Undo,
            note: None,
        })
        .unwrap();
    assert_eq!(reveal.recorded, flightdeck::replay::quiz::Choice::Undo);
    assert!(reveal.matched);
    let r = report::build(&j);
    assert_eq!(r.outcome, ReportOutcome::Completed);
    let md = report::markdown(&r);
    assert!(md.contains("node2 drained"), "the note is in the report");
}
