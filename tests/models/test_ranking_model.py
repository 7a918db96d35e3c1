"""The ranking model (Lake et al., 2019) on planted data: it predicts what users pick next
better than popularity, its attention is faithful, its served scores equal its forward pass.
What every model keeps (batched == single, ...) is in test_model_contract.py."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from models.data.encoded import EncodedRatings
from models.data.splits import temporal_holdout
from models.data.synthetic import PlantedData, planted_ratings
from models.data.table import DataError, IdMap, RatingTable
from models.evaluation.ranking import evaluate_ranking, metrics_at_k, ranking_task
from models.evaluation.ranking_baselines import ItemKnn, Popularity, interaction_matrix
from models.evaluation.rating import histories_by_user
from models.history import History, pad_batch
from models.inference.scoring import catalogue_scores, ranking_scores
from models.networks.ranking import (
    RankingModel,
    RankingModelConfig,
    _fewer_than_two_items,
    _in_own_history,
)
from models.training import item_embeddings, ranking
from models.training.item_embeddings import cooccurrence_embeddings, frozen_item_embeddings
from models.training.ranking import (
    RankingTrainResult,
    _examples,
    _validation_scores,
    _validation_task,
    train_ranking_model,
)
from models.training.rating import RatingTrainResult, train_rating_model
from tests.conftest import SCALE, SMALL_RANK, SMALL_TRAIN


def attention_of(model: RankingModel, history: History, target: int) -> np.ndarray:
    batch = pad_batch([history], [np.array([target])])
    with torch.inference_mode():
        out = model(batch.hist_items, batch.hist_ratings, batch.hist_mask, batch.targets)
    return out.attention[0, 0, : len(history)].numpy()


def test_metrics_on_a_hand_made_ranking() -> None:
    got = metrics_at_k(np.array([7, 3, 9, 1]), {3, 1}, k=4)
    ideal = 1 + 1 / np.log2(3)
    assert np.isclose(got["ndcg"], (1 / np.log2(3) + 1 / np.log2(5)) / ideal)
    assert got["recall"] == 1.0 and got["hit_rate"] == 1.0 and got["mrr"] == 0.5
    assert metrics_at_k(np.array([5, 6]), {1}, k=2) == {
        "ndcg": 0.0, "recall": 0.0, "hit_rate": 0.0, "mrr": 0.0
    }


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["softmax", "sampled"])
def test_ranker_predicts_the_future_better_than_popularity(objective: str) -> None:
    # Users pick their liked clusters 8x as often: what comes next is predictable from the
    # history, and popularity cannot know it. Either training objective must learn that.
    picky = planted_ratings(n_users=300, n_items=120, n_clusters=4, pick_bias=8.0, seed=1)
    past, future = temporal_holdout(picky.table, n_last=5)
    data = EncodedRatings.encode(past)
    rating = train_rating_model(data, SCALE, SMALL_TRAIN, progress=False)
    ranker = train_ranking_model(
        data, frozen_item_embeddings(data, rating.model), SCALE,
        replace(SMALL_RANK, objective=objective, negatives=20), progress=False,
    ).model
    task = ranking_task(past, future, data.item_ids)
    histories = histories_by_user(past, data.item_ids)
    ours = evaluate_ranking(
        task, lambda rows: catalogue_scores(ranker, [histories[task.users[r]] for r in rows])
    )
    user_ids = IdMap.from_values(past.users)
    x = interaction_matrix(past, user_ids, data.item_ids)
    popularity = Popularity().fit(x)
    theirs = evaluate_ranking(
        task, lambda rows: popularity.score(x[[user_ids.index(task.users[r]) for r in rows]])
    )
    assert ours["ndcg"] > 1.8 * theirs["ndcg"], (ours, theirs)


def test_leaving_out_the_most_attended_item_moves_the_score_most(
    planted: PlantedData, encoded: EncodedRatings, ranked: RankingTrainResult
) -> None:
    """Faithfulness: the top-attention history item matters more than a random one."""
    rng = np.random.default_rng(0)
    histories = list(histories_by_user(planted.table, encoded.item_ids).values())[:40]
    top_drops, random_drops = [], []
    for history in histories:
        scores = catalogue_scores(ranked.model, [history])[0]
        unrated = np.setdiff1d(np.arange(len(scores)), history.items)
        target = int(unrated[np.argmax(scores[unrated])])
        top = int(np.argmax(attention_of(ranked.model, history, target)))
        other = int(rng.integers(len(history.items)))
        for position, drops in ((top, top_drops), (other, random_drops)):
            without = catalogue_scores(ranked.model, [history.without(position)])[0]
            drops.append(abs(scores[target] - without[target]))
    assert np.mean(top_drops) > 1.5 * np.mean(random_drops), (
        np.mean(top_drops), np.mean(random_drops)
    )


def test_catalogue_scores_equal_per_candidate_scores(
    planted: PlantedData, encoded: EncodedRatings, ranked: RankingTrainResult
) -> None:
    histories = list(histories_by_user(planted.table, encoded.item_ids).values())[:6]
    histories.append(History.empty())  # cold start
    whole = catalogue_scores(ranked.model, histories)
    assert np.isfinite(whole).all()
    for row, history in enumerate(histories):
        some = np.array([3, 50, 7, 111])
        out = ranking_scores(ranked.model, pad_batch([history.newest(64)], [some]))
        assert np.allclose(out[0].numpy(), whole[row, some], atol=1e-5)


@pytest.mark.parametrize("output", ["shared", "query"])
def test_served_scores_equal_forward_scores(output: str) -> None:
    # Random weights with every offset non-zero, so each term of the score is exercised.
    torch.manual_seed(0)
    config = RankingModelConfig(width=8, hops=3, output=output, recency=4)
    ranker = RankingModel(config, torch.randn(40, 12), SCALE).eval()
    with torch.no_grad():
        for parameter in ranker.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    rng = np.random.default_rng(0)
    histories = [
        History(rng.choice(40, n, replace=False), rng.integers(1, 6, n).astype(np.float32))
        for n in (9, 3, 0, 1)  # padded to 9; an empty one; one of a single item
    ]
    own = histories[0].items[2]  # a target in its own history may not attend to itself
    targets = [np.array([own, 5, 17]), np.arange(20, 30), np.array([1, 2]),
               histories[3].items]  # the only item: nothing left to attend to
    batch = pad_batch(histories, targets)
    with torch.inference_mode():
        expected = ranker(batch.hist_items, batch.hist_ratings, batch.hist_mask, batch.targets)
        expected = expected.score
    assert torch.allclose(ranking_scores(ranker, batch), expected, atol=1e-5)
    with torch.inference_mode():
        item_side = ranker.item_side()
    served = ranking_scores(ranker, batch, item_side)
    assert torch.allclose(served, expected, atol=1e-5)
    alone = ranking_scores(ranker, pad_batch(histories[1:2], targets[1:2]), item_side)
    assert torch.allclose(alone[0], served[1, :10], atol=1e-5)  # padding changes nothing
    every_item = torch.arange(40)
    with torch.inference_mode():
        shared = ranker.score(batch.hist_items, batch.hist_ratings, batch.hist_mask,
                              every_item, item_side)
        whole = ranker(batch.hist_items, batch.hist_ratings, batch.hist_mask, every_item)
    assert torch.allclose(shared, whole.score, atol=1e-5)
    # Leave-one-out: the whole history and each removal, equal to the real thing.
    for history, wanted in zip(histories, targets, strict=True):
        positions = np.arange(len(history))
        with torch.inference_mode():
            whole, attention, without = ranker.leave_one_out(
                torch.from_numpy(history.items), torch.from_numpy(history.ratings),
                torch.from_numpy(wanted), torch.from_numpy(positions), item_side,
            )
        real_whole = ranking_scores(ranker, pad_batch([history], [wanted]), item_side)[0]
        assert torch.allclose(whole, real_whole, atol=1e-5)
        if len(history) == 0:
            continue
        removed = [history.without(int(p)) for p in positions]
        real = ranking_scores(ranker, pad_batch(removed, [wanted] * len(removed)), item_side)
        assert torch.allclose(without, real, atol=1e-5)
        with torch.inference_mode():
            one = pad_batch([history], [wanted])
            maps = ranker(one.hist_items, one.hist_ratings, one.hist_mask, one.targets)
        assert torch.allclose(attention, maps.attention[0, :, : len(history)], atol=1e-6)


def test_only_a_target_in_its_own_history_is_masked_per_target() -> None:
    # Another history's items do not count, nor does padding (item 0 in a masked slot).
    hist_items = torch.tensor([[1, 2, 0], [3, 4, 5]])
    hist_mask = torch.tensor([[True, True, False], [True, True, True]])
    targets = torch.tensor([[3, 1, 0], [1, 5, 9]])
    found = _in_own_history(hist_items, hist_mask, targets, n_items=10)
    assert found.tolist() == [[False, True, False], [False, True, False]]


def test_cooccurrence_embeddings_put_co_picked_clusters_together(
    encoded: EncodedRatings, planted: PlantedData
) -> None:
    item_ids = encoded.item_ids
    vectors = cooccurrence_embeddings(encoded, 8).numpy()
    assert vectors.shape == (len(item_ids), 8)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ unit.T
    cluster = planted.item_cluster[[int(i[1:]) for i in item_ids.ids]]
    same = cluster[:, None] == cluster[None, :]
    np.fill_diagonal(same, False)
    other = cluster[:, None] != cluster[None, :]
    assert cosine[same].mean() > cosine[other].mean() + 0.2, (
        cosine[same].mean(), cosine[other].mean()
    )
    again = cooccurrence_embeddings(encoded, 8).numpy()
    assert np.array_equal(vectors, again)


def test_training_data_too_thin_to_validate_is_refused_clearly() -> None:
    table = RatingTable(
        users=np.array(["a", "a", "b", "b", "b"]),
        items=np.array(["x", "y", "x", "y", "z"]),
        ratings=np.array([5, 4, 3, 2, 1], np.float32),
        timestamps=np.arange(5, dtype=np.int64),
    )
    with pytest.raises(DataError, match="at least 4 ratings"):
        train_ranking_model(
            EncodedRatings.encode(table), torch.zeros(3, 4), SCALE, SMALL_RANK, progress=False
        )


def test_item_knn_scores_what_is_co_rated_with_the_history() -> None:
    x = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0]], np.float32)
    scores = ItemKnn(neighbours=2).fit(x).score(x[3:4])[0]
    assert scores[1] > scores[2] and scores[1] > scores[3]


def test_an_unliked_next_pick_weighs_unliked_weight_and_validation_counts_liked_only() -> None:
    # One user: x(5) y(2) z(4) w(1), in that order. A cut after x makes y, z, w the positives.
    table = RatingTable(
        users=np.array(["a"] * 4),
        items=np.array(["x", "y", "z", "w"]),
        ratings=np.array([5, 2, 4, 1], np.float32),
        timestamps=np.arange(4, dtype=np.int64),
    )
    data = EncodedRatings.encode(table)
    timelines = data.timelines
    config = replace(SMALL_RANK, horizon=3, unliked_weight=0.25, val_users=1.0)
    *_, positives, weights = _examples(
        timelines, timelines.lengths, np.array([0]), np.array([1]), config, SCALE.liked,
        torch.device("cpu"),
    )
    assert [data.item_ids.ids[i] for i in positives[0].tolist()] == ["y", "z", "w"]
    assert weights[0].tolist() == [0.25, 1.0, 0.25]
    lengths = timelines.lengths.copy()
    validation = _validation_task(
        timelines, lengths, 4, config, np.random.default_rng(0), SCALE.liked, SCALE.liked
    )
    task = validation.task
    assert task.relevant == [{data.item_ids.index("z")}]  # held out: z(4), w(1)
    assert validation.liked_task.relevant == task.relevant
    assert lengths.tolist() == [2]


def test_the_sparse_factorisation_equals_the_dense_one(
    encoded: EncodedRatings, monkeypatch: pytest.MonkeyPatch
) -> None:
    dense = cooccurrence_embeddings(encoded, 8).numpy()
    monkeypatch.setattr(item_embeddings, "DENSE_MAX_ITEMS", 0)  # Lanczos on the sparse PPMI
    sparse = cooccurrence_embeddings(encoded, 8).numpy()
    # Equal up to each column's sign: compare the item-item inner products.
    assert np.allclose(sparse @ sparse.T, dense @ dense.T, atol=1e-4)


def test_past_the_pair_budget_only_pairs_a_window_apart_count() -> None:
    table = RatingTable(
        users=np.array(["a"] * 4 + ["b"] * 2),
        items=np.array(["w", "x", "y", "z", "w", "z"]),
        ratings=np.ones(6, np.float32),
        timestamps=np.array([1, 2, 3, 4, 1, 2], np.int64),
    )
    data = EncodedRatings.encode(table)
    every = item_embeddings.cooccurrence_counts(data).toarray()
    index = {i: data.item_ids.index(i) for i in "wxyz"}
    assert every[index["w"], index["z"]] == 2 and every[index["x"], index["z"]] == 1
    # 6 ratings, budget 12: a window of 1, so only neighbours in time count.
    near = item_embeddings.cooccurrence_counts(data, pair_budget=12).toarray()
    assert near[index["w"], index["x"]] == 1 and near[index["x"], index["y"]] == 1
    assert near[index["w"], index["z"]] == 1  # b's two ratings are neighbours
    assert near[index["w"], index["y"]] == 0 and near[index["x"], index["z"]] == 0
    assert (near == near.T).all() and np.diag(near).sum() == 0


def test_a_large_catalogue_validates_on_sampled_candidates_and_refuses_the_softmax(
    encoded: EncodedRatings, trained: RatingTrainResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ranking, "FULL_CATALOGUE_MAX_ITEMS", 50)  # planted: 120 items
    monkeypatch.setattr(ranking, "VALIDATION_SAMPLE", 30)
    embeddings = frozen_item_embeddings(encoded, trained.model)
    with pytest.raises(DataError, match="sampled negatives"):
        train_ranking_model(encoded, embeddings, SCALE, SMALL_RANK, progress=False)
    config = replace(SMALL_RANK, objective="sampled", negatives=20, max_epochs=4)
    result = train_ranking_model(encoded, embeddings, SCALE, config, progress=False)
    # Planted picks are predictable: among 30 popular items, the held-out ones come early.
    assert result.validation_ndcg > 0.3, result.epochs


def test_only_a_history_of_fewer_than_two_distinct_items_can_leave_a_target_nothing() -> None:
    items = torch.tensor([[3, 8, 0], [4, 4, 9]])
    assert not _fewer_than_two_items(items, torch.tensor([[True, True, False], [True, True, True]]))
    # The same item twice: that item as a target attends to nothing.
    assert _fewer_than_two_items(items, torch.tensor([[True, True, False], [True, True, False]]))
    assert _fewer_than_two_items(items, torch.tensor([[True, False, False], [True, False, True]]))
    assert _fewer_than_two_items(items, torch.zeros(2, 3, dtype=torch.bool))  # empty
    assert _fewer_than_two_items(items[:, :0], torch.zeros(2, 0, dtype=torch.bool))


def reference_softmax_loss(model: RankingModel, hist_items: torch.Tensor,
                           hist_ratings: torch.Tensor, hist_mask: torch.Tensor,
                           positives: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The catalogue softmax written plainly: every target masked out of its own history."""
    scores = model(hist_items, hist_ratings, hist_mask, torch.arange(model.n_items)).score
    seen = torch.zeros_like(scores, dtype=torch.bool)
    for row in range(len(hist_items)):
        seen[row, hist_items[row][hist_mask[row]]] = True
        seen[row, positives[row]] = False
    log_p = torch.log_softmax(scores.masked_fill(seen, float("-inf")), dim=-1)
    picked = log_p.gather(1, positives) * weights
    return -(picked.sum(1) / weights.sum(1)).mean()


