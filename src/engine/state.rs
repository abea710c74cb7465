//! Session state and the one function that changes it: `apply`. Resume, replay, a joining
//! operator and the report all fold the same events through it, so it must stay pure: no I/O,
//! no clock — time comes from the event's stamp.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::Serialize;

use super::event::{
    AutoConfirm, Event, NodeVerdict, Outcome, Phase, PromptKind, Stamped, Stream, TrafficWindow,
    Verdict,
};
use crate::lb::Backend;
use crate::plan::Plan;
use crate::procedure::model::Action;
use crate::target::Node;

/// Lines of output kept per step in memory (the journal keeps them all).
pub const OUTPUT_KEPT: usize = 1000;
/// Probe results kept for the probe stream panel.
pub const PROBE_LOG_KEPT: usize = 300;
/// Latency samples kept per node for its sparkline.
pub const LATENCY_KEPT: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Awaiting,
    Running,
    Succeeded,
    Failed,
    Undoing,
    Undone,
    UndoFailed,
    Skipped,
    Interrupted,
}

impl StepStatus {
    pub fn label(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Awaiting => "awaiting confirm",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "done",
            StepStatus::Failed => "failed",
            StepStatus::Undoing => "undoing",
            StepStatus::Undone => "undone",
            StepStatus::UndoFailed => "undo failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Interrupted => "interrupted",
        }
    }

    /// The step's effects may be in place (so it is a candidate for undo).
    pub fn has_effects(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded
                | StepStatus::Failed
                | StepStatus::Interrupted
                | StepStatus::UndoFailed
        )
    }

    /// The forward procedure may move past this step.
    pub fn is_settled(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Skipped)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputLine {
    pub t_ms: u64,
    pub phase: Phase,
    pub stream: Stream,
    pub line: String,
}

