//! The engine's journal, written off the runtime's thread. The detached session server runs
//! on one thread; an fsync there (milliseconds, tens of them on a slow disk) stalled every
//! timeout, probe, client and the engine itself while it ran.
//!
//! The order is kept as it was: an event is encoded and queued, then applied to the engine's
//! state at once (a pure fold, which nothing outside sees), and everything the outside sees —
//! the event on the live feed, the reply to the command that caused it, a signal, an action or
//! a verification starting — waits behind it until it is on disk (decisions fsynced). The
//! engine settles the queue after every message it handles, so at most one batch is written
//! at a time, batches go out in order, and between messages the file holds every event the
//! state holds (a joiner reading the file up to [`Durable::written`] reads exactly what the
//! state folded). Actions and verifications start their tasks at once but hold them behind
//! [`Durable::durable_through`]. One thing reads the state before the disk does: the node
//! facts published to a running gate (`observe::publish_node_state`) come from routine
//! events that may still be queued; a gate's verdict reaches the journal only with the
//! step's `ActionFinished`, which is written after them.
//!
//! If a write or an fsync fails, the engine stops as it did when the fsync ran inline: what
//! waited behind the batch is dropped (no event published, no reply, nothing started — a
//! client sees the engine gone, not a success), and the error ends the engine's task. An
//! fsync is not retried: after a failed one the kernel may have dropped the dirty pages, and a
//! second one that succeeds says nothing about them.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::{broadcast, watch};

use crate::engine::Stamped;
use crate::journal::{JournalError, JournalWriter};

/// Makes written lines durable: [`JournalWriter::sync`], or a stand-in in tests (a slow or
/// failing disk).
type SyncFn = Arc<dyn Fn(&JournalWriter) -> Result<(), JournalError> + Send + Sync>;

/// What waits for the events queued before it.
enum After {
    Publish(Stamped),
    Run(Box<dyn FnOnce() + Send>),
}

/// The writer on its way back from the blocking pool, with how its batch went.
type Returning = std::sync::mpsc::Receiver<(JournalWriter, Result<(), JournalError>)>;

pub(super) struct Durable {
    /// Away on the blocking pool while a batch is written.
    writer: Option<JournalWriter>,
    /// Where it comes back from, while it is away.
    away: Option<Returning>,
    path: std::path::PathBuf,
    /// Bytes of whole lines on file.
    written: u64,
    /// Encoded lines not written yet, in order.
    lines: Vec<u8>,
    /// Whether `lines` holds a decision (an fsync is due).
    sync_due: bool,
    /// The seq of the last event in `lines`.
    last_seq: u64,
    after: Vec<After>,
    live: broadcast::Sender<Stamped>,
    /// The seq through which events are on file (decisions fsynced).
    settled: watch::Sender<u64>,
    sync: SyncFn,
    /// How long dropping this mid-write waits for its writer ([`DROP_WAIT`]).
    drop_wait: std::time::Duration,
}

