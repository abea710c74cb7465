//! A real Milvus standalone for tests: the PyPI package `milvus` at 2.2.16 and 2.3.5 and the
//! pymilvus client, each in its venv (scripts/milvus-venvs.sh), one install per test in a
//! temporary directory on ports the kernel hands out, driven through the same scripts and
//! target as `scripts/real-milvus.sh`.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use flightdeck::engine::event::{AutoConfirm, Event, Phase, Verdict};
use flightdeck::engine::session::{self, EngineConfig, EngineTask};
use flightdeck::engine::state::PromptKindTag;
use flightdeck::engine::{Command as EngineCommand, SessionState};
use flightdeck::journal::Journal;
use flightdeck::plan::expand::{build_plan, PlanOptions};
use flightdeck::plan::Plan;
use flightdeck::procedure::load::load_procedure;
use flightdeck::target::Target;
use flightdeck::target_load::load_target;

pub const PROCEDURE: &str = "procedures/milvus-standalone.toml";
pub const EXAMPLE: &str = "procedures/targets/milvus-standalone.example.toml";
pub const FROM: &str = "2.2.16";
pub const TO: &str = "2.3.5";
/// The known data set `scripts/real-milvus.sh` writes too.
pub const COLLECTION: &str = "flightdeck_known";
pub const ROWS: &str = "1000";

/// Where scripts/milvus-venvs.sh keeps the venvs (same default as the script).
pub fn cache_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("FLIGHTDECK_MILVUS_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache")
        });
    base.join("flightdeck").join("milvus")
}

/// The venvs, or `None` (skipped with a note) when they are not installed — except under
/// `CI=true`, where that is a failure: CI must not go green by skipping the real system.
pub fn milvus_or_skip() -> Option<PathBuf> {
    let cache = cache_dir();
    let missing: Vec<&str> = [FROM, TO, "client"]
        .into_iter()
        .filter(|v| !cache.join(v).join(".ok").exists())
        .collect();
    if missing.is_empty() {
        return Some(cache);
    }
    let why = format!(
        "the real Milvus venvs {missing:?} are not installed in {} (scripts/milvus-venvs.sh installs them)",
        cache.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true requires them: {why}");
    }
    println!("skipped: {why}");
    None
}

/// Real Milvus runs are heavy (a server each, 2 cores): one at a time in this test binary.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// `N` distinct free ports below the kernel's ephemeral range (32768-60999), held together so
/// they differ, then released for Milvus: a port the kernel hands out (bind to 0) can be taken a
/// moment later as the source port of an outgoing connection (seen: Milvus's embedded etcd then
/// fails with "address already in use").
fn free_ports<const N: usize>() -> [u16; N] {
    use std::hash::{BuildHasher, Hasher};
    let mut seed = std::collections::hash_map::RandomState::new().build_hasher();
    seed.write_u32(std::process::id());
    let mut x = seed.finish() | 1;
    let mut held: Vec<TcpListener> = Vec::new();
    for _ in 0..1000 {
        // xorshift: a different order in each run and each process.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = 20000 + (x % 12000) as u16;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
            if held.len() == N {
                break;
            }
        }
    }
    assert_eq!(held.len(), N, "no {N} free ports between 20000 and 32000");
    let mut out = [0u16; N];
    for (o, l) in out.iter_mut().zip(&held) {
        *o = l.local_addr().expect("local addr").port();
    }
    out
}

/// One install: its directory, ports and target. Dropping it kills the server.
pub struct Install {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub backup: PathBuf,
    pub grpc: u16,
    pub etcd: u16,
    pub metrics: u16,
    pub target: Target,
    cache: PathBuf,
}