/// Serialize shared output lines as the lines (serde's `Arc` support is an opt-in feature).
fn shared_lines<S: serde::Serializer>(
    lines: &VecDeque<Arc<OutputLine>>,
    to: S,
) -> Result<S::Ok, S::Error> {
    to.collect_seq(lines.iter().map(|l| &**l))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateView {
    pub passing: usize,
    pub total: usize,
    pub stable_ms: u64,
    pub need_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRun {
    pub status: StepStatus,
    /// Runs of the step's action so far (the undo's runs are counted apart).
    pub attempts: u32,
    pub undo_attempts: u32,
    pub phase: Phase,
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
    /// Time spent running, summed over attempts (for the report).
    pub run_ms: u64,
    /// Each line shared (`Arc`): a copy of the state (replay keeps some, one every few
    /// thousand events) copies pointers, not the text.
    #[serde(serialize_with = "shared_lines")]
    pub output: VecDeque<Arc<OutputLine>>,
    /// The last verdict's explanation.
    pub detail: Option<String>,
    /// Who confirmed runs of the step, each once, in order (the report counts every
    /// confirmation; `attempts` counts the runs): a step retried all night keeps one name, not
    /// one per retry, in every copy of the state.
    pub confirmed_by: Vec<String>,
    /// Who approved the open prompt (user names; the driver's confirm included).
    pub approvals: Vec<String>,
    /// The distinct uids behind `approvals` (the two-person rule counts these).
    pub approval_uids: Vec<u32>,
    /// The driver's confirm on record (user, uid) while a two-person step waits for approval.
    pub driver_confirm: Option<(String, Option<u32>)>,
    pub gate: Option<GateView>,
    /// The process group of the step's `run` action while it runs (and, after a crash, while
    /// the interrupted action's group may still be alive).
    pub pgid: Option<u32>,
    /// The group leader's `process::start_identity`, to tell it from a later process that got
    /// the same pid.
    pub pgid_started: Option<String>,
    /// An optional step's decision, once made.
    pub chosen: Option<crate::procedure::model::OptionalChoice>,
}

impl StepRun {
    /// Runs so far of the phase last started (the action's or the undo's).
    pub fn phase_attempts(&self) -> u32 {
        match self.phase {
            Phase::Do => self.attempts,
            Phase::Undo => self.undo_attempts,
        }
    }

    fn new() -> Self {
        StepRun {
            status: StepStatus::Pending,
            attempts: 0,
            undo_attempts: 0,
            phase: Phase::Do,
            started_ms: None,
            finished_ms: None,
            run_ms: 0,
            output: VecDeque::new(),
            detail: None,
            confirmed_by: Vec::new(),
            approvals: Vec::new(),
            approval_uids: Vec::new(),
            driver_confirm: None,
            gate: None,
            pgid: None,
            pgid_started: None,
            chosen: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeView {
    pub node: Node,
    pub facts: BTreeMap<String, String>,
    /// All health probes passing (None until the first result).
    pub health: Option<bool>,
    pub health_detail: String,
    pub probes: BTreeMap<String, bool>,
    pub latencies: VecDeque<u64>,
    /// When the product last reported the node's state (its `state` fact), and which step
    /// moved it there, if one did (see `state_moved_by`).
    pub state_seen_ms: Option<u64>,
    pub state_change: Option<StateChange>,
}

/// The product reported a node in a new state (`state` fact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateChange {
    pub t_ms: u64,
    /// The step that did it: one acting on this node (or on the whole cluster) that ran
    /// between the last report of the old state and this one. None: nothing the procedure
    /// did explains it — a crash, someone else's hands.
    pub by_step: Option<usize>,
}

/// How long after a step ends a node's new state is still put down to it, when the journal
/// does not say when the old state was last read (`NodeFacts::prior_sent_ms`).
pub const STATE_EXPLAIN_MS: u64 = 15_000;

/// States a node can be down in (the lab's `RunState`; real targets map theirs to these).
pub const DOWN_STATES: [&str; 3] = ["failed", "stopped", "crashed"];

impl NodeView {
    /// The product's own state word (`running`, `starting`, `stopped`, `failed`, ...).
    pub fn state(&self) -> Option<&str> {
        self.facts.get("state").map(String::as_str)
    }

    /// The product's own reason for the state, when it gives one.
    pub fn reason(&self) -> Option<&str> {
        self.facts
            .get("reason")
            .map(String::as_str)
            .filter(|r| !r.is_empty() && *r != "null")
    }

    /// Down, and not because a step of the procedure put it there.
    pub fn unexpectedly_down(&self) -> bool {
        self.state().is_some_and(|s| DOWN_STATES.contains(&s))
            && self
                .state_change
                .as_ref()
                .is_some_and(|c| c.by_step.is_none())
    }

    pub fn version(&self) -> Option<&str> {
        self.facts.get("version").map(String::as_str)
    }

    pub fn role(&self) -> Option<&str> {
        self.facts
            .get("role")
            .map(String::as_str)
            .or(self.node.role.as_deref())
    }

    pub fn read_only(&self) -> Option<bool> {
        self.facts.get("read_only").map(|v| v == "true")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeLogEntry {
    pub t_ms: u64,
    pub probe: String,
    pub node: Option<String>,
    pub ok: bool,
    pub latency_ms: Option<u64>,
    pub detail: String,
}

/// A lab fault staged for the session, and when it took effect.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultView {
    pub fault: String,
    /// The step it waited for (None: in force from the lab's start).
    pub step: Option<usize>,
    /// Its action, or its undo (`@undo=`).
    pub phase: Phase,
    /// When it took effect (session time), once it has.
    pub fired_ms: Option<u64>,
    /// Why the lab refused it, if it did.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoteEntry {
    pub t_ms: u64,
    pub by: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorView {
    pub id: u64,
    /// How the operator shows (see `Identity::display`).
    pub name: String,
    pub driver: bool,
    /// The real user and uid (from the kernel); the name alone for old journals.
    pub user: String,
    pub uid: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OpenPrompt {
    pub id: u64,
    pub step: usize,
    #[serde(skip)]
    pub kind: PromptKindTag,
}

/// `PromptKind` without payload, cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptKindTag {
    #[default]
    Run,
    Undo,
    Failed,
    Interrupted,
}

impl From<&PromptKind> for PromptKindTag {
    fn from(k: &PromptKind) -> Self {
        match k {
            PromptKind::Run => PromptKindTag::Run,
            PromptKind::Undo => PromptKindTag::Undo,
            PromptKind::Failed => PromptKindTag::Failed,
            PromptKind::Interrupted => PromptKindTag::Interrupted,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Forward,
    RollingBack,
    Finished(Outcome),
}

/// A measured window (read-only, no ready backend): open since `since`, plus closed time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Window {
    pub since: Option<u64>,
    pub closed_ms: u64,
    /// How many separate times the window opened.
    pub count: u32,
}

impl Window {
    pub fn total_at(&self, now_ms: u64) -> u64 {
        self.closed_ms + self.since.map_or(0, |s| now_ms.saturating_sub(s))
    }

    fn set(&mut self, open: bool, t_ms: u64) {
        match (open, self.since) {
            (true, None) => {
                self.since = Some(t_ms);
                self.count += 1;
            }
            (false, Some(s)) => {
                self.closed_ms += t_ms.saturating_sub(s);
                self.since = None;
            }
            _ => {}
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionState {
    pub plan: Plan,
    pub nodes: Vec<NodeView>,
    pub operator: String,
    pub auto: AutoConfirm,
    pub lb_driver: Option<String>,
    pub health_probes: Vec<String>,
    pub steps: Vec<StepRun>,
    pub prompt: Option<OpenPrompt>,
    /// The driver declined the current prompt; nothing happens until they act again.
    pub held: bool,
    pub mode: Mode,
    pub lb: Vec<Backend>,
    pub lb_error: Option<String>,
    pub traffic_total: TrafficWindow,
    pub traffic_last: Option<(u64, TrafficWindow)>,
    pub probe_log: VecDeque<ProbeLogEntry>,
    pub notes: Vec<NoteEntry>,
    /// Lab faults staged for the session (`run --lab --fault`).
    pub faults: Vec<FaultView>,
    pub operators: Vec<OperatorView>,
    pub control_request: Option<(u64, String)>,
    /// Users the owner removed from the session: they may not join it again.
    pub removed_uids: Vec<u32>,
    pub read_only: Window,
    pub no_ready: Window,
    pub rollback_stopped: Option<String>,
    /// An abort with rollback was asked (`AbortRequested { rollback: true }`): a session that
    /// then ends without `RolledBack` ended with its rollback stopped.
    pub rollback_asked: bool,
    /// Who aborted the rollback itself (an abort without rollback while rolling back).
    pub rollback_abandoned_by: Option<String>,
    /// Stamp of the last applied event.
    pub t_ms: u64,
    pub last_seq: u64,
    /// How many times the session was resumed.
    pub resumes: u32,
    /// The first step action that failed, with why (for summaries and reports).
    pub first_failure: Option<(usize, String)>,
    /// An interrupted action's process group found alive on resume: (step, pgid). Nothing
    /// re-runs, marks done or undoes that step until it is gone.
    pub orphan: Option<(usize, u32)>,
    /// An abort without rollback was asked while an action ran: the session finishes as
    /// aborted once the action has stopped.
    pub aborting: bool,
    /// Steps skipped while rolling back: their effects are still in place, so the rollback
    /// cannot be verified.
    pub rollback_skipped: Vec<usize>,
    /// The rollback's verification runs now (`VerifyStarted`, no `VerifyFinished` yet).
    pub verifying: bool,
    /// What the rollback's verification found, once it has run.
    pub verification: Option<Verification>,
    /// A full rollback past the point of no return, allowed by the driver (`RollbackOverridden`).
    pub rollback_override: Option<RollbackOverride>,
    /// Writes the load generator counted since the point of no return (what a full rollback
    /// would lose, where the session sees traffic).
    pub writes_since_no_return: u64,
    /// Guards the driver overrode, as (step, guard): for that step's next action only.
    pub guard_overrides: Vec<(usize, String)>,
    /// The last guard refusal, while its step has not run: policy (`--yes`) does not answer
    /// that step's prompt.
    pub guard_refused: Option<GuardRefusal>,
    /// Every guard override of the session, for the record.
    pub guard_override_log: Vec<GuardOverride>,
    /// Whether this fold keeps what only a screen shows: each step's last output lines, the
    /// probe log, the latency sparklines. The report's fold does not (it prints none of them,
    /// and copying every output line was most of its fold); every other field is the same.
    #[serde(skip)]
    pub screen: bool,
    /// Where each node is in `nodes`, by name: a probe sample or a node's facts find their
    /// node without searching every node (a fold of 1,000 nodes' samples was quadratic).
    #[serde(skip)]
    node_index: HashMap<String, usize>,
    /// How many nodes report `read_only`: kept as their facts change, not counted over every
    /// node at each report.
    #[serde(skip)]
    read_only_nodes: usize,
    /// The first backend of each node in `lb`, by node: rebuilt when the balancer reports
    /// (once a second), not searched for at every frame.
    #[serde(skip)]
    lb_index: HashMap<String, usize>,
}

/// A guard's refusal, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardRefusal {
    pub step: usize,
    pub guard: String,
    pub node: String,
    pub reason: String,
}

/// Who let an action through a guard, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardOverride {
    pub step: usize,
    pub guard: String,
    pub node: String,
    pub by: String,
    pub uid: Option<u32>,
    pub reason: String,
    pub refusal: String,
}

/// `4m10s`, `12s`: how long ago, for a sentence.
fn minutes_seconds(ms: u64) -> String {
    let s = ms / 1000;
    match (s / 3600, (s / 60) % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, sec) => format!("{h}h{m:02}m{sec:02}s"),
    }
}

/// Who allowed a full rollback past the point of no return, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollbackOverride {
    pub by: String,
    pub reason: String,
    pub step: usize,
    pub lost: String,
}

/// Why a full rollback is refused now: the point of no return, and what rolling back would lose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoReturn {
    /// The first irreversible step done.
    pub step: usize,
    /// `step 16 (ready@jahia1) is irreversible (...): a full rollback now loses what happened
    /// since it finished 4m10s ago (132 writes counted since)`.
    pub loss: String,
    /// What the driver types to roll back anyway.
    pub phrase: String,
}

impl NoReturn {
    /// The engine's refusal of `Abort { rollback: true, reason: None }`.
    pub fn refusal(&self) -> String {
        format!(
            "a full rollback is refused past the point of no return: {}. Keep things as they \
             are (abort without rollback, or undo single steps back to it), or roll back anyway \
             by typing `{}` and saying why (both are journaled)",
            self.loss, self.phrase
        )
    }
}

/// A rollback's verification: the journaled `VerifyFinished`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub verified: bool,
    pub nodes: Vec<NodeVerdict>,
    pub why_not: Vec<String>,
}

impl SessionState {
    /// The state before any event: empty. `SessionStarted` fills it in.
    pub fn empty() -> Self {
        SessionState {
            plan: Plan::default(),
            nodes: Vec::new(),
            operator: String::new(),
            auto: AutoConfirm::default(),
            lb_driver: None,
            health_probes: Vec::new(),
            steps: Vec::new(),
            prompt: None,
            held: false,
            mode: Mode::Forward,
            lb: Vec::new(),
            lb_error: None,
            traffic_total: TrafficWindow::default(),
            traffic_last: None,
            probe_log: VecDeque::new(),
            notes: Vec::new(),
            faults: Vec::new(),
            operators: Vec::new(),
            control_request: None,
            removed_uids: Vec::new(),
            read_only: Window::default(),
            no_ready: Window::default(),
            rollback_stopped: None,
            rollback_asked: false,
            rollback_abandoned_by: None,
            t_ms: 0,
            last_seq: 0,
            resumes: 0,
            first_failure: None,
            orphan: None,
            aborting: false,
            rollback_skipped: Vec::new(),
            verifying: false,
            verification: None,
            rollback_override: None,
            writes_since_no_return: 0,
            guard_overrides: Vec::new(),
            guard_refused: None,
            guard_override_log: Vec::new(),
            screen: true,
            node_index: HashMap::new(),
            read_only_nodes: 0,
            lb_index: HashMap::new(),
        }
    }

    /// The state before any event, for a fold that draws no screen (the report): output
    /// lines, the probe log and latencies are not kept.
    pub fn without_screen() -> Self {
        SessionState {
            screen: false,
            ..SessionState::empty()
        }
    }

    /// Fold a whole stream.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a Stamped>) -> Self {
        let mut s = SessionState::empty();
        for e in events {
            s.apply(e);
        }
        s
    }

    /// The first step the forward procedure has not settled.
    pub fn cursor(&self) -> Option<usize> {
        self.steps.iter().position(|s| !s.status.is_settled())
    }

    /// The step whose action is running now, if any.
    pub fn running(&self) -> Option<usize> {
        self.steps
            .iter()
            .position(|s| matches!(s.status, StepStatus::Running | StepStatus::Undoing))
    }

    /// The latest step whose effects may be in place: the only one undo may target (saga order).
    pub fn undo_candidate(&self) -> Option<usize> {
        self.steps.iter().rposition(|s| s.status.has_effects())
    }

    /// The step a full rollback undoes next: the latest step with effects among the
    /// procedure's `[rollback] undo_first` steps (past the point of no return), else the
    /// latest step with effects.
    pub fn rollback_candidate(&self) -> Option<usize> {
        let floor = self.rollback_floor();
        self.steps
            .iter()
            .enumerate()
            .rposition(|(i, s)| {
                s.status.has_effects() && self.plan.undoes_first(i) && floor.is_none_or(|f| i > f)
            })
            .or_else(|| self.undo_candidate())
    }

    /// Why `step` cannot be undone now, or None when an undo of it would be accepted (the
    /// engine refuses with this reason; the cockpit offers `u` only when it is None).
    pub fn undo_refusal(&self, step: usize) -> Option<String> {
        if self.running().is_some() {
            return Some("wait for the running action to finish".into());
        }
        // During a rollback, in the rollback's order (`[rollback] undo_first`).
        let candidate = match self.mode {
            Mode::RollingBack => self.rollback_candidate(),
            _ => self.undo_candidate(),
        };
        if candidate != Some(step) {
            return Some(match candidate {
                Some(c) => format!(
                    "undo goes in reverse order: undo step {} ({}) first",
                    c + 1,
                    self.plan.steps.get(c).map_or("", |p| p.title.as_str())
                ),
                None => "there is nothing to undo".into(),
            });
        }
        let planned = self.plan.steps.get(step)?;
        let overridden = self.mode == Mode::RollingBack && self.rollback_override.is_some();
        if let (Some(why), Some(StepStatus::Succeeded), false) = (
            &planned.irreversible,
            self.steps.get(step).map(|r| r.status),
            overridden,
        ) {
            return Some(format!("step {} is irreversible: {why}", step + 1));
        }
        if planned.undo.is_none() {
            return Some(format!("step {} has no undo action", step + 1));
        }
        None
    }

    /// The latest completed irreversible step: rollback cannot go back past it.
    pub fn point_of_no_return(&self) -> Option<usize> {
        self.plan
            .steps
            .iter()
            .zip(&self.steps)
            .rposition(|(p, r)| p.irreversible.is_some() && r.status == StepStatus::Succeeded)
    }

    /// How far back a rollback may go: not past the point of no return, unless the driver
    /// overrode that (`RollbackOverridden`).
    pub fn rollback_floor(&self) -> Option<usize> {
        if self.rollback_override.is_some() {
            return None;
        }
        self.point_of_no_return()
    }

    /// The first irreversible step done: from its end on, a full rollback loses what happened.
    pub fn first_no_return(&self) -> Option<usize> {
        self.plan
            .steps
            .iter()
            .zip(&self.steps)
            .position(|(p, r)| p.irreversible.is_some() && r.status == StepStatus::Succeeded)
    }

    /// Why a full rollback is refused now (at `now_ms`, session time), or None when it is not:
    /// before the point of no return, or once overridden. The loss is what the procedure
    /// declares at the irreversible step, since when, and the writes counted since.
    pub fn no_return(&self, now_ms: u64) -> Option<NoReturn> {
        if self.rollback_override.is_some() {
            return None;
        }
        let step = self.first_no_return()?;
        let planned = self.plan.steps.get(step)?;
        let why = planned.irreversible.clone().unwrap_or_default();
        let since = self.steps.get(step).and_then(|r| r.finished_ms);
        let ago = since
            .map(|t| {
                format!(
                    " since it finished {} ago",
                    minutes_seconds(now_ms.saturating_sub(t))
                )
            })
            .unwrap_or_default();
        let writes = match self.writes_since_no_return {
            0 => String::new(),
            n => format!(" ({n} writes counted by the load generator since)"),
        };
        Some(NoReturn {
            step,
            loss: format!(
                "step {} ({}) is irreversible ({why}): a full rollback now loses what happened{ago}{writes}",
                step + 1,
                planned.key
            ),
            phrase: format!("lose writes since step {}", step + 1),
        })
    }

    /// While no irreversible step is done: the first irreversible step ahead (rollback is
    /// possible until it runs), or None when the whole procedure can be rolled back.
    pub fn rollback_until(&self) -> Option<usize> {
        self.plan.first_irreversible()
    }

    /// Whether the confirm policy (`confirm = "none"`, `--yes`, `--on-failure rollback`) will
    /// answer the open prompt without a human. The engine and the headless runner both ask.
    /// Whether step `i` is optional and nobody has chosen yet whether it runs.
    pub fn awaits_choice(&self, i: usize) -> bool {
        self.plan.steps.get(i).is_some_and(|p| p.optional.is_some())
            && self.steps.get(i).is_some_and(|s| s.chosen.is_none())
    }

    /// The guard refusal that stands for step `step`: journaled, and its action not run since.
    pub fn guard_refusal_of(&self, step: usize) -> Option<&GuardRefusal> {
        self.guard_refused.as_ref().filter(|g| g.step == step)
    }

    pub fn policy_answers_prompt(&self) -> bool {
        let Some(open) = self.prompt else {
            return false;
        };
        let Some(planned) = self.plan.steps.get(open.step) else {
            return false;
        };
        let auto = self.auto;
        // A guard refused this step's action: a person decides (override, wait, skip).
        if self.guard_refusal_of(open.step).is_some() {
            return false;
        }
        // An optional step is the operator's choice; only `--yes` takes the declared default.
        if open.kind == PromptKindTag::Run && self.awaits_choice(open.step) {
            return auto.yes;
        }
        // A two-person step needs two people: neither `--yes` nor `confirm = "none"` is one.
        if planned.approvals > 1 && matches!(open.kind, PromptKindTag::Run | PromptKindTag::Undo) {
            return false;
        }
        match open.kind {
            PromptKindTag::Run => match &planned.confirm {
                crate::plan::Confirm::None => true,
                crate::plan::Confirm::Yes => auto.yes,
                crate::plan::Confirm::Phrase { .. } => auto.yes && auto.yes_phrases,
            },
            PromptKindTag::Undo => auto.yes && self.mode == Mode::RollingBack,
            PromptKindTag::Failed | PromptKindTag::Interrupted => {
                auto.rollback_on_failure && self.mode == Mode::Forward
            }
        }
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.mode, Mode::Finished(_))
    }

    pub fn driver(&self) -> Option<&OperatorView> {
        self.operators.iter().find(|o| o.driver)
    }

    /// The step that explains a change of `node`'s state reported at `t`, by causality: the
    /// change happened after `prior_sent` (a request sent then still read the old state) and
    /// by `t`, so only a step whose action (or undo) ran in that interval can have made it — one
    /// still running, or one that finished at or after `prior_sent` (the same millisecond cannot
    /// tell them apart) — however late the change was read. It acts on this node or on no
    /// node in particular, and is not known to start and stop nothing (a gate only watches, an `lb` action only routes, a backup or an install
    /// starts nothing: `Plan::keeps_state`): a node that crashes right after its backup is
    /// flagged, never hidden as the backup's doing. The latest such step. Without
    /// `prior_sent` (an older journal, a change right after a resume), a step that finished
    /// at most [`STATE_EXPLAIN_MS`] before `t`.
    fn state_moved_by(&self, node: &str, t: u64, prior_sent: Option<u64>) -> Option<usize> {
        let after = prior_sent.unwrap_or_else(|| t.saturating_sub(STATE_EXPLAIN_MS));
        self.plan
            .steps
            .iter()
            .zip(&self.steps)
            .enumerate()
            .filter(|(i, _)| self.may_move(*i, node))
            .filter(|(_, (_, r))| match r.status {
                StepStatus::Running | StepStatus::Undoing => r.started_ms.is_none_or(|s| s <= t),
                // Never ran, or its run was set aside: nothing of it to explain a change.
                StepStatus::Pending | StepStatus::Awaiting | StepStatus::Skipped => false,
                _ => {
                    r.started_ms.or(r.finished_ms).is_some_and(|s| s <= t)
                        && r.finished_ms.is_some_and(|f| f >= after)
                }
            })
            .max_by_key(|(_, (_, r))| r.finished_ms.unwrap_or(u64::MAX))
            .map(|(i, _)| i)
    }

    /// Step `i` acts on `node` (or on no node in particular) and its action — or its undo,
    /// when that ran last — may start or stop a node: not a gate (it only watches), not an
    /// `lb` action (it only routes), not one the plan knows starts and stops nothing
    /// (`Plan::keeps_state`).
    fn may_move(&self, i: usize, node: &str) -> bool {
        let (Some(p), Some(r)) = (self.plan.steps.get(i), self.steps.get(i)) else {
            return false;
        };
        let keeps = &self.plan.keeps_state;
        let (action, keeps) = match r.phase {
            Phase::Do => (Some(&p.action), &keeps.action),
            Phase::Undo => (p.undo.as_ref(), &keeps.undo),
        };
        p.node.as_deref().is_none_or(|n| n == node)
            && !keeps.contains(&p.key)
            && !matches!(action, Some(Action::Wait(_) | Action::Lb { .. }) | None)
    }

    /// When (session ms) the last step other than `except` that may have started or stopped
    /// `node` ended (0: none has). The product's reading of the node's state counts as its
    /// state now only if its request was sent after that: one sent before may show the node
    /// as it was before that step restarted it.
    pub fn state_settled_ms(&self, node: &str, except: usize) -> u64 {
        self.steps
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                *i != except
                    && !matches!(
                        r.status,
                        StepStatus::Pending | StepStatus::Awaiting | StepStatus::Skipped
                    )
                    && self.may_move(*i, node)
            })
            .filter_map(|(_, r)| r.finished_ms)
            .max()
            .unwrap_or(0)
    }

    /// Where the node called `name` is in `nodes`. `nodes` is public, so an index that no
    /// longer matches (a caller changed the list) falls back to a search.
    fn node_at(&self, name: &str) -> Option<usize> {
        match self.node_index.get(name) {
            Some(&i) if self.nodes.get(i).is_some_and(|n| n.node.name == name) => Some(i),
            _ => self.nodes.iter().position(|n| n.node.name == name),
        }
    }

    pub fn node(&self, name: &str) -> Option<&NodeView> {
        self.node_at(name).and_then(|i| self.nodes.get(i))
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut NodeView> {
        self.node_at(name).and_then(|i| self.nodes.get_mut(i))
    }

    /// The balancer's first backend for `node`, as it last reported.
    pub fn backend_of(&self, node: &str) -> Option<&Backend> {
        let search = || self.lb.iter().find(|b| b.node.as_deref() == Some(node));
        match self.lb_index.get(node).and_then(|&i| self.lb.get(i)) {
            Some(b) if b.node.as_deref() == Some(node) => Some(b),
            // `lb` is public: a list set without `apply` (tests do) is searched when the
            // index points elsewhere or was never built; a name the index lacks is a miss.
            Some(_) => search(),
            None if self.lb_index.is_empty() && !self.lb.is_empty() => search(),
            None => None,
        }
    }

    fn set_lb(&mut self, backends: &[Backend]) {
        self.lb = backends.to_vec();
        self.lb_index.clear();
        for (i, b) in self.lb.iter().enumerate() {
            if let Some(node) = b.node.as_deref() {
                self.lb_index.entry(node.to_string()).or_insert(i);
            }
        }
    }

    pub fn apply(&mut self, st: &Stamped) {
        #[cfg(test)]
        folds::note(st.seq);
        self.t_ms = self.t_ms.max(st.t_ms);
        if !st.event.is_live_only() {
            self.last_seq = self.last_seq.max(st.seq);
        }
        let t = st.t_ms;
        match &st.event {
            Event::SessionStarted {
                plan,
                nodes,
                operator,
                auto,
                lb,
                health_probes,
                ..
            } => {
                self.steps = plan.steps.iter().map(|_| StepRun::new()).collect();
                self.plan = Plan::clone(plan);
                self.nodes = nodes
                    .iter()
                    .map(|n| NodeView {
                        node: n.clone(),
                        facts: BTreeMap::new(),
                        health: None,
                        health_detail: String::new(),
                        probes: BTreeMap::new(),
                        latencies: VecDeque::new(),
                        state_seen_ms: None,
                        state_change: None,
                    })
                    .collect();
                self.node_index = self
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.node.name.clone(), i))
                    .collect();
                self.read_only_nodes = 0;
                self.operator = operator.clone();
                self.auto = *auto;
                self.lb_driver = lb.clone();
                self.health_probes = health_probes.clone();
            }
            Event::Resumed { .. } => {
                self.resumes += 1;
                for s in &mut self.steps {
                    if matches!(s.status, StepStatus::Running | StepStatus::Undoing) {
                        s.status = StepStatus::Interrupted;
                        s.detail = Some("the session stopped while this action ran".into());
                        s.gate = None;
                    }
                    if s.status == StepStatus::Awaiting {
                        s.status = StepStatus::Pending;
                    }
                }
                self.prompt = None;
                self.held = false;
                // Checked again by the resuming engine (`OrphanAlive`).
                self.orphan = None;
                // A verification that was running is run again by the resuming engine.
                self.verifying = false;
                // Whoever was attached before is gone.
                self.operators.clear();
                self.control_request = None;
            }
            Event::PromptOpened { id, step, prompt } => {
                // A prompt that replaces another (an undo asked at the next step's run
                // prompt) withdraws it.
                if self.prompt.is_some_and(|p| p.step != *step) {
                    self.withdraw_prompt();
                }
                self.prompt = Some(OpenPrompt {
                    id: *id,
                    step: *step,
                    kind: prompt.into(),
                });
                self.held = false;
                if let Some(s) = self.steps.get_mut(*step) {
                    s.approvals.clear();
                    s.approval_uids.clear();
                    s.driver_confirm = None;
                    if *prompt == PromptKind::Run {
                        s.status = StepStatus::Awaiting;
                    }
                }
            }
            Event::Approved {
                step,
                by,
                uid,
                confirm,
            } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    if !s.approvals.contains(by) {
                        s.approvals.push(by.clone());
                    }
                    if let Some(u) = uid {
                        if !s.approval_uids.contains(u) {
                            s.approval_uids.push(*u);
                        }
                    }
                    if *confirm {
                        s.driver_confirm = Some((by.clone(), *uid));
                    }
                }
            }
            Event::Confirmed { step, by, .. } => {
                self.prompt = None;
                if let Some(s) = self.steps.get_mut(*step) {
                    if !s.confirmed_by.contains(by) {
                        s.confirmed_by.push(by.clone());
                    }
                }
            }
            Event::Declined { step, .. } => {
                self.prompt = None;
                self.held = true;
                if let Some(s) = self.steps.get_mut(*step) {
                    if s.status == StepStatus::Awaiting {
                        s.status = StepStatus::Pending;
                    }
                }
            }
            Event::ActionStarted {
                step,
                phase,
                attempt,
            } => {
                // An override lets one action through.
                self.guard_overrides.retain(|(s, _)| s != step);
                if self.guard_refusal_of(*step).is_some() {
                    self.guard_refused = None;
                }
                if let Some(s) = self.steps.get_mut(*step) {
                    s.status = match phase {
                        Phase::Do => StepStatus::Running,
                        Phase::Undo => StepStatus::Undoing,
                    };
                    s.phase = *phase;
                    match phase {
                        Phase::Do => s.attempts = *attempt,
                        Phase::Undo => s.undo_attempts = *attempt,
                    }
                    s.started_ms = Some(t);
                    s.finished_ms = None;
                    s.detail = None;
                    s.gate = None;
                    s.pgid = None;
                    s.pgid_started = None;
                }
            }
            Event::ProcessStarted {
                step,
                pgid,
                started,
                ..
            } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    s.pgid = Some(*pgid);
                    s.pgid_started = started.clone();
                }
            }
            Event::OrphanAlive { step, pgid } => self.orphan = Some((*step, *pgid)),
            Event::OrphanGone { step, .. } => {
                self.orphan = None;
                if let Some(s) = self.steps.get_mut(*step) {
                    s.pgid = None;
                    s.pgid_started = None;
                }
            }
            Event::Output {
                step,
                phase,
                stream,
                line,
            } => {
                if let Some(s) = self.steps.get_mut(*step).filter(|_| self.screen) {
                    if s.output.len() >= OUTPUT_KEPT {
                        s.output.pop_front();
                    }
                    s.output.push_back(Arc::new(OutputLine {
                        t_ms: t,
                        phase: *phase,
                        stream: *stream,
                        line: line.clone(),
                    }));
                }
            }
            Event::GateProgress {
                step,
                passing,
                total,
                stable_ms,
                need_ms,
            } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    s.gate = Some(GateView {
                        passing: *passing,
                        total: *total,
                        stable_ms: *stable_ms,
                        need_ms: *need_ms,
                    });
                }
            }
            Event::ActionFinished {
                step,
                phase,
                verdict,
                detail,
                ..
            } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    s.status = match (phase, verdict) {
                        (Phase::Do, Verdict::Passed) => StepStatus::Succeeded,
                        (Phase::Do, _) => StepStatus::Failed,
                        (Phase::Undo, Verdict::Passed) => StepStatus::Undone,
                        (Phase::Undo, _) => StepStatus::UndoFailed,
                    };
                    if let Some(started) = s.started_ms {
                        s.run_ms += t.saturating_sub(started);
                    }
                    s.finished_ms = Some(t);
                    s.detail = Some(detail.clone());
                    s.gate = None;
                    s.pgid = None;
                    s.pgid_started = None;
                }
                if *verdict != Verdict::Passed && self.first_failure.is_none() {
                    self.first_failure = Some((*step, detail.clone()));
                }
            }
            Event::OptionalChosen { step, choice, .. } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    s.chosen = Some(*choice);
                }
            }
            Event::Skipped { step, .. } => {
                self.prompt = None;
                if self.mode == Mode::RollingBack
                    && self
                        .steps
                        .get(*step)
                        .is_some_and(|s| s.status.has_effects())
                    && !self.rollback_skipped.contains(step)
                {
                    self.rollback_skipped.push(*step);
                }
                if let Some(s) = self.steps.get_mut(*step) {
                    s.status = StepStatus::Skipped;
                    s.finished_ms = Some(t);
                }
            }
            Event::MarkedDone { step, by, phase } => {
                self.prompt = None;
                if let Some(s) = self.steps.get_mut(*step) {
                    s.status = match phase {
                        Phase::Do => StepStatus::Succeeded,
                        Phase::Undo => StepStatus::Undone,
                    };
                    s.finished_ms = Some(t);
                    s.detail = Some(match phase {
                        Phase::Do => format!("marked done by {by}"),
                        Phase::Undo => format!("undo marked done by {by}"),
                    });
                }
            }
            Event::ProbeSample {
                probe,
                node,
                ok,
                latency_ms,
                detail,
            } => {
                self.log_probe(t, probe, node, *ok, Some(*latency_ms), detail);
                let screen = self.screen;
                if let Some(n) = node
                    .as_deref()
                    .filter(|_| screen)
                    .and_then(|n| self.node_mut(n))
                {
                    if n.latencies.len() >= LATENCY_KEPT {
                        n.latencies.pop_front();
                    }
                    n.latencies.push_back(*latency_ms);
                }
                self.set_probe(probe, node, *ok, detail, t);
            }
            Event::ProbeChanged {
                probe,
                node,
                ok,
                detail,
            } => {
                self.log_probe(t, probe, node, *ok, None, detail);
                self.set_probe(probe, node, *ok, detail, t);
            }
            Event::ProbeSummary { .. } => {}
            Event::NodeFacts {
                node,
                facts,
                prior_sent_ms,
            } => {
                // Which step moved the node is asked only when its state changes: most
                // reports repeat it, and the question looks at every step of the plan.
                let changes = self
                    .node(node)
                    .and_then(|n| n.state())
                    .zip(facts.get("state"))
                    .is_some_and(|(old, new)| old != new);
                let moved_by = if changes {
                    self.state_moved_by(node, t, *prior_sent_ms)
                } else {
                    None
                };
                let mut read_only_nodes = self.read_only_nodes;
                if let Some(n) = self.node_mut(node) {
                    let was_read_only = n.read_only() == Some(true);
                    if let Some(new) = facts.get("state") {
                        // The first report is where the node was, not a change. A node a
                        // step started that fails (or comes up) on its way up does so because
                        // of that step, however long the start took.
                        let inherited = n
                            .state_change
                            .as_ref()
                            .filter(|_| n.state() == Some("starting"))
                            .and_then(|c| c.by_step);
                        if n.state().is_some_and(|old| old != new) {
                            n.state_change = Some(StateChange {
                                t_ms: t,
                                by_step: moved_by.or(inherited),
                            });
                        }
                        n.state_seen_ms = Some(t);
                    }
                    for (k, v) in facts {
                        n.facts.insert(k.clone(), v.clone());
                    }
                    match (was_read_only, n.read_only() == Some(true)) {
                        (false, true) => read_only_nodes += 1,
                        (true, false) => read_only_nodes = read_only_nodes.saturating_sub(1),
                        _ => {}
                    }
                }
                self.read_only_nodes = read_only_nodes;
                self.read_only.set(read_only_nodes > 0, t);
            }
            Event::LbSample { backends } => self.set_lb(backends),
            Event::LbChanged { backends, error } => {
                self.set_lb(backends);
                self.lb_error = error.clone();
                if error.is_none() {
                    let none_serving = !backends.is_empty() && !backends.iter().any(|b| b.serving);
                    self.no_ready.set(none_serving, t);
                }
            }
            Event::Traffic { window_ms, counts } => {
                if self.point_of_no_return().is_some() {
                    self.writes_since_no_return =
                        self.writes_since_no_return.saturating_add(counts.writes_ok);
                }
                self.traffic_total.add(counts);
                self.traffic_last = Some((*window_ms, *counts));
            }
            Event::Note { by, text } => self.notes.push(NoteEntry {
                t_ms: t,
                by: by.clone(),
                text: text.clone(),
            }),
            Event::AbortRequested { rollback, by, .. } => {
                self.withdraw_prompt();
                self.held = false;
                if *rollback {
                    self.rollback_asked = true;
                } else if self.mode == Mode::RollingBack {
                    self.rollback_abandoned_by = Some(by.clone());
                }
                if *rollback {
                    self.mode = Mode::RollingBack;
                    self.aborting = false;
                } else if self.running().is_some() {
                    self.aborting = true;
                }
            }
            Event::GuardRefused {
                step,
                guard,
                node,
                reason,
                ..
            } => {
                self.guard_refused = Some(GuardRefusal {
                    step: *step,
                    guard: guard.clone(),
                    node: node.clone(),
                    reason: reason.clone(),
                })
            }
            Event::GuardOverridden {
                step,
                guard,
                node,
                by,
                uid,
                reason,
                refusal,
            } => {
                self.guard_overrides.push((*step, guard.clone()));
                if self
                    .guard_refusal_of(*step)
                    .is_some_and(|g| g.guard == *guard)
                {
                    self.guard_refused = None;
                }
                self.guard_override_log.push(GuardOverride {
                    step: *step,
                    guard: guard.clone(),
                    node: node.clone(),
                    by: by.clone(),
                    uid: *uid,
                    reason: reason.clone(),
                    refusal: refusal.clone(),
                });
            }
            Event::RollbackOverridden {
                by,
                reason,
                step,
                lost,
                ..
            } => {
                self.rollback_override = Some(RollbackOverride {
                    by: by.clone(),
                    reason: reason.clone(),
                    step: *step,
                    lost: lost.clone(),
                })
            }
            Event::FaultStaged { fault, step, phase } => self.faults.push(FaultView {
                fault: fault.clone(),
                step: *step,
                phase: *phase,
                fired_ms: None,
                error: None,
            }),
            Event::FaultFired {
                fault,
                step,
                phase,
                error,
            } => {
                if let Some(f) = self.faults.iter_mut().find(|f| {
                    f.fault == *fault
                        && f.step == Some(*step)
                        && f.phase == *phase
                        && f.fired_ms.is_none()
                }) {
                    f.fired_ms = Some(t);
                    f.error = error.clone();
                }
            }
            Event::RollbackStopped { reason } => self.rollback_stopped = Some(reason.clone()),
            Event::VerifyStarted { .. } => {
                self.verifying = true;
                self.verification = None;
            }
            Event::VerifyFinished {
                verified,
                nodes,
                why_not,
            } => {
                self.verifying = false;
                self.verification = Some(Verification {
                    verified: *verified,
                    nodes: nodes.clone(),
                    why_not: why_not.clone(),
                });
            }
            Event::Finished { outcome } => {
                self.verifying = false;
                self.withdraw_prompt();
                self.aborting = false;
                self.mode = Mode::Finished(*outcome);
                self.read_only.set(false, t);
                self.no_ready.set(false, t);
            }
            Event::OperatorJoined {
                id,
                name,
                driver,
                user,
                uid,
            } => {
                self.operators.retain(|o| o.id != *id);
                if *driver {
                    for o in &mut self.operators {
                        o.driver = false;
                    }
                }
                self.operators.push(OperatorView {
                    id: *id,
                    name: name.clone(),
                    driver: *driver,
                    user: user.clone().unwrap_or_else(|| name.clone()),
                    uid: *uid,
                });
            }
            Event::OperatorLeft { id } => {
                self.operators.retain(|o| o.id != *id);
                if self.control_request.as_ref().is_some_and(|(r, _)| r == id) {
                    self.control_request = None;
                }
            }
            Event::DriverChanged { id, .. } => {
                for o in &mut self.operators {
                    o.driver = o.id == *id;
                }
                self.control_request = None;
            }
            Event::OperatorRemoved { id, uid, .. } => {
                self.operators.retain(|o| o.id != *id);
                if self.control_request.as_ref().is_some_and(|(r, _)| r == id) {
                    self.control_request = None;
                }
                if let Some(u) = uid {
                    if !self.removed_uids.contains(u) {
                        self.removed_uids.push(*u);
                    }
                }
            }
            Event::ControlRequested { id, name } => {
                self.control_request = Some((*id, name.clone()));
            }
        }
    }

    /// Close the open prompt without an answer: its step no longer awaits anyone.
    fn withdraw_prompt(&mut self) {
        if let Some(old) = self.prompt.take() {
            if let Some(s) = self.steps.get_mut(old.step) {
                if s.status == StepStatus::Awaiting {
                    s.status = StepStatus::Pending;
                }
            }
        }
    }

    fn log_probe(
        &mut self,
        t: u64,
        probe: &str,
        node: &Option<String>,
        ok: bool,
        latency_ms: Option<u64>,
        detail: &str,
    ) {
        if !self.screen {
            return;
        }
        if self.probe_log.len() >= PROBE_LOG_KEPT {
            self.probe_log.pop_front();
        }
        self.probe_log.push_back(ProbeLogEntry {
            t_ms: t,
            probe: probe.to_string(),
            node: node.clone(),
            ok,
            latency_ms,
            detail: detail.to_string(),
        });
    }

    fn set_probe(&mut self, probe: &str, node: &Option<String>, ok: bool, detail: &str, t: u64) {
        let is_health = self.health_probes.iter().any(|h| h == probe);
        let mut flipped = false;
        if let Some(i) = node.as_deref().and_then(|n| self.node_at(n)) {
            let health_probes = &self.health_probes;
            let n = &mut self.nodes[i];
            // Most samples change nothing: no new key to allocate.
            match n.probes.get_mut(probe) {
                Some(was) => *was = ok,
                None => {
                    n.probes.insert(probe.to_string(), ok);
                }
            }
            if is_health {
                // Failing as soon as one health probe fails; healthy only once every one has
                // reported passing: until then it is not known (one probe's pass says nothing
                // of the others).
                let reported: Vec<Option<bool>> = health_probes
                    .iter()
                    .map(|h| n.probes.get(h).copied())
                    .collect();
                let health = if reported.contains(&Some(false)) {
                    Some(false)
                } else if reported.contains(&None) {
                    None
                } else {
                    Some(true)
                };
                flipped = n.health != health;
                n.health = health;
                n.health_detail.clear();
                if !ok {
                    n.health_detail.push_str(detail);
                }
            }
        }
        // Without a balancer nothing reports "no ready backend", yet a standalone that is
        // stopped serves nobody: the cluster is fully down while every node's health probes
        // fail (a real Milvus standalone upgrade showed "full down 00:00" over 80 s of outage).
        // A node whose health is not known yet doesn't count as down. Health changes only
        // here, so the whole-cluster answer can only change when one node's flips: the other
        // samples (most of them) leave it as it is.
        if flipped && self.lb_driver.is_none() && !matches!(self.mode, Mode::Finished(_)) {
            let all_down =
                !self.nodes.is_empty() && self.nodes.iter().all(|n| n.health == Some(false));
            self.no_ready.set(all_down, t);
        }
    }
}

