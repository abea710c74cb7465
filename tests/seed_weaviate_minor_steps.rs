//! procedures/weaviate-minor-steps.toml: hops from the catalog (one minor at a time, below
//! 1.23.13 too, with the collections deleted and the backup restored in a writes-down window; the
//! Raft hop at 1.25 with the whole cluster down and its schema-v1 way back; the sync gate on every
//! node from 1.26 on), the refused downgrade, the version pre-flight, full rolling runs under load
//! on a 3-node Weaviate lab, and a cluster that never synchronizes: the sync gate fails and the
//! rollback restores the old version.

mod common;
mod seed_util;

use common::{
    run_on_lab, run_on_lab_scaled, run_on_started_lab, yes_all, yes_all_rollback, LAB_SCALE,
};
use flightdeck::engine::event::Outcome;
use flightdeck::engine::state::Mode;
use flightdeck::lab::{Fault, Lab, LabConfig, Product, RunState, Timing};
use flightdeck::plan::expand::PlanOptions;
use flightdeck::procedure::model::Downtime;
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

fn step<'a>(plan: &'a flightdeck::plan::Plan, key: &str) -> &'a flightdeck::plan::PlannedStep {
    plan.steps
        .iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("no step {key}"))
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap()
}

/// `flightdeck plan procedures/weaviate-minor-steps.toml --lab --from F --to T` as an operator
/// types it: the plan's text.
fn plan_on_the_lab(from: &str, to: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flightdeck"))
        .args(["plan", PROCEDURE, "--lab", "--from", from, "--to", to])
        .env("FLIGHTDECK_LAB_TIMING", "fast")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("flightdeck runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Issue 11's "done means", on the command line: from 1.20.0 a hop for every minor 1.21 ...
/// 1.24 (each line's latest patch), and the guide's 1.25.10 -> 1.27 scenario through 1.26.18.
#[test]
fn plan_on_the_lab_shows_every_minor_hop() {
    let text = plan_on_the_lab("1.20.0", "1.24.26");
    assert!(
        text.lines()
            .any(|l| l == "Hops:      1.21.9 -> 1.22.13 -> 1.23.16 -> 1.24.26"),
        "{text}"
    );
    for (to, hops) in [
        ("1.27.27", "Hops:      1.26.18 -> 1.27.27"),
        ("1.27", "Hops:      1.26.18 -> 1.27"),
    ] {
        let text = plan_on_the_lab("1.25.10", to);
        assert!(text.lines().any(|l| l == hops), "--to {to}:\n{text}");
        assert!(text.contains("install@1.26.18/node1"), "--to {to}:\n{text}");
    }
}

#[test]
fn one_minor_at_a_time_with_the_sync_gate() {
    // The guide's own scenario, 1.25.10 -> 1.27: through 1.26's latest patch (git tag v1.26.18).
    let plan = check_and_plan(PROCEDURE, EXAMPLE, &PlanOptions::default());
    assert_eq!(plan.hops, ["1.26.18", "1.27.27"]);
    let keys = keys(&plan);
    assert_in_order(
        &keys,
        &[
            "preflight",
            "preflight-version",
            "backup",
            "backup-done",
            "hop-ready@1.26.18",
            // Target order: the Raft leader is not pinned to a node (audit W3).
            "drain@1.26.18/weaviate-1",
            "install@1.26.18/weaviate-1",
            "verify-version@1.26.18/weaviate-1",
            "node-sync@1.26.18/weaviate-1",
            "drain@1.26.18/weaviate-2",
            "node-sync@1.26.18/weaviate-3",
            "hop-sync@1.26.18",
            "hop-ready@1.27.27",
            "install@1.27.27/weaviate-1",
            "hop-sync@1.27.27",
            "final",
            "final-version",
        ],
    );
    // No Raft migration, no detour, no writes window on this path.
    assert!(!keys
        .iter()
        .any(|k| k.starts_with("raft-") || k.starts_with("detour") || k.starts_with("writes")));
    assert!(plan.steps.iter().all(|s| s.downtime == Downtime::None));
    // The sync gates poll every node for the node count and the flag, the per-node one too
    // (audit W2): the URL is left for the gate to fill in per polled node.
    for key in ["hop-sync@1.26.18", "node-sync@1.26.18/weaviate-2"] {
        let text = json(&step(&plan, key).action);
        assert!(
            text.contains("${node.url}/v1/cluster/statistics"),
            "{key}: {text}"
        );
        assert!(!text.contains("weaviate-2.internal"), "{key}: {text}");
        assert!(text.contains(r#""/statistics#len":"3""#), "{text}");
        assert!(text.contains(r#""/synchronized":true"#), "{text}");
        assert!(text.contains(r#""nodes":"all""#), "{text}");
    }
    // The version is checked before anything and on each node after its restart.
    let pre = json(&step(&plan, "preflight-version").action);
    assert!(
        pre.contains(r#""/version":"1.25.10""#) && pre.contains("/v1/meta"),
        "{pre}"
    );
    let post = json(&step(&plan, "verify-version@1.27.27/weaviate-2").action);
    assert!(post.contains(r#""/version":"1.27.27""#), "{post}");
    // The install step goes hop by hop, from each hop's starting version.
    let undo = step(&plan, "install@1.27.27/weaviate-3")
        .undo
        .clone()
        .unwrap();
    assert!(json(&undo).contains("weaviate:1.26.18"));
}

#[test]
fn below_1_23_13_every_minor_is_a_hop_and_writes_stop_until_the_restore() {
    let plan = check_and_plan(PROCEDURE, EXAMPLE, &versions("1.20.0", "1.24.26"));
    assert_eq!(plan.hops, ["1.21.9", "1.22.13", "1.23.16", "1.24.26"]);
    let keys = keys(&plan);
    assert_in_order(
        &keys,
        &[
            "writes-stop",
            "backup",
            "install@1.21.9/weaviate-1",
            "install@1.22.13/weaviate-1",
            "install@1.23.16/weaviate-3",
            // Weaviate refuses to restore over existing collections (audit W4).
            "detour-delete@1.23.16",
            "detour-restore@1.23.16",
            "detour-restore-done@1.23.16",
            "writes-resume@1.23.16",
            "hop-ready@1.24.26",
        ],
    );
    // Writes are down from the stop until the restore, in one window; not after it.
    let at = |k: &str| keys.iter().position(|x| x == k).unwrap();
    for s in &plan.steps[at("writes-stop")..=at("writes-resume@1.23.16")] {
        assert_eq!(s.downtime, Downtime::Writes, "{}", s.key);
    }
    assert!(plan.steps[at("hop-ready@1.24.26")..]
        .iter()
        .all(|s| s.downtime == Downtime::None));
    // Deleting the collections is the point of no return.
    let first = plan.first_irreversible().unwrap();
    assert_eq!(plan.steps[first].key, "detour-delete@1.23.16");
}

#[test]
fn the_raft_hop_stops_the_whole_cluster_and_keeps_a_way_back() {
    let plan = check_and_plan(PROCEDURE, EXAMPLE, &versions("1.22.4", "1.26.18"));
    assert_eq!(plan.hops, ["1.23.16", "1.24.26", "1.25.34", "1.26.18"]);
    let keys = keys(&plan);
    assert_in_order(
        &keys,
        &[
            "backup",
            "install@1.23.16/weaviate-2",
            "detour-delete@1.23.16",
            "detour-restore@1.23.16",
            "detour-restore-done@1.23.16",
            "install@1.24.26/weaviate-2",
            "raft-downtime@1.25.34",
            // Every node down before any starts on 1.25 (audit §5 step 3).
            "raft-stop@1.25.34/weaviate-1",
            "raft-stop@1.25.34/weaviate-3",
            "raft-install@1.25.34/weaviate-1",
            "raft-start@1.25.34/weaviate-3",
            "raft-ready@1.25.34",
            "raft-sync@1.25.34",
            "raft-version@1.25.34/weaviate-1",
            "raft-lb-ready@1.25.34/weaviate-3",
            "raft-backup@1.25.34",
            "raft-backup-done@1.25.34",
            "node-sync@1.26.18/weaviate-2",
            "hop-sync@1.26.18",
        ],
    );
    assert!(
        !keys.iter().any(|k| k.starts_with("raft-recreate")),
        "Docker target"
    );
    assert!(!keys.iter().any(|k| k.starts_with("node-sync@1.25")));
    assert!(!keys.iter().any(|k| k.starts_with("stop@1.25")));
    // The Raft hop is a full outage, marked.
    let at = |k: &str| keys.iter().position(|x| x == k).unwrap();
    for s in &plan.steps[at("raft-downtime@1.25.34")..=at("raft-lb-ready@1.25.34/weaviate-3")] {
        assert_eq!(s.downtime, Downtime::Full, "{}", s.key);
    }
    // Its documented way back: POST /v1/cluster/schema-v1 on each node before the old image.
    let undo = json(&step(&plan, "raft-version@1.25.34/weaviate-2").undo);
    assert!(
        undo.contains("weaviate-2.internal:8080/v1/cluster/schema-v1"),
        "{undo}"
    );
    assert!(undo.contains(r#""method":"POST""#), "{undo}");
    let restore = step(&plan, "detour-restore@1.23.16");
    assert!(matches!(
        restore.confirm,
        flightdeck::plan::Confirm::Phrase { .. }
    ));
}

#[test]
fn on_kubernetes_the_raft_hop_recreates_the_statefulset() {
    let mut target = flightdeck::target_load::load_target(std::path::Path::new(EXAMPLE)).unwrap();
    target.vars.insert("platform".into(), "kubernetes".into());
    let plan = check_and_plan_target(PROCEDURE, &target, &versions("1.24.26", "1.25.34"));
    let keys = keys(&plan);
    assert_in_order(
        &keys,
        &[
            "raft-downtime@1.25.34",
            "raft-recreate@1.25.34",
            "raft-ready@1.25.34",
            "raft-version@1.25.34/weaviate-1",
        ],
    );
    assert!(!keys.iter().any(|k| k.starts_with("raft-stop")));
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
    assert_eq!(plan.hops, ["1.26.18"]);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hops_rolling_under_load_keep_every_read() {
    let mut cfg = LabConfig::new(Product::Weaviate, 3, Timing::fast());
    // Factor 3: QUORUM (the default) keeps 2 of 3 replicas through each node's stop.
    cfg.replication_factor = Some(3);
    cfg.load_rps = 100;
    cfg.to_version = Some("1.27.27".into());
    let run = run_on_lab(PROCEDURE, cfg, yes_all()).await;
    assert!(run.end.ok, "{}\n{}", run.end.summary, run.output);
    assert_eq!(run.state.mode, Mode::Finished(Outcome::Completed));
    assert_eq!(run.state.plan.hops, ["1.26.18", "1.27.27"]);
    let snap = run.lab.snapshot().await;
    for n in &snap.nodes {
        assert_eq!(n.version, "1.27.27", "{} not upgraded", n.name);
        assert_eq!(n.state, RunState::Running, "{}", n.name);
        assert!(n.synchronized, "{} not synchronized", n.name);
        assert!(!n.read_only, "{}", n.name);
    }
    // The last node's `ready` is done; the balancer's own checks (rise 2) are sampled apart
    // from the session: poll for every backend serving.
    wait_for_lab(&run.lab, "every backend serving", |s| {
        s.backends.iter().all(|b| b.serving)
    })
    .await;
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
            "detour-delete@1.23.16",
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
    // The sync gate waits 300 s on a real cluster: shrink it further than the usual lab scale.
    let run = run_on_lab_scaled(PROCEDURE, cfg, yes_all_rollback(), 0.02).await;
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
    assert!(
        run.output.contains("node-sync@1.26.18/node1"),
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

/// The pre-flight reads the version each node runs: a cluster that is not on `from` (here one
/// node left on another patch) stops the run before anything is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_another_version_stops_the_preflight() {
    let lab = Lab::start(LabConfig::new(Product::Weaviate, 3, Timing::fast()))
        .await
        .unwrap();
    switch_node_version(&lab, 2, "1.25.9").await;
    let run = run_on_started_lab(PROCEDURE, lab, yes_all(), LAB_SCALE).await;
    assert!(!run.end.ok);
    assert!(run.output.contains("[2/"), "{}", run.output);
    assert!(
        run.output
            .contains(r#"/version is "1.25.9", expected "1.25.10""#),
        "{}",
        run.output
    );
    assert!(
        !run.lab.data_dir().join("backups").exists(),
        "no backup taken"
    );
    run.lab.shutdown().await;
}

/// With one copy of each object (replication factor 1) each node's stop in a rolling restart is a
/// partial outage: the pre-flight reads every collection's `replicationConfig.factor` in
/// `/v1/schema` and stops before anything changes. The lab's collection has a copy per node, so
/// a one-node lab has factor 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_without_replicas_stops_before_anything_changes() {
    let run = run_on_lab(
        PROCEDURE,
        LabConfig::new(Product::Weaviate, 1, Timing::fast()),
        yes_all(),
    )
    .await;
    assert!(!run.end.ok, "{}", run.output);
    assert!(
        run.output.contains("preflight-replication FAILED"),
        "{}",
        run.output
    );
    let snap = run.lab.snapshot().await;
    for n in &snap.nodes {
        assert_eq!(n.version, "1.25.10", "{n:?}");
        assert_eq!(n.state, RunState::Running, "{n:?}");
    }
    run.lab.shutdown().await;
}

/// Factor 2 on the lab, before and after the pre-flight's fix. Object reads default to QUORUM
/// (weaviate/weaviate v1.26.18 adapters/repos/db/index.go `defaultConsistency()`), which needs 2
/// of 2 replicas: the old pre-flight (`factor >= 2`) passes this cluster, and the procedure's first
/// stop then fails the reads of every shard with a replica on the stopped node. The new
/// pre-flight (`factor >= 3`) stops the run before anything changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factor_2_passes_the_old_preflight_then_loses_reads_and_the_new_one_refuses_it() {
    use flightdeck::engine::check::{http_client, run_http};
    use flightdeck::procedure::model::{Action, Check};

    let mut cfg = LabConfig::new(Product::Weaviate, 3, Timing::fast());
    cfg.replication_factor = Some(2);
    let run = run_on_lab(PROCEDURE, cfg, yes_all()).await;
    // The new pre-flight: refused before anything changed.
    assert!(!run.end.ok, "{}", run.output);
    assert!(
        run.output.contains("preflight-replication FAILED"),
        "{}",
        run.output
    );
    let snap = run.lab.snapshot().await;
    for n in &snap.nodes {
        assert_eq!(n.version, "1.25.10", "{n:?}");
        assert_eq!(n.state, RunState::Running, "{n:?}");
    }
    assert!(
        !run.lab.data_dir().join("backups").exists(),
        "no backup taken"
    );

    // The old pre-flight on the same cluster: the same check with the old bound passes.
    let lp = flightdeck::procedure::load::load_procedure(std::path::Path::new(PROCEDURE)).unwrap();
    let target = run.lab.target_for(&lp.procedure);
    let plan = check_and_plan_target(PROCEDURE, &target, &PlanOptions::default());
    let Action::Wait(w) = &step(&plan, "preflight-replication").action else {
        panic!("preflight-replication is not a gate");
    };
    let Some(Check::Http(new)) = w.check.clone() else {
        panic!("preflight-replication has no inline HTTP check");
    };
    assert_eq!(new.expect[0].value, Some(serde_json::json!(3)));
    let mut old = new.clone();
    old.expect[0].value = Some(serde_json::json!(2));
    let http = http_client();
    let r = run_http(&new, &http, &Default::default()).await;
    assert!(!r.ok, "the new bound refuses factor 2: {}", r.detail);
    let r = run_http(&old, &http, &Default::default()).await;
    assert!(r.ok, "the old bound let factor 2 through: {}", r.detail);

    // What the old run went on to do: its first stop (node1). Reads through the balancer at
    // the default level then fail on the shards node1 holds a replica of.
    let frontend = format!("http://{}", run.lab.lb_frontend());
    let keys: Vec<String> = (0..30).map(|i| format!("obj{i}")).collect();
    for k in &keys {
        let r = http
            .put(format!("{frontend}/kv/{k}"))
            .body(k.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let stop = http
        .post(format!("{}/_lab/nodes/node1/stop", run.lab.admin_url()))
        .send()
        .await
        .unwrap();
    assert!(stop.status().is_success(), "{}", stop.status());
    wait_for_lab(&run.lab, "node1 stopped and out of the balancer", |snap| {
        snap.node("node1")
            .is_some_and(|n| n.state == RunState::Stopped)
            && snap
                .backends
                .iter()
                .any(|b| b.server == "node1" && !b.serving)
    })
    .await;
    let mut failures = Vec::new();
    let mut served = 0;
    for k in &keys {
        let r = http.get(format!("{frontend}/kv/{k}")).send().await.unwrap();
        match r.status().as_u16() {
            200 => served += 1,
            status => failures.push((status, r.text().await.unwrap())),
        }
    }
    assert!(served > 0, "shard2 (node2, node3) still serves");
    assert!(
        !failures.is_empty(),
        "shard1 and shard3 have a replica on node1"
    );
    assert!(
        failures.iter().all(|f| f
            == &(
                500,
                "repo: object by id: search index labobject: cannot achieve consistency level \
                 \"QUORUM\": cannot reach enough replicas"
                    .to_string()
            )),
        "{failures:?}"
    );
    run.lab.shutdown().await;
}

/// Readiness is about the node itself: with another node down, the restarted node still answers
/// ready (the old `verify`), while its `/v1/nodes` lists the other one UNAVAILABLE and the
/// `nodes-healthy` gate holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_healthy_sees_a_node_down_that_readiness_does_not() {
    use flightdeck::engine::check::{http_client, run_http};
    use flightdeck::procedure::model::{Action, Check};

    let lab = Lab::start(LabConfig::new(Product::Weaviate, 3, Timing::fast()))
        .await
        .unwrap();
    let lp = flightdeck::procedure::load::load_procedure(std::path::Path::new(PROCEDURE)).unwrap();
    let target = lab.target_for(&lp.procedure);
    let plan = check_and_plan_target(PROCEDURE, &target, &PlanOptions::default());
    let step = plan
        .steps
        .iter()
        .find(|s| s.key.starts_with("nodes-healthy@"))
        .expect("a nodes-healthy gate after each restart");
    let Action::Wait(w) = &step.action else {
        panic!("{} is not a gate", step.key);
    };
    let Some(Check::Http(check)) = w.check.clone() else {
        panic!("{} has no inline HTTP check", step.key);
    };
    let http = http_client();
    let r = run_http(&check, &http, &Default::default()).await;
    assert!(r.ok, "every node up: {}", r.detail);

    // The node the gate is about, and another one, which goes down.
    let me = step.key.rsplit('/').next().unwrap_or_default().to_string();
    let me_node = target
        .nodes
        .iter()
        .find(|n| n.name == me)
        .expect("the gate's node");
    let other = target
        .nodes
        .iter()
        .find(|n| n.name != me)
        .map(|n| n.name.clone())
        .unwrap();
    let stop = http
        .post(format!("{}/_lab/nodes/{other}/stop", lab.admin_url()))
        .send()
        .await
        .unwrap();
    assert!(stop.status().is_success(), "{}", stop.status());
    wait_for_lab(&lab, "the other node stopped", |snap| {
        snap.node(&other)
            .is_some_and(|n| n.state == RunState::Stopped)
    })
    .await;

    let r = run_http(&check, &http, &Default::default()).await;
    assert!(!r.ok, "a node is down: {}", r.detail);
    let statuses = r
        .json
        .as_ref()
        .and_then(|j| j["nodes"].as_array().cloned())
        .unwrap_or_default();
    assert!(
        statuses
            .iter()
            .any(|n| n["name"] == other.as_str() && n["status"] == "UNAVAILABLE"),
        "{statuses:?}"
    );
    let ready = http
        .get(format!("http://{}/v1/.well-known/ready", me_node.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200, "readiness alone passes");
    lab.shutdown().await;
}
