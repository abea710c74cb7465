//! Deciding: operators' commands checked against state and role, and the engine moving the
//! session on by itself where policy allows (`confirm = "none"`, `--yes`).

use super::*;
use crate::engine::action::{execute, ActionCtx};
use crate::engine::event::{Event, Outcome, Phase, PromptKind, Verdict};
use crate::engine::state::{Mode, PromptKindTag, StepStatus};
use crate::engine::{Command, Rejected};
use crate::plan::Confirm;
use crate::procedure::model::OptionalChoice;

/// How a rollback journals a step with no undo action that it passed without asking.
pub const NOTHING_TO_UNDO: &str =
    "nothing to undo (the step has no undo action): passed without a prompt";
/// How an undo that was asked for, of a step with no undo action, is journaled.
const NOTHING_TO_COMPENSATE: &str = "no undo action: nothing to compensate";

/// Longest note, reason or phrase accepted, in characters (a remark, not a log dump).
pub const MAX_NOTE_CHARS: usize = 4000;
/// Notes a user may write in a row before the rate applies...
pub const NOTE_BURST: u32 = 10;
/// ...and how often one more is allowed after that.
pub const NOTE_REFILL: std::time::Duration = std::time::Duration::from_secs(6);
/// Times a user may join in a row (each join and leave is journaled)...
pub const JOIN_BURST: u32 = 20;
/// ...and how often once more after that: a flaky link reconnects far less often.
pub const JOIN_REFILL: std::time::Duration = std::time::Duration::from_secs(3);
/// Requests for control a user may make in a row (each is journaled, and each new connection
/// is a new operator who has not asked yet)...
pub const CONTROL_ASK_BURST: u32 = 5;
/// ...and how often once more after that.
pub const CONTROL_ASK_REFILL: std::time::Duration = std::time::Duration::from_secs(10);
/// Hand-overs of control a user may make in a row. Each is a decision (journaled, fsynced)
/// shown in every cockpit, and a user with two connections could pass control between them
/// without end. People hand over a few times in a session; ten in a row is far past that...
pub const GRANT_BURST: u32 = 10;
/// ...and how often once more after that.
pub const GRANT_REFILL: std::time::Duration = std::time::Duration::from_secs(10);

