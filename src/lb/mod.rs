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

pub mod haproxy;
pub mod lab;

use crate::target::LbConfig;

/// The configured balancer of a target.
#[derive(Debug, Clone)]
pub enum LbClient {
    Lab(lab::LabLb),
    Haproxy(haproxy::Haproxy),
}

impl LbClient {
    pub fn from_config(cfg: &LbConfig) -> Result<Self, LbError> {
        match cfg.driver.as_str() {
            "lab" => Ok(LbClient::Lab(lab::LabLb::new(cfg)?)),
            "haproxy" => Ok(LbClient::Haproxy(haproxy::Haproxy::new(cfg)?)),
            other => Err(LbError::Protocol(format!(
                "unknown load-balancer driver {other:?} (expected \"lab\" or \"haproxy\")"
            ))),
        }
    }

    /// Every backend server with its membership and health. `Backend::node` is filled in from
    /// the target's server mapping by the driver.
    pub async fn backends(&self) -> Result<Vec<Backend>, LbError> {
        match self {
            LbClient::Lab(d) => d.backends().await,
            LbClient::Haproxy(d) => d.backends().await,
        }
    }

    /// Set the membership (and optionally the weight) of the server that fronts `node`.
    pub async fn set_membership(
        &self,
        node: &str,
        state: Membership,
        weight: Option<u16>,
    ) -> Result<(), LbError> {
        match self {
            LbClient::Lab(d) => d.set_membership(node, state, weight).await,
            LbClient::Haproxy(d) => d.set_membership(node, state, weight).await,
        }
    }
}
