"""Redis Cluster: a master killed (-9) under reads and writes answers 503 with Retry-After
while its slots have no master and 2xx again once its replica is promoted, with no
restart; with BECAUSE_REDIS_WAIT_REPLICAS a rating is acknowledged only once a replica
holds it. (Every other service test runs against a cluster as well: see `redis_target`.)"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.failover import run as failover_run
from bench.redis_cluster import Cluster, redis_cluster
from service.keys import Keys
from service.redis_client import Client, redis_connection
from service.settings import Settings
from tests.helpers import RedisTarget, running

# Generous, so a starved CI machine cannot fail it: a failover takes a few seconds on a
# quiet one (node timeout 1 s, then an election).
RECOVERY_DEADLINE_S = 60.0
USERS = [f"user{n}" for n in range(30)]


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster of this test's own: it kills one of its masters."""
    with redis_cluster(tmp_path / "cluster") as cluster:
        yield cluster


def rating(item: str, when: int) -> dict:
    return {"ratings": [{"item_id": item, "rating": 4, "timestamp": when}]}


async def traffic(client: httpx.AsyncClient, user: str, stop: asyncio.Event,
                  answers: Counter[tuple[int, bool]]) -> None:
    """One user's writes and reads until `stop`, each answer counted."""
    n = 2
    while not stop.is_set():
        n += 1
        r = await client.post(f"/v1/users/{user}/ratings", json=rating(f"i{n % 9}", n))
        answers[r.status_code, "Retry-After" in r.headers] += 1
        r = await client.get(f"/v1/users/{user}/ratings")
        answers[r.status_code, "Retry-After" in r.headers] += 1
        await asyncio.sleep(0.01)


@pytest.mark.slow
async def test_a_killed_master_is_503_with_retry_after_then_2xx_after_its_failover(
    artifact_dir: Path, tmp_path: Path, own_cluster: Cluster
) -> None:
    settings = Settings(artifact=artifact_dir, redis_url=own_cluster.url, redis_cluster=True,
                        data_dir=tmp_path, batch_max_wait_ms=2.0, redis_timeout_s=5.0)
    keys = Keys(settings.key_prefix)
    victim = USERS[0]
    doomed = {u for u in USERS
              if own_cluster.master_of(keys.history(u)) == own_cluster.master_of(
                  keys.history(victim))}
    answers: Counter[tuple[int, bool]] = Counter()  # (status, has Retry-After)
    async for client in running(settings):
        for user in USERS:
            assert (await client.post(f"/v1/users/{user}/ratings",
                                      json=rating("i1", 1))).status_code == 200

        stop = asyncio.Event()
        workers = [asyncio.create_task(traffic(client, u, stop, answers)) for u in USERS]
        await asyncio.sleep(0.5)
        await asyncio.to_thread(own_cluster.kill_master_of, keys.history(victim))
        deadline = time.monotonic() + RECOVERY_DEADLINE_S
        while True:  # until every user, the victim's neighbours included, is served again
            served = [await client.get(f"/v1/users/{u}/ratings") for u in doomed]
            if all(r.status_code == 200 for r in served):
                break
            assert time.monotonic() < deadline, (
                f"no failover in {RECOVERY_DEADLINE_S} s: "
                f"{[(r.status_code, r.text[:200]) for r in served if r.status_code != 200]}; "
                f"cluster: {own_cluster.states()}")
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*workers)

        failed = {answer: n for answer, n in answers.items() if answer[0] >= 300}
        assert set(failed) <= {(503, True)}, answers  # every failure: 503 with Retry-After
        assert failed, "no request met the killed master: the test proved nothing"
        after = await client.post(f"/v1/users/{victim}/ratings", json=rating("i2", 10**6))
        assert after.status_code == 200
        history = (await client.get(f"/v1/users/{victim}/ratings")).json()["ratings"]
        assert {"item_id": "i2", "rating": 4.0, "timestamp": 10**6} in history


async def test_a_rating_waits_for_a_replica_when_asked(
    settings: Settings, redis_target: RedisTarget
) -> None:
    """On the cluster every master has a replica: acknowledged. On the single server there
    is none to confirm: 503 with Retry-After (and the write may still be on the master)."""
    async for client in running(settings.model_copy(update={"redis_wait_replicas": 1})):
        r = await client.post("/v1/users/waiter/ratings", json=rating("i1", 5))
        if redis_target.cluster:
            assert r.status_code == 200, r.text
        else:
            assert r.status_code == 503
            assert int(r.headers["Retry-After"]) >= 1
            assert "0 of 1 replicas confirmed" in r.json()["detail"]


async def test_a_burst_over_a_small_cluster_pool_waits_instead_of_failing(
    local_cluster: Cluster, tmp_path: Path
) -> None:
    """500 concurrent commands and pipelines over pools of 4 per node: every one is
    answered (redis-py's cluster client alone raises MaxConnectionsError past its pool)."""
    settings = Settings(redis_url=local_cluster.url, redis_cluster=True, data_dir=tmp_path,
                        redis_max_connections=4, redis_timeout_s=10.0)
    keys = [f"burst:{{u:{n}}}:h" for n in range(50)]  # spread over every master

    async def pipelined(client: Client, key: str) -> list:
        async with client.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.get(key)
            return await pipe.execute()

    async with redis_connection(settings) as client:
        for key in keys:
            await client.set(key, key)
        singles = await asyncio.gather(*(client.get(keys[n % 50]) for n in range(400)))
        pairs = await asyncio.gather(*(pipelined(client, keys[n % 50]) for n in range(100)))
        assert singles == [keys[n % 50].encode() for n in range(400)]
        assert pairs == [[keys[n % 50].encode()] * 2 for n in range(100)]
        assert all(len(node._connections) <= 4 for node in client.get_nodes())
        await client.delete(*keys)


@pytest.mark.slow
async def test_with_wait_no_acknowledged_rating_is_lost_when_a_lagging_master_dies(
    artifact_dir: Path, tmp_path: Path, own_cluster: Cluster
) -> None:
    """The master goes on acknowledging while its replica is a second behind, then dies.
    Without WAIT those ratings are gone (bench/failover.py counts them); with it none was
    acknowledged: every rating answered 200 is found after the failover. (redis-py's
    cluster pipeline once resent a lone WAIT to another node here, which confirmed
    ratings that were lost.)"""
    figures = await failover_run(artifact_dir, own_cluster, wait_replicas=1, lag_s=1.0,
                                 folder=tmp_path)
    assert figures["acknowledged"] > 0
    assert figures["lost"] == 0, figures
    assert set(figures["answers"]) <= {"200", "503"}, figures
