"""Overload: `POST /v1/rank` with 1000 candidates at a concurrency the process cannot keep
up with, against the same request at c = 32, in one run (the serve_load setup and wrk).

Past `BECAUSE_MAX_IN_FLIGHT` requests a process answers 503 + Retry-After
(service/overload.py).
Goal (issue "scale out"): at c = 256 for 10 s, no socket errors or timeouts, every non-2xx
a 503, the p99 of all answers under 1 s, and 2xx throughput at least 90% of c = 32's.

    .venv/bin/python -m bench.overload --artifact A --ratings R [--max-in-flight 64 128]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

import httpx

from bench.record import append_result, provenance
from bench.serve_load import (
    bench_users,
    free_port,
    load_cases,
    process,
    redis_server,
    service_wrk,
    wrk,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, default=Path("var/artifacts/ml-100k"))
    parser.add_argument("--ratings", type=Path,
                        default=Path("var/data/movielens-100k/ml-100k.inter"))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--max-in-flight", type=int, nargs="+", default=[128],
                        help="BECAUSE_MAX_IN_FLIGHT values to run, one service each")
    args = parser.parse_args()
    started = provenance()
    rng = random.Random(0)
    items = [row["id"] for row in json.loads((args.artifact / "items.json").read_text())]
    users = bench_users(args.ratings, rng)
    specs = load_cases(list(users), items, rng)["POST /v1/rank (1000 candidates)"]
    redis_port = free_port()
    found: dict[int, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with redis_server(redis_port, tmp):
            for limit in args.max_in_flight:
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                env = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                       "BECAUSE_DATA_DIR": tmp, "BECAUSE_MAX_IN_FLIGHT": str(limit)}
                # `-m` from the working tree: the code of this checkout, whatever is installed
                serve = [sys.executable, "-m", "because.cli", "serve", "--artifact",
                         str(args.artifact), "--port", str(port)]
                with process(serve, env, folder / "serve.log", f"{url}/readyz"):
                    with httpx.Client(base_url=url, timeout=60) as http:
                        for user, ratings in users.items():
                            http.post(f"/v1/users/{user}/ratings",
                                      json={"ratings": ratings}).raise_for_status()
                    runs = {}
                    for c in (32, 256):
                        wrk(url, specs, c, 2, folder)  # warm-up
                        runs[c] = service_wrk(url, specs, c, args.seconds, folder)
                        runs[c]["ok_per_second"] = (
                            runs[c]["requests"] - runs[c]["non_2xx"]) / runs[c]["seconds"]
                        print(limit, c, runs[c], flush=True)
                found[limit] = runs

    print("| max in flight | c | req/s | 2xx/s | p50 ms | p99 ms | non-2xx | socket errors |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for limit, runs in found.items():
        for c, r in runs.items():
            print(f"| {limit} | {c} | {r['per_second']:.0f} | {r['ok_per_second']:.0f} | "
                  f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['non_2xx_by_status'] or 0} | "
                  f"{r['socket_errors']} |")
        ratio = runs[256]["ok_per_second"] / runs[32]["ok_per_second"]
        only_503 = set(runs[256]["non_2xx_by_status"]) <= {"503"}
        print(f"max in flight {limit}: 2xx/s at c = 256 over c = 32 x{ratio:.2f} (goal >= 0.90)"
              f"; p99 {runs[256]['p99_ms']:.0f} ms (goal < 1000); non-2xx all 503: {only_503}; "
              f"socket errors {runs[256]['socket_errors']} (goal 0)")
    path = append_result("overload", {"seconds": args.seconds, "runs": found}, started)
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
