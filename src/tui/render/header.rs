//! The two header lines (what, where, how far, how long, how reversible) and the footer (the
//! status message or the keys that matter now). Each line is made of segments with a priority;
//! on a narrow screen the least important go first, never the safety-relevant ones.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use crate::engine::event::Outcome;
use crate::engine::outcome::{outcome_text, rollback_verified, undo_stopped};
use crate::engine::state::{Mode, PromptKindTag};
use crate::plan::Confirm;

use super::{fmt_dur, key, text};
use crate::tui::input::typing_phrase;
use crate::tui::theme::Theme;
use crate::tui::view::{Overlay, TuiRole, View};

const SEP: &str = " │ ";

pub(super) type Segment = (u8, Vec<Span<'static>>);

/// Join segments with `sep`, dropping the least important (the later of equals) until the
/// line fits `width`.
pub(super) fn fit_segments(
    mut segs: Vec<Segment>,
    width: usize,
    sep: &'static str,
    style: Style,
) -> Line<'static> {
    let sep_w = sep.width();
    let len = |segs: &[Segment]| -> usize {
        segs.iter()
            .map(|(_, sp)| sp.iter().map(Span::width).sum::<usize>())
            .sum::<usize>()
            + sep_w * segs.len().saturating_sub(1)
    };
    while len(&segs) > width && segs.len() > 1 {
        let Some(min) = segs.iter().map(|(p, _)| *p).min() else {
            break;
        };
        if let Some(i) = segs.iter().rposition(|(p, _)| *p == min) {
            segs.remove(i);
        }
    }
    let mut out = Vec::new();
    for (i, (_, sp)) in segs.into_iter().enumerate() {
        if i > 0 {
            out.push(Span::styled(sep, style));
        }
        out.extend(sp);
    }
    Line::from(out)
}

pub fn render(frame: &mut Frame, area: Rect, view: &View, theme: &Theme) {
    let s = &theme.styles;
    let st = &view.state;
    let plan = &st.plan;
    let h = s.header;
    let width = area.width as usize;
    let total = st.steps.len();
    let step_n = st.cursor().map_or(total, |c| c + 1);
    let from = plan.from_version.as_deref().unwrap_or("?");
    let to = plan.to_version.as_deref().unwrap_or("?");

    let l1: Vec<Segment> = vec![
        (3, vec![text(format!(" {} ", view.title), h.patch(s.title))]),
        (
            5,
            vec![
                text(plan.procedure.clone(), h),
                // The title usually names the target already.
                text(
                    if view.title.contains(&plan.target) {
                        " ".to_string()
                    } else {
                        format!(" @ {} ", plan.target)
                    },
                    h,
                ),
                text(from.to_string(), h.patch(s.old_version)),
                Span::styled(" → ", h),
                text(to.to_string(), h.patch(s.new_version)),
            ],
        ),
        (5, vec![Span::styled(format!("step {step_n}/{total}"), h)]),
        (
            5,
            vec![Span::styled(format!("T+{}", fmt_dur(view.now_ms)), h)],
        ),
    ];
    // Spelled out when the whole line has room for it.
    let mut l1 = l1;
    let full: usize = l1
        .iter()
        .map(|(_, sp)| sp.iter().map(Span::width).sum::<usize>() + 3)
        .sum();
    if full + 6 <= width {
        if let Some((_, sp)) = l1.last_mut() {
            *sp = vec![Span::styled(format!("elapsed {}", fmt_dur(view.now_ms)), h)];
        }
    }

    let mut l2 = line2(view, theme, width);
    if let Some(ops) = operators(view).filter(|_| ops_in_header(view, theme, width)) {
        l2.push((1, vec![text(ops, h)]));
    }
    frame.render_widget(
        Paragraph::new(vec![
            fit_segments(l1, width, SEP, h),
            fit_segments(l2, width, SEP, h),
        ])
        .style(h),
        area,
    );
}

