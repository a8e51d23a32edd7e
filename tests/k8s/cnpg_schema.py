"""The subset of the CloudNativePG `Cluster` (postgresql.cnpg.io/v1) schema our manifests use.

kubernetes-validate ships only the core API schemas, so the Cluster custom resource is checked
here instead: every field the overlays set must be one of these (names and types taken from
the operator's CRD), and any other field is an error. A field added to the manifests must be
added here too, after checking it against the CRD of the operator version you run.
"""

from typing import Any

_QUANTITY: dict[str, Any] = {"type": ["string", "integer"]}
_RESOURCE_LIST: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"enum": ["cpu", "memory", "ephemeral-storage"]},
    "additionalProperties": _QUANTITY,
}

CLUSTER_V1_SUBSET: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "postgresql.cnpg.io/v1"},
        "kind": {"const": "Cluster"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["instances"],
            "additionalProperties": False,
            "properties": {
                "instances": {"type": "integer", "minimum": 1},
                "imageName": {"type": "string"},
                "primaryUpdateStrategy": {"enum": ["unsupervised", "supervised"]},
                "enableSuperuserAccess": {"type": "boolean"},
                "bootstrap": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "initdb": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "database": {"type": "string"},
                                "owner": {"type": "string"},
                            },
                        }
                    },
                },
                "storage": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "size": {"type": "string"},
                        "storageClass": {"type": "string"},
                    },
                },
                "resources": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"requests": _RESOURCE_LIST, "limits": _RESOURCE_LIST},
                },
                "affinity": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "enablePodAntiAffinity": {"type": "boolean"},
                        "podAntiAffinityType": {"enum": ["preferred", "required"]},
                        "topologyKey": {"type": "string"},
                    },
                },
                "postgresql": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "parameters": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        }
                    },
                },
            },
        },
    },
}