/// Which events this thread folded, while a test counts them: how a test shows that a
/// session's history is folded once, by the engine, and not again by each view of it.
#[cfg(test)]
pub(crate) mod folds {
    use std::cell::RefCell;

    thread_local! {
        static FOLDED: RefCell<Option<Vec<u64>>> = const { RefCell::new(None) };
    }

    /// Start counting on this thread (what was counted before is dropped).
    pub(crate) fn count() {
        FOLDED.with(|f| *f.borrow_mut() = Some(Vec::new()));
    }

    /// The seqs of the events folded on this thread since `count`, in order.
    pub(crate) fn taken() -> Vec<u64> {
        FOLDED.with(|f| f.borrow_mut().take().unwrap_or_default())
    }

    pub(super) fn note(seq: u64) {
        FOLDED.with(|f| {
            if let Some(v) = f.borrow_mut().as_mut() {
                v.push(seq);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::demo::{self, Script};

    fn node_facts(node: &str, state: &str, prior_sent_ms: Option<u64>) -> Event {
        Event::NodeFacts {
            node: node.into(),
            facts: [("state".to_string(), state.to_string())].into(),
            prior_sent_ms,
        }
    }

    fn change_of(s: &Script, node: &str) -> Option<StateChange> {
        let st = SessionState::fold(s.events());
        st.nodes
            .iter()
            .find(|n| n.node.name == node)
            .and_then(|n| n.state_change.clone())
    }

    /// A step done before the product last reported the old state did not move the node:
    /// a crash seconds after the backup of that node is no step's doing.
    #[test]
    fn a_step_done_before_the_old_state_was_last_seen_explains_nothing() {
        let mut s = Script::started();
        for n in demo::NODES {
            s.facts(n, &[("state", "running")]);
        }
        s.through(demo::STEP_UPGRADE1 + 1);
        let done = SessionState::fold(s.events()).steps[demo::STEP_UPGRADE1]
            .finished_ms
            .unwrap();
        // Without the last report: within the window, the upgrade of jahia1 explains it.
        let mut old = s.clone();
        old.push(2000, node_facts("jahia1", "failed", None));
        assert_eq!(
            change_of(&old, "jahia1").and_then(|c| c.by_step),
            Some(demo::STEP_UPGRADE1)
        );
        // The product said `running` after the upgrade had finished: nothing explains it.
        s.push(2000, node_facts("jahia1", "failed", Some(done + 500)));
        let change = change_of(&s, "jahia1").unwrap();
        assert_eq!(change.by_step, None);
        let st = SessionState::fold(s.events());
        assert!(st.nodes[0].unexpectedly_down());
    }

    /// The read-only window is open while any node says it is read-only, counted as each
    /// node's report changes (a repeated report counts once) rather than over every node.
    #[test]
    fn the_read_only_window_is_open_while_any_node_is_read_only() {
        let ro = |v: &'static str| [("read_only", v)];
        let mut s = Script::started();
        let [a, b, c] = [demo::NODES[0], demo::NODES[1], demo::NODES[2]];
        s.facts(a, &ro("true"));
        s.facts(a, &ro("true"));
        s.facts(b, &ro("true"));
        s.facts(a, &ro("false"));
        let st = SessionState::fold(s.events());
        assert!(st.read_only.since.is_some(), "{b} is still read-only");
        s.facts(c, &ro("false"));
        s.facts(b, &ro("false"));
        let st = SessionState::fold(s.events());
        assert_eq!(st.read_only.since, None);
        assert_eq!(st.read_only.count, 1);
        // Each report landed on its own node, found by name.
        assert_eq!(st.node(c).and_then(|n| n.read_only()), Some(false));
        assert_eq!(st.nodes[2].node.name, c);
        assert_eq!(st.node("no-such-node").map(|n| &n.node.name), None);
    }

    /// A node is healthy once every health probe has reported passing, failing once one
    /// fails, and unknown before (it showed healthy when the first of two probes passed).
    #[test]
    fn a_node_is_healthy_only_once_every_health_probe_has_passed() {
        let mut s = Script::started();
        if let Event::SessionStarted { health_probes, .. } = &mut s.events[0].event {
            *health_probes = vec!["http".into(), "tcp".into()];
        }
        let node = demo::NODES[0];
        let health = |s: &Script| SessionState::fold(s.events()).nodes[0].health;
        let sample = |probe: &str, ok: bool| Event::ProbeChanged {
            probe: probe.into(),
            node: Some(node.into()),
            ok,
            detail: if ok { String::new() } else { "refused".into() },
        };
        assert_eq!(health(&s), None);
        s.push(100, sample("http", true));
        assert_eq!(health(&s), None, "tcp has not reported");
        s.push(200, sample("tcp", true));
        assert_eq!(health(&s), Some(true));
        s.push(300, sample("http", false));
        assert_eq!(health(&s), Some(false));
        // One failure is enough to say failing, before the other has reported.
        let mut t = Script::started();
        if let Event::SessionStarted { health_probes, .. } = &mut t.events[0].event {
            *health_probes = vec!["http".into(), "tcp".into()];
        }
        t.push(100, sample("tcp", false));
        assert_eq!(health(&t), Some(false));
    }

    /// The demo session with its backup known to start and stop nothing, every node running.
    fn with_backup_keeping_state() -> Script {
        let mut s = Script::started();
        if let Event::SessionStarted { plan, .. } = &mut s.events[0].event {
            let key = plan.steps[demo::STEP_BACKUP].key.clone();
            plan.keeps_state.action.insert(key);
        }
        for n in demo::NODES {
            s.facts(n, &[("state", "running")]);
        }
        s
    }

    /// Issue 14's crash: the last answer that read the node running was sent before the
    /// backup finished, and the crash is read seconds later. The backup ran in the interval
    /// the change lies in, but starts and stops nothing: the crash is flagged, not hidden.
    #[test]
    fn a_crash_right_after_a_backup_is_no_steps_doing() {
        let mut s = with_backup_keeping_state();
        s.through(demo::STEP_BACKUP);
        let sent = s.t_ms;
        s.complete(demo::STEP_BACKUP, &[]);
        s.push(1500, node_facts("jahia2", "failed", Some(sent)));
        assert_eq!(change_of(&s, "jahia2").and_then(|c| c.by_step), None);
        let st = SessionState::fold(s.events());
        assert!(st.nodes[1].unexpectedly_down());
        // The same timings with a step that may stop a node (the upgrade of jahia1, a
        // command): it did it.
        let mut s = with_backup_keeping_state();
        s.through(demo::STEP_UPGRADE1);
        let sent = s.t_ms;
        s.complete(demo::STEP_UPGRADE1, &[]);
        s.push(1500, node_facts("jahia1", "stopped", Some(sent)));
        assert_eq!(
            change_of(&s, "jahia1").and_then(|c| c.by_step),
            Some(demo::STEP_UPGRADE1)
        );
    }

    /// Issue 14's stop: the answer that still read the node running was sent before the step
    /// ended (received after it); the new state is read long after, on a loaded machine.
    /// The step ran after that request was sent: it did it, however late the reading.
    #[test]
    fn a_stop_read_late_is_still_the_steps() {
        let mut s = with_backup_keeping_state();
        s.through(demo::STEP_UPGRADE1);
        s.start(demo::STEP_UPGRADE1);
        let sent = s.t_ms + 100;
        s.finish(demo::STEP_UPGRADE1, Verdict::Passed, "exit 0");
        s.push(
            STATE_EXPLAIN_MS * 2,
            node_facts("jahia1", "stopped", Some(sent)),
        );
        assert_eq!(
            change_of(&s, "jahia1").and_then(|c| c.by_step),
            Some(demo::STEP_UPGRADE1)
        );
        // A skipped step did nothing.
        let mut s = with_backup_keeping_state();
        s.through(demo::STEP_READ_ONLY);
        let sent = s.t_ms;
        s.push(
            300,
            Event::Skipped {
                step: demo::STEP_READ_ONLY,
                by: "alice".into(),
            },
        );
        s.push(500, node_facts("jahia3", "stopped", Some(sent)));
        assert_eq!(change_of(&s, "jahia3").and_then(|c| c.by_step), None);
    }

    /// A gate only watches: a node that fails while a gate waits on it failed because of the
    /// step that started it, however long its start took.
    #[test]
    fn a_node_that_fails_on_its_way_up_failed_by_the_step_that_started_it() {
        let mut s = Script::started();
        for n in demo::NODES {
            s.facts(n, &[("state", "running")]);
        }
        s.through(demo::STEP_UPGRADE1);
        s.start(demo::STEP_UPGRADE1);
        s.facts("jahia1", &[("state", "starting")]);
        s.finish(demo::STEP_UPGRADE1, Verdict::Passed, "exit 0");
        assert_eq!(
            change_of(&s, "jahia1").and_then(|c| c.by_step),
            Some(demo::STEP_UPGRADE1)
        );
        // The final gate (every node, no node of its own) runs; well past the window and
        // after the last report of `starting`, the product reports the node failed.
        let gate = SessionState::fold(s.events()).plan.steps.len() - 1;
        s.start(gate);
        let t = SessionState::fold(s.events()).t_ms;
        s.push(
            STATE_EXPLAIN_MS + 5000,
            node_facts("jahia1", "failed", Some(t + STATE_EXPLAIN_MS)),
        );
        assert_eq!(
            change_of(&s, "jahia1").and_then(|c| c.by_step),
            Some(demo::STEP_UPGRADE1)
        );
    }
}
