"""NetworkPolicies: default deny both ways, then exactly the flows the system needs."""

from __future__ import annotations

import ipaddress
from typing import Any

import yaml

from tests.k8s.netpol import (
    CNPG_OPERATOR,
    HIS,
    INGRESS_CONTROLLER,
    INTERNET,
    KUBE_DNS,
    PROMETHEUS,
    STRANGER,
    Endpoint,
    External,
    connects,
    pods_of,
)
from tests.k8s.render import K8S, of_kind


def test_default_deny_in_both_directions(objs: tuple[dict[str, Any], ...]) -> None:
    deny_all = [
        p
        for p in of_kind(objs, "NetworkPolicy")
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert len(deny_all) == 1


def test_network_policies_allow_exactly_the_needed_flows(
    objs: tuple[dict[str, Any], ...], overlay: str
) -> None:
    pods = pods_of(objs)
    hub, migrate, adapter, db = (
        pods["hub"],
        pods["hub-migrate"],
        pods["hospital-adapter"],
        pods["hub-db"],
    )
    allowed: list[tuple[Endpoint, Endpoint, int]] = [
        (INGRESS_CONTROLLER, hub, 8000),
        (PROMETHEUS, hub, 8000),
        (adapter, hub, 8000),
        (hub, db, 5432),
        (migrate, db, 5432),
        (db, db, 5432),
        (CNPG_OPERATOR, db, 8000),
        (CNPG_OPERATOR, db, 5432),
        (HIS[overlay], adapter, 2575),
    ]
    denied: list[tuple[Endpoint, Endpoint, int]] = [
        (STRANGER, hub, 8000),
        (STRANGER, db, 5432),
        (adapter, db, 5432),
        (INGRESS_CONTROLLER, db, 5432),
        (INGRESS_CONTROLLER, adapter, 2575),
        (hub, adapter, 2575),
        (hub, INTERNET, 443),
        (adapter, INTERNET, 443),
        (migrate, INTERNET, 443),
        (INTERNET, adapter, 2575),
        (INTERNET, hub, 8000),
        (hub, db, 8000),
    ]
    for src, dst, port in allowed:
        assert connects(objs, src, dst, port), (src, dst, port)
    for src, dst, port in denied:
        assert not connects(objs, src, dst, port), (src, dst, port)
    for pod in pods.values():
        assert connects(objs, pod, KUBE_DNS, 53, "UDP"), pod


def api_server_addresses(overlay: str) -> list[str]:
    """The addresses the overlay's api-server.yaml patch gives the API server."""
    patch = yaml.safe_load((K8S / "overlays" / overlay / "api-server.yaml").read_text())
    return [str(op["value"]).split("/")[0] for op in patch]


def test_database_egress_leaves_the_cluster_only_for_the_api_server(
    objs: tuple[dict[str, Any], ...], overlay: str
) -> None:
    for policy in of_kind(objs, "NetworkPolicy"):
        for rule in policy["spec"].get("egress", []):
            for peer in rule.get("to", []):
                if "ipBlock" in peer:
                    block = ipaddress.ip_network(peer["ipBlock"]["cidr"])
                    # No "anywhere": an address block names one known set of hosts.
                    assert block.prefixlen >= 16, (policy["metadata"]["name"], str(block))
    db = pods_of(objs)["hub-db"]
    endpoints, service = api_server_addresses(overlay)
    assert connects(objs, db, External(endpoints), 6443)
    assert connects(objs, db, External(service), 443)
    for port in (443, 6443, 5432):
        assert not connects(objs, db, INTERNET, port), port
