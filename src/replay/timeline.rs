//! A journal laid out for replay: when each event plays (with long idle gaps compressed), where
//! the steps and the operator's decisions are, and the folded state at any event, fast.
//!
//! A timeline holds its events in memory ([`Timeline::new`]) or reads them from the journal
//! file as needed ([`Timeline::open`]): opening indexes the file in one pass that decodes
//! nothing (where each event's line starts, its clock, and the reader's checks: seq order, a
//! single `session_started`, the torn tail), then a background thread folds the events in
//! order, keeping the state every few thousand events (at most [`MAX_SNAPSHOTS`], their output
//! lines shared) and noting step boundaries and decisions. The state at any event is the
//! nearest kept state, folded forward from the file; asking beyond what the background has
//! folded waits for it — except on the runtime's thread: the player and the view ask without
//! waiting ([`Timeline::jump_now`], [`Timeline::can_bring`]) and are woken when the fold moves
//! on ([`Timeline::fold_progress`]), so a seek past the fold is answered at once and its frame
//! comes when the fold gets there. A line whose start reads but whose event does not is found by that
//! fold (or by playback, if it gets there first): the timeline ends before it
//! ([`Timeline::damage`] says where and why), unless the reader may leave it out — with
//! `--skip-bad-lines`, or because a later `resumed` event journaled that the resumed session
//! skipped it — and then it keeps its place as an event that changes nothing
//! ([`Timeline::left_out`]).
//!
//! Playback reads through one open reader kept for the replay (a bounded buffer, moved to each
//! event's line), and the background fold through its own for its one pass: the file is
//! opened twice per replay, not once per event.
//!
//! The layout is pure: the player (`super::player`) and the quiz (`super::quiz`) drive it.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::engine::event::{Event, Stamped};
use crate::engine::state::{PromptKindTag, SessionState};
use crate::journal::{self, JournalError, ReadOptions};

/// Snapshot spacing used by [`Timeline::new`] for short journals.
pub const SNAPSHOT_EVERY: usize = 200;
/// Most snapshots kept: a long journal spaces them wider, so memory stays bounded (a snapshot
/// holds up to `OUTPUT_KEPT` output lines per step, shared with the others: a snapshot costs
/// its pointers, not the text) while a seek folds at most one interval.
pub const MAX_SNAPSHOTS: usize = 256;
/// Events the background fold decodes before it publishes what it found (and takes the lock).
const FOLD_BATCH: usize = 256;
/// The buffer of each open reader on the journal: what is read ahead of the line wanted.
const READ_BUFFER: usize = 1 << 16;
/// `step_at` for an event before any step came up.
const NO_STEP: u32 = u32::MAX;

/// A pause between two events that replay shortens to the idle cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CompressedGap {
    /// The event that ends the gap.
    pub index: usize,
    /// How long the session was really idle.
    pub original_ms: u64,
    /// How long replay waits instead (the cap).
    pub replay_ms: u64,
}

/// Why an event is a decision point (`d` jumps between them; the quiz asks about them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// A person (not `--yes` or `confirm = none`) confirmed a prompt, or retried a step.
    Confirmed,
    /// Any confirmation of an undo prompt, automatic ones included: undo is never routine.
    UndoConfirmed,
    Declined,
    Skipped,
    MarkedDone,
    AbortRequested,
    Note,
    DriverChanged,
    /// The session stopped on a failure and asked what to do.
    FailedPrompt,
    /// The session found an action interrupted by a crash and asked what to do.
    InterruptedPrompt,
}

/// Where the events are.
#[derive(Debug)]
enum Source {
    Memory(Vec<Stamped>),
    File {
        path: PathBuf,
        index: Box<journal::Index>,
    },
}

/// What folding the events finds, up to `folded`.
#[derive(Debug, Default)]
struct Layout {
    /// Events folded so far: everything below is complete up to there.
    folded: usize,
    /// Folding stopped: at the end, at a damaged line, or because the timeline was dropped.
    done: bool,
    boundaries: Vec<usize>,
    decisions: Vec<(usize, DecisionKind)>,
    /// The step the session was about at each event ([`NO_STEP`]: none yet).
    step_at: Vec<u32>,
    /// The first event that concerns each step that came up.
    first_of_step: std::collections::BTreeMap<usize, usize>,
    /// `snapshots[j]` is the state after folding the first `j * every` events.
    snapshots: Vec<SessionState>,
    /// A line found damaged while folding: its event and why.
    damage: Option<(usize, String)>,
    /// Lines found damaged and left out (`--skip-bad-lines`, or skipped by a journaled
    /// resume): by event, the line number and why.
    left_out: std::collections::BTreeMap<usize, (usize, String)>,
}

