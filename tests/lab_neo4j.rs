//! The Neo4j personality: causal-cluster endpoints and the blue/green rebuild with backup,
//! restore, SINGLE + allow_upgrade.

mod lab_util;

use flightdeck::lab::Product;
use flightdeck::lb::LbClient;
use flightdeck::procedure::model::Membership;
use lab_util::*;
use serde_json::json;

#[tokio::test]
async fn blue_green_rebuild() {
    let lab = lab(Product::Neo4j, 2).await;
    let snap = snapshot(&lab).await;
    assert_eq!(snap.nodes.len(), 4);
    let groups: Vec<_> = snap
        .nodes
        .iter()
        .map(|n| n.group.clone().unwrap())
        .collect();
    assert_eq!(groups, ["blue", "blue", "green", "green"]);
    assert_eq!(lab.target().nodes[2].tags["group"], "green");
    assert_eq!(node(&lab, "node3").await.version, "3.3.5");
    assert_eq!(node(&lab, "node3").await.state.as_str(), "stopped");
    let maint: Vec<_> = snap
        .backends
        .iter()
        .filter(|b| b.membership == Membership::Maint)
        .map(|b| b.server.as_str())
        .collect();
    assert_eq!(maint, ["node3", "node4"]);

    let n1 = url(&lab, "node1").await;
    let n2 = url(&lab, "node2").await;
    let cc = "db/manage/server/causalclustering";
    assert_eq!(
        get(&format!("{n1}/{cc}/writable")).await,
        (200, "true".into())
    );
    assert_eq!(
        get(&format!("{n2}/{cc}/writable")).await,
        (404, "false".into())
    );
    assert_eq!(
        get(&format!("{n2}/{cc}/read-only")).await,
        (200, "true".into())
    );
    assert_eq!(
        get(&format!("{n2}/db/manage/server/core/available")).await,
        (200, "true".into())
    );
    let (_, st) = get_json(&format!("{n1}/{cc}/status")).await;
    assert_eq!(st["votingMembers"].as_array().unwrap().len(), 2);
    assert_eq!(st["leader"], st["memberId"]);

    assert_eq!(put(&format!("{n1}/kv/person"), "ada").await.0, 200);
    for n in ["node1", "node2"] {
        op_ok(&lab, n, "read-only-on", json!({})).await;
    }
    assert_eq!(put(&format!("{n1}/kv/person"), "bob").await.1, "read-only");
    // A backup of the blue group, taken through the cluster admin server.
    let r = client()
        .post(format!("{}/_lab/backup", lab.admin_url()))
        .json(&json!({"name": "full", "group": "blue"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(answer["from"], "node1");

    // A restore needs a stopped node.
    assert_eq!(
        op(&lab, "node1", "restore", json!({"name": "full"}))
            .await
            .0,
        409
    );

    // CORE on an old store without allow_upgrade refuses to start.
    op_ok(&lab, "node4", "restore", json!({"name": "full"})).await;
    assert_eq!(node(&lab, "node4").await.store_format, 3002);
    op_ok(&lab, "node4", "start", json!({})).await;
    let refused = wait_state(&lab, "node4", "failed").await;
    assert!(refused.reason.unwrap().contains("allow_upgrade"));

    // SINGLE + allow_upgrade upgrades the store.
    op_ok(
        &lab,
        "node3",
        "config",
        json!({"mode": "SINGLE", "allow_upgrade": "true"}),
    )
    .await;
    op_ok(
        &lab,
        "node3",
        "restore",
        json!({"name": "full", "force": true}),
    )
    .await;
    op_ok(&lab, "node3", "start", json!({})).await;
    let up = wait_state(&lab, "node3", "running").await;
    assert_eq!(up.store_format, 3003);
    assert_eq!(up.mode, "SINGLE");
    op_ok(&lab, "node3", "stop", json!({})).await;
    op_ok(
        &lab,
        "node3",
        "configure",
        json!({"mode": "CORE", "allow_upgrade": false}),
    )
    .await;
    op_ok(&lab, "node3", "backup", json!({"name": "upgraded"})).await;

    // Seeding node4 over its data needs force.
    let (status, answer) = op(&lab, "node4", "restore", json!({"name": "upgraded"})).await;
    assert_eq!(status, 409, "{answer}");
    op_ok(
        &lab,
        "node4",
        "restore",
        json!({"name": "upgraded", "force": true}),
    )
    .await;

    // Switch: old cluster down, balancer to the new one, new one up.
    let lb = LbClient::from_config(lab.target().lb.as_ref().unwrap()).unwrap();
    for n in ["node1", "node2"] {
        lb.set_membership(n, Membership::Maint, None).await.unwrap();
        op_ok(&lab, n, "stop", json!({})).await;
    }
    for n in ["node3", "node4"] {
        op_ok(&lab, n, "start", json!({})).await;
    }
    for n in ["node3", "node4"] {
        let s = wait_state(&lab, n, "running").await;
        assert_eq!(s.store_format, 3003);
        assert!(!s.read_only);
        lb.set_membership(n, Membership::Ready, None).await.unwrap();
    }
    let front = format!("http://{}", lab.lb_frontend());
    eventually("the new cluster serves", || async {
        let (status, body) = get(&format!("{front}/kv/person")).await;
        (status == 200 && body == "ada").then_some(())
    })
    .await;
    assert_eq!(put(&format!("{front}/kv/person"), "cy").await.0, 200);
    assert_eq!(node(&lab, "node3").await.role, "leader");
    lab.shutdown().await;
}
