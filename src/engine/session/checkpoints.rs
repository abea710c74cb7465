//! Where recent events start in the journal: a small ring of (seq, byte offset) the engine
//! notes as it appends. An operator's feed that fell behind the live broadcast catches up from
//! the journal file; with a checkpoint it seeks to just before the first event it lacks,
//! instead of reading (and decoding) everything since it attached.

use std::collections::VecDeque;

/// One event in this many is noted.
const EVERY: u64 = 64;
/// Checkpoints kept: the last `EVERY * KEPT` events (16k, four times the live broadcast's
/// capacity, past which a feed has lagged) can be found by seeking.
const KEPT: usize = 256;

#[derive(Debug, Default)]
pub(super) struct Checkpoints {
    /// (seq, offset of the start of that event's line), seq ascending.
    ring: VecDeque<(u64, u64)>,
}

impl Checkpoints {
    /// Event `seq` is about to be appended at byte `offset`.
    pub(super) fn note(&mut self, seq: u64, offset: u64) {
        if !seq.is_multiple_of(EVERY) {
            return;
        }
        if self.ring.len() >= KEPT {
            self.ring.pop_front();
        }
        self.ring.push_back((seq, offset));
    }

    /// A byte offset (the start of a line) from which the journal holds every event after
    /// seq `after`: the latest checkpoint at or before event `after + 1`, else 0 (the start).
    pub(super) fn before(&self, after: u64) -> u64 {
        let next = after.saturating_add(1);
        let i = self.ring.partition_point(|&(seq, _)| seq <= next);
        i.checked_sub(1).map_or(0, |i| self.ring[i].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_the_latest_checkpoint_not_past_the_first_event_wanted() {
        let mut c = Checkpoints::default();
        // Event n starts at byte 100 * n.
        for seq in 1..=200 {
            c.note(seq, 100 * seq);
        }
        assert_eq!(c.ring.len(), 3);
        assert_eq!(c.before(0), 0);
        assert_eq!(c.before(62), 0);
        assert_eq!(c.before(63), 6400, "event 64 is the first wanted");
        assert_eq!(c.before(100), 6400);
        assert_eq!(c.before(127), 12800);
        assert_eq!(c.before(5000), 19200);
        // Only the last KEPT are kept: older events are read from the start.
        for seq in 201..=EVERY * (KEPT as u64 + 10) {
            c.note(seq, 100 * seq);
        }
        assert_eq!(c.ring.len(), KEPT);
        assert_eq!(c.before(64), 0);
        let oldest = c.ring[0].0;
        assert_eq!(c.before(oldest - 1), 100 * oldest);
    }
}
