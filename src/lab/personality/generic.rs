//! A generic product: `/health` (readiness) and `/version`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::NodeCtx;

pub(crate) fn routes() -> Router<NodeCtx> {
    Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
}

async fn health(State(ctx): State<NodeCtx>) -> Response {
    if ctx.ready_probe() {
        (StatusCode::OK, "ok").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable").into_response()
    }
}

async fn version(State(ctx): State<NodeCtx>) -> Response {
    match ctx.cluster.snapshot_node(ctx.idx) {
        Some(s) if ctx.cluster.is_running(ctx.idx) => {
            Json(json!({ "version": s.version })).into_response()
        }
        _ => (StatusCode::SERVICE_UNAVAILABLE, "unavailable").into_response(),
    }
}
