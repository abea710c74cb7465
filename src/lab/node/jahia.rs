//! Jahia's cluster operations: the shared database schemas, the `rolling-upgrade` marker, the
//! full read-only switch sent to the processing node, and each node's HTTP sessions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::{check_name, Cluster, Inner, NodeState, OpError, RunState};
use crate::lab::config::Product;
use crate::lab::store::Store;

/// A Jahia node's own settings, `digital-factory-config/jahia/jahia.node.properties` in its
/// release, as the node read them at its last start (Jahia reads its properties at start-up:
/// `SettingsBean`). Each release has its own configuration folder, so installing a new release
/// beside the old one (the real target's `/opt/jahia/releases/<version>`) needs the folder
/// carried over (audit J3) — or the node starts on the settings Jahia ships.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeProperties {
    /// `cluster.activated`
    pub cluster_activated: bool,
    /// `processingServer`
    pub processing_server: bool,
    /// `cluster.node.serverId`
    pub server_id: String,
}

impl NodeProperties {
    /// What a node runs with when its release has no `jahia.node.properties`: the defaults
    /// Jahia ships (Jahia/jahia 8.2.0.0,
    /// `core/src/main/resources/org/jahia/defaults/config/properties/jahia.node.properties`:
    /// `cluster.activated = false`, `processingServer = true`; `SettingsBean`:
    /// `cluster.node.serverId` defaults to `jahiaServer1`). A missing file is no error: the
    /// `jahiaProperties` bean (`applicationcontext-jahiaproperties.xml`) loads
    /// `classpath*:jahia/jahia.node.properties` with `ignoreResourceNotFound = true`. So the
    /// node starts, healthy, as a processing server with clustering off: it joins no cluster,
    /// and a second processing server runs the background jobs ("Only one cluster node may be
    /// a processing server", the same file's comment).
    pub fn shipped() -> Self {
        NodeProperties {
            cluster_activated: false,
            processing_server: true,
            server_id: "jahiaServer1".into(),
        }
    }

    /// A cluster node's settings, as the lab's cluster was installed.
    fn configured(name: &str, processing: bool) -> Self {
        NodeProperties {
            cluster_activated: true,
            processing_server: processing,
            server_id: name.to_string(),
        }
    }

    /// A `.properties` file over the shipped defaults (`key = value` lines, `#`/`!` comments;
    /// booleans as Java's `Boolean.valueOf`: "true" in any case, anything else false).
    fn parse(text: &str) -> Self {
        let mut p = Self::shipped();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some((key, value)) = line.split_once(['=', ':']) else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "cluster.activated" => p.cluster_activated = value.eq_ignore_ascii_case("true"),
                "processingServer" => p.processing_server = value.eq_ignore_ascii_case("true"),
                "cluster.node.serverId" if !value.is_empty() => p.server_id = value.to_string(),
                _ => {}
            }
        }
        p
    }

    fn render(&self) -> String {
        format!(
            "cluster.activated = {}\ncluster.node.serverId = {}\nprocessingServer = {}\n",
            self.cluster_activated, self.server_id, self.processing_server
        )
    }
}

/// The configuration folder of release `version` in a node's folder.
fn release_config(dir: &Path, version: &str) -> PathBuf {
    dir.join("releases")
        .join(version)
        .join("digital-factory-config")
}

fn node_properties_path(dir: &Path, version: &str) -> PathBuf {
    release_config(dir, version)
        .join("jahia")
        .join("jahia.node.properties")
}

