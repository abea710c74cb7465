//! Keys become either a local `UiAction` (focus, scroll, overlays) or an engine `Command`;
//! the two never mix in one type. Mapping is a pure function of the view, the key and the
//! moment it arrived, so the stale-key guard is tested with explicit instants.

use std::time::Instant;

use crossterm::event::{
    Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent,
    MouseEventKind,
};
use tui_input::backend::crossterm::to_input_request;
use tui_input::InputRequest;

use crate::engine::state::{PromptKindTag, StepStatus};
use crate::engine::Command;
use crate::plan::Confirm;
use crate::procedure::model::OptionalChoice;

use super::commands;
use super::replay::{self, ReplayKey};
use super::view::{key_is_stale, Overlay, Panel, Scroll, TuiRole, View};

/// Lines a PgUp/PgDn moves.
pub const PAGE: usize = 10;

/// A bound on the detail panel's scroll (its text is a screenful or two at most).
const DETAIL_MAX_SCROLL: usize = 200;

/// What a key does on this screen only.
#[derive(Debug, Clone, PartialEq)]
pub enum UiAction {
    FocusNext,
    FocusPrev,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    /// Back to following the live step / the newest line.
    Follow,
    OpenHelp,
    OpenNote,
    AskSkip {
        step: usize,
    },
    AskAbort,
    /// The abort chosen: ask why before it leaves.
    AskAbortReason {
        rollback: bool,
    },
    /// Past the point of no return: type the phrase and why, to roll back anyway.
    AskRollbackOverride,
    AskQuit,
    /// Run or skip the optional step of prompt `prompt`: ask for the reason first.
    AskChoice {
        prompt: u64,
        step: usize,
        choice: OptionalChoice,
    },
    /// The demo: leave it running or end it.
    AskLeaveDemo,
    /// End the demo: the session is aborted (nothing rolled back) and its lab stops.
    EndDemo,
    CloseOverlay,
    /// Edit the text being typed (note or phrase).
    Edit(InputRequest),
    /// Empty the phrase typed so far.
    ClearPhrase,
    /// Ask why, before taking control from an attached driver.
    AskTakeControl,
    /// List the other operators, for the owner to remove one.
    AskRemove,
    /// The operator picked in that list, to confirm.
    ChooseRemove(u64),
    Status(String),
    /// A replay player key; the loop hands it to the player (it changes nothing here).
    Replay(ReplayKey),
    /// Open the `:` command line.
    OpenCommand,
    /// Switch to this theme (name or file); the loop loads it (`:theme`).
    SetTheme(String),
    /// Show step N (0-based) in the detail panel (`:step`).
    ShowStep(usize),
    /// Open the `/` filter line (over the output and probe panes).
    OpenFilter,
    /// Keep what the filter line holds (an empty one clears it).
    KeepFilter,
    /// No filter any more.
    ClearFilter,
    /// Focus this panel (a click on it).
    Focus(Panel),
    /// Scroll this panel, focused or not (the mouse wheel over it); negative is up.
    ScrollPanel {
        panel: Panel,
        by: isize,
    },
    Quit,
}

/// Lines one notch of the mouse wheel scrolls.
pub const WHEEL_LINES: isize = 3;

/// The meaning of one key.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    Nothing,
    Ui(UiAction),
    /// Send to the engine; close the local overlay the key answered, if any.
    Engine(Command),
}

const OBSERVER_HINT: &str = "observer — read only; c to request control";
const OBSERVER_NO_DRIVER_HINT: &str = "observer — nobody drives; c to take control";
const REPLAY_HINT: &str = "replay — read only";

fn ui(a: UiAction) -> Intent {
    Intent::Ui(a)
}

fn status(s: impl Into<String>) -> Intent {
    Intent::Ui(UiAction::Status(s.into()))
}

