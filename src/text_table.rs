//! Plain-text tables for the terminal (`flightdeck journals`, `flightdeck sessions`): columns
//! padded to their widest cell, two spaces apart, no trailing blanks.

/// `rows` (the header first) as aligned lines, each ending in a newline.
pub fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
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
}
