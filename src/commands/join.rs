//! `flightdeck join [NAME]` and `flightdeck sessions`: attach a cockpit to a live session
//! through its private socket.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::JoinArgs;
use crate::pairing::registry::SessionInfo;
use crate::pairing::runtime_dir::current_uid;
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
            crate::eprintln_clean!("flightdeck: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            crate::eprintln_clean!("flightdeck: looking up sessions failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let hello = client::hello(&operator, label, want_driver, 0);
    // Refused unless the socket's server is the process and user the session file names.
    let client = match client::connect_session(&info, hello).await {
        Ok(c) => c,
        Err(e) => {
            crate::eprintln_clean!("flightdeck: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(reason) = take_control {
        let take = crate::engine::Command::TakeControl {
            reason: Some(reason.to_string()),
        };
        if let Err(e) = client.commands.send(take).await {
            crate::eprintln_clean!("flightdeck: cannot take control: {e}");
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
        // A demo's session file says so: its owner may end it from any cockpit. Ending it
        // signals the server's pid, so only for a session of this user's own (and
        // `connect_session` checked that pid is the socket's server).
        demo: may_end_demo(demo, &info, current_uid()).then(|| session.clone()),
    };
    let result = tui::run(client, opts).await;
    if let Some(w) = warning {
        crate::eprintln_clean!("theme: {w}");
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
        Ok(TuiExit::EndDemo) if may_end_demo(demo, &info, current_uid()) => {
            let pid = info.pid;
            let stopped = tokio::task::spawn_blocking(move || stop_server(pid)).await;
            println!("journal: {}", info.journal.display());
            match stopped {
                Ok(true) => {
                    println!("demo {session} ended; its session server and lab are stopped");
                    ExitCode::SUCCESS
                }
                _ => {
                    crate::eprintln_clean!(
                        "flightdeck: the demo's session server (pid {pid}) did not stop; \
                         its log: {}",
                        crate::logging::log_path().display()
                    );
                    ExitCode::FAILURE
                }
            }
        }
        Ok(TuiExit::EndDemo) => {
            // Not offered for this session; nothing is signalled.
            println!("left session {session}; it goes on");
            ExitCode::SUCCESS
        }
        Err(e) => {
            crate::eprintln_clean!("flightdeck: the cockpit failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether this cockpit may end the session as a demo (stop its server with SIGTERM): it is a
/// demo (this command started it, or its session file says so) and it is `me`'s own session.
/// Another user's session file can say `"demo": true` and name any pid.
pub fn may_end_demo(started_as_demo: bool, info: &SessionInfo, me: u32) -> bool {
    (started_as_demo || info.demo) && info.owner_uid == me
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ones_own_demo_can_be_ended() {
        let info = |demo: bool, owner_uid: u32| SessionInfo {
            name: "demo-1".into(),
            procedure: "p".into(),
            target: "t".into(),
            journal: "/j".into(),
            started: "2026-01-01T10:00:00Z".into(),
            pid: 1,
            owner: "someone".into(),
            owner_uid,
            socket: "/x/demo-1.sock".into(),
            alive: true,
            demo,
        };
        assert!(may_end_demo(false, &info(true, 1000), 1000));
        assert!(may_end_demo(true, &info(false, 1000), 1000));
        assert!(!may_end_demo(false, &info(false, 1000), 1000));
        // Another user's file saying "demo": its pid is never signalled.
        assert!(!may_end_demo(false, &info(true, 1001), 1000));
        assert!(!may_end_demo(true, &info(true, 1001), 1000));
    }
}
