"""The living catalogue and the model lifecycle, against a real Redis: items put, retired
and listed; a rating for an item the model was not trained on stored and folded in; two
app instances agreeing on a folded item; versions published, swapped under concurrent
requests, refused when damaged and rolled back exactly; histories exported for retraining.

Waits (for fold-in, for a swap) poll with generous deadlines: they wait for an outcome,
they never assert how fast it came."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from models.artifact import load_artifact, save_artifact
from models.data.readers import read_ratings
from service.events import EventLog
from service.exporter import export_ratings
from service.item_codes import ItemCodes
from service.keys import Keys
from service.model_store import ModelPointer, ModelStore
from service.rating_store import RatingStore
from service.redis_client import redis_connection
from service.settings import Settings
from tests.helpers import as_ratings, liked_and_disliked, running

app = asynccontextmanager(running)  # `async with app(settings) as client:`
DEADLINE_S = 60.0  # a starved 2-core machine still folds an item well within this


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def live(settings: Settings) -> Settings:
    return settings.model_copy(update={"fold_interval_s": 0.05, "model_check_s": 0.5})


@pytest.fixture
async def client(live: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for c in running(live):
        yield c


async def embedded(client: httpx.AsyncClient, item_id: str) -> str:
    return (await client.get(f"/v1/items/{item_id}")).json()["embedded"]


# -- the catalogue ------------------------------------------------------------------------


async def test_put_creates_then_updates_and_get_says_how_the_model_knows_it(
    client: httpx.AsyncClient,
) -> None:
    body = {"title": "Brand New", "genres": ["c1"], "attributes": {"year": 2026}}
    assert (await client.put("/v1/items/new-a", json=body)).status_code == 201
    r = await client.put("/v1/items/new-a", json={**body, "title": "Brand New (cut)"})
    assert r.status_code == 200 and r.json()["title"] == "Brand New (cut)"
    trained = (await client.get("/v1/items/i1")).json()
    assert trained["embedded"] == "trained" and trained["retired"] is False
    new = (await client.get("/v1/items/new-a")).json()
    assert new["attributes"] == {"year": 2026} and new["embedded"] in ("none", "attributes")
    assert (await client.get("/v1/items/never-put")).status_code == 404


async def test_a_retired_item_is_never_returned_but_keeps_its_ratings(
    client: httpx.AsyncClient, planted
) -> None:
    liked, disliked = liked_and_disliked(planted)
    await client.post("/v1/users/ret/ratings", json={"ratings": as_ratings(liked[:5], [])})
    top = (await client.post("/v1/rank", json={"user_id": "ret", "k": 5})).json()["items"]
    gone = top[0]["item_id"]
    assert (await client.delete(f"/v1/items/{gone}")).status_code == 204
    assert (await client.delete("/v1/items/never-put")).status_code == 404
    assert (await client.get(f"/v1/items/{gone}")).json()["retired"] is True
    every = [i for i in liked + disliked]
    for asked in (
        {"user_id": "ret", "k": 50},
        {"user_id": "ret", "k": 50, "candidates": every},
        {"user_id": "ret", "k": 50, "order": "ranking"},
    ):
        ranked = (await client.post("/v1/rank", json=asked)).json()["items"]
        assert gone not in [x["item_id"] for x in ranked]
    for item in liked[:5]:
        similar = (await client.get(f"/v1/items/{item}/similar", params={"k": 50})).json()
        assert gone not in [x["item_id"] for x in similar["items"]]
    # Still rateable, still in the history, still a reason.
    r = await client.post("/v1/users/ret/ratings", json={"ratings": [{"item_id": gone,
                                                                       "rating": 5}]})
    assert r.status_code == 200
    history = (await client.get("/v1/users/ret/ratings")).json()["ratings"]
    assert gone in [x["item_id"] for x in history]
    # Put again: revived.
    r = await client.put(f"/v1/items/{gone}", json={"title": "back"})
    assert r.status_code == 200 and r.json()["retired"] is False


async def test_items_page_by_cursor_and_filter_titles(client: httpx.AsyncClient) -> None:
    seen, cursor = [], None
    while True:
        params = {"limit": 25} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/items", params=params)).json()
        seen += [x["item_id"] for x in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 120 and seen == sorted(seen)
    await client.put("/v1/items/zz-1", json={"title": "The Quiet NEEDLE"})
    found = (await client.get("/v1/items", params={"q": "needle", "limit": 5})).json()
    assert [x["item_id"] for x in found["items"]] == ["zz-1"]


async def test_an_item_in_no_catalogue_is_refused_and_nothing_stored(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/v1/users/u9/ratings", json={"ratings": [
        {"item_id": "i1", "rating": 4}, {"item_id": "nowhere", "rating": 4}]})
    assert r.status_code == 422 and "nowhere" in r.json()["detail"]
    assert (await client.get("/v1/users/u9/ratings")).json()["history_size"] == 0


# -- fold-in ------------------------------------------------------------------------------


async def fold_new_item(client: httpx.AsyncClient, planted, raters: int = 4) -> list[str]:
    """A new item put in cluster-0 users' taste, rated 5 by `raters` users who like what
    user 0 likes; returns what those users like."""
    liked, _ = liked_and_disliked(planted)
    await client.put("/v1/items/fresh", json={"title": "Fresh", "genres": ["c0"]})
    for n in range(raters):
        ratings = as_ratings(liked[n : n + 8], []) + [
            {"item_id": "fresh", "rating": 5, "timestamp": 1000 + n}]
        r = await client.post(f"/v1/users/fan{n}/ratings", json={"ratings": ratings})
        assert r.status_code == 200  # stored though no model knows the item yet

    async def folded() -> bool:
        return await embedded(client, "fresh") == "folded"

    await until(folded, "the new item folded in")
    return liked


async def test_a_new_items_ratings_are_stored_then_fold_in_shapes_predictions(
    client: httpx.AsyncClient, planted
) -> None:
    liked = await fold_new_item(client, planted)
    model = (await client.get("/v1/model")).json()
    assert model["items_folded"] >= 1 and model["items_trained"] == 120
    # The item is scored, ranked and explained like a trained one.
    scored = (await client.post("/v1/score", json={"user_id": "fan0",
                                                  "item_ids": ["fresh"]})).json()
    assert scored["scores"][0]["predicted_rating"] > 3.0
    fan = {"ratings": as_ratings(liked[:8], []), "candidates": ["fresh"], "k": 1}
    assert (await client.post("/v1/rank", json=fan)).json()["items"][0]["item_id"] == "fresh"
    similar = (await client.get("/v1/items/fresh/similar", params={"k": 5})).json()
    assert len(similar["items"]) == 5
    # Rated by this user, it shapes the user's other predictions (it is in the history).
    before = (await client.post("/v1/score", json={"ratings": as_ratings(liked[:3], []),
                                                  "item_ids": liked[3:6]})).json()
    with_it = as_ratings(liked[:3], []) + [{"item_id": "fresh", "rating": 1, "timestamp": 99}]
    after = (await client.post("/v1/score", json={"ratings": with_it,
                                                 "item_ids": liked[3:6]})).json()
    assert before["scores"] != after["scores"]
    # A target whose rating is not clamped at the scale's end, where no removal moves it.
    _, disliked = liked_and_disliked(planted)
    targets = liked[9:] + disliked
    scores = (await client.post("/v1/score", json={"user_id": "fan0",
                                                  "item_ids": targets})).json()["scores"]
    inside = next(x["item_id"] for x in scores if 1.05 < x["predicted_rating"] < 4.95)
    why = (await client.get("/v1/users/fan0/explanations",
                            params={"item_id": inside, "k": 20})).json()
    assert "fresh" in [x["item_id"] for x in why["because"] + why["despite"]], why


async def test_two_app_instances_give_equal_scores_for_a_folded_item(
    live: Settings, planted
) -> None:
    async with app(live) as first, app(live) as second:
        if True:
            liked = await fold_new_item(first, planted)

            async def both_folded() -> bool:
                return await embedded(second, "fresh") == "folded"

            await until(both_folded, "the second instance loaded the folded item")
            ask = {"ratings": as_ratings(liked[:6], []), "item_ids": ["fresh", liked[7]]}
            a = (await first.post("/v1/score", json=ask)).json()
            b = (await second.post("/v1/score", json=ask)).json()
            assert a["scores"] == b["scores"] and a["model_version"] == b["model_version"]


# -- versions -----------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path, artifact_dir: Path) -> tuple[ModelStore, str, str]:
    """A store holding the test artifact and a second version (its item biases moved)."""
    other = tmp_path / "other"
    artifact = load_artifact(artifact_dir)
    with_bias = artifact.rating_model.item_bias.weight
    with_bias.data += 0.3 * (with_bias.data.sign() + 0.1)
    save_artifact(
        other, artifact.rating_model, artifact.ranking_model, artifact.item_ids,
        artifact.catalogue, rating_train_config=artifact.manifest["rating"],
        ranking_train_config=artifact.manifest["ranking"], data=artifact.manifest["data"],
        metrics={},
    )
    models = ModelStore(tmp_path / "store")
    first, _ = models.publish(artifact_dir)
    second, _ = models.publish(other)
    assert first != second
    return models, first, second


async def activate(settings: Settings, version: str) -> None:
    async with redis_connection(settings) as redis_client:
        keys = Keys(settings.key_prefix)
        await ModelPointer(redis_client, keys, EventLog(redis_client, keys)).activate(version)


@pytest.fixture
async def from_store(
    live: Settings, store: tuple[ModelStore, str, str]
) -> tuple[Settings, ModelStore, str, str]:
    """Settings that serve from the store, its first version current."""
    models, first, second = store
    settings = live.model_copy(update={"store": models.root})
    await activate(settings, first)
    return settings, models, first, second


async def serving(client: httpx.AsyncClient, version: str) -> bool:
    return (await client.get("/v1/model")).json()["version"] == version


async def model_info(client: httpx.AsyncClient) -> list[str]:
    """The because_model_info series /metrics holds: the served version's alone."""
    text = (await client.get("/metrics")).text
    return [s.labels["version"] for family in text_string_to_metric_families(text)
            if family.name == "because_model_info" for s in family.samples if s.value == 1]


