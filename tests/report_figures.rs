//! The report's figures against journals whose timestamps are chosen by hand, so every duration
//! and window is known exactly.

#[path = "fixtures/builder.rs"]
mod builder;

use std::process::ExitCode;

use builder::{fixture, fixture_path, node, plan, planned, Script};
use flightdeck::engine::event::{AutoConfirm, Event, Phase, PromptKind, Verdict};
use flightdeck::journal::JournalError;
use flightdeck::report::{self, ReportError, ReportFormat, ReportOutcome};

#[test]
fn the_fixture_reports_exact_step_durations_windows_and_totals() {
    let r = report::build(&fixture());
    assert_eq!(r.procedure, "rolling-upgrade");
    assert_eq!(r.target, "lab");
    assert_eq!(r.from_version.as_deref(), Some("1.4.2"));
    assert_eq!(r.to_version.as_deref(), Some("1.5.0"));
    assert_eq!(r.started_at, "2026-11-20T14:00:00Z");
    assert_eq!(r.operator, "alice");
    assert_eq!(r.outcome, ReportOutcome::Completed);
    assert_eq!(r.duration_ms, 954_000);

    let durations: Vec<u64> = r.steps.iter().map(|s| s.duration_ms).collect();
    assert_eq!(
        durations,
        vec![1000, 1000, 13_000, 1000, 1000, 14_000, 1000, 2000]
    );
    let upgrade2 = &r.steps[5];
    assert_eq!(upgrade2.key, "upgrade@node2");
    assert_eq!(upgrade2.number, 6);
    assert_eq!(upgrade2.status, "done");
    assert_eq!(upgrade2.attempts, 2);
    assert_eq!(upgrade2.retries, 1);
    assert_eq!(upgrade2.undos, 0);
    assert_eq!(upgrade2.confirmed_by, vec!["alice", "alice"]);
    assert_eq!(upgrade2.failures.len(), 1);
    let f = &upgrade2.failures[0];
    assert_eq!(
        (f.t_ms, f.attempt, f.verdict, f.detail.as_str()),
        (31_900, 1, Verdict::Failed, "exited 1")
    );
    assert!(r.steps[7].irreversible);
    assert!(r.steps.iter().all(|s| s.interrupted == 0));

    // node1 read-only 9.0 s -> 21.0 s, node2 934.0 s -> 945.0 s
    assert_eq!((r.read_only.total_ms, r.read_only.count), (23_000, 2));
    // node1 down while node2 drained: 936.0 s -> 937.2 s
    assert_eq!(
        (r.no_ready_backend.total_ms, r.no_ready_backend.count),
        (1200, 1)
    );

    let t = r.traffic.unwrap();
    assert_eq!(
        (
            t.reads_ok,
            t.reads_failed,
            t.writes_ok,
            t.writes_rejected,
            t.writes_failed
        ),
        (8095, 12, 3140, 3, 5)
    );
    let p2 = r
        .probes
        .iter()
        .find(|p| p.node.as_deref() == Some("node2"))
        .unwrap();
    assert_eq!(
        (p2.samples, p2.failures, p2.went_failing, p2.recovered),
        (300, 9, 1, 1)
    );
    let p1 = r
        .probes
        .iter()
        .find(|p| p.node.as_deref() == Some("node1"))
        .unwrap();
    assert_eq!(
        (p1.samples, p1.failures, p1.went_failing, p1.recovered),
        (300, 4, 1, 1)
    );

    let notes: Vec<(u64, &str)> = r.notes.iter().map(|n| (n.t_ms, n.by.as_str())).collect();
    assert_eq!(notes, vec![(33_000, "bob"), (933_000, "alice")]);
    let joined: Vec<(&str, bool, u64)> = r
        .joined
        .iter()
        .map(|j| (j.name.as_str(), j.driver, j.t_ms))
        .collect();
    assert_eq!(joined, vec![("alice", true, 50), ("bob", false, 24_700)]);
    assert!(!r.torn_tail);
}

