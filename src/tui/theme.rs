//! Themes: named styles read from small TOML files. Built-in themes are embedded so the binary
//! works from anywhere; a user's `<config dir>/themes/<name>.toml` overrides one by name.
//!
//! ```toml
//! [styles]
//! ok = { fg = "green" }
//! no_return = { fg = "white", bg = "red", modifiers = ["bold", "reversed"] }
//! ```
//! Colours are the 16 ANSI names (so 16-colour terminals stay readable) or `#rrggbb`. A role a
//! file leaves out keeps the dark theme's style.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use toml::Spanned;

const BUILTIN: [(&str, &str); 4] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("mono", include_str!("../../themes/mono.toml")),
];

macro_rules! roles {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Every style the cockpit draws with, by role.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Styles { $($(#[$doc])* pub $name: Style,)* }

        impl Styles {
            pub const ROLES: &'static [&'static str] = &[$(stringify!($name)),*];

            fn slot(&mut self, role: &str) -> Option<&mut Style> {
                match role { $(stringify!($name) => Some(&mut self.$name),)* _ => None }
            }

            fn blank() -> Self { Styles { $($name: Style::new(),)* } }

            /// Every style, for a change applied to all (colour depth).
            fn for_each_mut(&mut self, mut f: impl FnMut(&mut Style)) { $(f(&mut self.$name);)* }
        }
    };
}

roles! {
    /// Plain text.
    base,
    /// Secondary text: labels, pending steps, timestamps.
    muted,
    /// Names and values worth a glance.
    accent,
    /// Panel titles.
    title,
    border,
    /// The border of the focused panel.
    border_focus,
    /// The header bar.
    header,
    ok,
    warn,
    error,
    /// flightdeck's own narration in the output panel.
    info,
    /// The selected row.
    selected,
    /// The step moving now (running or awaiting the operator).
    active,
    old_version,
    new_version,
    /// Steps and timers where writes are refused.
    downtime_writes,
    /// Steps and timers where nothing is served.
    downtime_full,
    /// The loud "past the point of no return" banner.
    no_return,
    /// Prompt modals.
    prompt,
    /// Key names in hints and help.
    key,
    /// The one-line status message in the footer.
    status,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub styles: Styles,
}

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{col}: {message}")]
    Invalid {
        file: String,
        line: usize,
        col: usize,
        message: String,
    },
    #[error("unknown theme {name:?} (built-in: dark, light, high-contrast, mono; or a path to a .toml file)")]
    Unknown { name: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    #[serde(default)]
    styles: BTreeMap<Spanned<String>, Spanned<StyleSpec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StyleSpec {
    #[serde(default)]
    fg: Option<Spanned<String>>,
    #[serde(default)]
    bg: Option<Spanned<String>>,
    #[serde(default)]
    modifiers: Vec<Spanned<String>>,
}

impl Default for Theme {
    fn default() -> Self {
        Theme::dark()
    }
}

impl Theme {
    /// The default theme; always available.
    pub fn dark() -> Theme {
        // The embedded file is part of the build and covered by a test; should it ever fail to
        // parse, a readable theme built in code still gets the operator a cockpit.
        Theme::parse("dark", "<built-in dark>", BUILTIN[0].1, None).unwrap_or_else(|_| Theme {
            name: "dark".into(),
            styles: fallback_styles(),
        })
    }

    /// A built-in theme by name.
    pub fn builtin(name: &str) -> Option<Result<Theme, ThemeError>> {
        BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, text)| Theme::parse(n, &format!("<built-in {n}>"), text, None))
    }

    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(n, _)| *n)
    }

    /// A theme by name (the user's `<config dir>/themes/<name>.toml` first, then the
    /// built-ins) or by file path.
    pub fn load(name_or_path: &str) -> Result<Theme, ThemeError> {
        Theme::load_from(name_or_path, user_config_dir().as_deref())
    }

    /// A theme by name (user theme dir first, then built-ins) or path.
    pub fn load_from(name_or_path: &str, config_dir: Option<&Path>) -> Result<Theme, ThemeError> {
        let as_path = Path::new(name_or_path);
        if name_or_path.ends_with(".toml") || name_or_path.contains(std::path::MAIN_SEPARATOR) {
            return Theme::load_file(as_path);
        }
        if let Some(dir) = config_dir {
            let user = dir.join("themes").join(format!("{name_or_path}.toml"));
            if user.is_file() {
                return Theme::load_file(&user);
            }
        }
        Theme::builtin(name_or_path).unwrap_or_else(|| {
            Err(ThemeError::Unknown {
                name: name_or_path.into(),
            })
        })
    }

    fn load_file(path: &Path) -> Result<Theme, ThemeError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ThemeError::Io {
            file: file.clone(),
            source,
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.clone());
        // A user theme named like a built-in starts from that built-in, so a file may change
        // a single role.
        let base = Theme::builtin(&name).and_then(Result::ok);
        Theme::parse(&name, &file, &text, base)
    }

    /// Parse theme text; `file` names it in errors. Roles the text leaves out come from `base`
    /// (or the dark theme).
    pub fn parse(
        name: &str,
        file: &str,
        text: &str,
        base: Option<Theme>,
    ) -> Result<Theme, ThemeError> {
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, col) = line_col(text, span.start);
            ThemeError::Invalid {
                file: file.into(),
                line,
                col,
                message,
            }
        };
        let parsed: ThemeFile = toml::from_str(text).map_err(|e| {
            let message = e.message().to_string();
            at(e.span().unwrap_or(0..0), message)
        })?;
        let mut styles = match base {
            Some(b) => b.styles,
            None if name == "dark" => Styles::blank(),
            None => Theme::dark().styles,
        };
        for (role, spec) in parsed.styles {
            let role_span = role.span();
            let role = role.into_inner();
            let spec = spec.into_inner();
            let mut style = Style::new();
            if let Some(fg) = spec.fg {
                let span = fg.span();
                style = style.fg(parse_color(fg.get_ref()).map_err(|m| at(span, m))?);
            }
            if let Some(bg) = spec.bg {
                let span = bg.span();
                style = style.bg(parse_color(bg.get_ref()).map_err(|m| at(span, m))?);
            }
            for m in spec.modifiers {
                let span = m.span();
                style = style.add_modifier(parse_modifier(m.get_ref()).map_err(|e| at(span, e))?);
            }
            let slot = styles.slot(&role).ok_or_else(|| {
                at(
                    role_span,
                    format!(
                        "unknown style role {role:?} (roles: {})",
                        Styles::ROLES.join(", ")
                    ),
                )
            })?;
            *slot = style;
        }
        Ok(Theme {
            name: name.into(),
            styles,
        })
    }

    /// The theme to use: `--theme` (name or path), else `theme = "..."` in
    /// `$XDG_CONFIG_HOME/flightdeck/config.toml`, else mono when `NO_COLOR` is set, else dark.
    /// A theme that fails to load gives a warning (with its location) and the dark theme.
    pub fn resolve(cli: Option<&str>) -> (Theme, Option<String>) {
        let config_dir = user_config_dir();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let (theme, warning) = Theme::resolve_with(cli, config_dir.as_deref(), no_color);
        (
            theme.for_depth(super::color_depth::ColorDepth::from_env()),
            warning,
        )
    }

    /// This theme as a terminal of `depth` can show it.
    pub fn for_depth(mut self, depth: super::color_depth::ColorDepth) -> Theme {
        self.styles.for_each_mut(|s| *s = depth.style(*s));
        self
    }

    /// [`Theme::resolve`] with its environment spelled out (for tests).
    pub fn resolve_with(
        cli: Option<&str>,
        config_dir: Option<&Path>,
        no_color: bool,
    ) -> (Theme, Option<String>) {
        let mut warning = None;
        let chosen: Option<String> = match cli {
            Some(c) => Some(c.to_string()),
            None => match config_dir.map(|d| config_theme(&d.join("config.toml"))) {
                Some(Ok(found)) => found,
                Some(Err(w)) => {
                    warning = Some(w);
                    None
                }
                None => None,
            },
        };
        let chosen = chosen.or_else(|| no_color.then(|| "mono".to_string()));
        match chosen {
            None => (Theme::dark(), warning),
            Some(name) => match Theme::load_from(&name, config_dir) {
                Ok(t) => (t, warning),
                Err(e) => (
                    Theme::dark(),
                    Some(format!("theme: {e}; using the dark theme")),
                ),
            },
        }
    }
}

