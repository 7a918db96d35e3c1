"""Folding a new item into frozen models: appending rows changes no trained item's score,
the fit moves the item toward its raters, it is deterministic, its rows survive JSON, and
serving code can do it without loading any training module."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from models.data.table import RatingScale
from models.history import History
from models.inference.fold_in import (
    FoldedItem,
    Rater,
    attribute_prior,
    bias_only_fold_in,
    fold_in_item,
    mean_item,
    with_items,
)
from models.inference.scoring import catalogue_scores, predict_ratings
from models.networks.ranking import RankingModel, RankingModelConfig
from models.networks.rating import RatingModel, RatingModelConfig

SCALE = RatingScale()
N_ITEMS, DIM = 40, 8
GENRES = [["a"] if i % 2 else ["b", "c"] for i in range(N_ITEMS)]


@pytest.fixture(scope="module")
def models() -> tuple[RatingModel, RankingModel]:
    """Small untrained models with random rows: fold-in's contract does not need training."""
    torch.manual_seed(0)
    rating = RatingModel(RatingModelConfig(dim=DIM, hidden=(8,)), N_ITEMS, SCALE)
    with torch.no_grad():
        rating.item_bias.weight.normal_(0.0, 0.3)
        rating.global_mean.fill_(3.5)
    embeddings = torch.cat([torch.randn(N_ITEMS, DIM), rating.structure.weight.detach()], 1)
    ranking = RankingModel(RankingModelConfig(width=8, recency=4), embeddings, SCALE)
    with torch.no_grad():
        ranking.item_bias.normal_(0.0, 0.5)
    return rating.eval(), ranking.eval()


def _raters(count: int, seed: int = 1) -> list[Rater]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        items = rng.choice(N_ITEMS, size=12, replace=False).astype(np.int64)
        ratings = rng.integers(1, 6, size=12).astype(np.float32)
        out.append(Rater(History(items[:8], ratings[:8]), float(rng.choice([4.0, 5.0])),
                         History(items[8:], ratings[8:])))
    return out


def _histories(count: int = 6) -> list[History]:
    return [r.before for r in _raters(count, seed=7)]


def test_with_items_leaves_trained_items_and_originals_unchanged(models) -> None:
    rating, ranking = models
    before_state = {k: v.clone() for k, v in rating.state_dict().items()}
    targets = [np.arange(N_ITEMS)] * 6
    expected = predict_ratings(rating, _histories(), targets)
    expected_scores = catalogue_scores(ranking, _histories())
    folded = [fold_in_item(rating, ranking, _raters(5)), mean_item(rating, ranking)]
    rating_new, ranking_new = with_items(rating, ranking, folded)
    assert rating_new.n_items == ranking_new.n_items == N_ITEMS + 2
    for got, want in zip(predict_ratings(rating_new, _histories(), targets), expected,
                         strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(catalogue_scores(ranking_new, _histories())[:, :N_ITEMS],
                                  expected_scores)
    assert rating.n_items == ranking.n_items == N_ITEMS
    for key, value in rating.state_dict().items():
        assert torch.equal(value, before_state[key]), key
    np.testing.assert_array_equal(rating_new.structure.weight[N_ITEMS].detach().numpy(),
                                  folded[0].structure)


def test_a_folded_item_brings_its_genres_to_the_history_offset(models) -> None:
    """The offset weighs the genres of the training vocabulary; a folded item's genres
    join the attribute rows (one outside the vocabulary weighs nothing)."""
    rating, ranking = models
    config = replace(rating.config, attributes=("a", "b"), attribute_ridge=3.0,
                     history_offset_shrink=1.0)
    attributed = RatingModel(config, N_ITEMS, SCALE)
    attributed.load_state_dict({**rating.state_dict(),
                                "item_attributes": torch.zeros(N_ITEMS, 2)})
    folded = [mean_item(rating, ranking)] * 3
    grown, _ = with_items(attributed.eval(), ranking, folded, [["b"], ["a", "z"], []])
    np.testing.assert_array_equal(grown.item_attributes[N_ITEMS:].numpy(),
                                  [[0, 1], [1, 0], [0, 0]])


def test_fit_moves_predictions_toward_the_raters(models) -> None:
    rating, ranking = models
    raters = _raters(10)
    prior = attribute_prior(rating, ranking, GENRES).item(["a"])
    folded = fold_in_item(rating, ranking, raters, prior)
    truth = np.array([r.rating for r in raters])
    histories = [r.before for r in raters]
    new = [np.array([N_ITEMS])] * len(raters)

    def error(item: FoldedItem) -> float:
        model = with_items(rating, ranking, [item])[0]
        return float(np.mean((np.concatenate(predict_ratings(model, histories, new)) - truth) ** 2))

    assert folded.source == "folded" and folded.raters == 10
    assert error(folded) < 0.5 * error(prior)
    peer = bias_only_fold_in(rating, raters, shrink=0.0, prior=prior)
    assert peer > prior.rating_bias  # the raters liked it more than the prior predicts


def test_fold_in_is_deterministic(models) -> None:
    rating, ranking = models
    first = fold_in_item(rating, ranking, _raters(6)).to_json()
    assert fold_in_item(rating, ranking, _raters(6)).to_json() == first


def test_json_round_trip_is_exact(models) -> None:
    rating, ranking = models
    folded = fold_in_item(rating, ranking, _raters(4))
    back = FoldedItem.from_json(json.loads(json.dumps(folded.to_json())))
    assert back.to_json() == folded.to_json()
    for field in ("structure", "taste", "implicit", "ranking_embedding"):
        np.testing.assert_array_equal(getattr(back, field), getattr(folded, field))


def test_attribute_prior_has_every_row_and_no_raters(models) -> None:
    rating, ranking = models
    item = attribute_prior(rating, ranking, GENRES).item(["b", "unknown"])
    assert item.source == "attributes" and item.raters == 0
    assert item.structure.shape == item.taste.shape == item.implicit.shape == (DIM,)
    assert item.ranking_embedding.shape == (2 * DIM,)
    assert fold_in_item(rating, ranking, [], item) is item


def test_fold_in_imports_no_training_code() -> None:
    script = (
        "import sys\n"
        "import models.inference.fold_in\n"
        "loaded = [m for m in sys.modules if m.startswith(('models.training', "
        "'models.evaluation'))]\n"
        "print('training modules:', loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "training modules: []" in done.stdout