#[test]
fn markdown_pastes_into_a_ticket() {
    let md = report::markdown(&report::build(&fixture()));
    assert!(md.starts_with("# Upgrade report: rolling-upgrade on lab\n"));
    for line in [
        "| Versions | 1.4.2 → 1.5.0 |",
        "| Ended | 2026-11-20T14:15:54Z |",
        "| Duration | 15m 54s |",
        "| Outcome | completed |",
        "| Joined | alice (driver) at 14:00:00 (+0:00), bob (observer) at 14:00:24 (+0:24) |",
        "| Read-only window | 23 s (2 times) |",
        "| No ready backend | 1.2 s (1 time) |",
        "| Probe failures | 13 failed samples; 2 times a probe turned failing |",
        "| 3 | `upgrade@node1` | Upgrade node1 to 1.5.0 | done | 14:00:08 (+0:08) | 13 s | 1 | alice | 0 | 0 | 0 |",
        "| 6 | `upgrade@node2` | Upgrade node2 to 1.5.0 | done | 14:00:29 (+0:29) | 14 s | 2 | alice | 1 | 0 | 1 |",
        "| 8 | `finalize` | Finalize the cluster version (irreversible) | done | 14:15:51 (+15:51) | 2 s | 1 | alice | 0 | 0 | 0 |",
        "  - 14:00:31 (+0:31): action attempt 1 failed: exited 1",
        "| 14:00:33 (+0:33) | bob | lock held by the nightly backup; waiting for it |",
        "| 14:15:33 (+15:33) | alice | backup finished; retrying |",
        "| health | node2 | 300 | 9 | 1 | 1 | 0 |",
        "| 8095 | 12 | 3140 | 3 | 5 |",
    ] {
        assert!(md.lines().any(|l| l == line), "missing line {line:?} in\n{md}");
    }
    assert!(!md.contains('\u{1b}'));
    // Every table row has as many cells as its header.
    let mut columns = None;
    for line in md.lines() {
        if line.starts_with('|') {
            let n = line.replace("\\|", "").matches('|').count();
            match columns {
                None => columns = Some(n),
                Some(c) => assert_eq!(c, n, "ragged table row {line:?}"),
            }
        } else {
            columns = None;
        }
    }
}

