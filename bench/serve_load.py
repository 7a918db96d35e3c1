"""Load test of the service with wrk at several concurrencies, beside its floors, in one run.

Starts its own redis-server (a free port, nothing on disk), the service (`because serve`,
MovieLens-100K histories imported) and the HTTP + Redis floor (bench/floor_app.py) with
the same uvicorn settings, then drives each with wrk (C, one thread, keep-alive) from a
separate process. Per endpoint and concurrency: p50/p95/p99 and throughput. The users of
the load are 32 bench users with exactly 128 ratings each (the oldest 128 of real users).

Floors in the same run: the floor app's GET of the same history (HTTP + Redis), and the
models alone in this process on the same jobs (compute: `Predictor.run`, and the ranker's
served forward alone), for 1000 candidates and for the whole catalogue, at torch's default
thread count (the fastest here; the service itself scores on cores - 1 threads). Then the
service restarted with micro-batching off (BECAUSE_BATCH_MAX_SIZE=1) for the throughput
ratio, and single-client /v1/rank latency against history length and candidate count.
The cost of explanations: one client, /v1/rank over the whole catalogue, k = 10, the bench
users' 128-item histories, requests with and without `explain` alternated.

Two goals of the issue "scale out", also run alone with `--only` (about a minute, no
ratings imported; written to bench/results/request_path.jsonl either way):

    path        the request path's own cost: one sequential client alternates the floor's
                GET and `POST /v1/rank` with 10 candidates (128-item history); goal: rank
                p50 at most 3x the floor's
    throughput  rank with 1000 candidates and the floor, wrk at c = 32: each server's CPU
                seconds per request (/proc/<pid>/stat over the run), the ceiling that
                allows (cores / CPU seconds per request) and the share of it achieved;
                goal: at least 60% for rank

    make bench-serve
    .venv/bin/python -m bench.serve_load --artifact var/artifacts/ml-100k \
        --ratings var/data/movielens-100k/ml-100k.inter [--concurrency 1 32] [--only path]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import psutil
import torch

from bench.latency import percentiles, timed
from bench.record import append_result, provenance
from bench.report import non_2xx_cell
from models.artifact import load_artifact
from models.data.readers import read_ratings
from models.history import History, pad_batch
from models.inference.predictor import Predictor, ScoreJob
from models.inference.scoring import ranking_scores

BENCH_USERS = 32
HISTORY = 128
CONCURRENCY = (1, 8, 32, 128)
PATH_CANDIDATES = 10  # the small request whose overhead the path measurement isolates
THROUGHPUT_CONCURRENCY = 32
WRK_SCRIPT = """
local specs = {SPECS}
local prepared = {}
local turn = 0
init = function(args)
  for n, s in ipairs(specs) do
    local headers = {}
    local body = nil
    if s[3] ~= "" then
      headers["Content-Type"] = "application/json"
      body = s[3]
    end
    prepared[n] = wrk.format(s[1], s[2], headers, body)
  end
end
request = function()
  turn = turn % #prepared + 1
  return prepared[turn]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "non_2xx": %d, "socket_errors": %d, '
    .. '"p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f}\\n',
    summary.requests, summary.duration / 1e6, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(95) / 1e3, latency:percentile(99) / 1e3))
end
"""

Spec = tuple[str, str, str]  # method, path, JSON body ("" for none)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def redis_server(port: int, folder: str) -> Iterator[None]:
    """A redis-server of our own on `port`, nothing kept on disk; stopped on exit."""
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", folder], stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        redis.terminate()
        redis.wait(10)


def wait_ready(url: str, seconds: float = 600, process: subprocess.Popen | None = None) -> None:
    """Until `url` answers 200; a `process` that exits meanwhile ends the wait at once."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}) before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {seconds:.0f} s")


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path,
            ready: str) -> Iterator[subprocess.Popen]:
    """A server process, once `ready` answers 200; terminated on exit."""
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=out, stderr=out)
    try:
        wait_ready(ready, process=proc)
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)


