//! The engine task: one per session. It alone changes session state, always the same way:
//! decide -> journal the event (fsync for decisions) -> apply -> publish. The journal's
//! write and fsync run on a blocking thread; the state folds the event at once, and nothing
//! outside sees it or acts on it before it is on disk (`durable`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::event::{AutoConfirm, Event, Phase, Stamped, TrafficWindow, Verdict};
use super::state::SessionState;
use super::strings::Secrets;
use super::worker::WorkerMsg;

mod checkpoints;
mod decide;
mod durable;
#[cfg(test)]
mod durable_gates;
mod handle;
mod observe;
mod rate;
#[cfg(test)]
mod sync_gate;

use super::lab_faults::LabFaults;
use crate::journal::{self, Header, JournalError, JournalWriter};
use crate::lb::LbClient;
use crate::plan::Plan;
use crate::target::Target;
pub use decide::{
    CONTROL_ASK_BURST, CONTROL_ASK_REFILL, GRANT_BURST, GRANT_REFILL, JOIN_BURST, JOIN_REFILL,
    MAX_NOTE_CHARS, NOTE_BURST, NOTE_REFILL, NOTHING_TO_UNDO,
};
use handle::Msg;
pub use handle::{EngineHandle, EngineTask, FollowFrom};

/// The operator id commands carry when they come from flightdeck itself (`--yes`, headless).
pub const SYSTEM: u64 = 0;
/// How long a driver's client may show no sign of life (it sends one every few seconds)
/// before another operator may take control. An SSH connection that hangs rather than drops
/// keeps its socket open for hours; a minute of silence is already not a busy operator.
pub const TAKEOVER_AFTER: Duration = Duration::from_secs(60);
/// How often per-probe summaries go to the journal.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);
/// How often traffic counts go to the journal (sooner when requests fail).
const TRAFFIC_EVERY_MS: u64 = 5000;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{0}")]
    Invalid(String),
}

pub struct EngineConfig {
    pub plan: Plan,
    pub target: Target,
    pub auto: AutoConfirm,
    pub operator: String,
    pub journal: PathBuf,
    /// Run probes and pollers (off in unit tests that script every event).
    pub observe: bool,
    /// Multiplies gate timeouts and stability windows: 1.0 for real clusters; below 1 for a
    /// lab whose delays are shortened the same way (tests, quick demos).
    pub time_scale: f64,
}

/// How often a journaled process group found alive on resume is checked again (only while
/// there is one). What the watch guarantees does not depend on it: the step stays blocked
/// until the group is seen gone (a longer period only unblocks it later, never early), the
/// group's identity is checked right before each signal, and a requested kill's SIGKILL has
/// a timer of its own. A second is soon enough for the operator waiting on it, and each check
/// runs on the engine's thread (`process::GroupWatch` keeps it to a few small reads).
const ORPHAN_EVERY: Duration = Duration::from_secs(1);

/// The task running one action, and how to ask it to stop. Dropping it aborts the task (whose
/// process group dies with it): no action outlives its engine.
struct RunningAction {
    step: usize,
    phase: Phase,
    attempt: u32,
    join: JoinHandle<(Verdict, String)>,
    stop: tokio::sync::watch::Sender<Option<String>>,
}

impl Drop for RunningAction {
    fn drop(&mut self) {
        self.join.abort();
    }
}

/// A rollback's verification while it runs; dropping it stops it (it only reads).
struct RunningVerify {
    join: JoinHandle<Vec<super::event::NodeVerdict>>,
    /// Why it cannot say `verified` whatever the checks find (an undo skipped).
    why_not: Vec<String>,
}

impl Drop for RunningVerify {
    fn drop(&mut self) {
        self.join.abort();
    }
}

