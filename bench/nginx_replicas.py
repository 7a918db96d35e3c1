"""Three replicas behind nginx, as `docker compose up` runs them, on this machine: the
compose file's own deploy/nginx.conf in front of three local `because serve` processes on
one redis-server (no image or container engine needed).

Checks, and exits 1 when one fails: every replica answers through the balancer; a rating
POSTed through nginx is in the very next request's answer, whichever replica serves it.
Then measures `POST /v1/rank` with 1000 candidates at c = 32 (wrk, the serve_load setup),
through nginx to the three replicas and straight to one of them, side by side. Needs nginx
(Debian: apt-get install nginx) and wrk.

    .venv/bin/python -m bench.nginx_replicas --artifact A --ratings R [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from bench.record import append_result, provenance
from bench.serve_load import (
    bench_users,
    free_port,
    load_arguments,
    load_cases,
    process,
    redis_server,
    wait_ready,
    wrk,
)

CONFIG = Path(__file__).parent.parent / "deploy" / "nginx.conf"
REPLICAS = 3
CASE = "POST /v1/rank (1000 candidates)"


def local_config(folder: Path, port: int, replicas: list[int]) -> str:
    """deploy/nginx.conf with its lines marked "local:" pointed at this machine."""
    text = CONFIG.read_text()
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=3 fail_timeout=5s;"
                        for p in replicas)
    for line, local in [
        ("pid /tmp/nginx.pid;", f"pid {folder}/nginx.pid;"),
        ("access_log /dev/stdout upstream;", f"access_log {folder}/access.log upstream;"),
        ("        server because:8000 max_fails=3 fail_timeout=5s;", servers),
        ("listen 8000;", f"listen 127.0.0.1:{port};"),
    ]:
        if line not in text:
            raise RuntimeError(f"{CONFIG} no longer has the line {line!r}")
        text = text.replace(line, local)
    return text


@contextmanager
def nginx(folder: Path, config: str, port: int) -> Iterator[None]:
    path = folder / "nginx.conf"
    path.write_text(config)
    command = ["nginx", "-p", str(folder), "-c", str(path), "-e", str(folder / "error.log"),
               "-g", "daemon off;"]
    subprocess.run([*command[:-2], "-t"], check=True, capture_output=True)  # the syntax
    server = subprocess.Popen(command)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", 30, server)
        yield
    finally:
        server.terminate()
        server.wait(10)


def answered_by(folder: Path, skip: int = 0) -> list[str]:
    """The replica (address) of each request nginx logged, after the first `skip`."""
    lines = (folder / "access.log").read_text().splitlines()[skip:]
    return [line.split()[-2] for line in lines]


def read_your_writes(url: str, folder: Path, items: list[str], rounds: int = 6) -> list[str]:
    """Each rating POSTed through nginx is in the next GET's answer; the replicas that
    answered the GETs."""
    readers = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for n in range(rounds):
            http.post("/v1/users/ryw-nginx/ratings", json={"ratings": [
                {"item_id": items[n], "rating": 4, "timestamp": 1_000 + n}]}).raise_for_status()
            skip = len((folder / "access.log").read_text().splitlines())
            history = http.get("/v1/users/ryw-nginx/ratings").json()
            if (history["history_size"], history["ratings"][0]["item_id"]) != (n + 1, items[n]):
                raise SystemExit(f"read-your-writes failed in round {n}: {history}")
            time.sleep(0.1)  # nginx writes its log line after the answer
            readers += answered_by(folder, skip)
    return readers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    load_arguments(parser)
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (Debian: apt-get install {tool})")
    started = provenance()
    rng = random.Random(0)
    items = [row["id"] for row in json.loads((args.artifact / "items.json").read_text())]
    users = bench_users(args.ratings, rng)
    specs = load_cases(list(users), items, rng)[CASE]
    redis_port, port = free_port(), free_port()
    replicas = [free_port() for _ in range(REPLICAS)]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as running:
        folder = Path(tmp)
        running.enter_context(redis_server(redis_port, tmp))
        env = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "BECAUSE_DATA_DIR": tmp}
        for replica in replicas:
            serve = [sys.executable, "-m", "because.cli", "serve", "--artifact",
                     str(args.artifact), "--port", str(replica)]
            running.enter_context(process(serve, env, folder / "serve.log",
                                          f"http://127.0.0.1:{replica}/readyz"))
        running.enter_context(nginx(folder, local_config(folder, port, replicas), port))
        readers = read_your_writes(url, folder, items)
        print("read-your-writes through nginx: every GET saw the rating POSTed before it; "
              f"GETs answered by {dict(Counter(readers))}", flush=True)
        with httpx.Client(base_url=url, timeout=60) as http:
            for user, ratings in users.items():
                http.post(f"/v1/users/{user}/ratings", json={"ratings": ratings}
                          ).raise_for_status()
        runs = {}
        for name, target in (("nginx, 3 replicas", url),
                             ("one replica, direct", f"http://127.0.0.1:{replicas[0]}")):
            wrk(target, specs, 32, 2, folder)  # warm-up
            skip = len((folder / "access.log").read_text().splitlines())
            runs[name] = wrk(target, specs, 32, args.seconds, folder)
            runs[name]["answered_by"] = dict(Counter(answered_by(folder, skip)))
            print(name, runs[name], flush=True)

    shares = runs["nginx, 3 replicas"]["answered_by"]
    print(f"\n{CASE}, wrk c = 32, {args.seconds} s each")
    print("| target | req/s | p50 ms | p99 ms | non-2xx | socket errors | answered by |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in runs.items():
        print(f"| {name} | {r['per_second']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
              f"{r['non_2xx']} | {r['socket_errors']} | {r['answered_by'] or '-'} |")
    path = append_result("nginx_replicas", {
        "case": CASE, "concurrency": 32, "seconds": args.seconds, "replicas": REPLICAS,
        "read_your_writes_readers": dict(Counter(readers)), "runs": runs,
    }, started)
    print(f"appended to {path}")
    if len(shares) < REPLICAS or len(set(readers)) < 2:
        sys.exit(f"not every replica answered: {shares}, reads {Counter(readers)}")


if __name__ == "__main__":
    main()
