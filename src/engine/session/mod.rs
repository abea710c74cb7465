//! The engine task: one per session. It alone changes session state, always the same way:
//! decide -> journal the event (fsync for decisions) -> apply -> publish.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::event::{AutoConfirm, Event, Stamped, TrafficWindow};
use super::state::SessionState;
use super::strings::Secrets;
use super::worker::WorkerMsg;

mod decide;
mod handle;
mod observe;

use crate::journal::{self, Header, JournalError, JournalWriter};
use crate::lb::LbClient;
use crate::plan::Plan;
use crate::target::Target;
pub use decide::{MAX_NOTE_CHARS, NOTE_BURST, NOTE_REFILL};
use handle::Msg;
pub use handle::{EngineHandle, EngineTask};

/// The operator id commands carry when they come from flightdeck itself (`--yes`, headless).
pub const SYSTEM: u64 = 0;
/// How long a driver's client may show no sign of life (it sends one every few seconds)
/// before another operator may take control. An SSH connection that hangs rather than drops
/// keeps its socket open for hours; a minute of silence is already not a busy operator.
pub const TAKEOVER_AFTER: Duration = Duration::from_secs(60);
/// How many events a joining or lagging operator's feed takes from the history at a time: a
/// client that does not read holds at most a page and its bounded queue, never a copy of the
/// whole session.
pub const HISTORY_PAGE: usize = 512;
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
    /// The uid the engine runs as: the session's owner, who may always take control.
    owner_uid: u32,
    /// How long a remote driver may show no sign of life before others may take control.
    takeover_after: Duration,
    /// When each remote operator last showed a sign of life (any command, `Alive` included).
    last_heard: HashMap<u64, Instant>,
    /// Closes an operator's feed when the owner removes them.
    removals: HashMap<u64, tokio::sync::oneshot::Sender<()>>,
    /// Per user: notes left in the burst, and since when the refill counts.
    note_budget: HashMap<u32, (u32, Instant)>,
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
                owner_uid: nix::unistd::getuid().as_raw(),
                takeover_after: TAKEOVER_AFTER,
                last_heard: HashMap::new(),
                removals: HashMap::new(),
                note_budget: HashMap::new(),
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
                if let Some(t) = self.last_heard.get_mut(&from) {
                    *t = Instant::now();
                }
                let r = self.command(from, command)?;
                let _ = reply.send(r);
            }
            Msg::Attach {
                who,
                name,
                driver,
                remote,
                reply,
            } => {
                if self.state.removed_uids.contains(&who.uid) && who.uid != self.owner_uid {
                    let _ = reply.send(Err(crate::engine::Rejected(format!(
                        "the session's owner removed {} from this session",
                        who.user
                    ))));
                    return Ok(());
                }
                let id = self.next_operator;
                self.next_operator += 1;
                let drives = driver && self.state.driver().is_none();
                // Subscribe before emitting so the joiner sees its own arrival.
                let live = self.live.subscribe();
                let history = self.history_page(0, HISTORY_PAGE);
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
                let _ = reply.send(Ok(handle::Attached {
                    id,
                    history,
                    live,
                    removed,
                }));
            }
            Msg::SetTakeoverAfter(d) => self.takeover_after = d,
            Msg::Detach { id } => {
                self.removals.remove(&id);
                self.last_heard.remove(&id);
                if self.state.operators.iter().any(|o| o.id == id) {
                    self.emit(Event::OperatorLeft { id })?;
                }
            }
            Msg::History {
                after,
                limit,
                reply,
            } => {
                let live = self.live.subscribe();
                let _ = reply.send((self.history_page(after, limit), live));
            }
            Msg::Snapshot { reply } => {
                let _ = reply.send(self.state.clone());
            }
            Msg::Shutdown => {}
        }
        Ok(())
    }

    /// At most `limit` journaled events after seq `after`, in order.
    fn history_page(&self, after: u64, limit: usize) -> Vec<Stamped> {
        let start = self.history.partition_point(|e| e.seq <= after);
        self.history[start..].iter().take(limit).cloned().collect()
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
