//! The node state machine and the stores of a generic lab.

mod lab_util;

use flightdeck::lab::{Lab, LabConfig, Product, Timing};
use flightdeck::target::Target;
use lab_util::*;
use serde_json::json;

#[tokio::test]
async fn read_only_blocks_writes_not_reads() {
    let lab = lab(Product::Generic, 3).await;
    let n1 = url(&lab, "node1").await;
    let n2 = url(&lab, "node2").await;
    assert_eq!(put(&format!("{n1}/kv/color"), "blue").await.0, 200);
    // Replicated to the other nodes.
    assert_eq!(get(&format!("{n2}/kv/color")).await, (200, "blue".into()));

    op_ok(&lab, "node1", "read-only", json!({"on": true})).await;
    assert_eq!(
        put(&format!("{n1}/kv/color"), "red").await,
        (503, "read-only".into())
    );
    assert_eq!(get(&format!("{n1}/kv/color")).await, (200, "blue".into()));
    assert_eq!(get(&format!("{n1}/kv/absent")).await.0, 404);
    assert!(node(&lab, "node1").await.read_only);
    let (status, body) = get_json(&format!("{n1}/_lab/status")).await;
    assert_eq!(status, 200);
    assert_eq!(body["read_only"], true);
    assert_eq!(body["state"], "running");
    assert_eq!(body["version"], "1.0.0");
    assert_eq!(body["role"], "leader");

    op_ok(&lab, "node1", "read-only-off", json!({})).await;
    assert_eq!(put(&format!("{n1}/kv/color"), "red").await.0, 200);
    lab.shutdown().await;
}

#[tokio::test]
async fn a_newer_store_refuses_an_older_version() {
    let lab = lab(Product::Generic, 3).await;
    // Install only while stopped.
    let (status, answer) = op(&lab, "node2", "install", json!({"version": "1.1.0"})).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("stop it first"));

    op_ok(&lab, "node2", "stop", json!({})).await;
    assert_eq!(node(&lab, "node2").await.state.as_str(), "stopped");
    let n2 = url(&lab, "node2").await;
    assert_eq!(get(&format!("{n2}/kv/x")).await.0, 503);
    assert_eq!(get(&format!("{n2}/health")).await.0, 503);

    op_ok(&lab, "node2", "install", json!({"version": "1.1.0"})).await;
    op_ok(&lab, "node2", "start", json!({})).await;
    let up = wait_state(&lab, "node2", "running").await;
    assert_eq!(up.store_format, 1001);
    assert_eq!(up.version, "1.1.0");
    assert_eq!(
        get(&format!("{n2}/version")).await.1,
        r#"{"version":"1.1.0"}"#
    );

    op_ok(&lab, "node2", "stop", json!({})).await;
    op_ok(&lab, "node2", "install", json!({"version": "1.0.0"})).await;
    op_ok(&lab, "node2", "start", json!({})).await;
    let failed = wait_state(&lab, "node2", "failed").await;
    assert_eq!(
        failed.reason.as_deref(),
        Some("store format 1001 is newer than version 1.0.0 supports; downgrade is not possible")
    );
    assert_eq!(failed.store_format, 1001);
    lab.shutdown().await;
}

