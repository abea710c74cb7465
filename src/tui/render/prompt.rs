//! Modals: the engine's prompt (run, undo, failed, interrupted) for the driver, and this
//! screen's own questions (skip, abort, quit, note).

use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::detail::action_lines;
use super::{centered, key, text};
use crate::engine::state::PromptKindTag;
use crate::plan::Confirm;
use crate::procedure::model::Downtime;
use crate::tui::theme::Theme;
use crate::tui::view::{Overlay, View};

const WIDTH: u16 = 68;

pub(super) fn modal<'a>(
    frame: &mut Frame,
    area: Rect,
    title: String,
    lines: Vec<Line<'a>>,
    theme: &Theme,
) -> Rect {
    let w = WIDTH.min(area.width.saturating_sub(4));
    // Wrapped lines may need more rows than there are lines; estimate generously.
    let inner_w = w.saturating_sub(4).max(1) as usize;
    let rows: usize = lines
        .iter()
        .map(|l| l.width().max(1).div_ceil(inner_w))
        .sum();
    // A long text wraps to more rows than a u16 holds: saturate rather than wrap around.
    let rows = u16::try_from(rows).unwrap_or(u16::MAX);
    let h = rows.saturating_add(2).min(area.height.saturating_sub(2));
    let rect = centered(area, w, h);
    frame.render_widget(Clear, rect);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_type(BorderType::Double)
        .border_style(theme.styles.prompt)
        .title(Line::from(title).style(theme.styles.prompt));
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let padded = Rect::new(
        inner.x + 1,
        inner.y,
        inner.width.saturating_sub(2),
        inner.height,
    );
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), padded);
    padded
}

pub fn render(frame: &mut Frame, area: Rect, view: &View, theme: &Theme) {
    match &view.overlay {
        Some(Overlay::Help) => {}
        Some(o) => local(frame, area, view, o, theme),
        None => engine_prompt(frame, area, view, theme),
    }
}

