//! The runbook's text and where each byte of it is (line and column), for the source
//! references the draft carries and for `file:line:col` errors.

use std::path::{Path, PathBuf};

use super::ImportError;

#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
    /// Byte offset of each line's start.
    line_starts: Vec<usize>,
}

impl Source {
    /// Text that must be UTF-8 (any encoding declaration aside) and not binary.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Source, ImportError> {
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let valid = String::from_utf8_lossy(&e.as_bytes()[..at]).into_owned();
                let (line, col) = Source::new(path, valid).pos_of(at);
                return Err(ImportError::Malformed {
                    file: path.to_path_buf(),
                    line,
                    col,
                    message: "not UTF-8 text (convert the runbook to UTF-8 first)".into(),
                });
            }
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text).to_string();
        if let Some(at) = text.find('\0') {
            let (line, col) = Source::new(path, text.clone()).pos_of(at);
            return Err(ImportError::Malformed {
                file: path.to_path_buf(),
                line,
                col,
                message: "a NUL byte: this is not a text runbook".into(),
            });
        }
        Ok(Source::new(path, text))
    }

    fn new(path: &Path, text: String) -> Source {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source {
            path: path.to_path_buf(),
            text,
            line_starts,
        }
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset).max(1)
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn pos_of(&self, offset: usize) -> (usize, usize) {
        let line = self.line_of(offset);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let end = offset.min(self.text.len());
        let col = self
            .text
            .get(start..end)
            .map_or(1, |s| s.chars().count() + 1);
        (line, col)
    }

    /// The file's name as the draft cites it.
    pub fn name(&self) -> String {
        self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }
}
