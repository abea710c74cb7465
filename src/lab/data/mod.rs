//! A lab personality made of data: a product's API (`procedures/labs/<product>.toml`) as routes
//! whose replies are computed from each node's state, plus what the lab's generic operations
//! (stop, start, install) do to that state, timed transitions, start-up refusals and the
//! product's own words for the lab's failures. A new product needs this file, not Rust.
//!
//! Expressions and reply bodies are [MiniJinja](https://docs.rs/minijinja) (Jinja2's
//! expression language): the file is validated when it is loaded, each problem reported as
//! `file:line:col` like procedures and targets: a syntax error at its character, a name that
//! is not in the context (`node.replicsa`) at its string. [`model`] is the format, [`eval`]
//! computes replies and state changes.

pub mod eval;
pub mod model;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use minijinja::Environment;

pub use model::PersonalitySpec;

use crate::lab::config::Version;
use crate::procedure::diag::{Diagnostic, Diagnostics};
use crate::procedure::load::{parse_typed, read_source};
use crate::procedure::spans::SpanIndex;

/// A loaded, validated personality.
pub struct DataPersonality {
    pub path: PathBuf,
    pub spec: PersonalitySpec,
    pub(crate) compiled: eval::Compiled,
}

impl std::fmt::Debug for DataPersonality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPersonality")
            .field("path", &self.path)
            .field("product", &self.spec.product.name)
            .finish()
    }
}

impl DataPersonality {
    pub fn name(&self) -> &str {
        &self.spec.product.name
    }
}

/// Where `run --lab` and `plan --lab` look for the personality of a product that is not built
/// in: `labs/<product>.toml` next to the procedure.
pub fn default_path(procedure: &Path, product: &str) -> PathBuf {
    procedure
        .parent()
        .unwrap_or(Path::new("."))
        .join("labs")
        .join(format!("{product}.toml"))
}

/// Reads and validates a personality file; every problem at once, each at its position.
pub fn load(path: &Path) -> Result<DataPersonality, Diagnostics> {
    let source = read_source(path)?;
    parse(path, &source)
}

/// [`load`] for text that did not come from disk (`path` names it in diagnostics).
pub fn parse(path: &Path, source: &str) -> Result<DataPersonality, Diagnostics> {
    let (spec, spans) = parse_typed::<PersonalitySpec>(path, source)?;
    let (diags, compiled) = validate(path, &spec, &spans);
    if !diags.is_empty() {
        return Err(diags);
    }
    Ok(DataPersonality {
        path: path.to_path_buf(),
        spec,
        compiled,
    })
}

/// Names every expression may use besides the derived values: see [`eval`] for what each holds.
const TOP: &[&str] = &["node", "nodes", "cluster", "from_version", "to_version"];
/// What the lab knows of every node; the personality's `[node]` variables come on top.
pub const NODE_FACTS: &[&str] = &[
    "name",
    "index",
    "version",
    "state",
    "role",
    "read_only",
    "ready",
    "store_format",
    "reason",
    "group",
    "address",
];
const REQUEST_FIELDS: &[&str] = &["method", "path", "query", "body", "text", "params"];

struct Checker<'a> {
    path: &'a Path,
    spans: &'a SpanIndex,
    /// What checking compiles, kept for the lab to evaluate.
    compiled: eval::Compiled,
    node_vars: BTreeSet<String>,
    cluster_vars: BTreeSet<String>,
    diags: Diagnostics,
}

