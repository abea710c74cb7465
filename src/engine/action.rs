//! Executing one action (a step's or its undo) and reporting output and outcome as messages.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::check::{command, feed_stdin, read_lines, run_check, run_http};
use super::event::{Phase, Stream, Verdict};
use super::hold::{gate_instances, Hold};
use super::process::{stop_group, GroupGuard, STOP_GRACE};
use super::strings::Secrets;
use super::worker::WorkerMsg;
use crate::lb::LbClient;
use crate::procedure::model::{Action, Check, WaitSpec};
use crate::target::{Node, Target};

/// Most output lines one attempt sends to the journal; the rest is counted, not kept.
const MAX_OUTPUT_LINES: usize = 2000;

#[derive(Clone)]
pub struct ActionCtx {
    pub step: usize,
    pub phase: Phase,
    pub attempt: u32,
    pub tx: mpsc::Sender<WorkerMsg>,
    pub http: reqwest::Client,
    pub lb: Option<LbClient>,
    pub target: Arc<Target>,
    pub secrets: Arc<Secrets>,
    /// See `EngineConfig::time_scale`.
    pub time_scale: f64,
    /// Set (to who asked, and why) when the action must stop: abort while it runs.
    pub stop: watch::Receiver<Option<String>>,
    /// Each node's state and reason as the product reports them (see [`NodeStates`]).
    pub node_states: watch::Receiver<NodeStates>,
    /// Per node: when (session ms) the last step that may have started or stopped it ended
    /// (`SessionState::state_settled_ms`). A reading sent before then may predate it.
    pub settled_ms: std::collections::BTreeMap<String, u64>,
}

/// What the product last reported about a node's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    /// The product's state word (`running`, `failed`, ...).
    pub state: String,
    pub reason: Option<String>,
    /// When (session ms) the latest request that read this state was sent: the product
    /// answered after that. A reading sent before the last step that may have restarted the
    /// node ended shows it as it was before (a node an undo restarts still reads `failed`
    /// until probed again).
    pub read_ms: u64,
}

/// Node name -> its last state report, from the probes' facts.
pub type NodeStates = std::collections::BTreeMap<String, NodeReport>;

/// A state the product will not leave by itself: a gate waiting on such a node has failed.
const FAILED_STATES: [&str; 2] = ["failed", "crashed"];

/// The first of `nodes` the product reads failed by a request sent after the last step that
/// may have started or stopped it ended (`settled`, session ms per node), said with the
/// product's own reason. When the reading came in does not matter: a node whose start failed
/// before an operator confirmed the gate has failed all the same.
fn failed_node(
    states: &NodeStates,
    nodes: &[&str],
    settled: &std::collections::BTreeMap<String, u64>,
) -> Option<String> {
    nodes.iter().find_map(|n| {
        let r = states.get(*n)?;
        let current = settled.get(*n).is_none_or(|s| r.read_ms > *s || *s == 0);
        (current && FAILED_STATES.contains(&r.state.as_str())).then(|| match &r.reason {
            Some(why) => format!("{n} is {} — the product says: {why}", r.state),
            None => format!("{n} is {} (the product gives no reason)", r.state),
        })
    })
}

