//! Guards the engine enforces (`[[guards]]`): a drain sent over the session's socket (not through
//! the cockpit) that would take a second master-eligible node out is refused with the guard's
//! reason; the phrase override is journaled with the kernel's user; `--yes` stops at the refusal;
//! the plan shows the guards; `check` points at a bad guard.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::socket::OverSocket;

use flightdeck::engine::event::{AutoConfirm, Event};
use flightdeck::engine::session::{self, EngineConfig, EngineTask};
use flightdeck::engine::state::StepStatus;
use flightdeck::engine::{Command, SessionState};
use flightdeck::journal;
use flightdeck::lab::{Lab, LabConfig, Product, Timing};
use flightdeck::plan::expand::build_plan;
use flightdeck::procedure::load::{load_procedure, parse_procedure};
use flightdeck::procedure::model::Membership;
use flightdeck::target::Target;

/// Three master-eligible nodes behind the lab's balancer, drained one after the other with no
/// step in between to bring the first back: the guard must stop the second drain.
const PROCEDURE: &str = r#"name = "guarded-drains"
product = "generic"

[[guards]]
name = "master-quorum"
nodes = "master=true"
max_out = 1
why = "two of three master-eligible nodes out lose the quorum of the voting configuration"

[[steps]]
id = "drain"
title = "Drain ${node.name}"
for_each = "nodes"
confirm = "yes"
action = { kind = "lb", node = "${node.name}", state = "drain" }
undo = { kind = "lb", node = "${node.name}", state = "ready" }
"#;

/// The lab's target, every node master-eligible (as a real cluster's target tags them).
fn masters(lab: &Lab) -> Target {
    let mut t = lab.target().clone();
    for n in &mut t.nodes {
        n.tags.insert("master".into(), "true".into());
    }
    t
}

fn start(lab: &Lab, dir: &Path, auto: AutoConfirm) -> EngineTask {
    let lp = parse_procedure(&dir.join("guarded.toml"), PROCEDURE.into()).unwrap();
    let target = masters(lab);
    let d = flightdeck::procedure::validate::validate(&lp, Some(&target));
    assert!(d.is_empty(), "{d}");
    let plan = build_plan(&lp, &target, &Default::default()).unwrap();
    session::start(EngineConfig {
        plan,
        target,
        auto,
        operator: "tester".into(),
        journal: dir.join("j.jsonl"),
        observe: true,
        time_scale: 1.0,
    })
    .unwrap()
}

