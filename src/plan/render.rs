//! Plain-text rendering of a plan for `flightdeck plan`: what will be done, exactly, and where
//! the points of no return and the downtime windows are. No colour, stable for tests.

use std::fmt::Write;

use super::{Confirm, Plan, PlannedStep};
use crate::procedure::model::{Action, Check, Downtime, HttpSpec, WaitSpec};
use crate::target::Target;

pub fn render_plan(plan: &Plan, target: &Target) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "Procedure: {} ({})", plan.procedure, plan.product);
    if !plan.description.is_empty() {
        let _ = writeln!(w, "           {}", plan.description);
    }
    let _ = writeln!(
        w,
        "Target:    {} ({} node{})",
        plan.target,
        target.nodes.len(),
        if target.nodes.len() == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        w,
        "Versions:  {} -> {}",
        plan.from_version.as_deref().unwrap_or("unknown"),
        plan.to_version.as_deref().unwrap_or("unknown")
    );
    let hops = if plan.hops.is_empty() {
        "none".to_string()
    } else {
        plan.hops.join(" -> ")
    };
    let _ = writeln!(w, "Hops:      {hops}");
    let _ = writeln!(w, "Steps:     {}", plan.steps.len());
    let width = plan.steps.len().to_string().len();
    for (i, step) in plan.steps.iter().enumerate() {
        let _ = writeln!(w);
        // Said only where a guard watches it.
        let out = plan
            .guards
            .takes_out
            .get(&step.key)
            .filter(|_| !plan.guards.rules.is_empty());
        render_step(w, i + 1, width, step, out);
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "{}", rollback_line(plan));
    for line in downtime_lines(plan) {
        let _ = writeln!(w, "{line}");
    }
    for line in guard_lines(plan) {
        let _ = writeln!(w, "{line}");
    }
    out
}

/// One line per guard: what it counts, its limit, why; and which steps it watches.
pub(crate) fn guard_lines(plan: &Plan) -> Vec<String> {
    plan.guards
        .rules
        .iter()
        .map(|g| {
            let watched = plan
                .steps
                .iter()
                .filter(|s| {
                    plan.guards
                        .takes_out
                        .get(&s.key)
                        .is_some_and(|n| g.nodes.contains(n))
                })
                .count();
            format!(
                "Guard {}: of {} ({}), at most {} out of service at once ({}); {} step{} take{} \
                 one out; enforced by the engine. Why: {}",
                g.name,
                g.selection,
                g.nodes.join(", "),
                g.max_out,
                g.limit,
                watched,
                if watched == 1 { "" } else { "s" },
                if watched == 1 { "s" } else { "" },
                g.why
            )
        })
        .collect()
}

fn render_step(
    w: &mut String,
    n: usize,
    width: usize,
    s: &PlannedStep,
    takes_out: Option<&String>,
) {
    let mut head = format!("{n:>width$}. {} — {}", s.key, s.title);
    match s.downtime {
        Downtime::None => {}
        Downtime::Writes => head.push_str("  [downtime: writes]"),
        Downtime::Full => head.push_str("  [downtime: full]"),
    }
    let _ = writeln!(w, "{head}");
    let pad = " ".repeat(width + 2);
    if let Some(p) = &s.progress {
        let _ = writeln!(w, "{pad}progress: {p}");
    }
    let mut confirm = match &s.confirm {
        Confirm::None => "none (runs when reached)".to_string(),
        Confirm::Yes => "yes".to_string(),
        Confirm::Phrase { phrase } => format!("type \"{phrase}\""),
    };
    if s.approvals > 1 {
        let _ = write!(confirm, " · {} approvals", s.approvals);
    }
    let _ = writeln!(w, "{pad}confirm:  {confirm}");
    if !s.runbook.is_empty() {
        let _ = writeln!(w, "{pad}runbook:  {}", s.runbook);
    }
    write_action(w, &pad, "action:  ", &s.action);
    if let Some(n) = takes_out {
        let _ = writeln!(w, "{pad}          takes {n} out of service (guards apply)");
    }
    if !s.overrides.is_empty() {
        let _ = writeln!(
            w,
            "{pad}          overridden by the target: {}",
            s.overrides.join(", ")
        );
    }
    match &s.undo {
        Some(u) => write_action(w, &pad, "undo:    ", u),
        None => {
            let _ = writeln!(w, "{pad}undo:     no undo");
        }
    }
    if let Some(why) = &s.irreversible {
        let _ = writeln!(w, "{pad}IRREVERSIBLE: {why}");
    }
}

fn write_action(w: &mut String, pad: &str, label: &str, a: &Action) {
    let lines = action_lines(a);
    let cont = " ".repeat(label.len() + 1);
    for (i, l) in lines.iter().enumerate() {
        let lead = if i == 0 { label } else { cont.as_str() };
        let sep = if i == 0 { " " } else { "" };
        let _ = writeln!(w, "{pad}{lead}{sep}{l}");
    }
}