/// The second header line without the operators: timers, reversibility, mode.
fn line2(view: &View, theme: &Theme, width: usize) -> Vec<Segment> {
    let s = &theme.styles;
    let st = &view.state;
    let h = s.header;
    let timer = |label: &'static str, ms: u64, open: bool, style: Style| -> Vec<Span<'static>> {
        vec![
            Span::styled(label, h),
            Span::styled(fmt_dur(ms), if open { h.patch(style) } else { h }),
        ]
    };
    let mut l2: Vec<Segment> = vec![
        (
            6,
            timer(
                " writes down ",
                st.read_only.total_at(view.now_ms),
                st.read_only.since.is_some(),
                s.downtime_writes,
            ),
        ),
        (
            6,
            timer(
                "full down ",
                st.no_ready.total_at(view.now_ms),
                st.no_ready.since.is_some(),
                s.downtime_full,
            ),
        ),
    ];
    if let Some(k) = st.point_of_no_return() {
        l2.push((
            7,
            vec![Span::styled(
                format!(" PAST THE POINT OF NO RETURN (step {}) ", k + 1),
                s.no_return,
            )],
        ));
    } else {
        // The full wording when the line has room for it next to everything else.
        let others: usize = 18 + 18 + if st.mode == Mode::Forward { 0 } else { 26 };
        let msg = match st.rollback_until() {
            Some(k) if width >= others + 33 => format!("rollback possible until step {}", k + 1),
            Some(k) => format!("reversible until step {}", k + 1),
            None => "fully reversible".to_string(),
        };
        l2.push((4, vec![Span::styled(msg, h)]));
    }
    // The finish line says what `report` and the headless summary say (`outcome_text`): a
    // rollback is "verified" or names the node that failed and why.
    let mode = match st.mode {
        Mode::Forward => None,
        Mode::RollingBack if st.verifying => Some((" ROLLING BACK: verifying ".into(), s.warn)),
        // Stopped at a failed undo: the same words as the report and the headless summary.
        Mode::RollingBack if undo_stopped(st).is_some() => {
            Some((clip_to(&format!(" {} ", outcome_text(st)), width), s.error))
        }
        Mode::RollingBack => Some((" ROLLING BACK ".into(), s.warn)),
        Mode::Finished(outcome) => {
            let style = match outcome {
                Outcome::Completed => s.ok,
                Outcome::RolledBack if rollback_verified(st) => s.ok,
                Outcome::RolledBack => s.error,
                // A rollback that stopped short is not a plain abort.
                Outcome::Aborted if st.rollback_asked => s.error,
                Outcome::Aborted => s.warn,
            };
            let text = format!(" FINISHED: {} ", outcome_text(st));
            Some((clip_to(&text, width), style))
        }
    };
    if let Some((m, style)) = mode {
        l2.push((
            7,
            vec![text(m, h.patch(style).add_modifier(Modifier::BOLD))],
        ));
    }
    // Said once: a stopped rollback's finish line already gives the reason.
    let finish = st.is_finished().then(|| outcome_text(st));
    let said = |r: &&String| finish.as_deref().is_some_and(|t| t.contains(r.as_str()));
    if let Some(r) = st.rollback_stopped.as_ref().filter(|r| !said(r)) {
        l2.push((
            5,
            vec![text(format!("rollback stopped: {r}"), h.patch(s.error))],
        ));
    }
    l2
}