impl Checker<'_> {
    fn error(&mut self, at: &str, offset: Option<usize>, msg: String) {
        let pos = self.spans.pos_in_string(at, offset);
        self.diags.push(Diagnostic::new(self.path, pos, msg));
    }

    /// An expression at `at` compiles and uses only names that exist.
    fn expr(&mut self, at: &str, src: &str, names: &BTreeSet<String>, request: bool) {
        match eval::expressions().compile_expression_owned(src.to_string()) {
            Err(e) => {
                let offset = e.range().map(|r| r.start);
                self.error(at, offset, format!("{at}: {}", plain(&e)));
            }
            Ok(expr) => {
                let vars = expr.undeclared_variables(true);
                self.names(at, vars, names, request);
                self.compiled.exprs.insert(src.to_string(), expr);
            }
        }
    }

    /// A template (a reply body, a reason) at `at` compiles and uses only names that exist.
    fn template(&mut self, at: &str, src: &str, names: &BTreeSet<String>, request: bool) {
        let templates = &mut self.compiled.templates;
        let added = templates
            .add_template_owned(at.to_string(), src.to_string())
            .and_then(|()| templates.get_template(at))
            .map(|t| t.undeclared_variables(true));
        match added {
            Err(e) => {
                let offset = e.range().map(|r| r.start);
                self.error(at, offset, format!("{at}: {}", plain(&e)));
            }
            Ok(vars) => {
                self.names(at, vars, names, request);
                self.compiled
                    .template_names
                    .entry(src.to_string())
                    .or_insert_with(|| at.to_string());
            }
        }
    }

    fn names(
        &mut self,
        at: &str,
        vars: std::collections::HashSet<String>,
        names: &BTreeSet<String>,
        request: bool,
    ) {
        let mut vars: Vec<String> = vars.into_iter().collect();
        vars.sort();
        for v in vars {
            let mut parts = v.splitn(3, '.');
            let head = parts.next().unwrap_or_default();
            let field = parts.next();
            let known = match (head, field) {
                ("request", _) if !request => false,
                ("request", Some(f)) => REQUEST_FIELDS.contains(&f),
                ("node", Some(f)) => NODE_FACTS.contains(&f) || self.node_vars.contains(f),
                ("cluster", Some(f)) => self.cluster_vars.contains(f),
                (h, _) => {
                    h == "request"
                        || TOP.contains(&h)
                        || names.contains(h)
                        || is_global(eval::expressions(), h)
                }
            };
            if !known {
                let hint = match head {
                    "node" => format!(
                        "a node has {} and the [node] variables ({})",
                        NODE_FACTS.join(", "),
                        join(&self.node_vars)
                    ),
                    "cluster" => {
                        format!("the [cluster] variables are {}", join(&self.cluster_vars))
                    }
                    "request" if !request => "only a route's replies have a request".to_string(),
                    "request" => format!("a request has {}", REQUEST_FIELDS.join(", ")),
                    _ => format!(
                        "known here: {}{}",
                        TOP.join(", "),
                        if names.is_empty() {
                            String::new()
                        } else {
                            format!(", {}", join(names))
                        }
                    ),
                };
                self.error(at, None, format!("{at}: unknown name `{v}` ({hint})"));
            }
        }
    }

    fn effects(&mut self, at: &str, e: &model::Effects, names: &BTreeSet<String>, request: bool) {
        for (scope, sets) in [("node", &e.node), ("cluster", &e.cluster)] {
            for (k, src) in sets {
                let p = format!("{at}.{scope}.{k}");
                let declared = match scope {
                    "node" => &self.node_vars,
                    _ => &self.cluster_vars,
                };
                if !declared.contains(k) {
                    let known = join(declared);
                    self.error(
                        &p,
                        None,
                        format!("{p}: `{k}` is not a [{scope}] variable (declare it under [{scope}]; known: {known})"),
                    );
                }
                self.expr(&p, src, names, request);
            }
        }
    }
}

