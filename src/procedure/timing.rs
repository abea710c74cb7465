//! Timeouts and intervals written as text instead of a number: a variable the target sizes for
//! its cluster (`timeout_secs = "${recovery_timeout}"`) or a duration with its unit
//! (`timeout_secs = "15m"`, `interval_ms = "2s"`).
//!
//! The typed model keeps plain numbers: while a file is read, every timing field written as a
//! string is set aside here, by its value path (`steps[3].action.timeout_secs`), and the model
//! gets a placeholder. `check` validates each text (its variables exist; a value known then is
//! a duration in range) at the field's `file:line:col`; the plan fills it in with the values
//! the target gives, so the plan and the journal hold the resolved number.

use std::collections::BTreeMap;

use toml::de::{DeInteger, DeTable, DeValue};
use toml::Spanned;

use super::model::{Action, Check, VerifySpec};
use crate::target::ProbeSpec;
use crate::target_overrides::{MAX_INTERVAL_MS, MAX_TIMEOUT_SECS, MIN_INTERVAL_MS};

/// The unit of a timing field's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Secs,
    Millis,
}

/// The timing fields, by key, with the unit of their number.
pub const FIELDS: &[(&str, Unit)] = &[
    ("timeout_secs", Unit::Secs),
    ("stable_secs", Unit::Secs),
    ("interval_ms", Unit::Millis),
    ("timeout_ms", Unit::Millis),
];

/// The unit of the timing field `key`, if it is one.
pub fn unit_of(key: &str) -> Option<Unit> {
    FIELDS.iter().find(|(k, _)| *k == key).map(|(_, u)| *u)
}

/// Timing fields written as text: value path -> the text as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timings(pub BTreeMap<String, String>);

impl Timings {
    pub fn contains(&self, path: &str) -> bool {
        self.0.contains_key(path)
    }

    /// The entries under `prefix` (e.g. `steps[3].action`), as (path after `prefix.`, text).
    pub fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.0.iter().filter_map(move |(p, t)| {
            p.strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('.'))
                .map(|r| (r, t.as_str()))
        })
    }
}

/// Take every timing string out of a parsed document, leaving a placeholder number in its place
/// (same span, so toml's errors still point at the right text).
pub(crate) fn extract(root: &mut Spanned<DeTable<'_>>) -> Timings {
    let mut out = Timings::default();
    walk_table("", root.get_mut(), &mut out);
    out
}

/// Tables whose values are free text (or numbers only, like a target's `[overrides]`): a key
/// there that looks like a timing field is not one.
const NOT_TIMINGS: &[&str] = &[
    "vars",
    "target_vars",
    "args",
    "env",
    "headers",
    "tags",
    "facts",
    "expect_json",
    "secrets",
    "overrides",
];

fn walk_table(prefix: &str, table: &mut DeTable<'_>, out: &mut Timings) {
    for (k, v) in table.iter_mut() {
        let key = k.get_ref();
        if NOT_TIMINGS.contains(&key.as_ref()) {
            continue;
        }
        let path = if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        };
        if unit_of(key).is_some() {
            if let DeValue::String(s) = v.get_ref() {
                out.0.insert(path, s.to_string());
                *v.get_mut() = DeValue::Integer(DeInteger::default());
                continue;
            }
        }
        walk_value(path, v.get_mut(), out);
    }
}

fn walk_value(path: String, v: &mut DeValue<'_>, out: &mut Timings) {
    match v {
        DeValue::Table(t) => walk_table(&path, t, out),
        DeValue::Array(a) => {
            for (i, item) in a.iter_mut().enumerate() {
                walk_value(format!("{path}[{i}]"), item.get_mut(), out);
            }
        }
        _ => {}
    }
}

/// A filled-in timing text as a number in `unit`: a whole number is in the field's own unit
/// (`900` for `timeout_secs` is 900 s); a duration carries its unit (`15m`, `1h 30m`, `500ms`,
/// humantime's syntax). Then the field's range: a timeout 1 s to 7 days, a stable time up to 7
/// days, a poll interval 10 ms to 1 h.
pub fn parse(key: &str, text: &str) -> Result<u64, String> {
    let unit = unit_of(key).unwrap_or(Unit::Secs);
    let t = text.trim();
    let n = if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
        t.parse::<u64>()
            .map_err(|_| format!("`{t}` is too large for `{key}`"))?
    } else {
        let d = humantime::parse_duration(t).map_err(|_| {
            format!(
                "`{t}` is not a duration: write a whole number of {} or a duration like `90s`, \
                 `15m`, `1h 30m`",
                match unit {
                    Unit::Secs => "seconds",
                    Unit::Millis => "milliseconds",
                }
            )
        })?;
        match unit {
            Unit::Secs if d.subsec_nanos() != 0 => {
                return Err(format!("`{t}` is not a whole number of seconds"))
            }
            Unit::Secs => d.as_secs(),
            Unit::Millis if d.subsec_nanos() % 1_000_000 != 0 => {
                return Err(format!("`{t}` is not a whole number of milliseconds"))
            }
            Unit::Millis => u64::try_from(d.as_millis())
                .map_err(|_| format!("`{t}` is too large for `{key}`"))?,
        }
    };
    let (lo, hi, what) = match key {
        "timeout_secs" => (1, MAX_TIMEOUT_SECS, "1 s to 7 days"),
        "stable_secs" => (0, MAX_TIMEOUT_SECS, "0 to 7 days"),
        "timeout_ms" => (1, MAX_TIMEOUT_SECS * 1000, "1 ms to 7 days"),
        _ => (MIN_INTERVAL_MS, MAX_INTERVAL_MS, "10 ms to 1 h"),
    };
    if !(lo..=hi).contains(&n) {
        return Err(format!("`{key}` = {t} is out of range: {what}"));
    }
    Ok(n)
}

