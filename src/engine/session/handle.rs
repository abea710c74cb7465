//! The handle on a running session: attach operators (each gets a client that sees every
//! event from the first), send commands, snapshot, shut down.

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
        reply: oneshot::Sender<Result<Attached, Rejected>>,
    },
    SetTakeoverAfter(std::time::Duration),
    Detach {
        id: u64,
    },
    History {
        after: u64,
        limit: usize,
        reply: oneshot::Sender<(Vec<Stamped>, broadcast::Receiver<Stamped>)>,
    },
    Snapshot {
        reply: oneshot::Sender<SessionState>,
    },
    Shutdown,
}

/// What an attach gives the new operator: its id, the history, the live feed, and the switch
/// the engine pulls to close its feed if the owner removes it.
pub(super) struct Attached {
    pub id: u64,
    pub history: Vec<Stamped>,
    pub live: broadcast::Receiver<Stamped>,
    pub removed: oneshot::Receiver<()>,
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
        self.attach_inner(who, label, driver, false).await
    }

    /// As `attach_as`, for a client over a connection (the pairing server): the client sends
    /// signs of life, and the takeover policy treats a driver whose signs stop as hung.
    pub async fn attach_remote(
        &self,
        who: Identity,
        label: &str,
        driver: bool,
    ) -> Result<SessionClient, Rejected> {
        self.attach_inner(who, label, driver, true).await
    }

    async fn attach_inner(
        &self,
        who: Identity,
        label: &str,
        driver: bool,
        remote: bool,
    ) -> Result<SessionClient, Rejected> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Attach {
                who,
                name: label.to_string(),
                driver,
                remote,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        let attached = rx.await.map_err(|_| gone())??;
        Ok(self.client(attached, label))
    }

    /// How long a driver's client may show no sign of life before another operator may take
    /// control (with a reason). The session's owner may at any time.
    pub async fn set_takeover_after(&self, after: std::time::Duration) {
        let _ = self.tx.send(Msg::SetTakeoverAfter(after)).await;
    }

    fn client(&self, attached: Attached, name: &str) -> SessionClient {
        let Attached {
            id,
            history,
            mut live,
            mut removed,
        } = attached;
        let (ev_tx, ev_rx) = mpsc::channel(4096);
        let engine = self.tx.clone();
        tokio::spawn(async move {
            let mut last = 0;
            let full_page = history.len() >= super::HISTORY_PAGE;
            for e in history {
                last = e.seq;
                if ev_tx.send(e).await.is_err() {
                    return;
                }
            }
            if full_page {
                match catch_up(&engine, &ev_tx, last).await {
                    Some((l, fresh)) => (last, live) = (l, fresh),
                    None => return,
                }
            }
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
                    // Fell behind: catch up from the journal's copy, never drop silently.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        match catch_up(&engine, &ev_tx, last).await {
                            Some((l, fresh)) => (last, live) = (l, fresh),
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

    /// Events from `after` on (journaled ones), then live ones.
    pub async fn subscribe(
        &self,
        after: u64,
    ) -> Result<(Vec<Stamped>, broadcast::Receiver<Stamped>), Rejected> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::History {
                after,
                limit: usize::MAX,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
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

/// Send the journaled events after `last` a page at a time, until a page comes back short;
/// returns the new `last` and a live feed subscribed when that page was cut (so nothing falls
/// between them). None when the engine or the receiver is gone.
async fn catch_up(
    engine: &mpsc::Sender<Msg>,
    ev_tx: &mpsc::Sender<Stamped>,
    mut last: u64,
) -> Option<(u64, broadcast::Receiver<Stamped>)> {
    loop {
        let (reply, rx) = oneshot::channel();
        engine
            .send(Msg::History {
                after: last,
                limit: super::HISTORY_PAGE,
                reply,
            })
            .await
            .ok()?;
        let (page, live) = rx.await.ok()?;
        let short = page.len() < super::HISTORY_PAGE;
        for e in page {
            last = e.seq;
            ev_tx.send(e).await.ok()?;
        }
        if short {
            return Some((last, live));
        }
    }
}

fn gone() -> Rejected {
    Rejected("the session has ended".into())
}
