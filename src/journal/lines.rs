//! A journal's lines, read a large block at a time and handed out in place: no copy of each
//! line into a buffer of its own (what `BufRead::read_until` costs per line), one scan for its
//! newline.

use std::io::{ErrorKind, Read};

/// Bytes read from the file at a time; the buffer grows past it only for a longer line.
const BLOCK: usize = 1 << 18;

/// Lines of `R`, each with its newline (a last line may have none: see [`Line::complete`]).
pub(super) struct Lines<R> {
    src: R,
    buf: Vec<u8>,
    /// `buf[start..end]` is read and not yet handed out.
    start: usize,
    end: usize,
    /// `buf[start..scanned]` holds no newline.
    scanned: usize,
    eof: bool,
}

/// One line as read.
pub(super) struct Line<'a> {
    /// The line's bytes, its newline included if it has one.
    pub bytes: &'a [u8],
    /// Nothing follows it in the file (as far as the file went when it was read).
    pub last: bool,
}

impl Line<'_> {
    /// Whether the line ends in its newline (a last line without one was being written when
    /// the writer died).
    pub fn complete(&self) -> bool {
        self.bytes.last() == Some(&b'\n')
    }

    /// Its length in the file.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
}

impl<R: Read> Lines<R> {
    pub fn new(src: R) -> Self {
        Lines {
            src,
            buf: vec![0; BLOCK],
            start: 0,
            end: 0,
            scanned: 0,
            eof: false,
        }
    }

    /// The next line, or `None` at the end of the file.
    pub fn next_line(&mut self) -> std::io::Result<Option<Line<'_>>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.scanned..self.end]) {
                let stop = self.scanned + i + 1;
                // Whether it is the last line is known before it is handed out: read on
                // first if the block ends with it.
                if stop == self.end && !self.eof {
                    self.scanned = stop - 1;
                    self.fill()?;
                    continue;
                }
                let from = std::mem::replace(&mut self.start, stop);
                self.scanned = stop;
                return Ok(Some(Line {
                    bytes: &self.buf[from..stop],
                    last: stop == self.end && self.eof,
                }));
            }
            self.scanned = self.end;
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let from = std::mem::replace(&mut self.start, self.end);
                return Ok(Some(Line {
                    bytes: &self.buf[from..self.end],
                    last: true,
                }));
            }
            self.fill()?;
        }
    }

    /// Read more: the part not handed out moves to the buffer's start, which grows if that part
    /// fills it (a line longer than a block).
    fn fill(&mut self) -> std::io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len().saturating_mul(2), 0);
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per read, to cross every boundary.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn all(data: &[u8], step: usize) -> Vec<(Vec<u8>, bool)> {
        let mut lines = Lines::new(Trickle { data, step });
        let mut out: Vec<(Vec<u8>, bool)> = Vec::new();
        let mut was_last = false;
        while let Some(l) = lines.next_line().unwrap() {
            assert!(!was_last, "a line after the last");
            was_last = l.last;
            out.push((l.bytes.to_vec(), l.complete()));
        }
        assert_eq!(was_last, !out.is_empty(), "the last line says so");
        out
    }

    #[test]
    fn lines_come_out_whole_whatever_the_reads_and_however_long() {
        let long = vec![b'x'; BLOCK * 2 + 7];
        let mut data = b"a\n\nbc\n".to_vec();
        data.extend_from_slice(&long);
        data.extend_from_slice(b"\ntail");
        let mut want_long = long.clone();
        want_long.push(b'\n');
        let want = vec![
            (b"a\n".to_vec(), true),
            (b"\n".to_vec(), true),
            (b"bc\n".to_vec(), true),
            (want_long, true),
            (b"tail".to_vec(), false),
        ];
        for step in [1, 3, 4096, usize::MAX] {
            assert_eq!(all(&data, step), want, "reads of {step}");
        }
        assert_eq!(all(b"", 1), vec![]);
        assert_eq!(all(b"one\n", 2), vec![(b"one\n".to_vec(), true)]);
    }

    #[test]
    fn only_the_last_line_says_it_is_last() {
        for step in [1, 2, 3, 100] {
            let mut lines = Lines::new(Trickle {
                data: b"a\nb\n",
                step,
            });
            assert!(!lines.next_line().unwrap().unwrap().last, "{step}");
            assert!(lines.next_line().unwrap().unwrap().last, "{step}");
            assert!(lines.next_line().unwrap().is_none(), "{step}");
        }
    }
}
