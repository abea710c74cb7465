//! The cockpit: a ratatui view over a session. It folds the session's events into its own
//! `SessionState` with the engine's `apply` (it never owns session truth) — in process, from
//! the state the engine had folded when it attached (`run_folded`) — draws with a pure
//! `render`, and turns keys into local UI actions or engine commands.
//!
//! The loop waits on three things only — terminal input, session events, and a 1 s tick that
//! runs only while a clock on screen is moving — and draws once per burst of changes: a key, a
//! prompt opening or closing at once, other session events at most every 50 ms, live samples
//! with the next tick (`Frames`); the last events before the stream closes are drawn first.

pub mod alert;
pub mod color_depth;
pub mod commands;
/// Test scaffolding: unit tests, and integration tests and benches through the `test-support`
/// feature their dev-dependency turns on; never in a release build.
#[cfg(any(test, feature = "test-support"))]
pub mod demo;
pub mod filter;
pub mod input;
pub mod lb_expect;
pub mod render;
pub mod replay;
pub mod terminal;
pub mod theme;
pub mod view;
pub mod viewport;

use std::io;
use std::task::Poll;
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, EventStream};
use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use ratatui::backend::Backend;
use ratatui::Terminal;
use tokio::sync::{oneshot, watch};
use tokio::time::MissedTickBehavior;

use crate::engine::client::SessionClient;
use crate::engine::{Command, Rejected, SessionState};
use crate::replay::player::{ReplayControl, ReplayPosition};
use crate::replay::quiz::Quiz;
use replay::Player;

pub use alert::AlertConfig;
pub use input::{map_key, map_mouse, Intent, UiAction};
pub use render::render;
pub use theme::{Theme, ThemeError};
pub use view::{Overlay, TuiRole, View};

pub struct TuiOptions {
    pub theme: Theme,
    /// Bell and terminal title on a prompt, a failure, the end (never in a replay).
    pub alerts: AlertConfig,
    pub role: TuiRole,
    /// Shown first in the header, e.g. "flightdeck · lab-jahia".
    pub title: String,
    /// The session's name when this is the no-argument demo (its lab lives in the session
    /// server): `q` then asks whether to leave it running or end it.
    pub demo: Option<String>,
}

/// Why the cockpit stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TuiExit {
    /// The operator left (`q`); the session goes on without this view.
    Left,
    /// The session's event stream ended. A replay or a finished session stays on screen until
    /// the operator presses `q`; a stream that ends mid-session returns at once.
    SessionEnded,
    /// The operator ended the demo: the session was aborted (or was over already); its
    /// server and lab are for the caller to stop.
    EndDemo,
}

/// Run the cockpit on the real terminal until the operator leaves or the session ends. The
/// terminal is restored however this returns (and on panic).
pub async fn run(client: SessionClient, opts: TuiOptions) -> anyhow::Result<TuiExit> {
    run_terminal(client, None, opts).await
}

/// [`run`] from the session as its engine folded it (`EngineHandle::attach_folded`): the view
/// starts from `state` and folds only the events after it.
pub async fn run_folded(
    client: SessionClient,
    state: SessionState,
    opts: TuiOptions,
) -> anyhow::Result<TuiExit> {
    run_terminal(client, Some(state), opts).await
}

async fn run_terminal(
    client: SessionClient,
    folded: Option<SessionState>,
    opts: TuiOptions,
) -> anyhow::Result<TuiExit> {
    let mut guard = terminal::enter()?;
    let input = EventStream::new();
    let mut out = io::stdout();
    let result = run_loop(
        &mut guard.terminal,
        Feed { client, folded },
        opts,
        input,
        None,
        Some(&mut out),
    )
    .await;
    drop(guard);
    result
}

/// Run the cockpit as the player of a replay (`client` and `control` from
/// `replay::player::start`): the replay keys drive `control`, a position bar shows where it is,
/// and the view always shows the state at the player's position. Always read-only, whatever
/// `opts.role` says.
pub async fn run_replay(
    client: SessionClient,
    opts: TuiOptions,
    control: ReplayControl,
) -> anyhow::Result<TuiExit> {
    let mut guard = terminal::enter()?;
    let input = EventStream::new();
    let result = run_replay_on(&mut guard.terminal, client, opts, input, control).await;
    drop(guard);
    result
}

