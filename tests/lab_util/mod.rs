//! Helpers shared by the lab integration tests (each test crate uses a subset).
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use flightdeck::lab::{Lab, LabConfig, LabSnapshot, NodeSnapshot, Product, Timing};
use serde_json::Value;

pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn client() -> reqwest::Client {
    flightdeck::lab::http_client().unwrap()
}

pub async fn lab(product: Product, nodes: usize) -> Lab {
    Lab::start(LabConfig::new(product, nodes, Timing::fast()))
        .await
        .unwrap()
}

/// Polls `f` until it returns `Some`, or panics with `what` at the deadline.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn node(lab: &Lab, name: &str) -> NodeSnapshot {
    lab.snapshot().await.node(name).unwrap().clone()
}

pub async fn snapshot(lab: &Lab) -> LabSnapshot {
    lab.snapshot().await
}

pub async fn url(lab: &Lab, name: &str) -> String {
    format!("http://{}", node(lab, name).await.address)
}

/// Sends `req` with a JSON body; returns status and JSON answer (null when it is not JSON).
pub async fn send_json(req: reqwest::RequestBuilder, body: &Value) -> (u16, Value) {
    let r = req.json(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `POST {node}/_lab/{op}` with a JSON body; returns status and JSON answer.
pub async fn op(lab: &Lab, name: &str, op: &str, body: Value) -> (u16, Value) {
    let url = format!("{}/_lab/{op}", url(lab, name).await);
    send_json(client().post(url), &body).await
}

pub async fn op_ok(lab: &Lab, name: &str, operation: &str, body: Value) {
    op_answers(lab, name, operation, body, 200).await;
}

/// Runs a node operation that must answer `status` (a refusal: 409, 404, 400); its answer.
pub async fn op_answers(lab: &Lab, name: &str, operation: &str, body: Value, status: u16) -> Value {
    let (got, answer) = op(lab, name, operation, body).await;
    assert_eq!(got, status, "{operation} on {name}: {answer}");
    answer
}

pub async fn get(url: &str) -> (u16, String) {
    let r = client().get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

pub async fn put(url: &str, body: &str) -> (u16, String) {
    let r = client()
        .put(url)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

pub async fn get_json(url: &str) -> (u16, Value) {
    let r = client().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Waits until the node's state is `state` and returns its snapshot.
pub async fn wait_state(lab: &Lab, name: &str, state: &str) -> NodeSnapshot {
    eventually(&format!("{name} {state}"), || async {
        let n = node(lab, name).await;
        (n.state.as_str() == state).then_some(n)
    })
    .await
}
