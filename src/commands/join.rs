//! `flightdeck join [NAME]` and `flightdeck sessions`: attach a cockpit to a live session
//! through its private socket.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::JoinArgs;
use crate::pairing::{client, registry};
use crate::tui::{self, AlertConfig, Theme, TuiExit, TuiOptions, TuiRole};

pub async fn run(args: JoinArgs) -> ExitCode {
    attach(Attach {
        name: args.name.as_deref(),
        label: args.label.as_deref(),
        want_driver: args.drive,
        take_control: args.take_control.as_deref(),
        theme: args.theme.as_deref(),
        alerts: args.alerts,
        demo: false,
    })
    .await
}

/// How a cockpit attaches to a live session.
#[derive(Debug, Clone, Copy)]
pub struct Attach<'a> {
    /// Session name (None: the only live one).
    pub name: Option<&'a str>,
    pub label: Option<&'a str>,
    pub want_driver: bool,
    /// Take control on joining, with this reason.
    pub take_control: Option<&'a str>,
    pub theme: Option<&'a str>,
    pub alerts: AlertConfig,
    /// The no-argument demo: `q` may end it, and ending it stops its server and lab.
    pub demo: bool,
}

/// Connect to session `name` and run the cockpit on it until the operator leaves. Leaving never
/// stops the session; ending the demo does.
pub async fn attach(a: Attach<'_>) -> ExitCode {
    let Attach {
        name,
        label,
        want_driver,
        take_control,
        theme,
        alerts,
        demo,
    } = a;
    let operator = super::operator_name();
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
    let session = info.name.clone();
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
        // A demo's session file says so: whoever joins it may end it.
        demo: (demo || info.demo).then(|| session.clone()),
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
        Ok(TuiExit::EndDemo) => {
            let pid = info.pid;
            let stopped = tokio::task::spawn_blocking(move || stop_server(pid)).await;
            println!("journal: {}", info.journal.display());
            match stopped {
                Ok(true) => {
                    println!("demo {session} ended; its session server and lab are stopped");
                    ExitCode::SUCCESS
                }
                _ => {
                    eprintln!(
                        "flightdeck: the demo's session server (pid {pid}) did not stop; \
                         its log: {}",
                        crate::logging::log_path().display()
                    );
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("flightdeck: the cockpit failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How long a session server may take to stop its engine and lab after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(20);
const STOP_POLL: Duration = Duration::from_millis(50);

/// Ask a session server to stop (SIGTERM: it stops serving, shuts its engine down and its lab
/// with it) and wait until it is gone. True once it is.
fn stop_server(pid: u32) -> bool {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    let pid = Pid::from_raw(raw);
    if kill(pid, Signal::SIGTERM).is_err() {
        // Gone already (ESRCH), or not ours to signal.
        return kill(pid, None).is_err();
    }
    let until = Instant::now() + STOP_DEADLINE;
    while Instant::now() < until {
        if !alive(raw) {
            return true;
        }
        std::thread::sleep(STOP_POLL);
    }
    false
}

/// Whether `pid` still runs: it exists and is not a zombie waiting to be reaped (the server
/// is this process's child when the demo started it; a thread of ours reaps it).
fn alive(pid: i32) -> bool {
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
        return false;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

pub fn sessions() -> ExitCode {
    crate::pairing::registry::print_sessions();
    ExitCode::SUCCESS
}
