//! Cockpit snapshots: hand-made sessions rendered on a `TestBackend`.

use flightdeck::engine::event::{Event, PromptKind, Stream, Verdict};
use flightdeck::procedure::model::Membership;
use flightdeck::tui::commands::COMMANDS;
use flightdeck::tui::demo::{self, Script};
use flightdeck::tui::input::command_line;
use flightdeck::tui::render::to_text;
use flightdeck::tui::theme::Theme;
use flightdeck::tui::view::{Overlay, TuiRole, View};

fn view_of(script: &Script, role: TuiRole) -> View {
    // In the demo session alice (id 1) drives and bob (id 2) watches.
    let id = if role == TuiRole::Observer { 2 } else { 1 };
    View::from_events(role, "flightdeck · lab-jahia", id, script.events())
}

/// A driver view with the prompt marked as shown (as the run loop does before drawing).
fn driver(script: &Script) -> View {
    let mut v = view_of(script, TuiRole::Driver);
    v.sync_prompt(std::time::Instant::now());
    v
}

fn snap(name: &str, view: &View, w: u16, h: u16) {
    let text = to_text(view, &Theme::dark(), w, h);
    insta::with_settings!({snapshot_path => "../src/tui/snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn awaiting_confirm() {
    let mut s = Script::started();
    s.through(demo::STEP_BACKUP);
    s.prompt(demo::STEP_BACKUP, PromptKind::Run);
    let v = driver(&s);
    snap("awaiting_confirm", &v, 80, 24);
}

/// The upgrade of the first node, running, with a probe failing: the docs' picture.
fn running_scene() -> View {
    let mut s = Script::started();
    s.through(demo::STEP_UPGRADE1);
    s.prompt(demo::STEP_UPGRADE1, PromptKind::Run);
    s.push(
        2000,
        Event::Confirmed {
            step: demo::STEP_UPGRADE1,
            by: "alice".into(),
            auto: false,
        },
    );
    s.start(demo::STEP_UPGRADE1);
    for l in [
        "stopping jahia1",
        "jahia1 stopped",
        "installing 8.2.0 (412 MB)",
    ] {
        s.output(demo::STEP_UPGRADE1, Stream::Stdout, l);
    }
    s.output(
        demo::STEP_UPGRADE1,
        Stream::Stderr,
        "warning: cache dir not empty",
    );
    s.probe("jahia1", false, 1001);
    s.push(
        300,
        Event::Note {
            by: "bob".into(),
            text: "editors told".into(),
        },
    );
    let mut v = driver(&s);
    v.now_ms = v.state.t_ms + 12_000;
    v
}

#[test]
fn running_with_output() {
    snap("running_with_output", &running_scene(), 100, 30);
}

/// docs/cockpit.txt: the docs' picture, every key of the `?` help and every command of the
/// `:` command line, all from the code that draws and parses them.
fn docs_capture() -> String {
    let mut out = String::from("A cockpit at 100x30 (lab-jahia, upgrading the first node):\n\n");
    out.push_str(&to_text(&running_scene(), &Theme::dark(), 100, 30));
    out.push_str("\nKeys (? in the cockpit shows them):\n");
    for column in flightdeck::tui::render::HELP_KEYS {
        for (group, keys) in flightdeck::tui::render::help_entries(column) {
            out.push_str(&format!("\n{group}\n"));
            for (k, what) in keys {
                out.push_str(&format!("  {k:<12} {what}\n").replace(" \n", "\n"));
            }
        }
    }
    out.push_str("\nCommands (: opens the command line, Enter runs it):\n\n");
    for c in COMMANDS {
        let mut usage = c.usage();
        for a in c.aliases {
            usage.push_str(&format!(" | {a}"));
        }
        out.push_str(&format!("  :{usage:<34} {}\n", c.what));
    }
    out
}

/// Writes docs/cockpit.txt: `cargo test --test tui_render -- --ignored write_docs_capture`.
#[test]
#[ignore]
fn write_docs_capture() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cockpit.txt");
    std::fs::write(path, docs_capture()).unwrap();
}

/// docs/cockpit.txt is what the cockpit draws and knows today.
#[test]
fn the_docs_capture_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cockpit.txt");
    let on_disk = std::fs::read_to_string(path).unwrap();
    assert!(
        on_disk == docs_capture(),
        "docs/cockpit.txt is stale: run `cargo test --test tui_render -- --ignored \
         write_docs_capture` and commit it"
    );
}

