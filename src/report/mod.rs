//! The upgrade report: what a journal says happened, as figures for a ticket or a script.
//!
//! [`ReportFold`] folds the journal's events one at a time (the same `SessionState::apply` the
//! live session used), counting what the state does not keep (who confirmed, each failure,
//! probe counts); `report` streams the journal through it in one pass, so its memory does not
//! grow with the journal's length. [`markdown`] and [`json`] render it. Every duration comes
//! from the events' `t_ms` stamps.

mod json;
mod kept;
mod markdown;

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::str::FromStr;

use serde::Serialize;

use crate::engine::event::{AutoConfirm, Event, Outcome, Phase, TrafficWindow, Verdict};
use crate::engine::state::{Mode, SessionState, Verification};
use crate::engine::Stamped;
use crate::journal::{self, Journal, JournalError};

pub use json::json;
use kept::Kept;
pub use kept::{LeftOut, KEEP, KEEP_PER_STEP};
pub use markdown::{duration as human_duration, markdown};

/// Everything the report says, in the order it says it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub procedure: String,
    pub product: String,
    pub target: String,
    pub from_version: Option<String>,
    pub to_version: Option<String>,
    /// Versions passed through, in order (the last is `to_version`).
    pub hops: Vec<String>,
    /// Wall-clock start from the journal header (RFC 3339).
    pub started_at: String,
    pub journal_format: u32,
    pub flightdeck_version: String,
    /// Wall-clock end (start + duration), when the start parses.
    pub finished_at: Option<String>,
    /// From the session start to its last event (or `Finished`).
    pub duration_ms: u64,
    /// How the session ended, as a kind (JSON `result`: `completed`, `rolled_back`, ...).
    #[serde(rename = "result")]
    pub outcome: ReportOutcome,
    /// How the session ended, in the words every view uses (JSON `outcome`;
    /// `engine::outcome::outcome_text`): `rolled back (verified)`, `rolled back, NOT verified:
    /// node2 failed (...)`, `completed`, ...
    #[serde(rename = "outcome")]
    pub outcome_text: String,
    /// Whether a rollback happened and its verification held on every node: `true` only when
    /// it did; `false` for a rollback that was not verified (or stopped, or never finished);
    /// `None` (JSON `null`) when no rollback was asked for, so a completed or plainly aborted
    /// session never reads as a rollback that failed or held.
    pub rollback_verified: Option<bool>,
    /// What the rollback's verification found, per node (absent when none ran).
    pub rollback_verification: Option<Verification>,
    /// Each node as the journal last saw it (facts from probes, the balancer, and the
    /// rollback's verification when one ran).
    pub nodes_after: Vec<NodeAfter>,
    /// A full rollback past the point of no return, allowed by the driver: who, why, and what
    /// the engine said it would lose.
    pub rollback_override: Option<crate::engine::state::RollbackOverride>,
    /// Actions let through a guard by the driver's override: who (the kernel's user), why,
    /// and what the guard had said.
    pub guard_overrides: Vec<crate::engine::state::GuardOverride>,
    /// Where rollback had to stop, when it did.
    pub rollback_stopped: Option<String>,
    /// The operator who started the session (header).
    pub operator: String,
    pub auto: AutoConfirm,
    pub resumes: Vec<Resume>,
    /// Resumes left out of `resumes` (more than [`KEEP`] at each end): how many, and after
    /// which. The lists below that have such a field are bounded the same way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumes_left_out: Option<LeftOut>,
    /// Everyone who attached, in order.
    pub joined: Vec<Joined>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joined_left_out: Option<LeftOut>,
    /// Every handover of control.
    pub driver_changes: Vec<DriverChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_changes_left_out: Option<LeftOut>,
    pub steps: Vec<StepReport>,
    /// Who decided what, in order: confirmations, holds, skips, retries, undos, marks, the
    /// abort (with what was on screen when it was asked for), takeovers.
    pub decisions: Vec<Decision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decisions_left_out: Option<LeftOut>,
    pub notes: Vec<NoteReport>,
    /// Lab faults staged for the session (`run --lab --fault`) and when each took effect.
    pub faults: Vec<FaultReport>,
    /// Time any node reported `read_only = true`.
    pub read_only: WindowReport,
    /// Time the balancer had backends but none serving.
    pub no_ready_backend: WindowReport,
    pub probes: Vec<ProbeReport>,
    /// Load-generator totals, when the session recorded traffic.
    pub traffic: Option<TrafficWindow>,
    pub events: usize,
    /// The journal ended in a half-written line (the session's process died mid-write).
    pub torn_tail: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportOutcome {
    Completed,
    Aborted,
    RolledBack,
    /// The journal ends without `Finished`: the session crashed, was detached, or still runs.
    Unfinished,
}

