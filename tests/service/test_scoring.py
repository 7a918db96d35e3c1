"""Score, rank, explain: read-your-writes, new users, determinism, micro-batching."""

from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import torch

from models.artifact import load_artifact, save_artifact
from models.data.encoded import EncodedRatings
from models.data.synthetic import PlantedData
from models.history import History
from models.inference.predictor import Predictor, ScoreJob, best_first
from models.training.ranking import RankingTrainResult
from models.training.rating import RatingTrainResult
from service.app import create_app
from service.recommender import _unrated
from service.settings import Settings
from tests.helpers import as_ratings, liked_and_disliked, running


async def scores(client: httpx.AsyncClient, body: dict) -> dict[str, float]:
    r = await client.post("/v1/score", json=body)
    assert r.status_code == 200, r.text
    return {s["item_id"]: s["predicted_rating"] for s in r.json()["scores"]}


async def test_a_new_user_is_served_from_their_first_ratings(
    client: httpx.AsyncClient, planted: PlantedData
) -> None:
    liked, disliked = liked_and_disliked(planted)
    probe = {"user_id": "newcomer", "item_ids": [liked[-1], disliked[-1]]}
    cold = (await client.post("/v1/score", json=probe)).json()
    assert cold["cold_start"] is True
    await client.post(
        "/v1/users/newcomer/ratings", json={"ratings": as_ratings(liked[:6], disliked[:6])}
    )
    warm = await client.post("/v1/score", json=probe)
    assert warm.json()["cold_start"] is False
    got = {s["item_id"]: s["predicted_rating"] for s in warm.json()["scores"]}
    assert got[liked[-1]] - got[disliked[-1]] > 1.5


async def test_read_your_writes(client: httpx.AsyncClient, planted: PlantedData) -> None:
    liked, disliked = liked_and_disliked(planted)
    await client.post("/v1/users/rw/ratings", json={"ratings": as_ratings(liked[:3], [])})
    target = disliked[-1]
    before = await scores(client, {"user_id": "rw", "item_ids": [target]})
    await client.post("/v1/users/rw/ratings", json={"ratings": as_ratings([], disliked[:8])})
    after = await scores(client, {"user_id": "rw", "item_ids": [target]})
    assert after[target] < before[target] - 0.3


async def test_inline_ratings_store_nothing_and_match_stored(
    client: httpx.AsyncClient, planted: PlantedData
) -> None:
    liked, disliked = liked_and_disliked(planted, 3)
    ratings = as_ratings(liked[:5], disliked[:5])
    items = liked[-3:] + disliked[-3:]
    inline = await scores(client, {"ratings": ratings, "item_ids": items})
    assert (await client.get("/v1/users/whatif/ratings")).json()["history_size"] == 0
    await client.post("/v1/users/whatif/ratings", json={"ratings": ratings})
    stored = await scores(client, {"user_id": "whatif", "item_ids": items})
    assert inline == stored
    assert stored == await scores(client, {"user_id": "whatif", "item_ids": items})


