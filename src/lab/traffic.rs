//! The load generator: reads and writes (about 80/20) through the balancer's frontend at a
//! fixed rate with bounded concurrency, counted per second and in total.
//!
//! On a product that keeps HTTP sessions (Jahia), the requests come from a few users, each
//! with a session cookie for [`SESSION_REQUESTS`] requests before logging out; a user whose
//! session the cluster forgot (the node holding it stopped) is handed a new one, and that is
//! counted as a lost session: on a real Jahia the user is logged out and loses what the
//! session held.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::session_cookie;

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
    /// Users whose session was gone when their next request came (a new session handed out
    /// instead of theirs): logged out.
    #[serde(default)]
    pub lost_sessions: u64,
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
    LostSession,
}

fn bump(c: &mut TrafficCounts, o: Outcome) {
    match o {
        Outcome::OkRead => c.ok_reads += 1,
        Outcome::FailedRead => c.failed_reads += 1,
        Outcome::OkWrite => c.ok_writes += 1,
        Outcome::RejectedWrite => c.rejected_writes += 1,
        Outcome::FailedWrite => c.failed_writes += 1,
        Outcome::LostSession => c.lost_sessions += 1,
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
/// Users browsing with a session, when the product keeps them.
const USERS: usize = 8;
/// Requests a user makes in one session before logging out.
pub(crate) const SESSION_REQUESTS: u32 = 10;

/// One user's session, as its browser holds it.
#[derive(Debug, Default)]
struct User {
    cookie: Option<String>,
    /// Requests left before the user logs out.
    left: u32,
    /// A request of this user is in flight (a user clicks one thing at a time).
    busy: bool,
}

/// What a user sends next.
enum Next {
    Logout(String),
    Request(Option<String>),
}

/// The users of a product with sessions, or none.
#[derive(Debug, Clone)]
struct Users(Arc<Mutex<Vec<User>>>);

impl Users {
    fn lock(&self) -> MutexGuard<'_, Vec<User>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first idle user from `n` on, marked busy, and what it sends.
    fn take(&self, n: u64) -> Option<(usize, Next)> {
        let mut users = self.lock();
        let len = users.len();
        let start = usize::try_from(n).unwrap_or(0) % len.max(1);
        let i = (0..len)
            .map(|k| (start + k) % len)
            .find(|&i| !users[i].busy)?;
        let u = &mut users[i];
        u.busy = true;
        let next = match &u.cookie {
            Some(c) if u.left == 0 => Next::Logout(c.clone()),
            c => Next::Request(c.clone()),
        };
        Some((i, next))
    }

    fn logged_out(&self, i: usize) {
        if let Some(u) = self.lock().get_mut(i) {
            u.cookie = None;
            u.busy = false;
        }
    }

    /// The answer to user `i`'s request sent with `sent`: true when the session was lost (the
    /// server handed out another one).
    fn answered(&self, i: usize, sent: Option<&str>, set: Option<String>) -> bool {
        let mut users = self.lock();
        let Some(u) = users.get_mut(i) else {
            return false;
        };
        u.busy = false;
        match set.filter(|s| !s.is_empty()) {
            Some(new) => {
                let lost = sent.is_some_and(|old| old != new);
                u.cookie = Some(new);
                u.left = SESSION_REQUESTS.saturating_sub(1);
                lost
            }
            None => {
                if u.cookie.is_some() {
                    u.left = u.left.saturating_sub(1);
                }
                false
            }
        }
    }

    fn done(&self, i: usize) {
        if let Some(u) = self.lock().get_mut(i) {
            u.busy = false;
        }
    }
}

/// Sends `rps` requests per second to `frontend` until aborted; with `sessions`, as users
/// holding session cookies.
pub(crate) async fn run(
    frontend: SocketAddr,
    rps: u32,
    sessions: bool,
    stats: Arc<TrafficStats>,
    client: reqwest::Client,
) {
    let period = Duration::from_secs(1) / rps.max(1);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let users = sessions.then(|| {
        Users(Arc::new(Mutex::new(
            (0..USERS).map(|_| User::default()).collect(),
        )))
    });
    let mut in_flight = JoinSet::new();
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        while in_flight.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        n += 1;
        let user = match &users {
            Some(u) => match u.take(n) {
                Some((i, next)) => Some((u.clone(), i, next)),
                // Every user is waiting for an answer.
                None => continue,
            },
            None => None,
        };
        let write = n.is_multiple_of(5);
        let url = format!("http://{frontend}/kv/k{}", n % KEYS);
        let client = client.clone();
        let stats = stats.clone();
        in_flight.spawn(async move {
            let _permit = permit;
            let cookie = match &user {
                Some((users, i, Next::Logout(c))) => {
                    let _ = client
                        .get(format!("http://{frontend}/cms/logout"))
                        .header(reqwest::header::COOKIE, session_cookie::request_header(c))
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    users.logged_out(*i);
                    return;
                }
                Some((_, _, Next::Request(c))) => c.clone(),
                None => None,
            };
            let with_cookie = |req: reqwest::RequestBuilder| match &cookie {
                Some(c) => req.header(reqwest::header::COOKIE, session_cookie::request_header(c)),
                None => req,
            };
            let sent = if write {
                with_cookie(client.put(&url).body(format!("v{n}")))
            } else {
                with_cookie(client.get(&url))
            }
            .timeout(Duration::from_secs(10))
            .send()
            .await;
            if let Some((users, i, _)) = &user {
                let lost = match &sent {
                    Ok(r) => {
                        users.answered(*i, cookie.as_deref(), session_cookie::set_by(r.headers()))
                    }
                    Err(_) => {
                        users.done(*i);
                        false
                    }
                };
                if lost {
                    stats.record(Outcome::LostSession);
                }
            }
            let outcome = if write {
                match sent {
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
                match sent {
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
