//! The cockpit as a replay player: the keys that move through a recorded session, and how the
//! view shows the player's position.
//!
//! One source of truth: the view shows the player's position ([`ReplayControl::position`]),
//! its state brought there by the timeline (`Timeline::bring`: the events since the position
//! it showed applied to it, or the nearest snapshot after a seek), never the events the feed
//! carried. The player's feed and position updates only wake the view up; whatever they
//! carried, the next frame is the player's, so nothing queued before a seek or a pause can
//! show. Nothing here
//! ever sends a command: the Replay role stays read-only.
//!
//! In a quiz the player stops before each decision the recorded operator made; the cockpit
//! asks the question (a modal), takes the answer (a letter), shows what the operator did, and
//! plays on when the trainee presses Enter or space. Questions come in order: the keys that
//! would jump ahead are refused, and a player that got past the open question is sent back.

use crossterm::event::{KeyCode, KeyEvent};

use crate::engine::SessionState;
use crate::replay::player::{ReplayControl, ReplayPosition};
use crate::replay::quiz::{Answer, Choice, Quiz, QuizQuestion, Reveal};

use super::input::{Intent, UiAction};
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
    /// Quiz: the trainee's answer to the open question.
    Answer(Choice),
    /// Quiz: close the answer's reveal and play on.
    Continue,
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

    /// Whether it moves the replay forward past what plays next (refused during a quiz).
    pub fn jumps_ahead(self) -> bool {
        matches!(
            self,
            ReplayKey::NextStep | ReplayKey::ToEnd | ReplayKey::NextDecision
        )
    }

    /// Do it on the player. Seeks take effect at once; the view catches up on its next sync.
    /// The quiz keys need the quiz: see [`Player::key`].
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
            ReplayKey::Answer(_) | ReplayKey::Continue => {}
        }
    }
}

/// What a key means in a replay with a player attached (None: not a player key).
pub fn map_key(view: &View, key: &KeyEvent) -> Option<Intent> {
    let k = ReplayKey::from_key(key);
    let Some(quiz) = &view.quiz else {
        return k.map(|k| Intent::Ui(UiAction::Replay(k)));
    };
    let status = |s: &str| Some(Intent::Ui(UiAction::Status(s.to_string())));
    if quiz.reveal.is_some() {
        return match key.code {
            KeyCode::Enter | KeyCode::Char(' ') => {
                Some(Intent::Ui(UiAction::Replay(ReplayKey::Continue)))
            }
            KeyCode::Char(_) => status("Enter or space plays on"),
            _ => None,
        };
    }
    if quiz.question.is_some() {
        let answer = match key.code {
            KeyCode::Char(c) => Choice::ALL.into_iter().find(|ch| ch.key() == c),
            _ => None,
        };
        return match answer {
            Some(a) => Some(Intent::Ui(UiAction::Replay(ReplayKey::Answer(a)))),
            None if matches!(key.code, KeyCode::Char(_) | KeyCode::Enter) => {
                status("answer with c w u r s a m")
            }
            None => None,
        };
    }
    match k {
        Some(k) if k.jumps_ahead() => status("quiz: no jumping ahead, the questions come in order"),
        Some(k) => Some(Intent::Ui(UiAction::Replay(k))),
        None => None,
    }
}

/// The quiz as the cockpit shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct QuizView {
    pub total: usize,
    pub answered: usize,
    /// Answers that matched the recorded operator's.
    pub matched: usize,
    /// The open question: the player is stopped just before its decision.
    pub question: Option<QuizQuestion>,
    /// The trainee's answer to it and what the operator did, until they play on.
    pub reveal: Option<(Choice, Reveal)>,
}

/// A replay player the cockpit drives, with a quiz when training.
pub struct Player<'q> {
    pub control: ReplayControl,
    pub quiz: Option<&'q mut Quiz>,
}

