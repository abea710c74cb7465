//! The run loop on a `TestBackend`, driven by channels: it exits cleanly when the session
//! ends or the operator leaves, and commands reach the engine.

#[path = "common/scripted_session.rs"]
mod scripted_session;
#[path = "common/sticky_input.rs"]
mod sticky_input;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use flightdeck::engine::client::{Request, SessionClient};
use flightdeck::engine::event::{Phase, PromptKind, Verdict};
use flightdeck::engine::{Command, Event, Stamped};
use flightdeck::tui::demo::Script;
use flightdeck::tui::view::PROMPT_GUARD;
use flightdeck::tui::{run_on, Theme, TuiExit, TuiOptions, TuiRole};
use futures::channel::mpsc as fmpsc;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use scripted_session::scripted_session;
use tokio::sync::mpsc;

struct Harness {
    events: mpsc::Sender<Stamped>,
    requests: mpsc::Receiver<Request>,
    keys: fmpsc::UnboundedSender<io::Result<TermEvent>>,
    client: SessionClient,
    input: fmpsc::UnboundedReceiver<io::Result<TermEvent>>,
}

fn harness() -> Harness {
    let (session, client) = scripted_session(1024);
    let (keys, input) = fmpsc::unbounded();
    Harness {
        events: session.events,
        requests: session.requests,
        keys,
        client,
        input,
    }
}

fn opts() -> TuiOptions {
    TuiOptions {
        theme: Theme::dark(),
        alerts: flightdeck::tui::AlertConfig::NONE,
        role: TuiRole::Driver,
        title: "flightdeck · lab-jahia".into(),
        demo: None,
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
    let exit = run_on(&mut term, h.client, None, opts(), h.input)
        .await
        .unwrap();
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
    let run = tokio::spawn(async move { run_on(&mut term, h.client, None, opts(), h.input).await });
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
    let run = tokio::spawn(async move { run_on(&mut term, h.client, None, opts(), h.input).await });
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
    let run =
        tokio::spawn(async move { run_on(&mut term_for_test(), h.client, None, o, h.input).await });
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
        tokio::spawn(
            async move { run_on(&mut term_for_test(), h.client, None, opts(), h.input).await },
        );
    tokio::task::yield_now().await;
    assert!(!run.is_finished(), "the final screen stays up");
    press(&keys, KeyCode::Char('q'));
    assert_eq!(run.await.unwrap().unwrap(), TuiExit::SessionEnded);
}

fn term_for_test() -> Terminal<TestBackend> {
    Terminal::new(TestBackend::new(80, 24)).unwrap()
}

/// A waker that counts how often it was woken: the cockpit's loop is polled by hand with it,
/// so every wake-up the loop gets is visible.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The run loop polled by hand, on the test's thread, with one waker: nothing but what the
/// test does moves it.
struct ByHand<'a, F> {
    run: Pin<&'a mut F>,
    waker: Waker,
}

impl<'a, F: Future> ByHand<'a, F> {
    fn new(run: Pin<&'a mut F>, waker: &Waker) -> Self {
        ByHand {
            run,
            waker: waker.clone(),
        }
    }

    /// Let the loop do all it can now; it must still be running.
    #[track_caller]
    fn poll(&mut self) {
        let step = self
            .run
            .as_mut()
            .poll(&mut Context::from_waker(&self.waker));
        assert!(step.is_pending(), "the cockpit left");
    }
}

/// Press `key` and check that this alone woke the loop (nothing else can: the test runs on
/// one thread and does nothing between the press and the check).
#[track_caller]
fn press_wakes(kb: &sticky_input::Keyboard, wakes: &CountingWaker, key: KeyCode) {
    let before = wakes.0.load(Ordering::SeqCst);
    kb.press(key);
    assert!(
        wakes.0.load(Ordering::SeqCst) > before,
        "{key:?} did not wake the cockpit: it would sit unread until an unrelated wake-up"
    );
}

#[track_caller]
fn answered(requests: &mut mpsc::Receiver<Request>) -> Command {
    let req = requests
        .try_recv()
        .expect("the key was handled at once: its command reached the engine");
    let _ = req.reply.send(Ok(()));
    req.command
}

fn step_done(s: &mut Script, step: usize) {
    s.push(
        10,
        Event::Confirmed {
            step,
            by: "alice".into(),
            auto: false,
        },
    );
    s.start(step);
    s.push(
        10,
        Event::ActionFinished {
            step,
            phase: Phase::Do,
            attempt: 1,
            verdict: Verdict::Passed,
            detail: "exit 0".into(),
        },
    );
}