fn engine_prompt(frame: &mut Frame, area: Rect, view: &View, theme: &Theme) {
    let s = &theme.styles;
    let st = &view.state;
    let Some(prompt) = st.prompt.filter(|_| view.prompt_visible()) else {
        return;
    };
    let (Some(p), Some(r)) = (st.plan.steps.get(prompt.step), st.steps.get(prompt.step)) else {
        return;
    };
    let k = prompt.step + 1;
    let mut lines: Vec<Line> = Vec::new();
    let mut phrase_input = None;
    let title;
    match prompt.kind {
        PromptKindTag::Run => {
            title = format!(" Run step {k}? ");
            let yn = if st.awaits_choice(prompt.step) {
                " [r/s]"
            } else if matches!(p.confirm, Confirm::Phrase { .. }) {
                ""
            } else {
                " [y/N]"
            };
            lines.push(Line::from(text(
                format!("Run step {k}: {}?{yn}", p.title),
                s.title,
            )));
            for l in action_lines("  ", &p.action) {
                lines.push(Line::from(text(l, s.accent)));
            }
            match p.downtime {
                Downtime::None => {}
                Downtime::Writes => lines.push(Line::from(text(
                    format!("  {}", writes_truth(view, prompt.step)),
                    s.downtime_writes,
                ))),
                Downtime::Full => lines.push(Line::from(text(
                    "  FULL DOWNTIME: nothing is served while this runs",
                    s.downtime_full,
                ))),
            }
            if let Some(why) = &p.irreversible {
                lines.push(Line::from(text(
                    format!("  ◆ POINT OF NO RETURN: {why}"),
                    s.no_return,
                )));
            }
            if p.approvals > 1 {
                let got = if r.approvals.is_empty() {
                    "approved by: nobody yet".to_string()
                } else {
                    format!("approved by: {}", r.approvals.join(", "))
                };
                let missing = (p.approvals as usize).saturating_sub(r.approvals.len());
                let wait = match missing {
                    0 => String::new(),
                    1 if !r.approvals.is_empty() => "; waiting for a second operator".into(),
                    n => format!("; waiting for {n} more operators"),
                };
                lines.push(Line::from(text(format!("{got}{wait}"), s.warn)));
            }
            // What the prompt covers on screen: the previous step's result and this step's
            // runbook text.
            let mut context = Vec::new();
            if let Some(last) = last_result(view, prompt.step) {
                context.push(Line::from(text(last, s.muted)));
            }
            if !p.runbook.trim().is_empty() {
                context.push(Line::from(text(
                    format!("runbook: {}", p.runbook.trim()),
                    s.muted,
                )));
            }
            match &p.confirm {
                _ if st.awaits_choice(prompt.step) => {
                    let why = p.optional.as_ref().map_or("", |o| o.why.as_str());
                    lines.push(Line::from(text(format!("Optional — {why}"), s.prompt)));
                    lines.extend(context);
                    lines.push(key_line(
                        &[("r", "run it"), ("s", "skip it"), ("Esc", "hold")],
                        theme,
                    ));
                }
                Confirm::Phrase { phrase } => {
                    lines.push(Line::from(vec![
                        text("Type `", s.base),
                        text(phrase.clone(), s.prompt),
                        text("` to run", s.base),
                    ]));
                    lines.push(Line::from(""));
                    phrase_input = Some(lines.len() - 1);
                    lines.push(key_line(&[("Enter", "confirm"), ("Esc", "hold")], theme));
                    // Below the input: wrapped text above it would move its row.
                    lines.extend(context);
                }
                _ => {
                    lines.extend(context);
                    lines.push(key_line(
                        &[("y", "run"), ("Esc", "hold"), ("n", "note")],
                        theme,
                    ));
                }
            }
        }
        PromptKindTag::Undo => {
            title = format!(" Undo step {k}? ");
            lines.push(Line::from(text(
                format!("Undo step {k}: {}? [y/N]", p.title),
                s.title,
            )));
            match &p.undo {
                Some(u) => {
                    for l in action_lines("  ", u) {
                        lines.push(Line::from(text(l, s.accent)));
                    }
                }
                None => lines.push(Line::from(text("  no undo action", s.warn))),
            }
            lines.push(key_line(&[("y", "undo"), ("Esc", "hold")], theme));
        }
        PromptKindTag::Failed => {
            title = format!(" Step {k} failed ");
            lines.push(Line::from(text(
                format!("Step {k} failed: {}", p.title),
                s.error,
            )));
            if let Some(d) = &r.detail {
                lines.push(Line::from(text(format!("  {d}"), s.base)));
            }
            runbook_and_way_back(&mut lines, view, prompt.step, theme);
            // Only keys the engine will accept: `u` only when this step can be undone.
            let mut keys = vec![("r", "retry"), ("d", "mark done")];
            if st.undo_refusal(prompt.step).is_none() {
                keys.push(("u", "undo"));
            }
            keys.extend([("s", "skip"), ("a", "abort"), ("Esc", "hold")]);
            lines.push(key_line(&keys, theme));
        }
        PromptKindTag::Interrupted => {
            title = format!(" Step {k} was interrupted ");
            lines.push(Line::from(text(
                format!("Step {k} was running when the session stopped: {}", p.title),
                s.error,
            )));
            if let Some(d) = &r.detail {
                lines.push(Line::from(text(format!("  {d}"), s.base)));
            }
            runbook_and_way_back(&mut lines, view, prompt.step, theme);
            match st.orphan.filter(|(o, _)| *o == prompt.step) {
                Some((_, pgid)) => {
                    lines.push(Line::from(text(
                        format!(
                            "Its command is still running (process group {pgid}): wait for it \
                             to end, or kill it."
                        ),
                        s.warn,
                    )));
                    lines.push(key_line(&[("K", "kill it"), ("a", "abort")], theme));
                }
                None => {
                    lines.push(Line::from(text(
                        "Check the system, then say what happened:",
                        s.base,
                    )));
                    let mut keys = vec![("r", "re-run"), ("d", "mark done")];
                    if st.undo_refusal(prompt.step).is_none() {
                        keys.push(("u", "undo"));
                    }
                    keys.push(("a", "abort"));
                    lines.push(key_line(&keys, theme));
                }
            }
        }
    }
    // Another operator waiting for control must not hide behind the prompt.
    if let Some((_, name)) = &st.control_request {
        let grant = if phrase_input.is_some() {
            "Ctrl-G"
        } else {
            "g"
        };
        lines.push(Line::from(vec![
            text(format!("{name} asks for control: "), s.warn),
            key(grant, theme),
            text(" grants", s.muted),
        ]));
    }
    let inner = modal(frame, area, title, lines, theme);
    if let (Some(row), Some(shown)) = (phrase_input, &view.prompt) {
        input_row(frame, inner, row, &shown.phrase, theme);
    }
}

