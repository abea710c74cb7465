//! Shared by integration tests that run a procedure against a fresh lab, headless, in process.
#![allow(dead_code)]

pub mod haproxy;
pub mod plans;
pub mod replay_follow;
pub mod socket;
pub mod users;

use std::path::{Path, PathBuf};

use flightdeck::engine::event::AutoConfirm;
use flightdeck::engine::session::{self, EngineConfig};
use flightdeck::engine::SessionState;
use flightdeck::headless::{self, HeadlessEnd};
use flightdeck::journal::{self, Journal};
use flightdeck::lab::{Lab, LabConfig};
use flightdeck::plan::expand::{build_plan, PlanOptions};
use flightdeck::procedure::load::load_procedure;

/// Gates shrink with the fast lab's delays (`Timing::fast`).
pub const LAB_SCALE: f64 = 0.1;

pub struct LabRun {
    pub end: HeadlessEnd,
    pub state: SessionState,
    pub journal: Journal,
    /// What the headless runner printed.
    pub output: String,
    pub lab: Lab,
    /// What the engine answered a plain full rollback past the point of no return (a run that
    /// overrode it: [`Scripted::overriding`]).
    pub refusal: Option<String>,
}

/// Plan `procedure` against a fresh lab started from `cfg`, run it headless with `auto`, and
/// hand back everything (the lab still running, for assertions; call `lab.shutdown()`).
pub async fn run_on_lab(procedure: &str, cfg: LabConfig, auto: AutoConfirm) -> LabRun {
    run_on_lab_scaled(procedure, cfg, auto, LAB_SCALE).await
}

/// [`run_on_lab`] with gates shrunk by `time_scale`: for runs that wait out a gate sized for a
/// real cluster (a failing sync gate, say).
pub async fn run_on_lab_scaled(
    procedure: &str,
    cfg: LabConfig,
    auto: AutoConfirm,
    time_scale: f64,
) -> LabRun {
    let lab = Lab::start(cfg).await.expect("lab starts");
    run_on_started_lab(procedure, lab, auto, time_scale).await
}

/// [`run_on_lab_scaled`] on a lab the test has started (and perhaps changed) itself.
pub async fn run_on_started_lab(
    procedure: &str,
    lab: Lab,
    auto: AutoConfirm,
    time_scale: f64,
) -> LabRun {
    run_on_started_lab_with(procedure, lab, auto, time_scale, |_| {}).await
}

/// [`run_on_started_lab`] against the lab's target as `edit` changes it (an old binding, a
/// shorter gate).
pub async fn run_on_started_lab_with(
    procedure: &str,
    lab: Lab,
    auto: AutoConfirm,
    time_scale: f64,
    edit: impl FnOnce(&mut flightdeck::target::Target),
) -> LabRun {
    let lp = load_procedure(Path::new(procedure)).expect("procedure loads");
    // The lab's target with the lab-sized overrides of the gates the procedure sizes for real
    // stores.
    let mut target = lab.target_for(&lp.procedure);
    edit(&mut target);
    let diags = flightdeck::procedure::validate::validate(&lp, Some(&target));
    assert!(
        diags.is_empty(),
        "{procedure} against the lab target:\n{diags}"
    );
    let plan = build_plan(&lp, &target, &PlanOptions::default()).expect("plan builds");
    let dir = tempfile::tempdir().expect("tempdir");
    let journal_path = dir.path().join("journal.jsonl");
    let task = session::start(EngineConfig {
        plan,
        target,
        auto,
        operator: "test".into(),
        journal: journal_path.clone(),
        observe: true,
        time_scale,
    })
    .expect("engine starts");
    let mut out: Vec<u8> = Vec::new();
    let (end, state) = headless::follow(task, &mut out).await;
    let journal = journal::read(&journal_path).expect("journal reads");
    same_report_streamed(&journal, &journal_path);
    LabRun {
        end,
        state,
        journal,
        output: String::from_utf8_lossy(&out).into_owned(),
        lab,
        refusal: None,
    }
}

pub fn yes_all() -> AutoConfirm {
    AutoConfirm {
        yes: true,
        yes_phrases: true,
        rollback_on_failure: false,
    }
}

pub fn yes_all_rollback() -> AutoConfirm {
    AutoConfirm {
        rollback_on_failure: true,
        ..yes_all()
    }
}

