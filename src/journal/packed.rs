//! The `session_started` line with its static payload packed (journal format 3). That one
//! event carries the whole plan, node list and target, so a journal replays and resumes
//! without its files; even written compactly (format 2, see `compact`) it was two thirds of the
//! default session's first minute of journal (16.8 of 25 KB), most of it prose said once
//! (runbooks, titles, actions, the target's probes) that no JSON layout makes shorter.
//!
//! So those three members — `plan`, `nodes`, `target`, in their compact form — go into one
//! member, `deflated`: one JSON object, deflated (RFC 1951) and base64'd (standard alphabet,
//! padded). Everything else stays plain, so `jq` and `grep` still see where the session starts,
//! who started it and how it confirms:
//!
//! `{"seq":1,"t_ms":2,"type":"session_started","auto":{...},"deflated":"7Vxbc9u4...","health_probes":["health"],"lb":"lab","operator":"ana"}`
//!
//! (about a third of the compact line). The writer checks that its line reads back as the
//! event and writes the compact line otherwise; readers take every form (format 1 in full,
//! format 2 compact, format 3 packed). Every other event stays one plain JSON line.

use std::io::{Read, Write};

use base64::Engine as _;
use serde::de::Error as _;
use serde::Serialize;
use serde_json::{Map, Value};

use super::compact;
use crate::engine::event::{Event, Stamped};

/// The packed members' key.
const KEY: &str = "deflated";

/// What is packed: the members written once that make the line long.
const PACKED: [&str; 3] = ["plan", "nodes", "target"];

/// The most a packed session start may inflate to: far above any plan (a 1,000-node plan is a
/// few MB), so a damaged or hostile line cannot make a reader allocate without bound.
const MAX_INFLATED: u64 = 64 << 20;

/// How many times its packed line a session start may inflate to (at least [`MIN_INFLATED`]).
/// A plan's compact JSON deflates 5–15 times; deflate can reach 1,000 times on repeated text,
/// and parsing what it inflates costs tens of times its size again, so the bound follows the
/// line: a small hostile line cannot cost much more memory than a real one.
const INFLATE_RATIO: u64 = 64;
const MIN_INFLATED: u64 = 1 << 20;

/// The inflate limit for a packed line of `len` bytes.
fn inflate_limit(len: usize) -> u64 {
    (len as u64)
        .saturating_mul(INFLATE_RATIO)
        .clamp(MIN_INFLATED, MAX_INFLATED)
}

/// The journal line of `ev`: a `session_started` packed where that reads back exactly (else
/// compact, else in full), any other event as serde writes it.
pub(super) fn encode(ev: &Stamped) -> Result<String, serde_json::Error> {
    let line = compact::encode(ev)?;
    if !matches!(ev.event, Event::SessionStarted { .. }) {
        return Ok(line);
    }
    match pack(&line) {
        Ok(packed) if decode(&packed).is_ok_and(|back| back == *ev) => Ok(packed),
        _ => Ok(line),
    }
}

/// Read a `session_started` line of any form: packed members are unpacked, compact steps
/// written out again, then the event read as usual.
pub(super) fn decode(line: &str) -> Result<Stamped, serde_json::Error> {
    let mut v: Value = serde_json::from_str(line)?;
    unpack(&mut v, inflate_limit(line.len())).map_err(serde_json::Error::custom)?;
    // The compact steps may grow as a compact line's do, counted from the line as written:
    // counted from what it inflates to, a small packed line could again ask for gigabytes.
    let limit = compact::expansion_limit(line.len());
    compact::expand(&mut v, limit).map_err(serde_json::Error::custom)?;
    serde_json::from_value(v)
}

/// The compact `line` with [`PACKED`] members moved into [`KEY`]; `seq`, `t_ms` and `type`
/// stay first (the journal's index reads them from the line's start).
fn pack(line: &str) -> Result<String, serde_json::Error> {
    #[derive(Serialize)]
    struct Line {
        seq: Value,
        t_ms: Value,
        #[serde(rename = "type")]
        kind: Value,
        #[serde(flatten)]
        rest: Map<String, Value>,
    }
    let mut rest: Map<String, Value> = serde_json::from_str(line)?;
    let mut take = |k: &str| rest.remove(k).unwrap_or(Value::Null);
    let (seq, t_ms, kind) = (take("seq"), take("t_ms"), take("type"));
    let inner: Map<String, Value> = PACKED
        .iter()
        .filter_map(|k| rest.remove(*k).map(|v| (k.to_string(), v)))
        .collect();
    let json = serde_json::to_vec(&inner)?;
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let bytes = z
        .write_all(&json)
        .and_then(|()| z.finish())
        .map_err(|e| serde_json::Error::custom(format!("packing the session start: {e}")))?;
    rest.insert(
        KEY.into(),
        Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
    );
    serde_json::to_string(&Line {
        seq,
        t_ms,
        kind,
        rest,
    })
}

