//! Running one check — HTTP, TCP or a command — with a timeout, into a verdict. Shared by
//! probes, wait gates and `http` actions, so a probe and a step judge a response the same way.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::strings::Secrets;
use crate::procedure::model::{Check, HttpSpec};

#[derive(Debug, Clone)]
pub struct CheckResult {
    pub ok: bool,
    pub latency_ms: u64,
    /// One line: what was seen (`200 in 12 ms`, `connection refused`, `exit 3`).
    pub detail: String,
    /// The HTTP status, for HTTP checks that got an answer.
    pub status: Option<u16>,
    /// The response body, when it was JSON.
    pub json: Option<Value>,
    /// The first bytes of the body or output, for action output.
    pub excerpt: String,
    /// The answer means "wrong, fail now" (a status in `fail_on`, or outside `wait_on`): a
    /// gate stops waiting.
    pub fatal: bool,
}

impl CheckResult {
    fn fail(started: Instant, detail: String) -> Self {
        CheckResult {
            ok: false,
            latency_ms: started.elapsed().as_millis() as u64,
            detail,
            status: None,
            json: None,
            excerpt: String::new(),
            fatal: false,
        }
    }
}

/// The one HTTP client of a session (connection pooling matters when probes poll every second).
pub fn http_client() -> reqwest::Client {
    crate::tls::ensure_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// `secrets` only scrubs a command's environment here: `check` is already resolved.
pub async fn run_check(check: &Check, http: &reqwest::Client, secrets: &Secrets) -> CheckResult {
    match check {
        Check::Http(spec) => run_http(spec, http, secrets).await,
        Check::Tcp {
            address,
            timeout_ms,
        } => {
            let started = Instant::now();
            let conn = tokio::time::timeout(
                Duration::from_millis(*timeout_ms),
                tokio::net::TcpStream::connect(address.as_str()),
            )
            .await;
            match conn {
                Ok(Ok(_)) => CheckResult {
                    ok: true,
                    latency_ms: started.elapsed().as_millis() as u64,
                    detail: format!("connected to {address}"),
                    status: None,
                    json: None,
                    excerpt: String::new(),
                    fatal: false,
                },
                Ok(Err(e)) => CheckResult::fail(started, format!("{address}: {e}")),
                Err(_) => CheckResult::fail(
                    started,
                    format!("{address}: no connection within {timeout_ms} ms"),
                ),
            }
        }
        Check::Run {
            argv,
            env,
            stdin,
            timeout_secs,
            expect_exit,
        } => {
            let mut cmd = command(argv, env, stdin.is_some(), secrets);
            run_command_check(
                argv,
                &mut cmd,
                stdin.as_deref(),
                *timeout_secs,
                *expect_exit,
                secrets,
            )
            .await
        }
    }
}

/// A command for `argv` with the environment it may see: flightdeck's, minus every secret's
/// variable, plus `env` (where an action names the secrets it uses). Output is piped; input
/// too when the action gives some, else it reads nothing.
pub fn command(
    argv: &[String],
    env: &BTreeMap<String, String>,
    has_stdin: bool,
    secrets: &Secrets,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(argv.first().map_or("", String::as_str));
    cmd.args(argv.iter().skip(1));
    secrets.scrub(&mut cmd);
    cmd.envs(env)
        .stdin(if has_stdin {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Write `text` to the child's input and close it, in a task of its own: a child that writes
/// before it reads must not stall on a full pipe while we wait to write. A child that exits
/// without reading it all is not an error.
pub fn feed_stdin(
    child: &mut tokio::process::Child,
    text: Option<&str>,
) -> Option<tokio::task::JoinHandle<()>> {
    let (mut pipe, text) = (child.stdin.take()?, text?.to_owned());
    Some(tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = pipe.write_all(text.as_bytes()).await;
        let _ = pipe.shutdown().await;
    }))
}

/// How much of a check command's output is kept, stdout and stderr each: what a probe or gate
/// judges is its first line or one JSON document (the same cap as an HTTP body). The rest is
/// read and dropped, so the command never stalls on a full pipe, and the detail says it was cut.
pub const OUTPUT_CAP: usize = BODY_CAP;

async fn run_command_check(
    argv: &[String],
    cmd: &mut tokio::process::Command,
    stdin: Option<&str>,
    timeout_secs: u64,
    expect_exit: i32,
    secrets: &Secrets,
) -> CheckResult {
    let started = Instant::now();
    let Some(prog) = argv.first() else {
        return CheckResult::fail(started, "empty command".into());
    };
    // Its own process group, as an action's: on a timeout `kill_on_drop` kills the direct
    // child only, and whatever a `sh -c` forked would outlive it, one more each probe interval.
    cmd.process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return CheckResult::fail(started, format!("cannot start {prog}: {e}")),
    };
    let Some(pid) = child.id() else {
        return CheckResult::fail(started, format!("{prog} ended before it could be watched"));
    };
    // The group is the child's pid. Killed whole when the check ends, however it ends: a
    // timeout, leftovers of a command that exited, a probe task that is aborted.
    let _group = super::process::GroupGuard::new(pid);
    let writer = feed_stdin(&mut child, stdin);
    let result = wait_check(prog, child, timeout_secs, expect_exit, started, secrets).await;
    // Done with the child either way; a grandchild holding the pipe open keeps nothing waiting.
    if let Some(w) = writer {
        w.abort();
    }
    result
}

/// Up to [`OUTPUT_CAP`] bytes of a child's pipe, and whether it said more (read to its end
/// and dropped).
async fn read_capped_pipe<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> (Vec<u8>, bool) {
    let Some(mut pipe) = pipe else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let cap = u64::try_from(OUTPUT_CAP).unwrap_or(u64::MAX);
    let _ = (&mut pipe).take(cap).read_to_end(&mut kept).await;
    let more = tokio::io::copy(&mut pipe, &mut tokio::io::sink())
        .await
        .unwrap_or(0);
    (kept, more > 0)
}

async fn wait_check(
    prog: &str,
    mut child: tokio::process::Child,
    timeout_secs: u64,
    expect_exit: i32,
    started: Instant,
    secrets: &Secrets,
) -> CheckResult {
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let run = async {
        let (out, err, status) = tokio::join!(
            read_capped_pipe(stdout),
            read_capped_pipe(stderr),
            child.wait()
        );
        status.map(|status| (status, out, err))
    };
    match tokio::time::timeout(Duration::from_secs(timeout_secs), run).await {
        Ok(Ok((status, (stdout, out_cut), (stderr, err_cut)))) => {
            let cut = if out_cut || err_cut {
                format!(" (output cut at {} KiB)", OUTPUT_CAP / 1024)
            } else {
                String::new()
            };
            let code = status.code().unwrap_or(-1);
            // Each stream masked on its own, before anything is cut from it (the excerpt,
            // the first line); one cut at the cap may end in the first part of a secret,
            // which no longer matches it, and is masked too.
            let mut text = secrets.redact_capped(&stdout, out_cut);
            text.push_str(&secrets.redact_capped(&stderr, err_cut));
            // Then whole: a secret across the two streams' join, or one that only reads
            // whole with its escapes stripped, before the excerpt and the first line cut it.
            let text = secrets.redact(&text);
            let excerpt: String = text.chars().take(EXCERPT_CHARS).collect();
            // A document cut short is not read as if it were whole.
            let json = (!out_cut)
                .then(|| serde_json::from_slice(&stdout).ok())
                .flatten();
            CheckResult {
                ok: code == expect_exit,
                latency_ms: started.elapsed().as_millis() as u64,
                // The first line of output is what the check saw, passing or not (a gate
                // over data shows what it compared).
                detail: if code == expect_exit {
                    format!(
                        "exit {code}{cut}{}",
                        first_line(&text)
                            .map(|l| format!(": {l}"))
                            .unwrap_or_default()
                    )
                } else {
                    format!(
                        "exit {code} (expected {expect_exit}){cut}{}",
                        first_line(&text)
                            .map(|l| format!(": {l}"))
                            .unwrap_or_default()
                    )
                },
                status: None,
                json,
                excerpt,
                fatal: false,
            }
        }
        Ok(Err(e)) => CheckResult::fail(started, format!("{prog}: {e}")),
        Err(_) => CheckResult::fail(started, format!("{prog}: timed out after {timeout_secs} s")),
    }
}

/// The first line of output with something on it, cut to what a detail shows.
fn first_line(s: &str) -> Option<String> {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| super::strings::cut(l, FIRST_LINE_CHARS))
}

