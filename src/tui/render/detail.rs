//! The selected step in full: runbook, the exact action and its undo (secrets and credentials
//! masked), why it is irreversible, the gate's progress, the last verdict.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::{fmt_dur, panel, text};
use crate::engine::state::StepStatus;
use crate::plan::Confirm;
use crate::procedure::model::{Action, Check, Downtime, WaitSpec};
use crate::tui::theme::Theme;
use crate::tui::view::{Panel, Scroll, View};

/// Quote one argument the way a POSIX shell would need it (for display only: actions are run
/// with an argv, never through a shell).
pub fn shell_quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if safe {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

pub fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Header values that must never reach the screen (credentials, unexpanded secrets).
fn masked(name: &str, value: &str) -> bool {
    let n = name.to_ascii_lowercase();
    value.contains("${secret.")
        || [
            "authorization",
            "token",
            "secret",
            "password",
            "cookie",
            "api-key",
            "apikey",
        ]
        .iter()
        .any(|k| n.contains(k))
}

/// Any `${secret.NAME}` left in free text (argv, URL, body) shown as `****`.
fn mask_secrets(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${secret.") {
        out.push_str(&rest[..i]);
        match rest[i..].find('}') {
            Some(j) => {
                out.push_str("****");
                rest = &rest[i + j + 1..];
            }
            None => {
                out.push_str("****");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn wait_line(w: &WaitSpec) -> String {
    let what = match (&w.probe, &w.check) {
        (Some(p), _) => format!("probe {p}"),
        (None, Some(Check::Http(h))) => format!("{} {}", h.method, mask_secrets(&h.url)),
        (None, Some(Check::Tcp { address, .. })) => format!("tcp {address}"),
        (None, Some(Check::Run { argv, .. })) => mask_secrets(&shell_line(argv)),
        (None, None) => "?".into(),
    };
    let on = w
        .nodes
        .as_deref()
        .map(|n| format!(" on {n}"))
        .unwrap_or_default();
    format!(
        "{what}{on}, stable {}s (timeout {}s)",
        w.stable_secs, w.timeout_secs
    )
}

/// An action as lines of text, the first prefixed with `label`.
pub fn action_lines(label: &str, action: &Action) -> Vec<String> {
    let pad = " ".repeat(label.chars().count());
    let mut out = Vec::new();
    match action {
        Action::Manual { text } => out.push(format!("{label}by hand: {text}")),
        Action::Run {
            argv,
            env,
            stdin,
            cwd,
            ..
        } => {
            out.push(format!("{label}$ {}", mask_secrets(&shell_line(argv))));
            for (k, v) in env {
                let v = if masked(k, v) {
                    "****".into()
                } else {
                    shell_quote(v)
                };
                out.push(format!("{pad}  env {k}={v}"));
            }
            if let Some(text) = stdin {
                out.push(format!("{pad}  stdin {}", mask_secrets(&shell_quote(text))));
            }
            if let Some(c) = cwd {
                out.push(format!("{pad}  in {c}"));
            }
        }
        Action::Http(h) => {
            out.push(format!("{label}{} {}", h.method, mask_secrets(&h.url)));
            for (k, v) in &h.headers {
                let v = if masked(k, v) {
                    "****".to_string()
                } else {
                    v.clone()
                };
                out.push(format!("{pad}  {k}: {v}"));
            }
            if let Some(b) = &h.body {
                out.push(format!("{pad}  body {}", mask_secrets(b)));
            }
        }
        Action::Lb {
            node,
            state,
            weight,
        } => {
            let w = weight.map(|w| format!(" (weight {w})")).unwrap_or_default();
            out.push(format!("{label}load balancer: {node} → {state}{w}"));
        }
        Action::Wait(w) => out.push(format!("{label}wait for {}", wait_line(w))),
        Action::Call { name, args } => {
            let a: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push(format!("{label}call {name}({})", a.join(", ")));
        }
    }
    out
}

/// Rows the detail panel would like at `width` columns (borders included), to give the
/// rest of the column to the output.
pub fn wanted_height(view: &View, theme: &Theme, width: u16) -> u16 {
    let inner = width.saturating_sub(2).max(1) as usize;
    let rows: usize = lines(view, theme)
        .iter()
        .map(|l| l.width().max(1).div_ceil(inner))
        .sum();
    (rows.max(1) as u16).saturating_add(2)
}

pub fn render(frame: &mut Frame, area: Rect, view: &View, theme: &Theme) {
    let st = &view.state;
    let focused = view.focus == Panel::Detail;
    let title = match view
        .detail_step()
        .and_then(|i| st.plan.steps.get(i).map(|p| (i, p)))
    {
        Some((i, p)) => format!(" Step {} · {} ", i + 1, p.title),
        None => " Step ".to_string(),
    };
    let block = panel(title, focused, theme);
    // Never scroll past the last line.
    let max = wanted_height(view, theme, area.width).saturating_sub(area.height);
    let scroll = match view.detail_scroll {
        Scroll::Follow => 0,
        Scroll::At(n) => n.min(max as usize) as u16,
    };
    frame.render_widget(
        Paragraph::new(lines(view, theme))
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        area,
    );
}

fn lines<'a>(view: &View, theme: &Theme) -> Vec<Line<'a>> {
    let s = &theme.styles;
    let st = &view.state;
    let Some(i) = view.detail_step() else {
        return vec![Line::from(text("no steps", s.muted))];
    };
    let (Some(p), Some(r)) = (st.plan.steps.get(i), st.steps.get(i)) else {
        return Vec::new();
    };
    let mut lines: Vec<Line> = Vec::new();
    let label = |l: &'static str| text(l, s.muted);
    if !p.runbook.is_empty() {
        lines.push(Line::from(text(p.runbook.clone(), s.base)));
    }
    for l in action_lines("do   ", &p.action) {
        lines.push(Line::from(text(l, s.accent)));
    }
    match &p.undo {
        Some(u) => {
            for l in action_lines("undo ", u) {
                lines.push(Line::from(text(l, s.base)));
            }
        }
        None => lines.push(Line::from(vec![label("undo "), text("no undo", s.warn)])),
    }
    if let Some(why) = &p.irreversible {
        lines.push(Line::from(text(
            format!("◆ irreversible: {why}"),
            s.downtime_full,
        )));
    }
    let mut facts = Vec::new();
    match p.downtime {
        Downtime::None => {}
        Downtime::Writes => facts.push(text("downtime: writes", s.downtime_writes)),
        Downtime::Full => facts.push(text("downtime: FULL", s.downtime_full)),
    }
    let confirm = match &p.confirm {
        Confirm::None => "none".to_string(),
        Confirm::Yes => "y/N".to_string(),
        Confirm::Phrase { phrase } => format!("type `{phrase}`"),
    };
    if !facts.is_empty() {
        facts.push(label(" · "));
    }
    facts.push(label("confirm: "));
    facts.push(text(confirm, s.base));
    if p.approvals > 1 {
        facts.push(label(" · "));
        facts.push(text(
            format!("{} operators must approve", p.approvals),
            s.warn,
        ));
    }
    facts.push(label(" · "));
    facts.push(text(p.key.clone(), s.muted));
    lines.push(Line::from(facts));
    lines.push(status_line(view, i, theme));
    if let Some(g) = &r.gate {
        lines.push(Line::from(vec![
            label("gate "),
            text(
                format!(
                    "{}/{} passing · stable {} of {}",
                    g.passing,
                    g.total,
                    fmt_dur(g.stable_ms),
                    fmt_dur(g.need_ms)
                ),
                if g.passing == g.total { s.ok } else { s.warn },
            ),
        ]));
    }
    if let Some(d) = &r.detail {
        let style = match r.status {
            StepStatus::Failed | StepStatus::UndoFailed | StepStatus::Interrupted => s.error,
            _ => s.base,
        };
        lines.push(Line::from(vec![label("last "), text(d.clone(), style)]));
    }
    if !r.approvals.is_empty() {
        lines.push(Line::from(vec![
            label("approved by "),
            text(r.approvals.join(", "), s.ok),
        ]));
    }
    lines
}

fn status_line<'a>(view: &View, i: usize, theme: &Theme) -> Line<'a> {
    let s = &theme.styles;
    let Some(r) = view.state.steps.get(i) else {
        return Line::default();
    };
    let style: Style = super::procedure::status_style(r.status, theme);
    let mut spans = vec![text("status ", s.muted), text(r.status.label(), style)];
    match (r.status, r.started_ms, r.finished_ms) {
        (StepStatus::Running | StepStatus::Undoing, Some(start), _) => {
            spans.push(text(
                format!(" for {}", fmt_dur(view.now_ms.saturating_sub(start))),
                s.active,
            ));
        }
        // A step offered again (after an undo) has not run this time: no duration yet.
        (StepStatus::Pending | StepStatus::Awaiting, _, _) => {}
        (_, _, Some(_)) if r.run_ms > 0 => {
            spans.push(text(format!(" in {}", fmt_dur(r.run_ms)), s.muted));
        }
        _ => {}
    }
    if r.attempts > 1 {
        spans.push(text(format!(" · attempt {}", r.attempts), s.warn));
    }
    if !r.confirmed_by.is_empty() {
        spans.push(text(
            format!(" · confirmed by {}", r.confirmed_by.join(", ")),
            s.muted,
        ));
    }
    Line::from(spans)
}
