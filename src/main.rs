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
    // One thread runs everything: what flightdeck does is I/O — probes, sockets, the journal —
    // and anything that blocks goes to the blocking pool. Each further thread only handed
    // wake-ups over: the command's future (the cockpit's loop, the session server's watch for
    // its end) ran on the thread that blocks on it while the sockets and timers it waits on
    // were polled by a worker, so every event crossed threads, a futex wake each way (the
    // server's watch woke for every probe sample). README, Performance: the idle figures.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
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