/// What a check's detail keeps of its output's first line, in characters.
const FIRST_LINE_CHARS: usize = 500;

/// What `excerpt` keeps of a body or a command's output, in characters.
const EXCERPT_CHARS: usize = 400;

/// Run an HTTP check. What it says of the body (`detail`, `excerpt`) has `secrets` masked
/// before it is cut; the body is judged as it came.
pub async fn run_http(spec: &HttpSpec, http: &reqwest::Client, secrets: &Secrets) -> CheckResult {
    let started = Instant::now();
    let method = match reqwest::Method::from_bytes(spec.method.to_uppercase().as_bytes()) {
        Ok(m) => m,
        Err(_) => return CheckResult::fail(started, format!("bad method {:?}", spec.method)),
    };
    let mut req = http
        .request(method.clone(), &spec.url)
        .timeout(Duration::from_secs(spec.timeout_secs.max(1)));
    for (k, v) in &spec.headers {
        req = req.header(k, v);
    }
    if let Some(body) = &spec.body {
        req = req.body(body.clone());
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            let why = if e.is_timeout() {
                format!("no answer within {} s", spec.timeout_secs)
            } else {
                what_happened(&e)
            };
            return CheckResult::fail(started, format!("{method} {}: {why}", spec.url));
        }
    };
    let status = resp.status().as_u16();
    // Bodies of health endpoints are small; cap what we read so a lying endpoint can't flood us.
    // The whole body must arrive within the timeout: a 200 whose body stalls is no answer.
    let (body, truncated) = match read_capped(resp, BODY_CAP).await {
        Ok(b) => b,
        Err(e) => {
            let why = if e.is_timeout() {
                format!(
                    "status {status}, but the body did not complete within {} s",
                    spec.timeout_secs.max(1)
                )
            } else {
                format!(
                    "status {status}, then {} while reading the body",
                    what_happened(&e)
                )
            };
            return CheckResult::fail(started, format!("{method} {}: {why}", spec.url));
        }
    };
    let latency_ms = started.elapsed().as_millis() as u64;
    let parsed: Result<Value, String> = if truncated {
        Err(format!("body truncated at {} KiB", BODY_CAP / 1024))
    } else {
        serde_json::from_slice(&body).map_err(|e| format!("the body is not JSON ({e})"))
    };
    let json: Option<Value> = parsed.as_ref().ok().cloned();
    // A body cut at the cap may end in the first part of a secret: masked too.
    // Then whole again: a secret that only reads whole with its escapes stripped.
    let excerpt: String = secrets
        .redact(&secrets.redact_capped(&body, truncated))
        .chars()
        .take(EXCERPT_CHARS)
        .collect();
    let mask = |s: &str| secrets.redact(s);
    let mask_body = |s: &str| secrets.redact_capped(s.as_bytes(), truncated);
    let status_ok = if spec.expect_status.is_empty() {
        (200..300).contains(&status)
    } else {
        spec.expect_status.contains(&status)
    };
    let mut problems = Vec::new();
    if !status_ok {
        let expected = if spec.expect_status.is_empty() {
            format!("status {status} (expected 2xx)")
        } else {
            format!("status {status} (expected {:?})", spec.expect_status)
        };
        // The product's own words for the refusal, when its error body has them (a fatal
        // status says them once, below).
        let reason = json
            .as_ref()
            .and_then(|doc| product_reason(doc, secrets))
            .filter(|r| !r.is_empty() && !status_is_final(spec, status));
        problems.push(match reason {
            Some(reason) => format!("{expected}: {reason}"),
            None => expected,
        });
    }
    for (pointer, want) in &spec.expect_json {
        match &parsed {
            Err(why) => {
                problems.push(format!("{pointer}: {why}"));
                break;
            }
            Ok(doc) => {
                if let Err(p) = check_pointer(doc, pointer, want) {
                    problems.push(p);
                }
            }
        }
    }
    for e in &spec.expect {
        match &parsed {
            Err(why) => {
                problems.push(format!("{}: {why}", e.path));
                break;
            }
            Ok(doc) => {
                if let Err(p) = crate::procedure::expect::json_matches_shown(e, doc, &mask) {
                    problems.push(p);
                }
            }
        }
    }
    if let Some(pattern) = &spec.expect_text {
        if let Err(p) = crate::procedure::expect::text_matches_shown(
            pattern,
            &String::from_utf8_lossy(&body),
            &mask_body,
        ) {
            problems.push(p);
        }
    }
    let ok = problems.is_empty();
    let fatal = !status_ok && status_is_final(spec, status);
    if fatal {
        let which = if spec.fail_on.contains(&status) {
            "in `fail_on`"
        } else {
            "not in `wait_on`"
        };
        let reason = json
            .as_ref()
            .and_then(|doc| product_reason(doc, secrets))
            .unwrap_or_else(|| one_line(&excerpt));
        problems.insert(
            0,
            format!(
                "{method} {}: status {status} ({which}: fails at once){}",
                spec.url,
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                }
            ),
        );
    }
    CheckResult {
        ok,
        latency_ms,
        detail: if ok {
            format!("{status} in {latency_ms} ms")
        } else {
            problems.join("; ")
        },
        status: Some(status),
        json,
        excerpt,
        fatal,
    }
}

