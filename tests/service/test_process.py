"""The service as a real process (`because serve`): it refuses to start on a damaged or
mismatched artifact, naming the problem; on SIGTERM it finishes the request in flight,
refuses new connections, shuts its lifespan down and exits; its log holds neither API keys
nor histories."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import RedisTarget, free_port, stored_history

WRITER = "w-proc-4e1b7d2a9c"
STARTUP_S = 180  # torch import and artifact load on a busy 2-core machine

pytestmark = pytest.mark.slow


def serve(
    artifact: Path, redis: RedisTarget, key_prefix: str, port: int, output: int = subprocess.PIPE
) -> subprocess.Popen:
    """`because serve`; its log is piped back unless `output` says otherwise (a process
    whose pipe nobody reads blocks once the pipe is full)."""
    env = {
        **os.environ,
        "REDIS_URL": redis.url,
        "BECAUSE_REDIS_CLUSTER": str(redis.cluster).lower(),
        "BECAUSE_KEY_PREFIX": key_prefix,
        "BECAUSE_API_KEYS": json.dumps({WRITER: "write"}),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "because.cli", "serve", "--artifact", str(artifact),
         "--port", str(port)],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_ready(process: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout and process.stdout.read()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("service did not become ready")


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return False
    except OSError:
        return True


@pytest.fixture
def stopped_at_end() -> Iterator[list[subprocess.Popen]]:
    processes: list[subprocess.Popen] = []
    yield processes
    for p in processes:
        if p.poll() is None:
            p.kill()
            p.wait()
        if p.stdout is not None:
            p.stdout.close()


def flip_a_byte(folder: Path) -> None:
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))


def edit_manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        manifest = json.loads((folder / "manifest.json").read_text())
        change(manifest)
        (folder / "manifest.json").write_text(json.dumps(manifest))

    return edit


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (flip_a_byte, "model.safetensors: checksum mismatch"),
        (edit_manifest(lambda m: m.update(format_version=99)), "format_version 99"),
        (edit_manifest(lambda m: m["rating"]["model"].update(dim=m["rating"]["model"]["dim"] * 2)),
         "has shape"),
    ],
    ids=["flipped byte", "other format version", "wrong shapes"],
)
def test_a_damaged_artifact_stops_start_up_with_the_problem_named(
    artifact_dir: Path,
    tmp_path: Path,
    redis_target: RedisTarget,
    key_prefix: str,
    stopped_at_end: list,
    damage: Callable[[Path], None],
    message: str,
) -> None:
    folder = Path(shutil.copytree(artifact_dir, tmp_path / "artifact"))
    damage(folder)
    port = free_port()
    process = serve(folder, redis_target, key_prefix, port)
    stopped_at_end.append(process)
    output, _ = process.communicate(timeout=STARTUP_S)
    assert process.returncode != 0
    assert message in output
    assert "Application startup failed" in output
    assert refuses_connections(port)  # never served


def test_sigterm_finishes_the_request_in_flight_then_shuts_down_cleanly(
    artifact_dir: Path, redis_target: RedisTarget, key_prefix: str, stopped_at_end: list
) -> None:
    port = free_port()
    process = serve(artifact_dir, redis_target, key_prefix, port)
    stopped_at_end.append(process)
    wait_ready(process, port)

    body = json.dumps(
        {"ratings": [{"item_id": "i3", "rating": 4.5, "timestamp": 1_357_924_680}]}
    ).encode()
    head = (
        f"POST /v1/users/sigterm/ratings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WRITER}"
        f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    in_flight = socket.create_connection(("127.0.0.1", port), timeout=30)
    in_flight.sendall(head + body[:10])  # a slow client: half a body, then SIGTERM
    process.send_signal(signal.SIGTERM)

    deadline = time.monotonic() + 30
    while not refuses_connections(port):  # new connections are refused
        assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
        time.sleep(0.05)
    assert process.poll() is None  # still finishing the request in flight

    in_flight.sendall(body[10:])
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
        chunk = in_flight.recv(65536)
        if not chunk:
            break
        answer += chunk
    in_flight.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert b'"history_size":1' in answer

    output, _ = process.communicate(timeout=60)
    # uvicorn re-raises the signal once shut down, so the exit status says "ended by
    # SIGTERM" (143 in a shell), as supervisors expect; the log shows the clean shutdown.
    assert process.returncode == -signal.SIGTERM, output
    assert "Application shutdown complete" in output
    assert "Finished server process" in output
    with redis_target.client() as raw:
        stored = stored_history(raw, key_prefix, "sigterm")
    assert stored == [("i3", 4.5, 1_357_924_680)]
    # The whole log of the process: the key and the history never appear in it.
    assert WRITER not in output and "1357924680" not in output and "4.5" not in output


def test_two_service_processes_score_a_folded_item_alike(
    artifact_dir: Path, redis_target: RedisTarget, key_prefix: str, stopped_at_end: list, planted
) -> None:
    """A new item put and rated through one process is folded in (by whichever holds the
    lease) and loaded by both: the same request gets the same scores from each."""
    ports = [free_port(), free_port()]
    for port in ports:
        stopped_at_end.append(
            serve(artifact_dir, redis_target, key_prefix, port, output=subprocess.DEVNULL))
    for process, port in zip(stopped_at_end, ports, strict=True):
        wait_ready(process, port)
    first, second = (f"http://127.0.0.1:{p}" for p in ports)
    auth = {"Authorization": f"Bearer {WRITER}"}
    liked = [f"i{i}" for i, c in enumerate(planted.item_cluster) if planted.user_likes[0][c]]
    put = httpx.put(f"{first}/v1/items/fresh", json={"title": "Fresh", "genres": ["c0"]},
                    headers=auth, timeout=30)
    assert put.status_code == 201
    for n in range(4):
        ratings = [{"item_id": i, "rating": 5, "timestamp": 10 + k}
                   for k, i in enumerate(liked[n : n + 8])]
        ratings.append({"item_id": "fresh", "rating": 5, "timestamp": 1000 + n})
        r = httpx.post(f"{first}/v1/users/fan{n}/ratings", json={"ratings": ratings},
                       headers=auth, timeout=30)
        assert r.status_code == 200
    deadline = time.monotonic() + STARTUP_S
    while any(httpx.get(f"{url}/v1/items/fresh", timeout=30).json()["embedded"] != "folded"
              for url in (first, second)):
        assert time.monotonic() < deadline, "the item was never folded into both processes"
        time.sleep(0.2)
    ask = {"ratings": [{"item_id": i, "rating": 5} for i in liked[:6]],
           "item_ids": ["fresh", liked[7]]}
    answers = [httpx.post(f"{url}/v1/score", json=ask, timeout=30).json()
               for url in (first, second)]
    assert answers[0]["scores"] == answers[1]["scores"]
    assert answers[0]["model_version"] == answers[1]["model_version"]
