//! Jahia's cluster operations: the shared database schemas, the `rolling-upgrade` marker, the
//! full read-only switch sent to the processing node, and each node's HTTP sessions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::{check_name, Cluster, Inner, NodeState, OpError, RunState};
use crate::lab::config::Product;
use crate::lab::store::Store;

/// The HTTP sessions one Jahia node holds: in its JVM's memory and nowhere else. "For
/// authenticated users, the Jahia stores data in the HTTP session. By default, this data is
/// stored in the memory of the server, where requests of a session are routed to. When the
/// server is shut down, all this session data disappears and the user will have to login
/// again" (Jahia Store, "Distributed Sessions" module page,
/// store.jahia.com/module/distributed-sessions, read 2026-12; replicating them takes that
/// add-on module, which the lab's cluster, like the seed guide's, does not have). So a session
/// lives as long as the JVM that created it: a stop, a start or a crash (a new generation of
/// the node) starts with none.
#[derive(Debug, Default)]
pub(crate) struct HttpSessions {
    generation: u64,
    ids: BTreeSet<String>,
}

/// Sessions one node keeps at most (a lab bound; Tomcat's `maxActiveSessions` is unlimited by
/// default): past it the oldest JVM state is dropped as a restart would.
const MAX_HTTP_SESSIONS: usize = 10_000;

/// The node's live sessions, emptied when the JVM that held them is gone.
fn live_sessions(n: &mut NodeState) -> &mut BTreeSet<String> {
    if n.http_sessions.generation != n.generation {
        n.http_sessions.ids.clear();
        n.http_sessions.generation = n.generation;
    }
    &mut n.http_sessions.ids
}

/// The sessions node `n`'s JVM holds now (none once it stopped).
pub(super) fn session_count(n: &NodeState) -> usize {
    if n.state == RunState::Running && n.http_sessions.generation == n.generation {
        n.http_sessions.ids.len()
    } else {
        0
    }
}

impl Cluster {
    /// Jahia: a request carrying session cookie `cookie` reaches node `idx`. `None` when the
    /// node does not run (nothing is created); `Some(None)` when this JVM holds the session;
    /// `Some(Some(id))` for a new session `new_id()` — what Tomcat does with a request whose
    /// `JSESSIONID` it does not know (none, or one another JVM issued, or one a stop lost):
    /// the user starts over, logged out.
    pub fn jahia_session(
        &self,
        idx: usize,
        cookie: Option<&str>,
        new_id: impl FnOnce() -> String,
    ) -> Option<Option<String>> {
        let mut g = self.inner();
        let n = g.nodes.get_mut(idx)?;
        if n.state != RunState::Running {
            return None;
        }
        let ids = live_sessions(n);
        if cookie.is_some_and(|c| ids.contains(c)) {
            return Some(None);
        }
        if ids.len() >= MAX_HTTP_SESSIONS {
            ids.clear();
        }
        let id = new_id();
        ids.insert(id.clone());
        Some(Some(id))
    }

    /// Jahia: the user logs out (`/cms/logout` invalidates the session). False when this node
    /// did not hold it.
    pub fn jahia_logout(&self, idx: usize, cookie: &str) -> bool {
        let mut g = self.inner();
        match g.nodes.get_mut(idx) {
            Some(n) if n.state == RunState::Running => live_sessions(n).remove(cookie),
            _ => false,
        }
    }

