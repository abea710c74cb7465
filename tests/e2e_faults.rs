//! The real binary in a real terminal (tmux) when the product fails under the procedure: the
//! lab's staged faults (`--fault`) break a node, and the cockpit shows the product's own reason,
//! ends a gate that cannot pass at once, and tells a crash from a node a step stopped.

#[path = "common/tmux.rs"]
mod tmux;

use std::time::Duration;

use flightdeck::engine::event::Verdict;
use flightdeck::engine::Event;
use tmux::{cmd, Tmux};

const STEP: Duration = Duration::from_secs(30);
const W: &str = "cockpit";

/// A line of the screen that shows every one of `parts` (a row of a panel, a dialog's line).
fn line_has(screen: &str, parts: &[&str]) -> bool {
    screen.lines().any(|l| parts.iter().all(|p| l.contains(p)))
}

/// The migration that node2's start runs fails (the lab's generic product: its store moves
/// from format 1000 to 1001 at start). The gate after it waits for node2 to be healthy: it
/// fails as soon as the product reports node2 failed, with the product's own words — not
/// "status 503", not after its timeout — in the failure dialog and on the Nodes panel, and
/// the terminal title says a step failed.
#[test]
fn a_gate_on_a_node_the_product_reports_failed_fails_at_once_with_its_reason() {
    let Some(mut t) = Tmux::new() else { return };
    let journal = t.path("gate.jsonl");
    t.spawn(
        W,
        &cmd(&format!(
            "run procedures/generic-rolling.toml --lab --foreground --yes \
             --fault fail-migration:node2 --journal {}",
            journal.display()
        )),
    );
    // The lab's words (src/lab/node: the store migration's failure reason).
    let reason = "store migration from format 1000 to 1001 failed";
    let s = t.wait_until(W, "step 9 failed with the product's reason", STEP, |s| {
        s.contains("Step 9 failed: Wait until node2 is healthy")
            && line_has(
                s,
                &["probe health: node2 is failed — the product says: store"],
            )
            && line_has(s, &["✗ node2: failed by step 8: ", &reason[..40]])
            // The gate's own progress line saw only the HTTP status; the verdict has the
            // reason. (In the same capture: a line can be redrawn after the one waited for.)
            && line_has(s, &["gate: 0/1 passing — node2: status 503"])
    });
    assert!(!s.contains("timed out"), "{s}");
    t.wait_title(W, "FAILED step 9", STEP);

    // The journal has the same verdict: the product's reason, from the gate (step 9).
    let j = flightdeck::journal::read(&journal).unwrap();
    let verdict = j.events.iter().find_map(|e| match &e.event {
        Event::ActionFinished {
            step: 8,
            verdict: Verdict::Failed,
            detail,
            ..
        } => Some(detail.clone()),
        _ => None,
    });
    let verdict = verdict.expect("step 9 failed in the journal");
    assert!(
        verdict.contains(&format!("node2 is failed — the product says: {reason}")),
        "{verdict}"
    );
}

/// node3 crashes while step 6 stops node2 (`crash:node3@step=stop@node2`): node3 is flagged
/// unexpected — no step did it — with the product's own reason, red; node2 shows as stopped by
/// step 6, in the quiet colour of something planned; and the terminal title says so for as
/// long as node3 stays down, over the next prompt's.
#[test]
fn a_crash_mid_run_is_flagged_unexpected_and_a_stop_by_the_procedure_is_not() {
    let Some(mut t) = Tmux::new() else { return };
    let journal = t.path("crash.jsonl");
    t.spawn(
        W,
        &cmd(&format!(
            "run procedures/generic-rolling.toml --lab --foreground \
             --fault crash:node3@step=stop@node2 --journal {}",
            journal.display()
        )),
    );
    for (n, title) in [
        (2, "Back up node1"),
        (3, "Back up node2"),
        (4, "Back up node3"),
        (5, "Take node2 out of the load balancer"),
        (6, "Stop node2"),
    ] {
        t.answer(W, &format!("Run step {n}: {title}?"), "y", STEP);
    }
    // The lab's reason for a crash it staged (src/lab/node/faults.rs).
    let crash = "✗ node3: failed — unexpected, no step did this: crashed (fault)";
    let stop = "■ node2: stopped by step 6";
    let s = t.wait_until(W, "the crash and the stop told apart", STEP, |s| {
        s.contains("Run step 7: Install 1.1.0 on node2?")
            && s.contains("Nodes · 2 problems")
            && line_has(s, &[crash])
            && line_has(s, &[stop])
    });
    assert!(!s.contains("node2: stopped — unexpected"), "{s}");
    let title = t.wait_title(W, "UNEXPECTED: node3 failed", STEP);
    assert!(title.contains("step 7/23 · waiting for you"), "{title}");

    // Not the same colour: the crash's line is drawn in another style than the stop's.
    let styled = t.capture_styled(W);
    let style_before = |text: &str| -> String {
        let at = styled
            .find(text)
            .unwrap_or_else(|| panic!("{text:?} not on the styled screen:\n{styled}"));
        let sgr = styled[..at].rfind("\x1b[").unwrap_or(0);
        styled[sgr..at].to_string()
    };
    assert_ne!(
        style_before(&crash[..10]),
        style_before(&stop[..10]),
        "{styled:?}"
    );

    // Leaving closes the journal; it says the same: the crash fired with step 6, node3's
    // change has no step, node2's is step 6's.
    t.send(W, "q");
    let s = t.wait_until(W, "the cockpit left, or asked", STEP, |s| {
        s.contains("[exited") || s.contains("Leave the cockpit?")
    });
    if !s.contains("[exited") {
        t.send(W, "y");
        t.wait_for(W, "[exited", STEP);
    }
    let j = flightdeck::journal::read(&journal).unwrap();
    assert!(j.events.iter().any(|e| matches!(
        &e.event,
        Event::FaultFired { fault, step: 5, .. } if fault == "crash:node3"
    )));
    let st = flightdeck::engine::SessionState::fold(&j.events);
    let node = |name: &str| st.nodes.iter().find(|n| n.node.name == name).unwrap();
    assert!(node("node3").unexpectedly_down(), "{:?}", node("node3"));
    assert_eq!(
        node("node2").state_change.as_ref().and_then(|c| c.by_step),
        Some(5)
    );
}
