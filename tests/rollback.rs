//! Rollbacks on the lab: an operator aborts with rollback part-way through a seed procedure and
//! the cluster must end where it started — every node on the old version, running, serving,
//! read-write — and the session must say so truthfully.

mod common;
mod seed_util;

use common::{abort_on_lab, abort_on_lab_at, LabRun, Scripted};
use flightdeck::engine::event::{Event, Outcome};
use flightdeck::engine::state::Mode;
use flightdeck::lab::{LabConfig, Product, RunState, Timing};
use flightdeck::report;
use seed_util::wait_for_lab;

/// The report's JSON for the run's journal (what `flightdeck report --format json` prints).
fn report_json(run: &LabRun) -> serde_json::Value {
    let text = report::json(&report::build(&run.journal));
    serde_json::from_str(&text).expect("the report is JSON")
}

/// The session says the rollback was verified, in the headless summary and the report (md and
/// json), in the same words.
fn assert_verified(run: &LabRun) {
    assert_eq!(
        run.state.mode,
        Mode::Finished(Outcome::RolledBack),
        "{}",
        run.output
    );
    assert!(
        run.end.summary.starts_with("rolled back (verified)"),
        "{}\n{}",
        run.end.summary,
        run.output
    );
    let json = report_json(run);
    assert_eq!(json["rollback_verified"], true, "{json:#}");
    assert_eq!(json["outcome"], "rolled back (verified)");
    assert_eq!(json["result"], "rolled_back");
    let md = report::markdown(&report::build(&run.journal));
    assert!(md.contains("| Outcome | rolled back (verified) |"), "{md}");
    assert!(md.contains("## After the rollback: verified"), "{md}");
}

/// Jahia: aborting once node2 is stopped (node1 already runs 8.2 on schema B) used to start
/// node2 again on schema A while node1 still ran on B: "cluster conflict", node2 failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jahia_abort_after_the_second_node_stopped_rolls_back_every_node() {
    let cfg = LabConfig::new(Product::Jahia, 3, Timing::fast());
    // Past the point of no return (node1 serves on schema B): only with the override.
    let run = abort_on_lab(
        "procedures/jahia-rolling.toml",
        cfg,
        "set-schema@node2",
        Scripted::overriding("drill: node1's writes on schema B may be lost"),
    )
    .await;
    assert!(run
        .journal
        .events
        .iter()
        .any(|e| matches!(e.event, Event::RollbackOverridden { .. })));
    assert_verified(&run);
    wait_for_lab(
        &run.lab,
        "the cluster back on 8.1.8.0, schema A, running, writable, serving",
        jahia_back_on_8180,
    )
    .await;
    run.lab.shutdown().await;
}

/// Every Jahia node back on 8.1.8.0 and schema A, running, writable and in the balancer.
fn jahia_back_on_8180(snap: &flightdeck::lab::LabSnapshot) -> bool {
    snap.nodes.iter().all(|n| {
        n.version == "8.1.8.0"
            && n.schema.as_deref() == Some("A")
            && !n.read_only
            && n.state == RunState::Running
    }) && snap.backends.iter().all(|b| b.serving)
}

/// Wherever the operator aborts in the per-node part, the rollback ends with every node on
/// 8.1.8.0, schema A, running, writable and in the balancer. Past the point of no return (the
/// processing node back in the balancer) only with the override.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jahia_abort_anywhere_in_the_node_loop_rolls_back_every_node() {
    for (at, past_no_return) in [
        ("ready@node1", false),
        ("start@node2", true),
        ("drain@node3", true),
        ("ready@node3", true),
    ] {
        let cfg = LabConfig::new(Product::Jahia, 3, Timing::fast());
        let p = "procedures/jahia-rolling.toml";
        let run = if past_no_return {
            let how = Scripted::overriding("drill: roll back past step 16");
            abort_on_lab(p, cfg, at, how).await
        } else {
            abort_on_lab_at(p, cfg, at).await
        };
        assert_verified(&run);
        wait_for_lab(
            &run.lab,
            &format!("(abort at {at}) the cluster back on 8.1.8.0, schema A, serving"),
            jahia_back_on_8180,
        )
        .await;
        run.lab.shutdown().await;
    }
}

