//! The Milvus personality: /healthz and the 2.1 -> 2.2 metadata migration and rollback; the
//! real refusals the seed procedure's old actions ran into (seed audit 2026-12, M1, M2, M4, and
//! "Milvus cannot be downgraded"), each failing on the lab with the product's own error; and a
//! restarted standalone that is healthy before its collections answer queries.

mod lab_util;

use flightdeck::lab::{Lab, LabConfig, Product, RunState, Timing};
use lab_util::*;
use serde_json::{json, Value};

async fn admin_post(lab: &Lab, path: &str, body: Value) -> (u16, Value) {
    send_json(client().post(format!("{}{path}", lab.admin_url())), &body).await
}

async fn milvus_at(version: &str, nodes: usize) -> Lab {
    let mut cfg = LabConfig::new(Product::Milvus, nodes, Timing::fast());
    cfg.version = Some(version.into());
    Lab::start(cfg).await.unwrap()
}

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
    op_ok(&lab, "node1", "install", json!({"version": "2.2.14"})).await;
    op_ok(&lab, "node1", "start", json!({})).await;
    let failed = wait_state(&lab, "node1", "failed").await;
    assert!(failed.reason.unwrap().contains("migrate-metadata"));

    op_ok(&lab, "node1", "migrate-metadata", json!({})).await;
    assert_eq!(node(&lab, "node1").await.store_format, 2002);
    op_ok(&lab, "node1", "start", json!({})).await;
    wait_state(&lab, "node1", "running").await;
    assert_eq!(get(&format!("{n1}/healthz")).await.0, 200);
    // Healthy before its collection answers queries (see the test below).
    eventually("the collection answers again", || async {
        (get(&format!("{n1}/kv/vec")).await == (200, "1,2,3".into())).then_some(())
    })
    .await;
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

/// The old `migrate-metadata` binding passed `-d true`: migrate.sh then deletes its backup PVC
/// and ConfigMap, and the old undo (`migrate.sh -o rollback`) fails with "No backup exists"
/// (exit 4), leaving Milvus scaled to 0.
#[tokio::test]
async fn migrate_sh_d_true_loses_the_backup_and_the_rollback_fails() {
    let lab = lab(Product::Milvus, 1).await;
    let migrate = json!({"operation": "migrate", "version": "2.2.14", "cleanup": true});
    assert_eq!(admin_post(&lab, "/_lab/migrate-sh", migrate).await.0, 200);
    let up = wait_state(&lab, "node1", "running").await;
    assert_eq!((up.version.as_str(), up.store_format), ("2.2.14", 2002));
    assert!(
        !lab.data_dir().join("node1/metadata-backup.json").exists(),
        "-d true deletes the backup"
    );
    let rollback = json!({"operation": "rollback", "version": "2.1.4"});
    let (status, body) = admin_post(&lab, "/_lab/migrate-sh", rollback).await;
    assert_eq!(status, 409);
    let err = body["error"].as_str().unwrap();
    assert!(
        err.contains("No backup exists, abort") && err.contains("exit 4"),
        "{err}"
    );
    assert!(err.contains("deleted by -d"), "{err}");
    let down = wait_state(&lab, "node1", "stopped").await;
    assert_eq!(down.store_format, 2002, "the metadata stays migrated");
    lab.shutdown().await;
}

