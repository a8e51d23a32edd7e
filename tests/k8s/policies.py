"""Kubernetes policy checks over rendered objects, after checkov's `CKV_K8S_*` policies.

checkov itself cannot join the `test` extra: it requires packaging < 24 and cachetools < 6
(pytest 9 needs packaging >= 24, pymerkle 7 cachetools 7.2.1). These are its workload and
service-account checks, with its ids and titles so a finding reads the same, applied the
way checkov applies them (per container of each pod template; Jobs need no probes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.k8s.render import WORKLOAD_KINDS, all_containers

Obj = dict[str, Any]
# A check answers, for one object, whether it passes; None when it does not apply.
Verdict = Callable[[Obj], bool | None]


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    verdict: Verdict


def _pod(obj: Obj) -> Obj | None:
    if obj["kind"] == "Pod":
        spec: Obj = obj["spec"]
        return spec
    if obj["kind"] == "CronJob":
        spec = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return spec
    if obj["kind"] in WORKLOAD_KINDS:
        spec = obj["spec"]["template"]["spec"]
        return spec
    return None


def every_container(test: Callable[[Obj, Obj], bool]) -> Verdict:
    """A verdict that holds when ``test(container, pod_spec)`` holds for every container."""

    def verdict(obj: Obj) -> bool | None:
        pod = _pod(obj)
        if pod is None:
            return None
        return all(test(c, pod) for c in all_containers(pod))

    return verdict


def pod_level(test: Callable[[Obj], bool]) -> Verdict:
    def verdict(obj: Obj) -> bool | None:
        pod = _pod(obj)
        return None if pod is None else test(pod)

    return verdict


def long_running(test: Callable[[Obj, Obj], bool]) -> Verdict:
    """Like every_container, but not for Jobs (they end; probes make no sense there)."""
    inner = every_container(test)
    return lambda obj: None if obj["kind"] in {"Job", "CronJob", "Pod"} else inner(obj)


def _ctx(container: Obj) -> Obj:
    ctx: Obj = container.get("securityContext") or {}
    return ctx


def _pod_ctx(pod: Obj) -> Obj:
    ctx: Obj = pod.get("securityContext") or {}
    return ctx


def _effective(container: Obj, pod: Obj, key: str) -> Any:
    return _ctx(container).get(key, _pod_ctx(pod).get(key))


def _dropped(container: Obj) -> set[str]:
    return {c.upper() for c in (_ctx(container).get("capabilities") or {}).get("drop", [])}


_TAG = re.compile(r"^[^@]+:(?P<tag>[\w][\w.-]*)(@sha256:[0-9a-f]{64})?$")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_SECRET_FILES = {"/var/run/docker.sock", "/run/containerd/containerd.sock"}


def _tag_fixed(container: Obj, pod: Obj) -> bool:
    found = _TAG.match(container.get("image", ""))
    return bool(_DIGEST.search(container.get("image", ""))) or (
        found is not None and found["tag"] != "latest"
    )


def _resources(kind: str, what: str) -> Callable[[Obj, Obj], bool]:
    return lambda c, pod: what in ((c.get("resources") or {}).get(kind) or {})


def _secret_env(container: Obj, pod: Obj) -> bool:
    env_refs = [e for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})]
    from_refs = [e for e in container.get("envFrom", []) if "secretRef" in e]
    return not env_refs and not from_refs


def _service_account(obj: Obj) -> bool | None:
    if obj["kind"] != "ServiceAccount":
        return None
    return obj.get("automountServiceAccountToken") is False


CHECKS: tuple[Check, ...] = (
    Check("CKV_K8S_8", "Liveness Probe Should be Configured",
          long_running(lambda c, p: "livenessProbe" in c)),
    Check("CKV_K8S_9", "Readiness Probe Should be Configured",
          long_running(lambda c, p: "readinessProbe" in c)),
    Check("CKV_K8S_10", "CPU requests should be set",
          every_container(_resources("requests", "cpu"))),
    Check("CKV_K8S_11", "CPU limits should be set", every_container(_resources("limits", "cpu"))),
    Check("CKV_K8S_12", "Memory requests should be set",
          every_container(_resources("requests", "memory"))),
    Check("CKV_K8S_13", "Memory limits should be set",
          every_container(_resources("limits", "memory"))),
    Check("CKV_K8S_14", "Image Tag should be fixed - not latest or blank",
          every_container(_tag_fixed)),
    Check("CKV_K8S_15", "Image Pull Policy should be Always",
          every_container(lambda c, p: c.get("imagePullPolicy") == "Always"
                          or bool(_DIGEST.search(c.get("image", ""))))),
    Check("CKV_K8S_16", "Container should not be privileged",
          every_container(lambda c, p: not _ctx(c).get("privileged", False))),
    Check("CKV_K8S_17", "Containers should not share the host process ID namespace",
          pod_level(lambda p: not p.get("hostPID", False))),
    Check("CKV_K8S_18", "Containers should not share the host IPC namespace",
          pod_level(lambda p: not p.get("hostIPC", False))),
    Check("CKV_K8S_19", "Containers should not share the host network namespace",
          pod_level(lambda p: not p.get("hostNetwork", False))),
    Check("CKV_K8S_20", "Containers should not run with allowPrivilegeEscalation",
          every_container(lambda c, p: _ctx(c).get("allowPrivilegeEscalation") is False)),
    Check("CKV_K8S_21", "The default namespace should not be used",
          lambda o: o["kind"] == "Namespace" or o["metadata"].get("namespace") not in
          (None, "default")),
    Check("CKV_K8S_22", "Use read-only filesystem for containers where possible",
          every_container(lambda c, p: _ctx(c).get("readOnlyRootFilesystem") is True)),
    Check("CKV_K8S_23", "Minimize the admission of root containers",
          every_container(lambda c, p: _effective(c, p, "runAsNonRoot") is True)),
    Check("CKV_K8S_25", "Minimize the admission of containers with added capability",
          every_container(lambda c, p: not (_ctx(c).get("capabilities") or {}).get("add"))),
    Check("CKV_K8S_26", "Do not specify hostPort unless absolutely necessary",
          every_container(lambda c, p: not any("hostPort" in x for x in c.get("ports", [])))),
    Check("CKV_K8S_27", "Do not expose the docker daemon socket to containers",
          pod_level(lambda p: not any((v.get("hostPath") or {}).get("path") in _SECRET_FILES
                                      for v in p.get("volumes", [])))),
    Check("CKV_K8S_28", "Minimize the admission of containers with the NET_RAW capability",
          every_container(lambda c, p: bool({"ALL", "NET_RAW"} & _dropped(c)))),
    Check("CKV_K8S_29", "Apply security context to your pods and containers",
          pod_level(lambda p: bool(_pod_ctx(p)))),
    Check("CKV_K8S_30", "Apply security context to your containers",
          every_container(lambda c, p: bool(_ctx(c)))),
    Check("CKV_K8S_31",
          "Ensure that the seccomp profile is set to docker/default or runtime/default",
          every_container(lambda c, p: (_effective(c, p, "seccompProfile") or {}).get("type")
                          == "RuntimeDefault")),
    Check("CKV_K8S_35", "Prefer using secrets as files over secrets as environment variables",
          every_container(_secret_env)),
    Check("CKV_K8S_37", "Minimize the admission of containers with capabilities assigned",
          every_container(lambda c, p: "ALL" in _dropped(c))),
    Check("CKV_K8S_38", "Ensure that Service Account Tokens are only mounted where necessary",
          pod_level(lambda p: p.get("automountServiceAccountToken") is False)),
    Check("CKV_K8S_40", "Containers should run as a high UID to avoid host conflict",
          every_container(lambda c, p: (_effective(c, p, "runAsUser") or 0) >= 10000)),
    Check("CKV_K8S_41", "Ensure that default service accounts are not actively used",
          _service_account),
    Check("CKV_K8S_43", "Image should use digest",
          every_container(lambda c, p: bool(_DIGEST.search(c.get("image", ""))))),
)  # fmt: skip


def resource_name(obj: Obj) -> str:
    """checkov's name of an object: Kind.namespace.name."""
    meta = obj["metadata"]
    return f"{obj['kind']}.{meta.get('namespace', 'default')}.{meta['name']}"


def failures(objs: tuple[Obj, ...] | list[Obj]) -> Iterator[tuple[str, str]]:
    """(check id, resource) for every check an object fails."""
    for obj in objs:
        for check in CHECKS:
            if check.verdict(obj) is False:
                yield check.id, resource_name(obj)
