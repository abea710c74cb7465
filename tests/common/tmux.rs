//! Drive the real `flightdeck` binary inside a private tmux server: start commands in windows,
//! type keys, read the screen, wait for text with a deadline. Everything a run leaves behind
//! (runtime dir, journals, logs, session servers) lives in one tempdir and dies with the
//! harness.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How often the screen is read while waiting.
const POLL: Duration = Duration::from_millis(50);

static NEXT: AtomicUsize = AtomicUsize::new(0);

pub const WIDTH: u16 = 120;
pub const HEIGHT: u16 = 40;

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_flightdeck")
}

/// None (after saying so) when tmux is missing; on CI a missing tmux is a failure.
pub fn tmux_or_skip() -> Option<()> {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(());
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("tmux is required on CI for the end-to-end tests");
    }
    eprintln!("skipped: tmux not installed");
    None
}

pub struct Tmux {
    socket: String,
    pub dir: tempfile::TempDir,
    started: bool,
    /// Whether the idle window `reset_bell` selects has been made.
    bell_reset: bool,
}

impl Tmux {
    /// A fresh tmux server (`fd-<pid>-<n>`) and a private home for everything the binary
    /// writes. None when tmux is not installed (see `tmux_or_skip`).
    pub fn new() -> Option<Tmux> {
        tmux_or_skip()?;
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = tempfile::tempdir().unwrap();
        for sub in ["home", "data", "rt", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join("rt"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        Some(Tmux {
            socket: format!("fd-{}-{n}", std::process::id()),
            dir,
            started: false,
            bell_reset: false,
        })
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("rt")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The environment every command runs with.
    pub fn env(&self) -> Vec<(String, String)> {
        let p = |s: &str| self.dir.path().join(s).display().to_string();
        vec![
            ("HOME".into(), p("home")),
            ("XDG_DATA_HOME".into(), p("data")),
            ("XDG_STATE_HOME".into(), p("data")),
            ("XDG_CONFIG_HOME".into(), p("home")),
            ("FLIGHTDECK_RUNTIME_DIR".into(), p("rt")),
            // The lab's data dir: a SIGKILLed session server cannot remove its own.
            ("TMPDIR".into(), p("tmp")),
            ("FLIGHTDECK_LAB_TIMING".into(), "fast".into()),
            ("TERM".into(), "xterm-256color".into()),
        ]
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    fn tmux_ok(&self, args: &[&str]) -> String {
        let out = self.tmux(args);
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run `cmd` (a shell line) in a new window named `name`, 120x40. After the command the
    /// pane shows a marker and a shell-like line, so a test can tell the cockpit left.
    pub fn spawn(&mut self, name: &str, cmd: &str) {
        self.spawn_with(name, cmd, &[]);
    }

    /// `spawn` with some variables of `env()` replaced or added.
    pub fn spawn_with(&mut self, name: &str, cmd: &str, env: &[(&str, &str)]) {
        let line = format!("{cmd}; echo \"[exited $?]\"; exec sleep 600");
        let mut args: Vec<String> = Vec::new();
        if self.started {
            args.extend(["new-window".into(), "-d".into(), "-n".into(), name.into()]);
        } else {
            args.extend(
                [
                    "new-session",
                    "-d",
                    "-s",
                    "e2e",
                    "-n",
                    name,
                    "-x",
                    &WIDTH.to_string(),
                    "-y",
                    &HEIGHT.to_string(),
                ]
                .map(String::from),
            );
        }
        let mut vars = self.env();
        for (k, v) in env {
            vars.retain(|(old, _)| old != k);
            vars.push((k.to_string(), v.to_string()));
        }
        for (k, v) in vars {
            args.push("-e".into());
            args.push(format!("{k}={v}"));
        }
        args.push("-c".into());
        args.push(env!("CARGO_MANIFEST_DIR").into());
        args.push(line);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.tmux_ok(&refs);
        // Detached windows have no client to size them: pin each (resize-window makes that
        // window's size manual; the global option crashes tmux 3.3a on new-window).
        self.started = true;
        self.resize(name, WIDTH, HEIGHT);
        // Whatever a ~/.tmux.conf says: a bell in this window is recorded (`bell_flag`).
        self.tmux_ok(&[
            "set-option",
            "-w",
            "-t",
            &Self::target(name),
            "monitor-bell",
            "on",
        ]);
    }

    fn target(name: &str) -> String {
        format!("e2e:{name}")
    }

    /// Type keys (tmux key names: "y", "Tab", "Escape", "C-c").
    pub fn send(&self, window: &str, keys: &str) {
        self.tmux_ok(&["send-keys", "-t", &Self::target(window), keys]);
    }

    /// Type `text` as it is (`send-keys -l`): what a terminal sends, escape sequences
    /// included — e.g. the SGR mouse reports a real terminal writes for a click.
    pub fn send_literal(&self, window: &str, text: &str) {
        self.tmux_ok(&["send-keys", "-l", "-t", &Self::target(window), text]);
    }

    pub fn capture(&self, window: &str) -> String {
        self.tmux_ok(&["capture-pane", "-p", "-t", &Self::target(window)])
    }

    /// The screen with its colours and attributes, as SGR escape sequences
    /// (`capture-pane -e`).
    pub fn capture_styled(&self, window: &str) -> String {
        self.tmux_ok(&["capture-pane", "-e", "-p", "-t", &Self::target(window)])
    }

    pub fn resize(&self, window: &str, w: u16, h: u16) {
        self.tmux_ok(&[
            "resize-window",
            "-t",
            &Self::target(window),
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
        ]);
    }

    /// The pane's title, as the program in it set it (OSC 0/2).
    pub fn pane_title(&self, window: &str) -> String {
        self.tmux_ok(&[
            "display-message",
            "-p",
            "-t",
            &Self::target(window),
            "#{pane_title}",
        ])
        .trim_end()
        .to_string()
    }

    /// Poll the pane's title until it contains `text`; panics with the title and the screen.
    pub fn wait_title(&self, window: &str, text: &str, timeout: Duration) -> String {
        let until = Instant::now() + timeout;
        loop {
            let title = self.pane_title(window);
            if title.contains(text) {
                return title;
            }
            if Instant::now() >= until {
                panic!(
                    "window {window}: timed out after {timeout:?} waiting for title {text:?}; \
                     title {title:?}; screen:\n{}",
                    self.capture(window)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether the window rang its bell (BEL) since it was made or last `reset_bell`: tmux's
    /// `window_bell_flag`, which it sets for a window of a session no client is attached to
    /// (this harness never attaches one) when `monitor-bell` is on (`spawn` sets it).
    pub fn bell_flag(&self, window: &str) -> bool {
        self.tmux_ok(&[
            "display-message",
            "-p",
            "-t",
            &Self::target(window),
            "#{window_bell_flag}",
        ])
        .trim()
            == "1"
    }

    /// Poll until the window has rung its bell; panics with the title and the screen.
    pub fn wait_bell(&self, window: &str, timeout: Duration) {
        let until = Instant::now() + timeout;
        while !self.bell_flag(window) {
            if Instant::now() >= until {
                panic!(
                    "window {window}: no bell after {timeout:?}; title {:?}; screen:\n{}",
                    self.pane_title(window),
                    self.capture(window)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Clear the window's bell flag: tmux clears a window's alert flags when it becomes the
    /// current window, so select an idle window and then this one.
    pub fn reset_bell(&mut self, window: &str) {
        let idle = "bell-reset";
        if !self.bell_reset {
            self.tmux_ok(&["new-window", "-d", "-n", idle, "-t", "e2e:", "sleep 600"]);
            self.bell_reset = true;
        }
        self.tmux_ok(&["select-window", "-t", &Self::target(idle)]);
        self.tmux_ok(&["select-window", "-t", &Self::target(window)]);
        assert!(
            !self.bell_flag(window),
            "selecting {window} clears its bell"
        );
    }

    /// The pid of the process the window runs (the shell, then whatever it exec'd).
    pub fn pane_pid(&self, window: &str) -> u32 {
        self.tmux_ok(&[
            "display-message",
            "-p",
            "-t",
            &Self::target(window),
            "#{pane_pid}",
        ])
        .trim()
        .parse()
        .unwrap()
    }

    /// Poll the screen until `pred` holds; panics with the last screen after `timeout`.
    pub fn wait_until(
        &self,
        window: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let until = Instant::now() + timeout;
        loop {
            let screen = self.capture(window);
            if pred(&screen) {
                return screen;
            }
            if Instant::now() >= until {
                panic!("window {window}: timed out after {timeout:?} waiting for {what}; screen:\n{screen}");
            }
            std::thread::sleep(POLL);
        }
    }

    /// Wait until the screen shows `text`.
    pub fn wait_for(&self, window: &str, text: &str, timeout: Duration) -> String {
        self.wait_until(window, &format!("{text:?}"), timeout, |s| s.contains(text))
    }

    /// Wait for a prompt showing `text`, then until the cockpit's stale-key guard
    /// (`PROMPT_GUARD`, counted from when the prompt appeared, which is no later than when we
    /// first saw it) has passed: a key sent sooner is ignored by design.
    pub fn wait_prompt(&self, window: &str, text: &str, timeout: Duration) -> String {
        let screen = self.wait_for(window, text, timeout);
        let ready = Instant::now() + flightdeck::tui::view::PROMPT_GUARD + POLL;
        while Instant::now() < ready {
            std::thread::sleep(POLL);
        }
        screen
    }

    /// Wait until the screen shows `text` and its last line (the footer) shows every one of
    /// `footer`. Both in one capture: tmux can be read while a frame is half written, so a
    /// screen that shows a new dialog may still carry the previous footer.
    pub fn wait_footer(
        &self,
        window: &str,
        text: &str,
        footer: &[&str],
        timeout: Duration,
    ) -> String {
        let what = format!("{text:?} with the footer {footer:?}");
        self.wait_until(window, &what, timeout, |s| {
            s.contains(text)
                && s.lines()
                    .last()
                    .is_some_and(|f| footer.iter().all(|k| f.contains(k)))
        })
    }

    /// `wait_prompt`, then send `key`.
    pub fn answer(&self, window: &str, text: &str, key: &str, timeout: Duration) -> String {
        let screen = self.wait_prompt(window, text, timeout);
        self.send(window, key);
        screen
    }

    /// Wait until the screen no longer shows `text`.
    pub fn wait_gone(&self, window: &str, text: &str, timeout: Duration) -> String {
        self.wait_until(window, &format!("{text:?} to go"), timeout, |s| {
            !s.contains(text)
        })
    }

    /// SIGKILL every session server of this harness: those that registered in its runtime
    /// dir, and any still starting (not registered yet) whose environment names that dir — so
    /// a test that fails or is killed early leaves no server (and no lab) behind.
    pub fn kill_session_servers(&self) {
        let rt = self.runtime_dir();
        let mut pids = session_pids(&rt);
        pids.extend(servers_started_under(&rt));
        for pid in pids {
            kill(pid, libc::SIGKILL);
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        if self.started {
            let _ = self.tmux(&["kill-server"]);
        }
        self.kill_session_servers();
    }
}

/// Pids named in the session files (`<name>.json`) of a runtime dir.
pub fn session_pids(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .filter_map(|v| v.get("pid").and_then(|p| p.as_u64()))
        .filter_map(|p| u32::try_from(p).ok())
        .collect()
}

/// Session servers (`--serve-internal`) whose environment has `FLIGHTDECK_RUNTIME_DIR=rt`.
pub fn servers_started_under(rt: &Path) -> Vec<u32> {
    let want = format!("FLIGHTDECK_RUNTIME_DIR={}", rt.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let nul_split = |f: &str| -> Vec<String> {
                std::fs::read(format!("/proc/{pid}/{f}"))
                    .unwrap_or_default()
                    .split(|b| *b == 0)
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect()
            };
            nul_split("cmdline").iter().any(|a| a == "--serve-internal")
                && nul_split("environ").contains(&want)
        })
        .collect()
}

pub fn kill(pid: u32, signal: i32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        if pid > 0 {
            // SAFETY: kill has no memory preconditions; a gone pid only yields ESRCH.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }
}

pub fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks the pid exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0 && !is_zombie(pid as u32)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Direct children of `pid` (from /proc).
pub fn children(pid: u32) -> Vec<u32> {
    let path = format!("/proc/{pid}/task/{pid}/children");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Wait until `pid` is gone.
pub fn wait_dead(pid: u32, timeout: Duration) {
    let until = Instant::now() + timeout;
    while alive(pid) {
        assert!(
            Instant::now() < until,
            "pid {pid} still alive after {timeout:?}"
        );
        std::thread::sleep(POLL);
    }
}

/// The shell line for the binary with `args`.
pub fn cmd(args: &str) -> String {
    format!("{} {args}", binary())
}
