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
    // A rollback is verified once through the ELB (no node selection: one check), beside the
    // per-instance version and health; every Neo4j request carries the target's credentials.
    let elb = plan
        .rollback
        .verify
        .iter()
        .find(|v| v.what == "serving through the load balancer")
        .expect("an ELB check in the rollback's verification");
    assert!(elb.nodes.is_none(), "{elb:?}");
    let elb_check = serde_json::to_string(&elb.check).unwrap();
    assert!(
        elb_check
            .contains("http://neo4j-production-elb.internal:7474/db/manage/server/ha/available"),
        "{elb_check}"
    );
    assert!(
        elb_check.contains("Basic ${secret.neo4j_basic_auth}"),
        "{elb_check}"
    );
    for step in &plan.steps {
        let text = serde_json::to_string(&step.action).unwrap();
        if text.contains("/db/") {
            assert!(
                text.contains("Basic ${secret.neo4j_basic_auth}"),
                "{} sends no credentials: {text}",
                step.key
            );
        }
    }
    // Each stack update passes only the keys the guide's step changes; the script keeps every
    // other live key (UsePreviousValue) and takes "No updates" as success.
    let (argv, undo) = update_stack_argv(&plan, "single");
    assert!(
        argv[2].contains("aws cloudformation update-stack"),
        "{argv:?}"
    );
    assert!(argv[2].contains("UsePreviousValue=true"), "{argv:?}");
    assert!(
        argv[2].contains("No updates are to be performed"),
        "{argv:?}"
    );
    assert!(argv[2].contains("CAPABILITY_NAMED_IAM"), "{argv:?}");
    assert!(argv[2].contains("wait stack-update-complete"), "{argv:?}");
    assert_eq!(
        argv[4..],
        [
            "neo4j-production",
            "Mode=SINGLE SlaveMode=SINGLE AllowUpgrade=True MaxSize=1 DesiredCapacity=1"
        ]
    );
    assert_eq!(
        undo[5],
        "Mode=HA SlaveMode=HA AllowUpgrade=False MaxSize=3 DesiredCapacity=3"
    );
    let (argv, _) = update_stack_argv(&plan, "image");
    assert_eq!(
        argv[5],
        "DockerImage=123456789012.dkr.ecr.eu-west-1.amazonaws.com/neo4j-ha:3.4.6"
    );
    // The volumes are recorded and snapshotted before the store upgrade; the point of no
    // return is the master serving on its upgraded store.
    let keys = seed_util::keys(&plan);
    seed_util::assert_in_order(
        &keys,
        &[
            "preflight-version",
            "image",
            "record-volumes",
            "snapshot",
            "single",
            "single-verify",
            "retag-volumes",
            "scale-out",
            "final-version",
        ],
    );
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
    assert_eq!(plan.steps.len(), 20);
    // The store-upgrade gate is sized for a real store (4 h); the lab's target for this
    // procedure shrinks it with its own [overrides.single-verify], shown in the plan.
    assert_eq!(gate_timeout(&plan, "single-verify"), (14400, vec![]));
    let target = lab.target_for(&lp.procedure);
    let diags = flightdeck::procedure::validate::validate(&lp, Some(&target));
    assert!(diags.is_empty(), "{diags}");
    let plan = build_plan(&lp, &target, &PlanOptions::default()).unwrap();
    let (timeout, overrides) = gate_timeout(&plan, "single-verify");
    assert_eq!(timeout, 120);
    assert_eq!(overrides.len(), 1, "{overrides:?}");
    assert!(overrides[0].contains("120"), "{overrides:?}");
    let rendered = flightdeck::plan::render::render_plan(&plan, &target);
    assert!(rendered.contains(&overrides[0]), "{rendered}");
    lab.shutdown().await;
}

/// A gate step's timeout and what the target's overrides changed in it.
fn gate_timeout(plan: &flightdeck::plan::Plan, key: &str) -> (u64, Vec<String>) {
    let step = plan.steps.iter().find(|s| s.key == key).unwrap();
    match &step.action {
        Action::Wait(w) => (w.timeout_secs, step.overrides.clone()),
        other => panic!("{key} is not a gate: {other:?}"),
    }
}

/// The expanded `run` argv of a stack-update step and of its undo.
fn update_stack_argv(plan: &flightdeck::plan::Plan, key: &str) -> (Vec<String>, Vec<String>) {
    let step = plan.steps.iter().find(|s| s.key == key).unwrap();
    match (&step.action, step.undo.as_ref()) {
        (Action::Run { argv, .. }, Some(Action::Run { argv: undo, .. })) => {
            (argv.clone(), undo.clone())
        }
        _ => panic!("update-stack is not a run action: {step:?}"),
    }
}

