//! The replay position bar, one line above the footer: playing or paused, speed, session time
//! of the position against the whole journal, the step, the event, and the idle gap being
//! compressed, and how many bad lines of the journal it skips. On a narrow screen the least
//! important segments go first.

use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::Span;
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::header::{fit_segments, Segment};
use super::{fmt_dur, text};
use crate::replay::player::ReplayPosition;
use crate::replay::timeline::DecisionKind;
use crate::tui::theme::Theme;
use crate::tui::view::View;

/// The bar's text segments, most important first (priority, text).
pub fn segments(pos: &ReplayPosition, steps: usize) -> Vec<(u8, String)> {
    let mut segs = vec![(
        9,
        if pos.paused {
            "⏸ paused".to_string()
        } else if pos.at_end {
            "■ end".to_string()
        } else {
            "▶ playing".to_string()
        },
    )];
    segs.push((7, format!("x{}", pos.speed)));
    segs.push((
        8,
        format!("{} / {}", fmt_dur(pos.t_ms), fmt_dur(pos.t_total_ms)),
    ));
    segs.push((
        8,
        match pos.step {
            Some(s) => format!("step {}/{steps}", s + 1),
            None => format!("step -/{steps}"),
        },
    ));
    segs.push((6, format!("event {}/{}", pos.index + 1, pos.total)));
    if let Some(g) = pos.compressed_gap.filter(|_| !pos.paused) {
        segs.push((
            7,
            format!(
                "idle {} compressed",
                crate::report::human_duration(g.original_ms)
            ),
        ));
    }
    if pos.lines_left_out > 0 {
        segs.push((6, crate::replay::player::left_out_label(pos.lines_left_out)));
    }
    if pos.stopped_before.is_some() {
        segs.push((7, "stopped before a decision".to_string()));
    } else if let Some(why) = pos.damage.as_ref().filter(|_| pos.at_end) {
        // The replay cannot go on: say why, in the reader's words.
        segs.push((9, format!("damaged journal: {why}")));
    } else if pos.at_end && pos.paused {
        segs.push((6, "end".to_string()));
    }
    if let Some(d) = pos.decision {
        segs.push((5, format!("decision: {}", decision_label(d))));
    }
    segs
}

fn decision_label(d: DecisionKind) -> &'static str {
    match d {
        DecisionKind::Confirmed => "confirmed",
        DecisionKind::UndoConfirmed => "undo confirmed",
        DecisionKind::Declined => "declined",
        DecisionKind::Skipped => "skipped",
        DecisionKind::MarkedDone => "marked done",
        DecisionKind::AbortRequested => "abort",
        DecisionKind::Note => "note",
        DecisionKind::DriverChanged => "driver changed",
        DecisionKind::FailedPrompt => "failure prompt",
        DecisionKind::InterruptedPrompt => "interrupted prompt",
    }
}

pub fn render(frame: &mut Frame, area: Rect, view: &View, theme: &Theme) {
    let Some(pos) = &view.replay else {
        return;
    };
    let s = &theme.styles;
    let h = s.header;
    let mut plain = segments(pos, view.state.steps.len());
    if let Some(q) = &view.quiz {
        plain.insert(
            1,
            (
                8,
                format!(
                    "quiz {}/{} answered, {} same",
                    q.answered, q.total, q.matched
                ),
            ),
        );
    }
    let segs: Vec<Segment> = plain
        .into_iter()
        .enumerate()
        .map(|(i, (p, t))| {
            let style = match i {
                0 if pos.paused => h.patch(s.warn).add_modifier(Modifier::BOLD),
                0 => h.add_modifier(Modifier::BOLD),
                _ => h,
            };
            (p, vec![text(t, style)])
        })
        .collect();
    // One column of margin, like the header.
    let mut segs = segs;
    if let Some((_, first)) = segs.first_mut() {
        first.insert(0, Span::styled(" ", h));
    }
    frame.render_widget(
        Paragraph::new(fit_segments(segs, area.width as usize, " │ ", h)).style(h),
        area,
    );
}
