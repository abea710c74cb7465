//! Background observation of the cluster: target probes (per node or global), the load
//! balancer's view, and the lab's traffic counters. Concurrency is bounded by one semaphore;
//! every task lives in one `JoinSet` owned by the engine and dies with it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::check::{extract_facts, read_capped, run_check, BODY_CAP};
use super::event::TrafficWindow;
use super::strings::{fill_check, node_vars, Secrets};
use super::worker::WorkerMsg;
use crate::lb::LbClient;
use crate::target::{ProbeSpec, Target};

/// Checks in flight at once across all probes.
pub const MAX_CONCURRENT_CHECKS: usize = 16;

/// Ticks every `period` from `start`, the instant every poller of the session counts from:
/// pollers of the same period then fall due together and the runtime wakes once for all of
/// them, not once for each. A tick that comes late is not made up for (`Skip`): the next
/// one stays on the shared schedule. (`Delay`, which restarts the period from the late
/// tick, let a loaded machine spread a 5-node lab's dozen 1 s pollers over the second: a
/// dozen wake-ups a second where one does the same work.)
fn every(start: Instant, period: Duration) -> Interval {
    let mut tick = tokio::time::interval_at(start, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    tick
}

pub fn spawn_all(
    tasks: &mut JoinSet<()>,
    target: &Arc<Target>,
    secrets: &Arc<Secrets>,
    lb: Option<LbClient>,
    http: &reqwest::Client,
    tx: &mpsc::Sender<WorkerMsg>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_CHECKS));
    let start = Instant::now();
    for spec in target.probes.iter().filter(|p| p.interval_ms > 0) {
        if spec.per_node {
            for (i, node) in target.nodes.iter().enumerate() {
                let vars = node_vars(node, i);
                spawn_probe(
                    tasks,
                    start,
                    spec,
                    Some(node.name.clone()),
                    &vars,
                    secrets,
                    http,
                    &permits,
                    tx,
                );
            }
        } else {
            spawn_probe(
                tasks,
                start,
                spec,
                None,
                &Default::default(),
                secrets,
                http,
                &permits,
                tx,
            );
        }
    }
    if let (Some(lb), Some(cfg)) = (lb, target.lb.as_ref()) {
        let tx = tx.clone();
        let period = Duration::from_millis(cfg.interval_ms.max(100));
        tasks.spawn(async move {
            let mut tick = every(start, period);
            loop {
                tick.tick().await;
                let r = lb.backends().await.map_err(|e| e.to_string());
                if tx.send(WorkerMsg::Lb(r)).await.is_err() {
                    break;
                }
            }
        });
    }
    if let Some(traffic) = target.traffic.clone() {
        let tx = tx.clone();
        let http = http.clone();
        tasks.spawn(async move {
            let mut tick = every(start, Duration::from_millis(traffic.interval_ms.max(100)));
            loop {
                tick.tick().await;
                let Some(totals) = fetch_traffic(&http, &traffic.url).await else {
                    continue;
                };
                if tx.send(WorkerMsg::Traffic(totals)).await.is_err() {
                    break;
                }
            }
        });
    }
}

#[allow(clippy::too_many_arguments)]
fn spawn_probe(
    tasks: &mut JoinSet<()>,
    start: Instant,
    spec: &ProbeSpec,
    node: Option<String>,
    vars: &std::collections::BTreeMap<String, String>,
    secrets: &Arc<Secrets>,
    http: &reqwest::Client,
    permits: &Arc<Semaphore>,
    tx: &mpsc::Sender<WorkerMsg>,
) {
    let check = fill_check(&spec.check, vars);
    let resolved = secrets.resolve_check(&check);
    let name = spec.name.clone();
    let facts = spec.facts.clone();
    let period = Duration::from_millis(spec.interval_ms.max(100));
    let (http, permits, tx, secrets) = (http.clone(), permits.clone(), tx.clone(), secrets.clone());
    tasks.spawn(async move {
        let mut tick = every(start, period);
        loop {
            tick.tick().await;
            let msg = match &resolved {
                Err(why) => WorkerMsg::Probe {
                    probe: name.clone(),
                    node: node.clone(),
                    ok: false,
                    latency_ms: 0,
                    detail: why.clone(),
                    facts: Default::default(),
                    sent: Instant::now(),
                },
                Ok(check) => {
                    let Ok(_permit) = permits.acquire().await else {
                        break;
                    };
                    let sent = Instant::now();
                    let r = run_check(check, &http, &secrets).await;
                    let facts = r
                        .json
                        .as_ref()
                        .map(|doc| extract_facts(doc, &facts))
                        .unwrap_or_default();
                    WorkerMsg::Probe {
                        probe: name.clone(),
                        node: node.clone(),
                        ok: r.ok,
                        latency_ms: r.latency_ms,
                        detail: secrets.redact(&r.detail),
                        facts,
                        sent,
                    }
                }
            };
            if tx.send(msg).await.is_err() {
                break;
            }
        }
    });
}

/// The lab's counters: `{"total": {reads_ok, reads_failed, writes_ok, writes_rejected,
/// writes_failed}}`. Anything else is ignored (a real cluster has no such endpoint).
async fn fetch_traffic(http: &reqwest::Client, url: &str) -> Option<TrafficWindow> {
    let resp = http
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    // Capped like every body read from a product: an endpoint answering without end must not
    // fill the session's memory. A body cut short is no answer.
    let (body, cut) = read_capped(resp, BODY_CAP).await.ok()?;
    if cut {
        return None;
    }
    let doc: serde_json::Value = serde_json::from_slice(&body).ok()?;
    serde_json::from_value(doc.get("total")?.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serve `body` once as JSON over HTTP on a free local port; its URL.
    async fn serve_once(body: String) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/_lab/traffic", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes()).await;
        });
        url
    }

    /// The lab's counters are read; a body past the cap is not read whole (it was, any size).
    #[tokio::test]
    async fn traffic_counters_are_read_from_a_body_within_the_cap_only() {
        let http = super::super::check::http_client();
        let total = r#"{"reads_ok":5,"reads_failed":1,"writes_ok":2,"writes_rejected":0,"writes_failed":0}"#;
        let url = serve_once(format!(r#"{{"total":{total}}}"#)).await;
        let got = fetch_traffic(&http, &url).await.expect("read");
        assert_eq!((got.reads_ok, got.reads_failed), (5, 1));
        let pad = "x".repeat(BODY_CAP);
        let url = serve_once(format!(r#"{{"total":{total},"pad":"{pad}"}}"#)).await;
        assert_eq!(fetch_traffic(&http, &url).await, None);
    }
}
