//! The engine task: one per session. It alone changes session state, always the same way:
//! decide -> journal the event (fsync for decisions) -> apply -> publish.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::action::{execute, ActionCtx};
use super::client::{CommandSender, Request, SessionClient};
use super::event::{
    AutoConfirm, Event, Outcome, Phase, PromptKind, Stamped, TrafficWindow, Verdict,
};
use super::state::{Mode, PromptKindTag, SessionState, StepStatus};
use super::strings::Secrets;
use super::worker::WorkerMsg;
use super::{Command, Rejected};
use crate::journal::{self, Header, JournalError, JournalWriter};
use crate::lb::LbClient;
use crate::plan::{Confirm, Plan};
use crate::target::Target;

/// The operator id commands carry when they come from flightdeck itself (`--yes`, headless).
pub const SYSTEM: u64 = 0;
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

enum Msg {
    Command {
        from: u64,
        command: Command,
        reply: oneshot::Sender<Result<(), Rejected>>,
    },
    Attach {
        name: String,
        driver: bool,
        reply: oneshot::Sender<(u64, Vec<Stamped>, broadcast::Receiver<Stamped>)>,
    },
    Detach {
        id: u64,
    },
    History {
        after: u64,
        reply: oneshot::Sender<(Vec<Stamped>, broadcast::Receiver<Stamped>)>,
    },
    Snapshot {
        reply: oneshot::Sender<SessionState>,
    },
    Shutdown,
}

/// The handle the rest of the program holds on a running session.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Msg>,
    journal: PathBuf,
}

/// Owns the engine task; awaiting it yields the final state.
pub struct EngineTask {
    pub handle: EngineHandle,
    pub join: JoinHandle<Result<SessionState, EngineError>>,
}

impl EngineHandle {
    pub fn journal_path(&self) -> &Path {
        &self.journal
    }

    /// Attach an operator: returns a client that sees every event from the first and sends
    /// commands as that operator. The first to ask for it (or any, if nobody drives) drives.
    pub async fn attach(&self, name: &str, driver: bool) -> Result<SessionClient, Rejected> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Attach {
                name: name.to_string(),
                driver,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        let (id, history, live) = rx.await.map_err(|_| gone())?;
        Ok(self.client(id, name, history, live))
    }

