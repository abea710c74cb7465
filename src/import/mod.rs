//! `flightdeck import RUNBOOK`: a runbook (Markdown, plain text or HTML) drafted into a
//! procedure that `check` accepts. The steps are the runbook's (its numbered items, or its
//! bullets, or its numbered headings), with their text in the runbook's language and the lines
//! they came from; the commands in its code become `run` actions; whatever cannot be read from
//! a runbook (confirm kinds, undo, gates, downtime) is left to the author with a `# REVIEW:`
//! comment. Nothing in the runbook is ever run.
//!
//! `source` reads the file, `markdown`/`html` make its outline, `steps` finds the steps,
//! `command` reads the commands, `hints` flags telling words, `emit` writes the TOML.

pub mod command;
pub mod emit;
pub mod hints;
mod html;
mod markdown;
pub mod outline;
pub mod source;
pub mod steps;

use std::path::{Path, PathBuf};

use crate::procedure::load::parse_procedure;

pub use self::source::Source;
pub use self::steps::{DraftStep, Left};

/// How the runbook is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Markdown, or plain text (its `- ` and `1.` lines are lists).
    Md,
    Html,
}

impl Format {
    /// `.html`/`.htm` is HTML; anything else (`.md`, `.txt`, `.markdown`) is read as Markdown.
    pub fn from_path(path: &Path) -> Format {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("html" | "htm" | "xhtml") => Format::Html,
            _ => Format::Md,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Format::Md => "Markdown",
            Format::Html => "HTML",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{col}: {message}", file.display())]
    Malformed {
        file: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
    #[error(
        "{}: no steps found: a runbook needs a numbered list, a bulleted list, numbered \
         headings (`1. Stop the node`) or commands in code blocks",
        .0.display()
    )]
    NoSteps(PathBuf),
    /// The draft does not pass `check`: a bug of the importer, never the runbook's fault.
    #[error("the draft made from {} does not check (please report it):\n{diags}", path.display())]
    DraftInvalid { path: PathBuf, diags: String },
}

/// What to call the draft; `None` for what the file name suggests.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub format: Option<Format>,
    pub name: Option<String>,
    pub product: Option<String>,
}

/// The draft: its steps (as found) and its TOML text (checked).
#[derive(Debug, Clone)]
pub struct Draft {
    pub steps: Vec<DraftStep>,
    pub left: Vec<Left>,
    pub toml: String,
}

pub fn import_file(path: &Path, opts: &Options) -> Result<Draft, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    import_bytes(path, bytes, opts)
}

/// Import runbook text that is already read; `path` names it (and picks its format unless
/// `opts.format` does).
pub fn import_bytes(path: &Path, bytes: Vec<u8>, opts: &Options) -> Result<Draft, ImportError> {
    let src = Source::from_bytes(path, bytes)?;
    let format = opts.format.unwrap_or_else(|| Format::from_path(path));
    let (blocks, title) = match format {
        Format::Md => markdown::outline(&src)?,
        Format::Html => html::outline(&src)?,
    };
    let (steps, left) = steps::find(&blocks);
    if steps.is_empty() {
        return Err(ImportError::NoSteps(path.to_path_buf()));
    }
    let file_name = src.name();
    let stem = slug(file_name.split('.').next().unwrap_or(""));
    let guessed = stem.split('-').next().unwrap_or("").to_string();
    let header = emit::Header {
        name: opts.name.clone().unwrap_or_else(|| {
            if stem.is_empty() {
                "imported".into()
            } else {
                stem.clone()
            }
        }),
        product_guessed: opts.product.is_none(),
        product: opts.product.clone().unwrap_or_else(|| {
            if guessed.is_empty() {
                "generic".into()
            } else {
                guessed
            }
        }),
        title: title.or_else(|| first_heading(&blocks)),
        source: file_name,
        format: format.label(),
    };
    let toml = emit::procedure(&header, &steps, &left);
    // The promise is a draft `check` accepts: hold the importer to it.
    let draft_path = path.with_extension("toml");
    parse_procedure(&draft_path, toml.clone()).map_err(|d| ImportError::DraftInvalid {
        path: path.to_path_buf(),
        diags: d.to_string(),
    })?;
    Ok(Draft { steps, left, toml })
}

fn first_heading(blocks: &[outline::Block]) -> Option<String> {
    blocks.iter().find_map(|b| match b {
        outline::Block::Heading { text, .. } if !text.is_empty() => Some(text.clone()),
        _ => None,
    })
}

/// Lowercase ASCII letters and digits, other runs as one `-`.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}
