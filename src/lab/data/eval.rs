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

use std::collections::BTreeMap;

use minijinja::value::Value;
use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value as Json;

use super::model::{Effects, Route};
use super::DataPersonality;
use crate::lab::config::Version;

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
    /// One JSON object per node: facts and variables.
    pub nodes: Vec<Json>,
    pub cluster: &'a BTreeMap<String, Json>,
    pub from_version: &'a str,
    pub to_version: &'a str,
}

pub(crate) type Ctx = BTreeMap<String, Json>;

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
        let mut ctx = Ctx::new();
        let node = me
            .and_then(|i| state.nodes.get(i))
            .cloned()
            .unwrap_or(Json::Null);
        ctx.insert("node".into(), node);
        ctx.insert("nodes".into(), Json::Array(state.nodes.clone()));
        ctx.insert(
            "cluster".into(),
            Json::Object(state.cluster.clone().into_iter().collect()),
        );
        ctx.insert("from_version".into(), Json::from(state.from_version));
        ctx.insert("to_version".into(), Json::from(state.to_version));
        if let Some(r) = request {
            ctx.insert("request".into(), r);
        }
        for (i, d) in self.spec.derived.iter().enumerate() {
            let v = self.eval(&format!("derived[{i}].value"), &d.value, &ctx)?;
            ctx.insert(d.name.clone(), to_json(&v));
        }
        Ok(ctx)
    }

    pub(crate) fn eval(&self, at: &str, src: &str, ctx: &Ctx) -> Result<Value, EvalError> {
        let expr = self
            .env
            .compile_expression(src)
            .map_err(|e| self.err(at, e))?;
        expr.eval(ctx).map_err(|e| self.err(at, e))
    }

    pub(crate) fn holds(&self, at: &str, src: &str, ctx: &Ctx) -> Result<bool, EvalError> {
        self.eval(at, src, ctx).map(|v| v.is_true())
    }

    pub(crate) fn render(&self, at: &str, src: &str, ctx: &Ctx) -> Result<String, EvalError> {
        self.env.render_str(src, ctx).map_err(|e| self.err(at, e))
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
