//! The real binary in a real terminal (tmux): `flightdeck run --lab --foreground` driven by
//! keys through the first node of a rolling upgrade, with help, undo, quit and resizing.

#[path = "common/tmux.rs"]
mod tmux;

use std::time::Duration;

use flightdeck::engine::event::Phase;
use flightdeck::engine::state::StepStatus;
use flightdeck::engine::Event;
use tmux::{cmd, Tmux};

const STEP: Duration = Duration::from_secs(30);
const W: &str = "cockpit";

/// A line of the screen that shows both parts (a row of a panel).
fn row_has(screen: &str, a: &str, b: &str) -> bool {
    screen.lines().any(|l| l.contains(a) && l.contains(b))
}

/// The load balancer panel's row for `node` shows `state` ("node2  drain UP ...").
fn lb_shows(screen: &str, node: &str, state: &str) -> bool {
    screen
        .lines()
        .any(|l| l.contains(&format!("{node}  {state} ")))
}

#[test]
fn an_operator_drives_the_first_node_in_the_cockpit() {
    let Some(mut t) = Tmux::new() else { return };
    let journal = t.path("cockpit.jsonl");
    // Realistic lab timing: the health gate after a start takes seconds, long enough to
    // press q while it runs. Everything else in these steps is instant either way.
    t.spawn_with(
        W,
        &cmd(&format!(
            "run procedures/generic-rolling.toml --lab --foreground --journal {}",
            journal.display()
        )),
        &[("FLIGHTDECK_LAB_TIMING", "realistic")],
    );

    // The preflight gate needs no confirm; the first backup asks.
    // The footer says what keys do at this prompt: Esc holds the step; n still writes a note.
    let s = t.wait_footer(
        W,
        "Run step 2: Back up node1? [y/N]",
        &["y run  Esc hold", "n note"],
        STEP,
    );
    assert!(s.contains("generic-rolling"), "{s}");
    assert!(
        row_has(&s, "1 Every node healthy before we start", "✓"),
        "{s}"
    );

    // Help over the prompt, then back.
    t.send(W, "?");
    let s = t.wait_footer(W, "? or Esc closes", &["? Esc close"], STEP);
    assert!(s.contains("undo latest completed"), "{s}");
    let footer = s.lines().last().unwrap_or_default();
    assert!(!footer.contains("y run"), "{footer}");
    t.send(W, "Escape");
    // One capture for both: the prompt's line can be redrawn after the help's is cleared.
    t.wait_until(W, "the help gone and the prompt back", STEP, |s| {
        !s.contains("? or Esc closes") && s.contains("Run step 2:")
    });

    for n in 2..=4 {
        t.answer(W, &format!("Run step {n}: Back up node"), "y", STEP);
    }
    // Followers first: node2 leaves the load balancer.
    let s = t.answer(
        W,
        "Run step 5: Take node2 out of the load balancer?",
        "y",
        STEP,
    );
    assert!(lb_shows(&s, "node2", "ready"), "{s}");
    // The balancer panel (sampled from the lab) and the step's ✓ (the engine's verdict) are
    // two publications in no set order: wait for both.
    let s = t.wait_until(W, "node2 drained and step 5 done", STEP, |s| {
        lb_shows(s, "node2", "drain") && row_has(s, "5 Take node2 out of", "✓")
    });
    assert!(
        lb_shows(&s, "node1", "ready") && lb_shows(&s, "node3", "ready"),
        "{s}"
    );

    t.answer(W, "Run step 6: Stop node2?", "y", STEP);
    t.answer(W, "Run step 7: Install 1.1.0 on node2?", "y", STEP);
    t.answer(W, "Run step 8: Start node2 on 1.1.0", "y", STEP);

    // The health gate runs (no confirm): q asks before leaving, n stays.
    t.wait_until(W, "step 9 running", STEP, |s| {
        row_has(s, "9 Wait until node2 is", "running")
    });
    t.send(W, "q");
    t.wait_until(W, "the leave question whole", STEP, |s| {
        s.contains("A step is running. Leave the cockpit? [y/N]")
            && s.contains("Leaving never aborts")
            && s.lines()
                .last()
                .is_some_and(|f| f.contains("y leave  n Esc stay"))
    });
    t.send(W, "n");
    t.wait_gone(W, "Leave the cockpit?", STEP);

    // node2 comes back.
    t.wait_until(W, "step 9 done and step 10 asking", STEP, |s| {
        s.contains("Run step 10: Put node2 back into the load balancer?")
            && row_has(s, "9 Wait until node2 is", "✓")
    });
    t.answer(
        W,
        "Run step 10: Put node2 back into the load balancer?",
        "y",
        STEP,
    );
    t.wait_until(W, "node2 ready again and step 10 done", STEP, |s| {
        lb_shows(s, "node2", "ready") && row_has(s, "10 Put node2 back into", "✓")
    });

    // Undo the latest step (at the next prompt, after its guard): it asks, then drains again.
    t.answer(
        W,
        "Run step 11: Take node3 out of the load balancer?",
        "u",
        STEP,
    );
    // The undo's dialog says what it will do, a line below its title: wait for both.
    t.wait_until(W, "the undo's dialog whole", STEP, |s| {
        s.contains("Undo step 10: Put node2 back into the load balancer?")
            && s.contains("load balancer: node2 → drain")
    });
    t.answer(
        W,
        "Undo step 10: Put node2 back into the load balancer?",
        "y",
        STEP,
    );
    t.wait_until(W, "node2 drained by the undo", STEP, |s| {
        lb_shows(s, "node2", "drain")
    });
    // After an undo the step is offered again, and it alone awaits: the step whose prompt
    // the undo replaced is pending again.
    let s = t.wait_until(W, "step 10 offered again, step 11 pending", STEP, |s| {
        s.contains("Run step 10: Put node2 back into the load balancer?")
            && s.contains("┃? 10 Put node2 back")
            && s.contains("┃· 11 Take node3 out")
            && s.contains("status awaiting confirm")
    });
    // It has not run again yet: no run time beside its status.
    assert!(!s.contains("status awaiting confirm in"), "{s}");

    // Too small, then back. A y typed at the hidden prompt (after its guard) answers
    // nothing: the operator could not see what it would confirm.
    t.wait_prompt(W, "Run step 10: Put node2 back", STEP);
    t.resize(W, 60, 20);
    t.wait_for(W, "terminal too small", STEP);
    t.send(W, "y");
    let s = t.wait_for(W, "terminal too small", STEP);
    assert!(s.contains("need 80x24, have 60x20"), "{s}");
    t.resize(W, tmux::WIDTH, tmux::HEIGHT);
    let s = t.wait_until(W, "the cockpit back at full size", STEP, |s| {
        s.contains("Run step 10: Put node2 back")
            && s.contains("Procedure")
            && s.contains("┃? 10 Put node2 back")
    });
    assert!(!s.contains("terminal too small"), "{s}");

    // On to node3, whose health gate runs for seconds: q asks, y leaves.
    t.answer(
        W,
        "Run step 10: Put node2 back into the load balancer?",
        "y",
        STEP,
    );
    t.wait_until(W, "node2 ready", STEP, |s| lb_shows(s, "node2", "ready"));
    t.answer(
        W,
        "Run step 11: Take node3 out of the load balancer?",
        "y",
        STEP,
    );
    t.answer(W, "Run step 12: Stop node3?", "y", STEP);
    t.answer(W, "Run step 13: Install 1.1.0 on node3?", "y", STEP);
    t.answer(W, "Run step 14: Start node3 on 1.1.0", "y", STEP);
    t.wait_until(W, "step 15 running", STEP, |s| {
        row_has(s, "15 Wait until node3 is", "running")
    });
    t.send(W, "q");
    // The question says what leaving does to this (foreground) run, below its title.
    t.wait_until(W, "the leave question with what leaving does", STEP, |s| {
        s.contains("A step is running. Leave the cockpit? [y/N]") && s.contains("flightdeck resume")
    });
    t.send(W, "y");

    // The terminal is the shell's again, and the journal says where the session stopped.
    let s = t.wait_for(W, "[exited", STEP);
    assert!(s.contains("flightdeck resume"), "{s}");
    assert!(
        !s.contains("Procedure") && !s.contains("Load balancer") && !s.contains('┃'),
        "{s}"
    );
    let j = flightdeck::journal::read(&journal).unwrap();
    assert!(j.torn_tail.is_none());
    let st = flightdeck::engine::SessionState::fold(&j.events);
    let statuses: Vec<_> = st.steps.iter().map(|s| s.status).collect();
    assert!(
        statuses[..14].iter().all(|s| *s == StepStatus::Succeeded),
        "{statuses:?}"
    );
    // Step 10 ran, was undone (once), ran again.
    let runs_of_10: Vec<Phase> = j
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Event::ActionStarted { step: 9, phase, .. } => Some(*phase),
            _ => None,
        })
        .collect();
    assert_eq!(runs_of_10, [Phase::Do, Phase::Undo, Phase::Do]);
    assert_eq!(statuses[14], StepStatus::Running, "{statuses:?}");
    assert!(
        statuses[15..].iter().all(|s| *s == StepStatus::Pending),
        "{statuses:?}"
    );
}

