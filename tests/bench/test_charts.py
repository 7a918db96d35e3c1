"""The report's charts drawn from small records: every chart is written, bars with folds
get their spread, and a clustered set of bars gets a broken axis that still shows zero.
Needs matplotlib (bench extra); skipped without it."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from bench import charts  # noqa: E402

PNG = b"\x89PNG"


def _axes_drawn(monkeypatch: pytest.MonkeyPatch) -> list:
    """The axes of every figure saved, collected as they are saved."""
    import matplotlib.figure

    saved: list = []
    original = matplotlib.figure.Figure.savefig

    def savefig(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        saved.append(self.axes)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    return saved


def test_clustered_bars_break_the_axis_at_zero(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    saved = _axes_drawn(monkeypatch)
    charts.bar_chart(tmp_path / "rmse.png", "RMSE", ["attentive", "svd"], [0.90, 0.94],
                     "RMSE", runs=[[0.89, 0.90, 0.91], None])
    charts.bar_chart(tmp_path / "ndcg.png", "NDCG", ["attentive", "pop"], [0.15, 0.05], "NDCG")
    (stub, zoomed), [whole] = saved
    assert stub.get_xlim()[0] == 0 and zoomed.get_xlim()[0] > 0.8
    assert whole.get_xlim()[0] == 0
    assert "0.9000 ± 0.0100" in [t.get_text().strip() for t in zoomed.texts]
    assert (tmp_path / "rmse.png").read_bytes().startswith(PNG)


def test_load_and_scaling_charts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved = _axes_drawn(monkeypatch)
    point = {"per_second": 300.0, "p50_ms": 3.0, "p99_ms": 9.0}
    busy = {"per_second": 350.0, "p50_ms": 90.0, "p99_ms": 200.0}
    charts.load_chart(tmp_path / "load.png", "load", {"POST /v1/rank": {"1": point, "32": busy}})
    row = {
        "device": "cpu",
        "history_length": {"10": 1.4, "100": 1.7, "1000": 2.8},
        "candidates": {"10": 0.8, "1000": 2.4},
        "catalogue": {"10000": {"retrieval_ms": 12.6, "retrieve_and_score_ms": 19.3,
                                "score_every_item_ms": 12.7}},
    }
    written = charts.scaling_charts(row, tmp_path)
    assert sorted(written) == ["candidates", "catalogue", "history_length"]
    assert all(p.read_bytes().startswith(PNG) for p in [tmp_path / "load.png",
                                                          *written.values()])
    p50, p99 = saved[0]
    assert p50.get_yscale() == "log" and p50.get_xlim()[0] == 0
    [history] = saved[1]
    assert history.get_yscale() == "linear" and history.get_ylim()[0] == 0
