//! `flightdeck run` and `flightdeck resume`: build the plan, start (or pick up) the engine, and
//! follow it in the cockpit or headless. `flightdeck` with no arguments is `run` of the default
//! procedure against a fresh lab under light load.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::check::{load_checked, EXIT_INVALID};
use crate::cli::{ResumeArgs, RunArgs};
use crate::engine::event::{AutoConfirm, Phase};
use crate::engine::lab_faults::{LabFaults, StagedFault};
use crate::engine::session::{self, EngineConfig, EngineTask};
use crate::lab::staging::FaultSpec;
use crate::lab::{Lab, LabConfig, LbKind, Product, Timing};
use crate::pairing::server::{serve_until_done, ServeOptions};
use crate::plan::expand::{build_plan, PlanOptions};
use crate::procedure::secret_argv::{
    print_warnings, secrets_in_argv, secrets_in_plan_argv, GOES_ON,
};
use crate::tui::AlertConfig;

/// The procedure `flightdeck` opens when given no arguments.
pub const DEFAULT_PROCEDURE: &str = "procedures/jahia-rolling.toml";
/// Its stand-in until the Jahia procedure exists in this checkout.
pub const FALLBACK_PROCEDURE: &str = "procedures/generic-rolling.toml";

pub fn default_args() -> RunArgs {
    let procedure = [DEFAULT_PROCEDURE, FALLBACK_PROCEDURE]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(FALLBACK_PROCEDURE));
    RunArgs {
        procedure,
        target: None,
        lab: true,
        personality: None,
        nodes: Some(3),
        load: 20,
        lb: "embedded".into(),
        fault: Vec::new(),
        from: None,
        to: None,
        journal: None,
        yes: false,
        yes_phrases: false,
        headless: false,
        on_failure: "stop".into(),
        theme: None,
        alerts: AlertConfig::default(),
        // Like `run`: the session (and its lab) live in a session server, so the demo can be
        // joined and a dropped terminal loses nothing; `q` offers to end it.
        foreground: false,
        name: None,
        allow_group: None,
        takeover_after: 60,
        label: None,
        serve_internal: false,
        demo: true,
    }
}

/// Lab timing: realistic for people, fast when `FLIGHTDECK_LAB_TIMING=fast` (tests, demos).
pub fn lab_timing() -> Timing {
    match std::env::var("FLIGHTDECK_LAB_TIMING").as_deref() {
        Ok("fast") => Timing::fast(),
        _ => Timing::realistic(),
    }
}

/// Gates shrink with the lab's delays when the lab runs fast.
pub fn lab_time_scale() -> f64 {
    match std::env::var("FLIGHTDECK_LAB_TIMING").as_deref() {
        Ok("fast") => 0.1,
        _ => 1.0,
    }
}

/// Where a session runs and who watches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Headless,
    /// In this process, with the cockpit; the session ends with it.
    Foreground,
    /// This process *is* the detached session server.
    Server,
}

pub async fn run(args: RunArgs) -> ExitCode {
    if !args.fault.is_empty() && !args.lab {
        eprintln!(
            "flightdeck run: --fault stages faults on the lab: it needs --lab (a real cluster \
             breaks on its own)"
        );
        return ExitCode::from(EXIT_INVALID);
    }
    let mode = if args.serve_internal {
        Mode::Server
    } else if args.headless {
        Mode::Headless
    } else if args.foreground {
        Mode::Foreground
    } else {
        return run_detached(args).await;
    };
    // A lab for this run, when asked: its product comes from the procedure.
    let mut lab = None;
    let target_path: PathBuf = if args.lab {
        let lab_cfg = LabRequest {
            nodes: args.nodes,
            load: args.load,
            lb: &args.lb,
            faults: &args.fault,
            personality: args.personality.as_deref(),
        };
        match start_lab(&args.procedure, &lab_cfg, &args.from, &args.to).await {
            Ok((l, path)) => {
                lab = Some(l);
                path
            }
            Err(code) => return code,
        }
    } else {
        match &args.target {
            Some(t) => t.clone(),
            None => {
                eprintln!("flightdeck run needs --target FILE or --lab");
                return ExitCode::from(EXIT_INVALID);
            }
        }
    };
    let admin = lab.as_ref().map(|l| l.admin_url());
    let code = run_with_target(&args, &target_path, mode, admin).await;
    if let Some(l) = lab {
        l.shutdown().await;
    }
    code
}

