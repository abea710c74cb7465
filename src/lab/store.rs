//! The nodes' persistent key-value stores: one JSON file each (`<data>/<node>/store.json`, or
//! `<data>/schemas/<schema>/store.json` for Jahia's shared database schemas), so that backups
//! are real file copies and restores really bring data back.
//!
//! A data-plane write (`/kv`, the lab's light load) reaches the file from the blocking pool
//! ([`Store::save_behind`]): rewriting the whole store on the request's thread stalled the
//! session server that hosts the lab (one thread) for every write. Writes that come while one
//! is being written are coalesced into the next (the newest content only: at most one write
//! in flight and one waiting), and the request is answered once its write is on file
//! ([`Written`]), so what the lab promised holds: an answered write is in the file, and a lab
//! started again on the same data directory finds it. Every other change (a start, a backup, a
//! restore) is written at once by [`Store::save`]; each write carries a generation and the
//! file never goes back to an older one, whichever writer comes last.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::LabError;

/// What is on disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreFile {
    /// The store format (see [`super::config::Version::store_format`]).
    pub format: u32,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

/// A store file and its in-memory copy; every change is written through (data-plane writes
/// from the blocking pool: see the module's comment).
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    pub file: StoreFile,
    disk: Arc<Disk>,
}

/// The file's writers: generations handed out, the newest content waiting for the blocking
/// pool, and what is on file.
#[derive(Default)]
struct Disk {
    queue: Mutex<Queue>,
    /// Held while the file is written (writers share one temporary file name): the
    /// generation on file.
    file: Mutex<u64>,
    on_file: watch::Sender<OnFile>,
    #[cfg(test)]
    before_write: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk")
            .field("on_file", &*self.on_file.borrow())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Queue {
    /// The last generation handed out.
    generation: u64,
    /// The newest content not handed to a writer yet.
    waiting: Option<(u64, StoreFile)>,
    /// A writer works on the blocking pool.
    busy: bool,
}

#[derive(Debug, Clone, Default)]
struct OnFile {
    /// The newest generation on file.
    written: u64,
    /// The newest generation a background write failed for, and why.
    failed: u64,
    error: String,
    /// A background writer is at work.
    busy: bool,
}

/// Resolves once the writes it stands for are on file (or one failed): what a data-plane
/// request waits for before it answers.
#[must_use]
#[derive(Debug, Default)]
pub struct Written(Vec<(watch::Receiver<OnFile>, u64)>);

impl Written {
    pub fn and(mut self, other: Written) -> Written {
        self.0.extend(other.0);
        self
    }