/// Like `run_on_lab`, but a scripted operator drives: it confirms every step (typing phrases)
/// until the run prompt of the step keyed `abort_at` opens, aborts there with rollback, and
/// confirms every undo. An undo that fails ends the session (abort without rollback), so the
/// state says how far the rollback went. The engine itself is not told anything special.
pub async fn abort_on_lab_at(procedure: &str, cfg: LabConfig, abort_at: &str) -> LabRun {
    abort_on_lab(procedure, cfg, abort_at, Scripted::default()).await
}

/// [`abort_on_lab_at`] with lab faults staged as `run --lab --fault` stages them
/// (`never-ready:node1@step=version@node1`; without `@step=` from the lab's start). A step
/// with `confirm = "none"` has no prompt: the operator aborts as soon as it starts (a gate
/// is cancelled), which is how one stops in the middle of a gate.
pub async fn abort_on_lab_with_faults(
    procedure: &str,
    cfg: LabConfig,
    abort_at: &str,
    faults: &[&str],
) -> LabRun {
    abort_on_lab(procedure, cfg, abort_at, Scripted::staging(faults)).await
}

/// How the scripted operator of [`abort_on_lab`] aborts (the default: plainly, with rollback).
#[derive(Default)]
pub struct Scripted {
    /// Staged through the lab's admin API at the abort prompt.
    fault: Option<String>,
    /// Past the point of no return: ask, be refused, then override with this reason.
    override_reason: Option<String>,
    /// Faults as `run --lab --fault` stages them.
    staged: Vec<String>,
    /// Hold the abort prompt until writes were counted since the point of no return.
    wait_for_writes_lost: bool,
    /// Removed from the lab's data directory at the abort prompt (a backup lost before the
    /// undo that needs it runs).
    remove_at_abort: Option<PathBuf>,
    /// At a failed undo, leave the session where it stands (as a headless run stops there)
    /// instead of aborting it.
    leave_at_failed_undo: bool,
    /// The target's `[overrides.<step id>] timeout_secs = N`, as (step id, N).
    timeouts: Vec<(String, u64)>,
}

impl Scripted {
    /// Past the point of no return: the operator asks for a full rollback, the engine refuses
    /// it (its answer is kept in [`LabRun::refusal`]), so the operator overrides it (the phrase
    /// the refusal names, and `reason`).
    pub fn overriding(reason: &str) -> Scripted {
        Scripted {
            override_reason: Some(reason.into()),
            ..Scripted::default()
        }
    }

    /// And wait at the abort prompt until the engine has counted writes since the point of no
    /// return (the lab's load generator must run: `cfg.load_rps`), so the refusal has writes
    /// to name.
    pub fn after_writes(self) -> Scripted {
        Scripted {
            wait_for_writes_lost: true,
            ..self
        }
    }

    /// With `path` (relative to the lab's data directory) removed at the abort prompt: the
    /// rollback finds it gone (`backups/standalone-data-node1.json`: the backup its restore
    /// needs).
    pub fn removing(path: &str) -> Scripted {
        Scripted {
            remove_at_abort: Some(path.into()),
            ..Scripted::default()
        }
    }

    /// Faults as `run --lab --fault` stages them (`never-ready:node1@step=verify@node1`).
    pub fn staging(faults: &[&str]) -> Scripted {
        Scripted {
            staged: faults.iter().map(|f| f.to_string()).collect(),
            ..Scripted::default()
        }
    }

    /// And the target overrides step `id`'s timeout (`[overrides.<id>] timeout_secs = secs`):
    /// a gate that fails fails fast.
    pub fn with_timeout(mut self, id: &str, secs: u64) -> Scripted {
        self.timeouts.push((id.into(), secs));
        self
    }

    /// And leave the session at the first failed undo, unanswered.
    pub fn leaving_at_failed_undo(self) -> Scripted {
        Scripted {
            leave_at_failed_undo: true,
            ..self
        }
    }

    /// With a lab fault (`crash:node3`) staged through the lab's admin API just before the
    /// abort: a node the rollback cannot bring back.
    pub fn with_fault(fault: &str) -> Scripted {
        Scripted {
            fault: Some(fault.into()),
            ..Scripted::default()
        }
    }
}

