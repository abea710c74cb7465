//! The command line: argument definitions and dispatch. Each subcommand's work lives in its own
//! module; this file only parses and routes.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::tui::AlertConfig;

#[derive(Debug, Parser)]
#[command(
    name = "flightdeck",
    version,
    about = "A terminal cockpit for driving database-cluster upgrades by hand, safely.",
    long_about = "A terminal cockpit for driving database-cluster upgrades by hand, safely.\n\n\
                  With no subcommand, opens the cockpit on a fresh built-in lab cluster running \
                  the default procedure."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Theme (name or file) for the default cockpit.
    #[arg(long, env = "FLIGHTDECK_THEME")]
    pub theme: Option<String>,
    /// Alerts for the default cockpit (see `run --help`).
    #[arg(long, env = "FLIGHTDECK_ALERTS", default_value = "bell,title", value_parser = AlertConfig::parse)]
    pub alerts: AlertConfig,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a procedure (and a target): every error with file:line:col; nothing runs.
    Check(CheckArgs),
    /// Print the fully expanded plan: every step, command and request, downtime, undo.
    Plan(PlanArgs),
    /// Run a procedure against a target (or a fresh lab) in the cockpit or headless.
    Run(RunArgs),
    /// Resume a session from its journal (interrupted actions are never re-run silently).
    Resume(ResumeArgs),
    /// Start the built-in training cluster in the foreground.
    Lab(LabArgs),
    /// List live sessions on this machine.
    Sessions,
    /// List recorded sessions (journals): procedure, target, start, outcome, path.
    Journals(JournalsArgs),
    /// Attach to a live session (as an observer unless nobody drives and --drive is given).
    Join(JoinArgs),
    /// Replay a recorded session in the cockpit, for training and post-mortems.
    Replay(ReplayArgs),
    /// The change record of a session: timeline, durations, downtime windows, notes.
    Report(ReportArgs),
    /// Draft a procedure from a runbook (Markdown, text or HTML): its steps, its commands as
    /// `run` actions, every guess marked `# REVIEW:`. Nothing in the runbook is run.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The runbook: Markdown or plain text (`.md`, `.txt`, ...) or HTML (`.html`).
    pub runbook: PathBuf,
    /// Write the draft here (default: standard output). An existing file is kept unless
    /// --force.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Overwrite the --output file if it exists.
    #[arg(long, requires = "output")]
    pub force: bool,
    /// Read the runbook as this format (default: from its extension; `.html`/`.htm` is HTML).
    #[arg(long, value_enum)]
    pub format: Option<crate::import::Format>,
    /// The procedure's name (default: from the file name).
    #[arg(long)]
    pub name: Option<String>,
    /// The product (default: the file name's first word, marked for review).
    #[arg(long)]
    pub product: Option<String>,
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Session name (default: the only live session).
    pub name: Option<String>,
    /// A label shown to the others (default: your OS user name): letters and digits of any
    /// script, spaces and - _ . @ + ', at most 32 characters.
    #[arg(long = "as", value_parser = parse_label)]
    pub label: Option<String>,
    /// Drive if nobody drives (otherwise observe; ask for control with `c`).
    #[arg(long)]
    pub drive: bool,
    /// Take control on joining, with this reason (journaled): the session's owner at any
    /// time; another operator once the driver's client has shown no sign of life for the
    /// session's takeover delay (`run --takeover-after`, default 60 s).
    #[arg(long, value_name = "REASON")]
    pub take_control: Option<String>,
    #[arg(long, env = "FLIGHTDECK_THEME")]
    pub theme: Option<String>,
    /// Bell and terminal title when a prompt waits for you, a step fails, the session ends:
    /// `bell,title`, `bell`, `title` or `none`.
    #[arg(long, env = "FLIGHTDECK_ALERTS", default_value = "bell,title", value_parser = AlertConfig::parse)]
    pub alerts: AlertConfig,
}

