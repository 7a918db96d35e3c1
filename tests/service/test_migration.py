"""A Redis written by an earlier Because (layout 1: JSON histories, shared keys without a
hash tag) stops a start-up with the fix named; `because migrate` moves it, once and
harmlessly again, and the service then serves the same histories and catalogue."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from because.cli import main
from service.app import create_app
from service.settings import Settings
from tests.helpers import prefix_keys, running

HISTORIES = {
    "alice": [["i1", 4.0, 100], ["fresh", 5.0, 200]],
    "bob": [["i2", 2.5, 50]],
}


@pytest.fixture
def old_prefix(single_redis_url: str) -> Iterator[str]:
    prefix = f"because-old-{uuid.uuid4().hex[:12]}"
    yield prefix
    with redis.Redis.from_url(single_redis_url) as raw:
        for key in prefix_keys(raw, prefix):
            raw.delete(key)


def write_layout_one(raw: redis.Redis, prefix: str) -> None:
    raw.zadd(f"{prefix}:items", {"i1": 0, "i2": 0, "fresh": 0})
    for item in ("i1", "i2"):
        raw.hset(f"{prefix}:item:{item}", mapping={"title": item, "genres": "[]",
                                                   "attributes": "{}", "retired": "0"})
    raw.hset(f"{prefix}:item:fresh", mapping={"title": "Fresh", "genres": '["c0"]',
                                              "attributes": "{}", "retired": "0"})
    raw.zadd(f"{prefix}:raters:fresh", {"alice": 200})
    raw.hset(f"{prefix}:rl:caller", mapping={"tokens": "3", "at": "1"})
    for user, history in HISTORIES.items():
        raw.set(f"{prefix}:h:{user}", json.dumps(history))


async def test_layout_one_is_refused_then_migrated_and_served(
    artifact_dir: Path, tmp_path: Path, single_redis_url: str, old_prefix: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    with redis.Redis.from_url(single_redis_url) as raw:
        write_layout_one(raw, old_prefix)
    settings = Settings(artifact=artifact_dir, redis_url=single_redis_url,
                        key_prefix=old_prefix, data_dir=tmp_path)
    app = create_app(settings)
    with pytest.raises(RuntimeError, match="run `because migrate`"):
        async with app.router.lifespan_context(app):
            pass

    monkeypatch.setenv("REDIS_URL", single_redis_url)
    monkeypatch.setenv("BECAUSE_KEY_PREFIX", old_prefix)
    assert await asyncio.to_thread(main, ["migrate"]) == 0
    assert "2 histories, 3 ratings" in capsys.readouterr().out
    with redis.Redis.from_url(single_redis_url, decode_responses=True) as raw:
        assert not list(raw.scan_iter(f"{old_prefix}:h:*"))
        assert not raw.exists(f"{old_prefix}:items", f"{old_prefix}:rl:caller")
        after_first = sorted(prefix_keys(raw, old_prefix))
    # Again: nothing left to move, nothing changes.
    assert await asyncio.to_thread(main, ["migrate"]) == 0
    assert "0 shared keys, 0 histories, 0 ratings" in capsys.readouterr().out
    with redis.Redis.from_url(single_redis_url, decode_responses=True) as raw:
        assert sorted(prefix_keys(raw, old_prefix)) == after_first

    async for client in running(settings):
        for user, history in HISTORIES.items():
            got = (await client.get(f"/v1/users/{user}/ratings")).json()["ratings"]
            newest_first = history[::-1]
            assert [[r["item_id"], r["rating"], r["timestamp"]] for r in got] == newest_first
        fresh = await client.get("/v1/items/fresh")
        assert fresh.status_code == 200 and fresh.json()["title"] == "Fresh"
        more = {"ratings": [{"item_id": "fresh", "rating": 3, "timestamp": 300}]}
        assert (await client.post("/v1/users/bob/ratings", json=more)).json()[
            "history_size"] == 2
