//! The step's output, live and scrollable, and the probe stream with failures standing out.

use std::borrow::Cow;

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use unicode_width::UnicodeWidthChar;

use super::{clean, fit, fmt_dur, panel, text, truncate};
use crate::engine::event::{Phase, Stream};
use crate::engine::state::{NoteEntry, ProbeLogEntry};
use crate::tui::filter::Filter;
use crate::tui::theme::Theme;
use crate::tui::view::{Panel, Scroll, View};

/// The window of `len` lines shown in `height` rows, `from_bottom` lines above the newest.
fn window(len: usize, height: usize, scroll: Scroll) -> (usize, usize) {
    let from_bottom = match scroll {
        Scroll::Follow => 0,
        Scroll::At(n) => n.min(len.saturating_sub(height)),
    };
    let end = len - from_bottom.min(len);
    (end.saturating_sub(height), end)
}

pub fn render_output(frame: &mut Frame, area: Rect, view: &View, theme: &Theme) {
    let s = &theme.styles;
    let step = view.detail_step();
    let run = step.and_then(|i| view.state.steps.get(i));
    let title = match step {
        Some(i) => format!(" Output · step {} ", i + 1),
        None => " Output ".into(),
    };
    let filter = view.filter();
    let matching = |line: &str| filter.as_ref().is_none_or(|f| f.matches(line));
    let title = match (&filter, run) {
        (Some(f), Some(run)) if !run.output.is_empty() => {
            let n = run.output.iter().filter(|o| matching(&o.line)).count();
            format!("{title}/{} {n} of {} ", f.text(), run.output.len())
        }
        _ => title,
    };
    let title = if matches!(view.output_scroll, Scroll::At(_)) {
        format!("{title}(scrolled — End follows) ")
    } else {
        title
    };
    let block = panel(title, view.focus == Panel::Output, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let Some(run) = run else {
        return;
    };
    if run.output.is_empty() {
        frame.render_widget(Paragraph::new(text(" no output yet", s.muted)), inner);
        return;
    }
    if let Some(f) = filter
        .as_ref()
        .filter(|_| !run.output.iter().any(|o| matching(&o.line)))
    {
        let none = format!(" no line matches /{} (Esc clears)", f.text());
        frame.render_widget(Paragraph::new(text(none, s.muted)), inner);
        return;
    }
    // Long lines wrap (an operator needs the end of an error message too); rows are built
    // from the newest line back, only as many as the window needs.
    let height = inner.height as usize;
    let from_bottom = match view.output_scroll {
        Scroll::Follow => 0,
        Scroll::At(n) => n,
    };
    let need = height.saturating_add(from_bottom);
    let body_w = width.saturating_sub(6).max(1);
    let mut rows: Vec<Line> = Vec::new();
    for o in run.output.iter().rev().filter(|o| matching(&o.line)) {
        let style = match o.stream {
            Stream::Stdout => s.base,
            Stream::Stderr => s.warn,
            Stream::Info => s.info,
        };
        let prefix = match o.phase {
            Phase::Do => "",
            Phase::Undo => "undo│ ",
        };
        let line = clean(Cow::Owned(format!("{prefix}{}", o.line)));
        let chunks = wrap(&line, body_w);
        for (k, chunk) in chunks.into_iter().enumerate().rev() {
            let stamp = if k == 0 {
                text(format!("{} ", fmt_dur(o.t_ms)), s.muted)
            } else {
                Span::raw("      ")
            };
            rows.push(Line::from(vec![stamp, Span::styled(chunk, style)]));
        }
        if rows.len() >= need {
            break;
        }
    }
    rows.reverse();
    let from_bottom = from_bottom.min(rows.len().saturating_sub(height));
    let end = rows.len() - from_bottom;
    let start = end.saturating_sub(height);
    let shown: Vec<Line> = rows.drain(start..end).collect();
    frame.render_widget(Paragraph::new(shown), inner);
}

/// Split `s` into pieces of at most `width` terminal columns (at least one piece).
pub fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
            used = 0;
        }
        cur.push(c);
        used += w;
    }
    if !cur.is_empty() || out.is_empty() {
        out.push(cur);
    }
    out
}

/// One row of the probe pane.
pub enum Row<'a> {
    Probe(&'a ProbeLogEntry),
    Note(&'a NoteEntry),
}

impl Row<'_> {
    /// Whether the row shows the filter's text (in any of its columns).
    fn matches(&self, f: &Filter) -> bool {
        match self {
            Row::Probe(p) => f.matches_any(&[
                &p.probe,
                p.node.as_deref().unwrap_or(""),
                if p.ok { "ok" } else { "FAIL" },
                &p.detail,
            ]),
            Row::Note(n) => f.matches_any(&["note", &n.by, &n.text]),
        }
    }
}

