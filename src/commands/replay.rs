//! `flightdeck replay JOURNAL`: a recorded session in the cockpit, read-only, on its original
//! timing (idle gaps compressed) with player keys (pause, speed, step, seek), or as a quiz for
//! trainees (in the cockpit on a terminal, line by line otherwise).

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::cli::ReplayArgs;
use crate::replay::player::{self, ReplayOptions};
use crate::replay::quiz::{self, Quiz};
use crate::replay::timeline::Timeline;
use crate::tui::{self, Theme, TuiOptions, TuiRole};
use std::sync::Arc;

pub async fn run(args: ReplayArgs) -> ExitCode {
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let read_opts = crate::journal::ReadOptions {
        skip_bad_lines: args.skip_bad_lines,
    };
    if args.quiz && !interactive {
        let journal = args.journal.clone();
        let out = args.quiz_out.clone();
        return tokio::task::spawn_blocking(move || quiz::run(&journal, out.as_deref(), read_opts))
            .await
            .unwrap_or(ExitCode::FAILURE);
    }
    let left_out = |skipped: &[(usize, String)]| {
        for (line, why) in skipped {
            crate::eprintln_clean!(
                "flightdeck replay: {}:{line}: left out: {why}",
                args.journal.display()
            );
        }
    };
    // A quiz walks every decision up front, so it reads the journal whole; a replay indexes
    // it and reads events as they play (a long journal opens at once).
    let timeline = if args.quiz {
        match crate::journal::read_with(&args.journal, read_opts) {
            Ok(j) => {
                left_out(&j.skipped);
                Err(j)
            }
            Err(e) => {
                crate::eprintln_clean!("flightdeck replay: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        let idle_cap_ms = args.idle_cap.saturating_mul(1000);
        match Timeline::open(&args.journal, idle_cap_ms, read_opts) {
            Ok(t) => {
                left_out(t.skipped());
                Ok(Arc::new(t))
            }
            Err(e) => {
                crate::eprintln_clean!("flightdeck replay: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let mut quiz = timeline.as_ref().err().map(Quiz::new);
    if let Some(q) = &quiz {
        if q.is_empty() {
            crate::eprintln_clean!(
                "flightdeck replay: no operator decisions in {} (a journal recorded with --yes \
                 has none): nothing to quiz on",
                args.journal.display()
            );
            return ExitCode::SUCCESS;
        }
        if args.from.is_some() {
            eprintln!("flightdeck replay: --from is ignored with --quiz (the questions start at the beginning)");
        }
    }
    let opts = ReplayOptions {
        speed: args.speed,
        // A quiz asks every decision, so it starts at the start.
        from_step: args.from.clone().filter(|_| quiz.is_none()),
        idle_cap_ms: args.idle_cap.saturating_mul(1000),
    };
    let started = match timeline {
        Ok(t) => player::start_timeline(t, opts),
        Err(journal) => player::start(journal, opts),
    };
    let (client, control) = match started {
        Ok(x) => x,
        Err(e) => {
            crate::eprintln_clean!("flightdeck replay: {e}");
            return ExitCode::from(2);
        }
    };
    let (theme, _) = Theme::resolve(args.theme.as_deref());
    let opts = TuiOptions {
        theme,
        // A replay never rings or retitles: nothing in it waits for anyone.
        alerts: crate::tui::AlertConfig::NONE,
        role: TuiRole::Replay,
        title: format!("replay · {}", args.journal.display()),
        demo: None,
    };
    let result = match &mut quiz {
        Some(q) => tui::run_quiz(client, opts, control.clone(), q).await,
        None => tui::run_replay(client, opts, control.clone()).await,
    };
    if let Err(e) = result {
        crate::eprintln_clean!("flightdeck: the cockpit failed: {e:#}");
        return ExitCode::FAILURE;
    }
    // Lines found damaged while playing and left out (the index's were said at the start).
    left_out(&control.timeline().left_out());
    if let Some(why) = control.timeline().damage() {
        crate::eprintln_clean!("flightdeck replay: the replay ended before a damaged line: {why}");
        return ExitCode::from(2);
    }
    let Some(q) = quiz else {
        return ExitCode::SUCCESS;
    };
    let out = args
        .quiz_out
        .clone()
        .unwrap_or_else(|| quiz::default_result_path(&args.journal));
    let result = q.result();
    if let Err(e) = result.write_result(&out) {
        crate::eprintln_clean!("flightdeck replay: {e}");
        return ExitCode::from(2);
    }
    println!(
        "Score: {}/{} matched the recorded operator ({} decisions). Result written to {}",
        result.matches,
        result.answers.len(),
        result.decisions,
        out.display()
    );
    ExitCode::SUCCESS
}
