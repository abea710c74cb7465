//! procedures/elasticsearch-rolling.toml on its data-made lab (procedures/labs/elasticsearch.toml),
//! through the binary as an operator runs it: end to end under load, and stopped by a staged
//! fault with Elasticsearch's own reason. And the proof that a new product needs no Rust: a
//! procedure and a personality file written here, run on the lab.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flightdeck::engine::event::Event;
use flightdeck::journal;

fn flightdeck(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flightdeck"))
        .args(args)
        .env("HOME", home)
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

/// `run procedures/elasticsearch-rolling.toml --lab --headless --yes --load 20` plus `extra`,
/// journaled in `dir`: what the run printed, and where its journal is.
fn run_on_lab_under_load(dir: &Path, extra: &[&str]) -> (Output, String, PathBuf) {
    let journal = dir.join("es.jsonl");
    let mut args = vec![
        "run",
        "procedures/elasticsearch-rolling.toml",
        "--lab",
        "--headless",
        "--yes",
        "--load",
        "20",
        "--journal",
        journal.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = flightdeck(dir, &args);
    let log = text(&out);
    (out, log, journal)
}

#[test]
fn the_elasticsearch_procedure_runs_end_to_end_on_its_data_made_lab_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let (out, log, journal_path) = run_on_lab_under_load(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("completed: 34/34 steps"), "{log}");
    // Every node went through the page's sequence, master-eligible nodes in target order, and
    // the traffic went on through the balancer.
    for node in ["node1", "node2", "node3"] {
        for step in [
            "allocation-primaries",
            "flush",
            "stop",
            "install",
            "start",
            "joined",
            "allocation-all",
            "green",
        ] {
            assert!(
                log.contains(&format!("{step}@{node} ok")),
                "{step}@{node}:\n{log}"
            );
        }
    }
    let reads: u64 = log
        .split("traffic: ")
        .nth(1)
        .and_then(|t| t.split(" reads ok").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(reads > 0, "no traffic went through the lab:\n{log}");
    let j = journal::read(&journal_path).unwrap();
    assert!(j
        .events
        .iter()
        .any(|e| matches!(e.event, Event::Finished { .. })));
    // One node out at a time: the procedure's guards never had to refuse anything.
    assert!(!j
        .events
        .iter()
        .any(|e| matches!(e.event, Event::GuardRefused { .. })));
}

#[test]
fn a_staged_fault_stops_the_elasticsearch_procedure_with_elasticsearch_own_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (out, log, journal_path) = run_on_lab_under_load(
        dir.path(),
        &["--fault", "fail-migration:node2@step=start@node2"],
    );
    assert_eq!(out.status.code(), Some(1), "{log}");
    // The gate that waits for node2 to join ends at once, failed, with the reason Elasticsearch
    // 9 gives when it refuses to boot on an index from 7.x (IndexMetadataVerifier).
    let last = log
        .lines()
        .find(|l| l.starts_with("stopped: "))
        .unwrap_or_else(|| panic!("no stop line:\n{log}"));
    assert!(last.contains("step 19 (joined@node2) failed"), "{last}");
    assert!(
        last.contains("node2 is failed — the product says: fatal exception while booting Elasticsearch")
            && last.contains("must be marked as read-only using the setting [index.blocks.write] set to [true] before upgrading to 9.1.0."),
        "{last}"
    );
    // node1 was upgraded before; node3 was never touched.
    assert!(log.contains("green@node1 ok"), "{log}");
    assert!(!log.contains("stop@node3 run"), "{log}");
    let j = journal::read(&journal_path).unwrap();
    assert!(j.events.iter().any(
        |e| matches!(&e.event, Event::FaultFired { fault, .. } if fault == "fail-migration:node2")
    ));
}

#[test]
fn the_plan_on_the_lab_shows_every_node_in_the_pages_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = flightdeck(
        dir.path(),
        &[
            "plan",
            "procedures/elasticsearch-rolling.toml",
            "--lab",
            "--format",
            "json",
        ],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["product"], "elasticsearch");
    // The `field` of each element of the plan's `list` that `keep` keeps.
    let pick =
        |list: &str, field: &str, keep: &dyn Fn(&serde_json::Value) -> bool| -> Vec<String> {
            plan[list]
                .as_array()
                .unwrap()
                .iter()
                .filter(|v| keep(v))
                .filter_map(|v| v[field].as_str().map(str::to_string))
                .collect()
        };
    let node1 = pick("steps", "key", &|s| {
        s["key"].as_str().is_some_and(|k| k.ends_with("@node1"))
    });
    assert_eq!(
        node1,
        [
            "allocation-primaries@node1",
            "flush@node1",
            "drain@node1",
            "stop@node1",
            "install@node1",
            "start@node1",
            "joined@node1",
            "allocation-all@node1",
            "green@node1",
            "ready@node1"
        ]
    );
    // The guards, and the steps they watch: each node's drain and stop.
    let guards = pick("guards", "name", &|_| true);
    assert_eq!(guards, ["master-quorum", "one-node-at-a-time"]);
    let takes_out = pick("steps", "key", &|s| s["takes_out"] == "node1");
    assert_eq!(takes_out, ["drain@node1", "stop@node1"]);
}

const TOY_PROCEDURE: &str = r#"
name = "toy-rolling"
product = "toydb"
description = "Restart each node on the new version and wait until it says so."
from = ">= 2.0"
to = "2.1.0"

[[steps]]
id = "stop"
title = "Stop ${node.name}"
for_each = "nodes"
action = { kind = "call", name = "stop" }

