//! Pairing: a session served on a private Unix socket so it outlives the terminal that started
//! it, and so a second operator can join it (watch, approve, take over).
//!
//! The wire is JSON lines (`protocol`); the server bridges each accepted connection to
//! `EngineHandle::attach` (`server`); the client turns a socket back into the same
//! `SessionClient` an in-process view holds (`client`). Access is the socket's file mode plus a
//! check of the peer's credentials (`peercred`); sessions are found by their files in a private
//! runtime directory (`runtime_dir`, `registry`).

pub mod client;
mod connection;
pub mod daemon;
pub mod names;
pub mod peercred;
pub mod protocol;
pub mod registry;
pub mod runtime_dir;
pub mod samples;
pub mod server;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The runtime directory exists but is not safe to use.
    #[error("{path}: {reason}")]
    UnsafeDir { path: PathBuf, reason: String },
    #[error("no session named {0:?} is running (see `flightdeck sessions`)")]
    NoSuchSession(String),
    #[error("no session is running")]
    NoSession,
    #[error("several sessions are running; name one: {}", .0.join(", "))]
    Ambiguous(Vec<String>),
    /// Only other users' sessions run: `join` picks none of them by itself.
    #[error(
        "no session of yours is running; to join another user's, name it: {}",
        .0.join(", ")
    )]
    OnlyOthers(Vec<String>),
    /// The socket is not served by the process and user its session file names.
    #[error("{socket}: {reason}; not joining it")]
    NotItsServer { socket: PathBuf, reason: String },
    #[error("a session named {0:?} is already running")]
    NameTaken(String),
    #[error("invalid session name {0:?}: use letters, digits, '-' and '_' (at most 64)")]
    BadName(String),
    #[error("no group named {0:?}")]
    NoSuchGroup(String),
    #[error("the session refused the connection: {0}")]
    Refused(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("the session has ended")]
    SessionGone,
    #[error("{0}")]
    Spawn(String),
    /// The engine stopped with an error (journal I/O).
    #[error("the session engine failed: {0}")]
    Engine(String),
}

impl PairingError {
    fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> PairingError {
        let path = path.into();
        move |source| PairingError::Io { path, source }
    }
}
