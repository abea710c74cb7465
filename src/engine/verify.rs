//! A rollback's verification: after the last undo, the procedure's `[[rollback.verify]]`
//! checks run on every node they select, each like a `wait` gate (until it holds for its
//! stability window, or its timeout passes), all at once. The result is each node's checks,
//! with the product's own reason for every one that failed.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::action::{scaled_secs, select_nodes};
use super::check::{run_check, CheckResult};
use super::event::{CheckVerdict, NodeVerdict};
use super::hold::{gate_instances, Hold, Instance};
use super::strings::Secrets;
use crate::lb::{Backend, LbClient};
use crate::procedure::model::{Membership, VerifySpec, WaitSpec};
use crate::target::Target;

/// What the verification needs of the engine.
#[derive(Clone)]
pub struct VerifyCtx {
    pub target: Arc<Target>,
    pub secrets: Arc<Secrets>,
    pub http: reqwest::Client,
    pub lb: Option<LbClient>,
    /// See `EngineConfig::time_scale`.
    pub time_scale: f64,
}

/// Run every check (at once) and group what they found by node, in the target's order; the
/// checks about no node come last.
pub async fn run(specs: Vec<VerifySpec>, ctx: VerifyCtx) -> Vec<NodeVerdict> {
    let found = futures::future::join_all(specs.iter().map(|s| run_one(s, &ctx))).await;
    let mut names: Vec<Option<String>> = ctx
        .target
        .nodes
        .iter()
        .map(|n| Some(n.name.clone()))
        .collect();
    names.push(None);
    names
        .into_iter()
        .filter_map(|node| {
            let checks: Vec<CheckVerdict> = found
                .iter()
                .flatten()
                .filter(|(n, _)| *n == node)
                .map(|(_, c)| c.clone())
                .collect();
            (!checks.is_empty()).then(|| NodeVerdict {
                ok: checks.iter().all(|c| c.ok),
                node,
                checks,
            })
        })
        .collect()
}

/// What one round of a check reads.
enum Source {
    Checks(Vec<Instance>),
    /// The balancer's view of these nodes: in it with this membership, and serving.
    Lb(LbClient, Vec<String>, Membership),
}

impl Source {
    fn nodes(&self) -> Vec<Option<String>> {
        match self {
            Source::Checks(i) => i.iter().map(|(n, _)| n.clone()).collect(),
            Source::Lb(_, nodes, _) => nodes.iter().cloned().map(Some).collect(),
        }
    }

    async fn round(&self, spec: &VerifySpec, ctx: &VerifyCtx) -> Vec<(bool, String)> {
        match self {
            Source::Checks(instances) => futures::future::join_all(
                instances
                    .iter()
                    .map(|(_, c)| run_check(c, &ctx.http, &ctx.secrets)),
            )
            .await
            .into_iter()
            .map(|r| (r.ok, reason(spec, &r, &ctx.secrets)))
            .collect(),
            Source::Lb(lb, nodes, want) => match lb.backends().await {
                Ok(backends) => nodes
                    .iter()
                    .map(|n| in_balancer(&backends, n, *want))
                    .collect(),
                Err(e) => nodes.iter().map(|_| (false, e.to_string())).collect(),
            },
        }
    }
}

