//! The lab's target drives the lab: its action bindings and probes, rendered the way a plan
//! renders them, hit the right endpoints with bodies the admin API accepts.

mod lab_util;

use flightdeck::lab::{Lab, Product};
use flightdeck::procedure::model::{Action, Check};
use lab_util::*;

/// Fills in `${node.*}` and `${arg.*}` like the plan does for one node.
fn render(text: &str, lab: &Lab, node: &str, args: &[(&str, &str)]) -> String {
    let n = lab.target().nodes.iter().find(|n| n.name == node).unwrap();
    let mut out = text
        .replace("${node.url}", &format!("http://{}", n.address))
        .replace("${node.admin}", &n.tags["admin"])
        .replace("${node.name}", &n.name);
    for (k, v) in args {
        out = out.replace(&format!("${{arg.{k}}}"), v);
    }
    assert!(!out.contains("${"), "unrendered template in {out}");
    out
}

async fn call(lab: &Lab, action: &str, node: &str, args: &[(&str, &str)]) -> u16 {
    let Action::Http(spec) = &lab.target().actions[action] else {
        panic!("{action} is not an http action");
    };
    let mut req = client().request(
        spec.method.parse().unwrap(),
        render(&spec.url, lab, node, args),
    );
    for (k, v) in &spec.headers {
        req = req.header(k, v);
    }
    if let Some(body) = &spec.body {
        req = req.body(render(body, lab, node, args));
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_bound_actions_work_against_the_lab() {
    let lab = lab(Product::Generic, 3).await;
    assert_eq!(call(&lab, "read-only-on", "node2", &[]).await, 200);
    assert!(node(&lab, "node2").await.read_only);
    assert_eq!(call(&lab, "read-only-off", "node2", &[]).await, 200);
    assert_eq!(call(&lab, "backup", "node2", &[("name", "b1")]).await, 200);
    assert_eq!(call(&lab, "restore", "node2", &[("name", "b1")]).await, 200);
    assert_eq!(call(&lab, "stop", "node2", &[]).await, 200);
    assert_eq!(
        call(&lab, "install", "node2", &[("version", "1.1.0")]).await,
        200
    );
    let args = [("mode", "CORE"), ("allow_upgrade", "false")];
    assert_eq!(call(&lab, "configure", "node2", &args).await, 200);
    assert_eq!(call(&lab, "start", "node2", &[]).await, 200);
    assert_eq!(wait_state(&lab, "node2", "running").await.version, "1.1.0");
    // Product-specific operations are refused clearly on another product.
    assert_eq!(call(&lab, "marker", "node2", &[]).await, 409);
    assert_eq!(call(&lab, "migrate-metadata", "node2", &[]).await, 409);
    lab.shutdown().await;
}

#[tokio::test]
async fn the_jahia_bindings_cover_the_schema_switch() {
    let lab = lab(Product::Jahia, 2).await;
    assert_eq!(
        call(&lab, "copy-schema", "node1", &[("from", "A"), ("to", "B")]).await,
        200
    );
    assert_eq!(call(&lab, "stop", "node1", &[]).await, 200);
    assert_eq!(
        call(&lab, "set-schema", "node1", &[("schema", "B")]).await,
        200
    );
    assert_eq!(call(&lab, "marker", "node1", &[]).await, 200);
    assert_eq!(call(&lab, "start", "node1", &[]).await, 200);
    assert_eq!(
        wait_state(&lab, "node1", "running").await.schema.as_deref(),
        Some("B")
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn the_probes_read_their_facts() {
    for product in [
        Product::Generic,
        Product::Weaviate,
        Product::Milvus,
        Product::Jahia,
    ] {
        let lab = lab(product, 2).await;
        for probe in &lab.target().probes {
            let Check::Http(spec) = &probe.check else {
                panic!("lab probes are http");
            };
            let url = render(&spec.url, &lab, "node1", &[]);
            let (status, body) = get_json(&url).await;
            if probe.health {
                assert_eq!(status, 200, "{product} {url}");
            }
            for (fact, pointer) in &probe.facts {
                assert!(
                    body.pointer(pointer).is_some(),
                    "{product}: fact {fact} at {pointer} missing in {body}"
                );
            }
        }
        lab.shutdown().await;
    }
    let lab = lab(Product::Neo4j, 1).await;
    let health = lab.target().probes.iter().find(|p| p.health).unwrap();
    let Check::Http(spec) = &health.check else {
        panic!("lab probes are http");
    };
    // Neo4j's status endpoints ask for credentials: the probe carries the lab's, a secret read
    // from the token file the target names.
    let file = lab.target().secrets["neo4j_basic_auth"]
        .file
        .clone()
        .unwrap();
    let token = std::fs::read_to_string(file).unwrap();
    let header = spec.headers["Authorization"].replace("${secret.neo4j_basic_auth}", token.trim());
    let authed = |url: String| {
        let header = header.clone();
        async move {
            let r = client()
                .get(url)
                .header("Authorization", header)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    assert_eq!(get(&render(&spec.url, &lab, "node1", &[])).await.0, 401);
    assert_eq!(authed(render(&spec.url, &lab, "node1", &[])).await, 200);
    assert_eq!(authed(render(&spec.url, &lab, "node2", &[])).await, 503);
    lab.shutdown().await;
}