/// One step behind a confirmation phrase with a `q` in it (and words like "quorum" or
/// "sequence" are common in runbooks): typing it must not leave the cockpit.
const PHRASE_PROCEDURE: &str = r#"
name = "quiesce"
product = "generic"
description = "One step behind a confirmation phrase."
from = ">= 1.0"
to = "1.1.0"

[[steps]]
id = "quiesce"
title = "Quiesce the queue"
confirm = "phrase"
phrase = "quiesce the queue?"
action = { kind = "run", argv = ["echo", "quiesced"] }
"#;

#[test]
fn a_confirmation_phrase_is_typed_whatever_its_letters() {
    let Some(mut t) = Tmux::new() else { return };
    let procedure = t.path("quiesce.toml");
    std::fs::write(&procedure, PHRASE_PROCEDURE).unwrap();
    let journal = t.path("quiesce.jsonl");
    t.spawn(
        W,
        &cmd(&format!(
            "run {} --lab --foreground --journal {}",
            procedure.display(),
            journal.display()
        )),
    );
    t.answer(
        W,
        "Type `quiesce the queue?` to run",
        "quiesce the queue?",
        STEP,
    );
    // Letters type: the footer offers none of them as keys.
    let s = t.wait_footer(
        W,
        "> quiesce the queue?",
        &["Enter confirm  Esc hold"],
        STEP,
    );
    assert!(!s.contains("? or Esc closes"), "? typed, not help: {s}");
    let footer = s.lines().last().unwrap_or_default();
    assert!(
        !footer.contains("q quit") && !footer.contains("u undo"),
        "{footer}"
    );
    t.send(W, "Enter");
    t.wait_until(W, "the step done", STEP, |s| {
        row_has(s, "1 Quiesce the queue", "✓")
    });
    t.send(W, "q");
    t.wait_for(W, "[exited", STEP);
}