#[derive(Debug, Args)]
pub struct JournalsArgs {
    /// The folder to list (default: the data directory's journals).
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    pub journal: PathBuf,
    /// Playback speed, 0.25 to 64.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Start at this step (key like `drain@node2`, or its number).
    #[arg(long)]
    pub from: Option<String>,
    /// Training mode: stop before each operator decision and ask what you would do.
    #[arg(long)]
    pub quiz: bool,
    /// Where the quiz writes the trainee's answers and score (default: JOURNAL.quiz.json).
    #[arg(long)]
    pub quiz_out: Option<PathBuf>,
    /// Idle gaps longer than this many seconds are compressed to it.
    #[arg(long, default_value_t = 5)]
    pub idle_cap: u64,
    /// Leave out damaged journal lines (each is named) instead of refusing the journal.
    #[arg(long)]
    pub skip_bad_lines: bool,
    #[arg(long, env = "FLIGHTDECK_THEME")]
    pub theme: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    pub journal: PathBuf,
    #[arg(long, value_enum, default_value = "md")]
    pub format: crate::report::ReportFormat,
    /// Leave out damaged journal lines (each is named) instead of refusing the journal.
    #[arg(long)]
    pub skip_bad_lines: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    pub procedure: PathBuf,
    #[arg(long)]
    pub target: Option<PathBuf>,
    /// Refuse (exit 2) what is otherwise a warning: a secret in a command line.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    pub procedure: PathBuf,
    #[arg(long, required_unless_present = "lab")]
    pub target: Option<PathBuf>,
    /// Plan against a fresh lab started for the occasion (then stopped).
    #[arg(long, conflicts_with = "target")]
    pub lab: bool,
    /// With --lab: the lab personality file to play (default: the built-in product, else
    /// `labs/<product>.toml` next to the procedure).
    #[arg(long, requires = "lab")]
    pub personality: Option<PathBuf>,
    /// The lab's load balancer when --lab: the embedded one or a real HAProxy.
    #[arg(long, default_value = "embedded", value_parser = ["embedded", "haproxy"])]
    pub lb: String,
    /// The cluster's current version, when the target cannot tell.
    #[arg(long)]
    pub from: Option<String>,
    /// The version to upgrade to (overrides the procedure's `to`).
    #[arg(long)]
    pub to: Option<String>,
    /// `text` (default), `json` for tools, `md` for change review.
    #[arg(long, value_enum, default_value = "text")]
    pub format: crate::plan::export::PlanFormat,
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    pub procedure: PathBuf,
    #[arg(long, required_unless_present = "lab")]
    pub target: Option<PathBuf>,
    /// Run against a fresh lab (product taken from the procedure).
    #[arg(long, conflicts_with = "target")]
    pub lab: bool,
    /// With --lab: the lab personality file to play (default: the built-in product, else
    /// `labs/<product>.toml` next to the procedure).
    #[arg(long, requires = "lab")]
    pub personality: Option<PathBuf>,
    /// Lab size when --lab (default: 3, or the size the procedure is written for: 1 for
    /// milvus-standalone, a single server).
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Lab load in requests per second when --lab.
    #[arg(long, default_value_t = 0)]
    pub load: u32,
    /// The lab's load balancer when --lab: the embedded one or a real HAProxy (installed).
    #[arg(long, default_value = "embedded", value_parser = ["embedded", "haproxy"])]
    pub lb: String,
    /// With --lab: a fault to stage (repeatable). `KIND:NODE` is in force from the lab's
    /// start; `KIND:NODE@step=N` takes effect when step N (its number, or its key such as
    /// `start@node2`) starts, `KIND:NODE@undo=N` when step N's undo starts (a rollback), and
    /// the journal records when it fired. Kinds: crash, slow (`slow:NODE:500ms`), flaky
    /// (`flaky:NODE:0.3`), fail-migration, never-ready, deny-writes, no-sync.
    #[arg(long, value_parser = parse_fault)]
    pub fault: Vec<crate::lab::staging::FaultSpec>,
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long)]
    pub to: Option<String>,
    /// Journal file (default: the data directory).
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// Confirm every step automatically, except `phrase` steps. Never answers a failure.
    #[arg(long)]
    pub yes: bool,
    /// With --yes, also confirm `phrase` steps.
    #[arg(long, requires = "yes")]
    pub yes_phrases: bool,
    /// Print events as lines instead of opening the cockpit.
    #[arg(long)]
    pub headless: bool,
    /// Headless: what to do when a step or gate fails: stop (exit non-zero) or roll back.
    #[arg(long, default_value = "stop", value_parser = ["stop", "rollback"])]
    pub on_failure: String,
    /// Theme name or file for the cockpit.
    #[arg(long, env = "FLIGHTDECK_THEME")]
    pub theme: Option<String>,
    /// Bell and terminal title when a prompt waits for you, a step fails, the session ends:
    /// `bell,title`, `bell`, `title` or `none`.
    #[arg(long, env = "FLIGHTDECK_ALERTS", default_value = "bell,title", value_parser = AlertConfig::parse)]
    pub alerts: AlertConfig,
    /// Keep the session in this process (it ends when the cockpit closes) instead of a
    /// session server that outlives the terminal and that others can join.
    #[arg(long)]
    pub foreground: bool,
    /// Session name for `flightdeck join` (default: generated).
    #[arg(long)]
    pub name: Option<String>,
    /// Let members of this group join the session too.
    #[arg(long)]
    pub allow_group: Option<String>,
    /// Seconds a driver's client may show no sign of life before another operator may take
    /// control (with a reason). The session's owner may take control at any time.
    #[arg(long, default_value_t = 60)]
    pub takeover_after: u64,
    /// A label shown to the others (default: your OS user name): letters and digits of any
    /// script, spaces and - _ . @ + ', at most 32 characters.
    #[arg(long = "as", value_parser = parse_label)]
    pub label: Option<String>,
    /// Internal: be the detached session server.
    #[arg(long, hide = true)]
    pub serve_internal: bool,
    /// Internal: the no-argument demo (`q` offers to end it, which stops its lab).
    #[arg(long, hide = true)]
    pub demo: bool,
}

