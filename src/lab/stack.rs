//! The closest the lab gets to a Neo4j HA cluster run by a CloudFormation stack: the stack's
//! parameters and its instances' data volumes, changed through the admin server.
//!
//! - `GET /_lab/stack` -> the stack's parameters and volume tags
//! - `POST /_lab/stack` `{"DockerImage":"repo:3.3.5","Mode":"HA","SlaveMode":"SINGLE",
//!   "AllowUpgrade":"True","MaxSize":"1","DesiredCapacity":"1"}` — like `aws cloudformation
//!   update-stack --use-previous-template` followed by `wait stack-update-complete`: absent or
//!   empty parameters keep their previous value. The instances are reconciled one at a time and
//!   the call returns once every restarted instance is running or has failed (a failed start is
//!   reported in the answer, not as an error: the procedure's verify gate catches it).
//! - `POST /_lab/retag-volumes` `{"from":"neo4j-data","to":"neo4j-data-old"}` — renames the
//!   `Name` tag of every detached (stopped instance's) volume tagged `from`; 404 when there is
//!   none.
//!
//! The stack's instances are the nodes of the first node's group (a neo4j lab's blue group): the
//! first is the master, the others are the slaves. `Mode` applies to the master; `SlaveMode` to
//! the slaves (in `SINGLE` they run read-only, catching up); `DesiredCapacity` counts the master
//! plus the slaves kept in service (the others are stopped, as if scaled in). The lab does not
//! tell HA from causal clustering: its `CORE` counts as `HA`.
//!
//! A new image whose store format differs from the store an instance runs on is not rolled
//! onto that running instance: a real deployment would fail to start it (no `AllowUpgrade`) and
//! keep the old container serving. It takes effect when the stack next restarts the instance.
//! A slave whose volume no longer carries the stack's data-volume tag starts on a fresh volume
//! and catches up with the master; one that finds its old volume refuses the old store.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::config::store_format;
use super::node::{Cluster, OpError, RunState};
use super::LabShared;

/// The `Name` tag the stack's instances look for when they attach their data volume.
pub const DATA_VOLUME: &str = "neo4j-data";

/// Stack updates run one at a time, as CloudFormation does per stack.
static UPDATE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StackState {
    docker_image: String,
    mode: String,
    slave_mode: String,
    allow_upgrade: bool,
    max_size: usize,
    desired_capacity: usize,
    /// Instance name -> the `Name` tag of its data volume.
    volumes: BTreeMap<String, String>,
}

pub(crate) fn routes() -> Router<LabShared> {
    Router::new()
        .route("/_lab/stack", get(show).post(update))
        .route("/_lab/retag-volumes", post(retag))
}

