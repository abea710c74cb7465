//! A HAProxy of our own in front of loopback servers, for the lab and the tests: generated
//! config, free ports, the process as a child that dies with its owner.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::parse;
use super::runtime::{RuntimeClient, SocketAddress};
use crate::target::LbConfig;

/// The backend (and frontend) names in the generated configuration.
pub const BACKEND: &str = "be_cluster";
pub const FRONTEND: &str = "fe_cluster";

const CONFIG_FILE: &str = "haproxy.cfg";
const LOG_FILE: &str = "haproxy.log";
/// How long HAProxy gets to answer `show info` after starting.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const READY_POLL: Duration = Duration::from_millis(25);
/// Starts tried when HAProxy cannot bind the ports it was given.
const START_ATTEMPTS: u32 = 3;

/// Where HAProxy is looked for besides `PATH`: Debian and Fedora install it in `/usr/sbin`,
/// which is often not on a non-root user's `PATH`.
const SBIN_DIRS: &[&str] = &["/usr/sbin", "/usr/local/sbin", "/sbin"];

#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    #[error(
        "haproxy is not installed (not on PATH nor in /usr/sbin): install it with \
         `apt-get install haproxy` (Debian/Ubuntu), `dnf install haproxy` (Fedora/RHEL) \
         or `brew install haproxy` (macOS)"
    )]
    NotInstalled,
    #[error("{what} {name:?} cannot go into a haproxy.cfg: {why}")]
    InvalidInput {
        what: &'static str,
        name: String,
        why: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("haproxy rejected the generated configuration {path}:\n{output}")]
    InvalidConfig { path: PathBuf, output: String },
    #[error("haproxy exited ({status}) before its runtime API answered; its log {log}:\n{tail}")]
    Exited {
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("haproxy's runtime API did not answer within {timeout:?} ({last}); its log {log}")]
    NotReady {
        timeout: Duration,
        last: String,
        log: PathBuf,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> HaproxyError {
    let context = context.into();
    move |source| HaproxyError::Io { context, source }
}

/// The `haproxy` executable, from `PATH` or the usual sbin directories.
pub fn haproxy_binary() -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join("haproxy"))
        .find(|candidate| is_executable(candidate))
}

