//! Joining a served session: the socket becomes the same `SessionClient` an in-process view
//! holds, so the cockpit cannot tell a joined session from its own.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, watch};

use super::protocol::{
    encode, lines, next_line, ClientMsg, CommandMsg, Hello, Reply, ServerMsg, MAX_SERVER_LINE,
    PROTOCOL,
};
use super::registry::{self, SessionInfo};
use super::samples::Expander;
use super::PairingError;
use crate::engine::client::{CommandSender, Request, SessionClient, Viewport};
use crate::engine::{Command, Rejected, Stamped};

/// How long the server may take to answer the hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a joined client shows the session it is alive. A driver whose client stops (a
/// hung SSH connection, a suspended terminal) can then be taken over (see `TakeControl`).
const ALIVE_EVERY: Duration = Duration::from_secs(5);

/// Join the session `name` (None: the only live one) as `operator`, shown as `label`.
pub async fn connect(
    name: Option<&str>,
    operator: &str,
    label: Option<&str>,
    want_driver: bool,
) -> Result<SessionClient, PairingError> {
    let name = name.map(str::to_string);
    // The listing probes sockets with blocking connects.
    let session = tokio::task::spawn_blocking(move || registry::resolve(name.as_deref()))
        .await
        .map_err(|e| PairingError::Protocol(format!("looking up sessions failed: {e}")))??;
    connect_session(&session, hello(operator, label, want_driver, 0)).await
}

/// Join a listed session, having checked that its socket is served by the process and the user
/// its session file names (the kernel's peer credentials of the listening socket). A session
/// file is only a claim — another user can write one naming any socket and pid — so this is
/// what lets `join` trust `session.pid` (which "end demo" signals) and `session.owner`.
pub async fn connect_session(
    session: &SessionInfo,
    hello: Hello,
) -> Result<SessionClient, PairingError> {
    let socket = &session.socket;
    let stream = UnixStream::connect(socket)
        .await
        .map_err(PairingError::io(socket))?;
    let cred = stream.peer_cred().map_err(PairingError::io(socket))?;
    check_server(cred.uid(), cred.pid(), session).map_err(|reason| PairingError::NotItsServer {
        socket: socket.clone(),
        reason,
    })?;
    join_stream(stream, socket, hello).await
}

/// Whether the peer serving a session's socket (uid, and pid where the kernel says) is the one
/// its session file names.
pub(crate) fn check_server(
    uid: u32,
    pid: Option<i32>,
    session: &SessionInfo,
) -> Result<(), String> {
    if uid != session.owner_uid {
        return Err(format!(
            "its server runs as uid {uid}, but its session file says {} (uid {})",
            session.owner, session.owner_uid
        ));
    }
    match pid.and_then(|p| u32::try_from(p).ok()) {
        Some(p) if p == session.pid => Ok(()),
        Some(p) => Err(format!(
            "its server is process {p}, but its session file says {}",
            session.pid
        )),
        None => Err("the kernel does not say which process serves it".into()),
    }
}

/// A hello for this protocol version.
pub fn hello(operator: &str, label: Option<&str>, want_driver: bool, after_seq: u64) -> Hello {
    Hello {
        protocol: PROTOCOL,
        operator: operator.to_string(),
        label: label.map(str::to_string),
        want_driver,
        after_seq,
        // This client reads frames of live samples (`super::samples`).
        samples: true,
    }
}

/// Join the session served on `socket`, trusting whoever serves it (tests, and a socket this
/// process has just been handed); `join` goes through `connect_session`.
pub async fn connect_socket(socket: &Path, hello: Hello) -> Result<SessionClient, PairingError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(PairingError::io(socket))?;
    join_stream(stream, socket, hello).await
}

/// Join over a stream already connected to the session's socket (`socket` names it in errors).
/// The server knows who connected from the kernel (the connecting process's uid), whatever
/// process then speaks on the stream.
pub async fn join_stream(
    stream: UnixStream,
    socket: &Path,
    hello: Hello,
) -> Result<SessionClient, PairingError> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = lines(rd, MAX_SERVER_LINE);
    wr.write_all(encode(&ClientMsg::Hello(hello.clone())).as_bytes())
        .await
        .map_err(PairingError::io(socket))?;
    let line = tokio::time::timeout(HANDSHAKE_TIMEOUT, next_line(&mut rd))
        .await
        .map_err(|_| PairingError::Protocol("the session did not answer the hello".into()))?
        .map_err(PairingError::io(socket))?
        .ok_or_else(|| PairingError::Protocol("the session closed the connection".into()))?;
    let welcome = match serde_json::from_str::<ServerMsg>(&line) {
        Ok(ServerMsg::Welcome(w)) => w,
        Ok(ServerMsg::Refused(r)) => return Err(PairingError::Refused(r.reason)),
        Ok(other) => {
            return Err(PairingError::Protocol(format!(
                "expected a welcome, got {}",
                kind(&other)
            )))
        }
        Err(e) => {
            return Err(PairingError::Protocol(format!(
                "unreadable answer to hello: {e}"
            )))
        }
    };
    if welcome.protocol != PROTOCOL {
        return Err(PairingError::Protocol(format!(
            "the session speaks protocol {}, this flightdeck {PROTOCOL}",
            welcome.protocol
        )));
    }

    let (ev_tx, ev_rx) = mpsc::channel::<Stamped>(4096);
    let (req_tx, req_rx) = mpsc::channel::<Request>(64);
    let (reply_tx, reply_rx) = mpsc::channel::<Reply>(64);
    // Reading lines is not cancel-safe, so the reader runs on its own and hands replies to the
    // writer, which owns the table of pending commands.
    tokio::spawn(async move {
        let mut samples = Expander::default();
        loop {
            let line = match next_line(&mut rd).await {
                Ok(Some(l)) => l,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "pairing connection failed");
                    break;
                }
            };
            match serde_json::from_str::<ServerMsg>(&line) {
                Ok(ServerMsg::Event(e)) => {
                    // A view that stopped listening still wants its replies.
                    let _ = ev_tx.send(e).await;
                }
                Ok(ServerMsg::Samples(frame)) => {
                    for e in samples.expand(frame) {
                        let _ = ev_tx.send(e).await;
                    }
                }
                Ok(ServerMsg::Reply(r)) => {
                    if reply_tx.send(r).await.is_err() {
                        break;
                    }
                }
                Ok(other) => tracing::debug!(kind = kind(&other), "unexpected message ignored"),
                // A newer server's event this build does not know: skip it, keep following.
                Err(e) => tracing::warn!(error = %e, "unreadable line from the session skipped"),
            }
        }
    });
    let (viewport_tx, viewport_rx) = watch::channel::<Option<Viewport>>(None);
    tokio::spawn(write_commands(wr, req_rx, reply_rx, viewport_rx));

    Ok(SessionClient {
        operator_id: welcome.operator_id,
        operator: hello
            .label
            .filter(|l| !l.trim().is_empty())
            .unwrap_or(hello.operator),
        events: ev_rx,
        commands: CommandSender::new(req_tx),
        viewport: Some(viewport_tx),
    })
}