type Reply = oneshot::Receiver<Result<(), Rejected>>;

/// The loop over any backend and any source of terminal events (tests drive it with a
/// `TestBackend` and a stream they control): [`run`] with `folded` None, [`run_folded`] with
/// the engine's folded state.
pub async fn run_on<B, S>(
    terminal: &mut Terminal<B>,
    client: SessionClient,
    folded: Option<SessionState>,
    opts: TuiOptions,
    input: S,
) -> anyhow::Result<TuiExit>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    S: Stream<Item = io::Result<TermEvent>> + Unpin,
{
    run_loop(terminal, Feed { client, folded }, opts, input, None, None).await
}

/// What the loop follows: a session's client, and the state its events start after (None:
/// they start at the first event).
struct Feed {
    client: SessionClient,
    folded: Option<SessionState>,
}

impl From<SessionClient> for Feed {
    fn from(client: SessionClient) -> Self {
        Feed {
            client,
            folded: None,
        }
    }
}

/// [`run_replay`] over any backend and any source of terminal events.
pub async fn run_replay_on<B, S>(
    terminal: &mut Terminal<B>,
    client: SessionClient,
    mut opts: TuiOptions,
    input: S,
    control: ReplayControl,
) -> anyhow::Result<TuiExit>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    S: Stream<Item = io::Result<TermEvent>> + Unpin,
{
    opts.role = TuiRole::Replay;
    let player = Player {
        control,
        quiz: None,
    };
    run_loop(terminal, client.into(), opts, input, Some(player), None).await
}

/// The training quiz in the cockpit: [`run_replay`] that stops before each of the recorded
/// operator's decisions and asks. `quiz` must be over the same journal as the player; it holds
/// the answers when this returns (write its `result()`).
pub async fn run_quiz(
    client: SessionClient,
    opts: TuiOptions,
    control: ReplayControl,
    quiz: &mut Quiz,
) -> anyhow::Result<TuiExit> {
    let mut guard = terminal::enter()?;
    let input = EventStream::new();
    let result = run_quiz_on(&mut guard.terminal, client, opts, input, control, quiz).await;
    drop(guard);
    result
}

/// [`run_quiz`] over any backend and any source of terminal events.
pub async fn run_quiz_on<B, S>(
    terminal: &mut Terminal<B>,
    client: SessionClient,
    mut opts: TuiOptions,
    input: S,
    control: ReplayControl,
    quiz: &mut Quiz,
) -> anyhow::Result<TuiExit>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    S: Stream<Item = io::Result<TermEvent>> + Unpin,
{
    opts.role = TuiRole::Replay;
    let player = Player {
        control,
        quiz: Some(quiz),
    };
    run_loop(terminal, client.into(), opts, input, Some(player), None).await
}

