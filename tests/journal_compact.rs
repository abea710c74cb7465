//! A quiet session's journal stays small: live subscribers see every probe sample, the journal
//! keeps transitions and periodic summaries only.

use std::time::Duration;

use flightdeck::engine::event::{AutoConfirm, Event};
use flightdeck::engine::session::{self, EngineConfig};
use flightdeck::lab::{Lab, LabConfig, Product, Timing};
use flightdeck::plan::test_plans::step;
use flightdeck::plan::Plan;
use flightdeck::procedure::model::Action;

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
    let mut thinking = step(
        "wait-for-operator",
        Action::Manual {
            text: "think".into(),
        },
    );
    thinking.title = "An operator who is thinking".into();
    let plan = Plan {
        procedure: "quiet".into(),
        product: "weaviate".into(),
        target: target.name.clone(),
        steps: vec![thinking],
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

/// Every seed procedure's session on its lab (the default session among them: jahia-rolling)
/// journals its start compactly, and reading the journal gives back exactly the plan that was
/// expanded and the target it ran on (less its call bindings, which the plan holds bound).
/// The line stays one JSON line, its plan, nodes and target packed in `deflated`: once
/// inflated, every step has its key, whole or written like another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seed_session_start_reads_back_as_expanded() {
    use flightdeck::commands::check::load_checked;
    use flightdeck::commands::run::{start_lab, LabRequest};
    use flightdeck::plan::expand::{build_plan, PlanOptions};
    let req = LabRequest {
        nodes: None,
        load: 0,
        lb: "embedded",
        faults: &[],
        personality: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut seeds: Vec<_> = std::fs::read_dir("procedures")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 8, "{seeds:?}");
    for seed in seeds {
        let name = seed.file_stem().unwrap().to_string_lossy().to_string();
        // The example of every kind of step is not a lab seed: it has a target of its own.
        let (lab, target_path) = if name == "example-every-kind" {
            (None, "procedures/targets/example.toml".into())
        } else {
            let (lab, path) = start_lab(&seed, &req, &None, &None)
                .await
                .unwrap_or_else(|_| panic!("{name}: the lab starts"));
            (Some(lab), path)
        };
        let (lp, target) = load_checked(&seed, Some(&target_path)).unwrap();
        let target = target.unwrap();
        let plan = build_plan(&lp, &target, &PlanOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let journal = dir.path().join(format!("{name}.jsonl"));
        let task = session::start(EngineConfig {
            plan: plan.clone(),
            target: target.clone(),
            auto: AutoConfirm::default(),
            operator: "test".into(),
            journal: journal.clone(),
            observe: false,
            time_scale: 1.0,
        })
        .unwrap();
        let live = task.handle.snapshot().await.unwrap();
        task.handle.shutdown().await;
        let _ = task.join.await;
        if let Some(lab) = lab {
            lab.shutdown().await;
        }

        let read = flightdeck::journal::read(&journal).unwrap();
        let Event::SessionStarted {
            plan: back,
            nodes,
            target: Some(back_target),
            ..
        } = &read.events[0].event
        else {
            panic!("{name}: no session start with a target");
        };
        assert_eq!(**back, plan, "{name}: the plan read back");
        assert_eq!(live.plan, plan, "{name}: the live plan");
        assert_eq!(nodes, &target.nodes, "{name}");
        let expected = flightdeck::target::Target {
            actions: Default::default(),
            probes: back_target.probes.clone(),
            ..target.clone()
        };
        assert_eq!(**back_target, expected, "{name}: the target read back");
        let names = |t: &flightdeck::target::Target| -> Vec<String> {
            t.probes.iter().map(|p| p.name.clone()).collect()
        };
        assert_eq!(names(back_target), names(&target), "{name}");

        // One JSON line, each step keyed once inflated; smaller than the event written in full.
        let text = std::fs::read_to_string(&journal).unwrap();
        let line = text.lines().nth(1).unwrap();
        assert!(
            line.starts_with("{\"seq\":1,\"t_ms\":"),
            "{name}: {line:.80}"
        );
        let outer: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            outer["operator"], "test",
            "{name}: small members stay plain"
        );
        let v = inflated(&outer);
        let packed = serde_json::to_string(&v).unwrap();
        let steps = v["plan"]["steps"].as_array().unwrap();
        let keys: Vec<&str> = steps.iter().map(|s| s["key"].as_str().unwrap()).collect();
        let want: Vec<&str> = plan.steps.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, want, "{name}");
        let full = serde_json::to_string(&read.events[0]).unwrap();
        let mut ids: Vec<&str> = plan.steps.iter().map(|s| s.step_id.as_str()).collect();
        ids.sort();
        let looped = ids.windows(2).any(|w| w[0] == w[1]);
        if looped {
            assert!(
                packed.contains("\"like\":"),
                "{name}: no step written like another"
            );
        }
        // Smaller than in full; the default session's (a loop of twelve steps over three
        // nodes) under a fifth.
        let most = if name == "jahia-rolling" {
            full.len() / 5
        } else {
            full.len()
        };
        assert!(
            line.len() < most,
            "{name}: {} bytes compact, {} in full",
            line.len(),
            full.len()
        );
        assert!(
            v["target"].get("nodes").is_none(),
            "{name}: the target repeats the nodes"
        );
    }
}

/// The members a session start's line packs in `deflated` (base64 of deflated JSON), inflated.
fn inflated(line: &serde_json::Value) -> serde_json::Value {
    use base64::Engine as _;
    use std::io::Read as _;
    let text = line["deflated"].as_str().expect("a deflated member");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64");
    let mut json = Vec::new();
    flate2::read::DeflateDecoder::new(bytes.as_slice())
        .read_to_end(&mut json)
        .expect("inflates");
    serde_json::from_slice(&json).expect("a JSON object")
}
