"""API keys and their scopes: who may read, who may write.

    BECAUSE_API_KEYS='{"<secret>": "write", "<other secret>": "read"}'
    BECAUSE_API_KEYS_FILE=/run/secrets/because-api-keys   # lines "write <secret>"

A write key may also read. Keys travel as `Authorization: Bearer <secret>`. Only their
sha256 digests are kept in memory, a presented key is compared against every digest in
constant time, and a key is known in logs and in Redis (rate limits) by its `key_id`, the
first 12 hex digits of its digest, never by the secret itself.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a key (`key:<key_id>`) or, with no key, the client address."""

    identity: str
    scope: Scope | None


class ApiKeys:
    def __init__(self, keys: dict[str, Scope]):
        self._digests = [(_digest(secret), Scope(scope)) for secret, scope in keys.items()]

    def __bool__(self) -> bool:
        return bool(self._digests)

    @property
    def has_write_key(self) -> bool:
        return any(scope is Scope.WRITE for _, scope in self._digests)

    def identify(self, secret: str) -> Caller | None:
        """The caller this key belongs to, or None for an unknown key. Every digest is
        compared, with `hmac.compare_digest`, so the time taken says nothing about which
        key (or how much of one) matched."""
        presented = _digest(secret)
        found: Scope | None = None
        for digest, scope in self._digests:
            if hmac.compare_digest(digest, presented):
                found = scope
        if found is None:
            return None
        return Caller(f"key:{presented.hex()[:12]}", found)


def read_keys_file(path: Path) -> dict[str, Scope]:
    """Lines `read <secret>` or `write <secret>`; blank lines and `#` comments skipped.
    A malformed line names its number, never its content (it may hold a secret)."""
    keys: dict[str, Scope] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in (Scope.READ, Scope.WRITE):
            raise ValueError(f"{path}:{number}: expected 'read <secret>' or 'write <secret>'")
        keys[parts[1]] = Scope(parts[0])
    return keys


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
