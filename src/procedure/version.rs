//! Product versions (`1.26.11`, `v2.4.5`, `2.2.0-rc1`, `8.1.3.0`) and constraints on them
//! (`">= 1.20, < 2.0"`, `2.1.*`).

use std::cmp::Ordering;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("`{0}` is not a version (expected numbers separated by dots, like 1.26.11)")]
    Version(String),
    #[error("`{0}` is not a version constraint (expected e.g. \">= 1.20, < 2.0\" or \"2.1.*\")")]
    Constraint(String),
}

/// A version: numeric components plus an optional pre-release suffix. Missing trailing
/// components count as zero (`1.26` == `1.26.0`); a pre-release sorts before its release.
#[derive(Debug, Clone)]
pub struct Version {
    pub parts: Vec<u64>,
    pub pre: Option<String>,
}

impl Version {
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        let err = || VersionError::Version(s.to_string());
        let t = s.trim();
        let t = t.strip_prefix(['v', 'V']).unwrap_or(t);
        let (nums, pre) = match t.split_once('-') {
            Some((n, p)) if !p.is_empty() => (n, Some(p.to_string())),
            Some(_) => return Err(err()),
            None => (t, None),
        };
        if nums.is_empty() {
            return Err(err());
        }
        let parts = nums
            .split('.')
            .map(|p| {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    Err(err())
                } else {
                    p.parse::<u64>().map_err(|_| err())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Version { parts, pre })
    }

    fn part(&self, i: usize) -> u64 {
        self.parts.get(i).copied().unwrap_or(0)
    }

    /// `major.minor`, the version line (`1.26` for `1.26.11`).
    pub fn minor_line(&self) -> String {
        format!("{}.{}", self.part(0), self.part(1))
    }

    /// The first two components, for grouping releases by minor line.
    pub fn minor_key(&self) -> (u64, u64) {
        (self.part(0), self.part(1))
    }

    /// Whether this version is in the line `prefix` (`1.26.11` is in `1.26` and in `1`).
    pub fn in_line(&self, prefix: &Version) -> bool {
        prefix
            .parts
            .iter()
            .enumerate()
            .all(|(i, p)| self.part(i) == *p)
    }

    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some()
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nums: Vec<String> = self.parts.iter().map(u64::to_string).collect();
        f.write_str(&nums.join("."))?;
        if let Some(p) = &self.pre {
            write!(f, "-{p}")?;
        }
        Ok(())
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.parts.len().max(other.parts.len());
        for i in 0..n {
            match self.part(i).cmp(&other.part(i)) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        match (&self.pre, &other.pre) {
            (None, None) => Ordering::Equal,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => cmp_pre(a, b),
        }
    }
}