def wrk(url: str, specs: list[Spec], connections: int, seconds: int, folder: Path) -> dict:
    """One wrk run cycling through `specs`; its figures as a dict."""
    lua = ", ".join(
        f"{{{json.dumps(m)}, {json.dumps(p)}, [==[{b}]==]}}" for m, p, b in specs
    )
    script = folder / "load.lua"
    script.write_text(WRK_SCRIPT.replace("SPECS", lua))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s",
               "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    figures["per_second"] = figures["requests"] / figures["seconds"]
    return figures


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process `pid` and its children (the
    workers of `--workers N`)."""
    root = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in (root, *root.children(recursive=True)))


def machine_idle() -> tuple[float, float]:
    """(idle, total) CPU seconds of the whole machine so far (/proc/stat): idle cores under
    load mean requests wait on something other than a CPU."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return idle / os.sysconf("SC_CLK_TCK"), sum(ticks[:8]) / os.sysconf("SC_CLK_TCK")


def answered_statuses(url: str) -> Counter[str]:
    """Requests the service has answered so far, by HTTP status (its Prometheus counter):
    wrk counts non-2xx answers but not which they were."""
    counts: Counter[str] = Counter()
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("because_requests_total{"):
            labels, value = line[len("because_requests_total{") :].split("} ")
            counts[labels.split('status="')[1].split('"')[0]] += int(float(value))
    return counts


def service_wrk(url: str, specs: list[Spec], connections: int, seconds: int,
                folder: Path) -> dict:
    """`wrk` against the service, with the non-2xx answers of the run by status."""
    before = answered_statuses(url)
    figures = wrk(url, specs, connections, seconds, folder)
    during = answered_statuses(url) - before  # keeps the statuses that grew
    figures["non_2xx_by_status"] = {
        status: during[status] for status in sorted(during) if not status.startswith("2")
    }
    return figures


def store_unavailable_causes(log: Path) -> dict[str, int]:
    """Why the services answered 503, from their logs: the cause each 503 was logged with."""
    lines = log.read_text(errors="replace").splitlines()
    return dict(Counter(line.split("answered 503: ", 1)[1] for line in lines
                        if "answered 503: " in line))


def bench_users(ratings: Path, rng: random.Random) -> dict[str, list[dict]]:
    """Bench user id -> the oldest HISTORY ratings of a real user with at least that many."""
    table, _ = read_ratings(ratings)
    order = np.lexsort((table.timestamps, table.users))
    by_user: dict[str, list[dict]] = {}
    for row in order.tolist():
        entry = {"item_id": str(table.items[row]), "rating": float(table.ratings[row]),
                 "timestamp": int(table.timestamps[row])}
        by_user.setdefault(str(table.users[row]), []).append(entry)
    long_enough = sorted(u for u, r in by_user.items() if len(r) >= HISTORY)
    chosen = rng.sample(long_enough, BENCH_USERS)
    return {f"bench{HISTORY}-{n}": by_user[u][:HISTORY] for n, u in enumerate(chosen)}


def load_cases(users: list[str], items: list[str], rng: random.Random) -> dict[str, list[Spec]]:
    def rank(user: str, candidates: int | None) -> Spec:
        body: dict = {"user_id": user, "k": 10}
        if candidates is not None:
            body["candidates"] = rng.sample(items, candidates)
        return ("POST", "/v1/rank", json.dumps(body))

    return {
        "POST /v1/rank (100 candidates)": [rank(u, 100) for u in users],
        "POST /v1/rank (1000 candidates)": [rank(u, 1000) for u in users],
        "POST /v1/rank (whole catalogue)": [rank(u, None) for u in users],
        "POST /v1/score (10 items)": [
            ("POST", "/v1/score", json.dumps({"user_id": u, "item_ids": rng.sample(items, 10)}))
            for u in users
        ],
        "GET /v1/users/{id}/explanations": [
            ("GET", f"/v1/users/{u}/explanations?item_id={rng.choice(items)}&k=5", "")
            for u in users
        ],
        "POST /v1/users/{id}/ratings (1 rating)": [
            ("POST", f"/v1/users/bench-writer-{n}/ratings",
             json.dumps({"ratings": [{"item_id": rng.choice(items), "rating": 4}]}))
            for n in range(256)
        ],
    }


