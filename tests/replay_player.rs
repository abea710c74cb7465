//! The replay player on tokio's paused clock: events arrive on the replay clock scaled by the
//! speed; pause, speed, jumps and seeks keep the shown state equal to a fold from scratch.

#[path = "fixtures/builder.rs"]
mod builder;
#[path = "common/replay_follow.rs"]
mod replay_follow;

use std::time::Duration;

use builder::fixture;
use flightdeck::engine::event::Event;
use flightdeck::engine::{Command, SessionState, Stamped};
use flightdeck::journal::Journal;
use flightdeck::replay::player::{self, ReplayError, ReplayOptions};
use flightdeck::replay::timeline::{DecisionKind, Timeline};
use replay_follow::follow;
use tokio::time::Instant;

fn opts(speed: f64) -> ReplayOptions {
    ReplayOptions {
        speed,
        from_step: None,
        idle_cap_ms: 10_000,
    }
}

async fn recv(client: &mut flightdeck::engine::client::SessionClient) -> Stamped {
    tokio::time::timeout(Duration::from_secs(3600), client.events.recv())
        .await
        .expect("an event within the hour")
        .expect("feed open")
}

/// Nothing arrives for `d` of (paused) time.
async fn quiet_for(client: &mut flightdeck::engine::client::SessionClient, d: Duration) {
    assert!(
        tokio::time::timeout(d, client.events.recv()).await.is_err(),
        "an event arrived while quiet was expected"
    );
}

#[tokio::test(start_paused = true)]
async fn events_arrive_on_the_replay_clock_with_idle_compressed() {
    let j = fixture();
    let timeline = Timeline::new(j.events.clone(), 10_000);
    let (mut client, control) = player::start(j.clone(), opts(1.0)).unwrap();
    let t0 = Instant::now();
    for (i, want) in j.events.iter().enumerate() {
        let got = recv(&mut client).await;
        assert_eq!(&got, want);
        let at = t0.elapsed();
        assert_eq!(at.as_millis() as u64, timeline.replay_ms(i), "event {i}");
    }
    // 954 s of session, with 900 s of idle cut to 10 s.
    assert_eq!(t0.elapsed(), Duration::from_millis(64_000));
    let p = control.position();
    assert!(p.at_end);
    assert_eq!(p.index, j.events.len() - 1);
    assert_eq!(control.state(), SessionState::fold(&j.events));
}

#[tokio::test(start_paused = true)]
async fn speed_scales_the_clock_and_is_clamped_by_doubling() {
    let j = fixture();
    let (mut client, control) = player::start(j.clone(), opts(4.0)).unwrap();
    let t0 = Instant::now();
    while !control.position().at_end {
        recv(&mut client).await;
    }
    assert_eq!(t0.elapsed(), Duration::from_millis(16_000));
    for _ in 0..10 {
        control.faster();
    }
    assert_eq!(control.position().speed, 64.0);
    for _ in 0..20 {
        control.slower();
    }
    assert_eq!(control.position().speed, 0.25);
    control.set_speed(f64::NAN);
    assert_eq!(control.position().speed, 1.0);
    let (_c, c2) = player::start(j, opts(1000.0)).unwrap();
    assert_eq!(c2.position().speed, 64.0);
}

#[tokio::test(start_paused = true)]
async fn pause_holds_the_clock_and_resume_carries_on_where_it_was() {
    let j = fixture();
    let (mut client, control) = player::start(j.clone(), opts(1.0)).unwrap();
    // SessionStarted at 0, OperatorJoined at 50 ms, LbChanged at 100 ms.
    assert_eq!(recv(&mut client).await.seq, 1);
    tokio::time::sleep(Duration::from_millis(70)).await;
    assert_eq!(recv(&mut client).await.seq, 2);
    control.toggle_pause();
    assert!(control.position().paused);
    quiet_for(&mut client, Duration::from_secs(3600)).await;
    let t = Instant::now();
    control.toggle_pause();
    let e = recv(&mut client).await;
    assert_eq!(e.seq, 3);
    // 70 ms had passed of the 100: 30 ms remain after resuming.
    assert_eq!(t.elapsed(), Duration::from_millis(30));
}

#[tokio::test(start_paused = true)]
async fn the_position_shows_a_compressed_gap_while_waiting_through_it() {
    let j = fixture();
    let timeline = Timeline::new(j.events.clone(), 10_000);
    let gap = timeline.compressed_gaps()[0];
    let (_client, control) = player::start(j, opts(64.0)).unwrap();
    control.seek(gap.index - 1);
    assert_eq!(control.position().compressed_gap, Some(gap));
    assert_eq!(
        control.position().status_line(),
        format!(
            "▶ x64 · event {}/68 · +0:33 of 15:54 · step 6 · idle 15m 00s compressed",
            gap.index
        )
    );
    assert_eq!(gap.original_ms, 900_000);
    let t = Instant::now();
    let mut pos = control.subscribe();
    while control.position().index < gap.index {
        pos.changed().await.unwrap();
    }
    // The 15 idle minutes took the 10 s cap, at 64x (timers fire on whole milliseconds).
    let took = t.elapsed();
    assert!(
        took >= Duration::from_micros(156_250) && took <= Duration::from_millis(157),
        "{took:?}"
    );
    assert_eq!(control.position().compressed_gap, None);
}

