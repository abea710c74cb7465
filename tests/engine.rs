//! The engine's state machine, journal and resume, on hand-made plans with real (tiny) actions.

mod common;

use common::plans::{
    confirm_prompt, empty_target as target, plan, resume_once_free, run, sh, step_with as step,
    until,
};

use std::time::Duration;

use flightdeck::engine::event::{AutoConfirm, Event, Outcome, Phase, PromptKind};
use flightdeck::engine::session::{self, EngineConfig, EngineTask};
use flightdeck::engine::state::{Mode, StepStatus};
use flightdeck::engine::{Command, SessionState, Stamped};
use flightdeck::journal;
use flightdeck::plan::{Confirm, Plan};
use flightdeck::procedure::model::Action;
use flightdeck::target::{SecretSource, Target};

fn start(plan: Plan, target: Target, auto: AutoConfirm, dir: &tempfile::TempDir) -> EngineTask {
    session::start(EngineConfig {
        plan,
        target,
        auto,
        operator: "tester".into(),
        journal: dir.path().join("j.jsonl"),
        observe: false,
        time_scale: 1.0,
    })
    .expect("engine starts")
}

#[tokio::test]
async fn yes_runs_everything_and_the_journal_folds_to_the_live_state() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(
        "test",
        vec![
            step("a", run(&["echo", "hello"]), None),
            step("b", run(&["true"]), None),
        ],
    );
    let auto = AutoConfirm {
        yes: true,
        ..Default::default()
    };
    let task = start(p, target(), auto, &dir);
    let live = until(&task, "finish", |s| s.is_finished()).await;
    assert_eq!(live.mode, Mode::Finished(Outcome::Completed));
    assert!(live.steps[0].output.iter().any(|l| l.line == "hello"));
    task.handle.shutdown().await;
    let end = task.join.await.unwrap().unwrap();
    let j = journal::read(&dir.path().join("j.jsonl")).unwrap();
    assert_eq!(j.header.procedure, "test");
    let folded = SessionState::fold(&j.events);
    assert_eq!(folded.steps, end.steps);
    assert_eq!(folded.mode, end.mode);
    // seq numbers are contiguous from 1
    for (i, e) in j.events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
    }
}

#[tokio::test]
async fn failure_stops_and_asks_then_retry_skip_and_undo_in_reverse() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("flag");
    let p = plan(
        "test",
        vec![
            step("one", run(&["true"]), Some(run(&["true"]))),
            step("two", run(&["true"]), Some(run(&["true"]))),
            // fails until the flag file exists
            step("three", run(&["test", "-e", flag.to_str().unwrap()]), None),
        ],
    );
    let task = start(p, target(), AutoConfirm::default(), &dir);
    confirm_prompt(&task).await;
    until(&task, "one done", |s| {
        s.steps[0].status == StepStatus::Succeeded
    })
    .await;
    confirm_prompt(&task).await;
    until(&task, "two done", |s| {
        s.steps[1].status == StepStatus::Succeeded
    })
    .await;
    confirm_prompt(&task).await;
    let s = until(&task, "three failed", |s| {
        s.steps[2].status == StepStatus::Failed
    })
    .await;
    assert!(s.steps[2].detail.as_deref().unwrap().contains("exited 1"));
    // Nothing continues on its own: a Failed prompt is open.
    let s = until(&task, "failed prompt", |s| s.prompt.is_some()).await;
    assert_eq!(s.prompt.unwrap().step, 2);
    // Undo must go in reverse order: step one is refused while two is done.
    let r = task.handle.command(Command::Undo { step: 0 }).await;
    assert!(r.unwrap_err().0.contains("reverse order"));
    std::fs::write(&flag, "").unwrap();
    task.handle
        .command(Command::Retry { step: 2 })
        .await
        .unwrap();
    let s = until(&task, "finished", |s| s.is_finished()).await;
    assert_eq!(s.steps[2].attempts, 2);
    assert_eq!(s.mode, Mode::Finished(Outcome::Completed));
}

#[tokio::test]
async fn abort_with_rollback_undoes_completed_steps_in_reverse_each_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let append = |word: &str| Action::Run {
        argv: vec![
            "sh".into(),
            "-c".into(),
            format!("echo {word} >> \"$1\""),
            "sh".into(),
            log.to_str().unwrap().into(),
        ],
        env: Default::default(),
        stdin: None,
        cwd: None,
        timeout_secs: 10,
        expect_exit: 0,
    };
    let p = plan(
        "test",
        vec![
            step("a", append("do-a"), Some(append("undo-a"))),
            step("b", append("do-b"), Some(append("undo-b"))),
            step("c", run(&["false"]), None),
        ],
    );
    let task = start(p, target(), AutoConfirm::default(), &dir);
    for _ in 0..3 {
        confirm_prompt(&task).await;
        until(&task, "settled", |s| s.running().is_none()).await;
    }
    until(&task, "c failed", |s| {
        s.steps[2].status == StepStatus::Failed
    })
    .await;
    task.handle
        .command(Command::Abort {
            rollback: true,
            reason: Some("  c cannot pass\non this cluster\u{7} ".into()),
        })
        .await
        .unwrap();
    // c failed with no undo: the rollback passes it without asking (journaled as such), then
    // undoes b, then a — each confirmed.
    let mut prompts = Vec::new();
    for _ in 0..3 {
        let s = until(&task, "undo prompt or end", |s| {
            s.prompt.is_some() || s.is_finished()
        })
        .await;
        if s.is_finished() {
            break;
        }
        prompts.push(s.prompt.unwrap().step);
        confirm_prompt(&task).await;
        until(&task, "undo ran", |s| s.running().is_none()).await;
    }
    let s = until(&task, "rolled back", |s| s.is_finished()).await;
    assert_eq!(s.mode, Mode::Finished(Outcome::RolledBack));
    assert_eq!(prompts, vec![1, 0]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text, "do-a\ndo-b\nundo-b\nundo-a\n");
    let j = journal::read(&dir.path().join("j.jsonl")).unwrap();
    let c_undo: Vec<&Event> = j
        .events
        .iter()
        .map(|e| &e.event)
        .filter(|e| match e {
            Event::PromptOpened { step, prompt, .. } => *step == 2 && *prompt == PromptKind::Undo,
            Event::ActionFinished { step, phase, .. } => *step == 2 && *phase == Phase::Undo,
            _ => false,
        })
        .collect();
    assert!(
        matches!(
            c_undo.as_slice(),
            [Event::ActionFinished { detail, .. }] if detail == session::NOTHING_TO_UNDO
        ),
        "{c_undo:?}"
    );
    // The operator's reason is journaled with the abort, as one clean line.
    assert!(
        j.events.iter().any(|e| matches!(
            &e.event,
            Event::AbortRequested { rollback: true, reason: Some(r), .. }
                if r == "c cannot pass on this cluster"
        )),
        "{:?}",
        j.events
    );
}

