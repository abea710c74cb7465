//! The journal: a session's events as JSON lines after one header line. It is the truth —
//! resume, replay, joiners and the report fold it — so an event is written (and, for decisions,
//! fsynced) before it is acted on or anyone sees it (the engine writes from a blocking thread:
//! `engine::session::durable`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::{Event, Stamped};

mod checks;
mod compact;
mod index;
mod lines;
mod packed;

use checks::Checks;
pub use index::{index, Index};
use lines::Lines;

/// The journal format this build writes. Readers accept this and every older version.
/// 3: the `session_started` line's plan, nodes and target are packed, deflated, into one member
/// (see `packed`); 2: that line says each thing once (see `compact`); 1 wrote it in full.
pub const FORMAT: u32 = 3;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Header {
    /// Format version; also what marks a file as a flightdeck journal.
    pub flightdeck_journal: u32,
    /// The flightdeck version that started the session.
    pub flightdeck_version: String,
    pub procedure: String,
    /// Hex SHA-256 of the procedure file.
    pub procedure_hash: String,
    pub target: String,
    /// Wall-clock start, RFC 3339 (UTC).
    pub started_at: String,
    pub operator: String,
    /// Wall-clock start in ms since the Unix epoch: `t_ms` counts from it, across resumes.
    /// (Older journals have only `started_at`.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_unix_ms: Option<u64>,
}

