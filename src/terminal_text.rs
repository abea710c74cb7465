//! Text from outside (command output, product answers, procedure and target files, what
//! operators type) as a terminal or a Markdown file may show it: no escape sequence of it
//! reaches the operator's terminal, where an OSC could set the window title or the clipboard,
//! a CSI move the cursor over what flightdeck wrote; and none of its invisible payload (a
//! title, a hyperlink's URL) lands in a report as if it were text. The cockpit, the headless
//! log, the Markdown report and the CLI's messages all clean with [`strip`].

use std::borrow::Cow;

/// The controls [`strip`] leaves for each sink to treat its own way: line feed, carriage
/// return, tab.
const KEPT: [char; 3] = ['\n', '\r', '\t'];

/// Characters that draw nothing and yet change what a line shows: Unicode's bidi controls
/// (embeddings, overrides, isolates, the marks; UAX #9 table 4), which make a terminal that
/// applies bidi (VTE, Konsole) show text in another order than the journal holds it, and the
/// zero-width space, word joiner, invisible operators and byte-order mark, which hide text
/// inside text. The zero-width joiner and non-joiner stay: emoji sequences and Persian words
/// need them, and they reorder nothing.
fn hidden(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{200b}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
    )
}

/// Whether [`strip`] has anything to take out of a text containing `c`.
fn to_strip(c: char) -> bool {
    c.is_control() || hidden(c)
}

/// `s` without its escape sequences and without control characters other than line feed,
/// carriage return and tab. Sequences go whole, per ECMA-48: a CSI (`ESC [` or U+009B) up to
/// its final byte; an OSC, DCS, SOS, PM or APC string (`ESC ]`, `ESC P`, `ESC X`, `ESC ^`,
/// `ESC _` or their C1 forms) up to BEL or ST (`ESC \` or U+009C), its payload included;
/// any other `ESC` with the byte after it (`ESC c`, `ESC 7`); then the remaining C0 and C1
/// controls and DEL, and the characters that reorder or hide text without drawing anything
/// (bidi controls, zero-width space; see `hidden`). The parsing is `anstream`'s (the VT500 state machine of `vte`, kept
/// for clap), fed the C1 controls in their 7-bit form.
///
/// An unterminated string (an OSC whose BEL never comes, or one cut by a length cap) is
/// dropped up to the end of its line, not further: each line is parsed from the ground state.
/// A terminal would have hidden the same text, so showing it would show what the product
/// did not mean to be read; and a line is where the loss stops, so one stray `ESC ]` cannot
/// silently hide the rest of a body, a log or a report.
pub fn strip(s: &str) -> Cow<'_, str> {
    if !s.contains(to_strip) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for piece in anstream::adapter::strip_str(&seven_bit(line)) {
            // The parser keeps ASCII whitespace controls (form feed too) for its callers.
            out.extend(piece.chars().filter(|&c| !to_strip(c) || KEPT.contains(&c)));
        }
    }
    Cow::Owned(out)
}

/// C1 controls (U+0080..U+009F) in their 7-bit form, `ESC` and the byte 0x40 below (ECMA-48
/// 5.3): U+009B CSI is `ESC [`, U+009D OSC `ESC ]`, U+009C ST `ESC \`. The parser reads UTF-8,
/// where they are ordinary characters to it, while some terminals act on them.
fn seven_bit(s: &str) -> Cow<'_, str> {
    let is_c1 = |c: char| ('\u{80}'..='\u{9f}').contains(&c);
    if !s.contains(is_c1) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match u8::try_from(c) {
            Ok(b @ 0x80..=0x9f) => {
                out.push('\u{1b}');
                out.push(char::from(b - 0x40));
            }
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Text as a terminal should show it on one line of a pane: escapes removed ([`strip`]), tabs
/// as spaces, a line break as a space, and for a line redrawn with `\r` (progress bars) only
/// its last state.
pub fn clean(s: Cow<'_, str>) -> Cow<'_, str> {
    if !s.contains(to_strip) {
        return s;
    }
    let stripped = strip(&s);
    let last = stripped
        .rsplit('\r')
        .find(|part| !part.is_empty())
        .unwrap_or("");
    Cow::Owned(last.replace('\t', "    ").replace('\n', " "))
}

/// [`strip`] for text printed as one line among others (the headless log): line breaks and
/// carriage returns become spaces, so nothing before them is lost and no line is forged.
pub fn one_line(s: &str) -> Cow<'_, str> {
    if !s.contains(to_strip) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(strip(s).replace(['\r', '\n'], " ").replace('\t', "    "))
}

/// [`strip`] for a message of several lines (an error on stderr, a listing on stdout): line
/// breaks and tabs stay; a carriage return that is not part of a CRLF becomes a space, so no
/// later text overwrites an earlier part of its line.
pub fn lines(s: &str) -> Cow<'_, str> {
    if !s.contains(to_strip) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(strip(s).replace("\r\n", "\n").replace('\r', " "))
}

