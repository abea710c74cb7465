//! Messages from the engine's background work (actions, probes, pollers) back to the engine
//! task, which turns them into events. Work never touches session state directly.

use std::collections::BTreeMap;

use super::event::{Phase, Stream, TrafficWindow};
use crate::lb::Backend;

#[derive(Debug)]
pub enum WorkerMsg {
    Output {
        step: usize,
        phase: Phase,
        attempt: u32,
        stream: Stream,
        line: String,
    },
    Gate {
        step: usize,
        attempt: u32,
        passing: usize,
        total: usize,
        stable_ms: u64,
        need_ms: u64,
    },
    /// A `run` action's command started: its pid and process group.
    Process {
        step: usize,
        phase: Phase,
        attempt: u32,
        pid: u32,
        pgid: u32,
        started: Option<String>,
    },
    Probe {
        probe: String,
        node: Option<String>,
        ok: bool,
        latency_ms: u64,
        detail: String,
        facts: BTreeMap<String, String>,
        /// When the request was sent: the answer tells the node's state at some instant
        /// between then and its arrival.
        sent: tokio::time::Instant,
    },
    Lb(Result<Vec<Backend>, String>),
    /// A lab fault staged for `step` was sent to the lab as the step (or its undo) started.
    FaultFired {
        fault: String,
        step: usize,
        phase: crate::engine::event::Phase,
        error: Option<String>,
    },
    /// Cumulative traffic counters as the load generator reports them.
    Traffic(TrafficWindow),
}
