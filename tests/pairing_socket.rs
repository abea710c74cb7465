//! Pairing end to end, in one process: an engine served on a Unix socket in a temporary
//! runtime directory, operators joining through the socket.

mod common;

use common::plans::{empty_target, plan, sh, step};

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flightdeck::engine::client::SessionClient;
use flightdeck::engine::event::AutoConfirm;
use flightdeck::engine::session::{self, EngineConfig, EngineTask};
use flightdeck::engine::state::StepStatus;
use flightdeck::engine::{Command, SessionState};
use flightdeck::pairing::client::{connect_socket, hello};
use flightdeck::pairing::protocol::{ServerMsg, PROTOCOL};
use flightdeck::pairing::server::{serve, ServeOptions, ServerGuard};
use flightdeck::pairing::{registry, PairingError};
use flightdeck::plan::Plan;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const DEADLINE: Duration = Duration::from_secs(20);

struct Served {
    task: EngineTask,
    guard: ServerGuard,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

async fn served(plan: Plan, name: &str) -> Served {
    let tmp = tempfile::tempdir().unwrap();
    let task = session::start(EngineConfig {
        plan,
        target: empty_target(),
        auto: AutoConfirm::default(),
        operator: "tester".into(),
        journal: tmp.path().join("j.jsonl"),
        observe: false,
        time_scale: 1.0,
    })
    .unwrap();
    let dir = tmp.path().join("rt");
    let guard = serve(
        task.handle.clone(),
        name,
        ServeOptions {
            allow_group: None,
            runtime_dir: Some(dir.clone()),
            recheck_every: Some(Duration::from_millis(20)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    Served {
        task,
        guard,
        dir,
        _tmp: tmp,
    }
}

/// An operator's view: the client and the state folded from what arrived over the socket.
struct View {
    client: SessionClient,
    state: SessionState,
}

impl View {
    async fn join(socket: &Path, name: &str, driver: bool) -> View {
        let client = connect_socket(socket, hello(name, None, driver, 0))
            .await
            .unwrap();
        View {
            client,
            state: SessionState::empty(),
        }
    }

    /// Fold events until the state satisfies `f`.
    async fn until(&mut self, what: &str, f: impl Fn(&SessionState) -> bool) -> &SessionState {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !f(&self.state) {
            match tokio::time::timeout_at(deadline, self.client.events.recv()).await {
                Ok(Some(e)) => self.state.apply(&e),
                Ok(None) => panic!("{}: the stream closed waiting for {what}", self.name()),
                Err(_) => panic!(
                    "{}: timed out waiting for {what}; steps {:?} prompt {:?} operators {:?}",
                    self.name(),
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

    fn name(&self) -> &str {
        &self.client.operator
    }

    async fn send(&self, cmd: Command) -> Result<(), flightdeck::engine::Rejected> {
        self.client.commands.send(cmd).await
    }
}

async fn until_engine(task: &EngineTask, what: &str, f: impl Fn(&SessionState) -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let s = task.handle.snapshot().await.unwrap();
        if f(&s) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn two_operators_over_the_socket_share_one_session() {
    let s = served(
        plan(
            "pairing-test",
            vec![step("stop", sh("true")), step("start", sh("true"))],
        ),
        "two-ops",
    )
    .await;
    let socket = s.guard.socket_path().to_path_buf();
    assert_eq!(mode_of(&s.dir), 0o700);
    assert_eq!(mode_of(&socket), 0o600);
    assert_eq!(mode_of(&s.guard.info_path()), 0o600);

    let mut alice = View::join(&socket, "alice", true).await;
    let mut bob = View::join(&socket, "bob", true).await;
    let both = |s: &SessionState| s.prompt.is_some() && s.operators.len() == 2;
    let id = alice
        .until("a prompt and two operators", both)
        .await
        .prompt
        .unwrap()
        .id;
    bob.until("a prompt and two operators", both).await;
    let alice_shown = format!(
        "alice ({})",
        flightdeck::engine::identity::Identity::current().user
    );
    assert_eq!(alice.state.driver().unwrap().name, alice_shown);
    assert_eq!(bob.state.driver().unwrap().name, alice_shown);

    // The engine refuses an observer's confirm; the refusal comes back as the reply.
    let r = bob
        .send(Command::Confirm {
            prompt: id,
            phrase: None,
        })
        .await;
    assert!(r.unwrap_err().0.contains("only the driver"));

    // The driver's confirm runs it (two-person steps: tests/pairing_people.rs).
    alice
        .send(Command::Confirm {
            prompt: id,
            phrase: None,
        })
        .await
        .unwrap();
    let next = |s: &SessionState| {
        s.steps[0].status == StepStatus::Succeeded && s.prompt.is_some_and(|p| p.step == 1)
    };
    alice.until("step 1 done, step 2 asked", next).await;
    bob.until("step 1 done, step 2 asked", next).await;
    let me = flightdeck::engine::identity::Identity::current().user;
    // Decisions are recorded under the real user; labels are only shown.
    assert_eq!(alice.state.steps[0].confirmed_by, vec![me.clone()]);

    // Handover over the socket: bob asks, alice grants, bob drives.
    bob.send(Command::RequestControl).await.unwrap();
    alice
        .until("the request", |s| s.control_request.is_some())
        .await;
    alice
        .send(Command::GrantControl {
            to: bob.client.operator_id,
        })
        .await
        .unwrap();
    let bob_drives = |s: &SessionState| s.driver().is_some_and(|d| d.name.starts_with("bob ("));
    bob.until("bob drives", bob_drives).await;
    alice.until("bob drives", bob_drives).await;
    let id = bob.state.prompt.unwrap().id;
    let r = alice
        .send(Command::Confirm {
            prompt: id,
            phrase: None,
        })
        .await;
    assert!(r.unwrap_err().0.contains("only the driver (bob ("));
    bob.send(Command::Confirm {
        prompt: id,
        phrase: None,
    })
    .await
    .unwrap();
    alice.until("finished", SessionState::is_finished).await;
    bob.until("finished", SessionState::is_finished).await;

    // Both folded the same session, and it is the engine's.
    let engine = s.task.handle.snapshot().await.unwrap();
    assert_eq!(alice.state.steps, bob.state.steps);
    assert_eq!(alice.state.steps, engine.steps);
    assert_eq!(alice.state.mode, engine.mode);
}

#[tokio::test]
async fn the_driver_dropping_mid_action_leaves_the_session_waiting_for_a_new_driver() {
    let tmp = tempfile::tempdir().unwrap();
    let flag = tmp.path().join("go");
    // Runs until the test lets it finish: the driver leaves while it runs.
    let slow = sh(&format!(
        "while [ ! -e '{}' ]; do sleep 0.02; done; echo finished",
        flag.display()
    ));
    let s = served(
        plan(
            "pairing-test",
            vec![step("slow", slow), step("next", sh("true"))],
        ),
        "drop",
    )
    .await;
    let socket = s.guard.socket_path().to_path_buf();

    let mut alice = View::join(&socket, "alice", true).await;
    let id = alice
        .until("a prompt", |s| s.prompt.is_some())
        .await
        .prompt
        .unwrap()
        .id;
    alice
        .send(Command::Confirm {
            prompt: id,
            phrase: None,
        })
        .await
        .unwrap();
    alice
        .until("running", |s| s.steps[0].status == StepStatus::Running)
        .await;
    drop(alice);
    until_engine(&s.task, "alice gone, step still running", |st| {
        st.operators.is_empty() && st.steps[0].status == StepStatus::Running
    })
    .await;

    std::fs::write(&flag, "").unwrap();
    until_engine(&s.task, "the step done and the next asked", |st| {
        st.steps[0].status == StepStatus::Succeeded && st.prompt.is_some_and(|p| p.step == 1)
    })
    .await;

    // Nobody confirmed anything meanwhile: the next step waits, and a newcomer sees exactly that.
    let mut carol = View::join(&socket, "carol", true).await;
    let st = carol
        .until("carol's arrival", |s| {
            s.operators.iter().any(|o| o.name.starts_with("carol ("))
        })
        .await
        .clone();
    assert_eq!(st.steps[0].status, StepStatus::Succeeded);
    assert!(st.steps[0].output.iter().any(|l| l.line == "finished"));
    assert_eq!(st.steps[1].status, StepStatus::Awaiting);
    assert_eq!(st.prompt.map(|p| p.step), Some(1));
    assert!(st.driver().is_some_and(|d| d.name.starts_with("carol (")));
    carol
        .send(Command::Confirm {
            prompt: st.prompt.unwrap().id,
            phrase: None,
        })
        .await
        .unwrap();
    carol.until("finished", SessionState::is_finished).await;
}

/// Talk the protocol by hand: one line out, one line in.
struct Raw {
    rd: BufReader<tokio::net::unix::OwnedReadHalf>,
    wr: tokio::net::unix::OwnedWriteHalf,
    /// Reads every samples frame, skipped ones too: a frame's rows name probe instances
    /// introduced in earlier frames.
    samples: flightdeck::pairing::samples::Expander,
}

impl Raw {
    async fn open(socket: &Path) -> Raw {
        let (rd, wr) = tokio::net::UnixStream::connect(socket)
            .await
            .unwrap()
            .into_split();
        Raw {
            rd: BufReader::new(rd),
            wr,
            samples: Default::default(),
        }
    }

    async fn say(&mut self, line: &str) {
        self.wr.write_all(line.as_bytes()).await.unwrap();
        self.wr.write_all(b"\n").await.unwrap();
    }

    /// The next line that is not an event (None at end of stream).
    async fn next_non_event(&mut self) -> Option<ServerMsg> {
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(DEADLINE, self.rd.read_line(&mut line))
                .await
                .unwrap()
                .unwrap();
            if n == 0 {
                return None;
            }
            match serde_json::from_str::<ServerMsg>(&line).unwrap() {
                ServerMsg::Event(_) => continue,
                ServerMsg::Samples(f) => {
                    self.samples.expand(f);
                }
                other => return Some(other),
            }
        }
    }
}

#[tokio::test]
async fn handshake_refusals_malformed_lines_and_status() {
    let s = served(plan("pairing-test", vec![step("a", sh("true"))]), "raw").await;
    let socket = s.guard.socket_path().to_path_buf();

    let mut r = Raw::open(&socket).await;
    r.say(r#"{"hello":{"protocol":99,"operator":"future"}}"#)
        .await;
    match r.next_non_event().await {
        Some(ServerMsg::Refused(x)) => assert!(x.reason.contains("protocol version 99")),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(r.next_non_event().await.is_none(), "refused but kept open");

    let mut r = Raw::open(&socket).await;
    r.say(r#"{"command":{"id":1,"cmd":{"cmd":"act"}}}"#).await;
    assert!(matches!(
        r.next_non_event().await,
        Some(ServerMsg::Refused(_))
    ));

    let err = connect_socket(
        &socket,
        flightdeck::pairing::protocol::Hello {
            protocol: PROTOCOL + 1,
            ..hello("x", None, false, 0)
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PairingError::Refused(_)), "{err}");
    // An older build's hello (protocol 1: samples rows named by node) is told why.
    let mut r = Raw::open(&socket).await;
    r.say(r#"{"hello":{"protocol":1,"operator":"old","samples":true}}"#)
        .await;
    match r.next_non_event().await {
        Some(ServerMsg::Refused(x)) => assert!(
            x.reason.contains("protocol version 1 is not supported")
                && x.reason.contains("same flightdeck version"),
            "{}",
            x.reason
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }

    // A label that reads as the `label (user)` form is refused, not shown as typed (before,
    // `me@x (alice)` joined and showed as alice's label).
    let err = connect_socket(&socket, hello("me", Some("me@x (alice)"), false, 0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PairingError::Refused(ref why) if why.contains("parenthesis")),
        "{err}"
    );

    // A malformed line after the handshake: an error reply, and the connection carries on.
    let mut r = Raw::open(&socket).await;
    r.say(r#"{"hello":{"protocol":2,"operator":"raw","want_driver":false,"after_seq":0}}"#)
        .await;
    assert!(matches!(r.next_non_event().await, Some(ServerMsg::Welcome(w)) if w.session == "raw"));
    r.say("this is not json").await;
    match r.next_non_event().await {
        Some(ServerMsg::Reply(x)) => {
            assert_eq!(x.id, 0);
            assert!(x.error.unwrap().contains("malformed"));
        }
        other => panic!("expected an error reply, got {other:?}"),
    }
    r.say(r#"{"command":{"id":5,"cmd":{"cmd":"teleport"}}}"#)
        .await;
    assert!(
        matches!(r.next_non_event().await, Some(ServerMsg::Reply(x)) if x.id == 5 && x.error.is_some())
    );
    // A sign of life is not answered: the next reply is the note's.
    r.say(r#"{"command":{"id":6,"cmd":{"cmd":"alive"}}}"#).await;
    r.say(r#"{"command":{"id":7,"cmd":{"cmd":"note","text":"still here"}}}"#)
        .await;
    match r.next_non_event().await {
        Some(ServerMsg::Reply(x)) => assert_eq!((x.id, x.ok, x.error), (7, Some(true), None)),
        other => panic!("expected an ok reply, got {other:?}"),
    }

    // An over-long line: an error reply, then the connection closes.
    let mut long = String::from(r#"{"command":{"id":8,"cmd":{"cmd":"note","text":""#);
    long.push_str(&"x".repeat(70 * 1024));
    long.push_str(r#""}}}"#);
    r.say(&long).await;
    match r.next_non_event().await {
        Some(ServerMsg::Reply(x)) => assert!(x.error.unwrap().contains("longer than")),
        other => panic!("expected an error reply, got {other:?}"),
    }
    assert!(r.next_non_event().await.is_none());

    until_engine(&s.task, "the raw operator gone", |st| {
        st.operators.is_empty()
    })
    .await;

    // Status without attaching, and the listing.
    // The registry does blocking I/O: off the runtime, which must keep serving meanwhile.
    let sock = socket.clone();
    let st = tokio::task::spawn_blocking(move || registry::status(&sock))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.session, "raw");
    assert_eq!(st.procedure, "pairing-test");
    assert_eq!(
        (st.steps_done, st.steps_total, st.current_step),
        (0, 1, Some(1))
    );
    // Asking for status attaches nobody.
    assert!(st.operators.is_empty(), "{st:?}");
    let dir = s.dir.clone();
    let listed = tokio::task::spawn_blocking(move || registry::list_in(&dir))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].alive);
    assert_eq!(listed[0].name, "raw");
    assert_eq!(listed[0].pid, std::process::id());
}

#[tokio::test]
async fn a_late_joiner_can_skip_what_it_already_has() {
    let s = served(plan("pairing-test", vec![step("a", sh("true"))]), "after").await;
    let socket = s.guard.socket_path().to_path_buf();
    until_engine(&s.task, "a prompt", |st| st.prompt.is_some()).await;
    let known = s.task.handle.snapshot().await.unwrap().last_seq;
    let mut c = connect_socket(&socket, hello("late", None, false, known))
        .await
        .unwrap();
    let first = tokio::time::timeout(DEADLINE, c.events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.seq, known + 1);
    assert!(matches!(
        first.event,
        flightdeck::engine::Event::OperatorJoined { .. }
    ));
}

#[tokio::test]
async fn the_server_cleans_up_on_drop_and_when_the_engine_ends() {
    let s = served(plan("pairing-test", vec![step("a", sh("true"))]), "bye").await;
    let socket = s.guard.socket_path().to_path_buf();
    let info = s.guard.info_path();
    assert!(socket.exists() && info.exists());
    // A second server under the same name is refused while the first answers.
    let again = serve(
        s.task.handle.clone(),
        "bye",
        ServeOptions {
            runtime_dir: Some(s.dir.clone()),
            ..ServeOptions::default()
        },
    )
    .await;
    assert!(matches!(again, Err(PairingError::NameTaken(_))));

    let mut joined = View::join(&socket, "watcher", false).await;
    joined.until("joined", |s| !s.operators.is_empty()).await;
    let Served {
        task, mut guard, ..
    } = s;
    task.handle.shutdown().await;
    let _ = task.join.await;
    tokio::time::timeout(DEADLINE, guard.stopped())
        .await
        .unwrap();
    assert!(!socket.exists() && !info.exists());
    // The joined operator's stream ends with the session.
    let end = tokio::time::timeout(DEADLINE, async {
        while joined.client.events.recv().await.is_some() {}
    })
    .await;
    assert!(end.is_ok());

    // And on drop, which also closes the connections.
    let s = served(plan("pairing-test", vec![step("a", sh("true"))]), "dropped").await;
    let socket = s.guard.socket_path().to_path_buf();
    let mut joined = View::join(&socket, "watcher", false).await;
    joined.until("joined", |s| !s.operators.is_empty()).await;
    drop(s.guard);
    assert!(!socket.exists());
    let end = tokio::time::timeout(DEADLINE, async {
        while joined.client.events.recv().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "a connection outlived its server");
    until_engine(&s.task, "the watcher left", |st| st.operators.is_empty()).await;
}

#[tokio::test]
async fn a_detached_server_may_stop_once_finished_and_nobody_watches() {
    let s = served(plan("pairing-test", vec![step("a", sh("true"))]), "idle").await;
    let handle = s.task.handle.clone();
    let mut idle = tokio::spawn(async move {
        flightdeck::pairing::server::finished_and_idle(&handle, Duration::from_millis(50)).await
    });
    let mut alice = View::join(&s.guard.socket_path(), "alice", true).await;
    let id = alice
        .until("a prompt", |s| s.prompt.is_some())
        .await
        .prompt
        .unwrap()
        .id;
    alice
        .send(Command::Confirm {
            prompt: id,
            phrase: None,
        })
        .await
        .unwrap();
    alice.until("finished", SessionState::is_finished).await;
    // Finished, but alice still reads the end: the server stays.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut idle)
            .await
            .is_err(),
        "stopped while an operator was attached"
    );
    drop(alice);
    tokio::time::timeout(DEADLINE, idle).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_removed_socket_is_served_again() {
    let s = served(plan("pairing-test", vec![step("a", sh("true"))]), "again").await;
    let before = s.guard.socket_path();
    // The session file first: the server looks only at its socket.
    std::fs::remove_file(s.guard.info_path()).unwrap();
    std::fs::remove_file(&before).unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !before.exists() || !s.guard.info_path().exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the socket was not served again"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(s.guard.socket_path(), before);
    let mut v = View::join(&before, "back", false).await;
    v.until("joined", |st| {
        st.operators.iter().any(|o| o.name.starts_with("back ("))
    })
    .await;
}

#[tokio::test]
async fn a_detached_server_runs_until_done_then_returns_the_final_state() {
    let tmp = tempfile::tempdir().unwrap();
    let task = session::start(EngineConfig {
        plan: plan("pairing-test", vec![step("a", sh("echo done"))]),
        target: empty_target(),
        auto: AutoConfirm::default(),
        operator: "tester".into(),
        journal: tmp.path().join("j.jsonl"),
        observe: false,
        time_scale: 1.0,
    })
    .unwrap();
    let dir = tmp.path().join("rt");
    let opts = ServeOptions {
        runtime_dir: Some(dir.clone()),
        ..ServeOptions::default()
    };
    let server = tokio::spawn(async move {
        flightdeck::pairing::server::serve_until_done(
            task,
            "until-done",
            opts,
            Duration::from_millis(50),
        )
        .await
    });
    let socket = flightdeck::pairing::runtime_dir::socket_path(&dir, "until-done");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !flightdeck::pairing::runtime_dir::info_path(&dir, "until-done").exists() {
        assert!(tokio::time::Instant::now() < deadline, "never served");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut alice = View::join(&socket, "alice", true).await;
    let id = alice
        .until("a prompt", |s| s.prompt.is_some())
        .await
        .prompt
        .unwrap()
        .id;
    alice
        .send(Command::Confirm {
            prompt: id,
            phrase: None,
        })
        .await
        .unwrap();
    alice.until("finished", SessionState::is_finished).await;
    drop(alice);
    let end = tokio::time::timeout(DEADLINE, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(end.is_finished());
    assert_eq!(end.steps[0].status, StepStatus::Succeeded);
    assert!(!socket.exists());
}

/// Past the point of no return a rollback sent over the socket is refused as in the cockpit;
/// the override (phrase and reason) goes through, journaled with the connection's user; the
/// status `flightdeck sessions` shows says the same outcome words as every other view.
#[tokio::test]
async fn over_the_socket_a_rollback_past_the_point_of_no_return_is_refused_then_overridden() {
    let mut migrate = step("migrate", sh("true"));
    migrate.undo = Some(sh("true"));
    migrate.irreversible = Some("the store format changes".into());
    let mut steps = vec![step("a", sh("true")), migrate, step("c", sh("false"))];
    for s in &mut steps {
        s.confirm = flightdeck::plan::Confirm::None;
    }
    let srv = served(plan("t", steps), "noreturn").await;
    let mut alice = View::join(&srv.guard.socket_path(), "alice", true).await;
    alice
        .until("c failed", |s| {
            s.steps
                .get(2)
                .is_some_and(|r| r.status == StepStatus::Failed)
        })
        .await;
    let refused = alice
        .send(Command::Abort {
            rollback: true,
            reason: None,
        })
        .await
        .unwrap_err();
    assert!(
        refused
            .0
            .contains("refused past the point of no return: step 2 (migrate) is irreversible"),
        "{refused}"
    );
    alice
        .send(Command::RollbackPastNoReturn {
            phrase: "lose writes since step 2".into(),
            reason: "drill".into(),
        })
        .await
        .expect("the override is accepted");
    // Each undo is confirmed, the irreversible step's included.
    let mut answered = None;
    loop {
        let s = alice
            .until("an undo prompt or the end", |s| {
                s.is_finished()
                    || s.prompt.is_some_and(|p| {
                        p.kind == flightdeck::engine::state::PromptKindTag::Undo
                            && Some(p.id) != answered
                    })
            })
            .await;
        let Some(p) = s.prompt.filter(|_| !s.is_finished()) else {
            break;
        };
        answered = Some(p.id);
        alice
            .send(Command::Confirm {
                prompt: p.id,
                phrase: None,
            })
            .await
            .expect("undo confirmed");
    }
    let s = alice.until("finished", SessionState::is_finished).await;
    assert!(s
        .steps
        .iter()
        .take(2)
        .all(|r| r.status == StepStatus::Undone));
    let overridden = s.rollback_override.clone().expect("journaled");
    // The connection's user, from the kernel, not the label.
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    assert_eq!(overridden.by, me);
    let status = flightdeck::pairing::server::status_of("noreturn", s);
    assert_eq!(status.mode, flightdeck::engine::outcome::outcome_text(s));
    assert!(
        status.mode.starts_with("rolled back, NOT verified"),
        "{}",
        status.mode
    );
}

/// An observer that says which node rows it shows gets the live samples of those nodes only;
/// a viewport past the bounds is refused (an error reply, the connection and the viewport it
/// had kept) and none makes the observer anything but an observer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_gets_samples_only_for_the_nodes_it_shows() {
    use flightdeck::engine::client::Viewport;
    use flightdeck::lab::{Lab, LabConfig, Product, Timing};
    use flightdeck::pairing::protocol::{encode, ClientMsg, MAX_VIEWPORT_NODES};

    let lab = Lab::start(LabConfig::new(Product::Generic, 4, Timing::fast()))
        .await
        .unwrap();
    let mut target = lab.target().clone();
    // Fast probes: many frames within a second or two.
    for p in &mut target.probes {
        p.interval_ms = 50;
    }
    let names: Vec<String> = target.nodes.iter().map(|n| n.name.clone()).collect();
    assert_eq!(names.len(), 4);
    let tmp = tempfile::tempdir().unwrap();
    let task = session::start(EngineConfig {
        plan: plan("viewport", vec![step("hold", sh("true"))]),
        target,
        auto: AutoConfirm::default(),
        operator: "tester".into(),
        journal: tmp.path().join("j.jsonl"),
        observe: true,
        time_scale: 1.0,
    })
    .unwrap();
    let rt = tmp.path().join("rt");
    let guard = serve(
        task.handle.clone(),
        "vp",
        ServeOptions {
            runtime_dir: Some(rt),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let mut r = Raw::open(&guard.socket_path()).await;
    r.say(r#"{"hello":{"protocol":2,"operator":"watcher","samples":true}}"#)
        .await;
    assert!(matches!(
        r.next_non_event().await,
        Some(ServerMsg::Welcome(_))
    ));
    // A hostile viewport first: too many nodes. Refused; the connection stays.
    let huge = Viewport {
        nodes: (0..=MAX_VIEWPORT_NODES).map(|i| format!("n{i}")).collect(),
    };
    r.say(encode(&ClientMsg::Viewport(huge)).trim_end()).await;
    match r.next_non_event().await {
        Some(ServerMsg::Reply(x)) => {
            assert_eq!(x.id, 0);
            assert!(x.error.unwrap().contains("viewport refused"));
        }
        other => panic!("expected an error reply, got {other:?}"),
    }
    // Then the one node a screen shows, and a command after it: every sample after that
    // command's reply is one the viewport let through.
    let shown = Viewport {
        nodes: vec![names[1].clone()],
    };
    r.say(encode(&ClientMsg::Viewport(shown)).trim_end()).await;
    r.say(r#"{"command":{"id":1,"cmd":{"cmd":"note","text":"watching node 2"}}}"#)
        .await;
    match r.next_non_event().await {
        Some(ServerMsg::Reply(x)) => assert_eq!((x.id, x.ok), (1, Some(true))),
        other => panic!("expected the note's reply, got {other:?}"),
    }
    let mut frames_with_it = 0;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while frames_with_it < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no samples of {}",
            names[1]
        );
        let mut line = String::new();
        let n = tokio::time::timeout(DEADLINE, r.rd.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "the connection closed");
        match serde_json::from_str::<ServerMsg>(&line).unwrap() {
            ServerMsg::Samples(f) => {
                let nodes: Vec<Option<String>> = r
                    .samples
                    .expand(f)
                    .into_iter()
                    .filter_map(|e| match e.event {
                        flightdeck::engine::Event::ProbeSample { node, .. } => Some(node),
                        other => {
                            assert!(!matches!(
                                other,
                                flightdeck::engine::Event::ProbeSummary { .. }
                            ));
                            None
                        }
                    })
                    .collect();
                assert!(
                    nodes
                        .iter()
                        .all(|n| n.as_ref().is_none_or(|n| *n == names[1])),
                    "samples of nodes not shown: {nodes:?}"
                );
                if nodes.contains(&Some(names[1].clone())) {
                    frames_with_it += 1;
                }
            }
            ServerMsg::Event(e) => assert!(
                !matches!(
                    e.event,
                    flightdeck::engine::Event::ProbeSample { .. }
                        | flightdeck::engine::Event::ProbeSummary { .. }
                ),
                "a sample or a summary as an event: {e:?}"
            ),
            other => panic!("unexpected {other:?}"),
        }
    }
    // Still an observer: nothing the driver does is taken from it.
    r.say(r#"{"command":{"id":2,"cmd":{"cmd":"act"}}}"#).await;
    match r.next_non_event().await {
        Some(ServerMsg::Reply(x)) => {
            assert_eq!(x.id, 2);
            assert!(x.error.is_some(), "an observer acted");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let st = task.handle.snapshot().await.unwrap();
    assert!(st.operators.iter().all(|o| !o.driver), "{:?}", st.operators);
    drop(guard);
    task.handle.shutdown().await;
    lab.shutdown().await;
}
