//! Plays a journal back on the replay clock, as a [`SessionClient`] any view can follow, with a
//! [`ReplayControl`] for the keys (pause, speed, jumps, seeks).
//!
//! ## How a view follows a replay
//!
//! [`start`] returns a `SessionClient` and a `ReplayControl`. The client's `events` deliver the
//! journal's events in order: at once up to the start position, then one by one on the replay
//! clock (`Timeline` gaps, divided by the speed; tokio time, so `tokio::time::pause()` drives it
//! in tests). Its `commands` reject everything: a replay never changes a session.
//!
//! A seek (step and decision jumps, start/end, [`ReplayControl::seek`]) moves the position at
//! once and bumps [`ReplayPosition::epoch`]; the feed then continues from the new position.
//!
//! A view stays right by showing frames: it reads [`ReplayControl::position`] and brings its
//! own `SessionState` there with [`Timeline::bring`] (the events since the position it shows
//! applied to it while playing, the nearest snapshot after a seek), using the events feed, or
//! [`ReplayControl::subscribe`], only as a wake-up. Nothing queued before a seek can show, and
//! no state is copied per move: the view's own is moved forward. (The feed's events are
//! numbered by their place, so a test can also fold them itself.)
//!
//! Nothing here waits for the timeline's background fold on the runtime's thread: a jump the
//! fold has not found yet (`→` at the start of a long journal) is kept and made when the fold
//! gets there, and a position the fold has not reached yet is published again once it has
//! (its step and decision then known, its state to be had): the key is answered at once, the
//! frame comes with the fold.
//!
//! The position bar reads [`ReplayControl::position`]: index/total, session and replay time,
//! the step, speed, paused, and the compressed idle gap being waited through, if any.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, watch};
use tokio::time::{Duration, Instant};

use super::timeline::{CompressedGap, DecisionKind, Jump, Timeline};
use crate::engine::client::{CommandSender, Request, SessionClient};
use crate::engine::{Rejected, SessionState, Stamped};
use crate::journal::Journal;

pub const MIN_SPEED: f64 = 0.25;
pub const MAX_SPEED: f64 = 64.0;
/// Idle gaps longer than this replay as this long by default.
pub const DEFAULT_IDLE_CAP_MS: u64 = 10_000;
/// Events the feed may hold before the player waits for the view.
const FEED_CAPACITY: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOptions {
    /// Replay speed, clamped to `MIN_SPEED..=MAX_SPEED`.
    pub speed: f64,
    /// Start just before this step comes up: its key or its 1-based number.
    pub from_step: Option<String>,
    /// Idle gaps longer than this replay as this long (0: no cap).
    pub idle_cap_ms: u64,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            speed: 1.0,
            from_step: None,
            idle_cap_ms: DEFAULT_IDLE_CAP_MS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error("the journal holds no events: there is nothing to replay")]
    Empty,
    #[error("no step {0:?} in this journal's plan (give a step key or a 1-based number)")]
    UnknownStep(String),
    #[error("step {0:?} never came up in this journal")]
    StepNeverReached(String),
}

/// Where the replay is.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayPosition {
    /// The last event delivered (0-based); the state shown is after it.
    pub index: usize,
    pub total: usize,
    /// Session time of that event (`t_ms`), and of the last event.
    pub t_ms: u64,
    pub t_total_ms: u64,
    /// Replay clock of that event and of the whole journal.
    pub replay_ms: u64,
    pub replay_total_ms: u64,
    /// The step (0-based) the session was about.
    pub step: Option<usize>,
    pub speed: f64,
    pub paused: bool,
    /// Every event is delivered.
    pub at_end: bool,
    /// The idle gap before the next event, when replay shortens it ("idle 15m compressed").
    pub compressed_gap: Option<CompressedGap>,
    /// The event at `index` is a decision point of this kind.
    pub decision: Option<DecisionKind>,
    /// Paused by a stop (see [`ReplayControl::set_stops`]) before delivering this event.
    pub stopped_before: Option<usize>,
    /// Bumped by every seek: a view folding the feed must take [`ReplayControl::state`].
    pub epoch: u64,
    /// A damaged line found while reading the journal, in the reader's words: the replay ends
    /// before it.
    pub damage: Option<String>,
    /// Lines of the journal the replay leaves out, known so far (`--skip-bad-lines`, or
    /// skipped by a journaled resume; see [`Timeline::lines_left_out`]).
    pub lines_left_out: usize,
}

