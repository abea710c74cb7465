//! Reading a target file with the same positioned diagnostics as procedures.

use std::collections::BTreeMap;
use std::path::Path;

use crate::procedure::diag::{Diagnostic, Diagnostics};
use crate::procedure::load::{parse_typed_timed, read_source};
use crate::procedure::shell;
use crate::procedure::spans::SpanIndex;
use crate::procedure::strings::{http_specs, visit_action, visit_check};
use crate::procedure::template::{self, Scope, TemplateError};
use crate::procedure::timing::{self, Timings};
use crate::procedure::validate::{GLOBAL_VARS, NODE_VARS};
use crate::target::Target;

pub const LB_DRIVERS: &[&str] = &["lab", "haproxy"];
/// What `${node.url}` may start with.
pub const SCHEMES: &[&str] = &["http", "https"];

/// Read, parse and validate a target file.
/// A node name: a letter or digit, then letters, digits, `.`, `_`, `-`.
fn is_node_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A host: a DNS name or IPv4 address (letters, digits, `.`, `-`, `_`, not starting with `-`),
/// or a bracketed IPv6 address.
fn is_host(h: &str) -> bool {
    if let Some(inner) = h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'));
    }
    is_node_name(h)
}

pub fn load_target(path: &Path) -> Result<Target, Diagnostics> {
    parse_target(path, &read_source(path)?)
}

