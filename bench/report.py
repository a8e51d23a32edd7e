"""Results: rows, the printed table, the targets of issue 2, results.json and the plot."""

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HUB_SQLITE = "hub (SQLite)"
HUB_POSTGRES = "hub (PostgreSQL)"
INMEMORY = "pymerkle InmemoryTree"
SQLITETREE = "pymerkle SqliteTree"
MERKLETOOLS = "merkletools"
RAW_SQLITE = "raw SQLite"
IMPLEMENTATIONS = [HUB_SQLITE, HUB_POSTGRES, INMEMORY, SQLITETREE, MERKLETOOLS, RAW_SQLITE]

# Metric key -> (operation as printed, unit). Proof times are means per proof.
METRICS: dict[str, tuple[str, str]] = {
    "append": ("bulk append", "leaves/s"),
    "insert": ("executemany (int, 200-byte blob), one txn", "rows/s"),
    "inner_nodes": ("inner nodes stored", "nodes"),
    "db_size": ("database size", "MB"),
    "peak_rss": ("peak RSS after append", "MB"),
    "inclusion_cold": ("inclusion proof, cold", "µs"),
    "inclusion_warm": ("inclusion proof, warm", "µs"),
    "inclusion": ("inclusion proof (get_proof)", "µs"),
    "consistency_cold": ("consistency proof, cold", "µs"),
    "consistency_warm": ("consistency proof, warm", "µs"),
}

INCLUSION_TARGET_US = 100.0
APPEND_TARGET = 150_000.0
MEMORY_RATIO_TARGET = 1.5
PROOF_TARGET_SIZE = 1_000_000
HUGE_SIZE = 10_000_000


@dataclass(frozen=True)
class Row:
    implementation: str
    metric: str
    leaves: int
    value: float
    operation: str = ""
    unit: str = ""
    samples: int | None = None
    wanted: int | None = None

    def __post_init__(self) -> None:
        op, unit = METRICS[self.metric]
        if not self.operation:
            object.__setattr__(self, "operation", op)
        if not self.unit:
            object.__setattr__(self, "unit", unit)

    @property
    def label(self) -> str:
        """The operation, saying so when the time budget cut the sample short."""
        if self.samples is not None and self.wanted and self.samples < self.wanted:
            return f"{self.operation} ({self.samples:,} of {self.wanted:,}: time cap)"
        return self.operation


def row_from_json(data: dict[str, Any]) -> Row:
    return Row(**data)


def _order(rows: Iterable[Row]) -> list[Row]:
    metrics = list(METRICS)
    return sorted(
        rows,
        key=lambda r: (
            IMPLEMENTATIONS.index(r.implementation),
            metrics.index(r.metric),
            r.leaves,
        ),
    )


def format_value(value: float, unit: str) -> str:
    if math.isnan(value):
        return "n/a"
    if unit in ("µs", "MB"):
        return f"{value:,.1f}"
    return f"{value:,.0f}"


def format_table(rows: Sequence[Row]) -> str:
    header = ("implementation", "operation", "leaves", "value", "unit")
    cells = [
        (r.implementation, r.label, f"{r.leaves:,}", format_value(r.value, r.unit), r.unit)
        for r in _order(rows)
    ]
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]
    right = {2, 3}

    def line(cols: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cols, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(c) for c in cells)])


def _find(rows: Sequence[Row], implementation: str, metric: str, leaves: int) -> Row | None:
    for r in rows:
        if (r.implementation, r.metric, r.leaves) == (implementation, metric, leaves):
            return r
    return None


@dataclass(frozen=True)
class Verdict:
    target: str
    status: str  # PASS, FAIL or SKIP
    detail: str


def _proof_verdict(rows: Sequence[Row], kind: str) -> Verdict:
    target = f"{kind} proof from the database at {PROOF_TARGET_SIZE:,} leaves <= 100 µs"
    cold = _find(rows, HUB_SQLITE, f"{kind}_cold", PROOF_TARGET_SIZE)
    warm = _find(rows, HUB_SQLITE, f"{kind}_warm", PROOF_TARGET_SIZE)
    if cold is None or warm is None:
        return Verdict(target, "SKIP", f"not measured at {PROOF_TARGET_SIZE:,}")
    # Cold is the verdict: every proof reads the database, as the target says.
    status = "PASS" if cold.value <= INCLUSION_TARGET_US else "FAIL"
    return Verdict(target, status, f"cold {cold.value:,.1f} µs, warm {warm.value:,.1f} µs")


