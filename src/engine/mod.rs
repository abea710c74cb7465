//! The engine: owns one session. Takes `Command`s, emits `Event`s, journals each event before
//! applying it, and runs actions and probes whose results come back only as events.

pub mod client;
pub mod command;
pub mod event;
pub mod state;

pub use command::{Command, Rejected};
pub use event::{Event, Stamped};
pub use state::SessionState;