fn answer(result: Result<Value, OpError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

fn state_path(cluster: &Cluster) -> PathBuf {
    cluster.data_dir.join("stack.json")
}

/// The stack's instances: the first node's group, master first.
fn instances(cluster: &Cluster) -> Vec<usize> {
    let g = cluster.inner();
    let Some(group) = g.nodes.first().map(|n| n.group.clone()) else {
        return Vec::new();
    };
    (0..g.nodes.len())
        .filter(|&i| g.nodes[i].group == group)
        .collect()
}

fn load(cluster: &Cluster) -> Result<StackState, OpError> {
    let path = state_path(cluster);
    match std::fs::read(&path) {
        Ok(text) => serde_json::from_slice(&text)
            .map_err(|e| OpError::Internal(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Never updated yet: the stack as the lab started it.
            let ids = instances(cluster);
            let g = cluster.inner();
            let image = ids
                .first()
                .map(|&i| format!("neo4j:{}", g.nodes[i].version))
                .unwrap_or_default();
            Ok(StackState {
                docker_image: image,
                mode: "HA".into(),
                slave_mode: "HA".into(),
                allow_upgrade: false,
                max_size: ids.len(),
                desired_capacity: ids.len(),
                volumes: ids
                    .iter()
                    .map(|&i| (g.nodes[i].name.clone(), DATA_VOLUME.to_string()))
                    .collect(),
            })
        }
        Err(e) => Err(OpError::Internal(format!("{}: {e}", path.display()))),
    }
}

fn save(cluster: &Cluster, state: &StackState) -> Result<(), OpError> {
    let path = state_path(cluster);
    let text = serde_json::to_vec_pretty(state).map_err(|e| OpError::Internal(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| OpError::Internal(format!("{}: {e}", path.display())))
}

async fn show(State(s): State<LabShared>) -> Response {
    answer(load(&s.cluster).map(|st| json!(st)))
}

/// A parameter's new value: `None` when absent or empty (keep the previous one).
fn param(v: &Value, key: &str) -> Result<Option<String>, OpError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(OpError::BadRequest(format!(
            "parameter {key} must be a string, not {other}"
        ))),
    }
}

fn mode_param(v: &Value, key: &str, old: &str) -> Result<String, OpError> {
    match param(v, key)?.map(|m| m.to_ascii_uppercase()) {
        None => Ok(old.to_string()),
        Some(m) if m == "HA" || m == "SINGLE" => Ok(m),
        Some(m) => Err(OpError::BadRequest(format!(
            "{key} must be HA or SINGLE, not {m:?}"
        ))),
    }
}

fn count_param(v: &Value, key: &str, old: usize) -> Result<usize, OpError> {
    match param(v, key)? {
        None => Ok(old),
        Some(n) => n
            .parse()
            .map_err(|_| OpError::BadRequest(format!("{key} must be a number, not {n:?}"))),
    }
}

/// The version an image runs: its tag (`repo:3.3.5` -> `3.3.5`).
fn image_version(image: &str) -> Result<String, OpError> {
    let tag = image.rsplit_once(':').map_or(image, |(_, t)| t);
    store_format(tag)
        .map(|_| tag.to_string())
        .map_err(|_| OpError::BadRequest(format!("DockerImage {image:?} has no version tag")))
}

fn apply_params(old: &StackState, v: &Value, size: usize) -> Result<StackState, OpError> {
    let mut new = old.clone();
    if let Some(image) = param(v, "DockerImage")? {
        image_version(&image)?;
        new.docker_image = image;
    }
    new.mode = mode_param(v, "Mode", &old.mode)?;
    new.slave_mode = mode_param(v, "SlaveMode", &old.slave_mode)?;
    if let Some(a) = param(v, "AllowUpgrade")? {
        new.allow_upgrade = match a.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(OpError::BadRequest(format!(
                    "AllowUpgrade must be True or False, not {a:?}"
                )))
            }
        };
    }
    new.max_size = count_param(v, "MaxSize", old.max_size)?;
    new.desired_capacity = count_param(v, "DesiredCapacity", old.desired_capacity)?;
    if new.desired_capacity > new.max_size {
        return Err(OpError::BadRequest(format!(
            "DesiredCapacity {} is above MaxSize {}",
            new.desired_capacity, new.max_size
        )));
    }
    if new.max_size > size {
        return Err(OpError::BadRequest(format!(
            "MaxSize {} is above the lab stack's {size} instances",
            new.max_size
        )));
    }
    Ok(new)
}

async fn update(State(s): State<LabShared>, body: Bytes) -> Response {
    let _one_at_a_time = UPDATE.lock().await;
    answer(update_stack(&s.cluster, &body).await)
}