/// Resolves when the player's position changes; never without a player. False when the
/// player is gone.
async fn position_changed(positions: &mut Option<watch::Receiver<ReplayPosition>>) -> bool {
    match positions {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

async fn run_loop<B, S>(
    terminal: &mut Terminal<B>,
    feed: Feed,
    opts: TuiOptions,
    mut input: S,
    mut player: Option<Player<'_>>,
    mut alert_out: Option<&mut (dyn io::Write + Send)>,
) -> anyhow::Result<TuiExit>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    S: Stream<Item = io::Result<TermEvent>> + Unpin,
{
    let Feed { mut client, folded } = feed;
    let mut view = match folded {
        Some(state) => View::folded(opts.role, opts.title, client.operator_id, state, clock()),
        None => View::new(opts.role, opts.title, client.operator_id),
    };
    view.demo = opts.demo;
    let mut positions = player.as_mut().map(|p| {
        let mut rx = p.control.subscribe();
        rx.mark_unchanged();
        p.attach(&mut view);
        p.sync(&mut view);
        rx
    });
    let mut theme = opts.theme;
    let mut alerter = alert::Alerter::new(opts.alerts, view.role);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut replies: FuturesUnordered<Reply> = FuturesUnordered::new();
    let mut dirty = true;
    let mut frames = Frames::default();
    let mut teller = viewport::ViewportTeller::default();
    // The session's stream closed mid-way: the frame drawn next is the last.
    let mut leaving = false;
    loop {
        if dirty {
            frames.drawn(tokio::time::Instant::now());
            let now = clock();
            view.tick(now);
            let size = terminal.size()?;
            view.too_small = render::too_small_for(size.width, size.height);
            if view.sync_prompt(now) && !drop_queued_keys(&mut input).await? && !leaving {
                return Ok(exit(&view));
            }
            let mut node_rows = 0;
            terminal.draw(|f| node_rows = render::draw(f, &view, &theme))?;
            if let (None, Some(tx)) = (&player, &client.viewport) {
                teller.after_frame(tx, &view, node_rows);
            }
            if let (Some(a), Some(out)) = (alerter.check(&view), alert_out.as_mut()) {
                // An alert that cannot be written is not worth stopping the cockpit for.
                let _ = alert::write_alert(out, &a);
            }
            dirty = false;
            if leaving {
                return Ok(TuiExit::SessionEnded);
            }
        }
        let ticking = view.timer_running();
        tokio::select! {
            ev = client.events.recv(), if !view.ended => match ev {
                Some(ev) => {
                    let now = clock();
                    match &mut player {
                        None => {
                            let mut live_only = ev.event.is_live_only();
                            let asks = answers_keys(&view);
                            view.apply(&ev, now);
                            // Coalesce a burst (history on join, output floods) into one draw.
                            while let Ok(ev) = client.events.try_recv() {
                                live_only &= ev.event.is_live_only();
                                view.apply(&ev, now);
                            }
                            let now = tokio::time::Instant::now();
                            dirty |= answers_keys(&view) != asks
                                || frames.changed(now, live_only, view.timer_running());
                        }
                        Some(p) => {
                            // The feed only wakes the view: it shows the player's frame.
                            while client.events.try_recv().is_ok() {}
                            // Seen before syncing, so a stop published meanwhile still wakes us.
                            if let Some(rx) = &mut positions {
                                rx.mark_unchanged();
                            }
                            dirty |= p.sync(&mut view);
                        }
                    }
                }
                // A replay's stream ends once the journal is read, and a finished session's
                // once it is over: keep the picture up until the operator leaves. Otherwise
                // (the session or the connection is gone mid-way) there is nothing to show.
                None if view.role == TuiRole::Replay || view.state.is_finished() => {
                    view.ended = true;
                    dirty = true;
                }
                // The frame owed to the last events is drawn first: the screen left behind
                // shows where the session was.
                None => {
                    leaving = true;
                    dirty = true;
                }
            },
            ev = input.next() => match ev {
                None => return Ok(exit(&view)),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(TermEvent::Key(key))) => {
                    view.status = None;
                    match map_key(&view, &key, clock()) {
                        Intent::Nothing => {}
                        Intent::Ui(UiAction::Replay(k)) => {
                            if let Some(p) = &mut player {
                                p.key(&mut view, k);
                            }
                        }
                        Intent::Ui(UiAction::SetTheme(name)) => {
                            view.update(UiAction::SetTheme(name.clone()));
                            match Theme::load(&name) {
                                Ok(t) => {
                                    theme = t.for_depth(color_depth::ColorDepth::from_env());
                                    view.status = Some(format!("theme {name}"));
                                }
                                Err(e) => view.status = Some(format!("theme {name}: {e}")),
                            }
                        }
                        Intent::Ui(action) => {
                            if view.update(action) {
                                if view.end_demo {
                                    end_demo(&mut view, &mut client).await;
                                    return Ok(TuiExit::EndDemo);
                                }
                                return Ok(exit(&view));
                            }
                        }
                        Intent::Engine(command) => send(&mut view, &client, command, &mut replies),
                    }
                    dirty = true;
                }
                Some(Ok(TermEvent::Resize(..))) => dirty = true,
                Some(Ok(TermEvent::Mouse(m))) => {
                    let size = terminal.size()?;
                    let under = render::panel_at(&view, &theme, size.width, size.height, m.column, m.row);
                    // Only what changes the screen redraws it.
                    if let Intent::Ui(action) = map_mouse(&view, &m, under) {
                        view.status = None;
                        view.update(action);
                        dirty = true;
                    }
                }
                // Pasting goes into a note only: a confirmation phrase must be typed.
                Some(Ok(TermEvent::Paste(text))) if matches!(view.overlay, Some(Overlay::Note(_) | Overlay::Command(_) | Overlay::AbortReason { .. } | Overlay::Filter(_))) => {
                    for c in text.chars().filter(|c| !c.is_control()) {
                        let key = crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Char(c));
                        if let Intent::Ui(a @ UiAction::Edit(_)) = map_key(&view, &key, clock()) {
                            view.update(a);
                        }
                    }
                    dirty = true;
                }
                Some(Ok(_)) => {}
            },
            _ = tick.tick(), if ticking => dirty = true,
            _ = frame_due(frames.due_at(ticking)) => dirty = true,
            live = position_changed(&mut positions) => {
                match (&mut player, live) {
                    (Some(p), true) => {
                        if let Some(rx) = &mut positions {
                            rx.mark_unchanged();
                        }
                        dirty |= p.sync(&mut view);
                    }
                    _ => positions = None,
                }
            }
            Some(reply) = replies.next(), if !replies.is_empty() => {
                match reply {
                    Ok(Ok(())) => {}
                    Ok(Err(Rejected(why))) => view.status = Some(format!("rejected: {why}")),
                    Err(_) => view.status = Some("the session did not answer".into()),
                }
                dirty = true;
            }
        }
    }
}

