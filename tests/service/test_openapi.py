"""The OpenAPI schema as documentation: every request body and every 2xx answer has
examples, each example is valid for its own model and for the schema served, each request
example is accepted by a running app, and the configured limits are in the schema.

The examples use MovieLens-100K ids ("50" Star Wars, "172" The Empire Strikes Back), which
the planted test catalogue ("i0".."i119") does not hold. Sent to the running app, every
item id of an example is renamed to a planted one (the same id to the same one, so a
request that names an item twice still does); user ids and everything else are sent as
written. What that proves is that the examples are well-formed, within the limits and the
scale, and accepted; not that MovieLens ids exist, which only `make serve` can show.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import httpx
import jsonschema_rs
import pytest
from pydantic import BaseModel

from models.data.table import RatingScale
from service import examples, schemas
from service.app import create_app
from service.openapi import BODY_LIMITS, QUERY_LIMITS
from service.settings import Settings

SCHEMA = create_app(Settings()).openapi()
COMPONENTS = SCHEMA["components"]["schemas"]
OPERATIONS = [
    (method, path, spec)
    for path, methods in SCHEMA["paths"].items()
    for method, spec in methods.items()
]
MODELS = {
    name: model for name, model in vars(schemas).items()
    if inspect.isclass(model) and issubclass(model, BaseModel)
    and model.__module__ == schemas.__name__ and not name.startswith("_")
}
ITEM_KEYS = {"item_id", "item_ids", "candidates"}  # where a request example names items


def _component(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref", "")
    return ref.removeprefix("#/components/schemas/") if ref else None


def _validator(schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """A JSON Schema validator of `schema`, its $refs resolved in this OpenAPI document."""
    return jsonschema_rs.validator_for({**schema, "components": SCHEMA["components"]})


def _bodies() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, path, body model, named examples) of every operation that takes a body."""
    found = []
    for method, path, spec in OPERATIONS:
        if "requestBody" in spec:
            content = spec["requestBody"]["content"]["application/json"]
            found.append((method, path, _component(content["schema"]), content["examples"]))
    return found


@pytest.mark.parametrize(
    ("method", "path", "spec"), OPERATIONS, ids=[f"{m.upper()} {p}" for m, p, _ in OPERATIONS]
)
def test_every_body_and_2xx_answer_has_examples(method: str, path: str, spec: dict) -> None:
    if "requestBody" in spec:
        content = spec["requestBody"]["content"]["application/json"]
        assert content.get("examples"), "no named request examples"
        assert COMPONENTS[_component(content["schema"])].get("examples")
    answers = {s: r for s, r in spec["responses"].items() if s.startswith("2")}
    assert answers
    for status, answer in answers.items():
        for media_type, content in answer.get("content", {}).items():
            component = _component(content["schema"])
            shown = (content.get("example") or content.get("examples")
                     or (component and COMPONENTS[component].get("examples")))
            assert shown, f"{status} {media_type}: no example"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_has_examples_valid_for_it_and_for_the_served_schema(name: str) -> None:
    model = MODELS[name]
    found = model.model_json_schema().get("examples")
    assert found, f"{name} has no examples"
    for example in found:
        model.model_validate(example)
    if name in COMPONENTS:  # with the configured limits, as /openapi.json serves it
        assert COMPONENTS[name]["examples"] == found
        validator = _validator({"$ref": f"#/components/schemas/{name}"})
        for example in found:
            validator.validate(example)


@pytest.mark.parametrize(("method", "path", "model", "named"), _bodies(),
                         ids=[f"{m.upper()} {p}" for m, p, _, _ in _bodies()])
def test_named_request_examples_are_the_models_examples(
    method: str, path: str, model: str, named: dict[str, Any]
) -> None:
    assert [e["value"] for e in named.values()] == COMPONENTS[model]["examples"]
    assert all(e["summary"] for e in named.values())


def test_request_examples_use_movielens_ids() -> None:
    """Star Wars, The Empire Strikes Back and user 196, as in the README."""
    ids = {i for _, _, _, named in _bodies() for e in named.values()
           for i in _item_ids(e["value"])}
    assert {"50", "172"} <= ids and all(i.isdigit() for i in ids)
    assert examples.SCORE["stored user"]["value"]["user_id"] == "196"


def test_one_source_in_the_schema_is_the_validator() -> None:
    """Exactly one of user_id and ratings (null counting as absent): the JSON Schema of
    score and rank says what their model validator does, so the schema's valid bodies are
    the ones the model accepts."""
    for model in ("ScoreRequest", "RankRequest"):
        validator = _validator({"$ref": f"#/components/schemas/{model}"})
        for user_id in (None, "absent", "196"):
            for ratings in (None, "absent", [{"item_id": "50", "rating": 5}]):
                body: dict[str, Any] = {"item_ids": ["172"]} if model == "ScoreRequest" else {}
                body |= {k: v for k, v in (("user_id", user_id), ("ratings", ratings))
                         if v != "absent"}
                accepted = True
                try:
                    MODELS[model].model_validate(body)
                except ValueError:
                    accepted = False
                assert validator.is_valid(body) == accepted, body


