//! When each node's reported `state` was read, by the time the request was *sent*: the
//! product answered at some instant after that, so a change of state happened after the send
//! of the last request that still read the old state. Stamping at receipt would race the
//! steps: a request sent before a stop finished can be answered `running` and received after
//! it, which would make the stop look done before the node last ran (issue 14).

use std::collections::HashMap;

/// One node's current state as the samples read it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sighting {
    state: String,
    /// When the first request that read `state` was sent: an answer to a request sent
    /// earlier is older news.
    since_ms: u64,
    /// When the last request that read `state` was sent.
    last_ms: u64,
}

/// What a sample says about its node's state, as [`Sightings::read`] judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// The request was sent before the one that read the node's current state: its answer
    /// is older than what is known, and is not news.
    Stale,
    /// Current (or the node's first reading). `prior_sent_ms`: when the state changed, the
    /// send time of the last request that read the state it left.
    Current { prior_sent_ms: Option<u64> },
}

#[derive(Debug, Default)]
pub struct Sightings {
    nodes: HashMap<String, Sighting>,
}

impl Sightings {
    /// A sample of `node` reading `state`, its request sent at `sent_ms` (session ms).
    pub fn read(&mut self, node: &str, state: &str, sent_ms: u64) -> Reading {
        let fresh = Sighting {
            state: state.to_string(),
            since_ms: sent_ms,
            last_ms: sent_ms,
        };
        let Some(seen) = self.nodes.get_mut(node) else {
            self.nodes.insert(node.to_string(), fresh);
            return Reading::Current {
                prior_sent_ms: None,
            };
        };
        if sent_ms < seen.since_ms {
            return Reading::Stale;
        }
        if seen.state == state {
            seen.last_ms = seen.last_ms.max(sent_ms);
            return Reading::Current {
                prior_sent_ms: None,
            };
        }
        let prior = seen.last_ms;
        *seen = fresh;
        Reading::Current {
            prior_sent_ms: Some(prior),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_after_the_send_of_the_last_request_that_read_the_old_state() {
        let mut s = Sightings::default();
        let cur = |p| Reading::Current { prior_sent_ms: p };
        assert_eq!(s.read("n", "running", 100), cur(None));
        assert_eq!(s.read("n", "running", 1100), cur(None));
        // An answer sent before a later one, received after it: still the old state's.
        assert_eq!(s.read("n", "running", 900), cur(None));
        assert_eq!(s.read("n", "stopped", 2100), cur(Some(1100)));
        // Sent before `stopped` was first read: older news, not a change back.
        assert_eq!(s.read("n", "running", 2000), Reading::Stale);
        assert_eq!(s.read("n", "stopped", 3100), cur(None));
        // Another node is its own.
        assert_eq!(s.read("m", "failed", 50), cur(None));
        assert_eq!(s.read("n", "starting", 4100), cur(Some(3100)));
    }
}