/// A generic rolling upgrade aborted on its second node: the rollback's verification runs after
/// the last undo, is journaled, and holds on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_rollback_is_verified_on_every_node() {
    let cfg = LabConfig::new(Product::Generic, 3, Timing::fast());
    let run = abort_on_lab_at("procedures/generic-rolling.toml", cfg, "start@node2").await;
    assert_verified(&run);
    let verified = run.journal.events.iter().find_map(|e| match &e.event {
        Event::VerifyFinished {
            verified, nodes, ..
        } => Some((*verified, nodes.clone())),
        _ => None,
    });
    let (ok, nodes) = verified.expect("VerifyFinished is journaled");
    assert!(ok);
    let names: Vec<_> = nodes.iter().filter_map(|n| n.node.clone()).collect();
    assert_eq!(names, ["node1", "node2", "node3"]);
    for n in &nodes {
        let what: Vec<&str> = n.checks.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(
            what,
            ["runs 1.0.0", "healthy", "writable", "in the balancer"],
            "{n:?}"
        );
    }
    // The journal is the truth: the report and a fresh fold say the same as the live session.
    let folded = flightdeck::engine::SessionState::fold(&run.journal.events);
    assert_eq!(folded.verification, run.state.verification);
    run.lab.shutdown().await;
}

/// A node the rollback cannot bring back (it crashed while the operator aborted): the session
/// ends "rolled back, NOT verified", naming the node and the lab's own reason, in the headless
/// summary and in the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stays_broken_is_named_and_the_rollback_is_not_verified() {
    let cfg = LabConfig::new(Product::Generic, 3, Timing::fast());
    let run = abort_on_lab(
        "procedures/generic-rolling.toml",
        cfg,
        "start@node2",
        Scripted::with_fault("crash:node3"),
    )
    .await;
    assert_eq!(
        run.state.mode,
        Mode::Finished(Outcome::RolledBack),
        "{}",
        run.output
    );
    let want = "rolled back, NOT verified: node3 failed (runs 1.0.0: crashed (fault)";
    assert!(
        run.end.summary.starts_with(want),
        "{}\n{}",
        run.end.summary,
        run.output
    );
    assert!(
        run.output
            .contains("rollback NOT verified: node1 ok, node2 ok, node3 FAILED"),
        "{}",
        run.output
    );
    let json = report_json(&run);
    assert_eq!(json["rollback_verified"], false, "{json:#}");
    assert_eq!(json["outcome"].as_str(), Some(run.end.summary.as_str()));
    let nodes = json["nodes_after"].as_array().expect("nodes_after");
    let node3 = nodes
        .iter()
        .find(|n| n["node"] == "node3")
        .expect("node3 in nodes_after");
    assert_eq!(node3["verified"], false);
    assert_eq!(node3["reason"], "runs 1.0.0: crashed (fault)");
    for ok in ["node1", "node2"] {
        let n = nodes.iter().find(|n| n["node"] == ok).expect("node");
        assert_eq!(n["verified"], true, "{n:#}");
    }
    let md = report::markdown(&report::build(&run.journal));
    assert!(md.contains(&format!("| Outcome | {want}")), "{md}");
    assert!(md.contains("## After the rollback: NOT verified"), "{md}");
    run.lab.shutdown().await;
}

mod engine_level {
    //! The verification's rules on hand-made plans (no lab): what stands in the way of
    //! "verified", and a resume in the middle of it.

