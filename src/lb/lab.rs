//! The driver for the lab's embedded balancer: JSON over its admin API
//! (`GET {address}/_lab/lb/backends`, `PUT {address}/_lab/lb/backends/{server}`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::{Backend, LbError};
use crate::procedure::model::Membership;
use crate::target::LbConfig;

#[derive(Debug, Clone)]
pub struct LabLb {
    base: String,
    /// Node -> server, when they differ.
    servers: BTreeMap<String, String>,
    client: reqwest::Client,
}

impl LabLb {
    pub fn new(cfg: &LbConfig) -> Result<Self, LbError> {
        let base = cfg.address.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(LbError::Protocol(format!(
                "the lab balancer address must be an http:// URL, not {:?}",
                cfg.address
            )));
        }
        let client = crate::lab::http_client().map_err(|e| LbError::Unreachable {
            address: base.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            base,
            servers: cfg.servers.clone(),
            client,
        })
    }

    fn unreachable(&self, e: reqwest::Error) -> LbError {
        LbError::Unreachable {
            address: self.base.clone(),
            reason: e.to_string(),
        }
    }

    pub async fn backends(&self) -> Result<Vec<Backend>, LbError> {
        let resp = self
            .client
            .get(format!("{}/_lab/lb/backends", self.base))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(LbError::Protocol(format!(
                "GET backends answered {}",
                resp.status()
            )));
        }
        let mut list: Vec<Backend> = resp
            .json()
            .await
            .map_err(|e| LbError::Protocol(format!("backends list: {e}")))?;
        for b in &mut list {
            b.node = Some(
                self.servers
                    .iter()
                    .find(|(_, server)| **server == b.server)
                    .map(|(node, _)| node.clone())
                    .unwrap_or_else(|| b.server.clone()),
            );
        }
        Ok(list)
    }

    pub async fn set_membership(
        &self,
        node: &str,
        state: Membership,
        weight: Option<u16>,
    ) -> Result<(), LbError> {
        let server = self.servers.get(node).map_or(node, String::as_str);
        let resp = self
            .client
            .put(format!("{}/_lab/lb/backends/{server}", self.base))
            .json(&json!({"state": state, "weight": weight}))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(LbError::UnknownServer(server.to_string()));
        }
        Err(LbError::Refused(format!("{status}: {body}")))
    }
}
