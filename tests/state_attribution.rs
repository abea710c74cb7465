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
use flightdeck::engine::session::{self, EngineConfig};
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
        return Json(serde_json::json!({ "state": now }));
    };
    sh.held.notify_one();
    let _ = rx.await;
    let state = match hold {
        Some(Hold::Late) => sh.cluster.lock().unwrap().state[&node].clone(),
        _ => now,
    };
    Json(serde_json::json!({ "state": state }))
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
    let lp = flightdeck::procedure::load::parse_procedure(
        std::path::Path::new("p.toml"),
        r#"
name = "p"
product = "generic"
to = "1.1.0"

[[steps]]
id = "backup"
title = "Back up node3"
action = { kind = "call", name = "backup", args = { node = "node3" } }

[[steps]]
id = "stop"
title = "Stop node2"
action = { kind = "call", name = "stop", args = { node = "node2" } }
"#
        .to_string(),
    )
    .unwrap();
    let t = flightdeck::target_load::parse_target(
        std::path::Path::new("t.toml"),
        &format!(
            r#"
name = "t"
[[nodes]]
name = "node2"
address = "{addr}"
[[nodes]]
name = "node3"
address = "{addr}"

[[probes]]
name = "status"
kind = "http"
url = "${{node.url}}/status/${{node.name}}"
interval_ms = 100
facts = {{ state = "/state" }}

[actions.backup]
kind = "http"
method = "POST"
url = "http://{addr}/backup/${{arg.node}}"

[actions.stop]
kind = "http"
method = "POST"
url = "http://{addr}/stop/${{arg.node}}"
"#
        ),
    )
    .unwrap();
    let mut plan = flightdeck::plan::expand::build_plan(&lp, &t, &Default::default()).unwrap();
    plan.steps[0].node = Some("node3".into());
    plan.steps[1].node = Some("node2".into());
    let dir = tempfile::tempdir().unwrap();
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
    let state_of = |s: &SessionState, node: &str| {
        let n = s.nodes.iter().find(|n| n.node.name == node);
        n.and_then(|n| n.state()).map(str::to_string)
    };
    until(&task, "both nodes reported running", |s| {
        ["node2", "node3"]
            .iter()
            .all(|n| state_of(s, n).as_deref() == Some("running"))
    })
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
