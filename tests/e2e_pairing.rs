//! Two operators on one session, for real: `flightdeck run --name e2e` (a detached session
//! server plus the driver's cockpit) and `flightdeck join e2e --as bob` in two tmux windows.
//! Observers cannot answer, control moves on request and grant, and a driver whose client
//! is killed mid-step loses nothing: the step completes, the engine waits at the next confirm,
//! and a fresh join, `flightdeck sessions` and the journal all say so.

#[path = "common/tmux.rs"]
mod tmux;

use std::process::Command;
use std::time::Duration;

use flightdeck::engine::state::StepStatus;
use flightdeck::engine::SessionState;
use tmux::{cmd, Tmux};

const STEP: Duration = Duration::from_secs(30);
const DRIVER: &str = "alice";
const BOB: &str = "bob";
const LATE: &str = "late";

fn row_has(screen: &str, a: &str, b: &str) -> bool {
    screen.lines().any(|l| l.contains(a) && l.contains(b))
}

/// The status glyph and number of every procedure row ("✓  1", "?  2", "·  3"): the columns
/// left of where a prompt's box can cover the list.
fn step_marks(screen: &str) -> Vec<String> {
    screen
        .lines()
        .filter_map(|l| l.strip_prefix('┃'))
        .map(|l| l.chars().take(4).collect::<String>())
        .filter(|m| m.trim_end().ends_with(|c: char| c.is_ascii_digit()))
        .collect()
}

