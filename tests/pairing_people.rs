//! People in a shared session, over the real socket: who may run a step, who the journal says
//! did it, and the two-person rule counted in users the kernel names (peer uid), never in the
//! labels clients choose. Cross-user cases need a second real Unix user (`common::users`).

mod common;

use common::plans::{empty_target, plan, sh, step};
use common::users::{connect_as, other_user};

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flightdeck::engine::client::SessionClient;
use flightdeck::engine::event::AutoConfirm;
use flightdeck::engine::session::{self, EngineConfig, EngineTask};
use flightdeck::engine::state::StepStatus;
use flightdeck::engine::{Command, Event, SessionState};
use flightdeck::pairing::client::{connect_socket, hello, join_stream};
use flightdeck::pairing::server::{serve, Limits, ServeOptions, ServerGuard};
use flightdeck::plan::Plan;

const DEADLINE: Duration = Duration::from_secs(20);

struct Served {
    task: EngineTask,
    guard: ServerGuard,
    journal: PathBuf,
    tmp: tempfile::TempDir,
}

async fn served(plan: Plan, allow_gid: Option<u32>) -> Served {
    served_with(plan, allow_gid, Limits::default()).await
}

async fn served_with(plan: Plan, allow_gid: Option<u32>, limits: Limits) -> Served {
    let tmp = tempfile::tempdir().unwrap();
    // Another user must be able to reach the (group-shared) runtime directory inside.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let journal = tmp.path().join("j.jsonl");
    let task = session::start(EngineConfig {
        plan,
        target: empty_target(),
        auto: AutoConfirm::default(),
        operator: "tester".into(),
        journal: journal.clone(),
        observe: false,
        time_scale: 1.0,
    })
    .unwrap();
    let guard = serve(
        task.handle.clone(),
        "people",
        ServeOptions {
            allow_group: allow_gid.map(|g| g.to_string()),
            runtime_dir: Some(tmp.path().join("rt")),
            recheck_every: None,
            limits,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    Served {
        task,
        guard,
        journal,
        tmp,
    }
}

struct View {
    client: SessionClient,
    state: SessionState,
}

impl View {
    async fn join(socket: &Path, label: &str, driver: bool) -> View {
        let client = connect_socket(socket, hello(label, None, driver, 0))
            .await
            .unwrap();
        View {
            client,
            state: SessionState::empty(),
        }
    }

    /// Join over a connection the other user's process made.
    async fn join_as(user: &common::users::OtherUser, socket: &Path, label: &str) -> View {
        let (u, s) = (user.clone(), socket.to_path_buf());
        let std_stream = tokio::task::spawn_blocking(move || connect_as(&u, &s))
            .await
            .unwrap()
            .expect("the other user connects");
        std_stream.set_nonblocking(true).unwrap();
        let stream = tokio::net::UnixStream::from_std(std_stream).unwrap();
        let client = join_stream(stream, socket, hello(label, None, false, 0))
            .await
            .unwrap();
        View {
            client,
            state: SessionState::empty(),
        }
    }

    async fn until(&mut self, what: &str, f: impl Fn(&SessionState) -> bool) -> &SessionState {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !f(&self.state) {
            match tokio::time::timeout_at(deadline, self.client.events.recv()).await {
                Ok(Some(e)) => self.state.apply(&e),
                Ok(None) => panic!("the stream closed waiting for {what}"),
                Err(_) => panic!(
                    "timed out waiting for {what}; steps {:?} prompt {:?} operators {:?}",
                    self.state
                        .steps
                        .iter()
                        .map(|s| s.status)
                        .collect::<Vec<_>>(),
                    self.state.prompt,
                    self.state.operators
                ),
            }
        }
        &self.state
    }

    async fn send(&self, cmd: Command) -> Result<(), flightdeck::engine::Rejected> {
        self.client.commands.send(cmd).await
    }
}

fn confirm(prompt: u64) -> Command {
    Command::Confirm {
        prompt,
        phrase: None,
    }
}

/// Every journaled event of the session, as written.
fn journaled(path: &Path) -> Vec<Event> {
    flightdeck::journal::read(path)
        .unwrap()
        .events
        .into_iter()
        .map(|s| s.event)
        .collect()
}

#[tokio::test]
async fn an_observers_approval_never_runs_an_ordinary_step() {
    let s = served(plan("people", vec![step("a", sh("true"))]), None).await;
    let socket = s.guard.socket_path();
    let canary = s.tmp.path().join("ran");
    let mut alice = View::join(&socket, "alice", true).await;
    let mut bob = View::join(&socket, "bob", false).await;
    let both = |s: &SessionState| s.prompt.is_some() && s.operators.len() == 2;
    let id = alice.until("prompt", both).await.prompt.unwrap().id;
    bob.until("prompt", both).await;

    let e = bob.send(Command::Approve { prompt: id }).await.unwrap_err();
    assert!(e.0.contains("does not ask for approvals"), "{e}");
    // The driver's own approve is no shortcut either.
    let e = alice
        .send(Command::Approve { prompt: id })
        .await
        .unwrap_err();
    assert!(e.0.contains("does not ask for approvals"), "{e}");
    let st = s.task.handle.snapshot().await.unwrap();
    assert_eq!(st.steps[0].status, StepStatus::Awaiting);
    assert_eq!(st.steps[0].attempts, 0);
    assert!(!canary.exists());
    assert!(!journaled(&s.journal)
        .iter()
        .any(|e| matches!(e, Event::ActionStarted { .. } | Event::Confirmed { .. })));

    // Only the driver's confirm runs it.
    alice.send(confirm(id)).await.unwrap();
    alice.until("finished", SessionState::is_finished).await;
}

#[tokio::test]
async fn the_same_user_in_a_second_terminal_is_not_a_second_approval() {
    let mut two = step("stop", sh("true"));
    two.approvals = 2;
    let s = served(plan("people", vec![two]), None).await;
    let socket = s.guard.socket_path();
    let me = flightdeck::engine::identity::Identity::current().user;
    let mut alice = View::join(&socket, &me, true).await;
    let mut carol = View::join(&socket, "carol", false).await;
    let both = |s: &SessionState| s.prompt.is_some() && s.operators.len() == 2;
    let id = alice.until("prompt", both).await.prompt.unwrap().id;
    let st = carol.until("prompt", both).await;
    // The label shows, with the real user next to it: nobody passes for someone else.
    assert!(st
        .operators
        .iter()
        .any(|o| o.name == format!("carol ({me})") && o.user == me));

    alice.send(confirm(id)).await.unwrap();
    carol
        .until("the driver's confirm on record", |s| {
            s.steps[0].driver_confirm.is_some()
        })
        .await;
    let e = carol
        .send(Command::Approve { prompt: id })
        .await
        .unwrap_err();
    assert!(e.0.contains("another user"), "{e}");
    let e = alice.send(confirm(id)).await.unwrap_err();
    assert!(e.0.contains("another user"), "{e}");
    let st = s.task.handle.snapshot().await.unwrap();
    assert_eq!(st.steps[0].status, StepStatus::Awaiting);
    assert_eq!(st.steps[0].approval_uids.len(), 1);
    assert!(!journaled(&s.journal)
        .iter()
        .any(|e| matches!(e, Event::ActionStarted { .. })));
}

#[tokio::test]
async fn two_person_steps_need_two_users_and_the_record_names_the_real_ones() {
    let Some(other) = other_user() else { return };
    let mut two = step("stop", sh("true"));
    two.approvals = 2;
    let s = served(plan("people", vec![two]), Some(other.gid)).await;
    let socket = s.guard.socket_path();
    let me = flightdeck::engine::identity::Identity::current().user;
    let mut driver = View::join(&socket, &me, true).await;
    // The other user labels himself as the driver's user: the label is only a display name.
    let mut peer = View::join_as(&other, &socket, &me).await;
    let both = |s: &SessionState| s.prompt.is_some() && s.operators.len() == 2;
    let id = driver.until("prompt", both).await.prompt.unwrap().id;
    let st = peer.until("prompt", both).await;
    let shown = st.operators.iter().find(|o| !o.driver).unwrap();
    assert_eq!(shown.user, other.name);
    assert_eq!(shown.uid, Some(other.uid));
    assert_eq!(shown.name, format!("{me} ({})", other.name));

    // An approval first: recorded, but nothing runs until the driver confirms.
    peer.send(Command::Approve { prompt: id }).await.unwrap();
    driver
        .until("the approval", |s| s.steps[0].approvals.len() == 1)
        .await;
    assert_eq!(
        s.task.handle.snapshot().await.unwrap().steps[0].status,
        StepStatus::Awaiting
    );
    peer.send(Command::Note {
        text: "looks right".into(),
    })
    .await
    .unwrap();
    driver.send(confirm(id)).await.unwrap();
    driver.until("finished", SessionState::is_finished).await;

    let events = journaled(&s.journal);
    let approved: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Approved { by, uid, .. } => Some((by.clone(), *uid)),
            _ => None,
        })
        .collect();
    assert_eq!(approved, vec![(other.name.clone(), Some(other.uid))]);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Confirmed { by, .. } if *by == me)));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Note { by, .. } if *by == other.name)));
    let report =
        flightdeck::report::render(&s.journal, flightdeck::report::ReportFormat::Md).unwrap();
    assert!(report.contains(&other.name), "{report}");
}

