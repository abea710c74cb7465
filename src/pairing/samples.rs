//! Live samples over a connection: coalesced per connection, sent in a compact form.
//!
//! Live-only events (probe samples, gate progress, the balancer's sessions) are most of what a
//! session publishes — a thousand probed nodes sample a thousand times a second — and none is
//! journaled. A connection holds the latest of each (per probe instance, per gate, one
//! balancer sample) and sends them at most once per [`FRAME`], the cockpit's own frame for
//! live samples, as one `samples` line (a client that did not ask for frames in its hello gets
//! the held events as they are, still at most once per frame). Journaled events are never
//! held: whatever is held is sent before the next one, so the client applies everything in the
//! engine's order, minus superseded samples.
//!
//! A frame's probe row is a few numbers, `[3,1,12,420]`: the probe instance's number on this
//! connection, ok (1/0), latency in ms and ms before the frame's time. The first row of an
//! instance introduces it, `[3,1,12,420,"200 OK","http","node-7"]` (detail, probe, node or
//! null); a later row carries the detail only when it differs from the last this connection
//! sent for the instance, `[3,0,5000,420,"timed out"]`. A frame goes out only when a sample
//! came; every sample that did is a row (each is a point of its node's latency sparkline and
//! a line of the probe log, so a repeated value is sent again). The numbering is per
//! connection and only ever grows, bounded by the target's probe instances (and by
//! [`MAX_INSTANCES`]: past it a sample goes whole, as an event in the frame).
//!
//! Once the client has said what it shows (a [`Viewport`]), only the samples of the nodes on
//! its screen (and of global probes) are held at all: a connection then carries a frame the
//! size of a screen, whatever the size of the cluster. Verdict changes are journaled
//! (`ProbeChanged`), so every node's health still reaches every view. The one journaled event
//! such a connection drops is the once-a-minute `ProbeSummary` (a cockpit folds it into
//! nothing; the journal and `report` keep them all), so its seqs have gaps.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::engine::client::Viewport;
use crate::engine::event::Event;
use crate::engine::Stamped;

/// How often a connection sends what it holds: the cockpit draws live samples once a second.
pub const FRAME: Duration = Duration::from_secs(1);

/// Most probe instances a connection numbers (a thousand nodes with a few probes each is a
/// few thousand); the receiving side keeps no more either, whatever a server says.
pub const MAX_INSTANCES: usize = 1 << 16;

/// A probe instance: probe name and node (None for a global probe).
type ProbeKey = (String, Option<String>);

/// One frame of live samples. The short keys keep a frame, sent every second to every
/// observer, small.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Samples {
    /// The seq every sample carries: the last journaled event's (samples are not journaled).
    #[serde(rename = "s")]
    pub seq: u64,
    /// The newest sample's time; each row says how long before it its sample was taken.
    #[serde(rename = "t")]
    pub t_ms: u64,
    /// Probe results, oldest instance first.
    #[serde(rename = "r", default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<ProbeRow>,
    /// Gate progress and the balancer's sample, as they are (one per gate, one balancer), and
    /// probe samples past [`MAX_INSTANCES`].
    #[serde(rename = "o", default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Stamped>,
}

/// One probe result on the wire (see the module's doc for its forms).
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeRow {
    /// The probe instance's number on this connection.
    pub id: u32,
    pub ok: bool,
    pub latency_ms: u64,
    /// How long before the frame's time the sample was taken.
    pub before_ms: u64,
    /// The detail, when it differs from the last one sent for this instance (always on the
    /// row that introduces it).
    pub detail: Option<String>,
    /// On the instance's first row: its probe and node.
    pub intro: Option<ProbeKey>,
}

