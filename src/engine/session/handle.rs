//! The handle on a running session: attach operators (each gets a client that sees every
//! event from the first, or, for a view in this process, the engine's folded state and the
//! events after it), send commands, snapshot, shut down.
//!
//! The engine keeps no history in memory: a client's feed reads what came before it from the
//! session's journal file (this process writes it; joiners never open it themselves), a line
//! at a time into its bounded queue, then follows the live events from where that read ended.

use std::path::{Path, PathBuf};

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::*;
use crate::engine::client::{CommandSender, Request, SessionClient};
use crate::engine::event::Stamped;
use crate::engine::identity::Identity;
use crate::engine::state::SessionState;
use crate::engine::{Command, Rejected};

pub(super) enum Msg {
    Command {
        from: u64,
        command: Command,
        reply: oneshot::Sender<Result<(), Rejected>>,
    },
    Attach {
        who: Identity,
        name: String,
        driver: bool,
        /// A client over a connection, whose signs of life (`Command::Alive`) tell whether it
        /// hangs; an in-process view lives and dies with the engine.
        remote: bool,
        /// Hand the view the session as the engine folded it, instead of its history.
        folded: bool,
        reply: oneshot::Sender<Result<Attached, Rejected>>,
    },
    SetTakeoverAfter(std::time::Duration),
    Detach {
        id: u64,
    },
    /// Where the journal ends now, with a live feed subscribed at that point, and where
    /// to read from for the events after seq `after`.
    Position {
        after: u64,
        reply: oneshot::Sender<Position>,
    },
    Snapshot {
        reply: oneshot::Sender<SessionState>,
    },
    /// The session as folded now, with a live feed subscribed at that point, and where in the
    /// journal this engine's own events begin (for the headless runner).
    Folded {
        reply: oneshot::Sender<Folded>,
    },
    Shutdown,
}

/// What an attach gives the new operator: its id, how far the journal held what came before
/// it, the live feed from there, and the switch the engine pulls to close its feed if the
/// owner removes it.
pub(super) struct Attached {
    pub id: u64,
    /// The session as the engine had folded it when `live` was subscribed (an attach that
    /// asked for it); the feed then starts after it, and `upto` is not read.
    pub state: Option<Box<SessionState>>,
    pub upto: u64,
    pub live: broadcast::Receiver<Stamped>,
    pub removed: oneshot::Receiver<()>,
}

/// The journal's length in bytes and its last seq at the moment `live` was subscribed:
/// everything journaled before that is in the file up to `upto`, everything after comes live.
pub(super) struct Position {
    /// A line start from which the file holds every event after the `after` asked about
    /// (0 when no checkpoint is that old).
    pub from: u64,
    pub upto: u64,
    pub last_seq: u64,
    pub live: broadcast::Receiver<Stamped>,
}

/// The session as the engine had folded it, at the moment `live` was subscribed.
pub(super) struct Folded {
    pub state: Box<SessionState>,
    /// Where this engine's first event starts in the journal: what a resume adds to the
    /// history it took over (the whole session, after the header, for one it started).
    pub began: u64,
    /// The journal's length then: `began..upto` holds this engine's events folded in `state`.
    pub upto: u64,
    pub live: broadcast::Receiver<Stamped>,
}

/// What [`EngineHandle::follow_folded`] gives: the session as folded now, the events this
/// engine journaled so far (what a resume added to the history it took over), and the live
/// feed from there.
pub struct FollowFrom {
    pub state: SessionState,
    pub own: Vec<Stamped>,
    pub live: broadcast::Receiver<Stamped>,
}

/// The handle the rest of the program holds on a running session.
#[derive(Clone)]
pub struct EngineHandle {
    pub(super) tx: mpsc::Sender<Msg>,
    pub(super) journal: PathBuf,
}

/// Owns the engine task; awaiting it yields the final state.
pub struct EngineTask {
    pub handle: EngineHandle,
    pub join: JoinHandle<Result<SessionState, EngineError>>,
}

impl EngineHandle {
    pub fn journal_path(&self) -> &Path {
        &self.journal
    }

    /// Attach an operator of this process (an in-process cockpit): the user is whoever runs
    /// flightdeck; `name` is only how they show.
    pub async fn attach(&self, name: &str, driver: bool) -> Result<SessionClient, Rejected> {
        self.attach_as(Identity::current(), name, driver).await
    }

