//! Secrets masked in output that arrives a read at a time (a child's pipe), before anything
//! cuts it into lines or pieces. Masking each read, line or piece on its own lets a secret
//! through in parts: one the child wrote in two writes, one across a piece of a long line,
//! or a run of overlapping occurrences (`abab` in `ababab…`) longer than any piece.
//!
//! The stream is masked as a whole while holding back only what could still become a
//! secret: the longest end of what was read that begins one (less than the longest secret;
//! usually nothing, so a line is passed on as soon as it is read). Every byte given out is
//! then final: an occurrence that covers it began before the held end, so it had arrived
//! whole and was found. A run of occurrences that goes on past what is given out is
//! remembered (`covered`), so its rest is masked as the same run when the next read comes.

use super::strings::{mask_spans, merge_spans, Secrets};

/// A stream of output being masked; see the module.
pub struct MaskedStream<'a> {
    secrets: &'a Secrets,
    /// Read and not given out yet: after each `push`, at most the longest secret's length
    /// less one.
    held: Vec<u8>,
    /// How many bytes at the start of `held` lie in a mask already given out: the run of
    /// secrets it stands for went on past what was given out.
    covered: usize,
    /// What was given out ends in a mask: a secret that starts right where it ended goes on
    /// the same run (one mask, as `Secrets::redact` makes of secrets that touch).
    open: bool,
}

impl<'a> MaskedStream<'a> {
    pub fn new(secrets: &'a Secrets) -> Self {
        MaskedStream {
            secrets,
            held: Vec::new(),
            covered: 0,
            open: false,
        }
    }

    /// Take in what was read; give out, masked, all of it that no later read can change.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.held.extend_from_slice(bytes);
        let open = self.secrets.unfinished(&self.held);
        self.give(self.held.len().saturating_sub(open))
    }

    /// The stream ended: what is held, masked. (An end that only begins a secret is not one:
    /// the child never said it whole.)
    pub fn finish(&mut self) -> Vec<u8> {
        self.give(self.held.len())
    }

    /// Give out the first `upto` bytes held, masked.
    fn give(&mut self, upto: usize) -> Vec<u8> {
        if upto == 0 {
            return Vec::new();
        }
        let mut spans = self.secrets.spans(&self.held);
        if self.covered > 0 {
            spans.push((0, self.covered));
            spans = merge_spans(spans);
        }
        // Runs that start in what is given out are masked there, whole, however far past it
        // they go; runs that start later wait with the bytes they cover.
        let given: Vec<(usize, usize)> = spans.into_iter().take_while(|s| s.0 < upto).collect();
        let out = mask_spans(&self.held[..upto], &given, self.open);
        let reach = given.last().map_or(0, |s| s.1);
        self.held.drain(..upto);
        self.covered = reach.saturating_sub(upto);
        self.open = reach >= upto;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(values: &[&str]) -> Secrets {
        Secrets::of(values)
    }

    /// `input` through a stream fed in reads of the given sizes (the last takes the rest).
    fn through(s: &Secrets, input: &[u8], reads: &[usize]) -> String {
        let mut m = MaskedStream::new(s);
        let mut out = Vec::new();
        let mut rest = input;
        for &n in reads {
            let (now, later) = rest.split_at(n.min(rest.len()));
            out.extend(m.push(now));
            assert!(m.held.len() < 64, "held {} bytes", m.held.len());
            rest = later;
        }
        out.extend(m.push(rest));
        out.extend(m.finish());
        String::from_utf8(out).expect("utf-8 out")
    }

    #[test]
    fn a_secret_written_in_two_parts_is_masked_whole() {
        let s = secrets(&["two-part-secret-41"]);
        let input = b"token two-part-secret-41 ok\n";
        for at in 0..input.len() {
            assert_eq!(
                through(&s, input, &[at]),
                "token **** ok\n",
                "split at {at}"
            );
        }
        // Byte by byte.
        assert_eq!(
            through(&s, input, &[1; 40]),
            "token **** ok\n",
            "one byte a read"
        );
    }

    #[test]
    fn a_run_of_overlapping_secrets_is_one_mask_across_any_read() {
        let s = secrets(&["abab"]);
        let input = format!("x{}y", "ab".repeat(50));
        for at in 0..input.len() {
            for second in [1, 2, 3, 7] {
                assert_eq!(
                    through(&s, input.as_bytes(), &[at, second]),
                    "x****y",
                    "reads of {at} and {second}"
                );
            }
        }
    }

    #[test]
    fn nothing_is_held_that_cannot_begin_a_secret() {
        let s = secrets(&["s3cr3t-v4lue"]);
        let mut m = MaskedStream::new(&s);
        assert_eq!(m.push(b"progress 10%\n"), b"progress 10%\n");
        // `s3c` may begin the secret: it waits.
        assert_eq!(m.push(b"a s3c"), b"a ");
        assert_eq!(m.push(b"ond\n"), b"s3cond\n");
        assert_eq!(m.push(b"end s3cr"), b"end ");
        assert_eq!(m.finish(), b"s3cr");
    }

    #[test]
    fn a_multi_byte_secret_split_inside_a_character_is_masked() {
        let s = secrets(&["pässwört-é"]);
        let input = "[pässwört-é][pässwört-é]".as_bytes();
        for at in 0..input.len() {
            assert_eq!(through(&s, input, &[at]), "[****][****]", "split at {at}");
        }
    }
}