/// What is true about writes for a step with write downtime: refused since an earlier step
/// (and for how long), or refused from this step on.
pub fn writes_truth(view: &View, step: usize) -> String {
    let st = &view.state;
    let Some(since) = st.read_only.since else {
        return "writes are refused from this step on".into();
    };
    // The step that took writes down: the latest one with write downtime that had started
    // when the nodes turned read-only.
    let by = st
        .plan
        .steps
        .iter()
        .zip(&st.steps)
        .enumerate()
        .take(step)
        .filter(|(_, (p, r))| {
            p.downtime != Downtime::None && r.started_ms.is_some_and(|t| t <= since)
        })
        .map(|(i, (p, _))| (i, p.title.as_str()))
        .next_back();
    let down = super::fmt_dur(st.read_only.total_at(view.now_ms));
    match by {
        Some((i, title)) => {
            format!(
                "writes refused since step {} ({title}), {down} so far",
                i + 1
            )
        }
        None => format!("writes refused (nodes read-only), {down} so far"),
    }
}

/// The result of the step before `step` that last ran: what the operator saw before this
/// prompt covered the detail panel.
fn last_result(view: &View, step: usize) -> Option<String> {
    let st = &view.state;
    let (i, r) = st
        .steps
        .iter()
        .enumerate()
        .take(step)
        .filter(|(_, r)| r.finished_ms.is_some())
        .max_by_key(|(_, r)| r.finished_ms)?;
    let detail = r.detail.as_deref().unwrap_or("");
    let sep = if detail.is_empty() { "" } else { ": " };
    Some(format!(
        "before: step {} {}{sep}{detail}",
        i + 1,
        r.status.label()
    ))
}

/// A failed or interrupted step: its runbook text and the way back that is still open.
fn runbook_and_way_back(lines: &mut Vec<Line>, view: &View, step: usize, theme: &Theme) {
    let s = &theme.styles;
    let st = &view.state;
    if let Some(p) = st
        .plan
        .steps
        .get(step)
        .filter(|p| !p.runbook.trim().is_empty())
    {
        lines.push(Line::from(text(
            format!("runbook: {}", p.runbook.trim()),
            s.muted,
        )));
    }
    // Steps a rollback would really undo: done (or failed) and with an undo action.
    let done = st
        .plan
        .steps
        .iter()
        .zip(&st.steps)
        .filter(|(p, r)| r.status.has_effects() && p.undo.is_some())
        .count();
    let way_back = match st.point_of_no_return() {
        Some(k) => format!(
            "past the point of no return (step {}): fix forward, or roll back to step {} only",
            k + 1,
            k + 2
        ),
        None if done > 0 => format!(
            "the way back: a then r undoes {done} step{} in reverse order",
            if done == 1 { "" } else { "s" }
        ),
        None => "nothing to undo so far: a then k stops here".into(),
    };
    lines.push(Line::from(text(way_back, s.warn)));
}

/// Draw a text input on row `row` of `inner`, and put the terminal cursor in it.
fn input_row(frame: &mut Frame, inner: Rect, row: usize, input: &tui_input::Input, theme: &Theme) {
    let y = inner.y + row as u16;
    if y >= inner.y + inner.height {
        return;
    }
    let width = inner.width.saturating_sub(2).max(1);
    let scroll = input.visual_scroll(width as usize);
    let rect = Rect::new(inner.x, y, inner.width, 1);
    let shown: String = input.value().chars().skip(scroll).collect();
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            text("> ", theme.styles.prompt),
            text(shown, theme.styles.selected),
        ])),
        rect,
    );
    let cx = inner.x + 2 + (input.visual_cursor().saturating_sub(scroll)) as u16;
    frame.set_cursor_position((cx.min(inner.x + inner.width.saturating_sub(1)), y));
}

