//! `flightdeck import`: each of the five seed guides (`../shared/seeds/`) drafts a procedure
//! whose steps are the guide's own — titles, order, commands — written out here from reading
//! the guides, not from what the importer printed; the draft passes `check`; every step cites
//! its line in the guide; malformed runbooks get a `file:line:col` error.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use flightdeck::import::command::read;
use flightdeck::import::outline::{Code, Place};
use flightdeck::import::{import_bytes, import_file, Draft, ImportError, Options};
use flightdeck::procedure::load::parse_procedure;
use flightdeck::procedure::model::Action;

/// The seed guides sit in `shared/seeds` beside the repository (CI: `../shared`; a worktree
/// under `wt/`: `../../shared`).
fn seeds() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        root.join("../shared/seeds"),
        root.join("../../shared/seeds"),
    ]
    .into_iter()
    .find(|p| p.is_dir())
    .unwrap_or_else(|| panic!("no shared/seeds beside {}", root.display()))
}

/// Import the seed guide `name`; its draft's steps must be `expected` (see [`assert_steps`]).
fn drafted(name: &str, expected: &[Expected]) -> Draft {
    let path = seeds().join(name);
    let draft =
        import_file(&path, &Options::default()).unwrap_or_else(|e| panic!("importing {name}: {e}"));
    let source = std::fs::read_to_string(&path).expect("the seed reads");
    assert_steps(name, &draft, &source, expected);
    draft
}

