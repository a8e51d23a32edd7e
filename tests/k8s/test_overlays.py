"""The overlays: strictly valid objects, locked-down pods, and the wiring between them."""

from __future__ import annotations

import copy
import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest

from tests.k8s.cnpg_schema import CLUSTER_V1_SUBSET
from tests.k8s.dockerfile import Stage, argv, image_user
from tests.k8s.render import (
    CUSTOM_SCHEMAS,
    EXTERNAL_SECRETS,
    IMAGE_NAME,
    K8S,
    KUBE_VERSIONS,
    OVERLAYS,
    PHASE,
    all_containers,
    find,
    of_kind,
    pod_labels,
    pod_spec,
    render,
    selects,
    the_hub,
    workloads,
)


def test_overlay_builds_into_one_namespace(objs: tuple[dict[str, Any], ...]) -> None:
    (namespace,) = of_kind(objs, "Namespace")
    name = namespace["metadata"]["name"]
    others = [o for o in objs if o["kind"] != "Namespace"]
    assert others and all(o["metadata"].get("namespace") == name for o in others)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def hub_config(objs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    (cm,) = [c for c in of_kind(objs, "ConfigMap") if "hub-config" in c["metadata"]["name"]]
    data: dict[str, str] = cm["data"]
    return data


def test_overlays_are_distinct_environments() -> None:
    def config(overlay: str) -> dict[str, str]:
        return hub_config(render(overlay))

    assert config("prod")["HUB_ORIGIN"] != config("dev")["HUB_ORIGIN"]
    assert config("prod")["HUB_JWT_AUDIENCE"] != config("dev")["HUB_JWT_AUDIENCE"]
    namespaces = {
        o["metadata"]["name"] for ov in OVERLAYS for o in of_kind(render(ov), "Namespace")
    }
    assert len(namespaces) == len(OVERLAYS)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_objects_validate_strictly(objs: tuple[dict[str, Any], ...], version: str) -> None:
    for obj in objs:
        custom = CUSTOM_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
        if custom is not None:
            jsonschema.Draft202012Validator(custom).validate(obj)
        else:
            # Raises SchemaNotFoundError for a CRD nobody wrote a schema for: add it above.
            kubernetes_validate.validate(obj, version, strict=True)


def test_strict_validation_rejects_unknown_fields(objs: tuple[dict[str, Any], ...]) -> None:
    hub = copy.deepcopy(the_hub(objs))
    pod_spec(hub)["containers"][0]["readOnlyRootFileSystem"] = True  # misspelt, misplaced
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(hub, KUBE_VERSIONS[0], strict=True)
    cluster = copy.deepcopy(of_kind(objs, "Cluster")[0])
    cluster["spec"]["instance"] = cluster["spec"].pop("instances")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(CLUSTER_V1_SUBSET).validate(cluster)


def test_every_pod_is_locked_down(objs: tuple[dict[str, Any], ...], final: Stage) -> None:
    uid, gid = image_user(final)
    checked = 0
    for workload in workloads(objs):
        spec = pod_spec(workload)
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        pod_ctx = spec["securityContext"]
        assert pod_ctx["runAsNonRoot"] is True, where
        assert (pod_ctx["runAsUser"], pod_ctx["runAsGroup"], pod_ctx["fsGroup"]) == (uid, gid, gid)
        assert pod_ctx["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        # A Service named `hub` would otherwise inject HUB_* variables into the app's config.
        assert spec["enableServiceLinks"] is False, where
        assert not {"hostNetwork", "hostPID", "hostIPC"} & spec.keys(), where
        assert not any("hostPath" in v for v in spec.get("volumes", [])), where
        for container in all_containers(spec):
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["runAsNonRoot"] is True, where
            assert ctx["capabilities"] == {"drop": ["ALL"]}, where
            assert ctx.get("privileged", False) is False, where
            assert ctx.get("seccompProfile", pod_ctx["seccompProfile"]) == {
                "type": "RuntimeDefault"
            }
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            # Read-only root: Python's tempfile and SQLite need a writable /tmp.
            assert "emptyDir" in volumes[mounts["/tmp"]], where
            checked += 1
    assert checked == 3  # hub, hub-migrate, hospital-adapter


def quantity(value: str | int) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(value))
    assert match, value
    return float(match[1]) * units.get(match[2], 1) if match[2] else float(match[1])


def test_every_container_has_bounded_resources(objs: tuple[dict[str, Any], ...]) -> None:
    for workload in workloads(objs):
        for container in all_containers(pod_spec(workload)):
            resources = container["resources"]
            for res in ("cpu", "memory"):
                request = quantity(resources["requests"][res])
                limit = quantity(resources["limits"][res])
                assert 0 < request <= limit, (container["name"], res)


# name[:tag][@sha256:digest]; the tag is an exact version, never `dev`, `latest` or a bare
# major such as PostgreSQL's `17`.
IMAGE = re.compile(
    r"(?P<name>[a-z0-9.\-/]+?)(?::(?P<tag>[\w.\-]+))?(?:@sha256:(?P<digest>[0-9a-f]{64}))?"
)
EXACT_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?(?:-[\w.\-]+)?")


def test_images_are_pinned(objs: tuple[dict[str, Any], ...], overlay: str) -> None:
    for workload in workloads(objs):
        for container in all_containers(pod_spec(workload)):
            image = IMAGE.fullmatch(container["image"])
            assert image is not None, container["image"]
            assert image["name"].rsplit("/", 1)[-1] == IMAGE_NAME, container["image"]
            assert image["tag"] and EXACT_VERSION.fullmatch(image["tag"]), container["image"]
            if overlay == "prod":  # the image that was tested, whatever the tag says later
                assert image["digest"], f"{container['image']}: prod pins by digest"
    (cluster,) = of_kind(objs, "Cluster")
    postgres = IMAGE.fullmatch(cluster["spec"]["imageName"])
    assert postgres is not None and postgres["digest"], cluster["spec"]["imageName"]
    # CloudNativePG reads the major version from the tag; a bare "17" would float.
    assert postgres["tag"] and re.match(r"\d+\.\d+-", postgres["tag"]), postgres["tag"]


def test_hub_deployment(objs: tuple[dict[str, Any], ...], overlay: str, final: Stage) -> None:
    hub = the_hub(objs)
    assert hub["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    (container,) = pod_spec(hub)["containers"]
    # `::` is both IP families (hub.listen; tests/deploy/test_dual_stack.py serves on it).
    assert argv(container, final) == ["hub", "serve", "--host", "::", "--port", "8000"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == 8000
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        http = container[probe]["httpGet"]
        assert http["path"] == path
        assert ports.get(http["port"], http["port"]) == 8000


def test_hub_env_resolves_to_mounted_secrets(objs: tuple[dict[str, Any], ...]) -> None:
    spec = pod_spec(the_hub(objs))
    (container,) = spec["containers"]
    env = {e["name"]: e for e in container["env"]}
    db = env["HUB_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    clusters = {c["metadata"]["name"] for c in of_kind(objs, "Cluster")}
    # CloudNativePG names the application secret `<cluster>-app` and puts the URL in `uri`.
    assert db["key"] == "uri" and db["name"].removesuffix("-app") in clusters

    volumes = {v["name"]: v for v in spec["volumes"]}
    files: dict[str, tuple[str, str]] = {}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        sources = [s["secret"] for s in volume.get("projected", {}).get("sources", [])]
        sources += (
            [{"name": volume["secret"]["secretName"], **volume["secret"]}]
            if "secret" in volume
            else []
        )
        for source in sources:
            assert mount.get("readOnly") is True
            for item in source["items"]:
                files[str(PurePosixPath(mount["mountPath"]) / item["path"])] = (
                    source["name"],
                    item["key"],
                )
    for var, secret in (
        ("HUB_LOG_KEY_FILE", "hub-log-signing-key"),
        ("HUB_JWT_KEY_FILE", "hub-jwt-key"),
    ):
        path = env[var]["value"]
        assert path.startswith("/var/run/secrets/hub/")
        name, key = files[path]
        assert name == secret and key in EXTERNAL_SECRETS[secret]


def test_every_referenced_config_exists(objs: tuple[dict[str, Any], ...]) -> None:
    config_maps = {c["metadata"]["name"] for c in of_kind(objs, "ConfigMap")}
    secrets = {s["metadata"]["name"]: set(s.get("data", {})) for s in of_kind(objs, "Secret")}
    secrets |= EXTERNAL_SECRETS
    secrets |= {f"{c['metadata']['name']}-app": {"uri"} for c in of_kind(objs, "Cluster")}
    accounts = {a["metadata"]["name"] for a in of_kind(objs, "ServiceAccount")}
    for workload in workloads(objs):
        spec = pod_spec(workload)
        assert spec["serviceAccountName"] in accounts
        for container in all_containers(spec):
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]], ref
        for volume in spec.get("volumes", []):
            refs = [s["secret"] for s in volume.get("projected", {}).get("sources", [])]
            if "secret" in volume:
                refs.append({"name": volume["secret"]["secretName"], **volume["secret"]})
            for ref in refs:
                assert {i["key"] for i in ref["items"]} <= secrets[ref["name"]], ref


def test_hpa_targets_the_deployment(objs: tuple[dict[str, Any], ...], overlay: str) -> None:
    hub = the_hub(objs)
    (hpa,) = of_kind(objs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        "hub",
    )
    # The HPA owns the count: a `replicas` in the manifest would reset it on every apply.
    assert "replicas" not in hub["spec"]
    assert hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    if overlay == "prod":
        assert hpa["spec"]["minReplicas"] == 3
    assert all("requests" in c["resources"] for c in pod_spec(hub)["containers"]), (
        "CPU utilisation needs requests"
    )


def test_pdb_covers_the_hub_and_lets_nodes_drain(objs: tuple[dict[str, Any], ...]) -> None:
    hub = the_hub(objs)
    (hpa,) = of_kind(objs, "HorizontalPodAutoscaler")
    (pdb,) = of_kind(objs, "PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"], pod_labels(hub))
    assert selects(hub["spec"]["selector"], pod_labels(hub))
    fewest = hpa["spec"]["minReplicas"]
    if "maxUnavailable" in pdb["spec"]:
        assert pdb["spec"]["maxUnavailable"] >= 1
    else:
        assert pdb["spec"]["minAvailable"] < fewest
    # No other workload's pods may be counted in (or blocked by) the hub's budget.
    others = [w for w in workloads(objs) if w is not hub]
    assert not any(selects(pdb["spec"]["selector"], pod_labels(w)) for w in others)


def test_service_reaches_the_hub_container(objs: tuple[dict[str, Any], ...]) -> None:
    hub = the_hub(objs)
    service = find(objs, "Service", "hub")
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(hub))
    container_ports = {p["name"] for c in pod_spec(hub)["containers"] for p in c["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports
    others = [w for w in workloads(objs) if w is not hub]
    assert not any(
        selects({"matchLabels": service["spec"]["selector"]}, pod_labels(w)) for w in others
    )


def test_ingress_serves_api_and_verify_page_over_tls(objs: tuple[dict[str, Any], ...]) -> None:
    (ingress,) = of_kind(objs, "Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert annotations.get("cert-manager.io/cluster-issuer") or annotations.get(
        "cert-manager.io/issuer"
    )
    rule_hosts = {r["host"] for r in ingress["spec"]["rules"]}
    tls_hosts = {h for t in ingress["spec"]["tls"] for h in t["hosts"]}
    assert rule_hosts == tls_hosts and all(t["secretName"] for t in ingress["spec"]["tls"])
    services = {
        s["metadata"]["name"]: {p["name"] for p in s["spec"]["ports"]}
        for s in of_kind(objs, "Service")
    }
    paths = set()
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["port"]["name"] in services[backend["name"]]
            paths.add(path["path"])
    assert {"/graphql", "/verify", "/log"} <= paths
    # Operational endpoints stay inside the cluster.
    assert not paths & {"/", "/metrics", "/healthz", "/readyz"}


def test_migration_job_runs_hub_migrate_in_its_own_phase(
    objs: tuple[dict[str, Any], ...], final: Stage
) -> None:
    (job,) = of_kind(objs, "Job")
    spec = pod_spec(job)
    (container,) = spec["containers"]
    assert argv(container, final) == ["hub", "migrate"]
    assert spec["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] >= 1
    assert job["metadata"]["labels"][PHASE] == "migrate"
    # Everything the Job needs is applied in the earlier `pre` phase.
    needed = [("ServiceAccount", spec["serviceAccountName"])] + [
        ("ConfigMap", s["configMapRef"]["name"]) for s in container["envFrom"]
    ]
    needed += [("Cluster", c["metadata"]["name"]) for c in of_kind(objs, "Cluster")]
    needed += [("Namespace", n["metadata"]["name"]) for n in of_kind(objs, "Namespace")]
    for kind, name in needed:
        assert find(objs, kind, name)["metadata"]["labels"].get(PHASE) == "pre", (kind, name)
    # ...and the server itself only rolls in the final, unfiltered apply.
    assert not any(
        PHASE in w["metadata"].get("labels", {}) for w in workloads(objs) if w is not job
    )


def test_adapter_statefulset_keeps_its_outbox(
    objs: tuple[dict[str, Any], ...], final: Stage
) -> None:
    (sts,) = of_kind(objs, "StatefulSet")
    (container,) = pod_spec(sts)["containers"]
    command = argv(container, final)
    assert command[:3] == ["hub", "adapter", "mllp"]
    options = dict(zip(command[3::2], command[4::2], strict=True))
    # A listener in a pod must bind every interface, or the Service cannot reach it.
    assert options["--host"] == "0.0.0.0"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    outbox_dir = str(PurePosixPath(options["--outbox"]).parent)
    assert mounts[outbox_dir]["name"] in claims
    token_dir = str(PurePosixPath(options["--token-file"]).parent)
    assert mounts[token_dir]["readOnly"] is True
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    governing = find(objs, "Service", sts["spec"]["serviceName"])
    assert governing["spec"]["clusterIP"] == "None"
    # --hub names the hub's Service and its port, resolvable inside the namespace.
    hub_url = urlsplit(options["--hub"])
    hub_service = find(objs, "Service", hub_url.hostname or "")
    assert hub_url.port in {p["port"] for p in hub_service["spec"]["ports"]}
    assert selects({"matchLabels": hub_service["spec"]["selector"]}, pod_labels(the_hub(objs)))
    port = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port["mllp"] == int(options["--port"])


def test_postgres_cluster(objs: tuple[dict[str, Any], ...], overlay: str) -> None:
    (cluster,) = of_kind(objs, "Cluster")
    spec = cluster["spec"]
    if overlay == "prod":
        assert spec["instances"] == 3
        assert spec["affinity"]["podAntiAffinityType"] == "required"
    assert spec["enableSuperuserAccess"] is False
    assert spec["bootstrap"]["initdb"]["database"] == "hub"


def test_readme_tells_how_to_create_every_external_secret_and_run_the_phases() -> None:
    readme = (K8S / "README.md").read_text()
    for name, keys in EXTERNAL_SECRETS.items():
        assert name in readme and all(key in readme for key in keys), name
    assert f"-l {PHASE}=pre" in readme and f"-l {PHASE}=migrate" in readme
