//! Drawing: pure functions of the view and the theme. `render` lays the panels out; each
//! panel lives in its own module.

mod detail;
mod header;
mod help;
mod lb;
mod nodes;
mod output;
mod procedure;
mod prompt;
mod quiz;
mod replay_bar;

use std::borrow::Cow;

use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph};
use ratatui::Frame;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::lb_expect::{lb_mismatches, LbMismatch};
use super::theme::Theme;
use super::view::{Panel, View};

pub use detail::{action_lines, shell_line, shell_quote};
pub use help::{entries as help_entries, KEYS as HELP_KEYS};
pub use output::{probe_rows, Row as ProbeRow};
pub use replay_bar::segments as replay_bar_segments;

/// The smallest screen every panel fits on.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// Below this size only "terminal too small" is drawn.
pub fn too_small_for(width: u16, height: u16) -> bool {
    width < MIN_WIDTH || height < MIN_HEIGHT
}

/// Where each part of the cockpit goes on a screen of `area` (at least the minimum size).
struct Areas {
    head: Rect,
    bar: Rect,
    foot: Rect,
    nodes: Rect,
    lb: Rect,
    procedure: Rect,
    detail: Rect,
    /// On a short screen only one of output and probes is drawn (the focused one).
    output: Option<Rect>,
    probes: Option<Rect>,
}

/// What the layout and more than one panel need from every node and backend, worked out
/// once a frame (each used to work it out again: the node problems twice, the balancer's
/// mismatches twice).
struct Facts {
    problems: Vec<nodes::Problem>,
    mismatches: Vec<LbMismatch>,
}

impl Facts {
    fn of(view: &View) -> Self {
        Facts {
            problems: nodes::problems(view),
            mismatches: lb_mismatches(&view.state),
        }
    }
}

fn areas(view: &View, theme: &Theme, area: Rect, facts: &Facts) -> Areas {
    let bar_h = u16::from(view.replay.is_some());
    let [head, body, bar, foot] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(0),
        Constraint::Length(bar_h),
        Constraint::Length(1),
    ])
    .areas(area);

    // Room for every node's problem row too (up to a third of the screen; past that the
    // last row counts the rest).
    let problem_rows = facts.problems.len();
    let nodes_h =
        (view.state.nodes.len().max(1) + problem_rows).min(u16::MAX as usize - 3) as u16 + 3;
    let lb_h = lb::wanted_height(view, &facts.mismatches);
    let top_h = nodes_h.max(lb_h).min(body.height / 3 + 1);
    let [top, rest] = Layout::vertical([Constraint::Length(top_h), Constraint::Min(0)]).areas(body);
    let lb_w = (top.width * 2 / 5).clamp(36, 56);
    let [nodes, lb] = Layout::horizontal([Constraint::Min(0), Constraint::Length(lb_w)]).areas(top);

    let left_w = procedure::wanted_width(view).clamp(36, (rest.width * 45 / 100).max(36));
    let [procedure, right] =
        Layout::horizontal([Constraint::Length(left_w), Constraint::Min(0)]).areas(rest);
    // The detail takes what it needs, within bounds; the live output gets the rest.
    let detail_h = detail::wanted_height(view, theme, right.width)
        .min(right.height * 55 / 100)
        .max(right.height.min(7));
    let [detail, io] =
        Layout::vertical([Constraint::Length(detail_h), Constraint::Min(0)]).areas(right);
    let (output, probes) = if io.width >= 100 {
        let [o, p] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(io);
        (Some(o), Some(p))
    } else if io.height >= 10 {
        let [o, p] =
            Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(io);
        (Some(o), Some(p))
    } else if view.focus == Panel::Probes {
        (None, Some(io))
    } else {
        (Some(io), None)
    };
    Areas {
        head,
        bar,
        foot,
        nodes,
        lb,
        procedure,
        detail,
        output,
        probes,
    }
}

/// The panel drawn at column `x`, row `y` of a `width` x `height` screen, if it is one that
/// takes focus (for the mouse: a click focuses it, the wheel scrolls it).
pub fn panel_at(
    view: &View,
    theme: &Theme,
    width: u16,
    height: u16,
    x: u16,
    y: u16,
) -> Option<Panel> {
    if too_small_for(width, height) {
        return None;
    }
    let a = areas(
        view,
        theme,
        Rect::new(0, 0, width, height),
        &Facts::of(view),
    );
    let at = ratatui::layout::Position::new(x, y);
    [
        (Some(a.procedure), Panel::Procedure),
        (Some(a.detail), Panel::Detail),
        (a.output, Panel::Output),
        (a.probes, Panel::Probes),
    ]
    .into_iter()
    .find_map(|(r, p)| r.filter(|r| r.contains(at)).map(|_| p))
}