impl Engine {
    /// Check a command against the state and the sender's role; emit what it causes.
    pub(super) fn command(
        &mut self,
        from: u64,
        cmd: Command,
    ) -> Result<Result<(), Rejected>, EngineError> {
        let reject = |s: String| Ok(Err(Rejected(s)));
        if from != SYSTEM && !self.state.operators.iter().any(|o| o.id == from) {
            return reject("you are no longer in this session".into());
        }
        let by = self.name_of(from);
        let is_driver = from == SYSTEM
            || self
                .state
                .operators
                .iter()
                .any(|o| o.id == from && o.driver);
        if !is_driver && !cmd.observer_may() {
            return reject(match self.state.driver() {
                Some(d) => format!(
                    "only the driver ({}) can do that; press c to ask for control",
                    d.name
                ),
                None => "nobody drives: take control first".into(),
            });
        }
        // A step number is the sender's: one past the plan is no step, whatever it is (and
        // `step + 1` in a refusal must not overflow on `usize::MAX`).
        if let Some(step) = cmd.step() {
            let len = self.state.steps.len();
            if step >= len {
                return reject(match len {
                    0 => format!("no step {}: this plan has none", step.saturating_add(1)),
                    _ => format!(
                        "no step {}: this plan's steps are 1 to {len}",
                        step.saturating_add(1)
                    ),
                });
            }
        }
        // Every text an operator sends is bounded like a note, and refused (never cut) when
        // longer: the 64 KiB line limit alone let a reason fill the journal and every cockpit.
        for (what, text) in cmd.texts() {
            let chars = text.trim().chars().count();
            if chars > MAX_NOTE_CHARS {
                return reject(format!(
                    "{what} is at most {MAX_NOTE_CHARS} characters (this one has {chars}); \
                     shorten it, or attach a file elsewhere"
                ));
            }
        }
        if self.state.is_finished()
            && !matches!(
                cmd,
                Command::Note { .. }
                    | Command::RequestControl
                    | Command::GrantControl { .. }
                    | Command::TakeControl { .. }
                    | Command::RemoveOperator { .. }
                    | Command::Alive
            )
        {
            return reject("the session has finished".into());
        }
        match cmd {
            Command::Choose {
                prompt,
                choice,
                reason,
            } => {
                let Some(open) = self.state.prompt.filter(|p| p.id == prompt) else {
                    return reject("that prompt is no longer open".into());
                };
                let step = open.step;
                if open.kind != PromptKindTag::Run || !self.state.awaits_choice(step) {
                    return reject(format!("step {} has no choice to make", step + 1));
                }
                let reason = reason
                    .map(|r| r.trim().to_string())
                    .filter(|r| !r.is_empty());
                self.emit(Event::OptionalChosen {
                    step,
                    choice,
                    by: by.clone(),
                    uid: self.uid_of(from),
                    reason,
                    auto: false,
                })?;
                let phrase_step =
                    matches!(self.state.plan.steps[step].confirm, Confirm::Phrase { .. });
                return match choice {
                    // The phrase is still to be typed: the prompt stays open for it.
                    OptionalChoice::Run if phrase_step => Ok(Ok(())),
                    OptionalChoice::Run => self.driver_confirms(from, step, by, Phase::Do),
                    OptionalChoice::Skip => {
                        self.emit(Event::Skipped { step, by })?;
                        Ok(Ok(()))
                    }
                };
            }
            Command::Confirm { prompt, phrase } => {
                let Some(open) = self.state.prompt.filter(|p| p.id == prompt) else {
                    return reject("that prompt is no longer open".into());
                };
                let step = open.step;
                if open.kind == PromptKindTag::Run && self.state.awaits_choice(step) {
                    return reject(format!("step {} is optional: choose run or skip", step + 1));
                }
                match open.kind {
                    PromptKindTag::Run => {
                        if let Confirm::Phrase { phrase: want } =
                            &self.state.plan.steps[step].confirm
                        {
                            if phrase.as_deref() != Some(want.as_str()) {
                                return reject(format!("type the phrase exactly: {want}"));
                            }
                        }
                        return self.driver_confirms(from, step, by, Phase::Do);
                    }
                    PromptKindTag::Undo => {
                        return self.driver_confirms(from, step, by, Phase::Undo)
                    }
                    PromptKindTag::Failed | PromptKindTag::Interrupted => {
                        return reject("choose retry, undo, skip or abort".into())
                    }
                }
            }
            Command::Approve { prompt } => {
                let Some(open) = self.state.prompt.filter(|p| p.id == prompt) else {
                    return reject("that prompt is no longer open".into());
                };
                if !matches!(open.kind, PromptKindTag::Run | PromptKindTag::Undo) {
                    return reject("there is nothing to approve".into());
                }
                return self.approve(from, open.step, by, is_driver);
            }
            Command::Decline { prompt } => {
                let Some(open) = self.state.prompt.filter(|p| p.id == prompt) else {
                    return reject("that prompt is no longer open".into());
                };
                self.emit(Event::Declined {
                    step: open.step,
                    by,
                })?;
            }
            Command::Act => {
                if self.state.prompt.is_some() || self.state.running().is_some() {
                    return reject("a prompt is already open or an action is running".into());
                }
                match self.next_prompt() {
                    Some((step, kind)) => self.open_prompt(step, kind)?,
                    None => return reject("nothing to act on".into()),
                }
            }
            Command::Retry { step } => {
                let Some(s) = self.state.steps.get(step) else {
                    return reject(format!("no step {}", step.saturating_add(1)));
                };
                if let Some(why) = self.orphan_blocks(step) {
                    return reject(why);
                }
                let phase = match s.status {
                    StepStatus::Failed => Phase::Do,
                    StepStatus::Interrupted => s.phase,
                    StepStatus::UndoFailed => Phase::Undo,
                    other => {
                        return reject(format!(
                            "step {} is {}; only a failed or interrupted step can be retried",
                            step + 1,
                            other.label()
                        ))
                    }
                };
                if self.state.running().is_some() {
                    return reject("an action is running".into());
                }
                if let Some(why) = self.guard_refuses(step, phase, &by)? {
                    return reject(why);
                }
                if self.state.plan.steps[step].approvals > 1 {
                    // A retry runs the action again: it needs its two people again. A fresh
                    // prompt clears the earlier approvals; the driver's retry is their confirm.
                    let kind = match phase {
                        Phase::Do => PromptKind::Run,
                        Phase::Undo => PromptKind::Undo,
                    };
                    if self.uid_of(from).is_some() {
                        self.open_prompt(step, kind)?;
                    }
                    return self.driver_confirms(from, step, by, phase);
                }
                self.emit(Event::Confirmed {
                    step,
                    by,
                    auto: false,
                })?;
                self.start_action(step, phase)?;
            }
            Command::Skip { step } => {
                if let Some(why) = self.orphan_blocks(step) {
                    return reject(why);
                }
                let ok_here = match self.state.mode {
                    Mode::Forward => self.state.cursor() == Some(step),
                    Mode::RollingBack => self.state.rollback_candidate() == Some(step),
                    Mode::Finished(_) => false,
                };
                if !ok_here || self.state.running() == Some(step) {
                    return reject(format!(
                        "step {} is not the one waiting; only the current step can be skipped",
                        step + 1
                    ));
                }
                self.emit(Event::Skipped { step, by })?;
            }
            Command::MarkDone { step } => {
                let Some(s) = self.state.steps.get(step) else {
                    return reject(format!("no step {}", step.saturating_add(1)));
                };
                if let Some(why) = self.orphan_blocks(step) {
                    return reject(why);
                }
                match (s.status, s.phase) {
                    (StepStatus::Interrupted | StepStatus::Failed, Phase::Do) => {
                        self.emit(Event::MarkedDone {
                            step,
                            by,
                            phase: Phase::Do,
                        })?
                    }
                    // Closes the prompt too, so a rollback goes on to the next undo.
                    (StepStatus::Interrupted | StepStatus::UndoFailed, Phase::Undo) => {
                        self.emit(Event::MarkedDone {
                            step,
                            by,
                            phase: Phase::Undo,
                        })?
                    }
                    (other, _) => {
                        return reject(format!(
                            "step {} is {}; only an interrupted or failed step can be marked done",
                            step + 1,
                            other.label()
                        ))
                    }
                }
            }
            Command::Undo { step } => {
                if let Some(why) = self.orphan_blocks(step) {
                    return reject(why);
                }
                if let Some(why) = self.state.undo_refusal(step) {
                    return reject(why);
                }
                self.open_prompt(step, PromptKind::Undo)?;
            }
            Command::Abort { rollback, reason } => {
                if self.state.aborting || (rollback && self.state.mode == Mode::RollingBack) {
                    return reject("an abort is already under way".into());
                }
                // Past the point of no return a full rollback loses what happened since: the
                // engine refuses it, whoever asks (the cockpit, a socket client, a script).
                if rollback && self.state.mode == Mode::Forward {
                    if let Some(nr) = self.state.no_return(self.now_ms()) {
                        return reject(nr.refusal());
                    }
                }
                let reason = reason.map(|r| self.secrets.redact(&one_line(&r)));
                self.abort(by, rollback, reason.filter(|r| !r.is_empty()))?;
            }
            Command::RollbackPastNoReturn { phrase, reason } => {
                if self.state.aborting || self.state.mode == Mode::RollingBack {
                    return reject("an abort is already under way".into());
                }
                let Some(nr) = self.state.no_return(self.now_ms()) else {
                    return reject(
                        "the session is not past the point of no return: abort with rollback \
                         (no override needed)"
                            .into(),
                    );
                };
                if phrase.trim() != nr.phrase {
                    return reject(format!(
                        "type the phrase exactly: {} ({})",
                        nr.phrase, nr.loss
                    ));
                }
                let reason = one_line(&reason);
                if reason.is_empty() {
                    return reject(
                        "say why you roll back past the point of no return (it is journaled \
                         with your name)"
                            .into(),
                    );
                }
                let reason = self.secrets.redact(&reason);
                let uid = self.uid_of(from);
                self.emit(Event::RollbackOverridden {
                    by: by.clone(),
                    uid,
                    reason: reason.clone(),
                    step: nr.step,
                    lost: nr.loss,
                })?;
                // The override's reason is the abort's too.
                self.abort(by, true, Some(reason))?;
            }
            Command::OverrideGuard {
                step,
                phrase,
                reason,
            } => {
                let open = self.state.prompt.filter(|p| p.step == step);
                let phase = match open.map(|p| p.kind) {
                    Some(PromptKindTag::Undo) => Phase::Undo,
                    Some(PromptKindTag::Run) => Phase::Do,
                    _ => match self.state.steps.get(step).map(|s| s.status) {
                        Some(StepStatus::Failed | StepStatus::Interrupted) => Phase::Do,
                        Some(StepStatus::UndoFailed) => Phase::Undo,
                        _ => {
                            return reject(format!(
                                "step {} is not waiting to run: there is no guard to override",
                                step + 1
                            ))
                        }
                    },
                };
                let Some(refusal) = crate::engine::guard::check(&self.state, step, phase) else {
                    return reject(format!(
                        "no guard refuses step {} now: confirm it (no override needed)",
                        step + 1
                    ));
                };
                if phrase.trim() != refusal.phrase {
                    return reject(format!("type the phrase exactly: {}", refusal.phrase));
                }
                let reason = one_line(&reason);
                if reason.is_empty() {
                    return reject(format!(
                        "say why you take {} out despite guard `{}` (it is journaled with your \
                         name)",
                        refusal.node, refusal.guard
                    ));
                }
                let reason = self.secrets.redact(&reason);
                let uid = self.uid_of(from);
                self.emit(Event::GuardOverridden {
                    step,
                    guard: refusal.guard,
                    node: refusal.node,
                    by,
                    uid,
                    reason,
                    refusal: refusal.reason,
                })?;
            }
            Command::KillOrphan { step } => {
                let Some((s, pgid)) = self.state.orphan.filter(|(s, _)| *s == step) else {
                    return reject(format!(
                        "step {} has no process group left from before the restart",
                        step + 1
                    ));
                };
                if self.orphan_kill.is_some() {
                    return reject(format!("process group {pgid} is being killed already"));
                }
                if !self.orphan_is_ours(s, pgid) {
                    // Ended, or its pgid now belongs to someone else: signal nothing. The
                    // engine's watch journals that it is gone.
                    return reject(format!(
                        "process group {pgid} has ended (its number may belong to another \
                         process now): nothing to kill"
                    ));
                }
                self.emit(Event::Note {
                    by: by.clone(),
                    text: format!(
                        "asked process group {pgid} (step {}, from before the restart) to stop: \
                         SIGTERM, then SIGKILL after {} s",
                        s + 1,
                        crate::engine::process::STOP_GRACE.as_secs()
                    ),
                })?;
                // Signalled once the request is journaled, and only if the group is still the
                // one the step started: the fsync can take a while on a slow disk, and a
                // group that ended meanwhile may have had its number given to another.
                let started = self
                    .state
                    .steps
                    .get(s)
                    .and_then(|st| st.pgid_started.clone());
                self.journal.then(move || {
                    if crate::engine::process::group_alive_as(pgid, started.as_deref()) {
                        let _ = crate::engine::process::signal_group(
                            pgid,
                            nix::sys::signal::Signal::SIGTERM,
                        );
                    }
                });
                self.orphan_kill = Some((by, Instant::now() + crate::engine::process::STOP_GRACE));
            }
            Command::Note { text } => {
                let text = text.trim();
                if text.is_empty() {
                    return reject("an empty note".into());
                }
                let uid = self.uid_of(from);
                if from != SYSTEM && !self.notes.take(uid.unwrap_or(u32::MAX)) {
                    return reject(format!("too many notes: {}", self.notes.words()));
                }
                // Only the owner's notes are compared with the secrets (the owner supplied
                // them): masking anyone else's note would tell them their guess is a secret.
                let text = if from == SYSTEM || uid == Some(self.owner_uid) {
                    self.secrets.redact(text)
                } else {
                    text.to_string()
                };
                self.emit(Event::Note { by, text })?;
            }
            Command::RequestControl => {
                if is_driver {
                    return reject("you already drive".into());
                }
                if self
                    .state
                    .control_request
                    .as_ref()
                    .is_some_and(|(id, _)| *id == from)
                {
                    return reject("you asked already; the driver has been told".into());
                }
                // Per user: from a new connection (a new operator id) too. The owner may take
                // control at any time, so is not limited in asking for it.
                let uid = self.uid_of(from).unwrap_or(u32::MAX);
                if from != SYSTEM && uid != self.owner_uid && !self.control_asks.take(uid) {
                    return reject(format!(
                        "too many requests for control: {}",
                        self.control_asks.words()
                    ));
                }
                let name = self.shown_as(from);
                self.emit(Event::ControlRequested { id: from, name })?;
            }
            Command::GrantControl { to } => {
                if !is_driver {
                    return reject("only the driver can hand over control".into());
                }
                let Some(name) = self
                    .state
                    .operators
                    .iter()
                    .find(|o| o.id == to)
                    .map(|o| o.name.clone())
                else {
                    return reject(format!("no operator {to} is attached"));
                };
                if to == from {
                    return reject("you already drive".into());
                }
                // Per user (the granter's uid), like asking: from connection to connection of
                // one user too. The owner may take control at any time, so limiting their
                // hand-overs would bound nothing.
                let uid = self.uid_of(from).unwrap_or(u32::MAX);
                if from != SYSTEM && uid != self.owner_uid && !self.grants.take(uid) {
                    return reject(format!(
                        "too many hand-overs of control: {}",
                        self.grants.words()
                    ));
                }
                self.emit(Event::DriverChanged {
                    id: to,
                    name,
                    reason: None,
                })?;
            }
            Command::TakeControl { reason } => return self.take_control(from, by, reason),
            Command::RemoveOperator { id } => {
                if from != SYSTEM && self.uid_of(from) != Some(self.owner_uid) {
                    return reject("only the session's owner can remove an operator".into());
                }
                if id == from {
                    return reject("you cannot remove yourself; leave with q".into());
                }
                let Some(gone) = self.state.operators.iter().find(|o| o.id == id) else {
                    return reject(format!("no operator {id} is attached"));
                };
                // The owner's own other terminals are closed but never banned.
                let uid = gone.uid.filter(|u| *u != self.owner_uid);
                self.emit(Event::OperatorRemoved { id, by, uid })?;
                if let Some(close) = self.removals.remove(&id) {
                    self.journal.then(move || {
                        let _ = close.send(());
                    });
                }
                self.last_heard.remove(&id);
            }
            Command::Alive => {}
        }
        Ok(Ok(()))
    }