def compute_floor(artifact_dir: Path, histories: list[History], candidates: np.ndarray | None,
                  repeats: int = 200) -> dict[str, float]:
    """The models alone, in process, on one user's rank job (`candidates`, or every item
    the user has not rated when None): the whole Predictor.run (ranker + rating of the top
    10) and the ranker's served forward alone."""
    artifact = load_artifact(artifact_dir)
    predictor = Predictor(artifact, torch.device("cpu"))
    every = np.arange(len(artifact.item_ids), dtype=np.int64)
    pools = [every[~np.isin(every, h.items)] if candidates is None else candidates
             for h in histories]
    pairs = list(zip(histories, pools, strict=True))
    jobs = [ScoreJob(h, pool, "ranking", top=10) for h, pool in pairs]
    batches = [pad_batch([h], [pool]) for h, pool in pairs]

    def median_ms(call) -> float:  # noqa: ANN001 - a zero-argument callable
        samples = []
        for n in range(repeats + 10):
            started = time.perf_counter()
            call(n)
            if n >= 10:
                samples.append((time.perf_counter() - started) * 1000)
        return float(np.median(samples))

    return {
        "scorer_run_p50_ms": median_ms(lambda n: predictor.run([jobs[n % len(jobs)]])),
        "ranker_forward_p50_ms": median_ms(
            lambda n: ranking_scores(
                predictor.ranking_model, batches[n % len(batches)], predictor.item_side
            )
        ),
    }


def alternated(calls: list[Callable[[str], httpx.Response]], users: list[str], repeats: int,
               warmup: int) -> list[list[float]]:
    """Milliseconds of each call, one sequential client taking the calls in turn, request by
    request, over `users`, so that every call sees the same machine; warm-up rounds left out."""
    samples: list[list[float]] = [[] for _ in calls]
    for n in range(warmup + repeats):
        user = users[n % len(users)]
        for timings, call in zip(samples, calls, strict=True):
            started = time.perf_counter()
            response = call(user)
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            if n >= warmup:
                timings.append(elapsed)
    return samples


def explain_cost(url: str, users: list[str], repeats: int = 100, warmup: int = 10) -> dict:
    """Single client, whole-catalogue /v1/rank with k = 10, without and with `explain`,
    alternated request by request so that both see the same machine."""
    with httpx.Client(base_url=url, timeout=60) as http:
        plain, explained = alternated(
            [lambda u, explain=explain: http.post(
                "/v1/rank", json={"user_id": u, "k": 10, "explain": explain})
             for explain in (False, True)], users, repeats, warmup)
    without, with_reasons = percentiles(plain), percentiles(explained)
    return {"without": without, "with": with_reasons,
            "p50_ratio": with_reasons["p50_ms"] / without["p50_ms"]}


def request_path(service_url: str, floor_url: str, users: list[str], items: list[str],
                 rng: random.Random, repeats: int = 300, warmup: int = 30) -> dict:
    """One sequential client: the floor's GET of a user's history and `POST /v1/rank` with
    PATH_CANDIDATES candidates for the same user, alternated request by request so that
    both see the same machine. What rank pays over the floor is the service's own path:
    middleware, validation, the batcher's hop, scoring, rendering."""
    candidates = {u: rng.sample(items, PATH_CANDIDATES) for u in users}
    with httpx.Client(base_url=floor_url, timeout=60) as bare, \
            httpx.Client(base_url=service_url, timeout=60) as http:
        floor, rank = alternated([
            lambda u: bare.get(f"/floor/{u}"),
            lambda u: http.post("/v1/rank", json={"user_id": u, "k": 10,
                                                  "candidates": candidates[u]}),
        ], users, repeats, warmup)
    floor_figures, rank_figures = percentiles(floor), percentiles(rank)
    return {"floor": floor_figures, "rank": rank_figures,
            "p50_ratio": rank_figures["p50_ms"] / floor_figures["p50_ms"]}