/// `rc2` < `rc10`: compare digit runs numerically, the rest as text.
fn cmp_pre(a: &str, b: &str) -> Ordering {
    let split = |s: &str| -> (String, u64) {
        let digits_at = s
            .char_indices()
            .rev()
            .find(|(_, c)| !c.is_ascii_digit())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let (text, num) = s.split_at(digits_at);
        (text.to_string(), num.parse().unwrap_or(0))
    };
    split(a).cmp(&split(b)).then_with(|| a.cmp(b))
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub fn holds(self, o: Ordering) -> bool {
        match self {
            Op::Eq => o == Ordering::Equal,
            Op::Ne => o != Ordering::Equal,
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Gt => o == Ordering::Greater,
            Op::Ge => o != Ordering::Less,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Clause {
    Cmp(Op, Version),
    /// `2.1.*`: any version in that line.
    Line(Version),
}

/// A conjunction of clauses, e.g. `>= 1.20, < 2.0`.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    text: String,
    clauses: Vec<Clause>,
}

impl Constraint {
    pub fn parse(s: &str) -> Result<Constraint, VersionError> {
        let err = || VersionError::Constraint(s.to_string());
        let mut clauses = Vec::new();
        for raw in s.split(',') {
            let c = raw.trim();
            if c.is_empty() {
                return Err(err());
            }
            let (op, rest) = [
                (">=", Op::Ge),
                ("<=", Op::Le),
                ("!=", Op::Ne),
                ("==", Op::Eq),
                ("=", Op::Eq),
                (">", Op::Gt),
                ("<", Op::Lt),
            ]
            .iter()
            .find_map(|(p, op)| c.strip_prefix(p).map(|r| (*op, r.trim())))
            .unwrap_or((Op::Eq, c));
            let wild = rest.strip_suffix(".*").or_else(|| rest.strip_suffix(".x"));
            let clause = match wild {
                Some(line) if op == Op::Eq => {
                    Clause::Line(Version::parse(line).map_err(|_| err())?)
                }
                Some(_) => return Err(err()),
                None => Clause::Cmp(op, Version::parse(rest).map_err(|_| err())?),
            };
            clauses.push(clause);
        }
        Ok(Constraint {
            text: s.trim().to_string(),
            clauses,
        })
    }

    pub fn matches(&self, v: &Version) -> bool {
        self.clauses.iter().all(|c| match c {
            Clause::Cmp(op, w) => op.holds(v.cmp(w)),
            Clause::Line(l) => v.in_line(l),
        })
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn parses_the_usual_shapes() {
        assert_eq!(v("1.26.11").parts, vec![1, 26, 11]);
        assert_eq!(v("v2.4.5").parts, vec![2, 4, 5]);
        assert_eq!(v("8.1.3.0").parts, vec![8, 1, 3, 0]);
        let rc = v("2.2.0-rc1");
        assert_eq!(rc.parts, vec![2, 2, 0]);
        assert_eq!(rc.pre.as_deref(), Some("rc1"));
        assert_eq!(rc.to_string(), "2.2.0-rc1");
        for bad in ["", "v", "1..2", "1.a", "1.2-", "latest", "-rc1"] {
            assert!(Version::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn orders_numerically_with_prereleases_first() {
        assert!(v("1.26.11") > v("1.26.9"));
        assert!(v("1.26") == v("1.26.0"));
        assert!(v("2.2.0-rc1") < v("2.2.0"));
        assert!(v("2.2.0-rc2") < v("2.2.0-rc10"));
        assert!(v("8.1.3.0") < v("8.1.3.1"));
        assert!(v("1.0.0-é5") > v("1.0.0-é4"));
        assert!(v("v3.3.5") > v("3.3.4"));
    }

    #[test]
    fn constraints() {
        let c = Constraint::parse(">= 1.20, < 2.0").unwrap();
        assert!(c.matches(&v("1.20.0")));
        assert!(c.matches(&v("1.32.4")));
        assert!(!c.matches(&v("2.0.0")));
        assert!(!c.matches(&v("1.19.9")));
        let w = Constraint::parse("2.1.*").unwrap();
        assert!(w.matches(&v("2.1.4")));
        assert!(!w.matches(&v("2.2.0")));
        assert!(Constraint::parse("2.1.x").unwrap().matches(&v("2.1.0")));
        assert!(Constraint::parse("2.2.3").unwrap().matches(&v("2.2.3")));
        assert!(Constraint::parse("!= 2.2.3").unwrap().matches(&v("2.2.4")));
        assert!(Constraint::parse("<= 2.2.3").unwrap().matches(&v("2.2.3")));
        assert!(Constraint::parse(">= 1.2, ").is_err());
        assert!(Constraint::parse("~> 1.2").is_err());
        assert!(Constraint::parse("> 2.1.*").is_err());
    }

    #[test]
    fn version_lines() {
        assert!(v("1.26.11").in_line(&v("1.26")));
        assert!(!v("1.27.0").in_line(&v("1.26")));
        assert_eq!(v("1.26.11").minor_line(), "1.26");
    }
}
