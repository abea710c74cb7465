//! The view model: the session as this cockpit folded it (the same `apply` the engine uses) plus
//! what only this screen knows — focus, selection, scroll, overlays, the clock. Rendering reads
//! it and nothing else, so a snapshot test builds one by hand.

use std::time::{Duration, Instant};

use tui_input::Input;

use crate::engine::state::StepStatus;
use crate::engine::{SessionState, Stamped};
use crate::replay::player::ReplayPosition;

use super::filter::Filter;
use super::replay::QuizView;

/// Keys arriving this soon after a prompt appeared are taken as typed for something else.
pub const PROMPT_GUARD: Duration = Duration::from_millis(300);

/// What this cockpit may do in the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TuiRole {
    /// Answers prompts and drives the procedure.
    Driver,
    /// Watches; may write notes, approve (two-person rule) and ask for control.
    Observer,
    /// Reads a finished journal: nothing can be sent.
    Replay,
}

/// The panels that take focus (Tab cycles them) and scroll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    Procedure,
    Detail,
    Output,
    Probes,
}

impl Panel {
    pub const ORDER: [Panel; 4] = [
        Panel::Procedure,
        Panel::Detail,
        Panel::Output,
        Panel::Probes,
    ];

    pub fn next(self) -> Panel {
        let i = Self::ORDER.iter().position(|p| *p == self).unwrap_or(0);
        Self::ORDER[(i + 1) % Self::ORDER.len()]
    }

    pub fn prev(self) -> Panel {
        let i = Self::ORDER.iter().position(|p| *p == self).unwrap_or(0);
        Self::ORDER[(i + Self::ORDER.len() - 1) % Self::ORDER.len()]
    }
}

/// A modal owned by this screen (the engine's prompt is not one: it lives in the state).
#[derive(Debug, Clone)]
pub enum Overlay {
    Help,
    /// Writing a note for the journal.
    Note(Input),
    /// "skip step K? y/N", asked before a Skip command leaves.
    ConfirmSkip {
        step: usize,
    },
    /// Roll back, keep as is, or cancel.
    AbortChoice,
    /// The abort chosen (`rollback` or keep as is): why, typed before it leaves (journaled
    /// with the abort and in the report; Enter alone sends none).
    AbortReason {
        rollback: bool,
        input: Input,
    },
    /// Past the point of no return: the phrase the engine asks for, then why (one line:
    /// `lose writes since step 16 because ...`), for a full rollback anyway.
    RollbackOverride {
        phrase: String,
        input: Input,
    },
    /// Leaving while a step runs.
    ConfirmQuit,
    /// Taking control from an attached driver: the reason, typed (it is journaled).
    TakeControl(Input),
    /// The owner removing an operator: pick one by number, then confirm.
    RemoveOperator {
        chosen: Option<u64>,
    },
    /// Run or skip an optional step: the operator's reason, typed before the choice leaves.
    Choose {
        prompt: u64,
        step: usize,
        choice: crate::procedure::model::OptionalChoice,
        reason: Input,
    },
    /// The no-argument demo, unfinished: leave it running (and come back with `flightdeck
    /// join`) or end it (the session ends, the lab stops).
    LeaveDemo,
    /// The `:` command line, for the less frequent actions (`:note`, `:undo`, `:abort`,
    /// `:theme dark`, `:step 14`).
    Command(Input),
    /// The `/` filter line over the output and probe panes, applied as it is typed (drawn in
    /// the footer, not as a modal, so the panes it filters stay in sight).
    Filter(Input),
}

/// Where a scrollable panel is: following its tail/cursor, or held where the operator put it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scroll {
    #[default]
    Follow,
    /// Lines from the top (procedure, detail) or from the bottom (output, probes).
    At(usize),
}

impl Scroll {
    /// Lines away from the follow position.
    pub fn offset(self) -> usize {
        match self {
            Scroll::Follow => 0,
            Scroll::At(n) => n,
        }
    }

    /// Further from the follow position, at most `max` lines.
    pub fn away(self, by: usize, max: usize) -> Scroll {
        Scroll::At(self.offset().saturating_add(by).min(max))
    }

    /// Back toward the follow position; reaching it follows again.
    pub fn toward(self, by: usize) -> Scroll {
        match self.offset().saturating_sub(by) {
            0 => Scroll::Follow,
            n => Scroll::At(n),
        }
    }
}

