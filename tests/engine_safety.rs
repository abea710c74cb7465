//! Safety against processes and crashes: one writer per journal, no orphaned actions,
//! supervised action tasks, abort while something runs, wall-clock time across a crash.

mod common;

use common::plans::{
    confirm_prompt, empty_target as target, plan, resume_once_free, run, sh, step_with as step,
    until,
};

use std::path::{Path, PathBuf};
use std::time::Duration;

use flightdeck::engine::event::{AutoConfirm, Event, Outcome, Verdict};
use flightdeck::engine::process::group_alive;
use flightdeck::engine::session::{self, EngineConfig, EngineError, EngineTask};
use flightdeck::engine::state::{Mode, PromptKindTag, StepStatus};
use flightdeck::engine::{Command, SessionState, Stamped};
use flightdeck::journal::{self, Header, JournalError, JournalWriter};
use flightdeck::plan::Plan;
use flightdeck::procedure::model::{Action, Check, WaitSpec};
use flightdeck::target::Target;

fn start_at(path: &Path, plan: Plan, auto: AutoConfirm) -> EngineTask {
    start_on(path, plan, target(), auto)
}

/// [`start_at`] against `target`.
fn start_on(path: &Path, plan: Plan, target: Target, auto: AutoConfirm) -> EngineTask {
    session::start(EngineConfig {
        plan,
        target,
        auto,
        operator: "tester".into(),
        journal: path.to_path_buf(),
        observe: false,
        time_scale: 1.0,
    })
    .expect("engine starts")
}

fn yes() -> AutoConfirm {
    AutoConfirm {
        yes: true,
        ..Default::default()
    }
}

async fn end(task: EngineTask) -> SessionState {
    task.handle.shutdown().await;
    task.join.await.expect("engine task").expect("engine ok")
}

/// Poll `f` until it holds, with a deadline naming what was awaited.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn events(path: &Path) -> Vec<Stamped> {
    journal::read(path).expect("journal reads").events
}

fn pgid_of(path: &Path, step: usize) -> Option<u32> {
    events(path).iter().rev().find_map(|e| match e.event {
        Event::ProcessStarted { step: s, pgid, .. } if s == step => Some(pgid),
        _ => None,
    })
}

#[tokio::test]
async fn a_journal_has_one_writer_and_resume_on_a_live_session_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let task = start_at(
        &path,
        plan("t", vec![step("a", run(&["true"]), None)]),
        AutoConfirm::default(),
    );
    until(&task, "a prompt", |s| s.prompt.is_some()).await;
    let second = session::resume(&path, None, "mallory", false);
    match second {
        Err(EngineError::Journal(JournalError::Locked { path: p })) => assert_eq!(p, path),
        Err(e) => panic!("refused for the wrong reason: {e}"),
        Ok(_) => panic!("a second engine started on a live session"),
    }
    assert!(journal::is_locked(&path));
    // The CLI says so and offers join.
    let said = flightdeck::commands::run::live_session_message(&path);
    assert!(said.contains("live") && said.contains("join"), "{said}");
    // Nothing was written by the refused resume.
    assert!(!events(&path)
        .iter()
        .any(|e| matches!(e.event, Event::Resumed { .. })));
    end(task).await;
    // Once the session's engine is gone, the journal is free again (once any child another
    // test forked meanwhile has exec'd: see `resume_once_free`).
    let again = resume_once_free(&path).await;
    assert!(journal::is_locked(&path), "the resumed engine holds it");
    end(again).await;
}

#[tokio::test]
async fn an_absurd_timeout_saturates_instead_of_leaving_the_step_running_forever() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let mut a = run(&["true"]);
    if let Action::Run { timeout_secs, .. } = &mut a {
        *timeout_secs = 9_223_372_036_854_775_807;
    }
    let gate = Action::Wait(WaitSpec {
        probe: None,
        check: Some(Check::Run {
            argv: vec!["true".into()],
            env: Default::default(),
            stdin: None,
            timeout_secs: u64::MAX,
            expect_exit: 0,
        }),
        nodes: None,
        stable_secs: 0,
        timeout_secs: u64::MAX,
        interval_ms: 50,
    });
    let task = start_at(
        &path,
        plan("t", vec![step("a", a, None), step("g", gate, None)]),
        yes(),
    );
    let s = until(&task, "the end", |s| s.is_finished()).await;
    assert_eq!(s.mode, Mode::Finished(Outcome::Completed));
    end(task).await;
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let mut a = sh("sleep 300 & sleep 300; wait");
    if let Action::Run { timeout_secs, .. } = &mut a {
        *timeout_secs = 1;
    }
    let task = start_at(&path, plan("t", vec![step("a", a, None)]), yes());
    let s = until(&task, "the timeout", |s| {
        s.steps[0].status == StepStatus::Failed
    })
    .await;
    let detail = s.steps[0].detail.clone().unwrap_or_default();
    assert!(detail.contains("timed out"), "{detail}");
    let pgid = pgid_of(&path, 0).expect("the process group was journaled");
    eventually("the group to be gone", || !group_alive(pgid)).await;
    end(task).await;
}

/// "Killed whole on exit": the engine ending (the operator quits, the server stops) while an
/// action runs leaves none of that action's processes behind.
#[tokio::test]
async fn an_engine_that_ends_mid_action_leaves_nothing_of_it_running() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let task = start_at(
        &path,
        plan(
            "t",
            vec![step("a", sh("sleep 300 & sleep 300 & wait"), None)],
        ),
        yes(),
    );
    let s = until(&task, "the action's process group", |s| {
        s.steps[0].pgid.is_some()
    })
    .await;
    let pgid = s.steps[0].pgid.unwrap();
    assert!(group_alive(pgid));
    end(task).await;
    eventually("the group gone with its engine", || !group_alive(pgid)).await;
}

#[tokio::test]
async fn abort_stops_a_running_command_sigterm_to_its_group_and_journals_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let marker = dir.path().join("term");
    let script = format!(
        "trap 'echo got TERM > {}; exit 143' TERM; sleep 300 & wait",
        marker.display()
    );
    let task = start_at(
        &path,
        plan(
            "t",
            vec![
                step("a", sh(&script), None),
                step("b", run(&["true"]), None),
            ],
        ),
        yes(),
    );
    until(&task, "running", |s| {
        s.running() == Some(0) && s.steps[0].pgid.is_some()
    })
    .await;
    let pgid = pgid_of(&path, 0).expect("pgid journaled");
    // Today: "rejected: an action is running".
    task.handle
        .command(Command::Abort {
            rollback: false,
            reason: None,
        })
        .await
        .expect("abort accepted while the action runs");
    let s = until(&task, "aborted", |s| s.is_finished()).await;
    assert_eq!(s.mode, Mode::Finished(Outcome::Aborted));
    assert_eq!(s.steps[0].status, StepStatus::Failed);
    let detail = s.steps[0].detail.clone().unwrap_or_default();
    assert!(detail.contains("stopped (abort by flightdeck)"), "{detail}");
    assert!(detail.contains("SIGTERM"), "{detail}");
    assert_eq!(s.steps[1].status, StepStatus::Pending);
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap_or_default().trim(),
        "got TERM"
    );
    eventually("the group to be gone", || !group_alive(pgid)).await;
    end(task).await;
    // Journaled in order: the abort, then the step's end, then the session's.
    let evs = events(&path);
    let pos = |f: &dyn Fn(&Event) -> bool| evs.iter().position(|e| f(&e.event)).unwrap();
    let abort = pos(&|e| matches!(e, Event::AbortRequested { .. }));
    let stopped = pos(&|e| {
        matches!(
            e,
            Event::ActionFinished {
                verdict: Verdict::Failed,
                ..
            }
        )
    });
    let finished = pos(&|e| matches!(e, Event::Finished { .. }));
    assert!(abort < stopped && stopped < finished);
}

#[tokio::test]
async fn abort_with_rollback_cancels_a_running_gate_then_offers_the_undo() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let never = Action::Wait(WaitSpec {
        probe: None,
        check: Some(Check::Run {
            argv: vec!["false".into()],
            env: Default::default(),
            stdin: None,
            timeout_secs: 5,
            expect_exit: 0,
        }),
        nodes: None,
        stable_secs: 0,
        timeout_secs: 3600,
        interval_ms: 50,
    });
    let task = start_at(
        &path,
        plan(
            "t",
            vec![
                step("a", run(&["true"]), Some(run(&["true"]))),
                step("gate", never, None),
            ],
        ),
        AutoConfirm::default(),
    );
    for _ in 0..2 {
        confirm_prompt(&task).await;
    }
    until(&task, "the gate running", |s| s.running() == Some(1)).await;
    task.handle
        .command(Command::Abort {
            rollback: true,
            reason: None,
        })
        .await
        .expect("abort accepted while the gate runs");
    // The cancelled gate has nothing to undo: the rollback passes it and asks about a.
    let s = until(&task, "an undo prompt", |s| {
        s.prompt.is_some_and(|p| p.kind == PromptKindTag::Undo)
    })
    .await;
    assert_eq!(s.mode, Mode::RollingBack);
    assert_eq!(s.prompt.map(|p| p.step), Some(0));
    end(task).await;
    assert!(events(&path).iter().any(|e| matches!(
        &e.event,
        Event::ActionFinished {
            step: 1,
            verdict: Verdict::Inconclusive,
            detail,
            ..
        } if detail.contains("cancelled: abort by flightdeck")
    )));
}