impl Serialize for ProbeRow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let len = match (&self.intro, &self.detail) {
            (Some(_), _) => 7,
            (None, Some(_)) => 5,
            (None, None) => 4,
        };
        let mut seq = s.serialize_seq(Some(len))?;
        seq.serialize_element(&self.id)?;
        seq.serialize_element(&u8::from(self.ok))?;
        seq.serialize_element(&self.latency_ms)?;
        seq.serialize_element(&self.before_ms)?;
        if len > 4 {
            seq.serialize_element(self.detail.as_deref().unwrap_or(""))?;
        }
        if let Some((probe, node)) = &self.intro {
            seq.serialize_element(probe)?;
            seq.serialize_element(node)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for ProbeRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = ProbeRow;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a probe row: [id, ok, latency, before] and optionally detail, or detail, probe and node")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<ProbeRow, A::Error> {
                let missing = |i| de::Error::invalid_length(i, &self);
                let id: u32 = a.next_element()?.ok_or_else(|| missing(0))?;
                let ok = match a.next_element::<u8>()?.ok_or_else(|| missing(1))? {
                    0 => false,
                    1 => true,
                    n => {
                        return Err(de::Error::invalid_value(
                            de::Unexpected::Unsigned(n.into()),
                            &"0 or 1",
                        ))
                    }
                };
                let latency_ms = a.next_element()?.ok_or_else(|| missing(2))?;
                let before_ms = a.next_element()?.ok_or_else(|| missing(3))?;
                let detail: Option<String> = a.next_element()?;
                let intro = match (detail.is_some(), a.next_element::<String>()?) {
                    (true, Some(probe)) => {
                        let node: Option<String> = a.next_element()?.ok_or_else(|| missing(6))?;
                        Some((probe, node))
                    }
                    (_, None) => None,
                    (false, Some(_)) => return Err(missing(4)),
                };
                if a.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(8, &self));
                }
                Ok(ProbeRow {
                    id,
                    ok,
                    latency_ms,
                    before_ms,
                    detail,
                    intro,
                })
            }
        }
        d.deserialize_seq(RowVisitor)
    }
}

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
    /// Each probe instance's number and the detail last sent for it (bounded by the target's
    /// probe instances and by [`MAX_INSTANCES`]).
    sent: HashMap<ProbeKey, (u32, String)>,
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
    /// does not show is dropped; so is every probe summary once the client has said what it
    /// shows (a client with a viewport is a cockpit: it folds summaries into nothing,
    /// `SessionState::apply`; the journal keeps them for the report, and a summary per shown
    /// node a minute would be a tenth of what an observer receives). Anything else is not
    /// held: it is handed back to be sent as it is (after [`Coalescer::take`]).
    pub fn hold(&mut self, e: Stamped) -> Option<Stamped> {
        let key = match &e.event {
            Event::ProbeSample { node: Some(n), .. }
                if self.shown.as_ref().is_some_and(|s| !s.contains(n)) =>
            {
                return None
            }
            Event::ProbeSummary { .. } if self.shown.is_some() => return None,
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
            let before_ms = frame.t_ms.saturating_sub(e.t_ms);
            let Event::ProbeSample {
                probe,
                node,
                ok,
                latency_ms,
                detail,
            } = e.event
            else {
                frame.other.push(e);
                continue;
            };
            let key = (probe, node);
            let row = |id, detail, intro| ProbeRow {
                id,
                ok,
                latency_ms,
                before_ms,
                detail,
                intro,
            };
            let room = self.sent.len() < MAX_INSTANCES;
            match self.sent.get_mut(&key) {
                Some((id, sent)) if *sent == detail => frame.rows.push(row(*id, None, None)),
                Some((id, sent)) => {
                    sent.clone_from(&detail);
                    frame.rows.push(row(*id, Some(detail), None));
                }
                None if room => {
                    // Numbered in order from 0: below MAX_INSTANCES, so it fits a u32.
                    let id = self.sent.len() as u32;
                    self.sent.insert(key.clone(), (id, detail.clone()));
                    frame.rows.push(row(id, Some(detail), Some(key)));
                }
                None => {
                    let (probe, node) = key;
                    frame.other.push(Stamped {
                        event: Event::ProbeSample {
                            probe,
                            node,
                            ok,
                            latency_ms,
                            detail,
                        },
                        ..e
                    });
                }
            }
        }
        Some(frame)
    }
}

/// The receiving side, one per connection: turns frames back into the events they carry.
#[derive(Debug, Default)]
pub struct Expander {
    /// Each probe instance the server numbered (its probe, node and last detail), by number.
    instances: Vec<(String, Option<String>, String)>,
}

