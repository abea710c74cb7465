//! The figures of issue 16, measured on generated inputs and printed as one table: figure,
//! measured value, goal, met. Run with `cargo bench --bench scale` (or `cargo bench`).
//!
//! Inputs: journals of 10k, 100k and 1M events (a real lab session's events repeated; see
//! `scale/journals.rs`), a cockpit over 1,000 nodes (in process), and whole `flightdeck`
//! processes in a private tmux server against a fake node server (`scale/nodes.rs`,
//! `scale/procs.rs`). Memory is the peak of heap bytes held (a counting allocator), CPU is
//! `/proc/<pid>/stat` over a fixed window. It asserts nothing: timed assertions do not belong
//! in tests, and a goal not met is printed as such.
//!
//! `SCALE_ONLY=processes,cockpit,journals` runs part of it (`resume`: only the resume row, three
//! times); `SCALE_BIN=path` measures another
//! `flightdeck` binary in the whole-process rows (say, the build before a change).

#[path = "../tests/common/scripted_session.rs"]
mod scripted_session;
#[path = "../tests/common/sticky_input.rs"]
mod sticky_input;

#[path = "scale/heap.rs"]
mod heap;
#[path = "scale/journals.rs"]
mod journals;
#[path = "scale/nodes.rs"]
mod nodes;
#[path = "scale/procs.rs"]
mod procs;
#[path = "scale/screen.rs"]
mod screen;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use crossterm::event::KeyCode;
use flightdeck::engine::event::Stamped;
use flightdeck::tui::{render, Theme, TuiOptions, TuiRole, View};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

#[global_allocator]
static HEAP: heap::Counting = heap::Counting;

/// One row of the table.
struct Row {
    figure: String,
    value: String,
    goal: String,
    met: Option<bool>,
}

struct Table(Vec<Row>);

impl Table {
    fn row(&mut self, figure: &str, value: String, goal: &str, met: Option<bool>) {
        eprintln!("  {figure}: {value} (goal {goal})");
        self.0.push(Row {
            figure: figure.into(),
            value,
            goal: goal.into(),
            met,
        });
    }

    fn print(&self) {
        let w = |f: fn(&Row) -> usize, head: &str| {
            self.0.iter().map(f).max().unwrap_or(0).max(head.len())
        };
        let fw = w(|r| r.figure.chars().count(), "figure");
        let vw = w(|r| r.value.chars().count(), "measured");
        let gw = w(|r| r.goal.chars().count(), "goal");
        let pad =
            |s: &str, n: usize| format!("{s}{}", " ".repeat(n.saturating_sub(s.chars().count())));
        println!(
            "| {} | {} | {} | met |",
            pad("figure", fw),
            pad("measured", vw),
            pad("goal", gw)
        );
        println!(
            "|{}|{}|{}|-----|",
            "-".repeat(fw + 2),
            "-".repeat(vw + 2),
            "-".repeat(gw + 2)
        );
        for r in &self.0 {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "—",
            };
            println!(
                "| {} | {} | {} | {met:<3} |",
                pad(&r.figure, fw),
                pad(&r.value, vw),
                pad(&r.goal, gw)
            );
        }
    }
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn mb(bytes: u64) -> String {
    // A tenth of a MB under 10 MB: a figure that does not grow with length reads as one.
    if bytes < 10_000_000 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{:.0} MB", bytes as f64 / 1e6)
    }
}

fn median(mut v: Vec<Duration>) -> Option<Duration> {
    v.sort();
    v.get(v.len() / 2).copied()
}

/// Time `f` (once; these are seconds-long operations) and the heap it held at its peak.
fn time_heap<R>(f: impl FnOnce() -> R) -> (R, Duration, u64) {
    let mark = heap::mark();
    let start = Instant::now();
    let r = f();
    let took = start.elapsed();
    (r, took, heap::peak_since(mark))
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .ok()
}

fn options(role: TuiRole) -> TuiOptions {
    TuiOptions {
        theme: Theme::dark(),
        alerts: flightdeck::tui::AlertConfig::NONE,
        role,
        title: "bench".into(),
        demo: None,
    }
}

// ---------------------------------------------------------------------------------------
// Whole processes

