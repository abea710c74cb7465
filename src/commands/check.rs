//! `flightdeck check PROC [--target T]`: validate, print every problem, run nothing.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::CheckArgs;
use crate::plan::expand::{build_plan, PlanError, PlanOptions};
use crate::procedure::diag::Diagnostics;
use crate::procedure::load::{load_procedure, LoadedProcedure};
use crate::procedure::secret_argv::secrets_in_argv;
use crate::procedure::validate::validate;
use crate::target::Target;
use crate::target_load::load_target;

/// Exit code for invalid input (files that do not check).
pub const EXIT_INVALID: u8 = 2;

pub fn run(args: &CheckArgs) -> ExitCode {
    match summary(args) {
        Ok(Checked { line, warnings }) => {
            crate::procedure::secret_argv::print_warnings(&warnings, false);
            println!("{}", crate::terminal_text::lines(&line));
            ExitCode::SUCCESS
        }
        Err(problems) => {
            crate::eprintln_clean!("{problems}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

/// Files that check: the `ok: ...` line and what they do that works but should not.
#[derive(Debug)]
pub struct Checked {
    pub line: String,
    pub warnings: Diagnostics,
}

/// The `ok: ...` line and the warnings, or every problem found (one per line). `--strict`
/// makes every warning a problem.
pub fn summary(args: &CheckArgs) -> Result<Checked, String> {
    let (lp, target) =
        load_checked(&args.procedure, args.target.as_deref()).map_err(|d| d.to_string())?;
    let warnings = secrets_in_argv(&lp, args.target.as_deref().zip(target.as_ref()));
    if args.strict && !warnings.is_empty() {
        return Err(format!("{warnings}\n(refused by --strict)"));
    }
    let n = lp.procedure.steps.len();
    let expansion = match &target {
        Some(t) => match build_plan(&lp, t, &PlanOptions::default()) {
            Ok(plan) => format!("{} after expansion", plan.steps.len()),
            // Versions may legitimately be unknown until `plan --from/--to`; anything else the
            // expansion finds is a real problem with these files.
            Err(e @ (PlanError::UnknownFromVersion | PlanError::UnknownToVersion)) => {
                format!("not expanded: {e}")
            }
            Err(e) => return Err(format!("{}: {e}", args.procedure.display())),
        },
        None => "pass --target to expand".to_string(),
    };
    let lab = lab_personality(&args.procedure, &lp.procedure.product)?;
    let line = format!(
        "ok: {}: {n} step{} ({expansion}){lab}",
        lp.procedure.name,
        if n == 1 { "" } else { "s" }
    );
    Ok(Checked { line, warnings })
}

/// A product the lab does not have built in trains on `labs/<product>.toml` next to the
/// procedure: when that file exists it is checked too (its problems at `file:line:col`), and
/// the `ok` line names it.
fn lab_personality(procedure: &Path, product: &str) -> Result<String, String> {
    if product.parse::<crate::lab::Product>().is_ok() {
        return Ok(String::new());
    }
    let path = crate::lab::data::default_path(procedure, product);
    if !path.exists() {
        return Ok(String::new());
    }
    crate::lab::data::load(&path).map_err(|d| d.to_string())?;
    Ok(format!("; lab personality {}", path.display()))
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
