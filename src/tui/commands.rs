//! The `:` command line's commands, in one table: the parser (`input::command_line`) looks a
//! typed word up here, and the `?` help, the command line's own hint, the unknown-command
//! message and `docs/cockpit.txt` are all drawn from it, so none of them can miss a command.

/// One command of the `:` command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCommand {
    /// The word typed after `:`.
    pub name: &'static str,
    /// Shorter words for it.
    pub aliases: &'static [&'static str],
    /// What follows the word, as the usage shows it; empty when nothing does.
    pub args: &'static str,
    /// What it does (the docs' words).
    pub what: &'static str,
}

impl LineCommand {
    /// `note TEXT`, `undo`.
    pub fn usage(&self) -> String {
        if self.args.is_empty() {
            self.name.to_string()
        } else {
            format!("{} {}", self.name, self.args)
        }
    }
}

/// Every command, in the order the help lists them.
pub const COMMANDS: &[LineCommand] = &[
    LineCommand {
        name: "note",
        aliases: &["n"],
        args: "TEXT",
        what: "write a note in the journal",
    },
    LineCommand {
        name: "undo",
        aliases: &["u"],
        args: "",
        what: "undo the latest completed step (driver; asks first)",
    },
    LineCommand {
        name: "abort",
        aliases: &["a"],
        args: "",
        what: "abort: roll back or keep as is (driver; asks first)",
    },
    LineCommand {
        name: "theme",
        aliases: &[],
        args: "NAME",
        what: "switch theme: dark, light, high-contrast, mono or a file",
    },
    LineCommand {
        name: "step",
        aliases: &["s"],
        args: "N",
        what: "show step N in the detail panel",
    },
    LineCommand {
        name: "override",
        aliases: &[],
        args: "GUARD for NODE -- REASON",
        what: "let the step a guard refused through, once (driver; journaled with your user)",
    },
    LineCommand {
        name: "help",
        aliases: &["h", "?"],
        args: "",
        what: "this help",
    },
    LineCommand {
        name: "quit",
        aliases: &["q"],
        args: "",
        what: "leave, as q does",
    },
];

/// The command a typed word names (its name or an alias).
pub fn find(word: &str) -> Option<&'static LineCommand> {
    COMMANDS
        .iter()
        .find(|c| c.name == word || c.aliases.contains(&word))
}

/// Every usage joined by `sep`: `note TEXT · undo · ...`.
pub fn usages(sep: &str) -> String {
    COMMANDS
        .iter()
        .map(LineCommand::usage)
        .collect::<Vec<_>>()
        .join(sep)
}

/// Items joined by `sep` and packed into lines of at most `width` characters (an item longer
/// than that gets a line of its own).
pub fn pack(items: impl IntoIterator<Item = String>, sep: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for item in items {
        match lines.last_mut() {
            Some(l) if l.chars().count() + sep.chars().count() + item.chars().count() <= width => {
                l.push_str(sep);
                l.push_str(&item);
            }
            _ => lines.push(item),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_are_unique() {
        let mut words: Vec<&str> = COMMANDS
            .iter()
            .flat_map(|c| std::iter::once(c.name).chain(c.aliases.iter().copied()))
            .collect();
        let n = words.len();
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), n, "{words:?}");
    }

    #[test]
    fn pack_fills_lines_up_to_the_width() {
        let items = [
            "note TEXT",
            "undo",
            "abort",
            "override GUARD for NODE -- REASON",
        ];
        assert_eq!(
            pack(items.map(String::from), " · ", 24),
            [
                "note TEXT · undo · abort",
                "override GUARD for NODE -- REASON"
            ]
        );
    }
}