/// The scripted abort (see [`Scripted`]): [`abort_on_lab_at`], aborting as `how` says.
pub async fn abort_on_lab(
    procedure: &str,
    mut cfg: LabConfig,
    abort_at: &str,
    how: Scripted,
) -> LabRun {
    let Scripted {
        fault,
        override_reason,
        staged,
        wait_for_writes_lost,
        remove_at_abort,
        leave_at_failed_undo,
        timeouts,
    } = how;
    use flightdeck::engine::event::{Event, Phase};
    use flightdeck::engine::lab_faults::{LabFaults, StagedFault};
    use flightdeck::engine::state::{Mode, PromptKindTag};
    use flightdeck::engine::Command;
    use flightdeck::lab::staging::FaultSpec;
    use flightdeck::plan::Confirm;

    let specs: Vec<FaultSpec> = staged
        .iter()
        .map(|f| f.parse().expect("fault parses"))
        .collect();
    cfg.faults.extend(
        specs
            .iter()
            .filter(|f| f.at.is_none())
            .map(|f| f.fault.clone()),
    );
    let lab = Lab::start(cfg).await.expect("lab starts");
    let lp = load_procedure(Path::new(procedure)).expect("procedure loads");
    let mut target = lab.target_for(&lp.procedure);
    for (id, secs) in timeouts {
        target.overrides.steps.insert(
            id,
            flightdeck::target_overrides::StepOverride {
                timeout_secs: Some(secs),
                ..Default::default()
            },
        );
    }
    let plan = build_plan(&lp, &target, &PlanOptions::default()).expect("plan builds");
    let Some(abort_step) = plan.steps.iter().position(|s| s.key == abort_at) else {
        panic!("no step {abort_at} in the plan");
    };
    // A `confirm = "none"` step runs as soon as it is reached: no prompt to abort at, so the
    // operator aborts as it starts.
    let abort_on_start = plan.steps[abort_step].confirm == Confirm::None;
    let staged = specs
        .iter()
        .map(|f| StagedFault {
            fault: f.fault.to_string(),
            step: f
                .resolve_step(&plan)
                .expect("the fault's step is in the plan"),
            phase: if f.undo {
                flightdeck::engine::event::Phase::Undo
            } else {
                flightdeck::engine::event::Phase::Do
            },
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let journal_path = dir.path().join("journal.jsonl");
    let task = session::start_with_faults(
        EngineConfig {
            plan,
            target,
            auto: AutoConfirm::default(),
            operator: "test".into(),
            journal: journal_path.clone(),
            observe: true,
            time_scale: LAB_SCALE,
        },
        LabFaults {
            admin_url: lab.admin_url(),
            staged,
        },
    )
    .expect("engine starts");
    let mut client = task.handle.attach("operator", true).await.expect("attach");
    let mut state = SessionState::empty();
    let mut out: Vec<u8> = Vec::new();
    let mut answered = None;
    let mut refusal = None;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    while !state.is_finished() {
        let e = tokio::time::timeout_at(deadline, client.events.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the session did not finish:\n{}",
                    String::from_utf8_lossy(&out)
                )
            })
            .expect("the session ended before finishing");
        state.apply(&e);
        headless::print_event(&mut out, &state, &e);
        let started_here = matches!(
            e.event,
            Event::ActionStarted { step, phase: Phase::Do, .. } if step == abort_step
        );
        if abort_on_start && started_here && state.mode == Mode::Forward {
            let command = Command::Abort {
                rollback: true,
                reason: None,
            };
            if let Err(r) = client.commands.send(command).await {
                panic!("abort rejected: {r}\n{}", String::from_utf8_lossy(&out));
            }
            continue;
        }
        let Some(open) = state.prompt.filter(|p| Some(p.id) != answered) else {
            continue;
        };
        if state.policy_answers_prompt() || state.running().is_some() {
            continue;
        }
        let at_abort = open.kind == PromptKindTag::Run
            && state.plan.steps[open.step].key == abort_at
            && state.mode == Mode::Forward;
        // The load generator's counts reach the session every few seconds: hold the prompt
        // (as an operator would, reading it) until some writes since the point of no return
        // were counted.
        if at_abort && wait_for_writes_lost && state.writes_since_no_return == 0 {
            continue;
        }
        answered = Some(open.id);
        let planned = &state.plan.steps[open.step];
        let command = match open.kind {
            PromptKindTag::Run if at_abort => {
                if let Some(gone) = &remove_at_abort {
                    let path = lab.data_dir().join(gone);
                    std::fs::remove_file(&path)
                        .unwrap_or_else(|e| panic!("removing {}: {e}", path.display()));
                }
                if let Some(f) = &fault {
                    let staged = flightdeck::lab::http_client()
                        .expect("http client")
                        .post(format!("{}/_lab/fault", lab.admin_url()))
                        .json(&serde_json::json!({ "fault": f }))
                        .send()
                        .await
                        .expect("the lab's admin API answers");
                    assert!(staged.status().is_success(), "staging {f}: {staged:?}");
                }
                match (&override_reason, state.no_return(state.t_ms)) {
                    (Some(reason), Some(nr)) => {
                        // The plain full rollback first: the engine refuses it, saying why.
                        let asked = Command::Abort {
                            rollback: true,
                            reason: None,
                        };
                        match client.commands.send(asked).await {
                            Err(r) => refusal = Some(r.0),
                            Ok(()) => panic!(
                                "a full rollback past the point of no return was accepted\n{}",
                                String::from_utf8_lossy(&out)
                            ),
                        }
                        Command::RollbackPastNoReturn {
                            phrase: nr.phrase,
                            reason: reason.clone(),
                        }
                    }
                    (Some(_), None) => panic!("{abort_at} is not past the point of no return"),
                    (None, _) => Command::Abort {
                        rollback: true,
                        reason: None,
                    },
                }
            }
            PromptKindTag::Run | PromptKindTag::Undo => Command::Confirm {
                prompt: open.id,
                phrase: match &planned.confirm {
                    Confirm::Phrase { phrase } if open.kind == PromptKindTag::Run => {
                        Some(phrase.clone())
                    }
                    _ => None,
                },
            },
            PromptKindTag::Failed | PromptKindTag::Interrupted => {
                let phase = state.steps[open.step].phase;
                assert!(
                    phase == Phase::Undo || state.mode == Mode::Forward,
                    "unexpected prompt {open:?}"
                );
                if leave_at_failed_undo && phase == Phase::Undo {
                    break;
                }
                Command::Abort {
                    rollback: state.mode == Mode::Forward,
                    reason: None,
                }
            }
        };
        if let Err(r) = client.commands.send(command.clone()).await {
            panic!(
                "{command:?} rejected: {r}\n{}",
                String::from_utf8_lossy(&out)
            );
        }
    }
    drop(client);
    task.handle.shutdown().await;
    let state = task
        .join
        .await
        .expect("engine task")
        .expect("engine ends cleanly");
    let journal = journal::read(&journal_path).expect("journal reads");
    same_report_streamed(&journal, &journal_path);
    // What the headless runner would print last: the outcome, in the words every view uses.
    let end = headless::stop_reason(&state).unwrap_or(HeadlessEnd {
        ok: false,
        summary: format!("{:?}", state.mode),
    });
    LabRun {
        end,
        state,
        journal,
        output: String::from_utf8_lossy(&out).into_owned(),
        lab,
        refusal,
    }
}

