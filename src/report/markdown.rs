//! The report as Markdown that pastes cleanly into a ticket: GitHub-style tables, no ANSI,
//! every cell escaped so a `|` or a newline in a note or an error cannot break a table.

use std::fmt::Write;
use std::time::SystemTime;

use super::{LeftOut, Report, ReportOutcome, StepReport, WindowReport};
use crate::engine::event::{Phase, Verdict};

/// Render the report.
pub fn markdown(r: &Report) -> String {
    let clock = Clock::new(&r.started_at);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Upgrade report: {} on {}\n",
        inline(&r.procedure),
        inline(&r.target)
    );
    summary(&mut out, r, &clock);
    steps(&mut out, r, &clock);
    after_rollback(&mut out, r);
    decisions(&mut out, r, &clock);
    problems(&mut out, r, &clock);
    notes(&mut out, r, &clock);
    faults(&mut out, r, &clock);
    probes(&mut out, r);
    traffic(&mut out, r);
    out
}

fn summary(out: &mut String, r: &Report, clock: &Clock) {
    let mut rows: Vec<(&str, String)> = Vec::new();
    let product = if r.product.is_empty() {
        String::new()
    } else {
        format!(" ({})", r.product)
    };
    rows.push(("Procedure", format!("{}{product}", r.procedure)));
    rows.push(("Target", r.target.clone()));
    let from = r.from_version.as_deref().unwrap_or("?");
    let to = r.to_version.as_deref().unwrap_or("?");
    let mut versions = format!("{from} → {to}");
    if r.hops.len() > 1 {
        let _ = write!(versions, " (via {})", r.hops.join(" → "));
    }
    rows.push(("Versions", versions));
    rows.push(("Started", r.started_at.clone()));
    if let Some(end) = &r.finished_at {
        rows.push(("Ended", end.clone()));
    }
    rows.push(("Duration", duration(r.duration_ms)));
    let mut outcome = r.outcome_text.clone();
    // Said once: a stopped rollback's outcome already gives the reason.
    if let Some(why) = r
        .rollback_stopped
        .as_ref()
        .filter(|w| w.is_empty() || !outcome.contains(*w))
    {
        let _ = write!(outcome, "; rollback stopped: {why}");
    }
    rows.push(("Outcome", outcome));
    if let Some(o) = &r.rollback_override {
        rows.push((
            "Past the point of no return",
            format!(
                "full rollback by {}: {} (refused because {})",
                o.by, o.reason, o.lost
            ),
        ));
    }
    for o in &r.guard_overrides {
        rows.push((
            "Guard overridden",
            format!(
                "{} for step {} (took {} out) by {}: {} (refused because {})",
                o.guard,
                o.step + 1,
                o.node,
                o.by,
                o.reason,
                o.refusal
            ),
        ));
    }
    rows.push(("Operator", r.operator.clone()));
    if !r.joined.is_empty() {
        let joined: Vec<String> = r
            .joined
            .iter()
            .map(|j| {
                let role = if j.driver { "driver" } else { "observer" };
                let shown = j
                    .shown_as
                    .as_deref()
                    .map(|s| format!(", shown as \"{s}\""))
                    .unwrap_or_default();
                format!("{} ({role}{shown}) at {}", j.name, clock.at(j.t_ms))
            })
            .collect();
        let joined = with_left_out(joined, r.joined_left_out, "joins");
        rows.push(("Joined", joined.join(", ")));
    }
    if !r.driver_changes.is_empty() {
        let changes: Vec<String> = r
            .driver_changes
            .iter()
            .map(|d| match &d.reason {
                Some(r) => format!("{} from {} (taken over: {r})", d.name, clock.at(d.t_ms)),
                None => format!("{} from {}", d.name, clock.at(d.t_ms)),
            })
            .collect();
        let changes = with_left_out(changes, r.driver_changes_left_out, "handovers");
        rows.push(("Control handed to", changes.join(", ")));
    }
    if !r.resumes.is_empty() {
        let resumes: Vec<String> = r
            .resumes
            .iter()
            .map(|x| match x.down_ms.filter(|d| *d >= 1000) {
                Some(d) => format!(
                    "by {} at {} after {} down",
                    x.operator,
                    clock.at(x.t_ms),
                    crate::headless::fmt_ms(d)
                ),
                None => format!("by {} at {}", x.operator, clock.at(x.t_ms)),
            })
            .collect();
        let resumes = with_left_out(resumes, r.resumes_left_out, "resumes");
        rows.push(("Resumed", resumes.join(", ")));
    }
    let auto = match (r.auto.yes, r.auto.yes_phrases, r.auto.rollback_on_failure) {
        (false, _, false) => "no".to_string(),
        (yes, phrases, rollback) => {
            let mut parts = Vec::new();
            if yes {
                parts.push("--yes");
            }
            if phrases {
                parts.push("--yes-phrases");
            }
            if rollback {
                parts.push("--on-failure rollback");
            }
            parts.join(" ")
        }
    };
    rows.push(("Auto-confirm", auto));
    rows.push(("Read-only window", window(r.read_only)));
    rows.push(("No ready backend", window(r.no_ready_backend)));
    let failures: u64 = r.probes.iter().map(|p| p.failures).sum();
    let turned: u32 = r.probes.iter().map(|p| p.went_failing).sum();
    rows.push((
        "Probe failures",
        format!("{failures} failed samples; {turned} times a probe turned failing"),
    ));
    if r.torn_tail {
        rows.push((
            "Journal",
            "ends in a torn line (the session's process died mid-write)".to_string(),
        ));
    }

    out.push_str("| Item | Value |\n|---|---|\n");
    for (k, v) in rows {
        let _ = writeln!(out, "| {k} | {} |", cell(&v));
    }
    out.push('\n');
}