#[tokio::test]
async fn marking_an_interrupted_undo_done_lets_the_rollback_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let task = start_at(
        &path,
        plan(
            "t",
            vec![
                step("a", run(&["true"]), Some(run(&["true"]))),
                step("b", run(&["true"]), Some(sh("sleep 300"))),
                step("c", run(&["true"]), None),
            ],
        ),
        AutoConfirm::default(),
    );
    for _ in 0..2 {
        confirm_prompt(&task).await;
        until(&task, "idle", |s| s.running().is_none()).await;
    }
    task.handle
        .command(Command::Abort {
            rollback: true,
            reason: None,
        })
        .await
        .unwrap();
    let s = until(&task, "undo of b", |s| {
        s.prompt
            .is_some_and(|p| p.kind == PromptKindTag::Undo && p.step == 1)
    })
    .await;
    task.handle
        .command(Command::Confirm {
            prompt: s.prompt.unwrap().id,
            phrase: None,
        })
        .await
        .unwrap();
    until(&task, "undo running", |s| s.running() == Some(1)).await;
    // Crash mid-undo.
    task.join.abort();
    let _ = task.join.await;
    let resumed = resume_once_free(&path).await;
    until(&resumed, "interrupted undo", |s| {
        s.prompt
            .is_some_and(|p| p.kind == PromptKindTag::Interrupted && p.step == 1)
    })
    .await;
    resumed
        .handle
        .command(Command::MarkDone { step: 1 })
        .await
        .unwrap();
    // The rollback goes on to step a's undo (it stalled here before).
    let s = until(&resumed, "undo of a", |s| {
        s.prompt
            .is_some_and(|p| p.kind == PromptKindTag::Undo && p.step == 0)
    })
    .await;
    assert_eq!(s.steps[1].status, StepStatus::Undone);
    assert_eq!(
        s.steps[1].detail.as_deref(),
        Some("undo marked done by flightdeck")
    );
    end(resumed).await;
}

#[tokio::test]
async fn headless_resume_after_a_second_crash_names_the_step_where_it_stands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let task = start_at(
        &path,
        plan(
            "t",
            vec![
                step("first", sh("sleep 300"), None),
                step("second", sh("sleep 300"), None),
            ],
        ),
        yes(),
    );
    until(&task, "first running", |s| s.running() == Some(0)).await;
    task.join.abort();
    let _ = task.join.await;
    // Crash 1 -> resume, mark the first done, the second runs; crash 2.
    let r1 = resume_once_free(&path).await;
    until(&r1, "interrupted", |s| s.prompt.is_some()).await;
    r1.handle
        .command(Command::MarkDone { step: 0 })
        .await
        .unwrap();
    until(&r1, "second running", |s| s.running() == Some(1)).await;
    r1.join.abort();
    let _ = r1.join.await;
    let r2 = resume_once_free(&path).await;
    let mut out = Vec::new();
    let (end, _) = flightdeck::headless::follow(r2, &mut out).await;
    assert!(!end.ok);
    assert!(
        end.summary.contains("step 2 (second) was interrupted"),
        "{}",
        end.summary
    );
}

#[tokio::test]
async fn time_while_flightdeck_was_down_counts_in_windows_and_durations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    // A session whose last journaled event, 1 s in, put a node read-only; then flightdeck
    // was down for a minute.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut header = Header::new("t", "00", "t", "tester");
    header.started_unix_ms = Some(now - 61_000);
    let mut t = target();
    t.nodes.push(flightdeck::target::Node {
        name: "node1".into(),
        address: "127.0.0.1:1".into(),
        role: None,
        tags: Default::default(),
        scheme: None,
    });
    let p = plan("t", vec![step("a", run(&["true"]), None)]);
    let mut w = JournalWriter::create(&path, &header).unwrap();
    let evs = [
        Event::SessionStarted {
            plan: Box::new(p),
            nodes: t.nodes.clone(),
            operator: "tester".into(),
            auto: AutoConfirm::default(),
            lb: None,
            health_probes: vec![],
            target: Some(Box::new(t.clone())),
        },
        Event::NodeFacts {
            node: "node1".into(),
            facts: [("read_only".to_string(), "true".to_string())].into(),
            prior_sent_ms: None,
        },
    ];
    for (i, e) in evs.into_iter().enumerate() {
        let st = Stamped {
            seq: i as u64 + 1,
            t_ms: i as u64 * 1000,
            event: e,
        };
        w.append(&st, true).unwrap();
    }
    drop(w);
    let task = resume_once_free(&path).await;
    let s = until(&task, "a prompt", |s| s.prompt.is_some()).await;
    // Today the gap vanished: the window said ~0 s.
    assert!(
        s.read_only.total_at(s.t_ms) >= 59_000,
        "read-only window {} ms",
        s.read_only.total_at(s.t_ms)
    );
    end(task).await;
    let down = events(&path).iter().find_map(|e| match &e.event {
        Event::Resumed { down_ms, .. } => *down_ms,
        _ => None,
    });
    assert!(down.is_some_and(|d| d >= 59_000), "{down:?}");
    let md = flightdeck::report::render(&path, flightdeck::report::ReportFormat::Md).unwrap();
    assert!(md.contains("down"), "{md}");
}

// --- The done-means test: SIGKILL of the session server mid-action, then resume. ---

/// A procedure with one `run` step and a target with one node, in `dir`.
fn files(dir: &Path, script: &str) -> (PathBuf, PathBuf) {
    let procedure = dir.join("p.toml");
    let target = dir.join("t.toml");
    std::fs::write(
        &procedure,
        format!(
            "name = \"orphan\"\nproduct = \"generic\"\n\n[[steps]]\nid = \"work\"\ntitle = \"Work\"\n\
             action = {{ kind = \"run\", argv = [\"sh\", \"-c\", {script:?}] }}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        &target,
        "name = \"t\"\n\n[[nodes]]\nname = \"node1\"\naddress = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    (procedure, target)
}

/// Start `flightdeck run --headless --yes`, wait until its action's process group is journaled,
/// check `resume` refuses the live session, then SIGKILL flightdeck. Returns the pgid.
async fn crash_mid_action(dir: &Path, script: &str) -> (PathBuf, u32) {
    let (procedure, target) = files(dir, script);
    let journal = dir.join("j.jsonl");
    let bin = env!("CARGO_BIN_EXE_flightdeck");
    let mut server = tokio::process::Command::new(bin)
        .arg("run")
        .arg(&procedure)
        .arg("--target")
        .arg(&target)
        .arg("--journal")
        .arg(&journal)
        .args(["--headless", "--yes"])
        .env("HOME", dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    eventually("the action's process group in the journal", || {
        journal::read(&journal).is_ok_and(|j| {
            j.events
                .iter()
                .any(|e| matches!(e.event, Event::ProcessStarted { .. }))
        })
    })
    .await;
    let pgid = pgid_of(&journal, 0).unwrap();
    // A second engine on the live session is refused, and the operator is pointed to join.
    let out = tokio::process::Command::new(bin)
        .arg("resume")
        .arg(&journal)
        .arg("--headless")
        .env("HOME", dir)
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("live") && err.contains("join"), "{err}");
    server.start_kill().unwrap(); // SIGKILL
    server.wait().await.unwrap();
    (journal, pgid)
}

#[tokio::test]
async fn after_a_sigkill_resume_reports_the_live_process_group_and_kill_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, pgid) = crash_mid_action(dir.path(), "sleep 300 & sleep 300 & wait").await;
    assert!(
        group_alive(pgid),
        "the action outlived flightdeck (the orphan)"
    );

    let task = session::resume(&journal, None, "tester", false).unwrap();
    let s = until(&task, "the interrupted prompt", |s| s.prompt.is_some()).await;
    assert_eq!(s.orphan, Some((0, pgid)));
    assert_eq!(s.prompt.map(|p| p.kind), Some(PromptKindTag::Interrupted));
    // No second copy: re-run, mark done, skip and undo wait for the group.
    let refused = task
        .handle
        .command(Command::Retry { step: 0 })
        .await
        .unwrap_err();
    assert!(refused.0.contains("still running"), "{refused}");
    assert!(refused.0.contains(&pgid.to_string()), "{refused}");
    assert!(task
        .handle
        .command(Command::MarkDone { step: 0 })
        .await
        .is_err());
    // The headless runner says so and offers wait or kill.
    task.handle
        .command(Command::KillOrphan { step: 0 })
        .await
        .expect("kill accepted");
    let s = until(&task, "the group gone", |s| s.orphan.is_none()).await;
    assert!(!group_alive(pgid), "no process of the group remains");
    assert_eq!(s.steps[0].status, StepStatus::Interrupted);
    // Now re-run is offered again.
    task.handle
        .command(Command::Retry { step: 0 })
        .await
        .expect("re-run once the group is gone");
    end(task).await;
    let evs = events(&journal);
    assert!(evs
        .iter()
        .any(|e| matches!(&e.event, Event::OrphanAlive { pgid: g, .. } if *g == pgid)));
    assert!(evs.iter().any(|e| matches!(
        &e.event,
        Event::OrphanGone { pgid: g, killed_by: Some(_), .. } if *g == pgid
    )));
}

