//! Expansion of a procedure against a target into a [`Plan`]: hops from the path strategy, loops
//! unrolled (item outer, steps inner; nested through `within`), `when` evaluated per instance,
//! templates filled in (secrets left as written), `call`s replaced by the target's bindings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::{Confirm, Guard, Guards, Plan, PlannedStep, StateKeepers, STATE_KEEPING_CALLS};
use crate::procedure::catalog::{Catalog, CatalogError, Hop};
use crate::procedure::load::LoadedProcedure;
use crate::procedure::model::{
    Action, Check, ConfirmKind, Downtime, GuardLimit, GuardSpec, LoopSpec, Membership,
    RollbackSpec, StepSpec, VerifySpec,
};
use crate::procedure::shell;
use crate::procedure::strings::map_action;
use crate::procedure::template::{self, Scope, TemplateError};
use crate::procedure::timing::{self, Timings};
use crate::procedure::version::{Constraint, Version, VersionError};
use crate::procedure::when::{Expr, WhenError};
use crate::target::{Node, Target};

#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// The cluster's current version (else the target's `vars.current_version`).
    pub from_version: Option<String>,
    /// The version to go to (else the target's `vars.to_version`, else the procedure's `to`).
    pub to_version: Option<String>,
    /// Where `minor-steps` catalogs are read; empty (the default) means `catalog/` next to the
    /// procedure file.
    pub catalog_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "the current version is unknown: pass --from or set vars.current_version in the target"
    )]
    UnknownFromVersion,
    #[error("the version to upgrade to is unknown: pass --to, set `to` in the procedure or vars.to_version in the target")]
    UnknownToVersion,
    #[error(
        "the current version {from} does not satisfy this procedure's `from = \"{constraint}\"`"
    )]
    FromConstraint { from: String, constraint: String },
    #[error(
        "`{0}` is not a version: use digits and dots, optionally `-` and a pre-release of \
         letters, digits, `.`, `_` or `-` (it is substituted into commands)"
    )]
    NotAVersion(String),
    #[error("this procedure's `from` is not a valid constraint: {0}")]
    BadConstraint(VersionError),
    #[error("the current version is not usable: {0}")]
    BadVersion(VersionError),
    #[error(transparent)]
    Path(#[from] CatalogError),
    #[error("unknown path strategy `{0}`")]
    UnknownStrategy(String),
    #[error("step `{step}`: {message}")]
    Step { step: String, message: String },
    #[error("the plan has no steps for target `{0}` (its loops select no node, or every `when` is false): nothing would run")]
    Empty(String),
    #[error("target `{target}` does not define `{name}` ({what}), which this procedure needs: add it to the target's [vars]")]
    MissingTargetVar {
        name: String,
        what: String,
        target: String,
    },
    #[error("two planned steps have the same key `{0}`; give the steps distinct ids")]
    DuplicateKey(String),
}

/// One item of a loop, as a step instance sees it.
#[derive(Debug, Clone)]
enum Item<'a> {
    Node {
        index: usize,
        total: usize,
        node: &'a Node,
    },
    Hop {
        index: usize,
        total: usize,
        hop: &'a Hop,
    },
    /// One item of a list loop (`over = "list"`).
    Value {
        index: usize,
        total: usize,
        value: String,
    },
}

