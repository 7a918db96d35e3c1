"""The demo page as the app serves it at `/`, read as text (tests/service/test_demo_page.py
drives it in a real browser): the parts its script fills, nothing loaded from elsewhere,
no data written into it as HTML, open even when reads need a key, and not in the API's
schema."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest

from service.access import Scope
from service.settings import Settings
from tests.helpers import running

# The page is the same whatever Redis is behind the app: one plain server is enough.
pytestmark = pytest.mark.parametrize("redis_target", ["single"], indirect=True)

PARTS = [
    '<form id="search-form"', '<label for="search-input">', '<ul id="search-results"',
    '<ol id="recommendations-list"', '<div id="carousels-rows"', '<ul id="ratings-list"',
    '<code id="model-version"', '<section id="key-panel" hidden', '<input id="key-input"',
    'role="status"',
    # The calls the script makes, relative to the page (a proxy may serve it under a path).
    '"v1/rank"', "v1/items?", "/ratings`", "/because-you-watched?rows=3&k=5`", '"v1/model"',
    "Authorization", "sessionStorage", "history.replaceState",
]


async def test_the_page_is_served_at_the_root_with_its_parts(client: httpx.AsyncClient) -> None:
    r = await client.get("/", params={"user": "196"})  # ?user is the page's, not refused
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    for part in PARTS:
        assert part in r.text, part
    assert "/" not in (await client.get("/openapi.json")).json()["paths"]


async def test_the_page_loads_nothing_from_elsewhere_and_writes_no_html(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/")
    html = r.text
    assert not re.search(r"""(src|href|action)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html and "fetch(`http" not in html
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in html, sink
    # The policy allows the page's own inline script and style, by hash, and nothing else.
    policy = r.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "unsafe" not in policy
    for tag in ("script", "style"):
        (body,) = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in policy


async def test_the_page_is_open_when_reads_need_a_key(settings: Settings) -> None:
    """The page itself holds no data: it loads, then asks for the key the API wants."""
    keyed = settings.model_copy(update={"api_keys": {"r-5e1d": Scope.READ}, "read_access": "key"})
    async for c in running(keyed):
        assert (await c.get("/")).status_code == 200
        assert (await c.get("/v1/model")).status_code == 401