impl ReportOutcome {
    pub fn label(self) -> &'static str {
        match self {
            ReportOutcome::Completed => "completed",
            ReportOutcome::Aborted => "aborted",
            ReportOutcome::RolledBack => "rolled back",
            ReportOutcome::Unfinished => "unfinished (the journal ends mid-session)",
        }
    }
}

/// One node at the end of the session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeAfter {
    pub node: String,
    /// The version its probes last reported.
    pub version: Option<String>,
    /// Its health probes' last verdict.
    pub healthy: Option<bool>,
    pub read_only: Option<bool>,
    /// The balancer's view: `ready UP, serving`.
    pub balancer: Option<String>,
    /// The rollback's verification of this node, when one ran: held, or the first failure
    /// with the product's reason.
    pub verified: Option<bool>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resume {
    pub t_ms: u64,
    pub operator: String,
    /// How long flightdeck was down before this resume (wall clock), when known.
    pub down_ms: Option<u64>,
}

/// `start + t_ms` as RFC 3339, or None when it is not a date RFC 3339 can write (past the
/// year 9999, or beyond what the system's time type holds): journals are outside data.
pub fn wall_clock(start: std::time::SystemTime, t_ms: u64) -> Option<String> {
    // 9999-12-31T23:59:59Z, the last second RFC 3339 (and humantime) can write.
    const LAST: u64 = 253_402_300_799;
    let when = start.checked_add(std::time::Duration::from_millis(t_ms))?;
    let secs = when.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    (secs <= LAST).then(|| humantime::format_rfc3339_seconds(when).to_string())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Joined {
    pub t_ms: u64,
    /// The real user (from the kernel); the shown name for journals that predate it.
    pub name: String,
    /// How the operator showed in the session, when that was not just the user name.
    pub shown_as: Option<String>,
    pub driver: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriverChange {
    pub t_ms: u64,
    pub name: String,
    /// A takeover's journaled reason (None for a handover the driver granted).
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepReport {
    /// 1-based, as the cockpit shows it.
    pub number: usize,
    pub key: String,
    pub title: String,
    pub node: Option<String>,
    pub irreversible: bool,
    /// When its action first started (ms since the session started); None if it never ran.
    pub started_ms: Option<u64>,
    /// The step's status at the end of the journal (`StepStatus::label`).
    pub status: String,
    /// Time its action ran, `ActionStarted` to `ActionFinished`, summed over attempts.
    pub duration_ms: u64,
    /// Time its undo ran, likewise.
    pub undo_ms: u64,
    /// Runs of the action (retries are `attempts - 1`).
    pub attempts: u32,
    pub retries: u32,
    pub undos: u32,
    /// Who confirmed each run: a name, or `auto (--yes)` / `auto (confirm = none)`.
    pub confirmed_by: Vec<String>,
    /// Runs left out of `confirmed_by` (more than [`KEEP_PER_STEP`] at each end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed_by_left_out: Option<LeftOut>,
    /// Two-person rule approvals, in order.
    pub approved_by: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_by_left_out: Option<LeftOut>,
    pub skipped_by: Option<String>,
    /// An optional step's decision: `run` or `skip`, who, and why (or `--yes`'s default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional_choice: Option<String>,
    pub marked_done_by: Option<String>,
    /// Every run that did not pass (action or undo).
    pub failures: Vec<Failure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures_left_out: Option<LeftOut>,
    /// An action that was running when the journal (or a session before a resume) stopped.
    pub interrupted: u32,
}

impl StepReport {
    /// Runs that did not pass, listed or left out.
    pub fn failure_count(&self) -> u64 {
        (self.failures.len() as u64).saturating_add(self.failures_left_out.map_or(0, |l| l.count))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub t_ms: u64,
    pub phase: Phase,
    pub attempt: u32,
    pub verdict: Verdict,
    pub detail: String,
}

/// One operator decision (or one the confirm policy took), as journaled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub t_ms: u64,
    /// A user name, or `auto (--yes)` / `auto (confirm = none)` / `--on-failure rollback`.
    pub by: String,
    /// 1-based step, when the decision is about one.
    pub step: Option<usize>,
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultReport {
    pub fault: String,
    /// The step it waited for (number and key); absent when in force from the lab's start.
    pub step: Option<usize>,
    pub step_key: Option<String>,
    /// At the step's undo (`@undo=`: during a rollback) rather than its action.
    pub undo: bool,
    /// When it took effect (ms since the session started); absent if its step never started.
    pub fired_ms: Option<u64>,
    /// Why the lab refused it.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoteReport {
    pub t_ms: u64,
    pub by: String,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WindowReport {
    pub total_ms: u64,
    /// How many separate times it opened.
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeReport {
    pub probe: String,
    pub node: Option<String>,
    /// Samples counted by the journaled summaries.
    pub samples: u64,
    /// Failed samples counted by the journaled summaries.
    pub failures: u64,
    /// Times the probe turned from passing to failing.
    pub went_failing: u32,
    /// Times it passed again after failing and kept passing — for [`RECOVERY_HOLD_MS`], or
    /// until the session ended.
    pub recovered: u32,
    /// Times it passed again but failed again within [`RECOVERY_HOLD_MS`] (a flap, not a
    /// recovery).
    pub relapsed: u32,
}

/// How long a probe must keep passing after a failure for the report to call it recovered.
pub const RECOVERY_HOLD_MS: u64 = 30_000;

/// Build the report of a journal read whole.
pub fn build(journal: &Journal) -> Report {
    let mut fold = ReportFold::new(&journal.header);
    for e in &journal.events {
        fold.push(e);
    }
    fold.finish(&journal.header, journal.torn_tail.is_some())
}

/// What the report counts per step while the events go by (joined with the plan at the end).
#[derive(Debug, Clone)]
struct StepTally {
    started_ms: Option<u64>,
    duration_ms: u64,
    undo_ms: u64,
    attempts: u32,
    undos: u32,
    confirmed_by: Kept<String>,
    approved_by: Kept<String>,
    skipped_by: Option<String>,
    optional_choice: Option<String>,
    marked_done_by: Option<String>,
    failures: Kept<Failure>,
    interrupted: u32,
    /// The action running now: (phase, started at).
    running: Option<(Phase, u64)>,
}

impl Default for StepTally {
    fn default() -> Self {
        StepTally {
            started_ms: None,
            duration_ms: 0,
            undo_ms: 0,
            attempts: 0,
            undos: 0,
            confirmed_by: Kept::new(KEEP_PER_STEP),
            approved_by: Kept::new(KEEP_PER_STEP),
            skipped_by: None,
            optional_choice: None,
            marked_done_by: None,
            failures: Kept::new(KEEP_PER_STEP),
            interrupted: 0,
            running: None,
        }
    }
}

/// The report folded one event at a time, so `report` reads a journal in one streaming pass:
/// what it holds grows with the plan, the nodes and probes, and the notes and overrides people
/// wrote, never with the journal's length: the lists that grow with it (decisions, joins, a
/// step's runs) keep their first and last items and count the rest ([`Kept`]). The state comes from the same `SessionState::apply` the
/// live session used; each decision is judged against the state just before its event.
#[derive(Debug, Clone)]
pub struct ReportFold {
    state: SessionState,
    steps: Vec<StepTally>,
    resumes: Kept<Resume>,
    joined: Kept<Joined>,
    driver_changes: Kept<DriverChange>,
    decisions: Kept<Decision>,
    /// Who drives now (decisions without a `by` of their own are theirs).
    driver: String,
    probes: Vec<ProbeReport>,
    /// Index of `probes` by probe, then node: a search per sample would cost O(probes), and
    /// a key by both would be a new pair of strings per sample.
    probe_index: HashMap<String, HashMap<Option<String>, usize>>,
    /// When a probe last passed again after failing, per `probes` index, not yet judged.
    pending_recovery: HashMap<usize, u64>,
    finished_ms: Option<u64>,
    last_ms: Option<u64>,
    has_traffic: bool,
    /// An abort with rollback was asked for.
    rollback_asked: bool,
    events: usize,
}

impl ReportFold {
    /// An empty fold for a journal with this header.
    pub fn new(header: &journal::Header) -> Self {
        ReportFold {
            state: SessionState::without_screen(),
            steps: Vec::new(),
            resumes: Kept::new(KEEP),
            joined: Kept::new(KEEP),
            driver_changes: Kept::new(KEEP),
            decisions: Kept::new(KEEP),
            driver: header.operator.clone(),
            probes: Vec::new(),
            probe_index: HashMap::new(),
            pending_recovery: HashMap::new(),
            finished_ms: None,
            last_ms: None,
            has_traffic: false,
            rollback_asked: false,
            events: 0,
        }
    }

    /// Fold one event.
    pub fn push(&mut self, st: &Stamped) {
        let t = st.t_ms;
        self.events += 1;
        self.last_ms = Some(t);
        // The state is still the session as it was before this event: what the operator saw
        // when deciding.
        let decided = decision(&self.state, &st.event, &self.driver);
        match &st.event {
            Event::OperatorJoined {
                name,
                driver: true,
                user,
                ..
            } => self.driver = user.clone().unwrap_or_else(|| name.clone()),
            Event::DriverChanged { name, .. } => self.driver = name.clone(),
            Event::SessionStarted { operator, plan, .. } => {
                self.driver = operator.clone();
                self.steps = vec![StepTally::default(); plan.steps.len()];
            }
            Event::Finished { .. } => {
                self.finished_ms.get_or_insert(t);
            }
            Event::Traffic { .. } => self.has_traffic = true,
            Event::AbortRequested { rollback: true, .. } => self.rollback_asked = true,
            Event::Confirmed { step, by, auto } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    // The decision names who in the same words (`auto (policy)` or the
                    // name): made once, not again for the step.
                    s.confirmed_by.push(match &decided {
                        Some(d) => d.by.clone(),
                        None if *auto => format!("auto ({by})"),
                        None => by.clone(),
                    });
                }
            }
            _ => {}
        }
        if let Some(d) = decided {
            self.decisions.push(Decision { t_ms: t, ..d });
        }
        self.state.apply(st);
        // Probes go on sampling after the end; what they saw then is not the session's.
        if self.finished_ms.is_some()
            && matches!(
                st.event,
                Event::ProbeChanged { .. } | Event::ProbeSummary { .. }
            )
        {
            return;
        }
        match &st.event {
            Event::Resumed {
                operator, down_ms, ..
            } => {
                for s in &mut self.steps {
                    if s.running.take().is_some() {
                        s.interrupted += 1;
                    }
                }
                self.resumes.push(Resume {
                    t_ms: t,
                    operator: operator.clone(),
                    down_ms: *down_ms,
                });
            }
            Event::Approved { step, by, .. } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    s.approved_by.push(by.clone());
                }
            }
            Event::ActionStarted { step, phase, .. } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    match phase {
                        Phase::Do => {
                            s.attempts += 1;
                            s.started_ms.get_or_insert(t);
                        }
                        Phase::Undo => s.undos += 1,
                    }
                    s.running = Some((*phase, t));
                }
            }
            Event::ActionFinished {
                step,
                phase,
                attempt,
                verdict,
                detail,
            } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    // A finish without a start is an undo marked done by hand: no run time.
                    if let Some((_, started)) = s.running.take() {
                        let ran = t.saturating_sub(started);
                        match phase {
                            Phase::Do => s.duration_ms += ran,
                            Phase::Undo => s.undo_ms += ran,
                        }
                    }
                    if *verdict != Verdict::Passed {
                        s.failures.push(Failure {
                            t_ms: t,
                            phase: *phase,
                            attempt: *attempt,
                            verdict: *verdict,
                            detail: detail.clone(),
                        });
                    }
                }
            }
            Event::Skipped { step, by } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    s.skipped_by = Some(by.clone());
                }
            }
            Event::OptionalChosen {
                step,
                choice,
                by,
                reason,
                ..
            } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    s.optional_choice = Some(crate::engine::event::optional_choice_words(
                        *choice,
                        by,
                        reason.as_deref(),
                    ));
                }
            }
            Event::MarkedDone { step, by, .. } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    s.marked_done_by = Some(by.clone());
                }
            }
            Event::OperatorJoined {
                name, driver, user, ..
            } => self.joined.push(Joined {
                t_ms: t,
                name: user.clone().unwrap_or_else(|| name.clone()),
                shown_as: user.as_ref().filter(|u| *u != name).map(|_| name.clone()),
                driver: *driver,
            }),
            Event::DriverChanged { name, reason, .. } => self.driver_changes.push(DriverChange {
                t_ms: t,
                name: name.clone(),
                reason: reason.clone(),
            }),
            Event::ProbeChanged {
                probe, node, ok, ..
            } => {
                let i = self.probe_entry(probe, node);
                if *ok {
                    self.pending_recovery.entry(i).or_insert(t);
                } else {
                    let p = &mut self.probes[i];
                    p.went_failing += 1;
                    if let Some(since) = self.pending_recovery.remove(&i) {
                        if t.saturating_sub(since) >= RECOVERY_HOLD_MS {
                            p.recovered += 1;
                        } else {
                            p.relapsed += 1;
                        }
                    }
                }
            }
            Event::ProbeSummary {
                probe,
                node,
                count,
                failures,
                ..
            } => {
                let i = self.probe_entry(probe, node);
                let p = &mut self.probes[i];
                p.samples += u64::from(*count);
                p.failures += u64::from(*failures);
            }
            _ => {}
        }
    }

    /// The index in `probes` of (probe, node), added in the order first seen.
    fn probe_entry(&mut self, probe: &str, node: &Option<String>) -> usize {
        if let Some(i) = self.probe_index.get(probe).and_then(|by| by.get(node)) {
            return *i;
        }
        self.probes.push(ProbeReport {
            probe: probe.to_string(),
            node: node.clone(),
            samples: 0,
            failures: 0,
            went_failing: 0,
            recovered: 0,
            relapsed: 0,
        });
        let i = self.probes.len() - 1;
        self.probe_index
            .entry(probe.to_string())
            .or_default()
            .insert(node.clone(), i);
        i
    }

    /// The report, given the journal's header and whether it ended in a torn line.
    pub fn finish(mut self, header: &journal::Header, torn_tail: bool) -> Report {
        // A recovery still holding at the end of the session lasted.
        for i in self.pending_recovery.keys() {
            self.probes[*i].recovered += 1;
        }
        let state = self.state;
        let end_ms = self.finished_ms.or(self.last_ms).unwrap_or(0);
        let steps: Vec<StepReport> = state
            .plan
            .steps
            .iter()
            .zip(&state.steps)
            .zip(self.steps)
            .enumerate()
            .map(|(i, ((p, r), tally))| {
                let (confirmed_by, confirmed_by_left_out) = tally.confirmed_by.into_parts();
                let (approved_by, approved_by_left_out) = tally.approved_by.into_parts();
                let (failures, failures_left_out) = tally.failures.into_parts();
                StepReport {
                    number: i + 1,
                    key: p.key.clone(),
                    title: p.title.clone(),
                    node: p.node.clone(),
                    irreversible: p.irreversible.is_some(),
                    started_ms: tally.started_ms,
                    status: r.status.label().to_string(),
                    duration_ms: tally.duration_ms,
                    undo_ms: tally.undo_ms,
                    attempts: tally.attempts,
                    retries: tally.attempts.saturating_sub(1),
                    undos: tally.undos,
                    confirmed_by,
                    confirmed_by_left_out,
                    approved_by,
                    approved_by_left_out,
                    skipped_by: tally.skipped_by,
                    optional_choice: tally.optional_choice,
                    marked_done_by: tally.marked_done_by,
                    failures,
                    failures_left_out,
                    // Still running at the end of the journal: interrupted too.
                    interrupted: tally.interrupted + u32::from(tally.running.is_some()),
                }
            })
            .collect();
        let outcome = match state.mode {
            Mode::Finished(Outcome::Completed) => ReportOutcome::Completed,
            Mode::Finished(Outcome::Aborted) => ReportOutcome::Aborted,
            Mode::Finished(Outcome::RolledBack) => ReportOutcome::RolledBack,
            Mode::Forward | Mode::RollingBack => ReportOutcome::Unfinished,
        };
        let outcome_text = match outcome {
            // A journal that ends at a failed undo (a headless run stops there; so does a
            // cockpit that was closed) ends with its rollback stopped: said as every view says it.
            ReportOutcome::Unfinished if state.mode == Mode::RollingBack => {
                match crate::engine::outcome::undo_stopped(&state) {
                    Some(_) => crate::engine::outcome::outcome_text(&state),
                    None => outcome.label().to_string(),
                }
            }
            ReportOutcome::Unfinished => outcome.label().to_string(),
            _ => crate::engine::outcome::outcome_text(&state),
        };
        let nodes_after = nodes_after(&state);
        let (resumes, resumes_left_out) = self.resumes.into_parts();
        let (joined, joined_left_out) = self.joined.into_parts();
        let (driver_changes, driver_changes_left_out) = self.driver_changes.into_parts();
        let (decisions, decisions_left_out) = self.decisions.into_parts();
        let plan = &state.plan;
        Report {
            procedure: if plan.procedure.is_empty() {
                header.procedure.clone()
            } else {
                plan.procedure.clone()
            },
            product: plan.product.clone(),
            target: if plan.target.is_empty() {
                header.target.clone()
            } else {
                plan.target.clone()
            },
            from_version: plan.from_version.clone(),
            to_version: plan.to_version.clone(),
            hops: plan.hops.clone(),
            started_at: header.started_at.clone(),
            journal_format: header.flightdeck_journal,
            flightdeck_version: header.flightdeck_version.clone(),
            finished_at: humantime::parse_rfc3339_weak(header.started_at.trim())
                .ok()
                .and_then(|t| wall_clock(t, end_ms)),
            duration_ms: end_ms,
            outcome,
            outcome_text,
            // A rollback was asked for: an abort with rollback (the operator's, a script's, or
            // `--on-failure rollback`), or the session is rolling back or ended rolled back.
            rollback_verified: (self.rollback_asked
                || matches!(
                    state.mode,
                    Mode::RollingBack | Mode::Finished(Outcome::RolledBack)
                ))
            .then(|| crate::engine::outcome::rollback_verified(&state)),
            rollback_verification: state.verification.clone(),
            nodes_after,
            rollback_override: state.rollback_override.clone(),
            guard_overrides: state.guard_override_log.clone(),
            rollback_stopped: state.rollback_stopped.clone(),
            operator: header.operator.clone(),
            auto: state.auto,
            resumes,
            resumes_left_out,
            joined,
            joined_left_out,
            driver_changes,
            driver_changes_left_out,
            steps,
            decisions,
            decisions_left_out,
            notes: state
                .notes
                .iter()
                .map(|n| NoteReport {
                    t_ms: n.t_ms,
                    by: n.by.clone(),
                    text: n.text.clone(),
                })
                .collect(),
            faults: state
                .faults
                .iter()
                .map(|f| FaultReport {
                    fault: f.fault.clone(),
                    step: f.step.map(|s| s + 1),
                    step_key: f
                        .step
                        .and_then(|s| state.plan.steps.get(s))
                        .map(|s| s.key.clone()),
                    undo: f.phase == Phase::Undo,
                    fired_ms: f.fired_ms,
                    error: f.error.clone(),
                })
                .collect(),
            read_only: WindowReport {
                total_ms: state.read_only.total_at(end_ms),
                count: state.read_only.count,
            },
            no_ready_backend: WindowReport {
                total_ms: state.no_ready.total_at(end_ms),
                count: state.no_ready.count,
            },
            probes: self.probes,
            traffic: self.has_traffic.then_some(state.traffic_total),
            events: self.events,
            torn_tail,
        }
    }
}