/// `theme = "..."` from the user's config file; Ok(None) when the file or key is absent.
fn config_theme(path: &Path) -> Result<Option<String>, String> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(default)]
        theme: Option<String>,
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    toml::from_str::<Config>(&text)
        .map(|c| c.theme)
        .map_err(|e| {
            let (line, col) = line_col(&text, e.span().map_or(0, |s| s.start));
            format!("{}:{line}:{col}: {}", path.display(), e.message())
        })
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit_once('\n')
        .map_or(before, |(_, l)| l)
        .chars()
        .count()
        + 1;
    (line, col)
}

fn parse_color(s: &str) -> Result<Color, String> {
    let lower = s.to_ascii_lowercase().replace(['-', '_', ' '], "");
    let c = match lower.as_str() {
        "reset" | "default" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "gray" | "grey" => Color::Gray,
        "white" => Color::White,
        "darkgray" | "darkgrey" | "brightblack" => Color::DarkGray,
        "lightred" | "brightred" => Color::LightRed,
        "lightgreen" | "brightgreen" => Color::LightGreen,
        "lightyellow" | "brightyellow" => Color::LightYellow,
        "lightblue" | "brightblue" => Color::LightBlue,
        "lightmagenta" | "brightmagenta" => Color::LightMagenta,
        "lightcyan" | "brightcyan" => Color::LightCyan,
        hex if hex.len() == 7
            && hex.starts_with('#')
            && hex.chars().skip(1).all(|c| c.is_ascii_hexdigit()) =>
        {
            let v = u32::from_str_radix(&hex[1..], 16)
                .map_err(|_| format!("bad colour {s:?}: expected #rrggbb"))?;
            Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8)
        }
        _ => {
            return Err(format!(
                "unknown colour {s:?} (use an ANSI name like \"red\", \"light-blue\", \"dark-gray\", or \"#rrggbb\")"
            ))
        }
    };
    Ok(c)
}

