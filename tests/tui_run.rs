//! The run loop on a `TestBackend`, driven by channels: it exits cleanly when the session
//! ends or the operator leaves, and commands reach the engine.

use std::io;

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use flightdeck::engine::client::{CommandSender, Request, SessionClient};
use flightdeck::engine::{Command, Stamped};
use flightdeck::tui::demo::Script;
use flightdeck::tui::{run_on, Theme, TuiExit, TuiOptions, TuiRole};
use futures::channel::mpsc as fmpsc;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use tokio::sync::mpsc;

struct Harness {
    events: mpsc::Sender<Stamped>,
    requests: mpsc::Receiver<Request>,
    keys: fmpsc::UnboundedSender<io::Result<TermEvent>>,
    client: SessionClient,
    input: fmpsc::UnboundedReceiver<io::Result<TermEvent>>,
}

fn harness() -> Harness {
    let (events, ev_rx) = mpsc::channel(1024);
    let (req_tx, requests) = mpsc::channel(16);
    let (keys, input) = fmpsc::unbounded();
    Harness {
        events,
        requests,
        keys,
        client: SessionClient {
            operator_id: 1,
            operator: "alice".into(),
            events: ev_rx,
            commands: CommandSender::new(req_tx),
        },
        input,
    }
}

fn opts() -> TuiOptions {
    TuiOptions {
        theme: Theme::dark(),
        role: TuiRole::Driver,
        title: "flightdeck · lab-jahia".into(),
    }
}

fn press(keys: &fmpsc::UnboundedSender<io::Result<TermEvent>>, c: KeyCode) {
    keys.unbounded_send(Ok(TermEvent::Key(KeyEvent::new(c, KeyModifiers::NONE))))
        .unwrap();
}

#[tokio::test]
async fn exits_when_the_event_channel_closes() {
    let h = harness();
    for e in Script::started().events() {
        h.events.send(e.clone()).await.unwrap();
    }
    drop(h.events);
    let mut term = Terminal::new(TestBackend::new(100, 30)).unwrap();
    let exit = run_on(&mut term, h.client, opts(), h.input).await.unwrap();
    assert_eq!(exit, TuiExit::SessionEnded);
    let screen = flightdeck::tui::render::buffer_text(term.backend().buffer());
    assert!(screen.contains("jahia-rolling"), "{screen}");
}

#[tokio::test]
async fn q_leaves_and_a_note_reaches_the_engine() {
    let mut h = harness();
    for e in Script::started().events() {
        h.events.send(e.clone()).await.unwrap();
    }
    let engine = tokio::spawn(async move {
        let req = h.requests.recv().await.unwrap();
        let _ = req.reply.send(Ok(()));
        req.command
    });
    press(&h.keys, KeyCode::Char('n'));
    for c in "hi".chars() {
        press(&h.keys, KeyCode::Char(c));
    }
    press(&h.keys, KeyCode::Enter);
    let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let keys = h.keys.clone();
    let run = tokio::spawn(async move { run_on(&mut term, h.client, opts(), h.input).await });
    let command = engine.await.unwrap();
    assert_eq!(command, Command::Note { text: "hi".into() });
    press(&keys, KeyCode::Char('q'));
    let exit = run.await.unwrap().unwrap();
    // Left, not SessionEnded: the session's sender is still open.
    assert_eq!(exit, TuiExit::Left);
    drop(h.events);
}

#[tokio::test]
async fn paste_goes_into_a_note() {
    let mut h = harness();
    for e in Script::started().events() {
        h.events.send(e.clone()).await.unwrap();
    }
    press(&h.keys, KeyCode::Char('n'));
    h.keys
        .unbounded_send(Ok(TermEvent::Paste("db at 90% cpu\n".into())))
        .unwrap();
    press(&h.keys, KeyCode::Enter);
    let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let run = tokio::spawn(async move { run_on(&mut term, h.client, opts(), h.input).await });
    let req = h.requests.recv().await.unwrap();
    assert_eq!(
        req.command,
        Command::Note {
            text: "db at 90% cpu".into()
        }
    );
    let _ = req.reply.send(Ok(()));
    drop(h.events);
    assert_eq!(run.await.unwrap().unwrap(), TuiExit::SessionEnded);
}

#[tokio::test]
async fn a_replay_stays_on_screen_until_q() {
    let h = harness();
    let mut s = Script::started();
    s.through(3);
    for e in s.events() {
        h.events.send(e.clone()).await.unwrap();
    }
    drop(h.events);
    let keys = h.keys.clone();
    let mut o = opts();
    o.role = TuiRole::Replay;
    let run = tokio::spawn(async move { run_on(&mut term_for_test(), h.client, o, h.input).await });
    // Still running after the stream closed: it waits for the operator.
    press(&keys, KeyCode::Down);
    tokio::task::yield_now().await;
    assert!(!run.is_finished());
    press(&keys, KeyCode::Char('q'));
    assert_eq!(run.await.unwrap().unwrap(), TuiExit::SessionEnded);
}

#[tokio::test]
async fn a_finished_session_stays_on_screen_until_q() {
    let h = harness();
    let mut s = Script::started();
    s.push(
        10,
        flightdeck::engine::Event::Finished {
            outcome: flightdeck::engine::event::Outcome::Aborted,
        },
    );
    for e in s.events() {
        h.events.send(e.clone()).await.unwrap();
    }
    drop(h.events);
    let keys = h.keys.clone();
    let run =
        tokio::spawn(async move { run_on(&mut term_for_test(), h.client, opts(), h.input).await });
    tokio::task::yield_now().await;
    assert!(!run.is_finished(), "the final screen stays up");
    press(&keys, KeyCode::Char('q'));
    assert_eq!(run.await.unwrap().unwrap(), TuiExit::SessionEnded);
}

fn term_for_test() -> Terminal<TestBackend> {
    Terminal::new(TestBackend::new(80, 24)).unwrap()
}
