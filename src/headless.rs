//! The headless runner: prints a session's events as lines and ends when the session finishes
//! or waits on something only a human can answer. `--yes` never answers a failure.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::engine::event::{Event, Outcome, Phase, Stamped, Stream, Verdict};
use crate::engine::outcome::outcome_text;
use crate::engine::session::EngineTask;
use crate::engine::state::{Mode, PromptKindTag, SessionState, StepStatus};
use crate::plan::Confirm;
use crate::terminal_text::{clean, one_line};

/// How a headless run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadlessEnd {
    pub ok: bool,
    /// One line: why it ended and the figures that matter.
    pub summary: String,
}

/// Output lines of the step where a resumed session stands, printed before the events.
pub const RESUME_OUTPUT_LINES: usize = 10;

/// Follow the session to its end, printing to `out`; then shut the engine down.
///
/// It starts from the session as the engine folded it. A session this engine started prints
/// whole; a resumed one prints a summary of the history it took over (where each step stands,
/// the last output lines of the step where it stopped, and how to read the rest with `report`)
/// and then everything since the resume: a long history is neither read again nor printed.
pub async fn follow(task: EngineTask, out: &mut (dyn Write + Send)) -> (HeadlessEnd, SessionState) {
    let mut state = SessionState::empty();
    let end = match task.handle.follow_folded().await {
        Err(e) => HeadlessEnd {
            ok: false,
            summary: format!("stopped: {e}"),
        },
        Ok(from) => {
            state = from.state;
            let mut live = from.live;
            let mut last = state.last_seq;
            let mut end = None;
            let took_over = from
                .own
                .first()
                .map_or(state.last_seq, |e| e.seq.saturating_sub(1));
            if took_over > 0 {
                print_history(out, &state, took_over, task.handle.journal_path());
            }
            // Where the session stands now (not a prompt from before an earlier crash: it
            // named the wrong step after a second crash) is the engine's fold.
            for e in &from.own {
                print_event(out, &state, e);
            }
            if let Some(x) = stop_reason(&state) {
                end = Some(x);
            }
            while end.is_none() {
                match live.recv().await {
                    Ok(e) => {
                        if e.event.is_live_only() || e.seq <= last {
                            continue;
                        }
                        last = e.seq;
                        state.apply(&e);
                        print_event(out, &state, &e);
                        end = stop_reason(&state);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        match task.handle.subscribe(last).await {
                            Ok((missed, fresh)) => {
                                live = fresh;
                                for e in missed {
                                    last = e.seq;
                                    state.apply(&e);
                                    print_event(out, &state, &e);
                                }
                                end = stop_reason(&state);
                            }
                            Err(e) => {
                                end = Some(HeadlessEnd {
                                    ok: false,
                                    summary: format!("stopped: {e}"),
                                })
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        end = Some(HeadlessEnd {
                            ok: false,
                            summary: "stopped: the engine ended unexpectedly (see the log)".into(),
                        })
                    }
                }
            }
            end.unwrap_or(HeadlessEnd {
                ok: false,
                summary: "stopped".into(),
            })
        }
    };
    task.handle.shutdown().await;
    let final_state = match task.join.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let _ = writeln!(out, "engine error: {}", one_line(&e.to_string()));
            state
        }
        Err(_) => state,
    };
    let end = HeadlessEnd {
        summary: format!("{}; {}", end.summary, figures(&final_state)),
        ..end
    };
    let _ = writeln!(out, "{}", one_line(&end.summary));
    (end, final_state)
}