/// The rollback's verification: each node, each check, what was seen.
fn after_rollback(out: &mut String, r: &Report) {
    let Some(v) = &r.rollback_verification else {
        // A rollback that stopped, or a journal that ends, before its verification: each node
        // as last seen, and the one a failed undo was about, with why.
        if r.rollback_verified == Some(false) {
            unverified_rollback(out, r);
        }
        return;
    };
    let _ = writeln!(
        out,
        "## After the rollback: {}\n",
        if v.verified {
            "verified"
        } else {
            "NOT verified"
        }
    );
    if !v.nodes.is_empty() {
        out.push_str("| Node | Check | Held | Seen |\n|---|---|---|---|\n");
        for n in &v.nodes {
            for c in &n.checks {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    cell(n.node.as_deref().unwrap_or("cluster")),
                    cell(&c.what),
                    if c.ok { "yes" } else { "**no**" },
                    cell(&c.detail)
                );
            }
        }
        out.push('\n');
    }
    for why in &v.why_not {
        let _ = writeln!(out, "- {}", inline(why));
    }
    if !v.why_not.is_empty() {
        out.push('\n');
    }
}

/// What stands after a rollback that never reached its verification, said as it is: stopped
/// (at a failed undo, at an irreversible step, or aborted), finished without a verification
/// (a journal from before rollbacks were verified), or cut off by the journal's end while it
/// was still rolling back (the process was killed, the file was cut).
fn unverified_rollback(out: &mut String, r: &Report) {
    let heading = match r.outcome {
        ReportOutcome::RolledBack => "NOT verified (no verification was recorded)",
        // The journal ends at a failed or interrupted undo: that is where the rollback stopped
        // (the outcome says which undo).
        ReportOutcome::Unfinished
            if r.outcome_text
                .starts_with(crate::engine::outcome::ROLLBACK_STOPPED) =>
        {
            "stopped, NOT verified"
        }
        ReportOutcome::Unfinished => "the journal ends during the rollback: not verified",
        _ => "stopped, NOT verified",
    };
    let _ = writeln!(out, "## After the rollback: {heading}\n");
    out.push_str("| Node | Version | Healthy | Verified | Why not |\n|---|---|---|---|---|\n");
    let yes_no = |b: Option<bool>, no: &str| match b {
        Some(true) => "yes".to_string(),
        Some(false) => no.to_string(),
        None => "–".to_string(),
    };
    for n in &r.nodes_after {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            cell(&n.node),
            cell(n.version.as_deref().unwrap_or("–")),
            yes_no(n.healthy, "**no**"),
            // No node was verified: the rollback never got there. The one a failed undo was
            // about is marked.
            if n.verified == Some(false) {
                "**no**"
            } else {
                "no"
            },
            cell(n.reason.as_deref().unwrap_or(""))
        );
    }
    out.push('\n');
}

