"""The ranker's item-to-item term (EASE, Steck 2019): its weights are EASE's closed form,
it adds beta times the history's weighted mean weight to the attention's logit (an item the
user did not like weighing gamma), training installs it only when validation prefers it,
and a folded-in item neither lends nor receives it.
Its exact leave-one-out and save/load are in test_model_contract.py."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from models.data.encoded import EncodedRatings
from models.evaluation.ranking_baselines import Ease
from models.history import History, pad_batch
from models.inference.fold_in import FoldedItem, with_items
from models.training.item_embeddings import frozen_item_embeddings
from models.training.item_item import ITEM_ITEM_UNLIKED, ease_weights
from models.training.ranking import RankingTrainResult, train_ranking_model
from models.training.rating import RatingTrainResult
from tests.conftest import SCALE, SMALL_RANK


def interactions(encoded: EncodedRatings) -> tuple[np.ndarray, np.ndarray]:
    timelines = encoded.timelines
    return np.repeat(np.arange(len(timelines.lengths)), timelines.lengths), timelines.items


@pytest.fixture(scope="module")
def weights(ranked: RankingTrainResult, encoded: EncodedRatings) -> torch.Tensor:
    """B on the planted interactions."""
    return ease_weights(*interactions(encoded), ranked.model.n_items, reg=20.0)


def with_term(
    ranked: RankingTrainResult, weights: torch.Tensor, unliked: float = 0.5
) -> torch.nn.Module:
    """A copy of the trained ranker with the term installed at beta 30."""
    return copy.deepcopy(ranked.model).with_item_item(weights, 30.0, unliked)


def test_the_weights_are_eases_closed_form(encoded: EncodedRatings) -> None:
    users, items = interactions(encoded)
    n = len(encoded.item_ids)
    x = np.zeros((users.max() + 1, n), np.float32)
    x[users, items] = 1.0
    # A repeated pair counts once, as in the binary matrix.
    found = ease_weights(np.r_[users, users[:5]], np.r_[items, items[:5]], n, reg=20.0)
    np.testing.assert_allclose(found.numpy(), Ease(reg=20.0).fit(x).weights, atol=1e-5)
    assert (found.diagonal() == 0).all()


@pytest.mark.parametrize("unliked", [1.0, 0.25, 0.0])
def test_the_term_is_beta_times_the_historys_weighted_mean_weight(
    ranked: RankingTrainResult, weights: torch.Tensor, unliked: float
) -> None:
    """Rated 4 or more (liked on 1..5) an item weighs 1 in the mean, else gamma; a history
    with no weight at all adds nothing."""
    plain = ranked.model
    with_item_item = with_term(ranked, weights, unliked)
    histories = [History(np.array([3, 8, 15]), np.array([5.0, 2.0, 4.0], np.float32)),
                 History(np.array([40, 41]), np.array([1.0, 3.0], np.float32))]
    targets = [np.array([0, 1, 2, 60]), np.array([7, 9])]
    batch = pad_batch(histories, targets)
    with torch.inference_mode():
        args = (batch.hist_items, batch.hist_ratings, batch.hist_mask, batch.targets)
        added = (with_item_item.score(*args) - plain.score(*args)).numpy()
    for row, (history, wanted) in enumerate(zip(histories, targets, strict=True)):
        counts = np.where(history.ratings >= 4.0, 1.0, unliked)
        rows = weights[history.items][:, wanted].numpy()
        expected = 0.0 if counts.sum() == 0 else 30.0 * counts @ rows / counts.sum()
        np.testing.assert_allclose(added[row, : len(wanted)], expected, atol=1e-5)
    assert with_item_item.config.item_item_weight == 30.0
    assert with_item_item.config.item_item_unliked == unliked


def test_training_installs_the_term_only_when_validation_prefers_it(
    ranked: RankingTrainResult, encoded: EncodedRatings, trained: RatingTrainResult
) -> None:
    """On planted clusters the trained ranker needs no help: no term. Barely trained (one
    epoch at a tiny rate), it does: beta and gamma are the validation's best by liked
    NDCG@10 (the ratings are there), and the NDCG@10 reported is that setting's."""
    liked = ranked.item_item_liked_ndcg
    assert set(liked) == set(ranked.item_item_ndcg)
    assert max(liked, key=liked.get) == (0.0, 1.0) and ranked.model.item_item is None
    embeddings = frozen_item_embeddings(encoded, trained.model)
    barely = replace(SMALL_RANK, max_epochs=1, lr=1e-5)
    early = train_ranking_model(encoded, embeddings, SCALE, barely, progress=False)
    liked = early.item_item_liked_ndcg
    assert {gamma for _, gamma in liked} == set(ITEM_ITEM_UNLIKED)  # searched with beta
    beta, gamma = max(liked, key=liked.get)
    assert beta > 0 and early.model.config.item_item_weight == beta
    assert early.model.config.item_item_unliked == gamma
    assert liked[(beta, gamma)] > liked[(0.0, 1.0)]
    assert early.validation_ndcg == early.item_item_ndcg[(beta, gamma)]
    assert early.item_item_table()[f"beta={beta:g},unliked={gamma:g}"] == {
        "ndcg": early.validation_ndcg, "liked_ndcg": liked[(beta, gamma)]}