impl Item<'_> {
    fn key(&self) -> &str {
        match self {
            Item::Node { node, .. } => &node.name,
            Item::Hop { hop, .. } => &hop.version,
            Item::Value { value, .. } => value,
        }
    }

    fn progress(&self) -> String {
        match self {
            Item::Node { index, total, .. } => format!("node {index}/{total}"),
            Item::Hop {
                index, total, hop, ..
            } => format!("hop {} ({index}/{total})", hop.version),
            Item::Value {
                index,
                total,
                value,
            } => format!("{value} ({index}/{total})"),
        }
    }

    fn bind(&self, scope: &mut Scope) {
        match self {
            Item::Node { index, node, .. } => {
                for (k, v) in &node.tags {
                    scope.set(format!("node.{k}"), v.clone());
                }
                let port = node
                    .address
                    .rsplit_once(':')
                    .map_or("", |(_, p)| p)
                    .to_string();
                scope.set("node.name", node.name.clone());
                scope.set("node.address", node.address.clone());
                scope.set("node.host", node.host().to_string());
                scope.set("node.port", port);
                scope.set("node.url", node.url());
                scope.set("node.role", node.role.clone().unwrap_or_default());
                scope.set("node.index", index.to_string());
            }
            Item::Hop { index, hop, .. } => {
                let minor = Version::parse(&hop.version)
                    .map(|v| v.minor_line())
                    .unwrap_or_else(|_| hop.version.clone());
                for (k, v) in &hop.flags {
                    scope.set(format!("hop.{k}"), v.clone());
                }
                scope.set("hop.version", hop.version.clone());
                scope.set("hop.from", hop.from.clone());
                scope.set("hop.minor", minor);
                scope.set("hop.index", index.to_string());
            }
            Item::Value { index, value, .. } => {
                scope.set("item", value.clone());
                scope.set("item.index", index.to_string());
            }
        }
    }
}

struct Expander<'a> {
    target: &'a Target,
    /// The procedure's steps (a step's index names its timings) and its timing fields written
    /// as text.
    steps: &'a [StepSpec],
    timings: &'a Timings,
    hops: &'a [Hop],
    from_known: bool,
    to_known: bool,
    keys: BTreeSet<String>,
    out: Vec<PlannedStep>,
    /// Step key -> the node it takes out of service (for the guards).
    takes_out: BTreeMap<String, String>,
    keeps_state: StateKeepers,
}

/// Expand `proc` for `target`.
/// A version as typed on the command line: it must parse, and hold nothing a shell or an
/// argument parser would read as more than a word.
fn check_version_text(v: &str) -> Result<(), PlanError> {
    let safe = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
        && !v.starts_with('-');
    if !safe || Version::parse(v).is_err() {
        return Err(PlanError::NotAVersion(v.to_string()));
    }
    Ok(())
}

pub fn build_plan(
    proc: &LoadedProcedure,
    target: &Target,
    opts: &PlanOptions,
) -> Result<Plan, PlanError> {
    let p = &proc.procedure;
    // --from/--to end up inside commands (`${to_version}`): only a version gets in.
    for v in [&opts.from_version, &opts.to_version].into_iter().flatten() {
        check_version_text(v)?;
    }
    let from = opts
        .from_version
        .clone()
        .or_else(|| target.vars.get("current_version").cloned());
    let to = opts
        .to_version
        .clone()
        .or_else(|| target.vars.get("to_version").cloned())
        .or_else(|| p.to.clone());

    if let (Some(c), Some(f)) = (&p.from, &from) {
        let constraint = Constraint::parse(c).map_err(PlanError::BadConstraint)?;
        let version = Version::parse(f).map_err(PlanError::BadVersion)?;
        if !constraint.matches(&version) {
            return Err(PlanError::FromConstraint {
                from: f.clone(),
                constraint: c.clone(),
            });
        }
    }

    if let Some((name, what)) = p
        .target_vars
        .iter()
        .find(|(k, _)| !target.vars.contains_key(*k))
    {
        return Err(PlanError::MissingTargetVar {
            name: name.clone(),
            what: what.clone(),
            target: target.name.clone(),
        });
    }

    let hops = compute_hops(proc, opts, from.as_deref(), to.as_deref())?;

    let mut scope = Scope::default();
    for (k, v) in p.vars.iter().chain(target.vars.iter()) {
        scope.set(k.clone(), v.clone());
    }
    if let Some(catalog) = load_catalog(proc, opts)? {
        catalog_vars(&catalog, &hops, target, to.as_deref(), &mut scope)?;
    }
    if let Some(f) = &from {
        scope.set("from_version", f.clone());
        scope.set("current_version", f.clone());
    } else {
        // A variable of that name must not pass for a known version.
        scope.vars.remove("from_version");
        scope.vars.remove("current_version");
    }
    if let Some(t) = &to {
        scope.set("to_version", t.clone());
    }
    scope.set("procedure", p.name.clone());
    scope.set("target", target.name.clone());
    scope.set("nodes.count", target.nodes.len().to_string());
    let names: Vec<&str> = target.nodes.iter().map(|n| n.name.as_str()).collect();
    scope.set("nodes.names", names.join(","));
    scope.secrets = Some(target.secrets.keys().cloned().collect());

    let mut steps = Vec::with_capacity(p.steps.len());
    for s in &p.steps {
        steps.push((s, loop_chain(p, s)?));
    }
    let uses_hops = steps
        .iter()
        .any(|(_, chain)| chain.iter().any(|(_, l)| l.over == "hops"));
    if uses_hops && to.is_none() {
        return Err(PlanError::UnknownToVersion);
    }

    let mut ex = Expander {
        target,
        steps: &p.steps,
        timings: &proc.timings,
        hops: &hops,
        from_known: from.is_some(),
        to_known: to.is_some(),
        keys: BTreeSet::new(),
        out: Vec::new(),
        takes_out: BTreeMap::new(),
        keeps_state: StateKeepers::default(),
    };
    let mut ctx = Vec::new();
    ex.block(&steps, 0, &mut ctx, &scope)?;
    // A session with no step would wait for ever (headless) on nothing.
    if ex.out.is_empty() {
        return Err(PlanError::Empty(target.name.clone()));
    }
    let verify = p
        .rollback
        .verify
        .iter()
        .enumerate()
        .map(|(i, v)| ex.verify(i, v, &scope))
        .collect::<Result<Vec<_>, _>>()?;

    Ok(Plan {
        procedure: p.name.clone(),
        product: p.product.clone(),
        description: p.description.clone(),
        target: target.name.clone(),
        from_version: from,
        to_version: to,
        hops: hops.iter().map(|h| h.version.clone()).collect(),
        steps: ex.out,
        procedure_hash: proc.hash.clone(),
        rollback: RollbackSpec {
            undo_first: p.rollback.undo_first.clone(),
            verify,
        },
        guards: Guards {
            rules: resolve_guards(&p.guards, target)?,
            takes_out: ex.takes_out,
        },
        keeps_state: ex.keeps_state,
    })
}

