//! Values put into a shell script: an explicit one (`sh -c SCRIPT`), or the command an `ssh`
//! runs on the remote host (`ssh [options] DESTINATION COMMAND...`: ssh(1) joins the words of
//! COMMAND with spaces and the remote user's shell runs the result, so it is a script too). A
//! node tag, a variable or a call argument is data, never code: each one a template puts into a
//! script is quoted for the place it lands (outside quotes, inside double quotes, inside single
//! quotes), so `;`, `$(...)`, quotes or a leading `-` arrive as the characters they are. A
//! place where one level of quoting cannot do that is refused by `check` at its
//! `file:line:col`: backquotes, a here-document, and a script that a shell inside the script
//! reads again (`sh -c '...'`, `eval`, an `ssh` inside a local script); pass such a value as an
//! argument instead (`sh -c '... "$1"' sh "${value}"`), or run ssh as the command itself.

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
    #[error("`${{{0}}}` {1}")]
    Nested(String, Reader),
}

/// Who reads a part of a script a second time, after the shell that runs the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// `sh -c SCRIPT` (any of `SHELLS`) inside the script: SCRIPT.
    Shell,
    /// `eval WORDS`.
    Eval,
    /// `ssh [options] DESTINATION COMMAND...` inside the script: COMMAND, on the remote host.
    Ssh,
}

impl std::fmt::Display for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reader::Shell => {
                "is in a script that a shell inside this script (`sh -c`) reads again, where \
                 quoting it once cannot make it safe; pass it as an argument \
                 (`sh -c '... \"$1\"' sh ...`)"
            }
            Reader::Eval => {
                "is read again by `eval`, where quoting it once cannot make it safe; put it in \
                 a variable and use `\"$var\"`"
            }
            Reader::Ssh => {
                "is in a command that ssh inside this script runs on the remote host, whose \
                 shell reads it again: quoting it once cannot make it safe; run ssh as the \
                 command itself (`argv = [\"ssh\", HOST, \"...\"]`), where flightdeck quotes \
                 it for the remote shell"
            }
        })
    }
}

/// Shells whose `-c` runs a script.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "ash", "mksh"];

/// ssh(1)'s options that take an argument (OpenSSH 9.x, `ssh.c`'s getopt string
/// "1246ab:c:e:fgi:kl:m:no:p:qstvxAB:CD:E:F:GI:J:KL:MNO:P:Q:R:S:TVw:W:XYy").
const SSH_OPTS_WITH_ARG: &str = "BbcDEeFIiJLlmOoPpQRSWw";

use super::wrappers::{self, program};

/// An option word of a shell (`-e`, `+x`, `--login`, `--`).
fn is_shell_option(word: &str) -> bool {
    word.len() > 1 && (word.starts_with('-') || word.starts_with('+'))
}

/// `-c`, `-ec`, `-euc`: shell flags that make the next word a script.
fn is_c_flag(word: &str) -> bool {
    word.len() > 1
        && word.starts_with('-')
        && !word.starts_with("--")
        && word[1..].chars().all(|c| c.is_ascii_alphabetic())
        && word.contains('c')
}

/// Whether the ssh option word `-tp` (one or more options) leaves its argument to the next
/// word: its last option takes one (`-p 22`, not `-p22`).
fn ssh_option_wants_next(word: &str) -> bool {
    for (i, c) in word.char_indices().skip(1) {
        if SSH_OPTS_WITH_ARG.contains(c) {
            return i + c.len_utf8() == word.len();
        }
    }
    false
}

/// Shell options whose argument is the next word: `-o pipefail`, bash's `-O extglob`, and a
/// cluster ending in one (`-euo pipefail`).
fn shell_option_wants_next(word: &str) -> bool {
    matches!(word, "--rcfile" | "--init-file")
        || (word.len() > 1
            && (word.starts_with('-') || word.starts_with('+'))
            && !word.starts_with("--")
            && (word.ends_with('o') || word.ends_with('O')))
}

