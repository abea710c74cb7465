//! Expansion of procedures into plans: loops, ordering, nesting, `when`, templates, bindings and
//! the version path.

use std::path::{Path, PathBuf};

use flightdeck::plan::expand::{build_plan, PlanError, PlanOptions};
use flightdeck::plan::{Confirm, Plan};
use flightdeck::procedure::load::{load_procedure, LoadedProcedure};
use flightdeck::procedure::model::Action;
use flightdeck::target::Target;
use flightdeck::target_load::load_target;

const TARGET: &str = r#"
name = "t"
[vars]
current_version = "1.25.10"
[secrets.token]
env = "T_TOKEN"
[[nodes]]
name = "n1"
address = "10.0.0.1:8080"
role = "leader"
tags = { group = "blue", rack = "r1" }
[[nodes]]
name = "n2"
address = "10.0.0.2:8080"
role = "follower"
tags = { group = "green", rack = "r2" }
[[nodes]]
name = "n3"
address = "10.0.0.3:8080"
role = "follower"
tags = { group = "blue", rack = "r3" }
[[probes]]
name = "health"
kind = "tcp"
address = "${node.address}"
[actions.restart]
kind = "run"
argv = ["systemctl", "restart", "${arg.unit}@${node.name}"]
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    lp: LoadedProcedure,
    target: Target,
}

fn catalog_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("procedures/catalog")
}

fn fixture(procedure: &str) -> Fixture {
    fixture_with(procedure, TARGET)
}

fn fixture_with(procedure: &str, target: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog");
    std::fs::create_dir(&cat).unwrap();
    for f in ["weaviate.toml", "milvus.toml"] {
        std::fs::copy(catalog_dir().join(f), cat.join(f)).unwrap();
    }
    let p = dir.path().join("p.toml");
    std::fs::write(&p, procedure).unwrap();
    let t = dir.path().join("t.toml");
    std::fs::write(&t, target).unwrap();
    let lp = load_procedure(&p).unwrap_or_else(|d| panic!("{d}"));
    let target = load_target(&t).unwrap_or_else(|d| panic!("{d}"));
    Fixture {
        _dir: dir,
        lp,
        target,
    }
}

fn plan(f: &Fixture, from: Option<&str>, to: Option<&str>) -> Result<Plan, PlanError> {
    build_plan(
        &f.lp,
        &f.target,
        &PlanOptions {
            from_version: from.map(str::to_string),
            to_version: to.map(str::to_string),
            catalog_dir: PathBuf::new(),
        },
    )
}

fn keys(p: &Plan) -> Vec<&str> {
    p.steps.iter().map(|s| s.key.as_str()).collect()
}

#[test]
fn a_node_loop_block_is_item_outer_steps_inner() {
    let f = fixture(
        r#"
name = "p"
product = "generic"
to = "2.0"
[[steps]]
id = "start"
title = "Start"
action = { kind = "manual", text = "go" }
[[steps]]
id = "a"
title = "A ${node.name}"
for_each = "nodes"
action = { kind = "lb", node = "${node.name}", state = "drain" }
[[steps]]
id = "b"
title = "B ${node.index}/${nodes.count}"
for_each = "nodes"
action = { kind = "manual", text = "${node.url} ${node.host} ${node.port} ${node.role} ${node.rack}" }
[[steps]]
id = "end"
title = "End"
action = { kind = "manual", text = "done" }
"#,
    );
    let p = plan(&f, None, None).unwrap();
    assert_eq!(
        keys(&p),
        vec!["start", "a@n1", "b@n1", "a@n2", "b@n2", "a@n3", "b@n3", "end"]
    );
    let b2 = &p.steps[4];
    assert_eq!(b2.title, "B 2/3");
    assert_eq!(b2.node.as_deref(), Some("n2"));
    assert_eq!(b2.progress.as_deref(), Some("node 2/3"));
    assert_eq!(
        b2.action,
        Action::Manual {
            text: "http://10.0.0.2:8080 10.0.0.2 8080 follower r2".into()
        }
    );
    assert_eq!(p.steps[0].progress, None);
    assert_eq!(p.procedure_hash, f.lp.hash);
}