#[tokio::test]
async fn after_a_sigkill_waiting_for_the_process_group_is_enough() {
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release");
    let script = format!("while [ ! -e {} ]; do sleep 0.05; done", release.display());
    let (journal, pgid) = crash_mid_action(dir.path(), &script).await;
    let task = session::resume(&journal, None, "tester", false).unwrap();
    until(&task, "the orphan", |s| s.orphan.is_some()).await;
    let mut out = Vec::new();
    // Headless names it and offers wait or kill.
    let state = task.handle.snapshot().await.unwrap();
    assert_eq!(state.orphan, Some((0, pgid)));
    std::fs::write(&release, "").unwrap();
    let s = until(&task, "the group ended", |s| s.orphan.is_none()).await;
    assert_eq!(s.steps[0].status, StepStatus::Interrupted);
    task.handle
        .command(Command::MarkDone { step: 0 })
        .await
        .expect("mark done once the group has ended");
    let (end, _) = flightdeck::headless::follow(task, &mut out).await;
    assert!(end.ok, "{}", end.summary);
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("still running"), "{text}");
    assert!(text.contains("has ended"), "{text}");
    assert!(events(&journal).iter().any(|e| matches!(
        &e.event,
        Event::OrphanGone {
            killed_by: None,
            ..
        }
    )));
}

// --- The same, with the detached session server (what `run` starts and clients join). ---

/// Whether `pid` is a process that still runs (a zombie nobody reaped has ended).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().next().map(|s| s != "Z" && s != "X")
        })
        .unwrap_or(false)
}

/// Start the session server as `run` starts it (`--serve-internal`, in its own process group,
/// its socket in `rt`), join it as the driver, confirm the step and wait until its action's
/// process group is journaled and the script wrote its pids. Returns the server, the pgid and
/// the pids (the shell and the child it started).
async fn server_mid_action(
    dir: &Path,
    script: &str,
    rt: &Path,
) -> (tokio::process::Child, PathBuf, u32, Vec<u32>) {
    use flightdeck::pairing::client::{connect_socket, hello};
    use flightdeck::pairing::runtime_dir::{self, ENV_OVERRIDE};

    let (procedure, target) = files(dir, script);
    let journal = dir.join("j.jsonl");
    let name = flightdeck::pairing::names::generate();
    let server = tokio::process::Command::new(env!("CARGO_BIN_EXE_flightdeck"))
        .arg("run")
        .arg(&procedure)
        .arg("--target")
        .arg(&target)
        .arg("--journal")
        .arg(&journal)
        .args(["--serve-internal", "--name", &name])
        .env(ENV_OVERRIDE, rt)
        .env("HOME", dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let socket = runtime_dir::socket_path(rt, &name);
    let info = runtime_dir::info_path(rt, &name);
    // The session file is written once the socket serves.
    eventually("the session server serving", || info.exists()).await;
    let mut driver = connect_socket(&socket, hello("tester", None, true, 0))
        .await
        .expect("joins the session server");
    let mut state = SessionState::empty();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let pids_file = dir.join("pids");
    let mut confirmed = false;
    while state.steps.first().and_then(|s| s.pgid).is_none() {
        let e = tokio::time::timeout_at(deadline, driver.events.recv())
            .await
            .unwrap_or_else(|_| panic!("the action did not start: {:?}", state.steps))
            .expect("the server keeps the stream open");
        state.apply(&e);
        if let (Some(p), false) = (state.prompt, confirmed) {
            driver
                .commands
                .send(Command::Confirm {
                    prompt: p.id,
                    phrase: None,
                })
                .await
                .expect("the driver's confirm runs the step");
            confirmed = true;
        }
    }
    eventually("the script's pids", || pids_file.exists()).await;
    drop(driver);
    let pgid = pgid_of(&journal, 0).expect("the process group is journaled");
    let pids: Vec<u32> = std::fs::read_to_string(&pids_file)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    (server, journal, pgid, pids)
}

#[tokio::test]
async fn a_sigkilled_session_server_leaves_a_group_that_resume_reports_and_kills_whole() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    let dir = tempfile::tempdir().unwrap();
    let rt = dir.path().join("rt");
    let pids = dir.path().join("pids");
    // The shell starts a child, then both wait: two processes in the action's group.
    let script = format!(
        "sleep 300 & echo $! > {p}.tmp; echo $$ >> {p}.tmp; mv {p}.tmp {p}; wait",
        p = pids.display()
    );
    let (mut server, journal, pgid, pids) = server_mid_action(dir.path(), &script, &rt).await;
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(pids.contains(&pgid), "the shell leads the journaled group");

    let server_pid = i32::try_from(server.id().expect("the server runs")).unwrap();
    kill(Pid::from_raw(server_pid), Signal::SIGKILL).unwrap();
    server.wait().await.unwrap();
    assert!(
        group_alive(pgid),
        "the action outlived its server (the orphan)"
    );
    assert!(pids.iter().all(|p| running(*p)), "{pids:?}");

    // `resume --headless` reports the journaled group alive and offers wait or kill; it
    // neither waits nor kills on its own.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_flightdeck"))
        .arg("resume")
        .arg(&journal)
        .arg("--headless")
        .env(flightdeck::pairing::runtime_dir::ENV_OVERRIDE, &rt)
        .env("HOME", dir.path())
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "still running (process group {pgid}): wait for it, or kill it"
        )),
        "{said}"
    );
    assert!(said.contains("wait for it or kill it (K)"), "{said}");
    assert!(group_alive(pgid), "a headless resume kills nothing");

    // The operator chooses kill (the cockpit's K sends this command).
    let task = resume_once_free(&journal).await;
    let s = until(&task, "the interrupted prompt", |s| s.prompt.is_some()).await;
    assert_eq!(s.orphan, Some((0, pgid)));
    assert_eq!(s.prompt.map(|p| p.kind), Some(PromptKindTag::Interrupted));
    let rerun = task.handle.command(Command::Retry { step: 0 }).await;
    assert!(rerun.is_err(), "no second copy while the group lives");
    task.handle
        .command(Command::KillOrphan { step: 0 })
        .await
        .expect("kill accepted");
    until(&task, "the group gone", |s| s.orphan.is_none()).await;
    eventually("no process of the group left", || {
        !group_alive(pgid) && !pids.iter().any(|p| running(*p))
    })
    .await;
    end(task).await;
    assert!(events(&journal).iter().any(|e| matches!(
        &e.event,
        Event::OrphanGone { pgid: g, killed_by: Some(_), .. } if *g == pgid
    )));
}

// --- Journals that can't be true are refused with the line; --skip-bad-lines reads past. ---

/// A finished-looking journal: header, session start (one manual-free step), then `lines`
/// verbatim (so tests can write damaged ones).
fn journal_with(dir: &Path, lines: &[String]) -> PathBuf {
    let path = dir.join("j.jsonl");
    let header = Header::new("t", "00", "t", "tester");
    drop(JournalWriter::create(&path, &header).unwrap());
    let started = Stamped {
        seq: 1,
        t_ms: 0,
        event: Event::SessionStarted {
            plan: Box::new(plan("t", vec![step("a", run(&["true"]), None)])),
            nodes: vec![],
            operator: "tester".into(),
            auto: AutoConfirm::default(),
            lb: None,
            health_probes: vec![],
            target: Some(Box::new(target())),
        },
    };
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&serde_json::to_string(&started).unwrap());
    text.push('\n');
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn note(seq: u64, text: &str) -> String {
    serde_json::to_string(&Stamped {
        seq,
        t_ms: seq.saturating_mul(10),
        event: Event::Note {
            by: "tester".into(),
            text: text.into(),
        },
    })
    .unwrap()
}

#[test]
fn duplicate_or_out_of_order_seq_and_a_second_start_are_refused_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let second_start = {
        let j = journal_with(dir.path(), &[]);
        let text = std::fs::read_to_string(&j).unwrap();
        let line = text
            .lines()
            .nth(1)
            .unwrap()
            .replacen("\"seq\":1", "\"seq\":3", 1);
        std::fs::remove_file(&j).unwrap();
        line
    };
    let cases: [(&[String], usize, &str); 3] = [
        (
            &[note(2, "a"), note(2, "b"), note(3, "c")],
            4,
            "duplicate seq 2",
        ),
        (
            &[note(3, "a"), note(2, "b"), note(4, "c")],
            4,
            "out of order",
        ),
        (
            &[note(2, "a"), second_start, note(4, "c")],
            4,
            "second session_started",
        ),
    ];
    for (lines, line, why) in cases {
        let path = journal_with(dir.path(), lines);
        let err = journal::read(&path).unwrap_err().to_string();
        assert!(err.contains(&format!("j.jsonl:{line}:")), "{err}");
        assert!(err.contains(why), "{err}");
        // Report and resume refuse it the same way.
        assert!(flightdeck::report::render(&path, flightdeck::report::ReportFormat::Md).is_err());
        // --skip-bad-lines reads past it and names it.
        let j = journal::read_with(
            &path,
            journal::ReadOptions {
                skip_bad_lines: true,
            },
        )
        .unwrap();
        assert_eq!(j.skipped.len(), 1);
        assert_eq!(j.skipped[0].0, line);
        assert_eq!(j.events.len(), 3);
        std::fs::remove_file(&path).unwrap();
    }
}

