//! Release catalogs (`procedures/catalog/<product>.toml`): the known releases of a product and its
//! upgrade-path rules, as data, so the `minor-steps` path strategy knows which hops to take.
//!
//! ```toml
//! product = "weaviate"
//! versions = ["1.23.16", "1.24.26", ...]
//! [rules]
//! allow_downgrade = true
//! detour = { below = "1.23.13", via = "1.23.16", flag = "detour", reason = "..." }
//! flags = [{ name = "raft", crosses = "1.25" }, { name = "sync_gate", at_least = "1.26" }]
//! downgrade_floor = [{ line = "1.28", from = "1.28.13", floor = "1.27.26", reason = "..." }]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::version::{Version, VersionError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub product: String,
    /// Every release considered when choosing hops; pre-releases are never chosen.
    pub versions: Vec<String>,
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detour {
    pub below: String,
    pub via: String,
    #[serde(default = "detour_flag")]
    pub flag: String,
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

    /// The hops from `from` to `to`: an optional detour, then the latest patch of each minor line
    /// after `from`'s and before `to`'s, then exactly `to`.
    pub fn hops(&self, from: &str, to: &str) -> Result<Vec<Hop>, CatalogError> {
        let f = Version::parse(from)?;
        let t = Version::parse(to)?;
        if t < f {
            self.check_downgrade(from, &f, to, &t)?;
            return Ok(vec![self.hop(from, &f, to, &t, false)?]);
        }
        if t == f {
            return Ok(Vec::new());
        }
        let mut versions: Vec<(Version, bool)> = Vec::new();
        let mut cur = f.clone();
        if let Some(d) = &self.rules.detour {
            let below = Version::parse(&d.below)?;
            let via = Version::parse(&d.via)?;
            if f < below && via > f && via < t {
                versions.push((via.clone(), true));
                cur = via;
            }
        }
        for v in self.latest_per_minor() {
            if v.minor_key() > cur.minor_key() && v.minor_key() < t.minor_key() {
                versions.push((v, false));
            }
        }
        versions.push((t, false));
        let mut hops = Vec::new();
        let mut prev = (from.to_string(), f);
        let last = versions.len() - 1;
        for (i, (v, detour)) in versions.into_iter().enumerate() {
            // The last hop keeps the version exactly as the operator wrote it.
            let text = if i == last {
                to.to_string()
            } else {
                v.to_string()
            };
            hops.push(self.hop(&prev.0, &prev.1, &text, &v, detour)?);
            prev = (text, v);
        }
        Ok(hops)
    }

    fn hop(
        &self,
        from_text: &str,
        from: &Version,
        to_text: &str,
        to: &Version,
        detour: bool,
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