[[steps]]
id = "install"
title = "Install ${to_version} on ${node.name}"
for_each = "nodes"
action = { kind = "call", name = "install", args = { version = "${to_version}" } }

[[steps]]
id = "start"
title = "Start ${node.name}"
for_each = "nodes"
action = { kind = "call", name = "start" }

[[steps]]
id = "up"
title = "${node.name} serves ${to_version}"
for_each = "nodes"
confirm = "none"
action = { kind = "wait", nodes = "${node.name}", timeout_secs = 60, check = { kind = "http", url = "${node.url}/about", expect = [{ path = "$.release", value = "${to_version}" }, { path = "$.peers", op = ">=", value = 1 }] } }
"#;

const TOY_LAB: &str = r#"
[product]
name = "toydb"
version = "2.0.3"
to_version = "2.1.0"
readiness = "/ping"

[[derived]]
name = "peers"
value = "(nodes | selectattr('state', 'eq', 'running') | list | length) - 1"

[[route]]
method = "GET"
path = "/ping"
[[route.reply]]
body = "pong"

[[route]]
method = "GET"
path = "/about"
[[route.reply]]
json = "{'release': node.version, 'peers': peers}"
"#;

#[test]
fn a_new_product_needs_only_a_personality_file() {
    let dir = tempfile::tempdir().unwrap();
    let procedure = dir.path().join("toy-rolling.toml");
    std::fs::write(&procedure, TOY_PROCEDURE).unwrap();
    let p = procedure.to_str().unwrap();
    // Without its personality, --lab says what to write.
    let out = flightdeck(dir.path(), &["run", p, "--lab", "--headless", "--yes"]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(log.contains("labs/toydb.toml"), "{log}");
    // With `labs/toydb.toml` next to the procedure, the lab plays it.
    std::fs::create_dir(dir.path().join("labs")).unwrap();
    std::fs::write(dir.path().join("labs/toydb.toml"), TOY_LAB).unwrap();
    let out = flightdeck(
        dir.path(),
        &["run", p, "--lab", "--headless", "--yes", "--nodes", "2"],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("completed: 8/8 steps"), "{log}");
    // --personality names a file explicitly; one for another product is refused.
    let other = dir.path().join("other.toml");
    std::fs::write(&other, TOY_LAB.replace("\"toydb\"", "\"otherdb\"")).unwrap();
    let out = flightdeck(
        dir.path(),
        &["plan", p, "--lab", "--personality", other.to_str().unwrap()],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains("plays \"otherdb\"") && log.contains("\"toydb\""),
        "{log}"
    );
    // A broken personality is refused with its position, by `lab` as by `run --lab`.
    let broken = dir.path().join("labs/toydb.toml");
    std::fs::write(&broken, TOY_LAB.replace("node.version", "node.versoin")).unwrap();
    let out = flightdeck(
        dir.path(),
        &["lab", "--personality", broken.to_str().unwrap()],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains("labs/toydb.toml:22:8: route[1].reply[0].json: unknown name `node.versoin`"),
        "{log}"
    );
    let out = flightdeck(dir.path(), &["run", p, "--lab", "--headless", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("unknown name `node.versoin`"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_real_example_target_checks_and_upgrades_master_eligible_nodes_last() {
    use flightdeck::plan::expand::{build_plan, PlanOptions};
    use flightdeck::procedure::load::load_procedure;
    use flightdeck::procedure::validate::validate;
    use flightdeck::target_load::load_target;
    let lp = load_procedure(Path::new("procedures/elasticsearch-rolling.toml")).unwrap();
    let t = load_target(Path::new(
        "procedures/targets/elasticsearch-rolling.example.toml",
    ))
    .unwrap();
    let d = validate(&lp, Some(&t));
    assert!(d.is_empty(), "{d}");
    let plan = build_plan(&lp, &t, &PlanOptions::default()).unwrap();
    let stops: Vec<&str> = plan
        .steps
        .iter()
        .filter_map(|s| s.key.strip_prefix("stop@"))
        .collect();
    assert_eq!(
        stops,
        [
            "es-data-1",
            "es-data-2",
            "es-master-1",
            "es-master-2",
            "es-master-3"
        ]
    );
    // On the real cluster the quorum guard counts the three master-eligible nodes only.
    let text = flightdeck::plan::render::render_plan(&plan, &t);
    assert!(
        text.contains(
            "Guard master-quorum: of master_eligible=true (es-master-1, es-master-2, \
             es-master-3), at most 1 out of service at once (at most 1 out); 6 steps take one \
             out; enforced by the engine. Why: Elasticsearch elects a master"
        ),
        "{text}"
    );
    assert!(
        text.contains("Guard one-node-at-a-time: of all (es-data-1, es-data-2, es-master-1"),
        "{text}"
    );
}

#[test]
fn check_also_checks_the_products_lab_personality() {
    let dir = tempfile::tempdir().unwrap();
    let out = flightdeck(
        dir.path(),
        &["check", "procedures/elasticsearch-rolling.toml"],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("; lab personality procedures/labs/elasticsearch.toml"),
        "{log}"
    );
    let procedure = dir.path().join("toy-rolling.toml");
    std::fs::write(&procedure, TOY_PROCEDURE).unwrap();
    std::fs::create_dir(dir.path().join("labs")).unwrap();
    let lab = dir.path().join("labs/toydb.toml");
    std::fs::write(
        &lab,
        TOY_LAB.replace("readiness = \"/ping\"", "readiness = \"ping\""),
    )
    .unwrap();
    let out = flightdeck(dir.path(), &["check", procedure.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains("labs/toydb.toml:6:13: product.readiness"),
        "{log}"
    );
}