def throughput(servers: dict[str, tuple[subprocess.Popen, str, list[Spec]]], seconds: int,
               folder: Path) -> dict[str, dict]:
    """wrk at THROUGHPUT_CONCURRENCY against each server (name -> process, url, specs), with
    the server's CPU seconds per request over the run. The ceiling is what the machine's
    cores could serve if the server had them all: cores / CPU seconds per request."""
    cores = len(os.sched_getaffinity(0))
    out: dict[str, dict] = {}
    for name, (proc, url, specs) in servers.items():
        wrk(url, specs, THROUGHPUT_CONCURRENCY, 2, folder)  # warm-up
        cpu_before, (idle_before, total_before) = cpu_seconds(proc.pid), machine_idle()
        figures = wrk(url, specs, THROUGHPUT_CONCURRENCY, seconds, folder)
        idle_after, total_after = machine_idle()
        cpu = cpu_seconds(proc.pid) - cpu_before
        per_request = cpu / figures["requests"]
        figures["server_cpu_s"] = cpu
        figures["server_cpu_ms_per_request"] = per_request * 1000
        figures["server_cores_used"] = cpu / figures["seconds"]
        figures["ceiling_per_second"] = cores / per_request
        figures["of_ceiling"] = figures["per_second"] / figures["ceiling_per_second"]
        figures["machine_idle_share"] = (idle_after - idle_before) / (total_after - total_before)
        out[name] = figures
        print(name, figures, flush=True)
    return out


def growth(url: str, items: list[str], rng: random.Random) -> dict[str, dict]:
    """Single-client /v1/rank p50 against history length and candidate count."""
    out: dict[str, dict] = {"history_length": {}, "candidates": {}}
    with httpx.Client(base_url=url, timeout=60) as http:
        for length in (10, 30, 100, 300, 1000):
            user = f"bench-length-{length}"
            chosen = rng.sample(items, min(length, len(items)))
            ratings = [{"item_id": i, "rating": rng.randint(1, 5), "timestamp": 1000 + n}
                       for n, i in enumerate(chosen)]
            for start in range(0, len(ratings), 250):
                http.post(f"/v1/users/{user}/ratings",
                          json={"ratings": ratings[start : start + 250]}).raise_for_status()
            candidates = rng.sample(items, 1000)
            out["history_length"][length] = timed(lambda u=user, c=candidates: http.post(
                "/v1/rank", json={"user_id": u, "candidates": c, "k": 10}), 100, 10)
        user = f"bench{HISTORY}-0"
        for count in (10, 100, 1000, len(items)):
            candidates = rng.sample(items, count)
            out["candidates"][count] = timed(lambda c=candidates: http.post(
                "/v1/rank", json={"user_id": user, "candidates": c, "k": 10}), 100, 10)
    return out


