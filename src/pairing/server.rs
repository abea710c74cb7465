//! The session server: a Unix socket in the runtime directory, one task per connection, each
//! connection an operator attached to the engine (`EngineHandle::attach`) and bridged line by
//! line. The server stops, and removes its files, when its guard drops or the engine ends.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc};
use tokio::task::{JoinHandle, JoinSet};

use super::peercred::{authorize_groups, group_gid, groups_of};
use super::protocol::{
    encode, parse_client_line, read_line, ClientMsg, Hello, Incoming, Refused, Reply, ServerMsg,
    Status, StatusOperator, Welcome, MAX_CLIENT_LINE, PROTOCOL,
};
use super::registry::SessionFile;
use super::runtime_dir::{self, current_uid, Access};
use super::PairingError;
use crate::engine::client::SessionClient;
use crate::engine::session::{EngineHandle, EngineTask};
use crate::engine::state::Mode;
use crate::engine::SessionState;

/// How long a new connection may take to say hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest operator label kept (it is shown in every operator's cockpit).
const MAX_LABEL: usize = 64;

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

struct Ctx {
    handle: EngineHandle,
    name: String,
    owner_uid: u32,
    allowed_gid: Option<u32>,
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
    let ctx = Arc::new(Ctx {
        handle,
        name: name.to_string(),
        owner_uid: current_uid(),
        allowed_gid,
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
    ctx: Arc<Ctx>,
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
                    conns.spawn(connection(stream, ctx.clone()));
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
    tracing::info!(session = %ctx.name, "the session ended; no longer serving it");
    lock(&files).remove();
}

async fn connection(stream: UnixStream, ctx: Arc<Ctx>) {
    if let Err(e) = serve_connection(stream, &ctx).await {
        tracing::debug!(error = %e, "pairing connection ended");
    }
}

async fn send(wr: &mut OwnedWriteHalf, msg: &ServerMsg) -> std::io::Result<()> {
    wr.write_all(encode(msg).as_bytes()).await
}

async fn refuse(wr: &mut OwnedWriteHalf, reason: String) -> std::io::Result<()> {
    tracing::info!(reason = %reason, "refused a pairing connection");
    send(wr, &ServerMsg::Refused(Refused { reason })).await?;
    wr.shutdown().await
}

async fn serve_connection(stream: UnixStream, ctx: &Ctx) -> std::io::Result<()> {
    let cred = stream.peer_cred()?;
    let (rd, mut wr) = stream.into_split();
    let (uid, gid) = (cred.uid(), cred.gid());
    let groups = if uid != ctx.owner_uid && ctx.allowed_gid.is_some() {
        // The group database may be remote (NSS): keep it off the runtime's threads.
        tokio::task::spawn_blocking(move || groups_of(uid, gid))
            .await
            .unwrap_or_else(|_| vec![gid])
    } else {
        vec![gid]
    };
    if let Err(e) = authorize_groups(uid, &groups, ctx.owner_uid, ctx.allowed_gid) {
        return refuse(&mut wr, e.0).await;
    }

    let mut rd = BufReader::new(rd);
    let first =
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_line(&mut rd, MAX_CLIENT_LINE)).await {
            Err(_) => return refuse(&mut wr, "no hello within 10 seconds".into()).await,
            Ok(Err(e)) => return refuse(&mut wr, format!("unreadable hello: {e}")).await,
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(line))) => line,
        };
    let hello = match serde_json::from_str::<ClientMsg>(&first) {
        Ok(ClientMsg::Hello(h)) => h,
        Ok(ClientMsg::Status(_)) => {
            let reply = match ctx.handle.snapshot().await {
                Ok(s) => ServerMsg::Status(status_of(&ctx.name, &s)),
                Err(_) => ServerMsg::Refused(Refused {
                    reason: "the session has ended".into(),
                }),
            };
            send(&mut wr, &reply).await?;
            return wr.shutdown().await;
        }
        Ok(ClientMsg::Command(_)) => {
            return refuse(&mut wr, "say hello first".into()).await;
        }
        Err(e) => return refuse(&mut wr, format!("malformed hello: {e}")).await,
    };
    if hello.protocol != PROTOCOL {
        return refuse(
            &mut wr,
            format!(
                "protocol version {} is not supported (this session speaks {PROTOCOL}); use the \
                 same flightdeck version as the session",
                hello.protocol
            ),
        )
        .await;
    }
    let label = display_name(&hello, uid);
    let client = match ctx.handle.attach(&label, hello.want_driver).await {
        Ok(c) => c,
        Err(e) => return refuse(&mut wr, e.0).await,
    };
    tracing::info!(operator = %label, id = client.operator_id, uid, "operator joined");
    send(
        &mut wr,
        &ServerMsg::Welcome(Welcome {
            protocol: PROTOCOL,
            operator_id: client.operator_id,
            session: ctx.name.clone(),
        }),
    )
    .await?;
    bridge(client, rd, wr, hello.after_seq).await
}