/// The engine prompt as currently shown, with the moment it appeared (for the stale-key guard).
#[derive(Debug, Clone)]
pub struct ShownPrompt {
    pub id: u64,
    /// When it last became visible.
    pub shown_at: Instant,
    /// Behind one of this screen's overlays (help, note, quit question).
    pub hidden: bool,
    /// The phrase typed so far (phrase confirms only).
    pub phrase: Input,
}

#[derive(Debug, Clone)]
pub struct View {
    pub state: SessionState,
    pub role: TuiRole,
    pub title: String,
    /// This operator's id in the session (to tell "you" from others, and for grants).
    pub operator_id: u64,
    /// Session time shown on screen: the last event's stamp plus wall time since it arrived.
    pub now_ms: u64,
    pub focus: Panel,
    /// The step shown in the detail panel when the operator picked one; else the running or
    /// cursor step.
    pub selected: Option<usize>,
    pub procedure_scroll: Scroll,
    pub detail_scroll: Scroll,
    /// From the bottom: 0 = the newest line at the bottom edge.
    pub output_scroll: Scroll,
    pub probes_scroll: Scroll,
    pub overlay: Option<Overlay>,
    pub prompt: Option<ShownPrompt>,
    /// One line shown in the footer: a rejection or a local hint.
    pub status: Option<String>,
    /// When the last event arrived (wall clock), to advance `now_ms` between events.
    pub last_event_at: Option<Instant>,
    /// The event stream is over; what is on screen is final.
    pub ended: bool,
    /// Where the replay player is, when this cockpit drives one (see `super::replay`).
    pub replay: Option<ReplayPosition>,
    /// The training quiz over the replay, when there is one.
    pub quiz: Option<QuizView>,
    /// The terminal is below the cockpit's minimum size: only "terminal too small" is drawn,
    /// so nothing on screen may be answered.
    pub too_small: bool,
    /// The session's name when this cockpit drives the no-argument demo, whose lab lives and
    /// dies with its session server: leaving then asks whether to end the demo.
    pub demo: Option<String>,
    /// The operator chose to end the demo (the loop aborts the session, then leaves).
    pub end_demo: bool,
    /// The `/` filter kept over the output and probe panes (Esc clears it).
    pub filter: Option<String>,
}

impl View {
    pub fn new(role: TuiRole, title: impl Into<String>, operator_id: u64) -> Self {
        View {
            state: SessionState::empty(),
            role,
            title: title.into(),
            operator_id,
            now_ms: 0,
            focus: Panel::Procedure,
            selected: None,
            procedure_scroll: Scroll::Follow,
            detail_scroll: Scroll::Follow,
            output_scroll: Scroll::Follow,
            probes_scroll: Scroll::Follow,
            overlay: None,
            prompt: None,
            status: None,
            last_event_at: None,
            ended: false,
            replay: None,
            quiz: None,
            too_small: false,
            demo: None,
            end_demo: false,
            filter: None,
        }
    }

    /// A view that starts from the session as its engine folded it (a resume's history is
    /// folded once, by the engine), as if its last event had just arrived at `at`.
    pub fn folded(
        role: TuiRole,
        title: impl Into<String>,
        operator_id: u64,
        state: SessionState,
        at: Instant,
    ) -> Self {
        let mut v = View::new(role, title, operator_id);
        v.now_ms = state.t_ms;
        v.state = state;
        v.last_event_at = Some(at);
        v
    }