#[test]
fn json_carries_the_same_figures() {
    let text = report::json(&report::build(&fixture()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["duration_ms"], 954_000);
    assert_eq!(v["outcome"], "completed");
    assert_eq!(v["read_only"]["total_ms"], 23_000);
    assert_eq!(v["no_ready_backend"]["total_ms"], 1200);
    assert_eq!(v["steps"][5]["duration_ms"], 14_000);
    assert_eq!(v["steps"][5]["failures"][0]["detail"], "exited 1");
    assert_eq!(v["traffic"]["reads_failed"], 12);
    assert_eq!(v["notes"][1]["t_ms"], 933_000);
    // No rollback happened: the key is there, and says nothing either way.
    assert!(v["rollback_verified"].is_null(), "{v:#}");
    assert!(v.as_object().unwrap().contains_key("rollback_verified"));
}

/// A session that crashed mid-undo: open windows are measured to the last event, the running
/// action counts as interrupted, automatic confirms say so.
#[test]
fn an_unfinished_session_with_undo_auto_confirms_and_open_windows() {
    let mut s = Script::new(
        plan(vec![planned("a", "Step a"), planned("b", "Step b")]),
        vec![node("n1")],
        "carol",
    );
    if let Event::SessionStarted { auto, .. } = &mut s.events[0].event {
        *auto = AutoConfirm {
            yes: true,
            ..Default::default()
        };
    }
    s.at(
        100,
        Event::PromptOpened {
            id: 2,
            step: 0,
            prompt: PromptKind::Run,
        },
    )
    .at(
        100,
        Event::Confirmed {
            step: 0,
            by: "--yes".into(),
            auto: true,
        },
    )
    .at(
        100,
        Event::ActionStarted {
            step: 0,
            phase: Phase::Do,
            attempt: 1,
        },
    )
    .at(
        2100,
        Event::ActionFinished {
            step: 0,
            phase: Phase::Do,
            attempt: 1,
            verdict: Verdict::Passed,
            detail: "exited 0".into(),
        },
    )
    .at(
        2200,
        Event::PromptOpened {
            id: 6,
            step: 0,
            prompt: PromptKind::Undo,
        },
    )
    .at(
        2500,
        Event::Confirmed {
            step: 0,
            by: "carol".into(),
            auto: false,
        },
    )
    .at(
        2500,
        Event::ActionStarted {
            step: 0,
            phase: Phase::Undo,
            attempt: 2,
        },
    )
    .at(
        4000,
        Event::ActionFinished {
            step: 0,
            phase: Phase::Undo,
            attempt: 2,
            verdict: Verdict::Failed,
            detail: "undo: exited 3".into(),
        },
    )
    .at(
        4100,
        Event::Confirmed {
            step: 0,
            by: "carol".into(),
            auto: false,
        },
    )
    .at(
        4100,
        Event::ActionStarted {
            step: 0,
            phase: Phase::Undo,
            attempt: 3,
        },
    )
    .at(
        5000,
        Event::NodeFacts {
            node: "n1".into(),
            facts: [("read_only".to_string(), "true".to_string())].into(),
            prior_sent_ms: None,
        },
    )
    .at(
        8000,
        Event::Output {
            step: 0,
            phase: Phase::Undo,
            stream: flightdeck::engine::event::Stream::Stdout,
            line: "still going".into(),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let path = s.write(dir.path(), "crashed.jsonl");
    // The process died mid-line.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"seq\":14,\"t_ms\":8100,\"type\":\"outp");
    std::fs::write(&path, bytes).unwrap();

    let j = flightdeck::journal::read(&path).unwrap();
    let r = report::build(&j);
    assert!(r.torn_tail);
    assert_eq!(r.outcome, ReportOutcome::Unfinished);
    assert_eq!(r.duration_ms, 8000);
    assert_eq!((r.read_only.total_ms, r.read_only.count), (3000, 1));
    assert_eq!(
        (r.no_ready_backend.total_ms, r.no_ready_backend.count),
        (0, 0)
    );
    let a = &r.steps[0];
    assert_eq!(a.duration_ms, 2000);
    assert_eq!(a.undo_ms, 1500);
    assert_eq!(
        (a.attempts, a.retries, a.undos, a.interrupted),
        (1, 0, 2, 1)
    );
    assert_eq!(a.confirmed_by, vec!["auto (--yes)", "carol", "carol"]);
    assert_eq!(a.failures[0].phase, Phase::Undo);
    assert_eq!(a.status, "undoing");
    assert_eq!(r.steps[1].attempts, 0);
    assert!(r.traffic.is_none());

    let md = report::render(&path, ReportFormat::Md).unwrap();
    assert!(md.contains("| Outcome | unfinished (the journal ends mid-session) |"));
    assert!(md.contains("| Auto-confirm | --yes |"));
    assert!(md.contains("| Journal | ends in a torn line"));
    assert!(
        md.contains("| 1 | `a` | Step a | undoing | 14:00:00 (+0:00) | 2 s | 1 | auto (--yes), carol | 0 | 2 | 1 |"),
        "{md}"
    );
    assert!(
        md.contains("| 2 | `b` | Step b | pending | – | – | 0 |  | 0 | 0 | 0 |"),
        "{md}"
    );
    assert!(md.contains("- Step 1 `a`: 1 attempt(s), 0 retry(ies), 2 undo(s) (undo ran 1.5 s), interrupted 1 time(s)"));
}

#[test]
fn a_file_that_is_not_a_journal_is_a_clear_error_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "hello, this is not a journal\n").unwrap();
    let err = report::render(&path, ReportFormat::Md).unwrap_err();
    assert!(matches!(
        err,
        ReportError::Journal(JournalError::NotAJournal { .. })
    ));
    assert!(
        err.to_string().contains("not a flightdeck journal"),
        "{err}"
    );
    assert_eq!(
        report::run(&path, ReportFormat::Json, Default::default()),
        ExitCode::from(2)
    );
    assert_eq!(
        report::run(
            &dir.path().join("missing.jsonl"),
            ReportFormat::Md,
            Default::default()
        ),
        ExitCode::from(2)
    );
    assert_eq!(
        report::run(
            &fixture_path("rolling-upgrade.jsonl"),
            ReportFormat::Json,
            Default::default()
        ),
        ExitCode::SUCCESS
    );
    assert_eq!(
        "markdown".parse::<ReportFormat>().unwrap(),
        ReportFormat::Md
    );
    assert_eq!("JSON".parse::<ReportFormat>().unwrap(), ReportFormat::Json);
    assert!("pdf".parse::<ReportFormat>().is_err());
}

#[test]
fn an_older_format_version_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture_path("rolling-upgrade.jsonl")).unwrap();
    let older = text.replacen("\"flightdeck_journal\":1", "\"flightdeck_journal\":0", 1);
    assert_ne!(older, text);
    let path = dir.path().join("old.jsonl");
    std::fs::write(&path, older).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&report::render(&path, ReportFormat::Json).unwrap()).unwrap();
    assert_eq!(v["journal_format"], 0);
    assert_eq!(v["duration_ms"], 954_000);
}