impl Header {
    pub fn new(procedure: &str, procedure_hash: &str, target: &str, operator: &str) -> Self {
        let now = std::time::SystemTime::now();
        Header {
            started_unix_ms: now
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .and_then(|d| u64::try_from(d.as_millis()).ok()),
            flightdeck_journal: FORMAT,
            flightdeck_version: env!("CARGO_PKG_VERSION").to_string(),
            procedure: procedure.to_string(),
            procedure_hash: procedure_hash.to_string(),
            target: target.to_string(),
            started_at: humantime::format_rfc3339_seconds(now).to_string(),
            operator: operator.to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a flightdeck journal (the first line is not a journal header)")]
    NotAJournal { path: PathBuf },
    #[error("{path}: journal format {found} is newer than this flightdeck understands ({FORMAT}); upgrade flightdeck")]
    TooNew { path: PathBuf, found: u32 },
    #[error("{path}:{line}: damaged event line: {reason}")]
    Damaged {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: journal already exists; resume it with `flightdeck resume` or choose another --journal")]
    Exists { path: PathBuf },
    /// Another process holds the journal's lock: its session is live.
    #[error("{path}: this session is live: another flightdeck holds its journal")]
    Locked { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A journal read back.
#[derive(Debug, Clone)]
pub struct Journal {
    pub header: Header,
    pub events: Vec<Stamped>,
    /// A last line that was cut short (the writer died mid-line), kept verbatim.
    pub torn_tail: Option<String>,
    /// Byte length of the intact part (header and whole event lines, skipped ones included).
    pub intact_len: u64,
    /// Damaged lines left out (line number, why): by `--skip-bad-lines`, or because a later
    /// `resumed` event records that they were skipped when the session was resumed.
    pub skipped: Vec<(usize, String)>,
}

/// How to read a journal.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Leave damaged lines out (each is listed in `Journal::skipped`) instead of refusing.
    pub skip_bad_lines: bool,
}

/// Read a journal, tolerating a torn last line. Any other damaged line is an error that names it
/// (unless a later resume journaled that it skipped it).
pub fn read(path: &Path) -> Result<Journal, JournalError> {
    read_with(path, ReadOptions::default())
}

/// `read` with options (`--skip-bad-lines`).
pub fn read_with(path: &Path, opts: ReadOptions) -> Result<Journal, JournalError> {
    let mut events = Vec::new();
    let outline = stream(path, opts, |_, ev| events.push(ev))?;
    Ok(Journal {
        header: outline.header,
        events,
        torn_tail: outline.torn_tail,
        intact_len: outline.intact_len,
        skipped: outline.skipped,
    })
}

/// A journal read as a stream: everything [`Journal`] holds but its events.
#[derive(Debug, Clone)]
pub struct Outline {
    pub header: Header,
    pub torn_tail: Option<String>,
    pub intact_len: u64,
    pub skipped: Vec<(usize, String)>,
}

/// Read a journal one line at a time, handing each event to `each` (with the header, read
/// first) as it is decoded: the same
/// checks as [`read_with`] (seq order, one `session_started`, torn tail, damaged lines), with
/// memory independent of the journal's length. A damaged line is found before `each` sees the
/// events after it, but refused only at the end (a later `resumed` event may have journaled
/// that it was skipped), so a caller must discard what it folded when this returns an error.
pub fn stream(
    path: &Path,
    opts: ReadOptions,
    each: impl FnMut(&Header, Stamped),
) -> Result<Outline, JournalError> {
    stream_with(path, opts, OutputText::Kept, each)
}

/// What a streaming reader keeps of an output line's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputText {
    /// In the event, as written.
    Kept,
    /// Read and checked as [`Kept`](OutputText::Kept) reads it (a JSON string: its escapes,
    /// its surrogate pairs), but not copied out of the line: the `Output` event arrives with
    /// an empty `line`. For a fold that shows no output (the report): output is a third of a
    /// journal's lines and half its bytes, and copying its text was a fifth of the reading.
    Checked,
}

/// [`stream`], keeping output text or not.
pub fn stream_with(
    path: &Path,
    opts: ReadOptions,
    output_text: OutputText,
    mut each: impl FnMut(&Header, Stamped),
) -> Result<Outline, JournalError> {
    let file = File::open(path).map_err(io(path))?;
    let mut lines = Lines::new(file);
    let mut checks = Checks::default();
    let mut offset: u64 = 0;
    let mut line_no = 0usize;
    let mut header: Option<Header> = None;
    let mut torn_tail = None;
    while let Some(line) = lines.next_line().map_err(io(path))? {
        line_no += 1;
        let complete = line.complete();
        let lossy = text_of(line.bytes);
        let text = lossy.trim_end();
        let Some(h) = &header else {
            header = Some(header_of(path, text, complete)?);
            offset += line.len();
            continue;
        };
        if text.is_empty() && complete {
            offset += line.len();
            continue;
        }
        // A last line without its newline was being written when the writer died.
        if !complete {
            torn_tail = Some(text.to_string());
            break;
        }
        match decode(text, output_text) {
            Ok(ev) => {
                if checks.admit(line_no, ev.seq, starts(&ev.event)) {
                    if let Event::Resumed { skipped_lines, .. } = &ev.event {
                        checks.resumed(skipped_lines);
                    }
                    each(h, ev);
                }
            }
            // A complete but unreadable last line is also a torn write (the newline made it,
            // part of the text didn't); in the middle it is damage.
            Err(_) if line.last => {
                torn_tail = Some(text.to_string());
                break;
            }
            Err(e) => checks.damaged(line_no, e.to_string()),
        }
        offset += line.len();
    }
    let header = header.ok_or_else(|| JournalError::NotAJournal {
        path: path.to_path_buf(),
    })?;
    let skipped = checks.finish(path, opts)?.skipped;
    Ok(Outline {
        header,
        torn_tail,
        intact_len: offset,
        skipped,
    })
}

/// Whether an event starts a session (a journal holds one).
fn starts(ev: &Event) -> bool {
    matches!(ev, Event::SessionStarted { .. })
}

/// The journal's first line: a header of a format this build reads, ended by a newline (a
/// header cut short is not a journal yet). `stream` and `index` both start here.
fn header_of(path: &Path, text: &str, complete: bool) -> Result<Header, JournalError> {
    let not_a_journal = || JournalError::NotAJournal {
        path: path.to_path_buf(),
    };
    let h: Header = serde_json::from_str(text).map_err(|_| not_a_journal())?;
    if h.flightdeck_journal > FORMAT {
        return Err(JournalError::TooNew {
            path: path.to_path_buf(),
            found: h.flightdeck_journal,
        });
    }
    if !complete {
        return Err(not_a_journal());
    }
    Ok(h)
}

/// A line's text, invalid UTF-8 replaced (U+FFFD) as `String::from_utf8_lossy` does. Valid
/// text, all but always, is checked by `str::from_utf8`, several times faster than the lossy
/// scan it would otherwise take (a sixth of reading a journal).
fn text_of(buf: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(buf) {
        Ok(text) => text.into(),
        Err(_) => String::from_utf8_lossy(buf),
    }
}

/// Decode one event line. The writer puts `seq`, `t_ms` and `type` first
/// (`{"seq":1,"t_ms":4,"type":"output",...`): those are read from the text, and the event's
/// variant, known from `type`, reads its fields from the line itself. That skips the two
/// copies serde makes otherwise (`#[serde(flatten)]` on [`Stamped`] buffers every field, and so
/// does the internally tagged `Event` until it has found `type`): about three times faster.
/// Any other shape, and any line the fast path refuses, takes the general path, so a damaged
/// line is described in the same words either way.
fn decode(line: &str, output_text: OutputText) -> Result<Stamped, serde_json::Error> {
    if let Some((seq, t_ms, tag)) = checks::stamps(line.as_bytes()) {
        if tag == b"session_started" {
            return packed::decode(line);
        }
        if tag == b"output" && output_text == OutputText::Checked {
            if let Ok(event) = unread_output(line) {
                return Ok(Stamped { seq, t_ms, event });
            }
        }
        // The tag is ASCII (`stamps` saw to it): it is text.
        if let Ok(tag) = std::str::from_utf8(tag) {
            if let Ok(event) = crate::engine::event::decode_typed(tag, line) {
                return Ok(Stamped { seq, t_ms, event });
            }
        }
    }
    serde_json::from_str(line).or_else(|general| {
        // A session start whose members a tool reordered (jq, a script through a JSON value)
        // is still in its compact or packed form: read it as such, not as a damaged line.
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) if v.get("type").and_then(|t| t.as_str()) == Some("session_started") => {
                packed::decode(line)
            }
            _ => Err(general),
        }
    })
}

/// Decode the event line read at some offset (as [`stream`] decodes it: lossy UTF-8, the same
/// decoder), for a reader that found the line through an [`Index`].
pub fn decode_line(line: &[u8]) -> Result<Stamped, serde_json::Error> {
    decode(text_of(line).trim_end(), OutputText::Kept)
}

/// An `output` line read as the typed decoder reads it (the same fields, types and checks:
/// `Event::Output`'s), its text checked as a string but left in the line.
fn unread_output(line: &str) -> Result<Event, serde_json::Error> {
    use crate::engine::event::{Phase, Stream};

    /// A JSON string, read (escapes and all, into serde_json's scratch space) and dropped.
    struct Unread;
    impl<'de> Deserialize<'de> for Unread {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Unread;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a string")
                }
                fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Unread, E> {
                    Ok(Unread)
                }
            }
            d.deserialize_str(V)
        }
    }

    #[derive(Deserialize)]
    struct Output {
        step: usize,
        phase: Phase,
        stream: Stream,
        #[serde(rename = "line")]
        _text: Unread,
    }
    let o: Output = serde_json::from_str(line)?;
    Ok(Event::Output {
        step: o.step,
        phase: o.phase,
        stream: o.stream,
        line: String::new(),
    })
}

