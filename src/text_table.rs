//! Plain-text tables for the terminal (`flightdeck journals`, `flightdeck sessions`): columns
//! padded to their widest cell, two spaces apart, no trailing blanks.

/// `rows` (the header first) as aligned lines, each ending in a newline. Cells hold words
/// read from journals and session files (procedure, target, operator names): each goes on
/// one line without escape sequences (`terminal_text::one_line`) before it is measured.
pub fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let rows: Vec<[String; N]> = rows
        .iter()
        .map(|row| {
            row.clone()
                .map(|c| crate::terminal_text::one_line(&c).into_owned())
        })
        .collect();
    let mut widths = [0usize; N];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn cells_line_up_and_lines_end_without_blanks() {
        let rows = [
            ["A".to_string(), "LONG HEADER".into(), "C".into()],
            ["wider".to_string(), "x".into(), "".into()],
        ];
        assert_eq!(super::columns(&rows), "A      LONG HEADER  C\nwider  x\n");
    }

    #[test]
    fn a_cell_cannot_carry_an_escape_or_break_its_line() {
        let rows = [
            ["A".to_string(), "B".into()],
            [
                "\u{1b}]0;t\u{7}x\u{1b}[31m".to_string(),
                "two\nlines".into(),
            ],
        ];
        assert_eq!(super::columns(&rows), "A  B\nx  two lines\n");
    }
}
