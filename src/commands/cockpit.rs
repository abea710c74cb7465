//! Opening the cockpit on an in-process session (`run --foreground`, `resume`).

use std::process::ExitCode;

use crate::engine::session::EngineTask;
use crate::tui::{self, AlertConfig, Theme, TuiOptions, TuiRole};

/// Attach this terminal as the driver, run the cockpit, and stop the engine when the operator
/// leaves (a foreground session lives as long as its cockpit; `resume` picks it up again).
pub async fn attach_local(task: EngineTask, theme: Option<&str>, alerts: AlertConfig) -> ExitCode {
    let (theme, warning) = Theme::resolve(theme);
    if let Some(w) = &warning {
        tracing::warn!("{w}");
    }
    let journal = task.handle.journal_path().to_path_buf();
    // The view starts from the engine's own fold: a resumed history is not folded twice.
    let (state, client) = match task
        .handle
        .attach_folded(&super::operator_name(), true)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("flightdeck: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = TuiOptions {
        theme,
        alerts,
        role: TuiRole::Driver,
        title: "flightdeck".into(),
        demo: None,
    };
    let result = tui::run_folded(client, state, opts).await;
    task.handle.shutdown().await;
    let state = task.join.await;
    if let Some(w) = warning {
        eprintln!("theme: {w}");
    }
    match result {
        Err(e) => {
            eprintln!("flightdeck: the cockpit failed: {e:#}");
            eprintln!("journal: {}", journal.display());
            ExitCode::FAILURE
        }
        Ok(_) => {
            if let Ok(Ok(s)) = &state {
                println!("{}", crate::headless::figures(s));
                if !s.is_finished() {
                    println!(
                        "left the session unfinished; pick it up with: flightdeck resume {}",
                        journal.display()
                    );
                }
            }
            println!("journal: {}", journal.display());
            ExitCode::SUCCESS
        }
    }
}