/// Each node's last known state: probe facts, the balancer, the rollback's verification.
fn nodes_after(state: &SessionState) -> Vec<NodeAfter> {
    // A rollback that stopped at a failed undo never verified the node that undo was about.
    let stopped = crate::engine::outcome::stopped_undo(state)
        .filter(|_| state.rollback_asked && state.verification.is_none());
    state
        .nodes
        .iter()
        .map(|n| {
            let name = &n.node.name;
            let backend = state
                .lb
                .iter()
                .find(|b| b.node.as_deref().unwrap_or(&b.server) == name);
            let verdict = state
                .verification
                .as_ref()
                .and_then(|v| v.nodes.iter().find(|x| x.node.as_ref() == Some(name)));
            let after = NodeAfter {
                node: name.clone(),
                version: n.version().map(str::to_string),
                healthy: n.health,
                read_only: n.read_only(),
                balancer: backend.map(|b| {
                    format!(
                        "{} {}, {}",
                        b.membership,
                        b.health,
                        if b.serving { "serving" } else { "not serving" }
                    )
                }),
                verified: verdict.map(|v| v.ok),
                reason: verdict.and_then(|v| {
                    v.checks
                        .iter()
                        .find(|c| !c.ok)
                        .map(|c| format!("{}: {}", c.what, c.detail))
                }),
            };
            match &stopped {
                Some(u) if u.node.as_ref() == Some(name) => NodeAfter {
                    verified: Some(false),
                    reason: Some(u.text.clone()),
                    ..after
                },
                _ => after,
            }
        })
        .collect()
}