/// A stand-in `aws` on PATH that logs its arguments and answers like the CLI: the stack's keys
/// for `describe-stacks --query 'Stacks[0].Parameters[].ParameterKey' --output text` (one line,
/// tab-separated), and for `update-stack` what `$AWS_UPDATE` says: nothing (accepted), `noop`
/// (the CLI's "No updates are to be performed" ValidationError, exit 254 as the AWS CLI v2 exits
/// on a service error) or `fail` (another ValidationError).
const FAKE_AWS: &str = r#"#!/bin/sh
echo "$*" >> "$AWS_LOG"
case "$1 $2" in
  "cloudformation describe-stacks")
    printf 'DockerImage\tMode\tSlaveMode\tAllowUpgrade\tMaxSize\tDesiredCapacity\tInstanceType\n' ;;
  "cloudformation update-stack")
    case "$AWS_UPDATE" in
      noop) echo "An error occurred (ValidationError) when calling the UpdateStack operation: No updates are to be performed." >&2; exit 254 ;;
      fail) echo "An error occurred (ValidationError) when calling the UpdateStack operation: Stack:arn:aws:cloudformation:eu-west-1:123456789012:stack/neo4j-production/x is in UPDATE_IN_PROGRESS state and can not be updated." >&2; exit 254 ;;
    esac ;;
  "cloudformation wait") ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
"#;