    /// Journal the abort and stop what runs: a gate is cancelled; a command is asked to stop
    /// (SIGTERM to its group), then killed. Its end is journaled as the step's result; the
    /// abort goes on from there (`advance`).
    fn abort(
        &mut self,
        by: String,
        rollback: bool,
        reason: Option<String>,
    ) -> Result<(), EngineError> {
        self.emit(Event::AbortRequested {
            by: by.clone(),
            rollback,
            reason,
        })?;
        if let Some(a) = &self.action {
            let stop = a.stop.clone();
            self.journal.then(move || {
                let _ = stop.send(Some(format!("abort by {by}")));
            });
        } else if !rollback {
            // A verification under way stops with the session.
            self.verify = None;
            self.emit(Event::Finished {
                outcome: Outcome::Aborted,
            })?;
        }
        Ok(())
    }

    /// The takeover policy. Nobody drives: anyone takes control. The session's owner (the uid
    /// the session runs as) may take it at any time. Another operator may take it from a
    /// driver whose client has shown no sign of life for `takeover_after`, giving a reason.
    /// A takeover is journaled with its reason.
    fn take_control(
        &mut self,
        from: u64,
        by: String,
        reason: Option<String>,
    ) -> Result<Result<(), Rejected>, EngineError> {
        let reject = |s: String| Ok(Err(Rejected(s)));
        let reason = reason
            .map(|r| r.chars().filter(|c| !c.is_control()).collect::<String>())
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        let name = self.shown_as(from);
        let Some(driver) = self.state.driver().cloned() else {
            self.emit(Event::DriverChanged {
                id: from,
                name,
                reason: reason.map(|r| format!("{by}: {r}")),
            })?;
            return Ok(Ok(()));
        };
        if driver.id == from {
            return reject("you already drive".into());
        }
        let why = if from == SYSTEM || self.uid_of(from) == Some(self.owner_uid) {
            format!(
                "{by}, the session's owner, took control from {}: {}",
                driver.user,
                reason.as_deref().unwrap_or("no reason given")
            )
        } else {
            let silent = self.last_heard.get(&driver.id).map(|t| t.elapsed());
            let after = self.takeover_after;
            match silent {
                Some(s) if s >= after => {}
                _ => {
                    let heard = silent
                        .map(|s| format!(" (last sign of life {}s ago)", s.as_secs()))
                        .unwrap_or_default();
                    return reject(format!(
                        "{} drives and their client answers{heard}: ask them (c). Another \
                         operator may take control after {}s without a sign of life from the \
                         driver's client, with a reason; the session's owner at any time",
                        driver.name,
                        after.as_secs()
                    ));
                }
            }
            let Some(r) = reason else {
                return reject(
                    "say why you take control (it is journaled): the driver's client has not \
                     answered"
                        .into(),
                );
            };
            format!(
                "{by} took control from {}, whose client showed no sign of life for {}s: {r}",
                driver.user,
                silent.map_or(0, |s| s.as_secs())
            )
        };
        self.emit(Event::DriverChanged {
            id: from,
            name,
            reason: Some(why),
        })?;
        Ok(Ok(()))
    }

