//! Replay a recorded session from its journal.
//!
//! - [`timeline`]: the pure layout of a journal — replay clock with idle gaps compressed, step
//!   boundaries, decision points, and `state_at(index)` from periodic snapshots.
//! - [`player`]: plays a timeline as a `SessionClient` feed on the replay clock, with a
//!   `ReplayControl` for pause, speed, jumps and seeks (see its module doc for how a view
//!   follows it).
//! - [`quiz`]: training: stop before each of the recorded operator's decisions, ask, compare.

pub mod player;
pub mod quiz;
pub mod timeline;
