"""Rough single-client latencies of a running service, beside its floors, in one run.

Sequential requests (concurrency 1) against a served artifact whose users are loaded
(`make serve`). Floors measured in the same run: `/healthz` (HTTP, no Redis, no model)
and `GET /v1/users/{id}/ratings` (HTTP + one Redis read). Load testing under concurrency
is a separate benchmark; this one answers "how long does one call take".

    .venv/bin/python -m bench.latency --url http://127.0.0.1:8000 \
        --artifact var/artifacts/ml-100k --user 196
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.record import append_result


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return {
        "p50_ms": round(statistics.median(samples_ms), 2),
        "p95_ms": round(cuts[94], 2),
        "p99_ms": round(cuts[98], 2),
    }


def timed(call: Callable[[], httpx.Response], repeats: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        call().raise_for_status()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return percentiles(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--artifact", type=Path, default=Path("var/artifacts/ml-100k"))
    parser.add_argument("--user", default="196", help="a user whose history is loaded")
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    items = [row["id"] for row in json.loads((args.artifact / "items.json").read_text())]
    rng = random.Random(0)
    c100, c1000 = rng.sample(items, 100), rng.sample(items, 1000)
    user = args.user
    with httpx.Client(base_url=args.url, timeout=30) as http:
        history_size = http.get(f"/v1/users/{user}/ratings").json()["history_size"]
        cases: dict[str, Callable[[], httpx.Response]] = {
            "floor: GET /healthz": lambda: http.get("/healthz"),
            "floor: GET /v1/users/{id}/ratings": lambda: http.get(f"/v1/users/{user}/ratings"),
            "POST /v1/score (10 items)": lambda: http.post(
                "/v1/score", json={"user_id": user, "item_ids": c100[:10]}
            ),
            "POST /v1/rank (100 candidates)": lambda: http.post(
                "/v1/rank", json={"user_id": user, "candidates": c100, "k": 10}
            ),
            "POST /v1/rank (1000 candidates)": lambda: http.post(
                "/v1/rank", json={"user_id": user, "candidates": c1000, "k": 10}
            ),
            "POST /v1/rank (whole catalogue)": lambda: http.post(
                "/v1/rank", json={"user_id": user, "k": 10}
            ),
            "GET /v1/users/{id}/explanations": lambda: http.get(
                f"/v1/users/{user}/explanations", params={"item_id": c100[0], "k": 5}
            ),
            "POST /v1/users/{id}/ratings (1 rating)": lambda: http.post(
                "/v1/users/bench-writer/ratings",
                json={"ratings": [{"item_id": rng.choice(items), "rating": 4}]},
            ),
        }
        figures = {name: timed(call, args.repeats, args.warmup) for name, call in cases.items()}
        http.delete("/v1/users/bench-writer")

    record = {
        "url": args.url,
        "user_history_size": history_size,
        "repeats": args.repeats,
        "figures": figures,
    }
    floor = figures["floor: GET /v1/users/{id}/ratings"]["p50_ms"]
    print(f"user {user}, history {history_size}, {args.repeats} sequential calls each")
    for name, f in figures.items():
        print(f"{name:45s} p50 {f['p50_ms']:7.2f} ms  p95 {f['p95_ms']:7.2f} ms  "
              f"x{f['p50_ms'] / floor:5.2f} of the HTTP+Redis floor")
    print(f"appended to {append_result('latency', record)}")




if __name__ == "__main__":
    main()
