//! flightdeck: a terminal cockpit for database-cluster upgrades.
//!
//! The shape: procedures and targets are data (`procedure`, `target`), expanded into a `plan`;
//! the `engine` owns a session, turns `Command`s into `Event`s and appends them to the
//! `journal` before applying them; everything else (cockpit, headless runner, pairing, replay,
//! report) folds the same events.

pub mod cli;
pub mod engine;
pub mod journal;
pub mod lb;
pub mod plan;
pub mod procedure;
pub mod replay;
pub mod report;
pub mod target;
pub mod tls;
