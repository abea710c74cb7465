//! Jahia: the tools page's full read-only switch and status
//! (`/modules/tools/maintenance.jsp`), and a readiness endpoint for the balancer
//! (`/modules/healthcheck`, like the healthcheck module: `{"status":"GREEN"}` or 503 `RED`).
//!
//! `GET /modules/tools/maintenance.jsp?fullReadOnlyMode=true|false` switches full read-only
//! mode: cluster-wide (every running node on the same schema) when sent to the processing
//! node, this node only otherwise. Answer:
//! `{"fullReadOnlyMode":"ON","scope":"cluster","switched":["node1",..],"local":"ON",
//!   "nodes":{"node1":"ON",..}}`; without the parameter, the same minus `scope`/`switched`.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::super::RunState;
use super::NodeCtx;

pub(crate) fn routes() -> Router<NodeCtx> {
    Router::new()
        .route("/modules/healthcheck", get(healthcheck))
        .route("/modules/tools/maintenance.jsp", get(maintenance))
}

async fn healthcheck(State(ctx): State<NodeCtx>) -> Response {
    if ctx.ready_probe() {
        (StatusCode::OK, Json(json!({"status": "GREEN"}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "RED"})),
        )
            .into_response()
    }
}

#[derive(Deserialize)]
struct MaintenanceQuery {
    #[serde(rename = "fullReadOnlyMode")]
    full_read_only_mode: Option<String>,
}

fn on_off(b: bool) -> &'static str {
    if b {
        "ON"
    } else {
        "OFF"
    }
}

async fn maintenance(State(ctx): State<NodeCtx>, Query(q): Query<MaintenanceQuery>) -> Response {
    if !ctx.cluster.is_running(ctx.idx) {
        return (StatusCode::SERVICE_UNAVAILABLE, "node is not running").into_response();
    }
    let switch =
        match q.full_read_only_mode.as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => return (
                StatusCode::BAD_REQUEST,
                Json(
                    json!({"error": format!("fullReadOnlyMode={other:?}: expected true or false")}),
                ),
            )
                .into_response(),
        };
    let processing = ctx
        .cluster
        .snapshot_node(ctx.idx)
        .is_some_and(|s| s.role == "processing");
    let mut scope = None;
    let mut switched = Vec::new();
    if let Some(on) = switch {
        if processing {
            switched = ctx.cluster.set_read_only_cluster(ctx.idx, on);
            scope = Some("cluster");
        } else if ctx.cluster.set_read_only(ctx.idx, on).is_ok() {
            switched.push(ctx.cluster.name_of(ctx.idx));
            scope = Some("local");
        }
    }
    let all = ctx.cluster.snapshot_all();
    let local = all.get(ctx.idx).is_some_and(|s| s.read_only);
    let nodes: BTreeMap<&str, &str> = all
        .iter()
        .filter(|n| n.state == RunState::Running)
        .map(|n| (n.name.as_str(), on_off(n.read_only)))
        .collect();
    let mut body = json!({
        "fullReadOnlyMode": on_off(local),
        "local": on_off(local),
        "nodes": nodes,
    });
    if let (Some(scope), Some(obj)) = (scope, body.as_object_mut()) {
        obj.insert("scope".into(), json!(scope));
        obj.insert("switched".into(), json!(switched));
    }
    Json(body).into_response()
}
