//! Every plan step with its status glyph, downtime marker and loop progress; the step moving
//! now stays in view unless the operator picked another.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::{fit, panel, text};
use crate::engine::state::StepStatus;
use crate::procedure::model::Downtime;
use crate::tui::theme::Theme;
use crate::tui::view::{Panel, Scroll, View};

/// A step's downtime and point-of-no-return marks; the `?` help's legend names each.
pub const WRITES_DOWN: &str = "W";
pub const FULL_DOWN: &str = "F";
pub const NO_RETURN: &str = "◆";

/// One glyph per status; all single-width so columns line up everywhere.
pub fn glyph(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Pending => "·",
        StepStatus::Awaiting => "?",
        StepStatus::Running => "▶",
        StepStatus::Succeeded => "✓",
        StepStatus::Failed => "✗",
        StepStatus::Undoing => "↶",
        StepStatus::Undone => "↺",
        StepStatus::UndoFailed => "✗",
        StepStatus::Skipped => "»",
        StepStatus::Interrupted => "!",
    }
}

pub fn status_style(status: StepStatus, theme: &Theme) -> Style {
    let s = &theme.styles;
    match status {
        StepStatus::Pending => s.muted,
        StepStatus::Awaiting => s.prompt,
        StepStatus::Running | StepStatus::Undoing => s.active,
        StepStatus::Succeeded | StepStatus::Undone => s.ok,
        StepStatus::Failed | StepStatus::UndoFailed | StepStatus::Interrupted => s.error,
        StepStatus::Skipped => s.warn,
    }
}

/// Columns the list would like (borders included): the longest title with its progress.
pub fn wanted_width(view: &View) -> u16 {
    let steps = &view.state.plan.steps;
    let num_w = steps.len().to_string().len();
    let widest = steps
        .iter()
        .map(|p| p.title.width() + p.progress.as_deref().map_or(0, |g| g.width() + 1))
        .max()
        .unwrap_or(0);
    (2 + num_w + 1 + widest + 3 + 2).min(u16::MAX as usize) as u16
}

/// First row shown so that `focus` sits a third of the way down (or everything fits).
fn offset(len: usize, height: usize, focus: usize) -> usize {
    if len <= height {
        return 0;
    }
    focus.saturating_sub(height / 3).min(len - height)
}

pub fn render(frame: &mut Frame, area: Rect, view: &View, theme: &Theme) {
    let s = &theme.styles;
    let st = &view.state;
    let focused = view.focus == Panel::Procedure;
    let done = st.steps.iter().filter(|r| r.status.is_settled()).count();
    let block = panel(
        format!(" Procedure {done}/{} ", st.steps.len()),
        focused,
        theme,
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let height = inner.height as usize;
    let width = inner.width as usize;
    let shown = view.detail_step();
    let active = view.active_step();
    let focus_row = view.selected.or(active).unwrap_or(0);
    let top = match view.procedure_scroll {
        Scroll::Follow => offset(st.plan.steps.len(), height, focus_row),
        Scroll::At(n) => n.min(st.plan.steps.len().saturating_sub(height)),
    };
    let num_w = st.plan.steps.len().to_string().len();
    let mut lines = Vec::new();
    for (i, (p, r)) in st
        .plan
        .steps
        .iter()
        .zip(&st.steps)
        .enumerate()
        .skip(top)
        .take(height)
    {
        let mark = match p.downtime {
            Downtime::None => text(" ", s.base),
            Downtime::Writes => text(WRITES_DOWN, s.downtime_writes),
            Downtime::Full => text(FULL_DOWN, s.downtime_full),
        };
        let irrev = if p.irreversible.is_some() {
            text(NO_RETURN, s.downtime_full)
        } else {
            text(" ", s.base)
        };
        // A step in a notable state says so in words; the others show their loop progress.
        let (progress, right_style) = match r.status {
            StepStatus::Pending | StepStatus::Succeeded => {
                (p.progress.as_deref().unwrap_or(""), s.muted)
            }
            other => (other.label(), status_style(other, theme)),
        };
        // Only when the title keeps a readable width beside it.
        let fixed = 2 + num_w + 1 + 3;
        let p_w = progress.width();
        let right_w = if width.saturating_sub(fixed + p_w + 1) >= 18 {
            p_w
        } else {
            0
        };
        let title_w = width.saturating_sub(fixed + right_w + usize::from(right_w > 0));
        let title_style = if Some(i) == active {
            s.active
        } else if r.status == StepStatus::Pending {
            s.base
        } else {
            status_style(r.status, theme)
        };
        let mut spans = vec![
            text(
                format!("{} ", glyph(r.status)),
                status_style(r.status, theme),
            ),
            text(format!("{:>num_w$} ", i + 1), s.muted),
            text(fit(&p.title, title_w), title_style),
            Span::raw(" "),
            mark,
            irrev,
        ];
        if right_w > 0 {
            spans.push(Span::raw(" "));
            spans.push(text(progress.to_string(), right_style));
        }
        let mut line = Line::from(spans);
        if Some(i) == shown {
            line = line.patch_style(s.selected);
        }
        lines.push(line);
    }
    frame.render_widget(Paragraph::new(lines), inner);
}