#[tokio::test]
async fn phrase_steps_need_the_exact_phrase_and_stale_prompts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut s1 = step("wipe", run(&["true"]), None);
    s1.confirm = Confirm::Phrase {
        phrase: "wipe node1".into(),
    };
    let task = start(
        plan("test", vec![s1]),
        target(),
        AutoConfirm {
            yes: true,
            ..Default::default()
        },
        &dir,
    );
    // --yes alone never answers a phrase step.
    let s = until(&task, "prompt", |s| s.prompt.is_some()).await;
    let id = s.prompt.unwrap().id;
    let bad = task
        .handle
        .command(Command::Confirm {
            prompt: id,
            phrase: Some("wipe".into()),
        })
        .await;
    assert!(bad.unwrap_err().0.contains("wipe node1"));
    let stale = task
        .handle
        .command(Command::Confirm {
            prompt: id + 100,
            phrase: Some("wipe node1".into()),
        })
        .await;
    assert!(stale.is_err());
    task.handle
        .command(Command::Confirm {
            prompt: id,
            phrase: Some("wipe node1".into()),
        })
        .await
        .unwrap();
    until(&task, "done", |s| s.is_finished()).await;
}

#[tokio::test]
async fn irreversible_steps_stop_undo_and_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let mut s2 = step("migrate", run(&["true"]), Some(run(&["true"])));
    s2.irreversible = Some("the store format changes".into());
    let p = plan(
        "test",
        vec![
            step("a", run(&["true"]), Some(run(&["true"]))),
            s2,
            step("c", run(&["false"]), None),
        ],
    );
    let task = start(p, target(), AutoConfirm::default(), &dir);
    for _ in 0..3 {
        confirm_prompt(&task).await;
        until(&task, "settled", |s| s.running().is_none()).await;
    }
    let s = until(&task, "c failed", |s| {
        s.steps[2].status == StepStatus::Failed
    })
    .await;
    assert_eq!(s.point_of_no_return(), Some(1));
    // Past it, a full rollback is refused (the override is in tests/rollback.rs), and so is an
    // undo of the irreversible step; steps after it can still be undone one by one.
    let refused = task
        .handle
        .command(Command::Abort {
            rollback: true,
            reason: None,
        })
        .await
        .unwrap_err();
    assert!(refused.0.contains("irreversible"), "{refused}");
    let undo = task.handle.command(Command::Undo { step: 1 }).await;
    assert!(undo.unwrap_err().0.contains("reverse order"));
    task.handle
        .command(Command::Abort {
            rollback: false,
            reason: None,
        })
        .await
        .unwrap();
    let s = until(&task, "stopped", |s| s.is_finished()).await;
    assert_eq!(s.mode, Mode::Finished(Outcome::Aborted));
    assert_eq!(s.steps[0].status, StepStatus::Succeeded);
    assert_eq!(s.steps[1].status, StepStatus::Succeeded);
}

#[tokio::test]
async fn a_crash_mid_action_resumes_as_interrupted_and_is_never_rerun_silently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let marker = dir.path().join("ran");
    let slow = Action::Run {
        argv: vec![
            "sh".into(),
            "-c".into(),
            "echo x >> \"$1\"; sleep 30".into(),
            "sh".into(),
            marker.to_str().unwrap().into(),
        ],
        env: Default::default(),
        stdin: None,
        cwd: None,
        timeout_secs: 60,
        expect_exit: 0,
    };
    let p = plan(
        "test",
        vec![
            step("slow", slow, None),
            step("after", run(&["true"]), None),
        ],
    );
    let task = start(
        p,
        target(),
        AutoConfirm {
            yes: true,
            ..Default::default()
        },
        &dir,
    );
    until(&task, "running", |s| s.running() == Some(0)).await;
    // The command has done its work (ending the engine kills its process group).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&marker).unwrap_or_default() != "x\n" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the command never ran"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Simulate a crash: kill the engine task mid-action and tear the last journal line.
    task.join.abort();
    let _ = task.join.await;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"seq\":99,\"t_ms\":1,\"type\":\"outp");
    std::fs::write(&path, bytes).unwrap();
    let read = journal::read(&path).unwrap();
    assert!(read.torn_tail.is_some());

    let resumed = resume_once_free(&path).await;
    let s = until(&resumed, "interrupted prompt", |s| s.prompt.is_some()).await;
    assert_eq!(s.steps[0].status, StepStatus::Interrupted);
    assert_eq!(
        s.prompt.map(|p| (p.step, p.kind)),
        Some((0, flightdeck::engine::state::PromptKindTag::Interrupted))
    );
    // --yes is in force, yet nothing re-ran the step.
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "x\n");
    resumed
        .handle
        .command(Command::MarkDone { step: 0 })
        .await
        .unwrap();
    until(&resumed, "finished", |s| s.is_finished()).await;
    resumed.handle.shutdown().await;
    let end = resumed.join.await.unwrap().unwrap();
    // The torn tail was set aside, and the journal still folds to the same state.
    assert!(dir.path().join("j.jsonl.torn").exists());
    let again = journal::read(&path).unwrap();
    assert!(again.torn_tail.is_none());
    assert_eq!(SessionState::fold(&again.events).steps, end.steps);
}

