"""What every process must hear about: a Redis stream of catalogue, fold-in and model events.

    {PREFIX}:events stream, capped at about `MAX_EVENTS` entries; each entry has a `kind`:
                    item      {item}               a catalogue entry changed
                    folded    {item, version}      an item's folded vectors were stored
                    activate  {version}            a model version became current

A stream rather than pub/sub: a process that was busy or briefly disconnected reads what it
missed from where it stopped, so the blocking read is the announcement and the periodic
check at once. A process that fell further behind than the cap (its last id was trimmed
away) is told so (`Missed`) and reloads everything it mirrors.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio.client import Pipeline

from service.keys import Keys
from service.redis_client import Client

ITEM = "item"
FOLDED = "folded"
ACTIVATE = "activate"
MAX_EVENTS = 100_000


@dataclass(frozen=True)
class Event:
    id: str
    kind: str
    fields: dict[str, str]


class Missed(Exception):
    """Events were trimmed before this process read them: reload the mirrored state."""


class EventLog:
    def __init__(self, client: Client, keys: Keys):
        self._client = client
        self.key = keys.events

    def append_to(self, pipe: Pipeline, kind: str, **fields: str) -> None:
        """Queues the event on `pipe`, so it lands with the write it announces."""
        pipe.xadd(self.key, {"kind": kind, **fields}, maxlen=MAX_EVENTS, approximate=True)

    async def last_id(self) -> str:
        """The newest event's id ("0-0" when none): where a new reader starts."""
        found = await self._client.xrevrange(self.key, count=1)
        return _text(found[0][0]) if found else "0-0"

    async def after(self, last_id: str, block_ms: int, count: int = 1000) -> list[Event]:
        """Events after `last_id`, waiting up to `block_ms` for the first one. Raises
        `Missed` when the stream's oldest entry is newer than `last_id`: what came between
        may have been trimmed (a rare, conservative reload)."""
        if last_id != "0-0":
            oldest = await self._client.xrange(self.key, count=1)
            if oldest and _order(_text(oldest[0][0])) > _order(last_id):
                raise Missed(f"events after {last_id} were trimmed")
        found = await self._client.xread({self.key: last_id}, count=count, block=block_ms)
        return [
            Event(_text(event_id), _text(fields[b"kind"]),
                  {_text(k): _text(v) for k, v in fields.items() if k != b"kind"})
            for _, entries in found or []
            for event_id, fields in entries
        ]


def _order(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
