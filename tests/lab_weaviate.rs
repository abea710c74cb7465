//! The Weaviate personality: readiness, nodes, Raft statistics and backups.

mod lab_util;

use flightdeck::lab::{Lab, LabConfig, Product, Timing};
use lab_util::*;
use serde_json::json;

#[tokio::test]
async fn statistics_are_unsynchronized_for_a_while_after_a_restart() {
    let mut timing = Timing::fast();
    // Long enough to observe reliably on a busy machine.
    timing.sync_settle_ms = 1500;
    let lab = Lab::start(LabConfig::new(Product::Weaviate, 3, timing))
        .await
        .unwrap();
    let n1 = url(&lab, "node1").await;
    let stats = format!("{n1}/v1/cluster/statistics");
    eventually("settled at start", || async {
        let (_, s) = get_json(&stats).await;
        (s["synchronized"] == true).then_some(())
    })
    .await;
    let (status, s) = get_json(&stats).await;
    assert_eq!(status, 200);
    assert_eq!(s["statistics"].as_array().unwrap().len(), 3);
    assert!(s["statistics"][0]["raft"]["appliedIndex"].is_string());

    op_ok(&lab, "node2", "stop", json!({})).await;
    let (_, s) = get_json(&stats).await;
    assert_eq!(s["synchronized"], false);
    assert_eq!(s["statistics"].as_array().unwrap().len(), 2);
    let (_, nodes) = get_json(&format!("{n1}/v1/nodes")).await;
    assert_eq!(nodes["nodes"][1]["status"], "UNAVAILABLE");
    assert_eq!(nodes["nodes"][0]["status"], "HEALTHY");
    assert_eq!(nodes["nodes"][0]["version"], "1.25.10");

    op_ok(&lab, "node2", "install", json!({"version": "1.26.17"})).await;
    op_ok(&lab, "node2", "start", json!({})).await;
    let n2 = url(&lab, "node2").await;
    assert_eq!(get(&format!("{n2}/v1/.well-known/live")).await.0, 200);
    wait_state(&lab, "node2", "running").await;
    let (_, s) = get_json(&stats).await;
    assert_eq!(
        s["synchronized"], false,
        "still settling right after the restart"
    );
    assert_eq!(s["statistics"].as_array().unwrap().len(), 3);
    eventually("synchronized again", || async {
        let (_, s) = get_json(&stats).await;
        (s["synchronized"] == true).then_some(())
    })
    .await;
    let (_, meta) = get_json(&format!("{n2}/v1/meta")).await;
    assert_eq!(meta["version"], "1.26.17");
    assert_eq!(get(&format!("{n2}/v1/.well-known/ready")).await.0, 200);
    lab.shutdown().await;
}

#[tokio::test]
async fn no_sync_fault_keeps_it_unsynchronized() {
    let mut cfg = LabConfig::new(Product::Weaviate, 2, Timing::fast());
    cfg.faults = vec!["no-sync".parse().unwrap()];
    let lab = Lab::start(cfg).await.unwrap();
    let n1 = url(&lab, "node1").await;
    let (_, s) = get_json(&format!("{n1}/v1/cluster/statistics")).await;
    assert_eq!(s["synchronized"], false);
    lab.shutdown().await;
}

#[tokio::test]
async fn statistics_need_the_raft_era() {
    let mut cfg = LabConfig::new(Product::Weaviate, 1, Timing::fast());
    cfg.version = Some("1.24.26".into());
    let lab = Lab::start(cfg).await.unwrap();
    let n1 = url(&lab, "node1").await;
    assert_eq!(get(&format!("{n1}/v1/cluster/statistics")).await.0, 404);
    assert_eq!(get(&format!("{n1}/v1/.well-known/ready")).await.0, 200);
    lab.shutdown().await;
}

#[tokio::test]
async fn filesystem_backup_and_restore() {
    let lab = lab(Product::Weaviate, 3).await;
    let n1 = url(&lab, "node1").await;
    let n3 = url(&lab, "node3").await;
    assert_eq!(put(&format!("{n1}/kv/doc"), "original").await.0, 200);
    let r = client()
        .post(format!("{n1}/v1/backups/filesystem"))
        .json(&json!({"id": "pre_upgrade_1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let started: serde_json::Value = r.json().await.unwrap();
    assert_eq!(started["status"], "STARTED");
    eventually("backup SUCCESS", || async {
        let (_, s) = get_json(&format!("{n1}/v1/backups/filesystem/pre_upgrade_1")).await;
        (s["status"] == "SUCCESS").then_some(())
    })
    .await;
    assert_eq!(put(&format!("{n3}/kv/doc"), "changed").await.0, 200);
    let r = client()
        .post(format!("{n1}/v1/backups/filesystem/pre_upgrade_1/restore"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    eventually("restore SUCCESS", || async {
        let (_, s) = get_json(&format!("{n1}/v1/backups/filesystem/pre_upgrade_1/restore")).await;
        (s["status"] == "SUCCESS").then_some(())
    })
    .await;
    assert_eq!(get(&format!("{n3}/kv/doc")).await, (200, "original".into()));
    assert_eq!(
        get(&format!("{n1}/v1/backups/filesystem/unknown")).await.0,
        404
    );
    let r = client()
        .post(format!("{n1}/v1/backups/s3"))
        .json(&json!({"id": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    lab.shutdown().await;
}
