"""Every input limit answers its own clear 4xx, and a refused request changes nothing in
Redis (read back, not taken from the answer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import redis

from service.app import create_app
from service.settings import Settings
from tests.helpers import redis_snapshot

LIMITS = {
    "max_body_bytes": 4096,
    "max_ratings_per_request": 50,
    "max_items_per_request": 5,
    "max_candidates": 5,
    "max_k": 7,
    "max_id_length": 16,
}
ITEMS = [f"i{n}" for n in range(8)]


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update=LIMITS))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://because") as c:
            stored = {"ratings": [{"item_id": "i9", "rating": 3, "timestamp": 5}]}
            assert (await c.post("/v1/users/dave/ratings", json=stored)).status_code == 200
            yield c


def rate(*items: str, rating: object = 4) -> dict:
    return {"ratings": [{"item_id": i, "rating": rating} for i in items]}


class Chunked:
    """A body sent without Content-Length (chunked), so only counting can catch it. Each
    request reads it afresh (the case runs once per Redis backend)."""

    def __init__(self, body: bytes):
        self.body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), 1000):
            yield self.body[start : start + 1000]


LONG_ID = "x" * 17
CASES = [
    # (name, method, path, request keywords, status, text the answer must contain)
    ("body over max_body_bytes", "POST", "/v1/users/dave/ratings",
     {"content": b'{"ratings": [' + b" " * 5000 + b"]}",
      "headers": {"content-type": "application/json"}}, 413, "over 4096 bytes"),
    ("chunked body over max_body_bytes", "POST", "/v1/users/dave/ratings",
     {"content": Chunked(b'{"ratings": [' + b" " * 5000 + b"]}"),
      "headers": {"content-type": "application/json"}}, 413, "over 4096 bytes"),
    ("ratings per request", "POST", "/v1/users/dave/ratings",
     {"json": rate(*(f"i{n}" for n in range(51)))}, 422, "at most 50"),
    ("item ids per score request", "POST", "/v1/score",
     {"json": {"user_id": "dave", "item_ids": ITEMS[:6]}}, 422, "at most 5"),
    ("candidates per rank request", "POST", "/v1/rank",
     {"json": {"user_id": "dave", "candidates": ITEMS[:6], "k": 3}}, 422, "at most 5"),
    ("k", "POST", "/v1/rank", {"json": {"user_id": "dave", "k": 8}}, 422, "at most 7"),
    ("k of an explanation", "GET", "/v1/users/dave/explanations?item_id=i1&k=8", {}, 422,
     "at most 7"),
    ("k of similar items", "GET", "/v1/items/i1/similar?k=8", {}, 422, "at most 7"),
    ("user id length", "POST", f"/v1/users/{LONG_ID}/ratings", {"json": rate("i1")}, 422,
     "at most 16"),
    ("item id length", "POST", "/v1/users/dave/ratings", {"json": rate(LONG_ID)}, 422,
     "at most 16"),
    ("user id length in a body", "POST", "/v1/score",
     {"json": {"user_id": LONG_ID, "item_ids": ["i1"]}}, 422, "at most 16"),
    ("user id characters", "POST", "/v1/users/da%20ve/ratings", {"json": rate("i1")}, 422,
     "pattern"),
    ("item id characters", "POST", "/v1/users/dave/ratings", {"json": rate("i/1")}, 422,
     "pattern"),
    ("NaN rating", "POST", "/v1/users/dave/ratings", {"json": rate("i1", rating="NaN")}, 422,
     "finite"),
    ("infinite rating", "POST", "/v1/users/dave/ratings",
     {"content": b'{"ratings": [{"item_id": "i1", "rating": 1e400}]}',
      "headers": {"content-type": "application/json"}}, 422, "finite"),
    ("rating off the scale", "POST", "/v1/users/dave/ratings", {"json": rate("i1", rating=6)},
     422, "1..5"),
    ("timestamp far in the future", "POST", "/v1/users/dave/ratings",
     {"json": {"ratings": [{"item_id": "i1", "rating": 4, "timestamp": 4_000_000_000}]}}, 422,
     "future"),
    ("unknown query parameter", "DELETE", "/v1/users/dave?force=1", {}, 422, "force"),
]


@pytest.mark.parametrize(
    ("method", "path", "request_kw", "status", "needle"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
async def test_each_limit_has_its_own_answer_and_changes_nothing(
    limited: httpx.AsyncClient,
    raw_redis: redis.Redis,
    key_prefix: str,
    method: str,
    path: str,
    request_kw: dict,
    status: int,
    needle: str,
) -> None:
    before = redis_snapshot(raw_redis, key_prefix)
    assert before, "the fixture stored dave's history"
    r = await limited.request(method, path, **request_kw)
    assert r.status_code == status, r.text
    assert needle in str(r.json()["detail"])
    assert redis_snapshot(raw_redis, key_prefix) == before


async def test_requests_at_each_limit_are_accepted(limited: httpx.AsyncClient) -> None:
    """The limits are where the settings put them, not one below."""
    ok = [
        ("POST", "/v1/users/dave/ratings", {"json": rate(*(f"i{n}" for n in range(50)))}),
        ("POST", "/v1/score", {"json": {"user_id": "dave", "item_ids": ITEMS[:5]}}),
        ("POST", "/v1/rank", {"json": {"user_id": "dave", "candidates": ITEMS[:5], "k": 7}}),
        ("GET", f"/v1/users/{'y' * 16}/ratings", {}),
    ]
    for method, path, kw in ok:
        r = await limited.request(method, path, **kw)
        assert r.status_code == 200, (path, r.text)


async def test_past_max_in_flight_a_scoring_request_is_shed_at_once(
    settings: Settings,
) -> None:
    """Two ranks held in flight (their history reads wait on an event); the third is
    answered 503 with Retry-After at once; released, the two answer 200."""
    app = create_app(settings.model_copy(update={"max_in_flight": 2}))
    transport = httpx.ASGITransport(app=app)
    async with (app.router.lifespan_context(app),
                httpx.AsyncClient(transport=transport, base_url="http://b") as client):
        await client.post("/v1/users/held/ratings", json={"ratings": [
            {"item_id": "i1", "rating": 5}]})
        store = app.state.services.recommender._store
        release, reading = asyncio.Event(), asyncio.Semaphore(0)
        read = store.read_coded  # what a rank reads

        async def held_read(user_id: str):  # noqa: ANN202 - CodedRatings
            reading.release()
            await release.wait()
            return await read(user_id)

        store.read_coded = held_read
        held = [asyncio.create_task(client.post("/v1/rank", json={"user_id": "held", "k": 3}))
                for _ in range(2)]
        for _ in held:
            # Both admitted and waiting; a read that is never held fails here, not hangs.
            await asyncio.wait_for(reading.acquire(), 60)
        shed = await client.post("/v1/rank", json={"user_id": "held", "k": 3})
        assert shed.status_code == 503 and shed.headers["Retry-After"] == "1"
        assert "BECAUSE_MAX_IN_FLIGHT" in shed.json()["detail"]
        release.set()
        assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
        store.read_coded = read
        after = await client.post("/v1/rank", json={"user_id": "held", "k": 3})
        assert after.status_code == 200
        assert "because_shed_total 1.0" in (await client.get("/metrics")).text
