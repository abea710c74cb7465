//! `flightdeck journals`: the recorded sessions in the journals folder — procedure, target,
//! start, outcome and path — newest first. Each journal is read (its header and a fold of its
//! events), so a file's name does not matter: old `NAME-<unix secs>.jsonl` journals list like
//! new `NAME-2026-12-01T21-30-05.jsonl` ones.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::engine::state::Mode;
use crate::engine::SessionState;
use crate::journal::{self, ReadOptions};

/// One recorded session as the listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRow {
    /// RFC 3339, UTC, from the journal's header.
    pub started: String,
    pub procedure: String,
    pub target: String,
    pub outcome: String,
    pub path: PathBuf,
    /// The start to the millisecond, when the header has it (orders sessions of one second).
    pub started_ms: Option<u64>,
}

pub fn run(dir: Option<&Path>) -> ExitCode {
    let dir = dir.map_or_else(journal::journals_dir, Path::to_path_buf);
    let rows = list(&dir);
    if rows.is_empty() {
        println!("no journals in {}", dir.display());
    } else {
        print!("{}", render_table(&rows));
    }
    ExitCode::SUCCESS
}

/// Every `*.jsonl` journal in `dir` and its group folders (`g<gid>/`), newest first. A file
/// that is not a readable journal is listed with why.
pub fn list(dir: &Path) -> Vec<JournalRow> {
    let mut files = jsonl_files(dir);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let group_folder = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('g'));
            if group_folder && p.is_dir() {
                files.extend(jsonl_files(&p));
            }
        }
    }
    // Only our own session files: another user's can claim any journal path.
    let me = crate::pairing::runtime_dir::current_uid();
    let live: Vec<(String, PathBuf)> = crate::pairing::registry::list()
        .into_iter()
        .filter(|s| s.alive && s.owner_uid == me)
        .filter_map(|s| std::fs::canonicalize(&s.journal).ok().map(|j| (s.name, j)))
        .collect();
    let mut rows: Vec<JournalRow> = files.iter().map(|p| row(p, &live)).collect();
    rows.sort_by(|a, b| {
        (&b.started, b.started_ms)
            .cmp(&(&a.started, a.started_ms))
            .then(a.path.cmp(&b.path))
    });
    rows
}

fn jsonl_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl") && p.is_file())
        .collect()
}

fn row(path: &Path, live: &[(String, PathBuf)]) -> JournalRow {
    // A damaged line should not hide a session from the list: read past it.
    let opts = ReadOptions {
        skip_bad_lines: true,
    };
    let j = match journal::read_with(path, opts) {
        Ok(j) => j,
        Err(e) => {
            return JournalRow {
                started: "-".into(),
                procedure: "-".into(),
                target: "-".into(),
                outcome: format!("unreadable: {}", short_error(&e.to_string(), path)),
                path: path.to_path_buf(),
                started_ms: None,
            }
        }
    };
    let state = SessionState::fold(&j.events);
    let canonical = std::fs::canonicalize(path).ok();
    let live_name = live
        .iter()
        .find(|(_, p)| Some(p) == canonical.as_ref())
        .map(|(n, _)| n.as_str());
    JournalRow {
        started: j.header.started_at.clone(),
        procedure: j.header.procedure.clone(),
        target: j.header.target.clone(),
        outcome: outcome(&state, live_name),
        path: path.to_path_buf(),
        started_ms: j.header.started_unix_ms,
    }
}

/// The error without the path the table already shows.
fn short_error(e: &str, path: &Path) -> String {
    e.strip_prefix(&format!("{}: ", path.display()))
        .unwrap_or(e)
        .to_string()
}

/// How the session ended, or where it stands.
pub fn outcome(state: &SessionState, live: Option<&str>) -> String {
    let total = state.steps.len();
    let done = state
        .steps
        .iter()
        .filter(|s| s.status == crate::engine::state::StepStatus::Succeeded)
        .count();
    match state.mode {
        Mode::Finished(o) => {
            let word = match o {
                crate::engine::event::Outcome::Completed => "completed",
                crate::engine::event::Outcome::Aborted => "aborted",
                crate::engine::event::Outcome::RolledBack => "rolled back",
            };
            format!("{word} ({done}/{total} steps done)")
        }
        _ => {
            let at = state
                .cursor()
                .map_or_else(String::new, |c| format!(" at step {}/{total}", c + 1));
            match live {
                Some(name) => format!("live{at}: flightdeck join {name}"),
                None if state.mode == Mode::RollingBack => format!("unfinished, rolling back{at}"),
                None => format!("unfinished{at}: flightdeck resume PATH"),
            }
        }
    }
}

pub fn render_table(rows: &[JournalRow]) -> String {
    let mut table = vec![[
        "STARTED (UTC)".to_string(),
        "PROCEDURE".into(),
        "TARGET".into(),
        "OUTCOME".into(),
        "PATH".into(),
    ]];
    for r in rows {
        table.push([
            r.started.clone(),
            r.procedure.clone(),
            r.target.clone(),
            r.outcome.clone(),
            r.path.display().to_string(),
        ]);
    }
    crate::text_table::columns(&table)
}
