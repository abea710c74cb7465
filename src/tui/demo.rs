//! A realistic hand-made session (a three-node rolling upgrade of the lab's Jahia cluster) for
//! render tests, the docs capture and anyone who wants to see the cockpit without an engine.

use std::collections::BTreeMap;

use crate::engine::event::{AutoConfirm, Phase, PromptKind, Stream, TrafficWindow, Verdict};
use crate::engine::{Event, Stamped};
use crate::lb::Backend;
use crate::plan::{test_plans, Confirm, Plan, PlannedStep};
use crate::procedure::model::{Action, Downtime, HttpSpec, Membership, WaitSpec};
use crate::target::Node;

pub const NODES: [&str; 3] = ["jahia1", "jahia2", "jahia3"];

/// Step indexes in [`plan`].
pub const STEP_BACKUP: usize = 2;
pub const STEP_READ_ONLY: usize = 3;
pub const STEP_DRAIN1: usize = 4;
pub const STEP_UPGRADE1: usize = 5;
pub const STEP_MIGRATE: usize = 6;
pub const STEP_READY1: usize = 7;

fn step(key: &str, title: &str, action: Action) -> PlannedStep {
    PlannedStep {
        step_id: key.split('@').next().unwrap_or(key).into(),
        title: title.into(),
        ..test_plans::step(key, action)
    }
}

fn run(argv: &[&str]) -> Action {
    Action::Run {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: BTreeMap::new(),
        stdin: None,
        cwd: None,
        timeout_secs: 600,
        expect_exit: 0,
    }
}

fn http(method: &str, url: &str, body: &str) -> Action {
    let mut headers = BTreeMap::new();
    headers.insert(
        "Authorization".to_string(),
        "Basic ${secret.jahia_root}".to_string(),
    );
    headers.insert("Content-Type".to_string(), "application/json".to_string());
    Action::Http(HttpSpec {
        method: method.into(),
        url: url.into(),
        headers,
        body: Some(body.into()),
        expect_status: vec![200],
        wait_on: Vec::new(),
        fail_on: Vec::new(),
        expect_json: BTreeMap::new(),
        expect_text: None,
        expect: Vec::new(),
        timeout_secs: 30,
    })
}

fn lb(node: &str, state: Membership) -> Action {
    Action::Lb {
        node: node.into(),
        state,
        weight: None,
    }
}

fn wait(probe: &str, stable_secs: u64) -> Action {
    Action::Wait(WaitSpec {
        probe: Some(probe.into()),
        check: None,
        nodes: Some("all".into()),
        stable_secs,
        timeout_secs: 300,
        interval_ms: 1000,
    })
}

/// The plan: announce, health gate, backup, read-only, then per node drain / upgrade / ready
/// (with the schema migration — the point of no return — on the processing node), read-write,
/// final gate.
pub fn plan() -> Plan {
    let mut steps = Vec::new();
    let mut announce = step(
        "announce",
        "Announce the maintenance window",
        Action::Manual {
            text: "Post in #ops: Jahia upgrade to 8.2.0 starting, writes paused ~10 min".into(),
        },
    );
    announce.runbook = "Tell the editors before anything changes.".into();
    steps.push(announce);
    let mut pre = step(
        "preflight",
        "Cluster healthy before we start",
        wait("cluster-health", 10),
    );
    pre.confirm = Confirm::None;
    steps.push(pre);
    let mut backup = step(
        "backup",
        "Back up the database",
        run(&["pg_dump", "-Fc", "-f", "/backup/jahia 8.1.7.dump", "jahia"]),
    );
    backup.runbook = "A full dump: the only way back once the schema has migrated.".into();
    steps.push(backup);
    let mut ro = step(
        "read-only",
        "Put the cluster in read-only mode",
        http(
            "POST",
            "http://127.0.0.1:18081/modules/api/readonly",
            r#"{"enabled":true}"#,
        ),
    );
    ro.downtime = Downtime::Writes;
    ro.runbook = "Editors can no longer publish; visitors are still served.".into();
    ro.undo = Some(http(
        "POST",
        "http://127.0.0.1:18081/modules/api/readonly",
        r#"{"enabled":false}"#,
    ));
    steps.push(ro);
    for (i, node) in NODES.iter().enumerate() {
        let progress = Some(format!("node {}/{}", i + 1, NODES.len()));
        let mut drain = step(
            &format!("drain@{node}"),
            &format!("Drain {node} from the load balancer"),
            lb(node, Membership::Drain),
        );
        drain.node = Some(node.to_string());
        drain.progress = progress.clone();
        drain.confirm = Confirm::None;
        drain.undo = Some(lb(node, Membership::Ready));
        drain.runbook = "Existing sessions finish; no new ones arrive.".into();
        steps.push(drain);
        let mut up = step(
            &format!("upgrade@{node}"),
            &format!("Upgrade {node} to 8.2.0"),
            run(&["lab-ctl", "upgrade", node, "--to", "8.2.0"]),
        );
        up.node = Some(node.to_string());
        up.progress = progress.clone();
        up.downtime = Downtime::Writes;
        up.undo = Some(run(&["lab-ctl", "upgrade", node, "--to", "8.1.7"]));
        up.runbook = "Stops the node, swaps the binaries, starts it again.".into();
        steps.push(up);
        if i == 0 {
            let mut mig = step(
                "migrate",
                "Migrate the database schema",
                run(&["lab-ctl", "migrate", "--to", "8.2.0"]),
            );
            mig.node = Some(node.to_string());
            mig.downtime = Downtime::Full;
            mig.confirm = Confirm::Phrase {
                phrase: "migrate jahia".into(),
            };
            mig.approvals = 2;
            mig.irreversible = Some("the 8.2 schema cannot be migrated back".into());
            mig.runbook =
                "Runs on the processing node. After this, going back means restoring the backup."
                    .into();
            steps.push(mig);
        }
        let mut ready = step(
            &format!("ready@{node}"),
            &format!("Put {node} back in the load balancer"),
            lb(node, Membership::Ready),
        );
        ready.node = Some(node.to_string());
        ready.progress = progress;
        ready.confirm = Confirm::None;
        ready.undo = Some(lb(node, Membership::Drain));
        steps.push(ready);
    }
    let mut rw = step(
        "read-write",
        "Leave read-only mode",
        http(
            "POST",
            "http://127.0.0.1:18081/modules/api/readonly",
            r#"{"enabled":false}"#,
        ),
    );
    rw.undo = None;
    steps.push(rw);
    let mut verify = step(
        "verify",
        "Every node healthy on 8.2.0",
        wait("cluster-health", 30),
    );
    verify.confirm = Confirm::None;
    steps.push(verify);
    Plan {
        procedure: "jahia-rolling".into(),
        product: "jahia".into(),
        description: "Rolling upgrade of a Jahia cluster".into(),
        target: "lab-jahia".into(),
        from_version: Some("8.1.7".into()),
        to_version: Some("8.2.0".into()),
        hops: vec!["8.2.0".into()],
        steps,
        procedure_hash: "0".repeat(64),
        ..Default::default()
    }
}

