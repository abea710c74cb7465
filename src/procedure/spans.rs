//! Where each value of a TOML file is: a map from a value's path (`steps[2].action.argv[0]`) to
//! its byte span, so semantic checks on the typed model can point at the offending text.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diag::line_col;

#[derive(Debug, Clone, Default)]
pub struct SpanIndex {
    source: String,
    values: BTreeMap<String, Range<usize>>,
    keys: BTreeMap<String, Range<usize>>,
}

impl SpanIndex {
    /// Index a source that toml already accepted (an error here means the source is not TOML).
    pub fn parse(source: &str) -> Result<Self, toml::de::Error> {
        let root = DeTable::parse(source)?;
        let mut index = SpanIndex {
            source: source.to_string(),
            values: BTreeMap::new(),
            keys: BTreeMap::new(),
        };
        index.walk_table("", root.get_ref());
        Ok(index)
    }

    fn walk_table(&mut self, prefix: &str, table: &DeTable<'_>) {
        for (k, v) in table.iter() {
            let path = if prefix.is_empty() {
                k.get_ref().to_string()
            } else {
                format!("{prefix}.{}", k.get_ref())
            };
            self.keys.insert(path.clone(), k.span());
            self.walk_value(path, v);
        }
    }

    fn walk_value(&mut self, path: String, v: &Spanned<DeValue<'_>>) {
        match v.get_ref() {
            DeValue::Table(t) => self.walk_table(&path, t),
            DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    self.walk_value(format!("{path}[{i}]"), item);
                }
            }
            _ => {}
        }
        // Some implicit tables come with an empty span: never let one replace a real span.
        let span = v.span();
        if span.start < span.end || !self.values.contains_key(&path) {
            self.values.insert(path, span);
        }
    }

    /// The span of the value at `path`, or of its nearest ancestor that has one.
    pub fn span(&self, path: &str) -> Option<Range<usize>> {
        let mut p = path;
        loop {
            if let Some(s) = self.values.get(p) {
                return Some(s.clone());
            }
            p = parent(p)?;
        }
    }

    /// 1-based line and column of the value at `path` (or its nearest ancestor, or 1:1).
    pub fn pos(&self, path: &str) -> (usize, usize) {
        self.span(path)
            .map_or((1, 1), |s| line_col(&self.source, s.start))
    }

    /// 1-based line and column of the character `offset` characters into the text of the string
    /// at `path`; the string's own position when its text is not written verbatim (escapes,
    /// multi-line strings).
    pub fn pos_in_string(&self, path: &str, offset: Option<usize>) -> (usize, usize) {
        let Some(offset) = offset else {
            return self.pos(path);
        };
        let Some(span) = self.values.get(path) else {
            return self.pos(path);
        };
        let raw = self.source.get(span.clone()).unwrap_or("");
        let basic = raw.starts_with('"') && !raw.starts_with(r#"""""#) && !raw.contains('\\');
        let literal = raw.starts_with('\'') && !raw.starts_with("'''");
        let (line, col) = line_col(&self.source, span.start);
        if (basic || literal) && offset < raw.chars().count() {
            (line, col + 1 + offset)
        } else {
            (line, col)
        }
    }

    /// 1-based line and column of the key of the value at `path`, if it has one.
    pub fn key_pos(&self, path: &str) -> Option<(usize, usize)> {
        self.keys.get(path).map(|s| line_col(&self.source, s.start))
    }

    /// The deepest value path whose span contains `offset`.
    pub fn path_at(&self, offset: usize) -> Option<&str> {
        self.values
            .iter()
            .filter(|(_, s)| s.start <= offset && offset < s.end.max(s.start + 1))
            // An array and its first table can share a span: prefer the deeper path.
            .min_by_key(|(p, s)| (s.end - s.start, std::cmp::Reverse(p.len())))
            .map(|(p, _)| p.as_str())
    }

    /// The first value under `path` (or `path` itself) whose text is `literal` (quotes aside):
    /// serde reports errors inside a tagged table at the table, this finds the value meant.
    pub fn find_under(&self, path: &str, literal: &str) -> Option<&str> {
        let mut best: Option<(&str, usize)> = None;
        for (p, span) in &self.values {
            let under = p == path
                || p.strip_prefix(path)
                    .is_some_and(|r| r.starts_with('.') || r.starts_with('['));
            let text = self.source.get(span.clone()).unwrap_or("");
            let text = text.trim().trim_matches(|c| c == '"' || c == '\'');
            if under && text == literal && best.is_none_or(|(_, s)| span.start < s) {
                best = Some((p.as_str(), span.start));
            }
        }
        best.map(|(p, _)| p)
    }

    /// Whether there is a value at exactly `path`.
    pub fn has(&self, path: &str) -> bool {
        self.values.contains_key(path)
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

fn parent(path: &str) -> Option<&str> {
    if path.ends_with(']') {
        path.rfind('[').map(|i| &path[..i])
    } else {
        path.rfind('.').map(|i| &path[..i])
    }
}

/// The last key of a path (`argv` for `steps[1].action.argv[0]`).
pub fn last_key(path: &str) -> &str {
    let p = path.trim_end_matches(|c: char| c == ']' || c.is_ascii_digit());
    let p = p.strip_suffix('[').unwrap_or(p);
    p.rsplit('.').next().unwrap_or(p)
}

/// Rewrite one of toml's/serde's error messages as one plain sentence. `path` is where the error
/// points (if known), which tells what kind of thing was wrong.
pub fn plain_message(message: &str, path: Option<&str>) -> String {
    let message = message.trim();
    let key = path.map(last_key).unwrap_or("");
    let in_where = match path {
        Some(p) if !p.is_empty() => format!(" in `{p}`"),
        _ => String::new(),
    };
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (found, expected) = split_expected(rest);
        let what = match key {
            "kind" if path.is_some_and(|p| p.contains("probes")) => "probe kind".to_string(),
            "kind" if path.is_some_and(|p| p.contains("check")) => "check kind".to_string(),
            "kind" => "action kind".to_string(),
            "" => "value".to_string(),
            k => format!("`{k}` value"),
        };
        return format!("unknown {what} {found}; expected one of {expected}");
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (found, expected) = split_expected(rest);
        let table = path
            .and_then(|p| p.strip_suffix(found.trim_matches('`')))
            .map(|p| p.trim_end_matches('.'))
            .filter(|p| !p.is_empty())
            .map(|p| format!(" in `{p}`"))
            .unwrap_or(in_where);
        return format!("unknown key {found}{table}; expected one of {expected}");
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        return format!("missing required key {}{in_where}", rest.trim());
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, "?"));
        return format!(
            "`{key}` must be {}, not {}",
            type_name(expected),
            found_name(found)
        );
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, "?"));
        if found.starts_with("integer") && type_name(expected) == "a whole number" {
            let range = match expected.trim() {
                "u8" => "0 to 255",
                "u16" => "0 to 65535",
                "i32" => "-2147483648 to 2147483647",
                _ => "a smaller whole number",
            };
            return format!("`{key}` = {} is out of range ({range})", found_value(found));
        }
        return format!(
            "`{key}` has an invalid value {}; expected {}",
            found_value(found),
            type_name(expected)
        );
    }
    if message.starts_with("duplicate key") {
        return one_line(message);
    }
    format!("TOML syntax error: {}", one_line(message))
}

