//! The replay timeline: clock with compressed idle gaps, step boundaries, decision points, and
//! `state_at` equal to a fold from scratch at every index, in any seek order.

#[path = "fixtures/builder.rs"]
mod builder;

use builder::{fixture, fixture_path, rolling_upgrade_script};
use flightdeck::engine::event::Event;
use flightdeck::engine::SessionState;
use flightdeck::replay::timeline::{DecisionKind, Timeline};

/// xorshift64*: a fixed-seed generator, so the "random" seek order is the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn the_fixture_is_the_script_it_was_made_from() {
    let script = rolling_upgrade_script();
    if std::env::var_os("FLIGHTDECK_WRITE_FIXTURE").is_some() {
        let path = fixture_path("rolling-upgrade.jsonl");
        let _ = std::fs::remove_file(&path);
        let dir = path.parent().unwrap();
        script.write(dir, "rolling-upgrade.jsonl");
    }
    let j = fixture();
    assert_eq!(j.events, script.events);
    assert!(j.torn_tail.is_none());
}

#[test]
fn long_idle_gaps_replay_at_the_cap_and_are_recorded() {
    let j = fixture();
    let t = Timeline::new(j.events.clone(), 10_000);
    // One gap is longer than 10 s: bob's note at 33 s, alice's at 933 s.
    let gaps = t.compressed_gaps();
    assert_eq!(gaps.len(), 1);
    let g = gaps[0];
    assert!(matches!(j.events[g.index].event, Event::Note { .. }));
    assert_eq!(g.original_ms, 900_000);
    assert_eq!(g.replay_ms, 10_000);
    assert_eq!(t.gap_before(g.index), Some(g));
    assert_eq!(t.gap_before(g.index + 1), None);
    // The replay clock is the session clock minus what was cut.
    assert_eq!(t.replay_total_ms(), 954_000 - 890_000);
    assert_eq!(t.replay_ms(g.index) - t.replay_ms(g.index - 1), 10_000);
    for i in 0..g.index {
        assert_eq!(t.replay_ms(i), j.events[i].t_ms);
    }
    // Cap 0 keeps the session clock.
    let uncapped = Timeline::new(j.events.clone(), 0);
    assert!(uncapped.compressed_gaps().is_empty());
    assert_eq!(uncapped.replay_total_ms(), 954_000);
}

#[test]
fn state_at_any_index_equals_a_fold_from_scratch_in_random_seek_order() {
    let j = fixture();
    // Snapshots every 7 events so that many seeks cross and land on snapshot boundaries.
    let t = Timeline::with_snapshot_every(j.events.clone(), 10_000, 7);
    let n = j.events.len();
    for i in 0..n {
        assert_eq!(
            t.state_at(i),
            SessionState::fold(&j.events[..=i]),
            "index {i}"
        );
    }
    let mut rng = Rng(0x5eed_f00d_cafe_0001);
    for _ in 0..500 {
        let i = rng.below(n);
        assert_eq!(
            t.state_at(i),
            SessionState::fold(&j.events[..=i]),
            "index {i}"
        );
    }
    assert_eq!(t.state_at(n + 50), SessionState::fold(&j.events));
    assert_eq!(t.final_state(), SessionState::fold(&j.events));
}

#[test]
fn long_journals_seek_exactly_with_default_snapshots() {
    // A long synthetic journal: the fixture's upgrade step output repeated many times.
    let j = fixture();
    let mut events = j.events[..20].to_vec();
    let out = j
        .events
        .iter()
        .find(|e| matches!(e.event, Event::Output { .. }))
        .cloned()
        .unwrap();
    for k in 0..5000u64 {
        let mut e = out.clone();
        e.seq = events.len() as u64 + 1;
        e.t_ms = 3000 + k;
        events.push(e);
    }
    let t = Timeline::new(events.clone(), 0);
    let mut rng = Rng(42);
    for _ in 0..60 {
        let i = rng.below(events.len());
        assert_eq!(
            t.state_at(i),
            SessionState::fold(&events[..=i]),
            "index {i}"
        );
    }
}

