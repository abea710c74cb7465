//! The HAProxy driver: reads and sets backend-server membership through HAProxy's runtime API
//! (`stats socket ... level admin`), over TCP (`host:port`) or a unix socket.
//!
//! `runtime` does the socket I/O, `parse` turns replies into values, `process` runs a HAProxy
//! of our own for the lab and the tests.

pub mod parse;
pub mod process;
pub mod runtime;

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Backend, LbError};
use crate::procedure::model::Membership;
use crate::target::LbConfig;

pub use process::{haproxy_available, HaproxyError, HaproxyProcess};
pub use runtime::{RuntimeClient, SocketAddress};

use parse::{ServerState, StatRow};

/// HAProxy accepts server weights 0 to 256.
pub const MAX_WEIGHT: u16 = 256;

#[derive(Debug, Clone)]
pub struct Haproxy {
    client: RuntimeClient,
    backend: String,
    /// Node name -> server name, for the nodes whose server is named differently.
    servers: BTreeMap<String, String>,
}

impl Haproxy {
    /// `cfg.address` is `host:port` or a unix socket path (`/...` or `unix:/...`);
    /// `cfg.backend` is required.
    pub fn new(cfg: &LbConfig) -> Result<Self, LbError> {
        let backend = cfg.backend.clone().ok_or_else(|| {
            LbError::Protocol(
                "the haproxy driver needs `backend` in the target's [lb] table \
                 (the HAProxy backend that holds the nodes)"
                    .into(),
            )
        })?;
        parse::check_name("backend", &backend)?;
        for server in cfg.servers.values() {
            parse::check_name("server", server)?;
        }
        Ok(Self {
            client: RuntimeClient::new(SocketAddress::parse(&cfg.address)?),
            backend,
            servers: cfg.servers.clone(),
        })
    }

    /// Replaces the default connect and read timeouts of each runtime API command.
    pub fn with_timeouts(mut self, connect: Duration, read: Duration) -> Self {
        self.client = self.client.with_timeouts(connect, read);
        self
    }

    pub fn backend(&self) -> &str {
        &self.backend
    }

    pub fn runtime(&self) -> &RuntimeClient {
        &self.client
    }

    /// The HAProxy server that fronts `node` (the node's own name unless mapped).
    pub fn server_for<'a>(&'a self, node: &'a str) -> &'a str {
        self.servers.get(node).map(String::as_str).unwrap_or(node)
    }

    /// The node behind `server`: the node mapped to it, else the server's own name unless a
    /// node of that name is mapped to another server. The driver does not know the target's
    /// node list, so an unmapped server of a name no node has still comes back as `Some`.
    pub fn node_for(&self, server: &str) -> Option<String> {
        if let Some((node, _)) = self.servers.iter().find(|(_, s)| *s == server) {
            return Some(node.clone());
        }
        (!self.servers.contains_key(server)).then(|| server.to_string())
    }

    /// Every server of the backend. Two commands, run concurrently: `show stat` has the status
    /// text, sessions, weight and check result; only `show servers state` has the admin state
    /// that says drain/maint reliably (`show stat` says just `DOWN` for a drained server that
    /// fails its checks).
    pub async fn backends(&self) -> Result<Vec<Backend>, LbError> {
        let stat_cmd = format!("show stat {} 4 -1", self.backend);
        let state_cmd = format!("show servers state {}", self.backend);
        let (stat, state) = tokio::try_join!(
            self.client.command(&stat_cmd),
            self.client.command(&state_cmd)
        )?;
        let rows = parse::parse_show_stat(&stat, &self.backend)?;
        let states = parse::parse_servers_state(&state, &self.backend)?;
        Ok(merge(rows, &states, |server| self.node_for(server)))
    }

    /// `set server <backend>/<server> state ready|drain|maint`, then the weight if given. When
    /// returning to `ready` the weight goes first, so the server takes traffic at its new weight
    /// from the first request.
    pub async fn set_membership(
        &self,
        node: &str,
        state: Membership,
        weight: Option<u16>,
    ) -> Result<(), LbError> {
        let server = self.server_for(node);
        parse::check_name("server", server)?;
        if let Some(w) = weight.filter(|w| *w > MAX_WEIGHT) {
            return Err(LbError::Protocol(format!(
                "weight {w} for {server} is out of HAProxy's range 0-{MAX_WEIGHT}"
            )));
        }
        let target = format!("{}/{}", self.backend, server);
        let state_cmd = format!("set server {target} state {state}");
        let weight_cmd = weight.map(|w| format!("set server {target} weight {w}"));
        let mut cmds: Vec<&str> = vec![state_cmd.as_str()];
        if let Some(w) = weight_cmd.as_deref() {
            if state == Membership::Ready {
                cmds.insert(0, w);
            } else {
                cmds.push(w);
            }
        }
        for cmd in cmds {
            let reply = self.client.command(cmd).await?;
            parse::command_outcome(&reply, &self.backend, server)?;
        }
        Ok(())
    }
}