/// A step as the guide has it: its title and the argv of each command.
type Expected<'a> = (&'a str, &'a [&'a [&'a str]]);

/// The draft's steps are exactly `expected`, in order; each cites a line of the guide that
/// shows its title and its commands; the TOML passes `check` with the same steps.
fn assert_steps(name: &str, draft: &Draft, source: &str, expected: &[Expected]) {
    let got: Vec<(String, Vec<Vec<String>>)> = draft
        .steps
        .iter()
        .map(|s| {
            (
                s.title.clone(),
                s.commands.iter().map(|c| c.argv.clone()).collect(),
            )
        })
        .collect();
    let want: Vec<(String, Vec<Vec<String>>)> = expected
        .iter()
        .map(|(t, cmds)| {
            (
                t.to_string(),
                cmds.iter()
                    .map(|argv| argv.iter().map(|a| a.to_string()).collect())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(got, want, "{name}: the draft's steps");

    let lines: Vec<&str> = source.lines().collect();
    // A link's markup (`[text](#anchor)`) is not in the title; its text is.
    let link = regex::Regex::new(r"\]\([^)]*\)|\[").expect("a valid regex");
    for step in &draft.steps {
        let at = link.replace_all(lines[step.line - 1], "");
        let start: String = step.title.chars().take(8).collect();
        assert!(
            at.contains(&start),
            "{name}: step `{}` cites line {}, which reads `{at}`",
            step.title,
            step.line
        );
        for c in &step.commands {
            let program: String = c.argv[0].chars().take(5).collect();
            assert!(
                lines[c.line - 1].contains(&program),
                "{name}: command {:?} cites line {}",
                c.argv,
                c.line
            );
        }
    }

    // The TOML itself: it checks, and its steps are the same ones, each command its own step,
    // each with its source reference.
    let lp = parse_procedure(Path::new("draft.toml"), draft.toml.clone())
        .unwrap_or_else(|d| panic!("{name}: the draft does not check:\n{d}\n{}", draft.toml));
    let mut emitted = lp.procedure.steps.iter();
    for step in &draft.steps {
        let n = step.commands.len();
        for k in 0..n.max(1) {
            let s = emitted.next().expect("a step for each command");
            let title = if n > 1 {
                format!("{} ({}/{n})", step.title, k + 1)
            } else {
                step.title.clone()
            };
            assert_eq!(s.title, title, "{name}");
            assert!(
                s.runbook.contains(&format!("{name}:{}", step.line)),
                "{name}: `{}` does not cite its line: {}",
                s.title,
                s.runbook
            );
            match (&s.action, step.commands.get(k)) {
                (Action::Run { argv, .. }, Some(c)) => assert_eq!(argv, &c.argv, "{name}"),
                (Action::Manual { .. }, None) => {}
                (a, c) => panic!("{name}: `{}` has {a:?} for {c:?}", s.title),
            }
        }
    }
    assert!(
        emitted.next().is_none(),
        "{name}: more steps than the guide"
    );
}

const NONE: &[&[&str]] = &[];

#[test]
fn the_neo4j_causal_cluster_guide_drafts_its_nine_numbered_steps() {
    let name = "neo4j-causal-cluster-upgrade.ko.md";
    let draft = drafted(
        name,
        &[
            ("Prepare the new cluster", NONE),
            ("Set your cluster to read-only", NONE),
            ("클러스터의 전체 백업을 수행합니다", NONE),
            (
                "새 클러스터의 서버 중 하나에서 업그레이드를 수행합니다",
                &[&["cp", "neo4j.conf", "neo4j.conf.save"]],
            ),
            (
                "업그레이드된 데이터베이스를 사용하여 클러스터를 준비합니다",
                &[&[
                    "bin/neo4j-admin",
                    "restore",
                    "--from=/mnt/backup/graph.db-backup",
                    "--database=graph.db",
                    "--force",
                ]],
            ),
            ("이전 클러스터의 서버를 종료합니다", NONE),
            ("로드 밸런서가 새 클러스터를 가리키도로록 설정합니다", NONE),
            (
                "클러스터의 서버를 시작하고 클러스터가 형성되어 트랜잭션을 수락하는지 확인합니다",
                NONE,
            ),
            (
                "좋은 실천 목적으로 업그레이드 후 즉시 전체 백업을 수행합니다",
                NONE,
            ),
        ],
    );
    // Step 4's sub-steps (a.–c., the settings) stay in its text, in Korean, and the prompt's
    // directory and the settings that are not commands are left to the author.
    let four = &draft.steps[3];
    assert!(
        four.text.contains("a. 새 클러스터에 있는 서버"),
        "{}",
        four.text
    );
    assert!(four.text.contains("`dbms.mode=SINGLE`"), "{}", four.text);
    assert!(four.commands[0]
        .reviews
        .iter()
        .any(|r| r.contains("`neo4j-home`")));
    // Downtime is a hint for the author, where the guide says it (steps 2 and 6).
    let downtime: Vec<usize> = draft
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.hints.iter().any(|h| h.advice.contains("downtime")))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(downtime, vec![2, 6]);
    // The assumptions list is not steps, and the draft says it left it out.
    assert!(draft
        .toml
        .contains("neo4j-causal-cluster-upgrade.ko.md:33: a list item"));
}

#[test]
fn the_neo4j_ha_guide_numbered_all_one_and_drafts_its_eight_steps() {
    let name = "neo4j-ha-cloudformation-upgrade.md";
    // Every item is written `1.`: Markdown numbers them 1 to 8, and so does the draft.
    let draft = drafted(
        name,
        &[
            ("Update CF stack with parameters", NONE),
            ("Update CF stack with parameters", NONE),
            ("Manual migrations (if needed)", NONE),
            ("Update CF stack with parameters", NONE),
            (
                "Change \"Name\" tags for all slave Neo4j data volumes",
                NONE,
            ),
            (
                "(Optional) Create slave copies of master's migrated volume",
                NONE,
            ),
            ("Update CF stack with parameters: (N = 2 for example)", NONE),
            ("Update CF stack with parameters", NONE),
        ],
    );
    // The stack parameters are settings, not commands: each step's text carries them, right
    // after the sentence that introduces them.
    let params = [
        "DockerImage = <docker image address name:tag>",
        "Mode = SINGLE\n    SlaveMode = SINGLE\n    AllowUpgrade = True\n    MaxSize = 1\n    DesiredCapacity = 1",
        "",
        "Mode = HA (but keep SlaveMode = SINGLE)\n    AllowUpgrade = False",
        "",
        "",
        "MaxSize = N\n    DesiredCapacity = N",
        "SlaveMode = HA",
    ];
    for (step, p) in draft.steps.iter().zip(params) {
        assert!(
            step.text.contains(&format!("\n    {p}\n")) || p.is_empty(),
            "{}",
            step.text
        );
    }
    // "(Optional)" and "if needed" are hints toward `optional`.
    for i in [2, 5] {
        assert!(
            draft.steps[i]
                .hints
                .iter()
                .any(|h| h.advice.contains("optional")),
            "step {}",
            i + 1
        );
    }
}

#[test]
fn the_weaviate_guide_drafts_its_numbered_steps_in_every_section() {
    let name = "weaviate-migration-upgrade.ja.md";
    let draft = drafted(
        name,
        &[
            (
                "アップグレードを開始する前に、現在の Weaviate インスタンスの バックアップ を完全に作成します",
                NONE,
            ),
            (
                "常に各マイナーリリースの最新パッチバージョンを使用しながら、1 つのマイナー バージョンずつ順番にアップグレードします",
                NONE,
            ),
            ("現在の Weaviate インスタンスのバックアップを作成します", NONE),
            ("Weaviate リリースページ にアクセスし", NONE),
            ("`v1.26` の最新パッチバージョンへアップグレードします", NONE),
            ("続いて `v1.27` の最新パッチバージョンへアップグレードします", NONE),
            ("現在の Weaviate インスタンスのバックアップを作成します", NONE),
            (
                "上記の一般的なアップグレード手順に従い、少なくとも `v1.23.13`（可能なら `v1.23.16`）以上へアップグレードします",
                NONE,
            ),
            ("アップグレード後のインスタンスにバックアップをリストアします", NONE),
        ],
    );
    // The scenario's steps are under its tip (a Docusaurus admonition), and the nested items
    // (find each minor's latest patch) are part of their step.
    assert!(draft.steps[3]
        .section
        .iter()
        .any(|s| s.contains("シナリオ")));
    assert!(draft.steps[3]
        .text
        .contains("1. 最新の `v1.26` パッチバージョン"));
    assert!(draft.steps[7]
        .section
        .iter()
        .any(|s| s.contains("v1.23.13+")));
}

#[test]
fn the_jahia_guide_uses_bullets_and_drafts_its_eleven_steps() {
    let name = "jahia-rolling-upgrade.txt";
    let draft = drafted(
        name,
        &[
            ("Turn all nodes of the cluster in full read-only mode", NONE),
            ("Create a backup of your environment", NONE),
            ("Create a copy of the database, which is DB Schema B in the example", NONE),
            ("Remove the processing node from the load balancer so it does not serve any requests", NONE),
            ("Stop the processing node", NONE),
            ("Point the processing node to the copied DB Schema B database", NONE),
            ("Migrate the processing node", NONE),
            (
                "Before restarting the node, create a marker file (empty file) named \"rolling-upgrade\" in the…",
                NONE,
            ),
            ("Restart the node", NONE),
            ("Traffic can be redirected to this node", NONE),
            (
                "Repeat the steps 5 to 10 for the other non-processing nodes (remove from load balancer, stop,…",
                NONE,
            ),
        ],
    );
    // `<digital-factory-data>` in plain text is a folder's name, not an HTML tag.
    assert!(draft.steps[7]
        .text
        .contains("in the <digital-factory-data> folder"));
    // The telling words become hints: read-only, the load balancer, a loop over the nodes.
    let advice =
        |i: usize| -> Vec<&str> { draft.steps[i].hints.iter().map(|h| h.advice).collect() };
    assert!(advice(0).iter().any(|a| a.starts_with("read-only")));
    assert!(advice(3).iter().any(|a| a.contains("`lb` action")));
    assert!(advice(10).iter().any(|a| a.contains("`for_each`")));
}

#[test]
fn the_milvus_html_guide_drafts_its_sections_and_numbered_steps_with_their_commands() {
    let name = "milvus-standalone-helm-upgrade.ko.html";
    let migrate = |extra: &'static [&'static str]| -> Vec<&'static str> {
        let mut v = vec!["./migrate.sh", "-i", "my-release"];
        v.extend_from_slice(extra);
        v
    };
    let m1 = migrate(&["-s", "2.1.4", "-t", "2.5.12"]);
    let m2 = migrate(&["-n", "milvus", "-s", "2.1.4", "-t", "2.5.12"]);
    let m3 = migrate(&[
        "-n", "milvus", "-s", "2.1.4", "-t", "2.5.12", "-r", "by-dev",
    ]);
    let m4 = migrate(&[
        "-n",
        "milvus",
        "-s",
        "2.1.4",
        "-t",
        "2.5.12",
        "-r",
        "by-dev",
        "-w",
        "milvusdb/milvus:v2.5.12",
    ]);
    let m5 = migrate(&[
        "-n",
        "milvus",
        "-s",
        "2.1.4",
        "-t",
        "2.5.12",
        "-w",
        "milvusdb/milvus:v2.5.12",
        "-d",
        "true",
    ]);
    let rollback = migrate(&[
        "-n",
        "milvus",
        "-s",
        "2.1.4",
        "-t",
        "2.5.12",
        "-r",
        "by-dev",
        "-o",
        "rollback",
        "-w",
        "milvusdb/milvus:v2.1.1",
    ]);
    let again = migrate(&[
        "-n",
        "milvus",
        "-s",
        "2.1.4",
        "-t",
        "2.5.12",
        "-r",
        "by-dev",
        "-o",
        "migrate",
        "-w",
        "milvusdb/milvus:v2.5.12",
    ]);
    let draft = drafted(
        name,
        &[
            (
                "Milvus 버전 확인",
                &[
                    &["helm", "repo", "update"],
                    &["helm", "search", "repo", "zilliztech/milvus", "--versions"],
                ],
            ),
            (
                "롤링 업그레이드 수행",
                &[&[
                    "sh", "rollingUpdate.sh", "-n", "default", "-i", "my-release", "-o", "update",
                    "-t", "2.5.12", "-w", "milvusdb/milvus:v2.5.12",
                ]],
            ),
            (
                "헬름을 사용하여 밀버스 업그레이드",
                &[
                    &["helm", "repo", "update"],
                    &[
                        "helm", "upgrade", "my-release", "milvus/milvus",
                        "--reset-then-reuse-values", "--version=4.1.24",
                    ],
                ],
            ),
            ("Milvus 버전 확인", &[&["helm", "list"]]),
            ("실행 중인 포드 확인", &[&["kubectl", "get", "pods"]]),
            (
                "이미지 태그 확인",
                &[&[
                    "kubectl",
                    "get",
                    "pods",
                    "my-release-milvus-proxy-6c548f787f-scspp",
                    "-o=jsonpath={$.spec.containers[0].image}",
                ]],
            ),
            ("마이그레이션 스크립트를 다운로드합니다", NONE),
            ("Milvus 구성 요소를 중지합니다", NONE),
            ("Milvus 메타데이터에 대한 백업을 생성합니다", NONE),
            ("Milvus 메타데이터를 마이그레이션합니다", NONE),
            ("새 이미지로 Milvus 구성 요소를 시작합니다", NONE),
            ("Milvus 인스턴스 이름, 소스 Milvus 버전, 대상 Milvus 버전을 지정합니다", &[&m1]),
            (
                "Milvus가 기본 K8s 네임스페이스에 설치되지 않은 경우 `-n` 로 네임스페이스를 지정합니다",
                &[&m2],
            ),
            (
                "Milvus가 사용자 지정 `rootpath` 과 함께 설치된 경우 `-r` 으로 루트 경로를 지정합니다",
                &[&m3],
            ),
            (
                "Milvus가 사용자 지정 `image` 과 함께 설치된 경우 이미지 태그를 `-w` 으로 지정합니다",
                &[&m4],
            ),
            (
                "마이그레이션이 완료된 후 마이그레이션 파드를 자동으로 제거하려면 `-d true` 을 설정합니다",
                &[&m5],
            ),
            (
                "마이그레이션이 실패하면 롤백하고 다시 마이그레이션하세요",
                &[&rollback, &again],
            ),
        ],
    );
    // The rolling-upgrade section is hidden on the page: flagged. The alert box's commands
    // (the archived chart repository) are named for review, not run.
    assert!(draft.steps[1].hidden);
    assert!(!draft.steps[0].hidden);
    assert!(draft.steps[0]
        .reviews
        .iter()
        .any(|r| r.contains("a note at line 70 shows `helm repo add zilliztech")));
    // The command's trailing comment is the author's to read.
    assert!(draft.steps[2].commands[1]
        .reviews
        .iter()
        .any(|r| r.contains("use the helm chart version here")));
    // `migrate.sh` six times with other options: flagged as alternatives, not a sequence;
    // the checks before them (helm, kubectl) are not.
    let alternatives: Vec<usize> = draft
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.reviews.iter().any(|r| r.contains("likely alternatives")))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(alternatives, (12..=17).collect::<Vec<_>>());
    assert!(draft.toml.contains("steps 12-17 all run `./migrate.sh`"));
    // The command output shown in the guide is not a command.
    assert!(!draft.toml.contains("argv = [\"NAME\""));
}

