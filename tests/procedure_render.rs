//! `flightdeck plan` output and the `check`/`plan` command functions.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use flightdeck::cli::{CheckArgs, PlanArgs};
use flightdeck::plan::expand::{build_plan, PlanOptions};
use flightdeck::plan::render::render_plan;
use flightdeck::procedure::load::load_procedure;
use flightdeck::target_load::load_target;

fn example_plan_text() -> String {
    let lp = load_procedure(Path::new("procedures/example-every-kind.toml")).unwrap();
    let t = load_target(Path::new("procedures/targets/example.toml")).unwrap();
    let p = build_plan(&lp, &t, &PlanOptions::default()).unwrap();
    render_plan(&p, &t)
}

#[test]
fn the_plan_says_exactly_what_will_happen() {
    let text = example_plan_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Procedure: example-every-kind (generic)");
    assert!(lines.contains(&"Target:    example (3 nodes)"));
    assert!(lines.contains(&"Versions:  1.4.2 -> 2.1.0"));
    assert!(lines.contains(&"Hops:      2.1.0"));
    assert!(lines.contains(&"Steps:     18"));
    assert!(lines.contains(&" 3. drain@node2 — Drain node2"));
    assert!(lines.contains(&"    progress: node 1/3"));
    assert!(lines.contains(&"    action:   lb: node2 -> drain"));
    assert!(lines.contains(&"    undo:     lb: node2 -> ready"));
    assert!(lines.contains(&"    action:   run: sh -c 'mkdir -p /tmp/flightdeck-example && date > /tmp/flightdeck-example/backup.txt'"));
    assert!(lines.contains(&"    action:   POST http://127.0.0.1:18080/admin/nodes/node2/upgrade"));
    assert!(lines.contains(&"              body {\"version\": \"2.1.0\"}"));
    // The target's [overrides.healthy], on every node's instance, said as such.
    assert!(lines.contains(&"    action:   wait: probe health on node2 passes, stable for 3s (timeout 600s, every 2000ms)"));
    assert_eq!(
        lines
            .iter()
            .filter(|l| **l == "              overridden by the target: timeout_secs = 600 (procedure: 120), interval_ms = 2000 (procedure: 1000)")
            .count(),
        3
    );
    assert!(lines.contains(&"16. pause-writes — Pause writes  [downtime: writes]"));
    assert!(lines.contains(&"    confirm:  type \"finalize example\" · 2 approvals"));
    assert!(lines
        .contains(&"    IRREVERSIBLE: the data format changes and 1.4.2 cannot read it any more"));
    assert!(lines.contains(&"    undo:     no undo"));
    assert!(
        lines.contains(&"              expect status 2xx, text /read.only\\W+false/ (timeout 30s)")
    );
    // Credentials never show, not even the placeholder.
    assert!(lines.contains(&"              header Authorization: ****"));
    assert!(!text.contains("${secret."));
    assert_eq!(
        lines[lines.len() - 2],
        "Rollback possible until step 17 (finalize): once it is done there is no way back."
    );
    assert_eq!(
        lines[lines.len() - 1],
        "Downtime: writes stop at step 16 (pause-writes) and resume after step 18 (resume-writes)."
    );
}

#[test]
fn plan_snapshot() {
    insta::assert_snapshot!("example_every_kind_plan", example_plan_text());
}

fn path(p: &str) -> PathBuf {
    PathBuf::from(p)
}

#[test]
fn check_command_exit_codes() {
    let ok = flightdeck::commands::check::run(&CheckArgs {
        procedure: path("procedures/example-every-kind.toml"),
        target: Some(path("procedures/targets/example.toml")),
        strict: false,
    });
    assert_eq!(ok, ExitCode::SUCCESS);
    let ok_alone = flightdeck::commands::check::run(&CheckArgs {
        procedure: path("procedures/example-every-kind.toml"),
        target: None,
        strict: false,
    });
    assert_eq!(ok_alone, ExitCode::SUCCESS);
    let bad = flightdeck::commands::check::run(&CheckArgs {
        procedure: path("procedures/bad/semantic.toml"),
        target: None,
        strict: false,
    });
    assert_eq!(bad, ExitCode::from(2));
    let bad_target = flightdeck::commands::check::run(&CheckArgs {
        procedure: path("procedures/example-every-kind.toml"),
        target: Some(path("procedures/bad/dup-nodes-target.toml")),
        strict: false,
    });
    assert_eq!(bad_target, ExitCode::from(2));
}

