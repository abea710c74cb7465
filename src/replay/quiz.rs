//! Training on a recorded session (`flightdeck replay JOURNAL --quiz`): before each decision
//! the recorded operator made, stop and ask the trainee what they would do; then reveal what
//! the operator did and what happened next. The result (answers and score) is written as JSON.
//!
//! [`Quiz`] is the walk itself, usable by any front end: the cockpit can hand
//! [`Quiz::decision_indices`] to `ReplayControl::set_stops` and ask [`Quiz::question_at`] when
//! the player stops. [`run_stdio`] is a line-based front end that needs no terminal UI.

use std::borrow::Cow;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::timeline::{step_of, Timeline};
use crate::engine::event::{Event, Phase, PromptKind, Stream, Verdict};
use crate::engine::state::{Mode, PromptKindTag, SessionState, StepStatus};
use crate::journal::Journal;
use crate::terminal_text::{clean, one_line};

/// Output lines of the step shown with a question.
pub const OUTPUT_SHOWN: usize = 5;

/// What an operator can do at a decision point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    /// Confirm the open prompt (run the step, or the undo being asked for).
    Confirm,
    /// Decline for now: nothing happens until the driver acts again.
    Wait,
    /// Ask to undo the latest completed step.
    Undo,
    /// Run a failed or interrupted step again.
    Retry,
    Skip,
    Abort,
    /// Record a failed or interrupted step as done by hand.
    MarkDone,
}

impl Choice {
    pub const ALL: [Choice; 7] = [
        Choice::Confirm,
        Choice::Wait,
        Choice::Undo,
        Choice::Retry,
        Choice::Skip,
        Choice::Abort,
        Choice::MarkDone,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Choice::Confirm => "confirm",
            Choice::Wait => "wait",
            Choice::Undo => "undo",
            Choice::Retry => "retry",
            Choice::Skip => "skip",
            Choice::Abort => "abort",
            Choice::MarkDone => "mark done",
        }
    }

    /// The one-letter answer the line runner accepts.
    pub fn key(self) -> char {
        match self {
            Choice::Confirm => 'c',
            Choice::Wait => 'w',
            Choice::Undo => 'u',
            Choice::Retry => 'r',
            Choice::Skip => 's',
            Choice::Abort => 'a',
            Choice::MarkDone => 'm',
        }
    }

    /// A letter or a label (`c`, `confirm`, `mark-done`, ...).
    pub fn parse(word: &str) -> Option<Choice> {
        let w = word.trim().to_ascii_lowercase().replace(['-', '_'], " ");
        Choice::ALL
            .into_iter()
            .find(|c| w == c.label() || (w.chars().count() == 1 && w.starts_with(c.key())))
    }
}

/// What the trainee sees before a decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuizQuestion {
    /// 1-based, of `total`.
    pub number: usize,
    pub total: usize,
    /// The decision's event in the journal (0-based); the context is the state just before.
    pub index: usize,
    pub t_ms: u64,
    /// The step concerned (0-based), its key and title.
    pub step: Option<usize>,
    pub step_key: Option<String>,
    pub step_title: Option<String>,
    pub step_status: Option<String>,
    /// The open prompt: `run`, `undo`, `failed`, `interrupted`, or none.
    pub prompt: Option<String>,
    pub rolling_back: bool,
    /// The step's last verdict explanation, if any.
    pub detail: Option<String>,
    /// The step's last output lines.
    pub last_output: Vec<String>,
    /// Probes failing at that moment, e.g. `health on node2: connection refused`.
    pub failing_probes: Vec<String>,
    pub choices: Vec<Choice>,
}

/// The trainee's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub choice: Choice,
    #[serde(default)]
    pub note: Option<String>,
}

/// What the recorded operator did, and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reveal {
    pub recorded: Choice,
    pub by: String,
    pub matched: bool,
    /// The next action verdict after the decision (or how the session ended), in words.
    pub what_happened: Option<String>,
    pub next_verdict: Option<Verdict>,
    /// Why the decision mattered and what the runbook says about the step: the point of no
    /// return and its reason, then the step's runbook text.
    pub explanation: Vec<String>,
}

