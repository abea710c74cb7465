//! The report as JSON, for scripts and dashboards: the `Report` fields as they are named in
//! Rust (except `outcome`, the outcome's words, and `result`, its kind), durations in
//! milliseconds, times as milliseconds since the session started.

use super::Report;

/// The report as pretty-printed JSON.
pub fn json(report: &Report) -> String {
    // `Report` is plain data with string keys, which serde_json always serializes; the fallback
    // only keeps this function total.
    serde_json::to_string_pretty(report)
        .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
}
