"""The contract both models keep, one suite run over each (and over the ranker with its
item-to-item term): batched == single, saved == loaded, deterministic, an empty history is
served, a target never attends to itself, and a leave-one-out contribution equals really
removing the item."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from models.artifact import load_artifact, save_artifact
from models.data.encoded import EncodedRatings
from models.data.synthetic import PlantedData
from models.evaluation.rating import histories_by_user
from models.history import History, pad_batch
from models.inference.contributions import (
    Contributions,
    ranking_contributions,
    rating_contributions,
)
from models.inference.predictor import ExplainJob, Predictor, ScoreJob
from models.inference.scoring import predict_ratings, rating_output
from models.training.item_item import ease_weights
from models.training.ranking import RankingTrainResult
from models.training.rating import RatingTrainResult

CPU = torch.device("cpu")


@dataclass(frozen=True)
class Subject:
    """One model behind the calls the contract needs."""

    name: str
    model: torch.nn.Module
    scores: Callable[[list[History], list[np.ndarray]], list[np.ndarray]]
    attention: Callable[[History, np.ndarray], np.ndarray]  # (C, L)
    contributions: Callable[[History, np.ndarray, np.ndarray], Contributions]


def rating_subject(model: torch.nn.Module) -> Subject:
    def attention(history: History, targets: np.ndarray) -> np.ndarray:
        out = rating_output(model, pad_batch([history], [targets]))
        return out.attention[0, :, : len(history)].numpy()

    return Subject(
        "rating",
        model,
        lambda histories, targets: predict_ratings(model, histories, targets),
        attention,
        lambda history, targets, positions: rating_contributions(
            model, history, targets, positions, CPU
        ),
    )


def ranking_subject(model: torch.nn.Module) -> Subject:
    with torch.inference_mode():
        item_side = model.item_side()

    def scores(histories: list[History], targets: list[np.ndarray]) -> list[np.ndarray]:
        capped = [h.newest(model.config.max_history) for h in histories]
        with torch.inference_mode():
            batch = pad_batch(capped, targets)
            out = model.score(
                batch.hist_items, batch.hist_ratings, batch.hist_mask, batch.targets, item_side
            ).numpy()
        return [out[row, : len(t)] for row, t in enumerate(targets)]

    def attention(history: History, targets: np.ndarray) -> np.ndarray:
        batch = pad_batch([history], [targets])
        with torch.inference_mode():
            out = model(batch.hist_items, batch.hist_ratings, batch.hist_mask, batch.targets)
        return out.attention[0, :, : len(history)].numpy()

    return Subject(
        "ranking",
        model,
        scores,
        attention,
        lambda history, targets, positions: ranking_contributions(
            model, history, targets, positions, CPU, item_side
        ),
    )


def with_item_item(ranked: RankingTrainResult, encoded: EncodedRatings) -> torch.nn.Module:
    """The trained ranker plus an item-to-item term fitted on its data (its validation
    declines one on planted data, so the term is installed here by hand)."""
    timelines = encoded.timelines
    users = np.repeat(np.arange(len(timelines.lengths)), timelines.lengths)
    weights = ease_weights(users, timelines.items, ranked.model.n_items, reg=20.0)
    # gamma 0.5: a disliked history item weighs half in the term's mean.
    return copy.deepcopy(ranked.model).with_item_item(weights, 50.0, unliked=0.5)


@pytest.fixture(params=["rating", "ranking", "ranking+item-item"])
def subject(
    request: pytest.FixtureRequest, trained: RatingTrainResult, ranked: RankingTrainResult,
    encoded: EncodedRatings,
) -> Subject:
    if request.param == "rating":
        return rating_subject(trained.model)
    if request.param == "ranking":
        return ranking_subject(ranked.model)
    return ranking_subject(with_item_item(ranked, encoded))


@pytest.fixture
def histories(planted: PlantedData, encoded: EncodedRatings) -> list[History]:
    """Eight planted users of different lengths, and an empty history."""
    by_user = histories_by_user(planted.table, encoded.item_ids)
    return [by_user[f"u{u}"].newest(5 + 7 * u) for u in range(8)] + [History.empty()]


def targets_for(histories: list[History], n_items: int) -> list[np.ndarray]:
    return [np.arange(i, i + 4 + 5 * i) % n_items for i in range(len(histories))]


def test_batched_equals_single_and_repeats_exactly(
    subject: Subject, histories: list[History]
) -> None:
    targets = targets_for(histories, subject.model.n_items)
    together = subject.scores(histories, targets)
    again = subject.scores(histories, targets)
    for history, wanted, batched, repeat in zip(histories, targets, together, again, strict=True):
        [alone] = subject.scores([history], [wanted])
        np.testing.assert_array_equal(batched, repeat)
        np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_saved_equals_loaded(
    subject: Subject, histories: list[History], artifact_dir: Path, tmp_path: Path,
    planted: PlantedData, encoded: EncodedRatings, trained: RatingTrainResult,
) -> None:
    if getattr(subject.model, "item_item", None) is not None:
        artifact_dir = save_artifact(
            tmp_path, trained.model, subject.model, encoded.item_ids, planted.catalogue,
            rating_train_config={}, ranking_train_config={}, data={}, metrics={},
        )
    artifact = load_artifact(artifact_dir)
    loaded = artifact.rating_model if subject.name == "rating" else artifact.ranking_model
    reloaded = rating_subject(loaded) if subject.name == "rating" else ranking_subject(loaded)
    targets = targets_for(histories, subject.model.n_items)
    for before, after in zip(
        subject.scores(histories, targets), reloaded.scores(histories, targets), strict=True
    ):
        np.testing.assert_array_equal(before, after)
    assert not any(p.requires_grad for p in loaded.parameters())


def test_an_empty_history_is_served_the_same_for_everyone(subject: Subject) -> None:
    empty = History.empty()
    first, second = subject.scores([empty, empty], [np.array([0, 1]), np.array([1])])
    assert np.isfinite(first).all()
    assert first[1] == pytest.approx(second[0], abs=1e-6)
    assert subject.attention(empty, np.array([0, 1])).sum() == 0.0


def test_a_target_never_attends_to_itself(subject: Subject, histories: list[History]) -> None:
    history = histories[3]
    attention = subject.attention(history, history.items[[2, 5]])
    assert attention[0, 2] == 0.0 and attention[1, 5] == 0.0
    np.testing.assert_allclose(attention.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("length", [33, 64])
@pytest.mark.parametrize("newest_first", [False, True])
def test_leave_one_out_equals_really_removing_the_item(
    subject: Subject, length: int, newest_first: bool
) -> None:
    """64 items: longer than the ranker's recency window (50), all of which it reads.
    Positions in any order: newest first, the variants that move the recent items' ages
    come first rather than last."""
    rng = np.random.default_rng(length)
    history = History(rng.permutation(110)[:length], rng.integers(1, 6, length).astype(np.float32))
    targets = np.array([history.items[1], 111, 115, 119])  # the first is in the history
    positions = np.array([0, 1, 5, 20, length - 30, length - 2, length - 1])
    if newest_first:
        positions = positions[::-1].copy()
    found = subject.contributions(history, targets, positions)
    [whole] = subject.scores([history], [targets])
    np.testing.assert_allclose(found.prediction, whole, atol=1e-5)
    removed = subject.scores(
        [history.without(int(p)) for p in positions], [targets] * len(positions)
    )
    expected = whole[:, None] - np.stack(removed, axis=1)  # (C, P)
    np.testing.assert_allclose(found.contribution, expected, atol=1e-4)
    np.testing.assert_allclose(
        found.attention, subject.attention(history, targets)[:, positions], atol=1e-6
    )


def test_the_predictor_measures_only_what_each_model_reads(artifact_dir: Path) -> None:
    """Positions are the history's own; the ranker reads its newest `max_history` items
    (64 here), so positions are shifted onto that window and older ones are refused."""
    predictor = Predictor(load_artifact(artifact_dir), CPU)
    rng = np.random.default_rng(0)
    long = History(rng.permutation(100), rng.integers(1, 6, 100).astype(np.float32))
    window = long.newest(predictor.max_history)
    targets = np.array([100, 110])
    [found] = predictor.contributions([ExplainJob(long, targets, "ranking", np.array([99, 40]))])
    assert found.history is window or np.array_equal(found.history.items, window.items)
    shift = len(long) - len(window)
    [direct] = predictor.contributions(
        [ExplainJob(window, targets, "ranking", np.array([99, 40]) - shift)]
    )
    np.testing.assert_allclose(found.contribution, direct.contribution, atol=1e-6)
    with pytest.raises(ValueError, match="newest 64"):
        predictor.contributions([ExplainJob(long, targets, "ranking", np.array([0]))])
    [every] = predictor.contributions([ExplainJob(long, targets, "rating")])
    assert every.contribution.shape == (2, 100)  # the rating model reads up to 512
    # The recommended score decomposes exactly; the ranker never sees the 36 oldest items.
    [blend] = predictor.contributions([ExplainJob(long, targets, "recommended")])
    [ranked] = predictor.contributions([ExplainJob(long, targets, "ranking")])
    expected = predictor.like_weight * every.contribution
    expected[:, shift:] += ranked.contribution
    np.testing.assert_allclose(blend.contribution, expected, atol=1e-5)
    np.testing.assert_allclose(
        blend.prediction,
        ranked.prediction + predictor.like_weight * (every.prediction - 3.0),
        atol=1e-5,
    )


@pytest.mark.parametrize("order", ["recommended", "rating"])
def test_an_explained_rank_is_the_plain_rank_with_its_contributions(
    artifact_dir: Path, order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rank that explains computes the rating model's history offset once, from the
    leave-one-out of the history it needs anyway: the same ratings and order as the plain
    rank, the same contributions as explaining afterwards, alone or beside a plain job.
    The history's newest ten items were rated within the session offset's reach of `at`."""
    artifact = load_artifact(artifact_dir)
    model = artifact.rating_model
    model.config = replace(model.config, history_offset_shrink=3.0, session_seconds=600.0,
                           session_shrink=1.0)
    predictor = Predictor(artifact, CPU)
    rng = np.random.default_rng(1)
    at = 1_700_000_000
    times = np.r_[at - 86_400 * np.arange(30, 0, -1), at - 60 * np.arange(10, 0, -1)]
    history = History(rng.permutation(100)[:40], rng.integers(1, 6, 40).astype(np.float32),
                      times)
    targets = np.setdiff1d(np.arange(120), history.items)
    [plain] = predictor.run([ScoreJob(history, targets, order, top=5, at=at)])
    [timeless] = predictor.run([ScoreJob(history, targets, order, top=5)])
    assert np.nanmax(np.abs(plain.ratings - timeless.ratings)) > 1e-3
    explained = ScoreJob(history, targets, order, top=5, explain=True, at=at)
    offsets = []
    computed = predictor.rating_model.history_offset
    monkeypatch.setattr(predictor.rating_model, "history_offset",
                        lambda *args: offsets.append(args) or computed(*args))
    [alone] = predictor.run([explained])
    assert offsets == []
    [_, beside] = predictor.run([ScoreJob(history, targets, order, top=5, at=at), explained])
    [after] = predictor.contributions([ExplainJob(history, targets[plain.best], order, at=at)])
    for found in (alone, beside):
        np.testing.assert_array_equal(found.best, plain.best)
        np.testing.assert_allclose(found.ratings, plain.ratings, atol=1e-5)
        np.testing.assert_allclose(found.contributions.contribution, after.contribution,
                                   atol=1e-5)
        np.testing.assert_allclose(found.contributions.prediction, after.prediction, atol=1e-5)