/// What the prompt's phrase box (`║ > typed…  ║`) holds.
fn phrase_box(screen: &str) -> Option<String> {
    screen.lines().find_map(|l| {
        let rest = l.split_once("║ >")?.1;
        Some(rest.split('║').next()?.trim().to_string())
    })
}

/// Ctrl-C in a half-typed phrase clears it, as in a shell, and the cockpit stays; the phrase
/// then types afresh. On an empty phrase Ctrl-C leaves (here, between steps, at once); the
/// step it was asking about never ran.
#[test]
fn ctrl_c_clears_a_half_typed_phrase_and_leaves_only_when_it_is_empty() {
    let Some(mut t) = Tmux::new() else { return };
    let procedure = t.path("quiesce.toml");
    std::fs::write(&procedure, PHRASE_PROCEDURE).unwrap();
    let journal = t.path("ctrl-c.jsonl");
    t.spawn(
        W,
        &cmd(&format!(
            "run {} --lab --foreground --journal {}",
            procedure.display(),
            journal.display()
        )),
    );
    let prompt = "Type `quiesce the queue?` to run";
    t.answer(W, prompt, "quiesce th", STEP);
    let s = t.wait_footer(W, "> quiesce th", &["Ctrl-C clear"], STEP);
    assert_eq!(phrase_box(&s).as_deref(), Some("quiesce th"), "{s}");
    t.send(W, "C-c");
    // The box is empty, the prompt still open, the footer offers Ctrl-C to leave now.
    let s = t.wait_footer(W, prompt, &["Enter confirm", "Ctrl-C quit"], STEP);
    assert_eq!(
        phrase_box(&s).as_deref(),
        Some(""),
        "an empty phrase box:\n{s}"
    );
    assert!(!s.contains("[exited"), "still running:\n{s}");
    // What is typed next starts afresh.
    t.send(W, "quiesce");
    t.wait_footer(W, "> quiesce", &["Ctrl-C clear"], STEP);
    t.send(W, "C-c");
    t.wait_footer(W, prompt, &["Ctrl-C quit"], STEP);
    // On the empty phrase, Ctrl-C leaves: nothing runs, so at once.
    t.send(W, "C-c");
    t.wait_for(W, "[exited 0]", STEP);
    let j = flightdeck::journal::read(&journal).unwrap();
    let st = flightdeck::engine::SessionState::fold(&j.events);
    assert_eq!(st.steps[0].status, StepStatus::Awaiting, "step 1 never ran");
}