fn code(text: &str, lang: Option<&str>) -> Code {
    Code {
        lang: lang.map(str::to_string),
        text: text.to_string(),
        line: 10,
        inline: false,
        place: Place::default(),
    }
}

#[test]
fn commands_split_into_argv_and_anything_needing_a_shell_is_an_explicit_sh_c() {
    let r = read(&code(
        "systemctl stop neo4j\njournalctl -u neo4j | tail -n 50 > /tmp/log\nrm -rf data/*\n",
        Some("bash"),
    ));
    let argvs: Vec<&[String]> = r.commands.iter().map(|c| c.argv.as_slice()).collect();
    assert_eq!(argvs[0], ["systemctl", "stop", "neo4j"]);
    assert_eq!(
        argvs[1],
        ["sh", "-c", "journalctl -u neo4j | tail -n 50 > /tmp/log"]
    );
    assert!(r.commands[1]
        .reviews
        .iter()
        .any(|x| x.contains("a pipe `|`")));
    assert_eq!(argvs[2], ["sh", "-c", "rm -rf data/*"]);
    assert!(r.commands[2].reviews.iter().any(|x| x.contains("a glob")));
    // Quotes are the shell's: `'a | b'` is one argument, no shell needed; a line continued
    // with `\` is one command, cited at its first line.
    let r = read(&code(
        "curl -s 'http://x/_cat?h=a|b' \\\n  -o out.json\n",
        Some("sh"),
    ));
    assert_eq!(r.commands.len(), 1);
    assert_eq!(
        r.commands[0].argv,
        ["curl", "-s", "http://x/_cat?h=a|b", "-o", "out.json"]
    );
    assert_eq!(r.commands[0].line, 10);
    // Placeholders are for the author to fill in; an unclosed quote is not a command.
    let r = read(&code(
        "helm upgrade <release> zilliztech/milvus\necho 'oops\n",
        Some("sh"),
    ));
    assert_eq!(r.commands.len(), 1);
    assert!(r.commands[0]
        .reviews
        .iter()
        .any(|x| x.contains("`<release>` is a placeholder")));
    assert!(r
        .reviews
        .iter()
        .any(|x| x.contains("line 11") && x.contains("unclosed quote")));
}

