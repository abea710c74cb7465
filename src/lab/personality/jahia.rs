//! Jahia: the tools page's full read-only switch and status
//! (`/modules/tools/maintenance.jsp`), and a readiness endpoint for the balancer
//! (`/modules/healthcheck`, like the healthcheck module: `{"status":"GREEN"}` or 503 `RED`).
//!
//! The tools page as Jahia/tools serves it (`src/main/resources/maintenance.jsp` and
//! `src/main/java/org/jahia/modules/tools/csrf/ToolsAccessTokenFilter.java`, Jahia/tools
//! master as of 2026-12):
//! - it is an **XHTML page**, not JSON: "The full read-only mode is currently
//!   <strong>ON</strong>." when every node agrees, else "... <strong>X</strong> for the current
//!   node." followed by one `<li>` per other node;
//! - a request **without parameters** gets a fresh `toolAccessToken`, kept in the HTTP session
//!   (the `JSESSIONID` cookie) and written into the page's links;
//! - a request **with parameters** (`?fullReadOnlyMode=true`) must carry a `toolAccessToken`
//!   issued to the same session, or the filter throws `ServletException("Missing token: <url>")`,
//!   which Tomcat answers with HTTP 500. A lone `curl ...?fullReadOnlyMode=true` therefore fails:
//!   it takes two requests sharing a cookie jar (or the Karaf shell's
//!   `jahia:full-read-only ON|OFF`, which the lab's `full-read-only` admin op stands for);
//! - sent to the processing node, the switch is cluster-wide (here: every running node on the
//!   same schema); from another node it changes that node only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, Request, State};
use axum::http::header::{CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::super::session_cookie;
use super::super::RunState;
use super::NodeCtx;

pub(crate) fn routes() -> Router<NodeCtx> {
    Router::new()
        .route("/modules/healthcheck", get(healthcheck))
        .route("/modules/tools/maintenance.jsp", get(maintenance))
        .route("/_lab/cluster-nodes", get(cluster_nodes))
        .route("/cms/logout", get(logout))
}

/// Jahia's HTTP sessions on the data plane (`/kv`, the pages users browse): a request whose
/// `JSESSIONID` this node's JVM does not hold gets a new session and its cookie, as Tomcat
/// answers one (`Set-Cookie: JSESSIONID=...`). A session lives in the node's memory only
/// (`node::jahia::HttpSessions`), so a user whose node stopped comes back logged out: the
/// lab's load generator counts that as a lost session.
pub(crate) async fn http_session(State(ctx): State<NodeCtx>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/kv/") {
        return next.run(req).await;
    }
    let cookie = session_cookie::sent(req.headers());
    let created = ctx
        .cluster
        .jahia_session(ctx.idx, cookie.as_deref(), fresh_id);
    let mut response = next.run(req).await;
    if let Some(v) = created
        .flatten()
        .as_deref()
        .and_then(session_cookie::new_session)
    {
        response.headers_mut().insert(SET_COOKIE, v);
    }
    response
}

/// `/cms/logout` (Jahia's `org.jahia.bin.Logout`): invalidates the user's session. The real
/// servlet then redirects to the site; the lab answers 200 and expires the cookie, so its
/// balancer forgets which node the session was pinned to (a real stick table lets the entry
/// expire instead).
async fn logout(State(ctx): State<NodeCtx>, headers: HeaderMap) -> Response {
    if !ctx.cluster.is_running(ctx.idx) {
        return (StatusCode::SERVICE_UNAVAILABLE, "node is not running").into_response();
    }
    if let Some(id) = session_cookie::sent(&headers) {
        ctx.cluster.jahia_logout(ctx.idx, &id);
    }
    let mut response = (StatusCode::OK, "logged out").into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, session_cookie::expired());
    response
}

/// The Karaf shell's `cluster:node-list` on this node, out of band like the lab's other Karaf
/// stand-ins (Jahia 8 replicates its OSGi state with Apache Karaf Cellar: Jahia Academy, "Which
/// Karaf configuration files are synchronized between cluster nodes in Jahia?"; Cellar manual,
/// "Cellar nodes": `cluster:node-list` lists the known nodes, the local one marked): the node
/// and the members it sees. 503 while the node does not run (the shell is down with it).
///
/// A node that started with `cluster.activated = false` (its release's `jahia.node.properties`
/// not carried over: Jahia's shipped default) has no Cellar: the shell answers as Apache Felix
/// Gogo does for a command nobody provides (`CommandNotFoundException`: "Command not found:
/// <name>", apache/felix-dev gogo/runtime `org/apache/felix/gogo/runtime/CommandNotFoundException.java`,
/// the runtime Karaf 4.x ships); 500 stands for the command's failure.
async fn cluster_nodes(State(ctx): State<NodeCtx>) -> Response {
    if ctx.cluster.is_running(ctx.idx) && !ctx.cluster.jahia_clustered(ctx.idx) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "Command not found: cluster:node-list"})),
        )
            .into_response();
    }
    let members = ctx.cluster.jahia_members(ctx.idx);
    if members.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "the node is not running"})),
        )
            .into_response();
    }
    let me = ctx.cluster.name_of(ctx.idx);
    Json(json!({"node": me, "members": members})).into_response()
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

