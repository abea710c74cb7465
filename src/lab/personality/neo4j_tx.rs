//! Neo4j 3.x's transactional HTTP endpoint, `POST /db/data/transaction/commit`, as far as the
//! seed procedures use it: a write, a read, and `CALL dbms.cluster.overview()`.
//!
//! What the real server does and the lab copies (neo4j/neo4j 3.x):
//! - the endpoint answers **200 even when a statement fails**; the failure is in the body's
//!   `errors` array as `{"code","message"}` (server test `ReadOnlyIT`: a write on a read-only
//!   instance gives 200 with `errors[0].code` = `Neo.ClientError.General.ForbiddenOnReadOnlyDatabase`
//!   and a message containing "This is a read only Neo4j instance");
//! - a core that is not the Raft leader refuses every write with
//!   `Neo.ClientError.Cluster.NotALeader`, "No write operations are allowed directly on this
//!   database. Writes must pass through the leader. The role of this server is: FOLLOWER"
//!   (`causalclustering/core/LeaderCanWrite.java`, 3.x): HTTP clients are not routed, so a write
//!   sent through a round-robin balancer fails on every follower;
//! - HA slaves (`dbms.mode=HA`) and standalone servers accept writes (an HA slave forwards them
//!   to the master), so only `CORE` followers refuse;
//! - `dbms.cluster.overview()` (3.x columns `id, addresses, role, groups, database`) lists the
//!   members the node sees: here the running members of its group.
//!
//! A write stores the statement's `parameters` under one key of the node's store (replicated to
//! the group like any lab write), so a test can see it committed.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::super::node::{Cluster, KvError};
use super::super::RunState;
use super::NodeCtx;

/// The key a lab Cypher write lands under.
pub const WRITE_KEY: &str = "cypher-write";

pub(crate) async fn commit(State(ctx): State<NodeCtx>, body: Bytes) -> Response {
    if ctx.probe_fails() || !ctx.cluster.is_ready(ctx.idx) {
        return (StatusCode::SERVICE_UNAVAILABLE, "false").into_response();
    }
    let (status, body) = run(&ctx.cluster, ctx.idx, &body).await;
    (status, Json(body)).into_response()
}

/// Runs a transaction's statements on node `idx`: the answer's status and body, as the real
/// endpoint gives them (the first failing statement ends it, the others are not run).
pub(crate) async fn run(cluster: &Cluster, idx: usize, body: &[u8]) -> (StatusCode, Value) {
    let doc: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::OK,
                error(
                    "Neo.ClientError.Request.InvalidFormat",
                    &format!("Unable to deserialize request: {e}"),
                ),
            )
        }
    };
    let statements = doc
        .get("statements")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut results = Vec::new();
    for s in &statements {
        let text = s.get("statement").and_then(Value::as_str).unwrap_or("");
        let params = s.get("parameters").cloned().unwrap_or(json!({}));
        match statement(cluster, idx, text, &params).await {
            Ok(r) => results.push(r),
            Err((code, message)) => {
                return (
                    StatusCode::OK,
                    json!({"results": results, "errors": [{"code": code, "message": message}]}),
                )
            }
        }
    }
    (StatusCode::OK, json!({"results": results, "errors": []}))
}

fn error(code: &str, message: &str) -> Value {
    json!({"results": [], "errors": [{"code": code, "message": message}]})
}

type StatementError = (&'static str, String);

async fn statement(
    cluster: &Cluster,
    idx: usize,
    text: &str,
    params: &Value,
) -> Result<Value, StatementError> {
    let upper = text.trim().to_ascii_uppercase();
    if upper.starts_with("CALL DBMS.CLUSTER.OVERVIEW") {
        return Ok(overview(cluster, idx));
    }
    let writes = ["CREATE", "MERGE", "SET ", "DELETE", "REMOVE"]
        .iter()
        .any(|w| upper.contains(w));
    if !writes {
        return Ok(json!({"columns": [], "data": []}));
    }
    let me = cluster
        .snapshot_node(idx)
        .ok_or_else(|| ("Neo.DatabaseError.General.UnknownError", "no node".into()))?;
    if me.mode == "CORE" && me.role != "leader" {
        return Err((
            "Neo.ClientError.Cluster.NotALeader",
            "No write operations are allowed directly on this database. Writes must pass \
             through the leader. The role of this server is: FOLLOWER"
                .into(),
        ));
    }
    if me.read_only {
        return Err((
            "Neo.ClientError.General.ForbiddenOnReadOnlyDatabase",
            "No write operations are allowed on this database. This is a read only Neo4j \
             instance."
                .into(),
        ));
    }
    match cluster.kv_put(idx, WRITE_KEY, &params.to_string()).await {
        Ok(()) => Ok(json!({"columns": [], "data": []})),
        Err(KvError::ReadOnly) => Err((
            "Neo.ClientError.General.ForbiddenOnReadOnlyDatabase",
            "This is a read only Neo4j instance".into(),
        )),
        Err(e) => Err((
            "Neo.TransientError.General.DatabaseUnavailable",
            e.to_string(),
        )),
    }
}

/// `CALL dbms.cluster.overview()`: the running members of the node's group, with their role.
fn overview(cluster: &Cluster, idx: usize) -> Value {
    let all = cluster.snapshot_all();
    let group = all.get(idx).and_then(|n| n.group.clone());
    let data: Vec<Value> = all
        .iter()
        .filter(|n| n.group == group && n.state == RunState::Running)
        .map(|n| {
            let role = if n.role == "leader" {
                "LEADER"
            } else {
                "FOLLOWER"
            };
            json!({"row": [
                super::neo4j::member_id(&n.name),
                [format!("bolt://{}", n.address), format!("http://{}", n.address)],
                role,
                [],
                "default",
            ]})
        })
        .collect();
    json!({"columns": ["id", "addresses", "role", "groups", "database"], "data": data})
}