#[tokio::test]
async fn a_driver_confirm_on_record_runs_when_another_user_approves() {
    let Some(other) = other_user() else { return };
    let mut two = step("stop", sh("true"));
    two.approvals = 2;
    let s = served(plan("people", vec![two]), Some(other.gid)).await;
    let socket = s.guard.socket_path();
    let mut driver = View::join(&socket, "driver", true).await;
    let mut peer = View::join_as(&other, &socket, "peer").await;
    let both = |s: &SessionState| s.prompt.is_some() && s.operators.len() == 2;
    let id = driver.until("prompt", both).await.prompt.unwrap().id;
    peer.until("prompt", both).await;
    driver.send(confirm(id)).await.unwrap();
    peer.until("the confirm on record", |s| {
        s.steps[0].driver_confirm.is_some()
    })
    .await;
    assert_eq!(
        s.task.handle.snapshot().await.unwrap().steps[0].status,
        StepStatus::Awaiting
    );
    peer.send(Command::Approve { prompt: id }).await.unwrap();
    let st = peer.until("finished", SessionState::is_finished).await;
    assert_eq!(st.steps[0].status, StepStatus::Succeeded);
    let me = flightdeck::engine::identity::Identity::current().user;
    // The confirm that ran it is the driver's.
    assert_eq!(st.steps[0].confirmed_by, vec![me]);
}