/// Upstream's rollback fails even with the backup kept (rollback_meta() checks the ConfigMap
/// without the instance suffix); the etcd snapshot taken before the migration is the undo that
/// works: 2.1.4 runs again on its 2.1 metadata.
#[tokio::test]
async fn the_etcd_snapshot_brings_2_1_back_where_migrate_sh_rollback_cannot() {
    let lab = lab(Product::Milvus, 1).await;
    let n1 = url(&lab, "node1").await;
    assert_eq!(put(&format!("{n1}/kv/vec"), "1,2,3").await.0, 200);
    let snap = json!({"operation": "snapshot", "name": "before-migrate"});
    assert_eq!(admin_post(&lab, "/_lab/etcd", snap).await.0, 200);
    let migrate = json!({"operation": "migrate", "version": "2.2.14"});
    assert_eq!(admin_post(&lab, "/_lab/migrate-sh", migrate).await.0, 200);
    wait_state(&lab, "node1", "running").await;
    assert!(lab.data_dir().join("node1/metadata-backup.json").exists());
    let rollback = json!({"operation": "rollback", "version": "2.1.4"});
    let (status, body) = admin_post(&lab, "/_lab/migrate-sh", rollback).await;
    assert_eq!(status, 409);
    assert!(
        body["error"].as_str().unwrap().contains("No backup exists"),
        "{body}"
    );
    wait_state(&lab, "node1", "stopped").await;

    let missing = json!({"operation": "restore", "name": "nope", "version": "2.1.4"});
    assert_eq!(admin_post(&lab, "/_lab/etcd", missing).await.0, 404);
    let restore = json!({"operation": "restore", "name": "before-migrate", "version": "2.1.4"});
    assert_eq!(admin_post(&lab, "/_lab/etcd", restore).await.0, 200);
    let back = wait_state(&lab, "node1", "running").await;
    assert_eq!((back.version.as_str(), back.store_format), ("2.1.4", 2001));
    // Restarted: healthy before the collection answers (a_restarted_standalone_... below).
    eventually("the collection answers again", || async {
        (get(&format!("{n1}/kv/vec")).await == (200, "1,2,3".into())).then_some(())
    })
    .await;
    lab.shutdown().await;
}

/// The old rolling path patched a standalone Deployment to RollingUpdate: the surge pod needs the
/// standalone's ReadWriteOnce volume and never attaches (Multi-Attach); the old pod keeps serving.
#[tokio::test]
async fn a_standalone_refuses_a_second_pod_on_its_volume() {
    let lab = milvus_at("2.2.5", 1).await;
    let (status, body) = op(&lab, "node1", "rollout", json!({"version": "2.2.14"})).await;
    assert_eq!(status, 409);
    let err = body["error"].as_str().unwrap();
    assert!(err.contains("Multi-Attach error for volume"), "{err}");
    assert!(err.contains("exclusively attached to one node"), "{err}");
    let n = node(&lab, "node1").await;
    assert_eq!((n.version.as_str(), n.state), ("2.2.5", RunState::Running));
    lab.shutdown().await;
}

/// The old undos downgraded the image (a rollout back to the old version, helm rollback): Milvus
/// cannot be downgraded, and the lab refuses both.
#[tokio::test]
async fn milvus_refuses_a_downgrade() {
    let lab = milvus_at("2.2.5", 2).await;
    for n in ["node1", "node2"] {
        op_ok(&lab, n, "rollout", json!({"version": "2.3.21"})).await;
    }
    let (status, body) = op(&lab, "node1", "rollout", json!({"version": "2.2.5"})).await;
    assert_eq!(status, 409);
    assert!(
        body["error"].as_str().unwrap().contains("newer than 2.2.5"),
        "{body}"
    );
    // helm rollback recreates the pods on the old image: they do not start.
    let (status, _) = admin_post(&lab, "/_lab/helm-upgrade", json!({"version": "2.2.5"})).await;
    assert_eq!(status, 200);
    let failed = wait_state(&lab, "node1", "failed").await;
    assert!(
        failed.reason.unwrap().contains("downgrade is not possible"),
        "the old image refuses the newer metadata"
    );
    lab.shutdown().await;
}

/// helm upgrade after a rolling update or migrate.sh leaves the pods alone: their template (the
/// image) does not change.
#[tokio::test]
async fn helm_upgrade_keeps_pods_already_on_the_version() {
    let lab = milvus_at("2.2.5", 2).await;
    op_ok(&lab, "node1", "rollout", json!({"version": "2.2.14"})).await;
    let (status, body) = admin_post(&lab, "/_lab/helm-upgrade", json!({"version": "2.2.14"})).await;
    assert_eq!(status, 200);
    assert_eq!(body["nodes"], json!(["node2"]), "only node2 was restarted");
    let n1 = node(&lab, "node1").await;
    assert_eq!(
        (n1.version.as_str(), n1.state),
        ("2.2.14", RunState::Running)
    );
    lab.shutdown().await;
}

