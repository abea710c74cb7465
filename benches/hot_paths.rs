//! Figures for the hot paths: one cockpit frame, folding events (resume, replay, join catch-up),
//! journal appends (buffered and fsynced) and reading a journal back. Run with `cargo bench`;
//! it prints figures, it asserts nothing (timed assertions don't belong in tests).

use std::hint::black_box;
use std::time::{Duration, Instant};

use flightdeck::engine::event::{Event, Phase, Stream};
use flightdeck::engine::{SessionState, Stamped};
use flightdeck::journal::{self, Header, JournalWriter};
use flightdeck::tui::demo::Script;
use flightdeck::tui::{render, Theme, TuiRole, View};
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

fn main() {
    let theme = Theme::dark();
    let budget = Duration::from_millis(700);
    println!("flightdeck hot paths (lower is better; a frame at 60 Hz is 16 667 µs)\n");

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
