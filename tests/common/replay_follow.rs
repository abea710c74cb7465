//! Folding a replay's feed in a test, as a view that keeps its own state from the events would
//! (the cockpit does not: it shows the player's frames, `tui::replay::sync`). The feed numbers
//! events by their place, so the next one is always `last_seq + 1`.

use flightdeck::engine::{SessionState, Stamped};

/// Apply `event` to `state` if it is the next one (`seq == last_seq + 1`); events queued
/// before a seek are not, and are dropped. Returns whether it was applied.
pub fn follow(state: &mut SessionState, event: &Stamped) -> bool {
    if event.seq == state.last_seq + 1 {
        state.apply(event);
        true
    } else {
        false
    }
}
