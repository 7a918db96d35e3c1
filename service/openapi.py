"""The OpenAPI schema with this deployment's configured limits, and the served model's
rating scale, written into it.

The request models (`service.schemas`) are static, so they state each configurable limit
by its setting and default; the limits themselves are checked by `service.validation`.
When the app builds its schema, the configured values are added as JSON Schema keywords,
so /docs, generated clients and the fuzz test see the limits that are enforced:

    where                                             keyword     setting
    RatingsPost.ratings, ScoreRequest.ratings,        maxItems    max_ratings_per_request
      RankRequest.ratings
    ScoreRequest.item_ids                             maxItems    max_items_per_request
    RankRequest.candidates                            maxItems    max_candidates
    RankRequest.k, `k` of explanations and similar    maximum     max_k
      items, `limit` of the catalogue
    every user and item id (schemas' ID_PATTERN,      maxLength   max_id_length
      `user_id` and `item_id` parameters)

The served model's rating scale bounds every posted or inline rating (RatingIn.rating:
`minimum`, `maximum`) once the lifespan has loaded a model; the schema is built again when
an activated version brings another scale. Before that (an app not started) the schema
has no bounds, only the description that names GET /v1/model, which answers the scale.
The catalogue (which item ids are known) is not in the schema at all.

FastAPI leaves every null out of the schema it generates, those inside examples too
(ModelInfo's `"last_error": null` would vanish and its example break its own schema), so
the models' examples are put back as written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from models.data.table import RatingScale
from service import schemas
from service.schemas import ID_PATTERN
from service.settings import Settings

# (component schema, property, keyword, setting)
BODY_LIMITS = (
    ("RatingsPost", "ratings", "maxItems", "max_ratings_per_request"),
    ("ScoreRequest", "ratings", "maxItems", "max_ratings_per_request"),
    ("ScoreRequest", "item_ids", "maxItems", "max_items_per_request"),
    ("RankRequest", "ratings", "maxItems", "max_ratings_per_request"),
    ("RankRequest", "candidates", "maxItems", "max_candidates"),
    ("RankRequest", "k", "maximum", "max_k"),
)
# (path, method, query parameter, keyword, setting)
QUERY_LIMITS = (
    ("/v1/users/{user_id}/explanations", "get", "k", "maximum", "max_k"),
    ("/v1/items/{item_id}/similar", "get", "k", "maximum", "max_k"),
    ("/v1/items", "get", "limit", "maximum", "max_k"),
)
ID_PARAMETERS = {"user_id", "item_id"}


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Makes `app.openapi()` (and so /openapi.json and /docs) answer the schema with the
    configured limits and the served scale; built on first use, like FastAPI's own, and
    again when the served scale is not the one it was built for."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    built_for: RatingScale | None = None

    def openapi() -> dict[str, Any]:
        nonlocal built_for
        services = getattr(app.state, "services", None)
        scale = None if services is None else services.recommender.model_state().scale
        if app.openapi_schema is None or scale != built_for:
            app.openapi_schema = None  # FastAPI's generator returns its cached one otherwise
            schema = with_limits(with_examples(generate()), settings)
            app.openapi_schema = schema if scale is None else with_scale(schema, scale)
            built_for = scale
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def with_limits(schema: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """`schema` (changed in place) with every limit of the tables above. A limit whose
    place is missing raises, so that renaming a field cannot silently drop it."""
    components = schema["components"]["schemas"]
    for component, name, keyword, setting in BODY_LIMITS:
        _constrain(components[component]["properties"][name], keyword,
                   getattr(settings, setting))
    for path, method, name, keyword, setting in QUERY_LIMITS:
        [parameter] = [p for p in schema["paths"][path][method]["parameters"]
                       if p["name"] == name and p["in"] == "query"]
        _constrain(parameter["schema"], keyword, getattr(settings, setting))
    for id_schema in _id_schemas(components):
        id_schema["maxLength"] = settings.max_id_length
    for methods in schema["paths"].values():
        for operation in methods.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] in ID_PARAMETERS:
                    _constrain(parameter["schema"], "maxLength", settings.max_id_length)
    return schema


def with_scale(schema: dict[str, Any], scale: RatingScale) -> dict[str, Any]:
    """`schema` (changed in place) with the rating scale's bounds on every rating taken."""
    rating = schema["components"]["schemas"]["RatingIn"]["properties"]["rating"]
    rating["minimum"], rating["maximum"] = scale.low, scale.high
    return schema


def with_examples(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` (changed in place) with each model's examples as written, nulls included."""
    for name, component in schema["components"]["schemas"].items():
        model = getattr(schemas, name, None)
        if "examples" in component and model is not None:
            component["examples"] = model.model_json_schema()["examples"]
    return schema


def _constrain(field: dict[str, Any], keyword: str, value: int) -> None:
    """Sets `keyword` on the field's schema, or on the one non-null branch of an optional
    field (`anyOf: [{...}, {"type": "null"}]`)."""
    branches = [b for b in field.get("anyOf", [field]) if b.get("type") != "null"]
    if len(branches) != 1:
        raise ValueError(f"cannot place {keyword} in {field}")
    branches[0][keyword] = value


def _id_schemas(node: Any) -> list[dict[str, Any]]:
    """Every string schema under `node` with the id pattern."""
    if isinstance(node, list):
        return [found for child in node for found in _id_schemas(child)]
    if not isinstance(node, dict):
        return []
    own = [node] if node.get("pattern") == ID_PATTERN else []
    return own + [found for child in node.values() for found in _id_schemas(child)]
