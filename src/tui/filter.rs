//! The `/` filter over the output and probe panes: a plain substring, smart-case (all
//! lower case matches any case; a capital makes it exact, as in vim's `smartcase` and
//! ripgrep's `-S`), so `fail` finds `FAIL` and `Failed` while `FAIL` finds only the probes'
//! verdict.

/// A filter being applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter<'a> {
    needle: &'a str,
    /// The needle lower-cased, when case does not matter.
    lower: Option<String>,
}

impl<'a> Filter<'a> {
    /// None for an empty (or all-blank) text: nothing is filtered.
    pub fn new(text: &'a str) -> Option<Filter<'a>> {
        let needle = text.trim();
        (!needle.is_empty()).then(|| Filter {
            needle,
            lower: (!needle.chars().any(char::is_uppercase)).then(|| needle.to_lowercase()),
        })
    }

    pub fn text(&self) -> &'a str {
        self.needle
    }

    /// Whether `hay` shows the filter's text.
    pub fn matches(&self, hay: &str) -> bool {
        match &self.lower {
            None => hay.contains(self.needle),
            Some(lower) => hay.to_lowercase().contains(lower.as_str()),
        }
    }

    /// Whether any of `parts` shows it.
    pub fn matches_any(&self, parts: &[&str]) -> bool {
        parts.iter().any(|p| self.matches(p))
    }
}

#[cfg(test)]
mod tests {
    use super::Filter;

    #[test]
    fn lower_case_matches_any_case_and_a_capital_is_exact() {
        let f = Filter::new("fail").unwrap();
        assert!(f.matches("FAIL 1001ms") && f.matches("store migration failed"));
        let f = Filter::new("FAIL").unwrap();
        assert!(f.matches("FAIL 1001ms") && !f.matches("store migration failed"));
        assert!(Filter::new("  ").is_none());
        assert_eq!(Filter::new(" 503 ").map(|f| f.text()), Some("503"));
    }
}