impl Install {
    pub fn new(cache: &Path) -> Install {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("install");
        let backup = dir.path().join("backup");
        std::fs::create_dir_all(&root).expect("install dir");
        let [grpc, etcd, peer, metrics] = free_ports::<4>();
        let mut target = load_target(Path::new(EXAMPLE)).expect("the example target loads");
        let scripts = std::fs::canonicalize("scripts").expect("scripts/");
        let node = &mut target.nodes[0];
        node.address = format!("127.0.0.1:{metrics}");
        for (k, v) in [
            ("grpc_port", grpc.to_string()),
            ("etcd_port", etcd.to_string()),
            ("etcd_peer_port", peer.to_string()),
            ("root", root.display().to_string()),
            ("versions", cache.display().to_string()),
            (
                "client",
                cache.join("client/bin/python").display().to_string(),
            ),
            ("scripts", scripts.display().to_string()),
            ("backup", backup.display().to_string()),
        ] {
            node.tags.insert(k.into(), v);
        }
        Install {
            dir,
            root,
            backup,
            grpc,
            etcd,
            metrics,
            target,
            cache: cache.to_path_buf(),
        }
    }

    fn tag(&self, k: &str) -> String {
        self.target.nodes[0].tags[k].clone()
    }

    /// scripts/milvus-ctl.sh with these arguments: (exit 0, stdout and stderr).
    pub fn ctl(&self, args: &[&str]) -> (bool, String) {
        run(Command::new("scripts/milvus-ctl.sh").args(args))
    }

    /// scripts/milvus_data.py against this server.
    pub fn data(&self, args: &[&str]) -> (bool, String) {
        run(Command::new(self.tag("client"))
            .arg("scripts/milvus_data.py")
            .args(["--uri", &format!("127.0.0.1:{}", self.grpc)])
            .args(args))
    }

    /// milvus-helm's post-upgrade smoke test (`procedures/targets/scripts/milvus-smoke.py`,
    /// what its real target runs) against this server, with the client venv's pymilvus.
    pub fn smoke(&self, op: &str) -> (bool, String) {
        run(Command::new(self.tag("client"))
            .arg("procedures/targets/scripts/milvus-smoke.py")
            .args([op, "--uri", &format!("127.0.0.1:{}", self.grpc)]))
    }

    pub fn root_str(&self) -> String {
        self.root.display().to_string()
    }

    /// Install `version` and start it (waits for /healthz).
    pub fn start(&self, version: &str) -> (bool, String) {
        let venv = self.cache.join(version).display().to_string();
        let (ok, out) = self.ctl(&["switch", &self.root_str(), &venv]);
        if !ok {
            return (ok, out);
        }
        self.ctl(&[
            "start",
            &self.root_str(),
            &self.grpc.to_string(),
            &self.tag("etcd_port"),
            &self.tag("etcd_peer_port"),
            &self.metrics.to_string(),
            version,
            "240",
        ])
    }

    /// 2.2.16 on a fresh data directory with the known data set.
    pub fn start_old_with_data(&self) {
        let (ok, out) = self.start(FROM);
        assert!(ok, "{FROM} did not start:\n{out}");
        let (ok, out) = self.data(&["write", "--collection", COLLECTION, "--rows", ROWS]);
        assert!(ok, "writing the data set failed:\n{out}");
    }

    pub fn version(&self) -> String {
        let (ok, out) = self.data(&["version"]);
        assert!(ok, "{out}");
        out.split_whitespace()
            .last()
            .unwrap_or_default()
            .to_string()
    }

    /// The known collection's rows (ids and tags), as JSON text.
    pub fn rows(&self) -> String {
        let (ok, out) = self.data(&["rows", "--collection", COLLECTION]);
        assert!(ok, "{out}");
        out.lines()
            .find(|l| l.starts_with('['))
            .unwrap_or_default()
            .to_string()
    }

