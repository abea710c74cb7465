//! The detached server for real: this test binary re-executes itself (running only the ignored
//! `child_server` test) as a detached session server, then joins it over the socket, drives the
//! session to its end and watches the server go away on its own.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use flightdeck::engine::event::AutoConfirm;
use flightdeck::engine::session::{self, EngineConfig};
use flightdeck::engine::state::StepStatus;
use flightdeck::engine::{Command, SessionState};
use flightdeck::pairing::client::{connect_socket, hello};
use flightdeck::pairing::runtime_dir::{self, ENV_OVERRIDE};
use flightdeck::pairing::server::{serve_until_done, ServeOptions};
use flightdeck::pairing::{daemon, names};
use flightdeck::plan::test_plans::{self, empty_target, run, step};
use flightdeck::plan::Plan;

/// Tells the re-executed binary which session to serve.
const CHILD_NAME: &str = "FLIGHTDECK_TEST_CHILD_SESSION";
const DEADLINE: Duration = Duration::from_secs(30);

fn plan() -> Plan {
    test_plans::plan(
        "daemon-test",
        vec![step("a", run(&["echo", "from the daemon"]))],
    )
}

/// The server side, run only in the re-executed child.
#[tokio::test]
#[ignore = "run by a_detached_server_serves_then_leaves_on_its_own as its server process"]
async fn child_server() {
    // Run by hand (`--ignored`) it has no session to serve.
    let (Ok(name), Some(dir)) = (std::env::var(CHILD_NAME), std::env::var_os(ENV_OVERRIDE)) else {
        eprintln!("child_server only runs as the server of the daemon test");
        return;
    };
    let dir = PathBuf::from(dir);
    let task = session::start(EngineConfig {
        plan: plan(),
        target: empty_target(),
        auto: AutoConfirm::default(),
        operator: "daemon".into(),
        // Beside the runtime dir, not in it: the journal's parent is created 0755.
        journal: dir.with_extension("jsonl"),
        observe: false,
        time_scale: 1.0,
    })
    .unwrap();
    let end = serve_until_done(
        task,
        &name,
        ServeOptions::default(),
        Duration::from_millis(100),
    )
    .await
    .unwrap();
    assert!(end.is_finished());
}

#[tokio::test]
async fn a_detached_server_serves_then_leaves_on_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rt");
    let name = names::generate();
    // SAFETY: the only test of this binary that runs by default; the child inherits both.
    unsafe {
        std::env::set_var(ENV_OVERRIDE, &dir);
        std::env::set_var(CHILD_NAME, &name);
    }
    let exe = std::env::current_exe().unwrap();
    let args: Vec<OsString> = ["--exact", "child_server", "--ignored", "--test-threads=1"]
        .iter()
        .map(OsString::from)
        .collect();
    let info = runtime_dir::info_path(&dir, &name);
    let pid =
        tokio::task::spawn_blocking(move || daemon::spawn_program(&exe, &args, &info, DEADLINE))
            .await
            .unwrap()
            .unwrap();
    // SAFETY: getsid only reads.
    assert_eq!(
        unsafe { libc::getsid(pid as libc::pid_t) },
        pid as libc::pid_t
    );

    let socket = runtime_dir::socket_path(&dir, &name);
    let mut c = connect_socket(&socket, hello("alice", None, true, 0))
        .await
        .unwrap();
    let mut state = SessionState::empty();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut confirmed = false;
    while !state.is_finished() {
        let e = tokio::time::timeout_at(deadline, c.events.recv())
            .await
            .expect("the session went on")
            .expect("the stream stayed open");
        state.apply(&e);
        if let (Some(p), false) = (state.prompt, confirmed) {
            c.commands
                .send(Command::Confirm {
                    prompt: p.id,
                    phrase: None,
                })
                .await
                .unwrap();
            confirmed = true;
        }
    }
    assert_eq!(state.steps[0].status, StepStatus::Succeeded);
    assert!(state.steps[0]
        .output
        .iter()
        .any(|l| l.line == "from the daemon"));
    // Leaving a finished session lets the server stop and clean up after its grace period.
    drop(c);
    while socket.exists() || process_exists(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server did not stop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!runtime_dir::info_path(&dir, &name).exists());
}

fn process_exists(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence (the reaper thread collects the child).
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}