struct ProcessFigures {
    idle_cpu: Option<f64>,
    /// (nodes, cockpit %, server %)
    cpu: Vec<(usize, f64, f64)>,
    /// (nodes, observer bytes per minute)
    observer: Vec<(usize, f64)>,
    journal_60s: Option<u64>,
}

fn processes(dir: &Path) -> Option<ProcessFigures> {
    let tmux = procs::Tmux::start()?;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let port = nodes::fake_node_server().ok()?;
    let began = Instant::now();

    // The default session (`flightdeck`, no arguments) left alone for 60 s: its journal.
    let mut default = procs::Scenario::new(dir, "default");
    default.open(&tmux, "default", manifest, "");
    let data = dir.join("data");
    let journal_60s = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        let journals = data.join("flightdeck").join("journals");
        std::fs::read_dir(journals)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
            .filter_map(|e| e.metadata().ok().map(|m| m.len()))
            .max()
    });

    // Idle: a 5-node lab at its first prompt (the lab runs inside the session server).
    eprintln!("idle cockpit + server, 5-node lab ...");
    let mut idle = procs::Scenario::new(dir, "idle");
    let journal = dir.join("idle.jsonl");
    let cockpit = idle.open(
        &tmux,
        "idle",
        manifest,
        &format!(
            "run procedures/generic-rolling.toml --lab --nodes 5 --name fdb-idle --journal {}",
            journal.display()
        ),
    );
    let server = idle.server(Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(8));
    let idle_cpu = match (cockpit, server) {
        (Some(c), Some(s)) => {
            let v = procs::cpu_percent(&[c, s], Duration::from_secs(20));
            v[0].zip(v[1]).map(|(a, b)| a + b)
        }
        _ => None,
    };
    idle.stop();

    let mut cpu = Vec::new();
    let mut observer = Vec::new();
    for n in [10usize, 100, 1000] {
        eprintln!("{n} nodes, one probe each at 1 Hz ...");
        let Ok((proc_path, target)) = nodes::write_files(dir, n, port) else {
            continue;
        };
        let label = format!("n{n}");
        let mut sc = procs::Scenario::new(dir, &label);
        let cockpit = sc.open(
            &tmux,
            &label,
            manifest,
            &format!(
                "run {} --target {} --name fdb-{label} --journal {}",
                proc_path.display(),
                target.display(),
                dir.join(format!("{label}.jsonl")).display()
            ),
        );
        let server = sc.server(Duration::from_secs(30));
        std::thread::sleep(Duration::from_secs(if n >= 1000 { 8 } else { 4 }));
        let window = Duration::from_secs(if n >= 1000 { 15 } else { 10 });
        // An observer over a whole minute, while the CPU is measured: a minute holds one
        // round of the journaled per-node probe summaries (every 60 s), which a shorter
        // window could miss.
        let watching = std::thread::scope(|scope| {
            let watcher = (n >= 100).then(|| {
                let (sc, name) = (&sc, format!("fdb-{label}"));
                scope.spawn(move || {
                    sc.observer_bytes_per_min(
                        &name,
                        cockpit_viewport(n),
                        Duration::from_secs(4),
                        Duration::from_secs(60),
                    )
                })
            });
            if let (Some(c), Some(s)) = (cockpit, server) {
                let v = procs::cpu_percent(&[c, s], window);
                if let (Some(a), Some(b)) = (v[0], v[1]) {
                    cpu.push((n, a, b));
                }
            }
            watcher.and_then(|w| w.join().ok().flatten())
        });
        if let Some(per_min) = watching {
            observer.push((n, per_min));
        }
        sc.stop();
    }

    let journal_60s = journal_60s.join().ok().flatten();
    default.stop();
    eprintln!(
        "whole processes took {:.0} s",
        began.elapsed().as_secs_f64()
    );
    Some(ProcessFigures {
        idle_cpu,
        cpu,
        observer,
        journal_60s,
    })
}

/// The node rows a 120x40 cockpit on an `n`-node session shows: what `flightdeck join` says
/// it shows when it joins (`tui::viewport`).
fn cockpit_viewport(n: usize) -> flightdeck::engine::client::Viewport {
    let events = nodes::session(n).unwrap_or_default();
    let view = View::from_events(TuiRole::Observer, "bench", 2, &events);
    flightdeck::engine::client::Viewport {
        nodes: render::shown_nodes(&view, &Theme::dark(), 120, 40)
            .map(str::to_string)
            .collect(),
    }
}