#[test]
fn prompts_separate_commands_from_output_and_settings_are_not_commands() {
    let r = read(&code(
        "$ kubectl get pods\nNAME    READY   STATUS\nmy-pod  1/1     Running\n",
        None,
    ));
    assert_eq!(r.commands.len(), 1);
    assert_eq!(r.commands[0].argv, ["kubectl", "get", "pods"]);
    // Output, settings and other languages without a prompt are not commands.
    assert!(read(&code(
        "NAME  CHART VERSION\nzilliztech/milvus 4.1.34\n",
        None
    ))
    .commands
    .is_empty());
    assert!(read(&code("Mode = SINGLE\nAllowUpgrade = True\n", None))
        .commands
        .is_empty());
    assert!(read(&code("dbms.mode=SINGLE\n", None)).commands.is_empty());
    assert!(read(&code("cluster:\n  name: x\n", Some("yaml")))
        .commands
        .is_empty());
    // Inline code is a command only with its prompt.
    let mut inline = code("neo4j-home$ bin/neo4j-admin backup", None);
    inline.inline = true;
    assert_eq!(
        read(&inline).commands[0].argv,
        ["bin/neo4j-admin", "backup"]
    );
    inline.text = "neo4j.conf".into();
    assert!(read(&inline).commands.is_empty());
}