/// Learned from a real Milvus (docs/real-milvus.md): after 2.3.5 started on 2.2.16's data,
/// /healthz said OK at once, but for ~34 s every query failed with "collection not loaded"
/// (the load state already said Loaded), and then it served without a load call.
#[tokio::test]
async fn a_restarted_standalone_is_healthy_before_its_collection_answers_queries() {
    // Fast, except a settle long enough that the refusal is certain when we look.
    let timing = Timing {
        sync_settle_ms: 60_000,
        ..Timing::fast()
    };
    let slow = Lab::start(LabConfig::new(Product::Milvus, 1, timing))
        .await
        .unwrap();
    let n1 = url(&slow, "node1").await;
    assert_eq!(put(&format!("{n1}/kv/vec"), "1,2,3").await.0, 200);
    assert_eq!(get(&format!("{n1}/kv/vec")).await, (200, "1,2,3".into()));
    op_ok(&slow, "node1", "stop", json!({})).await;
    op_ok(&slow, "node1", "start", json!({})).await;
    wait_state(&slow, "node1", "running").await;
    assert_eq!(get(&format!("{n1}/healthz")).await, (200, "OK".into()));
    assert_eq!(
        get(&format!("{n1}/kv/vec")).await,
        (503, "failed to query: collection not loaded".into())
    );
    assert_eq!(
        put(&format!("{n1}/kv/more"), "4,5,6").await.0,
        200,
        "inserts are not refused"
    );
    slow.shutdown().await;

    // The collection answers again by itself, without a load.
    let fast = lab(Product::Milvus, 1).await;
    let n1 = url(&fast, "node1").await;
    assert_eq!(put(&format!("{n1}/kv/vec"), "1,2,3").await.0, 200);
    op_ok(&fast, "node1", "stop", json!({})).await;
    op_ok(&fast, "node1", "start", json!({})).await;
    wait_state(&fast, "node1", "running").await;
    eventually("the collection answers again", || async {
        (get(&format!("{n1}/kv/vec")).await == (200, "1,2,3".into())).then_some(())
    })
    .await;
    fast.shutdown().await;

    // In a cluster the other nodes serve meanwhile: a restarted node is not refused.
    let cluster = Lab::start(LabConfig::new(Product::Milvus, 3, timing))
        .await
        .unwrap();
    let n2 = url(&cluster, "node2").await;
    assert_eq!(put(&format!("{n2}/kv/vec"), "1,2,3").await.0, 200);
    op_ok(&cluster, "node2", "stop", json!({})).await;
    op_ok(&cluster, "node2", "start", json!({})).await;
    wait_state(&cluster, "node2", "running").await;
    assert_eq!(get(&format!("{n2}/kv/vec")).await, (200, "1,2,3".into()));
    cluster.shutdown().await;
}