/// The exact action, one fact per line.
pub fn action_lines(a: &Action) -> Vec<String> {
    match a {
        Action::Manual { text } => vec![format!("manual: {text}")],
        Action::Run {
            argv,
            env,
            stdin,
            cwd,
            timeout_secs,
            expect_exit,
        } => {
            let mut l = vec![format!("run: {}", shell_join(argv))];
            for (k, v) in env {
                l.push(format!("env {k}={}", shell_quote(v)));
            }
            if let Some(text) = stdin {
                l.push(format!("stdin {}", shell_quote(text)));
            }
            if let Some(c) = cwd {
                l.push(format!("cwd {c}"));
            }
            let exit = if *expect_exit == 0 {
                String::new()
            } else {
                format!(", expect exit {expect_exit}")
            };
            l.push(format!("timeout {timeout_secs}s{exit}"));
            l
        }
        Action::Http(h) => http_lines(h),
        Action::Lb {
            node,
            state,
            weight,
        } => {
            let weight = weight.map(|w| format!(" (weight {w})")).unwrap_or_default();
            vec![format!("lb: {node} -> {state}{weight}")]
        }
        Action::Wait(wait) => wait_lines(wait),
        Action::Call { name, args } => {
            let args: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            vec![format!("call {name}({})", args.join(", "))]
        }
    }
}

fn http_lines(h: &HttpSpec) -> Vec<String> {
    let mut l = vec![format!("{} {}", h.method, h.url)];
    for (k, v) in &h.headers {
        let shown = if is_sensitive_header(k, v) { "****" } else { v };
        l.push(format!("header {k}: {shown}"));
    }
    if let Some(b) = &h.body {
        l.push(format!("body {b}"));
    }
    let mut expect = Vec::new();
    if h.expect_status.is_empty() {
        expect.push("status 2xx".to_string());
    } else {
        let st: Vec<String> = h.expect_status.iter().map(u16::to_string).collect();
        expect.push(format!("status {}", st.join("|")));
    }
    for (k, v) in &h.expect_json {
        expect.push(format!("{k} = {v}"));
    }
    if let Some(t) = &h.expect_text {
        expect.push(format!("text /{t}/"));
    }
    for e in &h.expect {
        expect.push(crate::procedure::expect::describe(e));
    }
    l.push(format!(
        "expect {} (timeout {}s)",
        expect.join(", "),
        h.timeout_secs
    ));
    l
}

fn wait_lines(wait: &WaitSpec) -> Vec<String> {
    let what = match (&wait.probe, &wait.check) {
        (Some(p), _) => format!("probe {p}"),
        (None, Some(Check::Http(h))) => format!("http {} {}", h.method, h.url),
        (None, Some(Check::Tcp { address, .. })) => format!("tcp {address}"),
        (None, Some(Check::Run { argv, .. })) => format!("run {}", shell_join(argv)),
        (None, None) => "nothing".to_string(),
    };
    let on = wait
        .nodes
        .as_deref()
        .map(|n| format!(" on {n}"))
        .unwrap_or_default();
    let stable = if wait.stable_secs > 0 {
        format!(", stable for {}s", wait.stable_secs)
    } else {
        String::new()
    };
    let mut l = vec![format!(
        "wait: {what}{on} passes{stable} (timeout {}s, every {}ms)",
        wait.timeout_secs, wait.interval_ms
    )];
    if let Some(Check::Http(h)) = &wait.check {
        l.extend(http_lines(h).into_iter().skip(1));
    }
    l
}

/// Credentials never show in a plan, even as a `${secret.*}` placeholder's surroundings.
pub(crate) fn is_sensitive_header(name: &str, value: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "authorization",
        "token",
        "api-key",
        "apikey",
        "secret",
        "cookie",
        "password",
    ]
    .iter()
    .any(|s| n.contains(s))
        || value.contains("${secret.")
}

/// Quote an argument for display as a POSIX shell word.
pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn rollback_line(plan: &Plan) -> String {
    let mut line = match plan.first_irreversible() {
        Some(i) => format!(
            "Rollback possible until step {} ({}): once it is done there is no way back.",
            i + 1,
            plan.steps[i].key
        ),
        None => "No irreversible step: rollback is possible at every step.".to_string(),
    };
    if !plan.rollback.undo_first.is_empty() {
        let ids: Vec<String> = plan
            .rollback
            .undo_first
            .iter()
            .map(|id| format!("`{id}`"))
            .collect();
        let _ = write!(
            line,
            "\nRollback order: the undos of {} first (latest first), then the rest in reverse.",
            ids.join(", ")
        );
    }
    line
}

/// One line per run of consecutive steps marked with downtime.
pub(crate) fn downtime_lines(plan: &Plan) -> Vec<String> {
    let mut lines = Vec::new();
    let mut i = 0;
    let steps = &plan.steps;
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
        let (a, b) = (&steps[start], &steps[i - 1]);
        lines.push(if full {
            format!(
                "Downtime: the service is down from step {} ({}) until step {} ({}) is done.",
                start + 1,
                a.key,
                i,
                b.key
            )
        } else {
            format!(
                "Downtime: writes stop at step {} ({}) and resume after step {} ({}).",
                start + 1,
                a.key,
                i,
                b.key
            )
        });
    }
    if lines.is_empty() {
        lines.push("Downtime: none marked.".to_string());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_display() {
        assert_eq!(shell_quote("ls"), "ls");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(
            shell_join(&["sh".into(), "-c".into(), "echo $HOME".into()]),
            "sh -c 'echo $HOME'"
        );
    }

    #[test]
    fn masks_credentials() {
        assert!(is_sensitive_header("Authorization", "Basic x"));
        assert!(is_sensitive_header("X-Thing", "${secret.t}"));
        assert!(!is_sensitive_header("Content-Type", "application/json"));
    }
}
