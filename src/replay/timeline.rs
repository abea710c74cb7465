//! A journal laid out for replay: when each event plays (with long idle gaps compressed), where
//! the steps and the operator's decisions are, and the folded state at any event, fast.
//!
//! Everything here is pure: the player (`super::player`) and the quiz (`super::quiz`) drive it.

use crate::engine::event::{Event, Stamped};
use crate::engine::state::{PromptKindTag, SessionState};

/// Snapshot spacing used by [`Timeline::new`] for short journals.
pub const SNAPSHOT_EVERY: usize = 200;
/// Most snapshots kept: a long journal spaces them wider, so memory stays bounded (a snapshot
/// holds up to `OUTPUT_KEPT` output lines per step) while a seek folds at most one interval.
pub const MAX_SNAPSHOTS: usize = 128;

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

/// A journal's events with replay clock, step boundaries, decision points and snapshots.
#[derive(Debug, Clone)]
pub struct Timeline {
    events: Vec<Stamped>,
    /// Replay clock per event, in ms from the first event.
    replay_ms: Vec<u64>,
    gaps: Vec<CompressedGap>,
    boundaries: Vec<usize>,
    decisions: Vec<(usize, DecisionKind)>,
    /// The step the session was about at each event (the last event naming a step).
    step_at: Vec<Option<usize>>,
    /// `snapshots[j]` is the state after folding the first `j * every` events.
    snapshots: Vec<SessionState>,
    every: usize,
    idle_cap_ms: u64,
    renumbered: bool,
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
        // Views accept exactly the event after the one they applied last (`seq == last_seq + 1`,
        // see `super::player::follow`), so the numbering must run 1, 2, 3, ... Journals written
        // by the engine do; a hand-edited one may not, and is renumbered in order.
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