/// The events and what is known of them, shared with the background fold.
#[derive(Debug)]
struct Inner {
    source: Source,
    every: usize,
    /// Events there are: the index's count, cut at a damaged line once one is found.
    len: AtomicUsize,
    layout: Mutex<Layout>,
    progress: Condvar,
    /// Bumped whenever `progress` is notified: the same news for async waiters.
    moved: tokio::sync::watch::Sender<u64>,
    /// The timeline was dropped: the background fold stops.
    stop: AtomicBool,
    /// Playback's reader on the journal file, kept open between reads (None until the first,
    /// and after an error: its place is then unknown).
    cursor: Mutex<Option<Cursor>>,
    /// `--skip-bad-lines`: a line found damaged is left out instead of ending the timeline.
    skip_bad_lines: bool,
}

/// An open reader on a journal file and the offset it reads next.
struct Cursor {
    reader: BufReader<File>,
    at: u64,
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor").field("at", &self.at).finish()
    }
}

impl Cursor {
    fn open(path: &Path) -> std::io::Result<Self> {
        Ok(Cursor {
            reader: BufReader::with_capacity(READ_BUFFER, File::open(path)?),
            at: 0,
        })
    }

    /// Move to offset `to`: within the buffer when it holds it (playing on, or stepping back
    /// a little), else by seeking the file.
    fn seek_to(&mut self, to: u64) -> std::io::Result<()> {
        if to == self.at {
            return Ok(());
        }
        match i64::try_from(i128::from(to) - i128::from(self.at)) {
            Ok(d) => self.reader.seek_relative(d)?,
            Err(_) => {
                self.reader.seek(SeekFrom::Start(to))?;
            }
        }
        self.at = to;
        Ok(())
    }

