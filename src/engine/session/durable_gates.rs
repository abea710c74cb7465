//! The journal is the truth, tested on a running engine: nothing outside sees or acts on an
//! event before it is durable. Each test holds the fsync of one decision (`sync_gate`) and
//! looks for what that decision causes — the reply to its client, the stop an abort sends a
//! running command, a staged lab fault reaching the lab — while it is held (nothing), after it
//! is let through (it happens), and when it fails as a dying disk does (it never happens, and
//! the engine ends with the OS's reason and the journal's path).
//!
//! The engines run on the test's one thread (`current_thread`): the gate is armed right
//! after the engine task is spawned and before it first runs, so the fsync it holds is the
//! engine's first (`start_held`).

use tokio::sync::mpsc;

use super::sync_gate::{stays_pending, within, SyncGate};
use super::*;
use crate::engine::client::SessionClient;
use crate::engine::event::Outcome;
use crate::engine::lab_faults::StagedFault;
use crate::engine::process::group_alive_as;
use crate::engine::state::Mode;
use crate::engine::Command;
use crate::plan::test_plans::{empty_target, plan, run, step};
use crate::procedure::model::Action;

/// A session whose journal's fsync the test holds.
struct Held {
    task: EngineTask,
    gate: SyncGate,
    /// The lines the session's actions say (their output, and flightdeck's own words on
    /// them), as they say them: before the engine has journaled them.
    said: mpsc::UnboundedReceiver<String>,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

/// Start `plan` on the real start path (`prepare`), its journal's fsync behind a gate; armed
/// (`arm`) before the engine first runs, so that its first fsync is held.
fn start_held(plan: Plan, auto: AutoConfirm, faults: LabFaults, arm: bool) -> Held {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let cfg = EngineConfig {
        plan,
        target: empty_target(),
        auto,
        operator: "tester".into(),
        journal: path.clone(),
        observe: false,
        time_scale: 1.0,
    };
    let mut ready = prepare(cfg, faults).unwrap();
    let gate = SyncGate::install(&mut ready.engine.journal);
    // What the actions send the engine passes through here first: the test hears a command
    // being stopped even while the engine waits on its journal.
    let (to_engine, relayed) = mpsc::channel(1024);
    let mut from_actions = std::mem::replace(&mut ready.worker_rx, relayed);
    let (said_tx, said) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(m) = from_actions.recv().await {
            if let WorkerMsg::Output { line, .. } = &m {
                let _ = said_tx.send(line.clone());
            }
            if to_engine.send(m).await.is_err() {
                return;
            }
        }
    });
    let task = spawn(ready).unwrap();
    if arm {
        gate.arm();
    }
    Held {
        task,
        gate,
        said,
        path,
        _dir: dir,
    }
}

fn yes() -> AutoConfirm {
    AutoConfirm {
        yes: true,
        ..Default::default()
    }
}

fn manual(key: &str) -> crate::plan::PlannedStep {
    step(key, Action::Manual { text: "x".into() })
}

/// What the journal file holds now, durable or not.
fn on_file(path: &Path) -> Vec<Event> {
    journal::read(path)
        .unwrap()
        .events
        .into_iter()
        .map(|e| e.event)
        .collect()
}