impl ReplayPosition {
    /// One line for a position bar, e.g.
    /// `⏸ x2 · event 34/68 · +0:33 of 15:54 · step 6 · idle 15m 00s compressed`.
    pub fn status_line(&self) -> String {
        let mut line = format!(
            "{} x{} · event {}/{} · {} of {}",
            if self.paused { "⏸" } else { "▶" },
            self.speed,
            self.index + 1,
            self.total,
            clock(self.t_ms, true),
            clock(self.t_total_ms, false),
        );
        if let Some(s) = self.step {
            line.push_str(&format!(" · step {}", s + 1));
        }
        if let Some(g) = self.compressed_gap {
            line.push_str(&format!(
                " · idle {} compressed",
                crate::report::human_duration(g.original_ms)
            ));
        }
        if self.lines_left_out > 0 {
            line.push_str(&format!(" · {}", left_out_label(self.lines_left_out)));
        }
        if self.stopped_before.is_some() {
            line.push_str(" · stopped before a decision");
        } else if let Some(why) = self.damage.as_ref().filter(|_| self.at_end) {
            line.push_str(&format!(" · the journal is damaged here: {why}"));
        } else if self.at_end {
            line.push_str(" · end");
        }
        line
    }
}

/// "1 bad line skipped", "3 bad lines skipped": for the position bar.
pub fn left_out_label(n: usize) -> String {
    format!("{n} bad line{} skipped", if n == 1 { "" } else { "s" })
}

/// `+M:SS` / `H:MM:SS` style session clock.
fn clock(ms: u64, plus: bool) -> String {
    let secs = ms / 1000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let sign = if plus { "+" } else { "" };
    if h == 0 {
        format!("{sign}{m}:{s:02}")
    } else {
        format!("{sign}{h}:{m:02}:{s:02}")
    }
}

struct Core {
    index: usize,
    speed: f64,
    paused: bool,
    epoch: u64,
    /// Replay clock at `anchor`; the clock runs at `speed` from there while playing.
    anchor: Instant,
    anchor_clock: u64,
    stops: BTreeSet<usize>,
    stopped_before: Option<usize>,
    /// A stop the operator resumed from: deliver it this time.
    released: Option<usize>,
    /// A jump asked for before the fold found where it lands: (the jump, from where).
    pending: Option<(Jump, usize)>,
}

impl Core {
    fn clock_at(&self, now: Instant, timeline: &Timeline) -> u64 {
        if self.paused {
            return self.anchor_clock;
        }
        let ran = now.saturating_duration_since(self.anchor).as_secs_f64() * 1000.0;
        let clock = self.anchor_clock + (ran * self.speed) as u64;
        // Never past the next event: the clock waits for a view that is slow to take events.
        clock.min(timeline.replay_ms(self.index + 1))
    }

    fn reanchor(&mut self, now: Instant, timeline: &Timeline) {
        self.anchor_clock = self.clock_at(now, timeline);
        self.anchor = now;
    }

    /// Jump to event `index` (clamped).
    fn seek(&mut self, index: usize, now: Instant, timeline: &Timeline) {
        let index = index.min(timeline.len().saturating_sub(1));
        self.index = index;
        self.epoch += 1;
        self.anchor = now;
        self.anchor_clock = timeline.replay_ms(index);
        self.stopped_before = None;
        self.released = None;
        self.pending = None;
    }

    /// Whether the player waits on the fold: a jump it has not placed, or a position it has
    /// not reached (published without its step and decision, its frame not to be had yet).
    fn needs_fold(&self, timeline: &Timeline) -> bool {
        self.pending.is_some() || !timeline.folded_past(self.index)
    }
}

struct Shared {
    timeline: Arc<Timeline>,
    core: Mutex<Core>,
    position: watch::Sender<ReplayPosition>,
}

