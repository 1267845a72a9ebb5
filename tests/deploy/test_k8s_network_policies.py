"""Offline checks of the NetworkPolicies of k8s/ (issue 18, item 1: who may reach MLflow, PostgreSQL, Ray).

A small evaluator of the NetworkPolicy semantics (policies add up; a pod that some policy selects
is isolated in that direction; a connection needs the source's egress and the destination's
ingress) answers "may pod A open port P on pod B?" for the pods the manifests create (labelled as
KubeRay labels them) and for pods of other namespaces and addresses outside the cluster.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from test_k8s_manifests import NAMESPACE, all_docs, by_kind, env_of, iter_pod_templates, ray_job_specs, rendered

# --------------------------------------------------------------------------------------------
# Pods and a NetworkPolicy evaluator
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    """A pod as NetworkPolicies see it: a namespace and labels (or an address outside the cluster)."""

    name: str
    namespace: str = ""
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    ip: str = ""  # set for endpoints outside the cluster's pods

    @property
    def is_pod(self) -> bool:
        return not self.ip


def manifest_pods() -> list[Pod]:
    """The pods the manifests make, with the labels KubeRay adds to Ray pods."""
    pods = []
    for doc in all_docs():
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            labels = doc["spec"]["template"]["metadata"]["labels"]
            pods.append(Pod(doc["metadata"]["name"], NAMESPACE, dict(labels)))
    for doc in [*by_kind("RayCluster"), *by_kind("RayService")]:
        spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterConfig"]
        cluster = doc["metadata"]["name"] if doc["kind"] == "RayCluster" else doc["metadata"]["name"] + "-abcde"
        groups = [("head", spec["headGroupSpec"]), *[("worker", g) for g in spec["workerGroupSpecs"]]]
        for node_type, group in groups:
            labels = {
                **group["template"]["metadata"]["labels"],
                "ray.io/node-type": node_type,
                "ray.io/cluster": cluster,
                "ray.io/group": group.get("groupName", "headgroup"),
            }
            name = f"{doc['metadata']['name']}-{group.get('groupName', 'head')}"
            pods.append(Pod(name, NAMESPACE, labels))
    for owner, job in ray_job_specs():
        labels = job["submitterPodTemplate"].get("metadata", {}).get("labels", {})
        pods.append(Pod(f"{owner}-submitter", NAMESPACE, dict(labels)))
    return pods


def pod(name: str) -> Pod:
    matches = [p for p in manifest_pods() if p.name == name]
    assert len(matches) == 1, f"no single pod {name}: {[p.name for p in manifest_pods()]}"
    return matches[0]


# Endpoints outside the namespace: what the policies name, and what they must keep out.
KUBERAY_OPERATOR = Pod("kuberay-operator", "kuberay-system", {"app.kubernetes.io/name": "kuberay-operator"})
KUBE_DNS = Pod("coredns", "kube-system", {"k8s-app": "kube-dns"})
INGRESS_CONTROLLER = Pod("ingress-nginx-controller", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
OTHER_NAMESPACE = Pod("curious", "default", {"app": "curious"})
INTERNET = Pod("internet", ip="203.0.113.7")
# The alert stream consumer's pods (k8s/stream.yaml) carry this label.
STREAM_CONSUMER = Pod("stream-consumer", NAMESPACE, {"app.kubernetes.io/name": "cosmic-ray-stream"})
# A pod someone adds to the namespace later, without a policy of its own.
NEWCOMER = Pod("newcomer", NAMESPACE, {"app.kubernetes.io/name": "something-new"})


def network_policies() -> list[dict[str, Any]]:
    return [d for d in rendered()[1] if d["kind"] == "NetworkPolicy"]


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels + matchExpressions); {} selects everything."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def peer_matches(peer: dict[str, Any], policy_namespace: str, other: Pod) -> bool:
    if "ipBlock" in peer:
        if other.is_pod:
            return False
        block = peer["ipBlock"]
        address = ipaddress.ip_address(other.ip)
        inside = address in ipaddress.ip_network(block["cidr"])
        return inside and not any(address in ipaddress.ip_network(c) for c in block.get("except", []))
    if not other.is_pod:
        return False
    namespace_selector = peer.get("namespaceSelector")
    if namespace_selector is None:
        namespace_ok = other.namespace == policy_namespace
    else:
        namespace_ok = selects(namespace_selector, {"kubernetes.io/metadata.name": other.namespace})
    return namespace_ok and ("podSelector" not in peer or selects(peer["podSelector"], other.labels))


def port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        if "port" not in entry:
            return True
        assert isinstance(entry["port"], int), f"named port {entry['port']}: give numbers in policies"
        if entry["port"] <= port <= entry.get("endPort", entry["port"]):
            return True
    return False


def policy_types(policy: dict[str, Any]) -> list[str]:
    spec = policy["spec"]
    return spec.get("policyTypes") or ["Ingress", *(["Egress"] if "egress" in spec else [])]


def allowed(target: Pod, other: Pod, port: int, protocol: str, direction: str) -> bool:
    """Whether ``target``'s policies let ``other`` in (Ingress) or let ``target`` out to it (Egress)."""
    if not target.is_pod or target.namespace != NAMESPACE:
        return True  # not governed by the policies of this namespace
    relevant = [
        p
        for p in network_policies()
        if direction in policy_types(p) and selects(p["spec"]["podSelector"], target.labels)
    ]
    if not relevant:
        return True  # not isolated
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in relevant:
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            peer_ok = not peers or any(peer_matches(p, policy["metadata"]["namespace"], other) for p in peers)
            if peer_ok and port_matches(rule.get("ports"), port, protocol):
                return True
    return False


