//! Evaluating a personality against the lab's state. The context every expression sees:
//!
//! - `node`: the node answering (or starting, stopping, ticking): the lab's facts about it
//!   ([`super::NODE_FACTS`]: `name`, `index` (1-based), `version` (installed), `state`
//!   (`running`, `starting`, `stopped`, `failed`), `role` (`leader` for the one the lab elects,
//!   else `follower`), `read_only`, `ready`, `store_format`, `reason`, `group`, `address`) and
//!   its `[node]` variables;
//! - `nodes`: every node the same way; `cluster`: the `[cluster]` variables;
//! - `from_version`, `to_version`: the lab's versions; then each `[[derived]]` value by name;
//! - in a route's replies, `request`: `method`, `path`, `query` (a map), `params` (the path's
//!   `{name}` segments), `body` (parsed JSON, or none) and `text`.
//!
//! Functions added to MiniJinja's: `vcmp(a, b)` compares two versions (-1, 0, 1; `1.10 >
//! 1.9`), and the filter `max_version` picks a list's newest version.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use minijinja::value::Value;
use minijinja::{Environment, Expression, UndefinedBehavior};
use serde_json::Value as Json;

use super::model::{Effects, Route};
use super::DataPersonality;
use crate::lab::config::Version;

/// The environment every personality's expressions are compiled in: the same functions for all,
/// and no state of its own, so an expression compiled when a file loads can live as long as the
/// personality (an expression borrows the environment it was compiled in).
static EXPRESSIONS: LazyLock<Environment<'static>> = LazyLock::new(environment);

pub(crate) fn expressions() -> &'static Environment<'static> {
    &EXPRESSIONS
}

/// A personality's expressions and templates, each compiled once, when its file loads: a lab
/// evaluates them on every request, tick and start, and compiling is most of the cost.
pub(crate) struct Compiled {
    /// By source text.
    pub exprs: HashMap<String, Expression<'static, 'static>>,
    /// The templates (reply bodies, reasons), each under its place in the file.
    pub templates: Environment<'static>,
    /// Source text -> its name in `templates`.
    pub template_names: HashMap<String, String>,
    /// Per `[[derived]]`: whether it reads `node` (itself, or through a derived value before
    /// it that does). The others are the same for every node and are made once per state.
    pub derived_per_node: Vec<bool>,
}

impl Default for Compiled {
    fn default() -> Self {
        Compiled {
            exprs: HashMap::new(),
            templates: environment(),
            template_names: HashMap::new(),
            derived_per_node: Vec::new(),
        }
    }
}

pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // A missing attribute (`request.body.persistent` when there is no such key) is undefined,
    // which tests as false and prints empty; unknown names are caught when the file loads.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.add_function("vcmp", |a: String, b: String| -> i64 {
        match compare_versions(&a, &b) {
            std::cmp::Ordering::Less => -1,
            std::cmp::Ordering::Equal => 0,
            std::cmp::Ordering::Greater => 1,
        }
    });
    env.add_filter("max_version", |list: Vec<String>| -> Option<String> {
        list.into_iter().max_by(|a, b| compare_versions(a, b))
    });
    env
}

/// Versions compare numerically part by part; anything that is not a version as text.
fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    match (Version::parse(a), Version::parse(b)) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

/// What an expression failed on, with where in the file it is.
#[derive(Debug, Clone, thiserror::Error)]
#[error("lab personality {file}: {at}: {message}")]
pub struct EvalError {
    pub file: String,
    pub at: String,
    pub message: String,
}

/// The state an evaluation reads.
pub(crate) struct State<'a> {
    /// One object per node: facts and variables.
    pub nodes: Vec<Value>,
    pub cluster: &'a BTreeMap<String, Json>,
    pub from_version: &'a str,
    pub to_version: &'a str,
}

/// What an expression sees, as MiniJinja values: handing a value to an evaluation is cheap,
/// where JSON would be converted whole for each one.
pub(crate) type Ctx = BTreeMap<String, Value>;

impl DataPersonality {
    fn err(&self, at: &str, e: impl std::fmt::Display) -> EvalError {
        EvalError {
            file: self.path.display().to_string(),
            at: at.to_string(),
            message: e.to_string(),
        }
    }

    /// The context for `me` (None: no node, e.g. the cluster's own view), with every derived
    /// value computed.
    pub(crate) fn context(
        &self,
        state: &State<'_>,
        me: Option<usize>,
        request: Option<Json>,
    ) -> Result<Ctx, EvalError> {
        let shared = self.shared_context(state)?;
        let node = me
            .and_then(|i| state.nodes.get(i))
            .cloned()
            .unwrap_or(Value::from(()));
        self.node_context(&shared, node, request)
    }

