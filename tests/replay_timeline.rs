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
    for &b in t.step_boundaries() {
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
