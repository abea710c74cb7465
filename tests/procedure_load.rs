//! Loading procedures and targets: good files load, bad files give every error with its position.

use std::path::{Path, PathBuf};

use flightdeck::plan::expand::build_plan;
use flightdeck::plan::Plan;
use flightdeck::procedure::load::{load_procedure, LoadedProcedure};
use flightdeck::procedure::validate::validate;
use flightdeck::target::Target;
use flightdeck::target_load::load_target;

fn errors_of(path: &str) -> Vec<String> {
    let d = load_procedure(Path::new(path)).expect_err("the file should not load");
    d.to_string().lines().map(str::to_string).collect()
}

/// `text` written as `name` in `dir`, for a test to load.
fn write_in(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Procedure `text` written as `p.toml` in `dir` and loaded (it must load).
fn procedure_in(dir: &tempfile::TempDir, text: &str) -> (PathBuf, LoadedProcedure) {
    let path = write_in(dir, "p.toml", text);
    let lp = load_procedure(&path).unwrap_or_else(|d| panic!("{d}"));
    (path, lp)
}

/// The plan of `lp` for `t`, which `check` must pass first.
fn checked_plan(lp: &LoadedProcedure, t: &Target) -> Plan {
    let d = validate(lp, Some(t));
    assert!(d.is_empty(), "{d}");
    build_plan(lp, t, &Default::default()).unwrap()
}

#[test]
fn example_loads_and_checks_against_its_target() {
    let lp = load_procedure(Path::new("procedures/example-every-kind.toml")).unwrap();
    assert_eq!(lp.procedure.name, "example-every-kind");
    assert_eq!(lp.hash.len(), 64);
    assert!(lp.hash.bytes().all(|b| b.is_ascii_hexdigit()));
    let t = load_target(Path::new("procedures/targets/example.toml")).unwrap();
    assert_eq!(t.nodes.len(), 3);
    let d = validate(&lp, Some(&t));
    assert!(d.is_empty(), "{d}");
}

#[test]
fn missing_file_is_one_diagnostic_at_1_1() {
    let e = errors_of("procedures/does-not-exist.toml");
    assert_eq!(
        e,
        vec!["procedures/does-not-exist.toml:1:1: cannot read procedures/does-not-exist.toml: No such file or directory"]
    );
}

#[test]
fn wrong_type_points_at_the_value() {
    assert_eq!(
        errors_of("procedures/bad/wrong-type.toml"),
        vec!["procedures/bad/wrong-type.toml:7:64: `timeout_secs` must be a whole number, not the boolean true"]
    );
}

#[test]
fn unknown_action_kind_is_one_plain_sentence() {
    assert_eq!(
        errors_of("procedures/bad/unknown-kind.toml"),
        vec!["procedures/bad/unknown-kind.toml:7:19: unknown action kind `shell`; expected one of manual, run, http, lb, wait, call"]
    );
}

#[test]
fn duplicate_id() {
    assert_eq!(
        errors_of("procedures/bad/dup-id.toml"),
        vec!["procedures/bad/dup-id.toml:10:6: duplicate step id `a` (first used on line 5)"]
    );
}

#[test]
fn undo_on_wait() {
    assert_eq!(
        errors_of("procedures/bad/undo-on-wait.toml"),
        vec!["procedures/bad/undo-on-wait.toml:8:8: a `wait` step is a gate and has nothing to undo; its `undo` can only be another `wait` (a gate the rollback must pass)"]
    );
}

#[test]
fn rollback_table_names_real_steps() {
    assert_eq!(
        errors_of("procedures/bad/rollback.toml"),
        vec![
            "procedures/bad/rollback.toml:5:15: `undo_first` names an unknown step id `nope`",
            "procedures/bad/rollback.toml:5:23: step `gate` has no `undo`: there is nothing to run first",
        ]
    );
}

#[test]
fn expect_text_must_be_a_valid_regex() {
    assert_eq!(
        errors_of("procedures/bad/expect-text.toml"),
        vec![
            "procedures/bad/expect-text.toml:7:85: `expect_text` is not a valid regex: unclosed group",
            "procedures/bad/expect-text.toml:12:118: `expect_text` is not a valid regex: unclosed character class",
        ]
    );
}

#[test]
fn jsonpath_expectations_are_checked_where_they_are_written() {
    let f = "procedures/bad/expect.toml";
    assert_eq!(
        errors_of(f),
        vec![
            format!("{f}:8:43: `op = \"in\"` needs an array `value`, e.g. [\"green\", \"yellow\"]"),
            format!("{f}:9:38: `op = \">=\"` needs a `value` to compare with (without one, the path must only select something)"),
            // The column is the offending character inside the query (`=` for `==`).
            format!("{f}:17:23: `$[?@.name = ${{node.name}}].version` is not an RFC 9535 JSONPath: in long-hand segment, expected closing ']' (at character 11)"),
            format!("{f}:18:46: `>` with a string compares versions, and `newer` is not one; write a number without quotes to compare numbers"),
        ]
    );
}

#[test]
fn target_overrides_are_checked_for_values_then_against_the_procedure() {
    let f = "procedures/bad/overrides-target.toml";
    let d = load_target(Path::new(f)).unwrap_err();
    assert_eq!(
        d.to_string(),
        format!(
            "{f}:8:16: [overrides.healthy]: `timeout_secs = 0` is out of range: 1 to 604800 (7 days)\n\
             {f}:9:15: [overrides.healthy]: `interval_ms = 1` is out of range: 10 to 3600000\n\
             {f}:11:12: [overrides.nothing]: this override sets nothing; expected timeout_secs, stable_secs or interval_ms"
        )
    );
    let f = "procedures/bad/overrides-fit-target.toml";
    let t = load_target(Path::new(f)).unwrap();
    let lp = load_procedure(Path::new("procedures/example-every-kind.toml")).unwrap();
    let d = validate(&lp, Some(&t));
    assert_eq!(
        d.to_string(),
        format!(
            "{f}:22:12: [overrides.helthy]: procedure `example-every-kind` has no step `helthy` (its steps: announce, backup, drain, upgrade, healthy, ready, reindex, pause-writes, finalize, resume-writes)\n\
             {f}:26:15: [overrides.drain]: `stable_secs` only applies to a `wait` gate; the step's action is `lb`\n\
             {f}:29:15: [overrides.healthy]: the gate could never pass: it must hold 200 s within a 120 s timeout"
        )
    );
}

#[test]
fn unknown_variable_outside_a_node_loop() {
    assert_eq!(
        errors_of("procedures/bad/unknown-var.toml"),
        vec!["procedures/bad/unknown-var.toml:7:45: unknown variable `node.name` (`node.*` is only defined inside a node loop)"]
    );
}

#[test]
fn unknown_loop() {
    assert_eq!(
        errors_of("procedures/bad/unknown-loop.toml"),
        vec!["procedures/bad/unknown-loop.toml:7:12: `for_each` names an undefined loop `each_rack`; defined loops: nodes"]
    );
}

#[test]
fn every_semantic_error_is_reported_in_file_order() {
    let f = "procedures/bad/semantic.toml";
    let want: Vec<String> = [
        "7:10: loops are within each other in a cycle: each_hop -> each_node -> each_hop",
        "11:10: loops are within each other in a cycle: each_node -> each_hop -> each_node",
        "19:6: duplicate step id `a` (first used on line 14)",
        "20:9: unknown variable `nodes.nam`",
        "22:8: a `wait` step is a gate and has nothing to undo; its `undo` can only be another `wait` (a gate the rollback must pass)",
        "27:12: `for_each` names an undefined loop `each_rack`; defined loops: nodes, each_hop, each_node",
        "28:11: `confirm = \"phrase\"` needs a `phrase` for the operator to type",
        "29:13: `approvals` must be 1 or 2, not 3",
        "30:8: cannot parse `when` expression: the expression ends too early",
        "31:33: `run` needs a program: `argv` is empty",
    ]
    .iter()
    .map(|s| format!("{f}:{s}"))
    .collect();
    assert_eq!(errors_of(f), want);
}

#[test]
fn bad_target_files() {
    let d = load_target(Path::new("procedures/bad/bad-target.toml")).unwrap_err();
    assert_eq!(
        d.to_string(),
        "procedures/bad/bad-target.toml:13:8: unknown probe kind `ping`; expected one of http, tcp, run"
    );
    let d = load_target(Path::new("procedures/bad/dup-nodes-target.toml")).unwrap_err();
    let f = "procedures/bad/dup-nodes-target.toml";
    assert_eq!(
        d.to_string(),
        format!(
            "{f}:8:8: duplicate node name `node1` (first used on line 4)\n\
             {f}:9:11: node address `127.0.0.1` is not `host:port` (a host name, IPv4 or \
             [IPv6] address, not starting with `-`, and a port)\n\
             {f}:12:10: unknown load-balancer driver `nginx`; expected one of lab, haproxy"
        )
    );
    let d = load_target(Path::new("procedures/bad/expect-text-target.toml")).unwrap_err();
    let f = "procedures/bad/expect-text-target.toml";
    assert_eq!(
        d.to_string(),
        format!(
            "{f}:11:15: `expect_text` is not a valid regex: unclosed group\n\
             {f}:16:15: `expect_text` is not a valid regex: repetition operator missing expression\n\
             {f}:22:46: `$[?@.name == ${{node.name}}` is not an RFC 9535 JSONPath: in long-hand segment, expected closing ']' (at character 26)"
        )
    );
}

#[test]
fn checks_against_a_target_find_missing_bindings_and_probes() {
    let dir = tempfile::tempdir().unwrap();
    let t = write_in(
        &dir,
        "t.toml",
        "name = \"bare\"\n[[nodes]]\nname = \"n1\"\naddress = \"127.0.0.1:1\"\n",
    );
    let target = load_target(&t).unwrap();
    let lp = load_procedure(Path::new("procedures/example-every-kind.toml")).unwrap();
    let d = validate(&lp, Some(&target)).to_string();
    let f = "procedures/example-every-kind.toml";
    assert!(
        d.contains(&format!("{f}:42:34: target `bare` does not bind action `upgrade_node` (it binds: none); add [actions.upgrade_node] to the target")),
        "{d}"
    );
    assert!(
        d.contains(&format!(
            "{f}:50:35: target `bare` has no probe `health` (it has: none)"
        )),
        "{d}"
    );
    // The secret is not declared by this target either.
    assert!(
        d.contains("unknown secret `admin_token` (the target declares no such secret)"),
        "{d}"
    );
}

#[test]
fn toml_syntax_error_is_one_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_in(&dir, "p.toml", "name = \"x\"\nproduct = \n");
    let d = load_procedure(&p).unwrap_err();
    assert_eq!(d.len(), 1);
    let s = d.to_string();
    assert!(s.contains(":2:11: TOML syntax error: "), "{s}");
    assert!(!s.contains('\n'), "{s}");
}