#[tokio::test]
async fn a_corrupted_middle_line_can_be_skipped_on_resume_and_that_is_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_with(
        dir.path(),
        &[
            note(2, "before"),
            "{\"seq\":3,\"t_ms\":30,\"type\":\"no".into(),
            note(4, "after"),
        ],
    );
    let refused = match session::resume(&path, None, "tester", false) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("resumed a damaged journal silently"),
    };
    assert!(refused.contains("j.jsonl:4:"), "{refused}");
    assert!(refused.contains("--skip-bad-lines"), "{refused}");
    let opts = journal::ReadOptions {
        skip_bad_lines: true,
    };
    let task = session::resume_with(&path, None, "tester", false, opts).unwrap();
    let s = until(&task, "a prompt", |s| s.prompt.is_some()).await;
    assert_eq!(s.notes.len(), 2);
    end(task).await;
    // The skip is journaled, so the journal now reads without the flag (report, replay).
    let j = journal::read(&path).expect("reads once the skip is journaled");
    assert!(j.events.iter().any(|e| matches!(
        &e.event,
        Event::Resumed { skipped_lines, .. } if skipped_lines == &vec![4]
    )));
    assert_eq!(j.skipped.len(), 1);
    flightdeck::report::render(&path, flightdeck::report::ReportFormat::Md).unwrap();
}

#[tokio::test]
async fn a_seq_at_u64_max_ends_the_session_instead_of_wrapping() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_with(dir.path(), &[note(u64::MAX, "last")]);
    let err = match session::resume(&path, None, "tester", false) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("resumed past u64::MAX"),
    };
    assert!(err.contains("exhausted"), "{err}");
    // Nothing wrapped into the journal.
    let j = journal::read(&path).unwrap();
    assert_eq!(j.events.last().map(|e| e.seq), Some(u64::MAX));
}

#[test]
fn report_does_not_panic_on_dates_past_the_year_9999() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_with(dir.path(), &[note(2, "x")]);
    let text = std::fs::read_to_string(&path).unwrap();
    // The header says the session started in the last second of 9999; an event is stamped
    // u64::MAX ms after that.
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut h: Header = serde_json::from_str(&lines[0]).unwrap();
    h.started_at = "9999-12-31T23:59:59Z".into();
    lines[0] = serde_json::to_string(&h).unwrap();
    lines[2] = note(2, "x").replace("\"t_ms\":20", "\"t_ms\":18446744073709551615");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    for format in [
        flightdeck::report::ReportFormat::Md,
        flightdeck::report::ReportFormat::Json,
    ] {
        flightdeck::report::render(&path, format).expect("a report, not a panic");
    }
}

// --- HTTP checks: the whole body within the timeout, and failure reasons that say what happened.

/// A one-trick HTTP server on loopback: every connection gets `behave`. Returns the base URL.
async fn http_server<F, Fut>(behave: F) -> String
where
    F: Fn(tokio::net::TcpStream, String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let url = base.clone();
    let behave = std::sync::Arc::new(behave);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(behave(stream, url.clone()));
        }
    });
    base
}

