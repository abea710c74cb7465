//! Who an operator is. The kernel says so — the peer uid of a pairing connection
//! (SO_PEERCRED), or this process's uid for an in-process cockpit — never the client: the
//! label a client chooses (`join --as carol`) is only a display name. The journal, the report
//! and the two-person rule use the identity.

use serde::{Deserialize, Serialize};
use unicode_width::UnicodeWidthChar;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub uid: u32,
    /// The uid's login name per the password database, else `uid N`.
    pub user: String,
}

impl Identity {
    /// The identity of `uid`, named from the password database.
    pub fn of_uid(uid: u32) -> Identity {
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| format!("uid {uid}"));
        Identity { uid, user }
    }

    /// Whoever runs this process.
    pub fn current() -> Identity {
        Identity::of_uid(nix::unistd::getuid().as_raw())
    }

    /// `check_label`, except for the user's own name: that one is the kernel's (named from the
    /// password database, like `user`), and shows as is.
    pub fn check_label(&self, label: &str) -> Result<(), String> {
        if label.trim() == self.user {
            return Ok(());
        }
        check_label(label)
    }

    /// How the operator shows in the session: the label when it is the user's own name (or
    /// `user@host`, a host name's characters only), else the label followed by the real user,
    /// so nobody can pass for someone else even on screen: bob's `bob@x (alice)` would read as
    /// the label `bob@x` of alice, so it shows as `bob@x (alice) (bob)` — and a joining
    /// client's label with a parenthesis, or anything else outside `check_label`'s allow-list,
    /// is refused before that.
    pub fn display(&self, label: &str) -> String {
        let label = label.trim();
        if label.is_empty() || label == self.user {
            return self.user.clone();
        }
        let own_host = label
            .strip_prefix(self.user.as_str())
            .and_then(|rest| rest.strip_prefix('@'))
            .is_some_and(|host| {
                !host.is_empty()
                    && host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
            });
        if own_host {
            return label.to_string();
        }
        format!("{label} ({})", self.user)
    }
}

/// Longest label, in characters. A label shows in every operator's cockpit, on the header's
/// second line as `driver <label> (<user>)` beside the others, in a cockpit at least 80
/// columns wide (`tui::render::MIN_WIDTH`): 32 characters is as long as a login name made by
/// `useradd` may be (shadow-utils, useradd(8) CAVEATS: "Usernames may only be up to 32
/// characters long"), and takes at most 64 of those columns even in a script whose letters
/// are two columns wide.
pub const MAX_LABEL_CHARS: usize = 32;

/// The punctuation a label may have besides letters and digits: the space of a full name
/// (`Carol Smith`), `'` (`O'Brien`), and what user and host names and mail addresses use
/// (`alice@db-1.example`, `alice_b`, `alice+oncall`). Nothing that reads as a bracket, a
/// quote around someone else's name, or a separator of the `label (user)` form.
const LABEL_PUNCTUATION: &str = " -_.@+'";

/// Letters (per Unicode) that draw nothing: the Hangul fillers, default-ignorable code points
/// a label of blanks could be made of.
const INVISIBLE_LETTERS: [char; 4] = ['\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}'];

/// Marks of no width (an Arabic vowel, a Devanagari vowel sign) allowed in a row on one
/// letter: two covers a shadda with its vowel; more would stack over the lines around it.
const MAX_MARKS_IN_A_ROW: usize = 2;

/// What a label may be, for a refusal.
fn allowed() -> String {
    format!(
        "a label may have letters and digits of any script, spaces and `-` `_` `.` `@` `+` \
         `'`, at most {MAX_LABEL_CHARS} characters"
    )
}

/// Digits and letters drawn inside a bracket or a circle (`⑴`, `⒜`, `㈠`, `🄐`): Unicode
/// counts some of them as numbers, but a label of them draws brackets. The Enclosed
/// Alphanumerics, Enclosed CJK Letters and Months, and Enclosed Alphanumeric Supplement
/// blocks (Unicode 15, chapter 22.10), and the Dingbats' circled digits (`❶`, `➀`, `➊`).
fn enclosed(c: char) -> bool {
    matches!(
        c,
        '\u{2460}'..='\u{24ff}'
            | '\u{2776}'..='\u{2793}'
            | '\u{3200}'..='\u{32ff}'
            | '\u{1f100}'..='\u{1f1ff}'
    )
}

/// A character named so that a reader sees which it is, even one that draws nothing.
fn named(c: char) -> String {
    format!("{c:?} (U+{:04X})", u32::from(c))
}