    fn client(
        &self,
        id: u64,
        name: &str,
        history: Vec<Stamped>,
        mut live: broadcast::Receiver<Stamped>,
    ) -> SessionClient {
        let (ev_tx, ev_rx) = mpsc::channel(4096);
        let engine = self.tx.clone();
        tokio::spawn(async move {
            let mut last = 0;
            for e in history {
                last = e.seq;
                if ev_tx.send(e).await.is_err() {
                    return;
                }
            }
            loop {
                match live.recv().await {
                    Ok(e) => {
                        if e.seq <= last && !e.event.is_live_only() {
                            continue;
                        }
                        if !e.event.is_live_only() {
                            last = e.seq;
                        }
                        if ev_tx.send(e).await.is_err() {
                            return;
                        }
                    }
                    // Fell behind: catch up from the journal's copy, never drop silently.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let (reply, rx) = oneshot::channel();
                        if engine
                            .send(Msg::History { after: last, reply })
                            .await
                            .is_err()
                        {
                            return;
                        }
                        let Ok((missed, fresh)) = rx.await else {
                            return;
                        };
                        live = fresh;
                        for e in missed {
                            last = e.seq;
                            if ev_tx.send(e).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        let (cmd_tx, mut cmd_rx) = mpsc::channel::<Request>(64);
        let engine = self.tx.clone();
        tokio::spawn(async move {
            while let Some(req) = cmd_rx.recv().await {
                let msg = Msg::Command {
                    from: id,
                    command: req.command,
                    reply: req.reply,
                };
                if engine.send(msg).await.is_err() {
                    return;
                }
            }
            // Every sender is gone: the operator left.
            let _ = engine.send(Msg::Detach { id }).await;
        });
        SessionClient {
            operator_id: id,
            operator: name.to_string(),
            events: ev_rx,
            commands: CommandSender::new(cmd_tx),
        }
    }

    /// A command from flightdeck itself (headless runner, tests).
    pub async fn command(&self, command: Command) -> Result<(), Rejected> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Command {
                from: SYSTEM,
                command,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Events from `after` on (journaled ones), then live ones.
    pub async fn subscribe(
        &self,
        after: u64,
    ) -> Result<(Vec<Stamped>, broadcast::Receiver<Stamped>), Rejected> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::History { after, reply })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    pub async fn snapshot(&self) -> Result<SessionState, Rejected> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Snapshot { reply })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// Stop the engine. A running action is killed with it (resume shows it interrupted).
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown).await;
    }
}

fn gone() -> Rejected {
    Rejected("the session has ended".into())
}

/// A probe instance: probe name and node (None for a global probe).
type ProbeKey = (String, Option<String>);

struct Engine {
    state: SessionState,
    journal: JournalWriter,
    history: Vec<Stamped>,
    live: broadcast::Sender<Stamped>,
    clock: Instant,
    t_base: u64,
    target: Arc<Target>,
    secrets: Arc<Secrets>,
    lb: Option<LbClient>,
    http: reqwest::Client,
    worker_tx: mpsc::Sender<WorkerMsg>,
    action: Option<JoinHandle<()>>,
    time_scale: f64,
    next_operator: u64,
    probe_ok: HashMap<ProbeKey, bool>,
    /// Samples since the last summary: (ok, latency ms).
    probe_stats: BTreeMap<ProbeKey, Vec<(bool, u64)>>,
    last_lb: Option<Vec<crate::lb::Backend>>,
    last_lb_error: Option<String>,
    traffic_seen: Option<TrafficWindow>,
    traffic_window: TrafficWindow,
    traffic_since: u64,
}

/// Start a new session: journal header, `SessionStarted`, then the engine task.
pub fn start(cfg: EngineConfig) -> Result<EngineTask, EngineError> {
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
        plan: cfg.plan.clone(),
        nodes: cfg.target.nodes.clone(),
        operator: cfg.operator.clone(),
        auto: cfg.auto,
        lb: cfg.target.lb.as_ref().map(|l| l.driver.clone()),
        health_probes,
        target: Some(cfg.target.clone()),
    };
    let (mut engine, worker_rx) =
        Engine::new(cfg.target, writer, SessionState::empty(), Vec::new())?;
    engine.time_scale = cfg.time_scale;
    spawn(engine, worker_rx, cfg.journal, cfg.observe, vec![started])
}

/// Pick a session up from its journal. The target is the given one, else the journaled one.
pub fn resume(
    path: &Path,
    target: Option<Target>,
    operator: &str,
    observe: bool,
) -> Result<EngineTask, EngineError> {
    let read = journal::read(path)?;
    let state = SessionState::fold(&read.events);
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
    let journaled_target = read.events.iter().find_map(|e| match &e.event {
        Event::SessionStarted { target, .. } => target.clone(),
        _ => None,
    });
    let Some(target) = target.or(journaled_target) else {
        return Err(EngineError::Invalid(
            "the journal does not record its target: pass --target".into(),
        ));
    };
    let writer = JournalWriter::reopen(path, &read)?;
    let (engine, worker_rx) = Engine::new(target, writer, state, read.events)?;
    spawn(
        engine,
        worker_rx,
        path.to_path_buf(),
        observe,
        vec![Event::Resumed {
            operator: operator.to_string(),
        }],
    )
}

fn spawn(
    mut engine: Engine,
    worker_rx: mpsc::Receiver<WorkerMsg>,
    journal: PathBuf,
    observe: bool,
    first: Vec<Event>,
) -> Result<EngineTask, EngineError> {
    for ev in first {
        engine.emit(ev)?;
    }
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
        history: Vec<Stamped>,
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
        Ok((
            Engine {
                state,
                journal,
                history,
                live,
                clock: Instant::now(),
                t_base,
                target: Arc::new(target),
                secrets,
                lb,
                http: super::check::http_client(),
                worker_tx,
                action: None,
                time_scale: 1.0,
                next_operator: 1,
                probe_ok: HashMap::new(),
                probe_stats: BTreeMap::new(),
                last_lb: None,
                last_lb_error: None,
                traffic_seen: None,
                traffic_window: TrafficWindow::default(),
                traffic_since: 0,
            },
            worker_rx,
        ))
    }

