//! A data-made personality on the cluster: its variables live beside the lab's own node state,
//! and its routes, hooks, transitions and refusals are evaluated under the cluster's lock, so a
//! reply and the state change it makes are one step.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use minijinja::value::Value;
use serde_json::Value as Json;

use super::{Cluster, Inner, RunState};
use crate::lab::data::eval::{Changes, Ctx, State};
use crate::lab::data::model::After;
use crate::lab::data::DataPersonality;
use crate::lab::faults::Fault;

/// The personality a lab plays and the versions it was started with.
#[derive(Debug)]
pub(crate) struct DataRuntime {
    pub personality: Arc<DataPersonality>,
    pub from_version: String,
    pub to_version: String,
}

/// Which hook of `[on]` runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Hook {
    Stop,
    Running,
}

/// Which of the product's words for a lab failure.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reason {
    Downgrade,
    FailMigration,
    Crash,
}

/// A route's answer.
#[derive(Debug)]
pub(crate) struct DataReply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl DataReply {
    fn text(status: u16, body: String) -> Self {
        DataReply {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            body,
        }
    }
}

/// A request as a route sees it.
pub(crate) struct DataRequest {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Cluster {
    /// Plays `personality`: sets its variables on every node and runs its `on.running` hook
    /// for the nodes that start out running.
    pub(crate) fn set_personality(&mut self, rt: DataRuntime) {
        {
            let g = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
            g.vars = rt.personality.initial_cluster();
            let transitions = rt.personality.spec.transition.len();
            for n in &mut g.nodes {
                n.vars = rt.personality.initial_node();
                n.since = vec![None; transitions];
            }
        }
        self.data = Some(rt);
        let running: Vec<usize> = {
            let g = self.inner();
            (g.nodes.iter().enumerate())
                .filter(|(_, n)| n.state == RunState::Running)
                .map(|(i, _)| i)
                .collect()
        };
        let mut g = self.inner();
        for idx in running {
            self.data_hook(&mut g, idx, Hook::Running);
        }
    }

    pub(crate) fn personality(&self) -> Option<&Arc<DataPersonality>> {
        self.data.as_ref().map(|d| &d.personality)
    }

    fn never_ready_nodes(&self) -> BTreeSet<String> {
        self.list_faults()
            .into_iter()
            .filter_map(|f| match f {
                Fault::NeverReady { node } => Some(node),
                _ => None,
            })
            .collect()
    }

    fn data_nodes(&self, g: &Inner, never_ready: &BTreeSet<String>) -> Vec<Value> {
        (g.nodes.iter().enumerate())
            .map(|(i, n)| {
                let store = g.stores.get(&n.store_key);
                let mut o = serde_json::Map::new();
                for (k, v) in &n.vars {
                    o.insert(k.clone(), v.clone());
                }
                let running = n.state == RunState::Running;
                let facts = [
                    ("name", Json::from(n.name.clone())),
                    ("index", Json::from(i + 1)),
                    ("version", Json::from(n.version.clone())),
                    ("state", Json::from(n.state.as_str())),
                    ("role", Json::from(self.role_of(g, i))),
                    ("read_only", Json::from(n.read_only)),
                    (
                        "ready",
                        Json::from(running && !never_ready.contains(&n.name)),
                    ),
                    (
                        "store_format",
                        Json::from(store.map_or(0, |s| s.file.format)),
                    ),
                    ("reason", n.reason.clone().map_or(Json::Null, Json::from)),
                    ("group", n.group.clone().map_or(Json::Null, Json::from)),
                    ("address", Json::from(n.addr.to_string())),
                ];
                for (k, v) in facts {
                    o.insert(k.to_string(), v);
                }
                Value::from_serialize(Json::Object(o))
            })
            .collect()
    }

    fn data_ctx(
        &self,
        rt: &DataRuntime,
        g: &Inner,
        never_ready: &BTreeSet<String>,
        me: Option<usize>,
        request: Option<Json>,
    ) -> Result<Ctx, crate::lab::data::eval::EvalError> {
        let nodes = self.data_nodes(g, never_ready);
        Self::data_ctx_of(rt, g, nodes, me, request)
    }

    /// [`Self::data_ctx`] with the nodes' values made already.
    fn data_ctx_of(
        rt: &DataRuntime,
        g: &Inner,
        nodes: Vec<Value>,
        me: Option<usize>,
        request: Option<Json>,
    ) -> Result<Ctx, crate::lab::data::eval::EvalError> {
        rt.personality
            .context(&Self::data_state(rt, g, nodes), me, request)
    }

    /// What every node's context shares (see `DataPersonality::shared_context`).
    fn data_shared(
        rt: &DataRuntime,
        g: &Inner,
        nodes: Vec<Value>,
    ) -> Result<Ctx, crate::lab::data::eval::EvalError> {
        rt.personality
            .shared_context(&Self::data_state(rt, g, nodes))
    }