#[test]
fn missing_key_and_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_in(
        &dir,
        "p.toml",
        "name = \"x\"\nproduct = \"g\"\n[[steps]]\nid = \"a\"\ntitle = \"t\"\naction = { kind = \"manual\", txt = \"hi\" }\n",
    );
    let s = load_procedure(&p).unwrap_err().to_string();
    assert!(
        s.ends_with(":6:29: unknown key `txt` in `steps[0].action`; expected one of text"),
        "{s}"
    );
}

#[test]
fn more_semantic_errors() {
    let f = "procedures/bad/more-semantic.toml";
    let want: Vec<String> = [
        "3:8: `>= banana` is not a version constraint (expected e.g. \">= 1.20, < 2.0\" or \"2.1.*\")",
        "4:6: `two` is not a version (expected numbers separated by dots, like 1.26.11)",
        "7:12: unknown path strategy `zigzag`; expected one of direct, minor-steps",
        "10:8: loop `each_rack` is over `racks`; expected `nodes`, `hops` or `list`",
        "11:10: loop `each_rack` is within an undefined loop `each_zone`",
        "16:10: `phrase` is only used with `confirm = \"phrase\"`",
        "17:36: unknown HTTP method `FETCH`; expected one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS",
        "22:10: a `wait` needs a `probe` (from the target) or an inline `check`",
    ]
    .iter()
    .map(|s| format!("{f}:{s}"))
    .collect();
    assert_eq!(errors_of(f), want);
}