/// Whether some process holds the journal's writer lock (its session is live).
pub fn is_locked(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => false,
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => false,
    }
}

/// One writer per journal: an exclusive advisory lock (flock) on the open file, held as long as
/// the writer lives and released by the kernel when its process dies, however it dies.
fn lock(file: &File, path: &Path) -> Result<(), JournalError> {
    file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => JournalError::Locked {
            path: path.to_path_buf(),
        },
        std::fs::TryLockError::Error(source) => JournalError::Io {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// Appends events to a journal file; holds the journal's writer lock while it lives.
#[derive(Debug)]
pub struct JournalWriter {
    file: File,
    path: PathBuf,
    /// Bytes written (whole lines): what a reader may read while the session goes on.
    len: u64,
}

impl JournalWriter {
    /// Start a new journal; refuses to overwrite an existing one.
    /// A journal is its owner's record: the file is created 0600, and folders created for it
    /// 0700 (`share_with_group` opens a group session's journal to its group).
    pub fn create(path: &Path, header: &Header) -> Result<Self, JournalError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io(dir))?;
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    JournalError::Exists {
                        path: path.to_path_buf(),
                    }
                } else {
                    JournalError::Io {
                        path: path.to_path_buf(),
                        source: e,
                    }
                }
            })?;
        lock(&file, path)?;
        let mut w = JournalWriter {
            file,
            path: path.to_path_buf(),
            len: 0,
        };
        let line = serde_json::to_string(header).map_err(|e| JournalError::Io {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        w.write_line(&line, true)?;
        Ok(w)
    }

    /// Take a journal over to continue it: lock it (refused while another process writes it),
    /// read it, handing each event to `each` as [`stream`] does (the caller folds them as they
    /// come rather than holding them all; on an error it discards what it folded), move a torn
    /// tail aside to `<journal>.torn` (nothing is lost) and cut it off so new lines start clean.
    pub fn reopen(
        path: &Path,
        opts: ReadOptions,
        each: impl FnMut(&Header, Stamped),
    ) -> Result<(Self, Outline), JournalError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io(path))?;
        lock(&file, path)?;
        // Read only once the lock is ours: nobody appends behind our back from here on.
        let read = stream(path, opts, each)?;
        if let Some(tail) = &read.torn_tail {
            let mut side = path.as_os_str().to_owned();
            side.push(".torn");
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&side)
                .and_then(|mut f| f.write_all(format!("{tail}\n").as_bytes()))
                .map_err(io(path))?;
        }
        file.set_len(read.intact_len).map_err(io(path))?;
        file.seek(SeekFrom::End(0)).map_err(io(path))?;
        let w = JournalWriter {
            file,
            path: path.to_path_buf(),
            len: read.intact_len,
        };
        Ok((w, read))
    }

    /// Append one event. `durable` events (decisions and outcomes) are fsynced before this
    /// returns; chatty ones (output lines, probe summaries) are written but synced with the next
    /// durable one, which keeps a long action's output from costing one fsync per line.
    pub fn append(&mut self, ev: &Stamped, durable: bool) -> Result<(), JournalError> {
        let line = self.encode(ev)?;
        self.write_lines(&line)?;
        if durable {
            self.sync()?;
        }
        Ok(())
    }

    /// `ev` as the journal line [`append`](Self::append) writes, newline included: the engine
    /// encodes on its own thread and hands the lines to [`write_lines`](Self::write_lines) on
    /// a blocking one (`engine::session::durable`).
    pub fn encode(&self, ev: &Stamped) -> Result<Vec<u8>, JournalError> {
        let line = packed::encode(ev).map_err(|e| JournalError::Io {
            path: self.path.clone(),
            source: e.into(),
        })?;
        let mut bytes = line.into_bytes();
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Write whole lines (each ending in a newline), unsynced.
    pub fn write_lines(&mut self, lines: &[u8]) -> Result<(), JournalError> {
        self.file.write_all(lines).map_err(io(&self.path))?;
        self.len += lines.len() as u64;
        Ok(())
    }

    /// Make what was written durable (fsync of the data).
    pub fn sync(&self) -> Result<(), JournalError> {
        self.file.sync_data().map_err(io(&self.path))
    }

    fn write_line(&mut self, line: &str, durable: bool) -> Result<(), JournalError> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.write_lines(&bytes)?;
        if durable {
            self.sync()?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of whole lines in the journal now (each written straight to the file, so another
    /// reader in this process sees them).
    pub fn written(&self) -> u64 {
        self.len
    }
}

/// The events of a journal a session is writing, from byte `from` (the start of a line; 0:
/// the start, header skipped) up to byte `to` (a length [`JournalWriter::len`] gave), in
/// order, to `each` (false stops). Lines the session left out when it opened the journal
/// (damaged or misplaced, see [`read_with`]) are left out here too, by the same rules.
/// This is how a session's server hands its history to an operator who joins: from its own
/// file, a line at a time, never a copy of the whole session in memory.
pub fn read_range(
    path: &Path,
    from: u64,
    to: u64,
    mut each: impl FnMut(Stamped) -> bool,
) -> Result<(), JournalError> {
    let mut file = File::open(path).map_err(io(path))?;
    file.seek(SeekFrom::Start(from)).map_err(io(path))?;
    let mut lines = Lines::new(file.take(to.saturating_sub(from)));
    let mut checks = Checks::default();
    let mut first = from == 0;
    while let Some(line) = lines.next_line().map_err(io(path))? {
        if std::mem::take(&mut first) {
            continue;
        }
        // Read as `stream` reads (lossy UTF-8): a line the resumed engine applied is a line
        // every joiner sees.
        let Ok(ev) = decode(text_of(line.bytes).trim_end(), OutputText::Kept) else {
            continue;
        };
        // A second session_started is known only reading from the start.
        if !checks.admit(0, ev.seq, starts(&ev.event) && from == 0) {
            continue;
        }
        if !each(ev) {
            return Ok(());
        }
    }
    Ok(())
}

/// Where journals go by default: `<data dir>/journals/<procedure>-<unix time>.jsonl`.
pub fn default_path(procedure: &str) -> PathBuf {
    free_name(&journals_dir(), procedure)
}

/// Where a session shared with group `gid` keeps its journal by default: a folder of its own
/// (`journals/g<gid>/`), so sharing it with the group shows the group nothing else.
pub fn default_group_path(procedure: &str, gid: u32) -> PathBuf {
    free_name(&journals_dir().join(format!("g{gid}")), procedure)
}

/// The folder default journals go to (the data directory's `journals/`).
pub fn journals_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "flightdeck")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".flightdeck"))
        .join("journals")
}

