//! The real terminal: raw mode and the alternate screen on the way in, and always back out —
//! on return, on error (the guard's `Drop`) and on panic (a hook that restores first, so the
//! panic message is readable).

use std::io::{self, Stdout};
use std::sync::Once;

use crossterm::cursor::Show;
use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste};
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
        DisableBracketedPaste,
        LeaveAlternateScreen,
        Show
    );
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