/// The procedure's guards for `target`: each selection by node name, each limit as a count.
pub fn resolve_guards(specs: &[GuardSpec], target: &Target) -> Result<Vec<Guard>, PlanError> {
    let mut out = Vec::with_capacity(specs.len());
    for (i, g) in specs.iter().enumerate() {
        let err = |message: String| PlanError::Step {
            step: format!("guards[{i}] ({})", g.name),
            message,
        };
        let selection = g.nodes.clone().unwrap_or_else(|| "all".into());
        let nodes: Vec<String> = crate::engine::action::select_nodes(target, &selection)
            .into_iter()
            .map(|(_, n)| n.name.clone())
            .collect();
        let n = nodes.len();
        let mut limits = Vec::new();
        let mut max_out = n;
        match &g.max_out {
            Some(GuardLimit::Count(k)) => {
                max_out = max_out.min(usize::try_from(*k).unwrap_or(usize::MAX));
                limits.push(format!("at most {k} out"));
            }
            Some(GuardLimit::Share(text)) => {
                let pct = parse_share(text).map_err(err)?;
                // A share rounds down: "50%" of 3 lets 1 out, not 2.
                max_out = max_out.min(n.saturating_mul(pct) / 100);
                limits.push(format!(
                    "at most {text} out ({})",
                    n.saturating_mul(pct) / 100
                ));
            }
            None => {}
        }
        if let Some(m) = g.min_in {
            let m = usize::try_from(m).unwrap_or(usize::MAX);
            max_out = max_out.min(n.saturating_sub(m));
            limits.push(format!("at least {m} in service"));
        }
        if limits.is_empty() {
            return Err(err("a guard needs `max_out` or `min_in`".into()));
        }
        out.push(Guard {
            name: g.name.clone(),
            selection,
            nodes,
            max_out,
            limit: limits.join(" and "),
            why: g.why.clone(),
        });
    }
    Ok(out)
}

