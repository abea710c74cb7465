//! Expectations on a response beyond its status and JSON pointers: `expect_text`, a regular
//! expression (Rust `regex` syntax) that must match somewhere in the body's text, and `expect`,
//! RFC 9535 JSONPath queries (the `serde_json_path` crate) whose selected values compare with
//! a value. The one place that compiles and judges them, so `check`, the plan and a running
//! check agree.

use std::cmp::Ordering;

use regex::Regex;
use serde_json::Value;
use serde_json_path::JsonPath;

use super::model::{CompareOp, HttpSpec, JsonExpect, Rows};
use super::version::Version;

/// A problem in an expectation as written: where in the string (in characters) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectError {
    /// The field relative to the HTTP spec, e.g. `expect[1].path`.
    pub field: String,
    /// Characters into the string's text where the problem is (`None`: the string as a whole).
    pub offset: Option<usize>,
    pub message: String,
}

/// Every problem in an HTTP spec's expectations as written (templates not yet filled in).
pub fn check_http(h: &HttpSpec) -> Vec<ExpectError> {
    let mut out = Vec::new();
    if let Some(t) = &h.expect_text {
        if let Err(message) = check_text_pattern(t) {
            out.push(ExpectError {
                field: "expect_text".into(),
                offset: None,
                message,
            });
        }
    }
    for (key, list) in [("wait_on", &h.wait_on), ("fail_on", &h.fail_on)] {
        for (i, st) in list.iter().enumerate() {
            let problem = if !(100..=599).contains(st) {
                Some(format!("{st} is not an HTTP status (100 to 599)"))
            } else if key == "fail_on" && h.wait_on.contains(st) {
                Some(format!("status {st} is in both `wait_on` and `fail_on`"))
            } else if h.expect_status.contains(st)
                || (h.expect_status.is_empty() && (200..300).contains(st))
            {
                Some(format!(
                    "status {st} is an expected answer here; `{key}` is for the unexpected ones"
                ))
            } else {
                None
            };
            if let Some(message) = problem {
                out.push(ExpectError {
                    field: format!("{key}[{i}]"),
                    offset: None,
                    message,
                });
            }
        }
    }
    for (i, e) in h.expect.iter().enumerate() {
        let field = |k: &str| format!("expect[{i}].{k}");
        if let Err((offset, message)) = check_path(&e.path) {
            out.push(ExpectError {
                field: field("path"),
                offset: Some(offset),
                message,
            });
        }
        match (&e.op, &e.value) {
            (Some(op), None) => out.push(ExpectError {
                field: field("op"),
                offset: None,
                message: format!(
                    "`op = \"{op}\"` needs a `value` to compare with (without one, the path must only select something)"
                ),
            }),
            (Some(CompareOp::In), Some(v)) if !v.is_array() => out.push(ExpectError {
                field: field("value"),
                offset: None,
                message: "`op = \"in\"` needs an array `value`, e.g. [\"green\", \"yellow\"]".into(),
            }),
            (Some(op), Some(v)) if op.orders() && !(v.is_number() || v.is_string()) => {
                out.push(ExpectError {
                    field: field("value"),
                    offset: None,
                    message: format!(
                        "`{op}` orders numbers (write a number) or versions (write a string); {v} is neither"
                    ),
                })
            }
            (Some(op), Some(Value::String(v)))
                if op.orders() && !v.contains("${") && Version::parse(v).is_err() =>
            {
                out.push(ExpectError {
                    field: field("value"),
                    offset: None,
                    message: format!(
                        "`{op}` with a string compares versions, and `{v}` is not one; write a number without quotes to compare numbers"
                    ),
                })
            }
            _ => {}
        }
    }
    out
}

impl CompareOp {
    /// `>=`, `<=`, `>`, `<`.
    pub fn orders(self) -> bool {
        matches!(
            self,
            CompareOp::Ge | CompareOp::Le | CompareOp::Gt | CompareOp::Lt
        )
    }
}

/// A JSONPath as written: whether it parses once its templates are filled in. Each `${name}`
/// stands in as a JSON string of the same length, so the parser's position is the author's.
/// `Err` holds the character offset into the string and one sentence.
pub fn check_path(path: &str) -> Result<(), (usize, String)> {
    let stood_in = stand_in_quoted(path);
    match JsonPath::parse(&stood_in) {
        Ok(_) => Ok(()),
        Err(e) => {
            let byte = e.position().min(stood_in.len());
            let chars = stood_in
                .get(..byte)
                .map_or(0, |prefix| prefix.chars().count());
            Err((
                chars,
                format!(
                    "`{path}` is not an RFC 9535 JSONPath: {} (at character {})",
                    e.message(),
                    chars + 1
                ),
            ))
        }
    }
}