fn join(s: &BTreeSet<String>) -> String {
    if s.is_empty() {
        "none".into()
    } else {
        s.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

fn is_global(env: &Environment<'static>, name: &str) -> bool {
    env.globals().any(|(k, _)| k == name)
}

/// MiniJinja's message without its position (we give ours).
fn plain(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// Every problem of the file, and what checking it compiled.
fn validate(
    path: &Path,
    spec: &PersonalitySpec,
    spans: &SpanIndex,
) -> (Diagnostics, eval::Compiled) {
    let mut c = Checker {
        path,
        spans,
        compiled: eval::Compiled::default(),
        node_vars: spec.node.keys().cloned().collect(),
        cluster_vars: spec.cluster.keys().cloned().collect(),
        diags: Diagnostics::default(),
    };
    let p = &spec.product;
    let name_ok = !p.name.is_empty()
        && p.name
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_');
    if !name_ok {
        c.error(
            "product.name",
            None,
            format!(
                "product.name {:?} must be lowercase letters, digits, '-' or '_' (it names \
                 procedures/labs/<product>.toml and the procedure's `product`)",
                p.name
            ),
        );
    }
    for (key, v) in [
        ("product.version", &p.version),
        ("product.to_version", &p.to_version),
    ] {
        if let Err(e) = Version::parse(v) {
            c.error(key, None, format!("{key}: {e}"));
        }
    }
    if !p.readiness.starts_with('/') {
        c.error(
            "product.readiness",
            None,
            format!(
                "product.readiness {:?} must be a path starting with /",
                p.readiness
            ),
        );
    }
    if !(100..=599).contains(&p.down_status) {
        c.error(
            "product.down_status",
            None,
            format!(
                "product.down_status {} is not an HTTP status",
                p.down_status
            ),
        );
    }
    for k in spec.node.keys().chain(spec.cluster.keys()) {
        if NODE_FACTS.contains(&k.as_str()) && spec.node.contains_key(k) {
            c.error(
                &format!("node.{k}"),
                None,
                format!("node.{k}: `{k}` is a fact the lab keeps for every node; name the variable otherwise"),
            );
        }
    }
    // Derived values: each may use the ones before it.
    let mut names = BTreeSet::new();
    for (i, d) in spec.derived.iter().enumerate() {
        let at = format!("derived[{i}].value");
        c.expr(&at, &d.value, &names, false);
        // Whether it reads the node, itself or through a derived value that does.
        let per_node = c.compiled.exprs.get(&d.value).is_none_or(|e| {
            e.undeclared_variables(false).iter().any(|v| {
                v == "node"
                    || spec.derived[..i]
                        .iter()
                        .zip(&c.compiled.derived_per_node)
                        .any(|(earlier, per)| *per && &earlier.name == v)
            })
        });
        c.compiled.derived_per_node.push(per_node);
        if TOP.contains(&d.name.as_str()) || d.name == "request" || names.contains(&d.name) {
            c.error(
                &format!("derived[{i}].name"),
                None,
                format!("derived[{i}].name: `{}` is already a name here", d.name),
            );
        }
        names.insert(d.name.clone());
    }
    c.effects("on.stop", &spec.on.stop, &names, false);
    c.effects("on.running", &spec.on.running, &names, false);
    for (i, t) in spec.transition.iter().enumerate() {
        c.expr(&format!("transition[{i}].when"), &t.when, &names, false);
        if t.node.is_empty() && t.cluster.is_empty() {
            c.error(
                &format!("transition[{i}]"),
                None,
                format!("transition[{i}] changes nothing (give node = {{ ... }} or cluster = {{ ... }})"),
            );
        }
        let effects = model::Effects {
            node: t.node.clone(),
            cluster: t.cluster.clone(),
        };
        c.effects(&format!("transition[{i}]"), &effects, &names, false);
    }
    for (i, r) in spec.refuse_start.iter().enumerate() {
        c.expr(&format!("refuse_start[{i}].when"), &r.when, &names, false);
        c.template(
            &format!("refuse_start[{i}].reason"),
            &r.reason,
            &names,
            false,
        );
    }
    for (key, src) in [
        ("reasons.downgrade", &spec.reasons.downgrade),
        ("reasons.fail_migration", &spec.reasons.fail_migration),
        ("reasons.crash", &spec.reasons.crash),
    ] {
        if let Some(src) = src {
            let mut with = names.clone();
            with.extend(["from_format".to_string(), "to_format".to_string()]);
            c.template(key, src, &with, false);
        }
    }
    let mut seen = BTreeSet::new();
    for (i, r) in spec.route.iter().enumerate() {
        let at = format!("route[{i}]");
        let method = r.method.to_ascii_uppercase();
        if !["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH"].contains(&method.as_str()) {
            c.error(
                &format!("{at}.method"),
                None,
                format!(
                    "{at}.method {:?} is not GET, PUT, POST, DELETE, HEAD or PATCH",
                    r.method
                ),
            );
        }
        if !r.path.starts_with('/') {
            c.error(
                &format!("{at}.path"),
                None,
                format!("{at}.path {:?} must start with /", r.path),
            );
        }
        if r.path.starts_with("/_lab/") || r.path.starts_with("/kv/") {
            c.error(
                &format!("{at}.path"),
                None,
                format!(
                    "{at}.path {:?}: /_lab/ and /kv/ are the lab's own routes",
                    r.path
                ),
            );
        }
        if !seen.insert((method.clone(), r.path.clone())) {
            c.error(
                &format!("{at}.path"),
                None,
                format!("{at}: {method} {} is declared twice", r.path),
            );
        }
        if r.reply.is_empty() {
            c.error(&at, None, format!("{at} has no [[route.reply]]"));
        }
        for (j, reply) in r.reply.iter().enumerate() {
            let at = format!("{at}.reply[{j}]");
            if let Some(w) = &reply.when {
                c.expr(&format!("{at}.when"), w, &names, true);
            }
            if !(100..=599).contains(&reply.status) {
                c.error(
                    &format!("{at}.status"),
                    None,
                    format!("{at}.status {} is not an HTTP status", reply.status),
                );
            }
            match (&reply.json, &reply.body) {
                (Some(_), Some(_)) => c.error(
                    &format!("{at}.body"),
                    None,
                    format!("{at}: give json (an expression) or body (a template), not both"),
                ),
                (Some(j), None) => c.expr(&format!("{at}.json"), j, &names, true),
                (None, Some(b)) => c.template(&format!("{at}.body"), b, &names, true),
                (None, None) => {}
            }
            let effects = model::Effects {
                node: reply.node.clone(),
                cluster: reply.cluster.clone(),
            };
            c.effects(&at, &effects, &names, true);
        }
    }
    for (k, v) in &spec.target.vars {
        if v.trim().is_empty() {
            c.error(
                &format!("target.vars.{k}"),
                None,
                format!("target.vars.{k} is empty"),
            );
        }
    }
    c.diags.sort();
    (c.diags, c.compiled)
}