/// How long an engine dropped mid-write (its task aborted) waits for its writer to come back
/// before it lets the thread go: far past a healthy write and fsync (milliseconds), short of
/// freezing what else that thread runs. A write can hang for as long as the disk does (an NFS
/// server gone away), and the thread that drops the engine would hang with it. No path of the
/// program aborts an engine task today (tests do): this bounds that drop should one come,
/// it does not bound the process's exit, where the runtime waits for its blocking pool.
const DROP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Durable {
    /// `settled`: the seq of the last event already in the journal.
    pub(super) fn new(
        writer: JournalWriter,
        live: broadcast::Sender<Stamped>,
        settled: u64,
    ) -> Self {
        Durable {
            path: writer.path().to_path_buf(),
            written: writer.written(),
            writer: Some(writer),
            away: None,
            lines: Vec::new(),
            sync_due: false,
            last_seq: settled,
            after: Vec::new(),
            live,
            settled: watch::channel(settled).0,
            sync: Arc::new(JournalWriter::sync),
            drop_wait: DROP_WAIT,
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of whole lines on file. Between the engine's messages nothing is queued, so this
    /// is where the events its state holds end.
    pub(super) fn written(&self) -> u64 {
        self.written
    }

    /// Where the next queued line will start.
    pub(super) fn next_offset(&self) -> u64 {
        self.written.saturating_add(self.lines.len() as u64)
    }

    /// Queue `ev` for the journal; `durable` ones (decisions) are fsynced before anything
    /// queued after them is let out.
    pub(super) fn append(&mut self, ev: &Stamped, durable: bool) -> Result<(), JournalError> {
        let writer = self.writer.as_ref().ok_or_else(|| self.lost())?;
        let line = writer.encode(ev)?;
        self.lines.extend_from_slice(&line);
        self.sync_due |= durable;
        self.last_seq = ev.seq;
        Ok(())
    }

    /// Publish `ev` on the live feed once everything queued before it is on file.
    pub(super) fn publish(&mut self, ev: Stamped) {
        self.after.push(After::Publish(ev));
    }

    /// Run `f` (a reply, a signal) once everything queued before it is on file; never if
    /// writing it fails.
    pub(super) fn then(&mut self, f: impl FnOnce() + Send + 'static) {
        self.after.push(After::Run(Box::new(f)));
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<Stamped> {
        self.live.subscribe()
    }

    /// Resolves true once the event `seq` is on file (fsynced when it is a decision); false
    /// if the engine stopped first (its journal failed, or it ended).
    pub(super) fn durable_through(
        &self,
        seq: u64,
    ) -> impl std::future::Future<Output = bool> + Send + 'static {
        let mut rx = self.settled.subscribe();
        async move { rx.wait_for(|s| *s >= seq).await.is_ok() }
    }

    /// Write what is queued on the blocking pool, then let out what waited for it, in order.
    pub(super) async fn settle(&mut self) -> Result<(), JournalError> {
        if self.lines.is_empty() {
            self.release();
            return Ok(());
        }
        let mut writer = self.writer.take().ok_or_else(|| self.lost())?;
        let lines = std::mem::take(&mut self.lines);
        let sync_due = std::mem::take(&mut self.sync_due);
        let sync = self.sync.clone();
        let (back, returning) = std::sync::mpsc::channel();
        self.away = Some(returning);
        let joined = tokio::task::spawn_blocking(move || {
            let r = write(&mut writer, &lines, sync_due, &sync);
            let _ = back.send((writer, r));
        })
        .await;
        let returned = self.away.take().map(|r| r.try_recv());
        match (joined, returned) {
            (Ok(()), Some(Ok((writer, r)))) => self.settled_after(writer, r),
            (joined, _) => {
                self.after.clear();
                let why = joined
                    .err()
                    .map_or_else(|| "no answer".to_string(), |e| e.to_string());
                Err(JournalError::Io {
                    path: self.path.clone(),
                    source: std::io::Error::other(format!("the journal's writer failed: {why}")),
                })
            }
        }
    }

    /// [`settle`](Self::settle) on this thread: for the events a session starts with, written
    /// before its engine runs so that `start` and `resume` report a journal that cannot be
    /// written themselves.
    pub(super) fn settle_here(&mut self) -> Result<(), JournalError> {
        let mut writer = self.writer.take().ok_or_else(|| self.lost())?;
        let lines = std::mem::take(&mut self.lines);
        let sync_due = std::mem::take(&mut self.sync_due);
        let r = write(&mut writer, &lines, sync_due, &self.sync);
        self.settled_after(writer, r)
    }

    fn settled_after(
        &mut self,
        writer: JournalWriter,
        r: Result<(), JournalError>,
    ) -> Result<(), JournalError> {
        self.written = writer.written();
        self.writer = Some(writer);
        if let Err(e) = r {
            self.after.clear();
            return Err(e);
        }
        self.settled.send_replace(self.last_seq);
        self.release();
        Ok(())
    }

    fn release(&mut self) {
        for a in std::mem::take(&mut self.after) {
            match a {
                After::Publish(ev) => {
                    let _ = self.live.send(ev);
                }
                After::Run(f) => f(),
            }
        }
    }

    fn lost(&self) -> JournalError {
        JournalError::Io {
            path: self.path.clone(),
            source: std::io::Error::other("the journal's writer was lost with a failed write"),
        }
    }

    #[cfg(test)]
    pub(super) fn set_sync(
        &mut self,
        f: impl Fn(&JournalWriter) -> Result<(), JournalError> + Send + Sync + 'static,
    ) {
        self.sync = Arc::new(f);
    }

    #[cfg(test)]
    pub(super) fn set_drop_wait(&mut self, wait: std::time::Duration) {
        self.drop_wait = wait;
    }
}

impl Drop for Durable {
    /// An engine dropped mid-write (its task aborted) waits for its writer to come back, so
    /// that the journal's lock is released once the engine is gone, as it was when the write
    /// ran inline (a resume in the same process may follow at once). One write at most, and
    /// for [`DROP_WAIT`] at most: this blocks the thread that drops the engine, a runtime
    /// thread. Past it the writer, and the journal's lock with it, is let go on the blocking
    /// thread when its write returns (its answer finds nobody); until then the journal reads
    /// as live, which it is: a write to it is under way.
    fn drop(&mut self) {
        if let Some(returning) = self.away.take() {
            let _ = returning.recv_timeout(self.drop_wait);
        }
    }
}

fn write(
    writer: &mut JournalWriter,
    lines: &[u8],
    sync_due: bool,
    sync: &SyncFn,
) -> Result<(), JournalError> {
    writer.write_lines(lines)?;
    if sync_due {
        sync(writer)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::sync_gate::{stays_pending, within, SyncGate};
    use super::*;
    use crate::engine::event::Event;
    use crate::journal::Header;
    use futures::FutureExt as _;

    fn note(seq: u64) -> Stamped {
        Stamped {
            seq,
            t_ms: seq,
            event: Event::Note {
                by: "tester".into(),
                text: format!("note {seq}"),
            },
        }
    }

    fn durable(dir: &Path) -> (Durable, broadcast::Receiver<Stamped>) {
        let path = dir.join("j.jsonl");
        let writer = JournalWriter::create(&path, &Header::new("t", "00", "t", "tester")).unwrap();
        let (live, rx) = broadcast::channel(16);
        (Durable::new(writer, live, 0), rx)
    }

    /// The runtime's one thread goes on while a decision's fsync is under way (a timer fires,
    /// another task answers); the event, the reply and the gated action wait for it.
    #[tokio::test(flavor = "current_thread")]
    async fn the_runtime_goes_on_while_a_decision_is_fsynced_and_what_waits_for_it_waits() {
        let dir = tempfile::tempdir().unwrap();
        let (mut d, mut live) = durable(dir.path());
        let mut gate = SyncGate::install(&mut d);
        gate.arm();
        d.append(&note(1), true).unwrap();
        d.publish(note(1));
        let (reply_tx, mut reply) = tokio::sync::oneshot::channel();
        d.then(move || {
            let _ = reply_tx.send("accepted");
        });
        let mut durable = Box::pin(d.durable_through(1));
        let settling = tokio::spawn(async move {
            let r = d.settle().await;
            (d, r)
        });
        gate.held().await;
        // The fsync is held on the blocking pool. On this thread, a timer and a task go on.
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        let (ping, pong) = tokio::sync::oneshot::channel();
        tokio::spawn(async move { ping.send(()) });
        pong.await.unwrap();
        assert!(live.try_recv().is_err(), "published before it was durable");
        assert!(
            stays_pending(&mut reply).await,
            "replied before it was durable"
        );
        assert_eq!(
            (&mut durable).now_or_never(),
            None,
            "an action would have run"
        );
        gate.release();
        let (d, r) = within("the settle", settling).await.unwrap();
        r.unwrap();
        assert_eq!(live.try_recv().unwrap().seq, 1);
        assert_eq!(reply.await.unwrap(), "accepted");
        assert!(durable.await);
        let text = std::fs::read_to_string(d.path()).unwrap();
        assert!(text.contains("note 1"), "{text}");
        assert_eq!(d.written(), text.len() as u64);
    }

    /// A failed fsync stops everything that waited for it: nothing published, no reply (the
    /// client sees the engine gone), no action started; the error is the engine's end.
    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_fsync_lets_nothing_out() {
        let dir = tempfile::tempdir().unwrap();
        let (mut d, mut live) = durable(dir.path());
        let gate = SyncGate::install(&mut d);
        gate.arm();
        gate.fail();
        d.append(&note(1), true).unwrap();
        d.publish(note(1));
        let (reply_tx, reply) = tokio::sync::oneshot::channel::<()>();
        d.then(move || {
            let _ = reply_tx.send(());
        });
        let durable = d.durable_through(1);
        let err = d.settle().await.unwrap_err();
        assert!(err.to_string().contains("Input/output error"), "{err}");
        assert!(live.try_recv().is_err());
        drop(d);
        assert!(
            reply.await.is_err(),
            "the reply must not say it was accepted"
        );
        assert!(!durable.await, "the action must not run");
    }

    /// An engine whose task is aborted mid-write (a crash simulated in-process) has let go of
    /// the journal's lock once its task is awaited, as when the write ran inline: a resume may
    /// follow at once.
    #[tokio::test(flavor = "current_thread")]
    async fn an_engine_aborted_mid_write_lets_go_of_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (mut d, _live) = durable(dir.path());
        let path = d.path().to_path_buf();
        let mut gate = SyncGate::install(&mut d);
        gate.arm();
        d.append(&note(1), true).unwrap();
        let task = tokio::spawn(async move {
            let _ = d.settle().await;
            drop(d);
        });
        gate.held().await;
        task.abort();
        gate.release();
        assert!(task.await.unwrap_err().is_cancelled());
        // Polled, not asserted at once: a process another test of this binary is starting
        // holds a copy of every descriptor, the journal's lock with it, until it execs.
        let_go("the aborted engine lets go of the journal", &path).await;
    }

    /// Wait (within the tests' bound) until nothing holds `path`'s lock.
    async fn let_go(what: &str, path: &Path) {
        within(what, async {
            while crate::journal::is_locked(path) {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await;
    }

    /// An engine aborted while its fsync hangs (a dead NFS server) does not hang the thread
    /// that drops it: that thread may be the one serving every cockpit of the session. The
    /// journal stays locked while the write is under way and is let go when it returns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_engine_aborted_in_a_hung_fsync_lets_its_thread_go() {
        let dir = tempfile::tempdir().unwrap();
        let (mut d, _live) = durable(dir.path());
        d.set_drop_wait(std::time::Duration::from_millis(10));
        let path = d.path().to_path_buf();
        let mut gate = SyncGate::install(&mut d);
        gate.arm();
        d.append(&note(1), true).unwrap();
        let task = tokio::spawn(async move {
            let _ = d.settle().await;
            drop(d);
        });
        gate.held().await;
        task.abort();
        // The fsync is still held: without the bound this never returns.
        let ended = within("the aborted engine's drop", task).await;
        assert!(ended.unwrap_err().is_cancelled());
        assert!(
            crate::journal::is_locked(&path),
            "the write is under way: the journal is still in use"
        );
        gate.release();
        let_go("the writer lets go of the journal", &path).await;
    }

    /// Batches go out in the order they were queued, chatty events with the decisions.
    #[tokio::test(flavor = "current_thread")]
    async fn events_reach_the_file_and_the_feed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut d, mut live) = durable(dir.path());
        for seq in 1..=5 {
            d.append(&note(seq), seq % 2 == 0).unwrap();
            d.publish(note(seq));
            if seq == 3 {
                d.settle().await.unwrap();
            }
        }
        d.settle().await.unwrap();
        let seqs: Vec<u64> = std::iter::from_fn(|| live.try_recv().ok().map(|e| e.seq)).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
        let read = crate::journal::read(d.path()).unwrap();
        let seqs: Vec<u64> = read.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    }
}