/// The decision `event` records, judged against the session as it was just before it
/// (`before`), with `driver` driving; None for events that decide nothing. `t_ms` is left 0.
fn decision(before: &SessionState, event: &Event, driver: &str) -> Option<Decision> {
    // Written straight into the decision's text (this runs for every confirmation of a
    // million-event journal): no string of its own.
    let title = |step: usize| Title(before.plan.steps.get(step).map(|p| p.title.as_str()));
    let d = |by: &str, step: Option<usize>, what: String| Decision {
        t_ms: 0,
        by: by.to_string(),
        step: step.map(|s| s + 1),
        what,
    };
    match event {
        Event::Confirmed { step, by, auto } => {
            let by = if *auto {
                format!("auto ({by})")
            } else {
                by.clone()
            };
            let what = match before.prompt.filter(|p| p.step == *step).map(|p| p.kind) {
                Some(crate::engine::state::PromptKindTag::Undo) => {
                    format!("confirmed the undo of step {}{}", step + 1, title(*step))
                }
                _ => format!("confirmed step {}{}", step + 1, title(*step)),
            };
            Some(d(&by, Some(*step), what))
        }
        Event::Approved {
            step,
            by,
            confirm: false,
            ..
        } => Some(d(
            by,
            Some(*step),
            format!("approved step {} (two-person rule)", step + 1),
        )),
        Event::Declined { step, by } => Some(d(
            by,
            Some(*step),
            format!("held step {}{}", step + 1, title(*step)),
        )),
        Event::Skipped { step, by } => Some(d(
            by,
            Some(*step),
            format!("skipped step {}{}", step + 1, title(*step)),
        )),
        Event::MarkedDone { step, by, phase } => {
            let what = match phase {
                Phase::Do => format!("marked step {} done by hand", step + 1),
                Phase::Undo => format!("marked the undo of step {} done by hand", step + 1),
            };
            Some(d(by, Some(*step), what))
        }
        // A new attempt of a step that ran before is a retry (the driver's `r`).
        Event::ActionStarted {
            step,
            phase: Phase::Do,
            attempt,
        } if *attempt > 1 => Some(d(
            driver,
            Some(*step),
            format!("retried step {} (attempt {attempt})", step + 1),
        )),
        // Outside a rollback an undo prompt opens only when the driver asked for it (`u`).
        Event::PromptOpened {
            step,
            prompt: crate::engine::event::PromptKind::Undo,
            ..
        } if before.mode == Mode::Forward => Some(d(
            driver,
            Some(*step),
            format!("asked to undo step {}{}", step + 1, title(*step)),
        )),
        Event::AbortRequested {
            by,
            rollback,
            reason,
        } => {
            let how = if *rollback {
                "aborted, rolling back"
            } else {
                "aborted, keeping what was done"
            };
            let why = match reason {
                Some(r) => format!(" because: {r}"),
                None => " (no reason given)".to_string(),
            };
            Some(d(
                by,
                None,
                format!("{how}{why} — {}", abort_context(before)),
            ))
        }
        Event::DriverChanged {
            name,
            reason: Some(why),
            ..
        } => Some(d(name, None, format!("took control: {why}"))),
        Event::OperatorRemoved { id, by, .. } => {
            let who = before
                .operators
                .iter()
                .find(|o| o.id == *id)
                .map_or_else(|| format!("operator {id}"), |o| o.name.clone());
            Some(d(by, None, format!("removed {who} from the session")))
        }
        _ => None,
    }
}