/// One answered question, as the result file keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnswerRecord {
    pub number: usize,
    pub index: usize,
    pub t_ms: u64,
    pub step_key: Option<String>,
    pub prompt: Option<String>,
    pub answer: Choice,
    pub note: Option<String>,
    pub recorded: Choice,
    pub recorded_by: String,
    pub matched: bool,
    pub what_happened: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuizResult {
    pub procedure: String,
    pub target: String,
    pub started_at: String,
    /// Decisions in the journal (answered or not).
    pub decisions: usize,
    pub answers: Vec<AnswerRecord>,
    pub matches: usize,
    /// `matches / answers` (0 when nothing was answered).
    pub score: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum QuizError {
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading answers: {0}")]
    Input(std::io::Error),
}

impl QuizResult {
    /// Write the result as pretty JSON, owner-only (0600) like the journal it is about: the
    /// answers and notes are the operator's, and the journal's decisions are quoted in it.
    pub fn write_result(&self, path: &Path) -> Result<(), QuizError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let err = |source| QuizError::Write {
            path: path.to_path_buf(),
            source,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| err(e.into()))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        // A file that was there keeps its mode on open: made owner-only as a new one is. Only
        // a plain file: `--quiz-out /dev/stdout` is the terminal's, not ours to change.
        if file.metadata().map_err(err)?.is_file() {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(err)?;
        }
        file.write_all(format!("{text}\n").as_bytes()).map_err(err)
    }
}

/// A recorded operator decision.
#[derive(Debug, Clone, PartialEq)]
struct Decision {
    index: usize,
    recorded: Choice,
    by: String,
}

/// The quiz over one journal: questions in order, answers as they come.
#[derive(Debug, Clone)]
pub struct Quiz {
    timeline: Arc<Timeline>,
    decisions: Vec<Decision>,
    answers: Vec<AnswerRecord>,
    procedure: String,
    target: String,
    started_at: String,
}

impl Quiz {
    pub fn new(journal: &Journal) -> Self {
        let mut q = Self::from_timeline(Arc::new(Timeline::new(journal.events.clone(), 0)));
        q.procedure = journal.header.procedure.clone();
        q.target = journal.header.target.clone();
        q.started_at = journal.header.started_at.clone();
        q
    }

    /// A quiz over a timeline shared with a player; it must hold its events in memory
    /// ([`Timeline::new`]): a quiz reads every decision up front.
    pub fn from_timeline(timeline: Arc<Timeline>) -> Self {
        let decisions = operator_decisions(timeline.events());
        let end = timeline.final_state();
        Quiz {
            decisions,
            answers: Vec::new(),
            procedure: end.plan.procedure.clone(),
            target: end.plan.target.clone(),
            started_at: String::new(),
            timeline,
        }
    }

    /// How many decisions the recorded operator made.
    pub fn len(&self) -> usize {
        self.decisions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.decisions.is_empty()
    }

    /// The events the quiz stops before, in order.
    pub fn decision_indices(&self) -> Vec<usize> {
        self.decisions.iter().map(|d| d.index).collect()
    }

    /// The question now due, or None when every decision was answered.
    pub fn current(&self) -> Option<QuizQuestion> {
        self.question(self.answers.len())
    }

    /// The question about the decision at event `index`, if one is there.
    pub fn question_at(&self, index: usize) -> Option<QuizQuestion> {
        let n = self.decisions.iter().position(|d| d.index == index)?;
        self.question(n)
    }