/// Whether an unexpected `status` means "wrong, fail now" for this check: listed in
/// `fail_on`, or — once the author said which statuses mean "not yet" — not in `wait_on`.
/// Neither declared: every failure waits, as it always did.
fn status_is_final(spec: &HttpSpec, status: u16) -> bool {
    spec.fail_on.contains(&status) || (!spec.wait_on.is_empty() && !spec.wait_on.contains(&status))
}

/// The product's own words for a refusal, from the usual places in an error body:
/// Elasticsearch `{"error": {"reason": ...}}`, Weaviate `{"error": [{"message": ...}]}`,
/// Neo4j `{"errors": [{"message": ...}]}`, or a top-level `message`/`reason`/`error` string.
/// Masked before `one_line` cuts it.
fn product_reason(doc: &Value, secrets: &Secrets) -> Option<String> {
    [
        "/error/reason",
        "/error/root_cause/0/reason",
        "/error/0/message",
        "/errors/0/message",
        "/message",
        "/reason",
        "/error",
    ]
    .iter()
    .find_map(|p| doc.pointer(p).and_then(Value::as_str))
    .map(|s| one_line(&secrets.redact(s)))
}

/// Text on one line, at most 200 characters (mask secrets first).
fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    super::strings::cut(&joined, 200)
}

