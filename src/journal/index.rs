//! A journal indexed without decoding its events: where each event's line starts and its
//! session clock, for a reader (replay) that reads events where it needs them.

use std::fs::File;
use std::path::Path;

use super::checks::{stamps, Checks};
use super::lines::Lines;
use super::{decode_line, header_of, io, starts, Header, JournalError, ReadOptions};
use crate::engine::Event;

/// A journal indexed for reading at any event without decoding the others: where each event's
/// line starts and its session clock. [`index`] makes it.
#[derive(Debug, Clone)]
pub struct Index {
    pub header: Header,
    /// Byte offset of each event's line, in order. Lines left out (damaged, misplaced, live-only)
    /// have none: event `i` is the `i`-th line kept.
    pub offsets: Vec<u64>,
    /// Each event's `t_ms`.
    pub t_ms: Vec<u64>,
    /// Whether the kept events are numbered 1, 2, 3, ... without a gap.
    pub contiguous: bool,
    /// Events before which the file has a line that is no event (a blank, damaged or misplaced
    /// one), once per such line: what turns an event's index into its line number.
    lines_between: Vec<usize>,
    pub torn_tail: Option<String>,
    pub intact_len: u64,
    pub skipped: Vec<(usize, String)>,
    /// Line numbers a later `resumed` event journaled as skipped: a reader that finds one of
    /// them damaged leaves it out, as the resumed session did.
    pub resumed_skipped: Vec<usize>,
}

impl Index {
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The line number (1-based, the header is line 1) of event `i`.
    pub fn line_of(&self, i: usize) -> usize {
        i + 2 + self.lines_between.partition_point(|&e| e <= i)
    }
}

/// Index a journal in one pass, without decoding its events: the checks of
/// [`stream`](super::stream) that need no decoding run here, by the same code — the header,
/// `seq` order (no duplicate, none going back, live-only lines included), a single
/// `session_started`, the torn tail (a last line cut short, or complete but unreadable), lines
/// a later `resume` journaled as skipped — read from each line's start, which the writer makes
/// `{"seq":N,"t_ms":T,"type":"...",`. A line of any other shape, a `resumed` line and the last
/// line are decoded whole. What this cannot see is a line with a well-formed start whose rest
/// is damaged: a reader finds it when it decodes that event ([`decode_line`]).
pub fn index(path: &Path, opts: ReadOptions) -> Result<Index, JournalError> {
    let file = File::open(path).map_err(io(path))?;
    let mut lines = Lines::new(file);
    let mut header: Option<Header> = None;
    let mut offsets = Vec::new();
    let mut t_ms = Vec::new();
    let mut lines_between = Vec::new();
    let mut torn_tail = None;
    let mut contiguous = true;
    // The seq of the last event kept (live-only lines are checked, not kept).
    let mut last_kept: Option<u64> = None;
    let mut checks = Checks::default();
    let mut offset: u64 = 0;
    let mut line_no = 0usize;
    while let Some(line) = lines.next_line().map_err(io(path))? {
        line_no += 1;
        let at = offset;
        offset += line.len();
        let complete = line.complete();
        if header.is_none() {
            let text = String::from_utf8_lossy(line.bytes);
            header = Some(header_of(path, text.trim_end(), complete)?);
            continue;
        }
        let trimmed = line.bytes.trim_ascii_end();
        if trimmed.is_empty() && complete {
            lines_between.push(offsets.len());
            continue;
        }
        if !complete {
            torn_tail = Some(String::from_utf8_lossy(trimmed).into_owned());
            offset = at;
            break;
        }
        // (seq, t_ms, starts a session, live-only) without decoding where the shape allows.
        let cheap = stamps(trimmed)
            .filter(|(_, _, tag)| !line.last && *tag != b"resumed")
            .map(|(seq, t_ms, tag)| {
                let live = Event::is_live_only_tag(tag);
                (seq, t_ms, tag == b"session_started", live)
            });
        let read = match cheap {
            Some(x) => Ok(x),
            None => decode_line(trimmed).map(|ev| {
                if let Event::Resumed { skipped_lines, .. } = &ev.event {
                    checks.resumed(skipped_lines);
                }
                (ev.seq, ev.t_ms, starts(&ev.event), ev.event.is_live_only())
            }),
        };
        let (seq, t, starts, live) = match read {
            Ok(x) => x,
            // A complete but unreadable last line is a torn write too (see `stream`).
            Err(_) if line.last => {
                torn_tail = Some(String::from_utf8_lossy(trimmed).into_owned());
                offset = at;
                break;
            }
            Err(e) => {
                checks.damaged(line_no, e.to_string());
                lines_between.push(offsets.len());
                continue;
            }
        };
        // A live-only line is checked as `stream` checks it (the lines after it must follow
        // it), but is no event of the index.
        if !checks.admit(line_no, seq, starts) || live {
            lines_between.push(offsets.len());
            continue;
        }
        contiguous &= seq == last_kept.map_or(1, |p| p.saturating_add(1));
        last_kept = Some(seq);
        offsets.push(at);
        t_ms.push(t);
    }
    let header = header.ok_or_else(|| JournalError::NotAJournal {
        path: path.to_path_buf(),
    })?;
    let left = checks.finish(path, opts)?;
    Ok(Index {
        header,
        offsets,
        t_ms,
        contiguous,
        lines_between,
        torn_tail,
        intact_len: offset,
        skipped: left.skipped,
        resumed_skipped: left.resumed_skipped,
    })
}
