//! The quiz: it stops before each of the recorded operator's decisions, shows the context,
//! records answers, reveals what the operator did and what followed, and scores.

#[path = "fixtures/builder.rs"]
mod builder;

use std::sync::Arc;
use std::time::Duration;

use builder::{fixture, rolling_upgrade_script};
use flightdeck::engine::event::{AutoConfirm, Verdict};
use flightdeck::engine::session::{self, EngineConfig, EngineTask};
use flightdeck::engine::state::StepStatus;
use flightdeck::engine::{Command, SessionState};
use flightdeck::journal;
use flightdeck::plan::test_plans::{run, step_with};
use flightdeck::plan::{Confirm, Plan, PlannedStep};
use flightdeck::procedure::model::Action;
use flightdeck::replay::player::{self, ReplayOptions};
use flightdeck::replay::quiz::{self, Answer, Choice, Quiz};
use flightdeck::replay::timeline::Timeline;
use flightdeck::target::Target;

#[test]
/// The fixture's decisions that matter: the retry of the failed upgrade of node2, and the
/// confirmation of the irreversible finalize (explained with its reason); its seven routine
/// confirmations are not asked about.
fn the_fixture_asks_about_the_failure_and_the_point_of_no_return() {
    let j = fixture();
    let mut q = Quiz::new(&j);
    assert_eq!(q.len(), 2);
    let mut recorded = Vec::new();
    while let Some(question) = q.current() {
        let failed = question.prompt.as_deref() == Some("failed");
        if failed {
            assert_eq!(question.step_key.as_deref(), Some("upgrade@node2"));
            assert_eq!(question.step_status.as_deref(), Some("failed"));
            assert_eq!(question.detail.as_deref(), Some("exited 1"));
            assert_eq!(
                question.last_output,
                vec!["stderr: error: migration lock held by pid 4121"]
            );
            assert_eq!(
                question.failing_probes,
                vec!["health on node2: connection refused"]
            );
            assert_eq!(question.t_ms, 933_500);
        }
        let reveal = q
            .answer(Answer {
                choice: if failed {
                    Choice::Wait
                } else {
                    Choice::Confirm
                },
                note: Some(format!("q{}", question.number)),
            })
            .unwrap();
        if failed {
            assert_eq!(reveal.recorded, Choice::Retry);
            assert!(!reveal.matched);
            assert_eq!(reveal.next_verdict, Some(Verdict::Passed));
            assert_eq!(
                reveal.what_happened.as_deref(),
                Some("step 6 `upgrade@node2`: action attempt 2 passed 12 s later (exited 0)")
            );
        } else {
            assert_eq!(question.step_key.as_deref(), Some("finalize"));
            assert_eq!(reveal.recorded, Choice::Confirm);
            assert_eq!(
                reveal.explanation,
                vec!["point of no return: the on-disk format moves to 1.5".to_string()]
            );
        }
        recorded.push((reveal.recorded, reveal.by));
    }
    assert!(q
        .answer(Answer {
            choice: Choice::Abort,
            note: None
        })
        .is_none());
    assert!(recorded.iter().all(|(_, by)| by == "alice"));
    let r = q.result();
    assert_eq!((r.decisions, r.answers.len(), r.matches), (2, 2, 1));
    assert!((r.score - 0.5).abs() < 1e-9);
    assert_eq!(r.answers[0].note.as_deref(), Some("q1"));
    // The finalize ran and passed two seconds later.
    assert_eq!(
        r.answers[1].what_happened.as_deref(),
        Some("step 8 `finalize`: action attempt 1 passed 2 s later (exited 0)")
    );
}