    /// What the personality's expressions read: the nodes' values, the cluster's variables and
    /// the upgrade's versions.
    fn data_state<'a>(rt: &'a DataRuntime, g: &'a Inner, nodes: Vec<Value>) -> State<'a> {
        State {
            nodes,
            cluster: &g.vars,
            from_version: &rt.from_version,
            to_version: &rt.to_version,
        }
    }

    fn apply(g: &mut Inner, idx: usize, changes: Changes) {
        if let Some(n) = g.nodes.get_mut(idx) {
            for (k, v) in changes.node {
                n.vars.insert(k, v);
            }
        }
        for (k, v) in changes.cluster {
            g.vars.insert(k, v);
        }
    }

    /// Runs a hook of `[on]` for `idx` (nothing without a personality). A broken expression
    /// is logged: the lab's own transition has happened and stays.
    pub(super) fn data_hook(&self, g: &mut Inner, idx: usize, hook: Hook) {
        let Some(rt) = &self.data else { return };
        let (at, effects) = match hook {
            Hook::Stop => ("on.stop", &rt.personality.spec.on.stop),
            Hook::Running => ("on.running", &rt.personality.spec.on.running),
        };
        if effects.is_empty() {
            return;
        }
        // Never-ready faults do not matter to hooks; reading them here would take the faults'
        // lock under the cluster's.
        let none = BTreeSet::new();
        let result = self
            .data_ctx(rt, g, &none, Some(idx), None)
            .and_then(|ctx| rt.personality.effects(at, effects, &ctx));
        match result {
            Ok(changes) => Self::apply(g, idx, changes),
            Err(e) => tracing::warn!("{e}"),
        }
    }

    /// The first `[[refuse_start]]` that holds for `idx`, in the product's words.
    pub(super) fn data_refusal(&self, g: &Inner, idx: usize) -> Option<String> {
        let rt = self.data.as_ref()?;
        let none = BTreeSet::new();
        let ctx = match self.data_ctx(rt, g, &none, Some(idx), None) {
            Ok(c) => c,
            Err(e) => return Some(e.to_string()),
        };
        for (i, r) in rt.personality.spec.refuse_start.iter().enumerate() {
            match rt
                .personality
                .holds(&format!("refuse_start[{i}].when"), &r.when, &ctx)
            {
                Ok(false) => {}
                Ok(true) => {
                    let at = format!("refuse_start[{i}].reason");
                    return Some(
                        rt.personality
                            .render(&at, &r.reason, &ctx)
                            .unwrap_or_else(|e| e.to_string()),
                    );
                }
                Err(e) => return Some(e.to_string()),
            }
        }
        None
    }

    /// The personality's words for a lab failure on `idx`, if it has them.
    pub(super) fn data_reason(
        &self,
        g: &Inner,
        idx: usize,
        which: Reason,
        from_format: u32,
        to_format: u32,
    ) -> Option<String> {
        let rt = self.data.as_ref()?;
        let reasons = &rt.personality.spec.reasons;
        let (at, src) = match which {
            Reason::Downgrade => ("reasons.downgrade", reasons.downgrade.as_ref()?),
            Reason::FailMigration => ("reasons.fail_migration", reasons.fail_migration.as_ref()?),
            Reason::Crash => ("reasons.crash", reasons.crash.as_ref()?),
        };
        let none = BTreeSet::new();
        let mut ctx = match self.data_ctx(rt, g, &none, Some(idx), None) {
            Ok(c) => c,
            Err(e) => return Some(e.to_string()),
        };
        ctx.insert("from_format".into(), Value::from(from_format));
        ctx.insert("to_format".into(), Value::from(to_format));
        Some(
            rt.personality
                .render(at, src, &ctx)
                .unwrap_or_else(|e| e.to_string()),
        )
    }

    /// One tick of the `[[transition]]`s: for every node, each whose condition has held long
    /// enough applies, and the ones after it see what it changed.
    pub(crate) fn data_tick(&self) {
        let Some(rt) = &self.data else { return };
        let transitions = &rt.personality.spec.transition;
        if transitions.is_empty() {
            return;
        }
        let never_ready = self.never_ready_nodes();
        let mut g = self.inner();
        let now = Instant::now();
        // What the nodes look like, and what every node's context shares (derived values
        // over all nodes), made again only after a transition changed something: a tick is
        // O(nodes), not O(nodes²).
        let mut nodes = self.data_nodes(&g, &never_ready);
        let mut shared: Option<Ctx> = None;
        for idx in 0..g.nodes.len() {
            let mut made: Option<Ctx> = None;
            for (t, tr) in transitions.iter().enumerate() {
                if made.is_none() {
                    if shared.is_none() {
                        match Self::data_shared(rt, &g, nodes.clone()) {
                            Ok(c) => shared = Some(c),
                            Err(e) => {
                                tracing::warn!("{e}");
                                return;
                            }
                        }
                    }
                    let Some(base) = shared.as_ref() else { return };
                    let node = nodes.get(idx).cloned().unwrap_or(Value::from(()));
                    match rt.personality.node_context(base, node, None) {
                        Ok(c) => made = Some(c),
                        Err(e) => {
                            tracing::warn!("{e}");
                            return;
                        }
                    }
                }
                let Some(ctx) = made.as_ref() else { return };
                let at = format!("transition[{t}]");
                let holds = match rt.personality.holds(&format!("{at}.when"), &tr.when, ctx) {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::warn!("{e}");
                        continue;
                    }
                };
                let wait = tr.after.map_or(Duration::ZERO, |a| self.delay(a));
                let since = match g.nodes[idx].since.get_mut(t) {
                    Some(s) => s,
                    None => continue,
                };
                if !holds {
                    *since = None;
                    continue;
                }
                let start = *since.get_or_insert(now);
                if now.duration_since(start) < wait {
                    continue;
                }
                *since = None;
                let effects = crate::lab::data::model::Effects {
                    node: tr.node.clone(),
                    cluster: tr.cluster.clone(),
                };
                match rt.personality.effects(&at, &effects, ctx) {
                    Ok(changes) => {
                        Self::apply(&mut g, idx, changes);
                        nodes = self.data_nodes(&g, &never_ready);
                        shared = None;
                        made = None;
                    }
                    Err(e) => tracing::warn!("{e}"),
                }
            }
        }
    }