/// Writes the node's configuration into its installed release, as the lab's cluster was set up
/// (clustered; `processing` for the processing node).
pub(super) fn write_installed_config(
    dir: &Path,
    version: &str,
    name: &str,
    processing: bool,
) -> Result<(), String> {
    let path = node_properties_path(dir, version);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(&path, NodeProperties::configured(name, processing).render())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The settings the node's installed release gives it at start-up.
pub(super) fn read_node_properties(dir: &Path, version: &str) -> Result<NodeProperties, String> {
    let path = node_properties_path(dir, version);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(NodeProperties::parse(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NodeProperties::shipped()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Installs release `version` beside the others: a fresh unpacked release has no
/// configuration of its own; `carry_config` copies the running release's
/// `digital-factory-config` folder into it (what the real target's `install` does).
pub(super) fn install_release(
    dir: &Path,
    from: &str,
    to: &str,
    carry_config: bool,
) -> Result<(), String> {
    let release = dir.join("releases").join(to);
    std::fs::create_dir_all(&release)
        .map_err(|e| format!("cannot create {}: {e}", release.display()))?;
    if !carry_config || from == to {
        return Ok(());
    }
    let src = node_properties_path(dir, from);
    let dest = node_properties_path(dir, to);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    match std::fs::copy(&src, &dest) {
        Ok(_) => Ok(()),
        // Nothing to carry: the running release runs on the shipped settings too.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot copy {}: {e}", src.display())),
    }
}

/// The HTTP sessions one Jahia node holds: in its JVM's memory and nowhere else. "For
/// authenticated users, the Jahia stores data in the HTTP session. By default, this data is
/// stored in the memory of the server, where requests of a session are routed to. When the
/// server is shut down, all this session data disappears and the user will have to login
/// again" (Jahia Store, "Distributed Sessions" module page,
/// store.jahia.com/module/distributed-sessions, read 2026-12; replicating them takes that
/// add-on module, which the lab's cluster, like the seed guide's, does not have). So a session
/// lives as long as the JVM that created it: a stop, a start or a crash (a new generation of
/// the node) starts with none.
///
/// What the lab keeps in a session is what the tools page needs of it: the `toolAccessToken`s
/// the tools filter issued to it (Jahia/tools `ToolsAccessTokenFilter`, `generateAndStoreToken`
/// keeps them in a cache in the HTTP session, bounded at [`MAX_TOKENS`]), so a token is only
/// good on the node that issued it, and only until that node stops.
#[derive(Debug, Default)]
pub(crate) struct HttpSessions {
    generation: u64,
    /// Session id -> the tools tokens issued to it.
    ids: BTreeMap<String, BTreeSet<String>>,
}

/// Sessions one node keeps at most (a lab bound; Tomcat's `maxActiveSessions` is unlimited by
/// default: Apache Tomcat 9 configuration reference, "The Manager Component",
/// `maxActiveSessions`, default -1): past it the oldest JVM state is dropped as a restart would.
const MAX_HTTP_SESSIONS: usize = 10_000;

/// Tools tokens one session keeps at most (bounded like the filter's token cache, 5000 tokens
/// per session); past it the session's cache starts over.
const MAX_TOKENS: usize = 5000;

/// The node's live sessions, emptied when the JVM that held them is gone.
fn live_sessions(n: &mut NodeState) -> &mut BTreeMap<String, BTreeSet<String>> {
    if n.http_sessions.generation != n.generation {
        n.http_sessions.ids.clear();
        n.http_sessions.generation = n.generation;
    }
    &mut n.http_sessions.ids
}

/// Whether the node runs with clustering on (the lab's cluster before any start reads it).
fn clustered(n: &NodeState) -> bool {
    n.jahia_props.as_ref().is_none_or(|p| p.cluster_activated)
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
    /// the user starts over, logged out. Tomcat gives the new session a new id: it reuses a
    /// client's id only when a web application of the same host holds it (Apache Tomcat 9
    /// `org.apache.catalina.connector.Request#doGetSession`, with the context's
    /// `validateClientProvidedNewSessionId` default true), which another JVM's session never is.
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
        if cookie.is_some_and(|c| ids.contains_key(c)) {
            return Some(None);
        }
        if ids.len() >= MAX_HTTP_SESSIONS {
            ids.clear();
        }
        let id = new_id();
        ids.insert(id.clone(), BTreeSet::new());
        Some(Some(id))
    }

    /// Jahia's tools filter (`generateAndStoreToken`): keeps `token` in session `session` of
    /// node `idx`. False when that node's JVM does not hold the session (or does not run).
    pub fn jahia_store_token(&self, idx: usize, session: &str, token: &str) -> bool {
        let mut g = self.inner();
        let Some(n) = g
            .nodes
            .get_mut(idx)
            .filter(|n| n.state == RunState::Running)
        else {
            return false;
        };
        let Some(tokens) = live_sessions(n).get_mut(session) else {
            return false;
        };
        if tokens.len() >= MAX_TOKENS {
            tokens.clear();
        }
        tokens.insert(token.to_string());
        true
    }

    /// Jahia's tools filter (`validateToken`): whether `token` was issued to session `session`
    /// on node `idx` — a session another node issued, or one a stop lost, holds no token.
    pub fn jahia_token_valid(&self, idx: usize, session: &str, token: &str) -> bool {
        let mut g = self.inner();
        match g.nodes.get_mut(idx) {
            Some(n) if n.state == RunState::Running => live_sessions(n)
                .get(session)
                .is_some_and(|tokens| tokens.contains(token)),
            _ => false,
        }
    }

    /// Jahia: the user logs out (`/cms/logout` invalidates the session). False when this node
    /// did not hold it.
    pub fn jahia_logout(&self, idx: usize, cookie: &str) -> bool {
        let mut g = self.inner();
        match g.nodes.get_mut(idx) {
            Some(n) if n.state == RunState::Running => live_sessions(n).remove(cookie).is_some(),
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
    ///
    /// Only clustered nodes (`cluster.activated = true` at their start) take part: a node that
    /// started without it has no Cellar at all ([`Cluster::jahia_clustered`]).
    pub fn jahia_members(&self, idx: usize) -> Vec<String> {
        let g = self.inner();
        let Some(me) = g.nodes.get(idx) else {
            return Vec::new();
        };
        if me.state != RunState::Running {
            return Vec::new();
        }
        if !clustered(me) {
            return vec![me.name.clone()];
        }
        g.nodes
            .iter()
            .filter(|n| n.state == RunState::Running && n.schema == me.schema && clustered(n))
            .map(|n| n.name.clone())
            .collect()
    }

    /// Jahia: whether node `idx` started with clustering on (`cluster.activated`). Without it
    /// Jahia does not provide the `org.jahia.dx.clustering` capability its clustering features
    /// (Karaf Cellar) require (Jahia/jahia 8.2.0.0, `war/src/data/resources/karaf/etc/
    /// custom.properties`: `jahia-clustering-true=org.jahia.dx.clustering`,
    /// `jahia-clustering-false=`), so the node runs alone and its Karaf shell has no `cluster:`
    /// commands.
    pub fn jahia_clustered(&self, idx: usize) -> bool {
        self.inner().nodes.get(idx).is_some_and(clustered)
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
        let n = g.node_mut(idx)?;
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
            g.node(idx)?.marker_path()
        };
        std::fs::write(&path, b"").map_err(|e| OpError::Internal(e.to_string()))?;
        Ok(path)
    }
}