/// The `?` help lists every command the `:` command line parses, and the parser handles
/// every command of its table (each name and alias), so the two cannot drift apart.
#[test]
fn the_help_lists_every_command_of_the_command_line() {
    let mut s = Script::started();
    s.through(demo::STEP_BACKUP);
    let mut v = driver(&s);
    for c in COMMANDS {
        for word in std::iter::once(&c.name).chain(c.aliases) {
            let said = match command_line(&v, &format!("{word} 1")) {
                flightdeck::tui::Intent::Ui(flightdeck::tui::UiAction::Status(s)) => s,
                _ => String::new(),
            };
            assert!(
                !said.contains("unknown command") && !said.contains("is not handled"),
                ":{word}: {said}"
            );
        }
    }
    let unknown = match command_line(&v, "frobnicate") {
        flightdeck::tui::Intent::Ui(flightdeck::tui::UiAction::Status(s)) => s,
        other => panic!("{other:?}"),
    };
    for c in COMMANDS {
        assert!(unknown.contains(&c.usage()), "{unknown}");
    }

    // On the smallest screen the help's `:` row and the rows under it name every command.
    v.overlay = Some(Overlay::Help);
    let text = to_text(&v, &Theme::dark(), 80, 24);
    let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
    let (row, col) = lines
        .iter()
        .enumerate()
        .find_map(|(y, l)| {
            // Other rows have colons too ("owner: remove ..."): the key column holds `:` alone.
            (0..l.len()).find_map(|x| {
                let key: String = l[x..(x + 10).min(l.len())].iter().collect();
                (key == ":         ").then_some((y, x))
            })
        })
        .unwrap_or_else(|| panic!("no `:` row in the help:\n{text}"));
    let mut words = Vec::new();
    for (i, l) in lines[row..].iter().enumerate() {
        let key: String = l[col..col + 10].iter().collect();
        if i > 0 && !key.trim().is_empty() {
            break;
        }
        let rest: String = l[col + 10..].iter().take_while(|c| **c != '│').collect();
        words.extend(rest.split_whitespace().map(String::from));
    }
    for c in COMMANDS {
        assert!(
            words.iter().any(|w| w == c.name),
            "{} in {words:?}:\n{text}",
            c.name
        );
    }
    // The help fits the smallest screen: its last row is on it.
    assert!(text.contains("? or Esc closes"), "{text}");
    assert!(text.contains("rej ✗N"), "{text}");
}

#[test]
fn failed_step() {
    let mut s = Script::started();
    s.through(demo::STEP_BACKUP);
    s.prompt(demo::STEP_BACKUP, PromptKind::Run);
    s.push(
        1000,
        Event::Confirmed {
            step: demo::STEP_BACKUP,
            by: "alice".into(),
            auto: false,
        },
    );
    s.start(demo::STEP_BACKUP);
    s.output(
        demo::STEP_BACKUP,
        Stream::Stderr,
        "pg_dump: error: could not write to output file: No space left on device",
    );
    s.finish(demo::STEP_BACKUP, Verdict::Failed, "exit 1 (expected 0)");
    s.prompt(demo::STEP_BACKUP, PromptKind::Failed);
    snap("failed_step", &driver(&s), 80, 24);
}

#[test]
fn read_only_active_timer_shown() {
    let mut s = Script::started();
    s.through(demo::STEP_DRAIN1);
    let mut v = view_of(&s, TuiRole::Observer);
    // 83 s after the last event: the read-only window keeps counting.
    v.now_ms = v.state.t_ms + 83_000;
    let text = to_text(&v, &Theme::dark(), 80, 24);
    assert!(text.contains("writes down "), "{text}");
    snap("read_only_active", &v, 80, 24);
}

