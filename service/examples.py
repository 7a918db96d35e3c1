"""Example requests and answers of API v1, shown at /docs: MovieLens-100K ids and titles,
as `make serve` serves them (user 196 is a MovieLens user; "newbie" is not).

Request examples are named (FastAPI's `openapi_examples`: a drop-down at /docs) and the
same values are the request models' schema examples (`values`); answers are the response
models' schema examples. Each one validates against its model, and each request example
is accepted by a running app, its item ids renamed to the test catalogue's
(tests/service/test_openapi.py).
"""

from __future__ import annotations

from typing import Any

VERSION = "005e590c1aee"  # a model version: 12 hex digits of the weights' sha256

STAR_WARS = {"item_id": "50", "title": "Star Wars",
             "genres": ["Action", "Adventure", "Romance", "Sci-Fi", "War"]}
EMPIRE = {"item_id": "172", "title": "Empire Strikes Back, The",
          "genres": ["Action", "Adventure", "Drama", "Romance", "Sci-Fi", "War"]}
JEDI = {"item_id": "181", "title": "Return of the Jedi",
        "genres": ["Action", "Adventure", "Romance", "Sci-Fi", "War"]}

# -- requests ---------------------------------------------------------------------------

RATING_IN = [
    {"item_id": "50", "rating": 5},
    {"item_id": "172", "rating": 4, "timestamp": 1796049861},
]

RATINGS_POST: dict[str, dict[str, Any]] = {
    "one rating": {
        "summary": "one rating, at server time",
        "value": {"ratings": [{"item_id": "50", "rating": 5}]},
    },
    "several": {
        "summary": "several ratings with their times (Unix seconds)",
        "value": {"ratings": [
            {"item_id": "50", "rating": 5, "timestamp": 1796049800},
            {"item_id": "172", "rating": 5, "timestamp": 1796049830},
            {"item_id": "88", "rating": 1, "timestamp": 1796049861},
        ]},
    },
}

SCORE: dict[str, dict[str, Any]] = {
    "stored user": {
        "summary": "a stored user's predicted ratings",
        "value": {"user_id": "196", "item_ids": ["172", "1"]},
    },
    "what-if": {
        "summary": "an inline history (nothing stored)",
        "value": {
            "ratings": [{"item_id": "50", "rating": 5}, {"item_id": "88", "rating": 1}],
            "item_ids": ["172", "181", "1"],
        },
    },
}

RANK: dict[str, dict[str, Any]] = {
    "explained": {
        "summary": "a stored user's top 5 of the catalogue, with reasons",
        "value": {"user_id": "196", "k": 5, "explain": True},
    },
    "candidates": {
        "summary": "the best 3 of a given list, by predicted rating",
        "value": {"user_id": "196", "candidates": ["50", "172", "181", "1", "100"], "k": 3,
                  "order": "rating"},
    },
    "what-if": {
        "summary": "a new user's next picks from an inline history (nothing stored)",
        "value": {
            "ratings": [{"item_id": "50", "rating": 5}, {"item_id": "172", "rating": 5}],
            "k": 10,
            "order": "ranking",
        },
    },
}

ITEM_PUT: dict[str, dict[str, Any]] = {
    "new film": {
        "summary": "a film the model has never seen: placed from its genres at once",
        "value": {"title": "A New Film", "genres": ["Sci-Fi"], "attributes": {"year": 2026}},
    },
    "update": {
        "summary": "a catalogued film's entry, rewritten",
        "value": {**{k: v for k, v in STAR_WARS.items() if k != "item_id"},
                  "attributes": {"year": 1977}},
    },
}

# -- answers ----------------------------------------------------------------------------

RATING_OUT = [{"item_id": "50", "rating": 5.0, "timestamp": 1796049861}]
RATINGS_STORED = [{"user_id": "newbie", "stored": 2, "history_size": 2}]
USER_RATINGS = [{
    "user_id": "newbie",
    "ratings": [{"item_id": "172", "rating": 5.0, "timestamp": 1796049861},
                {"item_id": "50", "rating": 5.0, "timestamp": 1796049800}],
    "history_size": 2,
}]

ITEM_SCORE = [{"item_id": "172", "predicted_rating": 4.29}]
SCORE_RESPONSE = [{
    "scores": [{"item_id": "172", "predicted_rating": 4.29},
               {"item_id": "1", "predicted_rating": 3.69}],
    "cold_start": False,
    "model_version": VERSION,
}]