#[tokio::test(start_paused = true)]
async fn events_queued_before_a_seek_are_dropped_by_follow() {
    let j = fixture();
    let (mut client, control) = player::start(j.clone(), opts(64.0)).unwrap();
    // Let the feed fill up (events 0..=50) without reading it, then seek past it.
    let mut pos = control.subscribe();
    while control.position().index < 50 {
        pos.changed().await.unwrap();
    }
    control.pause();
    control.seek(60);
    let mut view = control.state();
    let mut queued = 0;
    while let Ok(e) = client.events.try_recv() {
        assert!(!follow(&mut view, &e), "stale event {} applied", e.seq);
        queued += 1;
    }
    assert_eq!(queued, 51);
    assert_eq!(view, SessionState::fold(&j.events[..=60]));
    // Back to 10 and play to the end: the view follows exactly.
    control.seek(10);
    view = control.state();
    control.resume();
    while view.last_seq as usize != j.events.len() {
        let e = recv(&mut client).await;
        assert!(follow(&mut view, &e));
    }
    assert_eq!(view, SessionState::fold(&j.events));
}

#[tokio::test(start_paused = true)]
async fn jumps_and_random_seeks_show_exactly_the_folded_state() {
    let j = fixture();
    let (_client, control) = player::start(j.clone(), opts(1.0)).unwrap();
    control.pause();
    let fold_to = |i: usize| SessionState::fold(&j.events[..=i]);
    let tl = control.timeline().clone();

    control.next_step();
    let i = control.position().index;
    assert_eq!(i, tl.step_boundaries()[0]);
    assert!(matches!(
        j.events[i].event,
        Event::PromptOpened { step: 0, .. }
    ));
    assert_eq!(control.state(), fold_to(i));
    control.next_step();
    control.next_step();
    assert_eq!(control.position().index, tl.step_boundaries()[2]);
    control.prev_step();
    assert_eq!(control.position().index, tl.step_boundaries()[1]);
    assert_eq!(control.state(), fold_to(tl.step_boundaries()[1]));

    control.to_start();
    control.next_decision();
    let d = control.position();
    assert_eq!(d.index, tl.decisions()[0].0);
    assert_eq!(d.decision, Some(DecisionKind::Confirmed));
    assert_eq!(d.step, Some(0));
    control.to_end();
    assert!(control.position().at_end);
    assert_eq!(control.state(), SessionState::fold(&j.events));
    control.prev_decision();
    assert_eq!(control.position().index, tl.decisions().last().unwrap().0);
    control.to_start();
    assert_eq!(control.position().index, 0);
    assert_eq!(control.state(), fold_to(0));

    // Property-style: seeks in a fixed pseudo-random order, forward and backward, with the
    // incremental cache in between.
    let mut x: u64 = 0x1234_5678_9abc_def1;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x % j.events.len() as u64) as usize;
        control.seek(i);
        assert_eq!(control.state(), fold_to(i), "seek to {i}");
        control.seek(i + 3);
        let k = (i + 3).min(j.events.len() - 1);
        assert_eq!(control.state().last_seq, k as u64 + 1);
        assert_eq!(control.state(), fold_to(k), "step on to {k}");
    }
    assert!(control.position().paused);
}

#[tokio::test(start_paused = true)]
async fn a_folding_view_stays_exact_across_seeks_while_playing() {
    let j = fixture();
    let (mut client, control) = player::start(j.clone(), opts(8.0)).unwrap();
    let mut view = SessionState::empty();
    let mut epoch = 0;
    let mut seeks = vec![40usize, 5, 60, 2, 30];
    let mut received = 0;
    loop {
        let e = recv(&mut client).await;
        let p = control.position();
        if p.epoch != epoch {
            epoch = p.epoch;
            view = control.state();
        }
        follow(&mut view, &e);
        received += 1;
        if received % 5 == 0 {
            if let Some(s) = seeks.pop() {
                control.seek(s);
            }
        }
        if p.at_end && view.last_seq as usize == j.events.len() {
            break;
        }
    }
    assert!(seeks.is_empty());
    assert_eq!(view, SessionState::fold(&j.events));
}

