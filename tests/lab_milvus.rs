//! The Milvus personality: /healthz and the 2.1 -> 2.2 metadata migration and rollback.

mod lab_util;

use flightdeck::lab::Product;
use lab_util::*;
use serde_json::json;

#[tokio::test]
async fn metadata_must_be_migrated_before_2_2_starts() {
    let lab = lab(Product::Milvus, 1).await;
    let n1 = url(&lab, "node1").await;
    assert_eq!(get(&format!("{n1}/healthz")).await, (200, "OK".into()));
    assert_eq!(put(&format!("{n1}/kv/vec"), "1,2,3").await.0, 200);

    op_ok(&lab, "node1", "stop", json!({})).await;
    assert_eq!(
        get(&format!("{n1}/healthz")).await,
        (500, "Not all components are healthy, 0/8".into())
    );
    let (status, _) = op(&lab, "node1", "rollback-metadata", json!({})).await;
    assert_eq!(status, 409, "no metadata backup yet");
    op_ok(&lab, "node1", "install", json!({"version": "2.2.16"})).await;
    op_ok(&lab, "node1", "start", json!({})).await;
    let failed = wait_state(&lab, "node1", "failed").await;
    assert!(failed.reason.unwrap().contains("migrate-metadata"));

    op_ok(&lab, "node1", "migrate-metadata", json!({})).await;
    assert_eq!(node(&lab, "node1").await.store_format, 2002);
    op_ok(&lab, "node1", "start", json!({})).await;
    wait_state(&lab, "node1", "running").await;
    assert_eq!(get(&format!("{n1}/healthz")).await.0, 200);
    assert_eq!(get(&format!("{n1}/kv/vec")).await, (200, "1,2,3".into()));
    assert_eq!(
        op(&lab, "node1", "migrate-metadata", json!({})).await.0,
        409
    );

    // Roll back: the old version opens the restored metadata again.
    op_ok(&lab, "node1", "stop", json!({})).await;
    op_ok(&lab, "node1", "rollback-metadata", json!({})).await;
    assert_eq!(node(&lab, "node1").await.store_format, 2001);
    op_ok(&lab, "node1", "install", json!({"version": "2.1.4"})).await;
    op_ok(&lab, "node1", "start", json!({})).await;
    wait_state(&lab, "node1", "running").await;
    lab.shutdown().await;
}