    /// The line from here into `buf` (cleared first); its length (0 at the end of the file).
    fn line(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        buf.clear();
        let n = self.reader.read_until(b'\n', buf)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Folds events in order into the layout.
struct Folder {
    state: SessionState,
    step: Option<usize>,
}

impl Folder {
    fn new() -> Self {
        Folder {
            state: SessionState::empty(),
            step: None,
        }
    }

    /// Fold event number `layout.folded` (None: its line was left out, it changes nothing).
    fn take(&mut self, e: Option<&Stamped>, layout: &mut Layout, every: usize) {
        let i = layout.folded;
        if let Some(e) = e {
            if matches!(
                e.event,
                Event::ActionStarted { .. }
                    | Event::ActionFinished { .. }
                    | Event::PromptOpened { .. }
            ) {
                layout.boundaries.push(i);
            }
            if let Some(kind) = decision_kind(&self.state, &e.event) {
                layout.decisions.push((i, kind));
            }
            if let Some(s) = step_of(&e.event) {
                self.step = Some(s);
                layout.first_of_step.entry(s).or_insert(i);
            }
            self.state.apply(e);
        }
        layout.step_at.push(
            self.step
                .map_or(NO_STEP, |s| u32::try_from(s).unwrap_or(NO_STEP - 1)),
        );
        layout.folded += 1;
        if layout.folded.is_multiple_of(every) {
            layout.snapshots.push(self.state.clone());
        }
    }
}

impl Inner {
    fn layout(&self) -> MutexGuard<'_, Layout> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.layout.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The layout once `ready` holds for it or folding has stopped.
    fn layout_when(&self, ready: impl Fn(&Layout) -> bool) -> MutexGuard<'_, Layout> {
        let mut g = self.layout();
        while !g.done && !ready(&g) {
            g = self.progress.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        g
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Hand events `from..=to` (clamped to the events there are) to `each`, in order. Reading
    /// from the file, a line that does not decode ends the timeline before it (see
    /// [`Timeline::damage`]) and the events stop there, unless it may be left out: then it is
    /// noted ([`Timeline::left_out`]) and passed over.
    fn read(&self, from: usize, to: usize, mut each: impl FnMut(Stamped)) {
        let to = to.saturating_add(1).min(self.len());
        match &self.source {
            Source::Memory(events) => {
                for e in events.get(from..to).unwrap_or_default() {
                    each(e.clone());
                }
            }
            Source::File { path, index } => {
                if from >= to {
                    return;
                }
                let mut cursor = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
                let opened = match cursor.take() {
                    Some(c) => Ok(c),
                    None => Cursor::open(path),
                };
                let mut reader = match opened {
                    Ok(c) => c,
                    Err(e) => {
                        drop(cursor);
                        let at = index.line_of(from);
                        self.damaged(from, format!("{}:{at}: {e}", path.display()));
                        return;
                    }
                };
                let read = self.read_file(&mut reader, path, index, from, to, |_, e| {
                    each(e);
                    true
                });
                // After an error the reader's place is unknown: the next read opens anew.
                if read.is_ok() {
                    *cursor = Some(reader);
                }
                drop(cursor);
                if let Err((i, why)) = read {
                    self.damaged(i, why);
                }
            }
        }
    }

    /// Event `i`'s line (number `line`) is damaged and left out.
    fn left_out(&self, i: usize, line: usize, why: String) {
        self.layout().left_out.entry(i).or_insert((line, why));
    }

    /// Read events `from..to` of an indexed journal through `cursor`, numbered 1, 2, 3, ...
    /// by their place, to `each` (with their place; false stops). A damaged line the reader
    /// may leave out is noted and passed over; any other line that does not read stops the
    /// reading, with its event and why.
    fn read_file(
        &self,
        cursor: &mut Cursor,
        path: &Path,
        index: &journal::Index,
        from: usize,
        to: usize,
        mut each: impl FnMut(usize, Stamped) -> bool,
    ) -> Result<(), (usize, String)> {
        let fail = |i: usize, why: String| {
            Err((i, format!("{}:{}: {why}", path.display(), index.line_of(i))))
        };
        let mut buf = Vec::new();
        for i in from..to.min(index.len()) {
            if i.is_multiple_of(FOLD_BATCH) && self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            // Lines that are no events (damaged, misplaced) may lie between: step over them.
            let read = cursor
                .seek_to(index.offsets[i])
                .and_then(|()| cursor.line(&mut buf));
            let n = match read {
                Ok(n) => n,
                Err(e) => return fail(i, e.to_string()),
            };
            match journal::decode_line(&buf) {
                Ok(mut e) => {
                    // Events are numbered by their place (a journal with gaps in `seq` is
                    // renumbered), as a timeline held in memory numbers them.
                    e.seq = i as u64 + 1;
                    if !each(i, e) {
                        return Ok(());
                    }
                }
                Err(e) if n == 0 => return fail(i, format!("the journal got shorter: {e}")),
                Err(e) => {
                    let line = index.line_of(i);
                    if self.skip_bad_lines || index.resumed_skipped.contains(&line) {
                        self.left_out(i, line, format!("damaged event line: {e}"));
                        continue;
                    }
                    return fail(
                        i,
                        format!("damaged event line: {e} (--skip-bad-lines leaves such lines out)"),
                    );
                }
            }
        }
        Ok(())
    }

    /// Event `i` does not decode: the timeline ends before it.
    fn damaged(&self, i: usize, why: String) {
        let mut g = self.layout();
        if g.damage.as_ref().is_none_or(|(at, _)| i < *at) {
            g.damage = Some((i, why));
            self.len.fetch_min(i, Ordering::AcqRel);
        }
        if g.folded >= i {
            g.done = true;
        }
        drop(g);
        self.notify();
    }

    /// Wake whoever waits for the fold: threads on `progress`, tasks on `moved`.
    fn notify(&self) {
        self.progress.notify_all();
        self.moved.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The layout if `ready` holds for it or folding has stopped; None while the background
    /// fold has not got that far (never waits).
    fn layout_if(&self, ready: impl Fn(&Layout) -> bool) -> Option<MutexGuard<'_, Layout>> {
        let g = self.layout();
        (g.done || ready(&g)).then_some(g)
    }

    /// The background fold of a timeline read from a file, through its own reader (`cursor`,
    /// at the start): one pass, never moved by playback.
    fn fold_file(&self, mut cursor: Cursor) {
        struct Done<'a>(&'a Inner);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.layout().done = true;
                self.0.notify();
            }
        }
        let _done = Done(self);
        let Source::File { path, index } = &self.source else {
            return;
        };
        let mut folder = Folder::new();
        let mut batch: Vec<Option<Stamped>> = Vec::with_capacity(FOLD_BATCH);
        let flush = |batch: &mut Vec<Option<Stamped>>, folder: &mut Folder| {
            let mut g = self.layout();
            for e in batch.drain(..) {
                folder.take(e.as_ref(), &mut g, self.every);
            }
            drop(g);
            self.notify();
        };
        let mut next = 0;
        let read = self.read_file(&mut cursor, path, index, 0, index.len(), |i, e| {
            // Lines left out keep their place, as events that change nothing.
            batch.extend(std::iter::repeat_with(|| None).take(i - next));
            next = i + 1;
            batch.push(Some(e));
            if batch.len() >= FOLD_BATCH {
                flush(&mut batch, &mut folder);
            }
            true
        });
        let end = match &read {
            Ok(()) => index.len(),
            Err((i, _)) => *i,
        };
        batch.extend(std::iter::repeat_with(|| None).take(end.saturating_sub(next)));
        flush(&mut batch, &mut folder);
        if let Err((i, why)) = read {
            self.damaged(i, why);
        }
    }
}