/// A full disk makes Milvus's quota center deny writes (`DenyToWrite`) while /healthz stays OK:
/// only the proxy's CheckHealth RPC says so, with Milvus's reason (v2.2.16 internal/proxy/impl.go
/// CheckHealth; multi_rate_limiter.go QuotaErrorString). Inserts are refused, and the state
/// outlives a restart (the disk is still full).
#[tokio::test]
async fn denied_writes_show_in_check_health_not_in_healthz() {
    let lab = lab(Product::Milvus, 1).await;
    let n1 = url(&lab, "node1").await;
    let check = format!("{n1}/milvus.proto.milvus.MilvusService/CheckHealth");
    let health = |url: String| async move {
        let r = client().post(url).json(&json!({})).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    let (status, before) = health(check.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(before["isHealthy"], true, "{before}");
    assert_eq!(before["quotaStates"], json!([]), "{before}");
    assert_eq!(put(&format!("{n1}/kv/vec"), "1,2,3").await.0, 200);

    let (status, _) = admin_post(&lab, "/_lab/fault", json!({"fault": "deny-writes:node1"})).await;
    assert_eq!(status, 200);
    let (_, denied) = health(check.clone()).await;
    assert_eq!(denied["isHealthy"], true, "still healthy: {denied}");
    assert_eq!(denied["quotaStates"], json!(["DenyToWrite"]), "{denied}");
    assert_eq!(
        denied["reasons"],
        json!(["disk quota exhausted, please allocate more resources"])
    );
    assert_eq!(get(&format!("{n1}/healthz")).await, (200, "OK".into()));
    assert_ne!(put(&format!("{n1}/kv/vec"), "4,5,6").await.0, 200);
    assert_eq!(get(&format!("{n1}/kv/vec")).await, (200, "1,2,3".into()));

    op_ok(&lab, "node1", "stop", json!({})).await;
    op_ok(&lab, "node1", "start", json!({})).await;
    wait_state(&lab, "node1", "running").await;
    let (_, after) = health(check).await;
    assert_eq!(after["quotaStates"], json!(["DenyToWrite"]), "{after}");
    lab.shutdown().await;
}

/// Milvus standalone on a host (procedures/milvus-standalone.toml): the lab's one-node Milvus
/// refuses what scripts/milvus-ctl.sh and the server refuse — a second server on the data
/// directory, a start of a version that is not installed, a copy of a live data directory, a
/// backup over an earlier one — and the old undo that only switched the version back (no
/// restore) fails as Milvus does: 2.2.16 does not start on the data 2.3.5 upgraded. Restoring
/// the backup first brings 2.2.16 back with the rows recorded.
#[tokio::test]
async fn a_standalone_on_a_host_refuses_what_its_scripts_refuse() {
    let lab = milvus_at("2.2.16", 1).await;
    let n1 = url(&lab, "node1").await;
    assert_eq!(put(&format!("{n1}/kv/vec"), "1,2,3").await.0, 200);
    op_ok(&lab, "node1", "record-collections", json!({})).await;
    let recorded = format!("{n1}/_lab/collections-as-recorded");
    assert_eq!(get(&recorded).await.0, 200);
    let refused = |body: Value| body["error"].as_str().unwrap_or_default().to_string();

    let v = op_answers(&lab, "node1", "backup-data", json!({}), 409).await;
    assert!(refused(v).contains("a copy of a live etcd and RocksMQ is not a backup"));
    let v = op_answers(
        &lab,
        "node1",
        "start-milvus",
        json!({"version": "2.2.16"}),
        409,
    )
    .await;
    assert!(refused(v).contains("milvus already runs on node1"));

    op_ok(&lab, "node1", "stop", json!({})).await;
    op_ok(&lab, "node1", "backup-data", json!({})).await;
    let v = op_answers(&lab, "node1", "backup-data", json!({}), 409).await;
    assert!(refused(v).contains("refusing to overwrite an earlier backup"));
    op_ok(&lab, "node1", "check-backup", json!({})).await;
    let v = op_answers(
        &lab,
        "node1",
        "start-milvus",
        json!({"version": "2.3.5"}),
        409,
    )
    .await;
    assert!(refused(v).contains("node1 is milvus 2.2.16, not 2.3.5"));
    op_ok(&lab, "node1", "install", json!({"version": "2.3.5"})).await;
    // Answers once healthy; the data is as recorded once the collection is reloaded.
    op_ok(&lab, "node1", "start-milvus", json!({"version": "2.3.5"})).await;
    assert_eq!(get(&format!("{n1}/healthz")).await.0, 200);
    eventually("2.3.5 serves the recorded rows", || async {
        (get(&recorded).await.0 == 200).then_some(())
    })
    .await;
    assert_eq!(node(&lab, "node1").await.store_format, 2003);

    // The old way back: the version switched back on the upgraded data.
    op_ok(&lab, "node1", "stop", json!({})).await;
    op_ok(&lab, "node1", "install", json!({"version": "2.2.16"})).await;
    let v = op_answers(
        &lab,
        "node1",
        "start-milvus",
        json!({"version": "2.2.16"}),
        409,
    )
    .await;
    let said = refused(v);
    assert!(
        said.contains("exited before it was healthy") && said.contains("downgrade is not possible"),
        "{said}"
    );
    // The way back: restore the cold backup, then start 2.2.16.
    op_ok(&lab, "node1", "restore-data", json!({})).await;
    op_ok(&lab, "node1", "start-milvus", json!({"version": "2.2.16"})).await;
    eventually("2.2.16 serves the recorded rows", || async {
        (get(&recorded).await.0 == 200).then_some(())
    })
    .await;
    let n = node(&lab, "node1").await;
    assert_eq!((n.version.as_str(), n.store_format), ("2.2.16", 2002));
    lab.shutdown().await;

    // A Milvus lab of several nodes plays a cluster's Deployments: no standalone install.
    let cluster = milvus_at("2.2.16", 2).await;
    let v = op_answers(&cluster, "node1", "record-collections", json!({}), 409).await;
    assert!(refused(v).contains("--nodes 1"));
    cluster.shutdown().await;
}