/// Whether the nodes named are where a verified rollback leaves them: on `version`, running,
/// writable, and in the balancer (`ready`) with the balancer sending them requests.
pub fn back_in_service(snap: &flightdeck::lab::LabSnapshot, version: &str, nodes: &[&str]) -> bool {
    use flightdeck::lab::RunState;
    use flightdeck::procedure::model::Membership;
    nodes.iter().all(|name| {
        let node_ok = snap
            .node(name)
            .is_some_and(|n| n.version == version && n.state == RunState::Running && !n.read_only);
        let lb_ok = snap.backends.iter().any(|b| {
            (b.node.as_deref() == Some(*name) || b.server == *name)
                && b.membership == Membership::Ready
                && b.serving
        });
        node_ok && lb_ok
    })
}

/// `report` streams a journal through its fold (`journal::stream`); the report of the same
/// journal read whole must be the same, field for field. Every lab session a test runs checks it.
fn same_report_streamed(journal: &Journal, path: &Path) {
    use flightdeck::report::{self, ReportFormat};
    let streamed = report::render_with(path, ReportFormat::Json, Default::default())
        .expect("the journal reports");
    assert_eq!(
        streamed.trim_end(),
        report::json(&report::build(journal)).trim_end(),
        "{}: the streamed report differs from the whole journal's",
        path.display()
    );
}

/// Everything a journal holds, as text to search: the file as written, then every event
/// written out in full (the `session_started` line packs its plan, nodes and target, so the
/// file alone would hide them from a search: a secret there must still be found).
pub fn journal_text(path: &Path) -> String {
    let mut text = std::fs::read_to_string(path).expect("the journal reads");
    for ev in journal::read(path).expect("the journal reads").events {
        text.push_str(&serde_json::to_string(&ev).expect("an event serializes"));
        text.push('\n');
    }
    text
}
