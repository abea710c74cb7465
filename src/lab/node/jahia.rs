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
/// the tools filter issued to it, so a token is only good on the node that issued it, and only
/// until that node stops.
///
/// Bounded as the filter bounds them and, for the node as a whole, by the lab. Jahia/tools
/// `csrf/ToolsAccessTokenFilter.java` (`generateAndStoreToken`) keeps a session's tokens in a
/// map in the session, at most `MAX_TOKENS = 5000`: past it the oldest token is removed; it
/// also drops tokens older than `toolsTokenExpiration` (20 minutes by default), and Tomcat
/// drops a session idle for its `session-timeout` (30 minutes in Tomcat 9's `conf/web.xml`).
/// So the real node's tokens are bounded by time, with no count for the node as a whole. The
/// lab keeps no such clocks, so it bounds the node by count instead ([`MAX_NODE_TOKENS`]).
#[derive(Debug, Default)]
pub(crate) struct HttpSessions {
    generation: u64,
    /// Session id -> the tools tokens issued to it, each with its number in `issued`.
    ids: BTreeMap<String, BTreeMap<String, u64>>,
    /// Every token the node holds, by number (the oldest first): its session and itself.
    issued: BTreeMap<u64, (String, String)>,
    /// The next token's number.
    next: u64,
}

/// Sessions one node keeps at most (a lab bound; Tomcat's `maxActiveSessions` is unlimited by
/// default: Apache Tomcat 9 configuration reference, "The Manager Component",
/// `maxActiveSessions`, default -1): past it the oldest JVM state is dropped as a restart would.
const MAX_HTTP_SESSIONS: usize = 10_000;

/// Tools tokens one session keeps at most: the filter's `MAX_TOKENS` (Jahia/tools
/// `ToolsAccessTokenFilter`); past it the session's oldest token goes.
const MAX_TOKENS: usize = 5000;

/// Tools tokens one node keeps at most, over all its sessions: the lab's own bound (see
/// [`HttpSessions`]: the real node bounds them by age, not count), so that a flood of sessions
/// cannot grow the lab to [`MAX_HTTP_SESSIONS`] x [`MAX_TOKENS`]. Past it the node's oldest
/// token goes, as the filter does within a session. Safe for the procedures: they use a token
/// seconds after it was issued, with far fewer tokens issued in between; a token dropped
/// earlier is answered "Missing token", as a real token past its expiry is.
const MAX_NODE_TOKENS: usize = 4 * MAX_TOKENS;

impl HttpSessions {
    /// A request with session cookie `cookie`: `None` when the session is held here, else the
    /// new session's id (from `new_id`).
    fn session(&mut self, cookie: Option<&str>, new_id: impl FnOnce() -> String) -> Option<String> {
        if cookie.is_some_and(|c| self.ids.contains_key(c)) {
            return None;
        }
        if self.ids.len() >= MAX_HTTP_SESSIONS {
            self.ids.clear();
            self.issued.clear();
        }
        let id = new_id();
        self.ids.insert(id.clone(), BTreeMap::new());
        Some(id)
    }

    /// Keeps `token` in `session` (where it already is, it keeps its place, as the filter's
    /// `validateToken` leaves a token as it was); false when the session is not held here.
    fn store_token(&mut self, session: &str, token: &str) -> bool {
        let Some(tokens) = self.ids.get_mut(session) else {
            return false;
        };
        if tokens.contains_key(token) {
            return true;
        }
        if tokens.len() >= MAX_TOKENS {
            let oldest = tokens.values().min().copied();
            if let Some(n) = oldest {
                self.forget(n);
            }
        }
        let n = self.next;
        self.next += 1;
        if let Some(tokens) = self.ids.get_mut(session) {
            tokens.insert(token.to_string(), n);
        }
        self.issued
            .insert(n, (session.to_string(), token.to_string()));
        while self.issued.len() > MAX_NODE_TOKENS {
            match self.issued.keys().next().copied() {
                Some(oldest) => self.forget(oldest),
                None => break,
            }
        }
        true
    }

    /// Token number `n` goes, from the node's list and its session.
    fn forget(&mut self, n: u64) {
        if let Some((session, token)) = self.issued.remove(&n) {
            if let Some(tokens) = self.ids.get_mut(&session) {
                tokens.remove(&token);
            }
        }
    }

    /// Whether `token` was issued to `session` here (and not dropped since).
    fn token_valid(&self, session: &str, token: &str) -> bool {
        self.ids
            .get(session)
            .is_some_and(|tokens| tokens.contains_key(token))
    }

    /// The session is invalidated, its tokens with it; false when it was not held here.
    fn logout(&mut self, session: &str) -> bool {
        match self.ids.remove(session) {
            Some(tokens) => {
                for n in tokens.values() {
                    self.issued.remove(n);
                }
                true
            }
            None => false,
        }
    }