/// Probe results and operators' notes, in time order; with a filter, only the rows that
/// show it.
pub fn probe_rows<'a>(view: &'a View, filter: Option<&Filter>) -> Vec<Row<'a>> {
    let mut all = rows(view);
    if let Some(f) = filter {
        all.retain(|r| r.matches(f));
    }
    all
}

/// Probe results and operators' notes, in time order.
fn rows(view: &View) -> Vec<Row<'_>> {
    let mut probes = view.state.probe_log.iter().peekable();
    let mut notes = view.state.notes.iter().peekable();
    let mut out = Vec::with_capacity(view.state.probe_log.len() + view.state.notes.len());
    loop {
        let take_note = match (probes.peek(), notes.peek()) {
            (Some(p), Some(n)) => n.t_ms <= p.t_ms,
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (None, None) => break,
        };
        if take_note {
            if let Some(n) = notes.next() {
                out.push(Row::Note(n));
            }
        } else if let Some(p) = probes.next() {
            out.push(Row::Probe(p));
        }
    }
    out
}

pub fn render_probes(frame: &mut Frame, area: Rect, view: &View, theme: &Theme) {
    let s = &theme.styles;
    let log = &view.state.probe_log;
    let failing = log.iter().rev().take(50).filter(|p| !p.ok).count();
    let filter = view.filter();
    let mut title = if failing > 0 {
        Line::from(vec![
            Span::raw(" Probes & notes "),
            text(format!("{failing} failing recently "), s.error),
        ])
    } else {
        Line::from(" Probes & notes ")
    };
    let filtered = filter.as_ref().map(|f| probe_rows(view, Some(f)));
    if let (Some(f), Some(shown)) = (&filter, &filtered) {
        let all = view.state.probe_log.len() + view.state.notes.len();
        title.push_span(text(
            format!("/{} {} of {all} ", f.text(), shown.len()),
            s.accent,
        ));
    }
    let block = panel(title, view.focus == Panel::Probes, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let height = inner.height as usize;
    let note_line = |n: &NoteEntry| {
        Line::from(vec![
            text(format!("{} ", fmt_dur(n.t_ms)), s.muted),
            text(
                truncate(
                    &format!("note {}: {}", n.by, n.text),
                    width.saturating_sub(6),
                ),
                s.accent,
            ),
        ])
    };
    // Following live, the latest notes stay pinned on top: probe samples arrive several a
    // second and would push a note out of sight at once. Scrolled, history is in time order.
    let notes = &view.state.notes;
    if let (Some(f), Some(all)) = (&filter, filtered) {
        if all.is_empty() {
            let none = format!(" no row matches /{} (Esc clears)", f.text());
            frame.render_widget(Paragraph::new(text(none, s.muted)), inner);
            return;
        }
        let (from, to) = window(all.len(), height, view.probes_scroll);
        let lines: Vec<Line> = all[from..to]
            .iter()
            .map(|row| match row {
                Row::Note(n) => note_line(n),
                Row::Probe(p) => probe_line(p, width, theme),
            })
            .collect();
        frame.render_widget(Paragraph::new(lines), inner);
        return;
    }
    let pinned = if view.probes_scroll == Scroll::Follow && height >= 6 {
        notes.len().min(3).min(height / 3)
    } else {
        0
    };
    let mut lines: Vec<Line> = notes[notes.len() - pinned..]
        .iter()
        .map(note_line)
        .collect();
    if pinned > 0 {
        let log = &view.state.probe_log;
        let from = log.len().saturating_sub(height - pinned);
        lines.extend(log.iter().skip(from).map(|p| probe_line(p, width, theme)));
    } else {
        let all = rows(view);
        let (from, to) = window(all.len(), height, view.probes_scroll);
        lines.extend(all[from..to].iter().map(|row| match row {
            Row::Note(n) => note_line(n),
            Row::Probe(p) => probe_line(p, width, theme),
        }));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn probe_line<'a>(p: &'a ProbeLogEntry, width: usize, theme: &Theme) -> Line<'a> {
    let s = &theme.styles;
    let (verdict, vs) = if p.ok {
        ("ok  ", s.ok)
    } else {
        ("FAIL", s.error)
    };
    let latency = p
        .latency_ms
        .map(|l| format!("{l:>4}ms"))
        .unwrap_or_else(|| "  –   ".into());
    let used = 6 + 1 + 12 + 1 + 8 + 1 + 4 + 1 + 6 + 1;
    let mut spans = vec![
        text(format!("{} ", fmt_dur(p.t_ms)), s.muted),
        text(fit(&p.probe, 12), s.base),
        Span::raw(" "),
        text(fit(p.node.as_deref().unwrap_or("–"), 8), s.accent),
        Span::raw(" "),
        text(verdict, vs),
        Span::raw(" "),
        text(latency, s.base),
    ];
    if !p.ok && width > used {
        spans.push(Span::raw(" "));
        spans.push(text(truncate(&p.detail, width - used), s.error));
    }
    Line::from(spans)
}
