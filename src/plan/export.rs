//! The plan for change review, outside the terminal: `plan --format json` (every step, its
//! action and undo, the downtime windows and the point of no return, for tools) and
//! `plan --format md` (the procedure as a reviewer reads it, like a runbook's view mode).
//! Credentials are masked as in the text plan; `${secret.*}` stays a placeholder.

use std::fmt::Write;

use serde_json::{json, Value};

use super::render::{action_lines, downtime_lines, guard_lines, rollback_line};
use super::{Confirm, Plan, PlannedStep};
use crate::procedure::model::{Action, Check, Downtime, HttpSpec};
use crate::target::Target;

/// The plan as one JSON document.
pub fn plan_json(plan: &Plan, target: &Target) -> Value {
    let pnr = plan.first_irreversible();
    let steps: Vec<Value> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({
                "n": i + 1,
                "key": s.key,
                "step_id": s.step_id,
                "title": s.title,
                "runbook": s.runbook,
                "node": s.node,
                "progress": s.progress,
                "downtime": s.downtime,
                "confirm": confirm_words(&s.confirm),
                "phrase": match &s.confirm { Confirm::Phrase { phrase } => Some(phrase), _ => None },
                "approvals": s.approvals,
                "action": masked(&s.action),
                "action_text": action_lines(&masked(&s.action)),
                "undo": s.undo.as_ref().map(masked),
                "undo_text": s.undo.as_ref().map(|u| action_lines(&masked(u))),
                "irreversible": s.irreversible,
                "past_point_of_no_return": pnr.is_some_and(|p| i > p),
                "overrides": s.overrides,
                "optional": s.optional,
                "takes_out": plan.guards.takes_out.get(&s.key),
            })
        })
        .collect();
    json!({
        "procedure": plan.procedure,
        "product": plan.product,
        "description": plan.description,
        "procedure_hash": plan.procedure_hash,
        "target": plan.target,
        "nodes": target.nodes.iter().map(|n| &n.name).collect::<Vec<_>>(),
        "from_version": plan.from_version,
        "to_version": plan.to_version,
        "hops": plan.hops,
        "point_of_no_return": pnr.map(|i| json!({
            "n": i + 1,
            "key": plan.steps[i].key,
            "why": plan.steps[i].irreversible,
        })),
        "downtime": windows(plan),
        "rollback": {
            "undo_first": plan.rollback.undo_first,
            "text": rollback_line(plan),
        },
        "guards": plan.guards.rules,
        "steps": steps,
    })
}

/// The plan as a Markdown document for change review.
pub fn plan_markdown(plan: &Plan, target: &Target) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# {} on {}", plan.procedure, plan.target);
    let _ = writeln!(w);
    if !plan.description.is_empty() {
        let _ = writeln!(w, "{}", plan.description);
        let _ = writeln!(w);
    }
    let nodes: Vec<&str> = target.nodes.iter().map(|n| n.name.as_str()).collect();
    let _ = writeln!(w, "| | |");
    let _ = writeln!(w, "|---|---|");
    let _ = writeln!(w, "| product | {} |", cell(&plan.product));
    let _ = writeln!(
        w,
        "| versions | {} → {} |",
        cell(plan.from_version.as_deref().unwrap_or("unknown")),
        cell(plan.to_version.as_deref().unwrap_or("unknown"))
    );
    if !plan.hops.is_empty() {
        let _ = writeln!(w, "| hops | {} |", cell(&plan.hops.join(" → ")));
    }
    let _ = writeln!(
        w,
        "| nodes | {} |",
        cell(&if nodes.is_empty() {
            "none".to_string()
        } else {
            nodes.join(", ")
        })
    );
    let _ = writeln!(w, "| steps | {} |", plan.steps.len());
    let pnr = plan.first_irreversible();
    let _ = writeln!(
        w,
        "| point of no return | {} |",
        cell(&match pnr {
            Some(i) => format!(
                "step {} ({}): {}",
                i + 1,
                plan.steps[i].key,
                plan.steps[i].irreversible.as_deref().unwrap_or("")
            ),
            None => "none: rollback is possible at every step".to_string(),
        })
    );
    if !plan.procedure_hash.is_empty() {
        let _ = writeln!(w, "| procedure sha256 | `{}` |", plan.procedure_hash);
    }
    let _ = writeln!(w);
    for line in downtime_lines(plan) {
        let _ = writeln!(w, "- {line}");
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "## Steps");
    let _ = writeln!(w);
    for (i, s) in plan.steps.iter().enumerate() {
        step_markdown(w, i + 1, s);
    }
    let guards = guard_lines(plan);
    if !guards.is_empty() {
        let _ = writeln!(w, "## Guards");
        let _ = writeln!(w);
        for line in guards {
            let _ = writeln!(w, "- {line}");
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w, "## Rollback");
    let _ = writeln!(w);
    let _ = writeln!(w, "{}", rollback_line(plan));
    out
}

