//! Colours the terminal can show: a theme's 24-bit colours are sent as 24-bit only when the
//! terminal says it takes them (`COLORTERM=truecolor|24bit`), as the nearest of the 256-colour
//! palette when `TERM` says `256color`, and as the nearest of the 16 ANSI colours otherwise —
//! a terminal that does not understand a 24-bit sequence shows garbage or nothing.

use ratatui::style::{Color, Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorDepth {
    Ansi16,
    Indexed256,
    TrueColor,
}

impl ColorDepth {
    /// From the environment's `COLORTERM` and `TERM`.
    pub fn detect(colorterm: Option<&str>, term: Option<&str>) -> ColorDepth {
        let colorterm = colorterm.unwrap_or("").to_ascii_lowercase();
        if colorterm == "truecolor" || colorterm == "24bit" {
            return ColorDepth::TrueColor;
        }
        match term {
            Some(t) if t.contains("256color") || t.contains("direct") => ColorDepth::Indexed256,
            _ => ColorDepth::Ansi16,
        }
    }

    pub fn from_env() -> ColorDepth {
        ColorDepth::detect(
            std::env::var("COLORTERM").ok().as_deref(),
            std::env::var("TERM").ok().as_deref(),
        )
    }

    /// `c` as this depth can show it.
    pub fn color(self, c: Color) -> Color {
        match (self, c) {
            (ColorDepth::TrueColor, _) => c,
            (ColorDepth::Indexed256, Color::Rgb(r, g, b)) => Color::Indexed(to_256(r, g, b)),
            (ColorDepth::Ansi16, Color::Rgb(r, g, b)) => to_16(r, g, b),
            (ColorDepth::Ansi16, Color::Indexed(i)) if i >= 16 => {
                let (r, g, b) = from_256(i);
                to_16(r, g, b)
            }
            _ => c,
        }
    }

    pub fn style(self, s: Style) -> Style {
        Style {
            fg: s.fg.map(|c| self.color(c)),
            bg: s.bg.map(|c| self.color(c)),
            ..s
        }
    }
}

/// The xterm 256-colour cube's levels.
const LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];

fn nearest_level(v: u8) -> usize {
    (0..LEVELS.len())
        .min_by_key(|&i| (i32::from(LEVELS[i]) - i32::from(v)).abs())
        .unwrap_or(0)
}

fn dist(a: (u8, u8, u8), b: (u8, u8, u8)) -> i32 {
    let d = |x: u8, y: u8| (i32::from(x) - i32::from(y)).pow(2);
    d(a.0, b.0) + d(a.1, b.1) + d(a.2, b.2)
}

/// The nearest xterm palette entry: from the 6x6x6 cube or the 24 greys.
fn to_256(r: u8, g: u8, b: u8) -> u8 {
    let (ri, gi, bi) = (nearest_level(r), nearest_level(g), nearest_level(b));
    let cube = (LEVELS[ri], LEVELS[gi], LEVELS[bi]);
    let cube_index = 16 + 36 * ri + 6 * gi + bi;
    let avg = (u16::from(r) + u16::from(g) + u16::from(b)) / 3;
    let grey_step = (avg.saturating_sub(8) / 10).min(23) as u8;
    let grey = 8 + 10 * grey_step;
    if dist((grey, grey, grey), (r, g, b)) < dist(cube, (r, g, b)) {
        232 + grey_step
    } else {
        cube_index as u8
    }
}

/// The colour of xterm palette entry `i` (16..=255).
fn from_256(i: u8) -> (u8, u8, u8) {
    if i >= 232 {
        let v = 8 + 10 * (i - 232);
        return (v, v, v);
    }
    let n = usize::from(i.saturating_sub(16));
    (LEVELS[n / 36 % 6], LEVELS[n / 6 % 6], LEVELS[n % 6])
}

/// The nearest of the 16 ANSI colours (xterm's default values).
fn to_16(r: u8, g: u8, b: u8) -> Color {
    const ANSI: [(Color, (u8, u8, u8)); 16] = [
        (Color::Black, (0, 0, 0)),
        (Color::Red, (205, 0, 0)),
        (Color::Green, (0, 205, 0)),
        (Color::Yellow, (205, 205, 0)),
        (Color::Blue, (0, 0, 238)),
        (Color::Magenta, (205, 0, 205)),
        (Color::Cyan, (0, 205, 205)),
        (Color::Gray, (229, 229, 229)),
        (Color::DarkGray, (127, 127, 127)),
        (Color::LightRed, (255, 0, 0)),
        (Color::LightGreen, (0, 255, 0)),
        (Color::LightYellow, (255, 255, 0)),
        (Color::LightBlue, (92, 92, 255)),
        (Color::LightMagenta, (255, 0, 255)),
        (Color::LightCyan, (0, 255, 255)),
        (Color::White, (255, 255, 255)),
    ];
    ANSI.iter()
        .min_by_key(|(_, rgb)| dist(*rgb, (r, g, b)))
        .map_or(Color::Reset, |(c, _)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_comes_from_colorterm_then_term() {
        assert_eq!(
            ColorDepth::detect(Some("truecolor"), Some("xterm")),
            ColorDepth::TrueColor
        );
        assert_eq!(
            ColorDepth::detect(None, Some("tmux-256color")),
            ColorDepth::Indexed256
        );
        assert_eq!(ColorDepth::detect(None, Some("xterm")), ColorDepth::Ansi16);
        assert_eq!(ColorDepth::detect(None, None), ColorDepth::Ansi16);
    }

    #[test]
    fn rgb_degrades_to_the_nearest_colour_the_terminal_has() {
        let brown = Color::Rgb(0xa0, 0x5a, 0x00);
        assert_eq!(ColorDepth::TrueColor.color(brown), brown);
        assert_eq!(ColorDepth::Indexed256.color(brown), Color::Indexed(130));
        assert_eq!(ColorDepth::Ansi16.color(brown), Color::Red);
        assert_eq!(
            ColorDepth::Indexed256.color(Color::Rgb(0xdd, 0xe4, 0xee)),
            Color::Indexed(254)
        );
        assert_eq!(
            ColorDepth::Ansi16.color(Color::Indexed(196)),
            Color::LightRed
        );
        // Named colours pass unchanged.
        assert_eq!(ColorDepth::Ansi16.color(Color::Blue), Color::Blue);
    }
}
