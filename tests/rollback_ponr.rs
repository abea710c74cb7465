//! For each seed procedure: the operator aborts with rollback at the last step before its point
//! of no return — the upgraded node (or cluster) started but not yet back in service — once on
//! a healthy lab, once with a fault staged mid-run (`run --lab --fault KIND:NODE@step=N`) that
//! breaks a node. Without the fault the lab must end on the old version, serving, read-write,
//! in the balancer; with it, the broken node must not pass for rolled back.

mod common;
mod seed_util;

use common::{abort_on_lab_with_faults, back_in_service, LabRun};
use flightdeck::engine::event::Outcome;
use flightdeck::engine::outcome::{outcome_text, rollback_verified};
use flightdeck::engine::state::Mode;
use flightdeck::lab::{LabConfig, Product, Timing};
use seed_util::wait_for_lab;

fn lab(product: Product) -> LabConfig {
    LabConfig::new(product, 3, Timing::fast())
}

/// The session ended rolled back and the nodes named are back in service on `version`.
async fn assert_rolled_back(run: &LabRun, version: &str, nodes: &[&str]) {
    assert_eq!(
        run.state.mode,
        Mode::Finished(Outcome::RolledBack),
        "{}",
        run.output
    );
    // The engine's own verification agrees: `rollback_verified` in the report.
    assert!(
        rollback_verified(&run.state),
        "{}\n{}",
        outcome_text(&run.state),
        run.output
    );
    wait_for_lab(
        &run.lab,
        &format!("{nodes:?} back on {version}, running, writable, serving"),
        |snap| back_in_service(snap, version, nodes),
    )
    .await;
    // Read-write: a write through the balancer commits (polled: a balancer check or a
    // follower that forwards nothing may answer first).
    let http = flightdeck::lab::http_client().unwrap();
    let url = format!("http://{}/kv/after-rollback", run.lab.lb_frontend());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status = match http.put(&url).body("ok").send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no write commits through the balancer after the rollback (last status {status})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The staged fault fired (journaled), and the broken node did not come back into service.
async fn assert_broken_node_not_back(run: &LabRun, fault: &str, broken: &str, version: &str) {
    let f = run
        .state
        .faults
        .iter()
        .find(|f| f.fault == fault)
        .unwrap_or_else(|| panic!("fault {fault} not journaled:\n{}", run.output));
    assert!(
        f.fired_ms.is_some() && f.error.is_none(),
        "{f:?}\n{}",
        run.output
    );
    // Never "rolled back (verified)" over the broken node: a rollback that ran to its end says
    // NOT verified and names the node; one stopped by a failed undo says so, naming it.
    assert!(!rollback_verified(&run.state), "{}", run.output);
    if run.state.mode == Mode::Finished(Outcome::RolledBack) {
        let text = outcome_text(&run.state);
        assert!(
            text.starts_with("rolled back, NOT verified") && text.contains(broken),
            "{text}\n{}",
            run.output
        );
    } else {
        assert!(
            run.state
                .steps
                .iter()
                .any(|s| s.detail.as_deref().is_some_and(|d| d.contains(broken))),
            "the aborted rollback does not name {broken}:\n{}",
            run.output
        );
    }
    let snap = run.lab.snapshot().await;
    assert!(
        !back_in_service(&snap, version, &[broken]),
        "{broken} passes for rolled back: {snap:#?}\n{}",
        run.output
    );
}

const JAHIA: &str = "procedures/jahia-rolling.toml";
const CAUSAL: &str = "procedures/neo4j-causal-cluster.toml";
const HA: &str = "procedures/neo4j-ha-cloudformation.toml";
const MILVUS: &str = "procedures/milvus-helm.toml";
const WEAVIATE: &str = "procedures/weaviate-minor-steps.toml";
const STANDALONE: &str = "procedures/milvus-standalone.toml";

/// The lab milvus-standalone is written for (`run --lab` starts the same): one server on
/// 2.2.16, to 2.3.5.
fn standalone_lab() -> LabConfig {
    let shape = flightdeck::lab::target_seeds::lab_shape("milvus-standalone").expect("a shape");
    let mut cfg = LabConfig::new(Product::Milvus, shape.nodes, Timing::fast());
    cfg.version = Some(shape.from.into());
    cfg.to_version = Some(shape.to.into());
    cfg
}

/// Jahia: the point of no return is `ready@node1` (the processing node back in the balancer
/// takes writes on schema B; procedure header and docs/seed-fidelity.md, guide step 10). The
/// abort comes at its prompt: node1 runs 8.2.0.0 on schema B, verified, writable, not in the
/// balancer yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jahia_abort_before_the_processing_node_is_back_in_the_balancer() {
    let run = abort_on_lab_with_faults(JAHIA, lab(Product::Jahia), "ready@node1", &[]).await;
    assert_rolled_back(&run, "8.1.8.0", &["node1", "node2", "node3"]).await;
    run.lab.shutdown().await;
}

