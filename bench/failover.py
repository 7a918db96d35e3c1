"""Acknowledged ratings lost when a Redis Cluster master is killed (-9) under writes, with
BECAUSE_REDIS_WAIT_REPLICAS=1 and without, each on a fresh local cluster, in one run.

Writers post ratings (each (user, item) once, so every acknowledged rating must be found
afterwards) through the app in process; a master is killed mid-run; writing goes on until
every user is served again; then every history is read back and each acknowledged rating
looked for. Also: the answers while the slot had no master, and how long that lasted.

Two scenarios per setting: the replica in step with its master (on loopback it trails by
well under a millisecond), and the replica `LAG_S` behind, as a broken link leaves it: the
replica stopped (SIGSTOP) and its link closed by the master, which goes on acknowledging
writes for that long before it is killed; then the replica resumes and is promoted.

    .venv/bin/python -m bench.failover --artifact var/artifacts/ml-100k
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import redis

from bench.record import append_result, provenance
from bench.redis_cluster import Cluster, redis_cluster
from service.app import create_app
from service.keys import Keys
from service.settings import Settings

USERS = 60
KILL_AFTER_S = 3.0
LAG_S = 1.0


async def run(artifact: Path, cluster: Cluster, wait_replicas: int, lag_s: float,
              folder: Path) -> dict:
    settings = Settings(artifact=artifact, redis_url=cluster.url, redis_cluster=True,
                        redis_wait_replicas=wait_replicas, redis_timeout_s=1.0,
                        data_dir=folder)
    keys = Keys(settings.key_prefix)
    users = [f"u{n}" for n in range(USERS)]
    victim_port = cluster.master_of(keys.history(users[0]))
    doomed = [u for u in users if cluster.master_of(keys.history(u)) == victim_port]
    app = create_app(settings)
    acknowledged: set[tuple[str, str]] = set()
    answers: Counter[int] = Counter()
    outage: list[float] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            items: list[str] = []
            cursor = None
            while len(items) < 500:  # pages of at most max_k (100) items
                params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
                page = (await client.get("/v1/items", params=params)).json()
                items += [item["item_id"] for item in page["items"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            stop = asyncio.Event()

            async def writer(user: str) -> None:
                for n in itertools.count():
                    if stop.is_set() or n >= len(items):
                        return
                    body = {"ratings": [{"item_id": items[n], "rating": 4, "timestamp": n}]}
                    r = await client.post(f"/v1/users/{user}/ratings", json=body)
                    answers[r.status_code] += 1
                    if r.status_code == 200:
                        acknowledged.add((user, items[n]))
                    elif user in doomed:
                        outage.append(time.monotonic())

            writers = [asyncio.create_task(writer(u)) for u in users]
            await asyncio.sleep(KILL_AFTER_S)
            replica = cluster.processes[cluster.replica_of(victim_port)]
            if lag_s:  # the replica stopped, its link cut: what it has not got, it never will
                replica.send_signal(signal.SIGSTOP)
                with redis.Redis(port=victim_port) as master:
                    master.client_kill_filter(_type="replica")
                await asyncio.sleep(lag_s)
            killed_at = time.monotonic()
            await asyncio.to_thread(cluster.kill_master_of, keys.history(users[0]))
            replica.send_signal(signal.SIGCONT)
            while True:
                served = [await client.get(f"/v1/users/{u}/ratings") for u in doomed]
                if all(r.status_code == 200 for r in served):
                    break
                await asyncio.sleep(0.1)
            recovered_at = time.monotonic()
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.gather(*writers)
            stored = set()
            for user in users:
                history = (await client.get(f"/v1/users/{user}/ratings")).json()["ratings"]
                stored |= {(user, r["item_id"]) for r in history}
    lost = acknowledged - stored
    return {
        "wait_replicas": wait_replicas,
        "replica_lag_s": lag_s,
        "acknowledged": len(acknowledged),
        "lost": len(lost),
        "answers": {str(k): v for k, v in sorted(answers.items())},
        "users_on_killed_master": len(doomed),
        "kill_to_served_s": round(recovered_at - killed_at, 2),
        "failed_writes_on_killed_master": len(outage),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, default=Path("var/artifacts/ml-100k"))
    args = parser.parse_args()
    started = provenance()
    figures = []
    for lag_s in (0.0, LAG_S):
        for wait_replicas in (0, 1):
            with tempfile.TemporaryDirectory() as folder:
                with redis_cluster(Path(folder) / "cluster") as cluster:
                    figures.append(asyncio.run(run(args.artifact, cluster, wait_replicas,
                                                   lag_s, Path(folder))))
    for f in figures:
        print(f"replica {f['replica_lag_s']:g} s behind, WAIT replicas={f['wait_replicas']}: "
              f"{f['acknowledged']} ratings acknowledged, "
              f"{f['lost']} lost; answers {f['answers']}; {f['users_on_killed_master']} of "
              f"{USERS} users on the killed master, served again "
              f"{f['kill_to_served_s']} s after the kill")
    append_result("failover", {"users": USERS, "runs": figures}, started)


if __name__ == "__main__":
    main()