/// The most of a response body a check reads.
pub const BODY_CAP: usize = 256 * 1024;

/// The body, up to `cap` bytes, and whether there was more. An error (the request's timeout,
/// a reset connection) is an error: a partial body is never judged as if it were whole.
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = cap.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if chunk.len() > room {
            return Ok((body, true));
        }
    }
    Ok((body, false))
}

/// What happened, in the words an operator uses ("connection reset", "redirect loop"), not
/// the client library's outermost wrapper ("error sending request").
pub fn what_happened(e: &reqwest::Error) -> String {
    if e.is_redirect() {
        return "redirect loop (or more than 10 redirects)".into();
    }
    // The innermost cause says what happened; the I/O error kind, when there is one.
    let mut io_kind = None;
    let mut innermost = e.to_string();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        innermost = err.to_string();
        cur = err.source();
    }
    use std::io::ErrorKind as K;
    match io_kind {
        Some(K::ConnectionRefused) => "connection refused".into(),
        Some(K::ConnectionReset) => "connection reset".into(),
        Some(K::ConnectionAborted) => "connection aborted".into(),
        Some(K::UnexpectedEof) => "connection closed before the response was complete".into(),
        Some(K::TimedOut) => "timed out".into(),
        Some(K::HostUnreachable | K::NetworkUnreachable) => "host unreachable".into(),
        _ if e.is_connect() => format!("cannot connect: {innermost}"),
        _ => innermost,
    }
}