/// The session as the engine has it, once `ok` holds.
async fn until(task: &EngineTask, what: &str, ok: impl Fn(&SessionState) -> bool) -> SessionState {
    within(what, async {
        loop {
            let s = task.handle.snapshot().await.expect("the engine runs");
            if ok(&s) {
                return s;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
}

/// The next note on `client`'s feed; never if the feed ends first.
async fn next_note(client: &mut SessionClient) -> String {
    while let Some(e) = client.events.recv().await {
        if let Event::Note { text, .. } = e.event {
            return text;
        }
    }
    std::future::pending().await
}

/// Resolves once an action says it is stopping its command: the abort's stop reached it.
async fn stopping(said: &mut mpsc::UnboundedReceiver<String>) -> String {
    while let Some(line) = said.recv().await {
        if line.contains("asking process group") {
            return line;
        }
    }
    std::future::pending().await
}

/// The engine's end, which must be the failed fsync's: its error says the OS's reason and
/// the journal's path (what `run`, `resume` and the cockpit print for the operator).
async fn ended_on_eio(s: &mut Held) {
    let end = within("the engine's end", &mut s.task.join).await.unwrap();
    let Err(EngineError::Journal(e)) = end else {
        panic!(
            "the engine went on past a failed fsync: {:?}",
            end.map(|st| st.mode)
        );
    };
    let why = e.to_string();
    assert!(
        why.contains("Input/output error") && why.contains(&s.path.display().to_string()),
        "{why}"
    );
}

/// A client's command is answered only once the event it caused is on disk: here a note, its
/// fsync held. Its feed shows it then too, not before.
#[tokio::test(flavor = "current_thread")]
async fn a_reply_waits_until_its_event_is_durable() {
    let mut s = start_held(
        plan("t", vec![manual("a")]),
        AutoConfirm::default(),
        LabFaults::default(),
        false,
    );
    let mut client = s.task.handle.attach("tester", true).await.unwrap();
    until(&s.task, "the step's prompt", |st| st.prompt.is_some()).await;
    s.gate.arm();
    let mut reply = client
        .commands
        .send_nowait(Command::Note {
            text: "disk check".into(),
        })
        .unwrap();
    s.gate.held().await;
    assert!(
        on_file(&s.path)
            .iter()
            .any(|e| matches!(e, Event::Note { text, .. } if text == "disk check")),
        "the held fsync is the note's"
    );
    assert!(
        stays_pending(&mut reply).await,
        "the client was answered before its note was durable"
    );
    let mut note = Box::pin(next_note(&mut client));
    assert!(
        stays_pending(&mut note).await,
        "the note was on the feed before it was durable"
    );
    s.gate.release();
    within("the reply", reply).await.unwrap().unwrap();
    assert_eq!(within("the note on the feed", note).await, "disk check");
    s.task.handle.shutdown().await;
    within("the engine's end", s.task.join)
        .await
        .unwrap()
        .unwrap();
}

/// A note whose fsync fails is never answered as accepted, nor shown: the client hears that
/// the session ended, and the engine ends with the disk's error and the journal's path.
#[tokio::test(flavor = "current_thread")]
async fn a_failed_fsync_answers_no_client_and_says_why() {
    let mut s = start_held(
        plan("t", vec![manual("a")]),
        AutoConfirm::default(),
        LabFaults::default(),
        false,
    );
    let mut client = s.task.handle.attach("tester", true).await.unwrap();
    until(&s.task, "the step's prompt", |st| st.prompt.is_some()).await;
    s.gate.arm();
    let reply = client
        .commands
        .send_nowait(Command::Note {
            text: "disk check".into(),
        })
        .unwrap();
    s.gate.held().await;
    s.gate.fail();
    assert!(
        within("the reply", reply).await.is_err(),
        "a note that is not durable was answered"
    );
    while let Some(e) = within("the feed's end", client.events.recv()).await {
        assert!(
            !matches!(e.event, Event::Note { .. }),
            "a note that is not durable was shown: {e:?}"
        );
    }
    ended_on_eio(&mut s).await;
}

/// Abort while a command runs: the command is asked to stop only once the abort is on disk.
/// While its fsync is held the command runs on untouched and the abort is not answered;
/// then it is stopped, the step ends as stopped by the abort, and the session as aborted.
#[tokio::test(flavor = "current_thread")]
async fn an_abort_stops_the_command_only_once_it_is_durable() {
    let mut s = start_held(
        plan("t", vec![step("wait", run(&["sleep", "600"]))]),
        yes(),
        LabFaults::default(),
        false,
    );
    let st = until(&s.task, "the command's process group", |st| {
        st.steps[0].pgid.is_some()
    })
    .await;
    let (pgid, started) = (st.steps[0].pgid.unwrap(), st.steps[0].pgid_started.clone());
    s.gate.arm();
    let handle = s.task.handle.clone();
    let mut reply = tokio::spawn(async move {
        handle
            .command(Command::Abort {
                rollback: false,
                reason: Some("the disk fills".into()),
            })
            .await
    });
    s.gate.held().await;
    assert!(
        on_file(&s.path)
            .iter()
            .any(|e| matches!(e, Event::AbortRequested { .. })),
        "the held fsync is the abort's"
    );
    let mut stop = Box::pin(stopping(&mut s.said));
    assert!(
        stays_pending(&mut stop).await,
        "the command was stopped before the abort was durable"
    );
    assert!(
        group_alive_as(pgid, started.as_deref()),
        "the command's group was signalled before the abort was durable"
    );
    assert!(
        stays_pending(&mut reply).await,
        "the abort was answered before it was durable"
    );
    s.gate.release();
    within("the abort's answer", reply).await.unwrap().unwrap();
    let line = within("the command's stop", stop).await;
    assert!(line.contains("abort by flightdeck"), "{line}");
    let end = until(&s.task, "the session's end", |st| st.is_finished()).await;
    assert_eq!(end.mode, Mode::Finished(Outcome::Aborted));
    let detail = end.steps[0].detail.clone().unwrap_or_default();
    assert!(detail.contains("stopped (abort by flightdeck)"), "{detail}");
    assert!(!group_alive_as(pgid, started.as_deref()));
    s.task.handle.shutdown().await;
    within("the engine's end", s.task.join)
        .await
        .unwrap()
        .unwrap();
}

/// An abort whose fsync fails stops nothing on its own account: the command is never asked
/// to stop for it, the abort is not answered, and the engine ends with the disk's error.
/// (The command then ends with its engine, as every action does: none outlives it.)
#[tokio::test(flavor = "current_thread")]
async fn an_abort_whose_fsync_fails_stops_nothing_and_says_why() {
    let mut s = start_held(
        plan("t", vec![step("wait", run(&["sleep", "600"]))]),
        yes(),
        LabFaults::default(),
        false,
    );
    until(&s.task, "the command's process group", |st| {
        st.steps[0].pgid.is_some()
    })
    .await;
    s.gate.arm();
    let handle = s.task.handle.clone();
    let reply = tokio::spawn(async move {
        handle
            .command(Command::Abort {
                rollback: false,
                reason: None,
            })
            .await
    });
    s.gate.held().await;
    assert!(
        stays_pending(&mut Box::pin(stopping(&mut s.said))).await,
        "the command was stopped before the abort was durable"
    );
    s.gate.fail();
    assert!(
        within("the abort's answer", reply).await.unwrap().is_err(),
        "an abort that is not durable was answered"
    );
    ended_on_eio(&mut s).await;
    // Every line the action said, to the end of its task: none is the abort's stop.
    while let Some(line) = within("the action's last words", s.said.recv()).await {
        assert!(!line.contains("asking process group"), "{line}");
    }
    assert!(
        !on_file(&s.path)
            .iter()
            .any(|e| matches!(e, Event::ActionFinished { .. } | Event::Finished { .. })),
        "the journal records an end that did not happen"
    );
}

/// The lab's admin API: each fault posted to it, as its body.
async fn lab_admin() -> (String, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/_lab/fault",
        axum::routing::post(move |body: String| {
            let _ = tx.send(body);
            async { "{}" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

fn crash_at_first_step(admin_url: String) -> LabFaults {
    LabFaults {
        admin_url,
        staged: vec![StagedFault {
            fault: "crash:node1".into(),
            step: Some(0),
            phase: Phase::Do,
        }],
    }
}

/// A fault staged for a step reaches the lab only once the step's start is on disk: while
/// that fsync is held the lab hears nothing; then it gets the fault, and the journal says it
/// fired.
#[tokio::test(flavor = "current_thread")]
async fn a_staged_fault_fires_only_once_its_step_start_is_durable() {
    let (url, mut posted) = lab_admin().await;
    let mut s = start_held(
        plan("t", vec![manual("a")]),
        yes(),
        crash_at_first_step(url),
        true,
    );
    s.gate.held().await;
    let held = on_file(&s.path);
    assert!(
        held.iter().any(|e| matches!(e, Event::FaultStaged { .. }))
            && held
                .iter()
                .any(|e| matches!(e, Event::ActionStarted { .. })),
        "the held fsync is the step's start: {held:?}"
    );
    let mut fault = Box::pin(posted.recv());
    assert!(
        stays_pending(&mut fault).await,
        "the fault reached the lab before its step's start was durable"
    );
    s.gate.release();
    let body = within("the fault at the lab", fault).await.unwrap();
    assert!(body.contains("crash:node1"), "{body}");
    until(&s.task, "the session's end", |st| st.is_finished()).await;
    assert!(
        on_file(&s.path).iter().any(|e| matches!(
            e,
            Event::FaultFired { fault, error: None, .. } if fault == "crash:node1"
        )),
        "the journal says the fault fired"
    );
    s.task.handle.shutdown().await;
    within("the engine's end", s.task.join)
        .await
        .unwrap()
        .unwrap();
}

/// A step start whose fsync fails sets off no fault: the lab hears nothing, and the engine
/// ends with the disk's error.
#[tokio::test(flavor = "current_thread")]
async fn a_step_start_whose_fsync_fails_fires_no_fault() {
    let (url, mut posted) = lab_admin().await;
    let mut s = start_held(
        plan("t", vec![manual("a")]),
        yes(),
        crash_at_first_step(url),
        true,
    );
    s.gate.held().await;
    assert!(
        stays_pending(&mut Box::pin(posted.recv())).await,
        "the fault reached the lab before its step's start was durable"
    );
    s.gate.fail();
    ended_on_eio(&mut s).await;
    // The action's task has ended with its engine: whatever it was going to send is sent.
    while within("the action's last words", s.said.recv())
        .await
        .is_some()
    {}
    assert!(
        posted.try_recv().is_err(),
        "a fault reached the lab for a step start that is not durable"
    );
}
