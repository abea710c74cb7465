//! Product-specific additions to the lab's target that the seed procedures bind to: probes and
//! named actions a real target of the same product also defines (with its own *how*), so a
//! procedure moves between the lab and a real cluster by changing only the target.

use std::collections::BTreeMap;

use crate::procedure::model::{Action, Check, HttpSpec, Procedure};
use crate::target::{ProbeSpec, Target};
use crate::target_overrides::StepOverride;

use super::config::Product;

fn get(url: &str) -> HttpSpec {
    request("GET", url)
}

fn request(method: &str, url: &str) -> HttpSpec {
    let mut spec = super::target_out::http(method, url.into(), None);
    spec.timeout_secs = 10;
    spec
}

/// `check-version`: the node runs `${arg.version}` (its `/_lab/status`).
fn check_version() -> Action {
    let mut version = get("${node.url}/_lab/status");
    version.expect_json = BTreeMap::from([
        ("/version".to_string(), serde_json::json!("${arg.version}")),
        ("/state".to_string(), serde_json::json!("running")),
    ]);
    Action::Http(version)
}

fn json_probe(name: &str, url: &str, expect: &[(&str, serde_json::Value)]) -> ProbeSpec {
    let mut spec = get(url);
    spec.timeout_secs = 5;
    spec.expect_json = expect
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    ProbeSpec {
        name: name.into(),
        check: Check::Http(spec),
        per_node: true,
        // Gate-only (0: never polled in the background): read-only and writable exclude each
        // other, so one of them would fail in the cockpit's probe panel all along.
        interval_ms: 0,
        health: false,
        facts: BTreeMap::new(),
    }
}

/// Gates a seed procedure sizes for a real store (a store upgrade or a start with migrations
/// takes minutes to hours) that the lab, whose stores upgrade in about a second, shrinks back
/// with the target's own `[overrides.<step id>]`: the same mechanism a real target uses to size
/// them for its cluster, so the procedure stays realistic and the lab stays fast. By procedure
/// name (step ids repeat across procedures): (procedure, step id, lab timeout in seconds).
const LAB_GATES: &[(&str, &str, u64)] = &[
    // The standalone store upgrade (procedure: 4 h).
    ("neo4j-causal-cluster", "upgrade-verify", 60),
    // The old cluster whole again after a core's restart (procedure: 600 s), forward and, as
    // its undo, between the rollback's restarts.
    ("neo4j-causal-cluster", "read-only-rejoined", 60),
    // The master alone upgrading its store (procedure: 4 h).
    ("neo4j-ha-cloudformation", "single-verify", 120),
    // A node's start with its module migrations (procedure: 30 min).
    ("jahia-rolling", "verify", 90),
];

/// The lab a seed procedure is written for when `run --lab` / `plan --lab` are not told
/// otherwise (`--nodes`, `--from`, `--to`): (procedure, nodes, from version, to version).
/// Others get the product's defaults on three nodes.
const LAB_SHAPES: &[(&str, usize, &str, &str)] = &[
    // One server installed on a host, 2.2.16 -> 2.3.5 as its real target
    // (procedures/targets/milvus-standalone.example.toml); the product's default lab is a
    // 2.1.4 cluster, which the procedure's `from` (2.2.x) refuses.
    ("milvus-standalone", 1, "2.2.16", "2.3.5"),
];

/// A lab's size and versions for a procedure ([`LAB_SHAPES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabShape {
    pub nodes: usize,
    pub from: &'static str,
    pub to: &'static str,
}

/// The lab `procedure` (by name) is written for, if it is not the product's default.
pub fn lab_shape(procedure: &str) -> Option<LabShape> {
    LAB_SHAPES
        .iter()
        .find(|(name, ..)| *name == procedure)
        .map(|&(_, nodes, from, to)| LabShape { nodes, from, to })
}

/// Adds the [`LAB_GATES`] overrides of `procedure` to `target` (a target's own override of the
/// same step wins).
pub(crate) fn lab_overrides(procedure: &Procedure, target: &mut Target) {
    for (name, step, timeout_secs) in LAB_GATES {
        if *name != procedure.name || !procedure.steps.iter().any(|s| s.id == *step) {
            continue;
        }
        target
            .overrides
            .steps
            .entry((*step).to_string())
            .or_insert(StepOverride {
                timeout_secs: Some(*timeout_secs),
                ..StepOverride::default()
            });
    }
}

