//! Load-balancer drivers behind one interface: the engine's `lb` actions and the LB panel use
//! [`LbClient`] and never know which balancer is behind it.

use serde::{Deserialize, Serialize};

use crate::procedure::model::Membership;

/// One backend server as the balancer sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Backend {
    /// Server name in the balancer.
    pub server: String,
    /// The target node it maps to, when known.
    #[serde(default)]
    pub node: Option<String>,
    pub membership: Membership,
    /// The balancer's own health verdict for it (`UP`, `DOWN`, `MAINT`, ...).
    pub health: String,
    /// Whether the balancer currently sends it new requests.
    pub serving: bool,
    /// Current sessions, when the balancer reports them.
    #[serde(default)]
    pub sessions: Option<u64>,
    #[serde(default)]
    pub weight: Option<u16>,
    /// The balancer's health-check status text (`L7OK`, ...), when it has one.
    #[serde(default)]
    pub check: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LbError {
    #[error("load balancer unreachable at {address}: {reason}")]
    Unreachable { address: String, reason: String },
    #[error("the load balancer has no server {0:?}")]
    UnknownServer(String),
    #[error("the load balancer has no backend {0:?}")]
    UnknownBackend(String),
    #[error("the load balancer refused: {0}")]
    Refused(String),
    #[error("unexpected answer from the load balancer: {0}")]
    Protocol(String),
}