/// The nodes whose rows a `width` x `height` screen shows (none when it is too small): what
/// a cockpit joined over a socket asks live samples for (`engine::client::Viewport`).
pub fn shown_nodes<'a>(
    view: &'a View,
    theme: &Theme,
    width: u16,
    height: u16,
) -> impl Iterator<Item = &'a str> + Clone {
    let rows = if too_small_for(width, height) {
        0
    } else {
        let area = Rect::new(0, 0, width, height);
        nodes::rows_shown(areas(view, theme, area, &Facts::of(view)).nodes)
    };
    view.state
        .nodes
        .iter()
        .take(rows)
        .map(|n| n.node.name.as_str())
}

/// Draw the whole cockpit.
pub fn render(frame: &mut Frame, view: &View, theme: &Theme) {
    draw(frame, view, theme);
}

/// Draw the whole cockpit; returns how many node rows the Nodes panel had room for (0 on a
/// screen too small): the rows a joined cockpit tells its session it shows
/// (`super::viewport`), without laying the screen out again.
pub fn draw(frame: &mut Frame, view: &View, theme: &Theme) -> usize {
    let area = frame.area();
    if too_small_for(area.width, area.height) {
        too_small(frame, area, theme);
        return 0;
    }
    let facts = Facts::of(view);
    let a = areas(view, theme, area, &facts);
    header::render(frame, a.head, view, theme);
    replay_bar::render(frame, a.bar, view, theme);
    header::footer(frame, a.foot, view, theme);
    nodes::render(frame, a.nodes, view, theme, &facts.problems);
    lb::render(frame, a.lb, view, theme, &facts.mismatches);
    procedure::render(frame, a.procedure, view, theme);
    detail::render(frame, a.detail, view, theme);
    if let Some(o) = a.output {
        output::render_output(frame, o, view, theme);
    }
    if let Some(p) = a.probes {
        output::render_probes(frame, p, view, theme);
    }

    prompt::render(frame, area, view, theme);
    quiz::render(frame, area, view, theme);
    help::render(frame, area, view, theme);
    nodes::rows_shown(a.nodes)
}

fn too_small(frame: &mut Frame, area: Rect, theme: &Theme) {
    // Short lines, so the whole message fits a 40x10 terminal.
    let lines = vec![
        Line::from("terminal too small"),
        Line::from(format!(
            "need {MIN_WIDTH}x{MIN_HEIGHT}, have {}x{}",
            area.width, area.height
        )),
        Line::from("enlarge it, or q to leave"),
    ];
    let h = (lines.len() as u16).min(area.height);
    let y = area.y + area.height.saturating_sub(h) / 2;
    let rows = Rect::new(area.x, y, area.width, h);
    frame.render_widget(
        Paragraph::new(lines)
            .style(theme.styles.warn)
            .alignment(Alignment::Center),
        rows,
    );
}

/// A bordered panel with its title; the focused one stands out.
fn panel<'a>(title: impl Into<Line<'a>>, focused: bool, theme: &Theme) -> Block<'a> {
    let s = &theme.styles;
    Block::new()
        .borders(Borders::ALL)
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(if focused { s.border_focus } else { s.border })
        .title(title.into().style(s.title))
}

/// `hh:mm:ss` (or `mm:ss` under an hour).
pub fn fmt_dur(ms: u64) -> String {
    let secs = ms / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

/// Cut `s` to `width` terminal columns, marking the cut (wide CJK characters count two).
pub fn truncate(s: &str, width: usize) -> String {
    if s.width() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width - 1 {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// Pad or cut to exactly `width` terminal columns.
pub fn fit(s: &str, width: usize) -> String {
    let t = truncate(s, width);
    let n = t.width();
    format!("{t}{}", " ".repeat(width.saturating_sub(n)))
}

/// A `w` x `h` rectangle centred in `area` (shrunk to fit).
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// A key name in hints.
fn key<'a>(k: &'a str, theme: &Theme) -> Span<'a> {
    Span::styled(k, theme.styles.key)
}

/// A styled span of text that came from anywhere (command output, probe details, files).
fn text<'a>(t: impl Into<Cow<'a, str>>, style: Style) -> Span<'a> {
    Span::styled(clean(t.into()), style)
}

pub use crate::terminal_text::clean;

/// The cockpit drawn on a `width` x `height` off-screen buffer, as plain text (one line per
/// row, trailing spaces trimmed): for snapshot tests and documentation captures.
pub fn to_text(view: &View, theme: &Theme, width: u16, height: u16) -> String {
    let backend = ratatui::backend::TestBackend::new(width, height);
    let mut terminal = match ratatui::Terminal::new(backend) {
        Ok(t) => t,
        Err(e) => match e {},
    };
    if let Err(e) = terminal.draw(|f| render(f, view, theme)) {
        match e {}
    }
    buffer_text(terminal.backend().buffer())
}

/// A buffer's symbols as text.
pub fn buffer_text(buf: &ratatui::buffer::Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        // A wide character covers the next cell too; that cell's blank is not text.
        let mut skip = 0;
        for x in area.left()..area.right() {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let sym = buf[(x, y)].symbol();
            skip = sym.width().saturating_sub(1);
            line.push_str(sym);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
