//! The Neo4j personality: causal-cluster endpoints and the blue/green rebuild with backup,
//! restore, SINGLE + allow_upgrade.

mod lab_util;

use flightdeck::lab::Product;
use flightdeck::lb::LbClient;
use flightdeck::procedure::model::Membership;
use lab_util::*;
use serde_json::json;

/// The `Authorization` value the lab's Neo4j accepts, read as its target reads it: from the
/// token file its secret names.
fn neo4j_auth(lab: &flightdeck::lab::Lab) -> String {
    let file = lab.target().secrets["neo4j_basic_auth"]
        .file
        .clone()
        .expect("the lab's Neo4j credentials are a file secret");
    format!("Basic {}", std::fs::read_to_string(file).unwrap().trim())
}

/// `GET url` with the lab's Neo4j credentials.
async fn aget(lab: &flightdeck::lab::Lab, url: &str) -> (u16, String) {
    let r = client()
        .get(url)
        .header("Authorization", neo4j_auth(lab))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn aget_json(lab: &flightdeck::lab::Lab, url: &str) -> (u16, serde_json::Value) {
    let (status, text) = aget(lab, url).await;
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// `POST url` a transactional-endpoint body `tx` with the lab's Neo4j credentials: the status
/// and the JSON answer.
async fn post_tx(
    lab: &flightdeck::lab::Lab,
    tx: &str,
    url: impl AsRef<str>,
) -> (u16, serde_json::Value) {
    let r = client()
        .post(url.as_ref())
        .header("Authorization", neo4j_auth(lab))
        .header("Content-Type", "application/json")
        .body(tx.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json::<serde_json::Value>().await.unwrap())
}

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
        aget(&lab, &format!("{n1}/{cc}/writable")).await,
        (200, "true".into())
    );
    assert_eq!(
        aget(&lab, &format!("{n2}/{cc}/writable")).await,
        (404, "false".into())
    );
    assert_eq!(
        aget(&lab, &format!("{n2}/{cc}/read-only")).await,
        (200, "true".into())
    );
    assert_eq!(
        aget(&lab, &format!("{n2}/db/manage/server/core/available")).await,
        (200, "true".into())
    );
    let (_, st) = aget_json(&lab, &format!("{n1}/{cc}/status")).await;
    assert_eq!(st["votingMembers"].as_array().unwrap().len(), 2);
    assert_eq!(st["leader"], st["memberId"]);

    assert_eq!(put(&format!("{n1}/kv/person"), "ada").await.0, 200);
    for n in ["node1", "node2"] {
        op_ok(&lab, n, "read-only-on", json!({})).await;
        // dbms.read_only is read at start-up: the running core restarts to take it.
        assert_ne!(node(&lab, n).await.state.as_str(), "running");
        wait_state(&lab, n, "running").await;
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
    op_answers(&lab, "node4", "restore", json!({"name": "upgraded"}), 409).await;
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

/// Neo4j 3.x causal clustering: only the Raft leader takes writes. A follower answers a write on
/// the transactional endpoint with 200 and `Neo.ClientError.Cluster.NotALeader` in `errors`
/// (`LeaderCanWrite.java`), and `core/writable` 404; so the seed's old write check — a POST
/// through the round-robin balancer — fails on followers, while a write routed to the leader
/// commits. A read-only core refuses with `ForbiddenOnReadOnlyDatabase`.
#[tokio::test]
async fn followers_refuse_writes_so_a_write_through_the_balancer_fails() {
    let lab = lab(Product::Neo4j, 3).await;
    let tx = r#"{"statements":[{"statement":"MERGE (c:FlightdeckCheck {id: 1}) SET c.version = $v","parameters":{"v":"3.2.14"}}]}"#;
    let n1 = url(&lab, "node1").await;
    let n2 = url(&lab, "node2").await;
    assert_eq!(
        aget(&lab, &format!("{n2}/db/manage/server/core/writable")).await,
        (404, "false".into())
    );
    let (status, body) = post_tx(&lab, tx, format!("{n2}/db/data/transaction/commit")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["errors"][0]["code"],
        "Neo.ClientError.Cluster.NotALeader"
    );
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("Writes must pass through the leader"));
    let (_, body) = post_tx(&lab, tx, format!("{n1}/db/data/transaction/commit")).await;
    assert_eq!(body["errors"], json!([]), "{body}");

    // The old write check: through the balancer, which spreads requests over the members.
    let front = format!("http://{}/db/data/transaction/commit", lab.lb_frontend());
    let mut refused = 0;
    for _ in 0..6 {
        let (_, body) = post_tx(&lab, tx, front.clone()).await;
        if body["errors"][0]["code"] == "Neo.ClientError.Cluster.NotALeader" {
            refused += 1;
        }
    }
    assert!(refused > 0, "no write through the balancer hit a follower");

    // The fixed one: routed to the group's leader, as a routing driver does.
    let (status, body) =
        post_tx(&lab, tx, format!("{}/_lab/routed-tx/blue", lab.admin_url())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errors"], json!([]), "{body}");
    let (status, body) = post_tx(
        &lab,
        tx,
        format!("{}/_lab/routed-tx/green", lab.admin_url()),
    )
    .await;
    assert_eq!(status, 503, "green is stopped: no leader: {body}");

    // A read-only leader refuses with the read-only error.
    op_ok(&lab, "node1", "read-only-on", json!({})).await;
    wait_state(&lab, "node1", "running").await;
    let (_, body) = post_tx(&lab, tx, format!("{n1}/db/data/transaction/commit")).await;
    assert_eq!(
        body["errors"][0]["code"], "Neo.ClientError.General.ForbiddenOnReadOnlyDatabase",
        "{body}"
    );
    // dbms.cluster.overview() lists the members a core sees.
    let overview = r#"{"statements":[{"statement":"CALL dbms.cluster.overview()"}]}"#;
    let (_, body) = post_tx(&lab, overview, format!("{n2}/db/data/transaction/commit")).await;
    assert_eq!(
        body["results"][0]["data"].as_array().unwrap().len(),
        3,
        "{body}"
    );
    lab.shutdown().await;
}

/// The procedure's `read-only-rejoined` gate (a step of the plan on this lab), judged once on
/// every blue core: (node, passed, what it saw).
async fn rejoined_gate(lab: &flightdeck::lab::Lab) -> Vec<(String, bool, String)> {
    use flightdeck::engine::{check, hold, strings::Secrets};
    use flightdeck::plan::expand::{build_plan, PlanOptions};
    use flightdeck::procedure::model::Action;
    let lp = flightdeck::procedure::load::load_procedure(std::path::Path::new(
        "procedures/neo4j-causal-cluster.toml",
    ))
    .unwrap();
    let target = lab.target_for(&lp.procedure);
    let plan = build_plan(&lp, &target, &PlanOptions::default()).unwrap();
    let step = plan
        .steps
        .iter()
        .find(|s| s.step_id == "read-only-rejoined")
        .unwrap();
    let (Action::Wait(gate), Some(Action::Wait(undo))) = (&step.action, &step.undo) else {
        panic!("read-only-rejoined is not a gate with a gate as its undo: {step:?}");
    };
    // The rollback passes the same gate before each core's restart back to read/write.
    assert_eq!(gate.check, undo.check);
    let secrets = Secrets::from_env(&target.secrets);
    let http = check::http_client();
    let mut out = Vec::new();
    for (node, c) in hold::gate_instances(gate, &target, &secrets).unwrap() {
        let r = check::run_check(&c, &http, &secrets).await;
        out.push((node.unwrap_or_default(), r.ok, r.detail));
    }
    out
}

/// Raft quorum (Neo4j 3.3 operations manual, "Causal Clustering: Introduction"; knowledge base
/// "Understanding causal cluster quorum and cluster recovery"): a 3-core cluster with two cores
/// down has no leader and takes no write — what the old procedure risked by restarting the next
/// core before the previous one had rejoined. The lab loses its leader the same way, and the
/// procedure's gate between the restarts holds only while the cluster is whole.
#[tokio::test]
async fn two_cores_down_of_three_is_no_quorum_no_leader_no_write() {
    let lab = lab(Product::Neo4j, 3).await;
    let n1 = url(&lab, "node1").await;
    let tx = r#"{"statements":[{"statement":"MERGE (c:FlightdeckCheck {id: 1}) SET c.at = 1"}]}"#;
    let routed = format!("{}/_lab/routed-tx/blue", lab.admin_url());
    // Whole: a leader, the gate holds on every core.
    assert_eq!(
        aget(&lab, &format!("{n1}/db/manage/server/core/writable")).await,
        (200, "true".into())
    );
    let gate = rejoined_gate(&lab).await;
    assert!(gate.iter().all(|(_, ok, _)| *ok), "{gate:?}");

    // One core restarting (node2 down): 2 of 3 still elect a leader, but the gate waits.
    op_ok(&lab, "node2", "stop", json!({})).await;
    assert_eq!(
        aget(&lab, &format!("{n1}/db/manage/server/core/writable")).await,
        (200, "true".into())
    );
    let gate = rejoined_gate(&lab).await;
    assert!(
        gate.iter().any(|(n, ok, _)| n == "node1" && !ok),
        "the gate passes with node2 down: {gate:?}"
    );

    // The wrong action: the next core goes down before node2 is back. 1 of 3: no quorum.
    op_ok(&lab, "node3", "stop", json!({})).await;
    let n = node(&lab, "node1").await;
    assert_eq!(n.role, "follower", "{n:?}");
    let reason = n.reason.unwrap_or_default();
    assert!(
        reason.contains("no leader: 1 of 3 cores running"),
        "{reason}"
    );
    assert_eq!(
        aget(&lab, &format!("{n1}/db/manage/server/core/writable")).await,
        (404, "false".into())
    );
    let (_, st) = aget_json(
        &lab,
        &format!("{n1}/db/manage/server/causalclustering/status"),
    )
    .await;
    assert!(st.get("leader").is_none(), "{st}");
    // No write commits anywhere: on the core itself, routed like a driver, or as data.
    let (_, body) = post_tx(&lab, tx, format!("{n1}/db/data/transaction/commit")).await;
    assert_eq!(
        body["errors"][0]["code"], "Neo.ClientError.Cluster.NotALeader",
        "{body}"
    );
    let (status, body) = post_tx(&lab, tx, routed.clone()).await;
    assert_eq!(status, 503, "{body}");
    let (status, said) = put(&format!("{n1}/kv/person"), "ada").await;
    assert_eq!(status, 503, "{said}");
    assert!(said.contains("no leader"), "{said}");
    // Reads go on.
    assert_eq!(get(&format!("{n1}/kv/lab")).await.0, 200);
    // The gate sees it too: one member, no LEADER.
    let gate = rejoined_gate(&lab).await;
    assert!(
        gate.iter().any(|(n, ok, _)| n == "node1" && !ok),
        "{gate:?}"
    );

    // A majority back: a leader again, the write commits.
    op_ok(&lab, "node3", "start", json!({})).await;
    wait_state(&lab, "node3", "running").await;
    let (status, body) = post_tx(&lab, tx, routed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errors"], json!([]), "{body}");
    lab.shutdown().await;
}

/// N4 (Neo4j 3.3 operations manual, "Backup": `dbms.backup.address` defaults to 127.0.0.1:6362):
/// a server left at the default cannot be backed up from another host — the procedure's backup
/// host runs `neo4j-admin backup --from=<server>:6362` — and neo4j-admin says it could not
/// connect (3.x `OnlineBackupCommand`, `com/Client.java`). The setting is read at start-up, so
/// it takes a restart either way; set as `prepare` asks, the same backup succeeds.
#[tokio::test]
async fn a_remote_backup_fails_while_the_backup_service_listens_on_loopback() {
    let lab = lab(Product::Neo4j, 3).await;
    let backup = |name: &'static str| {
        let url = format!("{}/_lab/backup", lab.admin_url());
        async move {
            let r = client()
                .post(url)
                .json(&json!({"name": name, "group": "blue"}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let restart = |n: &'static str| {
        let lab = &lab;
        async move {
            op_ok(lab, n, "stop", json!({})).await;
            op_ok(lab, n, "start", json!({})).await;
            wait_state(lab, n, "running").await;
        }
    };
    // node1 back on Neo4j's default: not yet in effect.
    let loopback = json!({"backup_address": "127.0.0.1:6362"});
    op_ok(&lab, "node1", "config", loopback).await;
    let (status, answer) = backup("before-restart").await;
    assert_eq!(
        (status, &answer["from"]),
        (200, &json!("node1")),
        "{answer}"
    );

    // The old preparation: node1 restarted on the default. The remote backup cannot connect.
    restart("node1").await;
    let (status, answer) = backup("full").await;
    assert_eq!(status, 409, "{answer}");
    let said = answer["error"].as_str().unwrap_or_default();
    assert!(
        said.starts_with("Backup failed: BackupClient could not connect from null to node1/"),
        "{said}"
    );
    // The per-server backup (the procedure's `backup-upgraded`) fails alike, and nothing was
    // written: there is no backup to restore.
    op_answers(&lab, "node1", "backup", json!({"name": "single"}), 409).await;
    op_answers(&lab, "node4", "restore", json!({"name": "full"}), 404).await;

    // As `prepare` asks: every interface, then a restart. The backup succeeds.
    op_ok(
        &lab,
        "node1",
        "config",
        json!({"backup_address": "0.0.0.0:6362"}),
    )
    .await;
    restart("node1").await;
    let (status, answer) = backup("full").await;
    assert_eq!(
        (status, &answer["from"]),
        (200, &json!("node1")),
        "{answer}"
    );
    // Not an address at all: refused as bad input.
    let bad = json!({"backup_address": "6362"});
    op_answers(&lab, "node2", "config", bad, 400).await;
    lab.shutdown().await;
}

/// N1 (Neo4j 3.x `AuthorizationEnabledFilter`; `dbms.security.auth_enabled`,
/// `causal_clustering_status_auth_enabled` and `ha_status_auth_enabled` default to true): the
/// lab's Neo4j refuses every endpoint the procedures use without credentials, in the server's
/// own words, and takes the ones its target carries as a secret — read from a 0600 file, never
/// written into the target, a plan or an argv.
#[tokio::test]
async fn neo4j_asks_for_credentials_and_the_lab_target_carries_them_as_a_secret() {
    use base64::Engine as _;
    let lab = lab(Product::Neo4j, 3).await;
    let n1 = url(&lab, "node1").await;
    let auth = neo4j_auth(&lab);
    let call = |method: &'static str, url: String, header: Option<String>| async move {
        let mut req = client().request(method.parse().unwrap(), url);
        if let Some(h) = header {
            req = req.header("Authorization", h);
        }
        if method == "POST" {
            req = req
                .header("Content-Type", "application/json")
                .body(r#"{"statements":[{"statement":"CALL dbms.cluster.overview()"}]}"#);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let challenge = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        (status, challenge, body)
    };
    let endpoints = [
        ("GET", format!("{n1}/db/data/")),
        ("POST", format!("{n1}/db/data/transaction/commit")),
        ("GET", format!("{n1}/db/manage/server/core/available")),
        (
            "GET",
            format!("{n1}/db/manage/server/causalclustering/available"),
        ),
        ("GET", format!("{n1}/db/manage/server/ha/available")),
        ("POST", format!("{}/_lab/routed-tx/blue", lab.admin_url())),
    ];
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("neo4j:neo4j")
    );
    for (method, url) in &endpoints {
        // What the old status probe sent: nothing.
        let (status, challenge, body) = call(method, url.clone(), None).await;
        assert_eq!(status, 401, "{method} {url}: {body}");
        assert_eq!(challenge.as_deref(), Some("Basic realm=\"Neo4j\""), "{url}");
        assert_eq!(
            body["errors"][0]["code"], "Neo.ClientError.Security.Unauthorized",
            "{url}"
        );
        assert_eq!(
            body["errors"][0]["message"], "No authentication header supplied.",
            "{url}"
        );
        let (status, _, body) = call(method, url.clone(), Some(wrong.clone())).await;
        assert_eq!(status, 401, "{url}: {body}");
        assert_eq!(
            body["errors"][0]["message"],
            "Invalid username or password."
        );
        // An empty header (a target that left `neo4j_auth` empty) is not Basic credentials.
        let (status, _, body) = call(method, url.clone(), Some(String::new())).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(
            body["errors"][0]["message"],
            "Invalid authentication header."
        );
        let (status, _, body) = call(method, url.clone(), Some(auth.clone())).await;
        assert_eq!(
            status, 200,
            "{method} {url} with the lab's credentials: {body}"
        );
    }
    // The lab's own routes and its data plane are not Neo4j's: open.
    assert_eq!(get(&format!("{n1}/kv/lab")).await.0, 200);
    assert_eq!(get(&format!("{n1}/_lab/status")).await.0, 200);
    // The balancer's health checks carry the credentials too: blue serves through it.
    let front = format!("http://{}/kv/lab", lab.lb_frontend());
    eventually("blue serving through the balancer", || async {
        (get(&front).await.0 == 200).then_some(())
    })
    .await;

    // The target: a file secret (0600), the header as `Basic ${secret.…}`, no password.
    let target = lab.target();
    let secret = &target.secrets["neo4j_basic_auth"];
    assert!(secret.env.is_empty(), "{secret:?}");
    let file = secret.file.clone().unwrap();
    let mode = std::fs::metadata(&file).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    assert_eq!(
        target.vars["neo4j_auth"],
        "Basic ${secret.neo4j_basic_auth}"
    );
    let token = auth.trim_start_matches("Basic ");
    let written = toml::to_string(target).unwrap();
    assert!(!written.contains(token), "{written}");
    let lp = flightdeck::procedure::load::load_procedure(std::path::Path::new(
        "procedures/neo4j-causal-cluster.toml",
    ))
    .unwrap();
    let plan = flightdeck::plan::expand::build_plan(
        &lp,
        &lab.target_for(&lp.procedure),
        &flightdeck::plan::expand::PlanOptions::default(),
    )
    .unwrap();
    let planned = serde_json::to_string(&plan).unwrap();
    assert!(!planned.contains(token));
    assert!(planned.contains("Basic ${secret.neo4j_basic_auth}"));
    lab.shutdown().await;
}