fn steps(out: &mut String, r: &Report, clock: &Clock) {
    out.push_str("## Steps\n\n");
    if r.steps.is_empty() {
        out.push_str("The journal holds no plan.\n\n");
        return;
    }
    out.push_str(
        "| # | Step | Title | Status | Started | Duration | Attempts | Confirmed by | Retries | Undos | Failures |\n\
         |---:|---|---|---|---|---:|---:|---|---:|---:|---:|\n",
    );
    for s in &r.steps {
        let title = if s.irreversible {
            format!("{} (irreversible)", s.title)
        } else {
            s.title.clone()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.number,
            cell(&format!("`{}`", inline(&s.key).replace('`', "'"))),
            cell(&title),
            cell(&status(s)),
            s.started_ms
                .map_or_else(|| "–".to_string(), |t| clock.at(t)),
            if s.attempts == 0 {
                "–".to_string()
            } else {
                duration(s.duration_ms)
            },
            s.attempts,
            cell(&who_confirmed(s)),
            s.retries,
            s.undos,
            s.failure_count(),
        );
    }
    out.push('\n');
}

/// A section of `(time, who, text)` rows in order (decisions, notes); nothing when empty. Rows
/// the report left out (`left_out`) are a row of their own where they were.
fn timed_table<'a>(
    out: &mut String,
    clock: &Clock,
    heading: &str,
    column: &str,
    rows: impl ExactSizeIterator<Item = (u64, &'a str, &'a str)>,
    left_out: Option<LeftOut>,
) {
    if rows.len() == 0 {
        return;
    }
    let _ = write!(
        out,
        "## {heading}\n\n| Time | By | {column} |\n|---|---|---|\n"
    );
    for (i, (t_ms, by, text)) in rows.enumerate() {
        if let Some(l) = left_out.filter(|l| l.after == i) {
            let _ = writeln!(out, "| … | … | {} |", not_shown(l, &heading.to_lowercase()));
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            clock.at(t_ms),
            cell(by),
            cell(text)
        );
    }
    out.push('\n');
}

/// Who decided what, in order.
fn decisions(out: &mut String, r: &Report, clock: &Clock) {
    let rows = r.decisions.iter().map(|d| (d.t_ms, &*d.by, &*d.what));
    timed_table(
        out,
        clock,
        "Decisions",
        "Decision",
        rows,
        r.decisions_left_out,
    );
}

fn status(s: &StepReport) -> String {
    let mut st = s.status.clone();
    if let Some(by) = &s.skipped_by {
        let _ = write!(st, " (skipped by {by})");
    }
    if let Some(by) = &s.marked_done_by {
        let _ = write!(st, " (marked done by {by})");
    }
    if let Some(c) = &s.optional_choice {
        let _ = write!(st, " (optional: {c})");
    }
    st
}

