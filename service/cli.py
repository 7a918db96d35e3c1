"""`because serve` and `because import-ratings`."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--artifact", type=Path, help="artifact folder (env BECAUSE_ARTIFACT)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--import-ratings", type=Path, help="ratings file loaded into Redis once, before serving"
    )
    serve.set_defaults(run=_serve)

    load = commands.add_parser("import-ratings", help="load a ratings file into Redis histories")
    load.add_argument("path", type=Path)
    load.add_argument("--force", action="store_true", help="import even if imported before")
    load.set_defaults(run=_import)


def _settings(args: argparse.Namespace):  # noqa: ANN202 - avoids importing settings eagerly
    from service.settings import Settings

    overrides = {}
    if getattr(args, "artifact", None) is not None:
        overrides["artifact"] = args.artifact
    if getattr(args, "import_ratings", None) is not None:
        overrides["import_ratings"] = args.import_ratings
    return Settings(**overrides)


def _serve(args: argparse.Namespace) -> int:
    import torch
    import uvicorn

    from service.app import create_app

    settings = _settings(args)
    # Process-wide, so set by the process that serves rather than by the app factory.
    torch.set_num_threads(settings.scoring_threads)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="info",
        timeout_graceful_shutdown=10,
    )
    return 0


def _import(args: argparse.Namespace) -> int:
    from service.importer import import_ratings
    from service.rating_store import RatingStore
    from service.redis_client import redis_connection

    settings = _settings(args)

    async def run() -> int:
        async with redis_connection(settings) as client:
            store = RatingStore(client, settings.key_prefix, settings.history_cap)
            return await import_ratings(
                client, store, args.path, settings.key_prefix, force=args.force
            )

    written = asyncio.run(run())
    print(f"imported {written} ratings" if written else "already imported (use --force)")
    return 0