def evaluate(rows: Sequence[Row]) -> list[Verdict]:
    verdicts = []
    target = "bulk integration into SQLite >= 150,000 leaves/s, inner nodes stored"
    at_target = _find(rows, HUB_SQLITE, "append", PROOF_TARGET_SIZE)
    if at_target is None:
        verdicts.append(Verdict(target, "SKIP", f"not measured at {PROOF_TARGET_SIZE:,}"))
    else:
        detail = f"{at_target.value:,.0f} leaves/s at {PROOF_TARGET_SIZE:,}"
        huge = _find(rows, HUB_SQLITE, "append", HUGE_SIZE)
        if huge is not None:
            detail += f", {huge.value:,.0f} at {HUGE_SIZE:,}"
        raw = _find(rows, RAW_SQLITE, "insert", PROOF_TARGET_SIZE)
        if raw is not None:
            detail += f" (raw SQLite {raw.value:,.0f} rows/s)"
        status = "PASS" if at_target.value >= APPEND_TARGET else "FAIL"
        verdicts.append(Verdict(target, status, detail))
    verdicts.append(_proof_verdict(rows, "inclusion"))
    verdicts.append(_proof_verdict(rows, "consistency"))
    target = "peak memory at 10,000,000 leaves <= 1.5 x that at 1,000,000"
    small = _find(rows, HUB_SQLITE, "peak_rss", PROOF_TARGET_SIZE)
    big = _find(rows, HUB_SQLITE, "peak_rss", HUGE_SIZE)
    if small is None or big is None:
        verdicts.append(Verdict(target, "SKIP", "10,000,000 runs only with --huge"))
    else:
        ratio = big.value / small.value
        status = "PASS" if ratio <= MEMORY_RATIO_TARGET else "FAIL"
        detail = f"{big.value:,.1f} MB vs {small.value:,.1f} MB = {ratio:.2f}x"
        verdicts.append(Verdict(target, status, detail))
    return verdicts


def format_verdicts(verdicts: Sequence[Verdict]) -> str:
    return "\n".join(f"{v.status}  {v.target}: {v.detail}" for v in verdicts)


def write_json(
    path: Path, rows: Sequence[Row], verdicts: Sequence[Verdict], meta: dict[str, Any]
) -> None:
    data = {
        **meta,
        "rows": [asdict(r) for r in _order(rows)],
        "targets": [asdict(v) for v in verdicts],
    }
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


_PANELS = [
    ("inclusion proof", "µs per proof", ["inclusion_cold", "inclusion_warm", "inclusion"]),
    ("consistency proof", "µs per proof", ["consistency_cold", "consistency_warm"]),
    ("append rate", "leaves (rows) per second", ["append", "insert"]),
]
_STYLE = {"cold": "--", "warm": "-"}


def write_plot(path: Path, rows: Sequence[Row], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(_PANELS), figsize=(18, 6))
    colors = {name: f"C{i}" for i, name in enumerate(IMPLEMENTATIONS)}
    for ax, (name, ylabel, metrics) in zip(axes, _PANELS, strict=True):
        for implementation in IMPLEMENTATIONS:
            for metric in metrics:
                points = sorted(
                    (r.leaves, r.value)
                    for r in rows
                    if r.implementation == implementation
                    and r.metric == metric
                    and not math.isnan(r.value)
                )
                if not points:
                    continue
                variant = metric.rpartition("_")[2]
                label = implementation if variant == metric else f"{implementation}, {variant}"
                ax.plot(
                    [p[0] for p in points],
                    [p[1] for p in points],
                    marker="o",
                    linestyle=_STYLE.get(variant, "-"),
                    color=colors[implementation],
                    label=label,
                )
        if name != "append rate":
            ax.axhline(INCLUSION_TARGET_US, color="grey", linewidth=0.8, linestyle=":")
        else:
            ax.axhline(APPEND_TARGET, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("ledger size (leaves)")
        ax.set_ylabel(ylabel)
        ax.set_title(name)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
