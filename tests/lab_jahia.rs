//! The Jahia personality: full read-only mode, schemas and the rolling-upgrade marker.

mod lab_util;

use flightdeck::lab::{Lab, LabConfig, Product, Timing};
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
    // The tools page of `base` switched on with `token`, in session `cookie`.
    let switch_on = |base: String| {
        let (token, cookie) = (&token, &cookie);
        async move {
            let r = client()
                .get(format!(
                    "{base}/modules/tools/maintenance.jsp?fullReadOnlyMode=true&toolAccessToken={token}"
                ))
                .header("Cookie", cookie)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // The session lives in node1's JVM: its cookie and token mean nothing to node2.
    let (status, html) = switch_on(n2.clone()).await;
    assert_eq!(status, 500);
    assert!(html.contains("Missing token"), "{html}");
    assert!(!node(&lab, "node2").await.read_only, "nothing switched");
    // Same session, its token: switched, cluster-wide from the processing node.
    let (status, html) = switch_on(n1.clone()).await;
    assert_eq!(status, 200);
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

/// The session cookie a response sets, if any.
fn set_session(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()?
                .strip_prefix("JSESSIONID=")
                .map(str::to_string)
        })
}

/// One user's request through the balancer with its session cookie; the session it holds after.
async fn browse(front: &str, session: Option<&str>) -> String {
    let mut req = client().get(format!("{front}/kv/page"));
    if let Some(s) = session {
        req = req.header("cookie", format!("JSESSIONID={s}"));
    }
    let r = req.send().await.unwrap();
    // A page the user reads (there or not: 404 is an answer too).
    let status = r.status().as_u16();
    assert!(
        status == 200 || status == 404,
        "a read through the balancer: {status}"
    );
    set_session(&r)
        .or_else(|| session.map(str::to_string))
        .expect("a session")
}

/// The node whose JVM holds `session`: the one that answers it without handing out another.
/// (Asking the others directly opens a session there, out of the balancer's sight.)
async fn holder(lab: &Lab, session: &str) -> Option<&'static str> {
    for name in ["node1", "node2", "node3"] {
        let r = client()
            .get(format!("{}/kv/page", url(lab, name).await))
            .header("cookie", format!("JSESSIONID={session}"))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        if (status == 200 || status == 404) && set_session(&r).is_none() {
            return Some(name);
        }
    }
    None
}

/// The HTTP sessions the node holds, and the sessions the balancer counts on it (`scur`).
async fn sessions_of(lab: &Lab, name: &str) -> (usize, u64) {
    let backend: serde_json::Value = client()
        .get(format!("{}/_lab/lb/backends/{name}", lab.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        node(lab, name).await.http_sessions,
        backend["sessions"].as_u64().unwrap(),
    )
}

async fn set_lb(lab: &Lab, name: &str, state: &str) {
    let status = client()
        .put(format!("{}/_lab/lb/backends/{name}", lab.admin_url()))
        .json(&json!({ "state": state }))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{name} -> {state}: {status}");
}

/// Jahia keeps a user's HTTP session in the memory of the node that serves it (Jahia Store,
/// "Distributed Sessions": "When the server is shut down, all this session data disappears and
/// the user will have to login again"); the balancer pins the session to that node and keeps
/// sending it there while the node drains. The seed's old action (out of the balancer, then
/// stop at once) logs the node's users out; the procedure's `drained` gate (the balancer's
/// sessions on the node at 0) waits for them to finish, and nobody loses a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_right_after_the_drain_logs_users_out_and_the_drain_wait_loses_no_session() {
    let mut cfg = LabConfig::new(Product::Jahia, 3, Timing::fast());
    cfg.load_rps = 60;
    let lab = Lab::start(cfg).await.unwrap();
    let front = format!("http://{}", lab.lb_frontend());
    eventually("the load generator's users hold sessions", || async {
        (lab.traffic().await.ok_reads > 20).then_some(())
    })
    .await;

    // A user of ours: its session lives on one node, and the balancer keeps it there.
    let mine = browse(&front, None).await;
    let home = holder(&lab, &mine).await.expect("a node holds our session");
    for _ in 0..3 {
        assert_eq!(
            browse(&front, Some(&mine)).await,
            mine,
            "the session sticks"
        );
    }

    // The fixed procedure on `home`: out of the balancer, wait until its sessions are 0
    // (ours ends when we log out), then stop. Drained, the node still serves our session.
    set_lb(&lab, home, "drain").await;
    assert_eq!(
        browse(&front, Some(&mine)).await,
        mine,
        "a draining node keeps its sessions"
    );
    assert!(
        sessions_of(&lab, home).await.1 >= 1,
        "our session counts on {home}"
    );
    let r = client()
        .get(format!("{front}/cms/logout"))
        .header("cookie", format!("JSESSIONID={mine}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    eventually("no session left on the drained node", || async {
        (sessions_of(&lab, home).await.1 == 0).then_some(())
    })
    .await;
    let lost_before = lab.traffic().await.lost_sessions;
    op_ok(&lab, home, "stop", json!({})).await;
    // The generator's users go on a while; none of them was left on the stopped node.
    let served = lab.traffic().await.ok_reads;
    eventually("more traffic after the stop", || async {
        (lab.traffic().await.ok_reads >= served + 40).then_some(())
    })
    .await;
    let t = lab.traffic().await;
    assert_eq!(
        t.lost_sessions, lost_before,
        "the drain wait loses no session: {t:?}"
    );
    op_ok(&lab, home, "start", json!({})).await;
    wait_state(&lab, home, "running").await;
    set_lb(&lab, home, "ready").await;

    // The old action on a node holding a session of ours: out of the balancer, stopped at once.
    let mine = browse(&front, None).await;
    let on = holder(&lab, &mine).await.expect("a node holds our session");
    set_lb(&lab, on, "drain").await;
    let (held, pinned) = sessions_of(&lab, on).await;
    assert!(
        held >= 1 && pinned >= 1,
        "{on} holds sessions when it stops"
    );
    op_ok(&lab, on, "stop", json!({})).await;
    assert_eq!(node(&lab, on).await.http_sessions, 0, "a stop loses them");
    // Our next click: the balancer sends it elsewhere, where Jahia knows no such session and
    // hands out a new one: we are logged out.
    let after = browse(&front, Some(&mine)).await;
    assert_ne!(
        after, mine,
        "the session survived a stop of the node holding it"
    );
    lab.shutdown().await;
}