fn who_confirmed(s: &StepReport) -> String {
    let mut names: Vec<String> = Vec::new();
    for n in s.approved_by.iter().chain(&s.confirmed_by) {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    // Runs left out may have had other confirmers: say that the list is not whole.
    let left: u64 = [s.approved_by_left_out, s.confirmed_by_left_out]
        .iter()
        .flatten()
        .map(|l| l.count)
        .sum();
    if left > 0 {
        names.push(format!("… ({left} more runs not shown)"));
    }
    names.join(", ")
}

/// `items` with a mark where the report left some out.
fn with_left_out(mut items: Vec<String>, left_out: Option<LeftOut>, what: &str) -> Vec<String> {
    if let Some(l) = left_out {
        let at = l.after.min(items.len());
        items.insert(at, not_shown(l, what));
    }
    items
}

/// `… 12345 more decisions not shown (the journal has them all)`.
fn not_shown(l: LeftOut, what: &str) -> String {
    format!(
        "… {} more {what} not shown (the journal has them all)",
        l.count
    )
}

/// Failures, retries and undos with their details, one line each.
fn problems(out: &mut String, r: &Report, clock: &Clock) {
    let eventful: Vec<&StepReport> = r
        .steps
        .iter()
        .filter(|s| !s.failures.is_empty() || s.retries > 0 || s.undos > 0 || s.interrupted > 0)
        .collect();
    if eventful.is_empty() {
        return;
    }
    out.push_str("## Failures, retries and undos\n\n");
    for s in eventful {
        let _ = writeln!(
            out,
            "- Step {} `{}`: {} attempt(s), {} retry(ies), {} undo(s){}{}",
            s.number,
            inline(&s.key).replace('`', "'"),
            s.attempts,
            s.retries,
            s.undos,
            if s.undos > 0 {
                format!(" (undo ran {})", duration(s.undo_ms))
            } else {
                String::new()
            },
            if s.interrupted > 0 {
                format!(", interrupted {} time(s)", s.interrupted)
            } else {
                String::new()
            },
        );
        for (i, f) in s.failures.iter().enumerate() {
            if let Some(l) = s.failures_left_out.filter(|l| l.after == i) {
                let _ = writeln!(out, "  - {}", not_shown(l, "failures"));
            }
            let phase = match f.phase {
                Phase::Do => "action",
                Phase::Undo => "undo",
            };
            let verdict = match f.verdict {
                Verdict::Passed => "passed",
                Verdict::Failed => "failed",
                Verdict::Inconclusive => "inconclusive",
            };
            let _ = writeln!(
                out,
                "  - {}: {phase} attempt {} {verdict}: {}",
                clock.at(f.t_ms),
                f.attempt,
                inline(&f.detail)
            );
        }
    }
    out.push('\n');
}

fn notes(out: &mut String, r: &Report, clock: &Clock) {
    let rows = r.notes.iter().map(|n| (n.t_ms, &*n.by, &*n.text));
    timed_table(out, clock, "Notes", "Note", rows, None);
}

fn faults(out: &mut String, r: &Report, clock: &Clock) {
    if r.faults.is_empty() {
        return;
    }
    out.push_str("## Lab faults\n\n| Fault | Staged for | Took effect |\n|---|---|---|\n");
    for f in &r.faults {
        let undo = if f.undo { "the undo of " } else { "" };
        let staged = match (f.step, &f.step_key) {
            (Some(n), Some(k)) => format!("{undo}step {n} ({k})"),
            (Some(n), None) => format!("{undo}step {n}"),
            _ => "the lab's start".into(),
        };
        let fired = match (f.fired_ms, &f.error) {
            (Some(t), None) => clock.at(t),
            (Some(t), Some(e)) => format!("{}: refused: {e}", clock.at(t)),
            (None, _) if f.step.is_none() => "from the start".into(),
            (None, _) if f.undo => "never (its step was not undone)".into(),
            (None, _) => "never (its step did not start)".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            cell(&f.fault),
            cell(&staged),
            cell(&fired)
        );
    }
    out.push('\n');
}

fn probes(out: &mut String, r: &Report) {
    if r.probes.is_empty() {
        return;
    }
    out.push_str(
        "## Probes\n\nUntil the session ended. Recovered: passing again, and still after \
         30 s or at the end; flapped: passing again, failing within 30 s.\n\n\
         | Probe | Node | Samples | Failed samples | Turned failing | Recovered | Flapped |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    for p in &r.probes {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(&p.probe),
            cell(p.node.as_deref().unwrap_or("–")),
            p.samples,
            p.failures,
            p.went_failing,
            p.recovered,
            p.relapsed
        );
    }
    out.push('\n');
}