/// `"50%"` -> 50 (1 to 100).
pub fn parse_share(text: &str) -> Result<usize, String> {
    text.trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<usize>().ok())
        .filter(|p| (1..=100).contains(p))
        .ok_or_else(|| {
            format!("`max_out = \"{text}\"` is not a count or a share from 1% to 100% (e.g. `1`, `\"50%\"`)")
        })
}

/// The hops from the path strategy.
pub fn compute_hops(
    proc: &LoadedProcedure,
    opts: &PlanOptions,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Vec<Hop>, PlanError> {
    let p = &proc.procedure;
    let strategy = p.path.as_ref().map_or("direct", |s| s.strategy.as_str());
    let catalog = load_catalog(proc, opts)?;
    match (strategy, catalog) {
        ("direct", None) => Ok(to
            .map(|t| Hop {
                version: t.to_string(),
                from: from.unwrap_or_default().to_string(),
                flags: BTreeMap::new(),
            })
            .into_iter()
            .collect()),
        ("direct" | "minor-steps", Some(catalog)) => {
            let (Some(from), Some(to)) = (from, to) else {
                return Err(if from.is_none() {
                    PlanError::UnknownFromVersion
                } else {
                    PlanError::UnknownToVersion
                });
            };
            if strategy == "direct" {
                Ok(catalog.direct_hop(from, to)?)
            } else {
                Ok(catalog.hops(from, to)?)
            }
        }
        (other, _) => Err(PlanError::UnknownStrategy(other.to_string())),
    }
}

/// The release catalog the path reads: always for `minor-steps` (the product's by default), for
/// `direct` only when `path.catalog` names one.
pub fn load_catalog(
    proc: &LoadedProcedure,
    opts: &PlanOptions,
) -> Result<Option<Catalog>, PlanError> {
    let p = &proc.procedure;
    let Some(path) = &p.path else {
        return Ok(None);
    };
    let name = match (path.strategy.as_str(), path.catalog.as_deref()) {
        ("minor-steps", name) => name.unwrap_or(&p.product),
        ("direct", Some(name)) => name,
        ("direct", None) => return Ok(None),
        (other, _) => return Err(PlanError::UnknownStrategy(other.to_string())),
    };
    let dir = if opts.catalog_dir.as_os_str().is_empty() {
        proc.default_catalog_dir()
    } else {
        opts.catalog_dir.clone()
    };
    Ok(Some(Catalog::load(&Catalog::path_in(&dir, name))?))
}

/// What the catalog adds to the plan's variables: `path.<flag>` ("true" when any hop carries
/// the flag), and, for a catalog with Helm charts, `chart_version`: the chart that ships
/// `to_version` (a chart the target names is checked against the catalog instead).
fn catalog_vars(
    catalog: &Catalog,
    hops: &[Hop],
    target: &Target,
    to: Option<&str>,
    scope: &mut Scope,
) -> Result<(), PlanError> {
    for flag in catalog.flag_names() {
        let on = hops
            .iter()
            .any(|h| h.flags.get(&flag).is_some_and(|v| v == "true"));
        scope.set(format!("path.{flag}"), on.to_string());
    }
    let Some(to) = to else {
        return Ok(());
    };
    match target.vars.get("chart_version") {
        Some(chart) if !catalog.charts.is_empty() => catalog.check_chart(chart, to)?,
        Some(_) => {}
        None => {
            if let Some(chart) = catalog.chart_for(to)? {
                scope.set("chart_version", chart);
            }
        }
    }
    Ok(())
}

type Chain<'a> = Vec<(&'a str, LoopSpec)>;

/// The loops a step is in, outermost first.
fn loop_chain<'a>(
    p: &'a crate::procedure::model::Procedure,
    step: &StepSpec,
) -> Result<Chain<'a>, PlanError> {
    let builtin_nodes = LoopSpec {
        over: "nodes".into(),
        select: None,
        order: Vec::new(),
        within: None,
        items: None,
    };
    let mut chain: Chain<'a> = Vec::new();
    let mut cur = step.for_each.as_deref();
    while let Some(name) = cur {
        if chain.len() > p.loops.len() {
            return Err(PlanError::Step {
                step: step.id.clone(),
                message: format!("loop `{name}` is within itself"),
            });
        }
        let (key, spec) = match p.loops.get_key_value(name) {
            Some((k, l)) => (k.as_str(), l.clone()),
            None if name == "nodes" => ("nodes", builtin_nodes.clone()),
            None => {
                return Err(PlanError::Step {
                    step: step.id.clone(),
                    message: format!("`for_each` names an undefined loop `{name}`"),
                })
            }
        };
        cur = spec.within.clone().and_then(|w| {
            p.loops
                .get_key_value(w.as_str())
                .map(|(k, _)| k.as_str())
                .or((w == "nodes").then_some("nodes"))
        });
        chain.push((key, spec));
    }
    chain.reverse();
    Ok(chain)
}