/// The same abort with node1 staged never to get ready again once its version is checked:
/// the rollback's restart on 8.1.8.0 does not bring it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jahia_abort_before_the_ponr_with_a_broken_node() {
    let fault = "never-ready:node1";
    let staged = format!("{fault}@step=version@node1");
    let run = abort_on_lab_with_faults(JAHIA, lab(Product::Jahia), "ready@node1", &[&staged]).await;
    assert_broken_node_not_back(&run, fault, "node1", "8.1.8.0").await;
    run.lab.shutdown().await;
}

/// Neo4j causal cluster: the point of no return is `lb-new-in@node4` (green takes client writes
/// from there). The abort comes at its prompt: green formed on 3.3.5 and took the leader's
/// write check, blue is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_causal_abort_before_green_enters_the_balancer() {
    let run = abort_on_lab_with_faults(CAUSAL, lab(Product::Neo4j), "lb-new-in@node4", &[]).await;
    assert_rolled_back(&run, "3.2.14", &["node1", "node2", "node3"]).await;
    run.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_causal_abort_before_the_ponr_with_a_broken_node() {
    let fault = "never-ready:node2";
    let staged = format!("{fault}@step=write-check");
    let run =
        abort_on_lab_with_faults(CAUSAL, lab(Product::Neo4j), "lb-new-in@node4", &[&staged]).await;
    assert_broken_node_not_back(&run, fault, "node2", "3.2.14").await;
    run.lab.shutdown().await;
}

/// Neo4j HA (CloudFormation): the store is upgraded by the `single` stack update (Mode=SINGLE,
/// AllowUpgrade=True); the abort comes at its prompt, the new image already rolled out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_ha_abort_before_the_store_upgrade() {
    let run = abort_on_lab_with_faults(HA, lab(Product::Neo4j), "single", &[]).await;
    assert_rolled_back(&run, "3.2.14", &["node1", "node2", "node3"]).await;
    run.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_ha_abort_before_the_ponr_with_a_broken_node() {
    let fault = "never-ready:node2";
    let staged = format!("{fault}@step=image-verify");
    let run = abort_on_lab_with_faults(HA, lab(Product::Neo4j), "single", &[&staged]).await;
    assert_broken_node_not_back(&run, fault, "node2", "3.2.14").await;
    run.lab.shutdown().await;
}

/// Milvus (2.1.4 -> 2.2.14, the metadata migration): the point of no return is `migrate-ready`
/// passing (Milvus serves on the 2.2 metadata and takes writes). The abort comes while that gate
/// runs: the metadata is migrated, Milvus not yet serving on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milvus_abort_while_the_migrated_cluster_starts() {
    let run = abort_on_lab_with_faults(MILVUS, lab(Product::Milvus), "migrate-ready", &[]).await;
    assert_rolled_back(&run, "2.1.4", &["node1", "node2", "node3"]).await;
    run.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milvus_abort_before_the_ponr_with_a_broken_node() {
    let fault = "never-ready:node2";
    let staged = format!("{fault}@step=migrate-metadata");
    let run =
        abort_on_lab_with_faults(MILVUS, lab(Product::Milvus), "migrate-ready", &[&staged]).await;
    assert_broken_node_not_back(&run, fault, "node2", "2.1.4").await;
    run.lab.shutdown().await;
}

