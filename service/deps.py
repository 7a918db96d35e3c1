"""Typed access to the lifespan's resources, validated path parameters, and the access
checks every /v1 route declares (`ReadAccess` or `WriteAccess`).

Every dependency is a coroutine, even those that never await: FastAPI runs a plain
function in a worker thread, a thread hop per dependency on every request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.access import Caller, Scope
from service.errors import Forbidden, InvalidInput, Unauthenticated
from service.recommender import Recommender
from service.schemas import ID_PATTERN, ID_RULE

_bearer = HTTPBearer(auto_error=False, description="an API key: Authorization: Bearer <key>")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


async def _recommender(request: Request) -> Recommender:
    return request.app.state.services.recommender


RecommenderDep = Annotated[Recommender, Depends(_recommender)]


async def _caller(request: Request, credentials: Credentials, needs: Scope) -> Caller:
    """Who is calling, checked against the scope the route needs, then rate-limited."""
    services = request.app.state.services
    keys = services.api_keys
    if credentials is not None and keys:
        caller = keys.identify(credentials.credentials)
        if caller is None:
            raise Unauthenticated("unknown API key")
    elif keys and (needs is Scope.WRITE or services.settings.read_access == "key"):
        raise Unauthenticated(
            f"this call needs an API key with {needs} scope: Authorization: Bearer <key>"
        )
    else:
        host = request.client.host if request.client else "unknown"
        caller = Caller(f"ip:{host}", None)
    if keys and needs is Scope.WRITE and caller.scope is not Scope.WRITE:
        raise Forbidden("this API key may only read; writes need a key with write scope")
    if services.rate_limiter is not None:
        await services.rate_limiter.take(caller.identity)
    return caller


async def _reader(request: Request, credentials: Credentials) -> Caller:
    return await _caller(request, credentials, Scope.READ)


async def _writer(request: Request, credentials: Credentials) -> Caller:
    return await _caller(request, credentials, Scope.WRITE)


ReadAccess = Depends(_reader)
WriteAccess = Depends(_writer)


async def _known_query(request: Request) -> None:
    """A query parameter the route does not take is refused, not ignored: `?K=5` for
    `?k=5` would otherwise silently give the default."""
    route = request.scope.get("route")
    if route is None or not request.query_params:
        return
    known = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise InvalidInput(
            f"unknown query parameters {unknown}; this call takes {sorted(known) or 'none'}"
        )


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


KnownQuery = Depends(_known_query)


_USER = {"MovieLens user": {"summary": "user 196 of MovieLens-100K", "value": "196"}}
_ITEM = {"Star Wars": {"summary": "item 50 of MovieLens-100K", "value": "50"}}


async def _user_id(
    user_id: Annotated[str, Path(min_length=1, pattern=ID_PATTERN, openapi_examples=_USER,
                                 description=f"any user id, {ID_RULE}")],
    rec: RecommenderDep,
) -> str:
    return rec.limits.check_id(user_id, "user_id")


async def _item_id_path(
    item_id: Annotated[str, Path(min_length=1, pattern=ID_PATTERN, openapi_examples=_ITEM,
                                 description=f"an item id, {ID_RULE}")],
    rec: RecommenderDep,
) -> str:
    return rec.limits.check_id(item_id, "item_id")


async def _item_id_query(
    item_id: Annotated[str, Query(min_length=1, pattern=ID_PATTERN, openapi_examples=_ITEM,
                                  description=f"an item the served model embeds, {ID_RULE}")],
    rec: RecommenderDep,
) -> str:
    return rec.limits.check_id(item_id, "item_id")


UserId = Annotated[str, Depends(_user_id)]
ItemIdPath = Annotated[str, Depends(_item_id_path)]
ItemIdQuery = Annotated[str, Depends(_item_id_query)]
