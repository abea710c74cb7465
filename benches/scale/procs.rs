//! Whole processes, measured from outside: CPU time from `/proc/<pid>/stat` and the bytes an
//! observer receives, over a fixed window. The cockpits run in a private tmux server (a real
//! terminal, 120x40); every process a scenario starts carries a marker in its environment
//! (its own `FLIGHTDECK_RUNTIME_DIR`), which is how the detached session server is found and
//! how everything is stopped afterwards, by pid.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub fn clk_tck() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |v| v as f64)
}

/// utime + stime of `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU use of each pid over `window`, in % of one core.
pub fn cpu_percent(pids: &[u32], window: Duration) -> Vec<Option<f64>> {
    let before: Vec<Option<u64>> = pids.iter().map(|p| cpu_ticks(*p)).collect();
    let start = Instant::now();
    std::thread::sleep(window);
    let secs = start.elapsed().as_secs_f64();
    pids.iter()
        .zip(before)
        .map(|(p, b)| {
            let used = cpu_ticks(*p)?.checked_sub(b?)?;
            Some(used as f64 / clk_tck() / secs * 100.0)
        })
        .collect()
}

/// Pids of the processes whose environment holds `marker` (`NAME=value`).
pub fn marked(marker: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()))
        })
        .collect()
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default()
}