#[test]
fn plan_command_exit_codes() {
    let args = |lab: bool, from: Option<&str>| PlanArgs {
        procedure: path("procedures/example-every-kind.toml"),
        target: (!lab).then(|| path("procedures/targets/example.toml")),
        lab,
        personality: None,
        lb: "embedded".into(),
        from: from.map(str::to_string),
        to: None,
        format: Default::default(),
    };
    assert_eq!(
        flightdeck::commands::plan::run(&args(false, None)),
        ExitCode::SUCCESS
    );
    assert_eq!(
        flightdeck::commands::plan::run(&args(true, None)),
        ExitCode::from(2)
    );
    // 3.5 is outside the procedure's `from = ">= 1.0, < 3.0"`.
    assert_eq!(
        flightdeck::commands::plan::run(&args(false, Some("3.5"))),
        ExitCode::from(2)
    );
}

#[test]
fn check_summary_lines() {
    use flightdeck::commands::check::summary;
    let with_target = CheckArgs {
        procedure: path("procedures/example-every-kind.toml"),
        target: Some(path("procedures/targets/example.toml")),
        strict: false,
    };
    assert_eq!(
        summary(&with_target).unwrap().line,
        "ok: example-every-kind: 10 steps (18 after expansion)"
    );
    let alone = CheckArgs {
        procedure: path("procedures/example-every-kind.toml"),
        target: None,
        strict: false,
    };
    assert_eq!(
        summary(&alone).unwrap().line,
        "ok: example-every-kind: 10 steps (pass --target to expand)"
    );
    // A target whose current version is outside the procedure's `from` does not check.
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t.toml");
    let text = std::fs::read_to_string("procedures/targets/example.toml").unwrap();
    std::fs::write(
        &t,
        text.replace("current_version = \"1.4.2\"", "current_version = \"3.5\""),
    )
    .unwrap();
    let err = summary(&CheckArgs {
        procedure: path("procedures/example-every-kind.toml"),
        target: Some(t),
        strict: false,
    })
    .unwrap_err();
    assert_eq!(
        err,
        "procedures/example-every-kind.toml: the current version 3.5 does not satisfy this procedure's `from = \">= 1.0, < 3.0\"`"
    );
    // Diagnostics from both files come together.
    let err = summary(&CheckArgs {
        procedure: path("procedures/bad/dup-id.toml"),
        target: Some(path("procedures/bad/dup-nodes-target.toml")),
        strict: false,
    })
    .unwrap_err();
    assert_eq!(err.lines().count(), 4, "{err}");
}

#[test]
fn check_warns_about_a_secret_in_a_command_line_and_strict_refuses_it() {
    use flightdeck::commands::check::summary;
    let args = |strict| CheckArgs {
        procedure: path("procedures/bad/secret-in-argv.toml"),
        target: Some(path("procedures/bad/secret-in-argv-target.toml")),
        strict,
    };
    let checked = summary(&args(false)).expect("a warning is not an error");
    let warnings: Vec<String> = checked.warnings.iter().map(|d| d.to_string()).collect();
    let at = |prefix: &str| {
        warnings
            .iter()
            .find(|w| w.starts_with(prefix))
            .unwrap_or_else(|| panic!("no warning at {prefix}: {warnings:#?}"))
            .clone()
    };
    // Written in the argv, through a variable, through a call argument, in the binding.
    let direct = at("procedures/bad/secret-in-argv.toml:13:42: secret `db`");
    assert!(
        direct.contains("`psql`") && direct.contains("`ps`"),
        "{direct}"
    );
    assert!(
        direct.contains("env = { NAME = \"${secret.db}\" }")
            && direct.contains("stdin = \"${secret.db}\""),
        "offers the alternative: {direct}"
    );
    at("procedures/bad/secret-in-argv.toml:18:56: secret `token`");
    let call = at("procedures/bad/secret-in-argv.toml:23:63: secret `db`");
    assert!(call.contains("binding `login`"), "{call}");
    at("procedures/bad/secret-in-argv-target.toml:19:56: secret `token`");
    // A `[[rollback.verify]]` check runs with its secrets too (before, it was not scanned).
    at("procedures/bad/secret-in-argv.toml:33:41: secret `db`");
    // The env/stdin step is fine.
    assert_eq!(warnings.len(), 5, "{warnings:#?}");
    // --strict refuses, with the same lines.
    let err = summary(&args(true)).unwrap_err();
    assert!(
        err.contains("secret-in-argv.toml:13:42: secret `db`"),
        "{err}"
    );
    assert!(err.contains("--strict"), "{err}");
    assert_eq!(
        flightdeck::commands::check::run(&args(true)),
        ExitCode::from(2)
    );
    assert_eq!(
        flightdeck::commands::check::run(&args(false)),
        ExitCode::SUCCESS
    );
}

