"""Policy checks over the rendered prod overlay, with the exceptions written down.

Every finding must be one that k8s/policy-exceptions.yaml lists with its reason, and every
exception listed must still be found (a stale one would hide the next real finding).
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from tests.k8s.policies import CHECKS, failures, resource_name
from tests.k8s.render import K8S, render, the_hub

EXCEPTIONS = K8S / "policy-exceptions.yaml"


def written_exceptions() -> tuple[set[tuple[str, str]], list[dict[str, Any]]]:
    entries: list[dict[str, Any]] = yaml.safe_load(EXCEPTIONS.read_text())
    return {(e["check"], r) for e in entries for r in e["resources"]}, entries


def test_prod_overlay_passes_the_policies_but_for_its_written_exceptions() -> None:
    found = set(failures(render("prod")))
    allowed, entries = written_exceptions()
    assert found - allowed == set(), f"new findings: fix them, or justify them in {EXCEPTIONS}"
    assert allowed - found == set(), "exceptions no longer found: remove them"
    known = {c.id for c in CHECKS}
    for entry in entries:  # each exception names a real check and says why, at some length
        assert entry["check"] in known and len(entry["why"].split()) >= 20, entry["check"]


BAD_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "bad"},
    "spec": {
        "hostNetwork": True,
        "hostPID": True,
        "hostIPC": True,
        "volumes": [{"name": "d", "hostPath": {"path": "/var/run/docker.sock"}}],
        "containers": [
            {
                "name": "c",
                "image": "nginx:latest",
                "ports": [{"containerPort": 80, "hostPort": 80}],
                "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                "securityContext": {"privileged": True, "capabilities": {"add": ["NET_ADMIN"]}},
            },
            {"name": "bare", "image": "busybox"},  # no security context at all
        ],
    },
}


def test_every_check_can_fail() -> None:
    # Guards the guard: a pod that breaks every rule fails each container and pod check.
    found = {check for check, _ in failures([BAD_POD])}
    pod_checks = {c.id for c in CHECKS} - {"CKV_K8S_8", "CKV_K8S_9", "CKV_K8S_41"}
    assert found == pod_checks, pod_checks ^ found
    hub = copy.deepcopy(the_hub(render("prod")))
    del hub["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    account = {"kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "x"}}
    assert {("CKV_K8S_8", resource_name(hub)), ("CKV_K8S_41", "ServiceAccount.x.default")} <= set(
        failures([hub, account])
    )