/// A format-2 journal (a compact `session_started`) reports exactly as the same events written
/// in this build's format (the plan packed) do: only the format number differs.
#[test]
fn a_format_2_journal_reports_as_it_does_written_now() {
    use flightdeck::journal::{self, JournalWriter};
    let dir = tempfile::tempdir().unwrap();
    let old = fixture_path("format2-jahia-default.jsonl");
    let j = journal::read(&old).unwrap();
    assert_eq!(j.header.flightdeck_journal, 2);
    let now = dir.path().join("now.jsonl");
    let header = journal::Header {
        flightdeck_journal: journal::FORMAT,
        ..j.header.clone()
    };
    let mut w = JournalWriter::create(&now, &header).unwrap();
    for ev in &j.events {
        w.append(ev, false).unwrap();
    }
    drop(w);
    let json = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&report::render(p, ReportFormat::Json).unwrap()).unwrap()
    };
    let (mut a, mut b) = (json(&old), json(&now));
    assert_eq!(a["journal_format"], 2);
    assert_eq!(b["journal_format"], journal::FORMAT);
    assert_eq!(a["steps"].as_array().map(Vec::len), Some(50));
    a["journal_format"] = serde_json::Value::Null;
    b["journal_format"] = serde_json::Value::Null;
    assert_eq!(a, b);
}

#[test]
fn a_header_only_journal_reports_an_empty_unfinished_session() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.jsonl");
    let s = Script { events: Vec::new() };
    s.write(dir.path(), "h.jsonl");
    let r = report::build(&flightdeck::journal::read(&path).unwrap());
    assert_eq!(r.outcome, ReportOutcome::Unfinished);
    assert_eq!(r.procedure, "rolling-upgrade");
    assert!(r.steps.is_empty());
    assert!(report::markdown(&r).contains("The journal holds no plan."));
}

/// A standalone (no balancer) is fully down while every node's health probe fails: a real
/// Milvus standalone upgrade once showed "full down 00:00" and "No ready backend: none" over
/// 80 s of outage. One node down of two is not a full outage; the window closes when one
/// comes back, and nothing after the finish counts.
#[test]
fn without_a_balancer_full_downtime_is_every_node_unhealthy() {
    let mut s = Script::new(
        plan(vec![planned("stop@n1", "Stop n1")]),
        vec![node("n1"), node("n2")],
        "alice",
    );
    if let Event::SessionStarted { lb, .. } = &mut s.events[0].event {
        *lb = None;
    }
    let health = |node: &str, ok: bool| Event::ProbeChanged {
        probe: "health".into(),
        node: Some(node.into()),
        ok,
        detail: if ok {
            "200".into()
        } else {
            "connection refused".into()
        },
    };
    s.at(100, health("n1", true))
        .at(100, health("n2", true))
        .at(1_000, health("n1", false))
        .at(2_000, health("n2", false))
        .at(5_000, health("n2", true))
        .at(6_000, health("n1", true))
        .at(7_000, health("n1", false))
        .at(7_500, health("n2", false))
        .at(
            8_000,
            Event::Finished {
                outcome: flightdeck::engine::event::Outcome::Aborted,
            },
        )
        .at(9_000, health("n1", true))
        .at(9_500, health("n1", false));
    let r = report::build(&s.journal());
    assert_eq!(
        r.no_ready_backend.total_ms,
        3_000 + 500,
        "{:?}",
        r.no_ready_backend
    );
    assert_eq!(r.no_ready_backend.count, 2);
}

