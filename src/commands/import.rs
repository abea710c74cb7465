//! `flightdeck import RUNBOOK [-o FILE]`: draft a procedure from a runbook (see `crate::import`).

use std::io::Write;
use std::process::ExitCode;

use crate::cli::ImportArgs;
use crate::commands::check::EXIT_INVALID;
use crate::import::{import_file, ImportError, Options};

pub fn run(args: &ImportArgs) -> ExitCode {
    let opts = Options {
        format: args.format,
        name: args.name.clone(),
        product: args.product.clone(),
    };
    let draft = match import_file(&args.runbook, &opts) {
        Ok(d) => d,
        Err(e) => {
            crate::eprintln_clean!("{e}");
            return match e {
                ImportError::DraftInvalid { .. } => ExitCode::FAILURE,
                _ => ExitCode::from(EXIT_INVALID),
            };
        }
    };
    let commands: usize = draft.steps.iter().map(|s| s.commands.len()).sum();
    let summary = format!(
        "{} step{} from {} ({commands} command{}); review every `# REVIEW:` line, then `flightdeck check`",
        draft.steps.len(),
        if draft.steps.len() == 1 { "" } else { "s" },
        args.runbook.display(),
        if commands == 1 { "" } else { "s" },
    );
    match &args.output {
        None => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out
                .write_all(draft.toml.as_bytes())
                .and_then(|()| out.flush())
            {
                crate::eprintln_clean!("flightdeck import: cannot write the draft: {e}");
                return ExitCode::FAILURE;
            }
            crate::eprintln_clean!("{summary}");
        }
        Some(path) => {
            let file = if args.force {
                std::fs::File::create(path)
            } else {
                std::fs::File::create_new(path)
            };
            let written = file.and_then(|mut f| f.write_all(draft.toml.as_bytes()));
            if let Err(e) = written {
                let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
                    " (--force to overwrite it)"
                } else {
                    ""
                };
                crate::eprintln_clean!("flightdeck import: {}: {e}{hint}", path.display());
                return ExitCode::FAILURE;
            }
            crate::eprintln_clean!("{}: {summary}", path.display());
        }
    }
    ExitCode::SUCCESS
}
