"""API keys and scopes, secrets kept out of logs, CORS closed by default, and a deleted
user leaves no key in Redis."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis
from pydantic import ValidationError

from service.access import ApiKeys, Scope
from service.settings import Settings
from tests.helpers import redis_snapshot, running

WRITER = "w-7f3a9c1e5b2d4086"
READER = "r-0c8e2b4f6a1d3957"
KEYS = {WRITER: Scope.WRITE, READER: Scope.READ}
POST = {"ratings": [{"item_id": "i1", "rating": 5, "timestamp": 1_000_001}]}


@pytest.fixture
async def keyed(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for c in running(settings.model_copy(update={"api_keys": KEYS})):
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), (bearer("not-a-key"), 401), (bearer(WRITER[:-1]), 401), (bearer(READER), 403)],
    ids=["no key", "unknown key", "prefix of a key", "read-only key"],
)
async def test_writes_and_deletes_need_a_write_key(
    keyed: httpx.AsyncClient,
    raw_redis: redis.Redis,
    key_prefix: str,
    headers: dict,
    status: int,
) -> None:
    assert (await keyed.post("/v1/users/u/ratings", json=POST, headers=bearer(WRITER))).is_success
    before = redis_snapshot(raw_redis, key_prefix)
    for r in (
        await keyed.post("/v1/users/u/ratings", json=POST, headers=headers),
        await keyed.delete("/v1/users/u", headers=headers),
    ):
        assert r.status_code == status, r.text
        assert r.json()["detail"]
        if status == 401:
            assert r.headers["WWW-Authenticate"] == "Bearer"
    assert redis_snapshot(raw_redis, key_prefix) == before
    assert (await keyed.delete("/v1/users/u", headers=bearer(WRITER))).status_code == 204


async def test_reads_are_open_or_keyed_by_setting(settings: Settings) -> None:
    async for open_reads in running(settings.model_copy(update={"api_keys": KEYS})):
        assert (await open_reads.get("/v1/users/u/ratings")).status_code == 200
        assert (await open_reads.get("/v1/items/i1", headers=bearer(READER))).status_code == 200
        assert (await open_reads.get("/v1/items/i1", headers=bearer("nope"))).status_code == 401
    keyed_reads = {"api_keys": KEYS, "read_access": "key"}
    async for c in running(settings.model_copy(update=keyed_reads)):
        score = {"ratings": POST["ratings"], "item_ids": ["i2"]}
        assert (await c.get("/v1/users/u/ratings")).status_code == 401
        assert (await c.post("/v1/score", json=score)).status_code == 401
        for key in (READER, WRITER):
            assert (await c.get("/v1/users/u/ratings", headers=bearer(key))).status_code == 200
            assert (await c.post("/v1/score", json=score, headers=bearer(key))).status_code == 200
        assert (await c.get("/healthz")).status_code == 200  # probes carry no key


def test_keys_are_found_only_by_the_whole_secret() -> None:
    keys = ApiKeys(KEYS)
    assert keys.identify(WRITER).scope is Scope.WRITE
    assert keys.identify(READER).scope is Scope.READ
    assert keys.identify(WRITER).identity != keys.identify(READER).identity
    for wrong in ("", WRITER[:-1], WRITER + "x", WRITER.upper(), " " + READER):
        assert keys.identify(wrong) is None
    assert WRITER not in keys.identify(WRITER).identity


def test_keys_file_and_production_guard(tmp_path: Path) -> None:
    secrets = tmp_path / "keys"
    secrets.write_text(f"# comment\n\nwrite {WRITER}\nread {READER}\n")
    settings = Settings(api_keys_file=secrets, env="production")
    assert settings.api_keys == KEYS
    assert WRITER not in repr(settings) and READER not in repr(settings)

    secrets.write_text(f"admin {WRITER}\n")
    with pytest.raises(ValidationError, match="keys:1") as bad_line:
        Settings(api_keys_file=secrets)
    assert WRITER not in str(bad_line.value)

    with pytest.raises(ValidationError, match="needs a write key"):
        Settings(env="production", api_keys={READER: "read"})


async def test_logs_hold_neither_keys_nor_histories(
    keyed: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    history = {"ratings": [{"item_id": "i7", "rating": 2.5, "timestamp": 1_234_567_891}]}
    calls = [
        keyed.post("/v1/users/u/ratings", json=history, headers=bearer(WRITER)),
        keyed.post("/v1/users/u/ratings", json=history, headers=bearer(READER)),
        keyed.post("/v1/users/u/ratings", json=history, headers=bearer("guess-" + WRITER)),
        keyed.get("/v1/users/u/ratings", headers=bearer(READER)),
        keyed.post("/v1/score", json={**history, "item_ids": ["i1"]}),
        keyed.post("/v1/score", json={"ratings": [{"item_id": "i7", "rating": "NaN"}],
                                      "item_ids": ["i1"]}),
    ]
    for call in calls:
        await call
    logged = "\n".join(
        f"{record.getMessage()} {record.exc_text or ''}" for record in caplog.records
    )
    assert caplog.records, "the app logs something at DEBUG (else this test proves nothing)"
    for secret in (WRITER, READER, "1234567891", "2.5"):
        assert secret not in logged


async def test_cors_is_closed_by_default_and_opens_only_to_listed_origins(
    settings: Settings,
) -> None:
    preflight = {"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
    async for c in running(settings):
        r = await c.options("/v1/score", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
        r = await c.get("/v1/items/i1", headers={"Origin": "https://shop.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    listed = settings.model_copy(update={"cors_origins": ["https://shop.example"]})
    async for c in running(listed):
        r = await c.options("/v1/score", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "https://shop.example"
        other = {**preflight, "Origin": "https://evil.example"}
        r = await c.options("/v1/score", headers=other)
        assert "access-control-allow-origin" not in r.headers


async def test_delete_leaves_no_key_of_the_user(
    settings: Settings, raw_redis: redis.Redis
) -> None:
    user = f"gone-{uuid.uuid4().hex}"
    limited = settings.model_copy(
        update={"api_keys": KEYS, "rate_limit_per_s": 100.0, "rate_limit_burst": 100}
    )
    async for c in running(limited):
        for n in range(3):
            body = {"ratings": [{"item_id": f"i{n}", "rating": 4}]}
            r = await c.post(f"/v1/users/{user}/ratings", json=body, headers=bearer(WRITER))
            assert r.status_code == 200
        await c.get(f"/v1/users/{user}/explanations", params={"item_id": "i5"})
        assert list(raw_redis.scan_iter(f"*{user}*")), "the user's history was stored"
        assert (await c.delete(f"/v1/users/{user}", headers=bearer(WRITER))).status_code == 204
    # SCAN over the whole database, every prefix: nothing of this user is left anywhere.
    assert list(raw_redis.scan_iter(f"*{user}*", count=1000)) == []
