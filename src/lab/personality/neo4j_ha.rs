//! Neo4j 3.x HA endpoints (`/db/manage/server/ha/{master,slave,available}`) and the REST root
//! `/db/data/` (with `neo4j_version`), for the HA stack procedure. The lab does not tell HA from
//! causal clustering: a `CORE` or `HA` node answers as an HA member (the leader is the master);
//! a `SINGLE` one has no HA endpoints (404), like a standalone server.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::{text, NodeCtx};

pub(crate) fn routes() -> Router<NodeCtx> {
    Router::new()
        .route("/db/manage/server/ha/master", get(master))
        .route("/db/manage/server/ha/slave", get(slave))
        .route("/db/manage/server/ha/available", get(available))
        .route("/db/data/", get(data_root))
}

enum Ha {
    Down,
    Standalone,
    Master,
    Slave,
}

fn ha_role(ctx: &NodeCtx) -> Ha {
    if !ctx.ready_probe() {
        return Ha::Down;
    }
    match ctx.cluster.snapshot_node(ctx.idx) {
        None => Ha::Down,
        Some(n) if n.mode == "SINGLE" => Ha::Standalone,
        Some(n) if n.role == "leader" => Ha::Master,
        Some(_) => Ha::Slave,
    }
}

async fn master(State(ctx): State<NodeCtx>) -> Response {
    match ha_role(&ctx) {
        Ha::Master => text(StatusCode::OK, "true"),
        Ha::Slave => text(StatusCode::NOT_FOUND, "false"),
        Ha::Standalone => StatusCode::NOT_FOUND.into_response(),
        Ha::Down => text(StatusCode::SERVICE_UNAVAILABLE, "false"),
    }
}

async fn slave(State(ctx): State<NodeCtx>) -> Response {
    match ha_role(&ctx) {
        Ha::Slave => text(StatusCode::OK, "true"),
        Ha::Master => text(StatusCode::NOT_FOUND, "false"),
        Ha::Standalone => StatusCode::NOT_FOUND.into_response(),
        Ha::Down => text(StatusCode::SERVICE_UNAVAILABLE, "false"),
    }
}

async fn available(State(ctx): State<NodeCtx>) -> Response {
    match ha_role(&ctx) {
        Ha::Master => text(StatusCode::OK, "master"),
        Ha::Slave => text(StatusCode::OK, "slave"),
        Ha::Standalone => StatusCode::NOT_FOUND.into_response(),
        Ha::Down => text(StatusCode::SERVICE_UNAVAILABLE, "false"),
    }
}

async fn data_root(State(ctx): State<NodeCtx>) -> Response {
    if !ctx.ready_probe() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "false");
    }
    match ctx.cluster.snapshot_node(ctx.idx) {
        Some(n) => Json(json!({
            "neo4j_version": n.version,
            "neo4j_edition": "enterprise",
            "node": format!("http://{}/db/data/node", n.address),
            "transaction": format!("http://{}/db/data/transaction", n.address),
        }))
        .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