/// `${name}` -> `"xxxx"` of the same length (a template is at least `${a}`, four characters).
fn stand_in_quoted(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let n = rest[start..start + len + 1].chars().count();
        out.push('"');
        out.push_str(&"x".repeat(n.saturating_sub(2)));
        out.push('"');
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// One expectation in words for the plan: `$.status in ["green","yellow"]`,
/// `some $[*].version == "8.15.0"`, `$[?@.name == "es1"] selects something`.
pub fn describe(e: &JsonExpect) -> String {
    let some = if e.rows == Rows::Some { "some " } else { "" };
    match &e.value {
        None => format!("{} selects something", e.path),
        Some(v) => format!("{some}{} {} {v}", e.path, e.op.unwrap_or_default()),
    }
}

/// Judge a JSON body against one expectation (its templates filled in): `Err` says what was
/// selected and what was expected.
pub fn json_matches(e: &JsonExpect, doc: &Value) -> Result<(), String> {
    json_matches_shown(e, doc, &|s: &str| s.to_string())
}

/// `json_matches`, with `mask` applied to each value the message shows before it is cut (the
/// engine masks secrets: a secret cut in two would no longer match).
pub fn json_matches_shown(
    e: &JsonExpect,
    doc: &Value,
    mask: &dyn Fn(&str) -> String,
) -> Result<(), String> {
    let shown = |v: &Value| shown(&mask(&v.to_string()));
    let path = JsonPath::parse(&e.path)
        .map_err(|err| format!("`{}` is not a JSONPath: {}", e.path, err.message()))?;
    let found = path.query(doc).all();
    if found.is_empty() {
        return Err(format!("{} selects nothing in the response", e.path));
    }
    let Some(want) = &e.value else {
        return Ok(());
    };
    let op = e.op.unwrap_or_default();
    let n = found.len();
    match e.rows {
        Rows::Every => {
            for (i, got) in found.iter().enumerate() {
                if !compare(got, op, want)? {
                    let which = if n == 1 {
                        String::new()
                    } else {
                        format!(" (value {} of {n})", i + 1)
                    };
                    return Err(format!(
                        "{} is {}{which}, expected {op} {want}",
                        e.path,
                        shown(got)
                    ));
                }
            }
            Ok(())
        }
        Rows::Some => {
            for got in &found {
                if compare(got, op, want)? {
                    return Ok(());
                }
            }
            let seen: Vec<String> = found.iter().take(5).map(|v| shown(v)).collect();
            let more = if n > 5 { ", …" } else { "" };
            Err(format!(
                "none of the {n} values at {} is {op} {want} (saw {}{more})",
                e.path,
                seen.join(", ")
            ))
        }
    }
}

/// A value (as JSON text) as a message shows it: short, on one line.
fn shown(s: &str) -> String {
    crate::engine::strings::cut(s, 80)
}

/// `got op want`. What the author wrote decides how values order: a number compares
/// numerically (a response's numeric string such as `_cat`'s `"12.5"` counts as its number),
/// a string as a version (`1.10 > 1.9`). Equality is loose in the same way as `expect_json`.
pub fn compare(got: &Value, op: CompareOp, want: &Value) -> Result<bool, String> {
    match op {
        CompareOp::Eq => Ok(loosely_equal(got, want)),
        CompareOp::Ne => Ok(!loosely_equal(got, want)),
        CompareOp::In => match want {
            Value::Array(items) => Ok(items.iter().any(|w| loosely_equal(got, w))),
            other => Err(format!("`in` needs an array to look in, not {other}")),
        },
        CompareOp::Ge | CompareOp::Le | CompareOp::Gt | CompareOp::Lt => {
            let Some(ord) = order(got, want)? else {
                return Ok(false);
            };
            Ok(match op {
                CompareOp::Ge => ord != Ordering::Less,
                CompareOp::Le => ord != Ordering::Greater,
                CompareOp::Gt => ord == Ordering::Greater,
                _ => ord == Ordering::Less,
            })
        }
    }
}

/// How `got` orders against `want`; `None` when `got` is not of the kind `want` asks for (a
/// value that is not a number cannot be `>= 3`: the expectation does not hold).
fn order(got: &Value, want: &Value) -> Result<Option<Ordering>, String> {
    match want {
        Value::Number(w) => {
            let w = w.as_f64().unwrap_or(f64::NAN);
            let g = match got {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            Ok(g.and_then(|g| g.partial_cmp(&w)))
        }
        Value::String(w) => {
            let w =
                Version::parse(w).map_err(|_| format!("`{w}` is not a version to compare with"))?;
            let g = match got {
                Value::String(s) => Version::parse(s).ok(),
                Value::Number(n) => Version::parse(&n.to_string()).ok(),
                _ => None,
            };
            Ok(g.map(|g| g.cmp(&w)))
        }
        other => Err(format!(
            "{other} cannot be ordered: compare with a number or a version string"
        )),
    }
}

/// Loose equality so TOML authors can write `"3"` or `3`, `"true"` or `true`; numbers equal by
/// value (`3` and `3.0`).
pub fn loosely_equal(got: &Value, want: &Value) -> bool {
    if got == want {
        return true;
    }
    if let (Some(g), Some(w)) = (as_number(got), as_number(want)) {
        if got.is_number() || want.is_number() {
            return g == w;
        }
    }
    let as_text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    as_text(got) == as_text(want)
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

/// `expect_text` as written, with `${...}` templates: whether it can compile once they are
/// filled in. A template is stood in for by a plain word, so `v${to_version}` checks as `vx`.
pub fn check_text_pattern(pattern: &str) -> Result<(), String> {
    compile(&stand_in_templates(pattern)).map(|_| ())
}

/// Compile a (filled-in) `expect_text`; the error is one sentence.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("`expect_text` is not a valid regex: {}", reason(&e)))
}

/// Judge a response body against `expect_text`: `Err` says what was expected and what came.
pub fn text_matches(pattern: &str, body: &str) -> Result<(), String> {
    text_matches_shown(pattern, body, &|s: &str| s.to_string())
}

/// `text_matches`, with `mask` applied to the body the message shows before it is cut.
pub fn text_matches_shown(
    pattern: &str,
    body: &str,
    mask: &dyn Fn(&str) -> String,
) -> Result<(), String> {
    let re = compile(pattern)?;
    if re.is_match(body) {
        return Ok(());
    }
    let seen: String = mask(body).split_whitespace().collect::<Vec<_>>().join(" ");
    let shown = crate::engine::strings::cut(&seen, 120);
    Err(if shown.is_empty() {
        format!("the body does not match /{pattern}/ (it is empty)")
    } else {
        format!("the body does not match /{pattern}/ (it reads: {shown})")
    })
}

/// The regex crate's syntax errors draw the pattern with a caret; keep the sentence only.
fn reason(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => s
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .unwrap_or(s.trim())
            .to_string(),
        regex::Error::CompiledTooBig(limit) => {
            format!("it compiles to more than {limit} bytes")
        }
        other => other.to_string(),
    }
}

/// `${name}` -> `x`; `$${` (a literal `${`) -> an escaped `\$\{`.
fn stand_in_templates(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str(r"\$\{");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            match after.find('}') {
                Some(end) => {
                    out.push('x');
                    rest = &after[end + 1..];
                }
                None => {
                    out.push_str(tail);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_anywhere_in_the_body() {
        let page =
            "<html><body><h2>Full read-only mode</h2>\n<p>Status: <b>ON</b></p></body></html>";
        assert!(text_matches(r"Status:\s*<b>ON</b>", page).is_ok());
        let e = text_matches(r"Status:\s*<b>OFF</b>", page).unwrap_err();
        assert!(e.contains("does not match"), "{e}");
        assert!(e.contains("Full read-only mode"), "shows what came: {e}");
        assert!(text_matches("x", "").unwrap_err().contains("empty"));
    }

    #[test]
    fn bad_patterns_are_one_sentence_and_templates_stand_in() {
        let e = check_text_pattern("Status: (ON").unwrap_err();
        assert_eq!(e, "`expect_text` is not a valid regex: unclosed group");
        assert!(check_text_pattern(r"version ${to_version}\b").is_ok());
        assert!(check_text_pattern("^${x}*$").is_ok());
        assert!(check_text_pattern("$${literal}").is_ok());
    }
}

#[cfg(test)]
mod json_tests {
    use super::*;
    use serde_json::json;

    fn expect(toml_text: &str) -> JsonExpect {
        toml::from_str(toml_text).expect("a valid expectation")
    }

    /// `GET _cat/nodes?format=json` of Elasticsearch 8 (values are strings, as `_cat` writes them).
    fn cat_nodes() -> Value {
        json!([
            {"name": "es1", "version": "8.15.0", "node.role": "cdfhilmrstw", "heap.percent": "41"},
            {"name": "es2", "version": "8.14.3", "node.role": "cdfhilmrstw", "heap.percent": "77"},
            {"name": "es3", "version": "8.14.3", "node.role": "m", "heap.percent": "12"}
        ])
    }

    #[test]
    fn the_row_whose_name_is_this_node() {
        let doc = cat_nodes();
        let e = expect(
            r#"path = '$[?@.name == "es1"].version'
               op = ">="
               value = "8.15.0""#,
        );
        assert_eq!(json_matches(&e, &doc), Ok(()));
        let e = expect(
            r#"path = '$[?@.name == "es2"].version'
               value = "8.15.0""#,
        );
        assert_eq!(
            json_matches(&e, &doc).unwrap_err(),
            r#"$[?@.name == "es2"].version is "8.14.3", expected == "8.15.0""#
        );
        // The node has not joined: its row is missing, which never passes.
        let e = expect(r#"path = '$[?@.name == "es9"]'"#);
        assert!(json_matches(&e, &doc)
            .unwrap_err()
            .contains("selects nothing"));
    }

    #[test]
    fn every_and_some_row() {
        let doc = cat_nodes();
        let every = expect(
            r#"path = "$[*].version"
               op = ">="
               value = "8.14""#,
        );
        assert_eq!(json_matches(&every, &doc), Ok(()));
        let every_new = expect(
            r#"path = "$[*].version"
               value = "8.15.0""#,
        );
        let e = json_matches(&every_new, &doc).unwrap_err();
        assert!(e.contains("(value 2 of 3)"), "{e}");
        let some = expect(
            r#"path = "$[*].version"
               value = "8.15.0"
               rows = "some""#,
        );
        assert_eq!(json_matches(&some, &doc), Ok(()));
        let none = expect(
            r#"path = "$[*].name"
               value = "es4"
               rows = "some""#,
        );
        let e = json_matches(&none, &doc).unwrap_err();
        assert!(e.starts_with("none of the 3 values at $[*].name"), "{e}");
        assert!(e.contains(r#""es1", "es2", "es3""#), "{e}");
    }

    #[test]
    fn numbers_versions_and_in() {
        let health = json!({"status": "yellow", "number_of_nodes": 3, "active_shards_percent_as_number": 87.5});
        let ok = |t: &str| json_matches(&expect(t), &health);
        assert!(ok(r#"path = "$.number_of_nodes"
                      op = ">="
                      value = 3"#)
        .is_ok());
        assert!(ok(r#"path = "$.number_of_nodes"
                      op = ">"
                      value = 3"#)
        .is_err());
        assert!(ok(r#"path = "$.active_shards_percent_as_number"
                      op = "<"
                      value = 100"#)
        .is_ok());
        assert!(ok(r#"path = "$.status"
                      op = "in"
                      value = ["green", "yellow"]"#)
        .is_ok());
        assert!(ok(r#"path = "$.status"
                      op = "!="
                      value = "red""#)
        .is_ok());
        // `_cat` writes numbers as strings: a number written by the author compares numerically.
        let doc = cat_nodes();
        let e = expect(
            r#"path = "$[*]['heap.percent']"
               op = "<"
               value = 80"#,
        );
        assert_eq!(json_matches(&e, &doc), Ok(()));
        // Versions order as versions, not as text: 1.10 > 1.9.
        let v = json!({"version": {"number": "1.10.2"}});
        let e = expect(
            r#"path = "$.version.number"
               op = ">"
               value = "1.9""#,
        );
        assert_eq!(json_matches(&e, &v), Ok(()));
        // A value that is not a number is not `>= 3`.
        let e = expect(
            r#"path = "$.status"
               op = ">="
               value = 3"#,
        );
        assert!(json_matches(&e, &health).is_err());
    }

    #[test]
    fn paths_are_checked_with_their_position() {
        assert_eq!(
            check_path("$.nodes[?@.name == ${node.name}].version"),
            Ok(())
        );
        let (at, msg) = check_path("$.nodes[?@.name = 'x']").unwrap_err();
        assert!(msg.contains("is not an RFC 9535 JSONPath"), "{msg}");
        assert!((7..=17).contains(&at), "offset {at}: {msg}");
        assert!(check_path("status").is_err());
        let h: HttpSpec = toml::from_str(
            r#"url = "http://x"
               expect = [
                 { path = "$.a", op = ">=" },
                 { path = "$.b", op = "in", value = "green" },
                 { path = "$.c", op = ">", value = "high" },
                 { path = "$.d", op = ">", value = true },
               ]"#,
        )
        .unwrap();
        let fields: Vec<String> = check_http(&h).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "expect[0].op",
                "expect[1].value",
                "expect[2].value",
                "expect[3].value"
            ]
        );
    }
}