/// A journal's events with replay clock, step boundaries, decision points and snapshots.
#[derive(Debug)]
pub struct Timeline {
    inner: Arc<Inner>,
    t_ms: Vec<u64>,
    /// Replay clock per event, in ms from the first event.
    replay_ms: Vec<u64>,
    gaps: Vec<CompressedGap>,
    /// The plan's step keys, from `session_started`.
    step_keys: Vec<String>,
    idle_cap_ms: u64,
    renumbered: bool,
    skipped: Vec<(usize, String)>,
    torn_tail: bool,
}

impl Drop for Timeline {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
    }
}

/// Replay clock per event and the gaps it shortens.
fn replay_clock(t_ms: &[u64], idle_cap_ms: u64) -> (Vec<u64>, Vec<CompressedGap>) {
    let mut replay_ms = Vec::with_capacity(t_ms.len());
    let mut gaps = Vec::new();
    let mut clock = 0u64;
    for (i, t) in t_ms.iter().enumerate() {
        if i > 0 {
            let gap = t.saturating_sub(t_ms[i - 1]);
            if idle_cap_ms > 0 && gap > idle_cap_ms {
                gaps.push(CompressedGap {
                    index: i,
                    original_ms: gap,
                    replay_ms: idle_cap_ms,
                });
                clock = clock.saturating_add(idle_cap_ms);
            } else {
                clock = clock.saturating_add(gap);
            }
        }
        replay_ms.push(clock);
    }
    (replay_ms, gaps)
}

fn step_keys(first: Option<&Stamped>) -> Vec<String> {
    match first.map(|e| &e.event) {
        Some(Event::SessionStarted { plan, .. }) => {
            plan.steps.iter().map(|s| s.key.clone()).collect()
        }
        _ => Vec::new(),
    }
}

impl Timeline {
    /// Lay out `events`; gaps longer than `idle_cap_ms` replay as `idle_cap_ms` (0: no cap).
    pub fn new(events: Vec<Stamped>, idle_cap_ms: u64) -> Self {
        let every = SNAPSHOT_EVERY.max(events.len().div_ceil(MAX_SNAPSHOTS));
        Self::with_snapshot_every(events, idle_cap_ms, every)
    }

    /// As [`Timeline::new`] with an explicit snapshot spacing (at least 1).
    pub fn with_snapshot_every(mut events: Vec<Stamped>, idle_cap_ms: u64, every: usize) -> Self {
        let every = every.max(1);
        // Live-only events never reach a journal; if one is handed in, it has no place in a
        // replayed sequence.
        events.retain(|e| !e.event.is_live_only());
        // The player's feed numbers events by their place, so a view folding it can take
        // exactly the event after the one it applied last (`seq == last_seq + 1`): the
        // numbering must run 1, 2, 3, ... Journals written by the engine do; a hand-edited one
        // may not, and is renumbered in order.
        let contiguous = events.first().is_none_or(|e| e.seq == 1)
            && events
                .windows(2)
                .all(|w| w[1].seq == w[0].seq.saturating_add(1));
        let renumbered = !contiguous;
        if renumbered {
            for (i, e) in events.iter_mut().enumerate() {
                e.seq = i as u64 + 1;
            }
        }
        let t_ms: Vec<u64> = events.iter().map(|e| e.t_ms).collect();
        let (replay_ms, gaps) = replay_clock(&t_ms, idle_cap_ms);
        let mut layout = Layout {
            snapshots: vec![SessionState::empty()],
            ..Layout::default()
        };
        let mut folder = Folder::new();
        for e in &events {
            folder.take(Some(e), &mut layout, every);
        }
        layout.done = true;
        let step_keys = step_keys(events.first());
        let len = events.len();
        Timeline {
            inner: Arc::new(Inner {
                source: Source::Memory(events),
                every,
                len: AtomicUsize::new(len),
                layout: Mutex::new(layout),
                progress: Condvar::new(),
                moved: tokio::sync::watch::channel(0).0,
                stop: AtomicBool::new(false),
                cursor: Mutex::new(None),
                skip_bad_lines: false,
            }),
            t_ms,
            replay_ms,
            gaps,
            step_keys,
            idle_cap_ms,
            renumbered,
            skipped: Vec::new(),
            torn_tail: false,
        }
    }

