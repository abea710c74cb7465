//! Staged faults through the admin API.

mod lab_util;

use std::time::{Duration, Instant};

use flightdeck::lab::Product;
use lab_util::*;
use serde_json::{json, Value};

async fn fault(lab: &flightdeck::lab::Lab, f: &str) -> (u16, Value) {
    let r = client()
        .post(format!("{}/_lab/fault", lab.admin_url()))
        .json(&json!({ "fault": f }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn slow_flaky_and_crash() {
    let lab = lab(Product::Generic, 3).await;
    let n1 = url(&lab, "node1").await;
    let n2 = url(&lab, "node2").await;

    assert_eq!(fault(&lab, "slow:node1:300ms").await.0, 200);
    let t = Instant::now();
    assert_eq!(get(&format!("{n1}/health")).await.0, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    // Admin operations are out of band: not slowed.
    let t = Instant::now();
    op_ok(&lab, "node1", "read-only-off", json!({})).await;
    assert!(t.elapsed() < Duration::from_millis(300));

    assert_eq!(fault(&lab, "flaky:node2:1").await.0, 200);
    assert_eq!(get(&format!("{n2}/health")).await.0, 503);
    assert_eq!(get(&format!("{n2}/_lab/status")).await.0, 503);
    assert_eq!(
        get(&format!("{n2}/kv/x")).await.0,
        404,
        "data plane unaffected"
    );

    let (status, answer) = fault(&lab, "crash:node3").await;
    assert_eq!(status, 200, "{answer}");
    let crashed = node(&lab, "node3").await;
    assert_eq!(crashed.state.as_str(), "failed");
    assert!(crashed.reason.unwrap().contains("crashed"));

    let (_, list) = get_json(&format!("{}/_lab/fault", lab.admin_url())).await;
    assert_eq!(list, json!(["slow:node1:300ms", "flaky:node2:1"]));
    assert_eq!(fault(&lab, "boom:node1").await.0, 400);
    assert_eq!(fault(&lab, "crash:node9").await.0, 400);

    let r = client()
        .delete(format!("{}/_lab/fault", lab.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(get(&format!("{n2}/health")).await.0, 200);
    op_ok(&lab, "node3", "start", json!({})).await;
    wait_state(&lab, "node3", "running").await;
    lab.shutdown().await;
}

#[tokio::test]
async fn cluster_admin_routes_reach_nodes() {
    let lab = lab(Product::Generic, 2).await;
    let admin = lab.admin_url();
    let r = client()
        .post(format!("{admin}/_lab/nodes/node2/stop"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(node(&lab, "node2").await.state.as_str(), "stopped");
    let r = client()
        .post(format!("{admin}/_lab/nodes/node7/stop"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = client()
        .post(format!("{admin}/_lab/nodes/node1/install"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let (status, snap) = get_json(&format!("{admin}/_lab/status")).await;
    assert_eq!(status, 200);
    assert_eq!(snap["nodes"][1]["state"], "stopped");
    assert_eq!(snap["product"], "generic");
    lab.shutdown().await;
}