/// `"/a/b" = value` compares the value at the pointer; `"/a#len" = n` the length of an array
/// or object there.
pub fn check_pointer(doc: &Value, pointer: &str, want: &Value) -> Result<(), String> {
    let (path, len) = match pointer.strip_suffix("#len") {
        Some(p) => (p, true),
        None => (pointer, false),
    };
    let Some(found) = doc.pointer(path) else {
        return Err(format!("{path}: missing from the response"));
    };
    let got = if len {
        match found {
            Value::Array(a) => Value::from(a.len()),
            Value::Object(o) => Value::from(o.len()),
            other => return Err(format!("{path}: {other} has no length")),
        }
    } else {
        found.clone()
    };
    if values_match(&got, want) {
        Ok(())
    } else {
        Err(format!("{pointer} is {got}, expected {want}"))
    }
}

/// Loose equality so TOML authors can write `"3"` or `3`, `"true"` or `true`.
fn values_match(got: &Value, want: &Value) -> bool {
    crate::procedure::expect::loosely_equal(got, want)
}

/// Read facts (`version`, `role`, ...) from a JSON document by pointer; values as text.
pub fn extract_facts(doc: &Value, facts: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    facts
        .iter()
        .filter_map(|(name, ptr)| {
            doc.pointer(ptr).map(|v| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (name.clone(), text)
            })
        })
        .collect()
}

/// A line longer than this (in bytes) is passed on in pieces.
const LINE_PIECE: usize = 4096;
/// What is kept of each line or piece, in characters.
const LINE_CHARS: usize = 500;

/// Read a child's stdout or stderr line by line (lossy UTF-8), bounded per line. Secrets are
/// masked in the stream as it is read, before it is cut anywhere (`MaskedStream`): a secret
/// the child wrote in two parts, one across a piece of a long line or the 500-character cut,
/// or a run of overlapping ones longer than a piece, would otherwise no longer match, and
/// its parts would be shown and journaled. A line too long to hold is passed on in pieces.
pub async fn read_lines<R: tokio::io::AsyncRead + Unpin>(
    mut r: R,
    secrets: &Secrets,
    mut on_line: impl FnMut(String),
) {
    let mut masked = super::secret_stream::MaskedStream::new(secrets);
    let mut buf = [0u8; 8192];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend(masked.push(&buf[..n]));
        pass_lines(&mut pending, secrets, &mut on_line);
    }
    pending.extend(masked.finish());
    pass_lines(&mut pending, secrets, &mut on_line);
    if !pending.is_empty() {
        on_line(shown_line(&pending, secrets));
    }
}

/// Pass on each whole line of `pending` (masked already), and pieces of a line too long to
/// hold; keep the rest.
fn pass_lines(pending: &mut Vec<u8>, secrets: &Secrets, on_line: &mut impl FnMut(String)) {
    let mut from = 0;
    while let Some(nl) = memchr::memchr(b'\n', &pending[from..]) {
        on_line(shown_line(&pending[from..from + nl], secrets));
        from += nl + 1;
    }
    while pending.len() - from > LINE_PIECE {
        let end = char_end(pending, from + LINE_PIECE);
        on_line(shown_line(&pending[from..end], secrets));
        from = end;
    }
    pending.drain(..from);
}