    use super::common::plans::{empty_target, plan, resume_once_free, run, step_with, until};
    use flightdeck::engine::event::{AutoConfirm, Event, Outcome};
    use flightdeck::engine::outcome::{outcome_text, rollback_verified};
    use flightdeck::engine::session::{self, EngineConfig, EngineTask};
    use flightdeck::engine::state::{Mode, PromptKindTag, StepStatus};
    use flightdeck::engine::{Command, SessionState};
    use flightdeck::journal;
    use flightdeck::plan::Plan;
    use flightdeck::procedure::model::{Check, VerifySpec};

    fn start(p: Plan, dir: &tempfile::TempDir) -> EngineTask {
        session::start(EngineConfig {
            plan: p,
            target: empty_target(),
            auto: AutoConfirm::default(),
            operator: "tester".into(),
            journal: dir.path().join("j.jsonl"),
            observe: false,
            time_scale: 1.0,
        })
        .expect("engine starts")
    }

    /// A check about the whole cluster: a command that passes once `flag` exists.
    fn flag_check(flag: &std::path::Path) -> VerifySpec {
        VerifySpec {
            what: "the flag is up".into(),
            probe: None,
            check: Some(Check::Run {
                argv: vec!["test".into(), "-e".into(), flag.display().to_string()],
                env: Default::default(),
                stdin: None,
                timeout_secs: 5,
                expect_exit: 0,
            }),
            call: None,
            args: Default::default(),
            lb: None,
            nodes: None,
            stable_secs: 0,
            timeout_secs: 60,
            interval_ms: 50,
            reason: None,
        }
    }

    /// Confirm open prompts (undos included) until `done` holds; a failed undo is skipped.
    async fn drive(task: &EngineTask, done: impl Fn(&SessionState) -> bool) -> SessionState {
        loop {
            let s = until(task, "a prompt, or the end", |s| {
                done(s) || (s.prompt.is_some() && s.running().is_none())
            })
            .await;
            if done(&s) {
                return s;
            }
            let Some(p) = s.prompt else { continue };
            let cmd = match p.kind {
                PromptKindTag::Failed => Command::Skip { step: p.step },
                _ => Command::Confirm {
                    prompt: p.id,
                    phrase: None,
                },
            };
            task.handle.command(cmd).await.expect("accepted");
            until(task, "the answer taken", |s| {
                s.prompt.map(|q| q.id) != Some(p.id)
            })
            .await;
        }
    }

    /// a, migrate (irreversible), c that fails: the session is past the point of no return.
    fn past_no_return_plan() -> Plan {
        let mut migrate = step_with("migrate", run(&["true"]), Some(run(&["true"])));
        migrate.irreversible = Some("the store format changes".into());
        plan(
            "t",
            vec![
                step_with("a", run(&["true"]), Some(run(&["true"]))),
                migrate,
                step_with("c", run(&["false"]), None),
            ],
        )
    }

