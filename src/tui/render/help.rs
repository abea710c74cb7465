//! The `?` overlay: every key, in two columns so it fits the smallest screen.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph};
use ratatui::Frame;

use super::{centered, fit, text};
use crate::tui::commands::{pack, COMMANDS};
use crate::tui::replay::{QUIZ_KEYS, REPLAY_KEYS};
use crate::tui::theme::Theme;
use crate::tui::view::{Overlay, View};

pub type Group = (&'static str, &'static [(&'static str, &'static str)]);

/// Every key the cockpit knows: left column groups, then right column groups.
pub const KEYS: [&[Group]; 2] = [
    &[
        (
            "Moving around",
            &[
                ("Tab S-Tab", "next / previous panel"),
                ("↑↓ j k", "select step / scroll"),
                ("PgUp PgDn", "scroll a page"),
                ("Home End", "oldest / follow live"),
                ("/", "filter output, probes"),
                ("mouse", "click focus, wheel scroll"),
                ("?", "this help"),
                ("q Ctrl-C", "leave (never aborts)"),
            ],
        ),
        (
            "Everyone",
            &[
                ("n", "write a note (journal)"),
                ("c", "observer: ask for control"),
                ("T", "observer: take control"),
                ("A", "observer: approve prompt"),
                ("X", "owner: remove an operator"),
            ],
        ),
        // The legend: every symbol the panels use.
        (
            "Symbols: steps",
            &[
                ("· ? ▶ ✓", "pending, asks, runs, done"),
                ("✗ !", "failed, interrupted"),
                ("» ↶ ↺", "skipped, undoing, undone"),
                ("W F", "writes / full downtime"),
                ("◆", "point of no return"),
            ],
        ),
    ],
    &[
        (
            "Driver",
            &[
                ("y / Esc", "run / hold at a prompt"),
                ("phrase", "type, ⏎ confirm, ^C clear"),
                ("r / s", "optional step: run / skip"),
                ("Enter", "act on a held step"),
                ("r", "retry / re-run the step"),
                ("d", "failed/interrupted: done"),
                ("K", "kill a leftover process"),
                ("u", "undo latest completed"),
                ("s", "skip step (asks first)"),
                ("a", "abort: r rollback, k keep"),
                ("a, then o", "roll back past no return"),
                ("g / ^G", "grant control (^G typing)"),
                ("q (demo)", "l leave it, e end it"),
                // The command line's words, from its table (see `entries`).
                (COMMAND_KEY, ""),
            ],
        ),
        (
            "Symbols: nodes, balancer",
            &[
                ("● ✗ ?", "healthy, failing, unknown"),
                ("■ ◌", "step-stopped, starting"),
                ("ro rw", "read-only, writable"),
                ("!", "LB row not as planned"),
                ("rej ✗N", "writes refused, N failed"),
            ],
        ),
    ],
];

/// The `:` key: its text is the command line's words, from `commands::COMMANDS`.
const COMMAND_KEY: &str = ":";

/// Room for a key's text in a help column.
pub const TEXT_WIDTH: usize = 25;

/// A column's groups as shown: each key with its text, the `:` key's spread over as many
/// lines as its words need (the later ones with no key).
pub fn entries(groups: &[Group]) -> Vec<(&'static str, Vec<(String, String)>)> {
    groups
        .iter()
        .map(|(group, keys)| {
            let mut rows = Vec::new();
            for (k, what) in *keys {
                if *k == COMMAND_KEY {
                    let words = COMMANDS.iter().map(|c| c.name.to_string());
                    for (i, line) in pack(words, " ", TEXT_WIDTH).into_iter().enumerate() {
                        let key = if i == 0 { COMMAND_KEY } else { "" };
                        rows.push((key.to_string(), line));
                    }
                } else {
                    rows.push((k.to_string(), what.to_string()));
                }
            }
            (*group, rows)
        })
        .collect()
}