#[test]
fn step_boundaries_and_decisions_are_where_the_session_turned() {
    let j = fixture();
    let t = Timeline::new(j.events.clone(), 10_000);
    for b in t.step_boundaries() {
        assert!(matches!(
            j.events[b].event,
            Event::ActionStarted { .. } | Event::ActionFinished { .. } | Event::PromptOpened { .. }
        ));
    }
    // 8 run prompts + 1 failed prompt, 9 starts, 9 finishes.
    assert_eq!(t.step_boundaries().len(), 27);
    let kinds: Vec<DecisionKind> = t.decisions().iter().map(|(_, k)| *k).collect();
    let count = |k| kinds.iter().filter(|x| **x == k).count();
    assert_eq!(count(DecisionKind::Confirmed), 9);
    assert_eq!(count(DecisionKind::FailedPrompt), 1);
    assert_eq!(count(DecisionKind::Note), 2);
    assert_eq!(kinds.len(), 12);

    // Jumping: next/prev boundary and decision from the middle of the failed step.
    let failed = t
        .decisions()
        .iter()
        .find(|(_, k)| *k == DecisionKind::FailedPrompt)
        .map(|(i, _)| *i)
        .unwrap();
    let next = t.next_decision(failed).unwrap();
    assert!(matches!(&j.events[next].event, Event::Note { by, .. } if by == "bob"));
    assert_eq!(t.prev_decision(next), Some(failed));
    let nb = t.next_boundary(failed).unwrap();
    assert!(matches!(
        j.events[nb].event,
        Event::ActionStarted { attempt: 2, .. }
    ));
    assert_eq!(t.prev_boundary(nb), Some(failed));
    assert_eq!(t.next_boundary(j.events.len()), None);
    assert_eq!(t.prev_decision(0), None);
    assert_eq!(t.step_at(failed), Some(5));
    assert_eq!(t.step_at(0), None);
}

#[test]
fn steps_are_found_by_key_or_number() {
    let t = Timeline::new(fixture().events, 0);
    assert_eq!(t.find_step("upgrade@node2"), Some(5));
    assert_eq!(t.find_step("6"), Some(5));
    assert_eq!(t.find_step("0"), None);
    assert_eq!(t.find_step("99"), None);
    assert_eq!(t.find_step("nope"), None);
    let first = t.first_event_of_step(5).unwrap();
    assert!(matches!(
        t.events()[first].event,
        Event::PromptOpened { step: 5, .. }
    ));
}

#[test]
fn gaps_in_seq_are_renumbered_and_empty_timelines_are_harmless() {
    let mut events = fixture().events;
    events.remove(3);
    let t = Timeline::new(events.clone(), 0);
    assert!(t.renumbered());
    for (i, e) in t.events().iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
    }
    assert!(!Timeline::new(fixture().events, 0).renumbered());

    let empty = Timeline::new(Vec::new(), 1000);
    assert!(empty.is_empty());
    assert_eq!(empty.state_at(3), SessionState::empty());
    assert_eq!(empty.replay_total_ms(), 0);
    assert_eq!(empty.next_boundary(0), None);
    assert_eq!(empty.step_at(0), None);
}

// ---------------------------------------------------------------------------------------
// A timeline read from its file (`Timeline::open`): indexed, folded in the background.

use flightdeck::engine::Stamped;
use flightdeck::journal::{self, ReadOptions};
use std::path::{Path, PathBuf};

