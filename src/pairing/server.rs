//! The session server: a Unix socket in the runtime directory, one task per connection, each
//! connection an operator attached to the engine (`EngineHandle::attach`) and bridged line by
//! line. The server stops, and removes its files, when its guard drops or the engine ends.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;
use tokio::task::{JoinHandle, JoinSet};

use super::connection::{connection, Ctx};
use super::peercred::group_gid;
use super::protocol::PROTOCOL;
use super::registry::SessionFile;
use super::runtime_dir::{self, current_uid, Access};
use super::PairingError;
use crate::engine::session::{EngineHandle, EngineTask};
use crate::engine::SessionState;

pub use super::connection::status_of;

#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Also let members of this group (name or gid) join; the session then lives in a shared
    /// directory (see `runtime_dir`).
    pub allow_group: Option<String>,
    /// Put the socket here instead of the default runtime directory (tests, odd setups). It is
    /// checked like the default one.
    pub runtime_dir: Option<PathBuf>,
    /// How often the server checks its socket is still there (default 5 s).
    pub recheck_every: Option<Duration>,
    /// Bounds on connections and on what a client that stops reading may cost.
    pub limits: Limits,
    /// The no-argument demo (recorded in the session file: a joining cockpit may end it).
    pub demo: bool,
}

/// What members may cost the server. The owner is never limited (only they can be hurt).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once from one user (other than the owner).
    pub per_uid: usize,
    /// Connections open at once from all users other than the owner.
    pub total: usize,
    /// How long one line to a client may take to go out; a client that stops reading is
    /// dropped after that (it can join again), so it never makes the server hold its backlog.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_uid: 8,
            total: 64,
            write_timeout: Duration::from_secs(30),
        }
    }
}

impl ServeOptions {
    pub fn new(allow_group: Option<String>) -> Self {
        ServeOptions {
            allow_group,
            ..Default::default()
        }
    }
}

/// Keeps the server up; dropping it stops accepting, closes every connection and removes the
/// socket and the session file.
pub struct ServerGuard {
    name: String,
    files: Arc<Mutex<Files>>,
    accept: JoinHandle<()>,
}

impl ServerGuard {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the session is served now (it moves if its directory is removed under it).
    pub fn socket_path(&self) -> PathBuf {
        lock(&self.files).socket.clone()
    }

    pub fn info_path(&self) -> PathBuf {
        lock(&self.files).info.clone()
    }

    /// Resolves once the server has stopped on its own (the engine ended).
    pub async fn stopped(&mut self) {
        let _ = (&mut self.accept).await;
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.accept.abort();
        lock(&self.files).remove();
    }
}

fn lock(files: &Mutex<Files>) -> std::sync::MutexGuard<'_, Files> {
    // Files holds paths only; a panic elsewhere cannot leave it half-updated.
    files.lock().unwrap_or_else(|p| p.into_inner())
}

/// The files a server owns, removed only while they are still the ones it made (a later
/// server may have replaced a stale socket of the same name).
#[derive(Clone)]
struct Files {
    socket: PathBuf,
    socket_id: (u64, u64),
    info: PathBuf,
}

impl Files {
    fn present(&self) -> bool {
        std::fs::symlink_metadata(&self.socket).is_ok_and(|m| (m.dev(), m.ino()) == self.socket_id)
    }

    fn remove(&self) {
        if self.present() {
            let _ = std::fs::remove_file(&self.socket);
            let _ = std::fs::remove_file(&self.info);
        }
    }
}

/// What the accept loop needs besides what each connection needs.
struct Serving {
    conn: Arc<Ctx>,
    access: Access,
    /// Where to serve again if the socket disappears.
    fallback_dir: PathBuf,
    record: SessionFile,
    recheck_every: Duration,
}

/// How often the server checks that its socket is still there, by default.
const WATCH_EVERY: Duration = Duration::from_secs(5);