    fn now_ms(&self) -> u64 {
        self.t_base + self.clock.elapsed().as_millis() as u64
    }

    /// Journal, apply, publish — in that order.
    fn emit(&mut self, event: Event) -> Result<(), EngineError> {
        let live_only = event.is_live_only();
        let stamped = Stamped {
            seq: if live_only {
                self.state.last_seq
            } else {
                self.state.last_seq + 1
            },
            t_ms: self.now_ms().max(self.state.t_ms),
            event,
        };
        if !live_only {
            self.journal.append(&stamped, stamped.event.is_durable())?;
            self.history.push(stamped.clone());
        }
        self.state.apply(&stamped);
        let _ = self.live.send(stamped);
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
        let result = loop {
            if let Err(e) = self.advance() {
                break Err(e);
            }
            let step = tokio::select! {
                msg = rx.recv() => match msg {
                    None | Some(Msg::Shutdown) => break Ok(()),
                    Some(m) => self.on_msg(m),
                },
                Some(w) = worker_rx.recv() => self.on_worker(w),
                _ = summary.tick() => self.emit_summaries(),
            };
            if let Err(e) = step {
                break Err(e);
            }
        };
        background.abort_all();
        if let Some(a) = self.action.take() {
            a.abort();
        }
        result.map(|()| self.state)
    }

    fn on_msg(&mut self, msg: Msg) -> Result<(), EngineError> {
        match msg {
            Msg::Command {
                from,
                command,
                reply,
            } => {
                let r = self.command(from, command)?;
                let _ = reply.send(r);
            }
            Msg::Attach {
                name,
                driver,
                reply,
            } => {
                let id = self.next_operator;
                self.next_operator += 1;
                let drives = driver && self.state.driver().is_none();
                // Subscribe before emitting so the joiner sees its own arrival.
                let live = self.live.subscribe();
                let history = self.history.clone();
                self.emit(Event::OperatorJoined {
                    id,
                    name,
                    driver: drives,
                })?;
                let _ = reply.send((id, history, live));
            }
            Msg::Detach { id } => {
                if self.state.operators.iter().any(|o| o.id == id) {
                    self.emit(Event::OperatorLeft { id })?;
                }
            }
            Msg::History { after, reply } => {
                let live = self.live.subscribe();
                let missed = self
                    .history
                    .iter()
                    .filter(|e| e.seq > after)
                    .cloned()
                    .collect();
                let _ = reply.send((missed, live));
            }
            Msg::Snapshot { reply } => {
                let _ = reply.send(self.state.clone());
            }
            Msg::Shutdown => {}
        }
        Ok(())
    }

    fn name_of(&self, id: u64) -> String {
        if id == SYSTEM {
            return "flightdeck".into();
        }
        self.state
            .operators
            .iter()
            .find(|o| o.id == id)
            .map(|o| o.name.clone())
            .unwrap_or_else(|| format!("operator {id}"))
    }

