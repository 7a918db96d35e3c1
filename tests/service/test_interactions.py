"""Serving a model trained on interactions alone (no rating head): it ranks with no
predicted rating, carousels and similar items work, and whatever needs a predicted rating
answers 409 saying why. And a model of half stars takes ratings on its scale, refusing
others with a 422 that names it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import torch

from models.artifact import save_artifact
from models.data.encoded import EncodedRatings
from models.data.synthetic import PlantedData
from models.data.table import RatingScale
from models.networks.ranking import RankingModel
from models.networks.rating import RatingModel
from service.settings import Settings
from tests.conftest import SMALL_RANK, SMALL_TRAIN
from tests.helpers import liked_and_disliked, running


@pytest.fixture
async def clicks(settings: Settings, interactions_artifact_dir: Path
                 ) -> AsyncIterator[httpx.AsyncClient]:
    async for c in running(settings.model_copy(update={"artifact": interactions_artifact_dir})):
        yield c


async def picked(client: httpx.AsyncClient, user: str, items: list[str]) -> None:
    """Interactions are posted as ratings at the scale's top, as training read them."""
    ratings = [{"item_id": i, "rating": 5, "timestamp": 10 + n} for n, i in enumerate(items)]
    r = await client.post(f"/v1/users/{user}/ratings", json={"ratings": ratings})
    assert r.status_code == 200, r.text


async def test_the_model_says_it_has_no_rating_head(clicks: httpx.AsyncClient) -> None:
    body = (await clicks.get("/v1/model")).json()
    assert body["rating_head"] is False
    assert body["rating_scale"] == {"low": 1.0, "high": 5.0, "step": 1.0}


async def test_rank_orders_by_the_ranker_with_no_predicted_rating(
    clicks: httpx.AsyncClient, planted: PlantedData
) -> None:
    liked, _ = liked_and_disliked(planted, 5)
    await picked(clicks, "shopper", liked[:8])
    answers = {}
    for order in ("recommended", "ranking"):
        r = await clicks.post("/v1/rank", json={"user_id": "shopper", "k": 10, "order": order,
                                                "explain": True})
        assert r.status_code == 200, r.text
        answers[order] = r.json()
    items = answers["recommended"]["items"]
    assert len(items) == 10 and answers["recommended"]["order"] == "recommended"
    assert all(item["predicted_rating"] is None for item in items)
    assert not {item["item_id"] for item in items} & set(liked[:8])
    assert [(i["item_id"], i["score"]) for i in items] == [
        (i["item_id"], i["score"]) for i in answers["ranking"]["items"]]
    assert any(item["because"] for item in items)  # reasons: the ranker's leave-one-out


async def test_what_needs_a_rating_head_answers_409(clicks: httpx.AsyncClient) -> None:
    await picked(clicks, "u", ["i1", "i2"])
    refused = [
        await clicks.post("/v1/score", json={"user_id": "u", "item_ids": ["i3"]}),
        await clicks.post("/v1/rank", json={"user_id": "u", "order": "rating"}),
        await clicks.get("/v1/users/u/explanations", params={"item_id": "i3"}),
    ]
    for r in refused:
        assert r.status_code == 409, r.text
        detail = r.json()["detail"]
        assert "has no rating head" in detail and "train with a rating column" in detail
    assert "order=rating" in refused[1].json()["detail"]


async def test_carousels_and_similar_items_need_no_rating_head(
    clicks: httpx.AsyncClient, planted: PlantedData
) -> None:
    liked, _ = liked_and_disliked(planted, 2)
    await picked(clicks, "fan", liked[:6])
    r = await clicks.get("/v1/users/fan/because-you-watched", params={"rows": 2, "k": 3})
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert rows and all(item["predicted_rating"] is None for row in rows for item in row["items"])
    assert {row["anchor"]["item_id"] for row in rows} <= set(liked[:6])
    r = await clicks.get(f"/v1/items/{liked[0]}/similar", params={"k": 3})
    assert r.status_code == 200 and len(r.json()["items"]) == 3


@pytest.fixture(scope="module")
def half_star_artifact_dir(tmp_path_factory: pytest.TempPathFactory, planted: PlantedData,
                           encoded: EncodedRatings) -> Path:
    """Untrained models on a scale of half stars: what is checked here is the scale."""
    torch.manual_seed(0)
    scale = RatingScale(0.5, 5.0, 0.5)
    n = len(encoded.item_ids)
    return save_artifact(
        tmp_path_factory.mktemp("half-stars"),
        RatingModel(SMALL_TRAIN.model, n, scale).eval(),
        RankingModel(SMALL_RANK.model, torch.randn(n, 8), scale).eval(),
        encoded.item_ids, planted.catalogue,
        rating_train_config=SMALL_TRAIN.to_dict(), ranking_train_config=SMALL_RANK.to_dict(),
        data={"fingerprint": "untrained"}, metrics={},
    )


async def test_a_half_star_model_takes_its_scale_and_refuses_others(
    settings: Settings, half_star_artifact_dir: Path
) -> None:
    async for client in running(settings.model_copy(update={"artifact": half_star_artifact_dir})):
        assert (await client.get("/v1/model")).json()["rating_scale"] == {
            "low": 0.5, "high": 5.0, "step": 0.5}
        half = [{"item_id": "i1", "rating": 0.5}, {"item_id": "i2", "rating": 3.5}]
        r = await client.post("/v1/users/h/ratings", json={"ratings": half})
        assert r.status_code == 200, r.text
        for off in (0.25, 5.5):
            r = await client.post("/v1/users/h/ratings",
                                  json={"ratings": [{"item_id": "i3", "rating": off}]})
            assert r.status_code == 422
            assert r.json()["detail"] == (
                f"ratings[0].rating = {off} is outside the model's scale 0.5..5")
        r = await client.post("/v1/score", json={"user_id": "h", "item_ids": ["i3"]})
        assert r.status_code == 200
        r = await client.post("/v1/rank", json={"user_id": "h", "k": 3})
        assert r.status_code == 200
        assert all(isinstance(i["predicted_rating"], float) for i in r.json()["items"])
