"""The benchmark's figures, their summary over several runs, `bench/results.json` and the comparison of two.

A scenario's run returns a `Measurement`: named figures, each with its unit and, where the
project sets one, its target, plus latency distributions for the plot. `summarize` turns the
runs of every scenario into the results document; its schema (`SCHEMA`) stays the same from
run to run, so that `compare` can put any two side by side.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import statistics
import typing as t

SCHEMA = 1
#: How many points of a latency distribution are kept (quantiles 0, 1/(n-1), ..., 1).
QUANTILES = 101
_OPS: dict[str, t.Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge, "==": operator.eq}
# Unit suffixes of the keys of a plain {name: number} mapping (see `figures_from`), longest first.
_SUFFIX_UNITS = (("_per_s", "1/s"), ("_mib", "MiB"), ("_ms", "ms"), ("_s", "s"), ("_bytes", "bytes"))


@dataclasses.dataclass(frozen=True)
class Target:
    op: str  # "<=", ">=" or "=="
    value: float

    def holds(self, value: float) -> bool:
        return _OPS[self.op](value, self.value)

    def as_dict(self) -> dict[str, t.Any]:
        return {"op": self.op, "value": self.value}


@dataclasses.dataclass(frozen=True)
class Figure:
    name: str  # dotted: scenario.variant.quantity, e.g. "reconcile.sandbox.n100.github_calls"
    value: float
    unit: str  # "calls", "bytes", "s", "ms", "1/s", "MiB", "ratio"
    target: Target | None = None


@dataclasses.dataclass
class Measurement:
    """What one run of a scenario measured."""

    figures: list[Figure] = dataclasses.field(default_factory=list)
    # Latency samples (seconds) by name, for the plot; kept as quantiles in the results.
    distributions: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    def add(self, name: str, value: float, unit: str, target: Target | None = None) -> None:
        self.figures.append(Figure(name, float(value), unit, target))


def figures_from(prefix: str, numbers: t.Mapping[str, t.Any], units: t.Mapping[str, str] | None = None) -> Measurement:
    """A measurement from a benchmark function's {name: number} result (nested mappings are flattened).

    The unit comes from `units`, else from the key's suffix (_ms, _s, _per_s, _mib, _bytes), else "count".
    """
    measurement = Measurement()

    def walk(path: str, value: t.Any) -> None:
        if isinstance(value, t.Mapping):
            for key, inner in value.items():
                walk(f"{path}.{key}", inner)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            key = path.rsplit(".", 1)[-1]
            unit = (units or {}).get(key) or next((u for s, u in _SUFFIX_UNITS if key.endswith(s)), "count")
            measurement.add(path, value, unit)

    walk(prefix, numbers)
    return measurement


def quantiles(samples: t.Sequence[float], points: int = QUANTILES) -> list[float]:
    """`points` evenly spaced quantiles (nearest rank) of `samples`, in milliseconds."""
    ordered = sorted(samples)
    if not ordered:
        return []
    return [
        round(ordered[min(len(ordered) - 1, int(i / (points - 1) * len(ordered)))] * 1000, 3) for i in range(points)
    ]


def percentile(samples: t.Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of `samples` (seconds), in milliseconds."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def summarize(
    scenarios: t.Mapping[str, t.Mapping[str, t.Any]],
    runs: t.Mapping[str, t.Sequence[Measurement]],
    header: t.Mapping[str, t.Any],
) -> dict[str, t.Any]:
    """The results document: `header` (machine, versions, ...), the scenarios, every figure's median and spread."""
    figures: dict[str, dict[str, t.Any]] = {}
    distributions: dict[str, dict[str, t.Any]] = {}
    notes: dict[str, list[str]] = {}
    for scenario, measured in runs.items():
        samples: dict[str, list[Figure]] = {}
        for measurement in measured:
            for figure in measurement.figures:
                samples.setdefault(figure.name, []).append(figure)
            for name, latencies in measurement.distributions.items():
                # The plot shows the latencies of every run together.
                distributions.setdefault(name, {"unit": "ms", "scenario": scenario, "samples": []})["samples"] += list(
                    latencies
                )
            notes[scenario] = list(dict.fromkeys([*notes.get(scenario, []), *measurement.notes]))
        for name, found in samples.items():
            values = [f.value for f in found]
            median = statistics.median(values)
            target = found[0].target
            figures[name] = {
                "scenario": scenario,
                "unit": found[0].unit,
                "median": _round(median),
                "min": _round(min(values)),
                "max": _round(max(values)),
                "spread": _round(max(values) - min(values)),
                "runs": len(values),
                "samples": [_round(v) for v in values],
                "target": None if target is None else target.as_dict(),
                "holds": None if target is None else target.holds(median),
            }
    for entry in distributions.values():
        entry["count"] = len(entry["samples"])
        entry["quantiles"] = quantiles(entry.pop("samples"))
    return {
        "schema": SCHEMA,
        **header,
        "scenarios": {name: {**dict(info), "notes": notes.get(name, [])} for name, info in scenarios.items()},
        "figures": dict(sorted(figures.items())),
        "distributions": dict(sorted(distributions.items())),
    }