fn malformed(name: &str, bytes: &[u8]) -> (usize, usize, String) {
    match import_bytes(Path::new(name), bytes.to_vec(), &Options::default()) {
        Err(ImportError::Malformed {
            line, col, message, ..
        }) => (line, col, message),
        other => panic!("{name}: expected a malformed-input error, got {other:?}"),
    }
}

#[test]
fn malformed_runbooks_get_a_clear_error_at_their_place() {
    // A fence never closed would make the rest of the runbook one command.
    let (line, col, msg) = malformed(
        "r.md",
        b"# Upgrade\n\n1. Stop the node:\n\n   ```sh\n   systemctl stop db\n2. Start it\n",
    );
    assert_eq!((line, col), (5, 4));
    assert!(msg.contains("never closed"), "{msg}");
    let (line, _, msg) = malformed(
        "r.html",
        b"<ol>\n<li>Stop<pre><code>systemctl stop db\n</code></li></ol>\n",
    );
    assert_eq!(line, 2);
    assert!(msg.contains("<pre> block is never closed"), "{msg}");
    // Not UTF-8, or not text at all: where.
    let (line, col, msg) = malformed("r.md", b"1. Stop\n2. St\xffart\n");
    assert_eq!((line, col), (2, 6));
    assert!(msg.contains("not UTF-8"), "{msg}");
    let (line, col, _) = malformed("r.md", b"1. a\0b\n");
    assert_eq!((line, col), (1, 5));
    // Nothing that reads as a step.
    let e = import_bytes(
        Path::new("notes.md"),
        b"Just some prose.\n\nMore prose.\n".to_vec(),
        &Options::default(),
    )
    .expect_err("no steps");
    assert!(matches!(e, ImportError::NoSteps(_)));
    assert!(e.to_string().starts_with("notes.md: no steps found"), "{e}");
}

