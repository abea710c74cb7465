//! The two header lines (what, where, how far, how long, how reversible) and the footer (the
//! status message or the keys that matter now).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::engine::event::Outcome;
use crate::engine::state::{Mode, PromptKindTag};

use super::{fmt_dur, key, text};
use crate::tui::theme::Theme;
use crate::tui::view::{TuiRole, View};

const SEP: &str = " │ ";
const SEP_WIDTH: usize = 3;

/// Join segments with separators, dropping the least important until the line fits.
fn fit_segments(
    mut segs: Vec<(u8, Vec<Span<'static>>)>,
    width: usize,
    style: ratatui::style::Style,
) -> Vec<Span<'static>> {
    let len = |segs: &[(u8, Vec<Span>)]| -> usize {
        segs.iter()
            .map(|(_, sp)| sp.iter().map(Span::width).sum::<usize>())
            .sum::<usize>()
            + SEP_WIDTH * segs.len().saturating_sub(1)
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
            out.push(Span::styled(SEP, style));
        }
        out.extend(sp);
    }
    out
}

pub fn render(frame: &mut Frame, area: Rect, view: &View, theme: &Theme) {
    let s = &theme.styles;
    let st = &view.state;
    let plan = &st.plan;
    let h = s.header;
    let sep = || Span::styled(SEP, h);
    let total = st.steps.len();
    let step_n = match st.cursor() {
        Some(c) => c + 1,
        None => total,
    };
    let from = plan.from_version.as_deref().unwrap_or("?");
    let to = plan.to_version.as_deref().unwrap_or("?");
    // Segments by priority: the lowest go first when the line is too narrow.
    let l1: Vec<(u8, Vec<Span>)> = vec![
        (
            3,
            vec![Span::styled(format!(" {} ", view.title), h.patch(s.title))],
        ),
        (
            5,
            vec![
                Span::styled(plan.procedure.clone(), h),
                Span::styled(" ", h),
                Span::styled(from.to_string(), h.patch(s.old_version)),
                Span::styled(" → ", h),
                Span::styled(to.to_string(), h.patch(s.new_version)),
            ],
        ),
        (5, vec![Span::styled(format!("step {step_n}/{total}"), h)]),
        (
            5,
            vec![Span::styled(format!("T+{}", fmt_dur(view.now_ms)), h)],
        ),
    ];
    let l1 = fit_segments(l1, area.width as usize, h);
    let mut l2_ops = None;
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
    if !ops.is_empty() {
        l2_ops = Some(ops.join(" · "));
    }

    let ro = st.read_only.total_at(view.now_ms);
    let nr = st.no_ready.total_at(view.now_ms);
    let ro_style = if st.read_only.since.is_some() {
        h.patch(s.downtime_writes)
    } else {
        h
    };
    let nr_style = if st.no_ready.since.is_some() {
        h.patch(s.downtime_full)
    } else {
        h
    };
    let mut l2 = vec![
        Span::styled(" writes down ", h),
        Span::styled(fmt_dur(ro), ro_style),
        sep(),
        Span::styled("full down ", h),
        Span::styled(fmt_dur(nr), nr_style),
        sep(),
    ];
    if let Some(k) = st.point_of_no_return() {
        l2.push(Span::styled(
            format!(" PAST THE POINT OF NO RETURN (step {}) ", k + 1),
            s.no_return,
        ));
    } else {
        match st.rollback_until() {
            Some(k) => l2.push(Span::styled(
                format!("rollback possible until step {}", k + 1),
                h,
            )),
            None => l2.push(Span::styled("fully reversible", h)),
        }
    }
    let mode = match st.mode {
        Mode::Forward => None,
        Mode::RollingBack => Some((" ROLLING BACK ".to_string(), s.warn)),
        Mode::Finished(Outcome::Completed) => Some((" FINISHED: completed ".into(), s.ok)),
        Mode::Finished(Outcome::Aborted) => Some((" FINISHED: aborted ".into(), s.warn)),
        Mode::Finished(Outcome::RolledBack) => Some((" FINISHED: rolled back ".into(), s.warn)),
    };
    if let Some((m, style)) = mode {
        l2.push(sep());
        l2.push(Span::styled(
            m,
            h.patch(style).add_modifier(ratatui::style::Modifier::BOLD),
        ));
    }
    if let Some(r) = &st.rollback_stopped {
        l2.push(sep());
        l2.push(Span::styled(
            format!("rollback stopped: {r}"),
            h.patch(s.error),
        ));
    }
    if let Some(ops) = l2_ops {
        let used: usize = l2.iter().map(Span::width).sum();
        if used + SEP_WIDTH + ops.chars().count() <= area.width as usize {
            l2.push(sep());
            l2.push(Span::styled(ops, h));
        }
    }
    frame.render_widget(
        Paragraph::new(vec![Line::from(l1), Line::from(l2)]).style(h),
        area,
    );
}

pub fn footer(frame: &mut Frame, area: Rect, view: &View, theme: &Theme) {
    let s = &theme.styles;
    let st = &view.state;
    let line = if let Some(msg) = &view.status {
        Line::from(text(format!(" {msg}"), s.status))
    } else {
        let mut spans: Vec<Span> = vec![Span::raw(" ")];
        match view.role {
            TuiRole::Replay => {
                hint(&mut spans, theme, "Tab", "focus");
                hint(&mut spans, theme, "↑↓", "select/scroll");
                hint(&mut spans, theme, "?", "help");
                hint(&mut spans, theme, "q", "quit");
            }
            TuiRole::Observer => {
                spans.push(text("observer — read only  ", s.warn));
                hint(&mut spans, theme, "c", "request control");
                if st
                    .prompt
                    .and_then(|p| st.plan.steps.get(p.step))
                    .is_some_and(|p| p.approvals > 1)
                {
                    hint(&mut spans, theme, "A", "approve");
                }
                hint(&mut spans, theme, "n", "note");
                hint(&mut spans, theme, "?", "help");
                hint(&mut spans, theme, "q", "quit");
            }
            TuiRole::Driver => {
                if let Some((_, name)) = &st.control_request {
                    spans.push(text(format!("{name} asks for control: "), s.warn));
                    hint(&mut spans, theme, "g", "grant");
                }
                if st.held {
                    hint(&mut spans, theme, "Enter", "act on the step");
                }
                if st.prompt.is_some_and(|p| p.kind == PromptKindTag::Run) {
                    hint(&mut spans, theme, "y", "run");
                }
                hint(&mut spans, theme, "Tab", "focus");
                hint(&mut spans, theme, "n", "note");
                hint(&mut spans, theme, "u", "undo");
                hint(&mut spans, theme, "s", "skip");
                hint(&mut spans, theme, "a", "abort");
                hint(&mut spans, theme, "?", "help");
                hint(&mut spans, theme, "q", "quit");
            }
        }
        Line::from(spans)
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn hint(spans: &mut Vec<Span<'static>>, theme: &Theme, k: &'static str, what: &'static str) {
    spans.push(key(k, theme));
    spans.push(text(format!(" {what}  "), theme.styles.muted));
}