    /// Whether a guard refuses step `step`'s action in `phase` now; the refusal is journaled
    /// (who asked, and every reason counted) and returned for the asker.
    fn guard_refuses(
        &mut self,
        step: usize,
        phase: Phase,
        by: &str,
    ) -> Result<Option<String>, EngineError> {
        let Some(r) = crate::engine::guard::check(&self.state, step, phase) else {
            return Ok(None);
        };
        self.emit(Event::GuardRefused {
            step,
            phase,
            guard: r.guard,
            node: r.node,
            by: by.to_string(),
            reason: r.reason.clone(),
        })?;
        Ok(Some(r.reason))
    }

    /// The driver's confirm. An ordinary step runs at once. A two-person step runs once
    /// another user (a different uid) has approved; until then the confirm stays on record and
    /// the step runs when that approval arrives, as the driver's decision.
    fn driver_confirms(
        &mut self,
        from: u64,
        step: usize,
        by: String,
        phase: Phase,
    ) -> Result<Result<(), Rejected>, EngineError> {
        // The guards hold for everyone who asks: the cockpit, a socket client, a script.
        if let Some(why) = self.guard_refuses(step, phase, &by)? {
            return Ok(Err(Rejected(why)));
        }
        let need = usize::from(self.state.plan.steps[step].approvals.max(1));
        if need > 1 {
            let Some(uid) = self.uid_of(from) else {
                return Ok(Err(Rejected(format!(
                    "step {} needs {need} people (approvals = {need}): run it in the cockpit",
                    step + 1
                ))));
            };
            let run = &self.state.steps[step];
            if run
                .driver_confirm
                .as_ref()
                .is_some_and(|(_, u)| *u == Some(uid))
            {
                return Ok(Err(Rejected(
                    "you confirmed already; the step waits for another user's approval".into(),
                )));
            }
            let others = run.approval_uids.iter().filter(|u| **u != uid).count();
            if others + 1 < need {
                self.emit(Event::Approved {
                    step,
                    by,
                    uid: Some(uid),
                    confirm: true,
                })?;
                return Ok(Ok(()));
            }
        }
        self.emit(Event::Confirmed {
            step,
            by,
            auto: false,
        })?;
        self.start_action(step, phase)?;
        Ok(Ok(()))
    }