/// Whether `node` matches a `key=value` matcher (`role`, `name`, or any tag).
fn node_matches(node: &Node, matcher: &str) -> bool {
    let Some((k, v)) = matcher.split_once('=') else {
        return false;
    };
    let (k, v) = (k.trim(), v.trim());
    match k {
        "name" => node.name == v,
        "role" => node.role.as_deref() == Some(v),
        "address" => node.address == v,
        tag => node.tags.get(tag).is_some_and(|t| t == v),
    }
}

/// The nodes of a node loop: filtered by `select`, then ordered by `order`.
pub fn loop_nodes<'a>(target: &'a Target, spec: &LoopSpec) -> Vec<&'a Node> {
    let mut nodes: Vec<&Node> = target
        .nodes
        .iter()
        .filter(|n| spec.select.as_deref().is_none_or(|s| node_matches(n, s)))
        .collect();
    if !spec.order.is_empty() {
        let rest_rank = spec
            .order
            .iter()
            .position(|m| m == "*")
            .unwrap_or(spec.order.len());
        let rank = |n: &Node| {
            spec.order
                .iter()
                .position(|m| m != "*" && node_matches(n, m))
                .unwrap_or(rest_rank)
        };
        // Stable: nodes of equal rank stay in target order.
        nodes.sort_by_key(|n| rank(n));
    }
    nodes
}

type StepWithChain<'a> = (&'a StepSpec, Chain<'a>);

impl<'a> Expander<'a> {
    fn block(
        &mut self,
        steps: &[StepWithChain<'a>],
        depth: usize,
        ctx: &mut Vec<Item<'a>>,
        scope: &Scope,
    ) -> Result<(), PlanError> {
        let mut i = 0;
        while i < steps.len() {
            let (step, chain) = &steps[i];
            if chain.len() <= depth {
                self.emit(step, ctx, scope)?;
                i += 1;
                continue;
            }
            let name = chain[depth].0;
            let mut j = i;
            while j < steps.len() && steps[j].1.len() > depth && steps[j].1[depth].0 == name {
                j += 1;
            }
            let items: Vec<Item<'a>> = match chain[depth].1.over.as_str() {
                "list" => {
                    let var = chain[depth].1.items.as_deref().unwrap_or_default();
                    let Some(raw) = scope.get(var) else {
                        return Err(PlanError::Step {
                            step: step.id.clone(),
                            message: format!(
                                "loop `{name}` is over the items of `{var}`, which is not defined"
                            ),
                        });
                    };
                    let values: Vec<String> = raw
                        .split(',')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(str::to_string)
                        .collect();
                    let total = values.len();
                    values
                        .into_iter()
                        .enumerate()
                        .map(|(k, value)| Item::Value {
                            index: k + 1,
                            total,
                            value,
                        })
                        .collect()
                }
                "hops" => {
                    let hops = self.hops;
                    let total = hops.len();
                    hops.iter()
                        .enumerate()
                        .map(|(k, hop)| Item::Hop {
                            index: k + 1,
                            total,
                            hop,
                        })
                        .collect()
                }
                _ => {
                    let nodes = loop_nodes(self.target, &chain[depth].1);
                    let total = nodes.len();
                    nodes
                        .into_iter()
                        .enumerate()
                        .map(|(k, node)| Item::Node {
                            index: k + 1,
                            total,
                            node,
                        })
                        .collect()
                }
            };
            for item in items {
                let mut inner = scope.clone();
                item.bind(&mut inner);
                ctx.push(item);
                self.block(&steps[i..j], depth + 1, ctx, &inner)?;
                ctx.pop();
            }
            i = j;
        }
        Ok(())
    }
}