#[test]
fn an_abort_rolls_back_what_was_done_and_nothing_else() {
    let Some(mut t) = Tmux::new() else { return };
    let journal = t.path("abort.jsonl");
    t.spawn(
        W,
        &cmd(&format!(
            "run procedures/generic-rolling.toml --lab --foreground --journal {}",
            journal.display()
        )),
    );
    for n in 2..=4 {
        t.answer(W, &format!("Run step {n}: Back up node"), "y", STEP);
    }
    t.answer(
        W,
        "Run step 5: Take node2 out of the load balancer?",
        "y",
        STEP,
    );
    t.wait_until(W, "node2 drained", STEP, |s| lb_shows(s, "node2", "drain"));

    // Abort at step 6's prompt, rolling back.
    t.answer(W, "Run step 6: Stop node2?", "a", STEP);
    t.wait_footer(
        W,
        "Abort the procedure?",
        &["r roll back  k keep as is"],
        STEP,
    );
    t.send(W, "r");
    // Why, typed: it is journaled with the abort and in the report.
    t.wait_until(W, "the abort's reason box", STEP, |s| {
        s.contains("Abort and roll back: why?")
            && s.lines().last().is_some_and(|f| f.contains("Enter abort"))
    });
    t.send(W, "node2 disk is read-only");
    t.wait_for(W, "> node2 disk is read-only", STEP);
    t.send(W, "Enter");
    // Step 6 never ran and nobody is asked about it any more (its row is below the undo's
    // dialog: one capture for all of it).
    t.wait_until(
        W,
        "rolling back, the undo asked, step 6 pending",
        STEP,
        |s| {
            s.contains("Undo step 5: Take node2 out of the load balancer?")
                && s.contains("ROLLING BACK")
                && s.contains("┃·  6 Stop node2")
        },
    );
    t.answer(
        W,
        "Undo step 5: Take node2 out of the load balancer?",
        "y",
        STEP,
    );
    t.wait_until(W, "node2 ready again", STEP, |s| {
        lb_shows(s, "node2", "ready")
    });
    // Backups and the preflight gate have no undo: the rollback passes them without a prompt.
    let s = t.wait_for(W, "FINISHED", STEP);
    assert!(!s.contains("Undo step 4"), "{s}");
    t.send(W, "q");
    t.wait_for(W, "[exited", STEP);

    let j = flightdeck::journal::read(&journal).unwrap();
    let st = flightdeck::engine::SessionState::fold(&j.events);
    assert_eq!(
        st.mode,
        flightdeck::engine::state::Mode::Finished(flightdeck::engine::event::Outcome::RolledBack)
    );
    let statuses: Vec<_> = st.steps.iter().map(|s| s.status).collect();
    assert!(
        !statuses.contains(&StepStatus::Awaiting),
        "no step awaits in a finished session: {statuses:?}"
    );
    assert_eq!(statuses[4], StepStatus::Undone, "{statuses:?}");
    assert_eq!(statuses[5], StepStatus::Pending, "{statuses:?}");
    // One undo prompt only: step 5's.
    let undo_prompts: Vec<usize> = j
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Event::PromptOpened {
                step,
                prompt: flightdeck::engine::event::PromptKind::Undo,
                ..
            } => Some(*step),
            _ => None,
        })
        .collect();
    assert_eq!(undo_prompts, [4]);
    assert!(
        j.events.iter().any(|e| matches!(
            &e.event,
            Event::AbortRequested { rollback: true, reason: Some(r), .. } if r == "node2 disk is read-only"
        )),
        "the abort's reason is journaled"
    );
}

