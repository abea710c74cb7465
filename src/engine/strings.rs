//! Late string substitution in actions and checks: `${node.*}` for checks that run per node at
//! run time (probes, gates over many nodes), and `${secret.*}`, which is resolved only in the
//! copy of an action that is about to run and never in anything that is journaled.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;

use crate::procedure::model::{Action, Check};
use crate::procedure::{shell, strings};
use crate::target::{Node, Target};

/// `vars` filled into every string of a check; into its shell script (`sh -c`, an ssh's remote
/// command), quoted for where each lands (`procedure::shell`).
pub fn fill_check(c: &Check, vars: &BTreeMap<String, String>) -> Check {
    // A probe's ssh comes from the target as written; a plan's is joined already.
    let c = &shell::join_remote_check(c);
    let script = shell::check_script(c);
    match strings::map_check::<Infallible>(c, &mut |p, v| Ok(fill_one(p, v, &script, vars))) {
        Ok(c) => c,
        Err(never) => match never {},
    }
}

/// `fill_check` for an action.
pub fn fill_action(a: &Action, vars: &BTreeMap<String, String>) -> Action {
    let a = &shell::join_remote_action(a);
    let script = shell::action_script(a);
    match strings::map_action::<Infallible>(a, &mut |p, v| Ok(fill_one(p, v, &script, vars))) {
        Ok(a) => a,
        Err(never) => match never {},
    }
}

fn fill_one(
    path: &str,
    v: &str,
    script: &Option<String>,
    vars: &BTreeMap<String, String>,
) -> String {
    if script.as_deref() == Some(path) {
        shell::fill_from(v, vars)
    } else {
        substitute(v, vars)
    }
}

/// The target's probes with every template a plan knows filled in: the target's `vars` and the
/// session-wide variables `check` accepts in a probe (`to_version`, `nodes.count`, ...).
/// `${node.*}` and `${secret.*}` stay for run time. A probe is not part of the plan, so
/// without this its `${admin}` reached the HTTP client as written.
pub fn fill_probes(target: &Target, plan: &crate::plan::Plan) -> Target {
    let mut vars: BTreeMap<String, String> = target.vars.clone();
    let globals = [
        ("from_version", plan.from_version.clone()),
        ("current_version", plan.from_version.clone()),
        ("to_version", plan.to_version.clone()),
        ("procedure", Some(plan.procedure.clone())),
        ("target", Some(target.name.clone())),
        ("nodes.count", Some(target.nodes.len().to_string())),
        (
            "nodes.names",
            Some(
                target
                    .nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ),
    ];
    for (k, v) in globals {
        if let Some(v) = v {
            vars.insert(k.to_string(), v);
        }
    }
    let mut t = target.clone();
    for p in &mut t.probes {
        p.check = fill_check(&p.check, &vars);
    }
    t
}

/// The values `${node.KEY}` takes for one node.
pub fn node_vars(node: &Node, index: usize) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("node.name".into(), node.name.clone());
    v.insert("node.address".into(), node.address.clone());
    v.insert("node.host".into(), node.host().to_string());
    let port = node
        .address
        .rsplit_once(':')
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    v.insert("node.port".into(), port);
    v.insert("node.url".into(), node.url());
    v.insert("node.role".into(), node.role.clone().unwrap_or_default());
    v.insert("node.index".into(), (index + 1).to_string());
    for (k, val) in &node.tags {
        v.insert(format!("node.{k}"), val.clone());
    }
    v
}

