//! The target file describing a lab: nodes, balancer, probes, traffic and the bindings of the
//! named actions to the lab admin API. Written with `toml` so it parses back as a
//! [`Target`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use crate::lb::haproxy::HaproxyProcess;
use crate::procedure::model::{Action, Check, HttpSpec};
use crate::target::{LbConfig, Node, ProbeSpec, Target, TrafficSource};

use super::config::Product;
use super::node::NodeSnapshot;
use super::LabError;

/// A request the lab's target sends, with no expectations yet (a JSON body when `body` is
/// given); the seed bindings ([`super::target_seeds`], [`super::neo4j_ops`]) start from it too.
pub(crate) fn http(method: &str, url: String, body: Option<&str>) -> HttpSpec {
    let mut headers = BTreeMap::new();
    if body.is_some() {
        headers.insert("Content-Type".to_string(), "application/json".to_string());
    }
    HttpSpec {
        method: method.into(),
        url,
        headers,
        body: body.map(str::to_string),
        expect_status: Vec::new(),
        wait_on: Vec::new(),
        fail_on: Vec::new(),
        expect_json: BTreeMap::new(),
        expect_text: None,
        expect: Vec::new(),
        timeout_secs: 30,
    }
}

fn probe(name: &str, url: String, health: bool, facts: &[(&str, &str)]) -> ProbeSpec {
    let mut spec = http("GET", url, None);
    spec.timeout_secs = 5;
    ProbeSpec {
        name: name.into(),
        check: Check::Http(spec),
        per_node: true,
        interval_ms: 1000,
        health,
        facts: facts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

pub(crate) fn build_target(
    product: Product,
    nodes: &[NodeSnapshot],
    admin_url: &str,
    frontend: SocketAddr,
    current_version: &str,
    to_version: &str,
) -> Target {
    let mut vars = BTreeMap::from([
        ("current_version".to_string(), current_version.to_string()),
        ("to_version".to_string(), to_version.to_string()),
        ("lab_admin".to_string(), admin_url.to_string()),
        ("lab_frontend".to_string(), format!("http://{frontend}")),
    ]);
    vars.extend(super::neo4j_ops::vars(&format!("http://{frontend}")));
    let nodes: Vec<Node> = nodes
        .iter()
        .map(|n| {
            let mut tags = BTreeMap::from([("admin".to_string(), format!("http://{}", n.address))]);
            if let Some(g) = &n.group {
                tags.insert("group".into(), g.clone());
            }
            Node {
                name: n.name.clone(),
                address: n.address.to_string(),
                role: Some(n.role.clone()),
                tags,
                scheme: None,
            }
        })
        .collect();
    let mut probes = vec![
        probe(
            "status",
            "${node.url}/_lab/status".into(),
            false,
            &[
                ("version", "/version"),
                ("role", "/role"),
                ("read_only", "/read_only"),
                ("state", "/state"),
                // The node's own reason for a failed or refused state (the lab's
                // `NodeSnapshot::reason`), shown beside it in the cockpit.
                ("reason", "/reason"),
            ],
        ),
        probe(
            "health",
            format!("${{node.url}}{}", product.readiness_path()),
            true,
            &[],
        ),
    ];
    if product == Product::Weaviate {
        probes.push(probe(
            "raft",
            "${node.url}/v1/cluster/statistics".into(),
            false,
            &[("synchronized", "/synchronized")],
        ));
    }
    let node_op = |op: &str, body: Option<&str>| {
        Action::Http(http("POST", format!("${{node.admin}}/_lab/{op}"), body))
    };
    let mut actions = BTreeMap::from([
        ("stop".to_string(), node_op("stop", None)),
        ("start".to_string(), node_op("start", None)),
        (
            "install".to_string(),
            node_op("install", Some(r#"{"version":"${arg.version}"}"#)),
        ),
        (
            "read-only-on".to_string(),
            node_op("read-only", Some(r#"{"on":true}"#)),
        ),
        (
            "read-only-off".to_string(),
            node_op("read-only", Some(r#"{"on":false}"#)),
        ),
        (
            "backup".to_string(),
            node_op("backup", Some(r#"{"name":"${arg.name}"}"#)),
        ),
        (
            "restore".to_string(),
            node_op("restore", Some(r#"{"name":"${arg.name}","force":true}"#)),
        ),
        (
            // Not about one node: bound to the lab's admin server so it works outside loops.
            "copy-schema".to_string(),
            Action::Http(http(
                "POST",
                format!("{admin_url}/_lab/copy-schema"),
                Some(r#"{"from":"${arg.from}","to":"${arg.to}"}"#),
            )),
        ),
        (
            "set-schema".to_string(),
            node_op("set-schema", Some(r#"{"schema":"${arg.schema}"}"#)),
        ),
        ("marker".to_string(), node_op("marker", None)),
        (
            "configure".to_string(),
            node_op(
                "config",
                Some(r#"{"mode":"${arg.mode}","allow_upgrade":"${arg.allow_upgrade}"}"#),
            ),
        ),
        (
            "migrate-metadata".to_string(),
            node_op("migrate-metadata", None),
        ),
        (
            "rollback-metadata".to_string(),
            node_op("rollback-metadata", None),
        ),
    ]);
    actions.extend(super::neo4j_ops::bindings(admin_url));
    let mut target = Target {
        name: format!("lab-{product}"),
        product: Some(product.to_string()),
        vars,
        secrets: BTreeMap::new(),
        nodes,
        scheme: None,
        lb: Some(LbConfig {
            driver: "lab".into(),
            address: admin_url.to_string(),
            backend: None,
            frontend: Some(frontend.to_string()),
            servers: BTreeMap::new(),
            interval_ms: 1000,
        }),
        probes,
        actions,
        traffic: Some(TrafficSource {
            url: format!("{admin_url}/_lab/traffic"),
            interval_ms: 1000,
        }),
        overrides: Default::default(),
    };
    super::target_seeds::extend(product, &mut target);
    super::target_seeds::common(&mut target);
    target
}

/// Makes the lab's target one of a data personality's product: its name and product, the
/// health probe on the personality's readiness path, and the variables it adds (with
/// `${lab_frontend}` and `${lab_admin}` filled in).
pub(crate) fn personalize(
    target: &mut Target,
    personality: &super::data::DataPersonality,
    admin_url: &str,
    frontend: SocketAddr,
) {
    let name = personality.name();
    target.name = format!("lab-{name}");
    target.product = Some(name.to_string());
    let readiness = &personality.spec.product.readiness;
    for p in target.probes.iter_mut().filter(|p| p.health) {
        if let Check::Http(spec) = &mut p.check {
            spec.url = format!("${{node.url}}{readiness}");
        }
    }
    for node in &mut target.nodes {
        for (k, v) in &personality.spec.target.tags {
            node.tags.insert(k.clone(), v.clone());
        }
    }
    let front = format!("http://{frontend}");
    for (k, v) in &personality.spec.target.vars {
        let v = v
            .replace("${lab_frontend}", &front)
            .replace("${lab_admin}", admin_url);
        target.vars.insert(k.clone(), v);
    }
}

/// The target's `[lb]` for the lab's own HAProxy: its runtime API over TCP on loopback, its
/// backend, and server names equal to the node names (so no `[lb.servers]` mapping).
pub(crate) fn haproxy_lb(process: &HaproxyProcess) -> LbConfig {
    process.lb_config(&BTreeMap::new())
}

pub(crate) fn to_toml(target: &Target) -> Result<String, LabError> {
    toml::to_string_pretty(target).map_err(|e| LabError::Target(e.to_string()))
}

pub(crate) fn write_target(target: &Target, path: &Path) -> Result<(), LabError> {
    let text = to_toml(target)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| LabError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
    }
    std::fs::write(path, text).map_err(|e| LabError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::super::node::RunState;
    use super::*;

    fn snapshot(name: &str, port: u16, group: Option<&str>) -> NodeSnapshot {
        NodeSnapshot {
            name: name.into(),
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            group: group.map(str::to_string),
            version: "3.2.14".into(),
            role: "leader".into(),
            state: RunState::Running,
            reason: None,
            read_only: false,
            store_format: 3002,
            schema: None,
            synchronized: true,
            marker: false,
            mode: "CORE".into(),
            allow_upgrade: false,
            requests: 0,
            keys: 1,
            http_sessions: 0,
        }
    }

    #[test]
    fn written_target_parses_back() {
        for product in [
            Product::Generic,
            Product::Jahia,
            Product::Weaviate,
            Product::Neo4j,
            Product::Milvus,
        ] {
            let nodes = [
                snapshot("node1", 4001, Some("blue")),
                snapshot("node2", 4002, Some("green")),
            ];
            let t = build_target(
                product,
                &nodes,
                "http://127.0.0.1:4000",
                SocketAddr::from(([127, 0, 0, 1], 4100)),
                "3.2.14",
                "3.3.5",
            );
            let text = to_toml(&t).unwrap();
            let back: Target = toml::from_str(&text).unwrap();
            assert_eq!(back, t, "{product}");
            assert_eq!(back.nodes[1].tags["group"], "green");
            assert_eq!(back.nodes[0].tags["admin"], "http://127.0.0.1:4001");
            for name in [
                "stop",
                "start",
                "install",
                "read-only-on",
                "read-only-off",
                "backup",
                "restore",
                "copy-schema",
                "set-schema",
                "marker",
                "configure",
                "migrate-metadata",
                "rollback-metadata",
            ] {
                assert!(back.actions.contains_key(name), "{name}");
            }
            assert!(back.probes.iter().any(|p| p.health));
        }
    }
}
