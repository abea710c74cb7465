//! Weaviate: liveness/readiness, `/v1/nodes`, `/v1/cluster/statistics` (1.25+, Raft era),
//! `/v1/meta`, the schema's one lab collection (`GET /v1/schema`, `DELETE /v1/schema/{class}`),
//! the pre-Raft way back (`POST /v1/cluster/schema-v1`, 1.25+), and filesystem backups and
//! restores (asynchronous: STARTED, then SUCCESS, or FAILED over an existing collection), the
//! collection's objects (`/v1/objects`, the same objects as the lab's `/kv`) read and written at
//! a consistency level on the replicas of their shard, and a scale-out of its replication factor
//! (`PUT /v1/schema/{class}`).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use std::collections::BTreeMap;

use super::super::config::Version;
use super::super::node::{job_key, Consistency, KvError, NodeSnapshot, OpError, LAB_COLLECTION};
use super::super::RunState;
use super::NodeCtx;

const BACKEND: &str = "filesystem";

pub(crate) fn routes() -> Router<NodeCtx> {
    Router::new()
        .route("/v1/.well-known/live", get(live))
        .route("/v1/.well-known/ready", get(ready))
        .route("/v1/nodes", get(nodes))
        .route("/v1/cluster/statistics", get(statistics))
        .route("/v1/meta", get(meta))
        .route("/v1/schema", get(schema))
        .route(
            "/v1/schema/{class}",
            delete(schema_delete).put(schema_update),
        )
        .route("/v1/objects", post(object_create))
        .route(
            "/v1/objects/{class}/{id}",
            get(object_get).delete(object_delete),
        )
        .route("/v1/cluster/schema-v1", post(schema_v1))
        .route("/v1/backups/{backend}", post(backup_create))
        .route("/v1/backups/{backend}/{id}", get(backup_status))
        .route(
            "/v1/backups/{backend}/{id}/restore",
            post(restore_create).get(restore_status),
        )
}

async fn live(State(ctx): State<NodeCtx>) -> Response {
    let up = ctx
        .cluster
        .snapshot_node(ctx.idx)
        .is_some_and(|s| matches!(s.state, RunState::Running | RunState::Starting));
    if up && !ctx.probe_fails() {
        StatusCode::OK.into_response()
    } else {
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    }
}

async fn ready(State(ctx): State<NodeCtx>) -> Response {
    if ctx.ready_probe() {
        StatusCode::OK.into_response()
    } else {
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    }
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": [{"message": "node is not running"}]})),
    )
        .into_response()
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"error": [{"message": message}]}))).into_response()
}

fn node_status(ctx: &NodeCtx, idx: usize, n: &NodeSnapshot) -> &'static str {
    match n.state {
        RunState::Running if ctx.cluster.is_ready(idx) => "HEALTHY",
        RunState::Running | RunState::Starting => "UNHEALTHY",
        _ => "UNAVAILABLE",
    }
}

/// The nodes of this node's cluster, with their indices.
fn members(ctx: &NodeCtx) -> Vec<(usize, NodeSnapshot)> {
    let all = ctx.cluster.snapshot_all();
    let members = ctx.cluster.group_members(ctx.idx);
    all.into_iter()
        .enumerate()
        .filter(|(i, _)| members.contains(i))
        .collect()
}

#[derive(serde::Deserialize)]
struct NodesQuery {
    output: Option<String>,
}

