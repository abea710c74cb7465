//! Running a procedure against a lab behind a real HAProxy (`LbKind::Haproxy`), with the skip
//! rule of the HAProxy tests: skipped with a note without haproxy, a failure under `CI=true`.

use std::path::Path;
use std::time::{Duration, Instant};

use flightdeck::engine::event::Outcome;
use flightdeck::engine::state::Mode;
use flightdeck::lab::{LabConfig, LbKind, Product, Timing};
use flightdeck::lb::haproxy::{haproxy_available, HaproxyError};
use flightdeck::procedure::load::load_procedure;

use super::{run_on_lab, yes_all, LabRun};

/// Whether a HAProxy test can run. Without haproxy it is skipped with a note, except under
/// `CI=true` where a missing haproxy is a failure: CI must not go green by skipping everything.
pub fn haproxy_or_skip() -> bool {
    if haproxy_available() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true requires haproxy: {}", HaproxyError::NotInstalled);
    }
    println!("skipped: haproxy not installed (apt-get install haproxy)");
    false
}

/// A fast lab of `nodes` nodes of `product` behind HAProxy, under `load_rps` of traffic.
pub fn haproxy_lab_config(product: Product, nodes: usize, load_rps: u32) -> LabConfig {
    let mut cfg = LabConfig::new(product, nodes, Timing::fast());
    cfg.lb = LbKind::Haproxy;
    cfg.load_rps = load_rps;
    cfg
}

/// The product a procedure file is written for.
pub fn product_of(procedure: &str) -> Product {
    load_procedure(Path::new(procedure))
        .expect("procedure loads")
        .procedure
        .product
        .parse()
        .expect("a lab product")
}

/// Runs `procedure` (every step confirmed) against a 3-node lab of its product behind HAProxy
/// at 100 requests per second, and asserts that it completed with every node on the
/// procedure's target version, every server back in HAProxy and serving, and not one read
/// failing through HAProxy's frontend. Hands the run back (lab still up) for more assertions;
/// `None` when skipped.
pub async fn rolling_through_haproxy(procedure: &str) -> Option<LabRun> {
    if !haproxy_or_skip() {
        return None;
    }
    let cfg = haproxy_lab_config(product_of(procedure), 3, 100);
    let run = run_on_lab(procedure, cfg, yes_all()).await;
    assert!(run.end.ok, "{}\n{}", run.end.summary, run.output);
    assert_eq!(run.state.mode, Mode::Finished(Outcome::Completed));
    assert_eq!(
        run.state.lb_driver.as_deref(),
        Some("haproxy"),
        "the session did not drive HAProxy"
    );
    let snap = run.lab.snapshot().await;
    let to = run.state.plan.to_version.clone().expect("a target version");
    for n in &snap.nodes {
        assert_eq!(n.version, to, "{} not upgraded", n.name);
    }
    // The last `ready` is done; HAProxy may need a check or two more to see the node rise.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let snap = run.lab.snapshot().await;
        if !snap.backends.is_empty() && snap.backends.iter().all(|b| b.serving) {
            break;
        }
        assert!(Instant::now() < deadline, "not all serving: {snap:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let traffic = run.lab.traffic().await;
    assert!(traffic.ok_reads > 0, "no read went through HAProxy");
    assert_eq!(traffic.failed_reads, 0, "{traffic:?}\n{}", run.output);
    Some(run)
}
