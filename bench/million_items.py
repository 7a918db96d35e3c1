"""Serving a million items: start-up, memory with one and two versions, whole-catalogue rank.

The catalogue: `--items` items (default 1,000,000) with the production architectures,
random weights and clustered frozen embeddings (`bench.scaling.synthetic_artifact`: the
item count and the shapes of a trained model, not its quality; `bench.retrieval_recall`
measures quality on a trained one). Its FAISS index is built once, as training does, and
stored in the artifact; a second version differs only in the ranker's item bias.

Then, against a redis-server of its own: both versions published to a model store, the
first activated, `because serve --store` started (start-up: process start until /readyz
answers; RSS of the process); 32 users with 128 ratings each (drawn from a few clusters,
as tastes are) posted through the API; whole-catalogue `POST /v1/rank` (k = 10, FAISS
retrieval then scoring the pool) under wrk at each concurrency, users in turn, and the
HTTP + Redis floor (`bench/floor_app.py`: a GET of a user's history from the same Redis)
right after at the same concurrency. Last, the second version activated while the service
runs: the peak RSS during the swap (two versions held), the RSS after it, and how many of
the rank requests polled every 0.2 s while the new version loads were not answered 200
(the old version should serve them all), and the slowest of them. Before the service
starts, the item list read beside a thread that wakes every millisecond, by one
`json.loads` and by the artifact's reader: the longest that thread waited. Beside each
wrk run's latencies, the service's CPU time per request: what a loaded machine's timings
hide.

    .venv/bin/python -m bench.million_items [--items 1000000] [--workdir DIR]

A `--workdir` that already holds both versions (from an earlier run) reuses them: building
them takes minutes, and the index's build time is then not measured again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import psutil
import torch

from bench.record import append_result, provenance
from bench.scaling import synthetic_artifact
from bench.serve_load import cpu_seconds, free_port, process, redis_server, wait_ready, wrk
from models.artifact import load_artifact, read_items, save_artifact
from models.inference.item_index import build_index, neighbour_table, normalised

USERS = 32
HISTORY = 128
CONCURRENCY = (1, 8)


def build_versions(folder: Path, n_items: int) -> tuple[list[Path], dict[str, float]]:
    """Two artifacts of `n_items` items sharing one index and neighbour table; seconds to
    build each (none: both versions were in `folder` already, and are reused)."""
    paths = [folder / f"v{version}" for version in range(2)]
    if all((path / "manifest.json").exists() for path in paths):
        return paths, {}
    artifact = synthetic_artifact(n_items)
    vectors = normalised(artifact.ranking_model.item_embeddings.numpy())
    started = time.perf_counter()
    index = build_index(vectors)
    built = time.perf_counter()
    neighbours = neighbour_table(index, vectors)
    seconds = {"index_build_s": round(built - started, 1),
               "neighbours_build_s": round(time.perf_counter() - built, 1)}
    for version, path in enumerate(paths):
        if version:
            with torch.no_grad():
                artifact.ranking_model.item_bias.add_(0.01)
        save_artifact(
            path, artifact.rating_model, artifact.ranking_model,
            artifact.item_ids, artifact.catalogue, rating_train_config=artifact.manifest["rating"],
            ranking_train_config=artifact.manifest["ranking"], data={"fingerprint": "synthetic"},
            metrics={}, item_index=index, item_neighbours=neighbours)
    return paths, seconds


def tasteful_histories(artifact_dir: Path, rng: np.random.Generator) -> dict[str, list[dict]]:
    """USERS users, each HISTORY ratings from 4 of the embedding clusters (nearest
    neighbours of 4 random items), mostly 4 and 5 stars."""
    artifact = load_artifact(artifact_dir)
    index, vectors = artifact.item_index, normalised(
        artifact.ranking_model.item_embeddings.numpy())
    users = {}
    for user in range(USERS):
        seeds = rng.choice(len(vectors), 4, replace=False)
        _, near = index.search(vectors[seeds], HISTORY)
        items = rng.choice(np.unique(near[near >= 0]), HISTORY, replace=False)
        stars = rng.choice([3, 4, 5], HISTORY, p=[0.2, 0.4, 0.4])
        users[f"m{user}"] = [{"item_id": str(i), "rating": float(r), "timestamp": 1_000 + t}
                             for t, (i, r) in enumerate(zip(items, stars, strict=True))]
    return users


def tree_rss_gb(pid: int) -> float:
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in (root, *root.children(recursive=True))) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=15, help="per wrk run")
    parser.add_argument("--workdir", type=Path, help="keep the artifacts here (else a temp dir)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    started = provenance()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        (v0, v1), build_seconds = build_versions(work, args.items)
        print(f"built: {build_seconds or 'reused'}", flush=True)
        users = tasteful_histories(v0, rng)
        record = {"items": args.items, **build_seconds,
                  "index_bytes": (v0 / "items.faiss").stat().st_size,
                  "neighbours_bytes": (v0 / "neighbours.safetensors").stat().st_size,
                  "item_list": item_list_stalls(v0 / "items.json")}
        record.update(run_service(work, v0, v1, users, args.seconds))
    print(json.dumps(record, indent=1))
    print(f"appended to {append_result('million_items', record, started)}")


def run_service(work: Path, v0: Path, v1: Path, users: dict[str, list[dict]],
                seconds: int) -> dict:
    redis_port, port, floor_port = free_port(), free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "BECAUSE_DATA_DIR": str(work)}
    cli = [sys.executable, "-m", "because.cli"]
    store = work / "store"
    shutil.rmtree(store, ignore_errors=True)  # an earlier run's
    out: dict = {}
    with redis_server(redis_port, str(work)):
        run_env = {**os.environ, **env}
        versions = [subprocess.run([*cli, "models", "publish", "--store", str(store), str(v)],
                                   env=run_env, check=True, capture_output=True, text=True)
                    .stdout.split()[0] for v in (v0, v1)]
        subprocess.run([*cli, "models", "activate", "--store", str(store), versions[0]],
                       env=run_env, check=True, capture_output=True)
        log = (work / "service.log").open("ab")
        begun = time.perf_counter()
        service = subprocess.Popen([*cli, "serve", "--store", str(store), "--port", str(port)],
                                   env=run_env, stdout=log, stderr=log)
        try:
            wait_ready(f"{url}/readyz", process=service)
            out["startup_seconds"] = time.perf_counter() - begun
            out["rss_gb_one_version"] = tree_rss_gb(service.pid)
            with httpx.Client(base_url=url, timeout=60) as http:
                for user, ratings in users.items():
                    http.post(f"/v1/users/{user}/ratings",
                              json={"ratings": ratings}).raise_for_status()
                first = http.post("/v1/rank", json={"user_id": "m0", "k": 10}).json()
                out["served_version"] = first["model_version"]
            specs = [("POST", "/v1/rank", json.dumps({"user_id": u, "k": 10})) for u in users]
            out["rank"], out["floor"] = {}, {}
            floor_url = f"http://127.0.0.1:{floor_port}"
            floor = [sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--port",
                     str(floor_port), "--log-level", "warning"]
            with process(floor, env, work / "floor.log", f"{floor_url}/floor/none"):
                for c in CONCURRENCY:
                    cpu = cpu_seconds(service.pid)
                    figures = wrk(url, specs, c, seconds, work)
                    figures["cpu_ms_per_request"] = (
                        1000 * (cpu_seconds(service.pid) - cpu) / max(1, figures["requests"]))
                    out["rank"][c] = figures
                    # The HTTP + Redis floor at the same concurrency, right after.
                    out["floor"][c] = wrk(floor_url, [("GET", f"/floor/{u}", "") for u in users],
                                          c, seconds, work)
                    print(f"c = {c}: {figures}; floor {out['floor'][c]}", flush=True)
            out.update(swap(cli, run_env, store, versions[1], service.pid, url))
        finally:
            service.terminate()
            service.wait(60)
    return out


def swap(cli: list[str], env: dict, store: Path, version: str, pid: int, url: str) -> dict:
    """Activates `version` and samples the service's RSS until it serves it."""
    peak, stop = [0.0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss_gb(pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    begun = time.perf_counter()
    subprocess.run([*cli, "models", "activate", "--store", str(store), version], env=env,
                   check=True, capture_output=True)
    asked, failed = 0, 0  # rank requests while the new version loads, and those not 200
    slowest = 0.0
    with httpx.Client(base_url=url, timeout=60) as http:
        while True:
            sent = time.perf_counter()
            answer = http.post("/v1/rank", json={"user_id": "m0", "k": 10})
            slowest = max(slowest, time.perf_counter() - sent)
            asked += 1
            if answer.status_code != 200:
                failed += 1
            elif answer.json()["model_version"] == version:
                break
            if time.perf_counter() - begun > 600:
                raise RuntimeError(f"{version} not served after 600 s")
            time.sleep(0.2)
    swapped = time.perf_counter() - begun
    time.sleep(3)
    stop.set()
    sampler.join()
    return {"swap_seconds": swapped, "rss_gb_during_swap_peak": peak[0],
            "rss_gb_after_swap": tree_rss_gb(pid), "swap_requests": asked,
            "swap_requests_failed": failed, "swap_request_slowest_ms": 1000 * slowest}


def item_list_stalls(items_json: Path) -> dict[str, dict[str, float]]:
    """Reading the artifact's item list two ways, each beside a thread that wakes every
    millisecond (as an event loop would): seconds taken, and the longest the thread waited
    for the interpreter. One `json.loads` (what loading did before) against the artifact's
    own entry-by-entry reader."""
    out = {}
    for name, read in (("json_loads", lambda: json.loads(items_json.read_text())),
                       ("read_items", lambda: read_items(items_json))):
        out[name] = longest_stall(read)
        print(f"{name}: {out[name]}", flush=True)
    return out


def longest_stall(work: Callable[[], object]) -> dict[str, float]:
    """Seconds `work` takes, and the longest a thread sleeping 1 ms at a time waited
    meanwhile (for the interpreter, when `work` holds it)."""
    longest, stop = [0.0], threading.Event()

    def tick() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            longest[0], last = max(longest[0], now - last), now

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    begun = time.perf_counter()
    work()
    seconds = time.perf_counter() - begun
    stop.set()
    ticker.join()
    return {"seconds": seconds, "longest_stall_ms": 1000 * longest[0]}

if __name__ == "__main__":
    main()