pub fn nodes() -> Vec<Node> {
    NODES
        .iter()
        .enumerate()
        .map(|(i, n)| Node {
            name: n.to_string(),
            address: format!("127.0.0.1:1808{}", i + 1),
            role: Some(if i == 0 { "processing" } else { "browsing" }.into()),
            tags: BTreeMap::new(),
            scheme: None,
        })
        .collect()
}

pub fn backends(membership: [Membership; 3]) -> Vec<Backend> {
    NODES
        .iter()
        .zip(membership)
        .map(|(n, m)| Backend {
            server: format!("{n}-srv"),
            node: Some(n.to_string()),
            membership: m,
            health: if m == Membership::Maint {
                "MAINT"
            } else {
                "UP"
            }
            .into(),
            serving: m == Membership::Ready,
            sessions: Some(if m == Membership::Ready { 14 } else { 0 }),
            weight: Some(100),
            check: Some("L7OK".into()),
        })
        .collect()
}

/// Builds a stamped event list the way an engine would, with a clock.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub events: Vec<Stamped>,
    pub t_ms: u64,
    next_prompt: u64,
}

impl Script {
    /// A session started by alice, with bob watching, three healthy nodes on 8.1.7 and traffic.
    pub fn started() -> Script {
        let mut s = Script::default();
        s.push(
            0,
            Event::SessionStarted {
                plan: Box::new(plan()),
                nodes: nodes(),
                operator: "alice".into(),
                auto: AutoConfirm::default(),
                lb: Some("lab".into()),
                health_probes: vec!["health".into()],
                target: None,
            },
        );
        s.push(
            10,
            Event::OperatorJoined {
                id: 1,
                name: "alice".into(),
                driver: true,
                user: Some("alice".into()),
                uid: Some(1000),
            },
        );
        s.push(
            40,
            Event::OperatorJoined {
                id: 2,
                name: "bob".into(),
                driver: false,
                user: Some("bob".into()),
                uid: Some(1001),
            },
        );
        for n in NODES {
            s.facts(n, &[("version", "8.1.7"), ("read_only", "false")]);
        }
        s.push(
            100,
            Event::LbChanged {
                backends: backends([Membership::Ready; 3]),
                error: None,
            },
        );
        for round in 0..6u64 {
            for (i, n) in NODES.iter().enumerate() {
                s.probe(n, true, 8 + (round * 7 + i as u64 * 5) % 17);
            }
            s.traffic(120, 0, 38, 0);
        }
        s
    }

    pub fn push(&mut self, after_ms: u64, event: Event) -> &mut Self {
        self.t_ms += after_ms;
        self.events.push(Stamped {
            seq: self.events.len() as u64 + 1,
            t_ms: self.t_ms,
            event,
        });
        self
    }

