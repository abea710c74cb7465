//! One row per node: name, role, version (old or new), health, read-only, LB membership,
//! last latency and a latency sparkline.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::{fit, panel, text, truncate};
use crate::engine::state::NodeView;
use crate::procedure::model::Membership;
use crate::tui::theme::Theme;
use crate::tui::view::View;

/// The marks the Nodes panel draws; the `?` help's legend names each (`help::tests`).
pub const HEALTHY: &str = "●";
pub const FAILING: &str = "✗";
pub const UNKNOWN: &str = "?";
/// A node down because a step of the procedure stopped it.
pub const STOPPED_BY_STEP: &str = "■";
pub const STARTING: &str = "◌";

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The last `width` samples as bar characters scaled to the largest shown.
pub fn sparkline(samples: impl IntoIterator<Item = u64>, width: usize) -> String {
    let all: Vec<u64> = samples.into_iter().collect();
    let shown = &all[all.len().saturating_sub(width)..];
    let max = shown.iter().copied().max().unwrap_or(0).max(1);
    shown
        .iter()
        .map(|v| {
            let i = (v.saturating_mul(7) / max) as usize;
            BARS[i.min(7)]
        })
        .collect()
}

/// One node's problem as the product reports it, for the lines under the table.
pub struct Problem {
    pub node: String,
    pub text: String,
    /// Down with no step of the procedure to explain it (a crash, other hands).
    pub unexpected: bool,
    /// Put there by a step of the procedure (drawn quieter than a failure).
    pub planned: bool,
    /// On its way up (`starting`): not a failure yet.
    pub starting: bool,
}

/// Every node's problem: the product's state and its own reason first (`failed: store
/// migration from format 8001 to 8002 failed`), else the failing health check's detail.
/// Unexpected ones first, then failures, then nodes a step stopped on purpose.
pub fn problems(view: &View) -> Vec<Problem> {
    let st = &view.state;
    let mut out: Vec<Problem> = st
        .nodes
        .iter()
        .filter_map(|n| {
            // Most nodes have no problem: their name is not copied.
            let name = || n.node.name.clone();
            let state = n.state().filter(|s| *s != "running");
            let by = n.state_change.as_ref().and_then(|c| c.by_step);
            match state {
                Some(state) => {
                    let mut text = state.to_string();
                    if n.unexpectedly_down() {
                        text.push_str(" — unexpected, no step did this");
                    } else if let Some(step) = by {
                        text.push_str(&format!(" by step {}", step + 1));
                    }
                    if let Some(r) = n.reason() {
                        text.push_str(&format!(": {r}"));
                    } else if n.health == Some(false) && !n.health_detail.is_empty() {
                        text.push_str(&format!(" ({})", n.health_detail));
                    }
                    let failed = crate::engine::state::DOWN_STATES
                        .iter()
                        .any(|d| *d == state && *d != "stopped");
                    Some(Problem {
                        node: name(),
                        text,
                        unexpected: n.unexpectedly_down(),
                        planned: by.is_some() && !failed,
                        starting: state == "starting",
                    })
                }
                None if n.health == Some(false) => Some(Problem {
                    node: name(),
                    text: if n.health_detail.is_empty() {
                        "failing".to_string()
                    } else {
                        n.health_detail.clone()
                    },
                    unexpected: false,
                    planned: false,
                    starting: false,
                }),
                None => None,
            }
        })
        .collect();
    out.sort_by_key(|p| (!p.unexpected, p.planned || p.starting));
    out
}

/// How many node rows the panel drawn in `area` has room for: inside its border, under the
/// column names. The rows are the first nodes of the session, in order.
pub fn rows_shown(area: Rect) -> usize {
    (area.height as usize).saturating_sub(2 + 1)
}

