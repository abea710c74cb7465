//! Observations from background work — action output and outcomes, probe samples, the
//! balancer's view, traffic — turned into events, with the journal kept compact.

use std::collections::BTreeMap;

use super::*;
use crate::engine::event::{Event, Phase, Stream, TrafficWindow};
use crate::engine::sightings::Reading;
use crate::engine::state::SessionState;
use crate::engine::worker::WorkerMsg;

impl Engine {
    pub(super) fn on_worker(&mut self, msg: WorkerMsg) -> Result<(), EngineError> {
        let current = |s: &SessionState, step: usize, attempt: u32| {
            s.running() == Some(step) && s.steps[step].phase_attempts() == attempt
        };
        match msg {
            WorkerMsg::Output {
                step,
                phase,
                attempt,
                stream,
                line,
            } => {
                if current(&self.state, step, attempt) {
                    self.emit(Event::Output {
                        step,
                        phase,
                        stream,
                        line,
                    })?;
                }
            }
            WorkerMsg::Gate {
                step,
                attempt,
                passing,
                total,
                stable_ms,
                need_ms,
            } => {
                if current(&self.state, step, attempt) {
                    self.emit(Event::GateProgress {
                        step,
                        passing,
                        total,
                        stable_ms,
                        need_ms,
                    })?;
                }
            }
            WorkerMsg::FaultFired {
                fault,
                step,
                phase,
                error,
            } => {
                // Also a line of the step's output: the cockpit (live and in replay) shows it
                // where the operator looks when the step misbehaves.
                let line = match &error {
                    None if phase == Phase::Undo => {
                        format!("lab fault {fault} took effect as this step's undo started")
                    }
                    None => format!("lab fault {fault} took effect as this step started"),
                    Some(e) => format!("lab fault {fault} did not take effect: {e}"),
                };
                self.emit(Event::FaultFired {
                    fault,
                    step,
                    phase,
                    error,
                })?;
                if self.state.running() == Some(step) {
                    self.emit(Event::Output {
                        step,
                        phase,
                        stream: Stream::Info,
                        line,
                    })?;
                }
            }
            WorkerMsg::Process {
                step,
                phase,
                attempt,
                pid,
                pgid,
                started,
            } => {
                if current(&self.state, step, attempt) {
                    self.emit(Event::ProcessStarted {
                        step,
                        phase,
                        pid,
                        pgid,
                        started,
                    })?;
                }
            }
            WorkerMsg::Probe {
                probe,
                node,
                ok,
                latency_ms,
                detail,
                mut facts,
                sent,
            } => {
                let key = (probe.clone(), node.clone());
                self.probe_stats
                    .entry(key.clone())
                    .or_default()
                    .push((ok, latency_ms));
                let changed = self.probe_ok.insert(key, ok) != Some(ok);
                self.emit(Event::ProbeSample {
                    probe: probe.clone(),
                    node: node.clone(),
                    ok,
                    latency_ms,
                    detail: detail.clone(),
                })?;
                if changed {
                    self.emit(Event::ProbeChanged {
                        probe,
                        node: node.clone(),
                        ok,
                        detail,
                    })?;
                }
                if let Some(n) = node {
                    let known = self.state.node(&n);
                    let mut prior_sent_ms = None;
                    let sent_ms = self.ms_at(sent);
                    if let Some(state) = facts.get("state") {
                        match self.sightings.read(&n, state, sent_ms) {
                            // Read before the current state was: what it says is older.
                            Reading::Stale => facts.clear(),
                            Reading::Current { prior_sent_ms: p } => prior_sent_ms = p,
                        }
                    }
                    let read = facts.contains_key("state") || facts.contains_key("reason");
                    let fresh: BTreeMap<String, String> = facts
                        .into_iter()
                        .filter(|(k, v)| known.and_then(|kn| kn.facts.get(k)) != Some(v))
                        .collect();
                    let state_moved = fresh.contains_key("state") || fresh.contains_key("reason");
                    if known.is_some() && !fresh.is_empty() {
                        self.emit(Event::NodeFacts {
                            node: n.clone(),
                            prior_sent_ms: prior_sent_ms.filter(|_| fresh.contains_key("state")),
                            facts: fresh,
                        })?;
                    }
                    if read {
                        self.publish_node_state(&n, sent_ms, state_moved);
                    }
                }
            }
            WorkerMsg::Lb(result) => {
                let (backends, error) = match result {
                    Ok(b) => (b, None),
                    Err(e) => (self.state.lb.clone(), Some(e)),
                };
                let strip = |v: &[crate::lb::Backend]| {
                    v.iter()
                        .map(|b| crate::lb::Backend {
                            sessions: None,
                            ..b.clone()
                        })
                        .collect::<Vec<_>>()
                };
                let same = self.last_lb.as_deref().map(strip) == Some(strip(&backends))
                    && self.last_lb_error == error;
                if !same {
                    self.last_lb = Some(backends.clone());
                    self.last_lb_error = error.clone();
                    self.emit(Event::LbChanged { backends, error })?;
                } else if error.is_none() && self.last_lb.as_ref() != Some(&backends) {
                    self.last_lb = Some(backends.clone());
                    self.emit(Event::LbSample { backends })?;
                }
            }
            WorkerMsg::Traffic(totals) => {
                let now = self.now_ms();
                if let Some(prev) = self.traffic_seen {
                    let delta = TrafficWindow {
                        reads_ok: totals.reads_ok.saturating_sub(prev.reads_ok),
                        reads_failed: totals.reads_failed.saturating_sub(prev.reads_failed),
                        writes_ok: totals.writes_ok.saturating_sub(prev.writes_ok),
                        writes_rejected: totals
                            .writes_rejected
                            .saturating_sub(prev.writes_rejected),
                        writes_failed: totals.writes_failed.saturating_sub(prev.writes_failed),
                    };
                    self.traffic_window.add(&delta);
                } else {
                    self.traffic_since = now;
                }
                self.traffic_seen = Some(totals);
                let w = self.traffic_window;
                let any =
                    w.reads_ok + w.reads_failed + w.writes_ok + w.writes_rejected + w.writes_failed
                        > 0;
                let failing = w.reads_failed + w.writes_failed > 0;
                let due = now.saturating_sub(self.traffic_since) >= TRAFFIC_EVERY_MS;
                if any && (due || failing) {
                    self.emit(Event::Traffic {
                        window_ms: now.saturating_sub(self.traffic_since).max(1),
                        counts: w,
                    })?;
                    self.traffic_window = TrafficWindow::default();
                    self.traffic_since = now;
                } else if !any && due {
                    self.traffic_since = now;
                }
            }
        }
        Ok(())
    }

    pub(super) fn emit_summaries(&mut self) -> Result<(), EngineError> {
        let stats = std::mem::take(&mut self.probe_stats);
        for ((probe, node), samples) in stats {
            if samples.is_empty() {
                continue;
            }
            let mut lat: Vec<u64> = samples.iter().map(|(_, l)| *l).collect();
            lat.sort_unstable();
            self.emit(Event::ProbeSummary {
                probe,
                node,
                count: samples.len() as u32,
                failures: samples.iter().filter(|(ok, _)| !ok).count() as u32,
                min_ms: lat[0],
                median_ms: lat[lat.len() / 2],
                max_ms: lat[lat.len() - 1],
            })?;
        }
        Ok(())
    }
}
