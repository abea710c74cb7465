//! Per-user token buckets: how the engine keeps one member of the group from growing the
//! journal (and every joined cockpit) without bound by repeating something it journals —
//! notes, joining, asking for control. Per user (the kernel's uid), not per connection: a new
//! connection is a new operator id, so a per-connection limit would be reset by reconnecting.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// `burst` at once, then one more each `refill`, per uid.
#[derive(Debug)]
pub(super) struct Buckets {
    burst: u32,
    refill: Duration,
    /// Per uid: tokens left, and since when the next one is counted.
    users: HashMap<u32, (u32, Instant)>,
}

impl Buckets {
    pub(super) fn new(burst: u32, refill: Duration) -> Self {
        Buckets {
            burst,
            refill,
            users: HashMap::new(),
        }
    }

    /// Take one of `uid`'s tokens; false (and nothing taken) when none is left.
    pub(super) fn take(&mut self, uid: u32) -> bool {
        let now = Instant::now();
        let (tokens, since) = self.users.entry(uid).or_insert((self.burst, now));
        let refill_ms = self.refill.as_millis().max(1);
        let refills = now.saturating_duration_since(*since).as_millis() / refill_ms;
        if *tokens >= self.burst {
            *since = now;
        } else if refills > 0 {
            let add = u32::try_from(refills).unwrap_or(u32::MAX);
            *tokens = tokens.saturating_add(add).min(self.burst);
            // Keep the part of a refill already waited for, unless the bucket is full again.
            *since = if *tokens >= self.burst {
                now
            } else {
                // refills * refill_ms is at most the elapsed time: no overflow.
                let waited = u64::try_from(refills.saturating_mul(refill_ms)).unwrap_or(u64::MAX);
                *since + Duration::from_millis(waited)
            };
        }
        if *tokens == 0 {
            return false;
        }
        *tokens -= 1;
        true
    }

    /// The limit in words, for a refusal: `at most 10 in a row, then one every 6 s`.
    pub(super) fn words(&self) -> String {
        format!(
            "at most {} in a row, then one every {} s",
            self.burst,
            self.refill.as_secs_f64()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The burst, then nothing until a refill has passed, then one per refill; users apart.
    #[tokio::test(start_paused = true)]
    async fn a_bucket_gives_its_burst_then_one_per_refill_per_user() {
        let mut b = Buckets::new(3, Duration::from_secs(5));
        assert!((0..3).all(|_| b.take(7)));
        assert!(!b.take(7));
        assert!(b.take(8), "another user has a bucket of their own");
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(!b.take(7), "not a whole refill yet");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(b.take(7));
        assert!(!b.take(7));
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!((0..3).all(|_| b.take(7)), "refilled up to the burst");
        assert!(!b.take(7), "and no further");
        assert_eq!(b.words(), "at most 3 in a row, then one every 5 s");
    }
}