/// Put the members packed in [`KEY`] back into the line's object, inflating at most `limit`
/// bytes; how many it inflated. A line without it passes unchanged (formats 1 and 2). Errors
/// say what is wrong with the packed member.
fn unpack(v: &mut Value, limit: u64) -> Result<usize, String> {
    let Value::Object(obj) = v else {
        return Ok(0);
    };
    let Some(packed) = obj.remove(KEY) else {
        return Ok(0);
    };
    let what = "the packed session start (`deflated`)";
    let Value::String(text) = packed else {
        return Err(format!("{what} is not text"));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .map_err(|e| format!("{what} is not base64: {e}"))?;
    let mut json = Vec::new();
    let mut z = flate2::bufread::DeflateDecoder::new(bytes.as_slice());
    (&mut z)
        .take(limit.saturating_add(1))
        .read_to_end(&mut json)
        .map_err(|e| format!("{what} does not inflate: {e}"))?;
    if json.len() as u64 > limit {
        return Err(format!(
            "{what} inflates past {} KB ({INFLATE_RATIO} times its line, at most {} MB)",
            limit >> 10,
            MAX_INFLATED >> 20
        ));
    }
    // Bytes after the end of the deflate stream are damage too, not padding to ignore.
    if z.total_in() != bytes.len() as u64 {
        return Err(format!(
            "{what} has {} bytes after the end of its deflate stream",
            (bytes.len() as u64).saturating_sub(z.total_in())
        ));
    }
    let inner: Map<String, Value> = serde_json::from_slice(&json)
        .map_err(|e| format!("{what} is not a JSON object once inflated: {e}"))?;
    for (k, x) in inner {
        if obj.contains_key(&k) {
            return Err(format!("{what} holds `{k}`, which the line also has"));
        }
        obj.insert(k, x);
    }
    Ok(json.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deflated(inner: &[u8]) -> String {
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), Default::default());
        z.write_all(inner).expect("deflates");
        base64::engine::general_purpose::STANDARD.encode(z.finish().expect("deflates"))
    }

    /// The session start of a recorded lab session (a format-1 journal: written in full).
    fn recorded_start() -> (String, Stamped) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/lab-cockpit-session.jsonl");
        let text = std::fs::read_to_string(path).expect("fixture reads");
        let line = text.lines().nth(1).expect("a session start").to_string();
        let ev: Stamped = serde_json::from_str(&line).expect("reads");
        (line, ev)
    }

    /// A session start goes out packed — plain stamps and small members, one `deflated`
    /// member — a fraction of its compact size, and reads back as the same event; the full
    /// (format 1) and compact (format 2) lines still read, the same.
    #[test]
    fn a_packed_session_start_reads_back_the_same() {
        let (full, started) = recorded_start();
        assert!(
            matches!(
                &started.event,
                Event::SessionStarted {
                    target: Some(_),
                    ..
                }
            ),
            "the fixture starts a session on a target"
        );
        let line = encode(&started).expect("encodes");
        assert!(
            line.starts_with(&format!(
                r#"{{"seq":{},"t_ms":{},"type":"session_started","#,
                started.seq, started.t_ms
            )),
            "{line}"
        );
        let v: Value = serde_json::from_str(&line).expect("one JSON line");
        assert!(v[KEY].is_string(), "{line}");
        assert!(
            v["operator"].is_string(),
            "small members stay plain: {line}"
        );
        for k in PACKED {
            assert!(v.get(k).is_none(), "{k} is packed: {line}");
        }
        let plain = compact::encode(&started).expect("encodes");
        assert!(
            line.len() * 2 < plain.len(),
            "packed {} bytes, compact {}",
            line.len(),
            plain.len()
        );
        assert_eq!(decode(&line).expect("reads"), started);
        assert_eq!(decode(&plain).expect("reads"), started);
        assert_eq!(decode(&full).expect("reads"), started);
        // Any other event is written as serde writes it.
        let other = Stamped {
            seq: 2,
            t_ms: 5,
            event: Event::Note {
                by: "ana".into(),
                text: "deflated".into(),
            },
        };
        assert_eq!(
            encode(&other).expect("encodes"),
            serde_json::to_string(&other).expect("encodes")
        );
    }

    /// A damaged packed member is refused with what is wrong with it, never a panic.
    #[test]
    fn a_damaged_packed_session_start_says_what_is_wrong() {
        let line = |packed: &str| {
            format!(
                r#"{{"seq":1,"t_ms":1,"type":"session_started","operator":"o","deflated":{packed}}}"#
            )
        };
        for (bad, says) in [
            (line("7"), "(`deflated`) is not text"),
            (line(r#""@@""#), "is not base64"),
            (line(r#""AAAA""#), "does not inflate"),
            (
                line(&format!("{:?}", deflated(b"{\"plan\":"))),
                "is not a JSON object once inflated",
            ),
            (
                line(&format!("{:?}", deflated(br#"{"operator":"x"}"#))),
                "holds `operator`, which the line also has",
            ),
            (
                line(&format!("{:?}", deflated(br#"{"nodes":[]}"#))),
                "missing field `plan`",
            ),
        ] {
            let e = decode(&bad).expect_err("damaged").to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    /// Packing does not get a crafted session start past the bound on what its steps written
    /// `like` another may expand to: the bound is the inflated line's, not the packed one's.
    #[test]
    fn packed_steps_that_would_expand_to_their_square_are_refused() {
        let mut steps = vec![serde_json::json!({"key": "a", "title": "x".repeat(64 << 10)})];
        steps.extend((0..4096).map(|i| serde_json::json!({"key": format!("a{i}"), "like": "a"})));
        let inner = serde_json::json!({"plan": {"steps": steps}});
        let line = format!(
            r#"{{"seq":1,"t_ms":0,"type":"session_started","deflated":{:?}}}"#,
            deflated(inner.to_string().as_bytes())
        );
        assert!(line.len() < 32 << 10, "{} bytes packed", line.len());
        let e = decode(&line).expect_err("refused").to_string();
        assert!(e.contains("expand to more than"), "{e}");
    }

    /// A packed member that would inflate past the bound is refused before it is all read
    /// (here a bound of 1 MB, to keep the test small; readers use [`MAX_INFLATED`]).
    #[test]
    fn inflating_is_bounded() {
        let spaces = vec![b' '; (1 << 20) + 1];
        let mut v = serde_json::json!({ KEY: deflated(&spaces) });
        let e = unpack(&mut v, 1 << 20).expect_err("too big");
        assert!(e.contains("inflates past 1024 KB"), "{e}");
        let mut v = serde_json::json!({ KEY: deflated(b"{}") });
        assert_eq!(unpack(&mut v, 1 << 20), Ok(2));
    }

    /// A small line of repeated text may not inflate to many times itself: the bound follows
    /// the line (a 1,000:1 deflate of 256 MB would have cost gigabytes to parse).
    #[test]
    fn a_small_packed_line_cannot_inflate_far_past_itself() {
        let repeated = format!(
            "{{\"plan\":[{}]}}",
            vec![r#"{"key":"b","like":"a"}"#; 200_000].join(",")
        );
        let line = serde_json::json!({"seq": 1, "t_ms": 0, "type": "session_started", KEY: deflated(repeated.as_bytes())}).to_string();
        assert!(
            line.len() < 100_000,
            "the test's line is small: {}",
            line.len()
        );
        let e = decode(&line).expect_err("refused").to_string();
        assert!(e.contains("inflates past"), "{e}");
    }

    /// Bytes after the deflate stream's end are damage, refused by name.
    #[test]
    fn bytes_after_the_deflate_stream_are_refused() {
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(deflated(b"{}"))
            .expect("base64");
        bytes.extend_from_slice(b"junk");
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        let mut v = serde_json::json!({ KEY: text });
        let e = unpack(&mut v, 1 << 20).expect_err("refused");
        assert!(
            e.contains("4 bytes after the end of its deflate stream"),
            "{e}"
        );
    }
}