/// Read a request's head (through the blank line).
async fn read_head(stream: &mut tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

fn http_spec(
    url: &str,
    expect_json: bool,
    timeout_secs: u64,
) -> flightdeck::procedure::model::HttpSpec {
    let mut v = serde_json::json!({ "url": url, "timeout_secs": timeout_secs });
    if expect_json {
        v["expect_json"] = serde_json::json!({ "/ok": true });
    }
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn a_200_whose_body_stalls_fails_within_the_timeout() {
    use tokio::io::AsyncWriteExt;
    let url = http_server(|mut s, _| async move {
        read_head(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
            .await;
        // Hold the connection open, the body never completes.
        std::future::pending::<()>().await;
    })
    .await;
    let http = flightdeck::engine::check::http_client();
    // No expect_json: before, the status alone made it pass.
    let r =
        flightdeck::engine::check::run_http(&http_spec(&url, false, 1), &http, &Default::default())
            .await;
    assert!(!r.ok, "{}", r.detail);
    assert!(
        r.detail.contains("body did not complete within 1 s"),
        "{}",
        r.detail
    );
}

#[tokio::test]
async fn failure_reasons_say_what_happened() {
    use tokio::io::AsyncWriteExt;
    let http = flightdeck::engine::check::http_client();
    let run = |url: String, json: bool| {
        let http = http.clone();
        async move {
            flightdeck::engine::check::run_http(
                &http_spec(&url, json, 10),
                &http,
                &Default::default(),
            )
            .await
        }
    };

    // A body over the cap: said so, not "not JSON".
    let big = http_server(|mut s, _| async move {
        read_head(&mut s).await;
        let body = format!("{{\"ok\":true,\"pad\":\"{}\"}}", "x".repeat(300 * 1024));
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        let _ = s.write_all(head.as_bytes()).await;
        let _ = s.write_all(body.as_bytes()).await;
    })
    .await;
    let r = run(big, true).await;
    assert!(!r.ok);
    assert!(
        r.detail.contains("body truncated at 256 KiB"),
        "{}",
        r.detail
    );

    // A body that is not JSON: said so, with where.
    let text = http_server(|mut s, _| async move {
        read_head(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            .await;
    })
    .await;
    let r = run(text, true).await;
    assert!(
        r.detail.contains("not JSON (expected value"),
        "{}",
        r.detail
    );

    // The server resets the connection (it closes with the request unread).
    let reset = http_server(|s, _| async move {
        let _ = s.readable().await;
        drop(s);
    })
    .await;
    let r = run(reset, false).await;
    assert!(!r.ok);
    assert!(
        r.detail.contains("connection reset") || r.detail.contains("connection closed"),
        "{}",
        r.detail
    );
    assert!(!r.detail.contains("error sending request"), "{}", r.detail);

    // Redirects to itself. Each answer closes its connection and says so: a client that
    // reused the kept-alive connection for the next hop could find it closed under it and
    // report a reset instead of the loop (it did, once in CI).
    let looping = http_server(|mut s, url| async move {
        read_head(&mut s).await;
        let reply = format!(
            "HTTP/1.1 302 Found\r\nLocation: {url}/again\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let _ = s.write_all(reply.as_bytes()).await;
    })
    .await;
    let r = run(looping, false).await;
    assert!(r.detail.contains("redirect loop"), "{}", r.detail);

    // Nobody listens.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let r = run(closed, false).await;
    assert!(r.detail.contains("connection refused"), "{}", r.detail);
}

// --- `check` refuses what can't run. ---

#[test]
fn check_refuses_what_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t.toml");
    std::fs::write(
        &t,
        "name = \"t\"\n\n[[nodes]]\nname = \"node1\"\naddress = \"127.0.0.1:1\"\nrole = \"leader\"\n",
    )
    .unwrap();
    let check = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        match flightdeck::commands::check::load_checked(&p, Some(&t)) {
            Err(d) => d.to_string(),
            Ok(_) => panic!("check accepted {name}, which cannot run"),
        }
    };
    // On its own.
    let err = check(
        "alone.toml",
        r#"name = "cannot-run"
product = "generic"

[[steps]]
id = "too-stable"
title = "Stable longer than the timeout"
action = { kind = "wait", check = { kind = "tcp", address = "127.0.0.1:1" }, stable_secs = 60, timeout_secs = 30 }

[[steps]]
id = "bad-url"
title = "A URL that does not parse"
action = { kind = "http", url = "http://exa mple.org:99999/x" }

[[steps]]
id = "no-pause"
title = "Polling without pause"
action = { kind = "wait", check = { kind = "tcp", address = "127.0.0.1:1" }, interval_ms = 0 }

[[steps]]
id = "forever"
title = "An absurd timeout"
action = { kind = "run", argv = ["true"], timeout_secs = 9223372036854775807 }
"#,
    );
    for want in [
        "alone.toml:7:92: `stable_secs = 60` is longer than `timeout_secs = 30`",
        "alone.toml:12:33: `http://exa mple.org:99999/x` is not a URL",
        "alone.toml:17:92: `interval_ms = 0`",
        "alone.toml:22:58: `timeout_secs = 9223372036854775807` is absurd",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // Against the target.
    let err = check(
        "target.toml",
        r#"name = "cannot-run-here"
product = "generic"

[loops.data]
over = "nodes"
select = "role=data"

[[steps]]
id = "per-data-node"
title = "Per data node"
for_each = "data"
action = { kind = "manual", text = "x" }

[[steps]]
id = "unknown-node"
title = "A wait on a node the target lacks"
action = { kind = "wait", check = { kind = "tcp", address = "127.0.0.1:1" }, nodes = "node9" }
"#,
    );
    for want in [
        "target.toml:6:10: loop `data` selects no node of target `t` (it has: node1)",
        "`nodes = \"node9\"` selects no node of target `t` (it has: node1)",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn a_plan_with_no_step_is_refused_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t.toml");
    std::fs::write(&t, "name = \"t\"\n").unwrap();
    let p = dir.path().join("p.toml");
    std::fs::write(
        &p,
        "name = \"empty\"\nproduct = \"generic\"\n\n[[steps]]\nid = \"each\"\ntitle = \"Each\"\n\
         for_each = \"nodes\"\naction = { kind = \"manual\", text = \"x\" }\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flightdeck"))
        .arg("run")
        .arg(&p)
        .arg("--target")
        .arg(&t)
        .arg("--journal")
        .arg(dir.path().join("j.jsonl"))
        .args(["--headless", "--yes"])
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the plan has no steps"), "{err}");
}

/// Every output line the journal holds, in order.
fn output(path: &Path) -> Vec<String> {
    events(path)
        .into_iter()
        .filter_map(|e| match e.event {
            Event::Output { line, .. } => Some(line),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_child_gets_only_the_secrets_its_action_binds_and_never_in_argv() {
    // Both secrets are in flightdeck's environment (that is where secrets come from); the
    // action binds one to PGPASSWORD and to its input, and must not see the other at all.
    let (db, other) = ("db-pw-4f1c9a", "unreferenced-pw-77d2e0");
    std::env::set_var("FD_SAFETY_TEST_DB_PW", db);
    std::env::set_var("FD_SAFETY_TEST_OTHER_PW", other);
    let mut t = target();
    for (name, env) in [
        ("db", "FD_SAFETY_TEST_DB_PW"),
        ("other", "FD_SAFETY_TEST_OTHER_PW"),
    ] {
        t.secrets.insert(
            name.into(),
            flightdeck::target::SecretSource {
                env: env.into(),
                file: None,
            },
        );
    }
    // The script compares with the values read from files, so that neither a secret's value
    // is in its argv nor does its output print one (which would come back masked).
    let dir = tempfile::tempdir().unwrap();
    let (db_file, other_file) = (dir.path().join("db"), dir.path().join("other"));
    std::fs::write(&db_file, db).unwrap();
    std::fs::write(&other_file, other).unwrap();
    let mut a = run(&[
        "sh",
        "-c",
        "env; read -r line; [ \"$PGPASSWORD\" = \"$(cat \"$1\")\" ] && echo env-ok; \
         [ \"$line\" = \"$(cat \"$1\")\" ] && echo stdin-ok; \
         env | grep -qF \"$(cat \"$2\")\" && echo LEAKED; exit 0",
        "sh",
        db_file.to_str().unwrap(),
        other_file.to_str().unwrap(),
    ]);
    if let Action::Run { env, stdin, .. } = &mut a {
        env.insert("PGPASSWORD".into(), "${secret.db}".into());
        *stdin = Some("${secret.db}\n".into());
    }
    let path = dir.path().join("j.jsonl");
    let task = start_on(&path, plan("t", vec![step("a", a, None)]), t, yes());
    let s = until(&task, "the end", |s| s.is_finished()).await;
    assert_eq!(s.mode, Mode::Finished(Outcome::Completed));
    end(task).await;
    let out = output(&path);
    assert!(out.iter().any(|l| l == "env-ok"), "{out:?}");
    assert!(out.iter().any(|l| l == "stdin-ok"), "{out:?}");
    assert!(out.iter().any(|l| l == "PGPASSWORD=****"), "{out:?}");
    assert!(!out.iter().any(|l| l == "LEAKED"), "{out:?}");
    for var in ["FD_SAFETY_TEST_OTHER_PW", "FD_SAFETY_TEST_DB_PW"] {
        assert!(
            !out.iter().any(|l| l.starts_with(&format!("{var}="))),
            "{var} reached the child: {out:?}"
        );
    }
    // The journal holds the placeholders, never a value.
    let text = common::journal_text(&path);
    assert!(text.contains("${secret.db}"));
    assert!(!text.contains(db) && !text.contains(other));
}

/// A target with these secrets (name, environment variable, value), each variable set here.
fn target_with_secrets(secrets: &[(&str, &str, &str)]) -> Target {
    let mut t = target();
    for (name, env, value) in secrets {
        std::env::set_var(env, value);
        t.secrets.insert(
            name.to_string(),
            flightdeck::target::SecretSource {
                env: env.to_string(),
                file: None,
            },
        );
    }
    t
}

/// The `$ command` line is made with the secrets masked before it is quoted for display: a
/// secret with a `'` (shown as `'\''`) or inside an `sh -c` script (its `$` escaped as `\$`)
/// no longer reads as itself once quoted, and was shown and journaled whole.
#[tokio::test]
async fn the_command_line_shown_masks_a_secret_with_quotes_and_dollars() {
    let secret = "it's-a-$ecret-7f3e";
    let t = target_with_secrets(&[("q", "FD_SAFETY_TEST_QUOTED", secret)]);
    let a = run(&["sh", "-c", "true \"${secret.q}\"", "x=${secret.q}"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let task = start_on(&path, plan("t", vec![step("a", a, None)]), t, yes());
    let s = until(&task, "the end", |s| s.is_finished()).await;
    assert_eq!(s.mode, Mode::Finished(Outcome::Completed));
    end(task).await;
    let out = output(&path);
    let shown = out.iter().find(|l| l.starts_with("$ ")).cloned();
    assert_eq!(
        shown.as_deref(),
        Some(r#"$ sh -c 'true "****"' 'x=****'"#),
        "{out:?}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("ecret-7f3e"), "the secret was journaled");
}

/// A failed command's last line goes into the step's detail cut at 200 characters: a secret
/// across the cut is masked first, so no part of it reaches the detail or the journal.
#[tokio::test]
async fn a_secret_across_the_cut_of_a_failed_commands_last_words_is_masked() {
    let secret = "straddle-secret-9a8b7c6d";
    let t = target_with_secrets(&[("s", "FD_SAFETY_TEST_STRADDLE", secret)]);
    // 190 characters, then the secret: the 200-character cut falls inside it.
    let mut a = run(&["sh", "-c", "printf '%0190d%s\\n' 0 \"$S\"; exit 3"]);
    if let Action::Run { env, .. } = &mut a {
        env.insert("S".into(), "${secret.s}".into());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let task = start_on(&path, plan("t", vec![step("a", a, None)]), t, yes());
    let s = until(&task, "the failure", |s| s.first_failure.is_some()).await;
    let detail = s.first_failure.clone().map(|(_, d)| d).unwrap_or_default();
    end(task).await;
    assert!(detail.contains("exited 3"), "{detail}");
    assert!(
        detail.contains("****"),
        "the last words are in the detail: {detail}"
    );
    let text = common::journal_text(&path);
    assert!(
        !text.contains(&secret[..10]),
        "part of the secret was journaled"
    );
}

/// Output is masked before it is cut: a command's line at the 500-character cut, an HTTP
/// body at the 400-character excerpt. Before, the cut came first and the secret's first part
/// was shown and journaled.
#[tokio::test]
async fn a_secret_across_the_cut_of_an_output_line_or_a_body_excerpt_is_masked() {
    use tokio::io::AsyncWriteExt;
    let secret = "cut-secret-5e4d3c2b1a";
    let t = target_with_secrets(&[("c", "FD_SAFETY_TEST_CUT", secret)]);
    // 490 characters, then the secret: the 500-character cut falls inside it.
    let mut line = run(&["sh", "-c", "printf '%0490d%s\\n' 0 \"$S\""]);
    if let Action::Run { env, .. } = &mut line {
        env.insert("S".into(), "${secret.c}".into());
    }
    // 390 characters, then the secret: the excerpt's cut falls inside it.
    let url = http_server(move |mut s, _| async move {
        read_head(&mut s).await;
        let body = format!("{}{secret}", "y".repeat(390));
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        let _ = s.write_all(head.as_bytes()).await;
        let _ = s.write_all(body.as_bytes()).await;
    })
    .await;
    let body = Action::Http(http_spec(&url, false, 10));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let steps = vec![step("line", line, None), step("body", body, None)];
    let task = start_on(&path, plan("t", steps), t, yes());
    let s = until(&task, "the end", |s| s.is_finished()).await;
    assert_eq!(s.mode, Mode::Finished(Outcome::Completed));
    end(task).await;
    let out = output(&path);
    assert!(
        out.iter().any(|l| *l == format!("{}****", "0".repeat(490))),
        "{out:?}"
    );
    assert!(
        out.iter().any(|l| *l == format!("{}****", "y".repeat(390))),
        "{out:?}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains(&secret[..10]),
        "part of the secret was journaled"
    );
}

/// A target whose variable `payload` and node tag `evil` hold a value that tries every way
/// into a shell — `;`, `$(...)`, both quotes, backquotes, a glob and a leading `-` — each
/// creating a canary file in `dir` if it ran. Returns the value.
fn hostile_target(dir: &Path) -> String {
    let d = dir.display();
    let hostile = format!(r#"-n;touch {d}/canary1;$(touch {d}/canary2)'"`touch {d}/canary3` * \"#);
    let toml_str = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    std::fs::write(
        dir.join("t.toml"),
        format!(
            "name = \"t\"\n\n[vars]\npayload = \"{v}\"\n\n[[nodes]]\nname = \"n1\"\naddress = \"127.0.0.1:1\"\ntags = {{ evil = \"{v}\" }}\n",
            v = toml_str(&hostile)
        ),
    )
    .unwrap();
    hostile
}

/// `procedure` (with `DIR` standing for `dir`) checked, planned and run with `--yes` against
/// `hostile_target`: every step passes, each output file (name, lines) holds the value once a
/// line, and no canary exists. Returns the value.
async fn hostile_values_arrive_intact(
    dir: &Path,
    procedure: &str,
    outputs: &[(&str, usize)],
) -> String {
    let hostile = hostile_target(dir);
    let p = dir.join("p.toml");
    std::fs::write(&p, procedure.replace("DIR", &dir.display().to_string())).unwrap();
    let (lp, t) = flightdeck::commands::check::load_checked(&p, Some(&dir.join("t.toml")))
        .unwrap_or_else(|d| panic!("{d}"));
    let t = t.unwrap();
    let plan = flightdeck::plan::expand::build_plan(&lp, &t, &Default::default()).unwrap();
    let path = dir.join("j.jsonl");
    let task = start_on(&path, plan, t, yes());
    let s = until(&task, "the end", |s| s.is_finished()).await;
    end(task).await;
    assert_eq!(
        s.mode,
        Mode::Finished(Outcome::Completed),
        "{:?}",
        output(&path)
    );
    for (file, n) in outputs {
        let got = std::fs::read_to_string(dir.join(file)).unwrap();
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines, vec![hostile.as_str(); *n], "{file}");
    }
    for canary in ["canary1", "canary2", "canary3"] {
        assert!(!dir.join(canary).exists(), "{canary} was created");
    }
    hostile
}

#[tokio::test]
async fn values_put_into_a_shell_script_arrive_intact_and_never_run() {
    let dir = tempfile::tempdir().unwrap();
    // The value outside quotes, in double quotes, in single quotes and inside `$(...)`: known
    // when the plan is made (a target variable) and only at run time (a node tag in a gate).
    let procedure = r#"name = "quoting"
product = "generic"

[vars]
payload = ""

[[steps]]
id = "plan-time"
title = "A variable in a script"
action = { kind = "run", argv = ["sh", "-c", '''printf '%s\n' ${payload} "${payload}" '${payload}' "$(printf '%s' ${payload})" > "$1"''', "sh", "out1"], cwd = "DIR" }

[[steps]]
id = "run-time"
title = "A node's tag in a gate's script"
action = { kind = "wait", nodes = "all", check = { kind = "run", argv = ["sh", "-c", '''printf '%s\n' ${node.evil} "${node.evil}" '${node.evil}' > "$1"''', "sh", "DIR/out2"] }, timeout_secs = 30 }
"#;
    hostile_values_arrive_intact(dir.path(), procedure, &[("out1", 4), ("out2", 3)]).await;
}

/// ssh(1) as far as flightdeck relies on it: its options, the destination, then the command's
/// words joined with spaces for the remote user's shell — here a local `sh -c`, standing in
/// for the remote host's. Each destination is appended to `destinations` beside it.
fn fake_ssh(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let ssh = bin.join("ssh");
    std::fs::write(
        &ssh,
        r#"#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in
    -[BbcDEeFIiJLlmOoPpQRSWw]) shift 2 ;;
    -*) shift ;;
    *) printf '%s\n' "$1" >> "$(dirname "$0")/destinations"; shift; break ;;
  esac
done
exec sh -c "$*"
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
    ssh
}

#[tokio::test]
async fn values_put_into_an_ssh_remote_command_arrive_intact_and_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let ssh = fake_ssh(dir.path());
    // The remote command as one word and as several (ssh joins them), with options before the
    // destination; known when the plan is made and only at run time (a gate's node tag).
    let procedure = r#"name = "remote quoting"
product = "generic"

[vars]
payload = ""

[[steps]]
id = "one-word"
title = "A variable in a remote command"
action = { kind = "run", argv = ["SSH", "-p", "22", "db1", '''printf '%s\n' ${payload} "${payload}" '${payload}' "$(printf '%s' ${payload})" > DIR/out1'''] }

[[steps]]
id = "words"
title = "A variable in one of a remote command's words"
action = { kind = "run", argv = ["SSH", "-o", "BatchMode=yes", "db1", "printf", "'%s\\n'", "${payload}", "x${payload}", ">", "DIR/out2"] }

[[steps]]
id = "run-time"
title = "A node's tag in a gate's remote command"
action = { kind = "wait", nodes = "all", check = { kind = "run", argv = ["SSH", "${node.host}", '''printf '%s\n' ${node.evil} "${node.evil}" > DIR/out3'''] }, timeout_secs = 30 }
"#
    .replace("SSH", &ssh.display().to_string());
    let d = dir.path();
    let hostile = hostile_values_arrive_intact(d, &procedure, &[("out1", 4), ("out3", 2)]).await;
    let got = std::fs::read_to_string(d.join("out2")).unwrap();
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        [hostile.clone(), format!("x{hostile}")]
    );
    let destinations = std::fs::read_to_string(d.join("bin/destinations")).unwrap();
    assert_eq!(
        destinations.lines().collect::<Vec<_>>(),
        ["db1", "db1", "127.0.0.1"]
    );
}

/// Stand-ins for the wrappers a procedure puts before a shell, as far as flightdeck relies on
/// them: each runs the command written after its options (`kubectl exec POD [-c C] -- CMD`,
/// `docker exec [-u U] C CMD`, `sudo [-u U] CMD`), and `su [-] [USER] -c SCRIPT` runs SCRIPT
/// with the user's shell. Returns the folder they are in.
fn fake_wrappers(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, body) in [
        (
            "kubectl",
            r#"while [ $# -gt 0 ] && [ "$1" != "--" ]; do shift; done
shift
exec "$@""#,
        ),
        (
            "docker",
            r#"shift
while [ $# -gt 0 ]; do
  case "$1" in
    -e|-u|-w|--env|--user|--workdir) shift 2 ;;
    -*) shift ;;
    *) shift; break ;;
  esac
done
exec "$@""#,
        ),
        (
            "sudo",
            r#"while [ $# -gt 0 ]; do
  case "$1" in
    -u|-g|-C|-D) shift 2 ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
exec "$@""#,
        ),
        (
            "su",
            r#"while [ $# -gt 0 ]; do
  case "$1" in
    -c|--command) exec sh -c "$2" ;;
    *) shift ;;
  esac
done
exit 3"#,
        ),
    ] {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

#[tokio::test]
async fn values_put_into_a_wrapped_shell_script_arrive_intact_and_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake_wrappers(dir.path());
    let ssh = fake_ssh(dir.path());
    let script = |out: &str, var: &str| {
        format!(r#"'''printf '%s\n' ${{{var}}} "${{{var}}}" '${{{var}}}' > DIR/{out}'''"#)
    };
    let wrapped: Vec<Vec<String>> = vec![
        vec!["KUBECTL", "exec", "pg-0", "-c", "pg", "--", "sh", "-c"],
        vec!["SU", "-", "postgres", "-c"],
        vec!["SUDO", "-u", "root", "sh", "-c"],
        vec!["SUDO", "bash", "-lc"],
        vec!["bash", "-e", "-o", "pipefail", "-c"],
        vec!["env", "X=1", "sh", "-c"],
        vec!["DOCKER", "exec", "-u", "root", "db", "sh", "-c"],
        vec!["timeout", "30", "nice", "-n", "5", "sh", "-c"],
        vec!["SUDO", "-u", "deploy", "SSH", "-p", "22", "db1"],
    ]
    .into_iter()
    .map(|w| w.into_iter().map(|s| format!("{s:?}")).collect())
    .collect();
    let mut procedure = String::from(
        "name = \"wrapped quoting\"\nproduct = \"generic\"\n\n[vars]\npayload = \"\"\n",
    );
    let mut outputs = Vec::new();
    for (i, words) in wrapped.iter().enumerate() {
        let out = format!("out{i}");
        procedure.push_str(&format!(
            "\n[[steps]]\nid = \"s{i}\"\ntitle = \"{i}\"\naction = {{ kind = \"run\", argv = [{}, {}] }}\n",
            words.join(", "),
            script(&out, "payload")
        ));
        outputs.push((out, 3));
    }
    // Filled in at run time: a node's tag in a gate's wrapped script.
    procedure.push_str(&format!(
        "\n[[steps]]\nid = \"gate\"\ntitle = \"gate\"\naction = {{ kind = \"wait\", nodes = \"all\", timeout_secs = 30, check = {{ kind = \"run\", argv = [{}, {}] }} }}\n",
        wrapped[0].join(", "),
        script("gate", "node.evil")
    ));
    outputs.push(("gate".into(), 3));
    let procedure = procedure
        .replace("KUBECTL", &bin.join("kubectl").display().to_string())
        .replace("DOCKER", &bin.join("docker").display().to_string())
        .replace("SUDO", &bin.join("sudo").display().to_string())
        .replace(
            "\"SU\"",
            &format!("{:?}", bin.join("su").display().to_string()),
        )
        .replace("SSH", &ssh.display().to_string());
    let outputs: Vec<(&str, usize)> = outputs.iter().map(|(f, n)| (f.as_str(), *n)).collect();
    hostile_values_arrive_intact(dir.path(), &procedure, &outputs).await;
}

#[test]
fn check_finds_the_script_behind_any_wrapper_and_refuses_what_it_cannot_quote() {
    let head = "name = \"q\"\nproduct = \"generic\"\n\n[vars]\nv = \"\"\n\n[[steps]]\nid = \"a\"\ntitle = \"a\"\n";
    let backquoted = "\"echo `cat ${v}`\"";
    // (argv with SCRIPT where the script goes, what the error says, the word it is reported at)
    let cases: Vec<(String, &str, &str)> = [
        r#"["kubectl", "exec", "pg-0", "--", "sh", "-c", SCRIPT]"#,
        r#"["oc", "-n", "db", "exec", "pg-0", "-c", "pg", "--", "bash", "-lc", SCRIPT]"#,
        r#"["su", "-", "postgres", "-c", SCRIPT]"#,
        r#"["runuser", "-l", "postgres", "--command", SCRIPT]"#,
        r#"["sudo", "sh", "-c", SCRIPT]"#,
        r#"["sudo", "-u", "postgres", "-E", "bash", "-lc", SCRIPT]"#,
        r#"["bash", "-l", "-c", SCRIPT]"#,
        r#"["bash", "-o", "pipefail", "-c", SCRIPT]"#,
        r#"["env", "PGHOST=x", "sh", "-c", SCRIPT]"#,
        r#"["docker", "exec", "-u", "root", "db", "sh", "-c", SCRIPT]"#,
        r#"["timeout", "30", "nice", "-n", "5", "sh", "-c", SCRIPT]"#,
        r#"["sudo", "-u", "deploy", "ssh", "-p", "22", "db1", SCRIPT]"#,
    ]
    .into_iter()
    .map(|a| (a.replace("SCRIPT", backquoted), "backquotes", backquoted))
    .chain([
        // A script read again by a wrapped shell inside a script or a remote command.
        (
            r#"["sh", "-c", "su - pg -c 'rm ${v}'"]"#.into(),
            "pass it as an argument",
            "\"su - pg",
        ),
        (
            r#"["sh", "-c", "su --command='rm ${v}' pg"]"#.into(),
            "pass it as an argument",
            "\"su --command",
        ),
        (
            r#"["sh", "-c", "kubectl exec pg-0 -- bash -o pipefail -c 'rm ${v}'"]"#.into(),
            "pass it as an argument",
            "\"kubectl exec",
        ),
        (
            r#"["ssh", "db1", "sudo", "su", "-c", "'rm ${v}'"]"#.into(),
            "pass it as an argument",
            "\"sudo\"",
        ),
        (
            r#"["kubectl", "exec", "pg-0", "--", "sh", "-c", "sh -c 'rm ${v}'"]"#.into(),
            "pass it as an argument",
            "\"sh -c '",
        ),
    ])
    .collect();
    for (argv, says, at) in cases {
        let line = format!("action = {{ kind = \"run\", argv = {argv} }}");
        let col = line.find(at).expect("the reported word is in the line") + 1;
        let err = check_error(&format!("{head}{line}\n"));
        assert!(
            err.contains(&format!("p.toml:10:{col}:")) && err.contains(says),
            "{argv}: {err}"
        );
    }
}

/// `procedure` as `flightdeck check` reads it: its error.
fn check_error(procedure: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.toml");
    std::fs::write(&p, procedure).unwrap();
    flightdeck::commands::check::load_checked(&p, None)
        .map(|_| ())
        .unwrap_err()
        .to_string()
}

#[test]
fn check_refuses_a_value_that_a_second_shell_would_read_again() {
    let head = "name = \"q\"\nproduct = \"generic\"\n\n[vars]\nv = \"\"\n\n[[steps]]\nid = \"a\"\ntitle = \"a\"\n";
    for (argv, col, says) in [
        // An ssh inside a local script: the remote shell reads its command again.
        (
            r#"["sh", "-c", "ssh h rm ${v}"]"#,
            46,
            "run ssh as the command itself",
        ),
        // A shell inside the remote command: it reads its script again.
        (
            r#"["ssh", "h", "sudo sh -c 'rm ${v}'"]"#,
            46,
            "pass it as an argument",
        ),
        // The same as separate words: ssh joins them into one command.
        (
            r#"["ssh", "-p", "22", "h", "sudo", "sh", "-c", "'rm ${v}'"]"#,
            58,
            "pass it as an argument",
        ),
        (r#"["sh", "-c", "eval rm ${v}"]"#, 46, "eval"),
    ] {
        let err = check_error(&format!(
            "{head}action = {{ kind = \"run\", argv = {argv} }}\n"
        ));
        assert!(
            err.contains(&format!("p.toml:10:{col}:")) && err.contains(says),
            "{argv}: {err}"
        );
    }
}

#[test]
fn check_refuses_a_template_a_script_cannot_quote() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.toml");
    std::fs::write(
        &p,
        "name = \"q\"\nproduct = \"generic\"\n\n[vars]\nv = \"\"\n\n[[steps]]\nid = \"a\"\ntitle = \"a\"\naction = { kind = \"run\", argv = [\"sh\", \"-c\", \"echo `cat ${v}`\"] }\n",
    )
    .unwrap();
    let err = flightdeck::commands::check::load_checked(&p, None)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("p.toml:10:46:") && err.contains("backquotes") && err.contains("\"$1\""),
        "{err}"
    );
}

/// Every `pid`/`pgid` field of the journal equal to `from` set to `to` (what the journal
/// would hold had the kernel given the action's pgid to `to`'s process).
fn repoint_journal(path: &Path, from: u32, to: u32) {
    fn walk(v: &mut serde_json::Value, from: u32, to: u32) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if (k == "pid" || k == "pgid") && x.as_u64() == Some(u64::from(from)) {
                        *x = to.into();
                    } else {
                        walk(x, from, to);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, from, to)),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        walk(&mut v, from, to);
        out.push_str(&serde_json::to_string(&v).unwrap());
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

#[tokio::test]
async fn resume_leaves_alone_a_process_group_whose_pgid_was_reused() {
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release");
    let script = format!("while [ ! -e {} ]; do sleep 0.05; done", release.display());
    let (journal, pgid) = crash_mid_action(dir.path(), &script).await;
    // The journal says which process led the group, not only its number.
    let started = events(&journal).iter().find_map(|e| match &e.event {
        Event::ProcessStarted { started, .. } => started.clone(),
        _ => None,
    });
    assert_eq!(
        started,
        flightdeck::engine::process::start_identity(pgid),
        "the leader's identity is journaled"
    );
    // The action's group ends while flightdeck is down...
    std::fs::write(&release, "").unwrap();
    eventually("the group to end", || !group_alive(pgid)).await;
    // ...and its number goes to an unrelated process group (the kernel reuses pids; here the
    // journal is pointed at a group that started later, which is what reuse looks like).
    use std::os::unix::process::CommandExt;
    let mut unrelated = std::process::Command::new("sleep")
        .arg("300")
        .process_group(0)
        .spawn()
        .unwrap();
    let other = unrelated.id();
    repoint_journal(&journal, pgid, other);
    assert!(group_alive(other));
    let task = session::resume(&journal, None, "tester", false).unwrap();
    let s = until(&task, "the interrupted prompt", |s| s.prompt.is_some()).await;
    assert_eq!(s.orphan, None, "an unrelated group is not the action's");
    assert_eq!(s.prompt.map(|p| p.kind), Some(PromptKindTag::Interrupted));
    // Nothing waits on it and nothing kills it: the step can be re-run at once.
    let refused = task.handle.command(Command::KillOrphan { step: 0 }).await;
    assert!(refused.is_err());
    task.handle
        .command(Command::MarkDone { step: 0 })
        .await
        .expect("not blocked by someone else's process group");
    end(task).await;
    assert!(group_alive(other), "the unrelated group was left alone");
    assert!(!events(&journal)
        .iter()
        .any(|e| matches!(e.event, Event::OrphanAlive { .. })));
    let _ = unrelated.kill();
    let _ = unrelated.wait();
}

// --- Checks (probes, gates, verify) that run a command. ---

fn command_check(script: &str, timeout_secs: u64) -> Check {
    Check::Run {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: Default::default(),
        stdin: None,
        timeout_secs,
        expect_exit: 0,
    }
}

/// A check command that times out leaves nothing running: before, only the shell was killed
/// (`kill_on_drop`) and what it forked lived on, one more each probe interval.
#[tokio::test]
async fn a_check_that_times_out_leaves_no_process_behind() {
    use flightdeck::engine::check;
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let script = format!("sleep 300 & echo $! > {}; wait", pids.display());
    let secrets = flightdeck::engine::strings::Secrets::default();
    let r = check::run_check(&command_check(&script, 1), &check::http_client(), &secrets).await;
    assert!(
        !r.ok && r.detail.contains("timed out after 1 s"),
        "{}",
        r.detail
    );
    let grandchild: u32 = std::fs::read_to_string(&pids)
        .expect("the script wrote its child's pid")
        .trim()
        .parse()
        .unwrap();
    eventually("the check's grandchild to be gone", || !running(grandchild)).await;
}

/// A check command's output is kept up to a cap (its first line and a JSON document are what
/// a check reads), the rest drained so the command still finishes, and the detail says so.
/// Before, the whole output was kept and nothing said.
#[tokio::test]
async fn a_check_that_prints_a_lot_is_cut_and_says_so() {
    use flightdeck::engine::check::{self, OUTPUT_CAP};
    let secrets = flightdeck::engine::strings::Secrets::default();
    let script = format!("echo first; head -c {} /dev/zero", OUTPUT_CAP * 4);
    let r = check::run_check(&command_check(&script, 30), &check::http_client(), &secrets).await;
    assert!(r.ok, "{}", r.detail);
    assert!(
        r.detail.starts_with(&format!(
            "exit 0 (output cut at {} KiB): first",
            OUTPUT_CAP / 1024
        )),
        "{}",
        r.detail
    );
    // Within the cap, nothing is said.
    let r = check::run_check(
        &command_check("echo short", 30),
        &check::http_client(),
        &secrets,
    )
    .await;
    assert_eq!(r.detail, "exit 0: short");
}

/// The headless log prints what commands said and what products answered; an OSC (window
/// title, clipboard) or CSI (colours, cursor moves, clearing the screen) in it reaches the
/// operator's terminal as text only, cleaned as the cockpit cleans it. Before, it went out raw.
#[tokio::test]
async fn the_headless_log_passes_no_escape_sequence_to_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let script = r"printf '\033]0;owned\007title \033[31mred\033[0m\033[2J\n'; \
                   printf 'progress 10%%\r\033]52;c;aGk=\033\\progress 90%%\n' >&2; exit 3";
    let task = start_at(&path, plan("t", vec![step("a", sh(script), None)]), yes());
    let mut out = Vec::new();
    let (end, _) = flightdeck::headless::follow(task, &mut out).await;
    assert!(!end.ok, "{}", end.summary);
    let text = String::from_utf8_lossy(&out);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(text.contains("  | title red\n"), "{text}");
    assert!(text.contains("  ! progress 90%\n"), "{text}");
    // The failure's detail (the command's last words) is cleaned too.
    assert!(text.contains("exited 3 (expected 0)"), "{text}");
}

/// Every part of `secret` of `min` bytes or more (at character boundaries) found in `text`.
fn secret_parts_in(text: &str, secret: &str, min: usize) -> Vec<String> {
    let mut found = Vec::new();
    for len in min..=secret.len() {
        for at in 0..=secret.len() - len {
            if let Some(part) = secret.get(at..at + len) {
                if text.contains(part) {
                    found.push(part.to_string());
                }
            }
        }
    }
    found
}

/// A step's output masked in the stream as the pipe gives it: a run of a repetitive secret
/// (`Qz9` over and over, each occurrence overlapping the next) across a 4,096-byte piece of a
/// long line, a secret written in two parts (two writes), one across a line's 500-character
/// cut, and one with a quote and a backslash, raw and as it reads in JSON. No part of any of
/// them of three bytes or more (masked secrets are four bytes at least; three keeps ordinary
/// journal text like `\"` from matching) reaches the journal file or the events a cockpit
/// gets, and no character of the repetitive one shows in any line of output. Before, the
/// run's first bytes were left at the end of one piece and its last at the start of the next.
#[tokio::test]
async fn no_part_of_a_secret_cut_by_a_piece_a_read_or_a_line_reaches_the_journal_or_a_cockpit() {
    let (rep, quoted) = ("Qz9Qz9Qz9Qz9", r#"QZ"Zq\9zQ-4Hw"#);
    let t = target_with_secrets(&[
        ("rep", "FD_SAFETY_TEST_REPEAT", rep),
        ("quoted", "FD_SAFETY_TEST_QUOTED_JSON", quoted),
    ]);
    // The run from 4,080 bytes on (across the first piece of the line at 4,096), each
    // occurrence a write of its own; lines that are all run, 9,600 bytes (more than two
    // pieces: no cut outside the run is near) after 0 to 2 dashes; then half a secret, the rest in a second
    // write; the secret 490 characters into a line; the quoted one raw and escaped as JSON.
    let script = r#"printf '%04080d' 0 | tr 0 .; for i in 1 2 3 4 5 6 7 8 9 10; do printf %s "$R"; done; echo
        for p in '' - --; do printf %s "$p"; i=0; while [ $i -lt 800 ]; do printf %s "$R"; i=$((i+1)); done; echo; done
        printf 'half %s' "${R%??????}"; printf '%s end\n' "${R#??????}"
        printf '%0490d%s\n' 0 "$R"
        printf '%s\n' "$P"
        printf '{"pw":"%s"}\n' "$(printf %s "$P" | sed 's/[\\"]/\\&/g')""#;
    let mut a = run(&["sh", "-c", script]);
    if let Action::Run { env, .. } = &mut a {
        env.insert("R".into(), "${secret.rep}".into());
        env.insert("P".into(), "${secret.quoted}".into());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let task = start_on(&path, plan("t", vec![step("a", a, None)]), t, yes());
    let mut cockpit = task.handle.attach("cockpit", false).await.expect("attach");
    let mut seen = Vec::new();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(30), cockpit.events.recv())
            .await
            .expect("the session goes on")
            .expect("the session finishes before the feed closes");
        let done = matches!(e.event, Event::Finished { .. });
        seen.push(e);
        if done {
            break;
        }
    }
    let s = end(task).await;
    assert_eq!(s.mode, Mode::Finished(Outcome::Completed));
    let lines: Vec<String> = seen
        .iter()
        .filter_map(|e| match &e.event {
            Event::Output { line, .. } => Some(line.clone()),
            _ => None,
        })
        .collect();
    // Each place a secret was printed shows a mask.
    for expected in [
        "half **** end".to_string(),
        format!("{}****", "0".repeat(490)),
        "****".to_string(),
        r#"{"pw":"****"}"#.to_string(),
    ] {
        assert!(lines.contains(&expected), "{expected:?} in {lines:?}");
    }
    let sent: String = seen
        .iter()
        .map(|e| serde_json::to_string(e).expect("an event serializes"))
        .collect();
    let journal = std::fs::read_to_string(&path).expect("the journal reads");
    let escaped = serde_json::to_string(quoted).expect("json");
    let escaped = &escaped[1..escaped.len() - 1];
    for (what, text) in [("the journal", &journal), ("the cockpit's events", &sent)] {
        for secret in [rep, quoted, escaped] {
            let parts = secret_parts_in(text, secret, 3);
            assert!(
                parts.is_empty(),
                "{what} holds parts of {secret}: {parts:?}"
            );
        }
    }
    for l in lines.iter().filter(|l| !l.starts_with("$ ")) {
        assert!(
            !l.contains(['Q', 'z', '9']),
            "a part of the repetitive secret shows: {l:?}"
        );
    }
}

/// A check's output cut at its cap inside a run of a repetitive secret: the run is one mask
/// and nothing of it follows. Before, a secret's length was dropped from the end of what was
/// kept, a cut of its own inside the run, and the bytes before it showed after the mask.
#[tokio::test]
async fn a_check_cut_at_its_cap_inside_a_repetitive_secret_shows_none_of_it() {
    use flightdeck::engine::check::{self, OUTPUT_CAP};
    let rep = "Qz9Qz9Qz9Qz9";
    std::env::set_var("FD_SAFETY_TEST_CAPPED", rep);
    let decl = [(
        "rep".to_string(),
        flightdeck::target::SecretSource {
            env: "FD_SAFETY_TEST_CAPPED".into(),
            file: None,
        },
    )]
    .into_iter()
    .collect();
    let secrets = flightdeck::engine::strings::Secrets::from_env(&decl);
    // Every offset of the cap in the run: it starts 0 to 11 bytes later each time.
    for offset in 0..rep.len() {
        let script = format!(
            "head -c {offset} /dev/zero | tr '\\0' .; yes {rep} | tr -d '\\n' | head -c {}",
            OUTPUT_CAP * 2
        );
        let r =
            check::run_check(&command_check(&script, 30), &check::http_client(), &secrets).await;
        assert!(r.ok, "{}", r.detail);
        let shown = format!("{} {}", r.detail, r.excerpt);
        assert!(!shown.contains(['Q', 'z', '9']), "offset {offset}: {shown}");
        assert!(
            r.detail.ends_with(&format!("{}****", ".".repeat(offset))),
            "{}",
            r.detail
        );
    }
}