/// Issue 14: the first key after a prompt appeared was read 25–921 ms late, because the keys
/// queued before the prompt were drained with a no-op waker that crossterm's stream then kept.
/// Here the input wakes exactly like crossterm's and time is paused, so the only thing that
/// can wake the loop after the press is the key itself.
#[tokio::test(start_paused = true)]
async fn the_first_key_after_a_prompt_or_an_overlay_wakes_the_cockpit() {
    let (mut session, client) = scripted_session(1024);
    let (kb, input) = sticky_input::sticky_input();
    let mut s = Script::started();
    s.through(2);
    let first = s.prompt(2, PromptKind::Run);
    session.feed(&s);

    let mut term = Terminal::new(TestBackend::new(100, 30)).unwrap();
    let run = std::pin::pin!(run_on(&mut term, client, None, opts(), input));
    let wakes = Arc::new(CountingWaker::default());
    let mut run = ByHand::new(run, &Waker::from(wakes.clone()));

    // The prompt is on screen; the operator reads it, then answers.
    run.poll();
    tokio::time::advance(PROMPT_GUARD).await;
    press_wakes(&kb, &wakes, KeyCode::Char('y'));
    run.poll();
    assert_eq!(
        answered(&mut session.requests),
        Command::Confirm {
            prompt: first,
            phrase: None
        }
    );

    // The next prompt; the operator opens the help, closes it, and answers.
    step_done(&mut s, 2);
    let second = s.prompt(3, PromptKind::Run);
    session.feed(&s);
    run.poll();
    tokio::time::advance(PROMPT_GUARD).await;
    press_wakes(&kb, &wakes, KeyCode::Char('?'));
    run.poll();
    press_wakes(&kb, &wakes, KeyCode::Esc);
    run.poll();
    tokio::time::advance(PROMPT_GUARD).await;
    press_wakes(&kb, &wakes, KeyCode::Char('y'));
    run.poll();
    assert_eq!(
        answered(&mut session.requests),
        Command::Confirm {
            prompt: second,
            phrase: None
        }
    );

    // And once more past a note written at the prompt.
    step_done(&mut s, 3);
    let third = s.prompt(5, PromptKind::Run);
    session.feed(&s);
    run.poll();
    tokio::time::advance(PROMPT_GUARD).await;
    for key in [KeyCode::Char('n'), KeyCode::Char('x'), KeyCode::Enter] {
        press_wakes(&kb, &wakes, key);
        run.poll();
    }
    assert_eq!(
        answered(&mut session.requests),
        Command::Note { text: "x".into() }
    );
    tokio::time::advance(PROMPT_GUARD).await;
    press_wakes(&kb, &wakes, KeyCode::Char('y'));
    run.poll();
    assert_eq!(
        answered(&mut session.requests),
        Command::Confirm {
            prompt: third,
            phrase: None
        }
    );
}

/// The mouse through the real loop: the wheel over the output pane scrolls it (the focus stays
/// on the procedure), moving the pointer changes nothing, and a click on it focuses it.
#[tokio::test(start_paused = true)]
async fn the_wheel_scrolls_the_pane_under_the_pointer_and_a_click_focuses_it() {
    use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    let (mut session, client) = scripted_session(1024);
    let (kb, input) = sticky_input::sticky_input();
    let mut s = Script::started();
    s.through(2);
    s.start(2);
    for i in 0..40 {
        s.output(
            2,
            flightdeck::engine::event::Stream::Stdout,
            &format!("copying table {i}"),
        );
    }
    session.feed(&s);
    // Where the output pane is, on the same picture the loop draws.
    let view = flightdeck::tui::View::from_events(TuiRole::Driver, "t", 1, s.events());
    let (w, h) = (80, 24);
    let (x, y) = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .find(|&(x, y)| {
            flightdeck::tui::render::panel_at(&view, &Theme::dark(), w, h, x, y)
                == Some(flightdeck::tui::view::Panel::Output)
        })
        .expect("an output pane at 80x24");
    let mouse = |kind| {
        TermEvent::Mouse(MouseEvent {
            kind,
            column: x + 2,
            row: y + 2,
            modifiers: KeyModifiers::NONE,
        })
    };

    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    let waker = Waker::from(Arc::new(CountingWaker::default()));
    {
        let run = std::pin::pin!(run_on(&mut term, client, None, opts(), input));
        let mut run = ByHand::new(run, &waker);
        run.poll();
        kb.send(mouse(MouseEventKind::ScrollUp));
        run.poll();
        kb.send(mouse(MouseEventKind::Moved));
        run.poll();
    }
    let screen = flightdeck::tui::render::buffer_text(term.backend().buffer());
    assert!(screen.contains("(scrolled — End follows)"), "{screen}");
    assert!(
        screen.contains("┏ Procedure"),
        "the focus stayed:\n{screen}"
    );
    assert!(!screen.contains("copying table 39"), "{screen}");

    let (mut session2, client) = scripted_session(1024);
    session2.feed(&s);
    let (kb, input) = sticky_input::sticky_input();
    {
        let run = std::pin::pin!(run_on(&mut term, client, None, opts(), input));
        let mut run = ByHand::new(run, &waker);
        run.poll();
        kb.send(mouse(MouseEventKind::Down(MouseButton::Left)));
        run.poll();
    }
    let screen = flightdeck::tui::render::buffer_text(term.backend().buffer());
    assert!(screen.contains("┏ Output"), "a click focuses:\n{screen}");
    assert!(screen.contains("copying table 39"), "{screen}");
    drop((session, session2));
}