fn parse_modifier(s: &str) -> Result<Modifier, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "bold" => Modifier::BOLD,
        "dim" => Modifier::DIM,
        "italic" => Modifier::ITALIC,
        "underlined" | "underline" => Modifier::UNDERLINED,
        "reversed" | "reverse" => Modifier::REVERSED,
        "slow_blink" | "blink" => Modifier::SLOW_BLINK,
        "crossed_out" => Modifier::CROSSED_OUT,
        _ => {
            return Err(format!(
            "unknown modifier {s:?} (bold, dim, italic, underlined, reversed, blink, crossed_out)"
        ))
        }
    })
}

fn fallback_styles() -> Styles {
    let mut s = Styles::blank();
    s.muted = Style::new().add_modifier(Modifier::DIM);
    s.title = Style::new().add_modifier(Modifier::BOLD);
    s.border_focus = Style::new().add_modifier(Modifier::BOLD);
    s.header = Style::new().add_modifier(Modifier::REVERSED);
    s.error = Style::new().add_modifier(Modifier::BOLD);
    s.selected = Style::new().add_modifier(Modifier::REVERSED);
    s.no_return = Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD);
    s
}

/// `$XDG_CONFIG_HOME/flightdeck` (or the platform's equivalent).
pub fn user_config_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "flightdeck").map(|d| d.config_dir().to_path_buf())
}

/// Where a user's theme files live (for `--help` texts and docs).
pub fn user_theme_dir() -> Option<PathBuf> {
    user_config_dir().map(|d| d.join("themes"))
}