/// The name an operator shows under: their label, else their name, kept printable and short so
/// nobody can paint escape sequences into other operators' terminals.
fn display_name(hello: &Hello, uid: u32) -> String {
    let raw = hello
        .label
        .as_deref()
        .filter(|l| !l.trim().is_empty())
        .unwrap_or(&hello.operator);
    let clean: String = raw
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_LABEL)
        .collect();
    let clean = clean.trim().to_string();
    if clean.is_empty() {
        format!("uid {uid}")
    } else {
        clean
    }
}

/// Events out, commands in, until either side closes. Both halves run in this task, so
/// stopping the server (which aborts connection tasks) also closes every connection.
async fn bridge(
    client: SessionClient,
    mut rd: BufReader<OwnedReadHalf>,
    mut wr: OwnedWriteHalf,
    after_seq: u64,
) -> std::io::Result<()> {
    let SessionClient {
        mut events,
        commands,
        ..
    } = client;
    let (reply_tx, mut reply_rx) = mpsc::channel::<Reply>(64);
    let writer = async move {
        loop {
            let msg = tokio::select! {
                e = events.recv() => match e {
                    Some(e) if !e.event.is_live_only() && e.seq <= after_seq => continue,
                    Some(e) => ServerMsg::Event(e),
                    // The session ended: say so by closing the stream.
                    None => break,
                },
                r = reply_rx.recv() => match r {
                    Some(r) => ServerMsg::Reply(r),
                    // The reader is done and every reply is out.
                    None => break,
                },
            };
            send(&mut wr, &msg).await?;
        }
        wr.shutdown().await
    };
    let reader = async move {
        let r = read_commands(&mut rd, &commands, &reply_tx).await;
        // The operator leaves now (the engine sees its last sender go), and the writer stops
        // once the replies already queued are out.
        drop(commands);
        drop(reply_tx);
        r
    };
    tokio::pin!(writer);
    tokio::pin!(reader);
    tokio::select! {
        r = &mut writer => r,
        r = &mut reader => {
            // Let the last replies (e.g. "line too long") go out, but not wait on a client
            // that stopped reading.
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut writer).await;
            r
        }
    }
}

async fn read_commands(
    rd: &mut BufReader<OwnedReadHalf>,
    commands: &crate::engine::client::CommandSender,
    replies: &mpsc::Sender<Reply>,
) -> std::io::Result<()> {
    loop {
        let line = match read_line(rd, MAX_CLIENT_LINE).await {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let _ = replies
                    .send(Reply::error(0, format!("{e}: closing the connection")))
                    .await;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if line.trim().is_empty() {
            continue;
        }
        let reply = match parse_client_line(&line) {
            Incoming::Command(c) => Reply::from_result(c.id, commands.send(c.cmd).await),
            Incoming::Malformed(r) => r,
        };
        if replies.send(reply).await.is_err() {
            return Ok(());
        }
    }
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

/// The summary `flightdeck sessions` shows.
pub fn status_of(name: &str, s: &SessionState) -> Status {
    Status {
        session: name.to_string(),
        procedure: s.plan.procedure.clone(),
        target: s.plan.target.clone(),
        steps_done: s.steps.iter().filter(|r| r.status.is_settled()).count(),
        steps_total: s.steps.len(),
        current_step: if s.is_finished() {
            None
        } else {
            s.cursor().map(|c| c + 1)
        },
        mode: match s.mode {
            Mode::Forward => "forward".into(),
            Mode::RollingBack => "rolling back".into(),
            Mode::Finished(o) => match o {
                crate::engine::event::Outcome::Completed => "completed".into(),
                crate::engine::event::Outcome::Aborted => "aborted".into(),
                crate::engine::event::Outcome::RolledBack => "rolled back".into(),
            },
        },
        operators: s
            .operators
            .iter()
            .map(|o| StatusOperator {
                id: o.id,
                name: o.name.clone(),
                driver: o.driver,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(operator: &str, label: Option<&str>) -> Hello {
        Hello {
            protocol: PROTOCOL,
            operator: operator.into(),
            label: label.map(Into::into),
            want_driver: false,
            after_seq: 0,
        }
    }

    #[test]
    fn display_names_are_printable_and_short() {
        assert_eq!(display_name(&hello("alice", None), 1), "alice");
        assert_eq!(
            display_name(&hello("alice", Some("alice@laptop")), 1),
            "alice@laptop"
        );
        assert_eq!(
            display_name(&hello("x", Some("\u{1b}[2Jevil\n")), 1),
            "[2Jevil"
        );
        assert_eq!(display_name(&hello("", Some("  ")), 7), "uid 7");
        assert_eq!(
            display_name(&hello(&"a".repeat(500), None), 1).len(),
            MAX_LABEL
        );
    }
}
