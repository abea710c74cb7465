//! Replay and report on journals from real and crashed sessions.

mod common;

use common::plans::{empty_target, plan, sh, step};

#[path = "fixtures/builder.rs"]
mod builder;

use std::time::Duration;

use builder::fixture_path;
use flightdeck::engine::event::{AutoConfirm, Event};
use flightdeck::engine::session::{self, EngineConfig, EngineTask};
use flightdeck::engine::state::StepStatus;
use flightdeck::engine::{SessionState, Stamped};
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
        assert!(common::replay_follow::follow(&mut view, &e));
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

/// The fixture journal rewritten with event `k`'s line damaged past its start (it reads as
/// `seq`, `t_ms` and `type`, so indexing does not see it; its event does not decode), and,
/// when `resumed`, a `resumed` event a few events later that journals it as skipped (what a
/// resume with `--skip-bad-lines` writes). Returns the file and the damaged line's number.
fn damaged_fixture(dir: &std::path::Path, k: usize, resumed: bool) -> (std::path::PathBuf, usize) {
    let text = std::fs::read_to_string(fixture_path("rolling-upgrade.jsonl")).unwrap();
    let header = text.lines().next().unwrap();
    let mut events = journal::read(&fixture_path("rolling-upgrade.jsonl"))
        .unwrap()
        .events;
    // Line 1 is the header: event `i` is line `i + 2`.
    let line = k + 2;
    if resumed {
        let t_ms = events[k + 3].t_ms;
        events.insert(
            k + 4,
            Stamped {
                seq: 0,
                t_ms,
                event: Event::Resumed {
                    operator: "erin".into(),
                    skipped_lines: vec![line],
                    down_ms: None,
                },
            },
        );
    }
    for (i, e) in events.iter_mut().enumerate() {
        e.seq = i as u64 + 1;
    }
    let mut out = format!("{header}\n");
    for (i, e) in events.iter().enumerate() {
        if i == k {
            out.push_str(&format!(
                r#"{{"seq":{},"t_ms":{},"type":"output","step":"two"}}"#,
                e.seq, e.t_ms
            ));
        } else {
            out.push_str(&serde_json::to_string(e).unwrap());
        }
        out.push('\n');
    }
    let path = dir.join("damaged.jsonl");
    std::fs::write(&path, out).unwrap();
    (path, line)
}

/// Play the replay from its start to its end at top speed (tokio's paused clock).
async fn play_to_the_end(control: &player::ReplayControl) {
    let mut pos = control.subscribe();
    while !control.position().at_end {
        pos.changed().await.expect("the player runs");
    }
}

#[tokio::test(start_paused = true)]
async fn a_damaged_line_a_resume_skipped_is_left_out_and_the_replay_plays_on() {
    let dir = tempfile::tempdir().unwrap();
    let k = 30;
    let (path, line) = damaged_fixture(dir.path(), k, true);
    // What `report` and `resume` read: every event but the damaged one.
    let read = journal::read(&path).unwrap();
    assert_eq!(read.skipped.len(), 1, "{:?}", read.skipped);
    let opts = ReplayOptions {
        speed: 64.0,
        ..Default::default()
    };
    let (_client, control) = player::open(&path, opts).unwrap();
    play_to_the_end(&control).await;
    let p = control.position();
    // Played past the damaged line to the journal's end, which it keeps as a place.
    assert_eq!(
        (p.index + 1, p.total),
        (read.events.len() + 1, read.events.len() + 1)
    );
    assert_eq!(p.damage, None);
    assert_eq!(control.state(), SessionState::fold(&read.events));
    let t = control.timeline();
    t.wait_folded();
    let left_out = t.left_out();
    assert_eq!(left_out.len(), 1, "{left_out:?}");
    assert_eq!(left_out[0].0, line);
    assert!(left_out[0].1.contains("damaged event line"), "{left_out:?}");
    assert!(t.is_left_out(k));
    // At the damaged line, the state is the one before it; seeks around it agree.
    control.seek(k);
    assert_eq!(control.state(), SessionState::fold(&read.events[..k]));
    control.seek(k + 1);
    assert_eq!(control.state(), SessionState::fold(&read.events[..=k]));
    // The bar says a line was left out.
    assert!(
        control
            .position()
            .status_line()
            .contains("1 bad line skipped"),
        "{}",
        control.position().status_line()
    );
}

#[tokio::test(start_paused = true)]
async fn skip_bad_lines_leaves_a_damaged_line_out_of_the_replay_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let k = 30;
    let (path, line) = damaged_fixture(dir.path(), k, false);
    let skip = journal::ReadOptions {
        skip_bad_lines: true,
    };
    let read = journal::read_with(&path, skip).unwrap();
    assert_eq!(read.skipped.len(), 1);
    let opts = ReplayOptions {
        speed: 64.0,
        ..Default::default()
    };
    let (_client, control) = player::open_with(&path, opts, skip).unwrap();
    play_to_the_end(&control).await;
    let p = control.position();
    assert_eq!(p.index + 1, read.events.len() + 1);
    assert_eq!(p.damage, None);
    assert_eq!(p.lines_left_out, 1);
    assert_eq!(control.state(), SessionState::fold(&read.events));
    assert_eq!(control.timeline().left_out()[0].0, line);
    // The cockpit's bar says so too.
    let steps = control.state().steps.len();
    let bar = flightdeck::tui::render::replay_bar_segments(&p, steps);
    assert!(
        bar.iter().any(|(_, s)| s == "1 bad line skipped"),
        "{bar:?}"
    );

    // Without the flag (and no resume that skipped it) the replay still stops at the line.
    let (_client, control) = player::open(&path, ReplayOptions::default()).unwrap();
    control.timeline().wait_folded();
    control.to_end();
    let p = control.position();
    assert_eq!(p.index + 1, k, "ends before the damaged line");
    let why = p.damage.clone().expect("the damage is said");
    assert!(why.contains(&format!(":{line}: ")), "{why}");
    assert!(p.status_line().contains("the journal is damaged here"));
    assert_eq!(p.lines_left_out, 0);
    assert_eq!(control.state(), SessionState::fold(&read.events[..k]));
}

#[tokio::test(start_paused = true)]
async fn a_replay_reads_through_the_readers_it_opened() {
    // Playback keeps its reader open (it does not open the file per event): a journal moved
    // away mid-replay (log rotation, a cleanup) still plays to its end, seeks included.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    std::fs::copy(fixture_path("rolling-upgrade.jsonl"), &path).unwrap();
    let j = journal::read(&path).unwrap();
    let opts = ReplayOptions {
        speed: 64.0,
        ..Default::default()
    };
    let (_client, control) = player::open(&path, opts).unwrap();
    std::fs::remove_file(&path).unwrap();
    play_to_the_end(&control).await;
    assert_eq!(control.position().damage, None);
    assert_eq!(control.state(), SessionState::fold(&j.events));
    for i in [40, 3, 41, 67, 0] {
        control.seek(i);
        assert_eq!(
            control.state(),
            SessionState::fold(&j.events[..=i]),
            "seek {i}"
        );
    }
}