    /// What every node's context shares: the nodes, the cluster, the versions and the
    /// derived values that do not read `node` — most of them count over every node, so
    /// making them once per state instead of once per node keeps a tick over N nodes O(N),
    /// not O(N²).
    pub(crate) fn shared_context(&self, state: &State<'_>) -> Result<Ctx, EvalError> {
        let mut ctx = Ctx::new();
        ctx.insert("nodes".into(), Value::from(state.nodes.clone()));
        ctx.insert("cluster".into(), Value::from_serialize(state.cluster));
        ctx.insert("from_version".into(), Value::from(state.from_version));
        ctx.insert("to_version".into(), Value::from(state.to_version));
        for (i, d) in self.spec.derived.iter().enumerate() {
            if !self.derived_per_node(i) {
                let v = self.eval(&format!("derived[{i}].value"), &d.value, &ctx)?;
                ctx.insert(d.name.clone(), v);
            }
        }
        Ok(ctx)
    }

    /// `shared` (from [`Self::shared_context`]) for one node (unit: none) and request, with
    /// the derived values that read the node.
    pub(crate) fn node_context(
        &self,
        shared: &Ctx,
        node: Value,
        request: Option<Json>,
    ) -> Result<Ctx, EvalError> {
        let mut ctx = shared.clone();
        ctx.insert("node".into(), node);
        if let Some(r) = request {
            ctx.insert("request".into(), Value::from_serialize(&r));
        }
        for (i, d) in self.spec.derived.iter().enumerate() {
            if self.derived_per_node(i) {
                let v = self.eval(&format!("derived[{i}].value"), &d.value, &ctx)?;
                ctx.insert(d.name.clone(), v);
            }
        }
        Ok(ctx)
    }

    /// Unknown (a personality built without checking): per node, as is always right.
    fn derived_per_node(&self, i: usize) -> bool {
        self.compiled
            .derived_per_node
            .get(i)
            .copied()
            .unwrap_or(true)
    }

    pub(crate) fn eval(&self, at: &str, src: &str, ctx: &Ctx) -> Result<Value, EvalError> {
        let value = match self.compiled.exprs.get(src) {
            Some(expr) => expr.eval(ctx),
            // Every expression of the file was compiled when it loaded; this one came from
            // elsewhere.
            None => expressions()
                .compile_expression(src)
                .and_then(|expr| expr.eval(ctx)),
        };
        value.map_err(|e| self.err(at, e))
    }

    pub(crate) fn holds(&self, at: &str, src: &str, ctx: &Ctx) -> Result<bool, EvalError> {
        self.eval(at, src, ctx).map(|v| v.is_true())
    }

    pub(crate) fn render(&self, at: &str, src: &str, ctx: &Ctx) -> Result<String, EvalError> {
        let templates = &self.compiled.templates;
        let text = match self.compiled.template_names.get(src) {
            Some(name) => templates.get_template(name).and_then(|t| t.render(ctx)),
            None => templates.render_str(src, ctx),
        };
        text.map_err(|e| self.err(at, e))
    }

    /// The new values `effects` give, all computed against `ctx` before any is applied.
    pub(crate) fn effects(
        &self,
        at: &str,
        effects: &Effects,
        ctx: &Ctx,
    ) -> Result<Changes, EvalError> {
        let mut out = Changes::default();
        for (k, src) in &effects.node {
            let v = self.eval(&format!("{at}.node.{k}"), src, ctx)?;
            out.node.push((k.clone(), to_json(&v)));
        }
        for (k, src) in &effects.cluster {
            let v = self.eval(&format!("{at}.cluster.{k}"), src, ctx)?;
            out.cluster.push((k.clone(), to_json(&v)));
        }
        Ok(out)
    }

    /// The route for a request and its path parameters.
    pub(crate) fn route_for(
        &self,
        method: &str,
        path: &str,
    ) -> Option<(usize, &Route, BTreeMap<String, String>)> {
        self.spec.route.iter().enumerate().find_map(|(i, r)| {
            if !r.method.eq_ignore_ascii_case(method) {
                return None;
            }
            match_path(&r.path, path).map(|params| (i, r, params))
        })
    }

    /// The lab's initial variables: the file's `[cluster]` and, per node, `[node]`.
    pub(crate) fn initial_cluster(&self) -> BTreeMap<String, Json> {
        self.spec
            .cluster
            .iter()
            .map(|(k, v)| (k.clone(), toml_json(v)))
            .collect()
    }

    pub(crate) fn initial_node(&self) -> BTreeMap<String, Json> {
        self.spec
            .node
            .iter()
            .map(|(k, v)| (k.clone(), toml_json(v)))
            .collect()
    }
}

/// Variable values to set.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub node: Vec<(String, Json)>,
    pub cluster: Vec<(String, Json)>,
}

fn toml_json(v: &toml::Value) -> Json {
    serde_json::to_value(v).unwrap_or(Json::Null)
}

/// A MiniJinja value as JSON (undefined becomes null).
pub(crate) fn to_json(v: &Value) -> Json {
    if v.is_undefined() {
        return Json::Null;
    }
    serde_json::to_value(v).unwrap_or(Json::Null)
}