fn local(frame: &mut Frame, area: Rect, view: &View, overlay: &Overlay, theme: &Theme) {
    let s = &theme.styles;
    let st = &view.state;
    match overlay {
        // The filter line lives in the footer.
        Overlay::Help | Overlay::Filter(_) => {}
        Overlay::ConfirmSkip { step } => {
            let t = st
                .plan
                .steps
                .get(*step)
                .map(|p| p.title.clone())
                .unwrap_or_default();
            let lines = vec![
                Line::from(text(
                    format!("Skip step {}: {t}? [y/N]", step + 1),
                    s.prompt,
                )),
                Line::from(text(
                    "Skipping means its effects never happen; later steps may rely on them.",
                    s.muted,
                )),
            ];
            modal(frame, area, " Skip ".into(), lines, theme);
        }
        Overlay::AbortChoice => {
            // With --yes the undos are confirmed by the policy, not by a person: say so.
            let how = if st.auto.yes {
                " = roll back (undos confirmed automatically: --yes)"
            } else {
                " = roll back, each undo confirmed"
            };
            let mut lines = vec![Line::from(text("Abort the procedure?", s.prompt))];
            // What the abort stops first, when a step is running (the engine cancels it).
            if let Some((i, p)) = st
                .running()
                .and_then(|i| st.plan.steps.get(i).map(|p| (i, p)))
            {
                let what = match &p.action {
                    crate::procedure::model::Action::Wait(_) => "its gate is cancelled",
                    crate::procedure::model::Action::Run { .. } => {
                        "its command is asked to stop (SIGTERM to its process group, SIGKILL \
                         after 5 s)"
                    }
                    _ => "it is cancelled",
                };
                lines.push(Line::from(text(
                    format!("    step {} {} is running: {what}", i + 1, p.title),
                    s.warn,
                )));
            }
            lines.push(Line::from(vec![key("r", theme), text(how, s.base)]));
            let (undo, nothing) = rollback_summary(view);
            let refused = st.no_return(view.now_ms).is_some();
            if undo.is_empty() {
                lines.push(Line::from(text("    nothing to undo", s.muted)));
            } else {
                lines.push(Line::from(text(
                    format!(
                        "    {}undoes, in order: {}",
                        if refused { "o " } else { "" },
                        undo.join(", ")
                    ),
                    s.base,
                )));
            }
            if !nothing.is_empty() {
                lines.push(Line::from(text(
                    format!(
                        "    pass without a prompt (nothing to undo): {}",
                        nothing.join(", ")
                    ),
                    s.muted,
                )));
            }
            // Past the point of no return the engine refuses `r`: say so here, with what a
            // rollback would lose, and how to override it.
            if let Some(nr) = st.no_return(view.now_ms) {
                lines.push(Line::from(text(
                    format!("    REFUSED: {}", nr.loss),
                    s.error,
                )));
                lines.push(Line::from(vec![
                    key("o", theme),
                    text(
                        format!(" = roll back anyway: type `{}` and why", nr.phrase),
                        s.base,
                    ),
                ]));
            }
            lines.push(Line::from(vec![
                key("k", theme),
                text(" = keep as is", s.base),
            ]));
            lines.push(Line::from(vec![
                key("Esc", theme),
                text(" = cancel", s.base),
            ]));
            modal(frame, area, " Abort ".into(), lines, theme);
        }
        Overlay::AbortReason { rollback, input } => {
            let what = if *rollback {
                "Abort and roll back"
            } else {
                "Abort, keeping what was done"
            };
            // One short line above the input row: a wrapped one would run under it.
            let lines = vec![
                Line::from(text(format!("{what}: why?"), s.prompt)),
                Line::from(""),
                Line::from(text(
                    "Journaled with your name, and in the report. Enter alone: no reason.",
                    s.muted,
                )),
                key_line(&[("Enter", "abort"), ("Esc", "back")], theme),
            ];
            let inner = modal(frame, area, " Abort ".into(), lines, theme);
            input_row(frame, inner, 1, input, theme);
        }
        Overlay::ConfirmQuit => {
            let lines = vec![
                Line::from(text(
                    "A step is running. Leave the cockpit? [y/N]",
                    s.prompt,
                )),
                // The cockpit cannot tell a session server from a --foreground run, and
                // only the former outlives it: say what happens in each.
                Line::from(text(
                    "Leaving never aborts. A session server goes on without you \
                     (flightdeck join); a --foreground run stops here and its running \
                     step is left interrupted (flightdeck resume).",
                    s.muted,
                )),
            ];
            modal(frame, area, " Leave ".into(), lines, theme);
        }
        Overlay::RollbackOverride { phrase, input } => {
            let loss = st
                .no_return(view.now_ms)
                .map(|nr| nr.loss)
                .unwrap_or_default();
            let lines = vec![
                Line::from(text(
                    format!("Roll back past the point of no return: type `{phrase}`, then why"),
                    s.prompt,
                )),
                Line::from(""),
                Line::from(text(loss, s.error)),
                Line::from(text(
                    "Journaled with your name and reason; the rollback then undoes every step.",
                    s.muted,
                )),
                key_line(&[("Enter", "roll back anyway"), ("Esc", "cancel")], theme),
            ];
            let inner = modal(
                frame,
                area,
                " Past the point of no return ".into(),
                lines,
                theme,
            );
            input_row(frame, inner, 1, input, theme);
        }
        Overlay::Choose {
            step,
            choice,
            reason,
            ..
        } => {
            let t = st
                .plan
                .steps
                .get(*step)
                .map(|p| p.title.clone())
                .unwrap_or_default();
            let verb = match choice {
                crate::procedure::model::OptionalChoice::Run => "Run",
                crate::procedure::model::OptionalChoice::Skip => "Skip",
            };
            let lines = vec![
                Line::from(text(format!("{verb} step {}: {t}", step + 1), s.prompt)),
                Line::from(text("Why? (journaled with your name)", s.base)),
                Line::from(""),
                key_line(&[("Enter", "record the choice"), ("Esc", "back")], theme),
            ];
            let inner = modal(frame, area, format!(" {verb} "), lines, theme);
            input_row(frame, inner, 2, reason, theme);
        }
        Overlay::LeaveDemo => {
            let name = view.demo.as_deref().unwrap_or("");
            let lines = vec![
                Line::from(text("The demo is not finished. Leave it?", s.prompt)),
                Line::from(""),
                Line::from(vec![
                    key("l", theme),
                    text(
                        format!(
                            " = leave: the session and its lab keep running; come back \
                             with flightdeck join {name}"
                        ),
                        s.base,
                    ),
                ]),
                Line::from(vec![
                    key("e", theme),
                    text(
                        " = end the demo: the session ends (aborted, nothing rolled back) \
                         and the lab stops",
                        s.base,
                    ),
                ]),
                Line::from(vec![key("Esc", theme), text(" = stay", s.base)]),
            ];
            modal(frame, area, " Leave the demo ".into(), lines, theme);
        }
        Overlay::Command(input) => {
            // Every command's usage, from the command line's table, packed into lines that
            // fit the dialog on the smallest screen; the line typed goes under them.
            let usages = crate::tui::commands::COMMANDS.iter().map(|c| c.usage());
            let room = usize::from(WIDTH.min(area.width.saturating_sub(4)).saturating_sub(4));
            let mut lines: Vec<Line> = crate::tui::commands::pack(usages, " · ", room)
                .into_iter()
                .map(|l| Line::from(text(l, s.muted)))
                .collect();
            let typed_row = lines.len();
            lines.push(Line::from(""));
            lines.push(key_line(&[("Enter", "run"), ("Esc", "cancel")], theme));
            let inner = modal(frame, area, " : ".into(), lines, theme);
            input_row(frame, inner, typed_row, input, theme);
        }
        Overlay::Note(input) => {
            let lines = vec![
                Line::from(text("Note for the journal:", s.prompt)),
                Line::from(""),
                key_line(&[("Enter", "save"), ("Esc", "cancel")], theme),
            ];
            let inner = modal(frame, area, " Note ".into(), lines, theme);
            input_row(frame, inner, 1, input, theme);
        }
        Overlay::TakeControl(input) => {
            let driver = st.driver().map_or("nobody", |d| d.name.as_str());
            let lines = vec![
                Line::from(text(
                    format!("Take control from {driver}: why? (journaled)"),
                    s.prompt,
                )),
                Line::from(""),
                Line::from(text(
                    "The session's owner may at any time; anyone else once the driver's \
                     client has been silent for the takeover delay.",
                    s.muted,
                )),
                key_line(&[("Enter", "take control"), ("Esc", "cancel")], theme),
            ];
            let inner = modal(frame, area, " Take control ".into(), lines, theme);
            input_row(frame, inner, 1, input, theme);
        }
        Overlay::RemoveOperator { chosen: None } => {
            let mut lines = vec![Line::from(text(
                "Remove which operator? (the session's owner only)",
                s.prompt,
            ))];
            for (i, o) in crate::tui::input::others(view).iter().take(9).enumerate() {
                let role = if o.driver { "drives" } else { "watches" };
                lines.push(Line::from(vec![
                    text(format!(" {}", i + 1), s.key),
                    text(format!(" {} ({}) · {role}", o.name, o.user), s.base),
                ]));
            }
            lines.push(key_line(&[("1-9", "choose"), ("Esc", "cancel")], theme));
            modal(frame, area, " Remove ".into(), lines, theme);
        }
        Overlay::RemoveOperator { chosen: Some(id) } => {
            let who = st
                .operators
                .iter()
                .find(|o| o.id == *id)
                .map_or_else(|| format!("operator {id}"), |o| o.name.clone());
            let lines = vec![
                Line::from(text(format!("Remove {who}? [y/N]"), s.prompt)),
                Line::from(text(
                    "Their connection closes and their user cannot join this session again \
                     (journaled).",
                    s.muted,
                )),
            ];
            modal(frame, area, " Remove ".into(), lines, theme);
        }
    }
}