/// Replace `${KEY}` for the keys given; leave every other placeholder as it is.
pub fn substitute(s: &str, vars: &BTreeMap<String, String>) -> String {
    if !s.contains("${") {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let key = &after[..end];
                match vars.get(key) {
                    Some(val) => out.push_str(val),
                    None => {
                        out.push_str("${");
                        out.push_str(key);
                        out.push('}');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// What a secret's value is shown as.
pub const MASK: &str = "****";

/// Secrets resolved from the environment at session start.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    values: BTreeMap<String, String>,
    /// Secret name -> what to do about it (`set the environment variable X`, the file's error).
    missing: BTreeMap<String, String>,
    /// Every environment variable a secret is read from, set or not.
    env_names: BTreeSet<String>,
    /// The values as they read inside a JSON string, where that differs from the value (made
    /// once here: `redact` runs for every line of output).
    escaped: Vec<String>,
}

impl Secrets {
    /// Read each declared secret from its environment variable.
    /// (A secret declared with `file` is read from the file's first line instead.)
    pub fn from_env(decl: &BTreeMap<String, crate::target::SecretSource>) -> Self {
        let mut s = Secrets::default();
        for (name, src) in decl {
            let found = match &src.file {
                Some(path) => read_secret_file(path),
                None => {
                    s.env_names.insert(src.env.clone());
                    match std::env::var(&src.env) {
                        Ok(v) if !v.is_empty() => Ok(v),
                        _ => Err(format!("set the environment variable {}", src.env)),
                    }
                }
            };
            match found {
                Ok(v) => {
                    s.values.insert(format!("secret.{name}"), v);
                }
                Err(why) => {
                    s.missing.insert(name.clone(), why);
                }
            }
        }
        s.with_escaped()
    }

    /// Secrets with these values, by name (tests that need no environment).
    #[cfg(test)]
    pub(crate) fn with_values<'a>(values: impl IntoIterator<Item = (String, &'a str)>) -> Self {
        Secrets {
            values: values
                .into_iter()
                .map(|(k, v)| (format!("secret.{k}"), v.to_string()))
                .collect(),
            ..Default::default()
        }
        .with_escaped()
    }

    /// Secrets with these values, named `s0`, `s1`, … (tests).
    #[cfg(test)]
    pub(crate) fn of(values: &[&str]) -> Self {
        Self::with_values(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("s{i}"), *v)),
        )
    }

    /// `self` with [`Secrets::escaped`] made from its values.
    fn with_escaped(mut self) -> Self {
        self.escaped = self
            .masked_values()
            .filter_map(|v| {
                let q = serde_json::to_string(v).ok()?;
                let inner = q.get(1..q.len().saturating_sub(1))?;
                (inner != v).then(|| inner.to_string())
            })
            .collect();
        self
    }

    /// Fill in secrets; an unset one is an error naming its variable (never its value).
    pub fn resolve_action(&self, a: &Action) -> Result<Action, String> {
        self.check_missing(&serde_json::to_string(a).unwrap_or_default())?;
        Ok(fill_action(a, &self.values))
    }

    /// `a` as it is shown (the `$ command` line): every secret filled in as `****`, quoted for
    /// where it lands like a value. Masking the resolved command afterwards cannot work: once
    /// quoted for the shell (`'` as `'\''`, `$` as `\$` inside a script) a secret no longer
    /// reads as itself, and would be shown and journaled whole.
    pub fn masked_action(&self, a: &Action) -> Action {
        let masks = self
            .values
            .keys()
            .map(|k| (k.clone(), MASK.to_string()))
            .collect();
        fill_action(a, &masks)
    }

    pub fn resolve_check(&self, c: &Check) -> Result<Check, String> {
        self.check_missing(&serde_json::to_string(c).unwrap_or_default())?;
        Ok(fill_check(c, &self.values))
    }

    fn check_missing(&self, text: &str) -> Result<(), String> {
        for (name, env) in &self.missing {
            if text.contains(&format!("${{secret.{name}}}")) {
                return Err(format!("secret {name} is not available: {env}"));
            }
        }
        Ok(())
    }

    /// Take every secret's variable out of a child's environment. flightdeck's own environment
    /// holds them all (that is where they come from) and a child inherits it by default; a
    /// child gets a secret only through its action's own `env` (set after this) or `stdin`.
    pub fn scrub(&self, cmd: &mut tokio::process::Command) {
        for name in &self.env_names {
            cmd.env_remove(name);
        }
    }

    /// Mask every secret value in text that leaves the engine (output, details, notes). Every
    /// occurrence of every secret is found in the text as given, and each run of text covered
    /// by one or more of them becomes one mask: replacing one secret after another would leave
    /// part of a longer one that contains a shorter one (`admin` in `admin-s3cret` gave
    /// `****-s3cret`), or of two that overlap.
    ///
    /// A secret with an escape sequence or an invisible character inside it (`grep
    /// --color=always` marking a match within it) is not found as given, yet every place that
    /// shows the text strips those first ([`crate::terminal_text::strip`]), where it would read
    /// whole: when stripping brings a secret out, the text is kept stripped, and masked.
    pub fn redact(&self, text: &str) -> String {
        if self.masked_forms().next().is_none() {
            return text.to_string();
        }
        // The text as given is stripped, not its masked form: a shorter secret masked first
        // would keep a longer one that holds it from ever reading whole.
        let stripped = crate::terminal_text::strip(text);
        if matches!(stripped, std::borrow::Cow::Owned(_))
            && !self.spans(stripped.as_bytes()).is_empty()
        {
            return self.redact_as_given(&stripped);
        }
        self.redact_as_given(text)
    }

    /// [`Secrets::redact`] of the text as given, escapes and all.
    fn redact_as_given(&self, text: &str) -> String {
        let spans = self.spans(text.as_bytes());
        if spans.is_empty() {
            return text.to_string();
        }
        // Secrets are whole strings and the text is valid UTF-8: both ends of a match, hence
        // of a run of them, fall on character boundaries, and the masked bytes are UTF-8.
        let masked = mask_spans(text.as_bytes(), &spans, false);
        String::from_utf8(masked).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
    }

    /// `bytes` (as lossy UTF-8) with every secret masked, where `bytes` is what was kept of
    /// more (`cut`: a pipe or a body read up to a cap). The end of what was kept may then be
    /// the first part of a secret whose rest was not read, which no longer matches: that end
    /// is masked too. (Dropping a secret's length of bytes at the end instead would cut in
    /// two a secret lying across the new end, and show its first part.)
    pub fn redact_capped(&self, bytes: &[u8], cut: bool) -> String {
        let mut spans = self.spans(bytes);
        let open = if cut { self.unfinished(bytes) } else { 0 };
        if open > 0 {
            spans.push((bytes.len() - open, bytes.len()));
            spans = merge_spans(spans);
        }
        String::from_utf8_lossy(&mask_spans(bytes, &spans, false)).into_owned()
    }

    /// Where secrets lie in `bytes`: every occurrence of every form of every secret,
    /// overlapping ones too (`abab` twice in `ababab`), as the runs of bytes they cover,
    /// sorted and apart (a run is one mask).
    pub(crate) fn spans(&self, bytes: &[u8]) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        for v in self.masked_forms() {
            let finder = memchr::memmem::Finder::new(v.as_bytes());
            let mut from = 0;
            // Overlapping occurrences too: the next search starts one byte on.
            while let Some(at) = bytes.get(from..).and_then(|rest| finder.find(rest)) {
                found.push((from + at, from + at + v.len()));
                from += at + 1;
            }
        }
        merge_spans(found)
    }

    /// How many bytes at the end of `bytes` could be the first part of a secret whose rest
    /// has not arrived: the longest end of `bytes` that begins one of its forms (at most the
    /// longest form's length less one; 0 when none does, which is most of the time).
    pub(crate) fn unfinished(&self, bytes: &[u8]) -> usize {
        self.masked_forms()
            .filter_map(|v| {
                let v = v.as_bytes();
                let longest = v.len().saturating_sub(1).min(bytes.len());
                (1..=longest).rev().find(|&k| bytes.ends_with(&v[..k]))
            })
            .max()
            .unwrap_or(0)
    }

    /// `text` masked, then cut to at most `max` characters (`cut`).
    pub fn redact_cut(&self, text: &str, max: usize) -> String {
        cut(&self.redact(text), max)
    }

    /// The values `redact` masks.
    fn masked_values(&self) -> impl Iterator<Item = &str> {
        // Very short values would mask ordinary text; secrets that short are not secrets.
        self.values
            .values()
            .map(String::as_str)
            .filter(|v| v.len() >= 4)
    }

    /// Every form of a secret `redact` looks for: the value as it is, and as it reads inside
    /// a JSON string where that differs (a `"`, `\\` or control character is escaped there, so
    /// a body or a value shown as JSON would otherwise carry the secret unmasked).
    fn masked_forms(&self) -> impl Iterator<Item = &str> {
        self.masked_values()
            .chain(self.escaped.iter().map(String::as_str))
    }
}

