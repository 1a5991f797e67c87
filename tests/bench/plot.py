"""The latency distributions of a results document as one PNG (matplotlib, no display needed).

    python -m tests.bench.plot RESULTS.json OUT_DIR

`make bench` draws its own run into bench/plots/; the documentation build draws the results the
performance page reports (docs/site/performance-results.json) into its build folder.
"""

from __future__ import annotations

import json
import pathlib
import sys
import typing as t

PLOT = "latency.png"


def plot_latencies(document: t.Mapping[str, t.Any], out_dir: pathlib.Path) -> pathlib.Path:
    """Each distribution as its quantile curve (latency against the share of requests answered)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    out_dir.mkdir(parents=True, exist_ok=True)
    figure, axes = pyplot.subplots(figsize=(8, 4.5), dpi=100)
    for name, entry in document["distributions"].items():
        points = entry["quantiles"]
        if points:
            shares = [100 * i / (len(points) - 1) for i in range(len(points))]
            axes.plot(shares, points, label=f"{name} (n={entry['count']})")
    axes.set_yscale("log")
    axes.set_xlabel("deliveries answered or jobs served within the latency (%)")
    axes.set_ylabel("latency (ms, log scale)")
    axes.set_title(f"Router and consumer latency ({document['created'][:10]}, {document['machine']['cpus']} CPUs)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    path = out_dir / PLOT
    figure.savefig(path)
    pyplot.close(figure)
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(plot_latencies(json.loads(pathlib.Path(argv[0]).read_text()), pathlib.Path(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