/// A step's title as a decision's text shows it after the step's number: ` (title)`, or
/// nothing for a step the plan does not have.
struct Title<'a>(Option<&'a str>);

impl std::fmt::Display for Title<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(t) => write!(f, " ({t})"),
            None => Ok(()),
        }
    }
}

/// What was on screen when an abort was asked for: the reason it was decided in.
fn abort_context(before: &SessionState) -> String {
    use crate::engine::state::PromptKindTag;
    let detail = |step: usize| {
        before
            .steps
            .get(step)
            .and_then(|r| r.detail.clone())
            .filter(|d| !d.is_empty())
            .map(|d| format!(": {d}"))
            .unwrap_or_default()
    };
    if let Some(step) = before.running() {
        return format!("while step {} ran (it was stopped)", step + 1);
    }
    match before.prompt {
        Some(p) if p.kind == PromptKindTag::Failed => {
            format!("step {} had failed{}", p.step + 1, detail(p.step))
        }
        Some(p) if p.kind == PromptKindTag::Interrupted => {
            format!("step {} was interrupted", p.step + 1)
        }
        Some(p) if p.kind == PromptKindTag::Undo => {
            format!("at the undo of step {}", p.step + 1)
        }
        Some(p) => format!("at step {}'s prompt", p.step + 1),
        None => match before.cursor() {
            Some(c) => format!("before step {}", c + 1),
            None => "with every step done".to_string(),
        },
    }
}

