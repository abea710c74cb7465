//! Lab operations and target bindings the seed procedures need beyond the core set: saving and
//! restoring a Neo4j node's configuration (`cp neo4j.conf neo4j.conf.save` and back), moving a
//! backup onto a server, a cluster-wide backup by group and a write through the load balancer.
//!
//! Node operations (`POST {node}/_lab/{op}`, also under `/_lab/nodes/{node}/{op}`):
//! - `save-config` — copies the node's `dbms.mode`/`dbms.allow_upgrade` to `neo4j.conf.save`
//! - `restore-config` — puts the saved configuration back (404 when nothing was saved)
//! - `fetch-backup` `{"name":"b1"}` — copies the backup onto the node's own disk (404 when the
//!   backup does not exist)
//!
//! Lab-wide route: `POST /_lab/routed-tx/{group}` with a `/db/data/transaction/commit` body —
//! what a routing driver (`bolt+routing://`, e.g. `cypher-shell -a bolt+routing://green1:7687`
//! in 3.x) does: it asks the cluster for its routing table and sends a write to the WRITE
//! server, the Raft leader. Runs the transaction on the group's leader with the node's own
//! endpoint logic; 503 when the group has no leader serving.

use std::collections::BTreeMap;
use std::path::PathBuf;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::node::{Cluster, OpError};
use super::personality::neo4j_tx;
use super::store::valid_name;
use super::{LabShared, RunState};
use crate::procedure::model::{Action, HttpSpec};

/// The part of `neo4j.conf` the lab models.
#[derive(Debug, Serialize, Deserialize)]
struct SavedConf {
    mode: String,
    allow_upgrade: bool,
}

const SAVED_CONF: &str = "neo4j.conf.save";

/// The seed node operations; `None` when `op` is not one of them.
pub(crate) fn dispatch(
    cluster: &Cluster,
    idx: usize,
    op: &str,
    body: &Value,
) -> Option<Result<Value, OpError>> {
    let result = match op {
        "save-config" => save_config(cluster, idx),
        "restore-config" => restore_config(cluster, idx),
        "fetch-backup" => match body.get("name").and_then(Value::as_str) {
            Some(name) => fetch_backup(cluster, idx, name),
            None => Err(OpError::BadRequest("missing \"name\"".into())),
        },
        _ => return None,
    };
    Some(result)
}

pub(crate) fn routes() -> Router<LabShared> {
    Router::new().route("/_lab/routed-tx/{group}", routing::post(routed_tx))
}

async fn routed_tx(
    State(s): State<LabShared>,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // A driver authenticates like any client (Bolt's `basic` auth token, the same user).
    if let Some(refused) = s
        .cluster
        .neo4j_auth
        .as_ref()
        .and_then(|c| c.refuse(&headers))
    {
        return refused;
    }
    let leader = s.cluster.snapshot_all().into_iter().position(|n| {
        n.group.as_deref() == Some(group.as_str())
            && n.state == RunState::Running
            && n.role == "leader"
    });
    match leader.filter(|&i| s.cluster.is_ready(i)) {
        Some(idx) => {
            let (status, body) = neo4j_tx::run(&s.cluster, idx, &body).await;
            (status, Json(body)).into_response()
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": format!(
                "no leader in group {group}: the routing table has no WRITE server"
            )})),
        )
            .into_response(),
    }
}

fn node_dir(cluster: &Cluster, idx: usize) -> Result<PathBuf, OpError> {
    cluster.inner().node(idx).map(|n| n.dir.clone())
}

fn save_config(cluster: &Cluster, idx: usize) -> Result<Value, OpError> {
    let (dir, conf) = {
        let g = cluster.inner();
        let n = g.node(idx)?;
        let conf = SavedConf {
            mode: n.mode.clone(),
            allow_upgrade: n.allow_upgrade,
        };
        (n.dir.clone(), conf)
    };
    let path = dir.join(SAVED_CONF);
    let text = serde_json::to_vec(&conf).map_err(|e| OpError::Internal(e.to_string()))?;
    std::fs::write(&path, text)
        .map_err(|e| OpError::Internal(format!("{}: {e}", path.display())))?;
    Ok(
        json!({"path": path.display().to_string(), "mode": conf.mode,
              "allow_upgrade": conf.allow_upgrade}),
    )
}

fn restore_config(cluster: &Cluster, idx: usize) -> Result<Value, OpError> {
    let path = node_dir(cluster, idx)?.join(SAVED_CONF);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(OpError::NotFound(format!(
                "no saved configuration at {}; save-config first",
                path.display()
            )))
        }
        Err(e) => return Err(OpError::Internal(format!("{}: {e}", path.display()))),
    };
    let conf: SavedConf = serde_json::from_slice(&text)
        .map_err(|e| OpError::Internal(format!("{}: {e}", path.display())))?;
    let mut g = cluster.inner();
    let n = g.node_mut(idx)?;
    n.mode = conf.mode.clone();
    n.allow_upgrade = conf.allow_upgrade;
    Ok(json!({"mode": conf.mode, "allow_upgrade": conf.allow_upgrade}))
}

