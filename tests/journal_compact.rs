//! A quiet session's journal stays small: live subscribers see every probe sample, the journal
//! keeps transitions and periodic summaries only.

use std::time::Duration;

use flightdeck::engine::event::{AutoConfirm, Event};
use flightdeck::engine::session::{self, EngineConfig};
use flightdeck::lab::{Lab, LabConfig, Product, Timing};
use flightdeck::plan::{Confirm, Plan, PlannedStep};
use flightdeck::procedure::model::{Action, Downtime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_probe_samples_add_almost_nothing_to_the_journal() {
    let lab = Lab::start(LabConfig::new(Product::Weaviate, 3, Timing::fast()))
        .await
        .unwrap();
    let mut target = lab.target().clone();
    // Probe fast so a few seconds hold as many samples as minutes of a real session.
    for p in &mut target.probes {
        p.interval_ms = 100;
    }
    if let Some(lb) = &mut target.lb {
        lb.interval_ms = 100;
    }
    let plan = Plan {
        procedure: "quiet".into(),
        product: "weaviate".into(),
        target: target.name.clone(),
        steps: vec![PlannedStep {
            key: "wait-for-operator".into(),
            step_id: "wait-for-operator".into(),
            title: "An operator who is thinking".into(),
            runbook: String::new(),
            downtime: Downtime::None,
            confirm: Confirm::Yes,
            approvals: 1,
            irreversible: None,
            node: None,
            progress: None,
            action: Action::Manual {
                text: "think".into(),
            },
            undo: None,
            overrides: Vec::new(),
            optional: None,
        }],
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quiet.jsonl");
    let task = session::start(EngineConfig {
        plan,
        target,
        auto: AutoConfirm::default(),
        operator: "test".into(),
        journal: path.clone(),
        observe: true,
        time_scale: 1.0,
    })
    .unwrap();
    let (_, mut live) = task.handle.subscribe(0).await.unwrap();
    // Let the first results (transitions, facts, balancer view) land, then measure.
    let mut samples = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut baseline = None;
    while samples < 600 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {samples} samples"
        );
        let Ok(Ok(e)) = tokio::time::timeout(Duration::from_secs(5), live.recv()).await else {
            continue;
        };
        if matches!(e.event, Event::ProbeSample { .. }) {
            samples += 1;
            if samples == 60 {
                baseline = Some(std::fs::metadata(&path).unwrap().len());
            }
        }
    }
    let grown = std::fs::metadata(&path).unwrap().len() - baseline.unwrap();
    // 540 samples is a minute of a real session's probing (9 probe instances, one a second);
    // a 60 s screen recording of a cockpit is about 23 KB.
    assert!(
        grown < 2_000,
        "the journal grew {grown} bytes over 540 steady probe samples"
    );
    task.handle.shutdown().await;
    let _ = task.join.await;
    lab.shutdown().await;
}