#[tokio::test]
async fn secrets_are_used_but_never_journaled() {
    let dir = tempfile::tempdir().unwrap();
    // SAFETY: test-local variable name; set before the engine reads it.
    unsafe { std::env::set_var("FLIGHTDECK_TEST_TOKEN", "s3cr3t-t0ken-value") };
    let mut t = target();
    t.secrets.insert(
        "TOKEN".into(),
        SecretSource {
            env: "FLIGHTDECK_TEST_TOKEN".into(),
            file: None,
        },
    );
    let p = plan(
        "test",
        vec![step(
            "use",
            run(&["echo", "token is ${secret.TOKEN}"]),
            None,
        )],
    );
    let task = start(
        p,
        t,
        AutoConfirm {
            yes: true,
            ..Default::default()
        },
        &dir,
    );
    let s = until(&task, "finished", |s| s.is_finished()).await;
    assert!(s.steps[0].output.iter().any(|l| l.line == "token is ****"));
    task.handle
        .command(Command::Note {
            text: "pasted s3cr3t-t0ken-value by mistake".into(),
        })
        .await
        .unwrap();
    task.handle.shutdown().await;
    let _ = task.join.await;
    let text = common::journal_text(&dir.path().join("j.jsonl"));
    assert!(
        !text.contains("s3cr3t-t0ken-value"),
        "secret leaked into the journal"
    );
    assert!(text.contains("${secret.TOKEN}"));
}

#[tokio::test]
async fn observers_cannot_drive_and_two_person_steps_wait_for_a_second_approval() {
    let dir = tempfile::tempdir().unwrap();
    let mut s1 = step("stop", run(&["true"]), None);
    s1.approvals = 2;
    let task = start(
        plan("test", vec![s1]),
        target(),
        AutoConfirm::default(),
        &dir,
    );
    // In-process, the caller vouches for identities (the pairing server passes the kernel's).
    let who = |uid: u32, user: &str| flightdeck::engine::identity::Identity {
        uid,
        user: user.into(),
    };
    let driver = task
        .handle
        .attach_as(who(1000, "alice"), "alice", true)
        .await
        .unwrap();
    let observer = task
        .handle
        .attach_as(who(1001, "bob"), "bob", true)
        .await
        .unwrap();
    let s = until(&task, "prompt", |s| {
        s.prompt.is_some() && s.operators.len() == 2
    })
    .await;
    assert!(s.operators.iter().any(|o| o.name == "alice" && o.driver));
    assert!(s.operators.iter().any(|o| o.name == "bob" && !o.driver));
    let id = s.prompt.unwrap().id;
    let r = observer
        .commands
        .send(Command::Confirm {
            prompt: id,
            phrase: None,
        })
        .await;
    assert!(r.unwrap_err().0.contains("only the driver"));
    driver
        .commands
        .send(Command::Confirm {
            prompt: id,
            phrase: None,
        })
        .await
        .unwrap();
    let s = until(&task, "one approval", |s| s.steps[0].approvals.len() == 1).await;
    assert_eq!(s.steps[0].status, StepStatus::Awaiting);
    observer
        .commands
        .send(Command::Approve { prompt: id })
        .await
        .unwrap();
    let s = until(&task, "done", |s| s.is_finished()).await;
    assert_eq!(
        s.steps[0].approvals,
        vec!["alice".to_string(), "bob".to_string()]
    );
    // Handover: bob asks, alice grants.
    observer
        .commands
        .send(Command::RequestControl)
        .await
        .unwrap();
    let s = until(&task, "request", |s| s.control_request.is_some()).await;
    let bob = s.control_request.unwrap().0;
    driver
        .commands
        .send(Command::GrantControl { to: bob })
        .await
        .unwrap();
    let s = until(&task, "bob drives", |s| {
        s.driver().map(|d| d.name.as_str()) == Some("bob")
    })
    .await;
    assert_eq!(s.operators.len(), 2);
}

#[tokio::test]
async fn a_late_joiner_sees_every_event_from_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan("test", vec![step("a", run(&["echo", "hi"]), None)]);
    let task = start(
        p,
        target(),
        AutoConfirm {
            yes: true,
            ..Default::default()
        },
        &dir,
    );
    until(&task, "finished", |s| s.is_finished()).await;
    let mut client = task.handle.attach("late", false).await.unwrap();
    let mut seen: Vec<Stamped> = Vec::new();
    // Read until what was seen folds to the end with the joiner in it (not until a quiet
    // spell: a loaded machine can pause the engine longer than any spell).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let done = |seen: &[Stamped]| {
        let folded = SessionState::fold(seen);
        folded.mode == Mode::Finished(Outcome::Completed)
            && folded.operators.iter().any(|o| o.name.starts_with("late"))
    };
    while !done(&seen) {
        match tokio::time::timeout_at(deadline, client.events.recv()).await {
            Ok(Some(e)) => seen.push(e),
            Ok(None) => panic!("the feed ended after {} events", seen.len()),
            Err(_) => panic!("the history did not fold to the end: {seen:#?}"),
        }
    }
    assert!(matches!(seen[0].event, Event::SessionStarted { .. }));
    let _ = (Phase::Do, PromptKind::Run);
}