fn process_rows(t: &mut Table, p: Option<ProcessFigures>) {
    let Some(p) = p else {
        for f in [
            "idle CPU, cockpit + server, 5-node lab",
            "1,000 nodes, one probe each at 1 Hz: CPU",
            "observer (`join`) bytes per minute",
            "journal, first 60 s of the default session",
        ] {
            t.row(
                f,
                "not measured (tmux or the node server did not start)".into(),
                "—",
                None,
            );
        }
        return;
    };
    match p.idle_cpu {
        Some(v) => t.row(
            "idle CPU, cockpit + server, 5-node lab",
            format!("{v:.2} % of a core"),
            "≤ 0.2 %",
            Some(v <= 0.2),
        ),
        None => t.row(
            "idle CPU, cockpit + server, 5-node lab",
            "not measured".into(),
            "≤ 0.2 %",
            None,
        ),
    }
    let at = |n: usize| p.cpu.iter().find(|c| c.0 == n).map(|c| c.1 + c.2);
    match p.cpu.iter().find(|c| c.0 == 1000) {
        Some(&(_, c, s)) => {
            let total = c + s;
            let series: Vec<String> = p.cpu.iter().map(|c| format!("{:.1}", c.1 + c.2)).collect();
            // Linear: 1,000 nodes cost at most 10x (+20 %) what 100 cost.
            let linear = at(100).is_some_and(|h| total <= h * 12.0);
            t.row(
                "1,000 nodes, one probe each at 1 Hz: CPU",
                format!(
                    "{total:.1} % (server {s:.1}, cockpit {c:.1}); 10 → 100 → 1,000 nodes: {} %",
                    series.join(" → ")
                ),
                "≤ 10 %, linear in nodes",
                Some(total <= 10.0 && linear),
            );
        }
        None => t.row(
            "1,000 nodes, one probe each at 1 Hz: CPU",
            "not measured".into(),
            "≤ 10 %",
            None,
        ),
    }
    let obs = |n: usize| p.observer.iter().find(|o| o.0 == n).map(|o| o.1);
    match (obs(100), obs(1000)) {
        (Some(h), Some(k)) => t.row(
            "observer (`join`) bytes per minute",
            format!(
                "{:.1} KB/min at 1,000 nodes ({:.1} KB/min at 100)",
                k / 1e3,
                h / 1e3
            ),
            "≤ tmux's 17–19 KB/min, not linear in nodes",
            Some(k <= 17e3 && k < h * 5.0),
        ),
        _ => t.row(
            "observer (`join`) bytes per minute",
            "not measured".into(),
            "≤ 17 KB/min",
            None,
        ),
    }
    match p.journal_60s {
        Some(b) => t.row(
            "journal, first 60 s of the default session",
            format!(
                "{:.1} KB = {:.2}× asciinema's 75–80 KB",
                b as f64 / 1e3,
                b as f64 / 77.5e3
            ),
            "≤ 0.2× (≤ 15 KB)",
            Some(b <= 15_000),
        ),
        None => t.row(
            "journal, first 60 s of the default session",
            "not measured".into(),
            "≤ 15 KB",
            None,
        ),
    }
}

// ---------------------------------------------------------------------------------------
// The cockpit at 1,000 nodes

fn frame_time(events: &[Stamped]) -> Option<Duration> {
    let theme = Theme::dark();
    let view = View::from_events(TuiRole::Driver, "bench", 1, events);
    let mut term = Terminal::new(TestBackend::new(120, 40)).ok()?;
    for _ in 0..3 {
        term.draw(|f| render(f, black_box(&view), &theme)).ok()?;
    }
    let mut runs = Vec::new();
    let budget = Instant::now();
    while budget.elapsed() < Duration::from_millis(800) || runs.len() < 5 {
        let start = Instant::now();
        term.draw(|f| render(f, black_box(&view), &theme)).ok()?;
        runs.push(start.elapsed());
    }
    median(runs)
}