/// Joins `show stat` rows (in configuration order) with their `show servers state` lines.
pub fn merge(
    rows: Vec<StatRow>,
    states: &[ServerState],
    node_for: impl Fn(&str) -> Option<String>,
) -> Vec<Backend> {
    rows.into_iter()
        .map(|row| {
            let membership = match states.iter().find(|s| s.server == row.server) {
                Some(state) => parse::membership_from_admin(state.admin_state),
                // A server added between the two commands: its status text is the best hint.
                None if row.status.starts_with("MAINT") => Membership::Maint,
                None if row.status.starts_with("DRAIN") => Membership::Drain,
                None => Membership::Ready,
            };
            // `no check` servers are always considered up. Weight 0 takes no new requests but
            // still shows `UP`.
            let up = row.status.starts_with("UP") || row.status == "no check";
            let serving = membership == Membership::Ready && up && row.weight != Some(0);
            Backend {
                node: node_for(&row.server),
                server: row.server,
                membership,
                health: row.status,
                serving,
                sessions: row.sessions,
                weight: row.weight,
                check: row.check_status,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(address: &str, backend: Option<&str>, servers: &[(&str, &str)]) -> LbConfig {
        LbConfig {
            driver: "haproxy".into(),
            address: address.into(),
            backend: backend.map(String::from),
            frontend: None,
            servers: servers
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect(),
            interval_ms: 1000,
        }
    }

    #[test]
    fn new_requires_a_backend() {
        let err = Haproxy::new(&cfg("127.0.0.1:9999", None, &[])).unwrap_err();
        assert!(matches!(err, LbError::Protocol(m) if m.contains("backend")));
    }

    #[test]
    fn new_rejects_bad_names_and_addresses() {
        assert!(Haproxy::new(&cfg("127.0.0.1:9999", Some("be;x"), &[])).is_err());
        assert!(Haproxy::new(&cfg("127.0.0.1:9999", Some("be"), &[("n1", "a b")])).is_err());
        assert!(Haproxy::new(&cfg("nowhere", Some("be"), &[])).is_err());
    }

    #[test]
    fn unix_and_tcp_addresses() {
        let h = Haproxy::new(&cfg("/run/haproxy/admin.sock", Some("be"), &[])).unwrap();
        assert_eq!(
            h.runtime().address(),
            &SocketAddress::Unix("/run/haproxy/admin.sock".into())
        );
        let h = Haproxy::new(&cfg("127.0.0.1:9999", Some("be"), &[])).unwrap();
        assert_eq!(
            h.runtime().address(),
            &SocketAddress::Tcp("127.0.0.1:9999".into())
        );
    }

    #[test]
    fn node_server_mapping() {
        let h = Haproxy::new(&cfg("127.0.0.1:9999", Some("be"), &[("db1", "srv-a")])).unwrap();
        assert_eq!(h.server_for("db1"), "srv-a");
        assert_eq!(h.server_for("db2"), "db2");
        assert_eq!(h.node_for("srv-a").as_deref(), Some("db1"));
        assert_eq!(h.node_for("db2").as_deref(), Some("db2"));
        // Node db1 is behind srv-a, so a server that happens to be called db1 is not it.
        assert_eq!(h.node_for("db1"), None);
    }

    fn row(server: &str, status: &str, weight: u16) -> StatRow {
        StatRow {
            backend: "be".into(),
            server: server.into(),
            status: status.into(),
            sessions: Some(2),
            weight: Some(weight),
            check_status: Some("L7OK".into()),
        }
    }

    fn state(server: &str, admin_state: u32) -> ServerState {
        ServerState {
            backend: "be".into(),
            server: server.into(),
            op_state: 2,
            admin_state,
            user_weight: Some(100),
        }
    }

    #[test]
    fn merge_membership_and_serving() {
        let rows = vec![
            row("n1", "UP", 100),
            row("n2", "DRAIN", 100),
            row("n3", "MAINT", 100),
            row("n4", "DOWN", 100),
            row("n5", "DRAIN", 0),
            row("n6", "UP 1/2", 100),
            row("n7", "no check", 1),
            row("n8", "DOWN", 100),
        ];
        let states = vec![
            state("n1", 0),
            state("n2", 8),
            state("n3", 1),
            state("n4", 0),
            state("n5", 0),
            state("n6", 0),
            state("n7", 0),
            state("n8", 8),
        ];
        let merged = merge(rows, &states, |s| Some(format!("node-{s}")));
        let got: Vec<_> = merged
            .iter()
            .map(|b| (b.server.as_str(), b.membership, b.serving))
            .collect();
        use Membership::*;
        assert_eq!(
            got,
            vec![
                ("n1", Ready, true),
                ("n2", Drain, false),
                ("n3", Maint, false),
                ("n4", Ready, false),
                ("n5", Ready, false),
                ("n6", Ready, true),
                ("n7", Ready, true),
                ("n8", Drain, false),
            ]
        );
        assert_eq!(merged[0].node.as_deref(), Some("node-n1"));
        assert_eq!(merged[0].health, "UP");
        assert_eq!(merged[0].sessions, Some(2));
        assert_eq!(merged[0].weight, Some(100));
        assert_eq!(merged[0].check.as_deref(), Some("L7OK"));
    }

    #[test]
    fn merge_without_a_state_line_reads_the_status() {
        let merged = merge(
            vec![
                row("n1", "MAINT", 1),
                row("n2", "DRAIN", 1),
                row("n3", "UP", 1),
            ],
            &[],
            |_| None,
        );
        let got: Vec<_> = merged.iter().map(|b| b.membership).collect();
        assert_eq!(
            got,
            vec![Membership::Maint, Membership::Drain, Membership::Ready]
        );
    }

    #[tokio::test]
    async fn weight_out_of_range_is_refused_before_sending() {
        // Nothing listens on port 1: reaching the socket would give Unreachable instead.
        let h = Haproxy::new(&cfg("127.0.0.1:1", Some("be"), &[])).unwrap();
        let err = h
            .set_membership("n1", Membership::Ready, Some(300))
            .await
            .unwrap_err();
        assert!(matches!(err, LbError::Protocol(m) if m.contains("0-256")));
    }

    /// A runtime API stand-in that answers every command with `reply` and records the commands.
    async fn fake_runtime(
        reply: &'static str,
    ) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let mut conn = BufReader::new(conn);
                let mut line = String::new();
                conn.read_line(&mut line).await.unwrap();
                let _ = tx.send(line.trim_end().to_string());
                conn.get_mut().write_all(reply.as_bytes()).await.unwrap();
            }
        });
        (address, rx)
    }

    #[tokio::test]
    async fn permission_denied_says_what_to_fix() {
        let (address, _) = fake_runtime("\nPermission denied\n\n").await;
        let h = Haproxy::new(&cfg(&address, Some("be"), &[])).unwrap();
        let err = h
            .set_membership("n1", Membership::Drain, None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, LbError::Refused(m) if m.contains("level admin")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn weight_goes_first_only_when_returning_to_ready() {
        let (address, mut sent) = fake_runtime("\n").await;
        let h = Haproxy::new(&cfg(&address, Some("be"), &[("db1", "srv1")])).unwrap();
        h.set_membership("db1", Membership::Ready, Some(10))
            .await
            .unwrap();
        h.set_membership("db1", Membership::Drain, Some(0))
            .await
            .unwrap();
        h.set_membership("db1", Membership::Maint, None)
            .await
            .unwrap();
        let mut got = Vec::new();
        while let Ok(cmd) = sent.try_recv() {
            got.push(cmd);
        }
        assert_eq!(
            got,
            [
                "set server be/srv1 weight 10",
                "set server be/srv1 state ready",
                "set server be/srv1 state drain",
                "set server be/srv1 weight 0",
                "set server be/srv1 state maint",
            ]
        );
    }

    #[tokio::test]
    async fn unreachable_socket_names_the_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        let address = path.display().to_string();
        let h = Haproxy::new(&cfg(&address, Some("be"), &[])).unwrap();
        match h.backends().await {
            Err(LbError::Unreachable { address: a, .. }) => assert!(a.contains(&address)),
            other => panic!("expected Unreachable, got {other:?}"),
        }
    }
}