/// Alerts reach the terminal: the title says a prompt waits (and which step), then that a
/// step failed; `--alerts none` leaves the title alone. Checked through tmux's `pane_title`.
#[test]
fn the_terminal_title_says_what_waits_for_the_operator() {
    let Some(mut t) = Tmux::new() else { return };
    let journal = t.path("alerts.jsonl");
    t.spawn(
        W,
        &cmd(&format!(
            "run procedures/generic-rolling.toml --lab --foreground --journal {}",
            journal.display()
        )),
    );
    t.wait_for(W, "Run step 2: Back up node1? [y/N]", STEP);
    let title = t.wait_title(W, "step 2/", STEP);
    assert!(title.contains("waiting for you"), "{title}");
    t.answer(W, "Run step 2: Back up node1", "y", STEP);
    t.wait_title(W, "step 3/", STEP);

    let quiet = "quiet";
    let journal = t.path("quiet.jsonl");
    t.spawn(
        quiet,
        &cmd(&format!(
            "run procedures/generic-rolling.toml --lab --foreground --alerts none --journal {}",
            journal.display()
        )),
    );
    t.wait_for(quiet, "Run step 2: Back up node1? [y/N]", STEP);
    let title = t.pane_title(quiet);
    assert!(!title.contains("flightdeck"), "{title}");
}