impl Shared {
    fn core(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, core: &Core) {
        let t = &self.timeline;
        let next = core.index + 1;
        self.position.send_replace(ReplayPosition {
            index: core.index,
            total: t.len(),
            t_ms: t.t_ms(core.index),
            t_total_ms: t.t_ms(usize::MAX),
            replay_ms: t.replay_ms(core.index),
            replay_total_ms: t.replay_total_ms(),
            // Not waited for: unknown until the fold gets there (then published again).
            step: t.step_at_now(core.index).flatten(),
            speed: core.speed,
            paused: core.paused,
            at_end: next >= t.len(),
            compressed_gap: t.gap_before(next),
            decision: t.decision_at_now(core.index).flatten(),
            stopped_before: core.stopped_before,
            epoch: core.epoch,
            damage: t.damage(),
            lines_left_out: t.lines_left_out(),
        });
    }

    /// The fold moved on: make the jump it now places, and publish the position again if the
    /// fold has now reached it.
    fn fold_moved(&self) {
        let mut core = self.core();
        let t = &self.timeline;
        let mut news = false;
        if let Some((jump, from)) = core.pending {
            if let Some(to) = t.jump_now(jump, from) {
                core.pending = None;
                if let Some(to) = to {
                    core.seek(to, Instant::now(), t);
                }
                news = true;
            }
        }
        if news || t.folded_past(core.index) {
            self.publish(&core);
        }
    }
}

/// The replay's keys. Cheap to clone; the player stops when every clone is dropped (or the
/// feed's receiver is).
#[derive(Clone)]
pub struct ReplayControl {
    shared: Arc<Shared>,
    wake: mpsc::UnboundedSender<()>,
}

impl std::fmt::Debug for ReplayControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayControl")
            .field("position", &self.position())
            .finish()
    }
}

/// Open the journal at `path` and start replaying it (see [`start`]): indexed, and read as it
/// plays ([`Timeline::open`]), so a long journal shows its first frame at once and is never
/// held in memory whole. A file that is not a journal, or whose lines are out of order, is an
/// error that says so; a line damaged past its start ends the replay before it
/// ([`ReplayPosition::damage`]), unless it may be left out (`--skip-bad-lines`, or a later
/// `resumed` journaled that it was skipped): then the replay plays on past it.
pub fn open(
    path: &std::path::Path,
    opts: ReplayOptions,
) -> Result<(SessionClient, ReplayControl), ReplayError> {
    open_with(path, opts, crate::journal::ReadOptions::default())
}

/// [`open`] with the journal reader's options (`--skip-bad-lines`).
pub fn open_with(
    path: &std::path::Path,
    opts: ReplayOptions,
    read: crate::journal::ReadOptions,
) -> Result<(SessionClient, ReplayControl), ReplayError> {
    let timeline = Timeline::open(path, opts.idle_cap_ms, read)?;
    start_timeline(Arc::new(timeline), opts)
}

/// Start replaying `journal`. Must be called inside a tokio runtime (it spawns the player).
pub fn start(
    journal: Journal,
    opts: ReplayOptions,
) -> Result<(SessionClient, ReplayControl), ReplayError> {
    let timeline = Arc::new(Timeline::new(journal.events, opts.idle_cap_ms));
    start_timeline(timeline, opts)
}