#[tokio::test]
async fn a_retried_two_person_step_needs_a_new_approval() {
    use flightdeck::engine::state::PromptKindTag;
    let Some(other) = other_user() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // Fails the first time, passes the second.
    let flag = tmp.path().join("tried");
    let script = format!(
        "test -e '{f}' || {{ touch '{f}'; exit 1; }}",
        f = flag.display()
    );
    let mut two = step("stop", sh(&script));
    two.approvals = 2;
    let s = served(plan("people", vec![two]), Some(other.gid)).await;
    let socket = s.guard.socket_path();
    let me = flightdeck::engine::identity::Identity::current().user;
    let mut driver = View::join(&socket, "driver", true).await;
    let mut peer = View::join_as(&other, &socket, "peer").await;
    let both = |s: &SessionState| s.prompt.is_some() && s.operators.len() == 2;
    let first = driver.until("prompt", both).await.prompt.unwrap().id;
    peer.until("prompt", both).await;

    // First attempt: the driver's confirm and the other user's approval, counted once.
    driver.send(confirm(first)).await.unwrap();
    peer.send(Command::Approve { prompt: first }).await.unwrap();
    let st = driver
        .until("the failure", |s| {
            s.steps[0].status == StepStatus::Failed
                && s.prompt.is_some_and(|p| p.kind == PromptKindTag::Failed)
        })
        .await;
    assert_eq!(st.steps[0].attempts, 1);
    let failed = st.prompt.unwrap().id;
    // A failure is nothing to approve: the other user cannot pre-approve the retry.
    let e = peer
        .send(Command::Approve { prompt: failed })
        .await
        .unwrap_err();
    assert!(e.0.contains("nothing to approve"), "{e}");

    // The driver retries: that is one person; the approval of the first attempt is gone.
    driver.send(Command::Retry { step: 0 }).await.unwrap();
    let st = s.task.handle.snapshot().await.unwrap();
    assert_eq!(st.steps[0].status, StepStatus::Awaiting);
    assert_eq!(st.steps[0].attempts, 1, "the retry ran on the old approval");
    let my_uid = flightdeck::engine::identity::Identity::current().uid;
    assert_eq!(
        st.steps[0].approval_uids,
        vec![my_uid],
        "only the driver's retry"
    );
    assert_eq!(st.steps[0].approvals, vec![me.clone()]);
    let again = st.prompt.expect("the retry waits for another user").id;
    assert_ne!(again, first);
    // The first attempt's prompt is closed: approving it again counts for nothing.
    let e = peer
        .send(Command::Approve { prompt: first })
        .await
        .unwrap_err();
    assert!(e.0.contains("no longer open"), "{e}");
    let st = s.task.handle.snapshot().await.unwrap();
    assert_eq!(
        (st.steps[0].status, st.steps[0].attempts),
        (StepStatus::Awaiting, 1)
    );

    // A new approval from the other user runs the retry.
    peer.until("the retry's prompt", |s| {
        s.prompt.is_some_and(|p| p.id == again)
    })
    .await;
    peer.send(Command::Approve { prompt: again }).await.unwrap();
    let st = driver.until("finished", SessionState::is_finished).await;
    assert_eq!(st.steps[0].status, StepStatus::Succeeded);
    assert_eq!(st.steps[0].attempts, 2);

    // The record: each attempt started after its own approval by the other user.
    let mut approvals = 0;
    let mut started_after = Vec::new();
    for e in journaled(&s.journal) {
        match e {
            Event::Approved { uid, .. } if uid == Some(other.uid) => approvals += 1,
            Event::ActionStarted { attempt, .. } => started_after.push((attempt, approvals)),
            _ => {}
        }
    }
    assert_eq!(started_after, vec![(1, 1), (2, 2)]);
}

#[test]
fn a_headless_run_refuses_a_two_person_procedure_before_any_step() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = tmp.path().join("j.jsonl");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flightdeck"))
        .args([
            "run",
            "procedures/example-every-kind.toml",
            "--target",
            "procedures/targets/example.toml",
            "--yes",
            "--yes-phrases",
            "--headless",
            "--journal",
        ])
        .arg(&journal)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("approvals = 2") && err.contains("cockpit"),
        "{err}"
    );
    assert!(err.contains("step "), "{err}");
    assert!(!journal.exists(), "a session was started");
}

