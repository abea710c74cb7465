//! Generated journals of any length: the body of a real lab journal (a 23-step rolling upgrade
//! on three nodes, `tests/fixtures/lab-generic-rolling.jsonl`) repeated with fresh `seq` and
//! `t_ms` stamps, so the mix of events is a real session's. The last event starts an action
//! that never finishes, as when the session's process died (what `resume` picks up).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/lab-generic-rolling.jsonl"
);

pub struct Generated {
    pub path: PathBuf,
    pub events: usize,
    pub bytes: u64,
}

/// One body line: the gap to the previous line and everything after its `t_ms`.
struct Line {
    gap_ms: u64,
    rest: String,
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{FIXTURE}: {why}"))
}

/// `{"seq":N,"t_ms":T,REST` → (T, REST).
fn split_stamp(line: &str) -> io::Result<(u64, &str)> {
    let after_seq = line
        .strip_prefix("{\"seq\":")
        .and_then(|l| l.split_once(",\"t_ms\":"))
        .ok_or_else(|| invalid("an event line does not start with seq and t_ms"))?
        .1;
    let (t, rest) = after_seq
        .split_once(',')
        .ok_or_else(|| invalid("an event line ends after t_ms"))?;
    let t = t.parse().map_err(|_| invalid("t_ms is not a number"))?;
    Ok((t, rest))
}

/// Write a journal of exactly `events` events (at least 2) to `dir`.
pub fn generate(dir: &Path, events: usize) -> io::Result<Generated> {
    let text = std::fs::read_to_string(FIXTURE)?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().ok_or_else(|| invalid("empty"))?;
    let started = lines.next().ok_or_else(|| invalid("no session_started"))?;
    let mut body = Vec::new();
    let mut prev = None;
    for l in lines {
        if l.contains("\"type\":\"finished\"") {
            continue;
        }
        let (t, rest) = split_stamp(l)?;
        body.push(Line {
            gap_ms: prev.map_or(10, |p| t.saturating_sub(p)),
            rest: rest.to_string(),
        });
        prev = Some(t);
    }
    if body.is_empty() {
        return Err(invalid("no events after session_started"));
    }
    let path = dir.join(format!("journal-{events}.jsonl"));
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
    writeln!(out, "{header}")?;
    writeln!(out, "{started}")?;
    let (mut t, _) = split_stamp(started)?;
    let mut seq = 1u64;
    for line in body.iter().cycle().take(events.saturating_sub(2)) {
        seq += 1;
        t += line.gap_ms;
        writeln!(out, "{{\"seq\":{seq},\"t_ms\":{t},{}", line.rest)?;
    }
    seq += 1;
    writeln!(
        out,
        "{{\"seq\":{seq},\"t_ms\":{},\"type\":\"action_started\",\"step\":3,\"phase\":\"do\",\"attempt\":1}}",
        t + 5
    )?;
    out.flush()?;
    let bytes = std::fs::metadata(&path)?.len();
    Ok(Generated {
        path,
        events: seq as usize,
        bytes,
    })
}