/// The node's Karaf `cluster:node-list` (the lab's stand-in): its status and answer.
async fn cluster_nodes(lab: &Lab, name: &str) -> (u16, serde_json::Value) {
    get_json(&format!("{}/_lab/cluster-nodes", url(lab, name).await)).await
}

/// Audit J3: a new release installed beside the old one (`/opt/jahia/releases/<version>`) has
/// no configuration of its own; the seed's `install` carried only ROOT.xml over. Jahia then
/// starts on the settings it ships (Jahia/jahia 8.2.0.0 `org/jahia/defaults/config/properties/
/// jahia.node.properties`: `cluster.activated = false`, `processingServer = true`; a missing
/// file is no error): healthy and on its version, but alone, with no Karaf Cellar, and a
/// second processing server. With the configuration carried over it rejoins as the member it
/// was.
#[tokio::test]
async fn a_release_installed_without_its_configuration_starts_alone_as_a_second_processing_server()
{
    let lab = lab(Product::Jahia, 3).await;
    let (status, members) = cluster_nodes(&lab, "node1").await;
    assert_eq!(status, 200, "{members}");
    assert_eq!(members["members"].as_array().unwrap().len(), 3, "{members}");

    // The old action: a patch release unpacked beside the old one, nothing carried over.
    op_ok(&lab, "node2", "stop", json!({})).await;
    op_ok(&lab, "node2", "install", json!({"version": "8.1.8.1"})).await;
    op_ok(&lab, "node2", "start", json!({})).await;
    let n2 = wait_state(&lab, "node2", "running").await;
    // Every check the seed made passes: running, on its version, writable, serving.
    assert_eq!(n2.version, "8.1.8.1");
    assert!(!n2.read_only);
    let (status, _) = get(&format!("{}/modules/healthcheck", url(&lab, "node2").await)).await;
    assert_eq!(status, 200);
    // Yet it runs as Jahia's shipped defaults make it: a processing server, out of the cluster.
    assert_eq!(n2.role, "processing", "a second processing server");
    assert_eq!(node(&lab, "node1").await.role, "processing");
    let (status, answer) = cluster_nodes(&lab, "node2").await;
    assert_eq!(status, 500, "{answer}");
    assert_eq!(answer["error"], "Command not found: cluster:node-list");
    let (_, members) = cluster_nodes(&lab, "node1").await;
    assert_eq!(
        members["members"],
        json!(["node1", "node3"]),
        "node2 is not in the cluster"
    );
    // The release's configuration folder is indeed missing; the old one's is intact.
    let releases = lab.data_dir().join("node2").join("releases");
    let props = "digital-factory-config/jahia/jahia.node.properties";
    assert!(!releases.join("8.1.8.1").join(props).exists());
    assert!(releases.join("8.1.8.0").join(props).exists());

    // The fixed procedure: back to the configured release, then a release with the
    // configuration carried over (what the real target's `install` copies).
    op_ok(&lab, "node2", "stop", json!({})).await;
    op_ok(&lab, "node2", "install", json!({"version": "8.1.8.0"})).await;
    op_ok(&lab, "node2", "start", json!({})).await;
    wait_state(&lab, "node2", "running").await;
    op_ok(&lab, "node2", "stop", json!({})).await;
    op_ok(
        &lab,
        "node2",
        "install",
        json!({"version": "8.1.8.2", "carry_config": true}),
    )
    .await;
    op_ok(&lab, "node2", "start", json!({})).await;
    let n2 = wait_state(&lab, "node2", "running").await;
    assert_eq!(
        (n2.version.as_str(), n2.role.as_str()),
        ("8.1.8.2", "member")
    );
    assert!(releases.join("8.1.8.2").join(props).exists());
    for name in ["node1", "node2", "node3"] {
        let (status, members) = cluster_nodes(&lab, name).await;
        assert_eq!(status, 200, "{name}: {members}");
        assert_eq!(
            members["members"],
            json!(["node1", "node2", "node3"]),
            "{name}"
        );
    }
    lab.shutdown().await;
}