/// A driver whose client hangs: it said hello and asked to drive, then never reads nor sends
/// anything again (a paused SSH session keeps such a socket open for hours).
async fn hung_driver(
    socket: &Path,
    user: Option<&common::users::OtherUser>,
) -> tokio::net::UnixStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = match user {
        None => tokio::net::UnixStream::connect(socket).await.unwrap(),
        Some(u) => {
            let (u, s) = (u.clone(), socket.to_path_buf());
            let std_stream = tokio::task::spawn_blocking(move || connect_as(&u, &s))
                .await
                .unwrap()
                .unwrap();
            std_stream.set_nonblocking(true).unwrap();
            tokio::net::UnixStream::from_std(std_stream).unwrap()
        }
    };
    stream
        .write_all(raw_hello("hung", true).as_bytes())
        .await
        .unwrap();
    stream
}

fn take(reason: Option<&str>) -> Command {
    Command::TakeControl {
        reason: reason.map(str::to_string),
    }
}

#[tokio::test]
async fn the_owner_takes_control_from_a_hung_driver_at_once() {
    let Some(other) = other_user() else { return };
    let s = served(plan("people", vec![step("a", sh("true"))]), Some(other.gid)).await;
    let socket = s.guard.socket_path();
    let _hung = hung_driver(&socket, Some(&other)).await;
    let mut owner = View::join(&socket, "owner", false).await;
    let hung_drives = |s: &SessionState| {
        s.operators.len() == 2 && s.driver().is_some_and(|d| d.uid == Some(other.uid))
    };
    owner
        .until("the hung driver and the owner", hung_drives)
        .await;
    owner
        .send(take(Some("their SSH session hangs")))
        .await
        .unwrap();
    let me = owner.client.operator_id;
    owner
        .until("the owner drives", |s| {
            s.driver().is_some_and(|d| d.id == me)
        })
        .await;
    let reason = journaled(&s.journal)
        .into_iter()
        .find_map(|e| match e {
            Event::DriverChanged { reason, .. } => reason,
            _ => None,
        })
        .expect("a journaled takeover");
    assert!(reason.contains("the session's owner"), "{reason}");
    assert!(reason.contains("their SSH session hangs"), "{reason}");
    assert!(reason.contains(&other.name), "{reason}");
}

#[tokio::test]
async fn an_operator_takes_over_a_silent_driver_only_after_the_delay_and_with_a_reason() {
    let Some(other) = other_user() else { return };
    let s = served(plan("people", vec![step("a", sh("true"))]), Some(other.gid)).await;
    let socket = s.guard.socket_path();
    s.task
        .handle
        .set_takeover_after(Duration::from_secs(3600))
        .await;
    let _hung = hung_driver(&socket, None).await;
    let mut peer = View::join_as(&other, &socket, "peer").await;
    peer.until("the hung driver and the peer", |s| {
        s.operators.len() == 2 && s.driver().is_some()
    })
    .await;
    let e = peer.send(take(Some("no answer"))).await.unwrap_err();
    assert!(e.0.contains("after 3600s"), "{e}");

    // The driver's client has now been silent for longer than the delay.
    s.task.handle.set_takeover_after(Duration::ZERO).await;
    let e = peer.send(take(None)).await.unwrap_err();
    assert!(e.0.contains("say why"), "{e}");
    peer.send(take(Some("alice's laptop froze"))).await.unwrap();
    let me = peer.client.operator_id;
    peer.until("the peer drives", |s| {
        s.driver().is_some_and(|d| d.id == me)
    })
    .await;
    let reason = journaled(&s.journal)
        .into_iter()
        .find_map(|e| match e {
            Event::DriverChanged { reason, .. } => reason,
            _ => None,
        })
        .unwrap();
    assert!(
        reason.starts_with(&other.name) && reason.contains("alice's laptop froze"),
        "{reason}"
    );
    let report =
        flightdeck::report::render(&s.journal, flightdeck::report::ReportFormat::Md).unwrap();
    assert!(report.contains("taken over"), "{report}");
}

#[tokio::test]
async fn the_owner_removes_an_operator_who_cannot_come_back() {
    let Some(other) = other_user() else { return };
    let s = served(plan("people", vec![step("a", sh("true"))]), Some(other.gid)).await;
    let socket = s.guard.socket_path();
    let mut owner = View::join(&socket, "owner", true).await;
    let mut peer = View::join_as(&other, &socket, "peer").await;
    let both = |s: &SessionState| s.operators.len() == 2;
    owner.until("two operators", both).await;
    peer.until("two operators", both).await;
    let e = peer
        .send(Command::RemoveOperator {
            id: owner.client.operator_id,
        })
        .await
        .unwrap_err();
    assert!(e.0.contains("only the session's owner"), "{e}");

    owner
        .send(Command::RemoveOperator {
            id: peer.client.operator_id,
        })
        .await
        .unwrap();
    // The peer's feed closes.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while let Some(e) = tokio::time::timeout_at(deadline, peer.client.events.recv())
        .await
        .expect("the removed operator's feed closes")
    {
        peer.state.apply(&e);
    }
    assert!(peer.send(Command::Note { text: "x".into() }).await.is_err());
    // And the user cannot join again.
    let (u, sock) = (other.clone(), socket.clone());
    let std_stream = tokio::task::spawn_blocking(move || connect_as(&u, &sock))
        .await
        .unwrap()
        .unwrap();
    std_stream.set_nonblocking(true).unwrap();
    let stream = tokio::net::UnixStream::from_std(std_stream).unwrap();
    let e = join_stream(stream, &socket, hello("again", None, false, 0))
        .await
        .expect_err("a removed user joined again");
    assert!(e.to_string().contains("removed"), "{e}");
    assert!(journaled(&s.journal).iter().any(|e| matches!(
        e,
        Event::OperatorRemoved { uid: Some(u), .. } if *u == other.uid
    )));
}