/// Start replaying an already laid-out timeline (shared with, say, a quiz).
pub fn start_timeline(
    timeline: Arc<Timeline>,
    opts: ReplayOptions,
) -> Result<(SessionClient, ReplayControl), ReplayError> {
    if timeline.is_empty() {
        return Err(ReplayError::Empty);
    }
    let index = match &opts.from_step {
        None => 0,
        Some(s) => {
            let step = timeline
                .find_step(s)
                .ok_or_else(|| ReplayError::UnknownStep(s.clone()))?;
            let first = timeline
                .first_event_of_step(step)
                .ok_or_else(|| ReplayError::StepNeverReached(s.clone()))?;
            first.saturating_sub(1)
        }
    };
    let core = Core {
        index,
        speed: clamp_speed(opts.speed),
        paused: false,
        epoch: 0,
        anchor: Instant::now(),
        anchor_clock: timeline.replay_ms(index),
        stops: BTreeSet::new(),
        stopped_before: None,
        released: None,
        pending: None,
    };
    let (position, _) = watch::channel(ReplayPosition {
        index,
        total: timeline.len(),
        t_ms: 0,
        t_total_ms: 0,
        replay_ms: 0,
        replay_total_ms: 0,
        step: None,
        speed: core.speed,
        paused: false,
        at_end: false,
        compressed_gap: None,
        decision: None,
        stopped_before: None,
        epoch: 0,
        damage: None,
        lines_left_out: 0,
    });
    let shared = Arc::new(Shared {
        timeline,
        core: Mutex::new(core),
        position,
    });
    shared.publish(&shared.core());

    let (events_tx, events_rx) = mpsc::channel(FEED_CAPACITY);
    let (wake_tx, wake_rx) = mpsc::unbounded_channel();
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    tokio::spawn(play(shared.clone(), events_tx, wake_rx, index));
    tokio::spawn(refuse_commands(cmd_rx));
    let client = SessionClient {
        operator_id: 0,
        operator: "replay".into(),
        events: events_rx,
        commands: CommandSender::new(cmd_tx),
        viewport: None,
    };
    Ok((
        client,
        ReplayControl {
            shared,
            wake: wake_tx,
        },
    ))
}

async fn refuse_commands(mut rx: mpsc::Receiver<Request>) {
    while let Some(req) = rx.recv().await {
        let _ = req.reply.send(Err(Rejected(
            "this is a replay: it shows what happened and changes nothing".into(),
        )));
    }
}