#[test]
fn the_line_runner_reads_answers_and_writes_the_result() {
    let j = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("quiz.json");
    // Two answers, one typo re-asked, a note on the first.
    let input = "x\nr lock is gone, retry\nc\n";
    let mut out = Vec::new();
    let r = quiz::run_with(&j, input.as_bytes(), &mut out, &out_path).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(r.answers.len(), 2);
    assert_eq!(r.matches, 2);
    assert_eq!(r.score, 1.0);
    assert_eq!(r.answers[0].note.as_deref(), Some("lock is gone, retry"));
    assert!(text.contains("answer with one of"));
    assert!(text.contains("Question 1/2 at +0:15:33"));
    assert!(text.contains("prompt: the step failed: retry, undo, skip or abort?"));
    assert!(text.contains("point of no return: the on-disk format moves to 1.5"));
    assert!(text.contains("Score: 2/2"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    assert_eq!(v["score"], 1.0);
    assert_eq!(v["answers"][0]["answer"], "retry");
    assert_eq!(v["answers"][0]["recorded"], "retry");
    assert_eq!(v["procedure"], "rolling-upgrade");
    // Owner-only, like the journal; before, the umask's (0644 under the usual 022).
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&out_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    // A result written over an existing, readable file makes it owner-only too.
    std::fs::set_permissions(&out_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    quiz::run_with(&j, input.as_bytes(), Vec::new(), &out_path).unwrap();
    let mode = std::fs::metadata(&out_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

/// The line runner prints a journal's step output and details on the operator's terminal:
/// an escape sequence in them (an OSC title ended by BEL, a C1 CSI) goes whole, and what a
/// terminal would show stays.
#[test]
fn the_line_runner_prints_no_escape_sequence_from_the_journal() {
    use flightdeck::engine::event::Event;
    let mut s = rolling_upgrade_script();
    for e in &mut s.events {
        match &mut e.event {
            Event::Output { line, .. } if line.contains("migration lock") => {
                *line = format!("\u{1b}]0;PWNED\u{7}\u{9b}31m{line}\u{9b}0m");
            }
            Event::ActionFinished { detail, .. } if detail == "exited 1" => {
                detail.push_str(" \u{1b}]52;c;Y2xpcA==\u{1b}\\(lock)");
            }
            _ => {}
        }
    }
    let j = s.journal();
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    quiz::run_with(&j, "q\n".as_bytes(), &mut out, &dir.path().join("q.json")).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("| stderr: error: migration lock held by pid 4121\n")
            && text.contains("last result: exited 1 (lock)"),
        "{text}"
    );
    for payload in ["PWNED", "Y2xpcA", "31m", "\u{1b}", "\u{9b}", "\u{7}"] {
        assert!(!text.contains(payload), "{payload:?} printed:\n{text}");
    }
}

#[test]
fn stopping_early_keeps_the_answers_so_far() {
    let j = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("quiz.json");
    let r = quiz::run_with(&j, "r\nw\nq\n".as_bytes(), Vec::new(), &out_path).unwrap();
    assert_eq!((r.answers.len(), r.matches), (2, 1));
    assert_eq!(r.score, 0.5);
    // End of input stops too.
    let r = quiz::run_with(&j, "c\n".as_bytes(), Vec::new(), &out_path).unwrap();
    assert_eq!(r.answers.len(), 1);
    assert!(out_path.exists());
    assert_eq!(
        quiz::default_result_path(std::path::Path::new("/x/j.jsonl")),
        std::path::PathBuf::from("/x/j.jsonl.quiz.json")
    );
    let not_a_journal = dir.path().join("x.txt");
    std::fs::write(&not_a_journal, "text\n").unwrap();
    assert_eq!(
        quiz::run(&not_a_journal, Some(&out_path), Default::default()),
        std::process::ExitCode::from(2)
    );
    let unwritable = dir.path().join("no").join("such").join("dir.json");
    assert!(quiz::run_with(&j, "".as_bytes(), Vec::new(), &unwritable).is_err());
}

#[test]
fn choices_parse_from_letters_and_words() {
    assert_eq!(Choice::parse("c"), Some(Choice::Confirm));
    assert_eq!(Choice::parse("Retry"), Some(Choice::Retry));
    assert_eq!(Choice::parse("mark-done"), Some(Choice::MarkDone));
    assert_eq!(Choice::parse("m"), Some(Choice::MarkDone));
    assert_eq!(Choice::parse("x"), None);
    assert_eq!(Choice::parse(""), None);
}

// --- a real session: the engine runs tiny commands, the quiz reads its journal ---

/// A step whose undo does nothing (the quiz asks about undoing).
fn step(key: &str, action: Action) -> PlannedStep {
    step_with(key, action, Some(run(&["true"])))
}

async fn until(task: &EngineTask, what: &str, f: impl Fn(&SessionState) -> bool) -> SessionState {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = task.handle.snapshot().await.expect("engine alive");
        if f(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn prompt_id(task: &EngineTask) -> u64 {
    until(task, "a prompt", |s| s.prompt.is_some())
        .await
        .prompt
        .map(|p| p.id)
        .unwrap()
}

/// Records a session with five operator decisions: confirm a; wait at b, then confirm it; b
/// fails and is retried; c is skipped. Notes and an automatic confirm are not decisions, and
/// of the five only the retry and the skip matter (the rest are routine).
async fn record_session(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let flag = dir.path().join("flag");
    let mut d = step("d", run(&["true"]));
    d.confirm = Confirm::None;
    let plan = Plan {
        procedure: "quiz-test".into(),
        product: "generic".into(),
        target: "t".into(),
        steps: vec![
            step("a", run(&["echo", "a ran"])),
            step("b", run(&["test", "-e", flag.to_str().unwrap()])),
            step("c", run(&["true"])),
            d,
        ],
        ..Default::default()
    };
    let target = Target {
        name: "t".into(),
        product: None,
        vars: Default::default(),
        secrets: Default::default(),
        nodes: vec![],
        scheme: None,
        lb: None,
        probes: vec![],
        actions: Default::default(),
        traffic: None,
        overrides: Default::default(),
    };
    let path = dir.path().join("j.jsonl");
    let task = session::start(EngineConfig {
        plan,
        target,
        auto: AutoConfirm::default(),
        operator: "dana".into(),
        journal: path.clone(),
        observe: false,
        time_scale: 1.0,
    })
    .unwrap();
    // Drive as a named operator, as the cockpit does.
    let dana = task
        .handle
        .attach_as(
            flightdeck::engine::identity::Identity {
                uid: 1000,
                user: "dana".into(),
            },
            "dana",
            true,
        )
        .await
        .unwrap();
    let h = &dana.commands;
    let id = prompt_id(&task).await;
    h.send(Command::Confirm {
        prompt: id,
        phrase: None,
    })
    .await
    .unwrap();
    until(&task, "a done", |s| {
        s.steps[0].status == StepStatus::Succeeded
    })
    .await;
    let id = prompt_id(&task).await;
    h.send(Command::Decline { prompt: id }).await.unwrap();
    h.send(Command::Note {
        text: "waiting for the window".into(),
    })
    .await
    .unwrap();
    h.send(Command::Act).await.unwrap();
    let id = prompt_id(&task).await;
    h.send(Command::Confirm {
        prompt: id,
        phrase: None,
    })
    .await
    .unwrap();
    until(&task, "b failed", |s| {
        s.steps[1].status == StepStatus::Failed
    })
    .await;
    std::fs::write(&flag, "").unwrap();
    h.send(Command::Retry { step: 1 }).await.unwrap();
    until(&task, "b done", |s| {
        s.steps[1].status == StepStatus::Succeeded
    })
    .await;
    until(&task, "c prompt", |s| s.prompt.is_some_and(|p| p.step == 2)).await;
    h.send(Command::Skip { step: 2 }).await.unwrap();
    until(&task, "finished", |s| s.is_finished()).await;
    task.handle.shutdown().await;
    let _ = task.join.await;
    path
}

#[tokio::test]
async fn a_recorded_session_asks_about_the_retry_and_the_skip_not_routine_confirms() {
    let dir = tempfile::tempdir().unwrap();
    let path = record_session(&dir).await;
    let j = journal::read(&path).unwrap();

    let quiz = Quiz::new(&j);
    let recorded: Vec<Choice> = {
        let mut q = quiz.clone();
        let mut v = Vec::new();
        while q.current().is_some() {
            v.push(
                q.answer(Answer {
                    choice: Choice::Confirm,
                    note: None,
                })
                .unwrap()
                .recorded,
            );
        }
        v
    };
    assert_eq!(recorded, vec![Choice::Retry, Choice::Skip]);

    // The cockpit's way: the player stops before each decision; answer at each stop.
    let timeline = Arc::new(Timeline::new(j.events.clone(), 0));
    let mut quiz = Quiz::from_timeline(timeline.clone());
    let opts = ReplayOptions {
        speed: 64.0,
        from_step: None,
        idle_cap_ms: 0,
    };
    let (mut client, control) = player::start_timeline(timeline, opts).unwrap();
    control.set_stops(quiz.decision_indices());
    let answers = [Choice::Retry, Choice::Confirm];
    let mut pos = control.subscribe();
    let mut stops = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        while client.events.try_recv().is_ok() {}
        let p = pos.borrow_and_update().clone();
        if let Some(s) = p.stopped_before {
            let q = quiz
                .question_at(s)
                .expect("a question where the player stopped");
            assert_eq!(q.number, stops + 1);
            assert_eq!(quiz.current().map(|c| c.index), Some(s));
            quiz.answer(Answer {
                choice: answers[stops],
                note: None,
            })
            .unwrap();
            stops += 1;
            control.resume();
        } else if p.at_end {
            break;
        } else {
            assert!(
                tokio::time::Instant::now() < deadline,
                "replay stalled at {p:?}"
            );
            let _ = tokio::time::timeout(Duration::from_millis(50), pos.changed()).await;
        }
    }
    assert_eq!(stops, 2);
    let r = quiz.result();
    assert_eq!((r.answers.len(), r.matches), (2, 1));
    assert_eq!(r.answers[0].recorded, Choice::Retry);
    assert_eq!(r.answers[0].recorded_by, "dana");
    assert_eq!(r.answers[0].step_key.as_deref(), Some("b"));
    assert_eq!(r.answers[0].prompt.as_deref(), Some("failed"));
    assert_eq!(r.answers[1].recorded, Choice::Skip);
}

/// Two-person confirms count once, an undo request and its confirm are one decision, and
/// routine moves (a plain confirm, a wait at a routine prompt, a rollback's undo
/// confirmation) are not questions.
#[test]
fn decisions_follow_what_the_operator_chose_not_every_event() {
    use builder::{node, plan, planned, Script};
    use flightdeck::engine::event::{Event, Outcome, Phase, PromptKind};
    let mut steps = vec![planned("a", "Step a"), planned("b", "Step b")];
    steps[0].approvals = 2;
    let mut s = Script::new(plan(steps), vec![node("n1")], "alice");
    let finished = |step, phase, attempt, verdict| Event::ActionFinished {
        step,
        phase,
        attempt,
        verdict,
        detail: "exited".into(),
    };
    s.at(
        10,
        Event::PromptOpened {
            id: 2,
            step: 0,
            prompt: PromptKind::Run,
        },
    )
    .at(
        20,
        Event::Approved {
            step: 0,
            by: "alice".into(),
            uid: None,
            confirm: false,
        },
    )
    .at(
        30,
        Event::Approved {
            step: 0,
            by: "bob".into(),
            uid: None,
            confirm: false,
        },
    )
    .at(
        30,
        Event::Confirmed {
            step: 0,
            by: "bob".into(),
            auto: false,
        },
    )
    .at(
        30,
        Event::ActionStarted {
            step: 0,
            phase: Phase::Do,
            attempt: 1,
        },
    )
    .at(40, finished(0, Phase::Do, 1, Verdict::Passed))
    .at(
        50,
        Event::PromptOpened {
            id: 8,
            step: 1,
            prompt: PromptKind::Run,
        },
    )
    .at(
        60,
        Event::Confirmed {
            step: 1,
            by: "alice".into(),
            auto: false,
        },
    )
    .at(
        60,
        Event::ActionStarted {
            step: 1,
            phase: Phase::Do,
            attempt: 1,
        },
    )
    .at(70, finished(1, Phase::Do, 1, Verdict::Failed))
    .at(
        80,
        Event::PromptOpened {
            id: 12,
            step: 1,
            prompt: PromptKind::Failed,
        },
    )
    .at(
        90,
        Event::PromptOpened {
            id: 13,
            step: 1,
            prompt: PromptKind::Undo,
        },
    )
    .at(
        100,
        Event::Confirmed {
            step: 1,
            by: "alice".into(),
            auto: false,
        },
    )
    .at(
        100,
        Event::ActionStarted {
            step: 1,
            phase: Phase::Undo,
            attempt: 2,
        },
    )
    .at(1100, finished(1, Phase::Undo, 2, Verdict::Passed))
    .at(
        1200,
        Event::PromptOpened {
            id: 17,
            step: 1,
            prompt: PromptKind::Run,
        },
    )
    .at(
        1300,
        Event::Declined {
            step: 1,
            by: "alice".into(),
        },
    )
    .at(
        1400,
        Event::AbortRequested {
            by: "alice".into(),
            rollback: true,
            reason: None,
        },
    )
    .at(
        1500,
        Event::PromptOpened {
            id: 20,
            step: 0,
            prompt: PromptKind::Undo,
        },
    )
    .at(
        1600,
        Event::Confirmed {
            step: 0,
            by: "alice".into(),
            auto: false,
        },
    )
    .at(
        1600,
        Event::ActionStarted {
            step: 0,
            phase: Phase::Undo,
            attempt: 2,
        },
    )
    .at(1700, finished(0, Phase::Undo, 2, Verdict::Passed))
    .at(
        1800,
        Event::Finished {
            outcome: Outcome::RolledBack,
        },
    );
    let mut q = Quiz::new(&s.journal());
    let mut got = Vec::new();
    while let Some(question) = q.current() {
        let r = q
            .answer(Answer {
                choice: Choice::Confirm,
                note: None,
            })
            .unwrap();
        got.push((
            question.index,
            question.step,
            question.prompt.clone(),
            r.recorded,
            r.by.clone(),
        ));
        if r.recorded == Choice::Undo {
            assert_eq!(question.step_status.as_deref(), Some("failed"));
            assert_eq!(
                r.what_happened.as_deref(),
                Some("step 2 `b`: undo attempt 2 passed 1.0 s later (exited)")
            );
        }
    }
    // The two-person step counts once; the routine confirm of b, the wait at its routine
    // prompt and the rollback's undo confirmation are not asked about.
    assert_eq!(
        got,
        vec![
            (
                2,
                Some(0),
                Some("run".to_string()),
                Choice::Confirm,
                "alice".to_string()
            ),
            (
                12,
                Some(1),
                Some("failed".into()),
                Choice::Undo,
                "alice".to_string()
            ),
            (18, Some(1), None, Choice::Abort, "alice".to_string()),
        ]
    );
    let r = q.result();
    assert_eq!(r.matches, 1);
    assert!((r.score - 1.0 / 3.0).abs() < 1e-9);
}