fn probe_changed(ok: bool) -> Event {
    Event::ProbeChanged {
        probe: "health".into(),
        node: Some("n1".into()),
        ok,
        detail: if ok { "200".into() } else { "503".into() },
    }
}

/// The record says who decided what — the failure, the retry, the abort and what it was
/// decided on — when each step started, and about probes: a recovery that failed again within
/// the hold is a flap, and nothing a probe saw after the session ended counts.
#[test]
fn decisions_start_times_and_only_lasting_recoveries_before_the_end() {
    let mut s = Script::new(
        plan(vec![planned("a", "Step a"), planned("b", "Step b")]),
        vec![node("n1")],
        "carol",
    );
    s.step_ok(0, "carol", 100, 1_000, 2_000)
        .at(
            2_100,
            Event::PromptOpened {
                id: 6,
                step: 1,
                prompt: PromptKind::Run,
            },
        )
        .at(
            2_200,
            Event::Declined {
                step: 1,
                by: "carol".into(),
            },
        )
        .at(
            3_000,
            Event::Confirmed {
                step: 1,
                by: "carol".into(),
                auto: false,
            },
        )
        .at(
            3_000,
            Event::ActionStarted {
                step: 1,
                phase: Phase::Do,
                attempt: 1,
            },
        )
        // The probe fails, comes back for 5 s (a flap), fails, comes back for good (40 s).
        .at(3_500, probe_changed(false))
        .at(4_000, probe_changed(true))
        .at(9_000, probe_changed(false))
        .at(
            10_000,
            Event::ActionFinished {
                step: 1,
                phase: Phase::Do,
                attempt: 1,
                verdict: Verdict::Failed,
                detail: "store migration from format 8001 to 8002 failed".into(),
            },
        )
        .at(
            10_100,
            Event::PromptOpened {
                id: 13,
                step: 1,
                prompt: PromptKind::Failed,
            },
        )
        .at(
            11_000,
            Event::ActionStarted {
                step: 1,
                phase: Phase::Do,
                attempt: 2,
            },
        )
        .at(12_000, probe_changed(true))
        .at(
            20_000,
            Event::ActionFinished {
                step: 1,
                phase: Phase::Do,
                attempt: 2,
                verdict: Verdict::Failed,
                detail: "store migration from format 8001 to 8002 failed".into(),
            },
        )
        .at(
            20_100,
            Event::PromptOpened {
                id: 18,
                step: 1,
                prompt: PromptKind::Failed,
            },
        )
        .at(
            52_000,
            Event::AbortRequested {
                by: "carol".into(),
                rollback: false,
                reason: Some("migration bug, vendor ticket 4411: fix forward tomorrow".into()),
            },
        )
        .at(
            52_000,
            Event::Finished {
                outcome: flightdeck::engine::event::Outcome::Aborted,
            },
        )
        // After the end: the lab is being torn down; none of this is the session's.
        .at(53_000, probe_changed(false))
        .at(
            60_000,
            Event::ProbeSummary {
                probe: "health".into(),
                node: Some("n1".into()),
                count: 10,
                failures: 10,
                min_ms: 1,
                median_ms: 1,
                max_ms: 1,
            },
        );
    let r = report::build(&s.journal());
    assert_eq!(r.outcome, ReportOutcome::Aborted);
    assert_eq!(r.steps[0].started_ms, Some(1_000));
    assert_eq!(r.steps[1].started_ms, Some(3_000));
    let p = &r.probes[0];
    assert_eq!(
        (
            p.samples,
            p.failures,
            p.went_failing,
            p.recovered,
            p.relapsed
        ),
        (0, 0, 2, 1, 1)
    );
    let decided: Vec<(u64, &str, &str)> = r
        .decisions
        .iter()
        .map(|d| (d.t_ms, d.by.as_str(), d.what.as_str()))
        .collect();
    assert_eq!(
        decided,
        [
            (1_000, "carol", "confirmed step 1 (Step a)"),
            (2_200, "carol", "held step 2 (Step b)"),
            (3_000, "carol", "confirmed step 2 (Step b)"),
            (11_000, "carol", "retried step 2 (attempt 2)"),
            (
                52_000,
                "carol",
                "aborted, keeping what was done because: migration bug, vendor ticket 4411: \
                 fix forward tomorrow — step 2 had failed: store migration from format 8001 to \
                 8002 failed"
            ),
        ]
    );

    let md = report::markdown(&r);
    for line in [
        "| 1 | `a` | Step a | done | 14:00:01 (+0:01) | 1 s | 1 | carol | 0 | 0 | 0 |",
        "| 14:00:52 (+0:52) | carol | aborted, keeping what was done because: migration bug, \
         vendor ticket 4411: fix forward tomorrow — step 2 had failed: store migration from \
         format 8001 to 8002 failed |",
        "| health | n1 | 0 | 0 | 2 | 1 | 1 |",
    ] {
        assert!(md.lines().any(|l| l == line), "missing {line:?} in\n{md}");
    }
    let v: serde_json::Value = serde_json::from_str(&report::json(&r)).unwrap();
    assert_eq!(v["steps"][1]["started_ms"], 3_000);
    assert_eq!(v["decisions"][4]["by"], "carol");
    assert!(v["decisions"][4]["what"]
        .as_str()
        .is_some_and(|w| w.contains("because: migration bug, vendor ticket 4411")));
    assert_eq!(v["probes"][0]["relapsed"], 1);
    // An abort that keeps what was done is no rollback: neither verified nor failed.
    assert_eq!(r.rollback_verified, None);
    assert!(v["rollback_verified"].is_null(), "{v:#}");
}

