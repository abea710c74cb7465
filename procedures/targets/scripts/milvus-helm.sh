#!/bin/sh
# Helpers that procedures/targets/milvus-helm.example.toml binds, for a Milvus release installed
# with the zilliztech/milvus Helm chart (its bundled Bitnami etcd: StatefulSet <release>-etcd,
# PVC data-<release>-etcd-0 mounted at /bitnami/etcd, data dir /bitnami/etcd/data, no etcd auth by
# default). Check the names against your install before relying on it.
#
#   milvus-helm.sh etcd-snapshot   NAMESPACE RELEASE NAME
#   milvus-helm.sh etcd-restore    NAMESPACE RELEASE NAME OLD_IMAGE
#   milvus-helm.sh rolling-prepare NAMESPACE RELEASE
#   milvus-helm.sh rollout         NAMESPACE RELEASE COMPONENT VERSION IMAGE
#   milvus-helm.sh writable        NAMESPACE RELEASE GRPC_ADDRESS
set -eu

op=$1 ns=$2 rel=$3
etcd_pod="$rel-etcd-0"
milvus_sel="app.kubernetes.io/instance=$rel,app.kubernetes.io/name=milvus"

case "$op" in
etcd-snapshot)
    name=$4
    # etcd docs v3.5, "Disaster recovery": `etcdctl snapshot save` of a live member. The file stays
    # on the etcd volume (for the restore below) and a copy goes to the admin host, with the
    # Milvus Deployments' replica counts, which the restore brings back.
    kubectl -n "$ns" exec "$etcd_pod" -- etcdctl snapshot save "/bitnami/etcd/$name.db"
    kubectl -n "$ns" cp "$etcd_pod:/bitnami/etcd/$name.db" "./$name.db"
    kubectl -n "$ns" get deploy -l "$milvus_sel" \
        -o jsonpath='{range .items[*]}{.metadata.name}={.spec.replicas}{"\n"}{end}' >"./$name.replicas"
    echo "etcd snapshot $name saved ($(wc -c <"./$name.db") bytes), replicas in ./$name.replicas"
    ;;
etcd-restore)
    name=$4 image=$5
    members=$(kubectl -n "$ns" get sts "$rel-etcd" -o jsonpath='{.spec.replicas}')
    if [ "$members" != 1 ]; then
        # Every member must be restored from the same snapshot with its own flags (etcd docs,
        # "Disaster recovery", "Restoring a cluster"): not automated here.
        echo "etcd runs $members members: restore each one by the etcd disaster-recovery guide"
        exit 1
    fi
    [ -f "./$name.replicas" ] || { echo "no ./$name.replicas: was the snapshot taken here?"; exit 1; }
    # Milvus must not hold etcd sessions while its metadata changes under it (migrate.sh scales
    # it to 0 for the same reason).
    kubectl -n "$ns" scale deploy -l "$milvus_sel" --replicas=0
    kubectl -n "$ns" wait --for=delete pod -l "$milvus_sel" --timeout=600s
    etcd_image=$(kubectl -n "$ns" get sts "$rel-etcd" -o jsonpath='{.spec.template.spec.containers[0].image}')
    kubectl -n "$ns" scale sts "$rel-etcd" --replicas=0
    kubectl -n "$ns" wait --for=delete pod "$etcd_pod" --timeout=600s
    # `etcdutl snapshot restore` writes a new data dir (etcd docs v3.5, "Disaster recovery"); the
    # old one is kept beside it.
    peer="http://$etcd_pod.$rel-etcd-headless.$ns.svc.cluster.local:2380"
    restore="cd /bitnami/etcd && rm -rf data.restored && etcdutl snapshot restore $name.db --data-dir data.restored --name $etcd_pod --initial-cluster $etcd_pod=$peer --initial-advertise-peer-urls $peer && rm -rf data.before-restore && mv data data.before-restore && mv data.restored data"
    overrides=$(printf '{"spec":{"restartPolicy":"Never","volumes":[{"name":"data","persistentVolumeClaim":{"claimName":"data-%s"}}],"containers":[{"name":"restore","image":"%s","command":["sh","-c","%s"],"volumeMounts":[{"name":"data","mountPath":"/bitnami/etcd"}]}]}}' "$etcd_pod" "$etcd_image" "$restore")
    kubectl -n "$ns" delete pod "$rel-etcd-restore" --ignore-not-found
    kubectl -n "$ns" run "$rel-etcd-restore" --image="$etcd_image" --restart=Never --overrides="$overrides"
    kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded pod "$rel-etcd-restore" --timeout=900s
    kubectl -n "$ns" logs "$rel-etcd-restore"
    kubectl -n "$ns" delete pod "$rel-etcd-restore"
    kubectl -n "$ns" scale sts "$rel-etcd" --replicas=1
    kubectl -n "$ns" rollout status sts "$rel-etcd" --timeout=600s
    # The old image and the replica counts back (migrate.sh's start_milvus_deploy does the same
    # with the new image: the container is named after the Deployment's `component` label).
    while IFS='=' read -r deploy replicas; do
        [ -n "$deploy" ] || continue
        component=$(kubectl -n "$ns" get deploy "$deploy" -o jsonpath='{.metadata.labels.component}')
        kubectl -n "$ns" set image "deploy/$deploy" "$component=$image"
        kubectl -n "$ns" scale "deploy/$deploy" --replicas="$replicas"
    done <"./$name.replicas"
    kubectl -n "$ns" wait --for=condition=Available deploy -l "$milvus_sel" --timeout=900s
    echo "etcd restored from $name; Milvus runs $image"
    ;;
