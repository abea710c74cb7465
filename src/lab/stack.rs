//! The closest the lab gets to a Neo4j HA cluster run by a CloudFormation stack: the stack's
//! parameters and its instances' data volumes, changed through the admin server.
//!
//! - `GET /_lab/stack` -> the stack's parameters and volume tags
//! - `POST /_lab/stack` `{"Parameters":[{"ParameterKey":"Mode","ParameterValue":"SINGLE"},
//!   {"ParameterKey":"DockerImage","UsePreviousValue":true}, ..]}` — `aws cloudformation
//!   update-stack --use-previous-template` followed by `wait stack-update-complete`, with
//!   CloudFormation's rules (AWS CloudFormation API reference, `Parameter`): a key the update
//!   does not list **goes back to the template's default** ("If you don't specify a key and value
//!   for a particular parameter, CloudFormation uses the default value that is specified in your
//!   template"); `UsePreviousValue` keeps the live value; an update that changes nothing fails
//!   with `ValidationError ... No updates are to be performed.` (400, the AWS CLI's wording, as
//!   quoted in Sceptre/sceptre#579); a listed key the template does not have, or an unlisted one
//!   without a default, fails the whole update with CloudFormation's `ValidationError`
//!   (`Parameters: [K] do not exist in the template`, `Parameters: [K] must have values`, as
//!   quoted in hashicorp/terraform#5560 for an update that did not resend its parameters). The
//!   lab template's parameters are the six below plus `InstanceType`: `DockerImage` has no
//!   default, `InstanceType` defaults to `t2.medium` (the lab's stack runs `r5.xlarge`, so a
//!   reset shows), the others default to the stack as created (HA, HA, False, the lab's size).
//!   The instances are reconciled one at a time and the call
//!   returns once every restarted instance is running or has failed (a failed start is reported
//!   in the answer, not as an error: the procedure's verify gate catches it).
//! - `POST /_lab/stack/changes` `{"changes":"Mode=SINGLE AllowUpgrade=True"}` — what a careful
//!   wrapper script does (the real target's `update-stack`): reads the stack's keys, passes the
//!   changed ones with their value and `UsePreviousValue` for every other, and takes "No
//!   updates are to be performed" as success (200 `"status":"NO_UPDATES"`).
//! - `POST /_lab/record-volumes` `{"volume":"neo4j-data"}` — records the IDs (`vol-<instance>`)
//!   of the volumes tagged `volume`, before the cluster shrinks.
//! - `POST /_lab/retag-volumes` `{"from":"neo4j-data","to":"neo4j-data-old"}` — renames the
//!   `Name` tag of the recorded volumes (attached or not) tagged `from`, except the master's;
//!   409 when nothing was recorded, 404 when no recorded volume is tagged `from`.
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
    /// A parameter the procedure never changes: a reset to the template's default shows here.
    #[serde(default = "live_instance_type")]
    instance_type: String,
    /// Instance name -> the `Name` tag of its data volume.
    volumes: BTreeMap<String, String>,
    /// Volume IDs recorded by `record-volumes`.
    #[serde(default)]
    recorded: Vec<String>,
}

/// The lab template's default `InstanceType`, and the value its stack was created with.
const TEMPLATE_INSTANCE_TYPE: &str = "t2.medium";
fn live_instance_type() -> String {
    "r5.xlarge".into()
}

/// The template's parameters, in the order `describe-stacks` lists them.
const KEYS: [&str; 7] = [
    "DockerImage",
    "Mode",
    "SlaveMode",
    "AllowUpgrade",
    "MaxSize",
    "DesiredCapacity",
    "InstanceType",
];

fn volume_id(instance: &str) -> String {
    format!("vol-{instance}")
}

pub(crate) fn routes() -> Router<LabShared> {
    Router::new()
        .route("/_lab/stack", get(show).post(update))
        .route("/_lab/stack/changes", post(update_changes))
        .route("/_lab/record-volumes", post(record))
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
    (g.nodes.iter().enumerate())
        .filter(|(_, n)| n.group == group)
        .map(|(i, _)| i)
        .collect()
}

