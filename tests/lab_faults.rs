//! Staged faults through the admin API.

mod lab_util;

use std::time::{Duration, Instant};

use flightdeck::lab::{LabConfig, Product, Timing};
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

    // Admin operations are out of band: not slowed. The delay is far past anything a loaded
    // machine adds, so an operation that waited it out cannot pass for a slow one that did not.
    assert_eq!(fault(&lab, "slow:node1:10m").await.0, 200);
    let admin = op_ok(&lab, "node1", "read-only-off", json!({}));
    tokio::time::timeout(Duration::from_secs(60), admin)
        .await
        .expect("an admin operation waited out the node's delay");
    let r = client()
        .delete(format!("{}/_lab/fault", lab.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
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

/// Run the flightdeck binary from the repository root with the fast lab.
fn flightdeck(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_flightdeck"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("FLIGHTDECK_LAB_TIMING", "fast")
        .output()
        .unwrap()
}

/// `run --lab --fault`: a bad kind, node or step is refused with exit 2 before anything runs
/// (no journal is written), and `--fault` without `--lab` is a usage error.
#[test]
fn run_refuses_a_bad_fault_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j.jsonl");
    let j = journal.to_str().unwrap();
    // `run --lab` with `extra` and `--fault fault` exits 2 saying `why`, with no journal.
    let refused = |extra: &[&str], fault: &str, why: &str| {
        let mut args = vec!["run", "procedures/generic-rolling.toml", "--lab"];
        args.extend_from_slice(extra);
        args.extend(["--journal", j, "--fault", fault]);
        let out = flightdeck(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{fault}: {err}");
        assert!(err.contains(why), "{fault}: {err}");
        assert!(!journal.exists(), "{fault}: a journal was written");
    };
    for (fault, why) in [
        ("boom:node2@step=8", "unknown kind"),
        ("crash:node2@8", "expected KIND:NODE@step=N"),
        ("crash:node9@step=8", "no node \"node9\""),
        ("crash:node2@step=99", "no step 99"),
        ("crash:node2@step=start@node7", "no step start@node7"),
    ] {
        refused(&["--headless", "--yes"], fault, why);
    }
    // The default (a detached session server) checks before it detaches.
    for (fault, why) in [
        ("crash:node9", "no node \"node9\""),
        ("crash:node2@step=99", "no step 99"),
    ] {
        refused(&[], fault, why);
    }
    let out = flightdeck(&[
        "run",
        "procedures/generic-rolling.toml",
        "--target",
        "procedures/targets/example.toml",
        "--fault",
        "crash:node2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--lab"));
}

/// A fault staged for step 8 (node2's start, which migrates its store) fires when that step
/// starts: the journal says it was staged and when it fired, the step's output and the report
/// show it, and the run fails where the real system would (the node does not come back).
#[test]
fn a_fault_staged_for_a_step_fires_when_it_starts_and_is_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j.jsonl");
    let j = journal.to_str().unwrap();
    let out = flightdeck(&[
        "run",
        "procedures/generic-rolling.toml",
        "--lab",
        "--headless",
        "--yes",
        "--journal",
        j,
        "--fault",
        "fail-migration:node2@step=start@node2",
        "--fault",
        "slow:node3:1ms",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("lab fault fail-migration:node2 staged for [8/23] start@node2")
            && stdout.contains("lab fault slow:node3:1ms in force from the start")
            && stdout
                .contains("lab fault fail-migration:node2 fired as [8/23] start@node2 started"),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&journal).unwrap();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let seq_of = |pred: &dyn Fn(&Value) -> bool| {
        events
            .iter()
            .find(|e| pred(e))
            .and_then(|e| e["seq"].as_u64())
            .unwrap_or_else(|| panic!("not journaled:\n{text}"))
    };
    let staged = seq_of(&|e| e["type"] == "fault_staged" && e["step"] == 7);
    let started = seq_of(&|e| e["type"] == "action_started" && e["step"] == 7);
    let fired = seq_of(&|e| {
        e["type"] == "fault_fired" && e["step"] == 7 && e["fault"] == "fail-migration:node2"
    });
    let finished = seq_of(&|e| e["type"] == "action_finished" && e["step"] == 7);
    assert!(staged < started && started < fired && fired < finished);
    seq_of(&|e| {
        e["type"] == "output"
            && e["step"] == 7
            && e["line"]
                .as_str()
                .is_some_and(|l| l.contains("fail-migration:node2 took effect"))
    });

    let out = flightdeck(&["report", j, "--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let faults = report["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 2, "{report}");
    let f = faults
        .iter()
        .find(|f| f["fault"] == "fail-migration:node2")
        .unwrap();
    assert_eq!(f["step"], 8);
    assert_eq!(f["step_key"], "start@node2");
    assert!(f["fired_ms"].as_u64().is_some(), "{f}");
    let out = flightdeck(&["report", j]);
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(
        md.contains("## Lab faults")
            && md.contains("| fail-migration:node2 | step 8 (start@node2) |"),
        "{md}"
    );
}

/// Stops `name`, installs `version` and starts it: the start runs the store or schema upgrade.
/// Returns why the node failed.
async fn upgrade_and_fail(lab: &flightdeck::lab::Lab, name: &str, version: &str) -> String {
    op_ok(lab, name, "stop", json!({})).await;
    op_ok(lab, name, "install", json!({ "version": version })).await;
    op_ok(lab, name, "start", json!({})).await;
    wait_state(lab, name, "failed")
        .await
        .reason
        .unwrap_or_default()
}

/// `fail-migration` on each product fails the upgrade where the product runs it, with the
/// product's own words (the sources are cited in `lab/node/faults.rs`).
#[tokio::test]
async fn jahia_fail_migration_hits_the_node_that_updates_the_schema() {
    let lab = lab(Product::Jahia, 2).await;
    assert_eq!(fault(&lab, "fail-migration:node1").await.0, 200);
    let admin = lab.admin_url();
    let r = client()
        .post(format!("{admin}/_lab/copy-schema"))
        .json(&json!({"from": "A", "to": "B"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    op_ok(&lab, "node1", "stop", json!({})).await;
    op_ok(&lab, "node1", "set-schema", json!({"schema": "B"})).await;
    op_ok(&lab, "node1", "marker", json!({})).await;
    let why = upgrade_and_fail(&lab, "node1", "8.2.0.0").await;
    assert!(
        why.starts_with("Execution of script file [") && why.contains("failed with error:"),
        "{why}"
    );
    assert!(why.contains(".failed"), "{why}");
    lab.shutdown().await;
}

#[tokio::test]
async fn neo4j_fail_migration_fails_the_store_upgrade_at_start() {
    let lab = lab(Product::Neo4j, 1).await;
    assert_eq!(fault(&lab, "fail-migration:node1").await.0, 200);
    op_ok(&lab, "node1", "stop", json!({})).await;
    op_ok(&lab, "node1", "config", json!({"allow_upgrade": true})).await;
    let why = upgrade_and_fail(&lab, "node1", "3.3.5").await;
    assert!(
        why.contains("StoreUpgrader$UnableToUpgradeException: Failure doing migration"),
        "{why}"
    );
    assert_eq!(
        node(&lab, "node1").await.store_format,
        3002,
        "left as it was"
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn weaviate_fail_migration_fails_the_schema_move_into_raft() {
    let mut cfg = LabConfig::new(Product::Weaviate, 1, Timing::fast());
    cfg.version = Some("1.24.26".into());
    cfg.faults = vec!["fail-migration:node1".parse().unwrap()];
    let lab = flightdeck::lab::Lab::start(cfg).await.unwrap();
    let why = upgrade_and_fail(&lab, "node1", "1.25.34").await;
    assert!(
        why.starts_with("migrate from old schema: raft restore:")
            && why.contains("waiting for database to be restored"),
        "{why}"
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn milvus_fail_migration_fails_the_metadata_migration_step() {
    let lab = lab(Product::Milvus, 1).await;
    assert_eq!(fault(&lab, "fail-migration:node1").await.0, 200);
    op_ok(&lab, "node1", "stop", json!({})).await;
    let (status, body) = op(&lab, "node1", "migrate-metadata", json!({})).await;
    assert_eq!(status, 500, "{body}");
    let why = body["error"].as_str().unwrap_or_default();
    assert!(why.contains("Migration is failed..."), "{why}");
    assert_eq!(
        node(&lab, "node1").await.store_format,
        2001,
        "still 2.1 metadata"
    );
    // migrate.sh as the procedure runs it says the same.
    op_ok(&lab, "node1", "start", json!({})).await;
    wait_state(&lab, "node1", "running").await;
    let r = client()
        .post(format!("{}/_lab/migrate-sh", lab.admin_url()))
        .json(&json!({"operation": "migrate", "version": "2.2.14"}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("Migration is failed...")),
        "{body}"
    );
    lab.shutdown().await;
}
