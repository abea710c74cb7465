//! Secrets written into a command line. Every user of the machine can read any process's
//! argv (`ps`, `/proc/PID/cmdline`), while its environment and input are its owner's alone;
//! so `check`, `run` and `resume` warn (and `check --strict` refuses) wherever a secret would reach an argv —
//! written there directly, through a variable that holds one, or through a `call` argument
//! the target's binding puts in its argv — and says what to write instead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::diag::{Diagnostic, Diagnostics};
use super::load::LoadedProcedure;
use super::model::{Action, Check};
use super::spans::SpanIndex;
use super::strings::{visit_action, visit_check};
use super::template::references;
use crate::plan::Plan;
use crate::target::Target;

/// Every place a secret reaches a command's argv, in the procedure and (when given, with the
/// file it came from) the target.
pub fn secrets_in_argv(lp: &LoadedProcedure, target: Option<(&Path, &Target)>) -> Diagnostics {
    let mut vars: BTreeMap<&str, &str> = lp
        .procedure
        .vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if let Some((_, t)) = target {
        vars.extend(t.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    let mut diags = Diagnostics::default();
    for (i, step) in lp.procedure.steps.iter().enumerate() {
        for (key, action) in [("action", Some(&step.action)), ("undo", step.undo.as_ref())] {
            let Some(action) = action else { continue };
            let at = format!("steps[{i}].{key}");
            for (p, secret, prog) in in_action_argv(action, &vars) {
                diags.push(Diagnostic::new(
                    &lp.path,
                    lp.pos(&format!("{at}.{p}")),
                    message(&secret, &prog),
                ));
            }
            if let Action::Call { name, args } = action {
                call_args(&mut diags, lp, &at, target, name, args, &vars);
            }
        }
    }
    // `[[rollback.verify]]` checks run with their secrets resolved too (`engine::hold`).
    for (i, v) in lp.procedure.rollback.verify.iter().enumerate() {
        let at = format!("rollback.verify[{i}]");
        if let Some(check) = &v.check {
            for (p, secret, prog) in in_check_argv(check, &vars) {
                diags.push(Diagnostic::new(
                    &lp.path,
                    lp.pos(&format!("{at}.check.{p}")),
                    message(&secret, &prog),
                ));
            }
        }
        if let Some(name) = &v.call {
            call_args(&mut diags, lp, &at, target, name, &v.args, &vars);
        }
    }
    if let Some((path, t)) = target {
        // Positions in the target file: it parsed already, so its text indexes again.
        let spans = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| SpanIndex::parse(&s).ok())
            .unwrap_or_default();
        for (name, action) in &t.actions {
            for (p, secret, prog) in in_action_argv(action, &vars) {
                let at = spans.pos(&format!("actions.{name}.{p}"));
                diags.push(Diagnostic::new(path, at, message(&secret, &prog)));
            }
        }
        for (i, probe) in t.probes.iter().enumerate() {
            for (p, secret, prog) in in_check_argv(&probe.check, &vars) {
                let at = spans.pos(&format!("probes[{i}].check.{p}"));
                diags.push(Diagnostic::new(path, at, message(&secret, &prog)));
            }
        }
    }
    diags.sort();
    diags
}

/// The same places in a plan (as `resume` reads it from the journal: templates filled in but
/// `${secret.*}`, calls bound), one line each naming the step or the rollback check.
pub fn secrets_in_plan_argv(plan: &Plan) -> Vec<String> {
    let none = BTreeMap::new();
    let mut out = Vec::new();
    for step in &plan.steps {
        for (key, action) in [("action", Some(&step.action)), ("undo", step.undo.as_ref())] {
            let Some(action) = action else { continue };
            for (p, secret, prog) in in_action_argv(action, &none) {
                out.push(format!(
                    "step {} {key}.{p}: {}",
                    step.key,
                    message(&secret, &prog)
                ));
            }
        }
    }
    for (i, v) in plan.rollback.verify.iter().enumerate() {
        let Some(check) = &v.check else { continue };
        for (p, secret, prog) in in_check_argv(check, &none) {
            out.push(format!(
                "rollback.verify[{i}].check.{p}: {}",
                message(&secret, &prog)
            ));
        }
    }
    out
}

/// Print `check`'s warnings as `check` does (`file:line:col: warning: ...`), on stderr, then
/// what happens anyway: `run` and `resume` warn and go on; `check --strict` refuses.
pub fn print_warnings(diags: &Diagnostics, goes_on: bool) {
    for w in diags.iter() {
        crate::eprintln_clean!(
            "{}:{}:{}: warning: {}",
            w.file.display(),
            w.line,
            w.col,
            w.message
        );
    }
    if goes_on && !diags.is_empty() {
        crate::eprintln_clean!("{GOES_ON}");
    }
}

/// What `run` and `resume` add to the warnings: they do not refuse.
pub const GOES_ON: &str =
    "(the session runs anyway; `flightdeck check --strict` refuses a secret in a command line)";

/// Secrets a `call` (a step's action or undo, or a rollback verification) hands to the
/// target's binding `name` as arguments it puts in its argv, said at `at.args.<arg>`.
fn call_args(
    diags: &mut Diagnostics,
    lp: &LoadedProcedure,
    at: &str,
    target: Option<(&Path, &Target)>,
    name: &str,
    args: &BTreeMap<String, String>,
    vars: &BTreeMap<&str, &str>,
) {
    let Some(bound) = target.and_then(|(_, t)| t.actions.get(name)) else {
        return;
    };
    for (arg, secret, prog) in through_call_args(bound, args, vars) {
        diags.push(Diagnostic::new(
            &lp.path,
            lp.pos(&format!("{at}.args.{arg}")),
            format!(
                "{} (target binding `{name}` puts `${{arg.{arg}}}` in its argv)",
                message(&secret, &prog)
            ),
        ));
    }
}

fn message(secret: &str, prog: &str) -> String {
    format!(
        "secret `{secret}` would be in the command line of `{prog}`, which every user of this \
         machine can read (`ps`); give it to the command in its environment \
         (`env = {{ NAME = \"${{secret.{secret}}}\" }}`) or on its standard input \
         (`stdin = \"${{secret.{secret}}}\"`) instead"
    )
}

/// The secrets `s` holds: `${secret.NAME}` itself, or a variable whose value holds one.
fn secrets_of(s: &str, vars: &BTreeMap<&str, &str>) -> BTreeSet<String> {
    let direct = |s: &str| -> Vec<String> {
        references(s)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| n.strip_prefix("secret.").map(str::to_string))
            .collect()
    };
    let mut out: BTreeSet<String> = direct(s).into_iter().collect();
    for name in references(s).unwrap_or_default() {
        if let Some(v) = vars.get(name.as_str()) {
            out.extend(direct(v));
        }
    }
    out
}