/// `GET /v1/nodes[?output=verbose]`: every node of the cluster with its status; with
/// `output=verbose` (and always before 1.24, which added `output` with `minimal` as the
/// default), each node's shards too. A shard's `vectorIndexingStatus` is the shard's storage
/// status (weaviate/weaviate v1.25 adapters/repos/db/nodes.go `getShardsNodeStatus`:
/// `shard.GetStatus()`): `READY`, or `READONLY` once the node went read-only — its disk or
/// memory use above `DISK_USE_READONLY_PERCENTAGE`/`MEMORY_READONLY_PERCENTAGE` (db
/// `resourceUseReadonly`: "Set READONLY, disk usage currently at ...", the `deny-writes` fault);
/// a write to such a shard fails with "store is read-only" (entities/storagestate/status.go) and
/// the shard stays READONLY until an operator sets it back to READY.
async fn nodes(State(ctx): State<NodeCtx>, Query(q): Query<NodesQuery>) -> Response {
    if !ctx.cluster.is_running(ctx.idx) {
        return unavailable();
    }
    let collections = ctx.cluster.collections();
    let list: Vec<Value> = members(&ctx)
        .iter()
        .map(|(i, n)| {
            // The shards this node holds a replica of (none once the collection is deleted).
            let shards = if collections.is_empty() {
                Vec::new()
            } else {
                ctx.cluster.node_shards(*i)
            };
            let mut node = json!({
                "name": n.name,
                "status": node_status(&ctx, *i, n),
                "version": n.version,
                "gitHash": "lab",
                "stats": {"shardCount": shards.len(), "objectCount": n.keys},
                "batchStats": {"queueLength": 0, "ratePerSecond": 0},
            });
            let pre_output = Version::parse(&n.version).is_ok_and(|v| v < Version(vec![1, 24]));
            if q.output.as_deref() == Some("verbose") || pre_output {
                let status = if n.read_only { "READONLY" } else { "READY" };
                node["shards"] = shards
                    .iter()
                    .map(|(name, count)| {
                        json!({
                            "name": name,
                            "class": LAB_COLLECTION,
                            "objectCount": count,
                            "vectorIndexingStatus": status,
                            "vectorQueueLength": 0,
                            "loaded": true,
                        })
                    })
                    .collect();
            }
            node
        })
        .collect();
    Json(json!({ "nodes": list })).into_response()
}

async fn statistics(State(ctx): State<NodeCtx>) -> Response {
    let Some(me) = ctx.cluster.snapshot_node(ctx.idx) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // The endpoint arrived with the Raft metadata store in 1.25.
    let raft_era = Version::parse(&me.version).is_ok_and(|v| v >= Version(vec![1, 25]));
    if !raft_era {
        return error(StatusCode::NOT_FOUND, "no such endpoint".into());
    }
    if me.state != RunState::Running {
        return unavailable();
    }
    let applied = ctx.cluster.applied_index();
    let members = members(&ctx);
    // The running nodes this node's member list has (a peer that just restarted is not back in
    // it yet: `Cluster::knows`).
    let running: Vec<&(usize, NodeSnapshot)> = members
        .iter()
        .filter(|(i, n)| n.state == RunState::Running && ctx.cluster.knows(ctx.idx, *i))
        .collect();
    let leader = running
        .iter()
        .find(|(_, n)| n.role == "leader")
        .map(|(_, n)| n.clone());
    let peers = running.len().saturating_sub(1);
    let stats: Vec<Value> = running
        .iter()
        .map(|(i, n)| {
            // A node still settling after a restart has not applied the latest entries yet.
            let index = if ctx.cluster.settling(*i) {
                applied.saturating_sub(1)
            } else {
                applied
            };
            json!({
                "name": n.name,
                "status": node_status(&ctx, *i, n),
                "ready": ctx.cluster.is_ready(*i),
                "open": true,
                "bootstrapped": true,
                "dbLoaded": true,
                "isVoter": true,
                "leaderId": leader.as_ref().map(|l| l.name.clone()).unwrap_or_default(),
                "leaderAddress": leader.as_ref().map(|l| l.address.to_string()).unwrap_or_default(),
                "initialLastAppliedIndex": 0,
                "lastAppliedIndex": index,
                "raft": {
                    "appliedIndex": index.to_string(),
                    "commitIndex": applied.to_string(),
                    "lastLogIndex": applied.to_string(),
                    "numPeers": peers.to_string(),
                    "state": if n.role == "leader" { "Leader" } else { "Follower" },
                    "term": "1",
                },
            })
        })
        .collect();
    Json(json!({"synchronized": me.synchronized, "statistics": stats})).into_response()
}

async fn meta(State(ctx): State<NodeCtx>) -> Response {
    match ctx.cluster.snapshot_node(ctx.idx) {
        Some(s) if s.state == RunState::Running => Json(json!({
            "hostname": format!("http://{}", s.address),
            "version": s.version,
            "modules": {"backup-filesystem": {}},
            "grpcMaxMessageSize": 10_485_760,
        }))
        .into_response(),
        _ => unavailable(),
    }
}

