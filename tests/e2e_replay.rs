//! End to end: the real binary replays the recorded lab journal in a tmux pane; space pauses,
//! the right arrow steps forward, and the position bar on the screen says so. And the quiz in
//! the cockpit asks, reveals, and writes its result file.
//!
//! Needs tmux. Without it the test says "skipped" and passes, except under `CI=true`, where a
//! missing tmux is a failure (the CI image must have it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flightdeck::journal;
use flightdeck::replay::timeline::Timeline;

const FIXTURE: &str = "tests/fixtures/lab-generic-rolling.jsonl";
const DEADLINE: Duration = Duration::from_secs(20);

fn unique(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("fd-e2e-{tag}-{}-{nanos}", std::process::id())
}

/// A tmux server of our own (its own socket), killed when dropped, even on a failed assert.
struct Tmux {
    socket: String,
    /// The socket file, removed at the end too (tmux leaves it behind).
    socket_path: Option<PathBuf>,
}

impl Tmux {
    /// A fresh tmux server with one 120x40 session running `flightdeck ARGS`.
    fn start(tag: &str, args: &[&str]) -> Tmux {
        let mut tmux = Tmux {
            socket: unique(tag),
            socket_path: None,
        };
        let mut cmd = vec![
            "new-session",
            "-d",
            "-s",
            "replay",
            "-x",
            "120",
            "-y",
            "40",
            env!("CARGO_BIN_EXE_flightdeck"),
        ];
        cmd.extend_from_slice(args);
        let out = tmux.run(&cmd);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        let path = tmux
            .run(&["display-message", "-p", "#{socket_path}"])
            .stdout;
        let path = String::from_utf8_lossy(&path).trim().to_string();
        tmux.socket_path = (!path.is_empty()).then(|| PathBuf::from(path));
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .unwrap()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "replay"];
        args.extend_from_slice(keys);
        let out = self.run(&args);
        assert!(out.status.success(), "send-keys: {out:?}");
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "replay"]).stdout)
            .into_owned()
    }

    /// Poll the pane until `ok` holds for it; panic with the last screen at the deadline.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < end,
                "no {what} on screen in {DEADLINE:?}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        if let Some(p) = &self.socket_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Whether to run: tmux is there, or (off CI) say it is skipped.
fn have_tmux() -> bool {
    let installed = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if installed {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("tmux is required on CI for the end-to-end replay tests");
    }
    println!("skipped: tmux not installed");
    false
}

/// The position bar: the line with the replay's `event K/N`.
fn bar(screen: &str) -> Option<&str> {
    screen.lines().find(|l| {
        l.contains("event ") && (l.contains("paused") || l.contains("playing") || l.contains("end"))
    })
}

/// `K` of `event K/N` in the bar.
fn event_number(bar: &str) -> Option<usize> {
    let rest = &bar[bar.find("event ")? + "event ".len()..];
    rest.split('/').next()?.trim().parse().ok()
}

#[test]
fn pause_and_step_forward_in_a_real_terminal() {
    if !have_tmux() {
        return;
    }
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    let timeline = Timeline::new(journal::read(&fixture).unwrap().events, 5_000);
    let total = timeline.len();
    let steps = 23;
    let fixture_arg = fixture.to_string_lossy().into_owned();
    let tmux = Tmux::start("replay", &["replay", &fixture_arg, "--speed", "16"]);

    tmux.wait_for("position bar", |s| bar(s).is_some());
    tmux.keys(&["Space"]);
    // "paused" is the bar's first word and the event number comes after it on the same line:
    // a capture can catch the line half redrawn, paused but with the number of the frame
    // before. Paused, the bar no longer changes: take it once two captures in a row agree.
    let end = Instant::now() + DEADLINE;
    let s = loop {
        let s = tmux.wait_for("paused bar", |s| {
            bar(s).is_some_and(|b| b.contains("paused"))
        });
        let again = tmux.screen();
        if bar(&again) == bar(&s) {
            break s;
        }
        assert!(
            Instant::now() < end,
            "the paused bar kept changing:\n{again}"
        );
    };
    let at = bar(&s).and_then(event_number).unwrap();
    // At 16x the whole journal plays in about half a second: it may have reached the end,
    // where there is no next step; go back to the start then.
    let from = match timeline.next_boundary(at - 1) {
        Some(_) => at - 1,
        None => {
            tmux.keys(&["g"]);
            tmux.wait_for("the start", |s| {
                bar(s).is_some_and(|b| b.contains(&format!("event 1/{total}")))
            });
            0
        }
    };
    let next = timeline.next_boundary(from).unwrap();
    let step = timeline.step_at(next).unwrap() + 1;

    tmux.keys(&["Right"]);
    let want_event = format!("event {}/{total}", next + 1);
    let want_step = format!("step {step}/{steps}");
    let s = tmux.wait_for("the next step", |s| {
        bar(s).is_some_and(|b| b.contains(&want_event) && b.contains(&want_step))
    });
    let b = bar(&s).unwrap();
    println!("paused at event {at}, stepped to: {b}");
    assert!(
        b.contains("paused"),
        "stepping keeps the replay paused:\n{s}"
    );
    assert!(s.contains("replay"), "{s}");

    tmux.keys(&["q"]);
    tmux.wait_for("the cockpit gone", |s| bar(s).is_none());
}

#[test]
fn quiz_in_a_real_terminal_asks_reveals_and_writes_the_result() {
    if !have_tmux() {
        return;
    }
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rolling-upgrade.jsonl");
    let out = std::env::temp_dir().join(format!("{}.json", unique("quiz")));
    let (fixture_arg, out_arg) = (
        fixture.to_string_lossy().into_owned(),
        out.to_string_lossy().into_owned(),
    );
    let tmux = Tmux::start(
        "quiz",
        &[
            "replay",
            &fixture_arg,
            "--quiz",
            "--quiz-out",
            &out_arg,
            "--speed",
            "16",
        ],
    );
    // The fixture's decisions that matter: the retry of a failed step, then the point of no
    // return (explained with its reason).
    tmux.wait_for("the first question", |s| s.contains("Quiz: question 1/2"));
    tmux.keys(&["r"]);
    tmux.wait_for("the reveal", |s| {
        s.contains("you: retry") && s.contains("alice did: retry") && s.contains("(same)")
    });
    tmux.keys(&["Enter"]);
    tmux.wait_for("the second question", |s| s.contains("Quiz: question 2/2"));
    tmux.keys(&["c"]);
    tmux.wait_for("the reveal with the runbook's reason", |s| {
        s.contains("point of no return: the on-disk format moves to 1.5")
    });
    tmux.keys(&["q"]);
    let end = Instant::now() + DEADLINE;
    let text = loop {
        if let Ok(t) = std::fs::read_to_string(&out) {
            if t.ends_with('\n') {
                break t;
            }
        }
        assert!(Instant::now() < end, "no quiz result at {}", out.display());
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::fs::remove_file(&out);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["decisions"], 2, "{text}");
    assert_eq!(v["matches"], 2, "{text}");
    assert_eq!(v["answers"][0]["answer"], "retry", "{text}");
    assert_eq!(v["answers"].as_array().map(Vec::len), Some(2), "{text}");
}