fn load(cluster: &Cluster) -> Result<StackState, OpError> {
    let path = state_path(cluster);
    match std::fs::read(&path) {
        Ok(text) => serde_json::from_slice(&text)
            .map_err(|e| OpError::Internal(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Never updated yet: the stack as the lab started it, each instance on its volume.
            let mut state = created_state(cluster);
            let ids = instances(cluster);
            let g = cluster.inner();
            state.volumes = ids
                .iter()
                .filter_map(|&i| g.nodes.get(i))
                .map(|n| (n.name.clone(), DATA_VOLUME.to_string()))
                .collect();
            Ok(state)
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
/// The request's body as JSON.
fn json_body(body: &[u8]) -> Result<Value, OpError> {
    serde_json::from_slice(body).map_err(|e| OpError::BadRequest(format!("body is not JSON: {e}")))
}

/// A [`param`] the request must give.
fn required(v: &Value, key: &str) -> Result<String, OpError> {
    param(v, key)?.ok_or_else(|| OpError::BadRequest(format!("missing {key:?}")))
}

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
    if let Some(t) = param(v, "InstanceType")? {
        new.instance_type = t;
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

/// The answer CloudFormation gives an update that changes nothing (AWS CLI wording).
const NO_UPDATES: &str = "An error occurred (ValidationError) when calling the UpdateStack \
                          operation: No updates are to be performed.";

async fn update(State(s): State<LabShared>, body: Bytes) -> Response {
    let _one_at_a_time = UPDATE.lock().await;
    let result = json_body(&body).and_then(|v| resolve_parameters(&s.cluster, &v));
    match result {
        Ok(flat) => answer(update_stack(&s.cluster, &flat).await),
        Err(e) => answer(Err(e)),
    }
}

/// The template's default for a key: none for `DockerImage` (every deployment names its
/// image), `t2.medium` for `InstanceType`, the lab stack as created for the others.
fn template_default(key: &str, created: &StackState) -> Option<String> {
    match key {
        "DockerImage" => None,
        "InstanceType" => Some(TEMPLATE_INSTANCE_TYPE.into()),
        other => Some(current_value(created, other)),
    }
}

fn current_value(st: &StackState, key: &str) -> String {
    match key {
        "DockerImage" => st.docker_image.clone(),
        "Mode" => st.mode.clone(),
        "SlaveMode" => st.slave_mode.clone(),
        "AllowUpgrade" => if st.allow_upgrade { "True" } else { "False" }.into(),
        "MaxSize" => st.max_size.to_string(),
        "DesiredCapacity" => st.desired_capacity.to_string(),
        "InstanceType" => st.instance_type.clone(),
        _ => String::new(),
    }
}

/// CloudFormation's `Parameters` list -> every key's value: given, previous, or the template's
/// default when the key is not listed.
fn resolve_parameters(cluster: &Cluster, v: &Value) -> Result<Value, OpError> {
    let list = v
        .get("Parameters")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            OpError::BadRequest(
                "expected {\"Parameters\":[{\"ParameterKey\":..,\"ParameterValue\":..}|\
                 {\"ParameterKey\":..,\"UsePreviousValue\":true}]}"
                    .into(),
            )
        })?;
    let old = load(cluster)?;
    let created = created_state(cluster);
    let mut out = serde_json::Map::new();
    for p in list {
        let key = p
            .get("ParameterKey")
            .and_then(Value::as_str)
            .ok_or_else(|| OpError::BadRequest("a parameter without ParameterKey".into()))?;
        if !KEYS.contains(&key) {
            return Err(OpError::BadRequest(format!(
                "An error occurred (ValidationError) when calling the UpdateStack operation: \
                 Parameters: [{key}] do not exist in the template"
            )));
        }
        let previous = p.get("UsePreviousValue").and_then(Value::as_bool) == Some(true);
        let value = match (p.get("ParameterValue").and_then(Value::as_str), previous) {
            (Some(_), true) => {
                return Err(OpError::BadRequest(format!(
                    "parameter {key}: ParameterValue and UsePreviousValue exclude each other"
                )))
            }
            (Some(v), false) => v.to_string(),
            (None, true) => current_value(&old, key),
            (None, false) => {
                return Err(OpError::BadRequest(format!(
                    "parameter {key}: neither ParameterValue nor UsePreviousValue"
                )))
            }
        };
        out.insert(key.to_string(), Value::String(value));
    }
    let mut missing = Vec::new();
    for key in KEYS {
        if !out.contains_key(key) {
            match template_default(key, &created) {
                Some(d) => {
                    out.insert(key.to_string(), Value::String(d));
                }
                None => missing.push(key),
            }
        }
    }
    if !missing.is_empty() {
        return Err(OpError::BadRequest(format!(
            "An error occurred (ValidationError) when calling the UpdateStack operation: \
             Parameters: [{}] must have values",
            missing.join(", ")
        )));
    }
    Ok(Value::Object(out))
}

/// The stack as the lab created it (the template's defaults but `InstanceType`).
fn created_state(cluster: &Cluster) -> StackState {
    let ids = instances(cluster);
    let g = cluster.inner();
    let image = ids
        .first()
        .and_then(|&i| g.nodes.get(i))
        .map(|n| format!("neo4j:{}", n.version))
        .unwrap_or_default();
    StackState {
        docker_image: image,
        mode: "HA".into(),
        slave_mode: "HA".into(),
        allow_upgrade: false,
        max_size: ids.len(),
        desired_capacity: ids.len(),
        instance_type: live_instance_type(),
        volumes: BTreeMap::new(),
        recorded: Vec::new(),
    }
}

/// The careful wrapper: changed keys with their value, `UsePreviousValue` for the others, and
/// "No updates are to be performed" taken as success.
async fn update_changes(State(s): State<LabShared>, body: Bytes) -> Response {
    let _one_at_a_time = UPDATE.lock().await;
    let changes = json_body(&body).and_then(|v| {
        v.get("changes")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| OpError::BadRequest("missing \"changes\": \"K=V ...\"".into()))
    });
    let changes = match changes {
        Ok(c) => c,
        Err(e) => return answer(Err(e)),
    };
    let mut given = BTreeMap::new();
    for kv in changes.split_whitespace() {
        let Some((k, v)) = kv.split_once('=') else {
            return answer(Err(OpError::BadRequest(format!("{kv:?} is not KEY=VALUE"))));
        };
        if !KEYS.contains(&k) {
            return answer(Err(OpError::BadRequest(format!(
                "parameter {k} is not in the stack"
            ))));
        }
        given.insert(k.to_string(), v.to_string());
    }
    let list: Vec<Value> = KEYS
        .iter()
        .map(|k| match given.get(*k) {
            Some(v) => json!({"ParameterKey": k, "ParameterValue": v}),
            None => json!({"ParameterKey": k, "UsePreviousValue": true}),
        })
        .collect();
    let flat = match resolve_parameters(&s.cluster, &json!({ "Parameters": list })) {
        Ok(f) => f,
        Err(e) => return answer(Err(e)),
    };
    match update_stack(&s.cluster, &flat).await {
        Err(OpError::BadRequest(m)) if m == NO_UPDATES => {
            answer(Ok(json!({"ok": true, "status": "NO_UPDATES", "detail": m})))
        }
        other => answer(other),
    }
}

fn same_parameters(a: &StackState, b: &StackState) -> bool {
    KEYS.iter()
        .all(|k| current_value(a, k).eq_ignore_ascii_case(&current_value(b, k)))
}

async fn update_stack(cluster: &Arc<Cluster>, v: &Value) -> Result<Value, OpError> {
    let ids = instances(cluster);
    let old = load(cluster)?;
    let mut new = apply_params(&old, v, ids.len())?;
    if same_parameters(&old, &new) {
        return Err(OpError::BadRequest(NO_UPDATES.into()));
    }
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
        cluster.install(idx, &version, false)?;
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
    let key = g.node(idx).map(|n| n.store_key.clone())?;
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

async fn record(State(s): State<LabShared>, body: Bytes) -> Response {
    let _one_at_a_time = UPDATE.lock().await;
    answer(record_volumes(&s.cluster, &body))
}

fn record_volumes(cluster: &Cluster, body: &[u8]) -> Result<Value, OpError> {
    let tag = required(&json_body(body)?, "volume")?;
    let mut state = load(cluster)?;
    state.recorded = state
        .volumes
        .iter()
        .filter(|(_, t)| **t == tag)
        .map(|(name, _)| volume_id(name))
        .collect();
    if state.recorded.is_empty() {
        return Err(OpError::NotFound(format!("no volume tagged Name={tag}")));
    }
    save(cluster, &state)?;
    Ok(json!({"ok": true, "recorded": state.recorded}))
}

async fn retag(State(s): State<LabShared>, body: Bytes) -> Response {
    let _one_at_a_time = UPDATE.lock().await;
    answer(retag_volumes(&s.cluster, &body))
}

fn retag_volumes(cluster: &Cluster, body: &[u8]) -> Result<Value, OpError> {
    let v = json_body(body)?;
    let from = required(&v, "from")?;
    let to = required(&v, "to")?;
    let mut state = load(cluster)?;
    if state.recorded.is_empty() {
        return Err(OpError::Refused(
            "no volume IDs recorded: record-volumes before the cluster shrinks".into(),
        ));
    }
    let mut renamed = Vec::new();
    // By the IDs recorded before the shrink, attached or not (the slave-only instance's volume
    // stays attached), never the master's: the stack's first instance, the one that remains.
    for idx in instances(cluster).into_iter().skip(1) {
        let name = cluster.name_of(idx);
        if !state.recorded.contains(&volume_id(&name)) {
            continue;
        }
        if let Some(tag) = state.volumes.get_mut(&name).filter(|t| **t == from) {
            tag.clone_from(&to);
            renamed.push(name);
        }
    }
    if renamed.is_empty() {
        return Err(OpError::NotFound(format!(
            "no recorded slave volume tagged Name={from}"
        )));
    }
    save(cluster, &state)?;
    Ok(json!({"ok": true, "renamed": renamed, "from": from, "to": to}))
}
