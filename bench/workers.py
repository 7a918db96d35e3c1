"""Which `because serve --workers N` is best on this host: wrk against `POST /v1/rank` with
1000 candidates at c = 32, for each N side by side in one run.

One redis-server of our own; one service per N (`python -m because.cli serve --workers N`,
this checkout's code, default BECAUSE_TORCH_THREADS: cores / N - 1, at least 1), all
started before the first measurement and idle while another is measured. Rounds alternate
the Ns (1, 2, 3, 1, 2, 3, ...) so that each sees the same machine; each point is a 2 s
warm-up then `--seconds` of wrk (one thread, keep-alive), the serve_load setup: 32 bench
users of 128 ratings. Per point: throughput, p50/p99, non-2xx and socket errors (from wrk:
each worker keeps its own /metrics, so the service's status counts are not read), and the
service's CPU (supervisor and workers): seconds per request, and cores kept busy. The
figures are medians over the rounds.

    .venv/bin/python -m bench.workers --artifact A --ratings R [--workers 1 2 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx
import psutil

from bench.record import append_result, provenance
from bench.serve_load import (
    bench_users,
    cpu_seconds,
    free_port,
    load_arguments,
    load_cases,
    process,
    redis_server,
    wrk,
)

CASE = "POST /v1/rank (1000 candidates)"
CONCURRENCY = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    load_arguments(parser)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--rounds", type=int, default=1, help="passes over every N")
    args = parser.parse_args()
    started = provenance()
    rng = random.Random(0)
    items = [row["id"] for row in json.loads((args.artifact / "items.json").read_text())]
    users = bench_users(args.ratings, rng)
    specs = load_cases(list(users), items, rng)[CASE]
    redis_port = free_port()
    ports = {n: free_port() for n in args.workers}
    pids: dict[int, int] = {}
    runs: dict[int, list[dict]] = {n: [] for n in args.workers}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as services:
        folder = Path(tmp)
        services.enter_context(redis_server(redis_port, tmp))
        env = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "BECAUSE_DATA_DIR": tmp}
        for n, port in ports.items():
            serve = [sys.executable, "-m", "because.cli", "serve", "--artifact",
                     str(args.artifact), "--port", str(port), "--workers", str(n)]
            pids[n] = services.enter_context(process(
                serve, env, folder / f"serve-{n}.log", f"http://127.0.0.1:{port}/readyz")).pid
        with httpx.Client(base_url=f"http://127.0.0.1:{ports[args.workers[0]]}",
                          timeout=60) as http:
            for user, ratings in users.items():
                http.post(f"/v1/users/{user}/ratings", json={"ratings": ratings}
                          ).raise_for_status()
        for _ in range(args.rounds):
            for n, port in ports.items():
                url = f"http://127.0.0.1:{port}"
                wrk(url, specs, CONCURRENCY, 2, folder)  # warm-up: every worker scores
                cpu = cpu_seconds(pids[n])
                figures = wrk(url, specs, CONCURRENCY, args.seconds, folder)
                cpu = cpu_seconds(pids[n]) - cpu
                figures["cpu_s_per_request"] = cpu / figures["requests"]
                figures["cores_used"] = cpu / figures["seconds"]
                runs[n].append(figures)
                print(n, figures, flush=True)
        # The supervisor replaces a worker that misses its health checks: none should.
        replaced = {n: (folder / f"serve-{n}.log").read_text().count("] died")
                    for n in ports}

    print(f"\n{CASE}, wrk c = {CONCURRENCY}, {args.seconds} s a point, "
          f"{psutil.cpu_count()} cores")
    print("| workers | req/s (each round) | vs 1 worker | p50 ms | p99 ms | CPU ms/request "
          "| cores used | non-2xx | socket errors |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    base = statistics.median(r["per_second"] for r in runs[args.workers[0]])
    for n, rounds in runs.items():
        rate = statistics.median(r["per_second"] for r in rounds)
        each = ", ".join(f"{r['per_second']:.0f}" for r in rounds)
        print(f"| {n} | {each} | x{rate / base:.2f} | "
              f"{statistics.median(r['p50_ms'] for r in rounds):.1f} | "
              f"{statistics.median(r['p99_ms'] for r in rounds):.1f} | "
              f"{1000 * statistics.median(r['cpu_s_per_request'] for r in rounds):.2f} | "
              f"{statistics.median(r['cores_used'] for r in rounds):.2f} | "
              f"{sum(r['non_2xx'] for r in rounds)} | "
              f"{sum(r['socket_errors'] for r in rounds)} |")
    best = max(runs, key=lambda n: statistics.median(r["per_second"] for r in runs[n]))
    print(f"best: --workers {best}; workers replaced by their supervisor: {replaced}")
    path = append_result("workers", {
        "case": CASE, "concurrency": CONCURRENCY, "seconds": args.seconds,
        "cores": psutil.cpu_count(), "runs": runs, "best": best, "workers_replaced": replaced,
    }, started)
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