/// An `--as` label as the engine will check it at the join (`Identity::check_label`), checked
/// before anything starts: a refused label is a usage error (exit 2), not a session server left
/// running that its owner's cockpit could not join.
fn parse_label(s: &str) -> Result<String, String> {
    crate::engine::identity::Identity::current().check_label(s)?;
    Ok(s.to_string())
}

/// A `--fault` as clap checks it: a bad kind or syntax is a usage error (exit 2).
fn parse_fault(s: &str) -> Result<crate::lab::staging::FaultSpec, String> {
    s.parse().map_err(|e: crate::lab::LabError| e.to_string())
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    pub journal: PathBuf,
    /// The target file (default: the one named in the journal header, if it still exists).
    #[arg(long)]
    pub target: Option<PathBuf>,
    #[arg(long)]
    pub headless: bool,
    #[arg(long, env = "FLIGHTDECK_THEME")]
    pub theme: Option<String>,
    /// Bell and terminal title when a prompt waits for you, a step fails, the session ends:
    /// `bell,title`, `bell`, `title` or `none`.
    #[arg(long, env = "FLIGHTDECK_ALERTS", default_value = "bell,title", value_parser = AlertConfig::parse)]
    pub alerts: AlertConfig,
    /// Leave out damaged journal lines (each is named, and the resume journals which) so the
    /// session can still be finished.
    #[arg(long)]
    pub skip_bad_lines: bool,
}

#[derive(Debug, Args, Clone)]
pub struct LabArgs {
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    #[arg(long, default_value = "generic", conflicts_with = "personality")]
    pub product: String,
    /// A product made of data: the lab personality file to play (e.g.
    /// procedures/labs/elasticsearch.toml); its errors are reported as file:line:col.
    #[arg(long)]
    pub personality: Option<PathBuf>,
    /// Version the nodes start at (default: the product's usual "old" version).
    #[arg(long)]
    pub version: Option<String>,
    /// Data directory (default: a fresh temporary one, removed on exit).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Write the lab's target file here.
    #[arg(long)]
    pub target_out: Option<PathBuf>,
    /// Requests per second sent through the load balancer.
    #[arg(long, default_value_t = 0)]
    pub load: u32,
    /// Faults to stage, e.g. `crash:node2`, `slow:node1:500ms`, `flaky:node3:0.3`,
    /// `fail-migration:node2`.
    #[arg(long)]
    pub fault: Vec<String>,
    /// Load balancer: the embedded one or a real HAProxy.
    #[arg(long, default_value = "embedded", value_parser = ["embedded", "haproxy"])]
    pub lb: String,
    /// Weaviate: the lab collection's replication factor (default: a replica on every node);
    /// `PUT /v1/schema/LabObject` raises it later, as on a real cluster.
    #[arg(long)]
    pub replication_factor: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--theme` is taken by every command that opens the cockpit, the default (no command)
    /// included, where it comes before any command (issue 14). `FLIGHTDECK_THEME` is the same
    /// option's environment form: `e2e_cockpit::the_light_theme_degrades_to_the_terminals_colour_depth`
    /// runs a replay with it.
    #[test]
    fn every_cockpit_command_takes_a_theme() {
        let theme_of = |args: &[&str]| -> Option<String> {
            let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            match cli.command {
                None => cli.theme,
                Some(Command::Run(a)) => a.theme,
                Some(Command::Resume(a)) => a.theme,
                Some(Command::Join(a)) => a.theme,
                Some(Command::Replay(a)) => a.theme,
                Some(other) => panic!("{args:?}: not a cockpit command: {other:?}"),
            }
        };
        let light = Some("light".to_string());
        assert_eq!(theme_of(&["flightdeck", "--theme", "light"]), light);
        assert_eq!(
            theme_of(&["flightdeck", "run", "p.toml", "--lab", "--theme", "light"]),
            light
        );
        assert_eq!(
            theme_of(&["flightdeck", "resume", "j.jsonl", "--theme", "light"]),
            light
        );
        assert_eq!(theme_of(&["flightdeck", "join", "--theme", "light"]), light);
        assert_eq!(
            theme_of(&["flightdeck", "replay", "j.jsonl", "--theme", "light"]),
            light
        );
    }

    /// `run --as` and `join --as` refuse a label the engine would refuse at the join, with the
    /// engine's reason, before a session server starts.
    #[test]
    fn a_label_is_checked_before_anything_starts() {
        for args in [
            &["flightdeck", "join", "--as", "bob \u{FF08}alice\u{FF09}"][..],
            &[
                "flightdeck",
                "run",
                "p.toml",
                "--lab",
                "--as",
                "bob \u{202E}ecila",
            ],
        ] {
            let e = Cli::try_parse_from(args).expect_err("refused");
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{e}");
            assert!(
                e.to_string().contains("letters and digits of any script"),
                "{e}"
            );
        }
        let cli = Cli::try_parse_from(["flightdeck", "join", "--as", "Carol O'Brien"]).unwrap();
        let Some(Command::Join(a)) = cli.command else {
            panic!("not a join");
        };
        assert_eq!(a.label.as_deref(), Some("Carol O'Brien"));
    }
}