#[test]
fn select_and_order() {
    let f = fixture(
        r#"
name = "p"
product = "generic"
[loops.followers_first]
over = "nodes"
order = ["role=follower", "*"]
[loops.leader_last]
over = "nodes"
order = ["*", "name=n1"]
[loops.blue]
over = "nodes"
select = "group=blue"
order = ["rack=r3"]
[[steps]]
id = "f"
title = "x"
for_each = "followers_first"
action = { kind = "manual", text = "x" }
[[steps]]
id = "l"
title = "x"
for_each = "leader_last"
action = { kind = "manual", text = "x" }
[[steps]]
id = "b"
title = "x"
for_each = "blue"
action = { kind = "manual", text = "x" }
"#,
    );
    let p = plan(&f, None, None).unwrap();
    assert_eq!(
        keys(&p),
        vec!["f@n2", "f@n3", "f@n1", "l@n2", "l@n3", "l@n1", "b@n3", "b@n1"]
    );
    assert_eq!(p.steps[7].progress.as_deref(), Some("node 2/2"));
}

const HOPS_WITHIN: &str = r#"
name = "w"
product = "weaviate"
[path]
strategy = "minor-steps"
[loops.each_hop]
over = "hops"
[loops.each_node]
over = "nodes"
within = "each_hop"
order = ["role=follower", "*"]
[[steps]]
id = "backup"
title = "Backup before ${hop.version}"
for_each = "each_hop"
action = { kind = "manual", text = "${hop.from} -> ${hop.version} (${hop.minor}, hop ${hop.index})" }
[[steps]]
id = "upgrade"
title = "Upgrade ${node.name} to ${hop.version}"
for_each = "each_node"
action = { kind = "call", name = "restart", args = { unit = "weaviate-${hop.minor}" } }
[[steps]]
id = "sync"
title = "Raft sync"
for_each = "each_hop"
when = "hop.sync_gate"
action = { kind = "wait", probe = "health", nodes = "all" }
[[steps]]
id = "migrate"
title = "Raft migration"
for_each = "each_hop"
when = "hop.raft == \"true\""
action = { kind = "manual", text = "check the raft migration" }
"#;

#[test]
fn nested_loops_interleave_per_hop() {
    let f = fixture(HOPS_WITHIN);
    let p = plan(&f, None, Some("1.27.5")).unwrap();
    assert_eq!(p.from_version.as_deref(), Some("1.25.10"));
    assert_eq!(p.hops, vec!["1.26.18", "1.27.5"]);
    assert_eq!(
        keys(&p),
        vec![
            "backup@1.26.18",
            "upgrade@1.26.18/n2",
            "upgrade@1.26.18/n3",
            "upgrade@1.26.18/n1",
            "sync@1.26.18",
            "backup@1.27.5",
            "upgrade@1.27.5/n2",
            "upgrade@1.27.5/n3",
            "upgrade@1.27.5/n1",
            "sync@1.27.5",
        ]
    );
    assert_eq!(
        p.steps[0].action,
        Action::Manual {
            text: "1.25.10 -> 1.26.18 (1.26, hop 1)".into()
        }
    );
    assert_eq!(
        p.steps[5].action,
        Action::Manual {
            text: "1.26.18 -> 1.27.5 (1.27, hop 2)".into()
        }
    );
    let up = &p.steps[7];
    assert_eq!(up.progress.as_deref(), Some("hop 1.27.5 (2/2) · node 2/3"));
    assert_eq!(up.node.as_deref(), Some("n3"));
    // The call is replaced by the target's binding, with `arg.*` and the step's own variables.
    assert_eq!(
        up.action,
        Action::Run {
            argv: vec![
                "systemctl".into(),
                "restart".into(),
                "weaviate-1.27@n3".into()
            ],
            env: Default::default(),
            stdin: None,
            cwd: None,
            timeout_secs: 600,
            expect_exit: 0,
        }
    );
}

#[test]
fn weaviate_old_clusters_take_the_detour_and_the_raft_hop() {
    let f = fixture(HOPS_WITHIN);
    let p = plan(&f, Some("1.22.4"), Some("1.26.3")).unwrap();
    assert_eq!(p.hops, vec!["1.23.16", "1.24.26", "1.25.34", "1.26.3"]);
    let migrate: Vec<&str> = keys(&p)
        .into_iter()
        .filter(|k| k.starts_with("migrate") || k.starts_with("sync"))
        .collect();
    assert_eq!(migrate, vec!["migrate@1.25.34", "sync@1.26.3"]);
}