/// Neo4j asks for credentials on every endpoint the procedures use ([`super::neo4j_auth`]): the
/// lab's target carries them as a real one does — a secret (here read from the lab's 0600
/// token file, never in the target, a plan or a journal), the `neo4j_auth` header value the
/// procedures send (`Basic ${secret.neo4j_basic_auth}`), and the same header on the health
/// probe (a status endpoint) and on the leader's write check.
pub(crate) fn neo4j_auth(target: &mut Target, token_file: &std::path::Path) {
    const SECRET: &str = "neo4j_basic_auth";
    let header = format!("Basic ${{secret.{SECRET}}}");
    target.secrets.insert(
        SECRET.into(),
        crate::target::SecretSource {
            file: Some(token_file.display().to_string()),
            ..Default::default()
        },
    );
    target.vars.insert("neo4j_auth".into(), header.clone());
    let authorize = |spec: &mut HttpSpec| {
        spec.headers.insert("Authorization".into(), header.clone());
    };
    for p in &mut target.probes {
        if let Check::Http(spec) = &mut p.check {
            if spec.url.contains("/db/") {
                authorize(spec);
            }
        }
    }
    if let Some(Action::Http(spec)) = target.actions.get_mut("write-check") {
        authorize(spec);
    }
}

/// Adds what the seed procedures of `product` need beyond the common bindings.
pub(crate) fn extend(product: Product, target: &mut Target) {
    match product {
        Product::Jahia => jahia(target),
        Product::Weaviate => weaviate(target),
        Product::Milvus => milvus(target),
        _ => {}
    }
}

/// What every seed procedure's rollback verification reads, for the products that do not
/// bind their own: `check-version` (the node runs this version; when it does not run at all,
/// `/reason` says why, in the lab's words for the product's failure) and a gate-only
/// `writable` probe (the node takes writes: not read-only).
pub(crate) fn common(target: &mut Target) {
    if !target.actions.contains_key("check-version") {
        target
            .actions
            .insert("check-version".into(), check_version());
    }
    if !target.probes.iter().any(|p| p.name == "writable") {
        target.probes.push(json_probe(
            "writable",
            "${node.url}/_lab/status",
            &[
                ("/state", serde_json::json!("running")),
                ("/read_only", serde_json::json!(false)),
            ],
        ));
    }
}

/// Weaviate: the cluster's REST API through the balancer, where the procedure sends backups
/// and restores (any node coordinates them, as on a real cluster); the collections deleted
/// before a restore (the lab has one, through the product's own `DELETE /v1/schema/{class}`);
/// the StatefulSet recreate of a Kubernetes target (`platform = "kubernetes"`), which the lab
/// does as every node restarted on the version.
fn weaviate(target: &mut Target) {
    if let Some(frontend) = target.vars.get("lab_frontend").cloned() {
        let mut delete = request(
            "DELETE",
            &format!("{frontend}/v1/schema/{}", super::node::LAB_COLLECTION),
        );
        delete.expect_status = vec![200];
        target
            .actions
            .insert("delete-collections".into(), Action::Http(delete));
        target.vars.insert("weaviate_url".into(), frontend);
    }
    if let Some(admin) = target.vars.get("lab_admin").cloned() {
        target.actions.insert(
            "raft-recreate".into(),
            Action::Http(post(
                &format!("{admin}/_lab/recreate"),
                r#"{"version":"${arg.version}"}"#,
            )),
        );
    }
}

/// The node's own full read-only status on Jahia's tools page (XHTML; Jahia/tools
/// `maintenance.jsp`): "currently <strong>ON</strong>." when the cluster agrees, "... for the
/// current node." otherwise — never the `<li>` lines about the other nodes.
pub(crate) fn jahia_status_regex(status: &str) -> String {
    format!(r"full read-only mode is currently <strong>{status}</strong>(\.| for the current node)")
}