impl Expander {
    /// The frame's events, oldest first. A row of an instance the server never introduced
    /// (or past [`MAX_INSTANCES`]) is left out: no server of this build sends one.
    pub fn expand(&mut self, frame: Samples) -> Vec<Stamped> {
        let Samples {
            seq,
            t_ms,
            rows,
            other,
        } = frame;
        let mut out = other;
        for row in rows {
            let id = row.id as usize;
            if let Some((probe, node)) = row.intro {
                let detail = row.detail.clone().unwrap_or_default();
                match id.cmp(&self.instances.len()) {
                    std::cmp::Ordering::Less => self.instances[id] = (probe, node, detail),
                    std::cmp::Ordering::Equal if id < MAX_INSTANCES => {
                        self.instances.push((probe, node, detail))
                    }
                    _ => {
                        tracing::warn!(id, "a probe row out of order skipped");
                        continue;
                    }
                }
            }
            let Some((probe, node, last)) = self.instances.get_mut(id) else {
                tracing::warn!(id, "a probe row of an unknown instance skipped");
                continue;
            };
            if let Some(d) = row.detail {
                *last = d;
            }
            out.push(Stamped {
                seq,
                t_ms: t_ms.saturating_sub(row.before_ms),
                event: Event::ProbeSample {
                    probe: probe.clone(),
                    node: node.clone(),
                    ok: row.ok,
                    latency_ms: row.latency_ms,
                    detail: last.clone(),
                },
            });
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
        let mut x = Expander::default();
        let got = x.expand(c.take().unwrap());
        assert_eq!(
            got,
            vec![
                sample(200, "n1", 4, "200"),
                sample(200, "n3", 4, "200"),
                global
            ]
        );
        // A summary is journaled, yet of no use to a view (it folds it into nothing).
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
        assert!(c.hold(summary("n1")).is_none());
        // Without a viewport again: every node, and the summaries.
        c.set_viewport(None);
        assert_eq!(c.hold(summary("n2")), Some(summary("n2")));
        c.hold(sample(300, "n4", 5, "200"));
        assert_eq!(
            x.expand(c.take().unwrap()),
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
        // Rows in the order of their keys: n1 introduced first as 0, then n2 as 1.
        assert!(line.contains(r#"[0,1,5,0,"200","http","n1"]"#), "{line}");
        assert!(line.contains(r#"[1,1,4,900,"200","http","n2"]"#), "{line}");
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
        assert!(
            line.contains(r#""r":[[0,1,6,50],[1,1,6,0,"503"]]"#),
            "{line}"
        );
        assert_eq!(
            x.expand(serde_json::from_str(&line).unwrap()),
            vec![sample(2100, "n1", 6, "200"), sample(2150, "n2", 6, "503")]
        );

        // A value that stays the same is still a sample a second (a point of the row's
        // sparkline, a line of the probe log), the last one included.
        for t in [3100, 4100] {
            c.hold(sample(t, "n2", 6, "503"));
            let line = serde_json::to_string(&c.take().unwrap()).unwrap();
            assert!(line.ends_with(r#""r":[[1,1,6,0]]}"#), "{line}");
            assert_eq!(
                x.expand(serde_json::from_str(&line).unwrap()),
                vec![sample(t, "n2", 6, "503")]
            );
        }
    }

    #[test]
    fn malformed_rows_are_refused_and_unknown_instances_skipped() {
        for bad in [
            "[0,2,1,0]",
            "[0,true,1,0]",
            "[0,1,1]",
            r#"[0,1,1,0,null]"#,
            r#"[0,1,1,0,"d","http"]"#,
            r#"[0,1,1,0,"d","http",null,9]"#,
            r#"[-1,1,1,0]"#,
        ] {
            assert!(serde_json::from_str::<ProbeRow>(bad).is_err(), "{bad}");
        }
        let mut x = Expander::default();
        // A row of an instance never introduced, and an introduction out of order.
        let frame: Samples =
            serde_json::from_str(r#"{"s":1,"t":10,"r":[[0,1,1,0],[5,1,1,0,"d","http","n1"]]}"#)
                .unwrap();
        assert_eq!(x.expand(frame), vec![]);
        assert!(x.instances.is_empty());
    }

    #[test]
    fn past_the_numbered_instances_a_sample_goes_whole() {
        let mut c = Coalescer::default();
        for i in 0..=MAX_INSTANCES {
            c.hold(sample(100, &format!("n{i}"), 1, "200"));
        }
        let frame = c.take().unwrap();
        assert_eq!((frame.rows.len(), frame.other.len()), (MAX_INSTANCES, 1));
        let got = Expander::default().expand(frame);
        assert_eq!(got.len(), MAX_INSTANCES + 1);
        let nodes: HashSet<_> = got
            .iter()
            .filter_map(|e| match &e.event {
                Event::ProbeSample { node, .. } => node.clone(),
                _ => None,
            })
            .collect();
        assert_eq!(nodes.len(), MAX_INSTANCES + 1);
    }
}
