"""Histories: write, read newest first, replace, cap, delete; a bad batch stores nothing."""

from __future__ import annotations

import httpx
import pytest
import redis

from models.data.table import IdMap
from service.catalogue import CatalogueMirror, ItemCatalogue
from service.item_codes import ItemCodes
from service.keys import Keys
from service.rating_store import RatingStore
from service.redis_client import redis_connection
from service.settings import Settings
from tests.helpers import redis_snapshot


async def test_post_then_read_newest_first(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/users/alice/ratings",
        json={
            "ratings": [
                {"item_id": "i1", "rating": 5, "timestamp": 100},
                {"item_id": "i2", "rating": 2, "timestamp": 200},
            ]
        },
    )
    assert r.status_code == 200
    assert r.json() == {"user_id": "alice", "stored": 2, "history_size": 2}
    body = (await client.get("/v1/users/alice/ratings")).json()
    assert [x["item_id"] for x in body["ratings"]] == ["i2", "i1"]
    assert body["history_size"] == 2


async def test_rerating_replaces_and_missing_timestamp_is_server_time(
    client: httpx.AsyncClient,
) -> None:
    await client.post(
        "/v1/users/bob/ratings",
        json={"ratings": [{"item_id": "i1", "rating": 5, "timestamp": 100}]},
    )
    r = await client.post(
        "/v1/users/bob/ratings", json={"ratings": [{"item_id": "i1", "rating": 1}]}
    )
    assert r.json()["history_size"] == 1
    [entry] = (await client.get("/v1/users/bob/ratings")).json()["ratings"]
    assert entry["rating"] == 1 and entry["timestamp"] > 1_600_000_000


async def test_unknown_user_has_an_empty_history(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/users/nobody/ratings")
    assert r.status_code == 200
    assert r.json() == {"user_id": "nobody", "ratings": [], "history_size": 0}


async def test_delete_erases(
    client: httpx.AsyncClient, raw_redis: redis.Redis, key_prefix: str
) -> None:
    await client.post("/v1/users/carol/ratings", json={"ratings": [{"item_id": "i3", "rating": 4}]})
    assert (await client.delete("/v1/users/carol")).status_code == 204
    assert (await client.get("/v1/users/carol/ratings")).json()["history_size"] == 0
    assert not list(raw_redis.scan_iter(f"{key_prefix}:*carol*"))


@pytest.mark.parametrize(
    ("ratings", "needle"),
    [
        ([{"item_id": "i1", "rating": 4}, {"item_id": "nope", "rating": 4}], "'nope'"),
        ([{"item_id": "i1", "rating": 4}, {"item_id": "i2", "rating": 6}], "outside"),
        ([{"item_id": "i1", "rating": 0.5}], "1..5"),
        ([], "at least 1"),
        ([{"item_id": f"i{i}", "rating": 3} for i in range(51)], "at most 50"),
        ([{"item_id": "i1", "rating": 4, "timestamp": 99_999_999_999}], "future"),
        ([{"item_id": "i1", "rating": "NaN"}], "finite"),
    ],
)
async def test_a_bad_batch_is_rejected_whole(
    client: httpx.AsyncClient,
    raw_redis: redis.Redis,
    key_prefix: str,
    ratings: list[dict],
    needle: str,
) -> None:
    await client.post(
        "/v1/users/dave/ratings", json={"ratings": [{"item_id": "i9", "rating": 3, "timestamp": 5}]}
    )
    before = redis_snapshot(raw_redis, key_prefix)
    r = await client.post("/v1/users/dave/ratings", json={"ratings": ratings})
    assert r.status_code == 422
    assert needle in str(r.json()["detail"])
    assert redis_snapshot(raw_redis, key_prefix) == before


async def test_history_is_capped_newest_kept(settings, redis_url: str) -> None:
    from service.app import create_app

    app = create_app(settings.model_copy(update={"history_cap": 3}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://because") as c:
            for t in range(5):
                r = await c.post(
                    "/v1/users/erin/ratings",
                    json={"ratings": [{"item_id": f"i{t}", "rating": 4, "timestamp": 1000 + t}]},
                )
            assert r.json()["history_size"] == 3
            body = (await c.get("/v1/users/erin/ratings")).json()
            assert [x["item_id"] for x in body["ratings"]] == ["i4", "i3", "i2"]


async def test_a_history_read_by_item_codes_equals_one_read_by_ids(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    ratings = [{"item_id": f"i{n}", "rating": 1 + n % 5, "timestamp": 100 + n} for n in range(8)]
    await client.post("/v1/users/coded/ratings", json={"ratings": ratings})
    # A model that scores some of the items (i0 and i5 not), and one it never rated.
    catalogue = ItemCatalogue(IdMap(["i7", "i3", "i1", "i2", "i4", "i6", "never"]),
                              ["trained"] * 7, CatalogueMirror([]), "v")
    async with redis_connection(settings) as redis_client:
        keys = Keys(settings.key_prefix)
        store = RatingStore(redis_client, keys, ItemCodes(redis_client, keys),
                            settings.history_cap)
        by_ids = catalogue.history(await store.read("coded"))
        for _ in range(2):  # the second time from the codes it remembered
            by_codes = await catalogue.coded_history(await store.read_coded("coded"),
                                                     store.ids_of)
            assert by_codes.items.tolist() == by_ids.items.tolist() == [2, 3, 1, 4, 5, 0]
            assert by_codes.ratings.tolist() == by_ids.ratings.tolist() == [2, 3, 4, 5, 2, 3]
            assert by_codes.ratings.dtype == by_ids.ratings.dtype
        empty = await catalogue.coded_history(await store.read_coded("nobody"), store.ids_of)
        assert len(empty) == 0