#[tokio::test]
async fn a_rollback_runs_the_undo_first_steps_before_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let append = |word: &str| Action::Run {
        argv: vec![
            "sh".into(),
            "-c".into(),
            format!("echo {word} >> \"$1\""),
            "sh".into(),
            log.to_str().unwrap().into(),
        ],
        env: Default::default(),
        stdin: None,
        cwd: None,
        timeout_secs: 10,
        expect_exit: 0,
    };
    // A rolling upgrade in miniature: n1 stopped and started on the new side, n2 stopped.
    let node_step = |id: &str, node: &str, undo: &str| {
        let mut s = step(
            &format!("{id}@{node}"),
            append(&format!("{id}-{node}")),
            Some(append(undo)),
        );
        s.step_id = id.into();
        s
    };
    let mut p = plan(
        "test",
        vec![
            node_step("stop", "n1", "start-n1-old"),
            node_step("start", "n1", "stop-n1"),
            node_step("stop", "n2", "start-n2-old"),
            step("fail", run(&["false"]), None),
        ],
    );
    p.rollback.undo_first = vec!["start".into()];
    let auto = AutoConfirm {
        yes: true,
        rollback_on_failure: true,
        ..Default::default()
    };
    let task = start(p, target(), auto, &dir);
    let s = until(&task, "rolled back", |s| s.is_finished()).await;
    assert_eq!(s.mode, Mode::Finished(Outcome::RolledBack));
    // n1 leaves the new side before n2 comes back on the old one; then plain reverse order.
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text,
        "stop-n1\nstart-n1\nstop-n2\nstop-n1\nstart-n2-old\nstart-n1-old\n"
    );
}

