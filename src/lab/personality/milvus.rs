//! Milvus: `GET /healthz` (200 `OK`, or 500 naming the healthy component count) and the proxy's
//! `CheckHealth` RPC (whether writes are denied). The version is visible through `/_lab/status`;
//! the 2.1 -> 2.2 metadata migration is an admin operation.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::NodeCtx;

/// Components a standalone Milvus registers (coordinators, nodes, proxy).
const COMPONENTS: usize = 8;

pub(crate) fn routes() -> Router<NodeCtx> {
    Router::new()
        .route("/healthz", get(healthz))
        .route(CHECK_HEALTH, post(check_health))
        .route(
            "/_lab/collections-as-recorded",
            get(collections_as_recorded),
        )
}

/// milvus_data.py `verify` on a standalone lab (node::milvus_host): 200 with what it found when
/// every recorded row is there and queries answer; 409 with why not (not running, "collection
/// not loaded" while a restarted server reloads, rows missing).
async fn collections_as_recorded(State(ctx): State<NodeCtx>) -> Response {
    match ctx.cluster.collections_as_recorded(ctx.idx) {
        Ok(said) => Json(json!({ "ok": true, "said": said })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The proxy's `CheckHealth` RPC (milvus-proto `milvus.proto`, `MilvusService.CheckHealth`). The
/// lab speaks HTTP/JSON: the RPC's full method path, the answer as `grpcurl -emit-defaults`
/// prints it (protojson field names).
pub const CHECK_HEALTH: &str = "/milvus.proto.milvus.MilvusService/CheckHealth";

/// Writes denied by the quota center (a full disk: the `deny-writes` fault) do not make Milvus
/// unhealthy: `isHealthy` stays true while `quotaStates` lists `DenyToWrite` and `reasons` its
/// error string (milvus-io/milvus v2.2.16 internal/proxy/impl.go `CheckHealth`, which appends
/// `multiRateLimiter.GetQuotaStates()`; internal/proxy/multi_rate_limiter.go `QuotaErrorString`
/// for `DiskQuotaExhausted`; the proxy test `TestProxy_CheckHealth` "check quota state"). Inserts
/// meanwhile fail with that error code. So `/healthz` alone cannot say a rolled-back Milvus
/// takes writes again.
async fn check_health(State(ctx): State<NodeCtx>) -> Response {
    if !ctx.cluster.is_running(ctx.idx) {
        // grpc: Unavailable (the proxy is not listening); over the lab's HTTP, 503.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"code": 14, "message": "connection refused"})),
        )
            .into_response();
    }
    let ready = ctx.ready_probe();
    let mut reasons: Vec<String> = Vec::new();
    let mut states: Vec<&str> = Vec::new();
    if !ready {
        // The components' own words when one is down ("querycoord is unhealthy", v2.2.16
        // internal/querycoordv2/services.go CheckHealth); the lab has one process per node.
        reasons.push("proxy is unhealthy".into());
    }
    if ctx.cluster.writes_denied(ctx.idx) {
        states.push("DenyToWrite");
        reasons.push(DISK_QUOTA_EXHAUSTED.into());
    }
    Json(json!({
        "status": {"error_code": "Success", "reason": ""},
        "isHealthy": ready,
        "reasons": reasons,
        "quotaStates": states,
    }))
    .into_response()
}

/// `QuotaErrorString[commonpb.ErrorCode_DiskQuotaExhausted]` (v2.2.16 multi_rate_limiter.go).
pub const DISK_QUOTA_EXHAUSTED: &str = "disk quota exhausted, please allocate more resources";

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