/// Send each command with a fresh id and route its reply back, and the view's viewport each
/// time it changes. Ends (closing the connection, which makes the operator leave) when every
/// `CommandSender` is gone or the session closed.
async fn write_commands(
    mut wr: tokio::net::unix::OwnedWriteHalf,
    mut requests: mpsc::Receiver<Request>,
    mut replies: mpsc::Receiver<Reply>,
    mut viewport: watch::Receiver<Option<Viewport>>,
) {
    let mut viewport_open = true;
    let mut pending: HashMap<u64, oneshot::Sender<Result<(), Rejected>>> = HashMap::new();
    let mut next_id: u64 = 1;
    let mut alive = tokio::time::interval(ALIVE_EVERY);
    alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = alive.tick() => {
                // The server does not answer it (`pairing::protocol`): nothing is pending.
                let id = next_id;
                next_id += 1;
                let line = encode(&ClientMsg::Command(CommandMsg { id, cmd: Command::Alive }));
                if wr.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
            req = requests.recv() => {
                let Some(req) = req else { break };
                let id = next_id;
                next_id += 1;
                let line = encode(&ClientMsg::Command(CommandMsg { id, cmd: req.command }));
                if let Err(e) = wr.write_all(line.as_bytes()).await {
                    let _ = req
                        .reply
                        .send(Err(Rejected(format!("the connection to the session broke: {e}"))));
                    break;
                }
                pending.insert(id, req.reply);
                // Any command is a sign of life: the next `alive` only after a quiet spell.
                alive.reset();
            }
            changed = viewport.changed(), if viewport_open => {
                if changed.is_err() {
                    // The view keeps its samples as they are.
                    viewport_open = false;
                    continue;
                }
                let Some(v) = viewport.borrow_and_update().clone() else { continue };
                if wr.write_all(encode(&ClientMsg::Viewport(v)).as_bytes()).await.is_err() {
                    break;
                }
            }
            reply = replies.recv() => {
                let Some(reply) = reply else { break };
                match pending.remove(&reply.id) {
                    Some(tx) => {
                        let _ = tx.send(reply.into_result());
                    }
                    None => tracing::warn!(
                        id = reply.id,
                        error = ?reply.error,
                        "a reply to no pending command"
                    ),
                }
            }
        }
    }
    // Pending senders drop here: their commands answer "the session ended before answering".
    let _ = wr.shutdown().await;
}

/// A message's kind, for error text.
pub(crate) fn kind(msg: &ServerMsg) -> &'static str {
    match msg {
        ServerMsg::Welcome(_) => "welcome",
        ServerMsg::Refused(_) => "refused",
        ServerMsg::Event(_) => "event",
        ServerMsg::Samples(_) => "samples",
        ServerMsg::Reply(_) => "reply",
        ServerMsg::Status(_) => "status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn session(owner_uid: u32, pid: u32) -> SessionInfo {
        SessionInfo {
            name: "s".into(),
            procedure: "p".into(),
            target: "t".into(),
            journal: PathBuf::from("/j"),
            started: "2026-01-01T10:00:00Z".into(),
            pid,
            owner: "alice".into(),
            owner_uid,
            socket: PathBuf::from("/x/s.sock"),
            alive: true,
            demo: true,
        }
    }

    #[test]
    fn a_server_is_trusted_only_as_the_user_and_process_its_file_names() {
        assert_eq!(check_server(1000, Some(42), &session(1000, 42)), Ok(()));
        let e = check_server(1001, Some(42), &session(1000, 42)).unwrap_err();
        assert!(
            e.contains("uid 1001") && e.contains("alice (uid 1000)"),
            "{e}"
        );
        // The right user, another process: the pid in the file is not the server's.
        let e = check_server(1000, Some(7), &session(1000, 42)).unwrap_err();
        assert!(e.contains("process 7") && e.contains("42"), "{e}");
        assert!(check_server(1000, None, &session(1000, 42)).is_err());
        assert!(check_server(1000, Some(-1), &session(1000, 42)).is_err());
    }
}