    /// Check a command against the state and the sender's role; emit what it causes.
    fn command(&mut self, from: u64, cmd: Command) -> Result<Result<(), Rejected>, EngineError> {
        let reject = |s: String| Ok(Err(Rejected(s)));
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
        if self.state.is_finished()
            && !matches!(
                cmd,
                Command::Note { .. }
                    | Command::RequestControl
                    | Command::GrantControl { .. }
                    | Command::TakeControl
            )
        {
            return reject("the session has finished".into());
        }
        match cmd {
            Command::Confirm { prompt, phrase } => {
                let Some(open) = self.state.prompt.filter(|p| p.id == prompt) else {
                    return reject("that prompt is no longer open".into());
                };
                let step = open.step;
                match open.kind {
                    PromptKindTag::Run => {
                        if let Confirm::Phrase { phrase: want } =
                            &self.state.plan.steps[step].confirm
                        {
                            if phrase.as_deref() != Some(want.as_str()) {
                                return reject(format!("type the phrase exactly: {want}"));
                            }
                        }
                        self.approve_and_maybe_run(step, &by, Phase::Do)?;
                    }
                    PromptKindTag::Undo => self.approve_and_maybe_run(step, &by, Phase::Undo)?,
                    PromptKindTag::Failed | PromptKindTag::Interrupted => {
                        return reject("choose retry, undo, skip or abort".into())
                    }
                }
            }
            Command::Approve { prompt } => {
                let Some(open) = self.state.prompt.filter(|p| p.id == prompt) else {
                    return reject("that prompt is no longer open".into());
                };
                if self.state.steps[open.step].approvals.contains(&by) {
                    return reject("you already approved this step".into());
                }
                let phase = if open.kind == PromptKindTag::Undo {
                    Phase::Undo
                } else {
                    Phase::Do
                };
                if !matches!(open.kind, PromptKindTag::Run | PromptKindTag::Undo) {
                    return reject("there is nothing to approve".into());
                }
                self.approve_and_maybe_run(open.step, &by, phase)?;
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
                    return reject(format!("no step {}", step + 1));
                };
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
                self.emit(Event::Confirmed {
                    step,
                    by,
                    auto: false,
                })?;
                self.start_action(step, phase)?;
            }
            Command::Skip { step } => {
                let ok_here = match self.state.mode {
                    Mode::Forward => self.state.cursor() == Some(step),
                    Mode::RollingBack => self.state.undo_candidate() == Some(step),
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
                    return reject(format!("no step {}", step + 1));
                };
                match (s.status, s.phase) {
                    (StepStatus::Interrupted | StepStatus::Failed, Phase::Do) => {
                        self.emit(Event::MarkedDone { step, by })?
                    }
                    (StepStatus::Interrupted | StepStatus::UndoFailed, Phase::Undo) => {
                        let attempt = s.attempts;
                        self.emit(Event::ActionFinished {
                            step,
                            phase: Phase::Undo,
                            attempt,
                            verdict: Verdict::Passed,
                            detail: format!("undo marked done by {by}"),
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
                if self.state.running().is_some() {
                    return reject("wait for the running action to finish".into());
                }
                if self.state.undo_candidate() != Some(step) {
                    return reject(match self.state.undo_candidate() {
                        Some(c) => format!(
                            "undo goes in reverse order: undo step {} ({}) first",
                            c + 1,
                            self.state.plan.steps[c].title
                        ),
                        None => "there is nothing to undo".into(),
                    });
                }
                let planned = &self.state.plan.steps[step];
                if let (Some(why), StepStatus::Succeeded) =
                    (&planned.irreversible, self.state.steps[step].status)
                {
                    return reject(format!("step {} is irreversible: {why}", step + 1));
                }
                if planned.undo.is_none() {
                    return reject(format!("step {} has no undo action", step + 1));
                }
                self.open_prompt(step, PromptKind::Undo)?;
            }
            Command::Abort { rollback } => {
                if self.state.running().is_some() {
                    return reject("an action is running: wait for it to end, then abort".into());
                }
                self.emit(Event::AbortRequested { by, rollback })?;
                if !rollback {
                    self.emit(Event::Finished {
                        outcome: Outcome::Aborted,
                    })?;
                }
            }
            Command::Note { text } => {
                let text = self.secrets.redact(text.trim());
                if text.is_empty() {
                    return reject("an empty note".into());
                }
                self.emit(Event::Note { by, text })?;
            }
            Command::RequestControl => {
                if is_driver {
                    return reject("you already drive".into());
                }
                self.emit(Event::ControlRequested { id: from, name: by })?;
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
                self.emit(Event::DriverChanged { id: to, name })?;
            }
            Command::TakeControl => {
                if let Some(d) = self.state.driver() {
                    if d.id != from {
                        return reject(format!("{} drives and is attached: ask them (c)", d.name));
                    }
                    return reject("you already drive".into());
                }
                self.emit(Event::DriverChanged { id: from, name: by })?;
            }
        }
        Ok(Ok(()))
    }

    fn approve_and_maybe_run(
        &mut self,
        step: usize,
        by: &str,
        phase: Phase,
    ) -> Result<(), EngineError> {
        let need = self.state.plan.steps[step].approvals.max(1) as usize;
        if need > 1 {
            self.emit(Event::Approved {
                step,
                by: by.to_string(),
            })?;
            if self.state.steps[step].approvals.len() < need {
                return Ok(());
            }
        }
        self.emit(Event::Confirmed {
            step,
            by: by.to_string(),
            auto: false,
        })?;
        self.start_action(step, phase)
    }

    fn start_action(&mut self, step: usize, phase: Phase) -> Result<(), EngineError> {
        let planned = &self.state.plan.steps[step];
        let action = match phase {
            Phase::Do => planned.action.clone(),
            Phase::Undo => match &planned.undo {
                Some(a) => a.clone(),
                None => {
                    return self.emit(Event::ActionFinished {
                        step,
                        phase,
                        attempt: self.state.steps[step].attempts,
                        verdict: Verdict::Passed,
                        detail: "no undo action: nothing to compensate".into(),
                    })
                }
            },
        };
        let attempt = self.state.steps[step].attempts + 1;
        // Journaled and fsynced before the action can touch anything.
        self.emit(Event::ActionStarted {
            step,
            phase,
            attempt,
        })?;
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
        };
        self.action = Some(tokio::spawn(execute(action, ctx)));
        Ok(())
    }

    fn open_prompt(&mut self, step: usize, prompt: PromptKind) -> Result<(), EngineError> {
        let id = self.state.last_seq + 1;
        self.emit(Event::PromptOpened { id, step, prompt })
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
                let c = self.state.undo_candidate()?;
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
    fn advance(&mut self) -> Result<(), EngineError> {
        loop {
            if self.state.is_finished()
                || self.state.running().is_some()
                || self.state.steps.is_empty()
            {
                return Ok(());
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
                        let floor = self.state.point_of_no_return();
                        match (self.state.undo_candidate(), floor) {
                            (None, _) => {
                                return self.emit(Event::Finished {
                                    outcome: Outcome::RolledBack,
                                })
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
                    self.emit(Event::AbortRequested {
                        by: "--on-failure rollback".into(),
                        rollback: true,
                    })?;
                    continue;
                }
            };
            let by = if auto.yes { "--yes" } else { "confirm = none" };
            self.emit(Event::Confirmed {
                step: open.step,
                by: by.into(),
                auto: true,
            })?;
            self.start_action(open.step, phase)?;
        }
    }

    fn on_worker(&mut self, msg: WorkerMsg) -> Result<(), EngineError> {
        let current = |s: &SessionState, step: usize, attempt: u32| {
            s.running() == Some(step) && s.steps[step].attempts == attempt
        };
        match msg {
            WorkerMsg::Output {
                step,
                phase,
                attempt,
                stream,
                line,
            } => {
                if current(&self.state, step, attempt) {
                    self.emit(Event::Output {
                        step,
                        phase,
                        stream,
                        line,
                    })?;
                }
            }
            WorkerMsg::Gate {
                step,
                attempt,
                passing,
                total,
                stable_ms,
                need_ms,
            } => {
                if current(&self.state, step, attempt) {
                    self.emit(Event::GateProgress {
                        step,
                        passing,
                        total,
                        stable_ms,
                        need_ms,
                    })?;
                }
            }
            WorkerMsg::Finished {
                step,
                phase,
                attempt,
                verdict,
                detail,
            } => {
                if current(&self.state, step, attempt) {
                    self.action = None;
                    self.emit(Event::ActionFinished {
                        step,
                        phase,
                        attempt,
                        verdict,
                        detail,
                    })?;
                }
            }
            WorkerMsg::Probe {
                probe,
                node,
                ok,
                latency_ms,
                detail,
                facts,
            } => {
                let key = (probe.clone(), node.clone());
                self.probe_stats
                    .entry(key.clone())
                    .or_default()
                    .push((ok, latency_ms));
                let changed = self.probe_ok.insert(key, ok) != Some(ok);
                self.emit(Event::ProbeSample {
                    probe: probe.clone(),
                    node: node.clone(),
                    ok,
                    latency_ms,
                    detail: detail.clone(),
                })?;
                if changed {
                    self.emit(Event::ProbeChanged {
                        probe,
                        node: node.clone(),
                        ok,
                        detail,
                    })?;
                }
                if let Some(n) = node {
                    let known = self.state.nodes.iter().find(|v| v.node.name == n);
                    let fresh: BTreeMap<String, String> = facts
                        .into_iter()
                        .filter(|(k, v)| known.and_then(|kn| kn.facts.get(k)) != Some(v))
                        .collect();
                    if known.is_some() && !fresh.is_empty() {
                        self.emit(Event::NodeFacts {
                            node: n,
                            facts: fresh,
                        })?;
                    }
                }
            }
            WorkerMsg::Lb(result) => {
                let (backends, error) = match result {
                    Ok(b) => (b, None),
                    Err(e) => (self.state.lb.clone(), Some(e)),
                };
                let strip = |v: &[crate::lb::Backend]| {
                    v.iter()
                        .map(|b| crate::lb::Backend {
                            sessions: None,
                            ..b.clone()
                        })
                        .collect::<Vec<_>>()
                };
                let same = self.last_lb.as_deref().map(strip) == Some(strip(&backends))
                    && self.last_lb_error == error;
                if !same {
                    self.last_lb = Some(backends.clone());
                    self.last_lb_error = error.clone();
                    self.emit(Event::LbChanged { backends, error })?;
                } else if error.is_none() && self.last_lb.as_ref() != Some(&backends) {
                    self.last_lb = Some(backends.clone());
                    self.emit(Event::LbSample { backends })?;
                }
            }
            WorkerMsg::Traffic(totals) => {
                let now = self.now_ms();
                if let Some(prev) = self.traffic_seen {
                    let delta = TrafficWindow {
                        reads_ok: totals.reads_ok.saturating_sub(prev.reads_ok),
                        reads_failed: totals.reads_failed.saturating_sub(prev.reads_failed),
                        writes_ok: totals.writes_ok.saturating_sub(prev.writes_ok),
                        writes_rejected: totals
                            .writes_rejected
                            .saturating_sub(prev.writes_rejected),
                        writes_failed: totals.writes_failed.saturating_sub(prev.writes_failed),
                    };
                    self.traffic_window.add(&delta);
                } else {
                    self.traffic_since = now;
                }
                self.traffic_seen = Some(totals);
                let w = self.traffic_window;
                let any =
                    w.reads_ok + w.reads_failed + w.writes_ok + w.writes_rejected + w.writes_failed
                        > 0;
                let failing = w.reads_failed + w.writes_failed > 0;
                let due = now.saturating_sub(self.traffic_since) >= TRAFFIC_EVERY_MS;
                if any && (due || failing) {
                    self.emit(Event::Traffic {
                        window_ms: now.saturating_sub(self.traffic_since).max(1),
                        counts: w,
                    })?;
                    self.traffic_window = TrafficWindow::default();
                    self.traffic_since = now;
                } else if !any && due {
                    self.traffic_since = now;
                }
            }
        }
        Ok(())
    }

    fn emit_summaries(&mut self) -> Result<(), EngineError> {
        let stats = std::mem::take(&mut self.probe_stats);
        for ((probe, node), samples) in stats {
            if samples.is_empty() {
                continue;
            }
            let mut lat: Vec<u64> = samples.iter().map(|(_, l)| *l).collect();
            lat.sort_unstable();
            self.emit(Event::ProbeSummary {
                probe,
                node,
                count: samples.len() as u32,
                failures: samples.iter().filter(|(ok, _)| !ok).count() as u32,
                min_ms: lat[0],
                median_ms: lat[lat.len() / 2],
                max_ms: lat[lat.len() - 1],
            })?;
        }
        Ok(())
    }
}