/// `{name}` segments match one segment each; everything else must be equal.
fn match_path(pattern: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let pat: Vec<&str> = pattern.trim_end_matches('/').split('/').collect();
    let got: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if pat.len() != got.len() {
        return None;
    }
    let mut params = BTreeMap::new();
    for (p, g) in pat.iter().zip(&got) {
        match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !g.is_empty() => {
                params.insert(name.to_string(), (*g).to_string());
            }
            Some(_) => return None,
            None if p == g => {}
            None => return None,
        }
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_with_parameters() {
        assert!(match_path("/", "/").is_some());
        assert!(match_path("/_cluster/health", "/_cluster/health").is_some());
        assert!(match_path("/_cluster/health", "/_cluster/healthz").is_none());
        let p = match_path("/{index}/_flush", "/logs/_flush").unwrap();
        assert_eq!(p["index"], "logs");
        assert!(match_path("/{index}/_flush", "//_flush").is_none());
    }

    /// A lab evaluates on every request and tick: nothing of the file may be left to compile
    /// then.
    #[test]
    fn every_expression_and_template_is_compiled_when_the_file_loads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("procedures/labs/elasticsearch.toml");
        let p = super::super::load(&path).unwrap_or_else(|d| panic!("{d}"));
        fn effects<'a>(
            node: &'a BTreeMap<String, String>,
            cluster: &'a BTreeMap<String, String>,
        ) -> impl Iterator<Item = &'a String> {
            node.values().chain(cluster.values())
        }
        let s = &p.spec;
        let mut exprs: Vec<&String> = s.derived.iter().map(|d| &d.value).collect();
        exprs.extend(effects(&s.on.stop.node, &s.on.stop.cluster));
        exprs.extend(effects(&s.on.running.node, &s.on.running.cluster));
        for t in &s.transition {
            exprs.push(&t.when);
            exprs.extend(effects(&t.node, &t.cluster));
        }
        exprs.extend(s.refuse_start.iter().map(|r| &r.when));
        let mut templates: Vec<&String> = s.refuse_start.iter().map(|r| &r.reason).collect();
        templates.extend(
            [
                &s.reasons.downgrade,
                &s.reasons.fail_migration,
                &s.reasons.crash,
            ]
            .into_iter()
            .flatten(),
        );
        for reply in s.route.iter().flat_map(|r| &r.reply) {
            exprs.extend(reply.when.iter().chain(&reply.json));
            exprs.extend(effects(&reply.node, &reply.cluster));
            templates.extend(&reply.body);
        }
        assert!(exprs.len() > 30 && templates.len() > 5);
        for e in exprs {
            assert!(p.compiled.exprs.contains_key(e), "not compiled: {e}");
        }
        for t in templates {
            let name = p.compiled.template_names.get(t);
            assert!(
                name.is_some_and(|n| p.compiled.templates.get_template(n).is_ok()),
                "not compiled: {t}"
            );
        }
    }

    /// A tick makes what no node's context differs in once: the derived values that do not
    /// read `node`, itself or through one before it.
    #[test]
    fn derived_values_that_read_no_node_are_made_once_for_all_nodes() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("procedures/labs/elasticsearch.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let text = format!(
            "{text}\n[[derived]]\nname = \"me\"\nvalue = \"node.name\"\n\n\
             [[derived]]\nname = \"loud\"\nvalue = \"me | upper\"\n"
        );
        let p = super::super::parse(&path, &text).unwrap_or_else(|d| panic!("{d}"));
        let per_node = &p.compiled.derived_per_node;
        let n = p.spec.derived.len();
        assert_eq!(per_node.len(), n);
        assert_eq!(per_node[n - 2..], [true, true]);
        assert!(per_node[..n - 2].iter().all(|x| !x), "{per_node:?}");

        let node = |name: &str, state: &str| {
            Value::from_serialize(serde_json::json!({"name": name, "state": state}))
        };
        let cluster = BTreeMap::new();
        let state = State {
            nodes: vec![node("es1", "running"), node("es2", "stopped")],
            cluster: &cluster,
            from_version: "8.19.0",
            to_version: "9.1.0",
        };
        let shared = p.shared_context(&state).unwrap();
        assert!(!shared.contains_key("me") && !shared.contains_key("node"));
        assert_eq!(shared["running"], Value::from(1));
        let ctx = p
            .node_context(&shared, state.nodes[1].clone(), None)
            .unwrap();
        assert_eq!(ctx["loud"].as_str(), Some("ES2"));
        assert_eq!(ctx["total"], Value::from(2));
        // The same as a context made whole for that node.
        assert_eq!(p.context(&state, Some(1), None).unwrap(), ctx);
    }

    #[test]
    fn versions_compare_as_versions() {
        let env = environment();
        let e = env.compile_expression("vcmp('1.10.0', '1.9.3')").unwrap();
        assert_eq!(e.eval(()).unwrap().as_i64(), Some(1));
        let e = env
            .compile_expression("['8.19.0', '9.1.0', '8.2.0'] | max_version")
            .unwrap();
        assert_eq!(e.eval(()).unwrap().as_str(), Some("9.1.0"));
    }
}
