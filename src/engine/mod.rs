//! The engine: owns one session. Takes `Command`s, emits `Event`s, journals each event before
//! applying it, and runs actions and probes whose results come back only as events.

pub mod action;
pub mod check;
pub mod client;
pub mod command;
pub mod event;
pub mod guard;
pub mod hold;
pub mod identity;
pub mod lab_faults;
pub mod outcome;
pub mod probe;
pub mod process;
pub mod secret_stream;
pub mod session;
pub mod sightings;
pub mod state;
pub mod strings;
pub mod verify;
pub mod worker;

pub use command::{Command, Rejected};
pub use event::{Event, Stamped};
pub use state::SessionState;
