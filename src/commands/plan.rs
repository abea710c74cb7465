//! `flightdeck plan PROC --target T [--from V] [--to V] [--format text|json|md]`: print the
//! expanded plan.

use std::process::ExitCode;

use super::check::{load_checked, EXIT_INVALID};
use crate::cli::PlanArgs;
use crate::plan::expand::{build_plan, PlanOptions};
use crate::plan::export::{plan_json, plan_markdown, PlanFormat};
use crate::plan::render::render_plan;
use crate::terminal_text::lines;

/// `plan --lab` starts a throwaway lab for its target, plans against it, and stops it.
pub async fn run_async(args: PlanArgs) -> ExitCode {
    if !args.lab {
        return run(&args);
    }
    let req = super::run::LabRequest {
        // The size the procedure is written for (super::run::lab_nodes).
        nodes: None,
        load: 0,
        lb: &args.lb,
        faults: &[],
        personality: args.personality.as_deref(),
    };
    let (lab, target) =
        match super::run::start_lab(&args.procedure, &req, &args.from, &args.to).await {
            Ok(x) => x,
            Err(code) => return code,
        };
    let with_target = PlanArgs {
        target: Some(target),
        lab: false,
        personality: None,
        ..args
    };
    let code = run(&with_target);
    lab.shutdown().await;
    code
}

pub fn run(args: &PlanArgs) -> ExitCode {
    let Some(target_path) = args.target.as_deref() else {
        eprintln!("flightdeck plan needs --target");
        return ExitCode::from(EXIT_INVALID);
    };
    let (lp, target) = match load_checked(&args.procedure, Some(target_path)) {
        Ok((lp, Some(t))) => (lp, t),
        Ok((_, None)) => return ExitCode::from(EXIT_INVALID),
        Err(diags) => {
            crate::eprintln_clean!("{diags}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let opts = PlanOptions {
        from_version: args.from.clone(),
        to_version: args.to.clone(),
        catalog_dir: Default::default(),
    };
    match build_plan(&lp, &target, &opts) {
        Ok(plan) => {
            match args.format {
                // Step titles, commands and node names come from the files: shown without
                // their escape sequences.
                PlanFormat::Text => print!("{}", lines(&render_plan(&plan, &target))),
                PlanFormat::Md => print!("{}", lines(&plan_markdown(&plan, &target))),
                PlanFormat::Json => {
                    let doc = plan_json(&plan, &target);
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string())
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            crate::eprintln_clean!("{}: {e}", args.procedure.display());
            ExitCode::from(EXIT_INVALID)
        }
    }
}
