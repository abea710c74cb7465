//! procedures/weaviate-minor-steps.toml: hops from the catalog (one minor at a time, the 1.23.16
//! detour with its restore, the Raft stop at 1.25 with a backup after it, the sync gate from
//! 1.26 on), the refused downgrade, a full rolling run under load on a 3-node Weaviate lab,
//! and a cluster that never synchronizes: the sync gate fails and the rollback restores the old
//! version.

mod common;
mod seed_util;

use common::{run_on_lab, yes_all, yes_all_rollback};
use flightdeck::engine::event::Outcome;
use flightdeck::engine::state::Mode;
use flightdeck::lab::{Fault, Lab, LabConfig, Product, RunState, Timing};
use flightdeck::plan::expand::PlanOptions;
use seed_util::*;

const PROCEDURE: &str = "procedures/weaviate-minor-steps.toml";
const EXAMPLE: &str = "procedures/targets/weaviate-minor-steps.example.toml";

fn versions(from: &str, to: &str) -> PlanOptions {
    PlanOptions {
        from_version: Some(from.into()),
        to_version: Some(to.into()),
        catalog_dir: Default::default(),
    }
}

#[test]
fn one_minor_at_a_time_with_the_sync_gate() {
    let plan = check_and_plan(PROCEDURE, EXAMPLE, &PlanOptions::default());
    assert_eq!(plan.hops, ["1.26.17", "1.27.27"]);
    let keys = keys(&plan);
    assert_in_order(
        &keys,
        &[
            "backup",
            "backup-done",
            "hop-ready@1.26.17",
            // Followers first, the leader last.
            "drain@1.26.17/weaviate-2",
            "install@1.26.17/weaviate-2",
            "node-sync@1.26.17/weaviate-2",
            "drain@1.26.17/weaviate-3",
            "drain@1.26.17/weaviate-1",
            "node-sync@1.26.17/weaviate-1",
            "hop-sync@1.26.17",
            "hop-ready@1.27.27",
            "install@1.27.27/weaviate-2",
            "hop-sync@1.27.27",
            "final",
        ],
    );
    // No Raft migration, no detour on this path.
    assert!(!keys
        .iter()
        .any(|k| k.starts_with("raft-") || k.starts_with("detour")));
    // The sync gate polls every node for the node count and the flag.
    let gate = plan
        .steps
        .iter()
        .find(|s| s.key == "hop-sync@1.26.17")
        .unwrap();
    let text = serde_json::to_string(&gate.action).unwrap();
    assert!(text.contains("${node.url}/v1/cluster/statistics"), "{text}");
    assert!(text.contains(r#""/statistics#len":"3""#), "{text}");
    assert!(text.contains(r#""/synchronized":true"#), "{text}");
    assert!(text.contains(r#""nodes":"all""#), "{text}");
    // The install step goes hop by hop, from each hop's starting version.
    let undo = plan
        .steps
        .iter()
        .find(|s| s.key == "install@1.27.27/weaviate-3")
        .and_then(|s| s.undo.clone())
        .unwrap();
    assert!(serde_json::to_string(&undo)
        .unwrap()
        .contains("weaviate:1.26.17"));
}

#[test]
fn old_clusters_take_the_detour_and_stop_for_raft() {
    let plan = check_and_plan(PROCEDURE, EXAMPLE, &versions("1.22.4", "1.26.17"));
    assert_eq!(plan.hops, ["1.23.16", "1.24.26", "1.25.34", "1.26.17"]);
    let keys = keys(&plan);
    assert_in_order(
        &keys,
        &[
            "backup",
            "install@1.23.16/weaviate-2",
            "detour-restore@1.23.16",
            "detour-restore-done@1.23.16",
            "install@1.24.26/weaviate-2",
            "raft-migration@1.25.34",
            "install@1.25.34/weaviate-2",
            "verify-raft@1.25.34/weaviate-2",
            "raft-backup@1.25.34",
            "raft-backup-done@1.25.34",
            "node-sync@1.26.17/weaviate-2",
            "hop-sync@1.26.17",
        ],
    );
    // The sync gate starts at 1.26; the Raft hop's verify is the point of no return.
    assert!(!keys.iter().any(|k| k.starts_with("node-sync@1.25")));
    assert!(!keys.iter().any(|k| k.starts_with("verify@1.25")));
    let first = plan.first_irreversible().unwrap();
    assert_eq!(plan.steps[first].key, "verify-raft@1.25.34/weaviate-2");
    let restore = plan
        .steps
        .iter()
        .find(|s| s.key == "detour-restore@1.23.16")
        .unwrap();
    assert!(matches!(
        restore.confirm,
        flightdeck::plan::Confirm::Phrase { .. }
    ));
}

#[test]
fn a_downgrade_below_the_raft_snapshot_floor_is_refused() {
    let err = plan_error(PROCEDURE, EXAMPLE, &versions("1.28.14", "1.27.20"));
    assert!(err.contains("refused"), "{err}");
    assert!(err.contains("1.27.26"), "{err}");
    // Down to the floor is planned, as one hop.
    let plan = check_and_plan(PROCEDURE, EXAMPLE, &versions("1.28.14", "1.27.26"));
    assert_eq!(plan.hops, ["1.27.26"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_and_plans_against_the_lab_target() {
    let lab = Lab::start(LabConfig::new(Product::Weaviate, 3, Timing::fast()))
        .await
        .unwrap();
    let plan = check_and_plan_target(PROCEDURE, lab.target(), &PlanOptions::default());
    assert_eq!(plan.from_version.as_deref(), Some("1.25.10"));
    assert_eq!(plan.hops, ["1.26.17"]);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hops_rolling_under_load_keep_every_read() {
    let mut cfg = LabConfig::new(Product::Weaviate, 3, Timing::fast());
    cfg.load_rps = 100;
    cfg.to_version = Some("1.27.27".into());
    let run = run_on_lab(PROCEDURE, cfg, yes_all()).await;
    assert!(run.end.ok, "{}\n{}", run.end.summary, run.output);
    assert_eq!(run.state.mode, Mode::Finished(Outcome::Completed));
    assert_eq!(run.state.plan.hops, ["1.26.17", "1.27.27"]);
    let snap = run.lab.snapshot().await;
    for n in &snap.nodes {
        assert_eq!(n.version, "1.27.27", "{} not upgraded", n.name);
        assert_eq!(n.state, RunState::Running, "{}", n.name);
        assert!(n.synchronized, "{} not synchronized", n.name);
        assert!(!n.read_only, "{}", n.name);
    }
    assert!(
        snap.backends.iter().all(|b| b.serving),
        "{:?}",
        snap.backends
    );
    let backup = run
        .lab
        .data_dir()
        .join("backups/flightdeck-before-upgrade.json");
    assert!(backup.exists(), "{} missing", backup.display());
    let traffic = run.lab.traffic().await;
    assert!(traffic.ok_reads > 0, "the load generator sent nothing");
    assert_eq!(traffic.failed_reads, 0, "{traffic:?}");
    assert_every_step_journaled(&run);
    run.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_1_24_the_raft_hop_takes_a_backup_after_it() {
    let mut cfg = LabConfig::new(Product::Weaviate, 3, Timing::fast());
    cfg.version = Some("1.24.26".into());
    cfg.to_version = Some("1.25.34".into());
    let run = run_on_lab(PROCEDURE, cfg, yes_all()).await;
    assert!(run.end.ok, "{}\n{}", run.end.summary, run.output);
    let snap = run.lab.snapshot().await;
    assert!(snap.nodes.iter().all(|n| n.version == "1.25.34"));
    assert!(run
        .lab
        .data_dir()
        .join("backups/flightdeck-after-raft.json")
        .exists());
    assert_every_step_journaled(&run);
    run.lab.shutdown().await;
}

#[test]
fn a_single_hop_across_1_23_13_restores_too() {
    let plan = check_and_plan(PROCEDURE, EXAMPLE, &versions("1.22.4", "1.23.16"));
    assert_eq!(plan.hops, ["1.23.16"]);
    assert_in_order(
        &keys(&plan),
        &[
            "backup",
            "install@1.23.16/weaviate-1",
            "detour-restore@1.23.16",
        ],
    );
    let plan = check_and_plan(PROCEDURE, EXAMPLE, &versions("1.23.13", "1.24.26"));
    assert!(!keys(&plan).iter().any(|k| k.starts_with("detour")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_1_22_the_detour_restores_the_backup() {
    let mut cfg = LabConfig::new(Product::Weaviate, 3, Timing::fast());
    cfg.version = Some("1.22.4".into());
    cfg.to_version = Some("1.24.26".into());
    let run = run_on_lab(PROCEDURE, cfg, yes_all()).await;
    assert!(run.end.ok, "{}\n{}", run.end.summary, run.output);
    assert_eq!(run.state.plan.hops, ["1.23.16", "1.24.26"]);
    assert!(
        run.output.contains("detour-restore-done@1.23.16"),
        "{}",
        run.output
    );
    let snap = run.lab.snapshot().await;
    assert!(snap
        .nodes
        .iter()
        .all(|n| n.version == "1.24.26" && n.state == RunState::Running));
    assert_every_step_journaled(&run);
    run.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_never_syncs_fails_the_gate_and_rolls_back() {
    let mut cfg = LabConfig::new(Product::Weaviate, 3, Timing::fast());
    cfg.load_rps = 100;
    cfg.faults = vec!["no-sync".parse::<Fault>().unwrap()];
    let run = run_on_lab(PROCEDURE, cfg, yes_all_rollback()).await;
    assert!(!run.end.ok);
    assert_eq!(
        run.state.mode,
        Mode::Finished(Outcome::RolledBack),
        "{}",
        run.output
    );
    assert!(
        run.output.contains("node-sync@1.26.17/node2"),
        "{}",
        run.output
    );
    assert!(
        run.output.contains("/synchronized"),
        "the gate says what is wrong: {}",
        run.output
    );
    wait_for_lab(&run.lab, "the cluster back on 1.25.10", |snap| {
        snap.nodes
            .iter()
            .all(|n| n.version == "1.25.10" && n.state == RunState::Running && !n.read_only)
            && snap.backends.iter().all(|b| b.serving)
    })
    .await;
    let traffic = run.lab.traffic().await;
    assert_eq!(traffic.failed_reads, 0, "{traffic:?}");
    run.lab.shutdown().await;
}
