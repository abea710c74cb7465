//! Reading a procedure file: syntax and types first (one error, from toml), then every semantic
//! problem at once, each with its position.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

pub use super::diag::{Diagnostic, Diagnostics};
use super::model::Procedure;
use super::spans::{offending_literal, plain_message, SpanIndex};
use super::timing::{self, Timings};
use super::validate;

/// A procedure as read from disk, with what is needed to point into its source later.
#[derive(Debug, Clone)]
pub struct LoadedProcedure {
    pub path: PathBuf,
    pub source: String,
    pub procedure: Procedure,
    /// Hex SHA-256 of the file's bytes.
    pub hash: String,
    pub spans: SpanIndex,
    /// Timing fields written as text (`timeout_secs = "${recovery_timeout}"`), filled in by
    /// the plan (see `timing`).
    pub timings: Timings,
}

impl LoadedProcedure {
    /// 1-based position of the value at `path` (e.g. `steps[2].action.argv`).
    pub fn pos(&self, path: &str) -> (usize, usize) {
        self.spans.pos(path)
    }

    /// Where the catalogs are looked up by default: `catalog/` next to the procedure file.
    pub fn default_catalog_dir(&self) -> PathBuf {
        self.path.parent().unwrap_or(Path::new(".")).join("catalog")
    }
}

/// Read, parse and validate (without a target) a procedure file.
pub fn load_procedure(path: &Path) -> Result<LoadedProcedure, Diagnostics> {
    let source = read_source(path)?;
    parse_procedure(path, source)
}

/// Parse and validate procedure text that did not come from disk (an embedded default, a test);
/// `path` is only used to name the file in diagnostics.
pub fn parse_procedure(path: &Path, source: String) -> Result<LoadedProcedure, Diagnostics> {
    let (procedure, spans, timings) = parse_typed_timed::<Procedure>(path, &source)?;
    let loaded = LoadedProcedure {
        path: path.to_path_buf(),
        hash: hex_sha256(source.as_bytes()),
        source,
        procedure,
        spans,
        timings,
    };
    let diags = validate::validate(&loaded, None);
    if diags.is_empty() {
        Ok(loaded)
    } else {
        Err(diags)
    }
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The file's text, or a single diagnostic at 1:1.
pub(crate) fn read_source(path: &Path) -> Result<String, Diagnostics> {
    let one = |msg: String| Diagnostics(vec![Diagnostic::new(path, (1, 1), msg)]);
    let bytes = std::fs::read(path)
        .map_err(|e| one(format!("cannot read {}: {}", path.display(), io_reason(&e))))?;
    String::from_utf8(bytes)
        .map_err(|_| one(format!("cannot read {}: not UTF-8 text", path.display())))
}

fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    // "No such file or directory (os error 2)" -> "No such file or directory"
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Deserialize `source` as `T`, turning toml's error into one positioned, plain diagnostic.
pub(crate) fn parse_typed<T: DeserializeOwned>(
    path: &Path,
    source: &str,
) -> Result<(T, SpanIndex), Diagnostics> {
    let index = SpanIndex::parse(source);
    match toml::from_str::<T>(source) {
        Ok(v) => match index {
            Ok(idx) => Ok((v, idx)),
            Err(e) => Err(toml_error(path, source, &e, None)),
        },
        Err(e) => Err(toml_error(path, source, &e, index.ok().as_ref())),
    }
}

/// As [`parse_typed`], with the timing fields written as text set aside (see `timing`).
pub(crate) fn parse_typed_timed<T: DeserializeOwned>(
    path: &Path,
    source: &str,
) -> Result<(T, SpanIndex, Timings), Diagnostics> {
    let (Ok(mut root), Ok(index)) = (toml::de::DeTable::parse(source), SpanIndex::parse(source))
    else {
        // Not TOML: the plain parse says where.
        let (v, index) = parse_typed::<T>(path, source)?;
        return Ok((v, index, Timings::default()));
    };
    let timings = timing::extract(&mut root);
    match T::deserialize(toml::de::Deserializer::from(root)) {
        Ok(v) => Ok((v, index, timings)),
        Err(e) => Err(toml_error(path, source, &e, Some(&index))),
    }
}

fn toml_error(
    path: &Path,
    source: &str,
    e: &toml::de::Error,
    index: Option<&SpanIndex>,
) -> Diagnostics {
    let span = e.span();
    let at = span.as_ref().map_or(0, |s| s.start);
    let Some(idx) = index.filter(|_| span.is_some()) else {
        let mut message = plain_message(e.message(), None);
        if e.message().trim() == "duplicate key" {
            // toml's message does not say which key; the span covers it.
            if let Some(key) = span.and_then(|s| source.get(s)) {
                message = format!("duplicate key `{}`", key.trim());
            }
        }
        return Diagnostics(vec![Diagnostic::new(
            path,
            super::diag::line_col(source, at),
            message,
        )]);
    };
    let mut value_path = idx.path_at(at).map(str::to_string);
    // Errors inside tagged tables (actions, probes) point at the whole table; find the value.
    if let (Some(p), Some(lit)) = (&value_path, offending_literal(e.message())) {
        let field = format!("{p}.{lit}");
        if e.message().starts_with("unknown field") && idx.has(&field) {
            value_path = Some(field);
        } else if let Some(found) = idx.find_under(p, &lit) {
            value_path = Some(found.to_string());
        }
    }
    let pos = match &value_path {
        Some(p) if e.message().starts_with("unknown field") => {
            idx.key_pos(p).unwrap_or_else(|| idx.pos(p))
        }
        Some(p) if !e.message().starts_with("missing field") => idx.pos(p),
        _ => super::diag::line_col(source, at),
    };
    Diagnostics(vec![Diagnostic::new(
        path,
        pos,
        plain_message(e.message(), value_path.as_deref()),
    )])
}
