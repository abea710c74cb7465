use std::process::ExitCode;

use clap::Parser;
use flightdeck::cli::{Cli, Command};
use flightdeck::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = flightdeck::logging::init();
    // Before anything opens sockets: 1,000 probed nodes need more than 1,024 descriptors.
    match flightdeck::limits::raise_open_files() {
        flightdeck::limits::OpenFiles::Failed(why) => eprintln!("flightdeck: {why}"),
        other => tracing::debug!(?other, "open-files limit"),
    }
    // One thread runs a process whose engine has no terminal beside it (the detached session
    // server) or that has no engine (a cockpit or observer over the socket, replay, plan): what
    // it does is I/O, and each further thread only handed wake-ups over — every event crossed
    // threads, a futex wake each way (README, Performance: the idle figures). Where the engine
    // shares the process with a terminal (`run --foreground` / `--headless`, `resume`), a write
    // to a stalled terminal (an SSH link with a full buffer, a paused pager) blocks its thread:
    // the engine's timeouts, probes and journal keep a worker of their own there.
    let engine_beside_a_terminal = match &cli.command {
        Some(Command::Run(a)) => (a.foreground || a.headless) && !a.serve_internal,
        Some(Command::Resume(_)) => true,
        _ => false,
    };
    let mut builder = if engine_beside_a_terminal {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("flightdeck: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::Check(a)) => commands::check::run(&a),
        Some(Command::Plan(a)) => runtime.block_on(commands::plan::run_async(a)),
        Some(Command::Run(a)) => runtime.block_on(commands::run::run(a)),
        Some(Command::Resume(a)) => runtime.block_on(commands::run::resume(a)),
        Some(Command::Lab(a)) => flightdeck::lab::cli::run(&a),
        Some(Command::Sessions) => commands::join::sessions(),
        Some(Command::Journals(a)) => commands::journals::run(a.dir.as_deref()),
        Some(Command::Join(a)) => runtime.block_on(commands::join::run(a)),
        Some(Command::Replay(a)) => runtime.block_on(commands::replay::run(a)),
        Some(Command::Report(a)) => flightdeck::report::run(
            &a.journal,
            a.format,
            flightdeck::journal::ReadOptions {
                skip_bad_lines: a.skip_bad_lines,
            },
        ),
        Some(Command::Import(a)) => commands::import::run(&a),
        None => {
            let mut args = commands::run::default_args();
            args.theme = cli.theme;
            args.alerts = cli.alerts;
            runtime.block_on(commands::run::run(args))
        }
    }
}