/// `?` opens the help and `Esc` closes it while 1,000 nodes' samples stream in (a round a
/// second, in ten bursts): from the key to the first frame that shows it.
fn key_to_screen(events: Vec<Stamped>, n: usize) -> Option<Vec<Duration>> {
    let rt = runtime()?;
    rt.block_on(async move {
        // The commands it sends are never answered: this cockpit only looks.
        let (session, client) = scripted_session::scripted_session(65_536);
        let tx = session.events.clone();
        let (kb, input) = sticky_input::sticky_input();
        let (backend, mut frames) = screen::Screen::new(120, 40);
        let cockpit = tokio::spawn(async move {
            let mut term = Terminal::new(backend).ok()?;
            flightdeck::tui::run_on(&mut term, client, None, options(TuiRole::Driver), input)
                .await
                .ok()
        });
        let mut seq = events.len() as u64;
        let mut t_ms = events.last().map_or(0, |e| e.t_ms);
        for e in events {
            tx.send(e).await.ok()?;
        }
        let feed_tx = tx.clone();
        let feed = tokio::spawn(async move {
            let mut round = 0u64;
            loop {
                for chunk in nodes::sample_round(n, round).chunks(n.div_ceil(10)) {
                    for e in chunk {
                        t_ms += 1;
                        seq += 1;
                        let st = Stamped {
                            seq,
                            t_ms,
                            event: e.clone(),
                        };
                        if feed_tx.send(st).await.is_err() {
                            return;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                round += 1;
            }
        });
        let limit = Duration::from_secs(5);
        screen::frame_where(&mut frames, Instant::now(), Duration::from_secs(30), |s| {
            s.contains("node0001")
        })
        .await?;
        let mut took = Vec::new();
        for _ in 0..12 {
            tokio::time::sleep(Duration::from_millis(130)).await;
            let pressed = Instant::now();
            kb.press(KeyCode::Char('?'));
            took.push(
                screen::frame_where(&mut frames, pressed, limit, |s| s.contains(" Keys ")).await?,
            );
            tokio::time::sleep(Duration::from_millis(130)).await;
            let pressed = Instant::now();
            kb.press(KeyCode::Esc);
            took.push(
                screen::frame_where(&mut frames, pressed, limit, |s| !s.contains(" Keys ")).await?,
            );
        }
        feed.abort();
        kb.close();
        drop((tx, session));
        let _ = cockpit.await;
        Some(took)
    })
}

fn cockpit_rows(t: &mut Table) {
    eprintln!("one frame and key → screen at 1,000 nodes ...");
    let (Ok(big), Ok(small)) = (nodes::session(1000), nodes::session(10)) else {
        t.row(
            "one frame, 120x40, 1,000 nodes",
            "not measured".into(),
            "≤ 2 ms",
            None,
        );
        return;
    };
    match (frame_time(&big), frame_time(&small)) {
        (Some(b), Some(s)) => t.row(
            "one frame, 120x40, 1,000 nodes",
            format!("{} (10 nodes: {})", ms(b), ms(s)),
            "≤ 2 ms, independent of rows not shown",
            Some(b <= Duration::from_millis(2) && b.as_secs_f64() <= s.as_secs_f64() * 1.5),
        ),
        _ => t.row(
            "one frame, 120x40, 1,000 nodes",
            "not measured".into(),
            "≤ 2 ms",
            None,
        ),
    }
    match key_to_screen(big, 1000) {
        Some(took) => {
            let max = took.iter().max().copied().unwrap_or_default();
            let med = median(took).unwrap_or_default();
            t.row(
                "key → screen at 1,000 nodes (samples streaming)",
                format!("median {}, max {}", ms(med), ms(max)),
                "≤ 16 ms",
                Some(med <= Duration::from_millis(16)),
            );
        }
        None => t.row(
            "key → screen at 1,000 nodes (samples streaming)",
            "not measured".into(),
            "≤ 16 ms",
            None,
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Journals

fn journal_rows(t: &mut Table, dir: &Path) {
    let mut generated = Vec::new();
    for n in [10_000usize, 100_000, 1_000_000] {
        let start = Instant::now();
        match journals::generate(dir, n) {
            Ok(g) => {
                eprintln!(
                    "generated {} events ({}) in {:.1} s",
                    g.events,
                    mb(g.bytes),
                    start.elapsed().as_secs_f64()
                );
                generated.push(g);
            }
            Err(e) => eprintln!("cannot generate a {n}-event journal: {e}"),
        }
    }
    let find = |n: usize| generated.iter().find(|g| g.events == n);

    // Opening: reading and checking every line.
    let mut opened = Vec::new();
    for g in &generated {
        let (r, took, held) =
            time_heap(|| flightdeck::journal::read(&g.path).map(|j| j.events.len()));
        if r.is_ok() {
            opened.push(format!("{}k {} / {}", g.events / 1000, ms(took), mb(held)));
        }
    }
    t.row(
        "open a journal (read + check every line): 10k, 100k, 1M",
        opened.join("; "),
        "1M in ≤ 1 s",
        None,
    );

    // report, 100k and 1M (memory independent of length).
    let mut rep = Vec::new();
    for n in [100_000usize, 1_000_000] {
        if let Some(g) = find(n) {
            let (r, took, held) = time_heap(|| {
                flightdeck::report::render(&g.path, flightdeck::report::ReportFormat::Md)
            });
            if r.is_ok() {
                rep.push((n, took, held));
            }
        }
    }
    match (rep.first(), rep.get(1)) {
        (Some(&(_, _, h100)), Some(&(_, took, held))) => t.row(
            "`report`, 1M events",
            format!("{} / {} (100k: {})", ms(took), mb(held), mb(h100)),
            "≤ 1 s, memory independent of length",
            Some(took <= Duration::from_secs(1) && held <= h100.saturating_mul(2).max(20_000_000)),
        ),
        _ => t.row("`report`, 1M events", "not measured".into(), "≤ 1 s", None),
    }

    if let Some(g) = find(1_000_000) {
        eprintln!("replay 1M ...");
        match replay_figures(&g.path, g.events) {
            Some(r) => {
                t.row(
                    "`replay`, 1M events: first frame / memory",
                    format!(
                        "{} / {} (peak {} while folding it all in the background: done at {})",
                        ms(r.first),
                        mb(r.held_first),
                        mb(r.peak),
                        ms(r.folded)
                    ),
                    "≤ 1 s / ≤ 300 MB",
                    Some(r.first <= Duration::from_secs(1) && r.peak <= 300_000_000),
                );
                t.row(
                    "`replay` seek to end, 1M (key → frame)",
                    format!("{} (once folded)", ms(r.seek)),
                    "≤ 50 ms",
                    Some(r.seek <= Duration::from_millis(50)),
                );
            }
            None => t.row(
                "`replay`, 1M events",
                "not measured".into(),
                "≤ 1 s / ≤ 300 MB",
                None,
            ),
        }
    }

    if let Some(g) = find(100_000) {
        resume_row(t, dir, &g.path, 1);
    }
}

/// The `resume` row alone (`SCALE_ONLY=resume`): a 100k-event journal, resumed `runs` times
/// (the median, with the range when more than once).
fn resume_only(t: &mut Table, dir: &Path) {
    match journals::generate(dir, 100_000) {
        Ok(g) => resume_row(t, dir, &g.path, 3),
        Err(e) => eprintln!("cannot generate a 100k-event journal: {e}"),
    }
}

fn resume_row(t: &mut Table, dir: &Path, journal: &Path, runs: usize) {
    eprintln!("resume 100k ...");
    let mut got: Vec<(Duration, u64)> = (0..runs)
        .filter_map(|_| resume_figures(dir, journal))
        .collect();
    got.sort();
    let (Some(&(took, held)), Some(first), Some(last)) =
        (got.get(got.len() / 2), got.first(), got.last())
    else {
        t.row(
            "`resume`, 100k events",
            "not measured".into(),
            "≤ 300 ms",
            None,
        );
        return;
    };
    let range = if got.len() > 1 {
        format!(" (median of {}: {}–{})", got.len(), ms(first.0), ms(last.0))
    } else {
        String::new()
    };
    t.row(
        "`resume`, 100k events → the interrupted prompt on screen",
        format!("{} / {}{range}", ms(took), mb(held)),
        "≤ 300 ms",
        Some(took <= Duration::from_millis(300)),
    );
}

struct ReplayFigures {
    /// Open → the first frame, and the heap held by then.
    first: Duration,
    held_first: u64,
    /// Open → every event folded by the background reader.
    folded: Duration,
    /// `G` → the frame at the last event, once folded.
    seek: Duration,
    /// The heap's peak over all of it.
    peak: u64,
}

/// The replay cockpit on a journal: open → first frame (and the heap held by then); once the
/// background fold has read the whole journal, `G` → the frame at the last event.
fn replay_figures(path: &Path, events: usize) -> Option<ReplayFigures> {
    use flightdeck::replay::player::{self, ReplayOptions};
    let rt = runtime()?;
    let path = path.to_path_buf();
    rt.block_on(async move {
        let mark = heap::mark();
        let start = Instant::now();
        let (client, control) = player::open(&path, ReplayOptions::default()).ok()?;
        let timeline = control.timeline().clone();
        let (backend, mut frames) = screen::Screen::new(120, 40);
        let (kb, input) = sticky_input::sticky_input();
        let cockpit = tokio::spawn(async move {
            let mut term = Terminal::new(backend).ok()?;
            flightdeck::tui::run_replay_on(
                &mut term,
                client,
                options(TuiRole::Replay),
                input,
                control,
            )
            .await
            .ok()
        });
        let first = screen::frame_where(&mut frames, start, Duration::from_secs(120), |s| {
            s.contains("event ")
        })
        .await?;
        let held_first = heap::peak_since(mark);
        let tl = timeline.clone();
        tokio::task::spawn_blocking(move || tl.wait_folded())
            .await
            .ok()?;
        let folded = start.elapsed();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let end = format!("event {events}/{events}");
        let pressed = Instant::now();
        kb.press(KeyCode::Char('G'));
        let seek = screen::frame_where(&mut frames, pressed, Duration::from_secs(30), |s| {
            s.contains(&end)
        })
        .await;
        let peak = heap::peak_since(mark);
        kb.close();
        let _ = cockpit.await;
        drop(timeline);
        Some(ReplayFigures {
            first,
            held_first,
            folded,
            seek: seek?,
            peak,
        })
    })
}

/// `resume` of a journal whose session died mid-action: from the call to the frame that shows
/// the interrupted step's prompt.
fn resume_figures(dir: &Path, journal: &Path) -> Option<(Duration, u64)> {
    let copy = dir.join("resume.jsonl");
    std::fs::copy(journal, &copy).ok()?;
    let rt = runtime()?;
    rt.block_on(async move {
        let mark = heap::mark();
        let start = Instant::now();
        let task = flightdeck::engine::session::resume(&copy, None, "bench", false).ok()?;
        // As `resume` opens its cockpit: from the engine's fold (`commands::cockpit`).
        let (state, client) = task.handle.attach_folded("bench", true).await.ok()?;
        let (backend, mut frames) = screen::Screen::new(120, 40);
        let (kb, input) = sticky_input::sticky_input();
        let cockpit = tokio::spawn(async move {
            let mut term = Terminal::new(backend).ok()?;
            let opts = options(TuiRole::Driver);
            flightdeck::tui::run_on(&mut term, client, Some(state), opts, input)
                .await
                .ok()
        });
        let took = screen::frame_where(&mut frames, start, Duration::from_secs(60), |s| {
            s.contains("was interrupted")
        })
        .await;
        let held = heap::peak_since(mark);
        kb.close();
        let _ = cockpit.await;
        task.handle.shutdown().await;
        let _ = task.join.await;
        Some((took?, held))
    })
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported (one table).
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("no temp dir: {e}");
            return;
        }
    };
    let began = Instant::now();
    let mut t = Table(Vec::new());
    eprintln!("flightdeck at scale (issue 16); this takes about five minutes");
    // `SCALE_ONLY=processes,cockpit,journals` (any of them) runs a part of the table;
    // `resume` runs the resume row alone (a part of `journals`), three times.
    let only = std::env::var("SCALE_ONLY").unwrap_or_default();
    let part = |name: &str| only.is_empty() || only.split(',').any(|p| p.trim() == name);
    if part("processes") {
        let p = processes(dir.path());
        process_rows(&mut t, p);
    }
    if part("cockpit") {
        cockpit_rows(&mut t);
    }
    if part("journals") {
        journal_rows(&mut t, dir.path());
    } else if part("resume") {
        resume_only(&mut t, dir.path());
    }
    println!();
    t.print();
    println!(
        "\n{} of {} goals met; {:.0} s in all. Machine: {} cores, load average {}.",
        t.0.iter().filter(|r| r.met == Some(true)).count(),
        t.0.iter().filter(|r| r.met.is_some()).count(),
        began.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
            .unwrap_or_else(|| "?".into()),
    );
}
