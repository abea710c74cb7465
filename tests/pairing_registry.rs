//! Finding sessions by name through the default runtime directory (overridden by
//! `FLIGHTDECK_RUNTIME_DIR`; this file holds one test so the variable is set once, alone).

use std::time::Duration;

use flightdeck::engine::event::AutoConfirm;
use flightdeck::engine::session::{self, EngineConfig};
use flightdeck::pairing::runtime_dir::ENV_OVERRIDE;
use flightdeck::pairing::server::{serve, ServeOptions};
use flightdeck::pairing::{client, names, registry, PairingError};
use flightdeck::plan::{Confirm, Plan, PlannedStep};
use flightdeck::procedure::model::{Action, Downtime};
use flightdeck::target::Target;

fn engine(dir: &std::path::Path, journal: &str) -> session::EngineTask {
    let step = PlannedStep {
        key: "a".into(),
        step_id: "a".into(),
        title: "a".into(),
        runbook: String::new(),
        downtime: Downtime::None,
        confirm: Confirm::Yes,
        approvals: 1,
        irreversible: None,
        node: None,
        progress: None,
        action: Action::Run {
            argv: vec!["true".into()],
            env: Default::default(),
            stdin: None,
            cwd: None,
            timeout_secs: 10,
            expect_exit: 0,
        },
        undo: None,
        overrides: Vec::new(),
        optional: None,
    };
    session::start(EngineConfig {
        plan: Plan {
            procedure: "registry-test".into(),
            product: "generic".into(),
            target: "t".into(),
            steps: vec![step],
            ..Default::default()
        },
        target: Target {
            name: "t".into(),
            product: None,
            vars: Default::default(),
            secrets: Default::default(),
            nodes: vec![],
            scheme: None,
            lb: None,
            probes: vec![],
            actions: Default::default(),
            traffic: None,
            overrides: Default::default(),
        },
        auto: AutoConfirm::default(),
        operator: "tester".into(),
        journal: dir.join(journal),
        observe: false,
        time_scale: 1.0,
    })
    .unwrap()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test]
async fn sessions_are_listed_and_joined_by_name_or_as_the_only_one() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tmp.path().join("rt");
    // SAFETY: the only test in this binary; set before anything reads the environment.
    unsafe { std::env::set_var(ENV_OVERRIDE, &rt) };

    assert!(matches!(
        client::connect(None, "alice", None, true).await,
        Err(PairingError::NoSession)
    ));
    let first = names::generate();
    let a = engine(tmp.path(), "a.jsonl");
    let guard_a = serve(a.handle.clone(), &first, ServeOptions::default())
        .await
        .unwrap();
    assert!(guard_a.socket_path().starts_with(&rt));

    // The only session: joined without naming it.
    let c = client::connect(None, "alice", Some("alice@laptop"), true)
        .await
        .unwrap();
    assert_eq!(c.operator, "alice@laptop");

    let b = engine(tmp.path(), "b.jsonl");
    let _guard_b = serve(b.handle.clone(), "second", ServeOptions::default())
        .await
        .unwrap();
    let err = client::connect(None, "bob", None, false).await.unwrap_err();
    assert!(
        matches!(err, PairingError::Ambiguous(ref n) if n.len() == 2),
        "{err}"
    );
    let c2 = client::connect(Some("second"), "bob", None, false)
        .await
        .unwrap();
    assert_eq!(c2.operator, "bob");
    assert!(matches!(
        client::connect(Some("nope"), "bob", None, false).await,
        Err(PairingError::NoSuchSession(_))
    ));

    let listed = blocking(registry::list).await;
    let mut names: Vec<&str> = listed.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    let mut want = vec![first.as_str(), "second"];
    want.sort();
    assert_eq!(names, want);
    assert!(listed
        .iter()
        .all(|s| s.alive && s.procedure == "registry-test"));

    // Alice (attached to the first) shows in its status; the table renders both.
    let rows = blocking(move || {
        registry::list()
            .into_iter()
            .map(|s| {
                let st = registry::status(&s.socket).map_err(|e| e.to_string());
                (s, st)
            })
            .collect::<Vec<_>>()
    })
    .await;
    let table = registry::render_table(&rows);
    let line = table.lines().find(|l| l.starts_with(&first)).unwrap();
    assert!(
        line.contains("alice@laptop (") && line.contains("1/1"),
        "{table}"
    );

    // A session whose server is gone disappears from the list.
    drop(guard_a);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while blocking(registry::list).await.len() != 1 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(c);
    drop(c2);
}