/// Whether `label` may show as an operator's name: an allow-list, so that what a reviewer
/// reads here is all a label can hold. It shows in every operator's cockpit and in the
/// journal (in each decision's `by`), next to the kernel's user name (`label (user)`), so:
/// - letters and digits of any script (`char::is_alphanumeric`: a name in Hangul, Greek or
///   Arabic is a name), and the punctuation of `LABEL_PUNCTUATION`. This leaves out every
///   look-alike bracket (full-width `（ ）`, small `﹙ ﹚`, superscript `⁽ ⁾`, ornate `❨ ❩`:
///   none is a letter or a digit) with which `bob （alice）` could pass for alice's label, every
///   control and format character (bidi overrides and isolates, zero-width spaces and
///   joiners, the byte-order mark: they reorder or hide what a cockpit shows), and combining
///   marks that are not letters (U+0301 of decomposed text; the Devanagari virama too, so
///   such a name is typed in a form without one or transliterated);
/// - no letter that draws nothing (`INVISIBLE_LETTERS`);
/// - marks of no width that Unicode counts as letters (an Arabic vowel) only on a letter,
///   at most `MAX_MARKS_IN_A_ROW` in a row, so they cannot stack over the lines around;
/// - at most `MAX_LABEL_CHARS` characters.
///
/// `label` is as the client sent it; the session shows it trimmed (`Identity::display`).
pub fn check_label(label: &str) -> Result<(), String> {
    let label = label.trim();
    let chars = label.chars().count();
    if chars > MAX_LABEL_CHARS {
        return Err(format!(
            "the label is {chars} characters long; {}",
            allowed()
        ));
    }
    if label.contains(['(', ')']) {
        return Err(format!(
            "the label {label:?} has a parenthesis: an operator shows as `label (user)`, so \
             {}",
            allowed()
        ));
    }
    // A run of spaces could push the `(user)` after a label off the end of a cockpit's line
    // (the footer cuts what does not fit): `alice` and 25 spaces would read as alice.
    if label.contains("  ") {
        return Err(format!(
            "the label {label:?} has two spaces in a row; {}",
            allowed()
        ));
    }
    // Marks of no width in a row since the last letter or digit that has a width (None: the
    // last character was punctuation, or there was none yet).
    let mut marks: Option<usize> = None;
    for (i, c) in label.chars().enumerate() {
        let what = if !(c.is_alphanumeric() || LABEL_PUNCTUATION.contains(c)) || enclosed(c) {
            Some("has the character")
        } else if INVISIBLE_LETTERS.contains(&c) {
            Some("has a letter that draws nothing,")
        } else if !c.is_alphanumeric() {
            marks = None;
            None
        } else if c.width() == Some(0) {
            marks = marks.map(|m| m + 1).filter(|m| *m <= MAX_MARKS_IN_A_ROW);
            marks.is_none().then_some(
                "has a mark of no width that is not on a letter (or one of too many on it):",
            )
        } else {
            marks = Some(0);
            None
        };
        if let Some(what) = what {
            return Err(format!(
                "the label {label:?} {what} {} at character {}; {}",
                named(c),
                i + 1,
                allowed()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_never_hides_the_real_user() {
        let alice = Identity {
            uid: 1000,
            user: "alice".into(),
        };
        assert_eq!(alice.display(""), "alice");
        assert_eq!(alice.display("alice"), "alice");
        assert_eq!(alice.display("alice@laptop"), "alice@laptop");
        assert_eq!(alice.display("carol"), "carol (alice)");
        assert_eq!(alice.display("bob@laptop"), "bob@laptop (alice)");
        assert_eq!(alice.display("aliceX"), "aliceX (alice)");
        // Before, anything after `alice@` was shown as typed, so alice could pass for bob.
        assert_eq!(alice.display("alice@x (bob)"), "alice@x (bob) (alice)");
        assert_eq!(alice.display("alice@x bob"), "alice@x bob (alice)");
        assert_eq!(alice.display("alice@"), "alice@ (alice)");
        assert_eq!(
            alice.display("alice@db-1.example_2"),
            "alice@db-1.example_2"
        );
    }

    /// The refusal for `label`, which must name `what` and say what a label may have.
    fn refused(label: &str, what: &str) {
        let e = check_label(label).expect_err(label);
        assert!(e.contains(what), "{label:?}: {e}");
        assert!(
            e.contains("letters and digits of any script") && e.contains("at most 32"),
            "{e}"
        );
    }

    #[test]
    fn names_of_any_script_and_their_punctuation_are_labels() {
        for ok in [
            "alice@laptop",
            "Carol Smith",
            "O'Brien",
            "alice_b+oncall",
            "db-1.example",
            "김민수",
            "Σοφία",
            "Zoë Ångström",
            "محمد",
            // Arabic with a shadda and a fatha on one letter: two marks of no width.
            "\u{645}\u{62d}\u{651}\u{64e}\u{645}\u{62f}",
            "अमित",
            "ｂｏｂ",
            "",
            "   ",
        ] {
            assert_eq!(check_label(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(check_label(&"a".repeat(MAX_LABEL_CHARS)), Ok(()));
        // Blanks around are trimmed (as the session shows it), not counted.
        assert_eq!(check_label(&format!(" {} ", "a".repeat(32))), Ok(()));
    }

    #[test]
    fn labels_that_could_pass_for_the_user_form_are_refused() {
        refused("bob@x (alice)", "parenthesis");
        refused("a)", "parenthesis");
        // Look-alike brackets: full-width, small, superscript, subscript, ornate.
        for (l, r) in [
            ('\u{FF08}', '\u{FF09}'),
            ('\u{FE59}', '\u{FE5A}'),
            ('\u{207D}', '\u{207E}'),
            ('\u{208D}', '\u{208E}'),
            ('\u{2768}', '\u{2769}'),
            ('\u{27EE}', '\u{27EF}'),
            ('[', ']'),
        ] {
            refused(
                &format!("bob {l}alice{r}"),
                &format!("(U+{:04X}) at character 5", u32::from(l)),
            );
        }
        // Numbers in brackets (Unicode counts `⑴` as a digit) and letters in brackets.
        refused("bob \u{2474}", "(U+2474) at character 5");
        refused("bob \u{3220}", "(U+3220)");
        refused("bob \u{249C}", "(U+249C)");
        refused("bob \u{2780}", "(U+2780)");
        // Spaces that would push `(user)` off the end of a cockpit's line.
        refused(&format!("alice{}.", " ".repeat(25)), "two spaces in a row");
        refused("bob \"alice\"", "'\"' (U+0022)");
        refused("bob/alice", "U+002F");
    }

    #[test]
    fn control_and_format_characters_are_refused() {
        refused("a\u{1b}[2J", "'\\u{1b}' (U+001B) at character 2");
        refused("a\tb", "U+0009");
        // A right-to-left override would show `bob ecila` as `bob alice` reversed...
        refused("bob \u{202E}ecila", "'\\u{202e}' (U+202E) at character 5");
        for c in [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{2066}', '\u{2067}', '\u{2068}',
            '\u{2069}', '\u{200B}', '\u{200C}', '\u{200D}', '\u{200E}', '\u{200F}', '\u{2060}',
            '\u{FEFF}', '\u{00AD}', '\u{00A0}', '\u{3000}',
        ] {
            refused(&format!("bo{c}b"), &format!("(U+{:04X})", u32::from(c)));
        }
        // The refusal names the character escaped: it never paints or hides anything itself.
        let e = check_label("x\u{202E}y").unwrap_err();
        assert!(!e.contains('\u{202E}'), "{e}");
    }

    #[test]
    fn marks_cannot_stack_and_letters_cannot_vanish() {
        // Combining accents are not letters: decomposed `é` is refused (its composed form is not).
        refused("Zoe\u{0301}", "U+0301");
        // Marks Unicode counts as letters, of no width: at most two on a letter...
        refused(&format!("a{}", "\u{0345}".repeat(3)), "at character 4");
        refused("\u{064E}a", "not on a letter");
        refused("a \u{064E}", "not on a letter");
        // ...and letters that draw nothing.
        for c in INVISIBLE_LETTERS {
            refused(&format!("bob{c}"), "draws nothing");
        }
    }

    #[test]
    fn a_label_is_at_most_a_login_name_long() {
        refused(&"a".repeat(MAX_LABEL_CHARS + 1), "33 characters long");
        refused(&"김".repeat(MAX_LABEL_CHARS + 1), "33 characters long");
    }

    #[test]
    fn the_user_s_own_name_is_the_kernel_s_and_passes_as_it_is() {
        let corp = Identity {
            uid: 1000,
            user: "CORP\\alice".into(),
        };
        assert_eq!(corp.check_label("CORP\\alice"), Ok(()));
        assert!(corp.check_label("CORP\\bob").is_err());
        assert!(corp.check_label("bob (alice)").is_err());
    }

    #[test]
    fn root_is_named_from_the_password_database() {
        assert_eq!(Identity::of_uid(0).user, "root");
        assert_eq!(Identity::of_uid(4_000_000_000).user, "uid 4000000000");
    }
}
