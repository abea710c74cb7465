//! Events: everything that happens in a session. The journal stores them (one JSON line each),
//! `state::apply` folds them, and every view — cockpit, headless printer, joined operator, replay,
//! report — consumes the same stream.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::lb::Backend;
use crate::plan::Plan;
use crate::target::Node;

/// An event with its place in the session: `seq` orders journaled events (1-based, contiguous);
/// `t_ms` is milliseconds since the session started (monotonic, continued across resumes).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stamped {
    pub seq: u64,
    pub t_ms: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// Whether a step's action or its compensating action is meant.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    #[default]
    Do,
    Undo,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
    /// flightdeck's own narration of an action (HTTP status, gate progress, ...).
    Info,
}

/// What an open prompt asks the driver.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PromptKind {
    /// Run the step (y/N or phrase, per the step's confirm policy).
    Run,
    /// Run the step's compensating action.
    Undo,
    /// The action or gate failed or was inconclusive: retry, undo, skip or abort.
    Failed,
    /// The action was running when the session died: re-run, mark done, or undo.
    Interrupted,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Passed,
    Failed,
    /// A gate that timed out without a verdict.
    Inconclusive,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    Aborted,
    RolledBack,
}

/// How the session confirms on its own (`--yes`), journaled so a reader knows nobody typed `y`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct AutoConfirm {
    pub yes: bool,
    pub yes_phrases: bool,
    /// Headless `--on-failure rollback`: answer a failure by aborting with rollback.
    #[serde(default)]
    pub rollback_on_failure: bool,
}

/// Traffic counters over a window (the lab's load generator).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(default)]
pub struct TrafficWindow {
    // Aliases: the lab's `/_lab/traffic` report names them the other way round.
    #[serde(alias = "ok_reads")]
    pub reads_ok: u64,
    #[serde(alias = "failed_reads")]
    pub reads_failed: u64,
    #[serde(alias = "ok_writes")]
    pub writes_ok: u64,
    #[serde(alias = "rejected_writes")]
    pub writes_rejected: u64,
    #[serde(alias = "failed_writes")]
    pub writes_failed: u64,
}

impl TrafficWindow {
    pub fn add(&mut self, o: &TrafficWindow) {
        self.reads_ok += o.reads_ok;
        self.reads_failed += o.reads_failed;
        self.writes_ok += o.writes_ok;
        self.writes_rejected += o.writes_rejected;
        self.writes_failed += o.writes_failed;
    }
}

