"""The demo page at `/` in a real browser: headless Chromium, driven through Selenium, on
the service as a real process. A new user searches the catalogue and rates three films
through the page; the ratings reach Redis, the recommendations and their reasons change
with each; a shared link `/?user=<id>` shows a user's recommendations straight away; with
API keys on, the page asks for one and rates with it."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from models.data.synthetic import PlantedData
from tests.helpers import (
    WRITER,
    RedisTarget,
    as_ratings,
    free_port,
    liked_and_disliked,
    serve,
    wait_ready,
)

pytest.importorskip("selenium", reason="the browser tests need selenium (the dev extra)")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.chrome.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

# The page is the same whatever Redis is behind the service: one plain server is enough.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("redis_target", ["single"], indirect=True),
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Without the background-networking switches Chromium stalls on a closed network.
CHROMIUM_ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--window-size=1280,1000",
)
WAIT_S = 60  # generous: CI is a starved 2-core machine
READER = "r-demo-3b9d0f7e21"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"no {' or '.join(missing)}: install chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in CHROMIUM_ARGS:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture
def start_service(
    artifact_dir: Path, redis_target: RedisTarget, key_prefix: str, tmp_path: Path
) -> Iterator[Callable[..., str]]:
    """Starts `because serve` with these API keys (none: keys off) and more environment;
    its base URL. Each is stopped at the end."""
    started: list[subprocess.Popen] = []

    def start(keys: dict[str, str], **environment: str) -> str:
        port = free_port()
        with (tmp_path / f"serve-{port}.log").open("w") as log:
            process = serve(artifact_dir, redis_target, key_prefix, port, output=log,
                            environment={"BECAUSE_API_KEYS": json.dumps(keys), **environment})
        started.append(process)
        wait_ready(process, port)
        return f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Recommendation:
    item_id: str
    because: tuple[str, ...]  # item ids of the reasons
    despite: tuple[str, ...]


class DemoPage:
    """What a person does on the page, and what the page shows, read from its DOM."""

    def __init__(self, driver: WebDriver, base: str):
        self.driver, self.base = driver, base

    def open(self, query: str = "") -> None:
        self.driver.get(f"{self.base}/{query}")

    def wait(self, condition: Callable[[], object], what: str) -> None:
        WebDriverWait(self.driver, WAIT_S).until(lambda _: condition(), f"waiting for {what}")

    def text(self, element_id: str) -> str:
        return self.driver.find_element(By.ID, element_id).text

    def drawn(self, history_size: int) -> None:
        """Waits until the ratings, recommendations and rows are drawn for a history of
        `history_size` ratings (each section says so in data-history)."""
        sections = ("ratings", "recommendations", "carousels")
        script = "return arguments[0].map(id => { const s = document.getElementById(id); " \
                 "return [s.dataset.history, s.getAttribute('aria-busy')]; });"
        self.wait(
            lambda: self.driver.execute_script(script, list(sections))
            == [[str(history_size), "false"]] * len(sections),
            f"the page drawn for {history_size} ratings",
        )

    def search(self, query: str, expect: str) -> None:
        box = self.driver.find_element(By.ID, "search-input")
        box.clear()
        box.send_keys(query)
        self.driver.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()
        self.wait(lambda: self.driver.find_elements(By.CSS_SELECTOR, self._result(expect)),
                  f"{expect} among the search results")

    def rate(self, item_id: str, stars: int) -> None:
        self.driver.find_element(
            By.CSS_SELECTOR, f'{self._result(item_id)} button[data-rating="{stars}"]'
        ).click()

    def give_key(self, key: str) -> None:
        self.driver.find_element(By.ID, "key-input").send_keys(key)
        self.driver.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()

    def asks_for_key(self, words: str) -> None:
        self.wait(lambda: self.driver.find_element(By.ID, "key-panel").is_displayed()
                  and words in self.text("key-message"), f"the key panel saying {words!r}")

    def recommendations(self) -> list[Recommendation]:
        """Read in one script: the list is never half redrawn."""
        rows = self.driver.execute_script("""
            const ids = (li, kind) => Array.from(li.querySelectorAll(`.${kind} .reason`),
                                                 (r) => r.dataset.itemId);
            return Array.from(document.querySelectorAll("#recommendations-list > li"),
                              (li) => [li.dataset.itemId, ids(li, "because"),
                                       ids(li, "despite")]);
        """)
        return [Recommendation(i, tuple(b), tuple(d)) for i, b, d in rows]

    def rated(self) -> list[str]:
        return [li.get_attribute("data-item-id")
                for li in self.driver.find_elements(By.CSS_SELECTOR, "#ratings-list > li")]

    def anchors(self) -> list[str]:
        return [row.get_attribute("data-anchor")
                for row in self.driver.find_elements(By.CSS_SELECTOR, "#carousels-rows > div")]

    def errors(self) -> list[dict]:
        return [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    @staticmethod
    def _result(item_id: str) -> str:
        return f'#search-results > li[data-item-id="{item_id}"]'


def test_a_new_user_rates_three_films_and_the_recommendations_follow(
    browser: WebDriver, start_service: Callable[..., str], planted: PlantedData
) -> None:
    base = start_service({})  # API keys off, as in development
    page = DemoPage(browser, base)
    page.open()
    page.wait(lambda: re.search(r"\?user=demo-[0-9a-f]{8}$", browser.current_url),
              "a fresh user id in the address")
    user = browser.current_url.rsplit("=", 1)[1]
    page.drawn(0)
    assert page.text("user-id") == user
    assert page.text("model-version") == httpx.get(f"{base}/v1/model").json()["version"]
    cold = page.recommendations()
    assert len(cold) == 10 and not any(r.because or r.despite for r in cold)  # nothing rated

    liked, _ = liked_and_disliked(planted)
    films = liked[:3]
    shown = [cold]
    for n, (film, stars) in enumerate(zip(films, (5, 4, 5), strict=True), start=1):
        page.search(planted.catalogue.title(film), film)
        page.rate(film, stars)
        page.drawn(n)
        assert page.rated() == films[:n][::-1]  # newest first
        shown.append(page.recommendations())

    before, after = shown[2], shown[3]
    assert len(after) == 10 and after != before
    assert not {r.item_id for r in after} & set(films)  # a rated film is not recommended
    reasons = [set(r.because) | set(r.despite) for r in after]
    assert all(r.because for r in after)  # every recommendation says why
    assert set().union(*reasons) <= set(films)
    assert films[2] in set().union(*reasons)  # the third rating is one of the reasons now
    assert not any(films[2] in r.because + r.despite for r in before)
    assert page.anchors() and set(page.anchors()) <= set(films)

    stored = httpx.get(f"{base}/v1/users/{user}/ratings").json()["ratings"]
    assert [(r["item_id"], r["rating"]) for r in stored] == [
        (films[2], 5.0), (films[1], 4.0), (films[0], 5.0)
    ]

    # The address of the page is a link to share: the same user, drawn at once.
    page.open(f"?user={user}")
    page.drawn(3)
    assert page.recommendations() == after

    # A user with a long history, rated through the API: recommendations straight away.
    fan_liked, fan_disliked = liked_and_disliked(planted, user=1)
    history = as_ratings(fan_liked[:12], fan_disliked[:6])
    posted = httpx.post(f"{base}/v1/users/fan/ratings", json={"ratings": history})
    assert posted.status_code == 200
    page.open("?user=fan")
    page.drawn(len(history))
    assert page.text("user-id") == "fan"
    shown = page.recommendations()
    assert len(shown) == 10 and all(r.because for r in shown)
    assert {i for r in shown for i in r.because + r.despite} <= {r["item_id"] for r in history}
    assert page.errors() == []  # nothing failed or was refused (the CSP included)


def test_with_keys_on_the_page_asks_for_a_key_then_uses_it(
    browser: WebDriver, start_service: Callable[..., str], planted: PlantedData
) -> None:
    base = start_service({WRITER: "write", READER: "read"}, BECAUSE_READ_ACCESS="key")
    page = DemoPage(browser, base)
    page.open("?user=keyed")
    page.asks_for_key("This server requires an API key")  # reads need one here
    page.give_key(READER)
    page.drawn(0)
    assert not browser.find_element(By.ID, "key-panel").is_displayed()

    film = liked_and_disliked(planted)[0][0]
    page.search(planted.catalogue.title(film), film)
    page.rate(film, 4)
    page.asks_for_key("may only read")  # 403: the read key cannot write
    page.give_key(WRITER)  # the refused rating is sent again, with this key
    page.drawn(1)
    assert page.rated() == [film]
    assert browser.execute_script("return sessionStorage.getItem('because.apiKey')") == WRITER
    stored = httpx.get(f"{base}/v1/users/keyed/ratings",
                       headers={"Authorization": f"Bearer {READER}"}).json()["ratings"]
    assert [(r["item_id"], r["rating"]) for r in stored] == [(film, 4.0)]