/// `(path of the argv item, secret, program)` for each secret in a run action's or inline
/// check's argv.
fn in_action_argv(a: &Action, vars: &BTreeMap<&str, &str>) -> Vec<(String, String, String)> {
    let prog = match a {
        Action::Run { argv, .. } => argv.first(),
        Action::Wait(w) => match &w.check {
            Some(Check::Run { argv, .. }) => argv.first(),
            _ => None,
        },
        _ => None,
    };
    let Some(prog) = prog else { return Vec::new() };
    let mut found = Vec::new();
    visit_action(a, &mut |p, v| {
        if is_argv(p) {
            for s in secrets_of(v, vars) {
                found.push((p.to_string(), s, prog.clone()));
            }
        }
    });
    found
}

fn in_check_argv(c: &Check, vars: &BTreeMap<&str, &str>) -> Vec<(String, String, String)> {
    let Check::Run { argv, .. } = c else {
        return Vec::new();
    };
    let prog = argv.first().cloned().unwrap_or_default();
    let mut found = Vec::new();
    visit_check(c, &mut |p, v| {
        if is_argv(p) {
            for s in secrets_of(v, vars) {
                found.push((p.to_string(), s, prog.clone()));
            }
        }
    });
    found
}

/// `(arg name, secret, program)` for a call argument holding a secret that the binding puts
/// in its argv as `${arg.NAME}`.
fn through_call_args(
    bound: &Action,
    args: &BTreeMap<String, String>,
    vars: &BTreeMap<&str, &str>,
) -> Vec<(String, String, String)> {
    let Action::Run { argv, .. } = bound else {
        return Vec::new();
    };
    let prog = argv.first().cloned().unwrap_or_default();
    let used: BTreeSet<String> = argv
        .iter()
        .flat_map(|a| references(a).unwrap_or_default())
        .filter_map(|n| n.strip_prefix("arg.").map(str::to_string))
        .collect();
    let mut found = Vec::new();
    for (name, value) in args {
        if used.contains(name) {
            for s in secrets_of(value, vars) {
                found.push((name.clone(), s, prog.clone()));
            }
        }
    }
    found
}

fn is_argv(path: &str) -> bool {
    path.starts_with("argv[") || path.starts_with("check.argv[")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_found_directly_and_through_a_variable() {
        let vars: BTreeMap<&str, &str> = [("auth", "Basic ${secret.pw}"), ("host", "db1")]
            .into_iter()
            .collect();
        assert_eq!(
            secrets_of("-u${secret.tok}", &vars),
            BTreeSet::from(["tok".to_string()])
        );
        assert_eq!(
            secrets_of("-H=${auth}", &vars),
            BTreeSet::from(["pw".to_string()])
        );
        assert!(secrets_of("${host} $${secret.literal}", &vars).is_empty());
    }
}