/// Set the timing at `rel` (a path inside an action: `timeout_secs`, `check.timeout_ms`) to
/// `value`; false when the action has no such field (e.g. the step's `call` was bound to an
/// action of another kind).
pub fn set_in_action(action: &mut Action, rel: &str, value: u64) -> bool {
    match (action, rel) {
        (Action::Run { timeout_secs, .. }, "timeout_secs") => *timeout_secs = value,
        (Action::Http(h), "timeout_secs") => h.timeout_secs = value,
        (Action::Wait(w), "timeout_secs") => w.timeout_secs = value,
        (Action::Wait(w), "stable_secs") => w.stable_secs = value,
        (Action::Wait(w), "interval_ms") => w.interval_ms = value,
        (Action::Wait(w), r) => match (&mut w.check, r.strip_prefix("check.")) {
            (Some(c), Some(field)) => return set_in_check(c, field, value),
            _ => return false,
        },
        _ => return false,
    }
    true
}

/// Set a check's `timeout_secs` / `timeout_ms`.
pub fn set_in_check(check: &mut Check, field: &str, value: u64) -> bool {
    match (check, field) {
        (Check::Http(h), "timeout_secs") => h.timeout_secs = value,
        (Check::Run { timeout_secs, .. }, "timeout_secs") => *timeout_secs = value,
        (Check::Tcp { timeout_ms, .. }, "timeout_ms") => *timeout_ms = value,
        _ => return false,
    }
    true
}

/// Set a `[[rollback.verify]]` entry's timing.
pub fn set_in_verify(v: &mut VerifySpec, rel: &str, value: u64) -> bool {
    match rel {
        "timeout_secs" => v.timeout_secs = value,
        "stable_secs" => v.stable_secs = value,
        "interval_ms" => v.interval_ms = value,
        r => match (&mut v.check, r.strip_prefix("check.")) {
            (Some(c), Some(field)) => return set_in_check(c, field, value),
            _ => return false,
        },
    }
    true
}

/// Set a target probe's timing (its check is written flat in the probe's table).
pub fn set_in_probe(p: &mut ProbeSpec, rel: &str, value: u64) -> bool {
    match rel {
        "interval_ms" => {
            p.interval_ms = value;
            true
        }
        field => set_in_check(&mut p.check, field, value),
    }
}

/// The key of a timing path (`timeout_ms` for `steps[1].action.check.timeout_ms`).
pub fn key_of(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_in_the_fields_unit_and_durations_carry_theirs() {
        assert_eq!(parse("timeout_secs", "900"), Ok(900));
        assert_eq!(parse("timeout_secs", "15m"), Ok(900));
        assert_eq!(parse("timeout_secs", "1h 30m"), Ok(5400));
        assert_eq!(parse("interval_ms", "2s"), Ok(2000));
        assert_eq!(parse("interval_ms", "250"), Ok(250));
        assert_eq!(parse("stable_secs", "0"), Ok(0));
    }

    #[test]
    fn what_is_not_a_duration_says_why() {
        let e = parse("timeout_secs", "soon").unwrap_err();
        assert!(e.starts_with("`soon` is not a duration"), "{e}");
        let e = parse("timeout_secs", "1500ms").unwrap_err();
        assert!(e.contains("not a whole number of seconds"), "{e}");
        let e = parse("timeout_secs", "0").unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        let e = parse("timeout_secs", "30d").unwrap_err();
        assert!(e.contains("out of range: 1 s to 7 days"), "{e}");
        let e = parse("interval_ms", "1ms").unwrap_err();
        assert!(e.contains("10 ms to 1 h"), "{e}");
        let e = parse("timeout_secs", "99999999999999999999999").unwrap_err();
        assert!(e.contains("too large"), "{e}");
    }

    #[test]
    fn strings_in_timing_fields_are_set_aside_with_their_paths() {
        let src = r#"
[[steps]]
id = "a"
action = { kind = "wait", probe = "p", timeout_secs = "${t}", interval_ms = 500 }
[[steps]]
id = "b"
[steps.action]
kind = "wait"
stable_secs = "10s"
check = { kind = "tcp", address = "x:1", timeout_ms = "2s" }
"#;
        let mut root = DeTable::parse(src).unwrap();
        let t = extract(&mut root);
        let got: Vec<(&str, &str)> = t.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("steps[0].action.timeout_secs", "${t}"),
                ("steps[1].action.check.timeout_ms", "2s"),
                ("steps[1].action.stable_secs", "10s"),
            ]
        );
        let under: Vec<_> = t.under("steps[1].action").collect();
        assert_eq!(under, [("check.timeout_ms", "2s"), ("stable_secs", "10s")]);
    }
}
