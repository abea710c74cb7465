//! Live samples over a connection: coalesced per connection, sent in a compact form.
//!
//! Live-only events (probe samples, gate progress, the balancer's sessions) are most of what a
//! session publishes — a thousand probed nodes sample a thousand times a second — and none is
//! journaled. A connection holds the latest of each (per probe instance, per gate, one
//! balancer sample) and sends them at most once per [`FRAME`], the cockpit's own frame for
//! live samples, as one `samples` line: probe results grouped by probe, a row per node, with
//! the detail text only when it differs from the last this connection sent for that probe
//! instance (a client that did not ask for frames in its hello gets the held events as they
//! are, still at most once per frame). Journaled events are never held: whatever is held is sent before the next one,
//! so the client applies everything in the engine's order, minus superseded samples.
//!
//! Once the client has said what it shows (a [`Viewport`]), only the samples of the nodes on
//! its screen (and of global probes) are held at all: a connection then carries a frame the
//! size of a screen, whatever the size of the cluster. Verdict changes are journaled
//! (`ProbeChanged`), so every node's health still reaches every view. The one journaled event
//! such a connection drops is the once-a-minute `ProbeSummary` of a node not shown (a cockpit
//! folds it into nothing; the journal and `report` keep them all), so its seqs have gaps.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::client::Viewport;
use crate::engine::event::Event;
use crate::engine::Stamped;

/// How often a connection sends what it holds: the cockpit draws live samples once a second.
pub const FRAME: Duration = Duration::from_secs(1);

/// A probe instance: probe name and node (None for a global probe).
type ProbeKey = (String, Option<String>);

/// One frame of live samples.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Samples {
    /// The seq every sample carries: the last journaled event's (samples are not journaled).
    pub seq: u64,
    /// The newest sample's time; each row says how long before it its sample was taken.
    pub t_ms: u64,
    /// Probe results by probe name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub probes: BTreeMap<String, Vec<ProbeRow>>,
    /// Gate progress and the balancer's sample, as they are (one per gate, one balancer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Stamped>,
}

/// One probe result on the wire, `["node-7",true,3,120,null]`: node (null for a global probe),
/// ok, latency in ms, ms before the frame's time, and the detail (null: the same as the last
/// one this connection sent for the probe instance).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProbeRow(
    pub Option<String>,
    pub bool,
    pub u64,
    pub u64,
    pub Option<String>,
);

/// What a held sample supersedes: the same probe instance, the same gate, the balancer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Probe(ProbeKey),
    Gate(usize),
    Lb,
}

/// The sending side, one per connection: holds the latest sample per key until the frame.
#[derive(Debug, Default)]
pub struct Coalescer {
    held: BTreeMap<Key, Stamped>,
    /// The detail last sent per probe instance (bounded by the target's probe instances).
    sent_detail: HashMap<ProbeKey, String>,
    /// The nodes the client shows; None until it says (then it gets every node's samples).
    shown: Option<HashSet<String>>,
}

impl Coalescer {
    /// The client shows `v` now: samples of other nodes are no longer held (nor sent).
    pub fn set_viewport(&mut self, v: Option<&Viewport>) {
        self.shown = v.map(|v| v.nodes.iter().cloned().collect());
        if let Some(shown) = &self.shown {
            self.held.retain(|k, _| match k {
                Key::Probe((_, Some(node))) => shown.contains(node),
                _ => true,
            });
        }
    }