/// `<procedure>-<UTC start, to the second>.jsonl` in `dir`, e.g.
/// `jahia-rolling-2026-12-01T21-30-05.jsonl` (a name a person can read and sort; `:` is
/// left out, as some tools and file systems choke on it). A second session of the same
/// procedure in the same second gets `-2`, `-3`, ...
fn free_name(dir: &Path, procedure: &str) -> PathBuf {
    let stamp = journal_stamp(std::time::SystemTime::now());
    let first = dir.join(format!("{procedure}-{stamp}.jsonl"));
    if !first.exists() {
        return first;
    }
    (2u32..1000)
        .map(|n| dir.join(format!("{procedure}-{stamp}-{n}.jsonl")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// `2026-12-01T21-30-05` for that moment, UTC.
pub fn journal_stamp(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(at)
        .to_string()
        .trim_end_matches('Z')
        .replace(':', "-")
}

/// Make a group session's journal readable by its group, deliberately: the file becomes 0640
/// and group `gid`'s. With `own_folder` (the default `journals/g<gid>/` layout) its folder
/// becomes 0750 and the group's too, and the folder above 0711 (passable, not listable), so
/// the group reaches this journal and sees no other.
pub fn share_with_group(path: &Path, gid: u32, own_folder: bool) -> Result<(), JournalError> {
    use std::os::unix::fs::PermissionsExt;
    let set = |p: &Path, mode: u32| -> Result<(), JournalError> {
        std::os::unix::fs::chown(p, None, Some(gid))
            .and_then(|()| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)))
            .map_err(io(p))
    };
    set(path, 0o640)?;
    if own_folder {
        if let Some(dir) = path.parent() {
            set(dir, 0o750)?;
            if let Some(up) = dir.parent() {
                std::fs::set_permissions(up, std::fs::Permissions::from_mode(0o711))
                    .map_err(io(up))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index tells live-only lines by their `type` alone; the recorded fixtures hold none,
    /// so each live-only kind is made here.
    #[test]
    fn live_only_tags_name_the_live_only_events() {
        use crate::engine::Event;
        for ev in [
            Event::ProbeSample {
                probe: "health".into(),
                node: None,
                ok: true,
                latency_ms: 1,
                detail: String::new(),
            },
            Event::GateProgress {
                step: 0,
                passing: 0,
                total: 1,
                stable_ms: 0,
                need_ms: 1,
            },
            Event::LbSample { backends: vec![] },
        ] {
            let v = serde_json::to_value(&ev).expect("serializes");
            let tag = v["type"].as_str().expect("a type").as_bytes();
            assert!(ev.is_live_only() && Event::is_live_only_tag(tag), "{v}");
        }
    }

    /// A compact session start rewritten by a tool that reorders members (jq, a script going
    /// through a JSON value) still reads as the same event, not as a damaged line.
    #[test]
    fn a_session_start_with_its_members_reordered_still_reads() {
        let started = crate::tui::demo::Script::started().events()[0].clone();
        let line = packed::encode(&started).expect("encodes");
        let value: serde_json::Value = serde_json::from_str(&line).expect("is JSON");
        let reordered = serde_json::to_string(&value).expect("serializes");
        assert!(
            !reordered.starts_with("{\"seq\":"),
            "the members moved: {reordered}"
        );
        assert_eq!(
            decode(&reordered, OutputText::Kept).expect("reads"),
            started
        );
    }

    /// A session start crafted so that its steps written `like` another expand to the square of
    /// its size (a 64 KiB base string, 4096 entries of a few dozen bytes each, so ~256 MiB of
    /// text from a ~300 KiB line) is refused as a damaged line, named, before it is built.
    /// Before the limit this read built the whole quarter gigabyte and succeeded.
    #[test]
    fn a_session_start_that_would_expand_to_its_square_is_refused_by_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.jsonl");
        drop(JournalWriter::create(&path, &Header::new("p", "h", "t", "op")).expect("creates"));
        let mut steps = vec![serde_json::json!({"key": "a", "title": "x".repeat(64 << 10)})];
        steps.extend((0..4096).map(|i| serde_json::json!({"key": format!("a{i}"), "like": "a"})));
        let started = serde_json::json!({"seq": 1, "t_ms": 0, "type": "session_started",
                                         "plan": {"steps": steps}});
        let next = r#"{"seq":2,"t_ms":1,"type":"note","by":"op","text":"later"}"#;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("opens");
        writeln!(file, "{started}\n{next}").expect("writes");
        let err = read(&path).expect_err("refused");
        let JournalError::Damaged { line, reason, .. } = &err else {
            panic!("not a damaged line: {err}");
        };
        assert_eq!(*line, 2, "{err}");
        assert!(reason.contains("expand to more than"), "{err}");
    }

    /// A format-2 journal (the default session's first seconds, as an older build wrote it:
    /// a compact `session_started`) reads, through every reader, as the same events it reads
    /// as once written again in this build's format; written again, it is smaller.
    #[test]
    fn a_format_2_journal_reads_the_same_as_written_now() {
        let old = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/format2-jahia-default.jsonl");
        let j = read(&old).expect("a format-2 journal reads");
        assert_eq!(j.header.flightdeck_journal, 2);
        assert!(j.torn_tail.is_none() && j.skipped.is_empty());
        let crate::engine::Event::SessionStarted { plan, target, .. } = &j.events[0].event else {
            panic!("the fixture's first event is not session_started");
        };
        assert_eq!(
            plan.steps.len(),
            50,
            "every step, loop instances written out"
        );
        assert!(target.is_some());

        let dir = tempfile::tempdir().expect("tempdir");
        let now = dir.path().join("now.jsonl");
        let header = Header {
            flightdeck_journal: FORMAT,
            ..j.header.clone()
        };
        let mut w = JournalWriter::create(&now, &header).expect("creates");
        for ev in &j.events {
            w.append(ev, false).expect("appends");
        }
        drop(w);
        let again = read(&now).expect("reads");
        assert_eq!(again.header.flightdeck_journal, FORMAT);
        assert_eq!(again.events, j.events);
        let size = |p: &Path| std::fs::metadata(p).expect("metadata").len();
        assert!(
            size(&now) * 2 < size(&old),
            "{} bytes now, {} in format 2",
            size(&now),
            size(&old)
        );
        // The line-at-a-time readers: the index and a decode at its offsets, the joiners' range.
        for path in [&old, &now] {
            let text = std::fs::read(path).expect("reads");
            let ix = index(path, ReadOptions::default()).expect("indexes");
            assert_eq!(ix.len(), j.events.len());
            for (i, at) in ix.offsets.iter().enumerate() {
                let at = usize::try_from(*at).expect("fits");
                let end = text[at..].iter().position(|&b| b == b'\n').expect("a line") + at;
                assert_eq!(decode_line(&text[at..end]).expect("decodes"), j.events[i]);
            }
            let mut ranged = Vec::new();
            read_range(path, 0, size(path), |e| {
                ranged.push(e);
                true
            })
            .expect("reads a range");
            assert_eq!(ranged, j.events);
        }
    }

    /// A packed session start damaged in the middle of a journal is refused by the readers with
    /// the line it is on and what is wrong with it (never a panic, never a torn tail).
    #[test]
    fn a_damaged_packed_session_start_is_refused_with_its_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.jsonl");
        let header = serde_json::to_string(&Header::new("p", "h", "t", "o")).expect("header");
        let bad = r#"{"seq":1,"t_ms":1,"type":"session_started","operator":"o","deflated":"AAAA"}"#;
        let note = r#"{"seq":2,"t_ms":2,"type":"note","by":"o","text":"t"}"#;
        std::fs::write(&path, format!("{header}\n{bad}\n{note}\n")).expect("writes");
        let e = read(&path).expect_err("damaged").to_string();
        assert!(
            e.contains("j.jsonl:2: damaged event line: the packed session start (`deflated`) does not inflate"),
            "{e}"
        );
        let ix = index(&path, ReadOptions::default()).expect("indexes (the start is not decoded)");
        let e = decode_line(bad.as_bytes())
            .expect_err("damaged")
            .to_string();
        assert_eq!(ix.line_of(0), 2);
        assert!(e.contains("does not inflate"), "{e}");
    }

    /// The fast path reads every event of the recorded lab journals exactly as serde's general
    /// path does, and a line it cannot read is described in the general path's words.
    #[test]
    fn the_typed_decoder_reads_what_the_general_path_reads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut kinds = std::collections::BTreeSet::new();
        for name in [
            "lab-cockpit-session.jsonl",
            "lab-generic-rolling.jsonl",
            "rolling-upgrade.jsonl",
        ] {
            let text = std::fs::read_to_string(dir.join(name)).expect("fixture reads");
            for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
                let general: Stamped = serde_json::from_str(line).expect("fixture line reads");
                assert_eq!(
                    decode(line, OutputText::Kept).expect("decodes"),
                    general,
                    "{name}: {line}"
                );
                let kind =
                    serde_json::to_value(&general.event).expect("serializes")["type"].clone();
                let tag = kind.as_str().expect("a type").as_bytes();
                assert_eq!(
                    crate::engine::Event::is_live_only_tag(tag),
                    general.event.is_live_only(),
                    "{line}"
                );
                kinds.insert(kind.to_string());
            }
        }
        assert!(
            kinds.len() >= 10,
            "the fixtures cover many event kinds: {kinds:?}"
        );

        // Damaged lines: the same error text both ways (a missing field, an unknown type, a
        // value of the wrong type, trailing garbage).
        for bad in [
            r#"{"seq":2,"t_ms":5,"type":"output","step":0,"phase":"do","stream":"stdout"}"#,
            r#"{"seq":2,"t_ms":5,"type":"no_such_event"}"#,
            r#"{"seq":2,"t_ms":5,"type":"confirmed","step":"x","by":"a"}"#,
            r#"{"seq":2,"t_ms":5,"type":"note","by":"a","text":"t"} x"#,
        ] {
            let general = serde_json::from_str::<Stamped>(bad).expect_err("the line is damaged");
            let fast = decode(bad, OutputText::Kept).expect_err("the line is damaged");
            assert_eq!(fast.to_string(), general.to_string(), "{bad}");
        }
    }

    /// An output line read for a fold that shows no output is read and checked as in full (a
    /// damaged one is refused in the same words), only its text is left in the line.
    #[test]
    fn output_text_left_in_the_line_is_still_checked() {
        let good = [
            r#"{"seq":2,"t_ms":5,"type":"output","step":1,"phase":"undo","stream":"stderr","line":"a \"quoted\" \ud83d\ude00 line"}"#,
            r#"{"seq":2,"t_ms":5,"type":"output","step":0,"phase":"do","stream":"info","line":""}"#,
        ];
        for line in good {
            let mut left_out = decode(line, OutputText::Kept).expect("reads");
            let Event::Output { line: text, .. } = &mut left_out.event else {
                panic!("an output event: {left_out:?}");
            };
            text.clear();
            assert_eq!(
                decode(line, OutputText::Checked).expect("reads"),
                left_out,
                "{line}"
            );
        }
        for bad in [
            // A lone surrogate, a bad escape, a raw control character, a number for text, the
            // text missing, trailing garbage, a step of the wrong type.
            r#"{"seq":2,"t_ms":5,"type":"output","step":0,"phase":"do","stream":"info","line":"\ud800"}"#,
            r#"{"seq":2,"t_ms":5,"type":"output","step":0,"phase":"do","stream":"info","line":"\q"}"#,
            "{\"seq\":2,\"t_ms\":5,\"type\":\"output\",\"step\":0,\"phase\":\"do\",\"stream\":\"info\",\"line\":\"a\tb\"}",
            r#"{"seq":2,"t_ms":5,"type":"output","step":0,"phase":"do","stream":"info","line":5}"#,
            r#"{"seq":2,"t_ms":5,"type":"output","step":0,"phase":"do","stream":"info"}"#,
            r#"{"seq":2,"t_ms":5,"type":"output","step":0,"phase":"do","stream":"info","line":"x"} x"#,
            r#"{"seq":2,"t_ms":5,"type":"output","step":"0","phase":"do","stream":"info","line":"x"}"#,
        ] {
            let full = decode(bad, OutputText::Kept).expect_err("damaged");
            let checked = decode(bad, OutputText::Checked).expect_err("damaged");
            assert_eq!(checked.to_string(), full.to_string(), "{bad}");
        }
    }

    /// A live-only line (a probe sample) is no event of the index, but the lines after it
    /// must follow it as `stream` demands: the index refuses, names and skips the same lines.
    #[test]
    fn the_index_checks_the_order_after_a_live_only_line_as_the_reader_does() {
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rolling-upgrade.jsonl");
        let text = std::fs::read_to_string(fixture).expect("fixture reads");
        let mut fixture_lines = text.lines();
        let head = [fixture_lines.next(), fixture_lines.next()].map(|l| l.expect("a line"));
        let line = |seq: u64, event: Event| {
            serde_json::to_string(&Stamped {
                seq,
                t_ms: 100,
                event,
            })
            .expect("serializes")
        };
        let note = |seq| {
            line(
                seq,
                Event::Note {
                    by: "a".into(),
                    text: "t".into(),
                },
            )
        };
        let sample = |seq| {
            line(
                seq,
                Event::ProbeSample {
                    probe: "health".into(),
                    node: None,
                    ok: true,
                    latency_ms: 1,
                    detail: String::new(),
                },
            )
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        // Line 5 goes back (3 after 4), or repeats (4 after 4), a seq only the sample had.
        for (after, why) in [
            (3, "seq 3 after seq 4 (out of order)"),
            (4, "duplicate seq 4"),
        ] {
            let body = [note(2), sample(4), note(after), note(5)];
            let path = dir.path().join(format!("j{after}.jsonl"));
            std::fs::write(&path, format!("{}\n{}\n", head.join("\n"), body.join("\n")))
                .expect("writes");
            let read = read(&path).expect_err("the reader refuses it").to_string();
            let indexed = index(&path, ReadOptions::default())
                .expect_err("refused")
                .to_string();
            assert_eq!(indexed, read);
            assert!(
                read.contains(&format!(":5: damaged event line: {why}")),
                "{read}"
            );

            let skip = ReadOptions {
                skip_bad_lines: true,
            };
            let j = read_with(&path, skip).expect("reads, leaving it out");
            let i = index(&path, skip).expect("indexes, leaving it out");
            assert_eq!(i.skipped, j.skipped);
            // The index holds every event the reader read but the sample, line numbers kept.
            let seqs: Vec<u64> = (0..i.len())
                .map(|k| {
                    let at = i.offsets[k] as usize;
                    let bytes = std::fs::read(&path).expect("reads");
                    let end = at
                        + bytes[at..]
                            .iter()
                            .position(|&b| b == b'\n')
                            .expect("a line");
                    decode_line(&bytes[at..end]).expect("decodes").seq
                })
                .collect();
            assert_eq!(seqs, [1, 2, 5]);
            assert_eq!(
                j.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
                [1, 2, 4, 5]
            );
            assert_eq!(i.line_of(2), 6);
            assert!(!i.contiguous);
        }
    }
}