/// `spans` sorted, those that overlap or touch joined into one.
pub(crate) fn merge_spans(mut spans: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    spans.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// `bytes` with each of `spans` (sorted, apart, within `bytes`) replaced by [`MASK`]; with
/// `continued`, a first span that starts at 0 stands for a mask already given out (the rest
/// of a run of secrets that began before `bytes`) and is left out without a second mask.
pub(crate) fn mask_spans(bytes: &[u8], spans: &[(usize, usize)], continued: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    for &(start, end) in spans {
        let (start, end) = (start.clamp(at, bytes.len()), end.min(bytes.len()));
        out.extend_from_slice(&bytes[at..start]);
        if !(continued && start == 0) {
            out.extend_from_slice(MASK.as_bytes());
        }
        at = end.max(start);
    }
    out.extend_from_slice(&bytes[at..]);
    out
}

/// `text` cut to at most `max` characters, `…` marking a cut. Text that may hold a secret is
/// masked before it is cut (`Secrets::redact_cut`): a secret cut in two no longer matches.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// A secret file's first line (without its line ending); an unreadable or empty file says why.
fn read_secret_file(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    match text.lines().next().map(str::trim_end) {
        Some(line) if !line.is_empty() => Ok(line.to_string()),
        _ => Err(format!("{path} is empty")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitute_leaves_unknown_placeholders() {
        let mut v = BTreeMap::new();
        v.insert("node.url".to_string(), "http://h:1".to_string());
        assert_eq!(
            substitute("${node.url}/x?${secret.T}", &v),
            "http://h:1/x?${secret.T}"
        );
        assert_eq!(substitute("no vars", &v), "no vars");
        assert_eq!(substitute("torn ${node.url", &v), "torn ${node.url");
    }

    #[test]
    fn secrets_resolve_and_redact() {
        let mut s = Secrets::default();
        s.values
            .insert("secret.TOKEN".into(), "hunter2-very-secret".into());
        let a = Action::Run {
            argv: vec!["curl".into(), "-H".into(), "X: ${secret.TOKEN}".into()],
            env: BTreeMap::new(),
            stdin: None,
            cwd: None,
            timeout_secs: 5,
            expect_exit: 0,
        };
        let r = s.resolve_action(&a).unwrap();
        match r {
            Action::Run { argv, .. } => assert_eq!(argv[2], "X: hunter2-very-secret"),
            _ => unreachable!(),
        }
        assert_eq!(s.redact("token=hunter2-very-secret!"), "token=****!");
        s.missing.insert("PW".into(), "DB_PW".into());
        let b = Action::Manual {
            text: "use ${secret.PW}".into(),
        };
        let err = s.resolve_action(&b).unwrap_err();
        assert!(err.contains("DB_PW"));
    }

    /// A secret with a quote or a backslash reads escaped in a JSON body or a value shown as
    /// JSON; before, only its raw form was looked for and the escaped one went out whole.
    #[test]
    fn a_secret_escaped_in_json_is_masked_too() {
        let pw = r#"p"w\x-9"#;
        let s = Secrets::with_values([("pw".into(), pw)]);
        let body = serde_json::json!({ "password": pw }).to_string();
        assert!(
            !body.contains(pw),
            "the test's body holds the escaped form: {body}"
        );
        assert_eq!(s.redact(&body), r#"{"password":"****"}"#);
        assert_eq!(s.redact(pw), "****");
        // Its escaped form's first part, at the end of a read, waits for the rest.
        assert_eq!(s.unfinished(br#"{"password":"p\"w\\x"#), r#"p\"w\\x"#.len());
    }

    /// `grep --color=always` over a file holding a secret colours the match inside it: the
    /// secret is not there as given, but a cockpit, the log and the report strip the escapes
    /// and would show it whole.
    #[test]
    fn a_secret_split_by_escapes_or_invisible_characters_is_masked() {
        let s = Secrets::with_values([("pw".into(), "hunter2-secret")]);
        assert_eq!(
            s.redact("found \u{1b}[01;31m\u{1b}[Khunter\u{1b}[m\u{1b}[K2-secret here"),
            "found **** here"
        );
        assert_eq!(s.redact("hun\u{200b}ter2-\u{202e}secret"), "****");
        assert_eq!(s.redact("a hunter2\u{1b}]0;x\u{7}-secret"), "a ****");
        // A secret inside a longer one, the longer split by an escape: masked as the longer.
        let s = Secrets::with_values([
            ("pw".into(), "Pa55word"),
            ("dsn".into(), "postgres://app:Pa55word@db/app"),
        ]);
        assert_eq!(
            s.redact("url postgres://app:Pa55word@\u{1b}[1mdb\u{1b}[0m/app"),
            "url ****"
        );
        // Output without a secret keeps its colours (the sinks strip them as they show it).
        let coloured = "\u{1b}[32mok\u{1b}[0m hunter2";
        assert_eq!(s.redact(coloured), coloured);
    }

    #[test]
    fn a_secret_inside_another_or_overlapping_it_is_masked_whole() {
        // Before, secrets were replaced one after another in name order: `a` (admin) first
        // left `****-s3cret`.
        let s = Secrets::with_values([("a".into(), "admin"), ("b".into(), "admin-s3cret")]);
        assert_eq!(
            s.redact("user admin-s3cret, then admin"),
            "user ****, then ****"
        );
        let s = Secrets::with_values([("a".into(), "abcd1234"), ("b".into(), "1234wxyz")]);
        assert_eq!(s.redact("[abcd1234wxyz]"), "[****]");
        assert_eq!(s.redact("1234wxyz abcd1234"), "**** ****");
        let s = Secrets::with_values([("a".into(), "aaaa")]);
        assert_eq!(s.redact("aaaaa é aaaa"), "**** é ****");
        let s = Secrets::with_values([("a".into(), "ééé-pw")]);
        assert_eq!(s.redact("xééé-pwééé-pwy"), "x****y");
        assert_eq!(s.redact("nothing"), "nothing");
    }

    #[test]
    fn an_end_that_begins_a_secret_is_unfinished_and_masked_at_a_cap() {
        let s = Secrets::with_values([("a".into(), "s3cr3t-v4lue")]);
        assert_eq!(s.unfinished(b"0123s3cr3t-v4l"), 10);
        assert_eq!(s.unfinished(b"0123s3cr3t-v4lue"), 0);
        assert_eq!(s.unfinished(b"0123"), 0);
        assert_eq!(s.unfinished(b""), 0);
        // Cut at a cap: the end that could be the secret's first part is masked; a secret
        // whole at the end is masked as any other (before, a secret's length was dropped
        // from the end, which cut a secret lying there in two and showed its first byte).
        assert_eq!(s.redact_capped(b"ab s3cr3t", true), "ab ****");
        assert_eq!(s.redact_capped(b"ab s3cr3t", false), "ab s3cr3t");
        assert_eq!(s.redact_capped(b"ab s3cr3t-v4lue", true), "ab ****");
        // A run of overlapping secrets cut by the cap: one mask, nothing of it after.
        let a = Secrets::with_values([("a".into(), "abab")]);
        for n in 4..12 {
            let text = "x".to_string() + &"ab".repeat(20);
            let kept = &text.as_bytes()[..n];
            assert_eq!(a.redact_capped(kept, true), "x****", "cut after {n} bytes");
        }
        assert_eq!(cut("abcdef", 3), "abc…");
        assert_eq!(cut("abc", 3), "abc");
    }

    #[test]
    fn a_secret_file_gives_its_first_line_and_a_missing_one_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth");
        std::fs::write(&path, "bmVvNGo6c2VjcmV0\n").unwrap();
        let file = |p: &std::path::Path| crate::target::SecretSource {
            file: Some(p.display().to_string()),
            ..Default::default()
        };
        let decl = BTreeMap::from([
            ("auth".to_string(), file(&path)),
            ("gone".to_string(), file(&dir.path().join("gone"))),
        ]);
        let s = Secrets::from_env(&decl);
        let a = Action::Manual {
            text: "Basic ${secret.auth}".into(),
        };
        match s.resolve_action(&a).unwrap() {
            Action::Manual { text } => assert_eq!(text, "Basic bmVvNGo6c2VjcmV0"),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.redact("Basic bmVvNGo6c2VjcmV0"), "Basic ****");
        let b = Action::Manual {
            text: "${secret.gone}".into(),
        };
        let err = s.resolve_action(&b).unwrap_err();
        assert!(
            err.starts_with("secret gone is not available: cannot read ") && err.contains("gone"),
            "{err}"
        );
    }
}