    /// Hold a live-only event, replacing the one it supersedes. A sample of a node the client
    /// does not show is dropped, and so is a probe summary of one: the journal keeps them for
    /// the report, a cockpit folds them into nothing (`SessionState::apply`), and a thousand
    /// nodes' summaries once a minute would be most of what an observer receives. Anything
    /// else is not held: it is handed back to be sent as it is (after [`Coalescer::take`]).
    pub fn hold(&mut self, e: Stamped) -> Option<Stamped> {
        let key = match &e.event {
            Event::ProbeSample { node: Some(n), .. }
            | Event::ProbeSummary { node: Some(n), .. }
                if self.shown.as_ref().is_some_and(|s| !s.contains(n)) =>
            {
                return None
            }
            Event::ProbeSample { probe, node, .. } => Key::Probe((probe.clone(), node.clone())),
            Event::GateProgress { step, .. } => Key::Gate(*step),
            Event::LbSample { .. } => Key::Lb,
            _ => return Some(e),
        };
        self.held.insert(key, e);
        None
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Everything held, as events, oldest first (for a client that did not ask for frames).
    pub fn take_events(&mut self) -> Vec<Stamped> {
        let mut out: Vec<Stamped> = std::mem::take(&mut self.held).into_values().collect();
        out.sort_by_key(|e| e.t_ms);
        out
    }

    /// Everything held, as one frame (None when nothing is).
    pub fn take(&mut self) -> Option<Samples> {
        if self.held.is_empty() {
            return None;
        }
        let held = std::mem::take(&mut self.held);
        let mut frame = Samples {
            seq: held.values().map(|e| e.seq).max().unwrap_or(0),
            t_ms: held.values().map(|e| e.t_ms).max().unwrap_or(0),
            ..Samples::default()
        };
        for (_, e) in held {
            let before = frame.t_ms.saturating_sub(e.t_ms);
            match e.event {
                Event::ProbeSample {
                    probe,
                    node,
                    ok,
                    latency_ms,
                    detail,
                } => {
                    let key = (probe, node);
                    let detail = if self.sent_detail.get(&key) == Some(&detail) {
                        None
                    } else {
                        self.sent_detail.insert(key.clone(), detail.clone());
                        Some(detail)
                    };
                    let (probe, node) = key;
                    frame
                        .probes
                        .entry(probe)
                        .or_default()
                        .push(ProbeRow(node, ok, latency_ms, before, detail));
                }
                _ => frame.other.push(e),
            }
        }
        Some(frame)
    }
}

/// The receiving side, one per connection: turns frames back into the events they carry.
#[derive(Debug, Default)]
pub struct Expander {
    /// The detail last received per probe instance (the server's probe instances).
    details: HashMap<ProbeKey, String>,
}

impl Expander {
    /// The frame's events, oldest first.
    pub fn expand(&mut self, frame: Samples) -> Vec<Stamped> {
        let Samples {
            seq,
            t_ms,
            probes,
            other,
        } = frame;
        let mut out = other;
        for (probe, rows) in probes {
            for ProbeRow(node, ok, latency_ms, before, detail) in rows {
                let key = (probe.clone(), node);
                let detail = match detail {
                    Some(d) => {
                        self.details.insert(key.clone(), d.clone());
                        d
                    }
                    None => self.details.get(&key).cloned().unwrap_or_default(),
                };
                let (probe, node) = key;
                out.push(Stamped {
                    seq,
                    t_ms: t_ms.saturating_sub(before),
                    event: Event::ProbeSample {
                        probe,
                        node,
                        ok,
                        latency_ms,
                        detail,
                    },
                });
            }
        }
        out.sort_by_key(|e| e.t_ms);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_a_viewport_only_the_nodes_shown_and_global_probes_are_held() {
        let mut c = Coalescer::default();
        c.hold(sample(100, "n1", 3, "200"));
        c.hold(sample(100, "n2", 3, "200"));
        // Held before the client said what it shows: n2 goes once it is out of view.
        c.set_viewport(Some(&Viewport {
            nodes: vec!["n1".into(), "n3".into()],
        }));
        for n in ["n1", "n2", "n3", "n4"] {
            assert!(c.hold(sample(200, n, 4, "200")).is_none());
        }
        let global = Stamped {
            seq: 7,
            t_ms: 250,
            event: Event::ProbeSample {
                probe: "cluster".into(),
                node: None,
                ok: false,
                latency_ms: 9,
                detail: "red".into(),
            },
        };
        assert!(c.hold(global.clone()).is_none());
        let got = Expander::default().expand(c.take().unwrap());
        assert_eq!(
            got,
            vec![
                sample(200, "n1", 4, "200"),
                sample(200, "n3", 4, "200"),
                global
            ]
        );
        // A summary is journaled, yet of no use to a view that does not show its node.
        let summary = |node: &str| Stamped {
            seq: 8,
            t_ms: 260,
            event: Event::ProbeSummary {
                probe: "http".into(),
                node: Some(node.into()),
                count: 60,
                failures: 0,
                min_ms: 1,
                median_ms: 2,
                max_ms: 9,
            },
        };
        assert!(c.hold(summary("n2")).is_none());
        assert_eq!(c.hold(summary("n1")), Some(summary("n1")));
        // Without a viewport again: every node.
        c.set_viewport(None);
        c.hold(sample(300, "n4", 5, "200"));
        assert_eq!(
            Expander::default().expand(c.take().unwrap()),
            vec![sample(300, "n4", 5, "200")]
        );
    }

    fn sample(t_ms: u64, node: &str, latency_ms: u64, detail: &str) -> Stamped {
        Stamped {
            seq: 7,
            t_ms,
            event: Event::ProbeSample {
                probe: "http".into(),
                node: Some(node.into()),
                ok: true,
                latency_ms,
                detail: detail.into(),
            },
        }
    }

    #[test]
    fn a_frame_keeps_the_latest_sample_per_probe_and_round_trips() {
        let mut c = Coalescer::default();
        assert!(c.hold(sample(100, "n1", 3, "200")).is_none());
        assert!(c.hold(sample(200, "n2", 4, "200")).is_none());
        assert!(c.hold(sample(1100, "n1", 5, "200")).is_none());
        let gate = Stamped {
            seq: 7,
            t_ms: 900,
            event: Event::GateProgress {
                step: 2,
                passing: 1,
                total: 2,
                stable_ms: 0,
                need_ms: 1000,
            },
        };
        assert!(c.hold(gate.clone()).is_none());
        let journaled = Stamped {
            seq: 8,
            t_ms: 1200,
            event: Event::OperatorLeft { id: 3 },
        };
        assert_eq!(c.hold(journaled.clone()), Some(journaled));

        let frame = c.take().unwrap();
        assert!(c.is_empty() && c.take().is_none());
        let line = serde_json::to_string(&frame).unwrap();
        assert!(line.contains(r#"["n1",true,5,0,"200"]"#), "{line}");
        let mut x = Expander::default();
        let got = x.expand(serde_json::from_str(&line).unwrap());
        assert_eq!(
            got,
            vec![
                sample(200, "n2", 4, "200"),
                gate,
                sample(1100, "n1", 5, "200")
            ]
        );

        // The same detail again is not sent again, yet comes out whole.
        c.hold(sample(2100, "n1", 6, "200"));
        c.hold(sample(2150, "n2", 6, "503"));
        let frame = c.take().unwrap();
        let line = serde_json::to_string(&frame).unwrap();
        assert!(line.contains(r#"["n1",true,6,50,null]"#), "{line}");
        assert_eq!(
            x.expand(frame),
            vec![sample(2100, "n1", 6, "200"), sample(2150, "n2", 6, "503")]
        );
    }
}
