//! Lab faults staged for a step of the session (`run --lab --fault KIND:NODE@step=N`, or
//! `@undo=N` for the step's undo). The engine journals every staged fault when the session
//! starts, sends each to the lab's admin API when its step (or its undo) first starts, before
//! that action runs, and journals that it fired — or why the lab refused it — so the replay and
//! the report show what was broken and when.

use std::time::Duration;

use serde_json::json;

/// One fault as the lab spells it (`crash:node2`), and the step it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedFault {
    pub fault: String,
    /// The plan index of the step it takes effect at; None: the lab has had it from its start.
    pub step: Option<usize>,
    /// When that step's action starts (`Do`), or its undo (`Undo`: `@undo=`, during a rollback).
    pub phase: super::event::Phase,
}

/// The faults of a lab run and where the lab takes them.
#[derive(Debug, Clone, Default)]
pub struct LabFaults {
    /// The lab's admin server (`Lab::admin_url`).
    pub admin_url: String,
    pub staged: Vec<StagedFault>,
}

/// How long the lab may take to accept a fault (it answers at once; this only bounds a hang).
const FIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Stage `fault` on the lab now: `POST {admin}/_lab/fault`. Err says why it did not take.
pub async fn fire(http: &reqwest::Client, admin_url: &str, fault: &str) -> Result<(), String> {
    let url = format!("{}/_lab/fault", admin_url.trim_end_matches('/'));
    let resp = http
        .post(&url)
        .json(&json!({ "fault": fault }))
        .timeout(FIRE_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("the lab did not take the fault: {e}"))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    Err(format!(
        "the lab refused the fault ({status}): {}",
        body.get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("no reason given")
    ))
}