async def test_a_swap_under_concurrent_requests_fails_none_and_rolls_back_exactly(
    from_store: tuple[Settings, ModelStore, str, str], planted
) -> None:
    settings, _, first, second = from_store
    liked, disliked = liked_and_disliked(planted)
    ask = {"ratings": as_ratings(liked[:6], disliked[:2]), "k": 10, "explain": True}
    async with app(settings) as client:
        before = (await client.post("/v1/rank", json=ask)).json()
        assert before["model_version"] == first
        assert await model_info(client) == [first]
        answers: list[httpx.Response] = []
        stop = asyncio.Event()

        async def load() -> None:
            while not stop.is_set():
                answers.append(await client.post("/v1/rank", json=ask))

        workers = [asyncio.create_task(load()) for _ in range(8)]
        await asyncio.sleep(0.2)
        await activate(settings, second)
        await until(lambda: serving(client, second), "the swap to the second version")
        assert await model_info(client) == [second]
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*workers)
        assert answers and all(r.status_code == 200 for r in answers)
        versions = [r.json()["model_version"] for r in answers]
        assert set(versions) <= {first, second} and second in versions
        for r in answers:  # one version from start to end: its scores are that version's
            if r.json()["model_version"] == first:
                assert r.json()["items"] == before["items"]
        state = (await client.get("/v1/model")).json()
        assert state["previous"] == first and state["last_error"] is None
        swapped = (await client.post("/v1/rank", json=ask)).json()
        assert swapped["items"] != before["items"]

        await activate(settings, first)  # the rollback
        await until(lambda: serving(client, first), "the rollback")
        assert await model_info(client) == [first]
        assert (await client.post("/v1/rank", json=ask)).json() == before