    /// Lay out the journal at `path` without reading its events into memory: index it (the
    /// reader's checks, see [`journal::index`]), then fold it in the background (see the
    /// module doc). The first event is read before this returns.
    pub fn open(path: &Path, idle_cap_ms: u64, opts: ReadOptions) -> Result<Self, JournalError> {
        Self::open_held(path, idle_cap_ms, opts, None)
    }

    /// [`Timeline::open`] whose background fold waits for `hold` to say go (or be dropped)
    /// before it starts: tests use it to seek ahead of the fold.
    #[cfg(test)]
    pub(crate) fn open_holding_the_fold(
        path: &Path,
        idle_cap_ms: u64,
    ) -> Result<(Self, std::sync::mpsc::Sender<()>), JournalError> {
        let (go, hold) = std::sync::mpsc::channel();
        let t = Self::open_held(path, idle_cap_ms, ReadOptions::default(), Some(hold))?;
        Ok((t, go))
    }

    fn open_held(
        path: &Path,
        idle_cap_ms: u64,
        opts: ReadOptions,
        hold: Option<std::sync::mpsc::Receiver<()>>,
    ) -> Result<Self, JournalError> {
        let mut index = journal::index(path, opts)?;
        let t_ms = std::mem::take(&mut index.t_ms);
        let (replay_ms, gaps) = replay_clock(&t_ms, idle_cap_ms);
        let every = SNAPSHOT_EVERY.max(index.len().div_ceil(MAX_SNAPSHOTS));
        let len = index.len();
        let renumbered = !index.contiguous;
        let skipped = std::mem::take(&mut index.skipped);
        let torn_tail = index.torn_tail.take().is_some();
        let inner = Arc::new(Inner {
            source: Source::File {
                path: path.to_path_buf(),
                index: Box::new(index),
            },
            every,
            len: AtomicUsize::new(len),
            layout: Mutex::new(Layout {
                snapshots: vec![SessionState::empty()],
                ..Layout::default()
            }),
            progress: Condvar::new(),
            moved: tokio::sync::watch::channel(0).0,
            stop: AtomicBool::new(false),
            cursor: Mutex::new(None),
            skip_bad_lines: opts.skip_bad_lines,
        });
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        // Both readers are open before this returns: the replay reads through them, whatever
        // becomes of the path (a journal moved or removed mid-replay still plays).
        *inner.cursor.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Cursor::open(path).map_err(io)?);
        let fold_cursor = Cursor::open(path).map_err(io)?;
        let mut first = None;
        inner.read(0, 0, |e| first = Some(e));
        let folding = inner.clone();
        std::thread::Builder::new()
            .name("replay-fold".into())
            .spawn(move || {
                if let Some(hold) = hold {
                    let _ = hold.recv();
                }
                folding.fold_file(fold_cursor)
            })
            .map_err(io)?;
        Ok(Timeline {
            inner,
            t_ms,
            replay_ms,
            gaps,
            step_keys: step_keys(first.as_ref()),
            idle_cap_ms,
            renumbered,
            skipped,
            torn_tail,
        })
    }

    /// The events, when they are held in memory ([`Timeline::new`]); a timeline read from its
    /// file ([`Timeline::open`]) holds none: read them with [`Timeline::event`] or
    /// [`Timeline::read`].
    pub fn events(&self) -> &[Stamped] {
        match &self.inner.source {
            Source::Memory(events) => &events[..self.len().min(events.len())],
            Source::File { .. } => &[],
        }
    }

    /// Event `index`, if there is one (None too for a line left out: see
    /// [`Timeline::left_out`]).
    pub fn event(&self, index: usize) -> Option<Stamped> {
        let mut found = None;
        self.inner.read(index, index, |e| found = Some(e));
        found
    }

    /// Hand events `from..=to` (clamped) to `each`, in order.
    pub fn read(&self, from: usize, to: usize, each: impl FnMut(Stamped)) {
        self.inner.read(from, to, each);
    }

    /// Apply events `from..=to` (clamped) to `state`.
    pub fn fold_into(&self, state: &mut SessionState, from: usize, to: usize) {
        self.inner.read(from, to, |e| state.apply(&e));
    }

    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn idle_cap_ms(&self) -> u64 {
        self.idle_cap_ms
    }

    /// Whether the journal's `seq` numbers had gaps and were renumbered 1, 2, 3, ...
    pub fn renumbered(&self) -> bool {
        self.renumbered
    }

    /// Lines the index left out (`--skip-bad-lines`, or skipped by a journaled resume).
    pub fn skipped(&self) -> &[(usize, String)] {
        &self.skipped
    }

    /// Whether the journal ends in a torn line (left out).
    pub fn torn_tail(&self) -> bool {
        self.torn_tail
    }

    /// A line found damaged while folding, in the reader's words: the timeline ends before it.
    pub fn damage(&self) -> Option<String> {
        self.inner
            .layout()
            .damage
            .as_ref()
            .map(|(_, why)| why.clone())
    }

    /// Lines found damaged past their start while reading and left out (each keeps its
    /// place as an event that changes nothing): by `--skip-bad-lines`, or because a later
    /// `resumed` event journaled that the session skipped them. Line number and why, in line
    /// order; all of them once [`Timeline::wait_folded`] returns.
    pub fn left_out(&self) -> Vec<(usize, String)> {
        self.inner.layout().left_out.values().cloned().collect()
    }

    /// How many lines the replay leaves out, known so far: the index's ([`Timeline::skipped`])
    /// and those found damaged while reading ([`Timeline::left_out`]).
    pub fn lines_left_out(&self) -> usize {
        self.skipped.len() + self.inner.layout().left_out.len()
    }

    /// Whether event `index`'s line was found damaged and left out.
    pub fn is_left_out(&self, index: usize) -> bool {
        self.inner.layout().left_out.contains_key(&index)
    }

    /// Events folded so far in the background (all of them once [`Timeline::wait_folded`]
    /// returns).
    pub fn folded(&self) -> usize {
        self.inner.layout().folded
    }

    /// Wait until every event is folded (boundaries, decisions and snapshots all known).
    pub fn wait_folded(&self) {
        drop(self.inner.layout_when(|_| false));
    }

    /// Replay clock of event `index` (clamped), in ms from the first event.
    pub fn replay_ms(&self, index: usize) -> u64 {
        self.clamp(index)
            .and_then(|i| self.replay_ms.get(i).copied())
            .unwrap_or(0)
    }

    /// Replay length, in ms.
    pub fn replay_total_ms(&self) -> u64 {
        self.replay_ms(usize::MAX)
    }

    /// The session clock (`t_ms`) of event `index` (clamped).
    pub fn t_ms(&self, index: usize) -> u64 {
        self.clamp(index)
            .and_then(|i| self.t_ms.get(i).copied())
            .unwrap_or(0)
    }

    /// Every gap that replay shortens.
    pub fn compressed_gaps(&self) -> &[CompressedGap] {
        let len = self.len();
        &self.gaps[..self.gaps.partition_point(|g| g.index < len)]
    }

    /// The compressed gap that ends at event `index`, if that gap was compressed.
    pub fn gap_before(&self, index: usize) -> Option<CompressedGap> {
        let gaps = self.compressed_gaps();
        gaps.binary_search_by_key(&index, |g| g.index)
            .ok()
            .map(|i| gaps[i])
    }

    /// Events where a step's action starts or finishes, or a prompt opens.
    pub fn step_boundaries(&self) -> Vec<usize> {
        self.inner.layout_when(|_| false).boundaries.clone()
    }

    /// Decision points, in order.
    pub fn decisions(&self) -> Vec<(usize, DecisionKind)> {
        self.inner.layout_when(|_| false).decisions.clone()
    }

    /// Whether event `index` is a decision point, and of which kind.
    pub fn decision_at(&self, index: usize) -> Option<DecisionKind> {
        let g = self.inner.layout_when(|l| l.folded > index);
        g.decisions
            .binary_search_by_key(&index, |(i, _)| *i)
            .ok()
            .map(|i| g.decisions[i].1)
    }

    /// The step (0-based) the session was about at event `index`.
    pub fn step_at(&self, index: usize) -> Option<usize> {
        let index = self.clamp(index)?;
        let g = self.inner.layout_when(|l| l.folded > index);
        g.step_at
            .get(index)
            .filter(|&&s| s != NO_STEP)
            .map(|&s| s as usize)
    }

    /// The first step boundary after `index`.
    pub fn next_boundary(&self, index: usize) -> Option<usize> {
        self.jump(Jump::NextStep, index)
    }

    /// The last step boundary before `index`.
    pub fn prev_boundary(&self, index: usize) -> Option<usize> {
        self.jump(Jump::PrevStep, index)
    }

    /// The first decision point after `index`.
    pub fn next_decision(&self, index: usize) -> Option<usize> {
        self.jump(Jump::NextDecision, index)
    }

    /// The last decision point before `index`.
    pub fn prev_decision(&self, index: usize) -> Option<usize> {
        self.jump(Jump::PrevDecision, index)
    }

    /// Where `jump` from `index` lands (None: nowhere), waiting for the fold to find it.
    fn jump(&self, jump: Jump, index: usize) -> Option<usize> {
        jump.land(&self.inner.layout_when(|l| jump.known(l, index)), index)
    }

    /// [`Timeline::next_boundary`] and the like without waiting: where `jump` from `index`
    /// lands (inner None: nowhere), or None while the background fold has not got far enough
    /// to say ([`Timeline::fold_progress`] tells when it moves on).
    pub fn jump_now(&self, jump: Jump, index: usize) -> Option<Option<usize>> {
        let g = self.inner.layout_if(|l| jump.known(l, index))?;
        Some(jump.land(&g, index))
    }

    /// Whether the background fold has passed event `index` (or stopped): what is known of
    /// it ([`Timeline::step_at_now`]), and the state after it, is to be had without waiting.
    pub fn folded_past(&self, index: usize) -> bool {
        self.inner.layout_if(|l| l.folded > index).is_some()
    }

    /// [`Timeline::step_at`] without waiting: None while the fold has not got there.
    pub fn step_at_now(&self, index: usize) -> Option<Option<usize>> {
        self.folded_past(index).then(|| self.step_at(index))
    }

    /// [`Timeline::decision_at`] without waiting: None while the fold has not got there.
    pub fn decision_at_now(&self, index: usize) -> Option<Option<DecisionKind>> {
        self.folded_past(index).then(|| self.decision_at(index))
    }

    /// Whether [`Timeline::bring`] from `at` to `to` goes without waiting for the fold (a
    /// short way ahead is read from the file; further needs the fold's snapshot).
    pub fn can_bring(&self, at: Option<usize>, to: usize) -> bool {
        let Some(to) = self.clamp(to) else {
            return true;
        };
        match at {
            Some(at) if at <= to && to - at <= self.inner.every => true,
            _ => self.folded_past(to),
        }
    }

    /// Changes whenever the background fold moves on (or stops): what a task waits on instead
    /// of the fold's condition variable.
    pub fn fold_progress(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.moved.subscribe()
    }

    /// The first event that concerns step `step` (0-based), if it ever came up.
    pub fn first_event_of_step(&self, step: usize) -> Option<usize> {
        let first = |l: &Layout| l.first_of_step.get(&step).copied();
        first(&self.inner.layout_when(|l| first(l).is_some()))
    }

    /// Resolve a step given as its key or its 1-based number against the journal's plan.
    pub fn find_step(&self, key_or_number: &str) -> Option<usize> {
        if self.step_keys.is_empty() {
            return None;
        }
        let wanted = key_or_number.trim();
        if let Some(i) = self.step_keys.iter().position(|k| k == wanted) {
            return Some(i);
        }
        match wanted.parse::<usize>() {
            Ok(n) if n >= 1 && n <= self.step_keys.len() => Some(n - 1),
            _ => None,
        }
    }

    /// The state after applying events `0..=index` (clamped to the last event); the empty
    /// state for an empty timeline. Starts from the nearest snapshot, so it costs at most one
    /// snapshot interval of `apply`s (waiting first for the background fold to get there).
    pub fn state_at(&self, index: usize) -> SessionState {
        let Some(index) = self.clamp(index) else {
            return SessionState::empty();
        };
        let applied = index + 1;
        let every = self.inner.every;
        let (from, mut state) = {
            let g = self.inner.layout_when(|l| l.folded >= applied);
            let j = (applied / every).min(g.snapshots.len().saturating_sub(1));
            match g.snapshots.get(j) {
                Some(s) => (j * every, s.clone()),
                None => (0, SessionState::empty()),
            }
        };
        if from < applied {
            self.fold_into(&mut state, from, index);
        }
        state
    }

    /// Bring `state`, the state after event `at` of this timeline (None: any other state),
    /// to the state after event `to` (clamped): a short way ahead, by applying the events
    /// between to it (as playing does); else it is replaced by [`Timeline::state_at`]. A view
    /// that shows each position this way copies no state as the replay plays.
    pub fn bring(&self, state: &mut SessionState, at: Option<usize>, to: usize) {
        let Some(to) = self.clamp(to) else {
            *state = SessionState::empty();
            return;
        };
        match at {
            Some(at) if at == to => {}
            Some(at) if at < to && to - at <= self.inner.every => {
                self.fold_into(state, at + 1, to);
            }
            _ => *state = self.state_at(to),
        }
    }

    /// The state after the whole journal.
    pub fn final_state(&self) -> SessionState {
        self.state_at(usize::MAX)
    }

    fn clamp(&self, index: usize) -> Option<usize> {
        self.len().checked_sub(1).map(|last| index.min(last))
    }
}

