//! The quiz modal: the question the player stopped before (what the trainee sees, and the
//! answer letters), then what the recorded operator did and what came of it.

use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::Frame;

use super::prompt::modal;
use super::{key, text};
use crate::replay::quiz::Choice;
use crate::tui::theme::Theme;
use crate::tui::view::{Overlay, View};

pub fn render(frame: &mut Frame, area: Rect, view: &View, theme: &Theme) {
    // The help overlay goes on top.
    if matches!(view.overlay, Some(Overlay::Help)) {
        return;
    }
    let Some(quiz) = &view.quiz else {
        return;
    };
    let s = &theme.styles;
    let mut lines: Vec<Line> = Vec::new();
    if let Some((mine, r)) = &quiz.reveal {
        let (verdict, style) = if r.matched {
            ("same", s.ok)
        } else {
            ("different", s.warn)
        };
        lines.push(Line::from(vec![
            text("you: ", s.muted),
            text(mine.label(), s.accent),
            text(format!("   {} did: ", r.by), s.muted),
            text(r.recorded.label(), s.accent),
            text(format!("   ({verdict})"), style),
        ]));
        if let Some(w) = &r.what_happened {
            lines.push(Line::from(text(format!("then: {w}"), s.base)));
        }
        for why in &r.explanation {
            lines.push(Line::from(text(why.clone(), s.muted)));
        }
        lines.push(Line::from(""));
        lines.push(Line::from(vec![
            key("Enter", theme),
            text(" or ", s.muted),
            key("space", theme),
            text(" plays on", s.muted),
        ]));
        let title = format!(
            " Quiz: {}/{} answered, {} same ",
            quiz.answered, quiz.total, quiz.matched
        );
        modal(frame, area, title, lines, theme);
        return;
    }
    let Some(q) = &quiz.question else {
        return;
    };
    let step = match (q.step, &q.step_key, &q.step_title) {
        (Some(n), Some(k), Some(t)) => format!("step {} `{k}`: {t}", n + 1),
        (Some(n), _, _) => format!("step {}", n + 1),
        _ => "no step in focus".to_string(),
    };
    lines.push(Line::from(text(step, s.title)));
    if let Some(st) = &q.step_status {
        lines.push(Line::from(vec![
            text("status: ", s.muted),
            text(st.clone(), s.base),
        ]));
    }
    if let Some(p) = &q.prompt {
        lines.push(Line::from(vec![
            text("prompt: ", s.muted),
            text(p.clone(), s.prompt),
        ]));
    }
    if q.rolling_back {
        lines.push(Line::from(text("rolling back", s.warn)));
    }
    if let Some(d) = &q.detail {
        lines.push(Line::from(vec![
            text("detail: ", s.muted),
            text(d.clone(), s.base),
        ]));
    }
    for l in &q.last_output {
        lines.push(Line::from(text(format!("  | {l}"), s.muted)));
    }
    if q.failing_probes.is_empty() {
        lines.push(Line::from(text("failing probes: none", s.muted)));
    } else {
        lines.push(Line::from(text(
            format!("failing probes: {}", q.failing_probes.join("; ")),
            s.error,
        )));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(text("What would you do?", s.prompt)));
    let mut choices = Vec::new();
    for c in Choice::ALL {
        choices.push(text(c.key().to_string(), s.key));
        choices.push(text(format!(" {}  ", c.label()), s.base));
    }
    lines.push(Line::from(choices));
    let title = format!(" Quiz: question {}/{} ", q.number, q.total);
    modal(frame, area, title, lines, theme);
}