/// The offending literal named in a serde message, e.g. `shell` in "unknown variant `shell`, ..."
/// or `soon` in "invalid type: string \"soon\", expected u64".
pub fn offending_literal(message: &str) -> Option<String> {
    let m = message.trim();
    if let Some(rest) = m
        .strip_prefix("unknown variant ")
        .or_else(|| m.strip_prefix("unknown field "))
    {
        let lit = rest.split(", expected").next()?.trim().trim_matches('`');
        return Some(lit.to_string());
    }
    let rest = m
        .strip_prefix("invalid type: ")
        .or_else(|| m.strip_prefix("invalid value: "))?;
    let found = rest.split(", expected").next()?.trim();
    let (_, v) = found.split_once(' ')?;
    Some(v.trim().trim_matches(|c| c == '`' || c == '"').to_string())
}

fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// "`shell`, expected one of `a`, `b`" -> ("`shell`", "a, b").
fn split_expected(rest: &str) -> (String, String) {
    match rest.split_once(", expected ") {
        Some((found, expected)) => {
            let expected = expected
                .trim_start_matches("one of ")
                .trim_start_matches("a ")
                .replace('`', "");
            (found.trim().to_string(), expected)
        }
        None => (rest.trim().to_string(), "something else".to_string()),
    }
}

fn type_name(expected: &str) -> String {
    let e = expected.trim();
    if [
        "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "usize",
    ]
    .contains(&e)
        || e.contains("integer")
    {
        return "a whole number".into();
    }
    if e.contains("string") {
        return "a string".into();
    }
    if e.contains("sequence") || e.contains("array") {
        return "an array".into();
    }
    if e.contains("bool") {
        return "true or false".into();
    }
    if e.contains("map") || e.starts_with("struct") || e.contains("table") {
        return "a table".into();
    }
    e.to_string()
}

fn found_name(found: &str) -> String {
    let f = found.trim();
    let kind = f.split_whitespace().next().unwrap_or(f);
    match kind {
        "string" => format!("a string {}", f.trim_start_matches("string ").trim()),
        "integer" | "float" => format!("the number {}", value_of(f)),
        "boolean" => format!("the boolean {}", value_of(f)),
        "sequence" => "an array".into(),
        "map" => "a table".into(),
        _ => f.to_string(),
    }
}

fn found_value(found: &str) -> String {
    let f = found.trim();
    value_of(f)
}

fn value_of(f: &str) -> String {
    f.split_once(' ')
        .map_or(f, |(_, v)| v)
        .trim_matches('`')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_nested_paths() {
        let src = "name = \"x\"\n[[steps]]\nid = \"a\"\naction = { kind = \"run\", argv = [\"ls\", \"-l\"] }\n";
        let idx = SpanIndex::parse(src).unwrap();
        assert_eq!(idx.pos("name"), (1, 8));
        assert_eq!(idx.pos("steps[0].id"), (3, 6));
        assert_eq!(idx.pos("steps[0].action.argv[1]"), (4, 40));
        // Missing paths fall back to the nearest ancestor.
        assert_eq!(idx.pos("steps[0].action.nope"), idx.pos("steps[0].action"));
    }

    #[test]
    fn last_key_strips_indexes() {
        assert_eq!(last_key("steps[1].action.argv[0]"), "argv");
        assert_eq!(last_key("name"), "name");
    }

    #[test]
    fn rewrites_unknown_variant() {
        let m = plain_message(
            "unknown variant `shell`, expected one of `manual`, `run`, `http`, `lb`, `wait`, `call`",
            Some("steps[0].action.kind"),
        );
        assert_eq!(
            m,
            "unknown action kind `shell`; expected one of manual, run, http, lb, wait, call"
        );
    }
}
