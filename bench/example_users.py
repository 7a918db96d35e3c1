"""Three users as a person would try them, through the HTTP API alone, so the same script
runs against any version of the service (issue 18's "before and after" excerpts):

- a new Star Wars fan: Star Wars, The Empire Strikes Back and Return of the Jedi at 5
  stars, Sleepless in Seattle at 1 (the issue's own example);
- MovieLens user 196, whose history the demo imports (`make serve` does);
- a new user with mixed tastes: loves a cartoon, a costume drama and a crime film, hated a
  blockbuster and a romance, likes a horror film.

For each: the top 5 of `/v1/rank` with `explain` (title, predicted rating, reasons with
the user's rating and contribution, and `despite` where the version has it), and the
because-you-watched rows (rows = 3, k = 4: the issue's short carousel). Prints JSON and
writes it to `--out`.

    .venv/bin/python -m bench.example_users --url http://127.0.0.1:8000 --out FILE
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import httpx

NEW_USERS = {
    "example-star-wars-fan": [("50", 5), ("172", 5), ("181", 5), ("88", 1)],
    "example-mixed-tastes": [("1", 5), ("275", 5), ("56", 5), ("121", 1), ("313", 1),
                             ("288", 4)],
}
MOVIELENS_USER = "196"


def reason(r: dict) -> dict:
    return {"title": r.get("title"), "rating": r.get("rating"),
            "contribution": round(r["contribution"], 3)}


def excerpt(api: httpx.Client, user: str) -> dict:
    ranked = api.post("/v1/rank", json={"user_id": user, "k": 5, "explain": True})
    ranked.raise_for_status()
    items = [
        {"title": x.get("title"), "predicted_rating": _rounded(x.get("predicted_rating")),
         "because": [reason(r) for r in x.get("because") or []],
         **({"despite": [reason(r) for r in x["despite"]]} if x.get("despite") else {})}
        for x in ranked.json()["items"]
    ]
    rows = api.get(f"/v1/users/{user}/because-you-watched", params={"rows": 3, "k": 4})
    rows.raise_for_status()
    carousels = [
        {"because_you_watched": row["anchor"]["title"], "rating": row["anchor"]["rating"],
         "items": [x.get("title") for x in row["items"]]}
        for row in rows.json()["rows"]
    ]
    return {"rank": items, "because_you_watched": carousels,
            "model_version": ranked.json().get("model_version")}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", help="an API key with write access, when keys are on")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    with httpx.Client(base_url=args.url, headers=headers, timeout=30) as api:
        found = {}
        for user, ratings in NEW_USERS.items():
            api.delete(f"/v1/users/{user}")
            api.post(f"/v1/users/{user}/ratings", json={"ratings": [
                {"item_id": item, "rating": rating, "timestamp": 1_000_000_000 + n}
                for n, (item, rating) in enumerate(ratings)]}).raise_for_status()
        for user in (*NEW_USERS, MOVIELENS_USER):
            found[user] = excerpt(api, user)
    text = json.dumps(found, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