/// Jahia: the full read-only switch (out of band, like the Karaf shell
/// `jahia:full-read-only ON|OFF`, so a rollback can send it while the processing node is still
/// starting), the tools page's per-node status, matched in its HTML as a real target reads it
/// (a GET without parameters needs no token), the node's cluster members (Karaf Cellar's
/// `cluster:node-list`), the node's installed version, the balancer's sessions on a node, the
/// install that carries the node's configuration into the new release, and the one database
/// backup.
fn jahia(target: &mut Target) {
    const PAGE: &str = "${node.url}/modules/tools/maintenance.jsp";
    let mut switch = request("POST", "${node.admin}/_lab/full-read-only");
    switch
        .headers
        .insert("Content-Type".into(), "application/json".into());
    switch.body = Some(r#"{"on":"${arg.on}"}"#.into());
    target
        .actions
        .insert("full-read-only".into(), Action::Http(switch));
    target.actions.insert(
        "remove-marker".into(),
        Action::Http(request("POST", "${node.admin}/_lab/remove-marker")),
    );
    // The new release gets the node's configuration (`digital-factory-config`: its
    // jahia.node.properties among others), as the real target's `install` copies it (audit J3):
    // a release installed without it starts on Jahia's shipped settings, out of the cluster.
    target.actions.insert(
        "install".into(),
        Action::Http(post(
            "${node.admin}/_lab/install",
            r#"{"version":"${arg.version}","carry_config":true}"#,
        )),
    );
    target
        .probes
        .push(text_probe("read-only", PAGE, &jahia_status_regex("ON")));
    target
        .probes
        .push(text_probe("writable", PAGE, &jahia_status_regex("OFF")));
    // The node's cluster as its Karaf Cellar lists it (`cluster:node-list`): every node of the
    // target, not a cluster of its own.
    let count = target.nodes.len();
    target.probes.push(json_probe(
        "members",
        "${node.admin}/_lab/cluster-nodes",
        &[("/members#len", serde_json::json!(count))],
    ));
    // The balancer's current sessions on the node (HAProxy's `scur`).
    if let Some(admin) = target.vars.get("lab_admin").cloned() {
        target.probes.push(json_probe(
            "drained",
            &format!("{admin}/_lab/lb/backends/${{node.name}}"),
            &[("/sessions", serde_json::json!(0))],
        ));
        let mut db = post(&format!("{admin}/_lab/backup"), r#"{"name":"${arg.name}"}"#);
        db.timeout_secs = 30;
        target
            .actions
            .insert("backup-database".into(), Action::Http(db));
    }
    target
        .actions
        .insert("check-version".into(), check_version());
}

fn text_probe(name: &str, url: &str, regex: &str) -> ProbeSpec {
    let mut probe = json_probe(name, url, &[]);
    if let Check::Http(spec) = &mut probe.check {
        spec.expect_text = Some(regex.to_string());
    }
    probe
}

fn post(url: &str, body: &str) -> HttpSpec {
    let mut spec = request("POST", url);
    spec.headers
        .insert("Content-Type".into(), "application/json".into());
    spec.body = Some(body.into());
    spec.timeout_secs = 30;
    spec
}

/// The Deployments of a Milvus cluster installed by the chart (cluster.enabled=true), in the
/// order deployments/upgrade/rollingUpdate.sh (milvus-io/milvus) rolls them.
const MILVUS_CLUSTER_COMPONENTS: &[&str] = &[
    "rootcoord",
    "datacoord",
    "indexcoord",
    "querycoord",
    "indexnode",
    "datanode",
    "querynode",
    "proxy",
];

/// Milvus on Helm: the precondition checks read the lab's tool versions; whether writes are
/// denied (the proxy's CheckHealth, `writable`); a Deployment's rolling
/// update and its `kubectl rollout status` (the node's version), the release's `helm upgrade`,
/// migrate.sh's migration (no `-d`), and the etcd snapshot and restore around it, which stop
/// and start Milvus themselves (so they replace the node-level metadata bindings of the common
/// lab target).
fn milvus(target: &mut Target) {
    let Some(admin) = target.vars.get("lab_admin").cloned() else {
        return;
    };
    target.vars.insert("message_queue".into(), "pulsar".into());
    // One node is a standalone (a Recreate Deployment on one ReadWriteOnce volume); more are the
    // Deployments of a cluster. The chart comes from procedures/catalog/milvus.toml.
    let mode = if target.nodes.len() == 1 {
        "standalone"
    } else {
        "cluster"
    };
    target.vars.insert("milvus_mode".into(), mode.into());
    // Each lab node is one of the chart's Deployments, labelled as the chart labels it
    // (zilliztech/milvus-helm charts/milvus/templates/<component>-deployment.yaml:
    // `component: "standalone"`, `component: "rootcoord"`...), which a real target lists as the
    // node's `component` tag. A cluster lab takes the components in rollingUpdate.sh's order;
    // past the eight Deployments, the extra nodes are more query nodes (the component a real
    // cluster scales out).
    for (i, n) in target.nodes.iter_mut().enumerate() {
        let component = match mode {
            "standalone" => "standalone",
            _ => MILVUS_CLUSTER_COMPONENTS
                .get(i)
                .copied()
                .unwrap_or("querynode"),
        };
        n.tags.insert("component".into(), component.into());
    }
    let tools = Action::Http(get(&format!("{admin}/_lab/tools")));
    let mut status = get("${node.url}/_lab/status");
    status.expect_json = BTreeMap::from([
        ("/version".to_string(), serde_json::json!("${arg.version}")),
        ("/state".to_string(), serde_json::json!("running")),
    ]);
    let mut rollout_status = status.clone();
    rollout_status.expect_json.remove("/state");
    // The proxy's CheckHealth RPC, as the lab answers it over HTTP (`grpcurl -emit-defaults`'s
    // JSON): writable while no quota state denies writes.
    let mut writable = post(
        &format!("${{node.url}}{}", super::personality::milvus::CHECK_HEALTH),
        "{}",
    );
    writable.expect_json = BTreeMap::from([("/quotaStates#len".to_string(), serde_json::json!(0))]);
    let actions = [
        ("helm-version", tools.clone()),
        ("kubectl-version", tools.clone()),
        ("chart-versions", tools),
        ("release-version", Action::Http(status)),
        (
            "rollout",
            Action::Http(post(
                "${node.admin}/_lab/rollout",
                r#"{"version":"${arg.version}"}"#,
            )),
        ),
        ("rollout-status", Action::Http(rollout_status)),
        ("writable", Action::Http(writable)),
        (
            "helm-upgrade",
            Action::Http(post(
                &format!("{admin}/_lab/helm-upgrade"),
                r#"{"version":"${arg.version}"}"#,
            )),
        ),
        // rollingUpdate.sh's prepare edits a ConfigMap the lab does not model: it reads the
        // tools, as a no-op that must answer.
        (
            "rolling-prepare",
            Action::Http(get(&format!("{admin}/_lab/tools"))),
        ),
        (
            "migrate-metadata",
            Action::Http(post(
                &format!("{admin}/_lab/migrate-sh"),
                r#"{"operation":"migrate","version":"${arg.target}","cleanup":false}"#,
            )),
        ),
        (
            "etcd-snapshot",
            Action::Http(post(
                &format!("{admin}/_lab/etcd"),
                r#"{"operation":"snapshot","name":"${arg.name}"}"#,
            )),
        ),
        (
            "etcd-restore",
            Action::Http(post(
                &format!("{admin}/_lab/etcd"),
                r#"{"operation":"restore","name":"${arg.name}","version":"${arg.version}"}"#,
            )),
        ),
    ];
    for (name, action) in actions {
        target.actions.insert(name.into(), action);
    }
    milvus_host(target);
    // The smoke test on the lab's data plane, through the balancer as a client would: a row
    // written, read back, deleted (a real target runs milvus-smoke.py's insert/search/drop).
    if let Some(frontend) = target.vars.get("lab_frontend").cloned() {
        let key = format!("{frontend}/kv/flightdeck-smoke");
        let mut write = request("PUT", &key);
        write.body = Some(SMOKE_ROW.into());
        let drop = request("DELETE", &key);
        target
            .actions
            .insert("smoke-write".into(), Action::Http(write));
        target
            .actions
            .insert("smoke-drop".into(), Action::Http(drop));
        target
            .probes
            .push(text_probe("smoke-read", &key, &format!("^{SMOKE_ROW}$")));
    }
}

/// Milvus standalone installed on a host (procedures/milvus-standalone.toml, whose real target
/// runs scripts/milvus-ctl.sh and scripts/milvus_data.py): the same names bound to the lab's
/// node operations (node::milvus_host), which refuse what the scripts refuse. The version
/// checks (`release-version`), `health` and `writable` are the Helm procedure's bindings above.
fn milvus_host(target: &mut Target) {
    let op = |name: &str, body: Option<&str>| {
        let mut spec = match body {
            Some(b) => post(&format!("${{node.admin}}/_lab/{name}"), b),
            None => request("POST", &format!("${{node.admin}}/_lab/{name}")),
        };
        // start-milvus answers once the server is healthy (at most about four of the lab's
        // start-ups and migrations); the others at once.
        spec.timeout_secs = 60;
        Action::Http(spec)
    };
    let version = Some(r#"{"version":"${arg.version}"}"#);
    let actions = [
        ("record-collections", op("record-collections", None)),
        ("load-collections", op("load-collections", None)),
        ("search-collections", op("search-collections", None)),
        // SIGTERM, then the launcher's kill after the grace period: the lab's stop.
        ("stop-milvus", op("stop", None)),
        ("start-milvus", op("start-milvus", version)),
        ("backup-data", op("backup-data", None)),
        ("check-backup", op("check-backup", None)),
        ("restore-data", op("restore-data", None)),
        // The `current` link moved to another version's install: refused while Milvus runs.
        ("switch-version", op("install", version)),
    ];
    for (name, action) in actions {
        target.actions.insert(name.into(), action);
    }
    target.probes.push(json_probe(
        "collections-as-recorded",
        "${node.url}/_lab/collections-as-recorded",
        &[("/ok", serde_json::json!(true))],
    ));
}

/// What the lab's smoke test writes and expects back.
const SMOKE_ROW: &str = "flightdeck smoke";
