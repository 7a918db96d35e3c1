"""`because serve`, `because import-ratings`, `because export-ratings`, `because migrate`
and `because models` (publish, activate, list: the model store)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--artifact", type=Path, help="artifact folder (env BECAUSE_ARTIFACT)")
    serve.add_argument(
        "--store", type=Path,
        help="model store: serve its current version, swap on activation (env BECAUSE_STORE)",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers", type=int, help="processes serving the port, one scorer each (env "
        "BECAUSE_WORKERS, default 1)",
    )
    serve.add_argument(
        "--import-ratings", type=Path, help="ratings file loaded into Redis once, before serving"
    )
    serve.set_defaults(run=_serve)

    load = commands.add_parser("import-ratings", help="load a ratings file into Redis histories")
    load.add_argument("path", type=Path)
    load.add_argument("--force", action="store_true", help="import even if imported before")
    load.set_defaults(run=_import)

    export = commands.add_parser(
        "export-ratings", help="write every stored history to a ratings file `train` reads"
    )
    export.add_argument("--out", type=Path, required=True, help="a .csv file")
    export.set_defaults(run=_export)

    migrate = commands.add_parser(
        "migrate", help="move a Redis written by an earlier Because to this version's layout"
    )
    migrate.set_defaults(run=_migrate)

    models = commands.add_parser("models", help="the model store: publish, activate, list")
    verbs = models.add_subparsers(dest="verb", required=True)
    publish = verbs.add_parser("publish", help="verify an artifact and copy it into the store")
    publish.add_argument("artifact", type=Path)
    activate = verbs.add_parser(
        "activate", help="make a version current on every process (also the rollback)"
    )
    activate.add_argument("version")
    listing = verbs.add_parser("list", help="versions, when published, metrics, which is current")
    for verb in (publish, activate, listing):
        verb.add_argument("--store", type=Path, required=True, help="the model store folder")
    publish.set_defaults(run=_publish)
    activate.set_defaults(run=_activate)
    listing.set_defaults(run=_list)


def _settings(args: argparse.Namespace):  # noqa: ANN202 - avoids importing settings eagerly
    from service.settings import Settings

    overrides = {}
    if getattr(args, "artifact", None) is not None:
        overrides["artifact"] = args.artifact
    if getattr(args, "import_ratings", None) is not None:
        overrides["import_ratings"] = args.import_ratings
    if getattr(args, "store", None) is not None:
        overrides["store"] = args.store
    if getattr(args, "workers", None) is not None:
        overrides["workers"] = args.workers
    if getattr(args, "verbose", False):
        overrides["log_level"] = "DEBUG"  # `because -v serve`: wins over BECAUSE_LOG_LEVEL
    return Settings(**overrides)


def _serve(args: argparse.Namespace) -> int:
    from service.serving import serve

    return serve(_settings(args), args.host, args.port)


def _import(args: argparse.Namespace) -> int:
    from service.importer import import_ratings
    from service.item_codes import ItemCodes
    from service.keys import Keys
    from service.rating_store import RatingStore
    from service.redis_client import redis_connection

    settings = _settings(args)

    async def run() -> int:
        async with redis_connection(settings) as client:
            keys = Keys(settings.key_prefix)
            store = RatingStore(client, keys, ItemCodes(client, keys), settings.history_cap)
            return await import_ratings(client, store, args.path, keys, force=args.force)

    written = asyncio.run(run())
    print(f"imported {written} ratings" if written else "already imported (use --force)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from service.exporter import export_ratings
    from service.item_codes import ItemCodes
    from service.keys import Keys
    from service.rating_store import RatingStore
    from service.redis_client import redis_connection

    settings = _settings(args)

    async def run() -> tuple[int, int]:
        async with redis_connection(settings) as client:
            keys = Keys(settings.key_prefix)
            codes = ItemCodes(client, keys)
            await codes.load()
            store = RatingStore(client, keys, codes, settings.history_cap)
            return await export_ratings(client, store, keys, args.out)

    users, ratings = asyncio.run(run())
    print(f"exported {ratings} ratings of {users} users to {args.out}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from service.keys import Keys
    from service.migration import migrate
    from service.redis_client import redis_connection

    settings = _settings(args)

    async def run() -> dict[str, int]:
        async with redis_connection(settings) as client:
            return await migrate(client, Keys(settings.key_prefix), settings.history_cap)

    moved = asyncio.run(run())
    print("migrated: " + ", ".join(f"{n} {what}" for what, n in moved.items()))
    return 0


def _publish(args: argparse.Namespace) -> int:
    from service.model_store import ModelStore

    version, new = ModelStore(args.store).publish(args.artifact)
    print(version if new else f"{version} (already published)")
    return 0


def _activate(args: argparse.Namespace) -> int:
    from models.manifest import ArtifactError
    from service.events import EventLog
    from service.keys import Keys
    from service.model_store import ModelPointer, ModelStore
    from service.redis_client import redis_connection

    settings = _settings(args)
    try:
        ModelStore(args.store).verify(args.version)  # refuse a damaged version here already
    except ArtifactError as exc:
        print(f"refused: {exc}")
        return 1

    async def run():  # noqa: ANN202 - a Pointer
        async with redis_connection(settings) as client:
            keys = Keys(settings.key_prefix)
            return await ModelPointer(client, keys, EventLog(client, keys)).activate(args.version)

    pointer = asyncio.run(run())
    print(f"current: {pointer.version} (previous: {pointer.previous})")
    return 0


def _list(args: argparse.Namespace) -> int:
    import datetime

    from service.events import EventLog
    from service.keys import Keys
    from service.model_store import ModelPointer, ModelStore
    from service.redis_client import redis_connection

    settings = _settings(args)

    async def current() -> str | None:
        async with redis_connection(settings) as client:
            keys = Keys(settings.key_prefix)
            return (await ModelPointer(client, keys, EventLog(client, keys)).read()).version

    now = asyncio.run(current())
    for published in ModelStore(args.store).versions():
        when = datetime.datetime.fromtimestamp(published.published_at, datetime.UTC)
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in _flat(published.metrics).items())
        mark = "*" if published.version == now else " "
        print(f"{mark} {published.version}  published {when:%Y-%m-%d %H:%M}  {metrics}")
    return 0


def _flat(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Nested numeric metrics as one level: {"rating": {"val_rmse": x}} -> rating.val_rmse."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, int | float):
            flat[f"{prefix}{key}"] = float(value)
    return flat

