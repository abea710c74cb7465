//! Which code in a runbook is a command, and how it runs: an argv split as the shell would
//! (`shlex`), or, when it needs a shell (a pipe, a redirection, a variable, a glob...), an
//! explicit `sh -c` marked for review. Nothing here runs anything.

use std::sync::LazyLock;

use regex::Regex;

use super::outline::Code;

/// One command found in the runbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The line it starts on in the runbook.
    pub line: usize,
    /// As the runbook writes it, prompt removed and continuation lines joined.
    pub text: String,
    pub argv: Vec<String>,
    /// What the author must check (`# REVIEW:` lines in the draft).
    pub reviews: Vec<String>,
}

/// What a piece of code turned out to be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    pub commands: Vec<Command>,
    /// Review notes about code that looked like a command but could not be taken as one.
    pub reviews: Vec<String>,
}

/// Fenced-block languages whose lines are shell commands.
const SHELLS: [&str; 9] = [
    "sh",
    "bash",
    "shell",
    "zsh",
    "ksh",
    "console",
    "shell-session",
    "sh-session",
    "shellsession",
];

/// `$ cmd`, `neo4j-home$ cmd`, `user@host:~/dir$ cmd`: a prompt, with what it says about where
/// the command runs.
static PROMPT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?P<before>[^\s$#]*)\$\s+(?P<cmd>\S.*)$").expect("a valid regex")
});

/// The first word of a command: a program name or a path to one.
static PROGRAM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\./|\.\./|/|~/)?[a-z][a-z0-9_.+-]*(?:/[A-Za-z0-9_.+-]+)*$")
        .expect("a valid regex")
});

/// `<release>`, `<docker image address name:tag>`: a placeholder the author fills in.
static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"<[A-Za-z][A-Za-z0-9 _.:/-]*>").expect("a valid regex"));

/// The commands in a code block or an inline code span.
pub fn read(code: &Code) -> Reading {
    let lines = logical_lines(&code.text, code.line);
    let prompted: Vec<_> = lines
        .iter()
        .filter_map(|(line, l)| prompt(l).map(|(dir, cmd)| (*line, dir, cmd)))
        .collect();
    let mut reading = Reading::default();
    if !prompted.is_empty() {
        // With prompts, the lines without one are the commands' output.
        for (line, dir, cmd) in prompted {
            push(&mut reading, line, &cmd, dir.as_deref());
        }
        return reading;
    }
    if code.inline {
        return reading;
    }
    let shell_lang = code.lang.as_deref().is_some_and(|l| SHELLS.contains(&l));
    let candidates: Vec<_> = lines
        .into_iter()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    if candidates.is_empty() || (code.lang.is_some() && !shell_lang) {
        return reading;
    }
    if !shell_lang && !candidates.iter().all(|(_, l)| looks_like_command(l)) {
        return reading;
    }
    let mut it = candidates.into_iter();
    while let Some((line, l)) = it.next() {
        if l.contains("<<") {
            // A here-document: the rest of the block is its body.
            let mut script = l;
            for (_, rest) in it.by_ref() {
                script.push('\n');
                script.push_str(&rest);
            }
            push(&mut reading, line, &script, None);
            break;
        }
        push(&mut reading, line, &l, None);
    }
    reading
}

/// Lines with their line numbers, a trailing `\` joining a line to the next.
fn logical_lines(text: &str, first: usize) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut cont = false;
    for (i, l) in text.lines().enumerate() {
        let (body, continues) = match l.trim_end().strip_suffix('\\') {
            Some(b) => (b.trim_end(), true),
            None => (l.trim_end(), false),
        };
        match out.last_mut() {
            Some((_, prev)) if cont => {
                prev.push(' ');
                prev.push_str(body.trim_start());
            }
            _ => out.push((first.saturating_add(i), body.to_string())),
        }
        cont = continues;
    }
    out
}

/// The command after a `$ ` prompt, and the directory the prompt names, if any.
fn prompt(line: &str) -> Option<(Option<String>, String)> {
    let c = PROMPT.captures(line)?;
    let before = c.name("before").map_or("", |m| m.as_str());
    let dir = before.rsplit_once(':').map_or(before, |(_, d)| d);
    let dir = (!dir.is_empty() && !before.ends_with('@')).then(|| dir.to_string());
    Some((dir, c.name("cmd")?.as_str().trim().to_string()))
}

