//! `flightdeck check PROC [--target T]`: validate, print every problem, run nothing.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::CheckArgs;
use crate::plan::expand::{build_plan, PlanOptions};
use crate::procedure::diag::Diagnostics;
use crate::procedure::load::{load_procedure, LoadedProcedure};
use crate::procedure::validate::validate;
use crate::target::Target;
use crate::target_load::load_target;

/// Exit code for invalid input (files that do not check).
pub const EXIT_INVALID: u8 = 2;

pub fn run(args: &CheckArgs) -> ExitCode {
    let (lp, target) = match load_checked(&args.procedure, args.target.as_deref()) {
        Ok(v) => v,
        Err(diags) => {
            eprintln!("{diags}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let n = lp.procedure.steps.len();
    let expansion = match &target {
        Some(t) => match build_plan(&lp, t, &PlanOptions::default()) {
            Ok(plan) => format!("{} after expansion", plan.steps.len()),
            Err(e) => format!("not expanded: {e}"),
        },
        None => "pass --target to expand".to_string(),
    };
    println!(
        "ok: {}: {n} step{} ({expansion})",
        lp.procedure.name,
        if n == 1 { "" } else { "s" }
    );
    ExitCode::SUCCESS
}

/// Load a procedure and optionally a target, then check them against each other. Every problem
/// of both files is returned at once.
pub fn load_checked(
    procedure: &Path,
    target: Option<&Path>,
) -> Result<(LoadedProcedure, Option<Target>), Diagnostics> {
    let mut diags = Diagnostics::default();
    let lp = load_procedure(procedure).map_err(|d| diags.extend(d)).ok();
    let target = match target {
        Some(t) => load_target(t).map_err(|d| diags.extend(d)).ok(),
        None => None,
    };
    if let (Some(lp), Some(t)) = (&lp, &target) {
        diags.extend(validate(lp, Some(t)));
    }
    match lp {
        Some(lp) if diags.is_empty() => Ok((lp, target)),
        _ => Err(diags),
    }
}