/// `rollback_verified` is about a rollback: `true` only when one ran and its verification
/// held, `false` when one was asked for and did not end verified (failed check, stopped at an
/// irreversible step, journal cut mid-rollback), and `null` when none was asked for.
#[test]
fn rollback_verified_is_null_without_a_rollback_and_truthful_with_one() {
    use flightdeck::engine::event::{CheckVerdict, NodeVerdict, Outcome};

    /// Step `a` done, then an abort with rollback and `a` undone; `end` finishes the story.
    fn rolled_back(end: &[Event]) -> Option<bool> {
        rolled_back_report(end).rollback_verified
    }
    fn rolled_back_report(end: &[Event]) -> report::Report {
        let mut s = Script::new(
            plan(vec![planned("a", "Step a")]),
            vec![node("n1")],
            "carol",
        );
        s.step_ok(0, "carol", 100, 1_000, 2_000)
            .at(
                3_000,
                Event::AbortRequested {
                    by: "carol".into(),
                    rollback: true,
                    reason: None,
                },
            )
            .at(
                3_100,
                Event::ActionStarted {
                    step: 0,
                    phase: Phase::Undo,
                    attempt: 2,
                },
            )
            .at(
                4_000,
                Event::ActionFinished {
                    step: 0,
                    phase: Phase::Undo,
                    attempt: 2,
                    verdict: Verdict::Passed,
                    detail: "exited 0".into(),
                },
            );
        for e in end {
            s.at(5_000, e.clone());
        }
        let r = report::build(&s.journal());
        let v: serde_json::Value = serde_json::from_str(&report::json(&r)).unwrap();
        assert_eq!(v["rollback_verified"].as_bool(), r.rollback_verified);
        r
    }
    let verdict = |ok: bool, detail: &str| NodeVerdict {
        node: Some("n1".into()),
        ok,
        checks: vec![CheckVerdict {
            what: "writable".into(),
            ok,
            detail: detail.into(),
        }],
    };
    let finished = |verified: bool, detail: &str| {
        [
            Event::VerifyStarted { checks: 1 },
            Event::VerifyFinished {
                verified,
                nodes: vec![verdict(verified, detail)],
                why_not: vec![],
            },
            Event::Finished {
                outcome: Outcome::RolledBack,
            },
        ]
    };
    assert_eq!(rolled_back(&finished(true, "")), Some(true));
    assert_eq!(
        rolled_back(&finished(false, "deny to write: quota state WriteDisabled")),
        Some(false)
    );
    // Stopped at an irreversible step: the session ends aborted, the rollback unverified,
    // and the Markdown says it stopped.
    let stopped = rolled_back_report(&[
        Event::RollbackStopped {
            reason: "step 1 is irreversible".into(),
        },
        Event::Finished {
            outcome: Outcome::Aborted,
        },
    ]);
    assert_eq!(stopped.rollback_verified, Some(false));
    let md = report::markdown(&stopped);
    assert!(
        md.contains("## After the rollback: stopped, NOT verified\n")
            && md.contains("step 1 is irreversible"),
        "{md}"
    );
    // The journal ends mid-rollback (the process was killed, the file cut): not verified,
    // and not said to have stopped — the journal just ends.
    let cut = rolled_back_report(&[]);
    assert_eq!(cut.rollback_verified, Some(false));
    let md = report::markdown(&cut);
    assert!(
        md.contains("## After the rollback: the journal ends during the rollback: not verified\n")
            && !md.contains("stopped"),
        "{md}"
    );
}

