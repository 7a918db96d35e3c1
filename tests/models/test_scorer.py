"""The attentive scorer on planted data: it learns more than biases, its attention falls on
the target's cluster, new users are served without retraining, and inference is
deterministic with batched == single."""

from __future__ import annotations

import numpy as np
import torch

from models.baselines import BiasBaseline
from models.data.splits import new_user_split, per_user_holdout
from models.data.synthetic import PlantedData
from models.data.table import IdMap, RatingTable
from models.evaluate import histories_by_user
from models.inference import History, pad_batch, predict, predict_ratings
from models.metrics import rmse
from models.train import TrainConfig, TrainResult, _sample_context, train
from tests.conftest import SMALL_TRAIN

EMPTY = History(np.zeros(0, np.int64), np.zeros(0, np.float32))


def histories_of(table: RatingTable, item_ids: IdMap) -> dict[str, History]:
    """Each user's ratings in `table`, oldest first."""
    return histories_by_user(table, item_ids)


def predict_table(
    result: TrainResult, histories: dict[str, History], test: RatingTable
) -> np.ndarray:
    pred = np.empty(len(test))
    for user in np.unique(test.users):
        rows = np.flatnonzero(test.users == user)
        [p] = predict_ratings(
            result.model,
            [histories.get(str(user), EMPTY)],
            [result.item_ids.encode(test.items[rows])],
            max_context=512,
        )
        pred[rows] = p
    return pred


def test_learns_more_than_user_and_item_biases(planted: PlantedData) -> None:
    fit, test = per_user_holdout(planted.table, 0.2, seed=3)
    result = train(fit, SMALL_TRAIN, progress=False)
    ours = rmse(predict_table(result, histories_of(fit, result.item_ids), test), test.ratings)
    biases = rmse(BiasBaseline().fit(fit).predict(test.users, test.items), test.ratings)
    assert ours < 0.8 * biases, (ours, biases)


def test_attention_falls_on_the_target_cluster(planted: PlantedData, trained: TrainResult) -> None:
    cluster_of = {f"i{i}": c for i, c in enumerate(planted.item_cluster)}
    histories = histories_of(planted.table, trained.item_ids)
    masses, shares = [], []
    for history in list(histories.values())[:60]:
        clusters = np.array([cluster_of[i] for i in trained.item_ids.decode(history.items)])
        rated = set(history.items.tolist())
        for c in range(len(planted.user_likes[0])):
            candidates = [
                trained.item_ids.index(i)
                for i, k in cluster_of.items()
                if k == c and trained.item_ids.index(i) not in rated
            ]
            if not candidates or not (clusters == c).any():
                continue
            batch = pad_batch([history], [np.array(candidates[:1])])
            attention = predict(trained.model, batch).attention[0, 0].numpy()
            masses.append(attention[: len(clusters)][clusters == c].sum())
            shares.append((clusters == c).mean())
    assert len(masses) > 100
    # Attention concentrates on the target's cluster far beyond its share of the history.
    assert np.mean(masses) > 0.6, np.mean(masses)
    assert np.mean(masses) > 2 * np.mean(shares)


def test_new_users_are_served_from_their_ratings_alone(planted: PlantedData) -> None:
    split = new_user_split(planted.table, fraction=0.2, min_ratings=10, seed=1)
    result = train(split.train, SMALL_TRAIN, progress=False)
    assert not set(split.revealed.users) & set(split.train.users)
    revealed = histories_of(split.revealed, result.item_ids)
    with_history = rmse(predict_table(result, revealed, split.hidden), split.hidden.ratings)
    default_user = rmse(predict_table(result, {}, split.hidden), split.hidden.ratings)
    assert with_history < 0.7 * default_user, (with_history, default_user)


def test_inference_is_deterministic_and_batched_equals_single(
    planted: PlantedData, trained: TrainResult
) -> None:
    histories = list(histories_of(planted.table, trained.item_ids).values())[:8]
    targets = [np.arange(i, i + 5 + 3 * i) % len(trained.item_ids) for i in range(8)]
    together = predict_ratings(trained.model, histories, targets, max_context=512)
    again = predict_ratings(trained.model, histories, targets, max_context=512)
    for h, t, batched, repeat in zip(histories, targets, together, again, strict=True):
        [alone] = predict_ratings(trained.model, [h], [t], max_context=512)
        np.testing.assert_array_equal(batched, repeat)
        np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_a_target_never_attends_to_itself(planted: PlantedData, trained: TrainResult) -> None:
    history = next(iter(histories_of(planted.table, trained.item_ids).values()))
    target = history.items[3]
    out = predict(trained.model, pad_batch([history], [np.array([target])]))
    attention = out.attention[0, 0, : len(history.items)].numpy()
    assert attention[3] == 0.0
    assert np.isclose(attention.sum(), 1.0, atol=1e-5)
    [without] = predict_ratings(trained.model, [history.without(3)], [np.array([target])], 512)
    assert np.isclose(out.rating[0, 0].item(), without[0], atol=1e-5)


def test_empty_history_gives_the_default_user(trained: TrainResult) -> None:
    out = predict(trained.model, pad_batch([EMPTY, EMPTY], [np.array([0, 1]), np.array([1])]))
    assert torch.all(out.attention == 0)
    assert np.isclose(out.rating[0, 1].item(), out.rating[1, 0].item())


def test_context_sampling_excludes_the_target_and_never_repeats() -> None:
    items = torch.tensor([[5, 6, 7, 8, 9, 0], [1, 2, 0, 0, 0, 0]])
    ratings = torch.ones_like(items, dtype=torch.float32)
    lengths = torch.tensor([5, 2])
    rng = torch.Generator().manual_seed(0)
    for _ in range(20):
        got, _, mask, _ = _sample_context(
            torch.tensor([0, 1]), torch.tensor([7, 2]), items, ratings, lengths, 3, rng
        )
        first = got[0][mask[0]].tolist()
        assert len(first) == 3 and len(set(first)) == 3 and 7 not in first
        assert set(first) <= {5, 6, 8, 9}
        assert got[1][mask[1]].tolist() == [1]


def test_context_sampling_with_a_minimum_keeps_every_size_in_its_range() -> None:
    items = torch.arange(1, 41)[None, :].repeat(2, 1)
    ratings = torch.ones_like(items, dtype=torch.float32)
    lengths = torch.tensor([40, 40])
    rng = torch.Generator().manual_seed(0)
    sizes = set()
    for _ in range(200):
        got, _, mask, _ = _sample_context(
            torch.tensor([0, 1]), torch.tensor([3, 4]), items, ratings, lengths, 8, rng, 2
        )
        for row, target in enumerate((3, 4)):
            kept = got[row][mask[row]].tolist()
            assert len(set(kept)) == len(kept) and target not in kept
            sizes.add(len(kept))
    assert sizes == set(range(2, 9))


def test_only_the_inner_product_head_trains_on_short_contexts_by_default() -> None:
    assert TrainConfig(head="dot").shortest_context == 1
    assert TrainConfig(head="mlp2").shortest_context == TrainConfig().train_context
    assert TrainConfig(head="mlp1", train_context_min=8).shortest_context == 8
