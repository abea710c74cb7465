//! Neo4j 3.x causal-cluster endpoints: role-based 200/404 with plain `true`/`false` bodies,
//! and the `causalclustering/status` JSON. Every node here is a core (no read replicas), and a
//! node that is not running answers 503 `false` (the real one would not answer at all).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::{text, NodeCtx};

pub(crate) fn routes() -> Router<NodeCtx> {
    Router::new()
        .route("/db/manage/server/core/available", get(available))
        .route("/db/manage/server/core/writable", get(writable))
        .route("/db/manage/server/core/read-only", get(read_only))
        .route(
            "/db/manage/server/causalclustering/available",
            get(available),
        )
        .route("/db/manage/server/causalclustering/writable", get(writable))
        .route(
            "/db/manage/server/causalclustering/read-only",
            get(read_only),
        )
        .route("/db/manage/server/causalclustering/status", get(status))
        .route("/db/data/transaction/commit", post(super::neo4j_tx::commit))
        .merge(super::neo4j_ha::routes())
}

/// Neo4j answers its REST API and status endpoints only with credentials
/// ([`crate::lab::neo4j_auth`]: 3.x `AuthorizationEnabledFilter`, with every default kept);
/// the lab's `/kv` data plane and `/_lab/` routes are not Neo4j's and stay open.
pub(crate) async fn authorize(State(ctx): State<NodeCtx>, req: Request, next: Next) -> Response {
    if let Some(creds) = &ctx.cluster.neo4j_auth {
        if crate::lab::neo4j_auth::guarded(req.uri().path()) {
            if let Some(refused) = creds.refuse(req.headers()) {
                return refused;
            }
        }
    }
    next.run(req).await
}

/// The node's role when it can answer, `None` when it is down (or a flaky probe fails).
fn role(ctx: &NodeCtx) -> Option<String> {
    if ctx.probe_fails() || !ctx.cluster.is_ready(ctx.idx) {
        return None;
    }
    ctx.cluster.snapshot_node(ctx.idx).map(|s| s.role)
}

async fn available(State(ctx): State<NodeCtx>) -> Response {
    match role(&ctx) {
        Some(_) => text(StatusCode::OK, "true"),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "false"),
    }
}

async fn writable(State(ctx): State<NodeCtx>) -> Response {
    match role(&ctx).as_deref() {
        Some("leader") => text(StatusCode::OK, "true"),
        Some(_) => text(StatusCode::NOT_FOUND, "false"),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "false"),
    }
}

async fn read_only(State(ctx): State<NodeCtx>) -> Response {
    match role(&ctx).as_deref() {
        Some("leader") => text(StatusCode::NOT_FOUND, "false"),
        Some(_) => text(StatusCode::OK, "true"),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "false"),
    }
}

async fn status(State(ctx): State<NodeCtx>) -> Response {
    if role(&ctx).is_none() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "false");
    }
    let all = ctx.cluster.snapshot_all();
    let Some(me) = all.get(ctx.idx) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let group: Vec<_> = all
        .iter()
        .filter(|n| n.group == me.group && n.state == super::super::RunState::Running)
        .collect();
    let mut voting: Vec<String> = group.iter().map(|n| member_id(&n.name)).collect();
    voting.sort();
    let leader = group.iter().find(|n| n.role == "leader");
    let mut body = json!({
        "lastAppliedRaftIndex": ctx.cluster.applied_index(),
        "participatingInRaftGroup": true,
        "votingMembers": voting,
        "healthy": true,
        "memberId": member_id(&me.name),
        "millisSinceLastLeaderMessage": if me.role == "leader" { 0 } else { 42 },
        "core": true,
    });
    if let (Some(l), Some(obj)) = (leader, body.as_object_mut()) {
        obj.insert("leader".into(), json!(member_id(&l.name)));
    }
    Json(body).into_response()
}

/// A stable, UUID-looking member id per node name.
pub(crate) fn member_id(name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        (h >> 20) & 0xfff,
        h & 0xffff_ffff_ffff
    )
}
