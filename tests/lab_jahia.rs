//! The Jahia personality: full read-only mode, schemas and the rolling-upgrade marker.

mod lab_util;

use flightdeck::lab::Product;
use lab_util::*;
use serde_json::json;

#[tokio::test]
async fn rolling_upgrade_marker_semantics() {
    let lab = lab(Product::Jahia, 3).await;
    let n1 = url(&lab, "node1").await;
    let n2 = url(&lab, "node2").await;
    assert_eq!(node(&lab, "node1").await.role, "processing");
    assert_eq!(node(&lab, "node2").await.role, "member");
    assert_eq!(put(&format!("{n1}/kv/page"), "home").await.0, 200);

    // The seed's old action: one request with the parameter and no token. Jahia's tools filter
    // (ToolsAccessTokenFilter) throws "Missing token", which Tomcat serves as a 500.
    let page = format!("{n1}/modules/tools/maintenance.jsp");
    let (status, body) = get(&format!("{page}?fullReadOnlyMode=true")).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("Missing token"), "{body}");
    assert!(!node(&lab, "node2").await.read_only, "nothing switched");

    // The page is HTML; a GET without parameters issues a token into the session.
    let r = client().get(&page).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = r.text().await.unwrap();
    assert!(
        html.contains("The full read-only mode is currently <strong>OFF</strong>."),
        "{html}"
    );
    assert!(
        serde_json::from_str::<serde_json::Value>(&html).is_err(),
        "not JSON"
    );
    let token = html
        .split("toolAccessToken=")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    // A token from another session is no good either.
    let (status, _) = get(&format!(
        "{page}?fullReadOnlyMode=true&toolAccessToken={token}"
    ))
    .await;
    assert_eq!(status, 500);
    // Same session, its token: switched, cluster-wide from the processing node.
    let r = client()
        .get(format!(
            "{page}?fullReadOnlyMode=true&toolAccessToken={token}"
        ))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("The full read-only mode is currently <strong>ON</strong>."),
        "{html}"
    );
    let (_, st) = get(&format!("{n2}/modules/tools/maintenance.jsp")).await;
    assert!(
        st.contains("The full read-only mode is currently <strong>ON</strong>."),
        "{st}"
    );
    assert_eq!(put(&format!("{n2}/kv/page"), "x").await.1, "read-only");

    // Copy schema A -> B (a real file copy), then move the processing node onto B.
    let r = client()
        .post(format!("{}/_lab/copy-schema", lab.admin_url()))
        .json(&json!({"from": "A", "to": "B"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(lab.data_dir().join("schemas/B/store.json").exists());
    assert_eq!(
        op(&lab, "node1", "set-schema", json!({"schema": "B"}))
            .await
            .0,
        409,
        "only while stopped"
    );
    op_ok(&lab, "node1", "stop", json!({})).await;
    op_ok(&lab, "node1", "set-schema", json!({"schema": "B"})).await;
    op_ok(&lab, "node1", "install", json!({"version": "8.2.0.0"})).await;

    // Without the marker it would join the old cluster: conflict.
    op_ok(&lab, "node1", "start", json!({})).await;
    let failed = wait_state(&lab, "node1", "failed").await;
    let reason = failed.reason.unwrap();
    assert!(reason.starts_with("cluster conflict:"), "{reason}");
    assert!(
        reason.contains("rolling-upgrade marker missing"),
        "{reason}"
    );

    // With it: the marker is consumed and the node comes up writable on the new format.
    op_ok(&lab, "node1", "marker", json!({})).await;
    assert!(node(&lab, "node1").await.marker);
    assert!(lab.data_dir().join("node1/rolling-upgrade").exists());
    op_ok(&lab, "node1", "start", json!({})).await;
    let up = wait_state(&lab, "node1", "running").await;
    assert!(!up.marker);
    assert!(!lab.data_dir().join("node1/rolling-upgrade").exists());
    assert!(!up.read_only);
    assert_eq!(up.schema.as_deref(), Some("B"));
    assert_eq!(up.store_format, 8002);
    assert_eq!(get(&format!("{n1}/kv/page")).await, (200, "home".into()));
    assert_eq!(put(&format!("{n1}/kv/page"), "new").await.0, 200);

    // The old nodes still run read-only on schema A at the old format.
    let n2s = node(&lab, "node2").await;
    assert!(n2s.read_only);
    assert_eq!(n2s.store_format, 8001);
    assert_eq!(get(&format!("{n2}/kv/page")).await, (200, "home".into()));
    assert_eq!(get(&format!("{n1}/modules/healthcheck")).await.0, 200);
    lab.shutdown().await;
}

/// Cluster membership (seed audit §4 `final`: "does not check that the upgraded nodes form one
/// cluster"): Jahia nodes cluster through the database schema they share, and the
/// `rolling-upgrade` marker resets discovery. A node pointed at another schema with a marker
/// starts healthy, writable and on its version — every old final check passes — yet its Karaf
/// Cellar (`cluster:node-list`) lists only itself, and the other nodes no longer list it.
#[tokio::test]
async fn a_node_on_another_schema_passes_the_old_checks_but_forms_its_own_cluster() {
    let lab = lab(Product::Jahia, 3).await;
    let members = |name: &'static str| {
        let lab = &lab;
        async move {
            let (status, v) =
                get_json(&format!("{}/_lab/cluster-nodes", url(lab, name).await)).await;
            assert_eq!(status, 200, "{v}");
            let mut m: Vec<String> = v["members"]
                .as_array()
                .expect("members")
                .iter()
                .map(|x| x.as_str().unwrap_or_default().to_string())
                .collect();
            m.sort();
            m
        }
    };
    let all = vec!["node1".to_string(), "node2".into(), "node3".into()];
    assert_eq!(members("node1").await, all);

    let r = client()
        .post(format!("{}/_lab/copy-schema", lab.admin_url()))
        .json(&json!({"from": "A", "to": "B"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    op_ok(&lab, "node3", "stop", json!({})).await;
    op_ok(&lab, "node3", "set-schema", json!({"schema": "B"})).await;
    op_ok(&lab, "node3", "marker", json!({})).await;
    op_ok(&lab, "node3", "start", json!({})).await;
    wait_state(&lab, "node3", "running").await;

    // What the procedure's final checks looked at: all fine on node3.
    let n3 = url(&lab, "node3").await;
    assert_eq!(get(&format!("{n3}/modules/healthcheck")).await.0, 200);
    let (_, page) = get(&format!("{n3}/modules/tools/maintenance.jsp")).await;
    assert!(page.contains("currently <strong>OFF</strong>"), "{page}");
    assert!(put(&format!("{n3}/kv/k"), "v").await.0 == 200);
    // But it is a cluster of one, and the others lost it.
    assert_eq!(members("node3").await, vec!["node3".to_string()]);
    assert_eq!(
        members("node1").await,
        vec!["node1".to_string(), "node2".into()]
    );
    // A stopped node's shell does not answer.
    op_ok(&lab, "node2", "stop", json!({})).await;
    wait_state(&lab, "node2", "stopped").await;
    let (status, _) = get(&format!("{}/_lab/cluster-nodes", url(&lab, "node2").await)).await;
    assert_eq!(status, 503);
    lab.shutdown().await;
}
