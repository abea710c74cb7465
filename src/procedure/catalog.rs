//! Release catalogs (`procedures/catalog/<product>.toml`): the known releases of a product and its
//! upgrade-path rules, as data, so the `minor-steps` path strategy knows which hops to take.
//!
//! ```toml
//! product = "weaviate"
//! taken = "2026-08-22"                     # when the version list was read from its reference
//! reference = "weaviate/weaviate git tags"
//! versions = ["1.23.16", "1.24.26", ...]
//! [charts]                                 # chart version -> the app version it ships (Helm)
//! "4.1.36" = "2.4.5"
//! [rules]
//! allow_downgrade = true
//! detour = { below = "1.23.13", via = "1.23.16", flag = "detour", window_flag = "detour_window", reason = "..." }
//! flags = [{ name = "raft", crosses = "1.25" }, { name = "sync_gate", at_least = "1.26" }]
//! downgrade_floor = [{ line = "1.28", from = "1.28.13", floor = "1.27.26", reason = "..." }]
//! requires = [{ to = "2.6", from = "2.5.16", reason = "..." }]
//! ```
//!
//! The `minor-steps` strategy goes one minor line at a time, always to that line's latest patch;
//! the `direct` strategy with a named catalog plans one hop, checked against the same rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::version::{Version, VersionError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub product: String,
    /// The date the version list was read from its reference (e.g. `2026-08-22`).
    #[serde(default)]
    pub taken: Option<String>,
    /// What the version list was read from (git tags, release notes, a chart repository).
    #[serde(default)]
    pub reference: Option<String>,
    /// Every release considered when choosing hops; pre-releases are never chosen.
    pub versions: Vec<String>,
    /// Helm chart version -> the app version it ships (`helm search repo ... --versions`).
    #[serde(default)]
    pub charts: BTreeMap<String, String>,
    #[serde(default)]
    pub rules: Rules,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Whether going to an older version is possible at all.
    #[serde(default)]
    pub allow_downgrade: bool,
    /// Clusters older than `below` must first go to `via`.
    #[serde(default)]
    pub detour: Option<Detour>,
    /// Flags attached to each hop as `hop.<name>` = `"true"`/`"false"`.
    #[serde(default)]
    pub flags: Vec<FlagRule>,
    /// Downgrades that cross a data-format change and cannot be undone.
    #[serde(default)]
    pub downgrade_floor: Vec<DowngradeFloor>,
    /// Hops into a version line that need a minimum starting version.
    #[serde(default)]
    pub requires: Vec<Requires>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requires {
    /// A hop to this version or later...
    pub to: String,
    /// ...must start from this version or later.
    pub from: String,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detour {
    pub below: String,
    pub via: String,
    /// Set on the hop that first reaches `below` (the one after which the backup is restored).
    #[serde(default = "detour_flag")]
    pub flag: String,
    /// Set on every hop up to and including that one: the window in which writes made since the
    /// pre-upgrade backup would be lost by its restore.
    #[serde(default)]
    pub window_flag: Option<String>,
    #[serde(default)]
    pub reason: String,
}

fn detour_flag() -> String {
    "detour".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagRule {
    pub name: String,
    /// True for the hop that goes from below this version line into it (or past it).
    #[serde(default)]
    pub crosses: Option<String>,
    /// True for every hop to this version or later.
    #[serde(default)]
    pub at_least: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DowngradeFloor {
    /// The rule applies to clusters in this version line (any line when absent)...
    #[serde(default)]
    pub line: Option<String>,
    /// ...at this version or later...
    pub from: String,
    /// ...which cannot go below this version.
    pub floor: String,
    #[serde(default)]
    pub reason: String,
}

/// One version the upgrade passes through.
#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    pub version: String,
    /// The version before this hop (empty when the current version is unknown).
    pub from: String,
    /// `hop.<name>` flags, e.g. `detour`, `raft`.
    pub flags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read catalog {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("catalog {path} is invalid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error("downgrading {product} from {from} to {to} is not supported")]
    DowngradeRefused {
        product: String,
        from: String,
        to: String,
    },
    #[error("downgrading {product} from {from} to {to} is refused: {reason}")]
    BelowFloor {
        product: String,
        from: String,
        to: String,
        reason: String,
    },
    #[error("upgrading {product} from {from} to {to} is refused: {reason}")]
    Requires {
        product: String,
        from: String,
        to: String,
        reason: String,
    },
    #[error("chart {chart} ships {product} {ships}, not {to}; set vars.chart_version to a chart that ships {to} (helm search repo --versions)")]
    ChartMismatch {
        product: String,
        chart: String,
        ships: String,
        to: String,
    },
    #[error("no chart in the catalog ships {product} {to} (charts are known for {known}); choose a version a chart ships, or set vars.chart_version in the target if a newer chart does")]
    NoChart {
        product: String,
        to: String,
        known: String,
    },
}

impl Catalog {
    pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|e| CatalogError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let cat: Catalog = toml::from_str(&text).map_err(|e| CatalogError::Invalid {
            path: path.to_path_buf(),
            reason: e.message().to_string(),
        })?;
        cat.validate().map_err(|reason| CatalogError::Invalid {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(cat)
    }

    /// `<dir>/<name>.toml`.
    pub fn path_in(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}.toml"))
    }

    fn validate(&self) -> Result<(), String> {
        let mut all: Vec<&str> = self.versions.iter().map(String::as_str).collect();
        if let Some(d) = &self.rules.detour {
            all.extend([d.below.as_str(), d.via.as_str()]);
        }
        for f in &self.rules.flags {
            all.extend(f.crosses.as_deref());
            all.extend(f.at_least.as_deref());
        }
        for d in &self.rules.downgrade_floor {
            all.extend([d.from.as_str(), d.floor.as_str()]);
            all.extend(d.line.as_deref());
        }
        for r in &self.rules.requires {
            all.extend([r.to.as_str(), r.from.as_str()]);
        }
        for (chart, app) in &self.charts {
            all.extend([chart.as_str(), app.as_str()]);
        }
        for v in all {
            Version::parse(v).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Names of the flags every hop carries.
    pub fn flag_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.rules.flags.iter().map(|f| f.name.clone()).collect();
        if let Some(d) = &self.rules.detour {
            names.push(d.flag.clone());
            names.extend(d.window_flag.clone());
        }
        names
    }

    /// The latest release of each minor line, in order.
    fn latest_per_minor(&self) -> Vec<Version> {
        let mut latest: BTreeMap<(u64, u64), Version> = BTreeMap::new();
        for v in self.versions.iter().filter_map(|v| Version::parse(v).ok()) {
            if v.is_prerelease() {
                continue;
            }
            let e = latest.entry(v.minor_key()).or_insert_with(|| v.clone());
            if v > *e {
                *e = v;
            }
        }
        latest.into_values().collect()
    }

    /// The hops from `from` to `to`, one minor line at a time: the latest patch of each minor
    /// line after `from`'s and before `to`'s, then exactly `to` (Weaviate docs, "Migration and
    /// upgrades": "upgrade one minor version at a time, always using the latest patch version of
    /// each minor release"). A detour (`rules.detour`) never skips a line: when `from` is below
    /// it, the hop into `via`'s line goes to `via` (first, when `via` is in `from`'s own line),
    /// and the first hop that reaches `below` carries the detour flag.
    pub fn hops(&self, from: &str, to: &str) -> Result<Vec<Hop>, CatalogError> {
        let f = Version::parse(from)?;
        let t = Version::parse(to)?;
        if t < f {
            self.check_downgrade(from, &f, to, &t)?;
            return Ok(vec![self.hop(from, &f, to, &t, false, false)?]);
        }
        if t == f {
            return Ok(Vec::new());
        }
        let mut versions: Vec<Version> = self
            .latest_per_minor()
            .into_iter()
            .filter(|v| v.minor_key() > f.minor_key() && v.minor_key() < t.minor_key())
            .collect();
        let detour = self.detour_applies(&f)?;
        if let Some((_, via)) = &detour {
            if *via > f && *via < t {
                match versions
                    .iter_mut()
                    .find(|v| v.minor_key() == via.minor_key())
                {
                    Some(v) => *v = via.clone(),
                    None if via.minor_key() == f.minor_key() => versions.insert(0, via.clone()),
                    // `via` in `to`'s line: the last hop reaches it (or passes it) anyway.
                    None => {}
                }
            }
        }
        versions.push(t);
        self.chain(from, &f, to, versions, detour.map(|(below, _)| below))
    }

    /// One hop from `from` to `to` (the `direct` strategy), checked against the same rules: a
    /// refused downgrade, a required starting version, the detour flag.
    pub fn direct_hop(&self, from: &str, to: &str) -> Result<Vec<Hop>, CatalogError> {
        let f = Version::parse(from)?;
        let t = Version::parse(to)?;
        if t < f {
            self.check_downgrade(from, &f, to, &t)?;
            return Ok(vec![self.hop(from, &f, to, &t, false, false)?]);
        }
        if t == f {
            return Ok(Vec::new());
        }
        let below = self.detour_applies(&f)?.map(|(below, _)| below);
        self.chain(from, &f, to, vec![t], below)
    }

    /// `(below, via)` when `from` is below the detour line.
    fn detour_applies(&self, from: &Version) -> Result<Option<(Version, Version)>, CatalogError> {
        let Some(d) = &self.rules.detour else {
            return Ok(None);
        };
        let below = Version::parse(&d.below)?;
        Ok((*from < below).then_some((below, Version::parse(&d.via)?)))
    }

    /// Hops through `versions` (the last one written as `to` was), with the detour flags and
    /// the `requires` rules checked on each.
    fn chain(
        &self,
        from: &str,
        f: &Version,
        to: &str,
        versions: Vec<Version>,
        detour_below: Option<Version>,
    ) -> Result<Vec<Hop>, CatalogError> {
        // A detour whose line the path never reaches restores nothing: no window either.
        let detour_below = detour_below.filter(|b| versions.iter().any(|v| v >= b));
        let mut hops = Vec::new();
        let mut prev = (from.to_string(), f.clone());
        let last = versions.len().saturating_sub(1);
        let mut detour_done = detour_below.is_none();
        for (i, v) in versions.into_iter().enumerate() {
            // The last hop keeps the version exactly as the operator wrote it.
            let text = if i == last {
                to.to_string()
            } else {
                v.to_string()
            };
            let in_window = !detour_done;
            let detour = !detour_done && detour_below.as_ref().is_some_and(|b| v >= *b);
            detour_done |= detour;
            self.check_requires(&prev.0, &prev.1, &text, &v)?;
            hops.push(self.hop(&prev.0, &prev.1, &text, &v, detour, in_window)?);
            prev = (text, v);
        }
        Ok(hops)
    }

    fn check_requires(
        &self,
        from_text: &str,
        from: &Version,
        to_text: &str,
        to: &Version,
    ) -> Result<(), CatalogError> {
        for r in &self.rules.requires {
            let line = Version::parse(&r.to)?;
            let min = Version::parse(&r.from)?;
            if *to >= line && *from < line && *from < min {
                return Err(CatalogError::Requires {
                    product: self.product.clone(),
                    from: from_text.into(),
                    to: to_text.into(),
                    reason: if r.reason.is_empty() {
                        format!("a hop to {} or later starts from {} or later", r.to, r.from)
                    } else {
                        r.reason.clone()
                    },
                });
            }
        }
        Ok(())
    }

    /// The chart that ships `to`: the latest chart the catalog maps to it. `None` when the
    /// catalog knows no charts at all.
    pub fn chart_for(&self, to: &str) -> Result<Option<String>, CatalogError> {
        if self.charts.is_empty() {
            return Ok(None);
        }
        let t = Version::parse(to)?;
        let best = self
            .charts
            .iter()
            .filter_map(|(c, a)| Some((Version::parse(c).ok()?, Version::parse(a).ok()?, c)))
            .filter(|(_, a, _)| *a == t)
            .max_by(|x, y| x.0.cmp(&y.0));
        match best {
            Some((_, _, c)) => Ok(Some(c.clone())),
            None => Err(CatalogError::NoChart {
                product: self.product.clone(),
                to: to.into(),
                known: self.chart_lines(),
            }),
        }
    }

    /// Checks a chart the target names: refused when the catalog maps it to another version;
    /// a chart the catalog does not know is left to the run-time check.
    pub fn check_chart(&self, chart: &str, to: &str) -> Result<(), CatalogError> {
        let Some(app) = self.charts.get(chart) else {
            return Ok(());
        };
        if Version::parse(app)? == Version::parse(to)? {
            Ok(())
        } else {
            Err(CatalogError::ChartMismatch {
                product: self.product.clone(),
                chart: chart.into(),
                ships: app.clone(),
                to: to.into(),
            })
        }
    }

    /// `2.4.0-2.4.17, 2.5.0-2.5.16`: the app versions charts ship, per minor line.
    fn chart_lines(&self) -> String {
        let mut lines: BTreeMap<(u64, u64), (Version, Version)> = BTreeMap::new();
        for v in self.charts.values().filter_map(|a| Version::parse(a).ok()) {
            let e = lines
                .entry(v.minor_key())
                .or_insert_with(|| (v.clone(), v.clone()));
            if v < e.0 {
                e.0 = v.clone();
            }
            if v > e.1 {
                e.1 = v;
            }
        }
        let parts: Vec<String> = lines
            .values()
            .map(|(lo, hi)| format!("{lo}-{hi}"))
            .collect();
        parts.join(", ")
    }

    fn hop(
        &self,
        from_text: &str,
        from: &Version,
        to_text: &str,
        to: &Version,
        detour: bool,
        in_window: bool,
    ) -> Result<Hop, CatalogError> {
        let mut flags = BTreeMap::new();
        for rule in &self.rules.flags {
            let mut on = false;
            if let Some(line) = &rule.crosses {
                let line = Version::parse(line)?;
                on |= *from < line && *to >= line;
            }
            if let Some(min) = &rule.at_least {
                on |= *to >= Version::parse(min)?;
            }
            flags.insert(rule.name.clone(), on.to_string());
        }
        if let Some(d) = &self.rules.detour {
            flags.insert(d.flag.clone(), detour.to_string());
            if let Some(w) = &d.window_flag {
                flags.insert(w.clone(), in_window.to_string());
            }
        }
        Ok(Hop {
            version: to_text.to_string(),
            from: from_text.to_string(),
            flags,
        })
    }

    fn check_downgrade(
        &self,
        from_text: &str,
        from: &Version,
        to_text: &str,
        to: &Version,
    ) -> Result<(), CatalogError> {
        if !self.rules.allow_downgrade {
            return Err(CatalogError::DowngradeRefused {
                product: self.product.clone(),
                from: from_text.into(),
                to: to_text.into(),
            });
        }
        for rule in &self.rules.downgrade_floor {
            let in_line = match &rule.line {
                Some(l) => from.in_line(&Version::parse(l)?),
                None => true,
            };
            if in_line && *from >= Version::parse(&rule.from)? && *to < Version::parse(&rule.floor)?
            {
                return Err(CatalogError::BelowFloor {
                    product: self.product.clone(),
                    from: from_text.into(),
                    to: to_text.into(),
                    reason: if rule.reason.is_empty() {
                        format!(
                            "clusters at {} or later cannot go below {}",
                            rule.from, rule.floor
                        )
                    } else {
                        rule.reason.clone()
                    },
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(text: &str) -> Catalog {
        let c: Catalog = toml::from_str(text).unwrap();
        c.validate().unwrap();
        c
    }

    const WEAVIATE: &str = r#"
product = "weaviate"
versions = ["1.20.6", "1.21.9", "1.22.13", "1.23.5", "1.23.16", "1.24.26", "1.25.34", "1.26.18"]
[rules]
allow_downgrade = true
detour = { below = "1.23.13", via = "1.23.16", flag = "detour", window_flag = "window" }
"#;

    fn path(hops: &[Hop]) -> Vec<(String, String, String)> {
        hops.iter()
            .map(|h| {
                (
                    h.version.clone(),
                    h.flags["detour"].clone(),
                    h.flags["window"].clone(),
                )
            })
            .collect()
    }

    fn row(v: &str, detour: bool, window: bool) -> (String, String, String) {
        (v.into(), detour.to_string(), window.to_string())
    }

    #[test]
    fn below_the_detour_every_minor_line_is_a_hop() {
        let c = catalog(WEAVIATE);
        let hops = c.hops("1.20.0", "1.24.26").unwrap();
        assert_eq!(
            path(&hops),
            [
                row("1.21.9", false, true),
                row("1.22.13", false, true),
                row("1.23.16", true, true),
                row("1.24.26", false, false),
            ]
        );
        // From inside the detour's own line: `via` first.
        let hops = c.hops("1.23.5", "1.25.34").unwrap();
        let v: Vec<&str> = hops.iter().map(|h| h.version.as_str()).collect();
        assert_eq!(v, ["1.23.16", "1.24.26", "1.25.34"]);
        assert_eq!(hops[0].flags["detour"], "true");
        // A path that never reaches the detour line restores nothing.
        let hops = c.hops("1.20.0", "1.22.13").unwrap();
        assert!(hops.iter().all(|h| h.flags["window"] == "false"));
        // A last hop that crosses 1.23.13 without `via` is the detour hop.
        let hops = c.hops("1.22.4", "1.23.14").unwrap();
        assert_eq!(path(&hops), [row("1.23.14", true, true)]);
    }

    const MILVUS: &str = r#"
product = "milvus"
versions = ["2.4.5", "2.5.12", "2.5.16", "2.6.0"]
[charts]
"4.1.34" = "2.4.5"
"4.1.36" = "2.4.5"
"4.2.50" = "2.5.12"
"5.0.0" = "2.6.0"
[rules]
allow_downgrade = false
requires = [{ to = "2.6", from = "2.5.16", reason = "upgrade to 2.5.16 or later first" }]
"#;

    #[test]
    fn charts_map_to_the_app_version_they_ship() {
        let c = catalog(MILVUS);
        assert_eq!(c.chart_for("2.4.5").unwrap().as_deref(), Some("4.1.36"));
        assert_eq!(c.chart_for("2.5.12").unwrap().as_deref(), Some("4.2.50"));
        let err = c.chart_for("2.5.26").unwrap_err().to_string();
        assert!(
            err.contains("2.5.26") && err.contains("2.5.12-2.5.12"),
            "{err}"
        );
        assert!(c.check_chart("4.1.34", "2.4.5").is_ok());
        let err = c.check_chart("4.1.34", "2.5.12").unwrap_err().to_string();
        assert!(err.contains("ships milvus 2.4.5, not 2.5.12"), "{err}");
        // A chart newer than the catalog is left to the run-time check.
        assert!(c.check_chart("9.9.9", "2.5.12").is_ok());
    }

    #[test]
    fn direct_hops_keep_the_rules() {
        let c = catalog(MILVUS);
        assert_eq!(c.direct_hop("2.4.5", "2.5.12").unwrap().len(), 1);
        let err = c.direct_hop("2.5.12", "2.6.0").unwrap_err().to_string();
        assert!(err.contains("2.5.16 or later first"), "{err}");
        assert!(c.direct_hop("2.5.16", "2.6.0").is_ok());
        let err = c.direct_hop("2.5.12", "2.4.5").unwrap_err().to_string();
        assert!(err.contains("not supported"), "{err}");
    }
}