/// `flightdeck` with no arguments runs the demo in a session server, like `run`: `q` asks
/// whether to leave it running or end it. Leaving keeps the session and its lab (a join picks
/// it up where it was); ending it aborts the session (journaled) and stops the server and lab.
#[test]
fn the_demo_can_be_left_running_and_joined_or_ended() {
    let Some(mut t) = Tmux::new() else { return };
    t.spawn(W, &cmd(""));
    // The first prompt is a phrase (full read-only): q would be a letter of it; Ctrl-C on an
    // empty phrase leaves.
    let s = t.wait_for(W, "Run step 5:", STEP);
    assert!(s.contains("jahia-rolling"), "{s}");
    let servers = tmux::session_pids(&t.runtime_dir());
    assert_eq!(
        servers.len(),
        1,
        "the demo runs in one session server: {servers:?}"
    );
    let server = servers[0];

    // Ctrl-C asks; Esc stays; q (the step held) then l leaves with the way back on screen.
    t.answer(W, "Run step 5:", "C-c", STEP);
    let s = t.wait_footer(
        W,
        "The demo is not finished. Leave it?",
        &["l leave it running"],
        STEP,
    );
    assert!(s.contains("end the demo"), "{s}");
    t.send(W, "Escape");
    t.wait_gone(W, "Leave it?", STEP);
    t.answer(W, "Run step 5:", "Escape", STEP);
    t.wait_gone(W, "Run step 5:", STEP);
    t.send(W, "q");
    t.wait_for(W, "Leave it?", STEP);
    t.send(W, "l");
    let s = t.wait_for(W, "[exited 0", STEP);
    assert!(
        s.contains("it goes on. Rejoin with: flightdeck join"),
        "{s}"
    );
    assert!(tmux::alive(server), "leaving keeps the session server");

    // The session waits where it was; a join drives it on.
    let again = "again";
    t.spawn(again, &cmd("join --drive"));
    t.wait_for(again, "Enter act on the step", STEP);
    t.send(again, "Enter");
    t.answer(
        again,
        "Type `read-only lab-jahia` to run",
        "read-only lab-jahia",
        STEP,
    );
    t.send(again, "Enter");
    t.wait_for(again, "Run step 7:", STEP);

    // Ending the demo: the session is aborted, the server and its lab stop.
    t.answer(again, "Run step 7:", "q", STEP);
    t.wait_for(again, "Leave it?", STEP);
    t.send(again, "e");
    let s = t.wait_for(again, "[exited 0", STEP);
    assert!(s.contains("its session server and lab are stopped"), "{s}");
    tmux::wait_dead(server, STEP);
    assert!(tmux::session_pids(&t.runtime_dir()).is_empty());
    let journal = s
        .lines()
        .find_map(|l| l.strip_prefix("journal: "))
        .expect("the journal's path")
        .trim()
        .to_string();
    let j = flightdeck::journal::read(std::path::Path::new(&journal)).unwrap();
    let st = flightdeck::engine::SessionState::fold(&j.events);
    assert_eq!(
        st.mode,
        flightdeck::engine::state::Mode::Finished(flightdeck::engine::event::Outcome::Aborted)
    );
    assert_eq!(st.steps[4].status, StepStatus::Succeeded);
    assert_eq!(st.steps[6].status, StepStatus::Pending);
}

/// Whether a `capture-pane -e` screen sets any colour: an SGR parameter list that starts a
/// foreground or background colour (30–38, 40–48, 90–97, 100–107). Attributes (bold,
/// reverse, dim ...) and the defaults (39, 49) are not colours.
fn sets_colour(styled: &str) -> bool {
    styled.split("\x1b[").skip(1).any(|seq| {
        let Some((params, _)) = seq.split_once('m') else {
            return false;
        };
        params.split(';').any(|p| {
            matches!(
                p.parse::<u16>(),
                Ok(30..=38 | 40..=48 | 90..=97 | 100..=107)
            )
        })
    })
}

/// `:theme` in a real terminal: a running cockpit drops its colours for `mono` and takes the
/// light theme's, saying so in the footer; an unknown theme is refused there and changes
/// nothing.
#[test]
fn the_theme_command_recolours_a_running_cockpit() {
    let Some(mut t) = Tmux::new() else { return };
    let journal = t.path("theme.jsonl");
    t.spawn(
        W,
        &cmd(&format!(
            "run procedures/generic-rolling.toml --lab --foreground --theme dark --journal {}",
            journal.display()
        )),
    );
    let prompt = "Run step 2: Back up node1? [y/N]";
    t.wait_prompt(W, prompt, STEP);
    let dark = t.capture_styled(W);
    assert!(sets_colour(&dark), "dark has colours:\n{dark:?}");
    // `:` at the prompt, after its guard: the prompt comes back (with a fresh guard) each
    // time the command line closes.
    let theme = |name: &str| {
        t.wait_prompt(W, prompt, STEP);
        t.send(W, ":");
        t.wait_footer(W, "theme NAME", &["Enter run", "Esc cancel"], STEP);
        t.send(W, &format!("theme {name}"));
        t.wait_for(W, &format!("> theme {name}"), STEP);
        t.send(W, "Enter");
    };
    theme("mono");
    t.wait_footer(W, prompt, &["theme mono"], STEP);
    let mono = t.capture_styled(W);
    assert!(!sets_colour(&mono), "mono has none:\n{mono:?}");
    assert!(mono.contains(prompt), "{mono}");

    theme("no-such-theme");
    let s = t.wait_footer(W, prompt, &["theme no-such-theme:"], STEP);
    assert!(!sets_colour(&t.capture_styled(W)), "still mono:\n{s}");

    theme("light");
    t.wait_footer(W, prompt, &["theme light"], STEP);
    let light = t.capture_styled(W);
    assert!(sets_colour(&light), "light has colours:\n{light:?}");
    assert_ne!(light, dark, "light is not dark");
    // The prompt still answers after all that.
    t.answer(W, prompt, "y", STEP);
    t.wait_for(W, "Run step 3: Back up node2", STEP);
}