#[test]
fn weaviate_hops_and_downgrades_from_the_catalog() {
    use flightdeck::procedure::catalog::{Catalog, CatalogError};
    let c = Catalog::load(&catalog_dir().join("weaviate.toml")).unwrap();
    let hops = c.hops("1.25.10", "1.27.3").unwrap();
    let v: Vec<&str> = hops.iter().map(|h| h.version.as_str()).collect();
    assert_eq!(v, vec!["1.26.18", "1.27.3"]);
    assert_eq!(hops[0].flags["sync_gate"], "true");
    assert_eq!(hops[0].flags["raft"], "false");
    assert_eq!(hops[0].flags["detour"], "false");
    let hops = c.hops("1.22.4", "1.26.3").unwrap();
    assert_eq!(hops[0].version, "1.23.16");
    assert_eq!(hops[0].flags["detour"], "true");
    assert_eq!(hops[2].from, "1.24.26");
    assert_eq!(hops[2].flags["raft"], "true");
    // Same minor, a later patch: one hop.
    let v: Vec<String> = c
        .hops("1.26.3", "1.26.11")
        .unwrap()
        .into_iter()
        .map(|h| h.version)
        .collect();
    assert_eq!(v, vec!["1.26.11"]);
    // Downgrades: fine above the floor, refused below it with the reason.
    assert_eq!(c.hops("1.28.14", "1.27.26").unwrap().len(), 1);
    assert_eq!(c.hops("1.28.5", "1.27.20").unwrap().len(), 1);
    let err = c.hops("1.28.14", "1.27.20").unwrap_err();
    assert!(matches!(err, CatalogError::BelowFloor { .. }));
    assert!(
        err.to_string().starts_with(
            "downgrading weaviate from 1.28.14 to 1.27.20 is refused: from 1.28.13 on"
        ),
        "{err}"
    );
    assert!(c.hops("1.31.2", "1.26.1").is_err());
    let m = Catalog::load(&catalog_dir().join("milvus.toml")).unwrap();
    assert!(matches!(
        m.hops("2.4.5", "2.3.1"),
        Err(CatalogError::DowngradeRefused { .. })
    ));
    let v: Vec<String> = m
        .hops("2.1.4", "2.4.5")
        .unwrap()
        .into_iter()
        .map(|h| h.version)
        .collect();
    assert_eq!(v, vec!["2.2.16", "2.3.22", "2.4.5"]);
}

#[test]
fn downgrade_refusal_surfaces_as_a_plan_error() {
    let f = fixture(HOPS_WITHIN);
    let err = plan(&f, Some("1.29.6"), Some("1.26.1")).unwrap_err();
    assert!(matches!(err, PlanError::Path(_)), "{err}");
}

const WHEN: &str = r#"
name = "p"
product = "generic"
from = ">= 2.0, < 3.0"
to = "2.3.0"
[vars]
flavour = "plain"
[[steps]]
id = "fix"
title = "Fix for 2.2.0-2.2.2"
when = "from_version < 2.2.3 && from_version >= 2.2.0"
action = { kind = "manual", text = "fix" }
[[steps]]
id = "line"
title = "Only from the 2.1 line"
when = "from_version ~ \"2.1\" || flavour == \"spicy\""
action = { kind = "manual", text = "line" }
[[steps]]
id = "leader"
title = "Leader only"
for_each = "nodes"
when = "!(node.role != \"leader\")"
confirm = "phrase"
phrase = "restart ${node.name} on ${target}"
approvals = 2
action = { kind = "http", method = "POST", url = "${node.url}/restart", headers = { Authorization = "Bearer ${secret.token}" }, body = "$${not a template}" }
"#;

#[test]
fn when_is_evaluated_per_instance() {
    let f = fixture(WHEN);
    let p = plan(&f, Some("2.2.1"), None).unwrap();
    assert_eq!(keys(&p), vec!["fix", "leader@n1"]);
    let p = plan(&f, Some("2.1.7"), None).unwrap();
    assert_eq!(keys(&p), vec!["line", "leader@n1"]);
    let p = plan(&f, Some("2.2.3"), None).unwrap();
    assert_eq!(keys(&p), vec!["leader@n1"]);
}

#[test]
fn templates_leave_secrets_and_fill_the_rest() {
    let f = fixture(WHEN);
    let p = plan(&f, Some("2.2.3"), None).unwrap();
    let s = &p.steps[0];
    assert_eq!(
        s.confirm,
        Confirm::Phrase {
            phrase: "restart n1 on t".into()
        }
    );
    assert_eq!(s.approvals, 2);
    let Action::Http(h) = &s.action else {
        panic!("expected http, got {:?}", s.action)
    };
    assert_eq!(h.url, "http://10.0.0.1:8080/restart");
    assert_eq!(h.headers["Authorization"], "Bearer ${secret.token}");
    assert_eq!(h.body.as_deref(), Some("${not a template}"));
}

