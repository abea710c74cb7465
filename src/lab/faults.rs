//! Staged failures: parsed from strings like `slow:node1:500ms`, set at start or through the
//! admin API, consulted by the nodes and the store migration.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::LabError;

/// One staged failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Fault {
    /// The node stops abruptly (state `failed`, reason "crashed").
    Crash { node: String },
    /// Every request to the node (except admin operations) is delayed.
    Slow { node: String, delay: Duration },
    /// Health and probe endpoints fail with probability `p`.
    Flaky { node: String, p: f64 },
    /// The node's next store migrations fail.
    FailMigration { node: String },
    /// The node starts but its readiness endpoint stays 503.
    NeverReady { node: String },
    /// The cluster never reports itself synchronized.
    NoSync,
    /// The node stops taking writes the way the product does when its disk fills up, and keeps
    /// refusing them across restarts (the disk stays full): Milvus's quota center denies writes
    /// (`DenyToWrite`, "disk quota exhausted, please allocate more resources"), Weaviate sets
    /// the node's shards `READONLY` ("store is read-only"); other products go read-only.
    DenyWrites { node: String },
}

impl Fault {
    /// The node it is about, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            Fault::Crash { node }
            | Fault::Slow { node, .. }
            | Fault::Flaky { node, .. }
            | Fault::FailMigration { node }
            | Fault::NeverReady { node }
            | Fault::DenyWrites { node } => Some(node),
            Fault::NoSync => None,
        }
    }
}

impl FromStr for Fault {
    type Err = LabError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| LabError::Config(format!("bad fault {s:?}: {why}"));
        let parts: Vec<&str> = s.trim().split(':').collect();
        let node = |i: usize| -> Result<String, LabError> {
            match parts.get(i) {
                Some(n) if !n.is_empty() => Ok((*n).to_string()),
                _ => Err(bad("a node name is missing")),
            }
        };
        let fault = match parts.first().copied().unwrap_or_default() {
            "crash" => Fault::Crash { node: node(1)? },
            "fail-migration" => Fault::FailMigration { node: node(1)? },
            "never-ready" => Fault::NeverReady { node: node(1)? },
            "deny-writes" => Fault::DenyWrites { node: node(1)? },
            "no-sync" => Fault::NoSync,
            "slow" => {
                let raw = parts
                    .get(2)
                    .ok_or_else(|| bad("expected slow:NODE:DELAY"))?;
                let delay = humantime::parse_duration(raw)
                    .map_err(|e| bad(&format!("delay {raw:?}: {e}")))?;
                Fault::Slow {
                    node: node(1)?,
                    delay,
                }
            }
            "flaky" => {
                let raw = parts.get(2).ok_or_else(|| bad("expected flaky:NODE:P"))?;
                let p: f64 = raw
                    .parse()
                    .map_err(|_| bad("the probability must be a number"))?;
                if !(0.0..=1.0).contains(&p) {
                    return Err(bad("the probability must be between 0 and 1"));
                }
                Fault::Flaky { node: node(1)?, p }
            }
            other => {
                return Err(bad(&format!(
                    "unknown kind {other:?} (crash, slow, flaky, fail-migration, never-ready, \
                 deny-writes, no-sync)"
                )))
            }
        };
        let expected = match fault {
            Fault::NoSync => 1,
            Fault::Slow { .. } | Fault::Flaky { .. } => 3,
            _ => 2,
        };
        if parts.len() != expected {
            return Err(bad("wrong number of fields"));
        }
        Ok(fault)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Crash { node } => write!(f, "crash:{node}"),
            Fault::Slow { node, delay } => write!(f, "slow:{node}:{}ms", delay.as_millis()),
            Fault::Flaky { node, p } => write!(f, "flaky:{node}:{p}"),
            Fault::FailMigration { node } => write!(f, "fail-migration:{node}"),
            Fault::NeverReady { node } => write!(f, "never-ready:{node}"),
            Fault::DenyWrites { node } => write!(f, "deny-writes:{node}"),
            Fault::NoSync => f.write_str("no-sync"),
        }
    }
}

impl TryFrom<String> for Fault {
    type Error = LabError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Fault> for String {
    fn from(f: Fault) -> String {
        f.to_string()
    }
}

/// The faults in force, plus the randomness flaky nodes need.
#[derive(Debug)]
pub(crate) struct FaultSet {
    faults: Vec<Fault>,
    rng: u64,
}

impl FaultSet {
    pub fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        FaultSet {
            faults: Vec::new(),
            rng: seed | 1,
        }
    }

    /// Adds a lasting fault (a crash is an event, not a state: the caller applies it).
    pub fn add(&mut self, fault: Fault) {
        if matches!(fault, Fault::Crash { .. }) {
            return;
        }
        self.faults.retain(|f| !same_kind(f, &fault));
        self.faults.push(fault);
    }

    pub fn clear(&mut self) {
        self.faults.clear();
    }

    pub fn list(&self) -> Vec<Fault> {
        self.faults.clone()
    }

    pub fn slow(&self, node: &str) -> Option<Duration> {
        self.faults.iter().find_map(|f| match f {
            Fault::Slow { node: n, delay } if n == node => Some(*delay),
            _ => None,
        })
    }

    pub fn fail_migration(&self, node: &str) -> bool {
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::FailMigration { node: n } if n == node))
    }

    pub fn never_ready(&self, node: &str) -> bool {
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::NeverReady { node: n } if n == node))
    }

    pub fn deny_writes(&self, node: &str) -> bool {
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::DenyWrites { node: n } if n == node))
    }

    pub fn no_sync(&self) -> bool {
        self.faults.iter().any(|f| matches!(f, Fault::NoSync))
    }

    /// Whether this probe answer should fail (flaky nodes only).
    pub fn flaky_fails(&mut self, node: &str) -> bool {
        let p = self.faults.iter().find_map(|f| match f {
            Fault::Flaky { node: n, p } if n == node => Some(*p),
            _ => None,
        });
        match p {
            Some(p) => self.next_unit() < p,
            None => false,
        }
    }

    /// xorshift64*: good enough to make a probe flaky, and no extra crate.
    fn next_unit(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn same_kind(a: &Fault, b: &Fault) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b) && a.node() == b.node()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_kind() {
        for s in [
            "crash:node2",
            "slow:node1:500ms",
            "flaky:node3:0.3",
            "fail-migration:node2",
            "never-ready:node2",
            "deny-writes:node3",
            "no-sync",
        ] {
            let f: Fault = s.parse().unwrap();
            assert_eq!(f.to_string(), s);
        }
        assert_eq!(
            "slow:node1:2s".parse::<Fault>().unwrap(),
            Fault::Slow {
                node: "node1".into(),
                delay: Duration::from_secs(2)
            }
        );
    }

    #[test]
    fn rejects_nonsense() {
        for s in [
            "",
            "crash",
            "crash:",
            "slow:node1",
            "slow:node1:fast",
            "flaky:node1:2",
            "boom:node1",
            "no-sync:x",
            "crash:a:b",
        ] {
            assert!(s.parse::<Fault>().is_err(), "{s} should not parse");
        }
    }

    #[test]
    fn flaky_probability_is_respected_at_the_extremes() {
        let mut set = FaultSet::new();
        set.add("flaky:node1:1".parse().unwrap());
        set.add("flaky:node2:0".parse().unwrap());
        assert!((0..100).all(|_| set.flaky_fails("node1")));
        assert!((0..100).all(|_| !set.flaky_fails("node2")));
        assert!(!set.flaky_fails("node3"));
    }
}