async def test_score_rejects_unknown_items_and_ambiguous_bodies(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/score", json={"user_id": "x", "item_ids": ["i1", "zzz"]})
    assert r.status_code == 422 and "'zzz'" in r.json()["detail"]
    r = await client.post("/v1/score", json={"user_id": "x", "ratings": [], "item_ids": ["i1"]})
    assert r.status_code == 422 and "exactly one" in str(r.json()["detail"])


async def test_rank_whole_catalogue_excludes_rated_and_follows_each_order(
    client: httpx.AsyncClient, planted: PlantedData
) -> None:
    liked, disliked = liked_and_disliked(planted, 5)
    # Like the planted users, who pick their liked clusters more often than the rest.
    ratings = as_ratings(liked[:8], disliked[:2])
    rated = liked[:8] + disliked[:2]
    await client.post("/v1/users/ranker/ratings", json={"ratings": ratings})
    for order, enough_liked in (("ranking", 7), ("rating", 8)):
        r = await client.post("/v1/rank", json={"user_id": "ranker", "k": 10, "order": order})
        body = r.json()
        assert r.status_code == 200 and body["order"] == order and len(body["items"]) == 10
        ids = [x["item_id"] for x in body["items"]]
        assert not set(ids) & set(rated)
        assert sum(i in liked for i in ids) >= enough_liked, (order, ids)
        assert [x["score"] for x in body["items"]] == sorted(
            (x["score"] for x in body["items"]), reverse=True
        )


async def test_rank_with_candidates_and_explanations(
    client: httpx.AsyncClient, planted: PlantedData
) -> None:
    liked, disliked = liked_and_disliked(planted, 7)
    ratings = as_ratings(liked[:5], disliked[:5])
    candidates = liked[-4:] + disliked[-4:]
    for order in ("rating", "ranking", "recommended"):
        r = await client.post(
            "/v1/rank",
            json={"ratings": ratings, "candidates": candidates, "k": 3, "explain": True,
                  "order": order},
        )
        items = r.json()["items"]
        assert len(items) == 3 and all(x["item_id"] in candidates for x in items)
        if order != "ranking":  # the predicted ratings know the user's dislikes
            assert all(x["item_id"] in liked[-4:] for x in items)
        for item in items:
            named = item["because"] + item["despite"]
            # A rating clipped to the top of the scale moves with no single item.
            assert len(named) <= 6
            assert named or (order == "rating" and item["predicted_rating"] == 5.0)
            assert len(item["because"]) <= 3 and len(item["despite"]) <= 3
            # Reasons raise the score, items that lower it are named apart.
            assert all(b["contribution"] > 0 for b in item["because"])
            assert all(d["contribution"] < 0 for d in item["despite"])
            assert all(b["item_id"] in liked[:5] + disliked[:5] for b in named)


async def test_the_largest_contribution_is_the_largest_real_drop(
    client: httpx.AsyncClient, planted: PlantedData
) -> None:
    liked, disliked = liked_and_disliked(planted, 2)
    ratings = as_ratings(liked[:6], disliked[:6])
    await client.post("/v1/users/why/ratings", json={"ratings": ratings})
    target = disliked[-1]  # liked ones are predicted near 5, where the scale clamps them
    r = await client.get("/v1/users/why/explanations", params={"item_id": target, "k": 12})
    body = r.json()
    named = body["because"] + body["despite"]
    assert r.status_code == 200
    full = (await scores(client, {"ratings": ratings, "item_ids": [target]}))[target]
    assert np.isclose(body["predicted_rating"], full, atol=1e-5)
    drops = {}
    for left_out in ratings:
        rest = [x for x in ratings if x is not left_out]
        drops[left_out["item_id"]] = (
            full - (await scores(client, {"ratings": rest, "item_ids": [target]}))[target]
        )
    # Every item that moves the prediction is named, on the side it moves it; one that
    # changes nothing (the rating is clamped to the scale) is neither a reason nor against.
    moving = {i for i, d in drops.items() if abs(d) > 1e-5}
    assert {b["item_id"] for b in named} == moving
    assert body["because"][0]["item_id"] == max(drops, key=drops.get)
    if body["despite"]:
        assert body["despite"][0]["item_id"] == min(drops, key=drops.get)
    for b in named:
        assert np.isclose(b["contribution"], drops[b["item_id"]], atol=1e-4)
    assert sum(b["attention"] for b in named) <= 1.0 + 1e-4


async def test_explanation_for_a_user_without_history(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/users/ghost/explanations", params={"item_id": "i1"})
    body = r.json()
    assert r.status_code == 200 and body["because"] == [] and body["cold_start"] is True
    assert "default-user" in body["note"]


async def test_because_you_watched_rows(client: httpx.AsyncClient, planted: PlantedData) -> None:
    liked, disliked = liked_and_disliked(planted, 4)
    await client.post(
        "/v1/users/home/ratings", json={"ratings": as_ratings(liked[:8], disliked[:4])}
    )
    r = await client.get("/v1/users/home/because-you-watched", params={"rows": 3, "k": 5})
    rows = r.json()["rows"]
    assert r.status_code == 200 and 1 <= len(rows) <= 3
    anchors = [row["anchor"]["item_id"] for row in rows]
    assert anchors == list(reversed(liked[:8]))[: len(rows)]  # newest liked first
    shown = [x["item_id"] for row in rows for x in row["items"]]
    assert len(shown) == 3 * 5 and len(shown) == len(set(shown))  # full rows, no repeats
    # Every item is truly pushed up by its anchor: removing the anchor lowers its
    # recommended score; within a row the best come first.
    history = as_ratings(liked[:8], disliked[:4])

    async def recommended_score(ratings: list[dict], item_id: str) -> float:
        body = {"ratings": ratings, "candidates": [item_id], "k": 1}
        r = await client.post("/v1/rank", json=body)
        assert r.status_code == 200, r.text
        return r.json()["items"][0]["score"]

    for row in rows:
        scores_in_row = [x["score"] for x in row["items"]]
        assert scores_in_row == sorted(scores_in_row, reverse=True)
        anchor = row["anchor"]["item_id"]
        without = [x for x in history if x["item_id"] != anchor]
        for item in row["items"][:3]:
            full = await recommended_score(history, item["item_id"])
            assert np.isclose(full, item["score"], atol=1e-4)
            assert full - await recommended_score(without, item["item_id"]) > 0


async def test_micro_batched_scores_equal_single_requests(
    client: httpx.AsyncClient, planted: PlantedData
) -> None:
    bodies = []
    for user in range(24):
        liked, disliked = liked_and_disliked(planted, user)
        bodies.append(
            {
                "ratings": as_ratings(liked[: 2 + user % 5], disliked[: 1 + user % 3]),
                "item_ids": (liked[-5:] + disliked[-(1 + user % 7) :]),
            }
        )
    alone = [await scores(client, b) for b in bodies]
    together = await asyncio.gather(*(scores(client, b) for b in bodies))
    for a, t in zip(alone, together, strict=True):
        assert a.keys() == t.keys()
        assert np.allclose(list(a.values()), list(t.values()), atol=1e-5)
    metrics = (await client.get("/metrics")).text
    batches = [
        line for line in metrics.splitlines() if line.startswith("because_scorer_batch_size_count")
    ]
    assert batches and float(batches[0].split()[-1]) < 2 * len(bodies)  # some were batched


async def test_rank_orders_by_the_ranker_and_explains_with_its_exact_drops(
    client: httpx.AsyncClient, planted: PlantedData
) -> None:
    liked, disliked = liked_and_disliked(planted, 9)
    ratings = as_ratings(liked[:5], disliked[:5])
    candidates = liked[-4:] + disliked[-4:]
    body = {"ratings": ratings, "candidates": candidates, "k": 8, "explain": True,
            "order": "ranking"}
    ranked = (await client.post("/v1/rank", json=body)).json()
    assert ranked["order"] == "ranking" and len(ranked["items"]) == 8
    rated = await scores(client, {"ratings": ratings, "item_ids": candidates})
    for item in ranked["items"]:
        assert np.isclose(item["predicted_rating"], rated[item["item_id"]], atol=1e-5)
    top = ranked["items"][0]
    for because in top["because"]:
        rest = [x for x in ratings if x["item_id"] != because["item_id"]]
        again = await client.post(
            "/v1/rank", json={"ratings": rest, "candidates": [top["item_id"]], "k": 1,
                              "order": "ranking"}
        )
        drop = top["score"] - again.json()["items"][0]["score"]
        assert np.isclose(drop, because["contribution"], atol=1e-4)

    by_rating = await client.post("/v1/rank", json={**body, "order": "rating", "explain": False})
    items = by_rating.json()["items"]
    assert by_rating.json()["order"] == "rating"
    assert [x["score"] for x in items] == [x["predicted_rating"] for x in items]
    assert [x["score"] for x in items] == sorted((x["score"] for x in items), reverse=True)


async def test_retrieval_path_ranks_faiss_candidates_like_the_exhaustive_path(
    settings: Settings, planted: PlantedData
) -> None:
    """Above `exhaustive_max_items`, candidates come from FAISS; with enough neighbours per
    query the pool covers the catalogue and the top k equals the exhaustive top k."""
    liked, disliked = liked_and_disliked(planted, 11)
    body = {"ratings": as_ratings(liked[:8], disliked[:2]), "k": 10}
    tops = []
    for limits in ({}, {"exhaustive_max_items": 0, "retrieval_per_query": 200}):
        app = create_app(settings.model_copy(update=limits))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://b") as c:
                r = await c.post("/v1/rank", json=body)
                assert r.status_code == 200
                tops.append([x["item_id"] for x in r.json()["items"]])
    assert len(tops[0]) == 10 and tops[0] == tops[1]

    narrow = settings.model_copy(
        update={"exhaustive_max_items": 0, "retrieval_per_query": 3, "retrieval_popular": 0}
    )
    app = create_app(narrow)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as c:
            items = (await c.post("/v1/rank", json={**body, "k": 100})).json()["items"]
    # 10 history items as queries x 3 neighbours: a small pool, not the catalogue
    assert 0 < len(items) <= 10 * 3


def test_the_top_k_order_is_the_head_of_the_full_order() -> None:
    # Few distinct scores: many ties, some at the border of the top k.
    rng = np.random.default_rng(0)
    targets = rng.permutation(200)
    scores = rng.integers(0, 12, 200).astype(np.float32)
    full = best_first(targets, scores)
    assert list(scores[full]) == sorted(scores, reverse=True)
    for k in (1, 5, 17, 199, 200, 500):
        assert np.array_equal(best_first(targets, scores, k), full[:k])
    assert len(best_first(targets, scores, 0)) == 0


def test_unrated_drops_exactly_the_history_items_from_a_sorted_pool() -> None:
    rng = np.random.default_rng(0)
    for pool_size, history_size in [(0, 5), (50, 0), (50, 30), (1, 1), (300, 200)]:
        pool = np.unique(rng.integers(0, 400, pool_size)).astype(np.int64)
        items = rng.integers(0, 400, history_size).astype(np.int64)  # repeats too
        history = History(items, np.full(history_size, 4.0, np.float32))
        assert np.array_equal(_unrated(pool, history), pool[~np.isin(pool, items)])


async def test_recommended_is_the_logit_plus_the_weighted_rating_and_explains_exactly(
    client: httpx.AsyncClient, planted: PlantedData, settings: Settings
) -> None:
    liked, disliked = liked_and_disliked(planted, 11)
    ratings = as_ratings(liked[:6], disliked[:4])
    candidates = liked[-5:] + disliked[-5:]
    body = {"ratings": ratings, "candidates": candidates, "k": 10}
    recommended = (await client.post("/v1/rank", json={**body, "explain": True})).json()
    assert recommended["order"] == "recommended"
    logits = {
        x["item_id"]: x["score"]
        for x in (await client.post("/v1/rank", json={**body, "order": "ranking"})).json()[
            "items"
        ]
    }
    # What the rating model expects the user to dislike comes last; else by score.
    tiers = [(x["predicted_rating"] >= 3.0, x["score"]) for x in recommended["items"]]
    assert tiers == sorted(tiers, reverse=True)
    assert any(not liked for liked, _ in tiers)  # the disliked candidates were ranked too
    for item in recommended["items"]:
        expected = logits[item["item_id"]] + settings.like_weight * (
            item["predicted_rating"] - 3.0
        )
        assert np.isclose(item["score"], expected, atol=1e-4)
    top = recommended["items"][0]
    for reason in top["because"] + top["despite"]:
        rest = [x for x in ratings if x["item_id"] != reason["item_id"]]
        again = await client.post(
            "/v1/rank", json={"ratings": rest, "candidates": [top["item_id"]], "k": 1}
        )
        drop = top["score"] - again.json()["items"][0]["score"]
        assert np.isclose(drop, reason["contribution"], atol=1e-4)


async def test_ratings_given_just_now_shift_the_predictions_by_their_session(
    tmp_path: Path, settings: Settings, planted: PlantedData, encoded: EncodedRatings,
    trained: RatingTrainResult, ranked: RankingTrainResult,
) -> None:
    """The service predicts for now: with a session offset, a history rated minutes ago
    moves the predictions by its residuals, the same ratings given long ago do not."""
    model = copy.deepcopy(trained.model)
    model.config = replace(model.config, history_offset_shrink=3.0, session_seconds=600.0,
                           session_shrink=1.0)
    artifact_dir = save_artifact(
        tmp_path / "session", model, ranked.model, encoded.item_ids, planted.catalogue,
        rating_train_config={}, ranking_train_config={}, data={}, metrics={})
    liked, disliked = liked_and_disliked(planted)
    probe = liked[-4:] + disliked[-4:]
    # Liked items rated low and disliked ones high: residuals a session offset weighs.
    contrary = [{"item_id": i, "rating": 2} for i in liked[:4]] + [
        {"item_id": i, "rating": 4} for i in disliked[:4]]
    now = int(time.time())
    async for client in running(settings.model_copy(update={"artifact": artifact_dir})):
        for user, when in (("fresh", now - 30), ("old", 1_000_000_000)):
            ratings = [{**r, "timestamp": when + n} for n, r in enumerate(contrary)]
            r = await client.post(f"/v1/users/{user}/ratings", json={"ratings": ratings})
            assert r.status_code == 200, r.text
        fresh = await scores(client, {"user_id": "fresh", "item_ids": probe})
        old = await scores(client, {"user_id": "old", "item_ids": probe})
        inline = await scores(client, {"ratings": contrary, "item_ids": probe})  # server time
    predictor = Predictor(load_artifact(artifact_dir), torch.device("cpu"))
    history = History(encoded.item_ids.encode(np.array([r["item_id"] for r in contrary])),
                      np.array([r["rating"] for r in contrary], np.float32))
    [timeless] = predictor.run([ScoreJob(history, encoded.item_ids.encode(np.array(probe)))])
    np.testing.assert_allclose([old[i] for i in probe], timeless.ratings, atol=1e-5)
    assert max(abs(fresh[i] - old[i]) for i in probe) > 1e-2
    np.testing.assert_allclose([inline[i] for i in probe], [fresh[i] for i in probe],
                               atol=0.05)
