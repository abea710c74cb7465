//! PLACEHOLDER replaced by the haproxy driver work (never lands as is).

use super::{Backend, LbError};
use crate::procedure::model::Membership;
use crate::target::LbConfig;

#[derive(Debug, Clone)]
pub struct Haproxy {
    cfg: LbConfig,
}

impl Haproxy {
    pub fn new(cfg: &LbConfig) -> Result<Self, LbError> {
        Ok(Self { cfg: cfg.clone() })
    }

    pub async fn backends(&self) -> Result<Vec<Backend>, LbError> {
        Err(LbError::Protocol(format!("{} driver pending", self.cfg.driver)))
    }

    pub async fn set_membership(
        &self,
        _node: &str,
        _state: Membership,
        _weight: Option<u16>,
    ) -> Result<(), LbError> {
        Err(LbError::Protocol(format!("{} driver pending", self.cfg.driver)))
    }
}