#[tokio::test]
async fn notes_are_bounded_in_size_and_rate() {
    use flightdeck::engine::session::{MAX_NOTE_CHARS, NOTE_BURST};
    let s = served(plan("people", vec![step("a", sh("true"))]), None).await;
    let socket = s.guard.socket_path();
    let mut bob = View::join(&socket, "bob", false).await;
    bob.until("joined", |s| !s.operators.is_empty()).await;
    let e = bob
        .send(Command::Note {
            text: "x".repeat(MAX_NOTE_CHARS + 1),
        })
        .await
        .unwrap_err();
    assert!(e.0.contains(&format!("at most {MAX_NOTE_CHARS}")), "{e}");
    for i in 0..NOTE_BURST {
        bob.send(Command::Note {
            text: format!("note {i} {}", "y".repeat(MAX_NOTE_CHARS - 20)),
        })
        .await
        .unwrap();
    }
    let e = bob
        .send(Command::Note {
            text: "one more".into(),
        })
        .await
        .unwrap_err();
    assert!(e.0.contains("too many notes"), "{e}");
    // Reconnecting does not reset the budget: it belongs to the user.
    drop(bob);
    let carol = View::join(&socket, "carol", false).await;
    let e = carol
        .send(Command::Note {
            text: "and again".into(),
        })
        .await
        .unwrap_err();
    assert!(e.0.contains("too many notes"), "{e}");
    let notes = journaled(&s.journal)
        .iter()
        .filter(|e| matches!(e, Event::Note { .. }))
        .count();
    assert_eq!(notes, NOTE_BURST as usize);
}

/// Connect as `user`, say hello, and return the stream with the server's first line.
async fn hello_as(
    user: &common::users::OtherUser,
    socket: &Path,
) -> (tokio::io::BufReader<tokio::net::UnixStream>, String) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let (u, s) = (user.clone(), socket.to_path_buf());
    let std_stream = tokio::task::spawn_blocking(move || connect_as(&u, &s))
        .await
        .unwrap()
        .unwrap();
    std_stream.set_nonblocking(true).unwrap();
    let mut stream = tokio::net::UnixStream::from_std(std_stream).unwrap();
    // A refused connection may be closed before the hello is written: the answer is read
    // all the same.
    let _ = stream.write_all(raw_hello("x", false).as_bytes()).await;
    let mut rd = tokio::io::BufReader::new(stream);
    let mut line = String::new();
    tokio::time::timeout(DEADLINE, rd.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    (rd, line)
}

