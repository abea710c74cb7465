//! A fuzz harness on stable Rust (proptest): the procedure and target parsers, the journal
//! reader (and what folds a journal: state, report, replay timeline), the socket protocol
//! decoder and the runbook importer get arbitrary input and mutations of real input; none may
//! panic. The case count is
//! bounded so it runs in every `cargo test` (`PROPTEST_CASES=N` runs more, e.g. overnight).

use std::path::Path;

use proptest::prelude::*;

use flightdeck::engine::SessionState;
use flightdeck::journal::{self, ReadOptions};
use flightdeck::pairing::protocol::{self, ServerMsg};

/// Cases per target in an ordinary test run: bounded, a few seconds in all.
const CASES: u32 = 1000;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        // A panic is the finding; shrinking it is for a human at a desk, not for CI.
        max_shrink_iters: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// An edit of some input: overwrite, insert or delete bytes at a place, or cut it short.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Bytes that matter to TOML and JSON more often than others.
    let byte = prop_oneof![
        any::<u8>(),
        prop::sample::select(b"\"'[]{}=,:.\n\\#0123456789-+eE".to_vec()),
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(at, b)| Edit::Set(at, b)),
        (any::<usize>(), prop::collection::vec(byte, 1..8)).prop_map(|(at, b)| Edit::Insert(at, b)),
        (any::<usize>(), 1usize..16).prop_map(|(at, n)| Edit::Delete(at, n)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len();
        match e {
            Edit::Set(at, b) if len > 0 => bytes[at % len] = *b,
            Edit::Insert(at, b) => {
                let at = at % (len + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Edit::Delete(at, n) if len > 0 => {
                let at = at % len;
                bytes.drain(at..(at + n).min(len));
            }
            Edit::Truncate(at) => bytes.truncate(at % (len + 1)),
            _ => {}
        }
    }
    bytes
}

fn seeds(dir: &str, ext: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .filter_map(|p| Some((p.display().to_string(), std::fs::read(&p).ok()?)))
        .collect();
    out.sort();
    out
}

/// A real input (one of `seeds`) with edits, or arbitrary bytes.
fn mutated(seeds: Vec<(String, Vec<u8>)>) -> impl Strategy<Value = Vec<u8>> {
    assert!(!seeds.is_empty(), "no seed inputs found");
    let n = seeds.len();
    prop_oneof![
        4 => (0..n, prop::collection::vec(edit(), 1..6))
            .prop_map(move |(i, edits)| apply(seeds[i].1.clone(), &edits)),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

fn procedure_seeds() -> Vec<(String, Vec<u8>)> {
    let mut s = seeds("procedures", "toml");
    s.extend(seeds("procedures/bad", "toml"));
    s
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_procedure_and_target_parsers_never_panic(bytes in mutated(procedure_seeds())) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let p = Path::new("fuzz.toml");
        if let Ok(lp) = flightdeck::procedure::load::parse_procedure(p, text.clone()) {
            // A procedure that parses is also validated against a target and planned.
            if let Ok(t) = flightdeck::target_load::parse_target(
                Path::new("t.toml"),
                &String::from_utf8_lossy(&std::fs::read("procedures/targets/example.toml").unwrap_or_default()),
            ) {
                let _ = flightdeck::procedure::validate::validate(&lp, Some(&t));
                let _ = flightdeck::plan::expand::build_plan(&lp, &t, &Default::default());
            }
        }
        let _ = flightdeck::target_load::parse_target(p, &text);
    }

    #[test]
    fn the_targets_parse_or_say_why(bytes in mutated(seeds("procedures/targets", "toml"))) {
        let _ = flightdeck::target_load::parse_target(Path::new("t.toml"), &String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn the_journal_reader_and_its_folds_never_panic(
        bytes in mutated(seeds("tests/fixtures", "jsonl")),
        skip in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(j) = journal::read_with(&path, ReadOptions { skip_bad_lines: skip }) {
            let state = SessionState::fold(&j.events);
            let _ = flightdeck::headless::figures(&state);
            let report = flightdeck::report::build(&j);
            let _ = flightdeck::report::markdown(&report);
            let _ = flightdeck::report::json(&report);
            let _ = flightdeck::replay::timeline::Timeline::new(j.events, 5_000);
        }
    }

    #[test]
    fn the_socket_protocol_decoder_never_panics(
        bytes in mutated(protocol_seeds()),
    ) {
        let line = String::from_utf8_lossy(&bytes);
        let _ = protocol::parse_client_line(&line);
        let _ = serde_json::from_str::<ServerMsg>(&line);
        // The line framing on the raw bytes, with a small limit, then each line decoded.
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut lines = protocol::lines(&bytes[..], 64);
            while let Ok(Some(l)) = protocol::next_line(&mut lines).await {
                let _ = protocol::parse_client_line(&l);
            }
        });
    }

    #[test]
    fn import_never_panics_and_what_it_drafts_checks(
        bytes in mutated(runbook_seeds()),
        html in any::<bool>(),
    ) {
        use flightdeck::import::{import_bytes, Format, ImportError, Options};
        let opts = Options {
            format: Some(if html { Format::Html } else { Format::Md }),
            ..Options::default()
        };
        // Any runbook the importer accepts yields a draft that passes `check`.
        let r = import_bytes(Path::new("runbook"), bytes, &opts);
        prop_assert!(!matches!(r, Err(ImportError::DraftInvalid { .. })), "{:?}", r.err());
    }
}

/// The seed guides `import` reads (`shared/seeds` beside the repository; `../../shared` from a
/// worktree).
fn runbook_seeds() -> Vec<(String, Vec<u8>)> {
    ["../shared/seeds", "../../shared/seeds"]
        .iter()
        .map(|d| {
            let mut s = seeds(d, "md");
            s.extend(seeds(d, "txt"));
            s.extend(seeds(d, "html"));
            s
        })
        .find(|s| !s.is_empty())
        .unwrap_or_default()
}

/// Real protocol lines: a hello, commands, status, and what the server sends.
fn protocol_seeds() -> Vec<(String, Vec<u8>)> {
    [
        r#"{"hello":{"protocol":2,"operator":"alice","label":"alice@laptop","want_driver":false,"after_seq":0}}"#,
        r#"{"command":{"id":7,"command":{"cmd":"confirm","prompt":12,"phrase":"upgrade prod"}}}"#,
        r#"{"command":{"id":8,"command":{"cmd":"note","text":"editors told"}}}"#,
        r#"{"command":{"id":9,"command":{"cmd":"abort","rollback":true}}}"#,
        r#"{"command":{"id":10,"command":{"cmd":"kill_orphan","step":3}}}"#,
        r#"{"status":{}}"#,
        r#"{"reply":{"id":7,"error":"that prompt is no longer open"}}"#,
        r#"{"event":{"seq":3,"t_ms":120,"type":"note","by":"bob","text":"x"}}"#,
    ]
    .iter()
    .enumerate()
    .map(|(i, l)| (i.to_string(), l.as_bytes().to_vec()))
    .collect()
}