    /// Past the point of no return the engine refuses a full rollback, whoever asks, and says
    /// what it would lose; the override needs the phrase and a reason, and is journaled with
    /// the kernel's user; the rollback then undoes every step, the irreversible one included.
    #[tokio::test]
    async fn past_the_point_of_no_return_a_rollback_is_refused_unless_overridden() {
        let dir = tempfile::tempdir().unwrap();
        let task = start(past_no_return_plan(), &dir);
        let who = flightdeck::engine::identity::Identity {
            uid: 1000,
            user: "alice".into(),
        };
        let alice = task
            .handle
            .attach_as(who, "alice@laptop", true)
            .await
            .unwrap();
        drive(&task, |s| s.steps[2].status == StepStatus::Failed).await;
        let refused = alice
            .commands
            .send(Command::Abort {
                rollback: true,
                reason: None,
            })
            .await
            .unwrap_err()
            .0;
        assert!(
            refused.starts_with(
                "a full rollback is refused past the point of no return: step 2 (migrate) is \
                 irreversible (the store format changes): a full rollback now loses what \
                 happened since it finished"
            ),
            "{refused}"
        );
        assert!(refused.contains("`lose writes since step 2`"), "{refused}");
        // flightdeck itself (a script, the headless runner) is refused the same way.
        let also = task
            .handle
            .command(Command::Abort {
                rollback: true,
                reason: None,
            })
            .await
            .unwrap_err()
            .0;
        assert!(
            also.contains("refused past the point of no return"),
            "{also}"
        );
        for (phrase, reason, why) in [
            (
                "lose writes",
                "broken",
                "type the phrase exactly: lose writes since step 2",
            ),
            ("lose writes since step 2", "  ", "say why"),
        ] {
            let r = alice
                .commands
                .send(Command::RollbackPastNoReturn {
                    phrase: phrase.into(),
                    reason: reason.into(),
                })
                .await
                .unwrap_err()
                .0;
            assert!(r.starts_with(why), "{r}");
        }
        let s = task.handle.snapshot().await.unwrap();
        assert_eq!(s.mode, Mode::Forward, "nothing changed on a refusal");
        alice
            .commands
            .send(Command::RollbackPastNoReturn {
                phrase: "lose writes since step 2".into(),
                reason: "the new format corrupts our indexes".into(),
            })
            .await
            .expect("the override is accepted");
        let s = drive(&task, |s| s.is_finished()).await;
        assert_eq!(s.mode, Mode::Finished(Outcome::RolledBack));
        assert!(s
            .steps
            .iter()
            .take(2)
            .all(|r| r.status == StepStatus::Undone));
        task.handle.shutdown().await;
        let _ = task.join.await;
        let j = journal::read(&dir.path().join("j.jsonl")).unwrap();
        let overridden = j.events.iter().find_map(|e| match &e.event {
            Event::RollbackOverridden {
                by,
                uid,
                reason,
                step,
                lost,
            } => Some((by.clone(), *uid, reason.clone(), *step, lost.clone())),
            _ => None,
        });
        let (by, uid, reason, step, lost) = overridden.expect("the override is journaled");
        assert_eq!((by.as_str(), uid, step), ("alice", Some(1000), 1));
        assert_eq!(reason, "the new format corrupts our indexes");
        assert!(
            lost.starts_with("step 2 (migrate) is irreversible"),
            "{lost}"
        );
        // The report says who, why and what it cost.
        let r = flightdeck::report::build(&j);
        let md = flightdeck::report::markdown(&r);
        assert!(
            md.contains(
                "| Past the point of no return | full rollback by alice: the new format corrupts \
                 our indexes (refused because step 2 (migrate) is irreversible"
            ),
            "{md}"
        );
        let json: serde_json::Value = serde_json::from_str(&flightdeck::report::json(&r)).unwrap();
        assert_eq!(json["rollback_override"]["by"], "alice");
        assert_eq!(
            SessionState::fold(&j.events).rollback_override,
            s.rollback_override
        );
    }

