//! Tests only: the journal's fsync as a gate a test holds shut, opens or breaks. While it is
//! held, the batch's lines are in the file but not durable, and the test can look at what the
//! engine lets out meanwhile (nothing, by `durable`'s rule); a failed fsync is the disk full or
//! the EIO of a dying disk.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use super::durable::Durable;
use crate::journal::JournalError;

/// How long a test waits for what must happen (milliseconds on any machine: the bound only
/// turns a hang into a failure).
pub(super) const DEADLINE: Duration = Duration::from_secs(20);

/// How long a test watches for what must not happen while an fsync is held. The gate is shut,
/// so in a correct engine it cannot happen however long one watches; an engine that let it
/// out early does so within microseconds of the runtime's next turn.
const QUIET: Duration = Duration::from_millis(150);

/// The fsync of a [`Durable`], held when armed.
pub(super) struct SyncGate {
    armed: Arc<AtomicBool>,
    entered: tokio::sync::mpsc::UnboundedReceiver<()>,
    answer: mpsc::Sender<std::io::Result<()>>,
}

impl SyncGate {
    /// Put the gate in `d`'s fsync, open (every fsync passes) until [`arm`](Self::arm)ed.
    pub(super) fn install(d: &mut Durable) -> Self {
        let armed = Arc::new(AtomicBool::new(false));
        let (entered_tx, entered) = tokio::sync::mpsc::unbounded_channel();
        let (answer, answers) = mpsc::channel::<std::io::Result<()>>();
        let answers = Mutex::new(answers);
        let hold = armed.clone();
        d.set_sync(move |w| {
            if hold.swap(false, Ordering::SeqCst) {
                let _ = entered_tx.send(());
                // A test that ends without answering lets it through.
                let answer = answers
                    .lock()
                    .map_or(Ok(()), |a| a.recv().unwrap_or(Ok(())));
                answer.map_err(|source| JournalError::Io {
                    path: w.path().to_path_buf(),
                    source,
                })?;
            }
            w.sync()
        });
        SyncGate {
            armed,
            entered,
            answer,
        }
    }

    /// Hold the next fsync (one) until the test answers it.
    pub(super) fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Wait until the held fsync has begun: its batch is written, not yet durable.
    pub(super) async fn held(&mut self) {
        tokio::time::timeout(DEADLINE, self.entered.recv())
            .await
            .expect("the engine fsyncs within the deadline")
            .expect("the gate is installed");
    }

    /// Let the held fsync (or the next one held) through.
    pub(super) fn release(&self) {
        let _ = self.answer.send(Ok(()));
    }

    /// Fail the held fsync (or the next one held) as a dying disk does: EIO.
    pub(super) fn fail(&self) {
        let _ = self
            .answer
            .send(Err(std::io::Error::from_raw_os_error(libc::EIO)));
    }
}

/// Whether `f` is still pending after the runtime has had [`QUIET`] to run everything else:
/// for what must not have happened while an fsync is held. `f` is polled by reference and
/// can be awaited again afterwards.
pub(super) async fn stays_pending<F: std::future::Future + Unpin>(f: &mut F) -> bool {
    tokio::time::timeout(QUIET, f).await.is_err()
}

/// `f`'s output, failing the test past [`DEADLINE`] instead of hanging it.
pub(super) async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(DEADLINE, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: not within {DEADLINE:?}"),
    }
}
