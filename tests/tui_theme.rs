//! Theme files: built-ins complete and valid, errors located, resolution order.

use std::fs;

use flightdeck::tui::theme::{Styles, Theme, ThemeError};
use ratatui::style::{Color, Modifier};

#[test]
fn every_builtin_parses_and_names_every_role() {
    for name in Theme::builtin_names() {
        let t = Theme::builtin(name).unwrap().unwrap();
        assert_eq!(t.name, name);
        let path = format!("{}/themes/{name}.toml", env!("CARGO_MANIFEST_DIR"));
        let text = fs::read_to_string(&path).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        let styles = table["styles"].as_table().unwrap();
        for role in Styles::ROLES {
            assert!(styles.contains_key(*role), "{name} lacks {role}");
        }
    }
    let mono = Theme::load_from("mono", None).unwrap();
    assert_eq!(mono.styles.error.fg, None, "mono has no colour");
    assert!(mono
        .styles
        .no_return
        .add_modifier
        .contains(Modifier::REVERSED));
}

#[test]
fn errors_point_at_file_line_and_column() {
    let text = "[styles]\nok = { fg = \"green\" }\nwarn = { fg = \"orange\" }\n";
    let e = Theme::parse("x", "my.toml", text, None).unwrap_err();
    assert!(
        matches!(
            e,
            ThemeError::Invalid {
                line: 3,
                col: 15,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("my.toml:3:15: unknown colour \"orange\""),
        "{e}"
    );

    let e = Theme::parse("x", "my.toml", "[styles]\nokk = {}\n", None).unwrap_err();
    assert!(
        e.to_string().starts_with("my.toml:2:1: unknown style role"),
        "{e}"
    );

    let e = Theme::parse("x", "my.toml", "[styles]\nok = { fg = }\n", None).unwrap_err();
    assert!(e.to_string().starts_with("my.toml:2:"), "{e}");

    let e = Theme::parse(
        "x",
        "my.toml",
        "[styles]\nok = { modifiers = [\"blinky\"] }\n",
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown modifier"), "{e}");
}

#[test]
fn hex_colours_and_partial_files() {
    let t = Theme::parse("x", "x.toml", "[styles]\nok = { fg = \"#12ab3C\" }\n", None).unwrap();
    assert_eq!(t.styles.ok.fg, Some(Color::Rgb(0x12, 0xab, 0x3c)));
    // Roles a file leaves out keep the dark theme's.
    assert_eq!(t.styles.error, Theme::dark().styles.error);
}

#[test]
fn resolution_order() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path();
    // Nothing anywhere: dark; NO_COLOR: mono.
    assert_eq!(Theme::resolve_with(None, Some(cfg), false).0.name, "dark");
    assert_eq!(Theme::resolve_with(None, Some(cfg), true).0.name, "mono");
    // The config file beats NO_COLOR; the command line beats both.
    fs::write(cfg.join("config.toml"), "theme = \"light\"\n").unwrap();
    assert_eq!(Theme::resolve_with(None, Some(cfg), true).0.name, "light");
    assert_eq!(
        Theme::resolve_with(Some("high-contrast"), Some(cfg), true)
            .0
            .name,
        "high-contrast"
    );
    // A user theme overrides the built-in of the same name, starting from it.
    fs::create_dir(cfg.join("themes")).unwrap();
    fs::write(
        cfg.join("themes/light.toml"),
        "[styles]\nok = { fg = \"magenta\" }\n",
    )
    .unwrap();
    let (t, w) = Theme::resolve_with(None, Some(cfg), false);
    assert_eq!(w, None);
    assert_eq!(t.styles.ok.fg, Some(Color::Magenta));
    assert_eq!(
        t.styles.title,
        Theme::load_from("light", None).unwrap().styles.title
    );
    // A path works too.
    let p = cfg.join("mine.toml");
    fs::write(&p, "[styles]\nwarn = { fg = \"blue\" }\n").unwrap();
    let (t, w) = Theme::resolve_with(Some(p.to_str().unwrap()), Some(cfg), false);
    assert_eq!((t.name.as_str(), w), ("mine", None));
    assert_eq!(t.styles.warn.fg, Some(Color::Blue));
}

#[test]
fn a_broken_theme_warns_with_its_location_and_falls_back_to_dark() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    fs::write(&p, "[styles]\n\nok = { fg = \"nope\" }\n").unwrap();
    let (t, w) = Theme::resolve_with(Some(p.to_str().unwrap()), None, false);
    assert_eq!(t, Theme::dark());
    let w = w.unwrap();
    assert!(w.contains("bad.toml:3:13:"), "{w}");
    let (t, w) = Theme::resolve_with(Some("no-such-theme"), None, false);
    assert_eq!(t.name, "dark");
    assert!(w.unwrap().contains("unknown theme"));
    // A broken config file is reported too, not ignored.
    fs::write(dir.path().join("config.toml"), "theme = [\n").unwrap();
    let (t, w) = Theme::resolve_with(None, Some(dir.path()), false);
    assert_eq!(t.name, "dark");
    assert!(w.unwrap().contains("config.toml:"));
}