    /// Another user's approval of a two-person step. It never runs a step by itself: it
    /// completes a driver's confirm already on record, if there is one.
    fn approve(
        &mut self,
        from: u64,
        step: usize,
        by: String,
        is_driver: bool,
    ) -> Result<Result<(), Rejected>, EngineError> {
        let reject = |s: String| Ok(Err(Rejected(s)));
        let need = usize::from(self.state.plan.steps[step].approvals.max(1));
        if need <= 1 {
            return reject(format!(
                "step {} does not ask for approvals: only the driver's confirm runs it",
                step + 1
            ));
        }
        if is_driver {
            return reject(
                "you drive: confirm the step (y); the approval must come from another user".into(),
            );
        }
        let Some(uid) = self.uid_of(from) else {
            return reject("an approval needs a known user".into());
        };
        let driver_uid = self.state.driver().and_then(|d| d.uid);
        if driver_uid == Some(uid) {
            return reject(format!(
                "you are logged in as the driver's user ({by}); the approval must come from \
                 another user"
            ));
        }
        if self.state.steps[step].approval_uids.contains(&uid) {
            return reject(format!(
                "{by} already approved this step; the approval must come from another user"
            ));
        }
        self.emit(Event::Approved {
            step,
            by,
            uid: Some(uid),
            confirm: false,
        })?;
        let run = &self.state.steps[step];
        if let Some((driver, Some(confirmer))) = run.driver_confirm.clone() {
            let others = run
                .approval_uids
                .iter()
                .filter(|u| **u != confirmer)
                .count();
            // The confirm counts only while its author still drives.
            if driver_uid == Some(confirmer) && others + 1 >= need {
                let phase = match self.state.prompt.map(|p| p.kind) {
                    Some(PromptKindTag::Undo) => Phase::Undo,
                    _ => Phase::Do,
                };
                // The cluster may have changed since the driver's confirm.
                if let Some(why) = self.guard_refuses(step, phase, &driver)? {
                    return reject(why);
                }
                self.emit(Event::Confirmed {
                    step,
                    by: driver,
                    auto: false,
                })?;
                self.start_action(step, phase)?;
            }
        }
        Ok(Ok(()))
    }

