//! The embedded balancer and its `LabLb` driver, under load.

mod lab_util;

use flightdeck::lab::{Lab, LabConfig, Product, Timing};
use flightdeck::lb::{LbClient, LbError};
use flightdeck::procedure::model::Membership;
use lab_util::*;
use serde_json::json;

async fn loaded_lab(rps: u32) -> Lab {
    let mut cfg = LabConfig::new(Product::Generic, 3, Timing::fast());
    cfg.load_rps = rps;
    Lab::start(cfg).await.unwrap()
}

/// Waits until the generator has sent `n` more requests than now.
async fn more_traffic(lab: &Lab, n: u64) {
    let t = lab.traffic().await;
    let base = t.ok_reads + t.failed_reads + t.ok_writes + t.rejected_writes + t.failed_writes;
    eventually("more traffic", || async {
        let t = lab.traffic().await;
        let now = t.ok_reads + t.failed_reads + t.ok_writes + t.rejected_writes + t.failed_writes;
        (now >= base + n).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_gets_no_traffic_and_reads_never_fail() {
    let lab = loaded_lab(200).await;
    let lb = LbClient::from_config(lab.target().lb.as_ref().unwrap()).unwrap();
    more_traffic(&lab, 30).await;

    lb.set_membership("node1", Membership::Drain, None)
        .await
        .unwrap();
    let backends = lb.backends().await.unwrap();
    let b1 = backends.iter().find(|b| b.server == "node1").unwrap();
    assert_eq!(b1.membership, Membership::Drain);
    assert!(!b1.serving);
    assert_eq!(b1.node.as_deref(), Some("node1"));
    assert!(backends
        .iter()
        .filter(|b| b.server != "node1")
        .all(|b| b.serving));

    // Requests already in flight may still land; after that, nothing.
    more_traffic(&lab, 10).await;
    let before = node(&lab, "node1").await.requests;
    let others = node(&lab, "node2").await.requests + node(&lab, "node3").await.requests;
    more_traffic(&lab, 60).await;
    assert_eq!(node(&lab, "node1").await.requests, before);
    assert!(node(&lab, "node2").await.requests + node(&lab, "node3").await.requests > others);

    // Out of the balancer, it can be stopped and upgraded without a failed read.
    op_ok(&lab, "node1", "stop", json!({})).await;
    op_ok(&lab, "node1", "install", json!({"version": "1.1.0"})).await;
    op_ok(&lab, "node1", "start", json!({})).await;
    wait_state(&lab, "node1", "running").await;
    lb.set_membership("node1", Membership::Ready, None)
        .await
        .unwrap();
    eventually("node1 serving again", || async {
        let b = lb.backends().await.unwrap();
        b.iter()
            .any(|b| b.server == "node1" && b.serving)
            .then_some(())
    })
    .await;
    let before = node(&lab, "node1").await.requests;
    more_traffic(&lab, 30).await;
    assert!(node(&lab, "node1").await.requests > before);

    let t = lab.traffic().await;
    assert_eq!(t.failed_reads, 0, "{t:?}");
    assert_eq!(t.failed_writes, 0, "{t:?}");
    assert!(t.ok_reads > 100 && t.ok_writes > 20, "{t:?}");
    let (status, report) = get_json(&format!("{}/_lab/traffic", lab.admin_url())).await;
    assert_eq!(status, 200);
    assert!(report["total"]["ok_reads"].as_u64().unwrap() > 0);
    lab.shutdown().await;
}

#[tokio::test]
async fn reads_are_retried_when_a_node_dies_under_the_balancer() {
    let lab = lab(Product::Generic, 3).await;
    let front = format!("http://{}", lab.lb_frontend());
    assert_eq!(put(&format!("{front}/kv/k"), "v").await.0, 200);
    // Stopped without leaving the balancer first: until the checks notice, the balancer still
    // picks it, and the retry on another server hides it from readers.
    op_ok(&lab, "node2", "stop", json!({})).await;
    for _ in 0..30 {
        assert_eq!(get(&format!("{front}/kv/k")).await, (200, "v".into()));
    }
    eventually("node2 DOWN", || async {
        let s = snapshot(&lab).await;
        s.backends
            .iter()
            .any(|b| b.server == "node2" && b.health == "DOWN")
            .then_some(())
    })
    .await;
    lab.shutdown().await;
}

#[tokio::test]
async fn no_serving_server_means_503() {
    let lab = lab(Product::Generic, 2).await;
    let lb = LbClient::from_config(lab.target().lb.as_ref().unwrap()).unwrap();
    for n in ["node1", "node2"] {
        lb.set_membership(n, Membership::Maint, None).await.unwrap();
    }
    let front = format!("http://{}", lab.lb_frontend());
    assert_eq!(
        get(&format!("{front}/kv/k")).await,
        (503, "no ready backend".into())
    );
    let b = lb.backends().await.unwrap();
    assert!(b.iter().all(|b| b.health == "MAINT" && !b.serving));
    assert!(matches!(
        lb.set_membership("node9", Membership::Ready, None).await,
        Err(LbError::UnknownServer(s)) if s == "node9"
    ));
    lab.shutdown().await;
}

#[tokio::test]
async fn never_ready_keeps_a_node_out() {
    let mut cfg = LabConfig::new(Product::Generic, 3, Timing::fast());
    cfg.faults = vec!["never-ready:node3".parse().unwrap()];
    let lab = Lab::start(cfg).await.unwrap();
    eventually("node3 DOWN", || async {
        let s = snapshot(&lab).await;
        s.backends
            .iter()
            .any(|b| b.server == "node3" && b.health == "DOWN" && !b.serving)
            .then_some(())
    })
    .await;
    assert_eq!(node(&lab, "node3").await.state.as_str(), "running");
    lab.shutdown().await;
}