rolling-prepare)
    # rollingUpdate.sh set_rollingupdate_mode (milvus-io/milvus deployments/upgrade).
    cm="$rel-milvus"
    mq=$(kubectl -n "$ns" get configmap "$cm" -o jsonpath='{.data}' | grep -Eo 'messageQueue: \w*' | tail -1 | awk '{print $2}')
    if [ "$mq" = rocksmq ]; then
        echo "standalone Milvus with mq:rocksmq don't support rolling update now"
        exit 1
    fi
    add='rootCoord:\\n  enableActiveStandby: true\\nqueryCoord:\\n  enableActiveStandby: true\\ndataCoord:\\n  enableActiveStandby: true\\nindexCoord:\\n  enableActiveStandby: true'
    if ! kubectl -n "$ns" get configmap "$cm" -o json | grep '^ *"user\.yaml":' | grep -q "$add"; then
        kubectl -n "$ns" get configmap "$cm" -o json |
            sed 's/\("user.yaml.*\)"$/\1\\n'"$add"'"/' | kubectl -n "$ns" apply -f -
    fi
    echo "enableActiveStandby is set for rootCoord, queryCoord, dataCoord and indexCoord"
    ;;
rollout)
    # rollingUpdate.sh deploy_update: version label, minReadySeconds 30 on *coord, strategy
    # RollingUpdate (type only: the 25%/25% defaults), image.
    component=$4 version=$5 image=$6
    deploy="$rel-milvus-$component"
    case "$deploy" in *coord*) wait='"minReadySeconds":30,' ;; *) wait='' ;; esac
    kubectl -n "$ns" patch deployments.apps "$deploy" -p \
        '{"metadata":{"labels":{"app.kubernetes.io/version":"'"$version"'"}},"spec":{'"$wait"'"strategy":{"type":"RollingUpdate"},"template":{"spec":{"containers":[{"image":"'"$image"'","name":"'"$component"'"}]}}}}'
    ;;
writable)
    # The proxy's CheckHealth RPC (milvus-proto milvus.proto, MilvusService.CheckHealth) on the
    # release's Service (GRPC_ADDRESS, port 19530), with grpcurl and the milvus-proto sources
    # (Milvus serves no gRPC reflection): `quotaStates` lists DenyToWrite while the quota center
    # denies writes, `reasons` says why (v2.2.16 internal/proxy/impl.go CheckHealth). The answer
    # goes to stdout, Milvus's reasons first; the exit status says whether writes are allowed.
    addr=$4
    proto_dir=${MILVUS_PROTO_DIR:-/opt/milvus-proto/proto}
    out=$(grpcurl -plaintext -emit-defaults -import-path "$proto_dir" -proto milvus.proto \
        -d '{}' "$addr" milvus.proto.milvus.MilvusService/CheckHealth) || exit 1
    echo "$out" | jq -r '.reasons[]?'
    echo "$out"
    echo "$out" | jq -e '(.quotaStates // []) | index("DenyToWrite") == null' >/dev/null
    ;;
*)
    echo "unknown operation $op" >&2
    exit 2
    ;;
esac
