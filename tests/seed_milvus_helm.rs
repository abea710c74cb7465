//! procedures/milvus-helm.toml: the path follows the current version (metadata migration from
//! 2.1.x, helm upgrade before 2.2.3 or on RocksMQ, a rolling upgrade from 2.2.3); a full lab
//! run from 2.1.4; a rolling run under load that loses no read; a failed migration rolls the
//! metadata back and Milvus runs 2.1.4 again.

mod common;
mod seed_util;

use std::path::Path;

use common::{run_on_lab, yes_all, yes_all_rollback};
use flightdeck::engine::event::Outcome;
use flightdeck::engine::state::Mode;
use flightdeck::lab::{Fault, Lab, LabConfig, Product, RunState, Timing};
use flightdeck::plan::expand::PlanOptions;
use flightdeck::target_load::load_target;
use seed_util::*;

const PROCEDURE: &str = "procedures/milvus-helm.toml";
const EXAMPLE: &str = "procedures/targets/milvus-helm.example.toml";

fn from(v: &str) -> PlanOptions {
    PlanOptions {
        from_version: Some(v.into()),
        ..Default::default()
    }
}

const CHECKS: [&str; 5] = [
    "helm-version",
    "kubectl-version",
    "chart-versions",
    "preflight",
    "current-version@standalone",
];
const END: [&str; 2] = ["final", "final-version@standalone"];

