//! procedures/milvus-standalone.toml on the lab: `run --lab` starts the lab the procedure is
//! written for (one Milvus server on 2.2.16, to 2.3.5) and upgrades it to the end; `plan --lab`
//! shows the restart's downtime and the point of no return; a Milvus lab of several nodes (a
//! cluster's Deployments) is not a standalone install, and says so. The real server runs the
//! same procedure in tests/real_milvus.rs.

use std::process::{Command, Output};

const PROCEDURE: &str = "procedures/milvus-standalone.toml";

/// The flightdeck binary from the repository root with the fast lab.
fn flightdeck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flightdeck"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("FLIGHTDECK_LAB_TIMING", "fast")
        .output()
        .expect("flightdeck runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn plan_on_the_lab_shows_the_restart_downtime() {
    let out = flightdeck(&["plan", PROCEDURE, "--lab"]);
    let plan = text(&out);
    assert!(out.status.success(), "{plan}");
    for line in [
        "Target:    lab-milvus (1 node)",
        "Versions:  2.2.16 -> 2.3.5",
        " 4. stop@node1 — Stop Milvus 2.2.16 on node1  [downtime: full]",
        "Downtime: the service is down from step 4 (stop@node1) until step 11 (collections@node1) \
         is done.",
        "Rollback possible until step 11 (collections@node1): once it is done there is no way back.",
    ] {
        assert!(plan.lines().any(|l| l == line), "no line {line:?}:\n{plan}");
    }
}

#[test]
fn run_on_the_lab_upgrades_the_standalone_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j.jsonl");
    let out = flightdeck(&[
        "run",
        PROCEDURE,
        "--lab",
        "--headless",
        "--yes",
        "--journal",
        journal.to_str().unwrap(),
    ]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("finished: Completed"), "{said}");
    // Every step ran on the lab's own bindings, the last one reading 2.3.5 back.
    assert!(said.contains("[13/13] final-version@node1 ok"), "{said}");
    assert!(
        said.contains("started milvus 2.3.5; healthy after"),
        "{said}"
    );
    assert!(journal.exists());
}

#[test]
fn a_milvus_cluster_lab_is_not_a_standalone_install() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j.jsonl");
    let out = flightdeck(&[
        "run",
        PROCEDURE,
        "--lab",
        "--nodes",
        "2",
        "--headless",
        "--yes",
        "--journal",
        journal.to_str().unwrap(),
    ]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("this Milvus lab is a cluster of 2 Deployments, not a standalone install"),
        "{said}"
    );
}
