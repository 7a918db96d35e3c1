"""The demo page at `/`: one static file (HTML, its CSS and plain JavaScript inline; no
build, nothing fetched from anywhere else) that calls the public API like any frontend.
Open to every caller, as the API's reads are by default; the page asks for an API key
when the API answers 401 or 403. Not in the OpenAPI schema: it is not part of the API.

Its Content-Security-Policy allows exactly the page's own inline script and style (by
their sha256) and requests to this origin, so nothing injected into the page can run and
the page cannot reach another server.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

PAGE = "static/index.html"  # package data of `service` (pyproject.toml)

router = APIRouter(tags=["demo"], include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def demo_page() -> HTMLResponse:
    """The page; `?user=<id>` opens that user's recommendations (read by the page)."""
    html, policy = _page()
    return HTMLResponse(
        html, headers={"Content-Security-Policy": policy, "Cache-Control": "no-cache"}
    )


@cache
def _page() -> tuple[str, str]:
    """The page's text and its Content-Security-Policy, read once per process."""
    html = (files("service") / PAGE).read_text(encoding="utf-8")
    script, style = (_hashes(html, tag) for tag in ("script", "style"))
    policy = (
        f"default-src 'none'; script-src {script}; style-src {style}; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    return html, policy


def _hashes(html: str, tag: str) -> str:
    """CSP sources for every inline `<tag>` of the page: 'sha256-<base64 of its text>'."""
    bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'"
        for b in bodies
    )
