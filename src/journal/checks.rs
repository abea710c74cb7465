//! What every journal reader checks about the lines it reads, in one place: a line's stamps
//! read from its start, where an event may stand (seq order, one `session_started`), and which
//! damaged lines refuse the journal. `stream`, `read_range` and `index` all read through these.

use std::path::Path;

use super::{JournalError, ReadOptions};

/// `(seq, t_ms, type)` from the start of a line of the writer's shape,
/// `{"seq":N,"t_ms":T,"type":"...",` — `None` for any other shape (such a line is decoded
/// whole, and described in serde's words if it is damaged).
pub(super) fn stamps(line: &[u8]) -> Option<(u64, u64, &[u8])> {
    fn number(s: &[u8]) -> Option<(u64, &[u8])> {
        let end = s.iter().position(|c| !c.is_ascii_digit())?;
        let (digits, rest) = s.split_at(end);
        // No leading zeros or empty numbers: what JSON allows, nothing more; a number over
        // u64 (20 digits and up) is none.
        if digits.is_empty() || digits.len() > 20 || (digits.len() > 1 && digits[0] == b'0') {
            return None;
        }
        let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
        Some((n, rest))
    }
    let (seq, rest) = number(line.strip_prefix(b"{\"seq\":")?)?;
    let (t_ms, rest) = number(rest.strip_prefix(b",\"t_ms\":")?)?;
    let rest = rest.strip_prefix(b",\"type\":\"")?;
    let end = rest.iter().position(|&b| b == b'"')?;
    let tag = &rest[..end];
    // A variant name is plain snake_case: no escapes to undo.
    tag.iter()
        .all(|b| b.is_ascii_lowercase() || *b == b'_')
        .then_some((seq, t_ms, tag))
}

/// The checks a reader makes over a journal's lines, as it reads them in order.
#[derive(Debug, Default)]
pub(super) struct Checks {
    /// The seq of the last line that stands where it is (live-only lines included: a line
    /// after one must follow it too).
    last_seq: Option<u64>,
    /// A `session_started` has been read.
    started: bool,
    /// Lines that cannot be read or cannot stand where they are: (line number, why).
    pub bad: Vec<(usize, String)>,
    /// Lines a resume skipped and journaled that it did: known damage, not news.
    known: Vec<usize>,
}

impl Checks {
    /// Whether an event numbered `seq` (a `session_started` if `starts`) may stand after the
    /// lines admitted so far. If it may, it is the new last line; if not, line `line` is noted
    /// as bad with the reason.
    pub fn admit(&mut self, line: usize, seq: u64, starts: bool) -> bool {
        match self.misplaced(seq, starts) {
            None => {
                self.last_seq = Some(seq);
                self.started |= starts;
                true
            }
            Some(reason) => {
                self.bad.push((line, reason));
                false
            }
        }
    }

    /// Why an event line that parses still cannot stand where it is, if it cannot.
    fn misplaced(&self, seq: u64, starts: bool) -> Option<String> {
        if let Some(prev) = self.last_seq {
            if seq == prev {
                return Some(format!("duplicate seq {seq}"));
            }
            if seq < prev {
                return Some(format!("seq {seq} after seq {prev} (out of order)"));
            }
        }
        if self.started && starts {
            return Some("a second session_started".into());
        }
        None
    }

    /// Line `line` cannot be read.
    pub fn damaged(&mut self, line: usize, why: String) {
        self.bad.push((line, why));
    }

    /// A `resumed` event names lines the resume skipped.
    pub fn resumed(&mut self, skipped_lines: &[usize]) {
        self.known.extend(skipped_lines);
    }

    /// The lines left out and the lines later `resumed` events named as skipped, or — unless
    /// told to skip bad lines — the first bad line no resume journaled as skipped, as the error
    /// that refuses the journal.
    pub fn finish(self, path: &Path, opts: ReadOptions) -> Result<Finished, JournalError> {
        if !opts.skip_bad_lines {
            if let Some((line, reason)) = self.bad.iter().find(|(l, _)| !self.known.contains(l)) {
                return Err(JournalError::Damaged {
                    path: path.to_path_buf(),
                    line: *line,
                    reason: format!("{reason} (--skip-bad-lines leaves such lines out)"),
                });
            }
        }
        Ok(Finished {
            skipped: self.bad,
            resumed_skipped: self.known,
        })
    }
}

/// What [`Checks::finish`] hands back from a journal it accepts.
#[derive(Debug)]
pub(super) struct Finished {
    /// Lines left out: (line number, why).
    pub skipped: Vec<(usize, String)>,
    /// Line numbers a later `resumed` event journaled as skipped.
    pub resumed_skipped: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_read_the_writers_line_start_and_nothing_else() {
        let s = |l: &str| stamps(l.as_bytes()).map(|(a, b, t)| (a, b, t.to_vec()));
        assert_eq!(
            s(r#"{"seq":12,"t_ms":0,"type":"note","by":"a"}"#),
            Some((12, 0, b"note".to_vec()))
        );
        assert_eq!(
            s(r#"{"seq":18446744073709551615,"t_ms":1,"type":"x_y"}"#),
            Some((u64::MAX, 1, b"x_y".to_vec()))
        );
        for other in [
            r#"{"seq":012,"t_ms":0,"type":"note"}"#,
            r#"{"seq":18446744073709551616,"t_ms":0,"type":"note"}"#,
            r#"{"seq":,"t_ms":0,"type":"note"}"#,
            r#"{"t_ms":0,"seq":1,"type":"note"}"#,
            r#"{"seq":1,"t_ms":0,"type":"No\u0074e"}"#,
            r#"{"seq":1,"t_ms":0,"type":"note"#,
            r#"{ "seq":1,"t_ms":0,"type":"note"}"#,
        ] {
            assert_eq!(s(other), None, "{other}");
        }
    }

    #[test]
    fn checks_keep_seq_order_across_every_admitted_line() {
        let mut c = Checks::default();
        assert!(c.admit(2, 1, true));
        assert!(c.admit(3, 2, false));
        assert!(!c.admit(4, 2, false));
        assert!(!c.admit(5, 1, false));
        assert!(!c.admit(6, 3, true));
        assert!(c.admit(7, 3, false));
        assert_eq!(
            c.bad,
            vec![
                (4, "duplicate seq 2".to_string()),
                (5, "seq 1 after seq 2 (out of order)".to_string()),
                (6, "a second session_started".to_string()),
            ]
        );
        c.resumed(&[4, 5]);
        let err = c
            .finish(Path::new("j"), ReadOptions::default())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "j:6: damaged event line: a second session_started (--skip-bad-lines leaves such lines out)"
        );
    }
}
