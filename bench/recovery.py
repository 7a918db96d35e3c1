"""How long the service takes to be ready again after Redis comes back.

Starts its own redis-server (a free port, nothing on disk) and `because serve` against it,
then, `--rounds` times: stops Redis, waits until `/readyz` answers 503, starts Redis again
on the same port and times until `/readyz` answers 200. The tests only check that the
service recovers by itself (with a deadline a starved machine keeps); this is the figure.

    .venv/bin/python -m bench.recovery --artifact var/artifacts/ml-100k
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.record import append_result
from bench.serve_load import free_port, process


def redis_server(port: int, folder: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", folder], stdout=subprocess.DEVNULL)


def wait_for(url: str, status: int, seconds: float = 60) -> float:
    """Seconds until `url` answers `status`, polled every 10 ms."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            if httpx.get(url, timeout=1).status_code == status:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} did not answer {status} within {seconds:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, default=Path("var/artifacts/ml-100k"))
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()

    redis_port, service_port = free_port(), free_port()
    ready = f"http://127.0.0.1:{service_port}/readyz"
    recoveries = []
    with tempfile.TemporaryDirectory() as tmp:
        redis = redis_server(redis_port, tmp)
        env = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "BECAUSE_DATA_DIR": tmp}
        serve = [str(Path(sys.executable).parent / "because"), "serve", "--artifact",
                 str(args.artifact), "--port", str(service_port)]
        try:
            with process(serve, env, Path(tmp) / "serve.log", ready):
                for _ in range(args.rounds):
                    redis.terminate()
                    redis.wait(10)
                    wait_for(ready, 503)
                    redis = redis_server(redis_port, tmp)
                    recoveries.append(wait_for(ready, 200))
        finally:
            redis.terminate()
            redis.wait(10)
    seconds = np.array(recoveries)
    figures = {"rounds": len(seconds), "p50_s": float(np.median(seconds)),
               "max_s": float(seconds.max()), "seconds": [round(s, 3) for s in recoveries]}
    print(f"ready again after Redis returned: p50 {figures['p50_s']:.2f} s, "
          f"max {figures['max_s']:.2f} s over {len(seconds)} rounds (goal: within 2 s)")
    print(f"appended to {append_result('recovery', figures)}")


if __name__ == "__main__":
    main()
