//! A session served on its Unix socket and one operator joined over it, for tests that drive the
//! engine as a remote client does — the engine, not the cockpit, has to say no.

use std::path::Path;
use std::time::Duration;

use flightdeck::engine::client::SessionClient;
use flightdeck::engine::session::EngineTask;
use flightdeck::engine::{Command, SessionState};
use flightdeck::pairing::client::{connect_socket, hello};
use flightdeck::pairing::runtime_dir;
use flightdeck::pairing::server::{serve, ServeOptions, ServerGuard};
use flightdeck::procedure::model::OptionalChoice;
use tokio::time::Instant;

/// How long a test may follow a session before it counts as stuck.
const DEADLINE: Duration = Duration::from_secs(60);

pub struct OverSocket {
    pub task: EngineTask,
    server: ServerGuard,
    pub client: SessionClient,
    /// The client's own fold of the events it received.
    pub state: SessionState,
    deadline: Instant,
}

impl OverSocket {
    /// Serve `task` as session `name` (runtime dir under `dir`) and join it as `operator`, the
    /// driver.
    pub async fn join(task: EngineTask, dir: &Path, name: &str, operator: &str) -> OverSocket {
        let rt = dir.join("rt");
        let server = serve(
            task.handle.clone(),
            name,
            ServeOptions {
                runtime_dir: Some(rt.clone()),
                ..Default::default()
            },
        )
        .await
        .expect("the session is served");
        let client = connect_socket(
            &runtime_dir::socket_path(&rt, name),
            hello(operator, None, true, 0),
        )
        .await
        .expect("the client joins over the socket");
        OverSocket {
            task,
            server,
            client,
            state: SessionState::empty(),
            deadline: Instant::now() + DEADLINE,
        }
    }

    /// Follow the socket's events until `done` holds.
    pub async fn until(&mut self, done: impl Fn(&SessionState) -> bool) {
        while !done(&self.state) {
            let e = tokio::time::timeout_at(self.deadline, self.client.events.recv())
                .await
                .unwrap_or_else(|_| panic!("the session went on: {:?}", self.state.prompt))
                .expect("the stream stayed open");
            self.state.apply(&e);
        }
    }

    /// The engine's answer to `command`, its refusal as text.
    pub async fn send(&self, command: Command) -> Result<(), String> {
        self.client.commands.send(command).await.map_err(|r| r.0)
    }

    /// Wait for the prompt of the step keyed `key` and say yes to it.
    pub async fn confirm(&mut self, key: &str) -> Result<(), String> {
        let step = self.step(key).await;
        self.until(|s| s.prompt.is_some_and(|p| p.step == step))
            .await;
        let prompt = self.state.prompt.expect("the prompt is open").id;
        self.send(Command::Confirm {
            prompt,
            phrase: None,
        })
        .await
    }

    /// Say yes to every prompt (an optional step: run, with a reason) until the prompt of the
    /// step keyed `key` opens.
    pub async fn confirm_until(&mut self, key: &str) {
        let step = self.step(key).await;
        loop {
            self.until(|s| s.prompt.is_some()).await;
            let p = self.state.prompt.expect("a prompt is open");
            if p.step == step {
                return;
            }
            let answer = if self.state.plan.steps[p.step].optional.is_some() {
                Command::Choose {
                    prompt: p.id,
                    choice: OptionalChoice::Run,
                    reason: Some("the test runs it".into()),
                }
            } else {
                Command::Confirm {
                    prompt: p.id,
                    phrase: None,
                }
            };
            let key = self.state.plan.steps[p.step].key.clone();
            match self.send(answer).await {
                // A step that needs no confirm answers its own prompt.
                Err(e) if e == "that prompt is no longer open" => {}
                r => r.unwrap_or_else(|e| panic!("{key}: {e}")),
            }
            // The answered prompt closes before the next one opens.
            self.until(|s| s.prompt.is_none_or(|q| q.id != p.id)).await;
        }
    }

    /// The plan index of the step keyed `key` (once the session's start has arrived).
    pub async fn step(&mut self, key: &str) -> usize {
        self.until(|s| !s.plan.steps.is_empty()).await;
        self.state
            .plan
            .steps
            .iter()
            .position(|s| s.key == key)
            .unwrap_or_else(|| panic!("no step {key}"))
    }

    /// Leave, stop the session and wait for its engine.
    pub async fn end(self) {
        drop(self.client);
        drop(self.server);
        self.task.handle.shutdown().await;
        let _ = self.task.join.await;
    }
}
