//! Text from outside (command output, product answers, procedure and target files, what
//! operators type) as a terminal may show it: no escape sequence of it reaches the operator's
//! terminal, where an OSC could set the window title or the clipboard, a CSI move the cursor
//! over what flightdeck wrote. The cockpit and the headless log clean alike.

use std::borrow::Cow;

/// Text as a terminal should show it: colour and cursor escapes removed, tabs as spaces, and
/// for a line redrawn with `\r` (progress bars) only its last state.
pub fn clean(s: Cow<'_, str>) -> Cow<'_, str> {
    if !s.contains(|c: char| c.is_control()) {
        return s;
    }
    let last = s.rsplit('\r').find(|part| !part.is_empty()).unwrap_or("");
    let mut out = String::with_capacity(last.len());
    let mut chars = last.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.peek() {
                // CSI: parameters and intermediates up to a final byte in @..~.
                Some('[') => {
                    chars.next();
                    for d in chars.by_ref() {
                        if ('@'..='~').contains(&d) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ESC \.
                Some(']') => {
                    chars.next();
                    while let Some(d) = chars.next() {
                        if d == '\u{7}' {
                            break;
                        }
                        if d == '\u{1b}' {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {
                    chars.next();
                }
            },
            '\t' => out.push_str("    "),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`clean`] for text printed as one line among others (the headless log): line breaks and
/// carriage returns become spaces, so nothing before them is lost and no line is forged.
pub fn one_line(s: &str) -> Cow<'_, str> {
    if !s.contains(|c: char| c.is_control()) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(clean(Cow::Owned(s.replace(['\r', '\n'], " "))).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_removed_and_text_kept() {
        let osc = "\u{1b}]0;owned\u{7}title \u{1b}]52;c;aGk=\u{1b}\\done";
        assert_eq!(clean(osc.into()), "title done");
        assert_eq!(clean("\u{1b}[31mred\u{1b}[0m \u{1b}[2J".into()), "red ");
        assert_eq!(clean("10%\r50%\r".into()), "50%");
        assert_eq!(one_line("a\rb\nc\u{1b}[1m!"), "a b c!");
        assert!(matches!(one_line("plain"), Cow::Borrowed("plain")));
    }
}
