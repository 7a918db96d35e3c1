"""The report's section for our ranker over training seeds, from a small record: the mean
and sample sd over seeds, the attention alone beside it, and each seed's term."""

from __future__ import annotations

from bench.report import seeds_section

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