fn traffic(out: &mut String, r: &Report) {
    let Some(t) = r.traffic else {
        return;
    };
    out.push_str(
        "## Traffic\n\n| Reads ok | Reads failed | Writes ok | Writes rejected | Writes failed |\n\
         |---:|---:|---:|---:|---:|\n",
    );
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} |\n",
        t.reads_ok, t.reads_failed, t.writes_ok, t.writes_rejected, t.writes_failed
    );
}

fn window(w: WindowReport) -> String {
    if w.count == 0 {
        return "none".to_string();
    }
    let times = if w.count == 1 { "time" } else { "times" };
    format!("{} ({} {times})", duration(w.total_ms), w.count)
}

/// A duration as people read it: `850 ms`, `1.2 s`, `13 s`, `15m 54s`, `2h 03m 10s`.
pub fn duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms} ms");
    }
    if ms < 60_000 {
        return if ms.is_multiple_of(1000) {
            format!("{} s", ms / 1000)
        } else {
            format!("{:.1} s", ms as f64 / 1000.0)
        };
    }
    let secs = ms / 1000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h == 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{h}h {m:02}m {s:02}s")
    }
}

/// Session offsets shown as wall-clock times (UTC) when the header's start time parses, and
/// always with the offset from the start.
struct Clock {
    start: Option<SystemTime>,
}

impl Clock {
    fn new(started_at: &str) -> Self {
        Clock {
            start: humantime::parse_rfc3339_weak(started_at.trim()).ok(),
        }
    }

    fn at(&self, t_ms: u64) -> String {
        let offset = offset(t_ms);
        match self.start.and_then(|start| super::wall_clock(start, t_ms)) {
            Some(stamp) => {
                // `2026-11-20T14:15:33Z` -> `14:15:33`
                let time = stamp
                    .get(11..19)
                    .map(str::to_string)
                    .unwrap_or_else(|| stamp.clone());
                format!("{time} ({offset})")
            }
            None => offset,
        }
    }
}

/// `+M:SS` or `+H:MM:SS` since the session started.
fn offset(t_ms: u64) -> String {
    let secs = t_ms / 1000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h == 0 {
        format!("+{m}:{s:02}")
    } else {
        format!("+{h}:{m:02}:{s:02}")
    }
}

/// Text for a table cell: no escape sequences or control characters, no line breaks, and
/// pipes escaped.
fn cell(text: &str) -> String {
    inline(text).replace('|', "\\|")
}

/// Text on one line: escape sequences dropped whole, payload included (`terminal_text::strip`:
/// an OSC title or hyperlink URL is not text of the report), line breaks and tabs as spaces.
fn inline(text: &str) -> String {
    crate::terminal_text::strip(text)
        .replace(['\n', '\r', '\t'], " ")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(1200), "1.2 s");
        assert_eq!(duration(13_000), "13 s");
        assert_eq!(duration(954_000), "15m 54s");
        assert_eq!(duration(7_390_000), "2h 03m 10s");
    }

    #[test]
    fn cells_cannot_break_a_table_or_carry_ansi() {
        assert_eq!(cell("a | b\nc"), "a \\| b c");
        assert_eq!(cell("\u{1b}[31mred\u{1b}[0m done"), "red done");
        assert_eq!(cell("\u{1b}]0;title\u{7}a\tb | c\u{9b}1m"), "a b \\| c");
    }

    #[test]
    fn times_are_wall_clock_with_offset() {
        let c = Clock::new("2026-11-20T14:00:00Z");
        assert_eq!(c.at(933_000), "14:15:33 (+15:33)");
        assert_eq!(Clock::new("garbage").at(3_723_000), "+1:02:03");
    }
}
