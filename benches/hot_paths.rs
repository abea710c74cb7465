//! Figures for the hot paths: the key latency at a prompt, one cockpit frame, folding events (resume, replay, join catch-up),
//! journal appends (buffered and fsynced) and reading a journal back. Run with `cargo bench`;
//! it prints figures, it asserts nothing (timed assertions don't belong in tests).

#[path = "../tests/common/scripted_session.rs"]
mod scripted_session;
#[path = "../tests/common/sticky_input.rs"]
mod sticky_input;

use std::hint::black_box;
use std::time::{Duration, Instant};

use crossterm::event::KeyCode;
use flightdeck::engine::event::{Event, Phase, PromptKind, Stream};
use flightdeck::engine::state::StepStatus;
use flightdeck::engine::{SessionState, Stamped};
use flightdeck::journal::{self, Header, JournalWriter};
use flightdeck::tui::demo::Script;
use flightdeck::tui::view::PROMPT_GUARD;
use flightdeck::tui::{render, Theme, TuiRole, View};
use flightdeck::tui::{run_on, TuiOptions};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

/// Run `f` repeatedly for about `budget` and report the mean per call.
fn measure(name: &str, budget: Duration, mut f: impl FnMut()) -> Duration {
    // Warm up caches and lazy statics.
    for _ in 0..3 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < budget {
        f();
        n += 1;
    }
    let per = start.elapsed() / n.max(1);
    println!(
        "{name:<46} {:>10.1} µs/op  ({n} runs)",
        per.as_secs_f64() * 1e6
    );
    per
}

/// A busy session: the demo's start plus many output lines, probe samples and traffic.
fn busy_script(extra: usize) -> Vec<Stamped> {
    let mut s = Script::started();
    for i in 0..extra {
        s.push(
            5,
            Event::Output {
                step: 0,
                phase: Phase::Do,
                stream: Stream::Stdout,
                line: format!("line {i}: migrating segment {} of the store", i * 7),
            },
        );
        if i % 3 == 0 {
            s.probe(
                ["jahia1", "jahia2", "jahia3"][i % 3],
                i % 17 != 0,
                (i % 40) as u64,
            );
        }
    }
    s.events
}

/// The cockpit's goal for answering a key: within one frame at 60 Hz.
const KEY_GOAL: Duration = Duration::from_micros(16_667);

/// How long the first key after a prompt (or after an overlay over it closed) takes to reach the
/// engine: the real run loop on a real multi-thread runtime, a test terminal, and an input that
/// wakes like crossterm's `EventStream` (see `tests/common/sticky_input.rs`). Before the fix for
/// issue 14 this waited for an unrelated wake-up (up to the 1 s clock tick).
fn key_latency(rounds: u64, through_help: bool) -> Option<Vec<Duration>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async move {
        let (mut session, client) = scripted_session::scripted_session(1024);
        let (kb, input) = sticky_input::sticky_input();
        let mut script = Script::started();
        script.through(2);
        let opts = TuiOptions {
            theme: Theme::dark(),
            alerts: flightdeck::tui::AlertConfig::NONE,
            role: TuiRole::Driver,
            title: "bench".into(),
            demo: None,
        };
        let cockpit = tokio::spawn(async move {
            let mut term = Terminal::new(TestBackend::new(120, 40)).ok()?;
            run_on(&mut term, client, None, opts, input).await.ok()
        });
        let mut took = Vec::new();
        for _ in 0..rounds {
            script.prompt(2, PromptKind::Run);
            session.feed(&script);
            // Let the prompt be drawn and read (keys inside the guard are refused on purpose).
            let settle = Duration::from_millis(30);
            tokio::time::sleep(settle).await;
            if through_help {
                kb.press(KeyCode::Char('?'));
                tokio::time::sleep(settle).await;
                kb.press(KeyCode::Esc);
                tokio::time::sleep(settle).await;
            }
            tokio::time::sleep(PROMPT_GUARD + settle).await;
            let pressed = Instant::now();
            kb.press(KeyCode::Char('y'));
            let req = session.requests.recv().await?;
            took.push(pressed.elapsed());
            let _ = req.reply.send(Ok(()));
            script.push(
                10,
                Event::Confirmed {
                    step: 2,
                    by: "alice".into(),
                    auto: false,
                },
            );
        }
        kb.close();
        let _ = cockpit.await;
        Some(took)
    })
}

fn report_latency(name: &str, mut took: Vec<Duration>) {
    took.sort();
    let (Some(median), Some(max)) = (took.get(took.len() / 2), took.last()) else {
        return;
    };
    println!(
        "{name:<46} {:>10.1} µs median, {:.1} µs max ({} keys; goal {} ms: {})",
        median.as_secs_f64() * 1e6,
        max.as_secs_f64() * 1e6,
        took.len(),
        KEY_GOAL.as_millis(),
        if *max <= KEY_GOAL { "met" } else { "MISSED" }
    );
}

