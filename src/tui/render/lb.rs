//! The load balancer: each backend's membership, health, whether it serves, its sessions; the
//! traffic rates of the last window and the totals, failures loud.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::{fit, panel, text, truncate};
use crate::procedure::model::Membership;
use crate::tui::theme::Theme;
use crate::tui::view::View;

fn per_sec(count: u64, window_ms: u64) -> u64 {
    count
        .saturating_mul(1000)
        .checked_div(window_ms)
        .unwrap_or(count)
}

pub fn render(frame: &mut Frame, area: Rect, view: &View, theme: &Theme) {
    let s = &theme.styles;
    let st = &view.state;
    let title = match &st.lb_driver {
        Some(d) => format!(" Load balancer ({d}) "),
        None => " Load balancer ".to_string(),
    };
    let block = panel(title, false, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let w = inner.width as usize;
    let mut lines = Vec::new();
    if let Some(e) = &st.lb_error {
        lines.push(Line::from(text(truncate(&format!(" ✗ {e}"), w), s.error)));
    }
    let name_w = st
        .lb
        .iter()
        .map(|b| b.server.width())
        .max()
        .unwrap_or(6)
        .clamp(6, 14);
    for b in &st.lb {
        let m_style = match b.membership {
            Membership::Ready => s.ok,
            _ => s.warn,
        };
        let h_style = if b.health.eq_ignore_ascii_case("up") {
            s.ok
        } else if b.health.eq_ignore_ascii_case("maint") {
            s.warn
        } else {
            s.error
        };
        let (serving, sv_style) = if b.serving {
            ("serving", s.ok)
        } else {
            ("idle", s.muted)
        };
        // Sessions only when the row has room for them.
        let sessions = match b.sessions {
            Some(n) if w >= 1 + name_w + 1 + 5 + 1 + 5 + 1 + 7 + 1 + 8 => format!("{n:>3} sess"),
            Some(n) if w >= 1 + name_w + 1 + 5 + 1 + 5 + 1 + 7 + 1 + 3 => format!("{n:>3}"),
            _ => String::new(),
        };
        lines.push(Line::from(vec![
            Span::raw(" "),
            text(fit(&b.server, name_w), s.accent),
            Span::raw(" "),
            text(fit(&b.membership.to_string(), 5), m_style),
            Span::raw(" "),
            text(fit(&b.health, 5), h_style),
            Span::raw(" "),
            text(fit(serving, 7), sv_style),
            Span::raw(" "),
            text(sessions, s.muted),
        ]));
    }
    if st.lb.is_empty() && st.lb_error.is_none() {
        let msg = if st.lb_driver.is_some() {
            " waiting for the balancer"
        } else {
            " no load balancer"
        };
        lines.push(Line::from(text(msg, s.muted)));
    }
    if let Some((window, t)) = st.traffic_last {
        let fail = |n: u64| if n > 0 { s.error } else { s.muted };
        let rej = |n: u64| if n > 0 { s.downtime_writes } else { s.muted };
        // Long labels when there is room, initials when not.
        let (r, wr) = if w >= 46 {
            ("reads ", "  writes ")
        } else {
            ("r ", "  w ")
        };
        let rate = |n: u64| per_sec(n, window);
        lines.push(Line::from(vec![
            text(" now   ", s.muted),
            text(r, s.muted),
            text(format!("{}/s", rate(t.reads_ok)), s.base),
            text(format!(" ✗{}", rate(t.reads_failed)), fail(t.reads_failed)),
            text(wr, s.muted),
            text(format!("{}/s", rate(t.writes_ok)), s.base),
            text(
                format!(" rej {}", rate(t.writes_rejected)),
                rej(t.writes_rejected),
            ),
            text(
                format!(" ✗{}", rate(t.writes_failed)),
                fail(t.writes_failed),
            ),
        ]));
        let tot = st.traffic_total;
        lines.push(Line::from(vec![
            text(" total ", s.muted),
            text(r, s.muted),
            text(format!("{}", tot.reads_ok), s.base),
            text(format!(" ✗{}", tot.reads_failed), fail(tot.reads_failed)),
            text(wr, s.muted),
            text(format!("{}", tot.writes_ok), s.base),
            text(
                format!(" rej {}", tot.writes_rejected),
                rej(tot.writes_rejected),
            ),
            text(format!(" ✗{}", tot.writes_failed), fail(tot.writes_failed)),
        ]));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}