def can_connect(src: Pod, dst: Pod, port: int, protocol: str = "TCP") -> bool:
    return allowed(src, dst, port, protocol, "Egress") and allowed(dst, src, port, protocol, "Ingress")


# --------------------------------------------------------------------------------------------
# NetworkPolicies
# --------------------------------------------------------------------------------------------


def test_every_pod_is_denied_by_default() -> None:
    deny = [
        p
        for p in network_policies()
        if p["spec"]["podSelector"] == {}
        and set(policy_types(p)) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, "no default-deny NetworkPolicy (podSelector {}, Ingress and Egress, no rules)"
    # A pod nobody wrote a policy for talks to nobody but DNS.
    assert not can_connect(NEWCOMER, pod("mlflow"), 5000)
    assert not can_connect(NEWCOMER, INTERNET, 443)
    assert not can_connect(OTHER_NAMESPACE, NEWCOMER, 8080)
    assert can_connect(NEWCOMER, KUBE_DNS, 53, "UDP")


def test_every_pod_resolves_names() -> None:
    for source in [*manifest_pods(), STREAM_CONSUMER]:
        assert can_connect(source, KUBE_DNS, 53, "UDP") and can_connect(source, KUBE_DNS, 53, "TCP"), source.name
        assert not can_connect(source, OTHER_NAMESPACE, 53, "UDP"), f"{source.name}: DNS to any pod"


def needs_mlflow(p: Pod) -> bool:
    return any("MLFLOW_TRACKING_URI" in env_of(c) for c in containers_of(p))


def needs_postgres(p: Pod) -> bool:
    return any(
        "postgresql://" in " ".join([*c.get("args", []), *(str(e.get("value", "")) for e in c.get("env", []))])
        for c in containers_of(p)
    )


def containers_of(p: Pod) -> list[dict[str, Any]]:
    """The containers of a manifest pod, found by its labels among the pod templates."""
    found = []
    for doc in all_docs():
        for _, template in iter_pod_templates(doc):
            labels = template.get("metadata", {}).get("labels", {})
            if labels and labels.items() <= p.labels.items():
                found += template["spec"]["containers"]
    return found


def test_only_the_pods_that_need_mlflow_and_postgres_reach_them() -> None:
    mlflow, postgres = pod("mlflow"), pod("postgres")
    pods = manifest_pods()
    assert any(needs_mlflow(p) for p in pods) and any(needs_postgres(p) for p in pods)
    for source in pods:
        if source in (mlflow, postgres):
            continue
        assert can_connect(source, mlflow, 5000) == needs_mlflow(source), f"{source.name} -> mlflow"
        assert can_connect(source, postgres, 5432) == needs_postgres(source), f"{source.name} -> postgres"
    assert can_connect(mlflow, postgres, 5432), "MLflow's backend store"
    # (the stream consumer is a manifest pod now: the loop above checks it needs the store, not MLflow)
    for outsider in (OTHER_NAMESPACE, INGRESS_CONTROLLER, KUBERAY_OPERATOR, NEWCOMER):
        assert not can_connect(outsider, mlflow, 5000), f"{outsider.name} reaches MLflow"
        assert not can_connect(outsider, postgres, 5432), f"{outsider.name} reaches PostgreSQL"
    # The job submitters only submit: no MLflow, no database.
    submitter = pod("RayCronJob/cosmic-ray-nightly-submitter")
    assert not can_connect(submitter, mlflow, 5000) and not can_connect(submitter, postgres, 5432)
    # Nor do the servers themselves call out.
    for server in (mlflow, postgres):
        assert not can_connect(server, INTERNET, 443), f"{server.name} reaches the internet"
        assert not can_connect(server, pod("cosmic-ray-train-head"), 8265), f"{server.name} reaches Ray"


def test_ray_ports_are_open_within_a_cluster_only() -> None:
    train_head, train_cpu = pod("cosmic-ray-train-head"), pod("cosmic-ray-train-cpu")
    train_gpu = pod("cosmic-ray-train-gpu")
    serve_head, serve_cpu = pod("cosmic-ray-head"), pod("cosmic-ray-cpu")
    # GCS, a worker port, the object manager (random), the dashboard agent, Serve, HAProxy mode.
    for port in (6379, 10002, 19999, 41234, 52365, 8000, 30000):
        assert can_connect(train_cpu, train_head, port) and can_connect(train_head, train_gpu, port), port
        assert can_connect(train_gpu, train_cpu, port), port
        assert can_connect(serve_cpu, serve_head, port) and can_connect(serve_head, serve_cpu, port), port
        for a, b in ((serve_cpu, train_head), (train_cpu, serve_head), (serve_head, train_cpu)):
            assert not can_connect(a, b, port), f"{a.name} -> {b.name}:{port} across clusters"
        for outsider in (OTHER_NAMESPACE, INGRESS_CONTROLLER, pod("mlflow"), STREAM_CONSUMER, NEWCOMER):
            assert not can_connect(outsider, train_head, port), f"{outsider.name} -> train head:{port}"


def test_the_kuberay_operator_reaches_the_heads() -> None:
    for head in (pod("cosmic-ray-train-head"), pod("cosmic-ray-head")):
        assert can_connect(KUBERAY_OPERATOR, head, 8265), f"operator -> {head.name} dashboard"
        assert can_connect(KUBERAY_OPERATOR, head, 8000), f"operator -> {head.name} Serve health"
        assert not can_connect(KUBERAY_OPERATOR, head, 6379), f"operator -> {head.name} GCS"
        assert not can_connect(OTHER_NAMESPACE, head, 8265), f"any pod -> {head.name} dashboard"
    impostor = Pod("impostor", "default", dict(KUBERAY_OPERATOR.labels))
    assert not can_connect(impostor, pod("cosmic-ray-train-head"), 8265), "the operator's label, elsewhere"


def test_job_submitters_reach_the_training_head_only() -> None:
    for owner, _ in ray_job_specs():
        submitter = pod(f"{owner}-submitter")
        assert can_connect(submitter, pod("cosmic-ray-train-head"), 8265), owner
        assert not can_connect(submitter, pod("cosmic-ray-train-head"), 6379), owner
        assert not can_connect(submitter, pod("cosmic-ray-head"), 8265), f"{owner} -> serving head"
        assert not can_connect(submitter, INTERNET, 443), owner


def test_the_api_is_reached_through_the_ingress_controller_only() -> None:
    serve = [p for p in manifest_pods() if p.labels.get("app.kubernetes.io/name") == "cosmic-ray-serve"]
    assert serve
    for p in serve:
        assert can_connect(INGRESS_CONTROLLER, p, 8000), p.name
        assert not can_connect(INGRESS_CONTROLLER, p, 8265), f"{p.name}: the controller reaches the dashboard"
        assert not can_connect(OTHER_NAMESPACE, p, 8000), f"{p.name}: any pod reaches the API"
        assert not can_connect(pod("cosmic-ray-train-cpu"), p, 8000), p.name
    # The Ingress routes to the Service KubeRay makes for ready Serve proxies.
    (ingress,) = by_kind("Ingress")
    backends = [p["backend"]["service"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]]
    assert backends == [{"name": "cosmic-ray-serve-svc", "port": {"number": 8000}}]


def test_the_stream_consumer_reaches_kafka_the_serving_head_and_the_store_only() -> None:
    consumer = pod("cosmic-ray-stream")
    assert consumer.labels == {**STREAM_CONSUMER.labels, **consumer.labels}
    assert can_connect(consumer, INTERNET, 9092) and can_connect(consumer, INTERNET, 9093)
    assert can_connect(consumer, pod("cosmic-ray-head"), 10001)  # Ray Client: classify on the RayService
    assert can_connect(consumer, pod("postgres"), 5432)  # the event store
    assert not can_connect(consumer, INTERNET, 443)
    assert not can_connect(consumer, pod("mlflow"), 5000)
    assert not can_connect(consumer, pod("cosmic-ray-head"), 6379)  # not a driver of the serving cluster
    assert not can_connect(consumer, pod("cosmic-ray-train-head"), 6379)
    assert not can_connect(consumer, pod("cosmic-ray-train-head"), 10001)
    assert not can_connect(OTHER_NAMESPACE, consumer, 9092)
    assert not can_connect(OTHER_NAMESPACE, pod("cosmic-ray-head"), 10001)
    for p in manifest_pods():
        if p.labels.get("app.kubernetes.io/name") != "cosmic-ray-stream":
            assert not can_connect(p, INTERNET, 9092), f"{p.name} reaches Kafka"


def test_the_policy_evaluator_can_fail() -> None:
    """The evaluator is not vacuous: a policy that opens everything shows up."""
    assert selects({}, {"a": "b"}) and not selects(None, {"a": "b"})
    assert selects({"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]}, {"a": "b"})
    assert not selects({"matchLabels": {"a": "c"}}, {"a": "b"})
    assert port_matches([{"protocol": "TCP", "port": 10000, "endPort": 20000}], 15000, "TCP")
    assert not port_matches([{"protocol": "UDP", "port": 53}], 53, "TCP")
    opened = {
        "kind": "NetworkPolicy",
        "metadata": {"name": "open", "namespace": NAMESPACE},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": [{}]},
    }
    original = network_policies
    globals()["network_policies"] = lambda: [*original(), opened]
    try:
        assert can_connect(OTHER_NAMESPACE, pod("postgres"), 5432)
    finally:
        globals()["network_policies"] = original
    assert not can_connect(OTHER_NAMESPACE, pod("postgres"), 5432)