    /// Ok once every write is on file; the error a failed one gave.
    pub async fn on_file(self) -> Result<(), String> {
        for (mut rx, generation) in self.0 {
            let state = rx
                .wait_for(|s| s.written >= generation || s.failed >= generation)
                .await
                .map_err(|_| "the store's writer is gone".to_string())?;
            if state.written < generation {
                return Err(state.error.clone());
            }
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn io_err(path: &Path, e: std::io::Error) -> LabError {
    LabError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

impl Store {
    /// Opens the store at `path`, creating it at `format` with `seed` data when absent.
    pub fn open_or_create(
        path: PathBuf,
        format: u32,
        seed: &BTreeMap<String, String>,
    ) -> Result<Store, LabError> {
        if path.exists() {
            let file = read_store_file(&path)?;
            return Ok(Store {
                path,
                file,
                disk: Arc::default(),
            });
        }
        let store = Store {
            path,
            file: StoreFile {
                format,
                data: seed.clone(),
            },
            disk: Arc::default(),
        };
        store.save()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the file now, atomically (temp file, then rename) so a crash never leaves half a
    /// store. A data-plane write under way is waited for (one file write at most).
    pub fn save(&self) -> Result<(), LabError> {
        let generation = self.disk.next_generation();
        self.disk
            .write_newer(generation, || write_file(&self.path, &self.file))
    }

    /// Writes the file from the blocking pool (this thread goes on), coalesced with the writes
    /// that come while one is under way; what is returned resolves once it is on file. Without
    /// a runtime (a plain thread) it writes at once.
    pub fn save_behind(&self) -> Written {
        let generation = {
            let mut q = lock(&self.disk.queue);
            q.generation += 1;
            let generation = q.generation;
            q.waiting = Some((generation, self.file.clone()));
            if !q.busy {
                q.busy = true;
                self.disk.on_file.send_modify(|s| s.busy = true);
                let (disk, path) = (self.disk.clone(), self.path.clone());
                let work = move || disk.write_waiting(&path);
                drop(q);
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => drop(rt.spawn_blocking(work)),
                    Err(_) => work(),
                }
            }
            generation
        };
        Written(vec![(self.disk.on_file.subscribe(), generation)])
    }

    /// Resolves once no background write of this store is under way.
    pub fn idle(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.disk.on_file.subscribe();
        async move {
            let _ = rx.wait_for(|s| !s.busy).await;
        }
    }

    #[cfg(test)]
    fn before_each_write(&self, f: impl Fn() + Send + Sync + 'static) {
        *lock(&self.disk.before_write) = Some(Arc::new(f));
    }

    /// Copies the store file to `dest` (a backup).
    pub fn copy_to(&self, dest: &Path) -> Result<(), LabError> {
        self.save()?;
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        fs::copy(&self.path, dest).map_err(|e| io_err(dest, e))?;
        Ok(())
    }

    /// Replaces this store with the file at `src` (a restore): format and data.
    pub fn restore_from(&mut self, src: &Path) -> Result<(), LabError> {
        let file = read_store_file(src)?;
        let generation = self.disk.next_generation();
        self.disk.write_newer(generation, || {
            if let Some(dir) = self.path.parent() {
                fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
            }
            fs::copy(src, &self.path).map_err(|e| io_err(&self.path, e))?;
            Ok(())
        })?;
        self.file = file;
        Ok(())
    }
}

impl Disk {
    /// A generation for a write made now; content waiting for the blocking pool is older and
    /// will not be written.
    fn next_generation(&self) -> u64 {
        let mut q = lock(&self.queue);
        q.generation += 1;
        q.waiting = None;
        q.generation
    }

    /// Run `write` unless the file already holds `generation` or a newer one.
    fn write_newer(
        &self,
        generation: u64,
        write: impl FnOnce() -> Result<(), LabError>,
    ) -> Result<(), LabError> {
        let mut on_file = lock(&self.file);
        if *on_file >= generation {
            return Ok(());
        }
        #[cfg(test)]
        if let Some(f) = lock(&self.before_write).clone() {
            f();
        }
        // Whatever comes of it answers the writes waiting up to here (a failure too: none of
        // them is left waiting).
        match write() {
            Ok(()) => {
                *on_file = generation;
                self.on_file
                    .send_modify(|s| s.written = s.written.max(generation));
                Ok(())
            }
            Err(e) => {
                self.on_file.send_modify(|s| {
                    s.failed = s.failed.max(generation);
                    s.error = e.to_string();
                });
                Err(e)
            }
        }
    }

    /// The background writer: the newest waiting content, until none waits.
    fn write_waiting(&self, path: &Path) {
        loop {
            let (generation, file) = {
                let mut q = lock(&self.queue);
                match q.waiting.take() {
                    Some(w) => w,
                    None => {
                        q.busy = false;
                        self.on_file.send_modify(|s| s.busy = false);
                        return;
                    }
                }
            };
            if let Err(e) = self.write_newer(generation, || write_file(path, &file)) {
                tracing::warn!("lab: {e}");
            }
        }
    }
}

/// Writes `file` to `path` atomically (temp file, then rename) so a crash never leaves half a
/// store.
fn write_file(path: &Path, file: &StoreFile) -> Result<(), LabError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    let text = serde_json::to_vec_pretty(file)
        .map_err(|e| LabError::Store(format!("cannot encode store: {e}")))?;
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, text).map_err(|e| io_err(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

/// Writes a store file to `path` (a backup assembled from several stores), atomically.
pub fn write_store_file(path: &Path, file: &StoreFile) -> Result<(), LabError> {
    write_file(path, file)
}

/// Reads and decodes a store or backup file.
pub fn read_store_file(path: &Path) -> Result<StoreFile, LabError> {
    let bytes = fs::read(path).map_err(|e| io_err(path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| LabError::Store(format!("{} is not a store file: {e}", path.display())))
}

/// Names used as file and directory names (backups, schemas): no path tricks.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_and_restore_are_file_copies() {
        let dir = tempfile::tempdir().unwrap();
        let seed = BTreeMap::from([("a".to_string(), "1".to_string())]);
        let mut s = Store::open_or_create(dir.path().join("n/store.json"), 1025, &seed).unwrap();
        let backup = dir.path().join("backups/b1.json");
        s.copy_to(&backup).unwrap();
        s.file.data.insert("a".into(), "2".into());
        s.file.format = 1026;
        s.save().unwrap();
        s.restore_from(&backup).unwrap();
        assert_eq!(s.file.data["a"], "1");
        assert_eq!(s.file.format, 1025);
        let again = Store::open_or_create(s.path().to_path_buf(), 9, &BTreeMap::new()).unwrap();
        assert_eq!(again.file, s.file);
    }

    fn on_file(s: &Store) -> StoreFile {
        read_store_file(s.path()).unwrap()
    }

    /// A write the test holds (a slow disk): it says when it starts and waits to be let go.
    fn held(
        s: &Store,
    ) -> (
        tokio::sync::mpsc::UnboundedReceiver<()>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (entered_tx, entered) = tokio::sync::mpsc::unbounded_channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        s.before_each_write(move || {
            let _ = entered_tx.send(());
            let _ = lock(&release_rx).recv();
        });
        (entered, release)
    }

    /// A data-plane write leaves the runtime's one thread free while its file is written (a
    /// timer fires, another task runs), and is answered only once the file has it; writes that
    /// come meanwhile go out together, the newest content once.
    #[tokio::test(flavor = "current_thread")]
    async fn a_write_behind_frees_the_thread_and_is_answered_once_on_file() {
        use futures::FutureExt as _;
        let dir = tempfile::tempdir().unwrap();
        let mut s =
            Store::open_or_create(dir.path().join("n/store.json"), 1, &BTreeMap::new()).unwrap();
        let (mut entered, release) = held(&s);
        s.file.data.insert("a".into(), "1".into());
        let mut first = Box::pin(s.save_behind().on_file());
        entered.recv().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        let (ping, pong) = tokio::sync::oneshot::channel();
        tokio::spawn(async move { ping.send(()) });
        pong.await.unwrap();
        assert_eq!((&mut first).now_or_never(), None, "answered before on file");
        // Three more while the first is held: one write carries the last of them.
        let mut later = Vec::new();
        for v in ["2", "3", "4"] {
            s.file.data.insert("a".into(), v.into());
            later.push(s.save_behind());
        }
        assert!(on_file(&s).data.is_empty(), "{:?}", on_file(&s));
        release.send(()).unwrap();
        assert_eq!(first.await, Ok(()));
        entered.recv().await.unwrap();
        release.send(()).unwrap();
        for w in later {
            assert_eq!(w.on_file().await, Ok(()));
        }
        s.idle().await;
        assert_eq!(on_file(&s).data["a"], "4");
        assert!(entered.try_recv().is_err(), "one write for the three");
    }

    /// The file never goes back: content waiting for the blocking pool is not written over a
    /// newer save, and a write older than the file's is not done.
    #[test]
    fn an_older_write_never_lands_after_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut s =
            Store::open_or_create(dir.path().join("n/store.json"), 1, &BTreeMap::new()).unwrap();
        let old = s.disk.next_generation();
        s.file.data.insert("a".into(), "new".into());
        s.save().unwrap();
        let stale = StoreFile::default();
        s.disk
            .write_newer(old, || write_file(s.path(), &stale))
            .unwrap();
        assert_eq!(on_file(&s).data["a"], "new");
        // A write failed in the background is the answer of the writes it carried.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        std::fs::remove_file(s.path()).unwrap();
        std::fs::create_dir(s.path().with_extension("json.tmp")).unwrap();
        s.file.data.insert("a".into(), "lost".into());
        let w = rt.block_on(async { s.save_behind().on_file().await });
        assert!(w.is_err_and(|e| e.contains("store.json.tmp")));
    }

    #[test]
    fn names_cannot_escape() {
        assert!(valid_name("pre_upgrade-1"));
        assert!(!valid_name("../x"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
    }
}