/// `eprintln!` for a message that may quote outside text (a product's answer in an error, a
/// journal's or a file's words): the formatted message goes through [`lines`].
#[macro_export]
macro_rules! eprintln_clean {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::terminal_text::lines(&format!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_go_whole_and_text_around_them_stays() {
        let cases: &[(&str, &str, &str)] = &[
            ("CSI colour", "é\u{1b}[1;31mrouge\u{1b}[0m ü", "érouge ü"),
            ("CSI cursor", "a\u{1b}[2J\u{1b}[10;20Hb", "ab"),
            ("CSI private", "\u{1b}[?1049hvoilà", "voilà"),
            ("OSC title, BEL", "à\u{1b}]0;pwned title\u{7}ß", "àß"),
            ("OSC title, ST", "x\u{1b}]2;pwned\u{1b}\\y", "xy"),
            (
                "OSC 8 hyperlink",
                "see \u{1b}]8;;https://evil.example/\u{1b}\\the docs\u{1b}]8;;\u{1b}\\ ✓",
                "see the docs ✓",
            ),
            ("OSC 52 clipboard", "\u{1b}]52;c;cm0gLXJmIH4=\u{7}ok", "ok"),
            ("DCS", "a\u{1b}P1$r0m\u{1b}\\b", "ab"),
            ("APC", "a\u{1b}_Gf=100;AAAA\u{1b}\\b", "ab"),
            (
                "PM and SOS",
                "a\u{1b}^private\u{1b}\\b\u{1b}Xsos\u{1b}\\c",
                "abc",
            ),
            ("C1 CSI", "a\u{9b}31mred\u{9b}0m", "ared"),
            ("C1 OSC ended by C1 ST", "a\u{9d}0;title\u{9c}b", "ab"),
            ("C1 DCS", "a\u{90}payload\u{9c}b", "ab"),
            ("lone C1", "a\u{85}b\u{8d}c", "abc"),
            ("ESC c reset", "a\u{1b}cb", "ab"),
            ("ESC 7 / ESC 8", "\u{1b}7a\u{1b}8b", "ab"),
            ("charset", "\u{1b}(Bplain", "plain"),
            (
                "other C0 and DEL",
                "a\u{7}b\u{8}c\u{0}d\u{7f}e\u{c}f",
                "abcdef",
            ),
            (
                "unterminated OSC",
                "ok \u{1b}]0;never ended and more",
                "ok ",
            ),
            (
                "unterminated OSC stops at its line",
                "a\u{1b}]0;cut\nnext line",
                "a\nnext line",
            ),
            ("lone ESC at the end", "end\u{1b}", "end"),
            ("kept controls", "a\tb\r\nc", "a\tb\r\nc"),
            ("CJK and emoji", "日本\u{1b}[32m語\u{1b}[m 🐻‍❄️", "日本語 🐻‍❄️"),
            (
                "bidi override",
                "ok \u{202e}txt.exe\u{202c} done",
                "ok txt.exe done",
            ),
            (
                "bidi isolates and marks",
                "\u{2067}a\u{2069}\u{200f}b\u{200e}\u{61c}c",
                "abc",
            ),
            (
                "zero-width space, word joiner, BOM",
                "pa\u{200b}ss\u{2060}wd\u{feff}",
                "passwd",
            ),
            (
                "ZWNJ and ZWJ stay",
                "می\u{200c}خواهم 👩\u{200d}💻",
                "می\u{200c}خواهم 👩\u{200d}💻",
            ),
        ];
        for (what, input, want) in cases {
            assert_eq!(strip(input), *want, "{what}: {input:?}");
        }
        assert!(matches!(strip("plain ✓"), Cow::Borrowed("plain ✓")));
    }

    #[test]
    fn each_sink_treats_line_breaks_its_way() {
        let osc = "\u{1b}]0;owned\u{7}title \u{1b}]52;c;aGk=\u{1b}\\done";
        assert_eq!(clean(osc.into()), "title done");
        assert_eq!(clean("\u{1b}[31mred\u{1b}[0m \u{1b}[2J".into()), "red ");
        assert_eq!(clean("10%\r50%\r".into()), "50%");
        assert_eq!(clean("a\tb".into()), "a    b");
        assert_eq!(one_line("a\rb\nc\u{1b}[1m!"), "a b c!");
        assert!(matches!(one_line("plain"), Cow::Borrowed("plain")));
        assert_eq!(lines("a\r\nb\rc\n\u{9b}2Jd"), "a\nb c\nd");
    }
}