fn expect(middle: &[&str]) -> Vec<String> {
    CHECKS
        .iter()
        .chain(middle)
        .chain(END.iter())
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn the_current_version_chooses_the_path() {
    let plan = check_and_plan(PROCEDURE, EXAMPLE, &from("2.1.4"));
    assert_eq!(
        keys(&plan),
        expect(&["migrate-metadata", "migrate-ready"]),
        "2.1.x migrates its metadata"
    );
    let migrate = &plan.steps[5];
    let text = serde_json::to_string(&migrate.action).unwrap();
    assert!(text.contains(r#""-s","2.1.4","-t","2.4.5""#), "{text}");
    let undo = serde_json::to_string(&migrate.undo).unwrap();
    assert!(
        undo.contains(r#""-o","rollback","-w","milvusdb/milvus:v2.1.4""#),
        "{undo}"
    );
    assert!(plan.steps[6].irreversible.is_some());

    let plan = check_and_plan(PROCEDURE, EXAMPLE, &from("2.2.0"));
    assert_eq!(
        keys(&plan),
        expect(&["helm-upgrade", "helm-ready"]),
        "before 2.2.3: helm upgrade"
    );
    let text = serde_json::to_string(&plan.steps[5].action).unwrap();
    assert!(text.contains("--reset-then-reuse-values"), "{text}");
    assert!(text.contains("--version=4.1.34"), "{text}");

    let plan = check_and_plan(PROCEDURE, EXAMPLE, &from("2.2.5"));
    assert_eq!(
        keys(&plan),
        expect(&["rollout@standalone", "rollout-status@standalone"]),
        "from 2.2.3: rolling upgrade"
    );
    let text = serde_json::to_string(&plan.steps[6].action).unwrap();
    assert!(
        text.contains("rollout") && text.contains("status"),
        "{text}"
    );
}

#[test]
fn rocksmq_installs_take_helm_upgrade_and_clusters_roll_in_script_order() {
    let mut target = load_target(Path::new(EXAMPLE)).unwrap();
    target.vars.insert("message_queue".into(), "rocksmq".into());
    let plan = check_and_plan_target(PROCEDURE, &target, &from("2.2.5"));
    assert_eq!(keys(&plan), expect(&["helm-upgrade", "helm-ready"]));

    // A cluster: one node per Deployment, listed out of order; rolled in rollingUpdate.sh's.
    let mut target = load_target(Path::new(EXAMPLE)).unwrap();
    target.vars.insert("milvus_mode".into(), "cluster".into());
    let template = target.nodes[0].clone();
    target.nodes = [
        "proxy",
        "querynode",
        "rootcoord",
        "datanode",
        "querycoord",
        "indexcoord",
        "datacoord",
        "indexnode",
    ]
    .iter()
    .map(|c| {
        let mut n = template.clone();
        n.name = c.to_string();
        n.tags.insert("component".into(), c.to_string());
        n
    })
    .collect();
    let plan = check_and_plan_target(PROCEDURE, &target, &from("2.2.5"));
    let rollouts: Vec<String> = keys(&plan)
        .into_iter()
        .filter(|k| k.starts_with("rollout@"))
        .collect();
    assert_eq!(
        rollouts,
        [
            "rollout@rootcoord",
            "rollout@datacoord",
            "rollout@indexcoord",
            "rollout@querycoord",
            "rollout@indexnode",
            "rollout@datanode",
            "rollout@querynode",
            "rollout@proxy",
        ]
    );
    assert!(keys(&plan).contains(&"active-standby".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_and_plans_against_the_lab_target() {
    let lab = Lab::start(LabConfig::new(Product::Milvus, 1, Timing::fast()))
        .await
        .unwrap();
    let target = lab.target();
    for (v, step) in [
        ("2.1.4", "migrate-metadata"),
        ("2.2.0", "helm-upgrade"),
        ("2.2.5", "rollout@node1"),
    ] {
        let plan = check_and_plan_target(PROCEDURE, target, &from(v));
        assert!(keys(&plan).contains(&step.to_string()), "{v}: {step}");
    }
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_2_1_4_the_metadata_is_migrated() {
    let cfg = LabConfig::new(Product::Milvus, 1, Timing::fast());
    let run = run_on_lab(PROCEDURE, cfg, yes_all()).await;
    assert!(run.end.ok, "{}\n{}", run.end.summary, run.output);
    assert_eq!(run.state.mode, Mode::Finished(Outcome::Completed));
    let snap = run.lab.snapshot().await;
    let n = snap.node("node1").unwrap();
    assert_eq!(n.version, "2.2.16");
    assert_eq!(n.state, RunState::Running);
    assert_eq!(n.store_format, 2002, "metadata in the 2.2 format");
    // migrate.sh's metadata backup stays for a rollback.
    assert!(run
        .lab
        .data_dir()
        .join("node1/metadata-backup.json")
        .exists());
    assert!(snap.backends.iter().all(|b| b.serving), "{snap:?}");
    assert_every_step_journaled(&run);
    run.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_2_2_5_the_rolling_upgrade_loses_no_read() {
    let mut cfg = LabConfig::new(Product::Milvus, 3, Timing::fast());
    cfg.version = Some("2.2.5".into());
    cfg.load_rps = 100;
    let run = run_on_lab(PROCEDURE, cfg, yes_all()).await;
    assert!(run.end.ok, "{}\n{}", run.end.summary, run.output);
    let snap = run.lab.snapshot().await;
    for n in &snap.nodes {
        assert_eq!(n.version, "2.2.16", "{}", n.name);
        assert_eq!(n.state, RunState::Running, "{}", n.name);
    }
    let traffic = run.lab.traffic().await;
    assert!(traffic.ok_reads > 0, "the load generator sent nothing");
    assert_eq!(traffic.failed_reads, 0, "{traffic:?}");
    assert_every_step_journaled(&run);
    run.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_2_2_0_helm_upgrades_the_release() {
    let mut cfg = LabConfig::new(Product::Milvus, 1, Timing::fast());
    cfg.version = Some("2.2.0".into());
    let run = run_on_lab(PROCEDURE, cfg, yes_all()).await;
    assert!(run.end.ok, "{}\n{}", run.end.summary, run.output);
    assert!(run.output.contains("helm-upgrade"), "{}", run.output);
    let snap = run.lab.snapshot().await;
    assert!(snap
        .nodes
        .iter()
        .all(|n| n.version == "2.2.16" && n.state == RunState::Running));
    assert_every_step_journaled(&run);
    run.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_migration_rolls_the_metadata_back() {
    let mut cfg = LabConfig::new(Product::Milvus, 1, Timing::fast());
    cfg.faults = vec!["fail-migration:node1".parse::<Fault>().unwrap()];
    let run = run_on_lab(PROCEDURE, cfg, yes_all_rollback()).await;
    assert!(!run.end.ok);
    assert_eq!(
        run.state.mode,
        Mode::Finished(Outcome::RolledBack),
        "{}",
        run.output
    );
    assert!(run.output.contains("exit 3"), "{}", run.output);
    wait_for_lab(&run.lab, "Milvus back on 2.1.4", |snap| {
        snap.nodes
            .iter()
            .all(|n| n.version == "2.1.4" && n.state == RunState::Running && n.store_format == 2001)
            && snap.backends.iter().all(|b| b.serving)
    })
    .await;
    run.lab.shutdown().await;
}
