"""Item metadata, the catalogue's batched seed and read, FAISS neighbours, health,
readiness and metrics."""

from __future__ import annotations

import httpx

from models.data.synthetic import PlantedData
from service.events import EventLog
from service.item_codes import ItemCodes
from service.item_store import Item, ItemStore
from service.keys import Keys
from service.redis_client import redis_connection
from service.settings import Settings


async def test_item_metadata_and_404(client: httpx.AsyncClient, planted: PlantedData) -> None:
    r = await client.get("/v1/items/i7")
    assert r.status_code == 200
    assert r.json()["title"] == planted.catalogue.title("i7")
    r = await client.get("/v1/items/nope")
    assert r.status_code == 404 and "nope" in r.json()["detail"]


async def test_seeding_adds_only_what_is_missing_and_reads_back_whole(settings: Settings) -> None:
    async with redis_connection(settings) as redis:
        keys = Keys(settings.key_prefix)
        codes = ItemCodes(redis, keys)
        items = ItemStore(redis, keys, codes, EventLog(redis, keys))
        edited = Item("s1", "Edited", ["Drama"], {"year": 1999}, retired=True)
        await items.put(edited)
        seeds = [Item(f"s{i}", f"Seed {i}", ["Comedy"] * (i % 2)) for i in range(2500)]
        assert await items.seed(seeds, chunk=1000) == 2499  # s1 was there: left as it is
        assert await items.seed(seeds) == 0
        found = await items.get_many(["s0", "s1", "s2499", "nope"])
        assert found == [seeds[0], edited, seeds[2499], None]
        assert [i async for i in items.scan(chunk=700)] == sorted(
            [edited, *seeds[:1], *seeds[2:]], key=lambda i: i.item_id)
        assert None not in await codes.codes([i.item_id for i in seeds])  # every one has a code


async def test_similar_items_share_the_planted_cluster(
    client: httpx.AsyncClient, planted: PlantedData
) -> None:
    same = 0
    for item in range(0, 40, 4):
        r = await client.get(f"/v1/items/i{item}/similar", params={"k": 5})
        body = r.json()
        assert r.status_code == 200 and len(body["items"]) == 5
        assert f"i{item}" not in [x["item_id"] for x in body["items"]]
        sims = [x["similarity"] for x in body["items"]]
        assert sims == sorted(sims, reverse=True)
        same += sum(
            planted.item_cluster[int(x["item_id"][1:])] == planted.item_cluster[item]
            for x in body["items"]
        )
    assert same >= 0.8 * 50


async def test_health_ready_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    await client.get("/v1/users/someone/ratings")
    text = (await client.get("/metrics")).text
    assert (
        'because_requests_total{method="GET",route="/v1/users/{user_id}/ratings",status="200"}'
        in text
    )
    assert "because_request_seconds_bucket" in text
