//! Helpers shared by the seed procedure tests (each test crate uses a subset).
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use flightdeck::engine::event::Event;
use flightdeck::lab::{Lab, LabSnapshot};
use flightdeck::plan::expand::{build_plan, PlanOptions};
use flightdeck::plan::Plan;
use flightdeck::procedure::load::load_procedure;
use flightdeck::procedure::validate::validate;
use flightdeck::target::Target;
use flightdeck::target_load::load_target;

use crate::common::LabRun;

/// `flightdeck check` + `plan` of `procedure` against the target file `target`.
pub fn check_and_plan(procedure: &str, target: &str, opts: &PlanOptions) -> Plan {
    let t = match load_target(Path::new(target)) {
        Ok(t) => t,
        Err(d) => panic!("{target}:\n{d}"),
    };
    check_and_plan_target(procedure, &t, opts)
}

pub fn check_and_plan_target(procedure: &str, target: &Target, opts: &PlanOptions) -> Plan {
    let lp = match load_procedure(Path::new(procedure)) {
        Ok(lp) => lp,
        Err(d) => panic!("{procedure}:\n{d}"),
    };
    let diags = validate(&lp, Some(target));
    assert!(
        diags.is_empty(),
        "{procedure} against {}:\n{diags}",
        target.name
    );
    match build_plan(&lp, target, opts) {
        Ok(p) => p,
        Err(e) => panic!("{procedure} against {}: {e}", target.name),
    }
}

/// Plans, expecting an error; returns its message.
pub fn plan_error(procedure: &str, target: &str, opts: &PlanOptions) -> String {
    let t = load_target(Path::new(target)).unwrap();
    let lp = load_procedure(Path::new(procedure)).unwrap();
    match build_plan(&lp, &t, opts) {
        Ok(p) => panic!("expected an error, got a plan of {} steps", p.steps.len()),
        Err(e) => e.to_string(),
    }
}

pub fn keys(plan: &Plan) -> Vec<String> {
    plan.steps.iter().map(|s| s.key.clone()).collect()
}

/// Every key of `expected` is in `keys`, in this order (others may come in between).
pub fn assert_in_order(keys: &[String], expected: &[&str]) {
    let mut at = 0;
    for want in expected {
        match keys[at..].iter().position(|k| k == want) {
            Some(p) => at += p + 1,
            None => panic!("`{want}` missing or out of order in {keys:#?}"),
        }
    }
}

/// Every planned step finished exactly once, in the journal.
pub fn assert_every_step_journaled(run: &LabRun) {
    let mut finished = vec![0usize; run.state.plan.steps.len()];
    for e in &run.journal.events {
        if let Event::ActionFinished { step, .. } = &e.event {
            if let Some(f) = finished.get_mut(*step) {
                *f += 1;
            }
        }
    }
    let missing: Vec<&str> = finished
        .iter()
        .enumerate()
        .filter(|(_, n)| **n == 0)
        .map(|(i, _)| run.state.plan.steps[i].key.as_str())
        .collect();
    assert!(missing.is_empty(), "steps not in the journal: {missing:?}");
}

/// Polls the lab until `ok` holds (the balancer needs a couple of checks to rise).
pub async fn wait_for_lab(lab: &Lab, what: &str, ok: impl Fn(&LabSnapshot) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let snap = lab.snapshot().await;
        if ok(&snap) {
            return;
        }
        assert!(Instant::now() < deadline, "not {what}: {snap:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Put the lab's node `index` on `version` by hand, as an operator would out of band (stop,
/// install, start through its admin API), and wait until it runs that version.
pub async fn switch_node_version(lab: &Lab, index: usize, version: &str) {
    let node = lab.target().nodes[index].clone();
    let admin = node.tags["admin"].clone();
    let client = reqwest::Client::new();
    for (op, body) in [
        ("stop", serde_json::json!({})),
        ("install", serde_json::json!({ "version": version })),
        ("start", serde_json::json!({})),
    ] {
        let r = client
            .post(format!("{admin}/_lab/{op}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{op}");
    }
    wait_for_lab(lab, &format!("{} running {version}", node.name), |snap| {
        snap.node(&node.name)
            .is_some_and(|n| n.state == flightdeck::lab::RunState::Running && n.version == version)
    })
    .await;
}
