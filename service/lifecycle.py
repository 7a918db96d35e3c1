"""The living side of a serving process: which model version it serves, which items are
folded into it, and what the catalogue holds, all kept in step with every other process.

Each process runs two background tasks:

- the follower reads the event stream (`service.events`): an `item` event refreshes the
  catalogue mirror, `folded` loads an item's vectors into the served version, `activate`
  loads a version beside the served one and swaps. Every `model_check_s` it also compares
  the version pointer with what it serves: the fallback should an event be missed.
- the fold-in worker, every `fold_interval_s`, takes the fold-in lease (a Redis key with a
  TTL, so one process folds at a time and a dead one's lease expires), folds up to
  `fold_batch` waiting items and stores their rows under the version; the `folded` event
  tells every process, itself included, to load them.

Fold-in keys, beside the histories:

    {PREFIX}:raters:{item}    sorted set user -> timestamp: who rated an item the served
                              model was not trained on (the raters fold-in reads)
    {PREFIX}:fold:waiting     set of item ids to fold (again) for the current version
    {PREFIX}:folded:{version} hash item id -> FoldedItem JSON: the rows folded for a version
    {PREFIX}:fold:lease       the fold-in lease (holder's token, TTL `fold_lease_s`)

A swap is one assignment between requests: a request reads `current` once and is scored by
that version from start to end. The previous version stays loaded for an instant rollback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import torch

from models.artifact import Artifact, ArtifactError
from models.data.table import RatingScale
from models.inference.fold_in import FoldedItem, Rater, fold_in_item
from service.catalogue import CatalogueMirror
from service.events import ACTIVATE, FOLDED, ITEM, EventLog, Missed
from service.heap import long_lived, settle
from service.item_store import Item, ItemStore, catalogued
from service.keys import Keys
from service.metrics import Metrics
from service.model_store import ModelPointer, ModelStore
from service.rating_store import Rating, RatingStore
from service.redis_client import Client
from service.served_model import ServedModel, serve
from service.settings import Settings

log = logging.getLogger(__name__)

# How long the follower's XREAD waits for news: also how long `stop` may take.
FOLLOW_BLOCK_MS = 200

# Deletes the lease only if this process still holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class ModelState:
    version: str
    previous: str | None
    activated_at: float
    items_trained: int
    items_folded: int
    last_error: str | None
    scale: RatingScale  # what a posted rating must lie in
    rating_head: bool  # whether the version predicts ratings


class Lifecycle:
    def __init__(
        self,
        served: ServedModel,
        client: Client,
        mirror: CatalogueMirror,
        items: ItemStore,
        ratings: RatingStore,
        events: EventLog,
        keys: Keys,
        settings: Settings,
        device: torch.device,
        metrics: Metrics,
        store: ModelStore | None = None,
        pointer: ModelPointer | None = None,
    ):
        self.current = served
        self.previous: ServedModel | None = None
        self.activated_at = time.time()
        self.last_error: str | None = None
        self.mirror = mirror
        self._client = client
        self._items = items
        self._ratings = ratings
        self._events = events
        self._keys = keys
        self._settings = settings
        self._device = device
        self._metrics = metrics
        metrics.serving(served.version, str(device))
        self._store = store
        self._pointer = pointer
        self._release = client.register_script(_RELEASE)
        self._tasks: list[asyncio.Task] = []
        self._swap_lock = asyncio.Lock()
        self._last_event = "0-0"
        self._stopping = asyncio.Event()
        self._refused: str | None = None  # not retried by the periodic check, only if announced

    # -- start and stop ------------------------------------------------------------------

    async def start(self) -> None:
        self._last_event = await self._events.last_id()
        await self._load_folded(self.current.version)
        self._tasks = [
            asyncio.create_task(self._forever(self._follow, 0), name="event-follower"),
            asyncio.create_task(self._forever(self._fold_waiting, self._settings.fold_interval_s),
                                name="fold-in"),
        ]

    async def stop(self) -> None:
        """Lets each loop finish its turn: cancelling the follower inside a blocking XREAD
        left redis-py waiting forever (seen here), so the loops check `_stopping` instead."""
        self._stopping.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def state(self) -> ModelState:
        served = self.current
        return ModelState(
            served.version,
            self.previous.version if self.previous else None,
            self.activated_at,
            served.catalogue.n_trained,
            len(served.folded),
            self.last_error,
            served.scale,
            served.rating_head,
        )

    # -- what the write path tells us ----------------------------------------------------

    async def rated(self, user_id: str, ratings: list[Rating]) -> None:
        """Records the raters of items the served model was not trained on, and queues
        each for fold-in while it has fewer than `fold_max_raters` (bounded work)."""
        trained = self.current.artifact.item_ids
        new = [r for r in ratings if r.item_id not in trained]
        if not new:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for r in new:
                pipe.zadd(self._keys.raters(r.item_id), {user_id: r.timestamp})
                pipe.zcard(self._keys.raters(r.item_id))
            found = await pipe.execute()
        counts = found[1::2]
        waiting = [r.item_id for r, n in zip(new, counts, strict=True)
                   if n <= self._settings.fold_max_raters]
        if waiting:
            await self._client.sadd(self._keys.fold_waiting, *waiting)

    async def catalogued(self, item_id: str) -> None:
        """A put item: the mirror learns it now (the event tells the other processes) and,
        untrained, it waits for fold-in (from its genres until it has raters)."""
        item = await self._items.get(item_id)
        if item is not None:
            self._apply_item(item)
        if item_id not in self.current.artifact.item_ids:
            await self._client.sadd(self._keys.fold_waiting, item_id)

    # -- the follower --------------------------------------------------------------------

    async def _follow(self) -> None:
        next_check = time.monotonic()
        while not self._stopping.is_set():
            try:
                events = await self._events.after(self._last_event, FOLLOW_BLOCK_MS)
            except Missed:
                log.warning("event stream trimmed past this process: reloading catalogue")
                self._last_event = await self._events.last_id()
                await self._reload_mirror()
                continue
            folded: list[str] = []
            for event in events:
                self._last_event = event.id
                if event.kind == ITEM:
                    item = await self._items.get(event.fields["item"])
                    if item is not None:
                        self._apply_item(item)
                elif event.kind == FOLDED and event.fields["version"] == self.current.version:
                    folded.append(event.fields["item"])
                elif event.kind == ACTIVATE:
                    await self.activate(event.fields["version"])
            if folded:
                await self._load_folded(self.current.version, folded)
            if self._pointer is not None and time.monotonic() >= next_check:
                next_check = time.monotonic() + self._settings.model_check_s
                pointer = await self._pointer.read()
                if pointer.version not in (None, self.current.version, self._refused):
                    await self.activate(pointer.version)

    def _apply_item(self, item: Item) -> None:
        self.mirror.put(item)
        for served in (self.current, self.previous):
            if served is not None:
                served.catalogue.refresh_retired()

    async def _reload_mirror(self) -> None:
        async for item in self._items.scan():
            self.mirror.put(item)
        for served in (self.current, self.previous):
            if served is not None:
                served.catalogue.refresh_retired()
        settle()

    # -- versions ------------------------------------------------------------------------

    async def activate(self, version: str) -> bool:
        """Serves `version`: the previous one at once (rollback), another after loading
        and warming it beside the served one. A version that fails to load is refused,
        the served one keeps serving; `last_error` says why."""
        async with self._swap_lock:
            if version == self.current.version:
                return True
            if self.previous is not None and version == self.previous.version:
                self.current, self.previous = self.previous, self.current
                self._swapped(version, "rollback")
                await self._queue_untrained()
                return True
            if self._store is None:
                self._refuse(version, "serving a fixed --artifact: start with --store to swap")
                return False
            try:
                # Without collections while it builds, as start-up (service/heap.py): each
                # would walk the new version's objects so far, holding the event loop.
                with long_lived():
                    artifact = await asyncio.to_thread(self._store.load, version)
                    self._check_compatible(artifact)
                    if await self._items.seed(catalogued(artifact)):
                        await self._reload_mirror()
                    folded = await self._folded_rows(version)
                    served = await asyncio.to_thread(
                        serve, artifact, folded, self.mirror, self._settings, self._device
                    )
            except (ArtifactError, OSError, ValueError, KeyError, RuntimeError) as exc:
                self._refuse(version, f"{type(exc).__name__}: {exc}")
                return False
            self.current, self.previous = served, self.current
            self._swapped(version, "swap")
            await self._queue_untrained()
            return True

    def _check_compatible(self, artifact: Artifact) -> None:
        scale, served = artifact.scale, self.current.scale
        if (scale.low, scale.high, scale.step) != (served.low, served.high, served.step):
            raise ValueError(
                f"rating scale {scale.low:g}..{scale.high:g} step {scale.step:g} differs from "
                f"the served {served.low:g}..{served.high:g} step {served.step:g}: the "
                "stored histories would be read on another scale"
            )

    def _swapped(self, version: str, how: str) -> None:
        self.activated_at = time.time()
        self.last_error = None
        self._metrics.model_swaps.labels("ok").inc()
        self._metrics.serving(version, str(self._device))
        log.info("%s: now serving model %s (previous %s)", how, version,
                 self.previous.version if self.previous else None)

    def _refuse(self, version: str, why: str) -> None:
        self._refused = version
        self.last_error = f"version {version} refused: {why}"
        self._metrics.model_swaps.labels("refused").inc()
        log.error("%s; still serving %s", self.last_error, self.current.version)

    async def _queue_untrained(self) -> None:
        """Every catalogued item the served version was not trained on waits to be folded
        into it: folded items are carried from one version to the next."""
        trained = self.current.artifact.item_ids
        waiting = [i for i in self.mirror.ids() if i not in trained]
        for start in range(0, len(waiting), 1000):
            await self._client.sadd(self._keys.fold_waiting, *waiting[start : start + 1000])

    # -- folded rows ---------------------------------------------------------------------

    async def _folded_rows(self, version: str, item_ids: list[str] | None = None
                           ) -> dict[str, FoldedItem]:
        key = self._keys.folded(version)
        if item_ids is None:
            raw = await self._client.hgetall(key)
            pairs = sorted((k.decode(), v) for k, v in raw.items())
        else:
            values = await self._client.hmget(key, item_ids)
            pairs = [(i, v) for i, v in zip(item_ids, values, strict=True) if v is not None]
        trained = self.current.artifact.item_ids if version == self.current.version else None
        return {i: FoldedItem.from_json(json.loads(v)) for i, v in pairs
                if trained is None or i not in trained}

    async def _load_folded(self, version: str, item_ids: list[str] | None = None) -> None:
        """Loads stored rows into the served version: all of them, or `item_ids`."""
        updates = await self._folded_rows(version, item_ids)
        if not updates or version != self.current.version:
            return
        async with self._swap_lock:
            served = self.current
            if served.version != version:
                return
            grown = await asyncio.to_thread(
                served.with_folded, updates, self.mirror, self._settings, self._device
            )
            grown.index_folded(list(updates))
            self.current = grown
            settle()

    # -- the fold-in worker --------------------------------------------------------------

    async def _fold_waiting(self) -> None:
        if not await self._client.scard(self._keys.fold_waiting):
            return
        token = uuid.uuid4().hex
        lease_ms = int(self._settings.fold_lease_s * 1000)
        if not await self._client.set(self._keys.fold_lease, token, nx=True, px=lease_ms):
            return
        try:
            waiting = await self._client.spop(self._keys.fold_waiting, self._settings.fold_batch)
            served = self.current
            for raw in waiting or []:
                item_id = raw.decode()
                if item_id in served.artifact.item_ids:
                    continue
                folded = await self._fold(served, item_id)
                if folded is None:
                    continue
                async with self._client.pipeline(transaction=True) as pipe:
                    pipe.hset(self._keys.folded(served.version), item_id,
                              json.dumps(folded.to_json()))
                    self._events.append_to(pipe, FOLDED, item=item_id, version=served.version)
                    await pipe.execute()
                self._metrics.items_folded.inc()
        finally:
            await self._release(keys=[self._keys.fold_lease], args=[token])

    async def _fold(self, served: ServedModel, item_id: str) -> FoldedItem | None:
        """The item's rows for `served`: from its first raters when it has enough, from its
        genres otherwise; None for an item with neither."""
        item = self.mirror.get(item_id) or await self._items.get(item_id)
        if item is None:
            return None
        prior = served.prior.item(item.genres)
        raters = await self._raters(served, item_id)
        if len(raters) < self._settings.fold_min_raters:
            return prior if item.genres else None
        rating, ranking = served.predictor.rating_model, served.predictor.ranking_model
        return await asyncio.to_thread(fold_in_item, rating, ranking, raters, prior)

    async def _raters(self, served: ServedModel, item_id: str) -> list[Rater]:
        """The item's first `fold_max_raters` raters by time, each history split at the
        moment they rated it (the item itself left out: it is the one being fitted)."""
        found = await self._client.zrange(
            self._keys.raters(item_id), 0, self._settings.fold_max_raters - 1
        )
        users = [u.decode() for u in found]
        if not users:
            return []
        raters = []
        for ratings in await self._ratings.read_many(users):
            mine = [r for r in ratings if r.item_id == item_id]
            if not mine:  # re-rated away by a cap, or the user was deleted
                continue
            when = mine[0].timestamp
            others = [r for r in ratings if r.item_id != item_id]
            before = served.catalogue.history([r for r in others if r.timestamp < when])
            after = served.catalogue.history([r for r in others if r.timestamp >= when])
            raters.append(Rater(before, mine[0].rating, after))
        return raters

    # -- loops ---------------------------------------------------------------------------

    async def _forever(self, step: Callable[[], Awaitable[None]], pause_s: float) -> None:
        """Runs `step` until `stop`; a failure (Redis away, a bad row) is logged and
        retried after a pause, never ends the loop."""
        while not self._stopping.is_set():
            pause = pause_s
            try:
                await step()
            except Exception:
                log.exception("%s failed; retrying", getattr(step, "__name__", step))
                pause = max(pause_s, 1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause)