    /// Attach an operator: returns a client that sees every event from the first and sends
    /// commands as that operator. `who` must come from the kernel (the pairing server passes
    /// the connection's peer uid); `label` is only a display name. The first to ask for it (or
    /// any, if nobody drives) drives.
    pub async fn attach_as(
        &self,
        who: Identity,
        label: &str,
        driver: bool,
    ) -> Result<SessionClient, Rejected> {
        self.attach_inner(who, label, driver, false, false)
            .await
            .map(|(_, c)| c)
    }

    /// Attach an operator of this process whose view starts from the session as the engine
    /// has folded it: the state, and a client whose events are those after it. The history is
    /// not read or folded again for the view (a resumed session's can be long): one fold, the
    /// engine's, for every in-process view.
    pub async fn attach_folded(
        &self,
        name: &str,
        driver: bool,
    ) -> Result<(SessionState, SessionClient), Rejected> {
        let (state, client) = self
            .attach_inner(Identity::current(), name, driver, false, true)
            .await?;
        let state = state.ok_or_else(|| Rejected("the engine sent no state".into()))?;
        Ok((*state, client))
    }

    /// As `attach_as`, for a client over a connection (the pairing server): the client sends
    /// signs of life, and the takeover policy treats a driver whose signs stop as hung.
    pub async fn attach_remote(
        &self,
        who: Identity,
        label: &str,
        driver: bool,
    ) -> Result<SessionClient, Rejected> {
        self.attach_inner(who, label, driver, true, false)
            .await
            .map(|(_, c)| c)
    }

    async fn attach_inner(
        &self,
        who: Identity,
        label: &str,
        driver: bool,
        remote: bool,
        folded: bool,
    ) -> Result<(Option<Box<SessionState>>, SessionClient), Rejected> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Attach {
                who,
                name: label.to_string(),
                driver,
                remote,
                folded,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        let mut attached = rx.await.map_err(|_| gone())??;
        let state = attached.state.take();
        let folded_to = state.as_ref().map(|s| s.last_seq);
        Ok((state, self.client(attached, label, folded_to)))
    }

    /// How long a driver's client may show no sign of life before another operator may take
    /// control (with a reason). The session's owner may at any time.
    pub async fn set_takeover_after(&self, after: std::time::Duration) {
        let _ = self.tx.send(Msg::SetTakeoverAfter(after)).await;
    }

