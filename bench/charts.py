"""The charts of bench/RESULTS.md, drawn from recorded results (bench/results/*.jsonl) by
`bench.report`. Nothing is measured here. Needs matplotlib (bench extra).

How the axes are chosen, so that a chart never overstates a gap:

    bars (quality)         start at zero; when every bar is longer than half the longest
                           (RMSEs of 0.90 to 1.15) the value axis is broken instead, a
                           stub from 0 and the zoomed rest, marked // at the break
    folds and seeds        the bar is their mean, the error bar one standard deviation
                           (n - 1), each fold or seed a dot
    latency                log scale, labelled so: it spans four decades across endpoints
                           and loads; throughput beside it starts at zero
    cost by history        linear, from zero (1.4 to 2.8 ms is not a log-scale range)
    cost by candidates     log-log, labelled so: three decades of candidates and items
      and catalogue
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import stdev
from typing import Any

OURS = "tab:orange"
PEERS = "tab:blue"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(path: Path, title: str, labels: Sequence[str], values: Sequence[float],
              xlabel: str, highlight: str = "attentive",
              runs: Sequence[Sequence[float] | None] | None = None) -> None:
    """Horizontal bars, ours (labels starting with `highlight`) in a second colour, each
    labelled with its value. `runs`, per bar: the values of its folds or seeds (`values`
    holds their mean), drawn as dots with a one-sd error bar; None for a single run."""
    plt = _pyplot()
    runs = runs or [None] * len(values)
    spread = [stdev(r) if r is not None and len(r) > 1 else 0.0 for r in runs]
    ends = [end for value, sd, run in zip(values, spread, runs, strict=True)
            for end in (value - sd, value + sd, *(run or ()))]
    low, high = min(ends), max(ends)
    broken = low > 0.5 * high
    size = (5.5 + 0.07 * max(map(len, labels)), 0.45 * len(labels) + 1.3)
    room = 1.5 if any(spread) else 1.3  # beside the longest bar: its value (± sd)
    if broken:
        fig, (stub, ax) = plt.subplots(1, 2, sharey=True, figsize=size,
                                       layout="constrained", width_ratios=[1, 10])
        span = high - low
        start = low - 0.3 * span
        ax.set_xlim(start, high + 0.45 * span)
        stub.set_xlim(0, 0.1 * start)
        stub.set_xticks([0])
        panels = [stub, ax]
    else:
        fig, ax = plt.subplots(figsize=size, layout="constrained")
        ax.set_xlim(0, high * room)
        panels = [ax]
    colours = [OURS if label.startswith(highlight) else PEERS for label in labels]
    positions = list(range(len(labels)))
    for panel in panels:
        panel.barh(positions, values, color=colours)
    panels[0].set_yticks(positions, labels)
    panels[0].invert_yaxis()
    for y, (value, sd, run) in enumerate(zip(values, spread, runs, strict=True)):
        if run is not None and len(run) > 1:
            ax.errorbar(value, y, xerr=sd, fmt="none", ecolor="black", elinewidth=1,
                        capsize=3, zorder=3)
            ax.scatter(run, [y] * len(run), s=9, color="black", alpha=0.5, zorder=4)
            text = f" {value:.4f} ± {sd:.4f}"
        else:
            text = f" {value:.4f}"
        ax.annotate(text, (max([value + sd, *(run or ())]), y), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=8)
    if broken:
        _mark_break(stub, ax)
        xlabel += f"; the axis skips {stub.get_xlim()[1]:.2f} to {ax.get_xlim()[0]:.2f} (//)"
    ax.set_xlabel(xlabel)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mark_break(left: Any, right: Any) -> None:
    """The usual // marks where the x axis is cut, its inner spines hidden."""
    left.spines["right"].set_visible(False)
    right.spines["left"].set_visible(False)
    right.tick_params(left=False)
    marks = {"marker": [(-0.5, -1), (0.5, 1)], "markersize": 10, "linestyle": "none",
             "color": "black", "mec": "black", "mew": 1, "clip_on": False}
    left.plot([1, 1], [0, 1], transform=left.transAxes, **marks)
    right.plot([0, 0], [0, 1], transform=right.transAxes, **marks)


