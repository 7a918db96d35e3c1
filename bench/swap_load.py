"""A model hot-swap under load, measured: does a swap (and its rollback) fail or slow requests?

Starts its own redis-server (a free port, nothing on disk), a temporary model store with
both artifacts published, activates A and serves the store (`because serve --store`),
posts 200 MovieLens users' ratings through the API (only items A knows), then drives
`POST /v1/rank` (whole catalogue, k = 10, a rotating user) with wrk (one thread, keep-alive)
in three windows of `--seconds` each:

- before:   steady state on A;
- swap:     3 s in, `because models activate B`;
- rollback: 3 s in, `because models activate A` (A is still loaded: an instant swap back).

Per window: requests, req/s, p50, p99, non-2xx, socket errors and the `model_version` of
every answer (counted in wrk's Lua). In the swap and rollback windows `/v1/model` is polled
every 50 ms to time the swap (from the command's start to the new version served), and
the server's RSS (its children too) is sampled every 50 ms: before, peak, after.
`--control` adds a window that activates the version already served: what the CLI run
costs the server's neighbours on a small machine, with no swap.

Goals: no request fails during a swap (non-2xx = 0 and socket errors = 0), and p99 in
the swap window <= 2x the p99 before.

    .venv/bin/python -m bench.swap_load [--artifacts A B] [--seconds 15] [--connections 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import redis

from bench.record import append_result, provenance
from bench.serve_load import free_port, wait_ready
from service.keys import Keys

USERS = 200
SWAP_AT_S = 3.0
POLL_S = 0.05
PREFIX = "swapbench"
DEFAULT_ARTIFACTS = [Path("/tmp/foldin_cache/base-68fdf3036268"),
                     Path("/tmp/foldin_cache/retrained-d2c86d486fa2")]

# One Lua state per wrk thread: response() counts in the thread's globals, done() (which
# runs in the main state) reads them back through the threads kept by setup().
WRK_SCRIPT = """
local users = {USERS}
local threads = {}
setup = function(thread)
  table.insert(threads, thread)
end
turn = 0
statuses = {}
versions = {}
request = function()
  turn = turn % #users + 1
  return wrk.format("POST", "/v1/rank", {["Content-Type"] = "application/json"},
                    '{"user_id": "' .. users[turn] .. '", "k": 10}')
end
response = function(status, headers, body)
  local s = tostring(status)
  statuses[s] = (statuses[s] or 0) + 1
  local v = body and string.match(body, '"model_version"%s*:%s*"([^"]*)"') or nil
  v = v or "none"
  versions[v] = (versions[v] or 0) + 1
end
local function merge(into, t)
  for k, n in pairs(t or {}) do into[k] = (into[k] or 0) + n end
end
local function encode(t)
  local parts = {}
  for k, n in pairs(t) do table.insert(parts, string.format('"%s": %d', k, n)) end
  return "{" .. table.concat(parts, ", ") .. "}"
end
done = function(summary, latency, requests)
  local st, vs = {}, {}
  for _, t in ipairs(threads) do
    merge(st, t:get("statuses"))
    merge(vs, t:get("versions"))
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "non_2xx": %d, "socket_errors": %d, '
    .. '"p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, "statuses": %s, "versions": %s}\\n',
    summary.requests, summary.duration / 1e6, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    encode(st), encode(vs)))
end
"""


def wait_redis(port: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"redis-server on port {port} did not answer")


def rss_kib(pid: int) -> int:
    """VmRSS of `pid` and every descendant, in KiB (0 for a process gone)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def ml_users(data: Path, known: set[str]) -> dict[str, list[dict]]:
    """The first USERS MovieLens users (by id) -> their u.data ratings of items in `known`."""
    by_user: dict[int, list[dict]] = defaultdict(list)
    for line in (data / "u.data").read_text().splitlines():
        user, item, rating, ts = line.split("\t")
        if item in known:
            by_user[int(user)].append({"item_id": item, "rating": float(rating),
                                       "timestamp": int(ts)})
    chosen = sorted(u for u, r in by_user.items() if r)[:USERS]
    return {str(u): by_user[u] for u in chosen}


