//! The lab: a built-in training cluster on loopback. Real HTTP servers (one per node) speaking
//! the product's shapes, an embedded load balancer, a traffic generator and staged faults, all
//! in this process, plus the target file that lets any procedure drive it.
//!
//! Layout: [`config`] (what to build), [`node`] (the cluster state machine), [`store`] (the
//! on-disk key-value stores and backups), [`personality`] (each node's HTTP routes per
//! product), [`admin`] (the `/_lab/` admin API), [`balancer`] (the embedded reverse proxy;
//! with [`LbKind::Haproxy`] a real HAProxy started by the lab takes its place),
//! [`traffic`] (the load generator), [`session_cookie`] (Tomcat's `JSESSIONID`, which the
//! balancer, the generator and the Jahia nodes share), [`faults`] (and [`staging`]: faults
//! staged for a step of a run), [`neo4j_auth`] (Neo4j's HTTP authentication, which the lab's Neo4j enforces),
//! [`target_out`] (the target it writes) and [`cli`] (`flightdeck lab`).
//!
//! A stopped or failed node keeps its listener (its `/_lab/` admin routes are how it gets
//! started again): its product and data-plane endpoints answer 503 (milvus: 500) instead, and
//! `/_lab/status` reports the state. Only [`Lab::shutdown`] closes the ports.

pub mod admin;
pub mod balancer;
pub mod cli;
pub mod config;
pub mod data;
pub mod faults;
pub mod neo4j_auth;
pub mod neo4j_ops;
pub mod node;
pub mod personality;
mod product_ops;
mod session_cookie;
pub mod stack;
pub mod staging;
pub mod store;
pub mod target_out;
pub mod target_seeds;
pub mod traffic;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{LabConfig, LbKind, Product, Timing};
pub use faults::Fault;
pub use node::{NodeSnapshot, RunState};
pub use traffic::{TrafficCounts, TrafficReport};

