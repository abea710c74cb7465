//! procedures/milvus-helm.toml: the path follows the current version and the deployment
//! (metadata migration from 2.1.x, helm upgrade for a standalone, before 2.2.3 or on RocksMQ, a
//! rolling upgrade of a cluster from 2.2.3), the chart and the refusals come from the catalog; a
//! full lab run from 2.1.4; a rolling run under load that loses no read; a failed migration
//! restores the etcd snapshot and Milvus runs 2.1.4 again.

mod common;
mod seed_util;

use std::path::Path;

use common::{run_on_lab, run_on_started_lab, yes_all, yes_all_rollback, LAB_SCALE};
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

const CHECKS: [&str; 6] = [
    "helm-version",
    "kubectl-version",
    "chart-versions",
    "preflight",
    "current-version@standalone",
    "backup",
];
const END: [&str; 5] = [
    "final",
    "final-version@standalone",
    "smoke-write",
    "smoke-read",
    "smoke-drop",
];

fn expect(middle: &[&str], end: &[&str]) -> Vec<String> {
    CHECKS
        .iter()
        .chain(middle)
        .chain(END.iter())
        .chain(end)
        .map(|s| s.to_string())
        .collect()
}

fn step<'a>(plan: &'a flightdeck::plan::Plan, key: &str) -> &'a flightdeck::plan::PlannedStep {
    plan.steps
        .iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("no step {key}"))
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap()
}