pub fn haproxy_available() -> bool {
    haproxy_binary().is_some()
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// A running HAProxy; killed when stopped or dropped.
#[derive(Debug)]
pub struct HaproxyProcess {
    child: Child,
    frontend: SocketAddr,
    runtime: SocketAddr,
    dir: PathBuf,
}

impl HaproxyProcess {
    /// Writes `haproxy.cfg` into `dir` for a round-robin backend over `servers` (name,
    /// address) with HTTP health checks on `health_path`, validates it with `haproxy -c`,
    /// starts HAProxy in the foreground with its output in `dir/haproxy.log`, and returns once
    /// the runtime API answers.
    pub async fn start(
        servers: &[(String, SocketAddr)],
        health_path: &str,
        dir: &Path,
    ) -> Result<HaproxyProcess, HaproxyError> {
        Self::start_checked(servers, health_path, None, dir).await
    }

    /// [`HaproxyProcess::start`] with health checks that send `Authorization: check_auth`
    /// (a product whose health endpoint asks for credentials, like Neo4j's status endpoints).
    pub async fn start_checked(
        servers: &[(String, SocketAddr)],
        health_path: &str,
        check_auth: Option<&str>,
        dir: &Path,
    ) -> Result<HaproxyProcess, HaproxyError> {
        let binary = haproxy_binary().ok_or(HaproxyError::NotInstalled)?;
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let mut attempt = 1;
        loop {
            match Self::start_once(&binary, servers, health_path, check_auth, dir).await {
                // The ports were free when we looked, but something else (often an outgoing
                // connection's ephemeral port) took one before HAProxy bound it: new ports.
                Err(HaproxyError::Exited { tail, .. })
                    if attempt < START_ATTEMPTS && tail.contains("Address already in use") =>
                {
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn start_once(
        binary: &Path,
        servers: &[(String, SocketAddr)],
        health_path: &str,
        check_auth: Option<&str>,
        dir: &Path,
    ) -> Result<HaproxyProcess, HaproxyError> {
        let (frontend, runtime) = free_port_pair()?;
        let config = render_config_checked(servers, health_path, check_auth, frontend, runtime)?;
        let config_path = dir.join(CONFIG_FILE);
        // Owner-only: the health checks' credentials may be in it.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&config_path)
            .and_then(|mut f| {
                // `mode` applies only when the file is created: set it again on one left by
                // an earlier run before the credentials go in.
                f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
                std::io::Write::write_all(&mut f, config.as_bytes())
            })
            .map_err(io(format!("writing {}", config_path.display())))?;

        let check = Command::new(binary)
            .arg("-c")
            .arg("-f")
            .arg(&config_path)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(io(format!("running {} -c", binary.display())))?;
        if !check.status.success() {
            return Err(HaproxyError::InvalidConfig {
                path: config_path,
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&check.stdout),
                    String::from_utf8_lossy(&check.stderr)
                ),
            });
        }

        let log_path = dir.join(LOG_FILE);
        let log = std::fs::File::create(&log_path)
            .map_err(io(format!("creating {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(io(format!("opening {}", log_path.display())))?;
        let child = Command::new(binary)
            .arg("-f")
            .arg(&config_path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("starting {}", binary.display())))?;

        let mut process = HaproxyProcess {
            child,
            frontend,
            runtime,
            dir: dir.to_path_buf(),
        };
        process.wait_ready().await?;
        Ok(process)
    }

    async fn wait_ready(&mut self) -> Result<(), HaproxyError> {
        let client = RuntimeClient::new(SocketAddress::Tcp(self.runtime.to_string()))
            .with_timeouts(Duration::from_millis(500), Duration::from_secs(1));
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            let last = match client.command("show info").await {
                Ok(reply) if reply.contains("Name: HAProxy") => return Ok(()),
                Ok(reply) => format!("unexpected answer: {}", reply.trim()),
                Err(e) => e.to_string(),
            };
            if let Some(status) = self.child.try_wait().map_err(io("waiting for haproxy"))? {
                return Err(HaproxyError::Exited {
                    status: status.to_string(),
                    log: self.log_path(),
                    tail: log_tail(&self.log_path()),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(HaproxyError::NotReady {
                    timeout: READY_TIMEOUT,
                    last,
                    log: self.log_path(),
                });
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// Where clients connect.
    pub fn frontend(&self) -> SocketAddr {
        self.frontend
    }

    /// The runtime API (`host:port`), as `LbConfig::address` wants it.
    pub fn runtime_address(&self) -> String {
        self.runtime.to_string()
    }

    pub fn backend(&self) -> &str {
        BACKEND
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The target's `[lb]` for this HAProxy; `servers` maps node -> server name where they
    /// differ.
    pub fn lb_config(&self, servers: &BTreeMap<String, String>) -> LbConfig {
        LbConfig {
            driver: "haproxy".into(),
            address: self.runtime_address(),
            backend: Some(BACKEND.into()),
            frontend: Some(self.frontend.to_string()),
            servers: servers.clone(),
            interval_ms: crate::procedure::model::default_interval(),
        }
    }

    /// Kills HAProxy and waits for it to be gone. Its listening ports close with it.
    pub async fn stop(mut self) {
        // An error means it already exited: nothing left to stop.
        let _ = self.child.kill().await;
    }
}

fn free_port_pair() -> Result<(SocketAddr, SocketAddr), HaproxyError> {
    // Both listeners are held at once so the two ports differ.
    let a = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("picking a free port"))?;
    let b = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("picking a free port"))?;
    let pair = (
        a.local_addr().map_err(io("picking a free port"))?,
        b.local_addr().map_err(io("picking a free port"))?,
    );
    Ok(pair)
}

/// HAProxy's address syntax: IPv6 needs the `ipv6@` prefix rather than brackets.
fn haproxy_address(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => v4.to_string(),
        SocketAddr::V6(v6) => format!("ipv6@{}:{}", v6.ip(), v6.port()),
    }
}

/// The generated configuration. Short check intervals so that state changes show within a
/// second; `retries` with `redispatch 1` and `retry-on` so that a request to a node that just
/// died is retried on another one instead of failing the client.
pub fn render_config(
    servers: &[(String, SocketAddr)],
    health_path: &str,
    frontend: SocketAddr,
    runtime: SocketAddr,
) -> Result<String, HaproxyError> {
    render_config_checked(servers, health_path, None, frontend, runtime)
}

/// [`render_config`] with health checks that send `Authorization: check_auth` (HAProxy 2.2+
/// `http-check send ... hdr`, HAProxy configuration manual 2.6 §4.2; what the Neo4j knowledge
/// base's "Configure HAProxy to Send Write Requests to Leader Node Only" does with its status
/// endpoints when auth is on).
pub fn render_config_checked(
    servers: &[(String, SocketAddr)],
    health_path: &str,
    check_auth: Option<&str>,
    frontend: SocketAddr,
    runtime: SocketAddr,
) -> Result<String, HaproxyError> {
    if let Some(a) = check_auth {
        let token_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | ' ');
        if a.is_empty() || !a.chars().all(token_chars) {
            return Err(HaproxyError::InvalidInput {
                what: "health check credentials",
                name: String::new(),
                why: "only a `Basic <base64>` value fits in the configuration".into(),
            });
        }
    }
    if !health_path.starts_with('/') || health_path.contains(|c: char| c.is_whitespace()) {
        return Err(HaproxyError::InvalidInput {
            what: "health path",
            name: health_path.into(),
            why: "it must start with '/' and contain no whitespace".into(),
        });
    }
    if servers.is_empty() {
        return Err(HaproxyError::InvalidInput {
            what: "server list",
            name: String::new(),
            why: "a backend needs at least one server".into(),
        });
    }
    for (name, _) in servers {
        parse::check_name("server", name).map_err(|e| HaproxyError::InvalidInput {
            what: "server name",
            name: name.clone(),
            why: e.to_string(),
        })?;
    }
    let mut cfg = format!(
        "# Generated by flightdeck for a lab HAProxy.\n\
         global\n    \
             maxconn 512\n    \
             stats socket {runtime} level admin\n    \
             stats timeout 2m\n\
         defaults\n    \
             mode http\n    \
             timeout connect 1s\n    \
             timeout client 30s\n    \
             timeout server 30s\n    \
             timeout check 1s\n    \
             retries 3\n    \
             option redispatch 1\n    \
             retry-on conn-failure empty-response\n    \
             default-server inter 200ms fastinter 100ms downinter 200ms fall 2 rise 2\n\
         frontend {FRONTEND}\n    \
             bind {frontend}\n    \
             default_backend {BACKEND}\n\
         backend {BACKEND}\n    \
             balance roundrobin\n    \
             {check}\n    \
             http-check expect status 200\n",
        runtime = haproxy_address(runtime),
        frontend = haproxy_address(frontend),
        check = match check_auth {
            None => format!("option httpchk GET {health_path}"),
            Some(a) => format!(
                "option httpchk\n    http-check send meth GET uri {health_path} hdr Authorization \"{a}\""
            ),
        },
    );
    for (name, addr) in servers {
        // Writing to a String cannot fail.
        let _ = writeln!(cfg, "    server {name} {} check", haproxy_address(*addr));
    }
    Ok(cfg)
}

/// The last lines of HAProxy's log, for error messages.
fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        }
        Err(e) => format!("(log unreadable: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers() -> Vec<(String, SocketAddr)> {
        vec![
            ("node1".into(), "127.0.0.1:18081".parse().unwrap()),
            ("node2".into(), "[::1]:18082".parse().unwrap()),
        ]
    }

    #[test]
    fn checks_with_credentials_send_them_and_refuse_what_does_not_fit() {
        let front = "127.0.0.1:18080".parse().unwrap();
        let cfg = render_config_checked(
            &servers(),
            "/db/x",
            Some("Basic bmVvNGo6eA=="),
            front,
            front,
        )
        .unwrap();
        assert!(
            cfg.contains(
                "option httpchk\n    http-check send meth GET uri /db/x hdr Authorization \"Basic bmVvNGo6eA==\"\n    http-check expect status 200"
            ),
            "{cfg}"
        );
        assert!(render_config_checked(&servers(), "/db/x", Some("a\"\nb"), front, front).is_err());
    }

    #[test]
    fn config_has_the_parts_the_driver_relies_on() {
        let cfg = render_config(
            &servers(),
            "/health",
            "127.0.0.1:18080".parse().unwrap(),
            "127.0.0.1:9999".parse().unwrap(),
        )
        .unwrap();
        for line in [
            "stats socket 127.0.0.1:9999 level admin",
            "bind 127.0.0.1:18080",
            "backend be_cluster",
            "option httpchk GET /health",
            "http-check expect status 200",
            "option redispatch 1",
            "server node1 127.0.0.1:18081 check",
            "server node2 ipv6@::1:18082 check",
        ] {
            assert!(cfg.contains(line), "missing {line:?} in\n{cfg}");
        }
    }

    #[test]
    fn config_refuses_injection() {
        let front = "127.0.0.1:1".parse().unwrap();
        let mut bad = servers();
        bad[0].0 = "node1 127.0.0.1:1\n    server evil".into();
        assert!(matches!(
            render_config(&bad, "/health", front, front),
            Err(HaproxyError::InvalidInput { .. })
        ));
        assert!(render_config(&servers(), "/health\nbackend x", front, front).is_err());
        assert!(render_config(&servers(), "health", front, front).is_err());
        assert!(render_config(&[], "/health", front, front).is_err());
    }

    #[test]
    fn not_installed_says_how_to_install() {
        let msg = HaproxyError::NotInstalled.to_string();
        for hint in [
            "apt-get install haproxy",
            "dnf install haproxy",
            "brew install haproxy",
        ] {
            assert!(msg.contains(hint), "{msg}");
        }
    }

    #[test]
    fn free_ports_differ() {
        let (a, b) = free_port_pair().unwrap();
        assert_ne!(a.port(), b.port());
        assert!(a.ip().is_loopback() && b.ip().is_loopback());
    }
}