/// Weaviate, one hop 1.25.10 -> 1.26.18: within the Raft era a node goes back a minor, so the
/// hop has no point of no return of its own (docs/seed-fidelity.md); the last moment the brief
/// names is the first upgraded node started and verified but not yet back in the balancer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weaviate_abort_before_the_first_upgraded_node_is_back() {
    let run =
        abort_on_lab_with_faults(WEAVIATE, lab(Product::Weaviate), "ready@1.26.18/node1", &[])
            .await;
    assert_rolled_back(&run, "1.25.10", &["node1", "node2", "node3"]).await;
    run.lab.shutdown().await;
}

/// The same abort with node1 staged never to get ready again. Weaviate's own checks before the
/// abort point (`nodes-healthy`: every node HEALTHY in `/v1/nodes`) would stop at a node that is
/// not ready, so the fault is staged for the way back (`@undo=`, as `run --lab --fault` takes
/// it): as 1.25.10 goes back on node1, node1 stops answering ready. The rollback's undos all
/// succeed; its verification finds node1 not healthy: not verified, node1 named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weaviate_abort_before_the_first_upgraded_node_is_back_with_a_broken_node() {
    let fault = "never-ready:node1";
    let staged = format!("{fault}@undo=install@1.26.18/node1");
    let run = abort_on_lab_with_faults(
        WEAVIATE,
        lab(Product::Weaviate),
        "ready@1.26.18/node1",
        &[&staged],
    )
    .await;
    assert_broken_node_not_back(&run, fault, "node1", "1.25.10").await;
    run.lab.shutdown().await;
}

/// The same hop with node1 broken on the way forward: staged never to get ready again as its
/// version check after the upgrade starts (`@step=verify-version@1.26.18/node1`), so Weaviate's
/// own check before node1 goes back into the balancer (`nodes-healthy`: every node HEALTHY in
/// `/v1/nodes`) fails — fast, by the target's `[overrides.nodes-healthy] timeout_secs`, as a
/// target for a small cluster would set it. The operator rolls back at the failure prompt
/// (before the abort point, as an operator would). The undos bring the other nodes back; the
/// verification finds node1 not healthy: `rolled back, NOT verified: node1 failed (...)`, the
/// product's reason named, in every view, and node1 is not back in service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weaviate_a_node_broken_on_the_way_forward_is_named_by_the_rollback() {
    let fault = "never-ready:node1";
    let staged = format!("{fault}@step=verify-version@1.26.18/node1");
    let how = common::Scripted::staging(&[&staged]).with_timeout("nodes-healthy", 20);
    let run =
        common::abort_on_lab(WEAVIATE, lab(Product::Weaviate), "ready@1.26.18/node1", how).await;
    // It failed where Weaviate's own check stops a broken node: before the abort point.
    let failed = run
        .state
        .first_failure
        .as_ref()
        .map(|(i, _)| run.state.plan.steps[*i].key.as_str());
    assert_eq!(
        failed,
        Some("nodes-healthy@1.26.18/node1"),
        "{}",
        run.output
    );
    assert_broken_node_not_back(&run, fault, "node1", "1.25.10").await;
    assert_eq!(
        run.state.mode,
        Mode::Finished(Outcome::RolledBack),
        "{}",
        run.output
    );
    let text = outcome_text(&run.state);
    assert!(
        text.starts_with("rolled back, NOT verified: node1 failed (")
            && !text.contains("node2 failed")
            && !text.contains("node3 failed"),
        "{text}\n{}",
        run.output
    );
    // The report says the same, node by node.
    let r = flightdeck::report::build(&run.journal);
    assert_eq!(
        (r.outcome_text.as_str(), r.rollback_verified),
        (text.as_str(), Some(false))
    );
    let verified: Vec<(&str, Option<bool>)> = r
        .nodes_after
        .iter()
        .map(|n| (n.node.as_str(), n.verified))
        .collect();
    assert_eq!(
        verified,
        [
            ("node1", Some(false)),
            ("node2", Some(true)),
            ("node3", Some(true))
        ]
    );
    assert!(back_in_service(
        &run.lab.snapshot().await,
        "1.25.10",
        &["node2", "node3"]
    ));
    run.lab.shutdown().await;
}

