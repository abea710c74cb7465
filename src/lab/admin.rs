//! The lab admin API: what real clusters do out of band (ssh, package managers, config files).
//!
//! Every node serves its own operations under `POST {node}/_lab/{op}`; the cluster-level admin
//! server (`Lab::admin_url()`) serves the same under `POST {admin}/_lab/nodes/{node}/{op}`,
//! plus the lab-wide routes below. Bodies are JSON (an empty body is `{}`).
//!
//! Node operations:
//! - `stop`, `start` (returns at once; the node moves `starting` -> `running` or `failed`)
//! - `install` `{"version":"1.26.18"}` — only while stopped; jahia: a release of its own
//!   beside the others, `"carry_config":true` to copy the running release's
//!   `digital-factory-config` into it (without it the node starts on Jahia's shipped settings)
//! - `read-only` `{"on":true}`; also `read-only-on` and `read-only-off` without a body (neo4j:
//!   a running node restarts to take it, as `dbms.read_only` is read at start-up)
//! - `full-read-only` `{"on":true}` — jahia: from the processing node, cluster-wide
//! - `remove-marker` — jahia: deletes the `rolling-upgrade` marker if present
//! - `backup` `{"name":"b1"}` — copies the node's store (its group's data) to the backup
//! - `restore` `{"name":"b1","force":false}` — neo4j: into this stopped node only (`force`
//!   to replace data); other products: into the node's whole cluster
//! - `copy-schema` `{"from":"A","to":"B"}`, `set-schema` `{"schema":"B"}` (stopped), `marker`
//!   — jahia
//! - `config` (alias `configure`) `{"mode":"SINGLE"|"CORE","allow_upgrade":true,
//!   "backup_address":"0.0.0.0:6362"}` — neo4j (`dbms.backup.address` is taken at the next
//!   start; a remote backup of a node listening on loopback fails as neo4j-admin does)
//! - `migrate-metadata`, `rollback-metadata` — milvus, node stopped
//! - `rollout` `{"version":"2.2.14"}` — milvus, a Deployment's rolling update (node running;
//!   refused on a one-node lab, a standalone: Multi-Attach)
//! - milvus standalone on a host, one-node lab only (`node::milvus_host`): `record-collections`,
//!   `load-collections`, `search-collections`, `backup-data`, `check-backup`, `restore-data`
//!   (stopped), `start-milvus` `{"version":"2.2.16"}` (the version installed; answers once
//!   healthy, or with Milvus's reason when it exits); the node also answers `GET
//!   /_lab/collections-as-recorded` (200 when its data is as recorded and queries answer)
//! - `fault` `{"fault":"slow:node1:500ms"}`
//!
//! Success: 200 `{"ok":true,"op":..,"node":<NodeSnapshot>,"detail":..}`. Refused (the
//! cluster's state forbids it, e.g. install while running): 409 `{"error":"..."}`; bad input
//! 400, unknown node/backup/schema 404, lab failure 500 — all `{"error":"..."}`.
//!
//! Lab-wide routes on the admin server:
//! - `GET /_lab/status` -> [`super::LabSnapshot`]
//! - `GET /_lab/lb/backends` -> `[crate::lb::Backend]`;
//!   `GET /_lab/lb/backends/{server}` -> one backend (404 when unknown);
//!   `PUT /_lab/lb/backends/{server}` `{"state":"drain","weight":null}` -> 200, or 404
//!   `{"error":"no such server"}`. With the lab's HAProxy these read and set HAProxy's state
//!   through its runtime API (502 when it does not answer).
//! - `GET /_lab/traffic` -> [`super::TrafficReport`]
//! - `GET /_lab/fault` (list), `POST /_lab/fault` `{"fault":"..."}`, `DELETE /_lab/fault`
//!   (clears every fault)
//! - `POST /_lab/copy-schema` `{"from":"A","to":"B"}`
//! - `POST /_lab/backup` `{"name":"full","group":"blue"}` — backs up a running node of the
//!   group (of the cluster when `group` is absent): the group's data, as in a cluster backup
//! - the seed procedures' routes: `save-config`, `restore-config`, `fetch-backup` node operations
//!   ([`super::neo4j_ops`]), `GET|POST /_lab/stack` (CloudFormation's parameter rules: unlisted
//!   keys reset to the template's defaults, "No updates are to be performed" refused),
//!   `POST /_lab/stack/changes` (the careful wrapper), `POST /_lab/record-volumes` and
//!   `POST /_lab/retag-volumes` ([`super::stack`])
//! - milvus: `POST /_lab/helm-upgrade`, `POST /_lab/migrate-sh` (`"cleanup":true` is `-d`),
//!   `POST /_lab/etcd` (snapshot, restore), `GET /_lab/tools`; milvus and weaviate: `POST
//!   /_lab/recreate` `{"version":...}` (every node restarted on it: a StatefulSet recreated)
//!   (see `product_ops`)

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::faults::Fault;
use super::node::{Cluster, OpError};
use super::personality::NodeCtx;
use super::LabShared;
use crate::lb::LbError;
use crate::procedure::model::Membership;