/// The lab `--lab` asks for: size, load, balancer (`embedded` or `haproxy`) and faults (those
/// without a step are staged at its start; the engine fires the others).
#[derive(Debug, Clone, Copy)]
pub struct LabRequest<'a> {
    /// `--nodes`; none: the size the procedure is written for ([`lab_nodes`]).
    pub nodes: Option<usize>,
    pub load: u32,
    pub lb: &'a str,
    pub faults: &'a [FaultSpec],
    /// `--personality FILE`: the data personality to play instead of the procedure's product.
    pub personality: Option<&'a Path>,
}

/// The balancer `--lb` names, refused (with how to install it) when it is HAProxy and HAProxy
/// is not installed.
pub fn lab_lb(lb: &str) -> Result<LbKind, ExitCode> {
    let kind = lb.parse::<LbKind>().map_err(|e| {
        crate::eprintln_clean!("flightdeck: {e}");
        ExitCode::from(EXIT_INVALID)
    })?;
    crate::lab::cli::require_haproxy(kind).map_err(|e| {
        crate::eprintln_clean!("flightdeck: --lb haproxy: {e}");
        ExitCode::FAILURE
    })?;
    Ok(kind)
}

/// Start a fresh lab for `procedure` (its product), write its target (with the lab-sized
/// overrides of the gates the procedure sizes for real stores), and return both.
pub async fn start_lab(
    procedure: &Path,
    req: &LabRequest<'_>,
    from: &Option<String>,
    to: &Option<String>,
) -> Result<(Lab, PathBuf), ExitCode> {
    let lp = crate::procedure::load::load_procedure(procedure).map_err(|d| {
        crate::eprintln_clean!("{d}");
        ExitCode::from(EXIT_INVALID)
    })?;
    let nodes = lab_nodes(req.nodes, &lp.procedure);
    let mut cfg =
        lab_config_for(procedure, &lp.procedure, req.personality, nodes).map_err(|e| {
            crate::eprintln_clean!("{e}");
            ExitCode::from(EXIT_INVALID)
        })?;
    // A fault about a node this lab will not have is refused before the lab starts.
    let names = cfg.node_names();
    for f in req.faults {
        f.check_node(&names).map_err(|e| {
            crate::eprintln_clean!("flightdeck: --fault: {e}");
            ExitCode::from(EXIT_INVALID)
        })?;
    }
    cfg.faults = req
        .faults
        .iter()
        .filter(|f| f.at.is_none())
        .map(|f| f.fault.clone())
        .collect();
    cfg.load_rps = req.load;
    cfg.lb = lab_lb(req.lb)?;
    // Versions not asked for: those the procedure's lab is written for, else the product's.
    let shape = crate::lab::target_seeds::lab_shape(&lp.procedure.name);
    cfg.to_version = to.clone().or(shape.map(|s| s.to.to_string()));
    cfg.version = from.clone().or(shape.map(|s| s.from.to_string()));
    let lab = Lab::start(cfg).await.map_err(|e| {
        crate::eprintln_clean!("flightdeck: cannot start the lab: {e}");
        ExitCode::FAILURE
    })?;
    let path = lab.data_dir().join("target.toml");
    if let Err(e) = lab.write_target_for(&lp.procedure, &path) {
        crate::eprintln_clean!("flightdeck: cannot write the lab target: {e}");
        lab.shutdown().await;
        return Err(ExitCode::FAILURE);
    }
    Ok((lab, path))
}

