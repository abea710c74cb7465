//! Keys to actions: what each key means in each situation, the stale-key guard, and roles.

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use flightdeck::engine::event::{Event, PromptKind, Verdict};
use flightdeck::engine::Command;
use flightdeck::tui::demo::{self, Script};
use flightdeck::tui::input::{map_key, Intent, UiAction};
use flightdeck::tui::render::to_text;
use flightdeck::tui::view::{key_is_stale, Overlay, Panel, Scroll, TuiRole, View, PROMPT_GUARD};
use flightdeck::tui::Theme;

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn code(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

/// A view of `script` whose prompt (if any) appeared at `shown`.
fn view(script: &Script, role: TuiRole, shown: Instant) -> View {
    // In the demo session alice (id 1) drives and bob (id 2) watches.
    let id = if role == TuiRole::Observer { 2 } else { 1 };
    let mut v = View::from_events(role, "t", id, script.events());
    v.sync_prompt(shown);
    v
}

fn later(shown: Instant) -> Instant {
    shown + PROMPT_GUARD + Duration::from_millis(50)
}

fn awaiting_backup() -> (Script, u64) {
    let mut s = Script::started();
    s.through(demo::STEP_BACKUP);
    let id = s.prompt(demo::STEP_BACKUP, PromptKind::Run);
    (s, id)
}

#[test]
fn guard_compares_instants() {
    let shown = Instant::now();
    assert!(key_is_stale(shown, shown));
    assert!(key_is_stale(shown, shown + Duration::from_millis(299)));
    assert!(!key_is_stale(shown, shown + Duration::from_millis(300)));
    assert!(!key_is_stale(shown, shown + Duration::from_secs(5)));
    // A key read before the prompt appeared (queued) is stale too.
    assert!(key_is_stale(shown + Duration::from_secs(1), shown));
}

#[test]
fn y_confirms_the_open_prompt_by_id() {
    let (s, id) = awaiting_backup();
    let shown = Instant::now();
    let v = view(&s, TuiRole::Driver, shown);
    assert_eq!(
        map_key(&v, &key('y'), later(shown)),
        Intent::Engine(Command::Confirm {
            prompt: id,
            phrase: None
        })
    );
    assert_eq!(
        map_key(&v, &code(KeyCode::Esc), later(shown)),
        Intent::Engine(Command::Decline { prompt: id })
    );
    // `n` writes a note, prompt or not: a note can be attached at any time.
    assert_eq!(
        map_key(&v, &key('n'), later(shown)),
        Intent::Ui(UiAction::OpenNote)
    );
}

#[test]
fn a_key_typed_just_before_the_prompt_never_answers_it() {
    let (s, _) = awaiting_backup();
    let shown = Instant::now();
    let v = view(&s, TuiRole::Driver, shown);
    for k in ['y', 'n', 'r', 'u', 's', 'a'] {
        let i = map_key(&v, &key(k), shown + Duration::from_millis(120));
        assert!(matches!(i, Intent::Ui(UiAction::Status(_))), "{k}: {i:?}");
    }
    // Navigation is never an answer: it still works.
    assert_eq!(
        map_key(&v, &code(KeyCode::Tab), shown),
        Intent::Ui(UiAction::FocusNext)
    );
}

#[test]
fn a_new_prompt_restarts_the_guard() {
    let (mut s, _) = awaiting_backup();
    let first = Instant::now();
    let mut v = view(&s, TuiRole::Driver, first);
    // Declined, then acted again: a new prompt id, shown later.
    s.push(
        10,
        Event::Declined {
            step: demo::STEP_BACKUP,
            by: "alice".into(),
        },
    );
    let id2 = s.prompt(demo::STEP_BACKUP, PromptKind::Run);
    let second = later(first);
    for e in &s.events()[v.state.last_seq as usize..] {
        v.apply(e, second);
    }
    assert!(v.sync_prompt(second));
    assert!(matches!(
        map_key(&v, &key('y'), second + Duration::from_millis(10)),
        Intent::Ui(UiAction::Status(_))
    ));
    assert_eq!(
        map_key(&v, &key('y'), later(second)),
        Intent::Engine(Command::Confirm {
            prompt: id2,
            phrase: None
        })
    );
}

#[test]
fn phrase_prompt_sends_what_was_typed() {
    let mut s = Script::started();
    s.through(demo::STEP_MIGRATE);
    let id = s.prompt(demo::STEP_MIGRATE, PromptKind::Run);
    let shown = Instant::now();
    let mut v = view(&s, TuiRole::Driver, shown);
    // y is just a letter here.
    for c in "migrate jahia".chars() {
        match map_key(&v, &key(c), later(shown)) {
            Intent::Ui(a @ UiAction::Edit(_)) => {
                v.update(a);
            }
            other => panic!("{c}: {other:?}"),
        }
    }
    assert_eq!(
        map_key(&v, &code(KeyCode::Enter), later(shown)),
        Intent::Engine(Command::Confirm {
            prompt: id,
            phrase: Some("migrate jahia".into())
        })
    );
}

#[test]
fn failed_and_interrupted_prompts_offer_their_choices() {
    let (mut s, _) = awaiting_backup();
    s.push(
        10,
        Event::Confirmed {
            step: demo::STEP_BACKUP,
            by: "alice".into(),
            auto: false,
        },
    );
    s.start(demo::STEP_BACKUP);
    s.finish(demo::STEP_BACKUP, Verdict::Failed, "exit 1");
    s.prompt(demo::STEP_BACKUP, PromptKind::Failed);
    let shown = Instant::now();
    let v = view(&s, TuiRole::Driver, shown);
    let at = later(shown);
    let step = demo::STEP_BACKUP;
    assert_eq!(
        map_key(&v, &key('r'), at),
        Intent::Engine(Command::Retry { step })
    );
    // The backup has no undo: `u` is neither offered nor sent (the engine would refuse it).
    assert_eq!(
        map_key(&v, &key('u'), at),
        Intent::Ui(UiAction::Status("step 3 has no undo action".into()))
    );
    let text = flightdeck::tui::render::to_text(&v, &flightdeck::tui::Theme::dark(), 100, 30);
    assert!(
        text.contains("r retry  d mark done  s skip  a abort  Esc hold"),
        "{text}"
    );
    assert!(
        text.contains("runbook: A full dump: the only way back"),
        "{text}"
    );
    // Steps 1 and 2 (announce, a health gate) have nothing to undo.
    assert!(text.contains("nothing to undo so far"), "{text}");
    assert_eq!(
        map_key(&v, &key('s'), at),
        Intent::Ui(UiAction::AskSkip { step })
    );
    assert_eq!(map_key(&v, &key('a'), at), Intent::Ui(UiAction::AskAbort));
    // A failed retry may have taken effect all the same: mark done stays on offer.
    assert_eq!(
        map_key(&v, &key('d'), at),
        Intent::Engine(Command::MarkDone { step })
    );

    s.push(
        10,
        Event::Resumed {
            operator: "alice".into(),
            skipped_lines: vec![],
            down_ms: None,
        },
    );
    s.prompt(step, PromptKind::Interrupted);
    let v = view(&s, TuiRole::Driver, shown);
    assert_eq!(
        map_key(&v, &key('d'), at),
        Intent::Engine(Command::MarkDone { step })
    );
    assert_eq!(
        map_key(&v, &key('r'), at),
        Intent::Engine(Command::Retry { step })
    );
    // K kills a process group left running from before the restart, only when there is one.
    assert_eq!(map_key(&v, &key('K'), at), Intent::Nothing);
    s.push(10, Event::OrphanAlive { step, pgid: 4242 });
    let v = view(&s, TuiRole::Driver, shown);
    assert_eq!(
        map_key(&v, &key('K'), at),
        Intent::Engine(Command::KillOrphan { step })
    );
}

#[test]
fn skip_and_abort_ask_locally_first() {
    let mut s = Script::started();
    s.through(demo::STEP_BACKUP);
    let mut v = view(&s, TuiRole::Driver, Instant::now());
    let now = Instant::now();
    let ask = map_key(&v, &key('s'), now);
    assert_eq!(
        ask,
        Intent::Ui(UiAction::AskSkip {
            step: demo::STEP_BACKUP
        })
    );
    if let Intent::Ui(a) = ask {
        v.update(a);
    }
    assert_eq!(
        map_key(&v, &key('n'), now),
        Intent::Ui(UiAction::CloseOverlay)
    );
    assert_eq!(
        map_key(&v, &key('y'), now),
        Intent::Engine(Command::Skip {
            step: demo::STEP_BACKUP
        })
    );
    v.overlay = Some(Overlay::AbortChoice);
    assert_eq!(
        map_key(&v, &key('r'), now),
        Intent::Ui(UiAction::AskAbortReason { rollback: true })
    );
    assert_eq!(
        map_key(&v, &code(KeyCode::Esc), now),
        Intent::Ui(UiAction::CloseOverlay)
    );
    // `k`, then why: the reason leaves with the abort.
    let Intent::Ui(a) = map_key(&v, &key('k'), now) else {
        panic!("k asks why");
    };
    v.update(a);
    for c in "disk full on node2".chars() {
        if let Intent::Ui(a) = map_key(&v, &key(c), now) {
            v.update(a);
        }
    }
    // Letters are the reason's now: `r` and `k` do not choose again.
    assert!(matches!(
        &v.overlay,
        Some(Overlay::AbortReason { rollback: false, input }) if input.value() == "disk full on node2"
    ));
    let screen = to_text(&v, &Theme::dark(), 80, 24);
    assert!(
        screen.contains("Abort, keeping what was done: why?")
            && screen.contains("Journaled with your name, and in the report.")
            && screen.contains("> disk full on node2"),
        "{screen}"
    );
    assert_eq!(
        map_key(&v, &code(KeyCode::Enter), now),
        Intent::Engine(Command::Abort {
            rollback: false,
            reason: Some("disk full on node2".into())
        })
    );
    // Esc goes back to the choice; Enter alone sends no reason.
    assert_eq!(
        map_key(&v, &code(KeyCode::Esc), now),
        Intent::Ui(UiAction::AskAbort)
    );
    v.update(UiAction::AskAbortReason { rollback: true });
    assert_eq!(
        map_key(&v, &code(KeyCode::Enter), now),
        Intent::Engine(Command::Abort {
            rollback: true,
            reason: None
        })
    );
    v.sent(&Command::Abort {
        rollback: true,
        reason: None,
    });
    assert!(v.overlay.is_none());
}

#[test]
fn undo_targets_the_latest_completed_step_and_enter_acts_when_held() {
    let (mut s, _) = awaiting_backup();
    let now = Instant::now();
    let v = view(&s, TuiRole::Driver, now);
    // Announce and preflight are done; the latest with effects is the preflight gate.
    assert_eq!(
        map_key(&v, &key('u'), later(now)),
        Intent::Engine(Command::Undo { step: 1 })
    );
    s.push(
        10,
        Event::Declined {
            step: demo::STEP_BACKUP,
            by: "alice".into(),
        },
    );
    let v = view(&s, TuiRole::Driver, now);
    assert!(v.state.held);
    assert_eq!(
        map_key(&v, &code(KeyCode::Enter), now),
        Intent::Engine(Command::Act)
    );
}

#[test]
fn observer_cannot_confirm_but_can_note_approve_and_ask() {
    let mut s = Script::started();
    s.through(demo::STEP_MIGRATE);
    let id = s.prompt(demo::STEP_MIGRATE, PromptKind::Run);
    let shown = Instant::now();
    let v = view(&s, TuiRole::Observer, shown);
    assert!(!v.prompt_visible());
    for k in [
        key('y'),
        key('u'),
        key('r'),
        key('s'),
        key('a'),
        key('d'),
        code(KeyCode::Enter),
    ] {
        let i = map_key(&v, &k, later(shown));
        assert!(matches!(i, Intent::Ui(UiAction::Status(_))), "{k:?}: {i:?}");
    }
    assert_eq!(
        map_key(&v, &key('c'), shown),
        Intent::Engine(Command::RequestControl)
    );
    assert_eq!(
        map_key(&v, &key('A'), shown),
        Intent::Engine(Command::Approve { prompt: id })
    );
    assert_eq!(
        map_key(&v, &key('n'), shown),
        Intent::Ui(UiAction::OpenNote)
    );
}

#[test]
fn replay_sends_nothing() {
    let (s, _) = awaiting_backup();
    let v = view(&s, TuiRole::Replay, Instant::now());
    for k in ['y', 'n', 'u', 'c', 'a', 'q'] {
        let i = map_key(&v, &key(k), later(Instant::now()));
        assert!(!matches!(i, Intent::Engine(_)), "{k}: {i:?}");
    }
}

#[test]
fn driver_grants_control_on_request() {
    let mut s = Script::started();
    s.push(
        10,
        Event::ControlRequested {
            id: 2,
            name: "bob".into(),
        },
    );
    let v = view(&s, TuiRole::Driver, Instant::now());
    assert_eq!(
        map_key(&v, &key('g'), Instant::now()),
        Intent::Engine(Command::GrantControl { to: 2 })
    );
}

#[test]
fn note_is_typed_then_sent() {
    let s = Script::started();
    let mut v = view(&s, TuiRole::Driver, Instant::now());
    let now = Instant::now();
    if let Intent::Ui(a) = map_key(&v, &key('n'), now) {
        v.update(a);
    }
    for c in "db slow".chars() {
        if let Intent::Ui(a) = map_key(&v, &key(c), now) {
            v.update(a);
        }
    }
    let send = map_key(&v, &code(KeyCode::Enter), now);
    assert_eq!(
        send,
        Intent::Engine(Command::Note {
            text: "db slow".into()
        })
    );
    if let Intent::Engine(c) = &send {
        v.sent(c);
    }
    assert!(v.overlay.is_none());
}

#[test]
fn quit_asks_only_while_a_step_runs() {
    let s = Script::started();
    let v = view(&s, TuiRole::Driver, Instant::now());
    assert_eq!(
        map_key(&v, &key('q'), Instant::now()),
        Intent::Ui(UiAction::Quit)
    );
    let mut s = Script::started();
    s.through(demo::STEP_BACKUP);
    s.start(demo::STEP_BACKUP);
    let mut v = view(&s, TuiRole::Driver, Instant::now());
    assert_eq!(
        map_key(&v, &key('q'), Instant::now()),
        Intent::Ui(UiAction::AskQuit)
    );
    v.update(UiAction::AskQuit);
    assert_eq!(
        map_key(&v, &key('y'), Instant::now()),
        Intent::Ui(UiAction::Quit)
    );
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    v.overlay = None;
    assert_eq!(
        map_key(&v, &ctrl_c, Instant::now()),
        Intent::Ui(UiAction::AskQuit)
    );
}

/// The no-argument demo: q (or Ctrl-C) before the end asks to leave it running or end it;
/// once it is over, q ends it (its server and lab have nothing left to do).
#[test]
fn quitting_the_demo_asks_to_leave_it_running_or_end_it() {
    let (s, _) = awaiting_backup();
    let mut v = view(&s, TuiRole::Driver, Instant::now());
    v.demo = Some("demo-1".into());
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    for k in [key('q'), ctrl_c] {
        assert_eq!(
            map_key(&v, &k, Instant::now()),
            Intent::Ui(UiAction::AskLeaveDemo)
        );
    }
    assert!(!v.update(UiAction::AskLeaveDemo));
    assert!(matches!(v.overlay, Some(Overlay::LeaveDemo)));
    assert_eq!(map_key(&v, &key('y'), Instant::now()), Intent::Nothing);
    assert_eq!(
        map_key(&v, &code(KeyCode::Esc), Instant::now()),
        Intent::Ui(UiAction::CloseOverlay)
    );
    assert_eq!(
        map_key(&v, &key('l'), Instant::now()),
        Intent::Ui(UiAction::Quit)
    );
    assert_eq!(
        map_key(&v, &key('e'), Instant::now()),
        Intent::Ui(UiAction::EndDemo)
    );
    assert!(
        v.update(UiAction::EndDemo),
        "ending the demo leaves the cockpit"
    );
    assert!(v.end_demo && v.overlay.is_none());

    let mut s = Script::started();
    s.push(
        10,
        Event::Finished {
            outcome: flightdeck::engine::event::Outcome::Completed,
        },
    );
    let mut v = view(&s, TuiRole::Driver, Instant::now());
    v.demo = Some("demo-1".into());
    assert_eq!(
        map_key(&v, &key('q'), Instant::now()),
        Intent::Ui(UiAction::EndDemo)
    );
}

/// The `:` command line: typed, then Enter; each command does what its key does (or what
/// has no key: a theme, a step to read), an unknown one says what there is.
#[test]
fn the_command_line_runs_the_less_frequent_actions() {
    use flightdeck::tui::input::command_line;
    let mut s = Script::started();
    s.through(demo::STEP_DRAIN1);
    let mut v = view(&s, TuiRole::Driver, Instant::now());
    assert_eq!(
        map_key(&v, &key(':'), Instant::now()),
        Intent::Ui(UiAction::OpenCommand)
    );
    v.update(UiAction::OpenCommand);
    for c in "note editors told".chars() {
        if let Intent::Ui(a) = map_key(&v, &key(c), Instant::now()) {
            v.update(a);
        }
    }
    assert_eq!(
        map_key(&v, &code(KeyCode::Enter), Instant::now()),
        Intent::Engine(Command::Note {
            text: "editors told".into()
        })
    );
    v.sent(&Command::Note {
        text: "editors told".into(),
    });
    assert!(v.overlay.is_none(), "sending closes the command line");

    assert_eq!(
        command_line(&v, "undo"),
        Intent::Engine(Command::Undo {
            step: demo::STEP_READ_ONLY
        })
    );
    assert_eq!(command_line(&v, ":abort"), Intent::Ui(UiAction::AskAbort));
    assert_eq!(
        command_line(&v, "theme light"),
        Intent::Ui(UiAction::SetTheme("light".into()))
    );
    assert_eq!(
        command_line(&v, "step 14"),
        Intent::Ui(UiAction::ShowStep(13))
    );
    assert!(matches!(
        command_line(&v, "step 99"),
        Intent::Ui(UiAction::Status(s)) if s.starts_with("usage: :step N (1 to 16)")
    ));
    assert!(matches!(
        command_line(&v, "frobnicate"),
        Intent::Ui(UiAction::Status(s)) if s.starts_with("unknown command :frobnicate")
    ));
    // A guard's refusal: `:override` types its phrase, with the reason after ` -- `.
    assert!(matches!(
        command_line(&v, "override x for y -- z"),
        Intent::Ui(UiAction::Status(s)) if s == "no guard has refused a step"
    ));
    let mut refused = v.state.clone();
    refused.guard_refused = Some(flightdeck::engine::state::GuardRefusal {
        step: 3,
        guard: "master-quorum".into(),
        node: "node2".into(),
        reason: "guard `master-quorum` refuses ...".into(),
    });
    let mut g = view(&s, TuiRole::Driver, Instant::now());
    g.state = refused;
    assert!(matches!(
        command_line(&g, "override"),
        Intent::Ui(UiAction::Status(s)) if s == "usage: :override master-quorum for node2 -- REASON"
    ));
    assert_eq!(
        command_line(
            &g,
            ":override master-quorum for node2 -- node1 is being replaced"
        ),
        Intent::Engine(Command::OverrideGuard {
            step: 3,
            phrase: "override master-quorum for node2".into(),
            reason: "node1 is being replaced".into(),
        })
    );
    v.update(UiAction::OpenCommand);
    v.update(UiAction::ShowStep(13));
    assert_eq!((v.selected, v.overlay.is_none()), (Some(13), true));
    assert_eq!(v.detail_step(), Some(13));
    // An observer may write a note, not undo or abort.
    let o = view(&s, TuiRole::Observer, Instant::now());
    assert!(matches!(
        command_line(&o, "note hi"),
        Intent::Engine(Command::Note { .. })
    ));
    assert!(matches!(
        command_line(&o, "undo"),
        Intent::Ui(UiAction::Status(s)) if s.starts_with("observer")
    ));
}

#[test]
fn focus_cycles_and_scrolling_moves_the_selection() {
    let mut s = Script::started();
    s.through(demo::STEP_BACKUP);
    let mut v = view(&s, TuiRole::Driver, Instant::now());
    assert_eq!(v.focus, Panel::Procedure);
    v.update(UiAction::Down);
    assert_eq!(v.selected, Some(demo::STEP_BACKUP + 1));
    assert_eq!(v.detail_step(), Some(demo::STEP_BACKUP + 1));
    v.update(UiAction::Follow);
    assert_eq!(v.selected, None);
    for p in [
        Panel::Detail,
        Panel::Output,
        Panel::Probes,
        Panel::Procedure,
    ] {
        v.update(UiAction::FocusNext);
        assert_eq!(v.focus, p);
    }
    v.update(UiAction::FocusPrev);
    assert_eq!(v.focus, Panel::Probes);
    v.update(UiAction::Up);
    assert_eq!(v.probes_scroll, Scroll::At(1));
    v.update(UiAction::Down);
    assert_eq!(v.probes_scroll, Scroll::Follow);
}

#[test]
fn a_granted_observer_becomes_the_driver() {
    let mut s = Script::started();
    s.through(demo::STEP_BACKUP);
    let id = s.prompt(demo::STEP_BACKUP, PromptKind::Run);
    s.push(
        10,
        Event::DriverChanged {
            id: 2,
            name: "bob".into(),
            reason: None,
        },
    );
    let shown = Instant::now();
    let bob = view(&s, TuiRole::Observer, shown);
    assert_eq!(bob.effective_role(), TuiRole::Driver);
    assert_eq!(
        map_key(&bob, &key('y'), later(shown)),
        Intent::Engine(Command::Confirm {
            prompt: id,
            phrase: None
        })
    );
    let alice = view(&s, TuiRole::Driver, shown);
    assert_eq!(alice.effective_role(), TuiRole::Observer);
    assert!(matches!(
        map_key(&alice, &key('y'), later(shown)),
        Intent::Ui(UiAction::Status(_))
    ));
}

#[test]
fn observer_takes_control_when_nobody_drives() {
    let mut s = Script::started();
    s.push(10, Event::OperatorLeft { id: 1 });
    let v = view(&s, TuiRole::Observer, Instant::now());
    assert_eq!(
        map_key(&v, &key('c'), Instant::now()),
        Intent::Engine(Command::TakeControl { reason: None })
    );
}

#[test]
fn a_prompt_uncovered_by_an_overlay_gets_a_fresh_guard() {
    let (s, id) = awaiting_backup();
    let t0 = Instant::now();
    let mut v = view(&s, TuiRole::Driver, t0);
    // Help over the prompt, then closed two seconds later: the prompt "appears" again.
    v.update(UiAction::OpenHelp);
    assert!(!v.sync_prompt(t0 + Duration::from_secs(1)));
    v.update(UiAction::CloseOverlay);
    let back = t0 + Duration::from_secs(2);
    assert!(v.sync_prompt(back));
    assert!(matches!(
        map_key(&v, &key('y'), back + Duration::from_millis(100)),
        Intent::Ui(UiAction::Status(_))
    ));
    assert_eq!(
        map_key(&v, &key('y'), later(back)),
        Intent::Engine(Command::Confirm {
            prompt: id,
            phrase: None
        })
    );
}

#[test]
fn output_scroll_stays_within_the_output_and_returns_to_following() {
    let mut s = Script::started();
    s.through(demo::STEP_BACKUP);
    s.start(demo::STEP_BACKUP);
    for l in ["a", "b", "c"] {
        s.output(
            demo::STEP_BACKUP,
            flightdeck::engine::event::Stream::Stdout,
            l,
        );
    }
    let mut v = view(&s, TuiRole::Driver, Instant::now());
    v.focus = Panel::Output;
    for _ in 0..5 {
        v.update(UiAction::PageUp);
    }
    assert_eq!(v.output_scroll, Scroll::At(3));
    for _ in 0..3 {
        v.update(UiAction::Down);
    }
    assert_eq!(v.output_scroll, Scroll::Follow);
}

#[test]
fn the_clock_runs_on_wall_time_between_events_and_stops_when_finished() {
    let mut s = Script::started();
    s.through(demo::STEP_DRAIN1);
    let t0 = Instant::now();
    let mut v = View::new(TuiRole::Driver, "t", 1);
    for e in s.events() {
        v.apply(e, t0);
    }
    let last = v.state.t_ms;
    assert!(v.timer_running());
    v.tick(t0 + Duration::from_secs(90));
    assert_eq!(v.now_ms, last + 90_000);
    // Read-only since the read-only step: the timer counts the wall time too.
    let since = v.state.read_only.since.unwrap();
    assert_eq!(v.state.read_only.total_at(v.now_ms), last + 90_000 - since);

    s.push(
        10,
        Event::Finished {
            outcome: flightdeck::engine::event::Outcome::Completed,
        },
    );
    let fin = s.events().last().unwrap().clone();
    v.apply(&fin, t0 + Duration::from_secs(91));
    assert!(!v.timer_running());
    v.tick(t0 + Duration::from_secs(500));
    assert_eq!(
        v.now_ms, fin.t_ms,
        "a finished session's clock stands still"
    );

    // A replay never advances past its journal.
    let mut r = View::from_events(TuiRole::Replay, "t", 1, s.events());
    r.tick(t0 + Duration::from_secs(500));
    assert_eq!(r.now_ms, fin.t_ms);
    assert!(!r.timer_running());
}

#[test]
fn interrupted_prompt_renders_its_choices() {
    let mut s = Script::started();
    s.through(demo::STEP_BACKUP);
    s.prompt(demo::STEP_BACKUP, PromptKind::Run);
    s.push(
        10,
        Event::Confirmed {
            step: demo::STEP_BACKUP,
            by: "alice".into(),
            auto: false,
        },
    );
    s.start(demo::STEP_BACKUP);
    s.push(
        10,
        Event::Resumed {
            operator: "alice".into(),
            skipped_lines: vec![],
            down_ms: None,
        },
    );
    s.push(
        10,
        Event::OperatorJoined {
            id: 1,
            name: "alice".into(),
            driver: true,
            user: None,
            uid: None,
        },
    );
    s.prompt(demo::STEP_BACKUP, PromptKind::Interrupted);
    let v = view(&s, TuiRole::Driver, Instant::now());
    let text = flightdeck::tui::render::to_text(&v, &flightdeck::tui::Theme::dark(), 80, 24);
    assert!(
        text.contains("was running when the session stopped"),
        "{text}"
    );
    // No `u`: the backup has no undo action.
    assert!(text.contains("r re-run  d mark done  a abort"), "{text}");
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

#[test]
fn ctrl_c_in_a_phrase_clears_it_and_leaves_only_when_empty() {
    let mut s = Script::started();
    s.through(demo::STEP_MIGRATE);
    s.prompt(demo::STEP_MIGRATE, PromptKind::Run);
    let shown = Instant::now();
    let mut v = view(&s, TuiRole::Driver, shown);
    for c in "migrate jx".chars() {
        if let Intent::Ui(a) = map_key(&v, &key(c), later(shown)) {
            v.update(a);
        }
    }
    assert_eq!(v.prompt.as_ref().unwrap().phrase.value(), "migrate jx");
    let i = map_key(&v, &ctrl('c'), later(shown));
    assert_eq!(i, Intent::Ui(UiAction::ClearPhrase));
    if let Intent::Ui(a) = i {
        assert!(!v.update(a), "Ctrl-C in a phrase does not leave");
    }
    assert_eq!(v.prompt.as_ref().unwrap().phrase.value(), "");
    // On an empty phrase it is the usual Ctrl-C: leave.
    assert_eq!(
        map_key(&v, &ctrl('c'), later(shown)),
        Intent::Ui(UiAction::Quit)
    );
}

#[test]
fn a_control_request_is_answerable_while_a_phrase_is_typed() {
    let mut s = Script::started();
    s.through(demo::STEP_MIGRATE);
    s.prompt(demo::STEP_MIGRATE, PromptKind::Run);
    s.push(
        10,
        Event::ControlRequested {
            id: 2,
            name: "bob".into(),
        },
    );
    let shown = Instant::now();
    let v = view(&s, TuiRole::Driver, shown);
    // `g` is a letter of the phrase...
    assert!(matches!(
        map_key(&v, &key('g'), later(shown)),
        Intent::Ui(UiAction::Edit(_))
    ));
    // ...Ctrl-G grants, at once (no guard: it answers bob, not the prompt).
    assert_eq!(
        map_key(&v, &ctrl('g'), shown),
        Intent::Engine(Command::GrantControl { to: 2 })
    );
    // The request is on screen: in the prompt and in the footer, with the key that works.
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(100, 30)).unwrap();
    term.draw(|f| flightdeck::tui::render(f, &v, &flightdeck::tui::Theme::dark()))
        .unwrap();
    let screen = flightdeck::tui::render::buffer_text(term.backend().buffer());
    assert!(
        screen.matches("bob asks for control").count() >= 2,
        "{screen}"
    );
    assert!(screen.contains("Ctrl-G grant"), "{screen}");
}

#[test]
fn a_failed_step_with_an_undo_offers_it() {
    let mut s = Script::started();
    s.through(demo::STEP_READ_ONLY);
    let step = demo::STEP_READ_ONLY;
    s.prompt(step, PromptKind::Run);
    s.push(
        10,
        Event::Confirmed {
            step,
            by: "alice".into(),
            auto: false,
        },
    );
    s.start(step);
    s.finish(step, Verdict::Failed, "HTTP 500");
    s.prompt(step, PromptKind::Failed);
    let shown = Instant::now();
    let v = view(&s, TuiRole::Driver, shown);
    assert_eq!(
        map_key(&v, &key('u'), later(shown)),
        Intent::Engine(Command::Undo { step })
    );
    let text = flightdeck::tui::render::to_text(&v, &flightdeck::tui::Theme::dark(), 100, 30);
    assert!(
        text.contains("r retry  d mark done  u undo  s skip  a abort"),
        "{text}"
    );
}

#[test]
fn a_write_downtime_prompt_says_since_when_writes_are_refused() {
    let theme = flightdeck::tui::Theme::dark();
    // Before read-only: this step is where writes stop.
    let mut s = Script::started();
    s.through(demo::STEP_READ_ONLY);
    s.prompt(demo::STEP_READ_ONLY, PromptKind::Run);
    let v = view(&s, TuiRole::Driver, Instant::now());
    let text = flightdeck::tui::render::to_text(&v, &theme, 100, 30);
    assert!(
        text.contains("writes are refused from this step on"),
        "{text}"
    );
    assert!(!text.contains("while this runs"), "{text}");
    // Later: since step 4, by what, and for how long; the previous result and the runbook
    // stay in view.
    let mut s = Script::started();
    s.through(demo::STEP_UPGRADE1);
    s.prompt(demo::STEP_UPGRADE1, PromptKind::Run);
    let v = view(&s, TuiRole::Driver, Instant::now());
    let text = flightdeck::tui::render::to_text(&v, &theme, 100, 30);
    assert!(
        text.contains("writes refused since step 4 (Put the cluster in"),
        "{text}"
    );
    assert!(text.contains("before: step 5 done"), "{text}");
}

#[test]
fn the_abort_dialog_summarises_the_rollback_and_is_true_under_yes() {
    let theme = flightdeck::tui::Theme::dark();
    let mut s = Script::started();
    s.through(demo::STEP_UPGRADE1 + 1);
    let mut v = view(&s, TuiRole::Driver, Instant::now());
    v.overlay = Some(Overlay::AbortChoice);
    let text = flightdeck::tui::render::to_text(&v, &theme, 100, 30);
    // Steps 6 (upgrade), 5 (drain), 4 (read-only) have undos; 3, 2, 1 have none.
    assert!(text.contains("undoes, in order: 6, 5, 4"), "{text}");
    assert!(
        text.contains("pass without a prompt (nothing to undo): 3, 2, 1"),
        "{text}"
    );
    assert!(text.contains("each undo confirmed"), "{text}");
    // Under --yes nobody confirms each undo: the dialog must not say so.
    v.state.auto.yes = true;
    let text = flightdeck::tui::render::to_text(&v, &theme, 100, 30);
    assert!(!text.contains("each undo confirmed"), "{text}");
    assert!(text.contains("confirmed automatically: --yes"), "{text}");
}

/// Aborting while a step runs: the dialog says what is stopped first.
#[test]
fn the_abort_dialog_says_what_a_running_step_loses() {
    let mut s = Script::started();
    s.through(demo::STEP_UPGRADE1);
    s.start(demo::STEP_UPGRADE1);
    let mut v = view(&s, TuiRole::Driver, Instant::now());
    assert_eq!(
        map_key(&v, &key('a'), Instant::now()),
        Intent::Ui(UiAction::AskAbort)
    );
    v.update(UiAction::AskAbort);
    let text = to_text(&v, &Theme::dark(), 100, 30);
    assert!(
        text.contains("step 6 Upgrade jahia1 to 8.2.0 is running") && text.contains("SIGTERM"),
        "{text}"
    );
}

/// Send `keys` through the mapping, applying local actions; the engine command the last one
/// produced, if any.
fn type_keys(v: &mut View, keys: &[KeyEvent]) -> Option<Command> {
    let mut sent = None;
    for k in keys {
        match map_key(v, k, Instant::now()) {
            Intent::Ui(a) => {
                v.update(a);
            }
            Intent::Engine(c) => {
                v.sent(&c);
                sent = Some(c);
            }
            Intent::Nothing => {}
        }
    }
    sent
}

#[test]
fn an_observer_takes_control_with_a_reason_and_the_owner_removes_an_operator() {
    let s = Script::started();
    let theme = flightdeck::tui::Theme::dark();
    // bob watches while alice drives: T asks why, the reason goes with the takeover.
    let mut v = view(&s, TuiRole::Observer, Instant::now());
    assert!(v.state.driver().is_some());
    assert_eq!(type_keys(&mut v, &[key('T')]), None);
    assert!(matches!(v.overlay, Some(Overlay::TakeControl(_))));
    let text = flightdeck::tui::render::to_text(&v, &theme, 100, 30);
    assert!(text.contains("Take control from alice: why?"), "{text}");
    // An empty reason is not sent.
    assert_eq!(type_keys(&mut v, &[code(KeyCode::Enter)]), None);
    assert!(v.status.as_deref().is_some_and(|s| s.contains("why")));
    let mut keys: Vec<KeyEvent> = "alice's laptop froze".chars().map(key).collect();
    keys.push(code(KeyCode::Enter));
    assert_eq!(
        type_keys(&mut v, &keys),
        Some(Command::TakeControl {
            reason: Some("alice's laptop froze".into())
        })
    );
    assert!(v.overlay.is_none(), "the question closes once answered");

    // X lists the others by number; a number asks to confirm; y removes that operator.
    let mut v = view(&s, TuiRole::Driver, Instant::now());
    assert_eq!(type_keys(&mut v, &[key('X')]), None);
    let text = flightdeck::tui::render::to_text(&v, &theme, 100, 30);
    assert!(text.contains("Remove which operator?"), "{text}");
    assert!(text.contains("1 bob"), "{text}");
    assert!(
        !text.contains("2 alice"),
        "you are not in your own list: {text}"
    );
    assert_eq!(type_keys(&mut v, &[key('1')]), None);
    let text = flightdeck::tui::render::to_text(&v, &theme, 100, 30);
    assert!(text.contains("Remove bob? [y/N]"), "{text}");
    assert_eq!(
        type_keys(&mut v, &[key('y')]),
        Some(Command::RemoveOperator { id: 2 })
    );
    assert!(v.overlay.is_none());
    // Esc backs out without sending anything.
    assert_eq!(
        type_keys(&mut v, &[key('X'), key('1'), code(KeyCode::Esc)]),
        None
    );
    assert!(v.overlay.is_none());

    // Both keys are in the help legend.
    let mut v = view(&s, TuiRole::Driver, Instant::now());
    type_keys(&mut v, &[key('?')]);
    let text = flightdeck::tui::render::to_text(&v, &theme, 80, 24);
    assert!(text.contains("observer: take control"), "{text}");
    assert!(text.contains("owner: remove an operator"), "{text}");
}

/// Past the point of no return the abort dialog says the engine refuses a rollback and what it
/// would lose; `o` asks for the phrase and a reason, sent to the engine as one override.
#[test]
fn past_the_point_of_no_return_the_abort_dialog_shows_the_refusal_and_the_override() {
    let theme = flightdeck::tui::Theme::dark();
    let mut s = Script::started();
    s.through(demo::STEP_READY1 + 1);
    let shown = Instant::now();
    let mut v = view(&s, TuiRole::Driver, shown);
    let nr = v
        .state
        .no_return(v.now_ms)
        .expect("past the point of no return");
    v.overlay = Some(Overlay::AbortChoice);
    let text = flightdeck::tui::render::to_text(&v, &theme, 160, 40);
    let n = demo::STEP_MIGRATE + 1;
    assert!(
        text.contains(&format!("REFUSED: step {n} (migrate")),
        "{text}"
    );
    assert!(
        text.contains(&format!("type `lose writes since step {n}` and why")),
        "{text}"
    );
    assert_eq!(
        map_key(&v, &key('o'), later(shown)),
        Intent::Ui(UiAction::AskRollbackOverride)
    );
    v.update(UiAction::AskRollbackOverride);
    assert!(matches!(v.overlay, Some(Overlay::RollbackOverride { .. })));
    for c in format!("{} because node3's disk is gone", nr.phrase).chars() {
        match map_key(&v, &key(c), later(shown)) {
            Intent::Ui(a @ UiAction::Edit(_)) => {
                v.update(a);
            }
            other => panic!("{c}: {other:?}"),
        }
    }
    let sent = map_key(&v, &code(KeyCode::Enter), later(shown));
    assert_eq!(
        sent,
        Intent::Engine(Command::RollbackPastNoReturn {
            phrase: format!("lose writes since step {n}"),
            reason: "because node3's disk is gone".into(),
        })
    );
    if let Intent::Engine(c) = sent {
        v.sent(&c);
    }
    assert!(v.overlay.is_none());
}

/// The backup step made optional: run and skip are offered as equals, each asks why, and
/// the reason leaves with the choice.
#[test]
fn an_optional_step_offers_run_and_skip_and_asks_why() {
    use flightdeck::engine::Stamped;
    use flightdeck::plan::OptionalStep;
    use flightdeck::procedure::model::OptionalChoice;
    let (s, id) = awaiting_backup();
    let events: Vec<Stamped> = s
        .events()
        .iter()
        .cloned()
        .map(|mut e| {
            if let Event::SessionStarted { plan, .. } = &mut e.event {
                plan.steps[demo::STEP_BACKUP].optional = Some(OptionalStep {
                    why: "the nightly backup ran an hour ago".into(),
                    default: OptionalChoice::Skip,
                });
            }
            e
        })
        .collect();
    let shown = Instant::now();
    let mut v = View::from_events(TuiRole::Driver, "t", 1, &events);
    v.sync_prompt(shown);
    let at = later(shown);
    // `y` is not a bare confirm here: it asks, like `r`.
    for k in ['r', 'y'] {
        assert_eq!(
            map_key(&v, &key(k), at),
            Intent::Ui(UiAction::AskChoice {
                prompt: id,
                step: demo::STEP_BACKUP,
                choice: OptionalChoice::Run
            })
        );
    }
    let skip = map_key(&v, &key('s'), at);
    assert_eq!(
        skip,
        Intent::Ui(UiAction::AskChoice {
            prompt: id,
            step: demo::STEP_BACKUP,
            choice: OptionalChoice::Skip
        })
    );
    if let Intent::Ui(a) = skip {
        v.update(a);
    }
    for c in "backup is fresh".chars() {
        if let Intent::Ui(a) = map_key(&v, &key(c), at) {
            v.update(a);
        }
    }
    let send = map_key(&v, &code(KeyCode::Enter), at);
    assert_eq!(
        send,
        Intent::Engine(Command::Choose {
            prompt: id,
            choice: OptionalChoice::Skip,
            reason: Some("backup is fresh".into())
        })
    );
    if let Intent::Engine(c) = &send {
        v.sent(c);
    }
    assert!(v.overlay.is_none());
}

/// `/` opens the filter line (at a prompt too: it only looks), Enter keeps it, Esc clears
/// it — except at a prompt, where Esc holds the step and the filter line's own Esc clears.
#[test]
fn the_filter_keys_open_keep_and_clear_it() {
    let (s, id) = awaiting_backup();
    let shown = Instant::now();
    let mut v = view(&s, TuiRole::Driver, shown);
    // Within the prompt's guard: `/` only looks, so it is not stale.
    assert_eq!(
        map_key(&v, &key('/'), shown),
        Intent::Ui(UiAction::OpenFilter)
    );
    v.update(UiAction::OpenFilter);
    for c in "y503".chars() {
        let Intent::Ui(a) = map_key(&v, &key(c), later(shown)) else {
            panic!("{c} is typed into the filter")
        };
        v.update(a);
    }
    assert_eq!(
        v.filter().map(|f| f.text().to_string()),
        Some("y503".into())
    );
    assert_eq!(
        map_key(&v, &code(KeyCode::Enter), later(shown)),
        Intent::Ui(UiAction::KeepFilter)
    );
    v.update(UiAction::KeepFilter);
    assert_eq!(
        (v.filter.as_deref(), v.overlay.is_none()),
        (Some("y503"), true)
    );
    // Back at the prompt, Esc holds the step: the filter stays.
    v.sync_prompt(shown);
    assert_eq!(
        map_key(&v, &code(KeyCode::Esc), later(shown)),
        Intent::Engine(Command::Decline { prompt: id })
    );
    // `/` again shows the kept text; its Esc clears it.
    v.update(UiAction::OpenFilter);
    assert!(matches!(&v.overlay, Some(Overlay::Filter(i)) if i.value() == "y503"));
    assert_eq!(
        map_key(&v, &code(KeyCode::Esc), later(shown)),
        Intent::Ui(UiAction::ClearFilter)
    );
    v.update(UiAction::ClearFilter);
    assert_eq!((v.filter.as_deref(), v.overlay.is_none()), (None, true));
    // With no prompt, Esc clears a kept filter first, then follows.
    let mut s2 = Script::started();
    s2.through(demo::STEP_BACKUP);
    let mut w = view(&s2, TuiRole::Observer, Instant::now());
    w.filter = Some("node".into());
    assert_eq!(
        map_key(&w, &code(KeyCode::Esc), Instant::now()),
        Intent::Ui(UiAction::ClearFilter)
    );
    w.update(UiAction::ClearFilter);
    assert_eq!(
        map_key(&w, &code(KeyCode::Esc), Instant::now()),
        Intent::Ui(UiAction::Follow)
    );
}

/// Scrolling a filtered pane is bounded by what the filter lets through.
#[test]
fn a_filtered_pane_scrolls_over_its_matches_only() {
    let mut s = Script::started();
    s.through(demo::STEP_BACKUP);
    s.start(demo::STEP_BACKUP);
    for i in 0..40 {
        let line = if i % 10 == 0 { "checkpoint" } else { "copying" };
        s.output(
            demo::STEP_BACKUP,
            flightdeck::engine::event::Stream::Stdout,
            &format!("{line} {i}"),
        );
    }
    let mut v = view(&s, TuiRole::Observer, Instant::now());
    v.focus = Panel::Output;
    v.update(UiAction::Top);
    assert_eq!(v.output_scroll, Scroll::At(40));
    v.filter = Some("checkpoint".into());
    v.update(UiAction::Top);
    assert_eq!(v.output_scroll, Scroll::At(4));
    v.update(UiAction::PageUp);
    assert_eq!(v.output_scroll, Scroll::At(4));
}

/// The mouse: the wheel scrolls the panel under the pointer (focused or not), a click
/// focuses it; over one of this screen's questions, or off the panels, it does nothing.
#[test]
fn the_wheel_scrolls_the_panel_under_the_pointer_and_a_click_focuses_it() {
    use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    use flightdeck::tui::input::{map_mouse, WHEEL_LINES};
    use flightdeck::tui::render::panel_at;
    let mut s = Script::started();
    s.through(demo::STEP_BACKUP);
    s.start(demo::STEP_BACKUP);
    for i in 0..40 {
        s.output(
            demo::STEP_BACKUP,
            flightdeck::engine::event::Stream::Stdout,
            &format!("line {i}"),
        );
    }
    let mut v = view(&s, TuiRole::Observer, Instant::now());
    let theme = Theme::dark();
    let mouse = |kind, column, row| MouseEvent {
        kind,
        column,
        row,
        modifiers: KeyModifiers::NONE,
    };
    // Find each panel on an 80x24 screen by its title.
    let screen = to_text(&v, &theme, 80, 24);
    let at = |title: &str| -> (u16, u16) {
        screen
            .lines()
            .enumerate()
            .find_map(|(y, l)| {
                l.find(title).map(|b| {
                    let x = l[..b].chars().count();
                    (x as u16, y as u16 + 1)
                })
            })
            .unwrap_or_else(|| panic!("{title} not on\n{screen}"))
    };
    let (ox, oy) = at("Output");
    let (px, py) = at("Procedure");
    assert_eq!(panel_at(&v, &theme, 80, 24, ox, oy), Some(Panel::Output));
    assert_eq!(panel_at(&v, &theme, 80, 24, px, py), Some(Panel::Procedure));
    // The header is no panel; a screen too small has none.
    assert_eq!(panel_at(&v, &theme, 80, 24, 5, 0), None);
    assert_eq!(panel_at(&v, &theme, 10, 3, 1, 1), None);

    assert_eq!(v.focus, Panel::Procedure);
    let up = map_mouse(
        &v,
        &mouse(MouseEventKind::ScrollUp, ox, oy),
        panel_at(&v, &theme, 80, 24, ox, oy),
    );
    assert_eq!(
        up,
        Intent::Ui(UiAction::ScrollPanel {
            panel: Panel::Output,
            by: -WHEEL_LINES
        })
    );
    if let Intent::Ui(a) = up {
        v.update(a);
    }
    // The output went back in time; the focus stayed where it was.
    assert_eq!(
        (v.output_scroll, v.focus),
        (Scroll::At(3), Panel::Procedure)
    );
    let text = to_text(&v, &theme, 80, 24);
    assert!(text.contains("(scrolled — End follows)"), "{text}");
    v.update(UiAction::ScrollPanel {
        panel: Panel::Output,
        by: WHEEL_LINES,
    });
    assert_eq!(v.output_scroll, Scroll::Follow);

    let click = mouse(MouseEventKind::Down(MouseButton::Left), ox, oy);
    assert_eq!(
        map_mouse(&v, &click, Some(Panel::Output)),
        Intent::Ui(UiAction::Focus(Panel::Output))
    );
    v.update(UiAction::Focus(Panel::Output));
    assert_eq!(v.focus, Panel::Output);
    // Moving the pointer, or a click off the panels, does nothing.
    assert_eq!(
        map_mouse(
            &v,
            &mouse(MouseEventKind::Moved, ox, oy),
            Some(Panel::Output)
        ),
        Intent::Nothing
    );
    assert_eq!(map_mouse(&v, &click, None), Intent::Nothing);
    // Over the help (or any question of ours) the mouse does nothing.
    v.update(UiAction::OpenHelp);
    assert_eq!(map_mouse(&v, &click, Some(Panel::Output)), Intent::Nothing);
}