/// For `sh [options] -c [options] SCRIPT [name args...]` at `at` (bash and POSIX sh take
/// options after `-c` too; the script is the first operand), the index of SCRIPT.
fn shell_script(argv: &[String], at: usize) -> Option<usize> {
    if !SHELLS.contains(&program(argv.get(at)?)) {
        return None;
    }
    let (mut c, mut j) = (false, at + 1);
    while let Some(w) = argv.get(j) {
        let w = w.as_str();
        if w == "--" || w == "-" {
            j += 1;
            break;
        }
        if !(w.len() > 1 && (w.starts_with('-') || w.starts_with('+'))) {
            break;
        }
        c |= is_c_flag(w);
        if shell_option_wants_next(w) {
            j += 1;
        }
        j += 1;
    }
    (c && j < argv.len()).then_some(j)
}

/// For `ssh [options] DESTINATION COMMAND...` (after any wrapper: `sudo -u deploy ssh ...`),
/// the index of COMMAND's first word. ssh parses options before and after the destination
/// (ssh.c parses again after it unless `--` came first); the first other word after it starts
/// the command.
pub fn remote_index(argv: &[String]) -> Option<usize> {
    let at = wrappers::command_index(argv)?;
    if program(&argv[at]) != "ssh" {
        return None;
    }
    let (mut host, mut ended) = (false, false);
    let mut i = at + 1;
    while i < argv.len() {
        let w = argv[i].as_str();
        if !ended && w == "--" {
            ended = true;
        } else if !ended && w.len() > 1 && w.starts_with('-') {
            if ssh_option_wants_next(w) {
                i += 1;
            }
        } else if !host {
            host = true;
            // `--` before the destination ends option parsing for good.
        } else {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// `argv` as ssh itself reads it, its remote command's words joined into one (ssh(1) sends
/// them joined with spaces): None when there is nothing to join.
pub fn join_remote(argv: &[String]) -> Option<Vec<String>> {
    let k = remote_index(argv)?;
    (argv.len() > k + 1).then(|| {
        let mut joined = argv[..k].to_vec();
        joined.push(argv[k..].join(" "));
        joined
    })
}

/// An action with its `ssh` remote commands (its own, its gate check's) joined into one word,
/// the script `fill` quotes for the remote shell. Means what it meant: ssh joins them anyway.
pub fn join_remote_action(a: &Action) -> Action {
    let mut a = a.clone();
    match &mut a {
        Action::Run { argv, .. } => {
            if let Some(j) = join_remote(argv) {
                *argv = j;
            }
        }
        Action::Wait(w) => {
            if let Some(c) = &w.check {
                w.check = Some(join_remote_check(c));
            }
        }
        _ => {}
    }
    a
}

/// `join_remote_action` for a check.
pub fn join_remote_check(c: &Check) -> Check {
    let mut c = c.clone();
    if let Check::Run { argv, .. } = &mut c {
        if let Some(j) = join_remote(argv) {
            *argv = j;
        }
    }
    c
}

/// The index of the script in an argv that runs one: `sh -c SCRIPT ...` (also `bash -ec`,
/// `bash -l -c`, `/bin/sh -euc`), `su [user] -c SCRIPT`, or `ssh [options] DESTINATION
/// COMMAND` once its command is one word (`join_remote`) — each also behind any wrappers
/// (`sudo`, `env X=1`, `kubectl exec POD --`, `docker exec C`...: `wrappers`).
pub fn script_index(argv: &[String]) -> Option<usize> {
    if let Some(k) = remote_index(argv) {
        return (argv.len() == k + 1).then_some(k);
    }
    let at = wrappers::command_index(argv)?;
    shell_script(argv, at).or_else(|| wrappers::su_script(argv, at))
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

/// What the words read so far make of the command they belong to, as far as a second reading
/// of later words goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    /// An ordinary command's words.
    Plain,
    /// A shell read (`sh`, `/bin/bash`): a `-c` flag makes the next word a script.
    Shell,
    /// A shell option's argument comes next (`-o pipefail`).
    ShellArg,
    /// `su` or `runuser` read: `-c` makes the next word a script for the user's shell.
    Su,
    /// The word being read is a script another shell reads (`sh -c SCRIPT`).
    ShellScript,
    /// Between `-c` and its script, an option's argument comes next (`sh -co pipefail SCRIPT`,
    /// `sh -c -o pipefail SCRIPT`): that word is not the script, the one after it is.
    ShellScriptArg,
    /// `ssh` read, its destination not yet; `arg` when the next word is an option's argument.
    Ssh { arg: bool },
    /// Every word up to the command's end is read again (`eval ...`, what ssh sends).
    Nested(Reader),
}

impl Cmd {
    /// After the word `w`.
    fn then(self, w: &str) -> Cmd {
        match self {
            Cmd::Plain if program(w) == "ssh" => Cmd::Ssh { arg: false },
            Cmd::Plain if SHELLS.contains(&program(w)) => Cmd::Shell,
            Cmd::Plain if matches!(program(w), "su" | "runuser") => Cmd::Su,
            Cmd::Plain if w == "eval" => Cmd::Nested(Reader::Eval),
            // Options after `-c` come before the script (`sh -c -e SCRIPT`), and an option's
            // argument is not the script (`sh -c -o pipefail SCRIPT`).
            Cmd::ShellScript if shell_option_wants_next(w) => Cmd::ShellScriptArg,
            Cmd::ShellScript if is_shell_option(w) => Cmd::ShellScript,
            Cmd::ShellScriptArg => Cmd::ShellScript,
            Cmd::Plain | Cmd::ShellScript => Cmd::Plain,
            Cmd::Shell if is_c_flag(w) && shell_option_wants_next(w) => Cmd::ShellScriptArg,
            Cmd::Shell if is_c_flag(w) => Cmd::ShellScript,
            Cmd::Shell if shell_option_wants_next(w) => Cmd::ShellArg,
            Cmd::Shell if is_shell_option(w) => Cmd::Shell,
            Cmd::ShellArg => Cmd::Shell,
            Cmd::Shell => Cmd::Plain,
            Cmd::Su if matches!(w, "-c" | "--command" | "--session-command") => Cmd::ShellScript,
            Cmd::Su if w.len() > 2 && w.starts_with('-') && w.ends_with('c') => {
                if wrappers::su_attached_script(w) {
                    Cmd::Su
                } else {
                    Cmd::ShellScript
                }
            }
            // `runuser -u USER CMD` runs CMD as given: read it as a command of its own.
            Cmd::Su if w == "-u" || w == "--user" => Cmd::Plain,
            Cmd::Su => Cmd::Su,
            Cmd::Ssh { arg: true } => Cmd::Ssh { arg: false },
            Cmd::Ssh { arg: false } if w.len() > 1 && w.starts_with('-') => Cmd::Ssh {
                arg: ssh_option_wants_next(w),
            },
            Cmd::Ssh { arg: false } => Cmd::Nested(Reader::Ssh),
            Cmd::Nested(r) => Cmd::Nested(r),
        }
    }

    /// Who reads the word being read again, if anyone (`word`: its text so far).
    fn rereader(self, word: &str) -> Option<Reader> {
        match self {
            // `su --command=SCRIPT`: the rest of the word is the script.
            Cmd::Su if wrappers::su_attached_script(word) => Some(Reader::Shell),
            Cmd::ShellScript => Some(Reader::Shell),
            Cmd::Nested(r) => Some(r),
            _ => None,
        }
    }
}

#[derive(Clone)]
struct Frame {
    double: bool,
    /// Opened by `$(`: a `)` at depth 0 closes it.
    subst: bool,
    parens: usize,
    /// Outside double quotes: the command being read, and the unquoted text of its current
    /// word (quotes kept as marks, so `"sh"` is not `sh`).
    cmd: Cmd,
    word: String,
}

impl Frame {
    fn command(subst: bool) -> Frame {
        Frame {
            double: false,
            subst,
            parens: 0,
            cmd: Cmd::Plain,
            word: String::new(),
        }
    }

    fn end_word(&mut self) {
        if !self.word.is_empty() {
            self.cmd = self.cmd.then(&std::mem::take(&mut self.word));
        }
    }

    /// `;`, `&`, `|`, a newline, a parenthesis: the next word starts a new command.
    fn end_command(&mut self) {
        self.end_word();
        self.cmd = Cmd::Plain;
    }
}

/// The frame whose word the text being read belongs to (the innermost outside double quotes).
fn word_of(stack: &mut [Frame]) -> Option<&mut Frame> {
    stack.iter_mut().rev().find(|f| !f.double)
}

/// Every template of `script` with the quoting context it stands in. `$${` (a literal `${`,
/// the shell's own parameter expansion) is not a template.
pub fn placeholders(script: &str) -> Result<Vec<Placeholder>, ScriptError> {
    let b = script.as_bytes();
    let mut out = Vec::new();
    let mut stack = vec![Frame::command(false)];
    let (mut single, mut backquote, mut heredoc) = (false, false, false);
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"$${") {
            if let Some(f) = word_of(&mut stack) {
                f.word.push_str("$${");
            }
            i += 3;
            continue;
        }
        if b[i..].starts_with(b"${") {
            let Some(len) = script[i + 2..].find('}') else {
                break; // unterminated: the template check reports it
            };
            let end = i + 2 + len + 1;
            let name = script[i + 2..end - 1].trim().to_string();
            if backquote {
                return Err(ScriptError::Backquote(name));
            }
            if heredoc {
                return Err(ScriptError::HereDoc(name));
            }
            if let Some(r) = stack.iter().find_map(|f| f.cmd.rereader(&f.word)) {
                return Err(ScriptError::Nested(name, r));
            }
            let double = stack.last().is_some_and(|f| f.double);
            let context = if single {
                Context::Single
            } else if double {
                Context::Double
            } else {
                Context::Plain
            };
            if let Some(f) = word_of(&mut stack) {
                f.word.push_str(&script[i..end]);
            }
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
                if let Some(f) = word_of(&mut stack) {
                    f.word.push('\\');
                }
                i += 2;
                continue;
            }
            b'`' => backquote = !backquote,
            b'$' if b.get(i + 1) == Some(&b'(') => {
                if let Some(f) = word_of(&mut stack) {
                    f.word.push('$');
                }
                stack.push(Frame::command(true));
                i += 2;
                continue;
            }
            b'"' if top.double => {
                stack.pop();
            }
            b'"' => {
                if let Some(f) = word_of(&mut stack) {
                    f.word.push('"');
                }
                stack.push(Frame {
                    double: true,
                    ..Frame::command(false)
                });
            }
            _ if top.double => {}
            b'\'' => {
                single = true;
                top.word.push('\'');
            }
            b'(' => {
                top.parens += 1;
                top.end_command();
            }
            b')' if top.parens > 0 => {
                top.parens -= 1;
                top.end_command();
            }
            b')' if top.subst => {
                top.end_word();
                stack.pop();
            }
            // A redirection's `&` (`2>&1`, `&>f`, `<&3`) is part of its word.
            b'&' if i > 0 && matches!(b[i - 1], b'>' | b'<') || b.get(i + 1) == Some(&b'>') => {
                top.word.push('&')
            }
            b';' | b'&' | b'|' | b'\n' | b')' => top.end_command(),
            b' ' | b'\t' => top.end_word(),
            b'<' if b[i..].starts_with(b"<<") && !b[i..].starts_with(b"<<<") => heredoc = true,
            _ => top.word.push(if c.is_ascii() { c as char } else { '?' }),
        }
        if stack.is_empty() {
            // More closers than openers: the shell will say so; keep lexing as plain text.
            stack.push(Frame::command(false));
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
    fn a_template_another_shell_reads_again_is_refused() {
        let reader = |script: &str| match placeholders(script) {
            Err(ScriptError::Nested(_, r)) => Some(r),
            Ok(_) => None,
            Err(e) => panic!("{script}: {e}"),
        };
        // Read twice: a nested shell's script, eval, what ssh sends to the remote host.
        assert_eq!(reader("sudo sh -c 'rm ${a}'"), Some(Reader::Shell));
        assert_eq!(reader("bash -ec \"echo ${a}\" x"), Some(Reader::Shell));
        assert_eq!(reader("eval echo ${a}"), Some(Reader::Eval));
        assert_eq!(reader("ssh -p 22 h 'cat ${a}'"), Some(Reader::Ssh));
        assert_eq!(reader("ssh h cat $(echo ${a})"), Some(Reader::Ssh));
        assert_eq!(reader("x=$(ssh -tp 22 h ls ${a})"), Some(Reader::Ssh));
        assert_eq!(reader("ssh h ls 2>&1 ${a}"), Some(Reader::Ssh));
        // Behind wrappers and options: su's -c, options before and after a shell's -c.
        for twice in [
            "su - pg -c 'rm ${a}'",
            "su --command='rm ${a}' pg",
            "runuser -l pg -c \"rm ${a}\"",
            "bash -o pipefail -c 'rm ${a}'",
            "sh -c -e 'rm ${a}'",
            "kubectl exec p -- sh -c 'rm ${a}'",
            "sudo -u pg env X=1 bash -lc 'rm ${a}'",
            "bash -co pipefail 'rm ${a}'",
            "sh -c -o pipefail 'rm ${a}'",
            "su pg -- -c 'rm ${a}'",
        ] {
            assert_eq!(reader(twice), Some(Reader::Shell), "{twice}");
        }
        // Read once: an argument after the nested script, the ssh destination and option
        // arguments, a later command, a script file.
        for once in [
            "sh -c 'rm -- \"$1\"' sh ${a}",
            "ssh -i ${key} -p ${port} ${host} uptime",
            "ssh h uptime; echo ${a}",
            "ssh h uptime && echo ${a}",
            "(ssh h uptime) | grep ${a}",
            "sh ./script.sh ${a}",
            "\"ssh\" ${a}",
            "case x in a) echo ${a};; esac",
            "su pg -c 'rm -- \"$1\"' ${a}",
            "runuser -u pg -- psql -c ${a}",
            "bash -o pipefail ./script.sh ${a}",
        ] {
            assert_eq!(reader(once), None, "{once}");
        }
    }

    #[test]
    fn the_ssh_remote_command_is_the_script() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(remote_index(&v(&["ssh", "h", "ls"])), Some(2));
        assert_eq!(
            remote_index(&v(&["/usr/bin/ssh", "-p", "22", "-t", "h", "ls"])),
            Some(5)
        );
        assert_eq!(
            remote_index(&v(&["ssh", "-p22", "-tt", "h", "-o", "X=1", "ls"])),
            Some(6)
        );
        assert_eq!(remote_index(&v(&["ssh", "--", "h", "-x"])), Some(3));
        assert_eq!(remote_index(&v(&["ssh", "h"])), None);
        assert_eq!(remote_index(&v(&["sh", "-c", "ls"])), None);
        assert_eq!(
            join_remote(&v(&["ssh", "-p", "22", "h", "sudo", "ls", "-l"])),
            Some(v(&["ssh", "-p", "22", "h", "sudo ls -l"]))
        );
        assert_eq!(join_remote(&v(&["ssh", "h", "ls"])), None);
        assert_eq!(script_index(&v(&["ssh", "-p", "22", "h", "ls"])), Some(4));
        assert_eq!(script_index(&v(&["ssh", "h", "ls", "-l"])), None);
    }

    #[test]
    fn script_index_finds_sh_c() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(script_index(&v(&["sh", "-c", "x"])), Some(2));
        assert_eq!(script_index(&v(&["/bin/bash", "-euc", "x", "sh"])), Some(2));
        assert_eq!(script_index(&v(&["ssh", "-c", "x"])), None);
        assert_eq!(script_index(&v(&["sh", "script.sh"])), None);
        assert_eq!(script_index(&v(&["sh", "--noprofile", "x"])), None);
        // Options before and after -c; behind wrappers; su's -c.
        for (argv, at) in [
            (&["bash", "-l", "-c", "x"][..], Some(3)),
            (&["bash", "-o", "pipefail", "-c", "x"], Some(4)),
            (&["bash", "--rcfile", "f", "-c", "x"], Some(4)),
            (&["sh", "-c", "-e", "x"], Some(3)),
            (&["sh", "-c", "--", "x"], Some(3)),
            (&["sh", "-o", "x"], None),
            (&["sudo", "-u", "pg", "sh", "-c", "x"], Some(5)),
            (&["kubectl", "exec", "p", "--", "sh", "-c", "x"], Some(6)),
            (&["su", "-", "pg", "-c", "x"], Some(4)),
            (&["sudo", "su", "-c", "x"], Some(3)),
            (&["env", "X=1", "ssh", "h", "ls"], Some(4)),
            (&["env", "X=1", "ssh", "h", "ls", "-l"], None),
            (&["kubectl", "exec", "p", "--", "ls", "x"], None),
        ] {
            assert_eq!(script_index(&v(argv)), at, "{argv:?}");
        }
        assert_eq!(
            join_remote(&v(&["sudo", "-u", "d", "ssh", "h", "ls", "-l"])),
            Some(v(&["sudo", "-u", "d", "ssh", "h", "ls -l"]))
        );
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