impl IntoResponse for OpError {
    fn into_response(self) -> Response {
        let status = match &self {
            OpError::Refused(_) => StatusCode::CONFLICT,
            OpError::BadRequest(_) => StatusCode::BAD_REQUEST,
            OpError::NotFound(_) => StatusCode::NOT_FOUND,
            OpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(json!({"error": self.to_string()}))).into_response()
    }
}

pub(crate) fn node_routes() -> Router<NodeCtx> {
    Router::new().route("/_lab/{op}", post(node_op))
}

async fn node_op(State(ctx): State<NodeCtx>, Path(op): Path<String>, body: Bytes) -> Response {
    run_op(&ctx.cluster, ctx.idx, &op, &body).await
}

pub(crate) fn cluster_router(shared: LabShared) -> Router {
    Router::new()
        .route("/_lab/status", get(lab_status))
        .route("/_lab/lb/backends", get(lb_backends))
        .route("/_lab/lb/backends/{server}", get(lb_get).put(lb_set))
        .route("/_lab/traffic", get(traffic))
        .route(
            "/_lab/fault",
            get(faults_list).post(fault_add).delete(faults_clear),
        )
        .route("/_lab/copy-schema", post(copy_schema))
        .route("/_lab/backup", post(group_backup))
        .route("/_lab/nodes/{node}/{op}", post(cluster_node_op))
        .merge(super::stack::routes())
        .merge(super::neo4j_ops::routes())
        .merge(super::product_ops::routes())
        .with_state(shared)
}

async fn lab_status(State(s): State<LabShared>) -> Response {
    Json(s.snapshot().await).into_response()
}

async fn lb_backends(State(s): State<LabShared>) -> Response {
    match s.lb.backends().await {
        Ok(b) => Json(b).into_response(),
        Err(e) => lb_error(e),
    }
}

/// The balancer's own failure (the lab's HAProxy unreachable or refusing) as a gateway error.
fn lb_error(e: LbError) -> Response {
    let status = match e {
        LbError::UnknownServer(_) => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "no such server"})),
            )
                .into_response()
        }
        LbError::Refused(_) => StatusCode::CONFLICT,
        _ => StatusCode::BAD_GATEWAY,
    };
    (status, Json(json!({"error": e.to_string()}))).into_response()
}

#[derive(Deserialize)]
struct SetMembership {
    state: Membership,
    #[serde(default)]
    weight: Option<u16>,
}

/// One backend, e.g. its current `sessions` (what a drain waits for).
async fn lb_get(State(s): State<LabShared>, Path(server): Path<String>) -> Response {
    match s.lb.backends().await {
        Ok(all) => match all.into_iter().find(|b| b.server == server) {
            Some(b) => Json(b).into_response(),
            None => (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "no such server"})),
            )
                .into_response(),
        },
        Err(e) => lb_error(e),
    }
}

async fn lb_set(State(s): State<LabShared>, Path(server): Path<String>, body: Bytes) -> Response {
    let req: SetMembership = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return OpError::BadRequest(format!(
                "expected {{\"state\":\"ready|drain|maint\",\"weight\":null}}: {e}"
            ))
            .into_response()
        }
    };
    match s.lb.set_membership(&server, req.state, req.weight).await {
        Ok(()) => Json(json!({"ok": true, "server": server, "state": req.state})).into_response(),
        Err(e) => lb_error(e),
    }
}

