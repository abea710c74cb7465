//! `flightdeck journals`: recorded sessions with procedure, target, start, outcome and path;
//! new journals are named with a readable UTC time, and old `NAME-<unix secs>` ones still list.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ONE_STEP: &str = r#"
name = "one-step"
product = "generic"
description = "One harmless step."
from = ">= 1.0"
to = "1.1.0"

[[steps]]
id = "hello"
title = "Say hello"
action = { kind = "run", argv = ["echo", "hello"] }
"#;

fn flightdeck(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flightdeck"))
        .args(args)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_STATE_HOME", home.join("data"))
        .env("FLIGHTDECK_RUNTIME_DIR", home.join("rt"))
        .env("FLIGHTDECK_LAB_TIMING", "fast")
        .env("TMPDIR", home.join("tmp"))
        .output()
        .unwrap()
}

/// `one-step-2026-12-01T21-30-05.jsonl`, optionally with `-N` before `.jsonl`.
fn readable_name(name: &str) -> bool {
    let Some(rest) = name
        .strip_prefix("one-step-")
        .and_then(|r| r.strip_suffix(".jsonl"))
    else {
        return false;
    };
    let stamp: String = rest.chars().take(19).collect();
    let shape: String = stamp
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    shape == "9999-99-99T99-99-99"
        && (rest.len() == 19
            || rest[19..]
                .strip_prefix('-')
                .is_some_and(|n| n.parse::<u32>().is_ok()))
}

#[test]
fn journals_lists_recorded_sessions_old_and_new_names() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    for sub in ["data", "rt", "tmp"] {
        std::fs::create_dir_all(home.join(sub)).unwrap();
    }
    std::fs::set_permissions(
        home.join("rt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let procedure = home.join("one-step.toml");
    std::fs::write(&procedure, ONE_STEP).unwrap();
    let p = procedure.to_str().unwrap();
    // The runs' time span, to the second (as a listing and a name show it).
    let second = |t: SystemTime| {
        let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
        UNIX_EPOCH + Duration::from_secs(secs)
    };
    let before = second(SystemTime::now());
    // Two sessions, likely in the same second: both get a name of their own.
    for _ in 0..2 {
        let out = flightdeck(home, &["run", p, "--lab", "--headless", "--yes"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let after = second(SystemTime::now()) + Duration::from_secs(1);
    let dir = home.join("data/flightdeck/journals");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|n| readable_name(n)), "{names:?}");
    // A journal named the old way, and a file that is not a journal.
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/rolling-upgrade.jsonl"
        ),
        dir.join("rolling-upgrade-1763647200.jsonl"),
    )
    .unwrap();
    std::fs::write(dir.join("notes.jsonl"), "not a journal\n").unwrap();

    let out = flightdeck(home, &["journals"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("STARTED (UTC)")
            && lines[0].contains("PROCEDURE")
            && lines[0].contains("TARGET")
            && lines[0].contains("OUTCOME")
            && lines[0].contains("PATH"),
        "{text}"
    );
    // Newest first: the two runs, then the old fixture (2026-11-20), then the unreadable file.
    assert_eq!(lines.len(), 5, "{text}");
    for line in &lines[1..3] {
        assert!(line.contains("one-step"), "{text}");
        assert!(line.contains("lab-generic"), "{text}");
        assert!(line.contains("completed (1/1 steps done)"), "{text}");
    }
    for name in &names {
        assert!(
            lines[1..3].iter().any(|l| l.ends_with(name.as_str())),
            "{text}"
        );
        // STARTED is this run's start, in UTC; the name reads the time it was made, in the
        // same run (to the second).
        let line = lines[1..3]
            .iter()
            .find(|l| l.ends_with(name.as_str()))
            .unwrap();
        let started = line.split_whitespace().next().unwrap();
        let started = humantime::parse_rfc3339(started).unwrap();
        let stamp = &name["one-step-".len().."one-step-".len() + 19];
        let (date, time) = stamp.split_once('T').unwrap();
        let named =
            humantime::parse_rfc3339(&format!("{date}T{}Z", time.replace('-', ":"))).unwrap();
        assert!(
            (before..=after).contains(&started) && (before..=after).contains(&named),
            "{line}: started {started:?}, named {named:?}, ran from {before:?} to {after:?}"
        );
    }
    assert!(
        lines[3].starts_with("2026-11-20T14:00:00Z")
            && lines[3].contains("rolling-upgrade")
            && lines[3].contains("rolling-upgrade-1763647200.jsonl"),
        "{text}"
    );
    assert!(
        lines[4].contains("unreadable: not a flightdeck journal")
            && lines[4].contains("notes.jsonl"),
        "{text}"
    );

    // Another folder, and an empty one.
    let empty = home.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = flightdeck(home, &["journals", empty.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("no journals in"));
}
