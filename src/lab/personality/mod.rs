//! Each node's HTTP server: the data plane (`/kv`), the generic status endpoint, the node's
//! `/_lab/` admin routes, and the product's own endpoints (one module per product).

pub mod data;
pub mod generic;
pub mod jahia;
pub mod milvus;
pub mod neo4j;
pub mod neo4j_ha;
pub mod neo4j_tx;
pub mod weaviate;

use std::sync::Arc;

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::config::Product;
use super::node::{Cluster, Consistency, KvError};

/// What a node's handlers get: the cluster and which node they are.
#[derive(Clone)]
pub(crate) struct NodeCtx {
    pub cluster: Arc<Cluster>,
    pub idx: usize,
}

impl NodeCtx {
    /// A flaky node's probe endpoints fail now and then.
    pub fn probe_fails(&self) -> bool {
        self.cluster.probe_fails(self.idx)
    }

    /// Ready for traffic, and not failing this probe by a flaky fault.
    pub fn ready_probe(&self) -> bool {
        !self.probe_fails() && self.cluster.is_ready(self.idx)
    }
}

pub(crate) fn node_router(cluster: Arc<Cluster>, idx: usize) -> Router {
    let ctx = NodeCtx { cluster, idx };
    if ctx.cluster.personality().is_some() {
        return Router::new()
            .route("/kv/{key}", get(kv_get).put(kv_put))
            .route("/_lab/status", get(status))
            .merge(super::admin::node_routes())
            .fallback(data::handle)
            .layer(middleware::from_fn_with_state(ctx.clone(), slow))
            .with_state(ctx);
    }
    let product = match ctx.cluster.product {
        Product::Generic => generic::routes(),
        Product::Jahia => jahia::routes(),
        Product::Weaviate => weaviate::routes(),
        Product::Neo4j => neo4j::routes(),
        Product::Milvus => milvus::routes(),
    };
    let mut router = Router::new()
        .route("/kv/{key}", get(kv_get).put(kv_put).delete(kv_delete))
        .route("/_lab/status", get(status))
        .merge(super::admin::node_routes())
        .merge(product);
    if ctx.cluster.product == Product::Jahia {
        router = router.layer(middleware::from_fn_with_state(
            ctx.clone(),
            jahia::http_session,
        ));
    }
    if ctx.cluster.product == Product::Neo4j {
        // Neo4j's authentication filter sits in front of its whole server, before routing:
        // an unknown `/db/` path is refused for credentials before it is a 404.
        router = router.layer(middleware::from_fn_with_state(
            ctx.clone(),
            neo4j::authorize,
        ));
    }
    router
        .layer(middleware::from_fn_with_state(ctx.clone(), slow))
        .with_state(ctx)
}

/// `slow:NODE:DELAY` delays everything but the admin operations (which stand for out-of-band
/// access, not the node's own API).
async fn slow(State(ctx): State<NodeCtx>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let admin_op = path.starts_with("/_lab/") && path != "/_lab/status";
    if !admin_op {
        if let Some(d) = ctx.cluster.slow_delay(ctx.idx) {
            tokio::time::sleep(d).await;
        }
    }
    next.run(req).await
}

/// `/kv` requests take Weaviate's `consistency_level` (`ONE`, `QUORUM`, `ALL`): on a Weaviate
/// lab the lab's objects are the collection's, read and written as `/v1/objects` does.
type KvQuery = Query<BTreeMap<String, String>>;

fn consistency(q: &KvQuery) -> Result<Option<Consistency>, String> {
    Consistency::parse(q.get("consistency_level").map(String::as_str))
}

async fn kv_get(State(ctx): State<NodeCtx>, Path(key): Path<String>, q: KvQuery) -> Response {
    let cl = match consistency(&q) {
        Ok(cl) => cl,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    match ctx.cluster.kv_get_at(ctx.idx, &key, cl) {
        Ok(Some(v)) => (StatusCode::OK, v).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "not found").into_response(),
        Err(e) => kv_error(e),
    }
}

async fn kv_put(
    State(ctx): State<NodeCtx>,
    Path(key): Path<String>,
    q: KvQuery,
    body: Bytes,
) -> Response {
    let cl = match consistency(&q) {
        Ok(cl) => cl,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let value = String::from_utf8_lossy(&body);
    match ctx.cluster.kv_write(ctx.idx, &key, Some(&value), cl).await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(e) => kv_error(e),
    }
}

async fn kv_delete(State(ctx): State<NodeCtx>, Path(key): Path<String>, q: KvQuery) -> Response {
    let cl = match consistency(&q) {
        Ok(cl) => cl,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    match ctx.cluster.kv_write(ctx.idx, &key, None, cl).await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(e) => kv_error(e),
    }
}

fn kv_error(e: KvError) -> Response {
    let status = match e {
        KvError::NotRunning | KvError::ReadOnly | KvError::NotLoaded | KvError::NoLeader(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        // Weaviate answers a consistency failure 500 (handlers_objects.go: the default case).
        KvError::Internal(_) | KvError::Unavailable(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, e.to_string()).into_response()
}

/// `GET /_lab/status`: answers in every state (it is the lab's view, not the product's), but
/// a flaky node fails it now and then like any probe.
async fn status(State(ctx): State<NodeCtx>) -> Response {
    if ctx.probe_fails() {
        return (StatusCode::SERVICE_UNAVAILABLE, "flaky").into_response();
    }
    match ctx.cluster.snapshot_node(ctx.idx) {
        Some(s) => Json(s).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The plain-text `true`/`false` answers Neo4j and others give.
pub(crate) fn text(status: StatusCode, body: &'static str) -> Response {
    (status, body).into_response()
}
