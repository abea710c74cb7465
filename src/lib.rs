//! flightdeck: a terminal cockpit for database-cluster upgrades.
//!
//! The shape: procedures and targets are data (`procedure`, `target`), expanded into a `plan`;
//! the `engine` owns a session, turns `Command`s into `Event`s and appends them to the
//! `journal` before applying them; everything else (cockpit, headless runner, pairing, replay,
//! report) folds the same events.

pub mod cli;
pub mod commands;
pub mod engine;
pub mod headless;
pub mod import;
pub mod journal;
pub mod lab;
pub mod lb;
pub mod limits;
pub mod logging;
pub mod pairing;
pub mod plan;
pub mod procedure;
pub mod replay;
pub mod report;
pub mod target;
pub mod target_load;
pub mod target_overrides;
pub mod terminal_text;
pub mod text_table;
pub mod tls;
pub mod tui;