/// Resolves when the verification's task ends; never while none runs.
async fn verify_done(
    v: &mut Option<RunningVerify>,
) -> Result<Vec<super::event::NodeVerdict>, tokio::task::JoinError> {
    match v {
        Some(r) => (&mut r.join).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the running action's task ends; never while none runs.
async fn action_done(
    a: &mut Option<RunningAction>,
) -> Result<(Verdict, String), tokio::task::JoinError> {
    match a {
        Some(r) => (&mut r.join).await,
        None => std::future::pending().await,
    }
}

/// Milliseconds since the Unix epoch, by the wall clock.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A probe instance: probe name and node (None for a global probe).
type ProbeKey = (String, Option<String>);

struct Engine {
    state: SessionState,
    /// The journal, written off the runtime's thread; the live feed publishes behind it.
    journal: durable::Durable,
    clock: Instant,
    t_base: u64,
    target: Arc<Target>,
    secrets: Arc<Secrets>,
    lb: Option<LbClient>,
    http: reqwest::Client,
    worker_tx: mpsc::Sender<WorkerMsg>,
    /// Each node's state and reason as the product last reported them (probe facts), for
    /// gates: one waiting on a node the product reports failed ends at once.
    node_states: tokio::sync::watch::Sender<crate::engine::action::NodeStates>,
    /// The action running now. Owned and awaited in `run`'s loop: its end — a verdict, an
    /// error or a panic — always becomes `ActionFinished`.
    action: Option<RunningAction>,
    /// The rollback's verification, while it runs (owned like `action`).
    verify: Option<RunningVerify>,
    /// Killing an orphaned process group on request: (who, when to SIGKILL if still alive).
    orphan_kill: Option<(String, Instant)>,
    /// The orphaned group's watch (it remembers where it found a member alive).
    orphan_group: Option<super::process::GroupWatch>,
    time_scale: f64,
    next_operator: u64,
    /// The uid the engine runs as: the session's owner, who may always take control.
    owner_uid: u32,
    /// How long a remote driver may show no sign of life before others may take control.
    takeover_after: Duration,
    /// When each remote operator last showed a sign of life (any command, `Alive` included).
    last_heard: HashMap<u64, Instant>,
    /// Closes an operator's feed when the owner removes them.
    removals: HashMap<u64, tokio::sync::oneshot::Sender<()>>,
    /// Where recent events start in the journal, for feeds catching up.
    checkpoints: checkpoints::Checkpoints,
    /// Where this engine's own events start in the journal (what it took over ends there).
    began: u64,
    /// Per user: how many more notes, joins, requests for control and hand-overs of control
    /// the journal takes now.
    notes: rate::Buckets,
    joins: rate::Buckets,
    control_asks: rate::Buckets,
    grants: rate::Buckets,
    probe_ok: HashMap<ProbeKey, bool>,
    /// Per node: when the requests that read its `state` were sent, so that a change says
    /// after when it happened (`NodeFacts::prior_sent_ms`) and an older answer is not news.
    sightings: crate::engine::sightings::Sightings,
    /// Samples since the last summary: (ok, latency ms).
    probe_stats: BTreeMap<ProbeKey, Vec<(bool, u64)>>,
    last_lb: Option<Vec<crate::lb::Backend>>,
    last_lb_error: Option<String>,
    traffic_seen: Option<TrafficWindow>,
    traffic_window: TrafficWindow,
    traffic_since: u64,
    /// The lab's admin server, when faults are staged for steps of this session.
    fault_url: String,
    /// Faults still to fire: (plan index of their step, fault).
    faults_due: Vec<(usize, Phase, String)>,
}

/// Start a new session: journal header, `SessionStarted`, then the engine task.
pub fn start(cfg: EngineConfig) -> Result<EngineTask, EngineError> {
    start_with_faults(cfg, LabFaults::default())
}

/// [`start`] on a lab with faults staged (`run --lab --fault`): each is journaled right after
/// `SessionStarted`, and one staged for a step fires when that step first starts.
pub fn start_with_faults(cfg: EngineConfig, faults: LabFaults) -> Result<EngineTask, EngineError> {
    spawn(prepare(cfg, faults)?)
}

/// An engine built and its first events queued, not yet running (tests hold its journal's
/// fsync in between: `sync_gate`).
struct Ready {
    engine: Engine,
    worker_rx: mpsc::Receiver<WorkerMsg>,
    journal: PathBuf,
    observe: bool,
    first: Vec<Event>,
}

/// [`start_with_faults`] up to running the engine.
fn prepare(cfg: EngineConfig, faults: LabFaults) -> Result<Ready, EngineError> {
    let mut cfg = cfg;
    cfg.target = super::strings::fill_probes(&cfg.target, &cfg.plan);
    if let Some(f) = faults
        .staged
        .iter()
        .find(|f| f.step.is_some_and(|s| s >= cfg.plan.steps.len()))
    {
        return Err(EngineError::Invalid(format!(
            "fault {} is staged for a step the plan does not have",
            f.fault
        )));
    }
    let header = Header::new(
        &cfg.plan.procedure,
        &cfg.plan.procedure_hash,
        &cfg.target.name,
        &cfg.operator,
    );
    let writer = JournalWriter::create(&cfg.journal, &header)?;
    let health_probes = cfg
        .target
        .probes
        .iter()
        .filter(|p| p.health)
        .map(|p| p.name.clone())
        .collect();
    let started = Event::SessionStarted {
        plan: Box::new(cfg.plan.clone()),
        nodes: cfg.target.nodes.clone(),
        operator: cfg.operator.clone(),
        auto: cfg.auto,
        lb: cfg.target.lb.as_ref().map(|l| l.driver.clone()),
        health_probes,
        // Its call bindings (`[actions]`) are left out: the plan holds each call it makes
        // already bound, and nothing after planning reads them (a lab target binds dozens).
        target: Some(Box::new(crate::target::Target {
            actions: Default::default(),
            ..cfg.target.clone()
        })),
    };
    let (mut engine, worker_rx) = Engine::new(cfg.target, writer, SessionState::empty())?;
    engine.time_scale = cfg.time_scale;
    let mut first = vec![started];
    for f in &faults.staged {
        first.push(Event::FaultStaged {
            fault: f.fault.clone(),
            step: f.step,
            phase: f.phase,
        });
        if let Some(step) = f.step {
            engine.faults_due.push((step, f.phase, f.fault.clone()));
        }
    }
    engine.fault_url = faults.admin_url;
    Ok(Ready {
        engine,
        worker_rx,
        journal: cfg.journal,
        observe: cfg.observe,
        first,
    })
}

/// Pick a session up from its journal. The target is the given one, else the journaled one.
pub fn resume(
    path: &Path,
    target: Option<Target>,
    operator: &str,
    observe: bool,
) -> Result<EngineTask, EngineError> {
    resume_with(
        path,
        target,
        operator,
        observe,
        journal::ReadOptions::default(),
    )
}

/// `resume` with journal read options (`--skip-bad-lines`; the lines skipped are journaled).
pub fn resume_with(
    path: &Path,
    target: Option<Target>,
    operator: &str,
    observe: bool,
    opts: journal::ReadOptions,
) -> Result<EngineTask, EngineError> {
    // Lock first: a live session's journal is refused before anything is read or cut. The
    // history is folded once, here, as it is read (never held whole): every view of the
    // session starts from this state (`EngineHandle::attach_folded`) instead of folding it again.
    let mut state = SessionState::empty();
    let mut journaled_target = None;
    let (writer, read) = JournalWriter::reopen(path, opts, |_, e| {
        if let Event::SessionStarted { target, .. } = &e.event {
            journaled_target = target.as_deref().cloned();
        }
        state.apply(&e);
    })?;
    if state.steps.is_empty() {
        return Err(EngineError::Invalid(format!(
            "{}: the journal has no session start; nothing to resume",
            path.display()
        )));
    }
    if state.is_finished() {
        return Err(EngineError::Invalid(format!(
            "{}: this session already finished ({:?}); use `flightdeck report` or `replay`",
            path.display(),
            state.mode
        )));
    }
    let Some(target) = target.or(journaled_target) else {
        return Err(EngineError::Invalid(
            "the journal does not record its target: pass --target".into(),
        ));
    };
    let target = super::strings::fill_probes(&target, &state.plan);
    let (mut engine, worker_rx) = Engine::new(target, writer, state)?;
    // Wall-clock time goes on across the outage: a window open when flightdeck died (writes
    // down, no ready backend) and the durations in the report include the time it was down.
    let last = engine.state.t_ms;
    let since_start = started_unix_ms(&read.header).map(|s| unix_ms().saturating_sub(s));
    if let Some(now) = since_start {
        engine.t_base = engine.t_base.max(now);
    }
    let down_ms = since_start.map(|now| now.saturating_sub(last));
    let mut first = vec![Event::Resumed {
        operator: operator.to_string(),
        skipped_lines: read.skipped.iter().map(|(l, _)| *l).collect(),
        down_ms,
    }];
    // An action that ran when flightdeck died may still run: say so before anything is offered.
    // Also one found alive by an earlier resume that ended (a headless resume stops at that
    // prompt) before the group did: its pgid stays journaled until the group is seen gone.
    let interrupted = engine.state.steps.iter().enumerate().find_map(|(i, s)| {
        matches!(
            s.status,
            super::state::StepStatus::Running
                | super::state::StepStatus::Undoing
                | super::state::StepStatus::Interrupted
        )
        .then_some(s.pgid.map(|g| (i, g, s.pgid_started.clone())))
        .flatten()
    });
    if let Some((step, pgid, started)) = interrupted {
        // Only if it is still that group: its pgid may belong to an unrelated process by now.
        if super::process::group_alive_as(pgid, started.as_deref()) {
            first.push(Event::OrphanAlive { step, pgid });
        }
    }
    spawn(Ready {
        engine,
        worker_rx,
        journal: path.to_path_buf(),
        observe,
        first,
    })
}

/// When the session started by the wall clock, in ms since the epoch (the header's own field,
/// else its RFC 3339 second).
fn started_unix_ms(h: &Header) -> Option<u64> {
    if let Some(ms) = h.started_unix_ms {
        return Some(ms);
    }
    let t = humantime::parse_rfc3339_weak(h.started_at.trim()).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(d.as_millis()).ok()
}

fn spawn(ready: Ready) -> Result<EngineTask, EngineError> {
    let Ready {
        mut engine,
        worker_rx,
        journal,
        observe,
        first,
    } = ready;
    for ev in first {
        engine.emit(ev)?;
    }
    engine.journal.settle_here()?;
    let (tx, rx) = mpsc::channel(256);
    let join = tokio::spawn(engine.run(rx, worker_rx, observe));
    Ok(EngineTask {
        handle: EngineHandle { tx, journal },
        join,
    })
}

impl Engine {
    fn new(
        target: Target,
        journal: JournalWriter,
        state: SessionState,
    ) -> Result<(Self, mpsc::Receiver<WorkerMsg>), EngineError> {
        let lb = match &target.lb {
            Some(cfg) => {
                Some(LbClient::from_config(cfg).map_err(|e| EngineError::Invalid(e.to_string()))?)
            }
            None => None,
        };
        let secrets = Arc::new(Secrets::from_env(&target.secrets));
        let (worker_tx, worker_rx) = mpsc::channel(1024);
        let (live, _) = broadcast::channel(4096);
        let t_base = state.t_ms;
        let began = journal.written();
        let journal = durable::Durable::new(journal, live, state.last_seq);
        Ok((
            Engine {
                state,
                journal,
                clock: Instant::now(),
                t_base,
                target: Arc::new(target),
                secrets,
                lb,
                http: super::check::http_client(),
                worker_tx,
                node_states: tokio::sync::watch::channel(Default::default()).0,
                action: None,
                verify: None,
                orphan_kill: None,
                orphan_group: None,
                time_scale: 1.0,
                next_operator: 1,
                owner_uid: nix::unistd::getuid().as_raw(),
                takeover_after: TAKEOVER_AFTER,
                last_heard: HashMap::new(),
                removals: HashMap::new(),
                checkpoints: Default::default(),
                began,
                notes: rate::Buckets::new(NOTE_BURST, NOTE_REFILL),
                joins: rate::Buckets::new(JOIN_BURST, JOIN_REFILL),
                control_asks: rate::Buckets::new(CONTROL_ASK_BURST, CONTROL_ASK_REFILL),
                grants: rate::Buckets::new(GRANT_BURST, GRANT_REFILL),
                probe_ok: HashMap::new(),
                sightings: Default::default(),
                probe_stats: BTreeMap::new(),
                last_lb: None,
                last_lb_error: None,
                traffic_seen: None,
                traffic_window: TrafficWindow::default(),
                traffic_since: 0,
                fault_url: String::new(),
                faults_due: Vec::new(),
            },
            worker_rx,
        ))
    }

    /// `at` in session ms (an instant before the engine's start counts as its start).
    fn ms_at(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.clock);
        let elapsed = u64::try_from(since.as_millis()).unwrap_or(u64::MAX);
        self.t_base.saturating_add(elapsed)
    }

    fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.t_base.saturating_add(elapsed)
    }

    /// The seq the next journaled event gets. A journal whose seq reached u64::MAX ends here
    /// rather than wrapping (a wrapped seq would read as out of order).
    fn next_seq(&self) -> Result<u64, EngineError> {
        self.state.last_seq.checked_add(1).ok_or_else(|| {
            EngineError::Invalid(format!(
                "{}: the journal's sequence numbers are exhausted (seq {})",
                self.journal.path().display(),
                self.state.last_seq
            ))
        })
    }

    /// Journal, apply, publish — in that order. The line is queued and the state folds it at
    /// once; it is published (and whatever the caller does through `self.journal.then`, or
    /// behind `durable_through`, happens) only once it is on file, decisions fsynced:
    /// `run` settles the journal after every message (see `durable`).
    fn emit(&mut self, event: Event) -> Result<(), EngineError> {
        let live_only = event.is_live_only();
        let stamped = Stamped {
            seq: if live_only {
                self.state.last_seq
            } else {
                self.next_seq()?
            },
            t_ms: self.now_ms().max(self.state.t_ms),
            event,
        };
        if !live_only {
            self.checkpoints
                .note(stamped.seq, self.journal.next_offset());
            self.journal.append(&stamped, stamped.event.is_durable())?;
        }
        self.state.apply(&stamped);
        self.journal.publish(stamped);
        Ok(())
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Msg>,
        mut worker_rx: mpsc::Receiver<WorkerMsg>,
        observe: bool,
    ) -> Result<SessionState, EngineError> {
        let mut background = JoinSet::new();
        if observe {
            super::probe::spawn_all(
                &mut background,
                &self.target,
                &self.secrets,
                self.lb.clone(),
                &self.http,
                &self.worker_tx,
            );
        }
        let mut summary = tokio::time::interval_at(Instant::now() + SUMMARY_EVERY, SUMMARY_EVERY);
        let mut orphan_watch = tokio::time::interval(ORPHAN_EVERY);
        // Off while nothing is watched: coming back on, it does not make up the ticks missed.
        orphan_watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            if let Err(e) = self.advance() {
                // What was journaled before the error still goes to the file.
                let _ = self.journal.settle().await;
                break Err(e);
            }
            // What the last message and `advance` journaled goes to disk off this thread;
            // nothing it decided reaches the outside before that (`durable`).
            if let Err(e) = self.journal.settle().await {
                break Err(e.into());
            }
            let watching = self.state.orphan.is_some();
            let kill_at = self.orphan_kill.as_ref().map(|(_, at)| *at);
            let step = tokio::select! {
                msg = rx.recv() => match msg {
                    None | Some(Msg::Shutdown) => break Ok(()),
                    Some(m) => self.on_msg(m),
                },
                done = action_done(&mut self.action) => self.on_action_done(done, &mut worker_rx),
                done = verify_done(&mut self.verify) => self.on_verify_done(done),
                Some(w) = worker_rx.recv() => self.on_worker(w),
                _ = summary.tick() => self.emit_summaries(),
                _ = orphan_watch.tick(), if watching => self.check_orphan(),
                _ = tokio::time::sleep_until(kill_at.unwrap_or_else(Instant::now)), if kill_at.is_some() => self.check_orphan(),
            };
            if let Err(e) = step {
                // What was journaled before the error still goes to the file.
                let _ = self.journal.settle().await;
                break Err(e);
            }
        };
        background.abort_all();
        // Dropping it aborts the task; its process group is killed with it.
        self.action = None;
        self.verify = None;
        result.map(|()| self.state)
    }

    /// The action's task ended: its verdict, or why it has none (an error, a panic).
    fn on_action_done(
        &mut self,
        done: Result<(Verdict, String), tokio::task::JoinError>,
        worker_rx: &mut mpsc::Receiver<WorkerMsg>,
    ) -> Result<(), EngineError> {
        let Some(ran) = self.action.take() else {
            return Ok(());
        };
        // What the task said before it ended is already queued: record it before its end.
        while let Ok(w) = worker_rx.try_recv() {
            self.on_worker(w)?;
        }
        let (verdict, detail) = match done {
            Ok(v) => v,
            Err(e) if e.is_panic() => {
                let p = e.into_panic();
                let why = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                (
                    Verdict::Failed,
                    self.secrets.redact(&format!(
                        "the action failed inside flightdeck (panic: {why})"
                    )),
                )
            }
            Err(_) => (
                Verdict::Failed,
                "the action's task was cancelled before it reported".into(),
            ),
        };
        let current = self.state.running() == Some(ran.step)
            && self.state.steps[ran.step].phase_attempts() == ran.attempt;
        if current {
            self.emit(Event::ActionFinished {
                step: ran.step,
                phase: ran.phase,
                attempt: ran.attempt,
                verdict,
                detail,
            })?;
        }
        Ok(())
    }

    /// Whether the process group `step`'s command left is still alive and still that group
    /// (not a later process that was given its pgid).
    fn orphan_is_ours(&mut self, step: usize, pgid: u32) -> bool {
        let started = self
            .state
            .steps
            .get(step)
            .and_then(|s| s.pgid_started.clone());
        let watch = match &mut self.orphan_group {
            Some(w) if w.pgid() == pgid => w,
            slot => slot.insert(super::process::GroupWatch::new(pgid)),
        };
        watch.alive_as(started.as_deref())
    }

    /// The rollback's verification ended: journal what it found.
    fn on_verify_done(
        &mut self,
        done: Result<Vec<super::event::NodeVerdict>, tokio::task::JoinError>,
    ) -> Result<(), EngineError> {
        let Some(ran) = self.verify.take() else {
            return Ok(());
        };
        if !self.state.verifying {
            return Ok(());
        }
        let mut why_not = ran.why_not.clone();
        let nodes = match done {
            Ok(nodes) => nodes,
            Err(e) => {
                why_not.push(if e.is_panic() {
                    "the verification failed inside flightdeck (panic)".into()
                } else {
                    "the verification was cancelled before it reported".into()
                });
                Vec::new()
            }
        };
        if nodes.is_empty() && why_not.is_empty() {
            why_not.push("no verify check covered any node".into());
        }
        let verified = why_not.is_empty() && nodes.iter().all(|n| n.ok);
        self.emit(Event::VerifyFinished {
            verified,
            nodes,
            why_not,
        })
    }

    /// A process group found alive on resume: has it ended (or is a requested kill due)?
    fn check_orphan(&mut self) -> Result<(), EngineError> {
        let Some((step, pgid)) = self.state.orphan else {
            self.orphan_kill = None;
            return Ok(());
        };
        if !self.orphan_is_ours(step, pgid) {
            let killed_by = self.orphan_kill.take().map(|(by, _)| by);
            return self.emit(Event::OrphanGone {
                step,
                pgid,
                killed_by,
            });
        }
        if let Some((_, at)) = &mut self.orphan_kill {
            let now = Instant::now();
            if now >= *at {
                let _ = super::process::signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
                // Again a period later if it still stands.
                *at = now + ORPHAN_EVERY;
            }
        }
        Ok(())
    }

    fn on_msg(&mut self, msg: Msg) -> Result<(), EngineError> {
        match msg {
            Msg::Command {
                from,
                command,
                reply,
            } => {
                if let Some(t) = self.last_heard.get_mut(&from) {
                    *t = Instant::now();
                }
                let r = self.command(from, command)?;
                self.journal.then(move || {
                    let _ = reply.send(r);
                });
            }
            Msg::Attach {
                who,
                name,
                driver,
                remote,
                folded,
                reply,
            } => {
                if self.state.removed_uids.contains(&who.uid) && who.uid != self.owner_uid {
                    let _ = reply.send(Err(crate::engine::Rejected(format!(
                        "the session's owner removed {} from this session",
                        who.user
                    ))));
                    return Ok(());
                }
                // Every way in (a hello over the socket, an in-process cockpit) comes here: the
                // label is checked once, by the engine, before it costs a join or a line.
                if let Err(why) = who.check_label(&name) {
                    let _ = reply.send(Err(crate::engine::Rejected(why)));
                    return Ok(());
                }
                // Each join and leave is a journal line: a member looping connect/disconnect
                // would grow the journal without bound. Refused before anything is journaled;
                // the owner is not limited (only they would be hurt).
                if who.uid != self.owner_uid && !self.joins.take(who.uid) {
                    let _ = reply.send(Err(crate::engine::Rejected(format!(
                        "too many joins by {}: {}; wait and join again",
                        who.user,
                        self.joins.words()
                    ))));
                    return Ok(());
                }
                let id = self.next_operator;
                self.next_operator += 1;
                let drives = driver && self.state.driver().is_none();
                // Subscribe before emitting so the joiner sees its own arrival; what came
                // before is in the journal up to here.
                let live = self.journal.subscribe();
                let upto = self.journal.written();
                let state = folded.then(|| Box::new(self.state.clone()));
                self.emit(Event::OperatorJoined {
                    id,
                    name: who.display(&name),
                    driver: drives,
                    user: Some(who.user),
                    uid: Some(who.uid),
                })?;
                let (removal, removed) = tokio::sync::oneshot::channel();
                self.removals.insert(id, removal);
                if remote {
                    self.last_heard.insert(id, Instant::now());
                }
                let attached = handle::Attached {
                    id,
                    state,
                    upto,
                    live,
                    removed,
                };
                self.journal.then(move || {
                    let _ = reply.send(Ok(attached));
                });
            }
            Msg::SetTakeoverAfter(d) => self.takeover_after = d,
            Msg::Detach { id } => {
                self.removals.remove(&id);
                self.last_heard.remove(&id);
                if self.state.operators.iter().any(|o| o.id == id) {
                    self.emit(Event::OperatorLeft { id })?;
                }
            }
            Msg::Position { after, reply } => {
                let live = self.journal.subscribe();
                let _ = reply.send(handle::Position {
                    from: self.checkpoints.before(after),
                    upto: self.journal.written(),
                    last_seq: self.state.last_seq,
                    live,
                });
            }
            Msg::Snapshot { reply } => {
                let _ = reply.send(self.state.clone());
            }
            Msg::Folded { reply } => {
                let live = self.journal.subscribe();
                let _ = reply.send(handle::Folded {
                    state: Box::new(self.state.clone()),
                    began: self.began,
                    upto: self.journal.written(),
                    live,
                });
            }
            Msg::Shutdown => {}
        }
        Ok(())
    }

    /// The user an operator's decisions are recorded under: the real user, never the label.
    fn name_of(&self, id: u64) -> String {
        if id == SYSTEM {
            return "flightdeck".into();
        }
        self.state
            .operators
            .iter()
            .find(|o| o.id == id)
            .map(|o| o.user.clone())
            .unwrap_or_else(|| format!("operator {id}"))
    }

    /// How an operator shows in the session (label, with the real user when it differs).
    fn shown_as(&self, id: u64) -> String {
        self.state
            .operators
            .iter()
            .find(|o| o.id == id)
            .map(|o| o.name.clone())
            .unwrap_or_else(|| self.name_of(id))
    }

    /// The uid behind an operator (None for flightdeck itself).
    fn uid_of(&self, id: u64) -> Option<u32> {
        self.state
            .operators
            .iter()
            .find(|o| o.id == id)
            .and_then(|o| o.uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::state::StepStatus;
    use crate::plan::test_plans::{empty_target, plan, step};
    use crate::procedure::model::Action;

    /// Tester's session of `plan` starts, with no nodes.
    fn started(plan: Plan) -> Event {
        Event::SessionStarted {
            plan: Box::new(plan),
            nodes: Vec::new(),
            operator: "tester".into(),
            auto: AutoConfirm::default(),
            lb: None,
            health_probes: Vec::new(),
            target: None,
        }
    }

    /// A journal whose session died while step 0's action ran, after `lines` lines of output.
    fn interrupted_journal(path: &Path, lines: usize) -> Target {
        let target = empty_target();
        let manual = |key: &str| step(key, Action::Manual { text: "x".into() });
        let plan = plan("t", vec![manual("a"), manual("b")]);
        let mut w = JournalWriter::create(path, &Header::new("t", "00", "t", "tester")).unwrap();
        let mut events = vec![
            started(plan),
            Event::ActionStarted {
                step: 0,
                phase: Phase::Do,
                attempt: 1,
            },
        ];
        events.extend((0..lines).map(|i| Event::Output {
            step: 0,
            phase: Phase::Do,
            stream: super::super::event::Stream::Stdout,
            line: format!("line {i}"),
        }));
        for (i, event) in events.into_iter().enumerate() {
            let seq = i as u64 + 1;
            w.append(
                &Stamped {
                    seq,
                    t_ms: seq * 10,
                    event,
                },
                false,
            )
            .unwrap();
        }
        target
    }

    /// Resuming folds the history once, in the engine: the cockpit starts from the engine's
    /// state (`attach_folded`) and folds only what comes after it, and what it shows is the
    /// interrupted prompt, as a fold of the whole journal would.
    #[tokio::test]
    async fn a_resumed_history_is_folded_once_for_the_engine_and_its_cockpit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let target = interrupted_journal(&path, 500);
        let history = journal::read(&path).unwrap().events;
        let last = history.last().unwrap().seq;

        crate::engine::state::folds::count();
        let task = resume(&path, Some(target), "tester", false).unwrap();
        let (state, mut client) = task.handle.attach_folded("tester", true).await.unwrap();
        let mut view = crate::tui::View::folded(
            crate::tui::TuiRole::Driver,
            "t",
            client.operator_id,
            state,
            std::time::Instant::now(),
        );
        // Follow the feed until this operator's own arrival (the first event after the state).
        while !view
            .state
            .operators
            .iter()
            .any(|o| o.id == client.operator_id)
        {
            let e = tokio::time::timeout(Duration::from_secs(10), client.events.recv())
                .await
                .expect("the feed goes on")
                .expect("the feed is open");
            assert!(e.seq > last, "the feed repeats history: seq {}", e.seq);
            view.apply(&e, std::time::Instant::now());
        }
        let folded = crate::engine::state::folds::taken();
        for seq in 1..=last {
            let times = folded.iter().filter(|s| **s == seq).count();
            assert_eq!(
                times, 1,
                "event {seq} of the history was folded {times} times"
            );
        }

        let prompt = view.state.prompt.expect("the interrupted prompt");
        assert_eq!(
            prompt.kind,
            crate::engine::state::PromptKindTag::Interrupted
        );
        assert_eq!(prompt.step, 0);
        // The same as a fold of everything journaled, the engine's own events included.
        let whole = SessionState::fold(&journal::read(&path).unwrap().events);
        assert_eq!(view.state.prompt, whole.prompt);
        assert_eq!(view.state.steps, whole.steps);
        assert_eq!(view.state.last_seq, whole.last_seq);
        task.handle.shutdown().await;
        let _ = task.join.await;
    }

    /// `resume --headless` prints what the history comes to and the last lines of the step
    /// where it stopped, then what the resume adds, not every line of the history.
    #[tokio::test]
    async fn a_headless_resume_summarises_the_history_instead_of_printing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let target = interrupted_journal(&path, 500);
        let task = resume(&path, Some(target), "tester", false).unwrap();
        let mut out = Vec::new();
        let (end, _) = crate::headless::follow(task, &mut out).await;
        let text = String::from_utf8(out).unwrap();
        assert!(
            end.summary.contains("step 1 (a) was interrupted"),
            "{}",
            end.summary
        );
        assert!(
            text.contains("502 events before this resume")
                && text.contains(&format!("flightdeck report {}", path.display()))
                && text.contains("steps: 0 done of 2")
                && text.contains("step 1 (a): interrupted; its last 10 output lines:"),
            "{text}"
        );
        let last = crate::headless::RESUME_OUTPUT_LINES;
        for i in 0..500 {
            let line = format!("  | line {i}\n");
            assert_eq!(text.contains(&line), i >= 500 - last, "line {i}: {text}");
        }
        assert!(text.contains("resumed by tester"), "{text}");
        assert!(text.lines().count() < 30, "{text}");
    }

    /// An engine on a one-step plan (a manual step), its session started.
    fn one_manual_step(path: &Path) -> (Engine, mpsc::Receiver<WorkerMsg>) {
        let writer = JournalWriter::create(path, &Header::new("t", "00", "t", "tester")).unwrap();
        let (mut engine, worker_rx) =
            Engine::new(empty_target(), writer, SessionState::empty()).unwrap();
        let plan = plan("t", vec![step("a", Action::Manual { text: "x".into() })]);
        engine.emit(started(plan)).unwrap();
        (engine, worker_rx)
    }

    /// The action's task is started with its `ActionStarted`, but does nothing until that is
    /// fsynced: here the fsync is held (a slow disk) while the runtime's one thread goes on.
    #[tokio::test(flavor = "current_thread")]
    async fn an_action_waits_until_its_start_is_fsynced() {
        let dir = tempfile::tempdir().unwrap();
        let (mut engine, mut worker_rx) = one_manual_step(&dir.path().join("j.jsonl"));
        engine.journal.settle().await.unwrap();
        let mut gate = sync_gate::SyncGate::install(&mut engine.journal);
        gate.arm();
        engine.start_action(0, Phase::Do).unwrap();
        let settling = tokio::spawn(async move {
            let r = engine.journal.settle().await;
            (engine, r)
        });
        gate.held().await;
        // The runtime runs other tasks (the action's among them) while the fsync is held.
        assert!(
            sync_gate::stays_pending(&mut Box::pin(worker_rx.recv())).await,
            "the action ran before its start was durable"
        );
        gate.release();
        let (mut engine, r) = sync_gate::within("the settle", settling).await.unwrap();
        r.unwrap();
        let done = action_done(&mut engine.action).await.unwrap();
        assert_eq!(done.0, Verdict::Passed, "{done:?}");
        assert!(matches!(worker_rx.try_recv(), Ok(WorkerMsg::Output { .. })));
    }

    #[tokio::test]
    async fn a_panicking_action_becomes_a_failed_step_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (mut engine, mut worker_rx) = one_manual_step(&dir.path().join("j.jsonl"));
        engine
            .emit(Event::ActionStarted {
                step: 0,
                phase: Phase::Do,
                attempt: 1,
            })
            .unwrap();
        let (stop, _) = tokio::sync::watch::channel(None);
        engine.action = Some(RunningAction {
            step: 0,
            phase: Phase::Do,
            attempt: 1,
            join: tokio::spawn(async { panic!("Instant + Duration overflowed") }),
            stop,
        });
        let done = action_done(&mut engine.action).await;
        engine.on_action_done(done, &mut worker_rx).unwrap();
        let s = &engine.state.steps[0];
        assert_eq!(s.status, StepStatus::Failed);
        let detail = s.detail.clone().unwrap_or_default();
        assert!(
            detail.contains("panic: Instant + Duration overflowed"),
            "{detail}"
        );
        assert!(engine.action.is_none());
        assert_eq!(engine.state.running(), None);
    }
}
