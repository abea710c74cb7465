//! The load generator: reads and writes (about 80/20) through the balancer's frontend at a
//! fixed rate with bounded concurrency, counted per second and in total.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Outcomes of the generated requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficCounts {
    pub ok_reads: u64,
    pub failed_reads: u64,
    pub ok_writes: u64,
    /// Writes refused because the cluster is read-only (503 `read-only`): expected, not a
    /// failure.
    pub rejected_writes: u64,
    pub failed_writes: u64,
}

impl TrafficCounts {
    pub fn failed(&self) -> u64 {
        self.failed_reads + self.failed_writes
    }
}

/// `GET {admin}/_lab/traffic`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficReport {
    pub total: TrafficCounts,
    /// The last complete second.
    pub last_second: TrafficCounts,
    /// The configured rate.
    pub rps: u32,
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    OkRead,
    FailedRead,
    OkWrite,
    RejectedWrite,
    FailedWrite,
}

fn bump(c: &mut TrafficCounts, o: Outcome) {
    match o {
        Outcome::OkRead => c.ok_reads += 1,
        Outcome::FailedRead => c.failed_reads += 1,
        Outcome::OkWrite => c.ok_writes += 1,
        Outcome::RejectedWrite => c.rejected_writes += 1,
        Outcome::FailedWrite => c.failed_writes += 1,
    }
}

#[derive(Debug)]
struct Window {
    total: TrafficCounts,
    current: TrafficCounts,
    current_start: Instant,
    last: TrafficCounts,
}

impl Window {
    fn roll(&mut self) {
        let elapsed = self.current_start.elapsed();
        if elapsed < Duration::from_secs(1) {
            return;
        }
        self.last = if elapsed < Duration::from_secs(2) {
            self.current
        } else {
            TrafficCounts::default()
        };
        self.current = TrafficCounts::default();
        self.current_start += Duration::from_secs(elapsed.as_secs());
    }
}

#[derive(Debug)]
pub(crate) struct TrafficStats {
    rps: u32,
    window: Mutex<Window>,
}

impl TrafficStats {
    pub fn new(rps: u32) -> Self {
        TrafficStats {
            rps,
            window: Mutex::new(Window {
                total: TrafficCounts::default(),
                current: TrafficCounts::default(),
                current_start: Instant::now(),
                last: TrafficCounts::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, o: Outcome) {
        let mut w = self.lock();
        w.roll();
        bump(&mut w.total, o);
        bump(&mut w.current, o);
    }

    pub fn report(&self) -> TrafficReport {
        let mut w = self.lock();
        w.roll();
        TrafficReport {
            total: w.total,
            last_second: w.last,
            rps: self.rps,
        }
    }
}

/// Most requests in flight at once: a stuck cluster must not pile up tasks.
const MAX_IN_FLIGHT: usize = 64;
const KEYS: u64 = 20;

/// Sends `rps` requests per second to `frontend` until aborted.
pub(crate) async fn run(
    frontend: SocketAddr,
    rps: u32,
    stats: Arc<TrafficStats>,
    client: reqwest::Client,
) {
    let period = Duration::from_secs(1) / rps.max(1);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut in_flight = JoinSet::new();
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        while in_flight.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        n += 1;
        let write = n.is_multiple_of(5);
        let url = format!("http://{frontend}/kv/k{}", n % KEYS);
        let client = client.clone();
        let stats = stats.clone();
        in_flight.spawn(async move {
            let _permit = permit;
            let outcome = if write {
                let r = client
                    .put(&url)
                    .body(format!("v{n}"))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => Outcome::OkWrite,
                    Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                        match r.text().await {
                            Ok(body) if body == "read-only" => Outcome::RejectedWrite,
                            _ => Outcome::FailedWrite,
                        }
                    }
                    _ => Outcome::FailedWrite,
                }
            } else {
                let r = client
                    .get(&url)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() || r.status().as_u16() == 404 => {
                        Outcome::OkRead
                    }
                    _ => Outcome::FailedRead,
                }
            };
            stats.record(outcome);
        });
    }
}