#[test]
fn the_current_version_chooses_the_path() {
    let plan = check_and_plan(PROCEDURE, EXAMPLE, &from("2.1.4"));
    assert_eq!(
        keys(&plan),
        expect(
            &[
                "etcd-snapshot",
                "migrate-metadata",
                "migrate-ready",
                "helm-sync"
            ],
            &["migrate-cleanup"]
        ),
        "2.1.x migrates its metadata"
    );
    let migrate = step(&plan, "migrate-metadata");
    let text = json(&migrate.action);
    assert!(text.contains(r#""-s","2.1.4","-t","2.4.5""#), "{text}");
    // No `-d true`: it deletes the backup (seed audit M1).
    assert!(!text.contains(r#""-d""#), "{text}");
    // The undo restores the etcd snapshot, not migrate.sh -o rollback (audit M2).
    let undo = json(&migrate.undo);
    assert!(
        undo.contains("etcd-restore") && undo.contains("milvusdb/milvus:v2.1.4"),
        "{undo}"
    );
    assert!(!undo.contains("rollback"), "{undo}");
    assert!(step(&plan, "migrate-ready").irreversible.is_some());
    // The release is brought in line with what runs (audit M5).
    let sync = json(&step(&plan, "helm-sync").action);
    assert!(
        sync.contains("--reset-then-reuse-values") && sync.contains("--version=4.1.36"),
        "{sync}"
    );

    let plan = check_and_plan(PROCEDURE, EXAMPLE, &from("2.2.0"));
    assert_eq!(
        keys(&plan),
        expect(&["helm-upgrade", "helm-ready"], &[]),
        "before 2.2.3"
    );
    let upgrade = step(&plan, "helm-upgrade");
    let text = json(&upgrade.action);
    assert!(text.contains("--reset-then-reuse-values"), "{text}");
    // The chart comes from the catalog: the newest chart that ships 2.4.5.
    assert!(text.contains("--version=4.1.36"), "{text}");
    // Milvus cannot be downgraded: no helm rollback as the undo, and it is the point of no return.
    assert!(upgrade.undo.is_none());
    assert!(upgrade.irreversible.is_some());

    // A standalone from 2.2.3 still takes helm upgrade, with downtime (audit M4).
    let plan = check_and_plan(PROCEDURE, EXAMPLE, &from("2.2.5"));
    assert_eq!(
        keys(&plan),
        expect(&["helm-upgrade", "helm-ready"], &[]),
        "standalone"
    );
    assert_eq!(
        step(&plan, "helm-upgrade").downtime,
        flightdeck::procedure::model::Downtime::Full
    );
}

#[test]
fn the_catalog_picks_the_chart_and_refuses_what_cannot_be_done() {
    let to = |from: &str, to: &str| PlanOptions {
        from_version: Some(from.into()),
        to_version: Some(to.into()),
        ..Default::default()
    };
    let plan = check_and_plan(PROCEDURE, EXAMPLE, &to("2.2.5", "2.5.12"));
    assert_eq!(
        step(&plan, "chart-versions").title,
        "Chart 4.2.50 ships Milvus 2.5.12"
    );
    // No chart ships 2.5.26: refused at plan time, not at run time.
    let err = plan_error(PROCEDURE, EXAMPLE, &to("2.2.5", "2.5.26"));
    assert!(
        err.contains("no chart in the catalog ships milvus 2.5.26"),
        "{err}"
    );
    // 2.6 needs 2.5.16 first.
    let err = plan_error(PROCEDURE, EXAMPLE, &to("2.5.12", "2.6.5"));
    assert!(err.contains("2.5.16"), "{err}");
    check_and_plan(PROCEDURE, EXAMPLE, &to("2.5.16", "2.6.5"));
    // Milvus cannot be downgraded.
    let err = plan_error(PROCEDURE, EXAMPLE, &to("2.4.5", "2.2.5"));
    assert!(err.contains("not supported"), "{err}");
    // A chart the target pins must ship the version planned.
    let mut target = load_target(Path::new(EXAMPLE)).unwrap();
    target.vars.insert("chart_version".into(), "4.1.34".into());
    let plan = check_and_plan_target(PROCEDURE, &target, &from("2.2.5"));
    assert_eq!(
        step(&plan, "chart-versions").title,
        "Chart 4.1.34 ships Milvus 2.4.5"
    );
    let lp = flightdeck::procedure::load::load_procedure(Path::new(PROCEDURE)).unwrap();
    let err = flightdeck::plan::expand::build_plan(&lp, &target, &to("2.2.5", "2.5.12"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("chart 4.1.34 ships milvus 2.4.5, not 2.5.12"),
        "{err}"
    );
}

#[test]
fn rocksmq_installs_take_helm_upgrade_and_clusters_roll_in_script_order() {
    let mut target = load_target(Path::new(EXAMPLE)).unwrap();
    target.vars.insert("message_queue".into(), "rocksmq".into());
    target.vars.insert("milvus_mode".into(), "cluster".into());
    let plan = check_and_plan_target(PROCEDURE, &target, &from("2.2.5"));
    assert_eq!(keys(&plan), expect(&["helm-upgrade", "helm-ready"], &[]));

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
    let keys = keys(&plan);
    assert_in_order(
        &keys,
        &["rolling-prepare", "rollout@rootcoord", "helm-sync", "final"],
    );
    // rollingUpdate.sh's patch: minReadySeconds 30 on the coordinators (audit M3), by the
    // target's binding, which is given the component.
    let rollout = json(&step(&plan, "rollout@rootcoord").action);
    assert!(
        rollout.contains(r#""rollout","milvus","my-release","rootcoord""#),
        "{rollout}"
    );
    // No image downgrade as an undo: the first rollout is the point of no return.
    assert!(plan
        .steps
        .iter()
        .all(|s| !s.key.starts_with("rollout@") || s.undo.is_none()));
    let first = plan.first_irreversible().unwrap();
    assert_eq!(plan.steps[first].key, "rollout@rootcoord");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_and_plans_against_the_lab_target() {
    let lab = Lab::start(LabConfig::new(Product::Milvus, 1, Timing::fast()))
        .await
        .unwrap();
    let target = lab.target();
    assert_eq!(target.nodes[0].tags["component"], "standalone");
    // One node: a standalone, which never rolls.
    for (v, step) in [
        ("2.1.4", "migrate-metadata"),
        ("2.2.0", "helm-upgrade"),
        ("2.2.5", "helm-upgrade"),
    ] {
        let plan = check_and_plan_target(PROCEDURE, target, &from(v));
        assert!(keys(&plan).contains(&step.to_string()), "{v}: {step}");
    }
    lab.shutdown().await;
    let lab = Lab::start(LabConfig::new(Product::Milvus, 3, Timing::fast()))
        .await
        .unwrap();
    let plan = check_and_plan_target(PROCEDURE, lab.target(), &from("2.2.5"));
    assert!(keys(&plan).contains(&"rollout@node1".to_string()));
    // The lab's Deployments carry the chart's `component` label, which the loop orders by
    // (and which `check` requires some node to have).
    let components: Vec<&str> = lab
        .target()
        .nodes
        .iter()
        .map(|n| n.tags.get("component").map_or("", String::as_str))
        .collect();
    assert_eq!(components, ["rootcoord", "datacoord", "indexcoord"]);
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
    assert_eq!(n.version, "2.2.14");
    assert_eq!(n.state, RunState::Running);
    assert_eq!(n.store_format, 2002, "metadata in the 2.2 format");
    // migrate.sh's metadata backup stays (no -d), and the etcd snapshot was taken first.
    assert!(run
        .lab
        .data_dir()
        .join("node1/metadata-backup.json")
        .exists());
    assert!(run
        .lab
        .data_dir()
        .join("etcd-snapshots/flightdeck-before-migrate-node1.json")
        .exists());
    // The last node's `ready` is done; the balancer's own checks (rise 2) are sampled apart
    // from the session: poll for every backend serving.
    wait_for_lab(&run.lab, "every backend serving", |s| {
        s.backends.iter().all(|b| b.serving)
    })
    .await;
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
        assert_eq!(n.version, "2.2.14", "{}", n.name);
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
        .all(|n| n.version == "2.2.14" && n.state == RunState::Running));
    assert_every_step_journaled(&run);
    run.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_migration_restores_the_etcd_snapshot() {
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
    // The rollback verified itself: every node back on the old version, healthy, serving.
    assert!(
        flightdeck::engine::outcome::rollback_verified(&run.state),
        "{}\n{}",
        run.end.summary,
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

/// The pre-flight reads the version the Deployment runs: on another version than `from` the run
/// stops before the backup, and nothing is migrated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_on_another_version_stops_the_preflight() {
    let lab = Lab::start(LabConfig::new(Product::Milvus, 1, Timing::fast()))
        .await
        .unwrap();
    switch_node_version(&lab, 0, "2.1.3").await;
    let run = run_on_started_lab(PROCEDURE, lab, yes_all(), LAB_SCALE).await;
    assert!(!run.end.ok);
    assert!(
        run.output.contains("current-version@node1"),
        "{}",
        run.output
    );
    assert!(
        run.output
            .contains(r#"/version is "2.1.3", expected "2.1.4""#),
        "{}",
        run.output
    );
    let snap = run.lab.snapshot().await;
    let n = snap.node("node1").unwrap();
    assert_eq!((n.version.as_str(), n.store_format), ("2.1.3", 2001));
    run.lab.shutdown().await;
}

/// The smoke test is what catches a Milvus that is healthy on the new version but takes no
/// writes (a full disk: the quota center's `DenyToWrite`): `final` (/healthz) and
/// `final-version` pass, then `smoke-write` fails with the write refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smoke_test_catches_a_healthy_milvus_that_refuses_writes() {
    let mut cfg = LabConfig::new(Product::Milvus, 1, Timing::fast());
    cfg.version = Some("2.2.0".into());
    cfg.faults = vec!["deny-writes:node1".parse::<Fault>().unwrap()];
    let run = run_on_lab(PROCEDURE, cfg, yes_all()).await;
    assert!(!run.end.ok, "{}", run.output);
    let (failed, why) = run.state.first_failure.clone().expect("a step failed");
    assert_eq!(
        run.state.plan.steps[failed].key, "smoke-write",
        "{}",
        run.output
    );
    assert!(why.contains("503"), "{why}");
    assert!(
        run.output.contains("read-only"),
        "the refusal's words:\n{}",
        run.output
    );
    for key in ["final", "final-version@node1"] {
        let i = run
            .state
            .plan
            .steps
            .iter()
            .position(|s| s.key == key)
            .expect("step");
        assert_eq!(
            run.state.steps[i].status,
            flightdeck::engine::state::StepStatus::Succeeded,
            "{key} passed: the health and version checks do not see it\n{}",
            run.output
        );
    }
    let snap = run.lab.snapshot().await;
    assert!(snap
        .nodes
        .iter()
        .all(|n| n.version == "2.2.14" && n.state == RunState::Running));
    run.lab.shutdown().await;
}