#[test]
fn from_constraint_and_unknown_current_version() {
    let f = fixture(WHEN);
    // The target says 1.25.10, outside `>= 2.0, < 3.0`.
    let err = plan(&f, None, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the current version 1.25.10 does not satisfy this procedure's `from = \">= 2.0, < 3.0\"`"
    );
    let no_version = TARGET.replace("current_version = \"1.25.10\"", "");
    let f = fixture_with(WHEN, &no_version);
    assert_eq!(
        plan(&f, None, None).unwrap_err().to_string(),
        "the current version is unknown: pass --from or set vars.current_version in the target"
    );
}

#[test]
fn unknown_variable_at_plan_time_names_the_step() {
    // Checked without a target, any `node.*` tag may exist; this target has no `zone` tag.
    let f = fixture(
        r#"
name = "p"
product = "generic"
[[steps]]
id = "z"
title = "Zone"
for_each = "nodes"
action = { kind = "manual", text = "${node.zone}" }
"#,
    );
    assert_eq!(
        plan(&f, None, None).unwrap_err().to_string(),
        "step `z@n1`: action.text: unknown variable `node.zone`"
    );
}

#[test]
fn the_example_expands() {
    let lp = load_procedure(Path::new("procedures/example-every-kind.toml")).unwrap();
    let t = load_target(Path::new("procedures/targets/example.toml")).unwrap();
    let p = build_plan(&lp, &t, &PlanOptions::default()).unwrap();
    assert_eq!(p.steps.len(), 18);
    assert_eq!(p.hops, vec!["2.1.0"]);
    assert_eq!(p.first_irreversible(), Some(16));
    // Coming from 2.x the legacy reindex is skipped.
    let p = build_plan(
        &lp,
        &t,
        &PlanOptions {
            from_version: Some("2.0.1".into()),
            ..PlanOptions::default()
        },
    )
    .unwrap();
    assert!(p.steps.iter().all(|s| s.step_id != "reindex"));
}

#[test]
fn a_gate_check_over_many_nodes_keeps_node_placeholders_for_run_time() {
    let f = fixture(
        r#"
name = "p"
product = "generic"
to = "2.0"
[[steps]]
id = "synced"
title = "Every node synchronized"
action = { kind = "wait", nodes = "all", stable_secs = 1, check = { kind = "http", url = "${node.url}/v1/cluster/statistics", expect_json = { "/synchronized" = true, "/statistics#len" = "${nodes.count}" } } }
"#,
    );
    let diags = flightdeck::procedure::validate::validate(&f.lp, Some(&f.target));
    assert!(diags.is_empty(), "{diags}");
    let p = plan(&f, None, None).unwrap();
    let Action::Wait(w) = &p.steps[0].action else {
        panic!("not a wait")
    };
    let Some(flightdeck::procedure::model::Check::Http(h)) = &w.check else {
        panic!("not an http check")
    };
    // Filled per node by the gate; everything else is filled now.
    assert_eq!(h.url, "${node.url}/v1/cluster/statistics");
    assert_eq!(h.expect_json["/statistics#len"], serde_json::json!("3"));
}

/// The plan records which steps start and stop no node — a named call of `backup` or
/// `install`, as action or undo — so that a node's crash is never put down to them; a call of
/// anything else (`restart` here) may move a node, and is not recorded.
#[test]
fn backups_and_installs_are_known_to_start_and_stop_nothing() {
    let target = format!(
        "{TARGET}\n[actions.backup]\nkind = \"run\"\nargv = [\"backup\", \"${{node.name}}\"]\n\
         [actions.install]\nkind = \"run\"\nargv = [\"install\", \"${{arg.version}}\"]\n"
    );
    let f = fixture_with(
        r#"
name = "p"
product = "generic"
to = "2.0"
[[steps]]
id = "backup"
title = "Back up ${node.name}"
for_each = "nodes"
action = { kind = "call", name = "backup" }
[[steps]]
id = "install"
title = "Install"
action = { kind = "call", name = "install", args = { version = "2.0" } }
undo = { kind = "call", name = "install", args = { version = "1.0" } }
[[steps]]
id = "restart"
title = "Restart ${node.name}"
for_each = "nodes"
action = { kind = "call", name = "restart", args = { unit = "db" } }
undo = { kind = "call", name = "install", args = { version = "1.0" } }
"#,
        &target,
    );
    let p = plan(&f, None, None).unwrap();
    let keeps = &p.keeps_state;
    assert_eq!(
        keeps.action.iter().map(String::as_str).collect::<Vec<_>>(),
        vec!["backup@n1", "backup@n2", "backup@n3", "install"]
    );
    assert_eq!(
        keeps.undo.iter().map(String::as_str).collect::<Vec<_>>(),
        vec!["install", "restart@n1", "restart@n2", "restart@n3"]
    );
}