def _round(value: float) -> float:
    return round(value, 4) if math.isfinite(value) else value


def check_schema(document: t.Mapping[str, t.Any]) -> list[str]:
    """What is wrong with a results document (an empty list when it has the schema `compare` reads)."""
    problems = []
    if document.get("schema") != SCHEMA:
        problems.append(f"schema is {document.get('schema')!r}, not {SCHEMA}")
    for key in ("created", "quick", "runs", "machine", "versions", "scenarios", "figures", "distributions"):
        if key not in document:
            problems.append(f"no {key}")
    for name, figure in document.get("figures", {}).items():
        missing = {"scenario", "unit", "median", "min", "max", "spread", "runs", "samples", "target", "holds"} - set(
            figure
        )
        if missing:
            problems.append(f"figure {name} lacks {', '.join(sorted(missing))}")
    return problems


@dataclasses.dataclass(frozen=True)
class Change:
    name: str
    unit: str
    before: float | None  # None: the figure is only in the new results
    after: float | None  # None: the figure is only in the baseline

    @property
    def ratio(self) -> float | None:
        if self.before is None or self.after is None or self.before == 0:
            return None
        return self.after / self.before


def compare(baseline: t.Mapping[str, t.Any], current: t.Mapping[str, t.Any]) -> list[Change]:
    """The median of every figure in either document, before and after."""
    before, after = baseline["figures"], current["figures"]
    return [
        Change(
            name,
            (after.get(name) or before[name])["unit"],
            before[name]["median"] if name in before else None,
            after[name]["median"] if name in after else None,
        )
        for name in sorted(set(before) | set(after))
    ]


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("calls", "count", "bytes") and float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"


def table(document: t.Mapping[str, t.Any]) -> str:
    """The figures as a text table: median, spread (max - min over the runs), unit, target."""
    rows = [("figure", "median", "spread", "unit", "target")]
    for name, figure in document["figures"].items():
        target = figure["target"]
        verdict = ""
        if target is not None:
            verdict = f"{target['op']} {format_value(target['value'], figure['unit'])} " + (
                "holds" if figure["holds"] else "MISSED"
            )
        rows.append(
            (
                name,
                format_value(figure["median"], figure["unit"]),
                format_value(figure["spread"], figure["unit"]),
                figure["unit"],
                verdict,
            )
        )
    return _columns(rows)


def comparison_table(changes: t.Sequence[Change]) -> str:
    rows = [("figure", "baseline", "now", "unit", "change")]
    for change in changes:
        ratio = change.ratio
        if change.before is None:
            delta = "new"
        elif change.after is None:
            delta = "gone"
        elif ratio is None:
            delta = "=" if change.after == change.before else f"{change.after - change.before:+g}"
        else:
            delta = "=" if ratio == 1 else f"{(ratio - 1) * 100:+.1f} %"
        rows.append(
            (
                change.name,
                format_value(change.before, change.unit),
                format_value(change.after, change.unit),
                change.unit,
                delta,
            )
        )
    return _columns(rows)


def _columns(rows: t.Sequence[t.Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