#[tokio::test]
async fn connections_are_bounded_per_user_and_in_total() {
    let Some(other) = other_user() else { return };
    let limits = Limits {
        per_uid: 2,
        ..Limits::default()
    };
    let s = served_with(plan("people", vec![]), Some(other.gid), limits).await;
    let socket = s.guard.socket_path();
    let (a, line) = hello_as(&other, &socket).await;
    assert!(line.starts_with("{\"welcome\""), "{line}");
    let (_b, line) = hello_as(&other, &socket).await;
    assert!(line.starts_with("{\"welcome\""), "{line}");
    let (_c, line) = hello_as(&other, &socket).await;
    assert!(line.starts_with("{\"refused\""), "{line}");
    assert!(line.contains("at most 2"), "{line}");
    // A closed connection frees its place.
    drop(a);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (_d, line) = hello_as(&other, &socket).await;
        if line.starts_with("{\"welcome\"") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never freed: {line}"
        );
        tokio::task::yield_now().await;
    }

    let limits = Limits {
        total: 1,
        ..Limits::default()
    };
    let s = served_with(plan("people", vec![]), Some(other.gid), limits).await;
    let socket = s.guard.socket_path();
    let (_a, line) = hello_as(&other, &socket).await;
    assert!(line.starts_with("{\"welcome\""), "{line}");
    let (_b, line) = hello_as(&other, &socket).await;
    assert!(
        line.starts_with("{\"refused\"") && line.contains("the session has 1"),
        "{line}"
    );
    // The owner is never kept out of their own session.
    let sock = socket.clone();
    let st = tokio::task::spawn_blocking(move || flightdeck::pairing::registry::status(&sock))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.operators.len(), 1);
    let _owner = View::join(&socket, "owner", false).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_can_rejoin() {
    use tokio::io::AsyncWriteExt;
    let limits = Limits {
        write_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let s = served_with(plan("people", vec![step("a", sh("true"))]), None, limits).await;
    let socket = s.guard.socket_path();
    let mut stuck = tokio::net::UnixStream::connect(&socket).await.unwrap();
    stuck
        .write_all(raw_hello("stuck", false).as_bytes())
        .await
        .unwrap();
    common::plans::until(&s.task, "the stuck client attached", |st| {
        st.operators.len() == 1
    })
    .await;
    // Far more than a socket buffer holds, while the client reads nothing.
    let big = "z".repeat(flightdeck::engine::session::MAX_NOTE_CHARS);
    for _ in 0..300 {
        s.task
            .handle
            .command(Command::Note { text: big.clone() })
            .await
            .unwrap();
    }
    common::plans::until(&s.task, "the stuck client dropped", |st| {
        st.operators.is_empty()
    })
    .await;
    drop(stuck);
    // The same user joins again and catches up on everything.
    let mut back = View::join(&socket, "back", false).await;
    let st = back.until("the notes", |s| s.notes.len() == 300).await;
    assert_eq!(st.notes.len(), 300);
}

#[tokio::test]
async fn a_note_tells_nobody_whether_their_guess_is_a_secret() {
    // A variable only this test reads.
    const VAR: &str = "FLIGHTDECK_TEST_NOTE_ORACLE_TOKEN";
    const SECRET: &str = "hunter2-s3cr3t";
    std::env::set_var(VAR, SECRET);
    let tmp = tempfile::tempdir().unwrap();
    let mut target = empty_target();
    target.secrets.insert(
        "TOKEN".into(),
        flightdeck::target::SecretSource {
            env: VAR.into(),
            file: None,
        },
    );
    let task = session::start(EngineConfig {
        plan: plan("people", vec![step("a", sh("true"))]),
        target,
        auto: AutoConfirm::default(),
        operator: "tester".into(),
        journal: tmp.path().join("j.jsonl"),
        observe: false,
        time_scale: 1.0,
    })
    .unwrap();
    let guesser = task
        .handle
        .attach_as(
            flightdeck::engine::identity::Identity {
                uid: 4242,
                user: "mallory".into(),
            },
            "mallory",
            false,
        )
        .await
        .unwrap();
    let owner = task.handle.attach("owner", true).await.unwrap();
    for guess in ["hunter1-s3cr3t", SECRET] {
        guesser
            .commands
            .send(Command::Note {
                text: format!("is it {guess}?"),
            })
            .await
            .unwrap();
    }
    owner
        .commands
        .send(Command::Note {
            text: format!("pasted by mistake: {SECRET}"),
        })
        .await
        .unwrap();
    let s = common::plans::until(&task, "three notes", |s| s.notes.len() == 3).await;
    let texts: Vec<&str> = s.notes.iter().map(|n| n.text.as_str()).collect();
    // Both guesses come back exactly as typed: right or wrong looks the same.
    assert_eq!(texts[0], "is it hunter1-s3cr3t?");
    assert_eq!(texts[1], format!("is it {SECRET}?"));
    // The owner, who supplied the secret, is protected from pasting it.
    assert_eq!(texts[2], "pasted by mistake: ****");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn journals_and_logs_are_the_owners_alone_and_a_group_journal_its_groups() {
    use flightdeck::journal::{share_with_group, Header, JournalWriter};
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let journal = tmp.path().join("journals").join("g1").join("j.jsonl");
    JournalWriter::create(&journal, &Header::new("p", "h", "t", "alice")).unwrap();
    assert_eq!(mode(&journal), 0o600);
    assert_eq!(mode(journal.parent().unwrap()), 0o700);
    assert_eq!(mode(&tmp.path().join("journals")), 0o700);

    let gid = nix::unistd::getgid().as_raw();
    share_with_group(&journal, gid, true).unwrap();
    assert_eq!(mode(&journal), 0o640);
    assert_eq!(mode(journal.parent().unwrap()), 0o750);
    // Passable to reach the group's folder, not listable: other journals stay unseen.
    assert_eq!(mode(&tmp.path().join("journals")), 0o711);
    for p in [&journal, &journal.parent().unwrap().to_path_buf()] {
        assert_eq!(std::fs::metadata(p).unwrap().gid(), gid);
    }

    // The shared log: folder 0700, file 0600, narrowed if an older version left it wider.
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(logs.join("flightdeck.log"), "old\n").unwrap();
    std::fs::set_permissions(
        logs.join("flightdeck.log"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    flightdeck::logging::prepare(&logs).unwrap();
    assert_eq!(mode(&logs), 0o700);
    assert_eq!(mode(&logs.join("flightdeck.log")), 0o600);
    assert_eq!(
        std::fs::read_to_string(logs.join("flightdeck.log")).unwrap(),
        "old\n"
    );
}

/// Step 1 irreversible, step 2 optional, step 3 plain: once step 1 is done and step 2's
/// prompt is open, a choice and a rollback past the point of no return are both possible.
fn past_no_return_plan() -> Plan {
    let mut a = step("migrate", sh("true"));
    a.irreversible = Some("the store is migrated".into());
    let mut b = step("reindex", sh("true"));
    b.optional = Some(flightdeck::plan::OptionalStep {
        why: "only needed for large stores".into(),
        default: flightdeck::procedure::model::OptionalChoice::Run,
    });
    plan("people", vec![a, b, step("check", sh("true"))])
}

/// The driver confirms step 1 and waits for step 2's (optional) prompt; its id and the phrase
/// a rollback past the point of no return needs.
async fn at_the_optional_step(driver: &mut View) -> (u64, String) {
    let id = driver
        .until("step 1's prompt", |s| s.prompt.is_some())
        .await
        .prompt
        .unwrap()
        .id;
    driver.send(confirm(id)).await.unwrap();
    let st = driver
        .until("step 2's prompt", |s| s.prompt.is_some_and(|p| p.step == 1))
        .await;
    let phrase = st
        .no_return(st.t_ms)
        .expect("past the point of no return")
        .phrase;
    (st.prompt.unwrap().id, phrase)
}

fn rollback_anyway(phrase: &str, reason: &str) -> Command {
    Command::RollbackPastNoReturn {
        phrase: phrase.into(),
        reason: reason.into(),
    }
}

fn choose_skip(prompt: u64, reason: &str) -> Command {
    Command::Choose {
        prompt,
        choice: flightdeck::procedure::model::OptionalChoice::Skip,
        reason: Some(reason.into()),
    }
}

#[tokio::test]
async fn reasons_and_phrases_are_bounded_like_notes_and_refused_never_cut() {
    use flightdeck::engine::session::MAX_NOTE_CHARS;
    let s = served(past_no_return_plan(), None).await;
    let socket = s.guard.socket_path();
    let mut alice = View::join(&socket, "alice", true).await;
    let (id, phrase) = at_the_optional_step(&mut alice).await;
    let long = "r".repeat(MAX_NOTE_CHARS + 1);
    let before = journaled(&s.journal).len();
    for cmd in [
        choose_skip(id, &long),
        rollback_anyway(&phrase, &long),
        rollback_anyway(&long, "the migration broke reads"),
        Command::Confirm {
            prompt: id,
            phrase: Some(long.clone()),
        },
        take(Some(&long)),
        Command::Note { text: long.clone() },
        Command::OverrideGuard {
            step: 1,
            phrase: long.clone(),
            reason: "the other node is back".into(),
        },
        Command::OverrideGuard {
            step: 1,
            phrase: "override quorum for n2".into(),
            reason: long.clone(),
        },
    ] {
        let e = alice.send(cmd.clone()).await.unwrap_err();
        assert!(
            e.0.contains(&format!("at most {MAX_NOTE_CHARS} characters"))
                && e.0.contains(&format!("has {}", MAX_NOTE_CHARS + 1)),
            "{cmd:?}: {e}"
        );
    }
    assert_eq!(
        journaled(&s.journal).len(),
        before,
        "a refused text was journaled"
    );

    // At the limit, each is taken whole (reasons used to be cut to 500 characters).
    let choice_reason = format!("skip{}", "c".repeat(MAX_NOTE_CHARS - 4));
    alice.send(choose_skip(id, &choice_reason)).await.unwrap();
    alice
        .until("step 3's prompt", |s| s.prompt.is_some_and(|p| p.step == 2))
        .await;
    let rollback_reason = format!("back{}", "b".repeat(MAX_NOTE_CHARS - 4));
    alice
        .send(rollback_anyway(&phrase, &rollback_reason))
        .await
        .unwrap();
    let events = journaled(&s.journal);
    assert!(events.iter().any(|e| matches!(
        e,
        Event::OptionalChosen { reason: Some(r), .. } if *r == choice_reason
    )));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::RollbackOverridden { reason, .. } if *reason == rollback_reason
    )));
}

/// Every command, at least one of each kind, with arguments that fit the session of
/// `past_no_return_plan` at step 2's prompt (`prompt`), `phrase` its rollback phrase.
fn every_command(prompt: u64, phrase: &str, observer: u64) -> Vec<Command> {
    let all = vec![
        confirm(prompt),
        choose_skip(prompt, "not needed"),
        Command::Decline { prompt },
        Command::Act,
        Command::Retry { step: 0 },
        Command::Skip { step: 1 },
        Command::MarkDone { step: 0 },
        Command::Undo { step: 0 },
        Command::Abort {
            rollback: false,
            reason: Some("stop here".into()),
        },
        Command::Abort {
            rollback: true,
            reason: None,
        },
        rollback_anyway(phrase, "reads fail on the new version"),
        Command::OverrideGuard {
            step: 1,
            phrase: "override masters for node1".into(),
            reason: "the guard counts a node that is back".into(),
        },
        Command::Note {
            text: "hello".into(),
        },
        Command::Approve { prompt },
        Command::RequestControl,
        Command::GrantControl { to: observer },
        take(Some("a reason")),
        Command::RemoveOperator { id: observer },
        Command::Alive,
        Command::KillOrphan { step: 0 },
    ];
    // A new kind of command fails to compile here until it is added above and counted.
    let kind = |c: &Command| match c {
        Command::Confirm { .. } => 0,
        Command::Choose { .. } => 1,
        Command::Decline { .. } => 2,
        Command::Act => 3,
        Command::Retry { .. } => 4,
        Command::Skip { .. } => 5,
        Command::MarkDone { .. } => 6,
        Command::Undo { .. } => 7,
        Command::Abort { .. } => 8,
        Command::RollbackPastNoReturn { .. } => 9,
        Command::Note { .. } => 10,
        Command::Approve { .. } => 11,
        Command::RequestControl => 12,
        Command::GrantControl { .. } => 13,
        Command::TakeControl { .. } => 14,
        Command::RemoveOperator { .. } => 15,
        Command::Alive => 16,
        Command::KillOrphan { .. } => 17,
        Command::OverrideGuard { .. } => 18,
    };
    let kinds: std::collections::BTreeSet<i32> = all.iter().map(kind).collect();
    assert_eq!(kinds.len(), 19, "every kind of command is tried");
    all
}

#[tokio::test]
async fn an_observer_from_another_uid_can_send_only_what_observers_may() {
    let Some(other) = other_user() else { return };
    let s = served(past_no_return_plan(), Some(other.gid)).await;
    let socket = s.guard.socket_path();
    let mut driver = View::join(&socket, "driver", true).await;
    let mut peer = View::join_as(&other, &socket, "peer").await;
    let (id, phrase) = at_the_optional_step(&mut driver).await;
    peer.until("step 2's prompt", |s| {
        s.prompt.is_some_and(|p| p.step == 1) && s.operators.len() == 2
    })
    .await;
    let before = journaled(&s.journal).len();
    let refused: Vec<Command> = every_command(id, &phrase, peer.client.operator_id)
        .into_iter()
        .filter(|c| !c.observer_may())
        .collect();
    assert!(refused.iter().any(|c| matches!(c, Command::Choose { .. })));
    assert!(refused
        .iter()
        .any(|c| matches!(c, Command::RollbackPastNoReturn { .. })));
    for cmd in refused {
        let e = peer.send(cmd.clone()).await.unwrap_err();
        assert!(e.0.contains("only the driver"), "{cmd:?}: {e}");
    }
    assert_eq!(
        journaled(&s.journal).len(),
        before,
        "an observer's command was journaled"
    );
    let st = s.task.handle.snapshot().await.unwrap();
    assert_eq!(st.prompt.map(|p| p.id), Some(id));
    assert_eq!(st.steps[1].status, StepStatus::Awaiting);

    // The same rollback from the driver is taken: the observer was refused for who they are.
    driver
        .send(rollback_anyway(&phrase, "reads fail on the new version"))
        .await
        .unwrap();
    let me = flightdeck::engine::identity::Identity::current().user;
    assert!(journaled(&s.journal).iter().any(|e| matches!(
        e,
        Event::RollbackOverridden { by, uid: Some(_), .. } if *by == me
    )));
}

/// A label outside the allow-list — a look-alike bracket that would let bob's label read as
/// alice's `label (user)`, a bidi override or a zero-width space that reorder or hide what a
/// cockpit shows — is refused through the real join: the client is told which character and
/// what a label may have, and the refused join leaves no line in the journal. The operator
/// name a client sends without a label is a label too. Before, `bob （alice）` and the
/// override joined and showed as typed, and a control character was dropped quietly.
#[tokio::test]
async fn a_label_outside_the_allow_list_is_refused_at_the_join_and_not_journaled() {
    use flightdeck::pairing::PairingError;
    let s = served(plan("people", vec![step("a", sh("true"))]), None).await;
    let socket = s.guard.socket_path().to_path_buf();
    for (operator, label, named) in [
        (
            "bob",
            Some("bob \u{FF08}alice\u{FF09}"),
            "'（' (U+FF08) at character 5",
        ),
        (
            "bob",
            Some("bob \u{202E}ecila"),
            "'\\u{202e}' (U+202E) at character 5",
        ),
        ("bob", Some("\u{200B}alice"), "(U+200B) at character 1"),
        ("bob\u{2066}", None, "(U+2066) at character 4"),
        ("bob", Some("x\u{1b}[2J"), "(U+001B)"),
    ] {
        let err = connect_socket(&socket, hello(operator, label, false, 0))
            .await
            .expect_err("the join is refused");
        let PairingError::Refused(why) = &err else {
            panic!("{label:?}: not a refusal: {err}");
        };
        assert!(
            why.contains(named)
                && why.contains("a label may have letters and digits of any script"),
            "{label:?}: {why}"
        );
    }
    // The same socket takes a label that is a name.
    let mut carol = View::join(&socket, "Carol O'Brien", false).await;
    carol
        .until("carol joined", |s| !s.operators.is_empty())
        .await;
    let Served { task, guard, .. } = s;
    task.handle.shutdown().await;
    task.join.await.unwrap().unwrap();
    drop(guard);
    let joins: Vec<String> = journaled(&s.journal)
        .into_iter()
        .filter_map(|e| match e {
            Event::OperatorJoined { name, .. } => Some(name),
            _ => None,
        })
        .collect();
    assert_eq!(joins.len(), 1, "{joins:?}");
    assert!(joins[0].starts_with("Carol O'Brien"), "{joins:?}");
}

/// A hello line in this build's protocol, as a client that reads samples as events sends it.
fn raw_hello(operator: &str, want_driver: bool) -> String {
    use flightdeck::pairing::protocol::{encode, ClientMsg, Hello};
    encode(&ClientMsg::Hello(Hello {
        samples: false,
        ..hello(operator, None, want_driver, 0)
    }))
}