/// Far enough to mean "no deadline" without overflowing `Instant` arithmetic (which panics).
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + d`, saturated: a procedure's `timeout_secs = 9223372036854775807` means "very long",
/// never a panic.
pub fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d.min(FAR)).unwrap_or(now)
}

/// `secs` scaled by `scale` (lab timing), saturated instead of panicking on huge values.
pub fn scaled_secs(secs: u64, scale: f64) -> Duration {
    Duration::try_from_secs_f64(secs as f64 * scale)
        .unwrap_or(FAR)
        .min(FAR)
}

impl ActionCtx {
    async fn say(&self, stream: Stream, line: String) {
        self.say_masked(stream, self.secrets.redact(&line)).await;
    }

    /// [`ActionCtx::say`] for a line masked already (`read_lines` masks every line it gives
    /// out): every line of a command's output is not masked twice.
    async fn say_masked(&self, stream: Stream, line: String) {
        let _ = self
            .tx
            .send(WorkerMsg::Output {
                step: self.step,
                phase: self.phase,
                attempt: self.attempt,
                stream,
                line,
            })
            .await;
    }

    /// Resolves with who asked once the action is asked to stop; never otherwise.
    async fn stopped(&self) -> String {
        let mut stop = self.stop.clone();
        let by = match stop.wait_for(Option::is_some).await {
            Ok(v) => v.clone(),
            Err(_) => None,
        };
        match by {
            Some(by) => by,
            // The engine is gone: nobody can ask any more.
            None => std::future::pending().await,
        }
    }
}

/// Run `action` to its end and return its verdict; the engine task that awaits this turns it
/// (or a panic) into `ActionFinished`. Manual actions pass at once: confirming a manual step is
/// the operator saying it is done.
pub async fn execute(action: Action, ctx: ActionCtx) -> (Verdict, String) {
    let result = if matches!(action, Action::Run { .. }) {
        // A command stops gracefully on its own terms (SIGTERM, then SIGKILL).
        run(&action, &ctx).await
    } else {
        tokio::select! {
            r = run(&action, &ctx) => r,
            by = ctx.stopped() => Err((Verdict::Inconclusive, format!("cancelled: {by}"))),
        }
    };
    let (verdict, detail) = match result {
        Ok(detail) => (Verdict::Passed, detail),
        Err((verdict, detail)) => (verdict, detail),
    };
    (verdict, ctx.secrets.redact(&detail))
}

type Failure = (Verdict, String);

fn failed(detail: impl Into<String>) -> Failure {
    (Verdict::Failed, detail.into())
}

async fn run(action: &Action, ctx: &ActionCtx) -> Result<String, Failure> {
    match action {
        Action::Manual { text } => {
            ctx.say(Stream::Info, format!("manual: {text}")).await;
            Ok("done by hand, confirmed by the operator".into())
        }
        Action::Run { .. } => {
            let resolved = ctx.secrets.resolve_action(action).map_err(failed)?;
            let shown = ctx.secrets.masked_action(action);
            run_command(&resolved, &shown, ctx).await
        }
        Action::Http(_) => {
            let resolved = ctx.secrets.resolve_action(action).map_err(failed)?;
            let Action::Http(spec) = resolved else {
                return Err(failed("internal: http action changed kind"));
            };
            ctx.say(Stream::Info, format!("{} {}", spec.method, spec.url))
                .await;
            let r = run_http(&spec, &ctx.http, &ctx.secrets).await;
            if let Some(status) = r.status {
                ctx.say(Stream::Info, format!("-> {status} in {} ms", r.latency_ms))
                    .await;
            }
            for line in r.excerpt.lines().take(8) {
                ctx.say(Stream::Stdout, line.to_string()).await;
            }
            if r.ok {
                Ok(r.detail)
            } else {
                Err(failed(r.detail))
            }
        }
        Action::Lb {
            node,
            state,
            weight,
        } => {
            let Some(lb) = &ctx.lb else {
                return Err(failed(
                    "the target has no load balancer ([lb] in the target file)",
                ));
            };
            ctx.say(Stream::Info, format!("load balancer: {node} -> {state}"))
                .await;
            lb.set_membership(node, *state, *weight)
                .await
                .map_err(|e| failed(e.to_string()))?;
            Ok(format!("{node} is now {state} in the load balancer"))
        }
        Action::Wait(w) => gate(w, ctx).await,
        Action::Call { name, .. } => Err(failed(format!(
            "action `{name}` was not bound by the target when the plan was made"
        ))),
    }
}

/// Run `action` (secrets resolved); `shown` is the same action with them masked, for the
/// `$ command` line.
async fn run_command(action: &Action, shown: &Action, ctx: &ActionCtx) -> Result<String, Failure> {
    let Action::Run {
        argv,
        env,
        stdin,
        cwd,
        timeout_secs,
        expect_exit,
    } = action
    else {
        return Err(failed("internal: not a run action"));
    };
    let Some(prog) = argv.first() else {
        return Err(failed("empty command"));
    };
    let shown_argv = match shown {
        Action::Run { argv, .. } => argv,
        _ => argv,
    };
    ctx.say(Stream::Info, format!("$ {}", display_argv(shown_argv)))
        .await;
    let mut cmd = command(argv, env, stdin.is_some(), &ctx.secrets);
    // Its own process group: whatever it forks can be stopped with it (`GroupGuard`).
    cmd.process_group(0);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| failed(format!("cannot start {prog}: {e}")))?;
    let Some(pid) = child.id() else {
        return Err(failed(format!("{prog} ended before it could be watched")));
    };
    // The group is the child's pid (`process_group(0)`). Killed whole when this future ends
    // or is dropped: leftovers of a finished command, an aborted task, an engine that ends.
    let _group = GroupGuard::new(pid);
    let _ = ctx
        .tx
        .send(WorkerMsg::Process {
            step: ctx.step,
            phase: ctx.phase,
            attempt: ctx.attempt,
            pid,
            pgid: pid,
            started: super::process::start_identity(pid),
        })
        .await;
    // Unbounded so the pipe readers never block the child; `MAX_OUTPUT_LINES` bounds what is
    // kept, and a child can't outrun our reading by much.
    let (line_tx, mut line_rx) = mpsc::unbounded_channel::<(Stream, String)>();
    let mut readers = Vec::new();
    readers.extend(feed_stdin(&mut child, stdin.as_deref()));
    if let Some(out) = child.stdout.take() {
        let tx = line_tx.clone();
        let secrets = ctx.secrets.clone();
        readers.push(tokio::spawn(async move {
            read_lines(out, &secrets, |l| {
                let _ = tx.send((Stream::Stdout, l));
            })
            .await;
        }));
    }
    if let Some(err) = child.stderr.take() {
        let tx = line_tx.clone();
        let secrets = ctx.secrets.clone();
        readers.push(tokio::spawn(async move {
            read_lines(err, &secrets, |l| {
                let _ = tx.send((Stream::Stderr, l));
            })
            .await;
        }));
    }
    drop(line_tx);
    let deadline = deadline_after(Duration::from_secs(*timeout_secs));
    let mut sent = 0usize;
    let mut dropped = 0usize;
    // The last non-empty line on each stream: a failing tool's own words for why.
    let mut last_words: [Option<String>; 2] = [None, None];
    let mut status = None;
    let mut streams_done = false;
    loop {
        tokio::select! {
            line = line_rx.recv(), if !streams_done => match line {
                Some((stream, l)) => {
                    if !l.trim().is_empty() {
                        let slot = usize::from(stream == Stream::Stdout);
                        // Masked (by `read_lines`) before `said_last` cuts it: a secret cut
                        // in two would no longer match, and its first part would reach the
                        // detail.
                        last_words[slot] = Some(l.clone());
                    }
                    if sent < MAX_OUTPUT_LINES {
                        ctx.say_masked(stream, l).await;
                        sent += 1;
                    } else {
                        dropped += 1;
                    }
                }
                None => streams_done = true,
            },
            st = child.wait(), if status.is_none() => {
                status = Some(st.map_err(|e| failed(format!("{prog}: {e}")))?);
            }
            _ = tokio::time::sleep_until(deadline) => {
                let _ = super::process::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.kill().await;
                readers.iter().for_each(|r| r.abort());
                return Err(failed(format!(
                    "{prog} timed out after {timeout_secs} s; its process group {pid} was killed"
                )));
            }
            by = ctx.stopped() => {
                ctx.say(Stream::Info, format!("{by}: asking process group {pid} to stop (SIGTERM)")).await;
                let how = stop_group(pid, STOP_GRACE).await;
                let _ = child.wait().await;
                readers.iter().for_each(|r| r.abort());
                return Err(failed(format!("stopped ({by}): {how}")));
            }
        }
        if status.is_some() && streams_done {
            break;
        }
    }
    if dropped > 0 {
        ctx.say(
            Stream::Info,
            format!("[{dropped} more output lines not recorded]"),
        )
        .await;
    }
    let code = status.and_then(|s| s.code()).unwrap_or(-1);
    if code == *expect_exit {
        Ok(format!("{prog} exited {code}"))
    } else {
        Err(failed(format!(
            "{prog} exited {code} (expected {expect_exit}){}",
            said_last(&last_words)
        )))
    }
}

/// `: <last stderr line>; <last stdout line>` (each on one line, at most 200 characters), or
/// nothing when the command said nothing: the reason a failed command gives in its own words
/// (`ls: cannot access '…': No such file or directory; nothing restored: the backup is
/// missing`), in the step's detail where every view and the report show it. Stderr first:
/// the streams are read apart, so which line came last is not known.
fn said_last(last_words: &[Option<String>; 2]) -> String {
    let said: Vec<String> = last_words
        .iter()
        .flatten()
        .map(|l| super::strings::cut(l.trim(), 200))
        .collect();
    if said.is_empty() {
        String::new()
    } else {
        format!(": {}", said.join("; "))
    }
}

