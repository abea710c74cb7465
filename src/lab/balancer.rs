//! The embedded load balancer: a reverse proxy on loopback with HAProxy's essentials —
//! per-server membership (ready/drain/maint), active health checks with rise/fall 2,
//! round-robin over servers that are ready and UP, and one retry of a failed idempotent
//! request on another server (`retries` + `option redispatch`).
//!
//! Session persistence on the application's cookie, as a Jahia cluster's HAProxy is set up
//! (Jahia keeps its HTTP sessions in each node's memory; HAProxy 2.6 configuration.txt,
//! `stick store-response` / `stick on`: `stick-table type string ...`,
//! `stick store-response res.cook(JSESSIONID)`, `stick on req.cook(JSESSIONID)`): a response
//! that sets `JSESSIONID` pins the session to its server, and the session's later requests go
//! there while the server is UP and `ready` **or `drain`** (HAProxy 2.6 management.txt,
//! `set server ... state drain`: out of balancing, "still accepts persistent connections"),
//! elsewhere when it is down or in maintenance (`option redispatch`). A backend's `sessions`
//! (what a drain waits for, HAProxy's `scur`) are its requests in flight plus the sessions
//! pinned to it: the users a stop would cut off. A pin ends when the application expires the
//! cookie (the lab's Jahia logout) or pins the session elsewhere.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::session_cookie;
use crate::lb::Backend;
use crate::procedure::model::Membership;

/// Consecutive check results that flip a server's health.
const RISE: u32 = 2;
const FALL: u32 = 2;
const MAX_BODY: usize = 4 << 20;
/// Stick-table entries kept at most (`stick-table ... size`): past it the table starts over.
const MAX_PINS: usize = 10_000;

#[derive(Debug)]
struct Server {
    name: String,
    addr: SocketAddr,
    membership: Membership,
    weight: Option<u16>,
    up: bool,
    rise: u32,
    fall: u32,
    check: String,
    in_flight: u64,
    requests: u64,
}

impl Server {
    fn serving(&self) -> bool {
        self.membership == Membership::Ready && self.up && self.weight != Some(0)
    }

    /// Takes the requests of a session pinned to it: UP and ready or draining.
    fn persistent(&self) -> bool {
        self.up && matches!(self.membership, Membership::Ready | Membership::Drain)
    }
}

#[derive(Debug)]
pub(crate) struct Balancer {
    servers: Mutex<Vec<Server>>,
    /// The stick table: session cookie -> server index.
    pins: Mutex<BTreeMap<String, usize>>,
    next: AtomicUsize,
    ready_path: String,
    /// An `Authorization` value the health checks send (Neo4j's status endpoints ask for
    /// credentials, as a real HAProxy check sends them with `http-check send hdr`).
    check_auth: Option<String>,
    interval: Duration,
    client: reqwest::Client,
}

impl Balancer {
    /// `servers`: name, address, initial membership, initially UP.
    pub fn new(
        servers: Vec<(String, SocketAddr, Membership, bool)>,
        ready_path: &str,
        interval: Duration,
        client: reqwest::Client,
    ) -> Self {
        let servers = servers
            .into_iter()
            .map(|(name, addr, membership, up)| Server {
                name,
                addr,
                membership,
                weight: None,
                up,
                rise: 0,
                fall: 0,
                check: if up { "L7OK" } else { "L7STS" }.into(),
                in_flight: 0,
                requests: 0,
            })
            .collect();
        Balancer {
            servers: Mutex::new(servers),
            pins: Mutex::new(BTreeMap::new()),
            next: AtomicUsize::new(0),
            ready_path: ready_path.to_string(),
            check_auth: None,
            interval,
            client,
        }
    }