@pytest.mark.parametrize("repeat", [False, True])
def test_the_catalogue_softmax_skips_the_own_item_mask_without_changing_the_loss(
    repeat: bool,
) -> None:
    torch.manual_seed(0)
    ranker = RankingModel(RankingModelConfig(width=8, recency=4), torch.randn(30, 12), SCALE)
    with torch.no_grad():
        for parameter in ranker.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    hist_items = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 0]])
    hist_mask = torch.tensor([[True] * 4, [True, True, True, False]])
    hist_ratings = torch.tensor([[5.0, 1.0, 4.0, 3.0], [2.0, 5.0, 4.0, 0.0]])
    # A positive the history also holds (a timeline with a repeat) is scored as a target
    # that may not attend to itself.
    positives = torch.tensor([[9, 3 if repeat else 10], [11, 12]])
    weights = torch.tensor([[1.0, 0.5], [1.0, 1.0]])
    got = ranking._CatalogueSoftmax(30, torch.device("cpu")).loss(
        ranker, hist_items, hist_ratings, hist_mask, positives, weights)
    wanted = reference_softmax_loss(ranker, hist_items, hist_ratings, hist_mask, positives,
                                    weights)
    assert torch.allclose(got, wanted, atol=1e-6), (got, wanted)


def test_validation_scores_by_history_length_equal_one_batch_in_user_order(
    ranked: RankingTrainResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = ranked.model
    rng = np.random.default_rng(0)
    histories = [History(rng.choice(model.n_items, n, replace=False),
                         rng.integers(1, 6, n).astype(np.float32))
                 for n in (30, 2, 17, 1, 30, 9, 5)]
    # Two users a batch, so the length order decides which share one.
    monkeypatch.setattr(ranking, "VALIDATION_BATCH_FLOATS",
                        2 * model.n_items * model.config.max_history)
    found = _validation_scores(model, histories, torch.device("cpu"))
    np.testing.assert_allclose(found, catalogue_scores(model, histories), atol=1e-5)
