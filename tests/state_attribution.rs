//! Which step moved a node's state, when the product's answers race the steps: an engine
//! against a scripted cluster whose answers the test holds back, so that the races the lab
//! only hits under load (issue 14) happen every run, in the same order.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::Json;
use common::plans::{confirm_prompt, until};
use flightdeck::engine::event::AutoConfirm;
use flightdeck::engine::session::{self, EngineConfig, EngineTask};
use flightdeck::engine::state::StepStatus;
use flightdeck::engine::SessionState;
use tokio::sync::{oneshot, Notify};

/// How a node's next status request is held.
enum Hold {
    /// Read the state as the request arrives, answer only when released: the answer is sent
    /// before a step finishes and received after it.
    Snapshot,
    /// Answer only when released, with the state as it is then.
    Late,
}

#[derive(Default)]
struct Cluster {
    state: HashMap<String, String>,
    /// A hold armed for a node's next status request, and where its release goes.
    armed: HashMap<String, Hold>,
    releases: HashMap<String, oneshot::Sender<()>>,
}

#[derive(Clone, Default)]
struct Shared {
    cluster: Arc<Mutex<Cluster>>,
    /// A held status request arrived.
    held: Arc<Notify>,
}

impl Shared {
    fn set(&self, node: &str, state: &str) {
        let mut c = self.cluster.lock().unwrap();
        c.state.insert(node.into(), state.into());
    }

    /// Answer the held request of `node`.
    fn release(&self, node: &str) {
        let tx = self.cluster.lock().unwrap().releases.remove(node);
        tx.expect("a held request").send(()).unwrap();
    }

    /// Hold `node`'s next status request and wait until it arrived.
    async fn hold(&self, node: &str, how: Hold) {
        let arrived = self.held.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        self.cluster.lock().unwrap().armed.insert(node.into(), how);
        arrived.await;
    }
}

/// The node's status as the product words it: the lab's `/_lab/status` shape, with the reason
/// a failed node gives.
fn status_doc(state: &str) -> Json<serde_json::Value> {
    let reason = (state == "failed").then_some("store migration from format 1 to 2 failed");
    Json(serde_json::json!({ "state": state, "reason": reason }))
}

async fn status(State(sh): State<Shared>, Path(node): Path<String>) -> Json<serde_json::Value> {
    let (hold, now, rx) = {
        let mut c = sh.cluster.lock().unwrap();
        let now = c.state.get(&node).cloned().unwrap_or_default();
        let hold = c.armed.remove(&node);
        let rx = hold.as_ref().map(|_| {
            let (tx, rx) = oneshot::channel();
            c.releases.insert(node.clone(), tx);
            rx
        });
        (hold, now, rx)
    };
    let Some(rx) = rx else {
        return status_doc(&now);
    };
    sh.held.notify_one();
    let _ = rx.await;
    let state = match hold {
        Some(Hold::Late) => sh.cluster.lock().unwrap().state[&node].clone(),
        _ => now,
    };
    status_doc(&state)
}

/// Ready only while running.
async fn health(State(sh): State<Shared>, Path(node): Path<String>) -> axum::http::StatusCode {
    let c = sh.cluster.lock().unwrap();
    match c.state.get(&node).map(String::as_str) {
        Some("running") => axum::http::StatusCode::OK,
        _ => axum::http::StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A start whose store migration fails at once.
async fn start_fails(State(sh): State<Shared>, Path(node): Path<String>) -> &'static str {
    sh.set(&node, "failed");
    "ok"
}

/// A restart of a failed node: a status request reads it `failed` just before, and its answer
/// is held past the restart's end.
async fn restart(State(sh): State<Shared>, Path(node): Path<String>) -> &'static str {
    sh.hold(&node, Hold::Snapshot).await;
    sh.set(&node, "starting");
    "ok"
}

/// A backup: while it runs, a status request of the node arrives and is held.
async fn backup(State(sh): State<Shared>, Path(node): Path<String>) -> &'static str {
    sh.hold(&node, Hold::Late).await;
    "ok"
}

/// A stop: a status request of the node reads `running` just before the node stops, and its
/// answer is held past the stop's end.
async fn stop(State(sh): State<Shared>, Path(node): Path<String>) -> &'static str {
    sh.hold(&node, Hold::Snapshot).await;
    sh.set(&node, "stopped");
    "ok"
}

