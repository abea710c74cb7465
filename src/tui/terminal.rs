//! The real terminal: raw mode and the alternate screen on the way in, and always back out —
//! on return, on error (the guard's `Drop`) and on panic (a hook that restores first, so the
//! panic message is readable).

use std::fmt;
use std::io::{self, Stdout};
use std::sync::Once;

use crossterm::cursor::Show;
use crossterm::event::{DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// Owns the terminal while the cockpit runs; restores it when dropped.
pub struct TerminalGuard {
    pub terminal: Term,
}

static PANIC_HOOK: Once = Once::new();

/// Put the terminal in cockpit mode.
pub fn enter() -> io::Result<TerminalGuard> {
    install_panic_hook();
    enable_raw_mode()?;
    let mut out = io::stdout();
    if let Err(e) = execute!(out, EnterAlternateScreen, EnableBracketedPaste) {
        restore();
        return Err(e);
    }
    if mouse_wanted(std::env::var("FLIGHTDECK_MOUSE").ok().as_deref()) {
        if let Err(e) = execute!(out, EnableMouseButtons) {
            restore();
            return Err(e);
        }
    }
    match Terminal::new(CrosstermBackend::new(out)) {
        Ok(mut terminal) => {
            // A failed clear only leaves old text behind until the first draw.
            let _ = terminal.clear();
            Ok(TerminalGuard { terminal })
        }
        Err(e) => {
            restore();
            Err(e)
        }
    }
}

/// Back to the shell's terminal. Safe to call more than once.
pub fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(
        io::stdout(),
        DisableMouseCapture,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        Show
    );
}

/// `FLIGHTDECK_MOUSE=off` (or `0`, `no`) leaves the mouse to the terminal, for selecting text
/// without holding Shift; anything else, or unset, gives it to the cockpit.
pub fn mouse_wanted(setting: Option<&str>) -> bool {
    !matches!(
        setting.map(|s| s.trim().to_ascii_lowercase()).as_deref(),
        Some("off" | "0" | "no" | "false")
    )
}

/// Mouse reports for button presses and the wheel only (1000: button tracking; 1006: SGR
/// coordinates, any screen size), not crossterm's `EnableMouseCapture`, which also asks for
/// every motion (1003): moving the pointer would wake the cockpit for nothing.
struct EnableMouseButtons;

impl crossterm::Command for EnableMouseButtons {
    fn write_ansi(&self, f: &mut impl fmt::Write) -> fmt::Result {
        f.write_str("\x1b[?1000h\x1b[?1006h")
    }
}

fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}
