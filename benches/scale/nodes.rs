//! A cluster of any size: the cockpit's events for N nodes (in process), and for whole
//! processes a fake node server (one loopback port answering every node's probe, so the
//! server's own cost stays out of the measured processes) with a target and a procedure
//! that holds at its first prompt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use flightdeck::engine::event::{Event, PromptKind, Stamped};
use flightdeck::lb::Backend;
use flightdeck::procedure::model::Membership;
use flightdeck::target::Node;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/lab-generic-rolling.jsonl"
);

pub fn name(i: usize) -> String {
    format!("node{:04}", i + 1)
}

/// A session on `n` nodes as the cockpit sees it: started (the lab journal's plan), every
/// node's facts, the balancer's view, ten probe rounds, and the first step's prompt open.
pub fn session(n: usize) -> anyhow::Result<Vec<Stamped>> {
    let text = std::fs::read_to_string(FIXTURE)?;
    let started = text
        .lines()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("{FIXTURE}: no session_started"))?;
    let mut first: Stamped = serde_json::from_str(started)?;
    if let Event::SessionStarted { nodes, target, .. } = &mut first.event {
        *nodes = (0..n)
            .map(|i| Node {
                name: name(i),
                address: "127.0.0.1:9".into(),
                role: Some(if i == 0 { "leader" } else { "follower" }.into()),
                tags: BTreeMap::new(),
                scheme: None,
            })
            .collect();
        *target = None;
    }
    let mut events = vec![first];
    let mut t = 10;
    let mut push = |events: &mut Vec<Stamped>, event: Event| {
        t += 1;
        let seq = events.len() as u64 + 1;
        events.push(Stamped {
            seq,
            t_ms: t,
            event,
        });
    };
    push(
        &mut events,
        Event::OperatorJoined {
            id: 1,
            name: "alice".into(),
            driver: true,
            user: Some("alice".into()),
            uid: Some(1000),
        },
    );
    for i in 0..n {
        let facts = [("version", "1.0.0"), ("read_only", "false")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        push(
            &mut events,
            Event::NodeFacts {
                node: name(i),
                facts,
                prior_sent_ms: None,
            },
        );
    }
    push(
        &mut events,
        Event::LbChanged {
            backends: (0..n)
                .map(|i| Backend {
                    server: format!("{}-srv", name(i)),
                    node: Some(name(i)),
                    membership: Membership::Ready,
                    health: "UP".into(),
                    serving: true,
                    sessions: Some(3),
                    weight: Some(100),
                    check: Some("L7OK".into()),
                })
                .collect(),
            error: None,
        },
    );
    for round in 0..10u64 {
        for s in sample_round(n, round) {
            push(&mut events, s);
        }
    }
    push(
        &mut events,
        Event::PromptOpened {
            id: 1,
            step: 0,
            prompt: PromptKind::Run,
        },
    );
    Ok(events)
}

/// One probe result per node (live only: the cockpit sees them, the journal does not).
pub fn sample_round(n: usize, round: u64) -> Vec<Event> {
    (0..n)
        .map(|i| Event::ProbeSample {
            probe: "health".into(),
            node: Some(name(i)),
            ok: true,
            latency_ms: 1 + (round * 7 + i as u64 * 5) % 17,
            detail: "200 in 1 ms".into(),
        })
        .collect()
}

/// A node API on loopback answering `GET /health` for every node; returns its port. It runs
/// on a thread of its own until the bench exits.
pub fn fake_node_server() -> anyhow::Result<u16> {
    use axum::routing::get;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            let app = axum::Router::new().route(
                "/health",
                get(|| async {
                    axum::Json(serde_json::json!({"status": "ok", "version": "1.0.0"}))
                }),
            );
            let _ = axum::serve(listener, app).await;
        });
    });
    Ok(port)
}

/// A target of `n` nodes on the fake server, each with one health probe at 1 Hz, and a
/// procedure whose only step waits at its prompt. Returns (procedure, target).
pub fn write_files(dir: &Path, n: usize, port: u16) -> anyhow::Result<(PathBuf, PathBuf)> {
    use std::fmt::Write as _;
    let mut target = format!("name = \"bench-{n}\"\nproduct = \"generic\"\n\n");
    for i in 0..n {
        write!(
            target,
            "[[nodes]]\nname = \"{}\"\naddress = \"127.0.0.1:{port}\"\nrole = \"{}\"\n\n",
            name(i),
            if i == 0 { "leader" } else { "follower" }
        )?;
    }
    target.push_str(
        "[[probes]]\nname = \"health\"\nkind = \"http\"\nurl = \"${node.url}/health\"\n\
         health = true\ninterval_ms = 1000\nfacts = { version = \"/version\" }\n",
    );
    let procedure = "name = \"bench-hold\"\nproduct = \"generic\"\n\
        description = \"One step that waits at its prompt: the session idles while probes run.\"\n\n\
        [[steps]]\nid = \"hold\"\ntitle = \"Hold here\"\n\
        runbook = \"Nothing to do: the benchmark measures the session while it waits.\"\n\
        action = { kind = \"manual\", text = \"nothing\" }\n";
    let t = dir.join(format!("target-{n}.toml"));
    let p = dir.join("hold.toml");
    std::fs::write(&t, target)?;
    std::fs::write(&p, procedure)?;
    Ok((p, t))
}