def test_a_folded_in_item_neither_lends_nor_receives_the_term(
    ranked: RankingTrainResult, weights: torch.Tensor
) -> None:
    model = with_term(ranked, weights)
    n = model.n_items
    new = FoldedItem(np.zeros(0), np.zeros(0), None, 0.0,
                     model.item_embeddings[0].numpy(), ranking_bias=0.0, raters=0,
                     source="folded")
    _, grown = with_items(None, model, [new])
    assert grown.n_items == n + 1
    assert grown.config.item_item_unliked == model.config.item_item_unliked == 0.5
    torch.testing.assert_close(grown.item_item.weights[:n, :n], model.item_item.weights)
    assert grown.item_item.weights[n].abs().sum() == 0
    assert grown.item_item.weights[:, n].abs().sum() == 0
    history = History(np.array([3, 8]), np.array([5.0, 2.0], np.float32))
    batch = pad_batch([history], [np.arange(n)])
    with torch.inference_mode():
        args = (batch.hist_items, batch.hist_ratings, batch.hist_mask, batch.targets)
        torch.testing.assert_close(grown.score(*args), model.score(*args))


@pytest.mark.parametrize("length", [0, 1, 5])
def test_short_histories_leave_one_out_to_a_zero_term(
    ranked: RankingTrainResult, weights: torch.Tensor, length: int
) -> None:
    model = with_term(ranked, weights)
    items = torch.arange(length) * 7
    ratings = torch.full((length,), 5.0)
    whole, without = model.item_item.leave_one_out(items, ratings, torch.tensor([1, 2]),
                                                    torch.arange(length))
    assert whole.shape == (2,) and without.shape == (length, 2)
    if length == 1:
        assert (without == 0).all()
    if length == 0:
        assert (whole == 0).all()


def test_with_no_weight_for_unliked_items_only_the_liked_ones_move_the_term(
    ranked: RankingTrainResult, weights: torch.Tensor
) -> None:
    """gamma 0: removing a disliked item leaves the term as it was; removing the only liked
    one leaves nothing of weight, so no term."""
    model = with_term(ranked, weights, unliked=0.0)
    items, ratings = torch.tensor([3, 8, 15]), torch.tensor([5.0, 2.0, 1.0])
    targets = torch.tensor([0, 1, 60])
    whole, without = model.item_item.leave_one_out(items, ratings, targets, torch.arange(3))
    torch.testing.assert_close(whole, 30.0 * weights[3, targets])
    assert (without[0] == 0).all()
    torch.testing.assert_close(without[1:], whole.expand(2, -1))