    /// The `/` filter in force: the text being typed while the filter line is open, else
    /// the one kept.
    pub fn filter(&self) -> Option<Filter<'_>> {
        match &self.overlay {
            Some(Overlay::Filter(input)) => Filter::new(input.value()),
            _ => self.filter.as_deref().and_then(Filter::new),
        }
    }

    /// A view of a whole event list, at the time of its last event (tests, docs, replay).
    pub fn from_events<'a>(
        role: TuiRole,
        title: impl Into<String>,
        operator_id: u64,
        events: impl IntoIterator<Item = &'a Stamped>,
    ) -> Self {
        let mut v = View::new(role, title, operator_id);
        for e in events {
            v.state.apply(e);
        }
        v.now_ms = v.state.t_ms;
        v
    }

    /// Fold one event that arrived at `at`.
    pub fn apply(&mut self, event: &Stamped, at: Instant) {
        let step_before = self.detail_step();
        self.state.apply(event);
        self.last_event_at = Some(at);
        self.now_ms = self.state.t_ms;
        if self.detail_step() != step_before {
            self.detail_scroll = Scroll::Follow;
            self.output_scroll = Scroll::Follow;
        }
    }

    /// Advance the on-screen clock to wall time `at` (no-op when nothing runs any more or when
    /// replaying: a journal's time does not move).
    pub fn tick(&mut self, at: Instant) {
        if self.role == TuiRole::Replay || self.state.is_finished() {
            self.now_ms = self.state.t_ms;
            return;
        }
        if let Some(last) = self.last_event_at {
            let since = at.saturating_duration_since(last).as_millis();
            self.now_ms = self
                .state
                .t_ms
                .saturating_add(u64::try_from(since).unwrap_or(u64::MAX));
        }
    }

    /// Whether something on screen counts time (so the loop needs a 1 s tick).
    pub fn timer_running(&self) -> bool {
        self.role != TuiRole::Replay
            && !self.ended
            && !self.state.is_finished()
            && !self.state.steps.is_empty()
            && self.last_event_at.is_some()
    }

    /// The step the detail and output panels show.
    pub fn detail_step(&self) -> Option<usize> {
        self.selected
            .or_else(|| self.state.prompt.map(|p| p.step))
            .or_else(|| self.state.running())
            .or_else(|| self.state.cursor())
            .or_else(|| self.state.steps.len().checked_sub(1))
    }

    /// The step the procedure list highlights as the one moving now.
    pub fn active_step(&self) -> Option<usize> {
        self.state
            .running()
            .or_else(|| self.state.prompt.map(|p| p.step))
            .or_else(|| self.state.cursor())
    }

    /// The engine prompt this cockpit shows as a modal, if any.
    pub fn prompt_visible(&self) -> bool {
        self.effective_role() == TuiRole::Driver && self.state.prompt.is_some()
    }

    /// Note the engine prompt appearing, going, or coming back from behind an overlay, at
    /// `at`. Returns true when a prompt just became visible: its guard starts now, and the loop
    /// drops keys already queued.
    pub fn sync_prompt(&mut self, at: Instant) -> bool {
        let open = if self.prompt_visible() {
            self.state.prompt.map(|p| p.id)
        } else {
            None
        };
        let Some(id) = open else {
            self.prompt = None;
            return false;
        };
        if self.prompt.as_ref().is_none_or(|p| p.id != id) {
            // A skip or abort question asked about the world before this prompt is stale.
            if matches!(
                self.overlay,
                Some(Overlay::ConfirmSkip { .. })
                    | Some(Overlay::AbortChoice)
                    | Some(Overlay::AbortReason { .. })
                    | Some(Overlay::Choose { .. })
            ) {
                self.overlay = None;
            }
            self.prompt = Some(ShownPrompt {
                id,
                shown_at: at,
                hidden: true,
                phrase: Input::default(),
            });
        }
        // The prompt is drawn only when no overlay of ours covers it and the terminal is big
        // enough for the cockpit at all.
        let visible = self.overlay.is_none() && !self.too_small;
        match &mut self.prompt {
            Some(p) if visible && p.hidden => {
                p.hidden = false;
                p.shown_at = at;
                true
            }
            Some(p) => {
                p.hidden = !visible;
                false
            }
            None => false,
        }
    }

    /// Whether a step is running (leaving then asks first).
    pub fn step_running(&self) -> bool {
        self.state.running().is_some()
    }

    pub fn status_of(&self, step: usize) -> Option<StepStatus> {
        self.state.steps.get(step).map(|s| s.status)
    }

    /// The role now: control moves between operators during a session (a grant, a take-over),
    /// so the session's own record of who drives wins over the role this cockpit started with.
    pub fn effective_role(&self) -> TuiRole {
        if self.role == TuiRole::Replay {
            return TuiRole::Replay;
        }
        match self
            .state
            .operators
            .iter()
            .find(|o| o.id == self.operator_id)
        {
            Some(o) if o.driver => TuiRole::Driver,
            Some(_) => TuiRole::Observer,
            None => self.role,
        }
    }
}

/// A key that arrives within [`PROMPT_GUARD`] of the prompt appearing was meant for whatever
/// was on screen before: never let it answer the prompt.
pub fn key_is_stale(shown_at: Instant, key_at: Instant) -> bool {
    key_at < shown_at + PROMPT_GUARD
}