use crate::lb::haproxy::{Haproxy, HaproxyError, HaproxyProcess};
use crate::lb::{Backend, LbError};
use crate::procedure::model::Membership;
use crate::target::Target;
use balancer::Balancer;
use node::{Cluster, NodeSpec};
use traffic::TrafficStats;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("lab configuration: {0}")]
    Config(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on loopback: {0}")]
    Bind(std::io::Error),
    #[error("lab store: {0}")]
    Store(String),
    #[error("lab target: {0}")]
    Target(String),
    #[error("http client: {0}")]
    Http(String),
    #[error("lab HAProxy: {0}")]
    Haproxy(#[from] HaproxyError),
    #[error("lab HAProxy: {0}")]
    Lb(#[from] LbError),
}

/// A reqwest client for the lab and its drivers. reqwest is built without a TLS crypto
/// provider, so one (ring) is installed process-wide first.
pub fn http_client() -> Result<reqwest::Client, LabError> {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // Err only means another provider was installed first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| LabError::Http(e.to_string()))
}

/// Everything about a running lab, for tests to assert on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabSnapshot {
    pub product: Product,
    pub nodes: Vec<NodeSnapshot>,
    pub backends: Vec<Backend>,
    /// Requests the balancer sent to each server (embedded balancer only; empty with HAProxy).
    pub lb_requests: BTreeMap<String, u64>,
    pub faults: Vec<Fault>,
    /// Why `backends` is empty when the balancer could not be asked (HAProxy unreachable).
    #[serde(default)]
    pub lb_error: Option<String>,
    /// The data personality the lab plays (then `product` is the generic machinery under it).
    #[serde(default)]
    pub personality: Option<String>,
}

impl LabSnapshot {
    pub fn node(&self, name: &str) -> Option<&NodeSnapshot> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// The balancer in front of the nodes, as the admin API sees it.
#[derive(Clone)]
pub(crate) enum LabLb {
    Embedded(Arc<Balancer>),
    /// The driver for the lab's own HAProxy; server names are the node names.
    Haproxy(Haproxy),
}

impl LabLb {
    pub async fn backends(&self) -> Result<Vec<Backend>, LbError> {
        match self {
            LabLb::Embedded(b) => Ok(b.backends()),
            LabLb::Haproxy(h) => h.backends().await,
        }
    }

    /// `UnknownServer` when there is no such server.
    pub async fn set_membership(
        &self,
        server: &str,
        state: Membership,
        weight: Option<u16>,
    ) -> Result<(), LbError> {
        match self {
            LabLb::Embedded(b) => b
                .set_membership(server, state, weight)
                .then_some(())
                .ok_or_else(|| LbError::UnknownServer(server.to_string())),
            LabLb::Haproxy(h) => h.set_membership(server, state, weight).await,
        }
    }
}

/// Shared by the cluster-level admin server.
#[derive(Clone)]
pub(crate) struct LabShared {
    pub cluster: Arc<Cluster>,
    pub lb: LabLb,
    pub traffic: Arc<TrafficStats>,
}

impl LabShared {
    pub async fn snapshot(&self) -> LabSnapshot {
        let (backends, lb_error) = match self.lb.backends().await {
            Ok(b) => (b, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let lb_requests = match &self.lb {
            LabLb::Embedded(b) => b.request_counts(),
            LabLb::Haproxy(_) => BTreeMap::new(),
        };
        LabSnapshot {
            product: self.cluster.product,
            nodes: self.cluster.snapshot_all(),
            backends,
            lb_requests,
            faults: self.cluster.list_faults(),
            lb_error,
            personality: self.cluster.personality().map(|p| p.name().to_string()),
        }
    }
}

/// A running lab. Dropping it without [`Lab::shutdown`] leaves its tasks to the runtime.
pub struct Lab {
    shared: LabShared,
    target: Target,
    frontend: SocketAddr,
    admin: SocketAddr,
    /// The lab's own HAProxy, with [`LbKind::Haproxy`].
    haproxy: Option<HaproxyProcess>,
    stop_tx: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
    /// A data directory the lab created for itself, removed at shutdown.
    temp_dir: Option<PathBuf>,
}

impl Lab {
    pub async fn start(cfg: LabConfig) -> Result<Lab, LabError> {
        if cfg.nodes == 0 || cfg.nodes > config::MAX_NODES {
            return Err(LabError::Config(format!(
                "a lab has 1 to {} nodes, not {}",
                config::MAX_NODES,
                cfg.nodes
            )));
        }
        let product = cfg.product;
        let (default_from, default_to) = match &cfg.personality {
            Some(p) => (
                p.spec.product.version.clone(),
                p.spec.product.to_version.clone(),
            ),
            None => (
                product.default_version().to_string(),
                product.default_to_version().to_string(),
            ),
        };
        let version = cfg.version.clone().unwrap_or(default_from);
        let to_version = cfg.to_version.clone().unwrap_or(default_to);
        config::store_format(&version)?;
        config::store_format(&to_version)?;

        let (data_dir, temp_dir) = match &cfg.data_dir {
            Some(d) => (d.clone(), None),
            None => {
                let d = fresh_temp_dir();
                (d.clone(), Some(d))
            }
        };
        std::fs::create_dir_all(&data_dir).map_err(|e| LabError::Io {
            path: data_dir.clone(),
            source: e,
        })?;

        let result = Self::build(cfg, version, to_version, data_dir, temp_dir.clone()).await;
        if let (Err(_), Some(dir)) = (&result, &temp_dir) {
            // Nothing of a lab that did not start is worth keeping.
            let _ = std::fs::remove_dir_all(dir);
        }
        result
    }

    async fn build(
        cfg: LabConfig,
        version: String,
        to_version: String,
        data_dir: PathBuf,
        temp_dir: Option<PathBuf>,
    ) -> Result<Lab, LabError> {
        let product = cfg.product;
        let groups: Vec<Option<&str>> = if product == Product::Neo4j {
            vec![Some("blue"), Some("green")]
        } else {
            vec![None]
        };
        let names = cfg.node_names();
        let mut specs = Vec::new();
        let mut listeners = Vec::new();
        for (gi, group) in groups.iter().enumerate() {
            for i in 0..cfg.nodes {
                let listener = bind().await?;
                let addr = listener.local_addr().map_err(LabError::Bind)?;
                listeners.push(listener);
                let green = *group == Some("green");
                let base_role = match (product, i) {
                    (Product::Jahia, 0) => "processing",
                    (Product::Jahia, _) => "member",
                    (_, 0) => "leader",
                    _ => "follower",
                };
                let seed = if green {
                    BTreeMap::new()
                } else {
                    BTreeMap::from([("lab".to_string(), cfg.product_name())])
                };
                specs.push(NodeSpec {
                    name: names[gi * cfg.nodes + i].clone(),
                    group: group.map(str::to_string),
                    addr,
                    version: if green { &to_version } else { &version }.clone(),
                    base_role: base_role.into(),
                    running: !green,
                    seed,
                });
            }
        }
        // Everything fallible happens before the first task is spawned, so an error leaves
        // nothing running behind.
        for f in &cfg.faults {
            if let Some(n) = f.node().filter(|n| !names.iter().any(|m| m == n)) {
                return Err(LabError::Config(format!("fault {f}: no node named {n:?}")));
            }
        }
        let admin_listener = bind().await?;
        let admin = admin_listener.local_addr().map_err(LabError::Bind)?;
        let client = http_client()?;
        let maint: Vec<bool> = specs.iter().map(|s| !s.running).collect();
        let backend_servers: Vec<(String, SocketAddr)> =
            specs.iter().map(|s| (s.name.clone(), s.addr)).collect();
        let haproxy_dir = data_dir.join("haproxy");
        let mut cluster = Cluster::new(product, cfg.timing, data_dir, specs)?;
        if let Some(factor) = cfg.replication_factor {
            cluster
                .set_replication_factor(factor)
                .map_err(|e| LabError::Config(format!("--replication-factor {factor}: {e}")))?;
        }
        if let Some(p) = &cfg.personality {
            cluster.set_personality(node::DataRuntime {
                personality: p.clone(),
                from_version: version.clone(),
                to_version: to_version.clone(),
            });
        }
        let cluster = Arc::new(cluster);
        let readiness_path = match &cfg.personality {
            Some(p) => p.spec.product.readiness.clone(),
            None => product.readiness_path().to_string(),
        };
        for f in &cfg.faults {
            cluster
                .add_fault(f.clone())
                .map_err(|e| LabError::Config(format!("fault {f}: {e}")))?;
        }
        let front = match cfg.lb {
            LbKind::Embedded => {
                let listener = bind().await?;
                let addr = listener.local_addr().map_err(LabError::Bind)?;
                Front::Embedded(listener, addr)
            }
            // HAProxy starts while the node listeners are bound but not yet served: its first
            // health checks wait in the listen backlog until the servers run, and a HAProxy
            // that fails to start leaves no task behind (the process dies with its handle).
            LbKind::Haproxy => {
                let check_auth = cluster.neo4j_auth.as_ref().map(|c| c.header());
                let (process, driver) = start_haproxy(
                    &backend_servers,
                    &maint,
                    &readiness_path,
                    check_auth.as_deref(),
                    &haproxy_dir,
                )
                .await?;
                Front::Haproxy(Box::new((process, driver)))
            }
        };

        let (stop_tx, stop_rx) = watch::channel(false);
        let mut servers = Vec::new();
        for (idx, listener) in listeners.into_iter().enumerate() {
            let router = personality::node_router(cluster.clone(), idx);
            servers.push(serve(listener, router, stop_rx.clone()));
        }

        let snapshot = cluster.snapshot_all();
        let mut background = Vec::new();
        let (lb, frontend, haproxy) = match front {
            Front::Haproxy(boxed) => {
                let (process, driver) = *boxed;
                let frontend = process.frontend();
                (LabLb::Haproxy(driver), frontend, Some(process))
            }
            Front::Embedded(listener, frontend) => {
                let balancer = Arc::new(
                    Balancer::new(
                        snapshot
                            .iter()
                            .zip(&maint)
                            .map(|(n, m)| {
                                let state = if *m {
                                    Membership::Maint
                                } else {
                                    Membership::Ready
                                };
                                (
                                    n.name.clone(),
                                    n.address,
                                    state,
                                    n.state == RunState::Running,
                                )
                            })
                            .collect(),
                        &readiness_path,
                        Duration::from_millis(cfg.timing.health_interval_ms.max(1)),
                        client.clone(),
                    )
                    .with_check_auth(cluster.neo4j_auth.as_ref().map(|c| c.header())),
                );
                servers.push(serve(
                    listener,
                    balancer.clone().frontend_router(),
                    stop_rx.clone(),
                ));
                background.push(tokio::spawn(balancer.clone().run_checks()));
                (LabLb::Embedded(balancer), frontend, None)
            }
        };
        let traffic = Arc::new(TrafficStats::new(cfg.load_rps));
        // Jahia's users hold HTTP sessions that live in one node's memory; the embedded
        // balancer pins them to their node (a stick table on `JSESSIONID`). The HAProxy lab has
        // no stick table: its traffic stays session-less.
        let sessions = cfg.product == Product::Jahia && matches!(lb, LabLb::Embedded(_));
        let shared = LabShared {
            cluster: cluster.clone(),
            lb,
            traffic: traffic.clone(),
        };
        servers.push(serve(
            admin_listener,
            admin::cluster_router(shared.clone()),
            stop_rx.clone(),
        ));

        if cfg.load_rps > 0 {
            background.push(tokio::spawn(traffic::run(
                frontend,
                cfg.load_rps,
                sessions,
                traffic.clone(),
                client,
            )));
        }

        if cluster
            .personality()
            .is_some_and(|p| !p.spec.transition.is_empty())
        {
            // The personality's timed transitions, on the balancer's health-check period.
            let tick = Duration::from_millis(cfg.timing.health_interval_ms.max(10));
            let c = cluster.clone();
            cluster.spawn(async move {
                loop {
                    tokio::time::sleep(tick).await;
                    c.data_tick();
                }
            });
        }

        let admin_url = format!("http://{admin}");
        let mut target = target_out::build_target(
            product,
            &snapshot,
            &admin_url,
            frontend,
            &version,
            &to_version,
        );
        if let Some(p) = &cfg.personality {
            target_out::personalize(&mut target, p, &admin_url, frontend);
        }
        if let Some(creds) = &cluster.neo4j_auth {
            target_seeds::neo4j_auth(&mut target, creds.file());
        }
        if let Some(process) = &haproxy {
            target.lb = Some(target_out::haproxy_lb(process));
        }
        // Only the load generator counts traffic: without load the counters never move, and
        // polling them would wake the session every second to learn nothing.
        if cfg.load_rps == 0 {
            target.traffic = None;
        }
        Ok(Lab {
            shared,
            target,
            frontend,
            admin,
            haproxy,
            stop_tx,
            servers,
            background,
            temp_dir,
        })
    }

    /// The target describing this lab.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The target for running `procedure` on this lab: [`Lab::target`] plus the lab-sized
    /// `[overrides.<step id>]` of the gates that procedure sizes for real stores
    /// ([`target_seeds::lab_overrides`]).
    pub fn target_for(&self, procedure: &crate::procedure::model::Procedure) -> Target {
        let mut target = self.target.clone();
        target_seeds::lab_overrides(procedure, &mut target);
        target
    }

    /// Writes the target as TOML (the format `Target` parses).
    pub fn write_target(&self, path: &Path) -> Result<(), LabError> {
        target_out::write_target(&self.target, path)
    }

    /// Writes [`Lab::target_for`] `procedure` as TOML.
    pub fn write_target_for(
        &self,
        procedure: &crate::procedure::model::Procedure,
        path: &Path,
    ) -> Result<(), LabError> {
        target_out::write_target(&self.target_for(procedure), path)
    }

    /// Where clients (and the traffic generator) connect: the embedded balancer or HAProxy.
    pub fn lb_frontend(&self) -> SocketAddr {
        self.frontend
    }

    pub fn lb_kind(&self) -> LbKind {
        match self.haproxy {
            Some(_) => LbKind::Haproxy,
            None => LbKind::Embedded,
        }
    }

    /// The lab's own HAProxy (its config and log paths, its runtime address), when it has one.
    pub fn haproxy(&self) -> Option<&HaproxyProcess> {
        self.haproxy.as_ref()
    }

    /// Base URL of the lab admin API (cluster-level `/_lab/...` routes and the balancer's).
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// Where the lab keeps stores, markers and backups.
    pub fn data_dir(&self) -> &Path {
        &self.shared.cluster.data_dir
    }

    /// Traffic totals so far.
    pub async fn traffic(&self) -> TrafficCounts {
        self.shared.traffic.report().total
    }

    pub async fn snapshot(&self) -> LabSnapshot {
        self.shared.snapshot().await
    }

    /// Holds the cluster's gossip until released: a node (re)started meanwhile stays out of
    /// its peers' member lists (Weaviate's `/v1/cluster/statistics`). For tests that look at
    /// a moment real gossip only leaves open for a while.
    pub fn hold_gossip(&self, held: bool) {
        self.shared.cluster.hold_gossip(held);
    }

    /// Stops every task and listener (and removes a temporary data directory).
    pub async fn shutdown(self) {
        let _ = self.stop_tx.send(true);
        for task in &self.background {
            task.abort();
        }
        for task in self.background {
            let _ = task.await;
        }
        if let Some(haproxy) = self.haproxy {
            haproxy.stop().await;
        }
        self.shared.cluster.shutdown().await;
        for mut server in self.servers {
            // Graceful first (in-flight requests finish), then the hard way.
            if tokio::time::timeout(Duration::from_secs(2), &mut server)
                .await
                .is_err()
            {
                server.abort();
                let _ = server.await;
            }
        }
        // No request is served any more: the last writes reach the files before the data
        // directory is left to a later lab (or removed).
        self.shared.cluster.stores_idle().await;
        if let Some(dir) = self.temp_dir {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!("lab: could not remove {}: {e}", dir.display());
            }
        }
    }
}

/// What clients connect to, made ready before any task is spawned.
enum Front {
    Embedded(TcpListener, SocketAddr),
    Haproxy(Box<(HaproxyProcess, Haproxy)>),
}

/// Starts HAProxy over the nodes and puts the nodes that start stopped (neo4j's green group)
/// in maintenance, as the embedded balancer does.
async fn start_haproxy(
    servers: &[(String, SocketAddr)],
    maint: &[bool],
    health_path: &str,
    check_auth: Option<&str>,
    dir: &Path,
) -> Result<(HaproxyProcess, Haproxy), LabError> {
    let process = HaproxyProcess::start_checked(servers, health_path, check_auth, dir).await?;
    let driver = Haproxy::new(&target_out::haproxy_lb(&process))?;
    for ((name, _), _) in servers.iter().zip(maint).filter(|(_, m)| **m) {
        driver.set_membership(name, Membership::Maint, None).await?;
    }
    Ok((process, driver))
}

async fn bind() -> Result<TcpListener, LabError> {
    TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(LabError::Bind)
}

fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!("lab: server stopped: {e}");
        }
    })
}

fn fresh_temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    std::env::temp_dir().join(format!(
        "flightdeck-lab-{}-{nanos}-{seq}",
        std::process::id()
    ))
}