/// How long ending the demo waits for the session to say it is over (an action running is
/// asked to stop first: SIGTERM, SIGKILL after 5 s).
const END_DEMO_WAIT: Duration = Duration::from_secs(10);

/// End the demo's session before its server is stopped: a note says why, then an abort that
/// rolls nothing back, so the journal says the session is over and `resume` offers nothing
/// against a lab that no longer exists. Waits (bounded) for `Finished`.
async fn end_demo(view: &mut View, client: &mut SessionClient) {
    if view.state.is_finished() || view.ended {
        return;
    }
    let note = Command::Note {
        text: "ended the demo from the cockpit: the session stops here and its lab with it".into(),
    };
    let abort = Command::Abort {
        rollback: false,
        reason: Some("ended the demo from the cockpit".into()),
    };
    for command in [note, abort] {
        match client.commands.send_nowait(command) {
            Ok(reply) => {
                if !matches!(
                    tokio::time::timeout(END_DEMO_WAIT, reply).await,
                    Ok(Ok(Ok(())))
                ) {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    let deadline = tokio::time::Instant::now() + END_DEMO_WAIT;
    while !view.state.is_finished() {
        match tokio::time::timeout_at(deadline, client.events.recv()).await {
            Ok(Some(ev)) => view.apply(&ev, clock()),
            Ok(None) | Err(_) => return,
        }
    }
}

/// Drop the keys already queued when a prompt opened: they were typed for what was on screen
/// before it. False when the input ended.
///
/// The queue is polled with this task's own waker, never with a no-op one (`now_or_never`):
/// crossterm's `EventStream` keeps the waker of the poll that found it empty until its wake
/// thread sees the next key, and ignores the wakers of later polls meanwhile (crossterm 0.29,
/// `src/event/stream.rs`, `poll_next`). A no-op waker there left the first key after every
/// prompt unread until something else woke the loop — 25 to 921 ms later (issue 14).
async fn drop_queued_keys<S>(input: &mut S) -> anyhow::Result<bool>
where
    S: Stream<Item = io::Result<TermEvent>> + Unpin,
{
    std::future::poll_fn(|cx| loop {
        match input.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(_))) => continue,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e.into())),
            Poll::Ready(None) => return Poll::Ready(Ok(false)),
            Poll::Pending => return Poll::Ready(Ok(true)),
        }
    })
    .await
}

/// When the session's events may draw a frame. A key is answered at once (the loop draws
/// right after it), and so is an event that changes what a key would do (a prompt opens or
/// closes, the session ends): the prompt's guard counts from when it is drawn. Other events
/// draw at most one frame per [`Frames::BURST`]; live probe samples and gate progress (a
/// thousand nodes sample a thousand times a second) wait for the next clock tick when the
/// clock on screen moves, else for [`Frames::LIVE`] after the last frame. An idle session
/// then draws once a second, not once per sample.
#[derive(Debug, Default)]
struct Frames {
    last: Option<tokio::time::Instant>,
    /// A frame owed to events, and when it is due (None: the next tick draws it).
    owed: Option<Option<tokio::time::Instant>>,
}