/// Serve the session `name` on `<runtime dir>/<name>.sock` until the guard drops or the engine
/// ends. Nothing listens on the network.
pub async fn serve(
    handle: EngineHandle,
    name: &str,
    opts: ServeOptions,
) -> Result<ServerGuard, PairingError> {
    runtime_dir::validate_name(name)?;
    let allowed_gid = match &opts.allow_group {
        Some(g) => Some(group_gid(g)?),
        None => None,
    };
    let access = allowed_gid.map_or(Access::Private, Access::Group);
    let dir = opts
        .runtime_dir
        .clone()
        .unwrap_or_else(|| runtime_dir::dir_for(access));
    // logind removes $XDG_RUNTIME_DIR when the operator's last login ends — exactly when a
    // detached session must stay reachable. Then the server moves to the /tmp location.
    let fallback_dir = match (&opts.runtime_dir, access) {
        (None, Access::Private) => runtime_dir::fallback_dir(),
        _ => dir.clone(),
    };
    let state = handle
        .snapshot()
        .await
        .map_err(|_| PairingError::SessionGone)?;
    let record = SessionFile {
        name: name.to_string(),
        procedure: state.plan.procedure.clone(),
        target: state.plan.target.clone(),
        journal: handle.journal_path().to_path_buf(),
        started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        pid: std::process::id(),
        owner_uid: current_uid(),
        allow_group: opts.allow_group.clone(),
        protocol: PROTOCOL,
        demo: opts.demo,
    };
    let (listener, files) = bind(&dir, &record, access).await?;
    let ended = match handle.subscribe(u64::MAX).await {
        Ok((_, live)) => live,
        Err(_) => {
            files.remove();
            return Err(PairingError::SessionGone);
        }
    };
    tracing::info!(session = name, socket = %files.socket.display(), "serving the session");
    let files = Arc::new(Mutex::new(files));
    let ctx = Arc::new(Serving {
        conn: Arc::new(Ctx {
            handle,
            name: name.to_string(),
            owner_uid: current_uid(),
            allowed_gid,
            limits: opts.limits,
            open: Mutex::new(super::connection::Open::default()),
        }),
        access,
        fallback_dir,
        record,
        recheck_every: opts
            .recheck_every
            .unwrap_or(WATCH_EVERY)
            .max(Duration::from_millis(10)),
    });
    let accept = tokio::spawn(accept_loop(listener, ctx, ended, files.clone()));
    Ok(ServerGuard {
        name: name.to_string(),
        files,
        accept,
    })
}

/// Bind `<dir>/<name>.sock` with the access's mode, then write the session file beside it.
async fn bind(
    dir: &Path,
    record: &SessionFile,
    access: Access,
) -> Result<(UnixListener, Files), PairingError> {
    let dir = runtime_dir::ensure(dir, access)?;
    let socket = runtime_dir::socket_path(&dir, &record.name);
    let info = runtime_dir::info_path(&dir, &record.name);
    clear_stale(&socket, &record.name).await?;
    let listener = UnixListener::bind(&socket).map_err(PairingError::io(&socket))?;
    // The directory is private (0700, or 0750 for a group), so nobody else can reach the socket
    // in the moment before its own mode is narrowed.
    let narrowed = match access {
        Access::Group(gid) => std::os::unix::fs::chown(&socket, None, Some(gid)),
        Access::Private => Ok(()),
    }
    .and_then(|()| {
        std::fs::set_permissions(
            &socket,
            std::fs::Permissions::from_mode(access.socket_mode()),
        )
    })
    .and_then(|()| std::fs::symlink_metadata(&socket));
    let meta = match narrowed {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&socket);
            return Err(PairingError::io(&socket)(e));
        }
    };
    let files = Files {
        socket,
        socket_id: (meta.dev(), meta.ino()),
        info,
    };
    if let Err(e) = write_info(&files.info, record, access) {
        files.remove();
        return Err(e);
    }
    Ok((listener, files))
}

/// A socket file left by a server that died is removed; one that still answers means the name
/// is taken.
async fn clear_stale(socket: &Path, name: &str) -> Result<(), PairingError> {
    let Ok(meta) = std::fs::symlink_metadata(socket) else {
        return Ok(());
    };
    if UnixStream::connect(socket).await.is_ok() {
        return Err(PairingError::NameTaken(name.to_string()));
    }
    if meta.file_type().is_dir() {
        return Err(PairingError::NameTaken(name.to_string()));
    }
    std::fs::remove_file(socket).map_err(PairingError::io(socket))
}

