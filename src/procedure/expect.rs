//! Expectations on a response beyond its status and JSON pointers: `expect_text`, a regular
//! expression (Rust `regex` syntax) that must match somewhere in the body's text. The one place
//! that compiles and judges them, so `check`, the plan and a running check agree — and the seam
//! a fuller expectation language can grow from.

use regex::Regex;

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
    let re = compile(pattern)?;
    if re.is_match(body) {
        return Ok(());
    }
    let seen: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut shown: String = seen.chars().take(120).collect();
    if seen.chars().count() > 120 {
        shown.push('…');
    }
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