/// Parse and validate target text (e.g. one the lab just wrote); `path` names it in diagnostics.
pub fn parse_target(path: &Path, source: &str) -> Result<Target, Diagnostics> {
    let (mut target, spans, timings) = parse_typed_timed::<Target>(path, source)?;
    let timing_problems = fill_timings(&mut target, &timings);
    // A node without its own scheme takes the target's.
    let default_scheme = target.scheme.clone();
    for n in &mut target.nodes {
        if n.scheme.is_none() {
            n.scheme = default_scheme.clone();
        }
    }
    record_override_positions(path, &mut target, &spans);
    let mut diags = Diagnostics::default();
    // Expectation problems point inside their string, so they carry their own position.
    let mut expect_diags = Vec::new();
    let mut err = |at: &str, msg: String| diags.push(Diagnostic::new(path, spans.pos(at), msg));
    for (at, msg) in timing_problems {
        err(&at, msg);
    }

    if let Some(sc) = &target.scheme {
        if !SCHEMES.contains(&sc.as_str()) {
            err("scheme", format!("scheme `{sc}` is not `http` or `https`"));
        }
    }
    let mut first: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, n) in target.nodes.iter().enumerate() {
        if let Some(sc) = &n.scheme {
            if !SCHEMES.contains(&sc.as_str()) && spans.has(&format!("nodes[{i}].scheme")) {
                err(
                    &format!("nodes[{i}].scheme"),
                    format!("scheme `{sc}` is not `http` or `https`"),
                );
            }
        }
        if let Some(j) = first.get(n.name.as_str()) {
            let (line, _) = spans.pos(&format!("nodes[{j}].name"));
            err(
                &format!("nodes[{i}].name"),
                format!(
                    "duplicate node name `{}` (first used on line {line})",
                    n.name
                ),
            );
        } else {
            first.insert(&n.name, i);
        }
        // Names and addresses are substituted into commands (`ssh ${node.address}`, scripts):
        // a leading `-` would be read as an option (`-oProxyCommand=...`), whitespace or a
        // shell metacharacter would run something else.
        if !is_node_name(&n.name) {
            err(
                &format!("nodes[{i}].name"),
                format!(
                    "node name `{}` must start with a letter or digit and hold only letters, \
                     digits, `.`, `_` and `-`",
                    n.name.escape_debug()
                ),
            );
        }
        let port_ok = n
            .address
            .rsplit_once(':')
            .is_some_and(|(h, p)| is_host(h) && p.parse::<u16>().is_ok());
        if !port_ok {
            err(
                &format!("nodes[{i}].address"),
                format!(
                    "node address `{}` is not `host:port` (a host name, IPv4 or [IPv6] \
                     address, not starting with `-`, and a port)",
                    n.address.escape_debug()
                ),
            );
        }
    }
    let mut probes: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, p) in target.probes.iter().enumerate() {
        if probes.insert(&p.name, i).is_some() {
            err(
                &format!("probes[{i}].name"),
                format!("duplicate probe name `{}`", p.name),
            );
        }
        let scope = probe_scope(&target, p.per_node);
        let mut bad = Vec::new();
        let mut bad_script = Vec::new();
        let joined = shell::join_remote_check(&p.check);
        let script = shell::check_script(&joined);
        visit_check(&joined, &mut |at, v| {
            if script.as_deref().and_then(|s| s.strip_prefix("check.")) == Some(at) {
                if let Err(e) = shell::placeholders(v) {
                    bad_script.push((format!("probes[{i}].{at}"), e.to_string()));
                }
            }
        });
        visit_check(&p.check, &mut |at, v| {
            if let Err(e) = template::render(v, &scope) {
                bad.push((format!("probes[{i}].{at}"), e));
            }
        });
        if let crate::procedure::model::Check::Http(h) = &p.check {
            for e in crate::procedure::expect::check_http(h) {
                // The probe's check is flattened into its table.
                let at = format!("probes[{i}].{}", e.field);
                expect_diags.push(Diagnostic::new(
                    path,
                    spans.pos_in_string(&at, e.offset),
                    e.message,
                ));
            }
        }
        for (at, e) in bad {
            let hint = match &e {
                TemplateError::Unknown(v) if v.starts_with("node.") && !p.per_node => {
                    " (this probe has `per_node = false`)"
                }
                _ => "",
            };
            err(&at, format!("{e}{hint}"));
        }
        for (at, e) in bad_script {
            err(&at, e);
        }
    }
    // A bound action's expectations (its templates are checked with the procedure using it).
    for (name, action) in &target.actions {
        for (prefix, h) in http_specs(action) {
            for e in crate::procedure::expect::check_http(h) {
                let at = format!("actions.{name}.{prefix}{}", e.field);
                expect_diags.push(Diagnostic::new(
                    path,
                    spans.pos_in_string(&at, e.offset),
                    e.message,
                ));
            }
        }
    }
    // A bound action's shell script (its templates are checked with the procedure using it).
    for (name, action) in &target.actions {
        let action = &shell::join_remote_action(action);
        let Some(script) = shell::action_script(action) else {
            continue;
        };
        let mut bad = Vec::new();
        visit_action(action, &mut |at, v| {
            if at == script {
                if let Err(e) = shell::placeholders(v) {
                    bad.push((format!("actions.{name}.{at}"), e.to_string()));
                }
            }
        });
        for (at, e) in bad {
            err(&at, e);
        }
    }
    if let Some(lb) = &target.lb {
        if !LB_DRIVERS.contains(&lb.driver.as_str()) {
            err(
                "lb.driver",
                format!(
                    "unknown load-balancer driver `{}`; expected one of {}",
                    lb.driver,
                    LB_DRIVERS.join(", ")
                ),
            );
        }
        for node in lb.servers.keys() {
            if !first.contains_key(node.as_str()) {
                err(
                    &format!("lb.servers.{node}"),
                    format!("`lb.servers` maps `{node}`, which is not a node of this target"),
                );
            }
        }
    }
    for (name, s) in &target.secrets {
        match (s.env.trim().is_empty(), &s.file) {
            (true, None) => err(
                &format!("secrets.{name}"),
                format!(
                    "secret `{name}` says neither where it is: `env = \"VARIABLE\"` or `file = \"PATH\"`"
                ),
            ),
            (false, Some(_)) => err(
                &format!("secrets.{name}.file"),
                format!("secret `{name}` names both an environment variable and a file: keep one"),
            ),
            (true, Some(f)) if f.trim().is_empty() => err(
                &format!("secrets.{name}.file"),
                format!("secret `{name}` names an empty file path"),
            ),
            _ => {}
        }
    }
    for (id, o) in &target.overrides.steps {
        for (field, msg) in crate::target_overrides::value_problems(o) {
            let at = target.overrides.pos(id, field).map_or((1, 1), |(_, at)| at);
            diags.push(Diagnostic::new(
                path,
                at,
                format!("[overrides.{id}]: {msg}"),
            ));
        }
    }
    for d in expect_diags {
        diags.push(d);
    }
    if diags.is_empty() {
        Ok(target)
    } else {
        diags.sort();
        Err(diags)
    }
}

