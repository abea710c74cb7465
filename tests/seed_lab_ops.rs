//! The lab operations added for the seed procedures: Jahia's full read-only switch and marker
//! removal, Weaviate's downgrade within the Raft era, Milvus's rolling update, helm upgrade,
//! migrate.sh (migrate, and its rollback failing as upstream's does) and the etcd snapshot.

mod lab_util;

use flightdeck::lab::Product;
use lab_util::*;
use serde_json::json;

async fn admin_post(lab: &flightdeck::lab::Lab, path: &str, body: serde_json::Value) -> u16 {
    client()
        .post(format!("{}{path}", lab.admin_url()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn jahia_full_read_only_is_cluster_wide_from_the_processing_node() {
    let lab = lab(Product::Jahia, 3).await;
    let (status, body) = op(&lab, "node2", "full-read-only", json!({"on": true})).await;
    assert_eq!(status, 200);
    assert_eq!(body["detail"]["switched"], json!(["node2"]));
    assert!(!node(&lab, "node3").await.read_only);
    let (_, body) = op(&lab, "node1", "full-read-only", json!({"on": "true"})).await;
    assert_eq!(
        body["detail"]["switched"],
        json!(["node1", "node2", "node3"])
    );
    // Off from the processing node even while it is starting (a rollback's case).
    op_ok(&lab, "node1", "stop", json!({})).await;
    op_ok(&lab, "node1", "start", json!({})).await;
    op_ok(&lab, "node1", "full-read-only", json!({"on": false})).await;
    assert!(snapshot(&lab).await.nodes.iter().all(|n| !n.read_only));
    assert_eq!(op(&lab, "node1", "full-read-only", json!({})).await.0, 400);

    op_ok(&lab, "node2", "marker", json!({})).await;
    let (_, body) = op(&lab, "node2", "remove-marker", json!({})).await;
    assert_eq!(body["detail"]["removed"], true);
    assert!(!node(&lab, "node2").await.marker);
    let (_, body) = op(&lab, "node2", "remove-marker", json!({})).await;
    assert_eq!(body["detail"]["removed"], false);
    lab.shutdown().await;
}

#[tokio::test]
async fn weaviate_goes_back_a_minor_within_the_raft_era_only() {
    let lab = lab(Product::Weaviate, 1).await;
    op_ok(&lab, "node1", "stop", json!({})).await;
    op_ok(&lab, "node1", "install", json!({"version": "1.26.18"})).await;
    op_ok(&lab, "node1", "start", json!({})).await;
    assert_eq!(
        wait_state(&lab, "node1", "running").await.store_format,
        1026
    );
    op_ok(&lab, "node1", "stop", json!({})).await;
    op_ok(&lab, "node1", "install", json!({"version": "1.25.10"})).await;
    op_ok(&lab, "node1", "start", json!({})).await;
    wait_state(&lab, "node1", "running").await;
    // Below the Raft migration there is no way back.
    op_ok(&lab, "node1", "stop", json!({})).await;
    op_ok(&lab, "node1", "install", json!({"version": "1.24.26"})).await;
    op_ok(&lab, "node1", "start", json!({})).await;
    let failed = wait_state(&lab, "node1", "failed").await;
    assert!(failed.reason.unwrap().contains("downgrade"));
    lab.shutdown().await;
}

#[tokio::test]
async fn milvus_rollout_needs_migrated_metadata_and_keeps_serving() {
    let lab = lab(Product::Milvus, 1).await;
    let (status, body) = op(&lab, "node1", "rollout", json!({"version": "2.2.14"})).await;
    assert_eq!(status, 409);
    assert!(
        body["error"].as_str().unwrap().contains("migrate"),
        "{body}"
    );

    // migrate.sh -o rollback as upstream runs it: Milvus scaled to 0, then exit 4 ("No backup
    // exists"): rollback_meta() checks a ConfigMap name without the instance suffix.
    let rollback = json!({"operation": "rollback", "version": "2.1.4"});
    assert_eq!(
        admin_post(&lab, "/_lab/migrate-sh", rollback.clone()).await,
        409
    );
    wait_state(&lab, "node1", "stopped").await;
    op_ok(&lab, "node1", "start", json!({})).await;
    wait_state(&lab, "node1", "running").await;
    let migrate = json!({"operation": "migrate", "version": "2.2.14"});
    assert_eq!(
        admin_post(&lab, "/_lab/migrate-sh", migrate.clone()).await,
        200
    );
    let up = wait_state(&lab, "node1", "running").await;
    assert_eq!((up.version.as_str(), up.store_format), ("2.2.14", 2002));
    // Migrating twice is refused, and leaves Milvus running.
    assert_eq!(admin_post(&lab, "/_lab/migrate-sh", migrate).await, 409);
    assert_eq!(
        node(&lab, "node1").await.state,
        flightdeck::lab::RunState::Running
    );
    let bad = json!({"operation": "explode", "version": "2.1.4"});
    assert_eq!(admin_post(&lab, "/_lab/migrate-sh", bad).await, 400);
    // The etcd snapshot taken before is what brings 2.1.4 back (see the etcd test below).
    op_ok(&lab, "node1", "stop", json!({})).await;
    op_ok(&lab, "node1", "install", json!({"version": "2.1.4"})).await;
    op_ok(&lab, "node1", "start", json!({})).await;
    let failed = wait_state(&lab, "node1", "failed").await;
    assert!(failed.reason.unwrap().contains("downgrade is not possible"));
    lab.shutdown().await;
}

#[tokio::test]
async fn milvus_helm_upgrade_recreates_the_pod() {
    let lab = lab(Product::Milvus, 1).await;
    // helm upgrade recreates the pod; from 2.1 metadata, 2.2 does not start.
    let helm = json!({"version": "2.2.14"});
    assert_eq!(admin_post(&lab, "/_lab/helm-upgrade", helm).await, 200);
    let failed = wait_state(&lab, "node1", "failed").await;
    assert!(failed.reason.unwrap().contains("migrate-metadata"));
    let helm = json!({"version": "2.1.4"});
    assert_eq!(admin_post(&lab, "/_lab/helm-upgrade", helm).await, 200);
    wait_state(&lab, "node1", "running").await;

    let (status, tools) = get_json(&format!("{}/_lab/tools", lab.admin_url())).await;
    assert_eq!(status, 200);
    assert!(tools["helm"].as_str().unwrap().starts_with("3."));
    lab.shutdown().await;
}

#[tokio::test]
async fn milvus_rolling_update_switches_a_running_node() {
    // Two Deployments of a cluster (a one-node lab is a standalone, which cannot roll).
    let lab = flightdeck::lab::Lab::start({
        let mut cfg =
            flightdeck::lab::LabConfig::new(Product::Milvus, 2, flightdeck::lab::Timing::fast());
        cfg.version = Some("2.2.5".into());
        cfg
    })
    .await
    .unwrap();
    op_ok(&lab, "node1", "rollout", json!({"version": "2.3.21"})).await;
    let n = node(&lab, "node1").await;
    assert_eq!(n.version, "2.3.21");
    assert_eq!(n.state, flightdeck::lab::RunState::Running);
    assert_eq!(n.store_format, 2003);
    op_ok(
        &lab,
        "node1",
        "fault",
        json!({"fault": "fail-migration:node1"}),
    )
    .await;
    let (status, body) = op(&lab, "node1", "rollout", json!({"version": "2.4.23"})).await;
    assert_eq!(status, 409);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("never became ready"));
    assert_eq!(node(&lab, "node1").await.version, "2.3.21");
    op_ok(&lab, "node1", "stop", json!({})).await;
    assert_eq!(
        op(&lab, "node1", "rollout", json!({"version": "2.4.23"}))
            .await
            .0,
        409,
        "a stopped deployment does not roll"
    );
    lab.shutdown().await;
}
