"""Anonymous-id links as the read models keep them: one table shape, one rule.

An `identify` call's `anonymous_id` links that id to the player; an anonymous
id belongs to one player, the latest link by (event time, log position),
whatever order the links arrive in. Players and the ledger each keep their own
copy (so each is consistent with its own checkpoint), in a table of this shape.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_links_table"]


def create_links_table(db: Any, name: str) -> None:
    """Create a build's links table `name` (`db` is a `sqlite_utils.Database`):
    keyed by the anonymous id, indexed by the player it belongs to."""
    links = db.table(name).create(
        {
            "tenant": str,
            "environment": str,
            "anonymous_id": str,
            "user_id": str,
            "time": str,
            "position": int,
        },
        pk=("tenant", "environment", "anonymous_id"),
        not_null={"tenant", "environment", "anonymous_id", "user_id", "time", "position"},
    )
    links.create_index(["tenant", "environment", "user_id"], index_name=f"{name}_by_user")