#[tokio::test(start_paused = true)]
async fn from_step_starts_just_before_the_step_comes_up() {
    let j = fixture();
    let o = ReplayOptions {
        from_step: Some("upgrade@node2".into()),
        ..opts(1.0)
    };
    let (mut client, control) = player::start(j.clone(), o).unwrap();
    let tl = control.timeline().clone();
    let first = tl.first_event_of_step(5).unwrap();
    assert_eq!(control.position().index, first - 1);
    // History up to there arrives at once.
    let t0 = Instant::now();
    for want in &j.events[..first] {
        assert_eq!(&recv(&mut client).await, want);
    }
    assert_eq!(t0.elapsed(), Duration::ZERO);
    let e = recv(&mut client).await;
    assert!(matches!(e.event, Event::PromptOpened { step: 5, .. }));
    assert_eq!(control.position().step, Some(5));

    let by_number = ReplayOptions {
        from_step: Some("6".into()),
        ..opts(1.0)
    };
    let (_c, c2) = player::start(j.clone(), by_number).unwrap();
    assert_eq!(c2.position().index, first - 1);
    let bad = ReplayOptions {
        from_step: Some("upgrade@node9".into()),
        ..opts(1.0)
    };
    assert!(matches!(
        player::start(j.clone(), bad).err(),
        Some(ReplayError::UnknownStep(s)) if s == "upgrade@node9"
    ));
    let empty = Journal {
        events: Vec::new(),
        ..j
    };
    assert!(matches!(
        player::start(empty, opts(1.0)).err(),
        Some(ReplayError::Empty)
    ));
    let dir = tempfile::tempdir().unwrap();
    let not_a_journal = dir.path().join("x.txt");
    std::fs::write(&not_a_journal, "just text\n").unwrap();
    let err = player::open(&not_a_journal, opts(1.0)).unwrap_err();
    assert!(
        err.to_string().contains("not a flightdeck journal"),
        "{err}"
    );
    let (_c, c3) =
        player::open(&builder::fixture_path("rolling-upgrade.jsonl"), opts(1.0)).unwrap();
    assert_eq!(c3.position().total, 68);
}

#[tokio::test(start_paused = true)]
async fn a_replay_refuses_every_command() {
    let (client, _control) = player::start(fixture(), opts(1.0)).unwrap();
    let r = client
        .commands
        .send(Command::Note {
            text: "hello".into(),
        })
        .await;
    assert!(r.unwrap_err().0.contains("replay"));
    let r = client
        .commands
        .send(Command::Abort {
            rollback: true,
            reason: None,
        })
        .await;
    assert!(r.is_err());
}

#[tokio::test(start_paused = true)]
async fn stops_pause_before_each_decision_and_resume_delivers_it() {
    let j = fixture();
    let (mut client, control) = player::start(j.clone(), opts(64.0)).unwrap();
    let decisions: Vec<usize> = control
        .timeline()
        .decisions()
        .iter()
        .map(|(i, _)| *i)
        .collect();
    control.set_stops(decisions.iter().copied());
    let mut stopped_at = Vec::new();
    let mut pos = control.subscribe();
    loop {
        // Take every event the player sends until it stops or ends.
        while let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_millis(1), client.events.recv()).await
        {}
        let p = pos.borrow_and_update().clone();
        if let Some(s) = p.stopped_before {
            assert!(p.paused);
            assert_eq!(p.index + 1, s);
            assert_eq!(control.state(), SessionState::fold(&j.events[..s]));
            stopped_at.push(s);
            control.resume();
        } else if p.at_end {
            break;
        } else {
            pos.changed().await.unwrap();
        }
    }
    assert_eq!(stopped_at, decisions);
}

#[tokio::test(start_paused = true)]
async fn a_journal_opened_from_its_file_plays_and_seeks_like_one_read_whole() {
    let j = fixture();
    let (mut client, control) =
        player::open(&builder::fixture_path("rolling-upgrade.jsonl"), opts(64.0)).unwrap();
    for want in j.events.iter().take(10) {
        assert_eq!(&recv(&mut client).await, want);
    }
    control.pause();
    let fold_to = |i: usize| SessionState::fold(&j.events[..=i]);
    control.to_end();
    assert!(control.position().at_end);
    assert_eq!(control.state(), SessionState::fold(&j.events));
    control.to_start();
    control.next_decision();
    let d = control.position();
    assert_eq!(d.decision, Some(DecisionKind::Confirmed));
    assert_eq!(control.state(), fold_to(d.index));
    for i in [40, 3, 60, 61, 62, 10] {
        control.seek(i);
        assert_eq!(control.state(), fold_to(i), "seek to {i}");
    }
    // Playing on from a seek reads the events that follow from the file.
    let mut pos = control.subscribe();
    control.resume();
    while control.position().index < 13 {
        pos.changed().await.unwrap();
    }
    control.pause();
    let i = control.position().index;
    assert_eq!(control.state(), fold_to(i));
}