def load_chart(path: Path, title: str, load: Mapping[str, Mapping[str, Mapping]],
               extra: Mapping[str, Mapping[str, Mapping]] | None = None) -> None:
    """Latency against throughput from wrk runs: p50 and p99 side by side, one line per
    endpoint through its concurrencies (each point labelled c = N). `load` (and `extra`,
    drawn dashed: another configuration of the same service) maps endpoint -> concurrency
    -> figures with per_second, p50_ms and p99_ms."""
    from matplotlib.ticker import FuncFormatter

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2), sharey=True, layout="constrained")
    lines = [(name, by_c, "-") for name, by_c in load.items()]
    lines += [(name, by_c, "--") for name, by_c in (extra or {}).items()]
    palette = plt.get_cmap("tab10")
    for ax, key, label in zip(axes, ("p50_ms", "p99_ms"), ("p50", "p99"), strict=True):
        for n, (name, by_c, style) in enumerate(lines):
            order = sorted(by_c, key=int)
            x = [by_c[c]["per_second"] for c in order]
            y = [by_c[c][key] for c in order]
            ax.plot(x, y, style, marker="o", color=palette(n % 10), label=name)
            for c, xi, yi in zip(order, x, y, strict=True):
                ax.annotate(f"c={c}", (xi, yi), textcoords="offset points", xytext=(4, 3),
                            fontsize=7, color=palette(n % 10))
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlim(left=0)
        ax.set_xlabel("throughput, requests per second")
        ax.set_title(f"{label} latency", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("latency, ms (log scale)")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def scaling_charts(row: Mapping[str, Any], folder: Path) -> dict[str, Path]:
    """The three cost-growth charts of a `bench.scaling` record, named
    scaling_<axis>_<device>.png: by history length (linear), by candidates and by
    catalogue size (log-log)."""
    plt = _pyplot()
    device = str(row["device"]).split(":")[0]
    catalogue = {int(n): f for n, f in row["catalogue"].items()}
    panels = {
        "history_length": ("history length (items)", False,
                           {"Predictor.run": _numeric(row["history_length"])}),
        "candidates": ("candidates", True, {"Predictor.run": _numeric(row["candidates"])}),
        "catalogue": ("catalogue size (items)", True, {
            name: {n: f[key] for n, f in sorted(catalogue.items())}
            for name, key in (("FAISS retrieval", "retrieval_ms"),
                              ("retrieval + scoring", "retrieve_and_score_ms"),
                              ("scoring every item", "score_every_item_ms"))
        }),
    }
    written = {}
    for name, (label, log, series) in panels.items():
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for line, values in series.items():
            ax.plot(list(values), list(values.values()), marker="o", label=line)
        if log:
            ax.set(xscale="log", yscale="log", xlabel=f"{label} (log scale)",
                   ylabel="median ms (log scale)")
        else:
            [values] = series.values()
            top = max(values.values())
            ax.set(xlim=(0, max(values) * 1.05), ylim=(0, top * 1.25), xlabel=label,
                   ylabel="median ms")
            for n, (x, y) in enumerate(values.items()):  # alternately above and below
                ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", fontsize=8,
                            xytext=(0, 6 if n % 2 == 0 else -13), ha="center")
        ax.set_title(f"cost by {label.split(' (')[0]} ({device})", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        written[name] = folder / f"scaling_{name}_{device}.png"
        fig.savefig(written[name], dpi=120)
        plt.close(fig)
    return written


def _numeric(series: Mapping[Any, float]) -> dict[int, float]:
    """A series keyed by numbers, in order (JSON made its keys strings)."""
    return {int(k): float(v) for k, v in sorted(series.items(), key=lambda kv: int(kv[0]))}
