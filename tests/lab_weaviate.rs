//! The Weaviate personality: readiness, nodes, Raft statistics and backups; and the real
//! refusals the seed procedure's old actions ran into (seed audit 2026-12 §5, W4): a restore over
//! an existing collection, a rolling Raft hop; and the Raft hop's documented way back. Shards on
//! `replicationConfig.factor` nodes and object reads and writes at a consistency level: what a
//! stopped node takes away at factor 1, 2 and 3.

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

/// A Weaviate lab whose collection has `factor` replicas of each shard.
async fn lab_with_factor(nodes: usize, factor: usize) -> Lab {
    let mut cfg = LabConfig::new(Product::Weaviate, nodes, Timing::fast());
    cfg.replication_factor = Some(factor);
    Lab::start(cfg).await.unwrap()
}

/// The keys written (all nodes up) for the replica tests: enough to land on every shard.
fn keys() -> Vec<String> {
    (0..30).map(|i| format!("obj{i}")).collect()
}

async fn write_all(base: &str) {
    for k in keys() {
        assert_eq!(put(&format!("{base}/kv/{k}"), &k).await, (200, "ok".into()));
    }
}

/// Reads every key through `base` (with `query`, e.g. `?consistency_level=ONE`): the keys read
/// and the failures' distinct answers.
async fn read_all(base: &str, query: &str) -> (Vec<String>, Vec<(u16, String)>) {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for k in keys() {
        let (status, body) = get(&format!("{base}/kv/{k}{query}")).await;
        if status == 200 {
            assert_eq!(body, k);
            ok.push(k);
        } else if !failed.contains(&(status, body.clone())) {
            failed.push((status, body));
        }
    }
    (ok, failed)
}