#[test]
fn node_drained_from_lb() {
    let mut s = Script::started();
    s.through(demo::STEP_UPGRADE1);
    let v = view_of(&s, TuiRole::Driver);
    let text = to_text(&v, &Theme::dark(), 100, 30);
    let jahia1 = text
        .lines()
        .find(|l| l.contains("jahia1-srv"))
        .expect("backend row");
    assert!(
        jahia1.contains("drain") && jahia1.contains("idle"),
        "{jahia1}"
    );
    snap("node_drained", &v, 100, 30);
}

#[test]
fn phrase_prompt() {
    let mut s = Script::started();
    s.through(demo::STEP_MIGRATE);
    s.prompt(demo::STEP_MIGRATE, PromptKind::Run);
    s.push(
        900,
        Event::Approved {
            step: demo::STEP_MIGRATE,
            by: "alice".into(),
            uid: None,
            confirm: false,
        },
    );
    let mut v = driver(&s);
    if let Some(p) = &mut v.prompt {
        p.phrase = tui_input::Input::new("migrate ja".into());
    }
    snap("phrase_prompt", &v, 80, 24);
}

#[test]
fn help_overlay() {
    let mut s = Script::started();
    s.through(demo::STEP_BACKUP);
    let mut v = driver(&s);
    v.overlay = Some(Overlay::Help);
    snap("help_overlay", &v, 80, 24);
}

#[test]
fn too_small() {
    let v = driver(&Script::started());
    snap("too_small", &v, 60, 20);
    // At 40x10 the whole message shows, not a cut "...have 40x".
    let t = to_text(&v, &Theme::dark(), 40, 10);
    assert!(t.contains("need 80x24, have 40x10"), "{t}");
    assert!(t.contains("terminal too small"), "{t}");
    // Tiny sizes never panic.
    for (w, h) in [(1, 1), (10, 3), (79, 24), (80, 23), (0, 0)] {
        let t = to_text(&v, &Theme::dark(), w, h);
        if w > 0 && h > 0 {
            assert_eq!(t.lines().count(), h as usize);
        }
    }
}

#[test]
fn past_point_of_no_return() {
    let mut s = Script::started();
    s.through(demo::STEP_READY1 + 1);
    s.lb([Membership::Ready, Membership::Drain, Membership::Ready]);
    let v = view_of(&s, TuiRole::Driver);
    let text = to_text(&v, &Theme::dark(), 80, 24);
    assert!(text.contains("PAST THE POINT OF NO RETURN"), "{text}");
    snap("past_no_return", &v, 80, 24);
}

#[test]
fn every_size_from_tiny_to_wide_renders() {
    let mut s = Script::started();
    s.through(demo::STEP_MIGRATE);
    s.prompt(demo::STEP_MIGRATE, PromptKind::Run);
    let v = driver(&s);
    for w in [1u16, 20, 79, 80, 81, 99, 100, 120, 160, 250] {
        for h in [1u16, 5, 23, 24, 25, 30, 50] {
            let _ = to_text(&v, &Theme::dark(), w, h);
        }
    }
}

#[test]
fn observer_sees_who_is_asked_and_can_approve() {
    let mut s = Script::started();
    s.through(demo::STEP_MIGRATE);
    s.prompt(demo::STEP_MIGRATE, PromptKind::Run);
    s.push(
        900,
        Event::Approved {
            step: demo::STEP_MIGRATE,
            by: "alice".into(),
            uid: None,
            confirm: false,
        },
    );
    let v = view_of(&s, TuiRole::Observer);
    let text = to_text(&v, &Theme::dark(), 100, 30);
    assert!(
        !text.contains("Type `migrate jahia`"),
        "no modal for observers"
    );
    snap("observer_prompt", &v, 100, 30);
}