async fn serve(sh: Shared) -> String {
    let app = axum::Router::new()
        .route("/status/{node}", axum::routing::get(status))
        .route("/backup/{node}", axum::routing::post(backup))
        .route("/stop/{node}", axum::routing::post(stop))
        .route("/health/{node}", axum::routing::get(health))
        .route("/start/{node}", axum::routing::post(start_fails))
        .route("/restart/{node}", axum::routing::post(restart))
        .with_state(sh);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

fn by_step(s: &SessionState, node: &str) -> Option<usize> {
    let n = s.nodes.iter().find(|n| n.node.name == node).unwrap();
    n.state_change.as_ref().and_then(|c| c.by_step)
}

const TARGET: &str = r#"
name = "t"
[[nodes]]
name = "node2"
address = "ADDR"
[[nodes]]
name = "node3"
address = "ADDR"

[[probes]]
name = "status"
kind = "http"
url = "${node.url}/status/${node.name}"
interval_ms = 100
facts = { state = "/state", reason = "/reason" }

[[probes]]
name = "health"
kind = "http"
url = "${node.url}/health/${node.name}"
interval_ms = 100
health = true
"#;

/// An engine on `steps` (a procedure's steps, with calls of `backup`, `stop`, `start` and
/// `restart` bound to the scripted cluster at `addr`), both nodes reported running first.
async fn session(
    addr: &str,
    steps: &str,
    nodes: &[(usize, &str)],
    dir: &tempfile::TempDir,
) -> EngineTask {
    let lp = flightdeck::procedure::load::parse_procedure(
        std::path::Path::new("p.toml"),
        format!("name = \"p\"\nproduct = \"generic\"\nto = \"1.1.0\"\n{steps}"),
    )
    .unwrap();
    let mut target = TARGET.replace("ADDR", addr);
    for op in ["backup", "stop", "start", "restart"] {
        target.push_str(&format!(
            "[actions.{op}]\nkind = \"http\"\nmethod = \"POST\"\n\
             url = \"http://{addr}/{op}/${{arg.node}}\"\n"
        ));
    }
    let t = flightdeck::target_load::parse_target(std::path::Path::new("t.toml"), &target)
        .unwrap_or_else(|d| panic!("{d}"));
    let mut plan = flightdeck::plan::expand::build_plan(&lp, &t, &Default::default()).unwrap();
    for (i, node) in nodes {
        plan.steps[*i].node = Some(node.to_string());
    }
    let task = session::start(EngineConfig {
        plan,
        target: t,
        auto: AutoConfirm::default(),
        operator: "tester".into(),
        journal: dir.path().join("j.jsonl"),
        observe: true,
        time_scale: 1.0,
    })
    .expect("engine starts");
    until(&task, "both nodes reported running", |s| {
        ["node2", "node3"]
            .iter()
            .all(|n| state_of(s, n).as_deref() == Some("running"))
    })
    .await;
    task
}

fn state_of(s: &SessionState, node: &str) -> Option<String> {
    let n = s.nodes.iter().find(|n| n.node.name == node);
    n.and_then(|n| n.state()).map(str::to_string)
}

/// node3 crashes right after its backup, before any answer received after the backup's end
/// read it running; node2's stop is read `running` by a request sent before the stop ended
/// and answered after it. The crash is no step's doing (a backup starts and stops nothing);
/// the stop is the stop step's, however late its answer came.
#[tokio::test]
async fn a_crash_after_a_backup_is_unexpected_and_a_stop_read_late_is_the_steps() {
    let sh = Shared::default();
    sh.set("node2", "running");
    sh.set("node3", "running");
    let addr = serve(sh.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let task = session(
        &addr,
        r#"
[[steps]]
id = "backup"
title = "Back up node3"
action = { kind = "call", name = "backup", args = { node = "node3" } }

[[steps]]
id = "stop"
title = "Stop node2"
action = { kind = "call", name = "stop", args = { node = "node2" } }
"#,
        &[(0, "node3"), (1, "node2")],
        &dir,
    )
    .await;

    // The backup; node3 crashes once it is done, then its held request is answered.
    confirm_prompt(&task).await;
    until(&task, "the backup done", |s| {
        s.steps[0].status == StepStatus::Succeeded
    })
    .await;
    sh.set("node3", "failed");
    sh.release("node3");
    let s = until(&task, "node3 read failed", |s| {
        state_of(s, "node3").as_deref() == Some("failed")
    })
    .await;
    assert_eq!(by_step(&s, "node3"), None, "{:?}", s.nodes);

    // The stop; the answer read before it ends arrives after.
    confirm_prompt(&task).await;
    until(&task, "the stop done", |s| {
        s.steps[1].status == StepStatus::Succeeded
    })
    .await;
    sh.release("node2");
    let s = until(&task, "node2 read stopped", |s| {
        state_of(s, "node2").as_deref() == Some("stopped")
    })
    .await;
    assert_eq!(by_step(&s, "node2"), Some(1), "{:?}", s.nodes);
    let n3 = s.nodes.iter().find(|n| n.node.name == "node3").unwrap();
    assert!(n3.unexpectedly_down(), "{n3:?}");
    task.handle.shutdown().await;

    // The journal folds to the same attribution (resume, replay and report read it).
    let j = flightdeck::journal::read(&dir.path().join("j.jsonl")).unwrap();
    let folded = SessionState::fold(&j.events);
    assert_eq!(by_step(&folded, "node3"), None);
    assert_eq!(by_step(&folded, "node2"), Some(1));
}

/// node2's start fails at once (its store migration); the operator confirms the gate that
/// waits for it afterwards. The product said so after the start ended, before the gate began:
/// the gate fails at once with the product's reason, not after its timeout.
#[tokio::test]
async fn a_gate_on_a_node_whose_start_already_failed_fails_at_once() {
    let sh = Shared::default();
    sh.set("node2", "running");
    sh.set("node3", "running");
    let addr = serve(sh.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let task = session(&addr, GATED_START, &[(0, "node2"), (1, "node2")], &dir).await;
    confirm_prompt(&task).await;
    until(&task, "node2's failure read after its start", |s| {
        s.steps[0].status == StepStatus::Succeeded
            && state_of(s, "node2").as_deref() == Some("failed")
    })
    .await;
    confirm_prompt(&task).await;
    let s = until(&task, "the gate's verdict", |s| {
        matches!(
            s.steps[1].status,
            StepStatus::Failed | StepStatus::Succeeded
        )
    })
    .await;
    let why = s.steps[1].detail.clone().unwrap_or_default();
    assert!(
        why.contains("node2 is failed — the product says: store migration from format 1 to 2"),
        "{why}"
    );
    assert!(!why.contains("never passed"), "{why}");
    task.handle.shutdown().await;
}

/// A start, then a gate on the node.
const GATED_START: &str = r#"
[[steps]]
id = "start"
title = "Start node2"
action = { kind = "call", name = "start", args = { node = "node2" } }

[[steps]]
id = "up"
title = "node2 healthy"
action = { kind = "wait", probe = "health", nodes = "node2", stable_secs = 0, timeout_secs = 5, interval_ms = 50 }
"#;

/// node2 failed; the procedure restarts it, and a request sent before the restart ended reads
/// it `failed`, answered once the gate waits. That reading is from before the restart: the
/// gate waits for the node to come up and passes.
#[tokio::test]
async fn a_failure_read_before_the_restart_ended_does_not_fail_the_gate() {
    let sh = Shared::default();
    sh.set("node2", "running");
    sh.set("node3", "running");
    let addr = serve(sh.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let task = session(
        &addr,
        &GATED_START.replace("\"start\", args", "\"restart\", args"),
        &[(0, "node2"), (1, "node2")],
        &dir,
    )
    .await;
    sh.set("node2", "failed");
    until(&task, "node2 read failed", |s| {
        state_of(s, "node2").as_deref() == Some("failed")
    })
    .await;
    confirm_prompt(&task).await;
    until(&task, "the restart done", |s| {
        s.steps[0].status == StepStatus::Succeeded
    })
    .await;
    confirm_prompt(&task).await;
    until(&task, "the gate waiting", |s| {
        s.steps[1].status == StepStatus::Running
    })
    .await;
    sh.release("node2");
    sh.set("node2", "running");
    let s = until(&task, "the gate's verdict", |s| {
        matches!(
            s.steps[1].status,
            StepStatus::Failed | StepStatus::Succeeded
        )
    })
    .await;
    assert_eq!(
        s.steps[1].status,
        StepStatus::Succeeded,
        "{:?}",
        s.steps[1].detail
    );
    task.handle.shutdown().await;
}
