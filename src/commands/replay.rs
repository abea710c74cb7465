//! `flightdeck replay JOURNAL`: a recorded session in the cockpit, read-only, on its original
//! timing (idle gaps compressed) with player keys (pause, speed, step, seek), or as a quiz for
//! trainees.

use std::process::ExitCode;

use crate::cli::ReplayArgs;
use crate::replay::player::{self, ReplayOptions};
use crate::tui::{self, Theme, TuiOptions, TuiRole};

pub async fn run(args: ReplayArgs) -> ExitCode {
    if args.quiz {
        let journal = args.journal.clone();
        let out = args.quiz_out.clone();
        return tokio::task::spawn_blocking(move || {
            crate::replay::quiz::run(&journal, out.as_deref())
        })
        .await
        .unwrap_or(ExitCode::FAILURE);
    }
    let opts = ReplayOptions {
        speed: args.speed,
        from_step: args.from.clone(),
        idle_cap_ms: args.idle_cap.saturating_mul(1000),
    };
    let (client, control) = match player::open(&args.journal, opts) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("flightdeck replay: {e}");
            return ExitCode::from(2);
        }
    };
    let (theme, _) = Theme::resolve(args.theme.as_deref());
    let opts = TuiOptions {
        theme,
        role: TuiRole::Replay,
        title: format!("replay · {}", args.journal.display()),
    };
    let result = tui::run_replay(client, opts, control).await;
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flightdeck: the cockpit failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