/// Runs the example target's `update-stack` script (as the plan expanded it, with `changes` in
/// place of the step's keys) with the stand-in `aws`; its exit code and the `aws` calls made.
fn run_real_update_stack(argv: &[String], changes: &str, update: &str) -> (i32, String, String) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let aws = dir.path().join("aws");
    std::fs::write(&aws, FAKE_AWS).unwrap();
    std::fs::set_permissions(&aws, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.path().join("aws.log");
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new(&argv[0])
        .args(&argv[1..5])
        .arg(changes)
        .env("PATH", path)
        .env("AWS_LOG", &log)
        .env("AWS_UPDATE", update)
        .output()
        .unwrap();
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    (
        out.status.code().unwrap_or(-1),
        calls,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_real_update_stack_keeps_every_other_key_and_takes_no_updates_as_success() {
    let plan = seed_util::check_and_plan(PROCEDURE, EXAMPLE, &PlanOptions::default());
    let (argv, _) = update_stack_argv(&plan, "ha-master");
    assert_eq!(argv[5], "Mode=HA AllowUpgrade=False");

    let (code, calls, err) = run_real_update_stack(&argv, &argv[5], "");
    assert_eq!(code, 0, "{err}\n{calls}");
    let update = calls
        .lines()
        .find(|l| l.starts_with("cloudformation update-stack"))
        .unwrap_or_else(|| panic!("no update-stack call: {calls}"));
    // The step's keys with their values; every other key of the live stack kept.
    for p in [
        "ParameterKey=Mode,ParameterValue=HA",
        "ParameterKey=AllowUpgrade,ParameterValue=False",
        "ParameterKey=DockerImage,UsePreviousValue=true",
        "ParameterKey=SlaveMode,UsePreviousValue=true",
        "ParameterKey=MaxSize,UsePreviousValue=true",
        "ParameterKey=DesiredCapacity,UsePreviousValue=true",
        "ParameterKey=InstanceType,UsePreviousValue=true",
    ] {
        assert!(update.contains(p), "{p} missing: {update}");
    }
    assert!(update.contains("--use-previous-template"), "{update}");
    assert!(update.contains("CAPABILITY_NAMED_IAM"), "{update}");
    assert!(
        calls.contains("cloudformation wait stack-update-complete --stack-name neo4j-production"),
        "{calls}"
    );

    // A retry or an undo that changes nothing: success, and nothing to wait for.
    let (code, calls, err) = run_real_update_stack(&argv, &argv[5], "noop");
    assert_eq!(code, 0, "{err}\n{calls}");
    assert!(!calls.contains("wait stack-update-complete"), "{calls}");

    // Any other refusal fails the step with CloudFormation's own message.
    let (code, _, err) = run_real_update_stack(&argv, &argv[5], "fail");
    assert_ne!(code, 0);
    assert!(err.contains("UPDATE_IN_PROGRESS"), "{err}");

    // A key the stack does not have stops before any update.
    let (code, calls, err) = run_real_update_stack(&argv, "Mdoe=HA", "");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("parameter Mdoe is not in stack neo4j-production"),
        "{err}"
    );
    assert!(!calls.contains("update-stack"), "{calls}");
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
    // The balancer's own checks (rise 2) are sampled apart from the session: polled.
    wait_for_lab(&run.lab, "every instance's backend serving", |s| {
        s.backends
            .iter()
            .filter(|b| instances.iter().any(|n| n.name == b.server))
            .all(|b| b.serving)
    })
    .await;
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
    // The rollback verified itself: every node back on the old version, healthy, serving.
    assert!(
        flightdeck::engine::outcome::rollback_verified(&run.state),
        "{}\n{}",
        run.end.summary,
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

/// What the lab's careful wrapper (the procedure's `update-stack` on the lab) is sent.
async fn changes(lab: &Lab, changes: &str) -> (u16, serde_json::Value) {
    post(
        format!("{}/_lab/stack/changes", lab.admin_url()),
        serde_json::json!({ "changes": changes }),
    )
    .await
}

async fn stack_params(lab: &Lab) -> serde_json::Value {
    flightdeck::lab::http_client()
        .unwrap()
        .get(format!("{}/_lab/stack", lab.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// CloudFormation's parameter rules (AWS CloudFormation API reference, `Parameter`: "If you
/// don't specify a key and value for a particular parameter, CloudFormation uses the default
/// value that's specified in your template"; `UsePreviousValue` keeps the live value): the old
/// procedure's update, which listed six keys with hard-coded values and not the others, resets
/// the unlisted `InstanceType` to the template's default; an update that leaves out a key
/// without a default fails with CloudFormation's `must have values`; one that changes nothing
/// fails with "No updates are to be performed", which the wrapper takes as success.
#[tokio::test]
async fn cloudformation_resets_what_an_update_does_not_list() {
    let lab = Lab::start(LabConfig::new(Product::Neo4j, 3, Timing::fast()))
        .await
        .unwrap();
    let stack_url = format!("{}/_lab/stack", lab.admin_url());
    assert_eq!(stack_params(&lab).await["instance_type"], "r5.xlarge");

    // The wrapper passes UsePreviousValue for every key the step does not change.
    let (status, answer) = changes(&lab, "DockerImage=neo4j-ha:3.2.14").await;
    assert_eq!(status, 200, "{answer}");
    let st = stack_params(&lab).await;
    assert_eq!(st["instance_type"], "r5.xlarge", "{st}");
    assert_eq!(st["docker_image"], "neo4j-ha:3.2.14", "{st}");

    // The same change again (a retry, an undo that changes nothing): CloudFormation refuses
    // it; the wrapper takes it as success.
    let same = serde_json::json!({"Parameters": [
        {"ParameterKey": "DockerImage", "ParameterValue": "neo4j-ha:3.2.14"},
        {"ParameterKey": "Mode", "UsePreviousValue": true},
        {"ParameterKey": "SlaveMode", "UsePreviousValue": true},
        {"ParameterKey": "AllowUpgrade", "UsePreviousValue": true},
        {"ParameterKey": "MaxSize", "UsePreviousValue": true},
        {"ParameterKey": "DesiredCapacity", "UsePreviousValue": true},
        {"ParameterKey": "InstanceType", "UsePreviousValue": true},
    ]});
    let (status, answer) = post(stack_url.clone(), same).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["error"],
        "An error occurred (ValidationError) when calling the UpdateStack operation: No updates \
         are to be performed."
    );
    let (status, answer) = changes(&lab, "DockerImage=neo4j-ha:3.2.14").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "NO_UPDATES", "{answer}");

    // An update that lists only the keys it changes, without UsePreviousValue for the others:
    // the image has no default in the template, so CloudFormation refuses the whole update.
    let partial = serde_json::json!({"Parameters": [
        {"ParameterKey": "Mode", "ParameterValue": "SINGLE"},
        {"ParameterKey": "AllowUpgrade", "ParameterValue": "True"},
    ]});
    let (status, answer) = post(stack_url.clone(), partial).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .ends_with("Parameters: [DockerImage] must have values"),
        "{answer}"
    );
    assert_eq!(stack_params(&lab).await["mode"], "HA");

    // The old `image` step: the whole hard-coded set of six keys, InstanceType not listed. It
    // goes through, and the live InstanceType silently goes back to the template's default.
    let old_image_step = serde_json::json!({"Parameters": [
        {"ParameterKey": "DockerImage", "ParameterValue": "neo4j-ha:3.3.5"},
        {"ParameterKey": "Mode", "ParameterValue": "HA"},
        {"ParameterKey": "SlaveMode", "ParameterValue": "HA"},
        {"ParameterKey": "AllowUpgrade", "ParameterValue": "False"},
        {"ParameterKey": "MaxSize", "ParameterValue": "3"},
        {"ParameterKey": "DesiredCapacity", "ParameterValue": "3"},
    ]});
    let (status, answer) = post(stack_url.clone(), old_image_step).await;
    assert_eq!(status, 200, "{answer}");
    let st = stack_params(&lab).await;
    assert_eq!(
        st["instance_type"], "t2.medium",
        "reset to the default: {st}"
    );
    assert_eq!(st["docker_image"], "neo4j-ha:3.3.5", "{st}");

    // A key the template does not have fails the update.
    let unknown = serde_json::json!({"Parameters": [
        {"ParameterKey": "Enviroment", "ParameterValue": "prod"},
    ]});
    let (status, answer) = post(stack_url, unknown).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("Parameters: [Enviroment] do not exist in the template"),
        "{answer}"
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn the_lab_stack_scales_and_slaves_refuse_their_old_volumes() {
    let lab = Lab::start(LabConfig::new(Product::Neo4j, 3, Timing::fast()))
        .await
        .unwrap();
    let record_url = format!("{}/_lab/record-volumes", lab.admin_url());
    let retag_url = format!("{}/_lab/retag-volumes", lab.admin_url());
    let node = |snap: &LabSnapshot, name: &str| snap.node(name).unwrap().clone();
    let to_old = serde_json::json!({"from": "neo4j-data", "to": "neo4j-data-old"});

    // Bad parameters are refused before anything changes.
    for bad in [
        "Mode=CLUSTER",
        "DesiredCapacity=4 MaxSize=4",
        "DockerImage=neo4j:latest",
        "Mode",
    ] {
        let (status, answer) = changes(&lab, bad).await;
        assert_eq!(status, 400, "{bad}: {answer}");
    }
    // Nothing recorded yet: no retag.
    let (status, answer) = post(retag_url.clone(), to_old.clone()).await;
    assert_eq!(status, 409, "{answer}");
    let (status, answer) = post(record_url, serde_json::json!({"volume": "neo4j-data"})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["recorded"],
        serde_json::json!(["vol-node1", "vol-node2", "vol-node3"])
    );

    // The master alone, upgrading its store; the slaves are scaled in.
    let (status, answer) = changes(
        &lab,
        "DockerImage=neo4j-ha:3.3.5 Mode=SINGLE SlaveMode=SINGLE AllowUpgrade=True MaxSize=1 DesiredCapacity=1",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let snap = lab.snapshot().await;
    let master = node(&snap, "node1");
    assert_eq!(
        (master.state, master.store_format, master.mode.as_str()),
        (RunState::Running, 3003, "SINGLE")
    );
    assert_eq!(node(&snap, "node2").state, RunState::Stopped);
    // Untouched parameters keep their value (UsePreviousValue).
    let (status, answer) = changes(&lab, "Mode=HA AllowUpgrade=False").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stack"]["slave_mode"], "SINGLE");
    assert_eq!(answer["stack"]["docker_image"], "neo4j-ha:3.3.5");

    // Scaled out on their old volumes, the slaves refuse the old store.
    let (_, answer) = changes(&lab, "MaxSize=3 DesiredCapacity=3").await;
    let snap = lab.snapshot().await;
    let refused = node(&snap, "node2");
    assert_eq!(refused.state, RunState::Failed, "{answer}");
    assert!(refused.reason.unwrap_or_default().contains("allow_upgrade"));

    // node2 stays in service, its volume attached (as the slave-only instance's is during the
    // real retag): the retag by the recorded IDs renames it too (a `status=available` filter
    // would skip it), never the master's.
    let (status, _) = changes(&lab, "MaxSize=2 DesiredCapacity=2").await;
    assert_eq!(status, 200);
    let (status, answer) = post(retag_url.clone(), to_old.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["renamed"], serde_json::json!(["node2", "node3"]));
    let (status, _) = post(retag_url, to_old).await;
    assert_eq!(status, 404, "the master's volume keeps its name");
    let (status, _) = changes(&lab, "MaxSize=1 DesiredCapacity=1").await;
    assert_eq!(status, 200);
    let (status, answer) = changes(&lab, "MaxSize=3 DesiredCapacity=3").await;
    assert_eq!(status, 200, "{answer}");
    let snap = lab.snapshot().await;
    for name in ["node2", "node3"] {
        let slave = node(&snap, name);
        assert_eq!(slave.state, RunState::Running, "{slave:?}");
        assert_eq!(slave.store_format, 3003, "{slave:?}");
        assert!(slave.read_only, "{slave:?}");
        assert_eq!(slave.keys, node(&snap, "node1").keys, "{slave:?}");
    }
    let st = stack_params(&lab).await;
    assert_eq!(st["instance_type"], "r5.xlarge", "{st}");
    lab.shutdown().await;
}