BECAUSE = [{"item_id": "306", "title": "Mrs. Brown (Her Majesty, Mrs. Brown)", "rating": 4.0,
            "attention": 0.010, "contribution": 0.184}]
DESPITE = [{"item_id": "94", "title": "Home Alone", "rating": 3.0, "attention": 0.003,
            "contribution": -0.239}]
RANKED_ITEM = [
    {"item_id": "100", "title": "Fargo", "score": 3.38, "predicted_rating": 4.44,
     "because": BECAUSE, "despite": DESPITE},
    {"item_id": "86", "title": "Remains of the Day, The", "score": 2.76,
     "predicted_rating": 4.08},
]
RANK_RESPONSE = [{
    "items": [RANKED_ITEM[0]],
    "order": "recommended",
    "cold_start": False,
    "model_version": VERSION,
}]

EXPLANATION = [{
    "user_id": "196",
    "item_id": "50",
    "predicted_rating": 3.62,
    "cold_start": False,
    "because": [{"item_id": "1007", "title": "Waiting for Guffman", "rating": 4.0,
                 "attention": 0.134, "contribution": 0.170}],
    "despite": [{"item_id": "173", "title": "Princess Bride, The", "rating": 2.0,
                 "attention": 0.179, "contribution": -0.271}],
    "note": None,
    "model_version": VERSION,
}]

ANCHOR = [{"item_id": "1118", "title": "Up in Smoke", "rating": 4.0}]
CAROUSEL_ROW = [{"anchor": ANCHOR[0], "items": [RANKED_ITEM[1]]}]
CAROUSELS = [{"user_id": "196", "rows": CAROUSEL_ROW, "model_version": VERSION}]

ITEM = [STAR_WARS]
SIMILAR_ITEM = [{**EMPIRE, "similarity": 0.598}]
SIMILAR = [{
    "item_id": "50",
    "items": [{**EMPIRE, "similarity": 0.598}, {**JEDI, "similarity": 0.571}],
    "model_version": VERSION,
}]
CATALOGUE_ITEM = [
    {**STAR_WARS, "attributes": {}, "retired": False, "embedded": "trained",
     "model_version": VERSION},
    {"item_id": "1683", "title": "A New Film", "genres": ["Sci-Fi"],
     "attributes": {"year": 2026}, "retired": False, "embedded": "attributes",
     "model_version": VERSION},
]
CATALOGUE_PAGE = [{  # GET /v1/items?q=star&limit=2: ids in byte order
    "items": [{"item_id": "124", "title": "Lone Star", "genres": ["Drama", "Mystery"]},
              {"item_id": "146", "title": "Unhook the Stars", "genres": ["Drama"]}],
    "next_cursor": "146",
}]

RATING_SCALE = [{"low": 1.0, "high": 5.0, "step": 1.0}]
MODEL_INFO = [{
    "version": "15dace9a11e2",
    "previous": "becd3e1eee63",
    "activated_at": 1796059382.4,
    "items_trained": 1682,
    "items_folded": 1,
    "last_error": None,
    "rating_scale": RATING_SCALE[0],
    "rating_head": True,
}]

FIELD_PROBLEM = [{"loc": ["body", "ratings", 0, "rating"], "msg": "Input should be a finite "
                  "number", "type": "finite_number"}]
ERROR = [
    {"detail": "unknown item ids: '99999'; see GET /v1/items/{item_id}"},
    {"detail": "ratings[0].rating = 6.0 is outside the model's scale 1..5"},
    {"detail": FIELD_PROBLEM},
]
READINESS = [
    {"status": "ready", "cause": None, "model_version": VERSION},
    {"status": "unavailable",
     "cause": "rating store unavailable: TimeoutError: Timeout reading from redis:6379",
     "model_version": None},
]
LIVENESS = [{"status": "ok"}]
METRICS = ("# HELP because_requests_total HTTP requests\n"
           "# TYPE because_requests_total counter\n"
           'because_requests_total{method="POST",route="/v1/rank",status="200"} 1042.0\n')


def values(named: dict[str, dict[str, Any]]) -> list[Any]:
    """The values of named examples (`openapi_examples`), as a schema's `examples` list."""
    return [example["value"] for example in named.values()]