/// What a resumed session's history comes to, instead of its every line: the session, how
/// many events it journaled, where each step stands, and the last output lines of the step
/// where it stopped; the whole is one `report` away.
fn print_history(out: &mut (dyn Write + Send), s: &SessionState, events: u64, journal: &Path) {
    let p = &s.plan;
    // Names and versions read from the journal (and before it from files and products).
    let session = format!(
        "session: {} on {} ({} steps, {} -> {}), operator {}; {events} events before this resume \
         (all of them: flightdeck report {})",
        p.procedure,
        p.target,
        p.steps.len(),
        p.from_version.as_deref().unwrap_or("?"),
        p.to_version.as_deref().unwrap_or("?"),
        s.operator,
        journal.display()
    );
    let _ = writeln!(out, "{}", one_line(&session));
    let count = |st: StepStatus| s.steps.iter().filter(|x| x.status == st).count();
    let mut standing = vec![format!("{} done", count(StepStatus::Succeeded))];
    for (st, word) in [
        (StepStatus::Skipped, "skipped"),
        (StepStatus::Failed, "failed"),
        (StepStatus::Undone, "undone"),
    ] {
        let n = count(st);
        if n > 0 {
            standing.push(format!("{n} {word}"));
        }
    }
    let _ = writeln!(out, "steps: {} of {}", standing.join(", "), s.steps.len());
    let at = s
        .prompt
        .map(|p| p.step)
        .or_else(|| s.running())
        .or_else(|| s.cursor());
    let Some((i, step)) = at.and_then(|i| s.steps.get(i).map(|x| (i, x))) else {
        return;
    };
    let key = one_line(p.steps.get(i).map(|x| x.key.as_str()).unwrap_or("?"));
    let shown = step.output.len().min(RESUME_OUTPUT_LINES);
    let _ = writeln!(
        out,
        "step {} ({key}): {}{}",
        i + 1,
        format!("{:?}", step.status).to_lowercase(),
        if shown > 0 {
            format!("; its last {shown} output lines:")
        } else {
            String::new()
        }
    );
    for l in step.output.iter().skip(step.output.len() - shown) {
        let _ = writeln!(out, "{} {}", tag(l.stream), clean(Cow::Borrowed(&l.line)));
    }
}

/// How an output line's stream shows in front of it.
fn tag(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "  |",
        Stream::Stderr => "  !",
        Stream::Info => "  -",
    }
}