/// Stop every process carrying `marker`: SIGTERM, then SIGKILL what is left after 3 s.
pub fn stop_marked(marker: &str) {
    for pid in marked(marker) {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while !marked(marker).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in marked(marker) {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
}

/// A private tmux server (its own socket), killed when dropped.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start() -> Option<Tmux> {
        let t = Tmux {
            socket: format!("fdbench-{}", std::process::id()),
        };
        t.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "bench",
            "-x",
            "120",
            "-y",
            "40",
            "sleep 100000",
        ])
        .then_some(t)
    }

    fn run(&self, args: &[&str]) -> bool {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Open a window running `command` (through `sh -c`; `exec` it to make it the pane's pid).
    pub fn window(&self, name: &str, cwd: &Path, command: &str) -> Option<u32> {
        let cwd = cwd.to_string_lossy();
        if !self.run(&["new-window", "-d", "-n", name, "-c", &cwd, command]) {
            return None;
        }
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "display", "-p", "-t"])
            .arg(format!("bench:{name}"))
            .arg("#{pane_pid}")
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

/// One flightdeck cockpit (and the session server it starts) under its own marker.
pub struct Scenario {
    /// Its runtime folder (where its session's socket is).
    pub rt: PathBuf,
    pub marker: String,
    pub env: String,
    pub cockpit: Option<u32>,
}

impl Scenario {
    pub fn new(root: &Path, label: &str) -> Scenario {
        let rt: PathBuf = root.join(format!("rt-{label}"));
        // flightdeck refuses a runtime folder others could read.
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&rt);
        let _ = std::fs::create_dir_all(root.join("data"));
        let marker = format!("FLIGHTDECK_RUNTIME_DIR={}", rt.display());
        let env = format!(
            "env {marker} XDG_DATA_HOME={data} XDG_STATE_HOME={data} XDG_CACHE_HOME={data} \
             FLIGHTDECK_ALERTS=none",
            data = root.join("data").display()
        );
        Scenario {
            rt,
            marker,
            env,
            cockpit: None,
        }
    }

    /// Start `flightdeck ARGS` in a tmux window as this scenario's cockpit.
    pub fn open(&mut self, tmux: &Tmux, name: &str, cwd: &Path, args: &str) -> Option<u32> {
        // `SCALE_BIN` measures another build (say, the one before a change) with this bench.
        let bin = std::env::var("SCALE_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_flightdeck").to_string());
        let pid = tmux.window(name, cwd, &format!("exec {} {bin} {args}", self.env))?;
        self.cockpit = Some(pid);
        Some(pid)
    }

    /// The detached session server, once it runs (within `limit`).
    pub fn server(&self, limit: Duration) -> Option<u32> {
        let deadline = Instant::now() + limit;
        loop {
            let found = marked(&self.marker)
                .into_iter()
                .find(|p| Some(*p) != self.cockpit && cmdline(*p).contains("--serve-internal"));
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Join session `name` as an observer over its socket, as `flightdeck join` does (saying
    /// it shows the node rows `viewport`, as its cockpit would), and count the bytes the
    /// server sends per minute over `window` once `settle` has passed (the catch-up on
    /// joining is left out). The bytes are counted here because a socket's reads do not show
    /// in `/proc/<pid>/io`.
    pub fn observer_bytes_per_min(
        &self,
        name: &str,
        viewport: flightdeck::engine::client::Viewport,
        settle: Duration,
        window: Duration,
    ) -> Option<f64> {
        use flightdeck::pairing::protocol::{encode, ClientMsg, Hello, PROTOCOL};
        use std::io::{ErrorKind, Read, Write};
        let socket = flightdeck::pairing::runtime_dir::socket_path(&self.rt, name);
        // Say hello in `protocol`; the answer's line (a welcome or a refusal).
        let open = |protocol: u32| -> Option<(std::os::unix::net::UnixStream, String)> {
            let mut s = std::os::unix::net::UnixStream::connect(&socket).ok()?;
            let hello = Hello {
                protocol,
                ..flightdeck::pairing::client::hello("bench", None, false, 0)
            };
            s.write_all(encode(&ClientMsg::Hello(hello)).as_bytes())
                .ok()?;
            s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
            let (mut line, mut b) = (Vec::new(), [0u8]);
            while s.read(&mut b).ok()? == 1 && b[0] != b'\n' {
                line.push(b[0]);
            }
            Some((s, String::from_utf8_lossy(&line).into_owned()))
        };
        // Another build (`SCALE_BIN`) may speak another protocol: its refusal says which.
        let (s, answer) = open(PROTOCOL)?;
        let mut s = match answer.split("this session speaks ").nth(1) {
            Some(rest) if answer.contains("refused") => {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                open(digits.parse().ok()?)?.0
            }
            _ => s,
        };
        s.write_all(encode(&ClientMsg::Viewport(viewport)).as_bytes())
            .ok()?;
        s.set_read_timeout(Some(Duration::from_millis(100))).ok()?;
        let mut buf = vec![0u8; 1 << 16];
        // Bytes (newlines included) and lines per kind of message, for the breakdown.
        let mut kinds = std::collections::BTreeMap::<String, (u64, u64)>::new();
        let mut partial = Vec::new();
        let mut count = |until: Instant, kinds: &mut std::collections::BTreeMap<_, _>| {
            let mut n = 0u64;
            while Instant::now() < until {
                match s.read(&mut buf) {
                    Ok(0) => return None,
                    Ok(k) => {
                        n += k as u64;
                        partial.extend_from_slice(&buf[..k]);
                        while let Some(end) = partial.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = partial.drain(..=end).collect();
                            let e: &mut (u64, u64) = kinds.entry(kind_of(&line)).or_default();
                            e.0 += line.len() as u64;
                            e.1 += 1;
                        }
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => return None,
                }
            }
            Some(n)
        };
        count(Instant::now() + settle, &mut Default::default())?;
        let start = Instant::now();
        let n = count(start + window, &mut kinds)?;
        let secs = start.elapsed().as_secs_f64();
        let mut by_size: Vec<_> = kinds.into_iter().collect();
        by_size.sort_by_key(|(_, (bytes, _))| std::cmp::Reverse(*bytes));
        let per_min = |b: u64| b as f64 / secs * 60.0 / 1000.0;
        let parts: Vec<String> = by_size
            .iter()
            .map(|(k, (b, lines))| format!("{k} {:.1} KB ({lines} lines)", per_min(*b)))
            .collect();
        eprintln!("  observer of {name}, a minute: {}", parts.join(", "));
        Some(n as f64 / secs * 60.0)
    }

    pub fn stop(&self) {
        stop_marked(&self.marker);
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a server line is, for the observer's breakdown: its message (`welcome`, `samples`,
/// `reply`...), and for an `event` the event's type.
fn kind_of(line: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
        return "unreadable".into();
    };
    let Some((msg, body)) = v.as_object().and_then(|o| o.iter().next()) else {
        return "other".into();
    };
    match body.get("type").and_then(|t| t.as_str()) {
        Some(t) if msg == "event" => format!("event {t}"),
        _ => msg.clone(),
    }
}