    fn question(&self, n: usize) -> Option<QuizQuestion> {
        let d = self.decisions.get(n)?;
        let state = self.timeline.state_at(d.index.saturating_sub(1));
        let event = &self.timeline.events()[d.index];
        // The open prompt is what the operator was looking at (an undo request names the step
        // to undo, but was made facing, say, a failed step).
        let step = state
            .prompt
            .map(|p| p.step)
            .or(step_of(&event.event))
            .or_else(|| state.cursor());
        let planned = step.and_then(|s| state.plan.steps.get(s));
        let run = step.and_then(|s| state.steps.get(s));
        let last_output = run
            .map(|r| {
                let skip = r.output.len().saturating_sub(OUTPUT_SHOWN);
                r.output
                    .iter()
                    .skip(skip)
                    .map(|l| match l.stream {
                        Stream::Stderr => format!("stderr: {}", l.line),
                        Stream::Info => format!("info: {}", l.line),
                        Stream::Stdout => l.line.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(QuizQuestion {
            number: n + 1,
            total: self.decisions.len(),
            index: d.index,
            t_ms: event.t_ms,
            step,
            step_key: planned.map(|p| p.key.clone()),
            step_title: planned.map(|p| p.title.clone()),
            step_status: run.map(|r| r.status.label().to_string()),
            prompt: state.prompt.map(|p| prompt_label(p.kind).to_string()),
            rolling_back: state.mode == Mode::RollingBack,
            detail: run.and_then(|r| r.detail.clone()),
            last_output,
            failing_probes: failing_probes(&state),
            choices: Choice::ALL.to_vec(),
        })
    }

    /// Answer the current question; None when there is none left.
    pub fn answer(&mut self, answer: Answer) -> Option<Reveal> {
        let q = self.current()?;
        let d = self.decisions.get(self.answers.len())?.clone();
        let (what_happened, next_verdict) = what_happened_after(&self.timeline, d.index);
        let matched = answer.choice == d.recorded;
        self.answers.push(AnswerRecord {
            number: q.number,
            index: d.index,
            t_ms: q.t_ms,
            step_key: q.step_key,
            prompt: q.prompt,
            answer: answer.choice,
            note: answer.note.filter(|n| !n.trim().is_empty()),
            recorded: d.recorded,
            recorded_by: d.by.clone(),
            matched,
            what_happened: what_happened.clone(),
        });
        let state = self.timeline.state_at(d.index.saturating_sub(1));
        let explanation = q
            .step
            .and_then(|s| state.plan.steps.get(s))
            .map(|p| {
                let mut why = Vec::new();
                if let Some(irreversible) = &p.irreversible {
                    why.push(format!("point of no return: {irreversible}"));
                }
                if !p.runbook.trim().is_empty() {
                    why.push(format!("runbook: {}", p.runbook.trim()));
                }
                why
            })
            .unwrap_or_default();
        Some(Reveal {
            recorded: d.recorded,
            by: d.by,
            matched,
            what_happened,
            next_verdict,
            explanation,
        })
    }

    pub fn result(&self) -> QuizResult {
        let matches = self.answers.iter().filter(|a| a.matched).count();
        let score = if self.answers.is_empty() {
            0.0
        } else {
            matches as f64 / self.answers.len() as f64
        };
        QuizResult {
            procedure: self.procedure.clone(),
            target: self.target.clone(),
            started_at: self.started_at.clone(),
            decisions: self.decisions.len(),
            answers: self.answers.clone(),
            matches,
            score,
        }
    }
}

fn prompt_label(kind: PromptKindTag) -> &'static str {
    match kind {
        PromptKindTag::Run => "run",
        PromptKindTag::Undo => "undo",
        PromptKindTag::Failed => "failed",
        PromptKindTag::Interrupted => "interrupted",
    }
}

fn failing_probes(state: &SessionState) -> Vec<String> {
    let mut out = Vec::new();
    for n in &state.nodes {
        for (probe, ok) in &n.probes {
            if !ok {
                let detail = if state.health_probes.contains(probe) && !n.health_detail.is_empty() {
                    format!(": {}", n.health_detail)
                } else {
                    String::new()
                };
                out.push(format!("{probe} on {}{detail}", n.node.name));
            }
        }
    }
    if let Some(e) = &state.lb_error {
        out.push(format!("load balancer: {e}"));
    }
    out
}

/// The operator's decisions in a journal: each time a person chose what happens next.
/// Automatic answers (`--yes`, `confirm = none`, `--on-failure rollback`) are not decisions;
/// a two-person confirm counts once (the driver's), and confirming an undo the operator just
/// asked for is part of that undo decision.
fn operator_decisions(events: &[crate::engine::Stamped]) -> Vec<Decision> {
    let mut out = Vec::new();
    let mut state = SessionState::empty();
    // The prompt whose answer was already counted (by an approval or an undo request).
    let mut counted_prompt: Option<u64> = None;
    for (i, e) in events.iter().enumerate() {
        let open = state.prompt;
        let found = match &e.event {
            Event::Confirmed { by, auto, step } => {
                let already = open.is_some_and(|p| Some(p.id) == counted_prompt);
                if *auto || already {
                    None
                } else {
                    let status = state.steps.get(*step).map(|s| s.status);
                    let retry = matches!(
                        open.map(|p| p.kind),
                        Some(PromptKindTag::Failed | PromptKindTag::Interrupted)
                    ) || (open.is_none()
                        && matches!(
                            status,
                            Some(
                                StepStatus::Failed
                                    | StepStatus::Interrupted
                                    | StepStatus::UndoFailed
                            )
                        ));
                    let choice = if retry {
                        Choice::Retry
                    } else {
                        Choice::Confirm
                    };
                    Some((choice, by.clone()))
                }
            }
            Event::Approved { by, .. } => match open {
                Some(p) if Some(p.id) != counted_prompt => {
                    counted_prompt = Some(p.id);
                    Some((Choice::Confirm, by.clone()))
                }
                _ => None,
            },
            Event::Declined { by, .. } => Some((Choice::Wait, by.clone())),
            Event::Skipped { by, .. } => Some((Choice::Skip, by.clone())),
            Event::MarkedDone { by, .. } => Some((Choice::MarkDone, by.clone())),
            Event::AbortRequested { by, .. } => {
                // The headless `--on-failure rollback` policy, not a person.
                (!by.starts_with("--")).then(|| (Choice::Abort, by.clone()))
            }
            Event::PromptOpened {
                id,
                prompt: PromptKind::Undo,
                ..
            } if state.mode == Mode::Forward => {
                // Outside a rollback only an operator's undo request opens an undo prompt.
                counted_prompt = Some(*id);
                let by = state
                    .driver()
                    .map(|d| d.name.clone())
                    .unwrap_or_else(|| state.operator.clone());
                Some((Choice::Undo, by))
            }
            _ => None,
        };
        let found = found.filter(|(choice, _)| matters(&state, &e.event, *choice));
        if let Some((recorded, by)) = found {
            out.push(Decision {
                index: i,
                recorded,
                by,
            });
        }
        state.apply(e);
    }
    out
}

/// Whether a decision is worth a question: anything decided facing a failure or an
/// interruption, every abort, skip, undo and mark-done, and a confirmation only where the
/// runbook draws a line — the point of no return, a phrase step, a two-person step, the step
/// where downtime starts. Confirming one more routine step teaches nothing.
fn matters(before: &SessionState, event: &Event, choice: Choice) -> bool {
    let open = before.prompt;
    let at_failure =
        open.is_some_and(|p| matches!(p.kind, PromptKindTag::Failed | PromptKindTag::Interrupted));
    match choice {
        Choice::Retry | Choice::Undo | Choice::Skip | Choice::Abort | Choice::MarkDone => true,
        Choice::Wait => at_failure,
        Choice::Confirm => {
            if at_failure || open.is_some_and(|p| p.kind == PromptKindTag::Undo) {
                return at_failure;
            }
            let step = match event {
                Event::Confirmed { step, .. } | Event::Approved { step, .. } => *step,
                _ => return false,
            };
            let Some(planned) = before.plan.steps.get(step) else {
                return false;
            };
            let downtime_starts = planned.downtime != crate::procedure::model::Downtime::None
                && step
                    .checked_sub(1)
                    .and_then(|prev| before.plan.steps.get(prev))
                    .is_none_or(|p| p.downtime != planned.downtime);
            planned.irreversible.is_some()
                || matches!(planned.confirm, crate::plan::Confirm::Phrase { .. })
                || planned.approvals > 1
                || downtime_starts
        }
    }
}

/// The first action verdict after event `index`, or how the session ended, in words.
fn what_happened_after(timeline: &Timeline, index: usize) -> (Option<String>, Option<Verdict>) {
    let events = timeline.events();
    let Some(at) = events.get(index) else {
        return (None, None);
    };
    let plan_key = |step: usize| -> String {
        match events.first().map(|e| &e.event) {
            Some(Event::SessionStarted { plan, .. }) => plan
                .steps
                .get(step)
                .map(|s| format!("step {} `{}`", step + 1, s.key))
                .unwrap_or_else(|| format!("step {}", step + 1)),
            _ => format!("step {}", step + 1),
        }
    };
    for e in &events[index + 1..] {
        let later = crate::report::human_duration(e.t_ms.saturating_sub(at.t_ms));
        match &e.event {
            Event::ActionFinished {
                step,
                phase,
                attempt,
                verdict,
                detail,
            } => {
                let what = match phase {
                    Phase::Do => "action",
                    Phase::Undo => "undo",
                };
                let v = match verdict {
                    Verdict::Passed => "passed",
                    Verdict::Failed => "failed",
                    Verdict::Inconclusive => "was inconclusive",
                };
                return (
                    Some(format!(
                        "{}: {what} attempt {attempt} {v} {later} later ({detail})",
                        plan_key(*step)
                    )),
                    Some(*verdict),
                );
            }
            Event::Finished { outcome } => {
                let o = serde_json::to_value(outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
                    .unwrap_or_default();
                return (Some(format!("the session ended {later} later: {o}")), None);
            }
            _ => {}
        }
    }
    (Some("the journal ends here".into()), None)
}

/// Render a question for the line runner.
fn print_question(out: &mut impl Write, q: &QuizQuestion) -> std::io::Result<()> {
    let secs = q.t_ms / 1000;
    writeln!(
        out,
        "\nQuestion {}/{} at +{}:{:02}:{:02}",
        q.number,
        q.total,
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )?;
    if let (Some(s), Some(key), Some(title)) = (q.step, &q.step_key, &q.step_title) {
        writeln!(
            out,
            "  step {} `{}`: {}",
            s + 1,
            one_line(key),
            one_line(title)
        )?;
    }
    if let Some(st) = &q.step_status {
        writeln!(out, "  status: {}", one_line(st))?;
    }
    let prompt = match q.prompt.as_deref() {
        Some("run") => "run this step?",
        Some("undo") => "undo this step?",
        Some("failed") => "the step failed: retry, undo, skip or abort?",
        Some("interrupted") => "the step was interrupted: retry, mark done, undo or abort?",
        _ => "no prompt open",
    };
    writeln!(out, "  prompt: {prompt}")?;
    if q.rolling_back {
        writeln!(out, "  the session is rolling back")?;
    }
    if let Some(d) = &q.detail {
        writeln!(out, "  last result: {}", one_line(d))?;
    }
    if !q.last_output.is_empty() {
        writeln!(out, "  last output:")?;
        for l in &q.last_output {
            writeln!(out, "    | {}", clean(Cow::Borrowed(l)))?;
        }
    }
    if q.failing_probes.is_empty() {
        writeln!(out, "  failing probes: none")?;
    } else {
        writeln!(
            out,
            "  failing probes: {}",
            one_line(&q.failing_probes.join("; "))
        )?;
    }
    let choices: Vec<String> = q
        .choices
        .iter()
        .map(|c| format!("[{}] {}", c.key(), c.label()))
        .collect();
    writeln!(out, "  {}", choices.join("  "))?;
    write!(out, "> ")?;
    out.flush()
}

/// The line-based quiz over any input and output: one answer per line, a choice (letter or
/// word) optionally followed by a note; `q` or end of input stops early. The result is written
/// to `out_path` either way.
pub fn run_with(
    journal: &Journal,
    mut input: impl BufRead,
    mut out: impl Write,
    out_path: &Path,
) -> Result<QuizResult, QuizError> {
    let mut quiz = Quiz::new(journal);
    let io = QuizError::Input;
    writeln!(
        out,
        "Quiz: {} on {} — {} decision(s) by the recorded operator.\n\
         For each, answer with a letter and, if you like, a note: `r lock is held, retry later`.\n\
         `q` stops (your answers so far are kept).",
        one_line(&quiz.procedure),
        one_line(&quiz.target),
        quiz.len()
    )
    .map_err(io)?;
    'questions: while let Some(q) = quiz.current() {
        print_question(&mut out, &q).map_err(io)?;
        let answer = loop {
            let mut line = String::new();
            if input.read_line(&mut line).map_err(io)? == 0 {
                writeln!(out).map_err(io)?;
                break 'questions;
            }
            let line = line.trim();
            let (word, note) = match line.split_once(char::is_whitespace) {
                Some((w, n)) => (w, Some(n.trim().to_string())),
                None => (line, None),
            };
            if word.eq_ignore_ascii_case("q") || word.eq_ignore_ascii_case("quit") {
                break 'questions;
            }
            match Choice::parse(word) {
                Some(choice) => break Answer { choice, note },
                None => {
                    write!(out, "  answer with one of c w u r s a m (or q to stop)\n> ")
                        .map_err(io)?;
                    out.flush().map_err(io)?;
                }
            }
        };
        let mine = answer.choice;
        if let Some(r) = quiz.answer(answer) {
            let mark = if r.matched { "same" } else { "different" };
            writeln!(
                out,
                "  you: {}; {} did: {} ({mark})",
                mine.label(),
                one_line(&r.by),
                r.recorded.label()
            )
            .map_err(io)?;
            if let Some(w) = &r.what_happened {
                writeln!(out, "  then: {}", one_line(w)).map_err(io)?;
            }
            for why in &r.explanation {
                writeln!(out, "  {}", one_line(why)).map_err(io)?;
            }
        }
    }
    let result = quiz.result();
    result.write_result(out_path)?;
    writeln!(
        out,
        "\nScore: {}/{} matched the recorded operator. Result written to {}",
        result.matches,
        result.answers.len(),
        out_path.display()
    )
    .map_err(io)?;
    Ok(result)
}

/// The line-based quiz on stdin/stdout.
pub fn run_stdio(journal: &Journal, out_path: &Path) -> Result<QuizResult, QuizError> {
    let stdin = std::io::stdin();
    run_with(journal, stdin.lock(), std::io::stdout().lock(), out_path)
}

/// Where the result goes by default: next to the journal, `<journal>.quiz.json`.
pub fn default_result_path(journal_path: &Path) -> PathBuf {
    let mut p = journal_path.as_os_str().to_owned();
    p.push(".quiz.json");
    PathBuf::from(p)
}

/// `flightdeck replay JOURNAL --quiz [--out FILE]`: the line quiz on stdin/stdout; the result
/// goes to `out_path` (default [`default_result_path`]). A file that is not a journal, or a
/// result that cannot be written, is an error on stderr and exit code 2.
pub fn run(
    journal_path: &Path,
    out_path: Option<&Path>,
    opts: crate::journal::ReadOptions,
) -> std::process::ExitCode {
    let journal = match crate::journal::read_with(journal_path, opts) {
        Ok(j) => j,
        Err(e) => {
            crate::eprintln_clean!("flightdeck replay: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let out = out_path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_result_path(journal_path));
    match run_stdio(&journal, &out) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            crate::eprintln_clean!("flightdeck replay: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