        let mut replay_ms = Vec::with_capacity(events.len());
        let mut gaps = Vec::new();
        let mut clock = 0u64;
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                let gap = e.t_ms.saturating_sub(events[i - 1].t_ms);
                if idle_cap_ms > 0 && gap > idle_cap_ms {
                    gaps.push(CompressedGap {
                        index: i,
                        original_ms: gap,
                        replay_ms: idle_cap_ms,
                    });
                    clock += idle_cap_ms;
                } else {
                    clock += gap;
                }
            }
            replay_ms.push(clock);
        }

        let mut boundaries = Vec::new();
        let mut decisions = Vec::new();
        let mut step_at = Vec::with_capacity(events.len());
        let mut snapshots = vec![SessionState::empty()];
        let mut state = SessionState::empty();
        let mut current_step = None;
        for (i, e) in events.iter().enumerate() {
            if matches!(
                e.event,
                Event::ActionStarted { .. }
                    | Event::ActionFinished { .. }
                    | Event::PromptOpened { .. }
            ) {
                boundaries.push(i);
            }
            if let Some(kind) = decision_kind(&state, &e.event) {
                decisions.push((i, kind));
            }
            if let Some(s) = step_of(&e.event) {
                current_step = Some(s);
            }
            step_at.push(current_step);
            state.apply(e);
            if (i + 1) % every == 0 {
                snapshots.push(state.clone());
            }
        }

        Timeline {
            events,
            replay_ms,
            gaps,
            boundaries,
            decisions,
            step_at,
            snapshots,
            every,
            idle_cap_ms,
            renumbered,
        }
    }

    pub fn events(&self) -> &[Stamped] {
        &self.events
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn idle_cap_ms(&self) -> u64 {
        self.idle_cap_ms
    }

    /// Whether the journal's `seq` numbers had gaps and were renumbered 1, 2, 3, ...
    pub fn renumbered(&self) -> bool {
        self.renumbered
    }

    /// Replay clock of event `index` (clamped), in ms from the first event.
    pub fn replay_ms(&self, index: usize) -> u64 {
        self.clamp(index)
            .and_then(|i| self.replay_ms.get(i).copied())
            .unwrap_or(0)
    }

    /// Replay length, in ms.
    pub fn replay_total_ms(&self) -> u64 {
        self.replay_ms.last().copied().unwrap_or(0)
    }

    /// The session clock (`t_ms`) of event `index` (clamped).
    pub fn t_ms(&self, index: usize) -> u64 {
        self.clamp(index)
            .and_then(|i| self.events.get(i))
            .map_or(0, |e| e.t_ms)
    }

    /// Every gap that replay shortens.
    pub fn compressed_gaps(&self) -> &[CompressedGap] {
        &self.gaps
    }

    /// The compressed gap that ends at event `index`, if that gap was compressed.
    pub fn gap_before(&self, index: usize) -> Option<CompressedGap> {
        self.gaps
            .binary_search_by_key(&index, |g| g.index)
            .ok()
            .map(|i| self.gaps[i])
    }

    /// Events where a step's action starts or finishes, or a prompt opens.
    pub fn step_boundaries(&self) -> &[usize] {
        &self.boundaries
    }

    /// Decision points, in order.
    pub fn decisions(&self) -> &[(usize, DecisionKind)] {
        &self.decisions
    }

    /// The step (0-based) the session was about at event `index`.
    pub fn step_at(&self, index: usize) -> Option<usize> {
        self.clamp(index)
            .and_then(|i| self.step_at.get(i).copied())
            .flatten()
    }

    /// The first step boundary after `index`.
    pub fn next_boundary(&self, index: usize) -> Option<usize> {
        next_after(&self.boundaries, index)
    }

    /// The last step boundary before `index`.
    pub fn prev_boundary(&self, index: usize) -> Option<usize> {
        last_before(&self.boundaries, index)
    }

    /// The first decision point after `index`.
    pub fn next_decision(&self, index: usize) -> Option<usize> {
        let i = self.decisions.partition_point(|(d, _)| *d <= index);
        self.decisions.get(i).map(|(d, _)| *d)
    }

    /// The last decision point before `index`.
    pub fn prev_decision(&self, index: usize) -> Option<usize> {
        let i = self.decisions.partition_point(|(d, _)| *d < index);
        i.checked_sub(1).map(|i| self.decisions[i].0)
    }

    /// The first event that concerns step `step` (0-based), if it ever came up.
    pub fn first_event_of_step(&self, step: usize) -> Option<usize> {
        self.events
            .iter()
            .position(|e| step_of(&e.event) == Some(step))
    }

    /// Resolve a step given as its key or its 1-based number against the journal's plan.
    pub fn find_step(&self, key_or_number: &str) -> Option<usize> {
        let plan = match self.events.first().map(|e| &e.event) {
            Some(Event::SessionStarted { plan, .. }) => plan,
            _ => return None,
        };
        let wanted = key_or_number.trim();
        if let Some(i) = plan.steps.iter().position(|s| s.key == wanted) {
            return Some(i);
        }
        match wanted.parse::<usize>() {
            Ok(n) if n >= 1 && n <= plan.steps.len() => Some(n - 1),
            _ => None,
        }
    }

    /// The state after applying events `0..=index` (clamped to the last event); the empty
    /// state for an empty timeline. Starts from the nearest snapshot, so it costs at most one
    /// snapshot interval of `apply`s.
    pub fn state_at(&self, index: usize) -> SessionState {
        let Some(index) = self.clamp(index) else {
            return SessionState::empty();
        };
        let applied = index + 1;
        let j = (applied / self.every).min(self.snapshots.len() - 1);
        let mut state = self.snapshots[j].clone();
        for e in &self.events[j * self.every..applied] {
            state.apply(e);
        }
        state
    }

    /// The state after the whole journal.
    pub fn final_state(&self) -> SessionState {
        self.state_at(usize::MAX)
    }

    fn clamp(&self, index: usize) -> Option<usize> {
        self.events.len().checked_sub(1).map(|last| index.min(last))
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
