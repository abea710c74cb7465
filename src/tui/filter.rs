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

    /// Whether `hay` shows the filter's text. Every line of the output and probe panes goes
    /// through here on every frame, so nothing is allocated: `hay` is compared case-folded
    /// as it is read, never lower-cased whole.
    pub fn matches(&self, hay: &str) -> bool {
        match &self.lower {
            None => hay.contains(self.needle),
            Some(lower) => contains_folded(hay, lower),
        }
    }

    /// Whether any of `parts` shows it.
    pub fn matches_any(&self, parts: &[&str]) -> bool {
        parts.iter().any(|p| self.matches(p))
    }
}

/// Whether `hay`, lower-cased, contains `lower` (itself lower case), without lower-casing
/// `hay` into a new string.
fn contains_folded(hay: &str, lower: &str) -> bool {
    if lower.is_empty() {
        return true;
    }
    if hay.is_ascii() && lower.is_ascii() {
        let needle = lower.as_bytes();
        return hay
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle));
    }
    hay.char_indices().any(|(i, _)| {
        let mut folded = hay[i..].chars().flat_map(char::to_lowercase);
        lower.chars().all(|c| folded.next() == Some(c))
    })
}

#[cfg(test)]
mod tests {
    use super::{contains_folded, Filter};

    #[test]
    fn folded_search_agrees_with_lower_casing_the_line() {
        let hays = [
            "FAIL 1001ms",
            "Store Migration FAILED on node-7",
            "Größe ÜBER Straße",
            "ΣΊΣΥΦΟΣ",
            "",
            "ok",
        ];
        let needles = [
            "fail",
            "migration f",
            "über",
            "straße",
            "σίσ",
            "k",
            "x",
            "node-7",
        ];
        for hay in hays {
            for needle in needles {
                assert_eq!(
                    contains_folded(hay, needle),
                    hay.to_lowercase().contains(needle),
                    "{hay:?} / {needle:?}"
                );
            }
        }
    }

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
