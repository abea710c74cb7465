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

pub fn render(frame: &mut Frame, area: Rect, view: &View, theme: &Theme) {
    let s = &theme.styles;
    let st = &view.state;
    let block = panel(" Nodes ", false, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let name_w = st
        .nodes
        .iter()
        .map(|n| n.node.name.width())
        .max()
        .unwrap_or(4)
        .clamp(4, 16);
    let ver_w = st
        .nodes
        .iter()
        .filter_map(|n| n.version().map(|v| v.width()))
        .max()
        .unwrap_or(7)
        .clamp(7, 12);
    let width = inner.width as usize;
    // Everything but the role has a fixed width; the role gets what is left, up to its
    // longest value, and the sparkline takes the rest.
    let fixed = 1 + name_w + 1 + 1 + ver_w + 1 + 2 + 1 + 2 + 1 + 5 + 1 + 6 + 1;
    let longest_role = st
        .nodes
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
    for n in &st.nodes {
        lines.push(row(view, n, theme, name_w, role_w, ver_w, spark_w));
    }
    // Rows left over under the table say why a node is down.
    for n in st.nodes.iter().filter(|n| n.health == Some(false)) {
        if !n.health_detail.is_empty() {
            lines.push(Line::from(text(
                truncate(&format!(" ✗ {}: {}", n.node.name, n.health_detail), width),
                s.error,
            )));
        }
    }
    if st.nodes.is_empty() {
        lines.push(Line::from(text(" no nodes yet", s.muted)));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn row<'a>(
    view: &View,
    n: &'a NodeView,
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
        Some(true) => ("●", s.ok),
        Some(false) => ("✗", s.error),
        None => ("?", s.muted),
    };
    let (rw, rw_style) = match n.read_only() {
        Some(true) => ("ro", s.downtime_writes),
        Some(false) => ("rw", s.ok),
        None => ("?", s.muted),
    };
    let backend = st
        .lb
        .iter()
        .find(|b| b.node.as_deref() == Some(n.node.name.as_str()));
    let (lb, lb_style) = match backend.map(|b| b.membership) {
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
