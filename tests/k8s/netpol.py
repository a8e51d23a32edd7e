"""A model of NetworkPolicy semantics, to ask whether one endpoint may reach another."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tests.k8s.render import of_kind, pod_labels, selects, workloads


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class External:
    address: str


Endpoint = Pod | External
INGRESS_CONTROLLER = Pod("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
KUBE_DNS = Pod("kube-system", {"k8s-app": "kube-dns"})
CNPG_OPERATOR = Pod("cnpg-system", {"app.kubernetes.io/name": "cloudnative-pg"})
PROMETHEUS = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
STRANGER = Pod("default", {"app": "anything"})
INTERNET = External("203.0.113.7")
HIS = {"dev": External("10.1.2.3"), "prod": External("10.20.1.5")}


def peer_matches(peer: Mapping[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    # ipBlock is for addresses outside the cluster; pods are matched by selectors only.
    if "ipBlock" in peer:
        if not isinstance(other, External):
            return False
        address = ipaddress.ip_address(other.address)
        block = peer["ipBlock"]
        excepted = any(address in ipaddress.ip_network(c) for c in block.get("except", []))
        return address in ipaddress.ip_network(block["cidr"]) and not excepted
    if isinstance(other, External):
        return False
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": other.namespace}
        in_namespace = selects(peer["namespaceSelector"], namespace_labels)
    else:
        in_namespace = other.namespace == policy_namespace
    return in_namespace and selects(peer.get("podSelector", {}), other.labels)


def admits(
    policies: list[dict[str, Any]],
    direction: str,
    subject: Endpoint,
    other: Endpoint,
    port: int,
    protocol: str,
) -> bool:
    """Whether `subject`'s policies let it receive from (Ingress) / send to (Egress) `other`."""
    if isinstance(subject, External):
        return True
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == subject.namespace
        and direction in p["spec"]["policyTypes"]
        and selects(p["spec"]["podSelector"], subject.labels)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(rules_key, []):
            ports = rule.get("ports") or [{}]
            port_ok = any(
                p.get("protocol", "TCP") == protocol and p.get("port", port) == port for p in ports
            )
            peers = rule.get(peers_key)
            peer_ok = not peers or any(
                peer_matches(peer, policy["metadata"]["namespace"], other) for peer in peers
            )
            if port_ok and peer_ok:
                return True
    return False


def connects(
    objs: tuple[dict[str, Any], ...], src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP"
) -> bool:
    policies = of_kind(objs, "NetworkPolicy")
    return admits(policies, "Egress", src, dst, port, protocol) and admits(
        policies, "Ingress", dst, src, port, protocol
    )


def pods_of(objs: tuple[dict[str, Any], ...]) -> dict[str, Pod]:
    pods = {
        w["metadata"]["name"]: Pod(w["metadata"]["namespace"], pod_labels(w))
        for w in workloads(objs)
    }
    for cluster in of_kind(objs, "Cluster"):
        name = cluster["metadata"]["name"]
        pods[name] = Pod(cluster["metadata"]["namespace"], {"cnpg.io/cluster": name})
    return pods