/// Past the point of no return (Jahia: `ready@node1`, the processing node back in the balancer
/// on schema B) with clients writing: the engine refuses the full rollback and says what it
/// would lose — the irreversible step, how long ago, and the writes the load generator counted
/// since; the operator overrides it with the typed phrase and a reason, which is journaled with
/// the loss, and the rollback then brings every node back, verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jahia_past_the_ponr_the_rollback_is_refused_with_the_writes_it_would_lose() {
    use flightdeck::engine::event::Event;
    let mut cfg = lab(Product::Jahia);
    cfg.load_rps = 50;
    let run = common::abort_on_lab(
        JAHIA,
        cfg,
        "drain@node2",
        common::Scripted::overriding("drill: the writes on schema B are test data").after_writes(),
    )
    .await;
    let refusal = run.refusal.clone().expect("the plain rollback was refused");
    let writes = regex::Regex::new(concat!(
        r"^a full rollback is refused past the point of no return: step \d+ \(ready@node1\) is ",
        r"irreversible \([^)]*schema B[^)]*\): a full rollback now loses what happened since it ",
        r"finished \S+ ago \((\d+) writes counted by the load generator since\)",
    ))
    .unwrap()
    .captures(&refusal)
    .unwrap_or_else(|| panic!("{refusal}"))[1]
        .parse::<u64>()
        .unwrap();
    assert!(writes > 0, "{refusal}");
    assert!(refusal.contains("`lose writes since step "), "{refusal}");
    // The override is journaled with who, why and the loss the refusal named.
    let (by, reason, lost) = run
        .journal
        .events
        .iter()
        .find_map(|e| match &e.event {
            Event::RollbackOverridden {
                by, reason, lost, ..
            } => Some((by.clone(), reason.clone(), lost.clone())),
            _ => None,
        })
        .expect("RollbackOverridden is journaled");
    assert_eq!(reason, "drill: the writes on schema B are test data");
    assert!(!by.is_empty());
    assert!(
        lost.contains("(ready@node1) is irreversible") && lost.contains("writes counted"),
        "{lost}"
    );
    assert_rolled_back(&run, "8.1.8.0", &["node1", "node2", "node3"]).await;
    run.lab.shutdown().await;
}

/// The rollback ran to its end and its verification found `node` not writable, in the
/// product's words: the outcome says `rolled back, NOT verified: <node> failed (writable:
/// <reason>...`, every other node held every check.
fn assert_unwritable_not_verified(run: &LabRun, node: &str, reason: &str) {
    assert_eq!(
        run.state.mode,
        Mode::Finished(Outcome::RolledBack),
        "{}",
        run.output
    );
    assert!(!rollback_verified(&run.state), "{}", run.output);
    let text = outcome_text(&run.state);
    let want = format!("rolled back, NOT verified: {node} failed (writable: ");
    assert!(
        text.starts_with(&want) && text.contains(reason),
        "{text}\n{}",
        run.output
    );
    let v = run.state.verification.as_ref().expect("verification ran");
    for n in &v.nodes {
        let name = n.node.as_deref().unwrap_or("cluster");
        let failed: Vec<&str> = n
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.what.as_str())
            .collect();
        if name == node {
            assert_eq!(failed, ["writable"], "{n:?}");
        } else {
            assert!(failed.is_empty(), "{name}: {failed:?}\n{}", run.output);
        }
    }
}

