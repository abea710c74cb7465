//! Values put into an explicit shell script (`sh -c SCRIPT`). A node tag, a variable or a call
//! argument is data, never code: each one a template puts into a script is quoted for the place
//! it lands (outside quotes, inside double quotes, inside single quotes), so `;`, `$(...)`,
//! quotes or a leading `-` arrive as the characters they are. A place where no quoting is
//! possible (backquotes, a here-document) is refused by `check` at its `file:line:col`; pass
//! such a value as an argument instead (`sh -c '... "$1"' sh "${value}"`).

use std::collections::BTreeMap;
use std::ops::Range;

use super::model::{Action, Check};

/// Where a template stands in a script, as far as quoting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Plain,
    Double,
    Single,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    #[error(
        "`${{{0}}}` is inside backquotes in a shell script, where its value cannot be quoted; \
         use `$(...)`, or pass it as an argument (`sh -c '... \"$1\"' sh \"${{{0}}}\"`)"
    )]
    Backquote(String),
    #[error(
        "`${{{0}}}` is in a here-document of a shell script, where its value cannot be quoted; \
         pass it as an argument (`sh -c '... \"$1\"' sh \"${{{0}}}\"`)"
    )]
    HereDoc(String),
    #[error(
        "`${{{0}}}` follows a backslash in a shell script, which would escape its first \
         character; remove the backslash"
    )]
    AfterBackslash(String),
}

/// Shells whose `-c` runs a script.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "ash", "mksh"];

/// The index of the script in an argv that runs one: `sh -c SCRIPT ...` (also `bash -ec`,
/// `/bin/sh -euc`).
pub fn script_index(argv: &[String]) -> Option<usize> {
    let prog = argv.first()?;
    let name = prog.rsplit('/').next().unwrap_or(prog);
    let flags = argv.get(1)?;
    let is_c = flags.len() > 1
        && flags.starts_with('-')
        && !flags.starts_with("--")
        && flags[1..].chars().all(|c| c.is_ascii_alphabetic())
        && flags.contains('c');
    (SHELLS.contains(&name) && is_c && argv.len() > 2).then_some(2)
}

/// The path (as `strings::map_action` names it) of an action's shell script, if it runs one.
pub fn action_script(a: &Action) -> Option<String> {
    match a {
        Action::Run { argv, .. } => script_index(argv).map(|i| format!("argv[{i}]")),
        Action::Wait(w) => w.check.as_ref().and_then(check_script),
        _ => None,
    }
}

/// The path (as `strings::map_check` names it) of a check's shell script, if it runs one.
pub fn check_script(c: &Check) -> Option<String> {
    match c {
        Check::Run { argv, .. } => script_index(argv).map(|i| format!("check.argv[{i}]")),
        _ => None,
    }
}

/// One `${NAME}` template in a script: its bytes (braces included), its name, its context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    pub range: Range<usize>,
    pub name: String,
    pub context: Context,
}

#[derive(Clone, Copy)]
struct Frame {
    double: bool,
    /// Opened by `$(`: a `)` at depth 0 closes it.
    subst: bool,
    parens: usize,
}

/// Every template of `script` with the quoting context it stands in. `$${` (a literal `${`,
/// the shell's own parameter expansion) is not a template.
pub fn placeholders(script: &str) -> Result<Vec<Placeholder>, ScriptError> {
    let b = script.as_bytes();
    let mut out = Vec::new();
    let mut stack = vec![Frame {
        double: false,
        subst: false,
        parens: 0,
    }];
    let (mut single, mut backquote, mut heredoc) = (false, false, false);
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"$${") {
            i += 3;
            continue;
        }
        if b[i..].starts_with(b"${") {
            let Some(len) = script[i + 2..].find('}') else {
                break; // unterminated: the template check reports it
            };
            let end = i + 2 + len + 1;
            let name = script[i + 2..end - 1].trim().to_string();
            let top = stack.last().copied().unwrap_or(stack[0]);
            if backquote {
                return Err(ScriptError::Backquote(name));
            }
            if heredoc {
                return Err(ScriptError::HereDoc(name));
            }
            let context = if single {
                Context::Single
            } else if top.double {
                Context::Double
            } else {
                Context::Plain
            };
            out.push(Placeholder {
                range: i..end,
                name,
                context,
            });
            i = end;
            continue;
        }
        let c = b[i];
        if single {
            if c == b'\'' {
                single = false;
            }
            i += 1;
            continue;
        }
        let Some(top) = stack.last_mut() else { break };
        match c {
            b'\\' => {
                if b[i + 1..].starts_with(b"${") && !b[i + 1..].starts_with(b"$${") {
                    let rest = &script[i + 3..];
                    let name = rest.split('}').next().unwrap_or_default().trim();
                    return Err(ScriptError::AfterBackslash(name.to_string()));
                }
                i += 2;
                continue;
            }
            b'`' => backquote = !backquote,
            b'$' if b.get(i + 1) == Some(&b'(') => {
                stack.push(Frame {
                    double: false,
                    subst: true,
                    parens: 0,
                });
                i += 2;
                continue;
            }
            b'"' if top.double => {
                stack.pop();
            }
            b'"' => stack.push(Frame {
                double: true,
                subst: false,
                parens: 0,
            }),
            _ if top.double => {}
            b'\'' => single = true,
            b'(' => top.parens += 1,
            b')' if top.parens > 0 => top.parens -= 1,
            b')' if top.subst => {
                stack.pop();
            }
            b'<' if b[i..].starts_with(b"<<") && !b[i..].starts_with(b"<<<") => heredoc = true,
            _ => {}
        }
        if stack.is_empty() {
            // More closers than openers: the shell will say so; keep lexing as plain text.
            stack.push(Frame {
                double: false,
                subst: false,
                parens: 0,
            });
        }
        i += 1;
    }
    Ok(out)
}