/// Map one key that arrived at `at`.
pub fn map_key(view: &View, key: &KeyEvent, at: Instant) -> Intent {
    if key.kind == KeyEventKind::Release {
        return Intent::Nothing;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && key.code == KeyCode::Char('c') {
        // In a half-typed phrase Ctrl-C clears it, as in a shell; it does not leave.
        if view.overlay.is_none() && typing_phrase(view).is_some_and(|typed| !typed.is_empty()) {
            return ui(UiAction::ClearPhrase);
        }
        return quit(view);
    }
    // Another operator's request for control is answerable whatever is open, a phrase box
    // included (where `g` is a letter of the phrase).
    if ctrl && key.code == KeyCode::Char('g') && view.effective_role() == TuiRole::Driver {
        return grant(view);
    }
    // Nothing is drawn but "terminal too small": a key cannot answer what nobody can see.
    if view.too_small {
        return match key.code {
            KeyCode::Char('q') => quit(view),
            _ => Intent::Nothing,
        };
    }
    if let Some(overlay) = &view.overlay {
        return overlay_key(view, overlay, key);
    }
    if view.prompt_visible() {
        if let Some(i) = prompt_key(view, key, at) {
            return i;
        }
    }
    global_key(view, key)
}

/// Map a mouse event; `under` is the panel at the pointer (`render::panel_at`). The wheel
/// scrolls that panel, focused or not; a left click focuses it. The mouse never answers
/// anything: over one of this screen's questions (the filter line aside) it does nothing.
pub fn map_mouse(view: &View, event: &MouseEvent, under: Option<Panel>) -> Intent {
    if view.too_small
        || view
            .overlay
            .as_ref()
            .is_some_and(|o| !matches!(o, Overlay::Filter(_)))
    {
        return Intent::Nothing;
    }
    let Some(panel) = under else {
        return Intent::Nothing;
    };
    match event.kind {
        MouseEventKind::ScrollUp => ui(UiAction::ScrollPanel {
            panel,
            by: -WHEEL_LINES,
        }),
        MouseEventKind::ScrollDown => ui(UiAction::ScrollPanel {
            panel,
            by: WHEEL_LINES,
        }),
        MouseEventKind::Down(MouseButton::Left) => ui(UiAction::Focus(panel)),
        _ => Intent::Nothing,
    }
}

fn grant(view: &View) -> Intent {
    match &view.state.control_request {
        Some((to, _)) => Intent::Engine(Command::GrantControl { to: *to }),
        None => status("nobody asked for control"),
    }
}

/// The phrase typed so far, while the driver's prompt is a phrase confirmation on screen.
pub fn typing_phrase(view: &View) -> Option<&str> {
    let prompt = view.state.prompt?;
    let shown = view.prompt.as_ref().filter(|p| !p.hidden)?;
    let step = view.state.plan.steps.get(prompt.step)?;
    let phrase =
        prompt.kind == PromptKindTag::Run && matches!(step.confirm, Confirm::Phrase { .. });
    (phrase && view.prompt_visible() && shown.id == prompt.id).then(|| shown.phrase.value())
}

fn quit(view: &View) -> Intent {
    if view.demo.is_some() && view.role != TuiRole::Replay {
        // A finished demo has nothing left to keep running: leaving ends it.
        return if view.state.is_finished() || view.ended {
            ui(UiAction::EndDemo)
        } else {
            ui(UiAction::AskLeaveDemo)
        };
    }
    if view.step_running() && view.effective_role() == TuiRole::Driver && !view.ended {
        ui(UiAction::AskQuit)
    } else {
        ui(UiAction::Quit)
    }
}

fn yes(key: &KeyEvent) -> bool {
    matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y'))
}

fn no(key: &KeyEvent) -> bool {
    matches!(
        key.code,
        KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc
    )
}

fn edit(key: &KeyEvent) -> Intent {
    match to_input_request(&TermEvent::Key(*key)) {
        Some(r) => ui(UiAction::Edit(r)),
        None => Intent::Nothing,
    }
}

/// The operators other than this one, in the order the removal list numbers them.
pub fn others(view: &View) -> Vec<&crate::engine::state::OperatorView> {
    view.state
        .operators
        .iter()
        .filter(|o| o.id != view.operator_id)
        .collect()
}

fn overlay_key(view: &View, overlay: &Overlay, key: &KeyEvent) -> Intent {
    match overlay {
        Overlay::TakeControl(input) => match key.code {
            KeyCode::Esc => ui(UiAction::CloseOverlay),
            KeyCode::Enter if input.value().trim().is_empty() => {
                status("say why you take control: it is journaled")
            }
            KeyCode::Enter => Intent::Engine(Command::TakeControl {
                reason: Some(input.value().trim().to_string()),
            }),
            _ => edit(key),
        },
        Overlay::RemoveOperator { chosen: None } => match key.code {
            KeyCode::Char(c @ '1'..='9') => {
                let i = usize::from(c as u8 - b'1');
                match others(view).get(i) {
                    Some(o) => ui(UiAction::ChooseRemove(o.id)),
                    None => Intent::Nothing,
                }
            }
            KeyCode::Esc | KeyCode::Char('q') => ui(UiAction::CloseOverlay),
            _ => Intent::Nothing,
        },
        Overlay::RemoveOperator { chosen: Some(id) } => {
            if yes(key) {
                Intent::Engine(Command::RemoveOperator { id: *id })
            } else if no(key) || key.code == KeyCode::Enter {
                ui(UiAction::CloseOverlay)
            } else {
                Intent::Nothing
            }
        }
        Overlay::Help => match key.code {
            KeyCode::Char('?') | KeyCode::Esc | KeyCode::Char('q') | KeyCode::Enter => {
                ui(UiAction::CloseOverlay)
            }
            _ => Intent::Nothing,
        },
        Overlay::Note(input) => match key.code {
            KeyCode::Esc => ui(UiAction::CloseOverlay),
            KeyCode::Enter if input.value().trim().is_empty() => ui(UiAction::CloseOverlay),
            KeyCode::Enter => Intent::Engine(Command::Note {
                text: input.value().trim().to_string(),
            }),
            _ => edit(key),
        },
        Overlay::ConfirmSkip { step } => {
            if yes(key) {
                Intent::Engine(Command::Skip { step: *step })
            } else if no(key) || key.code == KeyCode::Enter {
                ui(UiAction::CloseOverlay)
            } else {
                Intent::Nothing
            }
        }
        Overlay::AbortChoice => match key.code {
            // Past the point of no return the engine refuses it and says why (the dialog too).
            KeyCode::Char('r') => ui(UiAction::AskAbortReason { rollback: true }),
            KeyCode::Char('o') => ui(UiAction::AskRollbackOverride),
            KeyCode::Char('k') => ui(UiAction::AskAbortReason { rollback: false }),
            KeyCode::Esc => ui(UiAction::CloseOverlay),
            _ => Intent::Nothing,
        },
        Overlay::AbortReason { rollback, input } => match key.code {
            KeyCode::Esc => ui(UiAction::AskAbort),
            KeyCode::Enter => Intent::Engine(Command::Abort {
                rollback: *rollback,
                reason: Some(input.value().trim().to_string()).filter(|r| !r.is_empty()),
            }),
            _ => edit(key),
        },
        Overlay::RollbackOverride { phrase, input } => match key.code {
            KeyCode::Esc => ui(UiAction::CloseOverlay),
            KeyCode::Enter => {
                // The phrase first, then why; the engine checks both.
                let typed = input.value().trim();
                let (said, reason) = match typed.strip_prefix(phrase.as_str()) {
                    Some(rest) => (
                        phrase.clone(),
                        rest.trim_start_matches([' ', ':', ',', '-']),
                    ),
                    None => (typed.to_string(), ""),
                };
                Intent::Engine(Command::RollbackPastNoReturn {
                    phrase: said,
                    reason: reason.trim().to_string(),
                })
            }
            _ => edit(key),
        },
        Overlay::Choose {
            prompt,
            choice,
            reason,
            ..
        } => match key.code {
            KeyCode::Esc => ui(UiAction::CloseOverlay),
            KeyCode::Enter => Intent::Engine(Command::Choose {
                prompt: *prompt,
                choice: *choice,
                reason: Some(reason.value().trim().to_string()).filter(|r| !r.is_empty()),
            }),
            _ => edit(key),
        },
        Overlay::Command(input) => match key.code {
            KeyCode::Esc => ui(UiAction::CloseOverlay),
            KeyCode::Enter => command_line(view, input.value()),
            _ => edit(key),
        },
        Overlay::Filter(_) => match key.code {
            KeyCode::Esc => ui(UiAction::ClearFilter),
            KeyCode::Enter => ui(UiAction::KeepFilter),
            _ => edit(key),
        },
        Overlay::LeaveDemo => match key.code {
            KeyCode::Char('l') => ui(UiAction::Quit),
            KeyCode::Char('e') => ui(UiAction::EndDemo),
            KeyCode::Esc | KeyCode::Char('n') => ui(UiAction::CloseOverlay),
            _ => Intent::Nothing,
        },
        Overlay::ConfirmQuit => {
            if yes(key) {
                ui(UiAction::Quit)
            } else if no(key) || key.code == KeyCode::Enter {
                ui(UiAction::CloseOverlay)
            } else {
                Intent::Nothing
            }
        }
    }
}

/// What the `:` command line asks for: a word of [`commands::COMMANDS`] (`note TEXT`, `undo`,
/// `abort`, `theme NAME`, `step N`, `override GUARD for NODE -- REASON`, `help`, `quit`);
/// anything else says what there is.
pub fn command_line(view: &View, line: &str) -> Intent {
    let line = line.trim().trim_start_matches(':');
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    let driver = view.effective_role() == TuiRole::Driver;
    let read_only = || {
        status(match view.effective_role() {
            TuiRole::Replay => REPLAY_HINT,
            _ => OBSERVER_HINT,
        })
    };
    if word.is_empty() {
        return ui(UiAction::CloseOverlay);
    }
    let Some(command) = commands::find(word) else {
        return status(format!(
            "unknown command :{word} ({})",
            commands::usages(", ")
        ));
    };
    match command.name {
        "note" if rest.is_empty() => status("usage: :note TEXT"),
        "note" if view.effective_role() == TuiRole::Replay => read_only(),
        "note" => Intent::Engine(Command::Note {
            text: rest.to_string(),
        }),
        "undo" if !driver => read_only(),
        "undo" => match view.state.undo_candidate() {
            Some(step) => match view.state.undo_refusal(step) {
                None => Intent::Engine(Command::Undo { step }),
                Some(why) => status(why),
            },
            None => status("nothing to undo"),
        },
        "abort" if !driver => read_only(),
        "abort" if view.state.is_finished() => status("the session is over"),
        "abort" => ui(UiAction::AskAbort),
        "theme" if rest.is_empty() => status(format!(
            "usage: :theme NAME (one of {}, or a file)",
            super::theme::Theme::builtin_names()
                .collect::<Vec<_>>()
                .join(", ")
        )),
        "theme" => ui(UiAction::SetTheme(rest.to_string())),
        "step" => match rest.parse::<usize>() {
            Ok(n) if n >= 1 && n <= view.state.steps.len() => ui(UiAction::ShowStep(n - 1)),
            _ => status(format!("usage: :step N (1 to {})", view.state.steps.len())),
        },
        // A guard's refusal names its phrase: `:override GUARD for NODE -- REASON` types it.
        "override" if !driver => read_only(),
        "override" => match (&view.state.guard_refused, line.split_once(" -- ")) {
            (None, _) => status("no guard has refused a step"),
            (Some(g), None) => status(format!(
                "usage: :override {} for {} -- REASON",
                g.guard, g.node
            )),
            (Some(g), Some((phrase, reason))) => Intent::Engine(Command::OverrideGuard {
                step: g.step,
                phrase: phrase.trim().to_string(),
                reason: reason.trim().to_string(),
            }),
        },
        "help" => ui(UiAction::OpenHelp),
        "quit" => quit(view),
        // A command in the table with no meaning here: a test walks the table so none is left.
        other => status(format!(":{other} is not handled")),
    }
}

/// Keys that only move around; they never answer a prompt, so the guard lets them through.
fn is_navigation(key: &KeyEvent) -> bool {
    matches!(
        key.code,
        KeyCode::Tab
            | KeyCode::BackTab
            | KeyCode::Up
            | KeyCode::Down
            | KeyCode::PageUp
            | KeyCode::PageDown
            | KeyCode::Home
            | KeyCode::End
            | KeyCode::Char('?')
            | KeyCode::Char('/')
    )
}

/// A key while the engine's prompt is open; None falls through to the global keys (so `u`,
/// `a`, `n` and friends work at a run prompt too — after the guard).
fn prompt_key(view: &View, key: &KeyEvent, at: Instant) -> Option<Intent> {
    let prompt = view.state.prompt?;
    let shown = view.prompt.as_ref()?;
    let step = prompt.step;
    let id = prompt.id;
    // An optional step asks run or skip first (the phrase, if any, comes after a run).
    let choosing = prompt.kind == PromptKindTag::Run && view.state.awaits_choice(step);
    let phrase = view
        .state
        .plan
        .steps
        .get(step)
        .filter(|_| !choosing)
        .and_then(|s| match &s.confirm {
            Confirm::Phrase { phrase } => Some(phrase.as_str()),
            _ => None,
        });
    // While a phrase is typed every character is part of it (`q` in "quorum" must not
    // leave, `?` must not open the help); Ctrl-C still leaves, Esc holds.
    let typing = prompt.kind == PromptKindTag::Run && phrase.is_some();
    let a_char = matches!(key.code, KeyCode::Char(_));
    if is_navigation(key) && !(typing && a_char) {
        return None;
    }
    if key.code == KeyCode::Char('q') && !typing {
        return Some(quit(view));
    }
    if key_is_stale(shown.shown_at, at) {
        return Some(status(
            "key ignored: the prompt had just appeared — read it first",
        ));
    }
    let decline = Intent::Engine(Command::Decline { prompt: id });
    let intent = match prompt.kind {
        // Run and skip are equals here: each asks for the reason that goes in the journal.
        PromptKindTag::Run if choosing => {
            let ask = |choice| {
                ui(UiAction::AskChoice {
                    prompt: id,
                    step,
                    choice,
                })
            };
            match key.code {
                KeyCode::Char('r') | KeyCode::Char('y') => ask(OptionalChoice::Run),
                KeyCode::Char('s') => ask(OptionalChoice::Skip),
                KeyCode::Esc | KeyCode::Char('N') => decline,
                KeyCode::Enter => status("optional step: r runs it, s skips it"),
                _ => return None,
            }
        }
        PromptKindTag::Run if phrase.is_some() => match key.code {
            KeyCode::Esc => decline,
            KeyCode::Enter => Intent::Engine(Command::Confirm {
                prompt: id,
                phrase: Some(shown.phrase.value().to_string()),
            }),
            _ => edit(key),
        },
        PromptKindTag::Run | PromptKindTag::Undo => {
            if yes(key) {
                Intent::Engine(Command::Confirm {
                    prompt: id,
                    phrase: None,
                })
            } else if matches!(key.code, KeyCode::Esc | KeyCode::Char('N')) {
                // Not `n`: a note can be written at any time, prompts included.
                decline
            } else if key.code == KeyCode::Enter {
                status("y runs it, Esc holds it")
            } else {
                return None;
            }
        }
        PromptKindTag::Failed | PromptKindTag::Interrupted if key.code == KeyCode::Char('u') => {
            match view.state.undo_refusal(step) {
                None => Intent::Engine(Command::Undo { step }),
                Some(why) => status(why),
            }
        }
        PromptKindTag::Failed => match key.code {
            KeyCode::Char('r') => Intent::Engine(Command::Retry { step }),
            // A failed retry may still have taken effect: the operator can say so.
            KeyCode::Char('d') => Intent::Engine(Command::MarkDone { step }),
            KeyCode::Char('s') => ui(UiAction::AskSkip { step }),
            KeyCode::Char('a') => ui(UiAction::AskAbort),
            KeyCode::Esc => decline,
            _ => return None,
        },
        PromptKindTag::Interrupted => match key.code {
            KeyCode::Char('r') => Intent::Engine(Command::Retry { step }),
            KeyCode::Char('d') => Intent::Engine(Command::MarkDone { step }),
            KeyCode::Char('K') if view.state.orphan.is_some_and(|(s, _)| s == step) => {
                Intent::Engine(Command::KillOrphan { step })
            }
            KeyCode::Char('a') => ui(UiAction::AskAbort),
            KeyCode::Esc => decline,
            _ => return None,
        },
    };
    Some(intent)
}

fn global_key(view: &View, key: &KeyEvent) -> Intent {
    let nav = match key.code {
        KeyCode::Tab => Some(UiAction::FocusNext),
        KeyCode::BackTab => Some(UiAction::FocusPrev),
        KeyCode::Up | KeyCode::Char('k') => Some(UiAction::Up),
        KeyCode::Down | KeyCode::Char('j') => Some(UiAction::Down),
        KeyCode::PageUp => Some(UiAction::PageUp),
        KeyCode::PageDown => Some(UiAction::PageDown),
        KeyCode::Home => Some(UiAction::Top),
        // Esc clears a filter first, then follows.
        KeyCode::Esc if view.filter.is_some() => Some(UiAction::ClearFilter),
        KeyCode::End | KeyCode::Esc => Some(UiAction::Follow),
        KeyCode::Char('?') => Some(UiAction::OpenHelp),
        KeyCode::Char('/') => Some(UiAction::OpenFilter),
        KeyCode::Char(':') => Some(UiAction::OpenCommand),
        KeyCode::Char('q') => return quit(view),
        _ => None,
    };
    if let Some(a) = nav {
        return ui(a);
    }
    // The session's owner removes an operator whatever their role; the engine refuses
    // anyone else.
    if key.code == KeyCode::Char('X') && view.effective_role() != TuiRole::Replay {
        return if others(view).is_empty() {
            status("nobody else is attached")
        } else {
            ui(UiAction::AskRemove)
        };
    }
    match view.effective_role() {
        // Player keys only when a player is attached (a plain replay view has none).
        TuiRole::Replay => match view
            .replay
            .as_ref()
            .and_then(|_| replay::map_key(view, key))
        {
            Some(i) => i,
            None if matches!(key.code, KeyCode::Char(_) | KeyCode::Enter) => status(REPLAY_HINT),
            None => Intent::Nothing,
        },
        TuiRole::Observer => observer_key(view, key),
        TuiRole::Driver => driver_key(view, key),
    }
}

fn observer_key(view: &View, key: &KeyEvent) -> Intent {
    match key.code {
        KeyCode::Char('n') => ui(UiAction::OpenNote),
        // Nobody drives (the driver's client is gone): take over instead of asking.
        KeyCode::Char('c') if view.state.driver().is_none() => {
            Intent::Engine(Command::TakeControl { reason: None })
        }
        KeyCode::Char('c') => Intent::Engine(Command::RequestControl),
        // Take over from an attached driver: the owner at any time, anyone allowed once the
        // driver's client has gone silent for the takeover delay. The engine decides.
        KeyCode::Char('T') if view.state.driver().is_none() => {
            Intent::Engine(Command::TakeControl { reason: None })
        }
        KeyCode::Char('T') => ui(UiAction::AskTakeControl),
        KeyCode::Char('A') => match view.state.prompt {
            Some(p)
                if view
                    .state
                    .plan
                    .steps
                    .get(p.step)
                    .is_some_and(|s| s.approvals > 1) =>
            {
                Intent::Engine(Command::Approve { prompt: p.id })
            }
            _ => status("nothing to approve"),
        },
        KeyCode::Char(_) | KeyCode::Enter if view.state.driver().is_none() => {
            status(OBSERVER_NO_DRIVER_HINT)
        }
        KeyCode::Char(_) | KeyCode::Enter => status(OBSERVER_HINT),
        _ => Intent::Nothing,
    }
}

fn driver_key(view: &View, key: &KeyEvent) -> Intent {
    let st = &view.state;
    if st.is_finished() {
        return match key.code {
            KeyCode::Char('n') => ui(UiAction::OpenNote),
            KeyCode::Char(_) | KeyCode::Enter => status("the session is over; q leaves"),
            _ => Intent::Nothing,
        };
    }
    let cursor = st.cursor();
    match key.code {
        KeyCode::Char('n') => ui(UiAction::OpenNote),
        KeyCode::Char('u') => match st.undo_candidate() {
            Some(step) => Intent::Engine(Command::Undo { step }),
            None => status("nothing to undo"),
        },
        KeyCode::Char('r') => match cursor {
            Some(step)
                if matches!(
                    view.status_of(step),
                    Some(StepStatus::Failed | StepStatus::Interrupted)
                ) =>
            {
                Intent::Engine(Command::Retry { step })
            }
            _ => status("nothing to retry"),
        },
        KeyCode::Char('s') => match cursor {
            Some(step) if st.running() != Some(step) => ui(UiAction::AskSkip { step }),
            Some(_) => status("the step is running; wait for it to finish"),
            None => status("nothing to skip"),
        },
        KeyCode::Char('a') => ui(UiAction::AskAbort),
        KeyCode::Enter if st.held => Intent::Engine(Command::Act),
        KeyCode::Enter => Intent::Nothing,
        KeyCode::Char('g') => grant(view),
        KeyCode::Char('c') => status("you already drive"),
        _ => Intent::Nothing,
    }
}

impl View {
    /// Apply a local action. Returns true when the cockpit should leave.
    pub fn update(&mut self, action: UiAction) -> bool {
        match action {
            UiAction::FocusNext => self.focus = self.focus.next(),
            UiAction::FocusPrev => self.focus = self.focus.prev(),
            UiAction::Up => self.scroll(self.focus, -1),
            UiAction::Down => self.scroll(self.focus, 1),
            UiAction::PageUp => self.scroll(self.focus, -(PAGE as isize)),
            UiAction::PageDown => self.scroll(self.focus, PAGE as isize),
            UiAction::Focus(panel) => self.focus = panel,
            UiAction::ScrollPanel { panel, by } => self.scroll(panel, by),
            UiAction::OpenFilter => {
                let kept = self.filter.clone().unwrap_or_default();
                self.overlay = Some(Overlay::Filter(tui_input::Input::new(kept)));
            }
            UiAction::KeepFilter => {
                if let Some(Overlay::Filter(input)) = self.overlay.take() {
                    self.filter = Some(input.value().trim().to_string()).filter(|f| !f.is_empty());
                }
            }
            UiAction::ClearFilter => {
                if matches!(self.overlay, Some(Overlay::Filter(_))) {
                    self.overlay = None;
                }
                self.filter = None;
                self.output_scroll = Scroll::Follow;
                self.probes_scroll = Scroll::Follow;
            }
            UiAction::Top => match self.focus {
                Panel::Procedure => self.selected = Some(0),
                Panel::Detail => self.detail_scroll = Scroll::At(0),
                Panel::Output => self.output_scroll = Scroll::At(self.output_len()),
                Panel::Probes => self.probes_scroll = Scroll::At(self.probes_len()),
            },
            UiAction::Follow => {
                match self.focus {
                    Panel::Procedure => {
                        self.selected = None;
                        self.procedure_scroll = Scroll::Follow;
                    }
                    Panel::Detail => self.detail_scroll = Scroll::Follow,
                    Panel::Output => self.output_scroll = Scroll::Follow,
                    Panel::Probes => self.probes_scroll = Scroll::Follow,
                }
                self.status = None;
            }
            UiAction::OpenHelp => self.overlay = Some(Overlay::Help),
            UiAction::OpenCommand => self.overlay = Some(Overlay::Command(Default::default())),
            // The loop loads the theme; here the command line closes.
            UiAction::SetTheme(_) => self.overlay = None,
            UiAction::ShowStep(step) => {
                self.overlay = None;
                self.selected = Some(step);
                self.focus = Panel::Procedure;
                self.detail_scroll = Scroll::Follow;
                self.output_scroll = Scroll::Follow;
            }
            UiAction::OpenNote => self.overlay = Some(Overlay::Note(Default::default())),
            UiAction::AskSkip { step } => self.overlay = Some(Overlay::ConfirmSkip { step }),
            UiAction::AskAbort => self.overlay = Some(Overlay::AbortChoice),
            UiAction::AskAbortReason { rollback } => {
                self.overlay = Some(Overlay::AbortReason {
                    rollback,
                    input: Default::default(),
                })
            }
            UiAction::AskRollbackOverride => match self.state.no_return(self.now_ms) {
                Some(nr) => {
                    self.overlay = Some(Overlay::RollbackOverride {
                        phrase: nr.phrase,
                        input: Default::default(),
                    })
                }
                None => {
                    self.status = Some(
                        "not past the point of no return: r rolls back, no override needed".into(),
                    )
                }
            },
            UiAction::AskQuit => self.overlay = Some(Overlay::ConfirmQuit),
            UiAction::AskTakeControl => {
                self.overlay = Some(Overlay::TakeControl(Default::default()))
            }
            UiAction::AskRemove => self.overlay = Some(Overlay::RemoveOperator { chosen: None }),
            UiAction::ChooseRemove(id) => {
                self.overlay = Some(Overlay::RemoveOperator { chosen: Some(id) })
            }
            UiAction::AskChoice {
                prompt,
                step,
                choice,
            } => {
                self.overlay = Some(Overlay::Choose {
                    prompt,
                    step,
                    choice,
                    reason: Default::default(),
                })
            }
            UiAction::AskLeaveDemo => self.overlay = Some(Overlay::LeaveDemo),
            UiAction::EndDemo => {
                self.overlay = None;
                self.end_demo = true;
                return true;
            }
            UiAction::CloseOverlay => self.overlay = None,
            UiAction::Edit(req) => match &mut self.overlay {
                Some(Overlay::Note(input))
                | Some(Overlay::TakeControl(input))
                | Some(Overlay::RollbackOverride { input, .. })
                | Some(Overlay::Choose { reason: input, .. })
                | Some(Overlay::AbortReason { input, .. })
                | Some(Overlay::Command(input)) => {
                    input.handle(req);
                }
                // The filter applies as it is typed: the panes it changes follow again.
                Some(Overlay::Filter(input)) => {
                    input.handle(req);
                    self.output_scroll = Scroll::Follow;
                    self.probes_scroll = Scroll::Follow;
                }
                _ => {
                    if let Some(p) = &mut self.prompt {
                        p.phrase.handle(req);
                    }
                }
            },
            UiAction::ClearPhrase => {
                if let Some(p) = &mut self.prompt {
                    p.phrase = Default::default();
                }
            }
            UiAction::Status(s) => {
                // The command line's answer closes it, as in vi.
                if matches!(self.overlay, Some(Overlay::Command(_))) {
                    self.overlay = None;
                }
                self.status = Some(s)
            }
            UiAction::Replay(_) => {}
            UiAction::Quit => return true,
        }
        false
    }

    fn scroll(&mut self, panel: Panel, by: isize) {
        let n = by.unsigned_abs();
        let up = by < 0;
        match panel {
            Panel::Procedure => {
                let last = self.state.steps.len().saturating_sub(1);
                let cur = self.selected.or_else(|| self.detail_step()).unwrap_or(0);
                let next = if up {
                    cur.saturating_sub(n)
                } else {
                    cur.saturating_add(n).min(last)
                };
                self.selected = Some(next);
                self.detail_scroll = Scroll::Follow;
                self.output_scroll = Scroll::Follow;
            }
            // The detail counts from its top; rendering clamps to its real length.
            Panel::Detail => {
                self.detail_scroll = if up {
                    self.detail_scroll.toward(n)
                } else {
                    self.detail_scroll.away(n, DETAIL_MAX_SCROLL)
                }
            }
            // Output and probes count from the newest line: up goes back in time.
            Panel::Output => {
                let max = self.output_len();
                self.output_scroll = if up {
                    self.output_scroll.away(n, max)
                } else {
                    self.output_scroll.toward(n)
                }
            }
            Panel::Probes => {
                let max = self.probes_len();
                self.probes_scroll = if up {
                    self.probes_scroll.away(n, max)
                } else {
                    self.probes_scroll.toward(n)
                }
            }
        }
    }

    /// The output lines the output pane can show (those the filter lets through).
    fn output_len(&self) -> usize {
        let Some(run) = self.detail_step().and_then(|i| self.state.steps.get(i)) else {
            return 0;
        };
        match self.filter() {
            Some(f) => run.output.iter().filter(|o| f.matches(&o.line)).count(),
            None => run.output.len(),
        }
    }

    /// The rows the probe pane can show (those the filter lets through).
    fn probes_len(&self) -> usize {
        match self.filter() {
            Some(f) => super::render::probe_rows(self, Some(&f)).len(),
            None => self.state.probe_log.len() + self.state.notes.len(),
        }
    }

    /// After a command left: close the local question it answered.
    pub fn sent(&mut self, command: &Command) {
        if matches!(
            (&self.overlay, command),
            (Some(Overlay::Note(_)), Command::Note { .. })
                | (Some(Overlay::Command(_)), _)
                | (Some(Overlay::ConfirmSkip { .. }), Command::Skip { .. })
                | (Some(Overlay::AbortChoice), Command::Abort { .. })
                | (Some(Overlay::AbortReason { .. }), Command::Abort { .. })
                | (Some(Overlay::TakeControl(_)), Command::TakeControl { .. })
                | (
                    Some(Overlay::RemoveOperator { .. }),
                    Command::RemoveOperator { .. }
                )
                | (
                    Some(Overlay::RollbackOverride { .. }),
                    Command::RollbackPastNoReturn { .. }
                )
                | (Some(Overlay::Choose { .. }), Command::Choose { .. })
        ) {
            self.overlay = None;
        }
    }
}