/// What a full rollback would undo, in the engine's order (`[rollback] undo_first` steps
/// first, then the rest, each latest first; past the point of no return, what an override
/// would undo), as step numbers; and the steps with effects but no undo action, which it
/// passes.
pub fn rollback_summary(view: &View) -> (Vec<String>, Vec<String>) {
    let st = &view.state;
    let floor = st
        .rollback_floor()
        .filter(|_| st.no_return(view.now_ms).is_none());
    let mut order: Vec<usize> = (0..st.steps.len())
        .rev()
        .filter(|&i| st.steps[i].status.has_effects() && floor.is_none_or(|f| i > f))
        .collect();
    // A stable sort keeps latest-first within each group.
    order.sort_by_key(|&i| !st.plan.undoes_first(i));
    let (mut undo, mut nothing) = (Vec::new(), Vec::new());
    for i in order {
        match st.plan.steps.get(i) {
            Some(p) if p.undo.is_some() => undo.push(format!("{}", i + 1)),
            Some(_) => nothing.push(format!("{}", i + 1)),
            None => {}
        }
    }
    (undo, nothing)
}

/// `y run  Esc hold`: keys and what they do, in the modal's hint style.
fn key_line<'a>(pairs: &[(&'a str, &'a str)], theme: &Theme) -> Line<'a> {
    let mut spans = Vec::with_capacity(pairs.len() * 2);
    for (i, (k, label)) in pairs.iter().enumerate() {
        spans.push(key(k, theme));
        let sep = if i + 1 < pairs.len() { "  " } else { "" };
        spans.push(text(format!(" {label}{sep}"), theme.styles.muted));
    }
    Line::from(spans)
}