async def test_a_damaged_version_is_refused_while_the_old_one_serves(
    from_store: tuple[Settings, ModelStore, str, str], planted
) -> None:
    settings, models, first, second = from_store
    weights = models.folder(second) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-64])  # truncated after publishing
    liked, _ = liked_and_disliked(planted)
    async with app(settings) as client:
        await activate(settings, second)

        async def refused() -> bool:
            return (await client.get("/v1/model")).json()["last_error"] is not None

        await until(refused, "the damaged version refused")
        state = (await client.get("/v1/model")).json()
        assert state["version"] == first and second in state["last_error"]
        r = await client.post("/v1/rank", json={"ratings": as_ratings(liked[:4], []), "k": 3})
        assert r.status_code == 200 and r.json()["model_version"] == first
        assert (await client.get("/readyz")).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert re.search(r'because_model_swaps_total\{outcome="refused"\} [1-9]', metrics)


async def test_publish_refuses_a_damaged_artifact_and_lists_what_it_holds(
    tmp_path: Path, artifact_dir: Path, store: tuple[ModelStore, str, str]
) -> None:
    models, first, second = store
    assert [p.version for p in models.versions()] == [first, second]
    broken = tmp_path / "broken"
    shutil.copytree(artifact_dir, broken)
    (broken / "ranker.safetensors").write_bytes(b"not weights")
    with pytest.raises(Exception, match="checksum|safetensors|ranker"):
        models.publish(broken)
    assert len(models.versions()) == 2