/// Milvus: the migration's undo brings 2.1.4 back on every component, healthy — but node2's
/// disk filled during the migration, so Milvus's quota center still denies writes there
/// (CheckHealth: `DenyToWrite`, "disk quota exhausted, ..."), which /healthz does not show. The
/// rollback's `writable` check catches it: not verified, naming node2 and Milvus's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milvus_rollback_that_leaves_writes_denied_is_not_verified() {
    let fault = "deny-writes:node2";
    let staged = format!("{fault}@step=migrate-metadata");
    let run =
        abort_on_lab_with_faults(MILVUS, lab(Product::Milvus), "migrate-ready", &[&staged]).await;
    assert_unwritable_not_verified(
        &run,
        "node2",
        "disk quota exhausted, please allocate more resources",
    );
    let snap = run.lab.snapshot().await;
    let node2 = snap.node("node2").expect("node2");
    assert_eq!(
        (node2.version.as_str(), node2.state),
        ("2.1.4", flightdeck::lab::RunState::Running),
        "the undo itself brought node2 back: {node2:?}"
    );
    assert_broken_node_not_back(&run, fault, "node2", "2.1.4").await;
    run.lab.shutdown().await;
}

/// Weaviate: the operator aborts with rollback before node1 (upgraded to 1.26.18) is back in the
/// balancer, with a fault armed only for the way back (`@undo=`): as node1's install is undone,
/// its disk fills up, so on 1.25.10 its shards come up READONLY (DISK_USE_READONLY_PERCENTAGE).
/// Every undo succeeds and node1 is ready and HEALTHY — only the `writable` check sees it. The
/// session must say `rolled back, NOT verified: node1 failed (writable: ...READONLY...)`, and the
/// fault must have fired during the rollback, not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weaviate_fault_armed_for_the_rollback_leaves_it_not_verified() {
    use flightdeck::engine::event::{Event, Phase};
    let fault = "deny-writes:node1";
    let staged = format!("{fault}@undo=install@1.26.18/node1");
    let run = abort_on_lab_with_faults(
        WEAVIATE,
        lab(Product::Weaviate),
        "ready@1.26.18/node1",
        &[&staged],
    )
    .await;
    let events = &run.journal.events;
    let at = |want: &dyn Fn(&Event) -> bool| events.iter().position(|e| want(&e.event));
    let abort = at(&|e| matches!(e, Event::AbortRequested { rollback: true, .. }))
        .expect("the abort is journaled");
    let fired = at(&|e| {
        matches!(e, Event::FaultFired { fault: f, phase: Phase::Undo, error: None, .. } if f == fault)
    })
    .unwrap_or_else(|| panic!("the fault did not fire at the undo:\n{}", run.output));
    assert!(
        fired > abort,
        "it fired before the rollback:\n{}",
        run.output
    );
    assert!(
        run.output.contains("staged for the undo of")
            && run.output.contains("fired as the undo of"),
        "{}",
        run.output
    );
    assert_unwritable_not_verified(&run, "node1", "READONLY");
    // The rollback itself went through: node1 runs 1.25.10 again, ready, in the balancer.
    let snap = run.lab.snapshot().await;
    let node1 = snap.node("node1").expect("node1");
    assert_eq!(
        (node1.version.as_str(), node1.state, node1.read_only),
        ("1.25.10", flightdeck::lab::RunState::Running, true),
        "{node1:?}"
    );
    assert!(back_in_service(&snap, "1.25.10", &["node2", "node3"]));
    // The report says the same, with the fault staged for the undo.
    let report = flightdeck::report::build(&run.journal);
    assert_eq!(report.rollback_verified, Some(false));
    let f = report
        .faults
        .iter()
        .find(|f| f.fault == fault)
        .expect("the fault is in the report");
    assert!(f.undo && f.fired_ms.is_some(), "{f:?}");
    run.lab.shutdown().await;
}

