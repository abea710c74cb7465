//! neo4j-causal-cluster: the blue/green rebuild checks and plans against the real example
//! target and the lab; a full run leaves the green cluster serving 3.3.5 with the data; a
//! standalone upgrade that never gets ready rolls back to the old cluster, read-write.

mod common;
mod seed_util;

use std::path::Path;

use common::{run_on_lab, yes_all, yes_all_rollback};
use flightdeck::engine::event::{Event, Outcome};
use flightdeck::engine::state::Mode;
use flightdeck::lab::{Fault, Lab, LabConfig, Product, RunState, Timing};
use flightdeck::plan::expand::{build_plan, PlanOptions};
use flightdeck::procedure::load::load_procedure;
use flightdeck::procedure::model::Membership;
use flightdeck::target_load::load_target;
use seed_util::wait_for_lab;

const PROCEDURE: &str = "procedures/neo4j-causal-cluster.toml";
const EXAMPLE: &str = "procedures/targets/neo4j-causal-cluster.example.toml";

fn step_ids(plan: &flightdeck::plan::Plan) -> Vec<String> {
    plan.steps.iter().map(|s| s.key.clone()).collect()
}

#[tokio::test]
async fn checks_and_plans_on_the_example_and_the_lab() {
    let lp = load_procedure(Path::new(PROCEDURE)).unwrap();
    let example = load_target(Path::new(EXAMPLE)).unwrap_or_else(|d| panic!("{d}"));
    let diags = flightdeck::procedure::validate::validate(&lp, Some(&example));
    assert!(diags.is_empty(), "{diags}");
    let plan = build_plan(&lp, &example, &PlanOptions::default()).unwrap();
    let ids = step_ids(&plan);
    // The standalone upgrade happens on the first green server only; the others are seeded.
    assert!(ids.contains(&"standalone@green1".to_string()), "{ids:?}");
    assert!(!ids.iter().any(|i| i == "standalone@green2"), "{ids:?}");
    assert!(ids.contains(&"seed-restore@green2".to_string()), "{ids:?}");
    assert!(!ids.iter().any(|i| i == "seed-restore@green1"), "{ids:?}");
    // The point of no return is the first moment clients can write to green: its first server
    // going into the balancer, after it was started, verified and took the leader's write.
    let pos = |key: &str| {
        ids.iter()
            .position(|i| i == key)
            .unwrap_or_else(|| panic!("{key} not in {ids:?}"))
    };
    let first_in = pos("lb-new-in@green1");
    assert!(plan.steps[first_in].irreversible.is_some());
    assert_eq!(plan.first_irreversible(), Some(first_in));
    assert!(pos("start-new@green3") < pos("cluster-formed"));
    assert!(pos("write-check") < first_in);
    assert!(pos("new-version") < first_in);
    // The old servers leave the balancer before they stop.
    assert!(pos("lb-old-out@blue3") < pos("stop-old@blue2"));
    // A quorum gate after each read-only restart of an old core.
    for blue in ["blue1", "blue2", "blue3"] {
        assert!(
            pos(&format!("read-only@{blue}")) + 1 == pos(&format!("read-only-rejoined@{blue}"))
        );
    }
    assert!(pos("preflight-version") < pos("read-only@blue2"));

    let lab = Lab::start(LabConfig::new(Product::Neo4j, 3, Timing::fast()))
        .await
        .unwrap();
    let diags = flightdeck::procedure::validate::validate(&lp, Some(lab.target()));
    assert!(diags.is_empty(), "{diags}");
    let plan = build_plan(&lp, lab.target(), &PlanOptions::default()).unwrap();
    assert_eq!(plan.steps.len(), ids.len());
    // The lab's target sizes the quorum gate, and so its undo (the same gate, which a rollback
    // passes between the restarts back to read/write), for the lab.
    let plan = build_plan(&lp, &lab.target_for(&lp.procedure), &PlanOptions::default()).unwrap();
    let rejoined = plan
        .steps
        .iter()
        .find(|s| s.key == "read-only-rejoined@node2")
        .unwrap();
    let timeouts = |a: Option<&flightdeck::procedure::model::Action>| match a {
        Some(flightdeck::procedure::model::Action::Wait(w)) => w.timeout_secs,
        other => panic!("not a gate: {other:?}"),
    };
    assert_eq!(timeouts(Some(&rejoined.action)), 60);
    assert_eq!(timeouts(rejoined.undo.as_ref()), 60);
    assert_eq!(
        rejoined.overrides,
        ["timeout_secs = 60 (procedure: 600)".to_string()]
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_run_leaves_the_green_cluster_serving_the_data() {
    let mut cfg = LabConfig::new(Product::Neo4j, 3, Timing::fast());
    cfg.load_rps = 50;
    let run = run_on_lab(PROCEDURE, cfg, yes_all()).await;
    assert!(run.end.ok, "{}\n{}", run.end.summary, run.output);
    assert_eq!(run.state.mode, Mode::Finished(Outcome::Completed));
    let snap = run.lab.snapshot().await;
    for n in &snap.nodes {
        match n.group.as_deref() {
            Some("green") => {
                assert_eq!(n.version, "3.3.5", "{n:?}");
                assert_eq!(n.state, RunState::Running, "{n:?}");
                assert_eq!(n.store_format, 3003, "{n:?}");
                assert_eq!(n.mode, "CORE", "{n:?}");
                assert!(!n.allow_upgrade, "{n:?}");
                assert!(!n.read_only, "{n:?}");
                // The old cluster's data plus the write that proved the switch.
                assert!(n.keys >= 2, "{n:?}");
            }
            _ => {
                assert_eq!(n.state, RunState::Stopped, "{n:?}");
                assert_eq!(n.version, "3.2.14", "{n:?}");
            }
        }
    }
    for b in &snap.backends {
        let green = snap
            .node(&b.server)
            .is_some_and(|n| n.group.as_deref() == Some("green"));
        let want = if green {
            Membership::Ready
        } else {
            Membership::Maint
        };
        assert_eq!(b.membership, want, "{b:?}");
    }
    for backup in ["pre-upgrade", "upgraded", "post-upgrade"] {
        let path = run
            .lab
            .data_dir()
            .join("backups")
            .join(format!("{backup}.json"));
        assert!(path.exists(), "{}", path.display());
    }
    // The saved neo4j.conf is back: the upgrade server runs as a core.
    let saved = run.lab.data_dir().join("node4").join("neo4j.conf.save");
    assert!(saved.exists(), "{}", saved.display());
    // The new cluster serves through the balancer.
    // The balancer marks a backend UP only after its next health check, so the first read may
    // still find no ready backend: poll with a deadline, as a client retrying would.
    let front = format!("http://{}/kv/lab", run.lab.lb_frontend());
    let client = flightdeck::lab::http_client().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let body = match client.get(&front).send().await {
            Ok(resp) => resp.text().await.unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        if body == "neo4j" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new cluster does not serve through the balancer: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
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
async fn a_standalone_upgrade_that_never_gets_ready_rolls_back_to_blue() {
    let mut cfg = LabConfig::new(Product::Neo4j, 3, Timing::fast());
    // node4 is the first green server: the one that upgrades the store.
    cfg.faults = vec!["never-ready:node4".parse::<Fault>().unwrap()];
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
        run.output.contains("upgrade-verify@node4 FAILED"),
        "{}",
        run.output
    );
    wait_for_lab(&run.lab, "back", |snap| {
        let blue_back = snap
            .nodes
            .iter()
            .filter(|n| n.group.as_deref() == Some("blue"))
            .all(|n| n.state == RunState::Running && !n.read_only && n.version == "3.2.14");
        let green_down = snap
            .nodes
            .iter()
            .filter(|n| n.group.as_deref() == Some("green"))
            .all(|n| n.state == RunState::Stopped && n.mode == "CORE" && !n.allow_upgrade);
        let lb_blue = snap.backends.iter().all(|b| {
            let blue = snap
                .node(&b.server)
                .is_some_and(|n| n.group.as_deref() == Some("blue"));
            if blue {
                b.membership == Membership::Ready && b.serving
            } else {
                b.membership == Membership::Maint
            }
        });
        blue_back && green_down && lb_blue
    })
    .await;
    // Writes reach the old cluster again.
    let front = format!("http://{}/kv/after-rollback", run.lab.lb_frontend());
    let status = flightdeck::lab::http_client()
        .unwrap()
        .put(front)
        .body("ok")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
    run.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cluster_that_never_forms_rolls_back_after_the_shutdown() {
    let mut cfg = LabConfig::new(Product::Neo4j, 3, Timing::fast());
    // node5 is a seeded green server: the failure comes after the old cluster was shut down.
    cfg.faults = vec!["never-ready:node5".parse::<Fault>().unwrap()];
    let run = run_on_lab(PROCEDURE, cfg, yes_all_rollback()).await;
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
        run.output.contains("cluster-formed FAILED"),
        "{}",
        run.output
    );
    wait_for_lab(&run.lab, "back", |snap| {
        let back = snap.nodes.iter().all(|n| match n.group.as_deref() {
            Some("blue") => n.state == RunState::Running && !n.read_only,
            _ => n.state == RunState::Stopped,
        });
        let lb_blue = snap.backends.iter().all(|b| {
            let blue = snap
                .node(&b.server)
                .is_some_and(|n| n.group.as_deref() == Some("blue"));
            (b.membership == Membership::Ready) == blue && (!blue || b.serving)
        });
        back && lb_blue
    })
    .await;
    run.lab.shutdown().await;
}