/// A probe's or a bound action's timing written as text (`interval_ms = "${probe_every}"`,
/// `timeout_secs = "15m"`), filled in from the target's own `vars` now; each problem as
/// (value path, sentence).
fn fill_timings(target: &mut Target, timings: &Timings) -> Vec<(String, String)> {
    let mut scope = Scope::default();
    for (k, v) in &target.vars {
        scope.set(k.clone(), v.clone());
    }
    let mut problems = Vec::new();
    for (at, text) in &timings.0 {
        let key = timing::key_of(at);
        let value = match template::render(text, &scope) {
            Ok(filled) => timing::parse(key, &filled).map_err(|e| {
                if filled == *text {
                    e
                } else {
                    format!("`{text}` is `{filled}`: {e}")
                }
            }),
            Err(TemplateError::Unknown(v)) => Err(format!(
                "unknown variable `{v}` (a target's timing takes the target's own [vars])"
            )),
            Err(e) => Err(e.to_string()),
        };
        let value = match value {
            Ok(v) => v,
            Err(e) => {
                problems.push((at.clone(), e));
                continue;
            }
        };
        let set = if let Some(rest) = at.strip_prefix("probes[") {
            rest.split_once("].")
                .and_then(|(i, rel)| Some((i.parse::<usize>().ok()?, rel)))
                .and_then(|(i, rel)| {
                    let p = target.probes.get_mut(i)?;
                    Some(timing::set_in_probe(p, rel, value))
                })
                .unwrap_or(false)
        } else if let Some(rest) = at.strip_prefix("actions.") {
            target
                .actions
                .iter_mut()
                .find_map(|(name, a)| {
                    let rel = rest.strip_prefix(name.as_str())?.strip_prefix('.')?;
                    Some(timing::set_in_action(a, rel, value))
                })
                .unwrap_or(false)
        } else {
            false
        };
        if !set {
            problems.push((at.clone(), format!("`{key}` must be a number here")));
        }
    }
    problems
}

/// Keep where each `[overrides.ID]` (and its values) is, for diagnostics that need the
/// procedure (an unknown step id) and so come later.
fn record_override_positions(path: &Path, target: &mut Target, spans: &SpanIndex) {
    let mut at = BTreeMap::new();
    for (id, o) in &target.overrides.steps {
        let table = format!("overrides.{id}");
        at.insert(
            id.clone(),
            spans.key_pos(&table).unwrap_or_else(|| spans.pos(&table)),
        );
        for (field, set) in [
            ("timeout_secs", o.timeout_secs.is_some()),
            ("stable_secs", o.stable_secs.is_some()),
            ("interval_ms", o.interval_ms.is_some()),
        ] {
            if set {
                at.insert(
                    format!("{id}.{field}"),
                    spans.pos(&format!("{table}.{field}")),
                );
            }
        }
    }
    target.overrides.origin = Some(crate::target_overrides::Origin {
        file: path.to_path_buf(),
        at,
    });
}

/// What a probe's templates can see: the target's variables and secrets, and for per-node
/// probes the node's variables (every node has the same names, plus the union of tags).
fn probe_scope(target: &Target, per_node: bool) -> Scope {
    let mut s = Scope::default();
    for k in target.vars.keys() {
        s.set(k.clone(), "");
    }
    for k in GLOBAL_VARS {
        s.set(*k, "");
    }
    s.secrets = Some(target.secrets.keys().cloned().collect());
    if per_node {
        for k in NODE_VARS {
            s.set(format!("node.{k}"), "");
        }
        for n in &target.nodes {
            for k in n.tags.keys() {
                s.set(format!("node.{k}"), "");
            }
        }
    }
    s
}