/// A page like Jahia's maintenance.jsp: HTML, not JSON.
async fn serve_html(page: &'static str) -> String {
    let app = axum::Router::new().route(
        "/maintenance.jsp",
        axum::routing::get(move || async move { axum::response::Html(page) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/maintenance.jsp")
}

#[tokio::test]
async fn expect_text_judges_the_body_of_http_actions_and_gate_checks() {
    use flightdeck::procedure::model::{Check, HttpSpec, WaitSpec};
    let url = serve_html("<h2>Full read-only mode</h2>\n<p>Status: <b>ON</b></p>").await;
    let http = |pattern: &str| HttpSpec {
        method: "GET".into(),
        url: url.clone(),
        headers: Default::default(),
        body: None,
        expect_status: vec![],
        wait_on: Vec::new(),
        fail_on: Vec::new(),
        expect_json: Default::default(),
        expect_text: Some(pattern.into()),
        expect: Vec::new(),
        timeout_secs: 5,
    };
    let dir = tempfile::tempdir().unwrap();
    let p = plan(
        "test",
        vec![
            step("on", Action::Http(http(r"Status:\s*<b>ON</b>")), None),
            step(
                "off",
                Action::Wait(WaitSpec {
                    probe: None,
                    check: Some(Check::Http(http(r"Status:\s*<b>OFF</b>"))),
                    nodes: None,
                    stable_secs: 0,
                    timeout_secs: 1,
                    interval_ms: 100,
                }),
                None,
            ),
        ],
    );
    let auto = AutoConfirm {
        yes: true,
        ..Default::default()
    };
    let task = start(p, target(), auto, &dir);
    let s = until(&task, "the gate ends", |s| {
        !matches!(
            s.steps[1].status,
            StepStatus::Pending | StepStatus::Awaiting | StepStatus::Running
        )
    })
    .await;
    assert_eq!(s.steps[0].status, StepStatus::Succeeded);
    assert_ne!(s.steps[1].status, StepStatus::Succeeded);
    let why = s.steps[1].detail.clone().unwrap_or_default();
    assert!(
        why.contains(r"does not match /Status:\s*<b>OFF</b>/") && why.contains("Status: <b>ON</b>"),
        "the gate says what it wanted and what the page said: {why}"
    );
    task.handle.shutdown().await;
}

#[tokio::test]
async fn a_target_override_of_a_gate_timeout_takes_effect_when_it_runs() {
    use flightdeck::plan::expand::{build_plan, PlanOptions};
    use flightdeck::procedure::load::parse_procedure;
    use flightdeck::target_load::parse_target;
    let lp = parse_procedure(
        std::path::Path::new("p.toml"),
        r#"
name = "p"
product = "generic"

[[steps]]
id = "gate"
title = "Nothing listens on port 1"
confirm = "none"
action = { kind = "wait", check = { kind = "tcp", address = "127.0.0.1:1", timeout_ms = 100 }, timeout_secs = 3600, interval_ms = 50 }
"#
        .into(),
    )
    .unwrap();
    let t = parse_target(
        std::path::Path::new("t.toml"),
        "name = \"t\"\n[overrides.gate]\ntimeout_secs = 1\n",
    )
    .unwrap();
    let p = build_plan(&lp, &t, &PlanOptions::default()).unwrap();
    assert_eq!(
        p.steps[0].overrides,
        vec!["timeout_secs = 1 (procedure: 3600)".to_string()]
    );
    let dir = tempfile::tempdir().unwrap();
    let task = start(p, t, AutoConfirm::default(), &dir);
    // With the procedure's hour this would outlast the test's deadline; with the target's
    // second the gate gives its verdict.
    let s = until(&task, "the gate's verdict", |s| {
        s.steps[0].status == StepStatus::Failed
    })
    .await;
    let why = s.steps[0].detail.clone().unwrap_or_default();
    assert!(why.contains("within 1 s"), "{why}");
    task.handle.shutdown().await;
}

/// Elasticsearch's `GET _cat/nodes?format=json` mid-upgrade: es1 is on the new version, es2
/// not yet (`_cat` writes every value as a string). Returns the server's `host:port`.
async fn serve_cat_nodes() -> String {
    let app = axum::Router::new().route(
        "/_cat/nodes",
        axum::routing::get(|| async {
            axum::Json(serde_json::json!([
                {"name": "es1", "version": "8.15.0", "heap.percent": "41"},
                {"name": "es2", "version": "8.14.3", "heap.percent": "77"}
            ]))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

/// A procedure and target (two nodes on `addr`) with JSONPath expectations, planned.
fn jsonpath_plan(addr: &str, steps: &str) -> (Plan, Target) {
    use flightdeck::plan::expand::{build_plan, PlanOptions};
    let lp = flightdeck::procedure::load::parse_procedure(
        std::path::Path::new("p.toml"),
        format!("name = \"p\"\nproduct = \"generic\"\nto = \"8.15.0\"\n{steps}"),
    )
    .unwrap();
    let t = flightdeck::target_load::parse_target(
        std::path::Path::new("t.toml"),
        &format!(
            "name = \"t\"\n[[nodes]]\nname = \"es1\"\naddress = \"{addr}\"\n\
             [[nodes]]\nname = \"es2\"\naddress = \"{addr}\"\n"
        ),
    )
    .unwrap();
    (build_plan(&lp, &t, &PlanOptions::default()).unwrap(), t)
}

#[tokio::test]
async fn jsonpath_expectations_find_this_nodes_row_and_compare() {
    let addr = serve_cat_nodes().await;
    let (p, t) = jsonpath_plan(
        &addr,
        r#"
[[steps]]
id = "some"
title = "Some node already runs the new version; heap below 80 % everywhere"
confirm = "none"
action = { kind = "http", url = "http://ADDR/_cat/nodes?format=json", expect = [
  { path = "$[*].version", value = "${to_version}", rows = "some" },
  { path = "$[*]['heap.percent']", op = "<", value = 80 },
] }

[[steps]]
id = "joined"
title = "Each node's own row has the new version"
confirm = "none"
action = { kind = "wait", nodes = "all", timeout_secs = 1, interval_ms = 50, check = { kind = "http", url = "${node.url}/_cat/nodes?format=json", expect = [
  { path = '$[?@.name == ${node.name}].version', op = ">=", value = "${to_version}" },
] } }
"#
        .replace("ADDR", &addr)
        .as_str(),
    );
    // The node's name goes into the query as a JSON string, filled in per node at run time.
    let dir = tempfile::tempdir().unwrap();
    let task = start(p, t, AutoConfirm::default(), &dir);
    let s = until(&task, "the gate's verdict", |s| {
        s.steps[1].status == StepStatus::Failed
    })
    .await;
    assert_eq!(s.steps[0].status, StepStatus::Succeeded);
    let why = s.steps[1].detail.clone().unwrap_or_default();
    assert!(
        why.contains(r#"$[?@.name == "es2"].version is "8.14.3", expected >= "8.15.0""#),
        "es2's own row is judged, es1's passes: {why}"
    );
    assert!(!why.contains("es1\""), "{why}");
    task.handle.shutdown().await;
}

#[tokio::test]
async fn a_retried_two_person_step_needs_the_second_person_again() {
    let dir = tempfile::tempdir().unwrap();
    // Fails the first time, passes the second.
    let flag = dir.path().join("tried");
    let script = format!(
        "test -e '{f}' || {{ touch '{f}'; exit 1; }}",
        f = flag.display()
    );
    let mut s1 = step("stop", run(&["sh", "-c", &script]), None);
    s1.approvals = 2;
    let task = start(
        plan("test", vec![s1]),
        target(),
        AutoConfirm::default(),
        &dir,
    );
    let who = |uid: u32, user: &str| flightdeck::engine::identity::Identity {
        uid,
        user: user.into(),
    };
    let alice = task
        .handle
        .attach_as(who(1000, "alice"), "alice", true)
        .await
        .unwrap();
    let bob = task
        .handle
        .attach_as(who(1001, "bob"), "bob", true)
        .await
        .unwrap();
    let s = until(&task, "prompt", |s| {
        s.prompt.is_some() && s.operators.len() == 2
    })
    .await;
    let id = s.prompt.unwrap().id;
    alice
        .commands
        .send(Command::Confirm {
            prompt: id,
            phrase: None,
        })
        .await
        .unwrap();
    bob.commands
        .send(Command::Approve { prompt: id })
        .await
        .unwrap();
    let s = until(&task, "the failure", |s| {
        s.steps[0].status == StepStatus::Failed && s.prompt.is_some()
    })
    .await;
    assert_eq!(s.steps[0].attempts, 1);
    // The driver's retry is one person: nothing runs yet.
    alice
        .commands
        .send(Command::Retry { step: 0 })
        .await
        .unwrap();
    let s = task.handle.snapshot().await.unwrap();
    assert_eq!(s.steps[0].attempts, 1, "the retry ran on one person's word");
    assert_eq!(s.steps[0].status, StepStatus::Awaiting);
    assert_eq!(s.steps[0].approvals, vec!["alice".to_string()]);
    // Alice can't approve her own retry; Bob's approval runs it.
    let id = s.prompt.expect("a prompt for the second person").id;
    let r = alice.commands.send(Command::Approve { prompt: id }).await;
    assert!(r.is_err());
    bob.commands
        .send(Command::Approve { prompt: id })
        .await
        .unwrap();
    let s = until(&task, "done", |s| s.is_finished()).await;
    assert_eq!(s.steps[0].status, StepStatus::Succeeded);
    assert_eq!(s.steps[0].attempts, 2);
}

/// Issue 15 item 6: a target variable inside a probe's definition (`${lab_admin}`) passed
/// `check` but stayed literal at run time (`GET ${lab_admin}/_lab/status: builder error`).
#[tokio::test]
async fn target_variables_in_probe_definitions_are_filled_in_when_they_run() {
    let addr = serve_cat_nodes().await;
    let lp = flightdeck::procedure::load::parse_procedure(
        std::path::Path::new("p.toml"),
        r#"
name = "p"
product = "generic"
to = "8.15.0"

[[steps]]
id = "joined"
title = "Every node is in _cat/nodes"
confirm = "none"
action = { kind = "wait", probe = "joined", timeout_secs = 5, interval_ms = 50 }
"#
        .into(),
    )
    .unwrap();
    let t = flightdeck::target_load::parse_target(
        std::path::Path::new("t.toml"),
        &format!(
            r#"name = "t"
[vars]
admin = "http://{addr}"

[[nodes]]
name = "es1"
address = "127.0.0.1:1"

[[probes]]
name = "joined"
kind = "http"
url = "${{admin}}/_cat/nodes?format=json"
expect = [{{ path = '$[?@.name == ${{node.name}}].version', op = ">=", value = "${{to_version}}" }}]
"#
        ),
    )
    .unwrap();
    let diags = flightdeck::procedure::validate::validate(&lp, Some(&t));
    assert!(diags.is_empty(), "{diags}");
    let p = flightdeck::plan::expand::build_plan(&lp, &t, &Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let task = start(p, t, AutoConfirm::default(), &dir);
    let s = until(&task, "the gate's verdict", |s| {
        matches!(
            s.steps[0].status,
            StepStatus::Succeeded | StepStatus::Failed
        )
    })
    .await;
    assert_eq!(
        s.steps[0].status,
        StepStatus::Succeeded,
        "{:?}",
        s.steps[0].detail
    );
    // What was journaled as the session's target has the values filled in too (a resume
    // from the journal runs the same probes).
    task.handle.shutdown().await;
    let text = common::journal_text(&dir.path().join("j.jsonl"));
    assert!(
        text.contains(&format!("http://{addr}/_cat/nodes")),
        "{text}"
    );
}

/// `/_cluster/health` answers 503 (starting) to its first three requests, then green;
/// `/_security` refuses with Elasticsearch's 401 body; anything else is a 404.
async fn serve_statuses() -> String {
    use axum::http::StatusCode;
    use std::sync::atomic::{AtomicU32, Ordering};
    let calls = std::sync::Arc::new(AtomicU32::new(0));
    let app = axum::Router::new()
        .route(
            "/_cluster/health",
            axum::routing::get(move || {
                let calls = calls.clone();
                async move {
                    if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({})))
                    } else {
                        (StatusCode::OK, axum::Json(serde_json::json!({"status": "green"})))
                    }
                }
            }),
        )
        .route(
            "/_security",
            axum::routing::get(|| async {
                // Elasticsearch 8's answer to wrong credentials (x-pack security).
                (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(serde_json::json!({
                        "error": {
                            "root_cause": [{"type": "security_exception", "reason": "unable to authenticate user [elastic] for REST request [/_cluster/health]"}],
                            "type": "security_exception",
                            "reason": "unable to authenticate user [elastic] for REST request [/_cluster/health]"
                        },
                        "status": 401
                    })),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

/// Runs a one-gate plan on `addr` until the gate ends; its status and detail.
async fn gate_verdict(addr: &str, path: &str, statuses: &str) -> (StepStatus, String) {
    let steps = format!(
        r#"
[[steps]]
id = "gate"
title = "The cluster is green"
confirm = "none"
action = {{ kind = "wait", timeout_secs = 3600, interval_ms = 20, check = {{ kind = "http", url = "http://{addr}{path}", {statuses}, expect = [{{ path = "$.status", value = "green" }}] }} }}
"#
    );
    let (p, t) = jsonpath_plan(addr, &steps);
    let dir = tempfile::tempdir().unwrap();
    let task = start(p, t, AutoConfirm::default(), &dir);
    // The gate's timeout is an hour: only a verdict that does not wait it out ends this.
    let s = until(&task, "the gate's verdict", |s| {
        matches!(
            s.steps[0].status,
            StepStatus::Succeeded | StepStatus::Failed
        )
    })
    .await;
    task.handle.shutdown().await;
    (
        s.steps[0].status,
        s.steps[0].detail.clone().unwrap_or_default(),
    )
}

#[tokio::test]
async fn statuses_declared_per_check_wait_or_fail_at_once() {
    let addr = serve_statuses().await;
    // 503 is "not yet": the gate keeps polling until the cluster answers green.
    let (st, why) = gate_verdict(&addr, "/_cluster/health", "wait_on = [408, 503]").await;
    assert_eq!(st, StepStatus::Succeeded, "{why}");
    // Wrong credentials do not wait out an hour: the gate fails now, with the product's reason.
    let (st, why) = gate_verdict(&addr, "/_security", "fail_on = [401, 403]").await;
    assert_eq!(st, StepStatus::Failed);
    assert!(
        why.contains(
            "status 401 (in `fail_on`: fails at once): unable to authenticate user [elastic]"
        ),
        "{why}"
    );
    // Once `wait_on` says what "not yet" is, any other unexpected status is final.
    let (st, why) = gate_verdict(&addr, "/_nodes/missing", "wait_on = [408, 503]").await;
    assert_eq!(st, StepStatus::Failed);
    assert!(
        why.contains("status 404 (not in `wait_on`: fails at once)"),
        "{why}"
    );
}

fn optional(mut s: flightdeck::plan::PlannedStep, default: &str) -> flightdeck::plan::PlannedStep {
    use flightdeck::procedure::model::OptionalChoice;
    s.optional = Some(flightdeck::plan::OptionalStep {
        why: "reindexing takes an hour; skip it if the indices are small".into(),
        default: if default == "run" {
            OptionalChoice::Run
        } else {
            OptionalChoice::Skip
        },
    });
    s
}

/// The choices on record in a journal: (step, choice, by, reason, auto).
fn choices(dir: &tempfile::TempDir) -> Vec<(usize, String, String, Option<String>, bool)> {
    journal::read(&dir.path().join("j.jsonl"))
        .unwrap()
        .events
        .into_iter()
        .filter_map(|e| match e.event {
            Event::OptionalChosen {
                step,
                choice,
                by,
                reason,
                auto,
                ..
            } => Some((step, choice.to_string(), by, reason, auto)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn an_optional_step_is_the_operators_choice_with_a_journaled_reason() {
    use flightdeck::procedure::model::OptionalChoice;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("reindexed");
    let p = plan(
        "test",
        vec![
            optional(step("skipme", run(&["true"]), None), "run"),
            optional(
                step("runme", sh(&format!("touch {}", marker.display())), None),
                "skip",
            ),
        ],
    );
    let task = start(p, target(), AutoConfirm::default(), &dir);
    let s = until(&task, "the first prompt", |s| s.prompt.is_some()).await;
    let id = s.prompt.map(|p| p.id).unwrap_or_default();
    // A bare confirm is not a choice.
    let refused = task
        .handle
        .command(Command::Confirm {
            prompt: id,
            phrase: None,
        })
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("choose run or skip"),
        "{refused}"
    );
    task.handle
        .command(Command::Choose {
            prompt: id,
            choice: OptionalChoice::Skip,
            reason: Some("indices are 2 GB".into()),
        })
        .await
        .expect("skip accepted");
    let s = until(&task, "the second prompt", |s| {
        s.prompt.is_some_and(|p| p.step == 1)
    })
    .await;
    assert_eq!(s.steps[0].status, StepStatus::Skipped);
    let id = s.prompt.map(|p| p.id).unwrap_or_default();
    task.handle
        .command(Command::Choose {
            prompt: id,
            choice: OptionalChoice::Run,
            reason: None,
        })
        .await
        .expect("run accepted");
    let s = until(&task, "finish", |s| s.is_finished()).await;
    assert_eq!(s.steps[1].status, StepStatus::Succeeded);
    assert!(marker.exists(), "the chosen step ran");
    task.handle.shutdown().await;
    let got = choices(&dir);
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].0, got[0].1.as_str(), got[0].3.as_deref(), got[0].4),
        (0, "skip", Some("indices are 2 GB"), false)
    );
    assert_eq!((got[1].0, got[1].1.as_str(), got[1].4), (1, "run", false));
    // Who chose: the kernel's user name of the operator, as for confirms.
    assert!(!got[0].2.is_empty() && got[0].2 == got[1].2, "{got:?}");
}

#[tokio::test]
async fn headless_takes_the_declared_default_of_an_optional_step_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let p = plan(
        "test",
        vec![
            optional(step("skipped", sh("exit 1"), None), "skip"),
            optional(
                step("ran", sh(&format!("touch {}", marker.display())), None),
                "run",
            ),
        ],
    );
    let auto = AutoConfirm {
        yes: true,
        ..Default::default()
    };
    let task = start(p, target(), auto, &dir);
    let s = until(&task, "finish", |s| s.is_finished()).await;
    assert_eq!(s.mode, Mode::Finished(Outcome::Completed));
    assert_eq!(s.steps[0].status, StepStatus::Skipped);
    assert_eq!(s.steps[1].status, StepStatus::Succeeded);
    assert!(marker.exists());
    task.handle.shutdown().await;
    let got = choices(&dir);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|c| c.2 == "--yes" && c.4), "{got:?}");
    assert!(got[0]
        .3
        .as_deref()
        .unwrap_or("")
        .contains("reindexing takes an hour"));
}

/// A late joiner's history comes from the journal file, and a feed that falls behind the live
/// events (nobody reads it while 20,000 output lines go by: more than its queue and the live
/// feed's buffer) catches up from the file: every journaled event once, in order.
#[tokio::test]
async fn a_late_or_lagging_feed_gets_every_journaled_event_once_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let steps = (0..10)
        .map(|i| step(&format!("s{i}"), run(&["seq", "1", "2000"]), None))
        .collect();
    let auto = AutoConfirm {
        yes: true,
        ..Default::default()
    };
    let task = start(plan("test", steps), target(), auto, &dir);
    let mut early = task.handle.attach("early", false).await.unwrap();
    until(&task, "finish", |s| s.is_finished()).await;
    let mut late = task.handle.attach("late", false).await.unwrap();
    // The late joiner's arrival is journaled before the attach answers.
    let journaled = journal::read(&dir.path().join("j.jsonl")).unwrap().events;
    assert!(journaled.len() > 20_000, "{}", journaled.len());
    for client in [&mut early, &mut late] {
        let mut got = Vec::new();
        while got.len() < journaled.len() {
            let e = tokio::time::timeout(Duration::from_secs(30), client.events.recv())
                .await
                .expect("the feed goes on")
                .expect("the feed is open");
            if !e.event.is_live_only() {
                got.push(e);
            }
        }
        assert!(got == journaled, "the feed differs from the journal");
    }
    task.handle.shutdown().await;
    task.join.await.unwrap().unwrap();
}

/// A member looping connect/disconnect, or asking for control from connection after
/// connection, grows the journal by a bounded amount: joins and requests for control are
/// limited per user (the uid, so a new connection does not reset it), refused with why; the
/// owner is not limited. Both failed before (every join and every request was journaled).
#[tokio::test]
async fn joining_and_asking_for_control_are_bounded_per_user() {
    use flightdeck::engine::identity::Identity;
    use flightdeck::engine::session::{CONTROL_ASK_BURST, JOIN_BURST};
    let dir = tempfile::tempdir().unwrap();
    let task = start(
        plan("test", vec![step("a", run(&["true"]), None)]),
        target(),
        AutoConfirm::default(),
        &dir,
    );
    // Members, never the owner (who runs the tests: limits spare the owner).
    let who = |n: u32| Identity {
        uid: not_the_owner(n),
        user: format!("member{n}"),
    };
    let _driver = task.handle.attach("owner", true).await.unwrap();
    for _ in 0..JOIN_BURST {
        drop(task.handle.attach_as(who(1000), "m", false).await.unwrap());
    }
    let Err(e) = task.handle.attach_as(who(1000), "m", false).await else {
        panic!("one join too many was accepted");
    };
    assert!(e.0.contains("too many joins by member1000: at most"), "{e}");
    // Another member, and the owner, are not held back by member1000's loop.
    let a = task.handle.attach_as(who(1001), "a", false).await.unwrap();
    let b = task.handle.attach_as(who(1001), "b", false).await.unwrap();
    for _ in 0..JOIN_BURST {
        drop(task.handle.attach("owner again", false).await.unwrap());
    }
    // Two connections taking turns: each is a new request (the other replaced it).
    for i in 0..CONTROL_ASK_BURST {
        let c = if i % 2 == 0 { &a } else { &b };
        c.commands.send(Command::RequestControl).await.unwrap();
    }
    let c = task.handle.attach_as(who(1001), "c", false).await.unwrap();
    let e = c
        .commands
        .send(Command::RequestControl)
        .await
        .expect_err("one request too many is refused");
    assert!(e.0.contains("too many requests for control"), "{e}");
    task.handle.shutdown().await;
    task.join.await.unwrap().unwrap();
    let j = journal::read(&dir.path().join("j.jsonl")).unwrap();
    let joins = |uid: u32| {
        j.events
            .iter()
            .filter(|e| matches!(e.event, Event::OperatorJoined { uid: Some(u), .. } if u == uid))
            .count()
    };
    assert_eq!(joins(not_the_owner(1000)), JOIN_BURST as usize);
    assert_eq!(joins(not_the_owner(1001)), 3);
    let asks = j
        .events
        .iter()
        .filter(|e| matches!(e.event, Event::ControlRequested { .. }))
        .count();
    assert_eq!(asks, CONTROL_ASK_BURST as usize);
}

/// One user with two connections passing control back and forth grows the journal (a
/// fsynced decision each) and every cockpit by a bounded amount: hand-overs are limited per
/// granter's uid, refused with the limit in words, and a refill later the user hands over
/// again; another person's hand-over is theirs to make. Before, every grant was journaled.
#[tokio::test]
async fn handing_over_control_is_bounded_per_user() {
    use flightdeck::engine::identity::Identity;
    use flightdeck::engine::session::{GRANT_BURST, GRANT_REFILL};
    let dir = tempfile::tempdir().unwrap();
    let task = start(
        plan("test", vec![step("a", run(&["true"]), None)]),
        target(),
        AutoConfirm::default(),
        &dir,
    );
    // Members, never the owner (who runs the tests: limits spare the owner).
    let who = |n: u32| Identity {
        uid: not_the_owner(n),
        user: format!("member{n}"),
    };
    let a1 = task.handle.attach_as(who(1000), "a1", true).await.unwrap();
    let a2 = task.handle.attach_as(who(1000), "a2", false).await.unwrap();
    let b = task.handle.attach_as(who(1001), "b", false).await.unwrap();
    async fn grant(
        from: &flightdeck::engine::client::SessionClient,
        to: u64,
    ) -> Result<(), flightdeck::engine::Rejected> {
        from.commands.send(Command::GrantControl { to }).await
    }
    let e = grant(&a1, a1.operator_id)
        .await
        .expect_err("granting to oneself");
    assert_eq!(e.0, "you already drive");
    // The same user's two connections taking turns, as fast as the engine answers.
    let mut drives = &a1;
    for _ in 0..GRANT_BURST {
        let other = if drives.operator_id == a1.operator_id {
            &a2
        } else {
            &a1
        };
        grant(drives, other.operator_id).await.unwrap();
        drives = other;
    }
    let e = grant(drives, b.operator_id)
        .await
        .expect_err("one hand-over too many is refused, to anyone");
    assert_eq!(
        e.0,
        format!(
            "too many hand-overs of control: at most {GRANT_BURST} in a row, then one every {} s",
            GRANT_REFILL.as_secs()
        )
    );
    // A refill later (the clock moved, not waited for), one more: to another person, who
    // hands it back from a bucket of their own.
    tokio::time::pause();
    tokio::time::advance(GRANT_REFILL).await;
    grant(drives, b.operator_id).await.unwrap();
    grant(&b, drives.operator_id).await.unwrap();
    task.handle.shutdown().await;
    task.join.await.unwrap().unwrap();
    let j = journal::read(&dir.path().join("j.jsonl")).unwrap();
    let changes = j
        .events
        .iter()
        .filter(|e| matches!(e.event, Event::DriverChanged { .. }))
        .count();
    assert_eq!(changes, GRANT_BURST as usize + 2);
}

/// A step number is the sender's: `usize::MAX` (or any number past the plan) in any command
/// that names a step is refused with what is true, and the engine goes on. Before, a debug
/// build panicked computing `step + 1` for the refusal (Retry, MarkDone) and the engine died.
#[tokio::test]
async fn a_step_number_past_the_plan_is_refused_for_every_command_that_names_one() {
    let dir = tempfile::tempdir().unwrap();
    let task = start(
        plan("test", vec![step("a", run(&["true"]), None)]),
        target(),
        AutoConfirm::default(),
        &dir,
    );
    let driver = task.handle.attach("driver", true).await.unwrap();
    for step in [usize::MAX, 1] {
        for cmd in [
            Command::Retry { step },
            Command::Skip { step },
            Command::MarkDone { step },
            Command::Undo { step },
            Command::OverrideGuard {
                step,
                phrase: "x".into(),
                reason: "y".into(),
            },
            Command::KillOrphan { step },
        ] {
            let e = driver
                .commands
                .send(cmd.clone())
                .await
                .expect_err("no such step");
            let n = step.saturating_add(1);
            assert_eq!(
                e.0,
                format!("no step {n}: this plan's steps are 1 to 1"),
                "{cmd:?}"
            );
        }
    }
    // The engine is still there and the real step is still its to run.
    let s = until(&task, "the prompt", |s| s.prompt.is_some()).await;
    assert_eq!(s.prompt.unwrap().step, 0);
    task.handle.shutdown().await;
    task.join.await.unwrap().unwrap();
}

/// A uid for the `n`th member of a group that is never the owner's: the session's owner is
/// whoever runs the tests (`getuid`), and the engine's per-user limits spare the owner, so a
/// fixed uid (1000, a developer's usual one) would make the limit tests pass vacuously or fail.
fn not_the_owner(n: u32) -> u32 {
    let owner = nix::unistd::getuid().as_raw();
    let uid = 60_000u32.wrapping_add(n);
    if uid == owner {
        uid.wrapping_add(1_000)
    } else {
        uid
    }
}
