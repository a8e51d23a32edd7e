"""Prometheus metrics of the witnesses the hub offers checkpoints to, read at scrape time."""

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from hub.witness.submitter import Witnessing


class WitnessCollector(Collector):
    def __init__(self, witnesses: Witnessing) -> None:
        self.witnesses = witnesses

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        lag = GaugeMetricFamily(
            "hub_witness_lag_entries",
            "Leaves between the newest checkpoint and the newest one the witness cosigned",
            labels=["witness"],
        )
        failures = CounterMetricFamily(
            "hub_witness_failures",
            "Offers of a checkpoint to the witness that failed (down, timeout, refusal)",
            labels=["witness"],
        )
        for name, behind, failed in self.witnesses.stats():
            lag.add_metric([name], behind)
            failures.add_metric([name], failed)
        yield lag
        yield failures