fn step_markdown(w: &mut String, n: usize, s: &PlannedStep) {
    let _ = writeln!(w, "### {n}. {}", s.title);
    let _ = writeln!(w);
    let mut facts = vec![format!("`{}`", s.key)];
    if let Some(p) = &s.progress {
        facts.push(p.clone());
    }
    match s.downtime {
        Downtime::None => {}
        Downtime::Writes => facts.push("**downtime: writes**".into()),
        Downtime::Full => facts.push("**downtime: full**".into()),
    }
    let mut confirm = format!("confirm: {}", confirm_words(&s.confirm));
    if let Confirm::Phrase { phrase } = &s.confirm {
        let _ = write!(confirm, " (type `{phrase}`)");
    }
    if s.approvals > 1 {
        let _ = write!(confirm, ", {} approvals", s.approvals);
    }
    facts.push(confirm);
    let _ = writeln!(w, "{}", facts.join(" · "));
    let _ = writeln!(w);
    if let Some(o) = &s.optional {
        let _ = writeln!(
            w,
            "**Optional** — the operator chooses run or skip: {} (with `--yes`: {}).",
            o.why, o.default
        );
        let _ = writeln!(w);
    }
    if !s.runbook.is_empty() {
        let _ = writeln!(w, "{}", s.runbook.trim_end());
        let _ = writeln!(w);
    }
    let _ = writeln!(w, "Do:");
    let _ = writeln!(w);
    code_block(w, &action_lines(&masked(&s.action)));
    if !s.overrides.is_empty() {
        let _ = writeln!(w, "Overridden by the target: {}", s.overrides.join(", "));
        let _ = writeln!(w);
    }
    match &s.undo {
        Some(u) => {
            let _ = writeln!(w, "Undo:");
            let _ = writeln!(w);
            code_block(w, &action_lines(&masked(u)));
        }
        None => {
            let _ = writeln!(w, "Undo: none.");
            let _ = writeln!(w);
        }
    }
    if let Some(why) = &s.irreversible {
        let _ = writeln!(w, "> **Point of no return:** {why}");
        let _ = writeln!(w);
    }
}

/// A fenced block long enough that no line of the content can close it.
fn code_block(w: &mut String, lines: &[String]) {
    let longest = lines.iter().map(|l| longest_run(l, '`')).max().unwrap_or(0);
    let fence = "`".repeat((longest + 1).max(3));
    let _ = writeln!(w, "{fence}");
    for l in lines {
        let _ = writeln!(w, "{l}");
    }
    let _ = writeln!(w, "{fence}");
    let _ = writeln!(w);
}

fn longest_run(s: &str, c: char) -> usize {
    let (mut best, mut cur) = (0, 0);
    for ch in s.chars() {
        cur = if ch == c { cur + 1 } else { 0 };
        best = best.max(cur);
    }
    best
}

/// A table cell: one line, `|` escaped.
fn cell(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn confirm_words(c: &Confirm) -> &'static str {
    match c {
        Confirm::None => "none",
        Confirm::Yes => "yes",
        Confirm::Phrase { .. } => "phrase",
    }
}

/// The runs of consecutive steps marked with downtime, by step number (1-based, inclusive).
fn windows(plan: &Plan) -> Vec<Value> {
    let mut out = Vec::new();
    let steps = &plan.steps;
    let mut i = 0;
    while i < steps.len() {
        if steps[i].downtime == Downtime::None {
            i += 1;
            continue;
        }
        let start = i;
        let mut full = false;
        while i < steps.len() && steps[i].downtime != Downtime::None {
            full |= steps[i].downtime == Downtime::Full;
            i += 1;
        }
        out.push(json!({
            "kind": if full { "full" } else { "writes" },
            "from": { "n": start + 1, "key": steps[start].key },
            "until": { "n": i, "key": steps[i - 1].key },
        }));
    }
    out
}

/// The action with credential headers masked (as the text plan shows them).
fn masked(a: &Action) -> Action {
    let mask = |h: &HttpSpec| {
        let mut h = h.clone();
        for (k, v) in h.headers.iter_mut() {
            if super::render::is_sensitive_header(k, v) {
                *v = "****".into();
            }
        }
        h
    };
    match a {
        Action::Http(h) => Action::Http(mask(h)),
        Action::Wait(w) => {
            let mut w = w.clone();
            if let Some(Check::Http(h)) = &w.check {
                w.check = Some(Check::Http(mask(h)));
            }
            Action::Wait(w)
        }
        other => other.clone(),
    }
}

/// Output format of `flightdeck plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PlanFormat {
    /// The plain-text plan (what the terminal shows).
    #[default]
    Text,
    /// One JSON document: steps, actions, undos, downtime windows, point of no return.
    Json,
    /// A Markdown document for change review.
    Md,
}