def test_configured_limits_are_in_the_schema() -> None:
    settings = Settings(max_k=7, max_id_length=33, max_ratings_per_request=11,
                        max_items_per_request=12, max_candidates=13)
    schema = create_app(settings).openapi()
    components = schema["components"]["schemas"]

    def branch(field: dict[str, Any]) -> dict[str, Any]:
        [one] = [b for b in field.get("anyOf", [field]) if b.get("type") != "null"]
        return one

    for component, name, keyword, setting in BODY_LIMITS:
        field = branch(components[component]["properties"][name])
        assert field[keyword] == getattr(settings, setting), (component, name)
    for path, method, name, keyword, setting in QUERY_LIMITS:
        [parameter] = [p for p in schema["paths"][path][method]["parameters"]
                       if p["name"] == name]
        assert parameter["schema"][keyword] == getattr(settings, setting), (path, name)
    assert components["RatingIn"]["properties"]["item_id"]["maxLength"] == 33
    assert branch(components["ScoreRequest"]["properties"]["user_id"])["maxLength"] == 33
    assert components["ScoreRequest"]["properties"]["item_ids"]["items"]["maxLength"] == 33
    ids = [p for _, _, spec in _operations(schema) for p in spec.get("parameters", [])
           if p["name"] in ("user_id", "item_id")]
    assert ids and all(p["schema"]["maxLength"] == 33 for p in ids)
    # The defaults, where no setting is given.
    assert COMPONENTS["RankRequest"]["properties"]["k"]["maximum"] == 100


async def test_request_examples_are_accepted(client: httpx.AsyncClient) -> None:
    """Every operation called with its examples (parameters and each named body), item ids
    renamed to planted ones: 2xx. Deletions last, so that they take nothing from the rest."""
    mapping = _planted_ids()
    calls = []
    for method, path, spec in sorted(OPERATIONS, key=lambda o: o[0] == "delete"):
        url, query = _filled(path, spec.get("parameters", []), mapping)
        bodies = [None]
        if "requestBody" in spec:
            named = spec["requestBody"]["content"]["application/json"]["examples"]
            bodies = [_renamed(e["value"], mapping) for e in named.values()]
        calls += [(method, url, query, body) for body in bodies]
    for method, url, query, body in calls:
        r = await client.request(method.upper(), url, params=query, json=body)
        assert 200 <= r.status_code < 300, (method, url, query, body, r.text)


async def test_the_served_scale_is_answered_and_bounds_ratings(
    client: httpx.AsyncClient,
) -> None:
    """GET /v1/model answers the scale; a running app's schema bounds ratings by it, one
    not started (no model) leaves them unbounded."""
    body = (await client.get("/v1/model")).json()
    assert body["rating_scale"] == {"low": 1.0, "high": 5.0, "step": 1.0}
    assert body["rating_head"] is True
    schemas.ModelInfo.model_validate(body)
    served = (await client.get("/openapi.json")).json()
    rating = served["components"]["schemas"]["RatingIn"]["properties"]["rating"]
    assert (rating["minimum"], rating["maximum"]) == (1.0, 5.0)
    assert "minimum" not in COMPONENTS["RatingIn"]["properties"]["rating"]
    r = await client.post("/v1/users/u/ratings", json={"ratings": [{"item_id": "i1",
                                                                     "rating": 5.5}]})
    assert r.status_code == 422 and "1..5" in r.json()["detail"]


def test_the_schema_follows_the_served_scale() -> None:
    """A model swap that brings another scale rebuilds the schema with its bounds."""
    app = create_app(Settings())
    served = SimpleNamespace(scale=RatingScale(1.0, 5.0, 1.0))
    recommender = SimpleNamespace(model_state=lambda: served)
    app.state.services = SimpleNamespace(recommender=recommender)

    def bounds() -> tuple[float, float]:
        rating = app.openapi()["components"]["schemas"]["RatingIn"]["properties"]["rating"]
        return rating["minimum"], rating["maximum"]

    assert bounds() == (1.0, 5.0)
    served.scale = RatingScale(0.0, 10.0, 0.5)
    assert bounds() == (0.0, 10.0)
    assert app.openapi()["components"]["schemas"]["RankRequest"]["properties"]["k"][
        "maximum"] == 100


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict]]:
    return [(m, p, s) for p, methods in schema["paths"].items() for m, s in methods.items()]


def _item_ids(value: Any, key: str | None = None) -> list[str]:
    """Every item id a request example names."""
    if isinstance(value, dict):
        return [i for k, v in value.items() for i in _item_ids(v, k)]
    if isinstance(value, list):
        return [i for v in value for i in _item_ids(v, key)]
    return [value] if key in ITEM_KEYS and isinstance(value, str) else []


def _planted_ids() -> dict[str, str]:
    """Each MovieLens item id of the examples (bodies and parameters) -> "i0", "i1", ..."""
    named = [e["value"] for _, _, _, n in _bodies() for e in n.values()]
    named += [{p["name"]: e["value"]} for _, _, spec in OPERATIONS
              for p in spec.get("parameters", []) for e in p.get("examples", {}).values()]
    ids = sorted({i for value in named for i in _item_ids(value)}, key=int)
    return {movielens: f"i{n}" for n, movielens in enumerate(ids)}


def _renamed(value: Any, mapping: dict[str, str], key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _renamed(v, mapping, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, mapping, key) for v in value]
    return mapping[value] if key in ITEM_KEYS and isinstance(value, str) else value


def _filled(path: str, parameters: list[dict], mapping: dict[str, str]
            ) -> tuple[str, dict[str, Any]]:
    """The path with its parameters' examples in it, and the query parameters that have
    examples; a required parameter without one fails the test."""
    query = {}
    for p in parameters:
        named = p.get("examples") or p["schema"].get("examples")
        if not named:
            assert not p.get("required"), f"{path}: {p['name']} has no example"
            continue
        value = next(iter(named.values()))["value"] if isinstance(named, dict) else named[0]
        value = _renamed(value, mapping, p["name"])
        if p["in"] == "path":
            path = path.replace("{" + p["name"] + "}", str(value))
        else:
            query[p["name"]] = value
    return path, query
