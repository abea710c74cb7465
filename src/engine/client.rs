//! What a view (cockpit, headless printer, joined operator) holds to follow a session and drive
//! it: an ordered event stream (history first, then live) and a command sender whose every
//! command gets an answer. The same shape serves an in-process engine and a socket connection.

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use super::{Command, Rejected, Stamped};

/// One command on its way to the engine, with the channel its answer comes back on.
#[derive(Debug)]
pub struct Request {
    pub command: Command,
    pub reply: oneshot::Sender<Result<(), Rejected>>,
}

/// Sends commands as one operator.
#[derive(Debug, Clone)]
pub struct CommandSender {
    tx: mpsc::Sender<Request>,
}

impl CommandSender {
    pub fn new(tx: mpsc::Sender<Request>) -> Self {
        CommandSender { tx }
    }

    /// Send a command and wait for the engine's answer.
    pub async fn send(&self, command: Command) -> Result<(), Rejected> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request { command, reply })
            .await
            .map_err(|_| Rejected("the session is gone".into()))?;
        answer
            .await
            .map_err(|_| Rejected("the session ended before answering".into()))?
    }

    /// Send without waiting; the answer arrives on the returned receiver. For UIs that must
    /// not block their loop.
    pub fn send_nowait(
        &self,
        command: Command,
    ) -> Result<oneshot::Receiver<Result<(), Rejected>>, Rejected> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .try_send(Request { command, reply })
            .map_err(|_| Rejected("the session is busy or gone".into()))?;
        Ok(answer)
    }
}

/// What a view shows of the live samples: the node rows on its screen. A session served over
/// a socket then sends the live samples of those nodes only (and of global probes), so what an
/// operator's connection carries depends on their screen, not on the size of the cluster;
/// every journaled event still reaches every view, except the once-a-minute probe summaries
/// (`ProbeSummary`), which a cockpit folds into nothing (the journal and the report keep them
/// all; a client that records the stream must not send a viewport). Not a command: it changes
/// nothing in the session and is not journaled (`pairing::protocol` bounds it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Viewport {
    /// The nodes whose rows are on screen, by name.
    pub nodes: Vec<String>,
}

/// A view's connection to a session.
#[derive(Debug)]
pub struct SessionClient {
    /// This operator's id in the session (see `Event::OperatorJoined`).
    pub operator_id: u64,
    pub operator: String,
    /// Every event from the first, in order, then live ones as they happen (after the state
    /// it came with, for a client from `EngineHandle::attach_folded`). Closed when the
    /// session ends or the connection drops.
    pub events: mpsc::Receiver<Stamped>,
    pub commands: CommandSender,
    /// Where the view says what it shows (a socket connection); None in process, where
    /// samples cost no bytes and every view gets them all.
    pub viewport: Option<watch::Sender<Option<Viewport>>>,
}