pub fn exit_code(end: &HeadlessEnd) -> ExitCode {
    if end.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Why the run ends here, if it does: the session finished (its outcome, in the words every
/// view uses), or it waits on something only a human can answer.
pub fn stop_reason(s: &SessionState) -> Option<HeadlessEnd> {
    if let Mode::Finished(outcome) = s.mode {
        let done = s
            .steps
            .iter()
            .filter(|x| x.status == crate::engine::state::StepStatus::Succeeded)
            .count();
        return Some(match outcome {
            Outcome::Completed => HeadlessEnd {
                ok: true,
                summary: format!("{}: {done}/{} steps", outcome_text(s), s.steps.len()),
            },
            Outcome::RolledBack => HeadlessEnd {
                ok: false,
                summary: {
                    let outcome = outcome_text(s);
                    format!("{outcome}{}", failure_note(s, &outcome))
                },
            },
            Outcome::Aborted => HeadlessEnd {
                ok: false,
                summary: {
                    let outcome = outcome_text(s);
                    // Said once: a stopped rollback's outcome already gives the reason.
                    let stopped = s
                        .rollback_stopped
                        .as_deref()
                        .filter(|r| r.is_empty() || !outcome.contains(r))
                        .map(|r| format!("; rollback stopped: {r}"))
                        .unwrap_or_default();
                    format!("{outcome}{}{stopped}", failure_note(s, &outcome))
                },
            },
        });
    }
    let open = s.prompt?;
    if s.policy_answers_prompt() {
        return None;
    }
    let n = open.step + 1;
    let planned = s.plan.steps.get(open.step)?;
    if let Some(g) = s.guard_refusal_of(open.step) {
        return Some(HeadlessEnd {
            ok: false,
            summary: format!("stopped: step {n} ({}): {}", planned.key, g.reason),
        });
    }
    let detail = s.steps[open.step].detail.clone().unwrap_or_default();
    // A rollback stopped at a failed undo: its outcome, the words `report` and the cockpit
    // use, and what a person can do from there.
    let orphan = s.orphan.is_some_and(|(o, _)| o == open.step);
    if s.mode == Mode::RollingBack
        && !orphan
        && matches!(
            open.kind,
            PromptKindTag::Failed | PromptKindTag::Interrupted
        )
    {
        let outcome = outcome_text(s);
        return Some(HeadlessEnd {
            ok: false,
            summary: format!(
                "stopped: {outcome}{}; resume it in the cockpit to retry the undo, mark it \
                 done or skip it",
                failure_note(s, &outcome)
            ),
        });
    }
    let summary = match open.kind {
        PromptKindTag::Failed => format!("stopped: step {n} ({}) failed: {detail}", planned.key),
        PromptKindTag::Interrupted => match s.orphan.filter(|(o, _)| *o == open.step) {
            Some((_, pgid)) => format!(
                "stopped: step {n} ({}) was interrupted and its command is still running \
                 (process group {pgid}): wait for it or kill it (K) in the cockpit, then choose",
                planned.key
            ),
            None => format!(
                "stopped: step {n} ({}) was interrupted; choose re-run, mark done or undo in the cockpit",
                planned.key
            ),
        },
        PromptKindTag::Run => match &planned.confirm {
            Confirm::Phrase { phrase } => format!(
                "stopped: step {n} ({}) needs the phrase {phrase:?}; pass --yes-phrases or confirm it in the cockpit",
                planned.key
            ),
            _ if planned.approvals > 1 => format!(
                "stopped: step {n} ({}) needs two people (approvals = {}); run it in the cockpit",
                planned.key, planned.approvals
            ),
            _ => format!(
                "stopped: step {n} ({}) needs confirmation; pass --yes or run it in the cockpit",
                planned.key
            ),
        },
        PromptKindTag::Undo => format!(
            "stopped: undo of step {n} ({}) needs confirmation",
            planned.key
        ),
    };
    Some(HeadlessEnd { ok: false, summary })
}

/// Why a plan cannot run headless: a two-person step (`approvals = 2`) needs a second user's
/// approval, which only the cockpit can give. Said before any step runs.
pub fn refuse_two_person(plan: &crate::plan::Plan) -> Option<String> {
    let (i, step) = plan
        .steps
        .iter()
        .enumerate()
        .find(|(_, s)| s.approvals > 1)?;
    Some(format!(
        "step {} ({}: {}) needs {} people (approvals = {}): a headless run has one; run this \
         procedure in the cockpit, where another user approves it",
        i + 1,
        step.key,
        step.title,
        step.approvals,
        step.approvals
    ))
}

/// The first failure in the session, for the summary of an aborted or rolled-back run (unless
/// `outcome` already says it: the failed undo a rollback stopped at).
fn failure_note(s: &SessionState, outcome: &str) -> String {
    s.first_failure
        .as_ref()
        .filter(|(_, detail)| detail.is_empty() || !outcome.contains(detail.as_str()))
        .map(|(i, detail)| {
            let key = s.plan.steps.get(*i).map(|p| p.key.as_str()).unwrap_or("?");
            format!("; step {} ({key}) had failed: {detail}", i + 1)
        })
        .unwrap_or_default()
}

/// The figures an operator wants on the last line.
pub fn figures(s: &SessionState) -> String {
    let t = s.traffic_total;
    let mut out = format!(
        "read-only {}; no ready backend {}",
        fmt_ms(s.read_only.total_at(s.t_ms)),
        fmt_ms(s.no_ready.total_at(s.t_ms))
    );
    if t.reads_ok + t.reads_failed + t.writes_ok + t.writes_rejected + t.writes_failed > 0 {
        out.push_str(&format!(
            "; traffic: {} reads ok, {} failed reads, {} writes ok, {} writes rejected (read-only), {} failed writes",
            t.reads_ok, t.reads_failed, t.writes_ok, t.writes_rejected, t.writes_failed
        ));
    }
    out
}

pub fn fmt_ms(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}h{:02}m{:02}s", s / 3600, (s / 60) % 60, s % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}.{}s", s, (ms % 1000) / 100)
    }
}

