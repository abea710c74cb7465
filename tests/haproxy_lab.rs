//! The lab behind a real HAProxy (`LbKind::Haproxy`): membership read and changed through
//! `LbClient`, the written target, shutdown, and the generic rolling procedure under load with
//! no failed read through HAProxy (and rolled back after a failed migration). Skipped without
//! haproxy, except under `CI=true`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::haproxy::{haproxy_lab_config, haproxy_or_skip, rolling_through_haproxy};
use common::{run_on_lab, yes_all_rollback};
use flightdeck::engine::event::Outcome;
use flightdeck::engine::state::Mode;
use flightdeck::lab::{Fault, Lab, LbKind, Product};
use flightdeck::lb::{Backend, LbClient};
use flightdeck::procedure::model::Membership;
use flightdeck::target::Target;

const DEADLINE: Duration = Duration::from_secs(30);

/// Polls the balancer until `pred` holds for its backends, or panics with `what`.
async fn until(lb: &LbClient, what: &str, pred: impl Fn(&[Backend]) -> bool) -> Vec<Backend> {
    let start = Instant::now();
    loop {
        let last = lb.backends().await;
        if let Ok(b) = &last {
            if pred(b) {
                return b.clone();
            }
        }
        assert!(start.elapsed() < DEADLINE, "timed out on {what}: {last:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn server<'a>(backends: &'a [Backend], name: &str) -> &'a Backend {
    backends
        .iter()
        .find(|b| b.server == name)
        .unwrap_or_else(|| panic!("no server {name} in {backends:?}"))
}

async fn lab(product: Product, nodes: usize, load: u32) -> Lab {
    Lab::start(haproxy_lab_config(product, nodes, load))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_points_at_haproxy_and_membership_reads_through_lb_client() {
    if !haproxy_or_skip() {
        return;
    }
    let lab = lab(Product::Generic, 3, 20).await;
    assert_eq!(lab.lb_kind(), LbKind::Haproxy);
    let haproxy = lab.haproxy().unwrap();
    assert_eq!(lab.lb_frontend(), haproxy.frontend());
    assert!(haproxy.config_path().starts_with(lab.data_dir()));
    let cfg = std::fs::read_to_string(haproxy.config_path()).unwrap();
    assert!(cfg.contains("option httpchk GET /health"), "{cfg}");

    // The written target parses back with the haproxy driver.
    let path = lab.data_dir().join("target.toml");
    lab.write_target(&path).unwrap();
    let target: Target = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let lb_cfg = target.lb.clone().unwrap();
    assert_eq!(lb_cfg.driver, "haproxy");
    assert_eq!(lb_cfg.address, haproxy.runtime_address());
    assert_eq!(lb_cfg.backend.as_deref(), Some(haproxy.backend()));
    assert_eq!(
        lb_cfg.frontend.as_deref(),
        Some(lab.lb_frontend().to_string().as_str())
    );
    assert_eq!(
        target.vars["lab_frontend"],
        format!("http://{}", lab.lb_frontend())
    );

    let lb = LbClient::from_config(&lb_cfg).unwrap();
    // HAProxy starts its servers UP with check `INI`, before the first check has run.
    let backends = until(&lb, "every server checked UP and serving", |b| {
        b.len() == 3
            && b.iter().all(|s| {
                s.serving && s.health.starts_with("UP") && s.check.as_deref() == Some("L7OK")
            })
    })
    .await;
    for (b, name) in backends.iter().zip(["node1", "node2", "node3"]) {
        assert_eq!(b.server, name);
        assert_eq!(b.node.as_deref(), Some(name));
        assert_eq!(b.membership, Membership::Ready);
        assert_eq!(b.check.as_deref(), Some("L7OK"));
        assert!(b.sessions.is_some());
    }

    // The lab's own view (snapshot and admin API) is HAProxy's.
    let snap = lab.snapshot().await;
    assert_eq!(snap.lb_error, None);
    assert_eq!(snap.backends.len(), 3);
    let admin: Vec<Backend> = flightdeck::lab::http_client()
        .unwrap()
        .get(format!("{}/_lab/lb/backends", lab.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        admin.iter().map(|b| &b.server).collect::<Vec<_>>(),
        ["node1", "node2", "node3"]
    );

    // The traffic generator goes through HAProxy.
    let start = Instant::now();
    while lab.traffic().await.ok_reads == 0 {
        assert!(start.elapsed() < DEADLINE, "no read through HAProxy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(lab.traffic().await.failed_reads, 0);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_and_ready_change_haproxys_state_and_its_traffic() {
    if !haproxy_or_skip() {
        return;
    }
    let lab = lab(Product::Generic, 3, 50).await;
    let lb = LbClient::from_config(lab.target().lb.as_ref().unwrap()).unwrap();
    until(&lb, "every server serving", |b| b.iter().all(|s| s.serving)).await;

    lb.set_membership("node2", Membership::Drain, None)
        .await
        .unwrap();
    let backends = lb.backends().await.unwrap();
    let node2 = server(&backends, "node2");
    assert_eq!(node2.membership, Membership::Drain);
    assert!(!node2.serving);
    assert!(server(&backends, "node1").serving);

    // Drained, node2 gets no new request while the others keep getting theirs.
    let requests = |snap: &flightdeck::lab::LabSnapshot, name: &str| {
        snap.node(name).map(|n| n.requests).unwrap_or(0)
    };
    // Requests HAProxy sent just before the drain may still be landing: settle first.
    let mut before = lab.snapshot().await;
    let start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = lab.snapshot().await;
        if requests(&now, "node2") == requests(&before, "node2")
            && requests(&now, "node1") > requests(&before, "node1")
        {
            before = now;
            break;
        }
        assert!(start.elapsed() < DEADLINE, "node2 still gets requests");
        before = now;
    }
    let start = Instant::now();
    loop {
        let now = lab.snapshot().await;
        if requests(&now, "node1") >= requests(&before, "node1") + 10 {
            assert_eq!(requests(&now, "node2"), requests(&before, "node2"));
            break;
        }
        assert!(start.elapsed() < DEADLINE, "no traffic to node1");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    lb.set_membership("node2", Membership::Ready, None)
        .await
        .unwrap();
    until(&lb, "node2 serving again", |b| {
        let n = server(b, "node2");
        n.membership == Membership::Ready && n.serving
    })
    .await;
    let back = lab.snapshot().await;
    let start = Instant::now();
    while requests(&lab.snapshot().await, "node2") == requests(&back, "node2") {
        assert!(start.elapsed() < DEADLINE, "node2 gets no traffic back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Unknown servers are refused by HAProxy, through the lab's admin API as well.
    assert!(lb
        .set_membership("node9", Membership::Drain, None)
        .await
        .is_err());
    let status = flightdeck::lab::http_client()
        .unwrap()
        .put(format!("{}/_lab/lb/backends/node9", lab.admin_url()))
        .json(&serde_json::json!({"state": "drain"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 404);
    assert_eq!(lab.traffic().await.failed_reads, 0);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_goes_down_in_haproxy_and_shutdown_stops_haproxy() {
    if !haproxy_or_skip() {
        return;
    }
    let lab = lab(Product::Generic, 2, 0).await;
    let lb = LbClient::from_config(lab.target().lb.as_ref().unwrap()).unwrap();
    until(&lb, "every server serving", |b| b.iter().all(|s| s.serving)).await;
    let status = flightdeck::lab::http_client()
        .unwrap()
        .post(format!("{}/_lab/nodes/node1/stop", lab.admin_url()))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success());
    let backends = until(&lb, "node1 DOWN", |b| server(b, "node1").health == "DOWN").await;
    let node1 = server(&backends, "node1");
    // HAProxy's verdict, not the membership the procedure set: still `ready`.
    assert_eq!(node1.membership, Membership::Ready);
    assert!(!node1.serving);
    assert!(node1.check.as_deref().unwrap_or("").starts_with("L7STS"));

    lab.shutdown().await;
    assert!(lb.backends().await.is_err(), "HAProxy still answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_green_nodes_start_in_maintenance() {
    if !haproxy_or_skip() {
        return;
    }
    let lab = lab(Product::Neo4j, 2, 0).await;
    let lb = LbClient::from_config(lab.target().lb.as_ref().unwrap()).unwrap();
    let backends = until(&lb, "blue serving", |b| {
        b.len() == 4 && server(b, "node1").serving && server(b, "node2").serving
    })
    .await;
    let memberships: BTreeMap<_, _> = backends
        .iter()
        .map(|b| (b.server.as_str(), b.membership))
        .collect();
    assert_eq!(memberships["node3"], Membership::Maint);
    assert_eq!(memberships["node4"], Membership::Maint);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_rolling_through_haproxy_under_load_loses_no_read() {
    let Some(run) = rolling_through_haproxy("procedures/generic-rolling.toml").await else {
        return;
    };
    // The session saw HAProxy's state: a drained server at some point, all ready at the end.
    assert!(run.journal.events.iter().any(|e| matches!(
        &e.event,
        flightdeck::engine::event::Event::LbChanged { backends, .. }
            if backends.iter().any(|b| b.membership == Membership::Drain)
    )));
    run.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jahia_rolling_through_haproxy_under_load_loses_no_read() {
    // Asserts inside: completed, every node on the new version and serving, zero failed reads
    // through HAProxy's frontend.
    let Some(run) = rolling_through_haproxy("procedures/jahia-rolling.toml").await else {
        return;
    };
    let snap = run.lab.snapshot().await;
    assert!(snap.nodes.iter().all(|n| !n.read_only), "{snap:?}");
    run.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_migration_rolls_back_through_haproxy() {
    if !haproxy_or_skip() {
        return;
    }
    let mut cfg = haproxy_lab_config(Product::Generic, 3, 50);
    // node2 goes first (followers first); its migration fails at start.
    cfg.faults = vec!["fail-migration:node2".parse::<Fault>().unwrap()];
    let run = run_on_lab("procedures/generic-rolling.toml", cfg, yes_all_rollback()).await;
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
    // The undo of the drain put node2 back in HAProxy; its checks bring it up again.
    let lb = LbClient::from_config(run.lab.target().lb.as_ref().unwrap()).unwrap();
    until(&lb, "every server ready and serving again", |b| {
        b.len() == 3
            && b.iter()
                .all(|s| s.membership == Membership::Ready && s.serving)
    })
    .await;
    let snap = run.lab.snapshot().await;
    assert!(snap.nodes.iter().all(|n| n.version == "1.0.0"), "{snap:?}");
    assert_eq!(run.lab.traffic().await.failed_reads, 0);
    run.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_and_plan_with_lb_haproxy_start_a_haproxy_lab() {
    if !haproxy_or_skip() {
        return;
    }
    use flightdeck::commands::run::{start_lab, LabRequest};
    let req = LabRequest {
        nodes: Some(2),
        load: 0,
        lb: "haproxy",
        faults: &[],
        personality: None,
    };
    let procedure = std::path::Path::new("procedures/generic-rolling.toml");
    let (lab, path) = start_lab(procedure, &req, &None, &None).await.unwrap();
    let target = flightdeck::target_load::load_target(&path).unwrap();
    let lb_cfg = target.lb.unwrap();
    assert_eq!(lb_cfg.driver, "haproxy");
    assert_eq!(lb_cfg.address, lab.haproxy().unwrap().runtime_address());
    let lb = LbClient::from_config(&lb_cfg).unwrap();
    assert_eq!(lb.backends().await.unwrap().len(), 2);
    lab.shutdown().await;

    let bad = LabRequest { lb: "nginx", ..req };
    assert!(start_lab(procedure, &bad, &None, &None).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_products_readiness_path_passes_haproxys_checks() {
    if !haproxy_or_skip() {
        return;
    }
    for product in [
        Product::Generic,
        Product::Jahia,
        Product::Weaviate,
        Product::Neo4j,
        Product::Milvus,
    ] {
        let lab = lab(product, 2, 0).await;
        let cfg = std::fs::read_to_string(lab.haproxy().unwrap().config_path()).unwrap();
        // Neo4j's status endpoints ask for credentials: its checks send the lab's.
        let check = match product {
            Product::Neo4j => format!(
                "http-check send meth GET uri {} hdr Authorization \"Basic ",
                product.readiness_path()
            ),
            _ => format!("option httpchk GET {}", product.readiness_path()),
        };
        assert!(cfg.contains(&check), "{product}: {cfg}");
        let lb = LbClient::from_config(lab.target().lb.as_ref().unwrap()).unwrap();
        until(&lb, &format!("{product}: running nodes checked UP"), |b| {
            b.iter()
                .filter(|s| s.membership != Membership::Maint)
                .all(|s| s.serving && s.check.as_deref() == Some("L7OK"))
        })
        .await;
        lab.shutdown().await;
    }
}