#[test]
fn rolling_back_then_rolled_back() {
    use flightdeck::engine::event::{Outcome, Phase};
    let mut s = Script::started();
    s.through(demo::STEP_DRAIN1 + 1);
    s.push(
        500,
        Event::AbortRequested {
            by: "alice".into(),
            rollback: true,
            reason: None,
        },
    );
    s.prompt(demo::STEP_DRAIN1, PromptKind::Undo);
    let v = driver(&s);
    snap("undo_prompt_rolling_back", &v, 80, 24);
    s.push(
        800,
        Event::Confirmed {
            step: demo::STEP_DRAIN1,
            by: "alice".into(),
            auto: false,
        },
    );
    s.push(
        100,
        Event::ActionStarted {
            step: demo::STEP_DRAIN1,
            phase: Phase::Undo,
            attempt: 1,
        },
    );
    s.push(
        700,
        Event::ActionFinished {
            step: demo::STEP_DRAIN1,
            phase: Phase::Undo,
            attempt: 1,
            verdict: Verdict::Passed,
            detail: "jahia1 ready again".into(),
        },
    );
    s.push(
        100,
        Event::Finished {
            outcome: Outcome::RolledBack,
        },
    );
    let v = view_of(&s, TuiRole::Driver);
    let text = to_text(&v, &Theme::dark(), 80, 24);
    assert!(text.contains("FINISHED: rolled back"), "{text}");
    assert!(!v.timer_running(), "a finished session needs no tick");
}

#[test]
fn the_no_return_banner_uses_its_theme_style() {
    let mut s = Script::started();
    s.through(demo::STEP_READY1 + 1);
    let v = view_of(&s, TuiRole::Driver);
    let theme = Theme::dark();
    let backend = ratatui::backend::TestBackend::new(80, 24);
    let mut term = ratatui::Terminal::new(backend).unwrap();
    term.draw(|f| flightdeck::tui::render(f, &v, &theme))
        .unwrap();
    let buf = term.backend().buffer();
    let row: String = (0..80).map(|x| buf[(x, 1)].symbol().to_string()).collect();
    let col = row.chars().position(|c| c == 'P').unwrap() as u16;
    let style = buf[(col, 1)].style();
    assert_eq!(style.fg, theme.styles.no_return.fg);
    assert!(style
        .add_modifier
        .contains(ratatui::style::Modifier::REVERSED));
}

#[test]
fn wide_characters_keep_columns_aligned() {
    use flightdeck::tui::render::{fit, truncate};
    assert_eq!(fit("移行", 6), "移行  ");
    assert_eq!(truncate("データベースの移行", 7), "データ…");
    let mut s = Script::started();
    s.through(demo::STEP_BACKUP);
    let mut v = view_of(&s, TuiRole::Driver);
    v.state.plan.steps[0].title = "メンテナンスを告知する長いタイトルです".into();
    let text = to_text(&v, &Theme::dark(), 80, 24);
    let row = text.lines().find(|l| l.contains("メンテ")).unwrap();
    let other = text
        .lines()
        .find(|l| l.contains("Cluster healthy"))
        .unwrap();
    use unicode_width::UnicodeWidthStr;
    assert_eq!(row.width(), other.width(), "\n{row}\n{other}");
}

#[test]
fn output_wraps_long_lines_and_strips_escapes() {
    let mut s = Script::started();
    s.through(demo::STEP_BACKUP);
    s.start(demo::STEP_BACKUP);
    s.output(
        demo::STEP_BACKUP,
        Stream::Stdout,
        "\u{1b}[31merror:\u{1b}[0m the dump stopped because the disk holding /backup is full; free space and retry END",
    );
    s.output(demo::STEP_BACKUP, Stream::Stdout, "10%\r50%\r100%\tdone");
    let v = view_of(&s, TuiRole::Driver);
    let text = to_text(&v, &Theme::dark(), 100, 30);
    assert!(text.contains("error: the dump stopped"), "{text}");
    assert!(text.contains("retry END"), "wrapped, not cut:\n{text}");
    assert!(
        text.contains("100%    done") && !text.contains("50%"),
        "{text}"
    );
    assert!(!text.contains("[31m"), "{text}");
}