/// `GET /v1/schema`: `{"classes":[{"class":...,"replicationConfig":{"factor":N}}]}`
/// (openapi-specs/schema.json, `ReplicationConfig.factor`: the copies of each object). The
/// lab's collection has one shard per node, each on `factor` nodes: the lab's
/// `--replication-factor`, or a copy on every node when it names none (1 on a one-node lab).
async fn schema(State(ctx): State<NodeCtx>) -> Response {
    if !ctx.cluster.is_running(ctx.idx) {
        return unavailable();
    }
    let factor = ctx.cluster.replication_factor(ctx.idx);
    let classes: Vec<Value> = ctx
        .cluster
        .collections()
        .into_iter()
        .map(|c| {
            json!({"class": c, "properties": [{"name": "value", "dataType": ["text"]}],
                   "replicationConfig": {"factor": factor}})
        })
        .collect();
    Json(json!({ "classes": classes })).into_response()
}

/// `DELETE /v1/schema/{className}`: 200 with no body.
async fn schema_delete(State(ctx): State<NodeCtx>, Path(class): Path<String>) -> Response {
    match ctx.cluster.delete_collection(ctx.idx, &class) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(OpError::NotFound(m)) => error(StatusCode::NOT_FOUND, m),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

/// `PUT /v1/schema/{className}` with the class, its `replicationConfig.factor` raised: the
/// collection scales out (a lower factor is refused: 422, as Weaviate's handler answers an
/// update error).
async fn schema_update(
    State(ctx): State<NodeCtx>,
    Path(class): Path<String>,
    body: Bytes,
) -> Response {
    let factor = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.pointer("/replicationConfig/factor")
            .and_then(Value::as_u64)
            .and_then(|f| usize::try_from(f).ok())
    });
    let Some(factor) = factor else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "body must be the class with replicationConfig.factor".into(),
        );
    };
    match ctx.cluster.scale_replication(ctx.idx, &class, factor) {
        Ok(()) => schema(State(ctx)).await,
        Err(OpError::NotFound(m)) => error(StatusCode::NOT_FOUND, m),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

/// The query of an object request: `consistency_level` (adapters/handlers/rest
/// handlers_objects.go `getReplicationProperties`; 400 for an unknown level).
fn object_consistency(q: &BTreeMap<String, String>) -> Result<Option<Consistency>, String> {
    Consistency::parse(q.get("consistency_level").map(String::as_str))
}

/// A data-plane refusal as Weaviate answers it: 500 with its error text (the handlers' default
/// case), 503 for a node that is not running.
fn object_error(e: KvError) -> Response {
    match e {
        KvError::NotRunning => unavailable(),
        // entities/storagestate/status.go `ErrStatusReadOnly`.
        KvError::ReadOnly => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store is read-only".into(),
        ),
        e => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// What a request on one object (`GET`/`DELETE /v1/objects/{className}/{id}`) checks before
/// the object itself: its consistency level (400 for an unknown one), then its class (404
/// without a body for a class the node does not have).
fn object_at(
    ctx: &NodeCtx,
    class: &str,
    q: &BTreeMap<String, String>,
) -> Result<Option<Consistency>, Box<Response>> {
    let cl = object_consistency(q).map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, e)))?;
    if class != LAB_COLLECTION || ctx.cluster.collections().is_empty() {
        return Err(Box::new(StatusCode::NOT_FOUND.into_response()));
    }
    Ok(cl)
}

fn object_json(id: &str, value: &str) -> Value {
    json!({"class": LAB_COLLECTION, "id": id, "properties": {"value": value}})
}