# -- retraining from what the service holds ----------------------------------------------


async def test_export_writes_every_history_in_a_file_train_reads(
    client: httpx.AsyncClient, live: Settings, raw_redis: redis.Redis, tmp_path: Path,
    planted,
) -> None:
    liked, disliked = liked_and_disliked(planted)
    posted = {"ex1": as_ratings(liked[:4], disliked[:1]), "ex2": as_ratings(liked[4:6], [])}
    for user, ratings in posted.items():
        await client.post(f"/v1/users/{user}/ratings", json={"ratings": ratings})
    out = tmp_path / "export.csv"
    async with redis_connection(live) as redis_client:
        keys = Keys(live.key_prefix)
        codes = ItemCodes(redis_client, keys)
        store = RatingStore(redis_client, keys, codes, live.history_cap)
        users, written = await export_ratings(redis_client, store, keys, out, page=1)
    assert (users, written) == (2, 7)
    table, _ = read_ratings(out)
    got = {(u, i, float(r), int(t)) for u, i, r, t in zip(
        table.users, table.items, table.ratings, table.timestamps, strict=True)}
    want = {(u, x["item_id"], float(x["rating"]), x["timestamp"])
            for u, ratings in posted.items() for x in ratings}
    assert got == want


class RepeatingScan:
    """A real client whose SCAN returns every key twice, as Redis may while it rehashes."""

    def __init__(self, client) -> None:  # noqa: ANN001
        self._client = client

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._client, name)

    async def scan_iter(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        async for key in self._client.scan_iter(*args, **kwargs):
            yield key
            yield key


async def test_export_writes_a_user_once_when_scan_returns_the_key_again(
    client: httpx.AsyncClient, live: Settings, tmp_path: Path, planted,
) -> None:
    liked, disliked = liked_and_disliked(planted)
    await client.post("/v1/users/twice/ratings", json={"ratings": as_ratings(liked[:3], [])})
    out = tmp_path / "export.csv"
    async with redis_connection(live) as redis_client:
        keys = Keys(live.key_prefix)
        store = RatingStore(redis_client, keys, ItemCodes(redis_client, keys), live.history_cap)
        found = await export_ratings(RepeatingScan(redis_client), store, keys, out, page=1)
    assert found == (1, 3)
    assert len(read_ratings(out)[0].users) == 3


async def test_items_folded_into_one_version_are_folded_again_into_the_next(
    from_store: tuple[Settings, ModelStore, str, str], planted
) -> None:
    settings, _, first, second = from_store
    async with app(settings) as client:
        liked = await fold_new_item(client, planted)
        ask = {"ratings": as_ratings(liked[:6], []), "item_ids": ["fresh"]}
        under_first = (await client.post("/v1/score", json=ask)).json()
        await activate(settings, second)

        async def carried() -> bool:
            entry = (await client.get("/v1/items/fresh")).json()
            return entry["model_version"] == second and entry["embedded"] == "folded"

        await until(carried, "the folded item folded again for the next version")
        under_second = (await client.post("/v1/score", json=ask)).json()
        assert under_first["model_version"] == first
        assert under_second["model_version"] == second
        assert under_second["scores"][0]["item_id"] == "fresh"
        assert (await client.get("/v1/model")).json()["items_folded"] >= 1