    fn delay(&self, after: After) -> Duration {
        Duration::from_millis(match after {
            After::Startup => self.timing.startup_ms,
            After::Migration => self.timing.migration_ms,
            After::Settle => self.timing.sync_settle_ms,
        })
    }

    /// Answers a request to node `idx` from the personality's routes.
    pub(crate) fn data_request(&self, idx: usize, req: DataRequest) -> DataReply {
        let Some(rt) = &self.data else {
            return DataReply::text(404, "this lab has no data personality".into());
        };
        let p = &rt.personality;
        let Some((ri, route, params)) = p.route_for(&req.method, &req.path) else {
            return DataReply::text(
                404,
                format!(
                    "no route {} {} in the lab personality {}",
                    req.method,
                    req.path,
                    p.path.display()
                ),
            );
        };
        let never_ready = self.never_ready_nodes();
        let mut g = self.inner();
        let running = g
            .nodes
            .get(idx)
            .is_some_and(|n| n.state == RunState::Running);
        if !running && !route.down {
            return DataReply::text(p.spec.product.down_status, p.spec.product.down_body.clone());
        }
        let text = String::from_utf8_lossy(&req.body).into_owned();
        let body: Json = serde_json::from_str(&text).unwrap_or(Json::Null);
        let request = serde_json::json!({
            "method": req.method,
            "path": req.path,
            "query": req.query,
            "params": params,
            "body": body,
            "text": text,
        });
        let result = (|| -> Result<Option<DataReply>, crate::lab::data::eval::EvalError> {
            let ctx = self.data_ctx(rt, &g, &never_ready, Some(idx), Some(request.clone()))?;
            for (j, reply) in route.reply.iter().enumerate() {
                let at = format!("route[{ri}].reply[{j}]");
                if let Some(w) = &reply.when {
                    if !p.holds(&format!("{at}.when"), w, &ctx)? {
                        continue;
                    }
                }
                let effects = crate::lab::data::model::Effects {
                    node: reply.node.clone(),
                    cluster: reply.cluster.clone(),
                };
                let ctx = if effects.is_empty() {
                    ctx
                } else {
                    let changes = p.effects(&at, &effects, &ctx)?;
                    Self::apply(&mut g, idx, changes);
                    self.data_ctx(rt, &g, &never_ready, Some(idx), Some(request.clone()))?
                };
                return Ok(Some(self.reply_body(p, &at, reply, &ctx)?));
            }
            Ok(None)
        })();
        match result {
            Ok(Some(r)) => r,
            Ok(None) => DataReply::text(
                500,
                format!(
                    "lab personality {}: no reply of route[{ri}] ({} {}) holds",
                    p.path.display(),
                    route.method,
                    route.path
                ),
            ),
            Err(e) => DataReply::text(500, e.to_string()),
        }
    }

    fn reply_body(
        &self,
        p: &DataPersonality,
        at: &str,
        reply: &crate::lab::data::model::Reply,
        ctx: &Ctx,
    ) -> Result<DataReply, crate::lab::data::eval::EvalError> {
        let (content_type, body) = match (&reply.json, &reply.body) {
            (Some(j), _) => {
                let v = p.eval(&format!("{at}.json"), j, ctx)?;
                let json = crate::lab::data::eval::to_json(&v);
                ("application/json", json.to_string())
            }
            (None, Some(b)) => (
                "text/plain; charset=utf-8",
                p.render(&format!("{at}.body"), b, ctx)?,
            ),
            (None, None) => ("text/plain; charset=utf-8", String::new()),
        };
        Ok(DataReply {
            status: reply.status,
            content_type: reply
                .content_type
                .clone()
                .unwrap_or_else(|| content_type.to_string()),
            body,
        })
    }
}