#[test]
fn gate_progress_lb_error_and_secrets_are_shown_right() {
    let mut s = Script::started();
    s.through(1);
    s.prompt(1, PromptKind::Run);
    s.start(1);
    s.push(
        300,
        Event::GateProgress {
            step: 1,
            passing: 2,
            total: 3,
            stable_ms: 4000,
            need_ms: 10_000,
        },
    );
    s.push(
        100,
        Event::LbChanged {
            backends: Vec::new(),
            error: Some("connection refused".into()),
        },
    );
    let v = view_of(&s, TuiRole::Driver);
    let text = to_text(&v, &Theme::dark(), 120, 40);
    assert!(
        text.contains("2/3 passing · stable 00:04 of 00:10"),
        "{text}"
    );
    assert!(text.contains("✗ connection refused"), "{text}");

    // The read-only step's HTTP action: its Authorization header is masked.
    let mut v = view_of(&s, TuiRole::Driver);
    v.selected = Some(demo::STEP_READ_ONLY);
    let text = to_text(&v, &Theme::dark(), 120, 40);
    assert!(text.contains("Authorization: ****"), "{text}");
    assert!(!text.contains("secret"), "{text}");
    assert!(
        text.contains("POST http://127.0.0.1:18081/modules/api/readonly"),
        "{text}"
    );
}

#[test]
fn every_theme_renders() {
    let mut s = Script::started();
    s.through(demo::STEP_MIGRATE);
    s.prompt(demo::STEP_MIGRATE, PromptKind::Run);
    let v = driver(&s);
    let plain = to_text(&v, &Theme::dark(), 100, 30);
    for name in Theme::builtin_names() {
        let theme = Theme::load_from(name, None).unwrap();
        // Themes change styles only, never the text.
        assert_eq!(to_text(&v, &theme, 100, 30), plain, "{name}");
    }
}

#[test]
fn a_note_stays_in_sight_while_probe_samples_stream_in() {
    let mut s = Script::started();
    s.push(
        100,
        Event::Note {
            by: "bob".into(),
            text: "editors told: read-only from now".into(),
        },
    );
    for round in 0..40u64 {
        s.probe("jahia1", true, 5 + round % 7);
    }
    let text = to_text(&driver(&s), &Theme::dark(), 120, 40);
    assert!(
        text.contains("note bob: editors told"),
        "the note scrolled away:\n{text}"
    );
}

/// The Nodes panel tells the product's own state and reason for every node, tells a node a
/// step stopped from one that crashed (flagged unexpected), and counts what does not fit.
#[test]
fn nodes_show_the_products_state_and_reason_for_every_node() {
    let mut s = Script::started();
    for n in demo::NODES {
        s.facts(n, &[("state", "running"), ("reason", "null")]);
    }
    s.through(demo::STEP_UPGRADE1);
    s.prompt(demo::STEP_UPGRADE1, PromptKind::Run);
    s.push(
        500,
        Event::Confirmed {
            step: demo::STEP_UPGRADE1,
            by: "alice".into(),
            auto: false,
        },
    );
    s.start(demo::STEP_UPGRADE1);
    // The upgrade of jahia1 stops it (the step runs); jahia2, untouched, fails on its own
    // with the product's reason, well after anything ran on it.
    s.facts("jahia1", &[("state", "stopped")]);
    s.push(
        20_000,
        Event::NodeFacts {
            node: "jahia2".into(),
            facts: [
                ("state".to_string(), "failed".to_string()),
                (
                    "reason".to_string(),
                    "store migration from format 8001 to 8002 failed".to_string(),
                ),
            ]
            .into(),
            prior_sent_ms: None,
        },
    );
    s.probe("jahia2", false, 0);
    // jahia3 restarts on its own: starting, not down.
    s.facts("jahia3", &[("state", "starting")]);
    let v = driver(&s);
    // Every node's problem has its row, the product's reason with it, and the node the
    // running step stopped is told apart from the crash.
    let text = to_text(&v, &Theme::dark(), 120, 40);
    assert!(text.contains("Nodes · 3 problems"), "{text}");
    assert!(
        text.contains("✗ jahia2: failed — unexpected, no step did this: store migration fro"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "■ jahia1: stopped by step {}",
            demo::STEP_UPGRADE1 + 1
        )),
        "{text}"
    );
    assert!(text.contains("◌ jahia3: starting"), "{text}");
    assert!(!text.contains("status 503"), "{text}");
    snap("nodes_state_and_reason", &v, 120, 40);
    // On the smallest screen the panel keeps a third of it: the last row shows the next
    // problem shortened, then counts and names the rest.
    let small = to_text(&v, &Theme::dark(), 80, 24);
    assert!(small.contains("Nodes · 3 problems"), "{small}");
    assert!(small.contains("✗ jahia2: failed"), "{small}");
    assert!(small.contains("more: "), "{small}");
}

