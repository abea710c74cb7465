//! Opening the cockpit on an in-process session (`run --foreground`, `resume`).

use std::process::ExitCode;

use crate::engine::session::{EngineError, EngineTask};
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
            crate::eprintln_clean!("flightdeck: {e}");
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
        crate::eprintln_clean!("theme: {w}");
    }
    // The cockpit closed because the engine stopped: the operator reads why here (a journal
    // that could not be written or fsynced names its file and the OS's reason), never a quiet
    // exit as if they had left.
    let failed = engine_failure(&state);
    if let Some(why) = &failed {
        eprintln!("flightdeck: {why}");
        eprintln!(
            "once the cause is fixed, pick the session up with: flightdeck resume {} (a step \
             that was running shows as interrupted; the last decision may or may not have \
             reached the file before the failure: resume shows what the journal holds)",
            journal.display()
        );
    }
    match result {
        Err(e) => {
            crate::eprintln_clean!("flightdeck: the cockpit failed: {e:#}");
            crate::eprintln_clean!("journal: {}", journal.display());
            ExitCode::FAILURE
        }
        Ok(_) if failed.is_some() => ExitCode::FAILURE,
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

/// Why the engine stopped, when it did not end the way it should: an error (its journal could
/// not be written or fsynced), or its task failing.
fn engine_failure(
    state: &Result<Result<crate::engine::SessionState, EngineError>, tokio::task::JoinError>,
) -> Option<String> {
    match state {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!("the session stopped: {e}")),
        Err(e) => Some(format!("the session's engine failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal that cannot be fsynced stops the engine; the operator is told what failed,
    /// where.
    #[test]
    fn an_engine_stopped_by_its_journal_says_why() {
        let e = EngineError::Journal(crate::journal::JournalError::Io {
            path: "/var/lib/flightdeck/j.jsonl".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        });
        let why = engine_failure(&Ok(Err(e))).expect("a failure");
        assert!(
            why.contains("/var/lib/flightdeck/j.jsonl") && why.contains("No space left on device"),
            "{why}"
        );
        assert_eq!(
            engine_failure(&Ok(Ok(crate::engine::SessionState::empty()))),
            None
        );
    }
}