fn column<'a>(groups: &[Group], theme: &Theme) -> Vec<Line<'a>> {
    let s = &theme.styles;
    let mut lines = Vec::new();
    for (group, keys) in entries(groups) {
        lines.push(Line::from(text(group, s.title)));
        for (k, what) in keys {
            lines.push(Line::from(vec![
                text(format!(" {}", fit(&k, 10)), s.key),
                text(what, s.base),
            ]));
        }
    }
    lines
}

pub fn render(frame: &mut Frame, area: Rect, view: &View, theme: &Theme) {
    if !matches!(view.overlay, Some(Overlay::Help)) {
        return;
    }
    let s = &theme.styles;
    let left = column(KEYS[0], theme);
    // A replay player has no driver keys; its own keys take their place.
    let right = if view.quiz.is_some() {
        column(&[("Replay", REPLAY_KEYS), ("Quiz", QUIZ_KEYS)], theme)
    } else if view.replay.is_some() {
        column(&[("Replay", REPLAY_KEYS)], theme)
    } else {
        column(KEYS[1], theme)
    };
    let h = left.len().max(right.len()) as u16 + 2;
    let rect = centered(area, 78, h);
    frame.render_widget(Clear, rect);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(s.border_focus)
        .title(Line::from(" Keys ").style(s.title))
        .title_bottom(Line::from(" ? or Esc closes ").style(s.muted));
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let [l, r] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(inner);
    frame.render_widget(
        Paragraph::new(left),
        l.inner(ratatui::layout::Margin::new(1, 0)),
    );
    frame.render_widget(
        Paragraph::new(right),
        r.inner(ratatui::layout::Margin::new(1, 0)),
    );
}

#[cfg(test)]
mod tests {
    use super::super::{nodes, procedure};
    use super::*;
    use crate::engine::state::StepStatus;

    /// The keys (symbols) of the help's groups whose title starts with `group`, each a word.
    fn legend(group: &str) -> Vec<&'static str> {
        KEYS.iter()
            .flat_map(|column| column.iter())
            .filter(|(title, _)| title.starts_with(group))
            .flat_map(|(_, keys)| keys.iter())
            .flat_map(|(key, _)| key.split_whitespace())
            .collect()
    }

    /// Every status a step can be in, so a new one cannot be drawn without a legend entry.
    fn every_status() -> [StepStatus; 10] {
        // Exhaustive on purpose: a new variant fails to compile here until listed below.
        match StepStatus::Pending {
            StepStatus::Pending
            | StepStatus::Awaiting
            | StepStatus::Running
            | StepStatus::Succeeded
            | StepStatus::Failed
            | StepStatus::Undoing
            | StepStatus::Undone
            | StepStatus::UndoFailed
            | StepStatus::Skipped
            | StepStatus::Interrupted => {}
        }
        [
            StepStatus::Pending,
            StepStatus::Awaiting,
            StepStatus::Running,
            StepStatus::Succeeded,
            StepStatus::Failed,
            StepStatus::Undoing,
            StepStatus::Undone,
            StepStatus::UndoFailed,
            StepStatus::Skipped,
            StepStatus::Interrupted,
        ]
    }

    /// The `?` help's legend names every mark the Procedure and Nodes panels draw (issue 14).
    #[test]
    fn the_legend_names_every_symbol_the_panels_draw() {
        let steps = legend("Symbols: steps");
        let mut marks: Vec<&str> = every_status().map(procedure::glyph).to_vec();
        marks.extend([
            procedure::WRITES_DOWN,
            procedure::FULL_DOWN,
            procedure::NO_RETURN,
        ]);
        for mark in marks {
            assert!(steps.contains(&mark), "{mark:?} is not in {steps:?}");
        }
        let nodes = legend("Symbols: nodes");
        for mark in [
            nodes::HEALTHY,
            nodes::FAILING,
            nodes::UNKNOWN,
            nodes::STOPPED_BY_STEP,
            nodes::STARTING,
        ] {
            assert!(nodes.contains(&mark), "{mark:?} is not in {nodes:?}");
        }
    }
}
