//! Replay a recorded session from its journal.
//!
//! - [`timeline`]: the pure layout of a journal — replay clock with idle gaps compressed, step
//!   boundaries, decision points, and `state_at(index)` from periodic snapshots.
pub mod timeline;
