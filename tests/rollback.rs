//! Rollbacks on the lab: an operator aborts with rollback part-way through a seed procedure and
//! the cluster must end where it started — every node on the old version, running, serving,
//! read-write — and the session must say so truthfully.

mod common;
mod seed_util;

use common::abort_on_lab_at;
use flightdeck::engine::event::Outcome;
use flightdeck::engine::state::Mode;
use flightdeck::lab::{LabConfig, Product, RunState, Timing};
use seed_util::wait_for_lab;

/// Jahia: aborting once node2 is stopped (node1 already runs 8.2 on schema B) used to start
/// node2 again on schema A while node1 still ran on B: "cluster conflict", node2 failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jahia_abort_after_the_second_node_stopped_rolls_back_every_node() {
    let cfg = LabConfig::new(Product::Jahia, 3, Timing::fast());
    let run = abort_on_lab_at("procedures/jahia-rolling.toml", cfg, "set-schema@node2").await;
    assert_eq!(
        run.state.mode,
        Mode::Finished(Outcome::RolledBack),
        "{}",
        run.output
    );
    wait_for_lab(
        &run.lab,
        "the cluster back on 8.1.8.0, schema A, running, writable, serving",
        |snap| {
            snap.nodes.iter().all(|n| {
                n.version == "8.1.8.0"
                    && n.schema.as_deref() == Some("A")
                    && !n.read_only
                    && n.state == RunState::Running
            }) && snap.backends.iter().all(|b| b.serving)
        },
    )
    .await;
    run.lab.shutdown().await;
}

/// Wherever the operator aborts in the per-node part, the rollback ends with every node on
/// 8.1.8.0, schema A, running, writable and in the balancer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jahia_abort_anywhere_in_the_node_loop_rolls_back_every_node() {
    for at in ["ready@node1", "start@node2", "drain@node3", "ready@node3"] {
        let cfg = LabConfig::new(Product::Jahia, 3, Timing::fast());
        let run = abort_on_lab_at("procedures/jahia-rolling.toml", cfg, at).await;
        assert_eq!(
            run.state.mode,
            Mode::Finished(Outcome::RolledBack),
            "abort at {at}:\n{}",
            run.output
        );
        wait_for_lab(
            &run.lab,
            &format!("(abort at {at}) the cluster back on 8.1.8.0, schema A, serving"),
            |snap| {
                snap.nodes.iter().all(|n| {
                    n.version == "8.1.8.0"
                        && n.schema.as_deref() == Some("A")
                        && !n.read_only
                        && n.state == RunState::Running
                }) && snap.backends.iter().all(|b| b.serving)
            },
        )
        .await;
        run.lab.shutdown().await;
    }
}
