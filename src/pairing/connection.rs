//! One pairing connection: check who it is, read the hello (or answer a status request),
//! attach the operator to the engine, then bridge events out and commands in.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::peercred::{authorize_groups, groups_of};
use super::protocol::{
    encode, lines, next_line, parse_client_line, ClientMsg, Hello, Incoming, Refused, Reply,
    ServerMsg, Status, StatusOperator, Welcome, MAX_CLIENT_LINE, PROTOCOL,
};
use super::samples::{self, Coalescer};
use super::server::Limits;
use crate::engine::client::{CommandSender, SessionClient, Viewport};
use crate::engine::identity::Identity;
use crate::engine::session::EngineHandle;
use crate::engine::{Command, SessionState};

/// How long a new connection may take to say hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A client's lines, as the server reads them.
type ClientLines = tokio_util::codec::FramedRead<OwnedReadHalf, tokio_util::codec::LinesCodec>;

/// What a connection needs to know about the session it serves.
pub(crate) struct Ctx {
    pub handle: EngineHandle,
    pub name: String,
    pub owner_uid: u32,
    pub allowed_gid: Option<u32>,
    pub limits: Limits,
    pub open: std::sync::Mutex<Open>,
}

/// Connections open now from users other than the owner.
#[derive(Debug, Default)]
pub(crate) struct Open {
    per_uid: HashMap<u32, usize>,
    total: usize,
}

/// One counted connection; uncounted when dropped.
struct Slot<'a> {
    ctx: &'a Ctx,
    uid: u32,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut open = lock_open(self.ctx);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_uid.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_uid.remove(&self.uid);
            }
        }
    }
}

fn lock_open(ctx: &Ctx) -> std::sync::MutexGuard<'_, Open> {
    ctx.open.lock().unwrap_or_else(|p| p.into_inner())
}

/// Count a connection from `uid`, or say which bound it would cross. The owner is not counted.
fn take_slot(ctx: &Ctx, uid: u32) -> Result<Option<Slot<'_>>, String> {
    if uid == ctx.owner_uid {
        return Ok(None);
    }
    let mut open = lock_open(ctx);
    let mine = open.per_uid.get(&uid).copied().unwrap_or(0);
    if mine >= ctx.limits.per_uid {
        return Err(format!(
            "uid {uid} has {mine} connections to this session already (at most {})",
            ctx.limits.per_uid
        ));
    }
    if open.total >= ctx.limits.total {
        return Err(format!(
            "the session has {} connections already (at most {})",
            open.total, ctx.limits.total
        ));
    }
    open.total += 1;
    *open.per_uid.entry(uid).or_insert(0) += 1;
    Ok(Some(Slot { ctx, uid }))
}

pub(crate) async fn connection(stream: UnixStream, ctx: std::sync::Arc<Ctx>) {
    if let Err(e) = serve_connection(stream, &ctx).await {
        tracing::debug!(error = %e, "pairing connection ended");
    }
}

async fn send(wr: &mut OwnedWriteHalf, msg: &ServerMsg) -> std::io::Result<()> {
    wr.write_all(encode(msg).as_bytes()).await
}