/// Write a journal: `header` then `body`, one line each.
fn write_journal(dir: &Path, name: &str, header: &str, body: &[String]) -> PathBuf {
    let path = dir.join(name);
    let mut text = format!("{header}\n");
    for l in body {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// The fixture's header line and its events as the writer writes them, made long: the first
/// output event repeated `extra` times after them (so the file timeline keeps snapshots).
fn long_journal(extra: u64) -> (String, Vec<Stamped>) {
    let text = std::fs::read_to_string(fixture_path("rolling-upgrade.jsonl")).unwrap();
    let header = text.lines().next().unwrap().to_string();
    let mut events = fixture().events;
    let out = events
        .iter()
        .find(|e| matches!(e.event, Event::Output { .. }))
        .cloned()
        .unwrap();
    let t0 = events.last().unwrap().t_ms;
    for k in 0..extra {
        let mut e = out.clone();
        e.seq = events.len() as u64 + 1;
        e.t_ms = t0 + k;
        events.push(e);
    }
    (header, events)
}

fn lines(events: &[Stamped]) -> Vec<String> {
    events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect()
}

/// Everything a view reads from a timeline is the same read from the file as held in memory.
fn assert_same_layout(file: &Timeline, mem: &Timeline, events: &[Stamped]) {
    file.wait_folded();
    assert_eq!(file.len(), mem.len());
    assert!(file.events().is_empty(), "a file timeline holds no events");
    assert_eq!(file.step_boundaries(), mem.step_boundaries());
    assert_eq!(file.decisions(), mem.decisions());
    assert_eq!(file.compressed_gaps(), mem.compressed_gaps());
    assert_eq!(file.replay_total_ms(), mem.replay_total_ms());
    assert_eq!(file.renumbered(), mem.renumbered());
    for i in 0..mem.len() {
        assert_eq!(file.step_at(i), mem.step_at(i), "step at {i}");
        assert_eq!(file.replay_ms(i), mem.replay_ms(i), "clock at {i}");
        assert_eq!(file.t_ms(i), mem.t_ms(i));
        assert_eq!(file.decision_at(i), mem.decision_at(i));
        assert_eq!(file.event(i).as_ref(), events.get(i), "event {i}");
    }
    for step in 0..12 {
        assert_eq!(
            file.first_event_of_step(step),
            mem.first_event_of_step(step)
        );
        let n = (step + 1).to_string();
        assert_eq!(file.find_step(&n), mem.find_step(&n));
    }
    let mut rng = Rng(7);
    for _ in 0..40 {
        let i = rng.below(events.len());
        assert_eq!(
            file.state_at(i),
            SessionState::fold(&events[..=i]),
            "index {i}"
        );
    }
    assert_eq!(file.final_state(), SessionState::fold(events));
}

#[test]
fn a_timeline_read_from_its_file_is_the_one_held_in_memory() {
    for name in [
        "rolling-upgrade.jsonl",
        "lab-generic-rolling.jsonl",
        "lab-cockpit-session.jsonl",
    ] {
        let path = fixture_path(name);
        let j = journal::read(&path).unwrap();
        let mem = Timeline::new(j.events.clone(), 10_000);
        let file = Timeline::open(&path, 10_000, ReadOptions::default()).unwrap();
        assert_same_layout(&file, &mem, &j.events);
    }
    // Long enough for the file timeline to keep snapshots, with a blank line between events;
    // then with a gap in seq (renumbered).
    let dir = tempfile::tempdir().unwrap();
    let (header, mut events) = long_journal(6000);
    let mut body = lines(&events);
    body.insert(30, String::new());
    let path = write_journal(dir.path(), "long.jsonl", &header, &body);
    let file = Timeline::open(&path, 0, ReadOptions::default()).unwrap();
    assert_same_layout(&file, &Timeline::new(events.clone(), 0), &events);

    events.remove(40);
    let path = write_journal(dir.path(), "gaps.jsonl", &header, &lines(&events));
    let file = Timeline::open(&path, 0, ReadOptions::default()).unwrap();
    let mem = Timeline::new(events.clone(), 0);
    assert!(file.renumbered());
    assert_same_layout(&file, &mem, mem.events());
}

#[test]
fn opening_a_file_keeps_the_readers_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (header, events) = long_journal(300);
    let body = lines(&events);

    // Out of order: refused, naming the line (the header is line 1); left out on request.
    let mut swapped = body.clone();
    swapped.swap(50, 51);
    let path = write_journal(dir.path(), "swapped.jsonl", &header, &swapped);
    let err = Timeline::open(&path, 0, ReadOptions::default()).unwrap_err();
    let read = journal::read(&path).unwrap_err();
    assert_eq!(err.to_string(), read.to_string());
    assert!(err.to_string().contains(":53: "), "{err}");
    let skip = ReadOptions {
        skip_bad_lines: true,
    };
    let t = Timeline::open(&path, 0, skip).unwrap();
    let j = journal::read_with(&path, skip).unwrap();
    assert_eq!(t.skipped(), j.skipped.as_slice());
    let mem = Timeline::new(j.events.clone(), 0);
    assert_same_layout(&t, &mem, mem.events());

    // A second session_started and a duplicate seq are refused as the reader refuses them.
    for (i, line) in [(60, body[0].clone()), (60, body[58].clone())] {
        let mut bad = body.clone();
        bad.insert(i, line);
        let path = write_journal(dir.path(), "bad.jsonl", &header, &bad);
        let err = Timeline::open(&path, 0, ReadOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            journal::read(&path).unwrap_err().to_string()
        );
    }

    // A torn last line (no newline) is left out and said.
    let path = dir.path().join("torn.jsonl");
    let mut text = format!("{header}\n{}\n", body.join("\n"));
    text.push_str(r#"{"seq":999,"t_ms":5,"type":"out"#);
    std::fs::write(&path, text).unwrap();
    let t = Timeline::open(&path, 0, ReadOptions::default()).unwrap();
    assert!(t.torn_tail());
    assert_same_layout(&t, &Timeline::new(events.clone(), 0), &events);
}

#[test]
fn a_line_damaged_past_its_start_ends_the_timeline_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (header, events) = long_journal(600);
    let mut body = lines(&events);
    // Its start reads (seq, t_ms, type), its event does not: only decoding finds it.
    let k = 500;
    body[k] = format!(
        r#"{{"seq":{},"t_ms":{},"type":"output","step":"two"}}"#,
        events[k].seq, events[k].t_ms
    );
    let path = write_journal(dir.path(), "damaged.jsonl", &header, &body);
    let t = Timeline::open(&path, 0, ReadOptions::default()).unwrap();
    t.wait_folded();
    assert_eq!(t.len(), k);
    let why = t.damage().expect("the damage is said");
    // The reader that decodes every line names the same line.
    let read = journal::read(&path).unwrap_err().to_string();
    let line = format!(":{}: ", k + 2);
    assert!(
        why.contains(&line) && read.contains(&line),
        "{why} / {read}"
    );
    assert!(why.contains("damaged event line"), "{why}");
    assert_eq!(t.final_state(), SessionState::fold(&events[..k]));
    assert_eq!(t.event(k), None);
}

#[test]
fn a_view_brings_its_own_state_along_as_the_replay_moves() {
    // What the cockpit does for each frame (`tui::replay::sync`): its own state is moved
    // forward while playing, replaced after a seek, and always equals a fold from scratch.
    let dir = tempfile::tempdir().unwrap();
    let (header, events) = long_journal(1500);
    let path = write_journal(dir.path(), "long.jsonl", &header, &lines(&events));
    let t = Timeline::open(&path, 0, ReadOptions::default()).unwrap();
    let mut state = SessionState::empty();
    let mut at: Option<usize> = None;
    let mut rng = Rng(7);
    for _ in 0..120 {
        let to = match rng.below(4) {
            0 => rng.below(events.len() + 10),
            _ => at.map_or(0, |a| a + rng.below(6)),
        };
        t.bring(&mut state, at, to);
        let to = to.min(events.len() - 1);
        assert_eq!(
            state,
            SessionState::fold(&events[..=to]),
            "at {at:?} to {to}"
        );
        at = Some(to);
    }
}
