"""The adapters' Prometheus metrics: outbox queue depth, delivery lag, dead letters and
HL7 ACK latency, served by ``--metrics-port`` of the long-running adapter commands.

The outbox figures are read from the outbox file at each scrape (so a listener and its
delivery child, two processes, show one truth); the ACK latency is observed in the
process that answers. Nothing here names a document or a patient.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapters.outbox import Outbox

__all__ = ["ACK_SECONDS", "REGISTRY", "OutboxCollector", "serve_metrics"]

REGISTRY = CollectorRegistry(auto_describe=True)
ACK_SECONDS = Histogram(
    "hub_adapter_ack_seconds",
    "Time from an MLLP block read to its acknowledgement ready to send (outbox commit included)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)


class OutboxCollector(Collector):
    """Queue depth, delivery lag and dead letters of one outbox file, read per scrape."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> Iterator[Metric]:
        with Outbox(self.path) as outbox:
            counts = outbox.counts()
            oldest = outbox.oldest_queued_at()
        queued = GaugeMetricFamily(
            "hub_adapter_outbox_queued", "Documents stored in the outbox, not yet delivered"
        )
        queued.add_metric([], counts.queued)
        yield queued
        delivered = GaugeMetricFamily(
            "hub_adapter_outbox_delivered", "Documents delivered to the hub (kept in the outbox)"
        )
        delivered.add_metric([], counts.delivered)
        yield delivered
        dead = GaugeMetricFamily(
            "hub_adapter_dead_letters",
            "Open dead letters: rejected by the hub, or refused on arrival",
            labels=["kind"],
        )
        dead.add_metric(["rejected"], counts.rejected)
        dead.add_metric(["refused"], counts.refused)
        yield dead
        lag = GaugeMetricFamily(
            "hub_adapter_delivery_lag_seconds",
            "Age of the oldest queued document (0 when nothing is queued)",
        )
        lag.add_metric([], _age(oldest))
        yield lag


def _age(accepted_at: str | None) -> float:
    if accepted_at is None:
        return 0.0
    return max(0.0, (datetime.now(UTC) - datetime.fromisoformat(accepted_at)).total_seconds())


def serve_metrics(host: str, port: int, outbox: str) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/metrics`` (prometheus_client's server, in a thread) for ``outbox``."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(OutboxCollector(outbox))
    registry.register(_Forward(REGISTRY))
    return start_http_server(port, host, registry=registry)


class _Forward(Collector):
    """The process-wide metrics (ACK latency) inside a per-server registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        return iter(self.registry.collect())