/// `at`, moved back to the start of the character it falls inside (a piece of a line ends
/// between characters); where no character starts near it (not UTF-8), `at`.
fn char_end(bytes: &[u8], at: usize) -> usize {
    let is_inside = |i: usize| bytes.get(i).is_some_and(|b| b & 0xC0 == 0x80);
    (at.saturating_sub(3)..=at)
        .rev()
        .find(|&i| !is_inside(i))
        .unwrap_or(at)
}

/// A line (or piece) of output, masked already, as it is passed on: masked again as a whole
/// line before it is cut, for a secret that only reads whole once its escapes are stripped
/// (`Secrets::redact`), which the stream cannot see.
fn shown_line(bytes: &[u8], secrets: &Secrets) -> String {
    let s = String::from_utf8_lossy(bytes);
    super::strings::cut(&secrets.redact(s.trim_end_matches('\r')), LINE_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secrets(values: &[&str]) -> Secrets {
        Secrets::of(values)
    }

    async fn lines_of(input: &[u8], secrets: &Secrets) -> Vec<String> {
        let mut out = Vec::new();
        read_lines(input, secrets, |l| out.push(l)).await;
        out
    }

    #[tokio::test]
    async fn a_secret_across_a_split_of_a_long_line_is_masked_whole() {
        let secret = "split-secret-0f1e2d3c";
        let s = secrets(&[secret]);
        // The first read takes 8,192 bytes: the secret lies across that edge. Before, the
        // 8,192 bytes went out as a piece and the next line began with the secret's tail.
        let mut input = vec![b'x'; 8180];
        input.extend_from_slice(secret.as_bytes());
        input.extend_from_slice(b"\nafter\n");
        let lines = lines_of(&input, &s).await;
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0], format!("{}…", "x".repeat(LINE_CHARS)));
        // The line's first 4,096 bytes went out as a piece; the rest with the secret, masked.
        assert_eq!(lines[1], format!("{}…", "x".repeat(LINE_CHARS)));
        assert_eq!(lines[2], "after");
        assert!(parts_shown(&lines, secret, 3).is_empty(), "{lines:?}");
        // The secret early in the second piece shows where it went: masked whole.
        let mut input = vec![b'x'; LINE_PIECE + 300];
        input.extend_from_slice(secret.as_bytes());
        input.extend_from_slice(&[b'y'; 4000]);
        input.extend_from_slice(b"\n");
        let lines = lines_of(&input, &s).await;
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[1].starts_with(&format!("{}****yyy", "x".repeat(300))),
            "{lines:?}"
        );
    }

    /// What of `secret` shows in `lines`: every run of at least `min` bytes of it (a part of
    /// the secret in any line) that a line holds.
    fn parts_shown(lines: &[String], secret: &str, min: usize) -> Vec<String> {
        let mut found = Vec::new();
        for l in lines {
            for len in min..=secret.len() {
                for at in 0..=secret.len() - len {
                    if let Some(part) = secret.get(at..at + len) {
                        if l.contains(part) {
                            found.push(format!("{part:?} in {l:?}"));
                        }
                    }
                }
            }
        }
        found
    }

    /// The hole left by the last audit: a run of overlapping occurrences of a repetitive
    /// secret across a piece of a long line. Before, the piece was cut inside the run (no
    /// point outside it was near) and each piece masked on its own: up to three bytes of
    /// `abab` were left on either side of the cut. Every offset of the run against the cut
    /// (a piece's 4,096 bytes, a read's 8,192), the run starting there or ending there.
    #[tokio::test]
    async fn a_run_of_a_repetitive_secret_across_a_piece_is_masked_at_every_offset() {
        let s = secrets(&["abab"]);
        for boundary in [LINE_PIECE, 8192] {
            for offset in 0..=24 {
                // Dots, the run from `offset` bytes before the boundary, dots: the next
                // piece begins inside the run.
                let mut starts = vec![b'.'; boundary - offset];
                starts.extend_from_slice("ab".repeat(30).as_bytes());
                starts.extend_from_slice(b"..\n");
                // The run from the line's start to `offset` bytes around the boundary: the
                // piece is all run, masked to one short mask, and its end shows.
                let mut ends = "ab".repeat((boundary + offset) / 2 - 6).into_bytes();
                ends.extend_from_slice(&b"...."[..offset % 4]);
                ends.extend_from_slice(b"-\n");
                for (input, all_run) in [(starts, false), (ends, true)] {
                    let lines = lines_of(&input, &s).await;
                    let shown = lines.concat();
                    assert!(
                        !shown.contains('a') && !shown.contains('b'),
                        "boundary {boundary}, offset {offset}: {lines:?}"
                    );
                    // A line that is all run shows its mask (a mask lies past the
                    // 500-character cut of a line of dots).
                    assert!(!all_run || lines[0].starts_with("****"), "{lines:?}");
                }
            }
        }
    }

    /// A child writes half a secret, flushes, then the rest: two reads.
    #[tokio::test]
    async fn a_secret_written_in_two_parts_is_masked() {
        let secret = "two-writes-secret-77aa";
        let s = secrets(&[secret]);
        // Two reads: `chain` reads the first to its end before the second.
        let pipe =
            tokio::io::AsyncReadExt::chain(&b"token=two-writes-"[..], &b"secret-77aa;\n"[..]);
        let mut lines = Vec::new();
        read_lines(pipe, &s, |l| lines.push(l)).await;
        assert_eq!(lines, vec!["token=****;".to_string()]);
        assert!(parts_shown(&lines, secret, 2).is_empty(), "{lines:?}");
    }

    #[tokio::test]
    async fn a_multi_byte_secret_across_a_piece_is_masked_and_pieces_stay_utf8() {
        let secret = "pässwört-ünïcødé";
        let s = secrets(&[secret]);
        for offset in 0..secret.len() {
            let mut input = vec![b'.'; LINE_PIECE - offset];
            input.extend_from_slice(secret.as_bytes());
            input.extend_from_slice("ñ".repeat(3000).as_bytes());
            input.push(b'\n');
            let lines = lines_of(&input, &s).await;
            // No part of two bytes or more (a character of it, at least) shows.
            let parts = parts_shown(&lines, secret, 2);
            assert!(parts.is_empty(), "offset {offset}: {parts:?}");
            assert!(
                !lines.concat().contains('\u{fffd}'),
                "a piece cut a character"
            );
            assert!(lines.len() >= 2, "the line went out in pieces: {lines:?}");
        }
    }

    #[tokio::test]
    async fn a_secret_across_the_500_character_cut_of_a_line_is_masked() {
        let secret = "line-secret-9a8b7c6d";
        let s = secrets(&[secret]);
        let input = format!("{}{secret}\r\n", "0".repeat(490));
        let lines = lines_of(input.as_bytes(), &s).await;
        assert_eq!(lines, vec![format!("{}****", "0".repeat(490))]);
    }

    #[test]
    fn pointers_and_lengths() {
        let doc = json!({"synchronized": true, "statistics": [1, 2, 3], "v": "1.2"});
        assert!(check_pointer(&doc, "/synchronized", &json!(true)).is_ok());
        assert!(check_pointer(&doc, "/statistics#len", &json!(3)).is_ok());
        assert!(check_pointer(&doc, "/statistics#len", &json!("3")).is_ok());
        let e = check_pointer(&doc, "/statistics#len", &json!(2)).unwrap_err();
        assert!(e.contains("expected 2"), "{e}");
        assert!(check_pointer(&doc, "/missing", &json!(1)).is_err());
        let f = extract_facts(
            &doc,
            &[("version".to_string(), "/v".to_string())]
                .into_iter()
                .collect(),
        );
        assert_eq!(f["version"], "1.2");
    }
}