/// The faults of a lab run for the engine: every one journaled, those with a step resolved
/// against the plan (a step it does not have is refused: exit 2 before anything runs).
pub fn staged_faults(
    specs: &[FaultSpec],
    plan: &crate::plan::Plan,
    admin_url: String,
) -> Result<LabFaults, String> {
    let staged = specs
        .iter()
        .map(|f| {
            Ok(StagedFault {
                fault: f.fault.to_string(),
                step: f.resolve_step(plan).map_err(|e| e.to_string())?,
                phase: if f.undo { Phase::Undo } else { Phase::Do },
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(LabFaults { admin_url, staged })
}

async fn run_with_target(
    args: &RunArgs,
    target_path: &Path,
    mode: Mode,
    lab_admin: Option<String>,
) -> ExitCode {
    let (lp, target) = match load_checked(&args.procedure, Some(target_path)) {
        Ok((lp, Some(t))) => (lp, t),
        Ok((_, None)) => return ExitCode::from(EXIT_INVALID),
        Err(d) => {
            crate::eprintln_clean!("{d}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    // The detached server's stderr is its log: `run` warned in the terminal (`precheck`).
    if mode != Mode::Server {
        let warnings = secrets_in_argv(&lp, Some((target_path, &target)));
        print_warnings(&warnings, true);
    }
    let opts = PlanOptions {
        from_version: args.from.clone(),
        to_version: args.to.clone(),
        catalog_dir: Default::default(),
    };
    let plan = match build_plan(&lp, &target, &opts) {
        Ok(p) => p,
        Err(e) => {
            crate::eprintln_clean!("{}: {e}", args.procedure.display());
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let faults = match lab_admin {
        Some(url) => match staged_faults(&args.fault, &plan, url) {
            Ok(f) => f,
            Err(e) => {
                crate::eprintln_clean!("flightdeck: --fault: {e}");
                return ExitCode::from(EXIT_INVALID);
            }
        },
        None => LabFaults::default(),
    };
    if mode == Mode::Headless {
        if let Some(why) = crate::headless::refuse_two_person(&plan) {
            crate::eprintln_clean!("flightdeck run --headless: {why}");
            return ExitCode::from(EXIT_INVALID);
        }
    }
    // A group session's journal is readable by the group (see `journal::share_with_group`).
    let group = match &args.allow_group {
        Some(g) if mode == Mode::Server => match crate::pairing::peercred::group_gid(g) {
            Ok(gid) => Some(gid),
            Err(e) => {
                crate::eprintln_clean!("flightdeck: {e}");
                return ExitCode::from(EXIT_INVALID);
            }
        },
        _ => None,
    };
    let journal = args.journal.clone().unwrap_or_else(|| match group {
        Some(gid) => crate::journal::default_group_path(&plan.procedure, gid),
        None => crate::journal::default_path(&plan.procedure),
    });
    let auto = AutoConfirm {
        yes: args.yes,
        yes_phrases: args.yes_phrases,
        rollback_on_failure: args.on_failure == "rollback",
    };
    let cfg = EngineConfig {
        plan,
        target,
        auto,
        operator: super::operator_name(),
        journal: journal.clone(),
        observe: true,
        time_scale: if args.lab { lab_time_scale() } else { 1.0 },
    };
    let task = match session::start_with_faults(cfg, faults) {
        Ok(t) => t,
        Err(e) => {
            crate::eprintln_clean!("flightdeck: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(journal = %journal.display(), "session started");
    if let Some(gid) = group {
        if let Err(e) = crate::journal::share_with_group(&journal, gid, args.journal.is_none()) {
            tracing::warn!(error = %e, "cannot share the journal with the group");
        }
    }
    task.handle
        .set_takeover_after(Duration::from_secs(args.takeover_after))
        .await;
    match mode {
        Mode::Server => {
            let Some(name) = args.name.as_deref() else {
                eprintln!("--serve-internal needs --name");
                return ExitCode::from(EXIT_INVALID);
            };
            let opts = ServeOptions {
                demo: args.demo,
                ..ServeOptions::new(args.allow_group.clone())
            };
            match serve_until_done(task, name, opts, SERVER_GRACE).await {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("session server: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Mode::Headless => follow(task, true, None, AlertConfig::NONE).await,
        Mode::Foreground => follow(task, false, args.theme.as_deref(), args.alerts).await,
    }
}

/// How long a finished session's server waits for its last watcher before it exits.
const SERVER_GRACE: Duration = Duration::from_secs(120);

/// The default: start a session server detached from this terminal (it outlives an SSH drop),
/// then attach this terminal's cockpit to it as the driver.
async fn run_detached(args: RunArgs) -> ExitCode {
    // What can be checked here is checked here: the server's own errors only reach its log.
    if let Err(code) = precheck(&args).await {
        return code;
    }
    let name = args
        .name
        .clone()
        .unwrap_or_else(crate::pairing::names::generate);
    let mut server_args: Vec<OsString> = if args.demo {
        demo_server_args(&args)
    } else {
        std::env::args_os().skip(1).collect()
    };
    server_args.push("--serve-internal".into());
    if args.name.is_none() {
        server_args.push("--name".into());
        server_args.push(name.clone().into());
    }
    let spawned =
        tokio::task::spawn_blocking(move || crate::pairing::daemon::spawn_detached(server_args))
            .await;
    match spawned {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            crate::eprintln_clean!("flightdeck: the session server did not start: {e}");
            crate::eprintln_clean!("(its log: {})", crate::logging::log_path().display());
            return ExitCode::FAILURE;
        }
        Err(e) => {
            crate::eprintln_clean!("flightdeck: {e}");
            return ExitCode::FAILURE;
        }
    }
    super::join::attach(super::join::Attach {
        name: Some(&name),
        label: args.label.as_deref(),
        want_driver: true,
        take_control: None,
        theme: args.theme.as_deref(),
        alerts: args.alerts,
        demo: args.demo,
    })
    .await
}

/// The server's command line for the no-argument demo: `run` of the demo's procedure on a
/// fresh lab (the demo's own options — theme, alerts — are the cockpit's, not the server's).
fn demo_server_args(args: &RunArgs) -> Vec<OsString> {
    vec![
        "run".into(),
        args.procedure.clone().into_os_string(),
        "--lab".into(),
        "--nodes".into(),
        lab_nodes_or_default(args.nodes).to_string().into(),
        "--load".into(),
        args.load.to_string().into(),
        "--demo".into(),
    ]
}

/// A lab's size when neither `--nodes` nor the procedure says.
pub const DEFAULT_LAB_NODES: usize = 3;

fn lab_nodes_or_default(requested: Option<usize>) -> usize {
    requested.unwrap_or(DEFAULT_LAB_NODES)
}

/// The lab's size for `procedure`: `--nodes` when given, else the size the procedure is
/// written for ([`crate::lab::target_seeds::lab_shape`]: one server for milvus-standalone),
/// else [`DEFAULT_LAB_NODES`].
pub fn lab_nodes(
    requested: Option<usize>,
    procedure: &crate::procedure::model::Procedure,
) -> usize {
    requested
        .or_else(|| crate::lab::target_seeds::lab_shape(&procedure.name).map(|s| s.nodes))
        .unwrap_or(DEFAULT_LAB_NODES)
}

/// Validate the procedure (and the target, when one is given) before detaching.
async fn precheck(args: &RunArgs) -> Result<(), ExitCode> {
    if args.lab {
        lab_lb(&args.lb)?;
    }
    let (lp, target) = load_checked(&args.procedure, args.target.as_deref()).map_err(|d| {
        crate::eprintln_clean!("{d}");
        ExitCode::from(EXIT_INVALID)
    })?;
    let warnings = secrets_in_argv(&lp, args.target.as_deref().zip(target.as_ref()));
    print_warnings(&warnings, true);
    // A fault's node is checked against the nodes the lab will have; one staged for a step
    // against the plan, which needs the lab's target: a throwaway lab, as `plan --lab` starts.
    if args.lab && !args.fault.is_empty() {
        let names = lab_config_for(
            &args.procedure,
            &lp.procedure,
            args.personality.as_deref(),
            lab_nodes(args.nodes, &lp.procedure),
        )
        .map_err(|e| {
            crate::eprintln_clean!("{e}");
            ExitCode::from(EXIT_INVALID)
        })?
        .node_names();
        for f in &args.fault {
            f.check_node(&names).map_err(|e| {
                crate::eprintln_clean!("flightdeck: --fault: {e}");
                ExitCode::from(EXIT_INVALID)
            })?;
        }
    }
    if args.lab && args.fault.iter().any(|f| f.at.is_some()) {
        let req = LabRequest {
            nodes: args.nodes,
            load: 0,
            lb: "embedded",
            faults: &args.fault,
            personality: args.personality.as_deref(),
        };
        let (lab, target) = start_lab(&args.procedure, &req, &args.from, &args.to).await?;
        let checked = check_faults_on(args, &target, lab.admin_url());
        lab.shutdown().await;
        checked?;
    }
    if let Some(target) = target {
        let opts = PlanOptions {
            from_version: args.from.clone(),
            to_version: args.to.clone(),
            catalog_dir: Default::default(),
        };
        build_plan(&lp, &target, &opts).map_err(|e| {
            crate::eprintln_clean!("{}: {e}", args.procedure.display());
            ExitCode::from(EXIT_INVALID)
        })?;
    }
    Ok(())
}

/// The staged faults' steps against the plan on a lab target.
fn check_faults_on(args: &RunArgs, target_path: &Path, admin: String) -> Result<(), ExitCode> {
    let (lp, target) = load_checked(&args.procedure, Some(target_path)).map_err(|d| {
        crate::eprintln_clean!("{d}");
        ExitCode::from(EXIT_INVALID)
    })?;
    let Some(target) = target else {
        return Err(ExitCode::from(EXIT_INVALID));
    };
    let opts = PlanOptions {
        from_version: args.from.clone(),
        to_version: args.to.clone(),
        catalog_dir: Default::default(),
    };
    let plan = build_plan(&lp, &target, &opts).map_err(|e| {
        crate::eprintln_clean!("{}: {e}", args.procedure.display());
        ExitCode::from(EXIT_INVALID)
    })?;
    staged_faults(&args.fault, &plan, admin).map_err(|e| {
        crate::eprintln_clean!("flightdeck: --fault: {e}");
        ExitCode::from(EXIT_INVALID)
    })?;
    Ok(())
}

pub async fn resume(args: ResumeArgs) -> ExitCode {
    let target = match &args.target {
        Some(p) => match crate::target_load::load_target(p) {
            Ok(t) => Some(t),
            Err(d) => {
                crate::eprintln_clean!("{d}");
                return ExitCode::from(EXIT_INVALID);
            }
        },
        None => None,
    };
    let opts = crate::journal::ReadOptions {
        skip_bad_lines: args.skip_bad_lines,
    };
    match session::resume_with(&args.journal, target, &super::operator_name(), true, opts) {
        Ok(task) => {
            if let Ok(state) = task.handle.snapshot().await {
                let warnings = secrets_in_plan_argv(&state.plan);
                for w in &warnings {
                    crate::eprintln_clean!("{}: warning: {w}", args.journal.display());
                }
                if !warnings.is_empty() {
                    crate::eprintln_clean!("{GOES_ON}");
                }
            }
            follow(task, args.headless, args.theme.as_deref(), args.alerts).await
        }
        Err(session::EngineError::Journal(crate::journal::JournalError::Locked { path })) => {
            crate::eprintln_clean!("flightdeck resume: {}", live_session_message(&path));
            ExitCode::from(EXIT_INVALID)
        }
        Err(e) => {
            crate::eprintln_clean!("flightdeck resume: {e}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

/// What to say when `resume` meets a journal another flightdeck is writing: the session is
/// live, so join it (named when a session file of ours points at that journal).
pub fn live_session_message(journal: &Path) -> String {
    let same = |p: &Path| {
        std::fs::canonicalize(p).ok() == std::fs::canonicalize(journal).ok()
            && std::fs::canonicalize(journal).is_ok()
    };
    // Only our own session files: another user's can claim any journal path.
    let me = crate::pairing::runtime_dir::current_uid();
    let join = match crate::pairing::registry::list()
        .into_iter()
        .find(|s| s.owner_uid == me && same(&s.journal))
    {
        Some(s) => format!("join it instead: flightdeck join {}", s.name),
        None => "join it instead (flightdeck sessions lists the live ones; flightdeck join NAME)"
            .to_string(),
    };
    format!(
        "{}: this session is live — another flightdeck holds its journal, and a second \
         engine would run its actions twice; {join}",
        journal.display()
    )
}

/// Follow a session to its end in the cockpit or headless.
async fn follow(
    task: EngineTask,
    headless: bool,
    theme: Option<&str>,
    alerts: AlertConfig,
) -> ExitCode {
    if headless {
        let journal = task.handle.journal_path().to_path_buf();
        let mut out = std::io::stdout();
        let (end, _) = crate::headless::follow(task, &mut out).await;
        println!("journal: {}", journal.display());
        return crate::headless::exit_code(&end);
    }
    crate::commands::cockpit::attach_local(task, theme, alerts).await
}

/// The lab that plays `procedure`'s product: `--personality FILE` when given, else the
/// built-in product of that name, else the data personality `labs/<product>.toml` next to the
/// procedure. A personality's errors come back as `file:line:col` lines.
pub fn lab_config_for(
    path: &Path,
    procedure: &crate::procedure::model::Procedure,
    personality: Option<&Path>,
    nodes: usize,
) -> Result<LabConfig, String> {
    let product = &procedure.product;
    let file = match personality {
        Some(f) => f.to_path_buf(),
        None => match product.parse::<Product>() {
            Ok(p) => return Ok(LabConfig::new(p, nodes, lab_timing())),
            Err(_) => {
                let f = crate::lab::data::default_path(path, product);
                if !f.exists() {
                    return Err(format!(
                        "{}: the lab has no product {product:?}: it plays generic, jahia, \
                         weaviate, neo4j and milvus, or a personality file — write {} \
                         (README: \"A lab for a new product\") or pass --personality FILE",
                        path.display(),
                        f.display()
                    ));
                }
                f
            }
        },
    };
    let p = crate::lab::data::load(&file).map_err(|d| d.to_string())?;
    if p.name() != product {
        return Err(format!(
            "{}: the personality plays {:?}, but {} is a procedure for {product:?}",
            file.display(),
            p.name(),
            path.display()
        ));
    }
    Ok(LabConfig::with_personality(
        std::sync::Arc::new(p),
        nodes,
        lab_timing(),
    ))
}