fn fetch_backup(cluster: &Cluster, idx: usize, name: &str) -> Result<Value, OpError> {
    if !valid_name(name) {
        return Err(OpError::BadRequest(format!(
            "backup name {name:?} must be 1-64 letters, digits, '-' or '_'"
        )));
    }
    let src = cluster
        .data_dir
        .join("backups")
        .join(format!("{name}.json"));
    if !src.exists() {
        return Err(OpError::NotFound(format!("no backup named {name:?}")));
    }
    let dir = node_dir(cluster, idx)?.join("backups");
    std::fs::create_dir_all(&dir)
        .map_err(|e| OpError::Internal(format!("{}: {e}", dir.display())))?;
    let dest = dir.join(format!("{name}.json"));
    std::fs::copy(&src, &dest)
        .map_err(|e| OpError::Internal(format!("{}: {e}", dest.display())))?;
    Ok(json!({"path": dest.display().to_string()}))
}

fn post(url: String, body: Option<&str>, timeout_secs: u64) -> Action {
    let mut spec = super::target_out::http("POST", url, body);
    spec.timeout_secs = timeout_secs;
    Action::Http(spec)
}

/// The write the procedures' `write-check` commits (the real target sends the same statement).
const WRITE_CHECK_BODY: &str = r#"{"statements":[{"statement":"MERGE (c:FlightdeckCheck {id: 1}) SET c.version = $v, c.at = timestamp()","parameters":{"v":"${arg.value}"}}]}"#;

/// Variables the seed procedures use, with the names a real target gives them.
pub(crate) fn vars(frontend_url: &str) -> BTreeMap<String, String> {
    // The application's HTTP entry point: the load balancer.
    BTreeMap::from([("lb_url".to_string(), frontend_url.to_string())])
}

/// The bindings the seed procedures call, added to every lab target.
pub(crate) fn bindings(admin_url: &str) -> BTreeMap<String, Action> {
    let node_op =
        |op: &str, body: Option<&str>| post(format!("${{node.admin}}/_lab/{op}"), body, 30);
    BTreeMap::from([
        ("save-config".to_string(), node_op("save-config", None)),
        (
            "restore-config".to_string(),
            node_op("restore-config", None),
        ),
        (
            "transfer-backup".to_string(),
            node_op("fetch-backup", Some(r#"{"name":"${arg.name}"}"#)),
        ),
        (
            // Not about one node: the lab's admin server picks a running member of the group.
            "cluster-backup".to_string(),
            post(
                format!("{admin_url}/_lab/backup"),
                Some(r#"{"name":"${arg.name}","group":"${arg.group}"}"#),
                30,
            ),
        ),
        (
            // A write sent where a routing driver sends it: the group's Raft leader (a write
            // through the round-robin balancer fails on followers with NotALeader).
            "write-check".to_string(),
            Action::Http(HttpSpec {
                method: "POST".into(),
                url: format!("{admin_url}/_lab/routed-tx/${{arg.group}}"),
                headers: BTreeMap::from([(
                    "Content-Type".to_string(),
                    "application/json".to_string(),
                )]),
                body: Some(WRITE_CHECK_BODY.into()),
                expect_status: vec![200],
                wait_on: Vec::new(),
                fail_on: Vec::new(),
                expect_json: BTreeMap::from([("/errors#len".to_string(), json!(0))]),
                expect_text: None,
                expect: Vec::new(),
                timeout_secs: 10,
            }),
        ),
        (
            // Only the keys the step changes; every other keeps its live value (the wrapper
            // passes UsePreviousValue, as the real target's script does).
            "update-stack".to_string(),
            post(
                format!("{admin_url}/_lab/stack/changes"),
                Some(r#"{"changes":"${arg.parameters}"}"#),
                // Returns once every replaced instance is up or failed, one after the other.
                300,
            ),
        ),
        (
            "record-volumes".to_string(),
            post(
                format!("{admin_url}/_lab/record-volumes"),
                Some(r#"{"volume":"${arg.volume}"}"#),
                30,
            ),
        ),
        (
            // The lab's snapshot of the data volumes: a backup of the master's store (the
            // first running node of the stack's group, blue). The lab names backups with
            // letters, digits, '-' and '_' only, so not after the procedure's `pre-<version>`.
            "snapshot-volumes".to_string(),
            post(
                format!("{admin_url}/_lab/backup"),
                Some(r#"{"name":"ha-pre-upgrade","group":"blue"}"#),
                30,
            ),
        ),
        (
            "retag-volumes".to_string(),
            post(
                format!("{admin_url}/_lab/retag-volumes"),
                Some(r#"{"from":"${arg.from}","to":"${arg.to}"}"#),
                30,
            ),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_template_only_their_args_and_node() {
        let b = bindings("http://127.0.0.1:1");
        for name in [
            "save-config",
            "restore-config",
            "transfer-backup",
            "cluster-backup",
            "write-check",
            "update-stack",
            "retag-volumes",
        ] {
            assert!(b.contains_key(name), "{name}");
        }
        let Some(Action::Http(h)) = b.get("update-stack") else {
            panic!("update-stack is not http");
        };
        assert_eq!(h.url, "http://127.0.0.1:1/_lab/stack/changes");
        let body = h.body.clone().unwrap_or_default();
        assert!(body.contains("${arg.parameters}"), "{body}");
        assert_eq!(vars("http://x")["lb_url"], "http://x");
    }
}