/// One event as the headless runner prints it (nothing for live-only samples).
pub fn print_event(out: &mut (dyn Write + Send), s: &SessionState, e: &Stamped) {
    let total = s.plan.steps.len();
    let step_name = |i: usize| {
        s.plan
            .steps
            .get(i)
            .map(|p| format!("[{}/{}] {}", i + 1, total, p.key))
            .unwrap_or_else(|| format!("[{}]", i + 1))
    };
    let line = match &e.event {
        Event::SessionStarted { plan, operator, .. } => format!(
            "session: {} on {} ({} steps, {} -> {}), operator {operator}",
            plan.procedure,
            plan.target,
            plan.steps.len(),
            plan.from_version.as_deref().unwrap_or("?"),
            plan.to_version.as_deref().unwrap_or("?")
        ),
        Event::Resumed {
            operator,
            skipped_lines,
            down_ms,
        } => {
            let mut line = format!("resumed by {operator}");
            if let Some(d) = down_ms.filter(|d| *d >= 1000) {
                line.push_str(&format!(" after {} down", fmt_ms(d)));
            }
            if !skipped_lines.is_empty() {
                let l: Vec<String> = skipped_lines.iter().map(|l| l.to_string()).collect();
                line.push_str(&format!(
                    "; damaged journal lines left out: {}",
                    l.join(", ")
                ));
            }
            line
        }
        Event::ProcessStarted { step, pid, .. } => {
            format!("{} process group {pid} started", step_name(*step))
        }
        Event::OrphanAlive { step, pgid } => format!(
            "{} its command from before the restart is still running (process group {pgid}): \
             wait for it, or kill it",
            step_name(*step)
        ),
        Event::OrphanGone {
            step,
            pgid,
            killed_by,
        } => match killed_by {
            Some(by) => format!("{} process group {pgid} killed by {by}", step_name(*step)),
            None => format!("{} process group {pgid} has ended", step_name(*step)),
        },
        Event::PromptOpened { step, prompt, .. } => {
            format!("{} waiting: {:?}", step_name(*step), prompt)
        }
        Event::Approved { step, by, .. } => format!("{} approved by {by}", step_name(*step)),
        Event::Confirmed { step, by, .. } => format!("{} confirmed by {by}", step_name(*step)),
        Event::Declined { step, by } => format!("{} declined by {by}", step_name(*step)),
        Event::ActionStarted {
            step,
            phase,
            attempt,
        } => {
            let what = if *phase == Phase::Undo { "undo" } else { "run" };
            let title = s
                .plan
                .steps
                .get(*step)
                .map(|p| p.title.as_str())
                .unwrap_or("");
            if *attempt > 1 {
                format!("{} {what} (attempt {attempt}): {title}", step_name(*step))
            } else {
                format!("{} {what}: {title}", step_name(*step))
            }
        }
        // A line redrawn with `\r` (a progress bar) shows its last state, as in the cockpit.
        Event::Output { stream, line, .. } => {
            format!("{} {}", tag(*stream), clean(Cow::Borrowed(line)))
        }
        Event::ActionFinished {
            step,
            phase,
            verdict,
            detail,
            ..
        } => {
            let v = match verdict {
                Verdict::Passed => "ok",
                Verdict::Failed => "FAILED",
                Verdict::Inconclusive => "INCONCLUSIVE",
            };
            let what = if *phase == Phase::Undo { "undo " } else { "" };
            format!("{} {what}{v}: {detail}", step_name(*step))
        }
        Event::Skipped { step, by } => format!("{} skipped by {by}", step_name(*step)),
        Event::OptionalChosen {
            step,
            choice,
            by,
            reason,
            ..
        } => format!(
            "{} is optional: {}",
            step_name(*step),
            crate::engine::event::optional_choice_words(*choice, by, reason.as_deref())
        ),
        Event::MarkedDone { step, by, phase } => {
            let what = if *phase == Phase::Undo { "undo " } else { "" };
            format!("{} {what}marked done by {by}", step_name(*step))
        }
        Event::ProbeChanged {
            probe,
            node,
            ok,
            detail,
        } => format!(
            "probe {probe}{}: {} {detail}",
            node.as_deref().map(|n| format!("@{n}")).unwrap_or_default(),
            if *ok { "ok" } else { "FAILING" }
        ),
        Event::NodeFacts { node, facts, .. } => format!(
            "node {node}: {}",
            facts
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Event::LbChanged { backends, error } => match error {
            Some(e) => format!("load balancer: {e}"),
            None => format!(
                "load balancer: {}",
                backends
                    .iter()
                    .map(|b| format!("{}={}/{}", b.server, b.membership, b.health))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        },
        Event::Traffic { counts, window_ms } => {
            if counts.reads_failed + counts.writes_failed == 0 {
                return;
            }
            format!(
                "traffic: {} failed reads, {} failed writes in {}",
                counts.reads_failed,
                counts.writes_failed,
                fmt_ms(*window_ms)
            )
        }
        Event::Note { by, text } => format!("note by {by}: {text}"),
        Event::AbortRequested {
            by,
            rollback,
            reason,
        } => {
            let why = reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            if *rollback {
                format!("abort with rollback requested by {by}{why}")
            } else {
                format!("abort requested by {by}{why}")
            }
        }
        Event::FaultStaged { fault, step, phase } => match (step, phase) {
            (Some(s), Phase::Undo) => {
                format!("lab fault {fault} staged for the undo of {}", step_name(*s))
            }
            (Some(s), Phase::Do) => format!("lab fault {fault} staged for {}", step_name(*s)),
            (None, _) => format!("lab fault {fault} in force from the start"),
        },
        Event::FaultFired {
            fault,
            step,
            phase,
            error,
        } => {
            let what = match phase {
                Phase::Undo => format!("the undo of {}", step_name(*step)),
                Phase::Do => step_name(*step),
            };
            match error {
                None => format!("lab fault {fault} fired as {what} started"),
                Some(e) => format!("lab fault {fault} NOT fired at {what}: {e}"),
            }
        }
        Event::RollbackStopped { reason } => format!("rollback stopped: {reason}"),
        Event::GuardRefused {
            step, by, reason, ..
        } => {
            format!("{} refused (asked by {by}): {reason}", step_name(*step))
        }
        Event::GuardOverridden {
            step,
            guard,
            node,
            by,
            reason,
            ..
        } => format!(
            "guard {guard} overridden by {by} for {} (takes {node} out): {reason}",
            step_name(*step)
        ),
        Event::RollbackOverridden {
            by, reason, lost, ..
        } => format!(
            "full rollback past the point of no return, by {by}: {reason} (refused because {lost})"
        ),
        Event::VerifyStarted { checks } => format!(
            "verifying the rollback: {checks} check{} on the nodes",
            if *checks == 1 { "" } else { "s" }
        ),
        Event::VerifyFinished {
            verified, nodes, ..
        } => {
            let each: Vec<String> = nodes
                .iter()
                .map(|n| {
                    format!(
                        "{} {}",
                        n.node.as_deref().unwrap_or("cluster"),
                        if n.ok { "ok" } else { "FAILED" }
                    )
                })
                .collect();
            format!(
                "rollback {}{}",
                if *verified {
                    "verified"
                } else {
                    "NOT verified"
                },
                if each.is_empty() {
                    String::new()
                } else {
                    format!(": {}", each.join(", "))
                }
            )
        }
        Event::Finished { outcome } => format!("finished: {outcome:?}"),
        Event::OperatorJoined { name, driver, .. } => {
            format!("{name} joined{}", if *driver { " (driving)" } else { "" })
        }
        Event::OperatorLeft { id } => format!("operator {id} left"),
        Event::DriverChanged { name, reason, .. } => match reason {
            Some(r) => format!("{name} drives now ({r})"),
            None => format!("{name} drives now"),
        },
        Event::OperatorRemoved { id, by, .. } => format!("operator {id} removed by {by}"),
        Event::ControlRequested { name, .. } => format!("{name} asks for control"),
        Event::ProbeSummary { .. }
        | Event::ProbeSample { .. }
        | Event::GateProgress { .. }
        | Event::LbSample { .. } => return,
    };
    // Details, titles, names and notes come from outside: no escape of theirs reaches the
    // operator's terminal (the cockpit cleans the same way).
    let _ = writeln!(out, "{} {}", clock(e.t_ms), one_line(&line));
}

fn clock(t_ms: u64) -> String {
    let s = t_ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        (s / 60) % 60,
        s % 60,
        t_ms % 1000
    )
}
