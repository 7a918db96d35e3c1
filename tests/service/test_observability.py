"""What an operator sees: the /metrics families after real requests, X-Request-ID on every
answer, log lines in both formats carrying the request id, and the Grafana dashboard,
whose every query names a metric the app exposes."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi.responses import PlainTextResponse
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Receive, Scope, Send

from models.data.synthetic import PlantedData
from service.batcher import MicroBatcher
from service.logs import JsonFormatter, TextFormatter, request_id
from service.metrics import Metrics
from service.overload import LoadShedder
from service.request_id import RequestContext
from service.settings import Settings
from tests.helpers import as_ratings, liked_and_disliked

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/because.json"
HEX32 = re.compile(r"[0-9a-f]{32}")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


async def rate_and_rank(client: httpx.AsyncClient, planted: PlantedData, user: str) -> None:
    liked, disliked = liked_and_disliked(planted)
    ratings = {"ratings": as_ratings(liked[:5], disliked[:2])}
    assert (await client.post(f"/v1/users/{user}/ratings", json=ratings)).status_code == 200
    r = await client.post("/v1/rank", json={"user_id": user, "k": 5})
    assert r.status_code == 200


# -- /metrics -----------------------------------------------------------------------------


async def test_metrics_after_requests(client: httpx.AsyncClient, planted: PlantedData) -> None:
    await rate_and_rank(client, planted, "watched")
    version = (await client.get("/readyz")).json()["model_version"]
    found = samples((await client.get("/metrics")).text)

    assert value(found, "because_requests_in_flight") == 0  # every request has ended
    assert value(found, "because_scorer_queue_depth") == 0
    assert value(found, "because_scorer_seconds_count") >= 1
    assert value(found, "because_scorer_seconds_sum") > 0
    assert value(found, "because_redis_seconds_count", operation="history_write") >= 1
    assert value(found, "because_redis_seconds_count", operation="history_read") >= 1
    assert value(found, "because_redis_seconds_count", operation="ping") >= 1  # /readyz
    info = {dict(labels)["version"]: v for (name, labels), v in found.items()
            if name == "because_model_info"}
    assert info == {version: 1.0}
    assert value(found, "process_resident_memory_bytes") > 10 * 2**20
    assert value(found, "process_cpu_seconds_total") > 0
    assert value(found, "python_gc_collections_total", generation="0") >= 0


async def test_in_flight_is_the_load_shedders_count() -> None:
    metrics = Metrics()
    inside, release = asyncio.Event(), asyncio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        inside.set()
        await release.wait()
        await PlainTextResponse("done")(scope, receive, send)

    shedder = LoadShedder(slow, max_in_flight=8, metrics=metrics)
    transport = httpx.ASGITransport(app=shedder)
    async with httpx.AsyncClient(transport=transport, base_url="http://because") as client:
        pending = asyncio.create_task(client.get("/v1/rank"))
        await inside.wait()
        assert metrics.registry.get_sample_value("because_requests_in_flight") == 1
        release.set()
        assert (await pending).status_code == 200
    assert metrics.registry.get_sample_value("because_requests_in_flight") == 0


async def test_the_batcher_reports_its_queue_and_scoring_time() -> None:
    scoring, release = threading.Event(), threading.Event()
    seconds: list[float] = []

    def run(jobs: list[int]) -> list[int]:
        scoring.set()
        release.wait(10)
        return jobs

    batcher = MicroBatcher(run, max_size=1, max_wait_s=0, on_scored=seconds.append)
    await batcher.start()
    try:
        first = asyncio.create_task(batcher.submit(0))
        await asyncio.to_thread(scoring.wait, 10)  # job 0 is on the scoring thread
        rest = [asyncio.create_task(batcher.submit(i)) for i in (1, 2, 3)]
        await asyncio.sleep(0.01)
        assert batcher.waiting == 3  # the batch being scored is not waiting
        release.set()
        assert await asyncio.gather(first, *rest) == [0, 1, 2, 3]
    finally:
        await batcher.stop()
    assert batcher.waiting == 0
    assert len(seconds) == 4 and all(s > 0 for s in seconds)


def test_model_info_names_only_the_served_version() -> None:
    metrics = Metrics()
    metrics.serving("aaaaaaaaaaaa", "cpu")
    metrics.serving("bbbbbbbbbbbb", "cpu")
    info = [s for s in metrics.model_info.collect()[0].samples]
    assert [(s.labels, s.value) for s in info] == [
        ({"version": "bbbbbbbbbbbb", "device": "cpu"}, 1.0)
    ]


# -- X-Request-ID -------------------------------------------------------------------------


async def test_a_sane_request_id_is_echoed_and_an_absent_one_made(
    client: httpx.AsyncClient,
) -> None:
    given = "edge-7f3a.91:b_c"
    r = await client.get("/healthz", headers={"X-Request-ID": given})
    assert r.headers["x-request-id"] == given
    made = [(await client.get("/healthz")).headers["x-request-id"] for _ in range(2)]
    assert all(HEX32.fullmatch(m) for m in made) and made[0] != made[1]


@pytest.mark.parametrize("insane", ["x" * 129, "a b", "<script>", "id;rm", "ünï", ""])
async def test_an_insane_request_id_is_replaced(client: httpx.AsyncClient, insane: str) -> None:
    r = await client.get("/healthz", headers={"X-Request-ID": insane.encode()})
    assert HEX32.fullmatch(r.headers["x-request-id"])


async def test_errors_carry_the_request_id(client: httpx.AsyncClient, settings: Settings
                                          ) -> None:
    r = await client.get("/v1/items/nope", headers={"X-Request-ID": "four-oh-four"})
    assert r.status_code == 404 and r.headers["x-request-id"] == "four-oh-four"
    r = await client.post("/v1/score", content=b"{", headers={"X-Request-ID": "bad-json"})
    assert 400 <= r.status_code < 500 and r.headers["x-request-id"] == "bad-json"
    too_big = b"x" * (settings.max_body_bytes + 1)
    r = await client.post("/v1/users/u/ratings", content=too_big,
                          headers={"X-Request-ID": "too-big"})
    assert r.status_code == 413 and r.headers["x-request-id"] == "too-big"


async def test_a_shed_request_carries_the_request_id() -> None:
    async def never(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("a shed request never reaches the app")

    app = RequestContext(LoadShedder(never, max_in_flight=0, metrics=Metrics()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://because") as client:
        r = await client.get("/v1/rank", headers={"X-Request-ID": "shed-me"})
    assert r.status_code == 503 and r.headers["x-request-id"] == "shed-me"


async def test_an_unhandled_error_is_logged_once_and_answered_500_with_the_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=RequestContext(broken))
    async with httpx.AsyncClient(transport=transport, base_url="http://because") as client:
        r = await client.get("/v1/rank", headers={"X-Request-ID": "oops-1"})
    assert r.status_code == 500 and r.headers["x-request-id"] == "oops-1"
    assert "oops-1" in r.json()["detail"]
    failures = [x for x in caplog.records if x.exc_info]
    assert len(failures) == 1 and "a bug" in str(failures[0].exc_info[1])


# -- logs ---------------------------------------------------------------------------------


def record(message: str, exc: BaseException | None = None, **extra: object
           ) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    made = logging.LogRecord("service.test", logging.WARNING, __file__, 1, message, (),
                             exc_info)
    made.__dict__.update(extra)
    return made


def test_the_json_formatter_writes_one_object_a_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError as exc:
        failed = exc
    token = request_id.set("req-42")
    try:
        line = JsonFormatter().format(record("it\nbroke", failed, fields={"status": 500}))
    finally:
        request_id.reset(token)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "it\nbroke" and parsed["level"] == "WARNING"
    assert parsed["logger"] == "service.test" and parsed["request_id"] == "req-42"
    assert parsed["status"] == 500 and "ValueError: boom" in parsed["exc_info"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", parsed["time"])
    outside = json.loads(JsonFormatter().format(record("idle")))
    assert "request_id" not in outside and "exc_info" not in outside


def test_the_text_formatter_puts_fields_and_the_request_id_after_the_message() -> None:
    token = request_id.set("req-43")
    try:
        line = TextFormatter().format(record("request", fields={"status": 200}))
    finally:
        request_id.reset(token)
    assert line.endswith("service.test: request status=200 request_id=req-43")


async def test_every_line_of_a_request_carries_its_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    try:
        await client.get("/v1/items/i7", headers={"X-Request-ID": "trace-me"})
        await client.get("/v1/items/nope")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [x for x in lines if x["logger"] == "because.access"]
    assert [(x["method"], x["path"], x["status"]) for x in access] == [
        ("GET", "/v1/items/i7", 200), ("GET", "/v1/items/nope", 404)
    ]
    assert access[0]["request_id"] == "trace-me" and HEX32.fullmatch(access[1]["request_id"])
    assert all(isinstance(x["duration_ms"], int) and x["duration_ms"] >= 0 for x in access)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_serves_log_set_up_formats_uvicorns_lines_too(log_format: str) -> None:
    """`because serve`'s set-up, applied in a fresh interpreter: uvicorn's loggers and ours
    write one format to stderr, at BECAUSE_LOG_LEVEL."""
    program = (
        "import logging, logging.config\n"
        "from service.logs import log_config\n"
        "from service.settings import Settings\n"
        f"settings = Settings(log_format={log_format!r}, log_level='info')\n"
        "logging.config.dictConfig(log_config(settings))\n"
        "logging.getLogger('uvicorn.error').info('Uvicorn running')\n"
        "logging.getLogger('service.app').debug('not at INFO')\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError:\n"
        "    logging.getLogger('service.app').exception('failed')\n"
    )
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    if log_format == "text":
        assert "INFO [" in done.stderr and "uvicorn.error: Uvicorn running" in done.stderr
        assert "not at INFO" not in done.stderr
        return
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(x["logger"], x["message"]) for x in lines] == [
        ("uvicorn.error", "Uvicorn running"), ("service.app", "failed")
    ]
    assert "ZeroDivisionError" in lines[1]["exc_info"]


# -- the dashboard ------------------------------------------------------------------------

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                "and", "or", "unless", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: its identifiers that are not functions,
    keywords, labels or Grafana variables."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    expr = re.sub(r"\$\{?\w+\}?", "", expr)  # $__rate_interval, $instance
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"(?<![\w:])\d[\w.]*", "", expr)  # numbers, durations (offset 5m)
    return {
        m.group(0) for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*(?!\s*\()(?![\w:])", expr)
        if m.group(0) not in PROMQL_WORDS
    }


def exposed_names(text: str) -> set[str]:
    """Every series name the scrape can hold, from its families' declared types (so a
    labelled family with no series yet counts too)."""
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {s.name for s in family.samples}
        suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count",
                    "_created"), "summary": ("", "_sum", "_count", "_created"),
                    "gauge": ("",), "info": ("_info",)}[family.type]
        names |= {family.name + suffix for suffix in suffixes}
    return names


def panels(dashboard: dict) -> list[dict]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return [p for p in found if p["type"] != "row"]


async def test_every_dashboard_query_names_an_exposed_metric(
    client: httpx.AsyncClient, planted: PlantedData
) -> None:
    await rate_and_rank(client, planted, "graphed")
    exposed = exposed_names((await client.get("/metrics")).text)
    dashboard = json.loads(DASHBOARD.read_text())
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]

    queried: set[str] = set()
    for panel in panels(dashboard):
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == datasource["uid"]
            names = metric_names(target["expr"])
            assert names, f"{panel['title']!r}: {target['expr']!r} reads no metric"
            assert names <= exposed, f"{panel['title']!r} reads {names - exposed}: not exposed"
            queried |= names
    for variable in dashboard["templating"]["list"]:
        query = variable["query"]["query"] if isinstance(variable["query"], dict) \
            else variable["query"]
        metric = re.fullmatch(r"label_values\((\w+)(\{[^}]*\})?,\s*\w+\)", query)
        assert metric and metric.group(1) in exposed, query

    families = {name.removesuffix(suffix) for name in queried
                for suffix in ("_bucket", "_sum", "_count", "_total") if name.endswith(suffix)}
    families |= queried
    ours = {f.name for f in text_string_to_metric_families((await client.get("/metrics")).text)
            if f.name.startswith("because_") and not f.name.endswith("_created")}
    assert ours <= families, f"metrics on no panel of the dashboard: {ours - families}"


def test_metric_names_reads_promql() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, route) (rate(because_request_seconds_bucket'
            '{job="because", instance=~"$instance"}[$__rate_interval]))) / on(instance) '
            'group_left sum(x_total offset 5m) > bool 2')
    assert metric_names(expr) == {"because_request_seconds_bucket", "x_total"}


def test_prometheus_scrapes_every_replica_and_compose_mounts_what_exists() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "because")
    assert job["dns_sd_configs"] == [
        {"names": ["because"], "type": "A", "port": 8000, "refresh_interval": "15s"}
    ]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("prometheus", "grafana"):
        service = compose["services"][name]
        assert service["profiles"] == ["monitoring"]
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume
                assert volume.endswith(":ro"), volume
            else:
                assert source in compose["volumes"], volume