#[tokio::test]
async fn a_failed_migration_leaves_the_old_store() {
    let lab = lab(Product::Generic, 3).await;
    let admin = lab.admin_url();
    let r = client()
        .post(format!("{admin}/_lab/fault"))
        .json(&json!({"fault": "fail-migration:node3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    op_ok(&lab, "node3", "stop", json!({})).await;
    op_ok(&lab, "node3", "install", json!({"version": "1.1.0"})).await;
    op_ok(&lab, "node3", "start", json!({})).await;
    let failed = wait_state(&lab, "node3", "failed").await;
    assert_eq!(failed.store_format, 1000);
    assert!(failed.reason.unwrap().contains("migration"));

    // The old version still opens the store.
    let r = client()
        .delete(format!("{admin}/_lab/fault"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    op_ok(&lab, "node3", "install", json!({"version": "1.0.0"})).await;
    op_ok(&lab, "node3", "start", json!({})).await;
    wait_state(&lab, "node3", "running").await;
    lab.shutdown().await;
}

#[tokio::test]
async fn backup_then_restore_brings_the_data_back() {
    let lab = lab(Product::Generic, 3).await;
    let n1 = url(&lab, "node1").await;
    let n3 = url(&lab, "node3").await;
    assert_eq!(put(&format!("{n1}/kv/order"), "42").await.0, 200);
    op_ok(&lab, "node1", "backup", json!({"name": "before"})).await;
    assert!(lab.data_dir().join("backups/before.json").exists());
    assert_eq!(put(&format!("{n1}/kv/order"), "lost").await.0, 200);
    assert_eq!(get(&format!("{n3}/kv/order")).await.1, "lost");

    let (status, answer) = op(&lab, "node1", "restore", json!({"name": "nope"})).await;
    assert_eq!(status, 404, "{answer}");
    op_ok(&lab, "node1", "restore", json!({"name": "before"})).await;
    for n in [&n1, &n3] {
        assert_eq!(get(&format!("{n}/kv/order")).await, (200, "42".into()));
    }
    lab.shutdown().await;
}

#[tokio::test]
async fn a_restarted_node_catches_up() {
    let lab = lab(Product::Generic, 3).await;
    let n1 = url(&lab, "node1").await;
    let n2 = url(&lab, "node2").await;
    op_ok(&lab, "node2", "stop", json!({})).await;
    assert_eq!(put(&format!("{n1}/kv/missed"), "yes").await.0, 200);
    op_ok(&lab, "node2", "start", json!({})).await;
    assert_eq!(node(&lab, "node2").await.state.as_str(), "starting");
    wait_state(&lab, "node2", "running").await;
    assert_eq!(get(&format!("{n2}/kv/missed")).await, (200, "yes".into()));
    // Starting a running node is refused.
    assert_eq!(op(&lab, "node2", "start", json!({})).await.0, 409);
    lab.shutdown().await;
}

#[tokio::test]
async fn the_written_target_parses_back() {
    let lab = lab(Product::Generic, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lab.toml");
    lab.write_target(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let back: Target = toml::from_str(&text).unwrap();
    assert_eq!(&back, lab.target());
    assert_eq!(back.name, "lab-generic");
    assert_eq!(back.nodes.len(), 2);
    assert_eq!(back.lb.as_ref().unwrap().address, lab.admin_url());
    // Without load nothing counts traffic: the target has no counters to poll.
    assert_eq!(back.traffic, None);
    assert_eq!(back.vars["current_version"], "1.0.0");
    lab.shutdown().await;
}

#[tokio::test]
async fn a_lab_under_load_names_its_traffic_counters() {
    let mut cfg = LabConfig::new(Product::Generic, 2, Timing::fast());
    cfg.load_rps = 5;
    let lab = Lab::start(cfg).await.unwrap();
    assert_eq!(
        lab.target().traffic.as_ref().map(|t| t.url.clone()),
        Some(format!("{}/_lab/traffic", lab.admin_url()))
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn shutdown_leaves_nothing_listening() {
    let lab = lab(Product::Generic, 3).await;
    let mut addrs: Vec<std::net::SocketAddr> = snapshot(&lab)
        .await
        .nodes
        .iter()
        .map(|n| n.address)
        .collect();
    addrs.push(lab.lb_frontend());
    addrs.push(
        lab.admin_url()
            .trim_start_matches("http://")
            .parse()
            .unwrap(),
    );
    // Leave a keep-alive connection open to make shutdown work for it.
    assert_eq!(
        get(&format!("{}/_lab/status", lab.admin_url())).await.0,
        200
    );
    let data = lab.data_dir().to_path_buf();
    lab.shutdown().await;
    for a in addrs {
        assert!(
            tokio::net::TcpStream::connect(a).await.is_err(),
            "{a} still accepts connections"
        );
    }
    assert!(!data.exists(), "the temporary data dir is removed");
}

#[tokio::test]
async fn bad_configurations_are_refused() {
    use flightdeck::lab::{Lab, LabConfig, Timing};
    let mut cfg = LabConfig::new(Product::Generic, 2, Timing::fast());
    cfg.faults = vec!["crash:node5".parse().unwrap()];
    assert!(Lab::start(cfg).await.is_err());
    assert!(
        Lab::start(LabConfig::new(Product::Generic, 0, Timing::fast()))
            .await
            .is_err()
    );
    let mut cfg = LabConfig::new(Product::Generic, 1, Timing::fast());
    cfg.version = Some("latest".into());
    assert!(Lab::start(cfg).await.is_err());

    // A crash staged at start takes the node down at once.
    let mut cfg = LabConfig::new(Product::Generic, 2, Timing::fast());
    cfg.faults = vec!["crash:node2".parse().unwrap()];
    let lab = Lab::start(cfg).await.unwrap();
    assert_eq!(node(&lab, "node2").await.state.as_str(), "failed");
    lab.shutdown().await;
}

#[tokio::test]
async fn a_data_dir_outlives_the_lab() {
    use flightdeck::lab::{Lab, LabConfig, Timing};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = LabConfig::new(Product::Generic, 2, Timing::fast());
    cfg.data_dir = Some(dir.path().to_path_buf());
    let lab = Lab::start(cfg.clone()).await.unwrap();
    let n1 = url(&lab, "node1").await;
    assert_eq!(put(&format!("{n1}/kv/kept"), "yes").await.0, 200);
    lab.shutdown().await;
    assert!(dir.path().join("node1/store.json").exists());

    let lab = Lab::start(cfg).await.unwrap();
    let n2 = url(&lab, "node2").await;
    assert_eq!(get(&format!("{n2}/kv/kept")).await, (200, "yes".into()));
    lab.shutdown().await;
}