/// `GET /v1/objects/{className}/{id}[?consistency_level=ONE|QUORUM|ALL]`: the object from its
/// shard's replicas; 404 without a body when there is none. The lab takes any id (Weaviate
/// wants a UUID): the ids are the lab's `/kv` keys.
async fn object_get(
    State(ctx): State<NodeCtx>,
    Path((class, id)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let cl = match object_at(&ctx, &class, &q) {
        Ok(cl) => cl,
        Err(r) => return *r,
    };
    match ctx.cluster.kv_get_at(ctx.idx, &id, cl) {
        Ok(Some(v)) => Json(object_json(&id, &v)).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => object_error(e),
    }
}

/// `POST /v1/objects[?consistency_level=...]` with `{"class","id","properties":{"value"}}`.
async fn object_create(
    State(ctx): State<NodeCtx>,
    Query(q): Query<BTreeMap<String, String>>,
    body: Bytes,
) -> Response {
    let cl = match object_consistency(&q) {
        Ok(cl) => cl,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let obj = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    let (Some(class), Some(id), Some(value)) = (
        obj.get("class").and_then(Value::as_str),
        obj.get("id").and_then(Value::as_str),
        obj.pointer("/properties/value").and_then(Value::as_str),
    ) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "body must be an object with class, id and properties.value".into(),
        );
    };
    if class != LAB_COLLECTION || ctx.cluster.collections().is_empty() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("class {class:?} not found"),
        );
    }
    match ctx.cluster.kv_write(ctx.idx, id, Some(value), cl).await {
        Ok(()) => Json(object_json(id, value)).into_response(),
        Err(e) => object_error(e),
    }
}

/// `DELETE /v1/objects/{className}/{id}[?consistency_level=...]`: 204.
async fn object_delete(
    State(ctx): State<NodeCtx>,
    Path((class, id)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let cl = match object_at(&ctx, &class, &q) {
        Ok(cl) => cl,
        Err(r) => return *r,
    };
    match ctx.cluster.kv_write(ctx.idx, &id, None, cl).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => object_error(e),
    }
}

/// `POST /v1/cluster/schema-v1` (1.25+): the handler answers the JSON-encoded result of
/// `StoreSchemaV1()`, `null` on success (v1.25.34 adapters/handlers/rest/raft/handler.go).
async fn schema_v1(State(ctx): State<NodeCtx>) -> Response {
    match ctx.cluster.store_schema_v1(ctx.idx) {
        Ok(()) => Json(Value::Null).into_response(),
        Err(OpError::NotFound(_)) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn check_backend(backend: &str) -> Option<Response> {
    (backend != BACKEND).then(|| {
        error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("backup backend {backend:?} is not enabled (only {BACKEND})"),
        )
    })
}

fn job_answer(ctx: &NodeCtx, id: &str, restore: bool) -> Response {
    match ctx.cluster.job(&job_key(id, restore)) {
        Some(job) => Json(json!({
            "id": id,
            "backend": BACKEND,
            "path": ctx.cluster.data_dir.join("backups").display().to_string(),
            "status": job.status,
            "error": job.error,
        }))
        .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!(
                "{} {id:?} not found",
                if restore { "restore" } else { "backup" }
            ),
        ),
    }
}

fn start_job(ctx: &NodeCtx, id: &str, restore: bool) -> Response {
    if !ctx.cluster.is_running(ctx.idx) {
        return unavailable();
    }
    match ctx.cluster.start_job(ctx.idx, id, restore) {
        Ok(()) => job_answer(ctx, id, restore),
        Err(OpError::NotFound(m)) => error(StatusCode::NOT_FOUND, m),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

async fn backup_create(
    State(ctx): State<NodeCtx>,
    Path(backend): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = check_backend(&backend) {
        return r;
    }
    let id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string));
    match id {
        Some(id) => start_job(&ctx, &id, false),
        None => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "body must be JSON with an \"id\"".into(),
        ),
    }
}

async fn backup_status(
    State(ctx): State<NodeCtx>,
    Path((backend, id)): Path<(String, String)>,
) -> Response {
    check_backend(&backend).unwrap_or_else(|| job_answer(&ctx, &id, false))
}

async fn restore_create(
    State(ctx): State<NodeCtx>,
    Path((backend, id)): Path<(String, String)>,
) -> Response {
    check_backend(&backend).unwrap_or_else(|| start_job(&ctx, &id, true))
}

async fn restore_status(
    State(ctx): State<NodeCtx>,
    Path((backend, id)): Path<(String, String)>,
) -> Response {
    check_backend(&backend).unwrap_or_else(|| job_answer(&ctx, &id, true))
}