/// Milvus standalone on a host (2.2.16 -> 2.3.5): the point of no return is `collections@node1`
/// passing (2.3.5 serves clients on the upgraded data; restoring the backup would lose their
/// writes). The abort comes at the go/no-go prompt before it, `load@node1`: 2.3.5 started on
/// the upgraded data and healthy. The rollback stops it, switches back, restores the cold
/// backup, starts 2.2.16 and waits for the recorded rows; its verification reads the version,
/// /healthz, the rows and CheckHealth (writable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milvus_standalone_abort_at_the_go_no_go_prompt() {
    let run = abort_on_lab_with_faults(STANDALONE, standalone_lab(), "load@node1", &[]).await;
    assert_rolled_back(&run, "2.2.16", &["node1"]).await;
    let v = run.state.verification.as_ref().expect("verification ran");
    let checks: Vec<&str> = v
        .nodes
        .iter()
        .flat_map(|n| n.checks.iter().map(|c| c.what.as_str()))
        .collect();
    for what in [
        "runs 2.2.16",
        "healthy",
        "its collections as recorded",
        "writable",
    ] {
        assert!(checks.contains(&what), "{what} not checked: {checks:?}");
    }
    let node1 = run.lab.snapshot().await;
    assert_eq!(node1.node("node1").expect("node1").store_format, 2002);
    run.lab.shutdown().await;
}

/// The same abort, node1's disk filled once 2.3.5 starts (`deny-writes`): every undo succeeds
/// and 2.2.16 serves the recorded rows, healthy — only CheckHealth says writes are denied. Not
/// verified, naming node1 and Milvus's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milvus_standalone_rollback_that_leaves_writes_denied_is_not_verified() {
    let fault = "deny-writes:node1";
    let staged = format!("{fault}@step=start@node1");
    let run =
        abort_on_lab_with_faults(STANDALONE, standalone_lab(), "load@node1", &[&staged]).await;
    assert_unwritable_not_verified(
        &run,
        "node1",
        "disk quota exhausted, please allocate more resources",
    );
    let snap = run.lab.snapshot().await;
    let node1 = snap.node("node1").expect("node1");
    assert_eq!(
        (node1.version.as_str(), node1.state),
        ("2.2.16", flightdeck::lab::RunState::Running),
        "the undo itself brought node1 back: {node1:?}"
    );
    assert_broken_node_not_back(&run, fault, "node1", "2.2.16").await;
    run.lab.shutdown().await;
}

/// The same abort, node1 staged never to get healthy again once the rollback stops 2.3.5
/// (`@undo=start@node1`): 2.2.16's start on the restored data never answers /healthz, so the
/// undo of `stop` fails with the start script's words naming node1 (its step detail is the
/// HTTP status; the words are in the journaled answer), and the session never says rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milvus_standalone_abort_with_a_server_that_never_gets_healthy_again() {
    use flightdeck::engine::state::StepStatus;
    let fault = "never-ready:node1";
    let staged = format!("{fault}@undo=start@node1");
    let run =
        abort_on_lab_with_faults(STANDALONE, standalone_lab(), "load@node1", &[&staged]).await;
    let f = run.state.faults.iter().find(|f| f.fault == fault);
    assert!(
        f.is_some_and(|f| f.fired_ms.is_some() && f.error.is_none()),
        "{f:?}\n{}",
        run.output
    );
    assert!(!rollback_verified(&run.state), "{}", run.output);
    let text = outcome_text(&run.state);
    assert!(
        text.starts_with("rollback stopped, NOT verified: undo of step")
            && text.contains("(stop@node1) failed on node1 ("),
        "{text}
{}",
        run.output
    );
    let stop = run
        .state
        .plan
        .steps
        .iter()
        .position(|s| s.key == "stop@node1")
        .expect("stop@node1");
    assert_eq!(run.state.steps[stop].status, StepStatus::UndoFailed);
    assert!(
        run.output
            .contains("milvus 2.2.16 on node1 not healthy within"),
        "{}",
        run.output
    );
    let snap = run.lab.snapshot().await;
    assert!(
        !back_in_service(&snap, "2.2.16", &["node1"]),
        "node1 passes for rolled back: {snap:#?}\n{}",
        run.output
    );
    run.lab.shutdown().await;
}