async fn traffic(State(s): State<LabShared>) -> Response {
    Json(s.traffic.report()).into_response()
}

async fn faults_list(State(s): State<LabShared>) -> Response {
    Json(s.cluster.list_faults()).into_response()
}

async fn fault_add(State(s): State<LabShared>, body: Bytes) -> Response {
    match parse_fault(&body).and_then(|f| s.cluster.add_fault(f)) {
        Ok(()) => Json(json!({"ok": true, "faults": s.cluster.list_faults()})).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn faults_clear(State(s): State<LabShared>) -> Response {
    s.cluster.clear_faults();
    Json(json!({"ok": true, "faults": []})).into_response()
}

async fn copy_schema(State(s): State<LabShared>, body: Bytes) -> Response {
    let result = parse_body(&body).and_then(|v| {
        let from = str_field(&v, "from")?;
        let to = str_field(&v, "to")?;
        s.cluster.copy_schema(&from, &to)?;
        Ok(json!({"ok": true, "op": "copy-schema", "from": from, "to": to}))
    });
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn group_backup(State(s): State<LabShared>, body: Bytes) -> Response {
    let result = parse_body(&body).and_then(|v| {
        let name = str_field(&v, "name")?;
        let group = opt_str_field(&v, "group")?;
        let from = s
            .cluster
            .snapshot_all()
            .into_iter()
            .find(|n| n.state == super::RunState::Running && (group.is_none() || n.group == group))
            .ok_or_else(|| {
                OpError::Refused(format!(
                    "no running node{} to back up",
                    group
                        .as_deref()
                        .map(|g| format!(" in group {g}"))
                        .unwrap_or_default()
                ))
            })?;
        let idx = s
            .cluster
            .index_of(&from.name)
            .ok_or_else(|| OpError::Internal(format!("{} vanished", from.name)))?;
        let path = s.cluster.backup(idx, &name)?;
        Ok(json!({"ok": true, "op": "backup", "from": from.name,
                  "path": path.display().to_string()}))
    });
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn cluster_node_op(
    State(s): State<LabShared>,
    Path((node, op)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match s.cluster.index_of(&node) {
        Some(idx) => run_op(&s.cluster, idx, &op, &body).await,
        None => OpError::NotFound(format!("no node named {node:?}")).into_response(),
    }
}

/// One node operation, whichever server received it.
pub(crate) async fn run_op(cluster: &Arc<Cluster>, idx: usize, op: &str, body: &[u8]) -> Response {
    let result = match op {
        // Waits for the server to be healthy or gone, as the real script does.
        "start-milvus" => match parse_body(body).and_then(|v| str_field(&v, "version")) {
            Ok(version) => cluster
                .start_milvus(idx, &version)
                .await
                .map(|said| json!({ "said": said })),
            Err(e) => Err(e),
        },
        _ => dispatch(cluster, idx, op, body),
    };
    match result {
        Ok(detail) => Json(json!({
            "ok": true,
            "op": op,
            "node": cluster.snapshot_node(idx),
            "detail": detail,
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

fn dispatch(cluster: &Arc<Cluster>, idx: usize, op: &str, body: &[u8]) -> Result<Value, OpError> {
    let v = parse_body(body)?;
    match op {
        "stop" => cluster.stop(idx).map(|_| Value::Null),
        "start" => cluster.start(idx).map(|_| Value::Null),
        "install" => {
            let carry = bool_field(&v, "carry_config")?.unwrap_or(false);
            cluster
                .install(idx, &str_field(&v, "version")?, carry)
                .map(|_| Value::Null)
        }
        "read-only" => {
            let on = bool_field(&v, "on")?
                .ok_or_else(|| OpError::BadRequest("missing \"on\": true|false".into()))?;
            cluster.apply_read_only(idx, on).map(|_| Value::Null)
        }
        "full-read-only" => {
            let on = bool_field(&v, "on")?
                .ok_or_else(|| OpError::BadRequest("missing \"on\": true|false".into()))?;
            cluster
                .full_read_only(idx, on)
                .map(|names| json!({ "switched": names }))
        }
        "remove-marker" => cluster
            .remove_marker(idx)
            .map(|removed| json!({ "removed": removed })),
        "rollout" => cluster
            .rollout(idx, &str_field(&v, "version")?)
            .map(|_| Value::Null),
        "read-only-on" => cluster.apply_read_only(idx, true).map(|_| Value::Null),
        "read-only-off" => cluster.apply_read_only(idx, false).map(|_| Value::Null),
        "backup" => cluster
            .backup(idx, &str_field(&v, "name")?)
            .map(|p| json!({"path": p.display().to_string()})),
        "restore" => {
            let force = bool_field(&v, "force")?.unwrap_or(false);
            cluster
                .restore(idx, &str_field(&v, "name")?, force)
                .map(|f| json!({"store_format": f}))
        }
        "copy-schema" => cluster
            .copy_schema(&str_field(&v, "from")?, &str_field(&v, "to")?)
            .map(|_| Value::Null),
        "set-schema" => cluster
            .set_schema(idx, &str_field(&v, "schema")?)
            .map(|_| Value::Null),
        "marker" => cluster
            .create_marker(idx)
            .map(|p| json!({"path": p.display().to_string()})),
        "config" | "configure" => {
            let mode = opt_str_field(&v, "mode")?;
            let allow = bool_field(&v, "allow_upgrade")?;
            let backup_address = opt_str_field(&v, "backup_address")?;
            cluster
                .configure(idx, mode.as_deref(), allow, backup_address.as_deref())
                .map(|_| Value::Null)
        }
        "migrate-metadata" => cluster
            .migrate_metadata(idx)
            .map(|f| json!({"store_format": f})),
        "rollback-metadata" => cluster
            .rollback_metadata(idx)
            .map(|f| json!({"store_format": f})),
        "record-collections" => cluster
            .record_collections(idx)
            .map(|rows| json!({ "rows": rows })),
        "load-collections" => cluster.load_collections(idx).map(said),
        "search-collections" => cluster.search_collections(idx).map(said),
        "backup-data" => cluster.backup_data(idx).map(said),
        "check-backup" => cluster.check_backup(idx).map(said),
        "restore-data" => cluster.restore_data(idx).map(said),
        "fault" => {
            let raw = serde_json::to_vec(&v).unwrap_or_default();
            cluster.add_fault(parse_fault(&raw)?).map(|_| Value::Null)
        }
        other => super::neo4j_ops::dispatch(cluster, idx, other, &v)
            .unwrap_or_else(|| Err(OpError::NotFound(format!("no lab operation {other:?}")))),
    }
}

/// What an operation said, as the detail of its answer.
fn said(text: String) -> Value {
    json!({ "said": text })
}

fn parse_body(body: &[u8]) -> Result<Value, OpError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| OpError::BadRequest(format!("body is not JSON: {e}")))
}

fn parse_fault(body: &[u8]) -> Result<Fault, OpError> {
    let v = parse_body(body)?;
    str_field(&v, "fault")?
        .parse()
        .map_err(|e: super::LabError| OpError::BadRequest(e.to_string()))
}

fn opt_str_field(v: &Value, key: &str) -> Result<Option<String>, OpError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(OpError::BadRequest(format!(
            "{key:?} must be a string, not {other}"
        ))),
    }
}

fn str_field(v: &Value, key: &str) -> Result<String, OpError> {
    opt_str_field(v, key)?.ok_or_else(|| OpError::BadRequest(format!("missing {key:?}")))
}

/// A boolean given as JSON `true` or as the string `"true"` (targets template strings).
fn bool_field(v: &Value, key: &str) -> Result<Option<bool>, OpError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Ok(Some(true)),
            "false" | "no" | "off" => Ok(Some(false)),
            _ => Err(OpError::BadRequest(format!(
                "{key:?} must be true or false"
            ))),
        },
        Some(other) => Err(OpError::BadRequest(format!(
            "{key:?} must be true or false, not {other}"
        ))),
    }
}
