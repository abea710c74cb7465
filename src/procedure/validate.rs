//! Semantic checks of a parsed procedure (optionally against a target), collecting every problem
//! with the position of the offending value.

use std::collections::{BTreeMap, BTreeSet};

use super::catalog::Catalog;
use super::diag::{Diagnostic, Diagnostics};
use super::load::LoadedProcedure;
use super::model::{Action, ConfirmKind, StepSpec, VerifySpec, WaitSpec};
use super::strings::{http_specs, visit_action};
use super::template::{self, Scope, TemplateError};
use super::version::{Constraint, Version};
use super::when::Expr;
use crate::target::Target;

/// Variables of a node-loop item (plus `node.<tag>`).
pub const NODE_VARS: &[&str] = &["name", "address", "host", "port", "url", "role", "index"];
/// Variables of a hop-loop item (plus the path strategy's flags).
pub const HOP_VARS: &[&str] = &["version", "from", "minor", "index"];
/// Variables every template sees (plus procedure and target `vars`).
pub const GLOBAL_VARS: &[&str] = &[
    "from_version",
    "to_version",
    "current_version",
    "procedure",
    "target",
    "nodes.count",
    "nodes.names",
];
pub const HTTP_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
pub const STRATEGIES: &[&str] = &["direct", "minor-steps"];
/// The longest timeout `check` accepts (7 days): anything longer is a typo or an overflow
/// waiting to happen, not a plan.
pub const MAX_TIMEOUT_SECS: u64 = 7 * 86_400;

/// Every problem in `lp`; with a target, also what the target must provide.
pub fn validate(lp: &LoadedProcedure, target: Option<&Target>) -> Diagnostics {
    let mut v = Validator {
        lp,
        target,
        diags: Diagnostics::default(),
        hop_flags: None,
        catalog_charts: false,
        switchable: false,
    };
    v.run();
    v.diags.sort();
    v.diags
}

struct Validator<'a> {
    lp: &'a LoadedProcedure,
    target: Option<&'a Target>,
    diags: Diagnostics,
    /// Flag names the path strategy attaches to hops; `None` when unknown (catalog unreadable).
    hop_flags: Option<Vec<String>>,
    /// The catalog maps charts to versions: the plan fills in `chart_version`.
    catalog_charts: bool,
    /// The step being checked has a `when`: facts only the plan knows (versions, hops) may
    /// switch it off, and a step switched off needs no binding — the plan refuses a `call` the
    /// target does not bind only where the step runs.
    switchable: bool,
}

/// What loop kind a `for_each` chain contains.
#[derive(Default)]
struct LoopCtx {
    nodes: bool,
    hops: bool,
    /// A list loop (`over = "list"`): `${item}`.
    items: bool,
    /// The chain could not be resolved; accept loop variables rather than pile up errors.
    unknown: bool,
}