def load_arguments(parser: argparse.ArgumentParser) -> None:
    """What every load benchmark takes: the model, the ratings its users come from, and
    how long each wrk run lasts."""
    parser.add_argument("--artifact", type=Path, default=Path("var/artifacts/ml-100k"))
    parser.add_argument("--ratings", type=Path,
                        default=Path("var/data/movielens-100k/ml-100k.inter"))
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    load_arguments(parser)
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY),
                        help="wrk connections to run at (batching off: those >= 32)")
    parser.add_argument("--only", nargs="+", choices=("path", "throughput", "explain"),
                        help="run only these measurements (about a minute)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes of the service and of the floor app alike")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    started = provenance()
    only = set(args.only or ())

    rng = random.Random(0)
    items = [row["id"] for row in json.loads((args.artifact / "items.json").read_text())]
    users = bench_users(args.ratings, rng)
    cases = load_cases(list(users), items, rng)
    floor_specs = [("GET", f"/floor/{u}", "") for u in users]

    redis_port, service_port, floor_port = free_port(), free_port(), free_port()
    service_url, floor_url = f"http://127.0.0.1:{service_port}", f"http://127.0.0.1:{floor_port}"
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    results: dict[str, dict] = {}
    goals: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {"REDIS_URL": redis_url, "BECAUSE_DATA_DIR": tmp}
        # `-m` from the working tree: the code of this checkout, whatever is installed
        serve = [sys.executable, "-m", "because.cli", "serve", "--artifact",
                 str(args.artifact), "--port", str(service_port), "--workers", str(args.workers)]
        if not only:
            serve += ["--import-ratings", str(args.ratings)]
        floor = [sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--port",
                 str(floor_port), "--log-level", "info", "--workers", str(args.workers)]
        log = folder / "servers.log"
        with redis_server(redis_port, tmp):
            with process(serve, env, log, f"{service_url}/readyz") as service_process, \
                    process(floor, env, log, f"{floor_url}/floor/none") as floor_process:
                with httpx.Client(base_url=service_url, timeout=60) as http:
                    for user, ratings in users.items():
                        http.post(f"/v1/users/{user}/ratings",
                                  json={"ratings": ratings}).raise_for_status()
                if not only or "path" in only:
                    goals["path"] = request_path(service_url, floor_url, list(users), items, rng)
                    print("request path", goals["path"], flush=True)
                if not only or "throughput" in only:
                    goals["throughput"] = throughput({
                        "floor: HTTP + Redis GET": (floor_process, floor_url, floor_specs),
                        "POST /v1/rank (1000 candidates)": (
                            service_process, service_url,
                            cases["POST /v1/rank (1000 candidates)"]),
                    }, args.seconds, folder)
                if not only or "explain" in only:
                    explained = explain_cost(service_url, list(users))
                    print("explanations", explained, flush=True)
                    goals["explain"] = explained
                if not only:
                    for c in args.concurrency:
                        wrk(floor_url, floor_specs, c, 2, folder)  # warm-up
                        results.setdefault("floor: HTTP + Redis GET", {})[c] = wrk(
                            floor_url, floor_specs, c, args.seconds, folder)
                        for name, specs in cases.items():
                            wrk(service_url, specs, c, 2, folder)
                            results.setdefault(name, {})[c] = service_wrk(
                                service_url, specs, c, args.seconds, folder)
                            print(name, c, results[name][c], flush=True)
                    growth_figures = growth(service_url, items, rng)
            if not only:
                batching_off = {}
                with process(serve, {**env, "BECAUSE_BATCH_MAX_SIZE": "1"}, log,
                             f"{service_url}/readyz"):
                    for c in [c for c in args.concurrency if c >= 32]:
                        specs = cases["POST /v1/rank (1000 candidates)"]
                        wrk(service_url, specs, c, 2, folder)
                        batching_off[c] = service_wrk(service_url, specs, c, args.seconds,
                                                      folder)
        unavailable = store_unavailable_causes(log)

    report_goals(goals)
    path = append_result("request_path", {"artifact": str(args.artifact),
                                          "workers": args.workers,
                                          "seconds_per_run": args.seconds,
                                          "history_length": HISTORY, **goals}, started)
    print(f"appended to {path}")
    if only:
        return
    histories = [
        History(np.array([items.index(r["item_id"]) for r in rs], np.int64),
                np.array([r["rating"] for r in rs], np.float32))
        for rs in users.values()
    ]
    candidates = np.array(sorted(rng.sample(range(len(items)), 1000)), np.int64)
    compute = {"1000 candidates": compute_floor(args.artifact, histories, candidates),
               "whole catalogue": compute_floor(args.artifact, histories, None)}
    report(results, batching_off, compute, growth_figures, explained)
    for cause, count in unavailable.items():
        print(f"503 x {count}: {cause}")
    path = append_result("serve", {
        "seconds_per_run": args.seconds, "history_length": HISTORY, "load": results,
        "batching_off": batching_off, "compute_floor": compute, "growth": growth_figures,
        "store_unavailable_causes": unavailable, "explanations": explained,
    }, started)
    print(f"appended to {path}")