/// The panel, with every node's problem under the table (`problems`).
pub fn render(frame: &mut Frame, area: Rect, view: &View, theme: &Theme, problems: &[Problem]) {
    let s = &theme.styles;
    let st = &view.state;
    let title = match problems.len() {
        0 => " Nodes ".to_string(),
        1 => " Nodes · 1 problem ".to_string(),
        n => format!(" Nodes · {n} problems "),
    };
    let block = panel(title, false, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // The columns fit the rows shown (the first nodes), not every node of the session.
    let shown = &st.nodes[..rows_shown(area).min(st.nodes.len())];
    let name_w = shown
        .iter()
        .map(|n| n.node.name.width())
        .max()
        .unwrap_or(4)
        .clamp(4, 16);
    let ver_w = shown
        .iter()
        .filter_map(|n| n.version().map(|v| v.width()))
        .max()
        .unwrap_or(7)
        .clamp(7, 12);
    let width = inner.width as usize;
    // Everything but the role has a fixed width; the role gets what is left, up to its
    // longest value, and the sparkline takes the rest.
    let fixed = 1 + name_w + 1 + 1 + ver_w + 1 + 2 + 1 + 2 + 1 + 5 + 1 + 6 + 1;
    let longest_role = shown
        .iter()
        .map(|n| n.role().map_or(1, |r| r.width()))
        .max()
        .unwrap_or(4)
        .max(4);
    let role_w = width.saturating_sub(fixed).clamp(4, longest_role);
    let spark_w = width.saturating_sub(fixed + role_w).min(30);
    let mut lines = vec![Line::from(text(
        format!(
            " {} {} {} {} {} {} {}",
            fit("node", name_w),
            fit("role", role_w),
            fit("version", ver_w),
            "ok",
            "rw",
            fit("lb", 5),
            fit("ms", 6),
        ),
        s.muted,
    ))];
    // Only the rows that fit are built (at 1,000 nodes a frame shows a few dozen), and each
    // finds its balancer membership in the state's index, not by searching every backend.
    for n in shown {
        let lb = st.backend_of(&n.node.name).map(|b| b.membership);
        lines.push(row(view, n, lb, theme, name_w, role_w, ver_w, spark_w));
    }
    // Rows left over under the table say why each node is down, every node: when they do
    // not all fit, the last row shows the next one shortened, then counts and names the rest.
    let room = (inner.height as usize).saturating_sub(lines.len());
    let full = if problems.len() > room {
        room.saturating_sub(1)
    } else {
        problems.len()
    };
    let line_of = |p: &Problem| {
        let (mark, style) = if p.planned {
            (STOPPED_BY_STEP, s.muted)
        } else if p.starting {
            (STARTING, s.warn)
        } else {
            (FAILING, s.error)
        };
        (format!(" {mark} {}: {}", p.node, p.text), style)
    };
    for p in &problems[..full] {
        let (t, style) = line_of(p);
        lines.push(Line::from(text(truncate(&t, width), style)));
    }
    if full < problems.len() && room > 0 {
        let (t, style) = line_of(&problems[full]);
        let rest: Vec<&str> = problems[full + 1..]
            .iter()
            .map(|p| p.node.as_str())
            .collect();
        let more = format!(" · +{} more: {}", rest.len(), rest.join(", "));
        let keep = width.saturating_sub(more.width());
        lines.push(Line::from(vec![
            text(truncate(&t, keep), style),
            text(truncate(&more, width.saturating_sub(keep)), s.error),
        ]));
    }
    if st.nodes.is_empty() {
        lines.push(Line::from(text(" no nodes yet", s.muted)));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

#[allow(clippy::too_many_arguments)]
fn row<'a>(
    view: &View,
    n: &'a NodeView,
    lb: Option<Membership>,
    theme: &Theme,
    name_w: usize,
    role_w: usize,
    ver_w: usize,
    spark_w: usize,
) -> Line<'a> {
    let s = &theme.styles;
    let st = &view.state;
    let version = n.version().unwrap_or("?");
    let ver_style = match (n.version(), st.plan.to_version.as_deref()) {
        (Some(v), Some(to)) if v == to => s.new_version,
        (Some(_), _) => s.old_version,
        (None, _) => s.muted,
    };
    let (health, health_style) = match n.health {
        Some(true) => (HEALTHY, s.ok),
        Some(false) => (FAILING, s.error),
        None => (UNKNOWN, s.muted),
    };
    let (rw, rw_style) = match n.read_only() {
        Some(true) => ("ro", s.downtime_writes),
        Some(false) => ("rw", s.ok),
        None => ("?", s.muted),
    };
    let (lb, lb_style) = match lb {
        Some(Membership::Ready) => ("ready", s.ok),
        Some(Membership::Drain) => ("drain", s.warn),
        Some(Membership::Maint) => ("maint", s.warn),
        None => ("–", s.muted),
    };
    let latency = n
        .latencies
        .back()
        .map(|l| format!("{l}ms"))
        .unwrap_or_else(|| "–".into());
    let mut spans = vec![
        Span::raw(" "),
        text(fit(&n.node.name, name_w), s.accent),
        Span::raw(" "),
        text(fit(n.role().unwrap_or("–"), role_w), s.base),
        Span::raw(" "),
        text(fit(version, ver_w), ver_style),
        Span::raw(" "),
        text(fit(health, 2), health_style),
        Span::raw(" "),
        text(fit(rw, 2), rw_style),
        Span::raw(" "),
        text(fit(lb, 5), lb_style),
        Span::raw(" "),
        text(fit(&latency, 6), s.base),
        Span::raw(" "),
    ];
    if spark_w > 0 {
        spans.push(text(
            sparkline(n.latencies.iter().copied(), spark_w),
            if n.health == Some(false) {
                s.error
            } else {
                s.info
            },
        ));
    }
    Line::from(spans)
}