impl Validator<'_> {
    fn err(&mut self, path: &str, message: impl Into<String>) {
        self.diags
            .push(Diagnostic::new(&self.lp.path, self.lp.pos(path), message));
    }

    fn run(&mut self) {
        let p = &self.lp.procedure;
        if let Some(from) = &p.from {
            if let Err(e) = Constraint::parse(from) {
                self.err("from", e.to_string());
            }
        }
        if let Some(to) = &p.to {
            if let Err(e) = Version::parse(to) {
                self.err("to", e.to_string());
            }
        }
        if let (Some(t), Some(tp)) = (self.target, self.target.and_then(|t| t.product.as_ref())) {
            if *tp != p.product {
                let msg = format!(
                    "this procedure is for `{}` but target `{}` is a `{tp}` cluster",
                    p.product, t.name
                );
                self.err("product", msg);
            }
        }
        self.check_path();
        self.check_loops();
        if p.steps.is_empty() {
            self.err("steps", "the procedure has no steps");
        }
        let mut first_at: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, step) in p.steps.iter().enumerate() {
            if let Some(first) = first_at.get(step.id.as_str()) {
                let (line, _) = self.lp.pos(&format!("steps[{first}].id"));
                let msg = format!(
                    "duplicate step id `{}` (first used on line {line})",
                    step.id
                );
                self.err(&format!("steps[{i}].id"), msg);
            } else {
                first_at.insert(&step.id, i);
            }
            self.check_step(i, step);
        }
        self.check_rollback();
        self.check_guards();
        self.check_timing_places();
        self.check_overrides();
        self.check_target_vars();
    }

    /// `[[guards]]`: named once, a limit that means something, a selection of real nodes.
    fn check_guards(&mut self) {
        let p = &self.lp.procedure;
        let mut names = BTreeSet::new();
        for (i, g) in p.guards.iter().enumerate() {
            let at = |k: &str| format!("guards[{i}].{k}");
            if g.name.trim().is_empty() {
                self.err(
                    &at("name"),
                    "a guard needs a name (the override phrase uses it)",
                );
            } else if !names.insert(g.name.as_str()) {
                self.err(&at("name"), format!("duplicate guard name `{}`", g.name));
            } else if g.name.chars().any(char::is_whitespace) {
                self.err(
                    &at("name"),
                    format!("guard name `{}` has spaces; use `-`", g.name),
                );
            }
            if g.why.trim().is_empty() {
                self.err(
                    &at("why"),
                    "say why the guard exists (the refusal quotes it)",
                );
            }
            match (&g.max_out, g.min_in) {
                (None, None) => self.err(
                    &format!("guards[{i}]"),
                    format!(
                        "guard `{}` sets no limit: add `max_out = 1` (or a share, `\"50%\"`) or \
                         `min_in = 1`",
                        g.name
                    ),
                ),
                (Some(super::model::GuardLimit::Share(text)), _) => {
                    if let Err(e) = crate::plan::expand::parse_share(text) {
                        self.err(&at("max_out"), e);
                    }
                }
                _ => {}
            }
            let Some(sel) = g.nodes.as_deref() else {
                continue;
            };
            if let Some(t) = self.target {
                if let Some((k, _)) = sel.split_once('=') {
                    let k = k.trim();
                    if !target_has_key(t, k) {
                        self.err(
                            &at("nodes"),
                            format!("no node of target `{}` has `{k}`", t.name),
                        );
                        continue;
                    }
                }
                if crate::engine::action::select_nodes(t, sel).is_empty() {
                    let all: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
                    self.err(
                        &at("nodes"),
                        format!(
                            "guard `{}`: `nodes = \"{sel}\"` selects no node of target `{}` (it has: {})",
                            g.name,
                            t.name,
                            list_or_none(&all)
                        ),
                    );
                }
            }
        }
    }

    /// A timing written as text is filled in where the plan has it: a step's action or undo,
    /// or a rollback check. Anywhere else its text would be lost.
    fn check_timing_places(&mut self) {
        let misplaced: Vec<String> = self
            .lp
            .timings
            .0
            .keys()
            .filter(|p| {
                let in_step =
                    p.starts_with("steps[") && (p.contains("].action.") || p.contains("].undo."));
                !in_step && !p.starts_with("rollback.verify[")
            })
            .cloned()
            .collect();
        for p in misplaced {
            let key = super::timing::key_of(&p).to_string();
            self.err(&p, format!("`{key}` must be a number here"));
        }
    }

    /// `[target_vars]`: what the target must define; with a target, that it does.
    fn check_target_vars(&mut self) {
        let p = &self.lp.procedure;
        for (name, what) in &p.target_vars {
            let at = format!("target_vars.{name}");
            if p.vars.contains_key(name) {
                self.err(
                    &at,
                    format!("`{name}` has a default in [vars]; a target variable has none (remove one of the two)"),
                );
                continue;
            }
            if let Some(t) = self.target {
                if !t.vars.contains_key(name) {
                    let msg = format!(
                        "target `{}` does not define `{name}` ({what}); add it to the target's [vars]",
                        t.name
                    );
                    self.err(&at, msg);
                }
            }
        }
    }

    /// The target's `[overrides.<step id>]`: each names a step of this procedure and fits its
    /// action. Reported at the override's place in the target file.
    fn check_overrides(&mut self) {
        let Some(t) = self.target else { return };
        let p = &self.lp.procedure;
        for (id, o) in &t.overrides.steps {
            let mut problems = Vec::new();
            match p.steps.iter().find(|s| s.id == *id) {
                None => {
                    let ids: Vec<&str> = p.steps.iter().map(|s| s.id.as_str()).collect();
                    problems.push((
                        None,
                        format!(
                            "[overrides.{id}]: procedure `{}` has no step `{id}` (its steps: {})",
                            p.name,
                            list_or_none(&ids)
                        ),
                    ));
                }
                Some(step) => {
                    // A `call` is judged by what the target binds it to.
                    let action = match &step.action {
                        Action::Call { name, .. } => t.actions.get(name),
                        other => Some(other),
                    };
                    if let Some(a) = action {
                        for (f, msg) in crate::target_overrides::fit_problems(o, a) {
                            problems.push((f, format!("[overrides.{id}]: {msg}")));
                        }
                    }
                }
            }
            for (field, msg) in problems {
                let d = match t.overrides.pos(id, field) {
                    Some((file, at)) => Diagnostic::new(&file, at, msg),
                    None => Diagnostic::new(
                        &self.lp.path,
                        (1, 1),
                        format!("target `{}`: {msg}", t.name),
                    ),
                };
                self.diags.push(d);
            }
        }
    }

    /// `[rollback]`: every step it names exists and has what the rollback uses of it.
    fn check_rollback(&mut self) {
        let p = &self.lp.procedure;
        for (j, id) in p.rollback.undo_first.iter().enumerate() {
            let at = format!("rollback.undo_first[{j}]");
            match p.steps.iter().find(|s| s.id == *id) {
                None => self.err(&at, format!("`undo_first` names an unknown step id `{id}`")),
                Some(s) if s.undo.is_none() => self.err(
                    &at,
                    format!("step `{id}` has no `undo`: there is nothing to run first"),
                ),
                Some(_) => {}
            }
        }
        for (i, v) in p.rollback.verify.iter().enumerate() {
            self.check_verify(i, v);
        }
    }

    /// One `[[rollback.verify]]` check: one kind of check, a label, and what a gate needs to
    /// run (the same limits as a `wait` step, which it runs like).
    fn check_verify(&mut self, i: usize, v: &VerifySpec) {
        let at = format!("rollback.verify[{i}]");
        let kinds: Vec<&str> = [
            (v.probe.is_some(), "probe"),
            (v.check.is_some(), "check"),
            (v.call.is_some(), "call"),
            (v.lb.is_some(), "lb"),
        ]
        .into_iter()
        .filter_map(|(on, k)| on.then_some(k))
        .collect();
        match kinds.as_slice() {
            [] => self.err(
                &at,
                "a verify check needs one of `probe` (a target probe), `check` (inline), `call` \
                 (a target action that reads, e.g. `check-version`) or `lb = \"ready\"` (the \
                 balancer's view)",
            ),
            [_] => {}
            [_, second, ..] => self.err(
                &format!("{at}.{second}"),
                format!(
                    "a verify check is one kind of check; this one has {}",
                    kinds
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            ),
        }
        if v.what.trim().is_empty() {
            self.err(
                &format!("{at}.what"),
                "`what` is empty: say what it checks (the outcome quotes it, e.g. `healthy`)",
            );
        }
        if !v.args.is_empty() && v.call.is_none() {
            self.err(&format!("{at}.args"), "`args` only go with `call`");
        }
        if let Some(r) = &v.reason {
            if !r.starts_with('/') {
                self.err(
                    &format!("{at}.reason"),
                    format!(
                        "`reason = \"{r}\"` is not a JSON pointer: it starts with `/`, e.g. \
                         `/reason` or `/errors/0/message`"
                    ),
                );
            }
        }
        let ctx = LoopCtx::default();
        let scope = self.scope_for(&ctx);
        self.check_template(&format!("{at}.what"), &v.what, &scope, &ctx);
        // It runs like a `wait` gate: the same checks of its probe or inline check, timings
        // and node selector.
        let gate = Action::Wait(WaitSpec {
            probe: v.probe.clone(),
            check: v.check.clone(),
            nodes: v.nodes.clone(),
            stable_secs: v.stable_secs,
            timeout_secs: v.timeout_secs,
            interval_ms: v.interval_ms,
        });
        if v.probe.is_some() || v.check.is_some() {
            self.check_action(&at, &gate, &scope, &ctx);
        } else {
            self.check_runnable(&at, &gate);
        }
        self.check_timings(&at, &scope.with_late_nodes(), &ctx);
        if let (Some(name), Some(t)) = (&v.call, self.target) {
            let path = format!("{at}.call");
            match t.actions.get(name) {
                None => {
                    let names: Vec<&str> = t.actions.keys().map(String::as_str).collect();
                    let msg = format!(
                        "target `{}` does not bind action `{name}` (it binds: {}); add \
                         [actions.{name}] to the target",
                        t.name,
                        list_or_none(&names)
                    );
                    self.err(&path, msg);
                }
                Some(bound @ (Action::Http(_) | Action::Run { .. })) => {
                    let mut s = scope.with_late_nodes();
                    for k in v.args.keys() {
                        s.set(format!("arg.{k}"), "");
                    }
                    let mut strings = Vec::new();
                    visit_action(bound, &mut |p, val| {
                        strings.push((p.to_string(), val.to_string()))
                    });
                    for (p, val) in strings {
                        if let Err(e) = template::render(&val, &s) {
                            let msg = format!("in target binding `{name}` ({p}): {e}");
                            self.err(&path, msg);
                        }
                    }
                }
                Some(_) => self.err(
                    &path,
                    format!(
                        "target binding `{name}` is not an `http` or `run` action: a \
                         verification check must read something"
                    ),
                ),
            }
        }
        for (k, val) in &v.args {
            self.check_template(&format!("{at}.args.{k}"), val, &scope, &ctx);
        }
        if let (Some(_), Some(t)) = (v.lb, self.target) {
            if t.lb.is_none() {
                let msg = format!(
                    "target `{}` has no load balancer ([lb]): nothing can say the node is in it",
                    t.name
                );
                self.err(&format!("{at}.lb"), msg);
            }
        }
    }

    fn check_path(&mut self) {
        let p = &self.lp.procedure;
        let Some(path) = &p.path else {
            self.hop_flags = Some(Vec::new());
            return;
        };
        match path.strategy.as_str() {
            "direct" if path.catalog.is_none() => self.hop_flags = Some(Vec::new()),
            "direct" | "minor-steps" => {
                let name = path.catalog.as_deref().unwrap_or(&p.product);
                let file = Catalog::path_in(&self.lp.default_catalog_dir(), name);
                match Catalog::load(&file) {
                    Ok(c) => {
                        self.hop_flags = Some(c.flag_names());
                        self.catalog_charts = !c.charts.is_empty();
                    }
                    Err(e) => {
                        let at = if path.catalog.is_some() {
                            "path.catalog"
                        } else {
                            "path.strategy"
                        };
                        self.err(at, e.to_string());
                    }
                }
            }
            other => {
                let msg = format!(
                    "unknown path strategy `{other}`; expected one of {}",
                    STRATEGIES.join(", ")
                );
                self.err("path.strategy", msg);
            }
        }
    }

    fn check_loops(&mut self) {
        let loops = &self.lp.procedure.loops;
        for (name, l) in loops {
            let at = |k: &str| format!("loops.{name}.{k}");
            if !["nodes", "hops", "list"].contains(&l.over.as_str()) {
                let msg = format!(
                    "loop `{name}` is over `{}`; expected `nodes`, `hops` or `list`",
                    l.over
                );
                self.err(&at("over"), msg);
            }
            match (l.over.as_str(), &l.items) {
                ("list", None) => self.err(
                    &at("over"),
                    format!("loop `{name}` is over a list: name its variable, e.g. `items = \"plugins\"`"),
                ),
                ("list", Some(var)) => {
                    let p = &self.lp.procedure;
                    let known = p.vars.contains_key(var)
                        || p.target_vars.contains_key(var)
                        || self.target.is_some_and(|t| t.vars.contains_key(var));
                    if !known {
                        let msg = format!(
                            "loop `{name}` is over the items of `{var}`, which is not defined ([vars], [target_vars] or the target's vars)"
                        );
                        self.err(&at("items"), msg);
                    }
                    if l.select.is_some() || !l.order.is_empty() {
                        self.err(
                            &at("over"),
                            format!("loop `{name}` is over a list: `select` and `order` only apply to node loops"),
                        );
                    }
                }
                (_, Some(_)) => self.err(
                    &at("items"),
                    format!("`items` is for a loop over a list; loop `{name}` is over `{}`", l.over),
                ),
                _ => {}
            }
            if l.over == "hops" && (l.select.is_some() || !l.order.is_empty()) {
                let msg = format!(
                    "loop `{name}` is over hops: `select` and `order` only apply to node loops"
                );
                self.err(&at("over"), msg);
            }
            if let Some(sel) = &l.select {
                if !is_matcher(sel) {
                    let msg = format!(
                        "`select = \"{sel}\"` is not a `key=value` matcher (e.g. `role=data`)"
                    );
                    self.err(&at("select"), msg);
                }
            }
            for (j, m) in l.order.iter().enumerate() {
                if m != "*" && !is_matcher(m) {
                    let msg = format!("order matcher `{m}` is neither `*` nor `key=value`");
                    self.err(&format!("loops.{name}.order[{j}]"), msg);
                }
            }
            if let (Some(t), "nodes") = (self.target, l.over.as_str()) {
                // A matcher on a key no node has is a typo that would silently match nothing.
                let keyed = l.select.iter().map(|m| (at("select"), m)).chain(
                    l.order
                        .iter()
                        .enumerate()
                        .map(|(j, m)| (format!("loops.{name}.order[{j}]"), m)),
                );
                for (path, m) in keyed {
                    let Some((k, _)) = m.split_once('=') else {
                        continue;
                    };
                    let k = k.trim();
                    if !target_has_key(t, k) {
                        let mut keys: BTreeSet<&str> = BTreeSet::from(["name", "address", "role"]);
                        keys.extend(
                            t.nodes
                                .iter()
                                .flat_map(|n| n.tags.keys().map(String::as_str)),
                        );
                        let keys: Vec<&str> = keys.into_iter().collect();
                        let msg = format!(
                            "no node of target `{}` has `{k}` (its nodes have: {})",
                            t.name,
                            keys.join(", ")
                        );
                        self.err(&path, msg);
                    }
                }
                if crate::plan::expand::loop_nodes(t, l).is_empty() {
                    let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
                    let msg = format!(
                        "loop `{name}` selects no node of target `{}` (it has: {}): its steps would never run",
                        t.name,
                        list_or_none(&names)
                    );
                    let key = if l.select.is_some() { "select" } else { "over" };
                    self.err(&at(key), msg);
                }
            }
            if let Some(w) = &l.within {
                if w != "nodes" && !loops.contains_key(w) {
                    self.err(
                        &at("within"),
                        format!("loop `{name}` is within an undefined loop `{w}`"),
                    );
                } else if let Some(cycle) = self.cycle_from(name) {
                    self.err(
                        &at("within"),
                        format!("loops are within each other in a cycle: {cycle}"),
                    );
                }
            }
        }
    }

    /// `a -> b -> a` when following `within` from `name` comes back to it.
    fn cycle_from(&self, name: &str) -> Option<String> {
        let loops = &self.lp.procedure.loops;
        let mut seen = vec![name.to_string()];
        let mut cur = name;
        while let Some(next) = loops.get(cur).and_then(|l| l.within.as_deref()) {
            if next == name {
                seen.push(next.to_string());
                return Some(seen.join(" -> "));
            }
            if seen.iter().any(|s| s == next) {
                return None; // a cycle further up, reported on its own loops
            }
            seen.push(next.to_string());
            cur = next;
        }
        None
    }

    /// The loop kinds a step sees through its `for_each` and the `within` chain.
    fn loop_ctx(&self, for_each: Option<&str>) -> LoopCtx {
        let mut ctx = LoopCtx::default();
        let loops = &self.lp.procedure.loops;
        let mut cur = for_each;
        let mut depth = 0;
        while let Some(name) = cur {
            depth += 1;
            if depth > loops.len() + 1 {
                ctx.unknown = true;
                break;
            }
            match loops.get(name) {
                Some(l) => {
                    match l.over.as_str() {
                        "nodes" => ctx.nodes = true,
                        "hops" => ctx.hops = true,
                        "list" => ctx.items = true,
                        _ => ctx.unknown = true,
                    }
                    cur = l.within.as_deref();
                }
                None if name == "nodes" => {
                    ctx.nodes = true;
                    cur = None;
                }
                None => {
                    ctx.unknown = true;
                    cur = None;
                }
            }
        }
        ctx
    }

    fn scope_for(&self, ctx: &LoopCtx) -> Scope {
        let p = &self.lp.procedure;
        let mut s = Scope::default();
        for k in GLOBAL_VARS {
            s.set(*k, "");
        }
        for k in p.vars.keys().chain(p.target_vars.keys()) {
            s.set(k.clone(), "");
        }
        if let Some(t) = self.target {
            for k in t.vars.keys() {
                s.set(k.clone(), "");
            }
            s.secrets = Some(t.secrets.keys().cloned().collect());
        }
        // The catalog's flags over the whole path, and the chart it picks (expand.rs).
        match &self.hop_flags {
            Some(flags) => {
                for f in flags {
                    s.set(format!("path.{f}"), "");
                }
            }
            None => s.open_prefixes.push("path.".into()),
        }
        if self.catalog_charts {
            s.set("chart_version", "");
        }
        if ctx.nodes || ctx.unknown {
            for k in NODE_VARS {
                s.set(format!("node.{k}"), "");
            }
            match self.target {
                Some(t) if !ctx.unknown => {
                    let tags: BTreeSet<&String> =
                        t.nodes.iter().flat_map(|n| n.tags.keys()).collect();
                    for k in tags {
                        s.set(format!("node.{k}"), "");
                    }
                }
                _ => s.open_prefixes.push("node.".into()),
            }
        }
        if ctx.items || ctx.unknown {
            s.set("item", "");
            s.set("item.index", "");
        }
        if ctx.hops || ctx.unknown {
            for k in HOP_VARS {
                s.set(format!("hop.{k}"), "");
            }
            match &self.hop_flags {
                Some(flags) if !ctx.unknown => {
                    for f in flags {
                        s.set(format!("hop.{f}"), "");
                    }
                }
                _ => s.open_prefixes.push("hop.".into()),
            }
        }
        s
    }

    fn check_step(&mut self, i: usize, step: &StepSpec) {
        let at = |k: &str| format!("steps[{i}].{k}");
        let loops = &self.lp.procedure.loops;
        if let Some(l) = &step.for_each {
            if l != "nodes" && !loops.contains_key(l) {
                let defined: Vec<&str> = std::iter::once("nodes")
                    .chain(loops.keys().map(String::as_str))
                    .collect();
                let msg = format!(
                    "`for_each` names an undefined loop `{l}`; defined loops: {}",
                    defined.join(", ")
                );
                self.err(&at("for_each"), msg);
            }
        }
        match (step.confirm, &step.phrase) {
            (ConfirmKind::Phrase, None) => self.err(
                &at("confirm"),
                "`confirm = \"phrase\"` needs a `phrase` for the operator to type",
            ),
            (ConfirmKind::Phrase, Some(ph)) if ph.trim().is_empty() => {
                self.err(&at("phrase"), "the confirmation phrase is empty")
            }
            (ConfirmKind::None | ConfirmKind::Yes, Some(_)) => self.err(
                &at("phrase"),
                "`phrase` is only used with `confirm = \"phrase\"`",
            ),
            _ => {}
        }
        if let Some(a) = step.approvals {
            if a != 1 && a != 2 {
                self.err(
                    &at("approvals"),
                    format!("`approvals` must be 1 or 2, not {a}"),
                );
            }
        }
        // A gate changes nothing, so its only possible undo is another gate: one a rollback
        // must pass on its way back (e.g. every restarted node up before a cluster-wide switch).
        if matches!(step.action, Action::Wait(_))
            && step
                .undo
                .as_ref()
                .is_some_and(|u| !matches!(u, Action::Wait(_)))
        {
            self.err(
                &at("undo"),
                "a `wait` step is a gate and has nothing to undo; its `undo` can only be another \
                 `wait` (a gate the rollback must pass)",
            );
        }
        let ctx = self.loop_ctx(step.for_each.as_deref());
        let scope = self.scope_for(&ctx);
        if step.takes_out == Some(true)
            && !ctx.nodes
            && !ctx.unknown
            && !matches!(step.action, Action::Lb { .. })
        {
            self.err(
                &at("takes_out"),
                "`takes_out = true` takes out the loop's node: put the step in a node loop \
                 (`for_each`)",
            );
        }
        for (field, expr) in [("when", &step.when), ("downtime_when", &step.downtime_when)] {
            let Some(w) = expr else { continue };
            match Expr::parse(w) {
                Ok(e) => {
                    for var in e.variables() {
                        if !scope.has(&var) {
                            let msg = unknown_var_message(&var, &ctx, &format!("in `{field}`"));
                            self.err(&at(field), msg);
                        }
                    }
                }
                Err(e) => self.err(&at(field), e.to_string()),
            }
        }
        self.check_template(&at("title"), &step.title, &scope, &ctx);
        self.check_template(&at("runbook"), &step.runbook, &scope, &ctx);
        if let Some(ph) = &step.phrase {
            self.check_template(&at("phrase"), ph, &scope, &ctx);
        }
        if let Some(why) = &step.irreversible {
            self.check_template(&at("irreversible"), why, &scope, &ctx);
        }
        match (&step.optional, step.optional_default) {
            (Some(why), default) => {
                self.check_template(&at("optional"), why, &scope, &ctx);
                if why.trim().is_empty() {
                    self.err(
                        &at("optional"),
                        "`optional` says why the step is optional; it is empty",
                    );
                }
                if default.is_none() {
                    self.err(
                        &at("optional"),
                        "an optional step declares what `--yes` does with it: add `optional_default = \"run\"` or `\"skip\"`",
                    );
                }
            }
            (None, Some(_)) => self.err(
                &at("optional_default"),
                "`optional_default` without `optional = \"why\"`: the step is not optional",
            ),
            (None, None) => {}
        }
        self.switchable = step.when.is_some();
        self.check_action(&at("action"), &step.action, &scope, &ctx);
        if let Some(u) = &step.undo {
            self.check_action(&at("undo"), u, &scope, &ctx);
        }
        self.switchable = false;
        self.check_timings(&format!("steps[{i}]"), &scope, &ctx);
    }

    /// The timing fields under `prefix` written as text (`"${recovery_timeout}"`, `"15m"`):
    /// their variables exist, and a value already known (the procedure's default, the target's
    /// value) is a duration in the field's range. One only the target gives is checked with it,
    /// and by the plan.
    fn check_timings(&mut self, prefix: &str, scope: &Scope, ctx: &LoopCtx) {
        let p = &self.lp.procedure;
        let entries: Vec<(String, String)> = self
            .lp
            .timings
            .under(prefix)
            .map(|(rel, text)| (format!("{prefix}.{rel}"), text.to_string()))
            .collect();
        for (path, text) in entries {
            let key = super::timing::key_of(&path);
            let Ok(names) = template::references(&text) else {
                self.check_template(&path, &text, scope, ctx);
                continue;
            };
            let before = self.diags.0.len();
            self.check_template(&path, &text, scope, ctx);
            if self.diags.0.len() > before {
                continue;
            }
            // Known now: the target's value, else the procedure's default.
            let mut known = Scope::default();
            let mut later = false;
            for n in &names {
                let value = self
                    .target
                    .and_then(|t| t.vars.get(n))
                    .or_else(|| p.vars.get(n));
                match value {
                    Some(v) => known.set(n.clone(), v.clone()),
                    None => later = true,
                }
            }
            if later {
                continue;
            }
            let Ok(filled) = template::render(&text, &known) else {
                continue;
            };
            if let Err(e) = super::timing::parse(key, &filled) {
                let from = match names.as_slice() {
                    [] => String::new(),
                    [n] if self.target.is_some_and(|t| t.vars.contains_key(n)) => format!(
                        "`{n}` from target `{}`: ",
                        self.target.map_or("", |t| t.name.as_str())
                    ),
                    [n] => format!("`{n}` from [vars]: "),
                    _ => format!("`{text}` is `{filled}`: "),
                };
                self.err(&path, format!("`{key}`: {from}{e}"));
            }
        }
    }

    /// `expect_text` regexes and `expect` JSONPaths, each problem at its place in the string.
    fn check_expectations(&mut self, path: &str, action: &Action) {
        for (prefix, h) in http_specs(action) {
            for e in super::expect::check_http(h) {
                let at = format!("{path}.{prefix}{}", e.field);
                let pos = self.lp.spans.pos_in_string(&at, e.offset);
                self.diags
                    .push(Diagnostic::new(&self.lp.path, pos, e.message));
            }
        }
    }

    fn check_template(&mut self, path: &str, s: &str, scope: &Scope, ctx: &LoopCtx) {
        match template::render(s, scope) {
            Ok(_) => {}
            Err(TemplateError::Unknown(var)) => {
                let msg = unknown_var_message(&var, ctx, "");
                self.err(path, msg);
            }
            Err(e) => self.err(path, e.to_string()),
        }
    }

    fn check_action(&mut self, path: &str, action: &Action, scope: &Scope, ctx: &LoopCtx) {
        let mut strings = Vec::new();
        visit_action(action, &mut |p, v| {
            strings.push((p.to_string(), v.to_string()))
        });
        let gate_scope = scope.with_late_nodes();
        for (p, v) in strings {
            let scope = if p.starts_with("check.") {
                &gate_scope
            } else {
                scope
            };
            self.check_template(&format!("{path}.{p}"), &v, scope, ctx);
        }
        self.check_expectations(path, action);
        // An ssh's remote command words are one script (reported at its first word).
        let joined = super::shell::join_remote_action(action);
        if let Some(p) = super::shell::action_script(&joined) {
            let mut script = None;
            visit_action(&joined, &mut |q, v| {
                if q == p {
                    script = Some(v.to_string());
                }
            });
            if let Err(e) = super::shell::placeholders(script.as_deref().unwrap_or_default()) {
                self.err(&format!("{path}.{p}"), e.to_string());
            }
        }
        self.check_runnable(path, action);
        match action {
            Action::Run { argv, .. } if argv.is_empty() || argv[0].trim().is_empty() => self.err(
                &format!("{path}.argv"),
                "`run` needs a program: `argv` is empty",
            ),
            Action::Http(h) => self.check_method(&format!("{path}.method"), &h.method),
            Action::Wait(w) => {
                match (&w.probe, &w.check) {
                    (None, None) => self.err(
                        path,
                        "a `wait` needs a `probe` (from the target) or an inline `check`",
                    ),
                    (Some(_), Some(_)) => self.err(
                        &format!("{path}.check"),
                        "a `wait` takes a `probe` or a `check`, not both",
                    ),
                    _ => {}
                }
                if let Some(super::model::Check::Http(h)) = &w.check {
                    self.check_method(&format!("{path}.check.method"), &h.method);
                }
                if let Some(super::model::Check::Run { argv, .. }) = &w.check {
                    if argv.is_empty() {
                        self.err(
                            &format!("{path}.check.argv"),
                            "the check needs a program: `argv` is empty",
                        );
                    }
                }
                if let (Some(probe), Some(t)) = (&w.probe, self.target) {
                    if !t.probes.iter().any(|p| &p.name == probe) {
                        let names: Vec<&str> = t.probes.iter().map(|p| p.name.as_str()).collect();
                        let msg = format!(
                            "target `{}` has no probe `{probe}` (it has: {})",
                            t.name,
                            list_or_none(&names)
                        );
                        self.err(&format!("{path}.probe"), msg);
                    }
                }
            }
            Action::Call { name, args } => {
                if let Some(t) = self.target {
                    match t.actions.get(name) {
                        None if self.switchable => {}
                        None => {
                            let names: Vec<&str> = t.actions.keys().map(String::as_str).collect();
                            let msg = format!(
                                "target `{}` does not bind action `{name}` (it binds: {}); add [actions.{name}] to the target",
                                t.name,
                                list_or_none(&names)
                            );
                            self.err(&format!("{path}.name"), msg);
                        }
                        Some(Action::Call { .. }) => {
                            let msg = format!("target binding `{name}` is itself a `call`; bindings must be concrete actions");
                            self.err(&format!("{path}.name"), msg);
                        }
                        Some(bound) => {
                            let mut s = scope.clone();
                            for k in args.keys() {
                                s.set(format!("arg.{k}"), "");
                            }
                            let mut strings = Vec::new();
                            visit_action(bound, &mut |p, v| {
                                strings.push((p.to_string(), v.to_string()))
                            });
                            for (p, v) in strings {
                                if let Err(e) = template::render(&v, &s) {
                                    let msg = format!("in target binding `{name}` ({p}): {e}");
                                    self.err(&format!("{path}.name"), msg);
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether `path.key` is a timing written as text (its number is a placeholder).
    fn timed(&self, path: &str, key: &str) -> bool {
        self.lp.timings.contains(&format!("{path}.{key}"))
    }

    /// An error on `path.key`, or on `path` when the key is not written (a default).
    fn err_key(&mut self, path: &str, key: &str, message: impl Into<String>) {
        let full = format!("{path}.{key}");
        if self.lp.pos(&full) != (1, 1) {
            self.err(&full, message);
        } else {
            self.err(path, message);
        }
    }

    /// A timeout that can run: at least 1 and at most `MAX_TIMEOUT_SECS`.
    fn check_timeout(&mut self, path: &str, key: &str, secs: u64) {
        if self.timed(path, key) {
            // Written as text: `check_timings` judges it.
            return;
        }
        if secs == 0 {
            self.err_key(
                path,
                key,
                format!("`{key} = 0` can never be met; give it at least 1"),
            );
        } else if secs > MAX_TIMEOUT_SECS {
            self.err_key(
                path,
                key,
                format!(
                    "`{key} = {secs}` is absurd (more than {} days); at most {MAX_TIMEOUT_SECS}",
                    MAX_TIMEOUT_SECS / 86_400
                ),
            );
        }
    }

    /// A URL that parses (templates stand in for plausible values; one that starts with a
    /// template brings its own scheme and host, and is checked when the plan is made).
    fn check_url(&mut self, path: &str, url: &str) {
        // `$${...}` is a template resolved later (a gate's per-node check): the same here.
        let templated = url.replace("$${", "${");
        if templated.trim_start().starts_with("${") {
            return;
        }
        let mut concrete = String::new();
        let mut rest = templated.as_str();
        while let Some(start) = rest.find("${") {
            concrete.push_str(&rest[..start]);
            match rest[start..].find('}') {
                Some(end) => {
                    concrete.push('1');
                    rest = &rest[start + end + 1..];
                }
                None => {
                    rest = "";
                }
            }
        }
        concrete.push_str(rest);
        match reqwest::Url::parse(&concrete) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            Ok(u) => self.err_key(
                path,
                "url",
                format!("`{url}`: scheme `{}` is not http or https", u.scheme()),
            ),
            Err(e) => self.err_key(path, "url", format!("`{url}` is not a URL: {e}")),
        }
    }

    /// Limits every action and check must respect to be able to run at all.
    fn check_runnable(&mut self, path: &str, action: &Action) {
        use super::model::Check;
        let check = |v: &mut Self, at: &str, c: &Check| match c {
            Check::Http(h) => {
                v.check_timeout(at, "timeout_secs", h.timeout_secs);
                v.check_url(at, &h.url);
            }
            Check::Tcp { timeout_ms, .. } => {
                v.check_timeout(at, "timeout_ms", timeout_ms.div_ceil(1000))
            }
            Check::Run { timeout_secs, .. } => v.check_timeout(at, "timeout_secs", *timeout_secs),
        };
        match action {
            Action::Run { timeout_secs, .. } => {
                self.check_timeout(path, "timeout_secs", *timeout_secs)
            }
            Action::Http(h) => {
                self.check_timeout(path, "timeout_secs", h.timeout_secs);
                self.check_url(path, &h.url);
            }
            Action::Wait(w) => {
                self.check_timeout(path, "timeout_secs", w.timeout_secs);
                let texts = self.timed(path, "stable_secs") || self.timed(path, "timeout_secs");
                if w.stable_secs > w.timeout_secs && !texts {
                    self.err_key(
                        path,
                        "stable_secs",
                        format!(
                            "`stable_secs = {}` is longer than `timeout_secs = {}`: the gate could never pass",
                            w.stable_secs, w.timeout_secs
                        ),
                    );
                }
                if w.interval_ms == 0 && !self.timed(path, "interval_ms") {
                    self.err_key(
                        path,
                        "interval_ms",
                        "`interval_ms = 0` would poll without pause; give it at least 50",
                    );
                }
                if let Some(c) = &w.check {
                    check(self, &format!("{path}.check"), c);
                }
                // A templated selector (`${node.name}`) is the loop's node: known to exist.
                let literal = w.nodes.as_deref().filter(|s| !s.contains("${"));
                if let (Some(sel), Some(t)) = (literal, self.target) {
                    if crate::engine::action::select_nodes(t, sel).is_empty() {
                        let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
                        self.err_key(
                            path,
                            "nodes",
                            format!(
                                "`nodes = \"{sel}\"` selects no node of target `{}` (it has: {})",
                                t.name,
                                list_or_none(&names)
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn check_method(&mut self, path: &str, method: &str) {
        if !HTTP_METHODS.contains(&method) {
            let msg = format!(
                "unknown HTTP method `{method}`; expected one of {}",
                HTTP_METHODS.join(", ")
            );
            self.err(path, msg);
        }
    }
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn unknown_var_message(var: &str, ctx: &LoopCtx, where_: &str) -> String {
    let where_ = if where_.is_empty() {
        String::new()
    } else {
        format!(" {where_}")
    };
    let hint = if var.starts_with("node.") && !ctx.nodes {
        " (`node.*` is only defined inside a node loop)"
    } else if (var == "item" || var.starts_with("item.")) && !ctx.items {
        " (`item` is only defined inside a loop over a list)"
    } else if var.starts_with("hop.") && !ctx.hops {
        " (`hop.*` is only defined inside a hop loop)"
    } else if var.starts_with("arg.") {
        " (`arg.*` is only defined in a target's action bindings)"
    } else {
        ""
    };
    format!("unknown variable `{var}`{where_}{hint}")
}

/// Whether a node matcher's key means something on `t`: a node's built-in field (name,
/// address, role: a target may leave roles out, and a role order then has nothing to order) or
/// a tag some node carries.
fn target_has_key(t: &Target, k: &str) -> bool {
    match k {
        "name" | "address" | "role" => true,
        tag => t.nodes.iter().any(|n| n.tags.contains_key(tag)),
    }
}

/// `key=value` with both sides non-empty.
pub fn is_matcher(s: &str) -> bool {
    s.split_once('=')
        .is_some_and(|(k, v)| !k.trim().is_empty() && !v.trim().is_empty())
}