/// `value` written so that the shell reads exactly it at a place of `context`.
pub fn quote(value: &str, context: Context) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    match context {
        Context::Plain if !value.is_empty() && value.chars().all(safe) => value.to_string(),
        Context::Plain => format!("'{}'", value.replace('\'', r"'\''")),
        Context::Double => {
            let mut out = String::with_capacity(value.len());
            for c in value.chars() {
                if matches!(c, '\\' | '$' | '`' | '"') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        }
        // Close the quotes, an escaped quote, reopen: `'\''`.
        Context::Single => value.replace('\'', r"'\''"),
    }
}

/// Fill the templates of `script` whose value `lookup` gives, each quoted for its place; the
/// others stay as written. With `unescape` (when the plan is made), the script's own `$${`
/// becomes `${`, as `template::render` does; never inside a value.
pub fn fill(
    script: &str,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
    unescape: bool,
) -> Result<String, ScriptError> {
    let text = |s: &str| {
        if unescape {
            s.replace("$${", "${")
        } else {
            s.to_string()
        }
    };
    let mut out = String::with_capacity(script.len());
    let mut at = 0;
    for p in placeholders(script)? {
        out.push_str(&text(&script[at..p.range.start]));
        match lookup(&p.name) {
            Some(v) => out.push_str(&quote(&v, p.context)),
            None => out.push_str(&script[p.range.clone()]),
        }
        at = p.range.end;
    }
    out.push_str(&text(&script[at..]));
    Ok(out)
}

/// `fill` from a map; a script that cannot be quoted stays as written (its templates unfilled,
/// so the command fails instead of running a value as code). `check` refuses such scripts, so
/// this only meets them in hand-made plans.
pub fn fill_from(script: &str, vars: &BTreeMap<String, String>) -> String {
    fill(script, &mut |name| vars.get(name).cloned(), false).unwrap_or_else(|_| script.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(script: &str) -> Vec<(String, Context)> {
        placeholders(script)
            .unwrap()
            .into_iter()
            .map(|p| (p.name, p.context))
            .collect()
    }

    #[test]
    fn contexts_follow_the_shell_quoting() {
        use Context::*;
        assert_eq!(
            ctx(r#"echo ${a} "${b}" '${c}' "$(ls '${d}' ${e} "${f}")" $${HOME} "x\"${g}""#),
            vec![
                ("a".into(), Plain),
                ("b".into(), Double),
                ("c".into(), Single),
                ("d".into(), Single),
                ("e".into(), Plain),
                ("f".into(), Double),
                ("g".into(), Double),
            ]
        );
        assert_eq!(
            ctx("case x in a) echo ${a};; esac"),
            vec![("a".into(), Plain)]
        );
        assert!(matches!(
            placeholders("echo `cat ${a}`"),
            Err(ScriptError::Backquote(n)) if n == "a"
        ));
        assert!(matches!(
            placeholders("cat <<EOF\n${a}\nEOF"),
            Err(ScriptError::HereDoc(_))
        ));
        assert!(matches!(
            placeholders("echo \\${a}"),
            Err(ScriptError::AfterBackslash(_))
        ));
    }

    #[test]
    fn script_index_finds_sh_c() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(script_index(&v(&["sh", "-c", "x"])), Some(2));
        assert_eq!(script_index(&v(&["/bin/bash", "-euc", "x", "sh"])), Some(2));
        assert_eq!(script_index(&v(&["ssh", "-c", "x"])), None);
        assert_eq!(script_index(&v(&["sh", "script.sh"])), None);
        assert_eq!(script_index(&v(&["sh", "--noprofile", "x"])), None);
    }

    #[test]
    fn every_context_reads_the_value_back_intact() {
        let hostile = r#"-x;touch /tmp/fd-canary;$(touch /tmp/fd-canary) '"`\ a*"#;
        for (script, expect_lines) in [
            ("printf '%s\\n' ${v}", 1),
            ("printf '%s\\n' \"${v}\"", 1),
            ("printf '%s\\n' '${v}'", 1),
            ("printf '%s\\n' \"$(printf '%s' ${v})\"", 1),
        ] {
            let mut vars = BTreeMap::new();
            vars.insert("v".to_string(), hostile.to_string());
            let filled = fill_from(script, &vars);
            let out = std::process::Command::new("sh")
                .args(["-c", &filled])
                .output()
                .unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            assert_eq!(text.lines().count(), expect_lines, "{filled}");
            assert_eq!(text.trim_end_matches('\n'), hostile, "{filled}");
        }
    }
}