/// Shell-quoted for display only; commands always run as argv.
pub fn display_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Which nodes a gate or probe covers: `all`, a node name, or `key=value` on role/tags.
pub fn select_nodes<'a>(target: &'a Target, sel: &str) -> Vec<(usize, &'a Node)> {
    let sel = sel.trim();
    target
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| {
            if sel.is_empty() || sel == "all" || sel == "*" {
                return true;
            }
            if let Some((k, v)) = sel.split_once('=') {
                let (k, v) = (k.trim(), v.trim());
                return match k {
                    "role" => n.role.as_deref() == Some(v),
                    "name" => n.name == v,
                    _ => n.tags.get(k).map(String::as_str) == Some(v),
                };
            }
            sel.split(',').any(|s| s.trim() == n.name)
        })
        .collect()
}

/// A wait gate: every instance must pass, continuously for `stable_secs`, before the timeout.
async fn gate(w: &WaitSpec, ctx: &ActionCtx) -> Result<String, Failure> {
    let instances = gate_instances(w, &ctx.target, &ctx.secrets).map_err(failed)?;
    let is_command = instances
        .first()
        .is_some_and(|(_, c)| matches!(c, Check::Run { .. }));
    let total = instances.len();
    let scale = if ctx.time_scale > 0.0 {
        ctx.time_scale
    } else {
        1.0
    };
    let need = scaled_secs(w.stable_secs, scale);
    let timeout = scaled_secs(w.timeout_secs, scale);
    let interval = Duration::from_millis(w.interval_ms.max(50));
    let mut hold = Hold::new(total, need, timeout);
    let desc = match &w.probe {
        Some(p) => format!("probe {p}"),
        None => "check".to_string(),
    };
    ctx.say(
        Stream::Info,
        format!(
            "gate: {desc} on {total} instance(s), stable {:.1} s, timeout {:.1} s",
            need.as_secs_f64(),
            timeout.as_secs_f64()
        ),
    )
    .await;
    let mut last_passing = usize::MAX;
    let name = |n: &Option<String>| n.as_deref().unwrap_or("global").to_string();
    let watched: Vec<&str> = instances.iter().filter_map(|(n, _)| n.as_deref()).collect();
    let mut node_states = ctx.node_states.clone();
    loop {
        // Waiting on a node the product reports failed cannot pass: end now, with its reason,
        // rather than when the timeout runs out (writes may be down meanwhile).
        if let Some(why) = failed_node(&node_states.borrow_and_update(), &watched, &ctx.settled_ms)
        {
            return Err(failed(format!("{desc}: {why}")));
        }
        let round = Instant::now();
        let results = futures::future::join_all(
            instances
                .iter()
                .map(|(_, c)| run_check(c, &ctx.http, &ctx.secrets)),
        )
        .await;
        let now = hold.record(results.iter().map(|r| (r.ok, r.detail.clone())));
        let passing = hold.passing();
        let stable = hold.stable(now);
        // A status the check declares final ends the gate now, with the product's reason.
        if let Some(((n, _), r)) = instances.iter().zip(&results).find(|(_, r)| r.fatal) {
            return Err(failed(format!(
                "{desc}: {}: {}",
                n.as_deref().unwrap_or("global"),
                r.detail
            )));
        }
        let _ = ctx
            .tx
            .send(WorkerMsg::Gate {
                step: ctx.step,
                attempt: ctx.attempt,
                passing,
                total,
                stable_ms: stable.as_millis() as u64,
                need_ms: need.as_millis() as u64,
            })
            .await;
        if passing != last_passing {
            let failing: Vec<String> = instances
                .iter()
                .zip(&results)
                .filter(|(_, r)| !r.ok)
                .map(|((n, _), r)| format!("{}: {}", name(n), r.detail))
                .collect();
            let mut line = format!("gate: {passing}/{total} passing");
            if !failing.is_empty() {
                line.push_str(&format!(" — {}", failing.join("; ")));
            } else if is_command {
                // A command check's output says what held (e.g. the row counts it compared).
                let seen: Vec<String> = instances
                    .iter()
                    .zip(&results)
                    .map(|((n, _), r)| format!("{}: {}", name(n), r.detail))
                    .collect();
                line.push_str(&format!(" — {}", seen.join("; ")));
            }
            ctx.say(Stream::Info, line).await;
            last_passing = passing;
        }
        if hold.held(now) {
            return Ok(format!(
                "{desc}: {total}/{total} passing for {} s",
                stable.as_secs()
            ));
        }
        if hold.timed_out(now) {
            let failing: Vec<String> = instances
                .iter()
                .enumerate()
                .filter(|(i, _)| !hold.instance_passing(*i))
                .map(|(i, (n, _))| format!("{}: {}", name(n), hold.last(i)))
                .collect();
            let never = !hold.all_ever_passed();
            let verdict = if never {
                Verdict::Failed
            } else {
                Verdict::Inconclusive
            };
            let what = if failing.is_empty() {
                format!(
                    "passing but not stable for {:.1} s within {:.1} s",
                    need.as_secs_f64(),
                    timeout.as_secs_f64()
                )
            } else if never {
                format!(
                    "never passed within {} s — {}",
                    w.timeout_secs,
                    failing.join("; ")
                )
            } else {
                format!(
                    "did not hold within {:.1} s — {}",
                    timeout.as_secs_f64(),
                    failing.join("; ")
                )
            };
            return Err((verdict, format!("{desc} {what}")));
        }
        let next = round + interval;
        // A report of a node's state wakes the gate before its next round.
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            r = node_states.changed() => {
                if r.is_err() {
                    tokio::time::sleep_until(next).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_display_quotes_only_when_needed() {
        let argv: Vec<String> = ["helm", "upgrade", "--set", "a=b c", "it's"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(display_argv(&argv), r"helm upgrade --set 'a=b c' 'it'\''s'");
    }
}