class Sampler(threading.Thread):
    """Every POLL_S: the server's RSS; while `watch` is set, /v1/model (version, and how
    long each poll took: a stalled event loop shows here)."""

    def __init__(self, pid: int, url: str):
        super().__init__(daemon=True)
        self.pid, self.url = pid, url
        self.rss: list[tuple[float, int]] = []
        self.polls: list[tuple[float, str | None, float]] = []
        self.watch = threading.Event()
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while not self.halt.is_set():
                tick = time.monotonic()
                self.rss.append((time.time(), rss_kib(self.pid)))
                if self.watch.is_set():
                    try:
                        started = time.perf_counter()
                        version = http.get("/v1/model").json().get("version")
                        took = (time.perf_counter() - started) * 1000
                    except (httpx.HTTPError, ValueError):
                        version, took = None, float("nan")
                    self.polls.append((time.time(), version, took))
                self.halt.wait(max(0.0, POLL_S - (time.monotonic() - tick)))


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="swap-load-"))
        self.store = self.tmp / "store"
        self.redis_port, self.port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                    "BECAUSE_KEY_PREFIX": PREFIX, "BECAUSE_TORCH_THREADS": "1",
                    "BECAUSE_DATA_DIR": str(self.tmp)}
        self.because = str(Path(sys.executable).parent / "because")
        self.redis: subprocess.Popen | None = None
        self.server: subprocess.Popen | None = None
        self.wrk: subprocess.Popen | None = None
        self.log = self.tmp / "server.log"

    # -- processes -----------------------------------------------------------------------

    def start(self) -> None:
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_redis(self.redis_port)

    def cli(self, *words: str) -> tuple[str, float]:
        """Runs `because WORDS --store STORE`: (its stdout, seconds it took)."""
        started = time.perf_counter()
        done = subprocess.run([self.because, *words, "--store", str(self.store)],
                              env=self.env, capture_output=True, text=True, timeout=120)
        took = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"because {' '.join(words)} failed: {done.stdout}{done.stderr}")
        return done.stdout.strip(), took

    def serve(self) -> None:
        with self.log.open("ab") as out:
            self.server = subprocess.Popen(
                [self.because, "serve", "--store", str(self.store), "--port", str(self.port)],
                env=self.env, stdout=out, stderr=out)
        wait_ready(f"{self.url}/readyz", 300, self.server)

    def close(self) -> None:
        for proc in (self.wrk, self.server, self.redis):
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- load ----------------------------------------------------------------------------

    def wrk_start(self, users: list[str], seconds: float) -> subprocess.Popen:
        script = self.tmp / "rank.lua"
        script.write_text(WRK_SCRIPT.replace("{USERS}", "{" + ", ".join(
            json.dumps(u) for u in users) + "}"))
        self.wrk = subprocess.Popen(
            ["wrk", "-t1", f"-c{self.args.connections}", f"-d{seconds:g}s", "--timeout", "30s",
             "--latency", "-s", str(script), self.url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return self.wrk

    @staticmethod
    def wrk_result(proc: subprocess.Popen) -> dict:
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"wrk failed ({proc.returncode}): {err}{out}")
        figures = json.loads(out.strip().splitlines()[-1])
        figures["per_second"] = figures["requests"] / figures["seconds"]
        return figures

    def window(self, users: list[str], activate: str | None) -> dict:
        """One wrk window; with `activate`, that version is activated SWAP_AT_S in, and the
        swap is timed and the RSS sampled."""
        sampler = Sampler(self.server.pid, self.url)
        sampler.start()
        proc = self.wrk_start(users, self.args.seconds)
        swap: dict = {}
        try:
            if activate is not None:
                time.sleep(SWAP_AT_S)
                t0 = time.time()
                sampler.watch.set()
                out, command_s = self.cli("models", "activate", activate)
                deadline = time.monotonic() + max(30.0, self.args.seconds)
                seen = None
                while seen is None and time.monotonic() < deadline:
                    seen = next((t for t, v, _ in sampler.polls if v == activate and t >= t0),
                                None)
                    time.sleep(POLL_S / 2)
                pointer = self.pointer()
                model = httpx.get(f"{self.url}/v1/model", timeout=10).json()
                swap = {
                    "version": activate,
                    "command_output": out,
                    "command_s": command_s,
                    # command start -> pointer set in Redis (CLI start-up, verification)
                    "pointer_set_s": float(pointer["activated_at"]) - t0,
                    # command start -> the server's swap (its activated_at)
                    "server_swapped_s": model["activated_at"] - t0,
                    # command start -> first /v1/model poll answering the new version
                    "swap_s": (seen - t0) if seen is not None else None,
                    "previous": model["previous"],
                    "last_error": model["last_error"],
                }
            figures = self.wrk_result(proc)
            figures["model_after"] = httpx.get(f"{self.url}/v1/model", timeout=10).json()
        finally:
            sampler.halt.set()
            sampler.join(5)
        if activate is not None:
            before = [kib for t, kib in sampler.rss if t < t0] or [sampler.rss[0][1]]
            swap["rss_mib"] = {"before": before[-1] / 1024,
                               "peak": max(k for _, k in sampler.rss) / 1024,
                               "after": sampler.rss[-1][1] / 1024}
            took = [ms for _, _, ms in sampler.polls if ms == ms]
            swap["model_poll_ms"] = {"count": len(took), "max": max(took) if took else None,
                                     "median": sorted(took)[len(took) // 2] if took else None}
            # polls slower than 50 ms: (seconds after the command's start, ms)
            swap["slow_polls"] = [(round(t - t0, 2), round(ms, 1))
                                  for t, _, ms in sampler.polls if ms > 50]
            figures["swap"] = swap
        return figures

    def pointer(self) -> dict[str, str]:
        """The version pointer as Redis holds it (set by the CLI)."""
        client = redis.Redis(port=self.redis_port, decode_responses=True)
        try:
            return client.hgetall(Keys(PREFIX).model)
        finally:
            client.close()


def report(results: dict[str, dict], versions: dict[str, str]) -> list[str]:
    name = {v: k for k, v in versions.items()}
    lines = [
        "| window | requests | req/s | p50 ms | p99 ms | max ms | non-2xx | socket errors "
        "| versions seen |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for window, f in results.items():
        seen = ", ".join(f"{name.get(v, v)} {v}: {n}" for v, n in
                         sorted(f["versions"].items(), key=lambda kv: -kv[1]))
        lines.append(
            f"| {window} | {f['requests']} | {f['per_second']:.1f} | {f['p50_ms']:.1f} | "
            f"{f['p99_ms']:.1f} | {f['max_ms']:.1f} | {f['non_2xx']} | {f['socket_errors']} "
            f"| {seen} |")
    lines.append("")
    if "control" in results:
        c = results["control"]
        ratio = c["p99_ms"] / results["before"]["p99_ms"]
        lines.append(
            f"control: `because models activate` of the version already served (no swap), "
            f"CLI {c['swap']['command_s']:.2f} s; p99 x{ratio:.2f} "
            f"the before window's; slow /v1/model polls {c['swap']['slow_polls']}")
    for window in ("swap", "rollback"):
        s = results[window]["swap"]
        rss = s["rss_mib"]
        swap_s = f"{s['swap_s']:.2f} s" if s["swap_s"] is not None else "never seen"
        lines.append(
            f"{window} to {name.get(s['version'])} ({s['version']}): {swap_s} from the command's "
            f"start to /v1/model answering it (CLI {s['command_s']:.2f} s; pointer set at "
            f"+{s['pointer_set_s']:.2f} s, server swapped at +{s['server_swapped_s']:.2f} s); "
            f"RSS {rss['before']:.0f} -> peak {rss['peak']:.0f} -> {rss['after']:.0f} MiB; "
            f"/v1/model polls: median {s['model_poll_ms']['median']:.1f} ms, max "
            f"{s['model_poll_ms']['max']:.1f} ms; slow polls (s after start, ms) "
            f"{s['slow_polls']}")
    before, during = results["before"], results["swap"]
    failed = {w: f["non_2xx"] + f["socket_errors"] for w, f in results.items()
              if w != "before"}
    ratio = during["p99_ms"] / before["p99_ms"]
    lines.append(
        f"goal, no failed request during a swap: "
        f"{'met' if not any(failed.values()) else 'MISSED'} "
        f"(swap {failed['swap']}, rollback {failed['rollback']} non-2xx + socket errors)")
    lines.append(
        f"goal, swap-window p99 <= 2x before: {'met' if ratio <= 2 else 'MISSED'} "
        f"({during['p99_ms']:.1f} / {before['p99_ms']:.1f} ms = x{ratio:.2f}; rollback window "
        f"x{results['rollback']['p99_ms'] / before['p99_ms']:.2f})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, nargs=2, default=DEFAULT_ARTIFACTS,
                        metavar=("A", "B"), help="served first / swapped to")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15, help="per window")
    parser.add_argument("--warmup", type=float, default=2, help="unrecorded wrk run first")
    parser.add_argument("--control", action="store_true",
                        help="add a window after `before` that activates the version already "
                             "served: the cost of the CLI run alone, no swap")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"),
                        help="MovieLens-100K folder (u.data): the users posted")
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("redis-server") is None:
        sys.exit("needs wrk and redis-server on PATH")
    started = provenance()
    # a TERM (a CI timeout, `kill`) unwinds through the clean-up like Ctrl-C does
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    a_dir, b_dir = args.artifacts
    known = {row["id"] for row in json.loads((a_dir / "items.json").read_text())}
    users = ml_users(args.data, known)
    bench = Bench(args)
    try:
        bench.start()
        version_a = bench.cli("models", "publish", str(a_dir))[0].split()[0]
        version_b = bench.cli("models", "publish", str(b_dir))[0].split()[0]
        bench.cli("models", "activate", version_a)
        bench.serve()
        posted = 0
        with httpx.Client(base_url=bench.url, timeout=60) as http:
            for user, ratings in users.items():
                for at in range(0, len(ratings), 500):
                    http.post(f"/v1/users/{user}/ratings",
                              json={"ratings": ratings[at : at + 500]}).raise_for_status()
                posted += len(ratings)
        print(f"A {version_a}, B {version_b}; posted {posted} ratings of {len(users)} users",
              flush=True)
        ids = list(users)
        if args.warmup > 0:
            bench.wrk_result(bench.wrk_start(ids, args.warmup))
        results = {}
        windows = [("before", None), ("swap", version_b), ("rollback", version_a)]
        if args.control:
            windows.insert(1, ("control", version_a))
        for window, activate in windows:
            results[window] = bench.window(ids, activate)
            print(window, json.dumps(results[window]), flush=True)
        swaps = [line for line in bench.log.read_text(errors="replace").splitlines()
                 if "service.lifecycle" in line or "ERROR" in line or "Traceback" in line]
    finally:
        bench.close()

    versions = {"A": version_a, "B": version_b}
    lines = report(results, versions)
    print(f"\nPOST /v1/rank (whole catalogue, k = 10), {args.connections} connections, wrk "
          f"one thread, {args.seconds:g} s per window; activation {SWAP_AT_S:g} s in")
    print("\n".join(lines))
    for line in swaps:
        print("server:", line)
    path = append_result("swap_load", {
        "artifacts": {"A": str(a_dir), "B": str(b_dir)}, "versions": versions,
        "connections": args.connections, "seconds_per_window": args.seconds,
        "swap_at_s": SWAP_AT_S, "users": len(users), "ratings_posted": posted,
        "windows": results, "server_log": swaps,
    }, started)
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