    /// Tokens the node holds, over all its sessions.
    #[cfg(test)]
    fn token_count(&self) -> usize {
        self.issued.len()
    }
}

/// The node's live sessions, emptied when the JVM that held them is gone.
fn live_sessions(n: &mut NodeState) -> &mut HttpSessions {
    if n.http_sessions.generation != n.generation {
        n.http_sessions = HttpSessions {
            generation: n.generation,
            ..HttpSessions::default()
        };
    }
    &mut n.http_sessions
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
        Some(live_sessions(n).session(cookie, new_id))
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
        live_sessions(n).store_token(session, token)
    }

    /// Jahia's tools filter (`validateToken`): whether `token` was issued to session `session`
    /// on node `idx` — a session another node issued, or one a stop lost, holds no token.
    pub fn jahia_token_valid(&self, idx: usize, session: &str, token: &str) -> bool {
        let mut g = self.inner();
        match g.nodes.get_mut(idx) {
            Some(n) if n.state == RunState::Running => live_sessions(n).token_valid(session, token),
            _ => false,
        }
    }

    /// Jahia: the user logs out (`/cms/logout` invalidates the session). False when this node
    /// did not hold it.
    pub fn jahia_logout(&self, idx: usize, cookie: &str) -> bool {
        let mut g = self.inner();
        match g.nodes.get_mut(idx) {
            Some(n) if n.state == RunState::Running => live_sessions(n).logout(cookie),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions_with(n: usize) -> (HttpSessions, Vec<String>) {
        let mut s = HttpSessions::default();
        let ids = (0..n)
            .map(|i| s.session(None, || format!("s{i}")).expect("a new session"))
            .collect();
        (s, ids)
    }

    /// The filter's own bound (`ToolsAccessTokenFilter`: at most 5000 a session, the oldest
    /// removed past it): the first token goes, the second and the newest stay good.
    #[test]
    fn a_session_past_its_token_bound_drops_its_oldest_token() {
        let (mut s, ids) = sessions_with(1);
        for i in 0..=MAX_TOKENS {
            assert!(s.store_token(&ids[0], &format!("t{i}")));
        }
        assert_eq!(s.token_count(), MAX_TOKENS);
        assert!(!s.token_valid(&ids[0], "t0"), "the oldest token is dropped");
        assert!(s.token_valid(&ids[0], "t1"));
        assert!(s.token_valid(&ids[0], &format!("t{MAX_TOKENS}")));
        // A token kept again (a request that carries it) keeps its place.
        assert!(s.store_token(&ids[0], "t1"));
        assert!(s.store_token(&ids[0], "new"));
        assert!(!s.token_valid(&ids[0], "t1"), "t1 was the oldest still");
    }

    /// A flood of sessions, each filling its token cache, holds no more than the node's bound:
    /// the node's oldest tokens go first (the first sessions' are refused), the newest stay.
    #[test]
    fn a_flood_of_sessions_and_tokens_stays_within_the_nodes_bound() {
        let sessions = 3 * MAX_NODE_TOKENS / MAX_TOKENS;
        let (mut s, ids) = sessions_with(sessions);
        for id in &ids {
            for t in 0..MAX_TOKENS {
                assert!(s.store_token(id, &format!("{id}-t{t}")));
            }
            assert!(s.token_count() <= MAX_NODE_TOKENS, "{}", s.token_count());
        }
        assert_eq!(s.token_count(), MAX_NODE_TOKENS);
        let held: usize = s.ids.values().map(BTreeMap::len).sum();
        assert_eq!(
            held, MAX_NODE_TOKENS,
            "the sessions hold what the node counts"
        );
        let first = &ids[0];
        let last = &ids[sessions - 1];
        assert!(!s.token_valid(first, &format!("{first}-t0")));
        assert!(!s.token_valid(first, &format!("{first}-t{}", MAX_TOKENS - 1)));
        assert!(s.token_valid(last, &format!("{last}-t0")));
        assert!(s.token_valid(last, &format!("{last}-t{}", MAX_TOKENS - 1)));
        // The sessions themselves stay (logged in, with no tokens): only tokens went.
        assert!(s.session(Some(first), || "unused".into()).is_none());
    }

    /// Logging out takes the session's tokens from the node's count.
    #[test]
    fn a_logout_takes_its_tokens_with_it() {
        let (mut s, ids) = sessions_with(2);
        for t in 0..3 {
            assert!(s.store_token(&ids[0], &format!("a{t}")));
            assert!(s.store_token(&ids[1], &format!("b{t}")));
        }
        assert!(s.logout(&ids[0]));
        assert!(!s.logout(&ids[0]));
        assert_eq!(s.token_count(), 3);
        assert!(!s.store_token(&ids[0], "late"), "no such session any more");
        assert!(s.token_valid(&ids[1], "b0"));
    }
}