/// A move to a place only the fold finds: the player's `←` `→` `d` `D`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jump {
    NextStep,
    PrevStep,
    NextDecision,
    PrevDecision,
}

impl Jump {
    /// Whether `l` says where it lands from `index` (a place after `index` is known once the
    /// fold found one; one before, once the fold got to `index`).
    fn known(self, l: &Layout, index: usize) -> bool {
        match self {
            Jump::NextStep | Jump::NextDecision => self.land(l, index).is_some(),
            Jump::PrevStep | Jump::PrevDecision => l.folded >= index,
        }
    }

    fn land(self, l: &Layout, index: usize) -> Option<usize> {
        match self {
            Jump::NextStep => next_after(&l.boundaries, index),
            Jump::PrevStep => last_before(&l.boundaries, index),
            Jump::NextDecision => {
                let i = l.decisions.partition_point(|(d, _)| *d <= index);
                l.decisions.get(i).map(|(d, _)| *d)
            }
            Jump::PrevDecision => {
                let i = l.decisions.partition_point(|(d, _)| *d < index);
                i.checked_sub(1).map(|i| l.decisions[i].0)
            }
        }
    }
}

fn next_after(sorted: &[usize], index: usize) -> Option<usize> {
    let i = sorted.partition_point(|b| *b <= index);
    sorted.get(i).copied()
}