async fn update_stack(cluster: &Arc<Cluster>, body: &[u8]) -> Result<Value, OpError> {
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| OpError::BadRequest(format!("body is not JSON: {e}")))?
    };
    let ids = instances(cluster);
    let old = load(cluster)?;
    let mut new = apply_params(&old, &v, ids.len())?;
    let version = image_version(&new.docker_image)?;
    let mut report = Vec::new();
    // Scale in first, so the instances that stay do not catch up from leaving ones.
    for (pos, &idx) in ids.iter().enumerate() {
        if pos >= new.desired_capacity
            && cluster
                .snapshot_node(idx)
                .is_some_and(|n| n.state != RunState::Stopped)
        {
            cluster.stop(idx)?;
            report.push(json!({"instance": cluster.name_of(idx), "action": "terminated"}));
        }
    }
    for (pos, &idx) in ids.iter().enumerate().take(new.desired_capacity) {
        let master = pos == 0;
        let mode = if master {
            new.mode.clone()
        } else {
            new.slave_mode.clone()
        };
        let read_only = !master && new.slave_mode == "SINGLE";
        let Some(snap) = cluster.snapshot_node(idx) else {
            continue;
        };
        let clustered = |m: &str| {
            if m == "CORE" {
                "HA".to_string()
            } else {
                m.to_string()
            }
        };
        let config_same = clustered(&snap.mode) == mode
            && snap.allow_upgrade == new.allow_upgrade
            && snap.read_only == read_only;
        let up = matches!(snap.state, RunState::Running | RunState::Starting);
        if up && config_same {
            if snap.version == version {
                continue;
            }
            let same_format = store_format(&version).ok() == Some(snap.store_format);
            if !same_format {
                report.push(json!({"instance": snap.name, "action": "image staged",
                    "detail": format!("{version} needs a store upgrade; the instance keeps {}", snap.version)}));
                continue;
            }
        }
        cluster.stop(idx)?;
        if !master {
            fresh_volume_if_retagged(cluster, idx, &mut new, &version)?;
        }
        cluster.install(idx, &version)?;
        {
            let mut g = cluster.inner();
            if let Some(n) = g.nodes.get_mut(idx) {
                n.mode = mode.clone();
                n.allow_upgrade = new.allow_upgrade;
                n.read_only = read_only;
            }
        }
        cluster.start(idx)?;
        let end = settle(cluster, idx).await;
        report.push(
            json!({"instance": snap.name, "action": "replaced", "version": version,
            "mode": mode, "state": end.0, "reason": end.1}),
        );
    }
    save(cluster, &new)?;
    Ok(json!({"ok": true, "status": "UPDATE_COMPLETE", "stack": new, "instances": report}))
}

/// A slave whose volume lost the data-volume tag gets a fresh one, created at the image's
/// format and empty: it catches up with the master when it starts.
fn fresh_volume_if_retagged(
    cluster: &Cluster,
    idx: usize,
    state: &mut StackState,
    version: &str,
) -> Result<(), OpError> {
    let name = cluster.name_of(idx);
    if state.volumes.get(&name).map(String::as_str) == Some(DATA_VOLUME) {
        return Ok(());
    }
    let format = store_format(version).map_err(|e| OpError::BadRequest(e.to_string()))?;
    let mut g = cluster.inner();
    let key = g
        .nodes
        .get(idx)
        .map(|n| n.store_key.clone())
        .ok_or_else(|| OpError::NotFound("no such node".into()))?;
    if let Some(store) = g.stores.get_mut(&key) {
        store.file.data.clear();
        store.file.format = format;
        store.save()?;
    }
    state.volumes.insert(name, DATA_VOLUME.to_string());
    Ok(())
}

/// Waits until the instance is running or failed (bounded by the lab's own timing).
async fn settle(cluster: &Cluster, idx: usize) -> (String, Option<String>) {
    let t = cluster.timing;
    let limit = Duration::from_millis(2 * (t.startup_ms + t.migration_ms) + 5_000);
    let start = Instant::now();
    loop {
        if let Some(n) = cluster.snapshot_node(idx) {
            if matches!(n.state, RunState::Running | RunState::Failed) || start.elapsed() > limit {
                return (n.state.as_str().to_string(), n.reason);
            }
        } else {
            return ("gone".into(), None);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn retag(State(s): State<LabShared>, body: Bytes) -> Response {
    let _one_at_a_time = UPDATE.lock().await;
    answer(retag_volumes(&s.cluster, &body))
}

fn retag_volumes(cluster: &Cluster, body: &[u8]) -> Result<Value, OpError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| OpError::BadRequest(format!("body is not JSON: {e}")))?;
    let from = param(&v, "from")?.ok_or_else(|| OpError::BadRequest("missing \"from\"".into()))?;
    let to = param(&v, "to")?.ok_or_else(|| OpError::BadRequest("missing \"to\"".into()))?;
    let mut state = load(cluster)?;
    let mut renamed = Vec::new();
    for idx in instances(cluster) {
        let Some(n) = cluster.snapshot_node(idx) else {
            continue;
        };
        // An attached volume (a running instance's) keeps its tag, as the master's does.
        if n.state != RunState::Stopped {
            continue;
        }
        if let Some(tag) = state.volumes.get_mut(&n.name).filter(|t| **t == from) {
            tag.clone_from(&to);
            renamed.push(n.name);
        }
    }
    if renamed.is_empty() {
        return Err(OpError::NotFound(format!(
            "no detached volume tagged Name={from}"
        )));
    }
    save(cluster, &state)?;
    Ok(json!({"ok": true, "renamed": renamed, "from": from, "to": to}))
}
