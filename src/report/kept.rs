//! Lists the report keeps bounded: the first and the last items of a list that grows with the
//! journal (decisions, joins, a step's runs), and how many between them it left out. A real
//! session's lists stay far under the bounds and are reported whole; a journal of a million
//! events that repeats a session thousands of times is reported in memory that does not grow
//! with its length, and the report says where it left items out and how many.

use std::collections::VecDeque;

use serde::Serialize;

/// How many items the report keeps at each end of a session-wide list (decisions, joins,
/// handovers, resumes).
pub const KEEP: usize = 200;

/// How many items it keeps at each end of one step's lists (who confirmed or approved each
/// run, each failed run).
pub const KEEP_PER_STEP: usize = 20;

/// Items left out of a list: `count` of them, between its first `after` items and the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LeftOut {
    pub after: usize,
    pub count: u64,
}

/// A list that keeps its first `keep` and last `keep` items and counts the others.
#[derive(Debug, Clone)]
pub(super) struct Kept<T> {
    keep: usize,
    head: Vec<T>,
    tail: VecDeque<T>,
    left_out: u64,
}

impl<T> Kept<T> {
    pub fn new(keep: usize) -> Self {
        Kept {
            keep,
            head: Vec::new(),
            tail: VecDeque::new(),
            left_out: 0,
        }
    }

    pub fn push(&mut self, item: T) {
        if self.head.len() < self.keep {
            self.head.push(item);
            return;
        }
        if self.tail.len() == self.keep {
            self.tail.pop_front();
            self.left_out = self.left_out.saturating_add(1);
        }
        self.tail.push_back(item);
    }

    /// The items kept, in order, and what was left out between them.
    pub fn into_parts(self) -> (Vec<T>, Option<LeftOut>) {
        let left_out = (self.left_out > 0).then_some(LeftOut {
            after: self.head.len(),
            count: self.left_out,
        });
        let mut items = self.head;
        items.extend(self.tail);
        (items, left_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_list_is_kept_whole() {
        let mut k = Kept::new(3);
        for i in 0..6 {
            k.push(i);
        }
        assert_eq!(k.into_parts(), (vec![0, 1, 2, 3, 4, 5], None));
    }

    #[test]
    fn a_long_list_keeps_both_ends_and_counts_the_middle() {
        let mut k = Kept::new(3);
        for i in 0..10 {
            k.push(i);
        }
        assert_eq!(
            k.into_parts(),
            (vec![0, 1, 2, 7, 8, 9], Some(LeftOut { after: 3, count: 4 }))
        );
    }
}
