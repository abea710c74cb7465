//! procedures/jahia-rolling.toml: checks and plans against the example and the lab targets; a
//! full run under load on a 3-node Jahia lab (zero failed reads, every node on the new version
//! on schema B, writable, marker consumed, all in the balancer); a failed migration of the
//! processing node rolls the cluster back to the old version on schema A.

mod common;
mod seed_util;

use common::{run_on_lab, run_on_started_lab_with, yes_all, yes_all_rollback, LAB_SCALE};
use flightdeck::engine::event::Outcome;
use flightdeck::engine::state::Mode;
use flightdeck::lab::{Fault, Lab, LabConfig, Product, Timing};
use flightdeck::plan::expand::PlanOptions;
use seed_util::*;

const PROCEDURE: &str = "procedures/jahia-rolling.toml";
const EXAMPLE: &str = "procedures/targets/jahia-rolling.example.toml";

#[test]
fn checks_and_plans_against_the_example_target() {
    let plan = check_and_plan(PROCEDURE, EXAMPLE, &PlanOptions::default());
    assert_eq!(plan.from_version.as_deref(), Some("8.1.8.0"));
    assert_eq!(plan.to_version.as_deref(), Some("8.2.0.0"));
    let keys = keys(&plan);
    assert_eq!(
        &keys[..9],
        [
            "preflight",
            "preflight-version@jahia1",
            "preflight-version@jahia2",
            "preflight-version@jahia3",
            "read-only@jahia1",
            "read-only-gate",
            // One database dump, then each node's data folder.
            "backup-db",
            "backup@jahia1",
            "backup@jahia2",
        ]
    );
    // The point of no return (the processing node back in the balancer) is in the runbook.
    let ready = plan.steps.iter().find(|s| s.key == "ready@jahia1").unwrap();
    assert!(
        ready.runbook.contains("point of no return"),
        "{}",
        ready.runbook
    );
    // The processing node goes first, then the others in target order.
    assert_in_order(
        &keys,
        &[
            "copy-schema",
            "drain@jahia1",
            "drained@jahia1",
            "stop@jahia1",
            "set-schema@jahia1",
            "migrate@jahia1",
            "marker@jahia1",
            "start@jahia1",
            "verify@jahia1",
            "version@jahia1",
            "ready@jahia1",
            "drain@jahia2",
            "ready@jahia2",
            "drain@jahia3",
            "ready@jahia3",
            "final",
        ],
    );
    let step = plan
        .steps
        .iter()
        .find(|s| s.key == "set-schema@jahia2")
        .unwrap();
    let text = serde_json::to_string(&step.action).unwrap();
    assert!(text.contains("jahia_b"), "{text}");
    // Secrets stay unresolved in the plan.
    let ro = serde_json::to_string(&plan.steps[4].action).unwrap();
    assert!(ro.contains("${secret.tools_auth}"), "{ro}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_and_plans_against_the_lab_target() {
    let lab = Lab::start(LabConfig::new(Product::Jahia, 3, Timing::fast()))
        .await
        .unwrap();
    let plan = check_and_plan_target(PROCEDURE, lab.target(), &PlanOptions::default());
    assert_eq!(plan.from_version.as_deref(), Some("8.1.8.0"));
    let keys = keys(&plan);
    assert_in_order(
        &keys,
        &[
            "read-only@node1",
            "copy-schema",
            "drain@node1",
            "ready@node1",
            "drain@node2",
        ],
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_upgrade_under_load_keeps_every_read() {
    let mut cfg = LabConfig::new(Product::Jahia, 3, Timing::fast());
    cfg.load_rps = 100;
    let run = run_on_lab(PROCEDURE, cfg, yes_all()).await;
    assert!(run.end.ok, "{}\n{}", run.end.summary, run.output);
    assert_eq!(run.state.mode, Mode::Finished(Outcome::Completed));
    let snap = run.lab.snapshot().await;
    for n in &snap.nodes {
        assert_eq!(n.version, "8.2.0.0", "{} not upgraded", n.name);
        assert_eq!(n.schema.as_deref(), Some("B"), "{} not on schema B", n.name);
        assert!(!n.read_only, "{} still read-only", n.name);
        assert!(!n.marker, "{}: marker not consumed", n.name);
        assert_eq!(n.store_format, 8002, "{}", n.name);
        assert_eq!(n.state, flightdeck::lab::RunState::Running, "{}", n.name);
    }
    // The last node's `ready` is done; the balancer's own checks (rise 2) are sampled apart
    // from the session: poll for every backend serving.
    wait_for_lab(&run.lab, "every backend serving", |s| {
        s.backends.iter().all(|b| b.serving)
    })
    .await;
    for n in ["node1", "node2", "node3"] {
        let backup = run
            .lab
            .data_dir()
            .join("backups")
            .join(format!("pre-upgrade-{n}.json"));
        assert!(backup.exists(), "{} missing", backup.display());
    }
    // Schema A is left as it was, at the old format: the way back.
    assert!(run.lab.data_dir().join("schemas/A/store.json").exists());
    let traffic = run.lab.traffic().await;
    assert!(traffic.ok_reads > 0, "the load generator sent nothing");
    assert_eq!(traffic.failed_reads, 0, "{traffic:?}");
    // The `drained` gate let every user pinned to a node finish before it stopped: nobody was
    // logged out (Jahia keeps HTTP sessions in the node's memory).
    assert_eq!(traffic.lost_sessions, 0, "{traffic:?}");
    assert_every_step_journaled(&run);
    run.lab.shutdown().await;
}

/// The seed's old procedure stopped each node right after taking it out of the balancer
/// (audit, Jahia step 4: "no wait for sessions to drain"). Jahia keeps a user's HTTP session
/// in the memory of the node serving it, and the balancer keeps the user there while the node
/// drains: stopped at once, the node logs its users out (Jahia Store, "Distributed Sessions":
/// "When the server is shut down, all this session data disappears and the user will have to
/// login again"). The same run without the `drained` gate loses sessions on the lab; the
/// procedure (above) loses none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_drain_wait_the_stops_log_users_out() {
    let text = std::fs::read_to_string(PROCEDURE).unwrap();
    let start = text
        .find("[[steps]]\nid = \"drained\"")
        .expect("the drained step");
    let end = start
        + 1
        + text[start + 1..]
            .find("[[steps]]")
            .expect("a step after drained");
    let old = format!("{}{}", &text[..start], &text[end..]);
    assert!(!old.contains("probe = \"drained\""));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jahia-rolling-without-drain-wait.toml");
    std::fs::write(&path, old).unwrap();
    let mut cfg = LabConfig::new(Product::Jahia, 3, Timing::fast());
    cfg.load_rps = 100;
    let run = run_on_lab(path.to_str().unwrap(), cfg, yes_all()).await;
    // Every step passes: nothing in the procedure sees the users it logged out.
    assert!(run.end.ok, "{}\n{}", run.end.summary, run.output);
    let traffic = run.lab.traffic().await;
    assert!(traffic.ok_reads > 0, "the load generator sent nothing");
    assert!(
        traffic.lost_sessions > 0,
        "three nodes stopped with users on them, no session lost: {traffic:?}"
    );
    run.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_migration_of_the_processing_node_rolls_back_to_schema_a() {
    let mut cfg = LabConfig::new(Product::Jahia, 3, Timing::fast());
    cfg.load_rps = 100;
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
    assert!(
        run.output.contains("verify@node1") || run.output.contains("node1"),
        "{}",
        run.output
    );
    // The gate ends as soon as the product reports the node failed, with the product's own
    // reason (the lab's Jahia: the store migration's message), not a bare health status.
    assert!(
        run.output.contains("node1 is failed — the product says: "),
        "the gate names its failure: {}",
        run.output
    );
    wait_for_lab(
        &run.lab,
        "the cluster back on 8.1.8.0, schema A, writable",
        |snap| {
            snap.nodes.iter().all(|n| {
                n.version == "8.1.8.0"
                    && n.schema.as_deref() == Some("A")
                    && !n.read_only
                    && n.state == flightdeck::lab::RunState::Running
            }) && snap.backends.iter().all(|b| b.serving)
        },
    )
    .await;
    let traffic = run.lab.traffic().await;
    assert_eq!(traffic.failed_reads, 0, "{traffic:?}");
    run.lab.shutdown().await;
}

/// Audit J3 on the whole run: the seed's `install` carried only ROOT.xml into the new release
/// (the lab's schema pointer is `set-schema`, a step of its own), so every upgraded node starts
/// on the settings Jahia ships (`cluster.activated = false`, `processingServer = true`: Jahia/jahia
/// 8.2.0.0 `org/jahia/defaults/config/properties/jahia.node.properties`). Each one is healthy,
/// writable and on 8.2.0.0 — every check the seed made passes — but runs alone, and
/// `final-members` fails with the Karaf shell's own answer: no Cellar, no `cluster:node-list`.
/// The procedure's lab target carries the configuration over, and the same run completes
/// (`rolling_upgrade_under_load_keeps_every_read`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_only_root_xml_carried_over_the_upgraded_nodes_run_alone_and_final_members_fails() {
    use flightdeck::procedure::model::Action;
    use flightdeck::target_overrides::StepOverride;
    let lab = Lab::start(LabConfig::new(Product::Jahia, 3, Timing::fast()))
        .await
        .unwrap();
    let run = run_on_started_lab_with(PROCEDURE, lab, yes_all(), LAB_SCALE, |target| {
        let Some(Action::Http(install)) = target.actions.get_mut("install") else {
            panic!("the lab target binds install over HTTP");
        };
        assert!(install
            .body
            .as_deref()
            .unwrap_or("")
            .contains("carry_config"));
        // The old binding: the release unpacked, its configuration not carried over.
        install.body = Some(r#"{"version":"${arg.version}"}"#.into());
        // The gate fails, as it would after 300 s; no need to wait that long here.
        target.overrides.steps.insert(
            "final-members".into(),
            StepOverride {
                timeout_secs: Some(3),
                ..StepOverride::default()
            },
        );
    })
    .await;
    assert!(!run.end.ok, "{}\n{}", run.end.summary, run.output);
    assert!(
        run.output.contains("final-members"),
        "fails at the membership check: {}",
        run.output
    );
    assert!(
        run.output.contains("Command not found: cluster:node-list"),
        "the Karaf shell's own answer: {}",
        run.output
    );
    let snap = run.lab.snapshot().await;
    for n in &snap.nodes {
        // The old checks pass on every node...
        assert_eq!(n.version, "8.2.0.0", "{}", n.name);
        assert_eq!(n.state, flightdeck::lab::RunState::Running, "{}", n.name);
        assert!(!n.read_only, "{}", n.name);
        // ...and each one is a processing server of its own.
        assert_eq!(n.role, "processing", "{}", n.name);
    }
    run.lab.shutdown().await;
}
