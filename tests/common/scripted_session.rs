//! The session side of a cockpit under test or bench: the client its run loop reads, fed from a
//! script (`flightdeck::tui::demo::Script`) instead of an engine, with the commands it sends
//! landing in a channel the test reads. Included by path (`tests/tui_run.rs`, the benches), so
//! no bench scaffolding ships in the binary.
#![allow(dead_code)]

use flightdeck::engine::client::{CommandSender, Request, SessionClient};
use flightdeck::engine::Stamped;
use flightdeck::tui::demo::Script;
use tokio::sync::mpsc;

pub struct ScriptedSession {
    /// What the cockpit receives as the session's events.
    pub events: mpsc::Sender<Stamped>,
    /// The cockpit's commands, each with its reply.
    pub requests: mpsc::Receiver<Request>,
    /// How many of the script's events `feed` has sent.
    sent: usize,
}

/// A session for operator 1, `alice`, with room for `capacity` events in flight; and the
/// client to hand the run loop.
pub fn scripted_session(capacity: usize) -> (ScriptedSession, SessionClient) {
    let (events, ev_rx) = mpsc::channel(capacity);
    let (req_tx, requests) = mpsc::channel(16);
    let client = SessionClient {
        operator_id: 1,
        operator: "alice".into(),
        events: ev_rx,
        commands: CommandSender::new(req_tx),
        viewport: None,
    };
    let session = ScriptedSession {
        events,
        requests,
        sent: 0,
    };
    (session, client)
}

impl ScriptedSession {
    /// Send the events of `script` not sent yet, without waiting (a paused-time test cannot
    /// wait on the loop it polls by hand): the channel must have room for them.
    pub fn feed(&mut self, script: &Script) {
        for e in &script.events()[self.sent..] {
            self.events
                .try_send(e.clone())
                .expect("room in the event channel");
        }
        self.sent = script.events().len();
    }
}