/// A `TestBackend` whose every finished frame the test can read while the loop holds the
/// terminal: how many frames were drawn, and the last one's text.
#[derive(Clone, Default)]
struct Frames(Arc<std::sync::Mutex<(usize, String)>>);

impl Frames {
    fn count(&self) -> usize {
        self.0.lock().unwrap().0
    }
    fn last(&self) -> String {
        self.0.lock().unwrap().1.clone()
    }
}

struct Recording {
    inner: TestBackend,
    frames: Frames,
}

impl ratatui::backend::Backend for Recording {
    type Error = <TestBackend as ratatui::backend::Backend>::Error;
    fn draw<'a, I>(&mut self, content: I) -> Result<(), Self::Error>
    where
        I: Iterator<Item = (u16, u16, &'a ratatui::buffer::Cell)>,
    {
        self.inner.draw(content)
    }
    fn hide_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.hide_cursor()
    }
    fn show_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.show_cursor()
    }
    fn get_cursor_position(&mut self) -> Result<ratatui::layout::Position, Self::Error> {
        self.inner.get_cursor_position()
    }
    fn set_cursor_position<P: Into<ratatui::layout::Position>>(
        &mut self,
        position: P,
    ) -> Result<(), Self::Error> {
        self.inner.set_cursor_position(position)
    }
    fn clear(&mut self) -> Result<(), Self::Error> {
        self.inner.clear()
    }
    fn clear_region(&mut self, t: ratatui::backend::ClearType) -> Result<(), Self::Error> {
        self.inner.clear_region(t)
    }
    fn size(&self) -> Result<ratatui::layout::Size, Self::Error> {
        self.inner.size()
    }
    fn window_size(&mut self) -> Result<ratatui::backend::WindowSize, Self::Error> {
        self.inner.window_size()
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.inner.flush()?;
        let mut f = self.frames.0.lock().unwrap();
        f.0 += 1;
        f.1 = flightdeck::tui::render::buffer_text(self.inner.buffer());
        Ok(())
    }
}

/// Issue 16: session events are drawn at most once per 50 ms, a burst as one frame; an event
/// that changes what a key does (a prompt opens) is drawn at once; a key at once. Time is
/// paused, so only what the test does moves the loop.
#[tokio::test(start_paused = true)]
async fn a_burst_draws_one_frame_within_50_ms_and_a_prompt_or_a_key_at_once() {
    let (mut session, client) = scripted_session(1024);
    let (kb, input) = sticky_input::sticky_input();
    let mut s = Script::started();
    s.through(2);
    s.start(2);
    session.feed(&s);

    let frames = Frames::default();
    let backend = Recording {
        inner: TestBackend::new(100, 30),
        frames: frames.clone(),
    };
    let mut term = Terminal::new(backend).unwrap();
    let run = std::pin::pin!(run_on(&mut term, client, None, opts(), input));
    let mut run = ByHand::new(run, &Waker::from(Arc::new(CountingWaker::default())));
    run.poll();
    tokio::time::advance(Duration::from_millis(60)).await;
    run.poll();
    let settled = frames.count();

    // Output after a quiet while is drawn at once; more right after that frame waits until
    // 50 ms after it, and then the whole burst is one frame.
    let out = |s: &mut Script, i: usize| {
        s.output(
            2,
            flightdeck::engine::event::Stream::Stdout,
            &format!("copying table {i}"),
        );
    };
    out(&mut s, 0);
    session.feed(&s);
    run.poll();
    assert_eq!(frames.count(), settled + 1, "the first output at once");
    for i in 1..4 {
        out(&mut s, i);
    }
    session.feed(&s);
    run.poll();
    assert_eq!(frames.count(), settled + 1, "the burst waits for its frame");
    assert!(!frames.last().contains("copying table 3"));
    tokio::time::advance(Duration::from_millis(50)).await;
    run.poll();
    assert_eq!(frames.count(), settled + 2, "one frame for the burst");
    assert!(
        frames.last().contains("copying table 3"),
        "{}",
        frames.last()
    );

    // A prompt is drawn at once, however soon after the last frame.
    s.finish(2, Verdict::Passed, "exit 0");
    s.prompt(3, PromptKind::Run);
    session.feed(&s);
    run.poll();
    assert_eq!(frames.count(), settled + 3, "the prompt is drawn at once");

    // And a key at once.
    kb.press(KeyCode::Char('?'));
    run.poll();
    assert_eq!(frames.count(), settled + 4, "the key is answered at once");
    drop(session);
}
