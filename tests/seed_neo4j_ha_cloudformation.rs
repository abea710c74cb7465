//! neo4j-ha-cloudformation: the stack-parameter sequence checks and plans against the real
//! example target and the lab; a full run leaves every stack instance on the new version in HA
//! mode; a store upgrade that fails on the master rolls the parameters back to the old image.

mod common;
mod seed_util;

use std::path::Path;

use common::{run_on_lab, yes_all, yes_all_rollback};
use flightdeck::engine::event::{Event, Outcome};
use flightdeck::engine::state::Mode;
use flightdeck::lab::{
    Fault, Lab, LabConfig, LabSnapshot, NodeSnapshot, Product, RunState, Timing,
};
use flightdeck::plan::expand::{build_plan, PlanOptions};
use flightdeck::procedure::load::load_procedure;
use flightdeck::procedure::model::Action;
use flightdeck::target_load::load_target;
use seed_util::wait_for_lab;

const PROCEDURE: &str = "procedures/neo4j-ha-cloudformation.toml";
const EXAMPLE: &str = "procedures/targets/neo4j-ha-cloudformation.example.toml";

/// The stack's instances: the lab's blue group.
fn stack(snap: &LabSnapshot) -> Vec<&NodeSnapshot> {
    snap.nodes
        .iter()
        .filter(|n| n.group.as_deref() == Some("blue"))
        .collect()
}