/// A journal that ends at a failed undo ends where the rollback stopped (a headless run stops
/// there): the Markdown says stopped, with the undo and the product's words, not that the
/// journal merely ends.
#[test]
fn a_journal_ending_at_a_failed_undo_reports_the_rollback_stopped() {
    let mut s = Script::new(
        plan(vec![planned("a", "Step a"), planned("b", "Step b")]),
        vec![node("n1")],
        "carol",
    );
    s.step_ok(0, "carol", 100, 1_000, 2_000)
        .at(
            3_000,
            Event::AbortRequested {
                by: "carol".into(),
                rollback: true,
                reason: None,
            },
        )
        .at(
            3_100,
            Event::ActionStarted {
                step: 0,
                phase: Phase::Undo,
                attempt: 2,
            },
        )
        .at(
            4_000,
            Event::ActionFinished {
                step: 0,
                phase: Phase::Undo,
                attempt: 2,
                verdict: Verdict::Failed,
                detail: "restore: the backup is missing".into(),
            },
        );
    let r = report::build(&s.journal());
    assert_eq!(r.outcome, ReportOutcome::Unfinished);
    assert_eq!(r.rollback_verified, Some(false));
    let md = report::markdown(&r);
    assert!(
        md.contains("## After the rollback: stopped, NOT verified\n")
            && md.contains("the backup is missing")
            && !md.contains("the journal ends during the rollback"),
        "{md}"
    );
}