/// The same abort with the backup gone by the time the rollback needs it (removed at the
/// go/no-go prompt): the undo of `check-backup` — the restore — fails with the script's words
/// (milvus-ctl.sh `restore` checks the backup before it touches anything) and the rollback
/// stops there. Whether the operator then ends the session or leaves it at the failed undo (a
/// headless run stops there), every view says the same true thing: the rollback stopped, NOT
/// verified, at the undo that failed on node1, with the product's reason — never `rolling
/// back`, never `rolled back`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milvus_standalone_backup_lost_before_the_undo_stops_the_rollback_and_says_so() {
    use flightdeck::engine::state::StepStatus;
    use flightdeck::report;
    let backup = "backups/standalone-data-node1.json";
    for leave in [false, true] {
        let how = if leave {
            common::Scripted::removing(backup).leaving_at_failed_undo()
        } else {
            common::Scripted::removing(backup)
        };
        let run = common::abort_on_lab(STANDALONE, standalone_lab(), "load@node1", how).await;
        let restore = run
            .state
            .plan
            .steps
            .iter()
            .position(|s| s.key == "check-backup@node1")
            .expect("check-backup@node1");
        assert_eq!(
            run.state.steps[restore].status,
            StepStatus::UndoFailed,
            "{}",
            run.output
        );
        let want = format!(
            "rollback stopped, NOT verified: undo of step {} (check-backup@node1) failed on node1 (",
            restore + 1
        );
        let reason = "No such file or directory; nothing restored: the backup is missing";
        let text = outcome_text(&run.state);
        assert!(
            text.starts_with(&want) && text.contains(reason),
            "{text}\n{}",
            run.output
        );
        assert!(!rollback_verified(&run.state), "{}", run.output);
        let expect_mode = if leave {
            Mode::RollingBack
        } else {
            Mode::Finished(Outcome::Aborted)
        };
        assert_eq!(run.state.mode, expect_mode, "{}", run.output);
        // The headless summary, the report (JSON and Markdown) say it in the same words.
        assert!(
            run.end.summary.contains(&text) && !run.end.summary.contains("rolling back"),
            "{}",
            run.end.summary
        );
        let r = report::build(&run.journal);
        assert_eq!(r.outcome_text, text);
        assert_eq!(r.rollback_verified, Some(false));
        let node1 = r
            .nodes_after
            .iter()
            .find(|n| n.node == "node1")
            .expect("node1");
        assert_eq!(node1.verified, Some(false), "{node1:?}");
        assert!(
            node1.reason.as_deref().is_some_and(|w| w.contains(reason)),
            "{node1:?}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&report::json(&r)).expect("the report is JSON");
        assert_eq!(json["outcome"], serde_json::json!(text));
        assert_eq!(json["rollback_verified"], serde_json::json!(false));
        let md = report::markdown(&r);
        assert!(
            md.contains("## After the rollback: stopped, NOT verified")
                && md.contains(&format!("| Outcome | {want}"))
                && md.contains(reason),
            "{md}"
        );
        // Nothing half-done: the data is as 2.3.5 left it (the restore touched nothing), and
        // node1 is not back in service on 2.2.16.
        let snap = run.lab.snapshot().await;
        assert!(
            !back_in_service(&snap, "2.2.16", &["node1"]),
            "node1 passes for rolled back: {snap:#?}\n{}",
            run.output
        );
        run.lab.shutdown().await;
    }
}