impl Expander<'_> {
    fn emit(&mut self, step: &StepSpec, ctx: &[Item<'_>], scope: &Scope) -> Result<(), PlanError> {
        let key = if ctx.is_empty() {
            step.id.clone()
        } else {
            let items: Vec<&str> = ctx.iter().map(Item::key).collect();
            format!("{}@{}", step.id, items.join("/"))
        };
        if let Some(w) = &step.when {
            let expr = Expr::parse(w).map_err(|e| self.step_err(&key, "when", &e.to_string()))?;
            match expr.eval(scope) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(WhenError::Unknown(v)) => return Err(self.unknown(&key, "when", &v)),
                Err(e) => return Err(self.step_err(&key, "when", &e.to_string())),
            }
        }
        if !self.keys.insert(key.clone()) {
            return Err(PlanError::DuplicateKey(key));
        }
        let render = |field: &str, s: &str| self.render(&key, field, s, scope);
        let title = render("title", &step.title)?;
        let runbook = render("runbook", &step.runbook)?;
        let irreversible = step
            .irreversible
            .as_deref()
            .map(|s| render("irreversible", s))
            .transpose()?;
        let optional = match (&step.optional, step.optional_default) {
            (Some(why), Some(default)) => Some(super::OptionalStep {
                why: render("optional", why)?,
                default,
            }),
            (Some(_), None) => {
                return Err(self.step_err(
                    &key,
                    "optional",
                    "an optional step needs `optional_default = \"run\"` or `\"skip\"`",
                ))
            }
            (None, _) => None,
        };
        let confirm = match step.confirm {
            ConfirmKind::None => Confirm::None,
            ConfirmKind::Yes => Confirm::Yes,
            ConfirmKind::Phrase => Confirm::Phrase {
                phrase: render("phrase", step.phrase.as_deref().unwrap_or_default())?,
            },
        };
        let downtime = match &step.downtime_when {
            None => step.downtime,
            Some(w) => {
                let expr = Expr::parse(w)
                    .map_err(|e| self.step_err(&key, "downtime_when", &e.to_string()))?;
                match expr.eval(scope) {
                    Ok(true) => step.downtime,
                    Ok(false) => Downtime::None,
                    Err(WhenError::Unknown(v)) => {
                        return Err(self.unknown(&key, "downtime_when", &v))
                    }
                    Err(e) => return Err(self.step_err(&key, "downtime_when", &e.to_string())),
                }
            }
        };
        let index = self.steps.iter().position(|s| std::ptr::eq(s, step));
        let mut action = self.action(&key, "action", &step.action, scope)?;
        if let Some(i) = index {
            self.fill_timings(&key, &format!("steps[{i}].action"), scope, &mut |rel, v| {
                timing::set_in_action(&mut action, rel, v)
            })?;
        }
        let overrides = match self.target.overrides.steps.get(&step.id) {
            Some(o) => crate::target_overrides::apply(o, &mut action),
            None => Vec::new(),
        };
        let mut undo = step
            .undo
            .as_ref()
            .map(|u| self.action(&key, "undo", u, scope))
            .transpose()?;
        if let (Some(i), Some(u)) = (index, undo.as_mut()) {
            self.fill_timings(&key, &format!("steps[{i}].undo"), scope, &mut |rel, v| {
                timing::set_in_action(u, rel, v)
            })?;
        }
        // A gate's undo is a gate the rollback passes on its way back (the same wait, as a rule):
        // the target's timings for the step size it too.
        if let (Some(o), Some(u @ Action::Wait(_))) =
            (self.target.overrides.steps.get(&step.id), undo.as_mut())
        {
            crate::target_overrides::apply(o, u);
        }
        let node = ctx.iter().rev().find_map(|i| match i {
            Item::Node { node, .. } => Some(node.name.clone()),
            Item::Hop { .. } | Item::Value { .. } => None,
        });
        let progress = (!ctx.is_empty()).then(|| {
            ctx.iter()
                .map(Item::progress)
                .collect::<Vec<_>>()
                .join(" · ")
        });
        // What this step takes out of service, for the guards: an `lb` drain or maint says
        // which node; a `stop` (or a step marked `takes_out`) takes out its loop's node.
        let out_node = match (&action, step.takes_out) {
            (_, Some(false)) => None,
            (
                Action::Lb {
                    node: n,
                    state: Membership::Drain | Membership::Maint,
                    ..
                },
                _,
            ) => Some(n.clone()),
            (_, Some(true)) => node.clone(),
            _ => matches!(&step.action, Action::Call { name, .. } if name == "stop")
                .then(|| node.clone())
                .flatten(),
        };
        if let Some(n) = out_node {
            self.takes_out.insert(key.clone(), n);
        }
        let keeps_state = |a: &Action| matches!(a, Action::Call { name, .. } if STATE_KEEPING_CALLS.contains(&name.as_str()));
        if keeps_state(&step.action) {
            self.keeps_state.action.insert(key.clone());
        }
        if step.undo.as_ref().is_some_and(keeps_state) {
            self.keeps_state.undo.insert(key.clone());
        }
        self.out.push(PlannedStep {
            key,
            step_id: step.id.clone(),
            title,
            runbook,
            downtime,
            confirm,
            approvals: step.approvals.unwrap_or(1),
            irreversible,
            node,
            progress,
            action,
            undo,
            overrides,
            optional,
        });
        Ok(())
    }

    /// An action with templates filled in and a `call` replaced by the target's binding.
    fn action(
        &self,
        key: &str,
        field: &str,
        action: &Action,
        scope: &Scope,
    ) -> Result<Action, PlanError> {
        let gate_scope = scope.with_late_nodes();
        // An ssh's remote command is one script for the remote shell: quoted as one.
        let action = &shell::join_remote_action(action);
        let script = shell::action_script(action);
        let filled = map_action(action, &mut |p, s| {
            let scope = if p.starts_with("check.") {
                &gate_scope
            } else {
                scope
            };
            let field = format!("{field}.{p}");
            if script.as_deref() == Some(p) {
                self.render_script(key, &field, s, scope)
            } else {
                self.render(key, &field, s, scope)
            }
        })?;
        let Action::Call { name, args } = filled else {
            return Ok(filled);
        };
        let bound = match self.target.actions.get(&name) {
            None => {
                return Err(self.step_err(
                    key,
                    field,
                    &format!(
                    "target `{}` does not bind action `{name}`; add [actions.{name}] to the target",
                    self.target.name
                ),
                ))
            }
            Some(Action::Call { .. }) => {
                return Err(self.step_err(
                    key,
                    field,
                    &format!("target binding `{name}` is itself a `call`"),
                ))
            }
            Some(b) => b,
        };
        let mut with_args = scope.clone();
        for (k, v) in args {
            with_args.set(format!("arg.{k}"), v);
        }
        let bound = &shell::join_remote_action(bound);
        let script = shell::action_script(bound);
        map_action(bound, &mut |p, s| {
            let field = format!("{field} (binding `{name}`).{p}");
            if script.as_deref() == Some(p) {
                self.render_script(key, &field, s, &with_args)
            } else {
                self.render(key, &field, s, &with_args)
            }
        })
    }

    /// A shell script's templates, each value quoted for where it lands (`procedure::shell`);
    /// secrets and run-time `${node.*}` stay as written, for the engine to fill the same way.
    fn render_script(
        &self,
        key: &str,
        field: &str,
        s: &str,
        scope: &Scope,
    ) -> Result<String, PlanError> {
        // Every problem a plain render finds (unknown variables...) first, worded the same.
        self.render(key, field, s, scope)?;
        shell::fill(
            s,
            &mut |name| {
                let written = format!("${{{name}}}");
                template::render(&written, scope)
                    .ok()
                    .filter(|v| *v != written)
            },
            true,
        )
        .map_err(|e| self.step_err(key, field, &e.to_string()))
    }

    /// A `[[rollback.verify]]` entry for this target: templates filled in (`${node.*}` left
    /// for run time, per node), a `call` replaced by its binding as a check.
    fn verify(&self, i: usize, v: &VerifySpec, scope: &Scope) -> Result<VerifySpec, PlanError> {
        let key = format!("rollback.verify[{i}]");
        let late = scope.with_late_nodes();
        let render = |field: &str, s: &str, sc: &Scope| self.render(&key, field, s, sc);
        let check = match (&v.check, &v.call) {
            (Some(c), _) => {
                // Its shell script (or ssh remote command) quoted as a step's is.
                let c = shell::join_remote_check(c);
                let script = shell::check_script(&c);
                Some(crate::procedure::strings::map_check(&c, &mut |p, s| {
                    if script.as_deref() == Some(p) {
                        self.render_script(&key, p, s, &late)
                    } else {
                        render(p, s, &late)
                    }
                })?)
            }
            (None, Some(name)) => {
                // The binding as a step's `call` gets it (shell quoting included), with
                // `${node.*}` left for run time: the check runs per node.
                let call = Action::Call {
                    name: name.clone(),
                    args: v.args.clone(),
                };
                match self.action(&key, "call", &call, &late)? {
                    Action::Http(h) => Some(Check::Http(h)),
                    Action::Run {
                        argv,
                        env,
                        stdin,
                        timeout_secs,
                        expect_exit,
                        ..
                    } => Some(Check::Run {
                        argv,
                        env,
                        stdin,
                        timeout_secs,
                        expect_exit,
                    }),
                    _ => {
                        return Err(self.step_err(
                            &key,
                            "call",
                            &format!(
                                "target binding `{name}` is not an `http` or `run` action: a \
                                 verification check must read something"
                            ),
                        ))
                    }
                }
            }
            (None, None) => None,
        };
        let mut out = VerifySpec {
            what: render("what", &v.what, scope)?,
            check,
            call: None,
            args: BTreeMap::new(),
            nodes: v
                .nodes
                .as_deref()
                .map(|n| render("nodes", n, scope))
                .transpose()?,
            ..v.clone()
        };
        self.fill_timings(&key, &key, scope, &mut |rel, value| {
            timing::set_in_verify(&mut out, rel, value)
        })?;
        Ok(out)
    }

    /// Fill in the timing fields under `prefix` written as text (`"${recovery_timeout}"`):
    /// rendered in `scope`, read as a duration, set by `set`. A value that is not a duration
    /// in range stops the plan, saying which.
    fn fill_timings(
        &self,
        key: &str,
        prefix: &str,
        scope: &Scope,
        set: &mut dyn FnMut(&str, u64) -> bool,
    ) -> Result<(), PlanError> {
        for (rel, text) in self.timings.under(prefix) {
            let field = format!("{}.{rel}", prefix.rsplit('.').next().unwrap_or(prefix));
            let filled = self.render(key, &field, text, scope)?;
            let value = timing::parse(timing::key_of(rel), &filled).map_err(|e| {
                let shown = if filled == text {
                    String::new()
                } else {
                    format!(" (`{text}`)")
                };
                self.step_err(key, &field, &format!("{e}{shown}"))
            })?;
            if !set(rel, value) {
                return Err(self.step_err(
                    key,
                    &field,
                    "the action it is bound to has no such timing",
                ));
            }
        }
        Ok(())
    }

    fn render(&self, key: &str, field: &str, s: &str, scope: &Scope) -> Result<String, PlanError> {
        template::render(s, scope).map_err(|e| match e {
            TemplateError::Unknown(v) => self.unknown(key, field, &v),
            other => self.step_err(key, field, &other.to_string()),
        })
    }

    fn unknown(&self, key: &str, field: &str, var: &str) -> PlanError {
        match var {
            "from_version" | "current_version" if !self.from_known => PlanError::UnknownFromVersion,
            "to_version" if !self.to_known => PlanError::UnknownToVersion,
            _ => self.step_err(key, field, &format!("unknown variable `{var}`")),
        }
    }

    fn step_err(&self, key: &str, field: &str, message: &str) -> PlanError {
        PlanError::Step {
            step: key.to_string(),
            message: format!("{field}: {message}"),
        }
    }
}