    /// Poll `probe` with a deadline (Milvus answers queries some time after /healthz).
    pub fn eventually(&self, what: &str, deadline: Duration, probe: impl Fn() -> (bool, String)) {
        let start = Instant::now();
        loop {
            let (ok, out) = probe();
            if ok {
                return;
            }
            assert!(
                start.elapsed() < deadline,
                "{what}: not within {deadline:?}:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub fn launcher_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.root.join("milvus.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Install {
    fn drop(&mut self) {
        // Tear down fast: the launcher runs in its own process group (setsid).
        if let Some(pid) = self.launcher_pid() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}

fn run(cmd: &mut Command) -> (bool, String) {
    match cmd.output() {
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            (out.status.success(), text)
        }
        Err(e) => (false, format!("cannot run {cmd:?}: {e}")),
    }
}

/// The plan of the procedure against this install.
pub fn plan(install: &Install) -> Plan {
    let lp = load_procedure(Path::new(PROCEDURE)).expect("procedure loads");
    let diags = flightdeck::procedure::validate::validate(&lp, Some(&install.target));
    assert!(diags.is_empty(), "{diags}");
    build_plan(&lp, &install.target, &PlanOptions::default()).expect("plan builds")
}

/// Start a session of the procedure against `install` (probes on, real time).
pub fn start_session(install: &Install, auto: AutoConfirm) -> (EngineTask, PathBuf) {
    let journal = install.dir.path().join("journal.jsonl");
    let task = session::start(EngineConfig {
        plan: plan(install),
        target: install.target.clone(),
        auto,
        operator: "test".into(),
        journal: journal.clone(),
        observe: true,
        time_scale: 1.0,
    })
    .expect("engine starts");
    (task, journal)
}

/// Poll the session until `pred` holds (deadline: real Milvus steps take minutes at most).
pub async fn until(
    task: &EngineTask,
    what: &str,
    deadline: Duration,
    pred: impl Fn(&SessionState) -> bool,
) -> SessionState {
    let start = Instant::now();
    loop {
        let s = task.handle.snapshot().await.expect("session alive");
        if pred(&s) {
            return s;
        }
        assert!(
            start.elapsed() < deadline,
            "{what}: not within {deadline:?}; steps: {:?}",
            s.steps.iter().map(|x| x.status).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The scripted operator: confirms every run and undo prompt until the session finishes, a
/// prompt only a human answers is left (a failure), or the run prompt of step `stop_at` opens
/// (to abort there). Returns the state at that point.
pub async fn drive(task: &EngineTask, stop_at: Option<usize>) -> SessionState {
    let start = Instant::now();
    loop {
        let s = task.handle.snapshot().await.expect("session alive");
        if s.is_finished() || s.running().is_some() {
            if s.is_finished() {
                return s;
            }
        } else if let Some(p) = s.prompt {
            match p.kind {
                PromptKindTag::Run if Some(p.step) == stop_at => return s,
                PromptKindTag::Run | PromptKindTag::Undo => {
                    task.handle
                        .command(EngineCommand::Confirm {
                            prompt: p.id,
                            phrase: None,
                        })
                        .await
                        .expect("confirm accepted");
                    continue;
                }
                PromptKindTag::Failed | PromptKindTag::Interrupted => return s,
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(1200),
            "the session did not settle; steps: {:?}",
            s.steps.iter().map(|x| x.status).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Shut the engine down and read its journal.
pub async fn close(task: EngineTask, journal: &Path) -> Journal {
    task.handle.shutdown().await;
    let _ = task.join.await;
    flightdeck::journal::read(journal).expect("journal reads")
}

/// The index of the step with key `key` (e.g. `start@standalone`).
pub fn step(plan: &Plan, key: &str) -> usize {
    plan.steps
        .iter()
        .position(|s| s.key == key)
        .unwrap_or_else(|| panic!("no step {key}"))
}

/// The verdicts of every run of `step` in `phase`, in journal order.
pub fn verdicts(journal: &Journal, step: usize, phase: Phase) -> Vec<(Verdict, String)> {
    journal
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Event::ActionFinished {
                step: s,
                phase: p,
                verdict,
                detail,
                ..
            } if *s == step && *p == phase => Some((*verdict, detail.clone())),
            _ => None,
        })
        .collect()
}

/// Every output line of `step` in `phase`.
pub fn output(journal: &Journal, step: usize, phase: Phase) -> String {
    journal
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Output {
                step: s,
                phase: p,
                line,
                ..
            } if *s == step && *p == phase => Some(line.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}