    /// The health checks send `Authorization: value`.
    pub fn with_check_auth(mut self, value: Option<String>) -> Self {
        self.check_auth = value;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Server>> {
        self.servers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pins(&self) -> MutexGuard<'_, BTreeMap<String, usize>> {
        self.pins.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn backends(&self) -> Vec<Backend> {
        let mut pinned: BTreeMap<usize, u64> = BTreeMap::new();
        for i in self.pins().values() {
            *pinned.entry(*i).or_default() += 1;
        }
        self.lock()
            .iter()
            .enumerate()
            .map(|(i, s)| Backend {
                server: s.name.clone(),
                node: Some(s.name.clone()),
                membership: s.membership,
                health: match (s.membership, s.up) {
                    (Membership::Maint, _) => "MAINT".into(),
                    (_, true) => "UP".into(),
                    (_, false) => "DOWN".into(),
                },
                serving: s.serving(),
                // A server that is down holds no connection: its pinned users are cut off.
                sessions: Some(
                    s.in_flight
                        + if s.up {
                            pinned.get(&i).copied().unwrap_or(0)
                        } else {
                            0
                        },
                ),
                weight: s.weight,
                check: (s.membership != Membership::Maint).then(|| s.check.clone()),
            })
            .collect()
    }

    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.lock()
            .iter()
            .map(|s| (s.name.clone(), s.requests))
            .collect()
    }

    /// False when there is no such server.
    pub fn set_membership(&self, server: &str, state: Membership, weight: Option<u16>) -> bool {
        let mut servers = self.lock();
        let Some(s) = servers.iter_mut().find(|s| s.name == server) else {
            return false;
        };
        if s.membership == Membership::Maint && state != Membership::Maint {
            // Back from maintenance the server must prove itself again, like HAProxy.
            s.up = false;
            s.rise = 0;
            s.fall = 0;
            s.check = "INI".into();
        }
        s.membership = state;
        if weight.is_some() {
            s.weight = weight;
        }
        true
    }

    /// The next serving server in round-robin order, other than `exclude`.
    fn pick(&self, exclude: Option<usize>) -> Option<(usize, SocketAddr)> {
        let mut servers = self.lock();
        let n = servers.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let i = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| Some(i) != exclude && servers[i].serving())?;
        servers[i].in_flight += 1;
        servers[i].requests += 1;
        Some((i, servers[i].addr))
    }

    /// The server a session is pinned to, if it takes the session's requests now.
    fn pick_pinned(&self, session: &str) -> Option<(usize, SocketAddr)> {
        let i = *self.pins().get(session)?;
        let mut servers = self.lock();
        let s = servers.get_mut(i).filter(|s| s.persistent())?;
        s.in_flight += 1;
        s.requests += 1;
        Some((i, s.addr))
    }

    /// `stick store-response`: what server `i` answered about the request's session `sent`.
    fn learn(&self, i: usize, sent: Option<&str>, set: Option<&str>) {
        let mut pins = self.pins();
        match set {
            // The application expired the cookie (a logout): the pin goes with it.
            Some("") => {
                if let Some(old) = sent {
                    pins.remove(old);
                }
            }
            Some(new) => {
                if let Some(old) = sent.filter(|old| *old != new) {
                    pins.remove(old);
                }
                if pins.len() >= MAX_PINS && !pins.contains_key(new) {
                    pins.clear();
                }
                pins.insert(new.to_string(), i);
            }
            None => {}
        }
    }