/// One check on every node it selects: (node, verdict) per instance.
async fn run_one(spec: &VerifySpec, ctx: &VerifyCtx) -> Vec<(Option<String>, CheckVerdict)> {
    let verdict = |ok: bool, detail: String| CheckVerdict {
        what: spec.what.clone(),
        ok,
        detail,
    };
    let sel = spec.nodes.clone().unwrap_or_else(|| "all".into());
    let source = match (spec.lb, &ctx.lb) {
        (Some(_), None) => {
            return vec![(
                None,
                verdict(false, "the target has no load balancer ([lb])".into()),
            )]
        }
        (Some(want), Some(lb)) => {
            let nodes: Vec<String> = select_nodes(&ctx.target, &sel)
                .into_iter()
                .map(|(_, n)| n.name.clone())
                .collect();
            Source::Lb(lb.clone(), nodes, want)
        }
        (None, _) => {
            // As a gate: a probe's per-node instances, or a check once (over nodes when it is
            // templated per node or names them).
            let gate = WaitSpec {
                probe: spec.probe.clone(),
                check: spec.check.clone(),
                nodes: spec.nodes.clone(),
                stable_secs: spec.stable_secs,
                timeout_secs: spec.timeout_secs,
                interval_ms: spec.interval_ms,
            };
            match gate_instances(&gate, &ctx.target, &ctx.secrets) {
                Ok(i) => Source::Checks(i),
                Err(e) => return vec![(None, verdict(false, ctx.secrets.redact(&e)))],
            }
        }
    };
    let nodes = source.nodes();
    if nodes.is_empty() {
        return vec![(None, verdict(false, format!("selects no node ({sel:?})")))];
    }
    let scale = if ctx.time_scale > 0.0 {
        ctx.time_scale
    } else {
        1.0
    };
    let need = scaled_secs(spec.stable_secs, scale);
    let mut hold = Hold::new(nodes.len(), need, scaled_secs(spec.timeout_secs, scale));
    let interval = Duration::from_millis(spec.interval_ms.max(50));
    let now = loop {
        let round = Instant::now();
        let results = source.round(spec, ctx).await;
        let now = hold.record(results);
        if hold.held(now) || hold.timed_out(now) {
            break now;
        }
        tokio::time::sleep_until(round + interval).await;
    };
    nodes
        .into_iter()
        .enumerate()
        .map(|(i, node)| {
            let last = ctx.secrets.redact(hold.last(i));
            let v = if hold.instance_held(i, now) {
                verdict(true, last)
            } else if hold.instance_passing(i) {
                verdict(
                    false,
                    format!(
                        "passing, but not for {:.1} s in a row before the timeout: {last}",
                        need.as_secs_f64()
                    ),
                )
            } else {
                verdict(false, last)
            };
            (node, v)
        })
        .collect()
}

/// What a check saw; when it failed, the product's own words first: the value at the
/// entry's `reason` pointer, else what the check found wrong and the first line of the body.
fn reason(spec: &VerifySpec, r: &CheckResult, secrets: &Secrets) -> String {
    if r.ok {
        return r.detail.clone();
    }
    let said = spec
        .reason
        .as_deref()
        .and_then(|p| r.json.as_ref()?.pointer(p))
        .filter(|v| !v.is_null())
        .map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .filter(|s| !s.trim().is_empty());
    if let Some(said) = said {
        // Masked before it is cut (the excerpt below is masked at the source).
        return secrets.redact_cut(&said, CLIP_CHARS);
    }
    let body = r
        .excerpt
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    if body.is_empty() || r.detail.contains(body) {
        r.detail.clone()
    } else {
        format!("{}: {}", r.detail, super::strings::cut(body, CLIP_CHARS))
    }
}

/// The node's backend in the balancer: present with membership `want` and serving.
fn in_balancer(backends: &[Backend], node: &str, want: Membership) -> (bool, String) {
    let Some(b) = backends
        .iter()
        .find(|b| b.node.as_deref().unwrap_or(&b.server) == node || b.server == node)
    else {
        return (false, format!("the balancer has no server for {node}"));
    };
    let check = b
        .check
        .as_deref()
        .map(|c| format!(", check {c}"))
        .unwrap_or_default();
    let seen = format!(
        "{} {} ({}{check}){}",
        b.server,
        b.membership,
        b.health,
        if b.serving {
            ", serving"
        } else {
            ", not serving"
        }
    );
    (b.membership == want && b.serving, seen)
}

/// What a verify check's reason keeps, in characters.
const CLIP_CHARS: usize = 300;
