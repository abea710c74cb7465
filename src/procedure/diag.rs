//! Diagnostics: every problem found in a procedure or target file, with its position, printed as
//! `file:line:col: message` so editors and terminals can jump to it.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem at one place in one file (line and column are 1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Diagnostic {
    pub fn new(file: &Path, (line, col): (usize, usize), message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The message quotes the file (an offending literal, a key), and the file is read
        // from outside: shown without escape sequences, on its line.
        write!(
            f,
            "{}:{}:{}: {}",
            crate::terminal_text::one_line(&self.file.display().to_string()),
            self.line,
            self.col,
            crate::terminal_text::one_line(&self.message)
        )
    }
}

/// All the problems found in one pass, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// Sort by file then position, so the output reads top to bottom.
    pub fn sort(&mut self) {
        self.0
            .sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// 1-based line and column (in characters) of a byte offset in `source`.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = source[line_start..offset].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_is_one_based_and_counts_chars() {
        let s = "a = 1\nbé = 2\n";
        assert_eq!(line_col(s, 0), (1, 1));
        assert_eq!(line_col(s, 6), (2, 1));
        // `=` after a two-byte char is the fourth character of line 2.
        assert_eq!(line_col(s, 10), (2, 4));
        assert_eq!(line_col(s, 999), (3, 1));
    }

    #[test]
    fn display_is_one_per_line() {
        let p = Path::new("x.toml");
        let d = Diagnostics(vec![
            Diagnostic::new(p, (1, 2), "first"),
            Diagnostic::new(p, (3, 4), "second"),
        ]);
        assert_eq!(d.to_string(), "x.toml:1:2: first\nx.toml:3:4: second");
    }

    #[test]
    fn a_quoted_literal_cannot_carry_an_escape_or_forge_a_line() {
        let literal = "\u{1b}]0;title\u{7}sh\nx.toml:9:9: ok\u{1b}[2J";
        let d = Diagnostic::new(Path::new("x.toml"), (1, 2), format!("unknown `{literal}`"));
        assert_eq!(d.to_string(), "x.toml:1:2: unknown `sh x.toml:9:9: ok`");
    }
}
