//! Finding sessions by name through the default runtime directory (overridden by
//! `FLIGHTDECK_RUNTIME_DIR`; this file holds one test so the variable is set once, alone).

mod common;

use std::path::Path;
use std::time::Duration;

use common::users::other_user;

use flightdeck::engine::event::AutoConfirm;
use flightdeck::engine::session::{self, EngineConfig};
use flightdeck::pairing::registry::SessionFile;
use flightdeck::pairing::runtime_dir::{self, ENV_OVERRIDE};
use flightdeck::pairing::server::{serve, ServeOptions};
use flightdeck::pairing::{client, names, registry, PairingError};
use flightdeck::plan::test_plans::{empty_target, plan, run, step};

fn engine(dir: &std::path::Path, journal: &str) -> session::EngineTask {
    session::start(EngineConfig {
        plan: plan("registry-test", vec![step("a", run(&["true"]))]),
        target: empty_target(),
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

    forged_session_files_are_not_trusted(&rt, "second", &tmp.path().join("b.jsonl")).await;
}

/// Rewrite session `name`'s file in `dir` through `change`.
fn forge(dir: &Path, name: &str, change: impl FnOnce(&mut SessionFile)) {
    let path = runtime_dir::info_path(dir, name);
    let mut file: SessionFile =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    change(&mut file);
    std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
}

/// A session file is a claim anyone can write about any socket: `join` checks the socket's
/// server against it (the kernel's peer credentials), never picks another user's session by
/// itself, and `resume` never advises joining another user's file that claims our journal.
/// (Before the fix every `connect` below joined, and the message named the forged session.)
async fn forged_session_files_are_not_trusted(dir: &Path, name: &str, journal: &Path) {
    let original = std::fs::read_to_string(runtime_dir::info_path(dir, name)).unwrap();
    // Our own file, but the pid is not the server's: "end demo" would signal pid 1.
    forge(dir, name, |f| {
        f.pid = 1;
        f.demo = true;
    });
    let err = client::connect(Some(name), "alice", None, false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PairingError::NotItsServer { .. })
            && err.to_string().contains(&format!(
                "its server is process {}, but its session file says 1",
                std::process::id()
            )),
        "{err}"
    );
    std::fs::write(runtime_dir::info_path(dir, name), &original).unwrap();
    client::connect(Some(name), "alice", None, false)
        .await
        .expect("the true file joins");

    // Another user's file (owned by them, naming them) for a socket they do not serve.
    let Some(peer) = other_user() else { return };
    forge(dir, name, |f| {
        f.owner_uid = peer.uid;
        f.demo = true;
    });
    let info = runtime_dir::info_path(dir, name);
    std::os::unix::fs::chown(&info, Some(peer.uid), Some(peer.gid)).unwrap();
    let listed = blocking(registry::list).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].owner, peer.name);
    // The only live session is theirs: listed with its owner, never joined without a name.
    let err = client::connect(None, "alice", None, false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PairingError::OnlyOthers(_))
            && err
                .to_string()
                .contains(&format!("name it: {name} (owner {})", peer.name)),
        "{err}"
    );
    // Named, it is refused: the socket's server is not that user.
    let err = client::connect(Some(name), "alice", None, false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PairingError::NotItsServer { .. })
            && err.to_string().contains(&format!("(uid {})", peer.uid)),
        "{err}"
    );
    // Their file claims our journal: `resume` does not send us to it.
    let journal = journal.to_path_buf();
    let said = blocking(move || flightdeck::commands::run::live_session_message(&journal)).await;
    assert!(
        !said.contains(&format!("flightdeck join {name}")) && said.contains("flightdeck sessions"),
        "{said}"
    );
}