/// `flightdeck sessions`' row for session `name` once it satisfies `ok`, polled: the server
/// learns that a client left (or came) on that client's connection, in no set order with the
/// listing's own request.
fn listed(t: &Tmux, name: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let until = std::time::Instant::now() + STEP;
    loop {
        let out = Command::new(tmux::binary())
            .arg("sessions")
            .envs(t.env())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        let row = listing
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .map(str::to_string);
        if let Some(row) = row.filter(|r| ok(r)) {
            return row;
        }
        assert!(
            std::time::Instant::now() < until,
            "{name}: not {what} after {STEP:?}:\n{listing}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Both windows show the same step states (polled: the two clients update independently).
fn same_steps(t: &Tmux, a: &str, b: &str) -> Vec<String> {
    let until = std::time::Instant::now() + STEP;
    loop {
        let (sa, sb) = (step_marks(&t.capture(a)), step_marks(&t.capture(b)));
        if sa == sb && sa.len() == 23 {
            return sa;
        }
        assert!(
            std::time::Instant::now() < until,
            "windows disagree on the steps:\n{sa:?}\n{sb:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_operators_share_a_session_that_survives_its_driver() {
    let Some(mut t) = Tmux::new() else { return };
    let journal = t.path("pairing.jsonl");
    // Realistic lab timing: the health gate after node2 starts runs for seconds, time enough
    // to kill the driver's client in the middle of it. The other steps are instant anyway.
    let realistic = [("FLIGHTDECK_LAB_TIMING", "realistic")];
    t.spawn_with(
        DRIVER,
        &cmd(&format!(
            "run procedures/generic-rolling.toml --lab --name e2e --as {DRIVER} --journal {}",
            journal.display()
        )),
        &realistic,
    );
    t.wait_for(DRIVER, "Run step 2: Back up node1? [y/N]", STEP);
    let server = tmux::session_pids(&t.runtime_dir());
    assert_eq!(server.len(), 1, "one session server: {server:?}");

    t.spawn_with(BOB, &cmd(&format!("join e2e --as {BOB}")), &realistic);
    let s = t.wait_for(BOB, "observer — read only", STEP);
    assert!(s.contains("flightdeck · e2e"), "{s}");
    t.wait_for(DRIVER, &format!("watching {BOB}"), STEP);
    let marks = same_steps(&t, DRIVER, BOB);
    assert_eq!(marks[0], "✓  1");
    assert_eq!(marks[1], "?  2");

    // An observer's y answers nothing: bob is told, the driver's prompt stays open.
    t.send(BOB, "y");
    t.wait_for(BOB, "observer — read only; c to request control", STEP);
    let s = t.capture(DRIVER);
    assert!(s.contains("Run step 2: Back up node1? [y/N]"), "{s}");
    assert!(row_has(&s, "2 Back up node1", "awaiting confirm"), "{s}");

    // bob asks, alice grants: bob drives, alice watches.
    t.send(BOB, "c");
    // The grant is typed at alice's open prompt, so it waits out the prompt's guard too.
    // Labels show with the real user next to them (every window here is the same user).
    let me = flightdeck::engine::identity::Identity::current().user;
    t.answer(
        DRIVER,
        &format!("{BOB} ({me}) asks for control:"),
        "g",
        STEP,
    );
    t.wait_for(DRIVER, &format!("driver {BOB}"), STEP);
    t.wait_for(DRIVER, "observer — read only", STEP);
    // alice's keys no longer answer.
    t.send(DRIVER, "y");
    t.wait_for(DRIVER, "observer — read only; c to request control", STEP);
    // bob's own client learns of the grant on its own connection: wait for its screen to say
    // so before bob answers (alice's said it first).
    t.wait_until(BOB, "bob drives, at step 2's prompt", STEP, |s| {
        s.contains("Run step 2: Back up node1? [y/N]") && s.contains(&format!("driver {BOB}"))
    });
    t.answer(BOB, "Run step 2: Back up node1? [y/N]", "y", STEP);
    t.answer(BOB, "Run step 3: Back up node2?", "y", STEP);
    t.answer(BOB, "Run step 4: Back up node3?", "y", STEP);
    t.answer(
        BOB,
        "Run step 5: Take node2 out of the load balancer?",
        "y",
        STEP,
    );
    t.wait_for(BOB, "Run step 6: Stop node2?", STEP);
    let marks = same_steps(&t, DRIVER, BOB);
    assert!(marks[..5].iter().all(|m| m.starts_with('✓')), "{marks:?}");
    assert_eq!(marks[5], "?  6");
    t.answer(BOB, "Run step 6: Stop node2?", "y", STEP);
    t.answer(BOB, "Run step 7: Install 1.1.0 on node2?", "y", STEP);
    t.answer(BOB, "Run step 8: Start node2 on 1.1.0", "y", STEP);

    // Kill bob's client (the pane's shell runs it) while the health gate runs.
    let bob_client = tmux::children(t.pane_pid(BOB));
    assert_eq!(bob_client.len(), 1, "bob's client: {bob_client:?}");
    t.wait_until(BOB, "step 9 running", STEP, |s| {
        row_has(s, "9 Wait until node2 is", "running")
    });
    tmux::kill(bob_client[0], libc::SIGKILL);
    let s = t.wait_for(BOB, "[exited", STEP);
    // tmux prints "[exited 137]" where the killed cockpit left its cursor, so the closing bracket
    // can fall past the pane's right edge: match the status without it.
    assert!(s.contains("[exited 137"), "{s}");
    // The gate was still running when the client died.
    let s = t.capture(DRIVER);
    assert!(row_has(&s, "9 Wait until node2 is", "running"), "{s}");

    // The step completes without anyone; the engine waits at the next confirm.
    let s = t.wait_until(
        DRIVER,
        "step 10 awaiting confirm",
        Duration::from_secs(30),
        |s| row_has(s, "10 Put node2 back into", "awaiting confirm"),
    );
    assert!(row_has(&s, "9 Wait until node2 is", "✓"), "{s}");

    // A new join sees exactly that.
    t.spawn(LATE, &cmd("join e2e --as late"));
    // One wait for all of it: a capture can catch the footer half redrawn.
    let s = t.wait_until(
        LATE,
        "nobody drives: step 10 waits, c take control",
        STEP,
        |s| {
            s.contains("nobody drives: step 10 waits")
                && s.contains("c take control")
                && row_has(s, "10 Put node2 back into", "awaiting confirm")
                && row_has(s, "9 Wait until node2 is", "✓")
        },
    );
    assert!(s.contains("c take control"), "{s}");
    let marks = same_steps(&t, DRIVER, LATE);
    assert!(marks[..9].iter().all(|m| m.starts_with('✓')), "{marks:?}");
    assert_eq!(marks[9], "? 10");
    assert!(marks[10..].iter().all(|m| m.starts_with('·')), "{marks:?}");

    // `flightdeck sessions` lists it at that step: alice and the late joiner, bob's client
    // gone.
    listed(
        &t,
        "e2e",
        "at step 10 with alice and late, without bob",
        |row| {
            row.contains("generic-rolling")
                && row.contains("10/23")
                && row.contains(DRIVER)
                && row.contains(LATE)
                && !row.contains(BOB)
        },
    );

    // The journal is intact and tells the same story.
    let j = flightdeck::journal::read(&journal).unwrap();
    assert!(j.torn_tail.is_none());
    let st = SessionState::fold(&j.events);
    let statuses: Vec<StepStatus> = st.steps.iter().map(|s| s.status).collect();
    assert!(
        statuses[..9].iter().all(|s| *s == StepStatus::Succeeded),
        "{statuses:?}"
    );
    assert_eq!(statuses[9], StepStatus::Awaiting, "{statuses:?}");
    assert!(
        statuses[10..].iter().all(|s| *s == StepStatus::Pending),
        "{statuses:?}"
    );
    assert_eq!(st.prompt.map(|p| p.step), Some(9));
    assert_eq!(st.running(), None);

    // Nobody drives any more: the late joiner takes over with c and carries on.
    assert!(!t.capture(LATE).contains(&format!("driver {BOB}")));
    t.send(LATE, "y");
    t.wait_for(LATE, "observer — nobody drives; c to take control", STEP);
    t.send(LATE, "c");
    t.wait_for(LATE, &format!("driver {LATE}"), STEP);
    t.answer(
        LATE,
        "Run step 10: Put node2 back into the load balancer?",
        "y",
        STEP,
    );
    t.wait_for(LATE, "Run step 11: Take node3 out", STEP);
    let s = t.wait_until(DRIVER, "alice sees step 10 done", STEP, |s| {
        row_has(s, "10 Put node2 back into", "✓")
    });
    // alice watches now (the header may leave out who drives when the labels, each shown
    // with its real user, do not fit: the journal below says who drove).
    assert!(
        s.contains(&format!("driver {LATE}")) || s.contains("observer — read only"),
        "{s}"
    );

    // The server is ours to end.
    tmux::kill(server[0], libc::SIGKILL);
    tmux::wait_dead(server[0], STEP);
}

/// `run` without --foreground: leaving the cockpit leaves the session running in its server;
/// `join --drive` (no name: the only session) picks it up where it waits.
#[test]
fn a_driver_who_leaves_can_come_back() {
    let Some(mut t) = Tmux::new() else { return };
    let journal = t.path("back.jsonl");
    t.spawn(
        "first",
        &cmd(&format!(
            "run procedures/generic-rolling.toml --lab --name back --journal {}",
            journal.display()
        )),
    );
    t.wait_for("first", "Run step 2: Back up node1? [y/N]", STEP);
    let server = tmux::session_pids(&t.runtime_dir());
    assert_eq!(server.len(), 1, "{server:?}");
    // Nothing runs at a prompt: q leaves at once.
    t.send("first", "q");
    let s = t.wait_for("first", "[exited 0]", STEP);
    assert!(
        s.contains("left session back; it goes on. Rejoin with: flightdeck join back"),
        "{s}"
    );
    assert!(tmux::alive(server[0]), "the session outlives its cockpit");

    // The server sees the cockpit's connection close on its own time: polled.
    listed(&t, "back", "at step 2 with nobody driving", |row| {
        row.contains("2/23") && row.contains("none")
    });

    t.spawn("again", &cmd("join --drive"));
    let s = t.answer("again", "Run step 2: Back up node1? [y/N]", "y", STEP);
    assert!(
        s.contains("flightdeck · back"),
        "the joined session's name: {s}"
    );
    t.wait_for("again", "Run step 3: Back up node2?", STEP);
    t.send("again", "q");
    let s = t.wait_for("again", "[exited 0]", STEP);
    assert!(s.contains("Rejoin with: flightdeck join back"), "{s}");

    tmux::kill(server[0], libc::SIGKILL);
    tmux::wait_dead(server[0], STEP);
}