    pub(super) fn start_action(&mut self, step: usize, phase: Phase) -> Result<(), EngineError> {
        let planned = &self.state.plan.steps[step];
        let action = match phase {
            Phase::Do => planned.action.clone(),
            Phase::Undo => match &planned.undo {
                Some(a) => a.clone(),
                None => {
                    return self.emit(Event::ActionFinished {
                        step,
                        phase,
                        attempt: self.state.steps[step].undo_attempts,
                        verdict: Verdict::Passed,
                        detail: NOTHING_TO_COMPENSATE.into(),
                    })
                }
            },
        };
        let run = &self.state.steps[step];
        let attempt = match phase {
            Phase::Do => run.attempts,
            Phase::Undo => run.undo_attempts,
        } + 1;
        // Journaled and fsynced before the action can touch anything.
        self.emit(Event::ActionStarted {
            step,
            phase,
            attempt,
        })?;
        let (stop, stop_rx) = tokio::sync::watch::channel(None);
        // A retry is asked because something may have changed (a hand outside the procedure
        // restarted the node): only readings from now on count, one "now" for every node.
        let retry_ms = if attempt > 1 { self.now_ms() } else { 0 };
        let ctx = ActionCtx {
            step,
            phase,
            attempt,
            tx: self.worker_tx.clone(),
            http: self.http.clone(),
            lb: self.lb.clone(),
            target: self.target.clone(),
            secrets: self.secrets.clone(),
            time_scale: self.time_scale,
            stop: stop_rx,
            node_states: self.node_states.subscribe(),
            settled_ms: self
                .target
                .nodes
                .iter()
                .map(|n| {
                    let settled = self.state.state_settled_ms(&n.name, step);
                    (n.name.clone(), settled.max(retry_ms))
                })
                .collect(),
        };
        // Faults staged for this step (or for its undo) take effect as it first starts, before
        // its action.
        let due: Vec<String> = {
            let (now, later) = std::mem::take(&mut self.faults_due)
                .into_iter()
                .partition(|(s, p, _)| *s == step && *p == phase);
            self.faults_due = later;
            now.into_iter().map(|(_, _, f)| f).collect()
        };
        let (http, url, tx) = (
            self.http.clone(),
            self.fault_url.clone(),
            self.worker_tx.clone(),
        );
        // The task starts now but waits until `ActionStarted` is on disk: neither a staged
        // fault nor the action touches anything before.
        let durable = self.journal.durable_through(self.state.last_seq);
        let join = tokio::spawn(async move {
            if !durable.await {
                return (
                    Verdict::Failed,
                    "the engine stopped before the step's start was journaled".into(),
                );
            }
            for fault in due {
                let error = crate::engine::lab_faults::fire(&http, &url, &fault)
                    .await
                    .err();
                let _ = tx
                    .send(WorkerMsg::FaultFired {
                        fault,
                        step,
                        phase,
                        error,
                    })
                    .await;
            }
            execute(action, ctx).await
        });
        self.action = Some(RunningAction {
            step,
            phase,
            attempt,
            join,
            stop,
        });
        Ok(())
    }

