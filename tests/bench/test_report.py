"""The report's sections from small records: our ranker over training seeds (the mean and
sample sd over seeds, the attention alone beside it, and each seed's term), and rating
prediction (the newest run's first fold, the mean of the newest run over several folds)."""

from __future__ import annotations

import pytest

from bench import report
from bench.report import rating_section, seeds_section

RECORD = {"date": "2026-12-06T00:00:00+00:00", "machine": "test", "commit": "abc1234",
          "python": "3.11", "torch": "2.13", "seeds": [0, 1],
          "ease": {"ndcg": 0.1454, "recall": 0.1319, "params": {"reg": 400.0}},
          "runs": {"ours": [
              {"ndcg": 0.17, "recall": 0.15, "item_item_weight": 200.0,
               "item_item_unliked": 0.0, "attention_alone": {"ndcg": 0.16, "recall": 0.14}},
              {"ndcg": 0.18, "recall": 0.17, "item_item_weight": 400.0,
               "item_item_unliked": 0.25, "attention_alone": {"ndcg": 0.16, "recall": 0.14}},
          ]}}


def test_the_seeds_section_gives_mean_sd_and_each_seeds_term() -> None:
    lines = seeds_section({"fast": RECORD, "quality": None})
    text = "\n".join(lines)
    assert "| attentive ranker | 0.1750 ± 0.0071 | 0.1600 | 0.1700, 0.1800 |" in lines
    assert "| attentive ranker without its item-to-item term | 0.1600 ± 0.0000 |" in text
    assert "| ease {'reg': 400.0} | 0.1454 | 0.1319 | deterministic |" in lines
    assert "(beta, unliked weight): 200 / 0, 400 / 0.25." in text
    assert "Recipe `quality`: not run" in text


def test_no_run_at_all_says_how_to_run_it() -> None:
    assert "Not run (`python -m bench.ranker_seeds --models ours`)." in seeds_section(
        {"fast": None, "quality": None})


def _rating_run(date: str, per_fold: dict[int, float]) -> dict:
    folds = sorted(per_fold)
    return {"date": date, "machine": "test", "commit": "abc1234", "python": "3.11",
            "torch": "2.13", "folds": folds,
            "per_fold": {str(f): {"ours": {"rmse": r, "mae": r - 0.2}}
                         for f, r in per_fold.items()},
            "mean": {"ours": {"rmse": sum(per_fold.values()) / len(folds), "mae": 0.7}}}


def test_a_later_run_of_u1_alone_keeps_the_mean_over_folds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(report, "bar_chart", lambda *args, **kwargs: None)
    folds = _rating_run("2026-12-01", {1: 0.90, 2: 0.89})
    u1 = _rating_run("2026-12-02", {1: 0.91})
    lines = rating_section(u1, folds)
    assert "| ours | 0.9100 | 0.7100 |  |" in lines  # the newest run's u1
    assert ("The mean over folds is from the newest run over several. Run 2026-12-01 on "
            "`test`, commit `abc1234`, Python 3.11; torch 2.13.") in lines
    assert "| ours | 0.8950 | 0.0071 | 0.7000 | 0.9000 0.8900 |" in lines
    alone = rating_section(folds, folds)
    assert not any(line.startswith("The mean over folds is from") for line in alone)
    assert "| ours | 0.8950 | 0.0071 | 0.7000 | 0.9000 0.8900 |" in alone
    assert not any(line.startswith("Mean over") for line in rating_section(u1, None))