    /// The client's feed: after seq `folded_to` when the view has the state folded that far,
    /// else from the first event.
    fn client(&self, attached: Attached, name: &str, folded_to: Option<u64>) -> SessionClient {
        let Attached {
            id,
            upto,
            state: _,
            mut live,
            mut removed,
        } = attached;
        let (ev_tx, ev_rx) = mpsc::channel(4096);
        let engine = self.tx.clone();
        let journal = self.journal.clone();
        tokio::spawn(async move {
            // What came before: folded already (the view has it), else from the journal;
            // then live from where that ended.
            let mut last = match folded_to {
                Some(seq) => seq,
                None => match from_journal(&journal, 0, upto, 0, &ev_tx).await {
                    Some(l) => l,
                    None => return,
                },
            };
            let mut read_to = upto;
            loop {
                let next = tokio::select! {
                    // Removed by the owner (or the engine is gone): the feed closes.
                    _ = &mut removed => return,
                    next = live.recv() => next,
                };
                match next {
                    Ok(e) => {
                        if e.seq <= last && !e.event.is_live_only() {
                            continue;
                        }
                        if !e.event.is_live_only() {
                            last = e.seq;
                        }
                        if ev_tx.send(e).await.is_err() {
                            return;
                        }
                    }
                    // Fell behind: catch up from the journal, never drop silently.
                    // It seeks to a checkpoint near the first event it lacks: reading
                    // from where it attached would decode the whole session again.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let Some(at) = position(&engine, last).await else {
                            return;
                        };
                        live = at.live;
                        let from = at.from.max(read_to);
                        match from_journal(&journal, from, at.upto, last, &ev_tx).await {
                            Some(l) => (last, read_to) = (l, at.upto),
                            None => return,
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        let (cmd_tx, mut cmd_rx) = mpsc::channel::<Request>(64);
        let engine = self.tx.clone();
        tokio::spawn(async move {
            while let Some(req) = cmd_rx.recv().await {
                let msg = Msg::Command {
                    from: id,
                    command: req.command,
                    reply: req.reply,
                };
                if engine.send(msg).await.is_err() {
                    return;
                }
            }
            // Every sender is gone: the operator left.
            let _ = engine.send(Msg::Detach { id }).await;
        });
        SessionClient {
            operator_id: id,
            operator: name.to_string(),
            events: ev_rx,
            commands: CommandSender::new(cmd_tx),
            viewport: None,
        }
    }

    /// A command from flightdeck itself (headless runner, tests).
    pub async fn command(&self, command: Command) -> Result<(), Rejected> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Command {
                from: SYSTEM,
                command,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// The journaled events after `after` (read from the journal), then live ones.
    pub async fn subscribe(
        &self,
        after: u64,
    ) -> Result<(Vec<Stamped>, broadcast::Receiver<Stamped>), Rejected> {
        let at = position(&self.tx, after).await.ok_or_else(gone)?;
        if after >= at.last_seq {
            return Ok((Vec::new(), at.live));
        }
        let path = self.journal.clone();
        let events = tokio::task::spawn_blocking(move || {
            let mut events = Vec::new();
            crate::journal::read_range(&path, at.from, at.upto, |e| {
                if e.seq > after {
                    events.push(e);
                }
                true
            })
            .map(|()| events)
        })
        .await
        .map_err(|e| Rejected(format!("reading the journal failed: {e}")))?
        .map_err(|e| Rejected(format!("reading the journal failed: {e}")))?;
        Ok((events, at.live))
    }

    /// Follow the session from where it stands: its state as the engine has folded it, the
    /// events this engine journaled so far (read back from the journal: a resume's own
    /// `resumed` and what followed it, or a new session's whole history), and the live feed
    /// after them. The history a resume took over is not read again.
    pub async fn follow_folded(&self) -> Result<FollowFrom, Rejected> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Folded { reply })
            .await
            .map_err(|_| gone())?;
        let at = rx.await.map_err(|_| gone())?;
        let path = self.journal.clone();
        let (began, upto) = (at.began, at.upto);
        let own = tokio::task::spawn_blocking(move || {
            let mut own = Vec::new();
            crate::journal::read_range(&path, began, upto, |e| {
                own.push(e);
                true
            })
            .map(|()| own)
        })
        .await
        .map_err(|e| Rejected(format!("reading the journal failed: {e}")))?
        .map_err(|e| Rejected(format!("reading the journal failed: {e}")))?;
        Ok(FollowFrom {
            state: *at.state,
            own,
            live: at.live,
        })
    }

    pub async fn snapshot(&self) -> Result<SessionState, Rejected> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Snapshot { reply })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// Stop the engine. A running action is killed with it (resume shows it interrupted).
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown).await;
    }
}

/// Where the journal ends now, and from where it holds the events after seq `after`.
async fn position(engine: &mpsc::Sender<Msg>, after: u64) -> Option<Position> {
    let (reply, rx) = oneshot::channel();
    engine.send(Msg::Position { after, reply }).await.ok()?;
    rx.await.ok()
}

/// Send the journaled events after seq `after` that lie between bytes `from` and `to` of the
/// journal to `ev_tx`, a line at a time (its bound holds the reader back); returns the last
/// seq sent (`after` if none). None when the receiver is gone or the journal cannot be read
/// (the feed then ends, as when the session does: the cockpit says so).
async fn from_journal(
    journal: &Path,
    from: u64,
    to: u64,
    after: u64,
    ev_tx: &mpsc::Sender<Stamped>,
) -> Option<u64> {
    let path = journal.to_path_buf();
    let tx = ev_tx.clone();
    let read = tokio::task::spawn_blocking(move || {
        let mut last = after;
        let mut open = true;
        let r = crate::journal::read_range(&path, from, to, |e| {
            if e.seq <= last {
                return true;
            }
            last = e.seq;
            open = tx.blocking_send(e).is_ok();
            open
        });
        (r, open, last)
    })
    .await;
    match read {
        Ok((Ok(()), true, last)) => Some(last),
        Ok((Err(e), ..)) => {
            tracing::warn!(error = %e, "reading the journal for an operator's feed failed");
            None
        }
        _ => None,
    }
}

fn gone() -> Rejected {
    Rejected("the session has ended".into())
}