fn write_info(path: &Path, record: &SessionFile, access: Access) -> Result<(), PairingError> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(access.info_mode())
        .open(&tmp)
        .map_err(PairingError::io(&tmp))?;
    let text = serde_json::to_string_pretty(record)
        .map_err(|e| PairingError::Protocol(format!("cannot encode the session file: {e}")))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .map_err(PairingError::io(&tmp))?;
    if let Access::Group(gid) = access {
        std::os::unix::fs::chown(&tmp, None, Some(gid)).map_err(PairingError::io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(PairingError::io(path))
}

async fn accept_loop(
    mut listener: UnixListener,
    ctx: Arc<Serving>,
    mut ended: broadcast::Receiver<crate::engine::Stamped>,
    files: Arc<Mutex<Files>>,
) {
    let mut conns = JoinSet::new();
    let mut watch = tokio::time::interval(ctx.recheck_every);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    conns.spawn(connection(stream, ctx.conn.clone()));
                }
                Err(e) => {
                    // Out of descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accepting a pairing connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            r = ended.recv() => {
                if let Err(broadcast::error::RecvError::Closed) = r {
                    break;
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = watch.tick() => {
                if lock(&files).present() {
                    continue;
                }
                // Someone removed our socket (logout cleaning the runtime dir, a tmp cleaner):
                // serve again, so the session stays reachable. Joined operators are unaffected.
                match bind(&ctx.fallback_dir, &ctx.record, ctx.access).await {
                    Ok((l, f)) => {
                        tracing::warn!(
                            socket = %f.socket.display(),
                            "the session's socket was removed; serving it here again"
                        );
                        listener = l;
                        let old = std::mem::replace(&mut *lock(&files), f);
                        // The old session file may have survived its socket.
                        if old.info != lock(&files).info {
                            let _ = std::fs::remove_file(&old.info);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot serve the session again"),
                }
            }
        }
    }
    tracing::info!(session = %ctx.conn.name, "the session ended; no longer serving it");
    lock(&files).remove();
}

/// The whole life of a detached session server (`run --serve-internal`): serve `task`'s
/// session until it has finished and nobody watched it for `grace`, the engine ends, or the
/// process gets SIGTERM/SIGINT; then stop the engine and return its final state. A session
/// stopped unfinished resumes later from its journal (a running action shows as interrupted).
pub async fn serve_until_done(
    task: EngineTask,
    name: &str,
    opts: ServeOptions,
    grace: Duration,
) -> Result<SessionState, PairingError> {
    use tokio::signal::unix::{signal, SignalKind};
    let EngineTask { handle, join } = task;
    let mut guard = serve(handle.clone(), name, opts).await?;
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| PairingError::Spawn(format!("cannot watch for SIGTERM: {e}")))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| PairingError::Spawn(format!("cannot watch for SIGINT: {e}")))?;
    tokio::select! {
        _ = finished_and_idle(&handle, grace) => {}
        _ = guard.stopped() => {}
        _ = term.recv() => tracing::warn!("SIGTERM: stopping the session server"),
        _ = int.recv() => tracing::warn!("SIGINT: stopping the session server"),
    }
    drop(guard);
    handle.shutdown().await;
    match join.await {
        Ok(Ok(state)) => Ok(state),
        Ok(Err(e)) => Err(PairingError::Engine(e.to_string())),
        Err(e) => Err(PairingError::Engine(format!("the engine task failed: {e}"))),
    }
}

/// For a detached server: resolves once the session has finished and nobody has been attached
/// for `grace` (so the last operator can still read the end), or when the engine is gone. An
/// unfinished session never resolves: it waits for its operators to come back.
pub async fn finished_and_idle(handle: &EngineHandle, grace: Duration) {
    use crate::engine::Event;
    use broadcast::error::RecvError;
    let Ok((_, mut live)) = handle.subscribe(u64::MAX).await else {
        return;
    };
    loop {
        let Ok(s) = handle.snapshot().await else {
            return;
        };
        if s.is_finished() && s.operators.is_empty() {
            // Probes keep sampling after the end: only a join restarts the wait.
            let deadline = tokio::time::Instant::now() + grace;
            loop {
                match tokio::time::timeout_at(deadline, live.recv()).await {
                    Err(_) | Ok(Err(RecvError::Closed)) => return,
                    Ok(Err(RecvError::Lagged(_))) => break,
                    Ok(Ok(e)) if matches!(e.event, Event::OperatorJoined { .. }) => break,
                    Ok(Ok(_)) => {}
                }
            }
            continue;
        }
        // Only an end or a departure can make the session idle.
        loop {
            match live.recv().await {
                Err(RecvError::Closed) => return,
                Err(RecvError::Lagged(_)) => break,
                Ok(e) if matches!(e.event, Event::Finished { .. } | Event::OperatorLeft { .. }) => {
                    break
                }
                Ok(_) => {}
            }
        }
    }
}