    /// Jahia's rolling-upgrade marker: consumed at start-up, it resets discovery (so the node
    /// may run on another schema than the old cluster) and leaves full read-only mode.
    pub(super) fn jahia_join(&self, g: &mut Inner, idx: usize) -> Result<(), String> {
        let marker = g.nodes[idx].marker_path();
        if marker.exists() {
            std::fs::remove_file(&marker)
                .map_err(|e| format!("cannot consume {}: {e}", marker.display()))?;
            g.nodes[idx].read_only = false;
            return Ok(());
        }
        let mine = g.nodes[idx].schema.clone().unwrap_or_default();
        let others: BTreeSet<String> = g
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, n)| *j != idx && n.state == RunState::Running)
            .filter_map(|(_, n)| n.schema.clone())
            .filter(|s| *s != mine)
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        let others: Vec<String> = others.into_iter().collect();
        Err(format!(
            "cluster conflict: {} is on schema {mine} while running nodes use schema {}; \
             rolling-upgrade marker missing",
            g.nodes[idx].name,
            others.join(", ")
        ))
    }

    /// Jahia: the members of the cluster `idx` belongs to, as its Karaf Cellar sees them
    /// (`cluster:node-list`): the running nodes sharing its database schema. Jahia nodes find
    /// each other through the database they share (the cluster's discovery information lives
    /// there; the `rolling-upgrade` marker resets it so an upgraded node on schema B does not
    /// join the old cluster: ../shared/reference/jahia.md), so a node left on another schema,
    /// or started with a marker it should not have had, forms a cluster of its own while its
    /// health, version and read-only status all look right. Empty when the node is not running.
    pub fn jahia_members(&self, idx: usize) -> Vec<String> {
        let g = self.inner();
        let Some(me) = g.nodes.get(idx) else {
            return Vec::new();
        };
        if me.state != RunState::Running {
            return Vec::new();
        }
        g.nodes
            .iter()
            .filter(|n| n.state == RunState::Running && n.schema == me.schema)
            .map(|n| n.name.clone())
            .collect()
    }

    /// Jahia's full read-only switch sent to the processing node: every running node of the
    /// same schema follows. Returns the names switched.
    pub fn set_read_only_cluster(&self, idx: usize, on: bool) -> Vec<String> {
        let mut g = self.inner();
        let Some(schema) = g.nodes.get(idx).map(|n| n.schema.clone()) else {
            return Vec::new();
        };
        let mut names = Vec::new();
        for (j, n) in g.nodes.iter_mut().enumerate() {
            if j == idx || (n.state == RunState::Running && n.schema == schema) {
                n.read_only = on;
                names.push(n.name.clone());
            }
        }
        names
    }

    /// Jahia: copies database schema `from` to `to` (a real copy of the data file).
    pub fn copy_schema(&self, from: &str, to: &str) -> Result<(), OpError> {
        self.only(Product::Jahia, "copy-schema")?;
        check_name("schema", from)?;
        check_name("schema", to)?;
        if from == to {
            return Err(OpError::BadRequest(
                "cannot copy a schema onto itself".into(),
            ));
        }
        let mut g = self.inner();
        let to_key = format!("schema:{to}");
        if g.nodes
            .iter()
            .any(|n| n.store_key == to_key && n.state != RunState::Stopped)
        {
            return Err(OpError::Refused(format!(
                "schema {to} is in use by a running node"
            )));
        }
        let src = g
            .stores
            .get(&format!("schema:{from}"))
            .ok_or_else(|| OpError::NotFound(format!("no schema named {from:?}")))?;
        let dest_path = self.data_dir.join("schemas").join(to).join("store.json");
        src.copy_to(&dest_path)?;
        let store = Store::open_or_create(dest_path, src.file.format, &BTreeMap::new())?;
        g.stores.insert(to_key, store);
        Ok(())
    }

    /// Jahia: points a stopped node at a schema.
    pub fn set_schema(&self, idx: usize, schema: &str) -> Result<(), OpError> {
        self.only(Product::Jahia, "set-schema")?;
        check_name("schema", schema)?;
        let mut g = self.inner();
        let key = format!("schema:{schema}");
        if !g.stores.contains_key(&key) {
            return Err(OpError::NotFound(format!(
                "no schema named {schema:?}; copy-schema first"
            )));
        }
        let n = g
            .nodes
            .get_mut(idx)
            .ok_or_else(|| OpError::NotFound("no such node".into()))?;
        if matches!(n.state, RunState::Running | RunState::Starting) {
            return Err(OpError::Refused(format!(
                "{} must be stopped to change its schema",
                n.name
            )));
        }
        n.schema = Some(schema.to_string());
        n.store_key = key;
        Ok(())
    }

    /// Jahia: creates the empty `rolling-upgrade` marker in the node's data folder.
    pub fn create_marker(&self, idx: usize) -> Result<PathBuf, OpError> {
        self.only(Product::Jahia, "marker")?;
        let path = {
            let g = self.inner();
            g.nodes
                .get(idx)
                .ok_or_else(|| OpError::NotFound("no such node".into()))?
                .marker_path()
        };
        std::fs::write(&path, b"").map_err(|e| OpError::Internal(e.to_string()))?;
        Ok(path)
    }
}