/// `s` cut to `width` columns, with `…` where it was cut.
fn clip_to(s: &str, width: usize) -> String {
    if s.width() <= width {
        return s.to_string();
    }
    let mut out = String::new();
    for c in s.chars() {
        if out.width() + c.to_string().width() + 1 > width {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

/// Who is here: "driver alice · watching bob".
fn operators(view: &View) -> Option<String> {
    let st = &view.state;
    let mut ops: Vec<String> = Vec::new();
    if let Some(d) = st.driver() {
        ops.push(format!("driver {}", d.name));
    }
    let watching: Vec<&str> = st
        .operators
        .iter()
        .filter(|o| !o.driver)
        .map(|o| o.name.as_str())
        .collect();
    if !watching.is_empty() {
        ops.push(format!("watching {}", watching.join(", ")));
    }
    (!ops.is_empty()).then(|| ops.join(" · "))
}

fn seg_width(segs: &[Segment]) -> usize {
    segs.iter()
        .map(|(_, sp)| sp.iter().map(Span::width).sum::<usize>())
        .sum::<usize>()
        + SEP.width() * segs.len().saturating_sub(1)
}

/// Whether the operators fit on the header's second line (else the footer names them).
fn ops_in_header(view: &View, theme: &Theme, width: usize) -> bool {
    let ops = operators(view).map_or(0, |o| o.width());
    seg_width(&line2(view, theme, width)) + SEP.width() + ops <= width
}

fn hint(theme: &Theme, priority: u8, k: &'static str, what: &'static str) -> Segment {
    (
        priority,
        vec![key(k, theme), text(format!(" {what}"), theme.styles.muted)],
    )
}

pub fn footer(frame: &mut Frame, area: Rect, view: &View, theme: &Theme) {
    let s = &theme.styles;
    // The filter line is typed here, like vim's `/`, so the panes it filters stay in sight.
    if let Some(Overlay::Filter(input)) = &view.overlay {
        filter_line(frame, area, input, theme);
        return;
    }
    if let Some(msg) = &view.status {
        frame.render_widget(
            Paragraph::new(Line::from(text(format!(" {msg}"), s.status))),
            area,
        );
        return;
    }
    let mut segs: Vec<Segment> = Vec::new();
    if view.ended {
        segs.push((9, vec![text("the session has ended", s.warn)]));
    }
    // A filter hides lines: never without saying so. At a prompt Esc holds the step, so
    // there the way out is `/` (its line clears with Esc).
    if let Some(f) = view.filter.as_deref().filter(|_| view.overlay.is_none()) {
        let (k, what) = if view.prompt.as_ref().is_some_and(|p| !p.hidden) {
            ("/", " changes it)")
        } else {
            ("Esc", " clears it)")
        };
        segs.push((
            9,
            vec![
                text(format!("filter /{f} ("), s.accent),
                key(k, theme),
                text(what, s.accent),
            ],
        ));
    }
    // A question of ours on screen takes the keys: name its keys, not the cockpit's (under a
    // skip question "y run" would be a lie: y skips).
    if let Some(overlay) = &view.overlay {
        for (k, what) in overlay_keys(overlay) {
            segs.push(hint(theme, 9, k, what));
        }
    } else {
        role_hints(view, theme, &mut segs);
    }
    // Pairing matters: when the header had no room for who is here, say it here.
    if view.effective_role() != TuiRole::Replay && !ops_in_header(view, theme, area.width as usize)
    {
        if let Some(ops) = operators(view) {
            segs.push((5, vec![text(ops, s.accent)]));
        }
    }
    // One column of margin, like the header.
    let inner = Rect {
        x: area.x.saturating_add(1),
        width: area.width.saturating_sub(1),
        ..area
    };
    frame.render_widget(
        Paragraph::new(fit_segments(segs, inner.width as usize, "  ", Style::new())),
        inner,
    );
}

fn overlay_keys(overlay: &Overlay) -> &'static [(&'static str, &'static str)] {
    match overlay {
        Overlay::Help => &[("? Esc", "close")],
        Overlay::Note(_) => &[("Enter", "save"), ("Esc", "cancel")],
        Overlay::ConfirmSkip { .. } => &[("y", "skip"), ("n Esc", "cancel")],
        Overlay::AbortChoice => &[("r", "roll back"), ("k", "keep as is"), ("Esc", "cancel")],
        Overlay::AbortReason { .. } => &[("Enter", "abort"), ("Esc", "back")],
        Overlay::RollbackOverride { .. } => &[("Enter", "roll back anyway"), ("Esc", "cancel")],
        Overlay::ConfirmQuit => &[("y", "leave"), ("n Esc", "stay")],
        Overlay::TakeControl(_) => &[("Enter", "take control"), ("Esc", "cancel")],
        Overlay::RemoveOperator { chosen: None } => &[("1-9", "choose"), ("Esc", "cancel")],
        Overlay::RemoveOperator { chosen: Some(_) } => &[("y", "remove"), ("n Esc", "cancel")],
        Overlay::Choose { .. } => &[("Enter", "record the choice"), ("Esc", "back")],
        Overlay::LeaveDemo => &[
            ("l", "leave it running"),
            ("e", "end the demo"),
            ("Esc", "stay"),
        ],
        Overlay::Command(_) => &[("Enter", "run"), ("Esc", "cancel")],
        Overlay::Filter(_) => &[("Enter", "keep"), ("Esc", "clear")],
    }
}

/// The `/` line being typed, with its keys after it and the cursor in it.
fn filter_line(frame: &mut Frame, area: Rect, input: &tui_input::Input, theme: &Theme) {
    let s = &theme.styles;
    let tail = vec![
        Span::raw("   "),
        key("Enter", theme),
        text(" keep  ", s.muted),
        key("Esc", theme),
        text(" clear  ", s.muted),
        text("(filters output and probes)", s.muted),
    ];
    let tail_w: usize = tail.iter().map(Span::width).sum();
    let room = usize::from(area.width).saturating_sub(3);
    let show_tail = input.value().width() + tail_w <= room;
    let width = if show_tail { room - tail_w } else { room }.max(1);
    let scroll = input.visual_scroll(width);
    let shown: String = input.value().chars().skip(scroll).collect();
    let mut spans = vec![text(" /", s.prompt), text(shown, s.base)];
    if show_tail {
        spans.extend(tail);
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
    let x = area.x + 2 + u16::try_from(input.visual_cursor().saturating_sub(scroll)).unwrap_or(0);
    frame.set_cursor_position((x.min(area.right().saturating_sub(1)), area.y));
}

/// The keys of the cockpit itself, for this operator's role and the prompt that is open.
fn role_hints(view: &View, theme: &Theme, segs: &mut Vec<Segment>) {
    let s = &theme.styles;
    let st = &view.state;
    match view.effective_role() {
        TuiRole::Replay if view.quiz.is_some() => {
            segs.push((8, vec![text("quiz", s.warn)]));
            match &view.quiz {
                Some(q) if q.reveal.is_some() => {
                    segs.push(hint(theme, 8, "Enter", "plays on"));
                }
                Some(q) if q.question.is_some() => {
                    segs.push(hint(theme, 8, "c w u r s a m", "answer"));
                }
                _ => {
                    segs.push(hint(theme, 8, "space", "pause"));
                    segs.push(hint(theme, 7, "+-", "speed"));
                    segs.push(hint(theme, 6, "←", "back a step"));
                    segs.push(hint(theme, 5, "g", "start"));
                }
            }
            segs.push(hint(theme, 3, "Tab", "focus"));
            segs.push(hint(theme, 6, "?", "help"));
            segs.push(hint(theme, 6, "q", "quit"));
        }
        TuiRole::Replay if view.replay.is_some() => {
            segs.push((8, vec![text("replay", s.warn)]));
            segs.push(hint(theme, 8, "space", "pause"));
            segs.push(hint(theme, 7, "+-", "speed"));
            segs.push(hint(theme, 7, "←→", "step"));
            segs.push(hint(theme, 5, "g G", "start/end"));
            segs.push(hint(theme, 6, "d", "decision"));
            segs.push(hint(theme, 3, "Tab", "focus"));
            segs.push(hint(theme, 6, "?", "help"));
            segs.push(hint(theme, 6, "q", "quit"));
        }
        TuiRole::Replay => {
            segs.push((8, vec![text("replay", s.warn)]));
            segs.push(hint(theme, 4, "Tab", "focus"));
            segs.push(hint(theme, 3, "↑↓", "select/scroll"));
            segs.push(hint(theme, 6, "?", "help"));
            segs.push(hint(theme, 6, "q", "quit"));
        }
        TuiRole::Observer => {
            segs.push((8, vec![text("observer — read only", s.warn)]));
            match (st.driver(), st.prompt) {
                (Some(d), Some(p)) => segs.push((
                    2,
                    vec![text(
                        format!("{} is asked about step {}", d.name, p.step + 1),
                        s.prompt,
                    )],
                )),
                // The driver's client is gone: the session waits for whoever takes over.
                (None, Some(p)) => segs.push((
                    8,
                    vec![text(
                        format!("nobody drives: step {} waits", p.step + 1),
                        s.warn,
                    )],
                )),
                _ => {}
            }
            // With nobody driving, c takes control at once instead of asking.
            if st.driver().is_none() {
                segs.push(hint(theme, 8, "c", "take control"));
            } else {
                segs.push(hint(theme, 7, "c", "request control"));
            }
            if st
                .prompt
                .and_then(|p| st.plan.steps.get(p.step))
                .is_some_and(|p| p.approvals > 1)
            {
                segs.push(hint(theme, 7, "A", "approve"));
            }
            segs.push(hint(theme, 4, "n", "note"));
            segs.push(hint(theme, 6, "?", "help"));
            segs.push(hint(theme, 5, "q", "quit"));
        }
        TuiRole::Driver if st.is_finished() || view.ended => {
            segs.push(hint(theme, 3, "Tab", "focus"));
            segs.push(hint(theme, 3, "↑↓", "select/scroll"));
            segs.push(hint(theme, 4, "n", "note"));
            segs.push(hint(theme, 6, "?", "help"));
            segs.push(hint(theme, 6, "q", "quit"));
        }
        TuiRole::Driver => {
            // In a phrase box `g` is a letter: Ctrl-G grants there (and everywhere).
            let typed = typing_phrase(view);
            if let Some((_, name)) = &st.control_request {
                segs.push((8, vec![text(format!("{name} asks for control:"), s.warn)]));
                let key = if typed.is_some() { "Ctrl-G" } else { "g" };
                segs.push(hint(theme, 8, key, "grant"));
            }
            if st.held {
                segs.push(hint(theme, 7, "Enter", "act on the step"));
            }
            // At a prompt the same letters answer it (or, for a phrase, are typed into it):
            // the hints say what a key does now, not what it does elsewhere.
            let prompt = st.prompt.map(|p| p.kind);
            let phrase = st.prompt.is_some_and(|p| {
                p.kind == PromptKindTag::Run
                    && st
                        .plan
                        .steps
                        .get(p.step)
                        .is_some_and(|s| matches!(s.confirm, Confirm::Phrase { .. }))
            });
            if phrase {
                segs.push(hint(theme, 7, "Enter", "confirm"));
                segs.push(hint(theme, 7, "Esc", "hold"));
                segs.push(hint(theme, 3, "Tab", "focus"));
                if typed.is_some_and(|t| !t.is_empty()) {
                    segs.push(hint(theme, 6, "Ctrl-C", "clear"));
                } else {
                    segs.push(hint(theme, 5, "Ctrl-C", "quit"));
                }
            } else {
                match prompt {
                    Some(PromptKindTag::Run) => {
                        segs.push(hint(theme, 7, "y", "run"));
                        segs.push(hint(theme, 7, "Esc", "hold"));
                    }
                    Some(PromptKindTag::Undo) => {
                        segs.push(hint(theme, 7, "y", "undo"));
                        segs.push(hint(theme, 7, "Esc", "hold"));
                    }
                    _ => {}
                }
                segs.push(hint(theme, 3, "Tab", "focus"));
                segs.push(hint(theme, 4, "n", "note"));
                // Offered only when the engine would take it.
                if st
                    .undo_candidate()
                    .is_some_and(|c| st.undo_refusal(c).is_none())
                {
                    segs.push(hint(theme, 4, "u", "undo"));
                }
                segs.push(hint(theme, 4, "s", "skip"));
                segs.push(hint(theme, 4, "a", "abort"));
                segs.push(hint(theme, 6, "?", "help"));
                segs.push(hint(theme, 5, "q", "quit"));
            }
        }
    }
}