#[tokio::test]
async fn checks_and_plans_on_the_example_and_the_lab() {
    let lp = load_procedure(Path::new(PROCEDURE)).unwrap();
    let example = load_target(Path::new(EXAMPLE)).unwrap_or_else(|d| panic!("{d}"));
    let diags = flightdeck::procedure::validate::validate(&lp, Some(&example));
    assert!(diags.is_empty(), "{diags}");
    let plan = build_plan(&lp, &example, &PlanOptions::default()).unwrap();
    // Each parameter update runs the AWS CLI with the whole set, and undoes to the previous set.
    let single = plan.steps.iter().find(|s| s.key == "single").unwrap();
    let (Some(Action::Run { argv, .. }), Some(Action::Run { argv: undo, .. })) =
        (Some(&single.action), single.undo.as_ref())
    else {
        panic!("update-stack is not a run action: {single:?}");
    };
    assert!(
        argv[2].contains("aws cloudformation update-stack"),
        "{argv:?}"
    );
    assert!(argv[2].contains("wait stack-update-complete"), "{argv:?}");
    assert_eq!(
        argv[4..10],
        [
            "neo4j-production",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/neo4j-ha:3.4.6",
            "SINGLE",
            "SINGLE",
            "True",
            "1"
        ]
    );
    assert_eq!(undo[6..11], ["HA", "HA", "False", "3", "3"]);
    let verify = plan
        .steps
        .iter()
        .position(|s| s.key == "single-verify")
        .unwrap();
    assert_eq!(plan.first_irreversible(), Some(verify));

    let lab = Lab::start(LabConfig::new(Product::Neo4j, 3, Timing::fast()))
        .await
        .unwrap();
    let diags = flightdeck::procedure::validate::validate(&lp, Some(lab.target()));
    assert!(diags.is_empty(), "{diags}");
    let plan = build_plan(&lp, lab.target(), &PlanOptions::default()).unwrap();
    assert_eq!(plan.steps.len(), 16);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_run_leaves_every_instance_upgraded_in_ha_mode() {
    let mut cfg = LabConfig::new(Product::Neo4j, 3, Timing::fast());
    cfg.load_rps = 50;
    let run = run_on_lab(PROCEDURE, cfg, yes_all()).await;
    assert!(run.end.ok, "{}\n{}", run.end.summary, run.output);
    assert_eq!(run.state.mode, Mode::Finished(Outcome::Completed));
    let snap = run.lab.snapshot().await;
    let instances = stack(&snap);
    assert_eq!(instances.len(), 3);
    for n in &instances {
        assert_eq!(n.version, "3.3.5", "{n:?}");
        assert_eq!(n.state, RunState::Running, "{n:?}");
        assert_eq!(n.mode, "HA", "{n:?}");
        assert_eq!(n.store_format, 3003, "{n:?}");
        assert!(!n.allow_upgrade, "{n:?}");
        assert!(!n.read_only, "{n:?}");
        // Slaves on fresh volumes caught up with the master's data.
        assert!(n.keys >= 1, "{n:?}");
    }
    assert!(snap
        .backends
        .iter()
        .filter(|b| instances.iter().any(|n| n.name == b.server))
        .all(|b| b.serving));
    // The stack's final parameters and the renamed slave volumes.
    let stack: serde_json::Value = flightdeck::lab::http_client()
        .unwrap()
        .get(format!("{}/_lab/stack", run.lab.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stack["mode"], "HA");
    assert_eq!(stack["slave_mode"], "HA");
    assert_eq!(stack["desired_capacity"], 3);
    assert_eq!(stack["docker_image"], "neo4j-ha:3.3.5");
    let finished = run
        .journal
        .events
        .iter()
        .filter(|e| matches!(e.event, Event::ActionFinished { .. }))
        .count();
    assert_eq!(finished, run.state.plan.steps.len());
    run.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_store_upgrade_on_the_master_rolls_back_to_the_old_image() {
    let mut cfg = LabConfig::new(Product::Neo4j, 3, Timing::fast());
    cfg.faults = vec!["fail-migration:node1".parse::<Fault>().unwrap()];
    let run = run_on_lab(PROCEDURE, cfg, yes_all_rollback()).await;
    assert!(!run.end.ok);
    assert_eq!(
        run.state.mode,
        Mode::Finished(Outcome::RolledBack),
        "{}",
        run.output
    );
    assert!(
        run.output.contains("single-verify FAILED"),
        "{}",
        run.output
    );
    wait_for_lab(&run.lab, "back", |snap| {
        let back = stack(snap).iter().all(|n| {
            n.version == "3.2.14"
                && n.state == RunState::Running
                && n.store_format == 3002
                && !n.read_only
                && n.mode == "HA"
        });
        let serving = snap
            .backends
            .iter()
            .filter(|b| stack(snap).iter().any(|n| n.name == b.server))
            .all(|b| b.serving);
        back && serving
    })
    .await;
    // The old cluster takes writes through the balancer again.
    let status = flightdeck::lab::http_client()
        .unwrap()
        .put(format!(
            "http://{}/kv/after-rollback",
            run.lab.lb_frontend()
        ))
        .body("ok")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
    run.lab.shutdown().await;
}

async fn post(url: String, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = flightdeck::lab::http_client()
        .unwrap()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn the_lab_stack_scales_and_slaves_refuse_their_old_volumes() {
    let lab = Lab::start(LabConfig::new(Product::Neo4j, 3, Timing::fast()))
        .await
        .unwrap();
    let stack_url = format!("{}/_lab/stack", lab.admin_url());
    let retag_url = format!("{}/_lab/retag-volumes", lab.admin_url());
    let node = |snap: &LabSnapshot, name: &str| snap.node(name).unwrap().clone();

    // Bad parameters are refused before anything changes.
    let (status, _) = post(stack_url.clone(), serde_json::json!({"Mode": "CLUSTER"})).await;
    assert_eq!(status, 400);
    let (status, _) = post(
        stack_url.clone(),
        serde_json::json!({"DesiredCapacity": "4", "MaxSize": "4"}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = post(
        stack_url.clone(),
        serde_json::json!({"DockerImage": "neo4j:latest"}),
    )
    .await;
    assert_eq!(status, 400);

    // The master alone, upgrading its store; the slaves are scaled in.
    let single = serde_json::json!({"DockerImage": "neo4j-ha:3.3.5", "Mode": "SINGLE",
        "SlaveMode": "SINGLE", "AllowUpgrade": "True", "MaxSize": "1", "DesiredCapacity": "1"});
    let (status, answer) = post(stack_url.clone(), single).await;
    assert_eq!(status, 200, "{answer}");
    let snap = lab.snapshot().await;
    let master = node(&snap, "node1");
    assert_eq!(
        (master.state, master.store_format, master.mode.as_str()),
        (RunState::Running, 3003, "SINGLE")
    );
    assert_eq!(node(&snap, "node2").state, RunState::Stopped);
    // Untouched parameters keep their value (UsePreviousValue).
    let (status, answer) = post(
        stack_url.clone(),
        serde_json::json!({"Mode": "HA", "AllowUpgrade": "False"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stack"]["slave_mode"], "SINGLE");
    assert_eq!(answer["stack"]["docker_image"], "neo4j-ha:3.3.5");

    // Scaled out on their old volumes, the slaves refuse the old store.
    let (_, answer) = post(
        stack_url.clone(),
        serde_json::json!({"MaxSize": "3", "DesiredCapacity": "3"}),
    )
    .await;
    let snap = lab.snapshot().await;
    let refused = node(&snap, "node2");
    assert_eq!(refused.state, RunState::Failed, "{answer}");
    assert!(refused.reason.unwrap_or_default().contains("allow_upgrade"));

    // Back to the master alone, slave volumes renamed: fresh volumes, caught up, read-only.
    let (status, _) = post(
        stack_url.clone(),
        serde_json::json!({"MaxSize": "1", "DesiredCapacity": "1"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, answer) = post(
        retag_url.clone(),
        serde_json::json!({"from": "neo4j-data", "to": "neo4j-data-old"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["renamed"], serde_json::json!(["node2", "node3"]));
    let (status, _) = post(
        retag_url,
        serde_json::json!({"from": "neo4j-data", "to": "neo4j-data-old"}),
    )
    .await;
    assert_eq!(status, 404, "the master's attached volume keeps its name");
    let (status, answer) = post(
        stack_url,
        serde_json::json!({"MaxSize": "3", "DesiredCapacity": "3"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let snap = lab.snapshot().await;
    for name in ["node2", "node3"] {
        let slave = node(&snap, name);
        assert_eq!(slave.state, RunState::Running, "{slave:?}");
        assert_eq!(slave.store_format, 3003, "{slave:?}");
        assert!(slave.read_only, "{slave:?}");
        assert_eq!(slave.keys, node(&snap, "node1").keys, "{slave:?}");
    }
    lab.shutdown().await;
}