fn last_before(sorted: &[usize], index: usize) -> Option<usize> {
    let i = sorted.partition_point(|b| *b < index);
    i.checked_sub(1).map(|i| sorted[i])
}

/// The step an event names, if any.
pub fn step_of(event: &Event) -> Option<usize> {
    match event {
        Event::PromptOpened { step, .. }
        | Event::Approved { step, .. }
        | Event::Confirmed { step, .. }
        | Event::Declined { step, .. }
        | Event::ActionStarted { step, .. }
        | Event::Output { step, .. }
        | Event::GateProgress { step, .. }
        | Event::ActionFinished { step, .. }
        | Event::Skipped { step, .. }
        | Event::OptionalChosen { step, .. }
        | Event::MarkedDone { step, .. } => Some(*step),
        _ => None,
    }
}

/// Whether `event`, arriving on `before`, is a decision point.
pub fn decision_kind(before: &SessionState, event: &Event) -> Option<DecisionKind> {
    let prompt = before.prompt.map(|p| p.kind);
    Some(match event {
        Event::Confirmed { auto, .. } => {
            if prompt == Some(PromptKindTag::Undo) {
                DecisionKind::UndoConfirmed
            } else if *auto {
                return None;
            } else {
                DecisionKind::Confirmed
            }
        }
        Event::Declined { .. } => DecisionKind::Declined,
        Event::Skipped { .. } => DecisionKind::Skipped,
        Event::MarkedDone { .. } => DecisionKind::MarkedDone,
        Event::AbortRequested { .. } => DecisionKind::AbortRequested,
        Event::Note { .. } => DecisionKind::Note,
        Event::DriverChanged { .. } => DecisionKind::DriverChanged,
        Event::PromptOpened { prompt, .. } => match prompt.into() {
            PromptKindTag::Failed => DecisionKind::FailedPrompt,
            PromptKindTag::Interrupted => DecisionKind::InterruptedPrompt,
            _ => return None,
        },
        _ => return None,
    })
}
