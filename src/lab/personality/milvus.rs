//! Milvus: `GET /healthz` (200 `OK`, or 500 naming the healthy component count). The version
//! is visible through `/_lab/status`; the 2.1 -> 2.2 metadata migration is an admin operation.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::NodeCtx;

/// Components a standalone Milvus registers (coordinators, nodes, proxy).
const COMPONENTS: usize = 8;

pub(crate) fn routes() -> Router<NodeCtx> {
    Router::new().route("/healthz", get(healthz))
}

async fn healthz(State(ctx): State<NodeCtx>, headers: HeaderMap) -> Response {
    let ready = ctx.ready_probe();
    let healthy = if ready {
        COMPONENTS
    } else if ctx.cluster.is_running(ctx.idx) {
        COMPONENTS - 1
    } else {
        0
    };
    let wants_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    if wants_json {
        let state = if ready {
            "OK".to_string()
        } else {
            format!("Not all components are healthy, {healthy}/{COMPONENTS}")
        };
        return (status, Json(json!({ "state": state, "detail": [] }))).into_response();
    }
    if ready {
        (status, "OK").into_response()
    } else {
        (
            status,
            format!("Not all components are healthy, {healthy}/{COMPONENTS}"),
        )
            .into_response()
    }
}