    pub fn facts(&mut self, node: &str, facts: &[(&str, &str)]) -> &mut Self {
        self.push(
            50,
            Event::NodeFacts {
                node: node.into(),
                facts: facts
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                prior_sent_ms: None,
            },
        )
    }

    pub fn probe(&mut self, node: &str, ok: bool, latency_ms: u64) -> &mut Self {
        self.push(
            300,
            Event::ProbeSample {
                probe: "health".into(),
                node: Some(node.into()),
                ok,
                latency_ms,
                detail: if ok {
                    "HTTP 200".into()
                } else {
                    "connection refused".into()
                },
            },
        )
    }

    pub fn traffic(
        &mut self,
        reads: u64,
        reads_failed: u64,
        writes: u64,
        rejected: u64,
    ) -> &mut Self {
        self.push(
            100,
            Event::Traffic {
                window_ms: 1000,
                counts: TrafficWindow {
                    reads_ok: reads,
                    reads_failed,
                    writes_ok: writes,
                    writes_rejected: rejected,
                    writes_failed: 0,
                },
            },
        )
    }

    pub fn lb(&mut self, membership: [Membership; 3]) -> &mut Self {
        self.push(
            200,
            Event::LbChanged {
                backends: backends(membership),
                error: None,
            },
        )
    }

    /// Open a prompt; returns its id.
    pub fn prompt(&mut self, step: usize, kind: PromptKind) -> u64 {
        self.next_prompt += 1;
        let id = self.next_prompt;
        self.push(
            500,
            Event::PromptOpened {
                id,
                step,
                prompt: kind,
            },
        );
        id
    }

    pub fn start(&mut self, step: usize) -> &mut Self {
        self.push(
            200,
            Event::ActionStarted {
                step,
                phase: Phase::Do,
                attempt: 1,
            },
        )
    }

    pub fn output(&mut self, step: usize, stream: Stream, line: &str) -> &mut Self {
        self.push(
            400,
            Event::Output {
                step,
                phase: Phase::Do,
                stream,
                line: line.into(),
            },
        )
    }

    pub fn finish(&mut self, step: usize, verdict: Verdict, detail: &str) -> &mut Self {
        self.push(
            1500,
            Event::ActionFinished {
                step,
                phase: Phase::Do,
                attempt: 1,
                verdict,
                detail: detail.into(),
            },
        )
    }

    /// Prompt (when the step asks), confirm by alice, run, succeed.
    pub fn complete(&mut self, step: usize, lines: &[&str]) -> &mut Self {
        let confirm = plan().steps.get(step).map(|s| s.confirm.clone());
        let by = "alice".to_string();
        if confirm != Some(Confirm::None) {
            self.prompt(step, PromptKind::Run);
            self.push(
                2500,
                Event::Confirmed {
                    step,
                    by,
                    auto: false,
                },
            );
        }
        self.start(step);
        for l in lines {
            self.output(step, Stream::Stdout, l);
        }
        self.finish(step, Verdict::Passed, "exit 0")
    }

    /// The first steps done, up to (not including) `upto`, with the world changing as they
    /// would: read-only on, jahia1 drained and upgraded.
    pub fn through(&mut self, upto: usize) -> &mut Self {
        for i in 0..upto {
            match i {
                0 => self.complete(0, &[]),
                1 => self.complete(1, &[]),
                2 => self.complete(2, &["dumping 214 tables", "wrote 1.8 GiB"]),
                3 => {
                    self.complete(3, &["HTTP 200 {\"readOnly\":true}"]);
                    for n in NODES {
                        self.facts(n, &[("read_only", "true")]);
                    }
                    self.traffic(118, 0, 0, 41)
                }
                4 => {
                    self.complete(4, &[]);
                    self.lb([Membership::Drain, Membership::Ready, Membership::Ready])
                }
                5 => {
                    self.complete(
                        5,
                        &["stopping jahia1", "installing 8.2.0", "starting jahia1"],
                    );
                    self.facts("jahia1", &[("version", "8.2.0")])
                }
                6 => {
                    let id = self.prompt(6, PromptKind::Run);
                    self.push(
                        900,
                        Event::Approved {
                            step: 6,
                            by: "alice".into(),
                            uid: Some(1000),
                            confirm: true,
                        },
                    );
                    self.push(
                        4000,
                        Event::Approved {
                            step: 6,
                            by: "bob".into(),
                            uid: Some(1001),
                            confirm: false,
                        },
                    );
                    let _ = id;
                    self.push(
                        10,
                        Event::Confirmed {
                            step: 6,
                            by: "alice".into(),
                            auto: false,
                        },
                    );
                    self.start(6);
                    self.output(6, Stream::Stdout, "applying 8.2.0 schema changes (41)");
                    self.finish(6, Verdict::Passed, "exit 0")
                }
                7 => {
                    self.complete(7, &[]);
                    self.lb([Membership::Ready, Membership::Ready, Membership::Ready])
                }
                n => self.complete(n, &[]),
            };
        }
        self
    }

    pub fn events(&self) -> &[Stamped] {
        &self.events
    }
}