    /// After the last undo: run the procedure's `[[rollback.verify]]` checks (they only read).
    /// What stands in the way of `verified` whatever they find is said up front: an undo that
    /// was skipped, no checks declared.
    fn start_verify(&mut self) -> Result<(), EngineError> {
        let specs = self.state.plan.rollback.verify.clone();
        let mut why_not: Vec<String> = self
            .state
            .rollback_skipped
            .iter()
            .map(|&i| {
                let key = self.state.plan.steps.get(i).map_or("?", |p| p.key.as_str());
                format!("the undo of step {} ({key}) was skipped", i + 1)
            })
            .collect();
        if specs.is_empty() {
            why_not.push(
                "the procedure declares no rollback verification ([[rollback.verify]]): nothing \
                 checked the cluster"
                    .into(),
            );
            return self.emit(Event::VerifyFinished {
                verified: false,
                nodes: Vec::new(),
                why_not,
            });
        }
        self.emit(Event::VerifyStarted {
            checks: specs.len(),
        })?;
        let ctx = crate::engine::verify::VerifyCtx {
            target: self.target.clone(),
            secrets: self.secrets.clone(),
            http: self.http.clone(),
            lb: self.lb.clone(),
            time_scale: self.time_scale,
        };
        let durable = self.journal.durable_through(self.state.last_seq);
        self.verify = Some(RunningVerify {
            join: tokio::spawn(async move {
                if !durable.await {
                    return Vec::new();
                }
                crate::engine::verify::run(specs, ctx).await
            }),
            why_not,
        });
        Ok(())
    }

    /// Hand running gates `node`'s state and reason as the product reported them, read by a
    /// request sent at `read_ms`. A change wakes them (`moved`); a reading of the same state
    /// only says it still held then, which a gate looks at on its next round.
    pub(super) fn publish_node_state(&self, node: &str, read_ms: u64, moved: bool) {
        let Some(n) = self.state.node(node) else {
            return;
        };
        let Some(state) = n.state() else {
            return;
        };
        let report = crate::engine::action::NodeReport {
            state: state.to_string(),
            reason: n.reason().map(str::to_string),
            read_ms,
        };
        self.node_states
            .send_if_modified(|m| match m.get_mut(node) {
                Some(r) if !moved && r.state == report.state && r.reason == report.reason => {
                    r.read_ms = r.read_ms.max(read_ms);
                    false
                }
                _ => {
                    m.insert(node.to_string(), report);
                    true
                }
            });
    }

    fn open_prompt(&mut self, step: usize, prompt: PromptKind) -> Result<(), EngineError> {
        // The prompt's id is the seq of the event that opens it.
        let id = self.next_seq()?;
        self.emit(Event::PromptOpened { id, step, prompt })
    }

    /// Why `step` can't be re-run, marked done, undone or skipped yet: the command it ran
    /// before a restart is still running.
    fn orphan_blocks(&self, step: usize) -> Option<String> {
        let (s, pgid) = self.state.orphan?;
        (s == step).then(|| {
            format!(
                "step {}'s command from before the restart is still running (process group {pgid}): \
                 wait for it to end, or kill it (K)",
                step + 1
            )
        })
    }

    /// A rollback's next step has no undo action and nothing half-done to decide about (an
    /// interrupted or failed undo still asks).
    fn nothing_to_undo(&self, step: usize) -> bool {
        self.state.plan.steps[step].undo.is_none()
            && !matches!(
                self.state.steps[step].status,
                StepStatus::UndoFailed | StepStatus::Interrupted
            )
    }

    /// What the session waits on next, if anything must be asked.
    fn next_prompt(&self) -> Option<(usize, PromptKind)> {
        match self.state.mode {
            Mode::Finished(_) => None,
            Mode::Forward => {
                let c = self.state.cursor()?;
                match self.state.steps[c].status {
                    StepStatus::Pending | StepStatus::Undone | StepStatus::Awaiting => {
                        Some((c, PromptKind::Run))
                    }
                    StepStatus::Failed | StepStatus::UndoFailed => Some((c, PromptKind::Failed)),
                    StepStatus::Interrupted => Some((c, PromptKind::Interrupted)),
                    _ => None,
                }
            }
            Mode::RollingBack => {
                let c = self.state.rollback_candidate()?;
                match self.state.steps[c].status {
                    StepStatus::UndoFailed => Some((c, PromptKind::Failed)),
                    StepStatus::Interrupted => Some((c, PromptKind::Interrupted)),
                    _ => Some((c, PromptKind::Undo)),
                }
            }
        }
    }