/// As `send`, but a client that does not take the line within `timeout` is dropped.
async fn send_within(
    wr: &mut OwnedWriteHalf,
    msg: &ServerMsg,
    timeout: Duration,
) -> std::io::Result<()> {
    match tokio::time::timeout(timeout, send(wr, msg)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the client took no output for {}s: dropped (it can join again)",
                timeout.as_secs()
            ),
        )),
    }
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
    let _slot = match take_slot(ctx, uid) {
        Ok(s) => s,
        Err(why) => return refuse(&mut wr, why).await,
    };

    let mut rd = lines(rd, MAX_CLIENT_LINE);
    let first = match tokio::time::timeout(HANDSHAKE_TIMEOUT, next_line(&mut rd)).await {
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
        Ok(ClientMsg::Command(_) | ClientMsg::Viewport(_)) => {
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
    let label = label_of(&hello).to_string();
    // The identity is the kernel's peer uid; the label is only how the operator shows. The
    // password database may be remote (NSS): keep it off the runtime's threads.
    let who = tokio::task::spawn_blocking(move || Identity::of_uid(uid))
        .await
        .unwrap_or_else(|_| Identity {
            uid,
            user: format!("uid {uid}"),
        });
    let client = match ctx
        .handle
        .attach_remote(who, &label, hello.want_driver)
        .await
    {
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
    bridge(client, rd, wr, &hello, ctx.limits.write_timeout).await
}

/// The label an operator asks to show under: theirs, else their operator name (both the
/// client's word; blank: the kernel's user name shows). Passed as sent: the engine refuses one
/// outside `identity::check_label`'s allow-list with why, rather than this changing it quietly.
fn label_of(hello: &Hello) -> &str {
    [hello.label.as_deref().unwrap_or(""), &hello.operator]
        .into_iter()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// What `held` holds, into `out`: one frame, or its events for a client without frames.
fn flush(held: &mut Coalescer, frames: bool, out: &mut Vec<ServerMsg>) {
    if frames {
        out.extend(held.take().map(ServerMsg::Samples));
    } else {
        out.extend(held.take_events().into_iter().map(ServerMsg::Event));
    }
}

/// Send `out` in order (emptying it); a client that does not take a line in time is dropped.
async fn send_all(
    wr: &mut OwnedWriteHalf,
    out: &mut Vec<ServerMsg>,
    timeout: Duration,
) -> std::io::Result<()> {
    for msg in out.drain(..) {
        if let Err(e) = send_within(wr, &msg, timeout).await {
            tracing::info!(error = %e, "pairing connection dropped");
            return Err(e);
        }
    }
    Ok(())
}

/// Events out, commands in, until either side closes. Both halves run in this task, so
/// stopping the server (which aborts connection tasks) also closes every connection.
async fn bridge(
    client: SessionClient,
    mut rd: ClientLines,
    mut wr: OwnedWriteHalf,
    hello: &Hello,
    write_timeout: Duration,
) -> std::io::Result<()> {
    let (after_seq, frames) = (hello.after_seq, hello.samples);
    let SessionClient {
        mut events,
        commands,
        ..
    } = client;
    // Replies and viewports, in the order the client sent their lines: a sample sent after
    // the reply to a command that followed a viewport is one that viewport let through.
    let (reply_tx, mut reply_rx) = mpsc::channel::<FromReader>(64);
    let writer = async move {
        // Live samples wait for the connection's next frame, the latest of each kept.
        let mut held = Coalescer::default();
        let mut frame = tokio::time::interval(samples::FRAME);
        frame.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut out = Vec::new();
        loop {
            tokio::select! {
                e = events.recv() => match e {
                    Some(e) => {
                        if let Some(e) = held.hold(e) {
                            if e.seq <= after_seq {
                                continue;
                            }
                            // What is held goes first: the client applies all in order.
                            flush(&mut held, frames, &mut out);
                            out.push(ServerMsg::Event(e));
                        }
                    }
                    // The session ended: say so by closing the stream.
                    None => {
                        flush(&mut held, frames, &mut out);
                        send_all(&mut wr, &mut out, write_timeout).await?;
                        break;
                    }
                },
                _ = frame.tick(), if !held.is_empty() => flush(&mut held, frames, &mut out),
                r = reply_rx.recv() => match r {
                    Some(FromReader::Reply(r)) => out.push(ServerMsg::Reply(r)),
                    Some(FromReader::Viewport(v)) => held.set_viewport(Some(&v)),
                    // The reader is done and every reply is out.
                    None => break,
                },
            }
            send_all(&mut wr, &mut out, write_timeout).await?;
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

/// What the reader hands the writer.
#[derive(Debug)]
enum FromReader {
    Reply(Reply),
    /// The client shows these nodes now (not a command: nothing is answered).
    Viewport(Viewport),
}

async fn read_commands(
    rd: &mut ClientLines,
    commands: &CommandSender,
    replies: &mpsc::Sender<FromReader>,
) -> std::io::Result<()> {
    loop {
        let line = match next_line(rd).await {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let _ = replies
                    .send(FromReader::Reply(Reply::error(
                        0,
                        format!("{e}: closing the connection"),
                    )))
                    .await;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if line.trim().is_empty() {
            continue;
        }
        let to_writer = match parse_client_line(&line) {
            // A sign of life is not answered: a client sends one every few seconds, and a
            // reply to each would be bytes to every observer for nothing (the protocol's doc).
            Incoming::Command(c) if c.cmd == Command::Alive => {
                let _ = commands.send(c.cmd).await;
                continue;
            }
            Incoming::Command(c) => {
                FromReader::Reply(Reply::from_result(c.id, commands.send(c.cmd).await))
            }
            Incoming::Viewport(v) => FromReader::Viewport(v),
            Incoming::Malformed(r) => FromReader::Reply(r),
        };
        if replies.send(to_writer).await.is_err() {
            return Ok(());
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
        mode: crate::engine::outcome::outcome_text(s),
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
    use crate::engine::Stamped;

    fn hello(operator: &str, label: Option<&str>) -> Hello {
        Hello {
            protocol: PROTOCOL,
            operator: operator.into(),
            label: label.map(Into::into),
            want_driver: false,
            after_seq: 0,
            samples: false,
        }
    }

    fn sample(node: &str, latency_ms: u64) -> Stamped {
        Stamped {
            seq: 4,
            t_ms: 1000 + latency_ms,
            event: crate::engine::Event::ProbeSample {
                probe: "http".into(),
                node: Some(node.into()),
                ok: true,
                latency_ms,
                detail: "200".into(),
            },
        }
    }

    /// What a client whose hello says `samples` reads when the session publishes a sample,
    /// then three more and a journaled event at once.
    async fn lines_read(frames: bool) -> Vec<ServerMsg> {
        let (server, client) = UnixStream::pair().unwrap();
        let (rd, wr) = server.into_split();
        let (ev_tx, ev_rx) = mpsc::channel(64);
        let (req_tx, _requests) = mpsc::channel(4);
        let session = SessionClient {
            operator_id: 1,
            operator: "alice".into(),
            events: ev_rx,
            commands: CommandSender::new(req_tx),
            viewport: None,
        };
        let h = Hello {
            samples: frames,
            after_seq: 3,
            ..hello("alice", None)
        };
        let rd = lines(rd, MAX_CLIENT_LINE);
        let _bridge =
            tokio::spawn(async move { bridge(session, rd, wr, &h, Duration::from_secs(5)).await });
        let (crd, _cwr) = client.into_split();
        let mut crd = lines(crd, super::super::protocol::MAX_SERVER_LINE);
        let mut read = Vec::new();
        let mut next = async || {
            let line = next_line(&mut crd).await.unwrap().unwrap();
            serde_json::from_str::<ServerMsg>(&line).unwrap()
        };
        // Nothing held before: the first sample goes at once.
        ev_tx.send(sample("n1", 3)).await.unwrap();
        read.push(next().await);
        // Within the frame: held, the latest per probe instance kept, and sent before the
        // journaled event that follows (one the client already has is not sent).
        let journaled = |seq| Stamped {
            seq,
            t_ms: 1200,
            event: crate::engine::Event::OperatorLeft { id: 9 },
        };
        for e in [
            sample("n1", 4),
            sample("n1", 5),
            journaled(3),
            sample("n2", 1),
            journaled(5),
        ] {
            ev_tx.send(e).await.unwrap();
        }
        while read.len() < if frames { 3 } else { 4 } {
            read.push(next().await);
        }
        read
    }

    /// Through the real client (`pairing::client`): a row shown whose value changes once and
    /// then stays the same keeps arriving, a sample a frame, so the observer's row, sparkline
    /// and probe log end on the last value, as the session's own cockpit does.
    #[tokio::test(start_paused = true)]
    async fn an_observer_gets_a_value_that_stops_changing_every_frame_to_the_last() {
        let (server, client) = UnixStream::pair().unwrap();
        let (rd, mut wr) = server.into_split();
        let (ev_tx, ev_rx) = mpsc::channel(64);
        let (req_tx, _requests) = mpsc::channel(4);
        let session = SessionClient {
            operator_id: 2,
            operator: "bob".into(),
            events: ev_rx,
            commands: CommandSender::new(req_tx),
            viewport: None,
        };
        let welcome = ServerMsg::Welcome(Welcome {
            protocol: PROTOCOL,
            operator_id: 2,
            session: "s".into(),
        });
        send(&mut wr, &welcome).await.unwrap();
        let hello = crate::pairing::client::hello("bob", None, false, 0);
        let joined = tokio::spawn(crate::pairing::client::join_stream(
            client,
            std::path::Path::new("test.sock"),
            hello.clone(),
        ));
        let mut rd = lines(rd, MAX_CLIENT_LINE);
        let said = next_line(&mut rd).await.unwrap().unwrap();
        assert!(matches!(
            serde_json::from_str::<ClientMsg>(&said),
            Ok(ClientMsg::Hello(h)) if h.samples
        ));
        let mut observer = joined.await.unwrap().unwrap();
        let _bridge =
            tokio::spawn(
                async move { bridge(session, rd, wr, &hello, Duration::from_secs(5)).await },
            );
        for latency in [3, 7, 7, 7, 7] {
            let e = sample("n1", latency);
            ev_tx.send(e.clone()).await.unwrap();
            assert_eq!(observer.events.recv().await.unwrap(), e);
        }
        // And a detail that changes, then stays.
        for detail in ["503", "503", "503"] {
            let mut e = sample("n1", 9);
            if let crate::engine::Event::ProbeSample { detail: d, .. } = &mut e.event {
                *d = detail.into();
            }
            ev_tx.send(e.clone()).await.unwrap();
            assert_eq!(observer.events.recv().await.unwrap(), e);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn live_samples_go_once_a_frame_latest_only_and_before_the_next_journaled_event() {
        let read = lines_read(true).await;
        let mut x = super::super::samples::Expander::default();
        let mut events = Vec::new();
        for msg in read {
            match msg {
                ServerMsg::Samples(f) => events.push(x.expand(f)),
                ServerMsg::Event(e) => events.push(vec![e]),
                other => panic!("{other:?}"),
            }
        }
        let journaled = Stamped {
            seq: 5,
            t_ms: 1200,
            event: crate::engine::Event::OperatorLeft { id: 9 },
        };
        assert_eq!(
            events,
            vec![
                vec![sample("n1", 3)],
                vec![sample("n2", 1), sample("n1", 5)],
                vec![journaled]
            ]
        );

        // A client that did not ask for frames gets the same, as events.
        let read = lines_read(false).await;
        let events: Vec<_> = read
            .into_iter()
            .map(|m| match m {
                ServerMsg::Event(e) => e,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            events[..3],
            [sample("n1", 3), sample("n2", 1), sample("n1", 5)]
        );
        assert!(matches!(
            events[3].event,
            crate::engine::Event::OperatorLeft { .. }
        ));
    }

    #[test]
    fn the_label_is_the_client_s_else_its_operator_name() {
        assert_eq!(label_of(&hello("alice", None)), "alice");
        assert_eq!(
            label_of(&hello("alice", Some(" alice@laptop "))),
            "alice@laptop"
        );
        assert_eq!(label_of(&hello("alice", Some("  "))), "alice");
        assert_eq!(label_of(&hello(" ", Some(""))), "");
        // Not cleaned here: the engine refuses it with why (before, the escape was dropped
        // quietly and the rest shown).
        assert_eq!(
            label_of(&hello("x", Some("\u{1b}[2Jevil"))),
            "\u{1b}[2Jevil"
        );
    }
}
