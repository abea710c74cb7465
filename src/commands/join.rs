//! `flightdeck join [NAME]` and `flightdeck sessions`: attach a cockpit to a live session
//! through its private socket.

use std::process::ExitCode;

use crate::cli::JoinArgs;
use crate::pairing::{client, registry};
use crate::tui::{self, AlertConfig, Theme, TuiExit, TuiOptions, TuiRole};

pub async fn run(args: JoinArgs) -> ExitCode {
    attach(
        args.name.as_deref(),
        args.label.as_deref(),
        args.drive,
        args.take_control.as_deref(),
        args.theme.as_deref(),
        args.alerts,
    )
    .await
}

/// Connect to session `name` and run the cockpit on it until the operator leaves. Leaving never
/// stops the session.
pub async fn attach(
    name: Option<&str>,
    label: Option<&str>,
    want_driver: bool,
    take_control: Option<&str>,
    theme: Option<&str>,
    alerts: AlertConfig,
) -> ExitCode {
    let operator = super::run::operator_name();
    // Resolved here rather than inside `connect`: without a NAME the title and the rejoin
    // hint need the name of the session actually joined.
    let wanted = name.map(str::to_string);
    let info = match tokio::task::spawn_blocking(move || registry::resolve(wanted.as_deref())).await
    {
        Ok(Ok(info)) => info,
        Ok(Err(e)) => {
            eprintln!("flightdeck: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("flightdeck: looking up sessions failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let hello = client::hello(&operator, label, want_driver, 0);
    let client = match client::connect_socket(&info.socket, hello).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("flightdeck: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(reason) = take_control {
        let take = crate::engine::Command::TakeControl {
            reason: Some(reason.to_string()),
        };
        if let Err(e) = client.commands.send(take).await {
            eprintln!("flightdeck: cannot take control: {e}");
            return ExitCode::FAILURE;
        }
    }
    let want_driver = want_driver || take_control.is_some();
    let (theme, warning) = Theme::resolve(theme);
    let session = info.name;
    let opts = TuiOptions {
        theme,
        alerts,
        // The cockpit follows the session's record of who drives; this is where it starts.
        role: if want_driver {
            TuiRole::Driver
        } else {
            TuiRole::Observer
        },
        title: format!("flightdeck · {session}"),
    };
    let result = tui::run(client, opts).await;
    if let Some(w) = warning {
        eprintln!("theme: {w}");
    }
    match result {
        Ok(TuiExit::Left) => {
            println!("left session {session}; it goes on. Rejoin with: flightdeck join {session}");
            ExitCode::SUCCESS
        }
        Ok(TuiExit::SessionEnded) => {
            println!("session {session} ended");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flightdeck: the cockpit failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn sessions() -> ExitCode {
    crate::pairing::registry::print_sessions();
    ExitCode::SUCCESS
}
