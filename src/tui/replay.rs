//! The cockpit as a replay player: the keys that move through a recorded session, and how the
//! view's state stays equal to the player's position.
//!
//! The view folds the player's feed itself (cheap while playing), but the player's position is
//! the truth: an event is applied only when it is the next one *and* the player has reached it
//! (an event queued just before a seek must not carry the view past a paused position), and a
//! seek (a new `epoch`) replaces the whole state with the one the player rebuilt from its
//! timeline. Nothing here ever sends a command: the Replay role stays read-only.

use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent};

use crate::engine::{SessionState, Stamped};
use crate::replay::player::{ReplayControl, ReplayPosition};

use super::view::{Scroll, View};

/// A key of the replay player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayKey {
    TogglePause,
    Faster,
    Slower,
    PrevStep,
    NextStep,
    ToStart,
    ToEnd,
    NextDecision,
    PrevDecision,
}

impl ReplayKey {
    /// The player key for `key`, if it is one.
    pub fn from_key(key: &KeyEvent) -> Option<ReplayKey> {
        Some(match key.code {
            KeyCode::Char(' ') => ReplayKey::TogglePause,
            KeyCode::Char('+') | KeyCode::Char('=') => ReplayKey::Faster,
            KeyCode::Char('-') | KeyCode::Char('_') => ReplayKey::Slower,
            KeyCode::Left => ReplayKey::PrevStep,
            KeyCode::Right => ReplayKey::NextStep,
            KeyCode::Char('g') => ReplayKey::ToStart,
            KeyCode::Char('G') => ReplayKey::ToEnd,
            KeyCode::Char('d') => ReplayKey::NextDecision,
            KeyCode::Char('D') => ReplayKey::PrevDecision,
            _ => return None,
        })
    }

    /// Do it on the player. Seeks take effect at once; the view catches up on its next sync.
    pub fn apply(self, control: &ReplayControl) {
        match self {
            ReplayKey::TogglePause => control.toggle_pause(),
            ReplayKey::Faster => control.faster(),
            ReplayKey::Slower => control.slower(),
            ReplayKey::PrevStep => control.prev_step(),
            ReplayKey::NextStep => control.next_step(),
            ReplayKey::ToStart => control.to_start(),
            ReplayKey::ToEnd => control.to_end(),
            ReplayKey::NextDecision => control.next_decision(),
            ReplayKey::PrevDecision => control.prev_decision(),
        }
    }
}

/// Keys for the help overlay and the docs.
pub const REPLAY_KEYS: &[(&str, &str)] = &[
    ("space", "pause / resume"),
    ("+ -", "faster / slower"),
    ("← →", "previous / next step"),
    ("g G", "start / end"),
    ("d D", "next / prev decision"),
];

impl View {
    /// Take the player's position: on a seek (new epoch, or the first position) the state
    /// becomes the player's, rebuilt from its timeline. Returns whether anything changed.
    pub fn sync_replay(
        &mut self,
        position: ReplayPosition,
        state: impl FnOnce() -> SessionState,
    ) -> bool {
        let seeked = self
            .replay
            .as_ref()
            .is_none_or(|p| p.epoch != position.epoch);
        if seeked {
            self.state = state();
            self.now_ms = self.state.t_ms;
            self.detail_scroll = Scroll::Follow;
            self.output_scroll = Scroll::Follow;
        }
        let changed = seeked || self.replay.as_ref() != Some(&position);
        self.replay = Some(position);
        changed
    }

    /// Fold one event of the player's feed if it is the next one and the player has reached it
    /// (see the module doc). Returns whether it was applied.
    pub fn apply_replayed(&mut self, event: &Stamped, at: Instant) -> bool {
        // The timeline numbers its events 1, 2, 3, ...: event `index` has `seq == index + 1`.
        let reached = self
            .replay
            .as_ref()
            .is_some_and(|p| event.seq <= p.index as u64 + 1);
        if reached && event.seq == self.state.last_seq + 1 {
            self.apply(event, at);
            true
        } else {
            false
        }
    }
}

/// Bring `view` to `control`'s position (see [`View::sync_replay`]).
pub fn sync(view: &mut View, control: &ReplayControl) -> bool {
    view.sync_replay(control.position(), || control.state())
}