fn membership(snap: &flightdeck::lab::LabSnapshot, node: &str) -> Membership {
    snap.backends
        .iter()
        .find(|b| b.node.as_deref() == Some(node) || b.server == node)
        .map(|b| b.membership)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_master_drain_over_the_socket_is_refused_until_overridden() {
    let lab = Lab::start(LabConfig::new(Product::Generic, 3, Timing::fast()))
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let task = start(&lab, tmp.path(), AutoConfirm::default());
    let mut alice = OverSocket::join(task, tmp.path(), "guards", "alice").await;
    alice
        .confirm("drain@node1")
        .await
        .expect("the first drain is within the guard");
    alice
        .until(|s| s.steps[0].status == StepStatus::Succeeded)
        .await;
    let refused = alice
        .confirm("drain@node2")
        .await
        .expect_err("a second master out breaks the guard");
    assert_eq!(
        refused,
        "guard `master-quorum` refuses to take node2 out of service: of master=true (node1, \
         node2, node3), 1 may be out at once (at most 1 out), and 1 out already (node1: drain in \
         the balancer (by this session)). Why: two of three master-eligible nodes out lose the quorum \
         of the voting configuration. Override only by typing `override master-quorum for \
         node2` and saying why (journaled with your user)"
    );
    let snap = lab.snapshot().await;
    assert_eq!(membership(&snap, "node2"), Membership::Ready, "nothing ran");
    // The override needs the exact phrase and a reason.
    for (phrase, reason, want) in [
        (
            "override master-quorum",
            "node3 is the master",
            "type the phrase exactly: override master-quorum for node2",
        ),
        (
            "override master-quorum for node2",
            " ",
            "say why you take node2 out despite guard `master-quorum`",
        ),
    ] {
        let r = alice
            .send(Command::OverrideGuard {
                step: 1,
                phrase: phrase.into(),
                reason: reason.into(),
            })
            .await
            .unwrap_err();
        assert!(r.starts_with(want), "{r}");
    }
    alice
        .send(Command::OverrideGuard {
            step: 1,
            phrase: "override master-quorum for node2".into(),
            reason: "node1 is being replaced; the voting configuration excludes it".into(),
        })
        .await
        .expect("the override is accepted");
    alice
        .confirm("drain@node2")
        .await
        .expect("overridden, the drain runs");
    alice
        .until(|s| s.steps[1].status == StepStatus::Succeeded)
        .await;
    // The override was for that one action: the third drain is refused again.
    let again = alice.confirm("drain@node3").await.unwrap_err();
    assert!(
        again.contains("2 out already (node1: drain in the balancer (by this session); node2:"),
        "{again}"
    );
    let snap = lab.snapshot().await;
    assert_eq!(membership(&snap, "node2"), Membership::Drain);
    assert_eq!(membership(&snap, "node3"), Membership::Ready);
    alice.end().await;
    lab.shutdown().await;

    let j = journal::read(&tmp.path().join("j.jsonl")).unwrap();
    let refusals: Vec<(usize, String, String)> = j
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Event::GuardRefused {
                step, node, guard, ..
            } => Some((*step, node.clone(), guard.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        refusals,
        [
            (1, "node2".into(), "master-quorum".into()),
            (2, "node3".into(), "master-quorum".into())
        ]
    );
    let o = j
        .events
        .iter()
        .find_map(|e| match &e.event {
            Event::GuardOverridden {
                step,
                guard,
                node,
                uid,
                reason,
                refusal,
                ..
            } => Some((
                *step,
                guard.clone(),
                node.clone(),
                *uid,
                reason.clone(),
                refusal.clone(),
            )),
            _ => None,
        })
        .expect("the override is journaled");
    // The kernel's word for who sent it (SO_PEERCRED), not the name the client gave.
    assert_eq!(o.3, Some(nix::unistd::getuid().as_raw()));
    assert_eq!(
        (o.0, o.1.as_str(), o.2.as_str(), o.4.as_str()),
        (
            1,
            "master-quorum",
            "node2",
            "node1 is being replaced; the voting configuration excludes it"
        )
    );
    assert!(o.5.starts_with("guard `master-quorum` refuses"), "{}", o.5);
    // The fold of the journal agrees, and the report says who, why and what the guard said.
    let folded = SessionState::fold(&j.events);
    assert_eq!(folded.guard_override_log.len(), 1);
    let r = flightdeck::report::build(&j);
    let md = flightdeck::report::markdown(&r);
    // By the kernel's name for the socket's peer, not the "alice" the client said it was.
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    assert!(
        md.contains(&format!(
            "| Guard overridden | master-quorum for step 2 (took node2 out) by {me}: node1 is \
             being replaced; the voting configuration excludes it (refused because guard \
             `master-quorum` refuses"
        )),
        "{md}"
    );
    let json: serde_json::Value = serde_json::from_str(&flightdeck::report::json(&r)).unwrap();
    assert_eq!(json["guard_overrides"][0]["guard"], "master-quorum");
    assert_eq!(
        json["guard_overrides"][0]["uid"],
        nix::unistd::getuid().as_raw()
    );
}

/// procedures/elasticsearch-rolling.toml on its data-made lab, driven over the socket as a
/// second operator's client (or a script) does. node2 was left drained in the balancer by hand;
/// draining node1 as well would leave two of the three master-eligible nodes out: the
/// procedure's guards refuse it with their reasons, and each override is its own journaled
/// decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_elasticsearch_procedure_refuses_draining_a_second_master_eligible_node_over_the_socket(
) {
    let lp = load_procedure(Path::new("procedures/elasticsearch-rolling.toml")).unwrap();
    let es = flightdeck::lab::data::load(Path::new("procedures/labs/elasticsearch.toml")).unwrap();
    let lab = Lab::start(LabConfig::with_personality(Arc::new(es), 3, Timing::fast()))
        .await
        .unwrap();
    let target = lab.target_for(&lp.procedure);
    let plan = build_plan(&lp, &target, &Default::default()).unwrap();
    // The plan says which guards watch which nodes.
    assert_eq!(
        plan.guards
            .rules
            .iter()
            .map(|g| (g.name.as_str(), g.nodes.len(), g.max_out))
            .collect::<Vec<_>>(),
        [("master-quorum", 3, 1), ("one-node-at-a-time", 3, 1)]
    );
    let status = flightdeck::lab::http_client()
        .unwrap()
        .put(format!("{}/_lab/lb/backends/node2", lab.admin_url()))
        .json(&serde_json::json!({"state": "drain"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
    let tmp = tempfile::tempdir().unwrap();
    let task = session::start(EngineConfig {
        plan,
        target,
        auto: AutoConfirm::default(),
        operator: "tester".into(),
        journal: tmp.path().join("j.jsonl"),
        observe: true,
        time_scale: common::LAB_SCALE,
    })
    .unwrap();
    let mut op = OverSocket::join(task, tmp.path(), "es", "alice").await;
    // The engine has seen the balancer drain node2.
    op.until(|s| {
        s.lb.iter()
            .any(|b| b.server == "node2" && b.membership == Membership::Drain)
    })
    .await;
    op.confirm_until("drain@node1").await;
    let refused = op.confirm("drain@node1").await.unwrap_err();
    assert_eq!(
        refused,
        "guard `master-quorum` refuses to take node1 out of service: of master_eligible=true \
         (node1, node2, node3), 1 may be out at once (at most 1 out), and 1 out already (node2: \
         drain in the balancer). Why: Elasticsearch elects a master and commits cluster state \
         only while more than half of the voting configuration (the master-eligible nodes) runs: \
         with three or four master-eligible nodes one may be down, a second leaves the cluster \
         without a master (Elastic docs, Voting configurations, 9.x and 8.19). Override only by \
         typing `override master-quorum for node1` and saying why (journaled with your user)"
    );
    let step = op.step("drain@node1").await;
    op.send(Command::OverrideGuard {
        step,
        phrase: "override master-quorum for node1".into(),
        reason: "node2 is drained for a disk swap but still votes".into(),
    })
    .await
    .expect("the override is accepted");
    // The other guard still holds: each is its own decision.
    let refused = op.confirm("drain@node1").await.unwrap_err();
    assert!(
        refused.starts_with("guard `one-node-at-a-time` refuses to take node1 out of service"),
        "{refused}"
    );
    assert_eq!(
        membership(&lab.snapshot().await, "node1"),
        Membership::Ready,
        "nothing ran"
    );
    op.send(Command::OverrideGuard {
        step,
        phrase: "override one-node-at-a-time for node1".into(),
        reason: "every index has two replicas on this cluster".into(),
    })
    .await
    .expect("the second override is accepted");
    op.confirm("drain@node1")
        .await
        .expect("overridden twice, the drain runs");
    op.until(|s| s.steps[step].status == StepStatus::Succeeded)
        .await;
    let snap = lab.snapshot().await;
    assert_eq!(
        (membership(&snap, "node1"), membership(&snap, "node2")),
        (Membership::Drain, Membership::Drain)
    );
    op.end().await;
    lab.shutdown().await;

    let j = journal::read(&tmp.path().join("j.jsonl")).unwrap();
    let decisions: Vec<String> = j
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Event::GuardRefused { guard, node, .. } => Some(format!("refused {guard} {node}")),
            Event::GuardOverridden {
                guard,
                node,
                reason,
                uid,
                ..
            } => {
                assert_eq!(*uid, Some(nix::unistd::getuid().as_raw()));
                Some(format!("overridden {guard} {node}: {reason}"))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        decisions,
        [
            "refused master-quorum node1",
            "overridden master-quorum node1: node2 is drained for a disk swap but still votes",
            "refused one-node-at-a-time node1",
            "overridden one-node-at-a-time node1: every index has two replicas on this cluster",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yes_stops_at_the_guard_and_says_why() {
    let lab = Lab::start(LabConfig::new(Product::Generic, 3, Timing::fast()))
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let task = start(
        &lab,
        tmp.path(),
        AutoConfirm {
            yes: true,
            ..Default::default()
        },
    );
    let mut out = Vec::new();
    let (end, state) = flightdeck::headless::follow(task, &mut out).await;
    assert!(!end.ok);
    assert!(
        end.summary.starts_with(
            "stopped: step 2 (drain@node2): guard `master-quorum` refuses to take node2 out"
        ),
        "{}",
        end.summary
    );
    assert_eq!(
        state.steps[1].status,
        StepStatus::Awaiting,
        "asked, never run"
    );
    let snap = lab.snapshot().await;
    assert_eq!(membership(&snap, "node2"), Membership::Ready);
    lab.shutdown().await;
}

#[test]
fn the_plan_shows_the_guards_and_check_points_at_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let t_path = dir.path().join("t.toml");
    std::fs::write(
        &t_path,
        "name = \"es\"\n[[nodes]]\nname = \"es1\"\naddress = \"10.0.0.1:9200\"\ntags = { master = \"true\" }\n\
         [[nodes]]\nname = \"es2\"\naddress = \"10.0.0.2:9200\"\ntags = { master = \"true\" }\n\
         [[nodes]]\nname = \"es3\"\naddress = \"10.0.0.3:9200\"\ntags = { master = \"false\" }\n\
         [[nodes]]\nname = \"es4\"\naddress = \"10.0.0.4:9200\"\ntags = { master = \"true\" }\n",
    )
    .unwrap();
    let t = flightdeck::target_load::load_target(&t_path).unwrap();
    let p_path = dir.path().join("p.toml");
    std::fs::write(
        &p_path,
        r#"name = "es-rolling"
product = "generic"

[[guards]]
name = "masters"
nodes = "master=true"
max_out = "50%"
why = "a majority of master-eligible nodes elects the master"

[[guards]]
name = "serving"
min_in = 2
why = "two nodes carry the search load"

[[steps]]
id = "stop"
title = "Stop ${node.name}"
for_each = "nodes"
action = { kind = "call", name = "stop" }
"#,
    )
    .unwrap();
    let lp = load_procedure(&p_path).unwrap();
    let mut t2 = t.clone();
    t2.actions.insert(
        "stop".into(),
        flightdeck::procedure::model::Action::Manual {
            text: "systemctl stop elasticsearch".into(),
        },
    );
    let plan = build_plan(&lp, &t2, &Default::default()).unwrap();
    let g = &plan.guards.rules;
    assert_eq!(
        (
            g[0].nodes.len(),
            g[0].max_out,
            g[1].nodes.len(),
            g[1].max_out
        ),
        (3, 1, 4, 2)
    );
    assert_eq!(plan.guards.takes_out["stop@es3"], "es3");
    let text = flightdeck::plan::render::render_plan(&plan, &t2);
    assert!(
        text.contains(
            "Guard masters: of master=true (es1, es2, es4), at most 1 out of service at once \
             (at most 50% out (1)); 3 steps take one out; enforced by the engine. Why: a \
             majority of master-eligible nodes elects the master"
        ),
        "{text}"
    );
    assert!(
        text.contains("takes es1 out of service (guards apply)"),
        "{text}"
    );
    let json = flightdeck::plan::export::plan_json(&plan, &t2);
    assert_eq!(json["guards"][1]["name"], "serving");
    assert_eq!(json["steps"][0]["takes_out"], "es1");
    let md = flightdeck::plan::export::plan_markdown(&plan, &t2);
    assert!(md.contains("## Guards\n\n- Guard masters:"), "{md}");

    // A bad guard, each problem where it is written.
    std::fs::write(
        &p_path,
        r#"name = "p"
product = "generic"

[[guards]]
name = "masters"
nodes = "mastr=true"
max_out = "150%"
why = ""

[[guards]]
name = "masters"
why = "x"

[[steps]]
id = "restart"
title = "Restart"
takes_out = true
action = { kind = "manual", text = "restart it" }
"#,
    )
    .unwrap();
    let p = p_path.display();
    let e = load_procedure(&p_path).unwrap_err().to_string();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{p}:7:11: `max_out = \"150%\"` is not a count or a share from 1% to 100% (e.g. `1`, `\"50%\"`)"),
            format!("{p}:8:7: say why the guard exists (the refusal quotes it)"),
            format!("{p}:10:1: guard `masters` sets no limit: add `max_out = 1` (or a share, `\"50%\"`) or `min_in = 1`"),
            format!("{p}:11:8: duplicate guard name `masters`"),
            format!("{p}:17:13: `takes_out = true` takes out the loop's node: put the step in a node loop (`for_each`)"),
        ]
    );
    // With the target, the selection must name a tag its nodes have.
    std::fs::write(
        &p_path,
        "name = \"p\"\nproduct = \"generic\"\n[[guards]]\nname = \"m\"\nnodes = \"mastr=true\"\nmax_out = 1\nwhy = \"w\"\n\
         [[steps]]\nid = \"a\"\ntitle = \"A\"\naction = { kind = \"manual\", text = \"x\" }\n",
    )
    .unwrap();
    let lp = load_procedure(&p_path).unwrap();
    assert_eq!(
        flightdeck::procedure::validate::validate(&lp, Some(&t)).to_string(),
        format!("{p}:5:9: no node of target `es` has `mastr`")
    );
}