/// A line of a block without a language or prompt reads as a command when it starts with a
/// program name (`helm`, `./migrate.sh`), not like output (`NAME   READY`) or a setting
/// (`Mode = SINGLE`, `dbms.mode=SINGLE`).
fn looks_like_command(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let Some(first) = words.next() else {
        return false;
    };
    let second = words.next().unwrap_or("");
    PROGRAM.is_match(first)
        && !first.contains('=')
        && !matches!(second, "=" | ":" | "->" | "=>")
        && !line.trim_end().ends_with(':')
}

fn push(reading: &mut Reading, line: usize, text: &str, dir: Option<&str>) {
    let mut reviews = Vec::new();
    if let Some(d) = dir {
        reviews.push(format!(
            "the runbook's prompt says this runs in `{d}`: set `cwd` (or bind it in the target)"
        ));
    }
    let masked = PLACEHOLDER.replace_all(text, |c: &regex::Captures| "x".repeat(c[0].len()));
    for p in PLACEHOLDER.find_iter(text) {
        reviews.push(format!(
            "`{}` is a placeholder: replace it with a `${{var}}` from `[vars]` or `[target_vars]`",
            p.as_str()
        ));
    }
    let scan = scan(&masked);
    let (command, comment) = match scan.comment_at {
        Some(i) => (
            text[..i].trim_end(),
            Some(text[i..].trim_start_matches('#').trim()),
        ),
        None => (text, None),
    };
    if let Some(c) = comment.filter(|c| !c.is_empty()) {
        reviews.push(format!("the runbook's comment on this command: \"{c}\""));
    }
    let argv = match &scan.shell {
        Some(why) => {
            reviews.push(format!(
                "needs a shell ({why}): runs as an explicit `sh -c`; check the script"
            ));
            vec!["sh".to_string(), "-c".to_string(), command.to_string()]
        }
        None => match shlex::split(command) {
            Some(argv) if !argv.is_empty() => argv,
            _ => {
                reading.reviews.push(format!(
                    "line {line}: `{command}` has an unclosed quote; not taken as a command"
                ));
                return;
            }
        },
    };
    if argv.first().is_some_and(|p| p == "sudo") {
        reviews.push(
            "runs with sudo: flightdeck runs commands as the operator, without a terminal for \
             a password; bind it in the target or allow it without a password"
                .into(),
        );
    }
    reading.commands.push(Command {
        line,
        text: command.to_string(),
        argv,
        reviews,
    });
}

#[derive(Debug, Default)]
struct Scan {
    /// What makes this a shell script rather than an argv, in words.
    shell: Option<String>,
    /// Byte offset of an unquoted `#` comment.
    comment_at: Option<usize>,
}

/// Quote-aware look at a command line: the shell syntax outside single quotes that an argv
/// cannot carry, and where a comment starts.
fn scan(s: &str) -> Scan {
    #[derive(PartialEq)]
    enum Q {
        No,
        Single,
        Double,
    }
    let mut out = Scan::default();
    let mut q = Q::No;
    let mut escaped = false;
    let mut word_start = true;
    let mut chars = s.char_indices().peekable();
    let why = |w: &str, out: &mut Scan| {
        if out.shell.is_none() {
            out.shell = Some(w.to_string());
        }
    };
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        if escaped {
            escaped = false;
            word_start = false;
            continue;
        }
        match q {
            Q::Single => {
                if c == '\'' {
                    q = Q::No;
                }
            }
            Q::Double => match c {
                '"' => q = Q::No,
                '\\' => escaped = true,
                '`' => why("command substitution", &mut out),
                '$' if next.is_some_and(|n| n == '(') => why("command substitution", &mut out),
                '$' if next.is_some_and(is_var_start) => why("a variable", &mut out),
                _ => {}
            },
            Q::No => match c {
                '\'' => q = Q::Single,
                '"' => q = Q::Double,
                '\\' => escaped = true,
                '#' if word_start => {
                    out.comment_at = Some(i);
                    return out;
                }
                '|' => why("a pipe `|`", &mut out),
                '>' | '<' => why("a redirection", &mut out),
                ';' => why("`;`", &mut out),
                '&' => why("`&`", &mut out),
                '`' => why("command substitution", &mut out),
                '$' if next.is_some_and(|n| n == '(') => why("command substitution", &mut out),
                '$' if next.is_some_and(is_var_start) => why("a variable", &mut out),
                '*' | '?' => why("a glob", &mut out),
                '~' if word_start => why("`~`", &mut out),
                _ => {}
            },
        }
        word_start = q == Q::No && c.is_whitespace();
    }
    out
}

fn is_var_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '{' || c.is_ascii_digit() || "@*#?$!-".contains(c)
}
