//! The Weaviate personality: readiness, nodes, Raft statistics and backups; and the real
//! refusals the seed procedure's old actions ran into (seed audit 2026-12 §5, W4): a restore over
//! an existing collection, a rolling Raft hop; and the Raft hop's documented way back.

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

    op_ok(&lab, "node2", "install", json!({"version": "1.26.18"})).await;
    op_ok(&lab, "node2", "start", json!({})).await;
    let n2 = url(&lab, "node2").await;
    assert_eq!(get(&format!("{n2}/v1/.well-known/live")).await.0, 200);
    wait_state(&lab, "node2", "running").await;
    let (_, s) = get_json(&stats).await;
    assert_eq!(
        s["synchronized"], false,
        "still settling right after the restart"
    );
    // node1 has not heard that node2 is back yet (gossip); node2 knows everyone at once.
    assert_eq!(s["statistics"].as_array().unwrap().len(), 2);
    let (_, own) = get_json(&format!("{n2}/v1/cluster/statistics")).await;
    assert_eq!(own["statistics"].as_array().unwrap().len(), 3);
    eventually("synchronized again, node2 back in node1's view", || async {
        let (_, s) = get_json(&stats).await;
        (s["synchronized"] == true && s["statistics"].as_array().map(Vec::len) == Some(3))
            .then_some(())
    })
    .await;
    let (_, meta) = get_json(&format!("{n2}/v1/meta")).await;
    assert_eq!(meta["version"], "1.26.18");
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
    let restore = || async {
        client()
            .post(format!("{n1}/v1/backups/filesystem/pre_upgrade_1/restore"))
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    // The old detour restored over the existing collection: Weaviate accepts the request, then
    // the restore fails (v1.23.16 usecases/backup/restorer.go: "restore class %s: already
    // exists"), and nothing is restored.
    assert_eq!(restore().await, 200);
    let failed = eventually("restore FAILED", || async {
        let (_, s) = get_json(&format!("{n1}/v1/backups/filesystem/pre_upgrade_1/restore")).await;
        (s["status"] == "FAILED").then_some(s)
    })
    .await;
    assert_eq!(failed["error"], "restore class LabObject: already exists");
    assert_eq!(get(&format!("{n3}/kv/doc")).await, (200, "changed".into()));
    // Delete the collection first (DELETE /v1/schema/{className}), then the restore works.
    let (_, schema) = get_json(&format!("{n1}/v1/schema")).await;
    assert_eq!(schema["classes"][0]["class"], "LabObject");
    let r = client()
        .delete(format!("{n1}/v1/schema/LabObject"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, schema) = get_json(&format!("{n3}/v1/schema")).await;
    assert_eq!(schema["classes"], json!([]));
    assert_eq!(
        get(&format!("{n3}/kv/doc")).await.0,
        404,
        "the objects went with it"
    );
    assert_eq!(restore().await, 200);
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

/// The old procedure rolled the Raft hop node by node: a node on 1.25 among nodes still on 1.24
/// cannot bootstrap Raft (no quorum of voters) and never becomes ready. All nodes down, then all
/// up on 1.25, works (the 1.25 migration guide's downtime).
#[tokio::test]
async fn a_rolling_raft_hop_never_gets_ready() {
    let mut cfg = LabConfig::new(Product::Weaviate, 3, Timing::fast());
    cfg.version = Some("1.24.26".into());
    let lab = Lab::start(cfg).await.unwrap();
    let n1 = url(&lab, "node1").await;
    op_ok(&lab, "node1", "stop", json!({})).await;
    op_ok(&lab, "node1", "install", json!({"version": "1.25.34"})).await;
    op_ok(&lab, "node1", "start", json!({})).await;
    let up = wait_state(&lab, "node1", "running").await;
    let why = up.reason.expect("the lab says why node1 waits");
    assert!(why.contains("raft: waiting for voters"), "{why}");
    assert!(
        why.contains("node2, node3 still run a pre-1.25 version"),
        "{why}"
    );
    assert_eq!(get(&format!("{n1}/v1/.well-known/ready")).await.0, 503);
    assert_eq!(get(&format!("{n1}/v1/.well-known/live")).await.0, 200);
    // The whole cluster down, then up on 1.25: Raft bootstraps.
    for n in ["node2", "node3"] {
        op_ok(&lab, n, "stop", json!({})).await;
        op_ok(&lab, n, "install", json!({"version": "1.25.34"})).await;
    }
    for n in ["node2", "node3"] {
        op_ok(&lab, n, "start", json!({})).await;
    }
    eventually("every node ready on 1.25", || async {
        for n in ["node1", "node2", "node3"] {
            let u = url(&lab, n).await;
            if get(&format!("{u}/v1/.well-known/ready")).await.0 != 200 {
                return None;
            }
        }
        Some(())
    })
    .await;
    lab.shutdown().await;
}

/// The 1.25 way back: POST /v1/cluster/schema-v1 on each node, then 1.24 starts on the node's
/// Raft-era data (without it the old version refuses the store: see seed_lab_ops).
#[tokio::test]
async fn schema_v1_opens_the_way_back_to_1_24() {
    let mut cfg = LabConfig::new(Product::Weaviate, 2, Timing::fast());
    cfg.version = Some("1.25.34".into());
    let lab = Lab::start(cfg).await.unwrap();
    for n in ["node1", "node2"] {
        let u = url(&lab, n).await;
        let r = client()
            .post(format!("{u}/v1/cluster/schema-v1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{n}");
    }
    for n in ["node1", "node2"] {
        op_ok(&lab, n, "stop", json!({})).await;
        op_ok(&lab, n, "install", json!({"version": "1.24.26"})).await;
        op_ok(&lab, n, "start", json!({})).await;
    }
    for n in ["node1", "node2"] {
        let back = wait_state(&lab, n, "running").await;
        assert_eq!(
            (back.version.as_str(), back.store_format),
            ("1.24.26", 1024)
        );
    }
    // Before 1.25 the endpoint does not exist.
    let u = url(&lab, "node1").await;
    let r = client()
        .post(format!("{u}/v1/cluster/schema-v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    lab.shutdown().await;
}

/// A node whose disk passed DISK_USE_READONLY_PERCENTAGE sets its shards READONLY: it stays ready
/// and HEALTHY, `/v1/nodes?output=verbose` shows its shards' status READONLY (weaviate v1.25
/// adapters/repos/db nodes.go: `vectorIndexingStatus` is the shard's status), and writes fail.
/// Without `output=verbose` a 1.24+ node lists no shards (minimal output is the default).
#[tokio::test]
async fn a_read_only_node_shows_its_shards_readonly_in_verbose_nodes() {
    let lab = lab(Product::Weaviate, 3).await;
    let n1 = url(&lab, "node1").await;
    let r = client()
        .post(format!("{}/_lab/fault", lab.admin_url()))
        .json(&json!({"fault": "deny-writes:node2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (status, verbose) = get_json(&format!("{n1}/v1/nodes?output=verbose")).await;
    assert_eq!(status, 200);
    let nodes = verbose["nodes"].as_array().expect("nodes");
    for n in nodes {
        let want = if n["name"] == "node2" {
            "READONLY"
        } else {
            "READY"
        };
        assert_eq!(n["status"], "HEALTHY", "{n}");
        let shards = n["shards"].as_array().expect("verbose lists shards");
        assert!(!shards.is_empty(), "{n}");
        assert!(
            shards.iter().all(|s| s["vectorIndexingStatus"] == want),
            "{n}"
        );
    }
    let (_, minimal) = get_json(&format!("{n1}/v1/nodes")).await;
    assert!(minimal["nodes"][0].get("shards").is_none(), "{minimal}");
    let n2 = url(&lab, "node2").await;
    assert_eq!(get(&format!("{n2}/v1/.well-known/ready")).await.0, 200);
    assert_ne!(put(&format!("{n2}/kv/k"), "v").await.0, 200);
    assert_eq!(put(&format!("{n1}/kv/k"), "v").await.0, 200);
    lab.shutdown().await;
}

/// Seed audit W2: `node-sync` used to poll only the restarted node. Its own view is complete at
/// once (it joined through its peers) and says `synchronized` as soon as it caught up, while a
/// peer has not yet heard by gossip that it is back: that peer's view still lists two nodes.
/// What the old gate waited for holds before what `wait_for_raft_sync` (every pod: synchronized
/// and the node count) waits for.
#[tokio::test]
async fn the_restarted_nodes_own_view_is_synchronized_before_its_peers_see_it() {
    let lab = Lab::start(LabConfig::new(Product::Weaviate, 3, Timing::fast()))
        .await
        .unwrap();
    let view = |name: &'static str| {
        let lab = &lab;
        async move {
            let (_, s) = get_json(&format!("{}/v1/cluster/statistics", url(lab, name).await)).await;
            let count = s["statistics"].as_array().map_or(0, Vec::len);
            (s["synchronized"] == true, count)
        }
    };
    eventually("every view complete at start", || async {
        (view("node1").await == (true, 3) && view("node3").await == (true, 3)).then_some(())
    })
    .await;
    // Gossip held from here until the test releases it: the moment between the restarted
    // node catching up and its peers hearing of it lasts as long as the test looks, not a
    // gossip delay a busy machine could outrun.
    lab.hold_gossip(true);
    op_ok(&lab, "node2", "stop", json!({})).await;
    op_ok(&lab, "node2", "start", json!({})).await;
    wait_state(&lab, "node2", "running").await;
    // The old gate: the restarted node's view alone, synchronized with 3 nodes.
    eventually("node2's own view synchronized", || async {
        (view("node2").await == (true, 3)).then_some(())
    })
    .await;
    // Its peers do not list it yet: the gate on every node still waits.
    for peer in ["node1", "node3"] {
        let (_, peer_count) = view(peer).await;
        assert_eq!(peer_count, 2, "{peer} already sees node2 back");
    }
    lab.hold_gossip(false);
    eventually("every view complete again", || async {
        (view("node1").await == (true, 3) && view("node3").await == (true, 3)).then_some(())
    })
    .await;
    lab.shutdown().await;
}