/// The colours a `capture-pane -e` screen sets, as SGR parameters: `38;2;R;G;B` (24-bit),
/// `38;5;N` (palette) and the 16-colour `3N`/`9N` (and their backgrounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sgr {
    Rgb(u8, u8, u8),
    Indexed(u8),
    Basic(u16),
}

fn sgr_colours(styled: &str) -> Vec<Sgr> {
    let mut found = Vec::new();
    for seq in styled.split("\x1b[").skip(1) {
        let Some((params, _)) = seq.split_once('m') else {
            continue;
        };
        let p: Vec<u16> = params.split(';').filter_map(|p| p.parse().ok()).collect();
        let mut i = 0;
        while i < p.len() {
            match (p[i], p.get(i + 1)) {
                (38 | 48, Some(2)) if i + 4 < p.len() => {
                    let c = |k: usize| u8::try_from(p[k]).unwrap_or(u8::MAX);
                    found.push(Sgr::Rgb(c(i + 2), c(i + 3), c(i + 4)));
                    i += 5;
                }
                (38 | 48, Some(5)) if i + 2 < p.len() => {
                    found.push(Sgr::Indexed(u8::try_from(p[i + 2]).unwrap_or(u8::MAX)));
                    i += 3;
                }
                (c @ (30..=37 | 40..=47 | 90..=97 | 100..=107), _) => {
                    found.push(Sgr::Basic(c));
                    i += 1;
                }
                _ => i += 1,
            }
        }
    }
    found
}

/// The light theme's colours reach the terminal at the depth its environment says it has
/// (`COLORTERM`, then `TERM`): 24-bit only with `COLORTERM=truecolor`, the 256-colour palette
/// on a `*-256color` terminal, the 16 ANSI colours otherwise. Its `#a05a00` (warnings, old
/// versions) is the colour to watch: 24-bit (160,90,0), palette 130, or the 16 colours' red.
/// tmux keeps each cell's colour as it was sent, so `capture-pane -e` shows what was sent.
/// The first replay takes the theme from `FLIGHTDECK_THEME`, the others from `--theme`.
#[test]
fn the_light_theme_degrades_to_the_terminals_colour_depth() {
    let Some(mut t) = Tmux::new() else { return };
    let replay = |env: &str, term: &str, colorterm: &str| {
        // tmux sets TERM (its default-terminal) for the pane: the command sets its own.
        format!(
            "env {env} TERM={term} COLORTERM={colorterm} {} replay tests/fixtures/lab-generic-rolling.jsonl --speed 64",
            tmux::binary()
        )
    };
    // The theme by flag, and once by its environment variable (no other theme has #a05a00).
    let depths = [
        (
            "truecolor",
            replay("FLIGHTDECK_THEME=light", "xterm-256color", "truecolor"),
        ),
        ("256", replay("", "xterm-256color", "") + " --theme light"),
        ("16", replay("", "xterm", "") + " --theme light"),
    ];
    for (name, line) in &depths {
        t.spawn(name, line);
    }
    let mut seen = Vec::new();
    for (name, _) in &depths {
        t.wait_until(name, "the replay's end", STEP, |s| {
            s.contains("FINISHED: completed") && s.contains("■ end")
        });
        seen.push(sgr_colours(&t.capture_styled(name)));
    }
    let [truecolor, c256, c16] = [&seen[0], &seen[1], &seen[2]];
    let brown = Sgr::Rgb(0xa0, 0x5a, 0x00);
    assert!(truecolor.contains(&brown), "{truecolor:?}");

    assert!(
        !c256.iter().any(|c| matches!(c, Sgr::Rgb(..))),
        "no 24-bit colour on a 256-colour terminal: {c256:?}"
    );
    assert!(c256.contains(&Sgr::Indexed(130)), "{c256:?}");

    // crossterm sends the named colours as palette entries 0–15; nothing beyond them.
    assert!(
        !c16.iter()
            .any(|c| matches!(c, Sgr::Rgb(..) | Sgr::Indexed(16..))),
        "only the 16 colours: {c16:?}"
    );
    assert!(!c16.is_empty(), "still in colour");
}

