//! A node's product API from a data personality (`procedures/labs/<product>.toml`): every
//! request that is not the lab's own goes to the personality's routes.

use std::collections::BTreeMap;

use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::NodeCtx;
use crate::lab::node::DataRequest;

/// The largest request body a personality route reads (settings, queries: small JSON).
const MAX_BODY: usize = 1 << 20;

pub(crate) async fn handle(State(ctx): State<NodeCtx>, req: Request) -> Response {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = Query::<BTreeMap<String, String>>::try_from_uri(req.uri())
        .map(|q| q.0)
        .unwrap_or_default();
    // The readiness path fails for a node a fault holds back (never-ready, flaky), as every
    // product's readiness endpoint does in the lab.
    let readiness = ctx
        .cluster
        .personality()
        .map(|p| p.spec.product.readiness.clone())
        .unwrap_or_default();
    if path == readiness.split('?').next().unwrap_or_default()
        && ctx.cluster.is_running(ctx.idx)
        && !ctx.ready_probe()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response();
    }
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b.to_vec(),
        Err(e) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, format!("request body: {e}")).into_response()
        }
    };
    let reply = ctx.cluster.data_request(
        ctx.idx,
        DataRequest {
            method,
            path,
            query,
            body,
        },
    );
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, reply.content_type)],
        reply.body,
    )
        .into_response()
}