#[test]
fn lb_state_outside_the_enum() {
    assert_eq!(
        errors_of("procedures/bad/lb-state.toml"),
        vec!["procedures/bad/lb-state.toml:7:49: unknown `state` value `down`; expected one of ready, drain, maint"]
    );
}

#[test]
fn hash_is_hex_sha256_of_the_bytes() {
    assert_eq!(
        flightdeck::procedure::load::hex_sha256(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let path = Path::new("procedures/example-every-kind.toml");
    let lp = load_procedure(path).unwrap();
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(lp.hash, flightdeck::procedure::load::hex_sha256(&bytes));
    let again =
        flightdeck::procedure::load::parse_procedure(path, String::from_utf8(bytes).unwrap())
            .unwrap();
    assert_eq!(again.hash, lp.hash);
}

#[test]
fn structural_errors_read_as_sentences() {
    let p = Path::new("x.toml");
    let cases = [
        ("name = \"x\"\nproduct = \"g\"\n", "x.toml:1:1: missing required key `steps`"),
        ("name = \"x\"\nproduct = \"g\"\nsteps = []\n", "x.toml:3:9: the procedure has no steps"),
        (
            "name = \"x\"\nproduct = \"g\"\n\n[[steps]]\nid = \"a\"\naction = { kind = \"manual\", text = \"x\" }\n",
            "x.toml:4:1: missing required key `title` in `steps[0]`",
        ),
        (
            "name = \"x\"\nproduct = \"g\"\n[[steps]]\nid = \"a\"\ntitle = \"t\"\napprovals = 300\naction = { kind = \"manual\", text = \"x\" }\n",
            "x.toml:6:13: `approvals` = 300 is out of range (0 to 255)",
        ),
        (
            "name = \"x\"\nproduct = \"g\"\n[[steps]]\nid = \"a\"\ntitle = \"t\"\naction = { kind = \"run\", argv = \"ls\" }\n",
            "x.toml:6:33: `argv` must be an array, not a string \"ls\"",
        ),
        ("name = \"x\"\nproduct = \"g\"\nname = \"y\"\n", "x.toml:3:1: duplicate key `name`"),
        (
            "name = \"x\"\nproduct = \"g\"\n[[steps]]\nid = \"a\"\ntitle = \"${x\"\naction = { kind = \"manual\", text = \"x\" }\n",
            "x.toml:5:9: unterminated `${` (a template is written `${name}`; `$${` for a literal `${`)",
        ),
    ];
    for (src, want) in cases {
        let got = flightdeck::procedure::load::parse_procedure(p, src.to_string())
            .unwrap_err()
            .to_string();
        assert_eq!(got, want, "for {src:?}");
    }
}

#[test]
fn probe_templates_are_checked() {
    let f = "procedures/bad/probe-template-target.toml";
    let d = load_target(Path::new(f)).unwrap_err();
    assert_eq!(
        d.to_string(),
        format!(
            "{f}:11:7: unknown variable `node.url` (this probe has `per_node = false`)\n\
             {f}:17:29: unknown secret `nope` (the target declares no such secret)"
        )
    );
}

/// Run the flightdeck binary from the repository root.
fn flightdeck(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_flightdeck"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn node_names_addresses_and_versions_cannot_smuggle_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let canary = tmp.path().join("CANARY");
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("procedures/targets/example.toml"),
    )
    .unwrap();
    let cases = [
        (
            "name = \"node1\"",
            format!("name = \"node1;touch {}\"", canary.display()),
            "node name",
        ),
        (
            "address = \"127.0.0.1:18081\"",
            format!("address = \"-oProxyCommand=touch {}:22\"", canary.display()),
            "not `host:port`",
        ),
        (
            "name = \"node1\"",
            "name = \"node 1\"".to_string(),
            "node name",
        ),
    ];
    for (from, to, says) in cases {
        assert!(example.contains(from), "{from}");
        let bad = tmp.path().join("bad.toml");
        std::fs::write(&bad, example.replacen(from, &to, 1)).unwrap();
        let out = flightdeck(&[
            "check".as_ref(),
            "procedures/generic-rolling.toml".as_ref(),
            "--target".as_ref(),
            bad.as_os_str(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{to}: {err}");
        assert!(
            err.contains("bad.toml:") && err.contains(says),
            "{to}: {err}"
        );
    }
    // --to is a version, nothing more.
    let journal = tmp.path().join("j.jsonl");
    let to = format!("1.1.0;touch {}", canary.display());
    let out = flightdeck(&[
        "run".as_ref(),
        "procedures/example-every-kind.toml".as_ref(),
        "--target".as_ref(),
        "procedures/targets/example.toml".as_ref(),
        "--to".as_ref(),
        to.as_ref(),
        "--yes".as_ref(),
        "--headless".as_ref(),
        "--journal".as_ref(),
        journal.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is not a version"), "{err}");
    assert!(!journal.exists());
    assert!(!canary.exists(), "the canary was created");
}

#[test]
fn rollback_verify_checks_are_validated_where_they_are_written() {
    let f = "procedures/bad/rollback-verify.toml";
    assert_eq!(
        errors_of(f),
        vec![
            format!("{f}:9:1: a verify check needs one of `probe` (a target probe), `check` (inline), `call` (a target action that reads, e.g. `check-version`) or `lb = \"ready\"` (the balancer's view)"),
            format!("{f}:15:6: a verify check is one kind of check; this one has `probe` and `lb`"),
            format!("{f}:18:8: unknown variable `nope`"),
            format!("{f}:21:10: `reason = \"reason\"` is not a JSON pointer: it starts with `/`, e.g. `/reason` or `/errors/0/message`"),
            format!("{f}:26:15: `stable_secs = 30` is longer than `timeout_secs = 10`: the gate could never pass"),
            format!("{f}:28:15: `interval_ms = 0` would poll without pause; give it at least 50"),
        ]
    );
}

#[test]
fn rollback_verify_checks_need_what_the_target_provides() {
    let f = "procedures/bad/rollback-verify-target.toml";
    let lp = load_procedure(Path::new(f)).unwrap();
    let mut t = load_target(Path::new("procedures/targets/example.toml")).unwrap();
    t.overrides = Default::default();
    t.lb = None;
    let d = validate(&lp, Some(&t)).to_string();
    let lines: Vec<&str> = d.lines().collect();
    assert_eq!(
        lines,
        vec![
            format!("{f}:11:8: target `example` does not bind action `check-versoin` (it binds: upgrade_node); add [actions.check-versoin] to the target"),
            format!("{f}:16:9: target `example` has no probe `healthy` (it has: health, version)"),
            format!("{f}:17:9: `nodes = \"role=primary\"` selects no node of target `example` (it has: node1, node2, node3)"),
            format!("{f}:21:6: target `example` has no load balancer ([lb]): nothing can say the node is in it"),
        ]
    );
}

/// Every seed procedure declares what "back on the old version" means, and it checks against
/// the lab's target and its example real target.
#[test]
fn every_seed_procedure_declares_its_rollback_verification() {
    for seed in [
        "generic-rolling",
        "jahia-rolling",
        "neo4j-causal-cluster",
        "neo4j-ha-cloudformation",
        "milvus-helm",
        "milvus-standalone",
        "weaviate-minor-steps",
    ] {
        let lp = load_procedure(Path::new(&format!("procedures/{seed}.toml"))).unwrap();
        let whats: Vec<&str> = lp
            .procedure
            .rollback
            .verify
            .iter()
            .map(|v| v.what.as_str())
            .collect();
        assert!(
            whats.iter().any(|w| w.starts_with("runs ")),
            "{seed}: no version check in {whats:?}"
        );
        assert!(whats.contains(&"healthy"), "{seed}: {whats:?}");
        let example = format!("procedures/targets/{seed}.example.toml");
        if Path::new(&example).exists() {
            let t = load_target(Path::new(&example)).unwrap();
            let d = validate(&lp, Some(&t));
            assert!(d.is_empty(), "{seed} against {example}:\n{d}");
        }
    }
}

#[test]
fn target_variables_without_a_default_are_checked_against_the_target() {
    let dir = tempfile::tempdir().unwrap();
    // Without a target: the name is known, its value comes later.
    let (proc_path, lp) = procedure_in(
        &dir,
        r#"name = "p"
product = "generic"

[target_vars]
es_url = "the cluster's HTTPS endpoint, e.g. https://es1:9200"

[[steps]]
id = "health"
title = "The cluster answers"
action = { kind = "http", url = "${es_url}/_cluster/health" }
"#,
    );
    let bare = write_in(&dir, "bare.toml", "name = \"bare\"\n");
    let t = load_target(&bare).unwrap();
    let d = validate(&lp, Some(&t));
    assert_eq!(
        d.to_string(),
        format!(
            "{}:5:10: target `bare` does not define `es_url` (the cluster's HTTPS endpoint, e.g. https://es1:9200); add it to the target's [vars]",
            proc_path.display()
        )
    );
    let e = build_plan(&lp, &t, &Default::default()).unwrap_err();
    assert!(e.to_string().contains("does not define `es_url`"), "{e}");
    let full = write_in(
        &dir,
        "full.toml",
        "name = \"full\"\n[vars]\nes_url = \"https://127.0.0.1:9200\"\n",
    );
    let t = load_target(&full).unwrap();
    let plan = checked_plan(&lp, &t);
    let flightdeck::procedure::model::Action::Http(h) = &plan.steps[0].action else {
        panic!("an http step")
    };
    assert_eq!(h.url, "https://127.0.0.1:9200/_cluster/health");
}

#[test]
fn declared_statuses_are_checked_where_they_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_in(
        &dir,
        "p.toml",
        r#"name = "p"
product = "generic"

[[steps]]
id = "gate"
title = "Green"
action = { kind = "wait", check = { kind = "http", url = "http://h/", wait_on = [503, 99], fail_on = [503, 200] } }
"#,
    );
    let d = load_procedure(&f).unwrap_err().to_string();
    let f = f.display();
    assert_eq!(
        d,
        format!(
            "{f}:7:87: 99 is not an HTTP status (100 to 599)\n\
             {f}:7:103: status 503 is in both `wait_on` and `fail_on`\n\
             {f}:7:108: status 200 is an expected answer here; `fail_on` is for the unexpected ones"
        )
    );
}

#[test]
fn optional_steps_declare_why_and_what_yes_does() {
    let f = "procedures/bad/optional.toml";
    assert_eq!(
        errors_of(f),
        vec![
            format!("{f}:7:12: an optional step declares what `--yes` does with it: add `optional_default = \"run\"` or `\"skip\"`"),
            format!("{f}:13:20: `optional_default` without `optional = \"why\"`: the step is not optional"),
        ]
    );
}

#[test]
fn node_urls_take_the_targets_scheme_and_order_keys_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let (proc_path, lp) = procedure_in(
        &dir,
        r#"name = "p"
product = "generic"

[loops.masters-last]
over = "nodes"
order = ["*", "tier=master"]

[[steps]]
id = "health"
title = "Node answers"
for_each = "masters-last"
action = { kind = "http", url = "${node.url}/_cluster/health" }
"#,
    );
    // Elasticsearch 8 serves HTTPS by default: the target says so once.
    let t_path = write_in(
        &dir,
        "t.toml",
        r#"name = "es"
scheme = "https"

[[nodes]]
name = "es1"
address = "10.0.0.1:9200"
tags = { tier = "master" }

[[nodes]]
name = "es2"
address = "10.0.0.2:9200"
tags = { tier = "data" }

[[nodes]]
name = "legacy"
address = "10.0.0.3:9200"
scheme = "http"
tags = { tier = "data" }
"#,
    );
    let t = load_target(&t_path).unwrap();
    let plan = checked_plan(&lp, &t);
    let urls: Vec<String> = plan
        .steps
        .iter()
        .map(|s| match &s.action {
            flightdeck::procedure::model::Action::Http(h) => h.url.clone(),
            _ => String::new(),
        })
        .collect();
    assert_eq!(
        urls,
        [
            "https://10.0.0.2:9200/_cluster/health",
            "http://10.0.0.3:9200/_cluster/health",
            "https://10.0.0.1:9200/_cluster/health",
        ]
    );
    // A misspelled tag in `order` no longer passes silently.
    std::fs::write(
        &t_path,
        std::fs::read_to_string(&t_path)
            .unwrap()
            .replace("tier", "teir"),
    )
    .unwrap();
    let t = load_target(&t_path).unwrap();
    assert_eq!(
        validate(&lp, Some(&t)).to_string(),
        format!(
            "{}:6:15: no node of target `es` has `tier` (its nodes have: address, name, role, teir)",
            proc_path.display()
        )
    );
    std::fs::write(&t_path, "name = \"x\"\nscheme = \"ftp\"\n").unwrap();
    let e = load_target(&t_path).unwrap_err().to_string();
    assert!(
        e.ends_with("t.toml:2:10: scheme `ftp` is not `http` or `https`"),
        "{e}"
    );
}

#[test]
fn a_loop_runs_over_the_items_of_a_variable() {
    let dir = tempfile::tempdir().unwrap();
    let (_, lp) = procedure_in(
        &dir,
        r#"name = "p"
product = "generic"

[vars]
plugins = "analysis-icu, repository-s3"

[loops.plugins]
over = "list"
items = "plugins"
within = "nodes"

[[steps]]
id = "install"
title = "Install ${item} on ${node.name} (${item.index} of the list)"
for_each = "plugins"
action = { kind = "run", argv = ["ssh", "${node.host}", "elasticsearch-plugin", "install", "--batch", "${item}"] }
"#,
    );
    let t_path = write_in(
        &dir,
        "t.toml",
        "name = \"es\"\n[vars]\nplugins = \"analysis-icu,ingest-attachment, analysis-kuromoji\"\n\
         [[nodes]]\nname = \"es1\"\naddress = \"10.0.0.1:9200\"\n",
    );
    let t = load_target(&t_path).unwrap();
    let plan = checked_plan(&lp, &t);
    let keys: Vec<&str> = plan.steps.iter().map(|s| s.key.as_str()).collect();
    // The target's list wins over the procedure's default.
    assert_eq!(
        keys,
        [
            "install@es1/analysis-icu",
            "install@es1/ingest-attachment",
            "install@es1/analysis-kuromoji"
        ]
    );
    assert_eq!(
        plan.steps[1].title,
        "Install ingest-attachment on es1 (2 of the list)"
    );
    // A list loop needs its variable; `${item}` outside one is unknown.
    let bad = write_in(
        &dir,
        "bad.toml",
        r#"name = "p"
product = "generic"

[loops.indices]
over = "list"
items = "indices"

[[steps]]
id = "flush"
title = "Flush ${item}"
action = { kind = "manual", text = "POST /_flush" }
"#,
    );
    let b = bad.display();
    assert_eq!(
        errors_of(&b.to_string()),
        vec![
            format!("{b}:6:9: loop `indices` is over the items of `indices`, which is not defined ([vars], [target_vars] or the target's vars)"),
            format!("{b}:10:9: unknown variable `item` (`item` is only defined inside a loop over a list)"),
        ]
    );
}

#[test]
fn timeouts_and_intervals_come_from_variables_and_are_checked_where_written() {
    let dir = tempfile::tempdir().unwrap();
    let (proc_path, lp) = procedure_in(
        &dir,
        r#"name = "p"
product = "generic"

[vars]
restart_timeout = "15m"

[target_vars]
recovery_poll = "how often to ask whether the shards recovered"

[[steps]]
id = "restart"
title = "Restart"
for_each = "nodes"
action = { kind = "run", argv = ["true"], timeout_secs = "${restart_timeout}" }

[[steps]]
id = "green"
title = "Green"
[steps.action]
kind = "wait"
timeout_secs = "1h"
stable_secs = "${restart_timeout}"
interval_ms = "${recovery_poll}"
check = { kind = "tcp", address = "127.0.0.1:1", timeout_ms = "2s" }

[[rollback.verify]]
what = "healthy"
check = { kind = "tcp", address = "127.0.0.1:1" }
timeout_secs = "${restart_timeout}"
"#,
    );
    let t_path = dir.path().join("t.toml");
    let target = |vars: &str| {
        std::fs::write(
            &t_path,
            format!(
                "name = \"es\"\n[vars]\n{vars}\n[[nodes]]\nname = \"es1\"\naddress = \"10.0.0.1:9200\"\n\
                 [[probes]]\nname = \"health\"\nkind = \"http\"\nurl = \"${{node.url}}/\"\n\
                 interval_ms = \"${{probe_every}}\"\ntimeout_secs = \"3s\"\n"
            ),
        )
        .unwrap();
        load_target(&t_path)
    };
    // The target's values win over the procedure's defaults; every duration ends up a number.
    let t = target("restart_timeout = \"1800\"\nrecovery_poll = \"2s\"\nprobe_every = \"500ms\"")
        .unwrap();
    assert_eq!(t.probes[0].interval_ms, 500);
    match &t.probes[0].check {
        flightdeck::procedure::model::Check::Http(h) => assert_eq!(h.timeout_secs, 3),
        other => panic!("{other:?}"),
    }
    let plan = checked_plan(&lp, &t);
    use flightdeck::procedure::model::{Action, Check};
    match &plan.steps[0].action {
        Action::Run { timeout_secs, .. } => assert_eq!(*timeout_secs, 1800),
        other => panic!("{other:?}"),
    }
    match &plan.steps[1].action {
        Action::Wait(w) => {
            assert_eq!(
                (w.timeout_secs, w.stable_secs, w.interval_ms),
                (3600, 1800, 2000)
            );
            assert!(matches!(
                w.check,
                Some(Check::Tcp {
                    timeout_ms: 2000,
                    ..
                })
            ));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(plan.rollback.verify[0].timeout_secs, 1800);

    // A value that is not a duration is refused by `check`, where the field is written.
    let t =
        target("restart_timeout = \"soon\"\nrecovery_poll = \"2s\"\nprobe_every = \"1s\"").unwrap();
    let p = proc_path.display();
    let lines: Vec<String> = validate(&lp, Some(&t))
        .to_string()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            format!("{p}:14:58: `timeout_secs`: `restart_timeout` from target `es`: `soon` is not a duration: write a whole number of seconds or a duration like `90s`, `15m`, `1h 30m`"),
            format!("{p}:22:15: `stable_secs`: `restart_timeout` from target `es`: `soon` is not a duration: write a whole number of seconds or a duration like `90s`, `15m`, `1h 30m`"),
            format!("{p}:29:16: `timeout_secs`: `restart_timeout` from target `es`: `soon` is not a duration: write a whole number of seconds or a duration like `90s`, `15m`, `1h 30m`"),
        ]
    );
    // Out of range, in the target's own file.
    let e = target("recovery_poll = \"2s\"\nprobe_every = \"1ms\"")
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with(
            "t.toml:12:15: `${probe_every}` is `1ms`: `interval_ms` = 1ms is out of range: 10 ms to 1 h"
        ),
        "{e}"
    );

    // Without a target: unknown variables, and the procedure's own defaults, are checked.
    let bad = write_in(
        &dir,
        "bad.toml",
        r#"name = "p"
product = "generic"

[vars]
grace = "2 fortnights"

[[steps]]
id = "a"
title = "A"
action = { kind = "wait", check = { kind = "tcp", address = "x:1" }, timeout_secs = "${gracee}", stable_secs = "${grace}" }

[[steps]]
id = "b"
title = "B"
action = { kind = "lb", node = "n1", state = "drain" }
undo = { kind = "http", url = "http://x/", timeout_secs = "1500ms" }
"#,
    );
    let b = bad.display();
    assert_eq!(
        errors_of(&b.to_string()),
        vec![
            format!("{b}:10:85: unknown variable `gracee`"),
            format!("{b}:10:112: `stable_secs`: `grace` from [vars]: `2 fortnights` is not a duration: write a whole number of seconds or a duration like `90s`, `15m`, `1h 30m`"),
            format!("{b}:16:59: `timeout_secs`: `1500ms` is not a whole number of seconds"),
        ]
    );
}

/// Every TOML example of the README's procedure and target language (`[[steps]]`, `[[guards]]`,
/// `optional`, `expect`, `wait_on`, loops, overrides, rollback, an imported draft) loads and
/// checks, wrapped in the least that makes it a whole file: the README stays true to the code.
/// (The lab personality example has its own test in tests/lab_personality.rs.)
#[test]
fn the_readme_examples_check() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let mut checked = Vec::new();
    for (i, block) in readme.split("```toml\n").skip(1).enumerate() {
        let block = block.split("\n```").next().unwrap_or_default();
        let at = format!("README.md toml block {}", i + 1);
        if block.starts_with("[product]") {
            continue;
        }
        if block.starts_with("[overrides.") {
            let dir = tempfile::tempdir().unwrap();
            let t = write_in(&dir, "t.toml", &format!("name = \"readme\"\n{block}\n"));
            load_target(&t).unwrap_or_else(|e| panic!("{at}:\n{e}\n{block}"));
            checked.push("overrides");
            continue;
        }
        // A fragment of a step becomes one; a variable the examples use comes from the target.
        let body = if block.starts_with("action =") {
            format!(
                "[[steps]]\nid = \"example\"\ntitle = \"Example\"\nfor_each = \"nodes\"\n{block}\n"
            )
        } else if block.starts_with("check =") {
            format!("[[steps]]\nid = \"example\"\ntitle = \"Example\"\n[steps.action]\nkind = \"wait\"\n{block}\n")
        } else {
            format!("{block}\n")
        };
        let mut source = String::from("name = \"readme\"\nproduct = \"generic\"\n");
        if !body.contains("[target_vars]") {
            source.push_str("[target_vars]\nes_url = \"the cluster's endpoint\"\n");
        }
        source.push_str(&body);
        if !body.contains("[[steps]]") {
            // The steps a `[rollback]` example names, or any one step.
            for id in ["ready", "start"] {
                source.push_str(&format!(
                    "[[steps]]\nid = \"{id}\"\ntitle = \"{id}\"\naction = {{ kind = \"manual\", text = \"{id}\" }}\nundo = {{ kind = \"manual\", text = \"back\" }}\n"
                ));
            }
        }
        flightdeck::procedure::load::parse_procedure(Path::new("README.md"), source.clone())
            .unwrap_or_else(|d| panic!("{at}:\n{d}\n{source}"));
        checked.push(if block.contains("[[guards]]") {
            "guards"
        } else if block.contains("optional =") {
            "optional"
        } else if block.contains("expect =") {
            "expect"
        } else {
            "other"
        });
    }
    for kind in ["overrides", "guards", "optional", "expect"] {
        assert!(checked.contains(&kind), "no {kind} example in {checked:?}");
    }
}

/// Issue 15 item 3: a step `when` switches off needs no binding; where it runs, the plan
/// refuses the `call` the target does not bind.
#[test]
fn a_step_switched_off_by_when_needs_no_binding() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"name = "p"
product = "generic"

[[steps]]
id = "fix"
title = "Repair a store from before 2.0"
when = "from_version < 2.0"
action = { kind = "call", name = "fix-store" }

[[steps]]
id = "restart"
title = "Restart"
action = { kind = "call", name = "restart" }
"#;
    let (_, lp) = procedure_in(&dir, text);
    let target = |from: &str| {
        let t = write_in(
            &dir,
            &format!("t-{from}.toml"),
            &format!(
                "name = \"t\"\n[vars]\ncurrent_version = \"{from}\"\nto_version = \"2.2.0\"\n\
                 [actions.restart]\nkind = \"manual\"\ntext = \"restart it\"\n"
            ),
        );
        load_target(&t).unwrap()
    };
    let t = target("2.1.0");
    let plan = checked_plan(&lp, &t);
    let keys: Vec<&str> = plan.steps.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["restart"]);
    // Where the step runs, its binding is needed: the plan says which.
    let t = target("1.9.0");
    let e = build_plan(&lp, &t, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("fix") && e.contains("target `t` does not bind action `fix-store`"),
        "{e}"
    );
    // A step without `when` always runs: its missing binding is an error at its place.
    let (p, lp) = procedure_in(&dir, &text.replace("when = \"from_version < 2.0\"\n", ""));
    assert_eq!(
        validate(&lp, Some(&t)).to_string(),
        format!(
            "{}:7:34: target `t` does not bind action `fix-store` (it binds: restart); add [actions.fix-store] to the target",
            p.display()
        )
    );
}
