//! Data-made lab personalities: the file format's checks (file:line:col) and the Elasticsearch
//! personality (procedures/labs/elasticsearch.toml) refusing where Elasticsearch refuses.

mod lab_util;

use std::path::Path;
use std::sync::Arc;

use flightdeck::lab::data::{self, DataPersonality};
use flightdeck::lab::{Lab, LabConfig, RunState, Timing};
use lab_util::{client, eventually, get_json, node, op_ok, send_json};
use serde_json::{json, Value};

const ES: &str = "procedures/labs/elasticsearch.toml";

fn es() -> Arc<DataPersonality> {
    Arc::new(data::load(Path::new(ES)).unwrap_or_else(|d| panic!("{d}")))
}

async fn es_lab(version: Option<&str>) -> Lab {
    let mut cfg = LabConfig::with_personality(es(), 3, Timing::fast());
    cfg.version = version.map(str::to_string);
    Lab::start(cfg).await.unwrap()
}

async fn es_url(lab: &Lab, name: &str) -> String {
    format!("http://{}", node(lab, name).await.address)
}

async fn put_settings(url: &str, body: Value) -> (u16, Value) {
    send_json(client().put(format!("{url}/_cluster/settings")), &body).await
}

async fn allocation(url: &str, value: Value) {
    let (status, body) = put_settings(
        url,
        json!({"persistent": {"cluster.routing.allocation.enable": value}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["acknowledged"], true, "{body}");
}

async fn health(url: &str) -> (u16, Value) {
    get_json(&format!(
        "{url}/_cluster/health?wait_for_status=green&timeout=30s"
    ))
    .await
}

async fn running(lab: &Lab, name: &str) {
    eventually(&format!("{name} running"), || async {
        (node(lab, name).await.state == RunState::Running).then_some(())
    })
    .await;
}

async fn green(url: &str) {
    eventually("green", || async {
        let (status, body) = health(url).await;
        (status == 200 && body["status"] == "green").then_some(())
    })
    .await;
}

/// Stop, install `version`, start, wait until running.
async fn restart_on(lab: &Lab, name: &str, version: &str) {
    op_ok(lab, name, "stop", json!({})).await;
    op_ok(lab, name, "install", json!({ "version": version })).await;
    op_ok(lab, name, "start", json!({})).await;
}

#[tokio::test]
async fn the_elasticsearch_personality_loads_and_answers_like_elasticsearch() {
    let lab = es_lab(None).await;
    assert_eq!(lab.target().name, "lab-elasticsearch");
    assert_eq!(lab.target().product.as_deref(), Some("elasticsearch"));
    assert!(lab.target().vars["es_url"].starts_with("http://127.0.0.1:"));
    let url = es_url(&lab, "node1").await;
    let (status, root) = get_json(&format!("{url}/")).await;
    assert_eq!(status, 200);
    assert_eq!(root["version"]["number"], "8.19.0");
    assert_eq!(root["name"], "node1");
    let (status, h) = health(&url).await;
    assert_eq!((status, h["status"].clone()), (200, json!("green")), "{h}");
    assert_eq!(h["number_of_nodes"], 3);
    let (status, rows) = get_json(&format!("{url}/_cat/nodes?format=json")).await;
    assert_eq!(status, 200);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows.iter().filter(|r| r["master"] == "*").count(), 1);
    // The lab's balancer checks the personality's readiness path.
    assert!(lab.target().probes.iter().any(|p| p.health));
    lab.shutdown().await;
}

/// [UPG] step 9: the cluster stays yellow while a node's replicas are not allocated, and
/// `wait_for_status=green` answers 408 (the gate keeps waiting); allocation back on, it recovers.
#[tokio::test]
async fn health_stays_yellow_until_allocation_is_back_and_wait_for_status_answers_408() {
    let lab = es_lab(None).await;
    let url = es_url(&lab, "node2").await;
    allocation(&url, json!("primaries")).await;
    op_ok(&lab, "node1", "stop", json!({})).await;
    let (status, h) = health(&url).await;
    assert_eq!(status, 408, "{h}");
    assert_eq!(h["status"], "yellow");
    assert_eq!(h["timed_out"], true);
    assert_eq!(h["unassigned_shards"], 2);
    assert_eq!(h["number_of_nodes"], 2);
    // A stopped node is not in _cat/nodes.
    let (_, rows) = get_json(&format!("{url}/_cat/nodes?format=json")).await;
    assert_eq!(rows.as_array().unwrap().len(), 2);

    op_ok(&lab, "node1", "install", json!({"version": "9.1.0"})).await;
    op_ok(&lab, "node1", "start", json!({})).await;
    running(&lab, "node1").await;
    // Back, on 9.1.0, but its replicas wait for allocation: still yellow, and explain says why
    // in the enable decider's words.
    let (status, h) = health(&url).await;
    assert_eq!((status, h["status"].clone()), (408, json!("yellow")), "{h}");
    let (status, why) = get_json(&format!("{url}/_cluster/allocation/explain")).await;
    assert_eq!(status, 200, "{why}");
    let decider = &why["node_allocation_decisions"][0]["deciders"][0];
    assert_eq!(decider["decider"], "enable");
    assert_eq!(
        decider["explanation"],
        "replica allocations are forbidden due to cluster setting \
         [cluster.routing.allocation.enable=primaries]"
    );
    let (_, settings) = get_json(&format!("{url}/_cluster/settings")).await;
    assert_eq!(
        settings["persistent"]["cluster"]["routing"]["allocation"]["enable"],
        "primaries"
    );
    allocation(&url, Value::Null).await;
    green(&url).await;
    let (status, why) = get_json(&format!("{url}/_cluster/allocation/explain")).await;
    assert_eq!(status, 400);
    assert!(why["error"]["reason"]
        .as_str()
        .unwrap()
        .contains("there are no unassigned shards in this cluster"));
    lab.shutdown().await;
}

/// [UPG] step 9's IMPORTANT box and [ES] NodeVersionAllocationDecider: primaries on a node of
/// the new version cannot have their replicas on a node of the old version.
#[tokio::test]
async fn replicas_of_new_version_primaries_are_not_allocated_to_an_old_node() {
    let lab = es_lab(None).await;
    let url = es_url(&lab, "node3").await;
    restart_on(&lab, "node1", "9.1.0").await;
    running(&lab, "node1").await;
    green(&url).await;
    // node2 leaves: its primaries are promoted on the newest copy (node1, 9.1.0). It comes back
    // without having been upgraded (still 8.19.0).
    op_ok(&lab, "node2", "stop", json!({})).await;
    op_ok(&lab, "node2", "start", json!({})).await;
    running(&lab, "node2").await;
    let (status, why) = get_json(&format!("{url}/_cluster/allocation/explain")).await;
    assert_eq!(status, 200, "{why}");
    let decision = &why["node_allocation_decisions"][0];
    assert_eq!(decision["node_name"], "node2");
    assert_eq!(decision["deciders"][0]["decider"], "node_version");
    assert_eq!(
        decision["deciders"][0]["explanation"],
        "cannot allocate replica shard to a node with version [8.19.0] since this is older \
         than the primary version [9.1.0]"
    );
    let (status, h) = health(&url).await;
    assert_eq!((status, h["status"].clone()), (408, json!("yellow")), "{h}");
    // Allocation is on: the only thing in the way is the version. Upgraded, node2 gets them.
    restart_on(&lab, "node2", "9.1.0").await;
    running(&lab, "node2").await;
    green(&url).await;
    lab.shutdown().await;
}

/// [ES] NodeMetadata#verifyUpgradeToCurrentVersion: 9.x refuses a data path written before
/// 8.19, and 8.19 refuses one written by 9.x.
#[tokio::test]
async fn a_node_refuses_to_start_across_the_versions_elasticsearch_refuses() {
    let lab = es_lab(Some("8.18.2")).await;
    restart_on(&lab, "node1", "9.1.0").await;
    let n = eventually("node1 refuses to start", || async {
        let n = node(&lab, "node1").await;
        (n.state == RunState::Failed).then_some(n)
    })
    .await;
    assert_eq!(
        n.reason.as_deref(),
        Some(
            "cannot upgrade a node from version [8.18.2] directly to version [9.1.0], upgrade \
             to version [8.19.0] first."
        )
    );
    lab.shutdown().await;

    let lab = es_lab(None).await;
    restart_on(&lab, "node1", "9.1.0").await;
    running(&lab, "node1").await;
    restart_on(&lab, "node1", "8.19.0").await;
    let n = eventually("node1 refuses the downgrade", || async {
        let n = node(&lab, "node1").await;
        (n.state == RunState::Failed).then_some(n)
    })
    .await;
    assert_eq!(
        n.reason.as_deref(),
        Some("cannot downgrade a node from version [9.1.0] to version [8.19.0]")
    );
    lab.shutdown().await;
}

/// [UPG] "If you stop half or more of the master-eligible nodes all at once during the upgrade
/// the cluster will become unavailable"; a bad allocation value is refused in
/// EnableAllocationDecider's words; a stopped node answers 503.
#[tokio::test]
async fn half_the_masters_down_means_no_master_and_bad_settings_are_refused() {
    let lab = es_lab(None).await;
    let url = es_url(&lab, "node3").await;
    let (status, body) = put_settings(
        &url,
        json!({"persistent": {"cluster.routing.allocation.enable": "sometimes"}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["reason"],
        "Illegal allocation.enable value [SOMETIMES]"
    );
    op_ok(&lab, "node1", "stop", json!({})).await;
    op_ok(&lab, "node2", "stop", json!({})).await;
    let (status, body) = health(&url).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["type"], "master_not_discovered_exception");
    let (status, _) = put_settings(
        &url,
        json!({"persistent": {"cluster.routing.allocation.enable": "primaries"}}),
    )
    .await;
    assert_eq!(status, 503);
    let (status, _) = lab_util::get(&format!("{}/", es_url(&lab, "node1").await)).await;
    assert_eq!(status, 503);
    lab.shutdown().await;
}

/// A crash fault reads in the personality's words, and a fail-migration at a 8 -> 9 start in
/// Elasticsearch's own.
#[tokio::test]
async fn faults_fail_in_the_personality_words() {
    let lab = es_lab(None).await;
    let admin = lab.admin_url();
    for fault in ["crash:node3", "fail-migration:node2"] {
        let r = client()
            .post(format!("{admin}/_lab/fault"))
            .json(&json!({ "fault": fault }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{fault}");
    }
    assert_eq!(
        node(&lab, "node3").await.reason.as_deref(),
        Some("the Elasticsearch process exited (fault): the node left the cluster")
    );
    restart_on(&lab, "node2", "9.1.0").await;
    let n = eventually("node2's start fails", || async {
        let n = node(&lab, "node2").await;
        (n.state == RunState::Failed).then_some(n)
    })
    .await;
    let reason = n.reason.unwrap();
    assert!(
        reason.contains("must be marked as read-only using the setting [index.blocks.write]")
            && reason.ends_with("before upgrading to 9.1.0."),
        "{reason}"
    );
    lab.shutdown().await;
}

fn diags(source: &str) -> String {
    match data::parse(Path::new("labs/toy.toml"), source) {
        Ok(_) => panic!("accepted:\n{source}"),
        Err(d) => d.to_string(),
    }
}

const HEAD: &str = r#"[product]
name = "toy"
version = "1.0.0"
to_version = "1.1.0"
readiness = "/"

[node]
replicas = "started"
"#;

#[test]
fn personality_errors_point_at_file_line_and_column() {
    // An expression that does not parse: at its offending character.
    let e = diags(&format!(
        "{HEAD}\n[[route]]\nmethod = \"GET\"\npath = \"/\"\n[[route.reply]]\njson = \"{{'a': 1\"\n"
    ));
    assert!(e.starts_with("labs/toy.toml:14:"), "{e}");
    assert!(e.contains("route[0].reply[0].json"), "{e}");
    // A name that is not in the context: the node variable misspelled.
    let e = diags(&format!(
        "{HEAD}\n[[derived]]\nname = \"bad\"\nvalue = \"node.replicsa == 'x'\"\n"
    ));
    assert!(
        e.starts_with("labs/toy.toml:12:9: derived[0].value: unknown name `node.replicsa`"),
        "{e}"
    );
    assert!(e.contains("replicas"), "{e}");
    // An effect on a variable that was never declared.
    let e = diags(&format!(
        "{HEAD}\n[on.stop]\nnode = {{ replica = \"'unassigned'\" }}\n"
    ));
    assert!(
        e.contains("labs/toy.toml:11:") && e.contains("`replica` is not a [node] variable"),
        "{e}"
    );
    // A status that is not one, a route twice, a reply with both kinds of body.
    let e = diags(&format!(
        "{HEAD}\n[[route]]\nmethod = \"GET\"\npath = \"/\"\n[[route.reply]]\nstatus = 999\n\n[[route]]\nmethod = \"get\"\npath = \"/\"\n[[route.reply]]\njson = \"1\"\nbody = \"x\"\n"
    ));
    assert!(
        e.contains("labs/toy.toml:14:10: route[0].reply[0].status 999 is not an HTTP status"),
        "{e}"
    );
    assert!(e.contains("route[1]: GET / is declared twice"), "{e}");
    assert!(
        e.contains("give json (an expression) or body (a template), not both"),
        "{e}"
    );
    // toml's own type errors keep their position too; an unknown key is named.
    let e = diags(
        "[product]\nname = \"toy\"\nversion = 1\nto_version = \"1.1.0\"\nreadiness = \"/\"\n",
    );
    assert!(e.starts_with("labs/toy.toml:3:"), "{e}");
    let e = diags(&format!(
        "{HEAD}\n[[route]]\nmethod = \"GET\"\npath = \"/\"\nanswer = 1\n"
    ));
    assert!(e.contains("answer"), "{e}");
    // A bad version and a readiness that is not a path.
    let e = diags("[product]\nname = \"Toy DB\"\nversion = \"one\"\nto_version = \"1.1.0\"\nreadiness = \"health\"\n");
    assert!(e.contains("labs/toy.toml:2:8: product.name"), "{e}");
    assert!(e.contains("labs/toy.toml:3:11: product.version"), "{e}");
    assert!(e.contains("labs/toy.toml:5:13: product.readiness"), "{e}");
}

/// The README's example personality is one that loads and answers as the README says.
#[tokio::test]
async fn the_readme_example_personality_works() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let section = readme
        .split("### A lab for a new product")
        .nth(1)
        .expect("the README section");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("its toml block");
    let p = data::parse(Path::new("README.md"), block).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(p.name(), "toydb");
    let lab = Lab::start(LabConfig::with_personality(Arc::new(p), 3, Timing::fast()))
        .await
        .unwrap();
    assert!(lab.target().vars["toy_url"].starts_with("http://"));
    let url = es_url(&lab, "node2").await;
    let r = client()
        .put(format!("{url}/settings/mode"))
        .json(&json!({"value": "fast"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"acknowledged": true, "mode": "fast", "peers": 2})
    );
    let r = client()
        .put(format!("{url}/settings/colour"))
        .json(&json!({"value": "red"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // The refusal in the product's words.
    restart_on(&lab, "node1", "3.0.0").await;
    let n = eventually("node1 refuses 3.0.0", || async {
        let n = node(&lab, "node1").await;
        (n.state == RunState::Failed).then_some(n)
    })
    .await;
    assert_eq!(
        n.reason.as_deref(),
        Some("version 3.0.0 cannot open this store")
    );
    lab.shutdown().await;
}

#[test]
fn a_product_the_lab_does_not_play_says_where_its_personality_would_go() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        "name = \"p\"\nproduct = \"cassandra\"\n[[steps]]\nid = \"a\"\ntitle = \"A\"\n\
         action = { kind = \"manual\", text = \"x\" }\n",
    )
    .unwrap();
    let lp = flightdeck::procedure::load::load_procedure(&path).unwrap();
    let Err(e) = flightdeck::commands::run::lab_config_for(&path, &lp.procedure, None, 3) else {
        panic!("the lab has no cassandra")
    };
    assert_eq!(
        e,
        format!(
            "{}: the lab has no product \"cassandra\": it plays generic, jahia, weaviate, neo4j \
             and milvus, or a personality file — write {} (README: \"A lab for a new product\") \
             or pass --personality FILE",
            path.display(),
            dir.path().join("labs/cassandra.toml").display()
        )
    );
}