impl Player<'_> {
    /// Arm the quiz's stops (before any event plays on) and give the view its quiz.
    pub fn attach(&mut self, view: &mut View) {
        if let Some(quiz) = self.quiz.as_deref() {
            self.control.set_stops(quiz.decision_indices());
            let so_far = quiz.result();
            view.quiz = Some(QuizView {
                total: quiz.len(),
                answered: so_far.answers.len(),
                matched: so_far.matches,
                question: None,
                reveal: None,
            });
        }
    }

    /// Bring `view` to the player's position; in a quiz, open the question the player stopped
    /// before, or play on past a decision already answered. Returns whether anything changed.
    pub fn sync(&mut self, view: &mut View) -> bool {
        let mut changed = sync(view, &self.control);
        let (Some(quiz), Some(qv)) = (self.quiz.as_deref(), view.quiz.as_mut()) else {
            return changed;
        };
        let Some(pos) = view.replay.clone() else {
            return changed;
        };
        let due = quiz.current();
        if let Some(q) = &due {
            if pos.index >= q.index {
                // Past the open question (a seek, or an event that played before the stops
                // were armed): back to just before it.
                self.control.seek(q.index.saturating_sub(1));
                return sync(view, &self.control) || changed;
            }
        }
        if let Some(stop) = pos.stopped_before {
            if qv.question.is_none() && qv.reveal.is_none() {
                match due {
                    Some(q) if q.index == stop => {
                        qv.question = Some(q);
                        changed = true;
                    }
                    // Answered already (the trainee went back): play on.
                    _ => self.control.resume(),
                }
            }
        }
        changed
    }

    /// Handle a player key.
    pub fn key(&mut self, view: &mut View, key: ReplayKey) {
        match key {
            ReplayKey::Answer(choice) => {
                let (Some(quiz), Some(qv)) = (self.quiz.as_deref_mut(), view.quiz.as_mut()) else {
                    return;
                };
                if qv.question.take().is_none() {
                    return;
                }
                if let Some(r) = quiz.answer(Answer { choice, note: None }) {
                    qv.answered += 1;
                    qv.matched += usize::from(r.matched);
                    qv.reveal = Some((choice, r));
                }
            }
            ReplayKey::Continue => {
                if let Some(qv) = view.quiz.as_mut() {
                    qv.reveal = None;
                }
                self.control.resume();
            }
            k => k.apply(&self.control),
        }
        // A seek shows at once, not when the next event plays.
        self.sync(view);
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

/// The quiz's keys, for the help overlay.
pub const QUIZ_KEYS: &[(&str, &str)] = &[
    ("c w u r", "confirm wait undo retry"),
    ("s a m", "skip abort mark done"),
    ("Enter", "after an answer: play on"),
    ("", "(no jumping ahead)"),
];

impl View {
    /// The (index, epoch) of the replay position the view shows.
    pub fn replay_shown(&self) -> Option<(usize, u64)> {
        self.replay.as_ref().map(|p| (p.index, p.epoch))
    }

    /// Show the player's frame: `position`, and the state there: `bring` brings the view's
    /// state (the state at the position it shows) to `position`'s, called only when the view
    /// does not show that position already. Returns whether anything changed.
    pub fn sync_replay(
        &mut self,
        position: ReplayPosition,
        bring: impl FnOnce(&mut SessionState),
    ) -> bool {
        let seeked = self
            .replay
            .as_ref()
            .is_none_or(|p| p.epoch != position.epoch);
        let moved = self.replay_shown() != Some((position.index, position.epoch));
        if moved {
            let step_before = self.detail_step();
            bring(&mut self.state);
            self.now_ms = self.state.t_ms;
            // A seek, or the step in view changing as it plays, follows the new output.
            if seeked || self.detail_step() != step_before {
                self.detail_scroll = Scroll::Follow;
                self.output_scroll = Scroll::Follow;
            }
        }
        let changed = moved || self.replay.as_ref() != Some(&position);
        self.replay = Some(position);
        changed
    }
}

/// Bring `view` to `control`'s frame (see [`View::sync_replay`]): its own state moved to the
/// player's position, no copy of the player's taken. A position the timeline's background
/// fold has not reached yet (a seek far ahead early in a long journal) is not waited for on
/// this thread: the view keeps its frame, and the player publishes the position again once
/// the fold gets there, which brings the view here again.
pub fn sync(view: &mut View, control: &ReplayControl) -> bool {
    let position = control.position();
    let (shown, to) = (view.replay_shown().map(|(i, _)| i), position.index);
    let timeline = control.timeline();
    if !timeline.can_bring(shown, to) {
        return false;
    }
    view.sync_replay(position, |state| timeline.bring(state, shown, to))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::replay::player::{start_timeline, ReplayOptions, DEFAULT_IDLE_CAP_MS};
    use crate::replay::timeline::Timeline;
    use crate::tui::view::TuiRole;

    /// A recorded lab session whose timeline's background fold is held back (a long journal
    /// just opened), a paused player on it and a view that follows it.
    /// (The client is kept: the player stops when its feed's receiver is dropped.)
    fn held_replay() -> (
        Player<'static>,
        View,
        std::sync::mpsc::Sender<()>,
        crate::engine::client::SessionClient,
    ) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/lab-generic-rolling.jsonl");
        let (timeline, go) = Timeline::open_holding_the_fold(&path, DEFAULT_IDLE_CAP_MS).unwrap();
        let (client, control) =
            start_timeline(Arc::new(timeline), ReplayOptions::default()).unwrap();
        control.pause();
        let mut view = View::new(TuiRole::Replay, "replay", 0);
        let mut player = Player {
            control,
            quiz: None,
        };
        assert!(!player.sync(&mut view), "nothing is folded yet: no frame");
        (player, view, go, client)
    }

    /// `G` before the fold got there: the key is answered at once (the position is the end),
    /// the runtime's one thread goes on, the view keeps its frame; the end's frame comes when
    /// the fold does.
    #[tokio::test(flavor = "current_thread")]
    async fn a_seek_past_the_fold_is_answered_at_once_and_its_frame_comes_with_the_fold() {
        let (mut player, mut view, go, _client) = held_replay();
        let mut positions = player.control.subscribe();
        let last = player.control.timeline().len() - 1;
        player.key(&mut view, ReplayKey::ToEnd);
        assert_eq!(player.control.position().index, last);
        assert_eq!(view.replay_shown(), None);
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        assert_eq!(
            view.replay_shown(),
            None,
            "a frame before the fold got there"
        );
        go.send(()).unwrap();
        while !player.sync(&mut view) {
            positions.changed().await.unwrap();
        }
        assert_eq!(view.replay_shown().map(|(i, _)| i), Some(last));
        assert_eq!(view.state, player.control.timeline().final_state());
        // The frame can be had as soon as the fold is past it, a moment before the player
        // publishes the position again with its step: the view takes that one when it comes.
        let step = positions.wait_for(|p| p.step.is_some()).await.unwrap().step;
        player.sync(&mut view);
        assert_eq!(view.replay.as_ref().and_then(|p| p.step), step);
    }

    /// `→` before the fold found the next step: answered at once, made when the fold finds it.
    #[tokio::test(flavor = "current_thread")]
    async fn a_jump_the_fold_has_not_placed_is_made_when_it_does() {
        let (mut player, mut view, go, _client) = held_replay();
        let mut positions = player.control.subscribe();
        player.key(&mut view, ReplayKey::NextStep);
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        assert_eq!(player.control.position().index, 0);
        go.send(()).unwrap();
        let moved = positions.wait_for(|p| p.index != 0).await.unwrap().index;
        assert_eq!(Some(moved), player.control.timeline().next_boundary(0));
        assert!(player.sync(&mut view));
        assert_eq!(view.replay_shown().map(|(i, _)| i), Some(moved));
    }
}