    fn done(&self, i: usize) {
        if let Some(s) = self.lock().get_mut(i) {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
    }

    pub fn frontend_router(self: Arc<Self>) -> Router {
        Router::new().fallback(proxy).with_state(self)
    }

    /// Health checks every interval, until the task is aborted.
    pub async fn run_checks(self: Arc<Self>) {
        // A late tick is neither made up for nor moves the schedule: the rounds stay on one
        // beat, so an idle lab wakes once a period for them, not at a drifting time.
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let timeout = (self.interval * 5).max(Duration::from_millis(500));
        loop {
            tick.tick().await;
            let targets: Vec<(String, SocketAddr)> = self
                .lock()
                .iter()
                .filter(|s| s.membership != Membership::Maint)
                .map(|s| (s.name.clone(), s.addr))
                .collect();
            let checks = targets.into_iter().map(|(name, addr)| {
                let url = format!("http://{addr}{}", self.ready_path);
                let mut req = self.client.get(url).timeout(timeout);
                if let Some(auth) = &self.check_auth {
                    req = req.header(reqwest::header::AUTHORIZATION, auth);
                }
                let req = req.send();
                async move {
                    let verdict = match req.await {
                        Ok(r) if r.status().is_success() => (true, "L7OK".to_string()),
                        Ok(r) => (false, format!("L7STS/{}", r.status().as_u16())),
                        Err(e) if e.is_timeout() => (false, "L7TOUT".to_string()),
                        Err(_) => (false, "L4CON".to_string()),
                    };
                    (name, verdict)
                }
            });
            let results = futures::future::join_all(checks).await;
            let mut servers = self.lock();
            for (name, (ok, check)) in results {
                let Some(s) = servers.iter_mut().find(|s| s.name == name) else {
                    continue;
                };
                if s.membership == Membership::Maint {
                    continue;
                }
                s.check = check;
                if ok {
                    s.fall = 0;
                    s.rise += 1;
                    if !s.up && s.rise >= RISE {
                        s.up = true;
                    }
                } else {
                    s.rise = 0;
                    s.fall += 1;
                    if s.up && s.fall >= FALL {
                        s.up = false;
                    }
                }
            }
        }
    }

    async fn forward(
        &self,
        addr: SocketAddr,
        method: &Method,
        path: &str,
        headers: &[(&'static str, HeaderValue)],
        body: &Bytes,
    ) -> Result<Forwarded, String> {
        let method =
            reqwest::Method::from_bytes(method.as_str().as_bytes()).map_err(|e| e.to_string())?;
        let mut req = self
            .client
            .request(method, format!("http://{addr}{path}"))
            .timeout(Duration::from_secs(30))
            .body(body.clone());
        for (name, value) in headers {
            if let Ok(v) = value.to_str() {
                req = req.header(*name, v);
            }
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = StatusCode::from_u16(resp.status().as_u16()).map_err(|e| e.to_string())?;
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| HeaderValue::from_str(v).ok());
        let set_cookie: Vec<HeaderValue> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
            .collect();
        let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
        Ok(Forwarded {
            status,
            content_type: ct,
            set_cookie,
            body: bytes,
        })
    }
}

/// A backend's answer, as the proxy passes it on.
struct Forwarded {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    set_cookie: Vec<HeaderValue>,
    body: Bytes,
}

async fn proxy(State(lb): State<Arc<Balancer>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let session = session_cookie::sent(req.headers());
    // What a reverse proxy passes on: the body's type, the client's credentials (Neo4j
    // asks for them on every endpoint a procedure reads through the balancer) and cookies.
    let headers: Vec<(&'static str, HeaderValue)> = ["content-type", "authorization", "cookie"]
        .into_iter()
        .filter_map(|name| req.headers().get(name).map(|v| (name, v.clone())))
        .collect();
    let body = match to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("bad request body: {e}")).into_response()
        }
    };
    let idempotent = method == Method::GET || method == Method::HEAD;
    let pinned = session.as_deref().and_then(|s| lb.pick_pinned(s));
    let Some((first, addr)) = pinned.or_else(|| lb.pick(None)) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no ready backend").into_response();
    };
    let mut result = lb.forward(addr, &method, &path, &headers, &body).await;
    lb.done(first);
    let mut answered_by = first;
    let failed = match &result {
        Err(_) => true,
        Ok(f) => f.status.is_server_error(),
    };
    if idempotent && failed {
        if let Some((second, addr)) = lb.pick(Some(first)) {
            result = lb.forward(addr, &method, &path, &headers, &body).await;
            lb.done(second);
            answered_by = second;
        }
    }
    match result {
        Ok(f) => {
            lb.learn(
                answered_by,
                session.as_deref(),
                session_cookie::set(&f.set_cookie).as_deref(),
            );
            let mut resp = Response::new(Body::from(f.body));
            *resp.status_mut() = f.status;
            if let Some(ct) = f.content_type {
                resp.headers_mut().insert("content-type", ct);
            }
            for v in f.set_cookie {
                resp.headers_mut().append("set-cookie", v);
            }
            resp
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("backend error: {e}")).into_response(),
    }
}
