//! The load balancer: each backend's membership, health, whether it serves, its sessions; the
//! traffic rates of the last window and the totals, failures loud.

use std::collections::HashSet;

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::{fit, panel, text, truncate};
use crate::procedure::model::Membership;
use crate::tui::lb_expect::LbMismatch;
use crate::tui::theme::Theme;
use crate::tui::view::View;

fn per_sec(count: u64, window_ms: u64) -> u64 {
    count
        .saturating_mul(1000)
        .checked_div(window_ms)
        .unwrap_or(count)
}

/// HAProxy's status text, short: `UP 1/2` (up, a check failed) is `UP↓`, `DOWN 1/2` (down, a
/// check passed) is `DOWN↑`.
fn health_label(health: &str) -> String {
    let mut parts = health.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(word), Some(rest)) if rest.contains('/') => match word {
            "UP" => "UP↓".into(),
            "DOWN" => "DOWN↑".into(),
            other => other.into(),
        },
        _ => health.into(),
    }
}

/// Where the columns after name, membership and health fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Columns {
    check: bool,
    /// 0: none, 3: the count, 8: the count and `sess`.
    sessions: usize,
}

/// The check column goes first when a check is failing (that is when its status says why);
/// while every check passes it only adds `L7OK` to `UP`, so it yields to the sessions.
fn columns(width: usize, name_w: usize, check_failing: bool) -> Columns {
    // ` name memb. healt serving`, then the check and the sessions as room allows.
    let base = 1 + name_w + 1 + 5 + 1 + 5 + 1 + 7;
    let sessions_at = |used: usize| {
        if width > used + 8 {
            8
        } else if width > used + 3 {
            3
        } else {
            0
        }
    };
    let with_check = Columns {
        check: true,
        sessions: sessions_at(base + 6),
    };
    if width >= base + 6 && (check_failing || with_check.sessions > 0) {
        with_check
    } else {
        Columns {
            check: false,
            sessions: sessions_at(base),
        }
    }
}

/// Rows the panel wants: borders, the error, a row per server, a row per mismatch, traffic.
pub fn wanted_height(view: &View, mismatches: &[LbMismatch]) -> u16 {
    let st = &view.state;
    let rows = st.lb.len().max(1) + 2 + usize::from(st.lb_error.is_some());
    (rows + mismatches.len() + 2).min(u16::MAX as usize) as u16
}

/// The panel, with the balancer's `mismatches` with the procedure (`lb_mismatches`).
pub fn render(
    frame: &mut Frame,
    area: Rect,
    view: &View,
    theme: &Theme,
    mismatches: &[LbMismatch],
) {
    let s = &theme.styles;
    let st = &view.state;
    let mut title = vec![text(
        match &st.lb_driver {
            Some(d) => format!(" Load balancer ({d}) "),
            None => " Load balancer ".to_string(),
        },
        Style::default(),
    )];
    if !mismatches.is_empty() {
        let n = mismatches.len();
        let what = if n == 1 { "mismatch" } else { "mismatches" };
        title.push(text(format!("! {n} {what} "), s.warn));
    }
    let block = panel(Line::from(title), false, theme);
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
    let check_failing = st
        .lb
        .iter()
        .any(|b| b.check.as_deref().is_some_and(|c| !c.ends_with("OK")));
    let cols = columns(w, name_w, check_failing);
    let flagged_servers: HashSet<&str> = mismatches.iter().filter_map(|m| m.server()).collect();
    let traffic_h = if st.traffic_last.is_some() { 2 } else { 0 };
    // Only the rows that fit are built: at 1,000 backends a frame shows a few dozen.
    let fits = (inner.height as usize).saturating_sub(lines.len());
    for b in st.lb.iter().take(fits) {
        let flagged = flagged_servers.contains(b.server.as_str());
        let m_style = match b.membership {
            Membership::Ready => s.ok,
            _ => s.warn,
        };
        let health = b.health.to_ascii_uppercase();
        let h_style = if health == "UP" || health == "NO CHECK" {
            s.ok
        } else if health.starts_with("DOWN") {
            s.error
        } else {
            // Transitions (`UP 1/2`), `MAINT`, `DRAIN`, `NOLB`.
            s.warn
        };
        let check = b.check.as_deref().unwrap_or("");
        let c_style = if check.ends_with("OK") {
            s.muted
        } else {
            s.warn
        };
        let (serving, sv_style) = if b.serving {
            ("serving", s.ok)
        } else {
            ("idle", s.muted)
        };
        let sessions = match (b.sessions, cols.sessions) {
            (Some(n), 8) => format!("{n:>3} sess"),
            (Some(n), 3) => format!("{n:>3}"),
            _ => String::new(),
        };
        let mut row = vec![
            if flagged {
                text("!", s.warn)
            } else {
                Span::raw(" ")
            },
            text(fit(&b.server, name_w), s.accent),
            Span::raw(" "),
            text(fit(&b.membership.to_string(), 5), m_style),
            Span::raw(" "),
            text(fit(&health_label(&b.health), 5), h_style),
            Span::raw(" "),
        ];
        if cols.check {
            row.push(text(fit(check, 5), c_style));
            row.push(Span::raw(" "));
        }
        row.extend([
            text(fit(serving, 7), sv_style),
            Span::raw(" "),
            text(sessions, s.muted),
        ]);
        lines.push(Line::from(row));
    }
    // What disagrees, spelled out in the rows left above the traffic lines (counting every
    // backend's row, shown or not).
    let room = (inner.height as usize)
        .saturating_sub(usize::from(st.lb_error.is_some()) + st.lb.len() + traffic_h);
    if !mismatches.is_empty() && room > 0 {
        let shown = if mismatches.len() > room {
            room - 1
        } else {
            mismatches.len()
        };
        for m in &mismatches[..shown] {
            let line = truncate(&format!("! {}", m.describe()), w);
            lines.push(Line::from(text(line, s.warn)));
        }
        if shown < mismatches.len() {
            let more = format!("! {} more", mismatches.len() - shown);
            lines.push(Line::from(text(truncate(&more, w), s.warn)));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_labels_are_short() {
        assert_eq!(health_label("UP"), "UP");
        assert_eq!(health_label("UP 1/2"), "UP↓");
        assert_eq!(health_label("DOWN 1/2"), "DOWN↑");
        assert_eq!(health_label("no check"), "no check");
        assert_eq!(health_label("MAINT"), "MAINT");
    }

    #[test]
    fn a_failing_check_takes_the_room_of_the_sessions() {
        let c = |check, sessions| Columns { check, sessions };
        // ` node1  ready UP    serving` is 27 wide; the check needs 6 more, sessions 4 or 9.
        assert_eq!(columns(29, 6, true), c(false, 0));
        assert_eq!(columns(33, 6, false), c(false, 3));
        assert_eq!(columns(33, 6, true), c(true, 0));
        assert_eq!(columns(38, 6, false), c(true, 3));
        assert_eq!(columns(54, 10, false), c(true, 8));
    }
}