/// A session over `n` nodes whose guard watches every node, and the step that would drain the
/// middle one: what the engine counts before each action that takes a node out.
fn guarded_session(n: usize) -> Option<(SessionState, usize)> {
    let dir = tempfile::tempdir().ok()?;
    let procedure = r#"name = "guarded"
product = "generic"

[[guards]]
name = "quorum"
nodes = "all"
max_out = "10%"
why = "a bench"

[[steps]]
id = "drain"
title = "Drain ${node.name}"
for_each = "nodes"
action = { kind = "lb", node = "${node.name}", state = "drain" }
undo = { kind = "lb", node = "${node.name}", state = "ready" }

[[steps]]
id = "restart"
title = "Restart ${node.name}"
for_each = "nodes"
action = { kind = "run", argv = ["true"] }

[[steps]]
id = "ready"
title = "Ready ${node.name}"
for_each = "nodes"
action = { kind = "lb", node = "${node.name}", state = "ready" }
"#;
    let lp = flightdeck::procedure::load::parse_procedure(
        &dir.path().join("guarded.toml"),
        procedure.into(),
    )
    .ok()?;
    let target = flightdeck::target::Target {
        name: "bench".into(),
        nodes: (0..n)
            .map(|i| flightdeck::target::Node {
                name: format!("n{i}"),
                address: format!("10.0.{}.{}:9200", i / 250, i % 250),
                role: None,
                tags: Default::default(),
                scheme: None,
            })
            .collect(),
        ..Default::default()
    };
    let plan = flightdeck::plan::expand::build_plan(&lp, &target, &Default::default()).ok()?;
    let nodes = target.nodes.clone();
    let backends = nodes
        .iter()
        .map(|node| flightdeck::lb::Backend {
            server: node.name.clone(),
            node: Some(node.name.clone()),
            membership: flightdeck::procedure::model::Membership::Ready,
            health: "UP".into(),
            serving: true,
            sessions: None,
            weight: None,
            check: None,
        })
        .collect();
    let events: Vec<Stamped> = [
        Event::SessionStarted {
            plan: Box::new(plan),
            nodes,
            operator: "bench".into(),
            auto: Default::default(),
            lb: Some("lab".into()),
            health_probes: vec!["health".into()],
            target: None,
        },
        Event::LbSample { backends },
    ]
    .into_iter()
    .enumerate()
    .map(|(i, event)| Stamped {
        seq: i as u64,
        t_ms: i as u64,
        event,
    })
    .collect();
    let mut state = SessionState::fold(&events);
    // Half the nodes went round already (drained, restarted, back in).
    for (i, planned) in state.plan.steps.iter().enumerate() {
        let round = planned
            .key
            .rsplit('n')
            .next()
            .and_then(|k| k.parse::<usize>().ok());
        if round.is_some_and(|k| k < n / 2) {
            state.steps[i].status = StepStatus::Succeeded;
        }
    }
    let step = state
        .plan
        .steps
        .iter()
        .position(|s| s.key == format!("drain@n{}", n / 2))?;
    Some((state, step))
}

fn main() {
    let theme = Theme::dark();
    let budget = Duration::from_millis(700);
    println!("flightdeck hot paths (lower is better; a frame at 60 Hz is 16 667 µs)\n");

    match key_latency(8, false) {
        Some(took) => report_latency("first key after a prompt appears", took),
        None => eprintln!("key latency: the cockpit loop did not run"),
    }
    match key_latency(8, true) {
        Some(took) => report_latency("first key after the help over a prompt closes", took),
        None => eprintln!("key latency: the cockpit loop did not run"),
    }

    for (w, h) in [(80u16, 24u16), (120, 40), (240, 70)] {
        let events = busy_script(2_000);
        let view = View::from_events(TuiRole::Driver, "bench", 1, &events);
        let mut terminal = match Terminal::new(TestBackend::new(w, h)) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("cannot make a test terminal: {e}");
                return;
            }
        };
        measure(
            &format!("render one cockpit frame at {w}x{h}"),
            budget,
            || {
                let _ = terminal.draw(|f| render(f, black_box(&view), &theme));
            },
        );
    }

    for n in [10, 1_000] {
        let Some((state, step)) = guarded_session(n) else {
            eprintln!("guard bench: the session did not build");
            continue;
        };
        measure(
            &format!("guard check before a drain, {n} nodes"),
            budget,
            || {
                black_box(flightdeck::engine::guard::check(
                    black_box(&state),
                    step,
                    Phase::Do,
                ));
            },
        );
    }

    let events = busy_script(20_000);
    let per = measure(
        &format!("fold {} events into a state", events.len()),
        budget,
        || {
            black_box(SessionState::fold(black_box(&events)));
        },
    );
    println!(
        "{:<46} {:>10.0} events/s",
        "  = fold throughput",
        events.len() as f64 / per.as_secs_f64()
    );

    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("no temp dir: {e}");
            return;
        }
    };
    let header = Header::new("bench", "0", "bench", "bench");
    let path = dir.path().join("bench.jsonl");
    let mut writer = match JournalWriter::create(&path, &header) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("{e}");
            return;
        }
    };
    let sample = events[events.len() / 2].clone();
    measure(
        "journal append (buffered: output, probes)",
        Duration::from_millis(150),
        || {
            let _ = writer.append(black_box(&sample), false);
        },
    );
    measure("journal append + fsync (decisions)", budget, || {
        let _ = writer.append(black_box(&sample), true);
    });
    drop(writer);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let per = measure("read the journal back", Duration::from_millis(1500), || {
        let _ = black_box(journal::read(&path));
    });
    println!(
        "{:<46} {:>10.1} MB/s  ({} KB)",
        "  = read throughput",
        size as f64 / per.as_secs_f64() / 1e6,
        size / 1024
    );
}