impl Frames {
    const BURST: Duration = Duration::from_millis(50);
    const LIVE: Duration = Duration::from_secs(1);

    fn drawn(&mut self, at: tokio::time::Instant) {
        self.last = Some(at);
        self.owed = None;
    }

    /// Events changed the view: whether to draw now (else a frame is owed).
    fn changed(&mut self, now: tokio::time::Instant, live_only: bool, ticking: bool) -> bool {
        let due = match (live_only, ticking) {
            (true, true) => None,
            (true, false) => Some(self.last.map_or(now, |l| l + Self::LIVE)),
            (false, _) => Some(self.last.map_or(now, |l| l + Self::BURST)),
        };
        if due.is_some_and(|d| d <= now) {
            return true;
        }
        self.owed = Some(match (self.owed.flatten(), due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        });
        false
    }

    /// When the owed frame is due without a tick: its own time, or (owed to a tick while no
    /// clock moves any more) [`Frames::LIVE`] after the last frame. None: the tick draws it.
    fn due_at(&self, ticking: bool) -> Option<tokio::time::Instant> {
        match self.owed? {
            Some(at) => Some(at),
            None if ticking => None,
            None => Some(
                self.last
                    .map_or_else(tokio::time::Instant::now, |l| l + Self::LIVE),
            ),
        }
    }
}

/// What decides how a key is answered: the open prompt, who drives, whether the session is
/// over. An event that changes it is drawn at once.
fn answers_keys(view: &View) -> (Option<u64>, Option<u64>, bool) {
    (
        view.state.prompt.map(|p| p.id),
        view.state.driver().map(|o| o.id),
        view.state.is_finished(),
    )
}

/// Resolves when the owed frame is due; never when none is owed at a time of its own.
async fn frame_due(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Now, on tokio's clock: the wall clock in a real run, a test's paused clock under
/// `tokio::time::pause` (so the prompt guard can be passed without waiting).
fn clock() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn exit(view: &View) -> TuiExit {
    if view.ended {
        TuiExit::SessionEnded
    } else {
        TuiExit::Left
    }
}

fn send(
    view: &mut View,
    client: &SessionClient,
    command: Command,
    replies: &mut FuturesUnordered<Reply>,
) {
    match client.commands.send_nowait(command.clone()) {
        Ok(reply) => {
            replies.push(reply);
            view.sent(&command);
        }
        Err(Rejected(why)) => view.status = Some(format!("not sent: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::Frames;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn events_draw_at_most_one_frame_per_burst_and_samples_wait_for_the_tick() {
        let t0 = tokio::time::Instant::now();
        let mut f = Frames::default();
        // Nothing drawn yet: the first change draws at once.
        assert!(f.changed(t0, false, true));
        f.drawn(t0);
        // A journaled event 10 ms after a frame waits until 50 ms after it.
        assert!(!f.changed(t0 + ms(10), false, true));
        assert_eq!(f.due_at(true), Some(t0 + Frames::BURST));
        assert_eq!(f.owed, Some(Some(t0 + Frames::BURST)));
        // One after the burst interval draws at once.
        f.drawn(t0 + ms(50));
        assert!(f.changed(t0 + ms(100), false, true));
        f.drawn(t0 + ms(100));
        // Live samples while the clock ticks: the tick draws them, no frame of their own.
        assert!(!f.changed(t0 + ms(120), true, true));
        assert_eq!(f.owed, Some(None));
        assert_eq!(f.due_at(true), None);
        // If the clock on screen stops before its tick, the frame is due a second after the last.
        assert_eq!(f.due_at(false), Some(t0 + ms(100) + Frames::LIVE));
        // A journaled event then still gets its frame within the burst interval.
        assert!(!f.changed(t0 + ms(130), false, true));
        assert_eq!(f.owed, Some(Some(t0 + ms(150))));
        // No clock on screen: samples draw a second after the last frame, not per sample.
        f.drawn(t0 + ms(150));
        assert!(!f.changed(t0 + ms(160), true, false));
        assert_eq!(f.owed, Some(Some(t0 + ms(150) + Frames::LIVE)));
        assert!(f.changed(t0 + ms(1200), true, false));
    }
}