    /// Move the session forward as far as it goes without a human: finish, open the next
    /// prompt, or answer it when the policy (`confirm = "none"`, `--yes`) allows.
    pub(super) fn advance(&mut self) -> Result<(), EngineError> {
        loop {
            if self.state.is_finished()
                || self.state.running().is_some()
                || self.state.steps.is_empty()
            {
                return Ok(());
            }
            if self.state.aborting {
                return self.emit(Event::Finished {
                    outcome: Outcome::Aborted,
                });
            }
            if self.state.prompt.is_none() {
                if self.state.held {
                    return Ok(());
                }
                match self.state.mode {
                    Mode::Forward if self.state.cursor().is_none() => {
                        return self.emit(Event::Finished {
                            outcome: Outcome::Completed,
                        })
                    }
                    Mode::RollingBack => {
                        let floor = self.state.rollback_floor();
                        match (self.state.rollback_candidate(), floor) {
                            // Every undo is done: verify, then finish.
                            (None, _) if self.state.verification.is_some() => {
                                return self.emit(Event::Finished {
                                    outcome: Outcome::RolledBack,
                                })
                            }
                            (None, _) if self.state.verifying && self.verify.is_some() => {
                                return Ok(())
                            }
                            (None, _) => {
                                self.start_verify()?;
                                continue;
                            }
                            (Some(c), Some(f)) if c <= f => {
                                let why = self.state.plan.steps[f]
                                    .irreversible
                                    .clone()
                                    .unwrap_or_default();
                                self.emit(Event::RollbackStopped {
                                    reason: format!(
                                        "step {} is irreversible ({why}); steps up to it stay done",
                                        f + 1
                                    ),
                                })?;
                                return self.emit(Event::Finished {
                                    outcome: Outcome::Aborted,
                                });
                            }
                            (Some(c), _) if self.nothing_to_undo(c) => {
                                // Nothing to ask about: no compensating action exists. It
                                // passes, journaled as such, and the rollback goes on.
                                self.emit(Event::ActionFinished {
                                    step: c,
                                    phase: Phase::Undo,
                                    attempt: self.state.steps[c].undo_attempts,
                                    verdict: Verdict::Passed,
                                    detail: NOTHING_TO_UNDO.into(),
                                })?;
                                continue;
                            }
                            _ => {}
                        }
                    }
                    _ => {}
                }
                let Some((step, kind)) = self.next_prompt() else {
                    return Ok(());
                };
                self.open_prompt(step, kind)?;
                continue;
            }
            // A prompt is open: can policy answer it?
            let Some(open) = self.state.prompt else {
                return Ok(());
            };
            if !self.state.policy_answers_prompt() {
                return Ok(());
            }
            let auto = self.state.auto;
            let phase = match open.kind {
                PromptKindTag::Run => Phase::Do,
                PromptKindTag::Undo => Phase::Undo,
                PromptKindTag::Failed | PromptKindTag::Interrupted => {
                    // Past the point of no return the policy gets the refusal anyone gets: the
                    // session stops as it is, saying what a rollback would have lost.
                    if let Some(nr) = self.state.no_return(self.now_ms()) {
                        self.emit(Event::RollbackStopped {
                            reason: format!(
                                "--on-failure rollback refused past the point of no return: {}",
                                nr.loss
                            ),
                        })?;
                        self.emit(Event::AbortRequested {
                            by: "--on-failure rollback".into(),
                            rollback: false,
                            reason: Some(format!("step {} failed", open.step + 1)),
                        })?;
                        return self.emit(Event::Finished {
                            outcome: Outcome::Aborted,
                        });
                    }
                    self.emit(Event::AbortRequested {
                        by: "--on-failure rollback".into(),
                        rollback: true,
                        reason: Some(format!("step {} failed", open.step + 1)),
                    })?;
                    continue;
                }
            };
            // An optional step under `--yes`: the procedure's declared default, said as such.
            if open.kind == PromptKindTag::Run && self.state.awaits_choice(open.step) {
                let Some(opt) = self.state.plan.steps[open.step].optional.clone() else {
                    return Ok(());
                };
                self.emit(Event::OptionalChosen {
                    step: open.step,
                    choice: opt.default,
                    by: "--yes".into(),
                    uid: None,
                    reason: Some(format!(
                        "the procedure's default for this optional step ({})",
                        opt.why
                    )),
                    auto: true,
                })?;
                if opt.default == OptionalChoice::Skip {
                    self.emit(Event::Skipped {
                        step: open.step,
                        by: "--yes".into(),
                    })?;
                }
                continue;
            }
            let by = if auto.yes { "--yes" } else { "confirm = none" };
            // A guard refusal stops the policy here: journaled, and a person decides.
            if self.guard_refuses(open.step, phase, by)?.is_some() {
                return Ok(());
            }
            self.emit(Event::Confirmed {
                step: open.step,
                by: by.into(),
                auto: true,
            })?;
            self.start_action(open.step, phase)?;
        }
    }
}

/// Text an operator typed, as one journal-safe line: control characters (a newline, an
/// escape) as spaces, trimmed (its length is bounded before: `MAX_NOTE_CHARS`).
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}