/// The `:` command line: what it takes, what it is typed into, and its keys in the footer.
#[test]
fn the_command_line_lists_its_commands() {
    let mut s = Script::started();
    s.through(demo::STEP_BACKUP);
    let mut v = driver(&s);
    v.update(flightdeck::tui::UiAction::OpenCommand);
    for c in "step 4".chars() {
        let key = crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Char(c));
        if let flightdeck::tui::Intent::Ui(a) =
            flightdeck::tui::map_key(&v, &key, std::time::Instant::now())
        {
            v.update(a);
        }
    }
    let text = to_text(&v, &Theme::dark(), 80, 24);
    // Every command's usage, from the parser's table.
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for c in COMMANDS {
        assert!(flat.contains(&c.usage()), "{}:\n{text}", c.usage());
    }
    assert!(text.contains("override GUARD for NODE -- REASON"), "{text}");
    assert!(text.contains("> step 4"), "{text}");
    let footer = text.lines().last().unwrap_or_default();
    assert!(footer.contains("Enter run  Esc cancel"), "{footer}");
}

/// Feed `text` to the view as typed keys.
fn type_keys(v: &mut View, text: &str) {
    for c in text.chars() {
        let key = crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Char(c));
        if let flightdeck::tui::Intent::Ui(a) =
            flightdeck::tui::map_key(v, &key, std::time::Instant::now())
        {
            v.update(a);
        }
    }
}

/// `/` filters the output and probe panes as it is typed (smart case), each pane's title
/// counting what it shows, the footer saying a filter is on and how to clear it.
#[test]
fn the_filter_narrows_the_output_and_probe_panes() {
    let mut v = running_scene();
    v.update(flightdeck::tui::UiAction::OpenFilter);
    type_keys(&mut v, "jahia1");
    // While typed: the line is in the footer, the panes already filtered.
    let typing = to_text(&v, &Theme::dark(), 100, 30);
    let footer = typing.lines().last().unwrap_or_default();
    assert!(footer.starts_with(" /jahia1"), "{footer}");
    assert!(footer.contains("Enter keep"), "{footer}");
    v.update(flightdeck::tui::UiAction::KeepFilter);
    snap("filter_kept", &v, 100, 30);
    let text = to_text(&v, &Theme::dark(), 100, 30);
    assert!(text.contains("Output · step 6 /jahia1 2 of 4"), "{text}");
    assert!(
        text.contains("stopping jahia1") && text.contains("jahia1 stopped"),
        "{text}"
    );
    assert!(!text.contains("installing 8.2.0"), "{text}");
    assert!(text.contains("/jahia1 7 of 20"), "{text}");
    assert!(
        text.contains("FAIL 1001ms") && !text.contains("editors told"),
        "{text}"
    );
    let footer = text.lines().last().unwrap_or_default();
    assert!(
        footer.contains("filter /jahia1 (Esc clears it)"),
        "{footer}"
    );

    // A capital makes it exact: `FAIL` is the probes' verdict, in no output line.
    v.update(flightdeck::tui::UiAction::OpenFilter);
    for _ in 0.."jahia1".len() {
        let bs = crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Backspace);
        if let flightdeck::tui::Intent::Ui(a) =
            flightdeck::tui::map_key(&v, &bs, std::time::Instant::now())
        {
            v.update(a);
        }
    }
    type_keys(&mut v, "FAIL");
    v.update(flightdeck::tui::UiAction::KeepFilter);
    let text = to_text(&v, &Theme::dark(), 100, 30);
    assert!(
        text.contains("no line matches /FAIL (Esc clears)"),
        "{text}"
    );
    assert!(text.contains("/FAIL 1 of 20"), "{text}");
    // Cleared, everything is back.
    v.update(flightdeck::tui::UiAction::ClearFilter);
    let text = to_text(&v, &Theme::dark(), 100, 30);
    assert!(
        text.contains("installing 8.2.0") && text.contains("editors told"),
        "{text}"
    );
    assert!(!text.contains("filter /"), "{text}");
}

