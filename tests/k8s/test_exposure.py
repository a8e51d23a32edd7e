"""What each overlay exposes outside the cluster: MLLP to the HIS through a load balancer
that keeps client addresses, and a public ingress with no GraphiQL or introspection."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import httpx

from hub.app import create_app
from hub.config import Settings
from hub.keys import create_log_key
from hub.services import Hub
from tests.k8s.netpol import HIS, INTERNET, connects, pods_of
from tests.k8s.render import find, of_kind, pod_labels, pod_spec, render, selects
from tests.k8s.test_overlays import hub_config


def test_prod_his_reaches_mllp_through_a_load_balancer_keeping_client_addresses() -> None:
    objs = render("prod")
    adapter = find(objs, "StatefulSet", "hospital-adapter")
    (container,) = pod_spec(adapter)["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    balancers = [s for s in of_kind(objs, "Service") if s["spec"].get("type") == "LoadBalancer"]
    (balancer,) = balancers
    spec = balancer["spec"]
    assert selects({"matchLabels": spec["selector"]}, pod_labels(adapter))
    (port,) = spec["ports"]
    assert (port["port"], ports[port["targetPort"]], port["protocol"]) == (2575, 2575, "TCP")
    # Local: no SNAT to a node address, so the NetworkPolicy still sees the HIS address.
    assert spec["externalTrafficPolicy"] == "Local"
    policy = find(objs, "NetworkPolicy", "hospital-adapter-ingress")
    his_blocks = {peer["ipBlock"]["cidr"] for peer in policy["spec"]["ingress"][0]["from"]}
    assert set(spec["loadBalancerSourceRanges"]) == his_blocks
    his, stranger = (
        ipaddress.ip_address(HIS["prod"].address),
        ipaddress.ip_address(INTERNET.address),
    )
    ranges = [ipaddress.ip_network(r) for r in spec["loadBalancerSourceRanges"]]
    assert any(his in r for r in ranges) and not any(stranger in r for r in ranges)
    pod = pods_of(objs)["hospital-adapter"]
    assert connects(objs, HIS["prod"], pod, 2575)
    assert not connects(objs, INTERNET, pod, 2575)
    # Only the MLLP port is exposed: nothing else of the namespace is a load balancer.
    assert all(s["metadata"]["name"] == "hospital-adapter-mllp" for s in balancers)


def test_no_overlay_exposes_the_hub_itself_outside_its_ingress(
    objs: tuple[dict[str, Any], ...],
) -> None:
    for service in of_kind(objs, "Service"):
        if service["spec"].get("type") in {"LoadBalancer", "NodePort"}:
            assert service["spec"]["selector"]["app.kubernetes.io/name"] == "hospital-adapter"


async def test_public_ingress_serves_no_graphiql_or_introspection(
    objs: tuple[dict[str, Any], ...], tmp_path: Path
) -> None:
    (ingress,) = of_kind(objs, "Ingress")
    routed = {p["path"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert "/graphql" in routed  # so what the hub serves there is public
    # The hub as this overlay configures it, on a scratch database.
    config = hub_config(objs)
    environ = {
        **config,
        "HUB_DATA_DIR": str(tmp_path),
        "HUB_DATABASE_URL": f"sqlite://{tmp_path}/hub.db",
    }
    settings = Settings.from_env(environ)
    assert settings.prod, f"{config['HUB_ENV']}: a public ingress needs HUB_ENV=prod"
    create_log_key(settings.log_key_path, settings.origin)
    hub = await Hub.start(settings)
    try:
        transport = httpx.ASGITransport(app=create_app(hub=hub))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            page = await client.get("/graphql", headers={"Accept": "text/html"})
            assert "graphiql" not in page.text.lower()
            schema = await client.post(
                "/graphql", json={"query": "{ __schema { types { name } } }"}
            )
            assert "__schema" not in str(schema.json().get("data"))
            assert schema.json()["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    finally:
        await hub.stop()