#[test]
fn a_runbooks_shell_variables_stay_literal_in_the_draft() {
    let draft = import_bytes(
        Path::new("pg.md"),
        b"# PG\n\n1. Dump:\n\n   ```sh\n   pg_dump -f \"${BACKUP_DIR}/db.sql\" mydb\n   ```\n"
            .to_vec(),
        &Options {
            product: Some("postgresql".into()),
            ..Options::default()
        },
    )
    .expect("imports");
    let lp = parse_procedure(Path::new("pg.toml"), draft.toml.clone()).expect("checks");
    assert_eq!(lp.procedure.product, "postgresql");
    match &lp.procedure.steps[0].action {
        Action::Run { argv, .. } => assert_eq!(
            argv,
            &["sh", "-c", "pg_dump -f \"$${BACKUP_DIR}/db.sql\" mydb"]
        ),
        a => panic!("{a:?}"),
    }
}

#[test]
fn the_cli_writes_a_draft_that_check_accepts_and_refuses_to_overwrite() {
    let bin = env!("CARGO_BIN_EXE_flightdeck");
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("jahia.toml");
    let seed = seeds().join("jahia-rolling-upgrade.txt");
    let run = |args: &[&std::ffi::OsStr]| Process::new(bin).args(args).output().expect("runs");
    let o = run(&[
        "import".as_ref(),
        seed.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("11 steps from"));
    let o = run(&["check".as_ref(), out.as_os_str()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("ok: jahia-rolling-upgrade: 11 steps"));
    // The draft is the author's now: not overwritten without --force.
    let o = run(&[
        "import".as_ref(),
        seed.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    // Malformed input: exit 2 and `file:line:col`.
    let bad = dir.path().join("bad.md");
    std::fs::write(&bad, "1. Stop\n\n```\nsystemctl stop db\n").expect("writes");
    let o = run(&["import".as_ref(), bad.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with(&format!("{}:3:1: ", bad.display())),
        "{err}"
    );
    // `--help` lists the command.
    let o = run(&["--help".as_ref()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("import"));
}
