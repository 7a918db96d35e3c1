"""The HTTP + Redis floor: a bare FastAPI route that reads a user's history blob from Redis
and returns it as is. Any /v1 call that needs the history pays at least this; the load
benchmark serves it with the same uvicorn settings as the service, beside it.

    REDIS_URL=redis://127.0.0.1:6390/0 uvicorn bench.floor_app:app --port 8001
"""

from __future__ import annotations

import os

import redis.asyncio as aioredis
from fastapi import FastAPI, Response

from service.keys import Keys
from service.settings import Settings

KEYS = Keys(os.environ.get("BECAUSE_KEY_PREFIX", "because"))

app = FastAPI(title="HTTP + Redis floor")
# The service's pool policy, so that neither pays for connections the other does not: a
# bounded pool where a command waits for a free connection.
client = aioredis.Redis.from_pool(
    aioredis.BlockingConnectionPool.from_url(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        max_connections=Settings.model_fields["redis_max_connections"].default,
    )
)


@app.get("/floor/{user_id}")
async def history_blob(user_id: str) -> Response:
    blob = await client.get(KEYS.history(user_id))
    return Response(blob or b"", media_type="application/octet-stream")
