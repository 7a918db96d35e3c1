"""Every Redis key the service writes, named in one place and laid out for Redis Cluster.

A cluster runs a script or a transaction only when all its keys hash to one slot, and a
key's slot is taken from its hash tag (the text between its first `{` and the next `}`).

    PREFIX:{u:USER}:h        a user's history (`service.rating_store`): one key per user,
                             so users spread over every node
    PREFIX:{rl:CALLER}       a caller's rate-limit bucket (`service.rate_limit`)
    {PREFIX}:...             everything shared: the catalogue, item codes, the event
                             stream, the model pointer, fold-in state, the schema version.
                             One tag, so the transactions that write an item and announce
                             it touch one slot. It is small (about 100 bytes an item) and
                             seldom written; a cluster keeps it on one node.

PREFIX defaults to "because". No logical databases: a cluster has only database 0.
"""

from __future__ import annotations

from dataclasses import dataclass

# What `because migrate` writes, and a start-up checks (`service.migration`).
SCHEMA = 2


@dataclass(frozen=True)
class Keys:
    prefix: str

    # -- one user, one caller ------------------------------------------------------------

    def history(self, user_id: str) -> str:
        return f"{self.prefix}:{{u:{user_id}}}:h"

    def history_pattern(self) -> str:
        """SCAN's MATCH for every history (a cluster scans each master)."""
        return f"{self.prefix}:{{u:*}}:h"

    def user_of(self, history_key: str) -> str:
        return history_key[len(self.prefix) + 4 : -3]

    def bucket(self, caller: str) -> str:
        return f"{self.prefix}:{{rl:{caller}}}"

    # -- shared: one slot ----------------------------------------------------------------

    @property
    def shared(self) -> str:
        return f"{{{self.prefix}}}"

    @property
    def schema(self) -> str:
        return f"{self.shared}:schema"

    @property
    def items(self) -> str:
        """Sorted set of every catalogued id, all scored 0 so they page in byte order."""
        return f"{self.shared}:items"

    def item(self, item_id: str) -> str:
        return f"{self.shared}:item:{item_id}"

    @property
    def codes(self) -> str:
        """Hash: item id -> its integer code (what histories store)."""
        return f"{self.shared}:codes"

    @property
    def code_ids(self) -> str:
        """Hash: code -> item id."""
        return f"{self.shared}:code-ids"

    @property
    def last_code(self) -> str:
        return f"{self.shared}:last-code"

    @property
    def events(self) -> str:
        return f"{self.shared}:events"

    @property
    def model(self) -> str:
        return f"{self.shared}:model"

    def raters(self, item_id: str) -> str:
        return f"{self.shared}:raters:{item_id}"

    def folded(self, version: str) -> str:
        return f"{self.shared}:folded:{version}"

    @property
    def fold_waiting(self) -> str:
        return f"{self.shared}:fold:waiting"

    @property
    def fold_lease(self) -> str:
        return f"{self.shared}:fold:lease"

    def imported(self, fingerprint: str) -> str:
        return f"{self.shared}:imported:{fingerprint}"