def report_goals(goals: dict) -> None:
    path = goals.get("path")
    if path is not None:
        print(f"\nrequest path, one client, {HISTORY}-item history: /v1/rank with "
              f"{PATH_CANDIDATES} candidates p50 {path['rank']['p50_ms']:.2f} ms, floor "
              f"{path['floor']['p50_ms']:.2f} ms: x{path['p50_ratio']:.2f} (goal <= x3)")
    for name, f in goals.get("throughput", {}).items():
        print(f"{name} at c = {THROUGHPUT_CONCURRENCY}: {f['per_second']:.0f} req/s, server CPU "
              f"{f['server_cpu_ms_per_request']:.3f} ms per request, ceiling "
              f"{f['ceiling_per_second']:.0f} req/s, achieved x{f['of_ceiling']:.2f} of it "
              f"(goal for rank >= 0.60); the server used {f['server_cores_used']:.2f} of "
              f"{len(os.sched_getaffinity(0))} cores, machine idle {f['machine_idle_share']:.0%}")
    explained = goals.get("explain")
    if explained is not None:
        print(f"/v1/rank whole catalogue, k = 10, one client: p50 "
              f"{explained['with']['p50_ms']:.2f} ms with explain, "
              f"{explained['without']['p50_ms']:.2f} ms without: x{explained['p50_ratio']:.2f} "
              f"(goal <= x1.5)")


def report(results: dict, batching_off: dict, compute: dict, growth_figures: dict,
           explained: dict) -> None:
    floor = results["floor: HTTP + Redis GET"]
    print(f"\n{BENCH_USERS} users with {HISTORY} ratings; wrk, one thread, keep-alive")
    print("| endpoint | concurrency | p50 ms | p95 ms | p99 ms | req/s | non-2xx |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, by_c in results.items():
        for c, f in by_c.items():
            print(f"| {name} | {c} | {f['p50_ms']:.2f} | {f['p95_ms']:.2f} | "
                  f"{f['p99_ms']:.2f} | {f['per_second']:.0f} | {non_2xx_cell(f)} |")
    for job, figures in compute.items():
        rank = results[f"POST /v1/rank ({job})"][1]["p50_ms"]
        floors = floor[1]["p50_ms"] + figures["scorer_run_p50_ms"]
        print(f"compute floor (in process, {job}): Predictor.run "
              f"{figures['scorer_run_p50_ms']:.2f} ms, ranker forward alone "
              f"{figures['ranker_forward_p50_ms']:.2f} ms")
        print(f"/v1/rank {job}, concurrency 1: p50 {rank:.2f} ms = "
              f"x{rank / floors:.2f} the sum of the floors ({floor[1]['p50_ms']:.2f} + "
              f"{figures['scorer_run_p50_ms']:.2f} ms); goal <= x2")
    on = results["POST /v1/rank (1000 candidates)"]
    for c, off in batching_off.items():
        print(f"micro-batching at concurrency {c}: {on[c]['per_second']:.0f} req/s on, "
              f"{off['per_second']:.0f} off: x{on[c]['per_second'] / off['per_second']:.2f}")
    print(f"/v1/rank whole catalogue, k = 10, one client: p50 {explained['with']['p50_ms']:.2f} ms "
          f"with explain, {explained['without']['p50_ms']:.2f} ms without: "
          f"x{explained['p50_ratio']:.2f}; goal <= x1.5")
    for axis, by_value in growth_figures.items():
        cells = ", ".join(f"{v}: {f['p50_ms']:.2f}" for v, f in by_value.items())
        print(f"/v1/rank p50 ms by {axis}: {cells}")


if __name__ == "__main__":
    main()