/// Factor 1 is no replication: each shard lives on one node, and with that node stopped its
/// objects answer Weaviate's remote-index error (weaviate/weaviate v1.26.18
/// usecases/sharding/remote_index.go `GetObject`: "resolve node name %q to host", wrapped by
/// index.go `objectByID`, crud.go `Object`, usecases/objects/get.go) — whatever the level.
#[tokio::test]
async fn factor_1_a_shard_whose_node_is_down_fails_with_weaviates_words() {
    let lab = lab_with_factor(3, 1).await;
    let n1 = url(&lab, "node1").await;
    let (_, schema) = get_json(&format!("{n1}/v1/schema")).await;
    assert_eq!(schema["classes"][0]["replicationConfig"]["factor"], 1);
    write_all(&n1).await;
    // Each node holds its own shard only: the objects (ours and the lab's seed) spread over
    // three, none on two nodes.
    let (_, verbose) = get_json(&format!("{n1}/v1/nodes?output=verbose")).await;
    let counts: Vec<u64> = verbose["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let shards = n["shards"].as_array().unwrap();
            assert_eq!(shards.len(), 1, "{n}");
            assert_eq!(shards[0]["name"], format!("shard{}", i + 1));
            assert_eq!(n["stats"]["objectCount"], shards[0]["objectCount"], "{n}");
            shards[0]["objectCount"].as_u64().unwrap()
        })
        .collect();
    let total: u64 = counts.iter().sum();
    assert!(total >= 30, "{counts:?}");
    assert!(counts.iter().all(|&c| c > 0 && c < 30), "{counts:?}");

    op_ok(&lab, "node2", "stop", json!({})).await;
    let (ok, failed) = read_all(&n1, "").await;
    assert!(!ok.is_empty(), "the other shards still answer");
    assert_eq!(
        failed,
        [(
            500,
            "repo: object by id: search index labobject: get remote object: shard=shard2: \
             resolve node name \"node2\" to host"
                .to_string()
        )]
    );
    // ONE does not help: there is no other replica.
    let (ok_one, failed_one) = read_all(&n1, "?consistency_level=ONE").await;
    assert_eq!(ok_one, ok);
    assert_eq!(failed_one, failed);
    // The REST object API says the same, in Weaviate's error shape; a write to the shard too.
    let lost = keys().into_iter().find(|k| !ok.contains(k)).unwrap();
    let (status, body) = get_json(&format!("{n1}/v1/objects/LabObject/{lost}")).await;
    assert_eq!(status, 500);
    assert_eq!(body["error"][0]["message"], failed[0].1.as_str());
    let (status, body) = put(&format!("{n1}/kv/{lost}"), "new").await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        "put object: import into index labobject: put remote object: shard=\"shard2\": \
         resolve node name \"node2\" to host"
    );
    let kept = &ok[0];
    let (status, body) = get_json(&format!("{n1}/v1/objects/LabObject/{kept}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["properties"]["value"], kept.as_str());
    lab.shutdown().await;
}

/// Factor 2 with one node down: QUORUM (the default for object reads and writes, v1.26.18
/// adapters/repos/db/index.go `defaultConsistency()`) needs 2/2 + 1 = 2 replicas
/// (usecases/replica/resolver.go `cLevel`), so the shards with a replica on the stopped node fail
/// with usecases/replica/finder.go's "cannot achieve consistency level" / "cannot reach enough
/// replicas"; the same reads at `consistency_level=ONE` succeed.
#[tokio::test]
async fn factor_2_with_a_node_down_quorum_fails_and_one_reads() {
    let lab = lab_with_factor(3, 2).await;
    let n1 = url(&lab, "node1").await;
    write_all(&n1).await;
    op_ok(&lab, "node2", "stop", json!({})).await;
    let quorum_error = "repo: object by id: search index labobject: cannot achieve consistency \
                        level \"QUORUM\": cannot reach enough replicas";
    let (ok, failed) = read_all(&n1, "").await;
    assert!(
        !ok.is_empty(),
        "shard3 (node3, node1) still has both replicas"
    );
    assert_eq!(failed, [(500, quorum_error.to_string())]);
    let (explicit, failed) = read_all(&n1, "?consistency_level=QUORUM").await;
    assert_eq!(explicit, ok);
    assert_eq!(failed, [(500, quorum_error.to_string())]);
    let (one, failed) = read_all(&n1, "?consistency_level=ONE").await;
    assert_eq!(one.len(), keys().len(), "every object at ONE: {failed:?}");
    // Writes: refused at the default level, taken at ONE.
    let lost = keys().into_iter().find(|k| !ok.contains(k)).unwrap();
    let (status, body) = put(&format!("{n1}/kv/{lost}"), "new").await;
    assert_eq!(status, 500);
    // shard1 (node1, node2) or shard2 (node2, node3): a shard with a replica on node2.
    let shard = shard_in(&body);
    assert!(shard == "shard1" || shard == "shard2", "{body}");
    assert_eq!(
        body,
        format!(
            "put object: import into index labobject: replicate insertion: shard=\"{shard}\": \
             cannot achieve consistency level \"QUORUM\": cannot reach enough replicas"
        )
    );
    assert_eq!(
        put(&format!("{n1}/kv/{lost}?consistency_level=ONE"), "new").await,
        (200, "ok".into())
    );
    let (status, obj) = get_json(&format!(
        "{n1}/v1/objects/LabObject/{lost}?consistency_level=ONE"
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(obj["properties"]["value"], "new");
    let (status, e) = get_json(&format!("{n1}/v1/objects/LabObject/{lost}")).await;
    assert_eq!(status, 500);
    assert_eq!(e["error"][0]["message"], quorum_error);
    // An unknown level is refused before anything is read (handlers_objects.go).
    let (status, e) = get_json(&format!(
        "{n1}/v1/objects/LabObject/{lost}?consistency_level=TWO"
    ))
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        e["error"][0]["message"],
        "unrecognized consistency level 'TWO', try one of the following: ['ONE', 'QUORUM', 'ALL']"
    );
    lab.shutdown().await;
}

/// The shard name an error names (`shard="shardN"`).
fn shard_in(error: &str) -> String {
    error
        .split("shard=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_string()
}

/// Factor 3 with one node down: 2 of 3 replicas are left, QUORUM holds for every read and
/// write; ALL does not.
#[tokio::test]
async fn factor_3_with_a_node_down_quorum_reads_and_writes() {
    let lab = lab_with_factor(3, 3).await;
    let n1 = url(&lab, "node1").await;
    write_all(&n1).await;
    op_ok(&lab, "node2", "stop", json!({})).await;
    let (ok, failed) = read_all(&n1, "").await;
    assert_eq!(ok.len(), keys().len(), "{failed:?}");
    for k in keys() {
        assert_eq!(put(&format!("{n1}/kv/{k}"), "v2").await.0, 200);
    }
    let (_, failed) = read_all(&n1, "?consistency_level=ALL").await;
    assert_eq!(
        failed,
        [(
            500,
            "repo: object by id: search index labobject: cannot achieve consistency level \
             \"ALL\": cannot reach enough replicas"
                .to_string()
        )]
    );
    // node2 back: it takes its shards from the replicas that stayed up.
    op_ok(&lab, "node2", "start", json!({})).await;
    wait_state(&lab, "node2", "running").await;
    let n2 = url(&lab, "node2").await;
    assert_eq!(
        get(&format!("{n2}/kv/obj0?consistency_level=ALL")).await,
        (200, "v2".into())
    );
    lab.shutdown().await;
}

/// The operator's remedy: `PUT /v1/schema/{class}` with a higher factor scales the collection
/// out (v1.26.18 usecases/schema/class.go `UpdateClass`); then QUORUM survives a node down.
/// Scaling in, or past the node count, is refused in Weaviate's words
/// (usecases/scaler/scaler.go, usecases/sharding/state.go `AdjustReplicas`).
#[tokio::test]
async fn scaling_out_to_factor_3_keeps_quorum_through_a_stop() {
    let lab = lab_with_factor(3, 2).await;
    let n1 = url(&lab, "node1").await;
    write_all(&n1).await;
    let update = |factor: u64| {
        let n1 = n1.clone();
        async move {
            let r = client()
                .put(format!("{n1}/v1/schema/LabObject"))
                .json(&json!({"class": "LabObject", "replicationConfig": {"factor": factor}}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (
                status,
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let (status, e) = update(4).await;
    assert_eq!(status, 422);
    assert_eq!(
        e["error"][0]["message"],
        "scale \"LabObject\" from 2 replicas to 4: not enough storage replicas: found 3 want 4"
    );
    let (status, schema) = update(3).await;
    assert_eq!(status, 200, "{schema}");
    assert_eq!(schema["classes"][0]["replicationConfig"]["factor"], 3);
    let (status, e) = update(2).await;
    assert_eq!(status, 422);
    assert_eq!(
        e["error"][0]["message"],
        "scale \"LabObject\" from 3 replicas to 2: scaling in not supported yet"
    );
    op_ok(&lab, "node2", "stop", json!({})).await;
    let (ok, failed) = read_all(&n1, "").await;
    assert_eq!(ok.len(), keys().len(), "{failed:?}");
    lab.shutdown().await;
}

/// The load generator reads at the default level, as clients do: on factor 2 a stopped node
/// shows as failed reads (and, once it is back, no more).
#[tokio::test]
async fn the_load_generator_counts_the_reads_quorum_refuses() {
    let mut cfg = LabConfig::new(Product::Weaviate, 3, Timing::fast());
    cfg.replication_factor = Some(2);
    cfg.load_rps = 200;
    let lab = Lab::start(cfg).await.unwrap();
    eventually("reads served", || async {
        (lab.traffic().await.ok_reads > 20).then_some(())
    })
    .await;
    assert_eq!(lab.traffic().await.failed_reads, 0);
    op_ok(&lab, "node2", "stop", json!({})).await;
    eventually("failed reads counted", || async {
        (lab.traffic().await.failed_reads > 0).then_some(())
    })
    .await;
    lab.shutdown().await;
}