/// Output format of `flightdeck report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReportFormat {
    #[default]
    Md,
    Json,
}

impl FromStr for ReportFormat {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "md" | "markdown" => Ok(ReportFormat::Md),
            "json" => Ok(ReportFormat::Json),
            other => Err(ReportError::Format(other.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("unknown report format {0:?}: use md or json")]
    Format(String),
}

/// Read a journal and render its report.
pub fn render(path: &Path, format: ReportFormat) -> Result<String, ReportError> {
    render_with(path, format, journal::ReadOptions::default())
}

/// `render` with journal read options (`--skip-bad-lines`): lines left out are named first.
pub fn render_with(
    path: &Path,
    format: ReportFormat,
    opts: journal::ReadOptions,
) -> Result<String, ReportError> {
    // One streaming pass: memory does not grow with the journal's length. `stream` refuses a
    // damaged journal only at its end, and then nothing folded is used.
    let mut fold: Option<ReportFold> = None;
    // The report shows no output: its text is checked, not copied.
    let outline = journal::stream_with(path, opts, journal::OutputText::Checked, |header, e| {
        fold.get_or_insert_with(|| ReportFold::new(header)).push(&e)
    })?;
    for (line, why) in &outline.skipped {
        crate::eprintln_clean!(
            "flightdeck report: {}:{line}: left out: {why}",
            path.display()
        );
    }
    let fold = fold.unwrap_or_else(|| ReportFold::new(&outline.header));
    let report = fold.finish(&outline.header, outline.torn_tail.is_some());
    Ok(match format {
        ReportFormat::Md => markdown(&report),
        ReportFormat::Json => json(&report),
    })
}

/// `flightdeck report JOURNAL [--format md|json]`: the report on stdout; an unreadable file or
/// one that is not a journal is an error on stderr and exit code 2.
pub fn run(path: &Path, format: ReportFormat, opts: journal::ReadOptions) -> ExitCode {
    match render_with(path, format, opts) {
        Ok(text) => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) is not worth a panic or an error code.
            let _ = out.write_all(text.as_bytes());
            if !text.ends_with('\n') {
                let _ = out.write_all(b"\n");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            crate::eprintln_clean!("flightdeck report: {e}");
            ExitCode::from(2)
        }
    }
}