/// A journal far longer than any real session (a step run 500 times): the report keeps the
/// first and last decisions and runs and says how many it left out between them, so its
/// memory does not grow with the journal; the counts stay whole.
#[test]
fn lists_longer_than_a_session_keep_both_ends_and_say_what_they_left_out() {
    let runs = 500u32;
    let mut s = Script::new(
        plan(vec![planned("a", "Step a")]),
        vec![node("n1")],
        "carol",
    );
    for n in 1..=runs {
        let t = u64::from(n) * 1_000;
        s.at(
            t,
            Event::Confirmed {
                step: 0,
                by: if n == 250 { "dave" } else { "carol" }.into(),
                auto: false,
            },
        )
        .at(
            t,
            Event::ActionStarted {
                step: 0,
                phase: Phase::Do,
                attempt: n,
            },
        )
        .at(
            t + 500,
            Event::ActionFinished {
                step: 0,
                phase: Phase::Do,
                attempt: n,
                verdict: Verdict::Failed,
                detail: format!("exited {n}"),
            },
        );
    }
    let r = report::build(&s.journal());
    // A confirmation per run and a retry per run after the first.
    let decided = u64::from(2 * runs - 1);
    let left = r.decisions_left_out.expect("decisions left out");
    assert_eq!(r.decisions.len(), 2 * report::KEEP);
    assert_eq!(
        (left.after, left.count),
        (report::KEEP, decided - 2 * report::KEEP as u64)
    );
    assert_eq!(r.decisions[0].what, "confirmed step 1 (Step a)");
    assert_eq!(
        r.decisions.last().map(|d| d.what.as_str()),
        Some("retried step 1 (attempt 500)")
    );
    let step = &r.steps[0];
    assert_eq!((step.attempts, step.retries), (runs, runs - 1));
    assert_eq!(step.failure_count(), u64::from(runs));
    assert_eq!(step.failures.len(), 2 * report::KEEP_PER_STEP);
    assert_eq!(step.failures.last().map(|f| f.attempt), Some(runs));
    assert_eq!(
        step.confirmed_by_left_out.map(|l| l.count),
        Some(u64::from(runs) - 2 * report::KEEP_PER_STEP as u64)
    );

    let md = report::markdown(&r);
    for line in [
        format!(
            "| … | … | … {} more decisions not shown (the journal has them all) |",
            left.count
        ),
        // The failures column counts every failed run; dave confirmed a run left out.
        format!(
            "| 1 | `a` | Step a | failed | 14:00:01 (+0:01) | 4m 10s | {runs} | carol, … ({} more runs not shown) | {} | 0 | {runs} |",
            u64::from(runs) - 2 * report::KEEP_PER_STEP as u64,
            runs - 1
        ),
        format!(
            "  - … {} more failures not shown (the journal has them all)",
            u64::from(runs) - 2 * report::KEEP_PER_STEP as u64
        ),
    ] {
        assert!(md.lines().any(|l| l == line), "missing {line:?} in\n{md}");
    }
    // The marker row stands between the first KEEP rows and the last KEEP.
    let rows: Vec<&str> = md
        .lines()
        .skip_while(|l| *l != "## Decisions")
        .skip(4)
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert_eq!(rows.len(), 2 * report::KEEP + 1);
    assert!(
        rows[report::KEEP].starts_with("| … |"),
        "{}",
        rows[report::KEEP]
    );

    let v: serde_json::Value = serde_json::from_str(&report::json(&r)).unwrap();
    assert_eq!(v["decisions_left_out"]["count"], left.count);
    assert_eq!(v["decisions_left_out"]["after"], report::KEEP);
    assert_eq!(
        v["steps"][0]["failures_left_out"]["after"],
        report::KEEP_PER_STEP
    );
    // A session within the bounds has no such fields.
    let whole: serde_json::Value =
        serde_json::from_str(&report::json(&report::build(&fixture()))).unwrap();
    assert!(whole.get("decisions_left_out").is_none(), "{whole:#}");
    assert!(
        whole["steps"][0].get("failures_left_out").is_none(),
        "{whole:#}"
    );
}

/// Step output and a note carrying terminal escapes (an OSC window title, an OSC 8 hyperlink,
/// a C1 CSI colour): the report keeps what a terminal would have shown and none of the
/// sequences' payload, so a title or a link's URL is not read as the product's words.
#[test]
fn escape_sequences_in_step_output_and_notes_do_not_reach_the_report() {
    let title = "\u{1b}]0;SET-BY-THE-PRODUCT\u{7}";
    let link = "\u{1b}]8;;https://evil.example/x\u{1b}\\the runbook\u{1b}]8;;\u{1b}\\";
    let mut s = Script::new(
        plan(vec![planned("a", "Step a")]),
        vec![node("n1")],
        "carol",
    );
    s.at(
        1_000,
        Event::ActionStarted {
            step: 0,
            phase: Phase::Do,
            attempt: 1,
        },
    )
    .at(
        1_500,
        Event::Output {
            step: 0,
            phase: Phase::Do,
            stream: flightdeck::engine::event::Stream::Stderr,
            line: format!("{title}\u{9b}31mdisk full\u{9b}0m"),
        },
    )
    .at(
        2_000,
        Event::ActionFinished {
            step: 0,
            phase: Phase::Do,
            attempt: 1,
            verdict: Verdict::Failed,
            detail: format!("exit 1: {title}\u{9b}31mdisk full\u{9b}0m"),
        },
    )
    .at(
        2_500,
        Event::Note {
            by: "carol".into(),
            text: format!("see {link} | {title}page 4"),
        },
    );
    let md = report::markdown(&report::build(&s.journal()));
    assert!(md.contains("exit 1: disk full"), "{md}");
    assert!(md.contains("see the runbook \\| page 4"), "{md}");
    for payload in [
        "SET-BY-THE-PRODUCT",
        "evil.example",
        "31m",
        "\u{1b}",
        "\u{9b}",
    ] {
        assert!(!md.contains(payload), "{payload:?} in the report:\n{md}");
    }
}