/// A hard-to-guess, UUID-shaped id (the lab has no random source: a hash of a counter and the
/// clock is enough for a training cluster on loopback).
fn fresh_id() -> String {
    use sha2::{Digest, Sha256};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let hex: String = Sha256::digest(format!("{n}:{t}").as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[derive(Deserialize)]
struct MaintenanceQuery {
    #[serde(rename = "fullReadOnlyMode")]
    full_read_only_mode: Option<String>,
    #[serde(rename = "toolAccessToken")]
    tool_access_token: Option<String>,
}

fn on_off(b: bool) -> &'static str {
    if b {
        "ON"
    } else {
        "OFF"
    }
}

async fn maintenance(
    State(ctx): State<NodeCtx>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<MaintenanceQuery>,
) -> Response {
    if !ctx.cluster.is_running(ctx.idx) {
        return (StatusCode::SERVICE_UNAVAILABLE, "node is not running").into_response();
    }
    let sent = session_cookie::sent(&headers);
    let has_params = uri.query().is_some_and(|q| !q.is_empty());
    // ToolsAccessTokenFilter: parameters without a token of this session -> ServletException,
    // which Tomcat answers with its 500 error page. The session is this node's: a token
    // another node issued is no good here.
    let token_valid = match (&sent, &q.tool_access_token) {
        (Some(s), Some(t)) => ctx.cluster.jahia_token_valid(ctx.idx, s, t),
        _ => false,
    };
    if has_params && !token_valid {
        return missing_token(&ctx, &uri);
    }
    let processing = ctx
        .cluster
        .snapshot_node(ctx.idx)
        .is_some_and(|s| s.role == "processing");
    // The JSP reads the value with Boolean.valueOf: anything but "true" means false.
    if let Some(on) = q
        .full_read_only_mode
        .as_deref()
        .map(|v| v.eq_ignore_ascii_case("true"))
    {
        if processing {
            ctx.cluster.set_read_only_cluster(ctx.idx, on);
        } else if let Err(e) = ctx.cluster.set_read_only(ctx.idx, on) {
            return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
        }
    }
    // A request without parameters gets a new token, kept in its session on this node (a new
    // session when the node holds none of the request's: `node::jahia::HttpSessions`).
    let token = match (&q.tool_access_token, has_params) {
        (Some(t), true) => t.clone(),
        _ => fresh_id(),
    };
    let Some(created) = ctx
        .cluster
        .jahia_session(ctx.idx, sent.as_deref(), fresh_id)
    else {
        return (StatusCode::SERVICE_UNAVAILABLE, "node is not running").into_response();
    };
    let session = created.clone().or(sent).unwrap_or_default();
    if !ctx.cluster.jahia_store_token(ctx.idx, &session, &token) {
        return (StatusCode::SERVICE_UNAVAILABLE, "node is not running").into_response();
    }
    let all = ctx.cluster.snapshot_all();
    let local = on_off(all.get(ctx.idx).is_some_and(|s| s.read_only));
    let others: Vec<(&str, &str)> = all
        .iter()
        .enumerate()
        .filter(|(j, n)| *j != ctx.idx && n.state == RunState::Running)
        .map(|(_, n)| (n.name.as_str(), on_off(n.read_only)))
        .collect();
    let body = page(local, &others, processing, &token);
    let mut response = (
        StatusCode::OK,
        [(CONTENT_TYPE, "text/html;charset=UTF-8")],
        body,
    )
        .into_response();
    if let Some(v) = created.as_deref().and_then(session_cookie::new_session) {
        response.headers_mut().insert(SET_COOKIE, v);
    }
    response
}

/// Tomcat's error page for the filter's `ServletException("Missing token: " + url)`.
fn missing_token(ctx: &NodeCtx, uri: &Uri) -> Response {
    let host = ctx
        .cluster
        .snapshot_node(ctx.idx)
        .map(|n| n.address.to_string())
        .unwrap_or_default();
    let url = escape(&format!("http://{host}{uri}"));
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(CONTENT_TYPE, "text/html;charset=utf-8")],
        format!(
            "<html><head><title>HTTP Status 500 – Internal Server Error</title></head><body>\
             <h1>HTTP Status 500 – Internal Server Error</h1><p><b>Exception</b></p>\
             <pre>javax.servlet.ServletException: Missing token: {url}</pre></body></html>"
        ),
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The full read-only part of maintenance.jsp: its sentences, per-node list and links.
fn page(local: &str, others: &[(&str, &str)], processing: bool, token: &str) -> String {
    let synced = others.iter().all(|(_, st)| *st == local);
    let mut status = String::new();
    if synced {
        status.push_str(&format!(
            "The full read-only mode is currently <strong>{local}</strong>.\n"
        ));
    } else {
        status.push_str(&format!(
            "The full read-only mode is currently <strong>{local}</strong> for the current \
             node.\n<ul style=\"margin: 0\">\n"
        ));
        for (name, st) in others {
            status.push_str(&format!(
                "<li>The full read-only mode is currently <strong>{st}</strong> for node \
                 <strong>{name}</strong></li>\n"
            ));
        }
        status.push_str("</ul>\n");
    }
    let enabled = local == "ON";
    let note = if processing {
        ""
    } else {
        "<p>Please note that enabling or disabling full read-only mode will only be applied \
         cluster-wide when initiated from the processing server. <strong>Enabling or disabling \
         it from here will only update the status of this node.</strong></p>\n"
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n\
         <html xmlns=\"http://www.w3.org/1999/xhtml\">\n\
         <head><title>System Maintenance</title></head>\n<body>\n<h1>System Maintenance</h1>\n\
         <h2>Full Read-Only Mode</h2>\n{note}<p>\n{status}<br/>Click here to \
         <a href=\"?fullReadOnlyMode={}&toolAccessToken={token}\">{} full read-only mode</a>\n\
         </p>\n</body>\n</html>\n",
        !enabled,
        if enabled { "disable" } else { "enable" },
    )
}
