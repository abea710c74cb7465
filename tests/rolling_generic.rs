//! The generic rolling procedure against a 3-node lab under load: every node upgraded, zero
//! failed reads through the load balancer; and a failed migration rolls back to the old version.

mod common;
mod seed_util;

use common::{run_on_lab, yes_all, yes_all_rollback};
use flightdeck::engine::event::{Event, Outcome};
use flightdeck::engine::state::Mode;
use flightdeck::lab::{Fault, LabConfig, Product, Timing};
use seed_util::wait_for_lab;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_upgrade_under_load_loses_no_read() {
    let mut cfg = LabConfig::new(Product::Generic, 3, Timing::fast());
    cfg.load_rps = 100;
    let run = run_on_lab("procedures/generic-rolling.toml", cfg, yes_all()).await;
    assert!(run.end.ok, "{}\n{}", run.end.summary, run.output);
    assert_eq!(run.state.mode, Mode::Finished(Outcome::Completed));
    let snap = run.lab.snapshot().await;
    for n in &snap.nodes {
        assert_eq!(n.version, "1.1.0", "{} not upgraded", n.name);
    }
    // The last node's `ready` is done; the balancer's own checks (rise 2) are sampled apart
    // from the session: poll for every backend serving.
    wait_for_lab(&run.lab, "every backend serving", |s| {
        s.backends.iter().all(|b| b.serving)
    })
    .await;
    let traffic = run.lab.traffic().await;
    assert!(traffic.ok_reads > 0, "the load generator sent nothing");
    assert_eq!(traffic.failed_reads, 0, "{traffic:?}");
    assert!(
        run.end.summary.contains("0 failed reads"),
        "{}",
        run.end.summary
    );
    // Every step of the plan is in the journal.
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
async fn a_failed_migration_rolls_back_the_node_to_the_old_version() {
    let mut cfg = LabConfig::new(Product::Generic, 3, Timing::fast());
    // node2 goes first (followers first); its migration fails at start.
    cfg.faults = vec!["fail-migration:node2".parse::<Fault>().unwrap()];
    let run = run_on_lab("procedures/generic-rolling.toml", cfg, yes_all_rollback()).await;
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
    assert!(run.end.summary.contains("failed"), "{}", run.end.summary);
    // Back on the old version, serving (the balancer needs a couple of checks to rise).
    wait_for_lab(&run.lab, "back", |snap| {
        let back = snap
            .nodes
            .iter()
            .all(|n| n.version == "1.0.0" && !n.read_only)
            && snap.backends.iter().all(|b| b.serving);
        back
    })
    .await;
    run.lab.shutdown().await;
}