/// The end of a rollback says what its verification found: verified, or which node failed
/// which check with the product's own words — never a bare "rolled back".
#[test]
fn the_end_of_a_rollback_shows_its_verification() {
    use flightdeck::engine::event::{CheckVerdict, NodeVerdict, Outcome, Phase};
    let rolled_back = |verdicts: Vec<NodeVerdict>, verified: bool| {
        let mut s = Script::started();
        s.through(demo::STEP_DRAIN1 + 1);
        s.push(
            500,
            Event::AbortRequested {
                by: "alice".into(),
                rollback: true,
                reason: Some("jahia1 will not start".into()),
            },
        );
        for phase_event in [
            Event::ActionStarted {
                step: demo::STEP_DRAIN1,
                phase: Phase::Undo,
                attempt: 1,
            },
            Event::ActionFinished {
                step: demo::STEP_DRAIN1,
                phase: Phase::Undo,
                attempt: 1,
                verdict: Verdict::Passed,
                detail: "jahia1 ready again".into(),
            },
            Event::VerifyStarted { checks: 2 },
            Event::VerifyFinished {
                verified,
                nodes: verdicts,
                why_not: Vec::new(),
            },
            Event::Finished {
                outcome: Outcome::RolledBack,
            },
        ] {
            s.push(300, phase_event);
        }
        view_of(&s, TuiRole::Driver)
    };
    let check = |what: &str, ok: bool, detail: &str| CheckVerdict {
        what: what.into(),
        ok,
        detail: detail.into(),
    };
    let ok_node = |n: &str| NodeVerdict {
        node: Some(n.into()),
        ok: true,
        checks: vec![
            check("version", true, "8.1.7"),
            check("healthy", true, "200"),
        ],
    };
    let v = rolled_back(demo::NODES.iter().map(|n| ok_node(n)).collect(), true);
    let text = to_text(&v, &Theme::dark(), 120, 40);
    assert!(text.contains("FINISHED: rolled back (verified)"), "{text}");

    let mut nodes: Vec<NodeVerdict> = demo::NODES.iter().map(|n| ok_node(n)).collect();
    nodes[0] = NodeVerdict {
        node: Some("jahia1".into()),
        ok: false,
        checks: vec![
            check("version", true, "8.1.7"),
            check(
                "healthy",
                false,
                "503: store migration from format 8001 to 8002 failed",
            ),
        ],
    };
    let v = rolled_back(nodes, false);
    let text = to_text(&v, &Theme::dark(), 120, 40);
    assert!(
        text.contains(
            "FINISHED: rolled back, NOT verified: jahia1 failed (healthy: 503: store migration"
        ),
        "{text}"
    );
    assert!(!text.contains("(verified)"), "{text}");
    snap("rolled_back_not_verified", &v, 120, 40);
}