/// Defines [`Event`] and, from the same variant list, `ByType`: serde's derive of `Event` for
/// a line whose `type` is already known (see [`decode_typed`]). Event lines are internally
/// tagged (`{"type":"output",...}`), and serde reads an internally tagged enum by first copying
/// every field of the line into a generic tree, then reading the variant from that; knowing
/// the type first lets the variant read the line itself. One list, so the two cannot drift.
/// (rustfmt leaves the list inside the macro as written.)
macro_rules! events {
    (
        $(#[$meta:meta])*
        pub enum Event {
            $( $(#[$vmeta:meta])* $variant:ident { $($fields:tt)* } ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub enum Event {
            $( $(#[$vmeta])* $variant { $($fields)* } ),*
        }

        /// `Event` read as externally tagged: the variant is given, its fields follow.
        #[derive(Deserialize)]
        #[serde(remote = "Event", rename_all = "snake_case")]
        #[allow(dead_code)] // only its derived `deserialize` is used
        enum ByType {
            $( $(#[$vmeta])* $variant { $($fields)* } ),*
        }
    };
}

events! {
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// First event of every journal: the whole plan, so a journal replays without its files.
    SessionStarted {
        /// Boxed, like `target`: an event is as large as its largest variant, and a journal
        /// holds one of these and up to millions of small events (a replay keeps them all).
        plan: Box<Plan>,
        nodes: Vec<Node>,
        operator: String,
        auto: AutoConfirm,
        /// The target's load-balancer driver, if it has one.
        lb: Option<String>,
        /// Probes whose verdict is a node's health in the nodes panel.
        #[serde(default)]
        health_probes: Vec<String>,
        /// The target as it was, so `resume` can carry on without the file. Holds no secret
        /// values (only the names of the variables they come from), and no call bindings
        /// (`actions`): the plan holds each call already bound.
        #[serde(default)]
        target: Option<Box<crate::target::Target>>,
    },
    /// The session was picked up again from its journal (after a crash or a detach).
    Resumed {
        operator: String,
        /// Damaged journal lines this resume left out (`--skip-bad-lines`); a reader accepts
        /// them from then on.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        skipped_lines: Vec<usize>,
        /// Wall-clock time since the last journaled event, when the clock says so: the time
        /// flightdeck was down (stamps after this event include it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        down_ms: Option<u64>,
    },
    PromptOpened {
        /// Confirms must name the prompt they answer, so a key typed for an older prompt
        /// can never answer a newer one.
        id: u64,
        step: usize,
        prompt: PromptKind,
    },
    /// One operator's approval of an open prompt (two-person rule); the prompt closes with
    /// `Confirmed` once enough distinct operators approved.
    Approved {
        step: usize,
        /// The approver's user name (from the kernel, not the label they chose).
        by: String,
        /// The approver's uid: the two-person rule counts distinct uids. Absent in journals
        /// written before identities came from the kernel.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        /// This is the driver's confirm, on record until another user approves; the step
        /// runs then (only a driver's confirm ever runs a step).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        confirm: bool,
    },
    Confirmed {
        step: usize,
        by: String,
        auto: bool,
    },
    Declined {
        step: usize,
        by: String,
    },
    ActionStarted {
        step: usize,
        phase: Phase,
        attempt: u32,
    },
    /// A `run` action's command started in its own process group (journaled before it can
    /// do much, so a resume after a crash can find what is still running).
    ProcessStarted {
        step: usize,
        phase: Phase,
        pid: u32,
        pgid: u32,
        /// What tells this leader from a later process given the same pid (the kernel reuses
        /// pids): `process::start_identity`. Absent in older journals and where /proc can't
        /// tell.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started: Option<String>,
    },
    /// On resume: the process group of an interrupted action is still alive. Nothing re-runs
    /// the step until it is gone (waited for, or killed on request).
    OrphanAlive {
        step: usize,
        pgid: u32,
    },
    /// That process group has ended: by itself, or killed (`killed_by`).
    OrphanGone {
        step: usize,
        pgid: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        killed_by: Option<String>,
    },
    Output {
        step: usize,
        phase: Phase,
        stream: Stream,
        line: String,
    },
    /// Live only (not journaled): how far a wait gate is.
    GateProgress {
        step: usize,
        passing: usize,
        total: usize,
        stable_ms: u64,
        need_ms: u64,
    },
    ActionFinished {
        step: usize,
        phase: Phase,
        attempt: u32,
        verdict: Verdict,
        detail: String,
    },
    Skipped {
        step: usize,
        by: String,
    },
    /// The decision on an optional step (`optional = "why"`): run or skip, who chose (the
    /// kernel's user name, as for approvals), and their reason. `auto`: `--yes` took the
    /// procedure's declared default. A skip is followed by `Skipped`.
    OptionalChosen {
        step: usize,
        choice: crate::procedure::model::OptionalChoice,
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        auto: bool,
    },
    MarkedDone {
        step: usize,
        by: String,
        /// `undo` when an interrupted or failed undo was marked done (the step is then undone).
        #[serde(default, skip_serializing_if = "is_do")]
        phase: Phase,
    },
    /// Live only: one probe result.
    ProbeSample {
        probe: String,
        node: Option<String>,
        ok: bool,
        latency_ms: u64,
        detail: String,
    },
    /// A probe changed verdict (healthy -> failing, first success after failure).
    ProbeChanged {
        probe: String,
        node: Option<String>,
        ok: bool,
        detail: String,
    },
    /// Per-probe summary over the last interval (journal stays small; live views see samples).
    ProbeSummary {
        probe: String,
        node: Option<String>,
        count: u32,
        failures: u32,
        min_ms: u64,
        median_ms: u64,
        max_ms: u64,
    },
    /// Facts a probe read from a node changed (version, role, read_only, ...).
    NodeFacts {
        node: String,
        facts: BTreeMap<String, String>,
        /// When `facts` moves the node's `state`: when (session ms) the last request whose
        /// answer still read the state it left was sent. The product answered after that
        /// instant, so the change came later: a step that had finished by then did not make
        /// it (see `SessionState::state_moved_by`). Stamped at sending, not at receipt: an
        /// answer can arrive after a step ended that was read before it did. Absent when the
        /// engine saw no such answer; older journals have the receipt time (`prior_seen_ms`).
        #[serde(
            default,
            alias = "prior_seen_ms",
            skip_serializing_if = "Option::is_none"
        )]
        prior_sent_ms: Option<u64>,
    },
    /// Live only: the balancer's view, when only its session counts moved (they change all the
    /// time under load; the journal keeps the membership and health changes).
    LbSample {
        backends: Vec<Backend>,
    },
    /// The balancer's view changed.
    LbChanged {
        backends: Vec<Backend>,
        error: Option<String>,
    },
    Traffic {
        window_ms: u64,
        counts: TrafficWindow,
    },
    Note {
        by: String,
        text: String,
    },
    AbortRequested {
        by: String,
        rollback: bool,
        /// Why, as the operator said it (absent in older journals and when none was given).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The driver overrode the refusal of a full rollback past the point of no return: who
    /// (the kernel's user), why, and what the engine said would be lost. `AbortRequested` with
    /// rollback follows, and that rollback goes past the irreversible steps.
    RollbackOverridden {
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        reason: String,
        /// The first irreversible step done (the point of no return).
        step: usize,
        /// What the refusal said a full rollback would lose.
        lost: String,
    },
    /// A guard refused an action that takes a node out of service: the refusal the sender got
    /// (or what keeps `--yes` from going on), with the live reasons it counted.
    GuardRefused {
        step: usize,
        phase: Phase,
        guard: String,
        node: String,
        by: String,
        reason: String,
    },
    /// The driver overrode guard `guard` for the next action of step `step`: who (the kernel's
    /// user), why, and what the guard had said.
    GuardOverridden {
        step: usize,
        guard: String,
        node: String,
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        reason: String,
        refusal: String,
    },
    /// A lab fault staged for this session (`run --lab --fault KIND:NODE[@step=N|@undo=N]`): in
    /// force from the lab's start (`step` absent), or to take effect when step `step` first
    /// starts — its action (`phase` do), or its undo (`@undo=`: during a rollback).
    FaultStaged {
        fault: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<usize>,
        #[serde(default, skip_serializing_if = "is_do")]
        phase: Phase,
    },
    /// A staged fault took effect as its step (or its undo) started; `error` when the lab
    /// refused it.
    FaultFired {
        fault: String,
        step: usize,
        #[serde(default, skip_serializing_if = "is_do")]
        phase: Phase,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A rollback could not go further back (an irreversible step, or an undo without action).
    RollbackStopped {
        reason: String,
    },
    /// The last undo of a rollback is done: the procedure's `[[rollback.verify]]` checks run
    /// (again after a resume: they only read).
    VerifyStarted {
        /// How many checks the procedure declares.
        checks: usize,
    },
    /// What the rollback's verification found. `verified` only when every check held on every
    /// node and nothing else stands in the way (`why_not`: an undo skipped, no checks declared).
    VerifyFinished {
        verified: bool,
        /// Each node's checks (and, without a node, the checks about the whole cluster).
        #[serde(default)]
        nodes: Vec<NodeVerdict>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        why_not: Vec<String>,
    },
    Finished {
        outcome: Outcome,
    },
    OperatorJoined {
        id: u64,
        /// How the operator shows (their label, with the real user when it differs).
        name: String,
        driver: bool,
        /// The real user (from the kernel: the connection's peer uid). Absent in journals
        /// written before identities came from the kernel.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
    },
    OperatorLeft {
        id: u64,
    },
    DriverChanged {
        id: u64,
        name: String,
        /// Why control was taken rather than handed over (a takeover), by whom.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The session's owner removed an operator: their connection closes and their user may
    /// not join this session again.
    OperatorRemoved {
        id: u64,
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
    },
    ControlRequested {
        id: u64,
        name: String,
    },
}
}

/// One node after a rollback, as its verification saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeVerdict {
    /// None for checks about the whole cluster rather than one node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub ok: bool,
    pub checks: Vec<CheckVerdict>,
}

/// One verify check on one node: what it checks, whether it held, and what was seen (when it
/// failed: the product's own reason, as its response gave it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckVerdict {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

fn is_do(p: &Phase) -> bool {
    *p == Phase::Do
}

impl Event {
    /// Decisions and outcomes are fsynced before the engine acts on them; observations
    /// (output lines, probe changes, traffic) ride along with the next sync. So do operators
    /// joining and leaving: presence, not a decision (any decision a joiner then makes is
    /// fsynced, and the join with it, being earlier in the file), and each reconnect would
    /// otherwise cost an fsync on the engine's path.
    pub fn is_durable(&self) -> bool {
        !matches!(
            self,
            Event::Output { .. }
                | Event::OperatorJoined { .. }
                | Event::OperatorLeft { .. }
                | Event::ProbeChanged { .. }
                | Event::ProbeSummary { .. }
                | Event::NodeFacts { .. }
                | Event::LbChanged { .. }
                | Event::Traffic { .. }
        )
    }

    /// Events that only live subscribers see; the journal keeps summaries instead.
    pub fn is_live_only(&self) -> bool {
        matches!(
            self,
            Event::ProbeSample { .. } | Event::GateProgress { .. } | Event::LbSample { .. }
        )
    }

    /// [`Event::is_live_only`] from a line's `type` alone, for readers that do not decode
    /// the line (`journal::index`). A unit test holds the two in step.
    pub fn is_live_only_tag(tag: &[u8]) -> bool {
        matches!(tag, b"probe_sample" | b"gate_progress" | b"lb_sample")
    }
}

/// An optional step's decision in words, for the report and the headless log:
/// `skip, chosen by alice: the indices are rebuilt tonight anyway`.
pub fn optional_choice_words(
    choice: crate::procedure::model::OptionalChoice,
    by: &str,
    reason: Option<&str>,
) -> String {
    match reason {
        Some(r) => format!("{choice}, chosen by {by}: {r}"),
        None => format!("{choice}, chosen by {by} (no reason given)"),
    }
}

/// Read the event of a journal line whose `type` is known to be `tag`, without serde's generic
/// copy of the line: the variant's fields are read from `line` itself (the `seq`, `t_ms` and
/// `type` keys there are not fields of any variant and are passed over).
pub(crate) fn decode_typed(tag: &str, line: &str) -> Result<Event, serde_json::Error> {
    ByType::deserialize(typed::Typed { tag, line })
}

/// A journal line presented to serde as an externally tagged enum: `tag` names the variant,
/// `line` holds its fields.
mod typed {
    use serde::de::{self, DeserializeSeed, Visitor};
    use serde::forward_to_deserialize_any;

    pub(super) struct Typed<'a> {
        pub tag: &'a str,
        pub line: &'a str,
    }

    impl<'de> de::Deserializer<'de> for Typed<'de> {
        type Error = serde_json::Error;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            visitor.visit_enum(self)
        }

        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map struct enum identifier ignored_any
        }
    }

    impl<'de> de::EnumAccess<'de> for Typed<'de> {
        type Error = serde_json::Error;
        type Variant = Self;

        fn variant_seed<S: DeserializeSeed<'de>>(
            self,
            seed: S,
        ) -> Result<(S::Value, Self), Self::Error> {
            let tag = de::value::BorrowedStrDeserializer::<serde_json::Error>::new(self.tag);
            Ok((seed.deserialize(tag)?, self))
        }
    }

    impl<'de> de::VariantAccess<'de> for Typed<'de> {
        type Error = serde_json::Error;

        fn unit_variant(self) -> Result<(), Self::Error> {
            Ok(())
        }

        fn newtype_variant_seed<T: DeserializeSeed<'de>>(
            self,
            seed: T,
        ) -> Result<T::Value, Self::Error> {
            let mut json = serde_json::Deserializer::from_str(self.line);
            let value = seed.deserialize(&mut json)?;
            json.end()?;
            Ok(value)
        }

        fn tuple_variant<V: Visitor<'de>>(
            self,
            _len: usize,
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("an event is never a tuple variant"))
        }

        fn struct_variant<V: Visitor<'de>>(
            self,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Self::Error> {
            let mut json = serde_json::Deserializer::from_str(self.line);
            let value = de::Deserializer::deserialize_struct(&mut json, "", fields, visitor)?;
            json.end()?;
            Ok(value)
        }
    }
}