#[test]
fn every_seed_procedure_passes_check_strict_with_its_example_target() {
    use flightdeck::commands::check::summary;
    let mut checked = 0;
    for entry in std::fs::read_dir("procedures").unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        let target = path(&format!("procedures/targets/{stem}.example.toml"));
        if !target.exists() {
            continue;
        }
        let r = summary(&CheckArgs {
            procedure: p.clone(),
            target: Some(target),
            strict: true,
        });
        assert!(r.is_ok(), "{}: {}", p.display(), r.unwrap_err());
        checked += 1;
    }
    assert!(
        checked >= 6,
        "only {checked} seed procedures have an example target"
    );
}

/// The example plan for change review: JSON for tools, Markdown for people. The procedure's
/// hash is left out (it changes with every edit of the file, not with the plan).
fn example_plan_exports() -> (String, String) {
    use flightdeck::plan::export::{plan_json, plan_markdown};
    let lp = load_procedure(Path::new("procedures/example-every-kind.toml")).unwrap();
    let t = load_target(Path::new("procedures/targets/example.toml")).unwrap();
    let p = build_plan(&lp, &t, &PlanOptions::default()).unwrap();
    let mut doc = plan_json(&p, &t);
    doc["procedure_hash"] = "<sha256>".into();
    let md = plan_markdown(&p, &t).replace(&p.procedure_hash, "<sha256>");
    (serde_json::to_string_pretty(&doc).unwrap(), md)
}

#[test]
fn plan_as_json_has_every_step_its_undo_the_windows_and_the_point_of_no_return() {
    let (json, _) = example_plan_exports();
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let steps = doc["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 18);
    assert_eq!(steps[2]["key"], "drain@node2");
    assert_eq!(steps[2]["action"]["kind"], "lb");
    assert_eq!(steps[2]["undo_text"][0], "lb: node2 -> ready");
    let pnr = doc["point_of_no_return"]["n"].as_u64().unwrap() as usize;
    assert!(steps[pnr - 1]["irreversible"].is_string());
    assert_eq!(steps[pnr]["past_point_of_no_return"], true);
    assert_eq!(steps[pnr - 1]["past_point_of_no_return"], false);
    assert!(!doc["downtime"].as_array().unwrap().is_empty());
    insta::assert_snapshot!("example_every_kind_plan_json", json);
}

#[test]
fn plan_as_markdown_reads_as_a_procedure_for_review() {
    let (_, md) = example_plan_exports();
    assert!(md.starts_with("# example-every-kind on example\n"));
    assert!(md.contains("### 3. Drain node2\n"));
    assert!(md.contains("> **Point of no return:**"));
    insta::assert_snapshot!("example_every_kind_plan_md", md);
}

/// `run` and `resume` print `check`'s warning about a secret in a command line (before, only
/// `check` did) and go on: refusing is `check --strict`'s.
#[test]
fn run_and_resume_warn_about_a_secret_in_a_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let procedure = tmp.path().join("p.toml");
    std::fs::write(
        &procedure,
        "name = \"argv-secret\"\nproduct = \"generic\"\n\n[[steps]]\nid = \"a\"\n\
         title = \"A token on the command line\"\n\
         action = { kind = \"run\", argv = [\"false\", \"--token=${secret.tok}\"] }\n",
    )
    .unwrap();
    let target = tmp.path().join("t.toml");
    std::fs::write(
        &target,
        "name = \"t\"\nproduct = \"generic\"\n\n[secrets]\ntok = { env = \"FD_RENDER_TEST_TOK\" }\n\n\
         [[nodes]]\nname = \"n1\"\naddress = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let journal = tmp.path().join("j.jsonl");
    let flightdeck = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_flightdeck"))
            .args(args)
            .env("FD_RENDER_TEST_TOK", "tok-value-1234")
            .env("HOME", tmp.path())
            .env("XDG_DATA_HOME", tmp.path().join("data"))
            .env("XDG_STATE_HOME", tmp.path().join("data"))
            .env("FLIGHTDECK_RUNTIME_DIR", tmp.path().join("rt"))
            .output()
            .unwrap()
    };
    let out = flightdeck(&[
        "run".as_ref(),
        procedure.as_os_str(),
        "--target".as_ref(),
        target.as_os_str(),
        "--journal".as_ref(),
        journal.as_os_str(),
        "--headless".as_ref(),
        "--yes".as_ref(),
    ]);
    // The step fails (`false`), so the session stops unfinished and can be resumed.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("p.toml:7:43: warning: secret `tok` would be in the command line of `false`")
            && err.contains("the session runs anyway"),
        "{err}"
    );
    let out = flightdeck(&[
        "resume".as_ref(),
        journal.as_os_str(),
        "--headless".as_ref(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "j.jsonl: warning: step a action.argv[1]: secret `tok` would be in the command line \
             of `false`"
        ),
        "{err}"
    );
}
