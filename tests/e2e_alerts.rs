//! The bell, in a real terminal (tmux): the cockpit rings on a new prompt, a failure and the
//! end of the session; `--alerts title` keeps the title and drops the bell; a replay neither
//! rings nor sets the title. tmux records a bell as the window's `window_bell_flag`.
//! (The title through `pane_title`: `e2e_cockpit::the_terminal_title_says_what_waits_for_the_operator`.)

#[path = "common/tmux.rs"]
mod tmux;

use std::time::Duration;

use tmux::{cmd, Tmux};

const STEP: Duration = Duration::from_secs(30);
const W: &str = "cockpit";

/// A prompt (step 1), then a step that fails without asking (step 2).
const PROMPT_THEN_FAILURE: &str = r#"
name = "alerts"
product = "generic"
description = "A prompt, a failure, the end."
from = ">= 1.0"
to = "1.1.0"

[[steps]]
id = "hello"
title = "Say hello"
action = { kind = "run", argv = ["echo", "hello"] }

[[steps]]
id = "fail"
title = "Fail on purpose"
confirm = "none"
action = { kind = "run", argv = ["false"] }
"#;

fn spawn_cockpit(t: &mut Tmux, alerts: &str) {
    let procedure = t.path("alerts.toml");
    std::fs::write(&procedure, PROMPT_THEN_FAILURE).unwrap();
    let journal = t.path(&format!("alerts-{alerts}.jsonl"));
    t.spawn(
        W,
        &cmd(&format!(
            "run {} --lab --foreground --alerts {alerts} --journal {}",
            procedure.display(),
            journal.display()
        )),
    );
}

#[test]
fn the_bell_rings_on_a_prompt_a_failure_and_the_end() {
    let Some(mut t) = Tmux::new() else { return };
    spawn_cockpit(&mut t, "bell,title");

    // A prompt waits for the driver: one bell.
    t.wait_prompt(W, "Run step 1: Say hello? [y/N]", STEP);
    t.wait_bell(W, STEP);
    t.reset_bell(W);

    // Step 2 fails: another.
    t.send(W, "y");
    t.wait_for(W, "Step 2 failed: Fail on purpose", STEP);
    t.wait_bell(W, STEP);
    t.wait_title(W, "FAILED step 2", STEP);
    t.reset_bell(W);

    // Marked done, the session finishes: a third.
    t.wait_prompt(W, "Step 2 failed: Fail on purpose", STEP);
    t.send(W, "d");
    t.wait_for(W, "FINISHED: completed", STEP);
    t.wait_bell(W, STEP);
    t.wait_title(W, "flightdeck · done", STEP);

    t.send(W, "q");
    t.wait_for(W, "[exited", STEP);
}

#[test]
fn alerts_title_only_sets_the_title_without_a_bell() {
    let Some(mut t) = Tmux::new() else { return };
    spawn_cockpit(&mut t, "title");
    t.wait_prompt(W, "Run step 1: Say hello? [y/N]", STEP);
    t.wait_title(W, "step 1/2 · waiting for you", STEP);
    t.send(W, "y");
    // Two alerts later (the prompt's, the failure's), each written as it came: a bell with
    // either would have been seen by now.
    t.wait_title(W, "FAILED step 2", STEP);
    assert!(!t.bell_flag(W), "--alerts title: no bell");
    t.send(W, "q");
    t.wait_for(W, "[exited", STEP);
}

/// A replay shows prompts, a failure or the end as they were: none of it is news to ring for,
/// nor a title to set.
#[test]
fn a_replay_neither_rings_nor_sets_the_title() {
    let Some(mut t) = Tmux::new() else { return };
    t.spawn(
        W,
        &cmd("replay tests/fixtures/lab-generic-rolling.jsonl --speed 64"),
    );
    // Played to its end, past every prompt of the journal and its finish.
    t.wait_until(W, "the replay's end", STEP, |s| {
        s.contains("FINISHED: completed") && s.contains("■ end")
    });
    // A frame drawn after that one: any alert from it would have been written before.
    t.send(W, "?");
    t.wait_for(W, "? or Esc closes", STEP);
    assert!(!t.bell_flag(W), "a replay rings no bell");
    let title = t.pane_title(W);
    assert!(!title.contains("flightdeck"), "{title}");
    t.send(W, "Escape");
    t.wait_gone(W, "? or Esc closes", STEP);
    t.send(W, "q");
    t.wait_for(W, "[exited", STEP);
}