/// Where `title` starts on `screen`: (column, row), 0-based, in terminal cells.
fn cell_of(screen: &str, title: &str) -> (usize, usize) {
    screen
        .lines()
        .enumerate()
        .find_map(|(y, l)| l.find(title).map(|b| (l[..b].chars().count(), y)))
        .unwrap_or_else(|| panic!("{title:?} not on the screen:\n{screen}"))
}

/// An SGR mouse report (what a terminal sends once the cockpit asks for the mouse) for
/// button `button` (0 left, 64 wheel up, 65 wheel down) at 0-based `x`, `y`.
fn mouse_report(button: u8, x: usize, y: usize) -> String {
    format!("\x1b[<{button};{};{}M", x + 1, y + 1)
}

/// The mouse in a real terminal: a click focuses the pane under it; the wheel over the
/// procedure moves its selection (the detail shows that step) while the focus stays where
/// the click put it; none of it answers the prompt.
#[test]
fn the_mouse_focuses_and_scrolls_the_pane_under_it() {
    let Some(mut t) = Tmux::new() else { return };
    let journal = t.path("mouse.jsonl");
    t.spawn(
        W,
        &cmd(&format!(
            "run procedures/generic-rolling.toml --lab --foreground --journal {}",
            journal.display()
        )),
    );
    let prompt = "Run step 2: Back up node1? [y/N]";
    let s = t.wait_prompt(W, prompt, STEP);
    assert!(
        s.contains("┏ Procedure"),
        "the procedure has the focus:\n{s}"
    );
    // Inside each pane, clear of the prompt in the middle of the screen: the probe pane's
    // right end, the procedure's left end.
    let (_, oy) = cell_of(&s, "┌ Probes & notes");
    let ox = usize::from(tmux::WIDTH) - 3;
    let (px, py) = cell_of(&s, "┏ Procedure");
    t.send_literal(W, &mouse_report(0, ox, oy + 1));
    t.send_literal(W, &format!("\x1b[<0;{};{}m", ox + 1, oy + 2));
    let s = t.wait_until(W, "the probe pane focused", STEP, |s| {
        s.contains("┏ Probes & notes") && s.contains("┌ Procedure")
    });
    assert!(s.contains("┌ Step 2 · Back up node1"), "{s}");
    t.send_literal(W, &mouse_report(64, px + 2, py + 3));
    let s = t.wait_until(W, "the procedure scrolled to step 1", STEP, |s| {
        s.contains("┌ Step 1 · Every node healthy before we start")
    });
    assert!(s.contains("┏ Probes & notes"), "the focus stayed:\n{s}");
    assert!(s.contains(prompt), "{s}");
    // The prompt still answers.
    t.answer(W, prompt, "y", STEP);
    t.wait_for(W, "Run step 3: Back up node2", STEP);
}