    /// `--on-failure rollback` gets the same refusal: past the point of no return the headless
    /// run stops as it is and says what a rollback would have lost.
    #[tokio::test]
    async fn on_failure_rollback_past_the_point_of_no_return_stops_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let task = session::start(EngineConfig {
            plan: past_no_return_plan(),
            target: empty_target(),
            auto: AutoConfirm {
                yes: true,
                yes_phrases: false,
                rollback_on_failure: true,
            },
            operator: "tester".into(),
            journal: dir.path().join("j.jsonl"),
            observe: false,
            time_scale: 1.0,
        })
        .unwrap();
        let s = until(&task, "finished", |s| s.is_finished()).await;
        assert_eq!(s.mode, Mode::Finished(Outcome::Aborted));
        let why = s.rollback_stopped.clone().unwrap_or_default();
        assert!(
            why.starts_with(
                "--on-failure rollback refused past the point of no return: step 2 (migrate) \
                 is irreversible (the store format changes)"
            ),
            "{why}"
        );
        assert_eq!(
            s.steps[1].status,
            StepStatus::Succeeded,
            "nothing was undone"
        );
        let end = flightdeck::headless::stop_reason(&s).unwrap();
        assert!(
            end.summary
                .contains("rollback stopped: --on-failure rollback refused"),
            "{}",
            end.summary
        );
    }

    #[tokio::test]
    async fn a_procedure_without_verification_never_says_verified() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(
            "t",
            vec![
                step_with("a", run(&["true"]), Some(run(&["true"]))),
                step_with("b", run(&["false"]), None),
            ],
        );
        let task = start(p, &dir);
        drive(&task, |s| s.steps[1].status == StepStatus::Failed).await;
        task.handle
            .command(Command::Abort {
                rollback: true,
                reason: None,
            })
            .await
            .unwrap();
        let s = drive(&task, |s| s.is_finished()).await;
        assert_eq!(s.mode, Mode::Finished(Outcome::RolledBack));
        assert!(!rollback_verified(&s));
        assert_eq!(
            outcome_text(&s),
            "rolled back, NOT verified: the procedure declares no rollback verification \
             ([[rollback.verify]]): nothing checked the cluster"
        );
    }

    #[tokio::test]
    async fn a_skipped_undo_cannot_be_verified_even_when_every_check_holds() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("flag");
        std::fs::write(&flag, "").unwrap();
        let mut p = plan(
            "t",
            vec![
                step_with("a", run(&["true"]), Some(run(&["true"]))),
                step_with("b", run(&["true"]), Some(run(&["false"]))),
                step_with("c", run(&["false"]), None),
            ],
        );
        p.rollback.verify = vec![flag_check(&flag)];
        let task = start(p, &dir);
        drive(&task, |s| s.steps[2].status == StepStatus::Failed).await;
        task.handle
            .command(Command::Abort {
                rollback: true,
                reason: None,
            })
            .await
            .unwrap();
        let s = drive(&task, |s| s.is_finished()).await;
        assert_eq!(s.mode, Mode::Finished(Outcome::RolledBack));
        let v = s.verification.clone().expect("verification ran");
        assert!(v.nodes.iter().all(|n| n.ok), "{v:?}");
        assert!(!v.verified);
        assert_eq!(
            outcome_text(&s),
            "rolled back, NOT verified: the undo of step 2 (b) was skipped"
        );
    }

    #[tokio::test]
    async fn a_resume_during_the_verification_runs_it_again_and_folds_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let flag = dir.path().join("flag");
        let mut p = plan(
            "t",
            vec![
                step_with("a", run(&["true"]), Some(run(&["true"]))),
                step_with("b", run(&["false"]), None),
            ],
        );
        p.rollback.verify = vec![flag_check(&flag)];
        let task = start(p, &dir);
        drive(&task, |s| s.steps[1].status == StepStatus::Failed).await;
        task.handle
            .command(Command::Abort {
                rollback: true,
                reason: None,
            })
            .await
            .unwrap();
        drive(&task, |s| s.verifying).await;
        // The session dies while the verification waits for the flag.
        task.join.abort();
        let _ = task.join.await;
        // A check's child forked in that instant may hold the journal's lock until it execs
        // or dies.
        let resumed = resume_once_free(&path).await;
        let s = until(&resumed, "verifying again", |s| s.verifying).await;
        assert!(!s.is_finished());
        std::fs::write(&flag, "").unwrap();
        let s = until(&resumed, "finished", |s| s.is_finished()).await;
        assert!(rollback_verified(&s), "{}", outcome_text(&s));
        assert_eq!(outcome_text(&s), "rolled back (verified)");
        resumed.handle.shutdown().await;
        let end = resumed.join.await.unwrap().unwrap();
        let j = journal::read(&path).unwrap();
        let started = j
            .events
            .iter()
            .filter(|e| matches!(e.event, Event::VerifyStarted { .. }))
            .count();
        assert_eq!(
            started, 2,
            "the verification ran once before and once after"
        );
        let folded = SessionState::fold(&j.events);
        assert_eq!(folded.verification, end.verification);
        assert_eq!(folded.mode, end.mode);
    }
}
