//! Hand-made plans for engine-level tests: tiny real commands, one step each, and waiting on
//! the engine that runs them.

use std::time::Duration;

use flightdeck::engine::session::EngineTask;
use flightdeck::engine::SessionState;
// The builders live in the library (test-support only) so its unit tests share them; each
// test binary uses some of them.
#[allow(unused_imports)]
pub use flightdeck::plan::test_plans::{empty_target, plan, run, sh, step, step_with};

/// Poll the engine's state until `f` holds, with a deadline that names what was awaited.
pub async fn until(
    task: &EngineTask,
    what: &str,
    f: impl Fn(&SessionState) -> bool,
) -> SessionState {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = task.handle.snapshot().await.expect("engine alive");
        if f(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; steps: {:?}, prompt {:?}, mode {:?}",
            s.steps.iter().map(|x| x.status).collect::<Vec<_>>(),
            s.prompt,
            s.mode
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Wait for a prompt to open and confirm it, as the driver would.
pub async fn confirm_prompt(task: &EngineTask) {
    let s = until(task, "a prompt", |s| s.prompt.is_some()).await;
    let id = s.prompt.map(|p| p.id).unwrap_or_default();
    task.handle
        .command(flightdeck::engine::Command::Confirm {
            prompt: id,
            phrase: None,
        })
        .await
        .expect("confirm accepted");
}

/// `resume` the journal at `path` once its writer's lock is free. The lock goes with the engine
/// that held it, but a process another test of the same binary forks at that moment holds a
/// copy of the journal's descriptor, and so its lock (flock), until it execs: under load that
/// takes a while. Refused for any other reason, or still locked after the deadline: panics.
pub async fn resume_once_free(path: &std::path::Path) -> EngineTask {
    use flightdeck::engine::session::{self, EngineError};
    use flightdeck::journal::JournalError;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match session::resume(path, None, "tester", false) {
            Ok(task) => return task,
            Err(EngineError::Journal(JournalError::Locked { .. }))
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("resume: {e}"),
        }
    }
}
