"""The witness overlay (k8s/overlays/witness): one `hub witness serve` with its own volume."""

from typing import Any

import kubernetes_validate
import pytest

from tests.k8s.dockerfile import Stage, image_user
from tests.k8s.render import KUBE_VERSIONS, all_containers, find, of_kind, pod_spec, render


def _objs() -> tuple[dict[str, Any], ...]:
    return render("witness")


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_witness_objects_validate_strictly(version: str) -> None:
    for obj in _objs():
        kubernetes_validate.validate(obj, version, strict=True)


def test_witness_keeps_key_and_state_on_its_own_volume(final: Stage) -> None:
    objs = _objs()
    assert {o["metadata"]["namespace"] for o in objs if o["kind"] != "Namespace"} == {
        "ledger-witness"
    }
    witness = find(objs, "StatefulSet", "witness")
    assert witness["spec"]["replicas"] == 1
    claims = {c["metadata"]["name"] for c in witness["spec"]["volumeClaimTemplates"]}
    retention = witness["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert retention == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    spec = pod_spec(witness)
    uid, gid = image_user(final)
    ctx = spec["securityContext"]
    assert (ctx["runAsUser"], ctx["runAsGroup"], ctx["fsGroup"]) == (uid, gid, gid)
    for container in all_containers(spec):
        env = {e["name"]: e for e in container["env"]}
        data_dir = env["HUB_DATA_DIR"]["value"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts[data_dir] in claims, container["name"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["image"].endswith(":0.1.0")
        assert container["args"][0] == "witness"
    init, serve = spec["initContainers"][0], spec["containers"][0]
    assert init["args"][:2] == ["witness", "init"]
    assert serve["args"][:2] == ["witness", "serve"] and "--log" in serve["args"]
    service = find(objs, "Service", "witness")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    (policy,) = of_kind(objs, "NetworkPolicy")
    assert policy["spec"]["egress"] == [] and set(policy["spec"]["policyTypes"]) == {
        "Ingress",
        "Egress",
    }