/// The player task: history up to the start position at once, then each event when the
/// replay clock reaches it.
async fn play(
    shared: Arc<Shared>,
    feed: mpsc::Sender<Stamped>,
    mut wake: mpsc::UnboundedReceiver<()>,
    start: usize,
) {
    let timeline = shared.timeline.clone();
    // The history, a chunk at a time (a journal read from its file is not in memory).
    let mut from = 0;
    while from <= start {
        let to = start.min(from + FEED_CAPACITY - 1);
        let mut chunk = Vec::with_capacity(to - from + 1);
        timeline.read(from, to, |e| chunk.push(e));
        for e in chunk {
            if feed.send(e).await.is_err() {
                return;
            }
        }
        from = to + 1;
    }
    {
        // A view slow to take a long history must not make the first events burst out.
        let mut core = shared.core();
        if core.epoch == 0 && core.index == start && !core.paused {
            core.anchor = Instant::now();
            core.anchor_clock = timeline.replay_ms(start);
        }
    }
    let mut fold = timeline.fold_progress();
    loop {
        // Seen before the look at the fold below: a move after it wakes us.
        fold.borrow_and_update();
        let (due, needs_fold) = {
            let core = shared.core();
            let next = core.index + 1;
            let due = if core.paused || next >= timeline.len() {
                None
            } else {
                let ahead = timeline.replay_ms(next).saturating_sub(core.anchor_clock);
                let wait = Duration::from_nanos((ahead as f64 * 1e6 / core.speed).round() as u64);
                Some((next, core.epoch, core.anchor + wait))
            };
            (due, core.needs_fold(&timeline))
        };
        // Never reached while `due` is None (its branch is off): any instant will do.
        let (next, epoch, deadline) = due.unwrap_or((0, 0, Instant::now()));
        tokio::select! {
            biased;
            w = wake.recv() => {
                if w.is_none() {
                    return;
                }
            }
            moved = fold.changed(), if needs_fold => {
                if moved.is_ok() {
                    shared.fold_moved();
                }
            }
            _ = tokio::time::sleep_until(deadline), if due.is_some() => {
                let event = {
                    let mut core = shared.core();
                    if core.epoch != epoch || core.index + 1 != next || core.paused {
                        continue;
                    }
                    if core.stops.contains(&next) && core.released != Some(next) {
                        core.reanchor(Instant::now(), &timeline);
                        core.paused = true;
                        core.stopped_before = Some(next);
                        shared.publish(&core);
                        continue;
                    }
                    let Some(event) = timeline.event(next) else {
                        if next < timeline.len() {
                            // A damaged line left out: the position passes it, nothing to
                            // deliver.
                            core.index = next;
                            core.stopped_before = None;
                        }
                        // Else damaged: the timeline now ends before it.
                        shared.publish(&core);
                        continue;
                    };
                    core.index = next;
                    core.stopped_before = None;
                    shared.publish(&core);
                    event
                };
                if feed.send(event).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn clamp_speed(speed: f64) -> f64 {
    if speed.is_finite() {
        speed.clamp(MIN_SPEED, MAX_SPEED)
    } else {
        1.0
    }
}

impl ReplayControl {
    pub fn timeline(&self) -> &Arc<Timeline> {
        &self.shared.timeline
    }

    pub fn position(&self) -> ReplayPosition {
        self.shared.position.borrow().clone()
    }

    /// Position updates (every delivered event, every key).
    pub fn subscribe(&self) -> watch::Receiver<ReplayPosition> {
        self.shared.position.subscribe()
    }

    /// The folded state at the current position, built for the caller (from the nearest
    /// snapshot). A view that shows every position brings its own state along instead
    /// ([`Timeline::bring`]).
    pub fn state(&self) -> SessionState {
        let index = self.shared.core().index;
        self.shared.timeline.state_at(index)
    }

    /// Pause or resume (space).
    pub fn toggle_pause(&self) {
        let paused = self.shared.core().paused;
        self.set_paused(!paused);
    }

    pub fn pause(&self) {
        self.set_paused(true);
    }

    pub fn resume(&self) {
        self.set_paused(false);
    }

    fn set_paused(&self, paused: bool) {
        self.update(|core, now, t| {
            core.reanchor(now, t);
            if !paused {
                // Resuming at a stop lets the stopped event through.
                core.released = core.stopped_before.take();
            }
            core.paused = paused;
        });
    }

    /// Double the speed (up to `MAX_SPEED`).
    pub fn faster(&self) {
        let speed = self.shared.core().speed;
        self.set_speed(speed * 2.0);
    }

    /// Halve the speed (down to `MIN_SPEED`).
    pub fn slower(&self) {
        let speed = self.shared.core().speed;
        self.set_speed(speed / 2.0);
    }

    pub fn set_speed(&self, speed: f64) {
        self.update(|core, now, t| {
            core.reanchor(now, t);
            core.speed = clamp_speed(speed);
        });
    }

    /// Jump to event `index` (clamped): the state shown is after it; play continues from there
    /// (or stays paused).
    pub fn seek(&self, index: usize) {
        self.update(|core, now, t| core.seek(index, now, t));
    }

    /// To the next step boundary (an action starting or finishing, a prompt opening).
    pub fn next_step(&self) {
        self.jump(Jump::NextStep);
    }

    /// To the previous step boundary.
    pub fn prev_step(&self) {
        self.jump(Jump::PrevStep);
    }

    /// To the next decision point (`d`).
    pub fn next_decision(&self) {
        self.jump(Jump::NextDecision);
    }

    pub fn prev_decision(&self) {
        self.jump(Jump::PrevDecision);
    }

    /// Make `jump` from the position now if the fold knows where it lands, else once it does
    /// (the player's task makes it; a later seek or jump replaces it).
    fn jump(&self, jump: Jump) {
        self.update(|core, now, t| {
            let from = core.index;
            match t.jump_now(jump, from) {
                Some(Some(to)) => core.seek(to, now, t),
                Some(None) => core.pending = None,
                None => core.pending = Some((jump, from)),
            }
        });
    }

    pub fn to_start(&self) {
        self.seek(0);
    }

    pub fn to_end(&self) {
        self.seek(usize::MAX);
    }

    /// Pause before delivering any of these events (the quiz stops before each decision).
    pub fn set_stops(&self, stops: impl IntoIterator<Item = usize>) {
        let stops: BTreeSet<usize> = stops.into_iter().collect();
        self.update(|core, _, _| {
            core.stops = stops;
        });
    }

    fn update(&self, f: impl FnOnce(&mut Core, Instant, &Timeline)) {
        {
            let mut core = self.shared.core();
            f(&mut core, Instant::now(), &self.shared.timeline);
            self.shared.publish(&core);
        }
        // The player may have stopped (its feed dropped); nothing to wake then.
        let _ = self.wake.send(());
    }
}
