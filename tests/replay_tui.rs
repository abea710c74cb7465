//! The cockpit as a replay player (`tui::run_replay_on` on a `TestBackend`): the player keys
//! move the replay, the position bar says where it is, seeks show the folded state at once,
//! and the view never runs ahead of the player nor keeps state from before a seek.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use flightdeck::engine::SessionState;
use flightdeck::journal::{self, Journal};
use flightdeck::replay::player::{self, ReplayOptions, ReplayPosition};
use flightdeck::replay::timeline::{CompressedGap, Timeline};
use flightdeck::tui::input::{map_key, Intent, UiAction};
use flightdeck::tui::render::{buffer_text, replay_bar_segments};
use flightdeck::tui::replay::ReplayKey;
use flightdeck::tui::{run_replay_on, Theme, TuiExit, TuiOptions, TuiRole, View};
use futures::channel::mpsc as fmpsc;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn fixture(name: &str) -> Journal {
    journal::read(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

fn key(c: KeyCode) -> io::Result<TermEvent> {
    Ok(TermEvent::Key(KeyEvent::new(c, KeyModifiers::NONE)))
}

/// Replay `journal` in the cockpit, type `keys` then `q`, and return the last screen.
async fn screen_after(journal: Journal, speed: f64, keys: &[KeyCode]) -> String {
    let (client, control) = player::start(
        journal,
        ReplayOptions {
            speed,
            ..ReplayOptions::default()
        },
    )
    .unwrap();
    let (tx, input) = fmpsc::unbounded();
    for k in keys {
        tx.unbounded_send(key(*k)).unwrap();
    }
    tx.unbounded_send(key(KeyCode::Char('q'))).unwrap();
    let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let opts = TuiOptions {
        theme: Theme::dark(),
        alerts: flightdeck::tui::AlertConfig::NONE,
        // Whatever the caller says, a replay player is read-only.
        role: TuiRole::Driver,
        title: "replay".into(),
        demo: None,
    };
    let exit = tokio::time::timeout(
        Duration::from_secs(20),
        run_replay_on(&mut term, client, opts, input, control),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(exit, TuiExit::Left);
    buffer_text(term.backend().buffer())
}

fn bar(screen: &str) -> &str {
    let lines: Vec<&str> = screen.lines().collect();
    lines[lines.len() - 2]
}

#[tokio::test]
async fn pause_start_and_next_step_show_in_the_bar() {
    let j = fixture("lab-generic-rolling.jsonl");
    let t = Timeline::new(j.events.clone(), 5_000);
    let b = t.next_boundary(0).unwrap();
    let steps = SessionState::fold(&j.events).steps.len();
    let s = screen_after(
        j.clone(),
        1.0,
        &[KeyCode::Char(' '), KeyCode::Char('g'), KeyCode::Right],
    )
    .await;
    let bar = bar(&s);
    assert!(bar.contains("⏸ paused"), "{s}");
    assert!(bar.contains(&format!("event {}/{}", b + 1, t.len())), "{s}");
    let step = t.step_at(b).unwrap();
    assert!(bar.contains(&format!("step {}/{steps}", step + 1)), "{s}");
    // The footer names the player keys.
    assert!(s.lines().last().unwrap().contains("space pause"), "{s}");
}

#[tokio::test]
async fn end_shows_the_finished_session_and_start_the_fresh_one() {
    let j = fixture("lab-generic-rolling.jsonl");
    let s = screen_after(j.clone(), 1.0, &[KeyCode::Char(' '), KeyCode::Char('G')]).await;
    assert!(s.contains("FINISHED: completed"), "{s}");
    assert!(
        bar(&s).contains(&format!("event {0}/{0}", j.events.len())),
        "{s}"
    );
    assert!(bar(&s).contains("end"), "{s}");

    let s = screen_after(
        j.clone(),
        1.0,
        &[KeyCode::Char(' '), KeyCode::Char('G'), KeyCode::Char('g')],
    )
    .await;
    assert!(!s.contains("FINISHED"), "{s}");
    assert!(
        bar(&s).contains(&format!("event 1/{}", j.events.len())),
        "{s}"
    );
}

#[tokio::test]
async fn speed_keys_double_and_halve_within_bounds() {
    let j = fixture("lab-generic-rolling.jsonl");
    let s = screen_after(j.clone(), 1.0, &[KeyCode::Char(' '), KeyCode::Char('+')]).await;
    assert!(bar(&s).contains("x2 "), "{s}");
    let slower = [
        KeyCode::Char(' '),
        KeyCode::Char('-'),
        KeyCode::Char('-'),
        KeyCode::Char('-'),
    ];
    let s = screen_after(j.clone(), 1.0, &slower).await;
    assert!(bar(&s).contains("x0.25 "), "{s}");
    let s = screen_after(j, 64.0, &[KeyCode::Char(' '), KeyCode::Char('+')]).await;
    assert!(bar(&s).contains("x64 "), "{s}");
}

#[tokio::test]
async fn d_jumps_to_the_next_decision() {
    let j = fixture("rolling-upgrade.jsonl");
    let t = Timeline::new(j.events.clone(), 10_000);
    let (first, _) = t.decisions()[0];
    let (second, _) = t.decisions()[1];
    let keys = [
        KeyCode::Char(' '),
        KeyCode::Char('g'),
        KeyCode::Char('d'),
        KeyCode::Char('d'),
    ];
    let s = screen_after(j.clone(), 1.0, &keys).await;
    assert!(first > 0 && second > first);
    assert!(
        bar(&s).contains(&format!("event {}/{}", second + 1, t.len())),
        "{s}"
    );
    assert!(bar(&s).contains("decision: confirmed"), "{s}");
}

#[test]
fn player_keys_are_ui_actions_never_commands() {
    let j = fixture("rolling-upgrade.jsonl");
    let mut v = View::from_events(TuiRole::Replay, "t", 0, &j.events);
    let k = |c| KeyEvent::new(c, KeyModifiers::NONE);
    // Without a player attached, they are not player keys.
    assert!(!matches!(
        map_key(&v, &k(KeyCode::Char(' ')), Instant::now()),
        Intent::Ui(UiAction::Replay(_))
    ));
    let t = Timeline::new(j.events.clone(), 10_000);
    v.sync_replay(position(&t, 3, 0), |s| *s = t.state_at(3));
    for (c, want) in [
        (KeyCode::Char(' '), ReplayKey::TogglePause),
        (KeyCode::Char('+'), ReplayKey::Faster),
        (KeyCode::Char('-'), ReplayKey::Slower),
        (KeyCode::Left, ReplayKey::PrevStep),
        (KeyCode::Right, ReplayKey::NextStep),
        (KeyCode::Char('g'), ReplayKey::ToStart),
        (KeyCode::Char('G'), ReplayKey::ToEnd),
        (KeyCode::Char('d'), ReplayKey::NextDecision),
    ] {
        assert_eq!(
            map_key(&v, &k(c), Instant::now()),
            Intent::Ui(UiAction::Replay(want)),
            "{c:?}"
        );
    }
    for c in ['y', 'n', 'u', 'r', 's', 'a', 'c', 'A'] {
        let i = map_key(&v, &k(KeyCode::Char(c)), Instant::now());
        assert!(!matches!(i, Intent::Engine(_)), "{c}: {i:?}");
    }
}

/// A position at `index` as the player would publish it.
fn position(t: &Timeline, index: usize, epoch: u64) -> ReplayPosition {
    ReplayPosition {
        index,
        total: t.len(),
        t_ms: t.t_ms(index),
        t_total_ms: t.t_ms(usize::MAX),
        replay_ms: t.replay_ms(index),
        replay_total_ms: t.replay_total_ms(),
        step: t.step_at(index),
        speed: 1.0,
        paused: false,
        at_end: index + 1 >= t.len(),
        compressed_gap: t.gap_before(index + 1),
        decision: None,
        stopped_before: None,
        epoch,
        damage: None,
        lines_left_out: 0,
    }
}

#[test]
fn the_view_shows_the_players_frame_and_folds_nothing_itself() {
    let j = fixture("rolling-upgrade.jsonl");
    let t = Timeline::new(j.events.clone(), 10_000);
    let mut v = View::new(TuiRole::Replay, "t", 0);
    assert!(v.sync_replay(position(&t, 5, 0), |s| *s = t.state_at(5)));
    assert_eq!(v.state, t.state_at(5));
    // The position it shows already: no state is taken, nothing changes.
    assert!(!v.sync_replay(position(&t, 5, 0), |_| {
        unreachable!("same position: the view has its state")
    }));
    // Playing on: each position comes with its state.
    assert!(v.sync_replay(position(&t, 6, 0), |s| t.bring(s, Some(5), 6)));
    assert_eq!(v.state, t.state_at(6));
    // A seek back, then forward: the state is the player's at the new position.
    assert!(v.sync_replay(position(&t, 2, 1), |s| *s = t.state_at(2)));
    assert_eq!(v.state, t.state_at(2));
    assert!(v.sync_replay(position(&t, 40, 2), |s| *s = t.state_at(40)));
    assert_eq!(v.state, t.state_at(40));
    // A key that only changes the bar (pause): the bar changes, the state is kept.
    let mut paused = position(&t, 40, 2);
    paused.paused = true;
    assert!(v.sync_replay(paused, |_| unreachable!("same index and epoch")));
    assert_eq!(v.state, t.state_at(40));
}

#[test]
fn the_bar_names_a_compressed_idle_gap_while_playing_it() {
    let j = fixture("rolling-upgrade.jsonl");
    let t = Timeline::new(j.events.clone(), 10_000);
    let CompressedGap { index, .. } = t.compressed_gaps()[0];
    let mut p = position(&t, index - 1, 0);
    let text = |p: &ReplayPosition| {
        replay_bar_segments(p, 9)
            .into_iter()
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let playing = text(&p);
    assert!(
        playing.contains("idle 15m") && playing.contains("compressed"),
        "{playing}"
    );
    assert!(playing.contains("▶ playing"), "{playing}");
    p.paused = true;
    let paused = text(&p);
    assert!(!paused.contains("compressed"), "{paused}");
    assert!(paused.contains("⏸ paused"), "{paused}");
}

/// Send `keys` one by one, a minute of (paused) time apart: long enough for the player to run
/// to its next stop at 64x, however far it is.
fn type_slowly(keys: Vec<KeyCode>) -> fmpsc::UnboundedReceiver<io::Result<TermEvent>> {
    let (tx, rx) = fmpsc::unbounded();
    tokio::spawn(async move {
        for k in keys {
            tokio::time::sleep(Duration::from_secs(60)).await;
            if tx.unbounded_send(key(k)).is_err() {
                return;
            }
        }
    });
    rx
}

#[tokio::test(start_paused = true)]
async fn the_quiz_stops_before_each_decision_asks_and_records() {
    use flightdeck::replay::quiz::{Choice, Quiz};
    use flightdeck::tui::run_quiz_on;

    let j = fixture("rolling-upgrade.jsonl");
    let mut quiz = Quiz::new(&j);
    let first = quiz.decision_indices()[0];
    let opts = ReplayOptions {
        speed: 64.0,
        ..ReplayOptions::default()
    };
    let (client, control) = player::start(j.clone(), opts).unwrap();
    // The fixture's two decisions that matter: the retry of the failed upgrade of node2, then
    // the confirmation of the irreversible finalize.
    let keys = vec![
        // Not an answer: refused, the question stays.
        KeyCode::Char('x'),
        KeyCode::Char('r'),
        KeyCode::Enter,
        KeyCode::Char('w'),
        KeyCode::Char('q'),
    ];
    let input = type_slowly(keys);
    let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let opts = TuiOptions {
        theme: Theme::dark(),
        alerts: flightdeck::tui::AlertConfig::NONE,
        role: TuiRole::Replay,
        title: "quiz".into(),
        demo: None,
    };
    let exit = run_quiz_on(&mut term, client, opts, input, control, &mut quiz)
        .await
        .unwrap();
    assert_eq!(exit, TuiExit::Left);
    let r = quiz.result();
    assert_eq!(r.decisions, 2);
    let answers: Vec<(Choice, bool)> = r.answers.iter().map(|a| (a.answer, a.matched)).collect();
    assert_eq!(answers, vec![(Choice::Retry, true), (Choice::Wait, false)]);
    assert_eq!(r.answers[0].index, first);
    // Left at the second reveal, stopped just before its decision: what the operator did,
    // explained with the runbook's reason for the point of no return.
    let s = buffer_text(term.backend().buffer());
    let second = quiz.decision_indices()[1];
    assert!(s.contains("you: wait"), "{s}");
    assert!(
        s.contains("point of no return: the on-disk format moves to 1.5"),
        "{s}"
    );
    assert!(bar(&s).contains(&format!("event {}/", second)), "{s}");
    assert!(bar(&s).contains("quiz 2/2 answered, 1 same"), "{s}");
}

#[test]
fn a_quiz_refuses_to_jump_ahead_and_takes_only_answers_at_a_question() {
    use flightdeck::replay::quiz::{Choice, Quiz};
    use flightdeck::tui::replay::QuizView;

    let j = fixture("rolling-upgrade.jsonl");
    let t = Timeline::new(j.events.clone(), 10_000);
    let quiz = Quiz::new(&j);
    let mut v = View::new(TuiRole::Replay, "t", 0);
    v.sync_replay(position(&t, 3, 0), |s| *s = t.state_at(3));
    v.quiz = Some(QuizView {
        total: quiz.len(),
        answered: 0,
        matched: 0,
        question: None,
        reveal: None,
    });
    let k = |c| KeyEvent::new(c, KeyModifiers::NONE);
    let at = Instant::now();
    for c in [KeyCode::Right, KeyCode::Char('G'), KeyCode::Char('d')] {
        assert!(
            matches!(map_key(&v, &k(c), at), Intent::Ui(UiAction::Status(_))),
            "{c:?}"
        );
    }
    assert_eq!(
        map_key(&v, &k(KeyCode::Left), at),
        Intent::Ui(UiAction::Replay(ReplayKey::PrevStep))
    );
    v.quiz.as_mut().unwrap().question = quiz.current();
    assert_eq!(
        map_key(&v, &k(KeyCode::Char('m')), at),
        Intent::Ui(UiAction::Replay(ReplayKey::Answer(Choice::MarkDone)))
    );
    for c in [KeyCode::Char(' '), KeyCode::Left, KeyCode::Char('g')] {
        assert!(
            !matches!(map_key(&v, &k(c), at), Intent::Ui(UiAction::Replay(_))),
            "{c:?} at an open question"
        );
    }
    assert_eq!(
        map_key(&v, &k(KeyCode::Char('q')), at),
        Intent::Ui(UiAction::Quit)
    );
}
